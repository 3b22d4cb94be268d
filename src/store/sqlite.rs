//! The embedded default: one SQLite file in WAL mode.
//!
//! Appends go through one writer task that owns the only writing connection. It takes every
//! request waiting in its queue, writes them all in one `BEGIN IMMEDIATE` transaction (one
//! fsync), and answers each request only after that commit: group commit. Because SQLite
//! serialises writers, positions become visible in order, so `read_all` never skips an event
//! that commits late.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};
use telltale_domain::RecordedEvent;
use telltale_projections::log::{fmt_time, parse_time};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::{Appended, EventStore, ExpectedVersion, NewEvent, Snapshot, StoreError, WriteGate};
use crate::clock::SharedClock;

/// Requests the writer takes into one transaction at most.
const MAX_BATCH: usize = 1024;
/// How often appends made by other processes (the CLI) are looked for.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

struct AppendRequest {
    stream: String,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
}

struct Inner {
    read: SqlitePool,
    writer: mpsc::Sender<AppendRequest>,
    head: watch::Sender<i64>,
    gate: WriteGate,
}

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// Connection options shared by every connection to the file.
pub fn connect_options(url: &str) -> Result<SqliteConnectOptions, sqlx::Error> {
    Ok(SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true))
}

/// The file path of a `sqlite:` URL (`None` for an in-memory database).
pub fn file_path(url: &str) -> Option<std::path::PathBuf> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Holds `<database>.lock` for as long as a server uses the file: two servers on one SQLite
/// file would both detect and both notify.
pub struct ServerLock(#[allow(dead_code)] std::fs::File);

impl ServerLock {
    pub fn acquire(url: &str) -> anyhow::Result<Option<ServerLock>> {
        let Some(path) = file_path(url) else { return Ok(None) };
        ensure_parent_dir(url)?;
        let lock_path = path.with_extension("lock");
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(ServerLock(file))),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another `telltale serve` is using {} (it holds {}); run one server per SQLite file",
                path.display(),
                lock_path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

/// Creates the directory a `sqlite:` URL's file lives in.
pub fn ensure_parent_dir(url: &str) -> std::io::Result<()> {
    let Some(path) = file_path(url) else { return Ok(()) };
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url`, applies the migrations, and starts the
    /// writer.
    pub async fn open(url: &str, clock: SharedClock, gate: WriteGate) -> Result<SqliteStore, StoreError> {
        ensure_parent_dir(url).map_err(StoreError::backend)?;
        let options = connect_options(url).map_err(StoreError::backend)?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(StoreError::backend)?;
        MIGRATOR.run(&read).await.map_err(StoreError::backend)?;
        let conn = SqliteConnection::connect_with(&options).await.map_err(StoreError::backend)?;
        let head_position: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&read)
            .await
            .map_err(StoreError::backend)?;
        let (head, _) = watch::channel(head_position);
        let (writer, rx) = mpsc::channel(MAX_BATCH * 4);
        let inner = Arc::new(Inner { read, writer, head, gate });
        tokio::spawn(write_loop(conn, rx, Arc::downgrade(&inner), clock));
        tokio::spawn(poll_loop(Arc::downgrade(&inner)));
        Ok(SqliteStore { inner })
    }

    /// The pool readers use; read models share the file.
    pub fn pool(&self) -> &SqlitePool {
        &self.inner.read
    }

    pub fn gate(&self) -> WriteGate {
        self.inner.gate.clone()
    }
}

async fn write_loop(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<AppendRequest>,
    inner: Weak<Inner>,
    clock: SharedClock,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else { break };
        let outcome = {
            let _gate = inner.gate.lock().await;
            write_batch(&mut conn, &batch, &fmt_time(clock.now())).await
        };
        match outcome {
            Ok(results) => {
                let top = results.iter().filter_map(|r| r.as_ref().ok()?.positions.last().copied()).max();
                if let Some(top) = top {
                    inner.head.send_if_modified(|h| {
                        let moved = top > *h;
                        *h = (*h).max(top);
                        moved
                    });
                }
                for (request, result) in batch.into_iter().zip(results) {
                    let _ = request.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "event store: a group commit failed; its appends are refused");
                for request in batch {
                    let _ = request.reply.send(Err(StoreError::backend(&e)));
                }
            }
        }
    }
    let _ = conn.close().await;
}

async fn write_batch(
    conn: &mut SqliteConnection,
    batch: &[AppendRequest],
    now: &str,
) -> Result<Vec<Result<Appended, StoreError>>, sqlx::Error> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let mut versions: HashMap<&str, i64> = HashMap::new();
    let mut results = Vec::with_capacity(batch.len());
    for request in batch {
        let stream = request.stream.as_str();
        let current = match versions.get(stream) {
            Some(v) => *v,
            None => sqlx::query_scalar::<_, i64>("SELECT version FROM streams WHERE stream_id = $1")
                .bind(stream)
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or(0),
        };
        versions.insert(stream, current);
        if !request.expected.matches(current) {
            results.push(Err(StoreError::Conflict {
                stream: stream.to_string(),
                expected: request.expected,
                actual: current,
            }));
            continue;
        }
        if request.events.is_empty() {
            results.push(Ok(Appended { stream_version: current, positions: vec![] }));
            continue;
        }
        // Only an idempotency key can make one request's insert fail on its own; isolate those
        // in a savepoint so the rest of the group still commits. Any other failure fails the group.
        if request.events.iter().any(|e| e.idempotency_key.is_some()) {
            let mut savepoint = tx.begin().await?;
            match insert_events(&mut savepoint, request, current, now).await {
                Ok(appended) => {
                    savepoint.commit().await?;
                    versions.insert(stream, appended.stream_version);
                    results.push(Ok(appended));
                }
                Err(e) => {
                    savepoint.rollback().await?;
                    results.push(Err(classify(e, request)));
                }
            }
        } else {
            let appended = insert_events(&mut tx, request, current, now).await?;
            versions.insert(stream, appended.stream_version);
            results.push(Ok(appended));
        }
    }
    tx.commit().await?;
    Ok(results)
}

fn classify(e: sqlx::Error, request: &AppendRequest) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
        && db.message().contains("idempotency_key")
    {
        let key = request.events.iter().find_map(|ev| ev.idempotency_key.clone()).unwrap_or_default();
        return StoreError::DuplicateKey { stream: request.stream.clone(), key };
    }
    StoreError::backend(e)
}

async fn insert_events(
    conn: &mut SqliteConnection,
    request: &AppendRequest,
    current: i64,
    now: &str,
) -> Result<Appended, sqlx::Error> {
    let mut positions = Vec::with_capacity(request.events.len());
    let mut version = current;
    for event in &request.events {
        version += 1;
        let position: i64 = sqlx::query_scalar(
            "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, data, recorded_at, idempotency_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING position",
        )
        .bind(&request.stream)
        .bind(version)
        .bind(Uuid::new_v4().to_string())
        .bind(&event.event_type)
        .bind(event.schema_version)
        .bind(event.data.to_string())
        .bind(now)
        .bind(&event.idempotency_key)
        .fetch_one(&mut *conn)
        .await?;
        positions.push(position);
    }
    sqlx::query(
        "INSERT INTO streams (stream_id, version) VALUES ($1, $2)
         ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version",
    )
    .bind(&request.stream)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    Ok(Appended { stream_version: version, positions })
}

async fn poll_loop(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.writer.is_closed() {
            return;
        }
        let latest: Result<i64, _> =
            sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events").fetch_one(&inner.read).await;
        if let Ok(latest) = latest {
            inner.head.send_if_modified(|h| {
                let moved = latest > *h;
                *h = (*h).max(latest);
                moved
            });
        }
    }
}

/// `SELECT <every column> FROM events <rest>`, as a literal.
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            "SELECT position, stream_id, version, event_id, event_type, schema_version, data, recorded_at, idempotency_key ",
            "FROM events ",
            $rest
        )
    };
}

fn decode_row(row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
    let event_id: String = row.try_get("event_id").map_err(StoreError::backend)?;
    let data: String = row.try_get("data").map_err(StoreError::backend)?;
    let recorded_at: String = row.try_get("recorded_at").map_err(StoreError::backend)?;
    Ok(RecordedEvent {
        position: row.try_get("position").map_err(StoreError::backend)?,
        stream_id: row.try_get("stream_id").map_err(StoreError::backend)?,
        version: row.try_get("version").map_err(StoreError::backend)?,
        event_id: Uuid::parse_str(&event_id).map_err(StoreError::backend)?,
        event_type: row.try_get("event_type").map_err(StoreError::backend)?,
        schema_version: row.try_get("schema_version").map_err(StoreError::backend)?,
        data: serde_json::from_str(&data).map_err(StoreError::backend)?,
        recorded_at: parse_time(&recorded_at).ok_or_else(|| StoreError::backend(format!("bad time {recorded_at}")))?,
        idempotency_key: row.try_get("idempotency_key").map_err(StoreError::backend)?,
    })
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest { stream: stream.to_string(), expected, events, reply };
        self.inner.writer.send(request).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(
        &self,
        stream: &str,
        after_version: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(select_events!("WHERE stream_id = $1 AND version > $2 ORDER BY version LIMIT $3"))
            .bind(stream)
            .bind(after_version)
            .bind(limit_of(limit))
            .fetch_all(&self.inner.read)
            .await
            .map_err(StoreError::backend)?;
        rows.iter().map(decode_row).collect()
    }

    async fn read_all(&self, after_position: i64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(select_events!("WHERE position > $1 ORDER BY position LIMIT $2"))
            .bind(after_position)
            .bind(limit_of(limit))
            .fetch_all(&self.inner.read)
            .await
            .map_err(StoreError::backend)?;
        rows.iter().map(decode_row).collect()
    }

    async fn head(&self) -> Result<i64, StoreError> {
        let latest: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.inner.read)
            .await
            .map_err(StoreError::backend)?;
        self.inner.head.send_if_modified(|h| {
            let moved = latest > *h;
            *h = (*h).max(latest);
            moved
        });
        Ok(latest)
    }

    async fn stream_version(&self, stream: &str) -> Result<i64, StoreError> {
        let version: Option<i64> = sqlx::query_scalar("SELECT version FROM streams WHERE stream_id = $1")
            .bind(stream)
            .fetch_optional(&self.inner.read)
            .await
            .map_err(StoreError::backend)?;
        Ok(version.unwrap_or(0))
    }

    async fn find_by_idempotency_key(&self, stream: &str, key: &str) -> Result<Option<RecordedEvent>, StoreError> {
        let row = sqlx::query(select_events!("WHERE stream_id = $1 AND idempotency_key = $2"))
            .bind(stream)
            .bind(key)
            .fetch_optional(&self.inner.read)
            .await
            .map_err(StoreError::backend)?;
        row.as_ref().map(decode_row).transpose()
    }

    async fn list_streams(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // Range scan on the primary key: every id in [prefix, prefix + U+10FFFF).
        let upper = format!("{prefix}\u{10FFFF}");
        sqlx::query_scalar("SELECT stream_id FROM streams WHERE stream_id >= $1 AND stream_id < $2 ORDER BY stream_id")
            .bind(prefix)
            .bind(upper)
            .fetch_all(&self.inner.read)
            .await
            .map_err(StoreError::backend)
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.inner.head.subscribe()
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query("SELECT state_version, version, state FROM snapshots WHERE stream_id = $1")
            .bind(stream)
            .fetch_optional(&self.inner.read)
            .await
            .map_err(StoreError::backend)?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row.try_get("state").map_err(StoreError::backend)?;
        Ok(Some(Snapshot {
            state_version: row.try_get("state_version").map_err(StoreError::backend)?,
            version: row.try_get("version").map_err(StoreError::backend)?,
            state: serde_json::from_str(&state).map_err(StoreError::backend)?,
        }))
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<(), StoreError> {
        let _gate = self.inner.gate.lock().await;
        sqlx::query(
            "INSERT INTO snapshots (stream_id, state_version, version, state) VALUES ($1, $2, $3, $4)
             ON CONFLICT (stream_id) DO UPDATE SET state_version = excluded.state_version,
                 version = excluded.version, state = excluded.state
             WHERE excluded.version > snapshots.version OR excluded.state_version <> snapshots.state_version",
        )
        .bind(stream)
        .bind(snapshot.state_version)
        .bind(snapshot.version)
        .bind(snapshot.state.to_string())
        .execute(&self.inner.read)
        .await
        .map_err(StoreError::backend)?;
        Ok(())
    }
}
