//! `picortex demo`: the simulator and the daemon in one process on loopback, wired together
//! with generated secrets and a local data directory, so one command shows the whole path.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::{AgentKind, Config};
use crate::daemon::{self, DaemonHandle};

pub struct DemoOptions {
    pub port: u16,
    pub sim_port: u16,
    pub data_dir: PathBuf,
}

pub struct Demo {
    pub daemon: DaemonHandle,
    pub sim: linq_sim::SimHandle,
    /// The scripted model, when the demo runs Claude Code without an API key.
    pub model: Option<mock_model::MockModelHandle>,
    pub bot_line: String,
    /// Which agent answers, in words, for the banner.
    pub agent_description: String,
}

/// The best agent this machine can run: real Claude Code with an API key; else Claude Code
/// against the scripted model (a friendly persona) if the CLI is installed; else echo.
enum DemoAgent {
    RealClaude { claude: PathBuf },
    ScriptedClaude { claude: PathBuf },
    Echo,
}

fn pick_agent(claude_bin: &Path) -> DemoAgent {
    let claude = crate::runner_agent::which(claude_bin);
    let key = std::env::var("ANTHROPIC_API_KEY").is_ok_and(|k| !k.trim().is_empty());
    match (claude, key) {
        (Some(claude), true) => DemoAgent::RealClaude { claude },
        (Some(claude), false) => DemoAgent::ScriptedClaude { claude },
        (None, _) => DemoAgent::Echo,
    }
}

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

pub async fn start(opts: DemoOptions) -> anyhow::Result<Demo> {
    let daemon_listener = TcpListener::bind(SocketAddr::new(LOOPBACK, opts.port))
        .await
        .with_context(|| format!("binding the daemon to port {} (try --port 0)", opts.port))?;
    let sim_listener = TcpListener::bind(SocketAddr::new(LOOPBACK, opts.sim_port))
        .await
        .with_context(|| {
            format!(
                "binding the simulator to port {} (try --sim-port 0)",
                opts.sim_port
            )
        })?;
    let daemon_addr = daemon_listener.local_addr()?;
    let secret = linq::webhook::WebhookSecret::generate();
    let api_key = format!("demo_{}", uuid::Uuid::new_v4().simple());
    let sim_config = linq_sim::SimConfig {
        api_key: api_key.clone(),
        webhook: Some((
            format!("http://{daemon_addr}/api/linq/inbound"),
            secret.clone(),
        )),
        ..linq_sim::SimConfig::default()
    };
    let bot_line = sim_config.bot_line.clone();
    let sim = linq_sim::start(sim_config, sim_listener)
        .await
        .context("starting the simulator")?;

    let mut config = Config {
        workspace_root: opts.data_dir.join("chats"),
        data_dir: opts.data_dir,
        agent: AgentKind::Echo,
        ..Config::default()
    };
    config.apply_env(|name| {
        // The demo takes the agent's settings from the environment, nothing else.
        matches!(
            name,
            "PICORTEX_CLAUDE_BIN"
                | "ANTHROPIC_API_KEY"
                | "ANTHROPIC_BASE_URL"
                | "PICORTEX_BOT_NAME"
        )
        .then(|| std::env::var(name).ok())
        .flatten()
    })?;
    config.linq.api_key = api_key;
    config.linq.base_url = sim.base_url();
    config.linq.webhook_secret = secret.as_str().to_owned();
    config.linq.phone = Some(bot_line.clone());
    let mut model = None;
    let agent_description = match pick_agent(&config.agents.claude_bin) {
        DemoAgent::RealClaude { claude } => {
            config.agent = AgentKind::ClaudeCode;
            config.agents.claude_bin = claude.clone();
            format!("Claude Code ({}) with your ANTHROPIC_API_KEY", claude.display())
        }
        DemoAgent::ScriptedClaude { claude } => {
            let listener = TcpListener::bind(SocketAddr::new(LOOPBACK, 0)).await?;
            let handle = mock_model::start(mock_model::Script::demo_persona(), listener)
                .await
                .context("starting the scripted model")?;
            config.agent = AgentKind::ClaudeCode;
            config.agents.claude_bin = claude.clone();
            config.agents.anthropic_base_url = Some(handle.base_url());
            config.agents.anthropic_api_key = Some("demo-key-for-the-scripted-model".into());
            let text = format!(
                "Claude Code ({}) against a scripted model at {} (set ANTHROPIC_API_KEY for the real one; try \"write a file called hello.txt saying hi\")",
                claude.display(),
                handle.base_url()
            );
            model = Some(handle);
            text
        }
        DemoAgent::Echo => "echo (replies \"echo: <text>\"; install Claude Code with npm install -g @anthropic-ai/claude-code for a real agent)".into(),
    };
    let daemon = daemon::start(config, daemon_listener).await?;
    Ok(Demo {
        daemon,
        sim,
        model,
        bot_line,
        agent_description,
    })
}
