//! The async HTTP client for the Linq Partner API v3: the calls a bot needs, with bearer auth,
//! per-attempt timeouts, and retries with exponential backoff and jitter.
//!
//! Retry policy (linq-v3.md §1.4, tightened): 5xx, 408, 429, network errors and timeouts are
//! retried up to `max_retries` times; 409 and every other 4xx are not, because Linq uses 409 for
//! permanent conditions. A server hint (`retry-after-ms`, then `retry-after`, then the body's
//! `error.retry_after`) replaces the computed backoff. Every send carries a
//! `message.idempotency_key` (one is generated when the caller gave none) so retrying a POST
//! cannot deliver a message twice.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::types::{
    AttachmentUpload, Chat, ChatList, CreateAttachmentRequest, CreateChatRequest,
    CreateChatResponse, ErrorBody, Message, MessageContent, MessageList, ReactionRequest,
    SendMessageRequest, SendMessageResponse,
};

/// Linq's production base URL; request paths (`/v3/...`) are appended to it.
pub const DEFAULT_BASE_URL: &str = "https://api.linqapp.com/api/partner";

/// A server retry hint longer than this is not slept through inside one call: the call fails
/// with the hint in `Error::Api { retry_after }` so the caller can schedule a later attempt
/// instead of holding a task (and the user's reply) for minutes.
pub const MAX_SERVER_RETRY_DELAY: Duration = Duration::from_secs(60);

/// How many characters of a non-JSON error body go into `Error::Api { message }`.
const MAX_ERROR_TEXT: usize = 500;

/// Everything but RFC 3986 unreserved characters is percent-encoded in a path segment.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How to reach Linq and how hard to try.
#[derive(Clone)]
pub struct ClientConfig {
    /// e.g. `https://api.linqapp.com/api/partner` or `http://127.0.0.1:8447`; `/v3/...` is
    /// appended. Empty means [`DEFAULT_BASE_URL`], as in the official SDK.
    pub base_url: String,
    pub api_key: String,
    /// Per attempt, connect to last body byte.
    pub timeout: Duration,
    /// Retries after the first attempt (so `max_retries + 1` attempts at most).
    pub max_retries: u32,
    /// Delay before the first retry; doubles each time, up to `backoff_max`, minus up to 25 %
    /// jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: String::new(),
            timeout: Duration::from_secs(30),
            max_retries: 4,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(8),
        }
    }
}

impl ClientConfig {
    /// Defaults, with this base URL and key.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: api_key.into(),
            ..Self::default()
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The API key must never reach a log line.
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .finish()
    }
}

/// A Linq API client. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Base URL without a trailing `/`.
    base: String,
    auth: HeaderValue,
    cfg: ClientConfig,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.cfg)
            .finish()
    }
}

/// One logical request, replayed as is on every attempt.
struct Call {
    method: Method,
    url: String,
    /// What logs show: the path only (never a presigned query string).
    log_path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Bytes>,
    content_type: Option<&'static str>,
    accept: &'static str,
    /// False for presigned upload URLs, which must not see our bearer token.
    authorized: bool,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// A failed attempt, plus what the response said about retrying it.
struct Failure {
    error: Error,
    status: Option<u16>,
    /// `x-should-retry: false` from the server.
    server_says_stop: bool,
}

impl Client {
    /// Checks the configuration and builds the connection pool.
    pub fn new(cfg: ClientConfig) -> Result<Client, Error> {
        let api_key = cfg.api_key.trim();
        if api_key.is_empty() {
            return Err(Error::InvalidConfig("api_key is empty".into()));
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {api_key}")).map_err(|_| {
            Error::InvalidConfig("api_key contains characters not allowed in a header".into())
        })?;
        auth.set_sensitive(true);

        let base = match cfg.base_url.trim() {
            "" => DEFAULT_BASE_URL,
            b => b,
        }
        .trim_end_matches('/')
        .to_owned();
        let parsed = Url::parse(&base)
            .map_err(|e| Error::InvalidConfig(format!("base_url {base:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::InvalidConfig(format!(
                "base_url {base:?} must be http or https"
            )));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(Error::InvalidConfig(format!(
                "base_url {base:?} must not have a query or fragment"
            )));
        }
        if cfg.timeout.is_zero() {
            return Err(Error::InvalidConfig("timeout must be positive".into()));
        }

