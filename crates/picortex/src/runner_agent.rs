//! The agent backend that runs turns in the chat's own runner: it makes sure the chat's home,
//! tmux session and runner exist, hands the turn over the runner's unix socket, and waits for
//! the durable result. Turn ids make this idempotent: after a daemon restart the same turn is
//! handed over again and the runner answers with the result it already has (or attaches to the
//! turn still running), so nothing runs twice.
//!
//! The agent reaches the model only through the gateway ([`RunnerAgent::through_gateway`]):
//! its environment gets the gateway's URL as `ANTHROPIC_BASE_URL` and the chat's own gateway
//! token as `ANTHROPIC_API_KEY`, never the real key.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use picortex_runner::protocol::{Request, Response, TurnResult, TurnSpec, encode};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;

use crate::agent::{Agent, AgentError, TurnAccounting, TurnReply, TurnRequest};
use crate::config::{AgentKind, Config};
use crate::gateway::Gateway;
use crate::workspace::{RunnerLaunch, WorkspaceError, Workspaces};

/// How long a freshly started runner gets to open its socket.
const RUNNER_START_TIMEOUT: Duration = Duration::from_secs(15);

pub struct RunnerAgent {
    kind: &'static str,
    workspaces: Workspaces,
    launch: RunnerLaunch,
    bot_name: String,
    owner: Option<String>,
    /// The gateway and the URL agents reach it at; `None` only for an agent built alone.
    gateway: Option<(Arc<Gateway>, String)>,
    /// One lock per chat, so stopping a chat (hibernation) never cuts into a turn that is
    /// starting its runner, and the other way round.
    chat_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The system prompt last found or written in each chat's home.
    written_prompts: std::sync::Mutex<HashMap<String, String>>,
}

/// The environment names that carry model access.
const MODEL_ENV: [&str; 2] = ["ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"];

impl RunnerAgent {
    /// The agent as `config` describes it. On its own (benchmarks that measure the agent
    /// without a daemon) it hands the agent the upstream and key directly; the daemon always
    /// adds [`RunnerAgent::through_gateway`], which takes them away again.
    pub fn from_config(config: &Config) -> Result<Self, AgentError> {
        let (runner, prefix) = match &config.agents.runner_bin {
            Some(p) => (p.clone(), Vec::new()),
            None => default_runner()?,
        };
        let a = &config.agents;
        let mut args: Vec<OsString> = vec![
            "--idle-timeout-secs".into(),
            a.idle_timeout_secs.to_string().into(),
        ];
        // The confined chat may execute the runner and the agent CLI from where they live.
        let mut allow_exec: Vec<PathBuf> = Vec::new();
        for program in [Some(runner.clone()), which(&a.claude_bin)]
            .into_iter()
            .flatten()
        {
            if let Some(dir) = program
                .canonicalize()
                .ok()
                .and_then(|p| p.parent().map(Path::to_owned))
            {
                allow_exec.push(dir);
            }
        }
        if config.agent == AgentKind::Command
            && let Some(program) = a.command.first().and_then(|c| which(Path::new(c)))
            && let Some(dir) = program
                .canonicalize()
                .ok()
                .and_then(|p| p.parent().map(Path::to_owned))
        {
            allow_exec.push(dir);
        }
        let kind = match config.agent {
            AgentKind::ClaudeCode => {
                args.extend(["--agent".into(), "claude-code".into()]);
                args.push("--claude-bin".into());
                args.push(a.claude_bin.clone().into_os_string());
                if let Some(mode) = &a.claude_permission_mode {
                    args.push(format!("--permission-mode={mode}").into());
                }
                for tool in &a.claude_allowed_tools {
                    args.push(format!("--allowed-tool={tool}").into());
                }
                args.push(format!("--watchdog-secs={}", a.watchdog_secs).into());
                args.push("--system-prompt-file".into());
                args.push(SYSTEM_PROMPT_FILE.into());
                "claude-code"
            }
            AgentKind::Command => {
                let Some((program, rest)) = a.command.split_first() else {
                    return Err(AgentError::Permanent(
                        "agents.command is empty; set it to the program and its arguments".into(),
                    ));
                };
                args.extend(["--agent".into(), "command".into()]);
                args.push(format!("--command={program}").into());
                for arg in rest {
                    args.push(format!("--arg={arg}").into());
                }
                "command"
            }
            AgentKind::Echo => {
                return Err(AgentError::Permanent(
                    "the echo agent runs in the daemon, not in a runner".into(),
                ));
            }
        };
        let mut env = vec![
            // Keep the CLI offline except for the model API.
            (
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".to_owned(),
                "1".to_owned(),
            ),
            ("DISABLE_AUTOUPDATER".to_owned(), "1".to_owned()),
        ];
        if let Some(url) = &a.anthropic_base_url {
            env.push(("ANTHROPIC_BASE_URL".into(), url.clone()));
        }
        if let Some(key) = &a.anthropic_api_key {
            env.push(("ANTHROPIC_API_KEY".into(), key.clone()));
        }
        Ok(Self {
            kind,
            workspaces: Workspaces::new(&config.workspace_root),
            launch: RunnerLaunch {
                program: runner,
                prefix,
                args,
                env,
                allow_exec,
            },
            bot_name: config.bot_name.clone(),
            owner: config.owner.clone(),
            gateway: None,
            chat_locks: std::sync::Mutex::default(),
            written_prompts: std::sync::Mutex::default(),
        })
    }

