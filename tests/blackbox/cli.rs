//! The administrator's command line, as a person at a terminal meets it: one `error: …` line
//! and a non-zero exit for every mistake, and nothing created or changed by one.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_telltale");

fn telltale(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("TELLTALE_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("TELLTALE_LOG", "warn")
        // Even where a developer keeps backtraces on, a mistake is one line, not a stack.
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

/// The whole of stderr is one line, `error: …`, containing `needle`; the exit code is 1.
fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line, no backtrace: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "`{needle}` in: {stderr}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn a_command_pointed_at_a_missing_database_says_so_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("typo.db");
    for args in [
        &["keys", "list", "--client", "default"][..],
        &["keys", "revoke", "--client", "default", "0123456789abcdef"],
        &["audit", "keys", "--client", "default"],
        &["clients", "list"],
        &["users", "list"],
        &["projections", "rebuild"],
        &["replay", "--monitor", "nightly"],
    ] {
        let out = telltale(&db, args);
        assert_one_line_error(&out, &format!("no telltale database at {}", db.display()));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "`telltale {}` left {left:?}", args.join(" "));
    }
}

#[test]
fn an_unknown_client_or_key_is_one_clear_line_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("telltale.db");
    // Registering is what may create the database.
    let created = telltale(&db, &["keys", "create", "--client", "acme", "--create-client"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));

    let out = telltale(&db, &["keys", "create", "--client", "nope"]);
    assert_one_line_error(&out, "no client `nope`; register it with `telltale clients create nope`");
    for args in [
        &["keys", "list", "--client", "nope"][..],
        &["keys", "revoke", "--client", "nope", "0123456789abcdef"],
        &["audit", "keys", "--client", "nope"],
    ] {
        assert_one_line_error(&telltale(&db, args), "no client `nope`");
    }
    let out = telltale(&db, &["keys", "revoke", "--client", "acme", "0123456789abcdef"]);
    assert_one_line_error(&out, "client `acme` has no key `0123456789abcdef`");
    assert_one_line_error(
        &telltale(&db, &["keys", "create", "--client", "acme", "--scope", "root"]),
        "unknown scope `root`",
    );

    // Nothing above registered a client or revoked the one key.
    let clients = telltale(&db, &["clients", "list"]);
    assert_eq!(String::from_utf8_lossy(&clients.stdout).trim(), "acme");
    let list = telltale(&db, &["keys", "list", "--client", "acme"]);
    let list = String::from_utf8_lossy(&list.stdout);
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.lines().nth(1).unwrap().contains("active"), "{list}");

    // Revoking twice: the second time says so, and changes nothing.
    let id = list.lines().nth(1).unwrap()[..16].to_string();
    let first = telltale(&db, &["keys", "revoke", &id, "--client", "acme"]);
    assert_eq!(String::from_utf8_lossy(&first.stdout).trim(), format!("revoked key {id} of client acme"));
    let second = telltale(&db, &["keys", "revoke", &id, "--client", "acme"]);
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("was already revoked, at "), "{second:?}");

    // An instant that is not one names the format it takes.
    let out = telltale(&db, &["audit", "keys", "--client", "acme", "--at", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`yesterday` is not an instant: give one in RFC 3339"));
}

#[test]
fn keys_list_shows_each_keys_rotation_period_overlap_and_when_it_falls_due() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("telltale.db");
    let plain = telltale(&db, &["keys", "create", "--client", "acme", "--create-client"]);
    assert!(plain.status.success());
    let rotating = telltale(&db, &["keys", "create", "--client", "acme", "--rotate-every", "30d", "--overlap", "1d"]);
    assert!(rotating.status.success(), "{}", String::from_utf8_lossy(&rotating.stderr));
    let token = String::from_utf8_lossy(&rotating.stdout).trim().to_string();
    let rotating_id = token.split('_').nth(1).unwrap().to_string();

    let out = telltale(&db, &["keys", "list", "--client", "acme"]);
    let list = String::from_utf8_lossy(&out.stdout);
    let header = list.lines().next().unwrap();
    assert!(header.contains("rotates") && header.contains("rotation due"), "{header}");
    let row = list.lines().find(|l| l.starts_with(&rotating_id)).expect("the rotating key is listed");
    assert!(row.contains("30d/1d"), "{row}");
    let due = (chrono::Utc::now() + chrono::Duration::days(30)).format("%Y-%m-%d").to_string();
    assert!(row.contains(&due), "due in 30 days ({due}): {row}");
    let other = list.lines().skip(1).find(|l| !l.starts_with(&rotating_id)).unwrap();
    assert!(!other.contains("30d"), "{other}");
    // No secret is ever listed.
    assert!(!list.contains(&token), "{list}");
}
