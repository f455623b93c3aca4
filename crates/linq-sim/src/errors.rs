//! Linq-shaped errors and the per-request trace id.
//!
//! Every error the simulator answers has the Linq v3 body
//! `{"success":false,"error":{"status","code","message","doc_url"},"trace_id"}` and every
//! response (success or not) carries an `X-Trace-ID` header holding the same 32-hex trace id.
//! Handlers return [`ApiError`]; the [`trace_layer`] middleware stamps the request's trace id
//! into the body and header, and also turns axum's own plain-text rejections (405, 413, bad
//! path encoding, unknown routes) into the same JSON shape.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The header carrying the trace id on every response.
pub const TRACE_HEADER: &str = "x-trace-id";

/// A W3C-style 32 lowercase hex trace id, generated per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceId(pub String);

impl TraceId {
    /// A fresh random trace id.
    pub fn new() -> Self {
        Self(random_hex32())
    }
}

impl Default for TraceId {
    fn default() -> Self {
        Self::new()
    }
}

/// 32 lowercase hex characters from 16 random bytes.
pub fn random_hex32() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An error answered with Linq's error body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
    /// Seconds, added as `error.retry_after` (429 only).
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 / 1001.
    pub fn missing_field(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            1001,
            format!("Missing required field: {field}"),
        )
    }

    /// 400 / 1002.
    pub fn invalid_phone(field: &str, value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            1002,
            format!(
                "Invalid phone number format for {field}: {value:?} is not E.164 (e.g. +12025550123)"
            ),
        )
    }

    /// 400 / 1002 for a field that may hold an E.164 number or an email address.
    pub fn invalid_handle(field: &str, value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            1002,
            format!(
                "Invalid handle for {field}: {value:?} is neither an E.164 phone number nor an email address"
            ),
        )
    }

    /// 400 / 1003.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 1003, message)
    }

    /// 400 / 1004.
    pub fn invalid_content(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 1004, message)
    }

    /// 400 / 1005.
    pub fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 1005, message)
    }

    /// 409 / 1006.
    pub fn cannot_update_dm() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            1006,
            "Cannot update a direct message chat; only group chats can be renamed or given an icon",
        )
    }

    /// 404 / 2001.
    pub fn chat_not_found(id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, 2001, format!("Chat not found: {id}"))
    }

    /// 404 / 2002.
    pub fn message_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            2002,
            format!("Message not found: {id}"),
        )
    }

    /// 404 / 2003.
    pub fn attachment_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            2003,
            format!("Attachment not found: {id}"),
        )
    }

    /// 401 / 2004.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 2004, message)
    }

    /// 403 / 2005.
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, 2005, message)
    }

    /// 403 / 2006.
    pub fn phone_denied(number: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            2006,
            format!("Phone number {number} is not one of your lines"),
        )
    }

    /// 404 / 2007.
    pub fn attachment_not_ready(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            2007,
            format!("Attachment {id} is not ready: its bytes have not been uploaded yet"),
        )
    }

    /// 409 / 2013.
    pub fn chat_unavailable(id: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            2013,
            format!("This chat is unavailable: you left chat {id}"),
        )
    }

    /// 500 / 3006.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, 3006, message)
    }

    /// The documented `doc_url` for this error code.
    pub fn doc_url(&self) -> String {
        format!(
            "https://docs.linqapp.com/error/codes/{}xxx/{}/",
            self.code / 1000,
            self.code
        )
    }

    /// The JSON body for this error with the given trace id.
    pub fn body(&self, trace: &TraceId) -> serde_json::Value {
        crate::wire::error_body(
            self.status.as_u16(),
            self.code,
            &self.message,
            self.retry_after,
            &trace.0,
        )
    }

    fn render(&self, trace: &TraceId) -> Response {
        let body = self.body(trace).to_string();
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Rendered at once with a throwaway trace id so the body is right even without the
        // middleware; `trace_layer` re-renders it with the request's own trace id.
        let mut resp = self.render(&TraceId::new());
        resp.extensions_mut().insert(self);
        resp
    }
}

/// A JSON success response with the given status (always `Content-Type: application/json`).
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// 204 No Content.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Outermost middleware: assigns the request's trace id, renders errors with it, turns
/// non-JSON error responses into Linq error bodies and sets `X-Trace-ID`.
pub async fn trace_layer(mut req: Request, next: Next) -> Response {
    let trace = TraceId::new();
    req.extensions_mut().insert(trace.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut resp = next.run(req).await;

    if let Some(err) = resp.extensions_mut().remove::<ApiError>() {
        resp = err.render(&trace);
    } else if (resp.status().is_client_error() || resp.status().is_server_error())
        && !is_json(&resp)
    {
        let status = resp.status();
        let text = axum::body::to_bytes(std::mem::replace(resp.body_mut(), Body::empty()), 4096)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .unwrap_or_default();
        let err = match status {
            StatusCode::NOT_FOUND => {
                ApiError::new(status, 1005, format!("No such endpoint: {method} {path}"))
            }
            StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
                status,
                1005,
                format!("Method {method} is not allowed on {path}"),
            ),
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(status, 1003, "Request body is too large".to_string())
            }
            s if s.is_server_error() => ApiError::new(s, 3006, non_empty(text, "Internal error")),
            s => ApiError::new(s, 1003, non_empty(text, "Invalid request")),
        };
        resp = err.render(&trace);
    }
    if let Ok(value) = HeaderValue::from_str(&trace.0) {
        resp.headers_mut().insert(TRACE_HEADER, value);
    }
    resp
}

fn non_empty(text: String, fallback: &str) -> String {
    if text.is_empty() {
        fallback.to_owned()
    } else {
        text
    }
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let media = ct.split(';').next().unwrap_or("").trim();
            media.contains("application/json") || media.ends_with("+json")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_linq_shape() {
        let trace = TraceId("0123456789abcdef0123456789abcdef".into());
        let body = ApiError::missing_field("message.parts").body(&trace);
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["status"], 400);
        assert_eq!(body["error"]["code"], 1001);
        assert_eq!(
            body["error"]["doc_url"],
            "https://docs.linqapp.com/error/codes/1xxx/1001/"
        );
        assert_eq!(body["trace_id"], trace.0);
        assert!(body["error"].get("retry_after").is_none());
    }

    #[test]
    fn trace_ids_are_32_hex() {
        let t = TraceId::new();
        assert_eq!(t.0.len(), 32);
        assert!(
            t.0.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
}
