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
use crate::maintenance::MaintenanceWindow;
use crate::policy::{AlertPolicy, HoldReason, Policy};
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
    /// This monitor's own alert policy: each knob it states overrides its client's default.
    #[serde(default, skip_serializing_if = "AlertPolicy::is_empty")]
    pub alert_policy: AlertPolicy,
    /// A paused monitor ignores signals (recorded as `SignalIgnored`) instead of resuming.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual_resume: bool,
}

impl MonitorConfig {
    /// A configuration with the usual defaults for everything but what is given.
    pub fn new(name: impl Into<String>, schedule: Schedule, grace: Span) -> MonitorConfig {
        MonitorConfig {
            name: name.into(),
            schedule,
            grace,
            max_runtime: None,
            min_interval: None,
            tags: vec![],
            alert_policy: AlertPolicy::default(),
            manual_resume: false,
        }
    }
}

/// What a client states for all its monitors, recorded on each monitor's stream so that its
/// decisions depend on nothing outside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientDefaults {
    #[serde(default, skip_serializing_if = "AlertPolicy::is_empty")]
    pub alert_policy: AlertPolicy,
    /// Every maintenance window of the client; each says which monitors it covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance: Vec<MaintenanceWindow>,
}

impl ClientDefaults {
    pub fn is_empty(&self) -> bool {
        self == &ClientDefaults::default()
    }

    /// Windows in the order of their ids, so that equal defaults compare equal.
    pub fn normalized(mut self) -> ClientDefaults {
        self.maintenance.sort_by_key(|w| w.id);
        self
    }
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
    /// The monitor changed state more often than the policy's flapping threshold: one alert
    /// speaks for it until it is stable again.
    Flapping,
}

impl AlertCause {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertCause::Missed => "missed",
            AlertCause::Failed => "failed",
            AlertCause::TimedOut => "timed_out",
            AlertCause::Flapping => "flapping",
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
    /// Recorded but not announced: the monitor is silenced, in maintenance or flapping. It is
    /// announced (`AlertAnnounced`) if it is still open once that is over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<HoldReason>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertResolved {
    pub alert_id: Uuid,
    pub cause: AlertCause,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: DateTime<Utc>,
    pub message: String,
    /// Nobody was told of this alert (it was held all along), so nobody is told it resolved.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quiet: bool,
}

/// A held alert is announced: its hold ended and it is still open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertAnnounced {
    pub alert_id: Uuid,
    pub cause: AlertCause,
    pub opened_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
    pub message: String,
}

/// An announced alert's trouble ended while the monitor was held (silenced, in maintenance,
/// flapping): its resolution is announced when the hold ends, unless the trouble comes back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecovered {
    pub alert_id: Uuid,
    pub cause: AlertCause,
    pub at: DateTime<Utc>,
    pub message: String,
}

/// The trouble of a recovered (not yet resolved) alert came back: it goes on as before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecurred {
    pub alert_id: Uuid,
    pub cause: AlertCause,
    pub at: DateTime<Utc>,
    pub message: String,
}

/// An open, unacknowledged alert is announced again (`realert_every`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertReminded {
    pub alert_id: Uuid,
    pub cause: AlertCause,
    pub opened_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
    /// 1 for the first reminder.
    pub reminder: u32,
    pub message: String,
}

/// An alert stayed unacknowledged for `escalate_after`: the `escalate_to` channels are told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEscalated {
    pub alert_id: Uuid,
    pub cause: AlertCause,
    pub opened_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
    /// Names of the channels told.
    pub channels: Vec<String>,
    pub message: String,
}

/// Someone took the alert: reminders and escalation stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertAcknowledged {
    pub alert_id: Uuid,
    pub cause: AlertCause,
    pub opened_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Failed runs that a later success fixed before any alert opened (under `failure_tolerance`
/// or inside `retry_window`): transient, recorded, nobody paged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRecovered {
    pub at: DateTime<Utc>,
    pub failed_runs: u32,
    pub first_failed_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// A deadline fell while telltale itself was not listening (stopped, restarting): whether the
/// process was silent is unknown, so nothing is alerted; it gets its next expectation, and its
/// grace, counted from when telltale listened again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlineUnobserved {
    pub deadline: DateTime<Utc>,
    pub expected_at: DateTime<Utc>,
    /// When telltale listened again.
    pub listening_since: DateTime<Utc>,
    /// The first instant after that: the time of this fact.
    pub noticed_at: DateTime<Utc>,
    /// The deadline counted from then.
    pub rescheduled_to: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_signal_at: Option<DateTime<Utc>>,
}

