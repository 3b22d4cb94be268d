//! Host correlation: when most monitors of one host fall silent together, the host is the
//! problem, not each of its processes. One host alert opens, naming the host and its silent
//! monitors; the monitors' own `missed` alerts are still recorded, but inhibited: the outbox does
//! not send them. When the host shows life again the host alert resolves, and the monitors that
//! come back with it resolve their own alerts without a word.
//!
//! The rules (see the README, "Host correlation"):
//! - A host's *members* are the active (existing, unpaused) monitors of one client whose last
//!   signal named that host.
//! - A member is *silent* while its `missed` alert is open. A failed or hung run is a sign of
//!   life, not silence: it never counts, and it is never inhibited.
//! - A silent member's `flapping` alert belongs to its silence: a host that goes down again and
//!   again makes each of its monitors flap, and that flapping is the host's, not each
//!   process's. Whatever the silence's alert gets (inhibited, released) its flapping alert gets
//!   too. A member that flaps while its host is fine (failing runs, or silent alone) is not
//!   concerned: no host alert covers its silence.
//! - The host alert opens when at least [`MIN_SILENT`] members, and more than half of all the
//!   host's members, fell silent within [`CORRELATION_WINDOW`] of each other (counting only
//!   silences that no earlier host alert covered). It opens at the latest of those deadlines.
//! - Every silent member is attached to it (inhibited); a member that falls silent while it is
//!   open is attached too.
//! - It resolves as soon as one attached member shows life (the host is reachable again), or
//!   when no attached member remains (paused, deleted, moved to another host).
//! - A member still silent [`RETURN_WINDOW`] after its host came back is not coming back with
//!   it: its own alert is released and sent then. One that returns before is never announced.
//!
//! Like the Monitor aggregate, a decision is `due` (releases that time alone made due, each
//! stamped with the instant it became due) + the command's facts (what the monitors' states
//! say), each followed by its `react`ions. The facts are recorded in the host's stream, so
//! [`HostReplay`] recomputes every derived fact from them exactly. Detection never blames a
//! process for time telltale could not hear: a silence is a recorded miss, and misses only
//! happen while telltale listens; a release waits for a full [`RETURN_WINDOW`] of listening.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate::{Aggregate, Context};
use crate::event_family;
use crate::ids::streams;
use crate::monitor::{AlertCause, Monitor};
use crate::span::Span;
use crate::system::SystemEvent;

/// Fewest silent members that make a host alert.
pub const MIN_SILENT: usize = 3;
/// Silences whose deadlines fall within this of each other fell silent together.
pub const CORRELATION_WINDOW: Span = Span::from_secs(5 * 60);
/// How long a member still silent after its host came back is given to come back too.
pub const RETURN_WINDOW: Span = Span::from_secs(5 * 60);
/// How long the outbox holds the `missed` notification of a member of a host with at least
/// [`MIN_SILENT`] members, so that it is not sent alone just before the host alert opens.
pub const HOLD: Span = Span::from_millis(1_000);
/// The cause of a host alert.
pub const HOST_SILENT: &str = "host_silent";
/// Bound on time-driven steps in one decision (never reached in practice).
const MAX_DUE_STEPS: usize = 10_000;

const HOST_ALERT_NAMESPACE: Uuid = Uuid::from_u128(0x3b7e_2c91_8d4a_4f0e_a5c3_91d2_6b8e_a003);

/// A host as the API and the stream id spell it: trimmed, never empty.
pub fn host_name(raw: &str) -> Option<&str> {
    let trimmed = raw.trim();
    (!trimmed.is_empty()).then_some(trimmed)
}

/// A monitor's open silence: its `missed` alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub alert_id: Uuid,
    /// The deadline that passed (the alert's `opened_at`).
    pub since: DateTime<Utc>,
    /// The monitor's `flapping` alert, while one is open during the silence: it belongs to the
    /// silence (see [`silence_of`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flapping: Option<Uuid>,
}

/// What a monitor's state says about its host: which host it is an active member of, and
/// whether it is silent. Two states with equal views make no difference to any host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberView {
    pub host: Option<String>,
    pub silence: Option<Silence>,
}

