//! HTTP load against one URL with pre-built deliveries.
//!
//! * [`closed_loop`]: `connections` workers on keep-alive HTTP/1.1 connections, each sending
//!   the next delivery as soon as its previous one was answered: the sustained rate.
//! * [`open_loop`]: request `i` is due at `start + i / rate`, sent by a dedicated thread at that
//!   moment whatever happened to earlier requests, and its latency is measured from when it
//!   was due, so a stall shows up in every request it delayed (no coordinated omission).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::webhooks::SignedWebhook;

/// A client for load generation: HTTP/1.1 only, keep-alive, no proxy, no Nagle.
pub fn client(max_idle_connections: usize) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(max_idle_connections)
        .pool_idle_timeout(Duration::from_secs(300))
        .timeout(Duration::from_secs(30))
        .build()
}

/// How a request ended: its HTTP status, or the client error.
pub type Answer = Result<StatusCode, String>;

async fn post(client: &reqwest::Client, url: &str, hook: &SignedWebhook) -> Answer {
    let resp = client
        .post(url)
        .headers(hook.headers.clone())
        .body(hook.body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    // Read the body to the end so the connection goes back to the pool.
    resp.bytes().await.map_err(|e| e.to_string())?;
    Ok(status)
}

/// Answers that were not 200, by status (or error text).
#[derive(Debug, Clone, Default)]
pub struct Failures(pub BTreeMap<String, u64>);

impl Failures {
    fn record(&mut self, answer: &Answer) -> bool {
        let key = match answer {
            Ok(StatusCode::OK) => return true,
            Ok(status) => status.to_string(),
            Err(e) => format!("error: {e}"),
        };
        *self.0.entry(key).or_default() += 1;
        false
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `none`, or `503 Service Unavailable × 3, …`.
    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|(k, n)| format!("{k} × {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Result of a closed-loop run.
#[derive(Debug, Clone)]
pub struct ClosedLoop {
    pub sent: usize,
    pub accepted: usize,
    pub failures: Failures,
    pub elapsed: Duration,
    /// Per-request latency (send to full answer).
    pub latencies: Vec<Duration>,
}

impl ClosedLoop {
    pub fn accepted_per_sec(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Sends every delivery in `hooks` over `connections` concurrent workers, as fast as answers
/// come back. The clock runs from the first send to the last answer.
pub async fn closed_loop(
    client: &reqwest::Client,
    url: &str,
    hooks: Arc<Vec<SignedWebhook>>,
    connections: usize,
) -> ClosedLoop {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections.max(1))
        .map(|_| {
            let (client, url, hooks, next) =
                (client.clone(), url.to_owned(), hooks.clone(), next.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(hook) = hooks.get(i) else { break };
                    let sent = Instant::now();
                    let answer = post(&client, &url, hook).await;
                    answers.push((sent.elapsed(), answer));
                }
                answers
            })
        })
        .collect();
    let mut result = ClosedLoop {
        sent: 0,
        accepted: 0,
        failures: Failures::default(),
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(hooks.len()),
    };
    for worker in workers {
        let answers = worker
            .await
            .unwrap_or_else(|e| vec![(Duration::ZERO, Err(format!("load worker panicked: {e}")))]);
        for (latency, answer) in answers {
            result.sent += 1;
            if result.failures.record(&answer) {
                result.accepted += 1;
            }
            result.latencies.push(latency);
        }
    }
    result.elapsed = started.elapsed();
    result
}

/// Result of an open-loop run.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    pub offered_rate: f64,
    pub sent: usize,
    pub accepted: usize,
    pub failures: Failures,
    /// From the start to the last answer.
    pub elapsed: Duration,
    /// From when each request was due to its full answer (what a sender experiences).
    pub latencies: Vec<Duration>,
    /// From when each request actually went out to its answer (the server's share).
    pub service_times: Vec<Duration>,
    /// How late each request went out relative to its schedule (the generator's share).
    pub dispatch_lags: Vec<Duration>,
}

impl OpenLoop {
    /// Requests that went out more than `threshold` after they were due.
    pub fn late(&self, threshold: Duration) -> usize {
        self.dispatch_lags
            .iter()
            .filter(|l| **l > threshold)
            .count()
    }
}

/// Offers `hooks` at `rate` per second: a dedicated thread sleeps until each request is due
/// and spawns it on `runtime`, which must not be the thread calling this. Waits for every
/// answer, or until `patience` after the last request was due.
pub async fn open_loop(
    runtime: Handle,
    client: &reqwest::Client,
    url: &str,
    hooks: Arc<Vec<SignedWebhook>>,
    rate: f64,
    patience: Duration,
) -> anyhow::Result<OpenLoop> {
    anyhow::ensure!(rate > 0.0, "the offered rate must be positive");
    let n = hooks.len();
    let (tx, mut rx) = mpsc::unbounded_channel::<(Duration, Duration, Duration, Answer)>();
    let start = Instant::now() + Duration::from_millis(20);
    let (client, url_owned) = (client.clone(), url.to_owned());
    let dispatcher = std::thread::Builder::new()
        .name("dispatcher".into())
        .spawn(move || {
            for i in 0..n {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let (client, url, hooks, tx) =
                    (client.clone(), url_owned.clone(), hooks.clone(), tx.clone());
                runtime.spawn(async move {
                    let sent = Instant::now();
                    let answer = match hooks.get(i) {
                        Some(hook) => post(&client, &url, hook).await,
                        None => Err("no such delivery".into()),
                    };
                    let done = Instant::now();
                    let _ = tx.send((
                        sent.saturating_duration_since(due),
                        done.saturating_duration_since(due),
                        done.saturating_duration_since(sent),
                        answer,
                    ));
                });
            }
        })?;
    let last_due = start + Duration::from_secs_f64(n.saturating_sub(1) as f64 / rate);
    let deadline = tokio::time::Instant::from_std(last_due + patience);
    let mut result = OpenLoop {
        offered_rate: rate,
        sent: 0,
        accepted: 0,
        failures: Failures::default(),
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(n),
        service_times: Vec::with_capacity(n),
        dispatch_lags: Vec::with_capacity(n),
    };
    while result.sent < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((lag, latency, service, answer))) => {
                result.sent += 1;
                if result.failures.record(&answer) {
                    result.accepted += 1;
                }
                result.dispatch_lags.push(lag);
                result.latencies.push(latency);
                result.service_times.push(service);
            }
            Ok(None) => break,
            Err(_) => {
                let missing = (n - result.sent) as u64;
                *result
                    .failures
                    .0
                    .entry("no answer before the deadline".into())
                    .or_default() += missing;
                break;
            }
        }
    }
    result.elapsed = start.elapsed();
    if dispatcher.join().is_err() {
        anyhow::bail!("the dispatcher thread panicked");
    }
    Ok(result)
}
