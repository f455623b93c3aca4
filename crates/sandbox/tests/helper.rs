#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The privileged helper end to end, as root: the real `picortex-sandbox serve` binary on a
//! temporary socket and workspace root, driven through `HelperClient`. Each claim prints
//! PASS/FAIL/SKIP; without root every claim is skipped. Users made here are removed even when
//! a claim fails.

use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use picortex_sandbox::client::{ClientError, HelperClient};
use picortex_sandbox::ids;
use picortex_sandbox::protocol::{ErrorKind, HelperError, SeedFile};

const CLAIMS: &[&str] = &[
    "provision creates the user, a 0700 home it owns, and the seed commit",
    "provisioning again returns the same chat",
    "another uid is refused (and audited)",
    "malformed chat ids are refused and create nothing",
    "a provisioning that fails midway leaves no user, group or home",
    "open_file reads a file beneath the home",
    "open_file refuses '..', absolute paths and symlinks out of the home",
    "connect_runner returns a socket connected to the home's runner listener",
    "copy_file copies between chats, owned by the target, no silent overwrite",
    "start_sandbox runs the chat's tmux server once; attach gives its terminal; stop ends it",
    "destroy removes the user, group and home (and is idempotent)",
    "provisioning time over 20 chats",
    "8 chats provisioned at once on 8 connections all succeed",
    "a chat whose user was deleted by hand is repaired by provisioning it again",
];

struct Report {
    failures: Vec<String>,
}

impl Report {
    fn claim(&mut self, name: &str, result: Result<String, String>) {
        match result {
            Ok(detail) => println!("PASS {name}{}", suffix(&detail)),
            Err(why) => {
                println!("FAIL {name}: {why}");
                self.failures.push(format!("{name}: {why}"));
            }
        }
    }
}

fn suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

/// The helper process and every chat id used; cleans both up on drop.
struct Harness {
    dir: tempfile::TempDir,
    child: Child,
    chat_ids: Vec<String>,
}

