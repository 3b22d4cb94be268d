//! Notification channels of a client.

use actix_web::http::StatusCode;
use actix_web::web::{self, Data, Json, Path};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use telltale_domain::client::{ClientCommand, Scope};
use telltale_domain::ids::streams;
use telltale_projections::models::notifications::{self, ChannelView};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use super::{ApiError, Caller, ErrorBody, body};
use crate::app::App;

#[derive(OpenApi)]
#[openapi(paths(list, create, get, delete))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/v1/channels", "GET, POST").route(web::get().to(list)).route(web::post().to(create)));
    cfg.service(
        super::resource("/v1/channels/{id}", "GET, DELETE").route(web::get().to(get)).route(web::delete().to(delete)),
    );
}

/// A new channel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    #[schema(example = "ops")]
    pub name: String,
    /// `webhook`.
    #[schema(example = "webhook")]
    pub kind: String,
    /// For `webhook`: `{"url": "https://…"}`.
    #[schema(value_type = Object, example = json!({"url": "https://hooks.example.com/telltale"}))]
    pub config: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelOut {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub config: Value,
    pub created_at: DateTime<Utc>,
    /// `ok`, `failing` (the last attempt failed) or `unused`.
    pub health: String,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub consecutive_failures: i64,
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
            name: c.name,
            kind: c.kind,
            config: c.config,
            created_at: c.created_at,
            health: health.into(),
            last_success_at: c.last_success_at,
            last_failure_at: c.last_failure_at,
            last_error: c.last_error,
            consecutive_failures: c.consecutive_failures,
        }
    }
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
#[utoipa::path(get, path = "/v1/channels", tag = "channels", security(("bearer" = [])),
    responses((status = 200, body = ChannelList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(app: Data<App>, caller: Caller) -> Result<Json<ChannelList>, ApiError> {
    caller.require(Scope::Read)?;
    app.consistent().await;
    let rows = notifications::channels(&app.read.pool, &caller.client).await?;
    Ok(Json(ChannelList { channels: rows.into_iter().map(ChannelOut::from).collect() }))
}

/// Adds a channel; every alert of the client that opens or resolves from now on is sent to it.
#[utoipa::path(post, path = "/v1/channels", tag = "channels", security(("bearer" = [])), request_body = CreateChannel,
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
    let input: CreateChannel = body::json(&bytes)?;
    let channel_id = Uuid::new_v4();
    let command = ClientCommand::AddChannel { channel_id, name: input.name, kind: input.kind, config: input.config };
    app.clients.execute(&streams::client(&caller.client), command, None).await?;
    let channel = find(&app, &caller, &channel_id.to_string()).await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(ChannelOut::from(channel)))
}

/// Reads one channel.
#[utoipa::path(get, path = "/v1/channels/{id}", tag = "channels", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The channel's id")),
    responses((status = 200, body = ChannelOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(app: Data<App>, caller: Caller, id: Path<String>) -> Result<Json<ChannelOut>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(find(&app, &caller, &id).await?.into()))
}

/// Removes a channel; notifications still waiting for it are dropped.
#[utoipa::path(delete, path = "/v1/channels/{id}", tag = "channels", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The channel's id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(app: Data<App>, caller: Caller, id: Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Admin)?;
    let channel = find(&app, &caller, &id).await?;
    let command = ClientCommand::RemoveChannel { channel_id: channel.channel_id };
    app.clients.execute(&streams::client(&caller.client), command, None).await?;
    Ok(HttpResponse::NoContent().finish())
}
