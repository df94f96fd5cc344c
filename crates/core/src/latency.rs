//! How fast a destination answers: a peak-sensitive moving average of response-time samples,
//! for the latency-aware scheduler `pewma` (docs/internals/schedulers.md#pewma--peak-ewma-latency-power-of-two-choices).
//!
//! The data planes measure; this type only folds samples and answers "what do we expect now".
//! Why peak-sensitive: a server that suddenly slows down must lose traffic at once, while one
//! that speeds up may win it back gradually. Why the estimate relaxes with time: a server that
//! no longer receives traffic would otherwise keep its worst sample forever and starve.

use crate::time::Time;

/// Parameters of [`LatencyEwma`] and of the `pewma` scheduler, with their bounds
/// ([`PewmaParams::clamped`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PewmaParams {
    /// Decay time τ in ms (100..=60000, default 2000): a new sample weighs `1 − e^(−Δ/τ)` (at
    /// least [`MIN_ALPHA`]), `Δ` being the time since the previous sample; without samples the
    /// estimate relaxes toward `unmeasured_us` by `e^(−t/τ)`.
    pub decay_ms: u32,
    /// Lowest sample in µs (1..=1000000, default 50): faster answers count as this, so loopback
    /// noise does not separate equal servers.
    pub floor_us: u32,
    /// Highest sample in µs (at least `floor_us`, at most 60 s, default 10 s): one
    /// pathological sample cannot push an estimate beyond it.
    pub ceiling_us: u32,
    /// Estimate of a destination without samples, and the value an idle estimate relaxes to,
    /// in µs (between floor and ceiling, default 1000): the penalty for not being measured.
    pub unmeasured_us: u32,
    /// One decision in `explore` takes the first (weighted random) candidate without comparing
    /// (2..=65536, default 64): every eligible destination keeps receiving at least
    /// `weight / Σweights / explore` of the new connections, so its estimate stays current.
    pub explore: u32,
}

/// Smallest weight of a new sample in the average, whatever `Δ`: 16 samples in a burst move
/// the estimate most of the way (`(15/16)^16 ≈ 0.36`).
pub const MIN_ALPHA: f64 = 1.0 / 16.0;

impl Default for PewmaParams {
    fn default() -> Self {
        PewmaParams {
            decay_ms: 2000,
            floor_us: 50,
            ceiling_us: 10_000_000,
            unmeasured_us: 1000,
            explore: 64,
        }
    }
}

impl PewmaParams {
    /// The parameters forced into their documented bounds.
    pub fn clamped(self) -> PewmaParams {
        let floor_us = self.floor_us.clamp(1, 1_000_000);
        let ceiling_us = self.ceiling_us.clamp(floor_us, 60_000_000);
        PewmaParams {
            decay_ms: self.decay_ms.clamp(100, 60_000),
            floor_us,
            ceiling_us,
            unmeasured_us: self.unmeasured_us.clamp(floor_us, ceiling_us),
            explore: self.explore.clamp(2, 65_536),
        }
    }
}

/// Peak-EWMA of one destination's response times (µs).
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct LatencyEwma {
    /// Estimate at `last`, µs (meaningless while `samples == 0`).
    est_us: f64,
    /// Time of the last sample.
    last: Time,
    /// Samples folded in.
    samples: u64,
}

impl LatencyEwma {
    /// Samples folded in so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The estimate right after the last sample, µs (`None` before the first): what the data
    /// planes measured, without the relaxation toward `unmeasured_us` that [`Self::estimate`]
    /// adds for the time since. Exported by the metrics, which do not share the data planes'
    /// clocks.
    pub fn last_estimate(&self) -> Option<f64> {
        (self.samples > 0).then_some(self.est_us)
    }

