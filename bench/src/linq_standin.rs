//! A stand-in for the Linq API that notes when each chat's reply arrives, and the driver that
//! times a turn from outside the daemon with it: text a chat at the daemon's webhook, wait for
//! the reply at "Linq".
//!
//! Unlike [`crate::sink`], which only counts, this stand-in hands each chat's next reply to
//! whoever [`LinqSeen::expect`]s it, and answers a repeated idempotency key as Linq does (the
//! original message, nothing sent), so a retried send is not mistaken for a second reply.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use linq::webhook::WebhookSecret;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::sink::linq_api_routes;
use crate::sync::lock;
use crate::webhooks::{self, Chat};

/// A reply as the Linq stand-in saw it.
#[derive(Debug)]
pub struct Arrival {
    pub at: Instant,
    pub text: String,
}

/// What the Linq stand-in shares with the drivers: who waits for which chat's next reply, and
/// what else it was asked.
#[derive(Default)]
pub struct LinqSeen {
    waiters: Mutex<HashMap<String, oneshot::Sender<Arrival>>>,
    /// Idempotency keys seen, with the message id first answered for each.
    keys: Mutex<HashMap<String, String>>,
    sends: AtomicU64,
    /// Sends that repeated an idempotency key already answered.
    repeated_keys: AtomicU64,
    /// Fresh sends that no driver was waiting for.
    unclaimed: AtomicU64,
    other_calls: AtomicU64,
    unexpected: AtomicU64,
}

impl LinqSeen {
    /// The next reply sent in `chat_id` (replacing an earlier wait for the same chat).
    pub fn expect(&self, chat_id: &str) -> oneshot::Receiver<Arrival> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(chat_id.to_owned(), tx);
        rx
    }

    /// Sends received, repeated idempotency keys included.
    pub fn sends(&self) -> u64 {
        self.sends.load(Ordering::Relaxed)
    }

    /// Sends that repeated an idempotency key already answered (and so sent nothing).
    pub fn repeated_keys(&self) -> u64 {
        self.repeated_keys.load(Ordering::Relaxed)
    }

    /// Fresh sends that arrived while nobody waited for the chat's reply.
    pub fn unclaimed(&self) -> u64 {
        self.unclaimed.load(Ordering::Relaxed)
    }

    /// Typing indicator starts and stops and read receipts.
    pub fn other_calls(&self) -> u64 {
        self.other_calls.load(Ordering::Relaxed)
    }

    /// Requests to any other route (answered 404): a sign the daemon and stand-in disagree.
    pub fn unexpected(&self) -> u64 {
        self.unexpected.load(Ordering::Relaxed)
    }
}

/// Starts the stand-in on `rt` and returns its base URL: replies are answered 202 with a
/// minimal valid `SendMessageResponse`, typing indicators and read receipts 204, under both
/// `/v3/...` and the production base path `/api/partner/v3/...`.
pub fn start(rt: &tokio::runtime::Runtime) -> anyhow::Result<(String, Arc<LinqSeen>)> {
    let seen = Arc::new(LinqSeen::default());
    let listener = rt.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    let app = linq_api_routes(
        post(send_message),
        post(no_content).delete(no_content),
        post(no_content),
    )
    .fallback(unexpected)
    .with_state(seen.clone());
    rt.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("Linq stand-in stopped: {e}");
        }
    });
    Ok((format!("http://{addr}"), seen))
}

