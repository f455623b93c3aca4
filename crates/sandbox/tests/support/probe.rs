//! `picortex-sandbox-probe`: a test-only program the isolation test (`tests/isolation.rs`) runs
//! inside chat sandboxes. It is not part of the product.
//!
//! * `serve <ready-file> <abstract-name> <tcp-port>` (chat B): leaves things to attack in its
//!   home (a secret file, a symlink and a hard link to it, a unix socket, a tmux server) and in
//!   its namespaces (an abstract unix socket, a loopback TCP listener), writes `<ready-file>`,
//!   then waits forever.
//! * `attack key=value…` (chat A): tries every attack and every allowed action, printing one
//!   `PASS <claim>` or `FAIL <claim>: <why>` line per claim.
//! * `hog <bytes>` and `bigfile <path> <bytes>`: children of `attack` for the memory and
//!   file-size caps.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") if args.len() == 4 => serve(&args[1], &args[2], &args[3]),
        Some("attack") => attack(&args[1..]),
        Some("hog") if args.len() == 2 => hog(args[1].parse().unwrap_or(u64::MAX)),
        Some("tiocsti") => tiocsti_child(),
        Some("bigfile") if args.len() == 3 => {
            bigfile(Path::new(&args[1]), args[2].parse().unwrap_or(0))
        }
        _ => {
            eprintln!("usage: picortex-sandbox-probe serve|attack|hog|bigfile …");
            std::process::exit(2);
        }
    }
}

// ---------------------------------------------------------------- chat B

fn serve(ready_file: &str, abstract_name: &str, tcp_port: &str) {
    let home = std::env::current_dir().unwrap_or_default();
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("probe serve: {what}: {e}");
        std::process::exit(1)
    };
    let secret = home.join("secret.txt");
    std::fs::write(&secret, "B's secret\n").unwrap_or_else(|e| fail("secret", &e));
    let _ = std::os::unix::fs::symlink(&secret, home.join("link-to-secret"));
    let _ = std::fs::hard_link(&secret, home.join("hardlink-to-secret"));
    let _unix = UnixListener::bind(home.join("b.sock")).unwrap_or_else(|e| fail("b.sock", &e));
    let name = UnixAddr::from_abstract_name(abstract_name.as_bytes())
        .unwrap_or_else(|e| fail("abstract name", &e));
    let _abstract = UnixListener::bind_addr(&name).unwrap_or_else(|e| fail("abstract", &e));
    let _tcp =
        TcpListener::bind(format!("127.0.0.1:{tcp_port}")).unwrap_or_else(|e| fail("tcp", &e));
    let tmux_dir = home.join(".picortex");
    let _ = std::fs::create_dir_all(&tmux_dir);
    let tmux = Command::new("tmux")
        .arg("-S")
        .arg(tmux_dir.join("tmux.sock"))
        .args(["new-session", "-d", "sleep", "600"])
        .status();
    if !matches!(tmux, Ok(s) if s.success()) {
        fail("tmux", &format!("{tmux:?}"));
    }
    std::fs::write(ready_file, "ready\n").unwrap_or_else(|e| fail("ready file", &e));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

// ---------------------------------------------------------------- chat A

struct Report {
    failures: usize,
}

impl Report {
    /// `blocked`: the attempt's outcome, Ok(()) when the claim holds.
    fn claim(&mut self, claim: &str, outcome: Result<String, String>) {
        match outcome {
            Ok(detail) => println!("PASS {claim} ({detail})"),
            Err(why) => {
                self.failures += 1;
                println!("FAIL {claim}: {why}");
            }
        }
    }
}

/// The claim holds when the attempt failed.
fn refused<T, E: std::fmt::Display>(attempt: Result<T, E>) -> Result<String, String> {
    match attempt {
        Ok(_) => Err("the attempt succeeded".into()),
        Err(e) => Ok(format!("refused: {e}")),
    }
}

