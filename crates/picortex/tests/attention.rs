//! Attention gating against linq-sim group scenarios, with mock-model scripting the
//! discriminator: quiet during chatter, present when addressed, the owner in control, and every
//! decision recorded with its reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::future::BoxFuture;
use mock_model::{Rule, Script, Step};
use picortex::agent::{Agent, AgentError, TurnAccounting, TurnReply, TurnRequest};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);
const OWNER: &str = "+15550000001";
const ALICE: &str = "+15550000002";
const BOB: &str = "+15550000003";
const CAROL: &str = "+15550000004";

const NO: &str = r#"{"should_respond": false, "reason": "chatter between people"}"#;
const YES: &str = r#"{"should_respond": true, "reason": "a question the bot can answer"}"#;

/// A rule on the new message only (the rendered prompt also quotes the earlier ones).
fn new_message_contains(word: &str) -> Rule {
    Rule::prompt_regex(format!(r"<message [^>]*>[^<]*{word}"))
}

fn discriminator_script() -> Script {
    Script::new()
        .rule(new_message_contains("deploy").then(Step::text(YES)))
        .rule(new_message_contains("garble").then(Step::text("Definitely, I would answer that!")))
        .rule(Rule::prompt_contains("not in the required format").then(Step::text(YES)))
        .rule(new_message_contains("slowly").then(Step::text(YES).delay_ms(3000)))
        .rule(Rule::prompt_contains("ALWAYS-ANSWER-MARKER").then(Step::text(YES)))
        .default_text(NO)
}

/// Remembers every prompt it is given and answers "ok".
#[derive(Default)]
struct Recorder {
    prompts: Mutex<Vec<String>>,
}

impl Agent for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn run_turn(&self, request: TurnRequest) -> BoxFuture<'_, Result<TurnReply, AgentError>> {
        self.prompts.lock().unwrap().push(request.prompt());
        Box::pin(async {
            Ok(TurnReply {
                text: "ok".into(),
                attachments: Vec::new(),
                accounting: TurnAccounting::default(),
            })
        })
    }
}

async fn start(
    model: &mock_model::MockModelHandle,
    tweak: impl FnOnce(&mut picortex::config::Config),
) -> Stack {
    let url = model.base_url();
    Stack::start_with(move |c| {
        c.owner = Some(OWNER.into());
        c.bot_name = "pi".into();
        c.attention.aliases = vec!["robo".into()];
        c.agents.anthropic_base_url = Some(url);
        c.agents.anthropic_api_key = Some("test-key".into());
        tweak(c);
    })
    .await
}

async fn group(stack: &Stack, from: &str, text: &str) -> (String, String) {
    let others: Vec<&str> = [ALICE, BOB, CAROL]
        .into_iter()
        .filter(|h| *h != from)
        .collect();
    stack
        .sim
        .text(json!({"from": from, "group": others, "text": text}))
        .await
}

async fn say(stack: &Stack, chat: &str, from: &str, text: &str) -> String {
    stack
        .sim
        .text(json!({"from": from, "chat_id": chat, "text": text}))
        .await
        .1
}

