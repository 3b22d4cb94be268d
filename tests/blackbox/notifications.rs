//! The durable outbox: a receiver that fails or is down gets every notification exactly once
//! when it is back, every attempt carrying the same idempotency key, across telltale restarts.

use std::time::Duration;

use serde_json::Value;

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
