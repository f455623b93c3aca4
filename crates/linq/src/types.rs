//! Serde types for the Linq Partner API v3 data model (linq-v3.md §2–§3): chats, handles,
//! messages and their parts, reactions, attachments, webhook subscriptions and the error body.
//!
//! The same types serve two sides:
//! * the client *parses* them from real Linq responses, so everything the contract marks optional
//!   or nullable is an `Option`, and most other fields fall back to a default when missing;
//! * the simulator *serializes* them, so response types write every field, with `None` as
//!   `null` (the contract shows e.g. `"sent_at": null` and `"reactions": null`), while request
//!   types leave unset optional fields out entirely.
//!
//! Timestamps stay `String`s on the wire (RFC 3339 at any precision and offset); use
//! [`parse_timestamp`] to read one and [`format_timestamp`] to write one.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses an RFC 3339 timestamp with any fractional precision (none to nanoseconds) and any
/// offset (`Z`, `+00:00`, `-05:00`). Returns `None` for anything else, including `""`.
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).ok()
}

/// Formats a timestamp the way Linq emits them: RFC 3339 in UTC with a `Z` suffix.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    // Formatting a UTC datetime with a four-digit year cannot fail; the fallback keeps this
    // function total instead of panicking on an out-of-range year.
    utc.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// The current time as a Linq timestamp.
pub fn now_timestamp() -> String {
    format_timestamp(OffsetDateTime::now_utc())
}

/// Reads a field that the contract allows to be `null` or missing as its `Default`
/// (used for arrays, where "no items" and `null` mean the same to every caller).
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Reads a field whose absence and `null` mean different things (e.g. `phone_numbers` in a
/// subscription update: absent = unchanged, `null` = clear). Use with `#[serde(default)]`.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Defines a string enum with an `Other(String)` fallback, so that a value Linq adds later still
/// parses (and round-trips verbatim) instead of failing the whole payload. `Default` is
/// `Other("")`: it is only used when a payload leaves a required field out.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this crate does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// Every known value, in contract order.
            pub const KNOWN: &'static [$name] = &[ $( $name::$variant ),+ ];

            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::Other(s) => s,
                }
            }

            /// Maps a wire string to a variant; unknown strings become `Other`.
            pub fn from_wire(s: &str) -> Self {
                match s {
                    $( $text => Self::$variant, )+
                    other => Self::Other(other.to_owned()),
                }
            }

            /// False for `Other(..)`.
            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Other(_))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::Other(String::new())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self::from_wire(s))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(Self::from_wire(&s))
            }
        }
    };
}

string_enum! {
    /// The service a chat, handle or message uses.
    ServiceType {
        IMessage => "iMessage",
        Sms => "SMS",
        Rcs => "RCS",
    }
}

string_enum! {
    /// Where a message is in its lifecycle (`delivery_status`).
    DeliveryStatus {
        Pending => "pending",
        Queued => "queued",
        Sent => "sent",
        Delivered => "delivered",
        Received => "received",
        Read => "read",
        Failed => "failed",
    }
}

string_enum! {
    /// `health_status.status` of a chat; also a phone number's reputation (which never takes
    /// `OPTED_OUT`).
    HealthLevel {
        Healthy => "HEALTHY",
        AtRisk => "AT_RISK",
        Critical => "CRITICAL",
        OptedOut => "OPTED_OUT",
    }
}

string_enum! {
    /// A participant's membership state in a chat.
    HandleStatus {
        Active => "active",
        Left => "left",
        Removed => "removed",
    }
}

string_enum! {
    /// A tapback type.
    ReactionType {
        Love => "love",
        Like => "like",
        Dislike => "dislike",
        Laugh => "laugh",
        Emphasize => "emphasize",
        Question => "question",
        Custom => "custom",
        Sticker => "sticker",
    }
}

string_enum! {
    /// Whether a reaction request adds or removes the reaction.
    ReactionOperation {
        Add => "add",
        Remove => "remove",
    }
}

string_enum! {
    /// The kind of message effect.
    EffectType {
        Screen => "screen",
        Bubble => "bubble",
    }
}

string_enum! {
    /// A static text decoration style (iMessage only).
    TextStyle {
        Bold => "bold",
        Italic => "italic",
        Strikethrough => "strikethrough",
        Underline => "underline",
    }
}

string_enum! {
    /// An animated text decoration (iMessage only).
    TextAnimation {
        Big => "big",
        Small => "small",
        Shake => "shake",
        Nod => "nod",
        Explode => "explode",
        Ripple => "ripple",
        Bloom => "bloom",
        Jitter => "jitter",
    }
}

string_enum! {
    /// Deprecated attachment processing state.
    AttachmentStatus {
        Pending => "pending",
        Complete => "complete",
        Failed => "failed",
    }
}

string_enum! {
    /// A phone number's sending status (`phone_number.status_updated`).
    PhoneNumberState {
        Active => "ACTIVE",
        Flagged => "FLAGGED",
    }
}

