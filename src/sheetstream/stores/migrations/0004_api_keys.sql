-- REST API keys: never the key itself, only the SHA-256 of its secret (hex), its scopes and when it was revoked.
-- scopes is a space-separated, sorted list ("read write"); times are ISO-8601 UTC text.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT                                    -- NULL while the key is valid
) WITHOUT ROWID;
