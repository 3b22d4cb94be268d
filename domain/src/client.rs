//! The Client aggregate: a tenant, its API keys and its notification channels.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::aggregate::{Aggregate, Context};
use crate::event_family;
use crate::maintenance::MaintenanceWindow;
use crate::monitor::{ClientDefaults, check_defaults};
use crate::policy::AlertPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Send heartbeats and run events.
    Ingest,
    /// Read monitors, history, alerts and channels.
    Read,
    /// Change monitors, channels and keys.
    Admin,
    /// With `ingest`: the first event for an unknown slug creates its monitor, and an event
    /// that carries a monitor specification updates it (check-in upsert).
    Provision,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Ingest, Scope::Read, Scope::Admin, Scope::Provision];
    /// What a key gets when nobody says otherwise. Not `provision`: a typo in a slug should be
    /// a 404, not a new monitor, unless the operator asked for auto-creation.
    pub const DEFAULT: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|k| k.as_str() == s)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
            Scope::Provision => "provision",
        }
    }
}

pub use crate::channel::CHANNEL_KINDS;
use crate::keys;
pub use crate::keys::{
    KeyExpired, KeyIssued, KeyLockedOut, KeyRevoked, KeyRotated, KeyState, Rotation, RotationPolicy,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRegistered {
    pub client: String,
    pub display_name: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelAdded {
    pub channel_id: Uuid,
    pub name: String,
    pub kind: String,
    pub config: Value,
    pub at: DateTime<Utc>,
    /// The channel hears only from monitors with one of these tags; from all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelRemoved {
    pub channel_id: Uuid,
    pub at: DateTime<Utc>,
}

/// The client's default alert policy for all its monitors (each may override it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertPolicySet {
    pub alert_policy: AlertPolicy,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceWindowAdded {
    pub window: MaintenanceWindow,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceWindowRemoved {
    pub window_id: Uuid,
    pub at: DateTime<Utc>,
}

event_family! {
    pub enum ClientEvent {
        ClientRegistered(ClientRegistered),
        KeyIssued(KeyIssued),
        KeyRevoked(KeyRevoked),
        ChannelAdded(ChannelAdded),
        ChannelRemoved(ChannelRemoved),
        KeyRotated(KeyRotated),
        KeyExpired(KeyExpired),
        KeyLockedOut(KeyLockedOut),
        AlertPolicySet(AlertPolicySet),
        MaintenanceWindowAdded(MaintenanceWindowAdded),
        MaintenanceWindowRemoved(MaintenanceWindowRemoved),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientCommand {
    Register {
        client: String,
        display_name: String,
    },
    IssueKey {
        key_id: String,
        secret_hash: String,
        scopes: Vec<Scope>,
        label: Option<String>,
        expires_at: Option<DateTime<Utc>>,
        rotation: Option<RotationPolicy>,
        by: Option<String>,
    },
    RevokeKey {
        key_id: String,
        by: Option<String>,
    },
    /// `key_id` asks for its successor. The successor's id, hash and sealed secret are made
    /// beforehand (randomness is an outside fact); they are used only if this call issues it.
    RotateKey {
        key_id: String,
        successor: NewSuccessor,
        by: Option<String>,
    },
    /// `source` presented `key_id` with a wrong secret `failures` times.
    LockOutKey {
        key_id: String,
        source: String,
        failures: u32,
        until: DateTime<Utc>,
    },
    /// Records what time alone made true (key expiries).
    Tick,
    AddChannel {
        channel_id: Uuid,
        name: String,
        kind: String,
        config: Value,
        tags: Vec<String>,
    },
    RemoveChannel {
        channel_id: Uuid,
    },
    SetAlertPolicy(AlertPolicy),
    AddMaintenanceWindow(MaintenanceWindow),
    RemoveMaintenanceWindow {
        window_id: Uuid,
    },
}

/// A successor, ready in case a rotation issues it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSuccessor {
    pub key_id: String,
    pub secret_hash: String,
    pub sealed: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("no client `{0}`")]
    NotFound(String),
    #[error("a client `{0}` already exists")]
    AlreadyExists(String),
    #[error("no key `{0}`")]
    KeyNotFound(String),
    #[error("no channel `{0}`")]
    ChannelNotFound(Uuid),
    #[error("no maintenance window `{0}`")]
    WindowNotFound(Uuid),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("key `{0}` has no rotation policy")]
    RotationNotConfigured(String),
    #[error("key `{key_id}` is not due for rotation before {due_at}")]
    RotationNotDue { key_id: String, due_at: DateTime<Utc> },
    #[error("key `{0}` is revoked or expired")]
    KeyNotValid(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelState {
    pub name: String,
    pub kind: String,
    pub config: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Client {
    pub registered: bool,
    pub name: String,
    pub keys: BTreeMap<String, KeyState>,
    pub channels: BTreeMap<Uuid, ChannelState>,
    #[serde(default)]
    pub alert_policy: AlertPolicy,
    #[serde(default)]
    pub maintenance: BTreeMap<Uuid, MaintenanceWindow>,
}

impl Client {
    /// What every monitor of this client records as its client's defaults.
    pub fn defaults(&self) -> ClientDefaults {
        ClientDefaults {
            alert_policy: self.alert_policy.clone(),
            maintenance: self.maintenance.values().cloned().collect(),
        }
    }
}

/// Checks a channel's configuration for its kind (see [`crate::channel`]).
pub fn check_channel(kind: &str, config: &Value) -> Result<(), String> {
    crate::channel::check_config(kind, config).map_err(|e| e.to_string())
}

pub struct ClientAggregate;

impl Aggregate for ClientAggregate {
    type State = Client;
    type Command = ClientCommand;
    type Event = ClientEvent;
    type Error = ClientError;
    const STATE_VERSION: i32 = 3;

    /// What time made true first (key expiries, each stamped with its instant), then the
    /// command's own facts on the state those left.
    fn decide(state: &Client, command: ClientCommand, ctx: &Context) -> Result<Vec<ClientEvent>, ClientError> {
        if !state.registered && !matches!(command, ClientCommand::Register { .. }) {
            return Err(ClientError::NotFound(state.name.clone()));
        }
        let mut events: Vec<ClientEvent> =
            keys::due_expiries(&state.keys, ctx.now).into_iter().map(ClientEvent::KeyExpired).collect();
        let after_due;
        let state = if events.is_empty() {
            state
        } else {
            after_due = ClientAggregate::fold(state.clone(), &events);
            &after_due
        };
        events.extend(decide_command(state, command, ctx)?);
        Ok(events)
    }

    fn evolve(state: Client, event: &ClientEvent) -> Client {
        evolve(state, event)
    }
}

fn decide_command(state: &Client, command: ClientCommand, ctx: &Context) -> Result<Vec<ClientEvent>, ClientError> {
    let at = ctx.now;
    Ok(match command {
        ClientCommand::Register { client, display_name } => {
            if state.registered {
                return Err(ClientError::AlreadyExists(client));
            }
            vec![ClientEvent::ClientRegistered(ClientRegistered { client, display_name, at })]
        }
        ClientCommand::IssueKey { key_id, secret_hash, scopes, label, expires_at, rotation, by } => {
            if state.keys.contains_key(&key_id) {
                return Err(ClientError::Conflict(format!("key `{key_id}` already exists")));
            }
            if scopes.is_empty() {
                return Err(ClientError::Invalid("a key needs at least one scope".into()));
            }
            if expires_at.is_some_and(|e| e <= at) {
                return Err(ClientError::Invalid("a key's expiry must be in the future".into()));
            }
            if let Some(policy) = &rotation {
                policy.check().map_err(ClientError::Invalid)?;
            }
            vec![ClientEvent::KeyIssued(KeyIssued { key_id, secret_hash, scopes, label, at, expires_at, rotation, by })]
        }
        ClientCommand::RevokeKey { key_id, by } => match state.keys.get(&key_id) {
            None => return Err(ClientError::KeyNotFound(key_id)),
            Some(key) if !key.is_live() => vec![],
            Some(_) => vec![ClientEvent::KeyRevoked(KeyRevoked { key_id, at, by })],
        },
        ClientCommand::RotateKey { key_id, successor, by } => {
            let key = state.keys.get(&key_id).ok_or_else(|| ClientError::KeyNotFound(key_id.clone()))?;
            if !key.is_live() {
                return Err(ClientError::KeyNotValid(key_id));
            }
            match key.rotation(at) {
                Rotation::Never => return Err(ClientError::RotationNotConfigured(key_id)),
                Rotation::NotDue { due_at } => return Err(ClientError::RotationNotDue { key_id, due_at }),
                // Idempotent per generation: the successor exists; nothing new.
                Rotation::Rotated { .. } => vec![],
                Rotation::Due { .. } => {
                    if state.keys.contains_key(&successor.key_id) {
                        return Err(ClientError::Conflict(format!("key `{}` already exists", successor.key_id)));
                    }
                    let policy = key.rotation.expect("a due key has a policy");
                    let end_of_overlap = at + policy.overlap.to_delta();
                    vec![ClientEvent::KeyRotated(KeyRotated {
                        key_id,
                        successor_id: successor.key_id,
                        successor_secret_hash: successor.secret_hash,
                        sealed_successor: successor.sealed,
                        generation: key.generation + 1,
                        at,
                        predecessor_expires_at: key.expires_at.map_or(end_of_overlap, |e| e.min(end_of_overlap)),
                        scopes: key.scopes.clone(),
                        label: key.label.clone(),
                        rotation: policy,
                        expires_at: key.line_expires_at,
                        by,
                    })]
                }
            }
        }
        ClientCommand::LockOutKey { key_id, source, failures, until } => {
            let key = state.keys.get(&key_id).ok_or_else(|| ClientError::KeyNotFound(key_id.clone()))?;
            if key.locked_until(&source, at).is_some() || until <= at {
                vec![]
            } else {
                vec![ClientEvent::KeyLockedOut(KeyLockedOut { key_id, source, failures, at, until })]
            }
        }
        ClientCommand::Tick => vec![],
        ClientCommand::AddChannel { channel_id, name, kind, config, tags } => {
            if name.trim().is_empty() || name.chars().count() > 100 {
                return Err(ClientError::Invalid("a channel name must have 1 to 100 characters".into()));
            }
            if state.channels.values().any(|c| c.name == name) {
                return Err(ClientError::Conflict(format!("a channel named `{name}` already exists")));
            }
            check_channel(&kind, &config).map_err(ClientError::Invalid)?;
            crate::channel::check_tags(&tags).map_err(|e| ClientError::Invalid(e.to_string()))?;
            vec![ClientEvent::ChannelAdded(ChannelAdded { channel_id, name, kind, config, at, tags })]
        }
        ClientCommand::RemoveChannel { channel_id } => {
            if !state.channels.contains_key(&channel_id) {
                return Err(ClientError::ChannelNotFound(channel_id));
            }
            vec![ClientEvent::ChannelRemoved(ChannelRemoved { channel_id, at })]
        }
        ClientCommand::SetAlertPolicy(alert_policy) => {
            alert_policy.check().map_err(|e| ClientError::Invalid(format!("alert_policy.{e}")))?;
            if alert_policy == state.alert_policy {
                vec![]
            } else {
                vec![ClientEvent::AlertPolicySet(AlertPolicySet { alert_policy, at })]
            }
        }
        ClientCommand::AddMaintenanceWindow(window) => {
            if state.maintenance.contains_key(&window.id) {
                return Err(ClientError::Conflict(format!("maintenance window `{}` already exists", window.id)));
            }
            let mut defaults = state.defaults();
            defaults.maintenance.push(window.clone());
            check_defaults(&defaults).map_err(|e| ClientError::Invalid(e.to_string()))?;
            vec![ClientEvent::MaintenanceWindowAdded(MaintenanceWindowAdded { window, at })]
        }
        ClientCommand::RemoveMaintenanceWindow { window_id } => {
            if !state.maintenance.contains_key(&window_id) {
                return Err(ClientError::WindowNotFound(window_id));
            }
            vec![ClientEvent::MaintenanceWindowRemoved(MaintenanceWindowRemoved { window_id, at })]
        }
    })
}

fn evolve(mut state: Client, event: &ClientEvent) -> Client {
    match event {
        ClientEvent::ClientRegistered(e) => {
            state.registered = true;
            state.name = e.client.clone();
        }
        ClientEvent::KeyIssued(e) => keys::evolve_issued(&mut state.keys, e),
        ClientEvent::KeyRevoked(e) => keys::evolve_revoked(&mut state.keys, e),
        ClientEvent::KeyRotated(e) => keys::evolve_rotated(&mut state.keys, e),
        ClientEvent::KeyExpired(e) => keys::evolve_expired(&mut state.keys, e),
        ClientEvent::KeyLockedOut(e) => keys::evolve_locked_out(&mut state.keys, e),
        ClientEvent::ChannelAdded(e) => {
            state.channels.insert(
                e.channel_id,
                ChannelState { name: e.name.clone(), kind: e.kind.clone(), config: e.config.clone() },
            );
        }
        ClientEvent::ChannelRemoved(e) => {
            state.channels.remove(&e.channel_id);
        }
        ClientEvent::AlertPolicySet(e) => state.alert_policy = e.alert_policy.clone(),
        ClientEvent::MaintenanceWindowAdded(e) => {
            state.maintenance.insert(e.window.id, e.window.clone());
        }
        ClientEvent::MaintenanceWindowRemoved(e) => {
            state.maintenance.remove(&e.window_id);
        }
    }
    state
}