string_enum! {
    /// Why `POST /v3/messages` picked the line it picked.
    FromSelectionReason {
        ReusedActiveChat => "reused_active_chat",
        NewBestNumber => "new_best_number",
        FailoverFlagged => "failover_flagged",
    }
}

string_enum! {
    /// Every webhook event type one can subscribe to (§2.5).
    WebhookEventType {
        MessageSent => "message.sent",
        MessageReceived => "message.received",
        MessageRead => "message.read",
        MessageDelivered => "message.delivered",
        MessageFailed => "message.failed",
        MessageEdited => "message.edited",
        ReactionAdded => "reaction.added",
        ReactionRemoved => "reaction.removed",
        ParticipantAdded => "participant.added",
        ParticipantRemoved => "participant.removed",
        ChatCreated => "chat.created",
        ChatGroupNameUpdated => "chat.group_name_updated",
        ChatGroupIconUpdated => "chat.group_icon_updated",
        ChatGroupNameUpdateFailed => "chat.group_name_update_failed",
        ChatGroupIconUpdateFailed => "chat.group_icon_update_failed",
        ChatTypingIndicatorStarted => "chat.typing_indicator.started",
        ChatTypingIndicatorStopped => "chat.typing_indicator.stopped",
        PhoneNumberStatusUpdated => "phone_number.status_updated",
        CallInitiated => "call.initiated",
        CallRinging => "call.ringing",
        CallAnswered => "call.answered",
        CallEnded => "call.ended",
        CallFailed => "call.failed",
        CallDeclined => "call.declined",
        CallNoAnswer => "call.no_answer",
        LocationSharingStarted => "location.sharing.started",
        LocationSharingStopped => "location.sharing.stopped",
    }
}

// ---------------------------------------------------------------------------------------------
// Shared objects (§3.1)
// ---------------------------------------------------------------------------------------------

/// One participant of one chat. Its `id` is per membership: the same phone number has a
/// different handle id in every chat.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChatHandle {
    #[serde(default)]
    pub id: String,
    /// E.164 phone number or email address.
    pub handle: String,
    #[serde(default)]
    pub joined_at: String,
    #[serde(default)]
    pub service: ServiceType,
    /// True for your own line.
    #[serde(default)]
    pub is_me: Option<bool>,
    #[serde(default)]
    pub left_at: Option<String>,
    #[serde(default)]
    pub status: Option<HandleStatus>,
}

impl ChatHandle {
    /// True only when the payload says so (`is_me: true`).
    pub fn is_me(&self) -> bool {
        self.is_me == Some(true)
    }
}

/// A chat's health (`health_status`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HealthStatus {
    #[serde(default)]
    pub status: HealthLevel,
    #[serde(default)]
    pub doc_url: String,
    #[serde(default)]
    pub updated_at: String,
}

/// A chat as returned by `GET /v3/chats/{id}` and the chat list, and as carried by
/// `chat.created` (which leaves out `is_archived` and `group_chat_icon`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Chat {
    pub id: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    /// Defaults (server side) to the comma-separated handles until a group is renamed.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Every participant, including your own line (`is_me: true`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub handles: Vec<ChatHandle>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub health_status: HealthStatus,
    /// Deprecated.
    #[serde(default)]
    pub is_archived: bool,
    #[serde(default)]
    pub is_group: bool,
    #[serde(default)]
    pub group_chat_icon: Option<String>,
    #[serde(default)]
    pub service: Option<ServiceType>,
}

impl Chat {
    /// Your own line in this chat, if the handles say which one it is.
    pub fn own_handle(&self) -> Option<&ChatHandle> {
        self.handles.iter().find(|h| h.is_me())
    }

    /// Everyone in the chat except your own line.
    pub fn other_handles(&self) -> impl Iterator<Item = &ChatHandle> {
        self.handles.iter().filter(|h| !h.is_me())
    }
}

/// A message effect. Requests and current responses use `{type, name}`; the older spec used
/// `{screen_effect}` / `{bubble_effect}`, which are kept so the simulator can accept them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MessageEffect {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<EffectType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen_effect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bubble_effect: Option<String>,
}

impl MessageEffect {
    /// A full-screen effect such as `confetti`.
    pub fn screen(name: impl Into<String>) -> Self {
        Self {
            kind: Some(EffectType::Screen),
            name: Some(name.into()),
            ..Self::default()
        }
    }

    /// A bubble effect such as `slam`.
    pub fn bubble(name: impl Into<String>) -> Self {
        Self {
            kind: Some(EffectType::Bubble),
            name: Some(name.into()),
            ..Self::default()
        }
    }

    /// The current `{type, name}` form, translating the legacy fields if that is all there is.
    pub fn normalized(&self) -> Self {
        if self.kind.is_some() || self.name.is_some() {
            return Self {
                kind: self.kind.clone(),
                name: self.name.clone(),
                ..Self::default()
            };
        }
        if let Some(name) = &self.screen_effect {
            return Self::screen(name.clone());
        }
        if let Some(name) = &self.bubble_effect {
            return Self::bubble(name.clone());
        }
        Self::default()
    }
}

