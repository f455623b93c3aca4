//! The `command` backend: runs any CLI once per turn (e.g. `codex exec`), with the prompt on its
//! stdin and its stdout as the reply. The program and its arguments come from configuration;
//! the prompt never touches a command line or a shell.

use std::path::PathBuf;
use std::process::Stdio;

use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::Backend;
use crate::protocol::{TurnResult, TurnSpec};
use crate::transcript::Transcript;

/// Largest reply read from the command's stdout.
const MAX_OUTPUT: usize = 1024 * 1024;

pub struct CommandBackend {
    program: PathBuf,
    args: Vec<String>,
    workdir: PathBuf,
    child: Option<tokio::process::Child>,
}

impl CommandBackend {
    pub fn new(program: PathBuf, args: Vec<String>, workdir: PathBuf) -> Self {
        Self {
            program,
            args,
            workdir,
            child: None,
        }
    }

    async fn run(&mut self, turn: &TurnSpec, transcript: &Transcript) -> TurnResult {
        let mut child = match tokio::process::Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.workdir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                return TurnResult::failed(
                    turn.turn_id,
                    format!("cannot start {}: {e}", self.program.display()),
                    false,
                );
            }
        };
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return TurnResult::failed(turn.turn_id, "command pipes unavailable", true);
        };
        self.child = Some(child);
        let prompt = turn.prompt.clone();
        let writer = tokio::spawn(async move {
            // A command that does not read its stdin is fine; ignore a broken pipe.
            let _ = stdin.write_all(prompt.as_bytes()).await;
            let _ = stdin.shutdown().await;
        });
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut stdout = stdout.take(MAX_OUTPUT as u64);
        let mut stderr = stderr.take(64 * 1024);
        let (r1, r2) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        let _ = writer.await;
        let status = match self.child.take() {
            Some(mut c) => c.wait().await,
            None => return TurnResult::failed(turn.turn_id, "command vanished", true),
        };
        if let Err(e) = r1.and(r2) {
            return TurnResult::failed(turn.turn_id, format!("reading the command: {e}"), true);
        }
        let stderr_text = String::from_utf8_lossy(&err);
        if !stderr_text.trim().is_empty() {
            transcript.note(stderr_text.trim());
        }
        let text = String::from_utf8_lossy(&out).trim_end().to_owned();
        match status {
            Ok(s) if s.success() => {
                transcript.text(&text);
                TurnResult::succeeded(turn.turn_id, text)
            }
            Ok(s) => {
                let mut failed = TurnResult::failed(
                    turn.turn_id,
                    format!(
                        "{} exited with {s}: {}",
                        self.program.display(),
                        stderr_text.trim()
                    ),
                    false,
                );
                failed.text = text;
                failed
            }
            Err(e) => {
                TurnResult::failed(turn.turn_id, format!("waiting for the command: {e}"), true)
            }
        }
    }
}

impl Backend for CommandBackend {
    fn name(&self) -> &'static str {
        "command"
    }

    fn session_id(&self) -> Option<String> {
        None
    }

    fn run_turn<'a>(
        &'a mut self,
        turn: &'a TurnSpec,
        transcript: &'a Transcript,
    ) -> BoxFuture<'a, TurnResult> {
        Box::pin(self.run(turn, transcript))
    }

    fn abort(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill().await;
            }
        })
    }
}
