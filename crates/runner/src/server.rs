//! The runner's socket server and turn worker. Connections send [`Request`]s; turns run one at a
//! time on a worker that owns the backend; every result is written to its turn file before any
//! connection is told. A turn id the runner already knows attaches to that turn instead of
//! running it again. With no turn for `idle_timeout`, the runner exits (the next turn starts a
//! new runner, which resumes the agent session).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};

use crate::backend::Backend;
use crate::protocol::{MAX_LINE, Request, Response, TurnResult, TurnSpec, encode};
use crate::transcript::Transcript;
use crate::turn_files::TurnFiles;

pub struct RunnerConfig {
    /// The chat's home (the agent's working directory).
    pub home: PathBuf,
    pub socket: PathBuf,
    pub turns_dir: PathBuf,
    pub idle_timeout: Duration,
}

/// Turns the runner knows about that have not finished; watchers learn the result here.
type Pending = HashMap<i64, watch::Receiver<Option<TurnResult>>>;

enum WorkerMsg {
    Run(TurnSpec, watch::Sender<Option<TurnResult>>),
    Reset(tokio::sync::oneshot::Sender<()>),
}

struct Shared {
    files: TurnFiles,
    pending: Mutex<Pending>,
    work: mpsc::UnboundedSender<WorkerMsg>,
    interrupt: watch::Sender<Option<i64>>,
    last_activity: Mutex<Instant>,
    agent: &'static str,
    session: Mutex<Option<String>>,
}

/// Serves until idle for `idle_timeout`. Returns normally on idle exit.
pub async fn serve(config: RunnerConfig, backend: Box<dyn Backend>) -> anyhow::Result<()> {
    let files = TurnFiles::new(&config.turns_dir)?;
    // A stale socket from a runner that died is in the way; nothing else may own this path.
    let _ = std::fs::remove_file(&config.socket);
    let listener = UnixListener::bind(&config.socket)?;
    let (work_tx, work_rx) = mpsc::unbounded_channel();
    let (interrupt_tx, interrupt_rx) = watch::channel(None);
    let shared = Arc::new(Shared {
        files,
        pending: Mutex::new(HashMap::new()),
        work: work_tx,
        interrupt: interrupt_tx,
        last_activity: Mutex::new(Instant::now()),
        agent: backend.name(),
        session: Mutex::new(backend.session_id()),
    });
    let transcript = Arc::new(Transcript::default());
    transcript.note(&format!(
        "picortex-runner ready ({} agent), waiting for turns",
        backend.name()
    ));
    let worker = tokio::spawn(worker(
        shared.clone(),
        backend,
        work_rx,
        interrupt_rx,
        transcript,
        config.home.clone(),
    ));

    loop {
        let idle_for = shared
            .last_activity
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        let busy = shared.pending.lock().map(|p| !p.is_empty()).unwrap_or(true);
        if !busy && idle_for >= config.idle_timeout {
            break;
        }
        let check_in = config
            .idle_timeout
            .saturating_sub(idle_for)
            .max(Duration::from_millis(200));
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(handle(shared.clone(), stream));
                }
            }
            _ = tokio::time::sleep(check_in) => {}
        }
    }
    worker.abort();
    let _ = std::fs::remove_file(&config.socket);
    Ok(())
}

fn touch(shared: &Shared) {
    if let Ok(mut t) = shared.last_activity.lock() {
        *t = Instant::now();
    }
}

