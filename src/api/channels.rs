//! Notification channels of a client.

use actix_web::http::StatusCode;
use actix_web::web::{self, Data, Json, Path};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use telltale_domain::channel::redact_config;
use telltale_domain::client::{ClientCommand, Scope};
use telltale_domain::ids::streams;
use telltale_projections::models::notifications::{self, ChannelView, OutboxView};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use super::{ApiError, Caller, ErrorBody, body};
use crate::app::App;

#[derive(OpenApi)]
#[openapi(paths(list, create, get, delete, outbox))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/v1/channels", "GET, POST").route(web::get().to(list)).route(web::post().to(create)));
    cfg.service(
        super::resource("/v1/channels/{id}", "GET, DELETE").route(web::get().to(get)).route(web::delete().to(delete)),
    );
    cfg.service(super::resource("/v1/channels/{id}/notifications", "GET").route(web::get().to(outbox)));
}

/// A new channel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    #[schema(example = "ops")]
    pub name: String,
    /// `webhook`, `slack`, `teams`, `discord`, `google_chat`, `mattermost`, `email`,
    /// `pagerduty`, `opsgenie`, `ntfy`, `telegram`, `pushover` or `matrix`.
    #[schema(example = "webhook")]
    pub kind: String,
    /// The kind's settings (required ones in bold in the README's table):
    /// `webhook` {**url**, secret, headers}; `slack`, `teams`, `google_chat` {**url**};
    /// `discord` {**url**, username}; `mattermost` {**url**, channel, username};
    /// `email` {**to**, **from**, **host**, port, security: starttls|tls|none, username, password};
    /// `pagerduty` {**routing_key**, severity, api_url}; `opsgenie` {**api_key**, priority, api_url};
    /// `ntfy` {**topic**, server, token | username + password, priority};
    /// `telegram` {**bot_token**, **chat_id**, message_thread_id, api_url};
    /// `pushover` {**token**, **user**, device, priority, sound, api_url};
    /// `matrix` {homeserver, **access_token**, **room_id**}. Every vendor base URL defaults to
    /// the vendor's. Secrets (tokens, keys, passwords, secret URLs) are never shown again.
    /// A webhook without a `secret` gets one generated, returned once in `secret`.
    #[schema(value_type = Object, example = json!({"url": "https://hooks.example.com/telltale"}))]
    pub config: Value,
    /// Only alerts of monitors with one of these tags reach the channel; without tags, every
    /// alert of the client does.
    #[serde(default)]
    #[schema(example = json!(["db"]))]
    pub tags: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelOut {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    /// The settings, every secret shown as `********` (a secret URL keeps its host).
    #[schema(value_type = Object)]
    pub config: Value,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// `ok`, `failing` (the last attempt failed) or `unused`.
    pub health: String,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub consecutive_failures: i64,
    /// Notifications waiting to be delivered.
    pub pending_notifications: i64,
    /// Notifications given up on after `notify.give_up_after`.
    pub failed_notifications: i64,
    /// Only in the answer to `POST /v1/channels` of a webhook without a secret: the generated
    /// signing secret, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<ChannelView> for ChannelOut {
    fn from(c: ChannelView) -> ChannelOut {
        let health = if c.consecutive_failures > 0 {
            "failing"
        } else if c.last_success_at.is_some() {
            "ok"
        } else {
            "unused"
        };
        ChannelOut {
            id: c.channel_id,
            config: redact_config(&c.kind, &c.config),
            name: c.name,
            kind: c.kind,
            tags: c.tags,
            created_at: c.created_at,
            health: health.into(),
            last_success_at: c.last_success_at,
            last_failure_at: c.last_failure_at,
            last_error: c.last_error,
            consecutive_failures: c.consecutive_failures,
            pending_notifications: c.pending,
            failed_notifications: c.failed,
            secret: None,
        }
    }
}

