//! Where the agent finds its server, its key and its spool.
//!
//! Each setting comes from the first source that has it: a flag, the environment, the agent's
//! TOML file, a default. The file is `--config PATH`, else `TELLTALE_CONFIG`, else the first of
//! `$XDG_CONFIG_HOME/telltale/agent.toml` (or `~/.config/telltale/agent.toml`) and
//! `/etc/telltale/agent.toml` that exists. Unknown keys in it are ignored, so one file may serve
//! the server and the agent.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The flags `run`, `ping` and `spool` share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectionArgs {
    /// The telltale server [env: TELLTALE_URL] [default: http://127.0.0.1:8080]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// An API key with the `ingest` scope [env: TELLTALE_KEY]
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// A file holding the API key [env: TELLTALE_KEY_FILE]
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Where events wait that could not be delivered [env: TELLTALE_SPOOL_DIR]
    /// [default: $XDG_STATE_HOME/telltale/spool or ~/.local/state/telltale/spool]
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
}

/// An API key; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    pub fn new(key: impl Into<String>) -> Key {
        Key(key.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(…)")
    }
}

/// The agent's settings, with whatever went wrong while finding them.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub url: String,
    pub key: Option<Key>,
    /// The file the key was read from: rotation rewrites it. `None` for a key given by
    /// `--key`, `TELLTALE_KEY` or `key` in the file, which telltale cannot rewrite.
    pub key_file: Option<PathBuf>,
    pub spool_dir: PathBuf,
    /// The TOML file that was read, if any.
    pub file: Option<PathBuf>,
    /// Problems: an unreadable or invalid file, an unreadable key file. `ping` refuses to go on
    /// with any; `run` prints them and runs the command anyway.
    pub problems: Vec<String>,
}

impl AgentConfig {
    /// Where a missing key could have come from, for the error message.
    pub fn key_hint(&self) -> String {
        let file = match &self.file {
            Some(path) => format!("`key` or `key_file` in {}", path.display()),
            None => "`key` in ~/.config/telltale/agent.toml or /etc/telltale/agent.toml".to_string(),
        };
        format!("pass --key or --key-file, set TELLTALE_KEY or TELLTALE_KEY_FILE, or put {file}")
    }
}

/// The agent's part of the TOML file.
#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    url: Option<String>,
    key: Option<String>,
    key_file: Option<PathBuf>,
    spool_dir: Option<PathBuf>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

pub fn read_key_file(path: &Path, problems: &mut Vec<String>) -> Option<Key> {
    match std::fs::read_to_string(path) {
        Ok(text) => match non_empty(Some(text)) {
            Some(key) => Some(Key(key)),
            None => {
                problems.push(format!("the key file {} is empty", path.display()));
                None
            }
        },
        Err(e) => {
            problems.push(format!("cannot read the key file {}: {e}", path.display()));
            None
        }
    }
}

/// Resolves the settings. `config` is `--config` (or `TELLTALE_CONFIG`, which clap merges into
/// it); `env` reads an environment variable (injected so tests need not touch the process's).
pub fn resolve(args: &ConnectionArgs, config: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> AgentConfig {
    let mut problems = Vec::new();
    let env = |name: &str| non_empty(env(name));
    let path = match config {
        Some(path) => Some(path.to_path_buf()),
        None => default_files(&env).into_iter().find(|p| p.is_file()),
    };
    let file = match &path {
        None => FileConfig::default(),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).unwrap_or_else(|e| {
                problems.push(format!("{} is not valid TOML: {}", path.display(), e.message()));
                FileConfig::default()
            }),
            Err(e) => {
                problems.push(format!("cannot read {}: {e}", path.display()));
                FileConfig::default()
            }
        },
    };
    let base = path.as_deref().and_then(Path::parent).unwrap_or(Path::new("."));
    let relative = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

    let url = non_empty(args.url.clone())
        .or_else(|| env("TELLTALE_URL"))
        .or_else(|| non_empty(file.url.clone()))
        .unwrap_or_else(|| DEFAULT_URL.to_string());

    let from_file = |path: PathBuf, problems: &mut Vec<String>| (read_key_file(&path, problems), Some(path));
    let (key, key_file) = if let Some(key) = non_empty(args.key.clone()) {
        (Some(Key(key)), None)
    } else if let Some(path) = &args.key_file {
        from_file(path.clone(), &mut problems)
    } else if let Some(key) = env("TELLTALE_KEY") {
        (Some(Key(key)), None)
    } else if let Some(path) = env("TELLTALE_KEY_FILE") {
        from_file(PathBuf::from(path), &mut problems)
    } else if let Some(key) = non_empty(file.key.clone()) {
        (Some(Key(key)), None)
    } else if let Some(path) = file.key_file.clone().map(relative) {
        from_file(path, &mut problems)
    } else {
        (None, None)
    };

    let spool_dir = args
        .spool_dir
        .clone()
        .or_else(|| env("TELLTALE_SPOOL_DIR").map(PathBuf::from))
        .or_else(|| file.spool_dir.clone().map(relative))
        .unwrap_or_else(|| default_spool_dir(&env));

    AgentConfig { url, key, key_file, spool_dir, file: path, problems }
}

