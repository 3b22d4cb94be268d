//! Monitors over HTTP: create, read, change, delete; validation; keys and tenants.

use reqwest::StatusCode;
use serde_json::{Value, json};
use telltale_domain::client::Scope;

use crate::common::*;

async fn error_of(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("errors are JSON");
    (
        status,
        body["code"].as_str().unwrap_or_default().to_string(),
        body["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_is_created_read_listed_changed_paused_and_deleted() {
    let app = TestApp::spawn().await;
    let created: Value = app
        .post(
            "/v1/monitors",
            json!({"slug": "nightly-sync", "name": "Nightly sync", "schedule": {"every": "30s"}, "grace": "5m",
                   "max_runtime": "1h", "tags": ["sync"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["slug"], "nightly-sync");
    assert_eq!(created["status"], "new");
    assert_eq!(created["schedule"]["every"], "30s");
    assert_eq!(created["schedule"]["every_seconds"], 30.0);
    assert_eq!(created["grace"], "5m");
    assert_eq!(created["max_runtime"], "1h");
    assert_eq!(created["tags"], json!(["sync"]));

    let one: Value = app.get("/v1/monitors/nightly-sync").await.json().await.unwrap();
    assert_eq!(one["name"], "Nightly sync");
    let list: Value = app.get("/v1/monitors").await.json().await.unwrap();
    assert_eq!(list["monitors"].as_array().unwrap().len(), 1);

    let changed: Value = app
        .http
        .patch(app.url("/v1/monitors/nightly-sync"))
        .bearer_auth(&app.key)
        .json(&json!({"grace": 60, "max_runtime": null}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((changed["grace"].as_str(), changed["max_runtime"].as_str()), (Some("1m"), None));

    let paused: Value = app.post("/v1/monitors/nightly-sync/pause", json!({})).await.json().await.unwrap();
    assert_eq!(paused["status"], "paused");
    let resumed: Value = app.post("/v1/monitors/nightly-sync/resume", json!({})).await.json().await.unwrap();
    assert_eq!(resumed["status"], "new");

    let deleted = app.http.delete(app.url("/v1/monitors/nightly-sync")).bearer_auth(&app.key).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/monitors/nightly-sync").await.status(), StatusCode::NOT_FOUND);
    let list: Value = app.get("/v1/monitors").await.json().await.unwrap();
    assert!(list["monitors"].as_array().unwrap().is_empty());
    // The slug can be used again, and the history of the old one stays in the log.
    app.create_monitor("nightly-sync", "1m", "0s").await;
    let types = app.log_types("monitor:acme:nightly-sync").await;
    assert_eq!(types.first().map(String::as_str), Some("MonitorCreated"));
    assert!(types.contains(&"MonitorDeleted".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_monitors_are_refused_with_a_reason_and_nothing_is_recorded() {
    let app = TestApp::spawn().await;
    app.create_monitor("taken", "1m", "0s").await;
    let head = app.app.store.head().await.unwrap();
    let cases = [
        (json!({"slug": "Bad Slug", "schedule": {"every": "1m"}}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_slug"),
        (json!({"slug": "ok", "schedule": {"every": "soon"}}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_duration"),
        (json!({"slug": "ok", "schedule": {"every": "500ms"}}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_schedule"),
        (json!({"slug": "ok", "schedule": {}}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_schedule"),
        (
            json!({"slug": "ok", "schedule": {"every": "1m"}, "grace": -5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_duration",
        ),
        (json!({"slug": "ok", "schedule": {"every": "400d"}}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_duration"),
        (
            json!({"slug": "ok", "schedule": {"every": "1m"}, "colour": "red"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (json!({"schedule": {"every": "1m"}}), StatusCode::BAD_REQUEST, "invalid_request"),
        (json!({"slug": "taken", "schedule": {"every": "1m"}}), StatusCode::CONFLICT, "monitor_exists"),
        (
            json!({"slug": "ok", "schedule": {"every": "1m"}, "tags": [""]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
        ),
    ];
    for (body, status, code) in cases {
        let (got_status, got_code, message) = error_of(app.post("/v1/monitors", body.clone()).await).await;
        assert_eq!((got_status, got_code.as_str()), (status, code), "{body}: {message}");
        assert!(!message.is_empty());
    }
    let broken = app.http.post(app.url("/v1/monitors")).bearer_auth(&app.key).body("{\"slug\": ").send().await.unwrap();
    assert_eq!(error_of(broken).await.1, "malformed_json");
    assert_eq!(app.app.store.head().await.unwrap(), head, "refused requests record nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_decide_the_client_and_a_foreign_key_learns_nothing() {
    let app = TestApp::spawn().await;
    app.create_monitor("secret-job", "1m", "0s").await;
    let other = app.key_for("globex", &Scope::DEFAULT).await;
    // Globex does not see, read, feed, change or delete Acme's monitor.
    let list: Value = app.get_as(&other, "/v1/monitors").await.json().await.unwrap();
    assert!(list["monitors"].as_array().unwrap().is_empty());
    let head = app.app.store.head().await.unwrap();
    for response in [
        app.get_as(&other, "/v1/monitors/secret-job").await,
        app.get_as(&other, "/v1/monitors/secret-job/events").await,
        app.post_as(&other, "/v1/monitors/secret-job/heartbeat", json!({})).await,
        app.post_as(&other, "/v1/monitors/secret-job/pause", json!({})).await,
        app.http.delete(app.url("/v1/monitors/secret-job")).bearer_auth(&other).send().await.unwrap(),
    ] {
        let (status, code, _) = error_of(response).await;
        assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "monitor_not_found"));
    }
    assert_eq!(app.app.store.head().await.unwrap(), head);
    // The same slug in another client is another monitor.
    let response =
        app.post_as(&other, "/v1/monitors", json!({"slug": "secret-job", "schedule": {"every": "5m"}})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let mine: Value = app.get("/v1/monitors/secret-job").await.json().await.unwrap();
    assert_eq!(mine["schedule"]["every"], "1m");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_invalid_and_unscoped_keys_are_refused() {
    let app = TestApp::spawn().await;
    app.create_monitor("job", "1m", "0s").await;
    let anonymous = app.http.get(app.url("/v1/monitors")).send().await.unwrap();
    assert_eq!(error_of(anonymous).await.0, StatusCode::UNAUTHORIZED);
    // The real key with its last character changed (to something else, whatever it was).
    let last = if app.key.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &app.key[..app.key.len() - 1]);
    for bad in ["nonsense", "tt_0000000000000000_0000", &tampered] {
        let (status, code, message) = error_of(app.get_as(bad, "/v1/monitors").await).await;
        assert_eq!((status, code.as_str()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{bad}");
        assert!(!message.contains(bad), "an error never echoes the key");
        // Something that is not shaped like a key is told the shape; a key-shaped one that
        // does not work learns nothing more than that.
        let shaped = bad == tampered;
        assert_eq!(
            message.contains("a key looks like tt_<16 hex digits>_<64 hex digits>"),
            !shaped,
            "{bad}: {message}"
        );
    }
    let ingest_only = app.key_for("acme", &[Scope::Ingest]).await;
    assert_eq!(app.post_as(&ingest_only, "/v1/monitors/job/heartbeat", json!({})).await.status(), StatusCode::OK);
    let (status, code, _) = error_of(app.get_as(&ingest_only, "/v1/monitors").await).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "forbidden"));
    let read_only = app.key_for("acme", &[Scope::Read]).await;
    assert_eq!(app.get_as(&read_only, "/v1/monitors").await.status(), StatusCode::OK);
    let (status, _, _) =
        error_of(app.post_as(&read_only, "/v1/monitors", json!({"slug": "x", "schedule": {"every": "1m"}})).await)
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error_of(app.post_as(&read_only, "/v1/monitors/job/heartbeat", json!({})).await).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_answer_in_json() {
    let app = TestApp::spawn().await;
    let (status, code, _) = error_of(app.get("/v2/nothing").await).await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "route_not_found"));
    let response = app.http.put(app.url("/v1/monitors")).bearer_auth(&app.key).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "GET, POST");
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    let (status, code, _) = error_of(app.get("/v1/alerts?limit=abc").await).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "invalid_query"));
    let (status, code, _) = error_of(app.get("/v1/alerts?state=sideways").await).await;
    assert_eq!((status, code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value"));
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    let ready: Value = app.http.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_listed_read_and_removed_within_their_client() {
    let app = TestApp::spawn().await;
    let channel = app.add_webhook("ops", "http://127.0.0.1:9/hook").await;
    let id = channel["id"].as_str().unwrap().to_string();
    assert_eq!(channel["health"], "unused");
    let list: Value = app.get("/v1/channels").await.json().await.unwrap();
    assert_eq!(list["channels"].as_array().unwrap().len(), 1);
    let other = app.key_for("globex", &Scope::DEFAULT).await;
    assert_eq!(app.get_as(&other, &format!("/v1/channels/{id}")).await.status(), StatusCode::NOT_FOUND);
    let (status, code, _) = error_of(
        app.post("/v1/channels", json!({"name": "ops", "kind": "webhook", "config": {"url": "http://x/"}})).await,
    )
    .await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "conflict"));
    let (status, code, _) = error_of(
        app.post("/v1/channels", json!({"name": "x", "kind": "webhook", "config": {"url": "gopher://x"}})).await,
    )
    .await;
    assert_eq!((status, code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value"));
    let gone = app.http.delete(app.url(&format!("/v1/channels/{id}"))).bearer_auth(&app.key).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/v1/channels/{id}")).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_database_is_refused() {
    let app = TestApp::spawn().await;
    let config = telltale::config::Config { listen: "127.0.0.1:0".into(), ..config_for(&app.dir, 0) };
    let clock: telltale::clock::SharedClock = std::sync::Arc::new(app.clock.clone());
    let second = telltale::startup::Application::build(config, clock).await;
    let message = second.err().expect("refused").to_string();
    assert!(message.contains("another `telltale serve`"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_that_cannot_be_one_is_a_json_404_like_an_id_that_does_not_exist() {
    let app = TestApp::spawn().await;
    let head = app.app.store.head().await.unwrap();
    for (method, path, code) in [
        (reqwest::Method::POST, "/v1/alerts/not-a-uuid/acknowledge", "alert_not_found"),
        (reqwest::Method::POST, "/v1/alerts/00000000-0000-0000-0000-000000000000/acknowledge", "alert_not_found"),
        (reqwest::Method::DELETE, "/v1/maintenance/zzz", "maintenance_window_not_found"),
        (reqwest::Method::DELETE, "/v1/channels/zzz", "channel_not_found"),
        (reqwest::Method::GET, "/v1/channels/zzz/notifications", "channel_not_found"),
        (reqwest::Method::GET, "/v1/keys/not_a-key", "key_not_found"),
        (reqwest::Method::DELETE, "/v1/keys/zzz", "key_not_found"),
    ] {
        let response = app.http.request(method.clone(), app.url(path)).bearer_auth(&app.key).send().await.unwrap();
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "{path}");
        let (status, got, message) = error_of(response).await;
        assert_eq!((status, got.as_str()), (StatusCode::NOT_FOUND, code), "{method} {path}: {message}");
    }
    // Without a key it is still a 401 first: nothing is said about the path.
    let anonymous = app.http.post(app.url("/v1/alerts/not-a-uuid/acknowledge")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.app.store.head().await.unwrap(), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_the_wrong_shape_is_a_json_400_naming_the_field_and_what_it_takes() {
    let app = TestApp::spawn().await;
    app.create_monitor("job", "1m", "0s").await;
    let head = app.app.store.head().await.unwrap();
    let send = |method: reqwest::Method, path: &str, body: &str| {
        app.http
            .request(method, app.url(path))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    use reqwest::Method as M;
    let endpoints = [
        (M::POST, "/v1/monitors"),
        (M::PATCH, "/v1/monitors/job"),
        (M::POST, "/v1/monitors/job/events"),
        (M::POST, "/v1/monitors/job/events/batch"),
        (M::POST, "/v1/monitors/job/heartbeat"),
        (M::POST, "/v1/monitors/job/silence"),
        (M::POST, "/v1/monitors/job/replay"),
        (M::POST, "/v1/channels"),
        (M::POST, "/v1/keys"),
        (M::POST, "/v1/maintenance"),
        (M::PUT, "/v1/alert-policy"),
        (M::POST, "/v1/alerts/00000000-0000-0000-0000-000000000000/acknowledge"),
    ];
    // Valid JSON that is not an object: every JSON-taking endpoint says so.
    for (method, path) in &endpoints {
        for body in ["[]", "5", "\"text\"", "null"] {
            let (status, code, message) = error_of(send(method.clone(), path, body).await.unwrap()).await;
            assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "invalid_request"), "{method} {path} {body}");
            assert!(message.contains("must be a JSON object"), "{method} {path} {body}: {message}");
        }
    }
    // A field of the wrong type: named with its path, with what it takes, no Rust type names.
    for (method, path, body, says) in [
        (M::POST, "/v1/monitors", r#"{"slug": "x", "schedule": 5}"#, vec!["schedule:", "{\"every\": \"5m\"}"]),
        (M::PATCH, "/v1/monitors/job", r#"{"schedule": 5}"#, vec!["schedule:", "{\"every\": \"5m\"}"]),
        (
            M::POST,
            "/v1/monitors",
            r#"{"slug": "x", "schedule": {"every": "1m"}, "grace": [1]}"#,
            vec!["grace:", "\"5m\""],
        ),
        (
            M::POST,
            "/v1/monitors",
            r#"{"slug": "x", "schedule": {"every": "1m"}, "tags": "db"}"#,
            vec!["tags:", "array"],
        ),
        (
            M::POST,
            "/v1/monitors",
            r#"{"slug": "x", "schedule": {"every": "1m"}, "alert_policy": {"failure_tolerance": "two"}}"#,
            vec!["alert_policy.failure_tolerance:", "number of failed runs"],
        ),
        (M::POST, "/v1/monitors", r#"{"slug": 5, "schedule": {"every": "1m"}}"#, vec!["slug:", "a string"]),
        (M::POST, "/v1/monitors", r#"{"slug": "x"}"#, vec!["missing field `schedule`"]),
        (
            M::POST,
            "/v1/monitors/job/events",
            r#"{"type": "failed", "exit_code": "three"}"#,
            vec!["exit_code:", "an integer"],
        ),
        (
            M::POST,
            "/v1/monitors/job/events/batch",
            r#"{"events": [{"type": "heartbeat"}, {"type": "failed", "exit_code": "x"}]}"#,
            vec!["events[1].exit_code:", "an integer"],
        ),
        (M::POST, "/v1/channels", r#"{"name": "ops", "kind": "webhook", "config": {}, "tags": "db"}"#, vec!["tags:"]),
        (M::POST, "/v1/keys", r#"{"scopes": "read"}"#, vec!["scopes:", "array"]),
        (M::POST, "/v1/monitors/job/silence", r#"{"duration": true}"#, vec!["duration:", "\"5m\""]),
        (M::POST, "/v1/maintenance", r#"{"reason": "x", "tags": {"a": 1}}"#, vec!["tags:", "array"]),
        (M::PUT, "/v1/alert-policy", r#"{"missed_tolerance": "none"}"#, vec!["missed_tolerance:", "an integer"]),
        (M::POST, "/v1/monitors/job/replay", r#"{"policy": []}"#, vec!["policy:"]),
    ] {
        let (status, code, message) = error_of(send(method.clone(), path, body).await.unwrap()).await;
        assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "invalid_request"), "{path} {body}: {message}");
        for text in says {
            assert!(message.contains(text), "{path} {body}: `{text}` in {message}");
        }
        for rust in ["struct ", "Input", "i64", "u32", "untagged", "sequence"] {
            assert!(!message.contains(rust), "{path} {body}: no `{rust}` in {message}");
        }
    }
    assert_eq!(app.app.store.head().await.unwrap(), head, "refused requests record nothing");
}
