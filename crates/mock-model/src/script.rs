//! Scripts: what the mock model answers, as data (JSON) or built in Rust.
//!
//! A [`Script`] is an ordered list of [`Rule`]s plus a default [`Step`]. For every
//! `POST /v1/messages` the server takes the first rule whose [`Matcher`] accepts the request and
//! whose steps are not used up, and answers with that rule's next step. Steps are consumed one per
//! request, per conversation and (by default) per user turn, so a rule
//! `[tool_use Write, text "done"]` answers the prompt with the tool call and the follow-up request
//! that carries the `tool_result` with the text. Anything no rule takes gets the default step, a
//! short friendly text, so auxiliary requests from a client never break.
//!
//! JSON form (every field but `steps` optional):
//!
//! ```json
//! {
//!   "rules": [
//!     {
//!       "name": "write-file",
//!       "when": { "prompt_regex": "(?i)write (?P<file>\\S+)", "has_tools": true },
//!       "steps": [
//!         { "tool_use": { "text": "Writing it.", "calls": [
//!             { "name": "Write", "input": { "file_path": "{{cwd}}/{{file}}", "content": "hi\n" } } ] } },
//!         { "text": ["Done.", "Anything else?"], "delay_ms": 50, "chunk_delay_ms": 5 }
//!       ],
//!       "scope": "turn",
//!       "exhausted": "fallthrough"
//!     },
//!     { "when": { "prompt_contains": "busy" }, "steps": [
//!         { "error": { "status": 429, "message": "slow down", "retry_after": 1 } } ] },
//!     { "when": { "prompt_contains": "hang" }, "steps": [ { "stall": {} } ] }
//!   ],
//!   "default": { "text": "Hello! (scripted reply)" }
//! }
//! ```
//!
//! Strings in texts and tool inputs may use placeholders: `{{prompt}}` (the user's text),
//! `{{cwd}}` (the client's working directory, as Claude Code states it in its system prompt),
//! `{{model}}`, and `{{1}}`, `{{name}}` … for the groups captured by `prompt_regex`.

use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ScriptError;

/// A whole script: rules tried in order, and the answer when none applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Script {
    /// Rules, tried in order.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// The answer when no rule applies (also to auxiliary requests).
    #[serde(default = "default_step")]
    pub default: Step,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            default: default_step(),
        }
    }
}

fn default_step() -> Step {
    Step::text(
        "Hello! I'm the scripted mock model; nothing in my script matched that, so this is my friendly default answer.",
    )
}

impl Script {
    /// An empty script: every request gets the default friendly text.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule after the existing ones.
    #[must_use]
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Replaces the default step.
    #[must_use]
    pub fn default_step(mut self, step: Step) -> Self {
        self.default = step;
        self
    }

    /// Replaces the default step with a text answer.
    #[must_use]
    pub fn default_text(self, text: impl Into<String>) -> Self {
        self.default_step(Step::text(text))
    }

    /// Parses a script from JSON text and checks it.
    pub fn from_json(text: &str) -> Result<Self, ScriptError> {
        let script: Script = serde_json::from_str(text)?;
        script.validate()?;
        Ok(script)
    }

    /// Reads a script from a JSON file and checks it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ScriptError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScriptError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// The script as pretty JSON (the same form [`Script::from_json`] reads).
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks the script: regexes compile, rules have steps, error steps are well formed.
    pub fn validate(&self) -> Result<(), ScriptError> {
        self.compile().map(|_| ())
    }

    pub(crate) fn compile(&self) -> Result<Vec<Option<Regex>>, ScriptError> {
        let mut regexes = Vec::with_capacity(self.rules.len());
        for (index, rule) in self.rules.iter().enumerate() {
            let label = rule.label(index);
            if rule.steps.is_empty() {
                return Err(ScriptError::EmptyRule { rule: label });
            }
            for step in &rule.steps {
                step.check(&label)?;
            }
            let regex = match &rule.when.prompt_regex {
                Some(pattern) => {
                    Some(Regex::new(pattern).map_err(|source| ScriptError::Regex {
                        rule: label.clone(),
                        pattern: pattern.clone(),
                        source,
                    })?)
                }
                None => None,
            };
            regexes.push(regex);
        }
        self.default.check("default")?;
        Ok(regexes)
    }

