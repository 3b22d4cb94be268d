//! Notification channels: the kinds telltale can deliver to, the configuration each takes (checked
//! before anything is stored, secrets marked so that they are never shown again), which monitors a
//! channel hears from (tags), and the one shape every channel is given: a [`Notification`].
//! Pure: the senders that speak each vendor's protocol live in the binary (`src/notify/`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::monitor::{MAX_TAG_LEN, MAX_TAGS};

/// Every channel kind, by the name the API takes.
pub const CHANNEL_KINDS: &[&str] = &[
    "webhook",
    "slack",
    "teams",
    "discord",
    "google_chat",
    "mattermost",
    "email",
    "pagerduty",
    "opsgenie",
    "ntfy",
    "telegram",
    "pushover",
    "matrix",
];

/// What shows instead of a secret.
pub const REDACTED: &str = "********";

/// What a configuration field holds.
#[derive(Debug, Clone, Copy)]
pub enum FieldType {
    /// An `http://` or `https://` URL.
    Url,
    /// A non-empty string of at most 2000 characters.
    Text,
    /// A string made only of these bytes, between `min` and `max` characters long.
    Token { min: usize, max: usize, allowed: fn(u8) -> bool, what: &'static str },
    /// An e-mail address, bare (`ops@example.com`) or named (`Ops <ops@example.com>`).
    Email,
    /// A non-empty list of e-mail addresses (a single string is taken as a list of one).
    EmailList,
    /// An integer in this range.
    Integer { min: i64, max: i64 },
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A Telegram chat: an integer id, or `@channelusername`.
    ChatId,
    /// An object of header names to string values.
    Headers,
}

/// One field of a kind's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
    /// Never shown again once stored (`GET /v1/channels` shows [`REDACTED`]).
    pub secret: bool,
    /// The value used when the field is absent (the vendor's own endpoint, for base URLs).
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

const fn field(name: &'static str, ty: FieldType, doc: &'static str) -> Field {
    Field { name, ty, required: false, secret: false, default: None, doc }
}

impl Field {
    const fn required(mut self) -> Field {
        self.required = true;
        self
    }
    const fn secret(mut self) -> Field {
        self.secret = true;
        self
    }
    const fn default(mut self, value: &'static str) -> Field {
        self.default = Some(value);
        self
    }
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}
fn topic_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}
fn bot_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-')
}
fn printable(b: u8) -> bool {
    b.is_ascii_graphic()
}

