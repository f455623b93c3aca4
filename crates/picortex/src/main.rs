//! The `picortex` command: `serve` (production daemon), `sim` (the Linq simulator alone),
//! `demo` (both, wired together) and `backup` (online SQLite backup).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use picortex::config::Config;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "picortex",
    version,
    about = "Text an AI coding agent from any phone."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (webhooks, turns, outbox, API).
    Serve {
        /// TOML configuration file; every key can also be set by environment.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the Linq v3 simulator alone.
    Sim {
        #[arg(long, default_value_t = 8447)]
        port: u16,
        /// Bearer key the simulator accepts.
        #[arg(long, env = "LINQ_API_KEY", default_value = "sim_test_key")]
        api_key: String,
        /// Deliver webhooks for every event to this URL.
        #[arg(long)]
        webhook_url: Option<String>,
        /// whsec_ secret to sign them with (generated and printed if omitted).
        #[arg(long)]
        webhook_secret: Option<String>,
    },
    /// Run the simulator and the daemon together on loopback, with generated secrets.
    Demo {
        #[arg(long, default_value_t = picortex::config::DEFAULT_PORT)]
        port: u16,
        #[arg(long, default_value_t = 8447)]
        sim_port: u16,
        /// Where the demo keeps its database.
        #[arg(long, default_value = ".demo-data")]
        data: PathBuf,
    },
    /// Host a chat's agent (started by the daemon inside the chat's tmux session).
    #[command(hide = true)]
    Runner(picortex_runner::cli::Args),
    /// The privileged sandbox helper (a root daemon starts it itself; see picortex-sandbox).
    #[command(hide = true, subcommand)]
    Sandbox(SandboxCommand),
    /// Check this host and configuration (kernel features, tools, directories, secrets set),
    /// with the fix for each problem. Exit code 1 when a check failed.
    Doctor {
        /// TOML configuration file, as for `serve`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The picortex-sandbox helper's socket (default: isolation.helper_socket).
        #[arg(long)]
        sandbox_socket: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The chats and their lifecycle state.
    #[command(subcommand)]
    Chat(ChatCommand),
    /// Write a consistent copy of the live database.
    Backup {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Destination file.
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Subcommand)]
enum ChatCommand {
    /// Every chat: its id, workspace directory, state and last inbound message.
    List {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Serve the helper's unix socket (run as root).
    Serve(picortex_sandbox::cli::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    // A chat's sandbox re-executes the helper's binary (this one, when the helper runs as
    // `picortex sandbox`) as its init: that must happen before any thread exists.
    picortex_sandbox::jail::run_init_if_requested();
    let cli = Cli::parse();
    if let Command::Sandbox(SandboxCommand::Serve(args)) = cli.command {
        picortex::logging::init();
        return picortex_sandbox::cli::serve(args);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Runner(args) = cli.command {
        // The runner's window is a terminal for people: no JSON logs there.
        return picortex_runner::cli::run(args).await;
    }
    if let Command::Doctor {
        config,
        sandbox_socket,
        json,
    } = cli.command
    {
        // A report for people (or --json for scripts): no log lines mixed in.
        let options = picortex::doctor::DoctorOptions { sandbox_socket };
        let report = picortex::doctor::diagnose(config.as_deref(), &options);
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.to_text());
        }
        std::process::exit(if report.passed() { 0 } else { 1 });
    }
    picortex::logging::init();
    match cli.command {
        Command::Runner(_) | Command::Doctor { .. } | Command::Sandbox(_) => {}
        Command::Serve { config } => {
            let config = Config::load(config.as_deref())?;
            config.validate()?;
            let addr = SocketAddr::new(config.bind, config.port);
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let daemon = picortex::daemon::start(config, listener).await?;
            tokio::select! {
                _ = daemon_wait(daemon) => {}
                _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
            }
        }
        Command::Sim {
            port,
            api_key,
            webhook_url,
            webhook_secret,
        } => {
            let webhook = match webhook_url {
                Some(url) => {
                    let secret = match webhook_secret {
                        Some(s) => {
                            linq::webhook::WebhookSecret::parse(&s).context("--webhook-secret")?
                        }
                        None => linq::webhook::WebhookSecret::generate(),
                    };
                    println!("webhook signing secret: {}", secret.as_str());
                    Some((url, secret))
                }
                None => None,
            };
            let config = linq_sim::SimConfig {
                api_key,
                webhook,
                ..linq_sim::SimConfig::default()
            };
            let listener = TcpListener::bind(("127.0.0.1", port))
                .await
                .with_context(|| format!("binding port {port}"))?;
            let sim = linq_sim::start(config, listener).await?;
            println!("linq-sim listening on {}", sim.base_url());
            println!("  admin page: {}/", sim.base_url());
            println!(
                "  v3 API:     {}/v3/ and {}/api/partner/v3/",
                sim.base_url(),
                sim.base_url()
            );
            tokio::signal::ctrl_c().await?;
            sim.shutdown().await;
        }
        Command::Demo {
            port,
            sim_port,
            data,
        } => {
            let demo = picortex::demo::start(picortex::demo::DemoOptions {
                port,
                sim_port,
                data_dir: data.clone(),
            })
            .await?;
            println!();
            println!("picortex demo is running.");
            println!("  Text the bot here:  {}/", demo.sim.base_url());
            println!("  Daemon health:      {}/health", demo.daemon.base_url());
            println!("  Bot's line:         {}", demo.bot_line);
            println!("  Agent:              {}", demo.agent_description);
            println!("  Data:               {}", data.display());
            println!("Press Ctrl-C to stop.");
            tokio::signal::ctrl_c().await?;
            demo.daemon.shutdown().await;
            demo.sim.shutdown().await;
            if let Some(model) = demo.model {
                model.shutdown().await;
            }
        }
        Command::Chat(ChatCommand::List { config }) => {
            let config = Config::load(config.as_deref())?;
            let store = picortex::store::Store::open(&config.database_path())?;
            let chats = store
                .read(|c| {
                    let mut stmt = c.prepare(
                        "SELECT id, state, is_group, COALESCE(last_inbound_at, created_at)
                         FROM chats ORDER BY COALESCE(last_inbound_at, created_at) DESC",
                    )?;
                    let rows = stmt.query_map([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, bool>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    })?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .await?;
            println!(
                "{:<38} {:<14} {:<6} {:<11} last message (UTC)",
                "chat", "directory", "kind", "state"
            );
            for (id, state, is_group, at) in chats {
                let when = time::OffsetDateTime::from_unix_timestamp(at / 1000)
                    .map(|t| format!("{} {:02}:{:02}", t.date(), t.hour(), t.minute()))
                    .unwrap_or_default();
                let kind = if is_group { "group" } else { "dm" };
                let dir = picortex::workspace::chat_dir_name(&id);
                println!("{id:<38} {dir:<14} {kind:<6} {state:<11} {when}");
            }
        }
        Command::Backup { config, to } => {
            let config = Config::load(config.as_deref())?;
            let store = picortex::store::Store::open(&config.database_path())?;
            store.backup_to(to.clone()).await?;
            println!(
                "backed up {} to {}",
                config.database_path().display(),
                to.display()
            );
        }
    }
    Ok(())
}

async fn daemon_wait(daemon: picortex::daemon::DaemonHandle) {
    daemon.wait().await;
}
