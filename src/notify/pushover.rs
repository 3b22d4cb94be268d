//! Pushover Message API: `POST {api_url}/1/messages.json`, form-encoded, with the application's
//! `token`, the `user` (or group) key, `title`, `message`, `url`, `priority` and `timestamp`.
//! Pushover answers `{"status": 1, …}`; it has no idempotency field.

use reqwest::Method;

use super::Delivery;
use super::http::{Outgoing, send};
use super::text::{cut, plain_body, render};

pub fn form(out: &Outgoing<'_>) -> Vec<(&'static str, String)> {
    let n = out.notification;
    let t = render(n);
    let priority = if n.is_resolution() { 0 } else { out.i64("priority").unwrap_or(1) };
    let mut form = vec![
        ("token", out.str("token").unwrap_or_default().to_string()),
        ("user", out.str("user").unwrap_or_default().to_string()),
        ("title", cut(&t.title, 250)),
        ("message", cut(plain_body(&t).trim_end(), 1024)),
        ("priority", priority.to_string()),
        ("timestamp", n.resolved_at.unwrap_or(n.opened_at).timestamp().to_string()),
    ];
    if !t.link.is_empty() && t.link.len() <= 512 {
        form.push(("url", t.link.clone()));
        form.push(("url_title", "Open in telltale".into()));
    }
    for field in ["device", "sound"] {
        if let Some(value) = out.str(field) {
            form.push((field, value.to_string()));
        }
    }
    form
}

pub async fn send_pushover(out: &Outgoing<'_>) -> Delivery {
    let url = match out.endpoint("api_url", "/1/messages.json") {
        Ok(url) => url,
        Err(failed) => return failed,
    };
    send(out.request(Method::POST, &url).form(&form(out))).await
}
