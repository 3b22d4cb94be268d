//! Follows the log and applies it to every projection, one transaction per batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{AnyPool, Connection, Row};
use telltale_domain::DomainEvent;
use tokio::sync::{Mutex, watch};

use crate::log::{EventStore, StoreError};
use crate::{Envelope, Projection};

const BATCH: usize = 500;

/// The read-model database, and (for SQLite) the gate that serialises this process's writers.
#[derive(Clone)]
pub struct ReadDb {
    pub pool: AnyPool,
    pub gate: Option<Arc<Mutex<()>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event at position {position} cannot be decoded: {message}")]
    Decode { position: i64, message: String },
}

pub struct Projector {
    db: ReadDb,
    store: Arc<dyn EventStore>,
    projections: Vec<Arc<dyn Projection>>,
    progress: watch::Sender<i64>,
}

impl Projector {
    pub fn new(db: ReadDb, store: Arc<dyn EventStore>, projections: Vec<Arc<dyn Projection>>) -> Projector {
        Projector { db, store, projections, progress: watch::channel(0).0 }
    }

    pub fn db(&self) -> &ReadDb {
        &self.db
    }

    /// The lowest position every projection has applied.
    pub fn progress(&self) -> watch::Receiver<i64> {
        self.progress.subscribe()
    }

    /// Creates missing checkpoints and rebuilds every projection whose version changed.
    pub async fn prepare(&self) -> Result<(), ProjectorError> {
        let head = self.store.head().await?;
        let stored = self.checkpoints().await?;
        let mut stale = Vec::new();
        for p in &self.projections {
            match stored.get(p.name()) {
                Some((version, _)) if *version == p.version() => {}
                Some((version, _)) => {
                    tracing::info!(
                        projection = p.name(),
                        from = version,
                        to = p.version(),
                        "projection version changed; rebuilding"
                    );
                    stale.push(p.clone());
                }
                None => stale.push(p.clone()),
            }
        }
        if !stale.is_empty() {
            self.reset(&stale, head).await?;
        }
        self.publish().await?;
        Ok(())
    }

