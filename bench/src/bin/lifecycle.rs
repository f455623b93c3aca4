//! `lifecycle`: the cold paths of a chat's lifecycle (issue 6), measured as root through the
//! real daemon, with the Landlock-only mode as the baseline in the same run.
//!
//! Two daemons (`picortex::daemon::start`, isolation `sandbox` and `landlock`) run side by side
//! in this process with the `command` agent, the release `picortex-sandbox` helper and
//! `picortex-runner`, and one in-process Linq stand-in. The agent's command is this binary
//! again (`lifecycle stamp-agent`): it reads the prompt from its stdin to the end, then answers
//! with the wall-clock time at that moment. That moment is "the agent holds the prompt". Signed
//! `message.received` DMs from the owner go to the daemons' webhooks, and each cold path is
//! timed from just before the webhook's POST to that stamp:
//!
//! * **new**: the first message of a brand-new chat (the helper provisions the user and home,
//!   the jail, tmux and the runner start, the runner runs the command);
//! * **hibernated**: the next message after the owner's `/picortex hibernate` (which calls
//!   `picortex::lifecycle::hibernate`: the chat's runner, tmux server and jail are stopped, its
//!   home kept);
//! * **warm**: one more message with the runner up, the floor the cold paths are compared with;
//! * **archived**: a new chat whose home is filled with `--workspace-mb` of mixed files (text,
//!   random and compressible binaries, a git repository with history, symlinks, a hard link),
//!   copied in as the chat's user; then the owner's `/picortex archive`
//!   (`picortex::lifecycle::archive`: the helper compresses the home to `<archive
//!   dir>/<chat dir>.tar.zst` and removes the user), timed from its POST to its answer at Linq
//!   and by the helper's and daemon's own records, with the archive's size; then the next
//!   message, which restores the home (the helper's `provision`) before the runner starts.
//!
//! Before the archive command and again before the message that restores, everything is
//! written back (`sync`), as it would be for a chat idle for weeks.
//!
//! Sandbox and Landlock chats alternate, and which goes first alternates too, so both share the
//! machine's noise. Each sample is split with the turn's `created_at`/`started_at` from the
//! daemon's store (ms) and, in the sandbox, the helper's audit log (`elapsed_ms` per operation).
//! Measured on their own as well: the command's own start (spawning this binary and handing it
//! a prompt, outside any jail), and the archive library (`picortex_sandbox::archive`) on the
//! same workspace outside the daemon, step by step, on the scratch filesystem and on tmpfs, next
//! to plain `tar | zstd -3`. The host's load (CPU and I/O pressure) is recorded.
//!
//! `cargo run --release -p picortex-bench --bin lifecycle [-- --quick | --help]`; needs root,
//! tmux and git; prints SKIP and exits 0 otherwise. Every chat user, cgroup, jail, tmux server
//! and directory made here is removed at the end, also after an error.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use linq::webhook::WebhookSecret;
use picortex::config::{AgentKind, Config, LinqConfig};
use picortex::daemon::DaemonHandle;
use picortex_bench::chat_home::{Cleanup, HelperOp, helper_ops};
use picortex_bench::cpu::{Snapshot, Usage};
use picortex_bench::harness::{self, Mode, find_on_path};
use picortex_bench::linq_standin::{self, LinqSeen, Texter};
use picortex_bench::machine::Machine;
use picortex_bench::stats::{Summary, ms, summarize};
use picortex_bench::webhooks::{BOT_LINE, Chat};
use tokio::net::TcpListener;

/// The aims from issue 6: picortex's own time to the agent holding the prompt.
const AIM_NEW_HIBERNATED: Duration = Duration::from_millis(500);
const AIM_ARCHIVED: Duration = Duration::from_secs(2);
/// How long one message may take to be answered (an archive or restore included).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(120);
/// The owner's handle: every chat here is the owner's DM, so owner commands are obeyed.
const OWNER: &str = "+12025559999";
/// The first argument that makes this binary the agent's command.
const STAMP_ARG: &str = "stamp-agent";
/// How the agent's answer starts.
const STAMP_PREFIX: &str = "agent-stamp";

#[derive(Debug, Parser)]
#[command(about = "Chat lifecycle cold paths: new, hibernated and archived chats to the agent")]
struct Args {
    /// Chats per mode for the new and hibernated cases (one of each per chat).
    #[arg(long, default_value_t = 15)]
    chats: usize,
    /// Chats per mode for the archived case.
    #[arg(long, default_value_t = 5)]
    archived_chats: usize,
    /// Size of the archived chats' workspace, in MB (10^6 bytes).
    #[arg(long, default_value_t = 50)]
    workspace_mb: u64,
    /// Times the command's own start is measured.
    #[arg(long, default_value_t = 20)]
    command_starts: usize,
    /// Times the archive library itself is run on the workspace, outside the daemon.
    #[arg(long, default_value_t = 3)]
    library_runs: usize,
    /// Archive in the sandbox only (the Landlock daemon archives its own directories).
    #[arg(long)]
    sandbox_only_archive: bool,
    /// A short run: 4 chats, 2 archived chats, 10 command starts, 1 library run.
    #[arg(long)]
    quick: bool,
    /// Print each sample on stderr.
    #[arg(long)]
    verbose: bool,
    /// Where the temporary directory is made [default: <workspace>/target/bench-tmp].
    #[arg(long)]
    tmp_dir: Option<PathBuf>,
}

/// The cases, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Case {
    New,
    Hibernated,
    Archived,
    Warm,
}

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::New => "new chat (first message)",
            Case::Hibernated => "hibernated chat",
            Case::Archived => "archived chat (restore)",
            Case::Warm => "warm chat (runner up; the floor)",
        }
    }

    fn aim(self) -> Option<Duration> {
        match self {
            Case::New | Case::Hibernated => Some(AIM_NEW_HIBERNATED),
            Case::Archived => Some(AIM_ARCHIVED),
            Case::Warm => None,
        }
    }
}

