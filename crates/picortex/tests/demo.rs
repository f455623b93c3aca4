//! `picortex demo` as the README runs it: the binary starts the simulator and the daemon
//! together, a text sent the way the simulator's page sends it is answered in its thread, and
//! Ctrl-C stops everything, the chats' processes included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test]
async fn the_demo_answers_a_text_and_leaves_nothing_running_when_stopped() {
    if !have_tmux() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let chats = data.path().join("chats");
    let _cleanup = Cleanup(chats.clone());
    // The sandbox helper and the runner beside the binary, where the demo looks for them.
    let _ = (sandbox_bin(), runner_bin());
    let log = std::fs::File::create(data.path().join("demo.log")).unwrap();
    let mut demo = tokio::process::Command::new(picortex_bin())
        .args(["demo", "--port", "0", "--sim-port", "0", "--data"])
        .arg(data.path())
        // Never the real model from a test: with Claude Code installed, the demo runs it
        // against its scripted model.
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut banner = BufReader::new(demo.stdout.take().unwrap()).lines();
    let (mut sim_url, mut agent) = (String::new(), String::new());
    tokio::time::timeout(WAIT, async {
        while let Some(line) = banner.next_line().await.unwrap() {
            if let Some(url) = line.trim().strip_prefix("Text the bot here:") {
                sim_url = url.trim().trim_end_matches('/').to_owned();
            } else if let Some(name) = line.trim().strip_prefix("Agent:") {
                agent = name.trim().to_owned();
            } else if line.starts_with("Press Ctrl-C") {
                return;
            }
        }
        panic!("the demo exited before it was ready");
    })
    .await
    .expect("the demo did not print its banner");
    assert!(sim_url.starts_with("http://127.0.0.1:"), "{sim_url}");
    let claude = agent.starts_with("Claude Code");

    // What the simulator's page does when the user texts the bot.
    let http = reqwest::Client::new();
    let text = if claude {
        "write a file called hello.txt saying hi"
    } else {
        "hello"
    };
    let (chat, message) = sim_text(
        &http,
        &sim_url,
        json!({"from": "+15551239001", "text": text}),
    )
    .await;
    let reply = eventually(WAIT, "the bot's reply on the page", || async {
        sim_page_chat(&http, &sim_url, &chat).await?["messages"]
            .as_array()?
            .iter()
            .find(|m| m["is_from_me"] == true)
            .cloned()
    })
    .await;
    assert_eq!(reply_to_of(&reply).as_deref(), Some(message.as_str()));
    let home = chat_home(&chats, &chat);
    if claude {
        let written = std::fs::read_to_string(home.join("hello.txt")).unwrap();
        assert_eq!(written.trim(), "hi");
        println!("PASS: the demo's Claude Code wrote hello.txt and answered in the thread");
    } else {
        assert_eq!(text_of(&reply), "echo: hello");
        println!("PASS: the demo's echo agent answered in the thread ({agent})");
    }
    let tmux = picortex::workspace::Tmux::for_home(&home);
    if claude {
        assert!(
            tmux.has_session(),
            "the chat's tmux server runs after a turn"
        );
    }

    // Ctrl-C.
    let pid = nix::unistd::Pid::from_raw(demo.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(WAIT, demo.wait())
        .await
        .expect("the demo did not stop after Ctrl-C")
        .unwrap();
    assert!(status.success(), "the demo exited with {status}");
    let mut rest = Vec::new();
    while let Ok(Some(line)) = banner.next_line().await {
        rest.push(line);
    }
    assert!(
        rest.iter().any(|l| l.trim() == "stopped 1 chat(s)"),
        "{rest:?}"
    );

    assert!(!tmux.has_session(), "the chat's tmux server stopped");
    if nix::unistd::geteuid().is_root() && claude {
        let uid = std::fs::metadata(&home).unwrap().uid();
        let left = processes_of(uid);
        assert!(left.is_empty(), "the chat's processes live on: {left:?}");
    }
    let config = picortex::config::Config {
        data_dir: data.path().to_owned(),
        ..picortex::config::Config::default()
    };
    let store = picortex::store::Store::open(&config.database_path()).unwrap();
    let state = store
        .read(move |c| picortex::lifecycle::state_of(c, &chat))
        .await
        .unwrap();
    assert_eq!(state.as_deref(), Some("hibernated"));
    assert!(home.is_dir(), "the chat's home stays for the next demo");
    println!("PASS: Ctrl-C stops the demo and the chat's processes; the chat is hibernated");
}

/// The processes whose real uid is `uid`: pid, state and command line of each. Zombies are
/// left out: they run nothing, and their parent (or init) reaps them in a moment.
fn processes_of(uid: u32) -> Vec<String> {
    let uid = uid.to_string();
    process_statuses()
        .into_iter()
        .filter_map(|(dir, status)| {
            let state = status_field(&status, "State:").join(" ");
            (status_field(&status, "Uid:").first() == Some(&uid.as_str())
                && !state.starts_with('Z'))
            .then(|| {
                let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
                format!(
                    "{} ({state}) {}",
                    dir.display(),
                    String::from_utf8_lossy(&cmdline).replace('\0', " ")
                )
            })
        })
        .collect()
}
