//! Helpers for black-box tests: the real application on port 0 with a fresh SQLite file and an
//! injected clock, a real HTTP client, and a real webhook receiver.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use telltale::app::App;
use telltale::clock::{Clock, ManualClock, SharedClock};
use telltale::config::{Config, NotifyConfig};
use telltale::startup::{Application, Workers};
use telltale_domain::RecordedEvent;
use telltale_domain::client::Scope;
use telltale_domain::span::Span;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Every log line the application wrote in this test process, at the most verbose level
/// telltale logs at, so that a test can check that no secret ever reached a log.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once per process).
pub fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::new(
            "info,telltale=trace,telltale_projections=trace,actix_web=debug,actix_http=debug,sqlx=warn",
        );
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(|| Capture).try_init();
    });
}

/// Fails the test if any of `secrets` appears in a captured log line.
pub fn assert_no_secret_logged(secrets: &[String]) {
    let logs = captured_logs();
    for secret in secrets {
        let (_, tail) = secret.rsplit_once('_').unwrap_or(("", secret));
        for needle in [secret.as_str(), tail] {
            if needle.len() >= 16 && logs.contains(needle) {
                let line = logs.lines().find(|l| l.contains(needle)).unwrap_or_default();
                panic!("a secret reached the logs: {line}");
            }
        }
    }
}

/// The secrets a test app handed out; checked against the logs when the app goes away.
#[derive(Default)]
pub struct Secrets(Mutex<Vec<String>>);

impl Secrets {
    pub fn remember(&self, secret: &str) {
        self.0.lock().unwrap().push(secret.to_string());
    }
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Drop for Secrets {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_no_secret_logged(&self.all());
        }
    }
}

/// An HTTP client (with the process's one TLS crypto provider installed).
pub fn http_client() -> reqwest::Client {
    telltale::app::install_crypto();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    /// An admin key of client `acme`.
    pub key: String,
    pub app: Arc<App>,
    pub clock: ManualClock,
    pub dir: Arc<tempfile::TempDir>,
    pub port: u16,
    /// Every key secret handed out in this test: none may reach a log line.
    pub secrets: Arc<Secrets>,
    handle: ServerHandle,
    task: JoinHandle<anyhow::Result<()>>,
}

#[derive(Default)]
pub struct Options {
    pub dir: Option<Arc<tempfile::TempDir>>,
    pub clock: Option<ManualClock>,
    pub port: u16,
}

