//! Latency percentiles (nearest rank) over a set of samples.

use std::time::Duration;

/// Percentiles of one set of latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Summary {
    /// Summarizes `samples` (sorted in place). `None` when there are none.
    pub fn of(samples: &mut [Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let total: Duration = samples.iter().sum();
        let count = samples.len();
        Some(Summary {
            count,
            p50: percentile(samples, 0.50),
            p90: percentile(samples, 0.90),
            p99: percentile(samples, 0.99),
            p999: percentile(samples, 0.999),
            max: samples[count - 1],
            mean: total / u32::try_from(count).unwrap_or(u32::MAX),
        })
    }
}

/// Percentiles of `samples`, gathered from an iterator. `None` when there are none.
pub fn summarize(samples: impl IntoIterator<Item = Duration>) -> Option<Summary> {
    let mut samples: Vec<Duration> = samples.into_iter().collect();
    Summary::of(&mut samples)
}

/// The p50, p90, p99 and max cells of a Markdown table row, in ms (`n/a` in each without
/// samples).
pub fn p50_p90_p99_max_cells(s: Option<Summary>) -> String {
    s.map_or("n/a | n/a | n/a | n/a".into(), |s| {
        format!(
            "{} | {} | {} | {}",
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max)
        )
    })
}

/// The nearest-rank percentile of sorted, non-empty `sorted`: the smallest sample such that at
/// least `q` of all samples are at or below it.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// Milliseconds with two decimals, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// An integer rate with thousands separators (`12,345`).
pub fn per_sec(rate: f64) -> String {
    let n = rate.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Summary::of(&mut samples).expect("non-empty");
        assert_eq!(s.count, 100);
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p90, Duration::from_millis(90));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.p999, Duration::from_millis(100));
        assert_eq!(s.max, Duration::from_millis(100));
        assert!(Summary::of(&mut []).is_none());
    }

    #[test]
    fn rates_are_grouped() {
        assert_eq!(per_sec(0.4), "0");
        assert_eq!(per_sec(999.0), "999");
        assert_eq!(per_sec(1234.0), "1,234");
        assert_eq!(per_sec(1234567.0), "1,234,567");
    }
}
