//! `make bench`, part two: how soon after a deadline telltale knows, and how soon a person is told.
//!
//! Starts the real server (release build, SQLite file in a temporary directory, the system
//! clock) with a real webhook receiver on loopback, and measures, for every alert:
//! - deadline → alert event: from the deadline (the end of the grace; the alert's `opened_at`) to
//!   the moment the `AlertOpened` (or `HostAlertOpened`) event is committed and readable from the
//!   log;
//! - deadline → webhook received: from the deadline to the moment the receiver has the request.
//!
//! Three loads, each for a few rounds (every monitor `every 2s`, grace 1s):
//! 1. monitors without a host beat once each, spread over two seconds, then fall silent;
//! 2. host correlation: hosts of five monitors each, spread over two seconds; all five monitors
//!    of a host fall silent together, so one host alert opens per host (its deadline is that of
//!    the miss that made it a host outage) and the monitors' own alerts are inhibited: they must
//!    never reach the receiver;
//! 3. one monitor of a host of three dies alone while the other two keep beating: its own alert
//!    is held for `host::HOLD` (in case its host alert was about to open), then sent.
//!
//! Then every monitor beats again (which resolves the alerts) and the round repeats.
//! Targets: p99 ≤ 1 s to the event, ≤ 2 s to the webhook.
//!
//! Knobs (environment): BENCH_DETECT_MONITORS (200), BENCH_DETECT_HOSTS (40), BENCH_DETECT_ROUNDS (3).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use telltale::clock::SystemClock;
use telltale::config::Config;
use telltale::startup::{Application, Workers};
use telltale_domain::DomainEvent;
use telltale_domain::client::Scope;
use telltale_domain::host::HostEvent;
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

/// (what: `monitor` or `host`, the slug or host, ms from the deadline)
type Samples = Arc<Mutex<Vec<(String, String, f64)>>>;

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
                    let kind = body["kind"].as_str().unwrap_or("monitor").to_string();
                    let subject = body["host"].as_str().filter(|_| kind == "host").or(body["monitor"].as_str());
                    let subject = subject.unwrap_or_default().to_string();
                    samples.lock().unwrap().push((kind, subject, ms_since(opened, received)));
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

fn report(what: &str, samples: &[f64], target_ms: f64) {
    let mut samples = samples.to_vec();
    samples.sort_by(|a, b| a.total_cmp(b));
    let p99 = percentile(&samples, 0.99);
    println!(
        "  {what:<34} p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms   ({} alerts; target p99 ≤ {target_ms:.0} ms: {})",
        percentile(&samples, 0.50),
        p99,
        samples.last().copied().unwrap_or(f64::NAN),
        samples.len(),
        if p99 <= target_ms { "met" } else { "NOT met" }
    );
}

fn select(samples: &Samples, kind: &str, prefix: &str) -> Vec<f64> {
    samples
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, s, _)| k == kind && s.starts_with(prefix))
        .map(|(_, _, ms)| *ms)
        .collect()
}

fn count(samples: &Samples, kind: &str, prefix: &str) -> usize {
    select(samples, kind, prefix).len()
}

struct Bench {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Bench {
    async fn create(&self, slug: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/v1/monitors", self.base))
            .bearer_auth(&self.key)
            .json(&json!({"slug": slug, "schedule": {"every": "2s"}, "grace": "1s"}))
            .send()
            .await?;
        anyhow::ensure!(response.status().is_success(), "creating a monitor: {}", response.status());
        Ok(())
    }

