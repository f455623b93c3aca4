//! The model gateway: the only way a chat's agent reaches the model. It is a reverse proxy for
//! the Anthropic API (`/v1/messages`, streaming and not, `/v1/messages/count_tokens`, and
//! anything else under `/v1`), served on a unix socket (`<data_dir>/run/gateway/gateway.sock`,
//! which each chat's network-namespace forwarder relays to) and on the daemon's own port under
//! [`TCP_PREFIX`] (the no-root mode, where agents share the host's loopback).
//!
//! Each chat authenticates with its own token (`x-api-key`, or `Authorization: Bearer`), which
//! the agent gets as `ANTHROPIC_API_KEY`. The token is an HMAC of the chat id under a random
//! key kept in `<data_dir>/gateway.key` (0600), so the daemon can hand the same token to every
//! launch of the chat's runner without storing it; SQLite holds only its SHA-256. The gateway
//! swaps the token for the real key, forwards to the configured upstream with the body
//! streamed both ways, and never puts the real key into a response.
//!
//! Metering reads `usage` as the response passes through (the JSON body, or `message_start` and
//! `message_delta` events of a stream) without holding anything back, prices it from the
//! configured table and adds it to the chat's UTC day in one store write per request (the
//! writes of requests finishing together share one transaction). A chat whose spend today has
//! reached `gateway.chat_daily_budget_usd` is refused with a 429 in Anthropic's error shape
//! (with `x-should-retry: false`, so Claude Code stops at once instead of backing off for
//! minutes) until 00:00 UTC.
//!
//! Beside it, on `<data_dir>/run/gateway/proxy.sock`, the egress proxy ([`egress`]) tunnels a
//! chat's HTTPS to the extra hosts its allowlist names (package registries and the like),
//! authenticated with the same chat token.

pub mod egress;

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures::{Stream, StreamExt as _};
use hmac::{Hmac, Mac as _};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{Config, ModelPrice};
use crate::store::usage::{self, UsageRecord};
use crate::store::{Store, StoreError};

/// The gateway's path on the daemon's own port: agents without a network namespace use
/// `http://127.0.0.1:<port>/gateway` as `ANTHROPIC_BASE_URL`.
pub const TCP_PREFIX: &str = "/gateway";
/// The agent-side address of the forwarder inside a chat's network namespace.
pub const NAMESPACE_BASE_URL: &str = "http://127.0.0.1:7824";
/// Anthropic's API, when no upstream is configured.
pub const DEFAULT_UPSTREAM: &str = "https://api.anthropic.com";
/// The price (input, output per million tokens) of a model missing from the table.
pub const FALLBACK_PRICE: (f64, f64) = (3.00, 15.00);
/// A non-streaming answer larger than this is passed on but not metered.
const MAX_METERED_JSON: usize = 8 * 1024 * 1024;
/// A stream line longer than this is passed on but not parsed (usage lines are small).
const MAX_METERED_LINE: usize = 1024 * 1024;
const TOKEN_PREFIX: &str = "pcx_gw_";

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("gateway key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "gateway key file {0} is not 64 hex digits; delete it to make a new one (every chat then gets a new token)"
    )]
    BadKeyFile(PathBuf),
    #[error("gateway socket {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gateway configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Prices model use from the configured table.
#[derive(Debug, Clone)]
pub struct Pricing {
    prices: Vec<ModelPrice>,
}

/// Tokens one request used, as the API reported them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub model: Option<String>,
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
}

impl Pricing {
    pub fn new(prices: Vec<ModelPrice>) -> Self {
        Self { prices }
    }

    /// The price that applies to `model` (the first entry it contains, else the fallback).
    pub fn price(&self, model: &str) -> ModelPrice {
        self.prices
            .iter()
            .find(|p| model.contains(p.model.as_str()))
            .cloned()
            .unwrap_or_else(|| ModelPrice::new("", FALLBACK_PRICE.0, FALLBACK_PRICE.1))
    }

