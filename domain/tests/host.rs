//! Given/when/then tests of host correlation: given a host's past events, when the monitors'
//! states are observed (or time passes) at some instant, then exactly these events.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use telltale_domain::host::*;
use telltale_domain::monitor::{AlertCause, MonitorAggregate, MonitorCommand, MonitorConfig, Signal, SignalKind};
use telltale_domain::schedule::Schedule;
use telltale_domain::span::Span;
use telltale_domain::{Aggregate, Context, EventPayload};
use uuid::Uuid;

fn t(secs: f64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::milliseconds((secs * 1000.0).round() as i64)
}

/// telltale started long before any test event.
fn ctx(at: f64) -> Context {
    Context::new(t(at), t(-10_000.0))
}

fn alert(slug: &str) -> Uuid {
    Uuid::new_v5(&Uuid::nil(), slug.as_bytes())
}

fn silence(slug: &str, since: f64) -> Option<Silence> {
    Some(Silence { alert_id: alert(slug), since: t(since), flapping: None })
}

fn obs(slug: &str, silence: Option<Silence>, last_signal_at: Option<f64>) -> Observation {
    Observation {
        client: "acme".into(),
        host: "web-1".into(),
        slug: slug.into(),
        member: true,
        silence,
        last_signal_at: last_signal_at.map(t),
    }
}

fn left(slug: &str) -> Observation {
    Observation { member: false, silence: None, ..obs(slug, None, None) }
}

/// A host and everything decided so far.
struct Given(Vec<HostEvent>);

impl Given {
    fn state(&self) -> Host {
        HostAggregate::fold(Host::default(), &self.0)
    }
    fn when(&self, command: HostCommand, ctx: Context) -> Vec<HostEvent> {
        HostAggregate::decide(&self.state(), command, &ctx).expect("decided")
    }
    fn observe(&self, observations: Vec<Observation>, at: f64) -> Vec<HostEvent> {
        self.when(HostCommand::Observe(observations), ctx(at))
    }
    /// Decides and keeps what was decided.
    fn then(mut self, observations: Vec<Observation>, at: f64) -> Given {
        let events = self.observe(observations, at);
        self.0.extend(events);
        self
    }
    fn tick(mut self, at: f64) -> Given {
        let events = self.when(HostCommand::Tick, ctx(at));
        self.0.extend(events);
        self
    }
}

/// A host with these members, all alive, joined at t=0.
fn host_with(slugs: &[&str]) -> Given {
    Given(vec![]).then(slugs.iter().map(|s| obs(s, None, Some(0.0))).collect(), 0.0)
}

fn types(events: &[HostEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.event_type()).collect()
}

fn opened(events: &[HostEvent]) -> Option<&HostAlertOpened> {
    events.iter().find_map(|e| match e {
        HostEvent::HostAlertOpened(o) => Some(o),
        _ => None,
    })
}

fn inhibited(events: &[HostEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            HostEvent::MonitorAlertInhibited(i) => Some(i.slug.as_str()),
            _ => None,
        })
        .collect()
}

const FIVE: [&str; 5] = ["a", "b", "c", "d", "e"];

#[test]
fn a_monitor_whose_signals_name_the_host_joins_it() {
    let events = Given(vec![]).observe(vec![obs("a", None, Some(5.0))], 5.0);
    assert_eq!(
        events,
        [HostEvent::HostMonitorJoined(HostMonitorJoined {
            client: "acme".into(),
            host: "web-1".into(),
            slug: "a".into(),
            at: t(5.0),
        })]
    );
    let state = HostAggregate::fold(Host::default(), &events);
    assert_eq!(state.stream_id(), "host:acme:web-1");
    assert!(state.members.contains_key("a"));
    // The same observation again changes nothing.
    assert!(Given(events).observe(vec![obs("a", None, Some(9.0))], 9.0).is_empty());
}

