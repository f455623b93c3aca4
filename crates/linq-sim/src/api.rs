//! The Linq Partner API v3 routes (served under both `/v3` and `/api/partner/v3`), the bearer
//! check, and the simulator's stand-ins for the upload/CDN URLs (`/_sim/...`).
//!
//! Handlers parse and validate their input first (see [`crate::validation`]), then make one
//! [`crate::state::Txn`] that checks the state, changes it and queues webhook events, and
//! build their answer with [`crate::wire`].

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::errors::{ApiError, TraceId, json_response, no_content, random_hex32};
use crate::state::{
    Attachment, ContactCard, Handle, HandleStatus, Message, PartKind, Service, SimState,
    Subscription, Txn, new_id, now,
};
use crate::validation::{self, ContentSpec, PartSpec, parse_json, require_e164, require_handle};
use crate::webhooks::{self, Event};
use crate::wire;

type ApiResult = Result<Response, ApiError>;

fn ok(body: Value) -> ApiResult {
    Ok(json_response(StatusCode::OK, &body))
}

fn with_status(status: StatusCode, body: Value) -> ApiResult {
    Ok(json_response(status, &body))
}

/// The v3 routes, relative to `/v3`, with bearer auth and fault injection.
pub fn v3_routes(state: SimState) -> Router<SimState> {
    Router::new()
        .route("/chats", post(create_chat).get(list_chats))
        .route("/chats/{id}", get(get_chat).put(update_chat))
        .route("/chats/{id}/leave", post(leave_chat))
        .route("/chats/{id}/share_contact_card", post(share_contact_card))
        .route("/chats/{id}/read", post(mark_read))
        .route("/chats/{id}/voicememo", post(send_voicememo))
        .route(
            "/chats/{id}/participants",
            post(add_participant).delete(remove_participant),
        )
        .route("/chats/{id}/typing", post(typing_start).delete(typing_stop))
        .route(
            "/chats/{id}/messages",
            post(send_message).get(list_messages),
        )
        .route("/chats/{id}/location/request", post(request_location))
        .route("/chats/{id}/location", get(get_location))
        .route("/messages", post(create_message))
        .route(
            "/messages/{id}",
            get(get_message).patch(edit_message).delete(delete_message),
        )
        .route("/messages/{id}/reactions", post(react))
        .route("/messages/{id}/thread", get(thread))
        .route("/messages/{id}/update", post(update_app_card))
        .route("/attachments", post(create_attachment))
        .route(
            "/attachments/{id}",
            get(get_attachment).delete(delete_attachment),
        )
        .route("/phone_numbers", get(list_phone_numbers))
        .route("/phone_numbers/{id}", put(update_phone_number))
        .route("/phonenumbers", get(list_phonenumbers_deprecated))
        .route("/available_number", get(available_number))
        .route("/capability/check_imessage", post(check_imessage))
        .route("/capability/check_rcs", post(check_rcs))
        .route(
            "/contact_card",
            get(get_contact_cards)
                .post(create_contact_card)
                .patch(update_contact_card),
        )
        .route(
            "/webhook-subscriptions",
            post(create_subscription).get(list_subscriptions),
        )
        .route(
            "/webhook-subscriptions/{id}",
            get(get_subscription)
                .put(update_subscription)
                .delete(delete_subscription),
        )
        .route("/webhook-events", get(list_webhook_events))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_bearer,
        ))
        .layer(middleware::from_fn_with_state(
            state,
            crate::faults::v3_faults,
        ))
}

/// The presigned-upload and download stand-ins (no bearer, like S3/CDN URLs).
pub fn storage_routes() -> Router<SimState> {
    let upload_limit = usize::try_from(validation::MAX_ATTACHMENT_BYTES)
        .unwrap_or(usize::MAX)
        .saturating_add(1024 * 1024);
    Router::new()
        .route(
            "/_sim/upload/{id}",
            put(upload_attachment).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/_sim/files/{id}/{filename}", get(download_attachment))
        .route("/_sim/vcf/{file}", get(vcf))
}

/// `Authorization: Bearer <api key>`, compared in constant time.
async fn require_bearer(State(state): State<SimState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let token = presented.and_then(|v| {
        v.split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
    });
    let expected = state.settings().api_key.as_bytes();
    match token {
        Some(t) if linq::webhook::secrets_equal(t.as_bytes(), expected) => next.run(req).await,
        Some(_) => ApiError::unauthorized("Invalid API key").into_response(),
        None if presented.is_some() => {
            ApiError::unauthorized("Authorization header must be \"Bearer <api key>\"")
                .into_response()
        }
        None => ApiError::unauthorized("Missing Authorization header").into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Query parameters and pagination
// ---------------------------------------------------------------------------------------

/// Query parameters as pairs (keeps repeated keys).
struct Params(Vec<(String, String)>);

impl Params {
    fn from(q: Result<Query<Vec<(String, String)>>, QueryRejection>) -> Result<Self, ApiError> {
        q.map(|Query(v)| Params(v))
            .map_err(|e| ApiError::invalid_param(format!("Invalid query string: {e}")))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `key`, repeated or comma-joined.
    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key || k == &format!("{key}[]"))
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }

    fn limit(&self, default: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid_param(format!(
                    "limit must be an integer from 1 to 100 (got {v:?})"
                ))),
            },
        }
    }

    fn cursor(&self) -> Result<Option<u64>, ApiError> {
        self.get("cursor").map(decode_cursor).transpose()
    }
}

fn encode_cursor(key: u64) -> String {
    URL_SAFE_NO_PAD.encode(json!({ "after": key }).to_string())
}

fn decode_cursor(s: &str) -> Result<u64, ApiError> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("after").and_then(Value::as_u64))
        .ok_or_else(|| ApiError::invalid_param(format!("Invalid cursor: {s:?}")))
}

/// One page of `items` (already sorted, each with a unique key in that order); the cursor
/// names the last key returned, so later inserts do not shift pages.
fn paginate<T>(
    items: Vec<(u64, T)>,
    after: Option<u64>,
    descending: bool,
    limit: usize,
) -> (Vec<T>, Value) {
    let mut rest: Vec<(u64, T)> = items
        .into_iter()
        .filter(|(k, _)| match after {
            None => true,
            Some(c) if descending => *k < c,
            Some(c) => *k > c,
        })
        .collect();
    let more = rest.len() > limit;
    rest.truncate(limit);
    let next = match (more, rest.last()) {
        (true, Some((k, _))) => Value::String(encode_cursor(*k)),
        _ => Value::Null,
    };
    (rest.into_iter().map(|(_, t)| t).collect(), next)
}

// ---------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------

