//! Property: detection is a pure function of the recorded inputs. Generated histories (beats,
//! runs, failures, configuration changes, alert policies of the monitor and of its client,
//! maintenance windows, silences, acknowledgements, pauses, telltale's own clean stops and
//! crashes) are
//! played "live" (commands decided at their time, the detector ticking each wake with a random
//! lag, or not at all while telltale is down); replaying the recorded log through [`Replay`]
//! gives exactly the derived events that were recorded.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;
use telltale_domain::maintenance::{MaintenanceWindow, WindowTime};
use telltale_domain::monitor::*;
use telltale_domain::policy::{AlertPolicy, FailureRatio, FailureTolerance, Ratio};
use telltale_domain::replay::{PolicyOverride, Replay, ReplayInput};
use telltale_domain::schedule::Schedule;
use telltale_domain::span::Span;
use telltale_domain::system::{ServiceStarted, ServiceStopped, SystemEvent};
use telltale_domain::{Aggregate, Context};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    /// Time passes (ms), with the detector lagging this much behind each wake (ms).
    Wait(i64, i64),
    Beat,
    Start(Option<u8>),
    Finish(Option<u8>, i32),
    Fail(Option<u8>),
    Reconfigure {
        every: i64,
        grace: i64,
        max_runtime: Option<i64>,
        min_interval: Option<i64>,
        tagged: bool,
        policy: AlertPolicy,
    },
    /// The client's defaults change: its policy, and a maintenance window (in seconds from
    /// now: one-off from/to, or every few minutes for a while).
    Defaults(AlertPolicy, Option<Window>),
    Silence(i64),
    Unsilence,
    /// Acknowledge the first open alert, if any.
    Acknowledge,
    Pause,
    Resume,
    /// telltale stops cleanly, or crashes, for this long (ms).
    Stop(i64),
    Crash(i64),
}

#[derive(Debug, Clone)]
enum Window {
    Once(i64, i64, bool),
    Recurring(u32, i64, bool),
}

fn policy() -> impl Strategy<Value = AlertPolicy> {
    let tolerance = prop_oneof![
        (1u32..4).prop_map(FailureTolerance::Consecutive),
        (1u32..=4, 30i64..300, 1u32..4).prop_map(|(quarters, window, min_runs)| FailureTolerance::Ratio(
            FailureRatio {
                ratio: Ratio::from_basis_points(quarters * 2500),
                window: Span::from_secs(window),
                min_runs,
            }
        )),
    ];
    (
        proptest::option::of(tolerance),
        proptest::option::of(0i64..30),
        proptest::option::of(0u32..3),
        proptest::option::of(1u32..4),
        proptest::option::of(prop_oneof![Just(0i64), 60i64..180]),
        proptest::option::of((0i64..120, proptest::bool::ANY)),
        proptest::option::of((0u32..5, 30i64..300)),
    )
        .prop_map(|(failure_tolerance, retry, missed, recovery, realert, escalate, flapping)| AlertPolicy {
            failure_tolerance,
            retry_window: retry.map(Span::from_secs),
            missed_tolerance: missed,
            recovery_threshold: recovery,
            realert_every: realert.map(Span::from_secs),
            escalate_after: escalate.map(|(after, _)| Span::from_secs(after)),
            escalate_to: escalate.and_then(|(_, on)| on.then(|| vec!["pager".to_string()])),
            flapping_threshold: flapping.map(|(k, _)| k),
            flapping_window: flapping.map(|(_, w)| Span::from_secs(w)),
        })
}

