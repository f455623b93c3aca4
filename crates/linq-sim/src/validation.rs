//! Input validation that mirrors what Linq rejects: E.164 numbers (1002), missing fields
//! (1001), malformed JSON (1003), message content rules (1004), invalid parameters and the
//! "no link in the first message of `POST /v3/chats`" rule (1005).
//!
//! Everything here is pure: it turns untrusted request JSON into checked values or an
//! [`ApiError`] with a message that names the offending field.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::errors::ApiError;

/// Every webhook event type a subscription may list (linq-v3.md §2.5).
pub const WEBHOOK_EVENT_TYPES: [&str; 27] = [
    "message.sent",
    "message.received",
    "message.read",
    "message.delivered",
    "message.failed",
    "message.edited",
    "reaction.added",
    "reaction.removed",
    "participant.added",
    "participant.removed",
    "chat.created",
    "chat.group_name_updated",
    "chat.group_icon_updated",
    "chat.group_name_update_failed",
    "chat.group_icon_update_failed",
    "chat.typing_indicator.started",
    "chat.typing_indicator.stopped",
    "phone_number.status_updated",
    "call.initiated",
    "call.ringing",
    "call.answered",
    "call.ended",
    "call.failed",
    "call.declined",
    "call.no_answer",
    "location.sharing.started",
    "location.sharing.stopped",
];

/// `ReactionType`.
pub const REACTION_TYPES: [&str; 8] = [
    "love",
    "like",
    "dislike",
    "laugh",
    "emphasize",
    "question",
    "custom",
    "sticker",
];

/// Screen effects (`effect.type = "screen"`).
pub const SCREEN_EFFECTS: [&str; 11] = [
    "confetti",
    "fireworks",
    "lasers",
    "sparkles",
    "celebration",
    "hearts",
    "love",
    "balloons",
    "happy_birthday",
    "echo",
    "spotlight",
];

/// Bubble effects (`effect.type = "bubble"`).
pub const BUBBLE_EFFECTS: [&str; 4] = ["slam", "loud", "gentle", "invisible"];

/// `SupportedContentType` for attachments.
pub const CONTENT_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/heic",
    "image/heif",
    "image/tiff",
    "image/bmp",
    "image/svg+xml",
    "image/webp",
    "image/x-icon",
    "video/mp4",
    "video/quicktime",
    "video/mpeg",
    "video/mpeg2",
    "video/x-m4v",
    "video/x-msvideo",
    "video/3gpp",
    "audio/mpeg",
    "audio/mp3",
    "audio/x-m4a",
    "audio/mp4",
    "audio/x-caf",
    "audio/x-wav",
    "audio/x-aiff",
    "audio/aiff",
    "audio/aac",
    "audio/midi",
    "audio/amr",
    "application/pdf",
    "text/plain",
    "text/markdown",
    "text/vcard",
    "text/rtf",
    "text/csv",
    "text/html",
    "text/calendar",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/x-iwork-pages-sffpages",
    "application/x-iwork-numbers-sffnumbers",
    "application/x-iwork-keynote-sffkey",
    "application/epub+zip",
    "text/xml",
    "application/json",
    "application/zip",
    "application/x-gzip",
];

/// Largest pre-uploaded attachment (100 MB).
pub const MAX_ATTACHMENT_BYTES: u64 = 100 * 1024 * 1024;

