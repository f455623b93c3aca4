//! `picortex doctor`: checks this host and this configuration the way `serve` would use them,
//! and says for each problem how to fix it. It reads and probes; it never changes anything
//! (no directory is created, the database is opened read-only, secrets are never printed).
//!
//! Each [`Check`] is `ok`, `warn` (picortex runs, but something is weaker or missing) or
//! `fail` (`serve` would not start or would not work). The report ends with the
//! [`IsolationLevel`] the host can give chats, from [`picortex_sandbox::probe`].

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use picortex_sandbox::probe::{
    self, CgroupVersion, HostProbe, IsolationLevel, Namespace, REQUIRED_CONTROLLERS,
};
use serde::Serialize;

use crate::config::{AgentKind, Config};

/// How long `<agent CLI> --version` may take (Node CLIs start slowly on a cold cache).
const AGENT_VERSION_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `git --version` may take.
const TOOL_VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short, stable name (`tmux`, `workspace root`, `namespace net`, …).
    pub name: String,
    pub status: Status,
    /// One line: what was found.
    pub detail: String,
    /// For a problem: the command or setting that fixes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn problem(
        status: Status,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Counts per status.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
}

/// Everything `picortex doctor` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
    pub summary: Summary,
    pub isolation: IsolationLevel,
    /// The raw probe, for `--json` readers who want the details.
    pub host: HostProbe,
}

impl Report {
    /// Nothing failed: the exit code is 0.
    pub fn passed(&self) -> bool {
        self.summary.fail == 0
    }

    /// The report as people read it: one line per check, the fix indented under it, then the
    /// summary and the isolation level.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            out.push_str(&format!(
                "{:<4}  {}: {}\n",
                check.status.label(),
                check.name,
                check.detail
            ));
            if let Some(fix) = &check.fix {
                out.push_str(&format!("      fix: {fix}\n"));
            }
        }
        let s = self.summary;
        out.push_str(&format!(
            "\n{} ok, {} warning{}, {} failure{}\n",
            s.ok,
            s.warn,
            if s.warn == 1 { "" } else { "s" },
            s.fail,
            if s.fail == 1 { "" } else { "s" },
        ));
        out.push_str(&format!("isolation: {}\n", self.isolation));
        out
    }
}

/// What to check besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct DoctorOptions {
    /// The privileged helper's socket, when one is used.
    pub sandbox_socket: Option<PathBuf>,
}

/// Loads the configuration as `serve` does (defaults, then `config_path`, then the
/// environment) and checks everything. A configuration that does not load is itself a failed
/// check; the rest is then checked against the defaults and the environment.
pub fn diagnose(config_path: Option<&Path>, options: &DoctorOptions) -> Report {
    let mut checks = Vec::new();
    let config = match Config::load(config_path) {
        Ok(config) => {
            let source = match config_path {
                Some(path) => format!("{} and the environment", path.display()),
                None => "defaults and the environment, no --config".to_owned(),
            };
            match config.validate() {
                Ok(()) => checks.push(Check::ok("config", format!("valid ({source})"))),
                Err(e) => checks.push(Check::problem(
                    Status::Fail,
                    "config",
                    format!("`serve` would refuse it ({source})"),
                    e.to_string(),
                )),
            }
            config
        }
        Err(e) => {
            checks.push(Check::problem(
                Status::Fail,
                "config",
                "cannot be loaded",
                e.to_string(),
            ));
            let mut fallback = Config::default();
            // The environment alone may still be usable; if it is not, defaults it is.
            let _ = fallback.apply_env(|name| std::env::var(name).ok());
            fallback
        }
    };
    let host = probe::probe();
    checks.extend(check_with(&config, &host, options, |name| {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }));
    let mut summary = Summary::default();
    for check in &checks {
        match check.status {
            Status::Ok => summary.ok += 1,
            Status::Warn => summary.warn += 1,
            Status::Fail => summary.fail += 1,
        }
    }
    Report {
        checks,
        summary,
        isolation: host.isolation(),
        host,
    }
}

