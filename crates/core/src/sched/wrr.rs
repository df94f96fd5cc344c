//! wrr — weighted round robin (docs/internals/schedulers.md#wrr--weighted-round-robin, `ip_vs_wrr.c`).
//!
//! The kernel walks the list from the cursor looking for the first destination with
//! `!OVERLOAD && weight >= cw`, lowering `cw` by the gcd each time it passes the end of the list.
//! Here the walk is a "first position ≥ p with value ≥ cw" query on a max tree of
//! `OVERLOAD ? 0 : weight`, and runs of passes that cannot find anything (cw above every
//! eligible weight) are skipped arithmetically, so a decision costs O(log n) whatever the
//! weights. The pass structure, the restart and the final-pass stop of the kernel are kept
//! exactly, including where the cursor is left when nothing is found.

use crate::dest::{Dest, DestId};
use crate::sched::index::MaxTree;
use crate::sched::DestView;

/// wrr state: `{cl, cw, mw, di}` of `struct ip_vs_wrr_mark`, plus the index.
#[derive(Clone, Debug, Default)]
pub struct Wrr {
    /// `cl`: the destination the last walk stopped on; `None` is the list head.
    cursor: Option<DestId>,
    /// Current weight.
    cw: i64,
    /// Max weight − (gcd − 1).
    mw: i64,
    /// Gcd of the positive weights (1 if none).
    di: i64,
    /// `OVERLOAD ? 0 : weight` per list position.
    tree: MaxTree,
}

fn val(d: &Dest) -> u64 {
    if d.overload {
        0
    } else {
        u64::from(d.weight())
    }
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

impl Wrr {
    /// `ip_vs_wrr_init_svc`.
    pub(crate) fn new(view: &DestView<'_>) -> Wrr {
        let mut w = Wrr::default();
        w.recompute(view);
        w.cw = w.mw;
        w
    }

    /// Recompute `di` and `mw` (`ip_vs_wrr_gcd_weight`, `ip_vs_wrr_max_weight`) and the index.
    fn recompute(&mut self, view: &DestView<'_>) {
        let mut g = 0i64;
        let mut maxw = 0i64;
        for (_, d) in view.iter() {
            let w = i64::from(d.weight());
            if w > 0 {
                g = if g > 0 { gcd(w, g) } else { w };
            }
            maxw = maxw.max(w);
        }
        self.di = if g > 0 { g } else { 1 };
        self.mw = maxw - (self.di - 1);
        self.tree
            .rebuild(view.len(), |p| view.get(p).map_or(0, val));
    }

    /// `ip_vs_wrr_dest_changed`, the add, delete and edit hook alike.
    pub(crate) fn dest_changed(&mut self, view: &DestView<'_>) {
        self.cursor = None;
        self.recompute(view);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    /// A destination's OVERLOAD flag may have changed (no kernel hook: only the index moves).
    pub(crate) fn on_load_change(&mut self, view: &DestView<'_>, id: DestId) {
        if let Some(p) = view.pos_of(id) {
            self.tree.update(p, view.get(p).map_or(0, val));
        }
    }

    /// `ip_vs_wrr_schedule`.
    pub(crate) fn schedule(&mut self, view: &DestView<'_>) -> Option<DestId> {
        if self.mw == 0 {
            // err_noavail: the cursor stays where it was.
            return None;
        }
        let n = view.len();
        // `last`: where this call started (None = head).
        let last: Option<usize> = self.cursor.and_then(|c| view.pos_of(c));
        // The walk position: the scan covers the positions after it up to the end of the list.
        let mut at: Option<usize> = last;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        let di = self.di.max(1);
        // Every path below ends within a handful of passes (see the skip); the bound only
        // guards against a broken invariant turning into an endless loop.
        for _ in 0..64 {
            let from = at.map_or(0, |p| p + 1);
            if at.is_none() && stop.is_none() {
                // Skip whole passes that cannot find anything: a full scan with cw above every
                // eligible weight, after which cw stays above di (no restart, no final pass).
                let m = self.tree.max() as i64;
                if self.cw > m && self.cw > di {
                    let k1 = (self.cw - di - 1) / di;
                    let k2 = (self.cw - m - 1) / di + 1;
                    let k = k1.min(k2);
                    if k > 0 {
                        self.cw -= k * di;
                        last_pass = false;
                    }
                }
            }
            let found = if self.cw >= 1 && from < n {
                self.tree.first_at_least(from, self.cw as u64)
            } else {
                None
            };
            // The kernel tests "qualifies" before "is the stop element", so the stop element
            // itself can still be found; any stop element before the find ends the call.
            if let Some(s) = stop {
                if s >= from && found.is_none_or(|f| s < f) {
                    // err_over: the cursor is left on the stop element (= where we started).
                    self.cursor = view.ids.get(s).copied();
                    return None;
                }
            }
            if let Some(f) = found {
                let id = view.ids.get(f).copied();
                self.cursor = id;
                return id;
            }
            // Passed the end of the list: the walk now sits on the head.
            at = None;
            self.cw -= di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    // err_over after a full final pass: the cursor is the head.
                    self.cursor = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
        self.cursor = None;
        None
    }
}
