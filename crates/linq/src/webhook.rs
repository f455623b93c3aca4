//! Standard Webhooks signatures as Linq uses them (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`), plus the deprecated `X-Webhook-Signature` scheme the simulator still
//! emits. Verification is constant-time and checks the timestamp against a ±300 s window.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the unique event id (Linq sets it to the event's `event_id`).
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the Unix timestamp in seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying one or more space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// Deprecated headers, sent alongside the standard ones.
pub const LEGACY_HEADER_EVENT: &str = "x-webhook-event";
pub const LEGACY_HEADER_SUBSCRIPTION: &str = "x-webhook-subscription-id";
pub const LEGACY_HEADER_TIMESTAMP: &str = "x-webhook-timestamp";
pub const LEGACY_HEADER_SIGNATURE: &str = "x-webhook-signature";

/// How far a webhook's timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;

const SECRET_PREFIX: &str = "whsec_";

/// A webhook signing secret: the `whsec_…` text and the key bytes it encodes.
#[derive(Clone)]
pub struct WebhookSecret {
    text: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, even in debug logs.
        f.write_str("WebhookSecret(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("webhook secret is empty")]
    Empty,
    #[error("webhook secret is not valid standard base64 after the whsec_ prefix")]
    NotBase64,
    #[error("webhook secret decodes to {0} bytes; at least 16 are required")]
    TooShort(usize),
}

impl WebhookSecret {
    /// Parses `whsec_<base64>` (the prefix is optional; missing `=` padding is tolerated, the
    /// URL-safe alphabet is not, exactly as the official verifier behaves).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let key = STANDARD
            .decode(encoded)
            .or_else(|_| STANDARD_NO_PAD.decode(encoded.trim_end_matches('=')))
            .map_err(|_| SecretError::NotBase64)?;
        if key.len() < 16 {
            return Err(SecretError::TooShort(key.len()));
        }
        Ok(Self {
            text: text.to_owned(),
            key,
        })
    }

    /// A fresh random 32-byte secret, as Linq issues them.
    pub fn generate() -> Self {
        let key: [u8; 32] = rand::random();
        Self {
            text: format!("{SECRET_PREFIX}{}", STANDARD.encode(key)),
            key: key.to_vec(),
        }
    }

    /// The secret as configured (`whsec_…`). Treat it as sensitive.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn mac(&self, key: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        match HmacSha256::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
        }
    }
}

fn standard_signature_bytes(
    secret: &WebhookSecret,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> [u8; 32] {
    let mut mac = secret.mac(&secret.key);
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The `webhook-signature` header value (`v1,<base64>`) for one delivery.
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1,{}",
        STANDARD.encode(standard_signature_bytes(secret, msg_id, timestamp, body))
    )
}

/// The deprecated `X-Webhook-Signature` value: lowercase hex HMAC-SHA256 over
/// `"{timestamp}.{body}"`, keyed by the whole secret string (see linq-v3.md §4.3).
pub fn sign_legacy(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = secret.mac(secret.text.as_bytes());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// What a successful verification established about the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedWebhook {
    /// The `webhook-id` header: the delivery's idempotency key.
    pub id: String,
    /// The `webhook-timestamp` header, in Unix seconds.
    pub timestamp: i64,
}

/// Why a delivery was rejected. The text is meant for a log line, never for the sender.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("missing required header {0}")]
    MissingHeader(&'static str),
    #[error("header {0} is not valid text")]
    InvalidHeader(&'static str),
    #[error("webhook-timestamp {0:?} is not an integer number of seconds")]
    BadTimestamp(String),
    #[error("message timestamp too old ({age_secs} s, tolerance {TOLERANCE_SECS} s)")]
    TooOld { age_secs: i64 },
    #[error("message timestamp too new ({ahead_secs} s ahead, tolerance {TOLERANCE_SECS} s)")]
    TooNew { ahead_secs: i64 },
    #[error("no v1 signature in webhook-signature")]
    NoV1Signature,
    #[error("no matching signature found")]
    NoMatch,
}

/// Verifies a delivery's Standard Webhooks headers against its raw body.
///
/// Header names are matched case-insensitively (`HeaderMap` normalises them). Every `v1,`
/// entry of the signature header is tried; comparison is constant-time.
pub fn verify(
    secret: &WebhookSecret,
    headers: &http::HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<VerifiedWebhook, VerifyError> {
    let header = |name: &'static str| -> Result<&str, VerifyError> {
        headers
            .get(name)
            .ok_or(VerifyError::MissingHeader(name))?
            .to_str()
            .map_err(|_| VerifyError::InvalidHeader(name))
    };
    let id = header(HEADER_ID)?;
    let timestamp_text = header(HEADER_TIMESTAMP)?;
    let signatures = header(HEADER_SIGNATURE)?;

    let timestamp: i64 = timestamp_text
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp_text.to_owned()))?;
    if now_unix.saturating_sub(timestamp) > TOLERANCE_SECS {
        return Err(VerifyError::TooOld {
            age_secs: now_unix.saturating_sub(timestamp),
        });
    }
    if timestamp.saturating_sub(now_unix) > TOLERANCE_SECS {
        return Err(VerifyError::TooNew {
            ahead_secs: timestamp.saturating_sub(now_unix),
        });
    }

    let expected = standard_signature_bytes(secret, id, timestamp, body);
    let mut saw_v1 = false;
    let mut matched = subtle::Choice::from(0u8);
    for entry in signatures.split(' ').filter(|e| !e.is_empty()) {
        let Some(encoded) = entry.strip_prefix("v1,") else {
            continue;
        };
        saw_v1 = true;
        if let Ok(candidate) = STANDARD.decode(encoded) {
            // Length differences are not secret; the bytes are compared in constant time.
            if candidate.len() == expected.len() {
                matched |= candidate.ct_eq(&expected);
            }
        }
    }
    if !saw_v1 {
        return Err(VerifyError::NoV1Signature);
    }
    if bool::from(matched) {
        Ok(VerifiedWebhook {
            id: id.to_owned(),
            timestamp,
        })
    } else {
        Err(VerifyError::NoMatch)
    }
}

