use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use telltale::app::{App, Role};
use telltale::clock::SystemClock;
use telltale::config::{Config, Overrides};
use telltale::startup::Application;
use telltale_domain::client::Scope;

/// Watches unattended processes and tells a team, once, when one goes silent, fails or hangs.
#[derive(Parser)]
#[command(name = "telltale", version, about)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Global {
    /// A TOML configuration file.
    #[arg(long, global = true, env = "TELLTALE_CONFIG")]
    config: Option<PathBuf>,
    /// Where the event log and read models live.
    #[arg(long, global = true, env = "TELLTALE_DATABASE_URL")]
    database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, global = true, env = "TELLTALE_LISTEN")]
    listen: Option<String>,
    /// The address people reach telltale at, for links in notifications.
    #[arg(long, global = true, env = "TELLTALE_PUBLIC_URL")]
    public_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server.
    Serve {
        /// Do not create a `default` client and key on first start.
        #[arg(long)]
        no_bootstrap: bool,
    },
    /// Manages clients (tenants).
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Manages API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Audits: `audit keys` replays a client's key history from the log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Manages the people who sign in to the dashboard.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Manages read models.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Runs detection again over a monitor's history with a virtual clock, and sets what was
    /// recorded beside what the replay derives (with the recorded policy, or with --policy).
    Replay {
        /// The monitor's slug.
        #[arg(long, required_unless_present = "host", conflicts_with = "host")]
        monitor: Option<String>,
        /// A host instead: its correlation (host alerts) run again over its recorded inputs.
        #[arg(long, conflicts_with_all = ["policy", "from"])]
        host: Option<String>,
        /// The monitor's client.
        #[arg(long, default_value = "default")]
        client: String,
        /// Report from this instant (RFC 3339).
        #[arg(long, value_parser = parse_instant)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Replay up to this instant (RFC 3339); default: now.
        #[arg(long, value_parser = parse_instant)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// A TOML or JSON file with another policy: schedule, grace, max_runtime, min_interval.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Print the whole report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Wraps a command and reports its run: started, then completed or failed with its exit code,
    /// duration and output. Exits with the command's code; never fails because of telltale.
    Run(telltale::agent::RunArgs),
    /// Sends one event from a script: a heartbeat, or the start or end of a run.
    Ping(telltale::agent::PingArgs),
    /// Shows or delivers the events that could not be delivered yet.
    Spool {
        #[command(subcommand)]
        command: telltale::agent::SpoolCommand,
    },
    /// Prints the OpenAPI document.
    Openapi {
        /// Write it to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Registers a client.
    Create { name: String },
    /// Lists clients.
    List,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Issues a key for a client and prints it (alone on the last line). It is shown only once.
    Create {
        #[arg(long)]
        client: String,
        /// ingest, read, admin or provision (ingest may create monitors); repeat for several. Default: ingest, read, admin.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A note to recognise the key by.
        #[arg(long)]
        label: Option<String>,
        /// Register the client first if it does not exist.
        #[arg(long)]
        create_client: bool,
        /// The key rotates itself this often (e.g. 30d; at least 1m): when due, its answers say
        /// so and `telltale run`/`ping` fetch the successor and rewrite their key file.
        #[arg(long, value_name = "DURATION")]
        rotate_every: Option<String>,
        /// How long a rotated key keeps working beside its successor (default: the period).
        #[arg(long, value_name = "DURATION", requires = "rotate_every")]
        overlap: Option<String>,
        /// The key (and every successor) stops working after this long (e.g. 365d).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
    },
    /// Lists a client's keys: ids and metadata, never a secret.
    List {
        #[arg(long)]
        client: String,
    },
    /// Revokes a key at once.
    Revoke {
        /// The key's id (the 16 hex digits after `tt_`).
        key_id: String,
        #[arg(long)]
        client: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Replays a client's key history from the log: every issue, rotation, revocation, expiry
    /// and lock-out, who or what did it, and (with --at) which keys were valid at an instant.
    Keys {
        #[arg(long)]
        client: String,
        /// Replay up to this instant (RFC 3339) and say which keys were valid then.
        #[arg(long, value_parser = parse_instant)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        /// Only this key's line (its predecessors and successors).
        #[arg(long = "key")]
        key_id: Option<String>,
        /// Print the whole replay as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Adds a person and prints a one-time sign-in link (valid 24 h) where they set a password.
    Add {
        /// The name they sign in with.
        name: String,
        /// Their client; omit with --operator.
        #[arg(long, required_unless_present = "operator")]
        client: Option<String>,
        /// viewer (reads the dashboard) or admin (also manages keys and sees the audit).
        #[arg(long, default_value = "viewer")]
        role: String,
        /// An operator sees and manages every client.
        #[arg(long, conflicts_with = "client")]
        operator: bool,
    },
    /// Prints a new one-time sign-in link for a person (to set a new password).
    Link { name: String },
    /// Lists the people who may sign in.
    List,
    /// Removes a person; their sessions end at once.
    Remove { name: String },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Drops every read model and replays the whole log into it.
    Rebuild,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TELLTALE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,actix_server=warn"));
    // Colour only for a person at a terminal; a log file or journald gets plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn load_config(global: &Global) -> anyhow::Result<Config> {
    Config::load(
        global.config.as_deref(),
        Overrides {
            database_url: global.database_url.clone(),
            listen: global.listen.clone(),
            public_url: global.public_url.clone(),
        },
    )
}

/// An instant on the command line: RFC 3339, with a message that says so.
fn parse_instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| format!("`{text}` is not an instant: give one in RFC 3339, e.g. 2026-03-01T12:00:00Z"))
}

/// Opens the database for a command-line tool. Only a command that registers something (a
/// client, a person, a key with --create-client) may create it: any other pointed at a mistyped
/// path would otherwise read or write a new, empty log that no server uses.
async fn open_cli(global: &Global, creates: bool) -> anyhow::Result<Arc<App>> {
    let config = load_config(global)?;
    if !creates
        && let Some(path) = telltale::store::sqlite::file_path(&config.database_url)
        && !path.exists()
    {
        anyhow::bail!(
            "no telltale database at {}: start the server there once (`telltale serve`, or `make run`), \
             or pass the right --database-url",
            path.display()
        );
    }
    App::open(config, Arc::new(SystemClock), Role::Cli).await
}

fn parse_scopes(raw: &[String]) -> anyhow::Result<Vec<Scope>> {
    if raw.is_empty() {
        return Ok(Scope::DEFAULT.to_vec());
    }
    raw.iter()
        .flat_map(|s| s.split(','))
        .map(|s| {
            Scope::parse(s.trim()).with_context(|| format!("unknown scope `{s}`: use ingest, read, admin or provision"))
        })
        .collect()
}

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    // One line, `error: …` with its causes, as a command-line tool says it (never a backtrace).
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The client side (src/agent) exits with its own code, without the server's logging.
    let config = cli.global.config.clone();
    let command = match cli.command {
        Command::Run(args) => std::process::exit(telltale::agent::run(args, config.as_deref()).await),
        Command::Ping(args) => std::process::exit(telltale::agent::ping(args, config.as_deref()).await),
        Command::Spool { command } => std::process::exit(telltale::agent::spool(command, config.as_deref()).await),
        command => command,
    };
    let cli = Cli { command, ..cli };
    if !matches!(cli.command, Command::Openapi { .. }) {
        init_tracing();
    }
    match cli.command {
        Command::Run(_) | Command::Ping(_) | Command::Spool { .. } => unreachable!("handled above"),
        Command::Serve { no_bootstrap } => serve(load_config(&cli.global)?, no_bootstrap).await,
        Command::Clients { command } => {
            let creates = matches!(command, ClientsCommand::Create { .. });
            let app = open_cli(&cli.global, creates).await?;
            match command {
                ClientsCommand::Create { name } => {
                    app.register_client(&name).await?;
                    println!("registered client {name}");
                }
                ClientsCommand::List => {
                    for name in app.client_names().await? {
                        println!("{name}");
                    }
                }
            }
            Ok(())
        }
        Command::Keys { command: KeysCommand::List { client } } => {
            let app = open_cli(&cli.global, false).await?;
            let now = chrono::Utc::now();
            if !app.client_exists(&client).await? {
                anyhow::bail!("no client `{client}`; `telltale clients list` shows the registered ones");
            }
            let keys = telltale_projections::models::clients::list_keys(&app.read.pool, Some(&client)).await?;
            println!(
                "{:<16}  {:<9}  {:<22}  {:>3}  {:<20}  {:<20}  {:<10}  {:<20}  label",
                "id", "status", "scopes", "gen", "created", "expires", "rotates", "rotation due"
            );
            for key in keys {
                let out = telltale::api::keys::KeyOut::of(key, now);
                let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "-".into())
                };
                let rotates = match (&out.rotate_every, &out.overlap) {
                    (Some(every), Some(overlap)) => format!("{every}/{overlap}"),
                    (Some(every), None) => every.clone(),
                    _ => "-".into(),
                };
                println!(
                    "{:<16}  {:<9}  {:<22}  {:>3}  {:<20}  {:<20}  {:<10}  {:<20}  {}",
                    out.id,
                    out.status,
                    out.scopes.join(","),
                    out.generation,
                    time(Some(out.created_at)),
                    time(out.expires_at),
                    rotates,
                    time(out.due_at),
                    out.label.unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Keys { command: KeysCommand::Revoke { key_id, client } } => {
            let app = open_cli(&cli.global, false).await?;
            if !app.client_exists(&client).await? {
                anyhow::bail!("no client `{client}`; `telltale clients list` shows the registered ones");
            }
            let key = telltale_projections::models::clients::find_key(&app.read.pool, &key_id).await?;
            let Some(key) = key.filter(|k| k.client == client) else {
                anyhow::bail!(
                    "client `{client}` has no key `{key_id}`; `telltale keys list --client {client}` lists them"
                );
            };
            if let Some(at) = key.revoked_at {
                println!("key {key_id} of client {client} was already revoked, at {}", at.to_rfc3339());
                return Ok(());
            }
            app.revoke_key(&client, &key_id, Some("cli".into())).await?;
            println!("revoked key {key_id} of client {client}");
            Ok(())
        }
        Command::Audit { command: AuditCommand::Keys { client, at, key_id, json } } => {
            let app = open_cli(&cli.global, false).await?;
            if !app.client_exists(&client).await? {
                anyhow::bail!("no client `{client}`");
            }
            let audit = telltale::api::keys::key_audit(&app, &client, at, key_id.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&audit)?);
            } else {
                print_audit(&audit);
            }
            Ok(())
        }
        Command::Users { command } => {
            let app = open_cli(&cli.global, matches!(command, UsersCommand::Add { .. })).await?;
            users_command(&app, command).await
        }
        Command::Keys {
            command: KeysCommand::Create { client, scopes, label, create_client, rotate_every, overlap, expires_in },
        } => {
            let scopes = parse_scopes(&scopes)?;
            let span = |flag: &str, v: &str| {
                telltale_domain::span::Span::parse(v).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
            };
            let rotation = match rotate_every {
                None => None,
                Some(every) => {
                    let every = span("rotate-every", &every)?;
                    let overlap = overlap.as_deref().map(|o| span("overlap", o)).transpose()?.unwrap_or(every);
                    Some(telltale_domain::client::RotationPolicy { every, overlap })
                }
            };
            let expires_at = expires_in
                .as_deref()
                .map(|v| span("expires-in", v).map(|s| chrono::Utc::now() + s.to_delta()))
                .transpose()?;
            let app = open_cli(&cli.global, create_client).await?;
            if !app.client_exists(&client).await? {
                if create_client {
                    app.register_client(&client).await?;
                } else {
                    anyhow::bail!(
                        "no client `{client}`; register it with `telltale clients create {client}` or pass --create-client"
                    );
                }
            }
            let options = telltale::keys::KeyOptions {
                scopes: scopes.clone(),
                label,
                expires_at,
                rotation,
                by: Some("cli".into()),
            };
            let key = app.issue_key_with(&client, options).await?;
            let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            let rotates = rotation
                .map(|r| format!(", rotating every {} with {} overlap", r.every, r.overlap))
                .unwrap_or_default();
            eprintln!(
                "issued key {} for client {client} with scopes {}{rotates}; it is shown only once:",
                key.key_id,
                names.join(", ")
            );
            println!("{}", key.token);
            Ok(())
        }
        Command::Projections { command: ProjectionsCommand::Rebuild } => {
            let app = open_cli(&cli.global, false).await?;
            let tty = std::io::stderr().is_terminal();
            let started = std::time::Instant::now();
            app.projector
                .rebuild(|done, total| {
                    if tty {
                        eprint!("\rreplaying the log: {done} / {total} events");
                    }
                })
                .await?;
            if tty {
                eprintln!();
            }
            eprintln!("rebuilt every read model in {:.1}s", started.elapsed().as_secs_f64());
            Ok(())
        }
        Command::Replay { host: Some(host), client, to, json, .. } => {
            let app = open_cli(&cli.global, false).await?;
            let report =
                telltale::replay::replay_host(app.store.as_ref(), &client, &host, to, chrono::Utc::now()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_rows(&report.rows);
                print_summary(
                    report.inputs,
                    (report.recorded, report.recorded_alerts),
                    (report.replayed, report.replayed_alerts),
                    report.identical,
                );
            }
            Ok(())
        }
        Command::Replay { monitor, client, from, to, policy, json, .. } => {
            let monitor = monitor.expect("clap requires --monitor without --host");
            let policy = match policy {
                Some(path) => load_policy(&path)?,
                None => Default::default(),
            };
            let app = open_cli(&cli.global, false).await?;
            let tty = std::io::stderr().is_terminal();
            let query = telltale::replay::ReplayQuery { client, slug: monitor.clone(), from, to, policy };
            let report = telltale::replay::replay(app.store.as_ref(), query, chrono::Utc::now(), |done, total| {
                if tty {
                    eprint!("\rreplaying {monitor}: {done} / {total} inputs");
                }
            })
            .await?;
            if tty {
                eprintln!();
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_replay(&report);
            }
            Ok(())
        }
        Command::Openapi { output } => {
            let json = telltale::api::openapi_json();
            match output {
                Some(path) => {
                    std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?
                }
                None => print!("{json}"),
            }
            Ok(())
        }
    }
}

