//! The real Claude Code CLI against the mock model, driven the way picortex's runner drives it:
//! one long-lived `claude -p --input-format stream-json --output-format stream-json --verbose`
//! process, user messages written to stdin as JSON lines, typed events read from stdout.
//!
//! The CLI is found through `PICORTEX_CLAUDE_BIN` or `claude` on `PATH`; without it every test
//! prints `SKIP: claude CLI not installed` and passes. Each test runs the CLI with a cleared
//! environment in a temporary HOME / config dir / TMPDIR / working directory, with
//! `ANTHROPIC_BASE_URL` on loopback and non-essential traffic disabled, and is bounded in time.
//! What these tests found is written up in docs/claude-code-protocol.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mock_model::{ErrorStep, Exhausted, MockModelHandle, Rule, Script, Step, ToolCall};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// Upper bound for any single test.
const TEST_BUDGET: Duration = Duration::from_secs(120);
/// Upper bound for one ordinary turn (the CLI starts in a second or two).
const TURN: Duration = Duration::from_secs(45);

fn claude_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("PICORTEX_CLAUDE_BIN") {
        let bin = PathBuf::from(bin);
        return bin.is_file().then_some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("claude"))
        .find(|candidate| candidate.is_file())
}

macro_rules! claude_or_skip {
    () => {
        match claude_bin() {
            Some(bin) => bin,
            None => {
                println!("SKIP: claude CLI not installed");
                return;
            }
        }
    };
}

async fn serve(script: Script) -> MockModelHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    mock_model::start(script, listener).await.unwrap()
}

/// A private world for the CLI: HOME, config dir, TMPDIR and the working directory.
struct Sandbox {
    _dir: tempfile::TempDir,
    home: PathBuf,
    work: PathBuf,
    tmp: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let work = dir.path().join("work");
        let tmp = dir.path().join("tmp");
        for d in [&home, &work, &tmp] {
            std::fs::create_dir_all(d).unwrap();
        }
        // Canonical paths: the CLI reports its cwd canonicalized.
        let work = work.canonicalize().unwrap();
        Self {
            _dir: dir,
            home,
            work,
            tmp,
        }
    }

    /// The command line picortex's runner uses, with the offline environment.
    fn command(
        &self,
        bin: &Path,
        model: &MockModelHandle,
        cwd: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Command {
        let mut cmd = Command::new(bin);
        cmd.args([
            "-p",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
            // Works as root too (unlike --dangerously-skip-permissions): Write/Edit are
            // auto-approved, Bash is allowed explicitly.
            "--permission-mode",
            "acceptEdits",
            "--allowedTools",
            "Bash,Read,Write,Edit",
        ])
        .args(extra)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &self.home)
        .env("CLAUDE_CONFIG_DIR", self.home.join(".claude"))
        .env("TMPDIR", &self.tmp)
        .env("CLAUDE_CODE_TMPDIR", &self.tmp)
        .env("ANTHROPIC_BASE_URL", model.base_url())
        .env("ANTHROPIC_API_KEY", "dummy-key")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd
    }
}

/// One running CLI process.
struct Cli {
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::UnboundedReceiver<Value>,
    stderr: Arc<Mutex<String>>,
    started: Instant,
}

/// Everything the CLI printed for one turn, up to and including `result`.
#[derive(Debug)]
struct Turn {
    events: Vec<Value>,
    result: Value,
}

impl Turn {
    fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e["type"] == kind)
    }

    /// Every text block of every assistant message, in order.
    fn texts(&self) -> Vec<String> {
        self.blocks("assistant", "text")
            .map(|b| b["text"].as_str().unwrap().to_string())
            .collect()
    }

    fn blocks<'a>(&'a self, role: &'a str, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.of_type(role)
            .filter_map(|e| e["message"]["content"].as_array())
            .flatten()
            .filter(move |b| b["type"] == kind)
    }

    fn system(&self, subtype: &str) -> Vec<&Value> {
        self.of_type("system")
            .filter(|e| e["subtype"] == subtype)
            .collect()
    }
}

