-- Sources, their latest snapshot and their versioned change log (PostgreSQL).
-- Ids sort by code point (COLLATE "C"), as page cursors and every other store expect.

CREATE TABLE sources (
    id              TEXT COLLATE "C" PRIMARY KEY,
    name            TEXT,
    kind            TEXT NOT NULL,
    config          TEXT NOT NULL,                      -- JSON object, kept as written
    poll_interval_s DOUBLE PRECISION NOT NULL,
    paused          BOOLEAN NOT NULL DEFAULT FALSE,
    paused_since    TIMESTAMPTZ,                        -- when it was paused; NULL while active
    status_state    TEXT NOT NULL DEFAULT 'pending',
    status_message  TEXT,
    status_since    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    epoch           TEXT NOT NULL,
    version         BIGINT NOT NULL DEFAULT 0,          -- the head: version of the latest committed change
    log_floor       BIGINT NOT NULL DEFAULT 1           -- the log holds versions log_floor..version
);

CREATE TABLE snapshots (
    source_id TEXT COLLATE "C" PRIMARY KEY REFERENCES sources (id) ON DELETE CASCADE,
    tabs      BYTEA NOT NULL                            -- core.codec.encode_snapshot
);

CREATE TABLE changes (
    source_id TEXT COLLATE "C" NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    epoch     TEXT NOT NULL,
    version   BIGINT NOT NULL,
    at        TIMESTAMPTZ NOT NULL,
    ops       BYTEA NOT NULL,                           -- JSON list of core.codec.op_to_json
    PRIMARY KEY (source_id, epoch, version)             -- refuses a second change with a taken version
);

-- Retention looks up the newest change older than the age limit at every commit.
CREATE INDEX changes_by_age ON changes (source_id, epoch, at);
