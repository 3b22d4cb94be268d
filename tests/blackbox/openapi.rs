//! The committed OpenAPI spec is the one the code generates, and the server serves it.

use crate::common::*;

#[test]
fn the_committed_spec_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
        .expect("openapi/openapi.json exists; write it with `make openapi`");
    let generated = telltale::api::openapi_json();
    assert!(committed == generated, "openapi/openapi.json is stale: run `make openapi` and commit the result");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_its_spec_and_every_path_is_documented() {
    let app = TestApp::spawn().await;
    let served: serde_json::Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = served["paths"].as_object().unwrap();
    for path in [
        "/v1/monitors",
        "/v1/monitors/{slug}",
        "/v1/monitors/{slug}/heartbeat",
        "/v1/monitors/{slug}/events",
        "/v1/monitors/{slug}/events/batch",
        "/v1/monitors/{slug}/pause",
        "/v1/monitors/{slug}/resume",
        "/v1/alerts",
        "/v1/channels",
        "/v1/channels/{id}",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    assert_eq!(served["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_names_every_monitor_status_and_the_rotation_header() {
    let app = TestApp::spawn().await;
    let served: serde_json::Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let schemas = &served["components"]["schemas"];
    assert_eq!(schemas["MonitorOut"]["properties"]["status"]["$ref"], "#/components/schemas/MonitorStatusName");
    let statuses: Vec<&str> =
        schemas["MonitorStatusName"]["enum"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    for status in ["new", "up", "early", "late", "down", "hung", "retrying", "failing", "flapping", "paused"] {
        assert!(statuses.contains(&status), "{status} in {statuses:?}");
    }
    assert!(schemas["MonitorOut"]["properties"]["retry_until"].is_object());
    let header = &served["paths"]["/v1/keys/rotate"]["post"]["responses"]["200"]["headers"]["Telltale-Key-Rotation"];
    assert!(header["description"].as_str().unwrap().contains("successor=issued"), "{header}");
    let scheme = served["components"]["securitySchemes"]["bearer"]["description"].as_str().unwrap();
    assert!(scheme.contains("Telltale-Key-Rotation") && scheme.contains("successor=pending"), "{scheme}");
}
