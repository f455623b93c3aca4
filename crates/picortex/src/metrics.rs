//! Process-wide counters, reported by `/health`. Counts since start; durable totals live in the
//! store.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub webhooks_accepted: AtomicU64,
    pub webhooks_duplicate: AtomicU64,
    pub webhooks_rejected_signature: AtomicU64,
    pub webhooks_rejected_malformed: AtomicU64,
    pub webhooks_too_large: AtomicU64,
    pub turns_started: AtomicU64,
    pub turns_done: AtomicU64,
    pub turns_failed: AtomicU64,
    pub deliveries_accepted: AtomicU64,
    pub delivery_retries: AtomicU64,
    pub deliveries_failed: AtomicU64,
    pub frontend_logs: AtomicU64,
    pub gate_respond: AtomicU64,
    pub gate_skip: AtomicU64,
    pub gate_command: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "webhooks_accepted": get(&self.webhooks_accepted),
            "webhooks_duplicate": get(&self.webhooks_duplicate),
            "webhooks_rejected_signature": get(&self.webhooks_rejected_signature),
            "webhooks_rejected_malformed": get(&self.webhooks_rejected_malformed),
            "webhooks_too_large": get(&self.webhooks_too_large),
            "turns_started": get(&self.turns_started),
            "turns_done": get(&self.turns_done),
            "turns_failed": get(&self.turns_failed),
            "deliveries_accepted": get(&self.deliveries_accepted),
            "delivery_retries": get(&self.delivery_retries),
            "deliveries_failed": get(&self.deliveries_failed),
            "frontend_logs": get(&self.frontend_logs),
            "gate_respond": get(&self.gate_respond),
            "gate_skip": get(&self.gate_skip),
            "gate_command": get(&self.gate_command),
        })
    }
}
