//! telltale's read side: projections that fold the event log into SQL read models, and the
//! runner that keeps them up to date.
//!
//! Each projection has a name and a version. Its rows and its checkpoint are written in one
//! transaction, so every event is applied exactly once even though the log is read at least
//! once. Bumping a projection's version rebuilds it from position zero.
//!
//! Read models use `sqlx::Any` with portable SQL (`$n` parameters, text times, text JSON), so one
//! code path serves SQLite and PostgreSQL.

pub mod log;
pub mod models;
mod runner;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;
use telltale_domain::DomainEvent;

pub use runner::{Projector, ProjectorError, ReadDb};

/// A decoded event with the envelope fields projections need.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub position: i64,
    pub stream_id: String,
    pub recorded_at: DateTime<Utc>,
    pub event: DomainEvent,
}

#[async_trait]
pub trait Projection: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Bump to rebuild this projection from the start of the log.
    fn version(&self) -> i32;
    /// The tables this projection owns; emptied on rebuild.
    fn tables(&self) -> &'static [&'static str];
    /// Applies a batch of events, in position order, inside the runner's transaction.
    async fn apply(&self, conn: &mut AnyConnection, events: &[&Envelope]) -> Result<(), sqlx::Error>;
}

/// Every projection telltale runs, in the order they are applied.
pub fn all() -> Vec<std::sync::Arc<dyn Projection>> {
    vec![
        std::sync::Arc::new(models::monitors::MonitorsProjection),
        std::sync::Arc::new(models::history::HistoryProjection),
        std::sync::Arc::new(models::runs::RunsProjection),
        std::sync::Arc::new(models::alerts::AlertsProjection),
        std::sync::Arc::new(models::hosts::HostsProjection),
        std::sync::Arc::new(models::clients::ClientsProjection),
        std::sync::Arc::new(models::notifications::NotificationsProjection),
    ]
}