#[test]
fn two_silent_monitors_are_not_a_host_outage() {
    let g = host_with(&FIVE).then(vec![obs("a", silence("a", 100.0), None)], 100.0);
    let events = g.observe(vec![obs("b", silence("b", 100.5), None)], 100.5);
    assert_eq!(types(&events), ["HostMonitorSilent"]);
}

#[test]
fn three_of_five_silent_together_open_one_host_alert_and_inhibit_them() {
    let g = host_with(&FIVE)
        .then(vec![obs("a", silence("a", 100.0), None)], 100.0)
        .then(vec![obs("b", silence("b", 100.2), None)], 100.2);
    let events = g.observe(vec![obs("c", silence("c", 100.4), None)], 100.5);
    assert_eq!(
        types(&events),
        [
            "HostMonitorSilent",
            "HostAlertOpened",
            "MonitorAlertInhibited",
            "MonitorAlertInhibited",
            "MonitorAlertInhibited"
        ]
    );
    let open = opened(&events).unwrap();
    assert_eq!(open.opened_at, t(100.4), "the latest deadline, not the instant it was decided");
    assert_eq!(open.monitors, ["a", "b", "c"]);
    assert_eq!(open.members, 5);
    assert_eq!(
        open.message,
        "web-1 has gone silent: 3 of its 5 monitors stopped signalling together (by 2026-01-01T00:01:40Z): a, b, c"
    );
    assert_eq!(inhibited(&events), ["a", "b", "c"]);
    let HostEvent::MonitorAlertInhibited(first) = &events[2] else { unreachable!() };
    assert_eq!((first.host_alert_id, first.alert_id), (open.alert_id, alert("a")));
}

#[test]
fn most_means_more_than_half_of_the_active_members() {
    let six = ["a", "b", "c", "d", "e", "f"];
    let g = host_with(&six).then(
        vec![
            obs("a", silence("a", 100.0), None),
            obs("b", silence("b", 100.0), None),
            obs("c", silence("c", 100.0), None),
        ],
        100.0,
    );
    assert!(g.state().alert.is_none(), "3 of 6 is not more than half");
    let events = g.observe(vec![obs("d", silence("d", 101.0), None)], 101.0);
    assert_eq!(opened(&events).unwrap().monitors, ["a", "b", "c", "d"]);
}

#[test]
fn a_host_with_fewer_than_three_monitors_never_correlates() {
    let g = host_with(&["a", "b"]).then(vec![obs("a", silence("a", 100.0), None)], 100.0);
    let events = g.observe(vec![obs("b", silence("b", 100.0), None)], 100.0);
    assert_eq!(types(&events), ["HostMonitorSilent"]);
}

#[test]
fn silences_further_apart_than_the_window_did_not_fall_together() {
    let window = CORRELATION_WINDOW.as_secs_f64();
    let g = host_with(&FIVE)
        .then(vec![obs("a", silence("a", 100.0), None)], 100.0)
        .then(vec![obs("b", silence("b", 100.0 + window / 2.0), None)], 100.0 + window / 2.0);
    // `a` fell silent more than the window before `c`: only two fell together.
    let late = 100.0 + window + 1.0;
    let events = g.observe(vec![obs("c", silence("c", late), None)], late);
    assert_eq!(types(&events), ["HostMonitorSilent"]);
    // Exactly at the window's edge they still count.
    let edge = 100.0 + window;
    let events = g.observe(vec![obs("c", silence("c", edge), None)], edge);
    let open = opened(&events).expect("a, b and c within the window");
    // Every silent member belongs to the outage.
    assert_eq!(open.monitors, ["a", "b", "c"]);
}

