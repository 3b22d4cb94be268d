//! Host correlation through the real application: when most monitors of one host fall silent
//! together, one host alert is opened and notified, the monitors' own alerts are recorded but
//! not sent, and everything resolves together when the host comes back.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(10);

async fn beat_from(app: &TestApp, slug: &str, host: &str) {
    let response = app.post(&format!("/v1/monitors/{slug}/events"), json!({"type": "heartbeat", "host": host})).await;
    assert!(response.status().is_success(), "beat for {slug}");
}

async fn outbox_states(app: &TestApp) -> Vec<(String, String, String)> {
    let rows = sqlx::query("SELECT slug, transition, state FROM rm_outbox ORDER BY position, slug")
        .fetch_all(&app.app.read.pool)
        .await
        .unwrap();
    use sqlx::Row;
    rows.iter()
        .map(|r| (r.try_get("slug").unwrap(), r.try_get("transition").unwrap(), r.try_get("state").unwrap()))
        .collect()
}

/// Five monitors on web-1 and a webhook; all beat at t0.
async fn five_on_one_host() -> (TestApp, Receiver) {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    app.add_webhook("ops", &receiver.url).await;
    for i in 1..=5 {
        app.create_monitor(&format!("job-{i}"), "1m", "30s").await;
        beat_from(&app, &format!("job-{i}"), "web-1").await;
    }
    app.settle().await;
    (app, receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_monitors_all_fall_silent_is_one_alert_and_one_recovery() {
    let (app, mut receiver) = five_on_one_host().await;
    app.advance(secs(90)).await;

    let hosts: Value = app.get("/v1/hosts").await.json().await.unwrap();
    let host = &hosts["hosts"][0];
    assert_eq!(
        (host["host"].as_str(), host["status"].as_str(), host["silent"].as_u64()),
        (Some("web-1"), Some("silent"), Some(5))
    );
    assert_eq!(hosts["rules"]["min_silent"], 3);

    let open = app.alerts("open").await;
    assert_eq!(open.len(), 6, "five monitor alerts and one host alert are recorded: {open:#?}");
    let host_alert = open.iter().find(|a| a["kind"] == "host").expect("a host alert");
    assert_eq!(host_alert["cause"], "host_silent");
    assert_eq!(host_alert["host"], "web-1");
    assert_eq!(host_alert["monitor"], "host:web-1");
    assert_eq!(host_alert["opened_at"], "2026-03-01T12:01:30Z");
    assert_eq!(host_alert["monitors"], json!(["job-1", "job-2", "job-3", "job-4", "job-5"]));
    for monitor_alert in open.iter().filter(|a| a["kind"] == "monitor") {
        assert_eq!(monitor_alert["inhibited_by"], host_alert["id"], "{monitor_alert}");
    }

    // One notification: the host's.
    let opened = receiver.next(WAIT).await.expect("the host alert is delivered");
    assert_eq!(opened.body["kind"], "host");
    assert_eq!(opened.body["host"], "web-1");
    assert_eq!(opened.body["monitor"], "host:web-1");
    assert_eq!(opened.body["monitor_name"], "Host web-1");
    assert_eq!(opened.body["cause"], "host_silent");
    assert_eq!(opened.body["transition"], "opened");
    assert_eq!(opened.body["alert_id"], host_alert["id"]);
    assert_eq!(opened.body["monitors"], json!(["job-1", "job-2", "job-3", "job-4", "job-5"]));
    assert_eq!(opened.body["link"], format!("{}/hosts/acme/web-1", app.base));
    assert_eq!(opened.idempotency_key, opened.body["notification_id"].as_str().unwrap());
    // The hold has long passed: nothing else is coming.
    app.advance(secs(5)).await;
    app.outbox_settled().await;
    assert!(receiver.drain().is_empty(), "the monitors' own alerts are not sent");
    let states = outbox_states(&app).await;
    assert_eq!(states.iter().filter(|(_, _, s)| s == "inhibited").count(), 5, "{states:?}");

    // The host comes back: every monitor beats again.
    for i in 1..=5 {
        beat_from(&app, &format!("job-{i}"), "web-1").await;
    }
    app.settle().await;
    let resolved = receiver.next(WAIT).await.expect("the host's recovery is delivered");
    assert_eq!(
        (resolved.body["transition"].as_str(), resolved.body["kind"].as_str()),
        (Some("resolved"), Some("host"))
    );
    assert_eq!(resolved.body["alert_id"], host_alert["id"]);
    assert_eq!(resolved.body["duration_ms"], 5_000);
    // Beating on past the return window: nothing more is said.
    for _ in 0..7 {
        app.advance(secs(60)).await;
        for i in 1..=5 {
            beat_from(&app, &format!("job-{i}"), "web-1").await;
        }
    }
    app.outbox_settled().await;
    assert!(receiver.drain().is_empty(), "no per-monitor recovery either");
    assert!(app.alerts("open").await.is_empty());
    let host: Value = app.get("/v1/hosts/web-1").await.json().await.unwrap();
    assert_eq!(host["status"], "up");
    assert_eq!(host["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(host["alerts"][0]["state"], "resolved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_monitor_of_a_host_dying_alone_is_alerted_after_the_hold() {
    let (app, mut receiver) = five_on_one_host().await;
    for step in 1..=3 {
        app.advance(secs(30)).await;
        if step % 2 == 0 {
            for i in 1..=4 {
                beat_from(&app, &format!("job-{i}"), "web-1").await;
            }
        }
    }
    // job-5 missed at 90 s; its notification waits the hold (1 s) for a host alert that does
    // not come, then goes out.
    app.settle().await;
    let open = app.alerts("open").await;
    assert_eq!(open.len(), 1);
    assert_eq!((open[0]["monitor"].as_str(), open[0]["kind"].as_str()), (Some("job-5"), Some("monitor")));
    assert!(open[0].get("inhibited_by").is_none());
    assert!(receiver.next(Duration::from_millis(300)).await.is_none(), "held for a moment");
    app.advance(secs(1)).await;
    let opened = receiver.next(WAIT).await.expect("sent once the hold is over");
    assert_eq!((opened.body["monitor"].as_str(), opened.body["kind"].as_str()), (Some("job-5"), Some("monitor")));
    assert_eq!(opened.body["host"], "web-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_not_silence_and_is_never_inhibited() {
    let (app, mut receiver) = five_on_one_host().await;
    // job-1's failures page at once (no retry window), so that it is sent before the host alert.
    let patched = app
        .http
        .patch(app.url("/v1/monitors/job-1"))
        .bearer_auth(&app.key)
        .json(&json!({"alert_policy": {"retry_window": "0s"}}))
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success());
    // job-1 reports a failure just before the host goes away.
    let failed =
        app.post("/v1/monitors/job-1/events", json!({"type": "failed", "exit_code": 2, "host": "web-1"})).await;
    assert!(failed.status().is_success());
    app.settle().await;
    let first = receiver.next(WAIT).await.expect("the failure is sent at once");
    assert_eq!((first.body["monitor"].as_str(), first.body["cause"].as_str()), (Some("job-1"), Some("failed")));
    app.advance(secs(100)).await;
    // job-2..5 fell silent (4 of 5): a host alert; job-1's failure stays its own alert.
    let open = app.alerts("open").await;
    let host_alert = open.iter().find(|a| a["kind"] == "host").expect("a host alert");
    assert_eq!(host_alert["monitors"], json!(["job-2", "job-3", "job-4", "job-5"]));
    let failure = open.iter().find(|a| a["cause"] == "failed").unwrap();
    assert!(failure.get("inhibited_by").is_none());
    app.advance(secs(2)).await;
    app.outbox_settled().await;
    let sent = receiver.drain();
    assert_eq!(sent.len(), 1, "only the host alert: {:?}", sent.iter().map(|r| &r.body["monitor"]).collect::<Vec<_>>());
    assert_eq!(sent[0].body["kind"], "host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_alert_reaches_the_channels_that_hear_its_monitors() {
    let app = TestApp::spawn().await;
    let mut db_team = Receiver::start().await;
    let mut web_team = Receiver::start().await;
    for (name, url, tag) in [("db", &db_team.url, "db"), ("web", &web_team.url, "web")] {
        let response = app
            .post("/v1/channels", json!({"name": name, "kind": "webhook", "config": {"url": url}, "tags": [tag]}))
            .await;
        assert_eq!(response.status().as_u16(), 201);
    }
    for i in 1..=3 {
        let response = app
            .post(
                "/v1/monitors",
                json!({"slug": format!("pg-{i}"), "schedule": {"every": "1m"}, "grace": "30s", "tags": ["db"]}),
            )
            .await;
        assert_eq!(response.status().as_u16(), 201);
        beat_from(&app, &format!("pg-{i}"), "db-1").await;
    }
    app.advance(secs(90)).await;
    let opened = db_team.next(WAIT).await.expect("the db team hears of its host");
    assert_eq!((opened.body["kind"].as_str(), opened.body["tags"].clone()), (Some("host"), json!(["db"])));
    app.advance(secs(2)).await;
    app.outbox_settled().await;
    assert!(web_team.drain().is_empty(), "the web team does not");
    assert!(db_team.drain().is_empty(), "and the db team hears nothing else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_and_their_alerts_are_listed_and_validated() {
    let (app, _receiver) = five_on_one_host().await;
    app.advance(secs(90)).await;
    let only_hosts: Value = app.get("/v1/alerts?kind=host").await.json().await.unwrap();
    assert_eq!(only_hosts["alerts"].as_array().unwrap().len(), 1);
    let only_monitors: Value = app.get("/v1/alerts?kind=monitor").await.json().await.unwrap();
    assert_eq!(only_monitors["alerts"].as_array().unwrap().len(), 5);
    let of_host: Value = app.get("/v1/alerts?host=web-1").await.json().await.unwrap();
    assert_eq!(of_host["alerts"][0]["cause"], "host_silent");
    let bad = app.get("/v1/alerts?kind=cluster").await;
    assert_eq!(bad.status().as_u16(), 422);
    let missing = app.get("/v1/hosts/nowhere").await;
    assert_eq!(missing.status().as_u16(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "host_not_found");
    // Another client sees none of it.
    let other = app.key_for("globex", &telltale_domain::client::Scope::DEFAULT).await;
    let theirs: Value = app.get_as(&other, "/v1/hosts").await.json().await.unwrap();
    assert!(theirs["hosts"].as_array().unwrap().is_empty());
    assert_eq!(app.get_as(&other, "/v1/hosts/web-1").await.status().as_u16(), 404);
    // The dashboard shows the host and its alert.
    let page = app.dashboard("/").await;
    assert!(page.contains("data-host=\"web-1\" data-status=\"silent\""), "{page}");
    let host_page = app.dashboard("/hosts/acme/web-1").await;
    assert!(host_page.contains("inhibited by the host alert"), "{host_page}");
    // Signed out, the host page is the sign-in page, not the host.
    let signed_out = app.http.get(app.url("/hosts/acme/web-1")).send().await.unwrap().text().await.unwrap();
    assert!(!signed_out.contains("inhibited by the host alert"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_outage_across_a_restart_releases_the_laggards_and_replays_identically() {
    let (app, mut receiver) = five_on_one_host().await;
    app.advance(secs(90)).await;
    let host_alert = receiver.next(WAIT).await.expect("the host alert");
    assert_eq!(host_alert.body["kind"], "host");

    // telltale restarts while the host is down; nothing is announced again.
    let (dir, clock, _) = app.stop().await;
    clock.advance(secs(30));
    let app = TestApp::spawn_with(Options { dir: Some(dir), clock: Some(clock), port: 0 }).await;
    app.settle().await;
    assert_eq!(app.alerts("open").await.len(), 6);

    // The host comes back, but job-4 and job-5 do not.
    for i in 1..=3 {
        beat_from(&app, &format!("job-{i}"), "web-1").await;
    }
    app.settle().await;
    let resolved = receiver.next(WAIT).await.expect("the host's recovery");
    assert_eq!(
        (resolved.body["kind"].as_str(), resolved.body["transition"].as_str()),
        (Some("host"), Some("resolved"))
    );
    // Five minutes later (the others beating on), the two laggards are alerted on their own.
    for _ in 0..5 {
        app.advance(secs(60)).await;
        for i in 1..=3 {
            beat_from(&app, &format!("job-{i}"), "web-1").await;
        }
    }
    app.advance(secs(2)).await;
    app.outbox_settled().await;
    let mut released: Vec<String> = receiver
        .drain()
        .into_iter()
        .map(|r| {
            assert_eq!((r.body["kind"].as_str(), r.body["transition"].as_str()), (Some("monitor"), Some("opened")));
            r.body["monitor"].as_str().unwrap().to_string()
        })
        .collect();
    released.sort();
    assert_eq!(released, ["job-4", "job-5"]);
    let alerts = app.alerts("open").await;
    assert_eq!(alerts.len(), 2);
    assert!(alerts.iter().all(|a| a["released_at"].is_string() && a["inhibited_by"].is_string()), "{alerts:?}");

    // Replaying the host's recorded inputs derives exactly what was recorded.
    let report: Value = app.post("/v1/hosts/web-1/replay", json!({})).await.json().await.unwrap();
    assert_eq!(report["identical"], true, "{report:#}");
    assert_eq!(report["recorded_alerts"], 1);
    let kinds: Vec<&str> =
        report["rows"].as_array().unwrap().iter().map(|r| r["recorded"]["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "MonitorAlertReleased").count(), 2, "{kinds:?}");
    assert_eq!(app.post("/v1/hosts/nowhere/replay", json!({})).await.status().as_u16(), 404);

    // `telltale replay --host` (and `--monitor`) on the same log, while the server runs, answer
    // what the API answers.
    let to = report["to"].as_str().unwrap().to_string();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_telltale"))
            .args(args)
            .args(["--client", "acme", "--to", &to])
            .env("TELLTALE_DATABASE_URL", format!("sqlite://{}/telltale.db", app.dir.path().display()))
            .env("TELLTALE_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, json, err) = cli(&["replay", "--host", "web-1", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let from_cli: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(from_cli, report, "the CLI's host replay is the API's");
    let (code, table, _) = cli(&["replay", "--host", "web-1"]);
    assert_eq!(code, Some(0));
    assert!(table.contains("HostAlertOpened") && table.trim_end().ends_with("identical"), "{table}");
    let (code, table, err) = cli(&["replay", "--monitor", "job-4"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(table.contains("AlertOpened (missed)") && table.trim_end().ends_with("identical"), "{table}");
    let (code, _, err) = cli(&["replay", "--host", "nowhere"]);
    assert_eq!((code, err.trim()), (Some(1), "error: no host `nowhere`"));
    let (code, _, err) = cli(&["replay", "--host", "web-1", "--monitor", "job-4"]);
    assert_eq!(code, Some(2), "one or the other: {err}");
}

/// (monitor, cause, transition) of each notification, sorted (different alerts may go out in
/// either order).
fn said(received: &[Received]) -> Vec<(String, String, String)> {
    let mut said: Vec<(String, String, String)> = received
        .iter()
        .map(|r| {
            let text = |key: &str| r.body[key].as_str().unwrap_or_default().to_string();
            (text("monitor"), text("cause"), text("transition"))
        })
        .collect();
    said.sort();
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_down_three_times_in_an_hour_pages_for_the_host_not_for_each_flapping_monitor() {
    // Default alert policy everywhere: flapping on (a fifth change of state within an hour opens
    // one `flapping` alert). web-1 has five monitors that go down together three times; on
    // web-2, `solo` goes down three times alone while its two neighbours beat on.
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    app.add_webhook("ops", &receiver.url).await;
    let web1: Vec<String> = (1..=5).map(|i| format!("job-{i}")).collect();
    for slug in web1.iter().map(String::as_str).chain(["solo", "ok-1", "ok-2"]) {
        app.create_monitor(slug, "5m", "1m").await;
    }
    let beat_all = |slugs: Vec<(String, &'static str)>| {
        let app = &app;
        async move {
            for (slug, host) in slugs {
                beat_from(app, &slug, host).await;
            }
        }
    };
    let everyone = || {
        web1.iter()
            .map(|s| (s.clone(), "web-1"))
            .chain([("solo".to_string(), "web-2"), ("ok-1".into(), "web-2"), ("ok-2".into(), "web-2")])
            .collect::<Vec<_>>()
    };
    let neighbours = || vec![("ok-1".to_string(), "web-2"), ("ok-2".to_string(), "web-2")];
    beat_all(everyone()).await;
    app.settle().await;

    let mut host_alerts = Vec::new();
    for round in 1..=3 {
        // 5 minutes on, solo's neighbours beat; a minute later (the grace) web-1 and solo miss.
        app.advance(secs(300)).await;
        beat_all(neighbours()).await;
        app.advance(secs(60)).await;
        let open = app.alerts("open").await;
        let host_alert = open.iter().find(|a| a["kind"] == "host").expect("a host alert").clone();
        assert_eq!(host_alert["monitors"], json!(web1), "round {round}");
        // The hold passes: whatever was not inhibited goes out.
        app.advance(secs(2)).await;
        app.outbox_settled().await;
        let sent = said(&receiver.drain());
        let solo = if round < 3 { "missed" } else { "flapping" };
        assert_eq!(
            sent,
            [
                ("host:web-1".to_string(), "host_silent".to_string(), "opened".to_string()),
                ("solo".into(), solo.into(), "opened".into()),
            ],
            "round {round}: the host alert, and solo on its own (its third outage is flapping)"
        );
        if round == 3 {
            // Every web-1 monitor flaps too, with its silence: recorded, inhibited with it.
            let flapping: Vec<&Value> = open.iter().filter(|a| a["cause"] == "flapping").collect();
            let mut slugs: Vec<&str> = flapping.iter().map(|a| a["monitor"].as_str().unwrap()).collect();
            slugs.sort();
            assert_eq!(slugs, ["job-1", "job-2", "job-3", "job-4", "job-5", "solo"], "{open:#?}");
            let host: Value = app.get("/v1/hosts/web-1").await.json().await.unwrap();
            for member in host["monitors"].as_array().unwrap() {
                let own = open.iter().find(|a| a["monitor"] == member["slug"] && a["cause"] == "flapping").unwrap();
                assert_eq!(member["flapping_alert_id"], own["id"], "the host shows it with the silence: {member}");
            }
            for alert in flapping {
                if alert["monitor"] == "solo" {
                    assert!(alert.get("inhibited_by").is_none(), "{alert}");
                    assert_eq!(alert["notified"], true, "{alert}");
                } else {
                    assert_eq!(alert["inhibited_by"], host_alert["id"], "{alert}");
                    assert_eq!(alert["notified"], false, "{alert}");
                }
            }
        }
        host_alerts.push(host_alert);
        // The host (and solo) come back.
        beat_all(everyone()).await;
        app.settle().await;
        app.outbox_settled().await;
        let sent = said(&receiver.drain());
        let mut expected = vec![("host:web-1".to_string(), "host_silent".to_string(), "resolved".to_string())];
        if round < 3 {
            expected.push(("solo".into(), "missed".into(), "resolved".into()));
        }
        assert_eq!(sent, expected, "round {round}: solo's third silence was held by its flapping");
    }

    // Everybody beats on for more than the flapping window: the flapping alerts resolve, and
    // only solo's resolution is sent (nobody was told of the others).
    for _ in 0..14 {
        app.advance(secs(300)).await;
        beat_all(everyone()).await;
    }
    app.settle().await;
    app.outbox_settled().await;
    assert_eq!(said(&receiver.drain()), [("solo".to_string(), "flapping".to_string(), "resolved".to_string())]);
    assert!(app.alerts("open").await.is_empty());
    let states = outbox_states(&app).await;
    let inhibited: Vec<&(String, String, String)> = states.iter().filter(|(_, _, s)| s == "inhibited").collect();
    assert_eq!(inhibited.len(), 5 * 3, "two missed and one flapping opening per web-1 monitor: {states:?}");
    assert!(states.iter().all(|(_, _, s)| s == "inhibited" || s == "delivered"), "{states:?}");

    // Replaying web-1's recorded inputs derives exactly what was recorded.
    let report: Value = app.post("/v1/hosts/web-1/replay", json!({})).await.json().await.unwrap();
    assert_eq!(report["identical"], true, "{report:#}");
    assert_eq!(report["recorded_alerts"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_still_silent_after_its_host_came_back_the_third_time_is_released_as_flapping() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    app.add_webhook("ops", &receiver.url).await;
    let slugs: Vec<String> = (1..=5).map(|i| format!("job-{i}")).collect();
    for slug in &slugs {
        app.create_monitor(slug, "5m", "1m").await;
        beat_from(&app, slug, "web-1").await;
    }
    app.settle().await;
    for round in 1..=3 {
        app.advance(secs(360)).await;
        app.advance(secs(2)).await;
        // The host comes back; the third time, job-5 does not.
        let back = if round < 3 { &slugs[..] } else { &slugs[..4] };
        for slug in back {
            beat_from(&app, slug, "web-1").await;
        }
        app.settle().await;
    }
    app.outbox_settled().await;
    let hosts_only = said(&receiver.drain());
    assert_eq!(hosts_only.len(), 6, "three host alerts and their recoveries: {hosts_only:?}");
    assert!(hosts_only.iter().all(|(monitor, _, _)| monitor == "host:web-1"), "{hosts_only:?}");

    // job-5 stays silent for the return window (its neighbours beating on): it is on its own.
    // Its silence is held by its flapping, so what pages is its flapping alert, released.
    for _ in 0..6 {
        app.advance(secs(60)).await;
        for slug in &slugs[..4] {
            beat_from(&app, slug, "web-1").await;
        }
    }
    app.outbox_settled().await;
    assert_eq!(said(&receiver.drain()), [("job-5".to_string(), "flapping".to_string(), "opened".to_string())]);
    let alerts = app.alerts("open").await;
    let flapping = alerts.iter().find(|a| a["monitor"] == "job-5" && a["cause"] == "flapping").unwrap();
    assert!(flapping["released_at"].is_string() && flapping["inhibited_by"].is_string(), "{flapping}");
    assert_eq!(flapping["notified"], true);
}
