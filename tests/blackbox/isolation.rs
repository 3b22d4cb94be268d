//! Tenant isolation, driven by the OpenAPI spec the server serves: every operation is called
//! with a key of another client and with keys of the owning client that lack its scope. An
//! operation added later is covered without editing this test; one it cannot build a request
//! for fails it.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use telltale_domain::client::Scope;

use crate::common::*;

/// What client A owns, to name in requests and to look for in answers.
struct Owned {
    slug: String,
    channel_id: String,
    channel_name: String,
    alert_id: String,
    run_id: String,
    /// A maintenance window of A's.
    window_id: String,
    /// A key of A's that the test never calls with (revoking it changes nothing else).
    victim_key_id: String,
    label: String,
    host: String,
    key_ids: Vec<String>,
    secrets: Vec<String>,
}

impl Owned {
    /// Everything of A's that must never appear in an answer to someone else.
    fn markers(&self) -> Vec<&str> {
        let mut markers = vec![
            self.slug.as_str(),
            &self.channel_id,
            &self.channel_name,
            &self.alert_id,
            &self.run_id,
            &self.window_id,
            &self.label,
            &self.host,
        ];
        markers.extend(self.key_ids.iter().map(String::as_str));
        markers.extend(self.secrets.iter().map(|s| &s[20..]));
        markers
    }
}

/// A value for a path or query parameter: A's resource when `owned`, else one that does not exist.
fn parameter(name: &str, before: &str, owned: Option<&Owned>) -> Option<String> {
    let pick = |mine: &str, none: &str| Some(owned.map_or(none.to_string(), |_| mine.to_string()));
    let o = owned;
    match (name, before) {
        ("slug", _) | ("monitor", _) => pick(o.map_or("", |o| &o.slug), "zz-not-there"),
        ("id", "channels") | ("channel_id", _) => {
            pick(o.map_or("", |o| &o.channel_id), "00000000-0000-4000-8000-000000000000")
        }
        ("id", "alerts") | ("alert_id", _) => {
            pick(o.map_or("", |o| &o.alert_id), "00000000-0000-4000-8000-000000000001")
        }
        ("id", "maintenance") => pick(o.map_or("", |o| &o.window_id), "00000000-0000-4000-8000-000000000003"),
        ("key_id", _) | ("id", "keys") => pick(o.map_or("", |o| &o.victim_key_id), "0000000000000000"),
        ("run_id", _) | ("id", "runs") => pick(o.map_or("", |o| &o.run_id), "zz-no-run"),
        ("host", _) => pick(o.map_or("", |o| &o.host), "zz-no-host"),
        _ => None,
    }
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            resolve(spec, &spec["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// A minimal value for a schema: its example, or its required fields filled in.
fn example(spec: &Value, schema: &Value, at: &str) -> Value {
    let schema = resolve(spec, schema);
    if let Some(example) = schema.get("example").or_else(|| schema["examples"].get(0)) {
        return example.clone();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(choices) = schema[key].as_array() {
            let choice = choices.iter().find(|c| c["type"] != "null").expect("a choice that is not null");
            return example(spec, choice, at);
        }
    }
    if let Some(parts) = schema["allOf"].as_array() {
        let mut merged = Map::new();
        for part in parts {
            if let Value::Object(fields) = example(spec, part, at) {
                merged.extend(fields);
            }
        }
        return Value::Object(merged);
    }
    let kind = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(types) => types.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("null").into(),
        _ if schema.get("properties").is_some() => "object".into(),
        _ if schema.as_object().is_some_and(|o| o.is_empty()) => return json!({}),
        _ => panic!("cannot build a value for the schema at {at}: {schema}"),
    };
    match kind.as_str() {
        "object" => {
            let mut fields = Map::new();
            for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                fields.insert(name.into(), example(spec, &schema["properties"][name], &format!("{at}.{name}")));
            }
            Value::Object(fields)
        }
        "string" => match schema["format"].as_str() {
            Some("date-time") => json!("2026-03-01T12:00:00Z"),
            Some("uuid") => json!("00000000-0000-4000-8000-000000000002"),
            _ => json!("x"),
        },
        "integer" | "number" => json!(1),
        "boolean" => json!(false),
        "array" => json!([]),
        "null" => Value::Null,
        other => panic!("cannot build a value of type {other} at {at}"),
    }
}

struct Operation {
    method: Method,
    path: String,
    /// Each alternative's scopes; `None` for an operation without security.
    security: Option<Vec<Vec<Scope>>>,
    body: Option<Value>,
    names_a_resource: bool,
}

impl Operation {
    fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The URL with A's resources (`owned`) or with ones that do not exist.
    fn url(&self, app: &TestApp, spec_op: &Value, owned: Option<&Owned>) -> String {
        let segments: Vec<&str> = self.path.split('/').collect();
        let mut path = Vec::new();
        for (i, segment) in segments.iter().enumerate() {
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => path.push(parameter(name, segments[i - 1], owned).unwrap_or_else(|| {
                    panic!("cannot build a request for {}: add a value for the path parameter `{name}`", self.label())
                })),
                None => path.push(segment.to_string()),
            }
        }
        let mut query = Vec::new();
        for p in spec_op["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] == "query") {
            let name = p["name"].as_str().unwrap();
            match parameter(name, "", owned) {
                Some(value) => query.push(format!("{name}={value}")),
                None if p["required"] == true => {
                    panic!("cannot build a request for {}: add a value for the query parameter `{name}`", self.label())
                }
                None => {}
            }
        }
        let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
        app.url(&format!("{}{query}", path.join("/")))
    }
}

