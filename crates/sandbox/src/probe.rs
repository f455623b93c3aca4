//! What this host offers for isolating chats, found by trying rather than assuming: whether we
//! run as root, which namespaces can really be created, the Landlock ABI, seccomp filter
//! support, the cgroup hierarchy (v2 or v1) with its controllers and whether a child cgroup can
//! be made, and the programs provisioning needs (tmux, useradd). [`HostProbe::isolation`] turns
//! that into the [`IsolationLevel`] `/health` and `picortex doctor` report, naming each missing
//! piece the way a person understands it.
//!
//! Probing needs no root and never panics: anything that cannot be determined is reported as
//! absent, with the reason in a `detail` field. Namespace creation is tried in a child process
//! (the util-linux `unshare` program), so the caller's own namespaces are never touched and a
//! multi-threaded caller is safe.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long one probing child may run before it is killed and counted as a failure.
const CHILD_TIMEOUT: Duration = Duration::from_secs(3);

/// The cgroup controllers the sandbox sets limits with.
pub const REQUIRED_CONTROLLERS: &[&str] = &["memory", "pids", "cpu"];

/// Controller names a v1 hierarchy's super options can carry (the rest are mount options).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// Everything the probe found. Serializable so `/health` and `picortex doctor --json` can show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostProbe {
    /// Effective uid is 0: per-chat users, namespaces and cgroups are possible.
    pub is_root: bool,
    pub euid: u32,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_release: Option<String>,
    pub namespaces: Namespaces,
    /// Newest Landlock ABI the kernel offers (0: none), capped at what the sandbox uses.
    pub landlock_abi: i32,
    pub seccomp: Seccomp,
    pub cgroups: Cgroups,
    pub tmux: Program,
    pub useradd: Program,
}

/// Each namespace kind the sandbox (or the kernel) can create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    pub user: Namespace,
    pub mount: Namespace,
    pub pid: Namespace,
    pub ipc: Namespace,
    pub uts: Namespace,
    pub net: Namespace,
}

/// One namespace kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// The kernel has it (`/proc/self/ns/<kind>` exists).
    pub kernel: bool,
    /// `user.max_<kind>_namespaces`; 0 forbids new ones.
    pub max: Option<u64>,
    /// Creating one succeeded: directly when root, inside a new user namespace otherwise.
    pub creatable: bool,
    /// How creation was tried, or why it failed.
    pub detail: Option<String>,
}

/// Seccomp support.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seccomp {
    /// `/proc/self/status` has a `Seccomp:` field (the kernel was built with seccomp).
    pub kernel: bool,
    /// The kernel accepts BPF filters returning an errno (`/proc/sys/kernel/seccomp/actions_avail`).
    pub filters: bool,
    /// This process's own seccomp mode (0 none, 1 strict, 2 filter): a filter already on us
    /// (e.g. from a container runtime) stays in force for everything we start.
    pub current_mode: Option<u8>,
}

/// Which cgroup hierarchy the sandbox would use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// The unified hierarchy holds the controllers.
    V2,
    /// Per-controller v1 hierarchies (possibly beside an empty v2 one: "hybrid").
    V1,
    /// No usable cgroup hierarchy is mounted.
    None,
}

/// The cgroup hierarchy and its controllers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroups {
    pub version: CgroupVersion,
    /// An (empty or partial) v2 hierarchy is mounted beside v1 controllers.
    pub hybrid: bool,
    /// Controllers available to the sandbox, in the hierarchy `version` names.
    pub controllers: Vec<String>,
    /// Per required controller: where our own cgroup for it is on the host.
    pub own_paths: Vec<CgroupPlace>,
    /// Making and removing a child cgroup worked (only tried as root; `None`: not tried).
    pub child_creatable: Option<bool>,
    pub detail: Option<String>,
}

/// Where this process's cgroup is for one controller (v1) or for all (v2: controller "").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPlace {
    pub controller: String,
    pub path: PathBuf,
}