    /// What `tally` cost, in micro-dollars: a token at $X per million costs X micro-dollars.
    pub fn cost_micros(&self, tally: &Tally) -> i64 {
        let p = self.price(tally.model.as_deref().unwrap_or(""));
        let cache_read = p.cache_read.unwrap_or(p.input * 0.1);
        let cache_write = p.cache_write.unwrap_or(p.input * 1.25);
        let micros = tally.input as f64 * p.input
            + tally.output as f64 * p.output
            + tally.cache_read as f64 * cache_read
            + tally.cache_write as f64 * cache_write;
        micros.round() as i64
    }

    /// `requests` requests that used `tally`, as a record for the chat's day today.
    pub fn record(&self, chat_id: &str, requests: i64, tally: &Tally) -> UsageRecord {
        UsageRecord {
            chat_id: chat_id.to_owned(),
            day: utc_day(),
            requests,
            input_tokens: tally.input,
            output_tokens: tally.output,
            cache_read_tokens: tally.cache_read,
            cache_write_tokens: tally.cache_write,
            cost_micros: self.cost_micros(tally),
        }
    }
}

/// Today in UTC, `YYYY-MM-DD` (the day usage is recorded under and budgets reset on).
pub fn utc_day() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Seconds until the next 00:00 UTC.
pub fn secs_until_utc_midnight() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    let seconds_today =
        i64::from(now.hour()) * 3600 + i64::from(now.minute()) * 60 + i64::from(now.second());
    (86_400 - seconds_today).max(1)
}

/// What the chat is told instead of a turn when its budget is used up.
pub fn budget_message(budget_usd: f64) -> String {
    format!(
        "Today's model budget for this chat (${budget_usd:.2}) is used up; it resets at 00:00 UTC."
    )
}

/// A daily budget in USD as micro-dollars (0: unlimited).
pub fn budget_micros(budget_usd: f64) -> i64 {
    (budget_usd * 1_000_000.0).round() as i64
}

/// Whether `spent_micros` has used up a budget of `budget_usd` (0: never).
pub fn over_budget(budget_usd: f64, spent_micros: i64) -> bool {
    let limit = budget_micros(budget_usd);
    limit > 0 && spent_micros >= limit
}