fn window() -> impl Strategy<Value = Window> {
    prop_oneof![
        (0i64..300, 1i64..300, proptest::bool::ANY).prop_map(|(from, len, tagged)| Window::Once(from, len, tagged)),
        (1u32..6, 30i64..400, proptest::bool::ANY)
            .prop_map(|(every, len, tagged)| Window::Recurring(every, len, tagged)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let run = proptest::option::of(0u8..3);
    prop_oneof![
        6 => (1i64..120_000, 0i64..3_000).prop_map(|(d, lag)| Op::Wait(d, lag)),
        4 => Just(Op::Beat),
        2 => run.clone().prop_map(Op::Start),
        2 => (run.clone(), prop_oneof![Just(0), Just(1), Just(255), Just(-1)]).prop_map(|(r, c)| Op::Finish(r, c)),
        1 => run.prop_map(Op::Fail),
        1 => (
            (1i64..60, 0i64..20, proptest::option::of(1i64..90), proptest::option::of(1i64..30)),
            proptest::bool::ANY,
            policy()
        )
            .prop_map(|((every, grace, max_runtime, min_interval), tagged, policy)| Op::Reconfigure {
                every,
                grace,
                max_runtime,
                min_interval,
                tagged,
                policy
            }),
        1 => (policy(), proptest::option::of(window())).prop_map(|(p, w)| Op::Defaults(p, w)),
        1 => (1i64..400).prop_map(Op::Silence),
        1 => Just(Op::Unsilence),
        1 => Just(Op::Acknowledge),
        1 => Just(Op::Pause),
        1 => Just(Op::Resume),
        1 => (1i64..200_000).prop_map(Op::Stop),
        1 => (1i64..200_000).prop_map(Op::Crash),
    ]
}

fn config(every: i64, grace: i64, max_runtime: Option<i64>, min_interval: Option<i64>) -> MonitorConfig {
    MonitorConfig {
        max_runtime: max_runtime.map(Span::from_secs),
        min_interval: min_interval.map(Span::from_secs),
        ..MonitorConfig::new("job", Schedule::every(Span::from_secs(every)).unwrap(), Span::from_secs(grace))
    }
}

fn maintenance(window: &Window, now: DateTime<Utc>) -> MaintenanceWindow {
    let (when, tagged) = match window {
        Window::Once(from, len, tagged) => {
            let from = now + TimeDelta::seconds(*from);
            (WindowTime::Once { from, to: from + TimeDelta::seconds(*len) }, *tagged)
        }
        Window::Recurring(every, len, tagged) => (
            WindowTime::Recurring {
                cron: format!("*/{every} * * * *"),
                timezone: "Europe/Berlin".into(),
                duration: Span::from_secs(*len),
            },
            *tagged,
        ),
    };
    MaintenanceWindow {
        id: Uuid::from_u128(7),
        reason: "deploy".into(),
        when,
        tags: if tagged { vec!["db".into()] } else { vec![] },
        monitors: vec![],
    }
}

/// A live telltale in miniature: a log, an aggregate, a detector with a lag, restarts.
struct Live {
    log: Vec<ReplayInput>,
    state: Monitor,
    now: DateTime<Utc>,
    started: DateTime<Utc>,
    last_recorded: DateTime<Utc>,
    lag: TimeDelta,
    fresh: u64,
}

impl Live {
    fn record_system(&mut self, event: SystemEvent) {
        self.last_recorded = self.now;
        self.log.push(ReplayInput::System(event));
    }

    fn decide(&mut self, command: MonitorCommand) {
        let ctx = Context::new(self.now, self.started);
        if let Ok(events) = MonitorAggregate::decide(&self.state, command, &ctx) {
            if !events.is_empty() {
                self.last_recorded = self.now;
            }
            self.state = MonitorAggregate::fold(std::mem::take(&mut self.state), &events);
            self.log.extend(events.into_iter().map(ReplayInput::Monitor));
        }
    }

    /// Time passes while telltale listens: the detector ticks each wake, `lag` late, unless
    /// `to` comes first (then the next command sees what is due, as live).
    fn pass(&mut self, to: DateTime<Utc>) {
        while let Some(wake) = self.state.next_wake(self.started) {
            let tick = wake.max(self.now) + self.lag;
            if tick > to {
                break;
            }
            self.now = tick;
            self.decide(MonitorCommand::Tick);
        }
        self.now = to;
    }

    fn signal(&mut self, kind: SignalKind, run: Option<u8>, exit_code: Option<i32>) {
        self.fresh += 1;
        let signal = Signal {
            kind: Some(kind),
            run_id: run.map(|r| format!("run-{r}")),
            fresh_run_id: format!("fresh-{}", self.fresh),
            exit_code,
            ..Signal::default()
        };
        self.decide(MonitorCommand::Signal(Box::new(signal)));
    }

    fn restart(&mut self, down_for: i64, crashed: bool) {
        let down_since = if crashed {
            Some(self.last_recorded)
        } else {
            // A clean stop acts on everything due before it records itself.
            self.lag = TimeDelta::zero();
            self.pass(self.now);
            self.record_system(SystemEvent::ServiceStopped(ServiceStopped { node_id: Uuid::nil(), at: self.now }));
            None
        };
        // Nothing ticks while telltale is down.
        self.now += TimeDelta::milliseconds(down_for);
        self.started = self.now;
        let started = ServiceStarted { node_id: Uuid::nil(), at: self.now, version: "test".into(), down_since };
        self.record_system(SystemEvent::ServiceStarted(started));
    }
}

fn play(ops: &[Op]) -> (Vec<ReplayInput>, DateTime<Utc>) {
    let mut live = Live {
        log: vec![],
        state: Monitor::default(),
        now: t0(),
        started: t0(),
        last_recorded: t0(),
        lag: TimeDelta::zero(),
        fresh: 0,
    };
    live.record_system(SystemEvent::ServiceStarted(ServiceStarted {
        node_id: Uuid::nil(),
        at: t0(),
        version: "test".into(),
        down_since: None,
    }));
    live.decide(MonitorCommand::Create {
        client: "acme".into(),
        slug: "job".into(),
        config: config(10, 5, None, None),
        defaults: ClientDefaults::default(),
    });
    for op in ops {
        match op {
            Op::Wait(ms, lag) => {
                live.lag = TimeDelta::milliseconds(*lag);
                let to = live.now + TimeDelta::milliseconds(*ms);
                live.pass(to);
            }
            Op::Beat => live.signal(SignalKind::Heartbeat, None, None),
            Op::Start(run) => live.signal(SignalKind::Started, *run, None),
            Op::Finish(run, code) => live.signal(SignalKind::Completed, *run, Some(*code)),
            Op::Fail(run) => live.signal(SignalKind::Failed, *run, None),
            Op::Reconfigure { every, grace, max_runtime, min_interval, tagged, policy } => {
                let config = MonitorConfig {
                    tags: if *tagged { vec!["db".into()] } else { vec![] },
                    alert_policy: policy.clone(),
                    ..config(*every, *grace, *max_runtime, *min_interval)
                };
                live.decide(MonitorCommand::Reconfigure { config })
            }
            Op::Defaults(policy, window) => {
                let defaults = ClientDefaults {
                    alert_policy: policy.clone(),
                    maintenance: window.iter().map(|w| maintenance(w, live.now)).collect(),
                };
                live.decide(MonitorCommand::ApplyClientDefaults(defaults))
            }
            Op::Silence(secs) => {
                live.decide(MonitorCommand::Silence { duration: Span::from_secs(*secs), reason: None })
            }
            Op::Unsilence => live.decide(MonitorCommand::Unsilence),
            Op::Acknowledge => {
                if let Some(alert) = live.state.alerts.values().next() {
                    let alert_id = alert.alert_id;
                    live.decide(MonitorCommand::Acknowledge { alert_id, by: Some("ops".into()), note: None })
                }
            }
            Op::Pause => live.decide(MonitorCommand::Pause),
            Op::Resume => live.decide(MonitorCommand::Resume),
            Op::Stop(ms) => live.restart(*ms, false),
            Op::Crash(ms) => live.restart(*ms, true),
        }
    }
    // The end: the detector catches up with everything due.
    live.lag = TimeDelta::zero();
    let end = live.now + TimeDelta::seconds(1);
    live.pass(end);
    (live.log, end)
}

fn derived(log: &[ReplayInput]) -> Vec<MonitorEvent> {
    log.iter()
        .filter_map(|input| match input {
            ReplayInput::Monitor(e) if e.is_derived() => Some(e.clone()),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn replaying_the_recorded_inputs_reproduces_the_derived_events(ops in proptest::collection::vec(op(), 1..80)) {
        let (log, end) = play(&ops);
        let replayed = Replay::run(None, log.iter().cloned(), end);
        let recorded = derived(&log);
        prop_assert_eq!(replayed.derived(), recorded.as_slice());
    }
}

#[test]
fn another_policy_derives_other_events_from_the_same_inputs() {
    let ops = [Op::Beat, Op::Wait(12_000, 0), Op::Beat, Op::Wait(20_000, 0), Op::Beat];
    let (log, end) = play(&ops);
    // Recorded policy: every 10 s, grace 5 s; the 12 s gap is only late, the 20 s gap a miss.
    let recorded = derived(&log);
    let types =
        |events: &[MonitorEvent]| events.iter().map(telltale_domain::EventPayload::event_type).collect::<Vec<_>>();
    assert_eq!(types(&recorded), ["MonitorLate", "MonitorLate", "HeartbeatMissed", "AlertOpened", "AlertResolved"]);
    assert_eq!(Replay::run(None, log.iter().cloned(), end).derived(), recorded.as_slice());
    // A stricter policy (grace 1 s) would have paged twice.
    let policy = PolicyOverride { grace: Some(Span::from_secs(1)), ..PolicyOverride::default() };
    let strict = Replay::run(Some(policy), log.iter().cloned(), end);
    let opened = strict.derived().iter().filter(|e| matches!(e, MonitorEvent::AlertOpened(_))).count();
    assert_eq!(opened, 2);
}