/// The message (and part) a message replies to. Both fields are optional in webhook payloads;
/// requests need `message_id`, and `part_index` defaults to 0 server side.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReplyTo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_index: Option<u32>,
}

impl ReplyTo {
    /// A reply to part `part_index` of `message_id`.
    pub fn new(message_id: impl Into<String>, part_index: u32) -> Self {
        Self {
            message_id: Some(message_id.into()),
            part_index: Some(part_index),
        }
    }
}

/// A styled or animated range of a text part. `range` is `[start, end)` in UTF-16 code units;
/// exactly one of `style` / `animation` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextDecoration {
    pub range: [u32; 2],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<TextStyle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub animation: Option<TextAnimation>,
}

/// A sticker attached to a reaction.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Sticker {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
}

/// A reaction on one part of a message, as listed in API responses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reaction {
    #[serde(default)]
    pub handle: ChatHandle,
    #[serde(default)]
    pub is_me: bool,
    #[serde(rename = "type", default)]
    pub kind: ReactionType,
    #[serde(default)]
    pub custom_emoji: Option<String>,
    #[serde(default)]
    pub sticker: Option<Sticker>,
}

/// The app behind an `imessage_app` part.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IMessageAppInfo {
    #[serde(default)]
    pub bundle_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub team_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_store_id: Option<i64>,
}

/// The card layout of an `imessage_app` part. At least one caption or `image_url` is required
/// in requests; webhooks carry only the four captions.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AppLayout {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcaption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trailing_caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trailing_subcaption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_subtitle: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Message parts in API responses (§3.2)
// ---------------------------------------------------------------------------------------------

/// A `text` part in an API response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TextPartResponse {
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub reactions: Option<Vec<Reaction>>,
    #[serde(default)]
    pub text_decorations: Option<Vec<TextDecoration>>,
}

/// A `media` part in an API response (`url` is presigned and short-lived).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MediaPartResponse {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub mime_type: String,
    #[serde(default)]
    pub size_bytes: u64,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub reactions: Option<Vec<Reaction>>,
}

/// A `link` part in an API response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LinkPartResponse {
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub reactions: Option<Vec<Reaction>>,
}

/// An `imessage_app` part in an API response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IMessageAppPartResponse {
    #[serde(default)]
    pub app: IMessageAppInfo,
    #[serde(default)]
    pub layout: AppLayout,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub fallback_text: Option<String>,
    #[serde(default)]
    pub reactions: Option<Vec<Reaction>>,
}

/// One part of a message in an API response, tagged by `"type"`.
///
/// A part whose type is unknown, or whose known shape does not parse, is kept verbatim as
/// `Unknown` rather than failing the whole message: one odd attachment must not lose the text
/// next to it.
#[derive(Debug, Clone, PartialEq)]
pub enum PartResponse {
    Text(TextPartResponse),
    Media(MediaPartResponse),
    Link(LinkPartResponse),
    IMessageApp(IMessageAppPartResponse),
    Unknown(Value),
}

impl PartResponse {
    /// A text part with no reactions and no decorations.
    pub fn text(value: impl Into<String>) -> Self {
        Self::Text(TextPartResponse {
            value: value.into(),
            reactions: None,
            text_decorations: None,
        })
    }

    /// The part's reactions, if it has any.
    pub fn reactions(&self) -> Option<&[Reaction]> {
        match self {
            Self::Text(p) => p.reactions.as_deref(),
            Self::Media(p) => p.reactions.as_deref(),
            Self::Link(p) => p.reactions.as_deref(),
            Self::IMessageApp(p) => p.reactions.as_deref(),
            Self::Unknown(_) => None,
        }
    }
}

/// Borrowed view used to serialize a known part with its `"type"` tag.
#[derive(Serialize)]
#[serde(tag = "type")]
enum TaggedPartRef<'a> {
    #[serde(rename = "text")]
    Text(&'a TextPartResponse),
    #[serde(rename = "media")]
    Media(&'a MediaPartResponse),
    #[serde(rename = "link")]
    Link(&'a LinkPartResponse),
    #[serde(rename = "imessage_app")]
    IMessageApp(&'a IMessageAppPartResponse),
}

impl Serialize for PartResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(p) => TaggedPartRef::Text(p).serialize(s),
            Self::Media(p) => TaggedPartRef::Media(p).serialize(s),
            Self::Link(p) => TaggedPartRef::Link(p).serialize(s),
            Self::IMessageApp(p) => TaggedPartRef::IMessageApp(p).serialize(s),
            Self::Unknown(v) => v.serialize(s),
        }
    }
}

/// Parses `value` as `T`, or gives back the raw value when it does not fit.
pub(crate) fn parse_or_raw<T: DeserializeOwned>(value: Value) -> Result<T, Value> {
    match T::deserialize(&value) {
        Ok(t) => Ok(t),
        Err(_) => Err(value),
    }
}