pub struct Gateway {
    store: Store,
    client: reqwest::Client,
    /// The upstream's base URL without a trailing `/` or `/v1`.
    upstream: String,
    api_key: Option<HeaderValue>,
    token_key: [u8; 32],
    budget_usd: f64,
    pricing: Arc<Pricing>,
    /// Token hash → chat id, for tokens seen before (tokens are never reassigned).
    known_tokens: Mutex<HashMap<String, String>>,
    usage_tx: mpsc::UnboundedSender<UsageRecord>,
    socket_path: Option<PathBuf>,
    agent_base_url: Option<String>,
    egress: egress::EgressPolicy,
    egress_counters: egress::EgressCounters,
    proxy_socket_path: Option<PathBuf>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("upstream", &self.upstream)
            .field("has_api_key", &self.api_key.is_some())
            .field("budget_usd", &self.budget_usd)
            .field("socket_path", &self.socket_path)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds the gateway from `config`, starts its metering task and (if configured) its unix
    /// socket server, and returns it with those tasks (the caller aborts them on shutdown).
    pub async fn start(
        config: &Config,
        store: Store,
    ) -> Result<(Arc<Gateway>, Vec<JoinHandle<()>>), GatewayError> {
        let g = &config.gateway;
        let upstream = config
            .agents
            .anthropic_base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_UPSTREAM.into());
        let upstream = upstream.trim().trim_end_matches('/');
        let upstream = upstream.strip_suffix("/v1").unwrap_or(upstream).to_owned();
        reqwest::Url::parse(&upstream)
            .map_err(|e| GatewayError::Config(format!("upstream {upstream:?}: {e}")))?;
        let api_key = match &config.agents.anthropic_api_key {
            Some(key) => Some(HeaderValue::from_str(key).map_err(|_| {
                GatewayError::Config("ANTHROPIC_API_KEY is not a valid header value".into())
            })?),
            None => {
                tracing::warn!(
                    "no ANTHROPIC_API_KEY: the model gateway forwards requests without a key"
                );
                None
            }
        };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(g.connect_timeout_secs.max(1)))
            .build()
            .map_err(|e| GatewayError::Config(format!("HTTP client: {e}")))?;
        let token_key = load_or_create_key(&config.data_dir.join("gateway.key"))?;
        let (usage_tx, usage_rx) = mpsc::unbounded_channel();
        let socket_dir = config.data_dir.join("run").join("gateway");
        let socket_path = g.socket.then(|| socket_dir.join("gateway.sock"));
        let proxy_socket_path = g.socket.then(|| socket_dir.join(egress::PROXY_SOCKET_NAME));
        let egress_policy = egress::EgressPolicy::from_config(g)
            .map_err(|why| GatewayError::Config(format!("egress allowlist entry {why}")))?;
        let gateway = Arc::new(Gateway {
            store: store.clone(),
            client,
            upstream,
            api_key,
            token_key,
            budget_usd: g.chat_daily_budget_usd,
            pricing: Arc::new(Pricing::new(g.prices.clone())),
            known_tokens: Mutex::new(HashMap::new()),
            usage_tx,
            socket_path: socket_path.clone(),
            agent_base_url: g.agent_base_url.clone(),
            egress: egress_policy,
            egress_counters: egress::EgressCounters::default(),
            proxy_socket_path: proxy_socket_path.clone(),
        });
        let mut tasks = vec![tokio::spawn(meter_loop(store, usage_rx))];
        if let Some(path) = socket_path {
            let listener = bind_socket(&path)?;
            let app = gateway.socket_routes();
            tracing::info!(socket = %path.display(), upstream = %gateway.upstream, "model gateway listening");
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "model gateway socket server stopped");
                }
            }));
        }
        if let Some(path) = proxy_socket_path {
            let listener = bind_socket(&path)?;
            tracing::info!(socket = %path.display(), "egress proxy listening");
            tasks.push(tokio::spawn(egress::serve(listener, gateway.clone())));
        }
        Ok((gateway, tasks))
    }

    /// The egress proxy's unix socket, if it is served.
    pub fn proxy_socket_path(&self) -> Option<&Path> {
        self.proxy_socket_path.as_deref()
    }

    /// What the egress proxy has done since start.
    pub fn egress_stats(&self) -> egress::EgressStats {
        self.egress_counters.snapshot()
    }

    /// Whether `chat_id` has an egress allowlist (its own or every chat's).
    pub fn egress_allowed(&self, chat_id: &str) -> bool {
        self.egress.has_hosts(chat_id)
    }

    /// The proxy environment for a chat's agent (`HTTPS_PROXY` and friends, with the chat's
    /// token as the proxy user), or nothing: when the chat may reach no extra host, when the
    /// proxy is not served, or when the agent is not in a network namespace (`base_url` is not
    /// [`NAMESPACE_BASE_URL`]): there nothing would force traffic through the proxy, so it
    /// would only pretend to be a control.
    pub fn agent_proxy_env(
        &self,
        chat_id: &str,
        token: &str,
        base_url: &str,
    ) -> Vec<(String, String)> {
        if base_url != NAMESPACE_BASE_URL
            || self.proxy_socket_path.is_none()
            || !self.egress_allowed(chat_id)
        {
            return Vec::new();
        }
        let url = format!("http://{token}@{}", egress::NAMESPACE_PROXY_ADDR);
        let no_proxy = "127.0.0.1,localhost".to_owned();
        // Both spellings: curl reads only the lower-case `http_proxy`, others the upper case.
        [
            ("HTTPS_PROXY", url.clone()),
            ("HTTP_PROXY", url.clone()),
            ("https_proxy", url.clone()),
            ("http_proxy", url),
            ("NO_PROXY", no_proxy.clone()),
            ("no_proxy", no_proxy),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The unix socket the gateway serves on, if it does.
    pub fn socket_path(&self) -> Option<&Path> {
        self.socket_path.as_deref()
    }

    pub fn pricing(&self) -> &Pricing {
        &self.pricing
    }

    /// The per-chat daily budget in USD (0: unlimited).
    pub fn budget_usd(&self) -> f64 {
        self.budget_usd
    }

    /// `ANTHROPIC_BASE_URL` for agents: the configured one, else this daemon's port.
    pub fn agent_base_url(&self, daemon_addr: std::net::SocketAddr) -> String {
        if let Some(url) = &self.agent_base_url {
            return url.trim_end_matches('/').to_owned();
        }
        let ip = match daemon_addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => std::net::IpAddr::from([127, 0, 0, 1]),
            ip if ip.is_unspecified() => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let host = std::net::SocketAddr::new(ip, daemon_addr.port());
        format!("http://{host}{TCP_PREFIX}")
    }

    /// The chat's token (`ANTHROPIC_API_KEY` for its agent), recording its hash so the gateway
    /// accepts it. The same chat always gets the same token.
    pub async fn issue_token(&self, chat_id: &str) -> Result<String, GatewayError> {
        let token = self.token_for(chat_id)?;
        let hash = token_hash(&token);
        let (chat, h) = (chat_id.to_owned(), hash.clone());
        let stored = self
            .store
            .read(move |c| usage::has_token(c, &chat, &h))
            .await?;
        if !stored {
            let (chat, h) = (chat_id.to_owned(), hash.clone());
            self.store
                .write(move |c| {
                    usage::put_token(c, &chat, &h)?;
                    crate::store::audit(
                        c,
                        "gateway",
                        "gateway.token_issued",
                        Some(&chat),
                        &serde_json::json!({}),
                    )
                })
                .await?;
        }
        if let Ok(mut known) = self.known_tokens.lock() {
            known.insert(hash, chat_id.to_owned());
        }
        Ok(token)
    }

    fn token_for(&self, chat_id: &str) -> Result<String, GatewayError> {
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(&self.token_key)
            .map_err(|e| GatewayError::Config(format!("token key: {e}")))?;
        mac.update(b"picortex gateway token v1\0");
        mac.update(chat_id.as_bytes());
        Ok(format!(
            "{TOKEN_PREFIX}{}",
            hex(&mac.finalize().into_bytes())
        ))
    }

    /// The routes for the daemon's TCP port, under [`TCP_PREFIX`].
    pub fn tcp_routes<S: Clone + Send + Sync + 'static>(self: &Arc<Self>) -> Router<S> {
        Router::new()
            .route(TCP_PREFIX, any(warm_up))
            .route(&format!("{TCP_PREFIX}/"), any(warm_up))
            .route(&format!("{TCP_PREFIX}/v1/{{*rest}}"), any(proxy))
            .with_state(self.clone())
    }

    /// The routes for the unix socket (paths as the API has them).
    pub fn socket_routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/", any(warm_up))
            .route("/v1/{*rest}", any(proxy))
            .fallback(|| async {
                api_error(
                    StatusCode::NOT_FOUND,
                    "not_found_error",
                    "the gateway serves /v1/… only",
                )
            })
            .with_state(self.clone())
    }

    /// The chat a presented token belongs to, if any.
    async fn chat_of(&self, token: &str) -> Result<Option<String>, StoreError> {
        let hash = token_hash(token);
        if let Some(chat) = self
            .known_tokens
            .lock()
            .ok()
            .and_then(|k| k.get(&hash).cloned())
        {
            return Ok(Some(chat));
        }
        let h = hash.clone();
        let found = self
            .store
            .read(move |c| usage::chat_for_token(c, &h))
            .await?;
        // The lookup is by hash; comparing the hashes again in constant time keeps the final
        // decision independent of where two hashes first differ.
        let Some((chat, stored)) = found
            .filter(|(_, stored)| linq::webhook::secrets_equal(stored.as_bytes(), hash.as_bytes()))
        else {
            return Ok(None);
        };
        if let Ok(mut known) = self.known_tokens.lock() {
            known.insert(stored, chat.clone());
        }
        Ok(Some(chat))
    }
}

