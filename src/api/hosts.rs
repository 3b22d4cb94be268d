//! Hosts: the machines a client's monitors report from (the `host` their signals carry), which
//! of their monitors are silent, and their host alerts (when most monitors of one host fall
//! silent together, one host alert opens instead of one alert per monitor).

use actix_web::HttpRequest;
use actix_web::web::{self, Data, Json, Path};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use telltale_domain::client::Scope;
use telltale_domain::host::{CORRELATION_WINDOW, HOLD, Host, MIN_SILENT, RETURN_WINDOW, host_name};
use telltale_domain::monitor::MAX_HOST_LEN;
use telltale_projections::models::{alerts, hosts};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use super::alerts::AlertOut;
use super::{ApiError, Caller, ErrorBody, body};
use crate::app::App;
use crate::replay::{HostReplayReport, ReplayError};

#[derive(OpenApi)]
#[openapi(paths(list, get, replay))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/v1/hosts", "GET").route(web::get().to(list)));
    cfg.service(super::resource("/v1/hosts/{host}", "GET").route(web::get().to(get)));
    cfg.service(super::resource("/v1/hosts/{host}/replay", "POST").route(web::post().to(replay)));
}

/// A host name as a path or query takes it: trimmed, 1 to 255 bytes.
pub fn check_host(host: &str) -> Result<&str, ApiError> {
    match host_name(host) {
        Some(h) if h.len() <= MAX_HOST_LEN => Ok(h),
        _ => Err(ApiError::unprocessable("invalid_host", format!("a host has 1 to {MAX_HOST_LEN} bytes"))),
    }
}

/// One monitor of a host.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostMemberOut {
    pub slug: String,
    /// When it first named this host.
    pub joined_at: DateTime<Utc>,
    /// The deadline it missed, while it is silent.
    pub silent_since: Option<DateTime<Utc>>,
    /// Its open `missed` alert, while it is silent.
    pub alert_id: Option<Uuid>,
    /// Its open `flapping` alert, while it is silent: it goes with the silence (inhibited and
    /// released with it).
    pub flapping_alert_id: Option<Uuid>,
    /// The host alert that inhibits (or inhibited) its alert.
    pub inhibited_by: Option<Uuid>,
    /// True once its alert was sent on its own: it was still silent a while after its host
    /// came back.
    pub released: bool,
}

/// A host's open alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostAlertRef {
    pub id: Uuid,
    pub opened_at: DateTime<Utc>,
    /// Every monitor it covers.
    pub monitors: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HostOut {
    #[schema(example = "web-1")]
    pub host: String,
    /// `silent` while a host alert is open, else `up`.
    pub status: String,
    /// How many of its monitors are silent.
    pub silent: usize,
    pub monitors: Vec<HostMemberOut>,
    /// Its open host alert.
    pub alert: Option<HostAlertRef>,
}

impl HostOut {
    pub fn of(host: &str, state: &Host) -> HostOut {
        HostOut {
            host: host.to_string(),
            status: if state.alert.is_some() { "silent" } else { "up" }.into(),
            silent: state.silent().count(),
            monitors: state
                .members
                .iter()
                .map(|(slug, m)| HostMemberOut {
                    slug: slug.clone(),
                    joined_at: m.joined_at,
                    silent_since: m.silence.as_ref().map(|s| s.since),
                    alert_id: m.silence.as_ref().map(|s| s.alert_id),
                    flapping_alert_id: m.silence.as_ref().and_then(|s| s.flapping),
                    inhibited_by: m.silence.as_ref().and_then(|s| s.incident),
                    released: m.silence.as_ref().is_some_and(|s| s.released),
                })
                .collect(),
            alert: state.alert.as_ref().map(|a| HostAlertRef {
                id: a.alert_id,
                opened_at: a.opened_at,
                monitors: a.monitors.iter().cloned().collect(),
            }),
        }
    }
}

