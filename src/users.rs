//! People: the directory of users (events in the `users` stream), argon2id passwords, one-time
//! sign-in links, and sessions.
//!
//! Sessions are kept in a table of their own (`sessions`, not a read model and not events):
//! they are short-lived bearer credentials that expire by the hour; recording each in the
//! append-only log would keep credential hashes for ever and grow the log with every sign-in.
//! What matters for an audit (a password set, a link used, a lock-out) is an event.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng as HashRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::Row;
use telltale_domain::users::{self, Directory, Role, UserCommand, UserError, UserState};

use crate::app::App;
use crate::commands::CommandError;
use crate::keys::{Secret, hash_secret, random_hex};

/// How long a one-time sign-in link works.
pub const LINK_LIFETIME: TimeDelta = TimeDelta::hours(24);
/// How long a session lasts.
pub const SESSION_LIFETIME: TimeDelta = TimeDelta::hours(12);
/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 10;

pub type UserResult<T> = Result<T, CommandError<UserError>>;

/// A person signed in.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    pub role: Role,
    /// Their client; `None` for an operator (who sees every client).
    pub client: Option<String>,
}

impl Person {
    /// Whether they may see `client`'s monitors.
    pub fn sees(&self, client: &str) -> bool {
        self.role == Role::Operator || self.client.as_deref() == Some(client)
    }
    /// Whether they may manage `client`'s keys and see its key audit.
    pub fn manages(&self, client: &str) -> bool {
        self.role == Role::Operator || (self.role == Role::Admin && self.client.as_deref() == Some(client))
    }
    pub fn of(name: &str, user: &UserState) -> Person {
        Person { name: name.to_string(), role: user.role, client: user.client.clone() }
    }
}

/// Why a sign-in failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInRefused {
    /// Wrong name or password (the same answer for a name that does not exist).
    Wrong,
    /// Too many wrong passwords: locked until then.
    Locked(DateTime<Utc>),
}

pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut HashRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2id hashes any password").to_string()
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A hash to verify against when the name is unknown, so that the answer takes as long.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_hex(16)))
}

/// Splits a link token `l_<id>_<secret>`.
fn parse_link(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.strip_prefix("l_")?.split_once('_')?;
    let hexish = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    (id.len() == 16 && secret.len() == 64 && hexish(id) && hexish(secret)).then_some((id, secret))
}

impl App {
    /// The directory as the log holds it now (the handler catches up before each use).
    pub async fn directory(&self) -> Result<Directory, crate::store::StoreError> {
        self.users.state(users::STREAM).await
    }

    pub async fn person(&self, name: &str) -> Option<Person> {
        let directory = self.directory().await.ok()?;
        directory.users.get(name).filter(|u| !u.removed).map(|u| Person::of(name, u))
    }

    pub async fn add_user(&self, name: &str, client: Option<&str>, role: Role, by: &str) -> UserResult<()> {
        if let Some(client) = client
            && !self
                .client_exists(client)
                .await
                .map_err(|e| CommandError::Store(crate::store::StoreError::backend(e)))?
        {
            return Err(CommandError::Domain(UserError::Invalid(format!("no client `{client}`"))));
        }
        let command = UserCommand::Add {
            name: name.to_string(),
            client: client.map(str::to_string),
            role,
            by: Some(by.to_string()),
        };
        self.users.execute(users::STREAM, command, None).await?;
        Ok(())
    }

    /// Removes a person: their sessions end at once (a session is only as good as its person).
    pub async fn remove_user(&self, name: &str, by: &str) -> UserResult<()> {
        let command = UserCommand::Remove { name: name.to_string(), by: Some(by.to_string()) };
        self.users.execute(users::STREAM, command, None).await?;
        Ok(())
    }

    /// Issues a one-time sign-in link token for `name` (shown once; only its hash is kept).
    pub async fn issue_sign_in_link(&self, name: &str, by: &str) -> UserResult<Secret> {
        let (link_id, secret) = (random_hex(8), random_hex(32));
        let command = UserCommand::IssueLink {
            name: name.to_string(),
            link_id: link_id.clone(),
            token_hash: hash_secret(&secret),
            expires_at: self.clock.now() + LINK_LIFETIME,
            by: Some(by.to_string()),
        };
        self.users.execute(users::STREAM, command, None).await?;
        Ok(Secret::new(format!("l_{link_id}_{secret}")))
    }

    /// Who a link is for, if it is still usable.
    pub async fn link_holder(&self, token: &str) -> Option<String> {
        let (id, secret) = parse_link(token)?;
        let directory = self.directory().await.ok()?;
        let link = directory.links.get(id)?;
        let usable = !link.used && link.expires_at > self.clock.now() && link.token_hash == hash_secret(secret);
        usable.then(|| link.name.clone())
    }