impl Harness {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Traversable by `nobody`, so its refusal comes from the peer check, not the filesystem.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("helper.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_picortex-sandbox"))
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .args(["--allow-uid", "0", "--group", nobody_group()])
            .arg("--workspace-root")
            .arg(dir.path().join("chats"))
            .arg("--audit-log")
            .arg(dir.path().join("audit.log"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let harness = Self {
            dir,
            child,
            chat_ids: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while HelperClient::connect(harness.socket()).is_err() {
            assert!(Instant::now() < deadline, "the helper did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        harness
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("helper.sock")
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("chats")
    }

    fn client(&self) -> HelperClient {
        HelperClient::connect(self.socket()).unwrap()
    }

    fn chat(&mut self, label: &str) -> String {
        let id = format!(
            "test-{label}-{}-{}",
            std::process::id(),
            self.chat_ids.len()
        );
        self.chat_ids.push(id.clone());
        id
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for id in &self.chat_ids {
            for n in 0..3 {
                let name = ids::chat_name_with_suffix(id, n);
                if user_exists(&name) {
                    let _ = Command::new("userdel").arg("--").arg(&name).status();
                }
                if group_exists(&name) {
                    let _ = Command::new("groupdel").arg("--").arg(&name).status();
                }
            }
        }
    }
}

fn nobody_group() -> &'static str {
    if group_exists("nogroup") {
        "nogroup"
    } else {
        "nobody"
    }
}

fn user_exists(name: &str) -> bool {
    nix::unistd::User::from_name(name).ok().flatten().is_some()
}

fn group_exists(name: &str) -> bool {
    nix::unistd::Group::from_name(name).ok().flatten().is_some()
}

fn helper_kind(e: &ClientError) -> Option<ErrorKind> {
    match e {
        ClientError::Helper(HelperError { kind, .. }) => Some(*kind),
        _ => None,
    }
}

fn read_fd(fd: OwnedFd) -> String {
    let mut text = String::new();
    std::fs::File::from(fd).read_to_string(&mut text).unwrap();
    text
}

fn passwd_lines() -> usize {
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .count()
}

fn dir_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn ensure(cond: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(why()) }
}

#[test]
fn helper_end_to_end() {
    if !nix::unistd::Uid::effective().is_root() {
        for claim in CLAIMS {
            println!("SKIP {claim}: needs root");
        }
        return;
    }
    let mut h = Harness::start();
    let mut report = Report {
        failures: Vec::new(),
    };
    let client = h.client();
    let seed = vec![SeedFile {
        path: ".picortex/prompts/discriminator.md".into(),
        contents: "Answer when asked.\n".into(),
    }];

    // 1. Provision.
    let chat_a = h.chat("a");
    let first = client.provision(&chat_a, seed.clone());
    report.claim(
        CLAIMS[0],
        (|| {
            let p = first.as_ref().map_err(|e| e.to_string())?;
            ensure(p.created, || "created is false".into())?;
            ensure(p.name == ids::chat_dir_name(&chat_a), || {
                format!("name {}", p.name)
            })?;
            let user = nix::unistd::User::from_name(&p.name)
                .unwrap()
                .ok_or("no such user")?;
            ensure(user.uid.as_raw() == p.uid, || "uid differs".into())?;
            ensure(user.shell.ends_with("nologin"), || {
                format!("shell {}", user.shell.display())
            })?;
            ensure(group_exists(&p.name), || "no group".into())?;
            let meta = std::fs::metadata(&p.home).map_err(|e| e.to_string())?;
            ensure(meta.mode() & 0o7777 == 0o700, || {
                format!("mode {:o}", meta.mode())
            })?;
            ensure(meta.uid() == p.uid && meta.gid() == p.gid, || {
                "home not owned by the chat".into()
            })?;
            for sub in [".picortex/turns", ".picortex/prompts", ".tmp", ".gitignore"] {
                ensure(p.home.join(sub).exists(), || format!("{sub} missing"))?;
            }
            let marker = std::fs::read_to_string(p.home.join(".picortex/chat_id"))
                .map_err(|e| e.to_string())?;
            ensure(marker == chat_a, || format!("marker {marker:?}"))?;
            let log = Command::new("git")
                .arg("-C")
                .arg(&p.home)
                .args(["log", "--name-only", "--format=%s"])
                .env("HOME", &p.home)
                .uid(p.uid)
                .gid(p.gid)
                .output()
                .map_err(|e| e.to_string())?;
            let log = String::from_utf8_lossy(&log.stdout).into_owned();
            ensure(
                log.contains(".picortex/prompts/discriminator.md") && log.contains(".gitignore"),
                || format!("git log: {log:?}"),
            )?;
            Ok(format!("{} uid {}", p.name, p.uid))
        })(),
    );
    let Ok(a) = first else {
        panic!("provisioning failed; the remaining claims need a chat");
    };

    // 2. Idempotent.
    report.claim(
        CLAIMS[1],
        match client.provision(&chat_a, seed.clone()) {
            Ok(again) if !again.created && again.uid == a.uid && again.home == a.home => {
                Ok(String::new())
            }
            Ok(again) => Err(format!("{again:?}")),
            Err(e) => Err(e.to_string()),
        },
    );

    // 3. Another uid.
    report.claim(CLAIMS[2], refused_as_nobody(&h));

    // 4. Malformed ids.
    let before_users = passwd_lines();
    let before_dirs = dir_entries(&h.root());
    let long = "a".repeat(1000);
    let mut malformed = Ok(String::new());
    for bad in ["../x", "a;b", "", long.as_str(), "a\0b"] {
        match client.provision(bad, Vec::new()) {
            Err(e) if helper_kind(&e) == Some(ErrorKind::InvalidArgument) => {
                println!("  {:?}: {e}", &bad[..bad.len().min(12)]);
            }
            other => {
                malformed = Err(format!("{bad:?} gave {other:?}"));
                break;
            }
        }
        if let Err(e) = client.open_file(bad, "x")
            && helper_kind(&e) != Some(ErrorKind::InvalidArgument)
        {
            malformed = Err(format!("open_file {bad:?} gave {e}"));
            break;
        }
    }
    if malformed.is_ok()
        && (passwd_lines() != before_users || dir_entries(&h.root()) != before_dirs)
    {
        malformed = Err("something was created".into());
    }
    report.claim(CLAIMS[3], malformed);

    // 5. Rollback: the second seed file needs `a` to be a directory, but the first made it a file.
    let chat_r = h.chat("rollback");
    let broken = vec![
        SeedFile {
            path: "a".into(),
            contents: "file".into(),
        },
        SeedFile {
            path: "a/b".into(),
            contents: "under a file".into(),
        },
    ];
    let name_r = ids::chat_dir_name(&chat_r);
    report.claim(
        CLAIMS[4],
        match client.provision(&chat_r, broken) {
            Err(e) if helper_kind(&e).is_some() => {
                let leftovers: Vec<&str> = [
                    ("user", user_exists(&name_r)),
                    ("group", group_exists(&name_r)),
                    ("home", h.root().join(&name_r).exists()),
                ]
                .into_iter()
                .filter_map(|(what, left)| left.then_some(what))
                .collect();
                ensure(leftovers.is_empty(), || {
                    format!("left behind: {leftovers:?}")
                })
                .map(|()| e.to_string())
            }
            other => Err(format!("{other:?}")),
        },
    );

    // 5. open_file.
    let notes = a.home.join("notes");
    std::fs::create_dir(&notes).unwrap();
    std::fs::write(notes.join("hello.txt"), "hello from a\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", a.home.join("escape")).unwrap();
    std::os::unix::fs::symlink("/etc", a.home.join("etc-link")).unwrap();
    for p in [
        &notes,
        &notes.join("hello.txt"),
        &a.home.join("escape"),
        &a.home.join("etc-link"),
    ] {
        std::os::unix::fs::lchown(p, Some(a.uid), Some(a.gid)).unwrap();
    }
    report.claim(
        CLAIMS[5],
        match client.open_file(&chat_a, "notes/hello.txt") {
            Ok((fd, size)) => {
                let text = read_fd(fd);
                ensure(text == "hello from a\n" && size == 13, || {
                    format!("{text:?} {size}")
                })
                .map(|()| String::new())
            }
            Err(e) => Err(e.to_string()),
        },
    );
    let mut escapes = Ok(String::new());
    for bad in [
        "../x",
        "/etc/passwd",
        "escape",
        "etc-link/passwd",
        "notes/../../x",
        ".",
        "notes",
    ] {
        match client.open_file(&chat_a, bad) {
            Err(e) if helper_kind(&e) == Some(ErrorKind::PathRefused) => {
                println!("  {bad:?}: {e}");
            }
            other => {
                escapes = Err(format!("{bad:?} gave {:?}", other.map(|(_, s)| s)));
                break;
            }
        }
    }
    report.claim(CLAIMS[6], escapes);

    // 6. connect_runner.
    report.claim(CLAIMS[7], connect_runner_claim(&client, &chat_a, &a));

    // 7. copy_file.
    let chat_b = h.chat("b");
    report.claim(
        CLAIMS[8],
        (|| {
            let b = client
                .provision(&chat_b, seed.clone())
                .map_err(|e| e.to_string())?;
            let bytes = client
                .copy_file(
                    &chat_a,
                    "notes/hello.txt",
                    &chat_b,
                    "inbox/hello.txt",
                    false,
                )
                .map_err(|e| e.to_string())?;
            let target = b.home.join("inbox/hello.txt");
            let meta = std::fs::symlink_metadata(&target).map_err(|e| e.to_string())?;
            ensure(meta.uid() == b.uid && meta.gid() == b.gid, || {
                format!("owned by {}:{}", meta.uid(), meta.gid())
            })?;
            let text = std::fs::read_to_string(&target).map_err(|e| e.to_string())?;
            ensure(bytes == 13 && text == "hello from a\n", || {
                format!("{bytes} {text:?}")
            })?;
            match client.copy_file(
                &chat_a,
                "notes/hello.txt",
                &chat_b,
                "inbox/hello.txt",
                false,
            ) {
                Err(e) if helper_kind(&e) == Some(ErrorKind::AlreadyExists) => {}
                other => return Err(format!("second copy without overwrite gave {other:?}")),
            }
            client
                .copy_file(&chat_a, "notes/hello.txt", &chat_b, "inbox/hello.txt", true)
                .map_err(|e| e.to_string())?;
            match client.copy_file(&chat_a, "escape", &chat_b, "stolen", false) {
                Err(e) if helper_kind(&e) == Some(ErrorKind::PathRefused) => {}
                other => return Err(format!("copying a symlink gave {other:?}")),
            }
            match client.copy_file(
                &chat_a,
                "notes/hello.txt",
                &chat_b,
                ".picortex/chat_id",
                true,
            ) {
                Err(e) if helper_kind(&e) == Some(ErrorKind::PathRefused) => {}
                other => return Err(format!("copying over the marker gave {other:?}")),
            }
            Ok(String::new())
        })(),
    );

    // 8. The sandbox: start (twice), attach, stop (twice).
    report.claim(CLAIMS[9], sandbox_claim(&client, &chat_a, &a));

    // 9. destroy.
    report.claim(
        CLAIMS[10],
        (|| {
            let existed = client.destroy(&chat_a).map_err(|e| e.to_string())?;
            ensure(existed, || "existed is false".into())?;
            ensure(!user_exists(&a.name), || "user still exists".into())?;
            ensure(!group_exists(&a.name), || "group still exists".into())?;
            ensure(!a.home.exists(), || "home still exists".into())?;
            let again = client.destroy(&chat_a).map_err(|e| e.to_string())?;
            ensure(!again, || "second destroy says it existed".into())?;
            let status = client.status(&chat_a).map_err(|e| e.to_string())?;
            ensure(status.name.is_none(), || format!("{status:?}"))?;
            client.destroy(&chat_b).map_err(|e| e.to_string())?;
            Ok(String::new())
        })(),
    );

    // 9. Timing.
    let mut times = Vec::new();
    let mut timing = Ok(String::new());
    let batch: Vec<String> = (0..20).map(|i| h.chat(&format!("t{i}"))).collect();
    for id in &batch {
        let started = Instant::now();
        if let Err(e) = client.provision(id, seed.clone()) {
            timing = Err(e.to_string());
            break;
        }
        times.push(started.elapsed());
    }
    for id in &batch {
        let _ = client.destroy(id);
    }
    if timing.is_ok() {
        times.sort();
        let p50 = times[times.len() / 2];
        let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
        timing = Ok(format!(
            "p50 {:.1} ms, p99 {:.1} ms, n = {}",
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0,
            times.len()
        ));
    }
    report.claim(CLAIMS[11], timing);

    // Concurrency: one connection per thread, all at once.
    let batch: Vec<String> = (0..8).map(|i| h.chat(&format!("p{i}"))).collect();
    let socket = h.socket();
    let results: Vec<Result<u32, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = batch
            .iter()
            .map(|id| {
                let socket = socket.clone();
                let seed = seed.clone();
                scope.spawn(move || {
                    let client = HelperClient::connect(&socket).map_err(|e| e.to_string())?;
                    client
                        .provision(id, seed)
                        .map(|p| p.uid)
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut uids: Vec<u32> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    uids.sort_unstable();
    uids.dedup();
    report.claim(
        CLAIMS[12],
        if uids.len() == batch.len() {
            Ok(String::new())
        } else {
            Err(format!("{results:?}"))
        },
    );
    for id in &batch {
        let _ = client.destroy(id);
    }

    // Repair: the user vanishes, the home stays; provisioning again recreates the user.
    let chat_c = h.chat("c");
    report.claim(
        CLAIMS[13],
        (|| {
            let c = client
                .provision(&chat_c, seed.clone())
                .map_err(|e| e.to_string())?;
            let status = Command::new("userdel")
                .arg("--")
                .arg(&c.name)
                .status()
                .map_err(|e| e.to_string())?;
            ensure(status.success(), || "userdel failed".into())?;
            match client.open_file(&chat_c, ".gitignore") {
                Err(e) if helper_kind(&e) == Some(ErrorKind::System) => {}
                other => return Err(format!("without its user: {:?}", other.map(|(_, s)| s))),
            }
            let again = client
                .provision(&chat_c, seed.clone())
                .map_err(|e| e.to_string())?;
            ensure(!again.created && user_exists(&again.name), || {
                format!("{again:?}")
            })?;
            let meta =
                std::fs::metadata(again.home.join(".picortex/turns")).map_err(|e| e.to_string())?;
            ensure(meta.uid() == again.uid, || "home not given back".into())?;
            client
                .open_file(&chat_c, ".gitignore")
                .map_err(|e| e.to_string())?;
            client.destroy(&chat_c).map_err(|e| e.to_string())?;
            Ok(String::new())
        })(),
    );

    let audit = std::fs::read_to_string(h.dir.path().join("audit.log")).unwrap();
    println!("audit log: {} lines, e.g.", audit.lines().count());
    for line in audit
        .lines()
        .filter(|l| l.contains("\"op\":\"provision\""))
        .take(1)
    {
        println!("  {line}");
    }
    for line in audit.lines().filter(|l| l.contains("forbidden")).take(1) {
        println!("  {line}");
    }
    drop(client);
    drop(h);
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
}

/// A child process that becomes `nobody` and asks for a provision must be refused, and the
/// refusal must be in the audit log.
fn refused_as_nobody(h: &Harness) -> Result<String, String> {
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .ok_or("no nobody user")?;
    let socket = h.socket();
    let addr = nix::sys::socket::UnixAddr::new(socket.as_path()).unwrap();
    let request = br#"{"op":"provision","chat_id":"nobody-was-here"}"#;
    // Everything the child needs is prepared before fork; the child only makes system calls.
    // SAFETY: the child calls only async-signal-safe system calls (setgroups, setgid, setuid,
    // socket, connect, send, recv) on pre-built data and leaves with `_exit`.
    #[allow(unsafe_code)]
    let fork = unsafe { nix::unistd::fork() }.map_err(|e| e.to_string())?;
    match fork {
        nix::unistd::ForkResult::Child => {
            // Exit codes: 0 refused, 3 answered without a refusal, 10+ the step that failed.
            let code = (|| -> Result<i32, i32> {
                nix::unistd::setgroups(&[]).map_err(|_| 10)?;
                nix::unistd::setgid(nobody.gid).map_err(|_| 11)?;
                nix::unistd::setuid(nobody.uid).map_err(|_| 12)?;
                let sock = nix::sys::socket::socket(
                    nix::sys::socket::AddressFamily::Unix,
                    nix::sys::socket::SockType::SeqPacket,
                    nix::sys::socket::SockFlag::empty(),
                    None,
                )
                .map_err(|_| 13)?;
                nix::sys::socket::connect(sock.as_raw_fd(), &addr).map_err(|e| 20 + e as i32)?;
                // The helper answers a refused peer before reading anything.
                let _ = nix::sys::socket::send(
                    sock.as_raw_fd(),
                    request,
                    nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
                );
                let mut buf = [0u8; 512];
                let n = nix::sys::socket::recv(
                    sock.as_raw_fd(),
                    &mut buf,
                    nix::sys::socket::MsgFlags::empty(),
                )
                .map_err(|e| 100 + e as i32)?;
                let needle = b"\"forbidden\"";
                let found = buf[..n].windows(needle.len()).any(|w| w == needle);
                Ok(if found { 0 } else { 3 })
            })()
            .unwrap_or_else(|step| step);
            // SAFETY: leaving the forked child without running the parent's destructors.
            #[allow(unsafe_code)]
            unsafe {
                libc::_exit(code)
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let status = nix::sys::wait::waitpid(child, None).map_err(|e| e.to_string())?;
            ensure(
                matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
                || {
                    format!(
                        "child as nobody: {status:?} (3: not refused, 10-19: a step, 20+errno: connect, 100+errno: recv)"
                    )
                },
            )?;
            ensure(!user_exists(&ids::chat_dir_name("nobody-was-here")), || {
                "the refused request was carried out".into()
            })?;
            let audit = std::fs::read_to_string(h.dir.path().join("audit.log"))
                .map_err(|e| e.to_string())?;
            let line = audit
                .lines()
                .find(|l| l.contains(&format!("\"peer_uid\":{}", nobody.uid)))
                .ok_or("no audit line for the refused peer")?;
            ensure(line.contains("forbidden"), || line.to_owned())?;
            Ok(format!("uid {}", nobody.uid))
        }
    }
}

fn connect_runner_claim(
    client: &HelperClient,
    chat_id: &str,
    chat: &picortex_sandbox::client::Provisioned,
) -> Result<String, String> {
    match client.connect_runner(chat_id) {
        Err(e) if helper_kind(&e) == Some(ErrorKind::NotFound) => {}
        other => return Err(format!("no listener yet gave {:?}", other.map(|_| ()))),
    }
    let path = chat.home.join(".picortex/runner.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).map_err(|e| e.to_string())?;
    std::os::unix::fs::lchown(&path, Some(chat.uid), Some(chat.gid)).map_err(|e| e.to_string())?;
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(b"runner here\n").unwrap();
        let mut got = [0u8; 4];
        conn.read_exact(&mut got).unwrap();
        got
    });
    let fd = client.connect_runner(chat_id).map_err(|e| e.to_string())?;
    let mut stream = std::os::unix::net::UnixStream::from(fd);
    stream.write_all(b"ping").map_err(|e| e.to_string())?;
    let mut line = [0u8; 12];
    stream.read_exact(&mut line).map_err(|e| e.to_string())?;
    let got = server.join().map_err(|_| "listener thread panicked")?;
    ensure(&line == b"runner here\n" && &got == b"ping", || {
        format!("{line:?} {got:?}")
    })?;
    // A symlink in place of the socket must not be followed.
    std::fs::remove_file(&path).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink("/run/systemd/private", &path).map_err(|e| e.to_string())?;
    match client.connect_runner(chat_id) {
        Err(e) if helper_kind(&e) == Some(ErrorKind::PathRefused) => Ok(String::new()),
        other => Err(format!(
            "a symlinked runner socket gave {:?}",
            other.map(|_| ())
        )),
    }
}

fn sandbox_claim(
    client: &HelperClient,
    chat_id: &str,
    chat: &picortex_sandbox::client::Provisioned,
) -> Result<String, String> {
    let tmux = ["/usr/bin/tmux", "/usr/local/bin/tmux"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("tmux is not installed")?;
    let socket = chat.home.join(".picortex/tmux.sock");
    let args: Vec<String> = vec![
        "-S".into(),
        socket.to_string_lossy().into_owned(),
        "new-session".into(),
        "-d".into(),
        "-s".into(),
        "picortex".into(),
        "-x".into(),
        "80".into(),
        "-y".into(),
        "24".into(),
        "--".into(),
        "/bin/sh".into(),
        "-c".into(),
        "echo sandboxed-hello; sleep 600".into(),
    ];
    let started = Instant::now();
    let (init_pid, code) = client
        .start_sandbox(
            chat_id,
            PathBuf::from(tmux),
            args.clone(),
            Vec::new(),
            Vec::new(),
        )
        .map_err(|e| e.to_string())?;
    let start_ms = started.elapsed().as_secs_f64() * 1000.0;
    ensure(code == Some(0), || {
        format!("tmux new-session exited {code:?}")
    })?;
    let (again_pid, again_code) = client
        .start_sandbox(chat_id, PathBuf::from(tmux), args, Vec::new(), Vec::new())
        .map_err(|e| e.to_string())?;
    ensure(again_pid == init_pid && again_code.is_none(), || {
        format!("second start: {again_pid} {again_code:?} (first {init_pid})")
    })?;
    let status = client.status(chat_id).map_err(|e| e.to_string())?;
    ensure(status.init_pid == Some(init_pid), || format!("{status:?}"))?;
    let (master, attach_pid) = client
        .attach(chat_id, true, 80, 24)
        .map_err(|e| e.to_string())?;
    let mut terminal = std::fs::File::from(master);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = terminal.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains("sandboxed-hello") {
                let _ = tx.send(true);
                return;
            }
        }
        let _ = tx.send(false);
    });
    let saw = rx.recv_timeout(Duration::from_secs(10)).unwrap_or(false);
    ensure(saw, || {
        "the attached terminal never showed the session".into()
    })?;
    let was_running = client.stop(chat_id).map_err(|e| e.to_string())?;
    ensure(was_running, || "stop says it was not running".into())?;
    let again = client.stop(chat_id).map_err(|e| e.to_string())?;
    ensure(!again, || "second stop says it was running".into())?;
    ensure(
        !Path::new(&format!("/proc/{attach_pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{attach_pid}/status"))
                .map(|s| s.contains("State:\tZ"))
                .unwrap_or(true),
        || format!("the attach {attach_pid} outlived the stop"),
    )?;
    Ok(format!("init {init_pid}, start {start_ms:.0} ms"))
}