fn main() -> anyhow::Result<()> {
    // The helper re-executes its own binary as each jail's init; that is picortex-sandbox here,
    // but should this binary ever be pointed at as the helper, it must become the init first.
    picortex_sandbox::jail::run_init_if_requested();
    if std::env::args_os().nth(1).as_deref() == Some(OsStr::new(STAMP_ARG)) {
        return stamp_agent();
    }
    let mut args = Args::parse();
    if args.quick {
        args.chats = args.chats.min(4);
        args.archived_chats = args.archived_chats.min(2);
        args.command_starts = args.command_starts.min(10);
        args.library_runs = args.library_runs.min(1);
    }
    anyhow::ensure!(
        args.chats > 0 && args.command_starts > 0,
        "--chats and --command-starts must be positive"
    );
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: per-chat users, cgroups and namespaces need root; run this as root");
        return Ok(());
    }
    for tool in ["tmux", "git", "cp"] {
        if find_on_path(tool).is_none() {
            println!("SKIP: {tool} is not installed");
            return Ok(());
        }
    }
    let workspace = harness::workspace_root()?;
    let [helper, runner] =
        harness::build_release(&workspace, ["picortex-sandbox", "picortex-runner"])?;
    let agent_exe = std::env::current_exe()?
        .canonicalize()
        .context("locating this binary (the agent's command)")?;
    let tmp = harness::chats_scratch_dir(args.tmp_dir.as_deref(), &workspace, "lifecycle-")?;
    let tmp_path = tmp.path().to_owned();
    // Dropped before the directory (declared after it): every chat goes, even after an error.
    let cleanup = Cleanup::default();
    let machine = Machine::describe(&tmp_path);
    harness::log_daemon_to(&tmp_path)?;
    let (daemon_rt, load_rt) = harness::runtimes()?;

    let template = if args.archived_chats > 0 {
        eprintln!("making the {} MB workspace template", args.workspace_mb);
        Some(make_template(
            &tmp_path.join("template"),
            args.workspace_mb * 1_000_000,
        )?)
    } else {
        None
    };
    let mut library = Vec::new();
    if let Some(t) = template.as_ref().filter(|_| args.library_runs > 0) {
        eprintln!("timing the archive library on the workspace");
        let fs = Machine::describe(&tmp_path).data_fs;
        let costs = library_costs(t, &tmp_path.join("library"), args.library_runs)?;
        library.push((fs, costs));
        // The same in memory, to tell the filesystem's share from the CPU's.
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            let dir = tempfile::Builder::new()
                .prefix("picortex-lifecycle-")
                .tempdir_in(shm)?;
            let fs = Machine::describe(dir.path()).data_fs;
            let costs = library_costs(t, &dir.path().join("library"), args.library_runs)?;
            library.push((fs, costs));
        }
    }
    eprintln!("timing the command's own start");
    let command_start = command_start(&agent_exe, args.command_starts)?;

    let (linq_url, seen) = linq_standin::start(&load_rt)?;
    let secret = WebhookSecret::generate();
    let mut daemons = BTreeMap::new();
    for mode in Mode::BOTH {
        let config = daemon_config(
            &tmp_path, mode, &helper, &runner, &agent_exe, &linq_url, &secret,
        );
        cleanup.watch(&config.workspace_root);
        let setup = Setup {
            root: config.workspace_root.clone(),
            data_dir: config.data_dir.clone(),
            archive_dir: config.lifecycle.archive_dir(&config.data_dir),
        };
        let daemon = daemon_rt.block_on(async {
            let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
            picortex::daemon::start(config, listener).await
        })?;
        daemons.insert(mode, (daemon, setup));
    }
    let client = reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(EXCHANGE_TIMEOUT)
        .build()?;
    let urls: BTreeMap<Mode, String> = daemons
        .iter()
        .map(|(m, (d, _))| (*m, format!("{}/api/linq/inbound", d.base_url())))
        .collect();
    let bench = Bench {
        args: &args,
        client: &client,
        secret: &secret,
        seen: &seen,
        urls: &urls,
        daemons: &daemons,
        template: template.as_ref(),
    };
    nix::unistd::sync();
    let cpu_before = Snapshot::take();
    let io_before = io_pressure();
    let started = Instant::now();
    let outcome = load_rt.block_on(bench.run());
    let elapsed = started.elapsed();
    let cpu = cpu_before.until(&Snapshot::take());
    let io_stalled = io_before.zip(io_pressure()).map(|((s0, f0), (s1, f1))| {
        let wall = elapsed.as_micros().max(1) as f64;
        (
            100.0 * s1.saturating_sub(s0) as f64 / wall,
            100.0 * f1.saturating_sub(f0) as f64 / wall,
        )
    });
    let helper_log = daemons
        .get(&Mode::Sandbox)
        .map(|(_, s)| helper_ops(&s.data_dir.join("sandbox-audit.jsonl")))
        .unwrap_or_default();
    let linq_counts = (seen.unclaimed(), seen.unexpected());
    for (_, (daemon, _)) in daemons {
        load_rt.block_on(daemon.shutdown());
    }
    drop(daemon_rt);
    drop(load_rt);
    let end_load = Machine::describe(&tmp_path).loadavg;
    drop(cleanup);
    drop(tmp);
    let mut figures = outcome?;
    attribute_helper_ops(&mut figures, &helper_log);
    print_report(&Report {
        args: &args,
        machine: &machine,
        end_load: &end_load,
        template: template.as_ref(),
        command_start: &command_start,
        library: &library,
        figures: &figures,
        cpu: &cpu,
        io_stalled,
        elapsed,
        linq_counts,
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The agent's command
// ---------------------------------------------------------------------------------------------

/// The agent: reads the whole prompt from stdin, then answers with the wall-clock time it held
/// it, in ns since the epoch, and the prompt's size.
fn stamp_agent() -> anyhow::Result<()> {
    let mut prompt = Vec::new();
    std::io::stdin().read_to_end(&mut prompt)?;
    let held = unix_ns(SystemTime::now());
    println!("{STAMP_PREFIX} {held} {}", prompt.len());
    Ok(())
}

/// The agent's stamp in a reply: (ns since the epoch, prompt bytes).
fn parse_stamp(text: &str) -> Option<(i128, usize)> {
    let mut words = text.split_whitespace();
    (words.next()? == STAMP_PREFIX).then_some(())?;
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

fn unix_ns(t: SystemTime) -> i128 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// A (possibly negative) interval in ns as a duration, negative ones as zero.
fn span(from_ns: i128, to_ns: i128) -> Duration {
    Duration::from_nanos(u64::try_from(to_ns - from_ns).unwrap_or(0))
}

/// The command's own fixed cost: spawning it (this binary, as root, outside any jail), writing a
/// prompt to its stdin and closing it, until it holds the prompt (its stamp).
fn command_start(exe: &Path, times: usize) -> anyhow::Result<Vec<Duration>> {
    let prompt = "x".repeat(600);
    (0..times)
        .map(|_| {
            let t0 = unix_ns(SystemTime::now());
            let mut child = std::process::Command::new(exe)
                .arg(STAMP_ARG)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .context("starting the agent's command")?;
            let mut stdin = child.stdin.take().context("no stdin")?;
            stdin.write_all(prompt.as_bytes())?;
            drop(stdin);
            let out = child.wait_with_output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let (held, _) = parse_stamp(&text).with_context(|| format!("no stamp in {text:?}"))?;
            Ok(span(t0, held))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The 50 MB workspace
// ---------------------------------------------------------------------------------------------

/// What the workspace template holds.
#[derive(Debug, Clone)]
struct Template {
    dir: PathBuf,
    bytes: u64,
    files: u64,
    symlinks: u64,
    dirs: u64,
    commits: usize,
}

/// A small, fast pseudo-random generator (xorshift64*): the content only has to look like
/// data, not be unpredictable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// Text of about `n` bytes: words from a small vocabulary, in lines.
    fn text(&mut self, n: usize) -> String {
        const WORDS: &[&str] = &[
            "chat", "agent", "message", "reply", "home", "archive", "restore", "runner", "tmux",
            "jail", "turn", "prompt", "owner", "budget", "gateway", "token", "model", "sleep",
            "wake", "the", "a", "of", "to", "and", "in", "is", "it", "for", "on", "with", "fn",
            "let", "mut", "struct", "impl", "match", "Some", "None", "Ok", "Err", "return", "if",
            "else", "while", "loop", "async", "await", "self", "pub", "use", "mod",
        ];
        let mut out = String::with_capacity(n + 16);
        let mut line = 0;
        while out.len() < n {
            let w = WORDS[(self.next() % WORDS.len() as u64) as usize];
            out.push_str(w);
            line += w.len() + 1;
            if line > 72 {
                out.push('\n');
                line = 0;
            } else {
                out.push(' ');
            }
        }
        out
    }
}

fn write_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Bench",
            "-c",
            "user.email=bench@example.invalid",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .context("running git")?;
    anyhow::ensure!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Makes the archived chats' workspace in `dir`, about `target` bytes of regular files:
/// * `data/`: four random (incompressible) binaries, 48% of it, one of them with a second hard
///   link, and a compressible binary (a repeated record with a counter), 8%;
/// * `notes/`: small text files of 1–7 KB in 20 directories, 16%;
/// * `project/`: a git repository (its history rewrites a fifth of its text files per commit,
///   and holds a random binary), about 25%, and a random top-up to the target;
/// * symlinks to a file, a directory, outside the home and to nothing.
///
/// Everything is readable by all, so chat users can copy it into their homes.
fn make_template(dir: &Path, target: u64) -> anyhow::Result<Template> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let part = |share: f64| (target as f64 * share) as usize;
    let data = dir.join("data");
    for i in 0..4 {
        write_file(&data.join(format!("blob-{i}.bin")), &rng.bytes(part(0.12)))?;
    }
    std::fs::hard_link(data.join("blob-0.bin"), data.join("blob-0.hardlink"))?;
    let record: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    let mut compressible = Vec::with_capacity(part(0.08));
    let mut n = 0u32;
    while compressible.len() < part(0.08) {
        compressible.extend_from_slice(&n.to_le_bytes());
        compressible.extend_from_slice(&record);
        n += 1;
    }
    write_file(&data.join("table.dat"), &compressible)?;
    let notes = dir.join("notes");
    let mut notes_bytes = 0;
    let mut i = 0;
    while notes_bytes < part(0.16) {
        let size = 1024 + (rng.next() % 6144) as usize;
        write_file(
            &notes.join(format!("dir-{:02}/note-{i:04}.md", i % 20)),
            rng.text(size).as_bytes(),
        )?;
        notes_bytes += size;
        i += 1;
    }
    // The project: its share minus what its history and .git add, roughly: a working tree of
    // text files and a binary, committed, then a fifth of the text rewritten per commit.
    let project = dir.join("project");
    std::fs::create_dir_all(&project)?;
    git(&project, &["init", "-q"])?;
    let text_files = 150;
    let file_size = part(0.06) / text_files;
    for f in 0..text_files {
        write_file(
            &project.join(format!("src/module_{:02}/file_{f:03}.rs", f % 10)),
            rng.text(file_size).as_bytes(),
        )?;
    }
    write_file(&project.join("assets/model.bin"), &rng.bytes(part(0.03)))?;
    git(&project, &["add", "-A"])?;
    git(&project, &["commit", "-q", "-m", "initial"])?;
    let commits = 20;
    for c in 1..commits {
        for k in 0..text_files / 5 {
            let f = (c * 7 + k * 5) % text_files;
            write_file(
                &project.join(format!("src/module_{:02}/file_{f:03}.rs", f % 10)),
                rng.text(file_size).as_bytes(),
            )?;
        }
        git(&project, &["add", "-A"])?;
        git(&project, &["commit", "-q", "-m", &format!("change {c}")])?;
    }
    std::os::unix::fs::symlink("data/blob-0.bin", dir.join("latest.bin"))?;
    std::os::unix::fs::symlink("notes/dir-00", dir.join("current-notes"))?;
    std::os::unix::fs::symlink("/etc/hostname", dir.join("host-name"))?;
    std::os::unix::fs::symlink("does/not/exist", dir.join("dangling"))?;
    // git compresses its history better than planned: top up with random data to the target.
    let (so_far, ..) = tree_size(dir)?;
    if so_far < target {
        let missing = usize::try_from(target - so_far)?;
        write_file(&data.join("top-up.bin"), &rng.bytes(missing))?;
    }
    make_readable(dir)?;
    let (bytes, files, symlinks, dirs) = tree_size(dir)?;
    Ok(Template {
        dir: dir.to_owned(),
        bytes,
        files,
        symlinks,
        dirs,
        commits,
    })
}

/// Directories 0755, files 0644 (git's read-only objects stay 0444), symlinks untouched.
fn make_readable(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.path().symlink_metadata()?;
        if meta.is_dir() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755))?;
            make_readable(&entry.path())?;
        } else if meta.is_file() && meta.permissions().mode() & 0o444 != 0o444 {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644))?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// (bytes of regular files, regular files, symlinks, directories) beneath `dir`, hard links
/// counted once.
fn tree_size(dir: &Path) -> anyhow::Result<(u64, u64, u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut seen = std::collections::HashSet::new();
    let mut totals = (0, 0, 0, 0);
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            if meta.is_dir() {
                totals.3 += 1;
                stack.push(entry.path());
            } else if meta.is_symlink() {
                totals.2 += 1;
            } else if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                totals.0 += meta.len();
                totals.1 += 1;
            }
        }
    }
    Ok(totals)
}

