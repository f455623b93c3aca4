//! `sandbox`: what per-chat isolation costs on this machine, measured as root, each figure with
//! the Landlock-only mode (plain directories of one user) as the baseline in the same run.
//!
//! 1. **Provisioning + runner start.** For `--chats` new chats, one at a time, through the
//!    daemon's own code path (`Isolation::setup`, `Workspaces::with_isolation`, `ensure_home`,
//!    `ensure_runner` with the `command` agent running `cat`): *provision* is `ensure_home`
//!    (the helper's user, group, 0700 home and seeded git repository), *start* runs from there
//!    until the runner answers a `ping` over `Workspaces::connect_runner` (its socket
//!    `<home>/.picortex/runner.sock`, through the helper when sandboxed): the jail with its
//!    cgroup and init, the tmux server, the runner. Sandbox and Landlock chats alternate, so
//!    both share the machine's noise. The helper's own time per operation comes from its audit
//!    log.
//! 2. **Idle memory per chat**, with every chat's tmux session and runner still running: PSS
//!    (`/proc/<pid>/smaps_rollup`) summed over the chat's processes (its cgroup's members in the
//!    sandbox, the tmux server's process tree in Landlock mode); and the host's `MemAvailable`
//!    gained back when each mode's chats are stopped (kernel memory included, but noisy).
//! 3. **A Claude Code turn inside the sandbox vs outside it.** Two real daemons
//!    (`picortex::daemon::start`, isolation `sandbox` and `landlock`) run side by side with the
//!    `claude-code` agent against mock-model (through each daemon's gateway) and a Linq
//!    stand-in; signed DMs go to each in turn, and a turn is timed from the webhook's 200 to the
//!    reply's POST at Linq. A first turn per chat, then warm turns in interleaved rounds.
//!
//! The helper and the runner are the real binaries (`picortex-sandbox`, `picortex-runner`),
//! built first with `cargo build --release`. Every chat user, cgroup, jail and tmux server made
//! here is removed at the end, also after an error.
//!
//! `cargo run --release -p picortex-bench --bin sandbox [-- --help]`; needs root, tmux and git
//! (and the `claude` CLI for part 3); prints SKIP and exits 0 otherwise.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use linq::webhook::WebhookSecret;
use picortex::config::{AgentKind, Config, LinqConfig};
use picortex::isolation::Isolation;
use picortex::workspace::{RunnerLaunch, Workspaces};
use picortex_bench::chat_home::{Cleanup, runner_duration, stop_tmux_server};
use picortex_bench::cpu::{Snapshot, Usage};
use picortex_bench::harness::{self, Mode, find_on_path};
use picortex_bench::linq_standin::{self, LinqSeen, Texter};
use picortex_bench::machine::Machine;
use picortex_bench::stats::{Summary, ms, p50_p90_p99_max_cells, summarize};
use picortex_bench::webhooks::{BOT_LINE, Chat};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

/// The aims from issue 4.
const AIM_PROVISION_P99: Duration = Duration::from_millis(300);
const AIM_TURN_OVERHEAD: f64 = 0.05;
/// How long a started runner gets to answer on its socket.
const RUNNER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one Claude Code turn may take.
const CLAUDE_TURN_TIMEOUT: Duration = Duration::from_secs(120);
/// What mock-model answers every Claude Code request with.
const MODEL_TEXT: &str = "Hello from the mock model.";

#[derive(Debug, Parser)]
#[command(about = "What per-chat isolation costs: provisioning, idle memory, Claude Code turns")]
struct Args {
    /// New chats per mode in parts 1 and 2.
    #[arg(long, default_value_t = 100)]
    chats: usize,
    /// Chats per mode in the Claude Code part (a first turn each).
    #[arg(long, default_value_t = 4)]
    claude_chats: usize,
    /// Warm Claude Code turns per mode.
    #[arg(long, default_value_t = 20)]
    warm_turns: usize,
    /// Skip the Claude Code part.
    #[arg(long)]
    skip_claude: bool,
    /// Print each chat's and turn's timings on stderr.
    #[arg(long)]
    verbose: bool,
    /// Where the temporary directory is made [default: <workspace>/target/bench-tmp].
    #[arg(long)]
    tmp_dir: Option<PathBuf>,
}

/// The real binaries the chats run.
struct Binaries {
    helper: PathBuf,
    runner: PathBuf,
}

