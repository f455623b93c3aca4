//! The HTTP server: routes, shared state, request ids, JSON errors, `/health` and
//! `/api/frontend-log`. Webhook ingest lives in [`crate::ingest`].

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::ingest::{self, IngestConfig};
use crate::metrics::Metrics;
use crate::store::{Store, gate, outbox, turns};

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The most a browser may send to /api/frontend-log in one request.
pub const FRONTEND_LOG_LIMIT: usize = 64 * 1024;

pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub ingest: IngestConfig,
    /// Where ingest names the chats it stored a message for.
    pub pending_chats: Arc<crate::gatekeeper::PendingChats>,
    pub started: Instant,
    pub agent_name: &'static str,
    pub tmux_version: Option<String>,
    /// How chats are isolated on this host, for /health.
    pub isolation: serde_json::Value,
    pub webhook_body_limit: usize,
    pub frontend_log_bucket: TokenBucket,
    /// The owner's API bearer token; `None` turns the API off.
    pub api_token: Option<String>,
    /// For the owner's lifecycle transitions (`POST /api/chats/{id}/lifecycle`).
    pub agent: Arc<dyn crate::agent::Agent>,
    pub workspaces: crate::workspace::Workspaces,
}

pub fn router(state: Arc<AppState>) -> Router {
    let webhook_limit = state.webhook_body_limit;
    Router::new()
        .route(
            "/api/linq/inbound",
            post(webhook_with_limit).layer(DefaultBodyLimit::max(webhook_limit)),
        )
        .route("/health", get(health))
        .route("/api/chats/{chat_id}/decisions", get(chat_decisions))
        .route("/api/chats/{chat_id}/lifecycle", post(chat_lifecycle))
        .route(
            "/api/frontend-log",
            post(frontend_log).layer(DefaultBodyLimit::max(FRONTEND_LOG_LIMIT)),
        )
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "no such route") })
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// A JSON error body: `{"error": {"status": …, "message": …}}`.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"error": {"status": status.as_u16(), "message": message}})),
    )
        .into_response()
}

/// The request's id: the caller's `X-Request-ID` if it is sane, otherwise a fresh one. It is
/// echoed on the response and carried through logs, the turn and the outbound send.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(uuid::Uuid::new_v4().to_string())))
    }
}

fn acceptable_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

async fn webhook_with_limit(
    state: State<Arc<AppState>>,
    request_id: RequestId,
    headers: axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    match body {
        Ok(body) => ingest::inbound(state, request_id, headers, body).await,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Metrics::inc(&state.metrics.webhooks_too_large);
            tracing::warn!(request_id = %request_id.0, limit = state.webhook_body_limit, "webhook rejected: body too large");
            json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("webhook body exceeds {} bytes", state.webhook_body_limit),
            )
        }
        Err(rejection) => json_error(rejection.status(), &rejection.body_text()),
    }
}

async fn health(State(app): State<Arc<AppState>>) -> Response {
    let db_ok = app.store.ping().await;
    let counts = app
        .store
        .read(|c| Ok((turns::counts(c)?, outbox::counts(c)?, gate::counts_24h(c)?)))
        .await
        .ok();
    let to_map = |rows: &[(String, i64)]| {
        rows.iter()
            .map(|(k, v)| (k.clone(), serde_json::json!(v)))
            .collect::<serde_json::Map<_, _>>()
    };
    let (turns, deliveries, gate_24h) = counts
        .as_ref()
        .map(|(t, o, g)| (to_map(t), to_map(o), to_map(g)))
        .unwrap_or_default();
    let count = |key: &str| gate_24h.get(key).and_then(|v| v.as_i64()).unwrap_or(0);
    let attention = serde_json::json!({
        "discriminator_skipped_24h": count("skip:model"),
        "discriminator_answered_24h": count("respond:model"),
        "discriminator_fallbacks_24h": count("skip:fallback") + count("respond:fallback"),
        "budget_skipped_24h": count("skip:budget"),
        "decisions_24h": gate_24h,
    });
    let status = if db_ok { "ok" } else { "degraded" };
    let code = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(serde_json::json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "commit": option_env!("PICORTEX_GIT_COMMIT").unwrap_or("unknown"),
            "uptime_secs": app.started.elapsed().as_secs(),
            "db": {"ok": db_ok},
            "tmux": {"ok": app.tmux_version.is_some(), "version": app.tmux_version},
            "agent": app.agent_name,
            "isolation": app.isolation,
            "counters": app.metrics.snapshot(),
            "turns": turns,
            "deliveries": deliveries,
            "attention": attention,
        })),
    )
        .into_response()
}

