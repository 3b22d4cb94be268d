//! People who sign in to the dashboard: one directory (stream `users`), so that a name is
//! unique across clients. A user belongs to a client as `viewer` or `admin`; an `operator`
//! belongs to none and sees every client.
//!
//! Nobody is ever given a password: a one-time sign-in link (its token stored only as a hash)
//! lets a person set their own, once, before it expires. Too many wrong passwords lock the
//! account for a while (`UserLockedOut`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Context};
use crate::event_family;

/// The one stream of the directory.
pub const STREAM: &str = "users";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees the dashboard of their client.
    Viewer,
    /// Also manages their client's keys and sees its key audit.
    Admin,
    /// Sees and manages every client.
    Operator,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Admin, Role::Operator].into_iter().find(|r| r.as_str() == s)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::Operator => "operator",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserAdded {
    pub name: String,
    /// Their client; none for an operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub role: Role,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInLinkIssued {
    pub name: String,
    pub link_id: String,
    /// SHA-256 of the link's secret; the link itself is shown once.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInLinkUsed {
    pub name: String,
    pub link_id: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserPasswordSet {
    pub name: String,
    /// An argon2id hash in PHC form. Never shown.
    pub password_hash: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserLockedOut {
    pub name: String,
    pub failures: u32,
    pub at: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRemoved {
    pub name: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

event_family! {
    pub enum UserEvent {
        UserAdded(UserAdded),
        SignInLinkIssued(SignInLinkIssued),
        SignInLinkUsed(SignInLinkUsed),
        UserPasswordSet(UserPasswordSet),
        UserLockedOut(UserLockedOut),
        UserRemoved(UserRemoved),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    Add {
        name: String,
        client: Option<String>,
        role: Role,
        by: Option<String>,
    },
    IssueLink {
        name: String,
        link_id: String,
        token_hash: String,
        expires_at: DateTime<Utc>,
        by: Option<String>,
    },
    /// Uses a link (its secret's hash must match) to set a password.
    SetPassword {
        link_id: String,
        token_hash: String,
        password_hash: String,
    },
    LockOut {
        name: String,
        failures: u32,
        until: DateTime<Utc>,
    },
    Remove {
        name: String,
        by: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("a user `{0}` already exists")]
    AlreadyExists(String),
    #[error("no user `{0}`")]
    NotFound(String),
    #[error("this sign-in link is not valid: it was used, has expired, or never existed")]
    LinkNotValid,
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkState {
    pub name: String,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    pub client: Option<String>,
    pub role: Role,
    pub password_hash: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub removed: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Directory {
    pub users: BTreeMap<String, UserState>,
    pub links: BTreeMap<String, LinkState>,
}

impl Directory {
    fn live(&self, name: &str) -> Option<&UserState> {
        self.users.get(name).filter(|u| !u.removed)
    }
}

/// A user name: lowercase letters, digits, `-`, `_`, `.`, `@`; at most 64.
pub fn check_name(name: &str) -> Result<(), UserError> {
    crate::ids::validate_client_name(name)
        .map_err(|e| UserError::Invalid(e.to_string().replace("a client name", "a user name")))
}

pub struct UserAggregate;

impl Aggregate for UserAggregate {
    type State = Directory;
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    const STATE_VERSION: i32 = 1;

    fn decide(state: &Directory, command: UserCommand, ctx: &Context) -> Result<Vec<UserEvent>, UserError> {
        let at = ctx.now;
        Ok(match command {
            UserCommand::Add { name, client, role, by } => {
                check_name(&name)?;
                if state.live(&name).is_some() {
                    return Err(UserError::AlreadyExists(name));
                }
                match (&client, role) {
                    (Some(_), Role::Operator) => {
                        return Err(UserError::Invalid("an operator belongs to no client".into()));
                    }
                    (None, Role::Viewer | Role::Admin) => {
                        return Err(UserError::Invalid("a viewer or admin belongs to a client".into()));
                    }
                    _ => {}
                }
                vec![UserEvent::UserAdded(UserAdded { name, client, role, at, by })]
            }
            UserCommand::IssueLink { name, link_id, token_hash, expires_at, by } => {
                if state.live(&name).is_none() {
                    return Err(UserError::NotFound(name));
                }
                if expires_at <= at {
                    return Err(UserError::Invalid("a sign-in link must expire in the future".into()));
                }
                vec![UserEvent::SignInLinkIssued(SignInLinkIssued { name, link_id, token_hash, expires_at, at, by })]
            }
            UserCommand::SetPassword { link_id, token_hash, password_hash } => {
                let link = state.links.get(&link_id).ok_or(UserError::LinkNotValid)?;
                if link.used
                    || link.expires_at <= at
                    || link.token_hash != token_hash
                    || state.live(&link.name).is_none()
                {
                    return Err(UserError::LinkNotValid);
                }
                let name = link.name.clone();
                vec![
                    UserEvent::SignInLinkUsed(SignInLinkUsed { name: name.clone(), link_id, at }),
                    UserEvent::UserPasswordSet(UserPasswordSet { name, password_hash, at }),
                ]
            }
            UserCommand::LockOut { name, failures, until } => {
                let user = state.live(&name).ok_or_else(|| UserError::NotFound(name.clone()))?;
                if user.locked_until.is_some_and(|u| u > at) || until <= at {
                    vec![]
                } else {
                    vec![UserEvent::UserLockedOut(UserLockedOut { name, failures, at, until })]
                }
            }
            UserCommand::Remove { name, by } => {
                if state.live(&name).is_none() {
                    return Err(UserError::NotFound(name));
                }
                vec![UserEvent::UserRemoved(UserRemoved { name, at, by })]
            }
        })
    }

    fn evolve(mut state: Directory, event: &UserEvent) -> Directory {
        match event {
            UserEvent::UserAdded(e) => {
                state.users.insert(
                    e.name.clone(),
                    UserState {
                        client: e.client.clone(),
                        role: e.role,
                        password_hash: None,
                        locked_until: None,
                        removed: false,
                    },
                );
            }
            UserEvent::SignInLinkIssued(e) => {
                state.links.retain(|_, l| !l.used && l.expires_at > e.at);
                state.links.insert(
                    e.link_id.clone(),
                    LinkState {
                        name: e.name.clone(),
                        token_hash: e.token_hash.clone(),
                        expires_at: e.expires_at,
                        used: false,
                    },
                );
            }
            UserEvent::SignInLinkUsed(e) => {
                if let Some(link) = state.links.get_mut(&e.link_id) {
                    link.used = true;
                }
            }
            UserEvent::UserPasswordSet(e) => {
                if let Some(user) = state.users.get_mut(&e.name) {
                    user.password_hash = Some(e.password_hash.clone());
                    user.locked_until = None;
                }
            }
            UserEvent::UserLockedOut(e) => {
                if let Some(user) = state.users.get_mut(&e.name) {
                    user.locked_until = Some(e.until);
                }
            }
            UserEvent::UserRemoved(e) => {
                if let Some(user) = state.users.get_mut(&e.name) {
                    user.removed = true;
                }
                state.links.retain(|_, l| l.name != e.name);
            }
        }
        state
    }
}
