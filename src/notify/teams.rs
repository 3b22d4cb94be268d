//! Microsoft Teams, through a Workflows webhook ("When a Teams webhook request is received") or
//! a legacy incoming webhook: a JSON POST of a `message` with one Adaptive Card attachment.
//! Workflows answer `202 Accepted`; Teams has no idempotency field.

use reqwest::Method;
use serde_json::{Value, json};

use super::Delivery;
use super::http::{Outgoing, send};
use super::text::render;

pub fn card(out: &Outgoing<'_>) -> Value {
    let n = out.notification;
    let t = render(n);
    let facts: Vec<Value> = t.facts.iter().map(|(title, value)| json!({"title": title, "value": value})).collect();
    let mut body = vec![
        json!({"type": "TextBlock", "text": t.title, "weight": "Bolder", "size": "Medium", "wrap": true,
               "color": if n.is_resolution() { "Good" } else { "Attention" }}),
        json!({"type": "TextBlock", "text": t.what, "wrap": true}),
        json!({"type": "TextBlock", "text": t.since, "wrap": true, "isSubtle": true, "spacing": "None"}),
        json!({"type": "FactSet", "facts": facts}),
    ];
    if let Some(quote) = &t.quote {
        body.push(json!({"type": "TextBlock", "text": quote, "wrap": true, "fontType": "Monospace", "isSubtle": true}));
    }
    let mut content = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if !t.link.is_empty() {
        content["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open in telltale", "url": t.link}]);
    }
    json!({
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": content}],
    })
}

pub async fn send_teams(out: &Outgoing<'_>) -> Delivery {
    let url = match out.required("url") {
        Ok(url) => url,
        Err(failed) => return failed,
    };
    send(out.request(Method::POST, url).json(&card(out))).await
}
