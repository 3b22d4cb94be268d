//! Host correlation, live. The monitor handler's hook shows every monitor's state after each
//! change; what it means for hosts ([`MemberView`]: which host the monitor is an active member
//! of, and whether it is silent) is compared with what was last told, and only a difference
//! becomes an observation for the host (heartbeats of a healthy monitor cost a map lookup). A
//! worker hands the observations, in order, to the Host aggregate, which records them and
//! decides (see `telltale_domain::host`). Host streams are independent, so different hosts are
//! decided concurrently; the observations of one host are decided in the order they were made.
//!
//! At start-up every monitor is shown to the hook again, so a host learns whatever it missed
//! while telltale was stopped (or crashed between a miss and its host's decision).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use telltale_domain::host::{HostAggregate, HostCommand, MemberView, Observation, observations};
use telltale_domain::ids::streams;
use telltale_domain::monitor::Monitor;
use tokio::sync::{Notify, watch};

use crate::commands::{Handler, StateHook};

/// Hosts decided at once.
const CONCURRENT_HOSTS: usize = 16;

pub struct Hosts {
    handler: Arc<Handler<HostAggregate>>,
    /// What each monitor stream last told the hosts.
    views: Mutex<HashMap<String, MemberView>>,
    /// Observations waiting for their host: (host stream, observation), in the order made.
    queue: Mutex<Vec<(String, Observation)>>,
    /// Observations queued or being decided.
    pending: AtomicUsize,
    wake: Notify,
}

impl Hosts {
    pub fn new(handler: Arc<Handler<HostAggregate>>) -> Arc<Hosts> {
        Arc::new(Hosts {
            handler,
            views: Mutex::default(),
            queue: Mutex::default(),
            pending: AtomicUsize::new(0),
            wake: Notify::new(),
        })
    }

    pub fn handler(&self) -> &Arc<Handler<HostAggregate>> {
        &self.handler
    }

    /// The hook for the monitor handler.
    pub fn hook(self: &Arc<Self>) -> StateHook<Monitor> {
        let hosts = Arc::downgrade(self);
        Arc::new(move |stream: &str, state: &Monitor| {
            if let Some(hosts) = hosts.upgrade() {
                hosts.observe(stream, state);
            }
        })
    }

    fn observe(&self, stream: &str, monitor: &Monitor) {
        let made = {
            let mut views = self.views.lock().expect("views lock");
            let before = views.get(stream);
            if before.unwrap_or(&MemberView::default()).shown_by(monitor) {
                return;
            }
            let view = MemberView::of(monitor);
            let before = before.cloned().unwrap_or_default();
            let made = observations(&monitor.client, &monitor.slug, &before, &view, monitor.last_signal_at);
            if view == MemberView::default() {
                views.remove(stream);
            } else {
                views.insert(stream.to_string(), view);
            }
            made
        };
        if made.is_empty() {
            return;
        }
        self.pending.fetch_add(made.len(), Ordering::SeqCst);
        {
            let mut queue = self.queue.lock().expect("queue lock");
            queue.extend(made.into_iter().map(|o| (streams::host(&o.client, &o.host), o)));
        }
        self.wake.notify_one();
    }

    /// Whether every observation made so far has been decided.
    pub fn is_idle(&self) -> bool {
        self.pending.load(Ordering::SeqCst) == 0
    }

    /// Decides every queued observation (and those queued meanwhile), then returns.
    pub async fn process(&self) {
        loop {
            let jobs = std::mem::take(&mut *self.queue.lock().expect("queue lock"));
            if jobs.is_empty() {
                return;
            }
            let mut by_host: Vec<(String, Vec<Observation>)> = Vec::new();
            let mut index: HashMap<String, usize> = HashMap::new();
            for (stream, observation) in jobs {
                match index.get(&stream) {
                    Some(&i) => by_host[i].1.push(observation),
                    None => {
                        index.insert(stream.clone(), by_host.len());
                        by_host.push((stream, vec![observation]));
                    }
                }
            }
            futures::stream::iter(by_host)
                .for_each_concurrent(CONCURRENT_HOSTS, |(stream, observations)| async move {
                    let n = observations.len();
                    if let Err(e) = self.handler.execute(&stream, HostCommand::Observe(observations), None).await {
                        tracing::error!(stream, error = %e, "hosts: an observation could not be decided; the host learns it at the next start");
                    }
                    self.pending.fetch_sub(n, Ordering::SeqCst);
                })
                .await;
        }
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            self.process().await;
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
