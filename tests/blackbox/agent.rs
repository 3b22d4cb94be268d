//! The client side end to end: the real `telltale` binary as the server (`serve`) and as the
//! agent (`run`, `ping`, `spool`), real commands, real signals, a real spool directory, and a
//! real HTTP receiver where the test needs to see exactly what the agent sends.

use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Instant;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_telltale");

fn db_url(dir: &Path) -> String {
    format!("sqlite://{}/telltale.db", dir.display())
}

/// A `telltale serve` process (as in `process.rs`).
struct Server {
    child: std::process::Child,
    base: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(BIN)
            .args(["serve", "--no-bootstrap"])
            .env("TELLTALE_DATABASE_URL", db_url(dir))
            .env("TELLTALE_LISTEN", "127.0.0.1:0")
            .env("TELLTALE_LOG", "warn")
            .env_remove("TELLTALE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("telltale starts");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let base = first.trim().rsplit(' ').next().unwrap().to_string();
        assert!(base.starts_with("http://127.0.0.1:"), "unexpected first line: {first}");
        Server { child, base }
    }

    /// Stops it as a service manager would (SIGTERM) and waits for it to exit.
    fn stop(mut self) {
        signal(self.child.id(), libc::SIGTERM);
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill has no memory preconditions.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0, "kill {pid}");
}

