//! The sync lag: how long a connection update waited on the master between the packet that
//! made the kernel's rules announce it and the datagram that carried it. Measured per message
//! as the age of its oldest record when it goes on the wire, kept as a histogram (Prometheus
//! `histogram_quantile` gives windowed quantiles; [`Lag::p99_ms`] is the one since start).

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the buckets, milliseconds.
pub const BOUNDS_MS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

/// Lock-free histogram of message lags plus the current age of the oldest unsent update.
#[derive(Default)]
pub struct Lag {
    /// Per bucket (not cumulative); the last one is +Inf.
    buckets: [AtomicU64; BOUNDS_MS.len() + 1],
    sum_ms: AtomicU64,
    count: AtomicU64,
    waiting_ms: AtomicU64,
}

impl Lag {
    /// One message went out whose oldest record waited `ms`.
    pub fn record(&self, ms: u64) {
        let i = BOUNDS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BOUNDS_MS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The oldest update not sent yet has waited `ms` (0: nothing waits).
    pub fn set_waiting(&self, ms: u64) {
        self.waiting_ms.store(ms, Ordering::Relaxed);
    }

    /// Age of the oldest update not sent yet, at the master's last round.
    pub fn waiting_ms(&self) -> u64 {
        self.waiting_ms.load(Ordering::Relaxed)
    }

    /// Cumulative counts per bound (the last is the total), the sum and the count.
    pub fn snapshot(&self) -> ([u64; BOUNDS_MS.len() + 1], u64, u64) {
        let mut cum = [0u64; BOUNDS_MS.len() + 1];
        let mut acc = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            acc += b.load(Ordering::Relaxed);
            cum[i] = acc;
        }
        (
            cum,
            self.sum_ms.load(Ordering::Relaxed),
            self.count.load(Ordering::Relaxed),
        )
    }

    /// The bucket bound under which 99 % of the messages since start stayed (`None` before
    /// the first message; `u64::MAX` when beyond the last bound).
    pub fn p99_ms(&self) -> Option<u64> {
        let (cum, _, _) = self.snapshot();
        let total = *cum.last()?;
        if total == 0 {
            return None;
        }
        let need = total - total / 100;
        let i = cum.iter().position(|c| *c >= need)?;
        Some(BOUNDS_MS.get(i).copied().unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_is_the_bound_that_holds_99_percent() {
        let l = Lag::default();
        assert_eq!(l.p99_ms(), None);
        for _ in 0..990 {
            l.record(3);
        }
        for _ in 0..10 {
            l.record(700);
        }
        assert_eq!(l.p99_ms(), Some(5));
        l.record(700);
        assert_eq!(l.p99_ms(), Some(1000));
        l.record(9999);
        let (cum, sum, n) = l.snapshot();
        assert_eq!(n, 1002);
        assert_eq!(*cum.last().unwrap(), 1002);
        assert_eq!(sum, 990 * 3 + 11 * 700 + 9999);
    }
}
