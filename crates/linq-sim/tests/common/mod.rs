//! Shared helpers for linq-sim's integration tests: a simulator on loopback with a small
//! reqwest wrapper, and a tiny axum webhook receiver that records every delivery and can be
//! told which statuses to answer.
#![allow(dead_code)]
// Test helpers may unwrap: a panic here is a test failure, which is what we want.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use linq::webhook::WebhookSecret;
use linq_sim::{RetryPolicy, SimConfig, SimHandle};
use serde_json::Value;

pub const KEY: &str = "test_key";
pub const BOT: &str = "+12025550100";

/// A running simulator plus an HTTP client.
pub struct TestSim {
    pub handle: SimHandle,
    pub http: reqwest::Client,
}

/// One answer: status, headers, JSON body (`Null` when empty).
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> i64 {
        self.body["error"]["code"].as_i64().unwrap_or(-1)
    }
}

impl TestSim {
    pub async fn start() -> Self {
        Self::start_with(None, Duration::from_millis(30)).await
    }

    pub async fn with_webhook(url: &str, secret: &WebhookSecret) -> Self {
        Self::start_with(
            Some((url.to_owned(), secret.clone())),
            Duration::from_millis(30),
        )
        .await
    }

    pub async fn start_with(webhook: Option<(String, WebhookSecret)>, delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = linq_sim::start(
            SimConfig {
                api_key: KEY.into(),
                webhook,
                lifecycle_delay: delay,
                ..SimConfig::default()
            },
            listener,
        )
        .await
        .unwrap();
        handle.state().set_retry_policy(RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(40),
            max_delay: Duration::from_millis(200),
            timeout: Duration::from_secs(5),
        });
        Self {
            handle,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.base_url())
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
        bearer: Option<&str>,
    ) -> Answer {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{path}: body is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None, Some(KEY)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(
            reqwest::Method::POST,
            path,
            Some(&body.to_string()),
            Some(KEY),
        )
        .await
    }

    pub async fn post_empty(&self, path: &str) -> Answer {
        self.send(reqwest::Method::POST, path, None, Some(KEY))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(
            reqwest::Method::PUT,
            path,
            Some(&body.to_string()),
            Some(KEY),
        )
        .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(
            reqwest::Method::PATCH,
            path,
            Some(&body.to_string()),
            Some(KEY),
        )
        .await
    }

    pub async fn delete(&self, path: &str, body: Option<Value>) -> Answer {
        let text = body.map(|b| b.to_string());
        self.send(reqwest::Method::DELETE, path, text.as_deref(), Some(KEY))
            .await
    }

    /// Admin API call (no bearer).
    pub async fn admin(&self, path: &str, body: Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(&body.to_string()), None)
            .await
    }

    pub async fn state(&self) -> Value {
        self.send(reqwest::Method::GET, "/sim/api/state", None, None)
            .await
            .body
    }

    /// Creates a DM with `to` from the bot line; returns (chat_id, message_id).
    pub async fn dm(&self, to: &str, text: &str) -> (String, String) {
        let a = self
            .post(
                "/v3/chats",
                serde_json::json!({"from": BOT, "to": [to], "message": {"parts": [{"type": "text", "value": text}]}}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        (
            a.body["chat"]["id"].as_str().unwrap().to_owned(),
            a.body["chat"]["message"]["id"].as_str().unwrap().to_owned(),
        )
    }
}

/// One recorded webhook delivery.
#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// What the receiver answered.
    pub status: u16,
}

impl Hit {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn event_type(&self) -> String {
        self.json()["event_type"].as_str().unwrap_or("").to_owned()
    }
}

/// One scripted answer: for this event type (or any), answer this status.
type Scripted = (Option<String>, u16);

#[derive(Clone, Default)]
struct Inner {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// (event type or any, status) answers to give, in order.
    script: Arc<Mutex<VecDeque<Scripted>>>,
}

/// A webhook receiver on loopback.
pub struct Receiver {
    pub base: String,
    inner: Inner,
}

async fn record(State(inner): State<Inner>, req: Request) -> impl IntoResponse {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 10 * 1024 * 1024)
        .await
        .unwrap();
    let event_type = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["event_type"].as_str().map(str::to_owned));
    let status = {
        let mut script = inner.script.lock().unwrap();
        let pos = script
            .iter()
            .position(|(t, _)| t.is_none() || t.as_deref() == event_type.as_deref());
        pos.and_then(|i| script.remove(i)).map_or(200, |(_, s)| s)
    };
    inner.hits.lock().unwrap().push(Hit {
        path,
        headers,
        body,
        status,
    });
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    pub async fn start() -> Self {
        let inner = Inner::default();
        let app = Router::new().fallback(record).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base: format!("http://{addr}"),
            inner,
        }
    }

    /// The statuses to answer the next deliveries with (then 200).
    pub fn respond_with(&self, statuses: &[u16]) {
        self.inner
            .script
            .lock()
            .unwrap()
            .extend(statuses.iter().map(|s| (None, *s)));
    }

    /// The statuses to answer the next deliveries of `event_type` with (then 200).
    pub fn respond_to(&self, event_type: &str, statuses: &[u16]) {
        self.inner
            .script
            .lock()
            .unwrap()
            .extend(statuses.iter().map(|s| (Some(event_type.to_owned()), *s)));
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the recorded hits (panics after 10 s).
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let hits = self.hits();
            if pred(&hits) {
                return hits;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; got {:?}",
                hits.iter().map(Hit::event_type).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Counts hits of one event type.
pub fn count(hits: &[Hit], event_type: &str) -> usize {
    hits.iter().filter(|h| h.event_type() == event_type).count()
}

/// Polls until `pred` holds for the admin state (panics after 10 s).
pub async fn wait_state(sim: &TestSim, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let s = sim.state().await;
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}: {s}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
