//! Given/when/then tests of the alert policy: each rule alone, then in combination. A timeline
//! is driven through `decide` with the detector ticking every wake on time (and, where the
//! test says so, every few seconds in between, which must change nothing).

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use telltale_domain::maintenance::{MaintenanceWindow, WindowTime};
use telltale_domain::monitor::*;
use telltale_domain::policy::{AlertPolicy, FailureRatio, FailureTolerance, HoldReason, Ratio};
use telltale_domain::replay::{PolicyOverride, Replay, ReplayInput};
use telltale_domain::schedule::Schedule;
use telltale_domain::span::Span;
use telltale_domain::system::{ServiceStarted, SystemEvent};
use telltale_domain::{Aggregate, Context, EventPayload};
use uuid::Uuid;

const MIN: i64 = 60;
const HOUR: i64 = 3600;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 1, 9, 0, 0).unwrap() + TimeDelta::seconds(secs)
}

fn config(every: i64, grace: i64, policy: AlertPolicy) -> MonitorConfig {
    MonitorConfig {
        alert_policy: policy,
        ..MonitorConfig::new("Job", Schedule::every(Span::from_secs(every)).unwrap(), Span::from_secs(grace))
    }
}

fn span(secs: i64) -> Span {
    Span::from_secs(secs)
}

/// A monitor's life: commands decided at their time, the detector ticking each wake on time.
struct Live {
    state: Monitor,
    now: DateTime<Utc>,
    started: DateTime<Utc>,
    log: Vec<MonitorEvent>,
    /// Also tick every this many seconds (a scheduler's own cadence), which must not matter.
    tick_every: Option<i64>,
    fresh: u32,
}

impl Live {
    fn new(config: MonitorConfig) -> Live {
        Live::with_defaults(config, ClientDefaults::default())
    }

    fn with_defaults(config: MonitorConfig, defaults: ClientDefaults) -> Live {
        let mut live =
            Live { state: Monitor::default(), now: t(0), started: t(-HOUR), log: vec![], tick_every: None, fresh: 0 };
        live.decide(MonitorCommand::Create { client: "acme".into(), slug: "job".into(), config, defaults });
        live
    }

    fn try_decide(&mut self, command: MonitorCommand) -> Result<Vec<MonitorEvent>, MonitorError> {
        let ctx = Context::new(self.now, self.started);
        let events = MonitorAggregate::decide(&self.state, command, &ctx)?;
        self.state = MonitorAggregate::fold(std::mem::take(&mut self.state), &events);
        self.log.extend(events.iter().cloned());
        Ok(events)
    }

    fn decide(&mut self, command: MonitorCommand) -> Vec<MonitorEvent> {
        self.try_decide(command).expect("decided")
    }

    /// Time passes to `secs`: every wake is ticked at its instant.
    fn at(&mut self, secs: i64) -> &mut Live {
        let to = t(secs);
        loop {
            let wake = self.state.next_wake(self.started).filter(|w| *w <= to);
            let cadence = self.tick_every.map(|e| self.now + TimeDelta::seconds(e)).filter(|c| *c <= to);
            let next = match (wake, cadence) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(x) => x,
                    None => break,
                },
            };
            self.now = next.max(self.now);
            self.decide(MonitorCommand::Tick);
            if wake.is_none() && cadence.is_none() {
                break;
            }
        }
        self.now = to;
        self
    }

    fn signal(&mut self, kind: SignalKind, exit_code: Option<i32>) -> Vec<MonitorEvent> {
        self.fresh += 1;
        self.decide(MonitorCommand::Signal(Box::new(Signal {
            kind: Some(kind),
            fresh_run_id: format!("r{}", self.fresh),
            exit_code,
            ..Signal::default()
        })))
    }
    fn beat(&mut self) -> Vec<MonitorEvent> {
        self.signal(SignalKind::Heartbeat, None)
    }
    fn fail(&mut self) -> Vec<MonitorEvent> {
        self.signal(SignalKind::Failed, Some(1))
    }
    fn ok(&mut self) -> Vec<MonitorEvent> {
        self.signal(SignalKind::Completed, Some(0))
    }

    /// (type, seconds from t(0)) of every alert-related event so far.
    fn alerts(&self) -> Vec<(&'static str, AlertCause, i64)> {
        self.log
            .iter()
            .filter_map(|e| e.alert().map(|(_, cause)| (e.event_type(), cause, (e.at() - t(0)).num_seconds())))
            .collect()
    }

    /// Alert events that a person hears of: announced openings, announcements, resolutions that
    /// are not quiet, reminders, escalations.
    fn announced(&self) -> Vec<(&'static str, AlertCause, i64)> {
        self.log
            .iter()
            .filter(|e| match e {
                MonitorEvent::AlertOpened(o) => o.held.is_none(),
                MonitorEvent::AlertResolved(r) => !r.quiet,
                MonitorEvent::AlertAnnounced(_) | MonitorEvent::AlertReminded(_) | MonitorEvent::AlertEscalated(_) => {
                    true
                }
                _ => false,
            })
            .map(|e| {
                let (_, cause) = e.alert().unwrap();
                (e.event_type(), cause, (e.at() - t(0)).num_seconds())
            })
            .collect()
    }

    fn count(&self, event_type: &str) -> usize {
        self.log.iter().filter(|e| e.event_type() == event_type).count()
    }

    fn open_alert(&self, cause: AlertCause) -> Uuid {
        self.state.alerts[&cause].alert_id
    }
}