impl MemberView {
    pub fn of(monitor: &Monitor) -> MemberView {
        MemberView { host: member_of(monitor).map(str::to_string), silence: silence_of(monitor) }
    }

    /// Whether `monitor` still shows this view (without allocating: it runs on every beat).
    pub fn shown_by(&self, monitor: &Monitor) -> bool {
        self.host.as_deref() == member_of(monitor) && self.silence == silence_of(monitor)
    }
}

/// The host `monitor` is an active member of, if any.
fn member_of(monitor: &Monitor) -> Option<&str> {
    (monitor.exists() && !monitor.paused).then(|| monitor.host.as_deref().and_then(host_name)).flatten()
}

/// A member's open silence, with its open `flapping` alert if it has one. Flapping that opens
/// with the silence (its miss was the change too many) or during it is the silence's; so is
/// flapping still open from an earlier silence of the same kind (a host down again and again:
/// that alert was inhibited then, and the new silence is what it is about). A flapping alert
/// announced before the silence stays announced whatever a host alert does with it: the outbox
/// never takes back what it sent.
fn silence_of(monitor: &Monitor) -> Option<Silence> {
    member_of(monitor)?;
    monitor.alerts.get(&AlertCause::Missed).map(|a| Silence {
        alert_id: a.alert_id,
        since: a.opened_at,
        flapping: monitor.alerts.get(&AlertCause::Flapping).map(|f| f.alert_id),
    })
}

/// What one monitor's state says now, told to one host: the command's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub client: String,
    pub host: String,
    pub slug: String,
    /// False when the monitor is no longer an active member of this host.
    pub member: bool,
    pub silence: Option<Silence>,
    /// The monitor's last sign of life, when it comes back.
    pub last_signal_at: Option<DateTime<Utc>>,
}

/// What a change of one monitor's view tells the hosts: the host it left (if any) and the host
/// it is a member of now (if any). Pure; `None` when nothing changed for any host.
pub fn observations(
    client: &str,
    slug: &str,
    before: &MemberView,
    after: &MemberView,
    last_signal_at: Option<DateTime<Utc>>,
) -> Vec<Observation> {
    if before == after {
        return vec![];
    }
    let mut out = Vec::new();
    if let Some(old) = &before.host
        && after.host.as_ref() != Some(old)
    {
        out.push(Observation {
            client: client.into(),
            host: old.clone(),
            slug: slug.into(),
            member: false,
            silence: None,
            last_signal_at,
        });
    }
    if let Some(host) = &after.host {
        out.push(Observation {
            client: client.into(),
            host: host.clone(),
            slug: slug.into(),
            member: true,
            silence: after.silence,
            last_signal_at,
        });
    }
    out
}

// ---- events -------------------------------------------------------------------------------

/// A monitor became an active member of this host (its signals name it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostMonitorJoined {
    pub client: String,
    pub host: String,
    pub slug: String,
    pub at: DateTime<Utc>,
}

/// A monitor stopped being an active member: paused, deleted, or its signals name another host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostMonitorLeft {
    pub slug: String,
    pub at: DateTime<Utc>,
}

/// A member missed its deadline: its `missed` alert opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostMonitorSilent {
    pub slug: String,
    pub alert_id: Uuid,
    /// The deadline that passed.
    pub since: DateTime<Utc>,
    /// When the host learnt it.
    pub at: DateTime<Utc>,
}

/// A silent member's `flapping` alert is open (it opened with the silence, during it, or was
/// still open from before): it belongs to the silence, and is inhibited and released with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostMonitorFlapping {
    pub slug: String,
    /// The `flapping` alert.
    pub alert_id: Uuid,
    /// When the host learnt it.
    pub at: DateTime<Utc>,
}

/// A silent member's `flapping` alert resolved (the monitor was stable for a whole flapping
/// window) while it is still silent: the silence no longer has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostMonitorSteady {
    pub slug: String,
    /// The `flapping` alert that resolved.
    pub alert_id: Uuid,
    /// When the host learnt it.
    pub at: DateTime<Utc>,
}