    /// Empties the given projections and starts them again from position zero.
    async fn reset(&self, which: &[Arc<dyn Projection>], head: i64) -> Result<(), ProjectorError> {
        let _gate = self.lock_gate().await;
        let mut conn = self.db.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::query("UPDATE rm_lock SET touched = touched + 1 WHERE id = 1").execute(&mut *tx).await?;
        for p in which {
            for table in p.tables() {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}"))).execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO rm_checkpoints (name, version, position, rebuild_target) VALUES ($1, $2, 0, $3)
                 ON CONFLICT (name) DO UPDATE SET version = excluded.version, position = 0,
                     rebuild_target = excluded.rebuild_target",
            )
            .bind(p.name())
            .bind(p.version())
            .bind(head)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Drops every read model and replays the whole log into it. `on_progress(done, total)` is
    /// called after each batch.
    pub async fn rebuild(&self, mut on_progress: impl FnMut(i64, i64)) -> Result<(), ProjectorError> {
        let head = self.store.head().await?;
        self.reset(&self.projections, head).await?;
        self.publish().await?;
        loop {
            let applied = self.step().await?;
            let done = *self.progress.borrow();
            on_progress(done.min(head), head);
            if applied == 0 && done >= head {
                return Ok(());
            }
        }
    }

    async fn checkpoints(&self) -> Result<HashMap<String, (i32, i64)>, ProjectorError> {
        let rows = sqlx::query("SELECT name, version, position FROM rm_checkpoints").fetch_all(&self.db.pool).await?;
        let mut out = HashMap::new();
        for row in rows {
            let name: String = row.try_get("name")?;
            let version: i32 = row.try_get::<i64, _>("version")? as i32;
            let position: i64 = row.try_get("position")?;
            out.insert(name, (version, position));
        }
        Ok(out)
    }

    async fn publish(&self) -> Result<i64, ProjectorError> {
        let stored = self.checkpoints().await?;
        let low = self.projections.iter().map(|p| stored.get(p.name()).map_or(0, |c| c.1)).min().unwrap_or(0);
        self.advertise(low);
        Ok(low)
    }

    /// Tells waiters that every projection has applied `low`.
    fn advertise(&self, low: i64) {
        self.progress.send_if_modified(|p| {
            let moved = *p != low;
            *p = low;
            moved
        });
    }

    async fn lock_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.db.gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        }
    }

    /// Applies one batch. Returns how many events were read (0 when every projection is at the
    /// head).
    pub async fn step(&self) -> Result<usize, ProjectorError> {
        let seen = self.checkpoints().await?;
        let position_of = |name: &str| seen.get(name).map_or(0, |c| c.1);
        let low = self.projections.iter().map(|p| position_of(p.name())).min().unwrap_or(0);
        let raw = self.store.read_all(low, BATCH).await?;
        if raw.is_empty() {
            // Another runner (a CLI command on the same database) may have moved the
            // checkpoints: what they say is where the read models are.
            self.advertise(low);
            return Ok(0);
        }
        let mut events = Vec::with_capacity(raw.len());
        for r in &raw {
            let event = DomainEvent::decode_recorded(r)
                .map_err(|e| ProjectorError::Decode { position: r.position, message: e.to_string() })?;
            events.push(Envelope {
                position: r.position,
                stream_id: r.stream_id.clone(),
                recorded_at: r.recorded_at,
                event,
            });
        }
        let last = raw.last().map(|r| r.position).unwrap_or(low);
        {
            let _gate = self.lock_gate().await;
            let mut conn = self.db.pool.acquire().await?;
            let mut tx = conn.begin().await?;
            // Taking the lock row first makes this the only runner applying a batch now.
            sqlx::query("UPDATE rm_lock SET touched = touched + 1 WHERE id = 1").execute(&mut *tx).await?;
            let rows = sqlx::query("SELECT name, position FROM rm_checkpoints").fetch_all(&mut *tx).await?;
            let mut now_at: HashMap<String, i64> = HashMap::new();
            for row in rows {
                now_at.insert(row.try_get("name")?, row.try_get("position")?);
            }
            if self.projections.iter().any(|p| now_at.get(p.name()).copied().unwrap_or(0) != position_of(p.name())) {
                // Another runner moved on meanwhile: start over from what it left.
                tx.rollback().await?;
                return Ok(raw.len());
            }
            for p in &self.projections {
                let from = position_of(p.name());
                let mine: Vec<&Envelope> = events.iter().filter(|e| e.position > from).collect();
                if mine.is_empty() {
                    continue;
                }
                p.apply(&mut tx, &mine).await?;
                sqlx::query("UPDATE rm_checkpoints SET position = $1 WHERE name = $2")
                    .bind(last)
                    .bind(p.name())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        self.publish().await?;
        Ok(raw.len())
    }

    /// Applies batches until every projection is at the head.
    pub async fn catch_up(&self) -> Result<(), ProjectorError> {
        while self.step().await? > 0 {}
        Ok(())
    }

    /// Follows the log until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut head = self.store.subscribe();
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.step().await {
                Ok(0) => {
                    let target = *self.progress.borrow();
                    if *head.borrow_and_update() > target {
                        continue;
                    }
                    tokio::select! {
                        _ = head.changed() => {}
                        _ = shutdown.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "projection runner: a batch failed; retrying in 1s");
                    tokio::select! {
                        _ = shutdown.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    /// Waits until every projection has applied `position`, or `timeout` passes. Returns whether
    /// it got there.
    pub async fn wait_for(&self, position: i64, timeout: Duration) -> bool {
        let mut rx = self.progress.subscribe();
        let reached = async {
            loop {
                if *rx.borrow_and_update() >= position {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, reached).await.is_ok() && *self.progress.borrow() >= position
    }

    /// Whether a projection is still replaying history after a rebuild.
    pub async fn is_rebuilding(&self, name: &str) -> Result<bool, ProjectorError> {
        let row = sqlx::query("SELECT position, rebuild_target FROM rm_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<i64, _>("position")? < row.try_get::<i64, _>("rebuild_target")?,
            None => true,
        })
    }
}
