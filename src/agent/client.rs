//! One HTTP delivery of one event, and what its answer means for the spool.
use std::time::Duration;

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use reqwest::{StatusCode, Url};
use serde_json::Value;

use super::config::{Key, read_key_file};
use super::report::say;
use super::spool::write_atomically;

/// The header a server puts on every response to a key that is due for rotation.
pub const ROTATION_HEADER: &str = "telltale-key-rotation";

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

/// Sends events to one telltale server with one key, and keeps the key current: when the
/// server says it is due for rotation, it fetches the successor and rewrites the key file.
pub struct Sender {
    http: reqwest::Client,
    base: Url,
    key: Mutex<Key>,
    /// Where the key came from, if a file: rotation rewrites it, and it is read again before
    /// each request (another process may have rotated it).
    key_file: Option<PathBuf>,
    /// A given key (flag or environment) that is due was reported once.
    warned: AtomicBool,
}

/// How long a process waits for another one rotating the shared key file.
const KEY_LOCK_WAIT: Duration = Duration::from_secs(5);

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
        Sender::with_key_file(url, key, None)
    }

    /// A sender whose key was read from `key_file` (which it keeps current).
    pub fn with_key_file(url: &str, key: Key, key_file: Option<PathBuf>) -> Result<Sender, String> {
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
        Ok(Sender { http, base, key: Mutex::new(key), key_file, warned: AtomicBool::new(false) })
    }

    /// The key in use now: the key file's, when it changed under this process.
    fn current_key(&self) -> Key {
        let mut key = self.key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(path) = &self.key_file
            && let Some(on_disk) = read_key_file(path, &mut Vec::new())
            && on_disk != *key
        {
            *key = on_disk;
        }
        key.clone()
    }

    fn adopt(&self, key: Key) {
        *self.key.lock().unwrap_or_else(|e| e.into_inner()) = key;
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

    /// Posts one event to `/v1/monitors/{slug}/events`, and rotates the key if the answer says
    /// it is due.
    pub async fn send(&self, slug: &str, event: &Value) -> Outcome {
        let key = self.current_key();
        let mut response = match self.post_event(slug, event, &key).await {
            Ok(response) => response,
            Err(e) => return Outcome::Failed(describe(&e)),
        };
        if response.status() == StatusCode::UNAUTHORIZED {
            // Another process may have rotated the shared key file meanwhile: try its key once.
            let newer = self.current_key();
            if newer != key {
                response = match self.post_event(slug, event, &newer).await {
                    Ok(response) => response,
                    Err(e) => return Outcome::Failed(describe(&e)),
                };
            }
        }
        let due = response.headers().get(ROTATION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
        let outcome = Self::outcome(response).await;
        if let Some(due) = due {
            self.rotate(&due).await;
        }
        outcome
    }

    async fn post_event(&self, slug: &str, event: &Value, key: &Key) -> reqwest::Result<reqwest::Response> {
        self.http.post(self.events_url(slug)).bearer_auth(key.expose()).json(event).send().await
    }

    /// Answers `Telltale-Key-Rotation` (`due; …; successor=pending|issued`). With a key file:
    /// under a lock on `<file>.lock`, reads the file again (another process may have rotated
    /// it already), else asks `POST /v1/keys/rotate` for the successor and writes it to the
    /// file atomically (mode 0600). A key given by flag or environment cannot be rewritten: if
    /// its successor exists already it is used for the rest of this process; if not, the key is
    /// left as it is (it stays valid) and that is said once. Never fails the caller.
    async fn rotate(&self, header: &str) {
        let issued = header.split(';').any(|part| part.trim() == "successor=issued");
        let Some(path) = self.key_file.clone() else {
            if !self.warned.swap(true, Ordering::SeqCst) {
                say(if issued {
                    "the key given by --key or TELLTALE_KEY was rotated; using its successor for this run. Put the key in a file (--key-file) so telltale can keep it current"
                } else {
                    "the key given by --key or TELLTALE_KEY is due for rotation, but telltale can only rotate a key it reads from a file (--key-file); it stays valid meanwhile"
                });
            }
            if issued && let Some(successor) = self.fetch_successor(&self.current_key()).await {
                self.adopt(successor);
            }
            return;
        };
        let Some(_lock) = lock_key_file(&path) else { return };
        let used = self.key.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let on_disk = read_key_file(&path, &mut Vec::new());
        if let Some(on_disk) = on_disk.filter(|k| *k != used) {
            // Another process rotated it (or someone replaced it): use what the file holds.
            self.adopt(on_disk);
            return;
        }
        let Some(successor) = self.fetch_successor(&used).await else { return };
        match write_atomically(&path, format!("{}\n", successor.expose()).as_bytes()) {
            Ok(()) => say(format!("rotated the key in {}", path.display())),
            Err(e) => {
                say(format!("cannot write the rotated key to {}: {e}; using it for this run only", path.display()))
            }
        }
        self.adopt(successor);
    }

    /// `POST /v1/keys/rotate` with `key`: its successor (the newest of its line).
    async fn fetch_successor(&self, key: &Key) -> Option<Key> {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["v1", "keys", "rotate"]);
        }
        let response = match self.http.post(url).bearer_auth(key.expose()).send().await {
            Ok(response) => response,
            Err(e) => {
                say(format!("cannot rotate the key now: {}", describe(&e)));
                return None;
            }
        };
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match body["key"].as_str() {
            Some(new) if status.is_success() => Some(Key::new(new)),
            _ => {
                say(format!(
                    "cannot rotate the key now: the server answered {status} ({})",
                    body["message"].as_str().unwrap_or("")
                ));
                None
            }
        }
    }

    async fn outcome(response: reqwest::Response) -> Outcome {
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

/// An exclusive lock on `<key file>.lock`, waited for a few seconds at most.
fn lock_key_file(path: &Path) -> Option<File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = match OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(&name) {
        Ok(file) => file,
        Err(e) => {
            say(format!("cannot lock the key file {}: {e}; not rotating it now", path.display()));
            return None;
        }
    };
    let deadline = Instant::now() + KEY_LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Some(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                say(format!("cannot lock the key file {}: {e}; not rotating it now", path.display()));
                return None;
            }
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
