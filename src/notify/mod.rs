//! Delivers notifications from the durable outbox (a read model) to channels.
//!
//! Each attempt is first claimed in the log (`NotificationAttemptStarted`, with an idempotency
//! key per (notification, attempt) that the log refuses twice, so of several dispatchers racing
//! only one sends), then its outcome is appended (`NotificationDelivered`,
//! `NotificationAttemptFailed`, and `NotificationAbandoned` once `give_up_after` has passed).
//! The outbox projection folds them back, so a restart resumes exactly where delivery stood: at
//! least once across crashes (a claim whose outcome never came lapses after its lease), and
//! every attempt of one notification carries the same idempotency key so a receiver can drop a
//! repeat.

pub mod discord;
pub mod email;
pub mod google_chat;
pub mod http;
pub mod matrix;
pub mod mattermost;
pub mod ntfy;
pub mod opsgenie;
pub mod pagerduty;
pub mod pushover;
pub mod slack;
pub mod teams;
pub mod telegram;
pub mod text;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use telltale_domain::EventPayload;
use telltale_domain::channel::{self, Notification, REDACTED};
use telltale_domain::ids::streams;
use telltale_domain::notification::{
    NotificationAbandoned, NotificationAttemptFailed, NotificationAttemptStarted, NotificationDelivered,
    NotificationEvent, attempt_key, backoff_ms,
};
use telltale_projections::models::notifications::{self, OutboxItem};
use tokio::sync::watch;
use uuid::Uuid;

use crate::app::App;
use crate::store::{ExpectedVersion, NewEvent, StoreError};

/// Outbox rows picked up per pass.
const PASS: i64 = 100;
/// How long a claim outlives the attempt's own timeout before another dispatcher may take over.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// The longest wait a receiver's `Retry-After` may ask for.
const MAX_RETRY_AFTER_MS: i64 = 3_600_000;

/// What a channel answered.
#[derive(Debug)]
pub enum Delivery {
    Delivered {
        status: Option<u16>,
    },
    /// `retry_after_ms`: what the receiver asked for (`Retry-After`), if more than the backoff.
    Failed {
        error: String,
        retry_after_ms: Option<i64>,
    },
}

impl Delivery {
    pub fn failed(error: impl Into<String>) -> Delivery {
        Delivery::Failed { error: error.into(), retry_after_ms: None }
    }
}

/// Sends one attempt through the sender of its channel's kind.
pub async fn deliver(out: &http::Outgoing<'_>) -> Delivery {
    match out.kind {
        "webhook" => webhook::send(out).await,
        "slack" => slack::send_slack(out).await,
        "teams" => teams::send_teams(out).await,
        "discord" => discord::send_discord(out).await,
        "google_chat" => google_chat::send_google_chat(out).await,
        "mattermost" => mattermost::send_mattermost(out).await,
        "email" => email::send_email(out).await,
        "pagerduty" => pagerduty::send_pagerduty(out).await,
        "opsgenie" => opsgenie::send_opsgenie(out).await,
        "ntfy" => ntfy::send_ntfy(out).await,
        "telegram" => telegram::send_telegram(out).await,
        "pushover" => pushover::send_pushover(out).await,
        "matrix" => matrix::send_matrix(out).await,
        other => Delivery::failed(format!("unknown channel kind `{other}`")),
    }
}

/// The dashboard page of a notification's subject: its monitor, or its host for a host alert
/// (whose outbox slug is `host:<host>`).
pub fn link(base_url: &str, client: &str, slug: &str) -> String {
    match slug.strip_prefix("host:") {
        Some(host) => format!("{base_url}/hosts/{client}/{}", crate::web::path_segment(host)),
        None => format!("{base_url}/monitors/{client}/{slug}"),
    }
}

