#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The lifecycle when things go wrong, and the owner's hands on it:
//! * a damaged archive reached by a message: the chat is marked failed, the owner is told once,
//!   the archive is left as it was, and `destroy` starts the chat afresh;
//! * the owner API and the `picortex chat …` commands move a chat through every state;
//! * the daemon SIGKILLed in the middle of hibernating, archiving and restoring, then
//!   restarted: the chat ends in a consistent state and no message is lost or answered twice;
//! * as root, the sandbox helper SIGKILLed in the middle of hibernating, archiving and
//!   restoring: the daemon starts a new helper and the chat comes through whole.
//!
//! As root the chats run in the sandbox (their own users, through the helper); without root
//! the daemon archives its own directories, and the helper test prints SKIP.

mod common;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);
const TOKEN: &str = "owner-api-test-token-0123456789";

/// The chat's state, read from the database file (the daemon may be another process).
fn state_in(db: &Path, chat_id: &str) -> Option<String> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row("SELECT state FROM chats WHERE id = ?1", [chat_id], |r| {
        r.get(0)
    })
    .ok()
}

async fn wait_for_state(db: &Path, chat_id: &str, wanted: &[&str]) -> String {
    eventually(WAIT, &format!("state {wanted:?}"), || async {
        state_in(db, chat_id).filter(|s| wanted.contains(&s.as_str()))
    })
    .await
}

/// `POST /api/chats/{chat}/lifecycle`; the status and the JSON body.
async fn lifecycle(base: &str, chat_id: &str, action: &str, token: &str) -> (u16, Value) {
    try_lifecycle(base, chat_id, action, token)
        .await
        .expect("the lifecycle API answered")
}

/// The same, for a request the test kills the daemon under (no answer is fine).
async fn try_lifecycle(
    base: &str,
    chat_id: &str,
    action: &str,
    token: &str,
) -> Option<(u16, Value)> {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/chats/{chat_id}/lifecycle"))
        .bearer_auth(token)
        .json(&json!({ "action": action }))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

/// Waits until a (re)started daemon answers `/health`.
async fn ready(base: &str) {
    eventually(WAIT, "the daemon to answer", || async {
        let r = reqwest::get(format!("{base}/health")).await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
}

/// Fills the chat's home with `bytes` of incompressible data (owned by the home's owner, so a
/// restore hands it to the chat's new user), making archiving take a while; returns its digest.
fn fill_home(home: &Path, bytes: u64) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let noise: Vec<u8> = (0..bytes)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect();
    let path = home.join("noise.bin");
    std::fs::write(&path, &noise).unwrap();
    let owner = std::fs::metadata(home).unwrap();
    std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
    digest(&path).unwrap()
}

fn digest(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

/// What a crashed transition could leave beside the homes and archives; none may outlive the
/// recovery.
fn leftovers(root: &Path, archive_dir: &Path) -> Vec<String> {
    [root, archive_dir]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.ends_with(".partial") || n.ends_with(".removing") || n.ends_with(".restoring")
        })
        .collect()
}

/// Whether the chat's processes run: its jail (sandboxed) or its tmux server.
fn chat_running(home: &Path) -> bool {
    let name = home.file_name().unwrap().to_string_lossy().into_owned();
    picortex_sandbox::jail::running(&name).is_some()
        || picortex::workspace::Tmux::for_home(home).has_session()
}

/// An in-process daemon with the `cat` command agent, the owner API on and its archives in
/// `<root>/archive`, its chats under a temporary root that is cleaned up at the end.
struct Fixture {
    // Dropped in this order: the daemon (and its helper), then the chats, then the directory.
    stack: Stack,
    _cleanup: Cleanup,
    root: tempfile::TempDir,
    archive_dir: PathBuf,
}

impl Fixture {
    async fn start(tweak: impl FnOnce(&mut picortex::config::Config)) -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let archive_dir = root.path().join("archive");
        let stack = Stack::start_with(|c| {
            use_command_agent(c, root.path(), &["cat"]);
            c.api_token = Some(TOKEN.into());
            c.lifecycle.archive_dir = Some(archive_dir.clone());
            tweak(c);
        })
        .await;
        Fixture {
            stack,
            _cleanup: Cleanup(root.path().to_owned()),
            root,
            archive_dir,
        }
    }

    fn base(&self) -> String {
        self.stack.daemon.base_url()
    }

    fn db(&self) -> PathBuf {
        self.stack.data.path().join("picortex.db")
    }

    /// A DM from `texter` answered once; the chat and its home.
    async fn answered_chat(&self, texter: &str) -> (String, PathBuf) {
        let (chat, _) = self.stack.sim.dm(texter, "hello").await;
        assert_eq!(replies(&self.stack.sim, &chat, 1).await, vec!["hello"]);
        let home = chat_home(self.root.path(), &chat);
        (chat, home)
    }
}