fn policy() -> AlertPolicy {
    AlertPolicy::default()
}

// ---- retry window ---------------------------------------------------------------------------

#[test]
fn a_failure_that_a_retry_fixes_inside_the_retry_window_pages_nobody() {
    // Given the default policy (retry window 5m)
    let mut live = Live::new(config(HOUR, 5 * MIN, policy()));
    live.at(0).beat();
    // When a run fails and the retry succeeds four minutes later
    live.at(10 * MIN).fail();
    live.at(14 * MIN).ok();
    live.at(HOUR);
    // Then it is recorded as transient, and no alert opened
    assert_eq!(live.alerts(), []);
    let recovered: Vec<_> = live
        .log
        .iter()
        .filter_map(|e| if let MonitorEvent::FailureRecovered(f) = e { Some(f.clone()) } else { None })
        .collect();
    assert_eq!(recovered.len(), 1);
    assert_eq!((recovered[0].failed_runs, recovered[0].first_failed_at), (1, t(10 * MIN)));
}

#[test]
fn a_failure_nobody_fixes_pages_once_the_retry_window_has_passed() {
    let mut live = Live::new(config(HOUR, 5 * MIN, policy()));
    live.at(0).beat();
    live.at(10 * MIN).fail();
    live.at(2 * HOUR);
    assert_eq!(live.alerts(), [("AlertOpened", AlertCause::Failed, 15 * MIN)]);
    let MonitorEvent::AlertOpened(opened) = live.log.iter().find(|e| e.event_type() == "AlertOpened").unwrap() else {
        unreachable!()
    };
    assert!(opened.message.contains("no run succeeded within 5m"), "{}", opened.message);
    assert_eq!(live.state.status(), MonitorStatus::Failing);
}

#[test]
fn a_zero_retry_window_pages_at_the_failure() {
    let mut live = Live::new(config(HOUR, 5 * MIN, AlertPolicy { retry_window: Some(Span::ZERO), ..policy() }));
    live.at(0).fail();
    assert_eq!(live.alerts(), [("AlertOpened", AlertCause::Failed, 0)]);
}

#[test]
fn a_failure_followed_by_silence_pages_at_the_missed_deadline_not_later() {
    // Every 5m, grace 1m, retry window 1h: the silence after the failure proves no retry came.
    let mut live = Live::new(config(5 * MIN, MIN, AlertPolicy { retry_window: Some(span(HOUR)), ..policy() }));
    live.at(0).fail();
    live.at(2 * HOUR);
    assert_eq!(live.alerts(), [("AlertOpened", AlertCause::Failed, 6 * MIN)]);
}

// ---- failure tolerance -----------------------------------------------------------------------

#[test]
fn failures_under_the_tolerance_are_recorded_but_do_not_alert() {
    let strict = AlertPolicy {
        failure_tolerance: Some(FailureTolerance::Consecutive(3)),
        retry_window: Some(Span::ZERO),
        ..policy()
    };
    let mut live = Live::new(config(HOUR, MIN, strict));
    live.at(0).fail();
    live.at(MIN).fail();
    live.at(2 * MIN).ok();
    assert_eq!(live.alerts(), []);
    assert_eq!(live.count("FailureRecovered"), 1);
    // Three in a row alert, at the third.
    live.at(3 * MIN).fail();
    live.at(4 * MIN).fail();
    assert_eq!(live.alerts(), []);
    live.at(5 * MIN).fail();
    assert_eq!(live.alerts(), [("AlertOpened", AlertCause::Failed, 5 * MIN)]);
}

