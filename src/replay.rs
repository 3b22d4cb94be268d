//! Replay of one monitor over its recorded history (the adapter around
//! [`telltale_domain::replay`]): reads the monitor's stream and telltale's own starts and stops,
//! merges them in log order, runs detection again with a virtual clock, and sets what was
//! recorded beside what the replay derives.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::Value;
use telltale_domain::host::{HostEvent, HostReplay, HostReplayInput};
use telltale_domain::ids::streams;
use telltale_domain::monitor::MonitorEvent;
use telltale_domain::replay::{PolicyOverride, Replay, ReplayInput};
use telltale_domain::{DomainEvent, EventPayload, RecordedEvent};
use utoipa::ToSchema;

use crate::store::{EventStore, StoreError};

const PAGE: usize = 1000;
/// Without an explicit `to`, the replay stops this long before now, so that a tick the live
/// detector is still deciding is not reported as a difference.
const SETTLE: TimeDelta = TimeDelta::seconds(2);

/// One derived event.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DerivedOut {
    /// When it became true.
    pub at: DateTime<Utc>,
    /// Its event type, e.g. `HeartbeatMissed`, `AlertOpened`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event as stored.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// One line of the side-by-side comparison: the same event on both sides, or on one only.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplayRow {
    pub at: DateTime<Utc>,
    pub recorded: Option<DerivedOut>,
    pub replayed: Option<DerivedOut>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplayReport {
    pub monitor: String,
    pub from: Option<DateTime<Utc>>,
    pub to: DateTime<Utc>,
    /// True when a policy other than the recorded one was replayed.
    pub policy_overridden: bool,
    /// Inputs (signals, configuration changes, telltale's starts and stops) replayed.
    pub inputs: usize,
    /// True when the replay derived exactly what was recorded.
    pub identical: bool,
    pub recorded: usize,
    pub replayed: usize,
    /// Alerts opened on each side.
    pub recorded_alerts: usize,
    pub replayed_alerts: usize,
    /// Both sides, in time order.
    pub rows: Vec<ReplayRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no monitor `{0}`")]
    NotFound(String),
    #[error("no host `{0}`")]
    HostNotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

async fn read_everything(store: &dyn EventStore, stream: &str) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut all = Vec::new();
    loop {
        let page = store.read_stream(stream, all.len() as i64, PAGE).await?;
        let done = page.len() < PAGE;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

fn out(event: &MonitorEvent) -> DerivedOut {
    DerivedOut { at: event.at(), event_type: event.event_type().to_string(), data: event.encode().data }
}

/// What to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayQuery {
    pub client: String,
    pub slug: String,
    /// Report derived events from this instant.
    pub from: Option<DateTime<Utc>>,
    /// Replay up to this instant (default: now, less a moment).
    pub to: Option<DateTime<Utc>>,
    pub policy: PolicyOverride,
}

/// Replays one monitor. `progress(done, total)` is called as inputs are replayed.
pub async fn replay(
    store: &dyn EventStore,
    query: ReplayQuery,
    now: DateTime<Utc>,
    mut progress: impl FnMut(usize, usize),
) -> Result<ReplayReport, ReplayError> {
    let ReplayQuery { client, slug, from, to, policy } = query;
    let (client, slug) = (client.as_str(), slug.as_str());
    let monitor = read_everything(store, &streams::monitor(client, slug)).await?;
    if monitor.is_empty() {
        return Err(ReplayError::NotFound(slug.to_string()));
    }
    let system = read_everything(store, streams::SYSTEM).await?;
    let mut merged: Vec<RecordedEvent> = monitor.into_iter().chain(system).collect();
    merged.sort_by_key(|e| e.position);

    let to = to.unwrap_or(now - SETTLE);
    let mut recorded = Vec::new();
    let mut inputs = Vec::with_capacity(merged.len());
    for event in &merged {
        match DomainEvent::decode_recorded(event) {
            Ok(DomainEvent::Monitor(e)) => {
                if e.is_derived() {
                    recorded.push(e);
                } else {
                    inputs.push(ReplayInput::Monitor(e));
                }
            }
            Ok(DomainEvent::System(e)) => inputs.push(ReplayInput::System(e)),
            Ok(_) => {}
            Err(e) => tracing::warn!(position = event.position, error = %e, "replay skips an event it cannot read"),
        }
    }

    let total = inputs.len();
    let mut run = Replay::new((!policy.is_empty()).then_some(policy.clone()));
    for (i, input) in inputs.into_iter().enumerate() {
        let at = match &input {
            ReplayInput::Monitor(e) => e.at(),
            ReplayInput::System(telltale_domain::system::SystemEvent::ServiceStarted(s)) => s.at,
            ReplayInput::System(telltale_domain::system::SystemEvent::ServiceStopped(s)) => s.at,
        };
        if at > to {
            break;
        }
        run.feed(input);
        if i % 256 == 0 || i + 1 == total {
            progress(i + 1, total);
        }
    }
    run.advance(to);

    let window = |e: &&MonitorEvent| from.is_none_or(|f| e.at() >= f) && e.at() <= to;
    let recorded: Vec<&MonitorEvent> = recorded.iter().filter(window).collect();
    let replayed: Vec<&MonitorEvent> = run.derived().iter().filter(window).collect();
    let alerts = |events: &[&MonitorEvent]| events.iter().filter(|e| matches!(e, MonitorEvent::AlertOpened(_))).count();
    Ok(ReplayReport {
        monitor: slug.to_string(),
        from,
        to,
        policy_overridden: !policy.is_empty(),
        inputs: total,
        identical: recorded == replayed,
        recorded: recorded.len(),
        replayed: replayed.len(),
        recorded_alerts: alerts(&recorded),
        replayed_alerts: alerts(&replayed),
        rows: side_by_side(&recorded, &replayed, out),
    })
}

/// Pairs equal events; otherwise the earlier one goes alone on its side. `out` shows one.
fn side_by_side<E: PartialEq>(recorded: &[&E], replayed: &[&E], out: impl Fn(&E) -> DerivedOut) -> Vec<ReplayRow> {
    let (mut i, mut j) = (0, 0);
    let mut rows = Vec::with_capacity(recorded.len().max(replayed.len()));
    while i < recorded.len() || j < replayed.len() {
        let (a, b) = (recorded.get(i).map(|e| out(e)), replayed.get(j).map(|e| out(e)));
        match (a, b) {
            (Some(a), Some(b)) if recorded[i] == replayed[j] => {
                rows.push(ReplayRow { at: a.at, recorded: Some(a), replayed: Some(b) });
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.at <= b.at => {
                rows.push(ReplayRow { at: a.at, recorded: Some(a), replayed: None });
                i += 1;
            }
            (_, Some(b)) => {
                rows.push(ReplayRow { at: b.at, recorded: None, replayed: Some(b) });
                j += 1;
            }
            (Some(a), None) => {
                rows.push(ReplayRow { at: a.at, recorded: Some(a), replayed: None });
                i += 1;
            }
            (None, None) => break,
        }
    }
    rows
}

// ---- hosts --------------------------------------------------------------------------------

/// Host correlation run again over one host's recorded inputs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HostReplayReport {
    pub host: String,
    pub to: DateTime<Utc>,
    /// Inputs (members joining, leaving, falling silent, coming back; telltale's starts and
    /// stops) replayed.
    pub inputs: usize,
    /// True when the replay derived exactly what was recorded.
    pub identical: bool,
    pub recorded: usize,
    pub replayed: usize,
    /// Host alerts opened on each side.
    pub recorded_alerts: usize,
    pub replayed_alerts: usize,
    /// Both sides, in time order.
    pub rows: Vec<ReplayRow>,
}

fn host_out(event: &HostEvent) -> DerivedOut {
    DerivedOut { at: event.at(), event_type: event.event_type().to_string(), data: event.encode().data }
}

/// Replays one host's correlation from its recorded inputs, up to `to` (default: now, less a
/// moment).
pub async fn replay_host(
    store: &dyn EventStore,
    client: &str,
    host: &str,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<HostReplayReport, ReplayError> {
    let stream = read_everything(store, &streams::host(client, host)).await?;
    if stream.is_empty() {
        return Err(ReplayError::HostNotFound(host.to_string()));
    }
    let system = read_everything(store, streams::SYSTEM).await?;
    let mut merged: Vec<RecordedEvent> = stream.into_iter().chain(system).collect();
    merged.sort_by_key(|e| e.position);
    let to = to.unwrap_or(now - SETTLE);
    let mut recorded = Vec::new();
    let mut run = HostReplay::default();
    let mut inputs = 0;
    for event in &merged {
        let input = match DomainEvent::decode_recorded(event) {
            Ok(DomainEvent::Host(e)) if e.is_derived() => {
                recorded.push(e);
                continue;
            }
            Ok(DomainEvent::Host(e)) => HostReplayInput::Host(e),
            Ok(DomainEvent::System(e)) => HostReplayInput::System(e),
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(position = event.position, error = %e, "replay skips an event it cannot read");
                continue;
            }
        };
        let at = match &input {
            HostReplayInput::Host(e) => e.at(),
            HostReplayInput::System(telltale_domain::system::SystemEvent::ServiceStarted(s)) => s.at,
            HostReplayInput::System(telltale_domain::system::SystemEvent::ServiceStopped(s)) => s.at,
        };
        if at > to {
            break;
        }
        inputs += 1;
        run.feed(input);
    }
    run.advance(to);
    let recorded: Vec<&HostEvent> = recorded.iter().filter(|e| e.at() <= to).collect();
    let replayed: Vec<&HostEvent> = run.derived().iter().filter(|e| e.at() <= to).collect();
    let alerts = |events: &[&HostEvent]| events.iter().filter(|e| matches!(e, HostEvent::HostAlertOpened(_))).count();
    Ok(HostReplayReport {
        host: host.to_string(),
        to,
        inputs,
        identical: recorded == replayed,
        recorded: recorded.len(),
        replayed: replayed.len(),
        recorded_alerts: alerts(&recorded),
        replayed_alerts: alerts(&replayed),
        rows: side_by_side(&recorded, &replayed, host_out),
    })
}
