//! API keys of a client: their life (issue, rotation, revocation, expiry, lock-out), the
//! rotation decision, and the history an auditor replays.
//!
//! A key may carry a [`RotationPolicy`]: `every` after it was issued it is *due*; the first call
//! of `rotate` with it records [`KeyRotated`], which issues its successor (one generation later)
//! and sets the predecessor to expire `overlap` later. Every later `rotate` with the same key
//! records nothing and answers with the same successor: rotation is idempotent per generation.
//! The successor's secret is stored only sealed under a key derived from the predecessor's
//! secret (see the binary's `keys` module), so the log holds no usable secret.
//!
//! A key that is due but never used stays valid (unless it has an expiry of its own): a job that
//! runs once a month rotates when it runs, rather than finding its key dead.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::client::Scope;
use crate::span::Span;

/// The shortest rotation period telltale accepts.
pub const MIN_ROTATION: Span = Span::from_secs(60);
/// The shortest overlap: long enough for processes that share a key file to see the successor.
pub const MIN_OVERLAP: Span = Span::from_secs(10);

/// How a key rotates itself: due `every` after its issue; the predecessor keeps working for
/// `overlap` after its successor is issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationPolicy {
    pub every: Span,
    pub overlap: Span,
}

impl RotationPolicy {
    /// Checks the bounds. The overlap is never zero: a process that read the key a moment before
    /// another rotated it must still be heard.
    pub fn check(&self) -> Result<(), String> {
        if self.every < MIN_ROTATION {
            return Err(format!("rotate_every must be at least {MIN_ROTATION}"));
        }
        if self.overlap < MIN_OVERLAP {
            return Err(format!("overlap must be at least {MIN_OVERLAP}"));
        }
        Ok(())
    }
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationPolicy>,
    /// Who issued it: `cli`, `bootstrap`, `key:<id>`, `user:<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRotated {
    /// The predecessor: the key that was due and called `rotate`.
    pub key_id: String,
    pub successor_id: String,
    pub successor_secret_hash: String,
    /// The successor's secret, sealed (AEAD) under a key derived from the predecessor's secret:
    /// only a holder of the predecessor can open it. Never shown.
    pub sealed_successor: String,
    /// The successor's generation: the predecessor's plus one (an issued key is generation 0).
    pub generation: u32,
    pub at: DateTime<Utc>,
    /// When the predecessor stops working: the end of the overlap, or its own expiry if sooner.
    pub predecessor_expires_at: DateTime<Utc>,
    /// What the successor inherits, recorded so that the fact stands on its own.
    pub scopes: Vec<Scope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub rotation: RotationPolicy,
    /// An expiry set when the first key of the line was issued holds for the whole line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Who rotated it: `key:<id>` (the due key itself), with the caller's address and agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRevoked {
    pub key_id: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// A key reached its expiry (the end of its overlap after a rotation, or the expiry it was
/// issued with). Recorded by the server when time passes, stamped with the instant it expired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyExpired {
    pub key_id: String,
    pub at: DateTime<Utc>,
}

/// One address presented a key's id with a wrong secret too often: requests with that key id
/// from that address are refused until `until`. Other addresses are not affected, so nobody can
/// lock a working key out by guessing at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyLockedOut {
    pub key_id: String,
    pub source: String,
    pub failures: u32,
    pub at: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// A key as the client aggregate knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyState {
    pub scopes: Vec<Scope>,
    pub issued_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub revoked_by: Option<String>,
    #[serde(default)]
    pub issued_by: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    /// When it stops working (an expiry it was issued with, or the end of its overlap).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The expiry of its whole line (inherited by successors).
    #[serde(default)]
    pub line_expires_at: Option<DateTime<Utc>>,
    /// True once `KeyExpired` is recorded.
    #[serde(default)]
    pub expired: bool,
    #[serde(default)]
    pub rotation: Option<RotationPolicy>,
    #[serde(default)]
    pub generation: u32,
    /// The first key of its line.
    #[serde(default)]
    pub lineage: String,
    #[serde(default)]
    pub predecessor: Option<String>,
    #[serde(default)]
    pub successor: Option<String>,
    #[serde(default)]
    pub rotated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub rotated_by: Option<String>,
    /// This key's secret sealed under its predecessor's (keys issued by rotation).
    #[serde(default)]
    pub sealed: Option<String>,
    /// Addresses locked out of this key id, until when.
    #[serde(default)]
    pub lockouts: BTreeMap<String, DateTime<Utc>>,
}

