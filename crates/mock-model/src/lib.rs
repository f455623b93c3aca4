//! mock-model: a scripted Anthropic Messages API server for tests and the demo.
//!
//! It answers `POST /v1/messages` (plain JSON and `stream: true` SSE) and
//! `POST /v1/messages/count_tokens` the way the real API shapes them, with answers taken from a
//! [`Script`]: text, tool calls (which a real agent such as Claude Code then executes), errors
//! (429/500/529 with the real error body), delays, and streams that stall. It accepts any
//! `x-api-key` / `authorization` and records every request, so tests can check what the client
//! sent ([`MockModelHandle::requests`]).
//!
//! ```no_run
//! use mock_model::{Rule, Script, Step};
//! use serde_json::json;
//! # async fn demo() -> std::io::Result<()> {
//! let script = Script::new()
//!     .rule(Rule::prompt_contains("hello").text("Hi there!"))
//!     .rule(
//!         Rule::prompt_contains("write")
//!             .tool_use("Write", json!({"file_path": "{{cwd}}/a.txt", "content": "hi\n"}))
//!             .text("Done, a.txt is written."),
//!     )
//!     .rule(Rule::prompt_contains("busy").then(Step::error(429, "rate_limit_error", "slow down")));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let model = mock_model::start(script, listener).await?;
//! // ANTHROPIC_BASE_URL=model.base_url() for the client under test …
//! for request in model.requests() {
//!     println!("{} {} rule={:?}", request.method, request.path, request.rule);
//! }
//! model.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Modules: [`script`] (the script format and builder), [`log`] (the request log),
//! [`error`]; internally `server` (routes), `request` (reading a request) and `wire` (the API's
//! JSON and SSE shapes).

pub mod error;
pub mod log;
mod request;
pub mod script;
mod server;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::ScriptError;
pub use log::RecordedRequest;
pub use script::{
    Action, ErrorStep, Exhausted, Matcher, Rule, Scope, Script, StallStep, Step, ToolCall,
    ToolUseStep,
};

/// A running mock model server.
#[derive(Debug)]
pub struct MockModelHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    shared: Arc<server::Shared>,
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Starts serving `script` on `listener` (bind `127.0.0.1:0` for a free port).
///
/// Fails with `InvalidInput` when the script does not validate (a bad regex, a rule without
/// steps, …).
pub async fn start(
    script: Script,
    listener: tokio::net::TcpListener,
) -> std::io::Result<MockModelHandle> {
    let compiled = server::Compiled::new(script)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let addr = listener.local_addr()?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(server::Shared::new(compiled, shutdown_rx.clone()));
    let app = server::router(Arc::clone(&shared));
    let mut graceful = shutdown_rx;
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = graceful.wait_for(|down| *down).await;
            })
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "mock-model: server stopped with an error");
        }
    });
    tracing::info!(%addr, "mock-model: listening");
    Ok(MockModelHandle {
        addr,
        shared,
        shutdown,
        task: Mutex::new(Some(task)),
    })
}

impl MockModelHandle {
    /// `http://<addr>`, the value for `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far (except `/_mock/…`), oldest first, up to
    /// [`log::LOG_CAPACITY`].
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Only the `POST /v1/messages` requests.
    pub fn message_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_messages)
            .collect()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.shared.clear_requests();
    }

    /// Swaps the script (and forgets every rule's progress).
    pub fn set_script(&self, script: Script) -> Result<(), ScriptError> {
        self.shared.set_script(script)
    }

    /// The script in use.
    pub fn script(&self) -> Script {
        self.shared.script()
    }

    /// Stops the server: stalled streams end, open connections are closed; waits up to five
    /// seconds for in-flight requests.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let task = server::lock(&self.task).take();
        if let Some(mut task) = task
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for MockModelHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
