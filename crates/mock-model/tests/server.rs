//! The mock model over real HTTP on loopback: the Messages API shapes (JSON and SSE), errors,
//! stalls, count_tokens, the admin routes, and how scripts consume their steps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use mock_model::{Exhausted, MockModelHandle, Rule, Scope, Script, Step, ToolCall};
use serde_json::{Value, json};

async fn serve(script: Script) -> MockModelHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    mock_model::start(script, listener).await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn body(prompt: &str, stream: bool) -> Value {
    json!({
        "model": "claude-test-1",
        "max_tokens": 1024,
        "stream": stream,
        "system": [{"type": "text", "text": "You are a test.\n - Primary working directory: /tmp/wd\n"}],
        "tools": [{"name": "Write", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>\nctx\n</system-reminder>"},
            {"type": "text", "text": prompt}]}]
    })
}

async fn post(model: &MockModelHandle, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages?beta=true", model.base_url()))
        .header("x-api-key", "sk-test-key")
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Parses an SSE body into (event name, data) pairs.
fn parse_sse(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|chunk| !chunk.trim().is_empty())
        .map(|chunk| {
            let mut event = String::new();
            let mut data = Value::Null;
            for line in chunk.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = name.to_string();
                } else if let Some(json) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(json).unwrap();
                }
            }
            (event, data)
        })
        .collect()
}

/// Rebuilds the message from stream events, the way an SDK does.
fn assemble(events: &[(String, Value)]) -> Value {
    let mut message = Value::Null;
    let mut partial: Vec<String> = Vec::new();
    for (name, data) in events {
        assert_eq!(data["type"], name.as_str(), "event name repeats data.type");
        match name.as_str() {
            "message_start" => message = data["message"].clone(),
            "content_block_start" => {
                let index = data["index"].as_u64().unwrap() as usize;
                let blocks = message["content"].as_array_mut().unwrap();
                assert_eq!(blocks.len(), index);
                blocks.push(data["content_block"].clone());
                partial.push(String::new());
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap() as usize;
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        let block = &mut message["content"][index];
                        let text = format!(
                            "{}{}",
                            block["text"].as_str().unwrap(),
                            delta["text"].as_str().unwrap()
                        );
                        block["text"] = json!(text);
                    }
                    "input_json_delta" => {
                        partial[index].push_str(delta["partial_json"].as_str().unwrap())
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                let index = data["index"].as_u64().unwrap() as usize;
                if message["content"][index]["type"] == "tool_use" {
                    message["content"][index]["input"] =
                        serde_json::from_str(&partial[index]).unwrap();
                }
            }
            "message_delta" => {
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                message["usage"]["output_tokens"] = data["usage"]["output_tokens"].clone();
            }
            "message_stop" | "ping" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    message
}

#[tokio::test]
async fn non_streaming_text_has_the_api_shape() {
    let model = serve(
        Script::new().rule(Rule::prompt_contains("hello").then(Step::texts(["Hi!", "Second."]))),
    )
    .await;
    let response = post(&model, &body("Hello there", false)).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_01")
    );
    let message: Value = response.json().await.unwrap();
    assert!(message["id"].as_str().unwrap().starts_with("msg_01"));
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "claude-test-1");
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["stop_sequence"], Value::Null);
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Hi!"}, {"type": "text", "text": "Second."}])
    );
    assert!(message["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(message["usage"]["output_tokens"].as_u64().unwrap() > 0);

    let log = model.requests();
    assert_eq!(log.len(), 1);
    let seen = &log[0];
    assert!(seen.is_messages());
    assert_eq!(seen.query.as_deref(), Some("beta=true"));
    assert_eq!(seen.api_key.as_deref(), Some("sk-test-key"));
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert_eq!(seen.model.as_deref(), Some("claude-test-1"));
    assert_eq!(seen.prompt.as_deref(), Some("Hello there"));
    assert!(seen.system.as_deref().unwrap().contains("You are a test."));
    assert_eq!(seen.tools, vec!["Write"]);
    assert_eq!(seen.rule.as_deref(), Some("#0"));
    assert_eq!(seen.step, Some(0));
    assert_eq!(seen.other["max_tokens"], 1024);
    model.shutdown().await;
}

#[tokio::test]
async fn streaming_tool_use_reassembles_and_templates_expand() {
    let script = Script::new().rule(
        Rule::prompt_regex(r"(?i)write (?P<file>\S+)")
            .then(Step::tool_use_with_text(
                "Writing {{file}}.",
                vec![ToolCall::new(
                    "Write",
                    json!({"file_path": "{{cwd}}/{{file}}", "content": "from {{model}}: {{1}}"}),
                )],
            ))
            .text("Done with {{file}}."),
    );
    let model = serve(script).await;
    let response = post(&model, &body("please write notes.txt", true)).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = parse_sse(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..2], ["message_start", "ping"]);
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    let start = &events[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    let message = assemble(&events);
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(
        message["content"][0],
        json!({"type": "text", "text": "Writing notes.txt."})
    );
    let tool = &message["content"][1];
    assert_eq!(tool["type"], "tool_use");
    assert_eq!(tool["name"], "Write");
    assert!(tool["id"].as_str().unwrap().starts_with("toolu_01"));
    assert_eq!(
        tool["input"],
        json!({"file_path": "/tmp/wd/notes.txt", "content": "from claude-test-1: notes.txt"})
    );
    // The follow-up request (carrying the tool result) gets the next step.
    let mut follow = body("please write notes.txt", true);
    let messages = follow["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "content": [tool.clone()]}));
    messages.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool["id"], "content": "ok"}]}));
    let message = assemble(&parse_sse(
        &post(&model, &follow).await.text().await.unwrap(),
    ));
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Done with notes.txt."}])
    );
    let log = model.message_requests();
    assert_eq!(
        log.iter().map(|r| r.step).collect::<Vec<_>>(),
        vec![Some(0), Some(1)]
    );
    assert!(log[1].has_tool_result());
    model.shutdown().await;
}

