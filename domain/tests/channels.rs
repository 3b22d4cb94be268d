//! Given/when/then tests of channel configuration: what each kind accepts, how a refusal names
//! its field, what is shown of a stored configuration, and which monitors a channel hears.

use serde_json::{Value, json};
use telltale_domain::channel::*;
use telltale_domain::client::*;
use telltale_domain::{Aggregate, Context};
use uuid::Uuid;

fn ctx() -> Context {
    let at = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 1, 1, 0, 0, 0).unwrap();
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

fn add(kind: &str, config: Value, tags: Vec<String>) -> ClientCommand {
    ClientCommand::AddChannel { channel_id: Uuid::from_u128(1), name: kind.into(), kind: kind.into(), config, tags }
}

/// A valid configuration of every kind.
fn valid() -> Vec<(&'static str, Value)> {
    vec![
        ("webhook", json!({"url": "https://example.com/hook", "secret": "0123456789abcdef", "headers": {"X-A": "b"}})),
        ("slack", json!({"url": "https://hooks.slack.com/services/T/B/X"})),
        ("teams", json!({"url": "https://prod.westeurope.logic.azure.com/workflows/x"})),
        ("discord", json!({"url": "https://discord.com/api/webhooks/1/x", "username": "telltale"})),
        ("google_chat", json!({"url": "https://chat.googleapis.com/v1/spaces/A/messages?key=k&token=t"})),
        ("mattermost", json!({"url": "https://mm.example.com/hooks/x", "channel": "ops"})),
        (
            "email",
            json!({"to": ["ops@example.com", "On call <oncall@example.com>"], "from": "telltale <t@example.com>",
                   "host": "smtp.example.com", "port": 587, "security": "starttls", "username": "u", "password": "hunter2hunter2"}),
        ),
        ("email", json!({"to": "ops@example.com", "from": "t@example.com", "host": "localhost", "security": "none"})),
        ("pagerduty", json!({"routing_key": "0123456789abcdef0123456789ABCDEF", "severity": "error"})),
        (
            "opsgenie",
            json!({"api_key": "eb243592-faa2-4ba2-a551-1afdf565c889", "api_url": "https://api.eu.opsgenie.com"}),
        ),
        ("ntfy", json!({"topic": "ops_alerts-1", "token": "tk_abcdefghijklmnop", "priority": 5})),
        (
            "ntfy",
            json!({"topic": "ops", "server": "https://ntfy.example.com", "username": "u", "password": "ntfy-password-1"}),
        ),
        ("telegram", json!({"bot_token": "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11", "chat_id": -100123})),
        ("telegram", json!({"bot_token": "123456:ABC", "chat_id": "@ops_channel", "message_thread_id": 7})),
        (
            "pushover",
            json!({"token": "azGDORePK8gMaC0QOYAMyEEuzJnyUi", "user": "uQiRzpo4DXghDmr9QzzfQu27cmVRsG", "priority": -1}),
        ),
        ("matrix", json!({"access_token": "syt_abcdefghijklmnop", "room_id": "!abc:matrix.org"})),
    ]
}

#[test]
fn every_kind_accepts_its_documented_configuration() {
    let state = registered();
    for (kind, config) in valid() {
        let events = ClientAggregate::decide(&state, add(kind, config.clone(), vec![]), &ctx());
        assert!(events.is_ok(), "{kind} {config}: {events:?}");
    }
    assert_eq!(CHANNEL_KINDS.len(), 13);
    for kind in CHANNEL_KINDS {
        assert!(valid().iter().any(|(k, _)| k == kind), "{kind} has a valid example");
    }
}

#[test]
fn a_refusal_names_the_field_and_says_what_is_wrong() {
    let cases = [
        ("pagerduty", json!({}), "config.routing_key", "required for a pagerduty channel"),
        ("pagerduty", json!({"routing_key": "x"}), "config.routing_key", "must be 32 characters of letters and digits"),
        (
            "pagerduty",
            json!({"routing_key": "0123456789abcdef0123456789ABCDEF", "extra": 1}),
            "config.extra",
            "not a field",
        ),
        (
            "email",
            json!({"to": ["ops@"], "from": "t@example.com", "host": "h"}),
            "config.to",
            "`ops@` is not an e-mail address",
        ),
        (
            "email",
            json!({"to": "a@b.c", "from": "t@example.com", "host": "h", "port": 0}),
            "config.port",
            "from 1 to 65535",
        ),
        ("ntfy", json!({"topic": "ops", "password": "p"}), "config.username", "required with config.password"),
        ("ntfy", json!({"topic": "ops", "token": "t", "username": "u", "password": "p"}), "config.token", "not both"),
        ("telegram", json!({"bot_token": "123456:ABC", "chat_id": 1.5}), "config.chat_id", "integer chat id"),
        (
            "pushover",
            json!({"token": "azGDORePK8gMaC0QOYAMyEEuzJnyUi", "user": "uQiRzpo4DXghDmr9QzzfQu27cmVRsG", "priority": 2}),
            "config.priority",
            "from -2 to 1",
        ),
        ("matrix", json!({"access_token": "t", "room_id": "#ops:example.org"}), "config.room_id", "is not a room id"),
        (
            "webhook",
            json!({"url": "https://e.com/", "headers": {"X-Telltale-Event": "x"}}),
            "config.headers",
            "set by telltale",
        ),
        (
            "webhook",
            json!({"url": "https://e.com/", "headers": {"Bad Name": "x"}}),
            "config.headers",
            "not a header name",
        ),
        ("slack", json!("https://hooks.slack.com/x"), "config", "must be a JSON object"),
        ("sms", json!({}), "kind", "`sms` is not a channel kind"),
    ];
    for (kind, config, field, words) in cases {
        let error = check_config(kind, &config).unwrap_err();
        assert_eq!(error.field, field, "{kind} {config}");
        assert!(error.message.contains(words), "{kind} {config}: {}", error.message);
        // Through the aggregate: refused, nothing decided.
        let refused = ClientAggregate::decide(&registered(), add(kind, config, vec![]), &ctx());
        assert!(matches!(refused, Err(ClientError::Invalid(m)) if m.starts_with(&format!("{field}: "))));
    }
}

