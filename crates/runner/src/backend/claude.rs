//! The `claude-code` backend: one long-lived `claude -p --input-format stream-json
//! --output-format stream-json --verbose` process per active chat. Each turn is one user line
//! on its stdin; its stdout events are read until the turn's `result`. All text blocks of the
//! turn make the reply (the `result` field holds only the last one); cost and usage are kept; an
//! `is_error` result, an exit without a result, or a stream silent for longer than the watchdog
//! is a failure. The latest session id is stored after every turn in `~/.picortex/session.json`
//! and passed to `--resume` when the process has to start again.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::Backend;
use crate::protocol::{TurnResult, TurnSpec};
use crate::transcript::Transcript;

/// How long a starting CLI may take to say anything.
const STARTUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ClaudeConfig {
    pub program: PathBuf,
    pub workdir: PathBuf,
    /// `--permission-mode` (e.g. `acceptEdits`, `bypassPermissions`).
    pub permission_mode: Option<String>,
    /// `--allowedTools`.
    pub allowed_tools: Vec<String>,
    /// `--append-system-prompt`: tells the agent it is texting and who is in the chat.
    pub append_system_prompt: Option<String>,
    /// A turn whose stream is silent this long is abandoned.
    pub watchdog: Duration,
    /// Where the latest session id is kept between processes.
    pub session_file: PathBuf,
}

struct Process {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

pub struct ClaudeBackend {
    config: ClaudeConfig,
    process: Option<Process>,
    session_id: Option<String>,
}

impl ClaudeBackend {
    pub fn new(config: ClaudeConfig) -> Self {
        let session_id = std::fs::read(&config.session_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["session_id"].as_str().map(str::to_owned));
        Self {
            config,
            process: None,
            session_id,
        }
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let mut cmd = tokio::process::Command::new(&self.config.program);
        cmd.args([
            "-p",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
        ]);
        if let Some(mode) = &self.config.permission_mode {
            cmd.args(["--permission-mode", mode]);
        }
        if !self.config.allowed_tools.is_empty() {
            cmd.arg("--allowedTools")
                .arg(self.config.allowed_tools.join(","));
        }
        if let Some(prompt) = &self.config.append_system_prompt {
            cmd.arg("--append-system-prompt").arg(prompt);
        }
        if let Some(session) = &self.session_id {
            cmd.args(["--resume", session]);
        }
        let mut child = cmd
            .current_dir(&self.config.workdir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("claude pipes unavailable"));
        };
        self.process = Some(Process {
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
        });
        Ok(())
    }

    fn remember_session(&mut self, session_id: &str) {
        if self.session_id.as_deref() == Some(session_id) {
            return;
        }
        self.session_id = Some(session_id.to_owned());
        let body = json!({"session_id": session_id}).to_string();
        let tmp = self.config.session_file.with_extension("json.tmp");
        // Best effort but atomic: a torn file must never replace a good one.
        if std::fs::write(&tmp, body).is_ok() {
            let _ = std::fs::rename(&tmp, &self.config.session_file);
        }
    }

