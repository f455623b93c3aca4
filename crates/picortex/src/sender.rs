//! The outbox sender: delivers pending outbox rows through the channel with their idempotency
//! keys, retries retryable failures with exponential backoff (honouring the channel's
//! Retry-After), marks permanent failures, and resumes whatever was pending after a restart.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tracing::Instrument;

use crate::channel::{Channel, ChannelError};
use crate::config::OutboxConfig;
use crate::metrics::Metrics;
use crate::store::outbox::{self, Delivery};
use crate::store::{Store, now_ms};

/// How long the sender sleeps when nothing is due and nobody wakes it.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// Due rows read per pass.
const DUE_PAGE: usize = 256;

pub struct Sender {
    store: Store,
    channel: Arc<dyn Channel>,
    config: OutboxConfig,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    permits: Arc<Semaphore>,
}

impl Sender {
    pub fn new(
        store: Store,
        channel: Arc<dyn Channel>,
        config: OutboxConfig,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> Arc<Self> {
        let permits = Arc::new(Semaphore::new(config.concurrency));
        Arc::new(Self {
            store,
            channel,
            config,
            metrics,
            wake,
            permits,
        })
    }

    /// Runs until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        // Rows being sent. A finished send reports its row here only after its outcome is
        // committed, and reports are taken off only at the top of the loop, between reads: so
        // a read that began before an outcome was committed (and may still list the row as
        // pending) is always handled while the row still counts as in flight, and no row is
        // sent twice without a second read of the store per send.
        let mut in_flight: HashSet<i64> = HashSet::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<i64>();
        loop {
            while let Ok(id) = done_rx.try_recv() {
                in_flight.remove(&id);
            }
            let now = now_ms();
            let read = self
                .store
                .read(move |c| {
                    Ok((
                        outbox::due(c, now, DUE_PAGE)?,
                        outbox::next_due_after(c, now)?,
                    ))
                })
                .await;
            let (due, next_at) = read.unwrap_or_else(|e| {
                tracing::error!(error = %e, "outbox: cannot read due deliveries");
                (Vec::new(), None)
            });
            let full_page = due.len() == DUE_PAGE;
            for delivery in due {
                if !in_flight.insert(delivery.id) {
                    continue;
                }
                let Ok(permit) = self.permits.clone().acquire_owned().await else {
                    return;
                };
                let me = self.clone();
                let done = done_tx.clone();
                let span = tracing::info_span!("deliver", request_id = %delivery.request_id, chat_id = %delivery.chat_id, outbox_id = delivery.id);
                tokio::spawn(
                    async move {
                        let id = delivery.id;
                        me.deliver(delivery).await;
                        let _ = done.send(id);
                        drop(permit);
                        me.wake.notify_one();
                    }
                    .instrument(span),
                );
            }
            if full_page {
                continue;
            }
            // Until the next delivery due after `now`. Rows due already are in flight (every due
            // row not in flight was just spawned); their completion wakes the loop.
            let sleep = next_at.map_or(IDLE_POLL, |at| {
                let ms = (at - now_ms()).clamp(0, IDLE_POLL.as_millis() as i64);
                Duration::from_millis(ms as u64)
            });
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    async fn deliver(&self, d: Delivery) {
        let started = std::time::Instant::now();
        let result = self
            .channel
            .send(&d.chat_id, &d.message, &d.idempotency_key)
            .await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let write = match result {
            Ok(accepted) => {
                Metrics::inc(&self.metrics.deliveries_accepted);
                tracing::info!(message_id = %accepted.message_id, elapsed_ms, attempt = d.attempts + 1, "reply accepted by channel");
                let our = self.channel.our_handle().map(str::to_owned);
                let d2 = d.clone();
                self.store
                    .write_background(move |c| {
                        outbox::mark_accepted(c, &d2, &accepted.message_id, our.as_deref())
                    })
                    .await
            }
            Err(ChannelError::Retryable {
                message,
                retry_after,
            }) if d.attempts + 1 < self.config.max_attempts => {
                Metrics::inc(&self.metrics.delivery_retries);
                let delay = self.backoff(d.attempts, retry_after);
                tracing::warn!(error = %message, attempt = d.attempts + 1, retry_in_ms = delay.as_millis() as u64, "delivery failed, will retry");
                let next = now_ms() + delay.as_millis() as i64;
                let id = d.id;
                self.store
                    .write_background(move |c| outbox::mark_retry(c, id, &message, next))
                    .await
            }
            Err(e) => {
                Metrics::inc(&self.metrics.deliveries_failed);
                let message = e.to_string();
                tracing::error!(error = %message, attempt = d.attempts + 1, "delivery failed for good");
                self.store
                    .write_background(move |c| outbox::mark_failed(c, &d, &message))
                    .await
            }
        };
        if let Err(e) = write {
            // The row stays pending and is sent again with the same key: no double message.
            tracing::error!(error = %e, "outbox: could not record a delivery outcome");
        }
    }

    fn backoff(&self, attempts: i64, hint: Option<Duration>) -> Duration {
        let exp = self
            .config
            .backoff_base_ms
            .saturating_mul(1u64 << attempts.clamp(0, 20))
            .min(self.config.backoff_max_ms);
        // Up to 25% jitter downwards so retries from many chats spread out.
        let jitter = 1.0 - rand::random::<f64>() * 0.25;
        let computed = Duration::from_millis((exp as f64 * jitter) as u64);
        hint.map_or(computed, |h| h.max(computed))
    }
}
