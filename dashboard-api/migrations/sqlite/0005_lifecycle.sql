-- API lifecycle: what each version was computed from and what its output looked like (for
-- skipping unchanged sources and for quality gates), and the triggers' state.

ALTER TABLE api_versions ADD COLUMN fingerprint TEXT;
ALTER TABLE api_versions ADD COLUMN profile TEXT;
ALTER TABLE api_versions ADD COLUMN data_time TEXT;
ALTER TABLE api_versions ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;

-- The table watcher's last look at each watched table: one row per (catalog, table), however
-- many APIs read it. `changed_at` is when the signature last changed (settling counts from it).
CREATE TABLE table_watch (
    catalog TEXT NOT NULL,
    table_name TEXT NOT NULL,
    signature TEXT NOT NULL,
    changed_at INTEGER NOT NULL,
    checked_at INTEGER NOT NULL,
    PRIMARY KEY (catalog, table_name)
);

-- Per API, what its triggers did last and will do next.
CREATE TABLE api_triggers (
    api TEXT PRIMARY KEY,
    -- The table signature the API's last table-change firing (or its baseline) answered.
    seen_signature TEXT,
    -- The schedule (and time zone) next_at was computed for; an edit recomputes it.
    schedule TEXT,
    next_at INTEGER,
    last_fired_at INTEGER,
    last_trigger TEXT,
    last_job TEXT
);