/// Reads a policy file (TOML, or JSON when it ends in `.json`).
fn load_policy(path: &std::path::Path) -> anyhow::Result<telltale_domain::replay::PolicyOverride> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let input: telltale::api::replay::PolicyInput = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("{} is not a valid policy", path.display()))?
    } else {
        toml::from_str(&text).with_context(|| format!("{} is not a valid policy", path.display()))?
    };
    input.to_override().map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message))
}

fn print_replay(report: &telltale::replay::ReplayReport) {
    print_rows(&report.rows);
    print_summary(
        report.inputs,
        (report.recorded, report.recorded_alerts),
        (report.replayed, report.replayed_alerts),
        report.identical,
    );
}

/// Recorded and replayed derived events side by side; a row on one side only is marked `*`.
fn print_rows(rows: &[telltale::replay::ReplayRow]) {
    // The type, and what an alert is about (its cause), so that "what would have paged" reads
    // off the table.
    let line = |e: &Option<telltale::replay::DerivedOut>| match e {
        Some(e) => match e.data.get("cause").and_then(|c| c.as_str()) {
            Some(cause) => format!("{} ({cause})", e.event_type),
            None => e.event_type.clone(),
        },
        None => String::new(),
    };
    println!("{:<24}  {:<32}  {:<32}", "at", "recorded", "replayed");
    for row in rows {
        let mark = if row.recorded.is_some() && row.replayed.is_some() { " " } else { "*" };
        println!(
            "{:<24}  {:<32}  {:<32}{mark}",
            row.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            line(&row.recorded),
            line(&row.replayed)
        );
    }
}

