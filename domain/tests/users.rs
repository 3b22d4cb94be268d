//! Given/when/then tests of the user directory: people, roles, one-time sign-in links,
//! passwords and lock-outs.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use telltale_domain::users::*;
use telltale_domain::{Aggregate, Context, EventPayload};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::seconds(secs)
}

fn at(secs: i64) -> Context {
    Context::new(t(secs), t(0))
}

fn when(state: &Directory, command: UserCommand, ctx: Context) -> Result<(Directory, Vec<&'static str>), UserError> {
    let events = UserAggregate::decide(state, command, &ctx)?;
    let types = events.iter().map(|e| e.event_type()).collect();
    Ok((UserAggregate::fold(state.clone(), &events), types))
}

fn add(name: &str, client: Option<&str>, role: Role) -> UserCommand {
    UserCommand::Add { name: name.into(), client: client.map(Into::into), role, by: Some("cli".into()) }
}

fn link(name: &str, id: &str, expires: i64) -> UserCommand {
    UserCommand::IssueLink {
        name: name.into(),
        link_id: id.into(),
        token_hash: format!("hash-{id}"),
        expires_at: t(expires),
        by: None,
    }
}

fn set(id: &str, hash: &str) -> UserCommand {
    UserCommand::SetPassword { link_id: id.into(), token_hash: hash.into(), password_hash: "$argon2id$…".into() }
}

#[test]
fn users_belong_to_a_client_as_viewer_or_admin_and_operators_to_none() {
    let state = Directory::default();
    let (state, types) = when(&state, add("ann", Some("acme"), Role::Admin), at(0)).unwrap();
    assert_eq!(types, ["UserAdded"]);
    let (state, _) = when(&state, add("root", None, Role::Operator), at(0)).unwrap();
    assert_eq!(state.users["ann"].client.as_deref(), Some("acme"));
    assert_eq!(
        when(&state, add("ann", Some("globex"), Role::Viewer), at(1)).unwrap_err(),
        UserError::AlreadyExists("ann".into())
    );
    assert!(matches!(when(&state, add("bob", None, Role::Viewer), at(1)), Err(UserError::Invalid(_))));
    assert!(matches!(when(&state, add("eve", Some("acme"), Role::Operator), at(1)), Err(UserError::Invalid(_))));
    assert!(matches!(when(&state, add("Bad Name", Some("acme"), Role::Viewer), at(1)), Err(UserError::Invalid(_))));
}

#[test]
fn a_sign_in_link_sets_a_password_once_before_it_expires() {
    let (state, _) = when(&Directory::default(), add("ann", Some("acme"), Role::Viewer), at(0)).unwrap();
    assert_eq!(when(&state, link("bob", "l1", 100), at(0)).unwrap_err(), UserError::NotFound("bob".into()));
    let (state, types) = when(&state, link("ann", "l1", 100), at(0)).unwrap();
    assert_eq!(types, ["SignInLinkIssued"]);
    assert_eq!(when(&state, set("l1", "hash-wrong"), at(1)).unwrap_err(), UserError::LinkNotValid);
    assert_eq!(when(&state, set("l1", "hash-l1"), at(100)).unwrap_err(), UserError::LinkNotValid, "expired");
    let (state, types) = when(&state, set("l1", "hash-l1"), at(50)).unwrap();
    assert_eq!(types, ["SignInLinkUsed", "UserPasswordSet"]);
    assert!(state.users["ann"].password_hash.is_some());
    assert_eq!(when(&state, set("l1", "hash-l1"), at(51)).unwrap_err(), UserError::LinkNotValid, "used once");
}

#[test]
fn an_account_is_locked_once_until_the_lock_ends_and_removal_ends_its_links() {
    let (state, _) = when(&Directory::default(), add("ann", Some("acme"), Role::Viewer), at(0)).unwrap();
    let lock = |until| UserCommand::LockOut { name: "ann".into(), failures: 5, until };
    let (state, types) = when(&state, lock(t(900)), at(0)).unwrap();
    assert_eq!(types, ["UserLockedOut"]);
    assert_eq!(state.users["ann"].locked_until, Some(t(900)));
    assert!(when(&state, lock(t(950)), at(10)).unwrap().1.is_empty(), "already locked");
    assert_eq!(when(&state, lock(t(1900)), at(1000)).unwrap().1, ["UserLockedOut"]);
    let (state, _) = when(&state, link("ann", "l1", 100), at(0)).unwrap();
    let (state, types) = when(&state, UserCommand::Remove { name: "ann".into(), by: None }, at(1)).unwrap();
    assert_eq!(types, ["UserRemoved"]);
    assert_eq!(when(&state, set("l1", "hash-l1"), at(2)).unwrap_err(), UserError::LinkNotValid);
    let (state, _) = when(&state, add("ann", Some("globex"), Role::Viewer), at(3)).unwrap();
    assert_eq!(state.users["ann"].client.as_deref(), Some("globex"), "a removed name can be used again");
}