#[tokio::test]
async fn errors_use_the_api_body_and_headers() {
    let script = Script::new()
        .rule(Rule::prompt_contains("busy").error(429, "rate_limit_error", "slow down"))
        .rule(
            Rule::prompt_contains("boom").then(Step::error_step(mock_model::ErrorStep {
                status: Some(500),
                should_retry: Some(false),
                ..Default::default()
            })),
        )
        .rule(
            Rule::prompt_contains("over")
                .then(Step::error(529, "overloaded_error", "Overloaded").retry_after(3)),
        )
        .rule(
            Rule::prompt_contains("midway")
                .then(Step::error(529, "overloaded_error", "Overloaded").in_stream()),
        );
    let model = serve(script).await;

    let response = post(&model, &body("busy?", true)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let request_id = response.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}, "request_id": request_id})
    );

    let response = post(&model, &body("boom", false)).await;
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["x-should-retry"], "false");
    assert!(response.headers().get("retry-after").is_none());
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "api_error");

    let response = post(&model, &body("over", false)).await;
    assert_eq!(response.status().as_u16(), 529);
    assert_eq!(response.headers()["retry-after"], "3");

    let response = post(&model, &body("midway", true)).await;
    assert_eq!(response.status(), 200);
    let events = parse_sse(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["message_start", "ping", "error"]);
    assert_eq!(events[2].1["error"]["type"], "overloaded_error");

    let statuses: Vec<u16> = model.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 500, 529, 200]);
    model.shutdown().await;
}

#[tokio::test]
async fn stall_keeps_the_stream_open_and_close_after_cuts_it() {
    let script = Script::new()
        .rule(Rule::prompt_contains("hang").stall())
        .rule(Rule::prompt_contains("cut").then(Step::stall().close_after_ms(300)));
    let model = serve(script).await;

    let mut response = post(&model, &body("hang", true)).await;
    assert_eq!(response.status(), 200);
    let mut got = String::new();
    while !got.contains("event: ping") {
        let chunk = response.chunk().await.unwrap().unwrap();
        got.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(got.starts_with("event: message_start"));
    let more = tokio::time::timeout(Duration::from_millis(700), response.chunk()).await;
    assert!(more.is_err(), "a stalled stream sends nothing more");

    let started = Instant::now();
    let mut response = post(&model, &body("cut", true)).await;
    let mut ended_badly = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .unwrap()
        {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(_) => {
                ended_badly = true;
                break;
            }
        }
    }
    assert!(ended_badly, "the connection is cut, not ended cleanly");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Shutdown ends the open stall too.
    tokio::time::timeout(Duration::from_secs(6), model.shutdown())
        .await
        .unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = response.chunk().await {}
    })
    .await;
    assert!(rest.is_ok());
}

