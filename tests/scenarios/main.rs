//! The scenario suite: every `*.toml` file beside this one is a timeline — what monitored
//! processes do (beats, runs, failures, silence), what happens to telltale itself (restarts,
//! downtime while the processes keep trying), what people do (any API call: pause, silence,
//! acknowledge…) — and the alerts it must produce.
//!
//! The runner plays each file through the real application: a real SQLite file, the real
//! detector, the real outbox and a real webhook receiver on loopback, on an injected clock that
//! jumps from one step to the next (the detector stamps every fact with the instant it became
//! true, so a jump records exactly what real time would). It then compares what telltale did with
//! what the file expects and reports, per scenario: false alerts, missed outages, duplicate
//! notifications and detection latency (virtual time from the fault to the alert). The test fails
//! on any false alert, missed outage or duplicate. `make scenarios` prints the report.
//!
//! The file format is described in `tests/scenarios/README.md`.

#[path = "../blackbox/common.rs"]
#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use common::{Options, Receiver, TestApp};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use telltale_domain::span::Span;

// ---- the file format ----------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    /// Only trouble that fixes itself: not one alert, not one notification.
    Transient,
    /// Every expected alert exactly once, and nothing else.
    Outage,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    #[serde(default)]
    about: String,
    kind: Kind,
    /// Where the virtual clock starts (default 2026-03-01T12:00:00Z).
    #[serde(default)]
    start: Option<DateTime<Utc>>,
    /// When the runner stops and checks, as an offset from `start`.
    end: Offset,
    /// More webhook channels to the receiver, by name, added before the monitors (which may
    /// name them in `escalate_to`); the channel `scenario` is always there.
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default, rename = "monitor")]
    monitors: Vec<MonitorDef>,
    #[serde(default, rename = "step")]
    steps: Vec<Step>,
    #[serde(default, rename = "expect")]
    expects: Vec<Expect>,
}

/// A time offset from the scenario's start, written as a duration ("90s", "1h30m").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Offset(TimeDelta);

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Offset, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map(|s| Offset(s.to_delta())).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Deserialize)]
struct MonitorDef {
    slug: String,
    /// Creates `slug-1` … `slug-N` instead of one monitor.
    #[serde(default)]
    count: Option<u32>,
    /// Sent as `host` with every signal of this monitor.
    #[serde(default)]
    host: Option<String>,
    /// Everything else goes as is into `POST /v1/monitors` (schedule, grace, max_runtime, …).
    #[serde(flatten)]
    spec: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Beat,
    Start,
    Running,
    Complete,
    Fail,
    /// telltale stops cleanly and starts again at once.
    Restart,
    /// telltale stops for `for`; the processes keep trying, and what they send meanwhile is lost,
    /// or, with `spool = true`, kept and delivered in order once telltale is back (as
    /// `telltale run` and `telltale ping` do).
    Down,
    /// Any API call, made once per matching monitor (`{slug}` in the path is replaced), or once
    /// when the step names no monitor. `{receiver}` in the body is the webhook receiver's URL.
    Call,
    /// Acknowledge the open alerts of the matching monitors (`POST /v1/alerts/{id}/acknowledge`).
    Acknowledge,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    at: Offset,
    /// Repeats the step this often…
    #[serde(default)]
    every: Option<Offset>,
    /// …up to (not including) this offset.
    #[serde(default)]
    until: Option<Offset>,
    /// A slug, a prefix ending in `*`, or `*` for every monitor.
    #[serde(default)]
    monitor: Option<String>,
    #[serde(rename = "do")]
    action: Action,
    #[serde(default)]
    run: Option<String>,
    #[serde(default)]
    exit_code: Option<i32>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "for")]
    duration: Option<Offset>,
    /// For `down`: the processes spool what they cannot send and deliver it afterwards.
    #[serde(default)]
    spool: bool,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    body: Option<toml::Value>,
    /// For `call`: the status it must answer (default: any 2xx).
    #[serde(default)]
    status: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// A slug or a pattern (`prefix*`, `*`): one alert is expected per matching monitor.
    #[serde(default)]
    monitor: Option<String>,
    /// Instead of `monitor`: one host alert of this host (`cause = "host_silent"`).
    #[serde(default)]
    host: Option<String>,
    cause: String,
    opened: Offset,
    /// When it resolves; absent: still open at the end.
    #[serde(default)]
    resolved: Option<Offset>,
    /// When it was announced, for an alert held at first (silenced, in maintenance) and
    /// announced later; absent: when it opened.
    #[serde(default)]
    announced: Option<Offset>,
    /// When the trouble began, for the detection latency.
    #[serde(default)]
    fault: Option<Offset>,
    /// The transitions the webhook must receive for this alert, in order, each exactly once
    /// (default: `opened`, and `resolved` when it resolves; `[]` for an alert that is recorded
    /// but held or inhibited).
    #[serde(default)]
    notified: Option<Vec<String>>,
}

