//! The dashboard in a real browser (headless Chromium), signed in as an operator: every monitor
//! of every client, with its status, last heartbeat, host and active alerts.

use std::path::PathBuf;

use serde_json::json;
use telltale_domain::users::Role;

use crate::browser::{Browser, chromium};
use crate::common::*;

/// Signs in through the sign-in page, then returns the DOM of each page of `urls`.
fn signed_in_doms(browser: &PathBuf, base: &str, name: &str, password: &str, urls: &[String]) -> Vec<String> {
    let mut browser = Browser::launch(browser);
    browser.goto(&format!("{base}/"));
    assert!(browser.url().contains("/signin?next="), "the dashboard asks to sign in first: {}", browser.url());
    browser.submit("#signin", &[("name", name), ("password", password)]);
    urls.iter()
        .map(|url| {
            browser.goto(url);
            browser.dom()
        })
        .collect()
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
    app.user("root", None, Role::Operator, "a long enough password").await;

    let urls = vec![app.url("/"), app.url("/monitors/acme/log-rotate")];
    let doms = tokio::task::spawn_blocking({
        let (browser, base) = (browser.clone(), app.base.clone());
        move || signed_in_doms(&browser, &base, "root", "a long enough password", &urls)
    })
    .await
    .unwrap();
    let (dom, detail) = (&doms[0], &doms[1]);
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
        let (base, urls) = (app.base.clone(), vec![app.url("/monitors/acme/backup")]);
        move || signed_in_doms(&browser, &base, "root", "a long enough password", &urls).remove(0)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_an_icon_and_favicon_ico_is_served_rather_than_a_404() {
    let app = TestApp::spawn().await;
    let icon = app.http.get(app.url("/favicon.ico")).send().await.unwrap();
    assert_eq!(icon.status(), reqwest::StatusCode::OK);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    assert!(icon.text().await.unwrap().starts_with("<svg"));
    let signin = app.http.get(app.url("/signin")).send().await.unwrap().text().await.unwrap();
    assert!(signin.contains("<link rel=\"icon\" type=\"image/svg+xml\" href=\"data:image/svg+xml,"), "{signin}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitors_page_says_its_last_run_and_when_it_is_next_expected_and_alerts() {
    let app = TestApp::spawn().await;
    app.create_monitor("sync", "30m", "5m").await;
    let page = app.dashboard("/monitors/acme/sync").await;
    assert!(page.contains("Last run: ") && page.contains("none yet"), "{page}");
    assert!(page.contains("nothing expected yet"), "no deadline before the first signal: {page}");

    app.post("/v1/monitors/sync/events", json!({"type": "started", "run_id": "r1"})).await;
    app.advance(secs(90)).await;
    app.post("/v1/monitors/sync/events", json!({"type": "completed", "run_id": "r1", "exit_code": 0})).await;
    app.advance(secs(60)).await;
    let page = app.dashboard("/monitors/acme/sync").await;
    // Finished at 12:01:30, now 12:02:30; next expected 12:31:30, alerted at 12:36:30.
    let last_run = page.split("id=\"last-run\"").nth(1).unwrap().split("</p>").next().unwrap().to_string();
    for text in ["completed", "exit 0", "took 1 min 30 s", "1 min ago"] {
        assert!(last_run.contains(text), "{text}: {last_run}");
    }
    let expected = page.split("id=\"expected\"").nth(1).unwrap().split("</p>").next().unwrap().to_string();
    assert!(
        expected.contains("Next expected: ")
            && expected.contains("2026-03-01 12:31:30 UTC")
            && expected.contains("(in 29 min)"),
        "{expected}"
    );
    assert!(
        expected.contains("Alert if silent by: ")
            && expected.contains("2026-03-01 12:36:30 UTC")
            && expected.contains("(in 34 min)"),
        "{expected}"
    );
    assert!(page.contains("id=\"upcoming\"") && page.contains("2026-03-01 13:01:30 UTC"), "the times after it: {page}");

    // A finish without a start: its start is unknown, not "never".
    app.post("/v1/monitors/sync/events", json!({"type": "failed", "run_id": "r2", "exit_code": 2})).await;
    let page = app.dashboard("/monitors/acme/sync").await;
    let row = page.split("<code>r2</code>").nth(1).unwrap().split("</tr>").next().unwrap().to_string();
    assert!(row.contains("unknown") && !row.contains("never"), "{row}");
}

/// A browser that asks for a page that is not there gets a page that says so, never a JSON
/// error; the API's unknown paths stay JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_is_not_there_is_an_html_404_and_the_api_stays_json() {
    let app = TestApp::spawn().await;
    app.user("root", None, telltale_domain::users::Role::Operator, "root's long password").await;
    let (cookie, _) = app.sign_in("root", "root's long password").await;
    for path in ["/monitors/acme/nosuch", "/hosts/acme/nowhere", "/hosts", "/monitors"] {
        let response = app
            .http
            .get(app.url(path))
            .header("cookie", &cookie)
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
        assert!(response.text().await.unwrap().contains("Not found"), "{path}");
    }
    for (path, accept) in [("/v1/nothing", "text/html"), ("/hosts", "application/json")] {
        let response = app.http.get(app.url(path)).header("accept", accept).send().await.unwrap();
        assert_eq!(response.status(), 404);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "route_not_found", "{path}");
    }
}
