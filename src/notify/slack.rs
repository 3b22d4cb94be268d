//! Slack, through an incoming webhook: a JSON POST of `text` (the notification's fallback) and
//! Block Kit `blocks`. Slack answers `200 ok`; it has no idempotency field.

use reqwest::Method;
use serde_json::{Value, json};

use super::Delivery;
use super::http::{Outgoing, send};
use super::text::{Text, cut, escape_slack, render};

/// The message Slack (and anything that takes Slack's format) is sent.
pub fn message(t: &Text) -> Value {
    let mut body = format!("{}\n{}", escape_slack(&t.what), escape_slack(&t.since));
    if let Some(last) = &t.last {
        body.push_str(&format!("\n*Last event:* {}", escape_slack(last)));
    }
    if let Some(quote) = &t.quote {
        body.push_str(&format!("\n```{}```", escape_slack(quote).replace("```", "'''")));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&t.title, 150), "emoji": false}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&body, 3000)}}),
    ];
    if !t.link.is_empty() {
        blocks.push(json!({"type": "context", "elements": [
            {"type": "mrkdwn", "text": format!("<{}|Open in telltale>", t.link)}
        ]}));
    }
    json!({"text": cut(&format!("{}: {}", t.title, t.what), 3000), "blocks": blocks})
}

pub async fn send_slack(out: &Outgoing<'_>) -> Delivery {
    let url = match out.required("url") {
        Ok(url) => url,
        Err(failed) => return failed,
    };
    send(out.request(Method::POST, url).json(&message(&render(out.notification)))).await
}
