//! Turns through the chat's own runner in its own tmux session (real tmux, real runner
//! process), with the `command` agent standing in for Claude Code: files land in the chat's
//! workspace, chats stay apart, text reaches the agent byte-exact, messages sent mid-turn fold
//! into one next turn, a killed runner is retried once, a turn that runs too long is stopped
//! and the chat is told.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use picortex::config::IsolationMode;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

async fn reply_texts(sim: &Sim, chat_id: &str, n: usize) -> Vec<String> {
    eventually(WAIT, &format!("{n} replies"), || async {
        let r = sim.bot_messages(chat_id).await;
        (r.len() >= n).then(|| r.iter().map(text_of).collect::<Vec<_>>())
    })
    .await
}

#[tokio::test]
async fn files_land_in_the_chats_workspace_and_text_arrives_byte_exact() {
    if !have_tmux() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    let stack = Stack::start_with(|c| {
        use_command_agent(c, root.path(), &["sh", "-c", "cat > note.txt; echo saved"])
    })
    .await;
    let nasty =
        "it's \"quoted\" $(touch /tmp/picortex-pwned) `id`; rm -rf ~ | x\n\\ \u{1b}[31mred 🙂";
    let (a, a_msg) = stack.sim.dm("+15551230001", nasty).await;
    let (b, _) = stack.sim.dm("+15551230002", "chat b's secret").await;
    let replies_a = reply_texts(&stack.sim, &a, 1).await;
    assert_eq!(replies_a, vec!["saved"]);
    reply_texts(&stack.sim, &b, 1).await;
    let reply = stack.sim.bot_messages(&a).await.remove(0);
    assert_eq!(reply_to_of(&reply).as_deref(), Some(a_msg.as_str()));

    let home_a = chat_home(root.path(), &a);
    let home_b = chat_home(root.path(), &b);
    assert_eq!(
        std::fs::read_to_string(home_a.join("note.txt")).unwrap(),
        nasty
    );
    assert_eq!(
        std::fs::read_to_string(home_b.join("note.txt")).unwrap(),
        "chat b's secret"
    );
    assert!(!std::path::Path::new("/tmp/picortex-pwned").exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&home_a).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // The chat's tmux session shows the turn's transcript in its agent window.
    let tmux = picortex::workspace::Tmux::for_home(&home_a);
    let screen = tmux.capture_agent().unwrap();
    assert!(screen.contains("turn 1"), "{screen}");
    assert!(screen.contains("saved"), "{screen}");
    assert!(
        !screen.contains('\u{1b}'),
        "escape sequences from the chat are neutralised"
    );
}

#[tokio::test]
async fn messages_sent_during_a_turn_fold_into_one_next_turn() {
    if !have_tmux() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    let stack =
        Stack::start_with(|c| use_command_agent(c, root.path(), &["sh", "-c", "sleep 1.5; cat"]))
            .await;
    let (chat, _) = stack.sim.dm("+15551230003", "first").await;
    // Wait until the first turn is running, then send three more.
    let store = stack.daemon.store.clone();
    eventually(WAIT, "first turn running", || {
        let store = store.clone();
        async move {
            let n: i64 = store
                .read(|c| {
                    Ok(c.query_row(
                        "SELECT COUNT(*) FROM turns WHERE status = 'running'",
                        [],
                        |r| r.get(0),
                    )?)
                })
                .await
                .ok()?;
            (n == 1).then_some(())
        }
    })
    .await;
    for text in ["second", "third", "fourth"] {
        stack
            .sim
            .text(json!({"from": "+15551230003", "chat_id": chat, "text": text}))
            .await;
    }
    let replies = reply_texts(&stack.sim, &chat, 2).await;
    assert_eq!(
        replies,
        vec!["first".to_string(), "second\nthird\nfourth".to_string()]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stack.sim.bot_messages(&chat).await.len(),
        2,
        "no third reply"
    );
}

