-- Tablecast's control-plane store on PostgreSQL: the schema SQLite reaches through migrations
-- 0001–0006 of `migrations/sqlite`, in one step (PostgreSQL support starts here). Same tables,
-- columns and constraints; JSON documents in TEXT, times in BIGINT milliseconds since the epoch.
-- A change to the schema is a new migration in both folders.

CREATE TABLE apis (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    catalog     TEXT NOT NULL,
    owner       TEXT NOT NULL,
    protected   BOOLEAN NOT NULL,
    edge_group  TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    editors     TEXT NOT NULL DEFAULT '[]',
    ceilings    TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE api_revisions (
    api       TEXT NOT NULL,
    revision  BIGINT NOT NULL,
    spec      TEXT NOT NULL,
    author    TEXT NOT NULL,
    at        BIGINT NOT NULL,
    PRIMARY KEY (api, revision)
);

CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,
    api               TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('publish', 'rollback')),
    state             TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    revision          BIGINT,
    params            TEXT NOT NULL,
    author            TEXT NOT NULL,
    attempts          BIGINT NOT NULL DEFAULT 0,
    max_attempts      BIGINT NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  BIGINT,
    not_before        BIGINT NOT NULL,
    error             TEXT,
    report            TEXT,
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT
);

CREATE INDEX jobs_claim ON jobs (state, not_before, created_at);
CREATE INDEX jobs_api ON jobs (api, created_at);
-- The per-API lock, enforced by the database itself: at most one running job per API.
CREATE UNIQUE INDEX jobs_one_running_per_api ON jobs (api) WHERE state = 'running';

CREATE TABLE job_events (
    job_id  TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    event   TEXT NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE tokens (
    id               TEXT PRIMARY KEY,
    api              TEXT,
    kind             TEXT NOT NULL CHECK (kind IN ('api', 'analyst')),
    name             TEXT NOT NULL,
    hash             TEXT NOT NULL UNIQUE,
    created_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    revoked_at       BIGINT,
    rate_per_second  BIGINT,
    burst            BIGINT
);

CREATE INDEX tokens_api ON tokens (api);

CREATE TABLE api_state (
    api               TEXT PRIMARY KEY,
    serving           BIGINT,
    previous          BIGINT,
    converging        BOOLEAN NOT NULL DEFAULT FALSE,
    edges             TEXT NOT NULL DEFAULT '[]',
    next_version      BIGINT NOT NULL DEFAULT 1,
    fence             BIGINT NOT NULL DEFAULT 0,
    lease_holder      TEXT,
    lease_expires_at  BIGINT,
    access_revision   BIGINT NOT NULL DEFAULT 0,
    updated_at        BIGINT NOT NULL,
    retiring          BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE api_versions (
    api           TEXT NOT NULL,
    version       BIGINT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('staged', 'sealed', 'committed', 'retired', 'discarded')),
    path          TEXT,
    keys          BIGINT,
    bytes         BIGINT,
    checksum      TEXT,
    snapshot      TEXT,
    job_id        TEXT,
    created_at    BIGINT NOT NULL,
    committed_at  BIGINT,
    updated_at    BIGINT NOT NULL,
    fingerprint   TEXT,
    profile       TEXT,
    data_time     TEXT,
    forced        BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (api, version)
);

CREATE INDEX api_versions_state ON api_versions (api, state);

CREATE TABLE table_watch (
    catalog     TEXT NOT NULL,
    table_name  TEXT NOT NULL,
    signature   TEXT NOT NULL,
    changed_at  BIGINT NOT NULL,
    checked_at  BIGINT NOT NULL,
    PRIMARY KEY (catalog, table_name)
);

CREATE TABLE api_triggers (
    api             TEXT PRIMARY KEY,
    seen_signature  TEXT,
    schedule        TEXT,
    next_at         BIGINT,
    last_fired_at   BIGINT,
    last_trigger    TEXT,
    last_job        TEXT
);

CREATE TABLE leaders (
    role        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- Each API's queue in order: a claim looks up every API's oldest queued job here.
CREATE INDEX jobs_queue ON jobs (api, state, created_at, id);
