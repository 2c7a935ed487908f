-- Issue 12: the dashboard's people and their sign-in sessions; API keys get a name and a
-- last-used time so owners can tell them apart and revoke them. Numbered 8: 6 and 7 are taken
-- by work in progress elsewhere.
CREATE TABLE users (
    seq {SEQ_PK},
    id TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    -- Lower-cased; sign-in is by email alone, so it is unique across organizations.
    email TEXT NOT NULL UNIQUE,
    -- Argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX users_org ON users (org_id, seq);

-- The cookie carries a random token; only its SHA-256 is stored, like API keys.
CREATE TABLE sessions (
    token_hash TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- Per-session CSRF token, sent back in a hidden field or the x-csrf-token header.
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

ALTER TABLE api_keys ADD COLUMN name TEXT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
