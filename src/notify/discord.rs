//! Discord, through a webhook: a JSON POST with one embed (title, description, link, colour,
//! fields, timestamp). Mentions are disabled so that no monitor output can ping `@everyone`.
//! Discord answers `204 No Content`; it has no idempotency field for webhooks.

use reqwest::Method;
use serde_json::{Value, json};

use super::Delivery;
use super::http::{Outgoing, send};
use super::text::{colour, cut, render};

pub fn message(out: &Outgoing<'_>) -> Value {
    let n = out.notification;
    let t = render(n);
    let mut description = format!("{}\n{}", t.what, t.since);
    if let Some(quote) = &t.quote {
        description.push_str(&format!("\n```\n{}\n```", quote.replace("```", "'''")));
    }
    let fields: Vec<Value> = t
        .facts
        .iter()
        .take(25)
        .map(|(name, value)| json!({"name": name, "value": cut(value, 1024), "inline": *name != "Last event"}))
        .collect();
    let mut embed = json!({
        "title": cut(&t.title, 256),
        "description": cut(&description, 4096),
        "color": colour(n),
        "fields": fields,
        "timestamp": n.resolved_at.unwrap_or(n.opened_at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "footer": {"text": format!("telltale · {}", n.client)},
    });
    if !t.link.is_empty() {
        embed["url"] = t.link.clone().into();
    }
    let mut body = json!({"embeds": [embed], "allowed_mentions": {"parse": []}});
    if let Some(username) = out.str("username") {
        body["username"] = username.into();
    }
    body
}

pub async fn send_discord(out: &Outgoing<'_>) -> Delivery {
    let url = match out.required("url") {
        Ok(url) => url,
        Err(failed) => return failed,
    };
    send(out.request(Method::POST, url).json(&message(out))).await
}
