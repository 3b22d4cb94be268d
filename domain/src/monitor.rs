//! The Monitor aggregate: one unattended process, its signals, and the alerts its silence or
//! failures open.
//!
//! A decision happens in three steps, and replay uses the same three:
//! 1. [`due`]: what the passing of time alone has made true by `now` (a missed deadline);
//! 2. the command's own facts (a heartbeat, a run transition, a configuration change);
//! 3. [`react`]: what those facts change in the alerts (a recovery, a failure).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::aggregate::{Aggregate, Context};
use crate::event_family;
use crate::ids::streams;
use crate::schedule::Schedule;
use crate::span::Span;

/// Limits on what a signal may carry.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024;
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;
pub const MAX_RUN_ID_LEN: usize = 128;
pub const MAX_HOST_LEN: usize = 255;
pub const MAX_TAGS: usize = 32;
pub const MAX_TAG_LEN: usize = 64;
/// Runs started and never finished that a monitor remembers; older ones are forgotten.
pub const MAX_OPEN_RUNS: usize = 1000;
/// A finish that names no run pairs with the latest open run only if that run started within
/// this window (edge case C40: Healthchecks uses 72 h too). A finish that names its run pairs
/// with it however long it ran.
pub const RUN_PAIRING_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(72);
/// Most time-driven steps one decision takes; a bound, never reached in practice, so that a
/// corrupt history can never make a decision loop forever.
const MAX_DUE_STEPS: usize = 100_000;

const ALERT_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_36a3_52c4_4d0b_9b1e_3f0c_7e2d_a001);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorConfig {
    pub name: String,
    pub schedule: Schedule,
    pub grace: Span,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime: Option<Span>,
    /// Starts or heartbeats closer together than this are recorded as too early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval: Option<Span>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// What a signal carries besides its kind.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SignalDetails {
    /// The sender's own clock, kept for drift analysis. Never used for detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertCause {
    /// No signal arrived before the deadline.
    Missed,
    /// A run reported failure.
    Failed,
    /// A run started and did not finish within `max_runtime`: it hangs.
    TimedOut,
}

impl AlertCause {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertCause::Missed => "missed",
            AlertCause::Failed => "failed",
            AlertCause::TimedOut => "timed_out",
        }
    }
}