/// `HEAD /` (and GET): Claude Code warms the connection up with it; nothing is forwarded.
async fn warm_up() -> StatusCode {
    StatusCode::OK
}

/// An error in Anthropic's shape, `{"type": "error", "error": {"type", "message"}}`.
pub fn api_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({
            "type": "error",
            "error": {"type": kind, "message": message},
        })),
    )
        .into_response()
}

/// An error the client should not retry (a wrong token or a spent budget stays so).
fn final_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut response = api_error(status, kind, message);
    response
        .headers_mut()
        .insert("x-should-retry", HeaderValue::from_static("false"));
    response
}

fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

async fn proxy(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let api_path = path.strip_prefix(TCP_PREFIX).unwrap_or(path).to_owned();
    let Some(token) = presented_token(&parts.headers).filter(|t| !t.is_empty()) else {
        return final_error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "no gateway token: send this chat's token (its ANTHROPIC_API_KEY) as x-api-key",
        );
    };
    let chat_id = match gateway.chat_of(token).await {
        Ok(Some(chat)) => chat,
        Ok(None) => {
            tracing::warn!(path = %api_path, "model gateway: unknown token refused");
            return final_error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "unknown gateway token: use the ANTHROPIC_API_KEY picortex gave this chat",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "model gateway: cannot read tokens");
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "the gateway cannot read its store",
            );
        }
    };
    if gateway.budget_usd > 0.0 {
        let (chat, day) = (chat_id.clone(), utc_day());
        match gateway
            .store
            .read(move |c| usage::spent_micros(c, &chat, &day))
            .await
        {
            Ok(spent) if over_budget(gateway.budget_usd, spent) => {
                let wait = secs_until_utc_midnight();
                tracing::info!(%chat_id, spent_micros = spent, "model gateway: daily budget used up");
                let mut response = final_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    &format!(
                        "This chat's model budget for today (${:.2}) is used up; it resets at 00:00 UTC (in {}h {:02}m).",
                        gateway.budget_usd,
                        wait / 3600,
                        (wait % 3600) / 60
                    ),
                );
                if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return response;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "model gateway: cannot read spend");
                return api_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "api_error",
                    "the gateway cannot read its store",
                );
            }
        }
    }
    let mut url = format!("{}{api_path}", gateway.upstream);
    if let Some(query) = parts.uri.query() {
        url.push('?');
        url.push_str(query);
    }
    let mut headers = forwardable(&parts.headers);
    // The chat's token goes; so does `accept-encoding`, because metering reads the body as
    // it passes and this client does not decompress, and `expect`, which the client handles.
    for name in [
        "x-api-key",
        "authorization",
        "host",
        "accept-encoding",
        "expect",
    ] {
        headers.remove(name);
    }
    if let Some(key) = &gateway.api_key {
        headers.insert("x-api-key", key.clone());
    }
    let upstream = gateway
        .client
        .request(parts.method.clone(), &url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    let metered = api_path == "/v1/messages";
    let upstream = match upstream {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%chat_id, error = %e.without_url(), "model gateway: upstream unreachable");
            if metered {
                let _ =
                    gateway
                        .usage_tx
                        .send(gateway.pricing.record(&chat_id, 1, &Tally::default()));
            }
            return api_error(
                StatusCode::BAD_GATEWAY,
                "api_error",
                "the model gateway could not reach the model API",
            );
        }
    };
    let status = upstream.status();
    let response_headers = forwardable(upstream.headers());
    let inspect = if !metered || !status.is_success() {
        Inspect::Nothing
    } else if response_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
    {
        Inspect::Sse {
            line: Vec::new(),
            overlong: false,
            event: String::new(),
        }
    } else {
        Inspect::Json {
            buf: Vec::new(),
            overflow: false,
        }
    };
    let meter = metered.then(|| Meter {
        chat_id,
        status: status.as_u16(),
        inspect,
        tally: Tally::default(),
        pricing: gateway.pricing.clone(),
        sink: gateway.usage_tx.clone(),
    });
    let stream = Metered {
        inner: upstream.bytes_stream().boxed(),
        meter,
    };
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    response
}

