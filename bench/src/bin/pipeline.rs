//! `pipeline`: what the daemon adds around the agent, on this machine.
//!
//! 1. **Overhead with the echo backend.** The daemon runs in-process
//!    (`picortex::daemon::start_with_agent`) with the built-in echo agent wrapped in a timer
//!    that notes when `run_turn` is called and when it returns; its Linq client points at an
//!    in-process stand-in that notes when each `POST /v3/chats/{id}/messages` arrives. Signed
//!    2026-02-03 `message.received` webhooks (direct messages, so the default mode answers)
//!    are POSTed to `/api/linq/inbound`, 20 chats in parallel, each chat waiting for its reply
//!    before its next message (so nothing is folded). Per turn:
//!    * in = agent called − webhook 200 received (gate, turn queueing and claim: the gate runs
//!      after the 200);
//!    * out = reply POST arrived at Linq − agent returned (finishing the turn with its outbox
//!      row, the sender, the HTTP send);
//!    * total = in + out.
//! 2. **Claude Code, first turn vs warm turn.** The same daemon set-up with the real `claude`
//!    CLI through `picortex-runner` in each chat's tmux session, against mock-model (a fixed
//!    answer, no added delay) behind a timing proxy that notes each model request's span.
//!    Turns run one at a time: first a first turn in each of `--claude-chats` chats (runner
//!    and `claude` start), then `--warm-rounds` rounds of warm turns. Per turn: webhook 200 →
//!    reply POST arrival, the model's own time (union of the model requests' spans inside that
//!    window), and the rest.
//!
//! `cargo run --release -p picortex-bench --bin pipeline [-- --skip-claude]`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use futures::future::BoxFuture;
use linq::webhook::WebhookSecret;
use picortex::agent::{Agent, AgentError, EchoAgent, TurnReply, TurnRequest};
use picortex::config::{AgentKind, Config, LinqConfig};
use picortex::daemon::DaemonHandle;
use picortex_bench::chat_home::{runner_duration, stop_tmux_server};
use picortex_bench::cpu::{Snapshot, Usage};
use picortex_bench::harness::{self, find_on_path};
use picortex_bench::linq_standin::{self, Exchange, LinqSeen, Texter};
use picortex_bench::machine::Machine;
use picortex_bench::stats::{ms, p50_p90_p99_max_cells, summarize};
use picortex_bench::sync::lock;
use picortex_bench::webhooks::{BOT_LINE, Chat};
use tokio::net::TcpListener;

