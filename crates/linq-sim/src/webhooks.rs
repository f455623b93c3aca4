//! Webhook events, per-subscription delivery queues, signing and retries.
//!
//! An [`Event`] is fanned out to every active subscription that lists its type (and whose
//! `phone_numbers` filter, if any, holds the event's line). For each, the envelope is rendered
//! in the subscription's payload version (`?version=` on its target URL, default 2026-02-03)
//! and queued. One background worker per subscription delivers its queue: it signs every
//! attempt with both the Standard Webhooks headers and the legacy `X-Webhook-*` headers,
//! treats 2xx as delivered, retries 5xx, 429, network errors and timeouts with exponential
//! backoff (without blocking later events), and gives up on any other status. Delivery is at
//! least once. Faults (`duplicate_rate`, `delay_ms`, `reorder`) are applied at enqueue time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use linq::webhook::{self as signing, WebhookSecret};
use rand::Rng;
use serde_json::Value;
use tokio::sync::Notify;

use crate::errors::random_hex32;
use crate::state::{EventRecord, LOG_CAPACITY, Model, SimState, Ts, new_id, now};
use crate::wire;

/// The newest payload version, the default for subscriptions.
pub const LATEST_VERSION: &str = "2026-02-03";
/// The older payload version (`?version=2025-01-01`).
pub const LEGACY_VERSION: &str = "2025-01-01";

/// How deliveries are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub base_delay: Duration,
    /// Upper bound on one wait.
    pub max_delay: Duration,
    /// Per-attempt response timeout.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// An event's `data`, per payload version.
#[derive(Clone, Debug)]
pub enum EventData {
    /// The same in both versions.
    Same(Value),
    /// `message.*`: the two versions differ.
    Message { v2026: Value, v2025: Value },
    /// Exists only in 2026-02-03 (`message.edited`).
    Only2026(Value),
}

/// One webhook event before it is rendered per subscription.
#[derive(Clone, Debug)]
pub struct Event {
    pub event_type: &'static str,
    /// The bot line the event concerns (for `phone_numbers` filters).
    pub line: Option<String>,
    pub data: EventData,
}

impl Event {
    pub fn same(event_type: &'static str, line: Option<&str>, data: Value) -> Self {
        Self {
            event_type,
            line: line.map(str::to_owned),
            data: EventData::Same(data),
        }
    }

    fn data_for(&self, version: &str) -> Option<&Value> {
        match (&self.data, version) {
            (EventData::Same(v), _) => Some(v),
            (EventData::Message { v2025, .. }, LEGACY_VERSION) => Some(v2025),
            (EventData::Message { v2026, .. }, _) => Some(v2026),
            (EventData::Only2026(_), LEGACY_VERSION) => None,
            (EventData::Only2026(v), _) => Some(v),
        }
    }

    fn latest(&self) -> &Value {
        match &self.data {
            EventData::Same(v) | EventData::Only2026(v) => v,
            EventData::Message { v2026, .. } => v2026,
        }
    }
}

/// One queued delivery of one event to one subscription.
#[derive(Clone, Debug)]
pub struct Pending {
    pub delivery_id: String,
    pub event_id: String,
    pub event_type: String,
    pub version: &'static str,
    pub body: Bytes,
    pub subscription_id: String,
    pub target_url: String,
    pub secret: WebhookSecret,
    /// Attempts made so far.
    pub attempts: u32,
    pub not_before: Instant,
}

/// A subscription's queue and its worker.
#[derive(Debug, Default)]
pub struct SubQueue {
    pub items: VecDeque<Pending>,
    pub notify: Arc<Notify>,
    pub worker: Option<tokio::task::AbortHandle>,
}

