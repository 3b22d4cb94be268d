//! Rebuilt read models equal the live ones, row for row.

use serde_json::{Value, json};
use sqlx::Row;
use telltale_domain::client::Scope;

use crate::common::*;

const TABLES: &[(&str, &str)] = &[
    ("rm_monitors", "client, slug"),
    ("rm_events", "position"),
    ("rm_alerts", "alert_id"),
    ("rm_clients", "client"),
    ("rm_keys", "key_id"),
    ("rm_channels", "channel_id"),
    ("rm_outbox", "notification_id"),
    ("rm_notify_monitors", "client, slug"),
    ("rm_hosts", "client, host"),
    ("rm_notify_host_members", "client, slug"),
    ("rm_notify_inhibited", "alert_id"),
    ("rm_notify_host_alerts", "alert_id"),
    ("rm_meta", "key"),
];

async fn dump(app: &TestApp) -> Vec<(String, Vec<Vec<Option<String>>>)> {
    let mut out = Vec::new();
    for (table, order) in TABLES {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table} ORDER BY {order}")))
            .fetch_all(&app.app.read.pool)
            .await
            .unwrap();
        let rows: Vec<Vec<Option<String>>> = rows
            .iter()
            .map(|row| {
                (0..row.columns().len())
                    .map(|i| {
                        row.try_get::<Option<String>, _>(i)
                            .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|v| v.map(|v| v.to_string())))
                            .unwrap()
                    })
                    .collect()
            })
            .collect();
        out.push((table.to_string(), rows));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilt_projections_equal_the_live_ones() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    app.add_webhook("ops", &receiver.url).await;
    app.add_webhook("gone", "http://127.0.0.1:9/never").await;
    for slug in ["a", "b", "c"] {
        app.create_monitor(slug, "5s", "1s").await;
        app.beat(slug).await;
    }
    // Three monitors of one host fall silent together: a host alert, their own inhibited.
    for slug in ["h-1", "h-2", "h-3"] {
        app.create_monitor(slug, "5s", "1s").await;
        app.post(&format!("/v1/monitors/{slug}/heartbeat"), json!({"host": "web-9"})).await;
    }
    app.post("/v1/monitors/b/events", json!({"type": "started", "run_id": "r1", "host": "web-1"})).await;
    app.post("/v1/monitors/b/events", json!({"type": "failed", "run_id": "r1", "exit_code": 2, "output": "boom"}))
        .await;
    app.advance(secs(6)).await;
    app.beat("a").await;
    app.advance(secs(2)).await;
    for slug in ["h-1", "h-2", "h-3"] {
        app.post(&format!("/v1/monitors/{slug}/heartbeat"), json!({"host": "web-9"})).await;
    }
    app.post("/v1/monitors/c/pause", json!({})).await;
    app.http.delete(app.url("/v1/monitors/c")).bearer_auth(&app.key).send().await.unwrap();
    app.http
        .patch(app.url("/v1/monitors/a"))
        .bearer_auth(&app.key)
        .json(&json!({"schedule": {"every": "1m"}, "tags": ["x"]}))
        .send()
        .await
        .unwrap();
    let channels: Value = app.get("/v1/channels").await.json().await.unwrap();
    let gone = channels["channels"].as_array().unwrap().iter().find(|c| c["name"] == "gone").unwrap()["id"].clone();
    while receiver.next(std::time::Duration::from_secs(2)).await.is_some() {}
    app.http
        .delete(app.url(&format!("/v1/channels/{}", gone.as_str().unwrap())))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    app.settle().await;

    let live = dump(&app).await;
    assert!(live.iter().all(|(_, rows)| !rows.is_empty()), "every table has rows to compare: {live:?}");
    app.app.projector.rebuild(|_, _| {}).await.unwrap();
    let rebuilt = dump(&app).await;
    for ((table, a), (_, b)) in live.iter().zip(&rebuilt) {
        assert_eq!(a, b, "{table} differs after a rebuild");
    }
}

/// Two processes on one database (the server and a CLI command): each catches the read models
/// up and moves the shared checkpoints. A runner that finds nothing left to apply because the
/// other applied it must still count the read models as current, or every request of the
/// server waits for events it will never apply itself (and answers seconds late).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_caught_up_by_another_process_count_as_current() {
    use telltale::app::{App, Role};
    let dir = tempfile::tempdir().unwrap();
    let clock: telltale::clock::SharedClock = std::sync::Arc::new(telltale::clock::ManualClock::new(t0()));
    let server = App::open(config_for(&dir, 0), clock.clone(), Role::Cli).await.unwrap();
    let cli = App::open(config_for(&dir, 0), clock.clone(), Role::Cli).await.unwrap();
    server.register_client("acme").await.unwrap();
    server.projector.catch_up().await.unwrap();
    // The other process writes and applies what it wrote; this one applies nothing more.
    cli.issue_key("acme", Scope::DEFAULT.to_vec(), None).await.unwrap();
    cli.projector.catch_up().await.unwrap();
    assert_eq!(server.projector.step().await.unwrap(), 0, "nothing left to apply");
    let head = server.store.head().await.unwrap();
    assert_eq!(*server.projector.progress().borrow(), head, "the read models are current");
}
