//! Edge cases of `shared/cases/edge-cases.md`, sections C (false alerts) and E (notifications),
//! that are schedule maths: given a monitor, when signals arrive and the detector ticks at
//! given instants, then exactly these facts. Each test is named after its case.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use telltale_domain::monitor::*;
use telltale_domain::schedule::Schedule;
use telltale_domain::span::Span;
use telltale_domain::{Aggregate, Context, EventPayload};

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn ms(ms: i64) -> TimeDelta {
    TimeDelta::milliseconds(ms)
}

fn config(schedule: Schedule, grace: Span) -> MonitorConfig {
    MonitorConfig::new("job", schedule, grace)
}

/// A monitor, and the detector that ticks it: at every wake exactly, or on a fixed cadence.
struct Sim {
    state: Monitor,
    now: DateTime<Utc>,
    /// Everything recorded, with the instant it was decided.
    log: Vec<(DateTime<Utc>, MonitorEvent)>,
    /// When set, the detector ticks on this cadence instead of at each wake.
    cadence: Option<TimeDelta>,
}

impl Sim {
    fn new(created: DateTime<Utc>, config: MonitorConfig) -> Sim {
        let mut sim = Sim { state: Monitor::default(), now: created, log: vec![], cadence: None };
        let defaults = ClientDefaults::default();
        sim.decide(MonitorCommand::Create { client: "acme".into(), slug: "job".into(), config, defaults });
        sim
    }

    fn decide(&mut self, command: MonitorCommand) -> Vec<MonitorEvent> {
        // telltale has been listening since long before.
        let ctx = Context::new(self.now, self.now - TimeDelta::days(365));
        let events = MonitorAggregate::decide(&self.state, command, &ctx).expect("decided");
        self.state = MonitorAggregate::fold(std::mem::take(&mut self.state), &events);
        self.log.extend(events.iter().map(|e| (self.now, e.clone())));
        events
    }

    /// Time passes until `to`, the detector ticking as it does.
    fn until(&mut self, to: DateTime<Utc>) {
        match self.cadence {
            Some(step) => {
                while self.now + step <= to {
                    self.now += step;
                    self.decide(MonitorCommand::Tick);
                }
            }
            None => {
                while let Some(wake) = self.state.next_wake(self.now - TimeDelta::days(365)) {
                    if wake > to {
                        break;
                    }
                    self.now = wake.max(self.now);
                    self.decide(MonitorCommand::Tick);
                }
            }
        }
        self.now = to;
    }

    /// A heartbeat received at `when` (server time), the sender's clock saying `sent_at`.
    fn beat(&mut self, when: DateTime<Utc>, sent_at: Option<DateTime<Utc>>) -> Vec<MonitorEvent> {
        self.until(when);
        let mut signal = Signal { kind: Some(SignalKind::Heartbeat), fresh_run_id: "r".into(), ..Signal::default() };
        signal.details.sent_at = sent_at;
        self.decide(MonitorCommand::Signal(Box::new(signal)))
    }

    fn recorded(&self, event_type: &str) -> Vec<(DateTime<Utc>, &MonitorEvent)> {
        self.log.iter().filter(|(_, e)| e.event_type() == event_type).map(|(t, e)| (*t, e)).collect()
    }

    fn alerts_opened_at(&self) -> Vec<DateTime<Utc>> {
        self.log
            .iter()
            .filter_map(|(_, e)| match e {
                MonitorEvent::AlertOpened(o) => Some(o.opened_at),
                _ => None,
            })
            .collect()
    }

    fn alerts_resolved_at(&self) -> Vec<DateTime<Utc>> {
        self.log
            .iter()
            .filter_map(|(_, e)| match e {
                MonitorEvent::AlertResolved(r) => Some(r.resolved_at),
                _ => None,
            })
            .collect()
    }
}

fn every(secs: i64) -> Schedule {
    Schedule::every(Span::from_secs(secs)).unwrap()
}

fn cron(expr: &str) -> Schedule {
    Schedule::cron(expr, "UTC").unwrap()
}