#[test]
fn tolerance_and_retry_window_together_a_success_within_the_window_after_the_nth_failure_is_transient() {
    let p = AlertPolicy {
        failure_tolerance: Some(FailureTolerance::Consecutive(2)),
        retry_window: Some(span(10 * MIN)),
        ..policy()
    };
    let mut live = Live::new(config(HOUR, MIN, p));
    live.at(0).fail();
    live.at(MIN).fail(); // the tolerance is reached: the page waits 10m for a success
    live.at(9 * MIN).ok();
    live.at(30 * MIN).fail();
    live.at(31 * MIN).fail();
    live.at(2 * HOUR);
    assert_eq!(live.alerts(), [("AlertOpened", AlertCause::Failed, 41 * MIN)]);
    assert_eq!(live.count("FailureRecovered"), 1);
}

#[test]
fn a_failure_ratio_over_a_window_alerts_once_enough_runs_failed() {
    let p = AlertPolicy {
        failure_tolerance: Some(FailureTolerance::Ratio(FailureRatio {
            ratio: Ratio::from_basis_points(5000),
            window: span(HOUR),
            min_runs: 4,
        })),
        retry_window: Some(Span::ZERO),
        ..policy()
    };
    let mut live = Live::new(config(HOUR, MIN, p));
    live.at(0).fail(); // 1 of 1, but fewer than 4 runs
    live.at(10 * MIN).ok();
    live.at(20 * MIN).ok();
    live.at(30 * MIN).fail(); // 2 of 4 = 50 %
    assert_eq!(live.alerts(), [("AlertOpened", AlertCause::Failed, 30 * MIN)]);
    // Runs older than the window no longer count: 1 of 4 within the hour stays quiet.
    let mut live = Live::new(config(
        2 * HOUR,
        MIN,
        AlertPolicy {
            failure_tolerance: Some(FailureTolerance::Ratio(FailureRatio {
                ratio: Ratio::from_basis_points(5000),
                window: span(HOUR),
                min_runs: 4,
            })),
            retry_window: Some(Span::ZERO),
            ..policy()
        },
    ));
    live.at(0).fail();
    live.at(61 * MIN).ok();
    live.at(62 * MIN).ok();
    live.at(63 * MIN).ok();
    live.at(64 * MIN).fail();
    assert_eq!(live.alerts(), []);
}

// ---- missed tolerance (C34) -----------------------------------------------------------------

#[test]
fn c34_missed_tolerance_counts_missed_windows_not_scheduler_ticks() {
    // Interval 1h, three missed windows alert (two tolerated), the scheduler ticks every 5s.
    let mut live = Live::new(config(HOUR, 5 * MIN, AlertPolicy { missed_tolerance: Some(2), ..policy() }));
    live.tick_every = Some(5);
    live.at(HOUR).beat(); // 10:00
    live.at(HOUR + 10);
    assert_eq!(live.alerts(), [], "not down ten seconds later");
    live.at(4 * HOUR + 5 * MIN - 1);
    assert_eq!(live.alerts(), [], "two missed windows are tolerated");
    assert_eq!(live.count("HeartbeatMissed"), 2);
    live.tick_every = None;
    live.at(5 * HOUR);
    // Down at 13:00 + grace: the third missed window.
    assert_eq!(live.alerts(), [("AlertOpened", AlertCause::Missed, 4 * HOUR + 5 * MIN)]);
    let MonitorEvent::AlertOpened(opened) = live.log.iter().find(|e| e.event_type() == "AlertOpened").unwrap() else {
        unreachable!()
    };
    assert!(opened.message.contains("3 expected signals missed in a row"), "{}", opened.message);
}

#[test]
fn a_miss_under_the_tolerance_then_a_beat_starts_counting_again() {
    let mut live = Live::new(config(10 * MIN, MIN, AlertPolicy { missed_tolerance: Some(1), ..policy() }));
    live.at(0).beat();
    live.at(15 * MIN).beat(); // one window missed at 11m, tolerated
    live.at(35 * MIN).beat(); // one more missed at 26m, tolerated again: the count restarted
    assert_eq!(live.count("HeartbeatMissed"), 2);
    assert_eq!(live.alerts(), []);
}

// ---- recovery threshold ---------------------------------------------------------------------