/// One notification of a channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationOut {
    /// Also the `Idempotency-Key` of every attempt.
    pub id: Uuid,
    pub alert_id: Uuid,
    pub monitor: String,
    /// `opened`, `resolved`, …
    pub transition: String,
    /// `pending`, `delivered`, `failed` (given up), `cancelled` (the channel was removed) or
    /// `inhibited` (a host alert covered it before it was sent: never sent).
    pub state: String,
    pub attempts: i64,
    pub created_at: Option<DateTime<Utc>>,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl From<OutboxView> for NotificationOut {
    fn from(o: OutboxView) -> NotificationOut {
        NotificationOut {
            id: o.notification_id,
            alert_id: o.alert_id,
            monitor: o.monitor,
            transition: o.transition,
            state: o.state,
            attempts: o.attempts,
            created_at: o.created_at,
            next_attempt_at: o.next_attempt_at,
            delivered_at: o.delivered_at,
            last_error: o.last_error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    pub notifications: Vec<NotificationOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelList {
    pub channels: Vec<ChannelOut>,
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("channel_not_found", format!("no channel `{id}`")))
}

async fn find(app: &App, caller: &Caller, id: &str) -> Result<ChannelView, ApiError> {
    let id = parse_id(id)?;
    app.consistent().await;
    match notifications::channel(&app.read.pool, id).await? {
        Some(c) if c.client == caller.client => Ok(c),
        _ => Err(ApiError::not_found("channel_not_found", format!("no channel `{id}`"))),
    }
}

/// Lists the client's channels, with their delivery health.
#[utoipa::path(get, path = "/v1/channels", tag = "channels", security(("bearer" = ["read"])),
    responses((status = 200, body = ChannelList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(app: Data<App>, caller: Caller) -> Result<Json<ChannelList>, ApiError> {
    caller.require(Scope::Read)?;
    app.consistent().await;
    let rows = notifications::channels(&app.read.pool, &caller.client).await?;
    Ok(Json(ChannelList { channels: rows.into_iter().map(ChannelOut::from).collect() }))
}

/// Adds a channel; every alert of the client (or, with `tags`, of its monitors that carry one of
/// them) that opens or resolves from now on is sent to it. A configuration that its kind does
/// not accept is refused with a `422` naming the field (`config.routing_key: …`).
#[utoipa::path(post, path = "/v1/channels", tag = "channels", security(("bearer" = ["admin"])), request_body = CreateChannel,
    responses((status = 201, body = ChannelOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    app: Data<App>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Admin)?;
    let bytes = body::read(&req, payload, app.config.max_body_bytes).await?;
    let mut input: CreateChannel = body::json(&bytes)?;
    let channel_id = Uuid::new_v4();
    let mut generated = None;
    if input.kind == "webhook"
        && let Some(config) = input.config.as_object_mut()
        && !config.contains_key("secret")
    {
        let secret = format!("whsec_{}", hex::encode(rand::random::<[u8; 24]>()));
        config.insert("secret".into(), secret.clone().into());
        generated = Some(secret);
    }
    let command = ClientCommand::AddChannel {
        channel_id,
        name: input.name,
        kind: input.kind,
        config: input.config,
        tags: input.tags,
    };
    app.clients.execute(&streams::client(&caller.client), command, None).await?;
    let channel = find(&app, &caller, &channel_id.to_string()).await?;
    let mut out = ChannelOut::from(channel);
    out.secret = generated;
    Ok(HttpResponse::build(StatusCode::CREATED).json(out))
}

/// Reads one channel.
#[utoipa::path(get, path = "/v1/channels/{id}", tag = "channels", security(("bearer" = ["read"])),
    params(("id" = Uuid, Path, description = "The channel's id")),
    responses((status = 200, body = ChannelOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(app: Data<App>, caller: Caller, id: Path<String>) -> Result<Json<ChannelOut>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(find(&app, &caller, &id).await?.into()))
}

/// Removes a channel; notifications still waiting for it are dropped.
#[utoipa::path(delete, path = "/v1/channels/{id}", tag = "channels", security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = "The channel's id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(app: Data<App>, caller: Caller, id: Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Admin)?;
    let channel = find(&app, &caller, &id).await?;
    let command = ClientCommand::RemoveChannel { channel_id: channel.channel_id };
    app.clients.execute(&streams::client(&caller.client), command, None).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Lists a channel's notifications, newest first: state, attempts, the next attempt and the
/// last error, so that a delivery that keeps failing is visible.
#[utoipa::path(get, path = "/v1/channels/{id}/notifications", tag = "channels", security(("bearer" = ["read"])),
    params(("id" = Uuid, Path, description = "The channel's id")),
    responses((status = 200, body = NotificationList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn outbox(app: Data<App>, caller: Caller, id: Path<String>) -> Result<Json<NotificationList>, ApiError> {
    caller.require(Scope::Read)?;
    let channel = find(&app, &caller, &id).await?;
    let rows = notifications::channel_outbox(&app.read.pool, channel.channel_id, 100).await?;
    Ok(Json(NotificationList { notifications: rows.into_iter().map(NotificationOut::from).collect() }))
}
