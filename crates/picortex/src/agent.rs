//! The agent interface: what a turn hands an agent backend and what it gets back. Backends
//! (the built-in `echo` here; Claude Code and any command through the runner) sit behind
//! [`Agent`], so the scheduler never knows which one answers.

use futures::future::BoxFuture;

use crate::store::turns::PromptMessage;

/// One turn's input.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub turn_id: i64,
    pub chat_id: String,
    pub is_group: bool,
    pub request_id: String,
    /// The messages this turn answers, oldest first, with their senders.
    pub messages: Vec<PromptMessage>,
    /// The chat's other participants (not the bot).
    pub participants: Vec<String>,
    /// Messages the bot did not answer since its last reply (attention gating), oldest first.
    pub context: Vec<PromptMessage>,
}

impl TurnRequest {
    /// The prompt text: the messages' texts, one per line, after the unanswered messages since
    /// the bot's last reply (if any). In groups, or when several people wrote, each line is
    /// prefixed with its sender so the agent can tell who said what.
    pub fn prompt(&self) -> String {
        let first = self.messages.first().map(|m| m.sender.as_str());
        let named = self.is_group
            || self
                .messages
                .iter()
                .chain(&self.context)
                .any(|m| Some(m.sender.as_str()) != first);
        let line = |m: &PromptMessage| {
            if named {
                format!("{}: {}", m.sender, m.text)
            } else {
                m.text.clone()
            }
        };
        let now: Vec<String> = self.messages.iter().map(line).collect();
        if self.context.is_empty() {
            return now.join("\n");
        }
        let earlier: Vec<String> = self.context.iter().map(line).collect();
        format!(
            "Since your last reply:\n{}\n\nNow:\n{}",
            earlier.join("\n"),
            now.join("\n")
        )
    }
}

/// One turn's output.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnReply {
    pub text: String,
    /// Files to send with the reply (absolute paths beneath the chat's home).
    pub attachments: Vec<std::path::PathBuf>,
    /// What the turn cost, as far as the agent reports it.
    pub accounting: TurnAccounting,
}

/// The agent session a turn ran in and what it cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnAccounting {
    pub session_id: Option<String>,
    pub cost_usd: Option<f64>,
    pub usage: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Worth one more try (the agent process died, a stream broke).
    #[error("agent failed, retryable: {0}")]
    Retryable(String),
    /// Trying again would fail the same way.
    #[error("agent failed: {0}")]
    Permanent(String),
    /// The turn ran past the configured timeout and was interrupted.
    #[error("timed out after {} s", .0.as_secs())]
    TimedOut(std::time::Duration),
    /// The chat's archived workspace is damaged, so it was not restored (and the archive was
    /// left as it was): the chat is marked failed and its owner told.
    #[error("the chat's workspace cannot be restored: {0}")]
    WorkspaceDamaged(String),
}

/// An agent backend.
pub trait Agent: Send + Sync {
    /// A short name for logs and /health.
    fn name(&self) -> &'static str;
    fn run_turn(&self, request: TurnRequest) -> BoxFuture<'_, Result<TurnReply, AgentError>>;
    /// Stops the turn's agent work (the turn timed out). Backends without one do nothing.
    fn interrupt(&self, _request: &TurnRequest) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    /// Forgets the chat's agent session, so its next turn starts fresh (`/picortex reset`).
    fn reset<'a>(&'a self, _chat_id: &'a str) -> BoxFuture<'a, Result<(), AgentError>> {
        Box::pin(async { Ok(()) })
    }
    /// Stops whatever runs for the chat between turns (its runner, agent and tmux server; its
    /// sandbox) and keeps its home: hibernation. The next turn starts it again and resumes the
    /// session. Backends that keep nothing running do nothing.
    fn stop_chat<'a>(&'a self, _chat_id: &'a str) -> BoxFuture<'a, Result<(), AgentError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Answers every message with "echo: <text>". Several folded messages give one line each.
pub struct EchoAgent;

impl Agent for EchoAgent {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn run_turn(&self, request: TurnRequest) -> BoxFuture<'_, Result<TurnReply, AgentError>> {
        Box::pin(async move {
            let text = request
                .messages
                .iter()
                .map(|m| format!("echo: {}", m.text))
                .collect::<Vec<_>>()
                .join("\n");
            Ok(TurnReply {
                text,
                attachments: Vec::new(),
                accounting: TurnAccounting::default(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(sender: &str, text: &str) -> PromptMessage {
        PromptMessage {
            id: format!("id-{text}"),
            sender: sender.into(),
            text: text.into(),
        }
    }

    #[tokio::test]
    async fn echo_answers_each_folded_message() {
        let req = TurnRequest {
            turn_id: 1,
            chat_id: "c".into(),
            is_group: false,
            request_id: "r".into(),
            messages: vec![msg("+1", "a"), msg("+1", "b $(rm -rf /)")],
            participants: vec!["+1".into()],
            context: Vec::new(),
        };
        assert_eq!(req.prompt(), "a\nb $(rm -rf /)");
        let reply = EchoAgent.run_turn(req).await.unwrap();
        assert_eq!(reply.text, "echo: a\necho: b $(rm -rf /)");
    }

    #[test]
    fn group_prompts_name_senders() {
        let req = TurnRequest {
            turn_id: 1,
            chat_id: "c".into(),
            is_group: true,
            request_id: "r".into(),
            messages: vec![msg("+1", "hi"), msg("+2", "yo")],
            participants: vec!["+1".into(), "+2".into()],
            context: Vec::new(),
        };
        assert_eq!(req.prompt(), "+1: hi\n+2: yo");
    }

    #[test]
    fn unanswered_messages_come_first_as_context() {
        let req = TurnRequest {
            turn_id: 1,
            chat_id: "c".into(),
            is_group: true,
            request_id: "r".into(),
            messages: vec![msg("+1", "pi, what time is it?")],
            participants: vec!["+1".into(), "+2".into()],
            context: vec![msg("+2", "lunch?"), msg("+1", "sure")],
        };
        assert_eq!(
            req.prompt(),
            "Since your last reply:\n+2: lunch?\n+1: sure\n\nNow:\n+1: pi, what time is it?"
        );
    }
}
