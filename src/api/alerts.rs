//! Alerts: incidents, open until the monitor (or, for a host alert, the host) recovers.

use actix_web::HttpRequest;
use actix_web::web::{self, Data, Json, Path, Query};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use telltale_domain::client::Scope;
use telltale_domain::ids::streams;
use telltale_domain::monitor::{MonitorCommand, MonitorError};
use telltale_projections::models::alerts;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use super::{ApiError, Caller, ErrorBody, body};
use crate::app::App;

#[derive(OpenApi)]
#[openapi(paths(list, acknowledge))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/v1/alerts", "GET").route(web::get().to(list)));
    cfg.service(super::resource("/v1/alerts/{id}/acknowledge", "POST").route(web::post().to(acknowledge)));
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `open` (the default), `resolved` or `all`.
    pub state: Option<String>,
    /// Only alerts of this monitor.
    pub monitor: Option<String>,
    /// `monitor` or `host`: only alerts of monitors, or only host alerts.
    pub kind: Option<String>,
    /// Only the host alerts of this host.
    pub host: Option<String>,
    /// At most this many (1 to 500, default 100), newest first.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertOut {
    pub id: Uuid,
    /// The monitor's slug; for a host alert `host:<host>` (a slug never holds `:`).
    pub monitor: String,
    /// `open` or `resolved`.
    pub state: String,
    /// `missed`, `failed`, `timed_out` or `flapping` for a monitor; `host_silent` for a host alert.
    pub cause: String,
    pub message: String,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Why it resolved.
    pub resolution: Option<String>,
    /// Why it is recorded and not announced: `silenced`, `maintenance` or `flapping`. An alert
    /// still open when that ends is announced then.
    pub held: Option<String>,
    /// When its channels were told it opened (absent while held, and for an alert that was
    /// held all its life).
    pub announced_at: Option<DateTime<Utc>>,
    /// Whether anyone was told it opened (false for an alert held all its life, or inhibited
    /// by a host alert and not released).
    pub notified: bool,
    /// Its trouble ended while alerts were held; the resolution is announced when they no
    /// longer are.
    pub recovered_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub acknowledgement_note: Option<String>,
    /// Reminders sent so far (`realert_every`).
    pub reminders: i64,
    pub escalated_at: Option<DateTime<Utc>>,
    /// `monitor`, or `host` when most monitors of one host fell silent together.
    pub kind: String,
    /// A host alert's host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A host alert's silent monitors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitors: Option<Vec<String>>,
    /// The host alert that inhibited this monitor alert: recorded, not sent on its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inhibited_by: Option<Uuid>,
    /// When an inhibited alert was sent on its own after all: its monitor was still silent a
    /// while after its host came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_at: Option<DateTime<Utc>>,
}

