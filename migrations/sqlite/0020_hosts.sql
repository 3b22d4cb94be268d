-- Host correlation (issue 4): host alerts, inhibited monitor alerts, and the hosts read model.

-- A host alert is an alert row too: kind 'host', slug 'host:<host>' (a slug never holds ':'),
-- the host, and the monitors it covers (a JSON list). A monitor's alert that a host alert
-- inhibited names it, and says when it was released (sent on its own after all).
ALTER TABLE rm_alerts ADD COLUMN kind TEXT NOT NULL DEFAULT 'monitor';
ALTER TABLE rm_alerts ADD COLUMN host TEXT;
ALTER TABLE rm_alerts ADD COLUMN monitors TEXT;
ALTER TABLE rm_alerts ADD COLUMN inhibited_by TEXT;
ALTER TABLE rm_alerts ADD COLUMN released_at TEXT;

-- Every host of every client, folded with the Host aggregate's own `evolve` (state as JSON).
CREATE TABLE rm_hosts (
    client     TEXT    NOT NULL,
    host       TEXT    NOT NULL,
    members    INTEGER NOT NULL,
    silent     INTEGER NOT NULL,
    alert_id   TEXT,
    updated_at TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    PRIMARY KEY (client, host)
);

-- What the notifications projection knows of hosts: which host each monitor is a member of
-- (to hold its `missed` notification briefly when the host could correlate), which alerts a
-- host alert inhibited, and each host alert's monitors and tags (to route and word it).
CREATE TABLE rm_notify_host_members (
    client TEXT NOT NULL,
    slug   TEXT NOT NULL,
    host   TEXT NOT NULL,
    PRIMARY KEY (client, slug)
);
CREATE INDEX rm_notify_host_members_host ON rm_notify_host_members (client, host);

CREATE TABLE rm_notify_inhibited (
    alert_id      TEXT PRIMARY KEY,
    host_alert_id TEXT    NOT NULL,
    released      INTEGER NOT NULL
);

CREATE TABLE rm_notify_host_alerts (
    alert_id TEXT PRIMARY KEY,
    client   TEXT NOT NULL,
    host     TEXT NOT NULL,
    monitors TEXT NOT NULL,
    tags     TEXT NOT NULL
);