/// Entries beneath `dir` (itself included) whose owner is not `uid`, as paths relative to it
/// with their owner.
fn foreign_owned(dir: &Path, uid: u32) -> anyhow::Result<Vec<String>> {
    use std::os::unix::fs::MetadataExt as _;
    let mut foreign = Vec::new();
    let mut note = |path: &Path, owner: u32| {
        if owner != uid {
            let relative = path.strip_prefix(dir).unwrap_or(path);
            foreign.push(format!("`~/{}` (uid {owner})", relative.display()));
        }
    };
    note(dir, dir.symlink_metadata()?.uid());
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            let meta = path.symlink_metadata()?;
            note(&path, meta.uid());
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    Ok(foreign)
}

/// Copies the template into `home` as the user `uid`:`gid` (the chat's own user in the
/// sandbox), so every file belongs to the chat.
fn fill_home(template: &Template, home: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    let out = std::process::Command::new("cp")
        .args(["-R", "-P", "--preserve=mode,timestamps,links"])
        .arg(template.dir.join("."))
        .arg(home)
        .current_dir(home)
        .uid(uid)
        .gid(gid)
        .output()
        .context("running cp")?;
    anyhow::ensure!(
        out.status.success(),
        "copying the workspace into {} as {uid}:{gid} failed: {}",
        home.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Times per step, in report order.
type Costs = Vec<(String, Vec<Duration>)>;

/// What the archive library (`picortex_sandbox::archive`) costs on the workspace by itself, as
/// root and outside the daemon and helper, `runs` times, with the stages it is made of and plain
/// `tar | zstd -3` as a baseline: (what, times), in report order.
fn library_costs(template: &Template, dir: &Path, runs: usize) -> anyhow::Result<Costs> {
    use picortex_sandbox::archive;
    let home = dir.join("home");
    let archives = dir.join("archives");
    std::fs::create_dir_all(&home)?;
    std::fs::create_dir_all(&archives)?;
    fill_home(template, &home, 0, 0)?;
    let zstd = find_on_path("zstd").is_some();
    let mut costs: Costs = Vec::new();
    let mut record = |what: &str, d: Duration| match costs.iter_mut().find(|(w, _)| w == what) {
        Some((_, v)) => v.push(d),
        None => costs.push((what.to_owned(), vec![d])),
    };
    for run in 0..runs {
        let name = format!("home-{run}");
        // Each timed step starts with nothing of ours waiting to be written back.
        nix::unistd::sync();
        let t = Instant::now();
        let report = archive::archive_home(&home, &archives, &name)?;
        record(
            "`archive_home` (walk, tar + zstd -3, fsync, verify by decompressing all, rename)",
            t.elapsed(),
        );
        let t = Instant::now();
        archive::verify_archive(&report.archive)?;
        record("… one full decompression (`verify_archive`)", t.elapsed());
        let t = Instant::now();
        let mut file = std::fs::File::open(&report.archive)?;
        let mut copy = std::fs::File::create(dir.join("fsync-probe"))?;
        std::io::copy(&mut file, &mut copy)?;
        copy.sync_all()?;
        record(
            "… writing and fsyncing a file of the archive's size",
            t.elapsed(),
        );
        std::fs::remove_file(dir.join("fsync-probe"))?;
        let restored = dir.join(format!("restored-{run}"));
        nix::unistd::sync();
        let t = Instant::now();
        archive::read_marker(&report.archive)?;
        archive::restore_home(
            &report.archive,
            &restored,
            Some(archive::Reown {
                uid: 64_999,
                gid: 64_999,
            }),
        )?;
        record(
            "`read_marker` + `restore_home` with re-owning (one pass: unpack, verify, re-own; directories last; syncfs)",
            t.elapsed(),
        );
        let (bytes, ..) = tree_size(&restored)?;
        anyhow::ensure!(bytes == template.bytes, "the restored home differs in size");
        nix::unistd::sync();
        let t = Instant::now();
        std::fs::remove_dir_all(&restored)?;
        record(
            "removing the home (`remove_dir_all`, as the helper does after archiving)",
            t.elapsed(),
        );
        if zstd {
            let plain = archives.join(format!("plain-{run}.tar.zst"));
            nix::unistd::sync();
            let t = Instant::now();
            shell(&format!(
                "tar -C '{}' -cf - . | zstd -3 -q -o '{}'",
                home.display(),
                plain.display()
            ))?;
            record("baseline: `tar -cf - . | zstd -3` (no fsync)", t.elapsed());
            std::fs::create_dir_all(&restored)?;
            nix::unistd::sync();
            let t = Instant::now();
            shell(&format!(
                "zstd -dcq '{}' | tar -C '{}' -xf -",
                plain.display(),
                restored.display()
            ))?;
            record("baseline: `zstd -dc | tar -xf -` (no fsync)", t.elapsed());
            std::fs::remove_dir_all(&restored)?;
            std::fs::remove_file(&plain)?;
        }
        std::fs::remove_file(&report.archive)?;
    }
    std::fs::remove_dir_all(dir)?;
    Ok(costs)
}

fn shell(script: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The daemons
// ---------------------------------------------------------------------------------------------

/// Where a daemon keeps its chats.
struct Setup {
    root: PathBuf,
    data_dir: PathBuf,
    archive_dir: PathBuf,
}

fn daemon_config(
    tmp: &Path,
    mode: Mode,
    helper: &Path,
    runner: &Path,
    agent_exe: &Path,
    linq_url: &str,
    secret: &WebhookSecret,
) -> Config {
    let mut config = Config {
        port: 0,
        data_dir: tmp.join(format!("data-{}", mode.name())),
        workspace_root: tmp.join(format!("chats-{}", mode.name())),
        owner: Some(OWNER.to_owned()),
        agent: AgentKind::Command,
        ..Config::default()
    };
    config.isolation.mode = mode.isolation();
    config.isolation.helper_bin = Some(helper.to_owned());
    config.agents.runner_bin = Some(runner.to_owned());
    config.agents.command = vec![agent_exe.display().to_string(), STAMP_ARG.to_owned()];
    // The benchmark moves chats between states itself: no background task meanwhile.
    config.lifecycle.idle_after_secs = 0;
    config.lifecycle.archive_after_secs = 0;
    config.linq = LinqConfig {
        api_key: format!("bench_{}", uuid::Uuid::new_v4().simple()),
        base_url: linq_url.to_owned(),
        webhook_secret: secret.as_str().to_owned(),
        phone: Some(BOT_LINE.to_owned()),
    };
    config
}

// ---------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------

/// One message to the agent holding its prompt.
#[derive(Debug, Clone)]
struct Sample {
    chat_id: String,
    /// Webhook POST (just before it is sent) → the agent holds the prompt: the headline figure.
    to_agent: Duration,
    /// Webhook POST → its 200 (ingest's verify, parse and one durable write).
    to_ack: Duration,
    /// The agent holding the prompt → its answer's POST at Linq.
    agent_to_reply: Duration,
    /// From the daemon's store (ms): POST → turn queued (the gate's decision), → turn claimed
    /// by the scheduler, and the turn's claim → the agent holds the prompt.
    to_queued: Option<Duration>,
    to_started: Option<Duration>,
    started_to_agent: Option<Duration>,
    /// The window on the wall clock (ms since the epoch), to find the helper's operations.
    posted_ms: i64,
    agent_ms: i64,
    /// The helper's own time per operation within the window (sandbox only).
    helper: BTreeMap<String, Duration>,
}

/// One archiving of a filled home.
#[derive(Debug, Clone)]
struct ArchiveSample {
    chat_id: String,
    /// The owner's `/picortex archive` POST → its answer at Linq.
    command: Duration,
    /// `lifecycle::archive`'s own record (`chat.archived` audit event: `Workspaces::archive`).
    daemon_ms: Option<u64>,
    /// The helper's `archive` operation (sandbox).
    helper: Option<Duration>,
    archive_bytes: u64,
    /// (bytes, files) of the home before archiving and after the restore.
    before: (u64, u64),
    after: (u64, u64),
    /// Entries of the restored home not owned by the chat's user.
    foreign: Vec<String>,
    window_ms: (i64, i64),
}

#[derive(Debug, Default)]
struct Figures {
    samples: BTreeMap<(Case, Mode), Vec<Sample>>,
    archives: BTreeMap<Mode, Vec<ArchiveSample>>,
    /// The owner's `/picortex hibernate` POST → its answer at Linq.
    hibernations: BTreeMap<Mode, Vec<Duration>>,
    /// Answers to owner commands that were not "Done…".
    refused_commands: Vec<String>,
    /// Prompt sizes the agent reported.
    prompt_bytes: Vec<usize>,
}

struct Bench<'a> {
    args: &'a Args,
    client: &'a reqwest::Client,
    secret: &'a WebhookSecret,
    seen: &'a LinqSeen,
    urls: &'a BTreeMap<Mode, String>,
    daemons: &'a BTreeMap<Mode, (DaemonHandle, Setup)>,
    template: Option<&'a Template>,
}

/// A chat of the owner's, fresh to both daemons.
fn owner_chat() -> anyhow::Result<Chat> {
    let mut chat = Chat::many(1).pop().context("no chat made")?;
    chat.sender = OWNER.to_owned();
    Ok(chat)
}

impl Bench<'_> {
    fn texter(&self, mode: Mode) -> anyhow::Result<Texter<'_>> {
        Ok(Texter {
            client: self.client,
            inbound_url: self.urls.get(&mode).context("no daemon for the mode")?,
            secret: self.secret,
            seen: self.seen,
        })
    }

    fn daemon(&self, mode: Mode) -> anyhow::Result<&(DaemonHandle, Setup)> {
        self.daemons.get(&mode).context("no daemon for the mode")
    }

    async fn run(&self) -> anyhow::Result<Figures> {
        let mut figures = Figures::default();
        let n = self.args.chats;
        eprintln!("new, hibernated and warm: {n} chats per mode");
        for i in 0..n {
            for mode in Mode::order(i) {
                let chat = owner_chat()?;
                let label = format!("{} chat {i}", mode.name());
                let new = self.message(mode, &chat, "hello", &mut figures).await;
                let new = new.with_context(|| format!("{label}: first message"))?;
                let hibernation = self
                    .command(mode, &chat, "/picortex hibernate", &mut figures)
                    .await
                    .with_context(|| format!("{label}: hibernating"))?;
                figures
                    .hibernations
                    .entry(mode)
                    .or_default()
                    .push(hibernation);
                self.expect_state(mode, &chat.id, "hibernated").await?;
                let woken = self.message(mode, &chat, "wake up", &mut figures).await;
                let woken = woken.with_context(|| format!("{label}: waking"))?;
                let warm = self.message(mode, &chat, "again", &mut figures).await;
                let warm = warm.with_context(|| format!("{label}: warm message"))?;
                if self.args.verbose {
                    eprintln!(
                        "{label}: new {} ms, hibernated {} ms, warm {} ms",
                        ms(new.to_agent),
                        ms(woken.to_agent),
                        ms(warm.to_agent)
                    );
                }
                for (case, s) in [
                    (Case::New, new),
                    (Case::Hibernated, woken),
                    (Case::Warm, warm),
                ] {
                    figures.samples.entry((case, mode)).or_default().push(s);
                }
            }
        }
        let Some(template) = self.template else {
            return Ok(figures);
        };
        let modes: &[Mode] = if self.args.sandbox_only_archive {
            &[Mode::Sandbox]
        } else {
            &Mode::BOTH
        };
        eprintln!(
            "archived: {} chats per mode with {:.1} MB each",
            self.args.archived_chats,
            template.bytes as f64 / 1e6
        );
        for i in 0..self.args.archived_chats {
            for mode in Mode::order(i) {
                if !modes.contains(&mode) {
                    continue;
                }
                let label = format!("{} archived chat {i}", mode.name());
                let (archive, restored) = self
                    .archived(mode, template, &mut figures)
                    .await
                    .with_context(|| label.clone())?;
                if self.args.verbose {
                    eprintln!(
                        "{label}: archive {} ms ({:.1} MB), restore → agent {} ms",
                        ms(archive.command),
                        archive.archive_bytes as f64 / 1e6,
                        ms(restored.to_agent)
                    );
                }
                figures.archives.entry(mode).or_default().push(archive);
                figures
                    .samples
                    .entry((Case::Archived, mode))
                    .or_default()
                    .push(restored);
            }
        }
        Ok(figures)
    }

    /// A new chat, filled, archived, then woken by a message.
    async fn archived(
        &self,
        mode: Mode,
        template: &Template,
        figures: &mut Figures,
    ) -> anyhow::Result<(ArchiveSample, Sample)> {
        let chat = owner_chat()?;
        self.message(mode, &chat, "hello", figures)
            .await
            .context("first message")?;
        let (_, setup) = self.daemon(mode)?;
        let (home, uid, gid) = chat_home(mode, &setup.root, &chat.id)?;
        let fill_template = template.clone();
        let before = tokio::task::spawn_blocking(move || {
            fill_home(&fill_template, &home, uid, gid)?;
            let (bytes, files, _, _) = tree_size(&home)?;
            anyhow::Ok((bytes, files))
        })
        .await??;
        // As a chat idle for weeks would be: its files long written back.
        tokio::task::spawn_blocking(nix::unistd::sync).await?;
        let posted_ms = unix_ms();
        let command = self
            .command(mode, &chat, "/picortex archive", figures)
            .await
            .context("archiving")?;
        let done_ms = unix_ms();
        self.expect_state(mode, &chat.id, "archived").await?;
        let archive_bytes = newest_archive(&setup.archive_dir)
            .context("no archive was written")?
            .1;
        let daemon_ms = self.archived_elapsed(mode, &chat.id).await?;
        tokio::task::spawn_blocking(nix::unistd::sync).await?;
        let restored = self
            .message(mode, &chat, "back again", figures)
            .await
            .context("the message after archiving")?;
        let (home, uid, _) = chat_home(mode, &setup.root, &chat.id)?;
        let (bytes, files, _, _) = tree_size(&home)?;
        let foreign = foreign_owned(&home, uid)?;
        Ok((
            ArchiveSample {
                chat_id: chat.id.clone(),
                command,
                daemon_ms,
                helper: None,
                archive_bytes,
                before,
                after: (bytes, files),
                foreign,
                window_ms: (posted_ms, done_ms),
            },
            restored,
        ))
    }

    /// Texts `text` in `chat` and times it to the agent holding the prompt.
    async fn message(
        &self,
        mode: Mode,
        chat: &Chat,
        text: &str,
        figures: &mut Figures,
    ) -> anyhow::Result<Sample> {
        let ex = self
            .texter(mode)?
            .exchange_text(chat, text, EXCHANGE_TIMEOUT)
            .await?;
        let (held_ns, prompt_bytes) = parse_stamp(&ex.reply.text)
            .with_context(|| format!("the reply {:?} is not the agent's stamp", ex.reply.text))?;
        figures.prompt_bytes.push(prompt_bytes);
        let posted_ns = unix_ns(ex.posted_at);
        let to_agent = span(posted_ns, held_ns);
        let (created, started) = self.last_turn(mode, &chat.id).await?;
        let posted_ms = (posted_ns / 1_000_000) as i64;
        let agent_ms = (held_ns / 1_000_000) as i64;
        let after = |ms: i64| Duration::from_millis(u64::try_from(ms - posted_ms).unwrap_or(0));
        Ok(Sample {
            chat_id: chat.id.clone(),
            to_agent,
            to_ack: ex.acked.saturating_duration_since(ex.posted),
            // The reply's arrival on the monotonic clock, less the stamp's distance from the POST.
            agent_to_reply: ex
                .reply
                .at
                .saturating_duration_since(ex.posted)
                .saturating_sub(to_agent),
            to_queued: created.map(after),
            to_started: started.map(after),
            started_to_agent: started
                .map(|s| Duration::from_millis(u64::try_from(agent_ms - s).unwrap_or(0))),
            posted_ms,
            agent_ms,
            helper: BTreeMap::new(),
        })
    }

    /// Sends an owner command and waits for its answer, which must say it was done.
    async fn command(
        &self,
        mode: Mode,
        chat: &Chat,
        text: &str,
        figures: &mut Figures,
    ) -> anyhow::Result<Duration> {
        let ex = self
            .texter(mode)?
            .exchange_text(chat, text, EXCHANGE_TIMEOUT)
            .await?;
        if !ex.reply.text.starts_with("Done") {
            figures.refused_commands.push(ex.reply.text.clone());
            anyhow::bail!("{text:?} was answered {:?}", ex.reply.text);
        }
        Ok(ex.reply.at.saturating_duration_since(ex.posted))
    }

    async fn expect_state(&self, mode: Mode, chat_id: &str, want: &str) -> anyhow::Result<()> {
        let id = chat_id.to_owned();
        let state: Option<String> = self
            .daemon(mode)?
            .0
            .store
            .read(move |c| {
                Ok(c.prepare_cached("SELECT state FROM chats WHERE id = ?1")?
                    .query_row([&id], |r| r.get(0))
                    .ok())
            })
            .await?;
        anyhow::ensure!(
            state.as_deref() == Some(want),
            "chat {chat_id} is {state:?}, not {want}"
        );
        Ok(())
    }

    /// `created_at` and `started_at` (ms since the epoch) of the chat's newest turn.
    async fn last_turn(
        &self,
        mode: Mode,
        chat_id: &str,
    ) -> anyhow::Result<(Option<i64>, Option<i64>)> {
        let id = chat_id.to_owned();
        Ok(self
            .daemon(mode)?
            .0
            .store
            .read(move |c| {
                Ok(c.prepare_cached(
                    "SELECT created_at, started_at FROM turns WHERE chat_id = ?1
                     ORDER BY id DESC LIMIT 1",
                )?
                .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap_or((None, None)))
            })
            .await?)
    }

    /// `elapsed_ms` of the chat's newest `chat.archived` audit event.
    async fn archived_elapsed(&self, mode: Mode, chat_id: &str) -> anyhow::Result<Option<u64>> {
        let id = chat_id.to_owned();
        let detail: Option<String> = self
            .daemon(mode)?
            .0
            .store
            .read(move |c| {
                Ok(c.prepare_cached(
                    "SELECT detail_json FROM audit_events WHERE chat_id = ?1
                     AND kind = 'chat.archived' ORDER BY rowid DESC LIMIT 1",
                )?
                .query_row([&id], |r| r.get(0))
                .ok())
            })
            .await?;
        Ok(detail
            .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
            .and_then(|v| v["elapsed_ms"].as_u64()))
    }
}