    /// Keeps chats in `workspaces` (the daemon's, which know the isolation in force) instead of
    /// plain directories of this user.
    pub fn in_workspaces(mut self, workspaces: Workspaces) -> Self {
        self.workspaces = workspaces;
        self
    }

    /// Sends the agent's model traffic through `gateway`, reached at `base_url` from where the
    /// agent runs (the daemon's port without a network namespace, the forwarder inside one):
    /// each chat's runner is launched with that URL and the chat's own token, and the real key
    /// is no longer in its environment.
    pub fn through_gateway(mut self, gateway: Arc<Gateway>, base_url: String) -> Self {
        self.launch
            .env
            .retain(|(name, _)| !MODEL_ENV.contains(&name.as_str()));
        self.gateway = Some((gateway, base_url));
        self
    }

    /// The model environment for the chat's runner: its gateway URL and token, and, for a
    /// sandboxed chat with an egress allowlist, the egress proxy (`HTTPS_PROXY`…, the same
    /// token as its user).
    async fn model_env(&self, chat_id: &str) -> Result<Vec<(String, String)>, AgentError> {
        let Some((gateway, base_url)) = &self.gateway else {
            return Ok(Vec::new());
        };
        let token = gateway
            .issue_token(chat_id)
            .await
            .map_err(|e| AgentError::Retryable(format!("issuing the chat's gateway token: {e}")))?;
        let proxy = gateway.agent_proxy_env(chat_id, &token, base_url);
        let mut env = vec![
            (MODEL_ENV[0].to_owned(), base_url.clone()),
            (MODEL_ENV[1].to_owned(), token),
        ];
        env.extend(proxy);
        Ok(env)
    }

    fn chat_lock(&self, chat_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .chat_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(chat_id.to_owned()).or_default().clone()
    }

    async fn run(&self, request: TurnRequest) -> Result<TurnReply, AgentError> {
        let lock = self.chat_lock(&request.chat_id);
        let _chat = lock.lock().await;
        let home = self
            .workspaces
            .ensure_home(&request.chat_id)
            .await
            .map_err(|e| match e {
                WorkspaceError::ArchiveDamaged(damage) => AgentError::WorkspaceDamaged(damage),
                e => AgentError::Retryable(e.to_string()),
            })?;
        self.write_system_prompt(&home, &request)
            .await
            .map_err(|e| AgentError::Retryable(format!("writing the system prompt: {e}")))?;
        let mut launch = self.launch.clone();
        launch.env.push(("HOME".into(), home.display().to_string()));
        launch
            .env
            .push(("TMPDIR".into(), home.join(".tmp").display().to_string()));
        let stream = self.connect(&request.chat_id, &home, launch).await?;
        let spec = TurnSpec {
            turn_id: request.turn_id,
            prompt: request.prompt(),
            senders: request.messages.iter().map(|m| m.sender.clone()).collect(),
            request_id: request.request_id.clone(),
        };
        let result = exchange(stream, &Request::Turn(spec)).await?;
        if result.ok {
            let attachments = result
                .attachments
                .iter()
                .filter_map(|rel| sent_file(&home, rel))
                .collect();
            Ok(TurnReply {
                text: result.text,
                attachments,
                accounting: TurnAccounting {
                    session_id: result.session_id,
                    cost_usd: result.cost_usd,
                    usage: result.usage,
                },
            })
        } else if result.retryable {
            Err(AgentError::Retryable(
                result.error.unwrap_or_else(|| "agent failed".into()),
            ))
        } else {
            Err(AgentError::Permanent(
                result.error.unwrap_or_else(|| "agent failed".into()),
            ))
        }
    }

