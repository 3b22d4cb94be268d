//! Names that appear in URLs and stream ids: monitor slugs and client names.

use crate::MAX_NAME_LEN;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} `{value}` is longer than {max} characters")]
    TooLong { what: &'static str, value: String, max: usize },
    #[error(
        "{what} `{value}` may only contain lowercase letters, digits, '-', '_', '.' and '@', and must start with a letter or digit"
    )]
    BadCharacters { what: &'static str, value: String },
}

fn validate(what: &'static str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { what });
    }
    if value.chars().count() > MAX_NAME_LEN {
        return Err(NameError::TooLong { what, value: value.chars().take(80).collect(), max: MAX_NAME_LEN });
    }
    let first_ok = value.as_bytes()[0].is_ascii_lowercase() || value.as_bytes()[0].is_ascii_digit();
    let rest_ok =
        value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if !first_ok || !rest_ok {
        return Err(NameError::BadCharacters { what, value: value.chars().take(80).collect() });
    }
    Ok(())
}

/// A monitor's slug, unique within its client: `nightly-sync`, `log-rotate@web-3`.
pub fn validate_slug(slug: &str) -> Result<(), NameError> {
    validate("a monitor slug", slug)
}

/// A client's name: `default`, `acme`.
pub fn validate_client_name(name: &str) -> Result<(), NameError> {
    validate("a client name", name)
}

/// Stream ids. `:` never appears in a slug or a client name, so these never collide.
pub mod streams {
    pub const SYSTEM: &str = "system";

    pub fn monitor(client: &str, slug: &str) -> String {
        format!("monitor:{client}:{slug}")
    }
    pub fn client(client: &str) -> String {
        format!("client:{client}")
    }
    pub fn notifications(client: &str) -> String {
        format!("notify:{client}")
    }
    /// A host of a client: `host:acme:web-1`. A host name may hold any character, `:` too;
    /// the client name never does, so the first `:` after the prefix ends it.
    pub fn host(client: &str, host: &str) -> String {
        format!("host:{client}:{host}")
    }
    /// (client, host) of a host stream id.
    pub fn parse_host(stream: &str) -> Option<(&str, &str)> {
        stream.strip_prefix("host:")?.split_once(':')
    }
    /// (client, slug) of a monitor stream id.
    pub fn parse_monitor(stream: &str) -> Option<(&str, &str)> {
        stream.strip_prefix("monitor:")?.split_once(':')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_slugs() {
        for ok in ["nightly-sync", "log-rotate@web-3", "a", "backup_db.v2", "0day"] {
            assert_eq!(validate_slug(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_slugs() {
        for bad in ["", "Nightly", "-x", "with space", "a/b", "é", "x:y", &"a".repeat(65)] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stream_ids_round_trip() {
        let s = streams::monitor("acme", "log-rotate@web-3");
        assert_eq!(streams::parse_monitor(&s), Some(("acme", "log-rotate@web-3")));
        assert_eq!(streams::parse_monitor("client:acme"), None);
        let h = streams::host("acme", "db:5432 (eu)");
        assert_eq!(streams::parse_host(&h), Some(("acme", "db:5432 (eu)")));
        assert_eq!(streams::parse_host(&s), None);
    }
}
