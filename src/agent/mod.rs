//! The client side of telltale, for the machines that run jobs: `telltale run` wraps a command
//! and reports its run, `telltale ping` sends one event from a script, and `telltale spool`
//! shows and delivers the events that could not be delivered when they happened.
//!
//! The rule everything here follows: a job never fails, and is never held up for long, because
//! of telltale. A delivery problem is one line on stderr (prefixed `telltale:`) and the event
//! waits in the spool, to be delivered, in order, before the next one.

pub mod client;
pub mod config;
pub mod report;
pub mod run;
pub mod spool;

use std::ffi::OsString;
use std::path::Path;

use clap::{Args, Subcommand};
use uuid::Uuid;

use self::client::Sender;
use self::config::{AgentConfig, ConnectionArgs, resolve};
use self::report::{Reporter, flush, new_event, say};
use self::spool::Spool;

/// `telltale run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The monitor the runs belong to.
    #[arg(long, short = 'm', value_name = "SLUG")]
    pub monitor: String,
    /// The run's id [default: a new UUID].
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// The host reported [default: this machine's hostname].
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `telltale ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// The monitor.
    #[arg(value_name = "SLUG")]
    pub slug: String,
    /// Report the start of a run (prints its run id).
    #[arg(long, conflicts_with_all = ["fail", "exit_code"])]
    pub start: bool,
    /// Report a failed run.
    #[arg(long, conflicts_with = "exit_code")]
    pub fail: bool,
    /// Report the end of a run with this exit code: 0 completed, anything else failed.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub exit_code: Option<i32>,
    /// The run this event belongs to (for the end of a run, default: the latest open run).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// A message to record with the event.
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
    /// The host reported [default: this machine's hostname].
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Exit 3 when the server refuses the event (a wrong key, an unknown monitor), to check a
    /// setup; without it a refusal is said on stderr and the exit code is 0, so that monitoring
    /// never fails a job.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `telltale spool …`.
#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// Delivers every spooled event now, oldest first, and says how many were delivered and remain.
    Flush {
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Lists the spooled events, oldest first.
    List {
        #[command(flatten)]
        connection: ConnectionArgs,
    },
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// This machine's hostname.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

fn sender_for(config: &AgentConfig) -> Result<Sender, String> {
    let key = config.key.clone().ok_or_else(|| format!("no API key: {}", config.key_hint()))?;
    Sender::with_key_file(&config.url, key, config.key_file.clone())
}

/// `telltale run`: returns the exit code to leave with, the command's own.
pub async fn run(args: RunArgs, config_file: Option<&Path>) -> i32 {
    // Caught before anything else, so that none is lost while the start is reported.
    let signals = run::Signals::catch();
    let config = resolve(&args.connection, config_file, &env);
    for problem in &config.problems {
        say(problem);
    }
    let sender = match sender_for(&config) {
        Ok(sender) => Some(sender),
        Err(problem) => {
            say(format!("{problem}; running the command without reporting it"));
            None
        }
    };
    let mut reporter = Reporter::new(sender, Spool::new(&config.spool_dir));
    let spec = run::RunSpec {
        slug: args.monitor,
        run_id: args.run_id.unwrap_or_else(|| Uuid::new_v4().to_string()),
        host: args.host.or_else(hostname),
        command: args.command,
    };
    run::run(spec, &mut reporter, signals).await
}

/// `telltale ping`: 0 once the event is delivered, refused or spooled; 2 when the setup is wrong;
/// with `--strict`, 3 when the server refused it.
pub async fn ping(args: PingArgs, config_file: Option<&Path>) -> i32 {
    let config = resolve(&args.connection, config_file, &env);
    if !config.problems.is_empty() {
        config.problems.iter().for_each(say);
        return 2;
    }
    let sender = match sender_for(&config) {
        Ok(sender) => sender,
        Err(problem) => {
            say(problem);
            return 2;
        }
    };
    let kind = match (args.start, args.fail, args.exit_code) {
        (true, _, _) => "started",
        (_, true, _) => "failed",
        (_, _, Some(0)) => "completed",
        (_, _, Some(_)) => "failed",
        (_, _, None) => "heartbeat",
    };
    let host = args.host.or_else(hostname);
    let mut event = new_event(kind, host.as_deref());
    let run_id = match (&args.run_id, args.start) {
        (Some(id), _) => Some(id.clone()),
        (None, true) => Some(Uuid::new_v4().to_string()),
        (None, false) => None,
    };
    if let Some(id) = &run_id {
        event.insert("run_id".into(), id.clone().into());
    }
    if let Some(code) = args.exit_code {
        event.insert("exit_code".into(), code.into());
    }
    if let Some(message) = args.message {
        event.insert("message".into(), message.into());
    }
    let mut reporter = Reporter::new(Some(sender), Spool::new(&config.spool_dir));
    let reported = reporter.report(&args.slug, event).await;
    if args.strict && matches!(reported, report::Reported::Dropped) {
        return 3;
    }
    if args.start
        && let Some(id) = run_id
    {
        println!("{id}");
    }
    0
}

/// `telltale spool flush|list`: 0 when the spool is empty afterwards (or was listed), 1 when
/// events remain, 2 when the setup is wrong.
pub async fn spool(command: SpoolCommand, config_file: Option<&Path>) -> i32 {
    match command {
        SpoolCommand::List { connection } => {
            let config = resolve(&connection, config_file, &env);
            let spool = Spool::new(&config.spool_dir);
            let files = match spool.list() {
                Ok(files) => files,
                Err(e) => {
                    say(format!("cannot list the spool {}: {e}", spool.dir().display()));
                    return 2;
                }
            };
            for path in &files {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                match Spool::read(path) {
                    Ok(entry) => {
                        let field = |f: &str| entry.event[f].as_str().unwrap_or("-").to_string();
                        println!(
                            "{name}  {}  {}  run {}  sent {}",
                            entry.slug,
                            field("type"),
                            field("run_id"),
                            field("sent_at")
                        );
                    }
                    Err(problem) => println!("{name}  unreadable: {problem}"),
                }
            }
            eprintln!("{} event(s) waiting in {}", files.len(), spool.dir().display());
            0
        }
        SpoolCommand::Flush { connection } => {
            let config = resolve(&connection, config_file, &env);
            if !config.problems.is_empty() {
                config.problems.iter().for_each(say);
                return 2;
            }
            let sender = match sender_for(&config) {
                Ok(sender) => sender,
                Err(problem) => {
                    say(problem);
                    return 2;
                }
            };
            let spool = Spool::new(&config.spool_dir);
            let lock = match spool.lock() {
                Ok(lock) => lock,
                Err(e) => {
                    say(format!("cannot lock the spool {}: {e}", spool.dir().display()));
                    return 2;
                }
            };
            let flushed = flush(&spool, &lock, &sender, None).await;
            let mut line = format!("delivered {} event(s)", flushed.delivered);
            if flushed.duplicates > 0 {
                line.push_str(&format!(" ({} already recorded)", flushed.duplicates));
            }
            if flushed.dropped > 0 {
                line.push_str(&format!(", dropped {} refused", flushed.dropped));
            }
            line.push_str(&format!(", {} remain", flushed.remaining));
            if let Some(reason) = &flushed.stopped {
                line.push_str(&format!(" ({reason})"));
            }
            println!("{line}");
            i32::from(flushed.remaining > 0)
        }
    }
}