/// The correlation rules in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostRules {
    /// Fewest silent monitors that make a host alert (and more than half of the host's).
    pub min_silent: usize,
    /// Silences whose deadlines fall within this of each other fell silent together.
    #[schema(example = "5m")]
    pub window: String,
    /// How long a silent monitor's own notification (its `missed` or `flapping` opening) waits
    /// for its host alert.
    #[schema(example = "1s")]
    pub hold: String,
    /// A monitor still silent this long after its host came back is alerted on its own.
    #[schema(example = "5m")]
    pub return_window: String,
}

impl HostRules {
    fn current() -> HostRules {
        HostRules {
            min_silent: MIN_SILENT,
            window: CORRELATION_WINDOW.to_string(),
            hold: HOLD.to_string(),
            return_window: RETURN_WINDOW.to_string(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HostList {
    pub hosts: Vec<HostOut>,
    pub rules: HostRules,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HostDetail {
    #[serde(flatten)]
    pub host: HostOut,
    /// Its host alerts, newest first (at most 50).
    pub alerts: Vec<AlertOut>,
}

/// Lists the hosts of the key's client: their monitors, which are silent, and any open host
/// alert.
#[utoipa::path(get, path = "/v1/hosts", tag = "hosts", security(("bearer" = ["read"])),
    responses((status = 200, body = HostList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(app: Data<App>, caller: Caller) -> Result<Json<HostList>, ApiError> {
    caller.require(Scope::Read)?;
    app.consistent().await;
    let rows = hosts::list(&app.read.pool, Some(&caller.client)).await?;
    Ok(Json(HostList {
        hosts: rows.iter().map(|h| HostOut::of(&h.host, &h.state)).collect(),
        rules: HostRules::current(),
    }))
}

/// One host of the key's client, with its host alerts.
#[utoipa::path(get, path = "/v1/hosts/{host}", tag = "hosts", security(("bearer" = ["read"])),
    params(("host" = String, Path, description = "The host, as the monitors' signals name it (percent-encoded)")),
    responses((status = 200, body = HostDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get(app: Data<App>, caller: Caller, path: Path<String>) -> Result<Json<HostDetail>, ApiError> {
    caller.require(Scope::Read)?;
    let host = check_host(&path)?;
    app.consistent().await;
    let Some(view) = hosts::get(&app.read.pool, &caller.client, host).await? else {
        return Err(ApiError::not_found("host_not_found", format!("no monitor of this client names host `{host}`")));
    };
    let rows = alerts::list_for_host(&app.read.pool, Some(&caller.client), None, host, 50).await?;
    Ok(Json(HostDetail {
        host: HostOut::of(&view.host, &view.state),
        alerts: rows.into_iter().map(AlertOut::of).collect(),
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostReplayRequest {
    /// Replay up to this instant; default: now.
    pub to: Option<DateTime<Utc>>,
}

/// Runs host correlation again over the host's recorded inputs (its monitors joining, leaving,
/// falling silent and coming back, and telltale's own starts and stops) with a virtual clock:
/// the result is identical to what was recorded.
#[utoipa::path(post, path = "/v1/hosts/{host}/replay", tag = "hosts", security(("bearer" = ["read"])),
    params(("host" = String, Path, description = "The host (percent-encoded)")),
    request_body(content = Option<HostReplayRequest>, description = "Optional"),
    responses((status = 200, body = HostReplayReport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn replay(
    app: Data<App>,
    caller: Caller,
    path: Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<Json<HostReplayReport>, ApiError> {
    caller.require(Scope::Read)?;
    let host = check_host(&path)?;
    let bytes = body::read(&req, payload, app.config.max_body_bytes).await?;
    let input: HostReplayRequest =
        if bytes.iter().all(u8::is_ascii_whitespace) { HostReplayRequest::default() } else { body::json(&bytes)? };
    let report = crate::replay::replay_host(app.store.as_ref(), &caller.client, host, input.to, app.clock.now())
        .await
        .map_err(|e| match e {
            ReplayError::HostNotFound(host) => {
                ApiError::not_found("host_not_found", format!("no monitor of this client names host `{host}`"))
            }
            ReplayError::NotFound(slug) => telltale_domain::monitor::MonitorError::NotFound(slug).into(),
            ReplayError::Store(e) => ApiError::from(e),
        })?;
    Ok(Json(report))
}