        let http = reqwest::Client::builder()
            .user_agent(concat!("picortex-linq/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::InvalidConfig(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                cfg,
            }),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// `POST /v3/chats`: starts a chat from your line `from` to `to` (one handle → DM, more →
    /// group) with a first message, which must not contain a link.
    pub async fn create_chat(
        &self,
        from: &str,
        to: &[String],
        message: &MessageContent,
    ) -> Result<CreateChatResponse, Error> {
        let body = CreateChatRequest {
            from: from.to_owned(),
            to: to.to_vec(),
            message: with_idempotency_key(message).into_owned(),
        };
        let call = self.json_call(Method::POST, "/v3/chats".into(), &body)?;
        self.execute_json(call).await
    }

    /// `GET /v3/chats/{chat_id}`.
    pub async fn get_chat(&self, chat_id: &str) -> Result<Chat, Error> {
        let path = format!("/v3/chats/{}", segment(chat_id, "chat_id")?);
        self.execute_json(self.call(Method::GET, path)).await
    }

    /// `GET /v3/chats`: one page of chats, optionally only those of your line `from`.
    pub async fn list_chats(
        &self,
        from: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<ChatList, Error> {
        let mut call = self.call(Method::GET, "/v3/chats".into());
        if let Some(from) = from {
            call.query.push(("from", from.to_owned()));
        }
        push_page_params(&mut call, cursor, limit);
        self.execute_json(call).await
    }

    /// `POST /v3/chats/{chat_id}/messages`. A `message.idempotency_key` is generated if the
    /// message has none, so retries are safe; pass your own to be safe across process restarts.
    pub async fn send_message(
        &self,
        chat_id: &str,
        message: &MessageContent,
    ) -> Result<SendMessageResponse, Error> {
        let path = format!("/v3/chats/{}/messages", segment(chat_id, "chat_id")?);
        let body = SendMessageRequest {
            message: with_idempotency_key(message).into_owned(),
        };
        let call = self.json_call(Method::POST, path, &body)?;
        self.execute_json(call).await
    }

    /// `GET /v3/chats/{chat_id}/messages`: one page; follow [`MessageList::next`].
    pub async fn list_messages(
        &self,
        chat_id: &str,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<MessageList, Error> {
        let path = format!("/v3/chats/{}/messages", segment(chat_id, "chat_id")?);
        let mut call = self.call(Method::GET, path);
        push_page_params(&mut call, cursor, limit);
        self.execute_json(call).await
    }

    /// `GET /v3/messages/{message_id}`.
    pub async fn get_message(&self, message_id: &str) -> Result<Message, Error> {
        let path = format!("/v3/messages/{}", segment(message_id, "message_id")?);
        self.execute_json(self.call(Method::GET, path)).await
    }

    /// `POST /v3/chats/{chat_id}/typing` (DMs only: groups answer 403).
    pub async fn start_typing(&self, chat_id: &str) -> Result<(), Error> {
        let path = format!("/v3/chats/{}/typing", segment(chat_id, "chat_id")?);
        self.execute_empty(self.empty_call(Method::POST, path))
            .await
    }

    /// `DELETE /v3/chats/{chat_id}/typing`.
    pub async fn stop_typing(&self, chat_id: &str) -> Result<(), Error> {
        let path = format!("/v3/chats/{}/typing", segment(chat_id, "chat_id")?);
        self.execute_empty(self.empty_call(Method::DELETE, path))
            .await
    }

    /// `POST /v3/chats/{chat_id}/read`: marks the chat read (sends read receipts).
    pub async fn mark_read(&self, chat_id: &str) -> Result<(), Error> {
        let path = format!("/v3/chats/{}/read", segment(chat_id, "chat_id")?);
        self.execute_empty(self.empty_call(Method::POST, path))
            .await
    }

    /// `POST /v3/messages/{message_id}/reactions`: adds or removes a tapback.
    pub async fn react(&self, message_id: &str, req: &ReactionRequest) -> Result<(), Error> {
        let path = format!(
            "/v3/messages/{}/reactions",
            segment(message_id, "message_id")?
        );
        let call = self.json_call(Method::POST, path, req)?;
        self.execute_empty(call).await
    }

    /// `POST /v3/attachments`: reserves an attachment and returns where to upload its bytes.
    pub async fn create_attachment(
        &self,
        filename: &str,
        content_type: &str,
        size_bytes: u64,
    ) -> Result<AttachmentUpload, Error> {
        let body = CreateAttachmentRequest {
            filename: filename.to_owned(),
            content_type: content_type.to_owned(),
            size_bytes,
        };
        let call = self.json_call(Method::POST, "/v3/attachments".into(), &body)?;
        self.execute_json(call).await
    }

    /// Uploads the bytes to `upload.upload_url` (raw body, every `required_headers` entry, and
    /// no `Authorization`: the URL is presigned). Then send
    /// `MediaPart::attachment(upload.attachment_id)`.
    pub async fn upload_attachment(
        &self,
        upload: &AttachmentUpload,
        bytes: Vec<u8>,
    ) -> Result<(), Error> {
        let url = Url::parse(&upload.upload_url)
            .map_err(|e| Error::InvalidArgument(format!("upload_url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::InvalidArgument(
                "upload_url must be http or https".into(),
            ));
        }
        let method = match upload.http_method.trim() {
            "" => Method::PUT,
            m => Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                Error::InvalidArgument(format!("http_method {m:?} is not an HTTP method"))
            })?,
        };
        let mut headers = Vec::with_capacity(upload.required_headers.len());
        for (name, value) in &upload.required_headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::InvalidArgument(format!("required header name {name:?}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| Error::InvalidArgument(format!("required header {name} value")))?;
            headers.push((name, value));
        }
        let call = Call {
            method,
            log_path: url.path().to_owned(),
            url: url.to_string(),
            query: Vec::new(),
            body: Some(Bytes::from(bytes)),
            content_type: None,
            accept: "*/*",
            authorized: false,
            headers,
        };
        self.execute(&call).await.map(|_| ())
    }

    // -----------------------------------------------------------------------------------------

    fn call(&self, method: Method, path: String) -> Call {
        Call {
            method,
            url: format!("{}{}", self.inner.base, path),
            log_path: path,
            query: Vec::new(),
            body: None,
            content_type: None,
            accept: "application/json",
            authorized: true,
            headers: Vec::new(),
        }
    }

    /// A call whose answer has no body (204), so it accepts anything, as the SDK does.
    fn empty_call(&self, method: Method, path: String) -> Call {
        Call {
            accept: "*/*",
            ..self.call(method, path)
        }
    }

    fn json_call<B: Serialize>(
        &self,
        method: Method,
        path: String,
        body: &B,
    ) -> Result<Call, Error> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::InvalidArgument(format!("request body: {e}")))?;
        Ok(Call {
            body: Some(Bytes::from(bytes)),
            content_type: Some("application/json"),
            ..self.call(method, path)
        })
    }

    async fn execute_json<T: DeserializeOwned>(&self, call: Call) -> Result<T, Error> {
        let body = self.execute(&call).await?;
        serde_json::from_slice(&body)
            .map_err(|e| Error::Decode(format!("{} {}: {e}", call.method, call.log_path)))
    }

    async fn execute_empty(&self, call: Call) -> Result<(), Error> {
        // Whatever a 2xx carries (nothing on 204, `{status…}` on 202) is not needed.
        self.execute(&call).await.map(|_| ())
    }

    /// Runs the call, retrying as the module docs describe; returns the 2xx body.
    async fn execute(&self, call: &Call) -> Result<Bytes, Error> {
        let cfg = &self.inner.cfg;
        let mut attempt: u32 = 0;
        loop {
            let started = Instant::now();
            let outcome = self.attempt(call, attempt).await;
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let failure = match outcome {
                Ok((status, body)) => {
                    tracing::debug!(
                        method = %call.method, path = %call.log_path, status = status.as_u16(),
                        attempt, elapsed_ms, "linq request"
                    );
                    return Ok(body);
                }
                Err(failure) => failure,
            };
            tracing::debug!(
                method = %call.method, path = %call.log_path, status = failure.status,
                attempt, elapsed_ms, error = %failure.error, "linq request failed"
            );
            if attempt >= cfg.max_retries
                || !failure.error.is_retryable()
                || failure.server_says_stop
            {
                return Err(failure.error);
            }
            let delay = match failure.error.retry_after() {
                Some(hint) if hint > MAX_SERVER_RETRY_DELAY => return Err(failure.error),
                Some(hint) => hint,
                None => backoff(cfg.backoff_base, cfg.backoff_max, attempt),
            };
            tracing::warn!(
                method = %call.method, path = %call.log_path, status = failure.status,
                attempt, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %failure.error, "retrying linq request"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, call: &Call, attempt: u32) -> Result<(StatusCode, Bytes), Failure> {
        let transport = |error: Error| Failure {
            error,
            status: None,
            server_says_stop: false,
        };
        let mut req = self
            .inner
            .http
            .request(call.method.clone(), &call.url)
            .timeout(self.inner.cfg.timeout)
            .header(ACCEPT, call.accept)
            // Same header as the official SDK, so server logs show retries.
            .header("x-stainless-retry-count", attempt.to_string());
        if call.authorized {
            req = req.header(AUTHORIZATION, self.inner.auth.clone());
        }
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        if let Some(content_type) = call.content_type {
            req = req.header(CONTENT_TYPE, content_type);
        }
        for (name, value) in &call.headers {
            req = req.header(name.clone(), value.clone());
        }
        if let Some(body) = &call.body {
            req = req.body(body.clone());
        }

        let resp = req.send().await.map_err(|e| transport(from_reqwest(&e)))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport(from_reqwest(&e)))?;
        if status.is_success() {
            return Ok((status, body));
        }
        let server_says_stop = headers
            .get("x-should-retry")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
        Err(Failure {
            error: api_error(status, &headers, &body),
            status: Some(status.as_u16()),
            server_says_stop,
        })
    }
}