/// Every check after the configuration's own, against a probed host; `env` reads the
/// environment (only to say where a setting came from).
fn check_with(
    config: &Config,
    host: &HostProbe,
    options: &DoctorOptions,
    env: impl Fn(&str) -> Option<String>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.extend(kernel_checks(host));
    let needs_workspace = config.agent != AgentKind::Echo;
    checks.push(tmux_check(host, needs_workspace));
    checks.push(git_check(needs_workspace));
    checks.push(agent_check(config));
    checks.push(sandbox_socket_check(
        host,
        options
            .sandbox_socket
            .as_deref()
            .or(config.isolation.helper_socket.as_deref()),
    ));
    checks.push(workspace_root_check(&config.workspace_root));
    checks.push(data_dir_check(&config.data_dir));
    checks.push(database_check(&config.database_path()));
    checks.extend(secret_checks(config, &env));
    checks
}

fn kernel_checks(host: &HostProbe) -> Vec<Check> {
    let mut checks = Vec::new();
    if host.is_root {
        checks.push(Check::ok(
            "root",
            "running as root: per-chat Linux users and namespaces are possible",
        ));
    } else {
        checks.push(Check::problem(
            Status::Warn,
            "root",
            format!(
                "running as uid {}: every chat runs as this user, kept apart by Landlock only",
                host.euid
            ),
            "run the picortex-sandbox helper as root (deploy/ has its systemd unit), or run `sudo picortex demo` for development",
        ));
    }
    let ns = &host.namespaces;
    for (kind, sysctl, namespace) in [
        ("mount", "mnt", &ns.mount),
        ("pid", "pid", &ns.pid),
        ("ipc", "ipc", &ns.ipc),
        ("uts", "uts", &ns.uts),
        ("net", "net", &ns.net),
    ] {
        checks.push(namespace_check(host.is_root, kind, sysctl, namespace));
    }
    // The sandbox does not use user namespaces (its seccomp filter forbids making them);
    // reported so an operator knows whether unprivileged ones are open on this host.
    checks.push(Check::ok(
        "namespace user",
        if ns.user.creatable {
            "unprivileged user namespaces can be created here (the sandbox forbids them inside)"
        } else {
            "cannot be created (not needed: the sandbox runs as root and forbids them inside)"
        },
    ));
    checks.push(match host.landlock_abi {
        0 => Check::problem(
            Status::Warn,
            "landlock",
            "the kernel has no Landlock: without root nothing keeps one chat out of another's files",
            "boot a kernel >= 5.13 with CONFIG_SECURITY_LANDLOCK=y and landlock in its lsm= list (e.g. lsm=landlock,lockdown,yama,apparmor,bpf)",
        ),
        abi @ 1..=5 => Check::problem(
            Status::Warn,
            "landlock",
            format!(
                "ABI {abi}: files are confined, but signals and abstract unix sockets are not scoped (ABI 6)"
            ),
            "a kernel >= 6.12 scopes them; with root the PID and network namespaces cover this",
        ),
        abi => Check::ok("landlock", format!("ABI {abi}")),
    });
    checks.push(if host.seccomp.filters {
        let inherited = match host.seccomp.current_mode {
            Some(2) => " (this process already runs under a filter, e.g. a container's)",
            _ => "",
        };
        Check::ok("seccomp", format!("filters supported{inherited}"))
    } else {
        Check::problem(
            Status::Warn,
            "seccomp",
            "the kernel does not accept seccomp filters: no syscall deny-list for chats",
            "use a kernel built with CONFIG_SECCOMP=y and CONFIG_SECCOMP_FILTER=y",
        )
    });
    checks.push(cgroup_check(host));
    checks.push(if host.useradd.found() {
        Check::ok("useradd", path_text(host.useradd.path.as_deref()))
    } else {
        Check::problem(
            if host.is_root {
                Status::Warn
            } else {
                Status::Ok
            },
            "useradd",
            "not found: chats cannot get their own Linux users",
            "apt-get install passwd",
        )
    });
    checks
}