impl Cli {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("spawn claude");
        let stdout = child.stdout.take().unwrap();
        let mut stderr_pipe = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let event = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut buf = String::new();
            let _ = stderr_pipe.read_to_string(&mut buf).await;
            sink.lock().unwrap().push_str(&buf);
        });
        Self {
            stdin: child.stdin.take(),
            child,
            events: rx,
            stderr,
            started: Instant::now(),
        }
    }

    async fn send(&mut self, text: &str) {
        let line = json!({"type": "user", "message": {"role": "user", "content": text}});
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// Reads events until a `result`, or gives back what came before the deadline.
    async fn until_result(&mut self, within: Duration) -> Result<Turn, Vec<Value>> {
        let deadline = tokio::time::Instant::now() + within;
        let mut events = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    let done = event["type"] == "result";
                    events.push(event);
                    if done {
                        let result = events.last().cloned().unwrap();
                        return Ok(Turn { events, result });
                    }
                }
                Ok(None) | Err(_) => return Err(events),
            }
        }
    }

    async fn turn(&mut self, text: &str, within: Duration) -> Turn {
        self.send(text).await;
        match self.until_result(within).await {
            Ok(turn) => turn,
            Err(events) => panic!(
                "no result within {within:?} for {text:?}; events: {events:#?}; stderr: {}",
                self.stderr()
            ),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Closes stdin (end of input) and waits for the process to exit.
    async fn finish(mut self, within: Duration) -> (ExitStatus, Vec<Value>) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .expect("claude exits after stdin closes")
            .unwrap();
        let mut rest = Vec::new();
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_secs(2), self.events.recv()).await
        {
            rest.push(event);
        }
        (status, rest)
    }
}

fn session_id(turn: &Turn) -> String {
    turn.result["session_id"]
        .as_str()
        .expect("result has session_id")
        .to_string()
}

/// (a) A plain text turn: the events, the result, what the model received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_turn() {
    let bin = claude_or_skip!();
    tokio::time::timeout(TEST_BUDGET, async {
        let model = serve(
            Script::new().rule(
                Rule::prompt_contains("ping-a")
                    .named("pong")
                    .then(Step::texts(["pong one", "pong two"])),
            ),
        )
        .await;
        let sandbox = Sandbox::new();
        let mut cli = Cli::spawn(sandbox.command(&bin, &model, &sandbox.work, &[], &[]));
        let turn = cli.turn("ping-a, please", TURN).await;
        println!("turn finished {:?} after spawn", cli.started.elapsed());

        let init = turn.system("init");
        assert_eq!(
            init.len(),
            1,
            "one system/init per turn: {:#?}",
            turn.events
        );
        let init = init[0];
        assert_eq!(init["cwd"], sandbox.work.to_str().unwrap());
        assert_eq!(init["apiKeySource"], "ANTHROPIC_API_KEY");
        assert!(
            init["tools"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "Write")
        );
        println!(
            "init: model={} permissionMode={} version={}",
            init["model"], init["permissionMode"], init["claude_code_version"]
        );

        // Each content block arrives as its own `assistant` event; `result` keeps only the last.
        assert_eq!(turn.texts(), ["pong one", "pong two"]);
        let result = &turn.result;
        assert_eq!(result["subtype"], "success");
        assert_eq!(result["is_error"], false);
        assert_eq!(result["result"], "pong two");
        assert_eq!(result["num_turns"], 1);
        assert_eq!(result["session_id"], init["session_id"]);
        assert!(result["total_cost_usd"].as_f64().unwrap() > 0.0);
        assert!(result["usage"]["input_tokens"].as_u64().unwrap() > 0);
        assert!(result["usage"]["output_tokens"].as_u64().unwrap() > 0);
        for event in turn.of_type("assistant") {
            assert_eq!(event["session_id"], init["session_id"]);
            assert!(
                event["message"]["id"]
                    .as_str()
                    .unwrap()
                    .starts_with("msg_01")
            );
        }

        let requests = model.message_requests();
        assert_eq!(requests.len(), 1, "one model request for a text turn");
        let request = &requests[0];
        assert_eq!(request.rule.as_deref(), Some("pong"));
        assert!(request.stream, "Claude Code streams");
        assert_eq!(request.query.as_deref(), Some("beta=true"));
        assert_eq!(request.api_key.as_deref(), Some("dummy-key"));
        assert_eq!(
            request.headers.get("anthropic-version").map(String::as_str),
            Some("2023-06-01")
        );
        assert_eq!(
            request.headers.get("x-claude-code-session-id"),
            init["session_id"].as_str().map(str::to_string).as_ref()
        );
        assert!(request.system.as_deref().unwrap().contains(&format!(
            "Primary working directory: {}",
            sandbox.work.display()
        )));
        assert!(request.tools.iter().any(|t| t == "Write"));
        println!(
            "model asked for: {:?}, max_tokens {}",
            request.model, request.other["max_tokens"]
        );

        let (status, _) = cli.finish(TURN).await;
        assert!(status.success(), "exit after stdin closes: {status:?}");
        model.shutdown().await;
    })
    .await
    .expect("test budget");
}

