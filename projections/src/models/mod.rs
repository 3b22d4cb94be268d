//! The read models. Each module holds a pure fold (events in, rows out), the thin SQL adapter
//! that applies it, and the queries the API and dashboard run against its tables.

pub mod alerts;
pub mod clients;
pub mod history;
pub mod hosts;
pub mod monitors;
pub mod notifications;
pub mod runs;

use chrono::{DateTime, Utc};

use crate::log::{fmt_time, parse_time};

pub(crate) fn opt_time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(fmt_time)
}

pub(crate) fn read_time(s: Option<String>) -> Option<DateTime<Utc>> {
    s.as_deref().and_then(parse_time)
}
