-- The alert policy (issue 4): what the outbox needs to route escalations, and what the alerts
-- read model shows of holds, acknowledgements, reminders and escalations.

-- The monitor's own alert policy and its client's defaults (JSON), from which the outbox
-- computes the channels kept for escalation (`escalate_to`).
ALTER TABLE rm_notify_monitors ADD COLUMN alert_policy TEXT;
ALTER TABLE rm_notify_monitors ADD COLUMN client_policy TEXT;

-- Why an alert is recorded and not announced (silenced, maintenance, flapping); NULL once
-- announced. `quiet`: it resolved without anyone having been told of it.
ALTER TABLE rm_alerts ADD COLUMN held TEXT;
ALTER TABLE rm_alerts ADD COLUMN announced_at TEXT;
ALTER TABLE rm_alerts ADD COLUMN quiet INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rm_alerts ADD COLUMN recovered_at TEXT;
ALTER TABLE rm_alerts ADD COLUMN acknowledged_at TEXT;
ALTER TABLE rm_alerts ADD COLUMN acknowledged_by TEXT;
ALTER TABLE rm_alerts ADD COLUMN ack_note TEXT;
ALTER TABLE rm_alerts ADD COLUMN reminders INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rm_alerts ADD COLUMN escalated_at TEXT;