/// A silent member showed life again: its `missed` alert resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostMonitorBack {
    pub slug: String,
    pub alert_id: Uuid,
    /// Its sign of life.
    pub back_at: DateTime<Utc>,
    /// When the host learnt it.
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostAlertOpened {
    pub alert_id: Uuid,
    pub opened_at: DateTime<Utc>,
    /// The members silent when it opened.
    pub monitors: Vec<String>,
    /// How many active members the host had.
    pub members: u32,
    pub message: String,
}

/// A member's `missed` alert (or the `flapping` alert of its silence) belongs to a host alert:
/// recorded, not sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorAlertInhibited {
    pub host_alert_id: Uuid,
    pub slug: String,
    pub alert_id: Uuid,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostAlertResolved {
    pub alert_id: Uuid,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: DateTime<Utc>,
    pub message: String,
    /// Attached members still silent when the host came back; each is released if it is still
    /// silent [`RETURN_WINDOW`] later.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub still_silent: Vec<String>,
}

/// A member stayed silent [`RETURN_WINDOW`] after its host came back: its own alert is sent
/// (one such fact for its `missed` alert, and one for the `flapping` alert of its silence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorAlertReleased {
    pub host_alert_id: Uuid,
    pub slug: String,
    pub alert_id: Uuid,
    /// When it became due; also the time of this fact.
    pub at: DateTime<Utc>,
}

event_family! {
    pub enum HostEvent {
        HostMonitorJoined(HostMonitorJoined),
        HostMonitorLeft(HostMonitorLeft),
        HostMonitorSilent(HostMonitorSilent),
        HostMonitorBack(HostMonitorBack),
        HostMonitorFlapping(HostMonitorFlapping),
        HostMonitorSteady(HostMonitorSteady),
        HostAlertOpened(HostAlertOpened),
        MonitorAlertInhibited(MonitorAlertInhibited),
        HostAlertResolved(HostAlertResolved),
        MonitorAlertReleased(MonitorAlertReleased),
    }
}

impl HostEvent {
    /// When the fact was decided (for inputs) or became true (for derived facts).
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            HostEvent::HostMonitorJoined(e) => e.at,
            HostEvent::HostMonitorLeft(e) => e.at,
            HostEvent::HostMonitorSilent(e) => e.at,
            HostEvent::HostMonitorBack(e) => e.at,
            HostEvent::HostMonitorFlapping(e) => e.at,
            HostEvent::HostMonitorSteady(e) => e.at,
            HostEvent::HostAlertOpened(e) => e.opened_at,
            HostEvent::MonitorAlertInhibited(e) => e.at,
            HostEvent::HostAlertResolved(e) => e.resolved_at,
            HostEvent::MonitorAlertReleased(e) => e.at,
        }
    }

    /// True for what the host's rules derive; replay recomputes these from the others.
    pub fn is_derived(&self) -> bool {
        matches!(
            self,
            HostEvent::HostAlertOpened(_)
                | HostEvent::MonitorAlertInhibited(_)
                | HostEvent::HostAlertResolved(_)
                | HostEvent::MonitorAlertReleased(_)
        )
    }
}

// ---- state --------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSilence {
    pub alert_id: Uuid,
    pub since: DateTime<Utc>,
    /// Its member's open `flapping` alert, which goes with the silence: inhibited with it (when
    /// it is attached to a host alert) and released with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flapping: Option<Uuid>,
    /// The host alert it is attached to, open or resolved.
    pub incident: Option<Uuid>,
    /// When the host alert it is attached to resolved: it has [`RETURN_WINDOW`] from then.
    pub settle_from: Option<DateTime<Utc>>,
    /// True once its own alert was released.
    pub released: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub joined_at: DateTime<Utc>,
    pub silence: Option<MemberSilence>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenHostAlert {
    pub alert_id: Uuid,
    pub opened_at: DateTime<Utc>,
    /// Every member attached to it so far.
    pub monitors: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub client: String,
    pub host: String,
    pub members: BTreeMap<String, Member>,
    pub alert: Option<OpenHostAlert>,
    /// Host alerts ever opened on this stream; names the next one deterministically.
    pub alert_seq: u64,
}

impl MemberSilence {
    /// The alerts of this silence: its `missed` alert, then its `flapping` alert if it has one.
    pub fn alerts(&self) -> impl Iterator<Item = Uuid> + '_ {
        std::iter::once(self.alert_id).chain(self.flapping)
    }
}

