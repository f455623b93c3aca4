//! `picortex-runner`: started by the daemon in a chat's tmux window `agent`, in the chat's home.
//! Everything on its command line is configuration chosen by the daemon (paths, the agent
//! program and its fixed flags); message text only ever arrives over the socket.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use picortex_runner::backend::Backend;
use picortex_runner::backend::claude::{ClaudeBackend, ClaudeConfig};
use picortex_runner::backend::command::CommandBackend;
use picortex_runner::server::{RunnerConfig, serve};

#[derive(Clone, Copy, ValueEnum)]
enum AgentKind {
    ClaudeCode,
    Command,
}

#[derive(Parser)]
#[command(
    name = "picortex-runner",
    version,
    about = "Hosts a chat's agent inside its tmux session."
)]
struct Args {
    /// The chat's home: the agent's working directory; state lives in `.picortex/` beneath it.
    #[arg(long)]
    home: PathBuf,
    #[arg(long, value_enum)]
    agent: AgentKind,
    /// Exit after this long without a turn.
    #[arg(long, default_value_t = 900)]
    idle_timeout_secs: u64,
    /// `command` agent: the program, then its arguments (repeat --arg).
    #[arg(long)]
    command: Option<PathBuf>,
    #[arg(long = "arg")]
    args: Vec<String>,
    /// `claude-code` agent: the CLI, permission mode, allowed tools and silence watchdog.
    #[arg(long, default_value = "claude")]
    claude_bin: PathBuf,
    #[arg(long)]
    permission_mode: Option<String>,
    #[arg(long = "allowed-tool")]
    allowed_tools: Vec<String>,
    /// File holding the text appended to the agent's system prompt.
    #[arg(long)]
    system_prompt_file: Option<PathBuf>,
    #[arg(long, default_value_t = 120)]
    watchdog_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let state = args.home.join(".picortex");
    std::fs::create_dir_all(&state)?;
    let backend: Box<dyn Backend> = match args.agent {
        AgentKind::Command => {
            let program = args
                .command
                .ok_or_else(|| anyhow::anyhow!("--agent command needs --command PROGRAM"))?;
            Box::new(CommandBackend::new(program, args.args, args.home.clone()))
        }
        AgentKind::ClaudeCode => {
            let append_system_prompt = match &args.system_prompt_file {
                Some(path) => Some(std::fs::read_to_string(path)?),
                None => None,
            };
            Box::new(ClaudeBackend::new(ClaudeConfig {
                program: args.claude_bin,
                workdir: args.home.clone(),
                permission_mode: args.permission_mode,
                allowed_tools: args.allowed_tools,
                append_system_prompt,
                watchdog: Duration::from_secs(args.watchdog_secs),
                session_file: state.join("session.json"),
            }))
        }
    };
    serve(
        RunnerConfig {
            home: args.home.clone(),
            socket: state.join("runner.sock"),
            turns_dir: state.join("turns"),
            idle_timeout: Duration::from_secs(args.idle_timeout_secs),
        },
        backend,
    )
    .await
}
