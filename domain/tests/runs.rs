//! The run lifecycle, given/when/then, and the section D edge cases of
//! `shared/cases/edge-cases.md`. A small driver plays a timeline the way the server does:
//! signals decided at their time, and the detector ticking each monitor at its next wake.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use telltale_domain::monitor::*;
use telltale_domain::schedule::Schedule;
use telltale_domain::span::Span;
use telltale_domain::{Aggregate, Context};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::seconds(secs)
}
const MIN: i64 = 60;
const HOUR: i64 = 3600;

fn config(every: i64, grace: i64) -> MonitorConfig {
    MonitorConfig {
        name: "job".into(),
        schedule: Schedule::every(Span::from_secs(every)).unwrap(),
        grace: Span::from_secs(grace),
        max_runtime: None,
        min_interval: None,
        tags: vec![],
        // These tests are about detection: alerts open at once, as before the alert policy.
        alert_policy: immediate(),
        manual_resume: false,
    }
}

/// The policy of telltale before its alert policy existed: a failure alerts at once, flapping
/// is not collapsed.
fn immediate() -> telltale_domain::policy::AlertPolicy {
    telltale_domain::policy::AlertPolicy {
        retry_window: Some(Span::ZERO),
        flapping_threshold: Some(0),
        ..Default::default()
    }
}

/// A timeline driven through `decide`, with the detector's ticks in between.
struct Live {
    state: Monitor,
    events: Vec<MonitorEvent>,
    now: DateTime<Utc>,
    started: DateTime<Utc>,
}

impl Live {
    fn new(config: MonitorConfig) -> Live {
        let mut live = Live { state: Monitor::default(), events: vec![], now: t(-HOUR), started: t(-HOUR) };
        live.decide(MonitorCommand::Create {
            client: "acme".into(),
            slug: "job".into(),
            config,
            defaults: Default::default(),
        });
        live
    }

    fn decide(&mut self, command: MonitorCommand) -> Vec<MonitorEvent> {
        let events = MonitorAggregate::decide(&self.state, command, &Context::new(self.now, self.started)).unwrap();
        self.state = MonitorAggregate::fold(std::mem::take(&mut self.state), &events);
        self.events.extend(events.clone());
        events
    }

    /// Lets time pass to `to`, ticking at every wake on the way.
    fn run_until(&mut self, to: DateTime<Utc>) {
        while let Some(wake) = self.state.next_wake(self.started)
            && wake <= to
        {
            self.now = wake.max(self.now);
            self.decide(MonitorCommand::Tick);
        }
        self.now = to;
    }

    fn at(&mut self, secs: i64, signal: Signal) -> Vec<MonitorEvent> {
        self.run_until(t(secs));
        self.decide(MonitorCommand::Signal(Box::new(Signal { fresh_run_id: format!("fresh-{secs}"), ..signal })))
    }

    fn types(&self) -> Vec<&'static str> {
        self.events.iter().map(telltale_domain::EventPayload::event_type).collect()
    }

    fn alerts_opened(&self) -> Vec<(&AlertCause, DateTime<Utc>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                MonitorEvent::AlertOpened(o) => Some((&o.cause, o.opened_at)),
                _ => None,
            })
            .collect()
    }
}

fn kind(kind: SignalKind) -> Signal {
    Signal { kind: Some(kind), ..Signal::default() }
}

fn run(k: SignalKind, run_id: &str) -> Signal {
    Signal { run_id: Some(run_id.into()), ..kind(k) }
}

fn exit(code: i32) -> Signal {
    Signal { exit_code: Some(code), ..kind(SignalKind::Completed) }
}