impl Host {
    pub fn exists(&self) -> bool {
        !self.client.is_empty()
    }

    pub fn stream_id(&self) -> String {
        streams::host(&self.client, &self.host)
    }

    fn next_alert_id(&self) -> Uuid {
        Uuid::new_v5(&HOST_ALERT_NAMESPACE, format!("{}#{}", self.stream_id(), self.alert_seq + 1).as_bytes())
    }

    /// Members silent right now, by slug.
    pub fn silent(&self) -> impl Iterator<Item = (&String, &MemberSilence)> {
        self.members.iter().filter_map(|(slug, m)| Some((slug, m.silence.as_ref()?)))
    }

    /// When a settling member's own alert is released: [`RETURN_WINDOW`] after its host came
    /// back, or after telltale's own restart when the host came back before it (what the
    /// process sent meanwhile may have been lost).
    fn release_at(silence: &MemberSilence, service_started_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if silence.released {
            return None;
        }
        let from = silence.settle_from?;
        Some(from.max(service_started_at) + RETURN_WINDOW.to_delta())
    }

    /// The next instant at which time alone will produce a fact (a release).
    pub fn next_wake(&self, service_started_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.silent().filter_map(|(_, s)| Host::release_at(s, service_started_at)).min()
    }
}

// ---- commands -----------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub enum HostCommand {
    /// What these monitors' states say now, in order.
    Observe(Vec<Observation>),
    /// Time has passed: record whatever has become due.
    Tick,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("observation for host `{got}` sent to host `{expected}`")]
    WrongHost { expected: String, got: String },
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn list(slugs: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = slugs.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if slugs.len() > SHOWN {
        text.push_str(&format!(" and {} more", slugs.len() - SHOWN));
    }
    text
}

/// What time alone has made true by `ctx.now`: releases, each stamped with its own instant.
pub fn due(state: &Host, ctx: &Context) -> Vec<HostEvent> {
    let mut events = Vec::new();
    let mut current = state.clone();
    for _ in 0..MAX_DUE_STEPS {
        let Some(wake) = current.next_wake(ctx.service_started_at) else { break };
        if wake > ctx.now {
            break;
        }
        let step: Vec<HostEvent> = current
            .silent()
            .filter(|(_, s)| Host::release_at(s, ctx.service_started_at) == Some(wake))
            .flat_map(|(slug, s)| {
                s.alerts().map(move |alert_id| {
                    HostEvent::MonitorAlertReleased(MonitorAlertReleased {
                        host_alert_id: s.incident.unwrap_or_default(),
                        slug: slug.clone(),
                        alert_id,
                        at: wake,
                    })
                })
            })
            .collect();
        if step.is_empty() {
            break;
        }
        current = HostAggregate::fold(current, &step);
        events.extend(step);
    }
    events
}

/// The facts one observation adds, given the state so far.
fn facts_for(state: &Host, obs: &Observation, ctx: &Context) -> Vec<HostEvent> {
    let at = ctx.now;
    let known = state.members.get(&obs.slug);
    if !obs.member {
        return match known {
            Some(_) => vec![HostEvent::HostMonitorLeft(HostMonitorLeft { slug: obs.slug.clone(), at })],
            None => vec![],
        };
    }
    let mut facts = Vec::new();
    if known.is_none() {
        facts.push(HostEvent::HostMonitorJoined(HostMonitorJoined {
            client: obs.client.clone(),
            host: obs.host.clone(),
            slug: obs.slug.clone(),
            at,
        }));
    }
    let old = known.and_then(|m| m.silence.as_ref());
    if let Some(old) = old
        && obs.silence.map(|s| s.alert_id) != Some(old.alert_id)
    {
        let back_at = obs.last_signal_at.filter(|t| *t >= old.since && *t <= at).unwrap_or(at);
        facts.push(HostEvent::HostMonitorBack(HostMonitorBack {
            slug: obs.slug.clone(),
            alert_id: old.alert_id,
            back_at,
            at,
        }));
    }
    if let Some(new) = obs.silence
        && old.map(|o| o.alert_id) != Some(new.alert_id)
    {
        facts.push(HostEvent::HostMonitorSilent(HostMonitorSilent {
            slug: obs.slug.clone(),
            alert_id: new.alert_id,
            since: new.since,
            at,
        }));
    }
    // The flapping alert of the silence: only a silence that goes on keeps the one it had.
    let old_flapping = old.filter(|o| obs.silence.map(|s| s.alert_id) == Some(o.alert_id)).and_then(|o| o.flapping);
    let new_flapping = obs.silence.and_then(|s| s.flapping);
    if let Some(alert_id) = old_flapping
        && new_flapping != Some(alert_id)
    {
        facts.push(HostEvent::HostMonitorSteady(HostMonitorSteady { slug: obs.slug.clone(), alert_id, at }));
    }
    if let Some(alert_id) = new_flapping
        && old_flapping != Some(alert_id)
    {
        facts.push(HostEvent::HostMonitorFlapping(HostMonitorFlapping { slug: obs.slug.clone(), alert_id, at }));
    }
    facts
}

