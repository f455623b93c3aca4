//! Agent backends behind one interface: `command` (any CLI: the prompt on stdin, the reply on
//! stdout) and `claude-code` (a long-lived Claude Code process over its stream-json protocol).

pub mod claude;
pub mod command;

use futures::future::BoxFuture;

use crate::protocol::{TurnResult, TurnSpec};
use crate::transcript::Transcript;

/// An agent the runner drives. One turn at a time; the runner serializes calls.
pub trait Backend: Send {
    fn name(&self) -> &'static str;
    /// The agent session turns currently continue, if the backend has one.
    fn session_id(&self) -> Option<String>;
    /// Runs one turn to completion. Failures are returned as a failed [`TurnResult`], never a
    /// panic; `duration_ms` is filled in by the caller.
    fn run_turn<'a>(
        &'a mut self,
        turn: &'a TurnSpec,
        transcript: &'a Transcript,
    ) -> BoxFuture<'a, TurnResult>;
    /// Stops whatever the agent is doing (the turn was interrupted or timed out). The next turn
    /// starts fresh, resuming the session where the backend supports it.
    fn abort(&mut self) -> BoxFuture<'_, ()>;
    /// Forgets the agent session: the next turn starts a fresh conversation.
    fn reset(&mut self) -> BoxFuture<'_, ()> {
        self.abort()
    }
}