/// The aims from issue 3.
const AIM_OVERHEAD_P99: Duration = Duration::from_millis(20);
const AIM_CLAUDE_WARM_ADDED: Duration = Duration::from_millis(100);
/// What mock-model answers every Claude Code request with.
const MODEL_TEXT: &str = "Hello from the mock model.";
/// How long one echo turn may take before the run is abandoned.
const ECHO_TURN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one Claude Code turn may take.
const CLAUDE_TURN_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Parser)]
#[command(about = "Pipeline overhead of the picortex daemon around the agent")]
struct Args {
    /// Measured echo turns in all (spread evenly over --chats).
    #[arg(long, default_value_t = 1000)]
    turns: usize,
    /// Chats texting at once in the echo phase.
    #[arg(long, default_value_t = 20)]
    chats: usize,
    /// Unmeasured warm-up turns per chat before the measured ones.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Chats in the Claude Code phase (one first turn each).
    #[arg(long, default_value_t = 10)]
    claude_chats: usize,
    /// Rounds of warm turns over those chats after their first turns.
    #[arg(long, default_value_t = 3)]
    warm_rounds: usize,
    /// Mean think time, in ms, of the human-pace load (each chat pauses this long ±50% after
    /// a reply before its next message); 0 skips that load.
    #[arg(long, default_value_t = 250)]
    think_ms: u64,
    /// Override the daemon's `turns.max_concurrent` (default: the daemon's default).
    #[arg(long)]
    max_concurrent: Option<usize>,
    /// Print each Claude Code turn's timings on stderr.
    #[arg(long)]
    verbose: bool,
    /// Skip the Claude Code phase.
    #[arg(long)]
    skip_claude: bool,
    /// The runner binary [default: <workspace>/target/release/picortex-runner, built first
    /// with `cargo build --release -p picortex-runner`].
    #[arg(long)]
    runner_bin: Option<PathBuf>,
    /// Where the temporary data directory is created (not a tmpfs: fsync is part of the cost)
    /// [default: <workspace>/target/bench-tmp].
    #[arg(long)]
    tmp_dir: Option<PathBuf>,
    /// Do not write the daemon's JSON logs (by default they go, at info level as in
    /// production, to daemon.log in the temporary directory).
    #[arg(long)]
    no_daemon_logs: bool,
    /// Keep the temporary directory and print its path.
    #[arg(long)]
    keep: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.chats > 0 && args.turns > 0,
        "--chats and --turns must be positive"
    );
    let workspace = harness::workspace_root()?;
    let tmp = harness::scratch_dir(args.tmp_dir.as_deref(), &workspace, "pipeline-")?;
    if args.keep {
        eprintln!("keeping {}", tmp.path().display());
    }
    let tmp = Scratch(Some(tmp), args.keep);
    let machine = Machine::describe(tmp.path());
    if !args.no_daemon_logs {
        harness::log_daemon_to(tmp.path())?;
    }

    // The daemon gets a runtime of its own, sized like `picortex serve`; the webhook sender,
    // the Linq stand-in and the model proxy share another.
    let (daemon_rt, load_rt) = harness::runtimes()?;

    let echo = run_echo_phase(&args, tmp.path(), &daemon_rt, &load_rt)?;
    let claude = if args.skip_claude {
        ClaudeOutcome::Skipped("--skip-claude".into())
    } else {
        match (find_on_path("claude"), find_on_path("tmux")) {
            (None, _) => {
                println!("SKIP: the claude CLI is not on PATH; the Claude Code phase is skipped");
                ClaudeOutcome::Skipped("the claude CLI is not on PATH".into())
            }
            (Some(_), None) => {
                println!("SKIP: tmux is not installed; the Claude Code phase is skipped");
                ClaudeOutcome::Skipped("tmux is not installed".into())
            }
            (Some(claude), Some(_)) => {
                let runner = match &args.runner_bin {
                    Some(p) => p.clone(),
                    None => build_runner(&workspace)?,
                };
                let root = tmp.path().join("chats");
                let guard = TmuxCleanup(root.clone());
                let outcome =
                    run_claude_phase(&args, tmp.path(), &claude, &runner, &daemon_rt, &load_rt);
                drop(guard);
                ClaudeOutcome::Ran(outcome?)
            }
        }
    };
    drop(daemon_rt);
    drop(load_rt);
    print_report(&args, &machine, &echo, &claude);
    Ok(())
}

/// The temporary directory, deleted on drop unless it is to be kept (even after an error).
struct Scratch(Option<tempfile::TempDir>, bool);

impl Scratch {
    fn path(&self) -> &Path {
        self.0
            .as_ref()
            .map_or(Path::new("."), tempfile::TempDir::path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.1
            && let Some(dir) = self.0.take()
        {
            let _ = dir.keep();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The timed agent
// ---------------------------------------------------------------------------------------------

/// When one turn's agent was called and when it returned.
#[derive(Debug, Clone, Copy)]
struct AgentSpan {
    called: Instant,
    returned: Instant,
    messages: usize,
    ok: bool,
}

/// Wraps an agent and notes each turn's call and return, by chat (one turn at a time per chat).
struct Timed {
    inner: Arc<dyn Agent>,
    spans: Mutex<HashMap<String, AgentSpan>>,
}

impl Timed {
    fn new(inner: Arc<dyn Agent>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            spans: Mutex::new(HashMap::new()),
        })
    }

    fn take(&self, chat_id: &str) -> Option<AgentSpan> {
        lock(&self.spans).remove(chat_id)
    }
}

impl Agent for Timed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn run_turn(&self, request: TurnRequest) -> BoxFuture<'_, Result<TurnReply, AgentError>> {
        let called = Instant::now();
        let chat_id = request.chat_id.clone();
        let messages = request.messages.len();
        Box::pin(async move {
            let result = self.inner.run_turn(request).await;
            let returned = Instant::now();
            lock(&self.spans).insert(
                chat_id,
                AgentSpan {
                    called,
                    returned,
                    messages,
                    ok: result.is_ok(),
                },
            );
            result
        })
    }

    fn interrupt(&self, request: &TurnRequest) -> BoxFuture<'_, ()> {
        self.inner.interrupt(request)
    }

    fn reset<'a>(&'a self, chat_id: &'a str) -> BoxFuture<'a, Result<(), AgentError>> {
        self.inner.reset(chat_id)
    }
}

// ---------------------------------------------------------------------------------------------
// One turn, driven from outside
// ---------------------------------------------------------------------------------------------

/// Everything noted about one turn.
#[derive(Debug, Clone, Copy)]
struct TurnTimes {
    acked: Instant,
    agent: AgentSpan,
    posted: Instant,
}