// ---- events -------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorCreated {
    pub client: String,
    pub slug: String,
    pub config: MonitorConfig,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorReconfigured {
    pub config: MonitorConfig,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorPaused {
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorResumed {
    pub at: DateTime<Utc>,
    /// True when a signal to a paused monitor resumed it.
    #[serde(default)]
    pub by_signal: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorDeleted {
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatReceived {
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
    #[serde(flatten)]
    pub details: SignalDetails,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {
    pub run_id: String,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub details: SignalDetails,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunProgressed {
    pub run_id: String,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub details: SignalDetails,
}

/// The end of a run, successful or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFinished {
    pub run_id: String,
    pub at: DateTime<Utc>,
    /// When its start was received; absent when telltale never saw the start (or it is older
    /// than [`RUN_PAIRING_WINDOW`] and the finish named no run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// True when the output was not valid UTF-8 and was kept with replacement characters.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output_lossy: bool,
    /// True when only the tail of a longer output was kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output_truncated: bool,
    #[serde(flatten)]
    pub details: SignalDetails,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatMissed {
    /// The deadline that passed; also the time of this fact.
    pub deadline: DateTime<Utc>,
    /// When a signal was expected (the deadline without its grace).
    pub expected_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_signal_at: Option<DateTime<Utc>>,
}

/// The expected time passed without a signal; the deadline (expected time + grace) has not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorLate {
    pub expected_at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
}

/// A scheduled slot of a cron monitor passed its grace without a start or a beat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSkipped {
    /// The slot that was skipped.
    pub expected_at: DateTime<Utc>,
    /// The slot plus its grace; also the time of this fact.
    pub deadline: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_signal_at: Option<DateTime<Utc>>,
}

/// A run started and did not finish within `max_runtime`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunTimedOut {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    /// When it was given up on; also the time of this fact.
    pub deadline: DateTime<Utc>,
    pub max_runtime: Span,
}

/// A start or heartbeat came sooner after the previous one than the monitor's `min_interval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalTooEarly {
    pub at: DateTime<Utc>,
    pub previous_at: DateTime<Utc>,
    pub min_interval: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertOpened {
    pub alert_id: Uuid,
    pub cause: AlertCause,
    pub opened_at: DateTime<Utc>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertResolved {
    pub alert_id: Uuid,
    pub cause: AlertCause,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: DateTime<Utc>,
    pub message: String,
}

event_family! {
    pub enum MonitorEvent {
        MonitorCreated(MonitorCreated),
        MonitorReconfigured(MonitorReconfigured),
        MonitorPaused(MonitorPaused),
        MonitorResumed(MonitorResumed),
        MonitorDeleted(MonitorDeleted),
        HeartbeatReceived(HeartbeatReceived),
        RunStarted(RunStarted),
        RunProgressed(RunProgressed),
        RunCompleted(RunFinished),
        RunFailed(RunFinished),
        HeartbeatMissed(HeartbeatMissed),
        MonitorLate(MonitorLate),
        RunSkipped(RunSkipped),
        RunTimedOut(RunTimedOut),
        SignalTooEarly(SignalTooEarly),
        AlertOpened(AlertOpened),
        AlertResolved(AlertResolved),
    }
}

impl MonitorEvent {
    /// When the fact happened (server time).
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            MonitorEvent::MonitorCreated(e) => e.at,
            MonitorEvent::MonitorReconfigured(e) => e.at,
            MonitorEvent::MonitorPaused(e) => e.at,
            MonitorEvent::MonitorResumed(e) => e.at,
            MonitorEvent::MonitorDeleted(e) => e.at,
            MonitorEvent::HeartbeatReceived(e) => e.at,
            MonitorEvent::RunStarted(e) => e.at,
            MonitorEvent::RunProgressed(e) => e.at,
            MonitorEvent::RunCompleted(e) | MonitorEvent::RunFailed(e) => e.at,
            MonitorEvent::HeartbeatMissed(e) => e.deadline,
            MonitorEvent::MonitorLate(e) => e.expected_at,
            MonitorEvent::RunSkipped(e) => e.deadline,
            MonitorEvent::RunTimedOut(e) => e.deadline,
            MonitorEvent::SignalTooEarly(e) => e.at,
            MonitorEvent::AlertOpened(e) => e.opened_at,
            MonitorEvent::AlertResolved(e) => e.resolved_at,
        }
    }

    pub fn run_id(&self) -> Option<&str> {
        match self {
            MonitorEvent::RunStarted(e) => Some(&e.run_id),
            MonitorEvent::RunProgressed(e) => Some(&e.run_id),
            MonitorEvent::RunCompleted(e) | MonitorEvent::RunFailed(e) => Some(&e.run_id),
            MonitorEvent::RunTimedOut(e) => Some(&e.run_id),
            _ => None,
        }
    }

    /// True for the facts that only the passing of time or the alert policy produce. Replay
    /// recomputes these from the others.
    pub fn is_derived(&self) -> bool {
        matches!(
            self,
            MonitorEvent::HeartbeatMissed(_)
                | MonitorEvent::MonitorLate(_)
                | MonitorEvent::RunSkipped(_)
                | MonitorEvent::RunTimedOut(_)
                | MonitorEvent::SignalTooEarly(_)
                | MonitorEvent::AlertOpened(_)
                | MonitorEvent::AlertResolved(_)
        )
    }
}

// ---- commands -----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Heartbeat,
    Started,
    Running,
    Completed,
    Failed,
}

impl SignalKind {
    pub const ALL: [SignalKind; 5] =
        [SignalKind::Heartbeat, SignalKind::Started, SignalKind::Running, SignalKind::Completed, SignalKind::Failed];

    pub fn parse(s: &str) -> Option<SignalKind> {
        SignalKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Heartbeat => "heartbeat",
            SignalKind::Started => "started",
            SignalKind::Running => "running",
            SignalKind::Completed => "completed",
            SignalKind::Failed => "failed",
        }
    }
}

/// A sign of life from the monitored process.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Signal {
    pub kind: Option<SignalKind>,
    pub run_id: Option<String>,
    /// A fresh id, drawn by the caller, used when a run needs one and none was given.
    pub fresh_run_id: String,
    pub exit_code: Option<i32>,
    /// The run's duration as the sender measured it; preferred to the server's estimate,
    /// which includes network delays (and spool delays for late deliveries).
    pub duration_ms: Option<i64>,
    pub status: Option<String>,
    pub metrics: Option<Value>,
    pub output: Option<String>,
    pub output_lossy: bool,
    pub details: SignalDetails,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MonitorCommand {
    Create {
        client: String,
        slug: String,
        config: MonitorConfig,
    },
    Reconfigure {
        config: MonitorConfig,
    },
    Pause,
    Resume,
    Delete,
    Signal(Box<Signal>),
    /// Time has passed: record whatever has become due.
    Tick,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonitorError {
    #[error("no monitor `{0}`")]
    NotFound(String),
    #[error("a monitor `{0}` already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    Invalid(String),
}

// ---- state --------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    #[default]
    Absent,
    Active,
    Deleted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    pub run_id: String,
    pub outcome: RunOutcome,
    pub finished_at: DateTime<Utc>,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<i64>,
}

