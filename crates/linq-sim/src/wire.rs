//! Serialization: every JSON body the simulator answers or delivers is built here, from the
//! state model, through the shared wire types of the `linq` crate (`linq::types` for API
//! objects, `linq::events` for webhook `data` in both payload versions). The simulator
//! therefore writes exactly what picortex's own client parses.
//!
//! The few shapes `linq` does not model (voice memo, phone numbers, location, contact cards)
//! are built with `json!` in the API handlers.

use linq::events::{self as le, MessageEventKind};
use linq::types as lt;
use serde::Serialize;
use serde_json::Value;
use time::macros::format_description;

use crate::state::{
    Attachment, Chat, Direction, Handle, Message, Part, PartKind, Reaction, Service, Subscription,
    Ts,
};
use crate::validation::{EffectSpec, ReplyToSpec};
use crate::webhooks::{Event, EventData, LATEST_VERSION, LEGACY_VERSION};

const CHAT_HEALTH_DOC: &str = "https://docs.linqapp.com/guides/chats/chat-health";
const REPUTATION_DOC: &str = "https://docs.linqapp.com/guides/phone-numbers/reputation";

/// Serializes a wire value. Only maps with non-string keys can fail, and none are used.
pub fn to_value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-02-05T19:52:17.041Z`.
pub fn ts(t: Ts) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&fmt).unwrap_or_else(|_| lt::format_timestamp(t))
}

/// RFC 3339 UTC with nanoseconds (webhook envelope `created_at`).
pub fn ts_nanos(t: Ts) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");
    t.format(&fmt).unwrap_or_else(|_| lt::format_timestamp(t))
}

fn service_t(s: Service) -> lt::ServiceType {
    match s {
        Service::IMessage => lt::ServiceType::IMessage,
        Service::Sms => lt::ServiceType::Sms,
        Service::Rcs => lt::ServiceType::Rcs,
    }
}

fn preferred_t(p: Option<&String>) -> Option<lt::ServiceType> {
    p.map(|s| lt::ServiceType::from_wire(s))
}

/// `ChatHandle`.
pub fn handle_t(h: &Handle) -> lt::ChatHandle {
    lt::ChatHandle {
        id: h.id.clone(),
        handle: h.handle.clone(),
        joined_at: ts(h.joined_at),
        service: service_t(h.service),
        is_me: Some(h.is_me),
        left_at: h.left_at.map(ts),
        status: Some(lt::HandleStatus::from_wire(h.status.as_str())),
    }
}

/// `ChatHandle` as JSON.
pub fn handle(h: &Handle) -> Value {
    to_value(&handle_t(h))
}

/// `health_status` of a chat (always healthy in the simulator).
pub fn health_t(chat: &Chat) -> lt::HealthStatus {
    lt::HealthStatus {
        status: lt::HealthLevel::Healthy,
        doc_url: CHAT_HEALTH_DOC.to_owned(),
        updated_at: ts(chat.created_at),
    }
}

fn chat_t(c: &Chat) -> lt::Chat {
    lt::Chat {
        id: c.id.clone(),
        created_at: ts(c.created_at),
        updated_at: ts(c.updated_at),
        display_name: Some(c.display_name()),
        handles: c.handles.iter().map(handle_t).collect(),
        health_status: health_t(c),
        is_archived: false,
        is_group: c.is_group,
        group_chat_icon: c.group_chat_icon.clone(),
        service: Some(service_t(c.service)),
    }
}

/// `Chat` (GET chat, list items).
pub fn chat(c: &Chat) -> Value {
    to_value(&chat_t(c))
}

/// `chat.created` data: the Chat without `is_archived` and `group_chat_icon`.
pub fn chat_created(c: &Chat) -> Value {
    le::EventPayload::ChatCreated(chat_t(c))
        .data_json()
        .unwrap_or(Value::Null)
}

/// The answer to `POST /v3/chats`.
pub fn create_chat_response(c: &Chat, first: &Message) -> Value {
    to_value(&lt::CreateChatResponse {
        chat: lt::CreatedChat {
            id: c.id.clone(),
            display_name: Some(c.display_name()),
            handles: c.handles.iter().map(handle_t).collect(),
            health_status: health_t(c),
            is_group: c.is_group,
            message: sent_message_t(first),
            service: service_t(c.service),
        },
    })
}

/// The answer to `POST /v3/chats/{id}/messages` and `POST /v3/messages/{id}/update`.
pub fn send_response(chat_id: &str, m: &Message) -> Value {
    to_value(&lt::SendMessageResponse {
        chat_id: chat_id.to_owned(),
        message: sent_message_t(m),
    })
}

/// The answer to `POST /v3/messages`.
pub fn create_message_response(c: &Chat, m: &Message, created: bool) -> Value {
    to_value(&lt::CreateMessageResponse {
        chat_id: c.id.clone(),
        created_new_chat: created,
        from: c.line.clone(),
        from_selection: lt::FromSelection {
            reason: if created {
                lt::FromSelectionReason::NewBestNumber
            } else {
                lt::FromSelectionReason::ReusedActiveChat
            },
            reused_existing_chat: !created,
        },
        handles: c.handles.iter().map(handle_t).collect(),
        is_group: c.is_group,
        message: sent_message_t(m),
        service: service_t(c.service),
        previous_chat_id: None,
    })
}

fn effect_t(e: Option<&EffectSpec>) -> Option<lt::MessageEffect> {
    e.map(|e| lt::MessageEffect {
        kind: Some(lt::EffectType::from_wire(&e.kind)),
        name: Some(e.name.clone()),
        ..lt::MessageEffect::default()
    })
}

fn reply_to_t(r: Option<&ReplyToSpec>) -> Option<lt::ReplyTo> {
    r.map(|r| lt::ReplyTo::new(r.message_id.clone(), r.part_index))
}

fn reaction_t(r: &Reaction) -> lt::Reaction {
    lt::Reaction {
        handle: handle_t(&r.handle),
        is_me: r.is_me,
        kind: lt::ReactionType::from_wire(&r.kind),
        custom_emoji: r.custom_emoji.clone(),
        sticker: None,
    }
}

/// A `PartResponse` (API answers: every part carries `reactions`, `null` when none).
pub fn part_t(p: &Part) -> lt::PartResponse {
    let reactions =
        (!p.reactions.is_empty()).then(|| p.reactions.iter().map(reaction_t).collect::<Vec<_>>());
    match &p.kind {
        PartKind::Text {
            value,
            text_decorations,
        } => lt::PartResponse::Text(lt::TextPartResponse {
            value: value.clone(),
            reactions,
            text_decorations: text_decorations
                .as_ref()
                .and_then(|d| serde_json::from_value(d.clone()).ok()),
        }),
        PartKind::Media(m) => lt::PartResponse::Media(lt::MediaPartResponse {
            id: m.id.clone(),
            filename: m.filename.clone(),
            mime_type: m.mime_type.clone(),
            size_bytes: m.size_bytes,
            url: m.url.clone(),
            reactions,
        }),
        PartKind::Link { value } => lt::PartResponse::Link(lt::LinkPartResponse {
            value: value.clone(),
            reactions,
        }),
        PartKind::App {
            app,
            layout,
            url,
            fallback_text,
        } => lt::PartResponse::IMessageApp(lt::IMessageAppPartResponse {
            app: serde_json::from_value(app.clone()).unwrap_or_default(),
            layout: serde_json::from_value(layout.clone()).unwrap_or_default(),
            url: url.clone().unwrap_or_default(),
            fallback_text: fallback_text.clone(),
            reactions,
        }),
    }
}

/// `SentMessage` (create/send responses).
pub fn sent_message_t(m: &Message) -> lt::SentMessage {
    lt::SentMessage {
        id: m.id.clone(),
        created_at: ts(m.created_at),
        delivery_status: lt::DeliveryStatus::from_wire(m.status.as_str()),
        is_read: m.read_at.is_some(),
        parts: m.parts.iter().map(part_t).collect(),
        sent_at: m.sent_at.map(ts),
        delivered_at: m.delivered_at.map(ts),
        effect: effect_t(m.effect.as_ref()),
        from_handle: Some(handle_t(&m.sender)),
        preferred_service: preferred_t(m.preferred_service.as_ref()),
        reply_to: reply_to_t(m.reply_to.as_ref()),
        service: Some(service_t(m.service)),
    }
}

/// `Message` (retrieve, edit, lists, thread).
pub fn message_t(m: &Message) -> lt::Message {
    lt::Message {
        id: m.id.clone(),
        chat_id: m.chat_id.clone(),
        created_at: ts(m.created_at),
        updated_at: ts(m.updated_at),
        delivery_status: lt::DeliveryStatus::from_wire(m.status.as_str()),
        is_delivered: m.delivered_at.is_some(),
        is_from_me: m.is_from_me(),
        is_read: m.read_at.is_some(),
        delivered_at: m.delivered_at.map(ts),
        read_at: m.read_at.map(ts),
        sent_at: m.sent_at.map(ts),
        effect: effect_t(m.effect.as_ref()),
        from: Some(m.sender.handle.clone()),
        from_handle: Some(handle_t(&m.sender)),
        parts: m.parts.iter().map(part_t).collect(),
        preferred_service: preferred_t(m.preferred_service.as_ref()),
        service: Some(service_t(m.service)),
        reply_to: reply_to_t(m.reply_to.as_ref()),
    }
}

/// `Message` as JSON.
pub fn message(m: &Message) -> Value {
    to_value(&message_t(m))
}

fn direction_t(d: Direction) -> le::Direction {
    match d {
        Direction::Inbound => le::Direction::Inbound,
        Direction::Outbound => le::Direction::Outbound,
    }
}

/// `message.sent|received|delivered|read` data in both versions.
pub fn message_event(event_type: &'static str, m: &Message, c: &Chat) -> Event {
    let kind = MessageEventKind::from_event_type(event_type).unwrap_or(MessageEventKind::Sent);
    let owner = c.me().map(handle_t).unwrap_or_default();
    let spec = le::MessageEventSpec {
        id: m.id.clone(),
        chat_id: c.id.clone(),
        is_group: c.is_group,
        health_status: health_t(c),
        direction: direction_t(m.direction),
        sender: handle_t(&m.sender),
        owner,
        service: service_t(m.service),
        preferred_service: preferred_t(m.preferred_service.as_ref()),
        parts: m
            .parts
            .iter()
            .map(|p| le::WebhookPart::from(&part_t(p)))
            .collect(),
        effect: effect_t(m.effect.as_ref()),
        reply_to: reply_to_t(m.reply_to.as_ref()),
        idempotency_key: m.idempotency_key.clone(),
        created_at: ts(m.created_at),
        sent_at: m.sent_at.map(ts),
        delivered_at: m.delivered_at.map(ts),
        read_at: m.read_at.map(ts),
    };
    let data = |version: &str| le::message_event_data(version, kind, &spec).unwrap_or(Value::Null);
    Event {
        event_type,
        line: Some(c.line.clone()),
        data: EventData::Message {
            v2026: data(LATEST_VERSION),
            v2025: data(LEGACY_VERSION),
        },
    }
}

fn event_chat(c: &Chat) -> le::EventChat {
    le::EventChat {
        id: c.id.clone(),
        health_status: Some(health_t(c)),
        is_group: Some(c.is_group),
        owner_handle: c.me().map(handle_t),
    }
}

/// `message.edited` (2026-02-03 only).
pub fn message_edited(m: &Message, c: &Chat, part_index: u32, text: &str, at: Ts) -> Event {
    let data = le::MessageEdited {
        id: m.id.clone(),
        chat: event_chat(c),
        direction: direction_t(m.direction),
        edited_at: ts(at),
        part: le::EditedPart {
            index: part_index,
            text: text.to_owned(),
        },
        sender_handle: Some(handle_t(&m.sender)),
    };
    Event {
        event_type: "message.edited",
        line: Some(c.line.clone()),
        data: EventData::Only2026(to_value(&data)),
    }
}

/// `reaction.added` / `reaction.removed` data.
#[allow(clippy::too_many_arguments)]
pub fn reaction_event(
    chat_id: &str,
    message_id: &str,
    from: &Handle,
    kind: &str,
    custom_emoji: Option<&str>,
    part_index: u32,
    service: Service,
    at: Ts,
) -> Value {
    to_value(&le::ReactionEvent {
        is_from_me: from.is_me,
        reaction_type: lt::ReactionType::from_wire(kind),
        chat_id: Some(chat_id.to_owned()),
        message_id: Some(message_id.to_owned()),
        part_index: Some(part_index),
        custom_emoji: custom_emoji.map(str::to_owned),
        from: Some(from.handle.clone()),
        from_handle: Some(handle_t(from)),
        reacted_at: Some(ts(at)),
        service: Some(service_t(service)),
        sticker: None,
    })
}

/// `participant.added` data.
pub fn participant_added(chat_id: &str, h: &Handle) -> Value {
    to_value(&le::ParticipantEvent {
        handle: h.handle.clone(),
        participant: Some(handle_t(h)),
        chat_id: Some(chat_id.to_owned()),
        added_at: Some(ts(h.joined_at)),
        removed_at: None,
    })
}

/// `participant.removed` data.
pub fn participant_removed(chat_id: &str, h: &Handle, at: Ts) -> Value {
    to_value(&le::ParticipantEvent {
        handle: h.handle.clone(),
        participant: Some(handle_t(h)),
        chat_id: Some(chat_id.to_owned()),
        added_at: None,
        removed_at: Some(ts(at)),
    })
}

/// `chat.group_name_updated` / `chat.group_icon_updated` data.
pub fn group_updated(
    chat_id: &str,
    old: Option<&str>,
    new: Option<&str>,
    by: Option<&Handle>,
    at: Ts,
) -> Value {
    to_value(&le::GroupUpdate {
        chat_id: chat_id.to_owned(),
        updated_at: ts(at),
        old_value: old.map(str::to_owned),
        new_value: new.map(str::to_owned),
        changed_by_handle: by.map(handle_t),
    })
}

/// `chat.typing_indicator.started` / `.stopped` data.
pub fn typing(chat_id: &str, started: bool) -> Value {
    le::EventPayload::TypingIndicator {
        started,
        chat_id: chat_id.to_owned(),
    }
    .data_json()
    .unwrap_or(Value::Null)
}

/// A whole webhook body.
pub fn envelope(
    version: &str,
    event_type: &str,
    event_id: &str,
    created_at: Ts,
    trace_id: &str,
    partner_id: &str,
    data: Value,
) -> Value {
    let env = le::Envelope {
        api_version: le::API_VERSION.to_owned(),
        webhook_version: version.to_owned(),
        event_type: event_type.to_owned(),
        event_id: event_id.to_owned(),
        created_at: ts_nanos(created_at),
        trace_id: Some(trace_id.to_owned()),
        partner_id: Some(partner_id.to_owned()),
    };
    le::event_json(&env, data)
}

fn events_t(events: &[String]) -> Vec<lt::WebhookEventType> {
    events
        .iter()
        .map(|e| lt::WebhookEventType::from_wire(e))
        .collect()
}

/// `WebhookSubscription`, or the create answer with `signing_secret` when `with_secret`.
pub fn subscription(s: &Subscription, with_secret: bool) -> Value {
    if with_secret {
        to_value(&lt::CreateWebhookSubscriptionResponse {
            id: s.id.clone(),
            created_at: ts(s.created_at),
            is_active: s.is_active,
            signing_secret: s.secret.as_str().to_owned(),
            subscribed_events: events_t(&s.subscribed_events),
            target_url: s.target_url.clone(),
            updated_at: ts(s.updated_at),
            phone_numbers: s.phone_numbers.clone(),
        })
    } else {
        to_value(&lt::WebhookSubscription {
            id: s.id.clone(),
            created_at: ts(s.created_at),
            is_active: s.is_active,
            subscribed_events: events_t(&s.subscribed_events),
            target_url: s.target_url.clone(),
            updated_at: ts(s.updated_at),
            phone_numbers: s.phone_numbers.clone(),
        })
    }
}

/// The answer to `POST /v3/attachments`.
pub fn attachment_upload(a: &Attachment, upload_url: String, download_url: String) -> Value {
    to_value(&lt::AttachmentUpload {
        attachment_id: a.id.clone(),
        upload_url,
        download_url,
        http_method: "PUT".to_owned(),
        expires_at: ts(a.created_at + time::Duration::minutes(15)),
        required_headers: [("Content-Type".to_owned(), a.content_type.clone())]
            .into_iter()
            .collect(),
    })
}

/// `GET /v3/attachments/{id}`.
pub fn attachment(a: &Attachment, base_url: &str) -> Value {
    to_value(&lt::AttachmentInfo {
        id: a.id.clone(),
        content_type: a.content_type.clone(),
        created_at: ts(a.created_at),
        filename: a.filename.clone(),
        size_bytes: a.size_bytes,
        status: Some(if a.is_complete() {
            lt::AttachmentStatus::Complete
        } else {
            lt::AttachmentStatus::Pending
        }),
        download_url: Some(crate::state::download_url(base_url, &a.id, &a.filename)),
    })
}

/// A line's `reputation` / `health_status` object.
pub fn reputation() -> Value {
    serde_json::json!({ "status": "HEALTHY", "doc_url": REPUTATION_DOC })
}

/// The `{message, status, trace_id}` answer of queued actions.
pub fn accepted(message: &str, trace_id: &str) -> Value {
    to_value(&lt::AcceptedResponse {
        message: Some(message.to_owned()),
        status: Some("accepted".to_owned()),
        trace_id: Some(trace_id.to_owned()),
    })
}

/// The error body (`{"success":false,"error":{…},"trace_id"}`).
pub fn error_body(
    status: u16,
    code: u32,
    message: &str,
    retry_after: Option<u64>,
    trace_id: &str,
) -> Value {
    let mut body = lt::ErrorBody::new(status, i64::from(code), message);
    body.error.retry_after = retry_after;
    body.trace_id = Some(trace_id.to_owned());
    to_value(&body)
}
