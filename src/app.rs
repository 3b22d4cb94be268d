//! The services one telltale process runs, wired together: the log, the read models and their
//! runner, the command handlers, the detector. The HTTP server and the CLI both use this.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;
use telltale_domain::EventPayload;
use telltale_domain::client::{ClientAggregate, ClientCommand};
use telltale_domain::host::HostAggregate;
use telltale_domain::ids::{self, streams};
use telltale_domain::monitor::{ClientDefaults, MonitorAggregate, MonitorCommand};
use telltale_domain::system::{ServiceStarted, ServiceStopped, SystemEvent};
use telltale_domain::users::UserAggregate;
use telltale_projections::models::clients::{self, KeyRecord};
use telltale_projections::{Projector, ReadDb};
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::commands::{CommandError, Handler};
use crate::config::Config;
use crate::detector::Detector;
use crate::hosts::Hosts;
use crate::store::sqlite::SqliteStore;
use crate::store::{EventStore, ExpectedVersion, NewEvent, StoreError};

/// How long a read waits for the read models to catch up with the log before it answers from
/// what they hold.
const CONSISTENT_READ_WAIT: Duration = Duration::from_secs(2);

pub struct App {
    pub config: Config,
    pub clock: SharedClock,
    pub store: Arc<dyn EventStore>,
    pub read: ReadDb,
    pub projector: Arc<Projector>,
    pub monitors: Arc<Handler<MonitorAggregate>>,
    pub clients: Arc<Handler<ClientAggregate>>,
    /// The user directory (one stream).
    pub users: Arc<Handler<UserAggregate>>,
    pub detector: Arc<Detector>,
    /// Host correlation: observes every monitor and decides host alerts.
    pub hosts: Arc<Hosts>,
    /// Releases a host's laggards when their wait ends.
    pub host_detector: Arc<Detector<HostAggregate>>,
    /// Records key expiries when they fall due.
    pub key_detector: Arc<Detector<ClientAggregate>>,
    pub node_id: Uuid,
    /// When this process started to receive (recorded as `ServiceStarted` for a server).
    pub started_at: DateTime<Utc>,
    /// Rate limits and failure counters.
    pub guards: crate::limits::Guards,
    keys: KeyCache,
}

/// How long a key looked up in the read model is trusted without looking again. Changes made
/// through this process clear the cache at once; this bounds how long a change made by another
/// process (the CLI, another node) takes to apply.
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

type KeyCache = Arc<std::sync::Mutex<std::collections::HashMap<String, (KeyRecord, std::time::Instant)>>>;

/// Whether opening records a service start: a server does, a CLI command does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Cli,
}

pub use crate::keys::{IssuedKey, hash_secret, parse_token};

