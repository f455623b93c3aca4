#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The helper's `Archive` op and the restore inside `Provision`, as root: the real
//! `picortex-sandbox serve` with `--archive-dir`. Archiving removes the home, user and group and
//! leaves a root-owned 0600 archive; provisioning brings the chat back (under a different uid
//! when the old one was taken) with its files owned by the chat's name; a truncated archive is
//! refused with `ArchiveDamaged`, left as it was, and creates no user and no home.

use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use picortex_sandbox::archive::archive_path;
use picortex_sandbox::client::{ClientError, HelperClient};
use picortex_sandbox::protocol::{ErrorKind, HelperError};

struct Helper {
    dir: tempfile::TempDir,
    child: Child,
    users: Vec<String>,
}

impl Helper {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_picortex-sandbox"))
            .arg("serve")
            .arg("--socket")
            .arg(dir.path().join("helper.sock"))
            .args(["--allow-uid", "0"])
            .arg("--workspace-root")
            .arg(dir.path().join("chats"))
            .arg("--audit-log")
            .arg(dir.path().join("audit.log"))
            .arg("--archive-dir")
            .arg(dir.path().join("archive"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let helper = Self {
            dir,
            child,
            users: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while HelperClient::connect(helper.dir.path().join("helper.sock")).is_err() {
            assert!(Instant::now() < deadline, "the helper did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        helper
    }

    fn client(&self) -> HelperClient {
        HelperClient::connect(self.dir.path().join("helper.sock")).unwrap()
    }

    fn archive_dir(&self) -> PathBuf {
        self.dir.path().join("archive")
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for name in &self.users {
            let _ = Command::new("userdel").arg("--").arg(name).status();
            let _ = Command::new("groupdel").arg("--").arg(name).status();
        }
    }
}

fn user_uid(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

#[test]
fn archive_then_provision_restores_and_a_truncated_archive_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let mut helper = Helper::start();
    let client = helper.client();
    let chat_id = format!("test-archive-{}", std::process::id());
    let chat = client.provision(&chat_id, Vec::new()).unwrap();
    helper.users.push(chat.name.clone());
    client
        .write_file(&chat_id, "notes/todo.txt", "keep me\n")
        .unwrap();
    let old_uid = chat.uid;

    let started = Instant::now();
    let archive = client.archive(&chat_id).unwrap().expect("archived");
    let archive_time = started.elapsed();
    assert_eq!(archive, archive_path(&helper.archive_dir(), &chat.name));
    let meta = std::fs::metadata(&archive).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.uid()), (0o600, 0));
    assert!(!chat.home.exists(), "the home is removed");
    assert_eq!(user_uid(&chat.name), None, "the user is removed");
    assert_eq!(
        client.archive(&chat_id).unwrap(),
        None,
        "archiving twice is a no-op"
    );

    // Take the old uid so the restore must use another one.
    let filler = format!("pcxfill{}", std::process::id());
    let took = Command::new("useradd")
        .args([
            "--no-create-home",
            "--uid",
            &old_uid.to_string(),
            "--",
            &filler,
        ])
        .status()
        .unwrap()
        .success();
    helper.users.push(filler.clone());

    let started = Instant::now();
    let restored = client.provision(&chat_id, Vec::new()).unwrap();
    let restore_time = started.elapsed();
    eprintln!("helper archive {archive_time:?}, restore {restore_time:?}");
    assert_eq!(restored.name, chat.name);
    assert_eq!(restored.home, chat.home);
    if took {
        assert_ne!(restored.uid, old_uid, "the old uid was taken");
    }
    assert!(
        !archive.exists(),
        "the archive is removed once the home is back"
    );
    let todo = chat.home.join("notes/todo.txt");
    assert_eq!(std::fs::read_to_string(&todo).unwrap(), "keep me\n");
    assert_eq!(std::fs::metadata(&todo).unwrap().uid(), restored.uid);
    assert_eq!(std::fs::metadata(&chat.home).unwrap().uid(), restored.uid);
    let log = Command::new("git")
        .args(["-C"])
        .arg(&chat.home)
        .args(["-c", "safe.directory=*", "log", "--oneline"])
        .output()
        .unwrap();
    assert!(
        log.status.success() && !log.stdout.is_empty(),
        "git history survives"
    );

    // Damaged: archive again, cut the archive in half, provision.
    let archive = client.archive(&chat_id).unwrap().expect("archived");
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
    let error = client.provision(&chat_id, Vec::new()).unwrap_err();
    match &error {
        ClientError::Helper(HelperError { kind, .. }) => {
            assert_eq!(*kind, ErrorKind::ArchiveDamaged, "{error}")
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(std::fs::read(&archive).unwrap(), bytes[..bytes.len() / 2]);
    assert!(!chat.home.exists(), "no empty home is made");
    assert_eq!(user_uid(&chat.name), None, "no user is left behind");
}