pub fn config_for(dir: &tempfile::TempDir, port: u16) -> Config {
    Config {
        database_url: format!("sqlite://{}/telltale.db", dir.path().display()),
        listen: format!("127.0.0.1:{port}"),
        notify: NotifyConfig {
            timeout: Span::from_secs(2),
            max_backoff: Span::from_secs(60),
            give_up_after: Span::from_secs(24 * 3600),
        },
        ..Config::default()
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> TestApp {
        TestApp::spawn_configured(options, |_| {}).await
    }

    /// Like [`TestApp::spawn_with`], with a change to the configuration.
    pub async fn spawn_configured(options: Options, configure: impl FnOnce(&mut Config)) -> TestApp {
        capture_logs();
        let dir = options.dir.unwrap_or_else(|| Arc::new(tempfile::tempdir().unwrap()));
        let clock = options.clock.unwrap_or_else(|| ManualClock::new(t0()));
        let shared: SharedClock = Arc::new(clock.clone());
        let mut config = config_for(&dir, options.port);
        configure(&mut config);
        let application = Application::build_with(config, shared, Workers(2), false).await.expect("the app starts");
        let port = application.port();
        let app = application.app();
        let handle = application.handle();
        let task = tokio::spawn(application.run_until_stopped());
        if !app.client_exists("acme").await.unwrap() {
            app.register_client("acme").await.unwrap();
        }
        let key = app.issue_key("acme", Scope::DEFAULT.to_vec(), None).await.unwrap().token;
        let secrets = Arc::new(Secrets::default());
        secrets.remember(&key);
        TestApp {
            secrets,
            base: format!("http://127.0.0.1:{port}"),
            http: http_client(),
            key,
            app,
            clock,
            dir,
            port,
            handle,
            task,
        }
    }

    /// Stops the server gracefully (as SIGTERM would) and returns what a restart needs.
    pub async fn stop(self) -> (Arc<tempfile::TempDir>, ManualClock, u16) {
        self.handle.stop(true).await;
        self.task.await.unwrap().unwrap();
        (self.dir, self.clock, self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A key of `client` (registered if new) with these scopes.
    pub async fn key_for(&self, client: &str, scopes: &[Scope]) -> String {
        if !self.app.client_exists(client).await.unwrap() {
            self.app.register_client(client).await.unwrap();
        }
        let key = self.app.issue_key(client, scopes.to_vec(), None).await.unwrap().token;
        self.secrets.remember(&key);
        key
    }

    pub async fn get(&self, path: &str) -> Response {
        self.get_as(&self.key, path).await
    }

    pub async fn get_as(&self, key: &str, path: &str) -> Response {
        self.http.get(self.url(path)).bearer_auth(key).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.post_as(&self.key, path, body).await
    }

    pub async fn post_as(&self, key: &str, path: &str, body: Value) -> Response {
        self.http.post(self.url(path)).bearer_auth(key).json(&body).send().await.unwrap()
    }

    pub async fn create_monitor(&self, slug: &str, every: &str, grace: &str) -> Value {
        let response =
            self.post("/v1/monitors", json!({"slug": slug, "schedule": {"every": every}, "grace": grace})).await;
        assert_eq!(response.status(), StatusCode::CREATED, "creating {slug}");
        response.json().await.unwrap()
    }

    /// A monitor with its own alert policy (`{"retry_window": "0s"}`, say).
    pub async fn create_monitor_with_policy(&self, slug: &str, every: &str, grace: &str, policy: Value) -> Value {
        let body = json!({"slug": slug, "schedule": {"every": every}, "grace": grace, "alert_policy": policy});
        let response = self.post("/v1/monitors", body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "creating {slug}");
        response.json().await.unwrap()
    }

    pub async fn beat(&self, slug: &str) -> Value {
        let response = self
            .http
            .post(self.url(&format!("/v1/monitors/{slug}/heartbeat")))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "beat for {slug}");
        response.json().await.unwrap()
    }

    pub async fn add_webhook(&self, name: &str, url: &str) -> Value {
        let response =
            self.post("/v1/channels", json!({"name": name, "kind": "webhook", "config": {"url": url}})).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    pub async fn alerts(&self, state: &str) -> Vec<Value> {
        let body: Value = self.get(&format!("/v1/alerts?state={state}")).await.json().await.unwrap();
        body["alerts"].as_array().unwrap().clone()
    }

    pub async fn log(&self) -> Vec<RecordedEvent> {
        self.app.store.read_all(0, 1_000_000).await.unwrap()
    }

    pub async fn log_types(&self, stream: &str) -> Vec<String> {
        self.log().await.into_iter().filter(|e| e.stream_id == stream).map(|e| e.event_type).collect()
    }

    /// Adds a dashboard user with a password (set through a one-time link, as a person would).
    pub async fn user(&self, name: &str, client: Option<&str>, role: telltale_domain::users::Role, password: &str) {
        self.app.add_user(name, client, role, "test").await.unwrap();
        let link = self.app.issue_sign_in_link(name, "test").await.unwrap();
        self.app.set_password_with_link(link.expose(), password).await.unwrap();
    }

    /// Signs in over HTTP as a browser would; returns the `Cookie` header to send afterwards
    /// (session and CSRF cookies) and the CSRF token.
    pub async fn sign_in(&self, name: &str, password: &str) -> (String, String) {
        let page = self.http.get(self.url("/signin")).send().await.unwrap();
        let csrf = cookie_of(&page, "tt_csrf").expect("the sign-in page sets a CSRF cookie");
        let response = self
            .http
            .post(self.url("/signin"))
            .header("cookie", format!("tt_csrf={csrf}"))
            .form(&[("name", name), ("password", password), ("csrf", &csrf), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{name} signs in");
        let session = cookie_of(&response, "tt_session").expect("a session cookie");
        let csrf = cookie_of(&response, "tt_csrf").expect("signing in issues a CSRF token bound to the session");
        (format!("tt_session={session}; tt_csrf={csrf}"), csrf)
    }

    /// A dashboard page as an operator sees it (signed in as `operator`, added on first use).
    pub async fn dashboard(&self, path: &str) -> String {
        const PASSWORD: &str = "operator password";
        if self.app.person("operator").await.is_none() {
            self.user("operator", None, telltale_domain::users::Role::Operator, PASSWORD).await;
        }
        let (cookie, _) = self.sign_in("operator", PASSWORD).await;
        let response = self.http.get(self.url(path)).header("cookie", cookie).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.text().await.unwrap()
    }

    /// Moves the clock and waits until the detector has acted on every deadline up to then and
    /// the read models hold the result.
    pub async fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
        self.settle().await;
    }

    /// Waits until nothing due remains in the detector, every host has decided what its monitors
    /// told it, and the read models are at the log head.
    pub async fn settle(&self) {
        let now = self.clock.now();
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if self.app.detector.idle_at(now)
                    && self.app.hosts.is_idle()
                    && self.app.host_detector.idle_at(now)
                    && self.app.key_detector.idle_at(now)
                {
                    let head = self.app.store.head().await.unwrap();
                    if self.app.projector.wait_for(head, Duration::from_millis(50)).await {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("detector and projections settle");
    }

    /// Settles, then waits until the outbox holds nothing pending (every notification delivered
    /// or given up).
    pub async fn outbox_settled(&self) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                self.settle().await;
                let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rm_outbox WHERE state = 'pending'")
                    .fetch_one(&self.app.read.pool)
                    .await
                    .unwrap();
                if pending == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the outbox drains");
    }
}

/// One request a webhook receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: Value,
    pub idempotency_key: String,
    pub method: String,
    /// The path as sent, still percent-encoded.
    pub path: String,
    pub query: String,
    /// Header names in lowercase.
    pub headers: std::collections::HashMap<String, String>,
    pub raw: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

/// How a receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// Waits this long (real time) before answering: a receiver slower than telltale's timeout.
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply { status, body: String::new(), delay: Duration::ZERO }
    }
    pub fn json(status: u16, body: Value) -> Reply {
        Reply { status, body: body.to_string(), delay: Duration::ZERO }
    }
}

type Responder = Arc<dyn Fn() -> Reply + Send + Sync>;

/// A real HTTP server on loopback that records every request and answers with the replies it
/// is told to (200 once the script runs out), or with what a function says.
pub struct Receiver {
    pub url: String,
    /// `http://127.0.0.1:port`, for vendor base URLs.
    pub base: String,
    rx: mpsc::UnboundedReceiver<Received>,
}

#[derive(Clone)]
struct ReceiverState {
    tx: mpsc::UnboundedSender<Received>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    responder: Option<Responder>,
}

async fn receive(
    state: actix_web::web::Data<ReceiverState>,
    req: actix_web::HttpRequest,
    body: actix_web::web::Bytes,
) -> actix_web::HttpResponse {
    let reply = match &state.responder {
        Some(respond) => respond(),
        None => state.script.lock().unwrap().pop_front().unwrap_or(Reply::status(200)),
    };
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_string()))
        .collect::<std::collections::HashMap<_, _>>();
    let key = headers.get("idempotency-key").cloned().unwrap_or_default();
    let _ = state.tx.send(Received {
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        idempotency_key: key,
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or_default().to_string(),
        headers,
        raw: body.to_vec(),
        status: reply.status,
    });
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = actix_web::HttpResponse::build(actix_web::http::StatusCode::from_u16(reply.status).unwrap());
    if reply.body.is_empty() { response.finish() } else { response.content_type("application/json").body(reply.body) }
}

impl Receiver {
    pub async fn start() -> Receiver {
        Receiver::start_on(0, vec![]).await
    }

    /// Listens on `port` (0 for any) and answers the first requests with `script`.
    pub async fn start_on(port: u16, script: Vec<u16>) -> Receiver {
        Receiver::scripted(port, script.into_iter().map(Reply::status).collect()).await
    }

    pub async fn scripted(port: u16, script: Vec<Reply>) -> Receiver {
        Receiver::serve(port, ReceiverState::new(script, None)).await
    }

    /// Answers every request with what `respond` says at the time.
    pub async fn responding(respond: impl Fn() -> Reply + Send + Sync + 'static) -> Receiver {
        Receiver::serve(0, ReceiverState::new(vec![], Some(Arc::new(respond)))).await
    }

    async fn serve(port: u16, (state, rx): (ReceiverState, mpsc::UnboundedReceiver<Received>)) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(actix_web::web::Data::new(state.clone()))
                .default_service(actix_web::web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Receiver { url: format!("http://127.0.0.1:{port}/hook"), base: format!("http://127.0.0.1:{port}"), rx }
    }

    /// The next request, or `None` if none comes within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Received> {
        tokio::time::timeout(wait, self.rx.recv()).await.ok().flatten()
    }

    /// Everything received so far without waiting.
    pub fn drain(&mut self) -> Vec<Received> {
        let mut out = Vec::new();
        while let Ok(r) = self.rx.try_recv() {
            out.push(r);
        }
        out
    }
}

impl ReceiverState {
    fn new(script: Vec<Reply>, responder: Option<Responder>) -> (ReceiverState, mpsc::UnboundedReceiver<Received>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ReceiverState { tx, script: Arc::new(Mutex::new(script.into())), responder }, rx)
    }
}

/// Waits (polling a condition, never a guess) until `check` holds, or fails with `what`.
pub async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    tokio::time::timeout(Duration::from_secs(15), async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

/// The value a response sets for cookie `name`.
pub fn cookie_of(response: &Response, name: &str) -> Option<String> {
    response.headers().get_all("set-cookie").iter().find_map(|v| {
        let text = v.to_str().ok()?;
        let (pair, _) = text.split_once(';').unwrap_or((text, ""));
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim().to_string())
    })
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn secs(s: i64) -> TimeDelta {
    TimeDelta::seconds(s)
}

pub fn millis(ms: i64) -> TimeDelta {
    TimeDelta::milliseconds(ms)
}