    async fn beat(&self, slug: &str, host: Option<&str>) -> anyhow::Result<()> {
        let body = match host {
            Some(host) => json!({"type": "heartbeat", "host": host}),
            None => json!({"type": "heartbeat"}),
        };
        let response = self
            .http
            .post(format!("{}/v1/monitors/{slug}/events", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(response.status().is_success(), "a heartbeat: {}", response.status());
        Ok(())
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    anyhow::ensure!(waited.is_ok(), "{what}: not every alert arrived within 60 s");
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let monitors = knob("BENCH_DETECT_MONITORS", 200);
    let hosts = knob("BENCH_DETECT_HOSTS", 40);
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
    let bench = Arc::new(Bench { http: reqwest::Client::new(), base: base.clone(), key: key.clone() });

    let to_webhook: Samples = Arc::default();
    let url = receiver(to_webhook.clone()).await?;
    let response = bench
        .http
        .post(format!("{base}/v1/channels"))
        .bearer_auth(&key)
        .json(&json!({"name": "bench", "kind": "webhook", "config": {"url": url}}))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "adding the webhook: {}", response.status());
    for i in 0..monitors {
        bench.create(&format!("job-{i}")).await?;
    }
    for h in 0..hosts {
        for m in 0..5 {
            bench.create(&format!("h{h}-{m}")).await?;
        }
        for m in ["a", "b", "c"] {
            bench.create(&format!("lone{h}-{m}")).await?;
        }
    }

    // Follow the log: the moment each AlertOpened / HostAlertOpened is committed and readable.
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
                    let sample = match DomainEvent::decode_recorded(&event) {
                        Ok(DomainEvent::Monitor(MonitorEvent::AlertOpened(opened))) => {
                            let slug = event.stream_id.rsplit(':').next().unwrap_or_default().to_string();
                            Some(("monitor", slug, opened.opened_at))
                        }
                        Ok(DomainEvent::Host(HostEvent::HostAlertOpened(opened))) => {
                            let host = event.stream_id.rsplit(':').next().unwrap_or_default().to_string();
                            Some(("host", host, opened.opened_at))
                        }
                        _ => None,
                    };
                    if let Some((kind, subject, opened_at)) = sample {
                        samples.lock().unwrap().push((kind.into(), subject, ms_since(opened_at, seen)));
                    }
                }
            }
        })
    };

    let spread = Duration::from_secs(2);

    // 1. Monitors without a host, one by one.
    for round in 1..=rounds {
        for i in 0..monitors {
            bench.beat(&format!("job-{i}"), None).await?;
            tokio::time::sleep(spread / monitors as u32).await;
        }
        let want = (round * monitors) as usize;
        wait_until(&format!("monitors, round {round}"), || {
            count(&to_webhook, "monitor", "job-") >= want && count(&to_event, "monitor", "job-") >= want
        })
        .await?;
    }

    // 2. Whole hosts falling silent, one host after the other.
    for round in 1..=rounds {
        for h in 0..hosts {
            let beats = (0..5).map(|m| {
                let bench = bench.clone();
                async move { bench.beat(&format!("h{h}-{m}"), Some(&format!("host-{h}"))).await }
            });
            for beat in futures::future::join_all(beats).await {
                beat?;
            }
            tokio::time::sleep(spread / hosts as u32).await;
        }
        let want = (round * hosts) as usize;
        wait_until(&format!("hosts, round {round}"), || {
            count(&to_webhook, "host", "host-") >= want && count(&to_event, "host", "host-") >= want
        })
        .await?;
    }
    // Every host's last round is still open: let a hold pass, then check nothing inhibited leaked.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leaked = count(&to_webhook, "monitor", "h");
    let inhibited_recorded = count(&to_event, "monitor", "h");

    // 3. One monitor of a host dying alone: its alert is held, then sent.
    let keep_beating = {
        let bench = bench.clone();
        tokio::spawn(async move {
            loop {
                for h in 0..hosts {
                    for m in ["a", "b"] {
                        let _ = bench.beat(&format!("lone{h}-{m}"), Some(&format!("lone-host-{h}"))).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    for round in 1..=rounds {
        for h in 0..hosts {
            bench.beat(&format!("lone{h}-c"), Some(&format!("lone-host-{h}"))).await?;
            tokio::time::sleep(spread / hosts as u32).await;
        }
        let want = (round * hosts) as usize;
        wait_until(&format!("lone monitors, round {round}"), || {
            count(&to_webhook, "monitor", "lone") >= want && count(&to_event, "monitor", "lone") >= want
        })
        .await?;
    }
    keep_beating.abort();
    follower.abort();

    println!("telltale detection benchmark (release build, SQLite, system clock, real webhook receiver)");
    println!("  machine:      {} cores", std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!("  load 1:       {monitors} monitors without a host (every 2s, grace 1s) falling silent, {rounds} rounds");
    report("deadline → alert event:", &select(&to_event, "monitor", "job-"), 1000.0);
    report("deadline → webhook received:", &select(&to_webhook, "monitor", "job-"), 2000.0);
    println!("  load 2:       {hosts} hosts of 5 monitors each falling silent together, {rounds} rounds");
    report("deadline → host alert event:", &select(&to_event, "host", "host-"), 1000.0);
    report("deadline → host webhook received:", &select(&to_webhook, "host", "host-"), 2000.0);
    println!(
        "  inhibited:    {inhibited_recorded} monitor alerts recorded, {leaked} of them sent (must be 0: {})",
        if leaked == 0 { "met" } else { "NOT met" }
    );
    println!(
        "  load 3:       {hosts} hosts of 3 monitors, one of which dies alone (held for the host), {rounds} rounds"
    );
    report("deadline → alert event:", &select(&to_event, "monitor", "lone"), 1000.0);
    report("deadline → webhook (after hold):", &select(&to_webhook, "monitor", "lone"), 2000.0);

    handle.stop(true).await;
    server.await??;
    Ok(())
}
