-- Leases: a named claim held by one holder until it expires (which monitor watches which source).
-- expires_at is ISO-8601 UTC text, like every time here, so it compares as text.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;
