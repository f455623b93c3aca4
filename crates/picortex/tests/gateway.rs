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

// ---------------------------------------------------------------- the egress proxy
//
// The "outside host" is a TLS-less TCP echo server on 127.0.0.1 that counts its connections;
// it is reached by the name `localhost` (resolved by the system's resolver, as any name is),
// which the tests allowlist explicitly, together with `allow_private_hosts`, since it resolves
// to loopback.

/// An echo server on the host's loopback that counts the connections it accepted.
struct Outside {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Outside {
    async fn start() -> Outside {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut r, mut w) = conn.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        Outside { port, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn basic(token: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{token}:"))
    )
}

/// Sends `request` to the egress proxy; the status, the whole head (and a body if the proxy
/// closed), and the stream (a tunnel after a 200).
async fn proxy_request(stack: &Stack, request: &str) -> (u16, String, tokio::net::UnixStream) {
    let path = stack.daemon.gateway.proxy_socket_path().unwrap().to_owned();
    let mut stream = tokio::net::UnixStream::connect(path).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let mut text = String::from_utf8_lossy(&head).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status != 200 {
        let mut rest = String::new();
        let _ = tokio::time::timeout(WAIT, stream.read_to_string(&mut rest)).await;
        text.push_str(&rest);
    }
    (status, text, stream)
}

fn connect_request(target: &str, authorization: Option<&str>) -> String {
    let auth = authorization
        .map(|a| format!("Proxy-Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n")
}

async fn egress_stack(
    outside: &Outside,
    tweak: impl FnOnce(&mut picortex::config::Config),
) -> Stack {
    let port = outside.port;
    Stack::start_with(move |c| {
        c.gateway.allow_ports = vec![443, port];
        c.gateway
            .chat_allow_hosts
            .insert("chat-egress".into(), vec!["localhost".into()]);
        c.gateway.allow_private_hosts = vec!["localhost".into()];
        tweak(c);
    })
    .await
}

#[tokio::test]
async fn an_allowlisted_host_is_tunnelled_end_to_end() {
    let outside = Outside::start().await;
    let stack = egress_stack(&outside, |_| {}).await;
    let socket = stack.daemon.gateway.proxy_socket_path().unwrap().to_owned();
    assert_eq!(socket, stack.data.path().join("run/gateway/proxy.sock"));
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o666,
        "every chat's relay connects; the token says who it is"
    );
    let token = stack
        .daemon
        .gateway
        .issue_token("chat-egress")
        .await
        .unwrap();

    let target = format!("localhost:{}", outside.port);
    let (status, head, mut tunnel) =
        proxy_request(&stack, &connect_request(&target, Some(&basic(&token)))).await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.starts_with("HTTP/1.1 200 Connection established\r\n"),
        "{head}"
    );
    tunnel.write_all(b"ping through the tunnel").await.unwrap();
    tunnel.shutdown().await.unwrap();
    let mut echoed = String::new();
    tunnel.read_to_string(&mut echoed).await.unwrap();
    assert_eq!(echoed, "ping through the tunnel");
    assert_eq!(outside.accepted(), 1);

    // Bytes sent right behind the head (no waiting for the 200) reach the host too.
    let early = format!(
        "{}early bytes",
        connect_request(&target, Some(&basic(&token)))
    );
    let (status, head, mut tunnel) = proxy_request(&stack, &early).await;
    assert_eq!(status, 200, "{head}");
    tunnel.shutdown().await.unwrap();
    let mut echoed = String::new();
    tunnel.read_to_string(&mut echoed).await.unwrap();
    assert_eq!(echoed, "early bytes");

