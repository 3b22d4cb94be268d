//! Start-up, as zero2prod does it: `Application::build` binds the listener (port 0 in tests),
//! opens everything, and returns; `run_until_stopped` serves until told to stop.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::Logger;
use actix_web::web::{self, Data};
use actix_web::{App as ActixApp, HttpServer};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::{App, Role};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::notify::Dispatcher;
use crate::store::sqlite::ServerLock;

pub struct Application {
    _lock: Option<ServerLock>,
    app: Arc<App>,
    server: Server,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// How many HTTP worker threads to run.
#[derive(Debug, Clone, Copy)]
pub struct Workers(pub usize);

impl Default for Workers {
    fn default() -> Self {
        Workers(std::thread::available_parallelism().map_or(2, |n| n.get()).max(2))
    }
}

impl Application {
    pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<Application> {
        Application::build_with(config, clock, Workers::default(), true).await
    }

    /// `signals`: whether SIGINT/SIGTERM stop the server (the binary wants it, tests do not).
    pub async fn build_with(
        config: Config,
        clock: SharedClock,
        workers: Workers,
        signals: bool,
    ) -> anyhow::Result<Application> {
        let lock = ServerLock::acquire(&config.database_url)?;
        let listener = TcpListener::bind(&config.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener.local_addr()?;
        let public_url = config.public_url_for(addr);
        let app = App::open(config, clock, Role::Server).await?;
        let (shutdown, rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(app.projector.clone().run(rx.clone())),
            tokio::spawn(app.detector.clone().run(app.monitors.clone(), rx.clone())),
            tokio::spawn(app.hosts.clone().run(rx.clone())),
            tokio::spawn(app.host_detector.clone().run(app.hosts.handler().clone(), rx.clone())),
            tokio::spawn(app.key_detector.clone().run(app.clients.clone(), rx.clone())),
            tokio::spawn(Dispatcher::new(app.clone(), public_url).run(rx)),
        ];

        let data = Data::from(app.clone());
        let mut server = HttpServer::new(move || {
            ActixApp::new()
                .wrap(actix_web::middleware::from_fn(crate::web::auth::csrf_guard))
                .wrap(actix_web::middleware::from_fn(crate::api::auth::rotation_header))
                .wrap(
                    Logger::new("%a \"%{request}xi\" %s %b %Dms")
                        .custom_request_replace("request", crate::web::auth::redacted_request_line),
                )
                .app_data(data.clone())
                .configure(crate::api::configure)
                .configure(crate::web::configure)
                .default_service(web::to(crate::api::not_found))
        })
        .workers(workers.0)
        .shutdown_timeout(10)
        .listen(listener)?;
        if !signals {
            server = server.disable_signals();
        }
        let server = server.run();
        Ok(Application { _lock: lock, app, server, addr, shutdown, tasks })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn app(&self) -> Arc<App> {
        self.app.clone()
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped (by a signal or through its handle), then stops the
    /// background work and records the stop.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let _lock = self._lock;
        let served = self.server.await;
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        // Act on whatever fell due up to this instant, then say so (see `Detector::act_on_due`).
        let now = self.app.clock.now();
        self.app.detector.act_on_due(&self.app.monitors, now).await;
        self.app.hosts.process().await;
        self.app.host_detector.act_on_due(self.app.hosts.handler(), now).await;
        self.app.key_detector.act_on_due(&self.app.clients, now).await;
        if let Err(e) = self.app.record_stop(now).await {
            tracing::warn!(error = %e, "could not record the stop");
        }
        served?;
        tracing::info!("stopped cleanly: due deadlines acted on and the stop recorded");
        Ok(())
    }
}