/// (b) A Write tool call really writes the file, and the follow-up text comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_tool_creates_the_file() {
    let bin = claude_or_skip!();
    tokio::time::timeout(TEST_BUDGET, async {
        let content = "written by the real Write tool\nline two: $HOME `x` \"q\" 'q'\n";
        let model = serve(
            Script::new().rule(
                Rule::prompt_contains("write-b")
                    .named("writer")
                    .has_tools(true)
                    .then(Step::tool_use_with_text(
                        "Writing it now.",
                        vec![ToolCall::new(
                            "Write",
                            json!({"file_path": "{{cwd}}/made-by-tool.txt", "content": content}),
                        )],
                    ))
                    .text("File written."),
            ),
        )
        .await;
        let sandbox = Sandbox::new();
        let mut cli = Cli::spawn(sandbox.command(&bin, &model, &sandbox.work, &[], &[]));
        let turn = cli.turn("write-b the file please", TURN).await;

        let written =
            std::fs::read_to_string(sandbox.work.join("made-by-tool.txt")).expect("file exists");
        assert_eq!(written, content);

        let tool_use: Vec<&Value> = turn.blocks("assistant", "tool_use").collect();
        assert_eq!(tool_use.len(), 1);
        assert_eq!(tool_use[0]["name"], "Write");
        let tool_id = tool_use[0]["id"].as_str().unwrap();
        assert!(tool_id.starts_with("toolu_01"));
        let results: Vec<&Value> = turn.blocks("user", "tool_result").collect();
        assert_eq!(
            results.len(),
            1,
            "the CLI echoes the tool result as a user event"
        );
        assert_eq!(results[0]["tool_use_id"], tool_id);
        assert_ne!(results[0]["is_error"], true);
        println!("tool_result: {}", results[0]["content"]);
        let echo = turn.of_type("user").next().unwrap();
        assert_eq!(echo["tool_use_result"]["type"], "create");

        assert_eq!(turn.texts(), ["Writing it now.", "File written."]);
        assert_eq!(turn.result["result"], "File written.");
        assert_eq!(turn.result["num_turns"], 2);
        assert_eq!(turn.result["is_error"], false);
        assert_eq!(turn.result["permission_denials"], json!([]));

        let requests = model.message_requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            requests.iter().map(|r| r.step).collect::<Vec<_>>(),
            [Some(0), Some(1)]
        );
        assert!(requests[1].has_tool_result());
        cli.finish(TURN).await;
        model.shutdown().await;
    })
    .await
    .expect("test budget");
}

