//! The request log: every request the server received (except `/_mock/…`), newest last.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How many requests the log keeps; the oldest are dropped beyond this.
pub const LOG_CAPACITY: usize = 1000;

/// One received request and how it was answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// 1, 2, 3 … in arrival order (keeps counting when old entries are dropped).
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query (`/v1/messages`).
    pub path: String,
    /// The query string, if any (Claude Code sends `beta=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Headers, names lowercased; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The credential presented: `x-api-key`, else the `authorization` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// `model` from the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The system prompt as text (text blocks joined by newlines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// `messages` from the body, as sent.
    #[serde(default)]
    pub messages: Vec<Value>,
    /// Names of the tools offered.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Whether `stream: true` was asked for.
    #[serde(default)]
    pub stream: bool,
    /// The prompt the rules were matched against (see [`crate::script::Matcher`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The rest of the JSON body (everything but `tools`, `system` and `messages`).
    #[serde(default)]
    pub other: BTreeMap<String, Value>,
    /// The rule that answered (its name or `#index`), or `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The step index within the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// What was answered: `text`, `tool_use`, `error`, `stall`, `count_tokens`, `not_found`, …
    pub reply: String,
    /// The HTTP status answered (a stall's status is 200 when streaming).
    pub status: u16,
    /// The `request-id` header answered.
    pub request_id: String,
}

impl RecordedRequest {
    /// True for `POST /v1/messages`.
    pub fn is_messages(&self) -> bool {
        self.method == "POST" && self.path == "/v1/messages"
    }

    /// Text of every message of `role`, blocks joined by newlines (reminders included).
    pub fn texts_of(&self, role: &str) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some(role))
            .filter_map(|m| m.get("content"))
            .map(crate::request::content_text)
            .collect()
    }

    /// Whether any message contains a `tool_result` block.
    pub fn has_tool_result(&self) -> bool {
        self.messages.iter().any(|m| {
            m.get("content")
                .and_then(Value::as_array)
                .is_some_and(|blocks| {
                    blocks
                        .iter()
                        .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                })
        })
    }
}

/// A bounded log.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    entries: VecDeque<RecordedRequest>,
    next_seq: u64,
}

impl RequestLog {
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub fn push(&mut self, entry: RecordedRequest) {
        if self.entries.len() >= LOG_CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    pub fn all(&self) -> Vec<RecordedRequest> {
        self.entries.iter().cloned().collect()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
