//! The model gateway against mock-model as the upstream: a chat's token is swapped for the real
//! key and the request forwarded (JSON and streaming, on the daemon's port and on the unix
//! socket), usage lands in the chat's day, wrong or missing tokens get 401 and reach nothing,
//! the real key never comes back, a spent budget gets 429 and the chat exactly one budget
//! message instead of a turn, and a real Claude Code turn goes through the gateway (SKIP when
//! the CLI or tmux is absent).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use common::*;
use mock_model::Script;
use picortex::store::usage::{self, DayUsage};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const REAL_KEY: &str = "sk-ant-real-key-that-must-stay-in-the-daemon";
const WAIT: Duration = Duration::from_secs(20);

fn script() -> Script {
    Script::new().default_text("Hello from the mock model.")
}

async fn gateway_stack(
    model: &mock_model::MockModelHandle,
    tweak: impl FnOnce(&mut picortex::config::Config),
) -> Stack {
    let upstream = model.base_url();
    Stack::start_with(move |c| {
        c.agents.anthropic_base_url = Some(upstream);
        c.agents.anthropic_api_key = Some(REAL_KEY.into());
        tweak(c);
    })
    .await
}

fn messages_url(stack: &Stack) -> String {
    format!("{}/gateway/v1/messages?beta=true", stack.daemon.base_url())
}

fn body(stream: bool) -> Value {
    json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 256,
        "stream": stream,
        "messages": [{"role": "user", "content": "hello there"}],
    })
}

async fn usage_today(stack: &Stack, chat: &str) -> DayUsage {
    let (chat, day) = (chat.to_owned(), picortex::gateway::utc_day());
    stack
        .daemon
        .store
        .read(move |c| usage::day_usage(c, &chat, &day))
        .await
        .unwrap()
}

async fn metered(stack: &Stack, chat: &str, requests: i64) -> DayUsage {
    eventually(WAIT, "the request to be metered", || async {
        let u = usage_today(stack, chat).await;
        (u.requests >= requests).then_some(u)
    })
    .await
}

fn assert_no_real_key(headers: &reqwest::header::HeaderMap, body: &str) {
    assert!(
        !body.contains(REAL_KEY),
        "the real key is in a response body"
    );
    for (name, value) in headers {
        assert!(
            !String::from_utf8_lossy(value.as_bytes()).contains(REAL_KEY),
            "the real key is in response header {name}"
        );
    }
}

#[tokio::test]
async fn a_chat_token_is_swapped_for_the_real_key_and_the_answer_is_metered() {
    let model = mock_model(script()).await;
    let stack = gateway_stack(&model, |_| {}).await;
    let token = stack.daemon.gateway.issue_token("chat-json").await.unwrap();
    assert!(!token.contains(REAL_KEY));
    assert_eq!(
        token,
        stack.daemon.gateway.issue_token("chat-json").await.unwrap(),
        "a chat keeps its token"
    );

    let resp = reqwest::Client::new()
        .post(messages_url(&stack))
        .header("x-api-key", &token)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "claude-code-20250219")
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    assert_no_real_key(&headers, &text);
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["content"][0]["text"], "Hello from the mock model.");

    let seen = model.message_requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(
        r.api_key.as_deref(),
        Some(REAL_KEY),
        "the real key is injected"
    );
    assert_eq!(r.query.as_deref(), Some("beta=true"));
    assert_eq!(
        r.headers.get("anthropic-beta").map(String::as_str),
        Some("claude-code-20250219")
    );
    assert!(
        r.headers.values().all(|v| !v.contains(&token)),
        "the chat's token is not forwarded: {:?}",
        r.headers
    );

    let u = metered(&stack, "chat-json", 1).await;
    assert_eq!(u.requests, 1);
    assert_eq!(
        u.input_tokens,
        answer["usage"]["input_tokens"].as_i64().unwrap()
    );
    assert_eq!(
        u.output_tokens,
        answer["usage"]["output_tokens"].as_i64().unwrap()
    );
    // claude-haiku-4-5: $1 in, $5 out per million tokens = 1 and 5 micro-dollars per token.
    assert_eq!(u.cost_micros, u.input_tokens + 5 * u.output_tokens);

    // Claude Code's warm-up on the base URL is answered by the gateway itself.
    let warm = reqwest::Client::new()
        .head(format!("{}/gateway", stack.daemon.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    assert_eq!(model.requests().len(), 1, "the warm-up is not forwarded");

    // count_tokens passes through too, and is not metered.
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/gateway/v1/messages/count_tokens",
            stack.daemon.base_url()
        ))
        .bearer_auth(&token)
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let counted: Value = resp.json().await.unwrap();
    assert!(counted["input_tokens"].as_i64().unwrap() > 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(usage_today(&stack, "chat-json").await.requests, 1);
    stack.daemon.shutdown().await;
}

