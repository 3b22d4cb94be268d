//! Configuration, layered: built-in defaults, then an optional TOML file, then `TELLTALE_*`
//! environment variables and command-line flags (clap merges those two, flags first).

use std::path::Path;

use serde::Deserialize;
use telltale_domain::span::Span;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/telltale.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://path/to/file.db`.
    pub database_url: String,
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// The address people reach telltale at, used for links in notifications. Defaults to
    /// `http://<listen>`.
    pub public_url: Option<String>,
    pub notify: NotifyConfig,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    pub limits: LimitsConfig,
}

/// Rate limits and lock-outs (`[limits]` in the file).
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Requests one API key may make per second, sustained.
    pub key_requests_per_second: f64,
    /// Requests one API key may make at once.
    pub key_burst: u32,
    /// Wrong secrets for one key id from one address before that address is locked out of it.
    pub key_failures_before_lockout: u32,
    pub key_lockout: Span,
    /// Sign-in attempts one address may make per minute.
    pub signin_attempts_per_minute: u32,
    /// Wrong passwords for one account (within the lock-out time) before it is locked.
    pub signin_failures_before_lockout: u32,
    pub signin_lockout: Span,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            key_requests_per_second: 100.0,
            key_burst: 2000,
            key_failures_before_lockout: 10,
            key_lockout: Span::from_secs(15 * 60),
            signin_attempts_per_minute: 10,
            signin_failures_before_lockout: 5,
            signin_lockout: Span::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// How long one delivery attempt may take.
    pub timeout: Span,
    /// The longest wait between two attempts of one notification.
    pub max_backoff: Span,
    /// How long after its transition a notification that keeps failing is given up on.
    pub give_up_after: Span,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            timeout: Span::from_secs(10),
            max_backoff: Span::from_secs(300),
            give_up_after: Span::from_secs(24 * 3600),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: DEFAULT_DATABASE_URL.to_string(),
            listen: DEFAULT_LISTEN.to_string(),
            public_url: None,
            notify: NotifyConfig::default(),
            max_body_bytes: 512 * 1024,
            limits: LimitsConfig::default(),
        }
    }
}

/// The TOML file's shape. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub listen: Option<String>,
    pub public_url: Option<String>,
    #[serde(default)]
    pub notify: FileNotify,
    #[serde(default)]
    pub limits: FileLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub key_requests_per_second: Option<f64>,
    pub key_burst: Option<u32>,
    pub key_failures_before_lockout: Option<u32>,
    pub key_lockout: Option<String>,
    pub signin_attempts_per_minute: Option<u32>,
    pub signin_failures_before_lockout: Option<u32>,
    pub signin_lockout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNotify {
    pub timeout: Option<String>,
    pub max_backoff: Option<String>,
    pub give_up_after: Option<String>,
}

/// Values given on the command line or in the environment; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub listen: Option<String>,
    pub public_url: Option<String>,
}

impl Config {
    pub fn load(file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Config> {
        let mut config = Config::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read the configuration file {}: {e}", path.display()))?;
            let parsed: FileConfig =
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("{} is not valid: {e}", path.display()))?;
            config.apply_file(parsed)?;
        }
        if let Some(v) = overrides.database_url {
            config.database_url = v;
        }
        if let Some(v) = overrides.listen {
            config.listen = v;
        }
        if let Some(v) = overrides.public_url {
            config.public_url = Some(v);
        }
        Ok(config)
    }

    fn apply_file(&mut self, file: FileConfig) -> anyhow::Result<()> {
        if let Some(v) = file.database_url {
            self.database_url = v;
        }
        if let Some(v) = file.listen {
            self.listen = v;
        }
        if let Some(v) = file.public_url {
            self.public_url = Some(v);
        }
        let span = |key: &str, v: &str| Span::parse(v).map_err(|e| anyhow::anyhow!("notify.{key}: {e}"));
        if let Some(v) = file.notify.timeout {
            self.notify.timeout = span("timeout", &v)?;
        }
        if let Some(v) = file.notify.max_backoff {
            self.notify.max_backoff = span("max_backoff", &v)?;
        }
        if let Some(v) = file.notify.give_up_after {
            self.notify.give_up_after = span("give_up_after", &v)?;
        }
        let limits = file.limits;
        let l = &mut self.limits;
        if let Some(v) = limits.key_requests_per_second {
            anyhow::ensure!(v > 0.0, "limits.key_requests_per_second must be more than 0");
            l.key_requests_per_second = v;
        }
        if let Some(v) = limits.key_burst {
            l.key_burst = v.max(1);
        }
        if let Some(v) = limits.key_failures_before_lockout {
            l.key_failures_before_lockout = v.max(1);
        }
        if let Some(v) = limits.signin_attempts_per_minute {
            l.signin_attempts_per_minute = v.max(1);
        }
        if let Some(v) = limits.signin_failures_before_lockout {
            l.signin_failures_before_lockout = v.max(1);
        }
        let span = |key: &str, v: &str| Span::parse(v).map_err(|e| anyhow::anyhow!("limits.{key}: {e}"));
        if let Some(v) = limits.key_lockout {
            l.key_lockout = span("key_lockout", &v)?;
        }
        if let Some(v) = limits.signin_lockout {
            l.signin_lockout = span("signin_lockout", &v)?;
        }
        Ok(())
    }

    /// The base URL for links, given the address actually bound.
    pub fn public_url_for(&self, bound: std::net::SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{bound}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("telltale.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\ndatabase_url = \"sqlite://x.db\"\n[notify]\nmax_backoff = \"1m\"\n",
        )
        .unwrap();
        let config =
            Config::load(Some(&path), Overrides { listen: Some("127.0.0.1:1".into()), ..Overrides::default() })
                .unwrap();
        assert_eq!(config.listen, "127.0.0.1:1");
        assert_eq!(config.database_url, "sqlite://x.db");
        assert_eq!(config.notify.max_backoff, Span::from_secs(60));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("telltale.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        assert!(Config::load(Some(&path), Overrides::default()).is_err());
    }
}
