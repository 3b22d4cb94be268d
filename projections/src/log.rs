//! The event log contract. Every backend (memory, SQLite, PostgreSQL, EventStoreDB) implements
//! [`EventStore`] and passes the one conformance suite in `tests/store_contract.rs`.
//!
//! It lives here, beside the projection runner that follows it, so that `telltale-projections`
//! does not depend on the binary; the backends live in `src/store/`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use telltale_domain::{EncodedEvent, RecordedEvent};
use tokio::sync::watch;

/// The version a stream must be at for an append to succeed. A stream's version is the number
/// of events in it; an empty or unknown stream is at version 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds.
    Any,
    /// The stream must be empty.
    NoStream,
    /// The stream must be exactly at this version.
    Exact(i64),
}

impl ExpectedVersion {
    pub fn matches(self, actual: i64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => v == actual,
        }
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
    /// A sender's key for idempotent retries; unique within the stream.
    pub idempotency_key: Option<String>,
}

impl From<EncodedEvent> for NewEvent {
    fn from(e: EncodedEvent) -> NewEvent {
        NewEvent { event_type: e.event_type, schema_version: e.schema_version, data: e.data, idempotency_key: None }
    }
}

/// What an append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stream's version after the append.
    pub stream_version: i64,
    /// The global position of each appended event, in order.
    pub positions: Vec<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream `{stream}` is at version {actual}, not at the expected {expected:?}")]
    Conflict { stream: String, expected: ExpectedVersion, actual: i64 },
    #[error("stream `{stream}` already holds an event with idempotency key `{key}`")]
    DuplicateKey { stream: String, key: String },
    #[error("the event store is shutting down")]
    Closed,
    #[error("event store: {0}")]
    Backend(String),
}

impl StoreError {
    pub fn backend(e: impl std::fmt::Display) -> StoreError {
        StoreError::Backend(e.to_string())
    }
}

/// A saved aggregate state, so that loading a long stream never replays it whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub state_version: i32,
    pub version: i64,
    pub state: Value,
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if it is at `expected`; all or nothing. Answers only once
    /// the events are durable.
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError>;

    /// Events of one stream with a version above `after_version`, oldest first.
    async fn read_stream(
        &self,
        stream: &str,
        after_version: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Events of the whole log with a position above `after_position`, in position order. A
    /// reader never sees a position before every lower position is visible.
    async fn read_all(&self, after_position: i64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The highest position visible to readers.
    async fn head(&self) -> Result<i64, StoreError>;

    /// The current version of a stream (0 when it holds nothing).
    async fn stream_version(&self, stream: &str) -> Result<i64, StoreError>;

    /// The event of `stream` appended with this idempotency key, if any.
    async fn find_by_idempotency_key(&self, stream: &str, key: &str) -> Result<Option<RecordedEvent>, StoreError>;

    /// Stream ids that start with `prefix`.
    async fn list_streams(&self, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// A watch of the head position, for following the log live. Appends through this handle
    /// show at once; appends by other processes show within the backend's poll interval.
    fn subscribe(&self) -> watch::Receiver<i64>;

    async fn load_snapshot(&self, _stream: &str) -> Result<Option<Snapshot>, StoreError> {
        Ok(None)
    }
    async fn save_snapshot(&self, _stream: &str, _snapshot: Snapshot) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Follows the log from `after`: returns the next batch, waiting (up to `wait`) for one when the
/// reader is at the head. An empty batch means nothing arrived in time.
pub async fn follow(
    store: &dyn EventStore,
    head: &mut watch::Receiver<i64>,
    after: i64,
    limit: usize,
    wait: Duration,
) -> Result<Vec<RecordedEvent>, StoreError> {
    loop {
        let batch = store.read_all(after, limit).await?;
        if !batch.is_empty() {
            return Ok(batch);
        }
        let seen = *head.borrow_and_update();
        if seen > after {
            continue;
        }
        match tokio::time::timeout(wait, head.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => return Err(StoreError::Closed),
            Err(_) => return Ok(Vec::new()),
        }
    }
}

/// The fixed text form of times in SQL columns: RFC 3339, UTC, microseconds. It sorts as text.
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}
