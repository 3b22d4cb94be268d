//! A client's defaults for all its monitors: its alert policy (`/v1/alert-policy`) and its
//! maintenance windows (`/v1/maintenance`). Each change is recorded on the client's stream, then
//! on the stream of every monitor of the client (`ClientDefaultsApplied`), so that a monitor's
//! decisions, and their replay, depend only on its own recorded inputs.

use actix_web::http::StatusCode;
use actix_web::web::{self, Data, Json, Path};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use telltale_domain::client::{ClientCommand, Scope};
use telltale_domain::ids::streams;
use telltale_domain::maintenance::{MaintenanceWindow, WindowTime};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use super::dto::{AlertPolicyInput, AlertPolicyOut, DurationInput};
use super::{ApiError, Caller, ErrorBody, body};
use crate::app::App;

#[derive(OpenApi)]
#[openapi(paths(get_policy, set_policy, list_windows, add_window, remove_window))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/v1/alert-policy", "GET, PUT")
            .route(web::get().to(get_policy))
            .route(web::put().to(set_policy)),
    );
    cfg.service(
        super::resource("/v1/maintenance", "GET, POST")
            .route(web::get().to(list_windows))
            .route(web::post().to(add_window)),
    );
    cfg.service(super::resource("/v1/maintenance/{id}", "DELETE").route(web::delete().to(remove_window)));
}

/// The client's default alert policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientPolicyOut {
    /// The knobs the client states; a monitor's own `alert_policy` overrides each.
    pub alert_policy: AlertPolicyOut,
    /// Every knob, with telltale's defaults for what the client does not state.
    pub effective: AlertPolicyOut,
}

async fn policy_out(app: &App, client: &str) -> Result<ClientPolicyOut, ApiError> {
    let state = app.clients.state(&streams::client(client)).await?;
    Ok(ClientPolicyOut {
        alert_policy: AlertPolicyOut::from(&state.alert_policy),
        effective: AlertPolicyOut::from(&state.alert_policy.resolve()),
    })
}

/// The key's client's default alert policy, and what it comes to with telltale's defaults.
#[utoipa::path(get, path = "/v1/alert-policy", tag = "policy", security(("bearer" = ["read"])),
    responses((status = 200, body = ClientPolicyOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get_policy(app: Data<App>, caller: Caller) -> Result<Json<ClientPolicyOut>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(policy_out(&app, &caller.client).await?))
}

