//! The shape every aggregate follows: `decide(&State, Command, &Context) -> Result<Vec<Event>>`
//! and `evolve(State, &Event) -> State`. Time is a value in the context, never read from a clock.

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};

use crate::event::EventPayload;

/// Facts from outside that a decision may depend on, fetched before the command is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// The server's clock when the command is decided. Authoritative for every event time.
    pub now: DateTime<Utc>,
    /// When the running telltale started to receive. Nothing before it is blamed on a process
    /// that telltale could not hear.
    pub service_started_at: DateTime<Utc>,
}

impl Context {
    pub fn new(now: DateTime<Utc>, service_started_at: DateTime<Utc>) -> Context {
        Context { now, service_started_at }
    }
}

pub trait Aggregate {
    type State: Default + Clone + Send + Sync + Serialize + DeserializeOwned + 'static;
    type Command: Send + Clone;
    type Event: EventPayload + Send + Sync + 'static;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Bumped whenever `State`'s serialised shape changes, so stale snapshots are ignored.
    const STATE_VERSION: i32;

    fn decide(state: &Self::State, command: Self::Command, ctx: &Context) -> Result<Vec<Self::Event>, Self::Error>;
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    fn fold<'a>(state: Self::State, events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State {
        events.into_iter().fold(state, Self::evolve)
    }
}