#[test]
fn an_alert_resolves_only_after_the_recovery_threshold_of_good_signals_in_a_row() {
    let mut live = Live::new(config(10 * MIN, MIN, AlertPolicy { recovery_threshold: Some(3), ..policy() }));
    live.at(0).beat();
    live.at(30 * MIN).beat();
    live.at(40 * MIN).beat();
    assert_eq!(live.alerts(), [("AlertOpened", AlertCause::Missed, 11 * MIN)]);
    // A miss in between starts the count again.
    live.at(52 * MIN); // missed at 51m
    live.at(55 * MIN).beat();
    live.at(60 * MIN).beat();
    assert_eq!(live.alerts().len(), 1, "still open: 2 good signals since the last miss");
    live.at(65 * MIN).beat();
    assert_eq!(live.alerts()[1], ("AlertResolved", AlertCause::Missed, 65 * MIN));
}

#[test]
fn a_failed_alert_needs_the_threshold_of_successful_runs() {
    let p = AlertPolicy { recovery_threshold: Some(2), retry_window: Some(Span::ZERO), ..policy() };
    let mut live = Live::new(config(HOUR, MIN, p));
    live.at(0).fail();
    live.at(MIN).ok();
    live.at(2 * MIN).fail();
    live.at(3 * MIN).ok();
    assert_eq!(live.alerts(), [("AlertOpened", AlertCause::Failed, 0)]);
    live.at(4 * MIN).ok();
    assert_eq!(live.alerts()[1], ("AlertResolved", AlertCause::Failed, 4 * MIN));
}

// ---- flapping -------------------------------------------------------------------------------

fn flappy(recovery: u32) -> AlertPolicy {
    AlertPolicy {
        retry_window: Some(Span::ZERO),
        flapping_threshold: Some(4),
        flapping_window: Some(span(HOUR)),
        recovery_threshold: Some(recovery),
        ..policy()
    }
}

#[test]
fn more_state_changes_than_the_threshold_collapse_into_one_flapping_alert() {
    let mut live = Live::new(config(HOUR, MIN, flappy(1)));
    for i in 0..6 {
        live.at(i * 10 * MIN).fail();
        live.at(i * 10 * MIN + MIN).ok();
    }
    // Two real alerts (4 changes), then the third opening is the fifth change: flapping.
    assert_eq!(
        live.announced(),
        [
            ("AlertOpened", AlertCause::Failed, 0),
            ("AlertResolved", AlertCause::Failed, MIN),
            ("AlertOpened", AlertCause::Failed, 10 * MIN),
            ("AlertResolved", AlertCause::Failed, 11 * MIN),
            ("AlertOpened", AlertCause::Flapping, 20 * MIN),
        ]
    );
    assert_eq!(live.state.status(), MonitorStatus::Flapping);
    // Stable (up) for a whole window after the last change: the flapping alert resolves, and
    // nothing else is announced.
    live.at(111 * MIN + 30);
    assert_eq!(live.announced().last(), Some(&("AlertResolved", AlertCause::Flapping, 51 * MIN + HOUR)));
    assert_eq!(live.announced().len(), 6);
    assert_eq!(live.state.status(), MonitorStatus::Up);
}

#[test]
fn a_flapping_monitor_that_settles_down_announces_its_real_alert_when_flapping_ends() {
    let mut live = Live::new(config(HOUR, MIN, flappy(1)));
    for i in 0..3 {
        live.at(i * 10 * MIN).fail();
        live.at(i * 10 * MIN + MIN).ok();
    }
    live.at(30 * MIN).fail(); // and it stays failed
    live.at(3 * HOUR);
    let announced = live.announced();
    assert_eq!(
        &announced[announced.len() - 2..],
        [("AlertResolved", AlertCause::Flapping, 90 * MIN), ("AlertAnnounced", AlertCause::Failed, 90 * MIN)]
    );
}

#[test]
fn recovery_threshold_and_flapping_together_count_real_changes_only() {
    // With a recovery threshold of 2, one good run between failures is not a change of state:
    // the alert stays open, so this is one outage, not flapping.
    let mut live = Live::new(config(HOUR, MIN, flappy(2)));
    for i in 0..6 {
        live.at(i * 10 * MIN).fail();
        live.at(i * 10 * MIN + MIN).ok();
    }
    assert_eq!(live.announced(), [("AlertOpened", AlertCause::Failed, 0)]);
    live.at(2 * HOUR).ok();
    assert_eq!(live.announced().last(), Some(&("AlertResolved", AlertCause::Failed, 2 * HOUR)));
}

// ---- reminders, escalation, acknowledgement --------------------------------------------------