/// Parses a request body as JSON. An empty body counts as `{}` so that required-field checks
/// report 1001 rather than a parse error; anything unparsable is 1003.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::invalid_body("Invalid request body: not valid UTF-8"))?;
    let text = if text.trim().is_empty() { "{}" } else { text };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ApiError::invalid_body(format!("Invalid request body: malformed JSON ({e})"))
    })?;
    if !value.is_object() {
        return Err(ApiError::invalid_body(
            "Invalid request body: expected a JSON object",
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::invalid_body(format!("Invalid request body: {e}")))
}

/// `+` then 7 to 15 digits, the first not zero.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// A plausible email address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn is_email(s: &str) -> bool {
    let mut split = s.split('@');
    let (Some(local), Some(domain), None) = (split.next(), split.next(), split.next()) else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

/// Checks an E.164 field.
pub fn require_e164(field: &str, value: &str) -> Result<(), ApiError> {
    if is_e164(value) {
        Ok(())
    } else {
        Err(ApiError::invalid_phone(field, value))
    }
}

/// Checks a participant handle: E.164 or email.
pub fn require_handle(field: &str, value: &str) -> Result<(), ApiError> {
    if is_e164(value) || is_email(value) {
        Ok(())
    } else {
        Err(ApiError::invalid_handle(field, value))
    }
}

/// Normalizes a handle for comparisons (emails are case-insensitive).
pub fn normalize_handle(value: &str) -> String {
    let v = value.trim();
    if v.contains('@') {
        v.to_ascii_lowercase()
    } else {
        v.to_owned()
    }
}

/// An `http://` or `https://` URL with a host.
pub fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(r) => {
            let host = r.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// Whether text contains something iMessage would render as a link.
pub fn contains_url(text: &str) -> bool {
    const TLDS: [&str; 14] = [
        "com", "net", "org", "io", "co", "app", "dev", "ai", "me", "us", "ly", "gg", "xyz", "info",
    ];
    text.split_whitespace().any(|raw| {
        let token = raw
            .trim_matches(|c: char| {
                matches!(
                    c,
                    '(' | ')' | '<' | '>' | '"' | '\'' | ',' | '.' | '!' | '?' | ';' | ':'
                )
            })
            .to_ascii_lowercase();
        if token.contains("://") || token.starts_with("www.") {
            return true;
        }
        let host = token.split(['/', '?', '#']).next().unwrap_or("");
        if host.contains('@') || !host.contains('.') {
            return false;
        }
        let labels: Vec<&str> = host.split('.').collect();
        labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            && labels.last().is_some_and(|tld| TLDS.contains(tld))
    })
}

/// A validated request part, before attachment ids are resolved against the store.
#[derive(Clone, Debug, PartialEq)]
pub enum PartSpec {
    Text {
        value: String,
        text_decorations: Option<Value>,
    },
    MediaUrl {
        url: String,
    },
    MediaAttachment {
        attachment_id: String,
    },
    Link {
        value: String,
    },
    App {
        app: Value,
        layout: Value,
        url: Option<String>,
        fallback_text: Option<String>,
    },
}

/// A validated `effect`, always answered as `{type, name}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectSpec {
    pub kind: String,
    pub name: String,
}

/// A validated `reply_to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyToSpec {
    pub message_id: String,
    pub part_index: u32,
}

/// A validated `MessageContent`.
#[derive(Clone, Debug, PartialEq)]
pub struct ContentSpec {
    pub parts: Vec<PartSpec>,
    pub effect: Option<EffectSpec>,
    pub idempotency_key: Option<String>,
    pub preferred_service: Option<String>,
    pub reply_to: Option<ReplyToSpec>,
}

fn field_str<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::invalid_body(format!(
            "Invalid request body: {path}.{key} must be a string"
        ))),
    }
}

/// Validates a `MessageContent` object found at `path` (e.g. `"message"`).
pub fn message_content(value: Option<&Value>, path: &str) -> Result<ContentSpec, ApiError> {
    let obj = match value {
        None | Some(Value::Null) => return Err(ApiError::missing_field(path)),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(ApiError::invalid_body(format!(
                "Invalid request body: {path} must be an object"
            )));
        }
    };
    let parts_value = match obj.get("parts") {
        None | Some(Value::Null) => return Err(ApiError::missing_field(&format!("{path}.parts"))),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(ApiError::invalid_body(format!(
                "Invalid request body: {path}.parts must be an array"
            )));
        }
    };
    if parts_value.is_empty() {
        return Err(ApiError::invalid_content(format!(
            "{path}.parts must contain at least one part"
        )));
    }
    if parts_value.len() > 100 {
        return Err(ApiError::invalid_content(format!(
            "{path}.parts has {} parts; at most 100 are allowed",
            parts_value.len()
        )));
    }
    let mut parts = Vec::with_capacity(parts_value.len());
    for (i, p) in parts_value.iter().enumerate() {
        parts.push(part(p, &format!("{path}.parts[{i}]"))?);
    }
    check_part_sequence(&parts, path)?;

    let effect = match obj.get("effect") {
        None | Some(Value::Null) => None,
        Some(v) => Some(effect(v, &format!("{path}.effect"))?),
    };
    let idempotency_key = field_str(obj, "idempotency_key", path)?.map(str::to_owned);
    if let Some(k) = &idempotency_key
        && (k.is_empty() || k.len() > 255)
    {
        return Err(ApiError::invalid_param(format!(
            "{path}.idempotency_key must be 1 to 255 characters"
        )));
    }
    let preferred_service = field_str(obj, "preferred_service", path)?.map(str::to_owned);
    if let Some(s) = &preferred_service
        && !matches!(s.as_str(), "iMessage" | "SMS" | "RCS" | "auto")
    {
        return Err(ApiError::invalid_param(format!(
            "{path}.preferred_service must be one of iMessage, SMS, RCS, auto (got {s:?})"
        )));
    }
    let reply_to = match obj.get("reply_to") {
        None | Some(Value::Null) => None,
        Some(Value::Object(r)) => {
            let message_id = field_str(r, "message_id", &format!("{path}.reply_to"))?
                .ok_or_else(|| ApiError::missing_field(&format!("{path}.reply_to.message_id")))?;
            let part_index =
                optional_index(r.get("part_index"), &format!("{path}.reply_to.part_index"))?;
            Some(ReplyToSpec {
                message_id: message_id.to_owned(),
                part_index: part_index.unwrap_or(0),
            })
        }
        Some(_) => {
            return Err(ApiError::invalid_body(format!(
                "Invalid request body: {path}.reply_to must be an object"
            )));
        }
    };
    Ok(ContentSpec {
        parts,
        effect,
        idempotency_key,
        preferred_service,
        reply_to,
    })
}

