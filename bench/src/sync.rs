//! Locking for the state benchmarks share between threads (stand-ins, timers, clean-up lists).

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data even if a holder panicked: what the benchmarks guard is plain
/// bookkeeping that stays meaningful, and the report (or the clean-up) should still run.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
