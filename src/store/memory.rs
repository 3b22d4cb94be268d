//! An in-memory log for tests and experiments. Same contract, nothing durable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use telltale_domain::RecordedEvent;
use tokio::sync::watch;
use uuid::Uuid;

use super::{Appended, EventStore, ExpectedVersion, NewEvent, Snapshot, StoreError};
use crate::clock::SharedClock;

#[derive(Default)]
struct Log {
    events: Vec<RecordedEvent>,
    streams: HashMap<String, Vec<usize>>,
    snapshots: HashMap<String, Snapshot>,
}

#[derive(Clone)]
pub struct MemoryStore {
    log: Arc<Mutex<Log>>,
    head: Arc<watch::Sender<i64>>,
    clock: SharedClock,
}

impl MemoryStore {
    pub fn new(clock: SharedClock) -> MemoryStore {
        MemoryStore { log: Arc::default(), head: Arc::new(watch::channel(0).0), clock }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().expect("memory store lock")
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        let now = self.clock.now();
        let mut log = self.lock();
        let current = log.streams.get(stream).map_or(0, |v| v.len() as i64);
        if !expected.matches(current) {
            return Err(StoreError::Conflict { stream: stream.to_string(), expected, actual: current });
        }
        for event in &events {
            if let Some(key) = &event.idempotency_key {
                let taken = log
                    .streams
                    .get(stream)
                    .into_iter()
                    .flatten()
                    .any(|&i| log.events[i].idempotency_key.as_ref() == Some(key));
                if taken {
                    return Err(StoreError::DuplicateKey { stream: stream.to_string(), key: key.clone() });
                }
            }
        }
        let mut positions = Vec::new();
        let mut version = current;
        for event in events {
            version += 1;
            let position = log.events.len() as i64 + 1;
            log.events.push(RecordedEvent {
                position,
                stream_id: stream.to_string(),
                version,
                event_id: Uuid::new_v4(),
                event_type: event.event_type,
                schema_version: event.schema_version,
                data: event.data,
                recorded_at: now,
                idempotency_key: event.idempotency_key,
            });
            let index = log.events.len() - 1;
            log.streams.entry(stream.to_string()).or_default().push(index);
            positions.push(position);
        }
        if let Some(&top) = positions.last() {
            self.head.send_replace(top);
        }
        Ok(Appended { stream_version: version, positions })
    }

    async fn read_stream(
        &self,
        stream: &str,
        after_version: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.lock();
        let indexes = log.streams.get(stream).map(Vec::as_slice).unwrap_or_default();
        let skip = usize::try_from(after_version.max(0)).unwrap_or(usize::MAX);
        Ok(indexes.iter().skip(skip).take(limit).map(|&i| log.events[i].clone()).collect())
    }

    async fn read_all(&self, after_position: i64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.lock();
        let skip = usize::try_from(after_position.max(0)).unwrap_or(usize::MAX);
        Ok(log.events.iter().skip(skip).take(limit).cloned().collect())
    }

    async fn head(&self) -> Result<i64, StoreError> {
        Ok(self.lock().events.len() as i64)
    }

    async fn stream_version(&self, stream: &str) -> Result<i64, StoreError> {
        Ok(self.lock().streams.get(stream).map_or(0, |v| v.len() as i64))
    }

    async fn find_by_idempotency_key(&self, stream: &str, key: &str) -> Result<Option<RecordedEvent>, StoreError> {
        let log = self.lock();
        let indexes = log.streams.get(stream).map(Vec::as_slice).unwrap_or_default();
        Ok(indexes.iter().map(|&i| &log.events[i]).find(|e| e.idempotency_key.as_deref() == Some(key)).cloned())
    }

    async fn list_streams(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> = self.lock().streams.keys().filter(|s| s.starts_with(prefix)).cloned().collect();
        ids.sort();
        Ok(ids)
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.head.subscribe()
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.lock().snapshots.get(stream).cloned())
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<(), StoreError> {
        self.lock().snapshots.insert(stream.to_string(), snapshot);
        Ok(())
    }
}