    let stats = eventually(WAIT, "both tunnels counted", || async {
        let s = stack.daemon.gateway.egress_stats();
        (s.tunnels == 2 && s.bytes_down == 34).then_some(s)
    })
    .await;
    assert_eq!((stats.bytes_up, stats.bytes_down), (34, 34), "{stats:?}");
    println!("PASS: allowlisted host tunnelled end to end ({stats:?})");
    stack.daemon.shutdown().await;
}

#[tokio::test]
async fn a_chat_has_a_bounded_number_of_tunnels_open_and_others_are_unaffected() {
    let outside = Outside::start().await;
    let stack = egress_stack(&outside, |c| {
        c.gateway.allow_hosts = vec!["localhost".into()];
    })
    .await;
    let token = stack
        .daemon
        .gateway
        .issue_token("chat-egress")
        .await
        .unwrap();
    let other = stack
        .daemon
        .gateway
        .issue_token("chat-other")
        .await
        .unwrap();
    let target = format!("localhost:{}", outside.port);
    let cap = picortex::gateway::egress::MAX_TUNNELS_PER_CHAT;
    let mut open = Vec::new();
    for _ in 0..cap {
        let (status, head, tunnel) =
            proxy_request(&stack, &connect_request(&target, Some(&basic(&token)))).await;
        assert_eq!(status, 200, "{head}");
        open.push(tunnel);
    }
    let (status, text, _) =
        proxy_request(&stack, &connect_request(&target, Some(&basic(&token)))).await;
    assert_eq!(status, 429, "{text}");
    let (status, text, _) =
        proxy_request(&stack, &connect_request(&target, Some(&basic(&other)))).await;
    assert_eq!(status, 200, "another chat still gets through: {text}");
    assert_eq!(stack.daemon.gateway.egress_stats().refused_busy, 1);
    open.clear();
    eventually(WAIT, "the closed tunnels to be given back", || async {
        (stack.daemon.gateway.egress_stats().open_now <= 1).then_some(())
    })
    .await;
    let (status, text, _) =
        proxy_request(&stack, &connect_request(&target, Some(&basic(&token)))).await;
    assert_eq!(status, 200, "{text}");
    stack.daemon.shutdown().await;
}

#[tokio::test]
async fn hosts_and_ports_off_the_list_get_403_and_no_connection_is_attempted() {
    let outside = Outside::start().await;
    let stack = egress_stack(&outside, |_| {}).await;
    let token = stack
        .daemon
        .gateway
        .issue_token("chat-egress")
        .await
        .unwrap();
    let other = stack
        .daemon
        .gateway
        .issue_token("chat-other")
        .await
        .unwrap();
    let port = outside.port;
    let cases = [
        (
            "an IP literal that is not listed",
            format!("127.0.0.1:{port}"),
            token.clone(),
            "127.0.0.1",
        ),
        (
            "a name that is not listed",
            format!("example.org:{port}"),
            token.clone(),
            "example.org",
        ),
        (
            "a subdomain of a listed name",
            format!("x.localhost:{port}"),
            token.clone(),
            "x.localhost",
        ),
        (
            "a port that is not allowed",
            "localhost:22".to_owned(),
            token.clone(),
            "allow_ports",
        ),
        (
            "another chat's allowlist",
            format!("localhost:{port}"),
            other.clone(),
            "localhost",
        ),
    ];
    for (what, target, token, named) in cases {
        let (status, text, _) =
            proxy_request(&stack, &connect_request(&target, Some(&basic(&token)))).await;
        assert_eq!(status, 403, "{what}: {text}");
        assert!(text.contains(named), "{what}: {text}");
        println!("PASS: {what} → 403");
    }
    let (_, text, _) = proxy_request(
        &stack,
        &connect_request(&format!("example.org:{port}"), Some(&basic(&token))),
    )
    .await;
    assert!(
        text.contains("not on this chat's egress allowlist")
            && text.contains("[gateway.chat_allow_hosts] \"chat-egress\" = [\"example.org\"]")
            && text.contains("allow_hosts"),
        "the refusal says how to allow it: {text}"
    );
    assert_eq!(outside.accepted(), 0, "no connection was attempted");
    assert_eq!(stack.daemon.gateway.egress_stats().refused_target, 6);
    assert_eq!(stack.daemon.gateway.egress_stats().tunnels, 0);
    stack.daemon.shutdown().await;
}

#[tokio::test]
async fn missing_or_wrong_proxy_tokens_get_407() {
    let outside = Outside::start().await;
    let stack = egress_stack(&outside, |_| {}).await;
    let token = stack
        .daemon
        .gateway
        .issue_token("chat-egress")
        .await
        .unwrap();
    let target = format!("localhost:{}", outside.port);
    let cases = [
        ("no Proxy-Authorization", None),
        (
            "a made-up token",
            Some(basic(&format!("pcx_gw_{}", "0".repeat(64)))),
        ),
        (
            "the token with one character changed",
            Some(basic(&format!("{}x", &token[..token.len() - 1]))),
        ),
        ("the token as Bearer", Some(format!("Bearer {token}"))),
        ("garbage", Some("Basic !!!not-base64".to_owned())),
    ];
    for (what, auth) in cases {
        let (status, text, _) =
            proxy_request(&stack, &connect_request(&target, auth.as_deref())).await;
        assert_eq!(status, 407, "{what}: {text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("proxy-authenticate: basic realm=\"picortex\""),
            "{what}: {text}"
        );
        println!("PASS: {what} → 407");
    }
    assert_eq!(outside.accepted(), 0);
    assert_eq!(stack.daemon.gateway.egress_stats().refused_auth, 5);
    stack.daemon.shutdown().await;
}