#[test]
fn c37_new_starts_never_mask_an_earlier_run_that_hangs() {
    // Interval 5 min, max runtime 10 min; a start every 5 minutes, none ever completes.
    let mut live = Live::new(MonitorConfig { max_runtime: Some(Span::from_secs(10 * MIN)), ..config(5 * MIN, MIN) });
    for minute in (0..=60).step_by(5) {
        live.at(minute * MIN, kind(SignalKind::Started));
    }
    live.run_until(t(HOUR));
    // The first run (started at 0) times out at 10 min and alerts then, once.
    let first_timeout = live.events.iter().find_map(|e| match e {
        MonitorEvent::RunTimedOut(r) => Some((r.started_at, r.deadline)),
        _ => None,
    });
    assert_eq!(first_timeout, Some((t(0), t(10 * MIN))));
    assert_eq!(live.alerts_opened(), [(&AlertCause::TimedOut, t(10 * MIN))]);
    // Every run that started at least 10 minutes before the hour's end timed out, each recorded.
    let timed_out = live.events.iter().filter(|e| matches!(e, MonitorEvent::RunTimedOut(_))).count();
    assert_eq!(timed_out, 11);
    assert_eq!(live.state.status(), MonitorStatus::Hung);
}

#[test]
fn c38_run_ids_pair_overlapping_runs_and_a_stuck_one_still_alerts() {
    // Healthchecks' example with its 20-minute grace as telltale's max_runtime. Like a missed
    // deadline, a limit is reached at its instant (`now >= deadline`), so A finishes a minute
    // before its own limit here rather than on it.
    let mut live = Live::new(MonitorConfig { max_runtime: Some(Span::from_secs(20 * MIN)), ..config(HOUR, 0) });
    live.at(0, run(SignalKind::Started, "A"));
    live.at(10 * MIN, run(SignalKind::Started, "B"));
    let done = live.at(19 * MIN, run(SignalKind::Completed, "A"));
    let MonitorEvent::RunCompleted(a) = &done[0] else { panic!("{done:?}") };
    assert_eq!((a.started_at, a.duration_ms), (Some(t(0)), Some(19 * MIN * 1000)), "paired with A, not B");
    assert!(live.state.open_runs.contains_key("B"), "A's success does not clear B");
    live.run_until(t(30 * MIN));
    assert_eq!(live.alerts_opened(), [(&AlertCause::TimedOut, t(30 * MIN))]);
    // Recovery: B's own success.
    let done = live.at(35 * MIN, run(SignalKind::Completed, "B"));
    assert!(matches!(done.last(), Some(MonitorEvent::AlertResolved(r)) if r.cause == AlertCause::TimedOut));
    assert_eq!(live.state.status(), MonitorStatus::Up);
}

#[test]
fn c38_without_run_ids_a_finish_pairs_with_the_latest_start_and_the_older_run_still_times_out() {
    // telltale differs from Healthchecks here on purpose: without run ids Healthchecks forgets
    // the older run; telltale keeps it, so it cannot hang unseen.
    let mut live = Live::new(MonitorConfig { max_runtime: Some(Span::from_secs(20 * MIN)), ..config(HOUR, 0) });
    live.at(0, kind(SignalKind::Started));
    live.at(10 * MIN, kind(SignalKind::Started));
    let done = live.at(15 * MIN, kind(SignalKind::Completed));
    let MonitorEvent::RunCompleted(latest) = &done[0] else { panic!("{done:?}") };
    assert_eq!(latest.started_at, Some(t(10 * MIN)));
    live.run_until(t(30 * MIN));
    assert_eq!(live.alerts_opened(), [(&AlertCause::TimedOut, t(20 * MIN))]);
    // A later successful run shows the job works again: the hung one is given up on.
    live.at(40 * MIN, kind(SignalKind::Started));
    let done = live.at(41 * MIN, kind(SignalKind::Completed));
    assert!(matches!(done.last(), Some(MonitorEvent::AlertResolved(r)) if r.cause == AlertCause::TimedOut));
    assert!(live.state.open_runs.is_empty());
}