/// The client's defaults (alert policy, maintenance windows) as they apply to this monitor
/// from now on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientDefaultsApplied {
    #[serde(flatten)]
    pub defaults: ClientDefaults,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorSilenced {
    pub until: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// A silence was ended early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceLifted {
    pub at: DateTime<Utc>,
}

/// A silence ran out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceExpired {
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceStarted {
    pub window_id: Uuid,
    pub at: DateTime<Utc>,
    pub until: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceEnded {
    pub window_id: Uuid,
    pub at: DateTime<Utc>,
}

/// A paused monitor with `manual_resume` received a signal: logged, and it stays paused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalIgnored {
    pub at: DateTime<Utc>,
    pub kind: SignalKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub reason: String,
    #[serde(flatten)]
    pub details: SignalDetails,
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
        AlertAnnounced(AlertAnnounced),
        AlertRecovered(AlertRecovered),
        AlertRecurred(AlertRecurred),
        AlertReminded(AlertReminded),
        AlertEscalated(AlertEscalated),
        AlertAcknowledged(AlertAcknowledged),
        FailureRecovered(FailureRecovered),
        DeadlineUnobserved(DeadlineUnobserved),
        ClientDefaultsApplied(ClientDefaultsApplied),
        MonitorSilenced(MonitorSilenced),
        SilenceLifted(SilenceLifted),
        SilenceExpired(SilenceExpired),
        MaintenanceStarted(MaintenanceStarted),
        MaintenanceEnded(MaintenanceEnded),
        SignalIgnored(SignalIgnored),
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
            MonitorEvent::AlertAnnounced(e) => e.at,
            MonitorEvent::AlertRecovered(e) => e.at,
            MonitorEvent::AlertRecurred(e) => e.at,
            MonitorEvent::AlertReminded(e) => e.at,
            MonitorEvent::AlertEscalated(e) => e.at,
            MonitorEvent::AlertAcknowledged(e) => e.at,
            MonitorEvent::FailureRecovered(e) => e.at,
            MonitorEvent::DeadlineUnobserved(e) => e.noticed_at,
            MonitorEvent::ClientDefaultsApplied(e) => e.at,
            MonitorEvent::MonitorSilenced(e) => e.at,
            MonitorEvent::SilenceLifted(e) => e.at,
            MonitorEvent::SilenceExpired(e) => e.at,
            MonitorEvent::MaintenanceStarted(e) => e.at,
            MonitorEvent::MaintenanceEnded(e) => e.at,
            MonitorEvent::SignalIgnored(e) => e.at,
        }
    }

    pub fn run_id(&self) -> Option<&str> {
        match self {
            MonitorEvent::RunStarted(e) => Some(&e.run_id),
            MonitorEvent::RunProgressed(e) => Some(&e.run_id),
            MonitorEvent::RunCompleted(e) | MonitorEvent::RunFailed(e) => Some(&e.run_id),
            MonitorEvent::RunTimedOut(e) => Some(&e.run_id),
            MonitorEvent::FailureRecovered(e) => e.run_id.as_deref(),
            MonitorEvent::SignalIgnored(e) => e.run_id.as_deref(),
            _ => None,
        }
    }

    /// The alert an alert event is about.
    pub fn alert(&self) -> Option<(Uuid, AlertCause)> {
        match self {
            MonitorEvent::AlertOpened(e) => Some((e.alert_id, e.cause)),
            MonitorEvent::AlertResolved(e) => Some((e.alert_id, e.cause)),
            MonitorEvent::AlertAnnounced(e) => Some((e.alert_id, e.cause)),
            MonitorEvent::AlertRecovered(e) => Some((e.alert_id, e.cause)),
            MonitorEvent::AlertRecurred(e) => Some((e.alert_id, e.cause)),
            MonitorEvent::AlertReminded(e) => Some((e.alert_id, e.cause)),
            MonitorEvent::AlertEscalated(e) => Some((e.alert_id, e.cause)),
            MonitorEvent::AlertAcknowledged(e) => Some((e.alert_id, e.cause)),
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
                | MonitorEvent::AlertAnnounced(_)
                | MonitorEvent::AlertRecovered(_)
                | MonitorEvent::AlertRecurred(_)
                | MonitorEvent::AlertReminded(_)
                | MonitorEvent::AlertEscalated(_)
                | MonitorEvent::FailureRecovered(_)
                | MonitorEvent::DeadlineUnobserved(_)
                | MonitorEvent::SilenceExpired(_)
                | MonitorEvent::MaintenanceStarted(_)
                | MonitorEvent::MaintenanceEnded(_)
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

// One command per request, moved once into `decide`: boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum MonitorCommand {
    Create {
        client: String,
        slug: String,
        config: MonitorConfig,
        /// The client's defaults at creation, recorded with the monitor when not empty.
        defaults: ClientDefaults,
    },
    /// The client's defaults changed (or were found different at start-up).
    ApplyClientDefaults(ClientDefaults),
    /// Hold the monitor's alerts for `duration` from now (replaces a silence under way).
    Silence {
        duration: Span,
        reason: Option<String>,
    },
    /// End a silence early.
    Unsilence,
    Acknowledge {
        alert_id: Uuid,
        by: Option<String>,
        note: Option<String>,
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
    #[error("no open alert `{0}` on this monitor")]
    AlertNotFound(Uuid),
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
    #[serde(default)]
    pub message: String,
    /// Why it is recorded and not (yet) announced; `None` once announced.
    #[serde(default)]
    pub held: Option<HoldReason>,
    /// When it was announced (opened, or announced after its hold).
    #[serde(default)]
    pub announced_at: Option<DateTime<Utc>>,
    /// A held alert to announce at this instant, unless it resolves first.
    #[serde(default)]
    pub announce_at: Option<DateTime<Utc>>,
    /// Good runs or beats in a row since the trouble (see `recovery_threshold`).
    #[serde(default)]
    pub good_streak: u32,
    /// The trouble ended while the monitor was held; the resolution waits for the hold's end.
    #[serde(default)]
    pub recovered_at: Option<DateTime<Utc>>,
    /// When it was last announced or reminded of.
    #[serde(default)]
    pub last_notified_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub reminders: u32,
    #[serde(default)]
    pub escalated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub acknowledged_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub acknowledged_by: Option<String>,
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
    /// A run failed and its failure waits out the `retry_window` for a successful run: not yet
    /// alerted, nobody paged.
    Retrying,
    /// A run has been going for longer than `max_runtime`.
    Hung,
    /// It changed state more often than its flapping threshold allows.
    Flapping,
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
            MonitorStatus::Retrying => "retrying",
            MonitorStatus::Hung => "hung",
            MonitorStatus::Flapping => "flapping",
            MonitorStatus::Paused => "paused",
        }
    }
}

