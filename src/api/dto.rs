//! Shapes on the wire. Kept apart from domain types, so the domain can change without breaking
//! scripts, and documented for the OpenAPI spec.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use telltale_domain::monitor::{Monitor, MonitorConfig};
use telltale_domain::policy::{AlertPolicy, FailureRatio, FailureTolerance, Policy, Ratio};
use telltale_domain::schedule::Schedule;
use telltale_domain::span::Span;
use utoipa::ToSchema;

use super::ApiError;

/// A duration: `"45s"`, `"5m"`, `"2h"`, `"1d"`, `"1h30m"`, or whole seconds as a number.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum DurationInput {
    Text(String),
    Seconds(i64),
}

impl DurationInput {
    pub fn to_span(&self, field: &str) -> Result<Span, ApiError> {
        let parsed = match self {
            DurationInput::Text(t) => Span::parse(t),
            DurationInput::Seconds(s) => Span::from_secs_checked(*s),
        };
        parsed.map_err(|e| ApiError::unprocessable("invalid_duration", format!("{field}: {e}")))
    }
}

/// When signals are expected: either `every` (a period after the previous signal, in absolute
/// time) or `cron` (a five-field expression, Vixie cron semantics, in `timezone`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    /// A signal is expected this long after the previous one.
    pub every: Option<DurationInput>,
    /// A five-field cron expression (`minute hour day-of-month month day-of-week`), or `@hourly`,
    /// `@daily`, `@weekly`, `@monthly`, `@yearly`. `L`, `W`, `#` are understood in the day fields.
    #[schema(example = "30 2 * * *")]
    pub cron: Option<String>,
    /// The IANA time zone the cron expression is read in; default `UTC`.
    #[schema(example = "Europe/Berlin")]
    pub timezone: Option<String>,
}

impl ScheduleInput {
    pub fn to_schedule(&self) -> Result<Schedule, ApiError> {
        let invalid = |message: String| ApiError::unprocessable("invalid_schedule", message);
        match (&self.every, &self.cron) {
            (Some(every), None) => {
                if self.timezone.is_some() {
                    return Err(invalid("`timezone` applies to `cron` schedules only".into()));
                }
                Schedule::every(every.to_span("schedule.every")?).map_err(|e| invalid(format!("schedule.every: {e}")))
            }
            (None, Some(cron)) => Schedule::cron(cron, self.timezone.as_deref().unwrap_or("UTC"))
                .map_err(|e| invalid(format!("schedule.cron: {e}"))),
            (Some(_), Some(_)) => Err(invalid("a schedule has either `every` or `cron`, not both".into())),
            (None, None) => Err(invalid(
                "schedule needs `every` or `cron`, e.g. {\"every\": \"5m\"} or {\"cron\": \"30 2 * * *\", \"timezone\": \"Europe/Berlin\"}"
                    .into(),
            )),
        }
    }
}

/// A monitor's configuration sent with an event, for check-in upsert: it creates the monitor
/// when the slug is unknown, and updates it when it differs. Absent fields keep the current
/// value (or the default for a new monitor: every 1d, grace 1h).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    pub name: Option<String>,
    pub schedule: Option<ScheduleInput>,
    pub grace: Option<DurationInput>,
    pub max_runtime: Option<DurationInput>,
    pub min_interval: Option<DurationInput>,
    pub tags: Option<Vec<String>>,
    /// The monitor's own alert policy (replaces the one it had).
    pub alert_policy: Option<AlertPolicyInput>,
}

/// The configuration a monitor created by its first event gets when the event says nothing.
pub fn default_config(slug: &str) -> MonitorConfig {
    MonitorConfig::new(slug, Schedule::Every { period: Span::from_secs(86_400) }, Span::from_secs(3_600))
}

/// `failure_tolerance`: a number of failed runs in a row, or a failure ratio over a window.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum FailureToleranceInput {
    /// Alert once this many runs in a row failed (1: the first failure).
    Consecutive(u32),
    Ratio(FailureRatioInput),
}

