//! Cron schedules, auto-provisioning and replay through the real API, with an injected clock.

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use telltale::clock::Clock as _;
use telltale::clock::ManualClock;
use telltale_domain::client::Scope;

use crate::common::*;

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn app_at(at: &str) -> TestApp {
    TestApp::spawn_with(Options { clock: Some(ManualClock::new(utc(at))), ..Options::default() }).await
}

async fn advance_to(app: &TestApp, at: &str) {
    let by = utc(at) - app.clock.now();
    app.advance(by).await;
}

async fn monitor(app: &TestApp, slug: &str) -> Value {
    app.get(&format!("/v1/monitors/{slug}")).await.json().await.unwrap()
}

async fn history_types(app: &TestApp, slug: &str) -> Vec<String> {
    let page: Value = app.get(&format!("/v1/monitors/{slug}/events?limit=500")).await.json().await.unwrap();
    let mut types: Vec<String> =
        page["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_string()).collect();
    types.reverse();
    types
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c01_a_daily_job_in_the_skipped_hour_is_expected_right_after_the_jump() {
    // Europe/Berlin, `30 2 * * *`, grace 1 h; the clocks jump 02:00 → 03:00 on 2025-03-30.
    let app = app_at("2025-03-29T01:30:10Z").await;
    let created = app
        .post(
            "/v1/monitors",
            json!({"slug": "backup", "schedule": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"}, "grace": "1h"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    app.beat("backup").await;
    let m = monitor(&app, "backup").await;
    assert_eq!(
        (m["schedule"]["kind"].as_str(), m["schedule"]["timezone"].as_str()),
        (Some("cron"), Some("Europe/Berlin"))
    );
    let next: Vec<&str> = m["next_expected"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(
        next,
        [
            "2025-03-30T01:00:00Z",
            "2025-03-31T00:30:00Z",
            "2025-04-01T00:30:00Z",
            "2025-04-02T00:30:00Z",
            "2025-04-03T00:30:00Z"
        ]
    );

    // 03:30 local (01:30Z): late, inside grace, nobody paged.
    advance_to(&app, "2025-03-30T01:30:00Z").await;
    assert_eq!(monitor(&app, "backup").await["status"], "late");
    assert!(app.alerts("all").await.is_empty());
    // 04:00 local (02:00Z): the slot is skipped, and one alert opens.
    advance_to(&app, "2025-03-30T02:00:00Z").await;
    assert_eq!(monitor(&app, "backup").await["status"], "down");
    let alerts = app.alerts("open").await;
    assert_eq!((alerts.len(), alerts[0]["opened_at"].as_str()), (1, Some("2025-03-30T02:00:00Z")));
    let skipped: Value = app.get("/v1/monitors/backup/events?type=RunSkipped").await.json().await.unwrap();
    assert_eq!(skipped["events"][0]["data"]["expected_at"], "2025-03-30T01:00:00Z");
    // The next slot is skipped too and recorded, but nobody is paged twice for one outage.
    advance_to(&app, "2025-03-31T01:30:00Z").await;
    assert_eq!(app.alerts("all").await.len(), 1);
    assert_eq!(history_types(&app, "backup").await.iter().filter(|t| *t == "RunSkipped").count(), 2);
    // A run resolves it, and the next expectation is the next 02:30 local.
    app.beat("backup").await;
    app.settle().await;
    assert_eq!(app.alerts("open").await.len(), 0);
    assert_eq!(monitor(&app, "backup").await["next_expected"][0], "2025-04-01T00:30:00Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c02_a_fixed_time_job_in_the_repeated_hour_is_expected_once() {
    let app = app_at("2023-10-28T00:00:05Z").await;
    let body =
        json!({"slug": "restore", "schedule": {"cron": "0 2 * * *", "timezone": "Europe/Berlin"}, "grace": "30m"});
    assert_eq!(app.post("/v1/monitors", body).await.status(), StatusCode::CREATED);
    app.beat("restore").await;
    advance_to(&app, "2023-10-29T00:00:20Z").await;
    app.beat("restore").await;
    assert_eq!(monitor(&app, "restore").await["next_expected"][0], "2023-10-30T01:00:00Z");
    // No second expectation in the repeated hour: nothing late at 01:00Z, no alert at 01:30Z.
    advance_to(&app, "2023-10-29T01:45:00Z").await;
    assert_eq!(monitor(&app, "restore").await["status"], "up");
    assert!(app.alerts("all").await.is_empty());
    // A client that double-fires in the repeated hour is simply recorded.
    app.beat("restore").await;
    assert!(app.alerts("all").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_or_malformed_schedules_are_refused_with_a_reason_and_nothing_is_kept() {
    let app = TestApp::spawn().await;
    let head = app.app.store.head().await.unwrap();
    for (schedule, says) in [
        (json!({"cron": "0 0 30 2 *"}), "never"),
        (json!({"cron": "* * 31 2 *"}), "never"),
        (json!({"cron": "0 0 31 4 *"}), "never"),
        (json!({"cron": "*/0 * * * *"}), "step"),
        (json!({"cron": "0 * * * * *"}), "five fields"),
        (json!({"cron": "45 12 * * TUE,THU *"}), "five fields"),
        (json!({"cron": "61 * * * *"}), "minute"),
        (json!({"cron": "0 2 * * *", "timezone": "Europe/Berln"}), "Europe/Berln"),
        (json!({"cron": "0 2 * * *", "every": "1h"}), "not both"),
        (json!({"every": "1h", "timezone": "UTC"}), "cron"),
        (json!({}), "every"),
    ] {
        let response = app.post("/v1/monitors", json!({"slug": "bad", "schedule": schedule})).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{schedule}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "invalid_schedule", "{schedule}");
        assert!(body["message"].as_str().unwrap().contains(says), "{schedule}: {body}");
    }
    // Don't over-reject (C22): the 31st of every month that has one.
    let ok = app.post("/v1/monitors", json!({"slug": "month-end", "schedule": {"cron": "0 0 31 * *"}})).await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    let m: Value = ok.json().await.unwrap();
    assert_eq!(m["next_expected"][0], "2026-03-31T00:00:00Z");
    assert_eq!(m["next_expected"][1], "2026-05-31T00:00:00Z");
    assert_eq!(app.app.store.head().await.unwrap(), head + 1, "only the valid monitor was recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_event_of_an_unknown_slug_creates_it_only_for_a_key_allowed_to() {
    let app = TestApp::spawn().await;
    let plain = app.key_for("acme", &[Scope::Ingest]).await;
    let provisioner = app.key_for("acme", &[Scope::Ingest, Scope::Provision]).await;
    let head = app.app.store.head().await.unwrap();

    let refused = app.post_as(&plain, "/v1/monitors/new-job/events", json!({"type": "started"})).await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "monitor_not_found");
    assert!(body["message"].as_str().unwrap().contains("POST /v1/monitors"), "{body}");
    let with_spec = json!({"type": "heartbeat", "monitor": {"schedule": {"every": "5m"}}});
    let forbidden = app.post_as(&plain, "/v1/monitors/new-job/events", with_spec).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let bad_spec = json!({"type": "started", "monitor": {"schedule": {"cron": "0 0 30 2 *"}}});
    let invalid = app.post_as(&provisioner, "/v1/monitors/new-job/events", bad_spec).await;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = invalid.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().starts_with("monitor.schedule.cron: "), "the field's whole path: {body}");
    let zero = json!({"type": "started", "monitor": {"schedule": {"every": "0s"}}});
    let body: Value = app.post_as(&provisioner, "/v1/monitors/new-job/events", zero).await.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().starts_with("monitor.schedule.every: "), "{body}");
    assert_eq!(app.app.store.head().await.unwrap(), head, "nothing was recorded");

    // With defaults (every 1d, grace 1h)...
    let created = app.post_as(&provisioner, "/v1/monitors/plain-job/heartbeat", json!({})).await;
    assert_eq!(created.status(), StatusCode::OK);
    let m = monitor(&app, "plain-job").await;
    assert_eq!(
        (m["schedule"]["every"].as_str(), m["grace"].as_str(), m["status"].as_str()),
        (Some("1d"), Some("1h"), Some("up"))
    );
    // ...or with the schedule the event carries (check-in upsert), which later events update.
    let spec = json!({"type": "started", "run_id": "r1",
                      "monitor": {"schedule": {"cron": "0 4 * * *", "timezone": "America/New_York"}, "grace": "20m", "max_runtime": "1h"}});
    let ack: Value = app.post_as(&provisioner, "/v1/monitors/nightly/events", spec).await.json().await.unwrap();
    assert_eq!((ack["type"].as_str(), ack["run_id"].as_str()), (Some("RunStarted"), Some("r1")));
    let m = monitor(&app, "nightly").await;
    assert_eq!((m["schedule"]["cron"].as_str(), m["max_runtime"].as_str()), (Some("0 4 * * *"), Some("1h")));
    let update = json!({"type": "completed", "run_id": "r1", "monitor": {"grace": "45m"}});
    assert_eq!(app.post_as(&provisioner, "/v1/monitors/nightly/events", update).await.status(), StatusCode::OK);
    let m = monitor(&app, "nightly").await;
    assert_eq!((m["grace"].as_str(), m["schedule"]["cron"].as_str()), (Some("45m"), Some("0 4 * * *")));
    // An admin key alone does not auto-create: a typo stays a 404.
    let typo = app.post("/v1/monitors/nightyl/heartbeat", json!({})).await;
    assert_eq!(typo.status(), StatusCode::NOT_FOUND);
}

/// A small deterministic generator, so the scenario is the same on every run.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_live_history_with_restarts_derives_what_was_recorded() {
    for seed in [7u64, 42, 2026] {
        let mut rng = Lcg(seed);
        let mut app = TestApp::spawn().await;
        app.post(
            "/v1/monitors",
            json!({"slug": "job", "schedule": {"every": "10s"}, "grace": "5s", "max_runtime": "20s"}),
        )
        .await;
        let mut run = 0;
        for _ in 0..60 {
            match rng.next(10) {
                0..=2 => app.advance(millis(1 + rng.next(16_000) as i64)).await,
                3 => {
                    app.beat("job").await;
                }
                4 => {
                    run += 1;
                    app.post("/v1/monitors/job/events", json!({"type": "started", "run_id": format!("r{run}")})).await;
                }
                5 => {
                    let exit_code = [0, 0, 2][rng.next(3) as usize];
                    let body = json!({"type": "completed", "run_id": format!("r{}", rng.next(run + 1)), "exit_code": exit_code});
                    app.post("/v1/monitors/job/events", body).await;
                }
                6 => {
                    app.post("/v1/monitors/job/events", json!({"type": "failed"})).await;
                }
                7 => {
                    let grace = format!("{}s", rng.next(8));
                    app.http
                        .patch(app.url("/v1/monitors/job"))
                        .bearer_auth(&app.key)
                        .json(&json!({"grace": grace, "schedule": {"every": format!("{}s", 5 + rng.next(20))}}))
                        .send()
                        .await
                        .unwrap();
                }
                8 => {
                    let path = if rng.next(2) == 0 { "/v1/monitors/job/pause" } else { "/v1/monitors/job/resume" };
                    app.post(path, json!({})).await;
                }
                _ => {
                    // A clean restart, after telltale was away for a while.
                    let key = app.key.clone();
                    let (dir, clock, _) = app.stop().await;
                    clock.advance(millis(rng.next(30_000) as i64));
                    app = TestApp::spawn_with(Options { dir: Some(dir), clock: Some(clock), port: 0 }).await;
                    app.key = key;
                }
            }
        }
        app.settle().await;
        let now = app.clock.now();
        let report: Value = app.post("/v1/monitors/job/replay", json!({"to": now})).await.json().await.unwrap();
        assert_eq!(report["identical"], true, "seed {seed}: {report:#}");
        assert!(report["recorded"].as_u64().unwrap() > 0, "seed {seed}: the scenario derived something");

        // Another policy gives another answer, side by side.
        let strict = json!({"to": now, "policy": {"grace": "0s", "max_runtime": "1s"}});
        let other: Value = app.post("/v1/monitors/job/replay", strict).await.json().await.unwrap();
        assert_eq!((other["identical"].as_bool(), other["policy_overridden"].as_bool()), (Some(false), Some(true)));
        assert!(
            other["rows"].as_array().unwrap().iter().any(|r| r["recorded"].is_null() && !r["replayed"].is_null()),
            "seed {seed}: rows only the stricter policy derives"
        );
    }
}
