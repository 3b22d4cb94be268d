//! Current status of every monitor. The fold is the domain's own `evolve`: the row is derived
//! from the same state the write side decides with, so the two can never disagree about what
//! "down" means.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use telltale_domain::ids::streams;
use telltale_domain::monitor::{Monitor, MonitorAggregate};
use telltale_domain::system::SystemEvent;
use telltale_domain::{Aggregate, DomainEvent};

use super::{opt_time, read_time};
use crate::log::fmt_time;
use crate::{Envelope, Projection};

pub struct MonitorsProjection;

const STARTED_KEY: &str = "monitors.service_started_at";

/// One row of `rm_monitors`, as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorRow {
    pub client: String,
    pub slug: String,
    pub deleted: bool,
    pub name: String,
    pub status: String,
    pub paused: bool,
    pub schedule: String,
    pub grace_ms: i64,
    pub max_runtime_ms: Option<i64>,
    pub tags: String,
    pub created_at: String,
    pub updated_at: String,
    pub last_signal_at: Option<String>,
    pub last_heartbeat_at: Option<String>,
    pub host: Option<String>,
    pub last_run: Option<String>,
    pub open_runs: i64,
    pub expected_at: Option<String>,
    pub next_deadline_at: Option<String>,
    pub open_alerts: String,
    pub state: String,
}

/// The row for a monitor state. Pure.
pub fn row_of(state: &Monitor, updated_at: DateTime<Utc>, service_started_at: Option<DateTime<Utc>>) -> MonitorRow {
    let config = state.config.as_ref();
    let deadline = match service_started_at {
        Some(started) => state.effective_deadline(started),
        None => state.deadline.filter(|_| state.exists() && !state.paused),
    };
    let alerts: Vec<serde_json::Value> = state
        .alerts
        .iter()
        .map(|(cause, a)| serde_json::json!({"alert_id": a.alert_id, "cause": cause, "opened_at": fmt_time(a.opened_at)}))
        .collect();
    MonitorRow {
        client: state.client.clone(),
        slug: state.slug.clone(),
        deleted: !state.exists(),
        name: config.map(|c| c.name.clone()).unwrap_or_default(),
        status: state.status().as_str().to_string(),
        paused: state.paused,
        schedule: config.map(|c| serde_json::to_string(&c.schedule).unwrap_or_default()).unwrap_or_default(),
        grace_ms: config.map_or(0, |c| c.grace.as_millis()),
        max_runtime_ms: config.and_then(|c| c.max_runtime).map(|r| r.as_millis()),
        tags: serde_json::to_string(&config.map(|c| c.tags.clone()).unwrap_or_default()).unwrap_or_default(),
        created_at: state.created_at.map(fmt_time).unwrap_or_default(),
        updated_at: fmt_time(updated_at),
        last_signal_at: opt_time(state.last_signal_at),
        last_heartbeat_at: opt_time(state.last_heartbeat_at),
        host: state.host.clone(),
        last_run: state.last_run.as_ref().map(|r| serde_json::to_string(r).unwrap_or_default()),
        open_runs: state.open_runs.len() as i64,
        expected_at: opt_time(deadline.zip(config).map(|(d, c)| d - c.grace.to_delta())),
        next_deadline_at: opt_time(deadline),
        open_alerts: serde_json::Value::Array(alerts).to_string(),
        state: serde_json::to_string(state).unwrap_or_default(),
    }
}

async fn load_state(
    conn: &mut AnyConnection,
    client: &str,
    slug: &str,
) -> Result<Option<(Monitor, String)>, sqlx::Error> {
    let row = sqlx::query("SELECT state, updated_at FROM rm_monitors WHERE client = $1 AND slug = $2")
        .bind(client)
        .bind(slug)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let state: String = row.try_get("state")?;
    let state: Monitor = serde_json::from_str(&state).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(Some((state, row.try_get("updated_at")?)))
}

