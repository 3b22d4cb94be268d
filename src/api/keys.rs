//! API keys of the caller's client: list, create, read, revoke; `rotate` (the calling key asks
//! for its successor); and the key audit, replayed from the client's stream in the log.

use actix_web::http::StatusCode;
use actix_web::web::{self, Data, Json, Path, Query};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use telltale_domain::client::{RotationPolicy, Scope};
use telltale_domain::keys::{AuditEntry, KeyState};
use telltale_projections::models::clients::{self, KeyRecord};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::dto::DurationInput;
use super::{ApiError, Caller, ErrorBody, body};
use crate::app::App;
use crate::keys::KeyOptions;

#[derive(OpenApi)]
#[openapi(paths(list, create, get, revoke, rotate, audit))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/v1/keys/rotate", "POST").route(web::post().to(rotate)));
    cfg.service(super::resource("/v1/keys", "GET, POST").route(web::get().to(list)).route(web::post().to(create)));
    cfg.service(
        super::resource("/v1/keys/{key_id}", "GET, DELETE").route(web::get().to(get)).route(web::delete().to(revoke)),
    );
    cfg.service(super::resource("/v1/audit/keys", "GET").route(web::get().to(audit)));
}

/// A new key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// `ingest`, `read`, `admin`, `provision`. Default: ingest, read, admin.
    #[schema(example = json!(["ingest"]))]
    pub scopes: Option<Vec<String>>,
    /// A note to recognise the key by.
    #[schema(example = "web servers")]
    pub label: Option<String>,
    /// The key becomes due for rotation this long after its issue (at least 1m); each
    /// successor rotates the same way.
    #[schema(value_type = Option<DurationInput>, example = "30d")]
    pub rotate_every: Option<DurationInput>,
    /// How long a rotated key keeps working beside its successor (at least 10s). Default: as
    /// long as `rotate_every`.
    #[schema(value_type = Option<DurationInput>, example = "7d")]
    pub overlap: Option<DurationInput>,
    /// The key (and every successor) stops working then.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key: ids and metadata, never its secret or hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    #[schema(example = "4f1c2a9b8e7d6c5b")]
    pub id: String,
    pub scopes: Vec<String>,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    /// `active`, `due` (rotation due), `rotated` (in its overlap), `revoked` or `expired`.
    pub status: String,
    /// When it stops (or stopped) working.
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    pub issued_by: Option<String>,
    /// 0 for a key issued by hand; n for the n-th successor.
    pub generation: u32,
    /// The first key of its line.
    pub lineage: String,
    pub predecessor: Option<String>,
    pub successor: Option<String>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub rotated_by: Option<String>,
    /// `"30d"`, when it rotates.
    pub rotate_every: Option<String>,
    pub overlap: Option<String>,
    /// When it is (or was) due for rotation.
    pub due_at: Option<DateTime<Utc>>,
}

fn status(record: &KeyRecord, now: DateTime<Utc>) -> &'static str {
    use telltale_domain::client::Rotation;
    if record.revoked_at.is_some() {
        "revoked"
    } else if !record.valid_at(now) {
        "expired"
    } else {
        match record.rotation_at(now) {
            Rotation::Due { .. } => "due",
            Rotation::Rotated { .. } => "rotated",
            Rotation::Never | Rotation::NotDue { .. } => "active",
        }
    }
}

