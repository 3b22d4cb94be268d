-- Channels: routing by tag, claims of delivery attempts, give-up, and what the notifications
-- projection remembers of each monitor (name, tags, last signal) to route and word a message.
ALTER TABLE rm_channels ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';

-- The attempt a dispatcher claimed (NotificationAttemptStarted) and until when the claim holds.
ALTER TABLE rm_outbox ADD COLUMN claimed_attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rm_outbox ADD COLUMN claim_expires_at TEXT;
-- When the transition happened: delivery is given up `give_up_after` later.
ALTER TABLE rm_outbox ADD COLUMN created_at TEXT;
CREATE INDEX rm_outbox_channel ON rm_outbox (channel_id, state, position);
CREATE INDEX rm_outbox_alert ON rm_outbox (alert_id);

CREATE TABLE rm_notify_monitors (
    client     TEXT NOT NULL,
    slug       TEXT NOT NULL,
    name       TEXT NOT NULL,
    tags       TEXT NOT NULL,
    last_event TEXT,
    PRIMARY KEY (client, slug)
);
