//! The one source of time for everything that is not the domain. Tests inject [`ManualClock`]
//! and move time by hand; the server runs on [`SystemClock`].

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

#[async_trait]
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// Returns once `now() >= at`.
    async fn sleep_until(&self, at: DateTime<Utc>);
}

pub type SharedClock = Arc<dyn Clock>;

/// Wall-clock time, truncated to microseconds (the precision every backend stores).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let micros = t.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(t)
}

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_micros(Utc::now())
    }
    async fn sleep_until(&self, at: DateTime<Utc>) {
        loop {
            let left = at - self.now();
            if left <= TimeDelta::zero() {
                return;
            }
            let left = left.to_std().unwrap_or_default();
            tokio::time::sleep(left).await;
        }
    }
}

/// A clock that only moves when told to. Sleepers wake when it passes their instant.
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
    tick: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        let (tick, _) = watch::channel(start);
        ManualClock { now: Arc::new(Mutex::new(start)), tick }
    }

    pub fn set(&self, at: DateTime<Utc>) {
        let mut now = self.now.lock().expect("clock lock");
        if at > *now {
            *now = at;
        }
        self.tick.send_replace(*now);
    }

    pub fn advance(&self, by: TimeDelta) {
        let target = self.now() + by;
        self.set(target);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock lock")
    }
    async fn sleep_until(&self, at: DateTime<Utc>) {
        let mut rx = self.tick.subscribe();
        loop {
            if self.now() >= at {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}
