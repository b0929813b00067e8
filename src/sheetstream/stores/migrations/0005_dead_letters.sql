-- Dead letters: change sets and hints set aside after failing too often (runtime/dead_letters.py).
-- AUTOINCREMENT: ids are never reused, so a newer letter always has a larger id and an old id never names a new one.
CREATE TABLE dead_letters (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    key             TEXT NOT NULL UNIQUE,               -- what failed; a second letter with this key updates the row
    kind            TEXT NOT NULL,                      -- changeset | hint
    source_id       TEXT,                               -- no foreign key: a letter outlives its source
    payload         TEXT NOT NULL,                      -- JSON object
    error           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    first_failed_at TEXT NOT NULL,
    last_failed_at  TEXT NOT NULL
);
