//! telltale's own life: when it started and stopped receiving. Detection never blames a process
//! for time telltale could not hear it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event_family;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStarted {
    pub node_id: Uuid,
    pub at: DateTime<Utc>,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStopped {
    pub node_id: Uuid,
    pub at: DateTime<Utc>,
}

event_family! {
    pub enum SystemEvent {
        ServiceStarted(ServiceStarted),
        ServiceStopped(ServiceStopped),
    }
}