async fn upsert(conn: &mut AnyConnection, row: &MonitorRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rm_monitors (client, slug, deleted, name, status, paused, schedule, grace_ms, max_runtime_ms,
             tags, created_at, updated_at, last_signal_at, last_heartbeat_at, host, last_run, open_runs,
             expected_at, next_deadline_at, open_alerts, state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
         ON CONFLICT (client, slug) DO UPDATE SET deleted = excluded.deleted, name = excluded.name,
             status = excluded.status, paused = excluded.paused, schedule = excluded.schedule,
             grace_ms = excluded.grace_ms, max_runtime_ms = excluded.max_runtime_ms, tags = excluded.tags,
             created_at = excluded.created_at, updated_at = excluded.updated_at,
             last_signal_at = excluded.last_signal_at, last_heartbeat_at = excluded.last_heartbeat_at,
             host = excluded.host, last_run = excluded.last_run, open_runs = excluded.open_runs,
             expected_at = excluded.expected_at, next_deadline_at = excluded.next_deadline_at,
             open_alerts = excluded.open_alerts, state = excluded.state",
    )
    .bind(&row.client)
    .bind(&row.slug)
    .bind(row.deleted as i64)
    .bind(&row.name)
    .bind(&row.status)
    .bind(row.paused as i64)
    .bind(&row.schedule)
    .bind(row.grace_ms)
    .bind(row.max_runtime_ms)
    .bind(&row.tags)
    .bind(&row.created_at)
    .bind(&row.updated_at)
    .bind(&row.last_signal_at)
    .bind(&row.last_heartbeat_at)
    .bind(&row.host)
    .bind(&row.last_run)
    .bind(row.open_runs)
    .bind(&row.expected_at)
    .bind(&row.next_deadline_at)
    .bind(&row.open_alerts)
    .bind(&row.state)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Projection for MonitorsProjection {
    fn name(&self) -> &'static str {
        "monitors"
    }
    fn version(&self) -> i32 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_monitors", "rm_meta"]
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[&Envelope]) -> Result<(), sqlx::Error> {
        let started_row: Option<String> = sqlx::query_scalar("SELECT value FROM rm_meta WHERE key = $1")
            .bind(STARTED_KEY)
            .fetch_optional(&mut *conn)
            .await?;
        let mut started = read_time(started_row);
        let mut restarted = false;
        let mut touched: BTreeMap<(String, String), (Monitor, DateTime<Utc>)> = BTreeMap::new();
        for envelope in events {
            match &envelope.event {
                DomainEvent::Monitor(event) => {
                    let Some((client, slug)) = streams::parse_monitor(&envelope.stream_id) else { continue };
                    let key = (client.to_string(), slug.to_string());
                    let state = match touched.remove(&key) {
                        Some((state, _)) => state,
                        None => load_state(conn, client, slug).await?.map(|(s, _)| s).unwrap_or_default(),
                    };
                    touched.insert(key, (MonitorAggregate::evolve(state, event), envelope.recorded_at));
                }
                DomainEvent::System(SystemEvent::ServiceStarted(s)) => {
                    started = Some(s.at);
                    restarted = true;
                }
                _ => {}
            }
        }
        if restarted {
            let at = started.map(fmt_time).unwrap_or_default();
            sqlx::query("INSERT INTO rm_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                .bind(STARTED_KEY)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            // Every deadline moves with a restart: refresh the rows this batch did not touch.
            let rows =
                sqlx::query("SELECT client, slug FROM rm_monitors WHERE deleted = 0").fetch_all(&mut *conn).await?;
            let keys: Vec<(String, String)> = rows
                .iter()
                .map(|r: &AnyRow| Ok((r.try_get("client")?, r.try_get("slug")?)))
                .collect::<Result<_, sqlx::Error>>()?;
            for (client, slug) in keys {
                if touched.contains_key(&(client.clone(), slug.clone())) {
                    continue;
                }
                if let Some((state, updated_at)) = load_state(conn, &client, &slug).await? {
                    let updated = crate::log::parse_time(&updated_at).unwrap_or_default();
                    upsert(conn, &row_of(&state, updated, started)).await?;
                }
            }
        }
        for (state, updated_at) in touched.values() {
            upsert(conn, &row_of(state, *updated_at, started)).await?;
        }
        Ok(())
    }
}

// ---- queries ------------------------------------------------------------------------------

/// A monitor as the API and dashboard read it.
#[derive(Debug, Clone)]
pub struct MonitorView {
    pub state: Monitor,
    pub updated_at: Option<DateTime<Utc>>,
    pub expected_at: Option<DateTime<Utc>>,
    pub next_deadline_at: Option<DateTime<Utc>>,
}

fn view_of(row: &AnyRow) -> Result<MonitorView, sqlx::Error> {
    let state: String = row.try_get("state")?;
    let state: Monitor = serde_json::from_str(&state).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(MonitorView {
        state,
        updated_at: read_time(row.try_get("updated_at")?),
        expected_at: read_time(row.try_get("expected_at")?),
        next_deadline_at: read_time(row.try_get("next_deadline_at")?),
    })
}

const VIEW_COLUMNS: &str = "state, updated_at, expected_at, next_deadline_at";

/// Live monitors, of one client or (for `None`) of every client, ordered by client and slug.
pub async fn list(pool: &AnyPool, client: Option<&str>) -> Result<Vec<MonitorView>, sqlx::Error> {
    let rows = match client {
        Some(client) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {VIEW_COLUMNS} FROM rm_monitors WHERE deleted = 0 AND client = $1 ORDER BY slug"
            )))
            .bind(client)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {VIEW_COLUMNS} FROM rm_monitors WHERE deleted = 0 ORDER BY client, slug"
            )))
            .fetch_all(pool)
            .await?
        }
    };
    rows.iter().map(view_of).collect()
}

pub async fn get(pool: &AnyPool, client: &str, slug: &str) -> Result<Option<MonitorView>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {VIEW_COLUMNS} FROM rm_monitors WHERE deleted = 0 AND client = $1 AND slug = $2"
    )))
    .bind(client)
    .bind(slug)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(view_of).transpose()
}
