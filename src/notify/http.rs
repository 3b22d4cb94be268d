//! What every HTTP channel shares: the request a sender is given, the headers every attempt
//! carries, and how an answer (or its absence) becomes a [`Delivery`].

use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use serde_json::Value;
use telltale_domain::channel::{self, Notification};
use uuid::Uuid;

use super::Delivery;

/// Everything a channel sender needs for one attempt.
pub struct Outgoing<'a> {
    pub http: &'a reqwest::Client,
    pub timeout: Duration,
    pub channel_id: Uuid,
    pub kind: &'a str,
    pub config: &'a Value,
    pub notification: &'a Notification,
    /// The generic webhook's JSON body: the notification as stored, with `link`, `attempt`
    /// and `sent_at`, and whatever fields newer transitions add.
    pub payload: &'a Value,
}

impl Outgoing<'_> {
    /// A string setting of the channel, or its documented default.
    pub fn str(&self, name: &str) -> Option<&str> {
        channel::config_str(self.kind, self.config, name)
    }

    pub fn i64(&self, name: &str) -> Option<i64> {
        channel::config_i64(self.kind, self.config, name)
    }

    /// A setting the configuration check guarantees.
    pub fn required(&self, name: &str) -> Result<&str, Delivery> {
        self.str(name).ok_or_else(|| Delivery::failed(format!("the channel has no {name}")))
    }

    /// A vendor endpoint: the base URL (configurable, defaulting to the vendor's) and a path.
    pub fn endpoint(&self, base_field: &str, path: &str) -> Result<String, Delivery> {
        let base = self.required(base_field)?;
        Ok(format!("{}{path}", base.trim_end_matches('/')))
    }

    /// The headers every attempt carries: the idempotency key (the same on every attempt of
    /// one notification) where the vendor lets a request carry one.
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let id = self.notification.notification_id.to_string();
        self.http.request(method, url).timeout(self.timeout).header("Idempotency-Key", id)
    }
}

/// Most bytes of an error answer quoted in the channel's `last_error`.
const QUOTE: usize = 300;

async fn snippet(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < QUOTE {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(QUOTE)]);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() { String::new() } else { format!(": {text}") }
}

/// Sends one request; a 2xx answer is a delivery, anything else a failure that says why.
pub async fn send(request: reqwest::RequestBuilder) -> Delivery {
    match request.send().await {
        Ok(response) if response.status().is_success() => {
            Delivery::Delivered { status: Some(response.status().as_u16()) }
        }
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after_ms = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
                .map(|s| s.clamp(0, 3600) * 1000);
            let quote = snippet(response).await;
            Delivery::Failed { error: format!("the receiver answered HTTP {status}{quote}"), retry_after_ms }
        }
        Err(e) => Delivery::failed(describe(&e)),
    }
}

/// A transport error in words, never with its URL (a vendor URL may hold a token).
pub fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "the receiver did not answer in time".into();
    }
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let cause = if cause.is_empty() { String::new() } else { format!(": {cause}") };
    if e.is_connect() { format!("cannot connect to the receiver{cause}") } else { format!("the request failed{cause}") }
}
