//! The durable outbox: a receiver that fails or is down gets every notification exactly once
//! when it is back, every attempt carrying the same idempotency key, across telltale restarts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::Duration;

use serde_json::Value;
use telltale::clock::Clock;
use telltale_domain::span::Span;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(10);

async fn channel_failures(app: &TestApp) -> i64 {
    let channels: Value = app.get("/v1/channels").await.json().await.unwrap();
    channels["channels"][0]["consecutive_failures"].as_i64().unwrap()
}

/// Waits (on the read model, not on a guess) until the channel has failed `n` times in a row.
async fn until_failures(app: &TestApp, n: i64) {
    tokio::time::timeout(WAIT, async {
        while channel_failures(app).await < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the channel did not reach {n} failures"));
}

async fn open_an_alert(app: &TestApp, slug: &str) {
    app.create_monitor(slug, "10s", "0s").await;
    app.beat(slug).await;
    app.advance(secs(10)).await;
    assert_eq!(app.alerts("open").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_twice_gets_the_notification_once_with_one_key() {
    // C46: 500, 500, 200 → three attempts, delivered once, recorded as a success.
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start_on(0, vec![500, 500]).await;
    app.add_webhook("flaky", &receiver.url).await;
    open_an_alert(&app, "job").await;
    let first = receiver.next(WAIT).await.unwrap();
    until_failures(&app, 1).await;
    app.advance(secs(1)).await;
    let second = receiver.next(WAIT).await.unwrap();
    until_failures(&app, 2).await;
    app.advance(secs(2)).await;
    let third = receiver.next(WAIT).await.unwrap();
    assert_eq!(first.idempotency_key, second.idempotency_key);
    assert_eq!(second.idempotency_key, third.idempotency_key);
    assert_eq!(
        [&first, &second, &third].map(|r| r.body["attempt"].as_u64().unwrap()),
        [1, 2, 3],
        "each attempt says which it is"
    );
    tokio::time::timeout(WAIT, async {
        loop {
            let channels: Value = app.get("/v1/channels").await.json().await.unwrap();
            if channels["channels"][0]["health"] == "ok" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the channel recovers");
    app.advance(secs(600)).await;
    assert!(receiver.drain().is_empty(), "nothing more is sent once delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_for_a_while_gets_everything_once_it_is_back() {
    let app = TestApp::spawn().await;
    let port = free_port();
    app.add_webhook("later", &format!("http://127.0.0.1:{port}/hook")).await;
    open_an_alert(&app, "job").await;
    // Down through several attempts with growing backoff: 1s, 2s, 4s, 8s.
    for (n, wait) in [(1, 1), (2, 2), (3, 4), (4, 8)] {
        until_failures(&app, n).await;
        app.advance(secs(wait)).await;
    }
    until_failures(&app, 5).await;
    let channel: Value = app.get("/v1/channels").await.json().await.unwrap();
    assert_eq!(channel["channels"][0]["health"], "failing");
    assert!(channel["channels"][0]["last_error"].as_str().unwrap().contains("connect"));
    // The monitor recovers meanwhile: its notification waits behind the first, in order.
    app.beat("job").await;
    let mut receiver = Receiver::start_on(port, vec![]).await;
    app.advance(secs(16)).await;
    let opened = receiver.next(WAIT).await.unwrap();
    let resolved = receiver.next(WAIT).await.unwrap();
    assert_eq!(
        (opened.body["transition"].as_str(), resolved.body["transition"].as_str()),
        (Some("opened"), Some("resolved"))
    );
    assert_eq!(opened.body["attempt"], 6);
    app.advance(secs(600)).await;
    assert!(receiver.drain().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_notification_survives_a_telltale_restart() {
    let app = TestApp::spawn().await;
    let port = free_port();
    app.add_webhook("later", &format!("http://127.0.0.1:{port}/hook")).await;
    open_an_alert(&app, "job").await;
    until_failures(&app, 1).await;
    let (dir, clock, _) = app.stop().await;
    let mut receiver = Receiver::start_on(port, vec![]).await;
    let app = TestApp::spawn_with(Options { dir: Some(dir), clock: Some(clock), port: 0 }).await;
    app.advance(secs(1)).await;
    let delivered = receiver.next(WAIT).await.expect("delivered after the restart");
    assert_eq!((delivered.body["transition"].as_str(), delivered.body["attempt"].as_u64()), (Some("opened"), Some(2)));
    app.advance(secs(600)).await;
    assert!(receiver.drain().is_empty(), "and only once");
}

/// The client's first channel, as `GET /v1/channels` shows it.
async fn first_channel(app: &TestApp) -> Value {
    let channels: Value = app.get("/v1/channels").await.json().await.unwrap();
    channels["channels"][0].clone()
}

async fn outbox(app: &TestApp, channel: &Value) -> Vec<Value> {
    let list: Value =
        app.get(&format!("/v1/channels/{}/notifications", channel["id"].as_str().unwrap())).await.json().await.unwrap();
    list["notifications"].as_array().unwrap().clone()
}

fn count_type(log: &[telltale_domain::RecordedEvent], event_type: &str) -> usize {
    log.iter().filter(|e| e.event_type == event_type).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_for_good_is_given_up_with_its_error_visible() {
    // C46: 500 forever → recorded as failed, the error visible in the API and on the dashboard,
    // and the channel's later notifications no longer wait behind it.
    let app = TestApp::spawn_configured(Options::default(), |c| c.notify.give_up_after = Span::from_secs(20)).await;
    let status = Arc::new(AtomicU16::new(500));
    let answer = status.clone();
    let mut receiver = Receiver::responding(move || Reply::status(answer.load(Ordering::SeqCst))).await;
    app.add_webhook("flaky", &receiver.url).await;
    open_an_alert(&app, "job").await;
    // Attempts at +0, +1, +3, +7, +15 s fail and are retried; the one at +31 s is the last.
    for (n, wait) in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16)] {
        until_failures(&app, n).await;
        app.advance(secs(wait)).await;
    }
    let channel = first_channel(&app).await;
    until("the notification is given up", || async { outbox(&app, &channel).await[0]["state"] == "failed" }).await;
    let notification = outbox(&app, &channel).await[0].clone();
    assert_eq!(notification["attempts"], 6);
    assert_eq!(notification["last_error"], "the receiver answered HTTP 500");
    assert!(notification["next_attempt_at"].is_null());
    let channel = first_channel(&app).await;
    assert_eq!((channel["health"].as_str(), channel["failed_notifications"].as_i64()), (Some("failing"), Some(1)));
    assert_eq!(channel["pending_notifications"], 0);
    assert_eq!(channel["last_error"], "the receiver answered HTTP 500");
    let attempts = receiver.drain();
    assert_eq!(attempts.len(), 6);
    assert!(attempts.iter().all(|r| r.idempotency_key == attempts[0].idempotency_key));
    assert_eq!(count_type(&app.log().await, "NotificationAbandoned"), 1);

    let dashboard = app.dashboard("/").await;
    assert!(dashboard.contains(r#"data-channel="flaky" data-health="failing""#), "{dashboard}");
    assert!(dashboard.contains("the receiver answered HTTP 500") && dashboard.contains("1 given up"), "{dashboard}");

    // The receiver is fixed; the resolution is not stuck behind the abandoned opening.
    status.store(200, Ordering::SeqCst);
    app.beat("job").await;
    app.settle().await;
    let resolved = receiver.next(WAIT).await.expect("the resolution goes out");
    assert_eq!((resolved.body["transition"].as_str(), resolved.body["attempt"].as_u64()), (Some("resolved"), Some(1)));
    until("the channel is healthy again", || async { first_channel(&app).await["health"] == "ok" }).await;
    let dashboard = app.dashboard("/").await;
    assert!(dashboard.contains(r#"data-channel="flaky" data-health="ok""#), "{dashboard}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_slower_than_the_timeout_gets_each_retry_with_the_same_key() {
    // C46: the receiver answers 200 only after telltale's timeout: the attempt counts as failed
    // and is retried, and the retry carries the same idempotency key so the receiver can drop it.
    let app = TestApp::spawn_configured(Options::default(), |c| c.notify.timeout = Span::from_millis(300)).await;
    let slow = Reply { status: 200, body: String::new(), delay: Duration::from_secs(3) };
    let mut receiver = Receiver::scripted(0, vec![slow]).await;
    app.add_webhook("slow", &receiver.url).await;
    open_an_alert(&app, "job").await;
    let first = receiver.next(WAIT).await.unwrap();
    until_failures(&app, 1).await;
    assert_eq!(first_channel(&app).await["last_error"], "the receiver did not answer in time");
    app.advance(secs(1)).await;
    let second = receiver.next(WAIT).await.unwrap();
    assert_eq!(first.idempotency_key, second.idempotency_key);
    assert_eq!(first.body["notification_id"], second.body["notification_id"]);
    assert_eq!((first.body["attempt"].as_u64(), second.body["attempt"].as_u64()), (Some(1), Some(2)));
    until("the retry is recorded as delivered", || async { first_channel(&app).await["health"] == "ok" }).await;
    app.advance(secs(600)).await;
    assert!(receiver.drain().is_empty());
    assert_eq!(count_type(&app.log().await, "NotificationDelivered"), 1, "recorded as delivered once");
}

/// Waits until the channel's oldest waiting notification is not due (nothing due is left
/// unattempted at the current time), or none waits.
async fn quiet(app: &TestApp) {
    let channel = first_channel(app).await;
    let now = app.clock.now();
    until("no attempt is due", || async {
        let pending: Vec<Value> = outbox(app, &channel).await.into_iter().filter(|n| n["state"] == "pending").collect();
        match pending.last() {
            None => true,
            Some(head) => {
                let next: chrono::DateTime<chrono::Utc> = head["next_attempt_at"].as_str().unwrap().parse().unwrap();
                next > now
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_for_five_minutes_then_healthy_gets_every_notification_exactly_once() {
    let app = TestApp::spawn().await;
    let clock = app.clock.clone();
    let healthy_from = t0() + secs(300);
    let mut receiver =
        Receiver::responding(move || Reply::status(if clock.now() < healthy_from { 503 } else { 200 })).await;
    app.add_webhook("ops", &receiver.url).await;
    for slug in ["flappy-1", "flappy-2", "silent-1", "silent-2"] {
        // Every change is notified: flapping is not collapsed here (this is about delivery).
        app.create_monitor_with_policy(slug, "30s", "0s", serde_json::json!({"flapping_threshold": 0})).await;
        app.beat(slug).await;
    }
    // Six minutes in 10 s steps: the flappy monitors beat every minute (each silence opens an
    // alert, each beat resolves it); the silent ones never beat again.
    for step in 1..=36 {
        app.advance(secs(10)).await;
        if step % 6 == 0 {
            app.beat("flappy-1").await;
            app.beat("flappy-2").await;
            app.settle().await;
        }
        quiet(&app).await;
    }
    let transitions = count_type(&app.log().await, "AlertOpened") + count_type(&app.log().await, "AlertResolved");
    assert!(transitions >= 12, "{transitions} transitions");
    // Backoff is at most a minute: a few more minutes deliver the rest.
    for _ in 0..10 {
        if first_channel(&app).await["pending_notifications"] == 0 {
            break;
        }
        app.advance(secs(30)).await;
        quiet(&app).await;
    }
    let channel = first_channel(&app).await;
    assert_eq!(channel["pending_notifications"], 0);
    assert_eq!(channel["health"], "ok");
    let requests = receiver.drain();
    assert!(requests.iter().any(|r| r.status == 503), "it did fail for a while");
    let mut delivered: Vec<&str> =
        requests.iter().filter(|r| r.status == 200).map(|r| r.idempotency_key.as_str()).collect();
    delivered.sort();
    let unique = {
        let mut u = delivered.clone();
        u.dedup();
        u
    };
    assert_eq!(delivered, unique, "no notification delivered twice");
    assert_eq!(delivered.len(), transitions, "every transition delivered");
    let outbox = outbox(&app, &channel).await;
    assert!(outbox.iter().all(|n| n["state"] == "delivered"));
    let mut keys: Vec<&str> = outbox.iter().map(|n| n["id"].as_str().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, delivered, "exactly the outbox's notifications, by idempotency key");
    for failed in requests.iter().filter(|r| r.status == 503) {
        assert!(keys.contains(&failed.idempotency_key.as_str()), "a retry is the same notification");
    }
    // In order: per monitor, each opening is delivered before its resolution.
    let order: Vec<(String, String)> = requests
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| (r.body["alert_id"].as_str().unwrap().to_string(), r.body["transition"].as_str().unwrap().to_string()))
        .collect();
    for (i, (alert, transition)) in order.iter().enumerate() {
        if transition == "resolved" {
            assert!(order[..i].iter().any(|(a, t)| a == alert && t == "opened"), "resolution before opening");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_for_five_minutes_gets_a_host_alert_and_the_rest_exactly_once() {
    // The same, while a host outage happens: its host alert (opened and resolved) reaches the
    // receiver exactly once like every other notification, and the five inhibited monitor
    // alerts never do.
    let app = TestApp::spawn().await;
    let clock = app.clock.clone();
    let healthy_from = t0() + secs(300);
    let mut receiver =
        Receiver::responding(move || Reply::status(if clock.now() < healthy_from { 503 } else { 200 })).await;
    app.add_webhook("ops", &receiver.url).await;
    let beat = |slug: String| {
        let app = &app;
        async move {
            let response = app
                .post(&format!("/v1/monitors/{slug}/events"), serde_json::json!({"type": "heartbeat", "host": "web-1"}))
                .await;
            assert!(response.status().is_success());
        }
    };
    // Every change is notified: flapping is not collapsed here (this is about delivery).
    app.create_monitor_with_policy("flappy", "30s", "0s", serde_json::json!({"flapping_threshold": 0})).await;
    app.beat("flappy").await;
    for i in 1..=5 {
        app.create_monitor(&format!("web-{i}"), "30s", "10s").await;
        beat(format!("web-{i}")).await;
    }
    // web-1's processes beat for a minute, fall silent together for two, then beat again;
    // `flappy` (no host) beats every minute, each silence an alert of its own.
    for step in 1..=36 {
        app.advance(secs(10)).await;
        if step % 6 == 0 {
            app.beat("flappy").await;
        }
        if step % 3 == 0 && !(7..=18).contains(&step) {
            for i in 1..=5 {
                beat(format!("web-{i}")).await;
            }
        }
        app.settle().await;
        quiet(&app).await;
    }
    let alerts: Value = app.get("/v1/alerts?state=all&limit=500").await.json().await.unwrap();
    let alerts = alerts["alerts"].as_array().unwrap().clone();
    let host_alerts: Vec<&Value> = alerts.iter().filter(|a| a["kind"] == "host").collect();
    assert_eq!(host_alerts.len(), 1, "{alerts:#?}");
    assert_eq!(host_alerts[0]["state"], "resolved");
    let inhibited: Vec<&Value> = alerts.iter().filter(|a| a.get("inhibited_by").is_some()).collect();
    assert_eq!(inhibited.len(), 5);
    // What must arrive: every transition of every alert but the inhibited ones.
    let expected: usize = alerts
        .iter()
        .filter(|a| a.get("inhibited_by").is_none())
        .map(|a| if a["state"] == "resolved" { 2 } else { 1 })
        .sum();
    assert!(expected >= 8, "{expected}");
    for _ in 0..10 {
        if first_channel(&app).await["pending_notifications"] == 0 {
            break;
        }
        app.advance(secs(30)).await;
        quiet(&app).await;
    }
    let channel = first_channel(&app).await;
    assert_eq!(channel["pending_notifications"], 0);
    let requests = receiver.drain();
    assert!(requests.iter().any(|r| r.status == 503), "it did fail for a while");
    let mut delivered: Vec<&str> =
        requests.iter().filter(|r| r.status == 200).map(|r| r.idempotency_key.as_str()).collect();
    delivered.sort();
    let mut unique = delivered.clone();
    unique.dedup();
    assert_eq!(delivered, unique, "no notification delivered twice");
    assert_eq!(delivered.len(), expected, "every transition delivered, inhibited ones excepted");
    let host_id = host_alerts[0]["id"].as_str().unwrap();
    let host_transitions: Vec<&str> = requests
        .iter()
        .filter(|r| r.status == 200 && r.body["alert_id"] == host_id)
        .map(|r| r.body["transition"].as_str().unwrap())
        .collect();
    assert_eq!(host_transitions, ["opened", "resolved"]);
    for alert in &inhibited {
        assert!(
            !requests.iter().any(|r| r.body["alert_id"] == alert["id"]),
            "an inhibited alert was never sent, not even tried: {alert}"
        );
    }
    let outbox = outbox(&app, &channel).await;
    let mut keys: Vec<&str> =
        outbox.iter().filter(|n| n["state"] == "delivered").map(|n| n["id"].as_str().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, delivered, "exactly the outbox's delivered notifications, by idempotency key");
    assert_eq!(outbox.iter().filter(|n| n["state"] == "inhibited").count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatchers_racing_over_one_outbox_send_each_notification_once() {
    // Three dispatchers (as three telltale nodes would be) claim before they send.
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    app.add_webhook("ops", &receiver.url).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for _ in 0..2 {
        let dispatcher = telltale::notify::Dispatcher::new(app.app.clone(), app.base.clone());
        tokio::spawn(dispatcher.run(stopped.clone()));
    }
    let monitors = 20;
    for i in 0..monitors {
        app.create_monitor(&format!("job-{i}"), "10s", "0s").await;
        app.beat(&format!("job-{i}")).await;
    }
    app.advance(secs(10)).await;
    assert_eq!(app.alerts("open").await.len(), monitors);
    until("every notification is delivered", || async {
        let channel = first_channel(&app).await;
        channel["pending_notifications"] == 0 && channel["health"] == "ok"
    })
    .await;
    app.advance(secs(600)).await;
    let mut keys: Vec<String> = receiver.drain().into_iter().map(|r| r.idempotency_key).collect();
    assert_eq!(keys.len(), monitors, "one request per notification: {keys:?}");
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), monitors);
    let log = app.log().await;
    assert_eq!(count_type(&log, "NotificationAttemptStarted"), monitors, "one claim won per notification");
    assert_eq!(count_type(&log, "NotificationDelivered"), monitors);
    let _ = stop.send(true);
}

/// A TCP listener that speaks just enough HTTP/1.1: while `hang` is set it reads a request and
/// never answers (a receiver that stops mid-request); otherwise it answers 200 and records the
/// request's idempotency key and body.
async fn raw_receiver(hang: Arc<AtomicBool>) -> (String, mpsc::UnboundedReceiver<(String, Value)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            if hang.load(Ordering::SeqCst) {
                held.push(stream);
                continue;
            }
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
                    let header = |name: &str| {
                        head.lines().find_map(|l| {
                            let (n, v) = l.split_once(':')?;
                            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                    };
                    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                    if body.len() < length {
                        continue;
                    }
                    let key = header("idempotency-key").unwrap_or_default();
                    let _ = tx.send((key, serde_json::from_str(body).unwrap_or(Value::Null)));
                    let _ =
                        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                    return;
                }
            });
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_cut_off_by_a_stop_is_sent_again_after_its_lease_with_the_same_key() {
    // At least once: telltale stops while a request is in flight (claimed, no outcome). The
    // next telltale waits for the claim's lease to lapse (another node might still be sending),
    // then sends attempt 2 with the same idempotency key.
    let timeout = |c: &mut telltale::config::Config| c.notify.timeout = Span::from_secs(30);
    let app = TestApp::spawn_configured(Options::default(), timeout).await;
    let hang = Arc::new(AtomicBool::new(true));
    let (url, mut received) = raw_receiver(hang.clone()).await;
    app.add_webhook("ops", &url).await;
    open_an_alert(&app, "job").await;
    until("the attempt is claimed", || async {
        app.log_types("notify:acme").await.iter().any(|t| t == "NotificationAttemptStarted")
    })
    .await;
    let (dir, clock, _) = app.stop().await;
    hang.store(false, Ordering::SeqCst);
    let app = TestApp::spawn_configured(Options { dir: Some(dir), clock: Some(clock), port: 0 }, timeout).await;
    app.advance(secs(60)).await;
    assert!(received.try_recv().is_err(), "not while the claim may still be good");
    // The lease is three timeouts and 30 s: 120 s after the claim.
    app.advance(secs(61)).await;
    let (key, body) = tokio::time::timeout(WAIT, received.recv()).await.unwrap().expect("sent again");
    assert_eq!(body["attempt"], 2);
    assert_eq!(key, body["notification_id"].as_str().unwrap());
    until("the delivery is recorded", || async {
        app.log_types("notify:acme").await.iter().any(|t| t == "NotificationDelivered")
    })
    .await;
    let types = app.log_types("notify:acme").await;
    assert_eq!(types, ["NotificationAttemptStarted", "NotificationAttemptStarted", "NotificationDelivered"]);
    let channel = first_channel(&app).await;
    assert_eq!(outbox(&app, &channel).await[0]["id"], key.as_str());
}
