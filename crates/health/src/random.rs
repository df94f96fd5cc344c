//! Randomness used by the engine (warmup jitter, DNS query ids), injectable for tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A source of random numbers. The engine takes it as an argument so that tests are
/// deterministic (docs/internals/architecture.md: time and randomness are passed in).
pub trait RandomSource: Send + Sync {
    /// A uniformly distributed 64-bit value.
    fn next_u64(&self) -> u64;

    /// A uniform duration in `[0, max]` (nanosecond resolution).
    fn duration_up_to(&self, max: Duration) -> Duration {
        let max_ns = max.as_nanos().min(u128::from(u64::MAX - 1)) as u64;
        if max_ns == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_u64() % (max_ns + 1))
    }
}

/// SplitMix64: tiny, fast, good enough for jitter and DNS ids (not for cryptography).
#[derive(Debug)]
pub struct SplitMix {
    state: AtomicU64,
}

impl SplitMix {
    /// Seeded with `seed` (deterministic).
    pub fn new(seed: u64) -> Self {
        SplitMix {
            state: AtomicU64::new(seed),
        }
    }

    /// Seeded from the wall clock and the process id.
    pub fn from_time() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self::new(t ^ (u64::from(std::process::id()) << 32))
    }
}

impl RandomSource for SplitMix {
    fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Always returns the same value; `Fixed(u64::MAX)` makes every warmup take its full length,
/// `Fixed(0)` makes it zero.
#[derive(Debug, Clone, Copy)]
pub struct Fixed(pub u64);

impl RandomSource for Fixed {
    fn next_u64(&self) -> u64 {
        self.0
    }

    fn duration_up_to(&self, max: Duration) -> Duration {
        if self.0 == u64::MAX {
            max
        } else {
            let max_ns = max.as_nanos().min(u128::from(u64::MAX - 1)) as u64;
            Duration::from_nanos(self.0 % (max_ns + 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_within_bounds() {
        let r = SplitMix::new(7);
        for _ in 0..1000 {
            assert!(r.duration_up_to(Duration::from_millis(5)) <= Duration::from_millis(5));
        }
        assert_eq!(r.duration_up_to(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            Fixed(u64::MAX).duration_up_to(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }
}