impl<'de> Deserialize<'de> for PartResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let tag = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let part = match tag {
            "text" => parse_or_raw(value).map(Self::Text),
            "media" => parse_or_raw(value).map(Self::Media),
            "link" => parse_or_raw(value).map(Self::Link),
            "imessage_app" => parse_or_raw(value).map(Self::IMessageApp),
            _ => Err(value),
        };
        Ok(part.unwrap_or_else(Self::Unknown))
    }
}

// ---------------------------------------------------------------------------------------------
// Messages returned by the API (§3.2)
// ---------------------------------------------------------------------------------------------

/// The message in create/send responses. Serialized with every field present (`sent_at: null`
/// while queued).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SentMessage {
    pub id: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub delivery_status: DeliveryStatus,
    /// Deprecated.
    #[serde(default)]
    pub is_read: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub parts: Vec<PartResponse>,
    #[serde(default)]
    pub sent_at: Option<String>,
    #[serde(default)]
    pub delivered_at: Option<String>,
    #[serde(default)]
    pub effect: Option<MessageEffect>,
    #[serde(default)]
    pub from_handle: Option<ChatHandle>,
    #[serde(default)]
    pub preferred_service: Option<ServiceType>,
    #[serde(default)]
    pub reply_to: Option<ReplyTo>,
    #[serde(default)]
    pub service: Option<ServiceType>,
}

/// A stored message (`GET /v3/messages/{id}`, lists, thread, edit).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    #[serde(default)]
    pub chat_id: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default)]
    pub delivery_status: DeliveryStatus,
    /// Deprecated.
    #[serde(default)]
    pub is_delivered: bool,
    /// True for messages your line sent.
    #[serde(default)]
    pub is_from_me: bool,
    /// Deprecated.
    #[serde(default)]
    pub is_read: bool,
    #[serde(default)]
    pub delivered_at: Option<String>,
    #[serde(default)]
    pub read_at: Option<String>,
    #[serde(default)]
    pub sent_at: Option<String>,
    #[serde(default)]
    pub effect: Option<MessageEffect>,
    /// Deprecated: the sender's phone number.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub from_handle: Option<ChatHandle>,
    /// `null` on the wire is read as no parts.
    #[serde(default, deserialize_with = "null_as_default")]
    pub parts: Vec<PartResponse>,
    #[serde(default)]
    pub preferred_service: Option<ServiceType>,
    #[serde(default)]
    pub service: Option<ServiceType>,
    #[serde(default)]
    pub reply_to: Option<ReplyTo>,
}

impl Message {
    /// The text parts joined by newlines.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .parts
            .iter()
            .filter_map(|p| match p {
                PartResponse::Text(t) => Some(t.value.as_str()),
                _ => None,
            })
            .collect();
        texts.join("\n")
    }
}

// ---------------------------------------------------------------------------------------------
// Message content in requests (§3.3)
// ---------------------------------------------------------------------------------------------

/// A `text` part to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextPart {
    /// Sent verbatim: no markdown.
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_decorations: Option<Vec<TextDecoration>>,
}

/// A `media` part to send: exactly one of `url` (public HTTPS, ≤10 MB) or `attachment_id`
/// (pre-uploaded, ≤100 MB).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MediaPart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_id: Option<String>,
}

impl MediaPart {
    /// Media Linq fetches from a public URL.
    pub fn url(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            attachment_id: None,
        }
    }

    /// Media uploaded beforehand through `POST /v3/attachments`.
    pub fn attachment(attachment_id: impl Into<String>) -> Self {
        Self {
            url: None,
            attachment_id: Some(attachment_id.into()),
        }
    }
}

/// A `link` part to send; it must be the message's only part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkPart {
    pub value: String,
}

/// An `imessage_app` part to send; iMessage only, and the message's only part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IMessageAppPart {
    pub app: IMessageAppInfo,
    pub layout: AppLayout,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One part of a message to send, tagged by `"type"`. Unknown types are rejected when parsing
/// (the simulator answers them with a 400).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MessagePart {
    #[serde(rename = "text")]
    Text(TextPart),
    #[serde(rename = "media")]
    Media(MediaPart),
    #[serde(rename = "link")]
    Link(LinkPart),
    #[serde(rename = "imessage_app")]
    IMessageApp(Box<IMessageAppPart>),
}

impl MessagePart {
    /// A plain text part.
    pub fn text(value: impl Into<String>) -> Self {
        Self::Text(TextPart {
            value: value.into(),
            text_decorations: None,
        })
    }

    /// A link part with a rich preview.
    pub fn link(url: impl Into<String>) -> Self {
        Self::Link(LinkPart { value: url.into() })
    }
}

/// The `message` object of every send request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MessageContent {
    /// Required; at most 100, no two text parts in a row.
    pub parts: Vec<MessagePart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<MessageEffect>,
    /// De-duplicates sends (≤255 chars); echoed in webhook payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_service: Option<ServiceType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyTo>,
}