#[test]
fn c25_a_ping_a_little_before_its_slot_counts_for_the_previous_slot_and_the_slot_goes_down_after_grace() {
    // Healthchecks semantics: cron 0 1 * * * UTC, grace 5 min; previous success 01:00:20 the
    // day before; today the host clock runs fast and the only ping is received at 00:59:30.
    let mut sim = Sim::new(at(2023, 9, 4, 0, 0, 0), config(cron("0 1 * * *"), Span::from_secs(300)));
    sim.beat(at(2023, 9, 4, 1, 0, 20), None);
    // The sender's clock says it is already past 01:00: that must not move the ping into the slot.
    let early = sim.beat(at(2023, 9, 5, 0, 59, 30), Some(at(2023, 9, 5, 1, 0, 31)));
    let MonitorEvent::HeartbeatReceived(received) = &early[0] else { panic!("{early:?}") };
    assert_eq!(received.at, at(2023, 9, 5, 0, 59, 30), "stamped with the server's receive time");
    assert_eq!(received.details.sent_at, Some(at(2023, 9, 5, 1, 0, 31)), "the sender's clock is kept, not used");
    assert!(!early.iter().any(|e| e.event_type() == "SignalTooEarly"), "no early tolerance option by default");
    assert_eq!(sim.state.expected_at(), Some(at(2023, 9, 5, 1, 0, 0)), "next expected: today's 01:00 slot");
    assert_eq!(sim.state.deadline, Some(at(2023, 9, 5, 1, 5, 0)));

    sim.until(at(2023, 9, 5, 1, 5, 0) - ms(1));
    assert!(sim.alerts_opened_at().is_empty());
    sim.until(at(2023, 9, 5, 1, 5, 0));
    assert_eq!(sim.alerts_opened_at(), [at(2023, 9, 5, 1, 5, 0)], "down and one alert at 01:05");
    let skipped = sim.recorded("RunSkipped");
    let MonitorEvent::RunSkipped(slot) = skipped[0].1 else { unreachable!() };
    assert_eq!(slot.expected_at, at(2023, 9, 5, 1, 0, 0));
}

#[test]
fn c26_an_every_minute_cron_pinged_ten_seconds_in_is_late_each_minute_and_never_down() {
    let mut sim = Sim::new(at(2026, 3, 1, 11, 59, 0), config(cron("* * * * *"), Span::from_secs(60)));
    let start = at(2026, 3, 1, 12, 0, 0);
    for minute in 0..60 {
        let slot = start + TimeDelta::minutes(minute);
        sim.until(slot + ms(5_000));
        if minute > 0 {
            assert_eq!(sim.state.status_at(sim.now), MonitorStatus::Late, "grace at {}", sim.now);
        }
        sim.beat(slot + ms(10_000), None);
        assert_eq!(sim.state.status_at(sim.now), MonitorStatus::Up, "up again at {}", sim.now);
    }
    sim.until(start + TimeDelta::minutes(60) + ms(9_999));
    assert_eq!(sim.recorded("MonitorLate").len(), 60, "late once a minute, recorded as such");
    assert!(sim.recorded("RunSkipped").is_empty(), "never down");
    assert!(sim.alerts_opened_at().is_empty(), "zero notifications");
}

#[test]
fn c28_grace_is_measured_from_the_expected_time_late_is_not_down() {
    // cron 0 4 * * *, down after 60 min; no run on 2025-06-29. telltale has one threshold, the
    // grace: `late` from the expected time (04:00, recorded, never an alert) to the deadline,
    // `down` and one notification at 05:00. The case's intermediate "degraded after 30 min"
    // is not a separate state in telltale: late covers the whole grace (deliberate).
    let mut sim = Sim::new(at(2025, 6, 28, 0, 0, 0), config(cron("0 4 * * *"), Span::from_secs(3600)));
    sim.beat(at(2025, 6, 28, 4, 0, 10), None);
    assert_eq!(sim.state.status_at(at(2025, 6, 29, 3, 59, 59)), MonitorStatus::Up);
    assert_eq!(sim.state.status_at(at(2025, 6, 29, 4, 0, 1)), MonitorStatus::Late);
    for not_yet in [at(2025, 6, 29, 4, 1, 0), at(2025, 6, 29, 4, 30, 0), at(2025, 6, 29, 4, 59, 59)] {
        sim.until(not_yet);
        assert!(sim.alerts_opened_at().is_empty(), "not down at {not_yet}");
        assert_eq!(sim.state.status_at(not_yet), MonitorStatus::Late);
    }
    let late = sim.recorded("MonitorLate");
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].0, at(2025, 6, 29, 4, 0, 0), "lateness recorded at the expected time");
    sim.until(at(2025, 6, 29, 5, 0, 0));
    assert_eq!(sim.alerts_opened_at(), [at(2025, 6, 29, 5, 0, 0)]);
    assert_eq!(sim.state.status(), MonitorStatus::Down);
}

fn c29_monitor() -> Sim {
    // P = 60 s, G = 10 s; the evaluator ticks every second; last ping 12:00:00.000.
    let mut sim = Sim::new(at(2026, 3, 1, 11, 59, 0), config(every(60), Span::from_secs(10)));
    sim.beat(at(2026, 3, 1, 12, 0, 0), None);
    sim.cadence = Some(TimeDelta::seconds(1));
    sim
}

