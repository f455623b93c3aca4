//! The simulator's admin API (no bearer; a loopback tool): play the humans (`/sim/inbound`,
//! `/sim/react`, `/sim/typing`), look at everything (`/sim/api/state`, the `/sim/api/stream`
//! Server-Sent Events), set faults (`/sim/faults`), and the embedded admin page at `/` and
//! `/sim`.
//!
//! Errors use the same JSON error body as the v3 API.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::errors::{ApiError, json_response, random_hex32};
use crate::faults::FaultsPatch;
use crate::state::{Attachment, Media, Part, PartKind, SimState, new_id, now};
use crate::validation::{self, ReplyToSpec, parse_json, require_handle};
use crate::webhooks::Event;
use crate::wire;

/// The admin page, written by the UI author; served as is.
pub const ADMIN_HTML: &str = include_str!("../assets/admin.html");

/// The admin routes.
pub fn routes() -> Router<SimState> {
    Router::new()
        .route("/", get(page))
        .route("/sim", get(page))
        .route("/sim/", get(page))
        .route("/sim/inbound", post(inbound))
        .route("/sim/react", post(react))
        .route("/sim/typing", post(typing))
        .route("/sim/api/state", get(state))
        .route("/sim/api/stream", get(stream))
        .route("/sim/faults", get(get_faults).put(put_faults))
}

type AdminResult = Result<Response, ApiError>;

