//! Ingest: what monitored processes send. Every 2xx answer means the event is durably in the
//! log (the append was committed before the answer), and a retry with the same `event_id` is
//! recognised and not counted twice.

use actix_web::HttpRequest;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::{self, Data, Json, Path};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use telltale_domain::EventPayload;
use telltale_domain::client::Scope;
use telltale_domain::ids::streams;
use telltale_domain::monitor::{MonitorCommand, MonitorError, MonitorEvent, Signal, SignalDetails, SignalKind};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use super::dto::{MonitorOut, MonitorSpec, default_config};
use super::monitors::check_slug;
use super::{ApiError, Caller, ErrorBody, body};
use crate::app::App;
use crate::commands::CommandError;

#[derive(OpenApi)]
#[openapi(paths(heartbeat, event, batch))]
pub struct Api;

/// Events in one batch at most.
pub const MAX_BATCH: usize = 500;
const MAX_EVENT_ID_LEN: usize = 128;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/v1/monitors/{slug}/heartbeat", "POST").route(web::post().to(heartbeat)));
    cfg.service(super::resource("/v1/monitors/{slug}/events/batch", "POST").route(web::post().to(batch)));
}

/// One event from a monitored process.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct EventInput {
    /// `heartbeat`, `started`, `running`, `completed` or `failed`.
    #[serde(rename = "type")]
    #[schema(example = "completed")]
    pub kind: Option<String>,
    /// Pairs the events of one run. Issued by the server on `started` when absent.
    pub run_id: Option<String>,
    /// The process's exit code; any non-zero code makes `completed` a failure. A code from
    /// 2147483648 to 4294967295 (a Windows DWORD such as 3221225477) is kept as the i32 with the
    /// same bits (-1073741819).
    pub exit_code: Option<i64>,
    pub message: Option<String>,
    /// A JSON object, at most 16 KiB.
    pub metadata: Option<Value>,
    /// Metrics of a heartbeat, a JSON object.
    pub metrics: Option<Value>,
    /// A heartbeat's own status word, kept as sent.
    pub status: Option<String>,
    /// The tail of the process's output; only the last 64 KiB are kept.
    pub output: Option<String>,
    /// Set by a sender that had to replace bytes of the output that were not UTF-8.
    pub output_lossy: Option<bool>,
    /// The run's duration in milliseconds as the sender measured it (`completed`, `failed`).
    /// Without it, the duration is the time between the start and the finish as received.
    pub duration_ms: Option<i64>,
    /// The sender's clock (RFC 3339). Kept for drift reports; never used for detection.
    pub sent_at: Option<String>,
    pub host: Option<String>,
    /// The sender's id for this event: a retry with the same id is recorded once.
    pub event_id: Option<String>,
    /// The monitor's configuration (check-in upsert), for keys with the `provision` scope:
    /// an unknown slug is created with it, a known one updated to it.
    pub monitor: Option<MonitorSpec>,
}