/// One delivery attempt, kept for the admin state.
#[derive(Clone, Debug)]
pub struct DeliveryRecord {
    pub delivery_id: String,
    pub event_id: String,
    pub event_type: String,
    pub subscription_id: String,
    pub target_url: String,
    pub webhook_version: String,
    pub attempt: u32,
    pub at: Ts,
    /// `delivered`, `retrying` or `failed`.
    pub status: &'static str,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// Renders `event` for every matching subscription and queues it.
pub(crate) fn enqueue(state: &SimState, m: &mut Model, event: Event) {
    let created_at = now();
    let event_id = new_id();
    let trace_id = random_hex32();
    let partner_id = state.settings().partner_id.clone();
    m.events.push_back(EventRecord {
        event_id: event_id.clone(),
        event_type: event.event_type.to_owned(),
        created_at,
        data: event.latest().clone(),
    });
    while m.events.len() > LOG_CAPACITY {
        m.events.pop_front();
    }

    let faults = m.faults.clone();
    let targets: Vec<_> = m
        .subscriptions
        .iter()
        .filter(|s| s.wants(event.event_type, event.line.as_deref()))
        .map(|s| {
            (
                s.id.clone(),
                s.target_url.clone(),
                s.secret.clone(),
                s.version(),
            )
        })
        .collect();
    let mut rng = rand::rng();
    for (sub_id, target_url, secret, version) in targets {
        let Some(data) = event.data_for(version) else {
            continue;
        };
        let envelope = wire::envelope(
            version,
            event.event_type,
            &event_id,
            created_at,
            &trace_id,
            &partner_id,
            data.clone(),
        );
        let body = Bytes::from(envelope.to_string());
        let copies = if faults.duplicate_rate > 0.0 && rng.random::<f64>() < faults.duplicate_rate {
            2
        } else {
            1
        };
        let queue = m.queues.entry(sub_id.clone()).or_default();
        for _ in 0..copies {
            let mut delay = Duration::from_millis(faults.delay_ms);
            if faults.reorder {
                let window = faults.delay_ms.max(200);
                delay += Duration::from_millis(rng.random_range(0..=window));
            }
            queue.items.push_back(Pending {
                delivery_id: new_id(),
                event_id: event_id.clone(),
                event_type: event.event_type.to_owned(),
                version,
                body: body.clone(),
                subscription_id: sub_id.clone(),
                target_url: target_url.clone(),
                secret: secret.clone(),
                attempts: 0,
                not_before: Instant::now() + delay,
            });
        }
        if queue.worker.is_none() {
            let worker_state = state.clone();
            let id = sub_id.clone();
            queue.worker = Some(state.spawn(async move { worker(worker_state, id).await }));
        }
        queue.notify.notify_one();
    }
}

/// Drops a deleted subscription's queue and stops its worker.
pub(crate) fn drop_queue(m: &mut Model, subscription_id: &str) {
    if let Some(mut q) = m.queues.remove(subscription_id)
        && let Some(h) = q.worker.take()
    {
        h.abort();
    }
}

enum Next {
    Ready(Box<Pending>),
    WaitUntil(Instant, Arc<Notify>),
    Idle(Arc<Notify>),
    Gone,
}

fn pick(state: &SimState, subscription_id: &str) -> Next {
    let mut m = state.lock();
    let reorder = m.faults.reorder;
    let Some(q) = m.queues.get_mut(subscription_id) else {
        return Next::Gone;
    };
    let now = Instant::now();
    let ready: Vec<usize> = q
        .items
        .iter()
        .enumerate()
        .filter(|(_, p)| p.not_before <= now)
        .map(|(i, _)| i)
        .collect();
    let chosen = if reorder && ready.len() > 1 {
        ready.get(rand::rng().random_range(0..ready.len())).copied()
    } else {
        ready.first().copied()
    };
    if let Some(item) = chosen.and_then(|i| q.items.remove(i)) {
        return Next::Ready(Box::new(item));
    }
    match q.items.iter().map(|p| p.not_before).min() {
        Some(at) => Next::WaitUntil(at, q.notify.clone()),
        None => Next::Idle(q.notify.clone()),
    }
}

async fn worker(state: SimState, subscription_id: String) {
    loop {
        match pick(&state, &subscription_id) {
            Next::Gone => return,
            Next::Idle(notify) => notify.notified().await,
            Next::WaitUntil(at, notify) => {
                tokio::select! {
                    _ = notify.notified() => {}
                    _ = tokio::time::sleep_until(at.into()) => {}
                }
            }
            Next::Ready(item) => deliver(&state, *item).await,
        }
    }
}

enum Outcome {
    Delivered(u16),
    Retry(Option<u16>, String),
    Fail(u16, String),
}

async fn deliver(state: &SimState, mut item: Pending) {
    let policy = state.retry_policy();
    item.attempts += 1;
    let started = Instant::now();
    let outcome = attempt(&state.inner.http, &item, policy.timeout).await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, http_status, error) = match &outcome {
        Outcome::Delivered(s) => ("delivered", Some(*s), None),
        Outcome::Retry(s, e) if item.attempts < policy.max_attempts => {
            ("retrying", *s, Some(e.clone()))
        }
        Outcome::Retry(s, e) => (
            "failed",
            *s,
            Some(format!("{e}; gave up after {} attempts", item.attempts)),
        ),
        Outcome::Fail(s, e) => ("failed", Some(*s), Some(e.clone())),
    };
    if let Some(e) = &error {
        tracing::debug!(
            event_id = %item.event_id,
            target = %item.target_url,
            attempt = item.attempts,
            "webhook delivery {status}: {e}"
        );
    }
    let record = DeliveryRecord {
        delivery_id: item.delivery_id.clone(),
        event_id: item.event_id.clone(),
        event_type: item.event_type.clone(),
        subscription_id: item.subscription_id.clone(),
        target_url: item.target_url.clone(),
        webhook_version: item.version.to_owned(),
        attempt: item.attempts,
        at: now(),
        status,
        http_status,
        error,
        duration_ms,
    };
    {
        let mut m = state.lock();
        m.deliveries.push_back(record);
        while m.deliveries.len() > LOG_CAPACITY {
            m.deliveries.pop_front();
        }
        if status == "retrying" {
            let wait = policy.backoff(item.attempts);
            item.not_before = Instant::now() + wait;
            if let Some(q) = m.queues.get_mut(&item.subscription_id) {
                q.items.push_back(item);
            }
        }
    }
    state.notify_changed();
}

