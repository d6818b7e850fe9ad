-- Tablecast dashboard store. Portable SQL (SQLite and PostgreSQL): TEXT for JSON documents,
-- BIGINT milliseconds since the epoch for times, no autoincrement (ids are generated).

CREATE TABLE apis (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    catalog     TEXT NOT NULL,
    owner       TEXT NOT NULL,
    protected   BOOLEAN NOT NULL,
    edge_group  TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
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

CREATE TABLE versions (
    api           TEXT NOT NULL,
    version       BIGINT NOT NULL,
    path          TEXT NOT NULL,
    keys          BIGINT NOT NULL,
    bytes         BIGINT NOT NULL,
    checksum      TEXT NOT NULL,
    committed_at  BIGINT NOT NULL,
    job_id        TEXT NOT NULL,
    PRIMARY KEY (api, version)
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    api         TEXT,
    kind        TEXT NOT NULL CHECK (kind IN ('api', 'analyst')),
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE INDEX tokens_api ON tokens (api);
