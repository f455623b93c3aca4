//! A stand-in for the Linq API: accepts every `POST /v3/chats/{id}/messages` with 202 and a
//! minimal valid `SendMessageResponse`, answers typing indicators and read receipts with 204 as
//! Linq does, and counts what it got. It lets the daemon's turn and outbox pipeline run for real
//! without a network or a simulator's bookkeeping in the way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, post};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the sink has seen.
#[derive(Debug, Default)]
pub struct SinkCounts {
    /// Sends answered 202.
    pub sends: AtomicU64,
    /// Typing indicator starts and stops and read receipts, answered 204.
    pub other_calls: AtomicU64,
    /// Requests to any other route (answered 404): a sign the client and sink disagree.
    pub unexpected: AtomicU64,
}

/// A running sink; dropping it does not stop it, [`Sink::stop`] does.
pub struct Sink {
    pub addr: SocketAddr,
    pub counts: Arc<SinkCounts>,
    task: JoinHandle<()>,
}

impl Sink {
    /// Binds a loopback port and serves on the current runtime.
    pub async fn start() -> std::io::Result<Sink> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(SinkCounts::default());
        let unexpected = counts.clone();
        let app = linq_api_routes(
            post(send_message),
            post(no_content).delete(no_content),
            post(no_content),
        )
        .fallback(move || {
            let counts = unexpected.clone();
            async move {
                counts.unexpected.fetch_add(1, Ordering::Relaxed);
                StatusCode::NOT_FOUND
            }
        })
        .with_state(counts.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("sink stopped: {e}");
            }
        });
        Ok(Sink { addr, counts, task })
    }

    /// The base URL to configure as the Linq API's.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn sends(&self) -> u64 {
        self.counts.sends.load(Ordering::Relaxed)
    }

    pub fn other_calls(&self) -> u64 {
        self.counts.other_calls.load(Ordering::Relaxed)
    }

    pub fn unexpected(&self) -> u64 {
        self.counts.unexpected.load(Ordering::Relaxed)
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

/// The Linq API routes a Linq stand-in answers (replies, typing indicators, read receipts),
/// each under both `/v3/...` and the production base path `/api/partner/v3/...` so either base
/// URL works.
pub(crate) fn linq_api_routes<S>(
    send: MethodRouter<S>,
    typing: MethodRouter<S>,
    read: MethodRouter<S>,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut router = Router::new();
    for base in ["", "/api/partner"] {
        router = router
            .route(&format!("{base}/v3/chats/{{id}}/messages"), send.clone())
            .route(&format!("{base}/v3/chats/{{id}}/typing"), typing.clone())
            .route(&format!("{base}/v3/chats/{{id}}/read"), read.clone());
    }
    router
}

async fn no_content(State(counts): State<Arc<SinkCounts>>) -> StatusCode {
    counts.other_calls.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

async fn send_message(
    State(counts): State<Arc<SinkCounts>>,
    Path(chat_id): Path<String>,
) -> impl IntoResponse {
    counts.sends.fetch_add(1, Ordering::Relaxed);
    let now = time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "2026-02-05T19:52:17.041Z".to_owned());
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "chat_id": chat_id,
            "message": {
                "id": uuid::Uuid::new_v4().to_string(),
                "created_at": now,
                "delivery_status": "queued",
                "is_read": false,
                "parts": [],
                "sent_at": null
            }
        })),
    )
}