/// Answers a remembered response for `(scope, key)`, or runs `f` and remembers its answer.
fn idempotent(
    tx: &mut Txn<'_>,
    scope: &'static str,
    key: Option<&str>,
    f: impl FnOnce(&mut Txn<'_>) -> Result<(StatusCode, Value), ApiError>,
) -> ApiResult {
    if let Some(k) = key
        && let Some(stored) = tx.m.idempotency.get(&(scope, k.to_owned()))
    {
        let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
        return with_status(status, stored.body.clone());
    }
    let (status, body) = f(tx)?;
    if let Some(k) = key {
        tx.m.idempotency.insert(
            (scope, k.to_owned()),
            crate::state::StoredResponse {
                status: status.as_u16(),
                body: body.clone(),
            },
        );
    }
    with_status(status, body)
}

/// A message just stored in this transaction.
fn stored<'a>(tx: &'a Txn<'_>, id: &str) -> Result<&'a Message, ApiError> {
    tx.m.messages
        .get(id)
        .ok_or_else(|| ApiError::message_not_found(id))
}

// ---------------------------------------------------------------------------------------
// Chats
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct CreateChatIn {
    from: Option<String>,
    to: Option<Vec<String>>,
    message: Option<Value>,
}

/// Validates a `to` list: present, 1..=31 handles, each E.164 or email; de-duplicated.
fn recipients(to: Option<Vec<String>>, own_line: Option<&str>) -> Result<Vec<String>, ApiError> {
    let to = to.ok_or_else(|| ApiError::missing_field("to"))?;
    if to.is_empty() {
        return Err(ApiError::missing_field("to (at least one recipient)"));
    }
    if to.len() > 31 {
        return Err(ApiError::invalid_param(format!(
            "to lists {} recipients; at most 31 are allowed",
            to.len()
        )));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, h) in to.iter().enumerate() {
        let h = h.trim();
        require_handle(&format!("to[{i}]"), h)?;
        if own_line == Some(h) {
            return Err(ApiError::invalid_param(format!(
                "to[{i}] is your own line {h}"
            )));
        }
        let n = validation::normalize_handle(h);
        if seen.insert(n.clone()) {
            out.push(n);
        }
    }
    Ok(out)
}

async fn create_chat(State(s): State<SimState>, body: Bytes) -> ApiResult {
    let input: CreateChatIn = parse_json(&body)?;
    let from = input.from.ok_or_else(|| ApiError::missing_field("from"))?;
    require_e164("from", &from)?;
    let to = recipients(input.to, Some(&from))?;
    let content = validation::message_content(input.message.as_ref(), "message")?;
    validation::first_message_has_no_link(&content, "message")?;
    let key = content.idempotency_key.clone();
    let base_url = s.settings().base_url.clone();
    s.txn(|tx| {
        idempotent(tx, "chats.create", key.as_deref(), |tx| {
            if !tx.m.is_line(&from) {
                return Err(ApiError::phone_denied(&from));
            }
            tx.m.resolve_parts(&content.parts, &base_url)?;
            let service = Service::from_preferred(content.preferred_service.as_deref());
            let key_set: BTreeSet<String> = to.iter().cloned().collect();
            let existing = tx.m.find_chat(&from, &key_set).map(|c| c.id.clone());
            if let Some(r) = &content.reply_to {
                let target = tx.m.message(&r.message_id)?;
                if existing.as_deref() != Some(target.chat_id.as_str()) {
                    return Err(ApiError::invalid_param(format!(
                        "reply_to.message_id {} belongs to another chat",
                        r.message_id
                    )));
                }
            }
            let chat_id = match existing {
                Some(id) => id,
                None => tx.create_chat(&from, &to, service),
            };
            let msg_id = tx.send_outbound(&chat_id, &content, false)?;
            let chat = tx.m.chat(&chat_id)?;
            let msg = stored(tx, &msg_id)?;
            Ok((StatusCode::CREATED, wire::create_chat_response(chat, msg)))
        })
    })
}

async fn list_chats(
    State(s): State<SimState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = Params::from(q)?;
    let from = p.get("from").map(str::trim).map(str::to_owned);
    if let Some(f) = &from {
        require_e164("from", f)?;
    }
    let to = p.get("to").map(str::trim).map(str::to_owned);
    if let Some(t) = &to {
        require_handle("to", t)?;
    }
    let to = to.map(|t| validation::normalize_handle(&t));
    let limit = p.limit(20)?;
    let cursor = p.cursor()?;
    let (chats, next) = s.read(|m| {
        let mut items: Vec<(u64, Value)> = m
            .chats
            .iter()
            .filter(|c| from.as_ref().is_none_or(|f| &c.line == f))
            .filter(|c| {
                to.as_ref().is_none_or(|t| {
                    c.handles
                        .iter()
                        .any(|h| !h.is_me && &validation::normalize_handle(&h.handle) == t)
                })
            })
            .map(|c| (c.activity_seq, wire::chat(c)))
            .collect();
        items.sort_by_key(|(k, _)| std::cmp::Reverse(*k));
        paginate(items, cursor, true, limit)
    });
    ok(json!({ "chats": chats, "next_cursor": next }))
}

async fn get_chat(State(s): State<SimState>, Path(id): Path<String>) -> ApiResult {
    let chat = s.read(|m| m.chat(&id).map(wire::chat))?;
    ok(chat)
}

#[derive(Deserialize)]
struct UpdateChatIn {
    display_name: Option<String>,
    group_chat_icon: Option<String>,
}

async fn update_chat(State(s): State<SimState>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let input: UpdateChatIn = parse_json(&body)?;
    if input.display_name.is_none() && input.group_chat_icon.is_none() {
        return Err(ApiError::missing_field("display_name or group_chat_icon"));
    }
    if let Some(icon) = input.group_chat_icon.as_deref().filter(|i| !i.is_empty())
        && !validation::is_http_url(icon)
    {
        return Err(ApiError::invalid_param(
            "group_chat_icon must be an http(s) image URL",
        ));
    }
    if input.display_name.as_ref().is_some_and(|n| n.len() > 255) {
        return Err(ApiError::invalid_param(
            "display_name must be at most 255 characters",
        ));
    }
    s.txn(|tx| {
        let chat = tx.m.chat(&id)?;
        chat.ensure_available()?;
        if !chat.is_group {
            return Err(ApiError::cannot_update_dm());
        }
        let me = chat.me().cloned();
        let line = chat.line.clone();
        let t = now();
        let mut events = Vec::new();
        let chat = tx.m.chat_mut(&id)?;
        if let Some(name) = &input.display_name {
            let old = chat.display_name();
            let new = Some(name.trim())
                .filter(|n| !n.is_empty())
                .map(str::to_owned);
            chat.custom_name = new.clone();
            events.push(Event::same(
                "chat.group_name_updated",
                Some(&line),
                wire::group_updated(&id, Some(&old), new.as_deref(), me.as_ref(), t),
            ));
        }
        if let Some(icon) = &input.group_chat_icon {
            let old = chat.group_chat_icon.clone();
            let new = Some(icon.clone()).filter(|i| !i.is_empty());
            chat.group_chat_icon = new.clone();
            events.push(Event::same(
                "chat.group_icon_updated",
                Some(&line),
                wire::group_updated(&id, old.as_deref(), new.as_deref(), me.as_ref(), t),
            ));
        }
        chat.updated_at = t;
        for e in events {
            tx.emit(e);
        }
        ok(json!({ "chat_id": id, "status": "accepted" }))
    })
}

async fn leave_chat(
    State(s): State<SimState>,
    Path(id): Path<String>,
    Extension(trace): Extension<TraceId>,
) -> ApiResult {
    s.txn(|tx| {
        let chat = tx.m.chat(&id)?;
        chat.ensure_available()?;
        if !chat.is_group {
            return Err(ApiError::invalid_param(
                "Only group chats can be left; this is a direct message chat",
            ));
        }
        if chat.service != Service::IMessage {
            return Err(ApiError::invalid_param(
                "Only iMessage group chats can be left",
            ));
        }
        let active = chat.active().count();
        if active < 4 {
            return Err(ApiError::invalid_param(format!(
                "Leaving needs at least 4 active members; this group has {active}"
            )));
        }
        let line = chat.line.clone();
        let t = now();
        let chat = tx.m.chat_mut(&id)?;
        chat.left = true;
        chat.bot_typing = false;
        chat.updated_at = t;
        let mut me = None;
        for h in chat.handles.iter_mut().filter(|h| h.is_me) {
            h.status = HandleStatus::Left;
            h.left_at = Some(t);
            me = Some(h.clone());
        }
        if let Some(me) = me {
            tx.emit(Event::same(
                "participant.removed",
                Some(&line),
                wire::participant_removed(&id, &me, t),
            ));
        }
        with_status(
            StatusCode::ACCEPTED,
            wire::accepted("Leave group chat queued", &trace.0),
        )
    })
}

/// Runs `f` on an available chat (404 unknown, 409 left).
fn on_available_chat(
    tx: &mut Txn<'_>,
    id: &str,
    f: impl FnOnce(&mut crate::state::Chat),
) -> Result<(), ApiError> {
    let chat = tx.m.chat_mut(id)?;
    chat.ensure_available()?;
    f(chat);
    Ok(())
}

async fn share_contact_card(State(s): State<SimState>, Path(id): Path<String>) -> ApiResult {
    s.txn(|tx| on_available_chat(tx, &id, |c| c.contact_card_shared_at = Some(now())))?;
    Ok(no_content())
}

async fn mark_read(State(s): State<SimState>, Path(id): Path<String>) -> ApiResult {
    s.txn(|tx| {
        let t = now();
        let ids = {
            let chat = tx.m.chat_mut(&id)?;
            chat.ensure_available()?;
            chat.last_read_at = Some(t);
            chat.messages.clone()
        };
        for mid in ids {
            if let Some(m) = tx.m.messages.get_mut(&mid)
                && !m.is_from_me()
                && m.read_at.is_none()
            {
                m.read_at = Some(t);
                m.updated_at = t;
            }
        }
        Ok::<_, ApiError>(())
    })?;
    Ok(no_content())
}

#[derive(Deserialize)]
struct VoiceMemoIn {
    voice_memo_url: Option<String>,
    attachment_id: Option<String>,
}

async fn send_voicememo(
    State(s): State<SimState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let input: VoiceMemoIn = parse_json(&body)?;
    let part = match (input.voice_memo_url, input.attachment_id) {
        (Some(url), None) => {
            if !validation::is_http_url(&url) {
                return Err(ApiError::invalid_param(
                    "voice_memo_url must be an http(s) URL",
                ));
            }
            PartSpec::MediaUrl { url }
        }
        (None, Some(attachment_id)) => PartSpec::MediaAttachment { attachment_id },
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_param(
                "Give exactly one of voice_memo_url or attachment_id, not both",
            ));
        }
        (None, None) => return Err(ApiError::missing_field("voice_memo_url or attachment_id")),
    };
    let content = ContentSpec {
        parts: vec![part],
        effect: None,
        idempotency_key: None,
        preferred_service: None,
        reply_to: None,
    };
    s.txn(|tx| {
        let msg_id = tx.send_outbound(&id, &content, true)?;
        let chat = tx.m.chat(&id)?;
        let msg =
            tx.m.messages
                .get(&msg_id)
                .ok_or_else(|| ApiError::message_not_found(&msg_id))?;
        let memo = match msg.parts.first().map(|p| &p.kind) {
            Some(PartKind::Media(m)) => json!({
                "id": m.id,
                "filename": m.filename,
                "mime_type": m.mime_type,
                "size_bytes": m.size_bytes,
                "url": m.url,
                "duration_ms": null,
            }),
            _ => Value::Null,
        };
        let to: Vec<&str> = chat
            .active()
            .filter(|h| !h.is_me)
            .map(|h| h.handle.as_str())
            .collect();
        with_status(
            StatusCode::ACCEPTED,
            json!({
                "voice_memo": {
                    "id": msg.id,
                    "chat": {
                        "id": chat.id,
                        "handles": chat.handles.iter().map(wire::handle).collect::<Vec<_>>(),
                        "is_active": !chat.left,
                        "is_group": chat.is_group,
                        "service": chat.service.as_str(),
                    },
                    "created_at": wire::ts(msg.created_at),
                    "from": chat.line,
                    "status": msg.status.as_str(),
                    "to": to,
                    "voice_memo": memo,
                    "service": msg.service.as_str(),
                }
            }),
        )
    })
}