/// The chat's home and its owner: the chat's own user in the sandbox, this user in Landlock
/// mode.
fn chat_home(mode: Mode, root: &Path, chat_id: &str) -> anyhow::Result<(PathBuf, u32, u32)> {
    match mode {
        Mode::Sandbox => {
            let chat = picortex_sandbox::provision::Provisioner::new(root)
                .find(chat_id)?
                .with_context(|| format!("chat {chat_id} is not provisioned"))?;
            Ok((chat.home, chat.uid, chat.gid))
        }
        Mode::Landlock => {
            use std::os::unix::fs::MetadataExt as _;
            let home = root.join(picortex::workspace::chat_dir_name(chat_id));
            let meta = home
                .metadata()
                .with_context(|| format!("{} is missing", home.display()))?;
            Ok((home, meta.uid(), meta.gid()))
        }
    }
}

/// The newest archive in `dir` and its size.
fn newest_archive(dir: &Path) -> Option<(PathBuf, u64)> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tar.zst"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, e.path(), meta.len()))
        })
        .max_by_key(|(modified, _, _)| *modified)
        .map(|(_, path, len)| (path, len))
}

/// The `some` and `full` stall totals of `/proc/pressure/io`, µs.
fn io_pressure() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/pressure/io").ok()?;
    let total = |kind: &str| {
        text.lines()
            .find(|l| l.starts_with(kind))?
            .split_whitespace()
            .find_map(|f| f.strip_prefix("total="))?
            .parse()
            .ok()
    };
    Some((total("some")?, total("full")?))
}