fn absolute(value: Option<String>) -> Option<PathBuf> {
    value.map(PathBuf::from).filter(|p| p.is_absolute())
}

fn default_files(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(dir) = absolute(env("XDG_CONFIG_HOME")).or_else(|| absolute(env("HOME")).map(|h| h.join(".config"))) {
        files.push(dir.join("telltale").join("agent.toml"));
    }
    files.push(PathBuf::from("/etc/telltale/agent.toml"));
    files
}

fn default_spool_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    absolute(env("XDG_STATE_HOME"))
        .or_else(|| absolute(env("HOME")).map(|h| h.join(".local").join("state")))
        .map(|dir| dir.join("telltale").join("spool"))
        .unwrap_or_else(|| {
            // SAFETY: getuid has no preconditions and cannot fail.
            let uid = unsafe { libc::getuid() };
            std::env::temp_dir().join(format!("telltale-spool-{uid}"))
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn flags_win_over_the_environment_which_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(&file, "url = \"http://file:1\"\nkey = \"file-key\"\nspool_dir = \"spool\"\n").unwrap();
        let env = env_of(&[("TELLTALE_URL", "http://env:1"), ("TELLTALE_KEY", "env-key")]);

        let config = resolve(&ConnectionArgs::default(), Some(&file), &env);
        assert_eq!(config.url, "http://env:1");
        assert_eq!(config.key.unwrap().expose(), "env-key");
        assert_eq!(config.spool_dir, dir.path().join("spool"), "relative to the file");
        assert!(config.problems.is_empty());

        let args =
            ConnectionArgs { url: Some("http://flag:1".into()), key: Some("flag-key".into()), ..Default::default() };
        let config = resolve(&args, Some(&file), &env);
        assert_eq!(config.url, "http://flag:1");
        assert_eq!(config.key.unwrap().expose(), "flag-key");

        let config = resolve(&ConnectionArgs::default(), Some(&file), &env_of(&[]));
        assert_eq!(config.url, "http://file:1");
        assert_eq!(config.key.unwrap().expose(), "file-key");
    }

    #[test]
    fn a_key_file_is_read_trimmed_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "  tt_secret\n").unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(&file, "key_file = \"key\"\nother = 1\n[notify]\ntimeout = \"1s\"\n").unwrap();
        let config = resolve(&ConnectionArgs::default(), Some(&file), &env_of(&[("XDG_STATE_HOME", "/state")]));
        assert_eq!(config.key.unwrap().expose(), "tt_secret");
        assert_eq!(config.url, DEFAULT_URL);
        assert_eq!(config.spool_dir, PathBuf::from("/state/telltale/spool"));
        assert!(config.problems.is_empty(), "{:?}", config.problems);
    }

    #[test]
    fn the_default_file_is_found_under_the_home_and_problems_are_reported() {
        let home = tempfile::tempdir().unwrap();
        let env = env_of(&[("HOME", home.path().to_str().unwrap())]);
        let config = resolve(&ConnectionArgs::default(), None, &env);
        if !Path::new("/etc/telltale/agent.toml").exists() {
            assert!(config.key.is_none());
        }
        assert_eq!(config.spool_dir, home.path().join(".local/state/telltale/spool"));

        let dir = home.path().join(".config/telltale");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("agent.toml"), "key = [").unwrap();
        let config = resolve(&ConnectionArgs::default(), None, &env);
        assert_eq!(config.file, Some(dir.join("agent.toml")));
        assert_eq!(config.problems.len(), 1, "{:?}", config.problems);

        let missing = home.path().join("nope.toml");
        let args = ConnectionArgs { key_file: Some(home.path().join("no-key")), ..Default::default() };
        let config = resolve(&args, Some(&missing), &env);
        assert_eq!(config.problems.len(), 2, "{:?}", config.problems);
        assert!(format!("{:?}", Key("x".into())).contains('…'));
    }
}