#[tokio::test]
async fn a_stream_passes_through_and_its_usage_is_metered() {
    let model = mock_model(script()).await;
    let stack = gateway_stack(&model, |_| {}).await;
    let token = stack
        .daemon
        .gateway
        .issue_token("chat-stream")
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(messages_url(&stack))
        .bearer_auth(&token)
        .header("anthropic-version", "2023-06-01")
        .json(&body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    assert_no_real_key(&headers, &text);
    for event in [
        "message_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
    ] {
        assert!(
            text.contains(&format!("event: {event}")),
            "{event} in {text}"
        );
    }
    // What the stream itself reported: input from message_start, output from message_delta.
    let mut input = 0;
    let mut output = 0;
    for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["type"].as_str() {
            Some("message_start") => {
                input = v["message"]["usage"]["input_tokens"].as_i64().unwrap()
            }
            Some("message_delta") => output = v["usage"]["output_tokens"].as_i64().unwrap(),
            _ => {}
        }
    }
    assert!(input > 0 && output > 0);
    assert_eq!(
        model.message_requests()[0].api_key.as_deref(),
        Some(REAL_KEY)
    );
    let u = metered(&stack, "chat-stream", 1).await;
    assert_eq!((u.input_tokens, u.output_tokens), (input, output));
    assert_eq!(u.cost_micros, input + 5 * output);
    stack.daemon.shutdown().await;
}

#[tokio::test]
async fn wrong_or_missing_tokens_get_401_and_nothing_reaches_the_model() {
    let model = mock_model(script()).await;
    let stack = gateway_stack(&model, |_| {}).await;
    let real_token = stack.daemon.gateway.issue_token("chat-auth").await.unwrap();
    let client = reqwest::Client::new();
    let attempts: Vec<(&str, Option<(&str, String)>)> = vec![
        ("no token", None),
        ("empty", Some(("x-api-key", String::new()))),
        (
            "made up",
            Some(("x-api-key", format!("pcx_gw_{}", "0".repeat(64)))),
        ),
        ("the real key", Some(("x-api-key", REAL_KEY.to_owned()))),
        (
            "a token with one character changed",
            Some((
                "authorization",
                format!("Bearer {}x", &real_token[..real_token.len() - 1]),
            )),
        ),
    ];
    for (what, header) in attempts {
        let mut req = client.post(messages_url(&stack)).json(&body(false));
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{what}");
        assert_eq!(resp.headers()["x-should-retry"], "false", "{what}");
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        assert_no_real_key(&headers, &text);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "error", "{what}");
        assert_eq!(v["error"]["type"], "authentication_error", "{what}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("token"),
            "{what}"
        );
        println!("PASS: {what} → 401 {}", v["error"]["message"]);
    }
    assert!(model.requests().is_empty(), "nothing reached the upstream");
    stack.daemon.shutdown().await;
}