/// A program looked up on `PATH` (and the sbin directories, which a non-root `PATH` may lack).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    pub path: Option<PathBuf>,
    /// First line of its version output, where it has one.
    pub version: Option<String>,
}

impl Program {
    pub fn found(&self) -> bool {
        self.path.is_some()
    }
}

/// How well chats are isolated from each other on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum IsolationLevel {
    /// Every layer of the sandbox is available.
    Full,
    /// Some layers are missing; each entry names one in words a person understands.
    Degraded { missing: Vec<String> },
}

impl std::fmt::Display for IsolationLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IsolationLevel::Full => f.write_str("full"),
            IsolationLevel::Degraded { missing } => {
                write!(f, "degraded (missing: {})", missing.join(", "))
            }
        }
    }
}

impl HostProbe {
    /// The isolation level the sandbox can give with what was found. tmux is not part of it
    /// (without tmux nothing runs at all; `picortex doctor` reports that separately).
    pub fn isolation(&self) -> IsolationLevel {
        let mut missing = Vec::new();
        if !self.is_root {
            missing.push("per-chat Linux users (not running as root)".to_owned());
        } else if !self.useradd.found() {
            missing.push("per-chat Linux users (useradd not found)".to_owned());
        }
        let ns = &self.namespaces;
        for (namespace, name) in [
            (&ns.mount, "mount namespaces (private /tmp, hidden homes)"),
            (
                &ns.pid,
                "PID namespaces (own /proc, no signals across chats)",
            ),
            (&ns.ipc, "IPC namespaces"),
            (&ns.uts, "UTS namespaces"),
            (&ns.net, "network namespaces (loopback-only egress)"),
        ] {
            // Only the root helper builds sandboxes: a namespace the kernel offers is of no
            // use to the chats while we are not root.
            if !(self.is_root && namespace.creatable) {
                missing.push(name.to_owned());
            }
        }
        if self.landlock_abi == 0 {
            missing.push("Landlock (filesystem confinement)".to_owned());
        }
        if !self.seccomp.filters {
            missing.push("seccomp filters (syscall deny-list)".to_owned());
        }
        let cg = &self.cgroups;
        if cg.version == CgroupVersion::None {
            missing.push("cgroup limits (memory, pids, cpu)".to_owned());
        } else {
            let absent: Vec<&str> = REQUIRED_CONTROLLERS
                .iter()
                .copied()
                .filter(|c| !cg.controllers.iter().any(|have| have == c))
                .collect();
            if !absent.is_empty() {
                missing.push(format!("cgroup controllers {}", absent.join(", ")));
            }
            if !self.is_root {
                missing.push("per-chat cgroup limits (need root)".to_owned());
            } else if cg.child_creatable != Some(true) {
                missing.push("per-chat cgroup limits (cannot create a child cgroup)".to_owned());
            }
        }
        if missing.is_empty() {
            IsolationLevel::Full
        } else {
            IsolationLevel::Degraded { missing }
        }
    }
}

/// Probes the host. Takes tens of milliseconds (a few short child processes); never panics.
pub fn probe() -> HostProbe {
    let euid = nix::unistd::geteuid().as_raw();
    let is_root = euid == 0;
    let unshare = find_program("unshare");
    HostProbe {
        is_root,
        euid,
        kernel_release: read_trimmed("/proc/sys/kernel/osrelease"),
        namespaces: probe_namespaces(is_root, unshare.as_deref()),
        landlock_abi: crate::confine::kernel_abi(),
        seccomp: probe_seccomp(),
        cgroups: probe_cgroups(is_root),
        tmux: probe_program("tmux", &["-V"]),
        useradd: probe_program("useradd", &[]),
    }
}