/// `headers` without hop-by-hop headers (RFC 9110 §7.6.1, and those `Connection` names).
fn forwardable(headers: &HeaderMap) -> HeaderMap {
    const HOP_BY_HOP: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if HOP_BY_HOP.contains(&name.as_str()) || named.contains(name) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The upstream's body on its way to the client, with a [`Meter`] watching it go by.
struct Metered {
    inner: futures::stream::BoxStream<'static, Result<Bytes, reqwest::Error>>,
    meter: Option<Meter>,
}

impl Stream for Metered {
    type Item = Result<Bytes, reqwest::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(meter) = self.meter.as_mut() {
                    meter.observe(chunk);
                }
            }
            Poll::Ready(Some(Err(_)) | None) => {
                if let Some(meter) = self.meter.take() {
                    meter.finish();
                }
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // The client went away mid-stream: what was used so far still counts.
        if let Some(meter) = self.meter.take() {
            meter.finish();
        }
    }
}

enum Inspect {
    Nothing,
    Json {
        buf: Vec<u8>,
        overflow: bool,
    },
    Sse {
        line: Vec<u8>,
        overlong: bool,
        event: String,
    },
}

/// Reads one `/v1/messages` response's usage as it streams past; [`Meter::finish`] hands the
/// priced record to the metering task.
struct Meter {
    chat_id: String,
    status: u16,
    inspect: Inspect,
    tally: Tally,
    pricing: Arc<Pricing>,
    sink: mpsc::UnboundedSender<UsageRecord>,
}