#[test]
fn c29_a_ping_just_before_the_deadline_is_on_time_however_ticks_and_pings_interleave() {
    let deadline = at(2026, 3, 1, 12, 1, 10);
    let mut sim = c29_monitor();
    sim.beat(deadline - ms(100), None);
    // The tick at 12:01:10.000 is decided after that ping: nothing is missed.
    sim.until(deadline + TimeDelta::seconds(30));
    assert!(sim.recorded("HeartbeatMissed").is_empty());
    assert!(sim.alerts_opened_at().is_empty());
    // The timer is anchored to the last ping: the next deadline is 70 s after it.
    assert_eq!(sim.state.deadline, Some(deadline - ms(100) + TimeDelta::seconds(70)));
}

#[test]
fn c29_without_a_ping_it_is_down_at_the_first_tick_at_or_after_the_deadline() {
    let deadline = at(2026, 3, 1, 12, 1, 10);
    let mut sim = c29_monitor();
    sim.until(deadline - TimeDelta::seconds(1));
    assert!(sim.recorded("HeartbeatMissed").is_empty(), "the tick at 12:01:09 finds nothing");
    sim.until(deadline + TimeDelta::seconds(5));
    let missed = sim.recorded("HeartbeatMissed");
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0].0, deadline, "decided by the tick at 12:01:10.000 (now >= deadline)");
    assert_eq!(sim.alerts_opened_at(), [deadline]);
    // A ping received exactly at the deadline is already late (now >= deadline): down, then up.
    // (Decided before any tick at the deadline: the ping itself finds the miss due first.)
    let mut exact = c29_monitor();
    exact.cadence = None;
    exact.until(deadline - ms(1));
    exact.now = deadline;
    let signal = Signal { kind: Some(SignalKind::Heartbeat), fresh_run_id: "r".into(), ..Signal::default() };
    let events = exact.decide(MonitorCommand::Signal(Box::new(signal)));
    let types: Vec<&str> = events.iter().map(|e| e.event_type()).collect();
    assert_eq!(types, ["HeartbeatMissed", "AlertOpened", "HeartbeatReceived", "AlertResolved"]);
}

#[test]
fn c35_telltale_uses_sliding_intervals_not_clock_aligned_windows() {
    // Hourly, no grace. telltale measures from the last check-in (sliding, like Healthchecks'
    // simple checks); Dead Man's Snitch's Basic monitors use clock-aligned hours instead. Both
    // inputs of the case, pinned with the sliding answers.
    let hourly = || Sim::new(at(2026, 3, 1, 9, 0, 0), config(every(3600), Span::ZERO));

    // Check-ins 10:59:30 and 12:01:00: aligned would alert at ~12:00; sliding is down at
    // 11:59:30 and up at 12:01.
    let mut a = hourly();
    a.beat(at(2026, 3, 1, 10, 59, 30), None);
    a.beat(at(2026, 3, 1, 12, 1, 0), None);
    assert_eq!(a.alerts_opened_at(), [at(2026, 3, 1, 11, 59, 30)]);
    assert_eq!(a.alerts_resolved_at(), [at(2026, 3, 1, 12, 1, 0)]);

    // Check-ins 10:00:05 and 11:59:55: aligned sees one in each hour and never alerts; sliding
    // is down at 11:00:05 and up at 11:59:55.
    let mut b = hourly();
    b.beat(at(2026, 3, 1, 10, 0, 5), None);
    b.beat(at(2026, 3, 1, 11, 59, 55), None);
    assert_eq!(b.alerts_opened_at(), [at(2026, 3, 1, 11, 0, 5)]);
    assert_eq!(b.alerts_resolved_at(), [at(2026, 3, 1, 11, 59, 55)]);
}

#[test]
fn c44_a_never_pinged_check_never_alerts_however_long() {
    let mut sim = Sim::new(at(2026, 3, 1, 12, 0, 0), config(every(60), Span::from_secs(60)));
    sim.until(at(2026, 3, 1, 12, 0, 0) + TimeDelta::seconds(10 * 120));
    assert!(sim.log.iter().all(|(_, e)| !e.is_derived()), "nothing derived: {:?}", sim.log);
    assert_eq!(sim.state.status(), MonitorStatus::New);
    assert_eq!(sim.state.next_wake(at(2026, 3, 1, 12, 0, 0)), None, "nothing to wake for");
}

#[test]
fn c44_b_a_paused_check_never_alerts_however_long() {
    let mut sim = Sim::new(at(2026, 3, 1, 12, 0, 0), config(every(60), Span::from_secs(60)));
    sim.beat(at(2026, 3, 1, 12, 0, 10), None);
    sim.decide(MonitorCommand::Pause);
    sim.until(at(2026, 3, 8, 12, 0, 0));
    assert!(sim.alerts_opened_at().is_empty());
    assert!(sim.recorded("HeartbeatMissed").is_empty());
    assert_eq!(sim.state.status_at(at(2026, 3, 8, 12, 0, 0)), MonitorStatus::Paused);
}