    /// Uses a link to set a password; returns who it was for.
    pub async fn set_password_with_link(&self, token: &str, password: &str) -> UserResult<String> {
        if password.chars().count() < MIN_PASSWORD {
            return Err(CommandError::Domain(UserError::Invalid(format!(
                "a password needs at least {MIN_PASSWORD} characters"
            ))));
        }
        let (id, secret) = parse_link(token).ok_or(CommandError::Domain(UserError::LinkNotValid))?;
        let password = password.to_string();
        let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| CommandError::Store(crate::store::StoreError::backend(e)))?;
        let command =
            UserCommand::SetPassword { link_id: id.to_string(), token_hash: hash_secret(secret), password_hash };
        let outcome = self.users.execute(users::STREAM, command, None).await?;
        Ok(outcome.state.links.get(id).map(|l| l.name.clone()).unwrap_or_default())
    }

    /// Checks a name and password, counting failures per account (and locking it at the limit).
    pub async fn sign_in(&self, name: &str, password: &str) -> Result<Person, SignInRefused> {
        let now = self.clock.now();
        let user = self.directory().await.ok().and_then(|d| d.users.get(name).filter(|u| !u.removed).cloned());
        if let Some(until) = user.as_ref().and_then(|u| u.locked_until).filter(|u| *u > now) {
            return Err(SignInRefused::Locked(until));
        }
        if let Some(until) = self.guards.signin_failures.locked_until(&name.to_string(), now) {
            return Err(SignInRefused::Locked(until));
        }
        let hash = user.as_ref().and_then(|u| u.password_hash.clone()).unwrap_or_else(|| decoy_hash().to_string());
        let password = password.to_string();
        let matches = tokio::task::spawn_blocking(move || password_matches(&password, &hash)).await.unwrap_or(false);
        match user {
            Some(user) if matches && user.password_hash.is_some() => {
                self.guards.signin_failures.succeed(&name.to_string());
                Ok(Person::of(name, &user))
            }
            _ => {
                if let crate::limits::Counted::LockedOut { failures, until } =
                    self.guards.signin_failures.fail(&name.to_string(), now)
                {
                    if self.person(name).await.is_some() {
                        let command = UserCommand::LockOut { name: name.to_string(), failures, until };
                        if let Err(e) = self.users.execute(users::STREAM, command, None).await {
                            tracing::error!(error = %e, "could not record a sign-in lock-out");
                        }
                    }
                    tracing::warn!(user = %name, failures, "locking an account after wrong passwords");
                    return Err(SignInRefused::Locked(until));
                }
                Err(SignInRefused::Wrong)
            }
        }
    }

    /// Opens a session for `name`; returns its token (for the cookie; only its hash is kept).
    pub async fn open_session(&self, name: &str) -> Result<Secret, sqlx::Error> {
        let token = random_hex(32);
        let now = self.clock.now();
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(telltale_projections::log::fmt_time(now))
            .execute(&self.read.pool)
            .await?;
        sqlx::query("INSERT INTO sessions (token_hash, name, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(hash_secret(&token))
            .bind(name)
            .bind(telltale_projections::log::fmt_time(now))
            .bind(telltale_projections::log::fmt_time(now + SESSION_LIFETIME))
            .execute(&self.read.pool)
            .await?;
        Ok(Secret::new(token))
    }

    /// The person a session token belongs to, while it lasts and they exist.
    pub async fn session_person(&self, token: &str) -> Option<Person> {
        let row = sqlx::query("SELECT name, expires_at FROM sessions WHERE token_hash = $1")
            .bind(hash_secret(token))
            .fetch_optional(&self.read.pool)
            .await
            .ok()??;
        let expires_at: String = row.try_get("expires_at").ok()?;
        if telltale_projections::log::parse_time(&expires_at)? <= self.clock.now() {
            return None;
        }
        let name: String = row.try_get("name").ok()?;
        self.person(&name).await
    }

    pub async fn close_session(&self, token: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(hash_secret(token))
            .execute(&self.read.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_argon2id_and_verified() {
        let hash = hash_password("correct horse battery");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(password_matches("correct horse battery", &hash));
        assert!(!password_matches("wrong horse battery", &hash));
        assert!(!password_matches("x", "not a hash"));
    }

    #[test]
    fn link_tokens_are_parsed_strictly() {
        let token = format!("l_{}_{}", random_hex(8), random_hex(32));
        assert!(parse_link(&token).is_some());
        assert!(parse_link("l_zz_zz").is_none());
        assert!(parse_link(&token[1..]).is_none());
    }
}
