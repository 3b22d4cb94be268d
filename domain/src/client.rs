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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRegistered {
    pub client: String,
    pub display_name: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyIssued {
    pub key_id: String,
    /// SHA-256 of the secret, hex. The secret itself is never stored.
    pub secret_hash: String,
    pub scopes: Vec<Scope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRevoked {
    pub key_id: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
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
    },
    RevokeKey {
        key_id: String,
        by: Option<String>,
    },
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyState {
    pub scopes: Vec<Scope>,
    pub issued_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
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
    const STATE_VERSION: i32 = 2;

    fn decide(state: &Client, command: ClientCommand, ctx: &Context) -> Result<Vec<ClientEvent>, ClientError> {
        if !state.registered && !matches!(command, ClientCommand::Register { .. }) {
            return Err(ClientError::NotFound(state.name.clone()));
        }
        let at = ctx.now;
        Ok(match command {
            ClientCommand::Register { client, display_name } => {
                if state.registered {
                    return Err(ClientError::AlreadyExists(client));
                }
                vec![ClientEvent::ClientRegistered(ClientRegistered { client, display_name, at })]
            }
            ClientCommand::IssueKey { key_id, secret_hash, scopes, label, expires_at } => {
                if state.keys.contains_key(&key_id) {
                    return Err(ClientError::Conflict(format!("key `{key_id}` already exists")));
                }
                if scopes.is_empty() {
                    return Err(ClientError::Invalid("a key needs at least one scope".into()));
                }
                vec![ClientEvent::KeyIssued(KeyIssued { key_id, secret_hash, scopes, label, at, expires_at })]
            }
            ClientCommand::RevokeKey { key_id, by } => match state.keys.get(&key_id) {
                None => return Err(ClientError::KeyNotFound(key_id)),
                Some(key) if key.revoked_at.is_some() => vec![],
                Some(_) => vec![ClientEvent::KeyRevoked(KeyRevoked { key_id, at, by })],
            },
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
            ClientEvent::KeyIssued(e) => {
                state
                    .keys
                    .insert(e.key_id.clone(), KeyState { scopes: e.scopes.clone(), issued_at: e.at, revoked_at: None });
            }
            ClientEvent::KeyRevoked(e) => {
                if let Some(key) = state.keys.get_mut(&e.key_id) {
                    key.revoked_at = Some(e.at);
                }
            }
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
}