#[test]
fn a_member_falling_silent_while_the_host_alert_is_open_is_inhibited_at_once() {
    let g = host_with(&FIVE).then(
        vec![
            obs("a", silence("a", 100.0), None),
            obs("b", silence("b", 100.0), None),
            obs("c", silence("c", 100.0), None),
        ],
        100.0,
    );
    let host_alert = g.state().alert.unwrap().alert_id;
    let events = g.observe(vec![obs("d", silence("d", 130.0), None)], 130.0);
    assert_eq!(types(&events), ["HostMonitorSilent", "MonitorAlertInhibited"]);
    let HostEvent::MonitorAlertInhibited(i) = &events[1] else { unreachable!() };
    assert_eq!((i.host_alert_id, i.slug.as_str(), i.alert_id), (host_alert, "d", alert("d")));
}

fn outage() -> Given {
    host_with(&FIVE).then(FIVE.iter().map(|s| obs(s, silence(s, 100.0), None)).collect(), 100.0)
}

#[test]
fn the_first_member_back_resolves_the_host_alert_and_the_rest_return_quietly() {
    let g = outage();
    let open = g.state().alert.unwrap();
    assert_eq!(open.monitors.len(), 5);
    let g2 = g.then(vec![obs("c", None, Some(200.0))], 200.1);
    let events = &g2.0[g2.0.len() - 2..];
    assert_eq!(types(events), ["HostMonitorBack", "HostAlertResolved"]);
    let HostEvent::HostAlertResolved(resolved) = &events[1] else { unreachable!() };
    assert_eq!((resolved.alert_id, resolved.opened_at, resolved.resolved_at), (open.alert_id, t(100.0), t(200.0)));
    assert_eq!(resolved.still_silent, ["a", "b", "d", "e"]);
    assert_eq!(resolved.message, "web-1 is back: c signalled again");
    // The others come back within the return window: nothing but their return is recorded.
    let rest = g2.observe(["a", "b", "d", "e"].iter().map(|s| obs(s, None, Some(230.0))).collect(), 230.0);
    assert_eq!(types(&rest), ["HostMonitorBack"; 4]);
    let settled = HostAggregate::fold(g2.state(), &rest);
    assert_eq!(settled.next_wake(t(-10_000.0)), None, "nothing left to release");
}

#[test]
fn a_member_still_silent_after_the_return_window_gets_its_own_alert_released() {
    let window = RETURN_WINDOW.as_secs_f64();
    let g = outage()
        .then(vec![obs("a", None, Some(200.0)), obs("b", None, Some(200.0)), obs("c", None, Some(200.0))], 200.0)
        .then(vec![obs("d", None, Some(201.0))], 201.0);
    // `e` never comes back.
    let state = g.state();
    assert_eq!(state.next_wake(t(-10_000.0)), Some(t(200.0 + window)));
    assert!(g.when(HostCommand::Tick, ctx(200.0 + window - 0.001)).is_empty(), "not before its time");
    // A late tick records the release at the instant it became due.
    let events = g.when(HostCommand::Tick, ctx(200.0 + window + 42.0));
    assert_eq!(
        events,
        [HostEvent::MonitorAlertReleased(MonitorAlertReleased {
            host_alert_id: state.members["e"].silence.as_ref().unwrap().incident.unwrap(),
            slug: "e".into(),
            alert_id: alert("e"),
            at: t(200.0 + window),
        })]
    );
    let released = g.tick(200.0 + window);
    assert!(released.when(HostCommand::Tick, ctx(100_000.0)).is_empty(), "released once");
}

#[test]
fn a_release_waits_for_a_full_window_of_listening_after_telltale_restarts() {
    let window = RETURN_WINDOW.as_secs_f64();
    let g = outage().then(vec![obs("a", None, Some(200.0))], 200.0);
    // telltale stopped at 210 and came back at 400: the others may have returned meanwhile,
    // unheard. They get a full window from the restart.
    let restarted = Context::new(t(400.0 + window - 1.0), t(400.0));
    assert!(HostAggregate::decide(&g.state(), HostCommand::Tick, &restarted).unwrap().is_empty());
    assert_eq!(g.state().next_wake(t(400.0)), Some(t(400.0 + window)));
    let later = Context::new(t(400.0 + window), t(400.0));
    assert_eq!(HostAggregate::decide(&g.state(), HostCommand::Tick, &later).unwrap().len(), 4);
}

