//! Every monitor's event history, newest first, for the API and the dashboard.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use telltale_domain::DomainEvent;
use telltale_domain::EventPayload;
use telltale_domain::ids::streams;

use super::read_time;
use crate::log::fmt_time;
use crate::{Envelope, Projection};

pub struct HistoryProjection;

/// One history row, as written. Pure function of the envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub position: i64,
    pub client: String,
    pub slug: String,
    pub event_type: String,
    pub at: String,
    pub run_id: Option<String>,
    pub data: String,
}

pub fn row_of(envelope: &Envelope) -> Option<HistoryRow> {
    let DomainEvent::Monitor(event) = &envelope.event else { return None };
    let (client, slug) = streams::parse_monitor(&envelope.stream_id)?;
    Some(HistoryRow {
        position: envelope.position,
        client: client.to_string(),
        slug: slug.to_string(),
        event_type: event.event_type().to_string(),
        at: fmt_time(event.at()),
        run_id: event.run_id().map(str::to_string),
        data: event.encode().data.to_string(),
    })
}

#[async_trait]
impl Projection for HistoryProjection {
    fn name(&self) -> &'static str {
        "history"
    }
    fn version(&self) -> i32 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_events"]
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[&Envelope]) -> Result<(), sqlx::Error> {
        let rows: Vec<HistoryRow> = events.iter().filter_map(|e| row_of(e)).collect();
        // Many rows per statement: a heartbeat flood is mostly this table.
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut sql =
                String::from("INSERT INTO rm_events (position, client, slug, event_type, at, run_id, data) VALUES ");
            for i in 0..chunk.len() {
                let b = i * 7;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7
                ));
            }
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                query = query
                    .bind(row.position)
                    .bind(&row.client)
                    .bind(&row.slug)
                    .bind(&row.event_type)
                    .bind(&row.at)
                    .bind(&row.run_id)
                    .bind(&row.data);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// Rows in one multi-row INSERT (7 parameters each, well under every backend's limit).
const ROWS_PER_INSERT: usize = 100;

#[derive(Debug, Clone)]
pub struct HistoryItem {
    pub position: i64,
    pub event_type: String,
    pub at: DateTime<Utc>,
    pub run_id: Option<String>,
    pub data: Value,
}

fn item_of(row: &AnyRow) -> Result<HistoryItem, sqlx::Error> {
    let data: String = row.try_get("data")?;
    Ok(HistoryItem {
        position: row.try_get("position")?,
        event_type: row.try_get("event_type")?,
        at: read_time(row.try_get("at")?).unwrap_or_default(),
        run_id: row.try_get("run_id")?,
        data: serde_json::from_str(&data).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
    })
}

/// A page of a monitor's history, newest first: positions below `before` (all when `None`),
/// optionally of one event type.
pub async fn page(
    pool: &AnyPool,
    client: &str,
    slug: &str,
    before: Option<i64>,
    event_type: Option<&str>,
    limit: i64,
) -> Result<Vec<HistoryItem>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT position, event_type, at, run_id, data FROM rm_events
         WHERE client = $1 AND slug = $2 AND position < $3 AND ($4 = '' OR event_type = $4)
         ORDER BY position DESC LIMIT $5",
    )
    .bind(client)
    .bind(slug)
    .bind(before.unwrap_or(i64::MAX))
    .bind(event_type.unwrap_or(""))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(item_of).collect()
}

/// How many history rows a monitor has, optionally of one type.
pub async fn count(pool: &AnyPool, client: &str, slug: &str, event_type: Option<&str>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM rm_events WHERE client = $1 AND slug = $2 AND ($3 = '' OR event_type = $3)",
    )
    .bind(client)
    .bind(slug)
    .bind(event_type.unwrap_or(""))
    .fetch_one(pool)
    .await
}