/// What was recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestAck {
    /// The event type recorded, e.g. `HeartbeatReceived`, `RunStarted`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's position in the log.
    pub position: i64,
    /// The run this event belongs to, for run events.
    pub run_id: Option<String>,
    /// True when this `event_id` was already recorded: nothing new was added.
    pub duplicate: bool,
    /// The monitor after this event.
    pub monitor: MonitorOut,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchInput {
    /// At most 500 events, recorded in order.
    pub events: Vec<EventInput>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAck {
    pub results: Vec<IngestAck>,
}

/// A validated event, ready to become a command.
struct Prepared {
    signal: Signal,
    event_id: Option<String>,
    spec: Option<MonitorSpec>,
}

fn prepare(input: EventInput, default_kind: SignalKind, lossy: bool) -> Result<Prepared, ApiError> {
    let kind = match &input.kind {
        None => default_kind,
        Some(k) => SignalKind::parse(k).ok_or_else(|| {
            ApiError::unprocessable(
                "unknown_event_type",
                format!("unknown event type `{k}`; use heartbeat, started, running, completed or failed"),
            )
        })?,
    };
    let exit_code = input.exit_code.map(exit_code).transpose()?;
    let sent_at = input
        .sent_at
        .as_deref()
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ApiError::unprocessable("invalid_value", format!("sent_at `{s}` is not an RFC 3339 time")))
        })
        .transpose()?;
    if let Some(id) = &input.event_id
        && (id.is_empty() || id.len() > MAX_EVENT_ID_LEN)
    {
        return Err(ApiError::unprocessable(
            "invalid_value",
            format!("event_id must have 1 to {MAX_EVENT_ID_LEN} bytes"),
        ));
    }
    let prepared = Prepared {
        signal: Signal {
            kind: Some(kind),
            run_id: input.run_id,
            fresh_run_id: Uuid::new_v4().to_string(),
            exit_code,
            duration_ms: input.duration_ms,
            status: input.status,
            metrics: input.metrics,
            output: input.output,
            output_lossy: (lossy && input.kind.is_some()) || input.output_lossy.unwrap_or(false),
            details: SignalDetails { sent_at, host: input.host, message: input.message, metadata: input.metadata },
        },
        event_id: input.event_id,
        spec: input.monitor,
    };
    telltale_domain::monitor::check_signal(&prepared.signal)?;
    if let Some(spec) = &prepared.spec {
        // Checked now, so that a bad specification refuses the event before anything is kept.
        spec.apply(default_config("check"))?;
    }
    Ok(prepared)
}