impl TurnTimes {
    fn inbound(&self) -> Option<Duration> {
        self.agent.called.checked_duration_since(self.acked)
    }
    fn outbound(&self) -> Duration {
        self.posted.saturating_duration_since(self.agent.returned)
    }
    fn wall(&self) -> Duration {
        self.posted.saturating_duration_since(self.acked)
    }
    fn agent_time(&self) -> Duration {
        self.agent
            .returned
            .saturating_duration_since(self.agent.called)
    }
}

struct Driver {
    client: reqwest::Client,
    url: String,
    secret: WebhookSecret,
    seen: Arc<LinqSeen>,
    agent: Arc<Timed>,
}

impl Driver {
    /// Texts `chat` once (`label` names the message) and waits for the reply to reach Linq.
    /// Returns the timings and the reply's text.
    async fn turn(
        &self,
        chat: &Chat,
        label: &str,
        timeout: Duration,
    ) -> anyhow::Result<(TurnTimes, String)> {
        let texter = Texter {
            client: &self.client,
            inbound_url: &self.url,
            secret: &self.secret,
            seen: &self.seen,
        };
        let Exchange {
            acked,
            reply: arrival,
            ..
        } = texter.exchange(chat, label, timeout).await?;
        let agent = self.agent.take(&chat.id).with_context(|| {
            format!(
                "a reply ({:?}) arrived in chat {} but the agent was never called",
                arrival.text, chat.id
            )
        })?;
        Ok((
            TurnTimes {
                acked,
                agent,
                posted: arrival.at,
            },
            arrival.text,
        ))
    }
}

fn base_config(tmp: &Path, name: &str, linq_url: &str, secret: &WebhookSecret) -> Config {
    Config {
        port: 0,
        data_dir: tmp.join(format!("data-{name}")),
        workspace_root: tmp.join("chats"),
        agent: AgentKind::Echo,
        linq: LinqConfig {
            api_key: format!("bench_{}", uuid::Uuid::new_v4().simple()),
            base_url: linq_url.to_owned(),
            webhook_secret: secret.as_str().to_owned(),
            phone: Some(BOT_LINE.to_owned()),
        },
        ..Config::default()
    }
}

fn start_daemon(
    rt: &tokio::runtime::Runtime,
    config: Config,
    agent: Arc<dyn Agent>,
) -> anyhow::Result<DaemonHandle> {
    rt.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        picortex::daemon::start_with_agent(config, listener, agent).await
    })
}

// ---------------------------------------------------------------------------------------------
// Phase 1: echo
// ---------------------------------------------------------------------------------------------

/// One load's figures.
struct EchoLoad {
    name: &'static str,
    /// Pause after each reply before the chat's next message (mean; ±50% jitter).
    think: Duration,
    turns: Vec<TurnTimes>,
    /// Turns whose agent was called before the client had the webhook's 200 (in < 0).
    inbound_before_ack: usize,
    /// Replies that were not exactly the echo of the one message sent.
    mismatched: usize,
    elapsed: Duration,
    per_chat: usize,
    cpu: Usage,
    chat_ids: Vec<String>,
    /// Per turn, from the store's own timestamps (ms): message stored → gate decision, gate
    /// decision → turn claimed, claimed → turn finished.
    stages: Vec<[i64; 3]>,
}

struct EchoFigures {
    loads: Vec<EchoLoad>,
    chats: usize,
    sends: u64,
    repeated_keys: u64,
    unclaimed: u64,
    other_calls: u64,
    unexpected: u64,
    max_concurrent: usize,
}