fn unix_ms() -> i64 {
    (unix_ns(SystemTime::now()) / 1_000_000) as i64
}

/// Gives each sandboxed sample the helper's operations for its chat that ended within its
/// window, and each sandboxed archive its helper's `archive` time.
fn attribute_helper_ops(figures: &mut Figures, log: &[HelperOp]) {
    for ((_, mode), samples) in figures.samples.iter_mut() {
        if *mode != Mode::Sandbox {
            continue;
        }
        for s in samples {
            for op in ops_within(log, &s.chat_id, s.posted_ms, s.agent_ms) {
                *s.helper.entry(op.op.clone()).or_default() += op.elapsed;
            }
        }
    }
    if let Some(archives) = figures.archives.get_mut(&Mode::Sandbox) {
        for a in archives {
            a.helper = ops_within(log, &a.chat_id, a.window_ms.0, a.window_ms.1)
                .filter(|op| op.op == "archive")
                .map(|op| op.elapsed)
                .last();
        }
    }
}

/// The helper's operations for `chat_id` that ended between `from` and `to` (ms since the
/// epoch).
fn ops_within<'a>(
    log: &'a [HelperOp],
    chat_id: &'a str,
    from: i64,
    to: i64,
) -> impl Iterator<Item = &'a HelperOp> {
    log.iter().filter(move |op| {
        op.chat_id.as_deref() == Some(chat_id) && op.at_unix_ms >= from && op.at_unix_ms <= to
    })
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