/// (c) Two turns in the same process share the session; the second request carries the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_turns_in_one_process() {
    let bin = claude_or_skip!();
    tokio::time::timeout(TEST_BUDGET, async {
        let model = serve(
            Script::new()
                .rule(Rule::prompt_contains("first-c").text("answer one"))
                .rule(Rule::prompt_contains("second-c").text("answer two")),
        )
        .await;
        let sandbox = Sandbox::new();
        let mut cli = Cli::spawn(sandbox.command(&bin, &model, &sandbox.work, &[], &[]));
        let one = cli.turn("first-c message", TURN).await;
        let started = Instant::now();
        let two = cli.turn("second-c message", TURN).await;
        println!("warm second turn took {:?}", started.elapsed());
        assert_eq!(one.result["result"], "answer one");
        assert_eq!(two.result["result"], "answer two");
        assert_eq!(session_id(&one), session_id(&two));
        // A fresh system/init opens every turn.
        assert_eq!(two.system("init").len(), 1);

        let requests = model.message_requests();
        assert_eq!(requests.len(), 2);
        let user_texts = requests[1].texts_of("user").join("\n");
        assert!(user_texts.contains("first-c message") && user_texts.contains("second-c message"));
        assert_eq!(requests[1].texts_of("assistant"), ["answer one"]);
        let (status, rest) = cli.finish(TURN).await;
        assert!(status.success());
        assert!(rest.is_empty(), "nothing after the last result: {rest:?}");
        model.shutdown().await;
    })
    .await
    .expect("test budget");
}

/// (d) Exit, then `--resume <session id>` in the same directory continues the conversation;
/// in another directory the session is not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_continues_the_conversation() {
    let bin = claude_or_skip!();
    tokio::time::timeout(TEST_BUDGET, async {
        let model = serve(
            Script::new()
                .rule(Rule::prompt_contains("remember-d").text("Noted: 42."))
                .rule(Rule::prompt_contains("recall-d").text("It was 42.")),
        )
        .await;
        let sandbox = Sandbox::new();
        let mut first = Cli::spawn(sandbox.command(&bin, &model, &sandbox.work, &[], &[]));
        let turn = first.turn("remember-d: the number is 42", TURN).await;
        let sid = session_id(&turn);
        let (status, _) = first.finish(TURN).await;
        assert!(status.success());
        let transcript = sandbox
            .home
            .join(".claude/projects")
            .join(sandbox.work.to_str().unwrap().replace(['/', '.'], "-"))
            .join(format!("{sid}.jsonl"));
        assert!(
            transcript.is_file(),
            "session transcript at {}",
            transcript.display()
        );

        let mut second =
            Cli::spawn(sandbox.command(&bin, &model, &sandbox.work, &["--resume", &sid], &[]));
        let turn = second.turn("recall-d the number", TURN).await;
        assert_eq!(turn.result["result"], "It was 42.");
        let resumed = session_id(&turn);
        println!(
            "resumed session id: {resumed} (was {sid}, same: {})",
            resumed == sid
        );
        let last = model.message_requests().pop().unwrap();
        let users = last.texts_of("user").join("\n");
        assert!(
            users.contains("remember-d: the number is 42"),
            "earlier prompt replayed: {users}"
        );
        assert!(users.contains("recall-d the number"));
        assert_eq!(last.texts_of("assistant"), ["Noted: 42."]);
        second.finish(TURN).await;

        // Another working directory: the session is looked up per project directory.
        let elsewhere = sandbox.work.parent().unwrap().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let mut third =
            Cli::spawn(sandbox.command(&bin, &model, &elsewhere, &["--resume", &sid], &[]));
        third.send("recall-d again").await;
        let outcome = third.until_result(TURN).await;
        let stderr = third.stderr();
        let (status, _) = third.finish(TURN).await;
        let turn = outcome.expect("a result even when the session is missing");
        println!("resume elsewhere: exit {status:?}, result {}", turn.result);
        assert_eq!(turn.result["is_error"], true);
        assert_eq!(turn.result["subtype"], "error_during_execution");
        assert!(!status.success());
        let said = format!("{:?}{stderr}", turn.events);
        assert!(said.contains("No conversation found"), "{said}");
        model.shutdown().await;
    })
    .await
    .expect("test budget");
}