fn attack(args: &[String]) {
    let params: HashMap<&str, &str> = args.iter().filter_map(|a| a.split_once('=')).collect();
    let get = |key: &str| params.get(key).copied().unwrap_or_default();
    let b_home = PathBuf::from(get("b_home"));
    let a_home = PathBuf::from(get("a_home"));
    let b_pids: Vec<i32> = get("b_pids")
        .split(',')
        .filter_map(|p| p.parse().ok())
        .collect();
    let mut report = Report { failures: 0 };

    // Files.
    report.claim(
        "A cannot list B's home",
        refused(std::fs::read_dir(&b_home)),
    );
    report.claim(
        "A cannot read B's file",
        refused(std::fs::read(b_home.join("secret.txt"))),
    );
    report.claim(
        "A cannot write into B's home",
        refused(std::fs::write(b_home.join("intruder.txt"), "x")),
    );
    report.claim(
        "A cannot read through B's symlink",
        refused(std::fs::read(b_home.join("link-to-secret"))),
    );
    report.claim(
        "A cannot read through B's hard link",
        refused(std::fs::read(b_home.join("hardlink-to-secret"))),
    );
    let own_link = a_home.join("to-b-secret");
    let _ = std::os::unix::fs::symlink(b_home.join("secret.txt"), &own_link);
    report.claim(
        "A cannot read B's file through a symlink of its own",
        refused(std::fs::read(&own_link)),
    );
    report.claim(
        "A cannot hard-link B's file into its home",
        refused(std::fs::hard_link(
            b_home.join("secret.txt"),
            a_home.join("stolen"),
        )),
    );
    let mut proc_paths = Vec::new();
    for pid in &b_pids {
        proc_paths.push(PathBuf::from(format!(
            "/proc/{pid}/root{}",
            b_home.display()
        )));
        proc_paths.push(PathBuf::from(format!("/proc/{pid}/cwd/secret.txt")));
    }
    report.claim(
        "A cannot reach B's home through /proc/<B pid>/root or cwd",
        {
            let reached: Vec<String> = proc_paths
                .iter()
                .filter(|p| std::fs::read_dir(p).is_ok() || std::fs::read(p).is_ok())
                .map(|p| p.display().to_string())
                .collect();
            if b_pids.is_empty() {
                Err("no B pids given".into())
            } else if reached.is_empty() {
                Ok(format!("{} paths tried", proc_paths.len()))
            } else {
                Err(format!("reached {reached:?}"))
            }
        },
    );

    // Processes.
    report.claim("A sees only its own processes in /proc", {
        let visible: Vec<i32> = std::fs::read_dir("/proc")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let seen: Vec<&i32> = b_pids.iter().filter(|p| visible.contains(p)).collect();
        if seen.is_empty() && visible.contains(&1) && visible.len() < 20 {
            Ok(format!("visible pids {visible:?}"))
        } else {
            Err(format!("visible {visible:?}, B's among them {seen:?}"))
        }
    });
    report.claim("A cannot signal B's processes", {
        let reached: Vec<i32> = b_pids
            .iter()
            .copied()
            .filter(|&p| {
                kill(Pid::from_raw(p), None).is_ok()
                    || kill(Pid::from_raw(p), Signal::SIGKILL).is_ok()
            })
            .collect();
        if reached.is_empty() {
            Ok("ESRCH for every B pid".into())
        } else {
            Err(format!("signalled {reached:?}"))
        }
    });
    report.claim("A cannot ptrace B's processes", {
        let attached: Vec<i32> = b_pids
            .iter()
            .copied()
            .filter(|&p| ptrace_attach(p).is_ok())
            .collect();
        if attached.is_empty() {
            Ok("refused".into())
        } else {
            Err(format!("attached to {attached:?}"))
        }
    });
    report.claim("A cannot ptrace even its own child (seccomp)", {
        match Command::new("/bin/sleep").arg("5").spawn() {
            Ok(mut child) => {
                let result = ptrace_attach(child.id() as i32);
                let _ = child.kill();
                let _ = child.wait();
                refused(result)
            }
            Err(e) => Err(format!("spawning sleep: {e}")),
        }
    });
    report.claim(
        "A cannot kill its sandbox's init",
        refused(kill(Pid::from_raw(1), Signal::SIGKILL)),
    );

    // Sockets.
    report.claim(
        "A cannot connect to B's tmux server",
        refused(UnixStream::connect(b_home.join(".picortex/tmux.sock"))),
    );
    report.claim(
        "A cannot connect to B's unix socket",
        refused(UnixStream::connect(b_home.join("b.sock"))),
    );
    report.claim("A cannot connect to B's abstract unix socket", {
        match UnixAddr::from_abstract_name(get("b_abstract").as_bytes()) {
            Ok(addr) => refused(UnixStream::connect_addr(&addr)),
            Err(e) => Err(e.to_string()),
        }
    });
    report.claim(
        "A cannot connect to B's loopback TCP listener",
        refused(tcp_connect(&format!("127.0.0.1:{}", get("b_tcp_port")))),
    );
    report.claim(
        "A cannot reach the host's loopback",
        refused(tcp_connect(&format!("127.0.0.1:{}", get("host_port")))),
    );
    let egress = get("egress_ip");
    report.claim(
        "A cannot reach a TCP listener in another network namespace",
        refused(tcp_connect(&format!("{egress}:{}", get("egress_tcp")))),
    );
    report.claim(
        "A cannot reach a UDP listener in another network namespace",
        refused(udp_round_trip(&format!("{egress}:{}", get("egress_udp")))),
    );
    report.claim("A cannot open an MPTCP socket", refused(mptcp_socket()));

    // Caps.
    report.claim(
        "a fork bomb stops at the pid cap",
        fork_bomb(get("pids").parse().unwrap_or(200)),
    );
    report.claim("a memory hog is killed at the memory cap", {
        let bytes: u64 = get("memory").parse().unwrap_or(0) * 4;
        match run_self(&["hog", &bytes.to_string()]) {
            Ok(status) if status.success() => {
                Err(format!("allocated {bytes} bytes and exited normally"))
            }
            Ok(status) => Ok(format!("ended with {status}")),
            Err(e) => Err(e),
        }
    });
    report.claim("a file larger than the file-size cap cannot be written", {
        let cap: u64 = get("file_size").parse().unwrap_or(0);
        let path = a_home.join("big.bin");
        let status = run_self(&[
            "bigfile",
            &path.to_string_lossy(),
            &(cap + 1024 * 1024).to_string(),
        ]);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let _ = std::fs::remove_file(&path);
        match status {
            Ok(status) if !status.success() && size <= cap => {
                Ok(format!("{status}, file stopped at {size} bytes"))
            }
            Ok(status) => Err(format!("{status}, file reached {size} bytes (cap {cap})")),
            Err(e) => Err(e),
        }
    });
    report.claim("a setuid-root binary gains nothing (no_new_privs)", {
        let nnp = std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["NoNewPrivs:", "1"]);
        match Command::new(get("suid")).output() {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if nnp && !text.contains("uid=0") && !text.contains("euid=0") && !text.is_empty() {
                    Ok(format!("NoNewPrivs 1, setuid id printed {text:?}"))
                } else {
                    Err(format!("NoNewPrivs {nnp}, setuid id printed {text:?}"))
                }
            }
            Err(e) => Err(format!("running {}: {e}", get("suid"))),
        }
    });
    report.claim(
        "the seccomp deny-list refuses its system calls with EPERM",
        denied_syscalls(),
    );
    report.claim("TIOCSTI into its terminal fails", {
        // In a child: it makes a new terminal its controlling one, and gets SIGHUP when it closes.
        let exe = std::env::current_exe().map_err(|e| e.to_string());
        match exe.and_then(|exe| {
            Command::new(exe)
                .arg("tiocsti")
                .output()
                .map_err(|e| e.to_string())
        }) {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if text.starts_with("refused") {
                    Ok(text)
                } else {
                    Err(format!("{text:?} ({})", out.status))
                }
            }
            Err(e) => Err(e),
        }
    });
    report.claim(
        "A cannot create a user namespace",
        refused(nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)),
    );
    report.claim("A cannot create a user namespace with unshare(1)", {
        match Command::new("unshare")
            .args(["-U", "-r", "true"])
            .stderr(Stdio::null())
            .status()
        {
            Ok(s) if s.success() => Err("unshare -U succeeded".into()),
            Ok(s) => Ok(format!("unshare -U: {s}")),
            Err(e) => Ok(format!("unshare not runnable: {e}")),
        }
    });
    report.claim("A's environment holds no daemon secret", {
        let leaked: Vec<String> = std::env::vars()
            .map(|(k, _)| k)
            .filter(|k| k.contains("SECRET") || k.contains("API_KEY"))
            .collect();
        if leaked.is_empty() {
            Ok("none".into())
        } else {
            Err(format!("found {leaked:?}"))
        }
    });

    // What A can do.
    report.claim("A can write its own home", {
        let path = a_home.join("written.txt");
        std::fs::write(&path, "mine")
            .and_then(|()| std::fs::read_to_string(&path))
            .map(|s| format!("read back {s:?}"))
            .map_err(|e| e.to_string())
    });
    report.claim("A can write its private /tmp", {
        std::fs::write("/tmp/probe.txt", "tmp")
            .map(|()| "ok".to_owned())
            .map_err(|e| e.to_string())
    });
    report.claim(
        "A reaches the gateway at 127.0.0.1:7824",
        relay_round_trip("127.0.0.1:7824", "gateway:"),
    );
    report.claim(
        "A reaches the egress proxy's relay at 127.0.0.1:7825 (its socket, not the gateway's)",
        relay_round_trip("127.0.0.1:7825", "proxy:"),
    );
    report.claim("A can run /bin/sh", {
        match Command::new("/bin/sh")
            .args(["-c", "echo sh works"])
            .output()
        {
            Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == "sh works" => {
                Ok("echo ran".into())
            }
            other => Err(format!("{other:?}")),
        }
    });
    report.claim("A can run git", {
        let repo = a_home.join("repo");
        let init = Command::new("git")
            .arg("init")
            .arg("-q")
            .arg(&repo)
            .output();
        let status = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["status", "--short"])
            .output();
        match (init, status) {
            (Ok(i), Ok(s)) if i.status.success() && s.status.success() => {
                Ok("git init and status ran".into())
            }
            other => Err(format!("{other:?}")),
        }
    });
    report.claim("the hostname is the chat's name", {
        let name = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == get("name") {
            Ok(name)
        } else {
            Err(format!("hostname {name:?}"))
        }
    });
    std::process::exit(if report.failures == 0 { 0 } else { 1 });
}

