//! Webhook ingest: `POST /api/linq/inbound`. Verifies the Standard Webhooks signature, parses
//! the event, and stores the raw event together with what it means (a queued message, a
//! delivery update, a reaction) in one durable transaction before answering 2xx. A repeated
//! event id is answered 200 and changes nothing. The attention gate and the turn run after the
//! answer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use linq::events::{Direction, EventPayload, MessageEvent, MessageEventKind, WebhookPart};
use linq::webhook::{self, WebhookSecret};

use crate::metrics::Metrics;
use crate::server::{AppState, RequestId, json_error};
use crate::store::messages::{
    EventAction, InboundMessage, IngestOutcome, OutboundProgress, RawEvent, ReactionChange,
    record_event,
};
use crate::store::outbox::DeliveryStatus;

/// Everything ingest needs besides the store.
pub struct IngestConfig {
    pub secret: WebhookSecret,
}

pub async fn inbound(
    State(app): State<Arc<AppState>>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let verified = match webhook::verify(&app.ingest.secret, &headers, &body, now) {
        Ok(v) => v,
        Err(e) => {
            Metrics::inc(&app.metrics.webhooks_rejected_signature);
            tracing::warn!(request_id = %request_id, reason = %e, "webhook rejected: signature check failed");
            return json_error(StatusCode::UNAUTHORIZED, "invalid webhook signature");
        }
    };
    let event = match linq::events::parse_event(&body) {
        Ok(event) => event,
        Err(e) => {
            Metrics::inc(&app.metrics.webhooks_rejected_malformed);
            tracing::warn!(request_id = %request_id, webhook_id = %verified.id, error = %e, "webhook rejected: malformed event");
            return json_error(StatusCode::BAD_REQUEST, &format!("malformed event: {e}"));
        }
    };
    // The webhook-id is the delivery's idempotency key; Linq sets it to the event id. Prefer
    // the event id from the signed body so a proxy rewriting headers cannot defeat dedupe.
    let event_id = if event.envelope.event_id.is_empty() {
        verified.id.clone()
    } else {
        event.envelope.event_id.clone()
    };
    let action = action_for(&event.payload);
    let inbound_chat = match &action {
        EventAction::Inbound(m) => Some(m.chat_id.clone()),
        _ => None,
    };
    let raw = RawEvent {
        event_id: event_id.clone(),
        event_type: event.envelope.event_type.clone(),
        webhook_version: event.envelope.webhook_version.clone(),
        webhook_timestamp: verified.timestamp,
        request_id: request_id.clone(),
        body: body.to_vec(),
    };
    let outcome = app
        .store
        .write(move |c| record_event(c, &raw, &action))
        .await;
    match outcome {
        Ok(IngestOutcome::Duplicate) => {
            Metrics::inc(&app.metrics.webhooks_duplicate);
            tracing::info!(request_id = %request_id, event_id = %event_id, "duplicate webhook ignored");
            (
                StatusCode::OK,
                axum::Json(serde_json::json!({"ok": true, "duplicate": true})),
            )
                .into_response()
        }
        Ok(outcome) => {
            Metrics::inc(&app.metrics.webhooks_accepted);
            if let (IngestOutcome::AwaitingGate, Some(chat_id)) = (&outcome, &inbound_chat) {
                tracing::info!(request_id = %request_id, event_id = %event_id, event_type = %event.envelope.event_type, "message stored; gate pending");
                app.pending_chats.mark(chat_id);
            } else {
                tracing::info!(request_id = %request_id, event_id = %event_id, event_type = %event.envelope.event_type, ?outcome, "event recorded");
            }
            (
                StatusCode::OK,
                axum::Json(serde_json::json!({"ok": true, "duplicate": false})),
            )
                .into_response()
        }
        Err(e) => {
            // Not durable, so not acknowledged: Linq will deliver it again.
            tracing::error!(request_id = %request_id, event_id = %event_id, error = %e, "could not store webhook");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "could not store the event; retry",
            )
        }
    }
}

/// Decides what an event means for picortex.
pub fn action_for(payload: &EventPayload) -> EventAction {
    match payload {
        EventPayload::Message { kind, message } => message_action(*kind, message),
        EventPayload::MessageFailed(f) => match (&f.message_id, f.code) {
            (Some(id), code) => EventAction::Outbound(OutboundProgress {
                idempotency_key: None,
                message_id: Some(id.clone()),
                status: DeliveryStatus::Failed,
                error: Some(format!(
                    "message.failed code {code}: {}",
                    f.reason.clone().unwrap_or_default()
                )),
            }),
            (None, _) => EventAction::Ignore("message.failed without a message id"),
        },
        EventPayload::Reaction { added, reaction } => {
            match (&reaction.message_id, reaction.is_from_me) {
                (_, true) => EventAction::Ignore("own reaction"),
                (Some(message_id), false) => EventAction::Reaction(ReactionChange {
                    message_id: message_id.clone(),
                    handle: reaction
                        .from_handle
                        .as_ref()
                        .map(|h| h.handle.clone())
                        .or_else(|| reaction.from.clone())
                        .unwrap_or_default(),
                    kind: reaction_kind(&reaction.reaction_type),
                    custom_emoji: reaction.custom_emoji.clone(),
                    added: *added,
                }),
                (None, false) => EventAction::Ignore("reaction without a message id"),
            }
        }
        EventPayload::Other { .. } => EventAction::Ignore("unknown event type"),
        _ => EventAction::Ignore("not acted on"),
    }
}

fn reaction_kind<T: serde::Serialize>(t: &T) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn message_action(kind: MessageEventKind, m: &MessageEvent) -> EventAction {
    let own = m.is_own() || m.direction == Direction::Outbound;
    match kind {
        MessageEventKind::Received if own => EventAction::Ignore("own echo"),
        MessageEventKind::Received => EventAction::Inbound(InboundMessage {
            id: m.id.clone(),
            chat_id: m.chat_id.clone(),
            is_group: m.is_group.unwrap_or(false),
            our_handle: m.owner_handle.clone(),
            sender: m
                .sender
                .as_ref()
                .map(|h| h.handle.clone())
                .unwrap_or_default(),
            text: m.text(),
            parts_json: parts_json(&m.parts),
            reply_to: m.reply_to.as_ref().and_then(|r| r.message_id.clone()),
            reply_to_part: m
                .reply_to
                .as_ref()
                .and_then(|r| r.part_index)
                .map(i64::from),
            sent_at: m.sent_at.clone(),
        }),
        _ if !own => EventAction::Ignore("status of a message we did not send"),
        MessageEventKind::Sent | MessageEventKind::Delivered | MessageEventKind::Read => {
            EventAction::Outbound(OutboundProgress {
                idempotency_key: m.idempotency_key.clone(),
                message_id: Some(m.id.clone()),
                status: match kind {
                    MessageEventKind::Sent => DeliveryStatus::Sent,
                    MessageEventKind::Delivered => DeliveryStatus::Delivered,
                    _ => DeliveryStatus::Read,
                },
                error: None,
            })
        }
    }
}

fn parts_json(parts: &[WebhookPart]) -> String {
    serde_json::Value::Array(parts.iter().map(WebhookPart::to_value).collect()).to_string()
}