#[test]
fn reminders_come_every_realert_every_until_acknowledged() {
    let p = AlertPolicy { realert_every: Some(span(HOUR)), ..policy() };
    let mut live = Live::new(config(10 * MIN, MIN, p));
    live.at(0).beat();
    live.at(3 * HOUR + 30 * MIN);
    let reminders: Vec<_> = live.announced().into_iter().filter(|e| e.0 == "AlertReminded").map(|e| e.2).collect();
    assert_eq!(reminders, [11 * MIN + HOUR, 11 * MIN + 2 * HOUR, 11 * MIN + 3 * HOUR]);
    let alert_id = live.open_alert(AlertCause::Missed);
    live.decide(MonitorCommand::Acknowledge { alert_id, by: Some("ana".into()), note: None });
    live.at(10 * HOUR);
    assert_eq!(live.count("AlertReminded"), 3, "no reminder after the acknowledgement");
    assert_eq!(live.state.alerts[&AlertCause::Missed].acknowledged_by.as_deref(), Some("ana"));
}

#[test]
fn an_unacknowledged_alert_escalates_once_after_its_delay_and_an_acknowledged_one_never() {
    let p = AlertPolicy { escalate_after: Some(span(30 * MIN)), escalate_to: Some(vec!["pager".into()]), ..policy() };
    let mut live = Live::new(config(10 * MIN, MIN, p.clone()));
    live.at(0).beat();
    live.at(5 * HOUR);
    let escalated: Vec<_> = live
        .log
        .iter()
        .filter_map(|e| if let MonitorEvent::AlertEscalated(x) = e { Some(x.clone()) } else { None })
        .collect();
    assert_eq!(escalated.len(), 1);
    assert_eq!((escalated[0].at, escalated[0].channels.clone()), (t(41 * MIN), vec!["pager".to_string()]));

    let mut live = Live::new(config(10 * MIN, MIN, p));
    live.at(0).beat();
    live.at(20 * MIN);
    let alert_id = live.open_alert(AlertCause::Missed);
    live.decide(MonitorCommand::Acknowledge { alert_id, by: None, note: Some("looking".into()) });
    live.at(5 * HOUR);
    assert_eq!(live.count("AlertEscalated"), 0);
}

#[test]
fn acknowledging_an_unknown_alert_is_refused_and_twice_records_once() {
    let mut live = Live::new(config(10 * MIN, MIN, policy()));
    live.at(0).beat();
    let refused = live.try_decide(MonitorCommand::Acknowledge { alert_id: Uuid::nil(), by: None, note: None });
    assert_eq!(refused.unwrap_err(), MonitorError::AlertNotFound(Uuid::nil()));
    live.at(20 * MIN);
    let alert_id = live.open_alert(AlertCause::Missed);
    let first = live.decide(MonitorCommand::Acknowledge { alert_id, by: None, note: None });
    let again = live.decide(MonitorCommand::Acknowledge { alert_id, by: None, note: None });
    assert_eq!((first.len(), again.len()), (1, 0));
}

// ---- silences -------------------------------------------------------------------------------

#[test]
fn a_silence_over_an_outage_that_ends_before_it_does_announces_nothing() {
    let mut live = Live::new(config(5 * MIN, MIN, policy()));
    live.at(0).beat();
    live.decide(MonitorCommand::Silence { duration: span(HOUR), reason: Some("deploy".into()) });
    live.at(30 * MIN).beat(); // silent from 6m to 30m: held, then quietly resolved
    for m in (35..120).step_by(5) {
        live.at(m * MIN).beat();
    }
    assert_eq!(
        live.alerts(),
        [("AlertOpened", AlertCause::Missed, 6 * MIN), ("AlertResolved", AlertCause::Missed, 30 * MIN)]
    );
    assert_eq!(live.announced(), []);
    assert!(matches!(&live.log[..], [.., MonitorEvent::SilenceExpired(_)]) || live.count("SilenceExpired") == 1);
}

#[test]
fn silence_and_miss_an_outage_that_outlasts_the_silence_pages_a_full_period_after_it_ends() {
    let mut live = Live::new(config(5 * MIN, MIN, policy()));
    live.at(0).beat();
    live.decide(MonitorCommand::Silence { duration: span(HOUR), reason: None });
    live.at(3 * HOUR);
    // Held at 6m; the silence ends at 60m; the deadline restarts from there: 60m + 5m + 1m.
    assert_eq!(live.announced(), [("AlertAnnounced", AlertCause::Missed, 66 * MIN)]);
    assert!(matches!(
        live.log.iter().find(|e| e.event_type() == "AlertOpened"),
        Some(MonitorEvent::AlertOpened(AlertOpened { held: Some(HoldReason::Silenced), .. }))
    ));
}