fn run_echo_phase(
    args: &Args,
    tmp: &Path,
    daemon_rt: &tokio::runtime::Runtime,
    load_rt: &tokio::runtime::Runtime,
) -> anyhow::Result<EchoFigures> {
    let (linq_url, seen) = linq_standin::start(load_rt)?;
    let secret = WebhookSecret::generate();
    let mut config = base_config(tmp, "echo", &linq_url, &secret);
    if let Some(n) = args.max_concurrent {
        config.turns.max_concurrent = n;
    }
    let max_concurrent = config.turns.max_concurrent;
    let agent = Timed::new(Arc::new(EchoAgent));
    let daemon = start_daemon(daemon_rt, config, agent.clone())?;
    let driver = Arc::new(Driver {
        client: reqwest::Client::builder()
            .http1_only()
            .no_proxy()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()?,
        url: format!("{}/api/linq/inbound", daemon.base_url()),
        secret,
        seen: seen.clone(),
        agent,
    });
    let mut loads = Vec::new();
    let plans = [
        ("back to back", Duration::ZERO),
        ("human pace", Duration::from_millis(args.think_ms)),
    ];
    for (name, think) in plans {
        if name == "human pace" && args.think_ms == 0 {
            continue;
        }
        let load = load_rt.block_on(async {
            let mut load = echo_load(args, &driver, name, think).await?;
            load.stages = turn_stages(&daemon, load.chat_ids.clone()).await?;
            anyhow::Ok(load)
        });
        match load {
            Ok(l) => loads.push(l),
            Err(e) => {
                load_rt.block_on(daemon.shutdown());
                return Err(e);
            }
        }
    }
    load_rt.block_on(daemon.shutdown());
    Ok(EchoFigures {
        loads,
        chats: args.chats,
        sends: seen.sends(),
        repeated_keys: seen.repeated_keys(),
        unclaimed: seen.unclaimed(),
        other_calls: seen.other_calls(),
        unexpected: seen.unexpected(),
        max_concurrent,
    })
}

/// `args.chats` chats in parallel, each sending its next message once the previous one's reply
/// reached Linq (and, at human pace, after a think time).
async fn echo_load(
    args: &Args,
    driver: &Arc<Driver>,
    name: &'static str,
    think: Duration,
) -> anyhow::Result<EchoLoad> {
    let per_chat = args.turns.div_ceil(args.chats);
    eprintln!(
        "echo, {name}: {} chats × ({} warm-up + {per_chat}) turns, think time {} ms",
        args.chats,
        args.warmup,
        think.as_millis()
    );
    let before = Snapshot::take();
    let started = Instant::now();
    let chats = Chat::many(args.chats);
    let chat_ids: Vec<String> = chats.iter().map(|c| c.id.clone()).collect();
    let tasks: Vec<_> = chats
        .into_iter()
        .enumerate()
        .map(|(c, chat)| {
            let driver = driver.clone();
            let warmup = args.warmup;
            let mut rng =
                0x9e37_79b9_7f4a_7c15_u64 ^ (c as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(per_chat);
                let mut mismatched = 0;
                for t in 0..warmup + per_chat {
                    if !think.is_zero() {
                        // xorshift: a pause of think × [0.5, 1.5), different per chat.
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let factor = 0.5 + (rng % 1000) as f64 / 1000.0;
                        tokio::time::sleep(think.mul_f64(factor)).await;
                    }
                    let label = format!("c{c}t{t}");
                    let (turn, text) = driver.turn(&chat, &label, ECHO_TURN_TIMEOUT).await?;
                    let expected = format!("echo: {label} message 0");
                    if text != expected || turn.agent.messages != 1 {
                        mismatched += 1;
                    }
                    if t >= warmup {
                        times.push(turn);
                    }
                }
                anyhow::Ok((times, mismatched))
            })
        })
        .collect();
    let mut turns = Vec::new();
    let mut mismatched = 0;
    for task in tasks {
        let (t, m) = task.await??;
        turns.extend(t);
        mismatched += m;
    }
    let elapsed = started.elapsed();
    let cpu = before.until(&Snapshot::take());
    let inbound_before_ack = turns.iter().filter(|t| t.inbound().is_none()).count();
    Ok(EchoLoad {
        name,
        think,
        turns,
        inbound_before_ack,
        mismatched,
        elapsed,
        per_chat,
        cpu,
        chat_ids,
        stages: Vec::new(),
    })
}

/// The stages of every turn in `chat_ids`, from the store's timestamps (ms since the epoch).
async fn turn_stages(
    daemon: &DaemonHandle,
    chat_ids: Vec<String>,
) -> anyhow::Result<Vec<[i64; 3]>> {
    Ok(daemon
        .store
        .read(move |c| {
            let mut stmt = c.prepare(
                "SELECT m.created_at, m.gate_at, t.created_at, t.started_at, t.finished_at
                 FROM messages m
                 JOIN turns t ON t.id = m.turn_id
                 WHERE m.direction = 'inbound' AND m.chat_id = ?1 AND t.finished_at IS NOT NULL",
            )?;
            let mut out = Vec::new();
            for chat in &chat_ids {
                let rows = stmt.query_map([chat], |r| {
                    let stored: i64 = r.get(0)?;
                    let gated: i64 = r.get::<_, Option<i64>>(1)?.unwrap_or(stored);
                    let queued: i64 = r.get(2)?;
                    let started: i64 = r.get::<_, Option<i64>>(3)?.unwrap_or(queued);
                    let finished: i64 = r.get(4)?;
                    Ok([gated - stored, started - queued, finished - started])
                })?;
                for row in rows {
                    out.push(row?);
                }
            }
            Ok(out)
        })
        .await?)
}

