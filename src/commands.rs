//! Runs commands against aggregates: load state (cached in memory, from a snapshot plus the
//! stream's tail on first use), `decide`, append with the expected version, `evolve`.
//!
//! Every command is stamped with the clock when it enters its stream's queue, and decided at
//! that instant, in queue order: a heartbeat received before a deadline is decided before the
//! detector's tick for that deadline, and as of its arrival, however long it then waits behind
//! an append in flight (a slow disk, a busy group commit). Ingest lag can therefore never turn
//! an on-time signal into a miss, and the log holds each stream's decisions in the order and at
//! the instants they were made, which is what replay reproduces (edge cases C29, C32).
//!
//! Commands for one stream queue up while an append for that stream is in flight; the next
//! holder of the stream decides all of them on the evolving state and appends their events in
//! one go. A thousand concurrent heartbeats to one monitor therefore cost a handful of appends,
//! never a thousand version conflicts. A conflict (another node wrote the stream) reloads the
//! state and decides the batch again.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use telltale_domain::{Aggregate, Context, EventPayload};
use tokio::sync::oneshot;

use crate::clock::SharedClock;
use crate::store::{EventStore, ExpectedVersion, NewEvent, Snapshot, StoreError};

/// Events appended between two snapshots of a stream.
const SNAPSHOT_EVERY: i64 = 250;
/// Times a batch is decided again after a version conflict before giving up.
const CONFLICT_RETRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Domain(E),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a command produced.
#[derive(Debug, Clone)]
pub struct Outcome<S, E> {
    /// The events this command appended, with their positions.
    pub events: Vec<(i64, E)>,
    /// The stream's state once this command's batch was appended.
    pub state: S,
    /// True when the idempotency key had been seen: nothing new was appended, and `events`
    /// holds the event first recorded with that key.
    pub duplicate: bool,
}

impl<S, E> Outcome<S, E> {
    /// The position of the last event this command produced, if any.
    pub fn last_position(&self) -> Option<i64> {
        self.events.last().map(|(p, _)| *p)
    }
}

type Reply<A> = oneshot::Sender<
    Result<Outcome<<A as Aggregate>::State, <A as Aggregate>::Event>, CommandError<<A as Aggregate>::Error>>,
>;

struct Pending<A: Aggregate> {
    command: A::Command,
    idempotency_key: Option<String>,
    /// When it entered the queue: the instant it is decided at.
    stamp: DateTime<Utc>,
    reply: Reply<A>,
}

/// Commands waiting for a stream, and the last stamp given, so stamps never go backwards.
struct Queue<A: Aggregate> {
    waiting: Vec<Pending<A>>,
    last_stamp: Option<DateTime<Utc>>,
}

struct Loaded<S> {
    state: S,
    version: i64,
    snapshot_version: i64,
}

struct Slot<A: Aggregate> {
    queue: Mutex<Queue<A>>,
    state: tokio::sync::Mutex<Option<Loaded<A::State>>>,
}

/// Called after every batch with the stream id and its state: the detector's feed.
pub type StateHook<S> = Arc<dyn Fn(&str, &S) + Send + Sync>;

/// Which of a command's events carries the sender's idempotency key: the fact the sender
/// reported, not what the domain derived from it.
pub trait IdempotencyAnchor: Aggregate {
    fn anchor(events: &[Self::Event]) -> Option<usize> {
        events.len().checked_sub(1)
    }
}

pub struct Handler<A: Aggregate> {
    store: Arc<dyn EventStore>,
    clock: SharedClock,
    service_started_at: DateTime<Utc>,
    slots: Mutex<HashMap<String, Arc<Slot<A>>>>,
    hook: Mutex<Option<StateHook<A::State>>>,
    /// Read a cached stream's new events from the log before each use: for streams that other
    /// processes (the CLI) write to, where a decision must not be made on a stale state.
    catch_up: std::sync::atomic::AtomicBool,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate + IdempotencyAnchor + 'static> Handler<A> {
    pub fn new(store: Arc<dyn EventStore>, clock: SharedClock, service_started_at: DateTime<Utc>) -> Handler<A> {
        Handler {
            store,
            clock,
            service_started_at,
            slots: Mutex::new(HashMap::new()),
            hook: Mutex::new(None),
            catch_up: std::sync::atomic::AtomicBool::new(false),
            _aggregate: PhantomData,
        }
    }