/// `text` with every secret of the channel's configuration blotted out, for errors and logs.
pub fn scrub(kind: &str, config: &Value, text: &str) -> String {
    let mut out = text.to_string();
    for secret in channel::secrets(kind, config) {
        if secret.len() >= 4 {
            out = out.replace(&secret, REDACTED);
        }
    }
    out
}

pub struct Dispatcher {
    app: Arc<App>,
    http: reqwest::Client,
    base_url: String,
    /// Notifications being sent, or sent and not yet folded back: id → position of the outcome.
    in_flight: Mutex<HashMap<Uuid, Option<i64>>>,
    done: tokio::sync::Notify,
}

impl Dispatcher {
    pub fn new(app: Arc<App>, base_url: String) -> Arc<Dispatcher> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(app.config.notify.timeout.as_millis() as u64))
            .user_agent(concat!("telltale/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client");
        Arc::new(Dispatcher { app, http, base_url, in_flight: Mutex::default(), done: tokio::sync::Notify::new() })
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.app.config.notify.timeout.as_millis().max(1) as u64)
    }

    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut progress = self.app.projector.progress();
        // Nothing goes out before the outbox reflects the log as it stood at start-up: a host
        // alert decided at start-up may still inhibit notifications held for it.
        if let Ok(head) = self.app.store.head().await {
            tokio::select! {
                _ = self.app.projector.wait_for(head, Duration::from_secs(30)) => {}
                _ = shutdown.changed() => {}
            }
        }
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Err(e) = self.pass().await {
                tracing::error!(error = %e, "notifications: a pass failed");
            }
            let next_due = notifications::next_due_at(&self.app.read.pool).await.ok().flatten();
            let clock = self.app.clock.clone();
            let timer = async move {
                match next_due {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = progress.changed() => {}
                _ = self.done.notified() => {}
                _ = timer => {}
                _ = shutdown.changed() => {}
                // A safety net: nothing is ever left behind by a missed wake-up.
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    async fn pass(self: &Arc<Self>) -> anyhow::Result<()> {
        if self.app.projector.is_rebuilding("notifications").await? {
            return Ok(());
        }
        let applied = *self.app.projector.progress().borrow();
        {
            let mut in_flight = self.in_flight.lock().expect("in-flight lock");
            in_flight.retain(|_, outcome| outcome.is_none_or(|p| p > applied));
        }
        let due = notifications::due(&self.app.read.pool, self.app.clock.now(), PASS).await?;
        for item in due {
            {
                let mut in_flight = self.in_flight.lock().expect("in-flight lock");
                if in_flight.contains_key(&item.notification_id) {
                    continue;
                }
                in_flight.insert(item.notification_id, None);
            }
            let me = self.clone();
            tokio::spawn(async move { me.attempt(item).await });
        }
        Ok(())
    }

    /// Remembers that `id` waits for the read model to reach `position` (or forgets it).
    fn settle(&self, id: Uuid, position: Option<i64>) {
        let mut in_flight = self.in_flight.lock().expect("in-flight lock");
        match position {
            Some(p) => {
                in_flight.insert(id, Some(p));
            }
            None => {
                in_flight.remove(&id);
            }
        }
        drop(in_flight);
        self.done.notify_one();
    }

    /// Claims attempt `attempt` of `item`; false when another dispatcher (or an earlier pass)
    /// holds it already.
    async fn claim(&self, item: &OutboxItem, attempt: u32, now: DateTime<Utc>) -> bool {
        let stream = streams::notifications(&item.client);
        let lease = TimeDelta::from_std(self.timeout() * 3 + LEASE_MARGIN).unwrap_or(TimeDelta::minutes(5));
        let claim = NotificationEvent::NotificationAttemptStarted(NotificationAttemptStarted {
            notification_id: item.notification_id,
            channel_id: item.channel_id,
            attempt,
            at: now,
            lease_until: now + lease,
        });
        let key = attempt_key(item.notification_id, attempt);
        let event = NewEvent { idempotency_key: Some(key.clone()), ..NewEvent::from(claim.encode()) };
        match self.app.store.append(&stream, ExpectedVersion::Any, vec![event]).await {
            Ok(_) => true,
            Err(StoreError::DuplicateKey { .. }) => {
                // Someone claimed it first: wait until the read model shows that claim.
                let position =
                    self.app.store.find_by_idempotency_key(&stream, &key).await.ok().flatten().map(|e| e.position);
                tracing::debug!(notification = %item.notification_id, attempt, "attempt claimed elsewhere");
                self.settle(item.notification_id, position);
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "claiming a notification attempt failed; it will be tried again");
                self.settle(item.notification_id, None);
                false
            }
        }
    }

    async fn attempt(self: Arc<Self>, item: OutboxItem) {
        let attempt = item.next_attempt();
        let now = self.app.clock.now();
        if !self.claim(&item, attempt, now).await {
            return;
        }
        let mut payload = item.payload.clone();
        if let Some(body) = payload.as_object_mut() {
            body.insert("link".into(), link(&self.base_url, &item.client, &item.slug).into());
            body.insert("attempt".into(), attempt.into());
            body.insert("sent_at".into(), telltale_projections::log::fmt_time(now).into());
        }
        let outcome = match serde_json::from_value::<Notification>(payload.clone()) {
            Ok(notification) => {
                let out = http::Outgoing {
                    http: &self.http,
                    timeout: self.timeout(),
                    channel_id: item.channel_id,
                    kind: &item.kind,
                    config: &item.config,
                    notification: &notification,
                    payload: &payload,
                };
                deliver(&out).await
            }
            Err(e) => Delivery::failed(format!("the notification cannot be read: {e}")),
        };
        let now = self.app.clock.now();
        let mut events = Vec::new();
        match outcome {
            Delivery::Delivered { status } => {
                tracing::info!(notification = %item.notification_id, channel = %item.channel_id, kind = %item.kind, attempt, "notification delivered");
                events.push(NotificationEvent::NotificationDelivered(NotificationDelivered {
                    notification_id: item.notification_id,
                    channel_id: item.channel_id,
                    attempt,
                    at: now,
                    status_code: status,
                }));
            }
            Delivery::Failed { error, retry_after_ms } => {
                let error = scrub(&item.kind, &item.config, &error);
                let notify = &self.app.config.notify;
                let wait = backoff_ms(attempt, notify.max_backoff.as_millis())
                    .max(retry_after_ms.unwrap_or(0).min(MAX_RETRY_AFTER_MS));
                let began = item.created_at.unwrap_or(now);
                let give_up = now - began >= notify.give_up_after.to_delta();
                tracing::warn!(notification = %item.notification_id, channel = %item.channel_id, kind = %item.kind,
                    attempt, error, retry_in_ms = wait, give_up, "notification failed");
                events.push(NotificationEvent::NotificationAttemptFailed(NotificationAttemptFailed {
                    notification_id: item.notification_id,
                    channel_id: item.channel_id,
                    attempt,
                    at: now,
                    error: error.clone(),
                    next_attempt_at: now + TimeDelta::milliseconds(wait),
                }));
                if give_up {
                    events.push(NotificationEvent::NotificationAbandoned(NotificationAbandoned {
                        notification_id: item.notification_id,
                        channel_id: item.channel_id,
                        attempts: attempt,
                        at: now,
                        error,
                    }));
                }
            }
        }
        let stream = streams::notifications(&item.client);
        let events = events.iter().map(|e| NewEvent::from(e.encode())).collect();
        match self.app.store.append(&stream, ExpectedVersion::Any, events).await {
            Ok(a) => self.settle(item.notification_id, a.positions.last().copied()),
            Err(e) => {
                // The claim lapses and the next attempt goes out then.
                tracing::error!(error = %e, "recording a notification outcome failed; it will be attempted again");
                self.settle(item.notification_id, None);
            }
        }
    }
}
