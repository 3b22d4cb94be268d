//! The detector: the only thing that turns the passing of time into events.
//!
//! It keeps every monitor's next wake ([`Monitor::next_wake`]: lateness, a deadline, a hung run)
//! in an ordered set (no table scan per tick), sleeps on the injected clock until the earliest
//! one, and then sends that monitor a `Tick`. The aggregate decides what is due, so the detector
//! cannot alert twice for one miss: once the miss is recorded its wake is gone. The wakes come
//! from the command handler's hook, which runs after every change and for every monitor at
//! start-up.
//!
//! The same machinery, over client streams, records key expiries (`KeyExpired`, stamped with
//! the instant the key expired), and over host streams (`host:…`) releases a member still
//! silent after its host came back, to be alerted on its own (see `telltale_domain::host`):
//! see [`Timed`].

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use telltale_domain::Aggregate;
use telltale_domain::client::{Client, ClientAggregate, ClientCommand, ClientError};
use telltale_domain::host::{Host, HostAggregate, HostCommand, HostError};
use telltale_domain::monitor::{Monitor, MonitorAggregate, MonitorCommand, MonitorError};
use tokio::sync::{Notify, watch};

use crate::clock::SharedClock;
use crate::commands::{CommandError, Handler, IdempotencyAnchor};

/// An aggregate that time changes: the detector wakes its streams and ticks them.
pub trait Timed: Aggregate + IdempotencyAnchor + 'static {
    /// The command that records what time made true.
    fn tick() -> Self::Command;
    /// When the stream must be ticked next.
    fn next_wake(state: &Self::State, service_started_at: DateTime<Utc>) -> Option<DateTime<Utc>>;
    /// A refusal that means the stream is gone (nothing to retry).
    fn gone(error: &Self::Error) -> bool;
}

impl Timed for MonitorAggregate {
    fn tick() -> MonitorCommand {
        MonitorCommand::Tick
    }
    fn next_wake(state: &Monitor, service_started_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        state.next_wake(service_started_at)
    }
    fn gone(error: &MonitorError) -> bool {
        matches!(error, MonitorError::NotFound(_))
    }
}

/// Keys expire with time: the client stream is ticked when its next key expires, which records
/// `KeyExpired` stamped with the instant of expiry.
impl Timed for ClientAggregate {
    fn tick() -> ClientCommand {
        ClientCommand::Tick
    }
    fn next_wake(state: &Client, _: DateTime<Utc>) -> Option<DateTime<Utc>> {
        telltale_domain::keys::next_expiry(&state.keys)
    }
    fn gone(error: &ClientError) -> bool {
        matches!(error, ClientError::NotFound(_))
    }
}

/// A host's members still silent once the host came back are released when their wait ends.
impl Timed for HostAggregate {
    fn tick() -> HostCommand {
        HostCommand::Tick
    }
    fn next_wake(state: &Host, service_started_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        state.next_wake(service_started_at)
    }
    fn gone(_: &HostError) -> bool {
        false
    }
}

/// Monitors ticked at once when many deadlines fall together.
const CONCURRENT_TICKS: usize = 64;

#[derive(Default)]
struct Deadlines {
    queue: BTreeSet<(DateTime<Utc>, String)>,
    by_stream: HashMap<String, DateTime<Utc>>,
}

pub struct Detector<A: Timed = MonitorAggregate> {
    deadlines: Mutex<Deadlines>,
    /// Ticks taken off the queue and not yet decided.
    in_flight: AtomicUsize,
    wake: Notify,
    clock: SharedClock,
    _aggregate: std::marker::PhantomData<fn() -> A>,
}

impl<A: Timed> Detector<A> {
    pub fn new(clock: SharedClock) -> Arc<Detector<A>> {
        Arc::new(Detector {
            deadlines: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            wake: Notify::new(),
            clock,
            _aggregate: std::marker::PhantomData,
        })
    }

    /// Sets (or clears) the deadline of one monitor stream.
    pub fn schedule(&self, stream: &str, at: Option<DateTime<Utc>>) {
        let mut d = self.deadlines.lock().expect("deadlines lock");
        let old = d.by_stream.get(stream).copied();
        if old == at {
            return;
        }
        if let Some(old) = old {
            d.queue.remove(&(old, stream.to_string()));
            d.by_stream.remove(stream);
        }
        let earliest_before = d.queue.first().map(|(t, _)| *t);
        if let Some(at) = at {
            d.queue.insert((at, stream.to_string()));
            d.by_stream.insert(stream.to_string(), at);
        }
        drop(d);
        if at.is_some_and(|at| earliest_before.is_none_or(|e| at < e)) {
            self.wake.notify_one();
        }
    }

    /// The hook for the aggregate's handler: keeps this detector's deadline for a stream current.
    pub fn hook(self: &Arc<Self>, service_started_at: DateTime<Utc>) -> crate::commands::StateHook<A::State> {
        let detector = Arc::downgrade(self);
        Arc::new(move |stream: &str, state: &A::State| {
            if let Some(detector) = detector.upgrade() {
                detector.schedule(stream, A::next_wake(state, service_started_at));
            }
        })
    }

    /// The next deadline, if any.
    pub fn next(&self) -> Option<(DateTime<Utc>, String)> {
        self.deadlines.lock().expect("deadlines lock").queue.first().cloned()
    }

    pub fn len(&self) -> usize {
        self.deadlines.lock().expect("deadlines lock").queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether nothing is due at `now` and no tick is being decided: the detector has acted on
    /// everything up to `now`.
    pub fn idle_at(&self, now: DateTime<Utc>) -> bool {
        let d = self.deadlines.lock().expect("deadlines lock");
        let due = d.queue.first().is_some_and(|(at, _)| *at <= now);
        !due && self.in_flight.load(Ordering::SeqCst) == 0
    }

    fn take_due(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut d = self.deadlines.lock().expect("deadlines lock");
        let mut due = Vec::new();
        while let Some((at, stream)) = d.queue.first().cloned() {
            if at > now {
                break;
            }
            d.queue.pop_first();
            d.by_stream.remove(&stream);
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            due.push(stream);
        }
        due
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, handler: Arc<Handler<A>>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let next = self.next().map(|(at, _)| at);
            let sleep = async {
                match next {
                    Some(at) => self.clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => {}
                _ = self.wake.notified() => continue,
                _ = shutdown.changed() => continue,
            }
            self.act_on_due(&handler, self.clock.now()).await;
        }
    }

    /// Ticks every monitor whose wake is at or before `now`, and waits for them. A clean stop
    /// calls it before recording itself, so that `ServiceStopped` means "everything due before
    /// this was acted on", which replay relies on.
    pub async fn act_on_due(self: &Arc<Self>, handler: &Arc<Handler<A>>, now: DateTime<Utc>) {
        let due = self.take_due(now);
        futures::stream::iter(due)
            .for_each_concurrent(CONCURRENT_TICKS, |stream| {
                let handler = handler.clone();
                let detector = self.clone();
                async move {
                    match handler.execute(&stream, A::tick(), None).await {
                        Ok(_) => {}
                        Err(CommandError::Domain(e)) if A::gone(&e) => {}
                        Err(e) => {
                            tracing::error!(stream, error = %e, "detector: a tick failed; retrying in 1s");
                            let retry = detector.clock.now() + chrono::TimeDelta::seconds(1);
                            detector.schedule(&stream, Some(retry));
                        }
                    }
                    detector.in_flight.fetch_sub(1, Ordering::SeqCst);
                }
            })
            .await;
    }
}