// ---- playing a scenario ---------------------------------------------------------------------

fn t0() -> DateTime<Utc> {
    common::t0()
}

fn matches(pattern: &str, slug: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => slug.starts_with(prefix),
        None => pattern == slug,
    }
}

fn to_json(value: &toml::Value) -> Value {
    serde_json::to_value(value).expect("TOML values are JSON values")
}

struct Monitor {
    slug: String,
    host: Option<String>,
    spec: Value,
}

fn monitors_of(scenario: &Scenario) -> Vec<Monitor> {
    let mut out = Vec::new();
    for def in &scenario.monitors {
        let slugs: Vec<String> = match def.count {
            Some(n) => (1..=n).map(|i| format!("{}-{i}", def.slug)).collect(),
            None => vec![def.slug.clone()],
        };
        for slug in slugs {
            let mut spec = to_json(&toml::Value::Table(def.spec.clone()));
            spec["slug"] = slug.clone().into();
            out.push(Monitor { slug, host: def.host.clone(), spec });
        }
    }
    out
}

/// Every step at every instant it happens, in time order (file order within one instant).
fn expand(steps: &[Step], end: Offset) -> Vec<(TimeDelta, Step)> {
    let mut out = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let mut at = step.at.0;
        assert!(at <= end.0, "a step at {at} is after the end ({})", end.0);
        loop {
            out.push((at, index, step.clone()));
            let Some(every) = step.every else { break };
            at += every.0;
            let until = step.until.unwrap_or(end).0;
            if at >= until || every.0 <= TimeDelta::zero() {
                break;
            }
        }
    }
    out.sort_by_key(|(at, index, _)| (*at, *index));
    out.into_iter().map(|(at, _, step)| (at, step)).collect()
}

/// What a run of one scenario observed.
struct Observed {
    alerts: Vec<Value>,
    /// Webhook deliveries: (alert id, transition, idempotency key).
    deliveries: Vec<(String, String, String)>,
    /// Signals sent while telltale was down (the processes kept trying) and lost.
    lost: usize,
    /// Signals sent while telltale was down, spooled and delivered once it was back.
    spooled: usize,
}

struct Player {
    scenario_start: DateTime<Utc>,
    app: Option<TestApp>,
    /// Kept while telltale is down, to start it again on the same file, clock and port.
    down: Option<(Arc<tempfile::TempDir>, telltale::clock::ManualClock, u16)>,
    receiver: Receiver,
    monitors: Vec<Monitor>,
    lost: usize,
    /// While down with `spool`: what the processes keep to send later, in order.
    spool: Option<Vec<(usize, Step)>>,
    spooled: usize,
}

impl Player {
    fn app(&self) -> &TestApp {
        self.app.as_ref().expect("telltale is up")
    }

    async fn move_to(&mut self, offset: TimeDelta) {
        let at = self.scenario_start + offset;
        match &self.app {
            Some(app) => {
                app.clock.set(at);
                app.settle().await;
            }
            None => self.down.as_ref().expect("telltale is down").1.set(at),
        }
    }

    async fn stop(&mut self) {
        let app = self.app.take().expect("telltale is up");
        self.down = Some(app.stop().await);
    }

    async fn start(&mut self) {
        let (dir, clock, port) = self.down.take().expect("telltale is down");
        let app = TestApp::spawn_with(Options { dir: Some(dir), clock: Some(clock), port }).await;
        app.settle().await;
        for (monitor, step) in self.spool.take().unwrap_or_default() {
            Self::signal(&app, &self.monitors[monitor], &step).await;
            self.spooled += 1;
        }
        app.settle().await;
        self.app = Some(app);
    }