#[derive(Deserialize)]
struct HandleIn {
    handle: Option<String>,
}

async fn add_participant(
    State(s): State<SimState>,
    Path(id): Path<String>,
    Extension(trace): Extension<TraceId>,
    body: Bytes,
) -> ApiResult {
    let input: HandleIn = parse_json(&body)?;
    let handle = input
        .handle
        .ok_or_else(|| ApiError::missing_field("handle"))?;
    let handle = handle.trim().to_owned();
    require_handle("handle", &handle)?;
    let handle = validation::normalize_handle(&handle);
    s.txn(|tx| {
        let chat = tx.m.chat(&id)?;
        chat.ensure_available()?;
        if !chat.is_group {
            return Err(ApiError::invalid_param(
                "Participants can only be added to group chats",
            ));
        }
        if chat.active_handle(&handle).is_some() {
            return Err(ApiError::invalid_param(format!(
                "{handle} is already a participant of chat {id}"
            )));
        }
        let line = chat.line.clone();
        let service = if handle.contains('@') {
            Service::IMessage
        } else {
            chat.service
        };
        let t = now();
        let seq = tx.m.next_seq();
        let h = Handle {
            id: new_id(),
            handle: handle.clone(),
            service,
            joined_at: t,
            is_me: false,
            left_at: None,
            status: HandleStatus::Active,
        };
        let chat = tx.m.chat_mut(&id)?;
        chat.handles.push(h.clone());
        chat.updated_at = t;
        chat.activity_seq = seq;
        tx.emit(Event::same(
            "participant.added",
            Some(&line),
            wire::participant_added(&id, &h),
        ));
        with_status(
            StatusCode::ACCEPTED,
            wire::accepted("Participant addition queued", &trace.0),
        )
    })
}