/// What one new fact changes in the host's alert, given the state before and after it.
pub fn react(before: &Host, after: &Host, fact: &HostEvent, ctx: &Context) -> Vec<HostEvent> {
    match fact {
        HostEvent::HostMonitorSilent(e) => match &after.alert {
            Some(open) => vec![HostEvent::MonitorAlertInhibited(MonitorAlertInhibited {
                host_alert_id: open.alert_id,
                slug: e.slug.clone(),
                alert_id: e.alert_id,
                at: ctx.now,
            })],
            None => open_if_most_are_silent(after, ctx),
        },
        HostEvent::HostMonitorFlapping(e) => {
            // A silence already attached to a host alert (open, or resolved and settling) and
            // not released takes its flapping alert along; one not attached yet brings it when
            // it is (see `open_if_most_are_silent`).
            let Some(silence) = after.members.get(&e.slug).and_then(|m| m.silence.as_ref()) else { return vec![] };
            match silence.incident {
                Some(host_alert_id) if !silence.released => {
                    vec![HostEvent::MonitorAlertInhibited(MonitorAlertInhibited {
                        host_alert_id,
                        slug: e.slug.clone(),
                        alert_id: e.alert_id,
                        at: ctx.now,
                    })]
                }
                _ => vec![],
            }
        }
        HostEvent::HostMonitorBack(e) => {
            let Some(open) = &before.alert else { return vec![] };
            let attached = before
                .members
                .get(&e.slug)
                .and_then(|m| m.silence.as_ref())
                .is_some_and(|s| s.incident == Some(open.alert_id));
            if !attached {
                return vec![];
            }
            let still_silent: Vec<String> = after
                .silent()
                .filter(|(_, s)| s.incident == Some(open.alert_id))
                .map(|(slug, _)| slug.clone())
                .collect();
            vec![HostEvent::HostAlertResolved(HostAlertResolved {
                alert_id: open.alert_id,
                opened_at: open.opened_at,
                resolved_at: e.back_at,
                message: format!("{} is back: {} signalled again", after.host, e.slug),
                still_silent,
            })]
        }
        HostEvent::HostMonitorLeft(e) => {
            let Some(open) = &after.alert else { return vec![] };
            if after.silent().any(|(_, s)| s.incident == Some(open.alert_id)) {
                return vec![];
            }
            vec![HostEvent::HostAlertResolved(HostAlertResolved {
                alert_id: open.alert_id,
                opened_at: open.opened_at,
                resolved_at: e.at,
                message: format!("{}: none of its silent monitors is watched there any more", after.host),
                still_silent: vec![],
            })]
        }
        _ => vec![],
    }
}