#[tokio::test]
async fn a_damaged_archive_fails_the_chat_tells_the_owner_once_and_destroy_starts_afresh() {
    if !have_tmux() {
        return;
    }
    let owner = "+15551250001";
    let fx = Fixture::start(|c| c.owner = Some(owner.into())).await;
    let (stack, base, db) = (&fx.stack, fx.base(), fx.db());
    let (owner_dm, _) = stack.sim.dm(owner, "hi").await;
    assert_eq!(replies(&stack.sim, &owner_dm, 1).await, vec!["hi"]);
    let texter = "+15551250002";
    let (chat, _) = fx.answered_chat(texter).await;

    // The owner API refuses what it should.
    assert_eq!(lifecycle(&base, &chat, "archive", "wrong").await.0, 401);
    assert_eq!(
        lifecycle(&base, "no-such-chat", "archive", TOKEN).await.0,
        404
    );
    let (status, body) = lifecycle(&base, &chat, "explode", TOKEN).await;
    assert_eq!(status, 400, "{body}");
    println!(
        "PASS: the lifecycle API refuses a wrong token (401), an unknown chat (404), an unknown action (400)"
    );

    let (status, body) = lifecycle(&base, &chat, "archive", TOKEN).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("archived")),
        "{body}"
    );
    let archive = PathBuf::from(body["detail"].as_str().unwrap());
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
    let damaged = std::fs::read(&archive).unwrap();

    stack
        .sim
        .text(json!({"from": texter, "chat_id": chat, "text": "are you there?"}))
        .await;
    let texts = replies(&stack.sim, &chat, 2).await;
    assert!(texts[1].contains("archive is damaged"), "{texts:?}");
    let told = replies(&stack.sim, &owner_dm, 2).await;
    assert!(
        told[1].starts_with("Heads up") && told[1].contains(&chat),
        "{told:?}"
    );
    assert_eq!(state_in(&db, &chat).as_deref(), Some("failed"));
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        damaged,
        "the archive is left as it was"
    );
    println!(
        "PASS: a message to a chat with a damaged archive: the chat is failed, the sender gets a notice, the owner is told, the archive is untouched"
    );

    stack
        .sim
        .text(json!({"from": texter, "chat_id": chat, "text": "again?"}))
        .await;
    let texts = replies(&stack.sim, &chat, 3).await;
    assert!(texts[2].contains("archive is damaged"), "{texts:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stack.sim.bot_messages(&owner_dm).await.len(),
        2,
        "the owner is told once"
    );
    println!("PASS: later messages get the notice too; the owner is not told again");

    let (status, body) = lifecycle(&base, &chat, "restore", TOKEN).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (422, Some("damaged")),
        "{body}"
    );
    let (status, body) = lifecycle(&base, &chat, "destroy", TOKEN).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("destroyed")),
        "{body}"
    );
    assert!(!archive.exists(), "destroy removes the archive");
    println!("PASS: restore refuses the damaged archive (422); destroy removes it");

    stack
        .sim
        .text(json!({"from": texter, "chat_id": chat, "text": "fresh start"}))
        .await;
    assert_eq!(replies(&stack.sim, &chat, 4).await[3], "fresh start");
    assert_eq!(state_in(&db, &chat).as_deref(), Some("active"));
    assert!(chat_home(fx.root.path(), &chat).join(".git").is_dir());
    println!("PASS: after destroy, the next message starts a fresh workspace and is answered");
}