/// A run that started and has not finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRun {
    pub started_at: DateTime<Utc>,
    /// True once it has been recorded as timed out (hung).
    pub timed_out: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAlert {
    pub alert_id: Uuid,
    pub opened_at: DateTime<Utc>,
}

/// The status a person sees. `late` is computed at read time from `expected_at` and the clock
/// (see [`Monitor::status_at`]), so that it shows even before the detector has recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorStatus {
    New,
    Up,
    /// The last start or beat came sooner than the monitor's `min_interval`.
    Early,
    Late,
    Down,
    Failing,
    /// A run has been going for longer than `max_runtime`.
    Hung,
    Paused,
}

impl MonitorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorStatus::New => "new",
            MonitorStatus::Up => "up",
            MonitorStatus::Early => "early",
            MonitorStatus::Late => "late",
            MonitorStatus::Down => "down",
            MonitorStatus::Failing => "failing",
            MonitorStatus::Hung => "hung",
            MonitorStatus::Paused => "paused",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Monitor {
    pub lifecycle: Lifecycle,
    pub client: String,
    pub slug: String,
    pub config: Option<MonitorConfig>,
    pub paused: bool,
    pub created_at: Option<DateTime<Utc>>,
    /// The last sign of life of any kind (heartbeat or run transition).
    pub last_signal_at: Option<DateTime<Utc>>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub last_started_at: Option<DateTime<Utc>>,
    pub host: Option<String>,
    /// Runs started and not yet finished, by run id.
    pub open_runs: BTreeMap<String, OpenRun>,
    pub last_run: Option<LastRun>,
    /// When silence becomes a miss, before any allowance for telltale's own downtime.
    pub deadline: Option<DateTime<Utc>>,
    /// True once the current expectation's lateness has been recorded.
    pub late: bool,
    /// True when the last start or beat was too early.
    pub too_early: bool,
    pub alerts: BTreeMap<AlertCause, OpenAlert>,
    /// Alerts ever opened on this stream; names the next alert deterministically.
    pub alert_seq: u64,
}

impl Monitor {
    pub fn exists(&self) -> bool {
        self.lifecycle == Lifecycle::Active
    }

    pub fn stream_id(&self) -> String {
        streams::monitor(&self.client, &self.slug)
    }

    fn grace(&self) -> chrono::TimeDelta {
        self.config.as_ref().map(|c| c.grace.to_delta()).unwrap_or_default()
    }

    /// When a signal is next expected (the deadline without its grace).
    pub fn expected_at(&self) -> Option<DateTime<Utc>> {
        Some(self.deadline? - self.grace())
    }

    /// The deadline the detector acts on: the raw deadline, moved later when the expectation
    /// started before telltale's own (re)start, so that the process gets its next expected
    /// time after the restart, and its grace, before its silence counts.
    pub fn effective_deadline(&self, service_started_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.exists() || self.paused {
            return None;
        }
        let deadline = self.deadline?;
        let config = self.config.as_ref()?;
        match self.last_signal_at {
            Some(last) if last < service_started_at => {
                let fresh = config.schedule.next_expected(service_started_at) + config.grace.to_delta();
                Some(deadline.max(fresh))
            }
            _ => Some(deadline),
        }
    }

    /// When a run is given up on as hung: `max_runtime` after its start, or after telltale's
    /// own restart when it started before it (its finish may have been sent while telltale was
    /// down).
    fn run_deadline(&self, run: &OpenRun, service_started_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if run.timed_out || self.paused || !self.exists() {
            return None;
        }
        let max = self.config.as_ref()?.max_runtime?.to_delta();
        Some(run.started_at.max(service_started_at) + max)
    }

    /// The earliest hung run's deadline.
    fn next_run_deadline(&self, service_started_at: DateTime<Utc>) -> Option<(DateTime<Utc>, &String, &OpenRun)> {
        self.open_runs
            .iter()
            .filter_map(|(id, run)| Some((self.run_deadline(run, service_started_at)?, id, run)))
            .min_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
    }