    async fn run(&mut self, turn: &TurnSpec, transcript: &Transcript) -> TurnResult {
        if self.process.is_none()
            && let Err(e) = self.spawn()
        {
            return TurnResult::failed(
                turn.turn_id,
                format!("cannot start {}: {e}", self.config.program.display()),
                false,
            );
        }
        let line = json!({
            "type": "user",
            "message": {"role": "user", "content": [{"type": "text", "text": turn.prompt}]},
        });
        let Some(process) = self.process.as_mut() else {
            return TurnResult::failed(turn.turn_id, "claude is not running", true);
        };
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        if let Err(e) = process.stdin.write_all(&bytes).await {
            self.process = None;
            return TurnResult::failed(turn.turn_id, format!("claude's stdin closed: {e}"), true);
        }
        let _ = process.stdin.flush().await;

        let mut texts: Vec<String> = Vec::new();
        let mut started = false;
        loop {
            let Some(process) = self.process.as_mut() else {
                return TurnResult::failed(turn.turn_id, "claude went away", true);
            };
            // A (re)starting CLI is silent until its first event; give it longer than the
            // watchdog, which is about a stream that started and then went quiet.
            let limit = if started {
                self.config.watchdog
            } else {
                self.config.watchdog.max(STARTUP_TIMEOUT)
            };
            let next = tokio::time::timeout(limit, process.stdout.next_line()).await;
            started = true;
            let line = match next {
                Err(_) => {
                    transcript.note(&format!(
                        "no output from claude for {} s; stopping it",
                        limit.as_secs()
                    ));
                    self.kill().await;
                    return TurnResult::failed(
                        turn.turn_id,
                        format!("the agent went silent for {} s (watchdog)", limit.as_secs()),
                        false,
                    );
                }
                Ok(Ok(Some(line))) => line,
                Ok(Ok(None)) | Ok(Err(_)) => {
                    let status = self.kill().await;
                    return TurnResult::failed(
                        turn.turn_id,
                        format!("claude exited before finishing the turn ({status})"),
                        true,
                    );
                }
            };
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                transcript.note(&format!("(unparsed) {line}"));
                continue;
            };
            if let Some(session) = event["session_id"].as_str() {
                let session = session.to_owned();
                self.remember_session(&session);
            }
            match event["type"].as_str() {
                Some("assistant") => {
                    for block in event["message"]["content"].as_array().into_iter().flatten() {
                        match block["type"].as_str() {
                            Some("text") => {
                                let text = block["text"].as_str().unwrap_or_default();
                                if !text.trim().is_empty() {
                                    transcript.text(text);
                                    texts.push(text.to_owned());
                                }
                            }
                            Some("tool_use") => transcript.tool_call(
                                block["name"].as_str().unwrap_or("tool"),
                                &tool_summary(&block["input"]),
                            ),
                            _ => {}
                        }
                    }
                }
                Some("user") => {
                    for block in event["message"]["content"].as_array().into_iter().flatten() {
                        if block["type"] == "tool_result" {
                            transcript.tool_result(
                                &tool_result_text(&block["content"]),
                                block["is_error"].as_bool().unwrap_or(false),
                            );
                        }
                    }
                }
                Some("result") => return self.finish(turn, &event, texts),
                _ => {}
            }
        }
    }

    fn finish(&mut self, turn: &TurnSpec, event: &Value, texts: Vec<String>) -> TurnResult {
        let is_error = event["is_error"].as_bool().unwrap_or(false)
            || event["subtype"].as_str().is_some_and(|s| s != "success");
        let text = if texts.is_empty() {
            event["result"].as_str().unwrap_or_default().to_owned()
        } else {
            texts.join("\n\n")
        };
        let mut result = if is_error {
            let why = event["result"]
                .as_str()
                .or(event["subtype"].as_str())
                .unwrap_or("error");
            let mut r = TurnResult::failed(
                turn.turn_id,
                format!("the agent reported an error: {why}"),
                false,
            );
            r.text = text;
            r
        } else if text.trim().is_empty() {
            TurnResult::failed(turn.turn_id, "the agent finished without any text", false)
        } else {
            TurnResult::succeeded(turn.turn_id, text)
        };
        result.session_id = self.session_id.clone();
        result.cost_usd = event["total_cost_usd"].as_f64();
        result.usage = event.get("usage").cloned();
        result
    }

    async fn kill(&mut self) -> String {
        match self.process.take() {
            Some(mut p) => {
                let _ = p.child.start_kill();
                match p.child.wait().await {
                    Ok(s) => s.to_string(),
                    Err(e) => e.to_string(),
                }
            }
            None => "not running".into(),
        }
    }
}

fn tool_summary(input: &Value) -> String {
    for key in [
        "file_path",
        "command",
        "path",
        "pattern",
        "url",
        "description",
    ] {
        if let Some(v) = input[key].as_str() {
            return v.to_owned();
        }
    }
    input.to_string()
}

fn tool_result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

impl Backend for ClaudeBackend {
    fn name(&self) -> &'static str {
        "claude-code"
    }

    fn session_id(&self) -> Option<String> {
        self.session_id.clone()
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
            self.kill().await;
        })
    }

    fn reset(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.kill().await;
            self.session_id = None;
            let _ = std::fs::remove_file(&self.config.session_file);
        })
    }
}