/// Percent-encodes one path segment, refusing values URL normalization would rewrite.
fn segment(value: &str, what: &str) -> Result<String, Error> {
    if value.is_empty() || value == "." || value == ".." {
        return Err(Error::InvalidArgument(format!(
            "{what} {value:?} is not a usable id"
        )));
    }
    Ok(utf8_percent_encode(value, PATH_SEGMENT).to_string())
}

fn push_page_params(call: &mut Call, cursor: Option<&str>, limit: Option<u32>) {
    if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
        call.query.push(("cursor", cursor.to_owned()));
    }
    if let Some(limit) = limit {
        call.query.push(("limit", limit.to_string()));
    }
}

/// The message with an idempotency key: the caller's, or a fresh UUID.
fn with_idempotency_key(message: &MessageContent) -> Cow<'_, MessageContent> {
    if message
        .idempotency_key
        .as_deref()
        .is_some_and(|k| !k.is_empty())
    {
        Cow::Borrowed(message)
    } else {
        let mut owned = message.clone();
        owned.idempotency_key = Some(uuid::Uuid::new_v4().to_string());
        Cow::Owned(owned)
    }
}

/// `min(base · 2^attempt, max)`, minus up to 25 % jitter so clients that failed together do not
/// retry together.
fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt);
    let delay = base.saturating_mul(factor).min(max);
    let jittered = delay.as_secs_f64() * (1.0 - rand::random::<f64>() * 0.25);
    // Float rounding near Duration::MAX could overflow: keep the unjittered delay then.
    Duration::try_from_secs_f64(jittered).unwrap_or(delay)
}

