//! Edge cases of `shared/cases/edge-cases.md`, sections C (false alerts) and E (notifications),
//! through the real application over HTTP. Each test is named after its case; the schedule
//! maths of the same cases is pinned in `domain/tests/edge_cases.rs`, and C26, C28 and C29 are
//! also scenarios (`tests/scenarios/`). C46 is in `notifications.rs`, C31 in `process.rs`
//! (it needs a real process to kill).

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use telltale::clock::{Clock, ManualClock};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(10);

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c25_a_ping_before_its_slot_is_stamped_with_the_servers_clock_and_the_slot_still_goes_down() {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2023, 9, 4, 0, 0, 0).unwrap());
    let app = TestApp::spawn_with(Options { clock: Some(clock.clone()), ..Options::default() }).await;
    let mut receiver = Receiver::start().await;
    app.add_webhook("ops", &receiver.url).await;
    let created = app
        .post(
            "/v1/monitors",
            json!({"slug": "nightly", "schedule": {"cron": "0 1 * * *", "timezone": "UTC"}, "grace": "5m"}),
        )
        .await;
    assert_eq!(created.status().as_u16(), 201);
    clock.set(utc("2023-09-04T01:00:20Z"));
    app.post("/v1/monitors/nightly/events", json!({"type": "heartbeat"})).await;
    // The host's clock runs fast: it believes it is 01:00:31 when the server receives 00:59:30.
    clock.set(utc("2023-09-05T00:59:30Z"));
    let response =
        app.post("/v1/monitors/nightly/events", json!({"type": "heartbeat", "sent_at": "2023-09-05T01:00:31Z"})).await;
    assert!(response.status().is_success());
    app.settle().await;
    let monitor: Value = app.get("/v1/monitors/nightly").await.json().await.unwrap();
    assert_eq!(monitor["last_heartbeat_at"], "2023-09-05T00:59:30Z", "the server's receive time, not the sender's");
    assert_eq!(monitor["next_deadline_at"], "2023-09-05T01:05:00Z", "today's 01:00 slot, plus grace");

    app.advance(secs(5 * 60 + 29)).await; // 01:04:59
    assert!(app.alerts("all").await.is_empty());
    app.advance(secs(1)).await; // 01:05:00
    let open = app.alerts("open").await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["opened_at"], "2023-09-05T01:05:00Z");
    let opened = receiver.next(WAIT).await.expect("one notification at 01:05");
    assert_eq!(opened.body["transition"], "opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c32_one_clock_decides_senders_two_minutes_behind_never_cause_a_miss() {
    // The sender's clock (and anything else's) may be off by minutes: every deadline
    // comparison uses the server's one clock, which also stamps what the log records.
    let app = TestApp::spawn().await;
    app.create_monitor("minutely", "1m", "1m").await;
    for minute in 0..15 {
        let server_now = app.clock.now();
        let skewed = server_now - chrono::TimeDelta::minutes(2);
        let body = json!({"type": "heartbeat", "sent_at": skewed.to_rfc3339()});
        assert!(app.post("/v1/monitors/minutely/events", body).await.status().is_success(), "minute {minute}");
        app.advance(secs(60)).await;
    }
    assert!(app.alerts("all").await.is_empty());
    let log = app.log().await;
    assert!(!log.iter().any(|e| e.event_type == "HeartbeatMissed"));
    let beats: Vec<_> = log.iter().filter(|e| e.event_type == "HeartbeatReceived").collect();
    assert_eq!(beats.len(), 15);
    for (i, beat) in beats.iter().enumerate() {
        let expected = t0() + secs(60 * i as i64);
        assert_eq!(beat.recorded_at, expected, "recorded by the server's clock");
        assert_eq!(utc(beat.data["at"].as_str().unwrap()), expected, "stamped by the server's clock");
        assert_eq!(utc(beat.data["sent_at"].as_str().unwrap()), expected - chrono::TimeDelta::minutes(2), "kept");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c44_never_pinged_and_paused_checks_never_alert_across_a_restart_and_a_read_model_rebuild() {
    // (a) never pinged, 10 × (period + grace); (b) paused while up, however long. Then the
    // "migration" of the Dead Man's Snitch incident: a restart and every read model rebuilt
    // from the log. Still nothing.
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    app.add_webhook("ops", &receiver.url).await;
    app.create_monitor("never", "1m", "1m").await;
    app.create_monitor("paused", "1m", "1m").await;
    app.beat("paused").await;
    assert!(app.post("/v1/monitors/paused/pause", json!({})).await.status().is_success());
    app.advance(secs(10 * 120)).await;
    assert!(app.alerts("all").await.is_empty());

    let (dir, clock, _) = app.stop().await;
    clock.advance(secs(6 * 3600));
    let app = TestApp::spawn_with(Options { dir: Some(dir), clock: Some(clock), port: 0 }).await;
    app.app.projector.rebuild(|_, _| {}).await.unwrap();
    app.advance(secs(10 * 120)).await;
    assert!(app.alerts("all").await.is_empty());
    for (slug, status) in [("never", "new"), ("paused", "paused")] {
        let monitor: Value = app.get(&format!("/v1/monitors/{slug}")).await.json().await.unwrap();
        assert_eq!(monitor["status"], status, "{slug}");
        assert!(monitor["next_deadline_at"].is_null(), "{slug} has no deadline");
    }
    let derived =
        app.log().await.iter().filter(|e| e.event_type == "HeartbeatMissed" || e.event_type == "AlertOpened").count();
    assert_eq!(derived, 0);
    assert!(receiver.next(Duration::from_millis(200)).await.is_none());
}