/// The host alert, when at least [`MIN_SILENT`] members and more than half of them fell silent
/// within [`CORRELATION_WINDOW`] of each other.
fn open_if_most_are_silent(state: &Host, ctx: &Context) -> Vec<HostEvent> {
    let fresh: Vec<(&String, DateTime<Utc>)> =
        state.silent().filter(|(_, s)| s.incident.is_none()).map(|(slug, s)| (slug, s.since)).collect();
    let Some(latest) = fresh.iter().map(|(_, since)| *since).max() else { return vec![] };
    let window_start = latest - CORRELATION_WINDOW.to_delta();
    let together = fresh.iter().filter(|(_, since)| *since >= window_start).count();
    let members = state.members.len();
    if together < MIN_SILENT || together * 2 <= members {
        return vec![];
    }
    let alert_id = state.next_alert_id();
    // Every silent member not already announced on its own belongs to this outage.
    let attached: Vec<(&String, &MemberSilence)> = state.silent().filter(|(_, s)| !s.released).collect();
    let monitors: Vec<String> = attached.iter().map(|(slug, _)| (*slug).clone()).collect();
    let mut events = vec![HostEvent::HostAlertOpened(HostAlertOpened {
        alert_id,
        opened_at: latest,
        monitors: monitors.clone(),
        members: u32::try_from(members).unwrap_or(u32::MAX),
        message: format!(
            "{} has gone silent: {together} of its {members} monitors stopped signalling together (by {}): {}",
            state.host,
            rfc3339(latest),
            list(&monitors)
        ),
    })];
    events.extend(attached.into_iter().flat_map(|(slug, s)| {
        s.alerts().map(move |inhibited| {
            HostEvent::MonitorAlertInhibited(MonitorAlertInhibited {
                host_alert_id: alert_id,
                slug: slug.clone(),
                alert_id: inhibited,
                at: ctx.now,
            })
        })
    }));
    events
}

/// Applies facts one by one, each followed by its reactions and whatever became due: the one
/// path live decisions and replay both take.
pub fn apply(state: Host, facts: Vec<HostEvent>, ctx: &Context, out: &mut Vec<HostEvent>) -> Host {
    let mut current = state;
    for fact in facts {
        let before = current.clone();
        current = HostAggregate::evolve(current, &fact);
        let reactions = react(&before, &current, &fact, ctx);
        out.push(fact);
        current = HostAggregate::fold(current, &reactions);
        out.extend(reactions);
        let now_due = due(&current, ctx);
        current = HostAggregate::fold(current, &now_due);
        out.extend(now_due);
    }
    current
}

pub struct HostAggregate;

impl Aggregate for HostAggregate {
    type State = Host;
    type Command = HostCommand;
    type Event = HostEvent;
    type Error = HostError;
    const STATE_VERSION: i32 = 1;

    fn decide(state: &Host, command: HostCommand, ctx: &Context) -> Result<Vec<HostEvent>, HostError> {
        if let HostCommand::Observe(observations) = &command
            && state.exists()
            && let Some(other) = observations.iter().find(|o| o.client != state.client || o.host != state.host)
        {
            return Err(HostError::WrongHost {
                expected: state.stream_id(),
                got: streams::host(&other.client, &other.host),
            });
        }
        let mut events = due(state, ctx);
        let mut current = HostAggregate::fold(state.clone(), &events);
        if let HostCommand::Observe(observations) = command {
            for observation in &observations {
                let facts = facts_for(&current, observation, ctx);
                current = apply(current, facts, ctx, &mut events);
            }
        }
        Ok(events)
    }