async fn remove_participant(
    State(s): State<SimState>,
    Path(id): Path<String>,
    Extension(trace): Extension<TraceId>,
    body: Bytes,
) -> ApiResult {
    let input: HandleIn = parse_json(&body)?;
    let handle = input
        .handle
        .ok_or_else(|| ApiError::missing_field("handle"))?;
    let handle = handle.trim().to_owned();
    require_handle("handle", &handle)?;
    s.txn(|tx| {
        let chat = tx.m.chat(&id)?;
        chat.ensure_available()?;
        if !chat.is_group {
            return Err(ApiError::invalid_param(
                "Participants can only be removed from group chats",
            ));
        }
        let target = match chat.active_handle(&handle) {
            Some(h) if !h.is_me => h.id.clone(),
            Some(_) => {
                return Err(ApiError::invalid_param(
                    "You cannot remove your own line; use POST /v3/chats/{id}/leave",
                ));
            }
            None => {
                return Err(ApiError::invalid_param(format!(
                    "{handle} is not an active participant of chat {id}"
                )));
            }
        };
        let active = chat.active().count();
        if active <= 3 {
            return Err(ApiError::invalid_param(format!(
                "A group must keep at least 3 members; this one has {active}"
            )));
        }
        let line = chat.line.clone();
        let t = now();
        let seq = tx.m.next_seq();
        let chat = tx.m.chat_mut(&id)?;
        let mut removed = None;
        for h in chat.handles.iter_mut().filter(|h| h.id == target) {
            h.status = HandleStatus::Removed;
            h.left_at = Some(t);
            removed = Some(h.clone());
        }
        chat.updated_at = t;
        chat.activity_seq = seq;
        if let Some(h) = removed {
            tx.emit(Event::same(
                "participant.removed",
                Some(&line),
                wire::participant_removed(&id, &h, t),
            ));
        }
        with_status(
            StatusCode::ACCEPTED,
            wire::accepted("Participant removal queued", &trace.0),
        )
    })
}

fn set_typing(s: &SimState, id: &str, typing: bool) -> ApiResult {
    s.txn(|tx| {
        let chat = tx.m.chat_mut(id)?;
        chat.ensure_available()?;
        if chat.is_group {
            return Err(ApiError::access_denied(
                "Typing indicators are not supported in group chats",
            ));
        }
        chat.bot_typing = typing;
        Ok(no_content())
    })
}

async fn typing_start(State(s): State<SimState>, Path(id): Path<String>) -> ApiResult {
    set_typing(&s, &id, true)
}

async fn typing_stop(State(s): State<SimState>, Path(id): Path<String>) -> ApiResult {
    set_typing(&s, &id, false)
}

#[derive(Deserialize)]
struct SendIn {
    message: Option<Value>,
}

async fn send_message(State(s): State<SimState>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let input: SendIn = parse_json(&body)?;
    let content = validation::message_content(input.message.as_ref(), "message")?;
    let key = content.idempotency_key.clone();
    s.txn(|tx| {
        idempotent(tx, "chats.messages.send", key.as_deref(), |tx| {
            let msg_id = tx.send_outbound(&id, &content, false)?;
            Ok((
                StatusCode::ACCEPTED,
                wire::send_response(&id, stored(tx, &msg_id)?),
            ))
        })
    })
}

async fn list_messages(
    State(s): State<SimState>,
    Path(id): Path<String>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = Params::from(q)?;
    let limit = p.limit(50)?;
    let cursor = p.cursor()?;
    let (messages, next) = s.read(|m| {
        let chat = m.chat(&id)?;
        let mut items: Vec<(u64, Value)> = chat
            .messages
            .iter()
            .filter_map(|mid| m.messages.get(mid))
            .filter(|msg| msg.deleted_at.is_none())
            .map(|msg| (msg.seq, wire::message(msg)))
            .collect();
        // Newest first.
        items.sort_by_key(|(k, _)| std::cmp::Reverse(*k));
        Ok::<_, ApiError>(paginate(items, cursor, true, limit))
    })?;
    ok(json!({ "messages": messages, "next_cursor": next }))
}

async fn request_location(State(s): State<SimState>, Path(id): Path<String>) -> ApiResult {
    s.txn(|tx| {
        let chat = tx.m.chat_mut(&id)?;
        chat.ensure_available()?;
        if chat.is_group || chat.service != Service::IMessage {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                1005,
                "Location requests are supported only in 1:1 iMessage chats",
            ));
        }
        chat.location_requested_at = Some(now());
        ok(json!({ "success": true, "message": "Location request sent" }))
    })
}

