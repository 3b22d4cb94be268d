//! API keys over HTTP: issue, list, revoke; rotation per generation with the due header;
//! expiry recorded in the log; the audit replayed from the log; rate limits and lock-outs.

use reqwest::StatusCode;
use serde_json::{Value, json};
use telltale_domain::client::Scope;

use crate::common::*;

const ROTATION: &str = "telltale-key-rotation";

async fn body(response: reqwest::Response) -> (StatusCode, Option<String>, Value) {
    let status = response.status();
    let header = response.headers().get(ROTATION).map(|v| v.to_str().unwrap().to_string());
    (status, header, response.json().await.unwrap_or(Value::Null))
}

/// Issues a key of `acme` through the API with these settings; returns (token, id).
async fn create_key(app: &TestApp, settings: Value) -> (String, String) {
    let (status, _, created) = body(app.post("/v1/keys", settings).await).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["key"].as_str().unwrap().to_string();
    app.secrets.remember(&token);
    (token, created["id"].as_str().unwrap().to_string())
}

async fn rotate(app: &TestApp, key: &str) -> (StatusCode, Option<String>, Value) {
    let (status, header, answer) = body(app.post_as(key, "/v1/keys/rotate", json!({})).await).await;
    if let Some(new) = answer["key"].as_str() {
        app.secrets.remember(new);
    }
    (status, header, answer)
}

