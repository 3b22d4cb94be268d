//! Given/when/then tests of the Monitor aggregate: given past events, when a command is decided
//! at some instant, then exactly these events (or this error).

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use telltale_domain::monitor::*;
use telltale_domain::schedule::Schedule;
use telltale_domain::span::Span;
use telltale_domain::{Aggregate, Context, EventPayload};

fn t(secs: f64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::milliseconds((secs * 1000.0).round() as i64)
}

/// The service started long before any test event.
fn ctx(at: f64) -> Context {
    Context::new(t(at), t(-1000.0))
}

fn config(every: i64, grace: i64) -> MonitorConfig {
    MonitorConfig {
        name: "Nightly sync".into(),
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

struct Given(Monitor);

fn given(events: &[MonitorEvent]) -> Given {
    Given(MonitorAggregate::fold(Monitor::default(), events))
}

impl Given {
    fn when(&self, command: MonitorCommand, ctx: Context) -> Result<Vec<MonitorEvent>, MonitorError> {
        MonitorAggregate::decide(&self.0, command, &ctx)
    }
    fn types_when(&self, command: MonitorCommand, ctx: Context) -> Vec<&'static str> {
        self.when(command, ctx).expect("decided").iter().map(|e| e.event_type()).collect()
    }
}

fn created(every: i64, grace: i64) -> MonitorEvent {
    MonitorEvent::MonitorCreated(MonitorCreated {
        client: "acme".into(),
        slug: "nightly-sync".into(),
        config: config(every, grace),
        at: t(0.0),
    })
}

fn beat(at: f64) -> MonitorEvent {
    MonitorEvent::HeartbeatReceived(HeartbeatReceived {
        at: t(at),
        status: None,
        metrics: None,
        details: Default::default(),
    })
}

fn signal(kind: SignalKind) -> MonitorCommand {
    MonitorCommand::Signal(Box::new(Signal { kind: Some(kind), fresh_run_id: "fresh".into(), ..Signal::default() }))
}

fn decide_all(mut events: Vec<MonitorEvent>, command: MonitorCommand, ctx: Context) -> Vec<MonitorEvent> {
    let state = MonitorAggregate::fold(Monitor::default(), &events);
    let new = MonitorAggregate::decide(&state, command, &ctx).expect("decided");
    events.extend(new);
    events
}

#[test]
fn creating_a_monitor_records_its_configuration() {
    let events = given(&[])
        .when(
            MonitorCommand::Create {
                client: "acme".into(),
                slug: "nightly-sync".into(),
                config: config(2, 1),
                defaults: Default::default(),
            },
            ctx(0.0),
        )
        .unwrap();
    assert_eq!(events, vec![created(2, 1)]);
}

#[test]
fn creating_twice_is_refused() {
    let err = given(&[created(2, 1)])
        .when(
            MonitorCommand::Create {
                client: "acme".into(),
                slug: "nightly-sync".into(),
                config: config(2, 1),
                defaults: Default::default(),
            },
            ctx(1.0),
        )
        .unwrap_err();
    assert_eq!(err, MonitorError::AlreadyExists("nightly-sync".into()));
}

#[test]
fn signals_to_a_monitor_that_does_not_exist_are_refused() {
    assert!(matches!(given(&[]).when(signal(SignalKind::Heartbeat), ctx(0.0)), Err(MonitorError::NotFound(_))));
    let deleted = [created(2, 1), MonitorEvent::MonitorDeleted(MonitorDeleted { at: t(1.0) })];
    assert!(matches!(given(&deleted).when(signal(SignalKind::Heartbeat), ctx(2.0)), Err(MonitorError::NotFound(_))));
}

#[test]
fn a_heartbeat_sets_the_deadline_to_period_plus_grace() {
    let events = given(&[created(2, 1)]).when(signal(SignalKind::Heartbeat), ctx(10.0)).unwrap();
    assert_eq!(events, vec![beat(10.0)]);
    let state = MonitorAggregate::fold(Monitor::default(), &[created(2, 1), beat(10.0)]);
    assert_eq!(state.deadline, Some(t(13.0)));
    assert_eq!(state.expected_at(), Some(t(12.0)));
    assert_eq!(state.status(), MonitorStatus::Up);
    assert_eq!(state.status_at(t(12.5)), MonitorStatus::Late);
}

#[test]
fn a_monitor_that_never_signalled_has_no_deadline_and_never_alerts() {
    // C44 (a): never pinged → no alert, however long.
    let g = given(&[created(2, 1)]);
    assert!(g.when(MonitorCommand::Tick, ctx(10_000.0)).unwrap().is_empty());
    assert_eq!(g.0.status(), MonitorStatus::New);
}

#[test]
fn nothing_is_due_before_the_deadline() {
    // C29: expected at 12.000, deadline at 13.000; a tick at 11.999 finds nothing, one at
    // 12.999 finds the process late (inside its grace), which is not a miss.
    let g = given(&[created(2, 1), beat(10.0)]);
    assert!(g.when(MonitorCommand::Tick, ctx(11.999)).unwrap().is_empty());
    let events = g.when(MonitorCommand::Tick, ctx(12.999)).unwrap();
    assert_eq!(events, [MonitorEvent::MonitorLate(MonitorLate { expected_at: t(12.0), deadline: t(13.0) })]);
}

#[test]
fn at_the_deadline_the_miss_and_one_alert_are_recorded() {
    let g = given(&[created(2, 1), beat(10.0)]);
    let events = g.when(MonitorCommand::Tick, ctx(13.0)).unwrap();
    assert_eq!(events.len(), 3);
    assert!(matches!(events[0], MonitorEvent::MonitorLate(_)));
    let MonitorEvent::HeartbeatMissed(missed) = &events[1] else { panic!("{events:?}") };
    assert_eq!((missed.deadline, missed.expected_at, missed.last_signal_at), (t(13.0), t(12.0), Some(t(10.0))));
    let MonitorEvent::AlertOpened(opened) = &events[2] else { panic!("{events:?}") };
    assert_eq!((opened.cause, opened.opened_at), (AlertCause::Missed, t(13.0)));
}

#[test]
fn one_miss_alerts_once_however_often_time_passes() {
    let history = decide_all(vec![created(2, 1), beat(10.0)], MonitorCommand::Tick, ctx(13.2));
    let g = given(&history);
    assert!(g.when(MonitorCommand::Tick, ctx(14.0)).unwrap().is_empty());
    assert!(g.when(MonitorCommand::Tick, ctx(100_000.0)).unwrap().is_empty());
    assert_eq!(g.0.status(), MonitorStatus::Down);
}

#[test]
fn the_next_heartbeat_resolves_the_alert() {
    let history = decide_all(vec![created(2, 1), beat(10.0)], MonitorCommand::Tick, ctx(13.0));
    let events = given(&history).when(signal(SignalKind::Heartbeat), ctx(20.0)).unwrap();
    assert_eq!(events.iter().map(|e| e.event_type()).collect::<Vec<_>>(), ["HeartbeatReceived", "AlertResolved"]);
    let MonitorEvent::AlertResolved(resolved) = &events[1] else { unreachable!() };
    let MonitorEvent::AlertOpened(opened) = &history[4] else { unreachable!() };
    assert_eq!((resolved.alert_id, resolved.opened_at, resolved.resolved_at), (opened.alert_id, t(13.0), t(20.0)));
}

#[test]
fn a_beat_that_arrives_after_the_deadline_before_the_detector_still_counts_the_miss() {
    // The result must not depend on whether the detector or the beat was processed first.
    let g = given(&[created(2, 1), beat(10.0)]);
    assert_eq!(
        g.types_when(signal(SignalKind::Heartbeat), ctx(13.5)),
        ["MonitorLate", "HeartbeatMissed", "AlertOpened", "HeartbeatReceived", "AlertResolved"]
    );
    // ...but a beat received before the deadline never produces a miss (C29), only lateness.
    assert_eq!(g.types_when(signal(SignalKind::Heartbeat), ctx(12.999)), ["MonitorLate", "HeartbeatReceived"]);
}

#[test]
fn alert_ids_are_deterministic_and_distinct() {
    let first = decide_all(vec![created(2, 1), beat(10.0)], MonitorCommand::Tick, ctx(13.0));
    let again = decide_all(vec![created(2, 1), beat(10.0)], MonitorCommand::Tick, ctx(13.0));
    assert_eq!(first, again);
    let recovered = decide_all(first.clone(), signal(SignalKind::Heartbeat), ctx(20.0));
    let second = decide_all(recovered, MonitorCommand::Tick, ctx(23.0));
    let ids: Vec<_> = second
        .iter()
        .filter_map(|e| match e {
            MonitorEvent::AlertOpened(o) => Some(o.alert_id),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn a_restart_gives_a_fresh_interval_and_grace_to_expectations_from_before_it() {
    // Last beat at 10, deadline 13; telltale stopped at 11 and started again at 12.5.
    let g = given(&[created(2, 1), beat(10.0)]);
    let restarted = Context::new(t(13.0), t(12.5));
    assert_eq!(g.0.effective_deadline(t(12.5)), Some(t(15.5)));
    assert!(g.when(MonitorCommand::Tick, restarted).unwrap().is_empty());
    // It is still a miss if the process stays silent through the fresh interval.
    let late = Context::new(t(15.5), t(12.5));
    assert_eq!(g.types_when(MonitorCommand::Tick, late), ["MonitorLate", "HeartbeatMissed", "AlertOpened"]);
    // A beat after the restart brings the ordinary deadline back.
    let after = given(&[created(2, 1), beat(10.0), beat(13.0)]);
    assert_eq!(after.0.effective_deadline(t(12.5)), Some(t(16.0)));
}

#[test]
fn a_restart_leaves_an_expectation_well_after_it_where_it_was() {
    // Every 10 s, grace 1 s: last beat at 10, so expected at 20, deadline 21. telltale restarts
    // at 12.5: nothing the process sent can have been lost, so the deadline stays.
    let g = given(&[created(10, 1), beat(10.0)]);
    assert_eq!(g.0.effective_deadline(t(12.5)), Some(t(21.0)));
    assert_eq!(
        g.types_when(MonitorCommand::Tick, Context::new(t(21.0), t(12.5))),
        ["MonitorLate", "HeartbeatMissed", "AlertOpened"]
    );
    // Restarting within a grace before the expectation moves it (an early beat may have been
    // unheard): to the first expectation after the restart, plus grace.
    assert_eq!(g.0.effective_deadline(t(19.5)), Some(t(30.5)));
    // A daily job whose next run is hours away keeps its deadline across a restart.
    let daily = given(&[created(86_400, 3_600), beat(10.0)]);
    assert_eq!(daily.0.effective_deadline(t(7_200.0)), Some(t(10.0 + 86_400.0 + 3_600.0)));
}

#[test]
fn a_failed_run_opens_a_failure_alert_and_a_completed_run_resolves_it() {
    let g = given(&[created(60, 10)]);
    let mut fail =
        Signal { kind: Some(SignalKind::Failed), exit_code: Some(3), fresh_run_id: "r1".into(), ..Signal::default() };
    assert_eq!(g.types_when(MonitorCommand::Signal(Box::new(fail.clone())), ctx(1.0)), ["RunFailed", "AlertOpened"]);
    let history = decide_all(vec![created(60, 10)], MonitorCommand::Signal(Box::new(fail.clone())), ctx(1.0));
    assert_eq!(given(&history).0.status(), MonitorStatus::Failing);
    // A second failure does not open a second alert.
    fail.fresh_run_id = "r2".into();
    assert_eq!(given(&history).types_when(MonitorCommand::Signal(Box::new(fail)), ctx(2.0)), ["RunFailed"]);
    assert_eq!(given(&history).types_when(signal(SignalKind::Completed), ctx(3.0)), ["RunCompleted", "AlertResolved"]);
}

#[test]
fn completed_with_a_non_zero_exit_code_is_a_failure() {
    for code in [1, 3, 255, 256, -1, i32::MIN, i32::MAX] {
        let command = MonitorCommand::Signal(Box::new(Signal {
            kind: Some(SignalKind::Completed),
            exit_code: Some(code),
            fresh_run_id: "r".into(),
            ..Signal::default()
        }));
        let events = given(&[created(60, 10)]).when(command, ctx(1.0)).unwrap();
        let MonitorEvent::RunFailed(run) = &events[0] else { panic!("{code}: {events:?}") };
        assert_eq!(run.exit_code, Some(code));
    }
}

#[test]
fn runs_pair_by_run_id_and_measure_their_duration() {
    let start = |id: &str, at: f64| {
        MonitorEvent::RunStarted(RunStarted { run_id: id.into(), at: t(at), details: Default::default() })
    };
    let g = given(&[created(3600, 60), start("A", 0.0), start("B", 600.0)]);
    assert_eq!(g.0.open_runs.len(), 2);
    let finish_a = MonitorCommand::Signal(Box::new(Signal {
        kind: Some(SignalKind::Completed),
        run_id: Some("A".into()),
        fresh_run_id: "x".into(),
        ..Signal::default()
    }));
    let events = g.when(finish_a, ctx(1200.0)).unwrap();
    let MonitorEvent::RunCompleted(run) = &events[0] else { panic!("{events:?}") };
    assert_eq!((run.run_id.as_str(), run.started_at, run.duration_ms), ("A", Some(t(0.0)), Some(1_200_000)));
    // Without a run id, a finish pairs with the most recent start.
    let events = g.when(signal(SignalKind::Completed), ctx(1300.0)).unwrap();
    let MonitorEvent::RunCompleted(run) = &events[0] else { panic!("{events:?}") };
    assert_eq!((run.run_id.as_str(), run.duration_ms), ("B", Some(700_000)));
    // A finish with no known start is a run whose start is unknown.
    let events = given(&[created(3600, 60)]).when(signal(SignalKind::Failed), ctx(5.0)).unwrap();
    let MonitorEvent::RunFailed(run) = &events[0] else { panic!("{events:?}") };
    assert_eq!((run.run_id.as_str(), run.started_at, run.duration_ms), ("fresh", None, None));
}

#[test]
fn a_started_run_gets_the_callers_fresh_id_when_it_has_none() {
    let events = given(&[created(60, 10)]).when(signal(SignalKind::Started), ctx(1.0)).unwrap();
    assert_eq!(events[0].run_id(), Some("fresh"));
}

#[test]
fn pausing_stops_deadlines_and_resolves_alerts_and_a_signal_resumes() {
    let history = decide_all(vec![created(2, 1), beat(10.0)], MonitorCommand::Tick, ctx(13.0));
    let g = given(&history);
    assert_eq!(g.types_when(MonitorCommand::Pause, ctx(14.0)), ["MonitorPaused", "AlertResolved"]);
    let paused = decide_all(history, MonitorCommand::Pause, ctx(14.0));
    let g = given(&paused);
    assert_eq!(g.0.status(), MonitorStatus::Paused);
    assert!(g.when(MonitorCommand::Tick, ctx(100_000.0)).unwrap().is_empty(), "C44 (b): paused never alerts");
    assert_eq!(g.types_when(signal(SignalKind::Heartbeat), ctx(20.0)), ["MonitorResumed", "HeartbeatReceived"]);
    // Resuming by hand starts a fresh interval from the resume.
    let resumed = decide_all(paused, MonitorCommand::Resume, ctx(30.0));
    assert_eq!(given(&resumed).0.deadline, Some(t(33.0)));
}

#[test]
fn deleting_resolves_open_alerts() {
    let history = decide_all(vec![created(2, 1), beat(10.0)], MonitorCommand::Tick, ctx(13.0));
    assert_eq!(given(&history).types_when(MonitorCommand::Delete, ctx(14.0)), ["MonitorDeleted", "AlertResolved"]);
}

#[test]
fn reconfiguring_moves_the_deadline_and_an_unchanged_config_records_nothing() {
    let g = given(&[created(2, 1), beat(10.0)]);
    assert!(g.when(MonitorCommand::Reconfigure { config: config(2, 1) }, ctx(11.0)).unwrap().is_empty());
    let events = g.when(MonitorCommand::Reconfigure { config: config(60, 5) }, ctx(11.0)).unwrap();
    let state = MonitorAggregate::fold(g.0.clone(), &events);
    assert_eq!(state.deadline, Some(t(75.0)));
}

#[test]
fn invalid_signals_are_refused_before_anything_is_recorded() {
    let g = given(&[created(2, 1), beat(10.0)]);
    let bad = |s: Signal| g.when(MonitorCommand::Signal(Box::new(s)), ctx(100.0));
    let base = Signal { kind: Some(SignalKind::Heartbeat), fresh_run_id: "f".into(), ..Signal::default() };
    let mut s = base.clone();
    s.details.metadata = Some(serde_json::json!([1, 2]));
    assert!(matches!(bad(s), Err(MonitorError::Invalid(_))));
    let mut s = base.clone();
    s.details.metadata = Some(serde_json::json!({"x": "y".repeat(17 * 1024)}));
    assert!(matches!(bad(s), Err(MonitorError::Invalid(_))));
    let mut s = base.clone();
    s.run_id = Some("r".repeat(200));
    assert!(matches!(bad(s), Err(MonitorError::Invalid(_))));
    let mut s = base;
    s.details.message = Some("m".repeat(5000));
    assert!(matches!(bad(s), Err(MonitorError::Invalid(_))));
}

#[test]
fn output_keeps_the_last_64_kib_at_a_character_boundary() {
    let long = format!("{}{}", "é".repeat(40_000), "tail");
    let (tail, cut) = output_tail(&long);
    assert!(cut && tail.len() <= MAX_OUTPUT_BYTES && tail.ends_with("tail"));
    assert_eq!(output_tail("short"), ("short", false));
}

#[test]
fn every_event_round_trips_through_its_stored_form() {
    let history = decide_all(vec![created(2, 1), beat(10.0)], MonitorCommand::Tick, ctx(13.0));
    let history = decide_all(history, signal(SignalKind::Started), ctx(14.0));
    let history = decide_all(history, signal(SignalKind::Running), ctx(15.0));
    let history = decide_all(history, signal(SignalKind::Failed), ctx(16.0));
    let history = decide_all(history, signal(SignalKind::Completed), ctx(17.0));
    let history = decide_all(history, MonitorCommand::Reconfigure { config: config(5, 5) }, ctx(18.0));
    let history = decide_all(history, MonitorCommand::Pause, ctx(19.0));
    let history = decide_all(history, MonitorCommand::Resume, ctx(20.0));
    let strict =
        MonitorConfig { max_runtime: Some(Span::from_secs(5)), min_interval: Some(Span::from_secs(3)), ..config(5, 5) };
    let history = decide_all(history, MonitorCommand::Reconfigure { config: strict }, ctx(21.0));
    let history = decide_all(history, signal(SignalKind::Started), ctx(22.0));
    let history = decide_all(history, signal(SignalKind::Started), ctx(23.0));
    let history = decide_all(history, MonitorCommand::Tick, ctx(27.0));
    let mut history = decide_all(history, MonitorCommand::Delete, ctx(30.0));
    history.push(MonitorEvent::RunSkipped(RunSkipped {
        expected_at: t(40.0),
        deadline: t(45.0),
        last_signal_at: None,
    }));
    history.extend(policy_events());
    let mut seen = std::collections::BTreeSet::new();
    for event in &history {
        let stored = event.encode();
        assert_eq!(stored.schema_version, 1);
        let back = MonitorEvent::decode(&stored.event_type, stored.schema_version, &stored.data).unwrap();
        assert_eq!(&back, event);
        seen.insert(stored.event_type);
    }
    assert_eq!(seen.len(), MonitorEvent::TYPES.len(), "every event type is exercised: {seen:?}");
}

#[test]
fn a_newer_schema_version_is_refused_not_misread() {
    let stored = beat(1.0).encode();
    assert!(MonitorEvent::decode(&stored.event_type, 99, &stored.data).is_err());
    assert!(MonitorEvent::decode("HeartbeatReceivedd", 1, &stored.data).is_err());
}

/// One of each event the alert policy records, with every optional field set.
fn policy_events() -> Vec<MonitorEvent> {
    use telltale_domain::maintenance::{MaintenanceWindow, WindowTime};
    use telltale_domain::policy::{AlertPolicy, HoldReason};
    let id = uuid::Uuid::from_u128(1);
    let cause = AlertCause::Failed;
    let window = MaintenanceWindow {
        id,
        reason: "upgrade".into(),
        when: WindowTime::Recurring {
            cron: "0 2 * * *".into(),
            timezone: "Europe/Berlin".into(),
            duration: Span::from_secs(3600),
        },
        tags: vec!["db".into()],
        monitors: vec!["x".into()],
    };
    vec![
        MonitorEvent::AlertOpened(AlertOpened {
            alert_id: id,
            cause,
            opened_at: t(1.0),
            message: "m".into(),
            held: Some(HoldReason::Maintenance),
        }),
        MonitorEvent::AlertResolved(AlertResolved {
            alert_id: id,
            cause,
            opened_at: t(1.0),
            resolved_at: t(2.0),
            message: "m".into(),
            quiet: true,
        }),
        MonitorEvent::AlertAnnounced(AlertAnnounced {
            alert_id: id,
            cause,
            opened_at: t(1.0),
            at: t(2.0),
            message: "m".into(),
        }),
        MonitorEvent::AlertRecovered(AlertRecovered { alert_id: id, cause, at: t(2.0), message: "m".into() }),
        MonitorEvent::AlertRecurred(AlertRecurred { alert_id: id, cause, at: t(2.0), message: "m".into() }),
        MonitorEvent::AlertReminded(AlertReminded {
            alert_id: id,
            cause,
            opened_at: t(1.0),
            at: t(2.0),
            reminder: 2,
            message: "m".into(),
        }),
        MonitorEvent::AlertEscalated(AlertEscalated {
            alert_id: id,
            cause,
            opened_at: t(1.0),
            at: t(2.0),
            channels: vec!["pager".into()],
            message: "m".into(),
        }),
        MonitorEvent::AlertAcknowledged(AlertAcknowledged {
            alert_id: id,
            cause,
            opened_at: t(1.0),
            at: t(2.0),
            by: Some("ana".into()),
            note: Some("on it".into()),
        }),
        MonitorEvent::FailureRecovered(FailureRecovered {
            at: t(2.0),
            failed_runs: 2,
            first_failed_at: t(1.0),
            run_id: Some("r".into()),
        }),
        MonitorEvent::DeadlineUnobserved(DeadlineUnobserved {
            deadline: t(1.0),
            expected_at: t(0.5),
            listening_since: t(2.0),
            noticed_at: t(2.001),
            rescheduled_to: t(5.0),
            last_signal_at: Some(t(0.0)),
        }),
        MonitorEvent::ClientDefaultsApplied(ClientDefaultsApplied {
            defaults: ClientDefaults {
                alert_policy: AlertPolicy {
                    missed_tolerance: Some(2),
                    escalate_to: Some(vec!["pager".into()]),
                    ..AlertPolicy::default()
                },
                maintenance: vec![window],
            },
            at: t(3.0),
        }),
        MonitorEvent::MonitorSilenced(MonitorSilenced { until: t(60.0), reason: Some("deploy".into()), at: t(3.0) }),
        MonitorEvent::SilenceLifted(SilenceLifted { at: t(4.0) }),
        MonitorEvent::SilenceExpired(SilenceExpired { at: t(60.0) }),
        MonitorEvent::MaintenanceStarted(MaintenanceStarted {
            window_id: id,
            at: t(5.0),
            until: t(9.0),
            reason: "upgrade".into(),
        }),
        MonitorEvent::MaintenanceEnded(MaintenanceEnded { window_id: id, at: t(9.0) }),
        MonitorEvent::SignalIgnored(SignalIgnored {
            at: t(10.0),
            kind: SignalKind::Completed,
            run_id: Some("r".into()),
            reason: "paused".into(),
            details: SignalDetails { host: Some("h".into()), ..Default::default() },
        }),
    ]
}