    /// Makes every use of a cached stream read its newest events first (see `catch_up`).
    pub fn catch_up_before_use(&self) {
        self.catch_up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn set_hook(&self, hook: StateHook<A::State>) {
        *self.hook.lock().expect("hook lock") = Some(hook);
    }

    pub fn service_started_at(&self) -> DateTime<Utc> {
        self.service_started_at
    }

    fn slot(&self, stream: &str) -> Arc<Slot<A>> {
        let mut slots = self.slots.lock().expect("slots lock");
        slots
            .entry(stream.to_string())
            .or_insert_with(|| {
                Arc::new(Slot {
                    queue: Mutex::new(Queue { waiting: Vec::new(), last_stamp: None }),
                    state: tokio::sync::Mutex::new(None),
                })
            })
            .clone()
    }

    /// Decides `command` on `stream` and appends what it produces.
    pub async fn execute(
        &self,
        stream: &str,
        command: A::Command,
        idempotency_key: Option<String>,
    ) -> Result<Outcome<A::State, A::Event>, CommandError<A::Error>> {
        let (reply, answer) = oneshot::channel();
        let slot = self.slot(stream);
        {
            // Stamped and queued at once, with nothing awaited before: the queue's order is
            // the order of the stamps. (A repeated idempotency key is answered from the log
            // when its turn comes.)
            let mut queue = slot.queue.lock().expect("queue lock");
            let stamp = queue.last_stamp.map_or(self.clock.now(), |last| last.max(self.clock.now()));
            queue.last_stamp = Some(stamp);
            queue.waiting.push(Pending { command, idempotency_key, stamp, reply });
        }
        {
            let mut guard = slot.state.lock().await;
            let batch: Vec<Pending<A>> = std::mem::take(&mut slot.queue.lock().expect("queue lock").waiting);
            if !batch.is_empty() {
                self.process(stream, &mut guard, batch).await;
            }
        }
        answer.await.map_err(|_| CommandError::Store(StoreError::Closed))?
    }

    /// The current state of a stream, loading it if it is not cached.
    pub async fn state(&self, stream: &str) -> Result<A::State, StoreError> {
        let slot = self.slot(stream);
        let mut guard = slot.state.lock().await;
        self.ensure_loaded(stream, &mut guard).await?;
        Ok(guard.as_ref().map(|l| l.state.clone()).unwrap_or_default())
    }

    /// Loads every stream whose id starts with `prefix` and runs the hook on each: used at
    /// start-up so that the detector knows every deadline.
    pub async fn warm(&self, prefix: &str) -> Result<usize, StoreError> {
        let streams = self.store.list_streams(prefix).await?;
        for stream in &streams {
            let state = self.state(stream).await?;
            self.run_hook(stream, &state);
        }
        Ok(streams.len())
    }

    fn run_hook(&self, stream: &str, state: &A::State) {
        let hook = self.hook.lock().expect("hook lock").clone();
        if let Some(hook) = hook {
            hook(stream, state);
        }
    }

    async fn ensure_loaded(&self, stream: &str, slot: &mut Option<Loaded<A::State>>) -> Result<(), StoreError> {
        if let Some(loaded) = slot.as_mut() {
            if self.catch_up.load(std::sync::atomic::Ordering::SeqCst) {
                loop {
                    let events = self.store.read_stream(stream, loaded.version, 1000).await?;
                    if events.is_empty() {
                        break;
                    }
                    for recorded in &events {
                        let event = A::Event::decode_recorded(recorded).map_err(StoreError::backend)?;
                        loaded.state = A::evolve(std::mem::take(&mut loaded.state), &event);
                        loaded.version = recorded.version;
                    }
                }
            }
            return Ok(());
        }
        let (mut state, mut version) = match self.store.load_snapshot(stream).await? {
            Some(snap) if snap.state_version == A::STATE_VERSION => match serde_json::from_value(snap.state) {
                Ok(state) => (state, snap.version),
                Err(e) => {
                    tracing::warn!(stream, error = %e, "ignoring a snapshot that does not decode");
                    (A::State::default(), 0)
                }
            },
            _ => (A::State::default(), 0),
        };
        let snapshot_version = version;
        loop {
            let events = self.store.read_stream(stream, version, 1000).await?;
            if events.is_empty() {
                break;
            }
            for recorded in &events {
                let event = A::Event::decode_recorded(recorded).map_err(StoreError::backend)?;
                state = A::evolve(state, &event);
                version = recorded.version;
            }
        }
        *slot = Some(Loaded { state, version, snapshot_version });
        Ok(())
    }

    async fn process(&self, stream: &str, slot: &mut Option<Loaded<A::State>>, batch: Vec<Pending<A>>) {
        if let Err(e) = self.ensure_loaded(stream, slot).await {
            let message = e.to_string();
            for p in batch {
                let _ = p.reply.send(Err(CommandError::Store(StoreError::Backend(message.clone()))));
            }
            return;
        }
        let mut batch: Vec<Option<Pending<A>>> = batch.into_iter().map(Some).collect();
        // A retry may have queued behind the request that recorded its key: answer it from the
        // log. Holding the stream, nothing in this process can record the key meanwhile.
        for slot_entry in batch.iter_mut() {
            let Some(key) = slot_entry.as_ref().and_then(|p| p.idempotency_key.clone()) else { continue };
            match self.store.find_by_idempotency_key(stream, &key).await {
                Ok(Some(seen)) => {
                    let state = slot.as_ref().map(|l| l.state.clone()).unwrap_or_default();
                    let reply = A::Event::decode_recorded(&seen)
                        .map(|event| Outcome { events: vec![(seen.position, event)], state, duplicate: true })
                        .map_err(|e| CommandError::Store(StoreError::backend(e)));
                    if let Some(p) = slot_entry.take() {
                        let _ = p.reply.send(reply);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    if let Some(p) = slot_entry.take() {
                        let _ = p.reply.send(Err(CommandError::Store(e)));
                    }
                }
            }
        }
        for _attempt in 0..CONFLICT_RETRIES {
            let loaded = slot.as_ref().expect("loaded above");
            let mut working = loaded.state.clone();
            let mut to_append: Vec<NewEvent> = Vec::new();
            // (index in batch, its events, first index in to_append)
            let mut decided: Vec<(usize, Vec<A::Event>, usize)> = Vec::new();
            let mut duplicates: Vec<(usize, usize)> = Vec::new();
            let mut keys_seen: HashMap<String, usize> = HashMap::new();
            let mut refused: Vec<(usize, A::Error)> = Vec::new();
            for (i, pending) in batch.iter().enumerate() {
                let Some(pending) = pending else { continue };
                if let Some(key) = &pending.idempotency_key
                    && let Some(&first) = keys_seen.get(key)
                {
                    duplicates.push((i, first));
                    continue;
                }
                let ctx = Context::new(pending.stamp, self.service_started_at);
                match A::decide(&working, pending.command.clone(), &ctx) {
                    Ok(events) => {
                        let start = to_append.len();
                        let anchor = pending.idempotency_key.as_ref().and_then(|_| A::anchor(&events));
                        for (j, event) in events.iter().enumerate() {
                            let mut new: NewEvent = event.encode().into();
                            if Some(j) == anchor {
                                new.idempotency_key = pending.idempotency_key.clone();
                            }
                            to_append.push(new);
                            working = A::evolve(working, event);
                        }
                        if let Some(key) = &pending.idempotency_key {
                            keys_seen.insert(key.clone(), decided.len());
                        }
                        decided.push((i, events, start));
                    }
                    Err(e) => refused.push((i, e)),
                }
            }
            for (i, e) in refused {
                if let Some(p) = batch[i].take() {
                    let _ = p.reply.send(Err(CommandError::Domain(e)));
                }
            }
            let appended = if to_append.is_empty() {
                Ok(crate::store::Appended { stream_version: loaded.version, positions: vec![] })
            } else {
                self.store.append(stream, ExpectedVersion::Exact(loaded.version), to_append).await
            };
            match appended {
                Ok(appended) => {
                    let snapshot_due = appended.stream_version - loaded.snapshot_version >= SNAPSHOT_EVERY;
                    let mut outcomes: Vec<Outcome<A::State, A::Event>> = Vec::new();
                    for (i, events, start) in decided {
                        let with_positions: Vec<(i64, A::Event)> =
                            events.into_iter().enumerate().map(|(j, e)| (appended.positions[start + j], e)).collect();
                        let outcome = Outcome { events: with_positions, state: working.clone(), duplicate: false };
                        outcomes.push(outcome.clone());
                        if let Some(p) = batch[i].take() {
                            let _ = p.reply.send(Ok(outcome));
                        }
                    }
                    for (i, first) in duplicates {
                        if let Some(p) = batch[i].take() {
                            let mut outcome = outcomes[first].clone();
                            outcome.duplicate = true;
                            let _ = p.reply.send(Ok(outcome));
                        }
                    }
                    let snapshot_version = if snapshot_due { appended.stream_version } else { loaded.snapshot_version };
                    *slot = Some(Loaded { state: working.clone(), version: appended.stream_version, snapshot_version });
                    self.run_hook(stream, &working);
                    if snapshot_due {
                        self.snapshot(stream, &working, appended.stream_version);
                    }
                    return;
                }
                Err(StoreError::Conflict { .. }) => {
                    tracing::debug!(stream, "version conflict; reloading and deciding again");
                    *slot = None;
                    if let Err(e) = self.ensure_loaded(stream, slot).await {
                        let message = e.to_string();
                        for p in batch.into_iter().flatten() {
                            let _ = p.reply.send(Err(CommandError::Store(StoreError::Backend(message.clone()))));
                        }
                        return;
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    let closed = matches!(e, StoreError::Closed);
                    for p in batch.into_iter().flatten() {
                        let err = if closed { StoreError::Closed } else { StoreError::Backend(message.clone()) };
                        let _ = p.reply.send(Err(CommandError::Store(err)));
                    }
                    // The cached state is unchanged; a failed append wrote nothing.
                    return;
                }
            }
        }
        for p in batch.into_iter().flatten() {
            let _ = p.reply.send(Err(CommandError::Store(StoreError::Backend(
                "the stream kept changing under concurrent writers; try again".into(),
            ))));
        }
    }

    fn snapshot(&self, stream: &str, state: &A::State, version: i64) {
        let Ok(state) = serde_json::to_value(state) else { return };
        let store = self.store.clone();
        let stream = stream.to_string();
        tokio::spawn(async move {
            let snapshot = Snapshot { state_version: A::STATE_VERSION, version, state };
            if let Err(e) = store.save_snapshot(&stream, snapshot).await {
                tracing::warn!(stream, error = %e, "saving a snapshot failed");
            }
        });
    }
}

impl IdempotencyAnchor for telltale_domain::monitor::MonitorAggregate {
    fn anchor(events: &[Self::Event]) -> Option<usize> {
        events.iter().rposition(|e| !e.is_derived())
    }
}

impl IdempotencyAnchor for telltale_domain::client::ClientAggregate {}
impl IdempotencyAnchor for telltale_domain::host::HostAggregate {}

impl IdempotencyAnchor for telltale_domain::users::UserAggregate {}
