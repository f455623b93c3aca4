//! How this daemon keeps chats apart, chosen once at start-up.
//!
//! * **Sandbox**: every chat is its own Linux user whose processes run in the privileged
//!   helper's jail (namespaces, cgroup, Landlock, seccomp, rlimits), reaching the model only
//!   through the gateway's forwarder. The helper is either one already running (production:
//!   systemd starts `picortex-sandbox` as root and the daemon runs as its own user) or, when the
//!   daemon itself is root (development, CI, `picortex demo`), a child the daemon starts.
//! * **Landlock**: without root, chats are directories of the daemon's user and each chat's
//!   tmux server is confined to its home by Landlock. The daemon says loudly that this is
//!   degraded, and `/health` and `picortex doctor` say what is missing.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use picortex_sandbox::client::{ClientError, HelperClient};

use crate::config::{Config, IsolationMode};

/// How long a helper the daemon started gets to open its socket.
const HELPER_START_TIMEOUT: Duration = Duration::from_secs(10);

/// The isolation in force.
#[derive(Clone)]
pub enum Isolation {
    Sandbox(Arc<SandboxHelper>),
    Landlock,
}

impl Isolation {
    /// Picks the isolation for `config` on this host, starting the helper when the daemon is
    /// root and none is configured. `sandbox` mode refuses to fall back.
    pub async fn setup(config: &Config) -> anyhow::Result<Isolation> {
        let mode = config.isolation.mode;
        if mode == IsolationMode::Landlock {
            return Ok(Isolation::Landlock);
        }
        if let Some(socket) = &config.isolation.helper_socket {
            let helper = SandboxHelper::external(socket.clone());
            helper
                .check()
                .await
                .with_context(|| format!("the sandbox helper at {}", socket.display()))?;
            return Ok(Isolation::Sandbox(Arc::new(helper)));
        }
        if !nix::unistd::geteuid().is_root() {
            anyhow::ensure!(
                mode != IsolationMode::Sandbox,
                "isolation mode \"sandbox\" needs root or a running helper: set \
                 isolation.helper_socket (PICORTEX_SANDBOX_SOCKET) to picortex-sandbox's socket"
            );
            return Ok(Isolation::Landlock);
        }
        match SandboxHelper::start_own(config).await {
            Ok(helper) => Ok(Isolation::Sandbox(Arc::new(helper))),
            Err(e) if mode == IsolationMode::Auto => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "could not start the sandbox helper; falling back to Landlock alone"
                );
                Ok(Isolation::Landlock)
            }
            Err(e) => Err(e),
        }
    }

    pub fn helper(&self) -> Option<&Arc<SandboxHelper>> {
        match self {
            Isolation::Sandbox(helper) => Some(helper),
            Isolation::Landlock => None,
        }
    }

    /// What isolates chats here, for `/health` (and a warning in the log when degraded).
    pub async fn report(&self) -> serde_json::Value {
        let probe = tokio::task::spawn_blocking(picortex_sandbox::probe::probe)
            .await
            .ok();
        let landlock_abi = picortex_sandbox::confine::kernel_abi();
        match self {
            Isolation::Sandbox(helper) => serde_json::json!({
                "status": "full",
                "mode": "sandbox",
                "helper_socket": helper.socket(),
                "landlock_abi": landlock_abi,
                "cgroup": probe.as_ref().map(|p| p.cgroups.version),
            }),
            Isolation::Landlock => {
                let mut missing = vec![
                    "per-chat Linux users".to_owned(),
                    "mount, PID, IPC, UTS and network namespaces".to_owned(),
                    "cgroup limits".to_owned(),
                    "seccomp filter".to_owned(),
                    "network egress limited to the model gateway".to_owned(),
                ];
                if landlock_abi == 0 {
                    missing.push("Landlock (this kernel has none)".to_owned());
                }
                let mode = if landlock_abi > 0 { "landlock" } else { "none" };
                tracing::warn!(
                    isolation = "degraded",
                    mode,
                    landlock_abi,
                    missing = ?missing,
                    "chats are not fully isolated: each runs as this user, confined only by Landlock (if any); run as root or point isolation.helper_socket at picortex-sandbox"
                );
                serde_json::json!({
                    "status": "degraded",
                    "mode": mode,
                    "landlock_abi": landlock_abi,
                    "missing": missing,
                })
            }
        }
    }
}

/// The privileged helper the daemon talks to.
pub struct SandboxHelper {
    socket: PathBuf,
    /// The helper process, when this daemon started it (stopped with the daemon; the chats'
    /// sandboxes live on and the next helper finds them).
    child: Mutex<Option<Child>>,
    /// How to start it again should it die (the daemon's own helper only; systemd restarts an
    /// external one).
    command: Option<(PathBuf, Vec<OsString>)>,
    /// Held while a dead helper is replaced, so concurrent calls start one, not several.
    reviving: tokio::sync::Mutex<()>,
}

