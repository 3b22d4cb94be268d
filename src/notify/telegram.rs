//! Telegram Bot API: `POST {api_url}/bot{token}/sendMessage` with `chat_id`, HTML `text`
//! (`parse_mode: HTML`) and, for forum supergroups, `message_thread_id`. Telegram answers
//! `{"ok": true, …}`; it has no idempotency field. The token is part of the URL, which is why no
//! error or log line ever shows a request's URL.

use reqwest::Method;
use serde_json::{Value, json};

use super::Delivery;
use super::http::{Outgoing, send};
use super::text::{Text, cut, escape_html, render};

pub fn html(t: &Text) -> String {
    let mut out =
        format!("<b>{}</b>\n{}\n{}", escape_html(&t.title), escape_html(&cut(&t.what, 1000)), escape_html(&t.since));
    if let Some(last) = &t.last {
        out.push_str(&format!("\nLast event: {}", escape_html(last)));
    }
    if let Some(quote) = &t.quote {
        out.push_str(&format!("\n<pre>{}</pre>", escape_html(&cut(quote, 1500))));
    }
    if !t.link.is_empty() {
        out.push_str(&format!("\n<a href=\"{}\">Open in telltale</a>", escape_html(&t.link)));
    }
    out
}

pub fn message(out: &Outgoing<'_>) -> Value {
    let mut body = json!({
        "chat_id": out.config.get("chat_id").cloned().unwrap_or(Value::Null),
        "text": html(&render(out.notification)),
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": true},
    });
    if let Some(thread) = out.i64("message_thread_id") {
        body["message_thread_id"] = thread.into();
    }
    body
}

pub async fn send_telegram(out: &Outgoing<'_>) -> Delivery {
    let (token, base) = match (out.required("bot_token"), out.endpoint("api_url", "")) {
        (Ok(token), Ok(base)) => (token, base),
        (Err(failed), _) | (_, Err(failed)) => return failed,
    };
    let url = format!("{base}/bot{token}/sendMessage");
    send(out.request(Method::POST, &url).json(&message(out))).await
}