#[test]
fn tags_are_recorded_with_the_channel() {
    let events = ClientAggregate::decide(
        &registered(),
        add("slack", json!({"url": "https://hooks.slack.com/x"}), vec!["db".into()]),
        &ctx(),
    )
    .unwrap();
    assert!(matches!(&events[0], ClientEvent::ChannelAdded(e) if e.tags == ["db"]));
    let too_long = ClientAggregate::decide(
        &registered(),
        add("slack", json!({"url": "https://hooks.slack.com/x"}), vec!["x".repeat(65)]),
        &ctx(),
    );
    assert!(matches!(too_long, Err(ClientError::Invalid(m)) if m.starts_with("tags: ")));
}

#[test]
fn a_channel_added_before_tags_existed_reads_as_untagged() {
    let stored = json!({"channel_id": Uuid::nil(), "name": "ops", "kind": "webhook",
                        "config": {"url": "http://x/"}, "at": "2026-01-01T00:00:00Z"});
    let event = <ClientEvent as telltale_domain::EventPayload>::decode("ChannelAdded", 1, &stored).unwrap();
    assert!(matches!(event, ClientEvent::ChannelAdded(e) if e.tags.is_empty()));
}

#[test]
fn every_secret_is_redacted_and_nothing_else() {
    for (kind, config) in valid() {
        let shown = redact_config(kind, &config);
        for secret in secrets(kind, &config) {
            assert!(!shown.to_string().contains(&secret), "{kind}: {secret} in {shown}");
        }
        for f in fields(kind).unwrap().iter().filter(|f| !f.secret) {
            let expected = match config.get(f.name) {
                Some(Value::String(url)) if matches!(f.ty, FieldType::Url) => Some(json!(redact_url_credentials(url))),
                other => other.cloned(),
            };
            assert_eq!(shown.get(f.name), expected.as_ref(), "{kind}.{} is not a secret", f.name);
        }
    }
    assert_eq!(
        redact_config("discord", &json!({"url": "https://discord.com/api/webhooks/1/tok", "username": "t"})),
        json!({"url": "https://discord.com/********", "username": "t"})
    );
    // A receiver that takes its credential in its URL: the query values and a password are
    // hidden, the rest shown.
    assert_eq!(
        redact_config("webhook", &json!({"url": "https://ops:pw@hooks.example.com:8443/in?token=abc&team=x#frag"})),
        json!({"url": "https://ops:********@hooks.example.com:8443/in?token=********&team=********#frag"})
    );
    assert_eq!(redact_url_credentials("http://h/x"), "http://h/x");
}

#[test]
fn defaults_are_the_vendors_endpoints() {
    let none = json!({});
    assert_eq!(config_str("pagerduty", &none, "api_url"), Some("https://events.pagerduty.com"));
    assert_eq!(config_str("opsgenie", &none, "api_url"), Some("https://api.opsgenie.com"));
    assert_eq!(config_str("ntfy", &none, "server"), Some("https://ntfy.sh"));
    assert_eq!(config_str("telegram", &none, "api_url"), Some("https://api.telegram.org"));
    assert_eq!(config_str("pushover", &none, "api_url"), Some("https://api.pushover.net"));
    assert_eq!(config_str("matrix", &none, "homeserver"), Some("https://matrix-client.matrix.org"));
    assert_eq!(
        config_str("pagerduty", &json!({"api_url": "http://127.0.0.1:9"}), "api_url"),
        Some("http://127.0.0.1:9")
    );
    assert_eq!(config_i64("ntfy", &none, "priority"), Some(4));
}

#[test]
fn a_tagged_channel_hears_only_monitors_with_one_of_its_tags() {
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(routes(&tags(&[]), &tags(&[])), "no tags: every monitor");
    assert!(routes(&tags(&[]), &tags(&["db"])));
    assert!(routes(&tags(&["db", "web"]), &tags(&["web"])));
    assert!(!routes(&tags(&["db"]), &tags(&["web"])));
    assert!(!routes(&tags(&["db"]), &tags(&[])), "an untagged monitor does not reach a tagged channel");
}