fn probe_namespaces(is_root: bool, unshare: Option<&Path>) -> Namespaces {
    let one = |proc_name: &str, sysctl: &str, flag: &str| {
        probe_namespace(is_root, unshare, proc_name, sysctl, flag)
    };
    Namespaces {
        user: one("user", "user", "--user"),
        mount: one("mnt", "mnt", "--mount"),
        pid: one("pid", "pid", "--pid"),
        ipc: one("ipc", "ipc", "--ipc"),
        uts: one("uts", "uts", "--uts"),
        net: one("net", "net", "--net"),
    }
}

fn probe_namespace(
    is_root: bool,
    unshare: Option<&Path>,
    proc_name: &str,
    sysctl: &str,
    flag: &str,
) -> Namespace {
    let kernel = Path::new("/proc/self/ns").join(proc_name).exists();
    let max = read_trimmed(format!("/proc/sys/user/max_{sysctl}_namespaces"))
        .and_then(|v| v.parse().ok());
    let mut ns = Namespace {
        kernel,
        max,
        creatable: false,
        detail: None,
    };
    if !kernel {
        ns.detail = Some("the kernel has no such namespace".into());
        return ns;
    }
    if max == Some(0) {
        ns.detail = Some(format!("user.max_{sysctl}_namespaces is 0"));
        return ns;
    }
    let Some(unshare) = unshare else {
        ns.detail = Some("not tried: the unshare program (util-linux) is not installed".into());
        return ns;
    };
    // As root, try exactly what the helper does. Otherwise the only way to create one is
    // inside a new user namespace, which still shows whether the kernel allows it.
    let mut args: Vec<&str> = Vec::new();
    if !is_root && flag != "--user" {
        args.extend(["--user", "--map-root-user"]);
    }
    args.push(flag);
    if flag == "--pid" {
        args.push("--fork");
    }
    args.push("--");
    let true_bin = find_program("true");
    let true_path = true_bin
        .as_deref()
        .and_then(Path::to_str)
        .unwrap_or("/bin/true");
    args.push(true_path);
    match run_with_timeout(unshare, &args, CHILD_TIMEOUT) {
        Ok(out) if out.success => {
            ns.creatable = true;
            ns.detail = Some(if is_root || flag == "--user" {
                "created".into()
            } else {
                "created inside a user namespace (the sandbox needs root)".into()
            });
        }
        Ok(out) => {
            ns.detail = Some(format!("unshare {flag} failed: {}", out.stderr_line()));
        }
        Err(e) => ns.detail = Some(format!("unshare {flag} could not run: {e}")),
    }
    ns
}

fn probe_seccomp() -> Seccomp {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let current_mode = status_field(&status, "Seccomp").and_then(|v| v.parse().ok());
    let actions = read_trimmed("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    let kernel = current_mode.is_some();
    Seccomp {
        kernel,
        filters: kernel && actions.split_whitespace().any(|a| a == "errno"),
        current_mode,
    }
}

/// The value of `Name:` in a `/proc/<pid>/status` text.
fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim())
    })
}

fn probe_cgroups(is_root: bool) -> Cgroups {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut cgroups = cgroups_from(&mountinfo, &own, |path| read_trimmed(path));
    if is_root && cgroups.version != CgroupVersion::None {
        let tried = try_child_cgroups(&cgroups.own_paths);
        cgroups.child_creatable = Some(tried.is_ok());
        if let Err(e) = tried {
            cgroups.detail = Some(e);
        }
    }
    cgroups
}

/// One cgroup mount from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CgroupMount {
    v2: bool,
    /// The path inside the hierarchy that is mounted (usually `/`).
    root: String,
    mount_point: PathBuf,
    /// v1: the controllers this hierarchy carries.
    controllers: Vec<String>,
}