fn namespace_check(is_root: bool, kind: &str, sysctl: &str, ns: &Namespace) -> Check {
    let name = format!("namespace {kind}");
    let detail = ns.detail.clone().unwrap_or_default();
    if ns.creatable && is_root {
        return Check::ok(name, "can be created");
    }
    let fix = if !ns.kernel {
        format!(
            "use a kernel with {kind} namespaces (CONFIG_{}_NS=y)",
            kind.to_uppercase()
        )
    } else if ns.max == Some(0) {
        format!("sysctl -w user.max_{sysctl}_namespaces=10000 (and persist it in /etc/sysctl.d/)")
    } else if !is_root {
        "the sandbox creates namespaces as root: run the picortex-sandbox helper".to_owned()
    } else {
        "check for a seccomp filter or a container runtime blocking unshare(2)".to_owned()
    };
    let detail = if ns.creatable {
        format!("not used without root ({detail})")
    } else {
        format!("cannot be created: {detail}")
    };
    Check::problem(Status::Warn, name, detail, fix)
}

fn cgroup_check(host: &HostProbe) -> Check {
    let cg = &host.cgroups;
    let version = match cg.version {
        CgroupVersion::V2 => "v2",
        CgroupVersion::V1 if cg.hybrid => "v1 (hybrid)",
        CgroupVersion::V1 => "v1",
        CgroupVersion::None => {
            return Check::problem(
                Status::Warn,
                "cgroups",
                "no cgroup hierarchy is mounted: no memory, pid or CPU limits per chat",
                "mount cgroup2 on /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)",
            );
        }
    };
    let absent: Vec<&str> = REQUIRED_CONTROLLERS
        .iter()
        .copied()
        .filter(|c| !cg.controllers.iter().any(|have| have == c))
        .collect();
    let have: Vec<&str> = REQUIRED_CONTROLLERS
        .iter()
        .copied()
        .filter(|c| !absent.contains(c))
        .collect();
    if !absent.is_empty() {
        let fix = match cg.version {
            CgroupVersion::V2 => format!(
                "enable them for picortex's cgroup: echo '{}' > /sys/fs/cgroup/cgroup.subtree_control (or Delegate=yes in the systemd unit)",
                absent
                    .iter()
                    .map(|c| format!("+{c}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            _ => format!(
                "mount the v1 hierarchies: mount -t cgroup -o {0} cgroup /sys/fs/cgroup/{0}",
                absent.join(",")
            ),
        };
        return Check::problem(
            Status::Warn,
            "cgroups",
            format!("{version}, missing controllers: {}", absent.join(", ")),
            fix,
        );
    }
    match cg.child_creatable {
        Some(true) => Check::ok(
            "cgroups",
            format!(
                "{version} with {}; a child cgroup can be created",
                have.join(", ")
            ),
        ),
        Some(false) => Check::problem(
            Status::Warn,
            "cgroups",
            format!(
                "{version} with {}, but {}",
                have.join(", "),
                cg.detail
                    .as_deref()
                    .unwrap_or("a child cgroup cannot be created")
            ),
            "give picortex a writable cgroup subtree (systemd: Delegate=yes in the picortex-sandbox unit)",
        ),
        None => Check::ok(
            "cgroups",
            format!(
                "{version} with {} (creating a child cgroup is only tried as root)",
                have.join(", ")
            ),
        ),
    }
}

fn tmux_check(host: &HostProbe, needed: bool) -> Check {
    match (&host.tmux.path, &host.tmux.version) {
        (Some(path), version) => Check::ok(
            "tmux",
            format!(
                "{} at {}",
                version.as_deref().unwrap_or("version unknown"),
                path.display()
            ),
        ),
        (None, _) => Check::problem(
            if needed { Status::Fail } else { Status::Warn },
            "tmux",
            "not found on PATH: chats' agents and terminals run in tmux",
            "apt-get install tmux",
        ),
    }
}

fn git_check(needed: bool) -> Check {
    let program = probe::find_program("git");
    let Some(path) = program else {
        return Check::problem(
            if needed { Status::Fail } else { Status::Warn },
            "git",
            "not found on PATH: every chat's home is a git repository",
            "apt-get install git",
        );
    };
    let version = probe::run_with_timeout(&path, &["--version"], TOOL_VERSION_TIMEOUT)
        .ok()
        .filter(|out| out.success)
        .and_then(|out| out.first_line());
    Check::ok(
        "git",
        format!(
            "{} at {}",
            version.as_deref().unwrap_or("version unknown"),
            path.display()
        ),
    )
}

fn agent_check(config: &Config) -> Check {
    let (program, how_to_install) = match config.agent {
        AgentKind::Echo => {
            return Check::ok(
                "agent",
                "echo (built in; set PICORTEX_AGENT=claude-code for Claude Code)",
            );
        }
        AgentKind::ClaudeCode => (
            config.agents.claude_bin.clone(),
            "npm install -g @anthropic-ai/claude-code, or set PICORTEX_CLAUDE_BIN to its path",
        ),
        AgentKind::Command => match config.agents.command.first() {
            Some(program) => (
                PathBuf::from(program),
                "install it, or fix agents.command in the config file",
            ),
            None => {
                return Check::problem(
                    Status::Fail,
                    "agent",
                    "agent = \"command\" with no agents.command",
                    "set agents.command = [\"program\", \"arg\", …] in the config file",
                );
            }
        },
    };
    let name = format!("agent {}", agent_name(config.agent));
    let Some(found) = program.to_str().and_then(probe::find_program) else {
        return Check::problem(
            Status::Fail,
            name,
            format!("{} not found on PATH", program.display()),
            how_to_install,
        );
    };
    match probe::run_with_timeout(&found, &["--version"], AGENT_VERSION_TIMEOUT) {
        Ok(out) if out.success => Check::ok(
            name,
            format!(
                "{} at {}",
                out.first_line().as_deref().unwrap_or("version unknown"),
                found.display()
            ),
        ),
        // A `command` agent need not understand --version; finding it is enough.
        Ok(_) if config.agent == AgentKind::Command => Check::ok(name, found.display().to_string()),
        Ok(out) => Check::problem(
            Status::Fail,
            name,
            format!(
                "{} --version failed: {}",
                found.display(),
                out.first_line().unwrap_or_default()
            ),
            how_to_install,
        ),
        Err(e) => Check::problem(
            Status::Fail,
            name,
            format!("{} --version did not run: {e}", found.display()),
            how_to_install,
        ),
    }
}

fn agent_name(kind: AgentKind) -> &'static str {
    match kind {
        AgentKind::Echo => "echo",
        AgentKind::ClaudeCode => "claude-code",
        AgentKind::Command => "command",
    }
}

fn sandbox_socket_check(host: &HostProbe, socket: Option<&Path>) -> Check {
    let name = "sandbox helper";
    let Some(socket) = socket else {
        return if host.is_root {
            Check::ok(
                name,
                "no helper socket given (running as root, none is needed)",
            )
        } else {
            Check::problem(
                Status::Warn,
                name,
                "no helper socket given: chats are not sandboxed by the privileged helper",
                "start picortex-sandbox as root and pass its socket with --sandbox-socket PATH",
            )
        };
    };
    let fix = format!(
        "start the helper (systemctl start picortex-sandbox), or pass the socket it serves (picortex-sandbox serve --socket {})",
        socket.display()
    );
    let meta = match std::fs::metadata(socket) {
        Ok(meta) => meta,
        Err(e) => {
            return Check::problem(
                Status::Fail,
                name,
                format!("{}: {e}", socket.display()),
                fix,
            );
        }
    };
    if !meta.file_type().is_socket() {
        return Check::problem(
            Status::Fail,
            name,
            format!("{} exists but is not a socket", socket.display()),
            fix,
        );
    }
    // The helper answers nothing until asked; a connection it accepts is enough here.
    match picortex_sandbox::client::HelperClient::connect(socket) {
        Ok(_) => Check::ok(name, format!("{} accepts connections", socket.display())),
        Err(e) => Check::problem(
            Status::Fail,
            name,
            format!("{} does not accept connections: {e}", socket.display()),
            fix,
        ),
    }
}

fn workspace_root_check(root: &Path) -> Check {
    let name = "workspace root";
    let shown = root.display();
    let meta = match std::fs::symlink_metadata(root) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match nearest_existing_ancestor(root) {
                Some(parent) if writable(&parent) => {
                    let tmpfs = on_tmpfs(&parent);
                    let detail = format!(
                        "{shown} does not exist yet; it will be created under {}",
                        parent.display()
                    );
                    if tmpfs {
                        tmpfs_problem(name, detail, root)
                    } else {
                        Check::ok(name, detail)
                    }
                }
                Some(parent) => Check::problem(
                    Status::Fail,
                    name,
                    format!(
                        "{shown} does not exist and {} is not writable by this user",
                        parent.display()
                    ),
                    format!(
                        "sudo install -d -m 0755 -o $(id -un) {shown}, or set PICORTEX_WORKSPACE_ROOT"
                    ),
                ),
                None => Check::problem(
                    Status::Fail,
                    name,
                    format!("{shown} does not exist and has no existing parent"),
                    "set PICORTEX_WORKSPACE_ROOT to an absolute path",
                ),
            };
        }
        Err(e) => {
            return Check::problem(
                Status::Fail,
                name,
                format!("{shown}: {e}"),
                "set PICORTEX_WORKSPACE_ROOT to a directory this user can use",
            );
        }
    };
    if meta.file_type().is_symlink() {
        return Check::problem(
            Status::Fail,
            name,
            format!("{shown} is a symlink"),
            "point PICORTEX_WORKSPACE_ROOT at the real directory",
        );
    }
    if !meta.is_dir() {
        return Check::problem(
            Status::Fail,
            name,
            format!("{shown} is not a directory"),
            "set PICORTEX_WORKSPACE_ROOT to a directory",
        );
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        // Anyone who can write here can plant or swap a chat's home.
        return Check::problem(
            Status::Fail,
            name,
            format!("{shown} has mode {mode:04o}: other users can create or rename chat homes"),
            format!("chmod go-w {shown}"),
        );
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid && meta.uid() != 0 {
        return Check::problem(
            Status::Warn,
            name,
            format!(
                "{shown} is owned by uid {}, not by this user ({euid}) or root",
                meta.uid()
            ),
            format!("chown $(id -un) {shown}"),
        );
    }
    if !writable(root) {
        return Check::problem(
            Status::Fail,
            name,
            format!("{shown} is not writable by this user"),
            format!("chown $(id -un) {shown}, or set PICORTEX_WORKSPACE_ROOT"),
        );
    }
    let detail = format!("{shown} (mode {mode:04o}, owner uid {})", meta.uid());
    if on_tmpfs(root) {
        return tmpfs_problem(name, detail, root);
    }
    Check::ok(name, detail)
}