impl MessageContent {
    /// A message made of the given parts.
    pub fn new(parts: Vec<MessagePart>) -> Self {
        Self {
            parts,
            ..Self::default()
        }
    }

    /// A message with one text part.
    pub fn text(value: impl Into<String>) -> Self {
        Self::new(vec![MessagePart::text(value)])
    }

    /// Appends a part.
    pub fn part(mut self, part: MessagePart) -> Self {
        self.parts.push(part);
        self
    }

    /// Makes this a threaded reply to part 0 of `message_id`.
    pub fn reply_to(self, message_id: impl Into<String>) -> Self {
        self.reply_to_part(message_id, 0)
    }

    /// Makes this a threaded reply to part `part_index` of `message_id`.
    pub fn reply_to_part(mut self, message_id: impl Into<String>, part_index: u32) -> Self {
        self.reply_to = Some(ReplyTo::new(message_id, part_index));
        self
    }

    /// Sets the key Linq de-duplicates this send on.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Adds a screen or bubble effect.
    pub fn effect(mut self, effect: MessageEffect) -> Self {
        self.effect = Some(effect);
        self
    }

    /// Pins the service (`iMessage` = no fallback).
    pub fn preferred_service(mut self, service: ServiceType) -> Self {
        self.preferred_service = Some(service);
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Chats and messages: requests and responses (§2.1, §2.2)
// ---------------------------------------------------------------------------------------------

/// `POST /v3/chats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateChatRequest {
    /// One of your lines, E.164.
    pub from: String,
    /// One handle → DM, more → group.
    pub to: Vec<String>,
    pub message: MessageContent,
}

/// The `chat` of a create-chat response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CreatedChat {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub handles: Vec<ChatHandle>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub health_status: HealthStatus,
    #[serde(default)]
    pub is_group: bool,
    pub message: SentMessage,
    #[serde(default)]
    pub service: ServiceType,
}

/// 201 answer to `POST /v3/chats`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CreateChatResponse {
    pub chat: CreatedChat,
}

/// `POST /v3/chats/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendMessageRequest {
    pub message: MessageContent,
}

/// 202 answer to `POST /v3/chats/{id}/messages` (and to `updateAppCard`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SendMessageResponse {
    pub chat_id: String,
    pub message: SentMessage,
}

/// Optional follow-up text of `POST /v3/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinuationMessage {
    pub text: String,
}

/// `POST /v3/messages`: Linq picks the line and the chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateMessageRequest {
    pub to: Vec<String>,
    pub message: MessageContent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation_message: Option<ContinuationMessage>,
}

/// How `POST /v3/messages` chose the line.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FromSelection {
    #[serde(default)]
    pub reason: FromSelectionReason,
    #[serde(default)]
    pub reused_existing_chat: bool,
}

/// 202 answer to `POST /v3/messages`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CreateMessageResponse {
    pub chat_id: String,
    #[serde(default)]
    pub created_new_chat: bool,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub from_selection: FromSelection,
    #[serde(default, deserialize_with = "null_as_default")]
    pub handles: Vec<ChatHandle>,
    #[serde(default)]
    pub is_group: bool,
    pub message: SentMessage,
    #[serde(default)]
    pub service: ServiceType,
    #[serde(default)]
    pub previous_chat_id: Option<String>,
}

/// A page of messages (`GET /v3/chats/{id}/messages`, thread). An absent, `null` or empty
/// `next_cursor` means there are no more pages.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessageList {
    #[serde(default, deserialize_with = "null_as_default")]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

impl MessageList {
    /// The cursor of the next page, treating `""` like `null` as the SDK does.
    pub fn next(&self) -> Option<&str> {
        self.next_cursor.as_deref().filter(|c| !c.is_empty())
    }
}

/// A page of chats (`GET /v3/chats`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatList {
    #[serde(default, deserialize_with = "null_as_default")]
    pub chats: Vec<Chat>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

impl ChatList {
    /// The cursor of the next page, treating `""` like `null` as the SDK does.
    pub fn next(&self) -> Option<&str> {
        self.next_cursor.as_deref().filter(|c| !c.is_empty())
    }
}

/// `PUT /v3/chats/{id}` (groups only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpdateChatRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_chat_icon: Option<String>,
}

/// Answer to `PUT /v3/chats/{id}`; the outcome arrives later by webhook.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpdateChatResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// Body of `POST` / `DELETE /v3/chats/{id}/participants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantRequest {
    pub handle: String,
}

/// The `{message?, status?, trace_id?}` answer of queued actions (leave, participants,
/// reactions).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AcceptedResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// `PATCH /v3/messages/{id}` (edit a text part).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditMessageRequest {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_index: Option<u32>,
}

/// `POST /v3/messages/{id}/reactions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionRequest {
    pub operation: ReactionOperation,
    #[serde(rename = "type")]
    pub kind: ReactionType,
    /// Required when `type` is `custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_emoji: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_index: Option<u32>,
}