struct Report<'a> {
    args: &'a Args,
    machine: &'a Machine,
    end_load: &'a str,
    template: Option<&'a Template>,
    command_start: &'a [Duration],
    /// Per filesystem: (filesystem, the library's costs there).
    library: &'a [(String, Costs)],
    figures: &'a Figures,
    cpu: &'a Usage,
    /// Share of the cases' wall time in which some / all tasks waited for I/O (PSI), %.
    io_stalled: Option<(f64, f64)>,
    elapsed: Duration,
    linq_counts: (u64, u64),
}

/// p50, p99 and max cells in ms.
fn cells(s: Option<Summary>) -> String {
    s.map_or("n/a | n/a | n/a".into(), |s| {
        format!("{} | {} | {}", ms(s.p50), ms(s.p99), ms(s.max))
    })
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

fn print_report(r: &Report<'_>) {
    let m = r.machine;
    let f = r.figures;
    println!("### Chat lifecycle cold paths, {}", m.date);
    println!();
    println!(
        "Machine: {} × {}, {}, data on {}; load average at start {}, at end {}. Code: {}.",
        m.cpus, m.cpu_model, m.kernel, m.data_fs, m.loadavg, r.end_load, m.commit
    );
    let wall = r.cpu.wall.as_secs_f64().max(1e-9);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "During the cases ({:.1} s): the whole host was {:.0}% busy; processes other than this one (the helpers, jails, tmux, runners, agents, `cp` and anything else on the host) used {:.0}% of the machine.",
        r.elapsed.as_secs_f64(),
        100.0 * r.cpu.host_busy.as_secs_f64() / r.cpu.host_total.as_secs_f64().max(1e-9),
        100.0 * r.cpu.others().as_secs_f64() / (wall * cpus)
    );
    if let Some((some, full)) = r.io_stalled {
        println!(
            "I/O pressure during the cases (`/proc/pressure/io`): some task waited for I/O {some:.0}% of the time, all did {full:.0}%."
        );
    }
    println!(
        "Helper and runner: the release `picortex-sandbox` and `picortex-runner`; cgroup {:?}; Landlock ABI {}.",
        picortex_sandbox::jail::cgroup_version(),
        picortex_sandbox::confine::kernel_abi()
    );
    println!();
    println!(
        "#### Webhook POST → the agent holds the prompt ({} chats per mode for new/hibernated/warm, {} archived chats)",
        r.args.chats, r.args.archived_chats
    );
    println!();
    println!("| ms | mode | n | p50 | p99 | max | aim (p99) |");
    println!("|---|---|---|---|---|---|---|");
    for ((case, mode), samples) in &f.samples {
        let s = summarize(samples.iter().map(|s| s.to_agent));
        let aim = match (case.aim(), s) {
            (Some(aim), Some(s)) => format!(
                "< {} ms: {}",
                aim.as_millis(),
                if s.p99 < aim { "met" } else { "**missed**" }
            ),
            (Some(aim), None) => format!("< {} ms", aim.as_millis()),
            (None, _) => "".into(),
        };
        println!(
            "| **{}** | {} | {} | {} | {aim} |",
            case.label(),
            mode.name(),
            samples.len(),
            cells(s)
        );
    }
    println!();
    println!(
        "Where the time goes (p50 / p99 of each part, ms; the store's times have ms resolution):"
    );
    println!();
    println!(
        "| case | mode | POST → 200 | POST → turn queued | POST → turn claimed | claimed → agent holds prompt | agent → reply at Linq |"
    );
    println!("|---|---|---|---|---|---|---|");
    let pair = |v: Vec<Duration>| {
        summarize(v).map_or("n/a".into(), |s| format!("{} / {}", ms(s.p50), ms(s.p99)))
    };
    for ((case, mode), samples) in &f.samples {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            case.label(),
            mode.name(),
            pair(samples.iter().map(|s| s.to_ack).collect()),
            pair(samples.iter().filter_map(|s| s.to_queued).collect()),
            pair(samples.iter().filter_map(|s| s.to_started).collect()),
            pair(samples.iter().filter_map(|s| s.started_to_agent).collect()),
            pair(samples.iter().map(|s| s.agent_to_reply).collect()),
        );
    }
    println!();
    println!(
        "The sandbox helper's own time within each sample (its audit log's `elapsed_ms`, summed per operation and sample; p50 / p99 / max, ms):"
    );
    println!();
    println!("| case | operation | samples with it | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    for ((case, mode), samples) in &f.samples {
        if *mode != Mode::Sandbox {
            continue;
        }
        let mut ops: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        for s in samples {
            for (op, d) in &s.helper {
                ops.entry(op).or_default().push(*d);
            }
        }
        for (op, times) in ops {
            println!(
                "| {} | `{op}` | {} | {} |",
                case.label(),
                times.len(),
                cells(summarize(times))
            );
        }
    }
    println!();
    for (mode, times) in &f.hibernations {
        println!(
            "`/picortex hibernate` POST → its answer at Linq (the chat's processes stopped), {}: p50 / p99 / max {} ms.",
            mode.name(),
            cells(summarize(times.iter().copied())).replace(" | ", " / ")
        );
    }
    let starts = summarize(r.command_start.iter().copied());
    println!(
        "The command's own start (spawn this binary as root outside any jail, write a 600-byte prompt, close its stdin → it holds the prompt), {} times: p50 / p99 / max {}.",
        r.command_start.len(),
        cells(starts).replace(" | ", " / ")
    );
    if let (Some(min), Some(max)) = (f.prompt_bytes.iter().min(), f.prompt_bytes.iter().max()) {
        println!("Prompts the agent received: {min}–{max} bytes.");
    }
    println!();
    if let Some(t) = r.template {
        println!(
            "#### Archiving a {} MB workspace ({} regular files, {} directories, {} symlinks, a hard link; a git repository with {} commits)",
            mb(t.bytes),
            t.files,
            t.dirs,
            t.symlinks,
            t.commits
        );
        println!();
        println!(
            "| mode | n | `/picortex archive` POST → answer, p50 / max (ms) | `Workspaces::archive` (daemon's audit), p50 / max | helper's `archive`, p50 / max | archive size (MB) | home before → after restore (MB, files) | restored entries not the chat user's |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        let pm = |v: Vec<Duration>| {
            summarize(v).map_or("n/a".into(), |s| format!("{} / {}", ms(s.p50), ms(s.max)))
        };
        for (mode, archives) in &f.archives {
            let sizes: Vec<u64> = archives.iter().map(|a| a.archive_bytes).collect();
            let size = match (sizes.iter().min(), sizes.iter().max()) {
                (Some(a), Some(b)) if mb(*a) == mb(*b) => mb(*a),
                (Some(a), Some(b)) => format!("{}–{}", mb(*a), mb(*b)),
                _ => "n/a".into(),
            };
            let homes = archives
                .iter()
                .map(|a| {
                    format!(
                        "{}/{} → {}/{}",
                        mb(a.before.0),
                        a.before.1,
                        mb(a.after.0),
                        a.after.1
                    )
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ");
            println!(
                "| {} | {} | {} | {} | {} | {size} | {homes} | {} |",
                mode.name(),
                archives.len(),
                pm(archives.iter().map(|a| a.command).collect()),
                pm(archives
                    .iter()
                    .filter_map(|a| a.daemon_ms.map(Duration::from_millis))
                    .collect()),
                pm(archives.iter().filter_map(|a| a.helper).collect()),
                {
                    let names: std::collections::BTreeSet<&str> = archives
                        .iter()
                        .flat_map(|a| a.foreign.iter().map(String::as_str))
                        .collect();
                    let count: usize = archives.iter().map(|a| a.foreign.len()).sum();
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        format!(
                            "{count}: {}",
                            names.into_iter().collect::<Vec<_>>().join(", ")
                        )
                    }
                },
            );
        }
        println!();
    }
    if let Some((_, first)) = r.library.first() {
        println!(
            "The archive library on the same workspace by itself (as root, outside the daemon and helper), p50 / max over {} runs (ms):",
            r.args.library_runs
        );
        println!();
        let header: Vec<String> = r.library.iter().map(|(fs, _)| fs.clone()).collect();
        println!("| step | {} |", header.join(" | "));
        println!("|---|{}", "---|".repeat(header.len()));
        for (what, _) in first {
            let row: Vec<String> = r
                .library
                .iter()
                .map(|(_, costs)| {
                    costs
                        .iter()
                        .find(|(w, _)| w == what)
                        .and_then(|(_, times)| summarize(times.iter().copied()))
                        .map_or("n/a".into(), |s| format!("{} / {}", ms(s.p50), ms(s.max)))
                })
                .collect();
            println!("| {what} | {} |", row.join(" | "));
        }
        println!();
    }
    println!(
        "Owner commands not done: {}; replies nobody waited for: {}; unexpected Linq calls: {}.",
        f.refused_commands.len(),
        r.linq_counts.0,
        r.linq_counts.1
    );
    println!();
}