    /// Connects to the chat's runner, starting (or restarting) it when nobody answers.
    async fn connect(
        &self,
        chat_id: &str,
        home: &Path,
        mut launch: RunnerLaunch,
    ) -> Result<UnixStream, AgentError> {
        if let Ok(s) = self.workspaces.connect_runner(chat_id, home).await {
            return Ok(s);
        }
        // The token is issued (and its hash stored) when the runner is set up, not per turn.
        launch.env.extend(self.model_env(chat_id).await?);
        self.workspaces
            .ensure_runner(chat_id, home, &launch)
            .await
            .map_err(|e| AgentError::Retryable(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + RUNNER_START_TIMEOUT;
        // A runner usually answers within tens of milliseconds: ask often at first (every
        // poll is on a cold chat's path to its first answer), then back off.
        let mut pause = Duration::from_millis(2);
        loop {
            match self.workspaces.connect_runner(chat_id, home).await {
                Ok(s) => return Ok(s),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(AgentError::Retryable(format!(
                        "the runner did not answer within {} s: {e}",
                        RUNNER_START_TIMEOUT.as_secs()
                    )));
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
            }
        }
    }

    async fn write_system_prompt(
        &self,
        home: &Path,
        request: &TurnRequest,
    ) -> Result<(), WorkspaceError> {
        let others: Vec<&str> = request.participants.iter().map(String::as_str).collect();
        let who = if request.is_group {
            format!("a group chat with {}", others.join(", "))
        } else {
            format!("a one-to-one chat with {}", others.join(", "))
        };
        let owner = self
            .owner
            .as_deref()
            .map(|o| format!(" Your owner is {o}."))
            .unwrap_or_default();
        let prompt = format!(
            "You are {name}, an AI assistant people reach by text message (iMessage/SMS). \
             This conversation is {who}.{owner} Messages from several people are prefixed with \
             the sender's handle. Answer as a text message: plain text, short paragraphs, no \
             markdown headings or tables, no emphasis markers; keep it brief unless asked for \
             detail. Your working directory is this chat's private workspace; files you write \
             there stay in it.",
            name = self.bot_name
        );
        let chat_id = &request.chat_id;
        // Most turns find the prompt as the last one left it: skip the home (a helper round
        // trip when sandboxed) unless it changed or this daemon has not looked yet.
        let known = |prompts: &HashMap<String, String>| prompts.get(chat_id) == Some(&prompt);
        if self.written_prompts.lock().is_ok_and(|p| known(&p)) {
            return Ok(());
        }
        let current = self.workspaces.read_text(chat_id, SYSTEM_PROMPT_FILE).await;
        if !current.is_ok_and(|old| old == prompt) {
            self.workspaces
                .write_file(chat_id, home, SYSTEM_PROMPT_FILE, prompt.clone())
                .await?;
        }
        if let Ok(mut prompts) = self.written_prompts.lock() {
            prompts.insert(chat_id.clone(), prompt);
        }
        Ok(())
    }
}

/// Relative to the chat's home (the runner's working directory).
const SYSTEM_PROMPT_FILE: &str = ".picortex/system-prompt.md";

/// A reported attachment, accepted only as a plain name under `outbox/sent/`.
fn sent_file(home: &Path, relative: &str) -> Option<PathBuf> {
    let name = relative.strip_prefix("outbox/sent/")?;
    let plain = !name.is_empty() && !name.contains('/') && name != "." && name != "..";
    if !plain {
        tracing::warn!(
            path = relative,
            "runner reported an attachment outside outbox/sent; ignored"
        );
        return None;
    }
    Some(home.join("outbox").join("sent").join(name))
}

/// `program` if it names a file, else its first match on PATH.
pub fn which(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|c| c.is_file())
}

/// `picortex-runner` next to the running binary (or one level up, for test binaries in
/// `target/*/deps`); failing that, the running `picortex` binary's own `runner` subcommand.
fn default_runner() -> Result<(PathBuf, Vec<OsString>), AgentError> {
    let exe = std::env::current_exe()
        .map_err(|e| AgentError::Permanent(format!("cannot locate picortex's binary: {e}")))?;
    let sibling = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("picortex-runner"))
        .find(|candidate| candidate.is_file());
    Ok(match sibling {
        Some(runner) => (runner, Vec::new()),
        None => (exe, vec!["runner".into()]),
    })
}

