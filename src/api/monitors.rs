//! Monitors: create, list, read, change, pause, resume, delete, and their event history.

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::web::{self, Data, Json, Path, Query};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use telltale_domain::client::Scope;
use telltale_domain::ids::{self, streams};
use telltale_domain::monitor::{MonitorCommand, MonitorConfig};
use telltale_domain::span::Span;
use telltale_projections::models::{history, monitors};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::dto::{AlertPolicyInput, DurationInput, MonitorOut, ScheduleInput};
use super::{ApiError, Caller, ErrorBody, body};
use crate::app::App;

#[derive(OpenApi)]
#[openapi(paths(list, create, get, update, delete, pause, resume, silence, unsilence, events, runs))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/v1/monitors", "GET, POST").route(web::get().to(list)).route(web::post().to(create)));
    cfg.service(
        super::resource("/v1/monitors/{slug}", "GET, PATCH, DELETE")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    );
    cfg.service(super::resource("/v1/monitors/{slug}/runs", "GET").route(web::get().to(runs)));
    cfg.service(super::resource("/v1/monitors/{slug}/pause", "POST").route(web::post().to(pause)));
    cfg.service(super::resource("/v1/monitors/{slug}/resume", "POST").route(web::post().to(resume)));
    cfg.service(
        super::resource("/v1/monitors/{slug}/silence", "POST, DELETE")
            .route(web::post().to(silence))
            .route(web::delete().to(unsilence)),
    );
    cfg.service(
        super::resource("/v1/monitors/{slug}/events", "GET, POST")
            .route(web::get().to(events))
            .route(web::post().to(super::ingest::event)),
    );
}

pub fn check_slug(slug: &str) -> Result<(), ApiError> {
    ids::validate_slug(slug).map_err(|e| ApiError::unprocessable("invalid_slug", e.to_string()))
}

/// A new monitor.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMonitor {
    /// Unique within the client: lowercase letters, digits, `-`, `_`, `.`, `@`; at most 64.
    #[schema(example = "nightly-sync")]
    pub slug: String,
    /// A name for people; defaults to the slug.
    #[schema(example = "Nightly sync")]
    pub name: Option<String>,
    pub schedule: ScheduleInput,
    /// How late a signal may be before it counts as missed. Defaults to 0s.
    pub grace: Option<DurationInput>,
    /// The longest a run may take.
    pub max_runtime: Option<DurationInput>,
    /// Starts or heartbeats closer together than this are recorded as too early.
    pub min_interval: Option<DurationInput>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// This monitor's alert policy: each knob given overrides the client's default
    /// (`GET /v1/alert-policy`), which overrides telltale's.
    pub alert_policy: Option<AlertPolicyInput>,
    /// While paused, ignore signals (recorded as `SignalIgnored`) instead of resuming. Default
    /// false: a signal resumes a paused monitor.
    #[serde(default)]
    pub manual_resume: bool,
}

/// Changes to a monitor; absent fields are kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMonitor {
    pub name: Option<String>,
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
    pub tags: Option<Vec<String>>,
    /// Replaces the monitor's own alert policy whole; `{}` inherits every knob from the client.
    pub alert_policy: Option<AlertPolicyInput>,
    pub manual_resume: Option<bool>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<DurationInput>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MonitorList {
    pub monitors: Vec<MonitorOut>,
}

fn optional_span(input: &Option<DurationInput>, field: &str) -> Result<Option<Span>, ApiError> {
    input.as_ref().map(|d| d.to_span(field)).transpose()
}

async fn current(app: &App, caller: &Caller, slug: &str) -> Result<telltale_domain::monitor::Monitor, ApiError> {
    check_slug(slug)?;
    let state = app.monitors.state(&streams::monitor(&caller.client, slug)).await?;
    if !state.exists() {
        return Err(telltale_domain::monitor::MonitorError::NotFound(slug.to_string()).into());
    }
    Ok(state)
}

fn out(app: &App, state: &telltale_domain::monitor::Monitor) -> MonitorOut {
    MonitorOut::of(state, app.clock.now(), app.started_at)
}