/// Alert when, of the runs that finished in the last `window`, at least `ratio` failed.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailureRatioInput {
    /// Above 0 and at most 1, e.g. `0.5`.
    #[schema(value_type = f64, example = 0.5)]
    pub ratio: Decimal,
    #[schema(value_type = DurationInput)]
    pub window: DurationInput,
    /// Fewer finished runs than this in the window never alert. Default 1.
    pub min_runs: Option<u32>,
}

/// An alert policy as stated by a monitor or a client: every knob optional, absent ones
/// inherited (monitor → client → telltale's defaults). Zero durations and a zero flapping
/// threshold turn a feature off.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertPolicyInput {
    /// Failed runs in a row before a failure alerts (default 1), or
    /// `{"ratio": 0.5, "window": "1h", "min_runs": 4}`.
    pub failure_tolerance: Option<FailureToleranceInput>,
    /// How long a failure waits for a successful run before it pages (default `5m`); a failure
    /// fixed within it is recorded as `FailureRecovered` and pages nobody.
    pub retry_window: Option<DurationInput>,
    /// Missed expected signals (slots) that pass quietly before a miss alerts (default 0).
    pub missed_tolerance: Option<u32>,
    /// Good runs or beats in a row before an alert resolves (default 1).
    pub recovery_threshold: Option<u32>,
    /// Remind while an alert is open and unacknowledged, this often (default `0s`: never).
    pub realert_every: Option<DurationInput>,
    /// Escalate an unacknowledged alert after this long (default `30m`).
    pub escalate_after: Option<DurationInput>,
    /// Names of the channels told when an alert escalates; they hear of this monitor's alerts
    /// only then (default: none, no escalation).
    pub escalate_to: Option<Vec<String>>,
    /// More changes of alert state than this within `flapping_window` collapse into one
    /// `flapping` alert (default 4; 0: off).
    pub flapping_threshold: Option<u32>,
    /// Default `1h`.
    pub flapping_window: Option<DurationInput>,
}

impl AlertPolicyInput {
    pub fn to_policy(&self, prefix: &str) -> Result<AlertPolicy, ApiError> {
        let span = |d: &Option<DurationInput>, field: &str| {
            d.as_ref().map(|d| d.to_span(&format!("{prefix}{field}"))).transpose()
        };
        let failure_tolerance = match &self.failure_tolerance {
            None => None,
            Some(FailureToleranceInput::Consecutive(n)) => Some(FailureTolerance::Consecutive(*n)),
            Some(FailureToleranceInput::Ratio(r)) => {
                let bp =
                    rust_decimal::prelude::ToPrimitive::to_u32(&(r.ratio * Decimal::from(10_000)).round()).unwrap_or(0);
                if r.ratio <= Decimal::ZERO || r.ratio > Decimal::ONE {
                    return Err(ApiError::unprocessable(
                        "invalid_value",
                        format!("{prefix}failure_tolerance.ratio: must be above 0 and at most 1"),
                    ));
                }
                Some(FailureTolerance::Ratio(FailureRatio {
                    ratio: Ratio::from_basis_points(bp.max(1)),
                    window: r.window.to_span(&format!("{prefix}failure_tolerance.window"))?,
                    min_runs: r.min_runs.unwrap_or(1),
                }))
            }
        };
        let policy = AlertPolicy {
            failure_tolerance,
            retry_window: span(&self.retry_window, "retry_window")?,
            missed_tolerance: self.missed_tolerance,
            recovery_threshold: self.recovery_threshold,
            realert_every: span(&self.realert_every, "realert_every")?,
            escalate_after: span(&self.escalate_after, "escalate_after")?,
            escalate_to: self.escalate_to.clone(),
            flapping_threshold: self.flapping_threshold,
            flapping_window: span(&self.flapping_window, "flapping_window")?,
        };
        policy.check().map_err(|e| ApiError::unprocessable("invalid_value", format!("{prefix}{e}")))?;
        Ok(policy)
    }
}

