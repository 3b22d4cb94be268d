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