/// Creates or updates the monitor from an event's specification (check-in upsert).
async fn provision(app: &App, caller: &Caller, slug: &str, spec: Option<&MonitorSpec>) -> Result<(), ApiError> {
    let stream = streams::monitor(&caller.client, slug);
    let state = app.monitors.state(&stream).await?;
    let command = if state.exists() {
        let Some(spec) = spec else { return Ok(()) };
        let current = state.config.clone().ok_or_else(|| ApiError::internal("a live monitor without configuration"))?;
        MonitorCommand::Reconfigure { config: spec.apply(current)? }
    } else {
        let config = match spec {
            Some(spec) => spec.apply(default_config(slug))?,
            None => default_config(slug),
        };
        let defaults = app.client_defaults(&caller.client).await?;
        MonitorCommand::Create { client: caller.client.clone(), slug: slug.to_string(), config, defaults }
    };
    match app.monitors.execute(&stream, command, None).await {
        // Two first events raced: the other one created it.
        Ok(_) | Err(CommandError::Domain(MonitorError::AlreadyExists(_))) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn record(app: &App, caller: &Caller, slug: &str, prepared: Prepared) -> Result<IngestAck, ApiError> {
    let stream = streams::monitor(&caller.client, slug);
    if let Some(spec) = &prepared.spec {
        if !caller.has(Scope::Provision) {
            return Err(ApiError::forbidden(
                "this event carries a `monitor` specification, which needs a key with the `provision` scope",
            ));
        }
        provision(app, caller, slug, Some(spec)).await?;
    }
    let (kind, run_id, event_id) = (prepared.signal.kind, prepared.signal.run_id.clone(), prepared.event_id.clone());
    let command = MonitorCommand::Signal(Box::new(prepared.signal));
    let outcome = match app.monitors.execute(&stream, command.clone(), prepared.event_id.clone()).await {
        Err(CommandError::Domain(MonitorError::NotFound(_))) if caller.has(Scope::Provision) => {
            provision(app, caller, slug, None).await?;
            app.monitors.execute(&stream, command, prepared.event_id).await?
        }
        Err(CommandError::Domain(MonitorError::NotFound(_))) => return Err(unknown_monitor(slug)),
        other => other?,
    };
    let (position, fact) = outcome
        .events
        .iter()
        .rev()
        .find(|(_, e)| !e.is_derived() && !matches!(e, MonitorEvent::MonitorResumed(_)))
        .or_else(|| outcome.events.last())
        .ok_or_else(|| ApiError::internal("a signal produced no event"))?;
    if outcome.duplicate {
        same_event(kind, run_id.as_deref(), event_id.as_deref().unwrap_or_default(), fact)?;
    }
    Ok(IngestAck {
        event_type: fact.event_type().to_string(),
        position: *position,
        run_id: fact.run_id().map(str::to_string),
        duplicate: outcome.duplicate,
        monitor: MonitorOut::of(&outcome.state, app.clock.now(), app.started_at),
    })
}

/// A retry must be the same event: an `event_id` already recorded for another kind of event,
/// or for another run, is a mistake that would otherwise lose this event without a word.
fn same_event(
    kind: Option<SignalKind>,
    run_id: Option<&str>,
    event_id: &str,
    recorded: &MonitorEvent,
) -> Result<(), ApiError> {
    let recorded_kinds: &[SignalKind] = match recorded {
        MonitorEvent::HeartbeatReceived(_) => &[SignalKind::Heartbeat],
        MonitorEvent::RunStarted(_) => &[SignalKind::Started],
        MonitorEvent::RunProgressed(_) => &[SignalKind::Running],
        MonitorEvent::RunCompleted(_) => &[SignalKind::Completed],
        MonitorEvent::RunFailed(_) => &[SignalKind::Completed, SignalKind::Failed],
        // Recorded as ignored or too early: what it was is not kept apart; take the retry.
        _ => return Ok(()),
    };
    let kind = kind.unwrap_or(SignalKind::Heartbeat);
    let other_run = matches!((run_id, recorded.run_id()), (Some(asked), Some(seen)) if asked != seen);
    if recorded_kinds.contains(&kind) && !other_run {
        return Ok(());
    }
    let what = match recorded.run_id() {
        Some(run) => format!("{} of run `{run}`", recorded.event_type()),
        None => recorded.event_type().to_string(),
    };
    Err(ApiError::conflict(
        "event_id_reused",
        format!(
            "event_id `{event_id}` was already used for another event ({what}); a retry must resend the same event, \
             and a new event needs a new event_id"
        ),
    ))
}

fn unknown_monitor(slug: &str) -> ApiError {
    ApiError::not_found(
        "monitor_not_found",
        format!(
            "no monitor `{slug}`: create it with POST /v1/monitors (an admin key), or send its first event with a key \
             that has the `provision` scope, optionally with a `monitor` object giving its schedule"
        ),
    )
}

fn is_json(req: &HttpRequest, bytes: &[u8]) -> bool {
    let declared = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    // Declared JSON is JSON, declared text is text (even when it starts with `{`); anything else
    // (curl -d sends form-urlencoded) is JSON when it looks like an object.
    declared.contains("json")
        || (!declared.starts_with("text/") && bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'))
}

/// Records a heartbeat. The body may be empty, a JSON event (its `type` defaults to
/// `heartbeat`), or plain text, kept as the message (bytes that are not UTF-8 are replaced).
#[utoipa::path(post, path = "/v1/monitors/{slug}/heartbeat", tag = "ingest", security(("bearer" = ["ingest"])),
    params(("slug" = String, Path, description = "The monitor's slug")),
    request_body(content = Option<EventInput>, description = "Optional"),
    responses((status = 200, body = IngestAck), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`event_id_reused`: the `event_id` was already used for another event"),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn heartbeat(
    app: Data<App>,
    caller: Caller,
    slug: Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<Json<IngestAck>, ApiError> {
    caller.require(Scope::Ingest)?;
    check_slug(&slug)?;
    let bytes = body::read(&req, payload, app.config.max_body_bytes).await?;
    let input = if bytes.iter().all(u8::is_ascii_whitespace) {
        EventInput::default()
    } else if is_json(&req, &bytes) {
        body::json(&bytes)?
    } else {
        let text = String::from_utf8_lossy(&bytes);
        let mut message = text.trim().to_string();
        let limit = telltale_domain::monitor::MAX_MESSAGE_BYTES;
        if message.len() > limit {
            let mut cut = limit;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        EventInput { message: Some(message), ..EventInput::default() }
    };
    let lossy = std::str::from_utf8(&bytes).is_err();
    let prepared = prepare(input, SignalKind::Heartbeat, lossy)?;
    Ok(Json(record(&app, &caller, &slug, prepared).await?))
}

/// Records one event of a run's lifecycle, or a heartbeat.
#[utoipa::path(post, path = "/v1/monitors/{slug}/events", tag = "ingest", security(("bearer" = ["ingest"])),
    params(("slug" = String, Path, description = "The monitor's slug")),
    request_body(content = EventInput, example = json!({"type": "completed", "run_id": "r1", "exit_code": 0})),
    responses((status = 200, body = IngestAck), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`event_id_reused`: the `event_id` was already used for another event"),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn event(
    app: Data<App>,
    caller: Caller,
    slug: Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<Json<IngestAck>, ApiError> {
    caller.require(Scope::Ingest)?;
    check_slug(&slug)?;
    let bytes = body::read(&req, payload, app.config.max_body_bytes).await?;
    let input: EventInput = body::json(&bytes)?;
    if input.kind.is_none() {
        return Err(ApiError::unprocessable(
            "missing_type",
            "an event needs a `type`: heartbeat, started, running, completed or failed",
        ));
    }
    let lossy = std::str::from_utf8(&bytes).is_err();
    let prepared = prepare(input, SignalKind::Heartbeat, lossy)?;
    Ok(Json(record(&app, &caller, &slug, prepared).await?))
}

/// Records many events of one monitor, in order. Every event is checked first: one invalid
/// event refuses the whole batch and nothing is recorded.
#[utoipa::path(post, path = "/v1/monitors/{slug}/events/batch", tag = "ingest", security(("bearer" = ["ingest"])),
    params(("slug" = String, Path, description = "The monitor's slug")),
    request_body(content = BatchInput,
        example = json!({"events": [{"type": "started", "run_id": "r1"}, {"type": "completed", "run_id": "r1"}]})),
    responses((status = 200, body = BatchAck), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`event_id_reused`: the `event_id` was already used for another event"),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn batch(
    app: Data<App>,
    caller: Caller,
    slug: Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<Json<BatchAck>, ApiError> {
    caller.require(Scope::Ingest)?;
    check_slug(&slug)?;
    let bytes = body::read(&req, payload, app.config.max_body_bytes).await?;
    let input: BatchInput = body::json(&bytes)?;
    if input.events.is_empty() || input.events.len() > MAX_BATCH {
        return Err(ApiError::unprocessable("invalid_batch", format!("a batch holds 1 to {MAX_BATCH} events")));
    }
    let lossy = std::str::from_utf8(&bytes).is_err();
    let mut prepared = Vec::with_capacity(input.events.len());
    for (i, event) in input.events.into_iter().enumerate() {
        if event.kind.is_none() {
            return Err(ApiError::unprocessable("missing_type", format!("events[{i}] needs a `type`")));
        }
        prepared.push(prepare(event, SignalKind::Heartbeat, lossy).map_err(|mut e| {
            e.message = format!("events[{i}]: {}", e.message);
            e
        })?);
    }
    let state = app.monitors.state(&streams::monitor(&caller.client, &slug)).await?;
    if !state.exists() && !caller.has(Scope::Provision) {
        return Err(unknown_monitor(&slug));
    }
    let mut results = Vec::with_capacity(prepared.len());
    for (i, p) in prepared.into_iter().enumerate() {
        let result = record(&app, &caller, &slug, p).await.map_err(|mut e| {
            e.message = match i {
                0 => format!("events[0]: {}; nothing was recorded", e.message),
                _ => format!("events[{i}]: {}; events[0..{i}] were recorded (a retry of them is safe)", e.message),
            };
            e
        })?;
        results.push(result);
    }
    Ok(Json(BatchAck { results }))
}

/// A run's exit code as an i32. A Windows exit code is an unsigned 32-bit DWORD (an access
/// violation is 3221225477, 0xC0000005) that Windows tools also print as the i32 with the same
/// bits (-1073741819): such a code is taken as that i32, rather than refused, so the failure it
/// reports is never lost (edge case C50). Beyond 32 bits it is refused.
fn exit_code(code: i64) -> Result<i32, ApiError> {
    if let Ok(code) = i32::try_from(code) {
        return Ok(code);
    }
    u32::try_from(code).map(|dword| dword as i32).map_err(|_| {
        ApiError::unprocessable(
            "invalid_value",
            format!("exit_code {code} is not a 32-bit integer (from -2147483648 to 4294967295)"),
        )
    })
}