/// Where a key stands in its rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It has no rotation policy.
    Never,
    NotDue {
        due_at: DateTime<Utc>,
    },
    /// Due since `since`; nobody has rotated it yet.
    Due {
        since: DateTime<Utc>,
    },
    /// Its successor is issued; it works until `expires_at`.
    Rotated {
        successor: String,
        expires_at: Option<DateTime<Utc>>,
    },
}

impl KeyState {
    /// A key of generation 0 issued at `at`, first of line `lineage`.
    fn new(
        scopes: &[Scope],
        at: DateTime<Utc>,
        by: &Option<String>,
        label: &Option<String>,
        expires_at: Option<DateTime<Utc>>,
        rotation: Option<RotationPolicy>,
        lineage: &str,
    ) -> KeyState {
        KeyState {
            scopes: scopes.to_vec(),
            issued_at: at,
            revoked_at: None,
            revoked_by: None,
            issued_by: by.clone(),
            label: label.clone(),
            expires_at,
            line_expires_at: expires_at,
            expired: false,
            rotation,
            generation: 0,
            lineage: lineage.to_string(),
            predecessor: None,
            successor: None,
            rotated_at: None,
            rotated_by: None,
            sealed: None,
            lockouts: BTreeMap::new(),
        }
    }

    /// When it becomes due, if it rotates.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        self.rotation.map(|r| self.issued_at + r.every.to_delta())
    }

    /// The rotation decision: a pure function of the key and the time.
    pub fn rotation(&self, now: DateTime<Utc>) -> Rotation {
        rotation_status(self.issued_at, self.rotation, self.successor.as_deref(), self.expires_at, now)
    }

    /// Whether the key authenticated requests at `t`.
    pub fn valid_at(&self, t: DateTime<Utc>) -> bool {
        self.issued_at <= t && self.revoked_at.is_none_or(|r| t < r) && self.expires_at.is_none_or(|e| t < e)
    }

    /// When `source` may use this key id again, if it is locked out at `now`.
    pub fn locked_until(&self, source: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.lockouts.get(source).copied().filter(|until| *until > now)
    }

    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none() && !self.expired
    }
}

/// Where a key issued at `issued_at` stands in its rotation at `now`.
pub fn rotation_status(
    issued_at: DateTime<Utc>,
    policy: Option<RotationPolicy>,
    successor: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Rotation {
    if let Some(successor) = successor {
        return Rotation::Rotated { successor: successor.to_string(), expires_at };
    }
    match policy.map(|p| issued_at + p.every.to_delta()) {
        None => Rotation::Never,
        Some(due_at) if now < due_at => Rotation::NotDue { due_at },
        Some(since) => Rotation::Due { since },
    }
}

/// The keys of a client, evolved by key events.
pub type Keys = BTreeMap<String, KeyState>;

/// Applies one key event to the key map.
pub fn evolve_issued(keys: &mut Keys, e: &KeyIssued) {
    let key = KeyState::new(&e.scopes, e.at, &e.by, &e.label, e.expires_at, e.rotation, &e.key_id);
    keys.insert(e.key_id.clone(), key);
}

pub fn evolve_rotated(keys: &mut Keys, e: &KeyRotated) {
    let lineage = match keys.get_mut(&e.key_id) {
        Some(old) => {
            old.successor = Some(e.successor_id.clone());
            old.rotated_at = Some(e.at);
            old.rotated_by = e.by.clone();
            old.expires_at = Some(e.predecessor_expires_at);
            old.lineage.clone()
        }
        None => e.key_id.clone(),
    };
    let key = KeyState {
        generation: e.generation,
        predecessor: Some(e.key_id.clone()),
        sealed: Some(e.sealed_successor.clone()),
        ..KeyState::new(&e.scopes, e.at, &e.by, &e.label, e.expires_at, Some(e.rotation), &lineage)
    };
    keys.insert(e.successor_id.clone(), key);
}

pub fn evolve_revoked(keys: &mut Keys, e: &KeyRevoked) {
    if let Some(key) = keys.get_mut(&e.key_id)
        && key.revoked_at.is_none()
    {
        key.revoked_at = Some(e.at);
        key.revoked_by = e.by.clone();
    }
}

pub fn evolve_expired(keys: &mut Keys, e: &KeyExpired) {
    if let Some(key) = keys.get_mut(&e.key_id) {
        key.expired = true;
    }
}

pub fn evolve_locked_out(keys: &mut Keys, e: &KeyLockedOut) {
    if let Some(key) = keys.get_mut(&e.key_id) {
        key.lockouts.retain(|_, until| *until > e.at);
        key.lockouts.insert(e.source.clone(), e.until);
    }
}

/// What time alone made true by `now`: every live key whose expiry has passed, stamped with the
/// instant it expired, in the order they expired.
pub fn due_expiries(keys: &Keys, now: DateTime<Utc>) -> Vec<KeyExpired> {
    let mut due: Vec<KeyExpired> = keys
        .iter()
        .filter(|(_, k)| k.is_live())
        .filter_map(|(id, k)| k.expires_at.filter(|at| *at <= now).map(|at| KeyExpired { key_id: id.clone(), at }))
        .collect();
    due.sort_by(|a, b| (a.at, &a.key_id).cmp(&(b.at, &b.key_id)));
    due
}

/// The next instant a live key expires: when the server must look again.
pub fn next_expiry(keys: &Keys) -> Option<DateTime<Utc>> {
    keys.values().filter(|k| k.is_live()).filter_map(|k| k.expires_at).min()
}

/// The current key of a line: follows successors from `key_id` to the newest.
pub fn newest_of<'a>(keys: &'a Keys, key_id: &'a str) -> Vec<&'a str> {
    let mut chain = vec![key_id];
    let mut at = key_id;
    while let Some(next) = keys.get(at).and_then(|k| k.successor.as_deref()) {
        if chain.contains(&next) {
            break;
        }
        chain.push(next);
        at = next;
    }
    chain
}

/// One line of a client's key history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// `issued`, `rotated`, `revoked`, `expired` or `locked_out`.
    pub action: String,
    pub key_id: String,
    /// For `rotated`: the successor issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub successor_id: Option<String>,
    /// For `issued` and `rotated`: the generation of the key issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u32>,
    /// Who or what did it (nothing for an expiry: time did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// For `locked_out`: the address locked out, and until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

impl AuditEntry {
    fn new(at: DateTime<Utc>, action: &str, key_id: &str) -> AuditEntry {
        AuditEntry {
            at,
            action: action.into(),
            key_id: key_id.into(),
            successor_id: None,
            generation: None,
            by: None,
            source: None,
            until: None,
        }
    }
}

/// A client's key history, replayed from its stream: every key's life and every change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyHistory {
    pub keys: Keys,
    pub entries: Vec<AuditEntry>,
}

