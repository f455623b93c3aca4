//! Webhook events (linq-v3.md §4.5–§4.6): parsing every event type in both payload versions
//! (`2025-01-01` and `2026-02-03`) into one normalized form, and building event bodies for the
//! simulator to emit.
//!
//! Parsing reads the envelope first, then picks the `data` schema by `event_type` (and, for
//! `message.*`, by `webhook_version`, falling back to the payload's shape for versions this crate
//! does not know). Unknown event types (`call.*`, `location.*`, anything newer) are kept as
//! [`EventPayload::Other`] so a receiver can acknowledge and ignore them. Signature checking is
//! not done here: see [`crate::webhook`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::types::{
    Chat, ChatHandle, HealthLevel, HealthStatus, MessageEffect, PartResponse, PhoneNumberState,
    ReactionType, ReplyTo, ServiceType, Sticker, now_timestamp, null_as_default, parse_or_raw,
};

/// The original payload version: `message.*` data nests the message under `message`.
pub const WEBHOOK_VERSION_2025: &str = "2025-01-01";
/// The current payload version: flat `message.*` data with `chat`, `direction`, `sender_handle`.
pub const WEBHOOK_VERSION_2026: &str = "2026-02-03";
/// `api_version` of every envelope.
pub const API_VERSION: &str = "v3";

/// Why a webhook body could not be turned into an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("webhook body is not valid UTF-8 (first bad byte at offset {0})")]
    NotUtf8(usize),
    #[error("webhook body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("webhook body is not a JSON object")]
    NotAnObject,
    #[error("webhook envelope field `{0}` is missing or not a string")]
    MissingEnvelopeField(&'static str),
    /// The `data` of a known event type does not match that type's schema.
    #[error("`{event_type}` data: field `{field}`: {message}")]
    InvalidData {
        event_type: String,
        /// Path inside `data`, e.g. `chat.id` or `message.parts[0]`; `data` for the whole object.
        field: String,
        message: String,
    },
    /// Builders only: a payload version this crate cannot emit.
    #[error("unsupported webhook version {0:?}")]
    UnsupportedVersion(String),
    /// Builders only: the payload cannot be serialized this way.
    #[error("cannot build event: {0}")]
    Build(String),
}

/// The fields shared by every event, whatever its type and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub api_version: String,
    pub webhook_version: String,
    pub event_type: String,
    /// Unique per event; also sent as `webhook-id`. De-duplicate on it.
    pub event_id: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<String>,
}

impl Envelope {
    /// A fresh envelope: new UUID `event_id`, `created_at` now (UTC), `api_version` `v3` and a
    /// random 32-hex `trace_id`. `partner_id` is left unset.
    pub fn new(webhook_version: impl Into<String>, event_type: impl Into<String>) -> Self {
        Self {
            api_version: API_VERSION.to_owned(),
            webhook_version: webhook_version.into(),
            event_type: event_type.into(),
            event_id: uuid::Uuid::new_v4().to_string(),
            created_at: now_timestamp(),
            trace_id: Some(uuid::Uuid::new_v4().simple().to_string()),
            partner_id: None,
        }
    }

    /// Sets `partner_id`.
    pub fn partner_id(mut self, partner_id: impl Into<String>) -> Self {
        self.partner_id = Some(partner_id.into());
        self
    }
}

/// A parsed webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub envelope: Envelope,
    pub payload: EventPayload,
}

/// Which of the four message lifecycle events this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageEventKind {
    Sent,
    Received,
    Delivered,
    Read,
}

impl MessageEventKind {
    pub const ALL: [MessageEventKind; 4] =
        [Self::Sent, Self::Received, Self::Delivered, Self::Read];

    /// `message.sent`, `message.received`, `message.delivered` or `message.read`.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Sent => "message.sent",
            Self::Received => "message.received",
            Self::Delivered => "message.delivered",
            Self::Read => "message.read",
        }
    }

    /// The kind for a `message.*` event type, if it is one of the four.
    pub fn from_event_type(event_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.event_type() == event_type)
    }
}