    /// A friendly persona for `picortex demo` when no real model is available.
    ///
    /// It greets back, says what it can do when asked for help, and when asked to write a file
    /// ("write a file called notes.txt saying buy milk", "create hello.py", "make me a file")
    /// makes a real `Write` tool call into the client's working directory, then confirms once the
    /// tool result comes back. Anything else gets a short friendly answer that quotes the message.
    pub fn demo_persona() -> Self {
        let write_with_content = Rule::prompt_regex(
            r#"(?is)\b(?:write|create|make|save)\b.*?\b(?P<file>[A-Za-z0-9_][A-Za-z0-9_\-]*\.[A-Za-z0-9]{1,8})\b.*?\b(?:saying|containing|with the text|with content|that says)\s*:?\s*["'“]?(?P<content>.+?)["'”]?\s*$"#,
        )
        .named("persona-write-with-content")
        .has_tools(true)
        .then(Step::tool_use_with_text(
            "Sure! Writing {{file}} now.",
            vec![ToolCall::new(
                "Write",
                serde_json::json!({"file_path": "{{cwd}}/{{file}}", "content": "{{content}}\n"}),
            )],
        ))
        .then(Step::text(
            "Done! I wrote {{file}} in your workspace. It says: {{content}}",
        ));
        let write_named = Rule::prompt_regex(
            r"(?is)\b(?:write|create|make|save)\b.*?\b(?P<file>[A-Za-z0-9_][A-Za-z0-9_\-]*\.[A-Za-z0-9]{1,8})\b",
        )
        .named("persona-write-named")
        .has_tools(true)
        .then(Step::tool_use_with_text(
            "On it, creating {{file}}.",
            vec![ToolCall::new(
                "Write",
                serde_json::json!({"file_path": "{{cwd}}/{{file}}", "content": "Hello from picortex! This file was written by the demo persona.\n"}),
            )],
        ))
        .then(Step::text(
            "Done! {{file}} is in your workspace now. Want me to put something else in it?",
        ));
        let write_unnamed = Rule::prompt_regex(r"(?is)\b(?:write|create|make|save)\b.*\bfile\b")
            .named("persona-write-unnamed")
            .has_tools(true)
            .then(Step::tool_use_with_text(
                "Sure, I'll call it notes.txt.",
                vec![ToolCall::new(
                    "Write",
                    serde_json::json!({"file_path": "{{cwd}}/notes.txt", "content": "Hello from picortex! This file was written by the demo persona.\n"}),
                )],
            ))
            .then(Step::text(
                "Done! I saved notes.txt in your workspace.",
            ));
        let greeting = Rule::prompt_regex(
            r"(?i)^\W*(?:hi|hello|hey|yo|hiya|howdy|good (?:morning|afternoon|evening))\b",
        )
        .named("persona-greeting")
        .then(Step::text(
            "Hey! 👋 I'm your picortex demo agent. I'm running on a scripted model, so I'm not very clever, but I can really write files: try \"write a file called notes.txt saying hello\".",
        ));
        let help = Rule::prompt_regex(r"(?i)\b(?:help|what can you do|who are you)\b")
            .named("persona-help")
            .then(Step::texts([
                "I'm the picortex demo agent, answering from a scripted model (no API key is configured).",
                "Things I can do: say hello, and write files into this chat's workspace. Try \"create hello.py\" or \"write a file called todo.txt saying buy milk\".",
            ]));
        let thanks = Rule::prompt_regex(r"(?i)\b(?:thanks|thank you|thx|cheers)\b")
            .named("persona-thanks")
            .then(Step::text("Any time! 😊"));
        Script::new()
            .rule(write_with_content)
            .rule(write_named)
            .rule(write_unnamed)
            .rule(greeting)
            .rule(help)
            .rule(thanks)
            .default_text("You said: \"{{prompt}}\". I'm a scripted demo model, so that's about all I can say; ask me to write a file to see me use a tool.")
    }
}