impl Meter {
    fn observe(&mut self, chunk: &[u8]) {
        match &mut self.inspect {
            Inspect::Nothing => {}
            Inspect::Json { buf, overflow } => {
                if *overflow {
                } else if buf.len() + chunk.len() > MAX_METERED_JSON {
                    *overflow = true;
                    *buf = Vec::new();
                } else {
                    buf.extend_from_slice(chunk);
                }
            }
            Inspect::Sse {
                line,
                overlong,
                event,
            } => {
                for piece in chunk.split_inclusive(|b| *b == b'\n') {
                    let (body, complete) = match piece.strip_suffix(b"\n") {
                        Some(body) => (body, true),
                        None => (piece, false),
                    };
                    if !*overlong {
                        if line.len() + body.len() > MAX_METERED_LINE {
                            *overlong = true;
                            line.clear();
                        } else {
                            line.extend_from_slice(body);
                        }
                    }
                    if complete {
                        if !*overlong {
                            sse_line(line, event, &mut self.tally);
                        }
                        line.clear();
                        *overlong = false;
                    }
                }
            }
        }
    }

    fn finish(mut self) {
        if let Inspect::Json { buf, overflow } = &self.inspect {
            if *overflow {
                tracing::warn!(chat_id = %self.chat_id, "model gateway: answer too large to meter");
            } else if let Ok(v) = serde_json::from_slice::<Value>(buf) {
                if let Some(model) = v.get("model").and_then(Value::as_str) {
                    self.tally.model = Some(model.to_owned());
                }
                apply_usage(&mut self.tally, v.get("usage"));
            }
        }
        let record = self.pricing.record(&self.chat_id, 1, &self.tally);
        tracing::info!(
            chat_id = %self.chat_id,
            status = self.status,
            model = self.tally.model.as_deref().unwrap_or(""),
            input_tokens = record.input_tokens,
            output_tokens = record.output_tokens,
            cache_read_tokens = record.cache_read_tokens,
            cache_write_tokens = record.cache_write_tokens,
            cost_micros = record.cost_micros,
            "model gateway: request metered"
        );
        if self.sink.send(record).is_err() {
            tracing::warn!("model gateway: metering stopped; usage not recorded");
        }
    }
}

/// One complete SSE line: `event:` names the next data, `data:` of `message_start` or
/// `message_delta` carries usage, an empty line ends the event.
fn sse_line(line: &[u8], event: &mut String, tally: &mut Tally) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        event.clear();
    } else if let Some(name) = line.strip_prefix(b"event:") {
        *event = String::from_utf8_lossy(name).trim().to_owned();
    } else if let Some(data) = line.strip_prefix(b"data:") {
        let relevant = event.is_empty() || event == "message_start" || event == "message_delta";
        if !relevant {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let message = v.get("message");
                if let Some(model) = message.and_then(|m| m.get("model")).and_then(Value::as_str) {
                    tally.model = Some(model.to_owned());
                }
                apply_usage(tally, message.and_then(|m| m.get("usage")));
            }
            // Its counts are cumulative for the message, so they replace the earlier ones.
            Some("message_delta") => apply_usage(tally, v.get("usage")),
            _ => {}
        }
    }
}

fn apply_usage(tally: &mut Tally, usage: Option<&Value>) {
    let Some(usage) = usage else { return };
    let count = |key: &str| usage.get(key).and_then(Value::as_i64);
    if let Some(n) = count("input_tokens") {
        tally.input = n;
    }
    if let Some(n) = count("output_tokens") {
        tally.output = n;
    }
    if let Some(n) = count("cache_read_input_tokens") {
        tally.cache_read = n;
    }
    if let Some(n) = count("cache_creation_input_tokens") {
        tally.cache_write = n;
    }
}

