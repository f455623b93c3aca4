//! The sandbox every chat process runs in, and the API the privileged helper drives it with.
//!
//! A sandbox is one chat's set of processes: a cgroup (memory, pids, CPU), new mount, PID, IPC,
//! UTS and network namespaces, and an init process that is PID 1 inside them. The init builds the
//! chat's view of the filesystem (private /tmp, a /proc of its own, other chats' homes and the
//! daemon's files hidden, the model gateway's socket directory mounted read-only), brings up
//! loopback, relays `127.0.0.1:`[`GATEWAY_PORT`] to the gateway and `127.0.0.1:`
//! [`GATEWAY_PROXY_PORT`] to its egress proxy ([`crate::forward`]), starts the
//! program as the chat's own user (rlimits, no_new_privs, Landlock, seccomp), then reaps orphans
//! until nothing is left. [`enter`] starts another program in a live sandbox (`tmux attach`).
//!
//! How the pieces talk: [`spawn`] executes `init_exe` with a marker argument (every binary that
//! can be an init calls [`run_init_if_requested`] first in `main`), hands it the spec over a pipe
//! and reads its progress over another (the "report" pipe, see `report`), so any failure before
//! the program's `exec` comes back as a [`JailError`] instead of a silent exit.

mod cgroup;
mod init;
mod mounts;
mod netns;
mod program;
mod report;
mod seccomp;

use std::ffi::OsString;
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::ids::{IdError, validate_chat_name};

pub use cgroup::CgroupVersion;
use report::{Report, ReportReader};

/// Where the daemon's gateway socket directory appears inside every sandbox.
pub const GATEWAY_DIR_INSIDE: &str = "/run/picortex/gateway";
/// The socket file name inside [`GATEWAY_DIR_INSIDE`].
pub const GATEWAY_SOCKET_NAME: &str = "gateway.sock";
/// The TCP port the init's forwarder listens on, on 127.0.0.1 inside the chat's network namespace.
pub const GATEWAY_PORT: u16 = 7824;
/// The daemon's egress proxy socket (HTTP CONNECT to allowlisted hosts), in the same directory.
pub const GATEWAY_PROXY_SOCKET_NAME: &str = "proxy.sock";
/// The TCP port the init relays to [`GATEWAY_PROXY_SOCKET_NAME`], on 127.0.0.1 inside the
/// namespace (the agent's `HTTPS_PROXY`).
pub const GATEWAY_PROXY_PORT: u16 = 7825;

/// How long [`spawn`] and [`enter`] wait for the sandbox to report the program started.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`stop`] waits for the cgroup to empty after killing its processes.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// A sanity bound on the spec sent to a stage (paths, arguments, environment).
const MAX_SPEC_BYTES: usize = 1024 * 1024;

/// Resource limits of one chat's sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory (and memory + swap where the knob exists) of everything in the sandbox.
    pub memory_bytes: u64,
    /// Processes and threads in the sandbox (cgroup), and processes of the chat's user (RLIMIT_NPROC).
    pub pids: u64,
    /// CPU bandwidth in percent of one CPU.
    pub cpu_percent: u32,
    /// The largest file a process may write (RLIMIT_FSIZE).
    pub file_size_bytes: u64,
    /// Open descriptors per process (RLIMIT_NOFILE).
    pub open_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 * 1024 * 1024,
            pids: 200,
            cpu_percent: 25,
            file_size_bytes: 1024 * 1024 * 1024,
            open_files: 1024,
        }
    }
}

/// Everything needed to start a chat's sandbox and the first program in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// The chat's name (`chat-<8 hex>`), also its hostname and cgroup name.
    pub name: String,
    /// The chat's own user (never 0).
    pub uid: u32,
    /// The chat's own group (never 0).
    pub gid: u32,
    /// The chat's home: absolute, existing, owned by `uid`; at the same path inside the sandbox.
    pub home: PathBuf,
    /// The directory holding all chats' homes; empty inside, except for `home`.
    pub workspace_root: PathBuf,
    /// More host paths hidden behind an empty tmpfs inside (the daemon's data directory…).
    pub hide: Vec<PathBuf>,
    /// Directories the program may execute from besides the system's (read-only inside).
    pub exec_dirs: Vec<PathBuf>,
    /// Host directory holding the daemon's `gateway.sock`, mounted read-only at
    /// [`GATEWAY_DIR_INSIDE`]; without it there is no forwarder.
    pub gateway_dir: Option<PathBuf>,
    pub limits: Limits,
    /// A binary whose `main` calls [`run_init_if_requested`] first; it must also be visible
    /// inside the sandbox for [`enter`].
    pub init_exe: PathBuf,
    /// The program to run (absolute, or looked up in `PATH` from `env`).
    pub program: PathBuf,
    /// Its arguments, without argv\[0\].
    pub args: Vec<OsString>,
    /// Its whole environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Its working directory, inside the sandbox.
    pub cwd: PathBuf,
}