// ---------------------------------------------------------------------------------------------
// Phase 2: Claude Code against mock-model
// ---------------------------------------------------------------------------------------------

/// One model request's span, as the proxy in front of mock-model saw it.
#[derive(Debug, Clone)]
struct ModelSpan {
    start: Instant,
    end: Instant,
    path: String,
}

#[derive(Default)]
struct ProxyLog {
    spans: Mutex<Vec<ModelSpan>>,
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    log: ProxyLog,
}

/// A pass-through proxy in front of mock-model that notes, per request, from sending it
/// upstream to the last byte of the upstream answer (the model's own time, loopback included).
fn start_model_proxy(
    rt: &tokio::runtime::Runtime,
    upstream: String,
) -> anyhow::Result<(String, Arc<ProxyState>)> {
    let state = Arc::new(ProxyState {
        upstream,
        client: reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .build()?,
        log: ProxyLog::default(),
    });
    let listener = rt.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .fallback(proxy_forward)
        .with_state(state.clone());
    rt.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("model proxy stopped: {e}");
        }
    });
    Ok((format!("http://{addr}"), state))
}

async fn proxy_forward(
    State(state): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut upstream_headers = reqwest::header::HeaderMap::new();
    for (name, value) in &headers {
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            upstream_headers.append(name.clone(), value.clone());
        }
    }
    let start = Instant::now();
    let sent = state
        .client
        .request(method, format!("{}{path}", state.upstream))
        .headers(upstream_headers)
        .body(body)
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    let mut out_headers = HeaderMap::new();
    for (name, value) in resp.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            out_headers.append(name.clone(), value.clone());
        }
    }
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let end = Instant::now();
    lock(&state.log.spans).push(ModelSpan {
        start,
        end,
        path: uri.path().to_owned(),
    });
    (status, out_headers, bytes).into_response()
}

impl ProxyState {
    /// The model's time inside `[from, to]`: the union of the request spans within it, and how
    /// many requests that was.
    fn model_time(&self, from: Instant, to: Instant) -> (Duration, usize, Vec<String>) {
        let mut spans: Vec<(Instant, Instant, String)> = lock(&self.log.spans)
            .iter()
            .filter(|s| s.end > from && s.start < to)
            .map(|s| (s.start.max(from), s.end.min(to), s.path.clone()))
            .collect();
        spans.sort_by_key(|s| s.0);
        let count = spans.len();
        let paths = spans.iter().map(|s| s.2.clone()).collect();
        let mut total = Duration::ZERO;
        let mut current: Option<(Instant, Instant)> = None;
        for (s, e, _) in spans {
            current = match current {
                Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
                Some((cs, ce)) => {
                    total += ce - cs;
                    Some((s, e))
                }
                None => Some((s, e)),
            };
        }
        if let Some((cs, ce)) = current {
            total += ce - cs;
        }
        (total, count, paths)
    }
}

#[derive(Debug, Clone)]
struct ClaudeTurn {
    times: TurnTimes,
    model: Duration,
    model_requests: usize,
    /// The runner's own measure of the backend's turn (`duration_ms` of the newest turn file:
    /// the user line written to `claude`'s stdin until its `result`), ms resolution.
    claude: Option<Duration>,
}

struct ClaudeFigures {
    first: Vec<ClaudeTurn>,
    warm: Vec<ClaudeTurn>,
    failed: Vec<String>,
    request_paths: HashMap<String, usize>,
    claude_version: String,
}

enum ClaudeOutcome {
    Skipped(String),
    Ran(ClaudeFigures),
}

