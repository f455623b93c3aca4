//! Texting the bot with the real Claude Code CLI as the agent, driven over stream-json by the
//! chat's runner in its tmux session, against the scripted model server: a Write tool call
//! creates the file in the chat's workspace and the reply arrives threaded; two chats stay
//! apart; a second turn after the runner went idle resumes the same session; a stream that goes
//! silent hits the watchdog and the chat is told. Each test prints SKIP when the CLI is absent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use mock_model::{Rule, Script, Step};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);

fn script() -> Script {
    Script::new()
        .rule(
            Rule::prompt_regex(r"write (?P<file>[a-z]+\.txt) saying (?P<body>.+)")
                .then(Step::tool_use(
                    "Write",
                    json!({"file_path": "{{cwd}}/{{file}}", "content": "{{body}}"}),
                ))
                .then(Step::text("Done: I wrote **{{file}}**.")),
        )
        .rule(Rule::prompt_contains("go quiet").then(Step::stall()))
        .rule(
            Rule::prompt_contains("what did I ask")
                .then(Step::text("You asked me to write a file.")),
        )
        .default_text("Hello from the mock model.")
}

async fn first_reply(sim: &Sim, chat: &str, n: usize) -> Vec<serde_json::Value> {
    eventually(WAIT, &format!("{n} replies"), || async {
        let r = sim.bot_messages(chat).await;
        (r.len() >= n).then_some(r)
    })
    .await
}

#[tokio::test]
async fn a_write_tool_call_creates_the_file_and_the_reply_is_threaded() {
    let Some(claude) = claude_bin() else { return };
    if !have_tmux() {
        return;
    }
    let model = mock_model(script()).await;
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    let stack =
        Stack::start_with(|c| use_claude_agent(c, root.path(), &claude, &model.base_url())).await;

    let (a, a_msg) = stack
        .sim
        .dm("+15551231001", "please write notes.txt saying alpha")
        .await;
    let (b, _) = stack
        .sim
        .dm("+15551231002", "please write notes.txt saying beta")
        .await;
    let reply_a = first_reply(&stack.sim, &a, 1).await.remove(0);
    first_reply(&stack.sim, &b, 1).await;
    assert_eq!(
        text_of(&reply_a),
        "Done: I wrote notes.txt.",
        "markdown shaped for iMessage"
    );
    assert_eq!(reply_to_of(&reply_a).as_deref(), Some(a_msg.as_str()));
    let home_a = chat_home(root.path(), &a);
    let home_b = chat_home(root.path(), &b);
    assert_eq!(
        std::fs::read_to_string(home_a.join("notes.txt")).unwrap(),
        "alpha"
    );
    assert_eq!(
        std::fs::read_to_string(home_b.join("notes.txt")).unwrap(),
        "beta"
    );

    // The agent got the texting system prompt, and the API key reached the model server.
    let requests = model.message_requests();
    assert!(
        requests.iter().any(|r| r
            .system
            .as_deref()
            .is_some_and(|s| s.contains("text message"))),
        "system prompt appended"
    );
    // The transcript in the chat's tmux window shows the tool call and the reply.
    let screen = picortex::workspace::Tmux::for_home(&home_a)
        .capture_agent()
        .unwrap();
    assert!(screen.contains("Write"), "{screen}");
    assert!(screen.contains("notes.txt"), "{screen}");
}

#[tokio::test]
async fn the_next_turn_resumes_the_same_session_after_the_runner_went_idle() {
    let Some(claude) = claude_bin() else { return };
    if !have_tmux() {
        return;
    }
    let model = mock_model(script()).await;
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    let stack = Stack::start_with(|c| {
        use_claude_agent(c, root.path(), &claude, &model.base_url());
        c.agents.idle_timeout_secs = 1;
    })
    .await;
    let (chat, _) = stack
        .sim
        .dm("+15551231003", "please write todo.txt saying milk")
        .await;
    first_reply(&stack.sim, &chat, 1).await;
    let home = chat_home(root.path(), &chat);
    let session: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join(".picortex/session.json")).unwrap())
            .unwrap();
    // Let the runner exit on idle, so the next turn starts a new claude with --resume.
    let sock = home.join(".picortex/runner.sock");
    eventually(
        Duration::from_secs(20),
        "the idle runner to exit",
        || async { (!sock.exists()).then_some(()) },
    )
    .await;
    stack
        .sim
        .text(json!({"from": "+15551231003", "chat_id": chat, "text": "what did I ask?"}))
        .await;
    let replies = first_reply(&stack.sim, &chat, 2).await;
    assert_eq!(text_of(&replies[1]), "You asked me to write a file.");
    let last = model
        .message_requests()
        .into_iter()
        .rev()
        .find(|r| {
            r.prompt
                .as_deref()
                .is_some_and(|p| p.contains("what did I ask"))
        })
        .unwrap();
    let history = serde_json::to_string(&last.messages).unwrap();
    assert!(
        history.contains("please write todo.txt saying milk"),
        "the resumed session carries the first turn"
    );
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join(".picortex/session.json")).unwrap())
            .unwrap();
    assert_eq!(session["session_id"], again["session_id"]);
}

#[tokio::test]
async fn a_silent_stream_hits_the_watchdog_and_the_chat_is_told() {
    let Some(claude) = claude_bin() else { return };
    if !have_tmux() {
        return;
    }
    let model = mock_model(script()).await;
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    let stack = Stack::start_with(|c| {
        use_claude_agent(c, root.path(), &claude, &model.base_url());
        c.agents.watchdog_secs = 3;
    })
    .await;
    let (chat, _) = stack.sim.dm("+15551231004", "go quiet please").await;
    let reply = first_reply(&stack.sim, &chat, 1).await.remove(0);
    let text = text_of(&reply);
    assert!(
        text.contains("couldn't finish") && text.contains("request id"),
        "{text}"
    );
    // The chat works again afterwards.
    stack
        .sim
        .text(json!({"from": "+15551231004", "chat_id": chat, "text": "hello again"}))
        .await;
    let replies = first_reply(&stack.sim, &chat, 2).await;
    assert_eq!(text_of(&replies[1]), "Hello from the mock model.");
}