async fn attempt(client: &reqwest::Client, item: &Pending, timeout: Duration) -> Outcome {
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = signing::sign(&item.secret, &item.event_id, ts, &item.body);
    let legacy = signing::sign_legacy(&item.secret, ts, &item.body);
    let result = client
        .post(&item.target_url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header(signing::HEADER_ID, &item.event_id)
        .header(signing::HEADER_TIMESTAMP, ts.to_string())
        .header(signing::HEADER_SIGNATURE, signature)
        .header("X-Webhook-Event", &item.event_type)
        .header("X-Webhook-Subscription-ID", &item.subscription_id)
        .header("X-Webhook-Timestamp", ts.to_string())
        .header("X-Webhook-Signature", legacy)
        .body(item.body.clone())
        .send()
        .await;
    match result {
        Ok(resp) => {
            let status = resp.status();
            // Drain the body so the connection can be reused; its content does not matter.
            let _ = resp.bytes().await;
            let code = status.as_u16();
            if status.is_success() {
                Outcome::Delivered(code)
            } else if status.is_server_error() || code == 429 {
                Outcome::Retry(Some(code), format!("receiver answered {status}"))
            } else {
                Outcome::Fail(code, format!("receiver answered {status}; not retried"))
            }
        }
        Err(e) if e.is_timeout() => Outcome::Retry(None, format!("timed out after {timeout:?}")),
        Err(e) => Outcome::Retry(None, format!("network error: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(400));
        assert_eq!(p.backoff(4), Duration::from_millis(500));
        assert_eq!(p.backoff(60), Duration::from_millis(500));
    }

    #[test]
    fn versions_pick_their_data() {
        let e = Event {
            event_type: "message.edited",
            line: None,
            data: EventData::Only2026(json!({"a": 1})),
        };
        assert!(e.data_for(LEGACY_VERSION).is_none());
        assert!(e.data_for(LATEST_VERSION).is_some());
        let e = Event {
            event_type: "message.sent",
            line: None,
            data: EventData::Message {
                v2026: json!(1),
                v2025: json!(2),
            },
        };
        assert_eq!(e.data_for(LEGACY_VERSION), Some(&json!(2)));
        assert_eq!(e.data_for(LATEST_VERSION), Some(&json!(1)));
    }
}