async fn get_location(State(s): State<SimState>, Path(id): Path<String>) -> ApiResult {
    let features = s.read(|m| {
        let chat = m.chat(&id)?;
        let Some(at) = chat.location_requested_at else {
            return Ok::<_, ApiError>(Vec::new());
        };
        Ok(chat
            .active()
            .filter(|h| !h.is_me)
            .enumerate()
            .map(|(i, h)| {
                let offset = i as f64 * 0.001;
                json!({
                    "type": "Feature",
                    "geometry": { "type": "Point", "coordinates": [-77.0365 + offset, 38.8977 + offset] },
                    "properties": {
                        "handle": h.handle,
                        "address": "1600 Pennsylvania Ave NW",
                        "locality": "Washington",
                        "updated_at": wire::ts(at),
                    }
                })
            })
            .collect())
    })?;
    ok(json!({ "success": true, "data": { "type": "FeatureCollection", "features": features } }))
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct CreateMessageIn {
    to: Option<Vec<String>>,
    message: Option<Value>,
    continuation_message: Option<Value>,
}

async fn create_message(State(s): State<SimState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let input: CreateMessageIn = parse_json(&body)?;
    let line = s.settings().bot_line.clone();
    let to = recipients(input.to, Some(&line))?;
    let mut content = validation::message_content(input.message.as_ref(), "message")?;
    if let Some(c) = &input.continuation_message
        && c.get("text").and_then(Value::as_str).is_none()
    {
        return Err(ApiError::missing_field("continuation_message.text"));
    }
    let header_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(|s| s.trim().to_owned())
                .map_err(|_| ApiError::invalid_param("Idempotency-Key header must be ASCII text"))
        })
        .transpose()?
        .filter(|k| !k.is_empty());
    if let Some(k) = &header_key {
        if k.len() > 255 {
            return Err(ApiError::invalid_param(
                "Idempotency-Key must be at most 255 characters",
            ));
        }
        if content.idempotency_key.is_none() {
            content.idempotency_key = Some(k.clone());
        }
    }
    let key = header_key.or_else(|| content.idempotency_key.clone());
    let base_url = s.settings().base_url.clone();
    s.txn(|tx| {
        idempotent(tx, "messages.create", key.as_deref(), |tx| {
            tx.m.resolve_parts(&content.parts, &base_url)?;
            let service = Service::from_preferred(content.preferred_service.as_deref());
            let key_set: BTreeSet<String> = to.iter().cloned().collect();
            let existing = tx.m.find_chat(&line, &key_set).map(|c| c.id.clone());
            if let Some(r) = &content.reply_to {
                let target = tx.m.message(&r.message_id)?;
                if existing.as_deref() != Some(target.chat_id.as_str()) {
                    return Err(ApiError::invalid_param(format!(
                        "reply_to.message_id {} belongs to another chat",
                        r.message_id
                    )));
                }
            }
            let (chat_id, created) = match existing {
                Some(id) => (id, false),
                None => (tx.create_chat(&line, &to, service), true),
            };
            let msg_id = tx.send_outbound(&chat_id, &content, false)?;
            let chat = tx.m.chat(&chat_id)?;
            Ok((
                StatusCode::ACCEPTED,
                wire::create_message_response(chat, stored(tx, &msg_id)?, created),
            ))
        })
    })
}

async fn get_message(State(s): State<SimState>, Path(id): Path<String>) -> ApiResult {
    let msg = s.read(|m| m.message(&id).map(wire::message))?;
    ok(msg)
}

#[derive(Deserialize)]
struct EditIn {
    text: Option<String>,
    part_index: Option<Value>,
}

/// Edits are allowed this long after sending.
const EDIT_WINDOW: time::Duration = time::Duration::minutes(15);
/// And at most this many times.
const MAX_EDITS: u32 = 5;

async fn edit_message(State(s): State<SimState>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let input: EditIn = parse_json(&body)?;
    let text = input.text.ok_or_else(|| ApiError::missing_field("text"))?;
    if text.trim().is_empty() {
        return Err(ApiError::invalid_content("text must not be empty"));
    }
    let part_index =
        validation::optional_index(input.part_index.as_ref(), "part_index")?.unwrap_or(0);
    s.txn(|tx| {
        let msg = tx.m.message(&id)?;
        let chat = tx.m.chat(&msg.chat_id)?.clone();
        chat.ensure_available()?;
        if !msg.is_from_me() {
            return Err(ApiError::access_denied(
                "Only messages sent from your line can be edited",
            ));
        }
        match msg.parts.get(part_index as usize).map(|p| &p.kind) {
            Some(PartKind::Text { .. }) => {}
            Some(_) => {
                return Err(ApiError::invalid_param(format!(
                    "part_index {part_index} is not a text part"
                )));
            }
            None => {
                return Err(ApiError::invalid_param(format!(
                    "part_index {part_index} is out of range: the message has {} part(s)",
                    msg.parts.len()
                )));
            }
        }
        if msg.edit_count >= MAX_EDITS {
            return Err(ApiError::invalid_param(format!(
                "A message can be edited at most {MAX_EDITS} times"
            )));
        }
        let t = now();
        if t - msg.created_at > EDIT_WINDOW {
            return Err(ApiError::invalid_param(
                "A message can be edited only within 15 minutes of sending",
            ));
        }
        let msg = tx.m.message_mut(&id)?;
        if let Some(part) = msg.parts.get_mut(part_index as usize)
            && let PartKind::Text { value, .. } = &mut part.kind
        {
            value.clone_from(&text);
        }
        msg.edit_count += 1;
        msg.updated_at = t;
        let msg = msg.clone();
        tx.emit(wire::message_edited(&msg, &chat, part_index, &text, t));
        ok(wire::message(&msg))
    })
}

async fn delete_message(State(s): State<SimState>, Path(id): Path<String>) -> ApiResult {
    // The old spec sent `{chat_id}` in the body; any body is accepted and ignored.
    s.txn(|tx| {
        let msg = tx.m.message_mut(&id)?;
        msg.deleted_at = Some(now());
        Ok::<_, ApiError>(())
    })?;
    Ok(no_content())
}

#[derive(Deserialize)]
struct ReactIn {
    operation: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    custom_emoji: Option<String>,
    part_index: Option<Value>,
}

async fn react(
    State(s): State<SimState>,
    Path(id): Path<String>,
    Extension(trace): Extension<TraceId>,
    body: Bytes,
) -> ApiResult {
    let input: ReactIn = parse_json(&body)?;
    let add = validation::reaction_operation(input.operation.as_deref(), true)?;
    let kind = validation::reaction(input.kind.as_deref(), input.custom_emoji.as_deref(), add)?;
    if kind == "sticker" {
        return Err(ApiError::invalid_param(
            "Sticker reactions cannot be sent through the API",
        ));
    }
    let part_index =
        validation::optional_index(input.part_index.as_ref(), "part_index")?.unwrap_or(0);
    let emoji = input.custom_emoji.filter(|_| kind == "custom");
    s.txn(|tx| {
        let msg = tx.m.message(&id)?;
        let line = tx.m.chat(&msg.chat_id)?.line.clone();
        tx.react(&id, &line, add, &kind, emoji, part_index)?;
        ok(wire::accepted(
            if add {
                "Reaction added"
            } else {
                "Reaction removed"
            },
            &trace.0,
        ))
    })
}

async fn thread(
    State(s): State<SimState>,
    Path(id): Path<String>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = Params::from(q)?;
    let limit = p.limit(50)?;
    let cursor = p.cursor()?;
    let descending = match p.get("order") {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::invalid_param(format!(
                "order must be asc or desc (got {other:?})"
            )));
        }
    };
    let (messages, next) = s.read(|m| {
        let msg = m.message(&id)?;
        let root = m.thread_root(&id);
        let chat = m.chat(&msg.chat_id)?;
        let mut items: Vec<(u64, Value)> = chat
            .messages
            .iter()
            .filter_map(|mid| m.messages.get(mid))
            .filter(|x| x.deleted_at.is_none() && (x.id == root || m.thread_root(&x.id) == root))
            .map(|x| (x.seq, wire::message(x)))
            .collect();
        if descending {
            items.sort_by_key(|(k, _)| std::cmp::Reverse(*k));
        } else {
            items.sort_by_key(|(k, _)| *k);
        }
        Ok::<_, ApiError>(paginate(items, cursor, descending, limit))
    })?;
    ok(json!({ "messages": messages, "next_cursor": next }))
}

