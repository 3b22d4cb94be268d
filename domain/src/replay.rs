//! Replay: detection is a pure function of the recorded inputs (signals, configuration changes,
//! telltale's own starts and stops) and time. Feeding the inputs of a monitor, in log order,
//! through [`Replay`] recomputes every derived fact (lateness, misses, hung runs, alerts) with a
//! virtual clock, through the very functions a live decision uses ([`due`] and [`apply`]).
//!
//! With the recorded policy it reproduces what was recorded; with another policy (a different
//! grace, schedule or `max_runtime`) it answers "what would this have alerted on?".

use chrono::{DateTime, Utc};

use crate::aggregate::{Aggregate, Context};
use crate::monitor::{Monitor, MonitorAggregate, MonitorConfig, MonitorEvent, apply, due};
use crate::policy::AlertPolicy;
use crate::schedule::Schedule;
use crate::span::Span;
use crate::system::SystemEvent;

/// Another policy to replay with: each field given replaces that part of every configuration
/// the monitor had; absent fields keep what was recorded. The alert policy's knobs given here
/// win over both the monitor's own and its client's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyOverride {
    pub schedule: Option<Schedule>,
    pub grace: Option<Span>,
    /// `Some(None)` removes the limit.
    pub max_runtime: Option<Option<Span>>,
    pub min_interval: Option<Option<Span>>,
    pub alert_policy: AlertPolicy,
}

impl PolicyOverride {
    pub fn is_empty(&self) -> bool {
        self == &PolicyOverride::default()
    }

    pub fn apply(&self, config: &MonitorConfig) -> MonitorConfig {
        let mut config = config.clone();
        if let Some(schedule) = &self.schedule {
            config.schedule = schedule.clone();
        }
        if let Some(grace) = self.grace {
            config.grace = grace;
        }
        if let Some(max_runtime) = self.max_runtime {
            config.max_runtime = max_runtime;
        }
        if let Some(min_interval) = self.min_interval {
            config.min_interval = min_interval;
        }
        config.alert_policy = self.alert_policy.over(&config.alert_policy);
        config
    }
}

/// One recorded input, in log order.
// Monitor events are the common case; boxing them would cost an allocation per input.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayInput {
    /// An event of the monitor's stream. Derived events are skipped: replay recomputes them.
    Monitor(MonitorEvent),
    /// telltale's own life.
    System(SystemEvent),
}

/// A replay in progress.
#[derive(Debug, Clone)]
pub struct Replay {
    state: Monitor,
    /// When the telltale being replayed started to receive; `None` while it is down.
    listening_since: Option<DateTime<Utc>>,
    policy: Option<PolicyOverride>,
    derived: Vec<MonitorEvent>,
}

impl Replay {
    /// A replay with the recorded configuration (`policy: None`) or with `policy` laid over
    /// every configuration the monitor had.
    pub fn new(policy: Option<PolicyOverride>) -> Replay {
        Replay { state: Monitor::default(), listening_since: None, policy, derived: Vec::new() }
    }

    pub fn state(&self) -> &Monitor {
        &self.state
    }

    /// The derived events so far, in order.
    pub fn derived(&self) -> &[MonitorEvent] {
        &self.derived
    }

    pub fn into_derived(self) -> Vec<MonitorEvent> {
        self.derived
    }

    /// Lets virtual time pass until `now`: whatever became due is derived, as the detector
    /// would have, but only while telltale was listening.
    pub fn advance(&mut self, now: DateTime<Utc>) {
        let Some(since) = self.listening_since else { return };
        if !self.state.exists() {
            return;
        }
        let ctx = Context::new(now, since);
        let events = due(&self.state, &ctx);
        self.state = MonitorAggregate::fold(std::mem::take(&mut self.state), &events);
        self.derived.extend(events);
    }

    pub fn feed(&mut self, input: ReplayInput) {
        match input {
            ReplayInput::System(SystemEvent::ServiceStarted(started)) => {
                if self.listening_since.is_some() {
                    // The previous run ended without a trace: it listened until it was last seen.
                    self.advance(started.down_since.unwrap_or(started.at));
                }
                self.listening_since = Some(started.at);
            }
            ReplayInput::System(SystemEvent::ServiceStopped(stopped)) => {
                self.advance(stopped.at);
                self.listening_since = None;
            }
            ReplayInput::Monitor(event) if event.is_derived() => {}
            ReplayInput::Monitor(mut event) => {
                let at = event.at();
                self.advance(at);
                if let Some(policy) = &self.policy {
                    match &mut event {
                        MonitorEvent::MonitorCreated(e) => e.config = policy.apply(&e.config),
                        MonitorEvent::MonitorReconfigured(e) => e.config = policy.apply(&e.config),
                        _ => {}
                    }
                }
                // A decision made while the replayed telltale is down cannot happen live; if
                // one shows up anyway (an old log without `ServiceStarted`), it is judged as if
                // telltale had just started.
                let ctx = Context::new(at, self.listening_since.unwrap_or(at));
                let mut out = Vec::new();
                self.state = apply(std::mem::take(&mut self.state), vec![event], &ctx, &mut out);
                self.derived.extend(out.into_iter().filter(MonitorEvent::is_derived));
            }
        }
    }

    /// Feeds every input, then lets time run to `until`.
    pub fn run(
        policy: Option<PolicyOverride>,
        inputs: impl IntoIterator<Item = ReplayInput>,
        until: DateTime<Utc>,
    ) -> Replay {
        let mut replay = Replay::new(policy);
        for input in inputs {
            replay.feed(input);
        }
        replay.advance(until);
        replay
    }
}
