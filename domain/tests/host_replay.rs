//! Property: host correlation is a pure function of the host's recorded inputs. Generated
//! histories of six monitors on one host (joining, leaving, falling silent, coming back,
//! flapping with their silence or during it, and settling),
//! decided "live" with a lagging detector and telltale's own clean stops and crashes, are
//! replayed from the recorded log through [`HostReplay`]: it derives exactly the host alerts,
//! inhibitions, resolutions and releases that were recorded.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;
use telltale_domain::host::*;
use telltale_domain::system::{ServiceStarted, ServiceStopped, SystemEvent};
use telltale_domain::{Aggregate, Context};
use uuid::Uuid;

const MONITORS: usize = 6;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    /// Time passes (ms), the detector lagging this much behind each wake (ms).
    Wait(i64, i64),
    /// Monitor i misses a deadline this long ago (ms); with `true`, that miss also opens its
    /// flapping alert (if none is open).
    Silent(usize, i64, bool),
    /// Monitor i's flapping alert opens (while it is silent or not).
    Flap(usize),
    /// Monitor i's flapping alert resolves: it was stable for a whole window.
    Steady(usize),
    /// Monitor i signals again, this long ago (ms).
    Back(usize, i64),
    Join(usize),
    Leave(usize),
    Stop(i64),
    Crash(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let m = 0..MONITORS;
    prop_oneof![
        6 => (1i64..400_000, 0i64..3_000).prop_map(|(d, lag)| Op::Wait(d, lag)),
        5 => (m.clone(), 0i64..2_000, any::<bool>()).prop_map(|(i, ago, flap)| Op::Silent(i, ago, flap)),
        1 => m.clone().prop_map(Op::Flap),
        1 => m.clone().prop_map(Op::Steady),
        4 => (m.clone(), 0i64..2_000).prop_map(|(i, ago)| Op::Back(i, ago)),
        1 => m.clone().prop_map(Op::Join),
        1 => m.prop_map(Op::Leave),
        1 => (1i64..900_000).prop_map(Op::Stop),
        1 => (1i64..900_000).prop_map(Op::Crash),
    ]
}

#[derive(Clone, Default)]
struct View {
    member: bool,
    silence: Option<Silence>,
    /// The monitor's open flapping alert (which its silence carries while it is silent).
    flapping: Option<Uuid>,
    last_signal_at: Option<DateTime<Utc>>,
}

struct Live {
    log: Vec<HostReplayInput>,
    state: Host,
    views: Vec<View>,
    now: DateTime<Utc>,
    started: DateTime<Utc>,
    last_recorded: DateTime<Utc>,
    lag: TimeDelta,
    alerts: u64,
}

impl Live {
    fn decide(&mut self, command: HostCommand) {
        let ctx = Context::new(self.now, self.started);
        let events = HostAggregate::decide(&self.state, command, &ctx).expect("decided");
        if !events.is_empty() {
            self.last_recorded = self.now;
        }
        self.state = HostAggregate::fold(std::mem::take(&mut self.state), &events);
        self.log.extend(events.into_iter().map(HostReplayInput::Host));
    }

    fn observe(&mut self, i: usize) {
        let view = self.views[i].clone();
        self.decide(HostCommand::Observe(vec![Observation {
            client: "acme".into(),
            host: "web-1".into(),
            slug: format!("m{i}"),
            member: view.member,
            silence: view.silence.map(|s| Silence { flapping: view.flapping, ..s }),
            last_signal_at: view.last_signal_at,
        }]));
    }

    fn pass(&mut self, to: DateTime<Utc>) {
        while let Some(wake) = self.state.next_wake(self.started) {
            let tick = wake.max(self.now) + self.lag;
            if tick > to {
                break;
            }
            self.now = tick;
            self.decide(HostCommand::Tick);
        }
        self.now = to;
    }

    fn restart(&mut self, down_for: i64, crashed: bool) {
        let down_since = if crashed {
            Some(self.last_recorded)
        } else {
            self.lag = TimeDelta::zero();
            self.pass(self.now);
            self.last_recorded = self.now;
            self.log.push(HostReplayInput::System(SystemEvent::ServiceStopped(ServiceStopped {
                node_id: Uuid::nil(),
                at: self.now,
            })));
            None
        };
        self.now += TimeDelta::milliseconds(down_for);
        self.started = self.now;
        self.last_recorded = self.now;
        self.log.push(HostReplayInput::System(SystemEvent::ServiceStarted(ServiceStarted {
            node_id: Uuid::nil(),
            at: self.now,
            version: "test".into(),
            down_since,
        })));
    }
}