    /// The next instant at which the passing of time alone will produce a fact: lateness, a
    /// miss, or a hung run. The detector wakes the monitor then; replay steps through the same
    /// instants.
    pub fn next_wake(&self, service_started_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let expectation = self.effective_deadline(service_started_at).map(|deadline| {
            let expected = deadline - self.grace();
            if !self.late && expected < deadline { expected } else { deadline }
        });
        let run = self.next_run_deadline(service_started_at).map(|(at, _, _)| at);
        match (expectation, run) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The status without the clock: everything but `late`.
    pub fn status(&self) -> MonitorStatus {
        if self.paused {
            MonitorStatus::Paused
        } else if self.alerts.contains_key(&AlertCause::Missed) {
            MonitorStatus::Down
        } else if self.alerts.contains_key(&AlertCause::TimedOut) {
            MonitorStatus::Hung
        } else if self.alerts.contains_key(&AlertCause::Failed) {
            MonitorStatus::Failing
        } else if self.last_signal_at.is_none() {
            MonitorStatus::New
        } else if self.too_early {
            MonitorStatus::Early
        } else {
            MonitorStatus::Up
        }
    }

    /// The status a person sees at `now`: `late` once the expected time has passed.
    pub fn status_at(&self, now: DateTime<Utc>) -> MonitorStatus {
        late_or(self.status(), self.expected_at(), now)
    }

    /// Runs that were given up on as hung and have not finished since.
    pub fn hung_runs(&self) -> impl Iterator<Item = (&String, &OpenRun)> {
        self.open_runs.iter().filter(|(_, run)| run.timed_out)
    }

    fn next_alert_id(&self) -> Uuid {
        Uuid::new_v5(&ALERT_NAMESPACE, format!("{}#{}", self.stream_id(), self.alert_seq + 1).as_bytes())
    }

    fn deadline_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let config = self.config.as_ref()?;
        Some(config.schedule.next_expected(at) + config.grace.to_delta())
    }
}

