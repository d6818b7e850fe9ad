-- Roles one instance of a cluster plays at a time (`coordinator`: triggers and the reconcile
-- loop), held as leases that the holder renews and anyone may take once expired.
CREATE TABLE leaders (
    role        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- Each API's queue in order: a claim looks up every API's oldest queued job here.
CREATE INDEX jobs_queue ON jobs (api, state, created_at, id);
