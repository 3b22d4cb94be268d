//! Alerts: incidents, open until the monitor (or, for a host alert, the host) recovers.

use actix_web::web::{self, Data, Json, Query};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use telltale_domain::client::Scope;
use telltale_projections::models::alerts;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use super::{ApiError, Caller, ErrorBody};
use crate::app::App;

#[derive(OpenApi)]
#[openapi(paths(list))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/v1/alerts", "GET").route(web::get().to(list)));
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
    /// `missed`, `failed` or `timed_out` for a monitor; `host_silent` for a host alert.
    pub cause: String,
    pub message: String,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Why it resolved.
    pub resolution: Option<String>,
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
        AlertOut {
            id: a.alert_id,
            monitor: a.slug,
            state: a.state,
            cause: a.cause,
            message: a.message,
            opened_at: a.opened_at,
            resolved_at: a.resolved_at,
            resolution: a.resolution,
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