/// Whether a message came to your line or left from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// What an event says, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum EventPayload {
    /// `message.sent` / `.received` / `.delivered` / `.read`, either version.
    Message {
        kind: MessageEventKind,
        message: MessageEvent,
    },
    MessageFailed(MessageFailed),
    /// `message.edited` (2026-02-03 subscriptions only).
    MessageEdited(MessageEdited),
    /// `reaction.added` (`added: true`) / `reaction.removed`.
    Reaction {
        added: bool,
        reaction: ReactionEvent,
    },
    ParticipantAdded(ParticipantEvent),
    ParticipantRemoved(ParticipantEvent),
    ChatCreated(Chat),
    GroupNameUpdated(GroupUpdate),
    GroupIconUpdated(GroupUpdate),
    GroupNameUpdateFailed(GroupUpdateFailed),
    GroupIconUpdateFailed(GroupUpdateFailed),
    /// `chat.typing_indicator.started` (`started: true`) / `.stopped`.
    TypingIndicator {
        started: bool,
        chat_id: String,
    },
    PhoneNumberStatusUpdated(PhoneNumberStatus),
    /// `call.*`, `location.sharing.*` and anything unknown, with `data` verbatim.
    Other {
        event_type: String,
        data: Value,
    },
}

/// One message event, normalized so callers never care which payload version carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageEvent {
    pub id: String,
    pub chat_id: String,
    pub is_group: Option<bool>,
    pub direction: Direction,
    /// `sender_handle` (2026-02-03) / `from_handle` (2025-01-01).
    pub sender: Option<ChatHandle>,
    /// `sender_handle.is_me` (2026-02-03) / `is_from_me` (2025-01-01).
    pub sender_is_me: bool,
    /// Your line: `chat.owner_handle.handle` (2026-02-03); in 2025-01-01 `recipient_handle`
    /// on messages to you and `from_handle` on messages from you.
    pub owner_handle: Option<String>,
    pub service: Option<ServiceType>,
    pub parts: Vec<WebhookPart>,
    pub reply_to: Option<ReplyTo>,
    pub sent_at: Option<String>,
    pub delivered_at: Option<String>,
    pub read_at: Option<String>,
    /// Echo of `message.idempotency_key` from the send that created this message.
    pub idempotency_key: Option<String>,
}

impl MessageEvent {
    /// True for your own messages (outbound, or sent by your line). A bot must ignore these as
    /// echoes, or it would answer itself forever.
    pub fn is_own(&self) -> bool {
        self.direction == Direction::Outbound || self.sender_is_me
    }

    /// The text parts joined by `"\n"`.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .parts
            .iter()
            .filter_map(|p| match p {
                WebhookPart::Text { value } => Some(value.as_str()),
                _ => None,
            })
            .collect();
        texts.join("\n")
    }
}

/// A message part as webhooks carry it (no `reactions`).
///
/// A part of an unknown type, or a known type that does not parse, is kept as `Unknown` rather
/// than rejecting the event: the text next to an odd attachment must still get through.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookPart {
    Text {
        value: String,
    },
    Media {
        id: String,
        filename: String,
        mime_type: String,
        size_bytes: u64,
        url: String,
    },
    Link {
        value: String,
    },
    /// The whole part object, `type` included.
    IMessageApp {
        raw: Value,
    },
    Unknown(Value),
}

#[derive(Deserialize)]
struct MediaWire {
    #[serde(default)]
    id: String,
    #[serde(default)]
    filename: String,
    #[serde(default)]
    mime_type: String,
    #[serde(default)]
    size_bytes: u64,
    #[serde(default)]
    url: String,
}

impl WebhookPart {
    /// A text part.
    pub fn text(value: impl Into<String>) -> Self {
        Self::Text {
            value: value.into(),
        }
    }

    /// Reads one part object; never fails (see the type's docs).
    pub fn from_value(value: Value) -> Self {
        let string_value = |v: &Value| v.get("value").and_then(Value::as_str).map(str::to_owned);
        match value.get("type").and_then(Value::as_str) {
            Some("text") => match string_value(&value) {
                Some(value) => Self::Text { value },
                None => Self::Unknown(value),
            },
            Some("link") => match string_value(&value) {
                Some(value) => Self::Link { value },
                None => Self::Unknown(value),
            },
            Some("media") => match parse_or_raw::<MediaWire>(value) {
                Ok(m) => Self::Media {
                    id: m.id,
                    filename: m.filename,
                    mime_type: m.mime_type,
                    size_bytes: m.size_bytes,
                    url: m.url,
                },
                Err(raw) => Self::Unknown(raw),
            },
            Some("imessage_app") => Self::IMessageApp { raw: value },
            _ => Self::Unknown(value),
        }
    }

