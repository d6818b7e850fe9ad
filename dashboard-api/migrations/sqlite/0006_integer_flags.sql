-- Flags as INTEGER 0/1 rather than BOOLEAN. SQLite stores both the same way, but sqlx's `Any`
-- driver (which lets one store run on SQLite or PostgreSQL) refuses columns declared BOOLEAN on
-- SQLite. The two tables with such columns are rebuilt with the same data.

CREATE TABLE apis_rebuilt (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    catalog     TEXT NOT NULL,
    owner       TEXT NOT NULL,
    protected   INTEGER NOT NULL,
    edge_group  TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    editors     TEXT NOT NULL DEFAULT '[]',
    ceilings    TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO apis_rebuilt (name, spec, catalog, owner, protected, edge_group, revision, created_at, updated_at, editors, ceilings)
    SELECT name, spec, catalog, owner, protected, edge_group, revision, created_at, updated_at, editors, ceilings FROM apis;
DROP TABLE apis;
ALTER TABLE apis_rebuilt RENAME TO apis;

CREATE TABLE api_state_rebuilt (
    api               TEXT PRIMARY KEY,
    serving           BIGINT,
    previous          BIGINT,
    converging        INTEGER NOT NULL DEFAULT 0,
    edges             TEXT NOT NULL DEFAULT '[]',
    next_version      BIGINT NOT NULL DEFAULT 1,
    fence             BIGINT NOT NULL DEFAULT 0,
    lease_holder      TEXT,
    lease_expires_at  BIGINT,
    access_revision   BIGINT NOT NULL DEFAULT 0,
    updated_at        BIGINT NOT NULL,
    retiring          INTEGER NOT NULL DEFAULT 0
);
INSERT INTO api_state_rebuilt (api, serving, previous, converging, edges, next_version, fence, lease_holder, lease_expires_at, access_revision, updated_at, retiring)
    SELECT api, serving, previous, converging, edges, next_version, fence, lease_holder, lease_expires_at, access_revision, updated_at, retiring FROM api_state;
DROP TABLE api_state;
ALTER TABLE api_state_rebuilt RENAME TO api_state;