/// One rule: when it applies and what it answers, request after request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// A name for logs and the request log (default: `#<index>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What a request must look like for this rule to apply (all given conditions must hold).
    #[serde(default)]
    pub when: Matcher,
    /// Answers, one consumed per request.
    pub steps: Vec<Step>,
    /// Where the step cursor lives: per user turn (default) or per conversation.
    #[serde(default)]
    pub scope: Scope,
    /// What happens once every step has been used.
    #[serde(default)]
    pub exhausted: Exhausted,
}

impl Rule {
    /// A rule that applies to every request.
    pub fn any() -> Self {
        Self {
            name: None,
            when: Matcher::default(),
            steps: Vec::new(),
            scope: Scope::default(),
            exhausted: Exhausted::default(),
        }
    }

    /// A rule with the given matcher.
    pub fn when(matcher: Matcher) -> Self {
        Self {
            when: matcher,
            ..Self::any()
        }
    }

    /// A rule for prompts containing `needle` (case-insensitive).
    pub fn prompt_contains(needle: impl Into<String>) -> Self {
        Self::when(Matcher {
            prompt_contains: Some(needle.into()),
            ..Matcher::default()
        })
    }

    /// A rule for prompts matching `pattern` (Rust `regex` syntax; named and numbered groups
    /// become `{{name}}` / `{{1}}` placeholders).
    pub fn prompt_regex(pattern: impl Into<String>) -> Self {
        Self::when(Matcher {
            prompt_regex: Some(pattern.into()),
            ..Matcher::default()
        })
    }

    /// Names the rule.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only requests that offer tools (`Some(true)`) or offer none (`Some(false)`).
    #[must_use]
    pub fn has_tools(mut self, has: bool) -> Self {
        self.when.has_tools = Some(has);
        self
    }

    /// Only requests whose system prompt contains `needle` (case-insensitive).
    #[must_use]
    pub fn system_contains(mut self, needle: impl Into<String>) -> Self {
        self.when.system_contains = Some(needle.into());
        self
    }

    /// Only requests whose model id contains `needle` (case-insensitive).
    #[must_use]
    pub fn model_contains(mut self, needle: impl Into<String>) -> Self {
        self.when.model_contains = Some(needle.into());
        self
    }

    /// Only requests offering a tool with this exact name.
    #[must_use]
    pub fn tool_offered(mut self, name: impl Into<String>) -> Self {
        self.when.tool_offered = Some(name.into());
        self
    }

    /// Appends a step.
    #[must_use]
    pub fn then(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// Appends a text step.
    #[must_use]
    pub fn text(self, text: impl Into<String>) -> Self {
        self.then(Step::text(text))
    }

    /// Appends a step calling one tool.
    #[must_use]
    pub fn tool_use(self, name: impl Into<String>, input: Value) -> Self {
        self.then(Step::tool_use(name, input))
    }

    /// Appends an error step.
    #[must_use]
    pub fn error(
        self,
        status: u16,
        error_type: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        self.then(Step::error(status, error_type, message))
    }

    /// Appends a stall step.
    #[must_use]
    pub fn stall(self) -> Self {
        self.then(Step::stall())
    }

    /// Sets the cursor scope.
    #[must_use]
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Sets what happens once the steps are used up.
    #[must_use]
    pub fn on_exhausted(mut self, exhausted: Exhausted) -> Self {
        self.exhausted = exhausted;
        self
    }

    pub(crate) fn label(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("#{index}"))
    }
}

