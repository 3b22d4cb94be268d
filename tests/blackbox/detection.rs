//! Detection with an injected clock: silence becomes exactly one alert at the deadline, a
//! heartbeat resolves it, a webhook carries both, and restarts neither lose nor repeat anything.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_opens_one_alert_at_the_deadline_and_a_heartbeat_resolves_it() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    app.add_webhook("ops", &receiver.url).await;
    app.create_monitor("sync", "2s", "1s").await;
    app.beat("sync").await;

    app.advance(millis(2_999)).await;
    assert!(app.alerts("all").await.is_empty(), "no alert before the deadline");
    let monitor: Value = app.get("/v1/monitors/sync").await.json().await.unwrap();
    assert_eq!(monitor["status"], "late", "past the expected time, inside the grace");

    app.advance(millis(1)).await;
    let open = app.alerts("open").await;
    assert_eq!(open.len(), 1);
    assert_eq!((open[0]["cause"].as_str(), open[0]["monitor"].as_str()), (Some("missed"), Some("sync")));
    assert_eq!(open[0]["opened_at"], "2026-03-01T12:00:03Z");
    let monitor: Value = app.get("/v1/monitors/sync").await.json().await.unwrap();
    assert_eq!(monitor["status"], "down");

    let opened = receiver.next(WAIT).await.expect("the opening is delivered");
    assert_eq!(opened.body["transition"], "opened");
    assert_eq!(opened.body["alert_id"], open[0]["id"]);
    assert_eq!((opened.body["client"].as_str(), opened.body["monitor"].as_str()), (Some("acme"), Some("sync")));
    assert_eq!(opened.body["cause"], "missed");
    assert_eq!(opened.body["opened_at"], "2026-03-01T12:00:03.000000Z");
    assert_eq!(opened.body["link"], format!("{}/monitors/acme/sync", app.base));
    assert_eq!(opened.idempotency_key, opened.body["notification_id"].as_str().unwrap());

    // Time passing while it is down changes nothing.
    app.advance(secs(600)).await;
    assert_eq!(app.alerts("all").await.len(), 1);

    app.beat("sync").await;
    app.settle().await;
    let resolved = receiver.next(WAIT).await.expect("the recovery is delivered");
    assert_eq!(resolved.body["transition"], "resolved");
    assert_eq!(resolved.body["alert_id"], opened.body["alert_id"]);
    assert_ne!(resolved.idempotency_key, opened.idempotency_key);
    let all = app.alerts("all").await;
    assert_eq!((all.len(), all[0]["state"].as_str()), (1, Some("resolved")));

    // Pause it so that no further deadline falls, then check that nothing else was sent.
    app.post("/v1/monitors/sync/pause", serde_json::json!({})).await;
    app.outbox_settled().await;
    assert!(receiver.drain().is_empty(), "exactly one opening and one recovery");
    let channels: Value = app.get("/v1/channels").await.json().await.unwrap();
    assert_eq!(channels["channels"][0]["health"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_just_before_the_deadline_keeps_the_monitor_up() {
    // C29: interval 60s, grace 10s; the next beat lands 100 ms before the deadline.
    let app = TestApp::spawn().await;
    app.create_monitor("edge", "60s", "10s").await;
    app.beat("edge").await;
    app.advance(millis(69_900)).await;
    app.beat("edge").await;
    app.advance(millis(100)).await;
    assert!(app.alerts("all").await.is_empty());
    let types = app.log_types("monitor:acme:edge").await;
    assert!(!types.iter().any(|t| t == "HeartbeatMissed"), "{types:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_signalled_and_paused_monitors_never_alert() {
    // C44 (a) and (b), across a restart too.
    let app = TestApp::spawn().await;
    app.create_monitor("never", "1m", "1m").await;
    app.create_monitor("paused", "1m", "1m").await;
    app.beat("paused").await;
    app.post("/v1/monitors/paused/pause", serde_json::json!({})).await;
    app.advance(secs(10 * 120)).await;
    assert!(app.alerts("all").await.is_empty());
    let (dir, clock, _) = app.stop().await;
    clock.advance(secs(3600));
    let app = TestApp::spawn_with(Options { dir: Some(dir), clock: Some(clock), port: 0 }).await;
    app.advance(secs(10 * 120)).await;
    assert!(app.alerts("all").await.is_empty());
    let never: Value = app.get("/v1/monitors/never").await.json().await.unwrap();
    assert_eq!(never["status"], "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loses_nothing_repeats_nothing_and_blames_nobody_for_the_downtime() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    app.add_webhook("ops", &receiver.url).await;
    app.create_monitor("steady", "2s", "1s").await;
    app.create_monitor("dead", "2s", "1s").await;
    app.beat("steady").await;
    app.beat("dead").await;
    app.advance(secs(3)).await;
    // Both miss their deadline and are notified once each; `steady` then recovers.
    let opened = receiver.next(WAIT).await.unwrap();
    let second = receiver.next(WAIT).await.unwrap();
    let mut slugs =
        [opened.body["monitor"].as_str().unwrap().to_string(), second.body["monitor"].as_str().unwrap().to_string()];
    slugs.sort();
    assert_eq!(slugs, ["dead", "steady"]);
    app.beat("steady").await;
    assert!(receiver.next(WAIT).await.is_some(), "steady's recovery");
    let before = app.log().await.len();

    // telltale stops between beats; `steady` would have beaten while it was down.
    let (dir, clock, _) = app.stop().await;
    clock.advance(secs(5));
    let app = TestApp::spawn_with(Options { dir: Some(dir), clock: Some(clock), port: 0 }).await;
    let log = app.log().await;
    assert!(log.len() > before, "the stop and the start are recorded");
    assert!(
        log.iter().any(|e| e.event_type == "ServiceStopped") && log.iter().any(|e| e.event_type == "ServiceStarted")
    );

    // The deadline that fell while telltale was down gets a fresh interval and grace.
    app.settle().await;
    assert_eq!(app.alerts("open").await.len(), 1, "only `dead` is still open; nothing new");
    let steady: Value = app.get("/v1/monitors/steady").await.json().await.unwrap();
    assert_eq!(steady["status"], "up", "not blamed: telltale could not hear it while it was down");
    assert_eq!(steady["next_deadline_at"], "2026-03-01T12:00:11Z");
    app.advance(secs(1)).await;
    // The deadline that fell while telltale was down is recorded, as unknown, and visible.
    let unobserved: Value = app.get("/v1/monitors/steady/events?type=DeadlineUnobserved").await.json().await.unwrap();
    let unobserved = &unobserved["events"][0]["data"];
    assert_eq!(unobserved["rescheduled_to"], "2026-03-01T12:00:11Z", "{unobserved}");
    app.beat("steady").await;
    app.advance(secs(1)).await;
    assert_eq!(app.alerts("open").await.len(), 1);
    app.outbox_settled().await;
    assert!(receiver.drain().is_empty(), "no duplicate and no false alert after the restart");

    // Silence after the restart is still caught, once.
    app.advance(secs(3)).await;
    let open = app.alerts("open").await;
    assert_eq!(open.len(), 2);
    let next = receiver.next(WAIT).await.unwrap();
    assert_eq!((next.body["monitor"].as_str(), next.body["transition"].as_str()), (Some("steady"), Some("opened")));
}
