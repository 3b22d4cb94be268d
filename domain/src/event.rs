//! How events are stored: a type name, a schema version and a JSON body. Event type names are
//! facts in the past tense; they are never renamed or reused. A changed shape gets a new schema
//! version and an upcaster from the older JSON (see [`upcast`]).

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use uuid::Uuid;

/// An event as it leaves the domain, ready to append.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedEvent {
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Global position in the log: strictly increasing, in commit order.
    pub position: i64,
    pub stream_id: String,
    /// Position within the stream, from 1.
    pub version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
    pub recorded_at: DateTime<Utc>,
    /// The sender's idempotency key (`event_id` in the ingest API), when one was given.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    #[error("event `{event_type}` v{schema_version} does not decode: {source}")]
    Body { event_type: String, schema_version: i32, source: serde_json::Error },
    #[error("event `{event_type}` has schema version {schema_version}, newer than this build knows ({known})")]
    TooNew { event_type: String, schema_version: i32, known: i32 },
}

/// A family of events (one per aggregate). Implemented with [`event_family!`].
pub trait EventPayload: Sized + Clone + std::fmt::Debug {
    /// Every type name of this family.
    const TYPES: &'static [&'static str];
    fn event_type(&self) -> &'static str;
    fn encode(&self) -> EncodedEvent;
    /// Decodes one stored event of this family, upcasting older schema versions first.
    fn decode(event_type: &str, schema_version: i32, data: &Value) -> Result<Self, DecodeError>;

    fn decode_recorded(event: &RecordedEvent) -> Result<Self, DecodeError> {
        Self::decode(&event.event_type, event.schema_version, &event.data)
    }
}

/// The current schema version of every event type. Bump one here and add its upcaster to
/// [`upcast`] when its shape changes.
pub fn current_schema_version(_event_type: &str) -> i32 {
    1
}

/// Rewrites the JSON of an older schema version into the current one. Nothing has changed
/// shape yet, so this is the identity; it is the one place where that will happen.
pub fn upcast(event_type: &str, schema_version: i32, data: &Value) -> Result<Value, DecodeError> {
    let known = current_schema_version(event_type);
    if schema_version > known {
        return Err(DecodeError::TooNew { event_type: event_type.to_string(), schema_version, known });
    }
    Ok(data.clone())
}

#[doc(hidden)]
pub fn encode_body<T: Serialize>(event_type: &'static str, body: &T) -> EncodedEvent {
    EncodedEvent {
        event_type: event_type.to_string(),
        schema_version: current_schema_version(event_type),
        data: serde_json::to_value(body).expect("event bodies always serialise"),
    }
}

#[doc(hidden)]
pub fn decode_body<T: DeserializeOwned>(event_type: &str, schema_version: i32, data: &Value) -> Result<T, DecodeError> {
    let data = upcast(event_type, schema_version, data)?;
    serde_json::from_value(data).map_err(|source| DecodeError::Body {
        event_type: event_type.to_string(),
        schema_version,
        source,
    })
}

/// Declares an event family: an enum whose variants each wrap one body struct, named by the
/// stored event type.
#[macro_export]
macro_rules! event_family {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident($body:ty)),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis enum $name { $($variant($body)),+ }

        impl $crate::event::EventPayload for $name {
            const TYPES: &'static [&'static str] = &[$(stringify!($variant)),+];
            fn event_type(&self) -> &'static str {
                match self { $(Self::$variant(_) => stringify!($variant)),+ }
            }
            fn encode(&self) -> $crate::event::EncodedEvent {
                match self { $(Self::$variant(body) => $crate::event::encode_body(stringify!($variant), body)),+ }
            }
            fn decode(event_type: &str, schema_version: i32, data: &serde_json::Value) -> Result<Self, $crate::event::DecodeError> {
                match event_type {
                    $(stringify!($variant) => Ok(Self::$variant($crate::event::decode_body(event_type, schema_version, data)?)),)+
                    other => Err($crate::event::DecodeError::UnknownType(other.to_string())),
                }
            }
        }
    };
}