fn tmpfs_problem(name: &str, detail: String, root: &Path) -> Check {
    Check::problem(
        Status::Warn,
        name,
        format!("{detail}; it is on tmpfs, so every chat's files vanish at reboot"),
        format!(
            "set PICORTEX_WORKSPACE_ROOT to a directory on a disk (not {})",
            root.display()
        ),
    )
}

fn data_dir_check(dir: &Path) -> Check {
    let name = "data dir";
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Check::problem(
            Status::Fail,
            name,
            format!("{shown} is not a directory"),
            "set PICORTEX_DATA_DIR to a directory",
        ),
        Ok(_) if writable(dir) && on_tmpfs(dir) => Check::problem(
            Status::Warn,
            name,
            format!("{shown} is on tmpfs: the database vanishes at reboot"),
            "set PICORTEX_DATA_DIR to a directory on a disk",
        ),
        Ok(_) if writable(dir) => Check::ok(name, format!("{shown} is writable")),
        Ok(_) => Check::problem(
            Status::Fail,
            name,
            format!("{shown} is not writable by this user"),
            format!("chown -R $(id -un) {shown}, or set PICORTEX_DATA_DIR"),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match nearest_existing_ancestor(dir) {
                Some(parent) if writable(&parent) => Check::ok(
                    name,
                    format!(
                        "{shown} does not exist yet; it will be created under {}",
                        parent.display()
                    ),
                ),
                _ => Check::problem(
                    Status::Fail,
                    name,
                    format!("{shown} does not exist and cannot be created by this user"),
                    format!(
                        "sudo install -d -m 0700 -o $(id -un) {shown}, or set PICORTEX_DATA_DIR"
                    ),
                ),
            }
        }
        Err(e) => Check::problem(
            Status::Fail,
            name,
            format!("{shown}: {e}"),
            "set PICORTEX_DATA_DIR to a directory this user can use",
        ),
    }
}

