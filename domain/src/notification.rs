//! Outcomes of notification attempts. A notification is one (alert, transition, channel); its
//! id is derived from those three, so every attempt carries the same idempotency key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event_family;

const NOTIFICATION_NAMESPACE: Uuid = Uuid::from_u128(0x0c9e_5a3e_1f6d_4c7a_8d2b_6e4f_9a1b_c002);

/// What happened to an alert that its channels hear of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// Opened (or announced once its hold ended).
    Opened,
    Resolved,
    /// The n-th reminder of an open, unacknowledged alert (`realert_every`), from 1.
    Reminded(u32),
    /// It stayed unacknowledged for `escalate_after`: the `escalate_to` channels hear of it.
    Escalated,
    /// Someone took it.
    Acknowledged,
}

impl Transition {
    /// The name receivers see (`transition` in the payload, `alert.<name>` as the event).
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Opened => "opened",
            Transition::Resolved => "resolved",
            Transition::Reminded(_) => "reminder",
            Transition::Escalated => "escalated",
            Transition::Acknowledged => "acknowledged",
        }
    }

    /// What makes this transition unique for its alert: every reminder is its own.
    pub fn key(self) -> String {
        match self {
            Transition::Reminded(n) => format!("reminder-{n}"),
            other => other.as_str().to_string(),
        }
    }
}

/// The idempotency key of one notification.
pub fn notification_id(alert_id: Uuid, transition: Transition, channel_id: Uuid) -> Uuid {
    Uuid::new_v5(&NOTIFICATION_NAMESPACE, format!("{alert_id}/{}/{channel_id}", transition.key()).as_bytes())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationDelivered {
    pub notification_id: Uuid,
    pub channel_id: Uuid,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationAttemptFailed {
    pub notification_id: Uuid,
    pub channel_id: Uuid,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    pub error: String,
    pub next_attempt_at: DateTime<Utc>,
}

/// A dispatcher claimed an attempt before sending it. Appended with the idempotency key
/// [`attempt_key`], which the log refuses twice: of two dispatchers racing for one attempt only
/// one may send. If its outcome never follows (the dispatcher died mid-send), the claim lapses
/// at `lease_until` and the next attempt goes out, with the same idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationAttemptStarted {
    pub notification_id: Uuid,
    pub channel_id: Uuid,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
}

/// Delivery was given up on: every attempt failed for longer than the configured
/// `give_up_after`. The channel's later notifications no longer wait behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationAbandoned {
    pub notification_id: Uuid,
    pub channel_id: Uuid,
    pub attempts: u32,
    pub at: DateTime<Utc>,
    pub error: String,
}

/// The log's idempotency key of a claim: one per (notification, attempt).
pub fn attempt_key(notification_id: Uuid, attempt: u32) -> String {
    format!("attempt:{notification_id}:{attempt}")
}

event_family! {
    pub enum NotificationEvent {
        NotificationDelivered(NotificationDelivered),
        NotificationAttemptFailed(NotificationAttemptFailed),
        NotificationAttemptStarted(NotificationAttemptStarted),
        NotificationAbandoned(NotificationAbandoned),
    }
}

/// Exponential backoff after `attempt` failed attempts: 1s, 2s, 4s, … capped at `max_ms`.
pub fn backoff_ms(attempt: u32, max_ms: i64) -> i64 {
    let exp = attempt.saturating_sub(1).min(30);
    (1000i64 << exp).min(max_ms)
}