impl ReactionRequest {
    /// Adds a tapback.
    pub fn add(kind: ReactionType) -> Self {
        Self {
            operation: ReactionOperation::Add,
            kind,
            custom_emoji: None,
            part_index: None,
        }
    }

    /// Removes a tapback.
    pub fn remove(kind: ReactionType) -> Self {
        Self {
            operation: ReactionOperation::Remove,
            ..Self::add(kind)
        }
    }

    /// Adds a custom emoji reaction.
    pub fn add_emoji(emoji: impl Into<String>) -> Self {
        Self {
            custom_emoji: Some(emoji.into()),
            ..Self::add(ReactionType::Custom)
        }
    }

    /// Targets part `index` instead of part 0.
    pub fn part_index(mut self, index: u32) -> Self {
        self.part_index = Some(index);
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Attachments (§2.3)
// ---------------------------------------------------------------------------------------------

/// `POST /v3/attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAttachmentRequest {
    pub filename: String,
    /// One of the SDK's `SupportedContentType` values, e.g. `image/jpeg`.
    pub content_type: String,
    /// ≤ 100 MB; the upload must be exactly this long.
    pub size_bytes: u64,
}

/// Answer to `POST /v3/attachments`: where and how to upload the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AttachmentUpload {
    pub attachment_id: String,
    /// Presigned, valid 15 minutes.
    pub upload_url: String,
    /// Permanent CDN URL.
    #[serde(default)]
    pub download_url: String,
    /// Always `PUT` today.
    #[serde(default)]
    pub http_method: String,
    #[serde(default)]
    pub expires_at: String,
    /// Headers the upload must carry, e.g. `{"Content-Type": "image/jpeg"}`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub required_headers: BTreeMap<String, String>,
}

/// The contract's name for [`AttachmentUpload`].
pub type CreateAttachmentResponse = AttachmentUpload;

/// `GET /v3/attachments/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AttachmentInfo {
    pub id: String,
    #[serde(default)]
    pub content_type: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub size_bytes: u64,
    /// Deprecated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AttachmentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Webhook subscriptions (§2.5)
// ---------------------------------------------------------------------------------------------

/// A webhook subscription (the secret is only ever shown at creation).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WebhookSubscription {
    pub id: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub is_active: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub subscribed_events: Vec<WebhookEventType>,
    #[serde(default)]
    pub target_url: String,
    #[serde(default)]
    pub updated_at: String,
    /// Filters events by your line; `null` or `[]` = no filter.
    #[serde(default)]
    pub phone_numbers: Option<Vec<String>>,
}

/// `POST /v3/webhook-subscriptions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateWebhookSubscriptionRequest {
    /// HTTPS; may carry `?version=YYYY-MM-DD` to pick the payload version.
    pub target_url: String,
    pub subscribed_events: Vec<WebhookEventType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_numbers: Option<Vec<String>>,
}

/// 201 answer to `POST /v3/webhook-subscriptions`: the subscription plus its signing secret.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CreateWebhookSubscriptionResponse {
    pub id: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub is_active: bool,
    /// `whsec_…`, shown only here.
    pub signing_secret: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub subscribed_events: Vec<WebhookEventType>,
    #[serde(default)]
    pub target_url: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default)]
    pub phone_numbers: Option<Vec<String>>,
}

impl CreateWebhookSubscriptionResponse {
    /// The subscription without its secret.
    pub fn subscription(&self) -> WebhookSubscription {
        WebhookSubscription {
            id: self.id.clone(),
            created_at: self.created_at.clone(),
            is_active: self.is_active,
            subscribed_events: self.subscribed_events.clone(),
            target_url: self.target_url.clone(),
            updated_at: self.updated_at.clone(),
            phone_numbers: self.phone_numbers.clone(),
        }
    }
}

/// `PUT /v3/webhook-subscriptions/{id}`. Absent fields stay unchanged; for `phone_numbers`,
/// `Some(None)` (JSON `null`) and `Some(Some(vec![]))` both clear the filter.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpdateWebhookSubscriptionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub phone_numbers: Option<Option<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribed_events: Option<Vec<WebhookEventType>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
}

/// `GET /v3/webhook-subscriptions` (not paginated).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WebhookSubscriptionList {
    #[serde(default, deserialize_with = "null_as_default")]
    pub subscriptions: Vec<WebhookSubscription>,
}

/// `GET /v3/webhook-events`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WebhookEventList {
    #[serde(default)]
    pub doc_url: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub events: Vec<WebhookEventType>,
}

// ---------------------------------------------------------------------------------------------
// Errors (§1.5)
// ---------------------------------------------------------------------------------------------

