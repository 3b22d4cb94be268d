//! Opsgenie Alert API: an open alert is created (`POST {api_url}/v2/alerts`) with the alert's id
//! as `alias`, which Opsgenie de-duplicates on while the alert is open; a resolution closes it
//! (`POST /v2/alerts/{alias}/close?identifierType=alias`). Authenticated with
//! `Authorization: GenieKey …`; Opsgenie answers `202 Accepted`.

use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::Delivery;
use super::http::{Outgoing, send};
use super::text::{cut, plain_body, render};

pub fn create(out: &Outgoing<'_>) -> Value {
    let n = out.notification;
    let t = render(n);
    let mut tags: Vec<String> = n.tags.iter().take(19).cloned().collect();
    tags.push("telltale".into());
    json!({
        "message": cut(&t.title, 130),
        "alias": n.alert_id.to_string(),
        "description": cut(&plain_body(&t), 15_000),
        "tags": tags,
        "details": {
            "monitor": n.monitor,
            "client": n.client,
            "cause": n.cause,
            "link": t.link,
            "notification_id": n.notification_id.to_string(),
        },
        "entity": n.monitor,
        "source": "telltale",
        "priority": out.str("priority").unwrap_or("P2"),
    })
}

pub async fn send_opsgenie(out: &Outgoing<'_>) -> Delivery {
    let key = match out.required("api_key") {
        Ok(key) => key,
        Err(failed) => return failed,
    };
    let n = out.notification;
    // Older notifications said `"state": "acknowledged"`; an acknowledged alert is open.
    let action = if n.is_resolution() {
        Some("close")
    } else if n.transition == "acknowledged" || n.state == "acknowledged" {
        Some("acknowledge")
    } else {
        None
    };
    let (url, body) = match action {
        Some(action) => {
            let base = match out.endpoint("api_url", "") {
                Ok(base) => base,
                Err(failed) => return failed,
            };
            let Ok(mut url) = Url::parse(&base) else {
                return Delivery::failed("the channel's api_url is not a valid URL");
            };
            if let Ok(mut path) = url.path_segments_mut() {
                path.pop_if_empty().extend(["v2", "alerts", &n.alert_id.to_string(), action]);
            }
            url.query_pairs_mut().append_pair("identifierType", "alias");
            let t = render(n);
            (url.to_string(), json!({"source": "telltale", "note": cut(&format!("{}\n{}", t.what, t.since), 25_000)}))
        }
        None => match out.endpoint("api_url", "/v2/alerts") {
            Ok(url) => (url, create(out)),
            Err(failed) => return failed,
        },
    };
    send(out.request(Method::POST, &url).header("Authorization", format!("GenieKey {key}")).json(&body)).await
}