#[test]
fn after_the_host_came_back_the_laggards_do_not_open_another_host_alert() {
    let g = outage().then(vec![obs("a", None, Some(200.0))], 200.0);
    assert!(g.state().alert.is_none());
    // b..e are still silent (4 of 5), but their silence is the old outage's: no new host alert.
    let events = g.observe(vec![obs("a", None, Some(210.0))], 210.0);
    assert!(events.is_empty());
    // A fresh outage later is a new host alert, with a new id.
    let g = g.then(["b", "c", "d", "e"].iter().map(|s| obs(s, None, Some(220.0))).collect(), 220.0).then(
        FIVE.iter()
            .map(|s| obs(s, Some(Silence { alert_id: alert(&format!("{s}2")), since: t(900.0), flapping: None }), None))
            .collect(),
        900.0,
    );
    let ids: Vec<Uuid> =
        g.0.iter()
            .filter_map(|e| match e {
                HostEvent::HostAlertOpened(o) => Some(o.alert_id),
                _ => None,
            })
            .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn a_host_alert_resolves_when_no_silent_member_is_watched_there_any_more() {
    let g = outage().then(vec![left("a"), left("b"), left("c"), left("d")], 300.0);
    assert!(g.state().alert.is_some(), "e is still silent");
    let events = g.observe(vec![left("e")], 301.0);
    assert_eq!(types(&events), ["HostMonitorLeft", "HostAlertResolved"]);
    let HostEvent::HostAlertResolved(r) = &events[1] else { unreachable!() };
    assert_eq!(r.resolved_at, t(301.0));
    assert!(r.still_silent.is_empty());
}

#[test]
fn a_member_whose_alert_changed_came_back_and_fell_silent_again() {
    let g = host_with(&FIVE).then(vec![obs("a", silence("a", 100.0), None)], 100.0);
    let again = Some(Silence { alert_id: alert("a2"), since: t(150.0), flapping: None });
    let events = g.observe(vec![obs("a", again, Some(120.0))], 150.0);
    assert_eq!(types(&events), ["HostMonitorBack", "HostMonitorSilent"]);
    let HostEvent::HostMonitorBack(back) = &events[0] else { unreachable!() };
    assert_eq!((back.alert_id, back.back_at), (alert("a"), t(120.0)));
}

// ---- a silent member's flapping goes with its silence ----------------------------------------

/// The flapping alert of `slug`.
fn flap(slug: &str) -> Uuid {
    alert(&format!("{slug}-flapping"))
}

/// `slug` silent since `since`, its flapping alert open.
fn flapping(slug: &str, since: f64) -> Option<Silence> {
    Some(Silence { flapping: Some(flap(slug)), ..silence(slug, since).unwrap() })
}

/// (slug, alert) of every inhibition, in order.
fn inhibitions(events: &[HostEvent]) -> Vec<(&str, Uuid)> {
    events
        .iter()
        .filter_map(|e| match e {
            HostEvent::MonitorAlertInhibited(i) => Some((i.slug.as_str(), i.alert_id)),
            _ => None,
        })
        .collect()
}

/// (slug, alert) of every release, in order.
fn releases(events: &[HostEvent]) -> Vec<(&str, Uuid)> {
    events
        .iter()
        .filter_map(|e| match e {
            HostEvent::MonitorAlertReleased(r) => Some((r.slug.as_str(), r.alert_id)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_flapping_alert_that_opened_with_a_silence_is_inhibited_with_it_by_the_host_alert() {
    // The host went down for the third time within the hour: each member's miss is its fifth
    // change of state, so each opens a flapping alert with its silence.
    let g = host_with(&FIVE)
        .then(vec![obs("a", flapping("a", 100.0), None)], 100.0)
        .then(vec![obs("b", flapping("b", 100.0), None)], 100.0);
    assert_eq!(types(&g.0[g.0.len() - 2..]), ["HostMonitorSilent", "HostMonitorFlapping"], "nothing to decide yet");
    assert_eq!(g.state().members["a"].silence.as_ref().unwrap().flapping, Some(flap("a")));
    let events = g.observe(vec![obs("c", flapping("c", 100.0), None)], 100.0);
    assert_eq!(
        types(&events),
        [
            "HostMonitorSilent",
            "HostAlertOpened",
            "MonitorAlertInhibited",
            "MonitorAlertInhibited",
            "MonitorAlertInhibited",
            "MonitorAlertInhibited",
            "MonitorAlertInhibited",
            "HostMonitorFlapping",
            "MonitorAlertInhibited"
        ]
    );
    let open = opened(&events).unwrap();
    assert_eq!(open.monitors, ["a", "b", "c"], "the host alert names monitors, once each");
    assert_eq!(
        inhibitions(&events),
        [("a", alert("a")), ("a", flap("a")), ("b", alert("b")), ("b", flap("b")), ("c", alert("c")), ("c", flap("c"))]
    );
    assert!(events.iter().all(|e| match e {
        HostEvent::MonitorAlertInhibited(i) => i.host_alert_id == open.alert_id && i.at == t(100.0),
        _ => true,
    }));
}

#[test]
fn a_member_that_starts_flapping_while_its_host_alert_is_open_is_inhibited_at_once() {
    let g = outage();
    let host_alert = g.state().alert.unwrap().alert_id;
    let events = g.observe(vec![obs("d", flapping("d", 100.0), None)], 130.0);
    assert_eq!(
        events,
        [
            HostEvent::HostMonitorFlapping(HostMonitorFlapping { slug: "d".into(), alert_id: flap("d"), at: t(130.0) }),
            HostEvent::MonitorAlertInhibited(MonitorAlertInhibited {
                host_alert_id: host_alert,
                slug: "d".into(),
                alert_id: flap("d"),
                at: t(130.0),
            }),
        ]
    );
    // Its silence is still what attaches it: the flapping alert changed nothing else.
    let state = HostAggregate::fold(g.state(), &events);
    let silence = state.members["d"].silence.as_ref().unwrap();
    assert_eq!((silence.alert_id, silence.incident, silence.settle_from), (alert("d"), Some(host_alert), None));
}

#[test]
fn a_member_still_silent_after_its_host_came_back_is_released_with_its_flapping_alert() {
    let window = RETURN_WINDOW.as_secs_f64();
    let g = host_with(&FIVE)
        .then(FIVE.iter().map(|s| obs(s, flapping(s, 100.0), None)).collect(), 100.0)
        .then(["a", "b", "c", "d"].iter().map(|s| obs(s, None, Some(200.0))).collect(), 200.0);
    let host_alert = g.state().members["e"].silence.as_ref().unwrap().incident.unwrap();
    // The ones that came back keep their flapping alerts (a monitor flaps until it is stable for a
    // window), but that is no longer the host's business: nothing is recorded.
    assert!(g.observe(vec![obs("a", None, Some(210.0))], 210.0).is_empty());
    let events = g.when(HostCommand::Tick, ctx(200.0 + window));
    assert_eq!(
        events,
        [
            HostEvent::MonitorAlertReleased(MonitorAlertReleased {
                host_alert_id: host_alert,
                slug: "e".into(),
                alert_id: alert("e"),
                at: t(200.0 + window),
            }),
            HostEvent::MonitorAlertReleased(MonitorAlertReleased {
                host_alert_id: host_alert,
                slug: "e".into(),
                alert_id: flap("e"),
                at: t(200.0 + window),
            }),
        ]
    );
    let released = g.tick(200.0 + window);
    assert!(released.when(HostCommand::Tick, ctx(100_000.0)).is_empty(), "released once");
}

#[test]
fn flapping_that_begins_while_the_member_settles_is_inhibited_and_released_with_it() {
    let window = RETURN_WINDOW.as_secs_f64();
    let g = outage().then(vec![obs("a", None, Some(200.0))], 200.0);
    let host_alert = g.state().members["e"].silence.as_ref().unwrap().incident.unwrap();
    assert!(g.state().alert.is_none(), "the host is back; e settles");
    let g = g.then(vec![obs("e", flapping("e", 100.0), None)], 250.0);
    assert_eq!(inhibitions(&g.0[g.0.len() - 2..]), [("e", flap("e"))]);
    let settling = g.state();
    let silence = settling.members["e"].silence.as_ref().unwrap();
    assert_eq!(silence.settle_from, Some(t(200.0)), "its flapping does not restart its return window");
    assert_eq!(silence.incident, Some(host_alert));
    let events = g.when(HostCommand::Tick, ctx(200.0 + window));
    let released = releases(&events);
    assert!(released.contains(&("e", alert("e"))) && released.contains(&("e", flap("e"))), "{released:?}");
}

#[test]
fn flapping_that_ended_during_the_silence_is_not_released_with_it() {
    let window = RETURN_WINDOW.as_secs_f64();
    // A host down for more than a flapping window: e's flapping alert settles (resolves) while
    // e is still silent.
    let g = host_with(&FIVE).then(FIVE.iter().map(|s| obs(s, flapping(s, 100.0), None)).collect(), 100.0);
    let events = g.observe(vec![obs("e", silence("e", 100.0), None)], 3_800.0);
    assert_eq!(
        events,
        [HostEvent::HostMonitorSteady(HostMonitorSteady { slug: "e".into(), alert_id: flap("e"), at: t(3_800.0) })]
    );
    let g = g
        .then(vec![obs("e", silence("e", 100.0), None)], 3_800.0)
        .then(["a", "b", "c", "d"].iter().map(|s| obs(s, None, Some(4_000.0))).collect(), 4_000.0);
    assert_eq!(releases(&g.when(HostCommand::Tick, ctx(4_000.0 + window))), [("e", alert("e"))]);
}

#[test]
fn flapping_that_begins_after_the_member_was_released_is_its_own() {
    let window = RETURN_WINDOW.as_secs_f64();
    let g = outage()
        .then(["a", "b", "c", "d"].iter().map(|s| obs(s, None, Some(200.0))).collect(), 200.0)
        .tick(200.0 + window);
    let events = g.observe(vec![obs("e", flapping("e", 100.0), None)], 600.0);
    assert_eq!(types(&events), ["HostMonitorFlapping"], "recorded, neither inhibited nor released");
    assert!(HostAggregate::fold(g.state(), &events).next_wake(t(-10_000.0)).is_none());
}

#[test]
fn a_flapping_member_whose_host_is_fine_is_not_inhibited() {
    // One member silent and flapping on its own: no host alert covers it, so it pages.
    let g = host_with(&FIVE).then(vec![obs("a", flapping("a", 100.0), None)], 100.0);
    assert_eq!(types(&g.0[g.0.len() - 2..]), ["HostMonitorSilent", "HostMonitorFlapping"]);
    assert!(inhibitions(&g.0).is_empty());
    assert!(g.when(HostCommand::Tick, ctx(100_000.0)).is_empty(), "nothing to release either");
}

#[test]
fn a_member_flapping_on_failed_runs_is_not_silent() {
    // Failures open and resolve (a failure followed by silence pages at the miss); the fifth
    // change opens a flapping alert. The monitor signals all along: nothing for its host.
    let fail = |at: f64| (signal(SignalKind::Completed, Some("web-1"), Some(3)), at);
    let ok = |at: f64| (signal(SignalKind::Completed, Some("web-1"), Some(0)), at);
    let monitor = run(vec![
        fail(1.0),
        (MonitorCommand::Tick, 16.0),
        ok(20.0),
        fail(25.0),
        (MonitorCommand::Tick, 40.0),
        ok(45.0),
        fail(50.0),
        (MonitorCommand::Tick, 65.0),
    ]);
    assert!(monitor.alerts.contains_key(&AlertCause::Flapping), "{:?}", monitor.alerts.keys());
    assert!(!monitor.alerts.contains_key(&AlertCause::Missed));
    assert_eq!(MemberView::of(&monitor), MemberView { host: Some("web-1".into()), silence: None });
}

#[test]
fn a_silent_member_comes_back_while_its_flapping_alert_stays_open() {
    let g = outage();
    let g = g.then(FIVE.iter().map(|s| obs(s, flapping(s, 100.0), None)).collect(), 110.0);
    // Every member comes back, flapping still open (the monitor is not stable yet).
    let events = g.observe(FIVE.iter().map(|s| obs(s, None, Some(200.0))).collect(), 200.0);
    assert_eq!(types(&events[..2]), ["HostMonitorBack", "HostAlertResolved"]);
    assert!(!types(&events).contains(&"HostMonitorSteady"), "a silence that ends takes its flapping with it");
    // A new outage while those flapping alerts are still open (the host goes down again): they
    // go with the new silences, and are inhibited again by the new host alert.
    let g = g.then(FIVE.iter().map(|s| obs(s, None, Some(200.0))).collect(), 200.0);
    let again = |s: &str| Some(Silence { alert_id: alert(&format!("{s}2")), since: t(900.0), flapping: Some(flap(s)) });
    let events = g.observe(FIVE.iter().map(|s| obs(s, again(s), None)).collect(), 900.0);
    let second = opened(&events).expect("a second host alert");
    let flaps: Vec<&str> = inhibitions(&events).into_iter().filter(|(s, id)| *id == flap(s)).map(|(s, _)| s).collect();
    assert_eq!(flaps, FIVE, "every member's flapping alert, under {}", second.alert_id);
}

#[test]
fn host_alert_ids_are_deterministic() {
    assert_eq!(outage().0, outage().0);
}

#[test]
fn an_observation_for_another_host_is_refused() {
    let g = host_with(&["a"]);
    let other = Observation { host: "web-2".into(), ..obs("b", None, None) };
    let refused = HostAggregate::decide(&g.state(), HostCommand::Observe(vec![other]), &ctx(1.0));
    assert!(matches!(refused, Err(HostError::WrongHost { .. })));
}

// ---- what a monitor's state tells its host ------------------------------------------------

fn monitor_config() -> MonitorConfig {
    MonitorConfig::new("job", Schedule::every(Span::from_secs(10)).unwrap(), Span::from_secs(5))
}

fn signal(kind: SignalKind, host: Option<&str>, exit_code: Option<i32>) -> MonitorCommand {
    let mut signal = Signal { kind: Some(kind), fresh_run_id: "r".into(), exit_code, ..Signal::default() };
    signal.details.host = host.map(str::to_string);
    MonitorCommand::Signal(Box::new(signal))
}

fn run(commands: Vec<(MonitorCommand, f64)>) -> telltale_domain::monitor::Monitor {
    let mut state = telltale_domain::monitor::Monitor::default();
    let create = MonitorCommand::Create {
        client: "acme".into(),
        slug: "job".into(),
        config: monitor_config(),
        defaults: telltale_domain::monitor::ClientDefaults::default(),
    };
    for (command, at) in std::iter::once((create, 0.0)).chain(commands) {
        let events = MonitorAggregate::decide(&state, command, &ctx(at)).expect("decided");
        state = MonitorAggregate::fold(state, &events);
    }
    state
}

#[test]
fn a_monitor_is_a_member_of_the_host_its_signals_name_and_silent_while_missed() {
    let beating = run(vec![(signal(SignalKind::Heartbeat, Some(" web-1 "), None), 1.0)]);
    assert_eq!(MemberView::of(&beating), MemberView { host: Some("web-1".into()), silence: None });
    let missed = run(vec![(signal(SignalKind::Heartbeat, Some("web-1"), None), 1.0), (MonitorCommand::Tick, 16.0)]);
    let view = MemberView::of(&missed);
    assert_eq!(view.silence.map(|s| s.since), Some(t(16.0)));
    assert_eq!(MemberView::of(&run(vec![(signal(SignalKind::Heartbeat, None, None), 1.0)])), MemberView::default());
}

#[test]
fn a_failed_run_is_a_sign_of_life_not_silence() {
    let failed = run(vec![
        (signal(SignalKind::Heartbeat, Some("web-1"), None), 1.0),
        (signal(SignalKind::Completed, Some("web-1"), Some(3)), 2.0),
        // Silence after the failure is not paged again (C41), and it is not silence either.
        (MonitorCommand::Tick, 100.0),
    ]);
    assert_eq!(MemberView::of(&failed), MemberView { host: Some("web-1".into()), silence: None });
}

#[test]
fn a_paused_or_deleted_monitor_leaves_its_host() {
    let beating = run(vec![(signal(SignalKind::Heartbeat, Some("web-1"), None), 1.0)]);
    let paused = run(vec![(signal(SignalKind::Heartbeat, Some("web-1"), None), 1.0), (MonitorCommand::Pause, 2.0)]);
    let deleted = run(vec![(signal(SignalKind::Heartbeat, Some("web-1"), None), 1.0), (MonitorCommand::Delete, 2.0)]);
    for gone in [&paused, &deleted] {
        let out = observations("acme", "job", &MemberView::of(&beating), &MemberView::of(gone), None);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].host.as_str(), out[0].member), ("web-1", false));
    }
}

#[test]
fn a_monitor_that_moves_leaves_one_host_and_joins_the_other() {
    let before = MemberView { host: Some("web-1".into()), silence: None };
    let after = MemberView { host: Some("web-2".into()), silence: None };
    let out = observations("acme", "job", &before, &after, Some(t(3.0)));
    assert_eq!(
        out.iter().map(|o| (o.host.as_str(), o.member)).collect::<Vec<_>>(),
        [("web-1", false), ("web-2", true)]
    );
    assert!(observations("acme", "job", &after, &after, None).is_empty(), "no change, nothing to tell");
}

#[test]
fn a_member_whose_miss_makes_it_flap_brings_its_flapping_alert_with_its_silence() {
    // Default policy: the fifth change of state within an hour opens a flapping alert. Three
    // silences of a host: open, resolve, open, resolve, and the third miss is the fifth change.
    let beat = |at: f64| (signal(SignalKind::Heartbeat, Some("web-1"), None), at);
    let monitor = run(vec![
        beat(1.0),
        (MonitorCommand::Tick, 16.0),
        beat(20.0),
        (MonitorCommand::Tick, 35.0),
        beat(40.0),
        (MonitorCommand::Tick, 55.0),
    ]);
    let flapping = monitor.alerts.get(&AlertCause::Flapping).expect("flapping");
    let missed = monitor.alerts.get(&AlertCause::Missed).expect("silent");
    assert!(missed.held.is_some(), "the miss itself is held by the flapping");
    let view = MemberView::of(&monitor);
    assert_eq!(
        view.silence,
        Some(Silence { alert_id: missed.alert_id, since: t(55.0), flapping: Some(flapping.alert_id) })
    );
    // It comes back: its flapping alert stays open, but it is no longer silent.
    let back = run(vec![
        beat(1.0),
        (MonitorCommand::Tick, 16.0),
        beat(20.0),
        (MonitorCommand::Tick, 35.0),
        beat(40.0),
        (MonitorCommand::Tick, 55.0),
        beat(60.0),
    ]);
    assert!(back.alerts.contains_key(&AlertCause::Flapping));
    assert_eq!(MemberView::of(&back), MemberView { host: Some("web-1".into()), silence: None });
}