#[tokio::test]
async fn messages_arriving_while_a_chat_is_restored_are_all_answered_once() {
    if !have_tmux() {
        return;
    }
    let fx = Fixture::start(|_| {}).await;
    let (stack, base) = (&fx.stack, fx.base());
    let texter = "+15551250006";
    let (chat, home) = fx.answered_chat(texter).await;
    let name = home.file_name().unwrap().to_string_lossy().into_owned();
    let staging = fx.root.path().join(format!(".{name}.restoring"));
    let noise = fill_home(&home, 48 << 20);
    let (status, body) = lifecycle(&base, &chat, "archive", TOKEN).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("archived")),
        "{body}"
    );

    stack
        .sim
        .text(json!({"from": texter, "chat_id": chat, "text": "first"}))
        .await;
    let during = eventually(WAIT, "the restore to start", || async {
        if staging.exists() {
            Some(true)
        } else {
            home.exists().then_some(false)
        }
    })
    .await;
    for text in ["second", "third"] {
        stack
            .sim
            .text(json!({"from": texter, "chat_id": chat, "text": text}))
            .await;
    }
    // Messages that arrive while a turn runs are answered together by the next turn.
    let answered = eventually(WAIT, "all three answered", || async {
        let all = replies(&stack.sim, &chat, 1).await.join("\n");
        ["first", "second", "third"]
            .iter()
            .all(|t| all.contains(t))
            .then_some(all)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = replies(&stack.sim, &chat, 1).await.join("\n");
    assert_eq!(all, answered, "nothing more arrived");
    for text in ["first", "second", "third"] {
        assert_eq!(
            all.matches(text).count(),
            1,
            "{text} answered once: {all:?}"
        );
    }
    assert_eq!(digest(&home.join("noise.bin")), Some(noise));
    println!(
        "PASS: two messages sent while the chat was being restored (caught unpacking: {during}) were queued and answered, each once"
    );
}

#[tokio::test]
async fn a_chat_answering_a_message_is_not_archived_or_destroyed_under_it() {
    if !have_tmux() {
        return;
    }
    // The agent takes a while, so the owner's request lands mid-turn.
    let fx = Fixture::start(|c| {
        c.agents.command = ["sh", "-c", "touch started; sleep 3; cat"]
            .map(String::from)
            .to_vec();
    })
    .await;
    let (stack, base, db) = (&fx.stack, fx.base(), fx.db());
    let (chat, _) = stack.sim.dm("+15551250007", "slow one").await;
    let home = chat_home(fx.root.path(), &chat);
    eventually(WAIT, "the agent to start", || async {
        home.join("started").exists().then_some(())
    })
    .await;
    for action in ["hibernate", "archive", "destroy"] {
        let (status, body) = lifecycle(&base, &chat, action, TOKEN).await;
        assert_eq!(
            (status, body["outcome"].as_str()),
            (409, Some("busy")),
            "{action}: {body}"
        );
    }
    assert_eq!(replies(&stack.sim, &chat, 1).await, vec!["slow one"]);
    assert_eq!(state_in(&db, &chat).as_deref(), Some("active"));
    assert!(home.join(".git").is_dir());
    println!(
        "PASS: hibernate, archive and destroy during a turn answer 409 and change nothing; the turn's reply arrives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_commands_move_a_chat_through_every_state() {
    if !have_tmux() {
        return;
    }
    let fx = Fixture::start(|_| {}).await;
    let (stack, base) = (&fx.stack, fx.base());
    let config = stack.data.path().join("cli.toml");
    std::fs::write(&config, format!("api_token = {TOKEN:?}\n")).unwrap();
    let (chat, home) = fx.answered_chat("+15551250003").await;

    // The daemon runs in this process: the command is awaited, not waited for.
    let cli = async |args: &[&str]| {
        let out = tokio::process::Command::new(picortex_bin())
            .arg("chat")
            .args(args)
            .arg(&chat)
            .arg("--config")
            .arg(&config)
            .arg("--url")
            .arg(&base)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = cli(&["hibernate"]).await;
    assert!(ok && out.contains("state hibernated"), "{out}{err}");
    assert!(!chat_running(&home));
    let (ok, out, err) = cli(&["archive"]).await;
    assert!(ok && out.contains("state archived"), "{out}{err}");
    assert!(!home.exists());
    let (ok, out, err) = cli(&["restore"]).await;
    assert!(ok && out.contains("state active"), "{out}{err}");
    assert!(home.join(".git").is_dir());
    let (ok, out, err) = cli(&["destroy"]).await;
    assert!(
        !ok && err.contains("--yes"),
        "destroy asks first: {out}{err}"
    );
    assert!(home.exists(), "nothing was destroyed without confirmation");
    let (ok, out, err) = cli(&["destroy", "--yes"]).await;
    assert!(ok && out.contains("state destroyed"), "{out}{err}");
    assert!(!home.exists());
    println!(
        "PASS: picortex chat hibernate, archive, restore and destroy (which asks first unless --yes) each do what they say"
    );

    let list_config = stack.data.path().join("list.toml");
    std::fs::write(
        &list_config,
        format!("data_dir = {:?}\n", stack.data.path().display().to_string()),
    )
    .unwrap();
    let list = std::process::Command::new(picortex_bin())
        .args(["chat", "list", "--config"])
        .arg(&list_config)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&chat) && l.contains("destroyed")),
        "{listed}{}",
        String::from_utf8_lossy(&list.stderr)
    );
    println!("PASS: picortex chat list shows the destroyed chat");
}