/// (e1) A 500 is retried with backoff; the retry succeeds and the turn completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_is_retried() {
    let bin = claude_or_skip!();
    tokio::time::timeout(TEST_BUDGET, async {
        let model = serve(
            Script::new().rule(
                Rule::prompt_contains("flaky-e")
                    .has_tools(true)
                    .error(500, "api_error", "Internal server error")
                    .text("recovered"),
            ),
        )
        .await;
        let sandbox = Sandbox::new();
        let mut cli = Cli::spawn(sandbox.command(&bin, &model, &sandbox.work, &[], &[]));
        let turn = cli.turn("flaky-e", TURN).await;
        let retries = turn.system("api_retry");
        assert_eq!(retries.len(), 1, "{:#?}", turn.events);
        assert_eq!(retries[0]["attempt"], 1);
        assert_eq!(retries[0]["error_status"], 500);
        assert_eq!(retries[0]["error"], "server_error");
        println!("api_retry event: {}", retries[0]);
        assert_eq!(turn.result["is_error"], false);
        assert_eq!(turn.result["result"], "recovered");
        let requests = model.message_requests();
        assert_eq!(requests.len(), 2);
        println!("retry gap: {} ms", requests[1].at_ms - requests[0].at_ms);
        cli.finish(TURN).await;
        model.shutdown().await;
    })
    .await
    .expect("test budget");
}

/// (e2) Persistent 429 / 529 / 500: retried `CLAUDE_CODE_MAX_RETRIES` times (default 10, which
/// takes about three minutes), honouring `retry-after`, then reported in `result` with
/// `is_error: true` and `api_error_status`; the process stays usable for the next turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_errors_end_the_turn_with_is_error() {
    let bin = claude_or_skip!();
    tokio::time::timeout(TEST_BUDGET, async {
        let always = |needle: &str, status: u16, kind: &str| {
            Rule::prompt_contains(needle)
                .has_tools(true)
                .then(Step::error_step(ErrorStep {
                    status: Some(status),
                    error_type: Some(kind.into()),
                    retry_after: (status == 429).then_some(1),
                    ..ErrorStep::default()
                }))
                .on_exhausted(Exhausted::RepeatLast)
        };
        let model = serve(
            Script::new()
                .rule(always("limit-e", 429, "rate_limit_error"))
                .rule(always("overload-e", 529, "overloaded_error"))
                .rule(
                    Rule::prompt_contains("final-e")
                        .has_tools(true)
                        .then(Step::error_step(ErrorStep {
                            status: Some(500),
                            should_retry: Some(false),
                            ..ErrorStep::default()
                        })),
                )
                .rule(Rule::prompt_contains("after-e").text("still alive")),
        )
        .await;
        let sandbox = Sandbox::new();
        let mut cli = Cli::spawn(sandbox.command(
            &bin,
            &model,
            &sandbox.work,
            &[],
            &[("CLAUDE_CODE_MAX_RETRIES", "2")],
        ));

        let started = Instant::now();
        let turn = cli.turn("limit-e", TURN).await;
        let retries = turn.system("api_retry");
        println!("429 x3 took {:?}; retries: {retries:?}", started.elapsed());
        assert_eq!(retries.len(), 2);
        assert_eq!(retries[0]["max_retries"], 2);
        assert_eq!(retries[0]["error_status"], 429);
        assert_eq!(retries[0]["error"], "rate_limit");
        assert!(
            retries[0]["retry_delay_ms"].as_f64().unwrap() >= 1000.0,
            "retry-after honoured"
        );
        assert_eq!(turn.result["is_error"], true);
        assert_eq!(
            turn.result["subtype"], "success",
            "an API failure is still subtype success"
        );
        assert_eq!(turn.result["api_error_status"], 429);
        assert!(
            turn.result["result"]
                .as_str()
                .unwrap()
                .starts_with("API Error")
        );
        // The error text also arrives as a synthetic assistant message.
        let synthetic = turn.of_type("assistant").last().unwrap();
        assert_eq!(synthetic["message"]["model"], "<synthetic>");

        let turn = cli.turn("overload-e", TURN).await;
        println!("529 turn result: {}", turn.result["result"]);
        assert_eq!(turn.system("api_retry").len(), 2);
        assert_eq!(turn.system("api_retry")[0]["error_status"], 529);
        assert_eq!(turn.result["is_error"], true);
        // After an earlier failed turn in the same process the CLI reports "Repeated 529
        // Overloaded errors" with api_error_status null (a fresh process says 529). Only
        // is_error is dependable.
        assert!(
            matches!(&turn.result["api_error_status"], Value::Null)
                || turn.result["api_error_status"] == 529
        );
        assert!(turn.result["result"].as_str().unwrap().contains("529"));

        // `x-should-retry: false` stops the retries at once.
        let turn = cli.turn("final-e", TURN).await;
        assert!(turn.system("api_retry").is_empty());
        assert_eq!(turn.result["api_error_status"], 500);

        let turn = cli.turn("after-e", TURN).await;
        assert_eq!(turn.result["result"], "still alive");
        assert_eq!(turn.result["is_error"], false);

        let statuses: Vec<u16> = model.message_requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [429, 429, 429, 529, 529, 529, 500, 200]);
        cli.finish(TURN).await;
        model.shutdown().await;
    })
    .await
    .expect("test budget");
}