/// A non-negative integer index, if present.
pub fn optional_index(value: Option<&Value>, path: &str) -> Result<Option<u32>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid_param(format!("{path} must be a non-negative integer"))
            }),
    }
}

fn part(value: &Value, path: &str) -> Result<PartSpec, ApiError> {
    let Value::Object(obj) = value else {
        return Err(ApiError::invalid_body(format!(
            "Invalid request body: {path} must be an object"
        )));
    };
    let kind = field_str(obj, "type", path)?
        .ok_or_else(|| ApiError::missing_field(&format!("{path}.type")))?;
    match kind {
        "text" => {
            let value = field_str(obj, "value", path)?
                .ok_or_else(|| ApiError::missing_field(&format!("{path}.value")))?;
            if value.trim().is_empty() {
                return Err(ApiError::invalid_content(format!(
                    "{path}.value must not be empty"
                )));
            }
            let text_decorations = match obj.get("text_decorations") {
                None | Some(Value::Null) => None,
                Some(Value::Array(decos)) => {
                    for (i, d) in decos.iter().enumerate() {
                        decoration(d, value, &format!("{path}.text_decorations[{i}]"))?;
                    }
                    Some(Value::Array(decos.clone()))
                }
                Some(_) => {
                    return Err(ApiError::invalid_body(format!(
                        "Invalid request body: {path}.text_decorations must be an array"
                    )));
                }
            };
            Ok(PartSpec::Text {
                value: value.to_owned(),
                text_decorations,
            })
        }
        "media" => {
            let url = field_str(obj, "url", path)?;
            let attachment_id = field_str(obj, "attachment_id", path)?;
            match (url, attachment_id) {
                (Some(url), None) => {
                    if !is_http_url(url) {
                        return Err(ApiError::invalid_param(format!(
                            "{path}.url must be an http(s) URL"
                        )));
                    }
                    Ok(PartSpec::MediaUrl {
                        url: url.to_owned(),
                    })
                }
                (None, Some(id)) => Ok(PartSpec::MediaAttachment {
                    attachment_id: id.to_owned(),
                }),
                (Some(_), Some(_)) => Err(ApiError::invalid_content(format!(
                    "{path}: give exactly one of url or attachment_id, not both"
                ))),
                (None, None) => Err(ApiError::missing_field(&format!(
                    "{path}.url or {path}.attachment_id"
                ))),
            }
        }
        "link" => {
            let value = field_str(obj, "value", path)?
                .ok_or_else(|| ApiError::missing_field(&format!("{path}.value")))?;
            if !is_http_url(value) || value.len() > 2048 {
                return Err(ApiError::invalid_param(format!(
                    "{path}.value must be an http(s) URL of at most 2048 characters"
                )));
            }
            Ok(PartSpec::Link {
                value: value.to_owned(),
            })
        }
        "imessage_app" => {
            let app = match obj.get("app") {
                Some(Value::Object(a)) => {
                    for key in ["bundle_id", "name", "team_id"] {
                        if field_str(a, key, &format!("{path}.app"))?.is_none() {
                            return Err(ApiError::missing_field(&format!("{path}.app.{key}")));
                        }
                    }
                    Value::Object(a.clone())
                }
                None | Some(Value::Null) => {
                    return Err(ApiError::missing_field(&format!("{path}.app")));
                }
                Some(_) => {
                    return Err(ApiError::invalid_body(format!(
                        "Invalid request body: {path}.app must be an object"
                    )));
                }
            };
            let layout = match obj.get("layout") {
                Some(Value::Object(l)) => {
                    let has_any = [
                        "caption",
                        "subcaption",
                        "trailing_caption",
                        "trailing_subcaption",
                        "image_url",
                    ]
                    .iter()
                    .any(|k| {
                        l.get(*k)
                            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                    });
                    if !has_any {
                        return Err(ApiError::invalid_content(format!(
                            "{path}.layout needs at least one of caption, subcaption, trailing_caption, trailing_subcaption or image_url"
                        )));
                    }
                    Value::Object(l.clone())
                }
                None | Some(Value::Null) => {
                    return Err(ApiError::missing_field(&format!("{path}.layout")));
                }
                Some(_) => {
                    return Err(ApiError::invalid_body(format!(
                        "Invalid request body: {path}.layout must be an object"
                    )));
                }
            };
            let url = field_str(obj, "url", path)?.map(str::to_owned);
            if let Some(u) = &url {
                let ok = (u.starts_with("https://") && u.len() <= 2048 && is_http_url(u))
                    || (u.starts_with("data:") && u.len() <= 16384);
                if !ok {
                    return Err(ApiError::invalid_param(format!(
                        "{path}.url must be https (at most 2048 characters) or a data: URL (at most 16384)"
                    )));
                }
            }
            let fallback_text = field_str(obj, "fallback_text", path)?.map(str::to_owned);
            Ok(PartSpec::App {
                app,
                layout,
                url,
                fallback_text,
            })
        }
        other => Err(ApiError::invalid_content(format!(
            "{path}.type {other:?} is not one of text, media, link, imessage_app"
        ))),
    }
}

