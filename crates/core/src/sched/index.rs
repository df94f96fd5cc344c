//! Index structures over list positions, so that schedulers whose kernel versions scan the whole
//! destination list can decide in O(1)/O(log n) while choosing exactly what the scan would.
//!
//! All three are rebuilt in O(n) when a destination is added or removed (every list position
//! after the head shifts) and updated in O(log n) when one destination's weight, counters or
//! OVERLOAD flag change. None of them allocates after a rebuild.

use core::cmp::Ordering;

/// The rank of one destination for the list-scanning "pick the best" schedulers
/// (lc, wlc, sed, nq, fo, ovf and the wlc inside lblc/lblcr).
///
/// A lower `class` is always better; within a class the cost `num / den` decides, compared by
/// cross-multiplication like the kernel (`num_a * den_b < num_b * den_a`), never by division.
/// The products are taken in `u128`, so they cannot overflow; the kernel's `__s64` products
/// agree with that for every realistic input (overhead < 2^32 with any weight ≤ `i32::MAX`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rank {
    /// Coarse class; lower wins (nq: idle destinations are class 0).
    pub class: u8,
    /// Cost numerator (load).
    pub num: u64,
    /// Cost denominator (weight); > 0 for every eligible destination.
    pub den: u64,
}

impl Rank {
    /// The rank of an ineligible destination: never chosen.
    pub const NONE: Rank = Rank {
        class: u8::MAX,
        num: 0,
        den: 0,
    };

    /// Whether this destination can be chosen at all.
    #[inline]
    pub fn eligible(&self) -> bool {
        self.class != u8::MAX
    }

    /// Strictly better than `other` (the kernel's "replace the candidate" test). Equal ranks are
    /// not better, so the earlier destination in list order keeps winning ties.
    #[inline]
    pub fn better(&self, other: &Rank) -> bool {
        if !self.eligible() {
            return false;
        }
        if !other.eligible() {
            return true;
        }
        match self.class.cmp(&other.class) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => {
                u128::from(self.num) * u128::from(other.den)
                    < u128::from(other.num) * u128::from(self.den)
            }
        }
    }
}

/// Sentinel for "no leaf".
const NONE: u32 = u32::MAX;

/// A tournament tree over list positions: every node holds the position of the best leaf below
/// it, with the leftmost (earliest in list order) winning ties, which is exactly what the
/// kernel's strict-`<` linear scans return.
#[derive(Clone, Debug, Default)]
pub(crate) struct BestTree {
    /// Number of leaves rounded up to a power of two (at least 1).
    size: usize,
    /// Number of positions.
    n: usize,
    /// Rank of each list position (`size` entries; padding is `Rank::NONE`).
    ranks: Vec<Rank>,
    /// `nodes[1]` is the root; leaf `i` is node `size + i`. Values are positions or `NONE`.
    nodes: Vec<u32>,
}

impl BestTree {
    /// Rebuild for `n` positions whose ranks `rank(pos)` gives.
    pub fn rebuild(&mut self, n: usize, mut rank: impl FnMut(usize) -> Rank) {
        let size = n.max(1).next_power_of_two();
        self.size = size;
        self.n = n;
        self.ranks.clear();
        self.ranks.resize(size, Rank::NONE);
        self.nodes.clear();
        self.nodes.resize(2 * size, NONE);
        for pos in 0..n {
            let r = rank(pos);
            self.ranks[pos] = r;
            if r.eligible() {
                self.nodes[size + pos] = pos as u32;
            }
        }
        for i in (1..size).rev() {
            self.nodes[i] = self.pick(self.nodes[2 * i], self.nodes[2 * i + 1]);
        }
    }

    #[inline]
    fn rank_of(&self, leaf: u32) -> Rank {
        self.ranks.get(leaf as usize).copied().unwrap_or(Rank::NONE)
    }

    /// The better of two subtrees' winners; the left (earlier) one on ties.
    #[inline]
    fn pick(&self, left: u32, right: u32) -> u32 {
        if right == NONE {
            return left;
        }
        if left == NONE {
            return right;
        }
        if self.rank_of(right).better(&self.rank_of(left)) {
            right
        } else {
            left
        }
    }

