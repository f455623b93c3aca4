//! The runner's command line, shared by the `picortex-runner` binary and the hidden
//! `picortex runner` subcommand (so a single `picortex` binary can run everything). Everything
//! on it is configuration chosen by the daemon (paths, the agent program and its fixed flags);
//! message text only ever arrives over the socket.

use std::path::PathBuf;
use std::time::Duration;

use crate::backend::Backend;
use crate::backend::claude::{ClaudeBackend, ClaudeConfig};
use crate::backend::command::CommandBackend;
use crate::server::{RunnerConfig, serve};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AgentKind {
    ClaudeCode,
    Command,
}

#[derive(Debug, Parser)]
#[command(
    name = "picortex-runner",
    version,
    about = "Hosts a chat's agent inside its tmux session."
)]
pub struct Args {
    /// The chat's home: the agent's working directory; state lives in `.picortex/` beneath it.
    #[arg(long)]
    pub home: PathBuf,
    #[arg(long, value_enum, required_unless_present = "exec")]
    pub agent: Option<AgentKind>,
    /// Directories besides the system's that confined processes may execute from (the runner's
    /// and the agent CLI's installation).
    #[arg(long = "allow-exec")]
    pub allow_exec: Vec<PathBuf>,
    /// Instead of serving turns: confine this process to the home (Landlock) and run the given
    /// command in its place, e.g. the chat's tmux server, so all it starts is confined too.
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "COMMAND")]
    pub exec: Vec<std::ffi::OsString>,
    /// Exit after this long without a turn.
    #[arg(long, default_value_t = 900)]
    pub idle_timeout_secs: u64,
    /// `command` agent: the program, then its arguments (repeat --arg).
    #[arg(long)]
    pub command: Option<PathBuf>,
    #[arg(long = "arg")]
    pub args: Vec<String>,
    /// `claude-code` agent: the CLI, permission mode, allowed tools and silence watchdog.
    #[arg(long, default_value = "claude")]
    pub claude_bin: PathBuf,
    #[arg(long)]
    pub permission_mode: Option<String>,
    #[arg(long = "allowed-tool")]
    pub allowed_tools: Vec<String>,
    /// File holding the text appended to the agent's system prompt.
    #[arg(long)]
    pub system_prompt_file: Option<PathBuf>,
    #[arg(long, default_value_t = 120)]
    pub watchdog_secs: u64,
}

/// Runs the runner until it exits idle (or, with `--exec`, becomes the confined command).
pub async fn run(args: Args) -> anyhow::Result<()> {
    let state = args.home.join(".picortex");
    std::fs::create_dir_all(&state)?;
    if !args.exec.is_empty() {
        return exec_confined(&args);
    }
    let Some(agent) = args.agent else {
        anyhow::bail!("--agent is required unless --exec is given");
    };
    let backend: Box<dyn Backend> = match agent {
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

/// Confines this process to the chat's home and replaces it with `args.exec`.
fn exec_confined(args: &Args) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let enforcement = picortex_sandbox::confine::confine(&args.home, &args.allow_exec)?;
    if enforcement != picortex_sandbox::confine::Enforcement::Full {
        eprintln!("picortex-runner: Landlock confinement is {enforcement:?} on this kernel");
    }
    let (program, rest) = args
        .exec
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("--exec needs a command"))?;
    // exec only returns on failure.
    let err = std::process::Command::new(program).args(rest).exec();
    Err(anyhow::anyhow!("exec {}: {err}", program.to_string_lossy()))
}