#[tokio::test]
async fn plain_requests_get_405_and_garbage_400() {
    let outside = Outside::start().await;
    let stack = egress_stack(&outside, |_| {}).await;
    let token = stack
        .daemon
        .gateway
        .issue_token("chat-egress")
        .await
        .unwrap();
    let (status, text, _) = proxy_request(
        &stack,
        &format!(
            "GET http://localhost:{}/ HTTP/1.1\r\nHost: localhost\r\nProxy-Authorization: {}\r\n\r\n",
            outside.port,
            basic(&token)
        ),
    )
    .await;
    assert_eq!(status, 405, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("allow: connect"),
        "{text}"
    );
    let (status, text, _) = proxy_request(&stack, "hello\r\n\r\n").await;
    assert_eq!(status, 400, "{text}");
    let (status, text, _) =
        proxy_request(&stack, &connect_request("localhost", Some(&basic(&token)))).await;
    assert_eq!(status, 400, "a target without a port: {text}");
    assert_eq!(outside.accepted(), 0);
    stack.daemon.shutdown().await;
}

#[tokio::test]
async fn a_name_resolving_to_loopback_needs_allow_private_hosts_and_ip_literals_are_as_written() {
    let outside = Outside::start().await;
    // `localhost` is allowlisted but not marked private: it resolves to 127.0.0.1, which is
    // what DNS rebinding of a public name would look like, so it is refused.
    let stack = egress_stack(&outside, |c| {
        c.gateway.allow_private_hosts.clear();
        c.gateway.allow_hosts = vec!["127.0.0.1".into()];
    })
    .await;
    let token = stack
        .daemon
        .gateway
        .issue_token("chat-egress")
        .await
        .unwrap();
    let (status, text, _) = proxy_request(
        &stack,
        &connect_request(&format!("localhost:{}", outside.port), Some(&basic(&token))),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("private") && text.contains("allow_private_hosts"),
        "{text}"
    );
    assert_eq!(outside.accepted(), 0);

    // An IP literal on the allowlist was written on purpose: it is reached as written.
    let (status, text, mut tunnel) = proxy_request(
        &stack,
        &connect_request(&format!("127.0.0.1:{}", outside.port), Some(&basic(&token))),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    tunnel.write_all(b"literal").await.unwrap();
    tunnel.shutdown().await.unwrap();
    let mut echoed = String::new();
    tunnel.read_to_string(&mut echoed).await.unwrap();
    assert_eq!(echoed, "literal");
    assert_eq!(outside.accepted(), 1);
    stack.daemon.shutdown().await;
}

#[tokio::test]
async fn the_agent_gets_the_proxy_only_in_a_namespace_and_with_an_allowlist() {
    let outside = Outside::start().await;
    let stack = egress_stack(&outside, |_| {}).await;
    let gateway = &stack.daemon.gateway;
    let namespace = picortex::gateway::NAMESPACE_BASE_URL;
    let env: std::collections::HashMap<String, String> = gateway
        .agent_proxy_env("chat-egress", "pcx_gw_t", namespace)
        .into_iter()
        .collect();
    for name in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
        assert_eq!(env[name], "http://pcx_gw_t@127.0.0.1:7825", "{name}");
    }
    assert_eq!(env["NO_PROXY"], "127.0.0.1,localhost");
    assert!(
        gateway
            .agent_proxy_env("chat-without-list", "pcx_gw_t", namespace)
            .is_empty(),
        "no allowlist, no proxy"
    );
    let tcp = gateway.agent_base_url(stack.daemon.addr);
    assert!(
        gateway
            .agent_proxy_env("chat-egress", "pcx_gw_t", &tcp)
            .is_empty(),
        "without a network namespace nothing would enforce it, so it is not offered"
    );
    stack.daemon.shutdown().await;
}

