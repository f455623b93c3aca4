//! The processes a sandbox is made of, on the sandbox side of the pipes.
//!
//! * The init stage runs in the new namespaces (entered before `exec`) but still in the host's
//!   PID namespace; it forks the init, which is PID 1 of the new one, reports the init's host
//!   pid and exits.
//! * The init builds the filesystem view, sets the hostname, brings up loopback, binds the
//!   forwarders (the model gateway and its egress proxy), starts the program, then relays both
//!   and reaps orphans until no process is left. It handles no signals, so nothing inside its
//!   PID namespace can kill it.
//! * The enter stage (for [`super::enter`]) has joined a live sandbox's namespaces; it starts the
//!   program there and waits for it, exiting with its code.

use std::fs::File;
use std::io::Read as _;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::report::{Report, ReportWriter};
use super::{
    GATEWAY_DIR_INSIDE, GATEWAY_PORT, GATEWAY_PROXY_PORT, GATEWAY_PROXY_SOCKET_NAME,
    GATEWAY_SOCKET_NAME, JailError, ProgramSpec, SandboxSpec, adopt_fd, mounts, netns, program,
};

/// argv\[1\] of the init stage.
pub(crate) const INIT_ARG: &str = "__picortex-jail-init";
/// argv\[1\] of the enter stage.
pub(crate) const ENTER_ARG: &str = "__picortex-jail-enter";

/// Exit code of a stage that could not even read its instructions.
const STAGE_FAILED: i32 = 125;

/// Reads the payload pipe and opens the report pipe; exits if either is unusable.
fn stage_pipes<T: serde::de::DeserializeOwned>(
    payload_fd: i32,
    report_fd: i32,
) -> (T, ReportWriter) {
    let Some(report) = adopt_fd(report_fd).map(ReportWriter::new) else {
        eprintln!("picortex sandbox stage: the report descriptor is not open");
        std::process::exit(STAGE_FAILED);
    };
    // Nothing started from here on may inherit the report pipe.
    let _ = nix::fcntl::fcntl(
        report.fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let Some(payload) = adopt_fd(payload_fd) else {
        report.send(&Report::Error("the spec descriptor is not open".into()));
        std::process::exit(STAGE_FAILED);
    };
    let mut text = Vec::new();
    if let Err(error) = File::from(payload).read_to_end(&mut text) {
        report.send(&Report::Error(format!("reading the spec: {error}")));
        std::process::exit(STAGE_FAILED);
    }
    match serde_json::from_slice(&text) {
        Ok(spec) => (spec, report),
        Err(error) => {
            report.send(&Report::Error(format!("parsing the spec: {error}")));
            std::process::exit(STAGE_FAILED);
        }
    }
}

/// The first stage: fork the init into the new PID namespace, report its pid, leave.
#[allow(unsafe_code)]
pub(crate) fn run_init_stage(payload_fd: i32, report_fd: i32) -> ! {
    let (spec, report): (SandboxSpec, ReportWriter) = stage_pipes(payload_fd, report_fd);
    // SAFETY: this process is single-threaded: `run_init_if_requested` runs first in main.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { child }) => {
            report.send(&Report::Init(child.as_raw()));
            std::process::exit(0);
        }
        Ok(ForkResult::Child) => run_init(&spec, &report),
        Err(error) => {
            report.send(&Report::Error(format!("forking the init: {error}")));
            std::process::exit(STAGE_FAILED);
        }
    }
}

/// PID 1 of the sandbox.
fn run_init(spec: &SandboxSpec, report: &ReportWriter) -> ! {
    let (program, forwarders) = match set_up(spec) {
        Ok(started) => started,
        Err(error) => {
            report.send(&Report::Error(setup_message(error)));
            std::process::exit(1);
        }
    };
    report.send(&Report::Started(program.as_raw()));
    // The init writes nowhere but the report pipe; the caller's streams belong to the program.
    detach_stdio();
    if let Some(Forwarders { gateway, proxy }) = forwarders {
        let dir = Path::new(GATEWAY_DIR_INSIDE);
        // The forwarders are a convenience of the sandbox, not its reason to live: if a thread
        // cannot start, the program still runs, and the agent's requests fail visibly.
        let _ = crate::forward::spawn_relay(
            "gateway-forwarder",
            gateway,
            dir.join(GATEWAY_SOCKET_NAME),
        );
        // Relayed whether or not the daemon serves the proxy: without its socket each
        // connection is closed at once, which is the refusal.
        let _ = crate::forward::spawn_relay(
            "proxy-forwarder",
            proxy,
            dir.join(GATEWAY_PROXY_SOCKET_NAME),
        );
    }
    reap_until_empty(program, report)
}

/// The listeners of the relays to the daemon, bound before the program starts so the agent
/// never finds them missing.
struct Forwarders {
    gateway: TcpListener,
    proxy: TcpListener,
}

fn bind_loopback(port: u16) -> Result<TcpListener, JailError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .map_err(JailError::io(format!("listening on 127.0.0.1:{port}")))
}

fn set_up(spec: &SandboxSpec) -> Result<(Pid, Option<Forwarders>), JailError> {
    // The OOM killer must pick the hog, never the init (that would take down the whole chat).
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    mounts::build(spec)?;
    nix::unistd::sethostname(&spec.name).map_err(JailError::sys("setting the hostname"))?;
    netns::loopback_up()?;
    let forwarders = match &spec.gateway_dir {
        Some(_) => Some(Forwarders {
            gateway: bind_loopback(GATEWAY_PORT)?,
            proxy: bind_loopback(GATEWAY_PROXY_PORT)?,
        }),
        None => None,
    };
    // Fork the program before any thread exists (the forwarders start after).
    let program = program::launch(&spec.program_spec())?;
    Ok((program, forwarders))
}

/// The text of a setup failure, without the prefix the helper's side adds again.
fn setup_message(error: JailError) -> String {
    match error {
        JailError::Setup(message) => message,
        other => other.to_string(),
    }
}

/// Points stdin, stdout and stderr at /dev/null.
fn detach_stdio() {
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    let null: OwnedFd = null.into();
    for target in [0, 1, 2] {
        let _ = dup_onto(&null, target);
    }
}

#[allow(unsafe_code)]
fn dup_onto(fd: &OwnedFd, target: i32) -> nix::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: dup2 onto a standard stream number, which this process owns and no Rust object
    // holds as an OwnedFd.
    if unsafe { libc::dup2(fd.as_fd().as_raw_fd(), target) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Reaps every child (orphans end up here), reports the program's exit, and exits once no
/// process is left in the namespace.
fn reap_until_empty(program: Pid, report: &ReportWriter) -> ! {
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == program => {
                report.send(&Report::Exit(code));
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == program => {
                report.send(&Report::Exit(128 + signal as i32));
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => std::process::exit(0),
            Err(_) => std::process::exit(1),
        }
    }
}

/// The enter stage: start the program in the joined namespaces and wait for it.
pub(crate) fn run_enter_stage(payload_fd: i32, report_fd: i32) -> ! {
    let (spec, report): (ProgramSpec, ReportWriter) = stage_pipes(payload_fd, report_fd);
    let program = match program::launch(&spec) {
        Ok(pid) => pid,
        Err(error) => {
            report.send(&Report::Error(setup_message(error)));
            std::process::exit(STAGE_FAILED);
        }
    };
    report.send(&Report::Started(program.as_raw()));
    drop(report);
    loop {
        match waitpid(program, None) {
            Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => std::process::exit(128 + signal as i32),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => std::process::exit(STAGE_FAILED),
        }
    }
}
