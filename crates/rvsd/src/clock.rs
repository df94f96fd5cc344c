//! The daemon's clock and random source: rvs-core takes both as arguments.

use std::time::Instant;

use rvs_core::{RandomSource, Time};

/// Milliseconds since the daemon started, as rvs-core's [`Time`].
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }
    /// The clock whose reading is `now` at this instant (for code that was handed a time, not
    /// the daemon's clock, and must keep reading the same timeline).
    pub fn at(now: Time) -> Clock {
        let start = Instant::now()
            .checked_sub(std::time::Duration::from_millis(now.0))
            .unwrap_or_else(Instant::now);
        Clock { start }
    }
    /// The current time.
    pub fn now(&self) -> Time {
        Time(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// 64 random bits from the operating system (seeds only; not on a hot path).
pub fn os_random_u64() -> u64 {
    let mut b = [0u8; 8];
    // A failing getrandom leaves the buffer zeroed; the connection hash then still works (its
    // mixing constants keep it spread), it is only predictable. Say so in the log.
    if getrandom::fill(&mut b).is_err() {
        tracing::warn!("getrandom failed; hash seeds are not random");
    }
    u64::from_le_bytes(b)
}

/// xoshiro256** seeded from the OS: the twos scheduler's random choices and drop_entry's
/// sampling.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Seeded from the operating system.
    pub fn from_os() -> Rng {
        Rng::from_seed(os_random_u64())
    }
    /// Seeded deterministically (tests).
    pub fn from_seed(seed: u64) -> Rng {
        // splitmix64 to spread the seed over the state.
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }
}

impl RandomSource for Rng {
    fn below(&mut self, n: u32) -> u32 {
        // Lemire's multiply-shift; the tiny bias for huge n does not matter for scheduling.
        ((self.next_u64() >> 32).wrapping_mul(u64::from(n.max(1))) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_spreads() {
        let mut r = Rng::from_seed(7);
        let mut seen = [0u32; 5];
        for _ in 0..5000 {
            let v = r.below(5);
            assert!(v < 5);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
    }

    #[test]
    fn clock_moves_forward() {
        let c = Clock::new();
        let a = c.now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(c.now() > a);
    }
}