/// The host pid of the chat's process that tmux knows as `pane_pid`: tmux runs in the chat's
/// PID namespace when sandboxed, so its pids are the namespace's (the last `NSpid` entry of the
/// chat user's process).
fn host_pid(home: &std::path::Path, pane_pid: i32) -> i32 {
    use std::os::unix::fs::MetadataExt as _;
    let uid = std::fs::metadata(home).unwrap().uid().to_string();
    for (_, status) in process_statuses() {
        let (uids, nspids) = (
            status_field(&status, "Uid:"),
            status_field(&status, "NSpid:"),
        );
        if uids.first() == Some(&uid.as_str())
            && nspids.last() == Some(&pane_pid.to_string().as_str())
        {
            return nspids[0].parse().unwrap();
        }
    }
    panic!("no process of the chat is pane pid {pane_pid}");
}

#[tokio::test]
async fn a_runner_killed_mid_turn_is_retried_once_and_answers_once() {
    if !have_tmux() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    // The first run hangs (and gets its runner killed); the retry answers.
    let script =
        "echo run >> runs.log; if [ -f .tried ]; then cat; else touch .tried; sleep 60; fi";
    let stack =
        Stack::start_with(|c| use_command_agent(c, root.path(), &["sh", "-c", script])).await;
    let (chat, _) = stack.sim.dm("+15551230004", "please survive").await;
    let home = chat_home(root.path(), &chat);
    eventually(WAIT, "the first run to start", || async {
        home.join(".tried").exists().then_some(())
    })
    .await;
    let tmux = picortex::workspace::Tmux::for_home(&home);
    let out = std::process::Command::new("tmux")
        .arg("-S")
        .arg(tmux.socket())
        .args(["list-panes", "-t", "picortex:agent", "-F", "#{pane_pid}"])
        .output()
        .unwrap();
    let pane_pid: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let pid = host_pid(&home, pane_pid);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    let replies = reply_texts(&stack.sim, &chat, 1).await;
    assert_eq!(replies, vec!["please survive"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stack.sim.bot_messages(&chat).await.len(), 1);
    let runs = std::fs::read_to_string(home.join("runs.log")).unwrap();
    assert_eq!(runs.lines().count(), 2, "one run and one retry");
}

#[tokio::test]
async fn a_turn_past_its_timeout_is_stopped_and_the_chat_is_told() {
    if !have_tmux() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    let stack = Stack::start_with(|c| {
        use_command_agent(c, root.path(), &["sleep", "60"]);
        c.turns.timeout_secs = 1;
    })
    .await;
    let (chat, _) = stack.sim.dm("+15551230005", "take forever").await;
    let replies = reply_texts(&stack.sim, &chat, 1).await;
    assert!(replies[0].contains("longer than 1 seconds"), "{replies:?}");
    assert!(replies[0].contains("request id"), "{replies:?}");
    // The runner stopped the command and is free for the next turn.
    let failed: i64 = stack
        .daemon
        .store
        .read(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM turns WHERE status = 'failed'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(failed, 1);
}

#[tokio::test]
async fn files_the_agent_puts_in_its_outbox_are_sent_as_attachments() {
    if !have_tmux() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    let script = "mkdir -p outbox; cat > outbox/report.txt; ln -sf /etc/passwd outbox/passwd.txt; echo here you go";
    let stack =
        Stack::start_with(|c| use_command_agent(c, root.path(), &["sh", "-c", script])).await;
    let (chat, _) = stack.sim.dm("+15551230006", "the report body").await;
    let reply = eventually(WAIT, "the reply", || async {
        stack.sim.bot_messages(&chat).await.into_iter().next()
    })
    .await;
    assert_eq!(text_of(&reply), "here you go");
    let parts = reply["parts"].as_array().unwrap();
    let media: Vec<&serde_json::Value> = parts.iter().filter(|p| p["type"] == "media").collect();
    assert_eq!(
        media.len(),
        1,
        "only the regular file is attached, not the symlink: {parts:?}"
    );
    assert_eq!(media[0]["filename"], "1-report.txt");
    assert_eq!(media[0]["mime_type"], "text/plain");
    let home = chat_home(root.path(), &chat);
    assert!(home.join("outbox/sent/1-report.txt").is_file());
    assert!(!home.join("outbox/report.txt").exists());
    // The bytes that reached the simulator are the file's.
    let body = stack
        .sim
        .http
        .get(media[0]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "the report body");
}

#[tokio::test]
async fn the_typing_indicator_shows_while_a_dm_turn_runs() {
    if !have_tmux() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    let stack =
        Stack::start_with(|c| use_command_agent(c, root.path(), &["sh", "-c", "sleep 2; cat"]))
            .await;
    let (chat, _) = stack.sim.dm("+15551230007", "think hard").await;
    let typing = || async { stack.sim.page_chat(&chat).await?["bot_typing"].as_bool() };
    eventually(WAIT, "typing on", || async {
        (typing().await == Some(true)).then_some(())
    })
    .await;
    reply_texts(&stack.sim, &chat, 1).await;
    eventually(WAIT, "typing off", || async {
        (typing().await == Some(false)).then_some(())
    })
    .await;
}

/// The agent script for the isolation probes: `plant` writes a secret in its own home;
/// `probe <other home>` tries to reach another chat's files and reports each attempt.
const PROBE_SCRIPT: &str = r#"read -r cmd target
case "$cmd" in
plant) echo secret-b > secret.txt; echo planted ;;
probe)
  try() { if sh -c "$2" >/dev/null 2>&1; then echo "$1=open"; else echo "$1=blocked"; fi; }
  try "read a file in chat B's home" "cat '$target/secret.txt'"
  try "list chat B's home" "ls '$target'"
  try "write into chat B's home" "echo x > '$target/evil.txt'"
  try "read chat B's file through its own symlink" "ln -sf '$target/secret.txt' mylink && cat mylink"
  try "hard-link chat B's file into its home" "ln '$target/secret.txt' myhard && cat myhard"
  try "write outside its home (/var/tmp)" "echo x > /var/tmp/picortex-escape-$$"
  try "write system files (/etc/hosts)" "echo x >> /etc/hosts"
  try "reach chat B's tmux server" "tmux -S '$target/.picortex/tmux.sock' list-sessions"
  ;;
