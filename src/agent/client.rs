//! One HTTP delivery of one event, and what its answer means for the spool.
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde_json::Value;

use super::config::Key;

/// Connecting may take this long at most.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A whole request (connect, send, answer) may take this long at most.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx: the event is in the log. `duplicate` when its `event_id` already was.
    Delivered { duplicate: bool },
    /// A 4xx other than 408 and 429: it would never succeed (unknown monitor, bad key, invalid
    /// event). Not worth keeping.
    Refused(String),
    /// No answer, a 5xx, 408, 429, or a redirect: worth trying again later.
    Failed(String),
}

/// Sends events to one telltale server with one key.
pub struct Sender {
    http: reqwest::Client,
    base: Url,
    key: Key,
}

/// The innermost cause of an error, which says the most ("Connection refused").
fn root_cause(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "no answer in time".to_string()
    } else if error.is_connect() {
        format!("cannot connect: {}", root_cause(error))
    } else {
        root_cause(error)
    }
}

impl Sender {
    pub fn new(url: &str, key: Key) -> Result<Sender, String> {
        let base = Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(format!("`{url}` is not an http:// or https:// URL"));
        }
        crate::app::install_crypto();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("telltale-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Sender { http, base, key })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    fn events_url(&self, slug: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["v1", "monitors", slug, "events"]);
        }
        url
    }

    /// Posts one event to `/v1/monitors/{slug}/events`.
    pub async fn send(&self, slug: &str, event: &Value) -> Outcome {
        let request = self.http.post(self.events_url(slug)).bearer_auth(self.key.expose()).json(event);
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Outcome::Failed(describe(&e)),
        };
        let status = response.status();
        if status.is_success() {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            return Outcome::Delivered { duplicate: body["duplicate"].as_bool().unwrap_or(false) };
        }
        if status.is_redirection() {
            let to = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("?");
            return Outcome::Failed(format!("the server answered {status}, redirecting to {to}; fix the URL"));
        }
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let detail = match (body["code"].as_str(), body["message"].as_str()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => text.chars().take(200).collect::<String>().trim().to_string(),
        };
        let answer = if detail.is_empty() { format!("{status}") } else { format!("{status} ({detail})") };
        let retryable = matches!(status, StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS);
        if status.is_client_error() && !retryable {
            Outcome::Refused(answer)
        } else {
            Outcome::Failed(format!("the server answered {answer}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_events_url_keeps_a_path_prefix_and_escapes_the_slug() {
        let key = || Key::new("k");
        let sender = Sender::new("http://h:1/telltale/", key()).unwrap();
        assert_eq!(sender.events_url("job@web-1").as_str(), "http://h:1/telltale/v1/monitors/job@web-1/events");
        let sender = Sender::new("http://h:1", key()).unwrap();
        assert_eq!(sender.events_url("a/b").as_str(), "http://h:1/v1/monitors/a%2Fb/events");
        assert!(Sender::new("h:1", key()).is_err());
        assert!(Sender::new("ftp://h", key()).is_err());
    }
}