#[derive(Deserialize)]
struct AppCardIn {
    layout: Option<Value>,
    fallback_text: Option<String>,
    url: Option<String>,
    #[allow(dead_code)]
    interactive: Option<bool>,
}

async fn update_app_card(
    State(s): State<SimState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let input: AppCardIn = parse_json(&body)?;
    let layout = input
        .layout
        .ok_or_else(|| ApiError::missing_field("layout"))?;
    s.txn(|tx| {
        let msg: &Message = tx.m.message(&id)?;
        let chat_id = msg.chat_id.clone();
        let app = match (msg.is_from_me(), msg.parts.as_slice()) {
            (true, [p]) => match &p.kind {
                PartKind::App { app, .. } => app.clone(),
                _ => Value::Null,
            },
            _ => Value::Null,
        };
        if app.is_null() {
            return Err(ApiError::invalid_param(format!(
                "Message {id} is not one of your imessage_app cards"
            )));
        }
        if msg.delivered_at.is_none() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                1005,
                format!("App card {id} has not been delivered yet; try again later"),
            ));
        }
        let part = json!({
            "type": "imessage_app",
            "app": app,
            "layout": layout,
            "url": input.url,
            "fallback_text": input.fallback_text,
        });
        let content = validation::message_content(Some(&json!({ "parts": [part] })), "body")?;
        let msg_id = tx.send_outbound(&chat_id, &content, false)?;
        with_status(
            StatusCode::ACCEPTED,
            wire::send_response(&chat_id, stored(tx, &msg_id)?),
        )
    })
}

// ---------------------------------------------------------------------------------------
// Attachments
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct CreateAttachmentIn {
    filename: Option<String>,
    content_type: Option<String>,
    size_bytes: Option<Value>,
}

async fn create_attachment(State(s): State<SimState>, body: Bytes) -> ApiResult {
    let input: CreateAttachmentIn = parse_json(&body)?;
    let filename = input
        .filename
        .ok_or_else(|| ApiError::missing_field("filename"))?;
    let content_type = input
        .content_type
        .ok_or_else(|| ApiError::missing_field("content_type"))?;
    let size = input
        .size_bytes
        .ok_or_else(|| ApiError::missing_field("size_bytes"))?;
    let filename = filename.trim().to_owned();
    if filename.is_empty() || filename.contains(['/', '\\']) || filename.len() > 255 {
        return Err(ApiError::invalid_param(
            "filename must be a plain file name (1 to 255 characters, no slashes)",
        ));
    }
    if !validation::CONTENT_TYPES.contains(&content_type.as_str()) {
        return Err(ApiError::invalid_param(format!(
            "content_type {content_type:?} is not supported"
        )));
    }
    let size_bytes = size
        .as_u64()
        .filter(|n| (1..=validation::MAX_ATTACHMENT_BYTES).contains(n))
        .ok_or_else(|| {
            ApiError::invalid_param(format!(
                "size_bytes must be an integer from 1 to {}",
                validation::MAX_ATTACHMENT_BYTES
            ))
        })?;
    let base_url = s.settings().base_url.clone();
    let t = now();
    let a = Attachment {
        id: new_id(),
        filename,
        content_type,
        size_bytes,
        created_at: t,
        upload_token: random_hex32(),
        data: None,
    };
    let body = wire::attachment_upload(
        &a,
        format!("{base_url}/_sim/upload/{}?sig={}", a.id, a.upload_token),
        crate::state::download_url(&base_url, &a.id, &a.filename),
    );
    s.txn(|tx| {
        tx.m.attachments.insert(a.id.clone(), a);
    });
    ok(body)
}

async fn get_attachment(State(s): State<SimState>, Path(id): Path<String>) -> ApiResult {
    let base_url = s.settings().base_url.clone();
    let body = s.read(|m| {
        m.attachments
            .get(&id)
            .map(|a| wire::attachment(a, &base_url))
            .ok_or_else(|| ApiError::attachment_not_found(&id))
    })?;
    ok(body)
}

async fn delete_attachment(State(s): State<SimState>, Path(id): Path<String>) -> ApiResult {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::invalid_param(format!(
            "attachment id {id:?} is not a UUID"
        )));
    }
    s.txn(|tx| {
        tx.m.attachments
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| ApiError::attachment_not_found(&id))
    })?;
    Ok(no_content())
}

async fn upload_attachment(
    State(s): State<SimState>,
    Path(id): Path<String>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let p = Params::from(q)?;
    let sig = p.get("sig").unwrap_or("").to_owned();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    s.txn(|tx| {
        let a =
            tx.m.attachments
                .get_mut(&id)
                .ok_or_else(|| ApiError::attachment_not_found(&id))?;
        if !linq::webhook::secrets_equal(sig.as_bytes(), a.upload_token.as_bytes()) {
            return Err(ApiError::access_denied(
                "Upload URL signature does not match",
            ));
        }
        if !content_type.eq_ignore_ascii_case(&a.content_type) {
            return Err(ApiError::invalid_param(format!(
                "Content-Type must be {} (the required_headers value), got {content_type:?}",
                a.content_type
            )));
        }
        if body.len() as u64 != a.size_bytes {
            return Err(ApiError::invalid_param(format!(
                "Upload is {} bytes but size_bytes was {}",
                body.len(),
                a.size_bytes
            )));
        }
        a.data = Some(body.clone());
        Ok(())
    })?;
    let mut resp = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", random_hex32())) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

async fn download_attachment(
    State(s): State<SimState>,
    Path((id, _filename)): Path<(String, String)>,
) -> ApiResult {
    let (data, ct) = s.read(|m| match m.attachments.get(&id) {
        Some(a) => match &a.data {
            Some(d) => Ok((d.clone(), a.content_type.clone())),
            None => Err(ApiError::attachment_not_ready(&id)),
        },
        None => Err(ApiError::attachment_not_found(&id)),
    })?;
    let mut resp = data.into_response();
    if let Ok(v) = HeaderValue::from_str(&ct) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(resp)
}

async fn vcf(State(s): State<SimState>, Path(file): Path<String>) -> ApiResult {
    let number = format!("+{}", file.trim_end_matches(".vcf").trim_start_matches('+'));
    let card = s.read(|m| {
        if !m.is_line(&number) {
            return None;
        }
        Some(
            m.contact_cards
                .iter()
                .find(|c| c.phone_number == number)
                .cloned()
                .unwrap_or(ContactCard {
                    phone_number: number.clone(),
                    first_name: "Linq".into(),
                    last_name: None,
                    image_url: None,
                    is_active: false,
                }),
        )
    });
    let Some(card) = card else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            1005,
            format!("No contact card for {number}"),
        ));
    };
    let last = card.last_name.clone().unwrap_or_default();
    let text = format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:{last};{};;;\r\nFN:{} {last}\r\nTEL;TYPE=CELL:{}\r\nEND:VCARD\r\n",
        card.first_name, card.first_name, card.phone_number
    );
    let mut resp = text.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/vcard"));
    Ok(resp)
}

