//! Key material: `tt_<id>_<secret>` tokens, their hashes, and the sealing of a successor's
//! secret under its predecessor's.
//!
//! - A secret is 32 bytes (256 bits) from the operating system's CSPRNG, written as 64 hex
//!   digits; the id is 8 random bytes (16 hex digits) and public.
//! - Only SHA-256 of the secret is stored (a high-entropy secret needs no slow hash), and it is
//!   compared in constant time.
//! - A rotation seals the successor's secret with ChaCha20-Poly1305 under a key derived by
//!   HKDF-SHA256 from the predecessor's secret (salt: a fixed label; info: both ids). The log
//!   holds the sealed bytes; only someone who presents the predecessor can open them, so every
//!   holder of the predecessor gets the same successor and the server keeps no usable secret.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use telltale_domain::EventPayload as _;
use telltale_domain::client::{ClientCommand, ClientError, ClientEvent, NewSuccessor, RotationPolicy, Scope};
use telltale_domain::ids::streams;
use telltale_domain::keys::{KeyFact, KeyHistory, newest_of};

use crate::app::App;
use crate::commands::CommandError;
use crate::store::StoreError;

const SEAL_SALT: &[u8] = b"telltale key rotation v1";

/// A key's secret part (or a whole token): never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// `n` bytes from the operating system's CSPRNG, as hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    OsRng.try_fill_bytes(&mut bytes).expect("the operating system's random source works");
    hex::encode(bytes)
}

/// A fresh key id and secret.
pub fn new_key() -> (String, Secret) {
    (random_hex(8), Secret(random_hex(32)))
}

