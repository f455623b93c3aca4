//! Starting one program inside the sandbox: a forked process that becomes the chat's user,
//! takes its rlimits, sets no_new_privs, confines itself with Landlock and seccomp, and executes
//! the program. Any failure on the way is written to a close-on-exec pipe, so the parent learns
//! of it (or of the successful `exec`, as end of file) before it reports "started".

use std::convert::Infallible;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::resource::{Resource, setrlimit};
use nix::unistd::{ForkResult, Gid, Pid, Uid};

use super::{JailError, ProgramSpec, seccomp};
use crate::confine;

/// Where programs are looked up when the spec's environment has no `PATH`.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Writable places inside every sandbox besides the home (each a private tmpfs).
const SANDBOX_TMP: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];

/// Forks and executes the program; returns its pid once `exec` succeeded. The caller must be
/// single-threaded (the init before its forwarder starts, or the enter stage).
#[allow(unsafe_code)]
pub(crate) fn launch(spec: &ProgramSpec) -> Result<Pid, JailError> {
    // Everything that can fail for reasons outside the child is prepared here, in the parent.
    let prepared = Prepared::new(spec)?;
    let (error_read, error_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(JailError::sys("pipe"))?;
    // SAFETY: the caller is single-threaded, so the child may allocate and run ordinary code.
    match unsafe { nix::unistd::fork() }.map_err(JailError::sys("fork for the program"))? {
        ForkResult::Child => {
            drop(error_read);
            let Err(message) = become_program(spec, &prepared);
            let mut pipe = File::from(error_write);
            let _ = pipe.write_all(message.as_bytes());
            std::process::exit(127);
        }
        ForkResult::Parent { child } => {
            drop(error_write);
            let mut message = String::new();
            let _ = File::from(error_read).read_to_string(&mut message);
            if message.is_empty() {
                Ok(child)
            } else {
                let _ = nix::sys::wait::waitpid(child, None);
                Err(JailError::Setup(message))
            }
        }
    }
}

/// What the child needs, built before the fork so its errors are the parent's.
struct Prepared {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    filters: seccomp::Filters,
}

impl Prepared {
    fn new(spec: &ProgramSpec) -> Result<Self, JailError> {
        let cstring = |bytes: &[u8]| {
            CString::new(bytes).map_err(|_| {
                JailError::Spec(format!(
                    "a NUL byte in {:?}",
                    String::from_utf8_lossy(bytes)
                ))
            })
        };
        let path = resolve_program(spec)?;
        let mut argv = vec![cstring(path.as_os_str().as_bytes())?];
        for arg in &spec.args {
            argv.push(cstring(arg.as_bytes())?);
        }
        let envp = spec
            .env
            .iter()
            .map(|(key, value)| {
                if key.is_empty() || key.contains('=') {
                    return Err(JailError::Spec(format!("bad environment name {key:?}")));
                }
                cstring(format!("{key}={value}").as_bytes())
            })
            .collect::<Result<_, _>>()?;
        let filters = seccomp::build().map_err(|e| JailError::Setup(e.to_string()))?;
        Ok(Self {
            path: cstring(path.as_os_str().as_bytes())?,
            argv,
            envp,
            filters,
        })
    }
}

/// The program's path: as given if it has a slash, else the first executable match in `PATH`
/// from the program's own environment (not the helper's).
fn resolve_program(spec: &ProgramSpec) -> Result<PathBuf, JailError> {
    if spec.program.as_os_str().as_bytes().contains(&b'/') {
        return Ok(spec.program.clone());
    }
    let search = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(DEFAULT_PATH);
    search
        .split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| Path::new(dir).join(&spec.program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| JailError::Spec(format!("{:?} not found in PATH {search}", spec.program)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// In the forked child: each step in order; only returns with the reason a step failed.
fn become_program(spec: &ProgramSpec, prepared: &Prepared) -> Result<Infallible, String> {
    // The init is shielded from the OOM killer; the program must not inherit that.
    let _ = std::fs::write("/proc/self/oom_score_adj", "0");
    reset_signals().map_err(|e| format!("resetting signal handling: {e}"))?;
    // Its own session, away from any terminal of the helper (no TIOCSTI into it), and a
    // terminal on stdin as its controlling terminal (`tmux attach` through a PTY).
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    if nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        set_controlling_terminal().map_err(|e| format!("TIOCSCTTY: {e}"))?;
    }

    let limits = &spec.limits;
    for (resource, value, name) in [
        (
            Resource::RLIMIT_FSIZE,
            limits.file_size_bytes,
            "RLIMIT_FSIZE",
        ),
        (Resource::RLIMIT_NOFILE, limits.open_files, "RLIMIT_NOFILE"),
        (Resource::RLIMIT_CORE, 0, "RLIMIT_CORE"),
        (Resource::RLIMIT_NPROC, limits.pids, "RLIMIT_NPROC"),
    ] {
        setrlimit(resource, value, value).map_err(|e| format!("setrlimit {name}: {e}"))?;
    }

    let (uid, gid) = (Uid::from_raw(spec.uid), Gid::from_raw(spec.gid));
    nix::unistd::setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| format!("setresgid {gid}: {e}"))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| format!("setresuid {uid}: {e}"))?;
    if nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok() {
        return Err("the process could get root back after dropping it".into());
    }
    nix::unistd::chdir(&spec.cwd).map_err(|e| format!("chdir {}: {e}", spec.cwd.display()))?;

    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    let mut writable = vec![spec.home.clone()];
    writable.extend(SANDBOX_TMP.iter().map(PathBuf::from));
    let enforcement =
        confine::confine_paths(&writable, &spec.exec_dirs).map_err(|e| format!("Landlock: {e}"))?;
    if enforcement == confine::Enforcement::None {
        tracing::warn!("Landlock is not available; the sandbox relies on its other layers");
    }
    seccomp::install(&prepared.filters).map_err(|e| e.to_string())?;

    let error = nix::unistd::execve(&prepared.path, &prepared.argv, &prepared.envp)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    Err(format!(
        "executing {}: {error}",
        OsStr::from_bytes(prepared.path.as_bytes()).to_string_lossy()
    ))
}

/// Gives the program default signal handling: the Rust runtime of the init ignores SIGPIPE, the
/// helper may ignore others, and an ignored signal stays ignored across `exec` (a shell pipeline
/// would then misbehave).
#[allow(unsafe_code)]
fn reset_signals() -> nix::Result<()> {
    use nix::sys::signal::{SigHandler, SigSet, Signal, signal};
    for sig in Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
        // SAFETY: installing the default disposition runs no handler code; the process is
        // single-threaded here (a freshly forked child about to exec).
        unsafe { signal(sig, SigHandler::SigDfl) }?;
    }
    SigSet::empty().thread_set_mask()
}

/// Makes stdin (a terminal) this new session's controlling terminal.
#[allow(unsafe_code)]
fn set_controlling_terminal() -> std::io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal); fd 0 is open.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