impl App {
    pub async fn open(config: Config, clock: SharedClock, role: Role) -> anyhow::Result<Arc<App>> {
        install_crypto();
        if !config.database_url.starts_with("sqlite:") {
            anyhow::bail!(
                "unsupported database URL `{}`: this build stores its log in SQLite (sqlite://path/to/file.db)",
                config.database_url
            );
        }
        let gate: crate::store::WriteGate = Arc::default();
        let sqlite = SqliteStore::open(&config.database_url, clock.clone(), gate.clone()).await?;
        let store: Arc<dyn EventStore> = Arc::new(sqlite);
        sqlx::any::install_default_drivers();
        let read_pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            })
            .connect(&config.database_url)
            .await?;
        let read = ReadDb { pool: read_pool, gate: Some(gate) };
        let projector = Arc::new(Projector::new(read.clone(), store.clone(), telltale_projections::all()));
        projector.prepare().await?;
        projector.catch_up().await?;

        let node_id = Uuid::new_v4();
        let started_at = match role {
            Role::Server => {
                let at = clock.now();
                let event = SystemEvent::ServiceStarted(ServiceStarted {
                    node_id,
                    at,
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    down_since: last_seen_alive(store.as_ref()).await?,
                });
                store.append(streams::SYSTEM, ExpectedVersion::Any, vec![NewEvent::from(event.encode())]).await?;
                at
            }
            Role::Cli => clock.now(),
        };
        let monitors = Arc::new(Handler::new(store.clone(), clock.clone(), started_at));
        let clients: Arc<Handler<ClientAggregate>> = Arc::new(Handler::new(store.clone(), clock.clone(), started_at));
        // The CLI writes client streams and the directory while the server runs.
        clients.catch_up_before_use();
        let users: Arc<Handler<UserAggregate>> = Arc::new(Handler::new(store.clone(), clock.clone(), started_at));
        users.catch_up_before_use();
        let keys: KeyCache = Arc::default();
        let cache = Arc::downgrade(&keys);
        let key_detector = Detector::<ClientAggregate>::new(clock.clone());
        let expiries = key_detector.hook(started_at);
        clients.set_hook(Arc::new(move |stream, state| {
            if let Some(cache) = cache.upgrade() {
                cache.lock().expect("key cache lock").clear();
            }
            expiries(stream, state);
        }));
        let detector = Detector::new(clock.clone());
        let host_handler: Arc<Handler<HostAggregate>> =
            Arc::new(Handler::new(store.clone(), clock.clone(), started_at));
        let host_detector = Detector::<HostAggregate>::new(clock.clone());
        host_handler.set_hook(host_detector.hook(started_at));
        let hosts = Hosts::new(host_handler.clone());
        let (deadlines, observer) = (detector.hook(started_at), hosts.hook());
        monitors.set_hook(Arc::new(move |stream, state| {
            deadlines(stream, state);
            observer(stream, state);
        }));
        if role == Role::Server {
            let warmed_hosts = host_handler.warm("host:").await?;
            let warmed = monitors.warm("monitor:").await?;
            // Hosts learn what they missed while telltale was stopped (or crashed between a miss
            // and its host's decision) before anything is sent.
            hosts.process().await;
            tracing::info!(
                monitors = warmed,
                hosts = warmed_hosts,
                deadlines = detector.len(),
                "loaded monitor and host states"
            );
            clients.warm("client:").await?;
        }
        let guards = crate::limits::Guards::new(&config.limits);
        let app = Arc::new(App {
            guards,
            config,
            clock,
            store,
            read,
            projector,
            monitors,
            clients,
            users,
            detector,
            hosts,
            host_detector,
            key_detector,
            node_id,
            started_at,
            keys,
        });
        if role == Role::Server {
            // A change of a client's defaults that a crash interrupted reaches the rest now.
            for stream in app.store.list_streams("client:").await? {
                let Some(client) = stream.strip_prefix("client:") else { continue };
                let changed = app.apply_client_defaults(client).await?;
                if changed > 0 {
                    tracing::info!(client, monitors = changed, "client defaults brought up to date");
                }
            }
        }
        Ok(app)
    }

    /// Waits (briefly) until the read models hold everything appended so far, so that a client
    /// reads its own writes.
    pub async fn consistent(&self) {
        let head = *self.store.subscribe().borrow();
        if !self.projector.wait_for(head, CONSISTENT_READ_WAIT).await {
            tracing::warn!(head, "read models lag behind the log; answering from what they hold");
        }
    }

    /// Records a clean stop at `at`, after everything due by then was acted on.
    pub async fn record_stop(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        let event = SystemEvent::ServiceStopped(ServiceStopped { node_id: self.node_id, at });
        self.store.append(streams::SYSTEM, ExpectedVersion::Any, vec![NewEvent::from(event.encode())]).await?;
        Ok(())
    }

    pub async fn register_client(&self, name: &str) -> anyhow::Result<()> {
        ids::validate_client_name(name)?;
        let command = ClientCommand::Register { client: name.to_string(), display_name: name.to_string() };
        self.clients.execute(&streams::client(name), command, None).await.map_err(command_error)?;
        Ok(())
    }

    pub async fn client_exists(&self, name: &str) -> anyhow::Result<bool> {
        Ok(self.clients.state(&streams::client(name)).await?.registered)
    }

    /// A key's record, from a short-lived cache or the read model. After a change to any client
    /// in this process, the next lookup waits for the read models so it sees that change.
    pub async fn find_key(&self, key_id: &str) -> Result<Option<KeyRecord>, sqlx::Error> {
        if let Some((record, at)) = self.keys.lock().expect("key cache lock").get(key_id)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(Some(record.clone()));
        }
        self.consistent().await;
        let mut record = clients::find_key(&self.read.pool, key_id).await?;
        if record.is_none() {
            // A key issued a moment ago by another process may not be in the read model yet.
            let _ = self.store.head().await;
            self.consistent().await;
            record = clients::find_key(&self.read.pool, key_id).await?;
        }
        if let Some(record) = &record {
            self.keys
                .lock()
                .expect("key cache lock")
                .insert(key_id.to_string(), (record.clone(), std::time::Instant::now()));
        }
        Ok(record)
    }

    /// What a client states for all its monitors: its default alert policy and maintenance
    /// windows.
    pub async fn client_defaults(&self, client: &str) -> Result<ClientDefaults, StoreError> {
        Ok(self.clients.state(&streams::client(client)).await?.defaults())
    }

    /// Records the client's current defaults on every one of its monitors whose stream holds
    /// others (each monitor's decisions depend only on its own stream, which keeps replay exact).
    /// Run after every change of the defaults, and at start-up for whatever a crash left undone.
    /// Returns how many monitors were brought up to date.
    pub async fn apply_client_defaults(&self, client: &str) -> Result<usize, StoreError> {
        let defaults = self.client_defaults(client).await?.normalized();
        let mut changed = 0;
        for stream in self.store.list_streams(&format!("monitor:{client}:")).await? {
            if self.bring_up_to_date(&stream, &defaults).await? {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Records the client's current defaults on one monitor if its stream holds others (after
    /// its creation, say, when they changed meanwhile). Returns whether it did.
    pub async fn apply_client_defaults_to(&self, client: &str, slug: &str) -> Result<bool, StoreError> {
        let defaults = self.client_defaults(client).await?.normalized();
        self.bring_up_to_date(&streams::monitor(client, slug), &defaults).await
    }

    async fn bring_up_to_date(&self, stream: &str, defaults: &ClientDefaults) -> Result<bool, StoreError> {
        let state = self.monitors.state(stream).await?;
        if !state.exists() || &state.client_defaults() == defaults {
            return Ok(false);
        }
        match self.monitors.execute(stream, MonitorCommand::ApplyClientDefaults(defaults.clone()), None).await {
            Ok(_) => Ok(true),
            Err(CommandError::Domain(e)) => {
                tracing::warn!(stream, error = %e, "client defaults not applied");
                Ok(false)
            }
            Err(CommandError::Store(e)) => Err(e),
        }
    }

    pub async fn client_names(&self) -> anyhow::Result<Vec<String>> {
        Ok(telltale_projections::models::clients::client_names(&self.read.pool).await?)
    }
}

fn command_error<E: std::error::Error + Send + Sync + 'static>(e: CommandError<E>) -> anyhow::Error {
    match e {
        CommandError::Domain(e) => anyhow::Error::new(e),
        CommandError::Store(e) => anyhow::Error::new(e),
    }
}

/// One rustls crypto provider for the whole binary (ring).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// When the previous telltale on this log was last seen alive, if it did not record its stop:
/// the commit time of the last event, which is at or after every deadline it acted on.
async fn last_seen_alive(store: &dyn EventStore) -> Result<Option<DateTime<Utc>>, StoreError> {
    let head = store.head().await?;
    if head == 0 {
        return Ok(None);
    }
    let last = store.read_all(head - 1, 1).await?;
    Ok(last.into_iter().find(|e| e.event_type != "ServiceStopped").map(|e| e.recorded_at))
}