fn database_check(path: &Path) -> Check {
    let name = "database";
    let shown = path.display();
    if !path.exists() {
        return Check::ok(
            name,
            format!("{shown} does not exist yet; `serve` creates it"),
        );
    }
    let fix =
        format!("stop picortex, keep a copy of {shown}, and restore the latest `picortex backup`");
    // Read-only, so doctor (perhaps run as root) never creates files the daemon must own.
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match rusqlite::Connection::open_with_flags(path, flags) {
        Ok(conn) => conn,
        Err(e) => {
            return Check::problem(
                Status::Fail,
                name,
                format!("{shown} does not open: {e}"),
                fix,
            );
        }
    };
    let _ = conn.busy_timeout(Duration::from_secs(2));
    let result: Result<Vec<String>, rusqlite::Error> = conn
        .prepare("PRAGMA quick_check")
        .and_then(|mut stmt| stmt.query_map([], |row| row.get::<_, String>(0))?.collect());
    match result {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => {
            Check::ok(name, format!("{shown} passes quick_check"))
        }
        Ok(lines) => Check::problem(
            Status::Fail,
            name,
            format!(
                "{shown} fails quick_check: {}",
                lines.first().map(String::as_str).unwrap_or("no answer")
            ),
            fix,
        ),
        Err(e) => Check::problem(
            Status::Fail,
            name,
            format!("{shown}: quick_check could not run: {e}"),
            fix,
        ),
    }
}