fn print_summary(inputs: usize, recorded: (usize, usize), replayed: (usize, usize), identical: bool) {
    println!(
        "{inputs} inputs; recorded {} derived events ({} alerts), replay derived {} ({} alerts): {}",
        recorded.0,
        recorded.1,
        replayed.0,
        replayed.1,
        if identical { "identical" } else { "different (rows marked *)" }
    );
}

async fn users_command(app: &App, command: UsersCommand) -> anyhow::Result<()> {
    let base = app.config.public_url.clone().unwrap_or_else(|| format!("http://{}", app.config.listen));
    let base = base.trim_end_matches('/').to_string();
    if app.config.public_url.is_none() && matches!(command, UsersCommand::Add { .. } | UsersCommand::Link { .. }) {
        eprintln!("(the link assumes telltale is reached at {base}; set --public-url or TELLTALE_PUBLIC_URL if not)");
    }
    match command {
        UsersCommand::Add { name, client, role, operator } => {
            let role = if operator {
                telltale_domain::users::Role::Operator
            } else {
                telltale_domain::users::Role::parse(&role)
                    .filter(|r| *r != telltale_domain::users::Role::Operator)
                    .with_context(|| format!("unknown role `{role}`: use viewer or admin, or --operator"))?
            };
            app.add_user(&name, client.as_deref(), role, "cli").await?;
            let link = app.issue_sign_in_link(&name, "cli").await?;
            eprintln!("added {name} ({}); this one-time link (valid 24 h) lets them choose a password:", role.as_str());
            println!("{base}/welcome?token={}", link.expose());
        }
        UsersCommand::Link { name } => {
            let link = app.issue_sign_in_link(&name, "cli").await?;
            eprintln!("a one-time sign-in link for {name} (valid 24 h; it sets a new password):");
            println!("{base}/welcome?token={}", link.expose());
        }
        UsersCommand::Remove { name } => {
            app.remove_user(&name, "cli").await?;
            println!("removed {name}");
        }
        UsersCommand::List => {
            let directory = app.directory().await?;
            for (name, user) in directory.users.iter().filter(|(_, u)| !u.removed) {
                let state = if user.password_hash.is_some() { "" } else { "  (has not set a password yet)" };
                println!(
                    "{name:<24}  {:<8}  {}{state}",
                    user.role.as_str(),
                    user.client.as_deref().unwrap_or("every client")
                );
            }
        }
    }
    Ok(())
}

