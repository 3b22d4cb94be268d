-- Read models. Everything here is derived from the event log and can be rebuilt from it.

-- One row per projection: how far it has applied the log. Written in the same transaction as
-- the projection's rows.
CREATE TABLE rm_checkpoints (
    name           TEXT PRIMARY KEY,
    version        INTEGER NOT NULL,
    position       INTEGER NOT NULL,
    -- While position < rebuild_target the projection is replaying history.
    rebuild_target INTEGER NOT NULL DEFAULT 0
);

-- Taken (by updating it) at the start of every projection transaction, so that two runners
-- never apply the same batch.
CREATE TABLE rm_lock (
    id      INTEGER PRIMARY KEY,
    touched INTEGER NOT NULL
);
INSERT INTO rm_lock (id, touched) VALUES (1, 0);

CREATE TABLE rm_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE rm_monitors (
    client            TEXT    NOT NULL,
    slug              TEXT    NOT NULL,
    deleted           INTEGER NOT NULL,
    name              TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    paused            INTEGER NOT NULL,
    schedule          TEXT    NOT NULL,
    grace_ms          INTEGER NOT NULL,
    max_runtime_ms    INTEGER,
    tags              TEXT    NOT NULL,
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL,
    last_signal_at    TEXT,
    last_heartbeat_at TEXT,
    host              TEXT,
    last_run          TEXT,
    open_runs         INTEGER NOT NULL,
    expected_at       TEXT,
    next_deadline_at  TEXT,
    open_alerts       TEXT    NOT NULL,
    state             TEXT    NOT NULL,
    PRIMARY KEY (client, slug)
);

CREATE TABLE rm_events (
    position   INTEGER PRIMARY KEY,
    client     TEXT NOT NULL,
    slug       TEXT NOT NULL,
    event_type TEXT NOT NULL,
    at         TEXT NOT NULL,
    run_id     TEXT,
    data       TEXT NOT NULL
);
CREATE INDEX rm_events_monitor ON rm_events (client, slug, position);

CREATE TABLE rm_alerts (
    alert_id    TEXT PRIMARY KEY,
    client      TEXT NOT NULL,
    slug        TEXT NOT NULL,
    cause       TEXT NOT NULL,
    state       TEXT NOT NULL,
    opened_at   TEXT NOT NULL,
    resolved_at TEXT,
    message     TEXT NOT NULL,
    resolution  TEXT,
    position    INTEGER NOT NULL
);
CREATE INDEX rm_alerts_client ON rm_alerts (client, state, opened_at);

CREATE TABLE rm_clients (
    client       TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE TABLE rm_keys (
    key_id      TEXT PRIMARY KEY,
    client      TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    label       TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
);
CREATE INDEX rm_keys_client ON rm_keys (client);

CREATE TABLE rm_channels (
    channel_id           TEXT PRIMARY KEY,
    client               TEXT    NOT NULL,
    name                 TEXT    NOT NULL,
    kind                 TEXT    NOT NULL,
    config               TEXT    NOT NULL,
    created_at           TEXT    NOT NULL,
    removed_at           TEXT,
    last_success_at      TEXT,
    last_failure_at      TEXT,
    last_error           TEXT,
    consecutive_failures INTEGER NOT NULL
);
CREATE INDEX rm_channels_client ON rm_channels (client);

-- The notification outbox: one row per (alert transition, channel).
CREATE TABLE rm_outbox (
    notification_id TEXT PRIMARY KEY,
    client          TEXT    NOT NULL,
    channel_id      TEXT    NOT NULL,
    alert_id        TEXT    NOT NULL,
    transition      TEXT    NOT NULL,
    slug            TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    position        INTEGER NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT,
    delivered_at    TEXT
);
CREATE INDEX rm_outbox_pending ON rm_outbox (state, next_attempt_at);