    fn targets(&self, step: &Step) -> Vec<usize> {
        match &step.monitor {
            Some(pattern) => {
                let found: Vec<usize> =
                    (0..self.monitors.len()).filter(|&i| matches(pattern, &self.monitors[i].slug)).collect();
                assert!(!found.is_empty(), "no monitor matches `{pattern}`");
                found
            }
            None => vec![],
        }
    }

    /// Sends one signal from each of `monitors`, concurrently (as separate processes would).
    async fn signals(&mut self, monitors: Vec<usize>, step: &Step) {
        let Some(app) = &self.app else {
            match &mut self.spool {
                Some(spool) => spool.extend(monitors.into_iter().map(|m| (m, step.clone()))),
                None => self.lost += monitors.len(),
            }
            return;
        };
        futures::future::join_all(monitors.into_iter().map(|m| Self::signal(app, &self.monitors[m], step))).await;
    }

    async fn signal(app: &TestApp, m: &Monitor, step: &Step) {
        let kind = match step.action {
            Action::Beat => "heartbeat",
            Action::Start => "started",
            Action::Running => "running",
            Action::Complete => "completed",
            Action::Fail => "failed",
            _ => unreachable!("not a signal"),
        };
        let mut body = json!({"type": kind});
        for (field, value) in [
            ("run_id", step.run.clone().map(Value::from)),
            ("exit_code", step.exit_code.map(Value::from)),
            ("message", step.message.clone().map(Value::from)),
            ("host", m.host.clone().map(Value::from)),
        ] {
            if let Some(value) = value {
                body[field] = value;
            }
        }
        let response = app.post(&format!("/v1/monitors/{}/events", m.slug), body).await;
        assert!(response.status().is_success(), "{kind} for {}: {}", m.slug, response.text().await.unwrap());
    }