async fn send_message(
    State(seen): State<Arc<LinqSeen>>,
    UrlPath(chat_id): UrlPath<String>,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    seen.sends.fetch_add(1, Ordering::Relaxed);
    let body = serde_json::from_slice::<Value>(&body).unwrap_or_default();
    let text = body["message"]["parts"][0]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // As Linq does: a repeated idempotency key is answered with the original message and sends
    // nothing new.
    let key = body["message"]["idempotency_key"]
        .as_str()
        .map(str::to_owned);
    let fresh_id = uuid::Uuid::new_v4().to_string();
    let (message_id, repeated) = match key {
        Some(key) => {
            let mut keys = lock(&seen.keys);
            let id = keys.entry(key).or_insert_with(|| fresh_id.clone()).clone();
            let repeated = id != fresh_id;
            (id, repeated)
        }
        None => (fresh_id, false),
    };
    if repeated {
        seen.repeated_keys.fetch_add(1, Ordering::Relaxed);
    } else {
        match lock(&seen.waiters).remove(&chat_id) {
            Some(waiter) => {
                let _ = waiter.send(Arrival { at, text });
            }
            None => {
                seen.unclaimed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "2026-02-05T19:52:17.041Z".to_owned());
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "chat_id": chat_id,
            "message": {
                "id": message_id,
                "created_at": now,
                "delivery_status": "queued",
                "is_read": false,
                "parts": [],
                "sent_at": null
            }
        })),
    )
        .into_response()
}

async fn no_content(State(seen): State<Arc<LinqSeen>>) -> StatusCode {
    seen.other_calls.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

async fn unexpected(State(seen): State<Arc<LinqSeen>>) -> StatusCode {
    seen.unexpected.fetch_add(1, Ordering::Relaxed);
    StatusCode::NOT_FOUND
}

/// One message texted to the daemon and the reply it brought at the stand-in.
#[derive(Debug)]
pub struct Exchange {
    /// Just before the webhook's POST was sent, on the monotonic and on the wall clock (the
    /// latter to line it up with what other processes note).
    pub posted: Instant,
    pub posted_at: std::time::SystemTime,
    /// When the webhook's 200 arrived.
    pub acked: Instant,
    /// The same moment on the wall clock (ms since the epoch), to line it up with what other
    /// processes (mock-model) noted.
    pub acked_unix_ms: u64,
    pub reply: Arrival,
}

/// Where and how to text the daemon: its webhook URL and secret, over a client of the caller's
/// choosing, with replies awaited at `seen`.
pub struct Texter<'a> {
    pub client: &'a reqwest::Client,
    /// The daemon's `/api/linq/inbound`.
    pub inbound_url: &'a str,
    pub secret: &'a WebhookSecret,
    pub seen: &'a LinqSeen,
}

impl Texter<'_> {
    /// Texts `chat` once (`label` names the message) and waits up to `timeout` for the reply to
    /// reach the stand-in.
    pub async fn exchange(
        &self,
        chat: &Chat,
        label: &str,
        timeout: Duration,
    ) -> anyhow::Result<Exchange> {
        self.exchange_text(chat, &format!("{label} message 0"), timeout)
            .await
    }

    /// Texts `chat` exactly `text` (an owner command, say) and waits up to `timeout` for the
    /// reply to reach the stand-in.
    pub async fn exchange_text(
        &self,
        chat: &Chat,
        text: &str,
        timeout: Duration,
    ) -> anyhow::Result<Exchange> {
        let hook = webhooks::build_text(self.secret, chat, unix_now(), text)?;
        // Waiting before the POST: a fast reply must not arrive unclaimed.
        let reply = self.seen.expect(&chat.id);
        let posted_at = std::time::SystemTime::now();
        let posted = Instant::now();
        let resp = self
            .client
            .post(self.inbound_url)
            .headers(hook.headers)
            .body(hook.body)
            .send()
            .await
            .context("POST /api/linq/inbound")?;
        let acked = Instant::now();
        let acked_unix_ms = unix_ms();
        let status = resp.status();
        let _ = resp.bytes().await;
        anyhow::ensure!(status == StatusCode::OK, "webhook answered {status}");
        let reply = tokio::time::timeout(timeout, reply)
            .await
            .with_context(|| format!("no reply in chat {} within {timeout:?}", chat.id))?
            .context("the Linq stand-in dropped the waiter")?;
        Ok(Exchange {
            posted,
            posted_at,
            acked,
            acked_unix_ms,
            reply,
        })
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
