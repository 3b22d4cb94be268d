//! ntfy: a JSON publish (`POST {server}/` with `topic`, `title`, `message`, `priority`, `tags`
//! and `click`), with an access token (`Authorization: Bearer`) or basic authentication when
//! the topic is protected. ntfy answers `200` with the message it created.

use reqwest::Method;
use serde_json::{Value, json};

use super::Delivery;
use super::http::{Outgoing, send};
use super::text::{plain_body, render};

pub fn message(out: &Outgoing<'_>) -> Value {
    let n = out.notification;
    let t = render(n);
    let (priority, tag) =
        if n.is_resolution() { (3, "white_check_mark") } else { (out.i64("priority").unwrap_or(4), "rotating_light") };
    let mut body = json!({
        "topic": out.str("topic").unwrap_or_default(),
        "title": t.title,
        "message": plain_body(&t).trim_end(),
        "priority": priority,
        "tags": [tag],
    });
    if !t.link.is_empty() {
        body["click"] = t.link.clone().into();
    }
    body
}

pub async fn send_ntfy(out: &Outgoing<'_>) -> Delivery {
    let url = match out.endpoint("server", "/") {
        Ok(url) => url,
        Err(failed) => return failed,
    };
    let mut request = out.request(Method::POST, &url).json(&message(out));
    if let Some(token) = out.str("token") {
        request = request.bearer_auth(token);
    } else if let (Some(user), Some(password)) = (out.str("username"), out.str("password")) {
        request = request.basic_auth(user, Some(password));
    }
    send(request).await
}