/// Writes finished requests' usage; requests that finish together share one write.
async fn meter_loop(store: Store, mut rx: mpsc::UnboundedReceiver<UsageRecord>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let count = batch.len();
        let written = store
            .write_background(move |c| {
                for record in &batch {
                    usage::add(c, record)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = written {
            tracing::error!(error = %e, requests = count, "model gateway: could not record usage");
        }
    }
}

/// The token key: 32 random bytes as hex in `path` (0600), made on first start.
fn load_or_create_key(path: &Path) -> Result<[u8; 32], GatewayError> {
    let io = |source| GatewayError::KeyFile {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let fresh: [u8; 32] = rand::random();
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(hex(&fresh).as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            return Ok(fresh);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let text = text.trim();
    let mut key = [0u8; 32];
    if text.len() != 64 {
        return Err(GatewayError::BadKeyFile(path.to_owned()));
    }
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = text
            .get(i * 2..i * 2 + 2)
            .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            .ok_or_else(|| GatewayError::BadKeyFile(path.to_owned()))?;
    }
    Ok(key)
}

/// Binds the socket at `path`: its directory 0755 and the socket 0666, because forwarders of
/// every chat connect to it (their tokens, not file modes, say who they are).
fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener, GatewayError> {
    let io = |source| GatewayError::Socket {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    }
    // A socket left by an earlier run that did not stop cleanly.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(io)?;
    Ok(listener)
}

fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter() -> (Meter, mpsc::UnboundedReceiver<UsageRecord>, Inspect) {
        let (tx, rx) = mpsc::unbounded_channel();
        let m = Meter {
            chat_id: "c".into(),
            status: 200,
            inspect: Inspect::Nothing,
            tally: Tally::default(),
            pricing: Arc::new(Pricing::new(crate::config::GatewayConfig::default().prices)),
            sink: tx,
        };
        (
            m,
            rx,
            Inspect::Sse {
                line: Vec::new(),
                overlong: false,
                event: String::new(),
            },
        )
    }

    #[test]
    fn a_stream_split_anywhere_is_metered_the_same() {
        let stream = concat!(
            "event: message_start\r\n",
            "data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":100,\"cache_read_input_tokens\":1000,\"cache_creation_input_tokens\":10,\"output_tokens\":1}}}\r\n",
            "\r\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"usage\":{\"output_tokens\":999}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":42}}\n\n",
        );
        for split in [1, 7, 64, stream.len()] {
            let (mut m, mut rx, sse) = meter();
            m.inspect = sse;
            for chunk in stream.as_bytes().chunks(split) {
                m.observe(chunk);
            }
            m.finish();
            let r = rx.try_recv().unwrap();
            assert_eq!(
                (
                    r.input_tokens,
                    r.output_tokens,
                    r.cache_read_tokens,
                    r.cache_write_tokens
                ),
                (100, 42, 1000, 10),
                "split {split}"
            );
            // haiku-4: $1 in, $5 out, cache read 0.1, cache write 1.25 per million tokens.
            assert_eq!(r.cost_micros, 100 + 42 * 5 + 100 + 13);
        }
    }

    #[test]
    fn prices_fall_back_and_hop_by_hop_headers_go() {
        let p = Pricing::new(crate::config::GatewayConfig::default().prices);
        assert_eq!(p.price("claude-opus-4-1-20250805").input, 15.0);
        assert_eq!(p.price("claude-opus-4-8").input, 5.0);
        assert_eq!(p.price("mystery").input, FALLBACK_PRICE.0);
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("x-private, close"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        let out = forwardable(&h);
        assert_eq!(out.len(), 1);
        assert!(out.contains_key("anthropic-version"));
        assert!(over_budget(1.0, 1_000_000) && !over_budget(1.0, 999_999));
        assert!(!over_budget(0.0, i64::MAX));
    }

    #[test]
    fn the_key_file_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.key");
        let a = load_or_create_key(&path).unwrap();
        let b = load_or_create_key(&path).unwrap();
        assert_eq!(a, b);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&path, "nope").unwrap();
        assert!(matches!(
            load_or_create_key(&path),
            Err(GatewayError::BadKeyFile(_))
        ));
    }
}