    /// The part as webhook JSON.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Text { value } => serde_json::json!({"type": "text", "value": value}),
            Self::Media {
                id,
                filename,
                mime_type,
                size_bytes,
                url,
            } => serde_json::json!({
                "type": "media", "id": id, "filename": filename, "mime_type": mime_type,
                "size_bytes": size_bytes, "url": url,
            }),
            Self::Link { value } => serde_json::json!({"type": "link", "value": value}),
            Self::IMessageApp { raw } => raw.clone(),
            Self::Unknown(raw) => raw.clone(),
        }
    }
}

impl Serialize for WebhookPart {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for WebhookPart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_value(Value::deserialize(d)?))
    }
}

/// What webhooks carry for an API part: the same, minus `reactions`.
impl From<&PartResponse> for WebhookPart {
    fn from(part: &PartResponse) -> Self {
        match part {
            PartResponse::Text(t) => Self::Text {
                value: t.value.clone(),
            },
            PartResponse::Media(m) => Self::Media {
                id: m.id.clone(),
                filename: m.filename.clone(),
                mime_type: m.mime_type.clone(),
                size_bytes: m.size_bytes,
                url: m.url.clone(),
            },
            PartResponse::Link(l) => Self::Link {
                value: l.value.clone(),
            },
            PartResponse::IMessageApp(_) => {
                let mut raw = serde_json::to_value(part).unwrap_or(Value::Null);
                if let Some(obj) = raw.as_object_mut() {
                    obj.remove("reactions");
                }
                Self::IMessageApp { raw }
            }
            PartResponse::Unknown(raw) => Self::Unknown(raw.clone()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Data of the non-message events (the same in both versions)
// ---------------------------------------------------------------------------------------------

/// `message.failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageFailed {
    /// 3007 (retries exhausted), 4001 (delivery failed), 4005 (unsupported by recipient), …
    pub code: i64,
    #[serde(default)]
    pub failed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The `chat` object of 2026-02-03 message events and of `message.edited`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventChat {
    pub id: String,
    #[serde(default)]
    pub health_status: Option<HealthStatus>,
    #[serde(default)]
    pub is_group: Option<bool>,
    /// Your line (`is_me: true`).
    #[serde(default)]
    pub owner_handle: Option<ChatHandle>,
}

/// The edited part of `message.edited`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditedPart {
    pub index: u32,
    pub text: String,
}

/// `message.edited`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEdited {
    pub id: String,
    pub chat: EventChat,
    pub direction: Direction,
    #[serde(default)]
    pub edited_at: String,
    pub part: EditedPart,
    #[serde(default)]
    pub sender_handle: Option<ChatHandle>,
}

/// `reaction.added` / `reaction.removed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionEvent {
    /// True for your own reactions: ignore them as echoes.
    pub is_from_me: bool,
    pub reaction_type: ReactionType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_emoji: Option<String>,
    /// Deprecated: the reactor's phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_handle: Option<ChatHandle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reacted_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticker: Option<Sticker>,
}

/// `participant.added` / `participant.removed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantEvent {
    /// Deprecated but required: the participant's phone or email.
    pub handle: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<ChatHandle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    /// Set on `participant.added`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_at: Option<String>,
    /// Set on `participant.removed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<String>,
}

/// `chat.group_name_updated` / `chat.group_icon_updated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupUpdate {
    pub chat_id: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default)]
    pub old_value: Option<String>,
    /// `None` (JSON `null`) = the name or icon was removed.
    #[serde(default)]
    pub new_value: Option<String>,
    #[serde(default)]
    pub changed_by_handle: Option<ChatHandle>,
}

/// `chat.group_name_update_failed` / `chat.group_icon_update_failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupUpdateFailed {
    pub chat_id: String,
    pub error_code: i64,
    #[serde(default)]
    pub failed_at: String,
}