// ---------------------------------------------------------------------------------------
// Phone numbers, capability, contact cards
// ---------------------------------------------------------------------------------------

async fn list_phone_numbers(State(s): State<SimState>) -> ApiResult {
    let lines = s.read(|m| {
        m.lines
            .iter()
            .map(|l| {
                json!({
                    "id": l.id,
                    "phone_number": l.phone_number,
                    "forwarding_number": l.forwarding_number,
                    "reputation": wire::reputation(),
                    "health_status": wire::reputation(),
                })
            })
            .collect::<Vec<_>>()
    });
    ok(json!({ "phone_numbers": lines }))
}

async fn update_phone_number(
    State(s): State<SimState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let input: serde_json::Map<String, Value> = parse_json(&body)?;
    let forwarding = match input.get("forwarding_number") {
        None => return Err(ApiError::missing_field("forwarding_number")),
        Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            require_e164("forwarding_number", s.trim())?;
            Some(s.trim().to_owned())
        }
        Some(_) => {
            return Err(ApiError::invalid_body(
                "Invalid request body: forwarding_number must be a string or null",
            ));
        }
    };
    s.txn(|tx| {
        let line = tx.m.lines.iter_mut().find(|l| l.id == id).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                1005,
                format!("Phone number not found: {id}"),
            )
        })?;
        line.forwarding_number = forwarding;
        ok(json!({
            "id": line.id,
            "forwarding_number": line.forwarding_number,
            "phone_number": line.phone_number,
        }))
    })
}

async fn list_phonenumbers_deprecated(State(s): State<SimState>) -> ApiResult {
    let lines = s.read(|m| {
        m.lines
            .iter()
            .map(|l| {
                json!({
                    "id": l.id,
                    "phone_number": l.phone_number,
                    "capabilities": { "sms": true, "mms": true, "voice": false },
                    "country_code": "US",
                    "type": "mobile",
                })
            })
            .collect::<Vec<_>>()
    });
    ok(json!({ "phone_numbers": lines }))
}

async fn available_number(
    State(s): State<SimState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = Params::from(q)?;
    let to = p.all("to");
    for (i, t) in to.iter().enumerate() {
        require_handle(&format!("to[{i}]"), t)?;
    }
    let base_url = s.settings().base_url.clone();
    let line = s.read(|m| {
        let key: BTreeSet<String> = to.iter().map(|t| validation::normalize_handle(t)).collect();
        m.lines
            .iter()
            .find(|l| !key.is_empty() && m.find_chat(&l.phone_number, &key).is_some())
            .or_else(|| m.lines.first())
            .map(|l| l.phone_number.clone())
    });
    let line = line.ok_or_else(|| ApiError::internal("no lines configured"))?;
    ok(json!({
        "phone_number": line,
        "vcf_url": format!("{base_url}/_sim/vcf/{}.vcf", line.trim_start_matches('+')),
    }))
}

#[derive(Deserialize)]
struct CapabilityIn {
    address: Option<String>,
    from: Option<String>,
}

fn capability(s: &SimState, body: &Bytes, rcs: bool) -> ApiResult {
    let input: CapabilityIn = parse_json(body)?;
    let address = input
        .address
        .ok_or_else(|| ApiError::missing_field("address"))?;
    let address = address.trim().to_owned();
    require_handle("address", &address)?;
    if let Some(from) = &input.from {
        require_e164("from", from)?;
        if !s.read(|m| m.is_line(from)) {
            return Err(ApiError::phone_denied(from));
        }
    }
    // The simulator treats every handle as iMessage-capable and every phone as RCS-capable.
    let available = !rcs || validation::is_e164(&address);
    ok(json!({ "address": address, "available": available }))
}

async fn check_imessage(State(s): State<SimState>, body: Bytes) -> ApiResult {
    capability(&s, &body, false)
}

async fn check_rcs(State(s): State<SimState>, body: Bytes) -> ApiResult {
    capability(&s, &body, true)
}

fn card_json(c: &ContactCard) -> Value {
    json!({
        "first_name": c.first_name,
        "last_name": c.last_name,
        "image_url": c.image_url,
        "phone_number": c.phone_number,
        "is_active": c.is_active,
    })
}

async fn get_contact_cards(
    State(s): State<SimState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = Params::from(q)?;
    let number = p.get("phone_number").map(|n| n.trim().to_owned());
    if let Some(n) = &number {
        require_e164("phone_number", n)?;
    }
    let cards = s.read(|m| {
        m.contact_cards
            .iter()
            .filter(|c| number.as_ref().is_none_or(|n| &c.phone_number == n))
            .map(card_json)
            .collect::<Vec<_>>()
    });
    ok(json!({ "contact_cards": cards }))
}

#[derive(Deserialize)]
struct CardIn {
    first_name: Option<String>,
    last_name: Option<String>,
    image_url: Option<String>,
    phone_number: Option<String>,
}

fn check_image_url(url: Option<&str>) -> Result<(), ApiError> {
    match url {
        Some(u) if !u.is_empty() && !validation::is_http_url(u) => {
            Err(ApiError::invalid_param("image_url must be an http(s) URL"))
        }
        _ => Ok(()),
    }
}

async fn create_contact_card(State(s): State<SimState>, body: Bytes) -> ApiResult {
    let input: CardIn = parse_json(&body)?;
    let first_name = input
        .first_name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::missing_field("first_name"))?;
    let number = input
        .phone_number
        .ok_or_else(|| ApiError::missing_field("phone_number"))?;
    require_e164("phone_number", &number)?;
    check_image_url(input.image_url.as_deref())?;
    s.txn(|tx| {
        if !tx.m.is_line(&number) {
            return Err(ApiError::phone_denied(&number));
        }
        let card = ContactCard {
            phone_number: number.clone(),
            first_name,
            last_name: input.last_name,
            image_url: input.image_url,
            is_active: true,
        };
        tx.m.contact_cards.retain(|c| c.phone_number != number);
        let body = card_json(&card);
        tx.m.contact_cards.push(card);
        ok(body)
    })
}