async fn worker(
    shared: Arc<Shared>,
    mut backend: Box<dyn Backend>,
    mut rx: mpsc::UnboundedReceiver<WorkerMsg>,
    mut interrupt: watch::Receiver<Option<i64>>,
    transcript: Arc<Transcript>,
    home: PathBuf,
) {
    while let Some(msg) = rx.recv().await {
        let (turn, done) = match msg {
            WorkerMsg::Run(turn, done) => (turn, done),
            WorkerMsg::Reset(ack) => {
                backend.reset().await;
                transcript.note("session reset by the owner; the next turn starts fresh");
                if let Ok(mut s) = shared.session.lock() {
                    *s = None;
                }
                let _ = ack.send(());
                continue;
            }
        };
        touch(&shared);
        transcript.turn_started(turn.turn_id, &turn.senders, &turn.prompt);
        let started = Instant::now();
        let interrupted = {
            let run = backend.run_turn(&turn, &transcript);
            tokio::pin!(run);
            loop {
                tokio::select! {
                    result = &mut run => break Ok(result),
                    changed = interrupt.changed() => {
                        if changed.is_err() {
                            continue;
                        }
                        if *interrupt.borrow_and_update() == Some(turn.turn_id) {
                            break Err(());
                        }
                    }
                }
            }
        };
        let mut result = match interrupted {
            Ok(result) => result,
            Err(()) => {
                backend.abort().await;
                transcript.note("interrupted");
                TurnResult::failed(turn.turn_id, "interrupted", false)
            }
        };
        result.duration_ms = started.elapsed().as_millis() as u64;
        if result.session_id.is_none() {
            result.session_id = backend.session_id();
        }
        if result.ok {
            match crate::outbox_files::collect(&home, turn.turn_id) {
                Ok(files) => {
                    for f in &files {
                        transcript.note(&format!("attaching {f}"));
                    }
                    result.attachments = files;
                }
                Err(e) => transcript.note(&format!("could not collect ~/outbox files: {e}")),
            }
        }
        transcript.turn_finished(turn.turn_id, result.ok, result.duration_ms, result.cost_usd);
        if let Err(e) = shared.files.store(&result) {
            // Not durable, so not acknowledged as a result: the daemon sees a retryable failure.
            transcript.note(&format!("could not record the result: {e}"));
            result = TurnResult::failed(turn.turn_id, format!("result not recorded: {e}"), true);
        }
        if let Ok(mut s) = shared.session.lock() {
            *s = backend.session_id();
        }
        let _ = done.send(Some(result));
        if let Ok(mut p) = shared.pending.lock() {
            p.remove(&turn.turn_id);
        }
        touch(&shared);
    }
}

async fn handle(shared: Arc<Shared>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = match tokio::io::AsyncReadExt::take(&mut lines, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(n) => n,
            Err(_) => return,
        };
        if n == 0 {
            return;
        }
        if n > MAX_LINE {
            let _ = send(
                &mut write,
                &Response::Error {
                    message: "request line too long".into(),
                },
            )
            .await;
            return;
        }
        touch(&shared);
        let request: Request = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                let message = format!("malformed request: {e}");
                if send(&mut write, &Response::Error { message })
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        let ok = match request {
            Request::Ping => {
                let session_id = shared.session.lock().ok().and_then(|s| s.clone());
                send(
                    &mut write,
                    &Response::Pong {
                        pid: std::process::id(),
                        agent: shared.agent.to_owned(),
                        session_id,
                    },
                )
                .await
                .is_ok()
            }
            Request::Interrupt { turn_id } => {
                let _ = shared.interrupt.send(Some(turn_id));
                true
            }
            Request::Turn(spec) => run_or_attach(&shared, spec, &mut write).await,
            Request::Reset => {
                let (ack, done) = tokio::sync::oneshot::channel();
                if shared.work.send(WorkerMsg::Reset(ack)).is_err() || done.await.is_err() {
                    return;
                }
                let pong = Response::Pong {
                    pid: std::process::id(),
                    agent: shared.agent.to_owned(),
                    session_id: None,
                };
                send(&mut write, &pong).await.is_ok()
            }
        };
        if !ok {
            return;
        }
    }
}

async fn run_or_attach(
    shared: &Shared,
    spec: TurnSpec,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> bool {
    let turn_id = spec.turn_id;
    match shared.files.load(turn_id) {
        Ok(Some(done)) => return send(write, &Response::Result(done)).await.is_ok(),
        Ok(None) => {}
        Err(e) => {
            let message = format!("turn {turn_id}: {e}");
            return send(write, &Response::Error { message }).await.is_ok();
        }
    }
    let mut watcher = {
        let Ok(mut pending) = shared.pending.lock() else {
            return false;
        };
        match pending.get(&turn_id) {
            Some(rx) => rx.clone(),
            None => {
                let (tx, rx) = watch::channel(None);
                if shared.work.send(WorkerMsg::Run(spec, tx)).is_err() {
                    return false;
                }
                pending.insert(turn_id, rx.clone());
                rx
            }
        }
    };
    if send(write, &Response::Accepted { turn_id }).await.is_err() {
        return false;
    }
    let result = loop {
        if let Some(result) = watcher.borrow_and_update().clone() {
            break result;
        }
        if watcher.changed().await.is_err() {
            // The worker finished and dropped the sender between our checks; the file has it.
            match shared.files.load(turn_id) {
                Ok(Some(result)) => break result,
                _ => break TurnResult::failed(turn_id, "the turn's result was lost", true),
            }
        }
    };
    send(write, &Response::Result(result)).await.is_ok()
}

async fn send(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    response: &Response,
) -> std::io::Result<()> {
    let line = encode(response).map_err(std::io::Error::other)?;
    write.write_all(&line).await?;
    write.flush().await
}