async fn exchange_reset(stream: UnixStream) -> Result<(), AgentError> {
    let (read, mut write) = stream.into_split();
    let line = encode(&Request::Reset).map_err(|e| AgentError::Permanent(e.to_string()))?;
    write
        .write_all(&line)
        .await
        .map_err(|e| AgentError::Retryable(format!("runner socket: {e}")))?;
    let answer = BufReader::new(read)
        .lines()
        .next_line()
        .await
        .map_err(|e| AgentError::Retryable(format!("runner socket: {e}")))?;
    match answer.map(|l| serde_json::from_str::<Response>(&l)) {
        Some(Ok(Response::Pong { .. })) => Ok(()),
        other => Err(AgentError::Retryable(format!(
            "runner did not confirm the reset: {other:?}"
        ))),
    }
}

async fn exchange(stream: UnixStream, request: &Request) -> Result<TurnResult, AgentError> {
    let (read, mut write) = stream.into_split();
    let line = encode(request).map_err(|e| AgentError::Permanent(e.to_string()))?;
    write
        .write_all(&line)
        .await
        .map_err(|e| AgentError::Retryable(format!("runner socket: {e}")))?;
    let mut lines = BufReader::new(read).lines();
    loop {
        let line = lines
            .next_line()
            .await
            .map_err(|e| AgentError::Retryable(format!("runner socket: {e}")))?
            .ok_or_else(|| AgentError::Retryable("the runner went away mid-turn".into()))?;
        let response: Response = serde_json::from_str(&line)
            .map_err(|e| AgentError::Retryable(format!("runner sent garbage: {e}")))?;
        match response {
            Response::Accepted { .. } | Response::Pong { .. } => continue,
            Response::Result(result) => return Ok(result),
            Response::Error { message } => return Err(AgentError::Retryable(message)),
        }
    }
}

impl Agent for RunnerAgent {
    fn name(&self) -> &'static str {
        self.kind
    }

    fn run_turn(&self, request: TurnRequest) -> BoxFuture<'_, Result<TurnReply, AgentError>> {
        Box::pin(self.run(request))
    }

    fn reset<'a>(&'a self, chat_id: &'a str) -> BoxFuture<'a, Result<(), AgentError>> {
        Box::pin(async move {
            let home = self
                .workspaces
                .ensure_home(chat_id)
                .await
                .map_err(|e| AgentError::Retryable(e.to_string()))?;
            // A running runner drops its agent process and session; one that is not running
            // starts without a session because the file is gone.
            if let Ok(stream) = self.workspaces.connect_runner(chat_id, &home).await {
                exchange_reset(stream).await?;
            }
            self.workspaces
                .remove_file(chat_id, &home, ".picortex/session.json")
                .await
                .map_err(|e| AgentError::Retryable(format!("forgetting the session: {e}")))
        })
    }

    fn stop_chat<'a>(&'a self, chat_id: &'a str) -> BoxFuture<'a, Result<(), AgentError>> {
        Box::pin(async move {
            let lock = self.chat_lock(chat_id);
            let _chat = lock.lock().await;
            // Whatever happens to the home while the chat sleeps, the next turn looks again.
            if let Ok(mut prompts) = self.written_prompts.lock() {
                prompts.remove(chat_id);
            }
            self.workspaces
                .stop(chat_id)
                .await
                .map_err(|e| AgentError::Retryable(e.to_string()))
        })
    }

    fn interrupt(&self, request: &TurnRequest) -> BoxFuture<'_, ()> {
        let chat_id = request.chat_id.clone();
        let turn_id = request.turn_id;
        Box::pin(async move {
            let Ok(home) = self.workspaces.ensure_home(&chat_id).await else {
                return;
            };
            if let Ok(mut s) = self.workspaces.connect_runner(&chat_id, &home).await
                && let Ok(line) = encode(&Request::Interrupt { turn_id })
            {
                let _ = s.write_all(&line).await;
            }
        })
    }
}