fn print_audit(audit: &telltale::api::keys::KeyAudit) {
    let time = |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    println!("keys of client {}", audit.client);
    for k in &audit.keys {
        let mut line = format!("{}  generation {}  scopes {}", k.id, k.generation, k.scopes.join(","));
        if let Some(label) = &k.label {
            line.push_str(&format!("  \"{label}\""));
        }
        line.push_str(&format!("  issued {}", time(&k.issued_at)));
        if let Some(at) = &k.rotated_at {
            line.push_str(&format!("  rotated {}", time(at)));
        }
        if let Some(at) = &k.revoked_at {
            line.push_str(&format!("  revoked {}", time(at)));
        }
        if let Some(at) = &k.expires_at {
            line.push_str(&format!("  expires {}", time(at)));
        }
        if let Some(valid) = k.valid {
            line.push_str(if valid { "  valid then" } else { "  not valid then" });
        }
        println!("  {line}");
    }
    println!();
    println!("key history of client {}", audit.client);
    for e in &audit.entries {
        let mut line = format!("{}  {:<10}  {}", time(&e.at), e.action, e.key_id);
        if let Some(successor) = &e.successor_id {
            line.push_str(&format!(" -> {successor}"));
        }
        if let Some(generation) = e.generation {
            line.push_str(&format!("  generation {generation}"));
        }
        if let Some(by) = &e.by {
            line.push_str(&format!("  by {by}"));
        }
        if let (Some(source), Some(until)) = (&e.source, &e.until) {
            line.push_str(&format!("  from {source} until {}", time(until)));
        }
        println!("{line}");
    }
    if let (Some(at), Some(valid)) = (&audit.at, &audit.valid_at) {
        println!();
        if valid.is_empty() {
            println!("no key was valid at {}", time(at));
        } else {
            println!("valid at {}: {}", time(at), valid.join(", "));
        }
    }
}

