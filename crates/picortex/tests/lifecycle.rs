#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hibernation: an idle chat's processes stop and its home stays; the next message wakes it
//! and still gets its answer; a stop that fails is reported, never called done, and retried.
//! As root the chat runs in its sandbox (whose jail is what stops);
//! without root, its tmux server.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

async fn state(stack: &Stack, chat_id: &str) -> String {
    let id = chat_id.to_owned();
    stack
        .daemon
        .store
        .read(move |c| {
            Ok(c.query_row("SELECT state FROM chats WHERE id = ?1", [&id], |r| r.get(0))?)
        })
        .await
        .unwrap()
}

async fn audit_kinds(stack: &Stack, chat_id: &str) -> Vec<String> {
    let id = chat_id.to_owned();
    stack
        .daemon
        .store
        .read(move |c| {
            let mut stmt = c.prepare(
                "SELECT kind FROM audit_events WHERE chat_id = ?1 AND kind LIKE 'chat.%' ORDER BY id",
            )?;
            let rows = stmt.query_map([&id], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<String>, _>>()?)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn an_idle_chat_hibernates_and_the_next_message_wakes_it() {
    if !have_tmux() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    let stack = Stack::start_with(|c| {
        use_command_agent(c, root.path(), &["cat"]);
        c.lifecycle.idle_after_secs = 1;
        c.lifecycle.interval_secs = 1;
    })
    .await;
    let (chat, _) = stack.sim.dm("+15551240001", "hello").await;
    assert_eq!(replies(&stack.sim, &chat, 1).await, vec!["hello"]);
    let home = chat_home(root.path(), &chat);
    let tmux = picortex::workspace::Tmux::for_home(&home);

    eventually(WAIT, "the chat to hibernate", || async {
        (state(&stack, &chat).await == "hibernated").then_some(())
    })
    .await;
    eventually(WAIT, "its tmux server to stop", || async {
        (!tmux.has_session()).then_some(())
    })
    .await;
    assert!(home.join(".git").is_dir(), "the home stays");
    println!("PASS: an idle chat hibernates: its tmux server stopped, its home kept");

    stack
        .sim
        .text(json!({"from": "+15551240001", "chat_id": chat, "text": "still there?"}))
        .await;
    assert_eq!(replies(&stack.sim, &chat, 2).await[1], "still there?");
    println!("PASS: a message to a hibernated chat wakes it and is answered");
    let kinds = audit_kinds(&stack, &chat).await;
    assert!(
        kinds.starts_with(&["chat.hibernated".into(), "chat.woken".into()]),
        "{kinds:?}"
    );
    println!("PASS: both transitions are audit events ({kinds:?})");
}

#[tokio::test]
async fn the_owner_hibernates_a_chat_by_hand() {
    if !have_tmux() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    let owner = "+15551240002";
    let stack = Stack::start_with(|c| {
        use_command_agent(c, root.path(), &["cat"]);
        c.owner = Some(owner.into());
    })
    .await;
    let (chat, _) = stack.sim.dm(owner, "hello").await;
    assert_eq!(replies(&stack.sim, &chat, 1).await, vec!["hello"]);
    let tmux = picortex::workspace::Tmux::for_home(&chat_home(root.path(), &chat));
    assert!(tmux.has_session());
    // The owner's `shell` window is open beside the agent's (as root: inside the sandbox, where
    // the chat's user has no login shell of its own).
    let windows = tmux
        .run(
            "list-windows",
            &["list-windows", "-F", "#{window_name}"].map(std::ffi::OsString::from),
        )
        .unwrap();
    assert!(windows.lines().any(|w| w == "shell"), "{windows}");

    stack
        .sim
        .text(json!({"from": owner, "chat_id": chat, "text": "/picortex hibernate"}))
        .await;
    let answer = replies(&stack.sim, &chat, 2).await.remove(1);
    assert!(answer.starts_with("Done: this chat is asleep"), "{answer}");
    assert_eq!(state(&stack, &chat).await, "hibernated");
    assert!(!tmux.has_session(), "its tmux server stopped");
    stack
        .sim
        .text(json!({"from": owner, "chat_id": chat, "text": "/picortex hibernate"}))
        .await;
    // The command itself is a message, so it woke the chat before asking again.
    let again = replies(&stack.sim, &chat, 3).await.remove(2);
    assert!(again.starts_with("Done: this chat is asleep"), "{again}");
    stack
        .sim
        .text(json!({"from": owner, "chat_id": chat, "text": "wake up"}))
        .await;
    assert_eq!(replies(&stack.sim, &chat, 4).await[3], "wake up");
    assert_eq!(state(&stack, &chat).await, "active");
    println!("PASS: /picortex hibernate puts the chat to sleep; the next message wakes it");
}

#[tokio::test]
async fn an_idle_chat_is_archived_and_the_next_message_restores_it_with_its_files() {
    if !have_tmux() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    let archive_dir = root.path().join("archive");
    let stack = Stack::start_with(|c| {
        use_command_agent(c, root.path(), &["cat"]);
        c.lifecycle.idle_after_secs = 1;
        c.lifecycle.archive_after_secs = 3;
        c.lifecycle.interval_secs = 1;
        c.lifecycle.archive_dir = Some(archive_dir.clone());
    })
    .await;
    let (chat, _) = stack.sim.dm("+15551240003", "hello").await;
    assert_eq!(replies(&stack.sim, &chat, 1).await, vec!["hello"]);
    let home = chat_home(root.path(), &chat);
    let notes = home.join("notes.txt");
    std::fs::write(&notes, "kept across the archive\n").unwrap();
    let before = std::fs::metadata(&home).unwrap();

    eventually(WAIT, "the chat to be archived", || async {
        (state(&stack, &chat).await == "archived").then_some(())
    })
    .await;
    eventually(WAIT, "the home to be gone", || async {
        (!home.exists()).then_some(())
    })
    .await;
    let name = home.file_name().unwrap().to_string_lossy().into_owned();
    let archive = archive_dir.join(format!("{name}.tar.zst"));
    assert!(archive.exists(), "{} exists", archive.display());

    let started = std::time::Instant::now();
    stack
        .sim
        .text(json!({"from": "+15551240003", "chat_id": chat, "text": "back again"}))
        .await;
    assert_eq!(
        replies(&stack.sim, &chat, 2).await,
        vec!["hello", "back again"]
    );
    eprintln!("archived chat to reply: {:?}", started.elapsed());
    assert_eq!(
        std::fs::read_to_string(&notes).unwrap(),
        "kept across the archive\n"
    );
    use std::os::unix::fs::MetadataExt as _;
    let after = std::fs::metadata(&home).unwrap();
    assert_eq!(after.mode(), before.mode());
    let kinds = audit_kinds(&stack, &chat).await;
    assert!(kinds.contains(&"chat.archived".to_owned()), "{kinds:?}");
    println!("PASS: archived after being idle, restored by the next message ({kinds:?})");
}

#[tokio::test]
async fn a_message_arriving_while_the_chat_is_archived_gets_exactly_one_reply() {
    if !have_tmux() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    let stack = Stack::start_with(|c| {
        use_command_agent(c, root.path(), &["cat"]);
        c.lifecycle.idle_after_secs = 1;
        c.lifecycle.archive_after_secs = 2;
        c.lifecycle.interval_secs = 1;
        c.lifecycle.archive_dir = Some(root.path().join("archive"));
    })
    .await;
    let (chat, _) = stack.sim.dm("+15551240004", "hello").await;
    assert_eq!(replies(&stack.sim, &chat, 1).await, vec!["hello"]);
    // Big enough (incompressible) that archiving takes a while.
    let home = chat_home(root.path(), &chat);
    let noise: Vec<u8> = (0..48u64 << 20)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect();
    std::fs::write(home.join("noise.bin"), &noise).unwrap();

    // `archiving` is recorded before the home is written out: send right then.
    eventually(WAIT, "the archive to start", || async {
        (state(&stack, &chat).await == "archiving").then_some(())
    })
    .await;
    let mid_archive = home.exists();
    stack
        .sim
        .text(json!({"from": "+15551240004", "chat_id": chat, "text": "mid-archive"}))
        .await;
    assert_eq!(
        replies(&stack.sim, &chat, 2).await,
        vec!["hello", "mid-archive"]
    );
    // Checked at once: two idle seconds later the lifecycle task archives the chat again.
    assert_eq!(
        std::fs::read(home.join("noise.bin")).unwrap().len(),
        noise.len()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stack.sim.bot_messages(&chat).await.len(),
        2,
        "exactly one reply"
    );
    println!(
        "PASS: a message sent while archiving (home still there: {mid_archive}) got one reply"
    );
}

#[tokio::test]
async fn a_daemon_stopping_with_its_chats_leaves_none_running_and_loses_no_turn() {
    if !have_tmux() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    // Each chat's first run hangs until the daemon stops; the run after the restart answers.
    let script = "if [ -f .tried ]; then cat; else touch .tried; sleep 60; fi";
    let tweak = |c: &mut picortex::config::Config| {
        use_command_agent(c, root.path(), &["sh", "-c", script]);
    };
    let Stack { sim, daemon, data } = Stack::start_with(tweak).await;
    let addr = daemon.addr;
    let (first, _) = sim.dm("+15551240101", "finish me later").await;
    let (second, _) = sim.dm("+15551240102", "hi").await;
    for chat in [&first, &second] {
        let home = chat_home(root.path(), chat);
        eventually(WAIT, "the chat's turn to start", || async {
            home.join(".tried").exists().then_some(())
        })
        .await;
    }
    let store = daemon.store.clone();
    let stopped = daemon.shutdown_and_hibernate().await.unwrap();
    assert_eq!(stopped.with_work, 2, "{stopped:?}");
    for chat in [&first, &second] {
        let tmux = picortex::workspace::Tmux::for_home(&chat_home(root.path(), chat));
        assert!(!tmux.has_session(), "{chat}: its processes stopped");
        let id = chat.to_string();
        let state = store
            .read(move |c| picortex::lifecycle::state_of(c, &id))
            .await
            .unwrap();
        assert_eq!(state.as_deref(), Some("active"), "{chat} keeps its work");
    }
    drop(store);
    println!("PASS: stopping the daemon with its chats stops every chat's processes");

    let mut config = daemon_config(&sim, data.path());
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let daemon = picortex::daemon::start(config, listener).await.unwrap();
    assert_eq!(replies(&sim, &first, 1).await, vec!["finish me later"]);
    assert_eq!(replies(&sim, &second, 1).await, vec!["hi"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for chat in [&first, &second] {
        assert_eq!(sim.bot_messages(chat).await.len(), 1, "{chat}: one reply");
    }
    println!("PASS: the turns cut short by the stop run at the next start, answered once");

    let stopped = daemon.shutdown_and_hibernate().await.unwrap();
    assert_eq!(stopped.hibernated, 2, "{stopped:?}");
    assert_eq!(stopped.with_work, 0, "{stopped:?}");
    println!("PASS: idle chats are hibernated when the daemon stops with its chats");
}

/// Echoes; stopping a chat's processes fails until `stops_work` is set.
#[derive(Default)]
struct StopRefused {
    stops_work: std::sync::atomic::AtomicBool,
}

impl picortex::agent::Agent for StopRefused {
    fn name(&self) -> &'static str {
        "stop-refused"
    }

    fn run_turn(
        &self,
        request: picortex::agent::TurnRequest,
    ) -> futures::future::BoxFuture<
        '_,
        Result<picortex::agent::TurnReply, picortex::agent::AgentError>,
    > {
        picortex::agent::EchoAgent.run_turn(request)
    }

    fn stop_chat<'a>(
        &'a self,
        _chat_id: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), picortex::agent::AgentError>> {
        let works = self.stops_work.load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            if works {
                Ok(())
            } else {
                Err(picortex::agent::AgentError::Retryable(
                    "the chat's processes would not stop".into(),
                ))
            }
        })
    }
}

/// A hibernation whose stop fails is never reported as done: the owner's command says so in
/// the chat, the owner API answers 500 `failed`, and the chat stays `hibernating` until the
/// lifecycle task, on a later tick, stops it as the command's answer promised.
#[tokio::test]
async fn a_hibernation_whose_stop_fails_is_reported_and_finished_in_the_background() {
    const TOKEN: &str = "owner-api-test-token-hibernate-0001";
    let owner = "+15551240009";
    let agent = std::sync::Arc::new(StopRefused::default());
    let stack = Stack::start_with_agent(
        |c| {
            c.owner = Some(owner.into());
            c.api_token = Some(TOKEN.into());
            c.lifecycle.interval_secs = 1;
        },
        agent.clone(),
    )
    .await;
    let (chat, _) = stack.sim.dm(owner, "hello").await;
    assert_eq!(replies(&stack.sim, &chat, 1).await, vec!["echo: hello"]);

    stack
        .sim
        .text(json!({"from": owner, "chat_id": chat, "text": "/picortex hibernate"}))
        .await;
    let answer = replies(&stack.sim, &chat, 2).await.remove(1);
    assert!(
        answer.starts_with("I couldn't stop this chat's processes")
            && answer.contains("the chat's processes would not stop"),
        "{answer}"
    );
    assert_eq!(state(&stack, &chat).await, "hibernating");
    println!("PASS: the owner's hibernate command says the stop failed");

    let response = stack
        .sim
        .http
        .post(format!(
            "{}/api/chats/{chat}/lifecycle",
            stack.daemon.base_url()
        ))
        .bearer_auth(TOKEN)
        .json(&json!({"action": "hibernate"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["outcome"], "failed", "{body}");
    assert_eq!(body["state"], "hibernating", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("the chat's processes would not stop"),
        "{body}"
    );
    assert_eq!(state(&stack, &chat).await, "hibernating");
    println!("PASS: the owner API answers 500 with the reason, and the chat is not called asleep");

    agent
        .stops_work
        .store(true, std::sync::atomic::Ordering::SeqCst);
    eventually(
        WAIT,
        "the lifecycle task to finish the hibernation",
        || async { (state(&stack, &chat).await == "hibernated").then_some(()) },
    )
    .await;
    println!("PASS: the lifecycle task finishes the hibernation once the stop works");
}