esac"#;

#[tokio::test]
async fn landlock_keeps_a_chats_agent_out_of_other_chats_files() {
    let abi = picortex_sandbox::confine::kernel_abi();
    if abi == 0 {
        println!("SKIP: the kernel has no Landlock; chats are not confined (isolation: degraded)");
        return;
    }
    probe_another_chat(IsolationMode::Landlock, &format!("Landlock ABI {abi}")).await;
}

#[tokio::test]
async fn the_sandbox_keeps_a_chats_agent_out_of_other_chats() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: per-chat users and namespaces need root (isolation: degraded without it)");
        return;
    }
    probe_another_chat(IsolationMode::Sandbox, "sandbox").await;
}

/// Chat B plants a secret; chat A's agent, through the daemon, tries to reach it and B's tmux
/// server, and to write outside its home. Each attempt prints PASS/FAIL/SKIP.
async fn probe_another_chat(mode: IsolationMode, layer: &str) {
    if !have_tmux() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    let stack = Stack::start_with(|c| {
        use_command_agent(c, root.path(), &["sh", "-c", PROBE_SCRIPT]);
        c.isolation.mode = mode;
    })
    .await;
    let (b, _) = stack.sim.dm("+15551230009", "plant").await;
    assert_eq!(reply_texts(&stack.sim, &b, 1).await, vec!["planted"]);
    let home_b = chat_home(root.path(), &b);
    assert!(home_b.join("secret.txt").is_file());

    let (a, _) = stack
        .sim
        .dm("+15551230008", &format!("probe {}", home_b.display()))
        .await;
    let report = reply_texts(&stack.sim, &a, 1).await.remove(0);
    let sandboxed = mode == IsolationMode::Sandbox;
    let mut failures = Vec::new();
    for line in report.lines() {
        let (what, result) = line.split_once('=').unwrap_or((line, "?"));
        match (result, what) {
            ("blocked", _) => println!("PASS: chat A's agent cannot {what} ({layer})"),
            ("open", w) if w.starts_with("write outside its home") && sandboxed => {
                // The sandbox's /var/tmp is its own: nothing reaches the host's.
                let leaked = std::fs::read_dir("/var/tmp").unwrap().flatten().any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("picortex-escape-")
                });
                if leaked {
                    println!("FAIL: chat A's agent can {what}: the file is on the host");
                    failures.push(line.to_owned());
                } else {
                    println!(
                        "PASS: chat A's agent writes /var/tmp privately, not the host's ({layer})"
                    );
                }
            }
            ("open", w) if w.starts_with("reach chat B's tmux server") && !sandboxed => println!(
                "SKIP: chat A's agent can {what}: Landlock cannot restrict connect(2) on socket \
                 paths; per-chat users and namespaces (the sandbox, as root) close it"
            ),
            _ => {
                println!("FAIL: chat A's agent can {what} ({layer})");
                failures.push(line.to_owned());
            }
        }
    }
    assert_eq!(report.lines().count(), 8, "{report}");
    assert!(failures.is_empty(), "{failures:?}");
    assert!(!home_b.join("evil.txt").exists());
}

