//! Runs: one row per run of a monitor, for the API and the dashboard.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use telltale_domain::DomainEvent;
use telltale_domain::ids::streams;
use telltale_domain::monitor::{MonitorEvent, RunFinished};

use super::{opt_time, read_time};
use crate::log::fmt_time;
use crate::{Envelope, Projection};

pub struct RunsProjection;

/// What one event does to the runs table. Pure function of the envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum RunChange {
    Started {
        run_id: String,
        at: String,
        host: Option<String>,
    },
    Finished {
        run_id: String,
        status: &'static str,
        run: Box<RunFinished>,
    },
    TimedOut {
        run_id: String,
        at: String,
    },
    /// A monitor created again under a slug forgets the runs of its predecessor.
    Reset,
}

pub fn change_of(event: &MonitorEvent) -> Option<RunChange> {
    Some(match event {
        MonitorEvent::RunStarted(e) => {
            RunChange::Started { run_id: e.run_id.clone(), at: fmt_time(e.at), host: e.details.host.clone() }
        }
        MonitorEvent::RunCompleted(e) => {
            RunChange::Finished { run_id: e.run_id.clone(), status: "completed", run: Box::new(e.clone()) }
        }
        MonitorEvent::RunFailed(e) => {
            RunChange::Finished { run_id: e.run_id.clone(), status: "failed", run: Box::new(e.clone()) }
        }
        MonitorEvent::RunTimedOut(e) => RunChange::TimedOut { run_id: e.run_id.clone(), at: fmt_time(e.deadline) },
        MonitorEvent::MonitorCreated(_) => RunChange::Reset,
        _ => return None,
    })
}

#[async_trait]
impl Projection for RunsProjection {
    fn name(&self) -> &'static str {
        "runs"
    }
    fn version(&self) -> i32 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_runs"]
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[&Envelope]) -> Result<(), sqlx::Error> {
        for envelope in events {
            let DomainEvent::Monitor(event) = &envelope.event else { continue };
            let Some(change) = change_of(event) else { continue };
            let Some((client, slug)) = streams::parse_monitor(&envelope.stream_id) else { continue };
            match change {
                RunChange::Reset => {
                    sqlx::query("DELETE FROM rm_runs WHERE client = $1 AND slug = $2")
                        .bind(client)
                        .bind(slug)
                        .execute(&mut *conn)
                        .await?;
                }
                RunChange::Started { run_id, at, host } => {
                    sqlx::query(
                        "INSERT INTO rm_runs (client, slug, run_id, first_position, status, started_at, host)
                         VALUES ($1, $2, $3, $4, 'running', $5, $6)
                         ON CONFLICT (client, slug, run_id) DO UPDATE SET
                           status = 'running', started_at = excluded.started_at, finished_at = NULL,
                           timed_out_at = NULL, host = COALESCE(excluded.host, rm_runs.host)",
                    )
                    .bind(client)
                    .bind(slug)
                    .bind(&run_id)
                    .bind(envelope.position)
                    .bind(&at)
                    .bind(&host)
                    .execute(&mut *conn)
                    .await?;
                }
                RunChange::Finished { run_id, status, run } => {
                    sqlx::query(
                        "INSERT INTO rm_runs (client, slug, run_id, first_position, status, started_at, finished_at,
                           exit_code, duration_ms, host, output, output_lossy, message)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                         ON CONFLICT (client, slug, run_id) DO UPDATE SET
                           status = excluded.status, started_at = COALESCE(excluded.started_at, rm_runs.started_at),
                           finished_at = excluded.finished_at, exit_code = excluded.exit_code,
                           duration_ms = excluded.duration_ms, host = COALESCE(excluded.host, rm_runs.host),
                           output = excluded.output, output_lossy = excluded.output_lossy, message = excluded.message",
                    )
                    .bind(client)
                    .bind(slug)
                    .bind(&run_id)
                    .bind(envelope.position)
                    .bind(status)
                    .bind(opt_time(run.started_at))
                    .bind(fmt_time(run.at))
                    .bind(run.exit_code)
                    .bind(run.duration_ms)
                    .bind(&run.details.host)
                    .bind(&run.output)
                    .bind(run.output_lossy as i32)
                    .bind(&run.details.message)
                    .execute(&mut *conn)
                    .await?;
                }
                RunChange::TimedOut { run_id, at } => {
                    sqlx::query(
                        "UPDATE rm_runs SET status = 'timed_out', timed_out_at = $4
                         WHERE client = $1 AND slug = $2 AND run_id = $3 AND status = 'running'",
                    )
                    .bind(client)
                    .bind(slug)
                    .bind(&run_id)
                    .bind(&at)
                    .execute(&mut *conn)
                    .await?;
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    pub run_id: String,
    pub first_position: i64,
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub timed_out_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<i64>,
    pub host: Option<String>,
    pub output: Option<String>,
    pub output_lossy: bool,
    pub message: Option<String>,
}

fn view_of(row: &AnyRow) -> Result<RunView, sqlx::Error> {
    Ok(RunView {
        run_id: row.try_get("run_id")?,
        first_position: row.try_get("first_position")?,
        status: row.try_get("status")?,
        started_at: read_time(row.try_get("started_at")?),
        finished_at: read_time(row.try_get("finished_at")?),
        timed_out_at: read_time(row.try_get("timed_out_at")?),
        exit_code: row.try_get::<Option<i64>, _>("exit_code")?.map(|c| c as i32),
        duration_ms: row.try_get("duration_ms")?,
        host: row.try_get("host")?,
        output: row.try_get("output")?,
        output_lossy: row.try_get::<i64, _>("output_lossy")? != 0,
        message: row.try_get("message")?,
    })
}

/// A page of a monitor's runs, newest first (by when telltale first heard of each).
pub async fn page(
    pool: &AnyPool,
    client: &str,
    slug: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<RunView>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT run_id, first_position, status, started_at, finished_at, timed_out_at, exit_code, duration_ms,
                host, output, output_lossy, message
         FROM rm_runs WHERE client = $1 AND slug = $2 AND first_position < $3
         ORDER BY first_position DESC LIMIT $4",
    )
    .bind(client)
    .bind(slug)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(view_of).collect()
}
