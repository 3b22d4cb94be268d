//! Clients and their API keys (ids, hashes and metadata; never a secret).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, AnyPool, Row};
use telltale_domain::DomainEvent;
use telltale_domain::client::{ClientEvent, Rotation, RotationPolicy, Scope};
use telltale_domain::span::Span;

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
        2
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
                    let row = NewKeyRow {
                        key_id: &e.key_id,
                        secret_hash: &e.secret_hash,
                        scopes: &e.scopes,
                        label: e.label.as_deref(),
                        at: e.at,
                        expires_at: e.expires_at,
                        rotation: e.rotation,
                        generation: 0,
                        lineage: &e.key_id,
                        predecessor: None,
                        by: e.by.as_deref(),
                    };
                    insert_key(conn, client, row).await?;
                }
                ClientEvent::KeyRotated(e) => {
                    let lineage: Option<String> = sqlx::query_scalar("SELECT lineage FROM rm_keys WHERE key_id = $1")
                        .bind(&e.key_id)
                        .fetch_optional(&mut *conn)
                        .await?
                        .flatten();
                    sqlx::query(
                        "UPDATE rm_keys SET successor = $1, rotated_at = $2, rotated_by = $3, expires_at = $4
                         WHERE key_id = $5",
                    )
                    .bind(&e.successor_id)
                    .bind(fmt_time(e.at))
                    .bind(&e.by)
                    .bind(fmt_time(e.predecessor_expires_at))
                    .bind(&e.key_id)
                    .execute(&mut *conn)
                    .await?;
                    let row = NewKeyRow {
                        key_id: &e.successor_id,
                        secret_hash: &e.successor_secret_hash,
                        scopes: &e.scopes,
                        label: e.label.as_deref(),
                        at: e.at,
                        expires_at: e.expires_at,
                        rotation: Some(e.rotation),
                        generation: e.generation,
                        lineage: lineage.as_deref().unwrap_or(&e.key_id),
                        predecessor: Some(&e.key_id),
                        by: e.by.as_deref(),
                    };
                    insert_key(conn, client, row).await?;
                }
                ClientEvent::KeyRevoked(e) => {
                    sqlx::query(
                        "UPDATE rm_keys SET revoked_at = $1, revoked_by = $2
                         WHERE key_id = $3 AND revoked_at IS NULL AND expired_at IS NULL",
                    )
                    .bind(fmt_time(e.at))
                    .bind(&e.by)
                    .bind(&e.key_id)
                    .execute(&mut *conn)
                    .await?;
                }
                ClientEvent::KeyExpired(e) => {
                    sqlx::query("UPDATE rm_keys SET expired_at = $1 WHERE key_id = $2")
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

struct NewKeyRow<'a> {
    key_id: &'a str,
    secret_hash: &'a str,
    scopes: &'a [Scope],
    label: Option<&'a str>,
    at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    rotation: Option<RotationPolicy>,
    generation: u32,
    lineage: &'a str,
    predecessor: Option<&'a str>,
    by: Option<&'a str>,
}