fn from_reqwest(e: &reqwest::Error) -> Error {
    if e.is_timeout() {
        return Error::Timeout;
    }
    // reqwest's own message is terse ("error sending request for url (…)"); the cause chain
    // says what actually happened (connection refused, reset, certificate, …).
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    Error::Network(text)
}

/// Builds [`Error::Api`] from a non-2xx answer.
fn api_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let header_trace = headers
        .get("x-trace-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let retry_after = retry_after_from_headers(headers).or_else(|| {
        parsed
            .as_ref()
            .and_then(|b| b.error.retry_after)
            .map(Duration::from_secs)
    });
    let fallback_message = || {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            status
                .canonical_reason()
                .map_or_else(|| format!("HTTP {}", status.as_u16()), str::to_owned)
        } else {
            truncate(text, MAX_ERROR_TEXT)
        }
    };
    match parsed {
        Some(b) => Error::Api {
            status: status.as_u16(),
            code: b.error.code,
            message: if b.error.message.is_empty() {
                fallback_message()
            } else {
                b.error.message
            },
            trace_id: b.trace_id.or(header_trace),
            retry_after,
        },
        None => Error::Api {
            status: status.as_u16(),
            code: None,
            message: fallback_message(),
            trace_id: header_trace,
            retry_after,
        },
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// A non-negative, finite number of seconds as a `Duration`, or `None`.
fn secs(value: f64) -> Option<Duration> {
    if value.is_finite() && value >= 0.0 {
        Duration::try_from_secs_f64(value).ok()
    } else {
        None
    }
}

/// `retry-after-ms` (float milliseconds), else `retry-after` (float seconds or an HTTP-date).
fn retry_after_from_headers(headers: &HeaderMap) -> Option<Duration> {
    let from_ms = header_str(headers, "retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|ms| secs(ms / 1000.0));
    if from_ms.is_some() {
        return from_ms;
    }
    let value = header_str(headers, "retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return secs(seconds);
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_sources_in_order() {
        assert_eq!(
            retry_after_from_headers(&headers(&[
                ("retry-after-ms", "1500.5"),
                ("retry-after", "9")
            ])),
            Some(Duration::from_micros(1_500_500))
        );
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "0.25")])),
            Some(Duration::from_millis(250))
        );
        // A date in the past means "now".
        assert_eq!(
            retry_after_from_headers(&headers(&[(
                "retry-after",
                "Sun, 06 Nov 1994 08:49:37 GMT"
            )])),
            Some(Duration::ZERO)
        );
        let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let d = retry_after_from_headers(&headers(&[("retry-after", &future)])).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        // Garbage, negative and absurd values are ignored rather than panicking.
        for bad in ["soon", "-1", "NaN", "inf", "1e300"] {
            assert_eq!(
                retry_after_from_headers(&headers(&[("retry-after", bad)])),
                None,
                "{bad}"
            );
        }
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after-ms", "-5"), ("retry-after", "1")])),
            Some(Duration::from_secs(1))
        );
        assert_eq!(retry_after_from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let base = Duration::from_millis(250);
        let max = Duration::from_secs(8);
        for attempt in 0..40 {
            let nominal = base.saturating_mul(2u32.saturating_pow(attempt)).min(max);
            let d = backoff(base, max, attempt);
            assert!(
                d <= nominal && d >= nominal.mul_f64(0.75),
                "{attempt}: {d:?}"
            );
        }
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(
            segment("550e8400-e29b-41d4-a716-446655440000", "id").unwrap(),
            "550e8400-e29b-41d4-a716-446655440000"
        );
        assert_eq!(segment("a/b c?d#e%", "id").unwrap(), "a%2Fb%20c%3Fd%23e%25");
        assert_eq!(segment("+1555", "id").unwrap(), "%2B1555");
        for bad in ["", ".", ".."] {
            assert!(matches!(segment(bad, "id"), Err(Error::InvalidArgument(_))));
        }
    }

    #[test]
    fn api_errors_from_json_and_text() {
        let body = br#"{"success":false,"error":{"status":429,"code":1007,"message":"Rate limit","retry_after":3},"trace_id":"abc"}"#;
        let e = api_error(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), body);
        assert_eq!(
            e,
            Error::Api {
                status: 429,
                code: Some(1007),
                message: "Rate limit".into(),
                trace_id: Some("abc".into()),
                retry_after: Some(Duration::from_secs(3)),
            }
        );
        let e = api_error(
            StatusCode::BAD_GATEWAY,
            &headers(&[("x-trace-id", "t1")]),
            b"<html>bad gateway</html>",
        );
        assert_eq!(e.trace_id(), Some("t1"));
        assert!(e.to_string().contains("<html>bad gateway</html>"));
        let e = api_error(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new(), b"");
        assert!(e.to_string().contains("Service Unavailable"), "{e}");
        let long = "x".repeat(2000);
        let e = api_error(StatusCode::BAD_GATEWAY, &HeaderMap::new(), long.as_bytes());
        assert!(e.to_string().len() < 600);
    }

    #[test]
    fn idempotency_key_is_added_only_when_missing() {
        let given = MessageContent::text("hi").idempotency_key("k1");
        assert_eq!(
            with_idempotency_key(&given).idempotency_key.as_deref(),
            Some("k1")
        );
        let generated = with_idempotency_key(&MessageContent::text("hi")).into_owned();
        let key = generated.idempotency_key.unwrap();
        assert!(uuid::Uuid::parse_str(&key).is_ok());
    }

    #[test]
    fn config_validation() {
        let ok = ClientConfig::new("http://127.0.0.1:1/", "k");
        assert_eq!(Client::new(ok).unwrap().inner.base, "http://127.0.0.1:1");
        let default_base = Client::new(ClientConfig::new("", "k")).unwrap();
        assert_eq!(default_base.inner.base, DEFAULT_BASE_URL);
        for cfg in [
            ClientConfig::new("http://127.0.0.1:1", " "),
            ClientConfig::new("not a url", "k"),
            ClientConfig::new("ftp://x", "k"),
            ClientConfig::new("http://x/?a=b", "k"),
            ClientConfig::new("http://x", "bad\nkey"),
            ClientConfig {
                timeout: Duration::ZERO,
                ..ClientConfig::new("http://x", "k")
            },
        ] {
            assert!(
                matches!(Client::new(cfg.clone()), Err(Error::InvalidConfig(_))),
                "{cfg:?}"
            );
        }
        let shown = format!("{:?}", ClientConfig::new("http://x", "secret-key"));
        assert!(!shown.contains("secret-key"));
    }
}