async fn page() -> Response {
    let mut resp = ADMIN_HTML.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[derive(Deserialize)]
struct InboundAttachment {
    url: Option<String>,
    attachment_id: Option<String>,
    content_base64: Option<String>,
    filename: Option<String>,
    mime_type: Option<String>,
    size_bytes: Option<u64>,
}

#[derive(Deserialize)]
struct InboundIn {
    from: Option<String>,
    chat_id: Option<String>,
    group: Option<Vec<String>>,
    text: Option<String>,
    reply_to: Option<String>,
    attachments: Option<Vec<InboundAttachment>>,
}

/// What an inbound attachment becomes: a ready part, or bytes to store first.
enum InboundMedia {
    Ready(PartKind),
    Existing(String),
    Upload(Attachment),
}

fn inbound_media(a: InboundAttachment, i: usize) -> Result<InboundMedia, ApiError> {
    let path = format!("attachments[{i}]");
    match (a.url, a.attachment_id, a.content_base64) {
        (Some(url), None, None) => {
            if !validation::is_http_url(&url) {
                return Err(ApiError::invalid_param(format!(
                    "{path}.url must be an http(s) URL"
                )));
            }
            let filename = a.filename.unwrap_or_else(|| {
                url.split(['?', '#'])
                    .next()
                    .and_then(|u| u.rsplit('/').next())
                    .filter(|s| !s.is_empty() && !s.contains(':'))
                    .unwrap_or("file")
                    .to_owned()
            });
            let mime_type = a
                .mime_type
                .unwrap_or_else(|| validation::mime_for(&filename).to_owned());
            Ok(InboundMedia::Ready(PartKind::Media(Media {
                id: new_id(),
                filename,
                mime_type,
                size_bytes: a.size_bytes.unwrap_or(0),
                url,
            })))
        }
        (None, Some(id), None) => Ok(InboundMedia::Existing(id)),
        (None, None, Some(b64)) => {
            let data = STANDARD
                .decode(b64.trim())
                .map_err(|e| ApiError::invalid_param(format!("{path}.content_base64: {e}")))?;
            if data.is_empty() || data.len() as u64 > validation::MAX_ATTACHMENT_BYTES {
                return Err(ApiError::invalid_param(format!(
                    "{path}.content_base64 must decode to 1 byte to 100 MB"
                )));
            }
            let filename = a
                .filename
                .map(|f| f.trim().to_owned())
                .filter(|f| !f.is_empty() && !f.contains(['/', '\\']))
                .unwrap_or_else(|| "file".to_owned());
            let content_type = a
                .mime_type
                .unwrap_or_else(|| validation::mime_for(&filename).to_owned());
            Ok(InboundMedia::Upload(Attachment {
                id: new_id(),
                size_bytes: data.len() as u64,
                filename,
                content_type,
                created_at: now(),
                upload_token: random_hex32(),
                data: Some(Bytes::from(data)),
            }))
        }
        (None, None, None) => Err(ApiError::missing_field(&format!(
            "{path}.url, {path}.attachment_id or {path}.content_base64"
        ))),
        _ => Err(ApiError::invalid_param(format!(
            "{path}: give exactly one of url, attachment_id or content_base64"
        ))),
    }
}

/// `POST /sim/inbound`: a human texts the bot.
async fn inbound(State(s): State<SimState>, body: Bytes) -> AdminResult {
    let input: InboundIn = parse_json(&body)?;
    let bot_line = s.settings().bot_line.clone();
    let from = input.from.ok_or_else(|| ApiError::missing_field("from"))?;
    let from = from.trim().to_owned();
    require_handle("from", &from)?;
    let from = validation::normalize_handle(&from);
    if from == bot_line {
        return Err(ApiError::invalid_param(
            "from is the bot's own line; inbound messages come from humans",
        ));
    }
    let text = input.text.unwrap_or_default();
    let media: Vec<InboundMedia> = input
        .attachments
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, a)| inbound_media(a, i))
        .collect::<Result<_, _>>()?;
    if text.trim().is_empty() && media.is_empty() {
        return Err(ApiError::missing_field("text (must not be empty)"));
    }
    if input.chat_id.is_some() && input.group.is_some() {
        return Err(ApiError::invalid_param("give chat_id or group, not both"));
    }
    let mut others = BTreeSet::from([from.clone()]);
    for (i, g) in input.group.iter().flatten().enumerate() {
        let g = g.trim();
        require_handle(&format!("group[{i}]"), g)?;
        let g = validation::normalize_handle(g);
        if g == bot_line {
            continue;
        }
        others.insert(g);
    }
    let reply_to = input
        .reply_to
        .filter(|r| !r.trim().is_empty())
        .map(|message_id| ReplyToSpec {
            message_id: message_id.trim().to_owned(),
            part_index: 0,
        });
    let base_url = s.settings().base_url.clone();

    let (chat_id, message_id) = s.txn(|tx| {
        // Check everything that can fail before creating a chat.
        let mut parts = Vec::new();
        if !text.trim().is_empty() {
            parts.push(Part::new(PartKind::Text {
                value: text.clone(),
                text_decorations: None,
            }));
        }
        let mut uploads = Vec::new();
        for m in media {
            match m {
                InboundMedia::Ready(kind) => parts.push(Part::new(kind)),
                InboundMedia::Existing(id) => {
                    let a =
                        tx.m.attachments
                            .get(&id)
                            .ok_or_else(|| ApiError::attachment_not_found(&id))?;
                    if !a.is_complete() {
                        return Err(ApiError::attachment_not_ready(&id));
                    }
                    parts.push(Part::new(PartKind::Media(crate::state::media_of(
                        a, &base_url,
                    ))));
                }
                InboundMedia::Upload(a) => {
                    parts.push(Part::new(PartKind::Media(crate::state::media_of(
                        &a, &base_url,
                    ))));
                    uploads.push(a);
                }
            }
        }
        let existing = match &input.chat_id {
            Some(id) => {
                let chat = tx.m.chat(id)?;
                chat.ensure_available()?;
                if chat.active_handle(&from).is_none() {
                    return Err(ApiError::invalid_param(format!(
                        "{from} is not an active participant of chat {id}"
                    )));
                }
                Some(id.clone())
            }
            None => tx.m.find_chat(&bot_line, &others).map(|c| c.id.clone()),
        };
        if let Some(r) = &reply_to {
            let target = tx.m.message(&r.message_id)?;
            if existing.as_deref() != Some(target.chat_id.as_str()) {
                return Err(ApiError::invalid_param(format!(
                    "reply_to {} belongs to another chat",
                    r.message_id
                )));
            }
        }
        for a in uploads {
            tx.m.attachments.insert(a.id.clone(), a);
        }
        let chat_id = match existing {
            Some(id) => id,
            None => {
                let list: Vec<String> = others.iter().cloned().collect();
                tx.create_chat(&bot_line, &list, crate::state::Service::IMessage)
            }
        };
        let message_id = tx.receive_inbound(&chat_id, &from, parts, reply_to.clone())?;
        Ok((chat_id, message_id))
    })?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "chat_id": chat_id, "message_id": message_id }),
    ))
}

