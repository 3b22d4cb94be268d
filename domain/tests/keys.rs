//! Given/when/then tests of key rotation, expiry, lock-out and the key history an auditor
//! replays.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use telltale_domain::client::*;
use telltale_domain::keys::{KeyFact, KeyHistory, next_expiry};
use telltale_domain::span::Span;
use telltale_domain::{Aggregate, Context, EventPayload};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::seconds(secs)
}

fn at(secs: i64) -> Context {
    Context::new(t(secs), t(0))
}

fn policy(every: i64, overlap: i64) -> RotationPolicy {
    RotationPolicy { every: Span::from_secs(every), overlap: Span::from_secs(overlap) }
}

/// Given a client with key `k0` issued at t=0 (rotating every minute, 30 s overlap).
fn given(rotation: Option<RotationPolicy>, expires_at: Option<DateTime<Utc>>) -> Client {
    let mut state = Client::default();
    for (command, ctx) in [
        (ClientCommand::Register { client: "acme".into(), display_name: "Acme".into() }, at(0)),
        (
            ClientCommand::IssueKey {
                key_id: "k0".into(),
                secret_hash: "h0".into(),
                scopes: vec![Scope::Ingest],
                label: Some("web".into()),
                expires_at,
                rotation,
                by: Some("cli".into()),
            },
            at(0),
        ),
    ] {
        let events = ClientAggregate::decide(&state, command, &ctx).unwrap();
        state = ClientAggregate::fold(state, &events);
    }
    state
}

fn rotate(key: &str, successor: &str) -> ClientCommand {
    ClientCommand::RotateKey {
        key_id: key.into(),
        successor: NewSuccessor { key_id: successor.into(), secret_hash: format!("h-{successor}"), sealed: "s".into() },
        by: Some(format!("key:{key}")),
    }
}

fn when(state: &Client, command: ClientCommand, ctx: Context) -> (Client, Vec<ClientEvent>) {
    let events = ClientAggregate::decide(state, command, &ctx).unwrap();
    (ClientAggregate::fold(state.clone(), &events), events)
}

fn types(events: &[ClientEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.event_type()).collect()
}

#[test]
fn a_key_without_a_policy_never_rotates() {
    let state = given(None, None);
    assert_eq!(state.keys["k0"].rotation(t(1_000_000)), Rotation::Never);
    let refused = ClientAggregate::decide(&state, rotate("k0", "k1"), &at(1_000_000));
    assert_eq!(refused.unwrap_err(), ClientError::RotationNotConfigured("k0".into()));
}

#[test]
fn a_key_is_not_rotated_before_it_is_due() {
    let state = given(Some(policy(60, 30)), None);
    assert_eq!(state.keys["k0"].rotation(t(59)), Rotation::NotDue { due_at: t(60) });
    let refused = ClientAggregate::decide(&state, rotate("k0", "k1"), &at(59));
    assert_eq!(refused.unwrap_err(), ClientError::RotationNotDue { key_id: "k0".into(), due_at: t(60) });
}

