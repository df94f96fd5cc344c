//! pewma — latency-aware power of two choices, an rvs scheduler (docs/internals/schedulers.md#pewma--peak-ewma-latency-power-of-two-choices).
//!
//! Two distinct candidates are drawn at random in proportion to their weights (over the
//! eligible destinations: weight > 0, not OVERLOAD, as twos); the one with the lower cost
//! `estimate × (active + 1) / weight` wins, `estimate` being the destination's
//! [`crate::latency::LatencyEwma`] (response times measured by the data planes). One decision
//! in `explore` takes the first candidate as drawn, so every eligible destination keeps being
//! measured. Why two random candidates rather than the global best: the best one would take
//! every new connection until its estimate catches up (a herd); two choices spread them while
//! still avoiding the slow ones.

use crate::dest::{Dest, DestId};
use crate::latency::PewmaParams;
use crate::sched::index::Fenwick;
use crate::sched::{DestView, RandomSource};
use crate::time::Time;

/// pewma state: the weights index and the parameters.
#[derive(Clone, Debug, Default)]
pub struct Pewma {
    weights: Fenwick,
    params: PewmaParams,
}

fn val(d: &Dest) -> u64 {
    if d.eligible() {
        u64::from(d.weight())
    } else {
        0
    }
}

/// A value drawn uniformly in `1..=n` (`n ≥ 1`; totals beyond u32 are clamped, as in twos).
fn draw(rng: &mut dyn RandomSource, n: u64) -> u64 {
    let bound = u32::try_from(n).unwrap_or(u32::MAX);
    u64::from(rng.below(bound)) + 1
}

impl Pewma {
    pub(crate) fn new(view: &DestView<'_>, params: PewmaParams) -> Pewma {
        let mut t = Pewma {
            weights: Fenwick::default(),
            params: params.clamped(),
        };
        t.rebuild(view);
        t
    }

    /// The parameters in force.
    pub fn params(&self) -> &PewmaParams {
        &self.params
    }

    pub(crate) fn set_params(&mut self, params: PewmaParams) {
        self.params = params.clamped();
    }

    pub(crate) fn rebuild(&mut self, view: &DestView<'_>) {
        self.weights
            .rebuild(view.len(), |p| view.get(p).map_or(0, val));
    }

    pub(crate) fn on_change(&mut self, view: &DestView<'_>, id: DestId) {
        if let Some(p) = view.pos_of(id) {
            self.weights.update(p, view.get(p).map_or(0, val));
        }
    }

    /// `estimate × (active + 1)` of the destination at `pos` (its weight is compared apart).
    fn load(&self, view: &DestView<'_>, pos: usize, now: Time) -> f64 {
        view.get(pos).map_or(f64::INFINITY, |d| {
            d.latency.estimate(now, &self.params) * (f64::from(d.active) + 1.0)
        })
    }

    pub(crate) fn schedule(
        &self,
        view: &DestView<'_>,
        now: Time,
        rng: &mut dyn RandomSource,
    ) -> Option<DestId> {
        let total = self.weights.total();
        if total == 0 {
            return None;
        }
        let p1 = self.weights.lower_bound(draw(rng, total))?;
        let w1 = self.weights.value(p1);
        let rest = total - w1;
        if rest == 0 || rng.below(self.params.explore) == 0 {
            return view.ids.get(p1).copied();
        }
        // The second candidate among the others: draw in the total without p1's share and
        // step over it.
        let mut r2 = draw(rng, rest);
        if r2 > self.weights.prefix(p1) {
            r2 += w1;
        }
        let p2 = self.weights.lower_bound(r2)?;
        let w2 = self.weights.value(p2) as f64;
        // Lower `load / weight` wins: `load2 × w1 < load1 × w2`; ties keep the first.
        let p = if self.load(view, p2, now) * (w1 as f64) < self.load(view, p1, now) * w2 {
            p2
        } else {
            p1
        };
        view.ids.get(p).copied()
    }
}
