//! Read models as pure folds: events in, rows out.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use telltale_domain::monitor::*;
use telltale_domain::notification::{Transition, notification_id};
use telltale_domain::schedule::Schedule;
use telltale_domain::span::Span;
use telltale_domain::{Aggregate, DomainEvent};
use telltale_projections::Envelope;
use telltale_projections::models::{history, monitors, notifications};
use uuid::Uuid;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::seconds(secs)
}

fn created() -> MonitorEvent {
    MonitorEvent::MonitorCreated(MonitorCreated {
        client: "acme".into(),
        slug: "sync".into(),
        config: MonitorConfig {
            name: "Sync".into(),
            schedule: Schedule::every(Span::from_secs(60)).unwrap(),
            grace: Span::from_secs(10),
            max_runtime: None,
            min_interval: None,
            tags: vec!["nightly".into()],
            alert_policy: Default::default(),
            manual_resume: false,
        },
        at: t(0),
    })
}

fn beat(at: i64, host: &str) -> MonitorEvent {
    MonitorEvent::HeartbeatReceived(HeartbeatReceived {
        at: t(at),
        status: None,
        metrics: None,
        details: SignalDetails { host: Some(host.into()), ..Default::default() },
    })
}

#[test]
fn a_monitor_row_follows_its_events() {
    let state = MonitorAggregate::fold(Monitor::default(), &[created(), beat(5, "web-1")]);
    let row = monitors::row_of(&state, t(5), None);
    assert_eq!((row.client.as_str(), row.slug.as_str(), row.name.as_str()), ("acme", "sync", "Sync"));
    assert_eq!(row.status, "up");
    assert_eq!(row.host.as_deref(), Some("web-1"));
    assert_eq!(row.last_heartbeat_at.as_deref(), Some("2026-01-01T00:00:05.000000Z"));
    assert_eq!(row.expected_at.as_deref(), Some("2026-01-01T00:01:05.000000Z"));
    assert_eq!(row.next_deadline_at.as_deref(), Some("2026-01-01T00:01:15.000000Z"));
    assert_eq!(row.tags, r#"["nightly"]"#);
    assert!(!row.deleted);
    // After a restart later than the last beat, the deadline row shows the fresh allowance.
    let row = monitors::row_of(&state, t(5), Some(t(100)));
    assert_eq!(row.next_deadline_at.as_deref(), Some("2026-01-01T00:02:50.000000Z"));
}

#[test]
fn a_deleted_monitor_row_is_marked_and_has_no_deadline() {
    let deleted = MonitorEvent::MonitorDeleted(MonitorDeleted { at: t(9) });
    let state = MonitorAggregate::fold(Monitor::default(), &[created(), beat(5, "web-1"), deleted]);
    let row = monitors::row_of(&state, t(9), None);
    assert!(row.deleted);
    assert_eq!(row.next_deadline_at, None);
}

#[test]
fn history_rows_exist_for_monitor_events_only() {
    let envelope =
        |event: DomainEvent, stream: &str| Envelope { position: 7, stream_id: stream.into(), recorded_at: t(1), event };
    let row = history::row_of(&envelope(DomainEvent::Monitor(beat(3, "h")), "monitor:acme:sync")).unwrap();
    assert_eq!(
        (row.position, row.client.as_str(), row.slug.as_str(), row.event_type.as_str()),
        (7, "acme", "sync", "HeartbeatReceived")
    );
    assert_eq!(row.at, "2026-01-01T00:00:03.000000Z");
    let system = telltale_domain::system::SystemEvent::ServiceStarted(telltale_domain::system::ServiceStarted {
        node_id: Uuid::nil(),
        at: t(0),
        version: "x".into(),
        down_since: None,
    });
    assert!(history::row_of(&envelope(DomainEvent::System(system), "system")).is_none());
}

#[test]
fn a_notification_payload_names_the_alert_and_its_monitor() {
    let alert_id = Uuid::from_u128(42);
    let channel = Uuid::from_u128(7);
    let opened = MonitorEvent::AlertOpened(AlertOpened {
        alert_id,
        cause: AlertCause::Missed,
        opened_at: t(75),
        message: "sync has gone silent".into(),
        held: None,
    });
    let (transition, id, body) = notifications::payload("acme", "sync", &opened, channel).unwrap();
    assert_eq!((transition, id), (Transition::Opened, alert_id));
    assert_eq!(body["notification_id"], notification_id(alert_id, Transition::Opened, channel).to_string());
    assert_eq!(
        (body["client"].as_str(), body["monitor"].as_str(), body["cause"].as_str()),
        (Some("acme"), Some("sync"), Some("missed"))
    );
    assert_eq!(body["opened_at"], "2026-01-01T00:01:15.000000Z");
    assert!(body["resolved_at"].is_null());
    let resolved = MonitorEvent::AlertResolved(AlertResolved {
        alert_id,
        cause: AlertCause::Missed,
        opened_at: t(75),
        resolved_at: t(80),
        message: "back".into(),
        quiet: false,
    });
    let (transition, _, body) = notifications::payload("acme", "sync", &resolved, channel).unwrap();
    assert_eq!((transition, body["state"].as_str()), (Transition::Resolved, Some("resolved")));
    assert_eq!(body["resolved_at"], "2026-01-01T00:01:20.000000Z");
    assert!(notifications::payload("acme", "sync", &beat(1, "h"), channel).is_none());
    assert_ne!(
        notification_id(alert_id, Transition::Opened, channel),
        notification_id(alert_id, Transition::Resolved, channel),
        "each transition has its own idempotency key"
    );
}

#[test]
fn the_alert_policy_s_transitions_have_their_own_payloads_and_keys() {
    use telltale_domain::policy::HoldReason;
    let alert_id = Uuid::from_u128(42);
    let channel = Uuid::from_u128(7);
    // A held opening, and a quiet resolution, are heard by nobody.
    let held = MonitorEvent::AlertOpened(AlertOpened {
        alert_id,
        cause: AlertCause::Missed,
        opened_at: t(75),
        message: "m".into(),
        held: Some(HoldReason::Maintenance),
    });
    assert!(notifications::payload("acme", "sync", &held, channel).is_none());
    let quiet = MonitorEvent::AlertResolved(AlertResolved {
        alert_id,
        cause: AlertCause::Missed,
        opened_at: t(75),
        resolved_at: t(80),
        message: "m".into(),
        quiet: true,
    });
    assert!(notifications::payload("acme", "sync", &quiet, channel).is_none());
    // Its announcement is its opening, with the opening's key: it can never be sent twice.
    let announced = MonitorEvent::AlertAnnounced(AlertAnnounced {
        alert_id,
        cause: AlertCause::Missed,
        opened_at: t(75),
        at: t(90),
        message: "m".into(),
    });
    let (transition, _, body) = notifications::payload("acme", "sync", &announced, channel).unwrap();
    assert_eq!(transition, Transition::Opened);
    assert_eq!(body["notification_id"], notification_id(alert_id, Transition::Opened, channel).to_string());
    // Each reminder is its own notification.
    let reminded = |n| {
        MonitorEvent::AlertReminded(AlertReminded {
            alert_id,
            cause: AlertCause::Missed,
            opened_at: t(75),
            at: t(3600),
            reminder: n,
            message: "m".into(),
        })
    };
    let (_, _, first) = notifications::payload("acme", "sync", &reminded(1), channel).unwrap();
    let (_, _, second) = notifications::payload("acme", "sync", &reminded(2), channel).unwrap();
    assert_eq!(
        (first["transition"].as_str(), first["reminder"].as_u64(), first["state"].as_str()),
        (Some("reminder"), Some(1), Some("open"))
    );
    assert_ne!(first["notification_id"], second["notification_id"]);
    let escalated = MonitorEvent::AlertEscalated(AlertEscalated {
        alert_id,
        cause: AlertCause::Missed,
        opened_at: t(75),
        at: t(1800),
        channels: vec!["pager".into()],
        message: "m".into(),
    });
    let (_, _, body) = notifications::payload("acme", "sync", &escalated, channel).unwrap();
    assert_eq!((body["transition"].as_str(), body["escalated_to"][0].as_str()), (Some("escalated"), Some("pager")));
    let acked = MonitorEvent::AlertAcknowledged(AlertAcknowledged {
        alert_id,
        cause: AlertCause::Missed,
        opened_at: t(75),
        at: t(100),
        by: Some("ana".into()),
        note: Some("on it".into()),
    });
    let (_, _, body) = notifications::payload("acme", "sync", &acked, channel).unwrap();
    assert_eq!(
        (body["transition"].as_str(), body["state"].as_str(), body["acknowledged_by"].as_str()),
        (Some("acknowledged"), Some("open"), Some("ana"))
    );
    assert!(body["acknowledged_at"].is_string(), "{body}");
    assert_eq!(body["message"], "sync: alert acknowledged by ana: on it");
}

#[test]
fn a_notification_quotes_the_monitors_last_event_and_how_long_it_lasted() {
    let failed = MonitorEvent::RunFailed(RunFinished {
        run_id: "r1".into(),
        at: t(75),
        started_at: Some(t(70)),
        duration_ms: Some(5_000),
        exit_code: Some(3),
        output: Some(format!("{}disk full\n", "x".repeat(600))),
        output_lossy: false,
        output_truncated: false,
        details: SignalDetails { host: Some("db-1".into()), ..Default::default() },
    });
    let last = notifications::last_event_of(&failed).unwrap();
    assert_eq!((last.kind.as_str(), last.run_id.as_deref(), last.exit_code), ("failed", Some("r1"), Some(3)));
    assert_eq!(last.host.as_deref(), Some("db-1"));
    let quoted = last.message.clone().unwrap();
    assert!(quoted.starts_with('…') && quoted.ends_with("disk full"), "the tail of the output: {quoted}");
    assert_eq!(quoted.chars().count(), notifications::OUTPUT_QUOTE + 1);
    assert_eq!(notifications::last_event_of(&beat(3, "web-1")).unwrap().kind, "heartbeat");
    assert!(notifications::last_event_of(&created()).is_none());

    let resolved = MonitorEvent::AlertResolved(AlertResolved {
        alert_id: Uuid::from_u128(42),
        cause: AlertCause::Failed,
        opened_at: t(75),
        resolved_at: t(385),
        message: "sync: run r2 completed".into(),
        quiet: false,
    });
    let (_, _, mut body) = notifications::payload("acme", "sync", &resolved, Uuid::from_u128(7)).unwrap();
    let facts = notifications::MonitorFacts {
        name: Some("Sync".into()),
        tags: vec!["nightly".into()],
        last_event: Some(last),
        escalation_only: vec![],
    };
    notifications::enrich(&mut body, &facts);
    assert_eq!(body["monitor_name"], "Sync");
    assert_eq!(body["tags"], serde_json::json!(["nightly"]));
    assert_eq!(body["duration_ms"], 310_000);
    assert_eq!(body["last_event"]["type"], "failed");
    // The enriched body reads as the Notification every channel is given.
    let n: telltale_domain::channel::Notification = serde_json::from_value(body).unwrap();
    assert_eq!((n.transition.as_str(), n.state.as_str(), n.duration_ms), ("resolved", "resolved", Some(310_000)));
}

// ---- host correlation ---------------------------------------------------------------------

use telltale_domain::host::{self, HostAggregate, HostEvent};
use telltale_projections::models::hosts;

fn host_events() -> Vec<HostEvent> {
    let alert_id = Uuid::from_u128(99);
    let mut events: Vec<HostEvent> = ["a", "b", "c"]
        .iter()
        .map(|slug| {
            HostEvent::HostMonitorJoined(host::HostMonitorJoined {
                client: "acme".into(),
                host: "web-1".into(),
                slug: (*slug).into(),
                at: t(0),
            })
        })
        .collect();
    for slug in ["a", "b", "c"] {
        events.push(HostEvent::HostMonitorSilent(host::HostMonitorSilent {
            slug: slug.into(),
            alert_id: Uuid::new_v5(&Uuid::nil(), slug.as_bytes()),
            since: t(75),
            at: t(75),
        }));
    }
    events.push(HostEvent::HostAlertOpened(host::HostAlertOpened {
        alert_id,
        opened_at: t(75),
        monitors: vec!["a".into(), "b".into(), "c".into()],
        members: 3,
        message: "web-1 has gone silent".into(),
    }));
    events
}

#[test]
fn a_host_row_counts_its_members_silences_and_open_alert() {
    let state = HostAggregate::fold(telltale_domain::host::Host::default(), &host_events());
    let row = hosts::row_of("acme", "web-1", &state, t(75));
    assert_eq!((row.members, row.silent), (3, 3));
    assert_eq!(row.alert_id.as_deref(), Some(Uuid::from_u128(99).to_string().as_str()));
    assert_eq!(row.updated_at, "2026-01-01T00:01:15.000000Z");
}

#[test]
fn a_host_alert_notification_names_the_host_and_its_monitors() {
    let channel = Uuid::from_u128(7);
    let opened = host_events().pop().unwrap();
    let monitors = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let (transition, id, body) = notifications::host_payload("acme", "web-1", &opened, &monitors, channel).unwrap();
    assert_eq!((transition, id), (Transition::Opened, Uuid::from_u128(99)));
    assert_eq!(body["notification_id"], notification_id(id, Transition::Opened, channel).to_string());
    assert_eq!(
        (body["kind"].as_str(), body["host"].as_str(), body["monitor"].as_str(), body["cause"].as_str()),
        (Some("host"), Some("web-1"), Some("host:web-1"), Some("host_silent"))
    );
    assert_eq!(body["monitors"], serde_json::json!(["a", "b", "c"]));
    let n: telltale_domain::channel::Notification = serde_json::from_value(body).unwrap();
    assert!(n.is_host());
    assert_eq!(n.monitors, monitors);
    assert!(notifications::host_payload("acme", "web-1", &host_events()[0], &monitors, channel).is_none());
    // A monitor's payload says it is a monitor's.
    let (_, _, body) = notifications::payload(
        "acme",
        "a",
        &MonitorEvent::AlertOpened(AlertOpened {
            alert_id: Uuid::from_u128(1),
            cause: AlertCause::Missed,
            opened_at: t(75),
            message: "a has gone silent".into(),
            held: None,
        }),
        channel,
    )
    .unwrap();
    assert_eq!(body["kind"], "monitor");
}

#[test]
fn a_missed_opening_of_a_member_of_a_host_that_could_correlate_waits_the_hold() {
    let missed = MonitorEvent::AlertOpened(AlertOpened {
        alert_id: Uuid::from_u128(1),
        cause: AlertCause::Missed,
        opened_at: t(75),
        message: "gone".into(),
        held: None,
    });
    let failed = MonitorEvent::AlertOpened(AlertOpened {
        cause: AlertCause::Failed,
        ..match &missed {
            MonitorEvent::AlertOpened(o) => o.clone(),
            _ => unreachable!(),
        }
    });
    let hold = host::HOLD.to_delta();
    // Recorded a little after its deadline: the hold runs from the recording.
    let recorded = t(75) + TimeDelta::milliseconds(40);
    assert_eq!(notifications::due_at(&missed, Some(3), recorded), recorded + hold);
    assert_eq!(notifications::due_at(&missed, Some(2), recorded), t(75), "a host too small to correlate");
    assert_eq!(notifications::due_at(&missed, None, recorded), t(75), "no host");
    assert_eq!(notifications::due_at(&failed, Some(5), recorded), t(75), "a failure is never held");
}

#[test]
fn a_flapping_opening_of_a_member_of_a_host_that_could_correlate_waits_the_hold() {
    // A host down again and again: the member's miss opens its flapping alert, which its host
    // alert is about to inhibit with the silence.
    let flapping = MonitorEvent::AlertOpened(AlertOpened {
        alert_id: Uuid::from_u128(2),
        cause: AlertCause::Flapping,
        opened_at: t(75),
        message: "flapping".into(),
        held: None,
    });
    let hold = host::HOLD.to_delta();
    let recorded = t(75) + TimeDelta::milliseconds(40);
    assert_eq!(notifications::due_at(&flapping, Some(5), recorded), recorded + hold);
    assert_eq!(notifications::due_at(&flapping, Some(2), recorded), t(75), "a host too small to correlate");
    assert_eq!(notifications::due_at(&flapping, None, recorded), t(75), "a monitor without a host flaps at once");
    // Its resolution is never held.
    let resolved = MonitorEvent::AlertResolved(AlertResolved {
        alert_id: Uuid::from_u128(2),
        cause: AlertCause::Flapping,
        opened_at: t(75),
        resolved_at: t(4000),
        message: "stable".into(),
        quiet: false,
    });
    assert_eq!(notifications::due_at(&resolved, Some(5), t(4000)), t(4000));
}
