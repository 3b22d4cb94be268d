//! `make bench`: heartbeats per second acknowledged after commit, on this machine.
//!
//! Starts the real server (release build, SQLite file in a temporary directory, fsync on every
//! group commit) and drives it over HTTP from many concurrent keep-alive connections for a fixed
//! time. Every counted heartbeat got a 200, which telltale only sends after the commit. The
//! log is checked at the end: one event per acknowledgement.
//!
//! Knobs (environment): BENCH_SECONDS (10), BENCH_CONNECTIONS (64), BENCH_MONITORS (100).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use telltale::clock::SystemClock;
use telltale::config::Config;
use telltale::startup::{Application, Workers};
use telltale_domain::client::Scope;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let seconds = knob("BENCH_SECONDS", 10);
    let connections = knob("BENCH_CONNECTIONS", 64);
    let monitors = knob("BENCH_MONITORS", 100);
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
    let http = reqwest::Client::builder().pool_max_idle_per_host(connections as usize).build()?;
    for i in 0..monitors {
        let response = http
            .post(format!("{base}/v1/monitors"))
            .bearer_auth(&key)
            .json(&json!({"slug": format!("job-{i}"), "schedule": {"every": "30s"}, "grace": "10s"}))
            .send()
            .await?;
        anyhow::ensure!(response.status().is_success(), "creating a monitor: {}", response.status());
    }
    let head_before = app.store.head().await?;

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|c| {
            let (http, base, key) = (http.clone(), base.clone(), key.clone());
            let (stop, acked, failed) = (stop.clone(), acked.clone(), failed.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = c;
                while !stop.load(Ordering::Relaxed) {
                    let url = format!("{base}/v1/monitors/job-{}/heartbeat", n % monitors);
                    n += connections;
                    let sent = Instant::now();
                    match http.post(url).bearer_auth(&key).send().await {
                        Ok(r) if r.status().is_success() => {
                            latencies.push(sent.elapsed().as_micros() as u64);
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let acked = acked.load(Ordering::Relaxed);
    let head_after = app.store.head().await?;
    let recorded = head_after - head_before;

    println!("telltale ingest benchmark (release build, SQLite WAL, synchronous=FULL, group commit)");
    println!("  machine:      {} cores", std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!("  load:         {connections} concurrent keep-alive connections, {monitors} monitors, {seconds} s");
    println!("  acknowledged: {acked} heartbeats, {} failed", failed.load(Ordering::Relaxed));
    println!("  throughput:   {:.0} heartbeats/s acknowledged after commit", acked as f64 / elapsed);
    println!(
        "  latency:      p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    println!("  log check:    {recorded} events appended for {acked} acknowledgements");
    anyhow::ensure!(recorded as u64 == acked, "every acknowledged heartbeat is exactly one event");

    handle.stop(true).await;
    server.await??;
    Ok(())
}