#[test]
fn c40_a_finish_pairs_with_its_start_within_72_hours_and_not_beyond() {
    let mut live = Live::new(config(200 * HOUR, 0));
    live.at(0, kind(SignalKind::Started));
    let done = live.at(60 * HOUR, kind(SignalKind::Completed));
    let MonitorEvent::RunCompleted(r) = &done[0] else { panic!("{done:?}") };
    assert_eq!((r.started_at, r.duration_ms), (Some(t(0)), Some(60 * HOUR * 1000)));

    live.at(70 * HOUR, kind(SignalKind::Started));
    let done = live.at(150 * HOUR, kind(SignalKind::Completed));
    let MonitorEvent::RunCompleted(r) = &done[0] else { panic!("{done:?}") };
    assert_eq!((r.started_at, r.duration_ms), (None, None), "80 h apart: not paired");
    // A finish that names its run pairs however long it ran.
    live.at(160 * HOUR, run(SignalKind::Started, "long"));
    let done = live.at(250 * HOUR, run(SignalKind::Completed, "long"));
    let MonitorEvent::RunCompleted(r) = &done[0] else { panic!("{done:?}") };
    assert_eq!(r.duration_ms, Some(90 * HOUR * 1000));
}

#[test]
fn c41_an_explicit_failure_is_a_sign_of_life_and_the_silence_after_it_does_not_page_again() {
    let mut live = Live::new(config(900, 60));
    for at in [0, 900, 1800] {
        live.at(at, kind(SignalKind::Heartbeat));
    }
    let failed = live.at(2700, kind(SignalKind::Failed));
    assert!(matches!(failed.last(), Some(MonitorEvent::AlertOpened(o)) if o.cause == AlertCause::Failed));
    // Nothing is recorded between 2700 and 3600.
    live.run_until(t(3599));
    assert_eq!(live.types().last(), Some(&"AlertOpened"));
    // Silence past 3600 + grace is recorded, but nobody is paged a second time.
    live.run_until(t(3690));
    assert_eq!(live.alerts_opened().len(), 1);
    assert!(live.events.iter().any(|e| matches!(e, MonitorEvent::HeartbeatMissed(_))));
    assert_eq!(live.state.status(), MonitorStatus::Failing);
    let up = live.at(3700, kind(SignalKind::Heartbeat));
    assert!(matches!(up.last(), Some(MonitorEvent::AlertResolved(r)) if r.cause == AlertCause::Failed));
    assert_eq!(live.state.status(), MonitorStatus::Up);
}

#[test]
fn any_exit_code_is_kept_and_only_zero_is_success() {
    let mut live = Live::new(config(HOUR, 0));
    for (at, code) in [(1, 0), (2, 256), (3, -1), (4, 255), (5, i32::MIN), (6, i32::MAX)] {
        let events = live.at(at, exit(code));
        let (MonitorEvent::RunCompleted(r) | MonitorEvent::RunFailed(r)) = &events[0] else { panic!("{events:?}") };
        assert_eq!(r.exit_code, Some(code));
        assert_eq!(matches!(events[0], MonitorEvent::RunCompleted(_)), code == 0, "exit code {code}");
    }
}

#[test]
fn a_finish_without_a_start_is_a_run_with_an_unknown_start() {
    let mut live = Live::new(config(HOUR, 0));
    let events = live.at(10, run(SignalKind::Completed, "orphan"));
    let MonitorEvent::RunCompleted(r) = &events[0] else { panic!("{events:?}") };
    assert_eq!((r.run_id.as_str(), r.started_at, r.duration_ms), ("orphan", None, None));
    // ...unless the sender measured it.
    let events = live.at(20, Signal { duration_ms: Some(1234), ..run(SignalKind::Completed, "timed") });
    let MonitorEvent::RunCompleted(r) = &events[0] else { panic!("{events:?}") };
    assert_eq!(r.duration_ms, Some(1234));
}

