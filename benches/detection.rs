//! `make bench`, part two: how soon after a deadline telltale knows, and how soon a person is told.
//!
//! Starts the real server (release build, SQLite file in a temporary directory, the system
//! clock) with a real webhook receiver on loopback. Many monitors (`every 2s`, grace 1s) beat once
//! each, spread over two seconds, and then fall silent. For every alert it measures:
//! - deadline → alert event: from the deadline (the end of the grace; the alert's `opened_at`) to
//!   the moment the `AlertOpened` event is committed and readable from the log;
//! - deadline → webhook received: from the deadline to the moment the receiver has the request.
//!
//! Then every monitor beats again (which resolves its alert) and the round repeats.
//! Targets: p99 ≤ 1 s to the event, ≤ 2 s to the webhook.
//!
//! Knobs (environment): BENCH_DETECT_MONITORS (200), BENCH_DETECT_ROUNDS (3).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use telltale::clock::SystemClock;
use telltale::config::Config;
use telltale::startup::{Application, Workers};
use telltale_domain::DomainEvent;
use telltale_domain::client::Scope;
use telltale_domain::monitor::MonitorEvent;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

type Samples = Arc<Mutex<Vec<f64>>>;

fn ms_since(deadline: DateTime<Utc>, at: DateTime<Utc>) -> f64 {
    (at - deadline).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

/// A real HTTP receiver: for every "opened" notification, the time from its deadline to now.
async fn receiver(samples: Samples) -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = actix_web::HttpServer::new(move || {
        let samples = samples.clone();
        actix_web::App::new().default_service(actix_web::web::to(move |body: actix_web::web::Bytes| {
            let received = Utc::now();
            let samples = samples.clone();
            async move {
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if body["transition"] == "opened"
                    && let Some(opened) = body["opened_at"].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok())
                {
                    samples.lock().unwrap().push(ms_since(opened, received));
                }
                actix_web::HttpResponse::Ok().finish()
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    tokio::spawn(server);
    Ok(format!("http://127.0.0.1:{port}/hook"))
}

fn report(what: &str, samples: &mut [f64], target_ms: f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let p99 = percentile(samples, 0.99);
    println!(
        "  {what:<27} p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms   ({} alerts; target p99 ≤ {target_ms:.0} ms: {})",
        percentile(samples, 0.50),
        p99,
        samples.last().copied().unwrap_or(f64::NAN),
        samples.len(),
        if p99 <= target_ms { "met" } else { "NOT met" }
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let monitors = knob("BENCH_DETECT_MONITORS", 200);
    let rounds = knob("BENCH_DETECT_ROUNDS", 3);
    let dir = tempfile::tempdir()?;
    let config = Config {
        database_url: format!("sqlite://{}/bench.db", dir.path().display()),
        listen: "127.0.0.1:0".into(),
        // The benchmark measures the server, not the per-key rate limit.
        limits: telltale::config::LimitsConfig {
            key_requests_per_second: 1e9,
            key_burst: 1_000_000,
            ..Default::default()
        },
        ..Config::default()
    };
    let application = Application::build_with(config, Arc::new(SystemClock), Workers::default(), false).await?;
    let app = application.app();
    let base = format!("http://127.0.0.1:{}", application.port());
    let handle = application.handle();
    let server = tokio::spawn(application.run_until_stopped());
    app.register_client("bench").await?;
    let key = app.issue_key("bench", Scope::ALL.to_vec(), None).await?.token;
    let http = reqwest::Client::new();

    let to_webhook: Samples = Arc::default();
    let url = receiver(to_webhook.clone()).await?;
    let response = http
        .post(format!("{base}/v1/channels"))
        .bearer_auth(&key)
        .json(&json!({"name": "bench", "kind": "webhook", "config": {"url": url}}))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "adding the webhook: {}", response.status());
    for i in 0..monitors {
        let response = http
            .post(format!("{base}/v1/monitors"))
            .bearer_auth(&key)
            .json(&json!({"slug": format!("job-{i}"), "schedule": {"every": "2s"}, "grace": "1s"}))
            .send()
            .await?;
        anyhow::ensure!(response.status().is_success(), "creating a monitor: {}", response.status());
    }

    // Follow the log: the moment each AlertOpened is committed and readable.
    let to_event: Samples = Arc::default();
    let follower = {
        let (store, samples) = (app.store.clone(), to_event.clone());
        let mut head = store.subscribe();
        let mut after = store.head().await?;
        tokio::spawn(async move {
            while head.changed().await.is_ok() {
                let seen = Utc::now();
                let Ok(events) = store.read_all(after, 10_000).await else { continue };
                for event in events {
                    after = event.position;
                    if let Ok(DomainEvent::Monitor(MonitorEvent::AlertOpened(opened))) =
                        DomainEvent::decode_recorded(&event)
                    {
                        samples.lock().unwrap().push(ms_since(opened.opened_at, seen));
                    }
                }
            }
        })
    };

    let spread = Duration::from_secs(2);
    for round in 1..=rounds {
        // One beat each, spread out, so that deadlines fall one by one rather than all at once.
        for i in 0..monitors {
            let response = http.post(format!("{base}/v1/monitors/job-{i}/heartbeat")).bearer_auth(&key).send().await?;
            anyhow::ensure!(response.status().is_success(), "a heartbeat: {}", response.status());
            tokio::time::sleep(spread / monitors as u32).await;
        }
        let want = (round * monitors) as usize;
        let waited = tokio::time::timeout(Duration::from_secs(60), async {
            while to_webhook.lock().unwrap().len() < want || to_event.lock().unwrap().len() < want {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        anyhow::ensure!(waited.is_ok(), "round {round}: not every alert arrived within 60 s");
    }
    follower.abort();

    println!("telltale detection benchmark (release build, SQLite, system clock, real webhook receiver)");
    println!("  machine:      {} cores", std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!("  load:         {monitors} monitors (every 2s, grace 1s) falling silent, {rounds} rounds");
    report("deadline → alert event:", &mut to_event.lock().unwrap(), 1000.0);
    report("deadline → webhook received:", &mut to_webhook.lock().unwrap(), 2000.0);

    handle.stop(true).await;
    server.await??;
    Ok(())
}
