//! The HTTP client's error type, and which errors are worth retrying.

use std::time::Duration;

/// Everything a [`crate::Client`] call can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Linq answered with a non-2xx status. `code`, `message` and `trace_id` come from Linq's
    /// error body when it is JSON (else `message` is the body text or the status reason);
    /// `trace_id` falls back to the `X-Trace-ID` header; `retry_after` is the server's hint from
    /// `retry-after-ms`, `retry-after` or `error.retry_after`.
    #[error("Linq API error {status}{}: {message}", code_suffix(.code))]
    Api {
        status: u16,
        code: Option<i64>,
        message: String,
        trace_id: Option<String>,
        retry_after: Option<Duration>,
    },
    /// The request never got an answer (DNS, connect, TLS, reset, …).
    #[error("network error talking to Linq: {0}")]
    Network(String),
    /// An attempt took longer than the configured timeout.
    #[error("request to Linq timed out")]
    Timeout,
    /// A 2xx answer whose body is not what the contract says.
    #[error("could not decode Linq's response: {0}")]
    Decode(String),
    #[error("invalid Linq client configuration: {0}")]
    InvalidConfig(String),
    /// A caller-supplied value that cannot be sent (e.g. an id that is empty, `.` or `..`, which
    /// URL normalization would turn into a different path).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

fn code_suffix(code: &Option<i64>) -> String {
    code.map(|c| format!(" (code {c})")).unwrap_or_default()
}

impl Error {
    /// True for 5xx, 408, 429, network errors and timeouts. Not for 409: Linq uses it for
    /// permanent conditions ("this chat is unavailable", "cannot update a DM").
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            Error::Network(_) | Error::Timeout => true,
            Error::Decode(_) | Error::InvalidConfig(_) | Error::InvalidArgument(_) => false,
        }
    }

    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Linq's numeric error code (e.g. 2001 chat not found), for API errors that carried one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Error::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// The server's retry hint, for API errors that carried one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Linq's trace id, to quote when asking Linq support about a failure.
    pub fn trace_id(&self) -> Option<&str> {
        match self {
            Error::Api { trace_id, .. } => trace_id.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> Error {
        Error::Api {
            status,
            code: None,
            message: "x".into(),
            trace_id: None,
            retry_after: None,
        }
    }

    #[test]
    fn retryable_classes() {
        for s in [500, 502, 503, 504, 408, 429] {
            assert!(api(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 413, 422] {
            assert!(!api(s).is_retryable(), "{s}");
        }
        assert!(Error::Network("reset".into()).is_retryable());
        assert!(Error::Timeout.is_retryable());
        assert!(!Error::Decode("x".into()).is_retryable());
        assert!(!Error::InvalidConfig("x".into()).is_retryable());
    }

    #[test]
    fn display_includes_status_and_code() {
        let e = Error::Api {
            status: 404,
            code: Some(2001),
            message: "Chat not found".into(),
            trace_id: Some("t".into()),
            retry_after: None,
        };
        assert_eq!(
            e.to_string(),
            "Linq API error 404 (code 2001): Chat not found"
        );
        assert_eq!(api(502).to_string(), "Linq API error 502: x");
    }
}
