//! Notification channels and the durable outbox. An alert transition becomes one outbox row per
//! channel of its client; the dispatcher's attempts come back as events, which this projection
//! folds, so the outbox is as rebuildable as every other read model.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use telltale_domain::DomainEvent;
use telltale_domain::client::ClientEvent;
use telltale_domain::ids::streams;
use telltale_domain::monitor::MonitorEvent;
use telltale_domain::notification::{NotificationEvent, Transition, notification_id};
use uuid::Uuid;

use super::read_time;
use crate::log::fmt_time;
use crate::{Envelope, Projection};

pub struct NotificationsProjection;

/// The body of a notification, without the link (added when sent). Pure.
pub fn payload(client: &str, slug: &str, event: &MonitorEvent, channel_id: Uuid) -> Option<(Transition, Uuid, Value)> {
    let (transition, alert_id, cause, opened_at, resolved_at, message) = match event {
        MonitorEvent::AlertOpened(e) => (Transition::Opened, e.alert_id, e.cause, e.opened_at, None, &e.message),
        MonitorEvent::AlertResolved(e) => {
            (Transition::Resolved, e.alert_id, e.cause, e.opened_at, Some(e.resolved_at), &e.message)
        }
        _ => return None,
    };
    let body = json!({
        "notification_id": notification_id(alert_id, transition, channel_id),
        "transition": transition.as_str(),
        "alert_id": alert_id,
        "client": client,
        "monitor": slug,
        "cause": cause,
        "state": if transition == Transition::Opened { "open" } else { "resolved" },
        "message": message,
        "opened_at": fmt_time(opened_at),
        "resolved_at": resolved_at.map(fmt_time),
    });
    Some((transition, alert_id, body))
}

#[async_trait]
impl Projection for NotificationsProjection {
    fn name(&self) -> &'static str {
        "notifications"
    }
    fn version(&self) -> i32 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_channels", "rm_outbox"]
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[&Envelope]) -> Result<(), sqlx::Error> {
        for envelope in events {
            match &envelope.event {
                DomainEvent::Client(ClientEvent::ChannelAdded(e)) => {
                    let Some(client) = envelope.stream_id.strip_prefix("client:") else { continue };
                    sqlx::query(
                        "INSERT INTO rm_channels (channel_id, client, name, kind, config, created_at, consecutive_failures)
                         VALUES ($1, $2, $3, $4, $5, $6, 0)",
                    )
                    .bind(e.channel_id.to_string())
                    .bind(client)
                    .bind(&e.name)
                    .bind(&e.kind)
                    .bind(e.config.to_string())
                    .bind(fmt_time(e.at))
                    .execute(&mut *conn)
                    .await?;
                }
                DomainEvent::Client(ClientEvent::ChannelRemoved(e)) => {
                    sqlx::query("UPDATE rm_channels SET removed_at = $1 WHERE channel_id = $2")
                        .bind(fmt_time(e.at))
                        .bind(e.channel_id.to_string())
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("UPDATE rm_outbox SET state = 'cancelled' WHERE channel_id = $1 AND state = 'pending'")
                        .bind(e.channel_id.to_string())
                        .execute(&mut *conn)
                        .await?;
                }
                DomainEvent::Monitor(event @ (MonitorEvent::AlertOpened(_) | MonitorEvent::AlertResolved(_))) => {
                    let Some((client, slug)) = streams::parse_monitor(&envelope.stream_id) else { continue };
                    let channels: Vec<String> =
                        sqlx::query_scalar("SELECT channel_id FROM rm_channels WHERE client = $1 AND removed_at IS NULL ORDER BY channel_id")
                            .bind(client)
                            .fetch_all(&mut *conn)
                            .await?;
                    for channel in channels {
                        let channel_id = Uuid::parse_str(&channel).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                        let Some((transition, alert_id, body)) = payload(client, slug, event, channel_id) else {
                            continue;
                        };
                        sqlx::query(
                            "INSERT INTO rm_outbox (notification_id, client, channel_id, alert_id, transition, slug, payload,
                                 position, state, attempts, next_attempt_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9)
                             ON CONFLICT (notification_id) DO NOTHING",
                        )
                        .bind(notification_id(alert_id, transition, channel_id).to_string())
                        .bind(client)
                        .bind(&channel)
                        .bind(alert_id.to_string())
                        .bind(transition.as_str())
                        .bind(slug)
                        .bind(body.to_string())
                        .bind(envelope.position)
                        .bind(fmt_time(event.at()))
                        .execute(&mut *conn)
                        .await?;
                    }
                }
                DomainEvent::Notification(NotificationEvent::NotificationDelivered(e)) => {
                    sqlx::query(
                        "UPDATE rm_outbox SET state = 'delivered', attempts = $1, delivered_at = $2 WHERE notification_id = $3",
                    )
                    .bind(i64::from(e.attempt))
                    .bind(fmt_time(e.at))
                    .bind(e.notification_id.to_string())
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query(
                        "UPDATE rm_channels SET last_success_at = $1, consecutive_failures = 0, last_error = NULL WHERE channel_id = $2",
                    )
                    .bind(fmt_time(e.at))
                    .bind(e.channel_id.to_string())
                    .execute(&mut *conn)
                    .await?;
                }
                DomainEvent::Notification(NotificationEvent::NotificationAttemptFailed(e)) => {
                    sqlx::query(
                        "UPDATE rm_outbox SET attempts = $1, last_error = $2, next_attempt_at = $3
                         WHERE notification_id = $4 AND state = 'pending'",
                    )
                    .bind(i64::from(e.attempt))
                    .bind(&e.error)
                    .bind(fmt_time(e.next_attempt_at))
                    .bind(e.notification_id.to_string())
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query(
                        "UPDATE rm_channels SET last_failure_at = $1, last_error = $2,
                             consecutive_failures = consecutive_failures + 1 WHERE channel_id = $3",
                    )
                    .bind(fmt_time(e.at))
                    .bind(&e.error)
                    .bind(e.channel_id.to_string())
                    .execute(&mut *conn)
                    .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

// ---- queries ------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct ChannelView {
    pub channel_id: Uuid,
    pub client: String,
    pub name: String,
    pub kind: String,
    pub config: Value,
    pub created_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub consecutive_failures: i64,
}

fn channel_of(row: &AnyRow) -> Result<ChannelView, sqlx::Error> {
    let id: String = row.try_get("channel_id")?;
    let config: String = row.try_get("config")?;
    Ok(ChannelView {
        channel_id: Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        client: row.try_get("client")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        config: serde_json::from_str(&config).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        created_at: read_time(row.try_get("created_at")?).unwrap_or_default(),
        last_success_at: read_time(row.try_get("last_success_at")?),
        last_failure_at: read_time(row.try_get("last_failure_at")?),
        last_error: row.try_get("last_error")?,
        consecutive_failures: row.try_get("consecutive_failures")?,
    })
}

const CHANNEL_COLUMNS: &str = "channel_id, client, name, kind, config, created_at, last_success_at, last_failure_at, \
     last_error, consecutive_failures";

pub async fn channels(pool: &AnyPool, client: &str) -> Result<Vec<ChannelView>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS} FROM rm_channels WHERE client = $1 AND removed_at IS NULL ORDER BY created_at, channel_id"
    )))
    .bind(client)
    .fetch_all(pool)
    .await?;
    rows.iter().map(channel_of).collect()
}

