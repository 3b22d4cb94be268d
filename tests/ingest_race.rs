//! Edge cases C29 and C32: a signal received before its deadline must never produce a miss,
//! even when ingest is slow and the detector races it. This forces the race: an append is held
//! in flight (a slow disk), a heartbeat arrives 100 ms before the deadline and queues behind it,
//! the detector's tick for the deadline arrives after it, then the append goes through. The
//! heartbeat is decided as of its arrival, before the tick; nothing is missed, and replaying the
//! log reproduces exactly what was recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use telltale::clock::{ManualClock, SharedClock};
use telltale::commands::Handler;
use telltale::store::memory::MemoryStore;
use telltale::store::{Appended, EventStore, ExpectedVersion, NewEvent, Snapshot, StoreError};
use telltale_domain::monitor::{
    ClientDefaults, MonitorAggregate, MonitorCommand, MonitorConfig, MonitorEvent, Signal, SignalKind,
};
use telltale_domain::replay::{Replay, ReplayInput};
use telltale_domain::schedule::Schedule;
use telltale_domain::span::Span;
use telltale_domain::system::{ServiceStarted, SystemEvent};
use telltale_domain::{EventPayload, RecordedEvent};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

/// A log whose appends wait while the gate is closed: a disk that stalls.
struct StallingStore {
    inner: MemoryStore,
    closed: AtomicBool,
    opened: Notify,
    entered: Notify,
}

#[async_trait]
impl EventStore for StallingStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            self.entered.notify_one();
        }
        while self.closed.load(Ordering::SeqCst) {
            let opened = self.opened.notified();
            if !self.closed.load(Ordering::SeqCst) {
                break;
            }
            opened.await;
        }
        self.inner.append(stream, expected, events).await
    }
    async fn read_stream(&self, stream: &str, after: i64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, after, limit).await
    }
    async fn read_all(&self, after: i64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, limit).await
    }
    async fn head(&self) -> Result<i64, StoreError> {
        self.inner.head().await
    }
    async fn stream_version(&self, stream: &str) -> Result<i64, StoreError> {
        self.inner.stream_version(stream).await
    }
    async fn find_by_idempotency_key(&self, stream: &str, key: &str) -> Result<Option<RecordedEvent>, StoreError> {
        self.inner.find_by_idempotency_key(stream, key).await
    }
    async fn list_streams(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list_streams(prefix).await
    }
    fn subscribe(&self) -> watch::Receiver<i64> {
        self.inner.subscribe()
    }
    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(stream).await
    }
    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(stream, snapshot).await
    }
}

fn beat() -> MonitorCommand {
    MonitorCommand::Signal(Box::new(Signal { kind: Some(SignalKind::Heartbeat), ..Signal::default() }))
}

#[tokio::test]
async fn a_heartbeat_received_before_its_deadline_never_becomes_a_miss_however_slow_the_write_path() {
    let clock = ManualClock::new(t0());
    let shared: SharedClock = Arc::new(clock.clone());
    let store = Arc::new(StallingStore {
        inner: MemoryStore::new(shared.clone()),
        closed: AtomicBool::new(false),
        opened: Notify::new(),
        entered: Notify::new(),
    });
    let started = t0() - TimeDelta::hours(1);
    let handler: Arc<Handler<MonitorAggregate>> = Arc::new(Handler::new(store.clone(), shared.clone(), started));
    let stream = "monitor:acme:job";
    // Every 60s, grace 10s; beat at 12:00:00, so the deadline is 12:01:10.
    let config = MonitorConfig::new("job", Schedule::every(Span::from_secs(60)).unwrap(), Span::from_secs(10));
    let create = MonitorCommand::Create {
        client: "acme".into(),
        slug: "job".into(),
        config,
        defaults: ClientDefaults::default(),
    };
    handler.execute(stream, create, None).await.unwrap();
    handler.execute(stream, beat(), None).await.unwrap();

    // 12:00:59: a change of the client's defaults, whose append stalls, holding the stream.
    clock.set(t0() + TimeDelta::seconds(59));
    store.closed.store(true, Ordering::SeqCst);
    let entered = store.entered.notified();
    let defaults = ClientDefaults {
        alert_policy: telltale_domain::policy::AlertPolicy { missed_tolerance: Some(0), ..Default::default() },
        maintenance: vec![],
    };
    let first = tokio::spawn({
        let handler = handler.clone();
        async move { handler.execute(stream, MonitorCommand::ApplyClientDefaults(defaults), None).await }
    });
    entered.await;

    // 12:01:09.900: the next beat is received and waits behind it.
    clock.set(t0() + TimeDelta::milliseconds(69_900));
    let mut second = Box::pin(handler.execute(stream, beat(), None));
    assert!(futures::poll!(&mut second).is_pending(), "queued behind the stalled append");

    // 12:01:10.500: past the deadline, the detector ticks the monitor.
    clock.set(t0() + TimeDelta::milliseconds(70_500));
    let mut tick = Box::pin(handler.execute(stream, MonitorCommand::Tick, None));
    assert!(futures::poll!(&mut tick).is_pending());

    // The disk recovers.
    store.closed.store(false, Ordering::SeqCst);
    store.opened.notify_waiters();
    let (first, second, tick) = tokio::join!(first, second, tick);
    first.unwrap().unwrap();
    let second = second.unwrap();
    tick.unwrap();

    let log = store.read_all(0, 1000).await.unwrap();
    let events: Vec<MonitorEvent> = log.iter().map(|e| MonitorEvent::decode_recorded(e).unwrap()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type()).collect();
    // Late at 12:01:00 (true), then the beat: no miss, no alert.
    assert_eq!(
        types,
        ["MonitorCreated", "HeartbeatReceived", "ClientDefaultsApplied", "MonitorLate", "HeartbeatReceived"],
        "no miss"
    );
    // Each beat is stamped when it was received, not when it could be written.
    assert_eq!(second.events.last().unwrap().1.at(), t0() + TimeDelta::milliseconds(69_900));

    // Replay reproduces what was recorded (nothing derived), and sees no miss either.
    let mut inputs = vec![ReplayInput::System(SystemEvent::ServiceStarted(ServiceStarted {
        node_id: Uuid::nil(),
        at: started,
        version: "test".into(),
        down_since: None,
    }))];
    inputs.extend(events.into_iter().map(ReplayInput::Monitor));
    let recorded: Vec<MonitorEvent> = inputs
        .iter()
        .filter_map(|i| match i {
            ReplayInput::Monitor(e) if e.is_derived() => Some(e.clone()),
            _ => None,
        })
        .collect();
    let replayed = Replay::run(None, inputs, t0() + TimeDelta::milliseconds(70_500));
    assert_eq!(replayed.derived(), recorded.as_slice());
}
