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

const ALERT_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_36a3_52c4_4d0b_9b1e_3f0c_7e2d_a001);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorConfig {
    pub name: String,
    pub schedule: Schedule,
    pub grace: Span,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime: Option<Span>,
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
}

impl AlertCause {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertCause::Missed => "missed",
            AlertCause::Failed => "failed",
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
    /// When its start was received; absent when telltale never saw the start.
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
            MonitorEvent::AlertOpened(e) => e.opened_at,
            MonitorEvent::AlertResolved(e) => e.resolved_at,
        }
    }

    pub fn run_id(&self) -> Option<&str> {
        match self {
            MonitorEvent::RunStarted(e) => Some(&e.run_id),
            MonitorEvent::RunProgressed(e) => Some(&e.run_id),
            MonitorEvent::RunCompleted(e) | MonitorEvent::RunFailed(e) => Some(&e.run_id),
            _ => None,
        }
    }

    /// True for the facts that only the passing of time or the alert policy produce. Replay
    /// recomputes these from the others.
    pub fn is_derived(&self) -> bool {
        matches!(self, MonitorEvent::HeartbeatMissed(_) | MonitorEvent::AlertOpened(_) | MonitorEvent::AlertResolved(_))
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAlert {
    pub alert_id: Uuid,
    pub opened_at: DateTime<Utc>,
}

/// The status a person sees. `late` is not a state of the aggregate: it is computed at read time
/// from `expected_at` and the clock (see [`Monitor::status_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorStatus {
    New,
    Up,
    Late,
    Down,
    Failing,
    Paused,
}

impl MonitorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorStatus::New => "new",
            MonitorStatus::Up => "up",
            MonitorStatus::Late => "late",
            MonitorStatus::Down => "down",
            MonitorStatus::Failing => "failing",
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
    pub host: Option<String>,
    /// Runs started and not yet finished: run id → start time.
    pub open_runs: BTreeMap<String, DateTime<Utc>>,
    pub last_run: Option<LastRun>,
    /// When silence becomes a miss, before any allowance for telltale's own downtime.
    pub deadline: Option<DateTime<Utc>>,
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

    /// When a signal is next expected (the deadline without its grace).
    pub fn expected_at(&self) -> Option<DateTime<Utc>> {
        let config = self.config.as_ref()?;
        Some(self.deadline? - config.grace.to_delta())
    }

    /// The deadline the detector acts on: the raw deadline, moved later when the expectation
    /// started before telltale's own (re)start, so that the process gets one whole interval and
    /// its grace of telltale listening before its silence counts.
    pub fn effective_deadline(&self, service_started_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.exists() || self.paused {
            return None;
        }
        let deadline = self.deadline?;
        let config = self.config.as_ref()?;
        match self.last_signal_at {
            Some(last) if last < service_started_at => {
                let fresh = service_started_at + config.schedule.interval().to_delta() + config.grace.to_delta();
                Some(deadline.max(fresh))
            }
            _ => Some(deadline),
        }
    }

    /// The status without the clock: everything but `late`.
    pub fn status(&self) -> MonitorStatus {
        if self.paused {
            MonitorStatus::Paused
        } else if self.alerts.contains_key(&AlertCause::Missed) {
            MonitorStatus::Down
        } else if self.alerts.contains_key(&AlertCause::Failed) {
            MonitorStatus::Failing
        } else if self.last_signal_at.is_none() {
            MonitorStatus::New
        } else {
            MonitorStatus::Up
        }
    }

    /// The status a person sees at `now`: `late` once the expected time has passed.
    pub fn status_at(&self, now: DateTime<Utc>) -> MonitorStatus {
        late_or(self.status(), self.expected_at(), now)
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
        (MonitorStatus::Up, Some(expected)) if now > expected => MonitorStatus::Late,
        (status, _) => status,
    }
}

// ---- decide -------------------------------------------------------------------------------

