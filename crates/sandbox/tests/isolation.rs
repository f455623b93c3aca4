#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The isolation claims of the chat sandbox, each tried for real (needs root; without it every
//! claim prints SKIP and the test passes).
//!
//! The test creates two throwaway chat users A and B with homes under a temporary workspace root,
//! a network namespace with TCP, UDP and MPTCP listeners behind a veth pair, a listener on the
//! host's loopback and a stand-in model gateway (a unix-socket echo server), then starts B's
//! sandbox with `picortex-sandbox-probe serve` (secrets, links, sockets, a tmux server) and A's
//! with `picortex-sandbox-probe attack`, which prints one PASS/FAIL line per claim. Claims checked
//! from outside (setup errors reach `spawn`, `enter`, `stop`, spawn time) are printed here.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use picortex_sandbox::jail::{self, Limits, ProgramIo, SandboxSpec};

const PROBE: &str = env!("CARGO_BIN_EXE_picortex-sandbox-probe");
const INIT: &str = env!("CARGO_BIN_EXE_picortex-sandbox");
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Small enough to write quickly; the claim is about the cap, not its default size.
const FILE_SIZE_CAP: u64 = 8 * 1024 * 1024;

/// Every claim, for the SKIP lines when the test cannot run.
const CLAIMS: &[&str] = &[
    "A cannot read, write or list B's home (directly, via symlinks, hard links, /proc/<pid>/root|cwd)",
    "A sees only its own processes and cannot signal or ptrace B's",
    "A cannot connect to B's tmux server, unix socket, abstract socket or loopback listener",
    "A cannot reach TCP, UDP or MPTCP listeners in another network namespace, nor the host's loopback",
    "fork bomb, memory hog and file-size caps hold",
    "setuid binaries gain nothing; TIOCSTI fails; user namespaces cannot be created",
    "A can write its home and /tmp, reach the gateway and the egress proxy's relay, run /bin/sh and git",
    "setup errors reach spawn; enter joins a live sandbox; stop tears it down",
];

#[test]
fn chats_are_isolated_from_each_other_and_the_network() {
    if !nix::unistd::geteuid().is_root() {
        for claim in CLAIMS {
            println!("SKIP {claim}: needs root (users, namespaces, cgroups)");
        }
        return;
    }
    let mut fixture = Fixture::new();
    let failures = fixture.run();
    drop(fixture);
    assert!(failures.is_empty(), "failed claims: {failures:#?}");
}

