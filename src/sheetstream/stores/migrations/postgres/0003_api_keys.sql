-- REST API keys: never the key itself, only the SHA-256 of its secret (hex), its scopes and when it was revoked.
-- scopes is a space-separated, sorted list ("read write").
CREATE TABLE api_keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ                             -- NULL while the key is valid
);