/// The `error` object of an error body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub status: u16,
    /// Linq's numeric error code, e.g. 2001 (chat not found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_url: Option<String>,
    /// Seconds; sent on 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// Every non-2xx answer's body. Some 409 examples leave out `success`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    pub error: ErrorDetail,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl ErrorBody {
    /// `{"success": false, "error": {status, code, message, doc_url}}`, with the doc URL Linq
    /// uses for the code's family (e.g. `.../1xxx/1001/`).
    pub fn new(status: u16, code: i64, message: impl Into<String>) -> Self {
        let family = code / 1000;
        Self {
            success: Some(false),
            error: ErrorDetail {
                status,
                code: Some(code),
                message: message.into(),
                doc_url: Some(format!(
                    "https://docs.linqapp.com/error/codes/{family}xxx/{code}/"
                )),
                retry_after: None,
            },
            trace_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const SEND_RESPONSE: &str = r#"{"chat_id":"550e8400-e29b-41d4-a716-446655440000",
 "message":{"id":"347d62c2-2170-4754-8d30-c76d0c727d96","created_at":"2026-02-05T19:52:17.041Z",
  "delivery_status":"queued","is_read":false,"sent_at":null,"delivered_at":null,"effect":null,
  "from_handle":{"id":"8d79532a-f529-4244-a5cf-d443de051434","handle":"+12025551234","service":"iMessage",
                 "joined_at":"2026-01-21T21:59:45.191Z","is_me":true,"left_at":null,"status":"active"},
  "parts":[{"type":"text","value":"hi","reactions":null,"text_decorations":null}],
  "reply_to":{"message_id":"69a37c7d-…","part_index":0},"service":"iMessage","preferred_service":null}}"#;

    #[test]
    fn send_response_sample_round_trips_exactly() -> TestResult {
        let parsed: SendMessageResponse = serde_json::from_str(SEND_RESPONSE)?;
        assert_eq!(parsed.message.delivery_status, DeliveryStatus::Queued);
        assert_eq!(parsed.message.sent_at, None);
        let from = parsed
            .message
            .from_handle
            .as_ref()
            .ok_or("no from_handle")?;
        assert!(from.is_me());
        assert_eq!(from.service, ServiceType::IMessage);
        assert_eq!(parsed.message.parts, vec![PartResponse::text("hi")]);
        assert_eq!(parsed.message.reply_to, Some(ReplyTo::new("69a37c7d-…", 0)));
        // The simulator serializes the same value: it must give back the sample, nulls and all.
        let expected: Value = serde_json::from_str(SEND_RESPONSE)?;
        assert_eq!(serde_json::to_value(&parsed)?, expected);
        Ok(())
    }

    #[test]
    fn send_request_sample_serializes_exactly() -> TestResult {
        let content = MessageContent::text("hi")
            .idempotency_key("6a0c…")
            .reply_to("69a37c7d-…");
        let body = serde_json::to_value(SendMessageRequest { message: content })?;
        assert_eq!(
            body,
            json!({"message":{"parts":[{"type":"text","value":"hi"}],"idempotency_key":"6a0c…",
                   "reply_to":{"message_id":"69a37c7d-…","part_index":0}}})
        );
        Ok(())
    }

    #[test]
    fn request_parts_parse_and_reject_unknown_types() -> TestResult {
        let content: MessageContent = serde_json::from_value(json!({
            "parts": [
                {"type": "text", "value": "look", "text_decorations": [{"range": [0, 4], "style": "bold"}]},
                {"type": "media", "attachment_id": "a1"},
                {"type": "media", "url": "https://x/y.png"}
            ],
            "effect": {"screen_effect": "confetti"}
        }))?;
        assert_eq!(content.parts.len(), 3);
        assert_eq!(
            content.parts[1],
            MessagePart::Media(MediaPart::attachment("a1"))
        );
        assert_eq!(
            content.parts[2],
            MessagePart::Media(MediaPart::url("https://x/y.png"))
        );
        let effect = content.effect.as_ref().ok_or("no effect")?;
        assert_eq!(effect.normalized(), MessageEffect::screen("confetti"));

        let bad = serde_json::from_value::<MessageContent>(json!({"parts": [{"type": "voice"}]}));
        assert!(bad.is_err());
        let missing = serde_json::from_value::<MessageContent>(json!({}));
        assert!(missing.is_err());
        Ok(())
    }

    #[test]
    fn response_parts_keep_unknown_and_malformed_parts() -> TestResult {
        let parts: Vec<PartResponse> = serde_json::from_value(json!([
            {"type": "text", "value": "a", "reactions": [{"handle": {"handle": "+1"}, "is_me": false, "type": "love"}]},
            {"type": "media", "id": "m", "filename": "f.jpg", "mime_type": "image/jpeg", "size_bytes": 3, "url": "u", "reactions": null},
            {"type": "link", "value": "https://example.com", "reactions": null},
            {"type": "imessage_app", "app": {"bundle_id": "b", "name": "n", "team_id": "t", "app_store_id": 12},
             "layout": {"caption": "c"}, "url": "https://x", "fallback_text": null, "reactions": null},
            {"type": "hologram", "value": 1},
            {"type": "media", "size_bytes": "not a number"}
        ]))?;
        assert!(
            matches!(&parts[0], PartResponse::Text(t) if t.reactions.as_ref().is_some_and(|r| r[0].kind == ReactionType::Love))
        );
        assert!(matches!(&parts[1], PartResponse::Media(m) if m.size_bytes == 3));
        assert!(matches!(&parts[2], PartResponse::Link(_)));
        assert!(
            matches!(&parts[3], PartResponse::IMessageApp(a) if a.app.app_store_id == Some(12))
        );
        assert_eq!(
            parts[4],
            PartResponse::Unknown(json!({"type": "hologram", "value": 1}))
        );
        assert!(matches!(&parts[5], PartResponse::Unknown(_)));
        // Unknown parts serialize back verbatim; known ones get their tag back.
        let again = serde_json::to_value(&parts)?;
        assert_eq!(again[4], json!({"type": "hologram", "value": 1}));
        assert_eq!(
            again[2],
            json!({"type": "link", "value": "https://example.com", "reactions": null})
        );
        Ok(())
    }

    #[test]
    fn unknown_enum_values_round_trip() -> TestResult {
        let s: ServiceType = serde_json::from_value(json!("WhatsApp"))?;
        assert_eq!(s, ServiceType::Other("WhatsApp".into()));
        assert_eq!(serde_json::to_value(&s)?, json!("WhatsApp"));
        assert_eq!(serde_json::to_value(ServiceType::Sms)?, json!("SMS"));
        assert_eq!(WebhookEventType::KNOWN.len(), 27);
        assert_eq!(
            "chat.typing_indicator.started".parse::<WebhookEventType>()?,
            WebhookEventType::ChatTypingIndicatorStarted
        );
        Ok(())
    }

    #[test]
    fn sparse_payloads_parse_with_defaults() -> TestResult {
        let m: Message = serde_json::from_value(json!({"id": "m1", "parts": null}))?;
        assert!(m.parts.is_empty());
        assert_eq!(m.delivery_status, DeliveryStatus::Other(String::new()));
        let chat: Chat = serde_json::from_value(json!({"id": "c", "handles": [
            {"handle": "+1", "is_me": true}, {"handle": "+2"}]}))?;
        assert_eq!(chat.own_handle().map(|h| h.handle.as_str()), Some("+1"));
        assert_eq!(chat.other_handles().count(), 1);
        assert!(serde_json::from_value::<Chat>(json!({"handles": []})).is_err());
        let list: MessageList = serde_json::from_value(json!({"messages": [], "next_cursor": ""}))?;
        assert_eq!(list.next(), None);
        Ok(())
    }

    #[test]
    fn reaction_request_shape() -> TestResult {
        assert_eq!(
            serde_json::to_value(ReactionRequest::add(ReactionType::Like))?,
            json!({"operation": "add", "type": "like"})
        );
        assert_eq!(
            serde_json::to_value(ReactionRequest::add_emoji("🔥").part_index(1))?,
            json!({"operation": "add", "type": "custom", "custom_emoji": "🔥", "part_index": 1})
        );
        Ok(())
    }

    #[test]
    fn subscription_update_distinguishes_null_from_absent() -> TestResult {
        let clear: UpdateWebhookSubscriptionRequest =
            serde_json::from_value(json!({"phone_numbers": null}))?;
        assert_eq!(clear.phone_numbers, Some(None));
        let unchanged: UpdateWebhookSubscriptionRequest = serde_json::from_value(json!({}))?;
        assert_eq!(unchanged.phone_numbers, None);
        assert_eq!(
            serde_json::to_value(&clear)?,
            json!({"phone_numbers": null})
        );
        Ok(())
    }

    #[test]
    fn error_body_shape() -> TestResult {
        let body = ErrorBody::new(400, 1001, "Missing required field");
        assert_eq!(
            serde_json::to_value(&body)?,
            json!({"success": false, "error": {"status": 400, "code": 1001,
                   "message": "Missing required field",
                   "doc_url": "https://docs.linqapp.com/error/codes/1xxx/1001/"}})
        );
        let parsed: ErrorBody = serde_json::from_value(
            json!({"error": {"status": 409, "code": 2013, "message": "This chat is unavailable"}}),
        )?;
        assert_eq!(parsed.success, None);
        assert_eq!(parsed.error.code, Some(2013));
        Ok(())
    }

    #[test]
    fn timestamps_of_any_precision_and_offset() {
        for s in [
            "2026-02-05T19:31:13.736444093Z",
            "2026-02-05T19:52:17.041Z",
            "2026-02-05T19:00:00Z",
            "2025-06-01T10:00:00.123456-05:00",
        ] {
            assert!(parse_timestamp(s).is_some(), "{s}");
        }
        assert!(parse_timestamp("").is_none());
        assert!(parse_timestamp("yesterday").is_none());
        let a = parse_timestamp("2025-06-01T10:00:00-05:00");
        let b = parse_timestamp("2025-06-01T15:00:00Z");
        assert_eq!(a, b);
        let now = now_timestamp();
        assert!(now.ends_with('Z'));
        assert!(parse_timestamp(&now).is_some());
    }
}
