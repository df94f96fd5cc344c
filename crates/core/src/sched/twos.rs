//! twos — power of two choices, weighted random (docs/internals/schedulers.md#twos--power-of-two-choices, `ip_vs_twos.c`).
//!
//! The kernel sums the eligible weights, draws `r1`, `r2` uniformly in `[0, total]` and walks the
//! list subtracting weights until each reaches ≤ 0. That walk is "the first position whose
//! inclusive prefix sum of eligible weights is ≥ max(r, 1)", answered by a Fenwick tree in
//! O(log n); the total is its root sum.

use crate::dest::{Dest, DestId};
use crate::sched::index::Fenwick;
use crate::sched::{DestView, RandomSource};

/// twos state: only the index (the kernel keeps none).
#[derive(Clone, Debug, Default)]
pub struct Twos {
    weights: Fenwick,
}

fn val(d: &Dest) -> u64 {
    if d.eligible() {
        u64::from(d.weight())
    } else {
        0
    }
}

impl Twos {
    pub(crate) fn new(view: &DestView<'_>) -> Twos {
        let mut t = Twos::default();
        t.rebuild(view);
        t
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

    pub(crate) fn schedule(
        &self,
        view: &DestView<'_>,
        rng: &mut dyn RandomSource,
    ) -> Option<DestId> {
        let total = self.weights.total();
        if total == 0 {
            return None;
        }
        // `get_random_u32_below(total_weight + 1)`, twice, in this order. (The kernel's total is
        // an `int`; totals beyond u32 cannot be drawn from a u32 source and are clamped.)
        let bound = u32::try_from(total.saturating_add(1)).unwrap_or(u32::MAX);
        let r1 = u64::from(rng.below(bound));
        let r2 = u64::from(rng.below(bound));
        // r = 0 selects the first eligible destination, like r = 1.
        let p1 = self.weights.lower_bound(r1.max(1))?;
        let p2 = self.weights.lower_bound(r2.max(1))?;
        let w1 = u128::from(self.weights.value(p1));
        let w2 = u128::from(self.weights.value(p2));
        let o1 = u128::from(view.get(p1)?.overhead());
        let o2 = u128::from(view.get(p2)?.overhead());
        // Choice 2 only if strictly less loaded per weight: `weight2 * overhead1 > weight1 *
        // overhead2`.
        let p = if w2 * o1 > w1 * o2 { p2 } else { p1 };
        view.ids.get(p).copied()
    }
}