#[tokio::test]
async fn the_owners_reset_forgets_the_chats_agent_session() {
    if !have_tmux() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    let owner = "+15551230010";
    let stack = Stack::start_with(|c| {
        use_command_agent(c, root.path(), &["cat"]);
        c.owner = Some(owner.into());
    })
    .await;
    let (chat, _) = stack.sim.dm(owner, "hello").await;
    assert_eq!(reply_texts(&stack.sim, &chat, 1).await, vec!["hello"]);
    // A session the agent would resume (Claude Code's id, as the runner stores it).
    let session = chat_home(root.path(), &chat).join(".picortex/session.json");
    std::fs::write(&session, r#"{"session_id": "old-session"}"#).unwrap();
    stack
        .sim
        .text(json!({"from": owner, "chat_id": chat, "text": "/picortex reset"}))
        .await;
    let replies = reply_texts(&stack.sim, &chat, 2).await;
    assert_eq!(
        replies[1],
        "Done: the next message here starts a fresh session."
    );
    assert!(!session.exists(), "the stored session is gone");
    // The chat keeps working.
    stack
        .sim
        .text(json!({"from": owner, "chat_id": chat, "text": "still there?"}))
        .await;
    assert_eq!(reply_texts(&stack.sim, &chat, 3).await[2], "still there?");
}

/// The layout `picortex demo` uses: the runner's binary in a directory that also holds the
/// daemon's data, with the chats' homes inside that data directory. The runner's directory is
/// exposed to the chat, the data inside it must stay hidden, and the home must stay writable.
#[tokio::test]
async fn the_sandbox_hides_the_daemons_data_beside_the_runner() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: per-chat users and namespaces need root");
        return;
    }
    if !have_tmux() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let runner = base.path().join("picortex-runner");
    std::fs::copy(runner_bin(), &runner).unwrap();
    let data = base.path().join("data");
    let chats = data.join("chats");
    std::fs::create_dir_all(&chats).unwrap();
    let _cleanup = Cleanup(chats.clone());
    let script = format!(
        "try() {{ if sh -c \"$2\" >/dev/null 2>&1; then echo \"$1=open\"; else echo \"$1=blocked\"; fi; }}
         try 'list the data directory' 'ls {data}/*.db'
         try 'read the database' 'head -c 16 {data}/picortex.db'
         try 'read the gateway key' 'cat {data}/gateway.key'
         echo mine > own.txt && echo 'write its home=open'",
        data = data.display()
    );
    let stack = Stack::start_with(|c| {
        use_command_agent(c, &chats, &["sh", "-c", &script]);
        c.data_dir = data.clone();
        c.agents.runner_bin = Some(runner.clone());
        c.isolation.mode = IsolationMode::Sandbox;
    })
    .await;
    let (chat, _) = stack.sim.dm("+15551230011", "look around").await;
    let report = reply_texts(&stack.sim, &chat, 1).await.remove(0);
    let mut failures = Vec::new();
    for line in report.lines() {
        let expected = if line.starts_with("write its home") {
            "open"
        } else {
            "blocked"
        };
        let (what, result) = line.split_once('=').unwrap_or((line, "?"));
        if result == expected {
            println!("PASS: with the runner beside the data, chat's agent: {what} = {result}");
        } else {
            println!("FAIL: with the runner beside the data, chat's agent: {what} = {result}");
            failures.push(line.to_owned());
        }
    }
    assert_eq!(report.lines().count(), 4, "{report}");
    assert!(failures.is_empty(), "{failures:?}");
    assert!(chat_home(&chats, &chat).join("own.txt").is_file());
}
