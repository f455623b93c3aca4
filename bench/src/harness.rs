//! What every benchmark binary sets the daemon up with: its JSON logs written to a file in the
//! scratch directory (as `picortex serve` would log, but off the terminal), two tokio runtimes,
//! one for the daemon sized like `picortex serve` (a worker per CPU) and one for the load
//! generator and stand-ins, so their threads can be told apart in the CPU figures; the scratch
//! directory it runs in, the release binaries it builds, and the tools found on `PATH` that a
//! benchmark needs or skips a part without; and the isolation modes a benchmark compares.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use std::sync::Arc;

/// Sends the daemon's logs (JSON, `info`) to `dir/daemon.log`.
pub fn log_daemon_to(dir: &Path) -> anyhow::Result<()> {
    let log = std::fs::File::create(dir.join("daemon.log"))?;
    // try_init: a subscriber set earlier in the process stays.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(Arc::new(log))
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .try_init();
    Ok(())
}

/// The daemon's runtime (threads `picortex-rt`) and the load side's (`loadgen-rt`, 2 workers).
pub fn runtimes() -> anyhow::Result<(tokio::runtime::Runtime, tokio::runtime::Runtime)> {
    let daemon = tokio::runtime::Builder::new_multi_thread()
        .thread_name("picortex-rt")
        .enable_all()
        .build()?;
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("loadgen-rt")
        .enable_all()
        .build()?;
    Ok((daemon, load))
}

/// The first `name` on `PATH` that is a file, as a shell would find it (executability is left
/// to whoever runs it).
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|c| c.is_file())
    })
}

/// The cargo workspace the bench crate belongs to (its parent directory).
pub fn workspace_root() -> anyhow::Result<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the bench crate has no parent directory")?
        .to_owned())
}

/// A fresh temporary directory named `prefix…` in `tmp_dir`, by default the workspace's
/// `target/bench-tmp` (created if missing); removed when the handle drops.
pub fn scratch_dir(
    tmp_dir: Option<&Path>,
    workspace: &Path,
    prefix: &str,
) -> anyhow::Result<tempfile::TempDir> {
    let tmp_root = tmp_dir.map_or_else(
        || workspace.join("target").join("bench-tmp"),
        Path::to_owned,
    );
    std::fs::create_dir_all(&tmp_root)
        .with_context(|| format!("creating {}", tmp_root.display()))?;
    // Canonical and short: chat homes hold unix sockets, whose paths are limited to 107 bytes.
    let tmp_root = std::fs::canonicalize(&tmp_root)?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&tmp_root)
        .with_context(|| format!("creating a temporary directory in {}", tmp_root.display()))
}

/// A [`scratch_dir`] for chat homes: mode 0711, so chat users can walk through it to their
/// homes (and to files placed for them) while nothing in it is listable.
pub fn chats_scratch_dir(
    tmp_dir: Option<&Path>,
    workspace: &Path,
    prefix: &str,
) -> anyhow::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = scratch_dir(tmp_dir, workspace, prefix)?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    Ok(dir)
}

/// Builds each of `names` (a package and its binary of the same name) in release mode in
/// `workspace` and returns their paths, in the same order: the binaries production runs.
pub fn build_release<const N: usize>(
    workspace: &Path,
    names: [&str; N],
) -> anyhow::Result<[PathBuf; N]> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let listed = names.join(" and ");
    eprintln!("building {listed} (release)");
    let mut command = std::process::Command::new(cargo);
    command.args(["build", "--quiet", "--release"]);
    for name in names {
        command.args(["-p", name]);
    }
    for name in names {
        command.args(["--bin", name]);
    }
    let status = command
        .current_dir(workspace)
        .status()
        .with_context(|| format!("running cargo build for {listed}"))?;
    anyhow::ensure!(status.success(), "building {listed} failed");
    let release = workspace.join("target").join("release");
    let bins = names.map(|name| release.join(name));
    for bin in &bins {
        anyhow::ensure!(bin.is_file(), "{} is missing", bin.display());
    }
    Ok(bins)
}

/// The two ways a chat is kept apart, each measured with the other as its baseline, in the
/// order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Sandbox,
    Landlock,
}

impl Mode {
    pub const BOTH: [Mode; 2] = [Mode::Sandbox, Mode::Landlock];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Sandbox => "sandbox",
            Mode::Landlock => "landlock",
        }
    }

    pub fn isolation(self) -> picortex::config::IsolationMode {
        match self {
            Mode::Sandbox => picortex::config::IsolationMode::Sandbox,
            Mode::Landlock => picortex::config::IsolationMode::Landlock,
        }
    }

    /// Both modes, the first one alternating with `i`, so both share the machine's noise.
    pub fn order(i: usize) -> [Mode; 2] {
        if i.is_multiple_of(2) {
            Mode::BOTH
        } else {
            [Mode::Landlock, Mode::Sandbox]
        }
    }
}