/// The fields of each kind, in the order the documentation lists them.
pub fn fields(kind: &str) -> Option<&'static [Field]> {
    use FieldType::*;
    const WEBHOOK: &[Field] = &[
        field("url", Url, "where the JSON POST goes").required(),
        field(
            "secret",
            Token { min: 16, max: 256, allowed: printable, what: "printable ASCII without spaces" },
            "key of the `X-Telltale-Signature` HMAC-SHA256; generated (and shown once) when absent",
        )
        .secret(),
        field("headers", Headers, "extra request headers, e.g. an `Authorization` the receiver wants").secret(),
    ];
    const SLACK: &[Field] =
        &[field("url", Url, "the incoming webhook URL (https://hooks.slack.com/services/…)").required().secret()];
    const TEAMS: &[Field] =
        &[field("url", Url, "the Workflows (or incoming webhook) URL that takes an Adaptive Card").required().secret()];
    const DISCORD: &[Field] = &[
        field("url", Url, "the webhook URL (https://discord.com/api/webhooks/{id}/{token})").required().secret(),
        field("username", Text, "the name the message is posted under"),
    ];
    const GOOGLE_CHAT: &[Field] = &[field(
        "url",
        Url,
        "the space's webhook URL (https://chat.googleapis.com/v1/spaces/…/messages?key=…&token=…)",
    )
    .required()
    .secret()];
    const MATTERMOST: &[Field] = &[
        field("url", Url, "the incoming webhook URL (https://mattermost.example.com/hooks/…)").required().secret(),
        field("channel", Text, "a channel to post to instead of the webhook's own"),
        field("username", Text, "the name the message is posted under, if the server allows it"),
    ];
    const EMAIL: &[Field] = &[
        field("to", EmailList, "recipients: a list of addresses").required(),
        field("from", Email, "the sender, e.g. `telltale <telltale@example.com>`").required(),
        field("host", Text, "the SMTP server").required(),
        field("port", Integer { min: 1, max: 65535 }, "default 587 for starttls, 465 for tls, 25 for none"),
        field(
            "security",
            OneOf(&["starttls", "tls", "none"]),
            "`starttls` (required STARTTLS), `tls` (implicit TLS) or `none` (plain, for a local relay)",
        )
        .default("starttls"),
        field("username", Text, "SMTP user, when the server wants authentication"),
        field("password", Text, "SMTP password").secret(),
    ];
    const PAGERDUTY: &[Field] = &[
        field(
            "routing_key",
            Token { min: 32, max: 32, allowed: alnum, what: "letters and digits" },
            "the Events API v2 integration key",
        )
        .required()
        .secret(),
        field("severity", OneOf(&["critical", "error", "warning", "info"]), "of triggered incidents")
            .default("critical"),
        field("api_url", Url, "the Events API base URL").default("https://events.pagerduty.com"),
    ];
    const OPSGENIE: &[Field] = &[
        field(
            "api_key",
            Token { min: 1, max: 200, allowed: printable, what: "printable ASCII" },
            "an API integration key",
        )
        .required()
        .secret(),
        field("priority", OneOf(&["P1", "P2", "P3", "P4", "P5"]), "of created alerts").default("P2"),
        field("api_url", Url, "the API base URL (https://api.eu.opsgenie.com for the EU instance)")
            .default("https://api.opsgenie.com"),
    ];
    const NTFY: &[Field] = &[
        field(
            "topic",
            Token { min: 1, max: 64, allowed: topic_byte, what: "letters, digits, '_' and '-'" },
            "the topic to publish to",
        )
        .required(),
        field("server", Url, "the ntfy server").default("https://ntfy.sh"),
        field("token", Text, "an access token (sent as `Authorization: Bearer`)").secret(),
        field("username", Text, "for basic authentication, with `password`"),
        field("password", Text, "for basic authentication").secret(),
        field("priority", Integer { min: 1, max: 5 }, "of alerts that open (resolutions are sent at 3)").default("4"),
    ];
    const TELEGRAM: &[Field] = &[
        field(
            "bot_token",
            Token { min: 10, max: 100, allowed: bot_token_byte, what: "the form 123456:ABC-DEF…" },
            "the bot's token from @BotFather",
        )
        .required()
        .secret(),
        field("chat_id", ChatId, "a chat id (an integer) or `@channelusername`").required(),
        field("message_thread_id", Integer { min: 1, max: i64::MAX }, "a topic of a forum supergroup"),
        field("api_url", Url, "the Bot API base URL").default("https://api.telegram.org"),
    ];
    const PUSHOVER: &[Field] = &[
        field(
            "token",
            Token { min: 30, max: 30, allowed: alnum, what: "letters and digits" },
            "the application's API token",
        )
        .required()
        .secret(),
        field("user", Token { min: 30, max: 30, allowed: alnum, what: "letters and digits" }, "the user or group key")
            .required()
            .secret(),
        field("device", Text, "send to this device only"),
        field("priority", Integer { min: -2, max: 1 }, "of alerts that open (resolutions are sent at 0)").default("1"),
        field("sound", Text, "a sound name the Pushover clients know"),
        field("api_url", Url, "the API base URL").default("https://api.pushover.net"),
    ];
    const MATRIX: &[Field] = &[
        field("homeserver", Url, "the homeserver's client-server API base URL")
            .default("https://matrix-client.matrix.org"),
        field("access_token", Text, "an access token of the user that posts").required().secret(),
        field("room_id", Text, "the room's id, e.g. `!abcdef:matrix.org` (not an alias)").required(),
    ];
    Some(match kind {
        "webhook" => WEBHOOK,
        "slack" => SLACK,
        "teams" => TEAMS,
        "discord" => DISCORD,
        "google_chat" => GOOGLE_CHAT,
        "mattermost" => MATTERMOST,
        "email" => EMAIL,
        "pagerduty" => PAGERDUTY,
        "opsgenie" => OPSGENIE,
        "ntfy" => NTFY,
        "telegram" => TELEGRAM,
        "pushover" => PUSHOVER,
        "matrix" => MATRIX,
        _ => return None,
    })
}

/// Why a channel's configuration was refused: the field (`config.routing_key`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn refuse(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError { field: field.into(), message: message.into() }
}

