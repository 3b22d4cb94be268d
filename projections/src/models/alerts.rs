//! Alerts: one row per incident, open until resolved.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use telltale_domain::DomainEvent;
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
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_alerts"]
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[&Envelope]) -> Result<(), sqlx::Error> {
        for envelope in events {
            let DomainEvent::Monitor(event) = &envelope.event else { continue };
            let Some((client, slug)) = streams::parse_monitor(&envelope.stream_id) else { continue };
            match event {
                MonitorEvent::AlertOpened(e) => {
                    sqlx::query(
                        "INSERT INTO rm_alerts (alert_id, client, slug, cause, state, opened_at, message, position)
                         VALUES ($1, $2, $3, $4, 'open', $5, $6, $7)",
                    )
                    .bind(e.alert_id.to_string())
                    .bind(client)
                    .bind(slug)
                    .bind(e.cause.as_str())
                    .bind(fmt_time(e.opened_at))
                    .bind(&e.message)
                    .bind(envelope.position)
                    .execute(&mut *conn)
                    .await?;
                }
                MonitorEvent::AlertResolved(e) => {
                    sqlx::query("UPDATE rm_alerts SET state = 'resolved', resolved_at = $1, resolution = $2 WHERE alert_id = $3")
                        .bind(fmt_time(e.resolved_at))
                        .bind(&e.message)
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
    })
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
    let rows = sqlx::query(
        "SELECT alert_id, client, slug, cause, state, opened_at, resolved_at, message, resolution FROM rm_alerts
         WHERE ($1 = '' OR client = $1) AND ($2 = '' OR state = $2) AND ($3 = '' OR slug = $3)
         ORDER BY position DESC LIMIT $4",
    )
    .bind(client.unwrap_or(""))
    .bind(state.unwrap_or(""))
    .bind(slug.unwrap_or(""))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(view_of).collect()
}
