//! Given/when/then tests of the Client aggregate.

use chrono::{TimeZone, Utc};
use serde_json::json;
use telltale_domain::client::*;
use telltale_domain::{Aggregate, Context, EventPayload};
use uuid::Uuid;

fn ctx() -> Context {
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    Context::new(at, at)
}

fn registered() -> Client {
    let events = ClientAggregate::decide(
        &Client::default(),
        ClientCommand::Register { client: "acme".into(), display_name: "Acme".into() },
        &ctx(),
    )
    .unwrap();
    ClientAggregate::fold(Client::default(), &events)
}

fn issue(id: &str) -> ClientCommand {
    ClientCommand::IssueKey {
        key_id: id.into(),
        secret_hash: "h".into(),
        scopes: vec![Scope::Ingest],
        label: None,
        expires_at: None,
        rotation: None,
        by: None,
    }
}

#[test]
fn a_client_registers_once() {
    let state = registered();
    assert!(state.registered);
    let again = ClientAggregate::decide(
        &state,
        ClientCommand::Register { client: "acme".into(), display_name: "x".into() },
        &ctx(),
    );
    assert_eq!(again.unwrap_err(), ClientError::AlreadyExists("acme".into()));
}

#[test]
fn nothing_but_registration_happens_to_an_unknown_client() {
    assert!(matches!(ClientAggregate::decide(&Client::default(), issue("k1"), &ctx()), Err(ClientError::NotFound(_))));
}

#[test]
fn keys_are_issued_once_and_revoked_once() {
    let state = registered();
    let events = ClientAggregate::decide(&state, issue("k1"), &ctx()).unwrap();
    assert_eq!(events.iter().map(|e| e.event_type()).collect::<Vec<_>>(), ["KeyIssued"]);
    let state = ClientAggregate::fold(state, &events);
    assert!(matches!(ClientAggregate::decide(&state, issue("k1"), &ctx()), Err(ClientError::Conflict(_))));
    let revoke = ClientCommand::RevokeKey { key_id: "k1".into(), by: None };
    let events = ClientAggregate::decide(&state, revoke.clone(), &ctx()).unwrap();
    assert_eq!(events.len(), 1);
    let state = ClientAggregate::fold(state, &events);
    assert!(ClientAggregate::decide(&state, revoke, &ctx()).unwrap().is_empty());
    let missing = ClientCommand::RevokeKey { key_id: "nope".into(), by: None };
    assert!(matches!(ClientAggregate::decide(&state, missing, &ctx()), Err(ClientError::KeyNotFound(_))));
}

#[test]
fn a_key_needs_a_scope() {
    let command = ClientCommand::IssueKey {
        key_id: "k".into(),
        secret_hash: "h".into(),
        scopes: vec![],
        label: None,
        expires_at: None,
        rotation: None,
        by: None,
    };
    assert!(matches!(ClientAggregate::decide(&registered(), command, &ctx()), Err(ClientError::Invalid(_))));
}

#[test]
fn webhook_channels_need_an_http_url_and_a_unique_name() {
    let add = |name: &str, config: serde_json::Value| ClientCommand::AddChannel {
        channel_id: Uuid::new_v4(),
        name: name.into(),
        kind: "webhook".into(),
        config,
        tags: vec![],
    };
    let state = registered();
    for bad in [json!({}), json!({"url": "ftp://x"}), json!({"url": "http://"}), json!({"url": 5}), json!([1])] {
        assert!(
            matches!(ClientAggregate::decide(&state, add("ops", bad.clone()), &ctx()), Err(ClientError::Invalid(_))),
            "{bad}"
        );
    }
    let unknown = ClientCommand::AddChannel {
        channel_id: Uuid::new_v4(),
        name: "x".into(),
        kind: "carrier-pigeon".into(),
        config: json!({}),
        tags: vec![],
    };
    assert!(matches!(ClientAggregate::decide(&state, unknown, &ctx()), Err(ClientError::Invalid(_))));
    let events =
        ClientAggregate::decide(&state, add("ops", json!({"url": "http://127.0.0.1:9/hook"})), &ctx()).unwrap();
    let state = ClientAggregate::fold(state, &events);
    assert!(matches!(
        ClientAggregate::decide(&state, add("ops", json!({"url": "https://example.com/"})), &ctx()),
        Err(ClientError::Conflict(_))
    ));
    let id = *state.channels.keys().next().unwrap();
    let removed = ClientAggregate::decide(&state, ClientCommand::RemoveChannel { channel_id: id }, &ctx()).unwrap();
    assert!(ClientAggregate::fold(state, &removed).channels.is_empty());
}