/// Sets the client's default alert policy (replacing it whole; `{}` returns to telltale's
/// defaults). Every monitor of the client follows it at once, except for the knobs its own
/// `alert_policy` states.
#[utoipa::path(put, path = "/v1/alert-policy", tag = "policy", security(("bearer" = ["admin"])), request_body = AlertPolicyInput,
    responses((status = 200, body = ClientPolicyOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_policy(
    app: Data<App>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<Json<ClientPolicyOut>, ApiError> {
    caller.require(Scope::Admin)?;
    let bytes = body::read(&req, payload, app.config.max_body_bytes).await?;
    let input: AlertPolicyInput = body::json(&bytes)?;
    let policy = input.to_policy("")?;
    check_escalation(&app, &caller.client, &policy, "").await?;
    app.clients.execute(&streams::client(&caller.client), ClientCommand::SetAlertPolicy(policy), None).await?;
    app.apply_client_defaults(&caller.client).await?;
    Ok(Json(policy_out(&app, &caller.client).await?))
}

/// A new maintenance window: either one-off (`from`, `to`) or recurring (`cron` in `timezone`,
/// each occurrence lasting `duration`). It covers the monitors with any of `tags` or any of
/// `monitors` (slugs), or every monitor of the client when both are absent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowInput {
    #[schema(example = "database upgrade")]
    pub reason: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Five fields, as monitor schedules take them.
    #[schema(example = "0 2 * * SUN")]
    pub cron: Option<String>,
    /// IANA zone of `cron`; default `UTC`.
    #[schema(example = "Europe/Berlin")]
    pub timezone: Option<String>,
    pub duration: Option<DurationInput>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub monitors: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WindowOut {
    pub id: Uuid,
    pub reason: String,
    /// `once` or `recurring`.
    pub kind: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub duration: Option<String>,
    pub tags: Vec<String>,
    pub monitors: Vec<String>,
    /// The current or next occurrence, `[start, end)`, if any.
    pub next: Option<[DateTime<Utc>; 2]>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WindowList {
    pub windows: Vec<WindowOut>,
}

fn window_out(w: &MaintenanceWindow, now: DateTime<Utc>) -> WindowOut {
    let next = w.occurrence_after(now).map(|(start, end)| [start, end]);
    let (kind, from, to, cron, timezone, duration) = match &w.when {
        WindowTime::Once { from, to } => ("once", Some(*from), Some(*to), None, None, None),
        WindowTime::Recurring { cron, timezone, duration } => {
            ("recurring", None, None, Some(cron.clone()), Some(timezone.clone()), Some(duration.to_string()))
        }
    };
    WindowOut {
        id: w.id,
        reason: w.reason.clone(),
        kind: kind.into(),
        from,
        to,
        cron,
        timezone,
        duration,
        tags: w.tags.clone(),
        monitors: w.monitors.clone(),
        next,
    }
}

/// The client's maintenance windows.
#[utoipa::path(get, path = "/v1/maintenance", tag = "policy", security(("bearer" = ["read"])),
    responses((status = 200, body = WindowList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_windows(app: Data<App>, caller: Caller) -> Result<Json<WindowList>, ApiError> {
    caller.require(Scope::Read)?;
    let state = app.clients.state(&streams::client(&caller.client)).await?;
    let now = app.clock.now();
    Ok(Json(WindowList { windows: state.maintenance.values().map(|w| window_out(w, now)).collect() }))
}

/// Adds a maintenance window. Inside it, what the covered monitors do is recorded and their
/// alerts are held; when it ends, an unchanged state is not announced again, a recovery is
/// announced once, and timers (deadlines, retry windows, reminders) start from its end.
#[utoipa::path(post, path = "/v1/maintenance", tag = "policy", security(("bearer" = ["admin"])), request_body = WindowInput,
    responses((status = 201, body = WindowOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_window(
    app: Data<App>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Admin)?;
    let bytes = body::read(&req, payload, app.config.max_body_bytes).await?;
    let input: WindowInput = body::json(&bytes)?;
    let invalid = |m: &str| ApiError::unprocessable("invalid_value", m.to_string());
    let when = match (&input.from, &input.to, &input.cron) {
        (Some(from), Some(to), None) if input.duration.is_none() && input.timezone.is_none() => {
            WindowTime::Once { from: *from, to: *to }
        }
        (None, None, Some(cron)) => WindowTime::Recurring {
            cron: cron.trim().to_string(),
            timezone: input.timezone.clone().unwrap_or_else(|| "UTC".into()),
            duration: input
                .duration
                .as_ref()
                .ok_or_else(|| invalid("duration: a recurring window needs one"))?
                .to_span("duration")?,
        },
        _ => {
            return Err(invalid(
                "a window is either {\"from\", \"to\"} or {\"cron\", \"timezone\", \"duration\"}, e.g. \
                 {\"cron\": \"0 2 * * SUN\", \"timezone\": \"Europe/Berlin\", \"duration\": \"2h\"}",
            ));
        }
    };
    for slug in &input.monitors {
        super::monitors::check_slug(slug)?;
        // A typo would cover nothing and hold nobody's alerts: name only monitors that exist.
        if !app.monitors.state(&streams::monitor(&caller.client, slug)).await?.exists() {
            return Err(invalid(&format!(
                "monitors: no monitor `{slug}`; a window covers existing monitors by slug, or any monitor by tag"
            )));
        }
    }
    let window = MaintenanceWindow {
        id: Uuid::new_v4(),
        reason: input.reason.unwrap_or_default(),
        when,
        tags: input.tags,
        monitors: input.monitors,
    };
    let out = window_out(&window, app.clock.now());
    app.clients.execute(&streams::client(&caller.client), ClientCommand::AddMaintenanceWindow(window), None).await?;
    app.apply_client_defaults(&caller.client).await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(out))
}

/// Removes a maintenance window; one under way ends now.
#[utoipa::path(delete, path = "/v1/maintenance/{id}", tag = "policy", security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = "The window's id")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn remove_window(app: Data<App>, caller: Caller, id: Path<Uuid>) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Admin)?;
    let command = ClientCommand::RemoveMaintenanceWindow { window_id: id.into_inner() };
    app.clients.execute(&streams::client(&caller.client), command, None).await?;
    app.apply_client_defaults(&caller.client).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Refuses an `escalate_to` that names a channel the client does not have: a typo would send
/// an escalation nowhere, without a word.
pub(crate) async fn check_escalation(
    app: &App,
    client: &str,
    policy: &telltale_domain::policy::AlertPolicy,
    prefix: &str,
) -> Result<(), ApiError> {
    let Some(names) = policy.escalate_to.as_ref().filter(|n| !n.is_empty()) else { return Ok(()) };
    app.consistent().await;
    let channels = telltale_projections::models::notifications::channels(&app.read.pool, client).await?;
    if let Some(unknown) = names.iter().find(|n| !channels.iter().any(|c| &c.name == *n)) {
        let known: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
        let known =
            if known.is_empty() { "none yet: add one with POST /v1/channels".to_string() } else { known.join(", ") };
        return Err(ApiError::unprocessable(
            "invalid_value",
            format!("{prefix}escalate_to: no channel `{unknown}` (this client's channels: {known})"),
        ));
    }
    Ok(())
}