async fn update_contact_card(
    State(s): State<SimState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Bytes,
) -> ApiResult {
    let p = Params::from(q)?;
    let number = p
        .get("phone_number")
        .map(|n| n.trim().to_owned())
        .ok_or_else(|| ApiError::missing_field("phone_number (query)"))?;
    require_e164("phone_number", &number)?;
    let input: CardIn = parse_json(&body)?;
    check_image_url(input.image_url.as_deref())?;
    s.txn(|tx| {
        let card =
            tx.m.contact_cards
                .iter_mut()
                .find(|c| c.phone_number == number)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        1005,
                        format!("No contact card for {number}; create one first"),
                    )
                })?;
        if let Some(f) = input.first_name.filter(|n| !n.trim().is_empty()) {
            card.first_name = f;
        }
        if let Some(l) = input.last_name {
            card.last_name = Some(l);
        }
        if let Some(i) = input.image_url {
            card.image_url = Some(i);
        }
        ok(card_json(card))
    })
}

// ---------------------------------------------------------------------------------------
// Webhook subscriptions
// ---------------------------------------------------------------------------------------

fn subscription_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        1005,
        format!("Webhook subscription not found: {id}"),
    )
}

fn check_target_url(url: &str) -> Result<(), ApiError> {
    if !validation::is_http_url(url) || url.len() > 2048 {
        return Err(ApiError::invalid_param(
            "target_url must be an http(s) URL of at most 2048 characters",
        ));
    }
    validation::webhook_version(url)?;
    Ok(())
}

fn check_phone_numbers(numbers: &[String]) -> Result<(), ApiError> {
    for (i, n) in numbers.iter().enumerate() {
        require_e164(&format!("phone_numbers[{i}]"), n)?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct CreateSubIn {
    target_url: Option<String>,
    subscribed_events: Option<Vec<String>>,
    phone_numbers: Option<Vec<String>>,
}

async fn create_subscription(State(s): State<SimState>, body: Bytes) -> ApiResult {
    let input: CreateSubIn = parse_json(&body)?;
    let target_url = input
        .target_url
        .ok_or_else(|| ApiError::missing_field("target_url"))?;
    check_target_url(&target_url)?;
    let events = input
        .subscribed_events
        .ok_or_else(|| ApiError::missing_field("subscribed_events"))?;
    validation::subscribed_events(&events)?;
    if let Some(n) = &input.phone_numbers {
        check_phone_numbers(n)?;
    }
    s.txn(|tx| {
        if let Some(other) =
            tx.m.subscriptions
                .iter()
                .find(|x| x.target_url == target_url)
        {
            return Err(ApiError::invalid_param(format!(
                "target_url is already used by subscription {}",
                other.id
            )));
        }
        let t = now();
        let sub = Subscription {
            id: new_id(),
            created_at: t,
            updated_at: t,
            target_url,
            secret: linq::webhook::WebhookSecret::generate(),
            subscribed_events: events,
            phone_numbers: input.phone_numbers.filter(|n| !n.is_empty()),
            is_active: true,
        };
        let body = wire::subscription(&sub, true);
        tx.m.subscriptions.push(sub);
        with_status(StatusCode::CREATED, body)
    })
}

async fn list_subscriptions(State(s): State<SimState>) -> ApiResult {
    let subs = s.read(|m| {
        m.subscriptions
            .iter()
            .map(|x| wire::subscription(x, false))
            .collect::<Vec<_>>()
    });
    ok(json!({ "subscriptions": subs }))
}

async fn get_subscription(State(s): State<SimState>, Path(id): Path<String>) -> ApiResult {
    let sub = s.read(|m| {
        m.subscriptions
            .iter()
            .find(|x| x.id == id)
            .map(|x| wire::subscription(x, false))
            .ok_or_else(|| subscription_not_found(&id))
    })?;
    ok(sub)
}

async fn update_subscription(
    State(s): State<SimState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let input: serde_json::Map<String, Value> = parse_json(&body)?;
    let is_active = match input.get("is_active") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(ApiError::invalid_body(
                "Invalid request body: is_active must be a boolean",
            ));
        }
    };
    let strings = |key: &str| -> Result<Option<Option<Vec<String>>>, ApiError> {
        match input.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => serde_json::from_value::<Vec<String>>(v.clone())
                .map(|l| Some(Some(l)))
                .map_err(|_| {
                    ApiError::invalid_body(format!(
                        "Invalid request body: {key} must be an array of strings"
                    ))
                }),
        }
    };
    let phone_numbers = strings("phone_numbers")?;
    if let Some(Some(n)) = &phone_numbers {
        check_phone_numbers(n)?;
    }
    let events = strings("subscribed_events")?.flatten();
    if let Some(e) = &events {
        validation::subscribed_events(e)?;
    }
    let target_url = match input.get("target_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) => {
            check_target_url(u)?;
            Some(u.clone())
        }
        Some(_) => {
            return Err(ApiError::invalid_body(
                "Invalid request body: target_url must be a string",
            ));
        }
    };
    s.txn(|tx| {
        if let Some(u) = &target_url
            && let Some(other) =
                tx.m.subscriptions
                    .iter()
                    .find(|x| &x.target_url == u && x.id != id)
        {
            return Err(ApiError::invalid_param(format!(
                "target_url is already used by subscription {}",
                other.id
            )));
        }
        let sub =
            tx.m.subscriptions
                .iter_mut()
                .find(|x| x.id == id)
                .ok_or_else(|| subscription_not_found(&id))?;
        if let Some(a) = is_active {
            sub.is_active = a;
        }
        if let Some(n) = phone_numbers {
            sub.phone_numbers = n.filter(|n| !n.is_empty());
        }
        if let Some(e) = events {
            sub.subscribed_events = e;
        }
        if let Some(u) = target_url {
            sub.target_url = u;
        }
        sub.updated_at = now();
        ok(wire::subscription(sub, false))
    })
}

async fn delete_subscription(State(s): State<SimState>, Path(id): Path<String>) -> ApiResult {
    s.txn(|tx| {
        let before = tx.m.subscriptions.len();
        tx.m.subscriptions.retain(|x| x.id != id);
        if tx.m.subscriptions.len() == before {
            return Err(subscription_not_found(&id));
        }
        webhooks::drop_queue(tx.m, &id);
        Ok(())
    })?;
    Ok(no_content())
}

async fn list_webhook_events() -> ApiResult {
    ok(json!({
        "doc_url": "https://docs.linqapp.com/guides/webhooks/events",
        "events": validation::WEBHOOK_EVENT_TYPES,
    }))
}