#[test]
fn the_senders_duration_is_preferred_to_the_servers_estimate() {
    let mut live = Live::new(config(HOUR, 0));
    live.at(0, run(SignalKind::Started, "r"));
    let events = live.at(5, Signal { duration_ms: Some(4_321), ..run(SignalKind::Completed, "r") });
    let MonitorEvent::RunCompleted(r) = &events[0] else { panic!("{events:?}") };
    assert_eq!((r.started_at, r.duration_ms), (Some(t(0)), Some(4_321)));
}

#[test]
fn progress_belongs_to_the_latest_open_run_and_keeps_the_monitor_alive() {
    let mut live = Live::new(config(MIN, 10));
    live.at(0, run(SignalKind::Started, "r"));
    let events = live.at(50, kind(SignalKind::Running));
    assert_eq!(events[0].run_id(), Some("r"));
    assert_eq!(live.state.deadline, Some(t(50 + MIN + 10)));
}

#[test]
fn lateness_inside_grace_is_recorded_once_and_is_not_an_alert() {
    let mut live = Live::new(config(MIN, 30));
    live.at(0, kind(SignalKind::Heartbeat));
    live.run_until(t(MIN + 29));
    assert_eq!(live.types(), ["MonitorCreated", "HeartbeatReceived", "MonitorLate"]);
    assert_eq!(live.state.status(), MonitorStatus::Up);
    assert_eq!(live.state.status_at(t(MIN + 29)), MonitorStatus::Late);
    live.at(MIN + 29, kind(SignalKind::Heartbeat));
    assert!(live.alerts_opened().is_empty());
    assert_eq!(live.state.status_at(t(MIN + 30)), MonitorStatus::Up);
}

#[test]
fn starts_closer_than_the_minimum_interval_are_too_early() {
    let mut live = Live::new(MonitorConfig { min_interval: Some(Span::from_secs(10 * MIN)), ..config(HOUR, MIN) });
    live.at(0, kind(SignalKind::Started));
    let early = live.at(2 * MIN, kind(SignalKind::Started));
    assert_eq!(
        early.last(),
        Some(&MonitorEvent::SignalTooEarly(SignalTooEarly {
            at: t(2 * MIN),
            previous_at: t(0),
            min_interval: Span::from_secs(10 * MIN)
        }))
    );
    assert_eq!(live.state.status(), MonitorStatus::Early);
    assert!(live.alerts_opened().is_empty());
    let on_time = live.at(20 * MIN, kind(SignalKind::Started));
    assert_eq!(on_time.len(), 1);
    assert_eq!(live.state.status(), MonitorStatus::Up);
}

#[test]
fn a_hung_run_from_before_a_restart_gets_a_whole_max_runtime_after_it() {
    let mut live = Live::new(MonitorConfig { max_runtime: Some(Span::from_secs(10 * MIN)), ..config(HOUR, 0) });
    live.at(0, run(SignalKind::Started, "r"));
    // telltale was down from 1 min to 15 min; the run's own limit (10 min) fell inside.
    live.started = t(15 * MIN);
    live.run_until(t(24 * MIN));
    assert!(live.alerts_opened().is_empty());
    live.run_until(t(25 * MIN));
    assert_eq!(live.alerts_opened(), [(&AlertCause::TimedOut, t(25 * MIN))]);
}

#[test]
fn the_hung_run_finishing_resolves_its_alert() {
    let mut live = Live::new(MonitorConfig { max_runtime: Some(Span::from_secs(MIN)), ..config(HOUR, 0) });
    live.at(0, run(SignalKind::Started, "r"));
    live.run_until(t(2 * MIN));
    let done = live.at(3 * MIN, Signal { exit_code: Some(1), ..run(SignalKind::Failed, "r") });
    let types: Vec<_> = done.iter().map(telltale_domain::EventPayload::event_type).collect();
    assert_eq!(types, ["RunFailed", "AlertResolved", "AlertOpened"]);
    let MonitorEvent::RunFailed(r) = &done[0] else { unreachable!() };
    assert_eq!(r.duration_ms, Some(3 * MIN * 1000));
}