/// Conditions on a request; every condition given must hold. An empty matcher matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    /// The prompt contains this, case-insensitively. The prompt is the last text block of the
    /// last user message that is not a tool result, with `<system-reminder>` sections removed
    /// (after a failed turn Claude Code appends the next prompt to the same user message as a
    /// further block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_contains: Option<String>,
    /// The prompt matches this regex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_regex: Option<String>,
    /// The system prompt contains this, case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_contains: Option<String>,
    /// The requested model id contains this, case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_contains: Option<String>,
    /// The request offers tools (true) or none (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_tools: Option<bool>,
    /// The request offers a tool with this exact name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_offered: Option<String>,
}

/// Where a rule's step cursor lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// A fresh cursor for every user turn: the prompt gets step 0, the request after the first
    /// tool result step 1, and so on; the next user prompt starts again at step 0.
    #[default]
    Turn,
    /// One cursor for the whole conversation (across turns and resumes).
    Conversation,
}

/// What a rule does once all its steps have been used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exhausted {
    /// Let later rules (and finally the default) answer.
    #[default]
    Fallthrough,
    /// Answer with the last step again, forever.
    RepeatLast,
    /// Start over at the first step.
    Cycle,
}

/// One answer, with optional pacing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Wait this long before answering (before the status line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Wait this long between stream events (streaming requests only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_delay_ms: Option<u64>,
    /// What to answer.
    #[serde(flatten)]
    pub action: Action,
}

/// What a step answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// One or more text blocks, `stop_reason: end_turn`. JSON: `"text": "hi"` or
    /// `"text": ["first block", "second block"]`.
    Text(#[serde(deserialize_with = "one_or_many")] Vec<String>),
    /// Optional text blocks followed by tool calls, `stop_reason: tool_use`.
    ToolUse(ToolUseStep),
    /// An API error.
    Error(ErrorStep),
    /// Start answering and then go silent.
    Stall(StallStep),
}

/// Tool calls, optionally preceded by text blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolUseStep {
    /// Text blocks before the calls (`"text": "…"` or a list).
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub text: Vec<String>,
    /// The calls, in order.
    pub calls: Vec<ToolCall>,
}

/// One `tool_use` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Tool name, e.g. `Write`, `Bash`, `Read`.
    pub name: String,
    /// Tool input, e.g. `{"file_path": "{{cwd}}/a.txt", "content": "hi"}`.
    #[serde(default = "empty_object")]
    pub input: Value,
    /// A fixed block id; a fresh `toolu_…` id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl ToolCall {
    /// A call of `name` with `input`.
    pub fn new(name: impl Into<String>, input: Value) -> Self {
        Self {
            name: name.into(),
            input,
            id: None,
        }
    }
}

/// An error answer shaped like the real API's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorStep {
    /// HTTP status; derived from `type` when absent (429, 500, 529, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Error type (`rate_limit_error`, `api_error`, `overloaded_error`, …); derived from the
    /// status when absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Message; a generic one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `retry-after` header in seconds (default 1 on 429, none otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// `x-should-retry` header, which Anthropic's SDKs obey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub should_retry: Option<bool>,
    /// For streaming requests: answer 200, send `message_start`, then an SSE `error` event
    /// (as the real API does when it fails mid-stream).
    #[serde(default, skip_serializing_if = "is_false")]
    pub in_stream: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ErrorStep {
    /// The HTTP status this error is sent with.
    pub fn resolved_status(&self) -> u16 {
        match (self.status, self.error_type.as_deref()) {
            (Some(status), _) => status,
            (None, Some(kind)) => status_for_type(kind),
            (None, None) => 500,
        }
    }

    /// The error type this error is sent with.
    pub fn resolved_type(&self) -> String {
        match (&self.error_type, self.status) {
            (Some(kind), _) => kind.clone(),
            (None, Some(status)) => type_for_status(status).to_string(),
            (None, None) => "api_error".to_string(),
        }
    }

    /// The message this error is sent with.
    pub fn resolved_message(&self) -> String {
        self.message.clone().unwrap_or_else(|| {
            match self.resolved_type().as_str() {
                "rate_limit_error" => {
                    "Number of request tokens has exceeded your per-minute rate limit (mock)"
                }
                "overloaded_error" => "Overloaded",
                "api_error" => "Internal server error",
                "authentication_error" => "invalid x-api-key",
                "permission_error" => {
                    "Your API key does not have permission to use the specified resource."
                }
                "not_found_error" => "Not found",
                "request_too_large" => "Request exceeds the maximum allowed number of bytes.",
                _ => "Mock error",
            }
            .to_string()
        })
    }
}