/// What the passing of time alone has made true by `ctx.now`.
pub fn due(state: &Monitor, ctx: &Context) -> Vec<MonitorEvent> {
    let mut events = Vec::new();
    let Some(deadline) = state.effective_deadline(ctx.service_started_at) else {
        return events;
    };
    if ctx.now < deadline {
        return events;
    }
    let grace = state.config.as_ref().map(|c| c.grace).unwrap_or_default();
    events.push(MonitorEvent::HeartbeatMissed(HeartbeatMissed {
        deadline,
        expected_at: deadline - grace.to_delta(),
        last_signal_at: state.last_signal_at,
    }));
    if !state.alerts.contains_key(&AlertCause::Missed) {
        let since = state
            .last_signal_at
            .map(|t| format!(" since {}", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
            .unwrap_or_default();
        events.push(MonitorEvent::AlertOpened(AlertOpened {
            alert_id: state.next_alert_id(),
            cause: AlertCause::Missed,
            opened_at: deadline,
            message: format!("{} has gone silent: no signal{since}", state.slug),
        }));
    }
    events
}

/// What new facts change in the alerts.
pub fn react(after: &Monitor, facts: &[MonitorEvent], ctx: &Context) -> Vec<MonitorEvent> {
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
    for fact in facts {
        match fact {
            MonitorEvent::HeartbeatReceived(_) | MonitorEvent::RunStarted(_) | MonitorEvent::RunProgressed(_) => {
                resolve(AlertCause::Missed, format!("{} is alive again", after.slug));
            }
            MonitorEvent::RunCompleted(run) => {
                resolve(AlertCause::Missed, format!("{} is alive again", after.slug));
                resolve(AlertCause::Failed, format!("{}: run {} completed", after.slug, run.run_id));
            }
            MonitorEvent::RunFailed(_) => resolve(AlertCause::Missed, format!("{} is alive again", after.slug)),
            MonitorEvent::MonitorPaused(_) => {
                resolve(AlertCause::Missed, format!("{} was paused", after.slug));
                resolve(AlertCause::Failed, format!("{} was paused", after.slug));
            }
            MonitorEvent::MonitorDeleted(_) => {
                resolve(AlertCause::Missed, format!("{} was deleted", after.slug));
                resolve(AlertCause::Failed, format!("{} was deleted", after.slug));
            }
            _ => {}
        }
    }
    for fact in facts {
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
    }
    events
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
                .or_else(|| latest_open_run(state).map(|(id, _)| id.clone()))
                .unwrap_or(signal.fresh_run_id);
            vec![MonitorEvent::RunProgressed(RunProgressed { run_id, at, details: signal.details })]
        }
        SignalKind::Completed | SignalKind::Failed => {
            let (run_id, started_at) = match signal.run_id {
                Some(id) => {
                    let started = state.open_runs.get(&id).copied();
                    (id, started)
                }
                None => match latest_open_run(state) {
                    Some((id, started)) => (id.clone(), Some(*started)),
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
                duration_ms: started_at.map(|s| (at - s).num_milliseconds()),
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

fn latest_open_run(state: &Monitor) -> Option<(&String, &DateTime<Utc>)> {
    state.open_runs.iter().max_by_key(|(id, at)| (**at, (*id).clone()))
}

pub struct MonitorAggregate;

impl Aggregate for MonitorAggregate {
    type State = Monitor;
    type Command = MonitorCommand;
    type Event = MonitorEvent;
    type Error = MonitorError;
    const STATE_VERSION: i32 = 1;

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
                facts.extend(signal_facts(&current, *signal, ctx));
                facts
            }
            MonitorCommand::Tick => vec![],
        };
        let after = MonitorAggregate::fold(current.clone(), &facts);
        let reactions = react(&after, &facts, ctx);
        events.extend(facts);
        events.extend(reactions);
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
                }
            }
            MonitorEvent::MonitorPaused(_) => {
                state.paused = true;
                state.deadline = None;
            }
            MonitorEvent::MonitorResumed(e) => {
                state.paused = false;
                state.deadline = state.deadline_after(e.at);
            }
            MonitorEvent::MonitorDeleted(_) => {
                state.lifecycle = Lifecycle::Deleted;
                state.deadline = None;
                state.paused = false;
                state.open_runs.clear();
            }
            MonitorEvent::HeartbeatReceived(e) => {
                state.last_heartbeat_at = Some(e.at);
                signalled(&mut state, e.at, &e.details);
            }
            MonitorEvent::RunStarted(e) => {
                state.open_runs.insert(e.run_id.clone(), e.at);
                while state.open_runs.len() > MAX_OPEN_RUNS {
                    let oldest = state.open_runs.iter().min_by_key(|(_, at)| **at).map(|(id, _)| id.clone());
                    if let Some(id) = oldest {
                        state.open_runs.remove(&id);
                    }
                }
                signalled(&mut state, e.at, &e.details);
            }
            MonitorEvent::RunProgressed(e) => signalled(&mut state, e.at, &e.details),
            MonitorEvent::RunCompleted(e) | MonitorEvent::RunFailed(e) => {
                state.open_runs.remove(&e.run_id);
                state.last_run = Some(LastRun {
                    run_id: e.run_id.clone(),
                    outcome: if matches!(event, MonitorEvent::RunCompleted(_)) {
                        RunOutcome::Completed
                    } else {
                        RunOutcome::Failed
                    },
                    finished_at: e.at,
                    exit_code: e.exit_code,
                    duration_ms: e.duration_ms,
                });
                signalled(&mut state, e.at, &e.details);
            }
            MonitorEvent::HeartbeatMissed(_) => state.deadline = None,
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
    }
}
