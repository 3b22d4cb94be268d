//! Delivery in order: every new event goes out only after everything spooled before it, or is
//! spooled behind it.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::client::{Outcome, Sender};
use super::spool::{Entry, Spool, SpoolLock};

/// How long `run` and `ping` wait for another process's flush before spooling behind it.
pub const LOCK_WAIT: Duration = Duration::from_secs(3);
/// How long `run` and `ping` spend delivering an old backlog before they spool instead.
pub const FLUSH_BUDGET: Duration = Duration::from_secs(10);

/// Prints one line on stderr, prefixed so it can be told from the command's own output.
pub fn say(line: impl std::fmt::Display) {
    eprintln!("telltale: {line}");
}

/// The time now, as events carry it.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A new event body: `type`, a fresh `event_id`, `sent_at`, and `host` when known.
pub fn new_event(kind: &str, host: Option<&str>) -> Map<String, Value> {
    let mut event = Map::new();
    event.insert("type".into(), kind.into());
    event.insert("event_id".into(), Uuid::new_v4().to_string().into());
    event.insert("sent_at".into(), now_rfc3339().into());
    if let Some(host) = host {
        event.insert("host".into(), host.into());
    }
    event
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    Delivered {
        duplicate: bool,
    },
    Spooled,
    /// Refused for good by the server, or lost (neither sent nor spooled); already printed.
    Dropped,
    /// Reporting is off (no key or no usable URL).
    Off,
}

/// What a flush did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flushed {
    pub delivered: usize,
    pub duplicates: usize,
    pub dropped: usize,
    pub remaining: usize,
    /// Why it stopped with events remaining.
    pub stopped: Option<String>,
}

/// Delivers the spool in order, oldest first, while holding its lock; stops at the first event
/// that cannot be delivered (or at `deadline`), leaving it and everything behind it in place.
/// Files spooled while it runs are delivered too.
pub async fn flush(spool: &Spool, _lock: &SpoolLock, sender: &Sender, deadline: Option<Instant>) -> Flushed {
    let mut report = Flushed::default();
    loop {
        let files = match spool.list() {
            Ok(files) => files,
            Err(e) => {
                report.stopped = Some(format!("cannot list the spool {}: {e}", spool.dir().display()));
                return report;
            }
        };
        if files.is_empty() {
            return report;
        }
        for (i, path) in files.iter().enumerate() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                report.remaining = files.len() - i;
                report.stopped = Some("out of time for the backlog".into());
                return report;
            }
            let entry = match Spool::read(path) {
                Ok(entry) => entry,
                Err(problem) => {
                    match Spool::set_aside(path) {
                        Ok(bad) => say(format!("{problem}; moved it to {}", bad.display())),
                        Err(e) => {
                            report.remaining = files.len() - i;
                            report.stopped = Some(format!("{problem}; cannot move it aside: {e}"));
                            return report;
                        }
                    }
                    continue;
                }
            };
            match sender.send(&entry.slug, &entry.event).await {
                Outcome::Delivered { duplicate } => {
                    report.delivered += 1;
                    report.duplicates += usize::from(duplicate);
                }
                Outcome::Refused(answer) => {
                    report.dropped += 1;
                    say(format!(
                        "dropped a spooled {} for {}: the server refused it: {answer}",
                        kind(&entry),
                        entry.slug
                    ));
                }
                Outcome::Failed(reason) => {
                    report.remaining = files.len() - i;
                    report.stopped = Some(reason);
                    return report;
                }
            }
            if let Err(e) = std::fs::remove_file(path) {
                report.remaining = files.len() - i;
                report.stopped = Some(format!("cannot remove {}: {e}", path.display()));
                return report;
            }
        }
    }
}

fn kind(entry: &Entry) -> &str {
    entry.event["type"].as_str().unwrap_or("event")
}

/// Reports the events of one `run` or `ping`, in order, never failing.
pub struct Reporter {
    sender: Option<Sender>,
    spool: Spool,
    /// Set after a failed delivery: the rest of this process's events are spooled at once, so an
    /// unreachable server costs one timeout per process at most.
    down: bool,
}

impl Reporter {
    /// `sender` is `None` when reporting is off.
    pub fn new(sender: Option<Sender>, spool: Spool) -> Reporter {
        Reporter { sender, spool, down: false }
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Delivers `event` for `slug` after everything spooled before it, or spools it.
    pub async fn report(&mut self, slug: &str, event: Map<String, Value>) -> Reported {
        let Some(sender) = &self.sender else { return Reported::Off };
        let entry = Entry { slug: slug.to_string(), event: Value::Object(event), spooled_at: String::new() };
        if self.down {
            return spool_it(&self.spool, entry, "not tried: a delivery failed a moment ago");
        }
        let lock = match self.spool.try_lock_within(LOCK_WAIT) {
            Ok(Some(lock)) => Some(lock),
            // Another process is delivering the spool; it also delivers what is spooled meanwhile.
            Ok(None) => return spool_it(&self.spool, entry, "another telltale is delivering the spool"),
            Err(e) => {
                say(format!("cannot lock the spool {}: {e}; sending directly", self.spool.dir().display()));
                None
            }
        };
        if let Some(lock) = &lock {
            let backlog = flush(&self.spool, lock, sender, Some(Instant::now() + FLUSH_BUDGET)).await;
            if let Some(reason) = backlog.stopped {
                self.down = true;
                let reason = format!("{reason}; {} older event(s) wait before it", backlog.remaining);
                return spool_it(&self.spool, entry, &reason);
            }
        }
        let reported = match sender.send(&entry.slug, &entry.event).await {
            Outcome::Delivered { duplicate } => Reported::Delivered { duplicate },
            Outcome::Refused(answer) => {
                say(format!("{} for {} not recorded: the server refused it: {answer}", kind(&entry), entry.slug));
                Reported::Dropped
            }
            Outcome::Failed(reason) => {
                self.down = true;
                let reason = format!("{}: {reason}", sender.base());
                return spool_it(&self.spool, entry, &reason);
            }
        };
        if let Some(lock) = &lock {
            // Deliver what another process spooled while this one held the lock.
            flush(&self.spool, lock, sender, Some(Instant::now() + FLUSH_BUDGET)).await;
        }
        reported
    }
}

/// Spools an entry, saying so (and why) on stderr.
fn spool_it(spool: &Spool, mut entry: Entry, reason: &str) -> Reported {
    entry.spooled_at = now_rfc3339();
    let what = format!("{} for {}", kind(&entry), entry.slug);
    match spool.write(&entry) {
        Ok(path) => {
            say(format!("{what} spooled to {} ({reason})", display(&path)));
            Reported::Spooled
        }
        Err(e) => {
            say(format!("{what} lost: cannot spool it in {} ({reason}): {e}", spool.dir().display()));
            Reported::Dropped
        }
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
