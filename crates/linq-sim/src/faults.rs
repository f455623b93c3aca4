//! Fault injection: a fraction of v3 requests answered 500 before anything happens, added
//! latency on every v3 answer, duplicated, delayed and reordered webhook deliveries.
//! Read and changed through `GET` / `PUT /sim/faults`.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::errors::ApiError;
use crate::state::SimState;

/// The current fault settings (all off by default).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Fraction (0..=1) of v3 API requests answered 500 / 3006 before doing anything.
    pub error_rate: f64,
    /// Milliseconds added to every v3 answer.
    pub latency_ms: u64,
    /// Fraction (0..=1) of webhook deliveries queued twice.
    pub duplicate_rate: f64,
    /// Milliseconds every webhook delivery waits before its first attempt.
    pub delay_ms: u64,
    /// Shuffle queued webhook deliveries (each also gets a random extra delay of up to
    /// `max(delay_ms, 200)` ms so that there is something to shuffle).
    pub reorder: bool,
}

/// A partial update: absent fields keep their value.
#[derive(Debug, Default, Deserialize)]
pub struct FaultsPatch {
    pub error_rate: Option<f64>,
    pub latency_ms: Option<u64>,
    pub duplicate_rate: Option<f64>,
    pub delay_ms: Option<u64>,
    pub reorder: Option<bool>,
}

/// Largest accepted latency or delay (one minute).
pub const MAX_DELAY_MS: u64 = 60_000;

impl Faults {
    /// Applies a patch after checking every value.
    pub fn apply(&self, patch: &FaultsPatch) -> Result<Faults, ApiError> {
        let rate = |name: &str, v: Option<f64>, old: f64| -> Result<f64, ApiError> {
            match v {
                None => Ok(old),
                Some(r) if (0.0..=1.0).contains(&r) => Ok(r),
                Some(r) => Err(ApiError::invalid_param(format!(
                    "{name} must be between 0.0 and 1.0 (got {r})"
                ))),
            }
        };
        let ms = |name: &str, v: Option<u64>, old: u64| -> Result<u64, ApiError> {
            match v {
                None => Ok(old),
                Some(n) if n <= MAX_DELAY_MS => Ok(n),
                Some(n) => Err(ApiError::invalid_param(format!(
                    "{name} must be at most {MAX_DELAY_MS} (got {n})"
                ))),
            }
        };
        Ok(Faults {
            error_rate: rate("error_rate", patch.error_rate, self.error_rate)?,
            latency_ms: ms("latency_ms", patch.latency_ms, self.latency_ms)?,
            duplicate_rate: rate("duplicate_rate", patch.duplicate_rate, self.duplicate_rate)?,
            delay_ms: ms("delay_ms", patch.delay_ms, self.delay_ms)?,
            reorder: patch.reorder.unwrap_or(self.reorder),
        })
    }
}

/// Middleware on the v3 routes: latency first, then the injected 500s.
pub async fn v3_faults(State(state): State<SimState>, req: Request, next: Next) -> Response {
    let faults = state.faults();
    if faults.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.error_rate > 0.0 && rand::rng().random::<f64>() < faults.error_rate {
        return ApiError::internal("Internal server error (injected by linq-sim fault settings)")
            .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_checks_ranges_and_keeps_absent_fields() {
        let f = Faults {
            latency_ms: 5,
            ..Faults::default()
        };
        let p = FaultsPatch {
            error_rate: Some(0.5),
            ..FaultsPatch::default()
        };
        let g = f.apply(&p).unwrap();
        assert_eq!(g.error_rate, 0.5);
        assert_eq!(g.latency_ms, 5);
        let bad = FaultsPatch {
            duplicate_rate: Some(1.5),
            ..FaultsPatch::default()
        };
        assert!(f.apply(&bad).is_err());
    }
}
