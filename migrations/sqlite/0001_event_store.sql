-- The append-only event log. Positions are assigned in commit order by the single writer.
CREATE TABLE events (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id       TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    event_id        TEXT    NOT NULL UNIQUE,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    data            TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    idempotency_key TEXT,
    UNIQUE (stream_id, version)
);

CREATE UNIQUE INDEX events_idempotency_key ON events (stream_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Each stream's current version, kept in the append transaction.
CREATE TABLE streams (
    stream_id TEXT PRIMARY KEY,
    version   INTEGER NOT NULL
) WITHOUT ROWID;

-- Aggregate snapshots, so loading a long stream never replays it whole.
CREATE TABLE snapshots (
    stream_id     TEXT PRIMARY KEY,
    state_version INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    state         TEXT    NOT NULL
) WITHOUT ROWID;