/// One HTTP/1.1 exchange over the gateway's unix socket: (status, whole response text).
async fn over_socket(path: &std::path::Path, request: String) -> (u16, String) {
    let mut stream = tokio::net::UnixStream::connect(path).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn the_unix_socket_serves_the_gateway_for_the_forwarders() {
    let model = mock_model(script()).await;
    let stack = gateway_stack(&model, |_| {}).await;
    let socket = stack.daemon.gateway.socket_path().unwrap().to_owned();
    assert_eq!(socket, stack.data.path().join("run/gateway/gateway.sock"));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(socket.parent().unwrap()), 0o755);
    assert_eq!(mode(&socket), 0o666);

    let (status, _) = over_socket(
        &socket,
        "HEAD / HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n".into(),
    )
    .await;
    assert_eq!(status, 200, "Claude Code's warm-up is answered locally");

    let token = stack.daemon.gateway.issue_token("chat-sock").await.unwrap();
    let payload = body(false).to_string();
    let (status, text) = over_socket(
        &socket,
        format!(
            "POST /v1/messages HTTP/1.1\r\nhost: gateway\r\nx-api-key: {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
            payload.len()
        ),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Hello from the mock model."), "{text}");
    assert!(!text.contains(REAL_KEY));
    let (status, text) = over_socket(
        &socket,
        format!(
            "POST /v1/messages HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
            payload.len()
        ),
    )
    .await;
    assert_eq!(status, 401, "{text}");
    assert_eq!(model.message_requests().len(), 1);
    metered(&stack, "chat-sock", 1).await;
    stack.daemon.shutdown().await;
}

#[tokio::test]
async fn a_spent_budget_gets_429_and_the_chat_one_budget_message_instead_of_a_turn() {
    let model = mock_model(script()).await;
    // One micro-dollar: the first metered request uses it up.
    let stack = gateway_stack(&model, |c| c.gateway.chat_daily_budget_usd = 0.000_001).await;
    let from = "+15551239001";
    let (chat, _) = stack.sim.dm(from, "hi").await;
    let first = eventually(WAIT, "the echo reply", || async {
        let r = stack.sim.bot_messages(&chat).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(
        text_of(&first[0]),
        "echo: hi",
        "under budget the agent answers"
    );

    let token = stack.daemon.gateway.issue_token(&chat).await.unwrap();
    let client = reqwest::Client::new();
    let send = || {
        client
            .post(messages_url(&stack))
            .header("x-api-key", &token)
            .json(&body(false))
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    metered(&stack, &chat, 1).await;
    let refused = send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["x-should-retry"], "false");
    assert!(refused.headers().contains_key("retry-after"));
    let v: Value = refused.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("budget") && message.contains("00:00 UTC"),
        "{message}"
    );
    assert_eq!(
        model.message_requests().len(),
        1,
        "the refused one went nowhere"
    );

    // The next message in the chat is answered with the budget message, not a turn.
    stack
        .sim
        .text(json!({"from": from, "chat_id": chat, "text": "are you there?"}))
        .await;
    let replies = eventually(WAIT, "the budget message", || async {
        let r = stack.sim.bot_messages(&chat).await;
        (r.len() >= 2).then_some(r)
    })
    .await;
    let expected = picortex::gateway::budget_message(0.000_001);
    assert_eq!(text_of(&replies[1]), expected);
    assert!(expected.contains("resets at 00:00 UTC"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stack.sim.bot_messages(&chat).await.len(),
        2,
        "exactly one budget message"
    );
    let c = chat.clone();
    let statuses: Vec<String> = stack
        .daemon
        .store
        .read(move |conn| {
            let mut s = conn.prepare("SELECT status FROM turns WHERE chat_id = ?1 ORDER BY id")?;
            let rows = s.query_map([&c], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
        .unwrap();
    assert_eq!(statuses, ["done", "done"], "the turn is recorded as done");
    stack.daemon.shutdown().await;
}

struct Cleanup(std::path::PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        cleanup_chats(&self.0);
    }
}

/// Every regular file beneath `dir` that contains `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if kind.is_file()
            && let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn a_claude_code_turn_goes_through_the_gateway_and_is_metered() {
    let Some(claude) = claude_bin() else { return };
    if !have_tmux() {
        return;
    }
    let model = mock_model(script()).await;
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    let upstream = model.base_url();
    let stack = Stack::start_with(|c| {
        use_claude_agent(c, root.path(), &claude, &upstream);
        c.agents.anthropic_api_key = Some(REAL_KEY.into());
    })
    .await;
    let (chat, _) = stack.sim.dm("+15551239002", "hello").await;
    let reply = eventually(Duration::from_secs(90), "the agent's reply", || async {
        let r = stack.sim.bot_messages(&chat).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(text_of(&reply[0]), "Hello from the mock model.");

    let requests = model.message_requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(
            r.api_key.as_deref(),
            Some(REAL_KEY),
            "every call went through the gateway"
        );
    }
    let u = metered(&stack, &chat, requests.len() as i64).await;
    assert!(
        u.input_tokens > 0 && u.output_tokens > 0 && u.cost_micros > 0,
        "{u:?}"
    );

    // The agent's environment has the gateway and its chat token, not the key.
    let home = chat_home(root.path(), &chat);
    let env = std::process::Command::new("tmux")
        .arg("-S")
        .arg(home.join(".picortex/tmux.sock"))
        .arg("show-environment")
        .output()
        .unwrap();
    let env = String::from_utf8_lossy(&env.stdout);
    let token = stack.daemon.gateway.issue_token(&chat).await.unwrap();
    // As root the agent runs in its own network namespace and reaches the gateway through the
    // forwarder on its loopback; without root, on the daemon's port.
    let base_url = if nix::unistd::geteuid().is_root() {
        picortex::gateway::NAMESPACE_BASE_URL.to_owned()
    } else {
        format!("{}/gateway", stack.daemon.base_url())
    };
    assert!(
        env.contains(&format!("ANTHROPIC_BASE_URL={base_url}")),
        "{env}"
    );
    assert!(env.contains(&format!("ANTHROPIC_API_KEY={token}")), "{env}");
    assert!(!env.contains(REAL_KEY), "{env}");
    assert!(
        files_containing(&home, REAL_KEY.as_bytes()).is_empty(),
        "the real key is in the chat's files"
    );
    println!("PASS: Claude Code turn through the gateway, {u:?}");
    stack.daemon.shutdown().await;
}

#[tokio::test]
async fn the_discriminators_model_calls_count_in_the_chats_usage() {
    const OWNER: &str = "+15559990001";
    let no = r#"{"should_respond": false, "reason": "chatter between people"}"#;
    let model = mock_model(Script::new().default_text(no)).await;
    let stack = gateway_stack(&model, |c| c.owner = Some(OWNER.into())).await;
    let (chat, _) = stack
        .sim
        .text(json!({"from": OWNER, "group": ["+15559990002"], "text": "/picortex attention discriminate"}))
        .await;
    eventually(WAIT, "the command's answer", || async {
        (!stack.sim.bot_messages(&chat).await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(usage_today(&stack, &chat).await, DayUsage::default());
    stack
        .sim
        .text(json!({"from": "+15559990002", "chat_id": chat, "text": "lol same"}))
        .await;
    let u = metered(&stack, &chat, 1).await;
    let seen = model.message_requests();
    assert_eq!(seen.len(), 1);
    assert!(u.input_tokens > 0 && u.output_tokens > 0, "{u:?}");
    // The discriminator's default model, claude-haiku-4-5: 1 and 5 micro-dollars per token.
    assert_eq!(u.cost_micros, u.input_tokens + 5 * u.output_tokens);
    stack.daemon.shutdown().await;
}