    /// Change the rank of position `pos` (out-of-range positions are ignored).
    pub fn update(&mut self, pos: usize, rank: Rank) {
        if pos >= self.n {
            return;
        }
        self.ranks[pos] = rank;
        let mut i = self.size + pos;
        self.nodes[i] = if rank.eligible() { pos as u32 } else { NONE };
        i /= 2;
        while i >= 1 {
            let best = self.pick(self.nodes[2 * i], self.nodes[2 * i + 1]);
            self.nodes[i] = best;
            i /= 2;
        }
    }

    /// The position of the best eligible leaf, if any.
    #[inline]
    pub fn best(&self) -> Option<usize> {
        match self.nodes.get(1).copied() {
            Some(p) if p != NONE => Some(p as usize),
            _ => None,
        }
    }
}

/// A max tree over list positions, answering "first position ≥ p whose value is ≥ t" in
/// O(log n): the forward walks of rr (t = 1) and wrr (t = current weight).
#[derive(Clone, Debug, Default)]
pub(crate) struct MaxTree {
    size: usize,
    n: usize,
    nodes: Vec<u64>,
}

impl MaxTree {
    /// Rebuild for `n` positions with values `val(pos)`.
    pub fn rebuild(&mut self, n: usize, mut val: impl FnMut(usize) -> u64) {
        let size = n.max(1).next_power_of_two();
        self.size = size;
        self.n = n;
        self.nodes.clear();
        self.nodes.resize(2 * size, 0);
        for pos in 0..n {
            self.nodes[size + pos] = val(pos);
        }
        for i in (1..size).rev() {
            self.nodes[i] = self.nodes[2 * i].max(self.nodes[2 * i + 1]);
        }
    }

    /// Set the value of position `pos` (out-of-range positions are ignored).
    pub fn update(&mut self, pos: usize, v: u64) {
        if pos >= self.n {
            return;
        }
        let mut i = self.size + pos;
        self.nodes[i] = v;
        i /= 2;
        while i >= 1 {
            self.nodes[i] = self.nodes[2 * i].max(self.nodes[2 * i + 1]);
            i /= 2;
        }
    }

    /// Maximum over every position (0 when empty).
    #[inline]
    pub fn max(&self) -> u64 {
        self.nodes.get(1).copied().unwrap_or(0)
    }

    /// The first position `≥ from` whose value is `≥ t` (`t ≥ 1`; padding holds 0).
    pub fn first_at_least(&self, from: usize, t: u64) -> Option<usize> {
        if from >= self.n || t == 0 {
            return None;
        }
        let mut i = self.size + from;
        loop {
            if self.nodes[i] >= t {
                // Descend to the leftmost qualifying leaf of this subtree.
                while i < self.size {
                    i *= 2;
                    if self.nodes[i] < t {
                        i += 1;
                    }
                }
                let pos = i - self.size;
                return (pos < self.n).then_some(pos);
            }
            // Climb while `i` is a right child; then step to the right sibling, which covers
            // the positions right after `i`'s range.
            while i & 1 == 1 {
                i >>= 1;
            }
            if i == 0 {
                return None;
            }
            i += 1;
        }
    }
}

/// A Fenwick tree of weights over list positions (twos): prefix sums and "first position whose
/// inclusive prefix sum reaches r" in O(log n).
#[derive(Clone, Debug, Default)]
pub(crate) struct Fenwick {
    /// 1-based Fenwick array; `tree[0]` unused.
    tree: Vec<u64>,
    /// Plain values, to compute deltas on update.
    vals: Vec<u64>,
    total: u64,
}

impl Fenwick {
    /// Rebuild for `n` positions with values `val(pos)`, in O(n).
    pub fn rebuild(&mut self, n: usize, mut val: impl FnMut(usize) -> u64) {
        self.vals.clear();
        self.vals.extend((0..n).map(&mut val));
        self.tree.clear();
        self.tree.resize(n + 1, 0);
        self.total = 0;
        for i in 1..=n {
            let v = self.vals[i - 1];
            self.total += v;
            self.tree[i] += v;
            let j = i + (i & i.wrapping_neg());
            if j <= n {
                let t = self.tree[i];
                self.tree[j] += t;
            }
        }
    }