/// An alert policy as stated (only the knobs given) or in force (every knob).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct AlertPolicyOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_tolerance: Option<FailureToleranceInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "5m")]
    pub retry_window: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed_tolerance: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realert_every: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalate_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalate_to: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flapping_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flapping_window: Option<String>,
}

fn tolerance_out(t: FailureTolerance) -> FailureToleranceInput {
    match t {
        FailureTolerance::Consecutive(n) => FailureToleranceInput::Consecutive(n),
        FailureTolerance::Ratio(r) => FailureToleranceInput::Ratio(FailureRatioInput {
            ratio: Decimal::new(i64::from(r.ratio.basis_points()), 4).normalize(),
            window: DurationInput::Text(r.window.to_string()),
            min_runs: Some(r.min_runs),
        }),
    }
}

impl From<&AlertPolicy> for AlertPolicyOut {
    fn from(p: &AlertPolicy) -> AlertPolicyOut {
        AlertPolicyOut {
            failure_tolerance: p.failure_tolerance.map(tolerance_out),
            retry_window: p.retry_window.map(|s| s.to_string()),
            missed_tolerance: p.missed_tolerance,
            recovery_threshold: p.recovery_threshold,
            realert_every: p.realert_every.map(|s| s.to_string()),
            escalate_after: p.escalate_after.map(|s| s.to_string()),
            escalate_to: p.escalate_to.clone(),
            flapping_threshold: p.flapping_threshold,
            flapping_window: p.flapping_window.map(|s| s.to_string()),
        }
    }
}

impl From<&Policy> for AlertPolicyOut {
    fn from(p: &Policy) -> AlertPolicyOut {
        AlertPolicyOut {
            failure_tolerance: Some(tolerance_out(p.failure_tolerance)),
            retry_window: Some(p.retry_window.to_string()),
            missed_tolerance: Some(p.missed_tolerance),
            recovery_threshold: Some(p.recovery_threshold),
            realert_every: Some(p.realert_every.to_string()),
            escalate_after: Some(p.escalate_after.to_string()),
            escalate_to: Some(p.escalate_to.clone()),
            flapping_threshold: Some(p.flapping_threshold),
            flapping_window: Some(p.flapping_window.to_string()),
        }
    }
}

impl MonitorSpec {
    /// `base` with this specification laid over it.
    pub fn apply(&self, mut base: MonitorConfig) -> Result<MonitorConfig, ApiError> {
        if let Some(name) = &self.name {
            base.name = name.clone();
        }
        if let Some(schedule) = &self.schedule {
            // Inside an event, the schedule is the `monitor` object's.
            base.schedule = schedule.to_schedule().map_err(|mut e| {
                e.message = match e.message.strip_prefix("schedule") {
                    Some(rest) if rest.starts_with('.') || rest.starts_with(':') => format!("monitor.schedule{rest}"),
                    _ => format!("monitor.schedule: {}", e.message),
                };
                e
            })?;
        }
        if let Some(grace) = &self.grace {
            base.grace = grace.to_span("monitor.grace")?;
        }
        if let Some(max_runtime) = &self.max_runtime {
            base.max_runtime = Some(max_runtime.to_span("monitor.max_runtime")?);
        }
        if let Some(min_interval) = &self.min_interval {
            base.min_interval = Some(min_interval.to_span("monitor.min_interval")?);
        }
        if let Some(tags) = &self.tags {
            base.tags = tags.clone();
        }
        if let Some(policy) = &self.alert_policy {
            base.alert_policy = policy.to_policy("monitor.alert_policy.")?;
        }
        Ok(base)
    }
}

