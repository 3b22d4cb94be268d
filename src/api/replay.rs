//! `POST /v1/monitors/{slug}/replay`: detection run again over a monitor's history.

use actix_web::HttpRequest;
use actix_web::web::{self, Data, Json, Path};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use telltale_domain::client::Scope;
use telltale_domain::replay::PolicyOverride;
use utoipa::{OpenApi, ToSchema};

use super::dto::{AlertPolicyInput, DurationInput, ScheduleInput};
use super::monitors::check_slug;
use super::{ApiError, Caller, ErrorBody, body};
use crate::app::App;
use crate::replay::{ReplayError, ReplayQuery, ReplayReport, ReplayRow};

#[derive(OpenApi)]
#[openapi(paths(replay), components(schemas(ReplayRow)))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/v1/monitors/{slug}/replay", "POST").route(web::post().to(replay)));
}

/// Another policy to replay with; each field given replaces that part of the recorded
/// configuration, absent fields keep it.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PolicyInput {
    pub schedule: Option<ScheduleInput>,
    pub grace: Option<DurationInput>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<DurationInput>)]
    pub max_runtime: Option<Option<DurationInput>>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<DurationInput>)]
    pub min_interval: Option<Option<DurationInput>>,
    /// Alert policy knobs (`failure_tolerance`, `retry_window`, `missed_tolerance`,
    /// `recovery_threshold`, `realert_every`, `escalate_after`, `escalate_to`,
    /// `flapping_threshold`, `flapping_window`): each given wins over both the monitor's own and
    /// its client's.
    #[serde(flatten)]
    pub alert_policy: AlertPolicyInput,
    /// Whatever else was sent: refused (serde cannot refuse unknown fields beside a flattened
    /// struct by itself).
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<DurationInput>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

impl PolicyInput {
    pub fn to_override(&self) -> Result<PolicyOverride, ApiError> {
        if let Some(field) = self.unknown.keys().next() {
            return Err(ApiError::bad_request("invalid_request", format!("policy: unknown field `{field}`")));
        }
        let optional = |v: &Option<Option<DurationInput>>, field: &str| {
            v.as_ref().map(|inner| inner.as_ref().map(|d| d.to_span(field)).transpose()).transpose()
        };
        Ok(PolicyOverride {
            schedule: self.schedule.as_ref().map(ScheduleInput::to_schedule).transpose()?,
            grace: self.grace.as_ref().map(|g| g.to_span("grace")).transpose()?,
            max_runtime: optional(&self.max_runtime, "max_runtime")?,
            min_interval: optional(&self.min_interval, "min_interval")?,
            alert_policy: self.alert_policy.to_policy("")?,
        })
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Report derived events from this instant (RFC 3339); the replay itself always starts at
    /// the monitor's beginning, so that its state is right.
    pub from: Option<DateTime<Utc>>,
    /// Replay up to this instant; default: now.
    pub to: Option<DateTime<Utc>>,
    /// Replay with this policy instead of the recorded one.
    pub policy: Option<PolicyInput>,
}

/// Runs detection again over the monitor's recorded inputs with a virtual clock. With the
/// recorded policy the result is identical to what was recorded; with another policy the
/// rows show what would have been derived instead, beside what was.
#[utoipa::path(post, path = "/v1/monitors/{slug}/replay", tag = "monitors", security(("bearer" = ["read"])),
    params(("slug" = String, Path, description = "The monitor's slug")),
    request_body(content = Option<ReplayRequest>, description = "Optional"),
    responses((status = 200, body = ReplayReport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn replay(
    app: Data<App>,
    caller: Caller,
    slug: Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<Json<ReplayReport>, ApiError> {
    caller.require(Scope::Read)?;
    check_slug(&slug)?;
    let bytes = body::read(&req, payload, app.config.max_body_bytes).await?;
    let input: ReplayRequest =
        if bytes.iter().all(u8::is_ascii_whitespace) { ReplayRequest::default() } else { body::json(&bytes)? };
    if let (Some(from), Some(to)) = (input.from, input.to)
        && from > to
    {
        return Err(ApiError::unprocessable("invalid_value", "`from` is after `to`"));
    }
    let policy = input.policy.as_ref().map(PolicyInput::to_override).transpose()?.unwrap_or_default();
    let query =
        ReplayQuery { client: caller.client.clone(), slug: slug.to_string(), from: input.from, to: input.to, policy };
    let report =
        crate::replay::replay(app.store.as_ref(), query, app.clock.now(), |_, _| {}).await.map_err(|e| match e {
            ReplayError::NotFound(slug) => telltale_domain::monitor::MonitorError::NotFound(slug).into(),
            ReplayError::HostNotFound(host) => ApiError::not_found("host_not_found", format!("no host `{host}`")),
            ReplayError::Store(e) => ApiError::from(e),
        })?;
    Ok(Json(report))
}