fn main() -> anyhow::Result<()> {
    // The helper re-executes its own binary as each jail's init; that is picortex-sandbox here,
    // but should this binary ever be pointed at as the helper, it must become the init first.
    picortex_sandbox::jail::run_init_if_requested();
    let args = Args::parse();
    anyhow::ensure!(
        args.chats > 0 && args.claude_chats > 0,
        "--chats and --claude-chats must be positive"
    );
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: per-chat users, cgroups and namespaces need root; run this as root");
        return Ok(());
    }
    for tool in ["tmux", "git"] {
        if find_on_path(tool).is_none() {
            println!("SKIP: {tool} is not installed");
            return Ok(());
        }
    }
    let workspace = harness::workspace_root()?;
    let bins = build_binaries(&workspace)?;
    let tmp = harness::chats_scratch_dir(args.tmp_dir.as_deref(), &workspace, "sandbox-")?;
    let tmp_path = tmp.path().to_owned();
    // Dropped before the directory (declared after it): every chat goes, even after an error.
    let cleanup = Cleanup::default();
    let machine = Machine::describe(&tmp_path);
    harness::log_daemon_to(&tmp_path)?;
    let (daemon_rt, load_rt) = harness::runtimes()?;

    let provisioning = run_provisioning(&args, &bins, &tmp_path, &daemon_rt, &cleanup)?;
    let claude = if args.skip_claude {
        ClaudeOutcome::Skipped("--skip-claude".into())
    } else if let Some(claude) = find_on_path("claude") {
        ClaudeOutcome::Ran(run_claude(
            &args, &bins, &claude, &tmp_path, &daemon_rt, &load_rt, &cleanup,
        )?)
    } else {
        println!("SKIP: the claude CLI is not on PATH; part 3 (Claude Code turns) is skipped");
        ClaudeOutcome::Skipped("the claude CLI is not on PATH".into())
    };
    drop(daemon_rt);
    drop(load_rt);
    let end_load = Machine::describe(&tmp_path).loadavg;
    drop(cleanup);
    drop(tmp);
    print_report(&args, &machine, &end_load, &provisioning, &claude);
    Ok(())
}

/// Builds the helper and the runner (release), the binaries production runs.
fn build_binaries(workspace: &Path) -> anyhow::Result<Binaries> {
    let [helper, runner] =
        harness::build_release(workspace, ["picortex-sandbox", "picortex-runner"])?;
    Ok(Binaries { helper, runner })
}

// ---------------------------------------------------------------------------------------------
// Clean-up
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Parts 1 and 2: provisioning, runner start, idle memory
// ---------------------------------------------------------------------------------------------

/// One new chat's timings.
#[derive(Debug, Clone, Copy)]
struct ChatTimes {
    /// `ensure_home`: user, group, home, git (sandbox); directory and git (Landlock).
    provision: Duration,
    /// From `ensure_home`'s return until the runner answered a ping.
    start: Duration,
    /// Of `start`: until `ensure_runner` returned (tmux session and windows up).
    ensure_runner: Duration,
}

/// One chat's idle processes.
#[derive(Debug, Default, Clone)]
struct ChatMemory {
    pss_kib: u64,
    rss_kib: u64,
    processes: usize,
    /// PSS by process name (`comm`).
    by_comm: BTreeMap<String, u64>,
    /// The tmux session's windows, by name.
    windows: Vec<String>,
}

struct ModeFigures {
    times: Vec<ChatTimes>,
    memory: Vec<ChatMemory>,
    /// `MemAvailable` gained back when this mode's chats were stopped, in KiB.
    mem_available_freed_kib: Option<i64>,
    /// The helper's own time per operation (audit log), ms.
    helper_ops: BTreeMap<String, Vec<Duration>>,
}

struct ProvisionFigures {
    modes: BTreeMap<Mode, ModeFigures>,
    cpu: Usage,
    elapsed: Duration,
}

fn mode_config(tmp: &Path, mode: Mode, part: &str, bins: &Binaries) -> Config {
    let mut config = Config {
        port: 0,
        data_dir: tmp.join(format!("data-{part}-{}", mode.name())),
        workspace_root: tmp.join(format!("chats-{part}-{}", mode.name())),
        ..Config::default()
    };
    config.isolation.mode = mode.isolation();
    config.isolation.helper_bin = Some(bins.helper.clone());
    config
}

/// The launch `RunnerAgent` builds for the `command` agent running `cat` (its fixed flags and
/// environment, and where the confined chat may execute from).
fn cat_launch(bins: &Binaries) -> anyhow::Result<RunnerLaunch> {
    let cat = find_on_path("cat").context("cat is not on PATH")?;
    let dir_of = |p: &Path| {
        p.canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned))
    };
    Ok(RunnerLaunch {
        program: bins.runner.clone(),
        prefix: Vec::new(),
        args: [
            "--idle-timeout-secs",
            "900",
            "--agent",
            "command",
            "--command=cat",
        ]
        .map(OsString::from)
        .to_vec(),
        env: vec![
            (
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".to_owned(),
                "1".to_owned(),
            ),
            ("DISABLE_AUTOUPDATER".to_owned(), "1".to_owned()),
        ],
        allow_exec: [dir_of(&bins.runner), dir_of(&cat)]
            .into_iter()
            .flatten()
            .collect(),
    })
}

