-- Roles one instance of a cluster plays at a time (`coordinator`: triggers and the reconcile
-- loop), held as leases that the holder renews and anyone may take once expired.
CREATE TABLE leaders (
    role        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