/// Says whether each credential and endpoint is set and where from, never its value.
fn secret_checks(config: &Config, env: &impl Fn(&str) -> Option<String>) -> Vec<Check> {
    let uses_model = config.agent == AgentKind::ClaudeCode;
    let items: [(&str, bool, Status, &str); 6] = [
        (
            "LINQ_API_KEY",
            !config.linq.api_key.is_empty(),
            Status::Warn,
            "set LINQ_API_KEY (or [linq] api_key) to your Linq partner API key",
        ),
        (
            "LINQ_WEBHOOK_SECRET",
            !config.linq.webhook_secret.is_empty(),
            Status::Warn,
            "set LINQ_WEBHOOK_SECRET to the whsec_… secret of your webhook subscription",
        ),
        (
            "LINQ_BASE_URL",
            config.linq.base_url != crate::config::DEFAULT_LINQ_BASE_URL,
            Status::Ok,
            "",
        ),
        (
            "LINQ_PHONE",
            config.linq.phone.is_some(),
            Status::Warn,
            "set LINQ_PHONE to the bot's line (E.164, e.g. +15551234567)",
        ),
        (
            "ANTHROPIC_API_KEY",
            config.agents.anthropic_api_key.is_some(),
            if uses_model { Status::Warn } else { Status::Ok },
            "set ANTHROPIC_API_KEY (the agent then uses it through picortex, never directly)",
        ),
        (
            "ANTHROPIC_BASE_URL",
            config.agents.anthropic_base_url.is_some(),
            Status::Ok,
            "",
        ),
    ];
    items
        .into_iter()
        .map(|(var, configured, status_if_unset, fix)| {
            let from_env = env(var).is_some();
            if from_env {
                Check::ok(var, "set (environment)")
            } else if configured {
                Check::ok(var, "set (config file)")
            } else if status_if_unset == Status::Ok || fix.is_empty() {
                let default = match var {
                    "LINQ_BASE_URL" => "not set: the real Linq API",
                    "ANTHROPIC_BASE_URL" => "not set: the real Anthropic API",
                    _ => "not set",
                };
                Check::ok(var, default)
            } else {
                Check::problem(status_if_unset, var, "not set", fix)
            }
        })
        .collect()
}