fn run_provisioning(
    args: &Args,
    bins: &Binaries,
    tmp: &Path,
    rt: &tokio::runtime::Runtime,
    cleanup: &Cleanup,
) -> anyhow::Result<ProvisionFigures> {
    let launch = cat_launch(bins)?;
    let configs: BTreeMap<Mode, Config> = Mode::BOTH
        .into_iter()
        .map(|m| (m, mode_config(tmp, m, "prov", bins)))
        .collect();
    for config in configs.values() {
        cleanup.watch(&config.workspace_root);
        std::fs::create_dir_all(&config.data_dir)?;
        // The jails relay the gateway's directory (as `picortex serve` sets it up); nothing
        // listens there in this part.
        std::fs::create_dir_all(config.data_dir.join("run").join("gateway"))?;
    }
    let cpu_before = Snapshot::take();
    let started = Instant::now();
    let mut modes = rt.block_on(async {
        let mut set = BTreeMap::new();
        for (&mode, config) in &configs {
            let isolation = Isolation::setup(config).await?;
            anyhow::ensure!(
                isolation.helper().is_some() == (mode == Mode::Sandbox),
                "isolation mode {} did not set up as asked",
                mode.name()
            );
            let workspaces = Workspaces::with_isolation(&config.workspace_root, &isolation);
            set.insert(mode, (isolation, workspaces, Vec::new(), Vec::new()));
        }
        for i in 0..args.chats {
            // Alternate which mode goes first, so neither always follows the other.
            let order = if i % 2 == 0 {
                Mode::BOTH
            } else {
                [Mode::Landlock, Mode::Sandbox]
            };
            for mode in order {
                let Some((_, workspaces, times, ids)) = set.get_mut(&mode) else {
                    continue;
                };
                let chat_id = format!("bench-{}-{i}-{}", mode.name(), uuid::Uuid::new_v4());
                let t = new_chat(workspaces, &chat_id, &launch)
                    .await
                    .with_context(|| format!("{} chat {i}", mode.name()))?;
                if args.verbose {
                    eprintln!(
                        "{} chat {i}: provision {} ms, start {} ms",
                        mode.name(),
                        ms(t.provision),
                        ms(t.start)
                    );
                }
                times.push(t);
                ids.push(chat_id);
            }
        }
        anyhow::Ok(set)
    })?;
    let elapsed = started.elapsed();
    let cpu = cpu_before.until(&Snapshot::take());
    eprintln!(
        "{} chats per mode up in {:.1} s; measuring idle memory",
        args.chats,
        elapsed.as_secs_f64()
    );
    // Let the windows' shells and the runners finish starting before they are weighed.
    std::thread::sleep(Duration::from_secs(2));
    let mut figures = BTreeMap::new();
    for mode in Mode::BOTH {
        let Some((isolation, _, times, ids)) = modes.remove(&mode) else {
            continue;
        };
        let root = &configs[&mode].workspace_root;
        let memory = ids
            .iter()
            .map(|id| chat_memory(mode, root, id))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let before = mem_available_kib();
        stop_chats(mode, root, &ids);
        std::thread::sleep(Duration::from_secs(1));
        let freed = before.zip(mem_available_kib()).map(|(b, a)| a - b);
        drop(isolation);
        let helper_ops = audit_times(&configs[&mode].data_dir.join("sandbox-audit.jsonl"));
        figures.insert(
            mode,
            ModeFigures {
                times,
                memory,
                mem_available_freed_kib: freed,
                helper_ops,
            },
        );
    }
    Ok(ProvisionFigures {
        modes: figures,
        cpu,
        elapsed,
    })
}

/// Provisions one chat and starts its runner, the way a chat's first turn does.
async fn new_chat(
    workspaces: &Workspaces,
    chat_id: &str,
    launch: &RunnerLaunch,
) -> anyhow::Result<ChatTimes> {
    let t0 = Instant::now();
    let home = workspaces.ensure_home(chat_id).await?;
    let t1 = Instant::now();
    let mut launch = launch.clone();
    // As `RunnerAgent` sets them for every chat.
    launch.env.push(("HOME".into(), home.display().to_string()));
    launch
        .env
        .push(("TMPDIR".into(), home.join(".tmp").display().to_string()));
    workspaces.ensure_runner(chat_id, &home, &launch).await?;
    let t2 = Instant::now();
    ping_runner(workspaces, chat_id, &home).await?;
    let t3 = Instant::now();
    Ok(ChatTimes {
        provision: t1 - t0,
        start: t3 - t1,
        ensure_runner: t2 - t1,
    })
}

