//! The bytes on the wire: ids, `Message` objects, SSE events and error bodies, shaped as the
//! real Anthropic Messages API shapes them.
//!
//! A stream is `message_start` (the message with empty `content` and the input usage), a `ping`,
//! then per content block `content_block_start`, one or more `content_block_delta`
//! (`text_delta` or `input_json_delta`) and `content_block_stop`, then `message_delta`
//! (`stop_reason`, output usage) and `message_stop`. Every event is `event: <type>` plus
//! `data: <json>` whose `type` repeats the event name.

use bytes::Bytes;
use serde_json::{Value, json};

/// A content block of an answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

impl Block {
    fn to_json(&self) -> Value {
        match self {
            Block::Text(text) => json!({"type": "text", "text": text}),
            Block::ToolUse { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
        }
    }

    fn output_chars(&self) -> usize {
        match self {
            Block::Text(text) => text.chars().count(),
            Block::ToolUse { name, input, .. } => name.len() + input.to_string().len(),
        }
    }
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A fresh id like the API's: `msg_01…`, `toolu_01…`, `req_01…` followed by 22 base62 chars.
pub(crate) fn new_id(prefix: &str) -> String {
    let mut n = uuid::Uuid::new_v4().as_u128();
    let mut out = String::with_capacity(prefix.len() + 25);
    out.push_str(prefix);
    out.push_str("_01");
    for _ in 0..22 {
        let digit = usize::try_from(n % 62).unwrap_or(0);
        out.push(char::from(BASE62[digit]));
        n /= 62;
    }
    out
}

/// A rough token count (four characters a token, at least one).
pub(crate) fn estimate_tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4).max(1)).unwrap_or(u64::MAX)
}

pub(crate) fn output_tokens(blocks: &[Block]) -> u64 {
    estimate_tokens(blocks.iter().map(Block::output_chars).sum())
}

pub(crate) fn stop_reason(blocks: &[Block]) -> &'static str {
    if blocks.iter().any(|b| matches!(b, Block::ToolUse { .. })) {
        "tool_use"
    } else {
        "end_turn"
    }
}

fn usage(input_tokens: u64, output_tokens: u64) -> Value {
    json!({
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard"
    })
}

/// The whole `Message` object of a non-streaming answer.
pub(crate) fn message(id: &str, model: &str, blocks: &[Block], input_tokens: u64) -> Value {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks.iter().map(Block::to_json).collect::<Vec<_>>(),
        "stop_reason": stop_reason(blocks),
        "stop_sequence": null,
        "usage": usage(input_tokens, output_tokens(blocks)),
    })
}

/// One SSE event.
pub(crate) fn sse(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// `message_start` with an empty message, then a `ping`.
pub(crate) fn stream_head(id: &str, model: &str, input_tokens: u64) -> Vec<Bytes> {
    vec![
        sse(
            "message_start",
            &json!({
                "type": "message_start",
                "message": {
                    "id": id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": usage(input_tokens, 1),
                }
            }),
        ),
        sse("ping", &json!({"type": "ping"})),
    ]
}

/// The events after the head: every block's start, deltas and stop, then `message_delta` and
/// `message_stop`. Text and tool input are split into small deltas as the real API does.
pub(crate) fn stream_body(blocks: &[Block]) -> Vec<Bytes> {
    let mut events = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        match block {
            Block::Text(text) => {
                events.push(sse(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": index,
                            "content_block": {"type": "text", "text": ""}}),
                ));
                for piece in split_chunks(text, 24) {
                    events.push(sse(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": index,
                                "delta": {"type": "text_delta", "text": piece}}),
                    ));
                }
            }
            Block::ToolUse { id, name, input } => {
                events.push(sse(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": index,
                            "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
                ));
                let mut pieces = vec![String::new()];
                pieces.extend(split_chunks(&input.to_string(), 32));
                for piece in pieces {
                    events.push(sse(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": index,
                                "delta": {"type": "input_json_delta", "partial_json": piece}}),
                    ));
                }
            }
        }
        events.push(sse(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push(sse(
        "message_delta",
        &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason(blocks), "stop_sequence": null},
                "usage": {"output_tokens": output_tokens(blocks)}}),
    ));
    events.push(sse("message_stop", &json!({"type": "message_stop"})));
    events
}

/// Splits text into pieces of about `size` characters (never inside a character); an empty
/// text gives one empty piece.
fn split_chunks(text: &str, size: usize) -> Vec<String> {
    if text.is_empty() {
        return vec![String::new()];
    }
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// The error body: `{"type":"error","error":{"type":…,"message":…},"request_id":…}`.
pub(crate) fn error_body(error_type: &str, message: &str, request_id: &str) -> Value {
    json!({
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    })
}

/// The same error as an SSE `error` event.
pub(crate) fn error_event(error_type: &str, message: &str, request_id: &str) -> Bytes {
    sse("error", &error_body(error_type, message, request_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(events: &[Bytes]) -> Vec<(String, Value)> {
        events
            .iter()
            .map(|e| {
                let text = std::str::from_utf8(e).unwrap();
                let mut lines = text.lines();
                let event = lines.next().unwrap().strip_prefix("event: ").unwrap();
                let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
                assert!(text.ends_with("\n\n"));
                (event.to_string(), serde_json::from_str(data).unwrap())
            })
            .collect()
    }

    #[test]
    fn ids_look_real() {
        let id = new_id("msg");
        assert!(id.starts_with("msg_01"));
        assert_eq!(id.len(), "msg_01".len() + 22);
        assert_ne!(id, new_id("msg"));
        assert!(new_id("toolu").starts_with("toolu_01"));
    }

    #[test]
    fn stream_reassembles_to_the_message() {
        let blocks = vec![
            Block::Text("Writing the file for you now, hold on.".into()),
            Block::ToolUse {
                id: "toolu_01x".into(),
                name: "Write".into(),
                input: json!({"file_path": "/tmp/a.txt", "content": "hello ✓ world, a longer content"}),
            },
        ];
        let mut events = stream_head("msg_01x", "m", 10);
        events.extend(stream_body(&blocks));
        let events = parse(&events);
        for (name, data) in &events {
            assert_eq!(data["type"], name.as_str());
        }
        assert_eq!(events[0].0, "message_start");
        assert_eq!(events[1].0, "ping");
        assert_eq!(events.last().unwrap().0, "message_stop");
        let mut text = String::new();
        let mut json_text = String::new();
        for (_, data) in &events {
            if data["type"] == "content_block_delta" {
                match data["delta"]["type"].as_str().unwrap() {
                    "text_delta" => text.push_str(data["delta"]["text"].as_str().unwrap()),
                    "input_json_delta" => {
                        json_text.push_str(data["delta"]["partial_json"].as_str().unwrap())
                    }
                    other => panic!("{other}"),
                }
            }
        }
        assert_eq!(text, "Writing the file for you now, hold on.");
        let input: Value = serde_json::from_str(&json_text).unwrap();
        assert_eq!(input["content"], "hello ✓ world, a longer content");
        let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
        assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
        let full = message("msg_01x", "m", &blocks, 10);
        assert_eq!(full["stop_reason"], "tool_use");
        assert_eq!(full["content"][1]["input"]["file_path"], "/tmp/a.txt");
    }
}