fn tcp_connect(address: &str) -> Result<TcpStream, String> {
    let address: SocketAddr = address.parse().map_err(|e| format!("{address}: {e}"))?;
    TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).map_err(|e| e.to_string())
}

/// Sends a datagram and waits for the echo; an answer means the listener was reached.
fn udp_round_trip(address: &str) -> Result<(), String> {
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(CONNECT_TIMEOUT))
        .map_err(|e| e.to_string())?;
    socket
        .send_to(b"probe", address)
        .map_err(|e| e.to_string())?;
    let mut buffer = [0u8; 64];
    socket
        .recv_from(&mut buffer)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Sends `ping` through one of the init's relays; the stand-in behind it answers `<prefix>ping`.
fn relay_round_trip(address: &str, prefix: &str) -> Result<String, String> {
    let mut stream = tcp_connect(address)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream.write_all(b"ping").map_err(|e| e.to_string())?;
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    if answer == format!("{prefix}ping") {
        Ok(format!("answer {answer:?}"))
    } else {
        Err(format!("answer {answer:?}"))
    }
}

/// Starts `sleep` until the kernel refuses; the cap holds if that happens below `cap` processes.
fn fork_bomb(cap: u64) -> Result<String, String> {
    let mut children = Vec::new();
    let mut refusal = None;
    while (children.len() as u64) < cap + 50 {
        match Command::new("/bin/sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
        {
            Ok(child) => children.push(child),
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let started = children.len();
    for child in &mut children {
        let _ = child.kill();
    }
    for child in &mut children {
        let _ = child.wait();
    }
    match refusal {
        Some(e) if (started as u64) < cap => Ok(format!("{started} processes, then {e}")),
        Some(e) => Err(format!("{started} processes before {e}")),
        None => Err(format!("{started} processes and no refusal")),
    }
}

fn run_self(args: &[&str]) -> Result<ExitStatus, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    Command::new(exe)
        .args(args)
        .stderr(Stdio::null())
        .status()
        .map_err(|e| e.to_string())
}

fn hog(bytes: u64) {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut total = 0u64;
    while total < bytes {
        chunks.push(vec![1u8; 1 << 20]);
        total += 1 << 20;
    }
    println!("allocated {total} bytes");
}

fn bigfile(path: &Path, bytes: u64) {
    let Ok(mut file) = std::fs::File::create(path) else {
        std::process::exit(3);
    };
    let chunk = vec![0u8; 1 << 20];
    let mut written = 0u64;
    while written < bytes {
        if let Err(e) = file.write_all(&chunk) {
            eprintln!("write failed at {written}: {e}");
            std::process::exit(4);
        }
        written += chunk.len() as u64;
    }
}

/// Calls each denied system call with all-zero arguments: the kernel would answer EFAULT,
/// EINVAL, EBADF or ESRCH to those; the filter answers EPERM first.
#[allow(unsafe_code)]
fn denied_syscalls() -> Result<String, String> {
    let calls: &[(&str, libc::c_long)] = &[
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("userfaultfd", libc::SYS_userfaultfd),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("setns", libc::SYS_setns),
        ("keyctl", libc::SYS_keyctl),
        ("add_key", libc::SYS_add_key),
        ("name_to_handle_at", libc::SYS_name_to_handle_at),
        ("open_tree", libc::SYS_open_tree),
        ("fsopen", libc::SYS_fsopen),
        ("mount", libc::SYS_mount),
        ("init_module", libc::SYS_init_module),
    ];
    let mut allowed = Vec::new();
    for &(name, number) in calls {
        // SAFETY: every argument is zero (null pointers, zero lengths, fd 0 or -1 semantics);
        // the kernel validates them and nothing is written to this process's memory.
        let result = unsafe { libc::syscall(number, 0, 0, 0, 0, 0, 0) };
        let errno = std::io::Error::last_os_error().raw_os_error();
        if result != -1 || errno != Some(libc::EPERM) {
            allowed.push(format!("{name}: {result} {errno:?}"));
        }
    }
    // clone3 answers ENOSYS so that libc falls back to clone, whose flags the filter can read.
    // SAFETY: as above.
    let clone3 = unsafe { libc::syscall(libc::SYS_clone3, 0, 0) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    if clone3 != -1 || errno != Some(libc::ENOSYS) {
        allowed.push(format!("clone3: {clone3} {errno:?}"));
    }
    if allowed.is_empty() {
        Ok(format!("{} calls EPERM, clone3 ENOSYS", calls.len()))
    } else {
        Err(format!("not refused as expected: {allowed:?}"))
    }
}

#[allow(unsafe_code)]
fn ptrace_attach(pid: i32) -> Result<(), std::io::Error> {
    // SAFETY: PTRACE_ATTACH takes no pointers; the result is only inspected.
    let result = unsafe {
        libc::ptrace(
            libc::PTRACE_ATTACH,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    if result == 0 {
        // SAFETY: as above; let go of a process we should never have caught.
        unsafe {
            libc::ptrace(
                libc::PTRACE_DETACH,
                pid,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            );
        }
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[allow(unsafe_code)]
fn mptcp_socket() -> Result<(), std::io::Error> {
    // SAFETY: plain socket(2); the descriptor is closed right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 262) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
    unsafe { libc::close(fd) };
    Ok(())
}

/// In a new session, makes a new pseudo-terminal the controlling terminal (where TIOCSTI would
/// otherwise be allowed) and tries to push a byte into its input queue.
fn tiocsti_child() {
    let _ = nix::unistd::setsid();
    match tiocsti_on_new_pty() {
        Ok(()) => println!("injected"),
        Err(e) => println!("refused: {e}"),
    }
    let _ = std::io::stdout().flush();
}

/// Opens a new pseudo-terminal and tries to push a byte into its input queue.
#[allow(unsafe_code)]
fn tiocsti_on_new_pty() -> Result<(), String> {
    use std::os::fd::AsRawFd as _;
    let master = nix::pty::posix_openpt(nix::fcntl::OFlag::O_RDWR).map_err(|e| e.to_string())?;
    nix::pty::grantpt(&master).map_err(|e| e.to_string())?;
    nix::pty::unlockpt(&master).map_err(|e| e.to_string())?;
    let name = nix::pty::ptsname_r(&master).map_err(|e| e.to_string())?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&name)
        .map_err(|e| format!("{name}: {e}"))?;
    let byte: libc::c_char = b'x' as libc::c_char;
    // SAFETY: TIOCSTI reads one byte through the pointer, which points at a live local.
    let result = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSTI, &byte) };
    let outcome = if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    };
    // Closing the terminal now would hang this session up (SIGHUP) before the caller reports;
    // the descriptors close when the process exits.
    std::mem::forget(slave);
    std::mem::forget(master);
    outcome
}