/// Prints a line of the start-up banner; a closed stdout must not bring the server down.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

async fn serve(config: Config, no_bootstrap: bool) -> anyhow::Result<()> {
    let application = Application::build(config, Arc::new(SystemClock)).await?;
    let app = application.app();
    let base = app.config.public_url_for(application.addr());
    say!("telltale is running on {base}");
    say!("  dashboard:  {base}/");
    say!("  API spec:   {base}/openapi.json");
    // The command line finds this server's log, and makes links to it, with the same settings.
    let mut settings = Vec::new();
    if app.config.database_url != telltale::config::DEFAULT_DATABASE_URL {
        settings.push(format!("TELLTALE_DATABASE_URL={}", app.config.database_url));
    }
    if app.config.public_url.is_none() && app.config.listen != telltale::config::DEFAULT_LISTEN {
        settings.push(format!("TELLTALE_PUBLIC_URL={base}"));
    }
    if !settings.is_empty() {
        say!("  for the command line: export {}", settings.join(" "));
    }
    let first_start = app.client_names().await?.is_empty();
    if first_start && !no_bootstrap {
        app.register_client("default").await?;
        let options = telltale::keys::KeyOptions {
            label: Some("created on first start".into()),
            by: Some("bootstrap".into()),
            ..telltale::keys::KeyOptions::scopes(Scope::DEFAULT.to_vec())
        };
        let key = app.issue_key_with("default", options).await?;
        say!();
        say!("First start: created the client `default` and this API key (shown only once, keep it):");
        say!("  {}", key.token);
        say!();
        say!("Try it:");
        say!("  export TELLTALE_KEY={}", key.token);
    } else {
        say!();
        say!("Need a key? telltale keys create --client default");
        say!("Then: export TELLTALE_KEY=<the key>");
    }
    say!("  curl -X POST {base}/v1/monitors -H \"Authorization: Bearer $TELLTALE_KEY\" \\");
    say!(
        "       -H 'Content-Type: application/json' -d '{{\"slug\": \"my-job\", \"schedule\": {{\"every\": \"1m\"}}, \"grace\": \"30s\"}}'"
    );
    say!("  curl -X POST {base}/v1/monitors/my-job/heartbeat -H \"Authorization: Bearer $TELLTALE_KEY\"");
    let directory = app.directory().await?;
    if directory.users.is_empty() && !no_bootstrap {
        app.add_user("admin", None, telltale_domain::users::Role::Operator, "bootstrap").await?;
        let link = app.issue_sign_in_link("admin", "bootstrap").await?;
        say!();
        say!("Sign in to the dashboard as `admin` (an operator: every client) with this one-time link; it");
        say!("works once, within 24 h, and lets you choose a password:");
        say!("  {base}/welcome?token={}", link.expose());
    } else if !directory.users.values().any(|u| u.password_hash.is_some()) {
        say!();
        say!("Nobody has set a dashboard password yet: `telltale users link admin` prints a new sign-in link.");
    }
    say!();
    say!("Stop with Ctrl-C.");
    application.run_until_stopped().await
}