#[test]
fn a_client_sets_its_default_alert_policy_refusing_nonsense_and_recording_no_repeat() {
    use telltale_domain::policy::AlertPolicy;
    let state = registered();
    let policy = AlertPolicy { missed_tolerance: Some(2), ..AlertPolicy::default() };
    let events = ClientAggregate::decide(&state, ClientCommand::SetAlertPolicy(policy.clone()), &ctx()).unwrap();
    assert_eq!(events.iter().map(|e| e.event_type()).collect::<Vec<_>>(), ["AlertPolicySet"]);
    let state = ClientAggregate::fold(state, &events);
    assert_eq!(state.defaults().alert_policy, policy);
    assert!(ClientAggregate::decide(&state, ClientCommand::SetAlertPolicy(policy), &ctx()).unwrap().is_empty());
    let bad = AlertPolicy { recovery_threshold: Some(0), ..AlertPolicy::default() };
    assert!(matches!(
        ClientAggregate::decide(&state, ClientCommand::SetAlertPolicy(bad), &ctx()),
        Err(ClientError::Invalid(m)) if m.contains("recovery_threshold")
    ));
}

#[test]
fn a_client_adds_and_removes_maintenance_windows() {
    use telltale_domain::maintenance::{MaintenanceWindow, WindowTime};
    use telltale_domain::span::Span;
    let window = |id: u128, cron: &str| MaintenanceWindow {
        id: Uuid::from_u128(id),
        reason: "upgrade".into(),
        when: WindowTime::Recurring {
            cron: cron.into(),
            timezone: "Europe/Berlin".into(),
            duration: Span::from_secs(3600),
        },
        tags: vec!["db".into()],
        monitors: vec![],
    };
    let state = registered();
    let events =
        ClientAggregate::decide(&state, ClientCommand::AddMaintenanceWindow(window(1, "0 2 * * *")), &ctx()).unwrap();
    assert_eq!(events.iter().map(|e| e.event_type()).collect::<Vec<_>>(), ["MaintenanceWindowAdded"]);
    let state = ClientAggregate::fold(state, &events);
    assert_eq!(state.defaults().maintenance, vec![window(1, "0 2 * * *")]);
    // The same id twice, or a schedule that never fires, is refused.
    assert!(matches!(
        ClientAggregate::decide(&state, ClientCommand::AddMaintenanceWindow(window(1, "0 3 * * *")), &ctx()),
        Err(ClientError::Conflict(_))
    ));
    assert!(matches!(
        ClientAggregate::decide(&state, ClientCommand::AddMaintenanceWindow(window(2, "0 0 30 2 *")), &ctx()),
        Err(ClientError::Invalid(_))
    ));
    let removed = ClientAggregate::decide(
        &state,
        ClientCommand::RemoveMaintenanceWindow { window_id: Uuid::from_u128(1) },
        &ctx(),
    )
    .unwrap();
    let state = ClientAggregate::fold(state, &removed);
    assert!(state.defaults().maintenance.is_empty());
    assert_eq!(
        ClientAggregate::decide(
            &state,
            ClientCommand::RemoveMaintenanceWindow { window_id: Uuid::from_u128(1) },
            &ctx()
        ),
        Err(ClientError::WindowNotFound(Uuid::from_u128(1)))
    );
}