/// `phone_number.status_updated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumberStatus {
    pub phone_number: String,
    #[serde(default)]
    pub changed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<PhoneNumberState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_status: Option<PhoneNumberState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_reputation: Option<HealthLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_reputation: Option<HealthLevel>,
    /// Deprecated twin of `previous_reputation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_health_status: Option<HealthLevel>,
    /// Deprecated twin of `new_reputation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_health_status: Option<HealthLevel>,
}

#[derive(Serialize, Deserialize)]
struct TypingData {
    chat_id: String,
}

// ---------------------------------------------------------------------------------------------
// Message event wire shapes
// ---------------------------------------------------------------------------------------------

/// `message.*` data, 2026-02-03 (`MessageEventV2` in the SDK).
#[derive(Serialize, Deserialize)]
struct MessageDataV2 {
    id: String,
    chat: EventChat,
    #[serde(default)]
    direction: Option<Direction>,
    #[serde(default)]
    sender_handle: Option<ChatHandle>,
    #[serde(default)]
    service: Option<ServiceType>,
    #[serde(default, deserialize_with = "null_as_default")]
    parts: Vec<WebhookPart>,
    #[serde(default)]
    effect: Option<MessageEffect>,
    #[serde(default)]
    reply_to: Option<ReplyTo>,
    #[serde(default)]
    sent_at: Option<String>,
    #[serde(default)]
    delivered_at: Option<String>,
    #[serde(default)]
    read_at: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    preferred_service: Option<ServiceType>,
}

/// The nested `message` of 2025-01-01 `message.*` data (`MessagePayload` in the SDK).
#[derive(Default, Serialize, Deserialize)]
struct MessageBodyV1 {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    parts: Vec<WebhookPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    effect: Option<MessageEffect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_to: Option<ReplyTo>,
    #[serde(default)]
    is_delivered: bool,
    #[serde(default)]
    is_read: bool,
    #[serde(default)]
    sent_at: Option<String>,
    #[serde(default)]
    delivered_at: Option<String>,
    #[serde(default)]
    read_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    updated_at: Option<String>,
}

/// `message.*` data, 2025-01-01.
#[derive(Serialize, Deserialize)]
struct MessageDataV1 {
    chat_id: String,
    #[serde(default)]
    is_group: Option<bool>,
    #[serde(default)]
    idempotency_key: Option<String>,
    /// Deprecated: the sender's phone.
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    from_handle: Option<ChatHandle>,
    #[serde(default)]
    is_from_me: Option<bool>,
    /// Your line on received messages, `null` on sent ones.
    #[serde(default)]
    recipient_handle: Option<ChatHandle>,
    #[serde(default)]
    recipient_phone: Option<String>,
    #[serde(default)]
    received_at: Option<String>,
    #[serde(default)]
    service: Option<ServiceType>,
    #[serde(default)]
    preferred_service: Option<ServiceType>,
    #[serde(default)]
    message: Option<MessageBodyV1>,
    /// Added on `message.delivered` / `message.read`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
    /// Added on `message.delivered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delivered_at: Option<String>,
    /// Added on `message.read`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    read_at: Option<String>,
}