#[test]
fn a_due_key_rotates_once_per_generation() {
    let state = given(Some(policy(60, 30)), None);
    assert_eq!(state.keys["k0"].rotation(t(60)), Rotation::Due { since: t(60) });

    let (state, events) = when(&state, rotate("k0", "k1"), at(61));
    let [ClientEvent::KeyRotated(rotated)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!((rotated.successor_id.as_str(), rotated.generation), ("k1", 1));
    assert_eq!(rotated.predecessor_expires_at, t(91), "the predecessor works for the overlap");
    assert_eq!((rotated.scopes.clone(), rotated.label.clone()), (vec![Scope::Ingest], Some("web".into())));
    assert_eq!(rotated.rotation, policy(60, 30), "the successor rotates the same way");
    assert_eq!(state.keys["k0"].rotation(t(61)), Rotation::Rotated { successor: "k1".into(), expires_at: Some(t(91)) });

    // Another process calls rotate with the same key, with a successor of its own making:
    // nothing new is recorded, and the state still names k1.
    let (state, again) = when(&state, rotate("k0", "other"), at(62));
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(state.keys["k0"].successor.as_deref(), Some("k1"));
    assert!(!state.keys.contains_key("other"));

    // The successor is due a period after its issue, and is generation 2's predecessor.
    assert_eq!(state.keys["k1"].rotation(t(120)), Rotation::NotDue { due_at: t(121) });
    let (state, events) = when(&state, rotate("k1", "k2"), at(121));
    let [ClientEvent::KeyExpired(expired), ClientEvent::KeyRotated(second)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!((expired.key_id.as_str(), expired.at), ("k0", t(91)), "what time made true comes first");
    assert_eq!(second.generation, 2);
    assert_eq!(state.keys["k2"].lineage, "k0");
    assert_eq!(telltale_domain::keys::newest_of(&state.keys, "k0"), ["k0", "k1", "k2"]);
}

#[test]
fn the_predecessor_expires_when_the_overlap_ends_stamped_with_that_instant() {
    let state = given(Some(policy(60, 30)), None);
    let (state, _) = when(&state, rotate("k0", "k1"), at(61));
    assert!(state.keys["k0"].valid_at(t(90)));
    assert!(!state.keys["k0"].valid_at(t(91)));
    assert_eq!(next_expiry(&state.keys), Some(t(91)));

    // The sweeper ticks late: the fact is stamped when it became true, not when it was seen.
    let (state, events) = when(&state, ClientCommand::Tick, at(100));
    assert_eq!(events, [ClientEvent::KeyExpired(KeyExpired { key_id: "k0".into(), at: t(91) })]);
    assert!(state.keys["k0"].expired);
    assert_eq!(next_expiry(&state.keys), None);
    let (_, again) = when(&state, ClientCommand::Tick, at(200));
    assert!(again.is_empty(), "an expiry is recorded once");
}

#[test]
fn any_command_records_the_expiries_due_before_its_own_facts() {
    let state = given(None, Some(t(10)));
    let (state, events) = when(&state, ClientCommand::RevokeKey { key_id: "k0".into(), by: None }, at(20));
    assert_eq!(types(&events), ["KeyExpired"], "an expired key is not revoked again");
    assert!(state.keys["k0"].revoked_at.is_none());
    assert!(!state.keys["k0"].valid_at(t(10)) && state.keys["k0"].valid_at(t(9)));
}

#[test]
fn an_expiry_given_at_issue_holds_for_the_whole_line() {
    let state = given(Some(policy(60, 600)), Some(t(100)));
    let (state, events) = when(&state, rotate("k0", "k1"), at(60));
    let [ClientEvent::KeyRotated(rotated)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(rotated.predecessor_expires_at, t(100), "the sooner of the overlap and its own expiry");
    assert_eq!(rotated.expires_at, Some(t(100)));
    assert_eq!(state.keys["k1"].expires_at, Some(t(100)));
}

#[test]
fn revoked_or_expired_keys_do_not_rotate() {
    let state = given(Some(policy(60, 30)), None);
    let (state, _) = when(&state, ClientCommand::RevokeKey { key_id: "k0".into(), by: Some("user:ann".into()) }, at(5));
    let refused = ClientAggregate::decide(&state, rotate("k0", "k1"), &at(60));
    assert_eq!(refused.unwrap_err(), ClientError::KeyNotValid("k0".into()));
    assert_eq!(state.keys["k0"].revoked_by.as_deref(), Some("user:ann"));
}

#[test]
fn rotation_and_expiry_bounds_are_checked() {
    let mut state = given(None, None);
    state.keys.clear();
    let issue = |rotation, expires_at| ClientCommand::IssueKey {
        key_id: "k9".into(),
        secret_hash: "h".into(),
        scopes: vec![Scope::Read],
        label: None,
        expires_at,
        rotation,
        by: None,
    };
    for bad in [Some(policy(59, 60)), Some(policy(60, 0))] {
        assert!(matches!(ClientAggregate::decide(&state, issue(bad, None), &at(0)), Err(ClientError::Invalid(_))));
    }
    assert!(matches!(ClientAggregate::decide(&state, issue(None, Some(t(0))), &at(0)), Err(ClientError::Invalid(_))));
    assert!(ClientAggregate::decide(&state, issue(Some(policy(60, 60)), Some(t(1))), &at(0)).is_ok());
}

#[test]
fn an_address_is_locked_out_once_until_its_lock_ends() {
    let state = given(None, None);
    let lock =
        |until| ClientCommand::LockOutKey { key_id: "k0".into(), source: "10.0.0.9".into(), failures: 10, until };
    let (state, events) = when(&state, lock(t(900)), at(0));
    assert_eq!(types(&events), ["KeyLockedOut"]);
    assert_eq!(state.keys["k0"].locked_until("10.0.0.9", t(10)), Some(t(900)));
    assert_eq!(state.keys["k0"].locked_until("10.0.0.8", t(10)), None, "only that address");
    let (state, again) = when(&state, lock(t(950)), at(10));
    assert!(again.is_empty(), "already locked");
    assert_eq!(state.keys["k0"].locked_until("10.0.0.9", t(900)), None);
    let (_, later) = when(&state, lock(t(1900)), at(1000));
    assert_eq!(types(&later), ["KeyLockedOut"]);
    assert!(state.keys["k0"].valid_at(t(10)), "a lock-out does not end the key");
}

#[test]
fn the_history_replays_which_keys_were_valid_when_and_who_changed_them() {
    let state = given(Some(policy(60, 30)), None);
    let mut events = Vec::new();
    let (state, e) = when(&state, rotate("k0", "k1"), at(61));
    events.extend(e);
    let (state, e) = when(&state, rotate("k1", "k2"), at(130));
    events.extend(e);
    let (_, e) = when(&state, ClientCommand::RevokeKey { key_id: "k2".into(), by: Some("user:ann".into()) }, at(150));
    events.extend(e);
    assert_eq!(types(&events), ["KeyRotated", "KeyExpired", "KeyRotated", "KeyRevoked"]);

    let issued = KeyIssued {
        key_id: "k0".into(),
        secret_hash: "h0".into(),
        scopes: vec![Scope::Ingest],
        label: None,
        at: t(0),
        expires_at: None,
        rotation: Some(policy(60, 30)),
        by: Some("cli".into()),
    };
    let mut history = KeyHistory::default();
    history.apply(KeyFact::Issued(&issued));
    for event in &events {
        match event {
            ClientEvent::KeyRotated(e) => history.apply(KeyFact::Rotated(e)),
            ClientEvent::KeyRevoked(e) => history.apply(KeyFact::Revoked(e)),
            ClientEvent::KeyExpired(e) => history.apply(KeyFact::Expired(e)),
            other => panic!("{other:?}"),
        }
    }
    let actions: Vec<(&str, &str)> = history.entries.iter().map(|e| (e.action.as_str(), e.key_id.as_str())).collect();
    assert_eq!(actions, [("issued", "k0"), ("rotated", "k0"), ("expired", "k0"), ("rotated", "k1"), ("revoked", "k2")]);
    assert_eq!(history.entries[1].by.as_deref(), Some("key:k0"));
    assert_eq!(history.entries[4].by.as_deref(), Some("user:ann"));
    assert_eq!(history.valid_keys_at(t(70)), ["k0", "k1"], "both during the overlap");
    assert_eq!(history.valid_keys_at(t(100)), ["k1"]);
    assert_eq!(history.valid_keys_at(t(140)), ["k1", "k2"]);
    assert_eq!(history.valid_keys_at(t(155)), ["k1"], "k2 revoked; k1 still in its overlap");
    assert!(history.valid_keys_at(t(160)).is_empty());
    assert_eq!(history.valid_at("k2", t(149)), Some(true));
    assert_eq!(history.valid_at("k2", t(150)), Some(false));
    assert_eq!(history.valid_at("nope", t(150)), None);
    let generations: Vec<u32> = history.entries.iter().filter_map(|e| e.generation).collect();
    assert_eq!(generations, [0, 1, 2], "one rotation per generation");
}