/// (f1) A stream that goes silent after `message_start`: the CLI neither retries nor gives up
/// within our bound (its own idle watchdog is five minutes), so the runner needs a watchdog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_stream_hangs_the_turn() {
    let bin = claude_or_skip!();
    tokio::time::timeout(TEST_BUDGET, async {
        let model = serve(
            Script::new().rule(
                Rule::prompt_contains("hang-f")
                    .has_tools(true)
                    .stall()
                    .text("late"),
            ),
        )
        .await;
        let sandbox = Sandbox::new();
        let mut cli = Cli::spawn(sandbox.command(&bin, &model, &sandbox.work, &[], &[]));
        cli.send("hang-f").await;
        let bound = Duration::from_secs(25);
        let outcome = cli.until_result(bound).await;
        let events = match outcome {
            Ok(turn) => panic!("expected no result while stalled, got {}", turn.result),
            Err(events) => events,
        };
        println!(
            "after {bound:?} of silence: {} events, none a result",
            events.len()
        );
        assert!(
            events.iter().all(|e| e["type"] != "assistant"),
            "no partial assistant message"
        );
        assert_eq!(
            model.message_requests().len(),
            1,
            "no retry while the stream is open"
        );
        assert!(
            cli.child.try_wait().unwrap().is_none(),
            "the process is still running"
        );
        cli.child.kill().await.unwrap();
        model.shutdown().await;
    })
    .await
    .expect("test budget");
}

/// (f2) A stream cut mid-way (connection dropped, no message_stop) is retried at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_stream_is_retried() {
    let bin = claude_or_skip!();
    tokio::time::timeout(TEST_BUDGET, async {
        let model = serve(
            Script::new().rule(
                Rule::prompt_contains("drop-f")
                    .has_tools(true)
                    .then(Step::stall().close_after_ms(500))
                    .text("second try"),
            ),
        )
        .await;
        let sandbox = Sandbox::new();
        let mut cli = Cli::spawn(sandbox.command(&bin, &model, &sandbox.work, &[], &[]));
        let turn = cli.turn("drop-f", TURN).await;
        println!(
            "events: {:?}",
            turn.events
                .iter()
                .map(|e| format!("{}/{}", e["type"], e["subtype"]))
                .collect::<Vec<_>>()
        );
        println!("api_retry: {:?}", turn.system("api_retry"));
        assert_eq!(turn.result["result"], "second try");
        assert_eq!(turn.result["is_error"], false);
        let requests = model.message_requests();
        assert_eq!(requests.len(), 2);
        println!(
            "gap after the cut: {} ms; the retry streams: {}",
            requests[1].at_ms - requests[0].at_ms,
            requests[1].stream
        );
        cli.finish(TURN).await;
        model.shutdown().await;
    })
    .await
    .expect("test budget");
}