/// Constant-time equality for secrets such as bearer tokens.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    // Known-answer vector from the Standard Webhooks reference implementations.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER_ID, HeaderValue::from_str(id).unwrap());
        h.insert(HEADER_TIMESTAMP, HeaderValue::from_str(ts).unwrap());
        h.insert(HEADER_SIGNATURE, HeaderValue::from_str(sig).unwrap());
        h
    }

    #[test]
    fn matches_the_standard_webhooks_known_answer() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        assert_eq!(
            sign(&secret, SPEC_ID, SPEC_TS, SPEC_BODY.as_bytes()),
            SPEC_SIG
        );
        let h = headers(SPEC_ID, &SPEC_TS.to_string(), SPEC_SIG);
        let ok = verify(&secret, &h, SPEC_BODY.as_bytes(), SPEC_TS).unwrap();
        assert_eq!(ok.id, SPEC_ID);
    }

    #[test]
    fn accepts_any_of_several_signatures_and_skips_other_versions() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        let sig = format!("v2,abc v1,AAAA {SPEC_SIG}");
        let h = headers(SPEC_ID, &SPEC_TS.to_string(), &sig);
        assert!(verify(&secret, &h, SPEC_BODY.as_bytes(), SPEC_TS).is_ok());
        let h = headers(SPEC_ID, &SPEC_TS.to_string(), "v2,abc");
        assert_eq!(
            verify(&secret, &h, SPEC_BODY.as_bytes(), SPEC_TS),
            Err(VerifyError::NoV1Signature)
        );
    }

    #[test]
    fn rejects_tampering_wrong_secret_and_bad_timestamps() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        let ts = SPEC_TS.to_string();
        let h = headers(SPEC_ID, &ts, SPEC_SIG);
        assert_eq!(
            verify(&secret, &h, br#"{"test": 2432232315}"#, SPEC_TS),
            Err(VerifyError::NoMatch)
        );
        let other = WebhookSecret::generate();
        assert_eq!(
            verify(&other, &h, SPEC_BODY.as_bytes(), SPEC_TS),
            Err(VerifyError::NoMatch)
        );
        assert!(matches!(
            verify(&secret, &h, SPEC_BODY.as_bytes(), SPEC_TS + 301),
            Err(VerifyError::TooOld { .. })
        ));
        assert!(matches!(
            verify(&secret, &h, SPEC_BODY.as_bytes(), SPEC_TS - 301),
            Err(VerifyError::TooNew { .. })
        ));
        // A millisecond timestamp is "too new", as in the official library.
        let ms = (SPEC_TS * 1000).to_string();
        let h = headers(SPEC_ID, &ms, SPEC_SIG);
        assert!(matches!(
            verify(&secret, &h, SPEC_BODY.as_bytes(), SPEC_TS),
            Err(VerifyError::TooNew { .. })
        ));
        let h = headers(SPEC_ID, "soon", SPEC_SIG);
        assert!(matches!(
            verify(&secret, &h, SPEC_BODY.as_bytes(), SPEC_TS),
            Err(VerifyError::BadTimestamp(_))
        ));
    }

    #[test]
    fn reports_each_missing_header() {
        let secret = WebhookSecret::generate();
        let mut h = headers("id", "1", "v1,x");
        h.remove(HEADER_SIGNATURE);
        assert_eq!(
            verify(&secret, &h, b"{}", 1),
            Err(VerifyError::MissingHeader(HEADER_SIGNATURE))
        );
        h.remove(HEADER_ID);
        assert_eq!(
            verify(&secret, &h, b"{}", 1),
            Err(VerifyError::MissingHeader(HEADER_ID))
        );
    }

    #[test]
    fn secret_parsing() {
        assert!(matches!(WebhookSecret::parse(""), Err(SecretError::Empty)));
        assert!(matches!(
            WebhookSecret::parse("whsec_!!!"),
            Err(SecretError::NotBase64)
        ));
        assert!(matches!(
            WebhookSecret::parse("whsec_AAAA"),
            Err(SecretError::TooShort(3))
        ));
        // Without prefix and without padding both work.
        let g = WebhookSecret::generate();
        let bare = g
            .as_str()
            .trim_start_matches("whsec_")
            .trim_end_matches('=');
        let again = WebhookSecret::parse(bare).unwrap();
        assert_eq!(sign(&g, "a", 1, b"b"), sign(&again, "a", 1, b"b"));
        assert_eq!(format!("{g:?}"), "WebhookSecret(..)");
    }

    #[test]
    fn legacy_signature_is_hex_hmac_over_timestamp_and_body() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        let sig = sign_legacy(&secret, 1, b"{}");
        assert_eq!(sig.len(), 64);
        assert!(
            sig.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(sig, sign_legacy(&secret, 2, b"{}"));
    }

    #[test]
    fn secrets_equal_is_length_aware() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"abcd"));
    }
}