fn parse_cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    let mut mounts = Vec::new();
    for line in mountinfo.lines() {
        // "<id> <parent> <maj:min> <root> <mount point> <options> [optional…] - <fstype> <source> <super options>"
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = before.split(' ').collect();
        let after: Vec<&str> = after.split(' ').collect();
        let (Some(root), Some(mount_point), Some(fstype)) =
            (fields.get(3), fields.get(4), after.first())
        else {
            continue;
        };
        let v2 = match *fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            after
                .get(2)
                .map(|opts| {
                    opts.split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        mounts.push(CgroupMount {
            v2,
            root: unescape_mountinfo(root),
            mount_point: PathBuf::from(unescape_mountinfo(mount_point)),
            controllers,
        });
    }
    mounts
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = bytes.get(i + 1..i + 4)
            && let Ok(text) = std::str::from_utf8(code)
            && let Ok(value) = u8::from_str_radix(text, 8)
        {
            out.push(value);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/proc/self/cgroup`: `(hierarchy controllers, path)`; v2's line has empty controllers.
fn parse_own_cgroups(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            let controllers = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            Some((controllers, path.to_owned()))
        })
        .collect()
}

/// Joins our cgroup `path` (relative to the hierarchy's root) onto a mount of that hierarchy.
fn host_path(mount: &CgroupMount, path: &str) -> PathBuf {
    let path = Path::new(path);
    let relative = path.strip_prefix(&mount.root).unwrap_or(path);
    let relative = relative.strip_prefix("/").unwrap_or(relative);
    mount.mount_point.join(relative)
}

/// Works out the hierarchy from mountinfo and `/proc/self/cgroup`; `read_file` reads a v2
/// `cgroup.controllers` (a parameter so tests do not depend on this host).
fn cgroups_from(
    mountinfo: &str,
    own: &str,
    read_file: impl Fn(&Path) -> Option<String>,
) -> Cgroups {
    let mounts = parse_cgroup_mounts(mountinfo);
    let own = parse_own_cgroups(own);
    let v2_mount = mounts.iter().find(|m| m.v2);
    let v1_mounts: Vec<&CgroupMount> = mounts.iter().filter(|m| !m.v2).collect();
    let v2_controllers: Vec<String> = v2_mount
        .and_then(|m| read_file(&m.mount_point.join("cgroup.controllers")))
        .map(|text| text.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let v1_controllers: Vec<String> = v1_mounts
        .iter()
        .flat_map(|m| m.controllers.iter().cloned())
        .collect();
    let has_required = |list: &[String]| {
        REQUIRED_CONTROLLERS
            .iter()
            .all(|c| list.iter().any(|have| have == c))
    };
    let has_any = |list: &[String]| {
        REQUIRED_CONTROLLERS
            .iter()
            .any(|c| list.iter().any(|have| have == c))
    };
    // v2 wins unless v1 holds the controllers v2 lacks: a hybrid host whose v2 hierarchy is
    // empty keeps its limits in v1.
    let use_v2 = v2_mount.is_some() && (has_required(&v2_controllers) || !has_any(&v1_controllers));
    let hybrid = v2_mount.is_some() && !v1_mounts.is_empty();
    if use_v2 && let Some(mount) = v2_mount {
        let own_path = own
            .iter()
            .find(|(controllers, _)| controllers.is_empty())
            .map(|(_, path)| host_path(mount, path))
            .unwrap_or_else(|| mount.mount_point.clone());
        return Cgroups {
            version: CgroupVersion::V2,
            hybrid,
            controllers: v2_controllers,
            own_paths: vec![CgroupPlace {
                controller: String::new(),
                path: own_path,
            }],
            child_creatable: None,
            detail: None,
        };
    }
    if v1_mounts.is_empty() {
        return Cgroups {
            version: CgroupVersion::None,
            hybrid: false,
            controllers: Vec::new(),
            own_paths: Vec::new(),
            child_creatable: None,
            detail: Some("no cgroup hierarchy is mounted (see /proc/self/mountinfo)".into()),
        };
    }
    let mut own_paths = Vec::new();
    for controller in REQUIRED_CONTROLLERS {
        let Some(mount) = v1_mounts
            .iter()
            .find(|m| m.controllers.iter().any(|c| c == controller))
        else {
            continue;
        };
        let path = own
            .iter()
            .find(|(controllers, _)| controllers.iter().any(|c| c == controller))
            .map(|(_, path)| host_path(mount, path))
            .unwrap_or_else(|| mount.mount_point.clone());
        own_paths.push(CgroupPlace {
            controller: (*controller).to_owned(),
            path,
        });
    }
    Cgroups {
        version: CgroupVersion::V1,
        hybrid,
        controllers: v1_controllers,
        own_paths,
        child_creatable: None,
        detail: None,
    }
}

/// Makes and removes an empty child cgroup under each of our own cgroups.
fn try_child_cgroups(places: &[CgroupPlace]) -> Result<(), String> {
    if places.is_empty() {
        return Err("none of the memory, pids and cpu controllers is mounted".into());
    }
    let name = format!("picortex-probe-{}", std::process::id());
    for place in places {
        let dir = place.path.join(&name);
        std::fs::create_dir(&dir)
            .map_err(|e| format!("cannot create a child cgroup {}: {e}", dir.display()))?;
        // An empty cgroup with no processes can always be removed; if it cannot, say so
        // rather than leave the probe looking successful.
        std::fs::remove_dir(&dir)
            .map_err(|e| format!("created but cannot remove {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// Looks `name` up on `PATH`, then in the sbin directories (a non-root `PATH` often lacks
/// them, yet the root helper will find `useradd` there).
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds `name` and, when `version_args` is not empty, the first line of its version output.
pub fn probe_program(name: &str, version_args: &[&str]) -> Program {
    let path = find_program(name);
    let version = match (&path, version_args.is_empty()) {
        (Some(path), false) => run_with_timeout(path, version_args, CHILD_TIMEOUT)
            .ok()
            .filter(|out| out.success)
            .and_then(|out| out.first_line()),
        _ => None,
    };
    Program { path, version }
}

/// What a finished child printed.
#[derive(Debug, Clone, Default)]
pub struct ChildOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl ChildOutput {
    /// The first non-empty line of stdout, else of stderr (some programs print versions there).
    pub fn first_line(&self) -> Option<String> {
        first_nonempty_line(&self.stdout).or_else(|| first_nonempty_line(&self.stderr))
    }

    fn stderr_line(&self) -> String {
        first_nonempty_line(&self.stderr).unwrap_or_else(|| "no message".into())
    }
}

fn first_nonempty_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

/// Runs `program` with `args` (argv only, no shell, stdin closed), killing it after `timeout`.
pub fn run_with_timeout(
    program: &Path,
    args: &[&str],
    timeout: Duration,
) -> std::io::Result<ChildOutput> {
    let out = crate::process::output_with_timeout(Command::new(program).args(args), timeout)?;
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    Ok(ChildOutput {
        success: out.status.success(),
        stdout: text(out.stdout),
        stderr: text(out.stderr),
    })
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_OWN: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/abc
1:cpu:/
0::/
";

    #[test]
    fn hybrid_hosts_use_v1_with_each_controllers_own_path() {
        let cg = cgroups_from(HYBRID_MOUNTINFO, HYBRID_OWN, |_| Some(String::new()));
        assert_eq!(cg.version, CgroupVersion::V1);
        assert!(cg.hybrid);
        assert_eq!(cg.controllers, vec!["cpu", "memory", "pids"]);
        let memory = cg
            .own_paths
            .iter()
            .find(|p| p.controller == "memory")
            .unwrap();
        assert_eq!(
            memory.path,
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc")
        );
        let pids = cg
            .own_paths
            .iter()
            .find(|p| p.controller == "pids")
            .unwrap();
        assert_eq!(pids.path, PathBuf::from("/sys/fs/cgroup/pids"));
    }

    #[test]
    fn v2_own_path_is_relative_to_the_mounted_root() {
        let mountinfo =
            "30 23 0:26 /user.slice /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let cg = cgroups_from(mountinfo, "0::/user.slice/session-3.scope\n", |_| {
            Some("cpuset cpu io memory pids".into())
        });
        assert_eq!(cg.version, CgroupVersion::V2);
        assert!(!cg.hybrid);
        assert_eq!(
            cg.own_paths[0].path,
            PathBuf::from("/sys/fs/cgroup/session-3.scope")
        );
    }

    #[test]
    fn no_cgroups_is_reported_not_guessed() {
        let cg = cgroups_from("22 1 0:5 / /proc rw - proc proc rw\n", "", |_| None);
        assert_eq!(cg.version, CgroupVersion::None);
        assert!(cg.detail.is_some());
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo(r"/plain\"), r"/plain\");
    }

    #[test]
    fn status_fields() {
        let status = "Name:\tx\nSeccomp:\t2\nSeccomp_filters:\t1\n";
        assert_eq!(status_field(status, "Seccomp"), Some("2"));
        assert_eq!(status_field(status, "NoSuch"), None);
    }

    fn full_host() -> HostProbe {
        let ns = Namespace {
            kernel: true,
            max: Some(1000),
            creatable: true,
            detail: None,
        };
        HostProbe {
            is_root: true,
            euid: 0,
            kernel_release: Some("6.18.0".into()),
            namespaces: Namespaces {
                user: ns.clone(),
                mount: ns.clone(),
                pid: ns.clone(),
                ipc: ns.clone(),
                uts: ns.clone(),
                net: ns,
            },
            landlock_abi: 6,
            seccomp: Seccomp {
                kernel: true,
                filters: true,
                current_mode: Some(0),
            },
            cgroups: Cgroups {
                version: CgroupVersion::V2,
                hybrid: false,
                controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
                own_paths: Vec::new(),
                child_creatable: Some(true),
                detail: None,
            },
            tmux: Program {
                path: Some("/usr/bin/tmux".into()),
                version: Some("tmux 3.3a".into()),
            },
            useradd: Program {
                path: Some("/usr/sbin/useradd".into()),
                version: None,
            },
        }
    }

    #[test]
    fn isolation_is_full_only_with_every_layer() {
        assert_eq!(full_host().isolation(), IsolationLevel::Full);
        assert_eq!(full_host().isolation().to_string(), "full");

        let mut host = full_host();
        host.is_root = false;
        let level = host.isolation();
        let text = level.to_string();
        assert!(text.starts_with("degraded (missing: per-chat Linux users (not running as root)"));
        assert!(text.contains("network namespaces"), "{text}");

        let mut host = full_host();
        host.namespaces.net.creatable = false;
        host.cgroups.controllers.retain(|c| c != "pids");
        host.landlock_abi = 0;
        let IsolationLevel::Degraded { missing } = host.isolation() else {
            panic!("expected degraded");
        };
        assert_eq!(
            missing,
            vec![
                "network namespaces (loopback-only egress)",
                "Landlock (filesystem confinement)",
                "cgroup controllers pids",
            ]
        );
    }

    #[test]
    fn isolation_level_serializes_with_a_status_tag() {
        let json = serde_json::to_value(IsolationLevel::Degraded {
            missing: vec!["x".into()],
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status": "degraded", "missing": ["x"]})
        );
    }

    #[test]
    fn probing_this_host_does_not_panic_and_knows_who_we_are() {
        let host = probe();
        assert_eq!(host.euid, nix::unistd::geteuid().as_raw());
        assert_eq!(host.is_root, host.euid == 0);
        let json = serde_json::to_string(&host).unwrap();
        let back: HostProbe = serde_json::from_str(&json).unwrap();
        assert_eq!(back, host);
        // A child cgroup is only ever tried as root, and never left behind.
        if !host.is_root {
            assert_eq!(host.cgroups.child_creatable, None);
        }
        for place in &host.cgroups.own_paths {
            assert!(
                !place
                    .path
                    .join(format!("picortex-probe-{}", std::process::id()))
                    .exists()
            );
        }
    }
}