    async fn call(&self, step: &Step, slug: Option<&str>) {
        let app = self.app();
        let method: Method = step.method.as_deref().unwrap_or("POST").parse().expect("an HTTP method");
        let mut path = step.path.clone().expect("a `call` step has a `path`");
        if let Some(slug) = slug {
            path = path.replace("{slug}", slug);
        }
        let mut request = app.http.request(method, app.url(&path)).bearer_auth(&app.key);
        if let Some(body) = &step.body {
            let body = to_json(body).to_string().replace("{receiver}", &self.receiver.url);
            request = request.json(&serde_json::from_str::<Value>(&body).unwrap());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        match step.status {
            Some(expected) => assert_eq!(status, expected, "{path}: {text}"),
            None => assert!((200..300).contains(&status), "{path} answered {status}: {text}"),
        }
    }

    async fn play(&mut self, at: TimeDelta, step: &Step) {
        self.move_to(at).await;
        match step.action {
            Action::Beat | Action::Start | Action::Running | Action::Complete | Action::Fail => {
                let targets = self.targets(step);
                self.signals(targets, step).await;
            }
            Action::Restart => {
                self.stop().await;
                self.start().await;
            }
            Action::Down => {
                self.stop().await;
                self.spool = step.spool.then(Vec::new);
                // The restart is its own step, so that what falls inside the downtime is lost.
            }
            Action::Call => {
                let targets = self.targets(step);
                if targets.is_empty() {
                    self.call(step, None).await;
                }
                for monitor in targets {
                    let slug = self.monitors[monitor].slug.clone();
                    self.call(step, Some(&slug)).await;
                }
            }
            Action::Acknowledge => {
                for monitor in self.targets(step) {
                    let app = self.app();
                    let slug = &self.monitors[monitor].slug;
                    let open: Value =
                        app.get(&format!("/v1/alerts?state=open&monitor={slug}")).await.json().await.unwrap();
                    let open = open["alerts"].as_array().cloned().unwrap_or_default();
                    assert!(!open.is_empty(), "acknowledge: {slug} has no open alert");
                    for alert in open {
                        let path = format!("/v1/alerts/{}/acknowledge", alert["id"].as_str().unwrap());
                        let response = app.post(&path, json!({"by": "scenario", "note": step.message})).await;
                        assert!(response.status().is_success(), "{path}: {}", response.text().await.unwrap());
                    }
                }
            }
        }
    }

    /// Waits until every notification is delivered, then collects what happened.
    async fn observe(mut self) -> Observed {
        let app = self.app.take().expect("telltale is up at the end");
        app.outbox_settled().await;
        let body: Value = app.get("/v1/alerts?state=all&limit=500").await.json().await.unwrap();
        let mut alerts = body["alerts"].as_array().cloned().unwrap_or_default();
        alerts.reverse(); // oldest first
        let deliveries = self
            .receiver
            .drain()
            .into_iter()
            .map(|r| {
                let text = |field: &str| r.body[field].as_str().unwrap_or_default().to_string();
                // Each reminder is its own transition: `reminder-1`, `reminder-2`…
                let transition = match r.body["reminder"].as_u64() {
                    Some(n) => format!("{}-{n}", text("transition")),
                    None => text("transition"),
                };
                (text("alert_id"), transition, r.idempotency_key)
            })
            .collect();
        app.stop().await;
        Observed { alerts, deliveries, lost: self.lost, spooled: self.spooled }
    }
}

async fn play(scenario: &Scenario) -> Observed {
    let start = scenario.start.unwrap_or_else(t0);
    let clock = telltale::clock::ManualClock::new(start);
    let app = TestApp::spawn_with(Options { clock: Some(clock), ..Options::default() }).await;
    let receiver = Receiver::start().await;
    app.add_webhook("scenario", &receiver.url).await;
    for name in &scenario.channels {
        app.add_webhook(name, &receiver.url).await;
    }
    let monitors = monitors_of(scenario);
    for m in &monitors {
        let response = app.post("/v1/monitors", m.spec.clone()).await;
        assert_eq!(response.status().as_u16(), 201, "creating {}: {}", m.slug, response.text().await.unwrap());
    }
    let mut player = Player {
        scenario_start: start,
        app: Some(app),
        down: None,
        receiver,
        monitors,
        lost: 0,
        spool: None,
        spooled: 0,
    };

    let mut timeline: Vec<(TimeDelta, Option<Step>)> =
        expand(&scenario.steps, scenario.end).into_iter().map(|(at, step)| (at, Some(step))).collect();
    // A `down` step ends with telltale starting again, `for` later.
    let restarts: Vec<TimeDelta> = timeline
        .iter()
        .filter_map(|(at, step)| {
            let step = step.as_ref()?;
            matches!(step.action, Action::Down)
                .then(|| *at + step.duration.expect("a `down` step says for how long (`for`)").0)
        })
        .collect();
    timeline.extend(restarts.into_iter().map(|at| (at, None)));
    // Restarts go first within an instant: telltale is back when that instant's signals arrive.
    timeline.sort_by_key(|(at, step)| (*at, step.is_some()));
    for (at, step) in timeline {
        match step {
            Some(step) => player.play(at, &step).await,
            None => {
                player.move_to(at).await;
                player.start().await;
            }
        }
    }
    player.move_to(scenario.end.0).await;
    if player.app.is_none() {
        player.start().await;
    }
    player.observe().await
}

// ---- judging --------------------------------------------------------------------------------

#[derive(Default)]
struct Verdict {
    expected: usize,
    alerts: usize,
    false_alerts: Vec<String>,
    missed: Vec<String>,
    duplicates: Vec<String>,
    wrong: Vec<String>,
    /// Virtual time from each fault to its alert.
    latencies: Vec<TimeDelta>,
    lost: usize,
    spooled: usize,
}

impl Verdict {
    fn passed(&self) -> bool {
        self.false_alerts.is_empty() && self.missed.is_empty() && self.duplicates.is_empty() && self.wrong.is_empty()
    }
}

fn time_of(alert: &Value, field: &str) -> Option<DateTime<Utc>> {
    alert[field].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc))
}

fn describe(alert: &Value) -> String {
    format!(
        "{} {} opened {} resolved {}",
        alert["monitor"].as_str().unwrap_or("?"),
        alert["cause"].as_str().unwrap_or("?"),
        alert["opened_at"].as_str().unwrap_or("?"),
        alert["resolved_at"].as_str().unwrap_or("-"),
    )
}