#[derive(Deserialize)]
struct ReactIn {
    from: Option<String>,
    message_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    operation: Option<String>,
    custom_emoji: Option<String>,
    part_index: Option<Value>,
}

/// `POST /sim/react`: a human adds or removes a tapback.
async fn react(State(s): State<SimState>, body: Bytes) -> AdminResult {
    let input: ReactIn = parse_json(&body)?;
    let from = input.from.ok_or_else(|| ApiError::missing_field("from"))?;
    let from = from.trim().to_owned();
    require_handle("from", &from)?;
    if from == s.settings().bot_line {
        return Err(ApiError::invalid_param(
            "from is the bot's own line; the bot reacts through POST /v3/messages/{id}/reactions",
        ));
    }
    let message_id = input
        .message_id
        .ok_or_else(|| ApiError::missing_field("message_id"))?;
    let add = validation::reaction_operation(input.operation.as_deref(), false)?;
    let kind = validation::reaction(input.kind.as_deref(), input.custom_emoji.as_deref(), add)?;
    let part_index =
        validation::optional_index(input.part_index.as_ref(), "part_index")?.unwrap_or(0);
    let emoji = input.custom_emoji.filter(|_| kind == "custom");
    let chat_id = s.txn(|tx| {
        let chat_id = tx.m.message(&message_id)?.chat_id.clone();
        tx.react(&message_id, &from, add, &kind, emoji, part_index)?;
        Ok::<_, ApiError>(chat_id)
    })?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "chat_id": chat_id,
            "message_id": message_id,
            "operation": if add { "add" } else { "remove" },
            "type": kind,
        }),
    ))
}

#[derive(Deserialize)]
struct TypingIn {
    from: Option<String>,
    chat_id: Option<String>,
    started: Option<bool>,
}

/// `POST /sim/typing`: a human starts or stops typing in a DM.
async fn typing(State(s): State<SimState>, body: Bytes) -> AdminResult {
    let input: TypingIn = parse_json(&body)?;
    let from = input.from.ok_or_else(|| ApiError::missing_field("from"))?;
    let from = from.trim().to_owned();
    require_handle("from", &from)?;
    let chat_id = input
        .chat_id
        .ok_or_else(|| ApiError::missing_field("chat_id"))?;
    let started = input
        .started
        .ok_or_else(|| ApiError::missing_field("started"))?;
    s.txn(|tx| {
        let chat = tx.m.chat_mut(&chat_id)?;
        chat.ensure_available()?;
        if chat.is_group {
            return Err(ApiError::invalid_param(
                "typing indicators exist only in 1:1 chats",
            ));
        }
        let Some(h) = chat.active_handle(&from).filter(|h| !h.is_me) else {
            return Err(ApiError::invalid_param(format!(
                "{from} is not a participant of chat {chat_id}"
            )));
        };
        let key = validation::normalize_handle(&h.handle);
        if started {
            chat.others_typing.insert(key);
        } else {
            chat.others_typing.remove(&key);
        }
        let line = chat.line.clone();
        let event_type = if started {
            "chat.typing_indicator.started"
        } else {
            "chat.typing_indicator.stopped"
        };
        tx.emit(Event::same(
            event_type,
            Some(&line),
            wire::typing(&chat_id, started),
        ));
        Ok(())
    })?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "chat_id": chat_id, "from": from, "started": started }),
    ))
}

/// `GET /sim/api/state`.
async fn state(State(s): State<SimState>) -> Response {
    json_response(StatusCode::OK, &snapshot(&s))
}

