//! PagerDuty Events API v2: `POST {api_url}/v2/enqueue`. An open alert is a `trigger`, a
//! resolved one a `resolve` (an acknowledged one an `acknowledge`), all with the alert's id as
//! `dedup_key`: PagerDuty folds every repeat of a trigger into one incident, and the resolve
//! closes that incident. PagerDuty answers `202 Accepted`.

use reqwest::Method;
use serde_json::{Value, json};

use super::Delivery;
use super::http::{Outgoing, send};
use super::text::{cut, render};

pub fn event(out: &Outgoing<'_>, routing_key: &str) -> Value {
    let n = out.notification;
    let dedup_key = n.alert_id.to_string();
    let action = match (n.state.as_str(), n.transition.as_str()) {
        ("resolved", _) => "resolve",
        // Older notifications said `"state": "acknowledged"`; an acknowledged alert is open.
        ("acknowledged", _) | (_, "acknowledged") => "acknowledge",
        _ => "trigger",
    };
    if action != "trigger" {
        return json!({"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key});
    }
    let t = render(n);
    let source = n
        .host
        .clone()
        .filter(|_| n.is_host())
        .or_else(|| n.last_event.as_ref().and_then(|e| e.host.clone()))
        .unwrap_or_else(|| n.monitor.clone());
    let mut details = json!({
        "monitor": n.monitor,
        "cause": n.cause,
        "message": n.message,
        "since": t.since,
        "notification_id": n.notification_id,
    });
    if let Some(last) = &t.last {
        details["last_event"] = last.clone().into();
    }
    if n.is_host() {
        details["monitors"] = json!(n.monitors);
    }
    if let Some(quote) = &t.quote {
        details["output"] = quote.clone().into();
    }
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": cut(&format!("{}: {}", t.title, t.what), 1024),
            "source": source,
            "severity": out.str("severity").unwrap_or("critical"),
            "timestamp": n.opened_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "component": n.monitor,
            "group": n.client,
            "class": n.cause,
            "custom_details": details,
        },
        "client": "telltale",
    });
    if !t.link.is_empty() {
        body["client_url"] = t.link.clone().into();
        body["links"] = json!([{"href": t.link, "text": "Open in telltale"}]);
    }
    body
}

pub async fn send_pagerduty(out: &Outgoing<'_>) -> Delivery {
    let (key, url) = match (out.required("routing_key"), out.endpoint("api_url", "/v2/enqueue")) {
        (Ok(key), Ok(url)) => (key, url),
        (Err(failed), _) | (_, Err(failed)) => return failed,
    };
    send(out.request(Method::POST, &url).json(&event(out, key))).await
}
