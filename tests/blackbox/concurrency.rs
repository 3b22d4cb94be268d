//! Many concurrent heartbeats: every 2xx answer is exactly one event in the log, and there is
//! no other.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_heartbeats_are_each_one_event() {
    let app = TestApp::spawn().await;
    app.create_monitor("hot", "1m", "0s").await;
    app.create_monitor("warm", "1m", "0s").await;
    let before = app.log().await.len();
    // Wide open: one connection per request.
    telltale::app::install_crypto();
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let slug = if i % 4 == 0 { "warm" } else { "hot" };
            let request = http.post(app.url(&format!("/v1/monitors/{slug}/heartbeat"))).bearer_auth(&app.key);
            tokio::spawn(async move {
                match request.send().await {
                    Ok(response) if response.status() == StatusCode::OK => {
                        let ack: Value = response.json().await.unwrap();
                        Some((slug, ack["position"].as_i64().unwrap()))
                    }
                    Ok(response) => panic!("unexpected {}", response.status()),
                    Err(_) => None,
                }
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for task in tasks {
        if let Some(ack) = task.await.unwrap() {
            acknowledged.push(ack);
        }
    }
    assert_eq!(acknowledged.len(), 1000, "every request was answered 200");
    let log = app.log().await;
    let new: Vec<_> = log[before..].iter().collect();
    assert_eq!(new.len(), 1000, "one event per answer, and no other");
    assert!(new.iter().all(|e| e.event_type == "HeartbeatReceived"));
    let positions: BTreeSet<i64> = acknowledged.iter().map(|(_, p)| *p).collect();
    assert_eq!(positions.len(), 1000, "every answer names its own event");
    for (slug, position) in &acknowledged {
        let event = new.iter().find(|e| e.position == *position).expect("the acknowledged event is in the log");
        assert_eq!(event.stream_id, format!("monitor:acme:{slug}"));
    }
    let versions: Vec<i64> = log.iter().filter(|e| e.stream_id == "monitor:acme:hot").map(|e| e.version).collect();
    assert_eq!(versions, (1..=versions.len() as i64).collect::<Vec<_>>(), "stream versions are dense");
    let history: Value =
        app.get("/v1/monitors/hot/events?type=HeartbeatReceived&limit=500").await.json().await.unwrap();
    assert_eq!(history["events"].as_array().unwrap().len(), 500);
}
