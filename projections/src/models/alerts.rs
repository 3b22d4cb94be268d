//! Alerts: one row per incident, open until resolved: a monitor's (missed, failed, timed out)
//! and a host's (`host_silent`, when most of its monitors fell silent together). A monitor's
//! alert that a host alert inhibited names it, and says when it was released.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use telltale_domain::DomainEvent;
use telltale_domain::host::{HOST_SILENT, HostEvent};
use telltale_domain::ids::streams;
use telltale_domain::monitor::MonitorEvent;
use uuid::Uuid;

use super::read_time;
use crate::log::fmt_time;
use crate::{Envelope, Projection};

pub struct AlertsProjection;

#[async_trait]
impl Projection for AlertsProjection {
    fn name(&self) -> &'static str {
        "alerts"
    }
    fn version(&self) -> i32 {
        2
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_alerts"]
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[&Envelope]) -> Result<(), sqlx::Error> {
        for envelope in events {
            if let DomainEvent::Host(event) = &envelope.event {
                apply_host(conn, envelope, event).await?;
                continue;
            }
            let DomainEvent::Monitor(event) = &envelope.event else { continue };
            let Some((client, slug)) = streams::parse_monitor(&envelope.stream_id) else { continue };
            let update = |sql: &'static str| sqlx::query(sql);
            match event {
                MonitorEvent::AlertOpened(e) => {
                    sqlx::query(
                        "INSERT INTO rm_alerts (alert_id, client, slug, cause, state, opened_at, message, position, held,
                             announced_at)
                         VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $8, $9)",
                    )
                    .bind(e.alert_id.to_string())
                    .bind(client)
                    .bind(slug)
                    .bind(e.cause.as_str())
                    .bind(fmt_time(e.opened_at))
                    .bind(&e.message)
                    .bind(envelope.position)
                    .bind(e.held.map(|h| h.as_str()))
                    .bind(e.held.is_none().then(|| fmt_time(e.opened_at)))
                    .execute(&mut *conn)
                    .await?;
                }
                MonitorEvent::AlertResolved(e) => {
                    update(
                        "UPDATE rm_alerts SET state = 'resolved', resolved_at = $1, resolution = $2, quiet = $3
                         WHERE alert_id = $4",
                    )
                    .bind(fmt_time(e.resolved_at))
                    .bind(&e.message)
                    .bind(e.quiet as i64)
                    .bind(e.alert_id.to_string())
                    .execute(&mut *conn)
                    .await?;
                }
                MonitorEvent::AlertAnnounced(e) => {
                    update("UPDATE rm_alerts SET held = NULL, announced_at = $1 WHERE alert_id = $2")
                        .bind(fmt_time(e.at))
                        .bind(e.alert_id.to_string())
                        .execute(&mut *conn)
                        .await?;
                }
                MonitorEvent::AlertRecovered(e) => {
                    update("UPDATE rm_alerts SET recovered_at = $1 WHERE alert_id = $2")
                        .bind(fmt_time(e.at))
                        .bind(e.alert_id.to_string())
                        .execute(&mut *conn)
                        .await?;
                }
                MonitorEvent::AlertRecurred(e) => {
                    update("UPDATE rm_alerts SET recovered_at = NULL WHERE alert_id = $1")
                        .bind(e.alert_id.to_string())
                        .execute(&mut *conn)
                        .await?;
                }
                MonitorEvent::AlertReminded(e) => {
                    update("UPDATE rm_alerts SET reminders = $1 WHERE alert_id = $2")
                        .bind(i64::from(e.reminder))
                        .bind(e.alert_id.to_string())
                        .execute(&mut *conn)
                        .await?;
                }
                MonitorEvent::AlertEscalated(e) => {
                    update("UPDATE rm_alerts SET escalated_at = $1 WHERE alert_id = $2")
                        .bind(fmt_time(e.at))
                        .bind(e.alert_id.to_string())
                        .execute(&mut *conn)
                        .await?;
                }
                MonitorEvent::AlertAcknowledged(e) => {
                    update("UPDATE rm_alerts SET acknowledged_at = $1, acknowledged_by = $2, ack_note = $3 WHERE alert_id = $4")
                        .bind(fmt_time(e.at))
                        .bind(&e.by)
                        .bind(&e.note)
                        .bind(e.alert_id.to_string())
                        .execute(&mut *conn)
                        .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The slug column of a host alert: `host:<host>` (a monitor slug never holds `:`).
pub fn host_alert_slug(host: &str) -> String {
    format!("host:{host}")
}

async fn apply_host(conn: &mut AnyConnection, envelope: &Envelope, event: &HostEvent) -> Result<(), sqlx::Error> {
    let Some((client, host)) = streams::parse_host(&envelope.stream_id) else { return Ok(()) };
    match event {
        HostEvent::HostAlertOpened(e) => {
            sqlx::query(
                "INSERT INTO rm_alerts (alert_id, client, slug, cause, state, opened_at, message, position, kind, host, monitors,
                     announced_at)
                 VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, 'host', $8, $9, $5)",
            )
            .bind(e.alert_id.to_string())
            .bind(client)
            .bind(host_alert_slug(host))
            .bind(HOST_SILENT)
            .bind(fmt_time(e.opened_at))
            .bind(&e.message)
            .bind(envelope.position)
            .bind(host)
            .bind(serde_json::to_string(&e.monitors).unwrap_or_default())
            .execute(&mut *conn)
            .await?;
        }
        HostEvent::MonitorAlertInhibited(e) => {
            sqlx::query("UPDATE rm_alerts SET inhibited_by = $1 WHERE alert_id = $2")
                .bind(e.host_alert_id.to_string())
                .bind(e.alert_id.to_string())
                .execute(&mut *conn)
                .await?;
            let monitors: Option<String> = sqlx::query_scalar("SELECT monitors FROM rm_alerts WHERE alert_id = $1")
                .bind(e.host_alert_id.to_string())
                .fetch_optional(&mut *conn)
                .await?
                .flatten();
            let mut list: Vec<String> = monitors.and_then(|m| serde_json::from_str(&m).ok()).unwrap_or_default();
            if !list.contains(&e.slug) {
                list.push(e.slug.clone());
                list.sort();
                sqlx::query("UPDATE rm_alerts SET monitors = $1 WHERE alert_id = $2")
                    .bind(serde_json::to_string(&list).unwrap_or_default())
                    .bind(e.host_alert_id.to_string())
                    .execute(&mut *conn)
                    .await?;
            }
        }
        HostEvent::HostAlertResolved(e) => {
            sqlx::query(
                "UPDATE rm_alerts SET state = 'resolved', resolved_at = $1, resolution = $2 WHERE alert_id = $3",
            )
            .bind(fmt_time(e.resolved_at))
            .bind(&e.message)
            .bind(e.alert_id.to_string())
            .execute(&mut *conn)
            .await?;
        }
        HostEvent::MonitorAlertReleased(e) => {
            sqlx::query("UPDATE rm_alerts SET released_at = $1 WHERE alert_id = $2")
                .bind(fmt_time(e.at))
                .bind(e.alert_id.to_string())
                .execute(&mut *conn)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct AlertView {
    pub alert_id: Uuid,
    pub client: String,
    pub slug: String,
    pub cause: String,
    pub state: String,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub message: String,
    pub resolution: Option<String>,
    /// Why it is not announced (`silenced`, `maintenance`, `flapping`); `None` once announced.
    pub held: Option<String>,
    pub announced_at: Option<DateTime<Utc>>,
    /// Resolved without anyone having been told of it.
    pub quiet: bool,
    /// Its trouble ended while alerts were held; the resolution is announced when the hold ends.
    pub recovered_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub ack_note: Option<String>,
    pub reminders: i64,
    pub escalated_at: Option<DateTime<Utc>>,
    /// `monitor` or `host`.
    pub kind: String,
    /// A host alert's host.
    pub host: Option<String>,
    /// A host alert's monitors.
    pub monitors: Vec<String>,
    /// The host alert that inhibited this monitor alert.
    pub inhibited_by: Option<Uuid>,
    /// When an inhibited alert was sent on its own after all.
    pub released_at: Option<DateTime<Utc>>,
}

fn view_of(row: &AnyRow) -> Result<AlertView, sqlx::Error> {
    let id: String = row.try_get("alert_id")?;
    Ok(AlertView {
        alert_id: Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        client: row.try_get("client")?,
        slug: row.try_get("slug")?,
        cause: row.try_get("cause")?,
        state: row.try_get("state")?,
        opened_at: read_time(row.try_get("opened_at")?).unwrap_or_default(),
        resolved_at: read_time(row.try_get("resolved_at")?),
        message: row.try_get("message")?,
        resolution: row.try_get("resolution")?,
        held: row.try_get("held")?,
        announced_at: read_time(row.try_get("announced_at")?),
        quiet: row.try_get::<i64, _>("quiet")? != 0,
        recovered_at: read_time(row.try_get("recovered_at")?),
        acknowledged_at: read_time(row.try_get("acknowledged_at")?),
        acknowledged_by: row.try_get("acknowledged_by")?,
        ack_note: row.try_get("ack_note")?,
        reminders: row.try_get("reminders")?,
        escalated_at: read_time(row.try_get("escalated_at")?),
        kind: row.try_get("kind")?,
        host: row.try_get("host")?,
        monitors: row
            .try_get::<Option<String>, _>("monitors")?
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_default(),
        inhibited_by: row.try_get::<Option<String>, _>("inhibited_by")?.and_then(|id| Uuid::parse_str(&id).ok()),
        released_at: read_time(row.try_get("released_at")?),
    })
}

impl AlertView {
    /// Whether anyone was told it opened: announced, and not inhibited by a host alert (or
    /// released after all).
    pub fn notified(&self) -> bool {
        self.announced_at.is_some() && (self.inhibited_by.is_none() || self.released_at.is_some())
    }
}

const ALERT_COLUMNS: &str = "alert_id, client, slug, cause, state, opened_at, resolved_at, message, resolution, kind, host, monitors, \
     inhibited_by, released_at, held, announced_at, quiet, recovered_at, acknowledged_at, acknowledged_by, ack_note, \
     reminders, escalated_at";

/// One alert by id.
pub async fn find(pool: &AnyPool, alert_id: Uuid) -> Result<Option<AlertView>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ALERT_COLUMNS} FROM rm_alerts WHERE alert_id = $1")))
        .bind(alert_id.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(view_of).transpose()
}

/// Alerts of one client (or all, for `None`), newest first. `state` is `open`, `resolved`, or
/// `None` for both; `slug` narrows to one monitor.
pub async fn list(
    pool: &AnyPool,
    client: Option<&str>,
    state: Option<&str>,
    slug: Option<&str>,
    limit: i64,
) -> Result<Vec<AlertView>, sqlx::Error> {
    list_where(pool, client, state, slug.map(str::to_string), None, limit).await
}

/// A host's own alerts, of one client (or all), newest first.
pub async fn list_for_host(
    pool: &AnyPool,
    client: Option<&str>,
    state: Option<&str>,
    host: &str,
    limit: i64,
) -> Result<Vec<AlertView>, sqlx::Error> {
    list_where(pool, client, state, Some(host_alert_slug(host)), None, limit).await
}

/// Alerts of one kind (`monitor` or `host`), of one client (or all), newest first.
pub async fn list_kind(
    pool: &AnyPool,
    client: Option<&str>,
    state: Option<&str>,
    kind: &str,
    limit: i64,
) -> Result<Vec<AlertView>, sqlx::Error> {
    list_where(pool, client, state, None, Some(kind), limit).await
}

async fn list_where(
    pool: &AnyPool,
    client: Option<&str>,
    state: Option<&str>,
    slug: Option<String>,
    kind: Option<&str>,
    limit: i64,
) -> Result<Vec<AlertView>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ALERT_COLUMNS} FROM rm_alerts
         WHERE ($1 = '' OR client = $1) AND ($2 = '' OR state = $2) AND ($3 = '' OR slug = $3) AND ($4 = '' OR kind = $4)
         ORDER BY position DESC LIMIT $5"
    )))
    .bind(client.unwrap_or(""))
    .bind(state.unwrap_or(""))
    .bind(slug.unwrap_or_default())
    .bind(kind.unwrap_or(""))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(view_of).collect()
}
