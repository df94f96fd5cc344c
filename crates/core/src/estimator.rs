//! The kernel's rate estimator (`ip_vs_est.c`, docs/internals/connections.md#rate-estimator): every 2 s, an exponentially weighted
//! average with weight 2^-2 of the per-second rates, in fixed point.

use crate::stats::Counters;

/// The estimation period.
pub const PERIOD: crate::time::Duration = crate::time::Duration::from_secs(2);

/// Per-second rates as ipvsadm shows them (`--rate`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub inpps: u64,
    /// Outgoing packets per second.
    pub outpps: u64,
    /// Incoming bytes per second.
    pub inbps: u64,
    /// Outgoing bytes per second.
    pub outbps: u64,
}

impl core::ops::SubAssign for Rates {
    /// Takes out one estimator's part of a sum made with `+=` (wrapping, like the counters).
    fn sub_assign(&mut self, o: Rates) {
        self.cps = self.cps.wrapping_sub(o.cps);
        self.inpps = self.inpps.wrapping_sub(o.inpps);
        self.outpps = self.outpps.wrapping_sub(o.outpps);
        self.inbps = self.inbps.wrapping_sub(o.inbps);
        self.outbps = self.outbps.wrapping_sub(o.outbps);
    }
}

impl core::ops::AddAssign for Rates {
    /// Rates of several estimators add up to the rate of their sum (the averages are linear).
    fn add_assign(&mut self, o: Rates) {
        self.cps += o.cps;
        self.inpps += o.inpps;
        self.outpps += o.outpps;
        self.inbps += o.inbps;
        self.outbps += o.outbps;
    }
}

/// Estimator state: last counter values and scaled averages.
#[derive(Clone, Debug, Default)]
pub struct Estimator {
    last: Counters,
    // Connections and packets are scaled by 2^10, bytes by 2^5, exactly as the kernel.
    cps: i64,
    inpps: i64,
    outpps: i64,
    inbps: i64,
    outbps: i64,
}

#[inline]
fn smooth(avg: &mut i64, cur: u64, last: u64, shift: u32) {
    // The kernel computes the delta in u64 and the average in s64 with an arithmetic shift.
    let rate = (cur.wrapping_sub(last) << shift) as i64;
    *avg += (rate - *avg) >> 2;
}

impl Estimator {
    /// One 2-second step with the current (live) counters.
    pub fn tick(&mut self, cur: Counters) {
        smooth(&mut self.cps, cur.conns, self.last.conns, 9);
        smooth(&mut self.inpps, cur.inpkts, self.last.inpkts, 9);
        smooth(&mut self.outpps, cur.outpkts, self.last.outpkts, 9);
        smooth(&mut self.inbps, cur.inbytes, self.last.inbytes, 4);
        smooth(&mut self.outbps, cur.outbytes, self.last.outbytes, 4);
        self.last = cur;
    }

    /// Whether a step with the counters `cur` would change nothing: the counters have not
    /// moved since the last step and every average has decayed as far as the kernel's
    /// arithmetic takes it (`avg += (0 - avg) >> 2` leaves 0 — and -1..-3, reachable only
    /// after a counter went backwards — where they are). A settled estimator can skip any
    /// number of steps and still read exactly what the kernel's would: this is what lets the
    /// director step only the estimators that have work ([`crate::table::ServiceTable`]).
    pub fn is_settled(&self, cur: Counters) -> bool {
        let rest = |avg: i64| (avg.wrapping_neg() >> 2) == 0;
        self.last == cur
            && rest(self.cps)
            && rest(self.inpps)
            && rest(self.outpps)
            && rest(self.inbps)
            && rest(self.outbps)
    }

    /// Zeroing: averages to 0, `last` to the current values.
    pub fn reset(&mut self, cur: Counters) {
        *self = Estimator {
            last: cur,
            ..Estimator::default()
        };
    }

    /// The rates as read out by ipvsadm (rounded as the kernel's `ip_vs_read_estimator`).
    pub fn rates(&self) -> Rates {
        let r = |avg: i64, round: i64, shift: u32| ((avg + round) >> shift).max(0) as u64;
        Rates {
            cps: r(self.cps, 0x1ff, 10),
            inpps: r(self.inpps, 0x1ff, 10),
            outpps: r(self.outpps, 0x1ff, 10),
            inbps: r(self.inbps, 0xf, 5),
            outbps: r(self.outbps, 0xf, 5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_100_cps_reads_like_the_spec() {
        // docs/internals/connections.md#rate-estimator: a constant 100 conn/s from zero is shown as 25, 44, 58, 68, 76, 82, 87, 90 …
        let mut e = Estimator::default();
        let mut c = Counters::default();
        let mut shown = Vec::new();
        for _ in 0..8 {
            c.conns += 200; // 2 s at 100/s
            e.tick(c);
            shown.push(e.rates().cps);
        }
        assert_eq!(shown, [25, 44, 58, 68, 76, 82, 87, 90]);
    }

    #[test]
    fn bytes_use_their_own_scale() {
        let mut e = Estimator::default();
        let mut c = Counters::default();
        for _ in 0..200 {
            c.inbytes += 2_000_000; // 1 MB/s
            e.tick(c);
        }
        assert_eq!(e.rates().inbps, 1_000_000);
        assert_eq!(e.rates().outbps, 0);
    }

    /// Settled means "a step changes nothing", in both directions: a settled estimator stays
    /// the same through a step, and one that is not settled changes.
    #[test]
    fn settled_exactly_when_a_step_is_a_no_op() {
        let mut e = Estimator::default();
        let mut c = Counters::default();
        assert!(e.is_settled(c));
        c.inbytes += 1;
        assert!(!e.is_settled(c), "moved counters are work");
        // After one burst the averages take many steps to decay to rest.
        e.tick(c);
        let mut steps = 0;
        while !e.is_settled(c) {
            let before = e.clone();
            e.tick(c);
            assert!(
                before.cps != e.cps
                    || before.inpps != e.inpps
                    || before.outpps != e.outpps
                    || before.inbps != e.inbps
                    || before.outbps != e.outbps
                    || before.last != e.last,
                "a step of an unsettled estimator changed nothing"
            );
            steps += 1;
            assert!(steps < 200);
        }
        assert!(steps > 0);
        let rest = e.clone();
        e.tick(c);
        assert_eq!(format!("{rest:?}"), format!("{e:?}"));
        // Averages at -1..-3 (a counter went backwards) are at rest too.
        let mut e = Estimator::default();
        let c1 = Counters {
            inpkts: 1,
            ..Counters::default()
        };
        e.tick(c1);
        e.tick(Counters::default());
        for _ in 0..100 {
            e.tick(Counters::default());
        }
        assert!(e.is_settled(Counters::default()), "{e:?}");
    }

    #[test]
    fn reset_forgets_history() {
        let mut e = Estimator::default();
        let c = Counters {
            inpkts: 10_000,
            ..Counters::default()
        };
        e.tick(c);
        assert!(e.rates().inpps > 0);
        e.reset(c);
        assert_eq!(e.rates(), Rates::default());
        e.tick(c);
        assert_eq!(e.rates(), Rates::default());
    }
}
