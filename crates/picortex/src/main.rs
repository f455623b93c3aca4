//! The `picortex` command: `serve` (production daemon), `sim` (the Linq simulator alone),
//! `demo` (both, wired together), `chat` (list chats; hibernate, archive, restore or destroy one
//! through the running daemon), `doctor` and `backup` (online SQLite backup).

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
    /// Stop the chat's agent and sandbox, keeping its workspace (the next message wakes it).
    Hibernate(ChatTarget),
    /// Compress the chat's workspace into the archive directory and remove its user (the next
    /// message restores it).
    Archive(ChatTarget),
    /// Bring the chat's workspace back now (also after repairing a damaged archive).
    Restore(ChatTarget),
    /// Remove the chat's workspace, archive and user for good (its messages stay; a new message
    /// starts a fresh workspace). Asks first unless --yes.
    Destroy {
        #[command(flatten)]
        target: ChatTarget,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// A chat, and how to reach the running daemon that changes it (the daemon holds the chat's
/// locks, so transitions go through its owner API, authenticated with `api_token`).
#[derive(clap::Args)]
struct ChatTarget {
    /// The chat's id (see `picortex chat list`).
    chat: String,
    /// TOML configuration file, as for `serve` (for the daemon's address and api_token).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The daemon's base URL (default: from the configuration's bind address and port).
    #[arg(long)]
    url: Option<String>,
}

impl ChatTarget {
    /// Asks the daemon to do `action` to the chat and prints what happened.
    async fn apply(&self, action: &str) -> anyhow::Result<()> {
        let config = Config::load(self.config.as_deref())?;
        let token = config.api_token.clone().context(
            "the owner API is off: set api_token (PICORTEX_API_TOKEN) for the daemon and here",
        )?;
        let base = match &self.url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let host = if config.bind.is_unspecified() {
                    std::net::IpAddr::from([127, 0, 0, 1])
                } else {
                    config.bind
                };
                format!("http://{}", SocketAddr::new(host, config.port))
            }
        };
        let mut url = reqwest::Url::parse(&format!("{base}/api/chats/"))
            .with_context(|| format!("{base} is not a URL"))?;
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("{base} cannot take a path"))?
            .pop_if_empty()
            .push(&self.chat)
            .push("lifecycle");
        let response = reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .json(&serde_json::json!({ "action": action }))
            .timeout(std::time::Duration::from_secs(600))
            .send()
            .await
            .with_context(|| {
                format!("reaching the daemon at {base} (is `picortex serve` running?)")
            })?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("no detail");
            anyhow::bail!("{action} {}: {message} (HTTP {status})", self.chat);
        }
        let state = body["state"].as_str().unwrap_or("unknown");
        match (body["outcome"].as_str(), body["detail"].as_str()) {
            (Some("unchanged"), _) => println!("{}: nothing to do (state {state})", self.chat),
            (Some(outcome), Some(detail)) => {
                println!("{}: {outcome} ({detail}); state {state}", self.chat)
            }
            (Some(outcome), None) => println!("{}: {outcome}; state {state}", self.chat),
            (None, _) => println!("{}: state {state}", self.chat),
        }
        Ok(())
    }
}

/// Asks on the terminal before destroying; refuses without one.
fn confirm_destroy(chat: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("destroying {chat} needs confirmation: run it in a terminal or pass --yes");
    }
    print!(
        "Destroy the workspace of {chat} for good (its files, archive and user; its messages \
         stay)? [y/N] "
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
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
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .context("listening for SIGTERM")?;
            daemon
                .run_until(async move {
                    let signal = tokio::select! {
                        _ = tokio::signal::ctrl_c() => "SIGINT",
                        _ = terminate.recv() => "SIGTERM",
                    };
                    tracing::info!(signal, "stopping: answering the requests in flight");
                })
                .await;
            tracing::info!("stopped");
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
            println!("Stopping: putting the chats to sleep…");
            // The demo leaves nothing running: each chat's processes stop with it, and the
            // next demo wakes a chat when it is texted again.
            match demo.daemon.shutdown_and_hibernate().await {
                Ok(stopped) => {
                    println!(
                        "  stopped {} chat(s)",
                        stopped.hibernated + stopped.with_work
                    );
                    if stopped.with_work > 0 {
                        println!(
                            "  {} of them had work in progress, which runs at the next start",
                            stopped.with_work
                        );
                    }
                }
                Err(e) => eprintln!("could not put every chat to sleep: {e}"),
            }
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
        Command::Chat(ChatCommand::Hibernate(target)) => target.apply("hibernate").await?,
        Command::Chat(ChatCommand::Archive(target)) => target.apply("archive").await?,
        Command::Chat(ChatCommand::Restore(target)) => target.apply("restore").await?,
        Command::Chat(ChatCommand::Destroy { target, yes }) => {
            if !yes && !confirm_destroy(&target.chat)? {
                println!("{}: left as it is", target.chat);
                return Ok(());
            }
            target.apply("destroy").await?;
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
