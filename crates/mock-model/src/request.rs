//! Reading a Messages API request: the prompt, the system text, the conversation it belongs to.
//!
//! Claude Code wraps context in `<system-reminder>` text blocks inside user messages, sends
//! `role: "system"` messages mid-conversation, and answers tool calls with user messages made of
//! `tool_result` blocks. The *prompt* is therefore the text of the last user message that holds
//! no `tool_result`, with the reminders cut out: its last text block, because after a failed
//! turn Claude Code appends the next prompt to the same user message as another block. A
//! *conversation* is identified by its first prompt (stable across requests, retries and
//! `--resume`), and a *turn* by the number of prompts so far.

use serde_json::Value;

/// What the matcher and the templates need to know about one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    pub model: String,
    pub system: String,
    pub prompt: String,
    pub conversation: String,
    pub turn: usize,
    pub tools: Vec<String>,
    pub stream: bool,
    pub cwd: Option<String>,
}

impl View {
    pub fn from_body(body: &Value) -> Self {
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let system = body.get("system").map(content_text).unwrap_or_default();
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        // The text blocks of every user message that is not a tool result. After a failed turn
        // Claude Code merges the next prompt into the same user message as a further block, so
        // the prompt is the last block, and a turn is a block.
        let prompts: Vec<Vec<String>> = messages
            .iter()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .filter(|m| !has_tool_result(m.get("content")))
            .map(|m| m.get("content").map(prompt_blocks).unwrap_or_default())
            .collect();
        let prompt = prompts
            .last()
            .and_then(|blocks| blocks.last())
            .cloned()
            .unwrap_or_default();
        let conversation = prompts.iter().flatten().next().cloned().unwrap_or_default();
        let turn = prompts.iter().map(|blocks| blocks.len().max(1)).sum();
        let tools = body
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|t| t.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let cwd = find_cwd(&system).or_else(|| {
            messages
                .iter()
                .filter_map(|m| m.get("content"))
                .find_map(|c| find_cwd(&content_text(c)))
        });
        Self {
            model,
            system,
            prompt,
            conversation,
            turn,
            tools,
            stream,
            cwd,
        }
    }
}

/// The text of a `content` (a string, or blocks of which the `text` ones count), blocks joined
/// by newlines.
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The non-empty text blocks of a user `content`, reminders removed, trimmed.
fn prompt_blocks(content: &Value) -> Vec<String> {
    let texts: Vec<String> = match content {
        Value::String(s) => vec![s.clone()],
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    texts
        .iter()
        .map(|t| strip_reminders(t))
        .filter(|t| !t.is_empty())
        .collect()
}

fn has_tool_result(content: Option<&Value>) -> bool {
    content.and_then(Value::as_array).is_some_and(|blocks| {
        blocks
            .iter()
            .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
    })
}

/// Removes `<system-reminder>…</system-reminder>` sections and trims.
pub(crate) fn strip_reminders(text: &str) -> String {
    const OPEN: &str = "<system-reminder>";
    const CLOSE: &str = "</system-reminder>";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        match rest[start..].find(CLOSE) {
            Some(end) => rest = &rest[start + end + CLOSE.len()..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.trim().to_string()
}

/// Claude Code states its working directory in the system prompt
/// (`Primary working directory: /path`).
fn find_cwd(text: &str) -> Option<String> {
    for marker in ["Primary working directory:", "Working directory:"] {
        if let Some(pos) = text.find(marker) {
            let after = &text[pos + marker.len()..];
            let line = after.lines().next().unwrap_or_default().trim();
            if !line.is_empty() {
                return Some(line.to_string());
            }
        }
    }
    None
}

/// Expands `{{name}}` placeholders; unknown ones are left as they are.
pub(crate) fn expand(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim();
                match lookup(key) {
                    Some(value) => out.push_str(&value),
                    None => {
                        out.push_str("{{");
                        out.push_str(&after[..end]);
                        out.push_str("}}");
                    }
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Expands placeholders in every string inside a JSON value.
pub(crate) fn expand_value(value: &Value, lookup: &dyn Fn(&str) -> Option<String>) -> Value {
    match value {
        Value::String(s) => Value::String(expand(s, lookup)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| expand_value(v, lookup)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), expand_value(v, lookup)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompt_skips_reminders_and_tool_results() {
        let body = json!({
            "model": "claude-x",
            "system": [{"type": "text", "text": "You are...\n - Primary working directory: /tmp/w\n - Platform: linux"}],
            "tools": [{"name": "Write"}, {"name": "Bash"}],
            "stream": true,
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "<system-reminder>\ndate\n</system-reminder>\n\n"},
                    {"type": "text", "text": "write a.txt", "cache_control": {"type": "ephemeral"}}]},
                {"role": "system", "content": "agents..."},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Write", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"},
                    {"type": "text", "text": "<system-reminder>x</system-reminder>"}]}
            ]
        });
        let view = View::from_body(&body);
        assert_eq!(view.prompt, "write a.txt");
        assert_eq!(view.conversation, "write a.txt");
        assert_eq!(view.turn, 1);
        assert_eq!(view.cwd.as_deref(), Some("/tmp/w"));
        assert_eq!(view.tools, vec!["Write", "Bash"]);
        assert!(view.stream);
    }

    #[test]
    fn merged_prompts_after_a_failed_turn() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>x</system-reminder>"},
            {"type": "text", "text": "failed one\n"},
            {"type": "text", "text": "second one"}]}]});
        let view = View::from_body(&body);
        assert_eq!(view.prompt, "second one");
        assert_eq!(view.conversation, "failed one");
        assert_eq!(view.turn, 2);
    }

    #[test]
    fn string_content_and_turns() {
        let body = json!({"model": "m", "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "a"},
            {"role": "user", "content": "second"}]});
        let view = View::from_body(&body);
        assert_eq!(view.prompt, "second");
        assert_eq!(view.conversation, "first");
        assert_eq!(view.turn, 2);
        assert_eq!(view.cwd, None);
    }

    #[test]
    fn templates() {
        let lookup = |k: &str| (k == "x").then(|| "X".to_string());
        assert_eq!(expand("a{{x}}b{{ y }}c{{", &lookup), "aXb{{ y }}c{{");
        assert_eq!(
            expand_value(&json!({"k": ["{{x}}", 1]}), &lookup),
            json!({"k": ["X", 1]})
        );
        assert_eq!(
            strip_reminders("<system-reminder>a</system-reminder> hi <system-reminder>b"),
            "hi"
        );
    }
}