fn invalid(event_type: &str, field: &str, message: impl Into<String>) -> EventError {
    EventError::InvalidData {
        event_type: event_type.to_owned(),
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Names the offending field: serde reports a missing field at its parent's path, with the
/// name only in the message, so the two are joined here.
fn field_of(path: &str, message: &str) -> String {
    let base = if path == "." { "" } else { path };
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (missing, base.is_empty()) {
        (Some(name), true) => name.to_owned(),
        (Some(name), false) => format!("{base}.{name}"),
        (None, true) => "data".to_owned(),
        (None, false) => base.to_owned(),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Decodes a known event's `data`, reporting the path of the first field that does not fit.
fn decode<T: DeserializeOwned>(event_type: &str, data: Value) -> Result<T, EventError> {
    if !data.is_object() {
        return Err(invalid(
            event_type,
            "data",
            format!("expected an object, got {}", json_kind(&data)),
        ));
    }
    serde_path_to_error::deserialize(data).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        invalid(event_type, &field_of(&path, &message), message)
    })
}

fn is_v2_shape(data: &Value) -> bool {
    data.get("direction").is_some() || data.get("chat").is_some_and(Value::is_object)
}

fn parse_message(event_type: &str, version: &str, data: Value) -> Result<MessageEvent, EventError> {
    let v2 = match version {
        WEBHOOK_VERSION_2026 => true,
        WEBHOOK_VERSION_2025 => false,
        // A version newer than this crate: go by the payload's shape.
        _ => is_v2_shape(&data),
    };
    if v2 {
        parse_message_v2(event_type, data)
    } else {
        parse_message_v1(event_type, data)
    }
}

fn parse_message_v2(event_type: &str, data: Value) -> Result<MessageEvent, EventError> {
    let d: MessageDataV2 = decode(event_type, data)?;
    let sender_is_me = d.sender_handle.as_ref().is_some_and(ChatHandle::is_me);
    // `direction` is required; if a payload ever lacks it, `sender_handle.is_me` says the same.
    let direction = match (d.direction, d.sender_handle.as_ref().and_then(|h| h.is_me)) {
        (Some(direction), _) => direction,
        (None, Some(true)) => Direction::Outbound,
        (None, Some(false)) => Direction::Inbound,
        (None, None) => {
            return Err(invalid(
                event_type,
                "direction",
                "missing field `direction`",
            ));
        }
    };
    Ok(MessageEvent {
        id: d.id,
        chat_id: d.chat.id,
        is_group: d.chat.is_group,
        direction,
        sender: d.sender_handle,
        sender_is_me,
        owner_handle: d.chat.owner_handle.map(|h| h.handle),
        service: d.service,
        parts: d.parts,
        reply_to: d.reply_to,
        sent_at: d.sent_at,
        delivered_at: d.delivered_at,
        read_at: d.read_at,
        idempotency_key: d.idempotency_key,
    })
}

fn parse_message_v1(event_type: &str, data: Value) -> Result<MessageEvent, EventError> {
    let d: MessageDataV1 = decode(event_type, data)?;
    let body = d.message.unwrap_or_default();
    let id = body
        .id
        .or(d.message_id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid(event_type, "message.id", "missing field `id`"))?;
    let is_from_me = d
        .is_from_me
        .or_else(|| d.from_handle.as_ref().and_then(|h| h.is_me))
        .ok_or_else(|| invalid(event_type, "is_from_me", "missing field `is_from_me`"))?;
    let sender_is_me = is_from_me || d.from_handle.as_ref().is_some_and(ChatHandle::is_me);
    // Our line is the recipient of what we receive and the sender of what we send.
    let owner_handle = if is_from_me {
        d.from_handle.as_ref().map(|h| h.handle.clone()).or(d.from)
    } else {
        d.recipient_handle
            .as_ref()
            .map(|h| h.handle.clone())
            .or(d.recipient_phone)
    };
    Ok(MessageEvent {
        id,
        chat_id: d.chat_id,
        is_group: d.is_group,
        direction: if is_from_me {
            Direction::Outbound
        } else {
            Direction::Inbound
        },
        sender: d.from_handle,
        sender_is_me,
        owner_handle,
        service: d.service,
        parts: body.parts,
        reply_to: body.reply_to,
        sent_at: body.sent_at,
        delivered_at: body.delivered_at.or(d.delivered_at),
        read_at: body.read_at.or(d.read_at),
        idempotency_key: d.idempotency_key,
    })
}

/// Reads a required envelope string.
fn envelope_field(obj: &Map<String, Value>, name: &'static str) -> Result<String, EventError> {
    obj.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(EventError::MissingEnvelopeField(name))
}

/// Parses a raw webhook body (verify its signature first) into an [`Event`].
pub fn parse_event(body: &[u8]) -> Result<Event, EventError> {
    let text = std::str::from_utf8(body).map_err(|e| EventError::NotUtf8(e.valid_up_to()))?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| EventError::InvalidJson(e.to_string()))?;
    let Value::Object(mut obj) = value else {
        return Err(EventError::NotAnObject);
    };
    let envelope = Envelope {
        api_version: envelope_field(&obj, "api_version")?,
        webhook_version: envelope_field(&obj, "webhook_version")?,
        event_type: envelope_field(&obj, "event_type")?,
        event_id: envelope_field(&obj, "event_id")?,
        created_at: envelope_field(&obj, "created_at")?,
        trace_id: obj
            .get("trace_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        partner_id: obj
            .get("partner_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let data = obj.remove("data").unwrap_or(Value::Null);
    let payload = parse_payload(&envelope.event_type, &envelope.webhook_version, data)?;
    Ok(Event { envelope, payload })
}

fn parse_payload(event_type: &str, version: &str, data: Value) -> Result<EventPayload, EventError> {
    if let Some(kind) = MessageEventKind::from_event_type(event_type) {
        let message = parse_message(event_type, version, data)?;
        return Ok(EventPayload::Message { kind, message });
    }
    let et = event_type;
    Ok(match event_type {
        "message.failed" => EventPayload::MessageFailed(decode(et, data)?),
        "message.edited" => EventPayload::MessageEdited(decode(et, data)?),
        "reaction.added" => EventPayload::Reaction {
            added: true,
            reaction: decode(et, data)?,
        },
        "reaction.removed" => EventPayload::Reaction {
            added: false,
            reaction: decode(et, data)?,
        },
        "participant.added" => EventPayload::ParticipantAdded(decode(et, data)?),
        "participant.removed" => EventPayload::ParticipantRemoved(decode(et, data)?),
        "chat.created" => EventPayload::ChatCreated(decode(et, data)?),
        "chat.group_name_updated" => EventPayload::GroupNameUpdated(decode(et, data)?),
        "chat.group_icon_updated" => EventPayload::GroupIconUpdated(decode(et, data)?),
        "chat.group_name_update_failed" => EventPayload::GroupNameUpdateFailed(decode(et, data)?),
        "chat.group_icon_update_failed" => EventPayload::GroupIconUpdateFailed(decode(et, data)?),
        "chat.typing_indicator.started" | "chat.typing_indicator.stopped" => {
            let t: TypingData = decode(et, data)?;
            EventPayload::TypingIndicator {
                started: et.ends_with("started"),
                chat_id: t.chat_id,
            }
        }
        "phone_number.status_updated" => EventPayload::PhoneNumberStatusUpdated(decode(et, data)?),
        _ => EventPayload::Other {
            event_type: event_type.to_owned(),
            data,
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Building events (for the simulator)
// ---------------------------------------------------------------------------------------------

/// Everything needed to emit one message as `message.sent/received/delivered/read` in either
/// payload version. The simulator fills it from its stored chat and message.
///
/// Keep it consistent: for an outbound message `sender` is your line (`is_me: Some(true)`, the
/// same handle as `owner`); for an inbound one `sender` is the other party (`is_me: Some(false)`).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageEventSpec {
    pub id: String,
    pub chat_id: String,
    pub is_group: bool,
    pub health_status: HealthStatus,
    pub direction: Direction,
    pub sender: ChatHandle,
    /// Your line in this chat.
    pub owner: ChatHandle,
    pub service: ServiceType,
    pub preferred_service: Option<ServiceType>,
    pub parts: Vec<WebhookPart>,
    pub effect: Option<MessageEffect>,
    pub reply_to: Option<ReplyTo>,
    pub idempotency_key: Option<String>,
    /// When the message was created (2025-01-01 `message.created_at`).
    pub created_at: String,
    pub sent_at: Option<String>,
    pub delivered_at: Option<String>,
    pub read_at: Option<String>,
}

impl MessageEventSpec {
    /// The timestamps an event of `kind` carries (§4.6): `sent`/`received` have only
    /// `sent_at`, `delivered` adds `delivered_at`, `read` has all three. So one stored message
    /// yields a correct body for each of the four events.
    fn timestamps(
        &self,
        kind: MessageEventKind,
    ) -> (Option<String>, Option<String>, Option<String>) {
        let sent = self.sent_at.clone();
        match kind {
            MessageEventKind::Sent | MessageEventKind::Received => (sent, None, None),
            MessageEventKind::Delivered => (sent, self.delivered_at.clone(), None),
            MessageEventKind::Read => (sent, self.delivered_at.clone(), self.read_at.clone()),
        }
    }

    /// What [`parse_event`] gives back for an event of `kind` built from this spec.
    pub fn normalized(&self, kind: MessageEventKind) -> MessageEvent {
        let (sent_at, delivered_at, read_at) = self.timestamps(kind);
        MessageEvent {
            id: self.id.clone(),
            chat_id: self.chat_id.clone(),
            is_group: Some(self.is_group),
            direction: self.direction,
            sender: Some(self.sender.clone()),
            sender_is_me: self.sender.is_me(),
            owner_handle: Some(self.owner.handle.clone()),
            service: Some(self.service.clone()),
            parts: self.parts.clone(),
            reply_to: self.reply_to.clone(),
            sent_at,
            delivered_at,
            read_at,
            idempotency_key: self.idempotency_key.clone(),
        }
    }

    fn data_v2(&self, kind: MessageEventKind) -> MessageDataV2 {
        let (sent_at, delivered_at, read_at) = self.timestamps(kind);
        MessageDataV2 {
            id: self.id.clone(),
            chat: EventChat {
                id: self.chat_id.clone(),
                health_status: Some(self.health_status.clone()),
                is_group: Some(self.is_group),
                owner_handle: Some(self.owner.clone()),
            },
            direction: Some(self.direction),
            sender_handle: Some(self.sender.clone()),
            service: Some(self.service.clone()),
            parts: self.parts.clone(),
            effect: self.effect.clone(),
            reply_to: self.reply_to.clone(),
            sent_at,
            delivered_at,
            read_at,
            idempotency_key: self.idempotency_key.clone(),
            preferred_service: self.preferred_service.clone(),
        }
    }

    fn data_v1(&self, kind: MessageEventKind) -> MessageDataV1 {
        let (sent_at, delivered_at, read_at) = self.timestamps(kind);
        let is_from_me = self.direction == Direction::Outbound;
        let recipient = (!is_from_me).then(|| self.owner.clone());
        let updated_at = read_at
            .clone()
            .or_else(|| delivered_at.clone())
            .or_else(|| sent_at.clone())
            .unwrap_or_else(|| self.created_at.clone());
        MessageDataV1 {
            chat_id: self.chat_id.clone(),
            is_group: Some(self.is_group),
            idempotency_key: self.idempotency_key.clone(),
            from: Some(self.sender.handle.clone()),
            from_handle: Some(self.sender.clone()),
            is_from_me: Some(is_from_me),
            recipient_phone: recipient.as_ref().map(|h| h.handle.clone()),
            recipient_handle: recipient,
            received_at: if is_from_me { None } else { sent_at.clone() },
            service: Some(self.service.clone()),
            preferred_service: self.preferred_service.clone(),
            message_id: matches!(kind, MessageEventKind::Delivered | MessageEventKind::Read)
                .then(|| self.id.clone()),
            delivered_at: (kind == MessageEventKind::Delivered)
                .then(|| delivered_at.clone())
                .flatten(),
            read_at: (kind == MessageEventKind::Read)
                .then(|| read_at.clone())
                .flatten(),
            message: Some(MessageBodyV1 {
                id: Some(self.id.clone()),
                parts: self.parts.clone(),
                effect: self.effect.clone(),
                reply_to: self.reply_to.clone(),
                is_delivered: delivered_at.is_some(),
                is_read: read_at.is_some(),
                sent_at,
                delivered_at,
                read_at,
                created_at: Some(self.created_at.clone()),
                updated_at: Some(updated_at),
            }),
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Value, EventError> {
    serde_json::to_value(value).map_err(|e| EventError::Build(e.to_string()))
}

/// A whole webhook body: the envelope's fields plus `data`.
pub fn event_json(envelope: &Envelope, data: Value) -> Value {
    let mut obj = Map::new();
    let s = |v: &str| Value::String(v.to_owned());
    obj.insert("api_version".into(), s(&envelope.api_version));
    obj.insert("webhook_version".into(), s(&envelope.webhook_version));
    obj.insert("event_type".into(), s(&envelope.event_type));
    obj.insert("event_id".into(), s(&envelope.event_id));
    obj.insert("created_at".into(), s(&envelope.created_at));
    if let Some(trace_id) = &envelope.trace_id {
        obj.insert("trace_id".into(), s(trace_id));
    }
    if let Some(partner_id) = &envelope.partner_id {
        obj.insert("partner_id".into(), s(partner_id));
    }
    obj.insert("data".into(), data);
    Value::Object(obj)
}

/// The `data` of a `message.*` event of `kind`, in payload `version`
/// ([`WEBHOOK_VERSION_2025`] or [`WEBHOOK_VERSION_2026`]).
pub fn message_event_data(
    version: &str,
    kind: MessageEventKind,
    spec: &MessageEventSpec,
) -> Result<Value, EventError> {
    match version {
        WEBHOOK_VERSION_2026 => to_json(&spec.data_v2(kind)),
        WEBHOOK_VERSION_2025 => to_json(&spec.data_v1(kind)),
        other => Err(EventError::UnsupportedVersion(other.to_owned())),
    }
}

/// A whole `message.*` webhook body with a fresh [`Envelope`] (set `partner_id` yourself with
/// [`event_json`] + [`message_event_data`] if you need one).
pub fn message_event_json(
    version: &str,
    kind: MessageEventKind,
    spec: &MessageEventSpec,
) -> Result<Value, EventError> {
    let data = message_event_data(version, kind, spec)?;
    Ok(event_json(&Envelope::new(version, kind.event_type()), data))
}

impl EventPayload {
    /// The `event_type` this payload is sent as.
    pub fn event_type(&self) -> &str {
        match self {
            Self::Message { kind, .. } => kind.event_type(),
            Self::MessageFailed(_) => "message.failed",
            Self::MessageEdited(_) => "message.edited",
            Self::Reaction { added: true, .. } => "reaction.added",
            Self::Reaction { added: false, .. } => "reaction.removed",
            Self::ParticipantAdded(_) => "participant.added",
            Self::ParticipantRemoved(_) => "participant.removed",
            Self::ChatCreated(_) => "chat.created",
            Self::GroupNameUpdated(_) => "chat.group_name_updated",
            Self::GroupIconUpdated(_) => "chat.group_icon_updated",
            Self::GroupNameUpdateFailed(_) => "chat.group_name_update_failed",
            Self::GroupIconUpdateFailed(_) => "chat.group_icon_update_failed",
            Self::TypingIndicator { started: true, .. } => "chat.typing_indicator.started",
            Self::TypingIndicator { started: false, .. } => "chat.typing_indicator.stopped",
            Self::PhoneNumberStatusUpdated(_) => "phone_number.status_updated",
            Self::Other { event_type, .. } => event_type,
        }
    }

    /// The `data` JSON of a non-message payload (these are the same in both versions).
    /// `Message` payloads hold only the normalized view; build those from a
    /// [`MessageEventSpec`] with [`message_event_data`] instead.
    pub fn data_json(&self) -> Result<Value, EventError> {
        match self {
            Self::Message { .. } => Err(EventError::Build(
                "message.* data is built from a MessageEventSpec with message_event_data".into(),
            )),
            Self::MessageFailed(d) => to_json(d),
            Self::MessageEdited(d) => to_json(d),
            Self::Reaction { reaction, .. } => to_json(reaction),
            Self::ParticipantAdded(d) | Self::ParticipantRemoved(d) => to_json(d),
            Self::ChatCreated(chat) => {
                let mut v = to_json(chat)?;
                // chat.created carries the Chat without these two fields.
                if let Some(obj) = v.as_object_mut() {
                    obj.remove("is_archived");
                    obj.remove("group_chat_icon");
                }
                Ok(v)
            }
            Self::GroupNameUpdated(d) | Self::GroupIconUpdated(d) => to_json(d),
            Self::GroupNameUpdateFailed(d) | Self::GroupIconUpdateFailed(d) => to_json(d),
            Self::TypingIndicator { chat_id, .. } => to_json(&TypingData {
                chat_id: chat_id.clone(),
            }),
            Self::PhoneNumberStatusUpdated(d) => to_json(d),
            Self::Other { data, .. } => Ok(data.clone()),
        }
    }
}

/// A whole webhook body for a non-message payload, with a fresh [`Envelope`].
pub fn payload_event_json(version: &str, payload: &EventPayload) -> Result<Value, EventError> {
    let data = payload.data_json()?;
    Ok(event_json(
        &Envelope::new(version, payload.event_type()),
        data,
    ))
}