async fn insert_key(conn: &mut AnyConnection, client: &str, row: NewKeyRow<'_>) -> Result<(), sqlx::Error> {
    let scopes: Vec<&str> = row.scopes.iter().map(|s| s.as_str()).collect();
    sqlx::query(
        "INSERT INTO rm_keys (key_id, client, secret_hash, scopes, label, created_at, expires_at, generation, lineage,
                              predecessor, rotate_every_ms, overlap_ms, issued_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(row.key_id)
    .bind(client)
    .bind(row.secret_hash)
    .bind(scopes.join(" "))
    .bind(row.label)
    .bind(fmt_time(row.at))
    .bind(opt_time(row.expires_at))
    .bind(i64::from(row.generation))
    .bind(row.lineage)
    .bind(row.predecessor)
    .bind(row.rotation.map(|r| r.every.as_millis()))
    .bind(row.rotation.map(|r| r.overlap.as_millis()))
    .bind(row.by)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A key as the read model holds it: ids, hash and metadata, never a secret.
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
    pub generation: u32,
    pub lineage: String,
    pub predecessor: Option<String>,
    pub successor: Option<String>,
    pub rotation: Option<RotationPolicy>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub rotated_by: Option<String>,
    pub expired_at: Option<DateTime<Utc>>,
    pub issued_by: Option<String>,
    pub revoked_by: Option<String>,
}

impl KeyRecord {
    /// Where it stands in its rotation at `now` (the domain's rule).
    pub fn rotation_at(&self, now: DateTime<Utc>) -> Rotation {
        telltale_domain::keys::rotation_status(
            self.created_at,
            self.rotation,
            self.successor.as_deref(),
            self.expires_at,
            now,
        )
    }

    /// Whether it authenticates requests at `now` (not revoked, not expired; the issue time is
    /// not checked, so that a node whose clock is a little behind accepts a key just issued).
    pub fn valid_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none_or(|r| now < r) && self.expires_at.is_none_or(|e| now < e) && self.expired_at.is_none()
    }
}

const KEY_COLUMNS: &str = "key_id, client, secret_hash, scopes, label, created_at, expires_at, revoked_at, generation,
    lineage, predecessor, successor, rotate_every_ms, overlap_ms, rotated_at, rotated_by, expired_at, issued_by,
    revoked_by";

fn key_of(row: &sqlx::any::AnyRow) -> Result<KeyRecord, sqlx::Error> {
    let scopes: String = row.try_get("scopes")?;
    let every: Option<i64> = row.try_get("rotate_every_ms")?;
    let overlap: Option<i64> = row.try_get("overlap_ms")?;
    let key_id: String = row.try_get("key_id")?;
    let lineage: Option<String> = row.try_get("lineage")?;
    Ok(KeyRecord {
        lineage: lineage.unwrap_or_else(|| key_id.clone()),
        key_id,
        client: row.try_get("client")?,
        secret_hash: row.try_get("secret_hash")?,
        scopes: scopes.split_whitespace().filter_map(Scope::parse).collect(),
        label: row.try_get("label")?,
        created_at: read_time(row.try_get("created_at")?).unwrap_or_default(),
        expires_at: read_time(row.try_get("expires_at")?),
        revoked_at: read_time(row.try_get("revoked_at")?),
        generation: u32::try_from(row.try_get::<i64, _>("generation")?).unwrap_or(0),
        predecessor: row.try_get("predecessor")?,
        successor: row.try_get("successor")?,
        rotation: every.zip(overlap).map(|(every, overlap)| RotationPolicy {
            every: Span::from_millis(every),
            overlap: Span::from_millis(overlap),
        }),
        rotated_at: read_time(row.try_get("rotated_at")?),
        rotated_by: row.try_get("rotated_by")?,
        expired_at: read_time(row.try_get("expired_at")?),
        issued_by: row.try_get("issued_by")?,
        revoked_by: row.try_get("revoked_by")?,
    })
}

pub async fn find_key(pool: &AnyPool, key_id: &str) -> Result<Option<KeyRecord>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {KEY_COLUMNS} FROM rm_keys WHERE key_id = $1")))
        .bind(key_id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(key_of).transpose()
}

/// The keys of a client (every client when `None`), newest first.
pub async fn list_keys(pool: &AnyPool, client: Option<&str>) -> Result<Vec<KeyRecord>, sqlx::Error> {
    let rows = match client {
        Some(client) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {KEY_COLUMNS} FROM rm_keys WHERE client = $1 ORDER BY created_at DESC, key_id"
            )))
            .bind(client)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {KEY_COLUMNS} FROM rm_keys ORDER BY client, created_at DESC, key_id"
            )))
            .fetch_all(pool)
            .await?
        }
    };
    rows.iter().map(key_of).collect()
}

pub async fn client_names(pool: &AnyPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT client FROM rm_clients ORDER BY client").fetch_all(pool).await
}
