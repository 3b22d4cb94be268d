//! Clients and their API keys (ids, hashes and metadata; never a secret).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, AnyPool, Row};
use telltale_domain::DomainEvent;
use telltale_domain::client::{ClientEvent, Scope};

use super::{opt_time, read_time};
use crate::log::fmt_time;
use crate::{Envelope, Projection};

pub struct ClientsProjection;

#[async_trait]
impl Projection for ClientsProjection {
    fn name(&self) -> &'static str {
        "clients"
    }
    fn version(&self) -> i32 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_clients", "rm_keys"]
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[&Envelope]) -> Result<(), sqlx::Error> {
        for envelope in events {
            let DomainEvent::Client(event) = &envelope.event else { continue };
            let Some(client) = envelope.stream_id.strip_prefix("client:") else { continue };
            match event {
                ClientEvent::ClientRegistered(e) => {
                    sqlx::query("INSERT INTO rm_clients (client, display_name, created_at) VALUES ($1, $2, $3)")
                        .bind(client)
                        .bind(&e.display_name)
                        .bind(fmt_time(e.at))
                        .execute(&mut *conn)
                        .await?;
                }
                ClientEvent::KeyIssued(e) => {
                    let scopes: Vec<&str> = e.scopes.iter().map(|s| s.as_str()).collect();
                    sqlx::query(
                        "INSERT INTO rm_keys (key_id, client, secret_hash, scopes, label, created_at, expires_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&e.key_id)
                    .bind(client)
                    .bind(&e.secret_hash)
                    .bind(scopes.join(" "))
                    .bind(&e.label)
                    .bind(fmt_time(e.at))
                    .bind(opt_time(e.expires_at))
                    .execute(&mut *conn)
                    .await?;
                }
                ClientEvent::KeyRevoked(e) => {
                    sqlx::query("UPDATE rm_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL")
                        .bind(fmt_time(e.at))
                        .bind(&e.key_id)
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
pub struct KeyRecord {
    pub key_id: String,
    pub client: String,
    pub secret_hash: String,
    pub scopes: Vec<Scope>,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn find_key(pool: &AnyPool, key_id: &str) -> Result<Option<KeyRecord>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT key_id, client, secret_hash, scopes, label, created_at, expires_at, revoked_at FROM rm_keys WHERE key_id = $1",
    )
    .bind(key_id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let scopes: String = row.try_get("scopes")?;
    Ok(Some(KeyRecord {
        key_id: row.try_get("key_id")?,
        client: row.try_get("client")?,
        secret_hash: row.try_get("secret_hash")?,
        scopes: scopes.split_whitespace().filter_map(Scope::parse).collect(),
        label: row.try_get("label")?,
        created_at: read_time(row.try_get("created_at")?).unwrap_or_default(),
        expires_at: read_time(row.try_get("expires_at")?),
        revoked_at: read_time(row.try_get("revoked_at")?),
    }))
}

pub async fn client_names(pool: &AnyPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT client FROM rm_clients ORDER BY client").fetch_all(pool).await
}