impl SandboxSpec {
    /// The part of the spec that says how a process inside is started, e.g. to [`enter`] the
    /// sandbox later with another program.
    pub fn program_spec(&self) -> ProgramSpec {
        ProgramSpec {
            uid: self.uid,
            gid: self.gid,
            home: self.home.clone(),
            exec_dirs: self.exec_dirs.clone(),
            limits: self.limits.clone(),
            init_exe: self.init_exe.clone(),
            program: self.program.clone(),
            args: self.args.clone(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
        }
    }
}

/// How one program is started inside a sandbox: the chat's credentials and confinement, and
/// what to execute.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProgramSpec {
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub exec_dirs: Vec<PathBuf>,
    pub limits: Limits,
    pub init_exe: PathBuf,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// The standard streams of the program started in a sandbox.
#[derive(Debug)]
pub struct ProgramIo {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl Default for ProgramIo {
    /// No input; output and errors go where the caller's go.
    fn default() -> Self {
        Self {
            stdin: Stdio::null(),
            stdout: Stdio::inherit(),
            stderr: Stdio::inherit(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error(transparent)]
    Name(#[from] IdError),
    #[error("invalid sandbox spec: {0}")]
    Spec(String),
    #[error("cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cgroups: {0}")]
    CgroupLayout(String),
    #[error("a sandbox for {0} is already running")]
    AlreadyRunning(String),
    #[error("no sandbox is running for {0}")]
    NotRunning(String),
    #[error("starting {exe}: {source}")]
    Launch {
        exe: PathBuf,
        source: std::io::Error,
    },
    /// A step inside the sandbox failed before the program was executed.
    #[error("setting up the sandbox: {0}")]
    Setup(String),
    #[error("the sandbox stopped without reporting: {0}")]
    Vanished(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the cgroup of {name} still has processes after {STOP_TIMEOUT:?}")]
    StopIncomplete { name: String },
}

impl JailError {
    fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> Self {
        let what = what.into();
        move |source| Self::Sys { what, source }
    }

    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// The report reader only knows its deadline; the caller knows how long it waited.
fn with_timeout(error: JailError, waited: Duration) -> JailError {
    match error {
        JailError::Timeout(_) => JailError::Timeout(waited),
        other => other,
    }
}

/// A started sandbox, as seen by the helper that started it.
#[derive(Debug)]
pub struct Sandbox {
    /// The init's pid in the host's PID namespace.
    pub init_pid: i32,
    /// The program's pid inside the sandbox's PID namespace.
    pub program_pid_inside: i32,
    /// The chat's name.
    pub name: String,
    /// How long [`spawn`] took, from the cgroup's creation to the program's `exec`.
    pub startup: Duration,
    report: ReportReader,
    exit_code: Option<i32>,
}

impl Sandbox {
    /// Waits for the first program to exit and returns its exit code (128 + signal number if a
    /// signal ended it). The sandbox itself lives on while anything in it does.
    pub fn wait_program(&mut self, timeout: Duration) -> Result<i32, JailError> {
        if let Some(code) = self.exit_code {
            return Ok(code);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let next = self
                .report
                .next(deadline)
                .map_err(|e| with_timeout(e, timeout))?;
            match next {
                Some(Report::Exit(code)) => {
                    self.exit_code = Some(code);
                    return Ok(code);
                }
                Some(_) => {}
                None => {
                    return Err(JailError::Vanished(
                        "the init exited before the program's exit was reported".into(),
                    ));
                }
            }
        }
    }
}

/// A program started in a live sandbox by [`enter`]. `child` is a small waiter outside the
/// sandbox's PID namespace that exits with the program's exit code.
#[derive(Debug)]
pub struct Entered {
    pub child: Child,
    /// The program's pid in the host's PID namespace.
    pub program_pid: i32,
}

impl Entered {
    /// Waits for the program and returns its exit code (128 + signal number after a signal).
    pub fn wait(&mut self) -> Result<i32, JailError> {
        let status = self
            .child
            .wait()
            .map_err(JailError::io("waiting for the entered program"))?;
        Ok(status.code().unwrap_or(128))
    }
}

/// Starts a chat's sandbox running `spec.program`, with the program's streams going where the
/// caller's go (stdin: nothing). See [`spawn_with_io`].
pub fn spawn(spec: &SandboxSpec) -> Result<Sandbox, JailError> {
    spawn_with_io(spec, ProgramIo::default())
}

/// Starts a chat's sandbox running `spec.program` with the given standard streams. Returns once
/// the program has been executed, or with the error that stopped it.
pub fn spawn_with_io(spec: &SandboxSpec, io: ProgramIo) -> Result<Sandbox, JailError> {
    let started = Instant::now();
    validate_spec(spec)?;
    let group = cgroup::Cgroup::for_chat(&spec.name)?;
    if !group.members()?.is_empty() {
        return Err(JailError::AlreadyRunning(spec.name.clone()));
    }
    group.create(&spec.limits)?;
    let result = launch_init(spec, &group, io, started);
    if result.is_err() {
        // Nothing may be left half-started: kill what did start and remove the cgroup.
        if let Err(error) = stop(&spec.name) {
            tracing::warn!(chat = %spec.name, %error, "cleaning up after a failed spawn");
        }
    }
    result
}

fn launch_init(
    spec: &SandboxSpec,
    group: &cgroup::Cgroup,
    io: ProgramIo,
    started: Instant,
) -> Result<Sandbox, JailError> {
    let json = serde_json::to_vec(spec).map_err(|e| JailError::Spec(e.to_string()))?;
    let join_files = group.join_files()?;
    let namespaces = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWNET;
    let (mut child, mut report) = start_stage(
        &spec.init_exe,
        init::INIT_ARG,
        &json,
        io,
        join_files,
        StageEntry::Unshare(namespaces),
    )?;
    let deadline = started + START_TIMEOUT;
    let mut init_pid = None;
    let outcome = loop {
        match report
            .next(deadline)
            .map_err(|e| with_timeout(e, START_TIMEOUT))
        {
            Ok(Some(Report::Init(pid))) => init_pid = Some(pid),
            Ok(Some(Report::Started(pid))) => break Ok(pid),
            Ok(Some(Report::Error(message))) => break Err(JailError::Setup(message)),
            Ok(Some(Report::Exit(_))) => {}
            Ok(None) => {
                break Err(JailError::Vanished(
                    "the init exited before starting the program".into(),
                ));
            }
            Err(error) => break Err(error),
        }
    };
    // The first stage exits as soon as it has forked the init; reap it.
    let _ = child.wait();
    let program_pid_inside = outcome?;
    let init_pid = init_pid.ok_or_else(|| JailError::Vanished("no init pid reported".into()))?;
    Ok(Sandbox {
        init_pid,
        program_pid_inside,
        name: spec.name.clone(),
        startup: started.elapsed(),
        report,
        exit_code: None,
    })
}

/// How a stage process gets into the sandbox between `fork` and `exec`.
enum StageEntry {
    /// New namespaces (the init).
    Unshare(CloneFlags),
    /// Join an existing sandbox's namespaces, in this order ([`enter`]).
    Join(Vec<(File, CloneFlags)>),
}

/// Executes `exe` as a sandbox stage: joins the cgroup (`join_files`, each a `cgroup.procs`
/// opened for writing) and the namespaces before `exec`, passes `payload` on a pipe and returns
/// the reader of its report pipe.
fn start_stage(
    exe: &Path,
    marker: &str,
    payload: &[u8],
    io: ProgramIo,
    join_files: Vec<File>,
    entry: StageEntry,
) -> Result<(Child, ReportReader), JailError> {
    if payload.len() > MAX_SPEC_BYTES {
        return Err(JailError::Spec(format!(
            "the spec is {} bytes, more than {MAX_SPEC_BYTES}",
            payload.len()
        )));
    }
    let (payload_read, payload_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(JailError::sys("pipe"))?;
    let (report_read, report_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(JailError::sys("pipe"))?;
    let payload_fd = payload_read.as_raw_fd();
    let report_fd = report_write.as_raw_fd();
    let join_fds: Vec<i32> = join_files.iter().map(|f| f.as_raw_fd()).collect();
    let mut command = Command::new(exe);
    command
        .arg(marker)
        .arg(payload_fd.to_string())
        .arg(report_fd.to_string())
        .env_clear()
        .stdin(io.stdin)
        .stdout(io.stdout)
        .stderr(io.stderr);
    match &entry {
        StageEntry::Unshare(flags) => {
            let flags = flags.bits();
            // SAFETY: runs in the forked child before exec; it only makes raw system calls
            // (write, unshare, fcntl) on descriptors the parent keeps open until spawn returns,
            // and allocates nothing.
            #[allow(unsafe_code)]
            unsafe {
                command.pre_exec(move || {
                    stage_join_cgroup(&join_fds)?;
                    if libc::unshare(flags) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    stage_keep_fds(&[payload_fd, report_fd])
                });
            }
        }
        StageEntry::Join(namespaces) => {
            let ns: Vec<(i32, i32)> = namespaces
                .iter()
                .map(|(file, flag)| (file.as_raw_fd(), flag.bits()))
                .collect();
            // After joining the mount namespace a path would resolve in the chat's view, where
            // the chat may have planted a file of that name (its private /tmp, say), and this
            // stage runs as root: so the binary is opened here, on the host, and executed by
            // its descriptor. Everything exec needs is prepared before the fork.
            let exe_file = File::open(exe).map_err(JailError::io(format!(
                "opening {} to enter a sandbox",
                exe.display()
            )))?;
            let argv: Vec<std::ffi::CString> = [
                exe.as_os_str().as_bytes().to_vec(),
                marker.as_bytes().to_vec(),
                payload_fd.to_string().into_bytes(),
                report_fd.to_string().into_bytes(),
            ]
            .into_iter()
            .map(std::ffi::CString::new)
            .collect::<Result<_, _>>()
            .map_err(|e| JailError::Spec(format!("a stage argument holds a NUL: {e}")))?;
            let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
            argv_ptrs.push(std::ptr::null());
            let envp_ptrs: [*const libc::c_char; 1] = [std::ptr::null()];
            let exec_args = StageExec {
                _argv: argv,
                argv_ptrs,
                envp_ptrs,
                exe_file,
            };
            // SAFETY: as above; setns on descriptors opened by the parent, then fexecve with
            // argument and environment arrays built before the fork (nothing is allocated).
            #[allow(unsafe_code)]
            unsafe {
                command.pre_exec(move || {
                    stage_join_cgroup(&join_fds)?;
                    for &(fd, flag) in &ns {
                        if libc::setns(fd, flag) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    stage_keep_fds(&[payload_fd, report_fd])?;
                    Err(exec_args.exec())
                });
            }
        }
    }
    let child = command.spawn().map_err(|source| JailError::Launch {
        exe: exe.to_path_buf(),
        source,
    })?;
    // Only the sandbox may hold the write end, so its exit reads as end of file here.
    drop(report_write);
    drop(payload_read);
    drop(join_files);
    drop(entry);
    // Written after the start, while the stage reads it: a pipe's buffer can be as small as
    // one page when the user's pipe budget is used up, and the spec must not deadlock on that.
    // A stage that died first shows up as a broken pipe here and as its report below.
    let mut writer = File::from(payload_write);
    if let Err(error) = writer.write_all(payload) {
        tracing::warn!(%error, "writing the spec to the sandbox stage");
    }
    drop(writer);
    Ok((child, ReportReader::new(report_read)))
}

/// What a joining stage's pre-exec hands to `fexecve`, built before the fork.
struct StageExec {
    /// Owns the strings `argv_ptrs` points into.
    _argv: Vec<std::ffi::CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: [*const libc::c_char; 1],
    exe_file: File,
}

impl StageExec {
    /// Replaces this (forked, single-threaded) process with the stage; returns only on error.
    #[allow(unsafe_code)]
    fn exec(&self) -> std::io::Error {
        // SAFETY: the pointer arrays are null-terminated and point into `self._argv`, which
        // lives as long as `self`; the descriptor is `self.exe_file`'s, still open.
        unsafe {
            libc::fexecve(
                self.exe_file.as_raw_fd(),
                self.argv_ptrs.as_ptr(),
                self.envp_ptrs.as_ptr(),
            );
        }
        std::io::Error::last_os_error()
    }
}

// SAFETY: the raw pointers point into `argv` (owned alongside them) or are null; the struct is
// only moved into the pre-exec closure and read there.
#[allow(unsafe_code)]
unsafe impl Send for StageExec {}
#[allow(unsafe_code)]
unsafe impl Sync for StageExec {}

/// In a stage's pre-exec: moves the process into the chat's cgroup (`0` means "myself").
#[allow(unsafe_code)]
fn stage_join_cgroup(fds: &[i32]) -> std::io::Result<()> {
    for &fd in fds {
        // SAFETY: `fd` is a `cgroup.procs` file the parent holds open; the buffer is static.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// In a stage's pre-exec: lets the payload and report pipes survive `exec`.
#[allow(unsafe_code)]
fn stage_keep_fds(fds: &[i32]) -> std::io::Result<()> {
    for &fd in fds {
        // SAFETY: clearing FD_CLOEXEC on a descriptor this process owns.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn validate_spec(spec: &SandboxSpec) -> Result<(), JailError> {
    validate_chat_name(&spec.name)?;
    if spec.uid == 0 || spec.gid == 0 {
        return Err(JailError::Spec("a chat never runs as uid or gid 0".into()));
    }
    for (what, path) in [
        ("home", &spec.home),
        ("workspace_root", &spec.workspace_root),
        ("init_exe", &spec.init_exe),
        ("cwd", &spec.cwd),
    ] {
        if !path.is_absolute() {
            return Err(JailError::Spec(format!("{what} {path:?} is not absolute")));
        }
    }
    if !spec.home.is_dir() {
        return Err(JailError::Spec(format!(
            "home {:?} is not a directory",
            spec.home
        )));
    }
    if spec.home == spec.workspace_root {
        return Err(JailError::Spec(
            "the home cannot be the workspace root itself".into(),
        ));
    }
    for path in spec.hide.iter().chain(&spec.exec_dirs) {
        if !path.is_absolute() {
            return Err(JailError::Spec(format!("{path:?} is not absolute")));
        }
    }
    if let Some(dir) = &spec.gateway_dir
        && !dir.is_dir()
    {
        return Err(JailError::Spec(format!(
            "gateway_dir {dir:?} is not a directory"
        )));
    }
    Ok(())
}

/// The host pid of the init of a live sandbox for this chat, found through its cgroup (so it
/// works for a sandbox started by an earlier run of the helper).
pub fn running(name: &str) -> Option<i32> {
    validate_chat_name(name).ok()?;
    let group = cgroup::Cgroup::for_chat(name).ok()?;
    group
        .members()
        .ok()?
        .into_iter()
        .find(|&pid| is_namespace_init(pid))
}

/// Host pids of every process in the chat's sandbox (its cgroup), the init included.
pub fn members(name: &str) -> Result<Vec<i32>, JailError> {
    validate_chat_name(name)?;
    cgroup::Cgroup::for_chat(name)?.members()
}

/// Which cgroup version this host's sandboxes use.
pub fn cgroup_version() -> CgroupVersion {
    cgroup::version()
}

/// Whether `pid` is PID 1 of a PID namespace below ours (its last `NSpid` entry is 1).
fn is_namespace_init(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))
        .map(|ids| {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            ids.len() >= 2 && ids.last() == Some(&"1")
        })
        .unwrap_or(false)
}

/// Kills everything in the chat's sandbox and removes its cgroup. Idempotent: a chat with no
/// sandbox is already stopped.
pub fn stop(name: &str) -> Result<(), JailError> {
    validate_chat_name(name)?;
    let group = cgroup::Cgroup::for_chat(name)?;
    // Killing the init (from outside its namespace) takes every process in it down with it.
    if let Some(init) = running(name) {
        let _ = kill(Pid::from_raw(init), Signal::SIGKILL);
        reap_if_ours(init);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        let members = group.members()?;
        if members.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(JailError::StopIncomplete {
                name: name.to_owned(),
            });
        }
        // Stages of `enter` live outside the PID namespace; they go one by one.
        for pid in members {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            reap_if_ours(pid);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    group.remove()
}

/// Collects an exit status if the process happens to be our child (or we are its subreaper),
/// so killed sandboxes don't linger as zombies.
fn reap_if_ours(pid: i32) {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
}

/// Runs another program inside the live sandbox of chat `name`: same namespaces and cgroup, and
/// the same credentials, rlimits, no_new_privs, Landlock and seccomp as its first program. Used
/// for `tmux attach` (pass the PTY's slave side as `io`; it becomes the controlling terminal).
pub fn enter(name: &str, program: &ProgramSpec, io: ProgramIo) -> Result<Entered, JailError> {
    validate_chat_name(name)?;
    if program.uid == 0 || program.gid == 0 {
        return Err(JailError::Spec("a chat never runs as uid or gid 0".into()));
    }
    // The stage is opened on the host and executed by its descriptor (see `start_stage`), so
    // nothing the chat can write inside its sandbox decides what runs as root.
    if !program.init_exe.is_absolute() {
        return Err(JailError::Spec(format!(
            "init_exe {:?} must be an absolute path",
            program.init_exe
        )));
    }
    let init = running(name).ok_or_else(|| JailError::NotRunning(name.to_owned()))?;
    let group = cgroup::Cgroup::for_chat(name)?;
    let mut namespaces = Vec::new();
    // All are opened before any is joined; the mount namespace is joined last, and from then on
    // paths (init_exe) resolve in the sandbox's view.
    for (ns, flag) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let path = format!("/proc/{init}/ns/{ns}");
        let file = File::open(&path).map_err(JailError::io(format!("opening {path}")))?;
        namespaces.push((file, flag));
    }
    let json = serde_json::to_vec(program).map_err(|e| JailError::Spec(e.to_string()))?;
    let (mut child, mut report) = start_stage(
        &program.init_exe,
        init::ENTER_ARG,
        &json,
        io,
        group.join_files()?,
        StageEntry::Join(namespaces),
    )?;
    let deadline = Instant::now() + START_TIMEOUT;
    let outcome = loop {
        match report
            .next(deadline)
            .map_err(|e| with_timeout(e, START_TIMEOUT))
        {
            Ok(Some(Report::Started(pid))) => break Ok(pid),
            Ok(Some(Report::Error(message))) => break Err(JailError::Setup(message)),
            Ok(Some(_)) => {}
            Ok(None) => break Err(JailError::Vanished("the entering stage exited".into())),
            Err(error) => break Err(error),
        }
    };
    match outcome {
        Ok(program_pid) => Ok(Entered { child, program_pid }),
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(error)
        }
    }
}

/// Becomes a sandbox stage if this process was started as one (see [`spawn`]), and never
/// returns then; otherwise returns at once. Call it first in `main`, before any thread starts.
pub fn run_init_if_requested() {
    let args: Vec<OsString> = std::env::args_os().skip(1).take(3).collect();
    let [marker, payload_fd, report_fd] = args.as_slice() else {
        return;
    };
    let is_init = marker == init::INIT_ARG;
    if !is_init && marker != init::ENTER_ARG {
        return;
    }
    let parse = |s: &OsString| s.to_str().and_then(|s| s.parse::<i32>().ok());
    let (Some(payload_fd), Some(report_fd)) = (parse(payload_fd), parse(report_fd)) else {
        eprintln!("picortex sandbox stage: bad descriptor arguments");
        std::process::exit(125);
    };
    if is_init {
        init::run_init_stage(payload_fd, report_fd)
    } else {
        init::run_enter_stage(payload_fd, report_fd)
    }
}

/// Takes ownership of a descriptor number handed to this process by its parent stage.
#[allow(unsafe_code)]
fn adopt_fd(fd: i32) -> Option<OwnedFd> {
    use std::os::fd::FromRawFd as _;
    // Refuse stdio and anything not open: the numbers come from our own argv, but a wrong one
    // must not turn into closing someone else's descriptor.
    if fd <= 2
        || nix::fcntl::fcntl(
            // SAFETY: borrowed only for this F_GETFD check.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            nix::fcntl::FcntlArg::F_GETFD,
        )
        .is_err()
    {
        return None;
    }
    // SAFETY: `fd` was passed to this process by the stage launcher for it alone, is open, and
    // nothing else in this process owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