fn operations(spec: &Value) -> Vec<(Operation, Value)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let security = op["security"].as_array().map(|alternatives| {
                alternatives
                    .iter()
                    .map(|alt| {
                        alt["bearer"]
                            .as_array()
                            .unwrap_or_else(|| panic!("{method} {path}: a security requirement without `bearer`"))
                            .iter()
                            .map(|s| {
                                let name = s.as_str().unwrap();
                                Scope::parse(name).unwrap_or_else(|| panic!("{method} {path}: unknown scope `{name}`"))
                            })
                            .collect()
                    })
                    .collect()
            });
            let body = op["requestBody"]["content"].as_object().map(|content| {
                let (kind, media) = content.iter().next().unwrap();
                assert!(kind.contains("json"), "{method} {path}: cannot build a {kind} body");
                match media.get("example") {
                    Some(example) => example.clone(),
                    None => example(spec, &media["schema"], &format!("{method} {path}")),
                }
            });
            let names_a_resource = path.contains('{');
            out.push((Operation { method, path: path.clone(), security, body, names_a_resource }, op.clone()));
        }
    }
    out
}

async fn call(app: &TestApp, op: &Operation, url: &str, key: Option<&str>) -> (StatusCode, String) {
    let mut request = app.http.request(op.method.clone(), url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = &op.body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn client_a(app: &TestApp) -> (Owned, BTreeMap<Scope, String>) {
    let slug = "a-7f3k-billing".to_string();
    app.create_monitor(&slug, "10s", "0s").await;
    app.post(
        &format!("/v1/monitors/{slug}/events"),
        json!({"type": "started", "run_id": "a-run-q81z", "host": "a-host-w5q"}),
    )
    .await;
    app.advance(secs(20)).await;
    let alerts = app.alerts("open").await;
    let alert_id = alerts[0]["id"].as_str().expect("an open alert of A's").to_string();
    let channel = app.add_webhook("a-chan-x93", "http://127.0.0.1:9/a-hook").await;
    let window: Value = app
        .post("/v1/maintenance", json!({"from": "2030-01-01T00:00:00Z", "to": "2030-01-01T01:00:00Z"}))
        .await
        .json()
        .await
        .unwrap();
    let victim: Value =
        app.post("/v1/keys", json!({"scopes": ["read"], "label": "a-label-m4p"})).await.json().await.unwrap();
    let mut keys = BTreeMap::new();
    for scope in Scope::ALL {
        keys.insert(scope, app.key_for("acme", &[scope]).await);
    }
    let mut secrets: Vec<String> = keys.values().cloned().collect();
    secrets.push(app.key.clone());
    secrets.push(victim["key"].as_str().unwrap().to_string());
    app.secrets.remember(victim["key"].as_str().unwrap());
    let key_ids = secrets.iter().map(|s| s[3..19].to_string()).collect();
    let owned = Owned {
        slug,
        channel_id: channel["id"].as_str().unwrap().to_string(),
        channel_name: "a-chan-x93".into(),
        alert_id,
        run_id: "a-run-q81z".into(),
        window_id: window["id"].as_str().unwrap().to_string(),
        victim_key_id: victim["id"].as_str().unwrap().to_string(),
        label: "a-label-m4p".into(),
        host: "a-host-w5q".into(),
        key_ids,
        secrets,
    };
    (owned, keys)
}

fn allowed(security: &[Vec<Scope>], key: Scope) -> bool {
    security.iter().any(|alternative| alternative.iter().all(|s| *s == key))
}

fn leaks<'a>(body: &str, owned: &'a Owned) -> Vec<&'a str> {
    owned.markers().into_iter().filter(|m| body.contains(m)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_in_the_spec_refuses_other_clients_and_missing_scopes_and_leaks_nothing() {
    let app = TestApp::spawn().await;
    let (owned, a_keys) = client_a(&app).await;
    let b_key = app.key_for("globex", &Scope::DEFAULT).await;
    let spec: Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let ops = operations(&spec);
    assert!(ops.len() >= 25, "the spec lists the operations: {}", ops.len());
    let mut checked = Vec::new();

    for (op, spec_op) in &ops {
        let mine = op.url(&app, spec_op, Some(&owned));
        // Another client's key: on A's resources exactly what it gets for ones that do not
        // exist (403 or 404), and never anything of A's.
        let (status, body) = call(&app, op, &mine, Some(&b_key)).await;
        assert!(
            leaks(&body, &owned).iter().all(|m| mine.contains(m)),
            "{}: B's answer holds A's data: {body}",
            op.label()
        );
        if op.names_a_resource {
            assert!(
                status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
                "{} with another client's key: {status} {body}",
                op.label()
            );
            let missing = op.url(&app, spec_op, None);
            let (missing_status, missing_body) = call(&app, op, &missing, Some(&b_key)).await;
            assert_eq!(status, missing_status, "{}: exists vs not tells apart", op.label());
            let scrub = |text: &str, url: &str| {
                let mut text = text.to_string();
                for part in url.split(['/', '?', '&', '=']).filter(|p| p.len() > 3) {
                    text = text.replace(part, "…");
                }
                text
            };
            assert_eq!(scrub(&body, &mine), scrub(&missing_body, &missing), "{}: the answer tells apart", op.label());
        }
        let Some(security) = &op.security else { continue };
        // No key at all.
        let (status, _) = call(&app, op, &mine, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{} without a key", op.label());
        // A's own keys lacking the scope the spec names: 403, and nothing of A's.
        for (scope, key) in &a_keys {
            if allowed(security, *scope) || security.iter().any(Vec::is_empty) {
                continue;
            }
            let (status, body) = call(&app, op, &mine, Some(key)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{} with a `{}` key: {body}", op.label(), scope.as_str());
            assert!(leaks(&body, &owned).is_empty(), "{}: a 403 holds A's data: {body}", op.label());
        }
        checked.push(op.label());
    }

    // Last (they may change A's resources): a key the spec allows is not refused for its scope,
    // so the spec tells the truth both ways.
    for (op, spec_op) in &ops {
        let Some(security) = &op.security else { continue };
        let mine = op.url(&app, spec_op, Some(&owned));
        for (scope, key) in &a_keys {
            if allowed(security, *scope) || security.iter().any(Vec::is_empty) {
                let (status, body) = call(&app, op, &mine, Some(key)).await;
                assert_ne!(status, StatusCode::FORBIDDEN, "{} with a `{}` key: {body}", op.label(), scope.as_str());
            }
        }
    }
    assert!(checked.iter().any(|c| c == "DELETE /v1/keys/{key_id}"), "{checked:?}");
    let mut secrets = owned.secrets.clone();
    secrets.push(b_key);
    assert_no_secret_logged(&secrets);
}