fn run_claude_phase(
    args: &Args,
    tmp: &Path,
    claude: &Path,
    runner: &Path,
    daemon_rt: &tokio::runtime::Runtime,
    load_rt: &tokio::runtime::Runtime,
) -> anyhow::Result<ClaudeFigures> {
    let claude_version = std::process::Command::new(claude)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let model = load_rt.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        mock_model::start(mock_model::Script::new().default_text(MODEL_TEXT), listener).await
    })?;
    let (proxy_url, proxy) = start_model_proxy(load_rt, model.base_url())?;
    let (linq_url, seen) = linq_standin::start(load_rt)?;
    let secret = WebhookSecret::generate();
    let mut config = base_config(tmp, "claude", &linq_url, &secret);
    config.agent = AgentKind::ClaudeCode;
    config.agents.claude_bin = claude.to_owned();
    config.agents.runner_bin = Some(runner.to_owned());
    config.agents.anthropic_base_url = Some(proxy_url);
    config.agents.anthropic_api_key = Some("k".into());
    let runner_agent = picortex::runner_agent::RunnerAgent::from_config(&config)
        .map_err(|e| anyhow::anyhow!("configuring the runner agent: {e}"))?;
    let agent = Timed::new(Arc::new(runner_agent));
    let daemon = start_daemon(daemon_rt, config, agent.clone())?;
    let driver = Driver {
        client: reqwest::Client::builder()
            .http1_only()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()?,
        url: format!("{}/api/linq/inbound", daemon.base_url()),
        secret,
        seen,
        agent,
    };
    let chats = Chat::many(args.claude_chats.max(1));
    eprintln!(
        "claude: {} first turns, then {} warm rounds, one turn at a time ({claude_version})",
        chats.len(),
        args.warm_rounds
    );
    let verbose = args.verbose;
    let workspace_root = tmp.join("chats");
    let result = load_rt.block_on(async {
        let mut first = Vec::new();
        let mut warm = Vec::new();
        let mut failed = Vec::new();
        for round in 0..=args.warm_rounds {
            for (c, chat) in chats.iter().enumerate() {
                let label = format!("claude c{c} r{round}");
                let (times, text) = driver.turn(chat, &label, CLAUDE_TURN_TIMEOUT).await?;
                if text != MODEL_TEXT || !times.agent.ok {
                    failed.push(format!("round {round} chat {c}: {text:?}"));
                    continue;
                }
                let (model_time, model_requests, _) = proxy.model_time(times.acked, times.posted);
                let claude_time = runner_duration(&workspace_root, &chat.id);
                if verbose {
                    eprintln!(
                        "  round {round} chat {c}: wall {} ms, in {} ms, agent {} ms (claude {} \
                         ms), model {} ms ({model_requests} requests), out {} ms",
                        ms(times.wall()),
                        ms(times.inbound().unwrap_or_default()),
                        ms(times.agent_time()),
                        claude_time.map_or("?".into(), ms),
                        ms(model_time),
                        ms(times.outbound()),
                    );
                }
                let turn = ClaudeTurn {
                    times,
                    model: model_time,
                    model_requests,
                    claude: claude_time,
                };
                if round == 0 {
                    first.push(turn);
                } else {
                    warm.push(turn);
                }
            }
        }
        anyhow::Ok((first, warm, failed))
    });
    load_rt.block_on(daemon.shutdown());
    let mut request_paths = HashMap::new();
    for s in lock(&proxy.log.spans).iter() {
        *request_paths.entry(s.path.clone()).or_insert(0) += 1;
    }
    load_rt.block_on(model.shutdown());
    let (first, warm, failed) = result?;
    Ok(ClaudeFigures {
        first,
        warm,
        failed,
        request_paths,
        claude_version,
    })
}

/// Stops every chat's tmux server under the workspace root when dropped.
struct TmuxCleanup(PathBuf);

impl Drop for TmuxCleanup {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return;
        };
        for e in entries.flatten() {
            stop_tmux_server(&e.path());
        }
    }
}