struct Chat {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

/// Everything the test creates, removed on drop even when a claim fails or the test panics.
struct Fixture {
    root: PathBuf,
    chats: Vec<Chat>,
    netns: Option<String>,
    failures: Vec<String>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for chat in &self.chats {
            let _ = jail::stop(&chat.name);
            let _ = Command::new("userdel")
                .arg(&chat.name)
                .stderr(Stdio::null())
                .status();
            let _ = Command::new("groupdel")
                .arg(&chat.name)
                .stderr(Stdio::null())
                .status();
        }
        if let Some(netns) = &self.netns {
            let _ = Command::new("ip").args(["netns", "del", netns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?}: {status}");
}

fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Fixture {
    fn new() -> Self {
        let root =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("isolation-{}", random_hex()));
        std::fs::create_dir_all(root.join("chats")).unwrap();
        std::fs::create_dir_all(root.join("gateway")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        Self {
            root,
            chats: Vec::new(),
            netns: None,
            failures: Vec::new(),
        }
    }

    fn record(&mut self, claim: &str, outcome: Result<String, String>) {
        match outcome {
            Ok(detail) => println!("PASS {claim} ({detail})"),
            Err(why) => {
                println!("FAIL {claim}: {why}");
                self.failures.push(format!("{claim}: {why}"));
            }
        }
    }

    fn add_chat(&mut self) -> usize {
        let name = format!("chat-{}", random_hex());
        let home = self.root.join("chats").join(&name);
        // Registered before useradd, so a failure below still removes the user.
        self.chats.push(Chat {
            name: name.clone(),
            uid: 0,
            gid: 0,
            home: home.clone(),
        });
        let home_str = home.to_str().unwrap();
        run(
            "useradd",
            &[
                "--no-create-home",
                "--user-group",
                "--home-dir",
                home_str,
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ],
        );
        let uid: u32 = output("id", &["-u", &name]).parse().unwrap();
        let gid: u32 = output("id", &["-g", &name]).parse().unwrap();
        std::fs::create_dir_all(&home).unwrap();
        nix::unistd::chown(&home, Some(uid.into()), Some(gid.into())).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        let index = self.chats.len() - 1;
        self.chats[index].uid = uid;
        self.chats[index].gid = gid;
        index
    }

    fn spec(&self, chat: usize, program: &str, args: Vec<String>) -> SandboxSpec {
        let chat = &self.chats[chat];
        let bin_dir = Path::new(PROBE).parent().unwrap().to_path_buf();
        SandboxSpec {
            name: chat.name.clone(),
            uid: chat.uid,
            gid: chat.gid,
            home: chat.home.clone(),
            workspace_root: self.root.join("chats"),
            hide: vec![self.root.join("gateway")],
            exec_dirs: vec![bin_dir, self.root.join("bin")],
            gateway_dir: Some(self.root.join("gateway")),
            limits: Limits {
                file_size_bytes: FILE_SIZE_CAP,
                ..Limits::default()
            },
            init_exe: PathBuf::from(INIT),
            program: PathBuf::from(program),
            args: args.into_iter().map(Into::into).collect(),
            env: vec![
                ("PATH".into(), PATH.into()),
                ("HOME".into(), chat.home.to_string_lossy().into_owned()),
            ],
            cwd: chat.home.clone(),
        }
    }

    fn log_io(&self, name: &str) -> (ProgramIo, PathBuf) {
        let path = self.root.join(format!("{name}.out"));
        let out = std::fs::File::create(&path).unwrap();
        let err = out.try_clone().unwrap();
        (
            ProgramIo {
                stdin: Stdio::null(),
                stdout: out.into(),
                stderr: err.into(),
            },
            path,
        )
    }

    fn run(&mut self) -> Vec<String> {
        let a = self.add_chat();
        let b = self.add_chat();
        let gateway_dir = self.root.join("gateway");
        start_stand_in(&gateway_dir.join(jail::GATEWAY_SOCKET_NAME), b"gateway:");
        start_stand_in(
            &gateway_dir.join(jail::GATEWAY_PROXY_SOCKET_NAME),
            b"proxy:",
        );
        let host_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host_port = host_listener.local_addr().unwrap().port();
        let egress = self.start_foreign_network();

        // B: things to attack.
        let b_ready = self.chats[b].home.join("ready");
        let b_abstract = format!("picortex-test-{}", self.chats[b].name);
        let b_tcp_port = "47001";
        let b_spec = self.spec(
            b,
            PROBE,
            vec![
                "serve".into(),
                b_ready.to_string_lossy().into(),
                b_abstract.clone(),
                b_tcp_port.into(),
            ],
        );
        let (b_io, b_log) = self.log_io("b");
        let b_sandbox = jail::spawn_with_io(&b_spec, b_io);
        let b_sandbox = match b_sandbox {
            Ok(sandbox) => sandbox,
            Err(error) => {
                self.record("B's sandbox starts", Err(error.to_string()));
                return self.failures.clone();
            }
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !b_ready.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !b_ready.exists() {
            let log = std::fs::read_to_string(&b_log).unwrap_or_default();
            self.record(
                "B's probe is ready",
                Err(format!("no ready file; B's output: {log}")),
            );
            return self.failures.clone();
        }
        let b_pids = jail::members(&self.chats[b].name).unwrap();
        println!(
            "B: init {} startup {:?}, pids {b_pids:?}",
            b_sandbox.init_pid, b_sandbox.startup
        );

        // A: every attack, and what it may do.
        let suid = self.root.join("bin").join("suid-id");
        std::fs::copy("/usr/bin/id", &suid).unwrap();
        std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
        let pid_list: Vec<String> = b_pids.iter().map(ToString::to_string).collect();
        let limits = Limits::default();
        let a_args = vec![
            "attack".to_owned(),
            format!("name={}", self.chats[a].name),
            format!("a_home={}", self.chats[a].home.display()),
            format!("b_home={}", self.chats[b].home.display()),
            format!("b_pids={}", pid_list.join(",")),
            format!("b_abstract={b_abstract}"),
            format!("b_tcp_port={b_tcp_port}"),
            format!("host_port={host_port}"),
            format!("egress_ip={}", egress.ip),
            format!("egress_tcp={}", egress.tcp),
            format!("egress_udp={}", egress.udp),
            format!("pids={}", limits.pids),
            format!("memory={}", limits.memory_bytes),
            format!("file_size={FILE_SIZE_CAP}"),
            format!("suid={}", suid.display()),
        ];
        let a_spec = self.spec(a, PROBE, a_args);
        let (a_io, a_log) = self.log_io("a");
        match jail::spawn_with_io(&a_spec, a_io) {
            Ok(mut sandbox) => {
                println!("A: init {} startup {:?}", sandbox.init_pid, sandbox.startup);
                let code = sandbox.wait_program(Duration::from_secs(180));
                let log = std::fs::read_to_string(&a_log).unwrap_or_default();
                let mut claims = 0;
                for line in log.lines() {
                    if let Some(rest) = line.strip_prefix("PASS ") {
                        claims += 1;
                        println!("PASS {rest}");
                    } else if let Some(rest) = line.strip_prefix("FAIL ") {
                        claims += 1;
                        println!("FAIL {rest}");
                        self.failures.push(rest.to_owned());
                    }
                }
                let outcome = match code {
                    Ok(_) if claims >= 30 => Ok(format!("{claims} claims reported")),
                    other => Err(format!(
                        "probe ended with {other:?} after {claims} claims; output:\n{log}"
                    )),
                };
                self.record("A's probe ran every attack", outcome);
            }
            Err(error) => self.record("A's sandbox starts", Err(error.to_string())),
        }
        let _ = jail::stop(&self.chats[a].name);

        self.check_tmux_from_host(b);
        self.check_enter(b);
        self.check_setup_errors(a);
        self.check_stop(b, &b_pids);
        self.check_daemonized_program(a);
        drop(host_listener);
        self.failures.clone()
    }

    /// The daemon (root, on the host) talks to a chat's tmux server by path.
    fn check_tmux_from_host(&mut self, b: usize) {
        let socket = self.chats[b].home.join(".picortex/tmux.sock");
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .arg("list-sessions")
            .output();
        self.record(
            "the host reaches a chat's tmux server by path",
            match out {
                Ok(out) if out.status.success() => {
                    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
                }
                other => Err(format!("{other:?}")),
            },
        );
    }

    /// The product's case: the program is a tmux client that exits once its server daemonized;
    /// `wait_program` gives the client's code and the sandbox lives on with the server.
    fn check_daemonized_program(&mut self, a: usize) {
        let socket = self.chats[a].home.join(".picortex/tmux.sock");
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        nix::unistd::chown(
            socket.parent().unwrap(),
            Some(self.chats[a].uid.into()),
            Some(self.chats[a].gid.into()),
        )
        .unwrap();
        let args = vec![
            "-S".into(),
            socket.to_string_lossy().into_owned(),
            "new-session".into(),
            "-d".into(),
            "sleep".into(),
            "60".into(),
        ];
        let spec = self.spec(a, "tmux", args);
        let outcome = jail::spawn(&spec)
            .map_err(|e| e.to_string())
            .and_then(|mut sandbox| {
                let code = sandbox
                    .wait_program(Duration::from_secs(10))
                    .map_err(|e| e.to_string())?;
                let alive = jail::running(&spec.name);
                if let Some(init) = alive {
                    let rss = |pid: i32| {
                        std::fs::read_to_string(format!("/proc/{pid}/status"))
                            .ok()
                            .and_then(|s| {
                                s.lines()
                                    .find(|l| l.starts_with("VmRSS:"))
                                    .map(str::to_owned)
                            })
                            .unwrap_or_default()
                    };
                    let members = jail::members(&spec.name).unwrap_or_default();
                    let all: Vec<String> =
                        members.iter().map(|&p| format!("{p} {}", rss(p))).collect();
                    println!("idle sandbox with a tmux server: init {init}; {all:?}");
                }
                let session = Command::new("tmux")
                    .arg("-S")
                    .arg(&socket)
                    .arg("has-session")
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                let stopped = jail::stop(&spec.name).map_err(|e| e.to_string());
                match (code, alive, session, stopped) {
                    (0, Some(init), true, Ok(())) if init == sandbox.init_pid => Ok(format!(
                        "client exited 0, sandbox {init} lived on with the server until stopped"
                    )),
                    other => Err(format!("{other:?}")),
                }
            });
        self.record("a daemonizing program (tmux) outlives its client; wait_program gives the client's code", outcome);
    }

    /// A second program in B's live sandbox sees B's hostname, home and processes, as B's user.
    fn check_enter(&mut self, b: usize) {
        let mut spec = self.spec(b, "/bin/sh", Vec::new()).program_spec();
        spec.args = vec![
            "-c".into(),
            "hostname; id -u; grep -E '^Sig(Ign|Blk)' /proc/self/status; ls -a \"$HOME\"; ls /proc | grep -c '^[0-9]'".into(),
        ];
        let (io, log) = self.log_io("enter");
        let outcome = jail::enter(&self.chats[b].name, &spec, io)
            .map_err(|e| e.to_string())
            .and_then(|mut entered| entered.wait().map_err(|e| e.to_string()))
            .and_then(|code| {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let ok = code == 0
                    && lines.first() == Some(&self.chats[b].name.as_str())
                    && lines.get(1) == Some(&self.chats[b].uid.to_string().as_str())
                    // A program starts with default handling of the standard signals (1..=31),
                    // whatever its launcher ignored (Rust ignores SIGPIPE).
                    && signal_mask(&text, "SigIgn:") & 0x7fff_ffff == 0
                    && signal_mask(&text, "SigBlk:") == 0
                    && text.contains("secret.txt");
                if ok {
                    Ok(format!(
                        "hostname, uid and home as B's; {} pids visible",
                        lines.last().unwrap_or(&"?")
                    ))
                } else {
                    Err(format!("exit {code}, output {text:?}"))
                }
            });
        self.record(
            "enter runs a program inside a live sandbox as its chat",
            outcome,
        );
    }

    fn check_setup_errors(&mut self, a: usize) {
        let spec = self.spec(a, "/nonexistent/program", Vec::new());
        let outcome = match jail::spawn(&spec) {
            Ok(_) => Err("spawn succeeded".into()),
            Err(error) => {
                let text = error.to_string();
                if text.contains("/nonexistent/program")
                    && jail::members(&spec.name).unwrap_or_default().is_empty()
                {
                    Ok(text)
                } else {
                    Err(format!("unclear error or leftovers: {text}"))
                }
            }
        };
        self.record(
            "an error before exec comes back to spawn, with nothing left running",
            outcome,
        );
        let mut root_spec = self.spec(a, "/bin/true", Vec::new());
        root_spec.uid = 0;
        self.record(
            "spawn refuses to run a chat as root",
            match jail::spawn(&root_spec) {
                Ok(_) => Err("spawned as root".into()),
                Err(e) => Ok(e.to_string()),
            },
        );
    }

    fn check_stop(&mut self, b: usize, b_pids: &[i32]) {
        let name = self.chats[b].name.clone();
        let started = Instant::now();
        let first = jail::stop(&name);
        let took = started.elapsed();
        let second = jail::stop(&name);
        let alive: Vec<i32> = b_pids
            .iter()
            .copied()
            .filter(|p| Path::new(&format!("/proc/{p}/cmdline")).exists() && !is_zombie(*p))
            .collect();
        let outcome = match (first, second) {
            (Ok(()), Ok(())) if jail::running(&name).is_none() && alive.is_empty() => {
                Ok(format!("stopped in {took:?}; second stop is a no-op"))
            }
            (first, second) => Err(format!("{first:?} {second:?}, still alive {alive:?}")),
        };
        self.record(
            "stop kills everything in a sandbox and is idempotent",
            outcome,
        );
    }

    /// A network namespace with listeners, reachable from the host over a veth pair (checked),
    /// so that A failing to reach them means something.
    fn start_foreign_network(&mut self) -> Egress {
        let hex = random_hex();
        let netns = format!("pcx-{hex}");
        run("ip", &["netns", "add", &netns]);
        self.netns = Some(netns.clone());
        let subnet = u8::from_str_radix(&hex[..2], 16).unwrap();
        let host_ip = format!("10.231.{subnet}.1");
        let ns_ip = format!("10.231.{subnet}.2");
        let (host_if, ns_if) = (format!("pcxh{hex}"), format!("pcxn{hex}"));
        run(
            "ip",
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &netns,
            ],
        );
        run(
            "ip",
            &["addr", "add", &format!("{host_ip}/30"), "dev", &host_if],
        );
        run("ip", &["link", "set", &host_if, "up"]);
        run(
            "ip",
            &[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{ns_ip}/30"),
                "dev",
                &ns_if,
            ],
        );
        run("ip", &["-n", &netns, "link", "set", &ns_if, "up"]);
        run("ip", &["-n", &netns, "link", "set", "lo", "up"]);

        let ns_path = format!("/run/netns/{netns}");
        let (tcp, udp, mptcp) = std::thread::spawn(move || {
            let ns = std::fs::File::open(&ns_path).unwrap();
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let tcp = TcpListener::bind("0.0.0.0:0").unwrap();
            let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
            let mptcp = mptcp_listener();
            (tcp, udp, mptcp)
        })
        .join()
        .unwrap();
        let egress = Egress {
            ip: ns_ip,
            tcp: tcp.local_addr().unwrap().port(),
            udp: udp.local_addr().unwrap().port(),
        };
        std::thread::spawn(move || {
            for mut conn in tcp.incoming().flatten() {
                let _ = conn.write_all(b"reached");
            }
        });
        std::thread::spawn(move || {
            let mut buffer = [0u8; 64];
            while let Ok((n, from)) = udp.recv_from(&mut buffer) {
                let _ = udp.send_to(&buffer[..n], from);
            }
        });
        // The controls: from the host, the listeners answer.
        let tcp_ok = TcpStream::connect_timeout(
            &format!("{}:{}", egress.ip, egress.tcp).parse().unwrap(),
            Duration::from_secs(2),
        )
        .is_ok();
        let udp_ok = {
            let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            socket
                .send_to(b"x", format!("{}:{}", egress.ip, egress.udp))
                .unwrap();
            socket.recv_from(&mut [0u8; 8]).is_ok()
        };
        let mptcp_ok = match &mptcp {
            Ok(port) => TcpStream::connect_timeout(
                &format!("{}:{port}", egress.ip).parse().unwrap(),
                Duration::from_secs(2),
            )
            .is_ok(),
            Err(_) => false,
        };
        self.record(
            "the foreign namespace's TCP and UDP listeners answer the host (control)",
            if tcp_ok && udp_ok {
                Ok(format!(
                    "{}:{} tcp, :{} udp",
                    egress.ip, egress.tcp, egress.udp
                ))
            } else {
                Err(format!("tcp {tcp_ok}, udp {udp_ok}"))
            },
        );
        match &mptcp {
            Ok(port) => self.record(
                "the foreign namespace's MPTCP listener answers the host (control)",
                if mptcp_ok {
                    Ok(format!("port {port}"))
                } else {
                    Err("no answer".into())
                },
            ),
            Err(e) => println!("SKIP MPTCP listener control: {e}"),
        }
        egress
    }
}

struct Egress {
    ip: String,
    tcp: u16,
    udp: u16,
}

/// A signal mask line of /proc/<pid>/status (`u64::MAX` when missing).
fn signal_mask(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(u64::MAX)
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// A stand-in for one of the daemon's sockets (the model gateway, its egress proxy): answers
/// `<prefix><request>`, so the probe can tell which socket its relay reached. (The proxy's own
/// decisions, from inside a real sandbox, are tested in the daemon's `tests/gateway.rs`.)
fn start_stand_in(socket: &Path, prefix: &'static [u8]) {
    let listener = UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut request = Vec::new();
                let _ = conn.read_to_end(&mut request);
                let _ = conn.write_all(prefix);
                let _ = conn.write_all(&request);
            });
        }
    });
}

/// An MPTCP listener on an ephemeral port, accepting in the background; its port.
#[allow(unsafe_code)]
fn mptcp_listener() -> Result<u16, String> {
    use std::os::fd::FromRawFd as _;
    // SAFETY: socket(2) with constant arguments; the descriptor is owned by the listener below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 262) };
    if fd < 0 {
        return Err(format!("MPTCP socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh stream socket owned by nothing else; TcpListener takes it over.
    let socket = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let address = nix::sys::socket::SockaddrIn::new(0, 0, 0, 0, 0);
    nix::sys::socket::bind(fd, &address).map_err(|e| e.to_string())?;
    nix::sys::socket::listen(&socket, nix::sys::socket::Backlog::new(16).unwrap())
        .map_err(|e| e.to_string())?;
    let listener = TcpListener::from(socket);
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(b"reached");
        }
    });
    Ok(port)
}
