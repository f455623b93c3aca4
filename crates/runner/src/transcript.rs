//! The live transcript the runner prints to its tmux window, so the owner can watch a turn (or
//! attach and take over): the prompt, each tool call with a short result, and the final reply.

use std::io::Write as _;
use std::sync::Mutex;

/// Longest tool result shown, in characters; the rest is elided.
const SHORT_RESULT: usize = 160;

/// Writes transcript lines to stdout (the tmux window). Cheap to share.
#[derive(Default)]
pub struct Transcript {
    out: Mutex<()>,
}

impl Transcript {
    fn line(&self, text: &str) {
        let _guard = self.out.lock();
        let mut stdout = std::io::stdout().lock();
        // A closed terminal must not fail a turn; the transcript is best effort.
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }

    pub fn turn_started(&self, turn_id: i64, senders: &[String], prompt: &str) {
        let from = if senders.is_empty() {
            String::new()
        } else {
            format!(" from {}", senders.join(", "))
        };
        self.line(&format!("\n━━ turn {turn_id}{from} ━━"));
        for l in prompt.lines() {
            self.line(&format!("> {}", printable(l)));
        }
    }

    pub fn tool_call(&self, name: &str, summary: &str) {
        self.line(&format!("  → {name} {}", short(&printable(summary))));
    }

    pub fn tool_result(&self, summary: &str, is_error: bool) {
        let mark = if is_error { "✗" } else { "✓" };
        self.line(&format!("    {mark} {}", short(&printable(summary))));
    }

    pub fn text(&self, text: &str) {
        for l in text.lines() {
            self.line(&format!("  {}", printable(l)));
        }
    }

    pub fn note(&self, text: &str) {
        self.line(&format!("  · {}", printable(text)));
    }

    pub fn turn_finished(&self, turn_id: i64, ok: bool, duration_ms: u64, cost_usd: Option<f64>) {
        let cost = cost_usd.map(|c| format!(", ${c:.4}")).unwrap_or_default();
        let status = if ok { "done" } else { "FAILED" };
        self.line(&format!(
            "━━ turn {turn_id} {status} in {duration_ms} ms{cost} ━━"
        ));
    }
}

/// Drops control characters so text from the chat cannot drive the terminal (escape sequences).
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\t' { '·' } else { c })
        .collect()
}

fn short(s: &str) -> String {
    let one_line = s.replace('\n', " ⏎ ");
    if one_line.chars().count() > SHORT_RESULT {
        let cut: String = one_line.chars().take(SHORT_RESULT).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_neutralised() {
        assert_eq!(printable("a\u{1b}[2Jb\u{7}"), "a·[2Jb·");
        assert_eq!(short(&"x".repeat(200)).chars().count(), SHORT_RESULT + 1);
    }
}