#[test]
fn lifting_a_silence_early_restarts_the_timers_from_then() {
    let mut live = Live::new(config(5 * MIN, MIN, policy()));
    live.at(0).beat();
    live.decide(MonitorCommand::Silence { duration: span(HOUR), reason: None });
    live.at(20 * MIN).decide(MonitorCommand::Unsilence);
    live.at(HOUR);
    assert_eq!(live.announced(), [("AlertAnnounced", AlertCause::Missed, 26 * MIN)]);
    assert_eq!(live.count("SilenceLifted"), 1);
    assert_eq!(live.decide(MonitorCommand::Unsilence), [], "nothing to lift");
}

#[test]
fn a_silence_holds_reminders_and_they_restart_from_its_end() {
    let p = AlertPolicy { realert_every: Some(span(HOUR)), ..policy() };
    let mut live = Live::new(config(10 * MIN, MIN, p));
    live.at(0).beat();
    live.at(30 * MIN).decide(MonitorCommand::Silence { duration: span(2 * HOUR), reason: None });
    live.at(4 * HOUR);
    let reminders: Vec<_> = live.announced().into_iter().filter(|e| e.0 == "AlertReminded").map(|e| e.2).collect();
    // Opened at 11m; silenced 30m..150m; the next reminder an hour after the silence's end.
    assert_eq!(reminders, [150 * MIN + HOUR]);
}

// ---- maintenance windows (C43) --------------------------------------------------------------

fn window(from: i64, to: i64) -> MaintenanceWindow {
    MaintenanceWindow {
        id: Uuid::from_u128(42),
        reason: "database upgrade".into(),
        when: WindowTime::Once { from: t(from), to: t(to) },
        tags: vec![],
        monitors: vec![],
    }
}

fn in_maintenance(from: i64, to: i64) -> MonitorCommand {
    MonitorCommand::ApplyClientDefaults(ClientDefaults { alert_policy: policy(), maintenance: vec![window(from, to)] })
}

#[test]
fn c43_down_before_maintenance_and_still_down_after_is_not_announced_again() {
    // Down since 09:10 (announced); maintenance 10:00–11:00; still silent at 11:00.
    let mut live = Live::new(config(5 * MIN, 5 * MIN, policy()));
    live.at(0).beat();
    live.decide(in_maintenance(HOUR, 2 * HOUR));
    live.at(4 * HOUR);
    assert_eq!(live.announced(), [("AlertOpened", AlertCause::Missed, 10 * MIN)]);
    assert_eq!((live.count("MaintenanceStarted"), live.count("MaintenanceEnded")), (1, 1));
    assert_eq!(live.state.status(), MonitorStatus::Down);
}

#[test]
fn c43_recovered_during_maintenance_is_announced_once_at_its_end() {
    let mut live = Live::new(config(5 * MIN, 5 * MIN, policy()));
    live.at(0).beat();
    live.decide(in_maintenance(HOUR, 2 * HOUR));
    live.at(HOUR + 20 * MIN).beat();
    for m in (25..120).step_by(5) {
        live.at(HOUR + m * MIN).beat();
    }
    live.at(3 * HOUR);
    assert_eq!(
        live.announced(),
        [("AlertOpened", AlertCause::Missed, 10 * MIN), ("AlertResolved", AlertCause::Missed, 2 * HOUR)]
    );
    assert_eq!(live.count("AlertRecovered"), 1);
}

#[test]
fn recovered_then_down_again_during_maintenance_is_unchanged_at_its_end() {
    let mut live = Live::new(config(5 * MIN, 5 * MIN, policy()));
    live.at(0).beat();
    live.decide(in_maintenance(HOUR, 2 * HOUR));
    live.at(HOUR + 20 * MIN).beat(); // recovered…
    live.at(3 * HOUR); // …and silent again from 10:30 on
    assert_eq!(live.announced(), [("AlertOpened", AlertCause::Missed, 10 * MIN)]);
    assert_eq!((live.count("AlertRecovered"), live.count("AlertRecurred")), (1, 1));
}

#[test]
fn maintenance_and_recovery_a_failure_inside_the_window_gets_its_retry_window_from_the_end() {
    let p = AlertPolicy { retry_window: Some(span(10 * MIN)), ..policy() };
    let mut live = Live::new(config(HOUR, HOUR, p.clone()));
    live.at(0).ok();
    live.decide(in_maintenance(10 * MIN, HOUR));
    live.at(20 * MIN).fail(); // held at 30m
    live.at(3 * HOUR);
    assert_eq!(live.announced(), [("AlertAnnounced", AlertCause::Failed, 70 * MIN)]);
    // The same failure fixed within 10 minutes of the end: nothing announced.
    let mut live = Live::new(config(HOUR, HOUR, p));
    live.at(0).ok();
    live.decide(in_maintenance(10 * MIN, HOUR));
    live.at(20 * MIN).fail();
    live.at(65 * MIN).ok();
    live.at(3 * HOUR);
    assert_eq!(live.announced(), []);
}

