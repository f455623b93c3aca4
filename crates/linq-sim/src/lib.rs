//! linq-sim: a faithful local simulator of the Linq Partner API v3.
//!
//! It serves the v3 routes at both `/v3/...` and `/api/partner/v3/...` (so the official
//! `@linqapp/sdk` works against it unchanged, whichever base URL it is given), with Linq's
//! status codes, error bodies and validation; it delivers signed webhooks (Standard Webhooks
//! plus the legacy `X-Webhook-*` headers) in either payload version with retries; it walks
//! outbound messages through queued → sent → delivered → read; and it has an admin API and page
//! to play the humans on the other side and to inject faults.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let sim = linq_sim::start(linq_sim::SimConfig::default(), listener).await?;
//! println!("v3 API at {}/v3, admin page at {}/", sim.base_url(), sim.base_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Modules: [`state`] (the model), [`api`] (v3 routes), [`validation`], [`webhooks`]
//! (subscriptions' delivery queues and retries), [`admin`] (`/sim` routes and SSE),
//! [`faults`], [`errors`], and [`wire`] (every JSON body, built from the `linq` crate's types).

pub mod admin;
pub mod api;
pub mod errors;
pub mod faults;
pub mod state;
pub mod validation;
pub mod webhooks;
pub mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use linq::webhook::WebhookSecret;

pub use faults::Faults;
pub use state::SimState;
pub use webhooks::RetryPolicy;

/// The bot's default line.
pub const DEFAULT_BOT_LINE: &str = "+12025550100";

/// How to run one simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The bearer token v3 requests must carry.
    pub api_key: String,
    /// `partner_id` in webhook envelopes.
    pub partner_id: String,
    /// The bot's line, E.164 (default `+12025550100`).
    pub bot_line: String,
    /// An initial webhook subscription to every event type (`?version=` on the URL picks the
    /// payload version; default 2026-02-03).
    pub webhook: Option<(String, WebhookSecret)>,
    /// The wait between queued → sent → delivered → read (default 50 ms).
    pub lifecycle_delay: Duration,
    /// The URL clients reach the simulator at, if not `http://<bound address>` (used in
    /// attachment upload/download URLs).
    pub public_base_url: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            api_key: "sim_test_key".to_owned(),
            partner_id: "sim-partner".to_owned(),
            bot_line: DEFAULT_BOT_LINE.to_owned(),
            webhook: None,
            lifecycle_delay: Duration::from_millis(50),
            public_base_url: None,
        }
    }
}

/// A running simulator.
pub struct SimHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    state: SimState,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// `http://<addr>` (or the configured public base URL), without a trailing slash.
    pub fn base_url(&self) -> String {
        self.state.settings().base_url.clone()
    }

    /// The simulator's state (to inspect it, or to tune retries and faults in tests).
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// Stops accepting requests, ends background tasks and waits (briefly) for the server.
    pub async fn shutdown(self) {
        self.state.stop_background();
        let _ = self.stop.send(());
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(5), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
}

/// Serves a simulator on `listener` until [`SimHandle::shutdown`].
pub async fn start(
    config: SimConfig,
    listener: tokio::net::TcpListener,
) -> std::io::Result<SimHandle> {
    let addr = listener.local_addr()?;
    let state = SimState::new(&config, &format!("http://{addr}"));
    let app = router(state.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!("linq-sim server stopped: {e}");
        }
    });
    Ok(SimHandle {
        addr,
        state,
        stop,
        server,
    })
}

/// The whole simulator as an axum router: v3 under `/v3` and `/api/partner/v3`, the admin API
/// and page, and the attachment upload/download stand-ins.
pub fn router(state: SimState) -> Router {
    let v3 = api::v3_routes(state.clone());
    Router::new()
        .nest("/v3", v3.clone())
        .nest("/api/partner/v3", v3)
        .merge(api::storage_routes())
        .merge(admin::routes())
        .layer(axum::middleware::from_fn(errors::trace_layer))
        .with_state(state)
}
