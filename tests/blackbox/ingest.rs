//! Ingest over HTTP: heartbeats, run lifecycles, idempotent retries, batches, and bad input that
//! must be refused with the documented error while the log stays unchanged.

use reqwest::StatusCode;
use serde_json::{Value, json};
use telltale_domain::client::Scope;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_take_an_empty_a_json_or_a_text_body() {
    let app = TestApp::spawn().await;
    app.create_monitor("beats", "1m", "10s").await;
    let ack = app.beat("beats").await;
    assert_eq!((ack["type"].as_str(), ack["duplicate"].as_bool()), (Some("HeartbeatReceived"), Some(false)));
    assert_eq!(ack["monitor"]["status"], "up");
    assert_eq!(ack["monitor"]["last_heartbeat_at"], "2026-03-01T12:00:00Z");
    assert_eq!(ack["monitor"]["next_deadline_at"], "2026-03-01T12:01:10Z");

    let ack: Value = app
        .post(
            "/v1/monitors/beats/heartbeat",
            json!({"host": "web-3", "message": "ok", "sent_at": "2026-03-01T11:59:58+01:00", "metrics": {"rows": 12}}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ack["monitor"]["host"], "web-3");

    // C47: a body that is not UTF-8 is kept with replacement characters, not refused.
    let response = app
        .http
        .post(app.url("/v1/monitors/beats/heartbeat"))
        .bearer_auth(&app.key)
        .header("Content-Type", "text/plain")
        .body(b"Hello \xe9 World".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let history: Value = app.get("/v1/monitors/beats/events?limit=1").await.json().await.unwrap();
    assert_eq!(history["events"][0]["data"]["message"], "Hello \u{fffd} World");
    let all: Value = app.get("/v1/monitors/beats/events?type=HeartbeatReceived").await.json().await.unwrap();
    assert_eq!(all["events"].as_array().unwrap().len(), 3);
    let second: Value = all["events"][1].clone();
    assert_eq!(second["data"]["sent_at"], "2026-03-01T10:59:58Z", "the sender's clock is kept, in UTC");
    assert_eq!(second["data"]["metrics"]["rows"], 12);

    // Declared text is text, even when it starts with a brace (a job's log line, say).
    let response = app
        .http
        .post(app.url("/v1/monitors/beats/heartbeat"))
        .bearer_auth(&app.key)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body("{exported 12 rows")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let history: Value = app.get("/v1/monitors/beats/events?limit=1").await.json().await.unwrap();
    assert_eq!(history["events"][0]["data"]["message"], "{exported 12 rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_started_and_finished_with_its_duration_and_exit_code() {
    let app = TestApp::spawn().await;
    // A failed run alerts at once (no retry window): the status says so in the answer.
    app.create_monitor_with_policy("backup", "1h", "5m", json!({"retry_window": "0s"})).await;
    let started: Value =
        app.post("/v1/monitors/backup/events", json!({"type": "started", "host": "db-1"})).await.json().await.unwrap();
    assert_eq!(started["type"], "RunStarted");
    let run_id = started["run_id"].as_str().expect("the server issues a run id").to_string();
    assert_eq!(started["monitor"]["open_runs"], 1);
    app.clock.advance(millis(83_250));
    let progress: Value = app
        .post("/v1/monitors/backup/events", json!({"type": "running", "message": "50%"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(progress["run_id"], run_id.as_str());
    let done: Value = app
        .post(
            "/v1/monitors/backup/events",
            json!({"type": "completed", "run_id": run_id, "exit_code": 0, "metadata": {"rows": 10}, "output": "all good\n"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(done["type"], "RunCompleted");
    assert_eq!(done["monitor"]["last_run"]["duration_seconds"], 83.25);
    assert_eq!(done["monitor"]["last_run"]["outcome"], "completed");
    assert_eq!(done["monitor"]["open_runs"], 0);
    let history: Value = app.get("/v1/monitors/backup/events?type=RunCompleted").await.json().await.unwrap();
    assert_eq!(history["events"][0]["data"]["output"], "all good\n");
    assert_eq!(history["events"][0]["data"]["duration_ms"], 83_250);

    // Any i32 exit code is kept; a non-zero one makes the run a failure.
    for code in [256, -1, 255] {
        let ack: Value = app
            .post("/v1/monitors/backup/events", json!({"type": "completed", "exit_code": code}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(ack["type"], "RunFailed", "{code}");
        assert_eq!(ack["monitor"]["last_run"]["exit_code"], code);
        assert_eq!(ack["monitor"]["status"], "failing");
    }
    // A Windows exit code (an unsigned DWORD, here an access violation) is a failure too, kept
    // as the i32 Windows tools print for it (C50: the failure is never lost to a 4xx).
    let ack: Value = app
        .post("/v1/monitors/backup/events", json!({"type": "completed", "exit_code": 3_221_225_477u32}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ack["type"], "RunFailed");
    assert_eq!(ack["monitor"]["last_run"]["exit_code"], -1_073_741_819);
    // Beyond 32 bits: refused with a reason, and nothing recorded.
    let before = app.log_types("monitor:acme:backup").await.len();
    for code in [json!(4_294_967_296u64), json!(-2_147_483_649i64)] {
        let refused = app.post("/v1/monitors/backup/events", json!({"type": "completed", "exit_code": code})).await;
        assert_eq!(refused.status().as_u16(), 422);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "invalid_value");
        assert!(body["message"].as_str().unwrap().contains("not a 32-bit integer"), "{body}");
    }
    assert_eq!(app.log_types("monitor:acme:backup").await.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_event_id_is_recorded_once() {
    let app = TestApp::spawn().await;
    app.create_monitor("retry", "1m", "0s").await;
    let body = json!({"type": "heartbeat", "event_id": "spool-0001"});
    let first: Value = app.post("/v1/monitors/retry/events", body.clone()).await.json().await.unwrap();
    let second: Value = app.post("/v1/monitors/retry/events", body).await.json().await.unwrap();
    assert_eq!((first["duplicate"].as_bool(), second["duplicate"].as_bool()), (Some(false), Some(true)));
    assert_eq!(first["position"], second["position"]);
    let beats = app.log_types("monitor:acme:retry").await.iter().filter(|t| *t == "HeartbeatReceived").count();
    assert_eq!(beats, 1);
    // Concurrent retries of one id also count once.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (http, url, key) = (app.http.clone(), app.url("/v1/monitors/retry/events"), app.key.clone());
            tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(key)
                    .json(&json!({"type": "heartbeat", "event_id": "spool-0002"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let beats = app.log_types("monitor:acme:retry").await.iter().filter(|t| *t == "HeartbeatReceived").count();
    assert_eq!(beats, 2);

    // An id already used for another event, or another run, is a conflict, never a silent loss.
    let before = app.log_types("monitor:acme:retry").await.len();
    for body in [
        json!({"type": "completed", "event_id": "spool-0001"}),
        json!({"type": "started", "run_id": "r1", "event_id": "spool-0002"}),
    ] {
        let refused = app.post("/v1/monitors/retry/events", body).await;
        assert_eq!(refused.status(), StatusCode::CONFLICT);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "event_id_reused");
        assert!(body["message"].as_str().unwrap().contains("was already used for another event (HeartbeatReceived)"));
    }
    let started = json!({"type": "started", "run_id": "r1", "event_id": "start-r1"});
    assert_eq!(app.post("/v1/monitors/retry/events", started.clone()).await.status(), StatusCode::OK);
    let retried: Value = app.post("/v1/monitors/retry/events", started).await.json().await.unwrap();
    assert_eq!(retried["duplicate"], true, "the same start again is a retry");
    let other_run =
        app.post("/v1/monitors/retry/events", json!({"type": "started", "run_id": "r2", "event_id": "start-r1"})).await;
    let body: Value = other_run.json().await.unwrap();
    assert_eq!(body["code"], "event_id_reused");
    assert!(body["message"].as_str().unwrap().contains("RunStarted of run `r1`"), "{body}");
    // In a batch, it says which event and what was recorded before it.
    let batch = app
        .post(
            "/v1/monitors/retry/events/batch",
            json!({"events": [{"type": "heartbeat", "event_id": "b-1"}, {"type": "completed", "event_id": "spool-0001"}]}),
        )
        .await;
    assert_eq!(batch.status(), StatusCode::CONFLICT);
    let body: Value = batch.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().starts_with("events[1]: event_id `spool-0001`"), "{body}");
    assert!(
        body["message"].as_str().unwrap().ends_with("events[0..1] were recorded (a retry of them is safe)"),
        "{body}"
    );
    let types = app.log_types("monitor:acme:retry").await;
    assert_eq!(types[before..], ["RunStarted", "HeartbeatReceived"], "only the new start and the batch's first beat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_records_every_event_in_order_or_none() {
    let app = TestApp::spawn().await;
    app.create_monitor("batch", "1m", "0s").await;
    let ack: Value = app
        .post(
            "/v1/monitors/batch/events/batch",
            json!({"events": [{"type": "started", "run_id": "r1"}, {"type": "running", "run_id": "r1"}, {"type": "completed", "run_id": "r1"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = ack["results"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["RunStarted", "RunProgressed", "RunCompleted"]);
    let head = app.app.store.head().await.unwrap();
    let response = app
        .post("/v1/monitors/batch/events/batch", json!({"events": [{"type": "started"}, {"type": "exploded"}]}))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().starts_with("events[1]"), "{body}");
    assert_eq!(app.app.store.head().await.unwrap(), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_documented_error_and_the_log_is_unchanged() {
    let app = TestApp::spawn().await;
    app.create_monitor("job", "1m", "0s").await;
    app.beat("job").await;
    let foreign = app.key_for("globex", &Scope::DEFAULT).await;
    let before = app.log().await;
    let url = app.url("/v1/monitors/job/events");
    let send = |body: Vec<u8>, key: Option<String>, url: String| {
        let http = app.http.clone();
        async move {
            let mut request = http.post(url).header("Content-Type", "application/json").body(body);
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.expect("a JSON error body");
            (status, body["code"].as_str().unwrap().to_string())
        }
    };
    let key = Some(app.key.clone());
    let big = format!("{{\"type\": \"completed\", \"output\": \"{}\"}}", "x".repeat(1024 * 1024));
    /// (body, key, url, expected status, expected code)
    type Case = (Vec<u8>, Option<String>, String, StatusCode, &'static str);
    let cases: Vec<Case> = vec![
        (b"{\"type\": \"heartbeat\"".to_vec(), key.clone(), url.clone(), StatusCode::BAD_REQUEST, "malformed_json"),
        (b"[1, 2]".to_vec(), key.clone(), url.clone(), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            b"{\"type\": \"exploded\"}".to_vec(),
            key.clone(),
            url.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_event_type",
        ),
        (
            b"{\"message\": \"no type\"}".to_vec(),
            key.clone(),
            url.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_type",
        ),
        (big.into_bytes(), key.clone(), url.clone(), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        (
            b"{\"type\": \"heartbeat\"}".to_vec(),
            key.clone(),
            app.url("/v1/monitors/Not%20A%20Slug/events"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_slug",
        ),
        (b"{\"type\": \"heartbeat\"}".to_vec(), None, url.clone(), StatusCode::UNAUTHORIZED, "unauthorized"),
        (b"{\"type\": \"heartbeat\"}".to_vec(), Some(foreign), url.clone(), StatusCode::NOT_FOUND, "monitor_not_found"),
        (
            b"{\"type\": \"heartbeat\"}".to_vec(),
            key.clone(),
            app.url("/v1/monitors/unknown/events"),
            StatusCode::NOT_FOUND,
            "monitor_not_found",
        ),
        (
            b"{\"type\": \"completed\", \"exit_code\": 5000000000}".to_vec(),
            key.clone(),
            url.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
        ),
        (
            b"{\"type\": \"heartbeat\", \"sent_at\": \"yesterday\"}".to_vec(),
            key.clone(),
            url.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
        ),
        (
            b"{\"type\": \"heartbeat\", \"metadata\": [1]}".to_vec(),
            key.clone(),
            url.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
        ),
        (
            b"{\"type\": \"started\", \"run_id\": \"\"}".to_vec(),
            key.clone(),
            url.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
        ),
    ];
    for (body, key, url, status, code) in cases {
        let (got_status, got_code) = send(body, key, url.clone()).await;
        assert_eq!((got_status, got_code.as_str()), (status, code), "{url}");
    }
    // A 1 MiB heartbeat body too.
    let response = app
        .http
        .post(app.url("/v1/monitors/job/heartbeat"))
        .bearer_auth(&app.key)
        .body(vec![b'a'; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.log().await, before, "nothing was recorded by refused requests");
    let monitor: Value = app.get("/v1/monitors/job").await.json().await.unwrap();
    assert_eq!(monitor["status"], "up");
}
