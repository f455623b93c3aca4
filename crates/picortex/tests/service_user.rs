#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The production layout: `picortex-sandbox` runs as root and serves one service user; the
//! daemon (`picortex serve`) runs as that unprivileged user and does everything that touches a
//! chat's home through the helper. A text still gets its answer, the chat runs as its own user,
//! and the daemon's user cannot open the chat's home itself.
//!
//! Needs root (to make the service user and run the helper); prints SKIP otherwise.

mod common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(60);

/// A throwaway system user for the daemon, removed on drop.
struct ServiceUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl ServiceUser {
    fn create() -> ServiceUser {
        let name = format!(
            "pcx-svc-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let status = std::process::Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--user-group",
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ])
            .status()
            .unwrap();
        assert!(status.success(), "useradd {name}");
        let user = nix::unistd::User::from_name(&name).unwrap().unwrap();
        ServiceUser {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }
    }
}

impl ServiceUser {
    /// `program` run as this user, with only its own group (setpriv drops root's groups).
    fn command(&self, program: &Path) -> std::process::Command {
        let mut command = std::process::Command::new("setpriv");
        command
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .arg("--")
            .arg(program);
        command
    }
}

impl Drop for ServiceUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel")
            .arg(&self.name)
            .stderr(Stdio::null())
            .status();
    }
}

/// Kills the process on drop.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chown(path: &Path, user: &ServiceUser) {
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(user.uid)),
        Some(nix::unistd::Gid::from_raw(user.gid)),
    )
    .unwrap();
}

#[tokio::test]
async fn an_unprivileged_daemon_answers_through_the_helper() {
    if !nix::unistd::geteuid().is_root() {
        println!(
            "SKIP: the production layout needs root to make the service user and run the helper"
        );
        return;
    }
    if !have_tmux() {
        return;
    }
    let service = ServiceUser::create();
    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = base.path().join("data");
    let workspaces = base.path().join("chats");
    let helper_dir = base.path().join("helper");
    for dir in [&data, &workspaces, &helper_dir] {
        std::fs::create_dir(dir).unwrap();
    }
    chown(&data, &service);
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&helper_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _cleanup = Cleanup(workspaces.clone());

    // The helper, as systemd would run it: root, serving only the service user.
    let socket = helper_dir.join("sandbox.sock");
    let _helper = Running(
        std::process::Command::new(sandbox_bin())
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .arg("--allow-uid")
            .arg(service.uid.to_string())
            .arg("--group")
            .arg(&service.name)
            .arg("--workspace-root")
            .arg(&workspaces)
            .arg("--audit-log")
            .arg(helper_dir.join("audit.jsonl"))
            .arg("--hide")
            .arg(&data)
            .arg("--gateway-dir")
            .arg(data.join("run").join("gateway"))
            // A killed test must not leave a root helper behind.
            .arg("--exit-with-parent")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually(Duration::from_secs(10), "the helper's socket", || async {
        socket.exists().then_some(())
    })
    .await;

    // The daemon, as the service user.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sim = Sim::start(&format!("http://127.0.0.1:{port}/api/linq/inbound")).await;
    let config_path = data.join("picortex.toml");
    std::fs::write(
        &config_path,
        format!(
            "port = {port}\ndata_dir = {data:?}\nworkspace_root = {workspaces:?}\nagent = \"command\"\n\
             [agents]\ncommand = [\"cat\"]\nrunner_bin = {runner:?}\n\
             [isolation]\nmode = \"sandbox\"\nhelper_socket = {socket:?}\n\
             [linq]\napi_key = {key:?}\nbase_url = {url:?}\nwebhook_secret = {secret:?}\nphone = {BOT_LINE:?}\n",
            runner = runner_bin(),
            key = sim.api_key,
            url = sim.url(),
            secret = sim.secret.as_str(),
        ),
    )
    .unwrap();
    chown(&config_path, &service);
    let _daemon = Running(
        service
            .command(&picortex_bin())
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let health: serde_json::Value = eventually(WAIT, "the daemon's /health", || async {
        let resp = http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    })
    .await;
    assert_eq!(health["isolation"]["status"], "full", "{health}");
    println!(
        "PASS: the daemon runs as {} with isolation full",
        service.name
    );

    let (chat, _) = sim.dm("+15551239001", "hello from a phone").await;
    let reply = eventually(WAIT, "the reply", || async {
        sim.bot_messages(&chat).await.first().map(text_of)
    })
    .await;
    assert_eq!(reply, "hello from a phone");
    println!("PASS: a text is answered by an unprivileged daemon through the helper");

    let home = chat_home(&workspaces, &chat);
    let meta = std::fs::metadata(&home).unwrap();
    let owner = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(meta.uid()))
        .unwrap()
        .unwrap();
    assert!(owner.name.starts_with("chat-"), "{}", owner.name);
    assert_ne!(meta.uid(), service.uid);
    assert_eq!(meta.mode() & 0o777, 0o700);
    println!(
        "PASS: the chat's home belongs to its own user {} (0700)",
        owner.name
    );

    // The daemon's user cannot open the chat's home by itself.
    let probe = service
        .command(Path::new("ls"))
        .arg(&home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!probe.success(), "the service user listed the chat's home");
    println!("PASS: the service user cannot list the chat's home");

    // The agent's system prompt was written as the chat's user, through the helper.
    let prompt = std::fs::metadata(home.join(".picortex/system-prompt.md")).unwrap();
    assert_eq!(prompt.uid(), meta.uid());
    println!("PASS: picortex's files in the home are written as the chat's user");
}