fn build_runner(workspace: &Path) -> anyhow::Result<PathBuf> {
    let [runner] = harness::build_release(workspace, ["picortex-runner"])?;
    Ok(runner)
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/// Threads of this binary that are not the daemon: the load generator's runtime (which also
/// serves the Linq stand-in and the model proxy) and the main thread.
const NOT_DAEMON: &[&str] = &["loadgen-rt", "pipeline"];

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn print_report(args: &Args, m: &Machine, echo: &EchoFigures, claude: &ClaudeOutcome) {
    println!("## Pipeline overhead, {}", m.date);
    println!();
    println!(
        "Machine: {} × {}, {}, data on {}; load average at start {}. Code: {}.",
        m.cpus, m.cpu_model, m.kernel, m.data_fs, m.loadavg, m.commit
    );
    println!(
        "Daemon logs: {}.",
        if args.no_daemon_logs {
            "off"
        } else {
            "on (JSON, info, to a file)"
        }
    );
    println!();
    println!(
        "### Echo backend: {} chats in parallel, one message in flight per chat \
         (turns.max_concurrent = {})",
        echo.chats, echo.max_concurrent
    );
    println!();
    println!("| ms | load | turns/s | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    let mut aim_total = None;
    for load in &echo.loads {
        let inbound = summarize(load.turns.iter().map(|t| t.inbound().unwrap_or_default()));
        let outbound = summarize(load.turns.iter().map(TurnTimes::outbound));
        let total = summarize(
            load.turns
                .iter()
                .map(|t| t.inbound().unwrap_or_default() + t.outbound()),
        );
        let agent = summarize(load.turns.iter().map(TurnTimes::agent_time));
        let wall = summarize(load.turns.iter().map(TurnTimes::wall));
        if aim_total.is_none() {
            aim_total = Some((load.name, total, load.mismatched));
        }
        let rate = format!(
            "{:.0}",
            load.turns.len() as f64 / load.elapsed.as_secs_f64().max(f64::EPSILON)
        );
        let label = if load.think.is_zero() {
            load.name.to_owned()
        } else {
            format!("{} ({} ms think)", load.name, load.think.as_millis())
        };
        for (what, s) in [
            (
                "in: webhook 200 → agent called (gate, queue, claim)",
                inbound,
            ),
            (
                "out: agent returned → reply POST at Linq (finish, outbox, send)",
                outbound,
            ),
            ("**total overhead (in + out)**", total),
            ("echo agent itself", agent),
            ("webhook 200 → reply at Linq", wall),
        ] {
            println!(
                "| {what} | {label} | {rate} | {} |",
                p50_p90_p99_max_cells(s)
            );
        }
    }
    println!();
    println!(
        "Inside the daemon, from the store's own timestamps (ms resolution, all turns of the load \
         including warm-ups):"
    );
    println!();
    println!("| ms | load | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    for load in &echo.loads {
        for (i, what) in [
            "message stored (ingest) → gate decision recorded",
            "gate decision (turn queued) → turn claimed by the scheduler",
            "turn claimed → turn finished (agent + finish)",
        ]
        .into_iter()
        .enumerate()
        {
            let mut v: Vec<i64> = load.stages.iter().map(|s| s[i]).collect();
            v.sort_unstable();
            if v.is_empty() {
                continue;
            }
            let at = |q: f64| {
                let rank = (q * v.len() as f64).ceil() as usize;
                v[rank.clamp(1, v.len()) - 1]
            };
            println!(
                "| {what} | {} | {} | {} | {} | {} |",
                load.name,
                at(0.5),
                at(0.9),
                at(0.99),
                v[v.len() - 1]
            );
        }
    }
    println!();
    for load in &echo.loads {
        let n = load.turns.len().max(1) as f64;
        let per_turn = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1e6 / n);
        let daemon: Duration = load
            .cpu
            .groups
            .iter()
            .filter(|(g, _)| !NOT_DAEMON.contains(&g.as_str()))
            .map(|(_, t)| *t)
            .sum();
        let writer = load
            .cpu
            .groups
            .get("store-writer")
            .copied()
            .unwrap_or_default();
        let loadgen = load
            .cpu
            .groups
            .get("loadgen-rt")
            .copied()
            .unwrap_or_default();
        let host_share = |d: Duration| {
            100.0 * d.as_secs_f64() / load.cpu.host_total.as_secs_f64().max(f64::EPSILON)
        };
        println!(
            "CPU, {} ({} turns in {:.1} s, {} per chat after {} warm-up turns, warm-ups \
             included in the CPU figures): daemon {} µs per turn (store writer {}), load \
             generator and Linq stand-in {} µs per turn; the whole host was {:.0}% busy, other \
             processes {:.0}% of the machine.",
            load.name,
            load.turns.len(),
            load.elapsed.as_secs_f64(),
            load.per_chat,
            args.warmup,
            per_turn(daemon),
            per_turn(writer),
            per_turn(loadgen),
            host_share(load.cpu.host_busy),
            host_share(load.cpu.others()),
        );
        println!();
    }
    if let Some((name, total, mismatched)) = aim_total {
        let met = total.is_some_and(|s| s.p99 < AIM_OVERHEAD_P99)
            && mismatched == 0
            && echo.unexpected == 0;
        println!(
            "Aim: total overhead p99 < {} ms ({name}): {} (p99 {} ms).",
            AIM_OVERHEAD_P99.as_millis(),
            verdict(met),
            total.map_or("n/a".into(), |s| ms(s.p99))
        );
        println!();
    }
    let mismatched: usize = echo.loads.iter().map(|l| l.mismatched).sum();
    let before_ack: usize = echo.loads.iter().map(|l| l.inbound_before_ack).sum();
    println!(
        "Checks: {} replies not exactly the echo of the one message sent; {} turns with the agent \
         called before the client saw the 200 (counted as 0); the Linq stand-in got {} sends \
         ({} repeating an idempotency key already answered, {} unclaimed), {} typing/read \
         calls, {} to unexpected routes.",
        mismatched,
        before_ack,
        echo.sends,
        echo.repeated_keys,
        echo.unclaimed,
        echo.other_calls,
        echo.unexpected,
    );
    println!();
    match claude {
        ClaudeOutcome::Skipped(why) => {
            println!("### Claude Code: SKIP ({why})");
            println!();
        }
        ClaudeOutcome::Ran(c) => print_claude(c),
    }
}

fn print_claude(c: &ClaudeFigures) {
    println!(
        "### Claude Code ({}) through picortex-runner against mock-model (no added delay): \
         {} first turns, {} warm turns, one at a time",
        c.claude_version,
        c.first.len(),
        c.warm.len()
    );
    println!();
    println!("| ms | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (name, turns) in [("first turn", &c.first), ("warm turn", &c.warm)] {
        let wall = summarize(turns.iter().map(|t| t.times.wall()));
        let model = summarize(turns.iter().map(|t| t.model));
        let added = summarize(turns.iter().map(|t| t.times.wall().saturating_sub(t.model)));
        let inbound = summarize(turns.iter().map(|t| t.times.inbound().unwrap_or_default()));
        let agent_minus_model = summarize(
            turns
                .iter()
                .map(|t| t.times.agent_time().saturating_sub(t.model)),
        );
        let outbound = summarize(turns.iter().map(|t| t.times.outbound()));
        let claude_cli = summarize(
            turns
                .iter()
                .filter_map(|t| t.claude.map(|c| c.saturating_sub(t.model))),
        );
        let runner = summarize(
            turns
                .iter()
                .filter_map(|t| t.claude.map(|c| t.times.agent_time().saturating_sub(c))),
        );
        println!(
            "| **{name}: webhook 200 → reply at Linq** | {} |",
            p50_p90_p99_max_cells(wall)
        );
        println!(
            "| {name}: the model's own time | {} |",
            p50_p90_p99_max_cells(model)
        );
        println!(
            "| **{name}: added over the model (wall − model)** | {} |",
            p50_p90_p99_max_cells(added)
        );
        println!(
            "| {name}: daemon in (200 → agent called) | {} |",
            p50_p90_p99_max_cells(inbound)
        );
        println!(
            "| {name}: runner + tmux + claude (agent time − model) | {} |",
            p50_p90_p99_max_cells(agent_minus_model)
        );
        println!(
            "| {name}: … of which `claude` itself (runner's `duration_ms` − model) | {} |",
            p50_p90_p99_max_cells(claude_cli)
        );
        println!(
            "| {name}: … of which the runner and its hand-over (agent time − `duration_ms`) | {} |",
            p50_p90_p99_max_cells(runner)
        );
        println!(
            "| {name}: daemon out (agent returned → reply at Linq) | {} |",
            p50_p90_p99_max_cells(outbound)
        );
    }
    println!();
    let warm_added = summarize(
        c.warm
            .iter()
            .map(|t| t.times.wall().saturating_sub(t.model)),
    );
    let requests = |turns: &[ClaudeTurn]| {
        if turns.is_empty() {
            0.0
        } else {
            turns.iter().map(|t| t.model_requests).sum::<usize>() as f64 / turns.len() as f64
        }
    };
    println!(
        "Aim: a warm Claude Code turn adds < {} ms over the model's own time: p50 {} ({} ms), \
         p99 {} ({} ms).",
        AIM_CLAUDE_WARM_ADDED.as_millis(),
        verdict(warm_added.is_some_and(|s| s.p50 < AIM_CLAUDE_WARM_ADDED)),
        warm_added.map_or("n/a".into(), |s| ms(s.p50)),
        verdict(warm_added.is_some_and(|s| s.p99 < AIM_CLAUDE_WARM_ADDED) && c.failed.is_empty()),
        warm_added.map_or("n/a".into(), |s| ms(s.p99)),
    );
    println!();
    let mut paths: Vec<_> = c.request_paths.iter().collect();
    paths.sort();
    println!(
        "Model requests per turn: {:.1} (first), {:.1} (warm); by path: {}. Failed turns: {}{}.",
        requests(&c.first),
        requests(&c.warm),
        paths
            .iter()
            .map(|(p, n)| format!("{p} ×{n}"))
            .collect::<Vec<_>>()
            .join(", "),
        c.failed.len(),
        if c.failed.is_empty() {
            String::new()
        } else {
            format!(" ({})", c.failed.join("; "))
        }
    );
    println!();
}
