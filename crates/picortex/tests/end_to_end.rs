//! The whole path on loopback: a text sent in linq-sim comes back as a threaded reply, in DMs
//! and groups, with inline replies, and its delivery status is followed to `read`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_dm_gets_an_echo_as_an_inline_reply() {
    let stack = Stack::start().await;
    let (chat_id, message_id) = stack.sim.dm("+15551230001", "hello there").await;
    let reply = eventually(WAIT, "the bot's reply", || async {
        stack.sim.bot_messages(&chat_id).await.into_iter().next()
    })
    .await;
    assert_eq!(text_of(&reply), "echo: hello there");
    assert_eq!(reply_to_of(&reply).as_deref(), Some(message_id.as_str()));

    // The delivery status follows the simulator's lifecycle webhooks to `read`.
    let store = stack.daemon.store.clone();
    eventually(WAIT, "delivery status read", || {
        let store = store.clone();
        async move {
            let status: String = store
                .read(|c| Ok(c.query_row("SELECT status FROM outbox", [], |r| r.get(0))?))
                .await
                .ok()?;
            (status == "read").then_some(())
        }
    })
    .await;
    stack.daemon.shutdown().await;
}

#[tokio::test]
async fn groups_and_inline_replies_thread_correctly() {
    let stack = Stack::start().await;
    let (chat_id, first) = stack
        .sim
        .text(json!({"from": "+15551230001", "group": ["+15551230002", "+15551230003"], "text": "hey pi, group hello"}))
        .await;
    eventually(WAIT, "first reply", || async {
        (stack.sim.bot_messages(&chat_id).await.len() == 1).then_some(())
    })
    .await;
    // Another member answers the bot's reply inline (a reply to the bot is answered in a group).
    let bot_reply = stack.sim.bot_messages(&chat_id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (same_chat, second) = stack
        .sim
        .text(json!({"from": "+15551230002", "chat_id": chat_id, "text": "replying to you", "reply_to": bot_reply}))
        .await;
    assert_eq!(same_chat, chat_id);
    let replies = eventually(WAIT, "second reply", || async {
        let r = stack.sim.bot_messages(&chat_id).await;
        (r.len() == 2).then_some(r)
    })
    .await;
    let second_reply = replies
        .iter()
        .find(|m| text_of(m) == "echo: replying to you")
        .expect("echo of the second message");
    assert_eq!(reply_to_of(second_reply).as_deref(), Some(second.as_str()));
    // The inbound inline reply is recorded with its target.
    let reply_to: Option<String> = stack
        .daemon
        .store
        .read(move |c| {
            Ok(c.query_row(
                "SELECT reply_to FROM messages WHERE id = ?1",
                [second],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(reply_to.as_deref(), Some(bot_reply.as_str()));
    let first_reply = &stack.sim.bot_messages(&chat_id).await[0];
    assert_eq!(reply_to_of(first_reply).as_deref(), Some(first.as_str()));
}

#[tokio::test]
async fn many_chats_each_get_their_own_replies() {
    let stack = Stack::start().await;
    let mut sent = Vec::new();
    for i in 0..10 {
        let from = format!("+1555123{i:04}");
        let text = format!("message {i}");
        let (chat_id, _) = stack.sim.dm(&from, &text).await;
        sent.push((chat_id, text));
    }
    for (chat_id, text) in &sent {
        let reply = eventually(WAIT, "reply", || async {
            stack.sim.bot_messages(chat_id).await.into_iter().next()
        })
        .await;
        assert_eq!(text_of(&reply), format!("echo: {text}"));
    }
}

/// Echoes, holding its first turn until released, and counts the turns running at once.
#[derive(Default)]
struct FirstTurnHeld {
    calls: std::sync::atomic::AtomicUsize,
    running: std::sync::atomic::AtomicUsize,
    most_at_once: std::sync::atomic::AtomicUsize,
    release: tokio::sync::Notify,
}

impl picortex::agent::Agent for FirstTurnHeld {
    fn name(&self) -> &'static str {
        "first-turn-held"
    }

    fn run_turn(
        &self,
        request: picortex::agent::TurnRequest,
    ) -> futures::future::BoxFuture<
        '_,
        Result<picortex::agent::TurnReply, picortex::agent::AgentError>,
    > {
        use std::sync::atomic::Ordering::SeqCst;
        Box::pin(async move {
            let now = self.running.fetch_add(1, SeqCst) + 1;
            self.most_at_once.fetch_max(now, SeqCst);
            if self.calls.fetch_add(1, SeqCst) == 0 {
                self.release.notified().await;
            }
            self.running.fetch_sub(1, SeqCst);
            picortex::agent::EchoAgent.run_turn(request).await
        })
    }
}

/// With one turn slot, turns queued behind a running one (in other chats) each run once the
/// slot is handed on, never two at a time, and every message is answered.
#[tokio::test]
async fn one_turn_slot_is_handed_from_turn_to_turn() {
    use std::sync::atomic::Ordering::SeqCst;
    let agent = std::sync::Arc::new(FirstTurnHeld::default());
    let stack = Stack::start_with_agent(|c| c.turns.max_concurrent = 1, agent.clone()).await;
    let (first, _) = stack.sim.dm("+15551230001", "first").await;
    eventually(WAIT, "the first turn to start", || async {
        (agent.calls.load(SeqCst) == 1).then_some(())
    })
    .await;
    let (second, _) = stack.sim.dm("+15551230002", "second").await;
    let (third, _) = stack.sim.dm("+15551230003", "third").await;
    eventually(WAIT, "two turns queued behind the first", || async {
        let counts = stack
            .daemon
            .store
            .read(picortex::store::turns::counts)
            .await
            .unwrap();
        counts
            .iter()
            .any(|(status, n)| status == "queued" && *n == 2)
            .then_some(())
    })
    .await;
    agent.release.notify_one();
    for (chat, text) in [(first, "first"), (second, "second"), (third, "third")] {
        assert_eq!(
            replies(&stack.sim, &chat, 1).await,
            [format!("echo: {text}")]
        );
    }
    assert_eq!(agent.calls.load(SeqCst), 3);
    assert_eq!(agent.most_at_once.load(SeqCst), 1);
}
