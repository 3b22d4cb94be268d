-- Dashboard sessions: operational state, not a read model (a rebuild keeps them) and not
-- events (short-lived credentials; only their hash is kept).
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
