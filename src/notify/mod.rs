//! Delivers notifications from the durable outbox (a read model) to channels.
//!
//! Each attempt's outcome is appended to the log (`NotificationDelivered` or
//! `NotificationAttemptFailed`), and the outbox projection folds it back, so a restart resumes
//! exactly where delivery stood: at least once across crashes, and every attempt of one
//! notification carries the same idempotency key so a receiver can drop a repeat.

pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeDelta;
use telltale_domain::EventPayload;
use telltale_domain::ids::streams;
use telltale_domain::notification::{NotificationAttemptFailed, NotificationDelivered, NotificationEvent, backoff_ms};
use telltale_projections::models::notifications::{self, OutboxItem};
use tokio::sync::watch;
use uuid::Uuid;

use crate::app::App;
use crate::store::{ExpectedVersion, NewEvent};

/// Outbox rows picked up per pass.
const PASS: i64 = 100;

/// What a channel answered.
#[derive(Debug)]
pub enum Delivery {
    Delivered { status: Option<u16> },
    Failed { error: String },
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

    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut progress = self.app.projector.progress();
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

    async fn attempt(self: Arc<Self>, item: OutboxItem) {
        let attempt = u32::try_from(item.attempts).unwrap_or(u32::MAX - 1) + 1;
        let mut payload = item.payload.clone();
        if let Some(body) = payload.as_object_mut() {
            body.insert("link".into(), format!("{}/monitors/{}/{}", self.base_url, item.client, item.slug).into());
            body.insert("attempt".into(), attempt.into());
        }
        let outcome = match item.kind.as_str() {
            "webhook" => webhook::send(&self.http, &item, &payload).await,
            other => Delivery::Failed { error: format!("unknown channel kind `{other}`") },
        };
        let now = self.app.clock.now();
        let event = match outcome {
            Delivery::Delivered { status } => {
                tracing::info!(notification = %item.notification_id, channel = %item.channel_id, attempt, "notification delivered");
                NotificationEvent::NotificationDelivered(NotificationDelivered {
                    notification_id: item.notification_id,
                    channel_id: item.channel_id,
                    attempt,
                    at: now,
                    status_code: status,
                })
            }
            Delivery::Failed { error } => {
                let wait = backoff_ms(attempt, self.app.config.notify.max_backoff.as_millis());
                tracing::warn!(notification = %item.notification_id, attempt, error, retry_in_ms = wait, "notification failed");
                NotificationEvent::NotificationAttemptFailed(NotificationAttemptFailed {
                    notification_id: item.notification_id,
                    channel_id: item.channel_id,
                    attempt,
                    at: now,
                    error,
                    next_attempt_at: now + TimeDelta::milliseconds(wait),
                })
            }
        };
        let stream = streams::notifications(&item.client);
        let appended = self.app.store.append(&stream, ExpectedVersion::Any, vec![NewEvent::from(event.encode())]).await;
        let mut in_flight = self.in_flight.lock().expect("in-flight lock");
        match appended {
            Ok(a) => {
                in_flight.insert(item.notification_id, a.positions.last().copied());
            }
            Err(e) => {
                tracing::error!(error = %e, "recording a notification outcome failed; it will be attempted again");
                in_flight.remove(&item.notification_id);
            }
        }
        drop(in_flight);
        self.done.notify_one();
    }
}
