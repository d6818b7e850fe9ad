-- The control plane's desired state: per API, what every edge must serve and who may read it,
-- the operation lease with its fencing token, and each version's life (staged → sealed →
-- committed → retired, or discarded when it never committed).

CREATE TABLE api_state (
    api               TEXT PRIMARY KEY,
    -- The version every edge must serve. Recorded (with `converging`) before the first edge
    -- switches; cleared `converging` once every edge serves it.
    serving           BIGINT,
    -- What served before `serving`, the way back when `serving` cannot be had everywhere.
    previous          BIGINT,
    converging        BOOLEAN NOT NULL DEFAULT FALSE,
    -- Edge addresses (JSON array) the API is published to.
    edges             TEXT NOT NULL DEFAULT '[]',
    -- Version numbers are handed out here, never reused.
    next_version      BIGINT NOT NULL DEFAULT 1,
    -- The operation lease; `fence` grows by one at every acquisition.
    fence             BIGINT NOT NULL DEFAULT 0,
    lease_holder      TEXT,
    lease_expires_at  BIGINT,
    -- Grows with every change of protection or tokens; edges keep the newest they were sent.
    access_revision   BIGINT NOT NULL DEFAULT 0,
    updated_at        BIGINT NOT NULL
);

CREATE TABLE api_versions (
    api           TEXT NOT NULL,
    version       BIGINT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('staged', 'sealed', 'committed', 'retired', 'discarded')),
    path          TEXT,
    keys          BIGINT,
    bytes         BIGINT,
    checksum      TEXT,
    -- The snapshot the version can be refilled from (its manifest, JSON), once written.
    snapshot      TEXT,
    job_id        TEXT,
    created_at    BIGINT NOT NULL,
    committed_at  BIGINT,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (api, version)
);

INSERT INTO api_versions (api, version, state, path, keys, bytes, checksum, job_id, created_at, committed_at, updated_at)
    SELECT api, version, 'committed', path, keys, bytes, checksum, job_id, committed_at, committed_at, committed_at FROM versions;

DROP TABLE versions;

CREATE INDEX api_versions_state ON api_versions (api, state);