/// Checks the owner's bearer token (constant time): `None` when allowed, else the response.
fn denial(app: &AppState, headers: &axum::http::HeaderMap) -> Option<Response> {
    let Some(expected) = &app.api_token else {
        return Some(json_error(
            StatusCode::NOT_FOUND,
            "the owner API is off: set api_token (PICORTEX_API_TOKEN)",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if linq::webhook::secrets_equal(given.as_bytes(), expected.as_bytes()) {
        None
    } else {
        Some(json_error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ))
    }
}

#[derive(Debug, serde::Deserialize)]
struct DecisionsQuery {
    limit: Option<usize>,
}

/// `GET /api/chats/{chat_id}/decisions?limit=N`: the chat's latest attention decisions, newest
/// first (for the UI: each message's rule, reason, latency and cost).
async fn chat_decisions(
    State(app): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(chat_id): axum::extract::Path<String>,
    query: Result<axum::extract::Query<DecisionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(denied) = denial(&app, &headers) {
        return denied;
    }
    let limit = match query {
        Ok(q) => q.limit.unwrap_or(50),
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    if !(1..=500).contains(&limit) {
        return json_error(StatusCode::BAD_REQUEST, "limit must be between 1 and 500");
    }
    let id = chat_id.clone();
    let result = app
        .store
        .read(move |c| {
            if !crate::store::messages::chat_exists(c, &id)? {
                return Ok(None);
            }
            Ok(Some(gate::recent_decisions(c, &id, limit)?))
        })
        .await;
    match result {
        Ok(Some(decisions)) => {
            Json(serde_json::json!({"chat_id": chat_id, "decisions": decisions})).into_response()
        }
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no such chat"),
        Err(e) => {
            tracing::error!(error = %e, "reading decisions");
            json_error(StatusCode::SERVICE_UNAVAILABLE, "could not read the store")
        }
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LifecycleRequest {
    action: LifecycleAction,
}

#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum LifecycleAction {
    Hibernate,
    Archive,
    Restore,
    Destroy,
}

/// `POST /api/chats/{chat_id}/lifecycle` with `{"action": "hibernate" | "archive" | "restore" |
/// "destroy"}`: the owner's transitions (`picortex chat …` calls this), done by the daemon
/// because it holds the chat's locks. Answers the outcome and the chat's state after it; 409
/// when a turn is in progress, 422 when the archive is damaged, 500 when the workspace failed.
async fn chat_lifecycle(
    State(app): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(chat_id): axum::extract::Path<String>,
    body: Result<Json<LifecycleRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    use crate::lifecycle::{self, Archival, Destruction, Hibernation, Restoral};
    if let Some(denied) = denial(&app, &headers) {
        return denied;
    }
    let action = match body {
        Ok(Json(request)) => request.action,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let id = chat_id.clone();
    match app
        .store
        .read(move |c| crate::store::messages::chat_exists(c, &id))
        .await
    {
        Ok(true) => {}
        Ok(false) => return json_error(StatusCode::NOT_FOUND, "no such chat"),
        Err(e) => {
            tracing::error!(error = %e, "reading the chat");
            return json_error(StatusCode::SERVICE_UNAVAILABLE, "could not read the store");
        }
    }
    let (store, agent, workspaces) = (&app.store, app.agent.as_ref(), &app.workspaces);
    let busy = || (StatusCode::CONFLICT, "busy", None);
    let outcome = match action {
        LifecycleAction::Hibernate => lifecycle::hibernate(store, agent, &chat_id, "owner-api")
            .await
            .map(|h| match h {
                Hibernation::Done => (StatusCode::OK, "hibernated", None),
                Hibernation::AlreadyAsleep => (StatusCode::OK, "unchanged", None),
                Hibernation::Busy => busy(),
                Hibernation::Failed(e) => (StatusCode::INTERNAL_SERVER_ERROR, "failed", Some(e)),
            }),
        LifecycleAction::Archive => {
            lifecycle::archive(store, agent, workspaces, &chat_id, "owner-api")
                .await
                .map(|a| match a {
                    Archival::Done(path) => (
                        StatusCode::OK,
                        "archived",
                        path.map(|p| p.display().to_string()),
                    ),
                    Archival::AlreadyArchived => (StatusCode::OK, "unchanged", None),
                    Archival::Busy => busy(),
                    Archival::Failed(e) => (StatusCode::INTERNAL_SERVER_ERROR, "failed", Some(e)),
                })
        }
        LifecycleAction::Restore => lifecycle::restore(store, workspaces, &chat_id, "owner-api")
            .await
            .map(|r| match r {
                Restoral::Done(home) => {
                    (StatusCode::OK, "restored", Some(home.display().to_string()))
                }
                Restoral::Damaged(e) => (StatusCode::UNPROCESSABLE_ENTITY, "damaged", Some(e)),
                Restoral::Failed(e) => (StatusCode::INTERNAL_SERVER_ERROR, "failed", Some(e)),
            }),
        LifecycleAction::Destroy => {
            lifecycle::destroy(store, agent, workspaces, &chat_id, "owner-api")
                .await
                .map(|d| match d {
                    Destruction::Done { existed: true } => (StatusCode::OK, "destroyed", None),
                    Destruction::Done { existed: false } => (StatusCode::OK, "unchanged", None),
                    Destruction::Busy => busy(),
                    Destruction::Failed(e) => {
                        (StatusCode::INTERNAL_SERVER_ERROR, "failed", Some(e))
                    }
                })
        }
    };
    let (status, outcome, detail) = match outcome {
        Ok(done) => done,
        Err(e) => {
            tracing::error!(error = %e, "lifecycle transition");
            return json_error(StatusCode::SERVICE_UNAVAILABLE, "could not write the store");
        }
    };
    let id = chat_id.clone();
    let state = app
        .store
        .read(move |c| lifecycle::state_of(c, &id))
        .await
        .ok()
        .flatten();
    let body = serde_json::json!({
        "chat_id": chat_id, "outcome": outcome, "state": state, "detail": detail,
    });
    if status.is_success() {
        Json(body).into_response()
    } else {
        let message = match (outcome, &detail) {
            ("busy", _) => "the chat is answering a message; try again when it has".to_owned(),
            (_, Some(detail)) => detail.clone(),
            (other, None) => other.to_owned(),
        };
        (
            status,
            Json(serde_json::json!({
                "error": {"status": status.as_u16(), "message": message},
                "chat_id": body["chat_id"], "outcome": outcome, "state": body["state"],
            })),
        )
            .into_response()
    }
}

/// What the browser reports: an error or a log line from the UI.
#[derive(Debug, serde::Deserialize)]
struct FrontendLog {
    #[serde(default)]
    level: String,
    message: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    stack: Option<String>,
}

async fn frontend_log(
    State(app): State<Arc<AppState>>,
    RequestId(request_id): RequestId,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("frontend log entries are limited to {FRONTEND_LOG_LIMIT} bytes"),
            );
        }
        Err(r) => return json_error(r.status(), &r.body_text()),
    };
    if !app.frontend_log_bucket.take() {
        return json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many log entries; slow down",
        );
    }
    let entry: FrontendLog = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"level\", \"message\", \"url\"?, \"stack\"?}}: {e}"),
            );
        }
    };
    Metrics::inc(&app.metrics.frontend_logs);
    let level = if entry.level.is_empty() {
        "error"
    } else {
        entry.level.as_str()
    };
    tracing::warn!(
        request_id = %request_id,
        source = "frontend",
        level,
        message = %entry.message,
        url = entry.url.as_deref().unwrap_or(""),
        stack = entry.stack.as_deref().unwrap_or(""),
        "frontend log"
    );
    StatusCode::NO_CONTENT.into_response()
}

/// A small token bucket: `capacity` requests at once, refilled at `per_sec`.
pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(capacity: u32, per_sec: f64) -> Self {
        Self {
            capacity: f64::from(capacity),
            per_sec,
            state: Mutex::new((f64::from(capacity), Instant::now())),
        }
    }

    pub fn take(&self) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() * self.per_sec;
        s.0 = (s.0 + refill).min(self.capacity);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_checked() {
        assert!(acceptable_request_id("abc-123_x.y:z"));
        assert!(!acceptable_request_id(""));
        assert!(!acceptable_request_id("a b"));
        assert!(!acceptable_request_id("a\nb"));
        assert!(!acceptable_request_id(&"a".repeat(129)));
    }

    #[test]
    fn bucket_limits_bursts() {
        let b = TokenBucket::new(3, 0.0);
        assert!(b.take() && b.take() && b.take());
        assert!(!b.take());
    }
}