fn nearest_existing_ancestor(path: &Path) -> Option<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    absolute
        .ancestors()
        .find(|p| p.exists())
        .map(Path::to_owned)
}

fn writable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::W_OK).is_ok()
}

fn on_tmpfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

fn path_text(path: Option<&Path>) -> String {
    path.map(|p| p.display().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_world_writable_root_fails_with_the_chmod_fix() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("chats");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
        let check = workspace_root_check(&root);
        assert_eq!(check.status, Status::Fail, "{check:?}");
        assert_eq!(check.fix, Some(format!("chmod go-w {}", root.display())));

        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(workspace_root_check(&root).status, Status::Fail);
    }

    #[test]
    fn a_missing_root_under_a_writable_parent_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let check = workspace_root_check(&dir.path().join("a/b"));
        assert_ne!(check.status, Status::Fail, "{check:?}");
        assert!(check.detail.contains("will be created"), "{check:?}");
    }

    #[test]
    fn secrets_say_where_they_come_from_never_what_they_are() {
        let mut config = Config::default();
        config.linq.api_key = "sk-from-file-very-secret".into();
        let checks = secret_checks(&config, &|name| {
            (name == "LINQ_WEBHOOK_SECRET").then(|| "whsec_abc".to_owned())
        });
        let text = format!("{checks:?}");
        assert!(!text.contains("sk-from-file"), "{text}");
        assert!(!text.contains("whsec_abc"), "{text}");
        let by_name = |n: &str| checks.iter().find(|c| c.name == n).unwrap();
        assert_eq!(by_name("LINQ_API_KEY").detail, "set (config file)");
        assert_eq!(by_name("LINQ_WEBHOOK_SECRET").detail, "set (environment)");
        assert_eq!(by_name("LINQ_PHONE").status, Status::Warn);
    }

    #[test]
    fn the_database_is_checked_without_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("picortex.db");
        assert_eq!(database_check(&path).status, Status::Ok);
        assert!(!path.exists(), "doctor must not create the database");

        std::fs::write(
            &path,
            b"this is not a database, just some bytes long enough",
        )
        .unwrap();
        let check = database_check(&path);
        assert_eq!(check.status, Status::Fail, "{check:?}");
    }

    #[test]
    fn a_plain_file_is_not_the_helper_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        std::fs::write(&path, b"").unwrap();
        let host = probe::probe();
        let check = sandbox_socket_check(&host, Some(&path));
        assert_eq!(check.status, Status::Fail);
        assert!(check.detail.contains("not a socket"), "{check:?}");

        // The helper serves SOCK_SEQPACKET.
        use nix::sys::socket::{
            AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket,
        };
        use std::os::fd::AsRawFd as _;
        let listener_path = dir.path().join("real.sock");
        let listener = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        bind(
            listener.as_raw_fd(),
            &UnixAddr::new(&listener_path).unwrap(),
        )
        .unwrap();
        listen(&listener, Backlog::new(4).unwrap()).unwrap();
        let check = sandbox_socket_check(&host, Some(&listener_path));
        assert_eq!(check.status, Status::Ok, "{check:?}");
    }
}