/// Lists the monitors of the key's client.
#[utoipa::path(get, path = "/v1/monitors", tag = "monitors", security(("bearer" = ["read"])),
    responses((status = 200, body = MonitorList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(app: Data<App>, caller: Caller) -> Result<Json<MonitorList>, ApiError> {
    caller.require(Scope::Read)?;
    app.consistent().await;
    let now = app.clock.now();
    let rows = monitors::list(&app.read.pool, Some(&caller.client)).await?;
    Ok(Json(MonitorList { monitors: rows.iter().map(|v| MonitorOut::of(&v.state, now, app.started_at)).collect() }))
}

/// Creates a monitor.
#[utoipa::path(post, path = "/v1/monitors", tag = "monitors", security(("bearer" = ["admin"])), request_body = CreateMonitor,
    responses((status = 201, body = MonitorOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create(
    app: Data<App>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Admin)?;
    let bytes = body::read(&req, payload, app.config.max_body_bytes).await?;
    let input: CreateMonitor = body::json(&bytes)?;
    check_slug(&input.slug)?;
    let config = MonitorConfig {
        name: input.name.clone().unwrap_or_else(|| input.slug.clone()),
        schedule: input.schedule.to_schedule()?,
        grace: optional_span(&input.grace, "grace")?.unwrap_or(Span::ZERO),
        max_runtime: optional_span(&input.max_runtime, "max_runtime")?,
        min_interval: optional_span(&input.min_interval, "min_interval")?,
        tags: input.tags,
        alert_policy: input
            .alert_policy
            .as_ref()
            .map(|p| p.to_policy("alert_policy."))
            .transpose()?
            .unwrap_or_default(),
        manual_resume: input.manual_resume,
    };
    super::policy::check_escalation(&app, &caller.client, &config.alert_policy, "alert_policy.").await?;
    let defaults = app.client_defaults(&caller.client).await?;
    let command = MonitorCommand::Create { client: caller.client.clone(), slug: input.slug.clone(), config, defaults };
    let stream = streams::monitor(&caller.client, &input.slug);
    let mut outcome = app.monitors.execute(&stream, command, None).await?;
    // The client's defaults may have changed while this was decided.
    if app.apply_client_defaults_to(&caller.client, &input.slug).await? {
        outcome.state = app.monitors.state(&stream).await?;
    }
    Ok(HttpResponse::build(StatusCode::CREATED)
        .insert_header((LOCATION, format!("/v1/monitors/{}", input.slug)))
        .json(out(&app, &outcome.state)))
}

/// Reads one monitor.
#[utoipa::path(get, path = "/v1/monitors/{slug}", tag = "monitors", security(("bearer" = ["read"])),
    params(("slug" = String, Path, description = "The monitor's slug")),
    responses((status = 200, body = MonitorOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get(app: Data<App>, caller: Caller, slug: Path<String>) -> Result<Json<MonitorOut>, ApiError> {
    caller.require(Scope::Read)?;
    let state = current(&app, &caller, &slug).await?;
    Ok(Json(out(&app, &state)))
}

/// Changes a monitor's configuration.
#[utoipa::path(patch, path = "/v1/monitors/{slug}", tag = "monitors", security(("bearer" = ["admin"])), request_body = UpdateMonitor,
    params(("slug" = String, Path, description = "The monitor's slug")),
    responses((status = 200, body = MonitorOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    app: Data<App>,
    caller: Caller,
    slug: Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<Json<MonitorOut>, ApiError> {
    caller.require(Scope::Admin)?;
    check_slug(&slug)?;
    let bytes = body::read(&req, payload, app.config.max_body_bytes).await?;
    let input: UpdateMonitor = body::json(&bytes)?;
    let state = current(&app, &caller, &slug).await?;
    let mut config = state.config.clone().ok_or_else(|| ApiError::internal("a live monitor without configuration"))?;
    if let Some(name) = input.name {
        config.name = name;
    }
    if let Some(schedule) = &input.schedule {
        config.schedule = schedule.to_schedule()?;
    }
    if let Some(grace) = &input.grace {
        config.grace = grace.to_span("grace")?;
    }
    if let Some(max_runtime) = &input.max_runtime {
        config.max_runtime = optional_span(max_runtime, "max_runtime")?;
    }
    if let Some(min_interval) = &input.min_interval {
        config.min_interval = optional_span(min_interval, "min_interval")?;
    }
    if let Some(tags) = input.tags {
        config.tags = tags;
    }
    if let Some(policy) = &input.alert_policy {
        config.alert_policy = policy.to_policy("alert_policy.")?;
        super::policy::check_escalation(&app, &caller.client, &config.alert_policy, "alert_policy.").await?;
    }
    if let Some(manual) = input.manual_resume {
        config.manual_resume = manual;
    }
    let outcome = app
        .monitors
        .execute(&streams::monitor(&caller.client, &slug), MonitorCommand::Reconfigure { config }, None)
        .await?;
    Ok(Json(out(&app, &outcome.state)))
}

async fn simple(app: &App, caller: &Caller, slug: &str, command: MonitorCommand) -> Result<MonitorOut, ApiError> {
    caller.require(Scope::Admin)?;
    check_slug(slug)?;
    let outcome = app.monitors.execute(&streams::monitor(&caller.client, slug), command, None).await?;
    Ok(out(app, &outcome.state))
}

/// Deletes a monitor. Its history stays in the log.
#[utoipa::path(delete, path = "/v1/monitors/{slug}", tag = "monitors", security(("bearer" = ["admin"])),
    params(("slug" = String, Path, description = "The monitor's slug")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(app: Data<App>, caller: Caller, slug: Path<String>) -> Result<HttpResponse, ApiError> {
    simple(&app, &caller, &slug, MonitorCommand::Delete).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Pauses a monitor: no deadlines, no alerts, until it is resumed or signals again.
#[utoipa::path(post, path = "/v1/monitors/{slug}/pause", tag = "monitors", security(("bearer" = ["admin"])),
    params(("slug" = String, Path, description = "The monitor's slug")),
    responses((status = 200, body = MonitorOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn pause(app: Data<App>, caller: Caller, slug: Path<String>) -> Result<Json<MonitorOut>, ApiError> {
    Ok(Json(simple(&app, &caller, &slug, MonitorCommand::Pause).await?))
}

/// Resumes a paused monitor; its next deadline counts from now.
#[utoipa::path(post, path = "/v1/monitors/{slug}/resume", tag = "monitors", security(("bearer" = ["admin"])),
    params(("slug" = String, Path, description = "The monitor's slug")),
    responses((status = 200, body = MonitorOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn resume(app: Data<App>, caller: Caller, slug: Path<String>) -> Result<Json<MonitorOut>, ApiError> {
    Ok(Json(simple(&app, &caller, &slug, MonitorCommand::Resume).await?))
}

/// A silence: the monitor's alerts are held (recorded, not announced) until it ends.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceInput {
    /// How long, from now (at most 31d).
    #[schema(example = "30m")]
    pub duration: DurationInput,
    /// Why, for the history and the dashboard.
    #[schema(example = "deploying")]
    pub reason: Option<String>,
}

/// Silences a monitor for a while: what happens meanwhile is recorded and its alerts are held.
/// When the silence ends, an alert still open is announced (a miss after a fresh deadline
/// counted from the end, a failure after its retry window), one that recovered meanwhile is
/// announced resolved once, and an alert announced before it and unchanged is not announced
/// again. A new silence replaces the one under way.
#[utoipa::path(post, path = "/v1/monitors/{slug}/silence", tag = "monitors", security(("bearer" = ["admin"])),
    request_body = SilenceInput, params(("slug" = String, Path, description = "The monitor's slug")),
    responses((status = 200, body = MonitorOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn silence(
    app: Data<App>,
    caller: Caller,
    slug: Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<Json<MonitorOut>, ApiError> {
    caller.require(Scope::Admin)?;
    // A monitor that is not there (or not this client's) is a 404 whatever the body says.
    current(&app, &caller, &slug).await?;
    let bytes = body::read(&req, payload, app.config.max_body_bytes).await?;
    let input: SilenceInput = body::json(&bytes)?;
    let command = MonitorCommand::Silence { duration: input.duration.to_span("duration")?, reason: input.reason };
    Ok(Json(simple(&app, &caller, &slug, command).await?))
}

/// Ends a monitor's silence now (nothing happens when it has none).
#[utoipa::path(delete, path = "/v1/monitors/{slug}/silence", tag = "monitors", security(("bearer" = ["admin"])),
    params(("slug" = String, Path, description = "The monitor's slug")),
    responses((status = 200, body = MonitorOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unsilence(app: Data<App>, caller: Caller, slug: Path<String>) -> Result<Json<MonitorOut>, ApiError> {
    Ok(Json(simple(&app, &caller, &slug, MonitorCommand::Unsilence).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only events with a position below this (for the next page).
    pub before: Option<i64>,
    /// At most this many events (1 to 500, default 100).
    pub limit: Option<i64>,
    /// Only events of this type, e.g. `HeartbeatReceived`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
}

/// One recorded event.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEvent {
    /// Position in the log; increases with every event.
    pub position: i64,
    /// The event type, e.g. `HeartbeatReceived`, `RunFailed`, `AlertOpened`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub at: DateTime<Utc>,
    pub run_id: Option<String>,
    /// The event's recorded fields.
    pub data: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    /// Newest first.
    pub events: Vec<HistoryEvent>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// A monitor's event history, newest first.
#[utoipa::path(get, path = "/v1/monitors/{slug}/events", tag = "monitors", security(("bearer" = ["read"])),
    params(("slug" = String, Path, description = "The monitor's slug"), HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn events(
    app: Data<App>,
    caller: Caller,
    slug: Path<String>,
    query: Query<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    caller.require(Scope::Read)?;
    current(&app, &caller, &slug).await?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::unprocessable("invalid_value", "limit must be between 1 and 500"));
    }
    app.consistent().await;
    let items =
        history::page(&app.read.pool, &caller.client, &slug, query.before, query.event_type.as_deref(), limit).await?;
    let next_before = (items.len() as i64 == limit).then(|| items.last().map(|i| i.position)).flatten();
    Ok(Json(HistoryPage {
        events: items
            .into_iter()
            .map(|i| HistoryEvent {
                position: i.position,
                event_type: i.event_type,
                at: i.at,
                run_id: i.run_id,
                data: i.data,
            })
            .collect(),
        next_before,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs first heard of before this position (for the next page).
    pub before: Option<i64>,
    /// At most this many runs (1 to 500, default 50).
    pub limit: Option<i64>,
}

/// One run of a monitor.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunOut {
    pub run_id: String,
    /// `running`, `completed`, `failed` or `timed_out` (still running past `max_runtime`).
    pub status: String,
    /// Absent when telltale never saw the start.
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When it was given up on as hung.
    pub timed_out_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<i64>,
    pub host: Option<String>,
    /// The tail of its output (at most 64 KiB).
    pub output: Option<String>,
    /// True when bytes of the output that were not UTF-8 were replaced.
    pub output_lossy: bool,
    pub message: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunsPage {
    /// Newest first.
    pub runs: Vec<RunOut>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// A monitor's runs, newest first.
#[utoipa::path(get, path = "/v1/monitors/{slug}/runs", tag = "monitors", security(("bearer" = ["read"])),
    params(("slug" = String, Path, description = "The monitor's slug"), RunsQuery),
    responses((status = 200, body = RunsPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn runs(
    app: Data<App>,
    caller: Caller,
    slug: Path<String>,
    query: Query<RunsQuery>,
) -> Result<Json<RunsPage>, ApiError> {
    caller.require(Scope::Read)?;
    current(&app, &caller, &slug).await?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::unprocessable("invalid_value", "limit must be between 1 and 500"));
    }
    app.consistent().await;
    let views =
        telltale_projections::models::runs::page(&app.read.pool, &caller.client, &slug, query.before, limit).await?;
    let next_before = (views.len() as i64 == limit).then(|| views.last().map(|v| v.first_position)).flatten();
    Ok(Json(RunsPage {
        runs: views
            .into_iter()
            .map(|v| RunOut {
                run_id: v.run_id,
                status: v.status,
                started_at: v.started_at,
                finished_at: v.finished_at,
                timed_out_at: v.timed_out_at,
                exit_code: v.exit_code,
                duration_ms: v.duration_ms,
                host: v.host,
                output: v.output,
                output_lossy: v.output_lossy,
                message: v.message,
            })
            .collect(),
        next_before,
    }))
}