#[tokio::test]
async fn the_daemon_killed_mid_transition_leaves_a_consistent_chat_and_loses_no_message() {
    if !have_tmux() {
        return;
    }
    let (port, sim, data) = child_daemon_parts().await;
    let root = data.path().join("chats");
    let _cleanup = Cleanup(root.clone());
    let archive_dir = data.path().join("archive");
    let extra = format!(
        "api_token = {TOKEN:?}\n{}[lifecycle]\ninterval_secs = 1\narchive_dir = {:?}\n",
        command_agent_toml(&root, &["cat"]),
        archive_dir.display().to_string(),
    );
    let config_path = write_daemon_config(&sim, data.path(), port, &extra);
    let base = format!("http://127.0.0.1:{port}");
    let db = data.path().join("picortex.db");
    let mut daemon = DaemonProcess::spawn(&config_path);
    ready(&base).await;
    let texter = "+15551250004";
    let (chat, _) = sim.dm(texter, "hello").await;
    assert_eq!(replies(&sim, &chat, 1).await, vec!["hello"]);
    let home = chat_home(&root, &chat);
    let name = home.file_name().unwrap().to_string_lossy().into_owned();
    let archive = archive_dir.join(format!("{name}.tar.zst"));
    let staging = root.join(format!(".{name}.restoring"));
    let noise = fill_home(&home, 48 << 20);
    let mut answered = 1;

    // Hibernating: killed right after asking (the stop is quick, so the kill lands before,
    // during or after it).
    for delay_ms in [2u64, 10, 40] {
        let request = tokio::spawn({
            let (base, chat) = (base.clone(), chat.clone());
            async move { try_lifecycle(&base, &chat, "hibernate", TOKEN).await }
        });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let at_kill = state_in(&db, &chat);
        daemon.sigkill().await;
        request.abort();
        daemon = DaemonProcess::spawn(&config_path);
        ready(&base).await;
        let settled = wait_for_state(&db, &chat, &["active", "hibernated"]).await;
        if settled == "hibernated" {
            eventually(WAIT, "the hibernated chat's processes to stop", || async {
                (!chat_running(&home)).then_some(())
            })
            .await;
        }
        println!(
            "PASS: daemon killed {delay_ms} ms into hibernating (state then {at_kill:?}): after the restart the chat is {settled}, consistently"
        );
    }

    for (round, delay_ms) in [0u64, 200, 600, 1200].into_iter().enumerate() {
        // Archiving.
        let request = tokio::spawn({
            let (base, chat) = (base.clone(), chat.clone());
            async move { try_lifecycle(&base, &chat, "archive", TOKEN).await }
        });
        wait_for_state(&db, &chat, &["archiving", "archived"]).await;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let seen = format!(
            "home {}, archive {}",
            if home.exists() { "there" } else { "gone" },
            if archive.exists() { "there" } else { "not yet" }
        );
        daemon.sigkill().await;
        request.abort();
        daemon = DaemonProcess::spawn(&config_path);
        ready(&base).await;
        wait_for_state(&db, &chat, &["archived"]).await;
        eventually(
            WAIT,
            "the home to be gone and the archive there",
            || async { (!home.exists() && archive.exists()).then_some(()) },
        )
        .await;
        assert_eq!(leftovers(&root, &archive_dir), Vec::<String>::new());
        assert!(
            nix::unistd::User::from_name(&name).unwrap().is_none(),
            "an archived chat has no user left"
        );
        println!(
            "PASS: daemon killed {delay_ms} ms into archiving ({seen}): the restart finished the archive, nothing left over"
        );

        // Restoring, by a message.
        let text = format!("round {round}");
        sim.text(json!({"from": texter, "chat_id": chat, "text": text}))
            .await;
        let phase = eventually(WAIT, "the restore to start", || async {
            if staging.exists() {
                Some("unpacking")
            } else if home.exists() {
                Some("home back")
            } else {
                None
            }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(delay_ms / 4)).await;
        daemon.sigkill().await;
        daemon = DaemonProcess::spawn(&config_path);
        ready(&base).await;
        answered += 1;
        let texts = replies(&sim, &chat, answered).await;
        assert_eq!(texts[answered - 1], text);
        assert_eq!(
            digest(&home.join("noise.bin")),
            Some(noise),
            "the files came back whole"
        );
        assert!(
            !archive.exists(),
            "the archive is consumed once the home is back"
        );
        assert_eq!(leftovers(&root, &archive_dir), Vec::<String>::new());
        println!(
            "PASS: daemon killed {} ms into restoring ({phase}): the message got its one reply, the files whole",
            delay_ms / 4
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sim.bot_messages(&chat).await.len(),
        answered,
        "no reply twice"
    );
    println!("PASS: {answered} messages, {answered} replies, across every kill");
    daemon.sigkill().await;
}

#[tokio::test]
async fn the_sandbox_helper_killed_mid_transition_is_replaced_and_the_chat_comes_through() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: the sandbox helper runs only as root");
        return;
    }
    if !have_tmux() {
        return;
    }
    let fx = Fixture::start(|c| c.lifecycle.interval_secs = 1).await;
    let (stack, base, db) = (&fx.stack, fx.base(), fx.db());
    let (root, archive_dir) = (fx.root.path(), fx.archive_dir.as_path());
    let socket = stack
        .data
        .path()
        .canonicalize()
        .unwrap()
        .join("run/sandbox.sock");
    let texter = "+15551250005";
    let (chat, home) = fx.answered_chat(texter).await;
    let name = home.file_name().unwrap().to_string_lossy().into_owned();
    let archive = archive_dir.join(format!("{name}.tar.zst"));
    let staging = root.join(format!(".{name}.restoring"));
    let noise = fill_home(&home, 48 << 20);

    // Hibernating: the helper dies as the chat's sandbox is stopped; the lifecycle task
    // finishes the hibernation on a new helper.
    let request = tokio::spawn({
        let (base, chat) = (base.clone(), chat.clone());
        async move { lifecycle(&base, &chat, "hibernate", TOKEN).await }
    });
    wait_for_state(&db, &chat, &["hibernating", "hibernated"]).await;
    let killed = kill_helper(&socket);
    let (status, body) = request.await.unwrap();
    println!("hibernate with the helper ({killed:?}) killed: HTTP {status} {body}");
    wait_for_state(&db, &chat, &["hibernated"]).await;
    eventually(WAIT, "the chat's sandbox to stop", || async {
        (!chat_running(&home)).then_some(())
    })
    .await;
    println!("PASS: helper killed mid-hibernate: the chat ends hibernated, its sandbox stopped");

    // Archiving: the helper dies midway; the call fails, the chat is still whole, and the
    // next archive (on a new helper) completes.
    let request = tokio::spawn({
        let (base, chat) = (base.clone(), chat.clone());
        async move { lifecycle(&base, &chat, "archive", TOKEN).await }
    });
    wait_for_state(&db, &chat, &["archiving", "archived"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = kill_helper(&socket);
    let (status, body) = request.await.unwrap();
    println!("archive with the helper ({killed:?}) killed 300 ms in: HTTP {status} {body}");
    let (status, body) = lifecycle(&base, &chat, "archive", TOKEN).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("archived")),
        "{body}"
    );
    assert!(!home.exists() && archive.exists());
    assert_eq!(leftovers(root, archive_dir), Vec::<String>::new());
    println!(
        "PASS: helper killed mid-archive: a new helper was started and archiving again completed, nothing left over"
    );

    // Restoring: the helper dies while unpacking; the turn is retried on a new helper.
    stack
        .sim
        .text(json!({"from": texter, "chat_id": chat, "text": "wake up"}))
        .await;
    eventually(WAIT, "the restore to start", || async {
        (staging.exists() || home.exists()).then_some(())
    })
    .await;
    let killed = kill_helper(&socket);
    assert_eq!(replies(&stack.sim, &chat, 2).await[1], "wake up");
    assert_eq!(
        digest(&home.join("noise.bin")),
        Some(noise),
        "the files came back whole"
    );
    assert!(!archive.exists());
    assert_eq!(leftovers(root, archive_dir), Vec::<String>::new());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stack.sim.bot_messages(&chat).await.len(), 2, "one reply");
    println!(
        "PASS: helper ({killed:?}) killed mid-restore: the message got its one reply on a new helper, the files whole"
    );
}

/// SIGKILLs the helper serving `socket` (found by its command line); its pid.
fn kill_helper(socket: &Path) -> Option<i32> {
    let wanted = socket.as_os_str().as_encoded_bytes();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&b"serve".as_slice()) && args.contains(&wanted) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Some(pid);
        }
    }
    None
}