#[tokio::test]
async fn delays_pace_the_answer() {
    let script = Script::new().rule(
        Rule::any().then(
            Step::text("slow and steady wins")
                .delay_ms(300)
                .chunk_delay_ms(50),
        ),
    );
    let model = serve(script).await;
    let started = Instant::now();
    let response = post(&model, &body("x", true)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "delay before the status line"
    );
    let text = response.text().await.unwrap();
    // message_start, ping, block start, 1 delta, block stop, message_delta, message_stop:
    // six gaps of 50 ms.
    assert!(started.elapsed() >= Duration::from_millis(300 + 6 * 50));
    assert_eq!(
        assemble(&parse_sse(&text))["content"][0]["text"],
        "slow and steady wins"
    );
    model.shutdown().await;
}

#[tokio::test]
async fn steps_are_consumed_per_turn_and_conversation() {
    let script = Script::new()
        .rule(
            Rule::prompt_contains("flaky")
                .error(500, "api_error", "oops")
                .text("recovered"),
        )
        .rule(
            Rule::prompt_contains("count")
                .text("one")
                .text("two")
                .scope(Scope::Conversation),
        )
        .rule(
            Rule::prompt_contains("always")
                .error(529, "overloaded_error", "Overloaded")
                .on_exhausted(Exhausted::RepeatLast),
        )
        .rule(
            Rule::prompt_contains("loop")
                .text("a")
                .text("b")
                .on_exhausted(Exhausted::Cycle),
        )
        .default_text("default");
    let model = serve(script).await;
    let text_of = |v: Value| v["content"][0]["text"].as_str().map(str::to_string);

    // A retry after an error gets the next step.
    assert_eq!(post(&model, &body("flaky", false)).await.status(), 500);
    assert_eq!(
        text_of(
            post(&model, &body("flaky", false))
                .await
                .json()
                .await
                .unwrap()
        )
        .unwrap(),
        "recovered"
    );
    // Used up: falls through to the default.
    assert_eq!(
        text_of(
            post(&model, &body("flaky", false))
                .await
                .json()
                .await
                .unwrap()
        )
        .unwrap(),
        "default"
    );
    // Another conversation (another first prompt) starts afresh.
    assert_eq!(
        post(&model, &body("flaky again", false)).await.status(),
        500
    );

    // Turn scope: a new user turn in the same conversation restarts the rule.
    let two_turns = json!({"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "flaky"}, {"role": "assistant", "content": "recovered"},
        {"role": "user", "content": "flaky once more"}]});
    assert_eq!(post(&model, &two_turns).await.status(), 500);

    // Conversation scope: the cursor carries across turns.
    assert_eq!(
        text_of(
            post(&model, &body("count", false))
                .await
                .json()
                .await
                .unwrap()
        )
        .unwrap(),
        "one"
    );
    let next_turn = json!({"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "count"}]}, {"role": "assistant", "content": "one"},
        {"role": "user", "content": "count again"}]});
    assert_eq!(
        text_of(post(&model, &next_turn).await.json().await.unwrap()).unwrap(),
        "two"
    );

    for _ in 0..3 {
        assert_eq!(
            post(&model, &body("always", false)).await.status().as_u16(),
            529
        );
    }
    let cycled: Vec<String> = {
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(
                text_of(
                    post(&model, &body("loop", false))
                        .await
                        .json()
                        .await
                        .unwrap(),
                )
                .unwrap(),
            );
        }
        out
    };
    assert_eq!(cycled, ["a", "b", "a"]);
    model.shutdown().await;
}

