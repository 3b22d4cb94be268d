//! Every host of every client: its members, which are silent, and its open host alert. The fold
//! is the Host aggregate's own `evolve`, so the read side and the decisions never disagree.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use telltale_domain::host::{Host, HostAggregate};
use telltale_domain::ids::streams;
use telltale_domain::{Aggregate, DomainEvent};

use super::read_time;
use crate::log::fmt_time;
use crate::{Envelope, Projection};

pub struct HostsProjection;

/// One row of `rm_hosts`, as written. Pure.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRow {
    pub client: String,
    pub host: String,
    pub members: i64,
    pub silent: i64,
    pub alert_id: Option<String>,
    pub updated_at: String,
    pub state: String,
}

pub fn row_of(client: &str, host: &str, state: &Host, updated_at: DateTime<Utc>) -> HostRow {
    HostRow {
        client: client.to_string(),
        host: host.to_string(),
        members: state.members.len() as i64,
        silent: state.silent().count() as i64,
        alert_id: state.alert.as_ref().map(|a| a.alert_id.to_string()),
        updated_at: fmt_time(updated_at),
        state: serde_json::to_string(state).unwrap_or_default(),
    }
}

async fn load(conn: &mut AnyConnection, client: &str, host: &str) -> Result<Host, sqlx::Error> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM rm_hosts WHERE client = $1 AND host = $2")
        .bind(client)
        .bind(host)
        .fetch_optional(&mut *conn)
        .await?;
    match state {
        Some(state) => serde_json::from_str(&state).map_err(|e| sqlx::Error::Decode(Box::new(e))),
        None => Ok(Host::default()),
    }
}

#[async_trait]
impl Projection for HostsProjection {
    fn name(&self) -> &'static str {
        "hosts"
    }
    fn version(&self) -> i32 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_hosts"]
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[&Envelope]) -> Result<(), sqlx::Error> {
        let mut touched: BTreeMap<(String, String), (Host, DateTime<Utc>)> = BTreeMap::new();
        for envelope in events {
            let DomainEvent::Host(event) = &envelope.event else { continue };
            let Some((client, host)) = streams::parse_host(&envelope.stream_id) else { continue };
            let key = (client.to_string(), host.to_string());
            let state = match touched.remove(&key) {
                Some((state, _)) => state,
                None => load(conn, client, host).await?,
            };
            touched.insert(key, (HostAggregate::evolve(state, event), envelope.recorded_at));
        }
        for ((client, host), (state, at)) in &touched {
            let row = row_of(client, host, state, *at);
            sqlx::query(
                "INSERT INTO rm_hosts (client, host, members, silent, alert_id, updated_at, state)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (client, host) DO UPDATE SET members = excluded.members, silent = excluded.silent,
                     alert_id = excluded.alert_id, updated_at = excluded.updated_at, state = excluded.state",
            )
            .bind(&row.client)
            .bind(&row.host)
            .bind(row.members)
            .bind(row.silent)
            .bind(&row.alert_id)
            .bind(&row.updated_at)
            .bind(&row.state)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

// ---- queries ------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct HostView {
    pub client: String,
    pub host: String,
    pub state: Host,
    pub updated_at: Option<DateTime<Utc>>,
}

fn view_of(row: &AnyRow) -> Result<HostView, sqlx::Error> {
    let state: String = row.try_get("state")?;
    Ok(HostView {
        client: row.try_get("client")?,
        host: row.try_get("host")?,
        state: serde_json::from_str(&state).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        updated_at: read_time(row.try_get("updated_at")?),
    })
}

/// Hosts with at least one monitor or an open host alert, of one client or (for `None`) of
/// every client, ordered by client and host.
pub async fn list(pool: &AnyPool, client: Option<&str>) -> Result<Vec<HostView>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT client, host, state, updated_at FROM rm_hosts
         WHERE ($1 = '' OR client = $1) AND (members > 0 OR alert_id IS NOT NULL) ORDER BY client, host",
    )
    .bind(client.unwrap_or(""))
    .fetch_all(pool)
    .await?;
    rows.iter().map(view_of).collect()
}

pub async fn get(pool: &AnyPool, client: &str, host: &str) -> Result<Option<HostView>, sqlx::Error> {
    let row = sqlx::query("SELECT client, host, state, updated_at FROM rm_hosts WHERE client = $1 AND host = $2")
        .bind(client)
        .bind(host)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(view_of).transpose()
}