#[test]
fn egress_allowlists_are_validated_with_fixes() {
    let valid = || {
        let mut c = picortex::config::Config::default();
        c.linq.api_key = "k".into();
        c.linq.webhook_secret = format!("whsec_{}", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY");
        c
    };
    assert!(valid().validate().is_ok(), "{:?}", valid().validate());
    let c: picortex::config::Config = toml::from_str(
        r#"
        [gateway]
        allow_hosts = ["registry.npmjs.org", "*.pythonhosted.org", "10.0.0.5"]
        allow_private_hosts = ["npm.lan"]
        [gateway.chat_allow_hosts]
        "chat-1" = ["pypi.org", "npm.lan"]
        "#,
    )
    .unwrap();
    assert_eq!(c.gateway.allow_ports, vec![443], "443 by default");
    assert_eq!(
        c.gateway.chat_allow_hosts["chat-1"],
        ["pypi.org", "npm.lan"]
    );
    c.gateway.validate_egress().unwrap();
    type Tweak = Box<dyn Fn(&mut picortex::config::Config)>;
    let cases: Vec<(&str, Tweak)> = vec![
        (
            "scheme",
            Box::new(|c| c.gateway.allow_hosts = vec!["https://pypi.org".into()]),
        ),
        (
            "port",
            Box::new(|c| c.gateway.allow_hosts = vec!["pypi.org:443".into()]),
        ),
        (
            "path",
            Box::new(|c| c.gateway.allow_hosts = vec!["pypi.org/simple".into()]),
        ),
        (
            "chat_allow_hosts",
            Box::new(|c| {
                c.gateway
                    .chat_allow_hosts
                    .insert("chat-1".into(), vec!["*".into()]);
            }),
        ),
        (
            "empty chat id",
            Box::new(|c| {
                c.gateway
                    .chat_allow_hosts
                    .insert(" ".into(), vec!["pypi.org".into()]);
            }),
        ),
        (
            "allow_ports is empty",
            Box::new(|c| {
                c.gateway.allow_hosts = vec!["pypi.org".into()];
                c.gateway.allow_ports.clear();
            }),
        ),
        ("contains 0", Box::new(|c| c.gateway.allow_ports = vec![0])),
        (
            "on no allowlist",
            Box::new(|c| c.gateway.allow_private_hosts = vec!["npm.lan".into()]),
        ),
        (
            "exact host name",
            Box::new(|c| {
                c.gateway.allow_hosts = vec!["*.lan.example".into()];
                c.gateway.allow_private_hosts = vec!["*.lan.example".into()];
            }),
        ),
    ];
    for (expected, tweak) in cases {
        let mut c = valid();
        tweak(&mut c);
        let error = c.validate().unwrap_err().to_string();
        assert!(error.contains(expected), "{expected}: {error}");
    }
}

/// The whole path as root: a chat's agent in its sandbox runs curl with the environment the
/// daemon gave it; `localhost:<port>` (allowlisted for every chat) answers through
/// 127.0.0.1:7825 → the init's relay → proxy.sock → the proxy → the host's loopback, and
/// 127.0.0.1:<port> (not listed) is refused with 403 and never reached.
#[tokio::test]
async fn from_inside_a_sandbox_only_allowlisted_hosts_are_reachable_through_the_proxy() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: needs root (the sandbox's network namespace)");
        return;
    }
    if !have_tmux() {
        return;
    }
    // A tiny HTTP server: curl tunnels `GET /` through CONNECT and prints the body.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = conn.read(&mut buffer).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\nconnection: close\r\n\r\nreached outside\n")
                    .await;
            });
        }
    });
    let root = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(root.path().to_owned());
    // The prompt is the target; it goes to curl as one argument, never through a shell's
    // parser (`read` then a quoted expansion).
    let script = "read -r target; curl -sS -p --noproxy '' --max-time 10 \"http://$target/\" 2>&1; echo \"direct: $(curl -sS --noproxy '*' --max-time 3 \"http://$target/\" 2>&1 | head -c 80)\"";
    let stack = Stack::start_with(|c| {
        use_command_agent(c, root.path(), &["sh", "-c", script]);
        c.gateway.allow_hosts = vec!["localhost".into()];
        c.gateway.allow_private_hosts = vec!["localhost".into()];
        c.gateway.allow_ports = vec![port];
    })
    .await;
    let (chat, _) = stack
        .sim
        .dm("+15551239003", &format!("localhost:{port}"))
        .await;
    let reply = eventually(Duration::from_secs(60), "the allowed reply", || async {
        let r = stack.sim.bot_messages(&chat).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    let allowed = text_of(&reply[0]);
    println!("allowed: {allowed}");
    assert!(allowed.starts_with("reached outside"), "{allowed}");
    assert!(
        !allowed.contains("direct: reached"),
        "a direct connection worked: {allowed}"
    );
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);

    stack
        .sim
        .text(json!({"from": "+15551239003", "chat_id": chat, "text": format!("127.0.0.1:{port}")}))
        .await;
    let replies = eventually(Duration::from_secs(60), "the refused reply", || async {
        let r = stack.sim.bot_messages(&chat).await;
        (r.len() >= 2).then_some(r)
    })
    .await;
    let refused = text_of(&replies[1]);
    println!("refused: {refused}");
    assert!(refused.contains("403"), "{refused}");
    assert!(!refused.contains("reached outside"), "{refused}");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the refused host was never connected to"
    );
    let stats = stack.daemon.gateway.egress_stats();
    assert_eq!((stats.tunnels, stats.refused_target), (1, 1), "{stats:?}");
    println!(
        "PASS: from a sandbox, the allowlisted host answers through the proxy; the other gets 403"
    );
    stack.daemon.shutdown().await;
}