fn judge(scenario: &Scenario, observed: &Observed) -> Verdict {
    let start = scenario.start.unwrap_or_else(t0);
    let slugs: Vec<String> = monitors_of(scenario).into_iter().map(|m| m.slug).collect();
    // An alert that was held all its life (silenced, maintenance, flapping) paged nobody: it is
    // recorded, and counts only when a scenario expects it (with `notified = []`).
    let paged = |alert: &Value| alert["notified"].as_bool() != Some(false);
    let mut verdict = Verdict {
        alerts: observed.alerts.iter().filter(|a| paged(a)).count(),
        lost: observed.lost,
        spooled: observed.spooled,
        ..Verdict::default()
    };
    let mut used = vec![false; observed.alerts.len()];

    // Each delivery key once; each (alert, transition) once.
    let mut by_key: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_transition: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (alert, transition, key) in &observed.deliveries {
        *by_key.entry(key.as_str()).or_default() += 1;
        *by_transition.entry((alert.as_str(), transition.as_str())).or_default() += 1;
    }
    for (key, n) in &by_key {
        if *n > 1 {
            verdict.duplicates.push(format!("notification {key} delivered {n} times"));
        }
    }
    for ((alert, transition), n) in &by_transition {
        if *n > 1 {
            verdict.duplicates.push(format!("alert {alert} `{transition}` sent {n} times"));
        }
    }

    // (expectation, the monitor's slug, or the host for a host alert)
    let expectations: Vec<(&Expect, String, bool)> = scenario
        .expects
        .iter()
        .flat_map(|e| {
            if let Some(host) = &e.host {
                assert!(e.monitor.is_none(), "{}: an expectation names a monitor or a host, not both", scenario.name);
                return vec![(e, host.clone(), true)];
            }
            let pattern = e.monitor.as_deref().expect("an expectation names a `monitor` or a `host`");
            let found: Vec<(&Expect, String, bool)> =
                slugs.iter().filter(|s| matches(pattern, s)).map(|s| (e, s.clone(), false)).collect();
            assert!(!found.is_empty(), "{}: no monitor matches the expectation `{pattern}`", scenario.name);
            found
        })
        .collect();
    verdict.expected = expectations.len();
    for (expect, subject, is_host) in expectations {
        let slug = &subject;
        let opened = start + expect.opened.0;
        let what = format!(
            "{}{slug} {} opened at +{}",
            if is_host { "host " } else { "" },
            expect.cause,
            fmt_delta(expect.opened.0)
        );
        let found = observed.alerts.iter().enumerate().find(|(i, a)| {
            let subject_matches =
                if is_host { a["kind"] == "host" && a["host"] == slug.as_str() } else { a["monitor"] == slug.as_str() };
            !used[*i] && subject_matches && a["cause"] == expect.cause && time_of(a, "opened_at") == Some(opened)
        });
        let Some((index, alert)) = found else {
            verdict.missed.push(what);
            continue;
        };
        used[index] = true;
        let resolved = expect.resolved.map(|r| start + r.0);
        if time_of(alert, "resolved_at") != resolved {
            verdict.wrong.push(format!("{what}: resolved {:?}, expected {resolved:?}", alert["resolved_at"]));
        }
        let announced = expect.announced.unwrap_or(expect.opened);
        if expect.notified.as_ref().is_none_or(|n| !n.is_empty())
            && time_of(alert, "announced_at") != Some(start + announced.0)
        {
            verdict.wrong.push(format!(
                "{what}: announced {:?}, expected +{}",
                alert["announced_at"],
                fmt_delta(announced.0)
            ));
        }
        if let Some(fault) = expect.fault {
            verdict.latencies.push(announced.0 - fault.0);
        }
        let id = alert["id"].as_str().unwrap_or_default();
        let sent: Vec<&str> =
            observed.deliveries.iter().filter(|(a, _, _)| a == id).map(|(_, t, _)| t.as_str()).collect();
        let want: Vec<String> = expect.notified.clone().unwrap_or_else(|| {
            let mut w = vec!["opened".to_string()];
            if expect.resolved.is_some() {
                w.push("resolved".into());
            }
            w
        });
        if sent != want {
            verdict.wrong.push(format!("{what}: notified {sent:?}, expected {want:?}"));
        }
    }
    for (index, alert) in observed.alerts.iter().enumerate() {
        if !used[index] && paged(alert) {
            verdict.false_alerts.push(describe(alert));
        }
    }
    let known: Vec<&str> = observed.alerts.iter().filter_map(|a| a["id"].as_str()).collect();
    for (alert, transition, _) in &observed.deliveries {
        if !known.contains(&alert.as_str()) {
            verdict.false_alerts.push(format!("a `{transition}` notification for an unknown alert {alert}"));
        }
    }
    if scenario.kind == Kind::Transient && (!scenario.expects.is_empty() || !observed.deliveries.is_empty()) {
        verdict.wrong.push(format!(
            "a transient scenario expects no alert: {} expected, {} notifications sent",
            scenario.expects.len(),
            observed.deliveries.len()
        ));
    }
    verdict
}