/// The key events of a client, for replay.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyFact<'a> {
    Issued(&'a KeyIssued),
    Rotated(&'a KeyRotated),
    Revoked(&'a KeyRevoked),
    Expired(&'a KeyExpired),
    LockedOut(&'a KeyLockedOut),
}

impl KeyFact<'_> {
    /// When it happened (for an expiry: the instant the key expired).
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            KeyFact::Issued(e) => e.at,
            KeyFact::Rotated(e) => e.at,
            KeyFact::Revoked(e) => e.at,
            KeyFact::Expired(e) => e.at,
            KeyFact::LockedOut(e) => e.at,
        }
    }
}

impl KeyHistory {
    /// Folds one fact in.
    pub fn apply(&mut self, fact: KeyFact<'_>) {
        let entry = match fact {
            KeyFact::Issued(e) => {
                evolve_issued(&mut self.keys, e);
                AuditEntry { generation: Some(0), by: e.by.clone(), ..AuditEntry::new(e.at, "issued", &e.key_id) }
            }
            KeyFact::Rotated(e) => {
                evolve_rotated(&mut self.keys, e);
                AuditEntry {
                    successor_id: Some(e.successor_id.clone()),
                    generation: Some(e.generation),
                    by: e.by.clone(),
                    ..AuditEntry::new(e.at, "rotated", &e.key_id)
                }
            }
            KeyFact::Revoked(e) => {
                evolve_revoked(&mut self.keys, e);
                AuditEntry { by: e.by.clone(), ..AuditEntry::new(e.at, "revoked", &e.key_id) }
            }
            KeyFact::Expired(e) => {
                evolve_expired(&mut self.keys, e);
                AuditEntry::new(e.at, "expired", &e.key_id)
            }
            KeyFact::LockedOut(e) => {
                evolve_locked_out(&mut self.keys, e);
                AuditEntry {
                    source: Some(e.source.clone()),
                    until: Some(e.until),
                    ..AuditEntry::new(e.at, "locked_out", &e.key_id)
                }
            }
        };
        self.entries.push(entry);
    }

    /// Was key `key_id` valid at `t`? `None` when the client never had that key.
    pub fn valid_at(&self, key_id: &str, t: DateTime<Utc>) -> Option<bool> {
        self.keys.get(key_id).map(|k| k.valid_at(t))
    }

    /// The keys that were valid at `t`.
    pub fn valid_keys_at(&self, t: DateTime<Utc>) -> Vec<&str> {
        self.keys.iter().filter(|(_, k)| k.valid_at(t)).map(|(id, _)| id.as_str()).collect()
    }
}