fn decoration(value: &Value, text: &str, path: &str) -> Result<(), ApiError> {
    let Value::Object(d) = value else {
        return Err(ApiError::invalid_body(format!(
            "Invalid request body: {path} must be an object"
        )));
    };
    let range = d
        .get("range")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::missing_field(&format!("{path}.range")))?;
    let utf16_len = text.encode_utf16().count() as u64;
    let bounds: Vec<u64> = range.iter().filter_map(Value::as_u64).collect();
    let [start, end] = bounds.as_slice() else {
        return Err(ApiError::invalid_param(format!(
            "{path}.range must be [start, end] with non-negative integers"
        )));
    };
    if range.len() != 2 || start >= end || *end > utf16_len {
        return Err(ApiError::invalid_param(format!(
            "{path}.range [{start}, {end}) is not a non-empty range within the text ({utf16_len} UTF-16 units)"
        )));
    }
    const STYLES: [&str; 4] = ["bold", "italic", "strikethrough", "underline"];
    const ANIMATIONS: [&str; 8] = [
        "big", "small", "shake", "nod", "explode", "ripple", "bloom", "jitter",
    ];
    let style = d.get("style").and_then(Value::as_str);
    let animation = d.get("animation").and_then(Value::as_str);
    match (style, animation) {
        (Some(s), None) if STYLES.contains(&s) => Ok(()),
        (None, Some(a)) if ANIMATIONS.contains(&a) => Ok(()),
        (Some(_), Some(_)) | (None, None) => Err(ApiError::invalid_param(format!(
            "{path} needs exactly one of style or animation"
        ))),
        _ => Err(ApiError::invalid_param(format!(
            "{path} has an unknown style or animation"
        ))),
    }
}

/// The rules on how parts may follow each other.
fn check_part_sequence(parts: &[PartSpec], path: &str) -> Result<(), ApiError> {
    let many = parts.len() > 1;
    for (i, p) in parts.iter().enumerate() {
        match p {
            PartSpec::Link { .. } if many => {
                return Err(ApiError::invalid_content(format!(
                    "{path}.parts[{i}]: a link part must be the only part of the message"
                )));
            }
            PartSpec::App { .. } if many => {
                return Err(ApiError::invalid_content(format!(
                    "{path}.parts[{i}]: an imessage_app part must be the only part of the message"
                )));
            }
            PartSpec::Text { .. }
                if i > 0 && matches!(parts.get(i - 1), Some(PartSpec::Text { .. })) =>
            {
                return Err(ApiError::invalid_content(format!(
                    "{path}.parts[{i}]: two text parts may not follow each other; merge them into one"
                )));
            }
            _ => {}
        }
    }
    let media_urls = parts
        .iter()
        .filter(|p| matches!(p, PartSpec::MediaUrl { .. }))
        .count();
    if media_urls > 40 {
        return Err(ApiError::invalid_content(format!(
            "{path}.parts has {media_urls} media parts given by url; at most 40 are allowed"
        )));
    }
    Ok(())
}