/// Checks a URL the way telltale will use it: http or https, a host, no whitespace.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{}` must start with http:// or https://", shorten(url)))?;
    if rest.is_empty() || rest.starts_with('/') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{}` is not a valid URL", shorten(url)));
    }
    Ok(())
}

/// The address inside `Name <addr>`, or the whole string.
pub fn email_address(value: &str) -> &str {
    match (value.rfind('<'), value.ends_with('>')) {
        (Some(open), true) => &value[open + 1..value.len() - 1],
        _ => value,
    }
}

fn check_email(value: &str) -> Result<(), String> {
    let addr = email_address(value.trim());
    let ok = match addr.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !addr.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '<' || c == '>')
        }
        None => false,
    };
    if ok { Ok(()) } else { Err(format!("`{}` is not an e-mail address", shorten(value))) }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 80 { format!("{}…", s.chars().take(80).collect::<String>()) } else { s.to_string() }
}

fn check_value(f: &Field, value: &Value) -> Result<(), String> {
    let text = |v: &Value| -> Result<String, String> {
        match v {
            Value::String(s) if s.trim().is_empty() => Err("must not be empty".into()),
            Value::String(s) if s.chars().count() > 2000 => Err("is longer than 2000 characters".into()),
            Value::String(s) => Ok(s.clone()),
            _ => Err("must be a string".into()),
        }
    };
    match f.ty {
        FieldType::Url => check_url(&text(value)?),
        FieldType::Text => text(value).map(|_| ()),
        FieldType::Token { min, max, allowed, what } => {
            let s = text(value)?;
            if s.len() < min || s.len() > max || !s.bytes().all(allowed) {
                let size = if min == max { format!("{min} characters") } else { format!("{min} to {max} characters") };
                Err(format!("must be {size} of {what}"))
            } else {
                Ok(())
            }
        }
        FieldType::Email => check_email(&text(value)?),
        FieldType::EmailList => {
            let list = match value {
                Value::String(_) => vec![value.clone()],
                Value::Array(items) if !items.is_empty() && items.len() <= 50 => items.clone(),
                Value::Array(_) => return Err("must list 1 to 50 addresses".into()),
                _ => return Err("must be a list of e-mail addresses".into()),
            };
            list.iter().try_for_each(|v| check_email(&text(v)?))
        }
        FieldType::Integer { min, max } => match value.as_i64() {
            Some(n) if n >= min && n <= max => Ok(()),
            _ => Err(format!("must be an integer from {min} to {max}")),
        },
        FieldType::OneOf(options) => match value.as_str() {
            Some(s) if options.contains(&s) => Ok(()),
            _ => Err(format!("must be one of {}", options.join(", "))),
        },
        FieldType::ChatId => match value {
            Value::Number(n) if n.is_i64() => Ok(()),
            Value::String(s) if s.parse::<i64>().is_ok() => Ok(()),
            Value::String(s)
                if s.len() > 1
                    && s.starts_with('@')
                    && s[1..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                Ok(())
            }
            _ => Err("must be an integer chat id or `@channelusername`".into()),
        },
        FieldType::Headers => {
            let Some(headers) = value.as_object() else {
                return Err("must be an object of header names to values".into());
            };
            if headers.len() > 20 {
                return Err("may hold at most 20 headers".into());
            }
            for (name, v) in headers {
                let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
                if name.is_empty() || !name.bytes().all(token) {
                    return Err(format!("`{}` is not a header name", shorten(name)));
                }
                let lower = name.to_ascii_lowercase();
                if matches!(lower.as_str(), "content-type" | "content-length" | "host" | "idempotency-key")
                    || lower.starts_with("x-telltale-")
                {
                    return Err(format!("`{name}` is set by telltale and cannot be changed"));
                }
                match v.as_str() {
                    Some(s) if s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) => {}
                    _ => return Err(format!("the value of `{name}` must be a string of printable ASCII")),
                }
            }
            Ok(())
        }
    }
}

/// Checks a channel's kind and configuration. The error names the field: `config.routing_key`.
pub fn check_config(kind: &str, config: &Value) -> Result<(), ConfigError> {
    let Some(spec) = fields(kind) else {
        return Err(refuse(
            "kind",
            format!("`{}` is not a channel kind; the kinds are {}", shorten(kind), CHANNEL_KINDS.join(", ")),
        ));
    };
    let Some(obj) = config.as_object() else {
        return Err(refuse("config", "must be a JSON object"));
    };
    for name in obj.keys() {
        if !spec.iter().any(|f| f.name == name) {
            let known: Vec<&str> = spec.iter().map(|f| f.name).collect();
            return Err(refuse(
                format!("config.{name}"),
                format!("not a field of a {kind} channel; its fields are {}", known.join(", ")),
            ));
        }
    }
    for f in spec {
        match obj.get(f.name) {
            None | Some(Value::Null) if f.required => {
                return Err(refuse(format!("config.{}", f.name), format!("required for a {kind} channel ({})", f.doc)));
            }
            None | Some(Value::Null) => {}
            Some(value) => check_value(f, value).map_err(|m| refuse(format!("config.{}", f.name), m))?,
        }
    }
    match kind {
        "ntfy" if obj.contains_key("password") != obj.contains_key("username") => {
            let (missing, given) =
                if obj.contains_key("password") { ("username", "password") } else { ("password", "username") };
            Err(refuse(format!("config.{missing}"), format!("required with config.{given}")))
        }
        "ntfy" if obj.contains_key("token") && obj.contains_key("username") => {
            Err(refuse("config.token", "give either a token or a username and password, not both"))
        }
        "email" if obj.contains_key("password") && !obj.contains_key("username") => {
            Err(refuse("config.username", "required with config.password"))
        }
        "matrix" => {
            let room = obj.get("room_id").and_then(Value::as_str).unwrap_or_default();
            if room.starts_with('!') && room.len() > 3 && room[1..].contains(':') {
                Ok(())
            } else {
                Err(refuse(
                    "config.room_id",
                    format!(
                        "`{}` is not a room id: it starts with `!` and names its server (`!abc:example.org`); find it in the room's settings",
                        shorten(room)
                    ),
                ))
            }
        }
        _ => Ok(()),
    }
}

/// The configuration as it may be shown: every secret replaced by [`REDACTED`] (a URL that is
/// a secret keeps its scheme and host, so that one can still tell which service it is).
pub fn redact_config(kind: &str, config: &Value) -> Value {
    let (Some(spec), Some(obj)) = (fields(kind), config.as_object()) else {
        return Value::Object(Map::new());
    };
    let out = obj
        .iter()
        .map(|(name, value)| {
            let field = spec.iter().find(|f| f.name == name);
            let secret = field.is_none_or(|f| f.secret);
            let url = value.as_str().filter(|_| field.is_some_and(|f| matches!(f.ty, FieldType::Url)));
            let shown = if let (false, Some(url)) = (secret, url) {
                // A receiver's own credential in its URL (`?token=…`, `user:pass@`) is hidden.
                Value::String(redact_url_credentials(url))
            } else if !secret {
                value.clone()
            } else if let Some(url) = url {
                // A URL that is itself the secret (Slack's, Discord's): its host says which service.
                Value::String(redact_url(url))
            } else if let Value::Object(headers) = value {
                Value::Object(headers.keys().map(|k| (k.clone(), Value::String(REDACTED.into()))).collect())
            } else {
                Value::String(REDACTED.into())
            };
            (name.clone(), shown)
        })
        .collect();
    Value::Object(out)
}

/// The credentials a URL may carry, hidden: a password in its user info and every query value
/// (`https://u:p@h/x?token=abc&v=2` → `https://u:********@h/x?token=********&v=********`).
pub fn redact_url_credentials(url: &str) -> String {
    let (head, fragment) = match url.split_once('#') {
        Some((head, fragment)) => (head, Some(fragment)),
        None => (url, None),
    };
    let (base, query) = match head.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (head, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((user, host)) => match user.split_once(':') {
                    Some((name, _)) => format!("{name}:{REDACTED}@{host}"),
                    None => format!("{user}@{host}"),
                },
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => base.to_string(),
    };
    let mut out = base;
    if let Some(query) = query {
        let parts: Vec<String> = query
            .split('&')
            .map(|part| match part.split_once('=') {
                Some((k, _)) => format!("{k}={REDACTED}"),
                None => part.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&parts.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// `https://hooks.slack.com/services/T0/B0/XXXX` → `https://hooks.slack.com/********`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}/{REDACTED}")
}

/// Every secret value of a configuration, so that a caller can make sure none is ever printed.
pub fn secrets(kind: &str, config: &Value) -> Vec<String> {
    let (Some(spec), Some(obj)) = (fields(kind), config.as_object()) else { return vec![] };
    let mut out = Vec::new();
    for f in spec.iter().filter(|f| f.secret) {
        match obj.get(f.name) {
            Some(Value::String(s)) => out.push(s.clone()),
            Some(Value::Object(headers)) => {
                out.extend(headers.values().filter_map(Value::as_str).map(str::to_string));
            }
            _ => {}
        }
    }
    out
}

/// A string field of a configuration, or its default.
pub fn config_str<'a>(kind: &str, config: &'a Value, name: &str) -> Option<&'a str> {
    match config.get(name).and_then(Value::as_str) {
        Some(s) => Some(s),
        None => fields(kind)?.iter().find(|f| f.name == name)?.default,
    }
}

/// An integer field of a configuration, or its default.
pub fn config_i64(kind: &str, config: &Value, name: &str) -> Option<i64> {
    match config.get(name).and_then(Value::as_i64) {
        Some(n) => Some(n),
        None => fields(kind)?.iter().find(|f| f.name == name)?.default?.parse().ok(),
    }
}

/// Checks a channel's tags: at most [`MAX_TAGS`], each 1 to [`MAX_TAG_LEN`] characters.
pub fn check_tags(tags: &[String]) -> Result<(), ConfigError> {
    if tags.len() > MAX_TAGS {
        return Err(refuse("tags", format!("a channel has at most {MAX_TAGS} tags")));
    }
    if let Some(tag) = tags.iter().find(|t| t.trim().is_empty() || t.chars().count() > MAX_TAG_LEN) {
        return Err(refuse("tags", format!("tag `{}` must have 1 to {MAX_TAG_LEN} characters", shorten(tag))));
    }
    Ok(())
}

/// Whether a channel with `channel_tags` hears from a monitor with `monitor_tags`: a channel
/// without tags hears every monitor of its client; one with tags only monitors that carry one.
pub fn routes(channel_tags: &[String], monitor_tags: &[String]) -> bool {
    channel_tags.is_empty() || channel_tags.iter().any(|t| monitor_tags.contains(t))
}

// ---- the notification every channel is given ---------------------------------------------

/// RFC 3339 with microseconds, as every time in the webhook payload has been written.
pub mod micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;
        pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(s) => DateTime::parse_from_rfc3339(&s)
                    .map(|t| Some(t.with_timezone(&Utc)))
                    .map_err(serde::de::Error::custom),
                None => Ok(None),
            }
        }
    }
}