impl AlertOut {
    pub fn of(a: alerts::AlertView) -> AlertOut {
        let host_alert = a.kind == "host";
        let notified = a.notified();
        AlertOut {
            id: a.alert_id,
            monitor: a.slug,
            state: a.state,
            cause: a.cause,
            message: a.message,
            opened_at: a.opened_at,
            resolved_at: a.resolved_at,
            resolution: a.resolution,
            held: a.held,
            notified,
            announced_at: a.announced_at,
            recovered_at: a.recovered_at,
            acknowledged_at: a.acknowledged_at,
            acknowledged_by: a.acknowledged_by,
            acknowledgement_note: a.ack_note,
            reminders: a.reminders,
            escalated_at: a.escalated_at,
            kind: a.kind,
            host: a.host,
            monitors: host_alert.then_some(a.monitors),
            inhibited_by: a.inhibited_by,
            released_at: a.released_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    pub alerts: Vec<AlertOut>,
}

/// Lists the alerts of the key's client, newest first.
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts", security(("bearer" = ["read"])), params(AlertQuery),
    responses((status = 200, body = AlertList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(app: Data<App>, caller: Caller, query: Query<AlertQuery>) -> Result<Json<AlertList>, ApiError> {
    caller.require(Scope::Read)?;
    let state = match query.state.as_deref().unwrap_or("open") {
        "open" => Some("open"),
        "resolved" => Some("resolved"),
        "all" => None,
        other => {
            return Err(ApiError::unprocessable(
                "invalid_value",
                format!("state `{other}` is not open, resolved or all"),
            ));
        }
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::unprocessable("invalid_value", "limit must be between 1 and 500"));
    }
    if let Some(slug) = &query.monitor {
        super::monitors::check_slug(slug)?;
    }
    if let Some(kind) = query.kind.as_deref().filter(|k| !matches!(*k, "monitor" | "host")) {
        return Err(ApiError::unprocessable("invalid_value", format!("kind `{kind}` is not monitor or host")));
    }
    let host = query.host.as_deref().map(super::hosts::check_host).transpose()?;
    app.consistent().await;
    let client = Some(caller.client.as_str());
    let rows = match (host, query.monitor.as_deref(), query.kind.as_deref()) {
        (Some(host), _, _) => alerts::list_for_host(&app.read.pool, client, state, host, limit).await?,
        (None, Some(slug), _) => alerts::list(&app.read.pool, client, state, Some(slug), limit).await?,
        (None, None, Some(kind)) => alerts::list_kind(&app.read.pool, client, state, kind, limit).await?,
        (None, None, None) => alerts::list(&app.read.pool, client, state, None, limit).await?,
    };
    Ok(Json(AlertList { alerts: rows.into_iter().map(AlertOut::of).collect() }))
}

/// Who takes an alert, and a word about it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeInput {
    /// Who takes it (default: `key:<the key's id>`, as the key audit names a key).
    #[schema(example = "ana")]
    pub by: Option<String>,
    #[schema(example = "looking into it")]
    pub note: Option<String>,
}

/// Acknowledges an open alert: reminders and escalation stop, and the channels that were told
/// of it hear who took it. Acknowledging it again changes nothing. The body is optional.
#[utoipa::path(post, path = "/v1/alerts/{id}/acknowledge", tag = "alerts", security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = "The alert's id")),
    request_body(content = Option<AcknowledgeInput>, description = "Optional"),
    responses((status = 200, body = AlertOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn acknowledge(
    app: Data<App>,
    caller: Caller,
    id: Path<Uuid>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<Json<AlertOut>, ApiError> {
    caller.require(Scope::Admin)?;
    let bytes = body::read(&req, payload, app.config.max_body_bytes).await?;
    let input: AcknowledgeInput =
        if bytes.iter().all(u8::is_ascii_whitespace) { AcknowledgeInput::default() } else { body::json(&bytes)? };
    let alert_id = id.into_inner();
    let by = input.by.or_else(|| Some(format!("key:{}", caller.key_id)));
    let alert = acknowledge_alert(&app, &caller.client, alert_id, by, input.note).await?;
    Ok(Json(alert))
}

/// Acknowledges an alert of `client` (the API and the dashboard both come here).
pub async fn acknowledge_alert(
    app: &App,
    client: &str,
    alert_id: Uuid,
    by: Option<String>,
    note: Option<String>,
) -> Result<AlertOut, ApiError> {
    let not_found = || ApiError::from(MonitorError::AlertNotFound(alert_id));
    app.consistent().await;
    let view = alerts::find(&app.read.pool, alert_id).await?.filter(|a| a.client == client).ok_or_else(not_found)?;
    if view.state != "open" {
        return Err(ApiError::conflict("alert_resolved", format!("alert `{alert_id}` is already resolved")));
    }
    if view.kind == "host" {
        return Err(ApiError::unprocessable(
            "invalid_value",
            "a host alert cannot be acknowledged itself: acknowledge its monitors' alerts",
        ));
    }
    let stream = streams::monitor(client, &view.slug);
    app.monitors.execute(&stream, MonitorCommand::Acknowledge { alert_id, by, note }, None).await?;
    app.consistent().await;
    let view = alerts::find(&app.read.pool, alert_id).await?.ok_or_else(not_found)?;
    Ok(AlertOut::of(view))
}