/// (g) What the CLI asks of the model server at start and per turn, with non-essential traffic
/// off: a `HEAD /` probe and one streaming `/v1/messages` per model call; nothing else. An
/// unscripted prompt gets the default answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_requests_and_default_answers() {
    let bin = claude_or_skip!();
    tokio::time::timeout(TEST_BUDGET, async {
        let model =
            serve(Script::new().rule(Rule::prompt_contains("never-matches-g").text("x"))).await;
        let sandbox = Sandbox::new();
        let mut cli = Cli::spawn(sandbox.command(&bin, &model, &sandbox.work, &[], &[]));
        let turn = cli.turn("tell me something", TURN).await;
        assert_eq!(turn.result["is_error"], false);
        assert!(
            turn.result["result"]
                .as_str()
                .unwrap()
                .contains("mock model")
        );
        cli.finish(TURN).await;
        let requests = model.requests();
        for r in &requests {
            println!(
                "{} {}{} model={:?} stream={} tools={} rule={:?} reply={}",
                r.method,
                r.path,
                r.query
                    .as_deref()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default(),
                r.model,
                r.stream,
                r.tools.len(),
                r.rule,
                r.reply
            );
        }
        assert!(
            requests.iter().all(|r| r.reply != "not_found"),
            "every route the CLI used exists"
        );
        let messages: Vec<_> = requests.iter().filter(|r| r.is_messages()).collect();
        assert_eq!(
            messages.len(),
            1,
            "no title/haiku/count_tokens side requests"
        );
        assert_eq!(messages[0].rule.as_deref(), Some("default"));
        let others: Vec<String> = requests
            .iter()
            .filter(|r| !r.is_messages())
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(
            others
                .iter()
                .all(|o| o == "HEAD /" || o == "GET /" || o.ends_with("/count_tokens")),
            "{others:?}"
        );
        let written: Vec<String> = walk(&sandbox.home)
            .into_iter()
            .chain(walk(&sandbox.tmp))
            .collect();
        println!(
            "files the CLI wrote under HOME and TMPDIR:\n  {}",
            written.join("\n  ")
        );
        model.shutdown().await;
    })
    .await
    .expect("test budget");
}

/// The demo persona with the real CLI: a greeting, then a real file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_persona_with_the_real_cli() {
    let bin = claude_or_skip!();
    tokio::time::timeout(TEST_BUDGET, async {
        let model = serve(Script::demo_persona()).await;
        let sandbox = Sandbox::new();
        let mut cli = Cli::spawn(sandbox.command(&bin, &model, &sandbox.work, &[], &[]));
        let hello = cli.turn("hello!", TURN).await;
        assert!(
            hello.result["result"]
                .as_str()
                .unwrap()
                .contains("picortex")
        );
        let write = cli
            .turn("write a file called todo.txt saying buy milk", TURN)
            .await;
        assert_eq!(
            std::fs::read_to_string(sandbox.work.join("todo.txt")).unwrap(),
            "buy milk\n"
        );
        assert!(
            write.result["result"]
                .as_str()
                .unwrap()
                .starts_with("Done!")
        );
        assert_eq!(write.texts().len(), 2);
        cli.finish(TURN).await;
        model.shutdown().await;
    })
    .await
    .expect("test budget");
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(root.parent().unwrap())
                        .unwrap()
                        .display()
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    out
}