/// A server with client `acme`, an admin key, and the monitor `job` (hourly, so nothing is
/// missed while the test runs).
async fn server_with_monitor(dir: &Path) -> (Server, String) {
    let server = Server::start(dir);
    let out = std::process::Command::new(BIN)
        .args(["keys", "create", "--client", "acme", "--create-client"])
        .env("TELLTALE_DATABASE_URL", db_url(dir))
        .env("TELLTALE_LOG", "warn")
        .env_remove("TELLTALE_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim().to_string();
    let created = http_client()
        .post(format!("{}/v1/monitors", server.base))
        .bearer_auth(&key)
        .json(&json!({"slug": "job", "schedule": {"every": "1h"}, "grace": "1h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    (server, key)
}

/// The run events of `slug`, oldest first.
async fn run_events(base: &str, key: &str, slug: &str) -> Vec<Value> {
    let url = format!("{base}/v1/monitors/{slug}/events?limit=500");
    let page: Value = http_client().get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap();
    assert!(page["next_before"].is_null(), "one page holds the whole history");
    let mut events: Vec<Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("Run"))
        .cloned()
        .collect();
    events.reverse();
    events
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// The agent's environment: its own home, config and state directories, and nothing of the
/// caller's `TELLTALE_*` settings.
struct Agent {
    home: PathBuf,
    url: String,
    key: String,
}

impl Agent {
    fn new(home: &Path, url: &str, key: &str) -> Agent {
        std::fs::create_dir_all(home).unwrap();
        Agent { home: home.to_path_buf(), url: url.to_string(), key: key.to_string() }
    }

    fn spool_dir(&self) -> PathBuf {
        self.home.join("state/telltale/spool")
    }

    /// The spooled files, oldest first, parsed.
    fn spooled(&self) -> Vec<(PathBuf, Value)> {
        let Ok(dir) = std::fs::read_dir(self.spool_dir()) else { return Vec::new() };
        let mut paths: Vec<PathBuf> = dir
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json") && !p.file_name().unwrap().to_string_lossy().starts_with('.')
            })
            .collect();
        paths.sort();
        paths.into_iter().map(|p| (p.clone(), serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap())).collect()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("XDG_STATE_HOME", self.home.join("state"))
            .env("TELLTALE_URL", &self.url)
            .env("TELLTALE_KEY", &self.key)
            .env_remove("TELLTALE_CONFIG")
            .env_remove("TELLTALE_KEY_FILE")
            .env_remove("TELLTALE_SPOOL_DIR")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    async fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().await.unwrap()
    }

    /// `telltale run --monitor SLUG [extra…] -- CMD…`.
    async fn run(&self, slug: &str, extra: &[&str], cmd: &[&str]) -> Output {
        let mut args = vec!["run", "--monitor", slug];
        args.extend(extra);
        args.push("--");
        args.extend(cmd);
        self.output(&args).await
    }
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or_else(|| panic!("the wrapper itself was killed: {:?}", output.status))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapped_runs_are_reported_with_their_exit_code_duration_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = server_with_monitor(dir.path()).await;
    let agent = Agent::new(&dir.path().join("agent"), &server.base, &key);

    let before = Utc::now();
    let clock = Instant::now();
    let ok = agent.run("job", &[], &["sh", "-c", "sleep 0.2"]).await;
    let outer_ms = clock.elapsed().as_millis() as i64;
    let after = Utc::now();
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    assert!(ok.stderr.is_empty(), "nothing to say when all goes well: {}", stderr(&ok));

    let script = "echo first; printf 'caf\\351\\n'; echo oops >&2; exit 3";
    let failed = agent.run("job", &["--host", "box-1"], &["sh", "-c", script]).await;
    assert_eq!(code(&failed), 3);
    assert_eq!(failed.stdout, b"first\ncaf\xe9\n", "stdout passes through unchanged");
    assert_eq!(failed.stderr, b"oops\n", "so does stderr");

    let events = run_events(&server.base, &key, "job").await;
    assert_eq!(types(&events), ["RunStarted", "RunCompleted", "RunStarted", "RunFailed"]);
    let (started, completed) = (&events[0], &events[1]);
    assert_eq!(started["run_id"], completed["run_id"]);
    assert_ne!(events[0]["run_id"], events[2]["run_id"]);
    assert_eq!(events[2]["run_id"], events[3]["run_id"]);
    for event in &events[..2] {
        let at: DateTime<Utc> = event["at"].as_str().unwrap().parse().unwrap();
        assert!(before <= at && at <= after, "recorded while the wrapper ran");
        assert!(!event["data"]["host"].as_str().unwrap().is_empty(), "the hostname by default");
    }
    assert_eq!(completed["data"]["exit_code"], 0);
    let duration = completed["data"]["duration_ms"].as_i64().unwrap();
    assert!((200..=outer_ms).contains(&duration), "duration {duration} ms; the wrapper lived {outer_ms} ms");

    let failure = &events[3]["data"];
    assert_eq!(failure["exit_code"], 3);
    assert_eq!(failure["host"], "box-1");
    let output = failure["output"].as_str().unwrap();
    // stdout and stderr are read side by side, so `oops` may land anywhere between them; each
    // stream keeps its own order.
    let (first, cafe) = (output.find("first\n"), output.find("caf\u{fffd}\n"));
    assert!(first.is_some() && cafe.is_some() && first < cafe, "{output:?}");
    assert_eq!(failure["output_lossy"], true, "the replacement is flagged");
    assert!(output.contains("oops\n"), "stderr is in the tail too: {output:?}");
    assert!(agent.spooled().is_empty());

    // Exit codes pass through, a signal becomes 128 + its number, a missing command 127.
    assert_eq!(code(&agent.run("job", &[], &["sh", "-c", "exit 255"]).await), 255);
    assert_eq!(code(&agent.run("job", &[], &["sh", "-c", "kill -KILL $$"]).await), 137);
    let missing = agent.run("job", &[], &["/nonexistent/command"]).await;
    assert_eq!(code(&missing), 127);
    assert!(stderr(&missing).starts_with("telltale: cannot run `/nonexistent/command`"), "{}", stderr(&missing));
    let events = run_events(&server.base, &key, "job").await;
    let ends: Vec<(&str, i64)> = events[4..]
        .iter()
        .skip(1)
        .step_by(2)
        .map(|e| (e["type"].as_str().unwrap(), e["data"]["exit_code"].as_i64().unwrap()))
        .collect();
    assert_eq!(ends, [("RunFailed", 255), ("RunFailed", 137), ("RunFailed", 127)]);
    assert_eq!(events[7]["data"]["message"], "killed by SIGKILL");
    assert!(events[9]["data"]["message"].as_str().unwrap().contains("cannot run"));
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_to_the_wrapper_reach_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = server_with_monitor(dir.path()).await;
    let agent = Agent::new(&dir.path().join("agent"), &server.base, &key);

    let script = r#"trap "exit 42" TERM; echo ready; sleep 30 & wait"#;
    let mut command = agent.command(&["run", "--monitor", "job", "--", "sh", "-c", script]);
    // Its own process group, so the `sleep` the script leaves behind can be cleaned up.
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut wrapper = command.spawn().unwrap();
    let pid = wrapper.id().unwrap();
    let mut lines = BufReader::new(wrapper.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ready"), "the trap is set");

    signal(pid, libc::SIGTERM);
    let status = wrapper.wait().await.unwrap();
    // SAFETY: kill has no memory preconditions; the group is the test's own.
    unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
    assert_eq!(status.code(), Some(42), "{status:?} (signal {:?})", status.signal());

    let events = run_events(&server.base, &key, "job").await;
    assert_eq!(types(&events), ["RunStarted", "RunFailed"]);
    assert_eq!(events[1]["data"]["exit_code"], 42);
    assert!(agent.spooled().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_sends_heartbeats_and_run_events_configured_by_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = server_with_monitor(dir.path()).await;
    // No URL or key in the environment: they come from ~/.config/telltale/agent.toml.
    let agent = Agent::new(&dir.path().join("agent"), "", "");
    let config = agent.home.join("config/telltale");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("key"), format!("{key}\n")).unwrap();
    std::fs::write(config.join("agent.toml"), format!("url = \"{}\"\nkey_file = \"key\"\n", server.base)).unwrap();

    let beat = agent.output(&["ping", "job", "--message", "alive"]).await;
    assert_eq!(code(&beat), 0, "{}", stderr(&beat));
    let start = agent.output(&["ping", "job", "--start"]).await;
    assert_eq!(code(&start), 0, "{}", stderr(&start));
    let run_id = String::from_utf8(start.stdout).unwrap().trim().to_string();
    assert!(uuid::Uuid::parse_str(&run_id).is_ok(), "--start prints the run id: {run_id}");
    let end = agent.output(&["ping", "job", "--exit-code", "0", "--run-id", &run_id]).await;
    assert_eq!(code(&end), 0, "{}", stderr(&end));
    let fail = agent.output(&["ping", "job", "--fail", "--message", "disk full"]).await;
    assert_eq!(code(&fail), 0, "{}", stderr(&fail));

    let page: Value = http_client()
        .get(format!("{}/v1/monitors/job/events?type=HeartbeatReceived", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"][0]["data"]["message"], "alive");
    let events = run_events(&server.base, &key, "job").await;
    assert_eq!(types(&events), ["RunStarted", "RunCompleted", "RunFailed"]);
    assert_eq!(events[0]["run_id"], run_id.as_str());
    assert_eq!(events[1]["run_id"], run_id.as_str());
    assert_eq!(events[2]["data"]["message"], "disk full");

    // An unknown monitor is refused for good: said, not spooled, and the script goes on.
    let unknown = agent.output(&["ping", "nope"]).await;
    assert_eq!(code(&unknown), 0);
    assert!(stderr(&unknown).contains("404"), "{}", stderr(&unknown));
    assert!(agent.spooled().is_empty());
    // With --strict, a setup check: a refusal is exit code 3, a delivery still 0.
    let strict = agent.output(&["ping", "nope", "--strict"]).await;
    assert_eq!(code(&strict), 3, "{}", stderr(&strict));
    assert_eq!(code(&agent.output(&["ping", "job", "--strict"]).await), 0);

    // Without a key, ping refuses and says where a key could come from.
    std::fs::remove_file(config.join("agent.toml")).unwrap();
    let keyless = agent.output(&["ping", "job"]).await;
    assert_eq!(code(&keyless), 2);
    assert!(stderr(&keyless).contains("no API key"), "{}", stderr(&keyless));
    // ... while run still runs the command.
    let run = agent.run("job", &[], &["sh", "-c", "exit 5"]).await;
    assert_eq!(code(&run), 5);
    assert!(stderr(&run).contains("no API key"), "{}", stderr(&run));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_wrapper_sends_and_how_it_treats_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut receiver = Receiver::start_on(0, vec![]).await;
    let base = receiver.url.trim_end_matches("/hook").to_string();
    let agent = Agent::new(&dir.path().join("agent"), &base, "tt_test");

    let clock = Instant::now();
    let ok = agent.run("job", &[], &["sh", "-c", "sleep 0.2"]).await;
    let outer_ms = clock.elapsed().as_millis() as i64;
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    let sent: Vec<Value> = receiver.drain().into_iter().map(|r| r.body).collect();
    assert_eq!(sent.len(), 2);
    let (started, completed) = (&sent[0], &sent[1]);
    assert_eq!(started["type"], "started");
    assert_eq!(completed["type"], "completed");
    let run_id = started["run_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(run_id).is_ok(), "a local run id: {run_id}");
    assert_eq!(completed["run_id"], run_id);
    assert_ne!(started["event_id"], completed["event_id"]);
    for event in &sent {
        assert!(uuid::Uuid::parse_str(event["event_id"].as_str().unwrap()).is_ok());
        assert!(event["sent_at"].as_str().unwrap().parse::<DateTime<Utc>>().is_ok());
        assert!(!event["host"].as_str().unwrap().is_empty());
    }
    assert_eq!(completed["exit_code"], 0);
    let duration = completed["duration_ms"].as_i64().unwrap();
    assert!((200..=outer_ms).contains(&duration), "duration {duration} ms; the wrapper lived {outer_ms} ms");

    // A refusal (404 unknown monitor) is said and dropped; a 503 is spooled, and so is everything
    // behind it, without another try.
    let picky = Receiver::start_on(0, vec![404, 404, 503]).await;
    let agent = Agent::new(&dir.path().join("agent-2"), picky.url.trim_end_matches("/hook"), "tt_test");
    let refused = agent.run("job", &[], &["true"]).await;
    assert_eq!(code(&refused), 0);
    let said = stderr(&refused);
    assert_eq!(said.lines().filter(|l| l.contains("refused it: 404")).count(), 2, "{said}");
    assert!(agent.spooled().is_empty());
    let unavailable = agent.run("job", &[], &["false"]).await;
    assert_eq!(code(&unavailable), 1);
    assert_eq!(stderr(&unavailable).lines().count(), 2, "one line per spooled event: {}", stderr(&unavailable));
    let spooled = agent.spooled();
    let kinds: Vec<&str> = spooled.iter().map(|(_, s)| s["event"]["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["started", "failed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_never_fails_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::new(&dir.path().join("agent"), &format!("http://127.0.0.1:{}", free_port()), "tt_test");
    let run = agent.run("job", &[], &["sh", "-c", "echo working; exit 7"]).await;
    assert_eq!(code(&run), 7);
    assert_eq!(run.stdout, b"working\n");
    let said = stderr(&run);
    assert!(said.lines().all(|l| l.starts_with("telltale: ")), "{said}");
    assert!(said.contains("cannot connect"), "{said}");

    let spooled = agent.spooled();
    assert_eq!(spooled.len(), 2);
    let (started, failed) = (&spooled[0].1, &spooled[1].1);
    assert_eq!(started["slug"], "job");
    assert_eq!(started["event"]["type"], "started");
    assert_eq!(failed["event"]["type"], "failed");
    assert_eq!(failed["event"]["exit_code"], 7);
    assert_eq!(failed["event"]["output"], "working\n");
    assert_eq!(started["event"]["run_id"], failed["event"]["run_id"], "the spooled pair shares its run id");

    let ping = agent.output(&["ping", "job"]).await;
    assert_eq!(code(&ping), 0, "ping spools and succeeds");
    assert_eq!(agent.spooled().len(), 3);
    let list = agent.output(&["spool", "list"]).await;
    let listed = String::from_utf8(list.stdout).unwrap();
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(listed.lines().next().unwrap().contains("job  started"), "{listed}");
    let flush = agent.output(&["spool", "flush"]).await;
    assert_eq!(code(&flush), 1, "events remain");
    assert!(String::from_utf8_lossy(&flush.stdout).contains("delivered 0 event(s), 3 remain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_spooled_while_the_server_is_down_are_delivered_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = server_with_monitor(dir.path()).await;
    let dead = server.base.clone();
    server.stop();
    let agent = Agent::new(&dir.path().join("agent"), &dead, &key);

    const RUNS: usize = 100;
    for i in 0..RUNS {
        let run = agent.run("job", &["--run-id", &format!("run-{i:03}")], &["true"]).await;
        assert_eq!(code(&run), 0, "{}", stderr(&run));
    }
    let spooled = agent.spooled();
    assert_eq!(spooled.len(), 2 * RUNS);
    let kept = dir.path().join("kept.json");
    std::fs::copy(&spooled[41].0, &kept).unwrap();

    let server = Server::start(dir.path());
    let agent = Agent::new(&agent.home, &server.base, &key);
    // Two flushes at once: the spool's lock lets one deliver everything while the other waits.
    let (first, second) = tokio::join!(agent.output(&["spool", "flush"]), agent.output(&["spool", "flush"]));
    let mut said: Vec<String> =
        [&first, &second].iter().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).collect();
    said.sort();
    assert_eq!(said, ["delivered 0 event(s), 0 remain", "delivered 200 event(s), 0 remain"], "{}", stderr(&first));
    assert!(agent.spooled().is_empty());

    let events = run_events(&server.base, &key, "job").await;
    let expected: Vec<(String, String)> = (0..RUNS)
        .flat_map(|i| [("RunStarted", i), ("RunCompleted", i)])
        .map(|(kind, i)| (kind.to_string(), format!("run-{i:03}")))
        .collect();
    let recorded: Vec<(String, String)> = events
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["run_id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(recorded, expected, "every run once, in the order it ran");

    let again = agent.output(&["spool", "flush"]).await;
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), "delivered 0 event(s), 0 remain");

    // A file delivered before comes back (say, restored from a backup): recorded once.
    std::fs::copy(&kept, agent.spool_dir().join(spooled[41].0.file_name().unwrap())).unwrap();
    let redelivery = agent.output(&["spool", "flush"]).await;
    assert_eq!(
        String::from_utf8_lossy(&redelivery.stdout).trim(),
        "delivered 1 event(s) (1 already recorded), 0 remain"
    );
    assert_eq!(run_events(&server.base, &key, "job").await.len(), 2 * RUNS);
}

/// Waits (polling, with a deadline) until `check` holds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn get_json(base: &str, key: &str, path: &str) -> Value {
    http_client().get(format!("{base}{path}")).bearer_auth(key).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_completes_then_fails_then_hangs_shows_as_runs_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = server_with_monitor(dir.path()).await;
    let created = http_client()
        .post(format!("{}/v1/monitors", server.base))
        .bearer_auth(&key)
        .json(&json!({"slug": "nightly", "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"},
                      "grace": "1h", "max_runtime": "2s", "alert_policy": {"retry_window": "0s"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let agent = Agent::new(&dir.path().join("agent"), &server.base, &key);

    // The job reads the clock as its first and last act; its own measure of how long it ran
    // lands in the output tail, to be compared with the duration telltale records.
    let clock = Instant::now();
    let ok = agent.run("nightly", &[], &["sh", "-c", "date +%s%N; sleep 0.2; date +%s%N"]).await;
    let outer_ms = clock.elapsed().as_millis() as i64;
    assert_eq!(code(&ok), 0);
    let failed = agent.run("nightly", &[], &["sh", "-c", "echo 'disk full' >&2; exit 3"]).await;
    assert_eq!(code(&failed), 3);

    // The third run hangs: it outlives max_runtime, is recorded as timed out, and alerts.
    let mut hung = agent.command(&["run", "--monitor", "nightly", "--", "sleep", "60"]).spawn().unwrap();
    eventually("the hung run to time out", async || {
        let runs = get_json(&server.base, &key, "/v1/monitors/nightly/runs").await;
        runs["runs"][0]["status"] == "timed_out"
    })
    .await;
    let alerts = get_json(&server.base, &key, "/v1/alerts?state=open").await;
    let causes: Vec<&str> = alerts["alerts"].as_array().unwrap().iter().map(|a| a["cause"].as_str().unwrap()).collect();
    assert!(causes.contains(&"timed_out") && causes.contains(&"failed"), "{alerts}");
    let monitor = get_json(&server.base, &key, "/v1/monitors/nightly").await;
    assert_eq!((monitor["status"].as_str(), monitor["hung_runs"].as_i64()), (Some("hung"), Some(1)), "{monitor}");
    assert_eq!(monitor["next_expected"].as_array().unwrap().len(), 5);
    let types: Vec<String> = get_json(&server.base, &key, "/v1/monitors/nightly/events?limit=100").await["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert!(types.contains(&"RunTimedOut".to_string()), "{types:?}");

    let runs = get_json(&server.base, &key, "/v1/monitors/nightly/runs").await;
    let runs = runs["runs"].as_array().unwrap();
    let statuses: Vec<&str> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["timed_out", "failed", "completed"]);
    assert!(runs[0]["timed_out_at"].is_string() && runs[0]["finished_at"].is_null());
    assert_eq!((runs[1]["exit_code"].as_i64(), runs[1]["output"].as_str()), (Some(3), Some("disk full\n")));
    // The duration is the wrapper's own measurement, not the server's guess from arrival times,
    // and it is right to 10 ms: what the job measured itself, plus the start of `sh` and `date`.
    let duration = runs[2]["duration_ms"].as_i64().unwrap();
    assert!((200..=outer_ms).contains(&duration), "duration {duration} ms; the wrapper lived {outer_ms} ms");
    let stamps: Vec<i64> = runs[2]["output"].as_str().unwrap().lines().map(|l| l.trim().parse().unwrap()).collect();
    let measured_by_the_job = (stamps[1] - stamps[0]) / 1_000_000;
    assert!(
        (measured_by_the_job..=measured_by_the_job + 10).contains(&duration),
        "recorded {duration} ms; the job measured {measured_by_the_job} ms itself"
    );

    // Stopping the hung job finishes its run (128 + SIGTERM) and resolves the hung alert.
    signal(hung.id().unwrap(), libc::SIGTERM);
    assert_eq!(hung.wait().await.unwrap().code(), Some(143));
    let runs = get_json(&server.base, &key, "/v1/monitors/nightly/runs").await;
    assert_eq!(
        (runs["runs"][0]["status"].as_str(), runs["runs"][0]["exit_code"].as_i64()),
        (Some("failed"), Some(143))
    );
    let alerts = get_json(&server.base, &key, "/v1/alerts?state=open").await;
    let causes: Vec<&str> = alerts["alerts"].as_array().unwrap().iter().map(|a| a["cause"].as_str().unwrap()).collect();
    assert_eq!(causes, ["failed"], "the hang is over; the job still fails: {alerts}");
    drop(server);
}
