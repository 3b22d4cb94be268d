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
    /// Manages read models.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Runs detection again over a monitor's history with a virtual clock, and sets what was
    /// recorded beside what the replay derives (with the recorded policy, or with --policy).
    Replay {
        /// The monitor's slug.
        #[arg(long)]
        monitor: String,
        /// The monitor's client.
        #[arg(long, default_value = "default")]
        client: String,
        /// Report from this instant (RFC 3339).
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Replay up to this instant (RFC 3339); default: now.
        #[arg(long)]
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
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Drops every read model and replays the whole log into it.
    Rebuild,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TELLTALE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,actix_server=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
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
async fn main() -> anyhow::Result<()> {
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
            let app = App::open(load_config(&cli.global)?, Arc::new(SystemClock), Role::Cli).await?;
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
        Command::Keys { command: KeysCommand::Create { client, scopes, label, create_client } } => {
            let scopes = parse_scopes(&scopes)?;
            let app = App::open(load_config(&cli.global)?, Arc::new(SystemClock), Role::Cli).await?;
            if !app.client_exists(&client).await? {
                if create_client {
                    app.register_client(&client).await?;
                } else {
                    anyhow::bail!(
                        "no client `{client}`; register it with `telltale clients create {client}` or pass --create-client"
                    );
                }
            }
            let key = app.issue_key(&client, scopes.clone(), label).await?;
            let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            eprintln!(
                "issued key {} for client {client} with scopes {}; it is shown only once:",
                key.key_id,
                names.join(", ")
            );
            println!("{}", key.token);
            Ok(())
        }
        Command::Projections { command: ProjectionsCommand::Rebuild } => {
            let app = App::open(load_config(&cli.global)?, Arc::new(SystemClock), Role::Cli).await?;
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
        Command::Replay { monitor, client, from, to, policy, json } => {
            let policy = match policy {
                Some(path) => load_policy(&path)?,
                None => Default::default(),
            };
            let app = App::open(load_config(&cli.global)?, Arc::new(SystemClock), Role::Cli).await?;
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
    let line = |e: &Option<telltale::replay::DerivedOut>| e.as_ref().map(|e| e.event_type.clone()).unwrap_or_default();
    println!("{:<24}  {:<20}  {:<20}", "at", "recorded", "replayed");
    for row in &report.rows {
        let mark = if row.recorded.is_some() && row.replayed.is_some() { " " } else { "*" };
        println!(
            "{:<24}  {:<20}  {:<20}{mark}",
            row.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            line(&row.recorded),
            line(&row.replayed)
        );
    }
    println!(
        "{} inputs; recorded {} derived events ({} alerts), replay derived {} ({} alerts): {}",
        report.inputs,
        report.recorded,
        report.recorded_alerts,
        report.replayed,
        report.replayed_alerts,
        if report.identical { "identical" } else { "different (rows marked *)" }
    );
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
    let first_start = app.client_names().await?.is_empty();
    if first_start && !no_bootstrap {
        app.register_client("default").await?;
        let key = app.issue_key("default", Scope::DEFAULT.to_vec(), Some("created on first start".into())).await?;
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
    say!();
    say!("Stop with Ctrl-C.");
    application.run_until_stopped().await
}
