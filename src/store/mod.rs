//! Event store backends. The contract ([`EventStore`]) is defined in `telltale-projections`
//! beside the runner that follows it; every backend here passes `tests/store_contract.rs`.

pub mod memory;
pub mod sqlite;

use std::sync::Arc;

pub use telltale_projections::log::{Appended, EventStore, ExpectedVersion, NewEvent, Snapshot, StoreError, follow};

/// Serialises this process's writes to one SQLite file, so that the event writer and the
/// projection runner queue in memory instead of spinning in SQLite's busy handler.
pub type WriteGate = Arc<tokio::sync::Mutex<()>>;