/// The status the real API uses for an error type.
pub fn status_for_type(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// The error type the real API uses for a status.
pub fn type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// Go silent after `message_start` (streaming) or before the status line (non-streaming).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StallStep {
    /// Drop the connection after this long (no `message_stop`, the stream is cut). Without it
    /// the connection stays open until the client gives up or the server shuts down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_after_ms: Option<u64>,
}

impl Step {
    fn from_action(action: Action) -> Self {
        Self {
            delay_ms: None,
            chunk_delay_ms: None,
            action,
        }
    }

    /// One text block.
    pub fn text(text: impl Into<String>) -> Self {
        Self::from_action(Action::Text(vec![text.into()]))
    }

    /// Several text blocks.
    pub fn texts<I, S>(texts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::from_action(Action::Text(texts.into_iter().map(Into::into).collect()))
    }

    /// One tool call.
    pub fn tool_use(name: impl Into<String>, input: Value) -> Self {
        Self::tool_uses(vec![ToolCall::new(name, input)])
    }

    /// Several tool calls in one message.
    pub fn tool_uses(calls: Vec<ToolCall>) -> Self {
        Self::from_action(Action::ToolUse(ToolUseStep {
            text: Vec::new(),
            calls,
        }))
    }

    /// A text block followed by tool calls.
    pub fn tool_use_with_text(text: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        Self::from_action(Action::ToolUse(ToolUseStep {
            text: vec![text.into()],
            calls,
        }))
    }

    /// An API error with this status, type and message.
    pub fn error(status: u16, error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self::from_action(Action::Error(ErrorStep {
            status: Some(status),
            error_type: Some(error_type.into()),
            message: Some(message.into()),
            ..ErrorStep::default()
        }))
    }

    /// An error step built field by field.
    pub fn error_step(error: ErrorStep) -> Self {
        Self::from_action(Action::Error(error))
    }

    /// A stream that starts and then goes silent, keeping the connection open.
    pub fn stall() -> Self {
        Self::from_action(Action::Stall(StallStep::default()))
    }

    /// Waits `ms` before answering.
    #[must_use]
    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.delay_ms = Some(ms);
        self
    }

    /// Waits `ms` between stream events.
    #[must_use]
    pub fn chunk_delay_ms(mut self, ms: u64) -> Self {
        self.chunk_delay_ms = Some(ms);
        self
    }

    /// For an error step: the `retry-after` header, in seconds.
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        if let Action::Error(error) = &mut self.action {
            error.retry_after = Some(seconds);
        }
        self
    }

    /// For an error step: the `x-should-retry` header.
    #[must_use]
    pub fn should_retry(mut self, retry: bool) -> Self {
        if let Action::Error(error) = &mut self.action {
            error.should_retry = Some(retry);
        }
        self
    }

    /// For an error step: send it inside a 200 SSE stream, after `message_start`.
    #[must_use]
    pub fn in_stream(mut self) -> Self {
        if let Action::Error(error) = &mut self.action {
            error.in_stream = true;
        }
        self
    }

    /// For a stall step: cut the connection after `ms`.
    #[must_use]
    pub fn close_after_ms(mut self, ms: u64) -> Self {
        if let Action::Stall(stall) = &mut self.action {
            stall.close_after_ms = Some(ms);
        }
        self
    }

    /// A short name of the step's kind, for the request log.
    pub fn kind(&self) -> &'static str {
        match self.action {
            Action::Text(_) => "text",
            Action::ToolUse(_) => "tool_use",
            Action::Error(_) => "error",
            Action::Stall(_) => "stall",
        }
    }

    fn check(&self, rule: &str) -> Result<(), ScriptError> {
        match &self.action {
            Action::Error(error) => {
                let status = error.resolved_status();
                if !(400..=599).contains(&status) {
                    return Err(ScriptError::BadStatus {
                        rule: rule.to_string(),
                        status,
                    });
                }
            }
            Action::ToolUse(tools) => {
                if tools.calls.is_empty() {
                    return Err(ScriptError::NoCalls {
                        rule: rule.to_string(),
                    });
                }
                if let Some(call) = tools.calls.iter().find(|c| !c.input.is_object()) {
                    return Err(ScriptError::BadToolInput {
                        rule: rule.to_string(),
                        tool: call.name.clone(),
                    });
                }
            }
            Action::Text(_) | Action::Stall(_) => {}
        }
        Ok(())
    }
}

