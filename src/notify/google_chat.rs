//! Google Chat, through a space's incoming webhook: a JSON POST of `text` to the webhook URL
//! (which holds its `key` and `token`), threaded per alert (`thread.threadKey` with
//! `messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD`), made idempotent with
//! `requestId`: a repeat of one notification returns the message already created.

use reqwest::{Method, Url};
use serde_json::json;

use super::Delivery;
use super::http::{Outgoing, send};
use super::text::{Text, render};

pub fn text(t: &Text) -> String {
    let mut out = format!("*{}*\n{}\n{}", t.title, t.what, t.since);
    if let Some(last) = &t.last {
        out.push_str(&format!("\nLast event: {last}"));
    }
    if let Some(quote) = &t.quote {
        out.push_str(&format!("\n```{}```", quote.replace("```", "'''")));
    }
    if !t.link.is_empty() {
        out.push_str(&format!("\n<{}|Open in telltale>", t.link));
    }
    out
}

pub async fn send_google_chat(out: &Outgoing<'_>) -> Delivery {
    let url = match out.required("url").map(Url::parse) {
        Ok(Ok(url)) => url,
        Ok(Err(_)) => return Delivery::failed("the channel's url is not a valid URL"),
        Err(failed) => return failed,
    };
    let n = out.notification;
    let mut url = url;
    url.query_pairs_mut()
        .append_pair("messageReplyOption", "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD")
        .append_pair("requestId", &n.notification_id.to_string());
    let body = json!({"text": text(&render(n)), "thread": {"threadKey": n.alert_id.to_string()}});
    let request = out
        .request(Method::POST, url.as_str())
        .header(reqwest::header::CONTENT_TYPE, "application/json; charset=UTF-8")
        .body(body.to_string());
    send(request).await
}