fn play(ops: &[Op]) -> (Vec<HostReplayInput>, DateTime<Utc>) {
    let mut live = Live {
        log: vec![HostReplayInput::System(SystemEvent::ServiceStarted(ServiceStarted {
            node_id: Uuid::nil(),
            at: t0(),
            version: "test".into(),
            down_since: None,
        }))],
        state: Host::default(),
        views: vec![View::default(); MONITORS],
        now: t0(),
        started: t0(),
        last_recorded: t0(),
        lag: TimeDelta::zero(),
        alerts: 0,
    };
    for i in 0..MONITORS {
        live.views[i].member = true;
        live.observe(i);
    }
    for op in ops {
        match *op {
            Op::Wait(ms, lag) => {
                live.lag = TimeDelta::milliseconds(lag);
                let to = live.now + TimeDelta::milliseconds(ms);
                live.pass(to);
            }
            Op::Silent(i, ago, flap) => {
                if !live.views[i].member || live.views[i].silence.is_some() {
                    continue;
                }
                live.alerts += 1;
                let since = (live.now - TimeDelta::milliseconds(ago)).max(live.started);
                live.views[i].silence =
                    Some(Silence { alert_id: Uuid::from_u128(live.alerts.into()), since, flapping: None });
                if flap && live.views[i].flapping.is_none() {
                    live.alerts += 1;
                    live.views[i].flapping = Some(Uuid::from_u128(live.alerts.into()));
                }
                live.observe(i);
            }
            Op::Flap(i) => {
                if !live.views[i].member || live.views[i].flapping.is_some() {
                    continue;
                }
                live.alerts += 1;
                live.views[i].flapping = Some(Uuid::from_u128(live.alerts.into()));
                if live.views[i].silence.is_some() {
                    live.observe(i);
                }
            }
            Op::Steady(i) => {
                if live.views[i].flapping.take().is_some() && live.views[i].silence.is_some() {
                    live.observe(i);
                }
            }
            Op::Back(i, ago) => {
                let Some(silence) = live.views[i].silence else { continue };
                live.views[i].silence = None;
                live.views[i].last_signal_at = Some((live.now - TimeDelta::milliseconds(ago)).max(silence.since));
                live.observe(i);
            }
            Op::Join(i) => {
                live.views[i].member = true;
                live.observe(i);
            }
            Op::Leave(i) => {
                live.views[i] = View::default();
                live.observe(i);
            }
            Op::Stop(ms) => live.restart(ms, false),
            Op::Crash(ms) => live.restart(ms, true),
        }
    }
    live.lag = TimeDelta::zero();
    let end = live.now + TimeDelta::seconds(1);
    live.pass(end);
    (live.log, end)
}

fn derived(log: &[HostReplayInput]) -> Vec<HostEvent> {
    log.iter()
        .filter_map(|input| match input {
            HostReplayInput::Host(e) if e.is_derived() => Some(e.clone()),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn replaying_a_hosts_inputs_reproduces_its_derived_events(ops in proptest::collection::vec(op(), 1..80)) {
        let (log, end) = play(&ops);
        let replayed = HostReplay::run(log.iter().cloned(), end);
        let recorded = derived(&log);
        prop_assert_eq!(replayed.derived(), recorded.as_slice());
    }
}

#[test]
fn the_generator_reaches_every_derived_fact() {
    // A fixed history through an outage, a return, a laggard released, and a crash.
    let ops = [
        Op::Silent(0, 0, false),
        Op::Silent(1, 100, false),
        Op::Silent(2, 200, false),
        Op::Silent(3, 0, false),
        Op::Wait(60_000, 500),
        Op::Back(0, 0),
        Op::Back(1, 0),
        Op::Back(2, 0),
        Op::Wait(400_000, 1_000),
        Op::Crash(10_000),
    ];
    let (log, end) = play(&ops);
    let kinds: Vec<&str> = derived(&log).iter().map(telltale_domain::EventPayload::event_type).collect();
    assert_eq!(
        kinds,
        [
            "HostAlertOpened",
            "MonitorAlertInhibited",
            "MonitorAlertInhibited",
            "MonitorAlertInhibited",
            "MonitorAlertInhibited",
            "HostAlertResolved",
            "MonitorAlertReleased"
        ]
    );
    assert_eq!(HostReplay::run(log.iter().cloned(), end).derived(), derived(&log).as_slice());
}

#[test]
fn the_generator_reaches_flapping_with_a_silence() {
    // A host down again and again: 0..2 flap with their silence, 3 was flapping before it fell
    // silent, 2 settles while still silent; 0 comes back, the rest are released (2 without
    // its flapping alert, which is over).
    let ops = [
        Op::Silent(0, 0, true),
        Op::Silent(1, 0, true),
        Op::Flap(3),
        Op::Silent(2, 0, true),
        Op::Silent(3, 0, false),
        Op::Steady(2),
        Op::Wait(60_000, 500),
        Op::Back(0, 0),
        Op::Wait(400_000, 1_000),
    ];
    let (log, end) = play(&ops);
    let kinds: Vec<&str> = log
        .iter()
        .filter_map(|input| match input {
            HostReplayInput::Host(e) if !matches!(e, HostEvent::HostMonitorJoined(_)) => {
                Some(telltale_domain::EventPayload::event_type(e))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "HostMonitorSilent",
            "HostMonitorFlapping",
            "HostMonitorSilent",
            "HostMonitorFlapping",
            "HostMonitorSilent",
            "HostMonitorFlapping",
            // Four of six: the host alert, with each silence and its flapping alert.
            "HostMonitorSilent",
            "HostAlertOpened",
            "MonitorAlertInhibited",
            "MonitorAlertInhibited",
            "MonitorAlertInhibited",
            "MonitorAlertInhibited",
            "MonitorAlertInhibited",
            "MonitorAlertInhibited",
            "MonitorAlertInhibited",
            // 3's flapping opened before its silence, and goes with it.
            "HostMonitorFlapping",
            "MonitorAlertInhibited",
            "HostMonitorSteady",
            "HostMonitorBack",
            "HostAlertResolved",
            "MonitorAlertReleased",
            "MonitorAlertReleased",
            "MonitorAlertReleased",
            "MonitorAlertReleased",
            "MonitorAlertReleased",
        ]
    );
    assert_eq!(HostReplay::run(log.iter().cloned(), end).derived(), derived(&log).as_slice());
}
