//! telltale's domain: events, commands, aggregates and schedules. Pure: no I/O, no async, no
//! clock. Time is always a value passed in, which is what makes replay exact.

pub mod aggregate;
pub mod alerting;
pub mod channel;
pub mod client;
pub mod cron;
pub mod event;
pub mod host;
pub mod ids;
pub mod keys;
pub mod maintenance;
pub mod monitor;
pub mod notification;
pub mod policy;
pub mod replay;
pub mod schedule;
pub mod span;
pub mod system;
pub mod users;

pub use aggregate::{Aggregate, Context};
pub use event::{DecodeError, EncodedEvent, EventPayload, RecordedEvent};

/// Longest slug or client name.
pub const MAX_NAME_LEN: usize = 64;

use client::ClientEvent;
use host::HostEvent;
use monitor::MonitorEvent;
use notification::NotificationEvent;
use system::SystemEvent;
use users::UserEvent;

/// Any stored event, decoded by its type name.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    Monitor(MonitorEvent),
    Client(ClientEvent),
    System(SystemEvent),
    Notification(NotificationEvent),
    Host(HostEvent),
    User(UserEvent),
}

impl DomainEvent {
    pub fn decode(event_type: &str, schema_version: i32, data: &serde_json::Value) -> Result<DomainEvent, DecodeError> {
        if MonitorEvent::TYPES.contains(&event_type) {
            MonitorEvent::decode(event_type, schema_version, data).map(DomainEvent::Monitor)
        } else if ClientEvent::TYPES.contains(&event_type) {
            ClientEvent::decode(event_type, schema_version, data).map(DomainEvent::Client)
        } else if SystemEvent::TYPES.contains(&event_type) {
            SystemEvent::decode(event_type, schema_version, data).map(DomainEvent::System)
        } else if NotificationEvent::TYPES.contains(&event_type) {
            NotificationEvent::decode(event_type, schema_version, data).map(DomainEvent::Notification)
        } else if HostEvent::TYPES.contains(&event_type) {
            HostEvent::decode(event_type, schema_version, data).map(DomainEvent::Host)
        } else if UserEvent::TYPES.contains(&event_type) {
            UserEvent::decode(event_type, schema_version, data).map(DomainEvent::User)
        } else {
            Err(DecodeError::UnknownType(event_type.to_string()))
        }
    }

    pub fn decode_recorded(event: &RecordedEvent) -> Result<DomainEvent, DecodeError> {
        DomainEvent::decode(&event.event_type, event.schema_version, &event.data)
    }
}