// ---- the suite ------------------------------------------------------------------------------

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/scenarios exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn fmt_delta(d: TimeDelta) -> String {
    let ms = d.num_milliseconds();
    if ms % 60_000 == 0 && ms != 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.3}s", ms as f64 / 1000.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_alerts_exactly_on_its_outages() {
    let filter = std::env::var("SCENARIO").ok();
    let mut report = String::new();
    let mut failures = Vec::new();
    let (mut transient_alerts, mut outages, mut caught, mut duplicates) = (0, 0, 0, 0);
    let mut latencies = Vec::new();
    report.push_str(&format!(
        "{:<44} {:>9} {:>8} {:>6} {:>6} {:>6} {:>5} {:>12}\n",
        "scenario", "kind", "expected", "paged", "false", "missed", "dup", "latency max"
    ));
    for file in scenario_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let scenario: Scenario =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
        let stem = file.file_stem().unwrap().to_string_lossy().to_string();
        if filter.as_ref().is_some_and(|f| !stem.contains(f.as_str())) {
            continue;
        }
        let observed = play(&scenario).await;
        let verdict = judge(&scenario, &observed);
        if scenario.kind == Kind::Transient {
            transient_alerts += verdict.alerts;
        } else {
            outages += verdict.expected;
            caught += verdict.expected - verdict.missed.len();
        }
        duplicates += verdict.duplicates.len();
        latencies.extend(verdict.latencies.iter().copied());
        let kind = if scenario.kind == Kind::Transient { "transient" } else { "outage" };
        report.push_str(&format!(
            "{:<44} {:>9} {:>8} {:>6} {:>6} {:>6} {:>5} {:>12}\n",
            stem,
            kind,
            verdict.expected,
            verdict.alerts,
            verdict.false_alerts.len(),
            verdict.missed.len(),
            verdict.duplicates.len(),
            verdict.latencies.iter().max().map(|d| fmt_delta(*d)).unwrap_or_else(|| "-".into()),
        ));
        if verdict.lost > 0 {
            report.push_str(&format!("    ({} signals sent while telltale was down were lost)\n", verdict.lost));
        }
        if verdict.spooled > 0 {
            report.push_str(&format!(
                "    ({} signals sent while telltale was down were spooled and delivered after it)\n",
                verdict.spooled
            ));
        }
        if !verdict.passed() {
            let mut why = format!("{stem} ({}): {}\n", scenario.name, scenario.about.trim());
            for (label, items) in [
                ("false alert", &verdict.false_alerts),
                ("missed outage", &verdict.missed),
                ("duplicate", &verdict.duplicates),
                ("wrong", &verdict.wrong),
            ] {
                for item in items {
                    why.push_str(&format!("  {label}: {item}\n"));
                }
            }
            failures.push(why);
        }
    }
    report.push_str(&format!(
        "\nalerts on transient-only scenarios: {transient_alerts}; outages alerted: {caught} of {outages}; \
         duplicate notifications: {duplicates}\n"
    ));
    if !latencies.is_empty() {
        latencies.sort();
        let p = |q: f64| fmt_delta(latencies[((latencies.len() - 1) as f64 * q).round() as usize]);
        report.push_str(&format!(
            "detection latency, fault to alert (virtual time, set by schedule + grace + policy): p50 {} p99 {} max {}\n",
            p(0.5),
            p(0.99),
            fmt_delta(*latencies.last().unwrap())
        ));
    }
    println!("\n{report}");
    assert!(failures.is_empty(), "\n{report}\n{}", failures.join("\n"));
}