#[test]
fn a_recurring_window_in_a_time_zone_covers_only_the_monitors_it_selects() {
    let nightly = MaintenanceWindow {
        id: Uuid::from_u128(9),
        reason: String::new(),
        // 11:00 Berlin in July is 09:00Z, the tests' t(0).
        when: WindowTime::Recurring {
            cron: "0 11 * * *".into(),
            timezone: "Europe/Berlin".into(),
            duration: span(HOUR),
        },
        tags: vec!["db".into()],
        monitors: vec![],
    };
    let defaults = ClientDefaults { alert_policy: policy(), maintenance: vec![nightly] };
    let tagged = MonitorConfig { tags: vec!["db".into()], ..config(5 * MIN, MIN, policy()) };
    let mut db = Live::with_defaults(tagged, defaults.clone());
    db.now = t(-MIN);
    db.at(-MIN).beat();
    db.at(26 * HOUR);
    assert_eq!(db.count("MaintenanceStarted"), 2, "today and tomorrow");
    let starts: Vec<_> = db
        .log
        .iter()
        .filter_map(|e| if let MonitorEvent::MaintenanceStarted(m) = e { Some(m.at) } else { None })
        .collect();
    assert_eq!(starts, [t(0), t(24 * HOUR)]);
    // Silent since before the window: held inside, announced a full period after its end.
    assert_eq!(db.announced(), [("AlertAnnounced", AlertCause::Missed, HOUR + 6 * MIN)]);

    let mut web = Live::with_defaults(config(5 * MIN, MIN, policy()), defaults);
    web.at(0).beat();
    web.at(2 * HOUR);
    assert_eq!(web.count("MaintenanceStarted"), 0);
    assert_eq!(web.announced(), [("AlertOpened", AlertCause::Missed, 6 * MIN)]);
}

#[test]
fn removing_a_window_under_way_ends_it_at_once() {
    let mut live = Live::new(config(5 * MIN, MIN, policy()));
    live.at(0).beat();
    live.decide(in_maintenance(0, 10 * HOUR));
    live.at(30 * MIN);
    live.decide(MonitorCommand::ApplyClientDefaults(ClientDefaults::default()));
    live.at(2 * HOUR);
    assert_eq!(live.count("MaintenanceEnded"), 1);
    assert_eq!(live.announced(), [("AlertAnnounced", AlertCause::Missed, 36 * MIN)]);
}

// ---- client defaults ------------------------------------------------------------------------

#[test]
fn a_monitor_overrides_its_client_defaults_field_by_field() {
    let defaults = ClientDefaults {
        alert_policy: AlertPolicy { missed_tolerance: Some(2), retry_window: Some(Span::ZERO), ..policy() },
        maintenance: vec![],
    };
    let own = AlertPolicy { missed_tolerance: Some(0), ..policy() };
    let live = Live::with_defaults(config(5 * MIN, MIN, own), defaults.clone());
    let p = live.state.policy();
    assert_eq!((p.missed_tolerance, p.retry_window), (0, Span::ZERO));
    assert_eq!(live.count("ClientDefaultsApplied"), 1);
    // The same defaults again record nothing.
    let mut live = live;
    assert_eq!(live.decide(MonitorCommand::ApplyClientDefaults(defaults)), []);
}

// ---- telltale's own downtime ----------------------------------------------------------------

#[test]
fn a_deadline_that_fell_while_telltale_was_down_is_recorded_as_unobserved_not_alerted() {
    let mut live = Live::new(config(10 * MIN, MIN, policy()));
    live.at(0).beat();
    // telltale is down from 5m to 30m: the deadline at 11m passes unheard.
    live.now = t(30 * MIN);
    live.started = t(30 * MIN);
    live.at(31 * MIN);
    let unobserved: Vec<_> = live
        .log
        .iter()
        .filter_map(|e| if let MonitorEvent::DeadlineUnobserved(u) = e { Some(u.clone()) } else { None })
        .collect();
    assert_eq!(unobserved.len(), 1);
    assert_eq!((unobserved[0].deadline, unobserved[0].rescheduled_to), (t(11 * MIN), t(41 * MIN)));
    assert_eq!(live.alerts(), []);
    // Still silent a full period after the restart: that is an outage.
    live.at(HOUR);
    assert_eq!(live.alerts(), [("AlertOpened", AlertCause::Missed, 41 * MIN)]);
}