impl KeyOut {
    pub fn of(record: KeyRecord, now: DateTime<Utc>) -> KeyOut {
        let status = status(&record, now).to_string();
        KeyOut {
            status,
            scopes: record.scopes.iter().map(|s| s.as_str().to_string()).collect(),
            due_at: record.rotation.map(|r| record.created_at + r.every.to_delta()),
            rotate_every: record.rotation.map(|r| r.every.to_string()),
            overlap: record.rotation.map(|r| r.overlap.to_string()),
            id: record.key_id,
            label: record.label,
            created_at: record.created_at,
            expires_at: record.expires_at,
            revoked_at: record.revoked_at,
            revoked_by: record.revoked_by,
            issued_by: record.issued_by,
            generation: record.generation,
            lineage: record.lineage,
            predecessor: record.predecessor,
            successor: record.successor,
            rotated_at: record.rotated_at,
            rotated_by: record.rotated_by,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyOut>,
}

/// A key just issued (by `POST /v1/keys` or a rotation): the only time its secret is shown.
#[derive(Serialize, ToSchema)]
pub struct IssuedKeyOut {
    /// `tt_<id>_<secret>`: keep it; it is not shown again.
    #[schema(example = "tt_4f1c2a9b8e7d6c5b_…")]
    pub key: String,
    pub id: String,
    pub scopes: Vec<String>,
    pub generation: u32,
    /// When the new key will be due for rotation.
    pub due_at: Option<DateTime<Utc>>,
    /// For a rotation: when the key that called stops working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predecessor_expires_at: Option<DateTime<Utc>>,
    /// For a rotation: true when this call issued the successor, false when an earlier call
    /// of the same generation had (the answer is the same key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_now: Option<bool>,
}

/// Scopes as written, or the default.
pub fn parse_scopes(raw: Option<&[String]>) -> Result<Vec<Scope>, ApiError> {
    let Some(raw) = raw else { return Ok(Scope::DEFAULT.to_vec()) };
    let mut scopes = Vec::new();
    for name in raw {
        let scope = Scope::parse(name).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_value",
                format!(
                    "unknown scope `{}`: use ingest, read, admin or provision",
                    name.chars().take(40).collect::<String>()
                ),
            )
        })?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    Ok(scopes)
}

/// A rotation policy from `rotate_every` and `overlap` (which defaults to the period).
pub fn rotation_policy(
    every: Option<&DurationInput>,
    overlap: Option<&DurationInput>,
) -> Result<Option<RotationPolicy>, ApiError> {
    match (every, overlap) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(ApiError::unprocessable("invalid_value", "overlap needs rotate_every")),
        (Some(every), overlap) => {
            let every = every.to_span("rotate_every")?;
            let overlap = overlap.map(|o| o.to_span("overlap")).transpose()?.unwrap_or(every);
            Ok(Some(RotationPolicy { every, overlap }))
        }
    }
}

/// Lists the keys of the caller's client (ids and metadata; never a secret).
#[utoipa::path(get, path = "/v1/keys", tag = "keys", security(("bearer" = ["admin"])),
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(app: Data<App>, caller: Caller) -> Result<Json<KeyList>, ApiError> {
    caller.require(Scope::Admin)?;
    app.consistent().await;
    let now = app.clock.now();
    let rows = clients::list_keys(&app.read.pool, Some(&caller.client)).await?;
    Ok(Json(KeyList { keys: rows.into_iter().map(|r| KeyOut::of(r, now)).collect() }))
}

/// Issues a key for the caller's client. Its secret is in this answer only.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", security(("bearer" = ["admin"])), request_body = CreateKey,
    responses((status = 201, body = IssuedKeyOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    app: Data<App>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Admin)?;
    let bytes = body::read(&req, payload, app.config.max_body_bytes).await?;
    let input: CreateKey = body::json(&bytes)?;
    let options = KeyOptions {
        scopes: parse_scopes(input.scopes.as_deref())?,
        label: input.label,
        expires_at: input.expires_at,
        rotation: rotation_policy(input.rotate_every.as_ref(), input.overlap.as_ref())?,
        by: Some(caller.actor()),
    };
    let issued = app.issue_key_with(&caller.client, options.clone()).await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(IssuedKeyOut {
        key: issued.token,
        id: issued.key_id,
        scopes: options.scopes.iter().map(|s| s.as_str().to_string()).collect(),
        generation: 0,
        due_at: options.rotation.map(|r| app.clock.now() + r.every.to_delta()),
        predecessor_expires_at: None,
        rotated_now: None,
    }))
}

async fn own_key(app: &App, caller: &Caller, key_id: &str) -> Result<KeyRecord, ApiError> {
    let not_found = || ApiError::not_found("key_not_found", "no such key for this key's client");
    if key_id.len() != 16 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    app.consistent().await;
    match clients::find_key(&app.read.pool, key_id).await? {
        Some(record) if record.client == caller.client => Ok(record),
        _ => Err(not_found()),
    }
}