#[tokio::test]
async fn unscripted_requests_get_friendly_defaults() {
    let model = serve(Script::new()).await;
    // An auxiliary request with a JSON schema (as Claude Code's title generation sends).
    let aux = json!({"model": "claude-haiku", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "<session>hi</session> Write a title"}],
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object",
            "properties": {"title": {"type": "string"}}, "required": ["title"], "additionalProperties": false}}}});
    let message = assemble(&parse_sse(&post(&model, &aux).await.text().await.unwrap()));
    let title: Value =
        serde_json::from_str(message["content"][0]["text"].as_str().unwrap()).unwrap();
    assert!(title["title"].is_string());
    // Plain requests get the default text.
    let message: Value = post(&model, &body("anything", false))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        message["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("mock model")
    );
    // count_tokens, the root probe, unknown routes, bad bodies.
    let client = client();
    let counted: Value = client
        .post(format!("{}/v1/messages/count_tokens", model.base_url()))
        .header("authorization", "Bearer tok")
        .json(&body("count me", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(counted["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        client.head(model.base_url()).send().await.unwrap().status(),
        200
    );
    let missing = client
        .get(format!("{}/v1/models", model.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["type"],
        "not_found_error"
    );
    let bad = client
        .post(format!("{}/v1/messages", model.base_url()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"]["type"],
        "invalid_request_error"
    );
    let replies: Vec<String> = model.requests().into_iter().map(|r| r.reply).collect();
    assert_eq!(
        replies,
        [
            "text",
            "text",
            "count_tokens",
            "root",
            "not_found",
            "invalid_request"
        ]
    );
    assert_eq!(model.requests()[2].api_key.as_deref(), Some("Bearer tok"));
    model.shutdown().await;
}

#[tokio::test]
async fn admin_routes_swap_the_script_and_show_the_log() {
    let model = serve(Script::new()).await;
    let client = client();
    let script = r#"{"rules": [{"name": "greet", "when": {"prompt_contains": "hey"}, "steps": [{"text": "swapped"}]}]}"#;
    let put = client
        .put(format!("{}/_mock/script", model.base_url()))
        .body(script)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let message: Value = post(&model, &body("hey", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(message["content"][0]["text"], "swapped");
    let current: Value = client
        .get(format!("{}/_mock/script", model.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["rules"][0]["name"], "greet");
    let bad = client
        .put(format!("{}/_mock/script", model.base_url()))
        .body(r#"{"rules": [{"when": {"prompt_regex": "("}, "steps": [{"text": "x"}]}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let log: Vec<mock_model::RecordedRequest> = client
        .get(format!("{}/_mock/requests", model.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.len(), 1, "admin requests are not logged");
    assert_eq!(log[0].rule.as_deref(), Some("greet"));
    let cleared = client
        .delete(format!("{}/_mock/requests", model.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 204);
    assert!(model.requests().is_empty());
    // The Rust side sees the same script.
    assert_eq!(model.script().rules[0].name.as_deref(), Some("greet"));
    model
        .set_script(Script::new().default_text("rust side"))
        .unwrap();
    let message: Value = post(&model, &body("hey", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(message["content"][0]["text"], "rust side");
    model.shutdown().await;
}

#[tokio::test]
async fn scripts_load_from_files_and_bad_scripts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.json");
    std::fs::write(&path, Script::demo_persona().to_json()).unwrap();
    assert_eq!(Script::from_file(&path).unwrap(), Script::demo_persona());
    assert!(Script::from_file(dir.path().join("missing.json")).is_err());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bad = Script::new().rule(Rule::prompt_regex("("));
    let error = mock_model::start(bad, listener).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn demo_persona_greets_and_writes() {
    let model = serve(Script::demo_persona()).await;
    let message: Value = post(&model, &body("Hello!", false))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        message["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("picortex")
    );
    let message: Value = post(
        &model,
        &body("write a file called todo.txt saying buy milk", false),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(
        message["content"][1]["input"],
        json!({"file_path": "/tmp/wd/todo.txt", "content": "buy milk\n"})
    );
    let message: Value = post(&model, &body("please create hello.py", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        message["content"][1]["input"]["file_path"],
        "/tmp/wd/hello.py"
    );
    let message: Value = post(&model, &body("make me a file", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        message["content"][1]["input"]["file_path"],
        "/tmp/wd/notes.txt"
    );
    let message: Value = post(&model, &body("what's the weather", false))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        message["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("what's the weather")
    );
    model.shutdown().await;
}