fn seconds(span: Span) -> Decimal {
    Decimal::new(span.as_millis(), 3).normalize()
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduleOut {
    /// `every` or `cron`.
    #[schema(example = "every")]
    pub kind: String,
    /// The period, as a duration string (`every` schedules).
    #[schema(example = "30s")]
    pub every: Option<String>,
    /// The period in seconds (`every` schedules).
    #[schema(value_type = Option<f64>, example = 30)]
    pub every_seconds: Option<Decimal>,
    /// The cron expression (`cron` schedules).
    pub cron: Option<String>,
    /// The time zone of the cron expression.
    pub timezone: Option<String>,
}

impl ScheduleOut {
    /// A short description for people: `every 30s`, `cron 30 2 * * * (Europe/Berlin)`.
    pub fn describe(&self) -> String {
        match (&self.every, &self.cron) {
            (Some(every), _) => format!("every {every}"),
            (_, Some(cron)) => format!("cron {cron} ({})", self.timezone.as_deref().unwrap_or("UTC")),
            _ => String::new(),
        }
    }
}

impl From<&Schedule> for ScheduleOut {
    fn from(s: &Schedule) -> ScheduleOut {
        match s {
            Schedule::Every { period } => ScheduleOut {
                kind: "every".into(),
                every: Some(period.to_string()),
                every_seconds: Some(seconds(*period)),
                cron: None,
                timezone: None,
            },
            Schedule::Cron { expression, timezone } => ScheduleOut {
                kind: "cron".into(),
                every: None,
                every_seconds: None,
                cron: Some(expression.clone()),
                timezone: Some(timezone.clone()),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LastRunOut {
    pub run_id: String,
    /// `completed` or `failed`.
    pub outcome: String,
    pub finished_at: DateTime<Utc>,
    pub exit_code: Option<i32>,
    #[schema(value_type = Option<f64>)]
    pub duration_seconds: Option<Decimal>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenAlertOut {
    pub alert_id: uuid::Uuid,
    /// `missed`, `failed`, `timed_out` or `flapping`.
    pub cause: String,
    pub opened_at: DateTime<Utc>,
    /// Why it is recorded and not announced: `silenced`, `maintenance` or `flapping`.
    pub held: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    /// Its trouble ended while alerts were held; the resolution is announced when they are not.
    pub recovered_at: Option<DateTime<Utc>>,
}

/// A silence under way.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SilenceOut {
    pub until: DateTime<Utc>,
    pub since: DateTime<Utc>,
    pub reason: Option<String>,
}

/// A maintenance window under way for this monitor.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActiveMaintenanceOut {
    pub window_id: uuid::Uuid,
    pub until: DateTime<Utc>,
    pub reason: String,
}

/// What `status` of a monitor can be (more may be added).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum MonitorStatusName {
    New,
    Up,
    Early,
    Late,
    Down,
    Hung,
    Retrying,
    Failing,
    Flapping,
    Paused,
}

/// A monitor and its current status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonitorOut {
    #[schema(example = "nightly-sync")]
    pub slug: String,
    pub name: String,
    /// `new` (never signalled), `up`, `early` (the last start came sooner than `min_interval`),
    /// `late` (past the expected time, inside grace), `down` (missed; an alert is open), `hung`
    /// (a run past `max_runtime`; an alert is open), `retrying` (a run failed and the failure
    /// waits out the `retry_window` for a successful run: nobody paged yet, see `retry_until`),
    /// `failing` (a failure alert is open), `flapping` (changing state too often) or `paused`.
    #[schema(value_type = MonitorStatusName, example = "up")]
    pub status: String,
    pub schedule: ScheduleOut,
    #[schema(example = "5m")]
    pub grace: String,
    #[schema(value_type = f64)]
    pub grace_seconds: Decimal,
    pub max_runtime: Option<String>,
    pub min_interval: Option<String>,
    pub tags: Vec<String>,
    pub paused: bool,
    pub created_at: Option<DateTime<Utc>>,
    /// The last sign of life of any kind.
    pub last_signal_at: Option<DateTime<Utc>>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// When the next signal is expected.
    pub expected_at: Option<DateTime<Utc>>,
    /// The next five times the schedule expects a signal, from the current expectation (or from
    /// now, when nothing is expected yet).
    pub next_expected: Vec<DateTime<Utc>>,
    /// When silence becomes a miss and an alert opens.
    pub next_deadline_at: Option<DateTime<Utc>>,
    /// While `retrying`: when the failure opens an alert unless a run succeeds first.
    pub retry_until: Option<DateTime<Utc>>,
    /// The host of the last signal that named one.
    pub host: Option<String>,
    pub last_run: Option<LastRunOut>,
    /// Runs started and not finished.
    pub open_runs: usize,
    /// Runs still going past `max_runtime`.
    pub hung_runs: usize,
    /// Alerts open on this monitor.
    pub alerts: Vec<OpenAlertOut>,
    /// The monitor's own alert policy: only the knobs it states.
    pub alert_policy: AlertPolicyOut,
    /// The policy in force: its own, over its client's defaults, over telltale's.
    pub effective_policy: AlertPolicyOut,
    /// A paused monitor ignores signals instead of resuming.
    pub manual_resume: bool,
    /// Alerts are held until then.
    pub silenced: Option<SilenceOut>,
    /// Maintenance windows under way: alerts are held until they end.
    pub maintenance: Vec<ActiveMaintenanceOut>,
}

impl MonitorOut {
    pub fn of(state: &Monitor, now: DateTime<Utc>, service_started_at: DateTime<Utc>) -> MonitorOut {
        let config = state
            .config
            .clone()
            .unwrap_or_else(|| MonitorConfig::new("", Schedule::Every { period: Span::from_secs(60) }, Span::ZERO));
        let deadline = state.effective_deadline(service_started_at);
        let expected_at = deadline.map(|d| d - config.grace.to_delta());
        MonitorOut {
            slug: state.slug.clone(),
            name: config.name.clone(),
            status: telltale_domain::monitor::late_or(state.status(), expected_at, now).as_str().to_string(),
            schedule: ScheduleOut::from(&config.schedule),
            grace: config.grace.to_string(),
            grace_seconds: seconds(config.grace),
            max_runtime: config.max_runtime.map(|r| r.to_string()),
            min_interval: config.min_interval.map(|r| r.to_string()),
            tags: config.tags.clone(),
            paused: state.paused,
            created_at: state.created_at,
            last_signal_at: state.last_signal_at,
            last_heartbeat_at: state.last_heartbeat_at,
            expected_at,
            next_expected: match expected_at {
                Some(first) => std::iter::once(first).chain(config.schedule.upcoming(first, 4)).collect(),
                None => config.schedule.upcoming(now, 5),
            },
            next_deadline_at: deadline,
            retry_until: state.pending_failure.as_ref().map(|p| p.since + state.policy().retry_window.to_delta()),
            host: state.host.clone(),
            last_run: state.last_run.as_ref().map(|r| LastRunOut {
                run_id: r.run_id.clone(),
                outcome: match r.outcome {
                    telltale_domain::monitor::RunOutcome::Completed => "completed".into(),
                    telltale_domain::monitor::RunOutcome::Failed => "failed".into(),
                },
                finished_at: r.finished_at,
                exit_code: r.exit_code,
                duration_seconds: r.duration_ms.map(|ms| Decimal::new(ms, 3).normalize()),
            }),
            open_runs: state.open_runs.len(),
            hung_runs: state.hung_runs().count(),
            alerts: state
                .alerts
                .iter()
                .map(|(cause, a)| OpenAlertOut {
                    alert_id: a.alert_id,
                    cause: cause.as_str().into(),
                    opened_at: a.opened_at,
                    held: a.held.map(|h| h.as_str().to_string()),
                    acknowledged_at: a.acknowledged_at,
                    acknowledged_by: a.acknowledged_by.clone(),
                    recovered_at: a.recovered_at,
                })
                .collect(),
            alert_policy: AlertPolicyOut::from(&config.alert_policy),
            effective_policy: AlertPolicyOut::from(&state.policy()),
            manual_resume: config.manual_resume,
            silenced: state.silence.as_ref().map(|s| SilenceOut {
                until: s.until,
                since: s.since,
                reason: s.reason.clone(),
            }),
            maintenance: state
                .maintenance
                .iter()
                .map(|(id, until)| ActiveMaintenanceOut {
                    window_id: *id,
                    until: *until,
                    reason: state.windows.get(id).map(|w| w.window.reason.clone()).unwrap_or_default(),
                })
                .collect(),
        }
    }
}
