//! The list-scanning "pick the best" schedulers: lc (docs/internals/schedulers.md#lc-wlc-sed-nq--least-connection-family), wlc (docs/internals/schedulers.md#lc-wlc-sed-nq--least-connection-family), sed (docs/internals/schedulers.md#lc-wlc-sed-nq--least-connection-family), nq (docs/internals/schedulers.md#lc-wlc-sed-nq--least-connection-family),
//! fo (docs/internals/schedulers.md#fo-ovf--weight-ordered) and ovf (docs/internals/schedulers.md#fo-ovf--weight-ordered).
//!
//! Each kernel version scans the whole list keeping the first destination that is strictly
//! better than the candidate so far. That is "the leftmost minimum of a rank", which a
//! tournament tree over list positions ([`BestTree`]) keeps in O(log n) per change and answers
//! in O(1). The rank functions below transcribe each scheduler's filter and comparison.

use crate::dest::{Dest, DestId};
use crate::sched::index::{BestTree, Rank};
use crate::sched::DestView;

/// Which comparison a [`Least`] scheduler uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Metric {
    /// Minimal overhead; weight only as a 0/non-0 filter.
    Lc,
    /// Minimal overhead / weight.
    Wlc,
    /// Minimal (active + 1) / weight.
    Sed,
    /// First idle (active == 0) destination, else minimal (active + 1) / weight.
    Nq,
    /// Highest weight.
    Fo,
    /// Highest weight among destinations with `active <= weight`.
    Ovf,
}

/// The rank of `d` under `metric`, or [`Rank::NONE`] if the kernel's loop would skip it.
pub(crate) fn rank(metric: Metric, d: &Dest) -> Rank {
    let w = u64::from(d.weight());
    // Every metric skips OVERLOAD and weight 0. (wlc and sed only test the weight of the first
    // candidate, but a weight-0 destination can never satisfy `loh * 0 > doh * w`, so
    // excluding it up front changes nothing.)
    if d.overload || w == 0 {
        return Rank::NONE;
    }
    let active = u64::from(d.active);
    match metric {
        // Overhead is the shared `(active << 8) + inactive` helper (the comment inside
        // ip_vs_lc.c still says `<< 5`; the code does not).
        Metric::Lc => Rank {
            class: 0,
            num: d.overhead(),
            den: 1,
        },
        Metric::Wlc => Rank {
            class: 0,
            num: d.overhead(),
            den: w,
        },
        Metric::Sed => Rank {
            class: 0,
            num: active + 1,
            den: w,
        },
        // nq returns the first idle destination at once, whatever its weight: all idle
        // destinations tie in a class of their own ahead of the busy ones.
        Metric::Nq if active == 0 => Rank {
            class: 0,
            num: 0,
            den: 1,
        },
        Metric::Nq => Rank {
            class: 1,
            num: active + 1,
            den: w,
        },
        // Highest weight first = lowest 1/weight; the strict `>` keeps the first on ties.
        Metric::Fo => Rank {
            class: 0,
            num: 1,
            den: w,
        },
        // ovf: `activeconns > weight` is skipped, equality is still eligible.
        Metric::Ovf if active > w => Rank::NONE,
        Metric::Ovf => Rank {
            class: 0,
            num: 1,
            den: w,
        },
    }
}

/// lc, wlc, sed, nq, fo or ovf, with its index.
#[derive(Clone, Debug)]
pub struct Least {
    metric: Metric,
    tree: BestTree,
}

impl Least {
    pub(crate) fn new(metric: Metric, view: &DestView<'_>) -> Least {
        let mut l = Least {
            metric,
            tree: BestTree::default(),
        };
        l.rebuild(view);
        l
    }

    pub(crate) fn metric(&self) -> Metric {
        self.metric
    }

    /// Positions shifted (add/delete): rebuild in O(n).
    pub(crate) fn rebuild(&mut self, view: &DestView<'_>) {
        let m = self.metric;
        self.tree.rebuild(view.len(), |p| {
            view.get(p).map_or(Rank::NONE, |d| rank(m, d))
        });
    }

    /// One destination's weight, counters or OVERLOAD flag changed: O(log n).
    pub(crate) fn on_change(&mut self, view: &DestView<'_>, id: DestId) {
        if let Some(p) = view.pos_of(id) {
            let m = self.metric;
            self.tree
                .update(p, view.get(p).map_or(Rank::NONE, |d| rank(m, d)));
        }
    }

    /// The kernel's choice, in O(1).
    pub(crate) fn schedule(&self, view: &DestView<'_>) -> Option<DestId> {
        self.tree.best().and_then(|p| view.ids.get(p).copied())
    }
}