/// Waits until the gate has decided `message_id`, and returns (status, rule, reason).
async fn decision(stack: &Stack, message_id: &str) -> (String, String, String) {
    let store = stack.daemon.store.clone();
    let id = message_id.to_owned();
    eventually(WAIT, "a gate decision", || {
        let (store, id) = (store.clone(), id.clone());
        async move {
            let row: (Option<String>, Option<String>, Option<String>) = store
                .read(move |c| {
                    Ok(c.query_row(
                        "SELECT gate_status, gate_rule, gate_reason FROM messages WHERE id = ?1",
                        [id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )?)
                })
                .await
                .ok()?;
            match row {
                (Some(s), rule, reason) if s != "pending" => {
                    Some((s, rule.unwrap_or_default(), reason.unwrap_or_default()))
                }
                _ => None,
            }
        }
    })
    .await
}

async fn bot_texts(stack: &Stack, chat: &str, n: usize) -> Vec<String> {
    eventually(WAIT, &format!("{n} bot messages"), || async {
        let r = stack.sim.bot_messages(chat).await;
        (r.len() >= n).then(|| r.iter().map(text_of).collect::<Vec<_>>())
    })
    .await
}

#[tokio::test]
async fn group_chatter_is_ignored_while_mentions_and_replies_to_the_bot_are_answered() {
    let model = mock_model(discriminator_script()).await;
    let stack = start(&model, |_| {}).await;
    let (chat, lunch) = group(&stack, ALICE, "anyone for lunch?").await;
    let mention = say(&stack, &chat, BOB, "@Pi, what's 2+2?").await;
    let chatter = say(
        &stack,
        &chat,
        CAROL,
        "pie sounds good, see https://pi.dev later",
    )
    .await;
    assert_eq!(decision(&stack, &lunch).await.0, "skip");
    assert_eq!(
        decision(&stack, &mention).await,
        (
            "respond".into(),
            "mention".into(),
            decision(&stack, &mention).await.2
        )
    );
    assert_eq!(decision(&stack, &chatter).await.0, "skip");
    let replies = bot_texts(&stack, &chat, 1).await;
    assert_eq!(replies, vec!["echo: @Pi, what's 2+2?"]);

    // An inline reply to the bot is answered without a mention; chatter after it is not.
    let bot_msg = stack.sim.bot_messages(&chat).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, reply) = stack
        .sim
        .text(json!({"from": ALICE, "chat_id": chat, "text": "thanks!", "reply_to": bot_msg}))
        .await;
    assert_eq!(decision(&stack, &reply).await.1, "reply_to_bot");
    let later = say(&stack, &chat, CAROL, "ok see you all at 1").await;
    assert_eq!(decision(&stack, &later).await.0, "skip");
    assert_eq!(bot_texts(&stack, &chat, 2).await.len(), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stack.sim.bot_messages(&chat).await.len(),
        2,
        "nothing else answered"
    );
    // No model call was needed for any of this.
    assert!(model.message_requests().is_empty());
}

#[tokio::test]
async fn silent_records_everything_and_never_answers() {
    let model = mock_model(discriminator_script()).await;
    let stack = start(&model, |_| {}).await;
    let (chat, _) = stack
        .sim
        .text(json!({"from": OWNER, "group": [ALICE, BOB], "text": "/picortex attention silent"}))
        .await;
    assert_eq!(
        bot_texts(&stack, &chat, 1).await,
        vec!["Attention here is now silent."]
    );
    let m1 = say(&stack, &chat, ALICE, "pi, are you there?").await;
    let m2 = say(&stack, &chat, BOB, "hey pi").await;
    assert_eq!(decision(&stack, &m1).await.0, "skip");
    assert_eq!(decision(&stack, &m2).await.0, "skip");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stack.sim.bot_messages(&chat).await.len(),
        1,
        "only the command's answer"
    );
    // The owner can still talk to it.
    say(&stack, &chat, OWNER, "/picortex attention mentions-only").await;
    assert_eq!(
        bot_texts(&stack, &chat, 2).await[1],
        "Attention here is now mentions-only."
    );
}

#[tokio::test]
async fn a_dm_answers_everything_and_owner_commands_work_there() {
    let model = mock_model(discriminator_script()).await;
    let stack = start(&model, |_| {}).await;
    let (dm, _) = stack.sim.dm(OWNER, "hello").await;
    assert_eq!(bot_texts(&stack, &dm, 1).await[0], "echo: hello");
    // (Waiting for each answer: messages sent during a turn would fold into one reply.)
    say(&stack, &dm, OWNER, "just chatting, no question").await;
    assert_eq!(
        bot_texts(&stack, &dm, 2).await[1],
        "echo: just chatting, no question"
    );
    say(&stack, &dm, OWNER, "/picortex quieter").await;
    assert_eq!(
        bot_texts(&stack, &dm, 3).await[2],
        "Quieter: attention here is now mentions-only."
    );
    say(&stack, &dm, OWNER, "pi, be louder here").await;
    assert_eq!(
        bot_texts(&stack, &dm, 4).await[3],
        "Louder: attention here is now always."
    );
    say(&stack, &dm, OWNER, "/picortex status").await;
    let status = &bot_texts(&stack, &dm, 5).await[4];
    assert!(status.contains("Attention: always"), "{status}");
    assert!(status.contains("Agent: echo"), "{status}");
    say(&stack, &dm, OWNER, "/picortex frobnicate").await;
    let help = &bot_texts(&stack, &dm, 6).await[5];
    assert!(
        help.contains("/picortex attention"),
        "unknown commands get the help: {help}"
    );
}