/// Everything the admin page shows, as JSON.
pub fn snapshot(s: &SimState) -> Value {
    let version = *s.subscribe_changes().borrow();
    let settings = s.settings().clone();
    s.read(|m| {
        let mut chats: Vec<&crate::state::Chat> = m.chats.iter().collect();
        chats.sort_by_key(|c| std::cmp::Reverse(c.activity_seq));
        let chats: Vec<Value> = chats
            .into_iter()
            .map(|c| {
                let messages: Vec<Value> = c
                    .messages
                    .iter()
                    .filter_map(|id| m.messages.get(id))
                    .map(|msg| {
                        let mut v = wire::message(msg);
                        if let Some(o) = v.as_object_mut() {
                            o.insert("direction".into(), json!(msg.direction.as_str()));
                            o.insert("idempotency_key".into(), json!(msg.idempotency_key));
                            o.insert("edit_count".into(), json!(msg.edit_count));
                            o.insert("deleted".into(), json!(msg.deleted_at.is_some()));
                            o.insert("deleted_at".into(), json!(msg.deleted_at.map(wire::ts)));
                            o.insert("voice_memo".into(), json!(msg.voice_memo));
                        }
                        v
                    })
                    .collect();
                json!({
                    "id": c.id,
                    "display_name": c.display_name(),
                    "is_group": c.is_group,
                    "service": c.service.as_str(),
                    "line": c.line,
                    "created_at": wire::ts(c.created_at),
                    "updated_at": wire::ts(c.updated_at),
                    "group_chat_icon": c.group_chat_icon,
                    "left": c.left,
                    "bot_typing": c.bot_typing,
                    "others_typing": c.others_typing,
                    "last_read_at": c.last_read_at.map(wire::ts),
                    "handles": c.handles.iter().map(wire::handle).collect::<Vec<_>>(),
                    "messages": messages,
                })
            })
            .collect();
        let subscriptions: Vec<Value> = m
            .subscriptions
            .iter()
            .map(|sub| {
                let mut v = wire::subscription(sub, false);
                if let Some(o) = v.as_object_mut() {
                    o.insert("webhook_version".into(), json!(sub.version()));
                    o.insert(
                        "pending".into(),
                        json!(m.queues.get(&sub.id).map_or(0, |q| q.items.len())),
                    );
                }
                v
            })
            .collect();
        let deliveries: Vec<Value> = m
            .deliveries
            .iter()
            .rev()
            .map(|d| {
                json!({
                    "delivery_id": d.delivery_id,
                    "event_id": d.event_id,
                    "event_type": d.event_type,
                    "subscription_id": d.subscription_id,
                    "target_url": d.target_url,
                    "webhook_version": d.webhook_version,
                    "attempt": d.attempt,
                    "at": wire::ts(d.at),
                    "status": d.status,
                    "http_status": d.http_status,
                    "error": d.error,
                    "duration_ms": d.duration_ms,
                })
            })
            .collect();
        let events: Vec<Value> = m
            .events
            .iter()
            .rev()
            .map(|e| {
                json!({
                    "event_id": e.event_id,
                    "event_type": e.event_type,
                    "created_at": wire::ts(e.created_at),
                    "data": e.data,
                })
            })
            .collect();
        json!({
            "version": version,
            "bot_line": settings.bot_line,
            "line": settings.bot_line,
            "partner_id": settings.partner_id,
            "base_url": settings.base_url,
            "lifecycle_delay_ms": u64::try_from(settings.lifecycle_delay.as_millis()).unwrap_or(u64::MAX),
            "chats": chats,
            "subscriptions": subscriptions,
            "deliveries": deliveries,
            "events": events,
            "faults": m.faults,
        })
    })
}

/// `GET /sim/api/stream`: one `change` event (data: the change counter) per state change;
/// rapid changes are coalesced.
async fn stream(
    State(s): State<SimState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let changes = s.subscribe_changes();
    let stop = s.shutdown_signal();
    let events = futures::stream::unfold((changes, stop), |(mut changes, mut stop)| async move {
        let changed = tokio::select! {
            changed = changes.changed() => changed.is_ok(),
            _ = stop.wait_for(|s| *s) => false,
        };
        if !changed {
            return None;
        }
        let version = *changes.borrow_and_update();
        let event = SseEvent::default()
            .event("change")
            .data(version.to_string());
        Some((Ok(event), (changes, stop)))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn get_faults(State(s): State<SimState>) -> Response {
    json_response(StatusCode::OK, &wire::to_value(&s.faults()))
}

async fn put_faults(State(s): State<SimState>, body: Bytes) -> AdminResult {
    let patch: FaultsPatch = parse_json(&body)?;
    let faults = s.faults().apply(&patch)?;
    s.set_faults(faults.clone());
    Ok(json_response(StatusCode::OK, &wire::to_value(&faults)))
}
