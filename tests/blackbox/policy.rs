//! The alert policy through the API: a monitor's own policy over its client's defaults,
//! silences (one curl call) and their early end, maintenance windows, acknowledgement through the
//! API and the dashboard, reminders and escalation reaching real receivers, `manual_resume`
//! (C44c), and replay with another alert policy. Refused input records nothing.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(10);

async fn monitor(app: &TestApp, slug: &str) -> Value {
    app.get(&format!("/v1/monitors/{slug}")).await.json().await.unwrap()
}

async fn types(app: &TestApp, slug: &str) -> Vec<String> {
    app.log_types(&format!("monitor:acme:{slug}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_states_its_own_policy_over_its_client_defaults_and_shows_the_policy_in_force() {
    let app = TestApp::spawn().await;
    let defaults: Value = app.get("/v1/alert-policy").await.json().await.unwrap();
    assert_eq!(defaults["alert_policy"], json!({}));
    assert_eq!(defaults["effective"]["retry_window"], "5m");
    assert_eq!(defaults["effective"]["failure_tolerance"], 1);

    let set = app
        .http
        .put(app.url("/v1/alert-policy"))
        .bearer_auth(&app.key)
        .json(&json!({"missed_tolerance": 2, "retry_window": "10m", "realert_every": "4h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::OK);
    let body = json!({"slug": "sync", "schedule": {"every": "1h"}, "grace": "5m",
        "alert_policy": {"missed_tolerance": 0, "failure_tolerance": {"ratio": 0.25, "window": "1d", "min_runs": 4}}});
    let created = app.post("/v1/monitors", body).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let m: Value = created.json().await.unwrap();
    assert_eq!(m["alert_policy"]["missed_tolerance"], 0);
    assert!(m["alert_policy"].get("retry_window").is_none(), "only what it states");
    let effective = &m["effective_policy"];
    assert_eq!((effective["missed_tolerance"].as_u64(), effective["retry_window"].as_str()), (Some(0), Some("10m")));
    assert_eq!(effective["realert_every"], "4h");
    assert_eq!(effective["failure_tolerance"], json!({"ratio": 0.25, "window": "1d", "min_runs": 4}));

    // A change of the client's defaults reaches the monitor at once, recorded on its stream.
    let set = app
        .http
        .put(app.url("/v1/alert-policy"))
        .bearer_auth(&app.key)
        .json(&json!({"retry_window": "0s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::OK);
    let m = monitor(&app, "sync").await;
    assert_eq!(m["effective_policy"]["retry_window"], "0s");
    assert_eq!(m["effective_policy"]["realert_every"], "0s");
    assert_eq!(types(&app, "sync").await.iter().filter(|t| *t == "ClientDefaultsApplied").count(), 2);

    // Nonsense is refused with the field named, and nothing is recorded.
    let before = app.log().await.len();
    for (bad, field) in [
        (json!({"failure_tolerance": 0}), "failure_tolerance"),
        (json!({"recovery_threshold": 0}), "recovery_threshold"),
        (json!({"realert_every": "5s"}), "realert_every"),
        (json!({"failure_tolerance": {"ratio": 1.5, "window": "1h"}}), "failure_tolerance.ratio"),
        (json!({"retry_window": "soon"}), "retry_window"),
    ] {
        let response = app.http.put(app.url("/v1/alert-policy")).bearer_auth(&app.key).json(&bad).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let error: Value = response.json().await.unwrap();
        assert!(error["message"].as_str().unwrap().contains(field), "{bad}: {error}");
        let patch = app
            .http
            .patch(app.url("/v1/monitors/sync"))
            .bearer_auth(&app.key)
            .json(&json!({"alert_policy": bad}))
            .send()
            .await
            .unwrap();
        assert_eq!(patch.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let unknown =
        app.http.put(app.url("/v1/alert-policy")).bearer_auth(&app.key).json(&json!({"typo": 1})).send().await;
    assert_eq!(unknown.unwrap().status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.log().await.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_is_one_curl_call_holds_alerts_and_ends_early_with_delete() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    app.add_webhook("ops", &receiver.url).await;
    app.create_monitor("deploy-me", "1m", "10s").await;
    app.beat("deploy-me").await;
    let silenced = app.post("/v1/monitors/deploy-me/silence", json!({"duration": "30m", "reason": "deploy"})).await;
    assert_eq!(silenced.status(), StatusCode::OK);
    let m: Value = silenced.json().await.unwrap();
    assert_eq!(m["silenced"]["until"], "2026-03-01T12:30:00Z");
    assert_eq!(m["silenced"]["reason"], "deploy");

    // Silent from 12:00: the miss at 12:01:10 is recorded and its alert held.
    app.advance(secs(120)).await;
    let alerts = app.alerts("open").await;
    assert_eq!(alerts.len(), 1);
    assert_eq!((alerts[0]["held"].as_str(), alerts[0]["notified"].as_bool()), (Some("silenced"), Some(false)));
    assert_eq!(monitor(&app, "deploy-me").await["status"], "down");
    let page = app.dashboard("/monitors/acme/deploy-me").await;
    assert!(page.contains("silenced"), "the dashboard says so");

    // Ended early at 12:05: the deadline restarts from then (12:06:10), and the alert, still
    // open, is announced then, once.
    app.advance(secs(180)).await;
    let lifted = app.http.delete(app.url("/v1/monitors/deploy-me/silence")).bearer_auth(&app.key).send().await.unwrap();
    assert_eq!(lifted.status(), StatusCode::OK);
    assert!(lifted.json::<Value>().await.unwrap()["silenced"].is_null());
    app.advance(secs(69)).await;
    assert!(receiver.drain().is_empty(), "nothing announced before the fresh deadline");
    app.advance(secs(1)).await;
    let opened = receiver.next(WAIT).await.expect("announced");
    assert_eq!(opened.body["transition"], "opened");
    assert_eq!(opened.body["opened_at"], "2026-03-01T12:01:10.000000Z", "when the trouble began");
    let alert = &app.alerts("open").await[0];
    assert_eq!(alert["announced_at"], "2026-03-01T12:06:10Z");
    let t = types(&app, "deploy-me").await;
    assert!(t.contains(&"MonitorSilenced".to_string()) && t.contains(&"SilenceLifted".to_string()), "{t:?}");
    assert!(t.contains(&"AlertAnnounced".to_string()), "{t:?}");

    // A silence that cannot mean anything is refused.
    for bad in [json!({"duration": "0s"}), json!({"duration": "40d"}), json!({})] {
        let r = app.post("/v1/monitors/deploy-me/silence", bad.clone()).await;
        assert!(r.status().is_client_error(), "{bad}");
    }
    assert_eq!(app.post("/v1/monitors/nope/silence", json!({"duration": "1m"})).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_windows_are_listed_cover_monitors_by_tag_and_are_removed() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    app.add_webhook("ops", &receiver.url).await;
    for (slug, tags) in [("db-sync", json!(["db"])), ("web", json!([]))] {
        let r = app
            .post("/v1/monitors", json!({"slug": slug, "schedule": {"every": "1m"}, "grace": "10s", "tags": tags}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        app.beat(slug).await;
    }
    let created = app
        .post(
            "/v1/maintenance",
            json!({"reason": "db upgrade", "cron": "0 13 * * *", "timezone": "Europe/Berlin", "duration": "1h",
                   "tags": ["db"]}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let window: Value = created.json().await.unwrap();
    // 13:00 Berlin in March is 12:00 UTC: under way from now to 13:00 UTC.
    assert_eq!(window["next"], json!(["2026-03-01T12:00:00Z", "2026-03-01T13:00:00Z"]));
    let listed: Value = app.get("/v1/maintenance").await.json().await.unwrap();
    assert_eq!(listed["windows"].as_array().unwrap().len(), 1);

    // Both go silent: only `web` pages.
    app.advance(secs(90)).await;
    let opened = receiver.next(WAIT).await.expect("web pages");
    assert_eq!(opened.body["monitor"], "web");
    let db = monitor(&app, "db-sync").await;
    assert_eq!(db["maintenance"][0]["reason"], "db upgrade");
    let page = app.dashboard("/monitors/acme/db-sync").await;
    assert!(page.contains("in maintenance"));

    // Removing it ends it at once; the held alert gets a fresh deadline from then.
    let id = window["id"].as_str().unwrap();
    let removed =
        app.http.delete(app.url(&format!("/v1/maintenance/{id}"))).bearer_auth(&app.key).send().await.unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert!(monitor(&app, "db-sync").await["maintenance"].as_array().unwrap().is_empty());
    app.advance(secs(70)).await;
    let announced = receiver.next(WAIT).await.expect("db-sync announced after the window");
    assert_eq!(announced.body["monitor"], "db-sync");
    let again = app.http.delete(app.url(&format!("/v1/maintenance/{id}"))).bearer_auth(&app.key).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    for bad in [
        json!({"from": "2026-03-01T13:00:00Z", "to": "2026-03-01T12:00:00Z"}),
        json!({"cron": "0 0 30 2 *", "duration": "1h"}),
        json!({"cron": "0 2 * * *"}),
        json!({"cron": "0 2 * * *", "timezone": "Mars/Olympus", "duration": "1h"}),
    ] {
        assert_eq!(app.post("/v1/maintenance", bad.clone()).await.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_and_escalation_reach_their_channels_until_acknowledged() {
    let app = TestApp::spawn().await;
    let mut team = Receiver::start().await;
    let mut pager = Receiver::start().await;
    app.add_webhook("team", &team.url).await;
    app.add_webhook("pager", &pager.url).await;
    app.create_monitor_with_policy(
        "billing",
        "1m",
        "0s",
        json!({"realert_every": "1h", "escalate_after": "30m", "escalate_to": ["pager"]}),
    )
    .await;
    app.beat("billing").await;
    app.advance(secs(60)).await;
    let opened = team.next(WAIT).await.expect("the team hears of it");
    assert_eq!(opened.body["transition"], "opened");
    assert!(pager.next(Duration::from_millis(300)).await.is_none(), "the pager only hears of escalations");

    app.advance(secs(30 * 60)).await;
    let escalated = pager.next(WAIT).await.expect("escalated");
    assert_eq!(escalated.body["transition"], "escalated");
    assert_eq!(escalated.body["escalated_to"], json!(["pager"]));
    assert_eq!(escalated.header("X-Telltale-Event"), Some("alert.escalated"));

    app.advance(secs(30 * 60)).await;
    let first = team.next(WAIT).await.expect("a reminder");
    let second = pager.next(WAIT).await.expect("the pager, told of it, is reminded too");
    for r in [&first, &second] {
        assert_eq!((r.body["transition"].as_str(), r.body["reminder"].as_u64()), (Some("reminder"), Some(1)));
    }
    // Every monitor alert's payload names who took it: nobody yet.
    for r in [&opened, &escalated, &first, &second] {
        let body = r.body.as_object().unwrap();
        assert_eq!(
            (body.get("acknowledged_at"), body.get("acknowledged_by")),
            (Some(&Value::Null), Some(&Value::Null))
        );
    }
    assert_ne!(first.idempotency_key, opened.idempotency_key);

    // Acknowledged through the dashboard's button, by someone signed in (the form carries the
    // CSRF token): both channels hear who took it, and the reminders stop.
    let alert_id = app.alerts("open").await[0]["id"].as_str().unwrap().to_string();
    app.user("ana", Some("acme"), telltale_domain::users::Role::Viewer, "ana's long password").await;
    let (cookie, csrf) = app.sign_in("ana", "ana's long password").await;
    let page = app.http.get(app.url("/monitors/acme/billing")).header("cookie", &cookie).send().await.unwrap();
    let page = page.text().await.unwrap();
    let action = format!("/monitors/acme/billing/alerts/{alert_id}/acknowledge");
    assert!(page.contains(&action) && page.contains("Acknowledge"), "the button is on the page");
    let without_token =
        app.http.post(app.url(&action)).header("cookie", &cookie).form(&[("x", "y")]).send().await.unwrap();
    assert_eq!(without_token.status(), StatusCode::FORBIDDEN, "the CSRF guard covers the form");
    let form = app.http.post(app.url(&action)).header("cookie", &cookie).form(&[("csrf", &csrf)]).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::SEE_OTHER);
    app.settle().await;
    // Acknowledged at 13:01: the alert is still open, and says who took it and when,
    // the same in its notification, the alert list, the monitor and the dashboard.
    for receiver in [&mut team, &mut pager] {
        let acked = receiver.next(WAIT).await.expect("acknowledged");
        assert_eq!(
            (acked.body["transition"].as_str(), acked.body["state"].as_str()),
            (Some("acknowledged"), Some("open"))
        );
        assert_eq!(acked.body["acknowledged_by"], "ana");
        assert_eq!(acked.body["acknowledged_at"], "2026-03-01T13:01:00.000000Z");
        assert_eq!(acked.header("X-Telltale-Event"), Some("alert.acknowledged"));
    }
    let alert = &app.alerts("open").await[0];
    assert_eq!(
        (alert["state"].as_str(), alert["acknowledged_at"].as_str()),
        (Some("open"), Some("2026-03-01T13:01:00Z"))
    );
    let embedded = &monitor(&app, "billing").await["alerts"][0];
    assert_eq!(
        (embedded["acknowledged_at"].as_str(), embedded["acknowledged_by"].as_str()),
        (Some("2026-03-01T13:01:00Z"), Some("ana"))
    );
    let page = app.dashboard("/monitors/acme/billing").await;
    assert!(
        page.contains("acknowledged") && page.contains(" by ana") && !page.contains("Acknowledge</button>"),
        "{page}"
    );
    app.advance(secs(5 * 3600)).await;
    app.settle().await;
    assert!(team.next(Duration::from_millis(300)).await.is_none(), "no reminder after the acknowledgement");
    let alert = &app.alerts("open").await[0];
    assert_eq!((alert["reminders"].as_i64(), alert["acknowledged_by"].as_str()), (Some(1), Some("ana")));
    assert!(alert["escalated_at"].is_string());

    // The resolution after it still says it was taken, and by whom.
    app.beat("billing").await;
    for receiver in [&mut team, &mut pager] {
        let resolved = receiver.next(WAIT).await.expect("resolved");
        assert_eq!(
            (resolved.body["transition"].as_str(), resolved.body["state"].as_str()),
            (Some("resolved"), Some("resolved"))
        );
        assert_eq!(resolved.body["acknowledged_at"], "2026-03-01T13:01:00.000000Z");
        assert_eq!(resolved.body["acknowledged_by"], "ana");
    }
    let alert = &app.alerts("resolved").await[0];
    assert_eq!((alert["state"].as_str(), alert["acknowledged_by"].as_str()), (Some("resolved"), Some("ana")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledging_through_the_api_names_who_and_why_and_refuses_what_it_cannot_find() {
    let app = TestApp::spawn().await;
    app.create_monitor("job", "1m", "0s").await;
    app.beat("job").await;
    app.advance(secs(61)).await;
    let id = app.alerts("open").await[0]["id"].as_str().unwrap().to_string();
    let acked = app.post(&format!("/v1/alerts/{id}/acknowledge"), json!({"by": "ana", "note": "on it"})).await;
    assert_eq!(acked.status(), StatusCode::OK);
    let body: Value = acked.json().await.unwrap();
    assert_eq!((body["acknowledged_by"].as_str(), body["acknowledgement_note"].as_str()), (Some("ana"), Some("on it")));
    assert_eq!(
        (body["state"].as_str(), body["acknowledged_at"].as_str()),
        (Some("open"), Some("2026-03-01T12:01:01Z"))
    );
    // Again: nothing new.
    let before = app.log().await.len();
    assert_eq!(app.post(&format!("/v1/alerts/{id}/acknowledge"), json!({})).await.status(), StatusCode::OK);
    assert_eq!(app.log().await.len(), before);
    let nope = app.post("/v1/alerts/00000000-0000-0000-0000-000000000000/acknowledge", json!({})).await;
    assert_eq!(nope.status(), StatusCode::NOT_FOUND);
    // Another client's key cannot see it.
    let other = app.key_for("globex", &[telltale_domain::client::Scope::Admin]).await;
    let foreign = app.post_as(&other, &format!("/v1/alerts/{id}/acknowledge"), json!({})).await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    // Resolved: a conflict.
    app.beat("job").await;
    assert_eq!(app.post(&format!("/v1/alerts/{id}/acknowledge"), json!({})).await.status(), StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c44c_a_paused_monitor_with_manual_resume_logs_pings_as_ignored_and_stays_paused() {
    let app = TestApp::spawn().await;
    for (slug, manual) in [("manual", true), ("auto", false)] {
        let r = app
            .post(
                "/v1/monitors",
                json!({"slug": slug, "schedule": {"every": "1m"}, "grace": "0s", "manual_resume": manual}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        app.beat(slug).await;
        assert_eq!(app.post(&format!("/v1/monitors/{slug}/pause"), json!({})).await.status(), StatusCode::OK);
    }
    app.advance(secs(600)).await;
    app.beat("manual").await;
    app.beat("auto").await;
    let manual = monitor(&app, "manual").await;
    assert_eq!((manual["status"].as_str(), manual["manual_resume"].as_bool()), (Some("paused"), Some(true)));
    let ignored: Value = app.get("/v1/monitors/manual/events?type=SignalIgnored").await.json().await.unwrap();
    assert_eq!(ignored["events"].as_array().unwrap().len(), 1, "logged as ignored");
    assert_eq!(monitor(&app, "auto").await["status"], "up", "the default resumes");
    app.advance(secs(3600)).await;
    let alerts = app.alerts("all").await;
    assert!(alerts.iter().all(|a| a["monitor"] == "auto"), "the paused one never alerts: {alerts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_answers_what_another_alert_policy_would_have_paged() {
    let app = TestApp::spawn().await;
    app.create_monitor("nightly", "1h", "1h").await;
    // Two failures, each fixed by a retry two minutes later: transient under the defaults.
    for _ in 0..2 {
        app.post("/v1/monitors/nightly/events", json!({"type": "failed", "exit_code": 1})).await;
        app.advance(secs(120)).await;
        app.post("/v1/monitors/nightly/events", json!({"type": "completed", "exit_code": 0})).await;
        app.advance(secs(1800)).await;
    }
    assert!(app.alerts("all").await.is_empty());
    let recorded: Value = app.post("/v1/monitors/nightly/replay", json!({})).await.json().await.unwrap();
    assert_eq!(recorded["identical"], true, "{recorded}");
    let strict: Value =
        app.post("/v1/monitors/nightly/replay", json!({"policy": {"retry_window": "0s"}})).await.json().await.unwrap();
    assert_eq!(strict["policy_overridden"], true);
    assert_eq!(strict["replayed_alerts"], 2, "{strict}");
    let bad = app.post("/v1/monitors/nightly/replay", json!({"policy": {"retry_windw": "0s"}})).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_inside_its_retry_window_shows_retrying_until_it_pages_or_a_retry_fixes_it() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    app.add_webhook("ops", &receiver.url).await;
    for slug in ["flaky", "broken"] {
        app.create_monitor_with_policy(slug, "1h", "10m", json!({"retry_window": "10m"})).await;
        app.beat(slug).await;
        let failed = app.post(&format!("/v1/monitors/{slug}/events"), json!({"type": "failed", "exit_code": 1})).await;
        assert_eq!(failed.status(), StatusCode::OK);
    }
    // Failed at 12:00, not yet confirmed: `retrying`, with when it pages, everywhere.
    for slug in ["flaky", "broken"] {
        let m = monitor(&app, slug).await;
        assert_eq!((m["status"].as_str(), m["retry_until"].as_str()), (Some("retrying"), Some("2026-03-01T12:10:00Z")));
        assert_eq!(m["alerts"], json!([]));
    }
    let list: Value = app.get("/v1/monitors").await.json().await.unwrap();
    assert!(list["monitors"].as_array().unwrap().iter().all(|m| m["status"] == "retrying"), "{list}");
    let index = app.dashboard("/").await;
    assert!(index.contains("data-status=\"retrying\"") && index.contains("2 retrying"), "{index}");
    let page = app.dashboard("/monitors/acme/flaky").await;
    assert!(page.contains("id=\"retrying\"") && page.contains("2026-03-01 12:10:00 UTC"), "{page}");
    assert!(receiver.next(Duration::from_millis(300)).await.is_none(), "nobody is paged while it retries");

    // A retry fixes one in time: `up`, nobody paged. The other's window runs out: `failing`.
    app.advance(secs(5 * 60)).await;
    let retry = app.post("/v1/monitors/flaky/events", json!({"type": "completed", "exit_code": 0})).await;
    assert_eq!(retry.status(), StatusCode::OK);
    let m = monitor(&app, "flaky").await;
    assert_eq!((m["status"].as_str(), m["retry_until"].as_str()), (Some("up"), None));
    app.advance(secs(5 * 60)).await;
    let m = monitor(&app, "broken").await;
    assert_eq!((m["status"].as_str(), m["retry_until"].as_str()), (Some("failing"), None));
    let opened = receiver.next(WAIT).await.expect("the confirmed failure pages");
    assert_eq!((opened.body["monitor"].as_str(), opened.body["transition"].as_str()), (Some("broken"), Some("opened")));
    assert!(!app.dashboard("/monitors/acme/broken").await.contains("id=\"retrying\""));
}

/// A name that points nowhere is a typo that would hold or send nothing without a word: an
/// `escalate_to` channel the client does not have, a window's monitor that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_to_no_channel_or_a_window_over_no_monitor_is_refused_and_nothing_is_kept() {
    let app = TestApp::spawn().await;
    app.add_webhook("pager", "http://127.0.0.1:9/hook").await;
    let head = app.app.store.head().await.unwrap();
    let typo = json!({"slug": "billing", "schedule": {"every": "5m"}, "alert_policy": {"escalate_to": ["pagr"]}});
    let refused = app.post("/v1/monitors", typo).await;
    assert_eq!(refused.status().as_u16(), 422);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "invalid_value");
    assert_eq!(body["message"], "alert_policy.escalate_to: no channel `pagr` (this client's channels: pager)");
    let put = app.http.put(app.url("/v1/alert-policy")).bearer_auth(&app.key).json(&json!({"escalate_to": ["oncall"]}));
    let body: Value = put.send().await.unwrap().json().await.unwrap();
    assert_eq!(body["message"], "escalate_to: no channel `oncall` (this client's channels: pager)");
    let window = json!({"from": "2026-03-01T13:00:00Z", "to": "2026-03-01T14:00:00Z", "monitors": ["biling"]});
    let body: Value = app.post("/v1/maintenance", window).await.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().starts_with("monitors: no monitor `biling`"), "{body}");
    assert_eq!(app.app.store.head().await.unwrap(), head, "nothing was recorded");

    // Spelled right, all three are taken.
    let good = json!({"slug": "billing", "schedule": {"every": "5m"}, "alert_policy": {"escalate_to": ["pager"]}});
    assert_eq!(app.post("/v1/monitors", good).await.status().as_u16(), 201);
    let window = json!({"from": "2026-03-01T13:00:00Z", "to": "2026-03-01T14:00:00Z", "monitors": ["billing"]});
    assert_eq!(app.post("/v1/maintenance", window).await.status().as_u16(), 201);
    let put = app.http.put(app.url("/v1/alert-policy")).bearer_auth(&app.key).json(&json!({"escalate_to": ["pager"]}));
    assert_eq!(put.send().await.unwrap().status().as_u16(), 200);
}