/// The last thing a monitor's process sent before a notification: a heartbeat or a run event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastEvent {
    /// `heartbeat`, `started`, `running`, `completed` or `failed`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "micros")]
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// The event's message, or the last lines of a finished run's output (at most 500 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What every channel is given: one transition of one alert, for one channel. The generic
/// webhook posts exactly this (plus whatever newer transitions add); every other kind renders
/// it in its vendor's format. New transitions need no change in any channel: each reads
/// `transition` and `state` generically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The idempotency key: one per (alert, transition, channel), the same on every attempt.
    pub notification_id: Uuid,
    /// `opened`, `resolved`, and whatever transitions the alert policy adds.
    pub transition: String,
    pub alert_id: Uuid,
    pub client: String,
    /// The monitor's slug; for a host alert `host:<host>`.
    pub monitor: String,
    #[serde(default)]
    pub monitor_name: Option<String>,
    /// `monitor`, or `host` for a host alert (most of a host's monitors fell silent together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The host: of a host alert, or the monitor's own when it is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A host alert's silent monitors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitors: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// `missed`, `failed`, `timed_out`, …
    pub cause: String,
    /// The alert's state after the transition: `open` or `resolved`.
    pub state: String,
    /// What happened, in one sentence.
    pub message: String,
    #[serde(with = "micros")]
    pub opened_at: DateTime<Utc>,
    #[serde(default, with = "micros::option")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// How long the alert lasted, for a resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// The monitor's last signal before this transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<LastEvent>,
    /// The monitor's page on the dashboard (`public_url`).
    #[serde(default)]
    pub link: String,
    /// Which attempt this is, from 1.
    #[serde(default)]
    pub attempt: u32,
    /// When this attempt was sent.
    #[serde(default, with = "micros::option")]
    pub sent_at: Option<DateTime<Utc>>,
    /// For a `reminder`: which one, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder: Option<u32>,
    /// For `escalated`: the channels it was escalated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_to: Option<Vec<String>>,
    /// For `acknowledged`: who took it, and what they said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Notification {
    pub fn is_resolution(&self) -> bool {
        self.state == "resolved"
    }

    /// Whether this is a host alert's notification.
    pub fn is_host(&self) -> bool {
        self.kind.as_deref() == Some("host")
    }

    /// The monitor as people call it: its name, else its slug.
    pub fn monitor_label(&self) -> &str {
        self.monitor_name.as_deref().filter(|n| !n.trim().is_empty()).unwrap_or(&self.monitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_has_fields() {
        for kind in CHANNEL_KINDS {
            assert!(fields(kind).is_some(), "{kind}");
        }
        assert!(fields("carrier-pigeon").is_none());
    }

    #[test]
    fn redacted_urls_keep_their_host() {
        assert_eq!(redact_url("https://hooks.slack.com/services/T0/B0/XX"), "https://hooks.slack.com/********");
        assert_eq!(redact_url("https://user:pw@example.com?x=1"), "https://example.com/********");
    }

    #[test]
    fn an_unknown_config_field_is_named() {
        let e = check_config("pagerduty", &json!({"routingkey": "x"})).unwrap_err();
        assert_eq!(e.field, "config.routingkey");
    }
}
