//! The daemon ↔ runner protocol: newline-delimited JSON over the runner's unix socket
//! (`~/.picortex/runner.sock`). Turn ids make every request idempotent: asking for a turn the
//! runner already ran (or is running) attaches to it instead of running it twice, which is how
//! a restarted daemon collects results that finished while it was down.

use serde::{Deserialize, Serialize};

/// The most bytes one protocol line may hold; a longer line is a protocol error.
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// What the daemon asks of the runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Run this turn, or attach to it if it is already running or finished.
    Turn(TurnSpec),
    /// Interrupt the running turn (the turn timeout fired).
    Interrupt { turn_id: i64 },
    /// Liveness and identity.
    Ping,
    /// Forget the agent session (after the running turn, if any); answered with a `Pong`.
    Reset,
}

/// One turn as the agent will see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnSpec {
    pub turn_id: i64,
    /// The prompt, byte-exact as the people wrote it (never passed through a shell).
    pub prompt: String,
    /// Who wrote the messages folded into this turn, in order.
    #[serde(default)]
    pub senders: Vec<String>,
    /// Request id for the logs, from the webhook that started it.
    #[serde(default)]
    pub request_id: String,
}

/// What the runner answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// The turn is running (sent first, so the daemon knows the runner has it).
    Accepted {
        turn_id: i64,
    },
    /// The turn's durable result.
    Result(TurnResult),
    Pong {
        pid: u32,
        agent: String,
        session_id: Option<String>,
    },
    Error {
        message: String,
    },
}

/// A finished turn, as written to `~/.picortex/turns/<turn id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnResult {
    pub turn_id: i64,
    /// False when the agent failed; `error` says why and `text` may be partial.
    pub ok: bool,
    /// The reply: every text block of the turn, in order.
    pub text: String,
    #[serde(default)]
    pub error: Option<String>,
    /// Whether trying again could help (the agent process died, a stream broke).
    #[serde(default)]
    pub retryable: bool,
    /// The agent session this turn ran in (Claude Code's session id).
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub cost_usd: Option<f64>,
    #[serde(default)]
    pub usage: Option<serde_json::Value>,
    pub duration_ms: u64,
    /// Files the agent put in `~/outbox/` during the turn, now under `~/outbox/sent/`, as paths
    /// relative to the home. The daemon sends them as attachments.
    #[serde(default)]
    pub attachments: Vec<String>,
}

impl TurnResult {
    pub fn succeeded(turn_id: i64, text: impl Into<String>) -> Self {
        Self {
            turn_id,
            ok: true,
            text: text.into(),
            error: None,
            retryable: false,
            session_id: None,
            cost_usd: None,
            usage: None,
            duration_ms: 0,
            attachments: Vec::new(),
        }
    }

    pub fn failed(turn_id: i64, error: impl Into<String>, retryable: bool) -> Self {
        Self {
            turn_id,
            ok: false,
            text: String::new(),
            error: Some(error.into()),
            retryable,
            session_id: None,
            cost_usd: None,
            usage: None,
            duration_ms: 0,
            attachments: Vec::new(),
        }
    }
}

/// Serializes one message as a protocol line (with the trailing newline).
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_byte_exact() {
        let nasty = "$(rm -rf ~) `id` \"quoted\" 'single'\nnewline \u{1b}[2J\u{0} 🙂";
        let req = Request::Turn(TurnSpec {
            turn_id: 7,
            prompt: nasty.into(),
            senders: vec!["+15551230001".into()],
            request_id: "r-1".into(),
        });
        let line = encode(&req).unwrap();
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        let back: Request = serde_json::from_slice(&line).unwrap();
        assert_eq!(back, req);
    }
}