    fn evolve(mut state: Host, event: &HostEvent) -> Host {
        match event {
            HostEvent::HostMonitorJoined(e) => {
                if !state.exists() {
                    state.client = e.client.clone();
                    state.host = e.host.clone();
                }
                state.members.entry(e.slug.clone()).or_insert(Member { joined_at: e.at, silence: None });
            }
            HostEvent::HostMonitorLeft(e) => {
                state.members.remove(&e.slug);
            }
            HostEvent::HostMonitorSilent(e) => {
                if let Some(member) = state.members.get_mut(&e.slug) {
                    member.silence = Some(MemberSilence {
                        alert_id: e.alert_id,
                        since: e.since,
                        flapping: None,
                        incident: None,
                        settle_from: None,
                        released: false,
                    });
                }
            }
            HostEvent::HostMonitorBack(e) => {
                if let Some(member) = state.members.get_mut(&e.slug) {
                    member.silence = None;
                }
            }
            HostEvent::HostMonitorFlapping(e) => {
                if let Some(silence) = state.members.get_mut(&e.slug).and_then(|m| m.silence.as_mut()) {
                    silence.flapping = Some(e.alert_id);
                }
            }
            HostEvent::HostMonitorSteady(e) => {
                if let Some(silence) = state.members.get_mut(&e.slug).and_then(|m| m.silence.as_mut())
                    && silence.flapping == Some(e.alert_id)
                {
                    silence.flapping = None;
                }
            }
            HostEvent::HostAlertOpened(e) => {
                state.alert_seq += 1;
                state.alert = Some(OpenHostAlert {
                    alert_id: e.alert_id,
                    opened_at: e.opened_at,
                    monitors: e.monitors.iter().cloned().collect(),
                });
            }
            HostEvent::MonitorAlertInhibited(e) => {
                // The silence's own alert attaches it; its flapping alert only follows it.
                if let Some(silence) = state.members.get_mut(&e.slug).and_then(|m| m.silence.as_mut())
                    && silence.alert_id == e.alert_id
                {
                    silence.incident = Some(e.host_alert_id);
                    silence.settle_from = None;
                }
                if let Some(open) = state.alert.as_mut() {
                    open.monitors.insert(e.slug.clone());
                }
            }
            HostEvent::HostAlertResolved(e) => {
                state.alert = None;
                for member in state.members.values_mut() {
                    if let Some(silence) = member.silence.as_mut()
                        && silence.incident == Some(e.alert_id)
                        && !silence.released
                    {
                        silence.settle_from = Some(e.resolved_at);
                    }
                }
            }
            HostEvent::MonitorAlertReleased(e) => {
                if let Some(silence) = state.members.get_mut(&e.slug).and_then(|m| m.silence.as_mut()) {
                    silence.released = true;
                }
            }
        }
        state
    }
}

// ---- replay -------------------------------------------------------------------------------

/// One recorded input of a host, in log order.
#[derive(Debug, Clone, PartialEq)]
pub enum HostReplayInput {
    /// An event of the host's stream. Derived events are skipped: replay recomputes them.
    Host(HostEvent),
    /// telltale's own life.
    System(SystemEvent),
}

/// Replays a host's recorded inputs with a virtual clock, through the very functions a live
/// decision uses ([`due`] and [`apply`]).
#[derive(Debug, Clone, Default)]
pub struct HostReplay {
    state: Host,
    listening_since: Option<DateTime<Utc>>,
    derived: Vec<HostEvent>,
}

impl HostReplay {
    pub fn state(&self) -> &Host {
        &self.state
    }

    pub fn derived(&self) -> &[HostEvent] {
        &self.derived
    }

    /// Lets virtual time pass until `now`, deriving what became due while telltale listened.
    pub fn advance(&mut self, now: DateTime<Utc>) {
        let Some(since) = self.listening_since else { return };
        let ctx = Context::new(now, since);
        let events = due(&self.state, &ctx);
        self.state = HostAggregate::fold(std::mem::take(&mut self.state), &events);
        self.derived.extend(events);
    }

    pub fn feed(&mut self, input: HostReplayInput) {
        match input {
            HostReplayInput::System(SystemEvent::ServiceStarted(started)) => {
                if self.listening_since.is_some() {
                    self.advance(started.down_since.unwrap_or(started.at));
                }
                self.listening_since = Some(started.at);
            }
            HostReplayInput::System(SystemEvent::ServiceStopped(stopped)) => {
                self.advance(stopped.at);
                self.listening_since = None;
            }
            HostReplayInput::Host(event) if event.is_derived() => {}
            HostReplayInput::Host(event) => {
                let at = event.at();
                self.advance(at);
                let ctx = Context::new(at, self.listening_since.unwrap_or(at));
                let mut out = Vec::new();
                self.state = apply(std::mem::take(&mut self.state), vec![event], &ctx, &mut out);
                self.derived.extend(out.into_iter().filter(HostEvent::is_derived));
            }
        }
    }

    pub fn run(inputs: impl IntoIterator<Item = HostReplayInput>, until: DateTime<Utc>) -> HostReplay {
        let mut replay = HostReplay::default();
        for input in inputs {
            replay.feed(input);
        }
        replay.advance(until);
        replay
    }
}

/// How long the correlation rules wait, for messages and the API.
pub fn describe_rules() -> String {
    format!(
        "at least {MIN_SILENT} monitors and more than half of a host's monitors silent within {CORRELATION_WINDOW}; \
         members still silent {RETURN_WINDOW} after the host came back are alerted on their own"
    )
}