/// Failed runs not yet alerted on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    /// Failed runs in a row.
    pub consecutive: u32,
    pub first_at: Option<DateTime<Utc>>,
    /// Finished runs (time, failed) inside the failure ratio's window, oldest first.
    #[serde(default)]
    pub recent: Vec<(DateTime<Utc>, bool)>,
}

/// Failures reached the tolerance: the alert opens at `since + retry_window` unless a run
/// succeeds first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFailure {
    pub since: DateTime<Utc>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub until: DateTime<Utc>,
    pub reason: Option<String>,
    pub since: DateTime<Utc>,
}

/// A maintenance window as this monitor knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowState {
    pub window: MaintenanceWindow,
    /// Occurrences ending at or before this are behind.
    pub cursor: DateTime<Utc>,
}

/// Most finished runs remembered for a failure ratio.
pub(crate) const MAX_RECENT: usize = 10_000;

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
    /// The client's default alert policy, as last recorded on this stream.
    #[serde(default)]
    pub client_policy: AlertPolicy,
    /// The client's maintenance windows, as last recorded on this stream.
    #[serde(default)]
    pub windows: BTreeMap<Uuid, WindowState>,
    /// Maintenance windows under way for this monitor: id → end.
    #[serde(default)]
    pub maintenance: BTreeMap<Uuid, DateTime<Utc>>,
    #[serde(default)]
    pub silence: Option<Silence>,
    /// When the last silence or maintenance window ended: timers restart from it.
    #[serde(default)]
    pub hold_ended_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub failures: Failures,
    #[serde(default)]
    pub pending_failure: Option<PendingFailure>,
    /// Expected slots missed in a row (see `missed_tolerance`).
    #[serde(default)]
    pub misses: u32,
    /// Recent changes of alert state, newest last (see flapping).
    #[serde(default)]
    pub changes: Vec<DateTime<Utc>>,
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

    /// The alert policy in force: the monitor's own, over its client's, over telltale's.
    pub fn policy(&self) -> Policy {
        let own = self.config.as_ref().map(|c| c.alert_policy.clone()).unwrap_or_default();
        own.over(&self.client_policy).resolve()
    }

    /// Why announcements are held right now, apart from flapping.
    pub fn hold(&self) -> Option<HoldReason> {
        if self.silence.is_some() {
            Some(HoldReason::Silenced)
        } else if !self.maintenance.is_empty() {
            Some(HoldReason::Maintenance)
        } else {
            None
        }
    }

    pub fn flapping(&self) -> bool {
        self.alerts.contains_key(&AlertCause::Flapping)
    }

    /// When a signal is next expected (the deadline without its grace).
    pub fn expected_at(&self) -> Option<DateTime<Utc>> {
        Some(self.deadline? - self.grace())
    }

    /// The deadline the detector acts on: the raw deadline, moved later when the signal it
    /// waits for may have been sent while telltale itself was not listening, so that the
    /// process gets its next expected time after the restart, and its grace, before its silence
    /// counts. That is when the signal was expected before the restart, or within one grace
    /// after it (a process a little early, its clock a little ahead, would have been unheard).
    /// An expectation further ahead keeps its deadline: a restart never postpones a daily job's
    /// next check by a day.
    pub fn effective_deadline(&self, service_started_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.exists() || self.paused {
            return None;
        }
        let deadline = self.deadline?;
        let config = self.config.as_ref()?;
        let grace = config.grace.to_delta();
        let expected_at = deadline - grace;
        match self.last_signal_at {
            Some(last) if last < service_started_at && expected_at <= service_started_at + grace => {
                let fresh = config.schedule.next_expected(service_started_at) + grace;
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

    /// What the passing of time alone will next make true, and when: the end or start of a
    /// hold, a hung run, lateness or a miss, a failure's page, a reminder… The detector wakes
    /// the monitor then; replay steps through the same instants.
    pub fn next_wake(&self, service_started_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_due(service_started_at).map(|(at, _)| at)
    }

    /// The earliest wake, and what it is. At one instant, holds change first, then runs, then
    /// expectations, then the alert policy's own timers.
    pub(crate) fn next_due(&self, service_started_at: DateTime<Utc>) -> Option<(DateTime<Utc>, Wake)> {
        if !self.exists() {
            return None;
        }
        let mut best: Option<(DateTime<Utc>, Wake)> = None;
        let mut offer = |at: DateTime<Utc>, wake: Wake| {
            if best.as_ref().is_none_or(|(b, w)| (at, wake.rank()) < (*b, w.rank())) {
                best = Some((at, wake));
            }
        };
        if let Some(silence) = &self.silence {
            offer(silence.until, Wake::SilenceEnds);
        }
        for (id, until) in &self.maintenance {
            offer(*until, Wake::MaintenanceEnds(*id));
        }
        let (tags, slug) = (self.config.as_ref().map(|c| c.tags.as_slice()).unwrap_or_default(), &self.slug);
        for (id, w) in &self.windows {
            if self.maintenance.contains_key(id) || !w.window.selects(slug, tags) {
                continue;
            }
            if let Some((start, end)) = w.window.occurrence_after(w.cursor) {
                let at = start.max(w.cursor);
                if at < end {
                    offer(at, Wake::MaintenanceStarts(*id, end));
                }
            }
        }
        if !self.paused {
            if let Some((at, _, _)) = self.next_run_deadline(service_started_at) {
                offer(at, Wake::RunHangs);
            }
            if let Some(raw) = self.deadline {
                if raw <= service_started_at {
                    // Noticed at the first instant telltale listens again (strictly after its
                    // start, so that a telltale that died at its very start has not noticed it).
                    offer(service_started_at + chrono::TimeDelta::microseconds(1), Wake::Unobserved);
                } else if let Some(deadline) = self.effective_deadline(service_started_at) {
                    let expected = deadline - self.grace();
                    if !self.late && expected < deadline {
                        offer(expected, Wake::Late);
                    } else {
                        offer(deadline, Wake::Deadline);
                    }
                }
            }
            crate::alerting::offer_wakes(self, &mut offer);
        }
        best
    }

    /// The status without the clock: everything but `late`.
    pub fn status(&self) -> MonitorStatus {
        if self.paused {
            MonitorStatus::Paused
        } else if self.flapping() {
            MonitorStatus::Flapping
        } else if self.alerts.contains_key(&AlertCause::Missed) {
            MonitorStatus::Down
        } else if self.alerts.contains_key(&AlertCause::TimedOut) {
            MonitorStatus::Hung
        } else if self.alerts.contains_key(&AlertCause::Failed) {
            MonitorStatus::Failing
        } else if self.pending_failure.is_some() {
            MonitorStatus::Retrying
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

    /// The alert with this id, if it is open.
    pub fn open_alert(&self, alert_id: Uuid) -> Option<(AlertCause, &OpenAlert)> {
        self.alerts.iter().find(|(_, a)| a.alert_id == alert_id).map(|(c, a)| (*c, a))
    }

    /// The client's defaults as recorded on this stream.
    pub fn client_defaults(&self) -> ClientDefaults {
        ClientDefaults {
            alert_policy: self.client_policy.clone(),
            maintenance: self.windows.values().map(|w| w.window.clone()).collect(),
        }
    }

    pub(crate) fn next_alert_id(&self) -> Uuid {
        Uuid::new_v5(&ALERT_NAMESPACE, format!("{}#{}", self.stream_id(), self.alert_seq + 1).as_bytes())
    }

    pub(crate) fn deadline_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let config = self.config.as_ref()?;
        Some(config.schedule.next_expected(at) + config.grace.to_delta())
    }
}

/// What a wake is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    SilenceEnds,
    MaintenanceEnds(Uuid),
    MaintenanceStarts(Uuid, DateTime<Utc>),
    RunHangs,
    Unobserved,
    Late,
    Deadline,
    /// A failure's retry window ran out.
    FailurePages,
    /// A held alert is announced.
    Announce(AlertCause),
    /// A flapping monitor has been stable for a whole window.
    FlappingSettles,
    Remind(AlertCause),
    Escalate(AlertCause),
}

impl Wake {
    fn rank(&self) -> u8 {
        match self {
            Wake::SilenceEnds => 0,
            Wake::MaintenanceEnds(_) => 1,
            Wake::MaintenanceStarts(..) => 2,
            Wake::RunHangs => 3,
            Wake::Unobserved => 4,
            Wake::Late => 5,
            Wake::Deadline => 6,
            Wake::FailurePages => 7,
            Wake::FlappingSettles => 8,
            Wake::Announce(_) => 9,
            Wake::Escalate(_) => 10,
            Wake::Remind(_) => 11,
        }
    }
}

/// `late` when an `up` monitor's expected time has passed at `now`. Shared with the read models.
pub fn late_or(status: MonitorStatus, expected_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> MonitorStatus {
    match (status, expected_at) {
        (MonitorStatus::Up | MonitorStatus::Early, Some(expected)) if now > expected => MonitorStatus::Late,
        (status, _) => status,
    }
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
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
        let Some((wake, what)) = current.next_due(ctx.service_started_at) else { break };
        if wake > ctx.now {
            break;
        }
        let step = due_at(&current, wake, what, ctx.service_started_at);
        if step.is_empty() {
            break;
        }
        current = MonitorAggregate::fold(current, &step);
        events.extend(step);
    }
    events
}

/// The facts of one wake, each followed by its reactions.
fn due_at(state: &Monitor, wake: DateTime<Utc>, what: Wake, service_started_at: DateTime<Utc>) -> Vec<MonitorEvent> {
    let fact = match what {
        Wake::SilenceEnds => MonitorEvent::SilenceExpired(SilenceExpired { at: wake }),
        Wake::MaintenanceEnds(window_id) => MonitorEvent::MaintenanceEnded(MaintenanceEnded { window_id, at: wake }),
        Wake::MaintenanceStarts(window_id, until) => MonitorEvent::MaintenanceStarted(MaintenanceStarted {
            window_id,
            at: wake,
            until,
            reason: state.windows.get(&window_id).map(|w| w.window.reason.clone()).unwrap_or_default(),
        }),
        Wake::RunHangs => {
            let Some((deadline, run_id, run)) = state.next_run_deadline(service_started_at) else { return vec![] };
            let max_runtime = state.config.as_ref().and_then(|c| c.max_runtime).unwrap_or_default();
            MonitorEvent::RunTimedOut(RunTimedOut {
                run_id: run_id.clone(),
                started_at: run.started_at,
                deadline,
                max_runtime,
            })
        }
        Wake::Unobserved => {
            let (Some(deadline), Some(rescheduled_to)) = (state.deadline, state.deadline_after(service_started_at))
            else {
                return vec![];
            };
            MonitorEvent::DeadlineUnobserved(DeadlineUnobserved {
                deadline,
                expected_at: deadline - state.grace(),
                listening_since: service_started_at,
                noticed_at: wake,
                rescheduled_to,
                last_signal_at: state.last_signal_at,
            })
        }
        Wake::Late | Wake::Deadline => {
            let Some(deadline) = state.effective_deadline(service_started_at) else { return vec![] };
            let expected_at = deadline - state.grace();
            if what == Wake::Late {
                MonitorEvent::MonitorLate(MonitorLate { expected_at, deadline })
            } else if state.config.as_ref().is_some_and(|c| c.schedule.is_cron()) {
                MonitorEvent::RunSkipped(RunSkipped { expected_at, deadline, last_signal_at: state.last_signal_at })
            } else {
                MonitorEvent::HeartbeatMissed(HeartbeatMissed {
                    deadline,
                    expected_at,
                    last_signal_at: state.last_signal_at,
                })
            }
        }
        other => return crate::alerting::policy_wake(state, wake, other),
    };
    let mut out = Vec::new();
    apply_one(state.clone(), fact, wake, &mut out);
    out
}

/// One fact, then its reactions; returns the state after both.
fn apply_one(state: Monitor, fact: MonitorEvent, at: DateTime<Utc>, out: &mut Vec<MonitorEvent>) -> Monitor {
    let before = state.clone();
    let current = MonitorAggregate::evolve(state, &fact);
    let reactions = crate::alerting::react(&before, &current, &fact, at);
    out.push(fact);
    let current = MonitorAggregate::fold(current, &reactions);
    out.extend(reactions);
    current
}

/// Applies facts one by one, each followed by its reactions and by whatever it made due at
/// once (a shorter `max_runtime`, a failure with no retry window, say: recorded now, not at the
/// next tick, so that a stop right after this decision cannot lose it). The one path that both
/// `decide` and replay take.
pub fn apply(state: Monitor, facts: Vec<MonitorEvent>, ctx: &Context, out: &mut Vec<MonitorEvent>) -> Monitor {
    let mut current = state;
    for fact in facts {
        current = apply_one(current, fact, ctx.now, out);
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
    config.alert_policy.check().map_err(|e| MonitorError::Invalid(format!("alert_policy.{e}")))?;
    Ok(())
}

/// Checks what a client states for its monitors.
pub fn check_defaults(defaults: &ClientDefaults) -> Result<(), MonitorError> {
    defaults.alert_policy.check().map_err(|e| MonitorError::Invalid(format!("alert_policy.{e}")))?;
    if defaults.maintenance.len() > crate::maintenance::MAX_WINDOWS {
        return Err(MonitorError::Invalid(format!(
            "a client has at most {} maintenance windows",
            crate::maintenance::MAX_WINDOWS
        )));
    }
    for window in &defaults.maintenance {
        window.check().map_err(MonitorError::Invalid)?;
    }
    Ok(())
}

/// The longest silence.
pub const MAX_SILENCE: Span = Span::from_secs(31 * 24 * 3600);

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
    const STATE_VERSION: i32 = 3;

    fn decide(state: &Monitor, command: MonitorCommand, ctx: &Context) -> Result<Vec<MonitorEvent>, MonitorError> {
        let not_found = || MonitorError::NotFound(state.slug.clone());
        // Validate before anything is produced, so a refused command changes nothing.
        match &command {
            MonitorCommand::Create { slug, config, defaults, .. } => {
                if state.exists() {
                    return Err(MonitorError::AlreadyExists(slug.clone()));
                }
                check_config(config)?;
                check_defaults(defaults)?;
            }
            _ if !state.exists() => return Err(not_found()),
            MonitorCommand::Reconfigure { config } => check_config(config)?,
            MonitorCommand::ApplyClientDefaults(defaults) => check_defaults(defaults)?,
            MonitorCommand::Signal(signal) => check_signal(signal)?,
            MonitorCommand::Silence { duration, reason } => {
                if duration.is_zero() || *duration > MAX_SILENCE {
                    return Err(MonitorError::Invalid(format!(
                        "duration: a silence lasts longer than 0s and at most {MAX_SILENCE}"
                    )));
                }
                if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
                    return Err(MonitorError::Invalid("reason: at most 500 characters".into()));
                }
            }
            MonitorCommand::Acknowledge { alert_id, by, note } => {
                if by.as_ref().is_some_and(|b| b.chars().count() > 200)
                    || note.as_ref().is_some_and(|n| n.chars().count() > 2000)
                {
                    return Err(MonitorError::Invalid("by: at most 200 characters; note: at most 2000".into()));
                }
                // Time may have resolved it since: judged after what is due below.
                let _ = alert_id;
            }
            MonitorCommand::Pause
            | MonitorCommand::Resume
            | MonitorCommand::Delete
            | MonitorCommand::Tick
            | MonitorCommand::Unsilence => {}
        }

        let mut events = due(state, ctx);
        let current = MonitorAggregate::fold(state.clone(), &events);
        let at = ctx.now;

        let facts: Vec<MonitorEvent> = match command {
            MonitorCommand::Create { client, slug, config, defaults } => {
                let mut facts = vec![MonitorEvent::MonitorCreated(MonitorCreated { client, slug, config, at })];
                if !defaults.is_empty() {
                    facts.push(MonitorEvent::ClientDefaultsApplied(ClientDefaultsApplied {
                        defaults: defaults.normalized(),
                        at,
                    }));
                }
                facts
            }
            MonitorCommand::Reconfigure { config } => {
                if current.config.as_ref() == Some(&config) {
                    vec![]
                } else {
                    vec![MonitorEvent::MonitorReconfigured(MonitorReconfigured { config, at })]
                }
            }
            MonitorCommand::ApplyClientDefaults(defaults) => {
                let defaults = defaults.normalized();
                if current.client_defaults() == defaults {
                    vec![]
                } else {
                    vec![MonitorEvent::ClientDefaultsApplied(ClientDefaultsApplied { defaults, at })]
                }
            }
            MonitorCommand::Silence { duration, reason } => {
                vec![MonitorEvent::MonitorSilenced(MonitorSilenced { until: at + duration.to_delta(), reason, at })]
            }
            MonitorCommand::Unsilence if current.silence.is_none() => vec![],
            MonitorCommand::Unsilence => vec![MonitorEvent::SilenceLifted(SilenceLifted { at })],
            MonitorCommand::Acknowledge { alert_id, by, note } => match current.open_alert(alert_id) {
                None => return Err(MonitorError::AlertNotFound(alert_id)),
                Some((_, alert)) if alert.acknowledged_at.is_some() => vec![],
                Some((cause, alert)) => vec![MonitorEvent::AlertAcknowledged(AlertAcknowledged {
                    alert_id,
                    cause,
                    opened_at: alert.opened_at,
                    at,
                    by,
                    note,
                })],
            },
            MonitorCommand::Pause if current.paused => vec![],
            MonitorCommand::Pause => vec![MonitorEvent::MonitorPaused(MonitorPaused { at })],
            MonitorCommand::Resume if !current.paused => vec![],
            MonitorCommand::Resume => vec![MonitorEvent::MonitorResumed(MonitorResumed { at, by_signal: false })],
            MonitorCommand::Delete => vec![MonitorEvent::MonitorDeleted(MonitorDeleted { at })],
            MonitorCommand::Signal(signal)
                if current.paused && current.config.as_ref().is_some_and(|c| c.manual_resume) =>
            {
                // C44(c): a misbehaving job must not resume a monitor someone paused on purpose.
                let kind = signal.kind.unwrap_or(SignalKind::Heartbeat);
                vec![MonitorEvent::SignalIgnored(SignalIgnored {
                    at,
                    kind,
                    run_id: signal.run_id.clone(),
                    reason: "the monitor is paused and resumes only by hand (manual_resume)".into(),
                    details: signal.details.clone(),
                })]
            }
            MonitorCommand::Signal(signal) => {
                let mut facts = Vec::new();
                if current.paused {
                    facts.push(MonitorEvent::MonitorResumed(MonitorResumed { at, by_signal: true }));
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
                state.pending_failure = None;
                state.failures = Failures::default();
                state.misses = 0;
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
                state.pending_failure = None;
                state.silence = None;
                state.maintenance.clear();
            }
            MonitorEvent::HeartbeatReceived(e) => {
                state.last_heartbeat_at = Some(e.at);
                state.too_early = false;
                signalled(&mut state, e.at, &e.details);
                state.misses = 0;
                good_streak(&mut state, AlertCause::Missed);
                good_streak(&mut state, AlertCause::Failed);
                state.failures.consecutive = 0;
                state.failures.first_at = None;
                state.pending_failure = None;
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
                state.misses = 0;
                good_streak(&mut state, AlertCause::Missed);
            }
            MonitorEvent::RunProgressed(e) => {
                signalled(&mut state, e.at, &e.details);
                state.misses = 0;
                good_streak(&mut state, AlertCause::Missed);
            }
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
                state.misses = 0;
                if e.started_at.is_none() {
                    // A run whose start telltale never saw: its finish is its sign of life.
                    good_streak(&mut state, AlertCause::Missed);
                }
                crate::alerting::count_run(&mut state, e, completed);
            }
            MonitorEvent::HeartbeatMissed(e) => {
                state.misses += 1;
                state.late = false;
                bad_streak(&mut state, AlertCause::Missed);
                // Each missed window counts toward `missed_tolerance` (C34): while it is not
                // reached, expect the next window; after that, silence is one outage.
                state.deadline = if state.misses <= state.policy().missed_tolerance && state.alerts.is_empty() {
                    state.deadline_after(e.expected_at)
                } else {
                    None
                };
            }
            MonitorEvent::RunSkipped(e) => {
                // Each skipped slot of a cron schedule is its own fact: expect the next one.
                state.misses += 1;
                bad_streak(&mut state, AlertCause::Missed);
                state.deadline = state.deadline_after(e.expected_at);
                state.late = false;
            }
            MonitorEvent::DeadlineUnobserved(e) => {
                state.deadline = Some(e.rescheduled_to);
                state.late = false;
            }
            MonitorEvent::MonitorLate(_) => state.late = true,
            MonitorEvent::RunTimedOut(e) => {
                if let Some(run) = state.open_runs.get_mut(&e.run_id) {
                    run.timed_out = true;
                }
            }
            MonitorEvent::SignalTooEarly(_) => state.too_early = true,
            MonitorEvent::SignalIgnored(_) => {}
            MonitorEvent::AlertOpened(e) => {
                state.alert_seq += 1;
                crate::alerting::count_change(&mut state, e.cause, e.opened_at);
                state.alerts.insert(
                    e.cause,
                    OpenAlert {
                        alert_id: e.alert_id,
                        opened_at: e.opened_at,
                        message: e.message.clone(),
                        held: e.held,
                        announced_at: e.held.is_none().then_some(e.opened_at),
                        announce_at: None,
                        good_streak: 0,
                        recovered_at: None,
                        last_notified_at: e.held.is_none().then_some(e.opened_at),
                        reminders: 0,
                        escalated_at: None,
                        acknowledged_at: None,
                        acknowledged_by: None,
                    },
                );
                if e.cause == AlertCause::Failed {
                    state.pending_failure = None;
                }
            }
            MonitorEvent::AlertResolved(e) => {
                crate::alerting::count_change(&mut state, e.cause, e.resolved_at);
                state.alerts.remove(&e.cause);
                if e.cause == AlertCause::Missed {
                    state.misses = 0;
                }
            }
            MonitorEvent::AlertAnnounced(e) => {
                if let Some(alert) = state.alerts.get_mut(&e.cause) {
                    alert.held = None;
                    alert.announce_at = None;
                    alert.announced_at = Some(e.at);
                    alert.last_notified_at = Some(e.at);
                }
            }
            MonitorEvent::AlertRecovered(e) => {
                crate::alerting::count_change(&mut state, e.cause, e.at);
                if let Some(alert) = state.alerts.get_mut(&e.cause) {
                    alert.recovered_at = Some(e.at);
                }
            }
            MonitorEvent::AlertRecurred(e) => {
                crate::alerting::count_change(&mut state, e.cause, e.at);
                if let Some(alert) = state.alerts.get_mut(&e.cause) {
                    alert.recovered_at = None;
                    alert.good_streak = 0;
                }
                if e.cause == AlertCause::Failed {
                    state.pending_failure = None;
                }
            }
            MonitorEvent::AlertReminded(e) => {
                if let Some(alert) = state.alerts.get_mut(&e.cause) {
                    alert.reminders = e.reminder;
                    alert.last_notified_at = Some(e.at);
                }
            }
            MonitorEvent::AlertEscalated(e) => {
                if let Some(alert) = state.alerts.get_mut(&e.cause) {
                    alert.escalated_at = Some(e.at);
                }
            }
            MonitorEvent::AlertAcknowledged(e) => {
                // By id; replayed with another policy, the alert of the same cause open then.
                let cause = state.open_alert(e.alert_id).map(|(c, _)| c).unwrap_or(e.cause);
                if let Some(alert) = state.alerts.get_mut(&cause) {
                    alert.acknowledged_at = Some(e.at);
                    alert.acknowledged_by = e.by.clone();
                }
            }
            MonitorEvent::FailureRecovered(_) => {
                state.failures.consecutive = 0;
                state.failures.first_at = None;
                state.pending_failure = None;
            }
            MonitorEvent::ClientDefaultsApplied(e) => {
                state.client_policy = e.defaults.alert_policy.clone();
                let mut windows = BTreeMap::new();
                for window in &e.defaults.maintenance {
                    let cursor = state.windows.get(&window.id).map_or(e.at, |w| w.cursor);
                    windows.insert(window.id, WindowState { window: window.clone(), cursor });
                }
                state.windows = windows;
            }
            MonitorEvent::MonitorSilenced(e) => {
                state.silence = Some(Silence { until: e.until, reason: e.reason.clone(), since: e.at });
            }
            MonitorEvent::SilenceLifted(SilenceLifted { at }) | MonitorEvent::SilenceExpired(SilenceExpired { at }) => {
                state.silence = None;
                crate::alerting::hold_may_end(&mut state, *at);
            }
            MonitorEvent::MaintenanceStarted(e) => {
                state.maintenance.insert(e.window_id, e.until);
                if let Some(w) = state.windows.get_mut(&e.window_id) {
                    w.cursor = e.until;
                }
            }
            MonitorEvent::MaintenanceEnded(e) => {
                state.maintenance.remove(&e.window_id);
                if let Some(w) = state.windows.get_mut(&e.window_id) {
                    w.cursor = w.cursor.max(e.at);
                }
                crate::alerting::hold_may_end(&mut state, e.at);
            }
        }
        state
    }
}

fn good_streak(state: &mut Monitor, cause: AlertCause) {
    if let Some(alert) = state.alerts.get_mut(&cause) {
        alert.good_streak = alert.good_streak.saturating_add(1);
    }
}

fn bad_streak(state: &mut Monitor, cause: AlertCause) {
    if let Some(alert) = state.alerts.get_mut(&cause) {
        alert.good_streak = 0;
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
