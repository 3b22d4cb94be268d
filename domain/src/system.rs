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
    /// When the previous run of telltale was last seen alive, if it ended without recording
    /// `ServiceStopped` (a crash, a kill, a power cut): the time of the last event it recorded.
    /// Any deadline it recorded fell before this; any it did not, fell while nobody listened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_since: Option<DateTime<Utc>>,
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