pub async fn channel(pool: &AnyPool, channel_id: Uuid) -> Result<Option<ChannelView>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS} FROM rm_channels WHERE channel_id = $1 AND removed_at IS NULL"
    )))
    .bind(channel_id.to_string())
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(channel_of).transpose()
}

#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub notification_id: Uuid,
    pub client: String,
    pub channel_id: Uuid,
    pub slug: String,
    pub payload: Value,
    pub attempts: i64,
    pub kind: String,
    pub config: Value,
}

/// Notifications ready to send at `now`: per channel only the oldest pending one, so that a
/// channel receives its notifications in order.
pub async fn due(pool: &AnyPool, now: DateTime<Utc>, limit: i64) -> Result<Vec<OutboxItem>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT o.notification_id, o.client, o.channel_id, o.slug, o.payload, o.attempts, c.kind, c.config
         FROM rm_outbox o JOIN rm_channels c ON c.channel_id = o.channel_id
         WHERE o.state = 'pending' AND o.next_attempt_at <= $1
           AND NOT EXISTS (SELECT 1 FROM rm_outbox p
                           WHERE p.channel_id = o.channel_id AND p.state = 'pending' AND p.position < o.position)
         ORDER BY o.position LIMIT $2",
    )
    .bind(fmt_time(now))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let decode = |e: uuid::Error| sqlx::Error::Decode(Box::new(e));
            let json = |s: String| serde_json::from_str::<Value>(&s).map_err(|e| sqlx::Error::Decode(Box::new(e)));
            Ok(OutboxItem {
                notification_id: Uuid::parse_str(&row.try_get::<String, _>("notification_id")?).map_err(decode)?,
                client: row.try_get("client")?,
                channel_id: Uuid::parse_str(&row.try_get::<String, _>("channel_id")?).map_err(decode)?,
                slug: row.try_get("slug")?,
                payload: json(row.try_get("payload")?)?,
                attempts: row.try_get("attempts")?,
                kind: row.try_get("kind")?,
                config: json(row.try_get("config")?)?,
            })
        })
        .collect()
}

/// The earliest time a pending notification becomes due.
pub async fn next_due_at(pool: &AnyPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let at: Option<String> = sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM rm_outbox WHERE state = 'pending'")
        .fetch_one(pool)
        .await?;
    Ok(read_time(at))
}
