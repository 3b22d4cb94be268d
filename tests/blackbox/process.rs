//! End to end with real processes: the `telltale` binary, a shell loop that beats with curl,
//! a webhook receiver on loopback, and real time.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_telltale");

/// A `telltale serve` process.
struct Server {
    child: Child,
    base: String,
    port: u16,
}

fn db_url(dir: &Path) -> String {
    format!("sqlite://{}/telltale.db", dir.display())
}

impl Server {
    fn start(dir: &Path, port: u16) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--no-bootstrap"])
            .env("TELLTALE_DATABASE_URL", db_url(dir))
            .env("TELLTALE_LISTEN", format!("127.0.0.1:{port}"))
            .env("TELLTALE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("telltale starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let base = first.trim().rsplit(' ').next().unwrap().to_string();
        assert!(base.starts_with("http://127.0.0.1:"), "unexpected first line: {first}");
        let port = base.rsplit(':').next().unwrap().parse().unwrap();
        Server { child, base, port }
    }

    fn signal(&mut self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli_key(dir: &Path, client: &str) -> String {
    let out = Command::new(BIN)
        .args(["keys", "create", "--client", client, "--create-client"])
        .env("TELLTALE_DATABASE_URL", db_url(dir))
        .env("TELLTALE_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout.lines().last().expect("the key is on the last line").trim().to_string()
}

/// `sh` beating every second with curl; each HTTP status is appended to `log`.
struct Beater(Child);

impl Beater {
    fn start(url: &str, key: &str, log: &Path) -> Beater {
        let script = r#"while true; do
            code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $KEY" "$URL")
            echo "$code" >> "$LOG"
            sleep 1
        done"#;
        let child = Command::new("sh")
            .args(["-c", script])
            .env("URL", url)
            .env("KEY", key)
            .env("LOG", log)
            .process_group(0)
            .spawn()
            .expect("sh and curl are installed");
        Beater(child)
    }

    fn kill(&mut self) {
        let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{}", self.0.id())]).status();
        let _ = self.0.wait();
    }
}

impl Drop for Beater {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn json_of(http: &reqwest::Client, url: &str, key: &str) -> Value {
    http.get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap()
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(log: &Path, code: &str) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.trim() == code).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_is_alerted_once_within_seconds_and_its_return_resolves_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), 0);
    let key = cli_key(dir.path(), "acme");
    let http = http_client();
    let mut receiver = Receiver::start().await;
    let post =
        |path: &str, body: Value| http.post(format!("{}{path}", server.base)).bearer_auth(&key).json(&body).send();
    assert!(
        post("/v1/channels", json!({"name": "ops", "kind": "webhook", "config": {"url": receiver.url}}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let created =
        post("/v1/monitors", json!({"slug": "cron-job", "schedule": {"every": "2s"}, "grace": "1s"})).await.unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);

    let beat_url = format!("{}/v1/monitors/cron-job/heartbeat", server.base);
    let log = dir.path().join("beats.log");
    let mut beater = Beater::start(&beat_url, &key, &log);
    let monitor_url = format!("{}/v1/monitors/cron-job", server.base);
    wait_for("three beats", Duration::from_secs(15), async || count(&log, "200") >= 3).await;
    beater.kill();

    let opened = receiver.next(Duration::from_secs(10)).await.expect("an alert opens");
    let received_at = Utc::now();
    assert_eq!(opened.body["transition"], "opened");
    let monitor = json_of(&http, &monitor_url, &key).await;
    let last_beat: DateTime<Utc> = monitor["last_heartbeat_at"].as_str().unwrap().parse().unwrap();
    let latency = received_at - last_beat;
    eprintln!("alert received {} ms after the last beat", latency.num_milliseconds());
    assert!(latency < chrono::TimeDelta::seconds(4), "{latency}");
    assert_eq!(monitor["status"], "down");

    let beater = Beater::start(&beat_url, &key, &log);
    let resolved = receiver.next(Duration::from_secs(10)).await.expect("the alert resolves");
    assert_eq!(resolved.body["transition"], "resolved");
    assert_eq!(resolved.body["alert_id"], opened.body["alert_id"]);
    // Three more periods of steady beats: nothing else arrives.
    let beats = count(&log, "200");
    wait_for("more beats", Duration::from_secs(15), async || count(&log, "200") >= beats + 3).await;
    drop(beater);
    assert!(receiver.drain().is_empty(), "exactly one opening and one recovery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_telltale_between_beats_loses_nothing_and_alerts_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), 0);
    let port = server.port;
    let key = cli_key(dir.path(), "acme");
    let http = http_client();
    let mut receiver = Receiver::start().await;
    for (path, body) in [
        ("/v1/channels", json!({"name": "ops", "kind": "webhook", "config": {"url": receiver.url}})),
        ("/v1/monitors", json!({"slug": "steady", "schedule": {"every": "2s"}, "grace": "1s"})),
    ] {
        let response = http.post(format!("{}{path}", server.base)).bearer_auth(&key).json(&body).send().await.unwrap();
        assert!(response.status().is_success());
    }
    let log = dir.path().join("beats.log");
    let beater = Beater::start(&format!("{}/v1/monitors/steady/heartbeat", server.base), &key, &log);
    wait_for("beats", Duration::from_secs(15), async || count(&log, "200") >= 2).await;

    // A clean stop, then a crash: each time telltale comes back on the same port at once.
    for signal in ["-TERM", "-KILL"] {
        let before = count(&log, "200");
        wait_for("a beat", Duration::from_secs(5), async || count(&log, "200") > before).await;
        server.signal(signal);
        server = Server::start(dir.path(), port);
        let now = count(&log, "200");
        wait_for("beats after the restart", Duration::from_secs(15), async || count(&log, "200") >= now + 3).await;
    }
    drop(beater);

    let ok = count(&log, "200");
    let history: Value =
        json_of(&http, &format!("{}/v1/monitors/steady/events?type=HeartbeatReceived&limit=500", server.base), &key)
            .await;
    assert_eq!(history["events"].as_array().unwrap().len(), ok, "every acknowledged beat is in the log, once");
    let alerts: Value = json_of(&http, &format!("{}/v1/alerts?state=all", server.base), &key).await;
    assert!(alerts["alerts"].as_array().unwrap().is_empty(), "no alert caused by the restarts: {alerts}");
    assert!(receiver.drain().is_empty());

    // Detection is a function of what was recorded: once the silence after the last beat has
    // become an alert, replaying this history, clean stop and crash included, derives exactly
    // what the live servers derived.
    let monitor_url = format!("{}/v1/monitors/steady", server.base);
    wait_for("the silence to alert", Duration::from_secs(15), async || {
        json_of(&http, &monitor_url, &key).await["status"] == "down"
    })
    .await;
    let report: Value = http
        .post(format!("{}/v1/monitors/steady/replay", server.base))
        .bearer_auth(&key)
        .json(&json!({"to": chrono::Utc::now()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["identical"], true, "{report}");
    assert!(report["inputs"].as_u64().unwrap() as usize > ok, "{report}");
    assert_eq!(report["recorded_alerts"], 1, "{report}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c31_a_ping_answered_200_survives_a_kill_right_after_it() {
    // Send a ping, get 200, kill the server at once (SIGKILL: no clean stop), start it again:
    // the ping is in the log, the monitor's last heartbeat is that ping, and no alert opens.
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), 0);
    let port = server.port;
    let key = cli_key(dir.path(), "acme");
    let http = http_client();
    let created = http
        .post(format!("{}/v1/monitors", server.base))
        .bearer_auth(&key)
        .json(&json!({"slug": "nightly", "schedule": {"every": "1h"}, "grace": "1h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let mut acks = Vec::new();
    for _ in 0..3 {
        let ping =
            http.post(format!("{}/v1/monitors/nightly/heartbeat", server.base)).bearer_auth(&key).send().await.unwrap();
        assert_eq!(ping.status(), reqwest::StatusCode::OK);
        let ack: Value = ping.json().await.unwrap();
        server.signal("-KILL");
        server = Server::start(dir.path(), port);
        acks.push(ack);
    }
    let history: Value =
        json_of(&http, &format!("{}/v1/monitors/nightly/events?type=HeartbeatReceived", server.base), &key).await;
    let positions: Vec<i64> =
        history["events"].as_array().unwrap().iter().map(|e| e["position"].as_i64().unwrap()).collect();
    let mut acked: Vec<i64> = acks.iter().map(|a| a["position"].as_i64().unwrap()).collect();
    acked.reverse(); // the history is newest first
    assert_eq!(positions, acked, "every acknowledged ping is in the log, once");
    let monitor = json_of(&http, &format!("{}/v1/monitors/nightly", server.base), &key).await;
    assert_eq!(monitor["last_heartbeat_at"], acks[2]["monitor"]["last_heartbeat_at"]);
    assert_eq!(monitor["status"], "up");
    let alerts: Value = json_of(&http, &format!("{}/v1/alerts?state=all", server.base), &key).await;
    assert!(alerts["alerts"].as_array().unwrap().is_empty(), "{alerts}");
}

/// `telltale serve` on a fresh database (as `make run` starts it): the key, the curl line, and a
/// one-time sign-in link for the first operator instead of a password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_server_prints_a_key_and_a_one_time_sign_in_link_for_the_first_operator() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve"])
        .env("TELLTALE_DATABASE_URL", db_url(dir.path()))
        .env("TELLTALE_LISTEN", "127.0.0.1:0")
        .env("TELLTALE_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    while !banner.contains("Stop with Ctrl-C.") {
        assert!(stdout.read_line(&mut banner).unwrap() > 0, "the banner ends: {banner}");
    }
    let mut server = Server { child, base: String::new(), port: 0 };
    assert!(banner.lines().next().unwrap().starts_with("telltale is running on http://127.0.0.1:"), "{banner}");
    let key = banner.lines().find_map(|l| l.trim().strip_prefix("export TELLTALE_KEY=")).unwrap().to_string();
    assert!(banner.contains("curl -X POST"), "{banner}");
    // Away from the defaults, it says how the command line finds this server; a link the CLI
    // then prints points at it.
    let base_url = banner.lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
    let exports =
        banner.lines().find_map(|l| l.trim().strip_prefix("for the command line: export ")).expect("{banner}");
    assert_eq!(exports, format!("TELLTALE_DATABASE_URL={} TELLTALE_PUBLIC_URL={base_url}", db_url(dir.path())));
    let mut cli = Command::new(BIN);
    cli.args(["users", "add", "dora", "--client", "default"]).env("TELLTALE_LOG", "warn");
    for pair in exports.split(' ') {
        let (name, value) = pair.split_once('=').unwrap();
        cli.env(name, value);
    }
    let added = cli.output().unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let dora = String::from_utf8(added.stdout).unwrap().trim().to_string();
    assert!(dora.starts_with(&format!("{base_url}/welcome?token=")), "{dora}");
    let link = banner.lines().find(|l| l.contains("/welcome?token=")).unwrap().trim().to_string();
    assert!(
        banner.contains("one-time link") && banner.contains("choose a password"),
        "a link, not a password: {banner}"
    );

    let http = http_client();
    assert_eq!(http.get(&dora).send().await.unwrap().status(), 200, "the CLI's link works");
    let page = http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csrf = cookie_of(&page, "tt_csrf").unwrap();
    let token = link.split("token=").nth(1).unwrap();
    let welcome = link.split("/welcome").next().unwrap().to_string() + "/welcome";
    let set = http
        .post(&welcome)
        .header("cookie", format!("tt_csrf={csrf}"))
        .form(&[
            ("token", token),
            ("password", "first admin password"),
            ("again", "first admin password"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 303, "the link sets a password and signs in");
    let session = cookie_of(&set, "tt_session").unwrap();
    let base = welcome.trim_end_matches("/welcome").to_string();
    let index = http.get(format!("{base}/")).header("cookie", format!("tt_session={session}")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(index.text().await.unwrap().contains("signed in as"));
    assert_eq!(http.get(&link).send().await.unwrap().status(), 404, "the link works once");
    let monitors = http.get(format!("{base}/v1/monitors")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(monitors.status(), 200, "the printed key works");
    // A key put in a URL by mistake (telltale takes keys only as a header) is refused, and its
    // secret never reaches the request log either.
    for url in [
        format!("{base}/v1/monitors/job/heartbeat?key={key}"),
        format!("{base}/v1/monitors/job/heartbeat?k={key}"),
        format!("{base}/v1/monitors/{key}/heartbeat"),
    ] {
        assert_eq!(http.post(url).send().await.unwrap().status(), 401);
    }
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(log.contains("GET /welcome?token=… "), "the request log shows the link's path, not its token: {log}");
    for secret in [&key[20..], &token[19..]] {
        assert!(!log.contains(secret), "a secret reached the server's log: {log}");
    }

    // Stopped as a service manager stops it: it says it stopped cleanly, and a log that is a
    // file, not a terminal, carries no colour codes.
    server.signal("-TERM");
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(log.lines().last().unwrap_or("").contains("stopped cleanly"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a log file: {log}");
    assert!(log.contains("heartbeat?key=… ") && log.contains(&format!("heartbeat?k={}… ", &key[..20])), "{log}");
    assert!(!log.contains(&key[20..]), "a key's secret reached the log: {log}");
}

/// The CLI: a rotating key, its list, its revocation and the audit replayed from the log.
#[test]
fn the_cli_creates_lists_revokes_and_audits_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("TELLTALE_DATABASE_URL", db_url(dir.path()))
            .env("TELLTALE_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (out, err) = cli(&[
        "keys",
        "create",
        "--client",
        "acme",
        "--create-client",
        "--scope",
        "ingest",
        "--rotate-every",
        "30d",
        "--overlap",
        "7d",
        "--label",
        "web",
    ]);
    let key = out.lines().last().unwrap().trim().to_string();
    assert!(key.starts_with("tt_") && key.len() == 84, "alone on the last line: {out}");
    assert!(err.contains("rotating every 30d with 7d overlap"), "{err}");
    let id = &key[3..19];
    let (list, _) = cli(&["keys", "list", "--client", "acme"]);
    assert!(
        list.contains(id) && list.contains("active") && list.contains("web") && !list.contains(&key[20..]),
        "{list}"
    );
    cli(&["keys", "revoke", id, "--client", "acme"]);
    let (list, _) = cli(&["keys", "list", "--client", "acme"]);
    assert!(list.contains("revoked"), "{list}");
    let (audit, _) = cli(&["audit", "keys", "--client", "acme"]);
    let lines: Vec<&str> = audit.lines().filter(|l| l.contains(id)).collect();
    // Each key's life first (scopes, label, when issued and revoked), then every change.
    assert!(
        lines[0].contains("scopes ingest") && lines[0].contains("\"web\"") && lines[0].contains("revoked 20"),
        "{audit}"
    );
    assert!(lines[1].contains("issued") && lines[1].contains("by cli"), "{audit}");
    assert!(lines[2].contains("revoked") && lines[2].contains("by cli"), "{audit}");
    let (at, _) = cli(&["audit", "keys", "--client", "acme", "--at", "2000-01-01T00:00:00Z"]);
    assert!(at.contains("no key was valid at 2000-01-01T00:00:00Z"), "{at}");
    let (json, _) = cli(&["audit", "keys", "--client", "acme", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["keys"][0]["id"], id);
    assert!(!json.to_string().contains(&key[20..]), "never a secret");
}

/// A key revoked from the command line while a server runs: the server caches a key's record
/// for at most 5 s, so within that the key is refused (`401`), with nothing else changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_the_cli_stops_working_on_the_running_server_within_its_cache_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), 0);
    let key = cli_key(dir.path(), "acme");
    let admin = cli_key(dir.path(), "acme");
    let http = http_client();
    let beat = async || {
        let url = format!("{}/v1/monitors/nightly/heartbeat", server.base);
        http.post(url).bearer_auth(&key).send().await.unwrap().status().as_u16()
    };
    let created = http
        .post(format!("{}/v1/monitors", server.base))
        .bearer_auth(&admin)
        .json(&json!({"slug": "nightly", "schedule": {"every": "1h"}}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    assert_eq!(beat().await, 200, "the key works, and its record is now cached");

    let out = Command::new(BIN)
        .args(["keys", "revoke", &key[3..19], "--client", "acme"])
        .env("TELLTALE_DATABASE_URL", db_url(dir.path()))
        .env("TELLTALE_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The documented bound is 5 s; the wait allows for a slow machine.
    wait_for("the revoked key to be refused", Duration::from_secs(15), async || beat().await == 401).await;
    let history: Value =
        json_of(&http, &format!("{}/v1/monitors/nightly/events?type=HeartbeatReceived", server.base), &admin).await;
    let accepted = history["events"].as_array().unwrap().len();
    assert!(accepted >= 1, "{history}");
    assert_eq!(beat().await, 401);
    let again: Value =
        json_of(&http, &format!("{}/v1/monitors/nightly/events?type=HeartbeatReceived", server.base), &admin).await;
    assert_eq!(again["events"].as_array().unwrap().len(), accepted, "a refused beat records nothing");
}