/// The first message of `POST /v3/chats` may hold neither a link part nor a URL in text.
pub fn first_message_has_no_link(content: &ContentSpec, path: &str) -> Result<(), ApiError> {
    for (i, p) in content.parts.iter().enumerate() {
        match p {
            PartSpec::Link { .. } => {
                return Err(ApiError::invalid_param(format!(
                    "{path}.parts[{i}]: the first message of a new chat cannot contain a link"
                )));
            }
            PartSpec::Text { value, .. } if contains_url(value) => {
                return Err(ApiError::invalid_param(format!(
                    "{path}.parts[{i}]: the first message of a new chat cannot contain a link or URL"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Accepts `{type, name}` as well as the older `{screen_effect}` / `{bubble_effect}`.
fn effect(value: &Value, path: &str) -> Result<EffectSpec, ApiError> {
    let Value::Object(obj) = value else {
        return Err(ApiError::invalid_body(format!(
            "Invalid request body: {path} must be an object"
        )));
    };
    let (kind, name) = if let Some(name) = field_str(obj, "screen_effect", path)? {
        ("screen".to_owned(), name.to_owned())
    } else if let Some(name) = field_str(obj, "bubble_effect", path)? {
        ("bubble".to_owned(), name.to_owned())
    } else {
        let name = field_str(obj, "name", path)?
            .ok_or_else(|| ApiError::missing_field(&format!("{path}.name")))?;
        let kind = match field_str(obj, "type", path)? {
            Some(k) => k.to_owned(),
            None if SCREEN_EFFECTS.contains(&name) => "screen".to_owned(),
            None => "bubble".to_owned(),
        };
        (kind, name.to_owned())
    };
    let known = match kind.as_str() {
        "screen" => SCREEN_EFFECTS.contains(&name.as_str()),
        "bubble" => BUBBLE_EFFECTS.contains(&name.as_str()),
        _ => {
            return Err(ApiError::invalid_param(format!(
                "{path}.type must be screen or bubble (got {kind:?})"
            )));
        }
    };
    if !known {
        return Err(ApiError::invalid_param(format!(
            "{path}.name {name:?} is not a known {kind} effect"
        )));
    }
    Ok(EffectSpec { kind, name })
}

/// Validates a reaction `type` (and, when adding, `custom_emoji` if it is `custom`).
pub fn reaction(
    kind: Option<&str>,
    custom_emoji: Option<&str>,
    adding: bool,
) -> Result<String, ApiError> {
    let kind = kind.ok_or_else(|| ApiError::missing_field("type"))?;
    if !REACTION_TYPES.contains(&kind) {
        return Err(ApiError::invalid_param(format!(
            "type {kind:?} is not one of {}",
            REACTION_TYPES.join(", ")
        )));
    }
    if adding && kind == "custom" && custom_emoji.is_none_or(|e| e.trim().is_empty()) {
        return Err(ApiError::missing_field(
            "custom_emoji (required when type is custom)",
        ));
    }
    Ok(kind.to_owned())
}

/// Validates a reaction `operation` (default `add`).
pub fn reaction_operation(op: Option<&str>, required: bool) -> Result<bool, ApiError> {
    match op {
        None if required => Err(ApiError::missing_field("operation")),
        None | Some("add") => Ok(true),
        Some("remove") => Ok(false),
        Some(other) => Err(ApiError::invalid_param(format!(
            "operation must be add or remove (got {other:?})"
        ))),
    }
}

/// The `?version=` of a subscription target URL: `2025-01-01`, `2026-02-03`, or absent.
pub fn webhook_version(target_url: &str) -> Result<Option<&'static str>, ApiError> {
    let Some((_, query)) = target_url.split_once('?') else {
        return Ok(None);
    };
    let query = query.split('#').next().unwrap_or("");
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("version=") {
            return match v {
                "2025-01-01" => Ok(Some("2025-01-01")),
                "2026-02-03" => Ok(Some("2026-02-03")),
                other => Err(ApiError::invalid_param(format!(
                    "target_url version {other:?} is not a webhook version (use 2025-01-01 or 2026-02-03)"
                ))),
            };
        }
    }
    Ok(None)
}

/// Validates a `subscribed_events` list.
pub fn subscribed_events(events: &[String]) -> Result<(), ApiError> {
    if events.is_empty() {
        return Err(ApiError::invalid_param(
            "subscribed_events must list at least one event type",
        ));
    }
    for e in events {
        if !WEBHOOK_EVENT_TYPES.contains(&e.as_str()) {
            return Err(ApiError::invalid_param(format!(
                "subscribed_events: {e:?} is not a webhook event type"
            )));
        }
    }
    Ok(())
}

/// The mime type for a file name, for media given by URL.
pub fn mime_for(filename: &str) -> &'static str {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/x-m4a",
        "caf" => "audio/x-caf",
        "wav" => "audio/x-wav",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "md" => "text/markdown",
        "vcf" => "text/vcard",
        "csv" => "text/csv",
        "json" => "application/json",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn e164_and_email() {
        assert!(is_e164("+12025550100"));
        assert!(!is_e164("12025550100"));
        assert!(!is_e164("+0202555"));
        assert!(!is_e164("+1202-555"));
        assert!(!is_e164("+1234567890123456"));
        assert!(is_email("a@b.co"));
        assert!(!is_email("a@b"));
        assert!(!is_email("a b@c.d"));
    }

    #[test]
    fn url_detection() {
        assert!(contains_url("see https://x.y/z"));
        assert!(contains_url("go to www.example.org now"));
        assert!(contains_url("example.com"));
        assert!(contains_url("(linq.app/docs)"));
        assert!(!contains_url("hi there. how are you?"));
        assert!(!contains_url("mail me at a@b.com"));
        assert!(!contains_url("version 1.2.3"));
    }

    #[test]
    fn content_rules() {
        let ok = json!({"parts":[{"type":"text","value":"a"},{"type":"media","url":"https://x/y.png"},{"type":"text","value":"b"}]});
        assert!(message_content(Some(&ok), "message").is_ok());
        let two_texts = json!({"parts":[{"type":"text","value":"a"},{"type":"text","value":"b"}]});
        assert_eq!(
            message_content(Some(&two_texts), "message")
                .unwrap_err()
                .code,
            1004
        );
        let link_not_alone =
            json!({"parts":[{"type":"link","value":"https://x.y"},{"type":"text","value":"b"}]});
        assert_eq!(
            message_content(Some(&link_not_alone), "message")
                .unwrap_err()
                .code,
            1004
        );
        let no_parts = json!({});
        assert_eq!(
            message_content(Some(&no_parts), "message")
                .unwrap_err()
                .code,
            1001
        );
        assert_eq!(message_content(None, "message").unwrap_err().code, 1001);
        let old_effect =
            json!({"parts":[{"type":"text","value":"a"}],"effect":{"screen_effect":"confetti"}});
        let c = message_content(Some(&old_effect), "message").unwrap();
        assert_eq!(
            c.effect,
            Some(EffectSpec {
                kind: "screen".into(),
                name: "confetti".into()
            })
        );
        let link_first = json!({"parts":[{"type":"text","value":"see linq.app"}]});
        let c = message_content(Some(&link_first), "message").unwrap();
        assert_eq!(
            first_message_has_no_link(&c, "message").unwrap_err().code,
            1005
        );
    }

    #[test]
    fn versions_from_target_url() {
        assert_eq!(webhook_version("https://a/b").unwrap(), None);
        assert_eq!(
            webhook_version("https://a/b?x=1&version=2025-01-01").unwrap(),
            Some("2025-01-01")
        );
        assert!(webhook_version("https://a/b?version=2024-01-01").is_err());
    }

    #[test]
    fn parse_json_errors() {
        #[derive(serde::Deserialize, Debug)]
        struct T {
            #[allow(dead_code)]
            a: Option<String>,
        }
        assert_eq!(parse_json::<T>(b"{").unwrap_err().code, 1003);
        assert_eq!(parse_json::<T>(b"[]").unwrap_err().code, 1003);
        assert_eq!(parse_json::<T>(br#"{"a":1}"#).unwrap_err().code, 1003);
        assert!(parse_json::<T>(b"").is_ok());
    }
}