/// One key of the caller's client.
#[utoipa::path(get, path = "/v1/keys/{key_id}", tag = "keys", security(("bearer" = ["admin"])),
    params(("key_id" = String, Path, description = "The key's public id")),
    responses((status = 200, body = KeyOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get(app: Data<App>, caller: Caller, key_id: Path<String>) -> Result<Json<KeyOut>, ApiError> {
    caller.require(Scope::Admin)?;
    let record = own_key(&app, &caller, &key_id).await?;
    Ok(Json(KeyOut::of(record, app.clock.now())))
}

/// Revokes a key of the caller's client at once (a key may revoke itself). Its history stays.
#[utoipa::path(delete, path = "/v1/keys/{key_id}", tag = "keys", security(("bearer" = ["admin"])),
    params(("key_id" = String, Path, description = "The key's public id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn revoke(app: Data<App>, caller: Caller, key_id: Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Admin)?;
    let record = own_key(&app, &caller, &key_id).await?;
    app.revoke_key(&caller.client, &record.key_id, Some(caller.actor())).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rotates the key that calls: when it is due (its responses carry `Telltale-Key-Rotation:
/// due`), answers with its successor, issuing it on the first call of this generation. Every
/// later call with the same key gets the same successor (the newest of its line), so several
/// processes sharing a key all end on one. The calling key keeps working until the overlap
/// ends. Any scope may rotate its own key.
#[utoipa::path(post, path = "/v1/keys/rotate", tag = "keys", security(("bearer" = [])),
    responses((status = 200, body = IssuedKeyOut, description = "The successor. The calling key keeps working until `predecessor_expires_at`.",
            headers(("Telltale-Key-Rotation" = String, description = "`due; successor=issued; expires=<RFC 3339>`: the successor is issued, and when the calling key stops working"))),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`rotation_not_due` (its message says when it is due, in RFC 3339), `rotation_not_configured`, or `key_not_valid` (its successor was revoked)")))]
pub async fn rotate(app: Data<App>, caller: Caller, req: HttpRequest) -> Result<Json<IssuedKeyOut>, ApiError> {
    let rotated = app.rotate_key(&caller.client, &caller.key_id, caller.secret.expose(), Some(caller.actor())).await?;
    // The answer's own header says what is now true: the successor is issued (the notice taken
    // when the request came in said `pending`).
    req.extensions_mut().insert(super::auth::RotationNotice::issued(rotated.caller_expires_at));
    if rotated.issued_now {
        tracing::info!(client = %caller.client, key_id = %caller.key_id, successor = %rotated.key_id,
            generation = rotated.generation, "rotated a key");
    }
    Ok(Json(IssuedKeyOut {
        key: rotated.token.expose().to_string(),
        id: rotated.key_id,
        scopes: rotated.scopes.iter().map(|s| s.as_str().to_string()).collect(),
        generation: rotated.generation,
        due_at: rotated.due_at,
        predecessor_expires_at: rotated.caller_expires_at,
        rotated_now: Some(rotated.issued_now),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Replay up to this instant (RFC 3339): the keys valid then, and the changes until then.
    pub at: Option<DateTime<Utc>>,
    /// Only this key's line (the key, its predecessors and successors).
    pub key_id: Option<String>,
}

/// One key's life, replayed.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyLife {
    pub id: String,
    pub scopes: Vec<String>,
    pub label: Option<String>,
    pub generation: u32,
    pub lineage: String,
    pub predecessor: Option<String>,
    pub successor: Option<String>,
    pub issued_at: DateTime<Utc>,
    pub issued_by: Option<String>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub rotated_by: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    /// When it stops (or stopped) working, as far as the log knows at the instant replayed.
    pub expires_at: Option<DateTime<Utc>>,
    /// With `at`: whether it authenticated requests at that instant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
}

/// One change, in the order the log holds them.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryOut {
    pub at: DateTime<Utc>,
    /// `issued`, `rotated`, `revoked`, `expired` or `locked_out`.
    pub action: String,
    pub key_id: String,
    pub successor_id: Option<String>,
    pub generation: Option<u32>,
    /// Who or what did it: `cli`, `bootstrap`, `user:NAME`, `key:ID (address, agent)`; none for
    /// an expiry (time did it).
    pub by: Option<String>,
    /// For `locked_out`: the address, and until when.
    pub source: Option<String>,
    pub until: Option<DateTime<Utc>>,
}

impl From<AuditEntry> for AuditEntryOut {
    fn from(e: AuditEntry) -> AuditEntryOut {
        AuditEntryOut {
            at: e.at,
            action: e.action,
            key_id: e.key_id,
            successor_id: e.successor_id,
            generation: e.generation,
            by: e.by,
            source: e.source,
            until: e.until,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyAudit {
    pub client: String,
    /// The instant replayed to, if one was asked for.
    pub at: Option<DateTime<Utc>>,
    /// With `at`: the ids of the keys valid at that instant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_at: Option<Vec<String>>,
    pub keys: Vec<KeyLife>,
    pub entries: Vec<AuditEntryOut>,
}

fn life(id: &str, key: &KeyState, at: Option<DateTime<Utc>>) -> KeyLife {
    KeyLife {
        id: id.to_string(),
        scopes: key.scopes.iter().map(|s| s.as_str().to_string()).collect(),
        label: key.label.clone(),
        generation: key.generation,
        lineage: key.lineage.clone(),
        predecessor: key.predecessor.clone(),
        successor: key.successor.clone(),
        issued_at: key.issued_at,
        issued_by: key.issued_by.clone(),
        rotated_at: key.rotated_at,
        rotated_by: key.rotated_by.clone(),
        revoked_at: key.revoked_at,
        revoked_by: key.revoked_by.clone(),
        expires_at: key.expires_at,
        valid: at.map(|t| key.valid_at(t)),
    }
}

/// The audit of a client's keys, replayed from the log up to `at` (or everything).
pub async fn key_audit(
    app: &App,
    client: &str,
    at: Option<DateTime<Utc>>,
    key_id: Option<&str>,
) -> Result<KeyAudit, ApiError> {
    let mut history = app.key_history(client, None).await?;
    let line = key_id.and_then(|k| history.keys.get(k)).map(|k| k.lineage.clone());
    if key_id.is_some() && line.is_none() {
        return Err(ApiError::not_found("key_not_found", "no such key for this key's client"));
    }
    if at.is_some() {
        history = app.key_history(client, at).await?;
    }
    let in_line = |id: &str| match &line {
        None => true,
        Some(line) => history.keys.get(id).is_some_and(|k| &k.lineage == line),
    };
    let keys: Vec<KeyLife> = history.keys.iter().filter(|(id, _)| in_line(id)).map(|(id, k)| life(id, k, at)).collect();
    Ok(KeyAudit {
        client: client.to_string(),
        at,
        valid_at: at.map(|_| keys.iter().filter(|k| k.valid == Some(true)).map(|k| k.id.clone()).collect()),
        keys,
        entries: history.entries.into_iter().filter(|e| in_line(&e.key_id)).map(AuditEntryOut::from).collect(),
    })
}

/// Replays the caller's client's key history from the log: every issue, rotation, revocation,
/// expiry and lock-out, who or what did it, and which keys were valid when. With `at`, answers
/// "which keys were valid at that instant" (and stops the history there); with `key_id`, only
/// that key's line. Never a secret or a hash.
#[utoipa::path(get, path = "/v1/audit/keys", tag = "keys", security(("bearer" = ["admin"])), params(AuditQuery),
    responses((status = 200, body = KeyAudit), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn audit(app: Data<App>, caller: Caller, query: Query<AuditQuery>) -> Result<Json<KeyAudit>, ApiError> {
    caller.require(Scope::Admin)?;
    Ok(Json(key_audit(&app, &caller.client, query.at, query.key_id.as_deref()).await?))
}
