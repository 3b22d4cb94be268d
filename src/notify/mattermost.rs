//! Mattermost, through an incoming webhook: a JSON POST of Markdown `text`, optionally to
//! another `channel` and under another `username`. Mattermost answers `200 ok`.

use reqwest::Method;
use serde_json::json;

use super::Delivery;
use super::http::{Outgoing, send};
use super::text::{Text, render};

pub fn markdown(t: &Text) -> String {
    let mut out = format!("#### {}\n{}\n{}\n", t.title, t.what, t.since);
    if let Some(last) = &t.last {
        out.push_str(&format!("**Last event:** {last}\n"));
    }
    if let Some(quote) = &t.quote {
        out.push_str(&format!("```\n{}\n```\n", quote.replace("```", "'''")));
    }
    if !t.link.is_empty() {
        out.push_str(&format!("[Open in telltale]({})\n", t.link));
    }
    out
}

pub async fn send_mattermost(out: &Outgoing<'_>) -> Delivery {
    let url = match out.required("url") {
        Ok(url) => url,
        Err(failed) => return failed,
    };
    let mut body = json!({"text": markdown(&render(out.notification))});
    for field in ["channel", "username"] {
        if let Some(value) = out.str(field) {
            body[field] = value.into();
        }
    }
    send(out.request(Method::POST, url).json(&body)).await
}