async fn beat_as(app: &TestApp, key: &str, slug: &str) -> (StatusCode, Option<String>, Value) {
    body(app.post_as(key, &format!("/v1/monitors/{slug}/heartbeat"), json!({})).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_key_says_so_on_every_response_and_rotates_once_per_generation() {
    let app = TestApp::spawn().await;
    app.create_monitor("job", "1m", "1m").await;
    let (k0, id0) =
        create_key(&app, json!({"scopes": ["ingest"], "rotate_every": "1m", "overlap": "30s", "label": "web"})).await;
    let (status, header, _) = beat_as(&app, &k0, "job").await;
    assert_eq!((status, header), (StatusCode::OK, None), "not due yet");

    app.advance(secs(60)).await;
    let (status, header, _) = beat_as(&app, &k0, "job").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header.as_deref(), Some("due; since=2026-03-01T12:01:00Z; successor=pending"));
    let (status, header, _) = beat_as(&app, &k0, "no-such-monitor").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(header.is_some(), "errors carry the header too");
    let (status, header, _) = body(app.get_as(&k0, "/v1/monitors").await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(header.is_some(), "a refusal for a missing scope carries it too");

    // Three processes holding the key rotate at once: one successor, recorded once.
    app.advance(secs(1)).await;
    let answers = futures::future::join_all((0..3).map(|_| rotate(&app, &k0))).await;
    let successors: Vec<&str> = answers.iter().map(|(_, _, a)| a["key"].as_str().unwrap()).collect();
    assert!(answers.iter().all(|(s, _, _)| *s == StatusCode::OK), "{answers:?}");
    // Each answer's header says what is now true of the calling key: its successor is issued.
    for (_, header, _) in &answers {
        assert_eq!(header.as_deref(), Some("due; successor=issued; expires=2026-03-01T12:01:31Z"));
    }
    assert!(successors.iter().all(|k| *k == successors[0]), "one successor for all");
    assert_eq!(answers.iter().filter(|(_, _, a)| a["rotated_now"] == true).count(), 1);
    let k1 = successors[0].to_string();
    assert_ne!(k1, k0);
    let first = &answers[0].2;
    assert_eq!((first["generation"].as_u64(), first["scopes"].clone()), (Some(1), json!(["ingest"])));
    assert_eq!(first["predecessor_expires_at"], "2026-03-01T12:01:31Z");
    assert_eq!(first["due_at"], "2026-03-01T12:02:01Z");
    assert_eq!(app.log_types("client:acme").await.iter().filter(|t| *t == "KeyRotated").count(), 1);

    // Both work during the overlap; the predecessor says where it stands.
    let (status, header, _) = beat_as(&app, &k0, "job").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header.as_deref(), Some("due; successor=issued; expires=2026-03-01T12:01:31Z"));
    assert_eq!(beat_as(&app, &k1, "job").await.1, None, "the successor is not due");
    let (_, _, again) = rotate(&app, &k0).await;
    assert_eq!((again["key"].as_str(), again["rotated_now"].as_bool()), (Some(k1.as_str()), Some(false)));

    // The overlap ends: the predecessor stops, and its expiry is recorded with its instant.
    app.advance(secs(30)).await;
    let (status, _, refused) = beat_as(&app, &k0, "job").await;
    assert_eq!((status, refused["message"].as_str()), (StatusCode::UNAUTHORIZED, Some("the API key has expired")));
    assert_eq!(rotate(&app, &k0).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(beat_as(&app, &k1, "job").await.0, StatusCode::OK);
    let expired: Vec<Value> = app
        .log()
        .await
        .into_iter()
        .filter(|e| e.stream_id == "client:acme" && e.event_type == "KeyExpired")
        .map(|e| e.data)
        .collect();
    assert_eq!(expired, [json!({"key_id": id0, "at": "2026-03-01T12:01:31Z"})]);

    let listed: Value = app.get("/v1/keys").await.json().await.unwrap();
    let by_id = |id: &str| listed["keys"].as_array().unwrap().iter().find(|k| k["id"] == id).unwrap().clone();
    let old = by_id(&id0);
    assert_eq!((old["status"].as_str(), old["successor"].as_str()), (Some("expired"), first["id"].as_str()));
    let new = by_id(first["id"].as_str().unwrap());
    assert_eq!((new["status"].as_str(), new["generation"].as_u64()), (Some("active"), Some(1)));
    assert_eq!((new["predecessor"].as_str(), new["lineage"].as_str()), (Some(id0.as_str()), Some(id0.as_str())));
    assert_eq!((new["rotate_every"].as_str(), new["overlap"].as_str()), (Some("1m"), Some("30s")));
    let text = listed.to_string();
    assert!(!text.contains(&k1[20..]) && !text.contains("secret"), "no secret or hash is listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_refuses_keys_that_are_not_due_and_follows_a_line_to_its_newest_key() {
    let app = TestApp::spawn().await;
    let (status, _, refused) = rotate(&app, &app.key).await;
    assert_eq!((status, refused["code"].as_str()), (StatusCode::CONFLICT, Some("rotation_not_configured")));
    let (k0, _) = create_key(&app, json!({"scopes": ["read"], "rotate_every": "1m", "overlap": "5m"})).await;
    let (status, _, refused) = rotate(&app, &k0).await;
    assert_eq!((status, refused["code"].as_str()), (StatusCode::CONFLICT, Some("rotation_not_due")));
    let message = refused["message"].as_str().unwrap();
    assert!(message.ends_with("not due for rotation before 2026-03-01T12:01:00Z"), "RFC 3339: {refused}");

    app.advance(secs(60)).await;
    let (_, _, first) = rotate(&app, &k0).await;
    let k1 = first["key"].as_str().unwrap().to_string();
    app.advance(secs(60)).await;
    let (_, _, second) = rotate(&app, &k1).await;
    assert_eq!(second["generation"], 2);
    // A process that still holds k0 (inside its long overlap) is handed the newest key.
    let (status, _, from_k0) = rotate(&app, &k0).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(from_k0["key"], second["key"]);
    assert_eq!(app.log_types("client:acme").await.iter().filter(|t| *t == "KeyRotated").count(), 2);

    for bad in [json!({"rotate_every": "30s"}), json!({"overlap": "1m"}), json!({"scopes": ["root"]})] {
        let (status, _, refused) = body(app.post("/v1/keys", bad.clone()).await).await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_value")),
            "{bad}"
        );
    }
    let (status, _, refused) = body(app.post("/v1/keys", json!({"rotate_every": "1m", "overlap": "5s"})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_listed_read_and_revoked_only_within_their_client() {
    let app = TestApp::spawn().await;
    let (ingest, id) = create_key(&app, json!({"scopes": ["ingest"], "label": "cron box"})).await;
    let one: Value = app.get(&format!("/v1/keys/{id}")).await.json().await.unwrap();
    assert_eq!((one["label"].as_str(), one["scopes"].clone()), (Some("cron box"), json!(["ingest"])));
    assert!(one["issued_by"].as_str().unwrap().starts_with("key:"), "{one}");

    let globex = app.key_for("globex", &Scope::DEFAULT).await;
    for response in [
        app.get_as(&globex, &format!("/v1/keys/{id}")).await,
        app.http.delete(app.url(&format!("/v1/keys/{id}"))).bearer_auth(&globex).send().await.unwrap(),
    ] {
        let (status, _, refused) = body(response).await;
        assert_eq!((status, refused["code"].as_str()), (StatusCode::NOT_FOUND, Some("key_not_found")));
    }
    let theirs: Value = app.get_as(&globex, "/v1/keys").await.json().await.unwrap();
    assert!(!theirs.to_string().contains(&id), "another client's list never names the key");
    assert_eq!(app.get_as(&ingest, "/v1/keys").await.status(), StatusCode::FORBIDDEN);

    let gone = app.http.delete(app.url(&format!("/v1/keys/{id}"))).bearer_auth(&app.key).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let (status, _, refused) = beat_as(&app, &ingest, "job").await;
    assert_eq!((status, refused["message"].as_str()), (StatusCode::UNAUTHORIZED, Some("the API key has been revoked")));
    let one: Value = app.get(&format!("/v1/keys/{id}")).await.json().await.unwrap();
    assert_eq!(one["status"], "revoked");
    assert!(one["revoked_by"].as_str().unwrap().starts_with("key:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_replays_a_keys_whole_life_from_the_log_and_answers_was_it_valid_at_t() {
    let app = TestApp::spawn().await;
    let (k0, id0) = create_key(&app, json!({"scopes": ["ingest"], "rotate_every": "1m", "overlap": "30s"})).await;
    app.advance(secs(60)).await;
    let (_, _, first) = rotate(&app, &k0).await;
    let id1 = first["id"].as_str().unwrap().to_string();
    app.advance(secs(60)).await;
    let (_, _, second) = rotate(&app, first["key"].as_str().unwrap()).await;
    let id2 = second["id"].as_str().unwrap().to_string();
    app.advance(secs(10)).await;
    app.http.delete(app.url(&format!("/v1/keys/{id2}"))).bearer_auth(&app.key).send().await.unwrap();
    app.advance(secs(60)).await;

    let audit: Value = app.get(&format!("/v1/audit/keys?key_id={id1}")).await.json().await.unwrap();
    let actions: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_string(), e["key_id"].as_str().unwrap().to_string()))
        .collect();
    let expected = [
        ("issued", &id0),
        ("rotated", &id0),
        ("expired", &id0),
        ("rotated", &id1),
        ("revoked", &id2),
        ("expired", &id1),
    ];
    assert_eq!(actions, expected.map(|(a, k)| (a.to_string(), k.clone())), "{audit}");
    let entries = audit["entries"].as_array().unwrap();
    assert!(entries[1]["by"].as_str().unwrap().starts_with(&format!("key:{id0} (127.0.0.1")), "{audit}");
    assert_eq!(entries[2]["at"], "2026-03-01T12:01:30Z", "expired when the overlap ended");
    assert_eq!(entries.iter().filter_map(|e| e["generation"].as_u64()).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(audit["keys"].as_array().unwrap().len(), 3, "the key's whole line, not the admin key");

    for (at, valid) in [
        ("2026-03-01T11:59:59Z", vec![]),
        ("2026-03-01T12:00:30Z", vec![&id0]),
        ("2026-03-01T12:01:10Z", vec![&id0, &id1]),
        ("2026-03-01T12:02:05Z", vec![&id1, &id2]),
        ("2026-03-01T12:02:20Z", vec![&id1]),
        ("2026-03-01T12:03:00Z", vec![]),
    ] {
        let replayed: Value = app.get(&format!("/v1/audit/keys?key_id={id0}&at={at}")).await.json().await.unwrap();
        let mut got: Vec<String> =
            replayed["valid_at"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        got.sort();
        let mut want: Vec<String> = valid.into_iter().cloned().collect();
        want.sort();
        assert_eq!(got, want, "valid at {at}");
    }
    let whole: Value = app.get("/v1/audit/keys").await.json().await.unwrap();
    let text = whole.to_string();
    for secret in [&k0, first["key"].as_str().unwrap(), second["key"].as_str().unwrap(), &app.key] {
        assert!(!text.contains(&secret[20..]), "never a secret");
    }
    assert!(!text.contains("hash") && !text.contains("sealed"), "never a hash: {text}");

    let globex = app.key_for("globex", &Scope::DEFAULT).await;
    let theirs: Value = app.get_as(&globex, "/v1/audit/keys").await.json().await.unwrap();
    assert!(!theirs.to_string().contains(&id0));
    assert_eq!(app.get_as(&globex, &format!("/v1/audit/keys?key_id={id0}")).await.status(), StatusCode::NOT_FOUND);

    // The same answers after the read models are rebuilt from the log.
    let keys_before: Value = app.get("/v1/keys").await.json().await.unwrap();
    app.app.projector.rebuild(|_, _| {}).await.unwrap();
    let keys_after: Value = app.get("/v1/keys").await.json().await.unwrap();
    assert_eq!(keys_before, keys_after);
    let whole_after: Value = app.get("/v1/audit/keys").await.json().await.unwrap();
    assert_eq!(whole, whole_after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_nothing_is_recorded() {
    let app = TestApp::spawn_configured(Options::default(), |config| {
        config.limits.key_requests_per_second = 1.0;
        config.limits.key_burst = 3;
    })
    .await;
    let ingest = app.key_for("acme", &[Scope::Ingest, Scope::Provision]).await;
    for _ in 0..3 {
        assert_eq!(beat_as(&app, &ingest, "job").await.0, StatusCode::OK);
    }
    let before = app.log().await.len();
    let response = app.post_as(&ingest, "/v1/monitors/job/heartbeat", json!({})).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    let refused: Value = response.json().await.unwrap();
    assert_eq!(refused["code"], "rate_limited");
    assert!(refused["message"].as_str().unwrap().contains("nothing was recorded"), "{refused}");
    assert_eq!(app.log().await.len(), before, "the refused beat is not in the log");
    assert_eq!(app.get("/v1/monitors").await.status(), StatusCode::OK, "another key has its own rate");
    app.advance(secs(1)).await;
    assert_eq!(beat_as(&app, &ingest, "job").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secrets_lock_one_address_out_of_a_key_and_the_lock_out_is_audited() {
    let app = TestApp::spawn_configured(Options::default(), |config| {
        config.limits.key_failures_before_lockout = 3;
    })
    .await;
    let (id, _) = app.key[3..].split_once('_').unwrap();
    let wrong = format!("tt_{id}_{}", "0".repeat(64));
    for _ in 0..2 {
        assert_eq!(app.get_as(&wrong, "/v1/monitors").await.status(), StatusCode::UNAUTHORIZED);
    }
    let (status, _, refused) = body(app.get_as(&wrong, "/v1/monitors").await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(refused["message"].as_str().unwrap().contains("locked out until"), "{refused}");
    let response = app.get("/v1/monitors").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "the right secret from that address waits too");
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(app.log_types("client:acme").await.iter().filter(|t| *t == "KeyLockedOut").count(), 1);
    app.advance(secs(15 * 60)).await;
    assert_eq!(app.get("/v1/monitors").await.status(), StatusCode::OK, "the lock ends");
    let audit: Value = app.get("/v1/audit/keys").await.json().await.unwrap();
    let locked = audit["entries"].as_array().unwrap().iter().find(|e| e["action"] == "locked_out").unwrap().clone();
    assert_eq!((locked["key_id"].as_str(), locked["source"].as_str()), (Some(id), Some("127.0.0.1")));
}
