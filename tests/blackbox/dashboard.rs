//! The dashboard in a real browser (headless Chromium): every monitor of every client, with its
//! status, last heartbeat, host and active alerts.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

use crate::common::*;

/// Chromium, or `None` (with a printed line) where it is not installed. CI sets
/// `TELLTALE_REQUIRE_BROWSER=1`, and there a missing browser fails the test.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        let out = Command::new("which").arg(name).output().ok()?;
        out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    });
    if found.is_none() {
        assert!(
            std::env::var("TELLTALE_REQUIRE_BROWSER").is_err(),
            "TELLTALE_REQUIRE_BROWSER is set but Chromium is not installed"
        );
        eprintln!("skipping the browser test: Chromium is not installed (apt-get install -y chromium)");
    }
    found
}

/// The DOM Chromium builds for `url`, after its scripts ran.
fn dump_dom(browser: &PathBuf, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=1500",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            url,
        ])
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_every_monitor_with_status_last_heartbeat_host_and_alerts() {
    let Some(browser) = chromium() else { return };
    let app = TestApp::spawn().await;
    app.create_monitor("nightly-sync", "1m", "10s").await;
    app.create_monitor("log-rotate", "10s", "0s").await;
    app.post("/v1/monitors/nightly-sync/heartbeat", json!({"host": "web-3"})).await;
    app.beat("log-rotate").await;
    let other = app.key_for("globex", &telltale_domain::client::Scope::DEFAULT).await;
    app.post_as(&other, "/v1/monitors", json!({"slug": "billing", "schedule": {"every": "1h"}})).await;
    app.advance(secs(12)).await;

    let dom = tokio::task::spawn_blocking({
        let (browser, url) = (browser.clone(), app.url("/"));
        move || dump_dom(&browser, &url)
    })
    .await
    .unwrap();
    assert!(dom.contains("<table id=\"monitors\">"), "{dom}");
    for (slug, status) in [("nightly-sync", "up"), ("log-rotate", "down"), ("billing", "new")] {
        assert!(
            dom.contains(&format!("data-monitor=\"{slug}\" data-status=\"{status}\"")),
            "{slug} is {status}: {dom}"
        );
    }
    assert!(dom.contains("web-3"), "the host is shown");
    assert!(dom.contains("missed since"), "the active alert is shown");
    assert!(dom.contains("globex") && dom.contains("acme"), "every client's monitors are on the one page");
    assert!(dom.contains("ago"), "last heartbeats read as \"… ago\"");
    assert!(dom.contains("http-equiv=\"refresh\""), "it refreshes itself");

    let detail = tokio::task::spawn_blocking({
        let (browser, url) = (browser.clone(), app.url("/monitors/acme/log-rotate"));
        move || dump_dom(&browser, &url)
    })
    .await
    .unwrap();
    for text in ["HeartbeatMissed", "AlertOpened", "HeartbeatReceived", "Recent events"] {
        assert!(detail.contains(text), "{text}: {detail}");
    }

    // A cron job's page shows its runs and its next expected times.
    let body =
        json!({"slug": "backup", "schedule": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"}, "max_runtime": "1h"});
    app.post("/v1/monitors", body).await;
    for event in [
        json!({"type": "started", "run_id": "run-a"}),
        json!({"type": "completed", "run_id": "run-a", "duration_ms": 1500, "output": "copied 12 files"}),
        json!({"type": "started", "run_id": "run-b", "host": "db-1"}),
        json!({"type": "completed", "run_id": "run-b", "exit_code": 3, "output": "disk full"}),
    ] {
        app.post("/v1/monitors/backup/events", event).await;
    }
    let backup = tokio::task::spawn_blocking({
        let url = app.url("/monitors/acme/backup");
        move || dump_dom(&browser, &url)
    })
    .await
    .unwrap();
    assert!(backup.contains("cron 30 2 * * * (Europe/Berlin)"), "{backup}");
    assert!(backup.contains("id=\"expected\"") && backup.contains("2026-03-02 01:30:00 UTC"), "{backup}");
    assert!(backup.contains("<table id=\"runs\">"), "{backup}");
    assert!(backup.contains("data-status=\"completed\"") && backup.contains("data-status=\"failed\""), "{backup}");
    for text in ["run-a", "1.5 s", "copied 12 files", "disk full", "db-1"] {
        assert!(backup.contains(text), "{text}: {backup}");
    }
}