    /// Set position `pos` to `v` (out-of-range positions are ignored).
    pub fn update(&mut self, pos: usize, v: u64) {
        let Some(old) = self.vals.get(pos).copied() else {
            return;
        };
        if old == v {
            return;
        }
        self.vals[pos] = v;
        self.total = self.total - old + v;
        let n = self.vals.len();
        let mut i = pos + 1;
        while i <= n {
            // Values are replaced, never negative: subtract then add keeps every node exact.
            self.tree[i] = self.tree[i] - old + v;
            i += i & i.wrapping_neg();
        }
    }

    /// Sum of all values.
    #[inline]
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The value at `pos`.
    #[inline]
    pub fn value(&self, pos: usize) -> u64 {
        self.vals.get(pos).copied().unwrap_or(0)
    }

    /// Sum of the values at positions `0..pos` (pewma's second draw skips one position).
    pub fn prefix(&self, pos: usize) -> u64 {
        let mut i = pos.min(self.vals.len());
        let mut s = 0;
        while i > 0 {
            s += self.tree[i];
            i &= i - 1;
        }
        s
    }

    /// The first position whose inclusive prefix sum is `≥ r` (`1 ≤ r ≤ total`).
    pub fn lower_bound(&self, r: u64) -> Option<usize> {
        let n = self.vals.len();
        if r == 0 || r > self.total || n == 0 {
            return None;
        }
        let mut pos = 0usize;
        let mut rem = r;
        let mut step = 1usize << (usize::BITS - 1 - n.leading_zeros());
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] < rem {
                pos = next;
                rem -= self.tree[next];
            }
            step >>= 1;
        }
        // `pos` is the largest index whose prefix sum is < r, so position `pos` (0-based) is it.
        (pos < n).then_some(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn max_tree_matches_scan(vals in proptest::collection::vec(0u64..6, 0..40),
                                 from in 0usize..45, t in 1u64..7,
                                 upd in proptest::collection::vec((0usize..40, 0u64..6), 0..10)) {
            let mut v = vals.clone();
            let mut tree = MaxTree::default();
            tree.rebuild(v.len(), |i| v[i]);
            for (p, x) in upd {
                if p < v.len() {
                    v[p] = x;
                }
                tree.update(p, x);
            }
            let expect = (from..v.len()).find(|&i| v[i] >= t);
            prop_assert_eq!(tree.first_at_least(from, t), expect);
            prop_assert_eq!(tree.max(), v.iter().copied().max().unwrap_or(0));
        }

        #[test]
        fn fenwick_matches_scan(vals in proptest::collection::vec(0u64..6, 0..40),
                                upd in proptest::collection::vec((0usize..40, 0u64..6), 0..10),
                                r in 1u64..200) {
            let mut v = vals.clone();
            let mut f = Fenwick::default();
            f.rebuild(v.len(), |i| v[i]);
            for (p, x) in upd {
                if p < v.len() {
                    v[p] = x;
                }
                f.update(p, x);
            }
            let total: u64 = v.iter().sum();
            prop_assert_eq!(f.total(), total);
            let mut acc = 0;
            let expect = if r > total { None } else {
                v.iter().position(|&x| { acc += x; acc >= r })
            };
            prop_assert_eq!(f.lower_bound(r), expect);
        }

        #[test]
        fn best_tree_is_leftmost_minimum(vals in proptest::collection::vec(
                proptest::option::of((0u64..5, 1u64..4)), 0..40),
                upd in proptest::collection::vec((0usize..40, proptest::option::of((0u64..5, 1u64..4))), 0..10)) {
            let rank = |x: Option<(u64, u64)>| match x {
                Some((num, den)) => Rank { class: 0, num, den },
                None => Rank::NONE,
            };
            let mut v = vals.clone();
            let mut t = BestTree::default();
            t.rebuild(v.len(), |i| rank(v[i]));
            for (p, x) in upd {
                if p < v.len() {
                    v[p] = x;
                }
                t.update(p, rank(x));
            }
            let mut best: Option<usize> = None;
            for (i, x) in v.iter().enumerate() {
                if let Some(b) = best {
                    if rank(*x).better(&rank(v[b])) {
                        best = Some(i);
                    }
                } else if x.is_some() {
                    best = Some(i);
                }
            }
            prop_assert_eq!(t.best(), best);
        }
    }
}