/// `late` when an `up` monitor's expected time has passed at `now`. Shared with the read models.
pub fn late_or(status: MonitorStatus, expected_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> MonitorStatus {
    match (status, expected_at) {
        (MonitorStatus::Up | MonitorStatus::Early, Some(expected)) if now > expected => MonitorStatus::Late,
        (status, _) => status,
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

// ---- decide -------------------------------------------------------------------------------

/// What the passing of time alone has made true by `ctx.now`, one wake at a time, each fact
/// stamped with the instant it became true (never with `now`), so that a late tick records
/// exactly what a punctual one would, and replay reproduces it.
pub fn due(state: &Monitor, ctx: &Context) -> Vec<MonitorEvent> {
    let mut events = Vec::new();
    let mut current = state.clone();
    for _ in 0..MAX_DUE_STEPS {
        let Some(wake) = current.next_wake(ctx.service_started_at) else { break };
        if wake > ctx.now {
            break;
        }
        let step = due_at(&current, wake, ctx.service_started_at);
        if step.is_empty() {
            break;
        }
        current = MonitorAggregate::fold(current, &step);
        events.extend(step);
    }
    events
}

/// The facts of one wake.
fn due_at(state: &Monitor, wake: DateTime<Utc>, service_started_at: DateTime<Utc>) -> Vec<MonitorEvent> {
    if let Some((deadline, run_id, run)) = state.next_run_deadline(service_started_at)
        && deadline == wake
    {
        let max_runtime = state.config.as_ref().and_then(|c| c.max_runtime).unwrap_or_default();
        let mut events = vec![MonitorEvent::RunTimedOut(RunTimedOut {
            run_id: run_id.clone(),
            started_at: run.started_at,
            deadline,
            max_runtime,
        })];
        if !state.alerts.contains_key(&AlertCause::TimedOut) {
            events.push(MonitorEvent::AlertOpened(AlertOpened {
                alert_id: state.next_alert_id(),
                cause: AlertCause::TimedOut,
                opened_at: deadline,
                message: format!(
                    "{}: run {run_id} started at {} and has not finished within {max_runtime}",
                    state.slug,
                    rfc3339(run.started_at)
                ),
            }));
        }
        return events;
    }
    let Some(deadline) = state.effective_deadline(service_started_at) else {
        return vec![];
    };
    let expected_at = deadline - state.grace();
    if wake < deadline {
        return vec![MonitorEvent::MonitorLate(MonitorLate { expected_at, deadline })];
    }
    let cron = state.config.as_ref().is_some_and(|c| !matches!(c.schedule, crate::schedule::Schedule::Every { .. }));
    let mut events = vec![if cron {
        MonitorEvent::RunSkipped(RunSkipped { expected_at, deadline, last_signal_at: state.last_signal_at })
    } else {
        MonitorEvent::HeartbeatMissed(HeartbeatMissed { deadline, expected_at, last_signal_at: state.last_signal_at })
    }];
    // One outage, one alert: a monitor already alerting (failed, hung or down) is not paged
    // again for the silence that follows (edge case C41).
    if state.alerts.is_empty() {
        let since = state.last_signal_at.map(|t| format!(" since {}", rfc3339(t))).unwrap_or_default();
        let message = if cron {
            format!("{}: the run expected at {} did not start{since}", state.slug, rfc3339(expected_at))
        } else {
            format!("{} has gone silent: no signal{since}", state.slug)
        };
        events.push(MonitorEvent::AlertOpened(AlertOpened {
            alert_id: state.next_alert_id(),
            cause: AlertCause::Missed,
            opened_at: deadline,
            message,
        }));
    }
    events
}

/// What one new fact changes, given the state before and after it: alerts that resolve or
/// open, and whether it came too early. Applied fact by fact, live and in replay alike.
pub fn react(before: &Monitor, after: &Monitor, fact: &MonitorEvent, ctx: &Context) -> Vec<MonitorEvent> {
    let mut events = Vec::new();
    let mut resolve = |cause: AlertCause, message: String| {
        if let Some(open) = after.alerts.get(&cause) {
            events.push(MonitorEvent::AlertResolved(AlertResolved {
                alert_id: open.alert_id,
                cause,
                opened_at: open.opened_at,
                resolved_at: ctx.now,
                message,
            }));
        }
    };
    let alive = || format!("{} is alive again", after.slug);
    let no_hung = after.hung_runs().next().is_none();
    match fact {
        MonitorEvent::HeartbeatReceived(_) => {
            resolve(AlertCause::Missed, alive());
            resolve(AlertCause::Failed, format!("{} reports healthy again", after.slug));
        }
        MonitorEvent::RunStarted(_) | MonitorEvent::RunProgressed(_) => resolve(AlertCause::Missed, alive()),
        MonitorEvent::RunCompleted(run) => {
            resolve(AlertCause::Missed, alive());
            resolve(AlertCause::Failed, format!("{}: run {} completed", after.slug, run.run_id));
            if no_hung {
                resolve(AlertCause::TimedOut, format!("{}: run {} completed", after.slug, run.run_id));
            }
        }
        MonitorEvent::RunFailed(run) => {
            resolve(AlertCause::Missed, alive());
            if no_hung {
                resolve(AlertCause::TimedOut, format!("{}: run {} finished", after.slug, run.run_id));
            }
        }
        MonitorEvent::MonitorPaused(_) | MonitorEvent::MonitorDeleted(_) => {
            let what = if matches!(fact, MonitorEvent::MonitorPaused(_)) { "paused" } else { "deleted" };
            for cause in after.alerts.keys() {
                resolve(*cause, format!("{} was {what}", after.slug));
            }
        }
        _ => {}
    }
    if let MonitorEvent::RunFailed(run) = fact
        && !after.alerts.contains_key(&AlertCause::Failed)
    {
        let code = run.exit_code.map(|c| format!(" with exit code {c}")).unwrap_or_default();
        events.push(MonitorEvent::AlertOpened(AlertOpened {
            alert_id: after.next_alert_id(),
            cause: AlertCause::Failed,
            opened_at: ctx.now,
            message: format!("{}: run {} failed{code}", after.slug, run.run_id),
        }));
    }
    if let MonitorEvent::HeartbeatReceived(HeartbeatReceived { at, .. })
    | MonitorEvent::RunStarted(RunStarted { at, .. }) = fact
        && let Some(min_interval) = after.config.as_ref().and_then(|c| c.min_interval)
        && let Some(previous_at) = before.last_heartbeat_at.max(before.last_started_at)
        && *at - previous_at < min_interval.to_delta()
    {
        events.push(MonitorEvent::SignalTooEarly(SignalTooEarly { at: *at, previous_at, min_interval }));
    }
    events
}

/// Applies facts one by one, each followed by its reactions and by whatever it made due at
/// once (a shorter `max_runtime`, say: recorded now, not at the next tick, so that a stop right
/// after this decision cannot lose it). The one path that both `decide` and replay take.
pub fn apply(state: Monitor, facts: Vec<MonitorEvent>, ctx: &Context, out: &mut Vec<MonitorEvent>) -> Monitor {
    let mut current = state;
    for fact in facts {
        let before = current.clone();
        current = MonitorAggregate::evolve(current, &fact);
        let reactions = react(&before, &current, &fact, ctx);
        out.push(fact);
        current = MonitorAggregate::fold(current, &reactions);
        out.extend(reactions);
        let now_due = due(&current, ctx);
        current = MonitorAggregate::fold(current, &now_due);
        out.extend(now_due);
    }
    current
}

fn check_config(config: &MonitorConfig) -> Result<(), MonitorError> {
    if config.name.chars().count() > 200 {
        return Err(MonitorError::Invalid("a monitor name is at most 200 characters".into()));
    }
    if config.tags.len() > MAX_TAGS {
        return Err(MonitorError::Invalid(format!("a monitor has at most {MAX_TAGS} tags")));
    }
    if let Some(tag) = config.tags.iter().find(|t| t.is_empty() || t.chars().count() > MAX_TAG_LEN) {
        return Err(MonitorError::Invalid(format!("tag `{tag}` must have 1 to {MAX_TAG_LEN} characters")));
    }
    if config.max_runtime.is_some_and(|r| r.is_zero()) {
        return Err(MonitorError::Invalid("max_runtime must be longer than 0s".into()));
    }
    if config.min_interval.is_some_and(|r| r.is_zero()) {
        return Err(MonitorError::Invalid("min_interval must be longer than 0s".into()));
    }
    Ok(())
}

pub fn check_signal(signal: &Signal) -> Result<(), MonitorError> {
    let too_big =
        |what: &str, limit: usize| MonitorError::Invalid(format!("{what} is larger than {} KiB", limit / 1024));
    if let Some(id) = &signal.run_id
        && (id.is_empty() || id.len() > MAX_RUN_ID_LEN)
    {
        return Err(MonitorError::Invalid(format!("run_id must have 1 to {MAX_RUN_ID_LEN} bytes")));
    }
    if signal.duration_ms.is_some_and(|d| d < 0) {
        return Err(MonitorError::Invalid("duration_ms must not be negative".into()));
    }
    if signal.details.message.as_ref().is_some_and(|m| m.len() > MAX_MESSAGE_BYTES) {
        return Err(too_big("message", MAX_MESSAGE_BYTES));
    }
    if signal.details.host.as_ref().is_some_and(|h| h.len() > MAX_HOST_LEN) {
        return Err(MonitorError::Invalid(format!("host is longer than {MAX_HOST_LEN} bytes")));
    }
    for (what, value) in [("metadata", &signal.details.metadata), ("metrics", &signal.metrics)] {
        if let Some(value) = value {
            if !value.is_object() {
                return Err(MonitorError::Invalid(format!("{what} must be a JSON object")));
            }
            if value.to_string().len() > MAX_METADATA_BYTES {
                return Err(too_big(what, MAX_METADATA_BYTES));
            }
        }
    }
    Ok(())
}

/// Keeps the last `MAX_OUTPUT_BYTES` of an output, cut at a character boundary.
pub fn output_tail(output: &str) -> (&str, bool) {
    if output.len() <= MAX_OUTPUT_BYTES {
        return (output, false);
    }
    let mut start = output.len() - MAX_OUTPUT_BYTES;
    while !output.is_char_boundary(start) {
        start += 1;
    }
    (&output[start..], true)
}

fn signal_facts(state: &Monitor, signal: Signal, ctx: &Context) -> Vec<MonitorEvent> {
    let at = ctx.now;
    let kind = signal.kind.unwrap_or(SignalKind::Heartbeat);
    match kind {
        SignalKind::Heartbeat => vec![MonitorEvent::HeartbeatReceived(HeartbeatReceived {
            at,
            status: signal.status,
            metrics: signal.metrics,
            details: signal.details,
        })],
        SignalKind::Started => vec![MonitorEvent::RunStarted(RunStarted {
            run_id: signal.run_id.unwrap_or(signal.fresh_run_id),
            at,
            details: signal.details,
        })],
        SignalKind::Running => {
            let run_id = signal
                .run_id
                .or_else(|| latest_open_run(state, at).map(|(id, _)| id.clone()))
                .unwrap_or(signal.fresh_run_id);
            vec![MonitorEvent::RunProgressed(RunProgressed { run_id, at, details: signal.details })]
        }
        SignalKind::Completed | SignalKind::Failed => {
            let (run_id, started_at) = match signal.run_id {
                Some(id) => {
                    let started = state.open_runs.get(&id).map(|r| r.started_at);
                    (id, started)
                }
                None => match latest_open_run(state, at) {
                    Some((id, run)) => (id.clone(), Some(run.started_at)),
                    None => (signal.fresh_run_id, None),
                },
            };
            let (output, output_truncated) = match signal.output {
                Some(out) => {
                    let (tail, cut) = output_tail(&out);
                    (Some(tail.to_string()), cut)
                }
                None => (None, false),
            };
            let finished = RunFinished {
                run_id,
                at,
                started_at,
                duration_ms: signal.duration_ms.or_else(|| started_at.map(|s| (at - s).num_milliseconds())),
                exit_code: signal.exit_code,
                output,
                output_lossy: signal.output_lossy,
                output_truncated,
                details: signal.details,
            };
            let failed = kind == SignalKind::Failed || signal.exit_code.is_some_and(|c| c != 0);
            vec![if failed { MonitorEvent::RunFailed(finished) } else { MonitorEvent::RunCompleted(finished) }]
        }
    }
}

/// The latest run still open that started within the pairing window.
fn latest_open_run(state: &Monitor, now: DateTime<Utc>) -> Option<(&String, &OpenRun)> {
    state
        .open_runs
        .iter()
        .filter(|(_, run)| now - run.started_at <= RUN_PAIRING_WINDOW)
        .max_by_key(|(id, run)| (run.started_at, (*id).clone()))
}

pub struct MonitorAggregate;

impl Aggregate for MonitorAggregate {
    type State = Monitor;
    type Command = MonitorCommand;
    type Event = MonitorEvent;
    type Error = MonitorError;
    const STATE_VERSION: i32 = 2;

    fn decide(state: &Monitor, command: MonitorCommand, ctx: &Context) -> Result<Vec<MonitorEvent>, MonitorError> {
        let not_found = || MonitorError::NotFound(state.slug.clone());
        // Validate before anything is produced, so a refused command changes nothing.
        match &command {
            MonitorCommand::Create { slug, config, .. } => {
                if state.exists() {
                    return Err(MonitorError::AlreadyExists(slug.clone()));
                }
                check_config(config)?;
            }
            MonitorCommand::Reconfigure { config } => {
                if !state.exists() {
                    return Err(not_found());
                }
                check_config(config)?;
            }
            MonitorCommand::Signal(signal) => {
                if !state.exists() {
                    return Err(not_found());
                }
                check_signal(signal)?;
            }
            MonitorCommand::Pause | MonitorCommand::Resume | MonitorCommand::Delete | MonitorCommand::Tick => {
                if !state.exists() {
                    return Err(not_found());
                }
            }
        }

        let mut events = due(state, ctx);
        let current = MonitorAggregate::fold(state.clone(), &events);

        let facts: Vec<MonitorEvent> = match command {
            MonitorCommand::Create { client, slug, config } => {
                vec![MonitorEvent::MonitorCreated(MonitorCreated { client, slug, config, at: ctx.now })]
            }
            MonitorCommand::Reconfigure { config } => {
                if current.config.as_ref() == Some(&config) {
                    vec![]
                } else {
                    vec![MonitorEvent::MonitorReconfigured(MonitorReconfigured { config, at: ctx.now })]
                }
            }
            MonitorCommand::Pause if current.paused => vec![],
            MonitorCommand::Pause => vec![MonitorEvent::MonitorPaused(MonitorPaused { at: ctx.now })],
            MonitorCommand::Resume if !current.paused => vec![],
            MonitorCommand::Resume => {
                vec![MonitorEvent::MonitorResumed(MonitorResumed { at: ctx.now, by_signal: false })]
            }
            MonitorCommand::Delete => vec![MonitorEvent::MonitorDeleted(MonitorDeleted { at: ctx.now })],
            MonitorCommand::Signal(signal) => {
                let mut facts = Vec::new();
                if current.paused {
                    facts.push(MonitorEvent::MonitorResumed(MonitorResumed { at: ctx.now, by_signal: true }));
                }
                let resumed = MonitorAggregate::fold(current.clone(), &facts);
                facts.extend(signal_facts(&resumed, *signal, ctx));
                facts
            }
            MonitorCommand::Tick => vec![],
        };
        apply(current, facts, ctx, &mut events);
        Ok(events)
    }

    fn evolve(mut state: Monitor, event: &MonitorEvent) -> Monitor {
        match event {
            MonitorEvent::MonitorCreated(e) => {
                let alert_seq = state.alert_seq;
                state = Monitor {
                    lifecycle: Lifecycle::Active,
                    client: e.client.clone(),
                    slug: e.slug.clone(),
                    config: Some(e.config.clone()),
                    created_at: Some(e.at),
                    alert_seq,
                    ..Monitor::default()
                };
            }
            MonitorEvent::MonitorReconfigured(e) => {
                state.config = Some(e.config.clone());
                if state.deadline.is_some()
                    && let Some(last) = state.last_signal_at
                {
                    state.deadline = state.deadline_after(last);
                    state.late = false;
                }
            }
            MonitorEvent::MonitorPaused(_) => {
                state.paused = true;
                state.deadline = None;
                state.late = false;
            }
            MonitorEvent::MonitorResumed(e) => {
                state.paused = false;
                state.deadline = state.deadline_after(e.at);
                state.late = false;
            }
            MonitorEvent::MonitorDeleted(_) => {
                state.lifecycle = Lifecycle::Deleted;
                state.deadline = None;
                state.paused = false;
                state.late = false;
                state.open_runs.clear();
            }
            MonitorEvent::HeartbeatReceived(e) => {
                state.last_heartbeat_at = Some(e.at);
                state.too_early = false;
                signalled(&mut state, e.at, &e.details);
            }
            MonitorEvent::RunStarted(e) => {
                state.open_runs.insert(e.run_id.clone(), OpenRun { started_at: e.at, timed_out: false });
                while state.open_runs.len() > MAX_OPEN_RUNS {
                    let oldest = state.open_runs.iter().min_by_key(|(_, run)| run.started_at).map(|(id, _)| id.clone());
                    if let Some(id) = oldest {
                        state.open_runs.remove(&id);
                    }
                }
                state.last_started_at = Some(e.at);
                state.too_early = false;
                signalled(&mut state, e.at, &e.details);
            }
            MonitorEvent::RunProgressed(e) => signalled(&mut state, e.at, &e.details),
            MonitorEvent::RunCompleted(e) | MonitorEvent::RunFailed(e) => {
                let completed = matches!(event, MonitorEvent::RunCompleted(_));
                state.open_runs.remove(&e.run_id);
                if completed {
                    // A run that completes shows the job works again: hung runs that started
                    // before it are given up on, not waited for.
                    let since = e.started_at.unwrap_or(e.at);
                    state.open_runs.retain(|_, run| !(run.timed_out && run.started_at <= since));
                }
                state.last_run = Some(LastRun {
                    run_id: e.run_id.clone(),
                    outcome: if completed { RunOutcome::Completed } else { RunOutcome::Failed },
                    finished_at: e.at,
                    exit_code: e.exit_code,
                    duration_ms: e.duration_ms,
                });
                signalled(&mut state, e.at, &e.details);
            }
            MonitorEvent::HeartbeatMissed(_) => {
                state.deadline = None;
                state.late = false;
            }
            MonitorEvent::RunSkipped(e) => {
                // Each skipped slot of a cron schedule is its own fact: expect the next one.
                state.deadline = state.deadline_after(e.expected_at);
                state.late = false;
            }
            MonitorEvent::MonitorLate(_) => state.late = true,
            MonitorEvent::RunTimedOut(e) => {
                if let Some(run) = state.open_runs.get_mut(&e.run_id) {
                    run.timed_out = true;
                }
            }
            MonitorEvent::SignalTooEarly(_) => state.too_early = true,
            MonitorEvent::AlertOpened(e) => {
                state.alert_seq += 1;
                state.alerts.insert(e.cause, OpenAlert { alert_id: e.alert_id, opened_at: e.opened_at });
            }
            MonitorEvent::AlertResolved(e) => {
                state.alerts.remove(&e.cause);
            }
        }
        state
    }
}

fn signalled(state: &mut Monitor, at: DateTime<Utc>, details: &SignalDetails) {
    state.last_signal_at = Some(at);
    if let Some(host) = &details.host {
        state.host = Some(host.clone());
    }
    if !state.paused {
        state.deadline = state.deadline_after(at);
        state.late = false;
    }
}