// ---- C41, C44 -------------------------------------------------------------------------------

#[test]
fn c41_an_explicit_failure_alerts_once_and_the_silence_after_it_does_not_page_again() {
    // Interval 900s; push up at 0, 900, 1800, down at 2700; nothing until 3700.
    let p = AlertPolicy { retry_window: Some(Span::ZERO), ..policy() };
    let mut live = Live::new(config(900, 60, p));
    for at in [0, 900, 1800] {
        live.at(at).beat();
    }
    live.at(2700).fail();
    live.at(3690);
    assert_eq!(live.alerts(), [("AlertOpened", AlertCause::Failed, 2700)]);
    live.at(3700).beat();
    assert_eq!(live.alerts()[1], ("AlertResolved", AlertCause::Failed, 3700));
    // With the default retry window the failure pages 5 minutes later, still once.
    let mut live = Live::new(config(900, 60, policy()));
    for at in [0, 900, 1800] {
        live.at(at).beat();
    }
    live.at(2700).fail();
    live.at(3700).beat();
    assert_eq!(live.alerts(), [("AlertOpened", AlertCause::Failed, 3000), ("AlertResolved", AlertCause::Failed, 3700)]);
}

#[test]
fn c44c_a_paused_monitor_with_manual_resume_ignores_signals() {
    let manual = MonitorConfig { manual_resume: true, ..config(5 * MIN, MIN, policy()) };
    let mut live = Live::new(manual);
    live.at(0).beat();
    live.decide(MonitorCommand::Pause);
    let events = live.at(HOUR).beat();
    assert_eq!(events.iter().map(|e| e.event_type()).collect::<Vec<_>>(), ["SignalIgnored"]);
    assert_eq!(live.state.status(), MonitorStatus::Paused);
    assert_eq!(live.state.last_signal_at, Some(t(0)));
    live.at(10 * HOUR);
    assert_eq!(live.alerts(), []);
    // Without manual_resume (the default), a signal resumes it.
    let mut live = Live::new(config(5 * MIN, MIN, policy()));
    live.at(0).beat();
    live.decide(MonitorCommand::Pause);
    let events = live.at(HOUR).beat();
    assert_eq!(events.iter().map(|e| e.event_type()).collect::<Vec<_>>(), ["MonitorResumed", "HeartbeatReceived"]);
    assert_eq!(live.state.status(), MonitorStatus::Up);
}

#[test]
fn pausing_resolves_a_held_alert_quietly() {
    let mut live = Live::new(config(5 * MIN, MIN, policy()));
    live.at(0).beat();
    live.decide(MonitorCommand::Silence { duration: span(HOUR), reason: None });
    live.at(10 * MIN).decide(MonitorCommand::Pause);
    assert_eq!(live.announced(), []);
    assert_eq!(live.alerts().len(), 2);
}

// ---- replay -----------------------------------------------------------------------------------

#[test]
fn replay_with_another_alert_policy_answers_what_it_would_have_paged() {
    // Recorded with the default policy: two failures, each fixed by a retry within 5m.
    let mut live = Live::new(config(HOUR, HOUR, policy()));
    live.at(0).ok();
    live.at(10 * MIN).fail();
    live.at(12 * MIN).ok();
    live.at(40 * MIN).fail();
    live.at(43 * MIN).ok();
    live.at(2 * HOUR);
    assert_eq!(live.alerts(), []);
    let mut inputs = vec![ReplayInput::System(SystemEvent::ServiceStarted(ServiceStarted {
        node_id: Uuid::nil(),
        at: t(-HOUR),
        version: "test".into(),
        down_since: None,
    }))];
    inputs.extend(live.log.iter().cloned().map(ReplayInput::Monitor));
    let recorded: Vec<_> = live.log.iter().filter(|e| e.is_derived()).cloned().collect();
    assert_eq!(Replay::run(None, inputs.clone(), t(2 * HOUR)).derived(), recorded.as_slice());
    // Without a retry window, both failures would have paged.
    let strict = PolicyOverride {
        alert_policy: AlertPolicy { retry_window: Some(Span::ZERO), ..policy() },
        ..PolicyOverride::default()
    };
    let replayed = Replay::run(Some(strict), inputs, t(2 * HOUR));
    let opened = replayed.derived().iter().filter(|e| e.event_type() == "AlertOpened").count();
    assert_eq!(opened, 2);
}
