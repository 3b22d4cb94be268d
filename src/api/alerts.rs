//! Alerts: incidents, open until the monitor recovers.

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
    /// At most this many (1 to 500, default 100), newest first.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertOut {
    pub id: Uuid,
    /// The monitor's slug.
    pub monitor: String,
    /// `open` or `resolved`.
    pub state: String,
    /// `missed` or `failed`.
    pub cause: String,
    pub message: String,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Why it resolved.
    pub resolution: Option<String>,
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
    app.consistent().await;
    let rows = alerts::list(&app.read.pool, Some(&caller.client), state, query.monitor.as_deref(), limit).await?;
    Ok(Json(AlertList {
        alerts: rows
            .into_iter()
            .map(|a| AlertOut {
                id: a.alert_id,
                monitor: a.slug,
                state: a.state,
                cause: a.cause,
                message: a.message,
                opened_at: a.opened_at,
                resolved_at: a.resolved_at,
                resolution: a.resolution,
            })
            .collect(),
    }))
}
