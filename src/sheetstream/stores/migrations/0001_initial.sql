-- Sources, their latest snapshot and their versioned change log.
-- Times are ISO-8601 UTC text with microseconds, so they sort as text.

CREATE TABLE sources (
    id              TEXT PRIMARY KEY,
    name            TEXT,
    kind            TEXT NOT NULL,
    config          TEXT NOT NULL,                      -- JSON object
    poll_interval_s REAL NOT NULL,
    paused          INTEGER NOT NULL DEFAULT 0,
    paused_since    TEXT,                               -- when it was paused; NULL while active
    status_state    TEXT NOT NULL DEFAULT 'pending',
    status_message  TEXT,
    status_since    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    epoch           TEXT NOT NULL,
    version         INTEGER NOT NULL DEFAULT 0,         -- the head: version of the latest committed change
    log_floor       INTEGER NOT NULL DEFAULT 1          -- the log holds versions log_floor..version
);

CREATE TABLE snapshots (
    source_id TEXT PRIMARY KEY REFERENCES sources (id) ON DELETE CASCADE,
    tabs      BLOB NOT NULL                             -- core.codec.encode_snapshot
);

CREATE TABLE changes (
    source_id TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    epoch     TEXT NOT NULL,
    version   INTEGER NOT NULL,
    at        TEXT NOT NULL,
    ops       BLOB NOT NULL,                            -- JSON list of core.codec.op_to_json
    PRIMARY KEY (source_id, epoch, version)             -- refuses a second change with a taken version
) WITHOUT ROWID;