    /// The expected response time at `now`, µs: the estimate relaxed toward `unmeasured_us`
    /// for the time without samples (`unmeasured_us` itself if never measured).
    pub fn estimate(&self, now: Time, p: &PewmaParams) -> f64 {
        let u = f64::from(p.unmeasured_us);
        if self.samples == 0 {
            return u;
        }
        let idle = now.saturating_since(self.last).as_millis() as f64;
        let keep = (-idle / f64::from(p.decay_ms.max(1))).exp();
        u + (self.est_us - u) * keep
    }

    /// Fold in a sample of `us` microseconds taken at `now`.
    pub fn sample(&mut self, us: u64, now: Time, p: &PewmaParams) {
        let x = us.clamp(u64::from(p.floor_us), u64::from(p.ceiling_us)) as f64;
        if self.samples == 0 {
            self.est_us = x;
        } else {
            let cur = self.estimate(now, p);
            self.est_us = if x > cur {
                // Peak: a slower answer is believed at once.
                x
            } else {
                let dt = now.saturating_since(self.last).as_millis() as f64;
                let alpha = (1.0 - (-dt / f64::from(p.decay_ms.max(1))).exp()).max(MIN_ALPHA);
                cur + (x - cur) * alpha
            };
        }
        self.last = now;
        self.samples = self.samples.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> PewmaParams {
        PewmaParams::default()
    }

    #[test]
    fn unmeasured_is_the_penalty() {
        let l = LatencyEwma::default();
        assert_eq!(l.estimate(Time(5), &p()), 1000.0);
    }

    #[test]
    fn samples_are_bounded_by_floor_and_ceiling() {
        let mut l = LatencyEwma::default();
        l.sample(0, Time(0), &p());
        assert_eq!(l.estimate(Time(0), &p()), 50.0);
        let mut l = LatencyEwma::default();
        l.sample(u64::MAX, Time(0), &p());
        assert_eq!(l.estimate(Time(0), &p()), 10_000_000.0);
    }

    #[test]
    fn peak_is_taken_at_once_and_decays_with_fast_samples() {
        let mut l = LatencyEwma::default();
        l.sample(500, Time(0), &p());
        l.sample(200_000, Time(1), &p());
        assert_eq!(
            l.estimate(Time(1), &p()),
            200_000.0,
            "peak believed at once"
        );
        // A burst of fast samples in the same millisecond: MIN_ALPHA each.
        for _ in 0..16 {
            l.sample(500, Time(1), &p());
        }
        let e = l.estimate(Time(1), &p());
        let want = 500.0 + 199_500.0 * (15.0f64 / 16.0).powi(16);
        assert!((e - want).abs() < 1.0, "{e} vs {want}");
        // Samples spread over time weigh more: one sample 2 τ later brings 100 ms under 3 ms.
        let mut m = LatencyEwma::default();
        m.sample(100_000, Time(0), &p());
        m.sample(1000, Time(4000), &p());
        let e = m.estimate(Time(4000), &p());
        assert!(e < 3_000.0, "{e}");
    }

    #[test]
    fn one_slow_sample_relaxes_without_traffic() {
        // No starvation: a server that got one 5 s answer and then no traffic looks like an
        // unmeasured one again after a few τ.
        let mut l = LatencyEwma::default();
        l.sample(5_000_000, Time(0), &p());
        let after = |ms| l.estimate(Time(ms), &p());
        assert!(after(2000) < 5_000_000.0 * 0.37 + 1000.0);
        assert!(after(20_000) < 1_300.0, "{}", after(20_000));
        assert!(after(20_000) >= 1000.0);
    }

    #[test]
    fn params_are_clamped() {
        let c = PewmaParams {
            decay_ms: 0,
            floor_us: 0,
            ceiling_us: 0,
            unmeasured_us: 0,
            explore: 0,
        }
        .clamped();
        assert_eq!(
            (
                c.decay_ms,
                c.floor_us,
                c.ceiling_us,
                c.unmeasured_us,
                c.explore
            ),
            (100, 1, 1, 1, 2)
        );
        assert_eq!(PewmaParams::default().clamped(), PewmaParams::default());
    }
}