fn one_or_many<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_shorthands() {
        let text = r#"{
          "rules": [
            {"name": "w", "when": {"prompt_regex": "(?i)write (?P<file>\\S+)"},
             "steps": [
               {"tool_use": {"text": "ok", "calls": [{"name": "Write", "input": {"file_path": "{{cwd}}/{{file}}", "content": "x"}}]}},
               {"text": ["a", "b"], "delay_ms": 5, "chunk_delay_ms": 1}
             ]},
            {"when": {"prompt_contains": "busy"}, "steps": [{"error": {"status": 429}}], "exhausted": "repeat_last"},
            {"steps": [{"stall": {}}], "scope": "conversation"}
          ],
          "default": {"text": "hi"}
        }"#;
        let script = Script::from_json(text).unwrap();
        assert_eq!(script.rules.len(), 3);
        assert_eq!(script.rules[0].steps[1].delay_ms, Some(5));
        assert_eq!(
            script.rules[0].steps[1].action,
            Action::Text(vec!["a".into(), "b".into()])
        );
        assert_eq!(script.rules[1].exhausted, Exhausted::RepeatLast);
        assert_eq!(script.rules[2].scope, Scope::Conversation);
        match &script.rules[1].steps[0].action {
            Action::Error(e) => {
                assert_eq!(e.resolved_status(), 429);
                assert_eq!(e.resolved_type(), "rate_limit_error");
            }
            other => panic!("unexpected {other:?}"),
        }
        let again = Script::from_json(&script.to_json()).unwrap();
        assert_eq!(again, script);
    }

    #[test]
    fn validation_catches_mistakes() {
        assert!(matches!(
            Script::from_json(r#"{"rules":[{"steps":[]}]}"#),
            Err(ScriptError::EmptyRule { .. })
        ));
        assert!(matches!(
            Script::from_json(
                r#"{"rules":[{"when":{"prompt_regex":"("},"steps":[{"text":"x"}]}]}"#
            ),
            Err(ScriptError::Regex { .. })
        ));
        assert!(matches!(
            Script::from_json(r#"{"rules":[{"steps":[{"error":{"status":200}}]}]}"#),
            Err(ScriptError::BadStatus { .. })
        ));
        assert!(matches!(
            Script::from_json(r#"{"rules":[{"steps":[{"tool_use":{"calls":[]}}]}]}"#),
            Err(ScriptError::NoCalls { .. })
        ));
        assert!(Script::from_json("{").is_err());
        assert!(Script::demo_persona().validate().is_ok());
    }

    #[test]
    fn error_defaults_follow_the_real_api() {
        assert_eq!(status_for_type("overloaded_error"), 529);
        assert_eq!(type_for_status(500), "api_error");
        assert_eq!(type_for_status(422), "invalid_request_error");
        let e = ErrorStep {
            error_type: Some("overloaded_error".into()),
            ..ErrorStep::default()
        };
        assert_eq!(e.resolved_status(), 529);
        assert_eq!(e.resolved_message(), "Overloaded");
    }
}