impl SandboxHelper {
    pub fn external(socket: PathBuf) -> Self {
        Self {
            socket,
            child: Mutex::new(None),
            command: None,
            reviving: tokio::sync::Mutex::new(()),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Starts `picortex-sandbox serve` (or `picortex sandbox serve`) as this (root) user,
    /// serving only this user, with the workspace root, the data directory hidden inside every
    /// sandbox, and the model gateway's directory relayed into it.
    async fn start_own(config: &Config) -> anyhow::Result<Self> {
        let (program, prefix) = helper_program(config)?;
        let run_dir = config.data_dir.join("run");
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("creating {}", run_dir.display()))?;
        let data_dir = config
            .data_dir
            .canonicalize()
            .with_context(|| format!("resolving {}", config.data_dir.display()))?;
        std::fs::create_dir_all(&config.workspace_root)
            .with_context(|| format!("creating {}", config.workspace_root.display()))?;
        let socket = data_dir.join("run").join("sandbox.sock");
        let mut args: Vec<OsString> = prefix.iter().map(OsString::from).collect();
        args.extend([
            "serve".into(),
            "--socket".into(),
            socket.clone().into_os_string(),
            "--allow-uid".into(),
            nix::unistd::geteuid().as_raw().to_string().into(),
            "--workspace-root".into(),
            config.workspace_root.clone().into_os_string(),
            "--audit-log".into(),
            data_dir.join("sandbox-audit.jsonl").into_os_string(),
            "--hide".into(),
            data_dir.clone().into_os_string(),
            "--exit-with-parent".into(),
            "--archive-dir".into(),
            config.lifecycle.archive_dir(&data_dir).into_os_string(),
        ]);
        if config.gateway.socket {
            args.push("--gateway-dir".into());
            args.push(data_dir.join("run").join("gateway").into_os_string());
        }
        let helper = Self {
            socket,
            child: Mutex::new(None),
            command: Some((program, args)),
            reviving: tokio::sync::Mutex::new(()),
        };
        helper.spawn_and_wait().await?;
        Ok(helper)
    }

    /// Starts the daemon's own helper and waits until it answers on its socket.
    async fn spawn_and_wait(&self) -> anyhow::Result<()> {
        let Some((program, args)) = &self.command else {
            anyhow::bail!("this helper is not the daemon's to start");
        };
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting the sandbox helper {}", program.display()))?;
        if let Ok(mut slot) = self.child.lock() {
            *slot = Some(child);
        }
        let deadline = Instant::now() + HELPER_START_TIMEOUT;
        loop {
            match self.check().await {
                Ok(()) => break,
                Err(e) if Instant::now() >= deadline => {
                    return Err(e).context(format!(
                        "the sandbox helper did not answer within {} s",
                        HELPER_START_TIMEOUT.as_secs()
                    ));
                }
                Err(_) => {
                    if let Some(status) = self.exited() {
                        anyhow::bail!("the sandbox helper exited at start ({status})");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        tracing::info!(socket = %self.socket.display(), helper = %program.display(), "sandbox helper started");
        Ok(())
    }

    /// Starts the daemon's own helper again if it has died (killed, crashed): whatever it was
    /// doing failed with it and is retried by its caller; the chats' sandboxes live on.
    /// Whether a new helper now answers.
    async fn revive(&self) -> bool {
        if self.command.is_none() {
            return false;
        }
        let _one = self.reviving.lock().await;
        let Some(status) = self.exited() else {
            // Alive (or already replaced by a concurrent caller): the caller may try again.
            return self.check().await.is_ok();
        };
        tracing::warn!(%status, "the sandbox helper died; starting it again");
        match self.spawn_and_wait().await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "the sandbox helper could not be started again");
                false
            }
        }
    }

    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().ok()?;
        child.as_mut()?.try_wait().ok().flatten()
    }

    /// Connects once, to see that the helper answers.
    async fn check(&self) -> Result<(), ClientError> {
        let socket = self.socket.clone();
        tokio::task::spawn_blocking(move || HelperClient::connect(&socket).map(drop))
            .await
            .unwrap_or_else(|e| {
                Err(ClientError::Unexpected {
                    op: "connect",
                    detail: e.to_string(),
                })
            })
    }

    /// Runs `f` with a fresh connection on the blocking pool (one request per connection keeps
    /// concurrent chats from waiting on each other). When the daemon's own helper cannot be
    /// reached because it died, it is started again and `f` runs on the new one.
    pub async fn call<T, F>(&self, f: F) -> Result<T, ClientError>
    where
        T: Send + 'static,
        F: FnOnce(&HelperClient) -> Result<T, ClientError> + Send + 'static,
    {
        let joined = |e: tokio::task::JoinError| ClientError::Unexpected {
            op: "call",
            detail: e.to_string(),
        };
        let socket = self.socket.clone();
        let first = tokio::task::spawn_blocking(move || match HelperClient::connect(&socket) {
            Ok(client) => Ok(f(&client)),
            // `f` has not run: hand it back for a second try.
            Err(e) => Err((e, f)),
        })
        .await
        .map_err(joined)?;
        let (error, f) = match first {
            Ok(result) => return result,
            Err(unreachable) => unreachable,
        };
        if !self.revive().await {
            return Err(error);
        }
        let socket = self.socket.clone();
        tokio::task::spawn_blocking(move || f(&HelperClient::connect(&socket)?))
            .await
            .map_err(joined)?
    }
}

impl Drop for SandboxHelper {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock()
            && let Some(mut child) = child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The helper binary: configured, else `picortex-sandbox` beside this binary (or one directory
/// up, where test binaries find it), else this binary's own `sandbox` subcommand.
fn helper_program(config: &Config) -> anyhow::Result<(PathBuf, Vec<&'static str>)> {
    if let Some(bin) = &config.isolation.helper_bin {
        return Ok((bin.clone(), Vec::new()));
    }
    let exe = std::env::current_exe().context("locating picortex's binary")?;
    let sibling = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("picortex-sandbox"))
        .find(|candidate| candidate.is_file());
    Ok(match sibling {
        Some(bin) => (bin, Vec::new()),
        None => (exe, vec!["sandbox"]),
    })
}