pub fn token(key_id: &str, secret: &Secret) -> Secret {
    Secret(format!("tt_{key_id}_{}", secret.expose()))
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` hashes to `hash`, in constant time.
pub fn secret_matches(secret: &str, hash: &str) -> bool {
    bool::from(hash_secret(secret).as_bytes().ct_eq(hash.as_bytes()))
}

/// Splits `tt_<id>_<secret>` into id and secret.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("tt_")?;
    let (id, secret) = rest.split_once('_')?;
    let hexish = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexish(id) && hexish(secret) && id.len() == 16 && secret.len() == 64).then_some((id, secret))
}

fn cipher(predecessor_secret: &str, predecessor_id: &str, successor_id: &str) -> ChaCha20Poly1305 {
    let hk = Hkdf::<Sha256>::new(Some(SEAL_SALT), predecessor_secret.as_bytes());
    let mut key = [0u8; 32];
    let info = format!("{predecessor_id}>{successor_id}");
    hk.expand(info.as_bytes(), &mut key).expect("32 bytes is a valid HKDF-SHA256 length");
    ChaCha20Poly1305::new(&Key::from(key))
}

/// Seals the successor's secret under the predecessor's: base64 of nonce and ciphertext.
pub fn seal(predecessor_secret: &str, predecessor_id: &str, successor_id: &str, successor: &Secret) -> String {
    let mut nonce = [0u8; 12];
    OsRng.try_fill_bytes(&mut nonce).expect("the operating system's random source works");
    let sealed = cipher(predecessor_secret, predecessor_id, successor_id)
        .encrypt(&Nonce::from(nonce), Payload { msg: successor.expose().as_bytes(), aad: successor_id.as_bytes() })
        .expect("sealing in memory does not fail");
    B64.encode([nonce.as_slice(), &sealed].concat())
}

/// Opens a sealed successor with the predecessor's secret; `None` when it does not open (a
/// wrong secret, or tampered bytes).
pub fn open(predecessor_secret: &str, predecessor_id: &str, successor_id: &str, sealed: &str) -> Option<Secret> {
    let bytes = B64.decode(sealed).ok()?;
    if bytes.len() < 12 {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    let plain = cipher(predecessor_secret, predecessor_id, successor_id)
        .decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad: successor_id.as_bytes() })
        .ok()?;
    String::from_utf8(plain).ok().map(Secret)
}

/// A newly issued API key. The token is shown once and never stored.
#[derive(Clone)]
pub struct IssuedKey {
    pub key_id: String,
    /// `tt_<id>_<secret>`.
    pub token: String,
}

impl fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedKey").field("key_id", &self.key_id).field("token", &"…").finish()
    }
}

/// What a new key may do and how it lives.
#[derive(Debug, Clone)]
pub struct KeyOptions {
    pub scopes: Vec<Scope>,
    pub label: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rotation: Option<RotationPolicy>,
    /// Who issues it: `cli`, `bootstrap`, `key:<id>`, `user:<name>`.
    pub by: Option<String>,
}

impl KeyOptions {
    pub fn scopes(scopes: Vec<Scope>) -> KeyOptions {
        KeyOptions { scopes, label: None, expires_at: None, rotation: None, by: None }
    }
}

/// The newest key of a line, as `rotate` hands it over.
#[derive(Clone)]
pub struct RotatedKey {
    pub key_id: String,
    pub token: Secret,
    pub generation: u32,
    /// When the key that called stops working.
    pub caller_expires_at: Option<DateTime<Utc>>,
    /// When the new key will be due in its turn.
    pub due_at: Option<DateTime<Utc>>,
    pub scopes: Vec<Scope>,
    /// True when this call issued it; false when an earlier call of this generation had.
    pub issued_now: bool,
}

pub type KeyResult<T> = Result<T, CommandError<ClientError>>;

impl App {
    /// Issues a key for `client`: `tt_<16 hex id>_<64 hex secret>`, 256 bits of secret.
    pub async fn issue_key(
        &self,
        client: &str,
        scopes: Vec<Scope>,
        label: Option<String>,
    ) -> anyhow::Result<IssuedKey> {
        let options = KeyOptions { label, ..KeyOptions::scopes(scopes) };
        Ok(self.issue_key_with(client, options).await?)
    }

    pub async fn issue_key_with(&self, client: &str, options: KeyOptions) -> KeyResult<IssuedKey> {
        let (key_id, secret) = new_key();
        let command = ClientCommand::IssueKey {
            key_id: key_id.clone(),
            secret_hash: hash_secret(secret.expose()),
            scopes: options.scopes,
            label: options.label,
            expires_at: options.expires_at,
            rotation: options.rotation,
            by: options.by,
        };
        self.clients.execute(&streams::client(client), command, None).await?;
        Ok(IssuedKey { token: token(&key_id, &secret).0, key_id })
    }

    pub async fn revoke_key(&self, client: &str, key_id: &str, by: Option<String>) -> KeyResult<()> {
        let command = ClientCommand::RevokeKey { key_id: key_id.to_string(), by };
        self.clients.execute(&streams::client(client), command, None).await?;
        Ok(())
    }

    /// Rotates the key `key_id` of `client`, presented with `secret`: issues its successor if
    /// it is due and has none, and hands over the newest key of its line (each successor opened
    /// with its predecessor's secret). Every caller with the same key gets the same answer.
    pub async fn rotate_key(
        &self,
        client: &str,
        key_id: &str,
        secret: &str,
        by: Option<String>,
    ) -> KeyResult<RotatedKey> {
        let (successor_id, successor_secret) = new_key();
        let successor = NewSuccessor {
            sealed: seal(secret, key_id, &successor_id, &successor_secret),
            secret_hash: hash_secret(successor_secret.expose()),
            key_id: successor_id,
        };
        let command = ClientCommand::RotateKey { key_id: key_id.to_string(), successor, by };
        let outcome = self.clients.execute(&streams::client(client), command, None).await?;
        let issued_now = outcome.events.iter().any(|(_, e)| matches!(e, ClientEvent::KeyRotated(_)));
        let keys = &outcome.state.keys;
        let chain = newest_of(keys, key_id);
        let mut current = Secret(secret.to_string());
        for pair in chain.windows(2) {
            let (from, to) = (pair[0], pair[1]);
            let next = &keys[to];
            if !next.is_live() {
                return Err(CommandError::Domain(ClientError::KeyNotValid(to.to_string())));
            }
            let sealed = next.sealed.as_deref().unwrap_or_default();
            current = open(current.expose(), from, to, sealed).ok_or_else(|| {
                CommandError::Store(StoreError::backend(format!("the sealed successor {to} of {from} does not open")))
            })?;
        }
        let newest = *chain.last().expect("the chain starts with the caller");
        let key = &keys[newest];
        Ok(RotatedKey {
            key_id: newest.to_string(),
            token: token(newest, &current),
            generation: key.generation,
            caller_expires_at: keys.get(key_id).and_then(|k| k.expires_at),
            due_at: key.due_at(),
            scopes: key.scopes.clone(),
            issued_now,
        })
    }

    /// A client's key history, replayed from its stream in the log (not from a read model), up
    /// to the instant `until` when given.
    pub async fn key_history(&self, client: &str, until: Option<DateTime<Utc>>) -> Result<KeyHistory, StoreError> {
        let stream = streams::client(client);
        let mut history = KeyHistory::default();
        let mut version = 0;
        loop {
            let batch = self.store.read_stream(&stream, version, 1000).await?;
            if batch.is_empty() {
                return Ok(history);
            }
            for recorded in &batch {
                version = recorded.version;
                let event = ClientEvent::decode_recorded(recorded).map_err(StoreError::backend)?;
                let fact = match &event {
                    ClientEvent::KeyIssued(e) => KeyFact::Issued(e),
                    ClientEvent::KeyRotated(e) => KeyFact::Rotated(e),
                    ClientEvent::KeyRevoked(e) => KeyFact::Revoked(e),
                    ClientEvent::KeyExpired(e) => KeyFact::Expired(e),
                    ClientEvent::KeyLockedOut(e) => KeyFact::LockedOut(e),
                    _ => continue,
                };
                if until.is_none_or(|t| fact.at() <= t) {
                    history.apply(fact);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_its_secret_is_256_bits() {
        let (id, secret) = new_key();
        let token = token(&id, &secret);
        let (parsed_id, parsed_secret) = parse_token(token.expose()).unwrap();
        assert_eq!((parsed_id, parsed_secret), (id.as_str(), secret.expose()));
        assert_eq!(hex::decode(parsed_secret).unwrap().len(), 32);
        assert!(secret_matches(secret.expose(), &hash_secret(secret.expose())));
        assert!(!secret_matches(&random_hex(32), &hash_secret(secret.expose())));
        assert_eq!(format!("{secret:?}"), "Secret(…)");
    }

    #[test]
    fn only_the_predecessor_opens_its_successor() {
        let (old_id, old) = new_key();
        let (new_id, new) = new_key();
        let sealed = seal(old.expose(), &old_id, &new_id, &new);
        assert!(!sealed.contains(new.expose()));
        assert_eq!(open(old.expose(), &old_id, &new_id, &sealed), Some(new.clone()));
        assert_eq!(open(&random_hex(32), &old_id, &new_id, &sealed), None, "another secret");
        assert_eq!(open(old.expose(), &old_id, "0000000000000000", &sealed), None, "bound to the ids");
        let mut tampered = B64.decode(&sealed).unwrap();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(open(old.expose(), &old_id, &new_id, &B64.encode(tampered)), None);
    }
}