#[tokio::test]
async fn anyone_but_the_owner_is_refused_politely() {
    let model = mock_model(discriminator_script()).await;
    let stack = start(&model, |_| {}).await;
    let (chat, first) = group(&stack, ALICE, "/picortex attention always").await;
    let attempts = [
        "/picortex status",
        "/picortex reset",
        "/picortex louder",
        "/picortex quieter",
        "/picortex help",
        "pi, be quieter here",
    ];
    let mut ids = vec![first];
    for text in attempts {
        ids.push(say(&stack, &chat, BOB, text).await);
    }
    for id in &ids {
        assert_eq!(decision(&stack, id).await.0, "refused");
    }
    let texts = bot_texts(&stack, &chat, ids.len()).await;
    let refusal = picortex::gate::commands::refusal_text();
    assert!(texts.iter().all(|t| *t == refusal), "{texts:?}");
    // Nothing changed: chatter is still ignored (mentions-only).
    let chatter = say(&stack, &chat, ALICE, "anyway").await;
    assert_eq!(decision(&stack, &chatter).await.0, "skip");
}

#[tokio::test]
async fn the_discriminator_decides_in_discriminate_mode_with_fallbacks_per_chat_kind() {
    let model = mock_model(discriminator_script()).await;
    let stack = start(&model, |c| c.attention.discriminator_timeout_ms = 800).await;
    let (chat, _) = stack
        .sim
        .text(json!({"from": OWNER, "group": [ALICE, BOB], "text": "/picortex attention discriminate"}))
        .await;
    bot_texts(&stack, &chat, 1).await;
    let yes = say(&stack, &chat, ALICE, "how do we deploy the staging server?").await;
    let no = say(&stack, &chat, BOB, "lol same").await;
    let garbled = say(&stack, &chat, ALICE, "garble this please").await;
    let slow = say(&stack, &chat, BOB, "answer slowly").await;
    let (s, rule, reason) = decision(&stack, &yes).await;
    assert_eq!(
        (s.as_str(), rule.as_str()),
        ("respond", "model"),
        "{reason}"
    );
    assert_eq!(reason, "a question the bot can answer");
    assert_eq!(decision(&stack, &no).await.0, "skip");
    let (s, rule, _) = decision(&stack, &garbled).await;
    assert_eq!(
        (s.as_str(), rule.as_str()),
        ("respond", "model"),
        "one retry with a reformat instruction"
    );
    let (s, rule, _) = decision(&stack, &slow).await;
    assert_eq!(
        (s.as_str(), rule.as_str()),
        ("skip", "fallback"),
        "too slow: quiet in a group"
    );

    // The discriminator saw the chat's recent messages and metadata.
    let last = model
        .message_requests()
        .into_iter()
        .find(|r| r.prompt.as_deref().is_some_and(|p| p.contains("lol same")))
        .unwrap();
    let prompt = last.prompt.unwrap();
    assert!(
        prompt.contains("how do we deploy the staging server?"),
        "{prompt}"
    );
    assert!(prompt.contains(OWNER), "{prompt}");

    // In a DM the same failure answers.
    let (dm, _) = stack
        .sim
        .dm(OWNER, "/picortex attention discriminate")
        .await;
    bot_texts(&stack, &dm, 1).await;
    let slow_dm = say(&stack, &dm, OWNER, "answer slowly").await;
    let (s, rule, _) = decision(&stack, &slow_dm).await;
    assert_eq!((s.as_str(), rule.as_str()), ("respond", "fallback"));

    // /health counts the decisions.
    let health: serde_json::Value = stack
        .sim
        .http
        .get(format!("{}/health", stack.daemon.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        health["attention"]["discriminator_skipped_24h"], 1,
        "{health}"
    );
    assert!(
        health["attention"]["discriminator_fallbacks_24h"]
            .as_i64()
            .unwrap()
            >= 2,
        "{health}"
    );
}

#[tokio::test]
async fn the_daily_budget_falls_back_to_mentions_only_and_tells_the_owner_once() {
    let model = mock_model(discriminator_script()).await;
    let stack = start(&model, |c| c.attention.discriminator_daily_calls = 2).await;
    let (owner_dm, _) = stack.sim.dm(OWNER, "hi").await;
    bot_texts(&stack, &owner_dm, 1).await;
    let (chat, _) = stack
        .sim
        .text(json!({"from": OWNER, "group": [ALICE, BOB], "text": "/picortex attention discriminate"}))
        .await;
    bot_texts(&stack, &chat, 1).await;
    let mut ids = Vec::new();
    for text in ["deploy one", "deploy two", "deploy three", "deploy four"] {
        ids.push(say(&stack, &chat, ALICE, text).await);
    }
    assert_eq!(decision(&stack, &ids[0]).await.1, "model");
    assert_eq!(decision(&stack, &ids[1]).await.1, "model");
    assert_eq!(
        decision(&stack, &ids[2]).await,
        (
            "skip".into(),
            "budget".into(),
            decision(&stack, &ids[2]).await.2
        )
    );
    assert_eq!(decision(&stack, &ids[3]).await.1, "budget");
    // A mention still works past the budget.
    let mention = say(&stack, &chat, ALICE, "pi, deploy five?").await;
    assert_eq!(decision(&stack, &mention).await.1, "mention");
    let owner_texts = bot_texts(&stack, &owner_dm, 2).await;
    assert!(
        owner_texts[1].contains("attention checks"),
        "{owner_texts:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stack.sim.bot_messages(&owner_dm).await.len(),
        2,
        "told once"
    );
    assert_eq!(model.message_requests().len(), 2);
}

#[tokio::test]
async fn unanswered_messages_reach_the_next_answered_turn_exactly_once() {
    let model = mock_model(discriminator_script()).await;
    let recorder = Arc::new(Recorder::default());
    let url = model.base_url();
    let stack = Stack::start_with_agent(
        move |c| {
            c.owner = Some(OWNER.into());
            c.agents.anthropic_base_url = Some(url);
            c.agents.anthropic_api_key = Some("k".into());
        },
        recorder.clone(),
    )
    .await;
    let (chat, _) = group(&stack, ALICE, "lunch at noon?").await;
    say(&stack, &chat, BOB, "sure").await;
    say(&stack, &chat, ALICE, "pi, book a table").await;
    bot_texts(&stack, &chat, 1).await;
    say(&stack, &chat, CAROL, "I'm in too").await;
    say(&stack, &chat, BOB, "hey pi, make it four").await;
    bot_texts(&stack, &chat, 2).await;
    let prompts = recorder.prompts.lock().unwrap().clone();
    assert_eq!(
        prompts,
        vec![
            format!(
                "Since your last reply:\n{ALICE}: lunch at noon?\n{BOB}: sure\n\nNow:\n{ALICE}: pi, book a table"
            ),
            format!(
                "Since your last reply:\n{CAROL}: I'm in too\n\nNow:\n{BOB}: hey pi, make it four"
            ),
        ]
    );
}

#[tokio::test]
async fn a_prompt_edited_in_the_chats_repository_changes_the_next_decision() {
    let model = mock_model(discriminator_script()).await;
    let root = tempfile::tempdir().unwrap();
    let url = model.base_url();
    let workspace_root = root.path().to_owned();
    let stack = Stack::start_with_agent(
        move |c| {
            c.owner = Some(OWNER.into());
            c.agents.anthropic_base_url = Some(url);
            c.agents.anthropic_api_key = Some("k".into());
            // Homes exist for runner agents; the recorder stands in for the agent itself.
            c.agent = picortex::config::AgentKind::Command;
            c.agents.command = vec!["cat".into()];
            c.workspace_root = workspace_root;
        },
        Arc::new(Recorder::default()),
    )
    .await;
    let (chat, _) = stack
        .sim
        .text(json!({"from": OWNER, "group": [ALICE, BOB], "text": "/picortex attention discriminate"}))
        .await;
    bot_texts(&stack, &chat, 1).await;
    let before = say(&stack, &chat, ALICE, "nice weather").await;
    assert_eq!(decision(&stack, &before).await.0, "skip");

    let home = chat_home(root.path(), &chat);
    let prompt_file = home.join(".picortex/prompts/discriminator.md");
    let mut prompt = std::fs::read_to_string(&prompt_file).unwrap();
    prompt.push_str("\nALWAYS-ANSWER-MARKER\n");
    std::fs::write(&prompt_file, prompt).unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&home)
            .args(["-c", "user.name=owner", "-c", "user.email=owner@localhost"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    git(&["commit", "-qam", "Answer everything"]);
    assert_eq!(
        git(&["log", "--oneline"]).lines().count(),
        2,
        "the edit is versioned"
    );

    let after = say(&stack, &chat, ALICE, "nice weather again").await;
    assert_eq!(decision(&stack, &after).await.0, "respond");
}
