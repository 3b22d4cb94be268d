//! Keys that rotate themselves, with real processes: `telltale ping` and `telltale run` (the
//! built binary) share one key file and talk to the real server on an injected clock.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde_json::Value;
use telltale::keys::KeyOptions;
use telltale_domain::client::{RotationPolicy, Scope};
use telltale_domain::span::Span;
use tokio::process::Command;

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_telltale");

fn agent(home: &Path, url: &str, key_file: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("TELLTALE_URL", url)
        .env("TELLTALE_KEY_FILE", key_file)
        .env_remove("TELLTALE_KEY")
        .env_remove("TELLTALE_CONFIG")
        .env_remove("TELLTALE_SPOOL_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Whatever an agent said that means a request did not go through.
fn failed(output: &Output) -> Option<String> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let bad = ["refused", "spooled", "lost", "not recorded", "cannot", "401", "429"];
    (!output.status.success() || bad.iter().any(|b| stderr.contains(b))).then(|| stderr.into_owned())
}

fn key_file_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_sharing_a_key_rotate_without_one_failed_request_and_end_on_one_successor() {
    let app = TestApp::spawn().await;
    app.create_monitor("shared", "1h", "1h").await;
    let options = KeyOptions {
        label: Some("three servers".into()),
        rotation: Some(RotationPolicy { every: Span::from_secs(60), overlap: Span::from_secs(30) }),
        ..KeyOptions::scopes(vec![Scope::Ingest])
    };
    let issued = app.app.issue_key_with("acme", options).await.unwrap();
    app.secrets.remember(&issued.token);
    let home = tempfile::tempdir().unwrap();
    let key_file: PathBuf = home.path().join("ingest.key");
    std::fs::write(&key_file, format!("{}\n", issued.token)).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A long job started with the first key; it finishes generations later.
    let release = home.path().join("release");
    let script = format!("while [ ! -e {} ]; do sleep 0.05; done", release.display());
    let long_run = agent(
        home.path(),
        &app.base,
        &key_file,
        &["run", "--monitor", "shared", "--run-id", "long", "--", "sh", "-c", &script],
    )
    .spawn()
    .unwrap();
    until("the long run started", || async {
        app.log_types("monitor:acme:shared").await.iter().any(|t| t == "RunStarted")
    })
    .await;

    const GENERATIONS: u64 = 4;
    let mut keys = vec![issued.token.clone()];
    let mut pings = 0;
    let mut stderr = String::new();
    for generation in 1..=GENERATIONS {
        app.advance(secs(61)).await;
        // Three processes at once: each sees the header, one rotates, the others find the file
        // already rewritten (or get the same successor from the server).
        let outputs = futures::future::join_all(
            (0..3).map(|_| agent(home.path(), &app.base, &key_file, &["ping", "shared"]).output()),
        )
        .await;
        let mut rewrote = 0;
        for output in outputs {
            let output = output.unwrap();
            stderr.push_str(&String::from_utf8_lossy(&output.stderr));
            assert_eq!(failed(&output), None, "generation {generation}");
            rewrote += usize::from(String::from_utf8_lossy(&output.stderr).contains("rotated the key in"));
            pings += 1;
        }
        assert_eq!(rewrote, 1, "one process rewrote the file; the others, under its lock, found it rewritten");
        let key = key_file_text(&key_file);
        app.secrets.remember(&key);
        assert!(!keys.contains(&key), "generation {generation} has a new key");
        keys.push(key);
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key file is written 0600");
        // The successor works and is not due.
        let output = agent(home.path(), &app.base, &key_file, &["ping", "shared"]).output().await.unwrap();
        assert_eq!(failed(&output), None);
        pings += 1;
    }
    std::fs::write(&release, "").unwrap();
    let long = long_run.wait_with_output().await.unwrap();
    assert_eq!(failed(&long), None, "the long run finished with the newest key");
    app.settle().await;

    let log = app.log().await;
    let beats = log.iter().filter(|e| e.stream_id == "monitor:acme:shared" && e.event_type == "HeartbeatReceived");
    assert_eq!(beats.count(), pings, "every ping was recorded");
    assert!(log.iter().any(|e| e.event_type == "RunCompleted"), "the long run's end was recorded");

    // All ended on one successor: the file holds the newest key of the line.
    let listed: Value = app.get("/v1/keys").await.json().await.unwrap();
    let line: Vec<&Value> =
        listed["keys"].as_array().unwrap().iter().filter(|k| k["lineage"] == issued.key_id).collect();
    let newest = line.iter().find(|k| k["successor"].is_null()).unwrap();
    assert_eq!(newest["generation"].as_u64(), Some(GENERATIONS));
    assert!(keys.last().unwrap().starts_with(&format!("tt_{}_", newest["id"].as_str().unwrap())));

    // The audit replay shows exactly one rotation per generation.
    let audit: Value = app.get(&format!("/v1/audit/keys?key_id={}", issued.key_id)).await.json().await.unwrap();
    let rotations: Vec<u64> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "rotated")
        .map(|e| e["generation"].as_u64().unwrap())
        .collect();
    assert_eq!(rotations, (1..=GENERATIONS).collect::<Vec<_>>(), "{audit}");
    assert!(
        audit["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "expired").count()
            >= GENERATIONS as usize - 1,
        "the predecessors expired: {audit}"
    );
    assert_no_secret_logged(&keys);
    for key in &keys {
        assert!(!stderr.contains(&key[20..]), "an agent printed a secret: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_given_in_the_environment_is_not_rewritten_but_its_successor_is_used_once_issued() {
    let app = TestApp::spawn().await;
    app.create_monitor("job", "1h", "1h").await;
    let options = KeyOptions {
        rotation: Some(RotationPolicy { every: Span::from_secs(60), overlap: Span::from_secs(600) }),
        ..KeyOptions::scopes(vec![Scope::Ingest])
    };
    let issued = app.app.issue_key_with("acme", options).await.unwrap();
    app.secrets.remember(&issued.token);
    let home = tempfile::tempdir().unwrap();
    let ping = || {
        let mut command = agent(home.path(), &app.base, Path::new("/nonexistent"), &["ping", "job"]);
        command.env_remove("TELLTALE_KEY_FILE").env("TELLTALE_KEY", &issued.token);
        command
    };
    app.advance(secs(60)).await;
    let due = ping().output().await.unwrap();
    let said = String::from_utf8_lossy(&due.stderr).into_owned();
    assert!(due.status.success(), "{said}");
    assert!(said.contains("telltale can only rotate a key it reads from a file"), "{said}");
    assert!(!app.log_types("client:acme").await.contains(&"KeyRotated".to_string()), "not rotated");

    // Once another holder rotated it, a process with the old key uses the successor.
    let (_, _, rotated) = {
        let response = app.post_as(&issued.token, "/v1/keys/rotate", serde_json::json!({})).await;
        (response.status(), (), response.json::<Value>().await.unwrap())
    };
    app.secrets.remember(rotated["key"].as_str().unwrap());
    let after = ping().output().await.unwrap();
    let said = String::from_utf8_lossy(&after.stderr).into_owned();
    assert!(after.status.success() && said.contains("using its successor for this run"), "{said}");
    assert!(!said.contains(&rotated["key"].as_str().unwrap()[20..]), "never printed");
    assert_eq!(app.log_types("client:acme").await.iter().filter(|t| *t == "KeyRotated").count(), 1);
}