/// Waits until the chat's runner answers a ping with a pong, reached the way the daemon reaches
/// it (`Workspaces::connect_runner`: through the helper when sandboxed).
async fn ping_runner(workspaces: &Workspaces, chat_id: &str, home: &Path) -> anyhow::Result<()> {
    use picortex_runner::protocol::{Request, Response, encode};
    let deadline = Instant::now() + RUNNER_TIMEOUT;
    let mut last_error = String::from("never tried");
    while Instant::now() < deadline {
        match workspaces.connect_runner(chat_id, home).await {
            Ok(mut stream) => {
                stream.write_all(&encode(&Request::Ping)?).await?;
                let mut line = String::new();
                BufReader::new(stream).read_line(&mut line).await?;
                match serde_json::from_str::<Response>(&line) {
                    Ok(Response::Pong { .. }) => return Ok(()),
                    other => last_error = format!("answered {other:?}"),
                }
            }
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    anyhow::bail!("chat {chat_id}'s runner did not answer within {RUNNER_TIMEOUT:?}: {last_error}")
}

/// The chat's processes and their memory: the members of its jail's cgroup (sandbox), or its
/// tmux server and everything below it (Landlock).
fn chat_memory(mode: Mode, root: &Path, chat_id: &str) -> anyhow::Result<ChatMemory> {
    let home_guess = root.join(picortex::workspace::chat_dir_name(chat_id));
    let pids = match mode {
        Mode::Sandbox => {
            let chat = picortex_sandbox::provision::Provisioner::new(root)
                .find(chat_id)?
                .with_context(|| format!("chat {chat_id} is not provisioned"))?;
            picortex_sandbox::jail::members(&chat.name)?
        }
        Mode::Landlock => process_tree(tmux_server_pid(&home_guess)?),
    };
    let mut memory = ChatMemory {
        windows: tmux_windows(&home_guess),
        ..ChatMemory::default()
    };
    for pid in pids {
        let Some((pss, rss)) = smaps_rollup(pid) else {
            continue; // Gone since it was listed.
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim().to_owned())
            .unwrap_or_else(|_| "?".into());
        memory.pss_kib += pss;
        memory.rss_kib += rss;
        memory.processes += 1;
        *memory.by_comm.entry(comm).or_default() += pss;
    }
    Ok(memory)
}

fn tmux_server_pid(home: &Path) -> anyhow::Result<i32> {
    let out = std::process::Command::new("tmux")
        .arg("-S")
        .arg(home.join(".picortex").join("tmux.sock"))
        .args(["display-message", "-p", "#{pid}"])
        .output()?;
    anyhow::ensure!(out.status.success(), "tmux display-message failed");
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn tmux_windows(home: &Path) -> Vec<String> {
    std::process::Command::new("tmux")
        .arg("-S")
        .arg(home.join(".picortex").join("tmux.sock"))
        .args(["list-windows", "-F", "#{window_name}"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// `root` and all its descendants, from every process's parent in `/proc`.
fn process_tree(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The parent is the second field after the command name, which may hold spaces.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if let Some(ppid) = ppid {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() {
        if let Some(kids) = children.get(&tree[next]) {
            tree.extend(kids);
        }
        next += 1;
    }
    tree
}

/// `(Pss, Rss)` of a process in KiB.
fn smaps_rollup(pid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("Pss:")?, field("Rss:")?))
}

fn mem_available_kib() -> Option<i64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Stops every chat of `ids` (the jail, or the tmux server), keeping users and homes for the
/// final clean-up.
fn stop_chats(mode: Mode, root: &Path, ids: &[String]) {
    let provisioner = picortex_sandbox::provision::Provisioner::new(root);
    for id in ids {
        match mode {
            Mode::Sandbox => {
                if let Ok(Some(chat)) = provisioner.find(id)
                    && let Err(e) = picortex_sandbox::jail::stop(&chat.name)
                {
                    eprintln!("stopping {}: {e}", chat.name);
                }
            }
            Mode::Landlock => {
                stop_tmux_server(&root.join(picortex::workspace::chat_dir_name(id)));
            }
        }
    }
}

/// The helper's `elapsed_ms` per successful operation, from its audit log.
fn audit_times(path: &Path) -> BTreeMap<String, Vec<Duration>> {
    let mut ops: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return ops;
    };
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let (Some(op), Some(elapsed)) = (event["op"].as_str(), event["elapsed_ms"].as_f64())
            && event["outcome"].as_str() == Some("ok")
        {
            ops.entry(op.to_owned())
                .or_default()
                .push(Duration::from_secs_f64(elapsed / 1000.0));
        }
    }
    ops
}

// ---------------------------------------------------------------------------------------------
// Part 3: Claude Code turns in the daemon, sandbox vs Landlock
// ---------------------------------------------------------------------------------------------

enum ClaudeOutcome {
    Skipped(String),
    Ran(ClaudeFigures),
}

struct ClaudeFigures {
    /// The sandboxed chats' CPU throttling by their cgroup's quota.
    throttling: Vec<Throttling>,
    version: String,
    first: BTreeMap<Mode, Vec<TurnTimes>>,
    warm: BTreeMap<Mode, Vec<TurnTimes>>,
    model_requests: usize,
    wrong_replies: usize,
    cpu: Usage,
}

/// How often a chat's cgroup held it back for its CPU quota, and for how long in all.
#[derive(Debug, Clone, Copy)]
struct Throttling {
    periods: u64,
    throttled: u64,
    throttled_time: Duration,
}

/// `cpu.stat` of the chat's jail, found through the cgroup of one of its processes (v1
/// `nr_throttled`/`throttled_time`, v2 `nr_throttled`/`throttled_usec`).
fn cpu_throttling(root: &Path, chat_id: &str) -> Option<Throttling> {
    let chat = picortex_sandbox::provision::Provisioner::new(root)
        .find(chat_id)
        .ok()??;
    let pid = *picortex_sandbox::jail::members(&chat.name).ok()?.first()?;
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let candidates: Vec<PathBuf> = cgroups
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let path = path.trim_start_matches('/');
            if controllers.split(',').any(|c| c == "cpu") {
                Some(vec![
                    Path::new("/sys/fs/cgroup/cpu").join(path),
                    Path::new("/sys/fs/cgroup/cpu,cpuacct").join(path),
                ])
            } else if controllers.is_empty() {
                Some(vec![
                    Path::new("/sys/fs/cgroup").join(path),
                    Path::new("/sys/fs/cgroup/unified").join(path),
                ])
            } else {
                None
            }
        })
        .flatten()
        .collect();
    let stat = candidates
        .iter()
        .find_map(|dir| std::fs::read_to_string(dir.join("cpu.stat")).ok())?;
    let field = |name: &str| {
        stat.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let throttled_time = match field("throttled_time") {
        Some(ns) => Duration::from_nanos(ns),
        None => Duration::from_micros(field("throttled_usec")?),
    };
    Some(Throttling {
        periods: field("nr_periods")?,
        throttled: field("nr_throttled")?,
        throttled_time,
    })
}

/// One Claude Code turn.
#[derive(Debug, Clone)]
struct TurnTimes {
    /// Webhook 200 → reply POST at Linq.
    wall: Duration,
    /// The runner's own measure (`duration_ms` of the turn file: the prompt written to
    /// `claude`'s stdin until its `result`, the model's time included), ms resolution.
    claude: Option<Duration>,
    /// When the webhook's 200 arrived (ms since the epoch), and the model requests that arrived
    /// at mock-model within the turn: (ms after the 200, path).
    acked_unix_ms: u64,
    model_requests: Vec<(u64, String)>,
}

/// Texts `chat` at the daemon behind `inbound_url` and waits for the reply at Linq: the time
/// from the webhook's 200 to the reply's POST, and the reply's text.
async fn claude_turn(
    client: &reqwest::Client,
    inbound_url: &str,
    secret: &WebhookSecret,
    seen: &LinqSeen,
    chat: &Chat,
    label: &str,
) -> anyhow::Result<(Duration, u64, String)> {
    let texter = Texter {
        client,
        inbound_url,
        secret,
        seen,
    };
    let exchange = texter.exchange(chat, label, CLAUDE_TURN_TIMEOUT).await?;
    Ok((
        exchange.reply.at.saturating_duration_since(exchange.acked),
        exchange.acked_unix_ms,
        exchange.reply.text,
    ))
}

fn run_claude(
    args: &Args,
    bins: &Binaries,
    claude: &Path,
    tmp: &Path,
    daemon_rt: &tokio::runtime::Runtime,
    load_rt: &tokio::runtime::Runtime,
    cleanup: &Cleanup,
) -> anyhow::Result<ClaudeFigures> {
    let version = std::process::Command::new(claude)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let model = load_rt.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        mock_model::start(mock_model::Script::new().default_text(MODEL_TEXT), listener).await
    })?;
    let (linq_url, seen) = linq_standin::start(load_rt)?;
    let secret = WebhookSecret::generate();
    let mut daemons = BTreeMap::new();
    let mut roots = BTreeMap::new();
    for mode in Mode::BOTH {
        let mut config = mode_config(tmp, mode, "claude", bins);
        roots.insert(mode, config.workspace_root.clone());
        cleanup.watch(&config.workspace_root);
        config.agent = AgentKind::ClaudeCode;
        config.agents.claude_bin = claude.to_owned();
        config.agents.runner_bin = Some(bins.runner.clone());
        config.agents.anthropic_base_url = Some(model.base_url());
        config.agents.anthropic_api_key = Some("bench-key-not-secret".into());
        config.linq = LinqConfig {
            api_key: format!("bench_{}", uuid::Uuid::new_v4().simple()),
            base_url: linq_url.clone(),
            webhook_secret: secret.as_str().to_owned(),
            phone: Some(BOT_LINE.to_owned()),
        };
        let daemon = daemon_rt.block_on(async {
            let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
            picortex::daemon::start(config, listener).await
        })?;
        daemons.insert(mode, daemon);
    }
    let client = reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let urls: BTreeMap<Mode, String> = daemons
        .iter()
        .map(|(m, d)| (*m, format!("{}/api/linq/inbound", d.base_url())))
        .collect();
    let chats: BTreeMap<Mode, Vec<Chat>> = Mode::BOTH
        .into_iter()
        .map(|m| (m, Chat::many(args.claude_chats)))
        .collect();
    let cpu_before = Snapshot::take();
    let outcome = load_rt.block_on(async {
        let mut first: BTreeMap<Mode, Vec<TurnTimes>> = BTreeMap::new();
        let mut warm: BTreeMap<Mode, Vec<TurnTimes>> = BTreeMap::new();
        let mut wrong = 0;
        let rounds = 1 + args.warm_turns.div_ceil(args.claude_chats);
        for round in 0..rounds {
            for i in 0..args.claude_chats {
                if round > 0 && (round - 1) * args.claude_chats + i >= args.warm_turns {
                    break;
                }
                // Alternate which mode goes first.
                let order = if (round + i) % 2 == 0 {
                    Mode::BOTH
                } else {
                    [Mode::Landlock, Mode::Sandbox]
                };
                for mode in order {
                    let Some(chat) = chats.get(&mode).and_then(|c| c.get(i)) else {
                        continue;
                    };
                    let (took, acked_unix_ms, text) = claude_turn(
                        &client,
                        &urls[&mode],
                        &secret,
                        &seen,
                        chat,
                        &format!("round {round}"),
                    )
                    .await
                    .with_context(|| format!("{} turn, round {round}", mode.name()))?;
                    if text != MODEL_TEXT {
                        wrong += 1;
                    }
                    let claude = runner_duration(&roots[&mode], &chat.id);
                    if args.verbose {
                        eprintln!(
                            "{} chat {i} round {round}: {} ms (claude {claude:?})",
                            mode.name(),
                            ms(took)
                        );
                    }
                    let into = if round == 0 { &mut first } else { &mut warm };
                    into.entry(mode).or_default().push(TurnTimes {
                        wall: took,
                        claude,
                        acked_unix_ms,
                        model_requests: Vec::new(),
                    });
                }
            }
        }
        anyhow::Ok((first, warm, wrong))
    });
    let cpu = cpu_before.until(&Snapshot::take());
    let throttling: Vec<Throttling> = chats
        .get(&Mode::Sandbox)
        .map(|chats| {
            chats
                .iter()
                .filter_map(|c| cpu_throttling(&roots[&Mode::Sandbox], &c.id))
                .collect()
        })
        .unwrap_or_default();
    for (_, daemon) in daemons {
        load_rt.block_on(daemon.shutdown());
    }
    let model_requests = model.message_requests().len();
    let recorded = model.requests();
    let (mut first, mut warm, wrong_replies) = outcome?;
    // Turns run one at a time, so each request belongs to the turn whose window holds it.
    for turn in first.values_mut().chain(warm.values_mut()).flatten() {
        let end = turn.acked_unix_ms + turn.wall.as_millis() as u64;
        turn.model_requests = recorded
            .iter()
            .filter(|r| r.at_ms >= turn.acked_unix_ms && r.at_ms <= end)
            .map(|r| (r.at_ms - turn.acked_unix_ms, r.path.clone()))
            .collect();
    }
    load_rt.block_on(model.shutdown());
    Ok(ClaudeFigures {
        throttling,
        version,
        first,
        warm,
        model_requests,
        wrong_replies,
        cpu,
    })
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

fn mib(kib: f64) -> String {
    format!("{:.2}", kib / 1024.0)
}

fn cpu_line(cpu: &Usage) -> String {
    let wall = cpu.wall.as_secs_f64().max(1e-9);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    format!(
        "the whole host was {:.0}% busy; processes other than this one (the helper, jails, tmux, runners and `claude` included) {:.0}% of the machine",
        100.0 * cpu.host_busy.as_secs_f64() / cpu.host_total.as_secs_f64().max(1e-9),
        100.0 * cpu.others().as_secs_f64() / (wall * cpus)
    )
}

fn print_report(
    args: &Args,
    machine: &Machine,
    end_load: &str,
    p: &ProvisionFigures,
    claude: &ClaudeOutcome,
) {
    println!("### Isolation cost, {}", machine.date);
    println!();
    println!(
        "Machine: {} × {}, {}, data on {}; load average at start {}, at end {}. Code: {}.",
        machine.cpus,
        machine.cpu_model,
        machine.kernel,
        machine.data_fs,
        machine.loadavg,
        end_load,
        machine.commit
    );
    println!(
        "Helper and runner: the release `picortex-sandbox` and `picortex-runner` binaries; cgroup {:?}; Landlock ABI {}.",
        picortex_sandbox::jail::cgroup_version(),
        picortex_sandbox::confine::kernel_abi()
    );
    println!();
    println!(
        "#### New chat: provisioning + runner start, {} chats per mode, one at a time, modes alternating ({:.1} s in all)",
        args.chats,
        p.elapsed.as_secs_f64()
    );
    println!();
    println!("| ms | mode | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    let total = |m: &ModeFigures| summarize(m.times.iter().map(|t| t.provision + t.start));
    for (mode, m) in &p.modes {
        let name = mode.name();
        println!(
            "| **total: home asked for → runner answers** | {name} | {} |",
            p50_p90_p99_max_cells(total(m))
        );
        println!(
            "| provision (`ensure_home`) | {name} | {} |",
            p50_p90_p99_max_cells(summarize(m.times.iter().map(|t| t.provision)))
        );
        println!(
            "| start (`ensure_runner` → runner answers a ping) | {name} | {} |",
            p50_p90_p99_max_cells(summarize(m.times.iter().map(|t| t.start)))
        );
        println!(
            "| … of which `ensure_runner` (jail/launcher, tmux, windows) | {name} | {} |",
            p50_p90_p99_max_cells(summarize(m.times.iter().map(|t| t.ensure_runner)))
        );
        for (op, times) in &m.helper_ops {
            println!(
                "| helper's own time for `{op}` (audit log, 0.1 ms) | {name} | {} |",
                p50_p90_p99_max_cells(summarize(times.iter().copied()))
            );
        }
    }
    println!();
    println!("CPU during the provisioning: {}.", cpu_line(&p.cpu));
    let ratio = |f: &dyn Fn(&ModeFigures) -> Option<Summary>| {
        let s = p.modes.get(&Mode::Sandbox).and_then(f)?;
        let l = p.modes.get(&Mode::Landlock).and_then(f)?;
        Some(s.p50.as_secs_f64() / l.p50.as_secs_f64().max(1e-9))
    };
    if let Some(r) = ratio(&total) {
        println!();
        println!("Sandbox ÷ Landlock, total p50: {r:.2}×.");
    }
    if let Some(s) = p.modes.get(&Mode::Sandbox).and_then(total) {
        println!();
        println!(
            "Aim: provisioning + sandboxed runner start p99 < {} ms: {} (p99 {} ms).",
            AIM_PROVISION_P99.as_millis(),
            if s.p99 < AIM_PROVISION_P99 {
                "met"
            } else {
                "**missed**"
            },
            ms(s.p99)
        );
    }
    println!();
    println!(
        "#### Idle memory per chat (tmux server, runner, `cat`, shell; sandbox: also its init)"
    );
    println!();
    println!(
        "| mode | chats | processes per chat | tmux windows | PSS per chat, mean / max (MiB) | RSS per chat, mean (MiB) | `MemAvailable` back per chat when stopped (MiB) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (mode, m) in &p.modes {
        let n = m.memory.len().max(1) as f64;
        let pss_mean = m.memory.iter().map(|c| c.pss_kib as f64).sum::<f64>() / n;
        let pss_max = m.memory.iter().map(|c| c.pss_kib).max().unwrap_or(0);
        let rss_mean = m.memory.iter().map(|c| c.rss_kib as f64).sum::<f64>() / n;
        let procs = m.memory.iter().map(|c| c.processes).sum::<usize>() as f64 / n;
        let mut windows: BTreeMap<String, usize> = BTreeMap::new();
        for c in &m.memory {
            *windows.entry(c.windows.join("+")).or_default() += 1;
        }
        let windows = windows
            .iter()
            .map(|(w, n)| format!("{w} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let freed = m
            .mem_available_freed_kib
            .map_or("n/a".into(), |k| mib(k as f64 / n));
        println!(
            "| {} | {} | {procs:.1} | {windows} | **{}** / {} | {} | {freed} |",
            mode.name(),
            m.memory.len(),
            mib(pss_mean),
            mib(pss_max as f64),
            mib(rss_mean),
        );
    }
    println!();
    println!("PSS by process, mean per chat (MiB):");
    println!();
    println!("| process (`comm`) | mode | chats with it | mean PSS |");
    println!("|---|---|---|---|");
    for (mode, m) in &p.modes {
        let mut by: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
        for c in &m.memory {
            for (comm, kib) in &c.by_comm {
                let e = by.entry(comm).or_default();
                e.0 += 1;
                e.1 += kib;
            }
        }
        for (comm, (count, kib)) in by {
            println!(
                "| {comm} | {} | {count} | {} |",
                mode.name(),
                mib(kib as f64 / m.memory.len().max(1) as f64)
            );
        }
    }
    println!();
    match claude {
        ClaudeOutcome::Skipped(why) => println!("#### Claude Code turns: SKIP ({why})"),
        ClaudeOutcome::Ran(c) => print_claude(args, c),
    }
    println!();
}

fn print_claude(args: &Args, c: &ClaudeFigures) {
    println!(
        "#### Claude Code ({}) turns against mock-model, sandbox vs Landlock daemons side by side: {} chats per mode, first turns then {} warm turns per mode, interleaved",
        c.version, args.claude_chats, args.warm_turns
    );
    println!();
    println!("| ms, webhook 200 → reply at Linq | mode | turns | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    for (label, set) in [("first turn", &c.first), ("warm turn", &c.warm)] {
        for (mode, v) in set {
            let name = mode.name();
            println!(
                "| **{label}: webhook 200 → reply at Linq** | {name} | {} | {} |",
                v.len(),
                p50_p90_p99_max_cells(summarize(v.iter().map(|t| t.wall)))
            );
            println!(
                "| {label}: … `claude` itself (runner's `duration_ms`, model included) | {name} | {} | {} |",
                v.iter().filter(|t| t.claude.is_some()).count(),
                p50_p90_p99_max_cells(summarize(v.iter().filter_map(|t| t.claude)))
            );
            println!(
                "| {label}: … the rest (daemon, helper, runner hand-over; − `duration_ms`) | {name} | {} | {} |",
                v.iter().filter(|t| t.claude.is_some()).count(),
                p50_p90_p99_max_cells(summarize(
                    v.iter()
                        .filter_map(|t| Some(t.wall.saturating_sub(t.claude?)))
                ))
            );
        }
    }
    println!();
    println!(
        "First turns, when each model request reached mock-model (ms after the webhook's 200, wall clock):"
    );
    println!();
    for (mode, v) in &c.first {
        for t in v {
            let reqs = t
                .model_requests
                .iter()
                .map(|(at, path)| format!("{path} at {at}"))
                .collect::<Vec<_>>()
                .join(", ");
            println!(
                "* {}: reply at {} ms; {reqs}",
                mode.name(),
                t.wall.as_millis()
            );
        }
    }
    println!();
    if !c.throttling.is_empty() {
        let n = c.throttling.len() as f64;
        let periods = c.throttling.iter().map(|t| t.periods).sum::<u64>() as f64 / n;
        let throttled = c.throttling.iter().map(|t| t.throttled).sum::<u64>() as f64 / n;
        let time = c
            .throttling
            .iter()
            .map(|t| t.throttled_time.as_secs_f64())
            .sum::<f64>()
            / n;
        println!(
            "CPU quota of the sandboxed chats (their cgroup's `cpu.stat`), mean per chat over the whole part: {periods:.0} periods with CPU use, {throttled:.0} of them throttled, {:.0} ms held back in all.",
            time * 1000.0
        );
        println!();
    }
    println!(
        "Model requests: {}; replies that were not the model's text: {}. CPU during the turns: {}.",
        c.model_requests,
        c.wrong_replies,
        cpu_line(&c.cpu)
    );
    let p50 = |set: &BTreeMap<Mode, Vec<TurnTimes>>, m: Mode| {
        set.get(&m)
            .and_then(|v| summarize(v.iter().map(|t| t.wall)))
    };
    for (label, set) in [("first", &c.first), ("warm", &c.warm)] {
        if let (Some(s), Some(l)) = (p50(set, Mode::Sandbox), p50(set, Mode::Landlock)) {
            let r = s.p50.as_secs_f64() / l.p50.as_secs_f64().max(1e-9);
            println!();
            if label == "warm" {
                println!(
                    "Aim: sandbox overhead per warm turn < {:.0}%: {} (sandbox ÷ Landlock p50 = {r:.3}×, {} vs {} ms).",
                    AIM_TURN_OVERHEAD * 100.0,
                    if r - 1.0 < AIM_TURN_OVERHEAD {
                        "met"
                    } else {
                        "**missed**"
                    },
                    ms(s.p50),
                    ms(l.p50)
                );
            } else {
                println!(
                    "First turns, sandbox ÷ Landlock p50: {r:.2}× ({} vs {} ms).",
                    ms(s.p50),
                    ms(l.p50)
                );
            }
        }
    }
}
