//! A flat open-addressing index from a 64-bit hash to slab ids, built so that a look-up costs
//! one cache line of index plus, nearly always, only the one slab entry that matches.
//!
//! Each slot is 8 bytes: the hash's high 32 bits (the *tag*) and the 32-bit slab id. The
//! look-up compares tags before it reads any slab entry, so a probe that passes over other
//! entries does not touch their (cold) slab lines; with a 32-bit tag a wrong entry is read
//! about once in 2^(32 - log2 slots) comparisons. Slots are grouped eight to a 64-byte aligned
//! line, and linear probing walks consecutive slots, so most probes stay within one line.
//!
//! The home slot is the tag scaled to the slot count (`tag * slots >> 32`, so the count need
//! not be a power of two and a table sized for `n` entries holds about `8n/5` slots, not up
//! to twice that), so an entry's home can be recomputed from the slot alone. That gives two
//! properties the connection table needs:
//! - removal by *backward shift* (no tombstones), so a long-running table never needs a
//!   clean-up rehash, and its probe lengths do not degrade with churn;
//! - growth without reading the slab (re-placing slots needs only their tags).
//!
//! The table is kept at most 5/8 full. Linear probing's expected probe length for a miss is
//! about (1 + 1/(1-load)^2)/2 slots: 4 at 5/8 (within a line or two), 8.5 at 3/4 (measured
//! with callgrind at 1 M entries: 1.9 instead of 1.2 lines read per miss, and twice the
//! instructions).

/// Eight slots on one 64-byte line. The alignment makes a line one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct Line([u64; 8]);

/// Slot value of an empty slot (its id part, `u32::MAX`, is never a slab id).
const EMPTY: u64 = u64::MAX;
const EMPTY_LINE: Line = Line([EMPTY; 8]);

#[inline]
fn tag_of(h: u64) -> u32 {
    (h >> 32) as u32
}

#[inline]
fn slot_of(h: u64, id: u32) -> u64 {
    (h & 0xffff_ffff_0000_0000) | u64::from(id)
}

/// The index: `lines.len() * 8` slots.
#[derive(Clone, Debug, Default)]
pub(crate) struct Index {
    lines: Vec<Line>,
    /// Slot count (`lines.len() * 8`).
    slots: usize,
    len: usize,
}

impl Index {
    /// An index that holds `n` entries without growing.
    pub(crate) fn with_capacity(n: usize) -> Index {
        let mut ix = Index::default();
        if n > 0 {
            ix.alloc(Self::slots_for(n));
        }
        ix
    }

    /// Slots needed for `n` entries at a load of at most 5/8, in whole lines.
    fn slots_for(n: usize) -> usize {
        n.saturating_mul(8).div_ceil(5).max(8).next_multiple_of(8)
    }

    fn alloc(&mut self, slots: usize) {
        // The home slot is scaled from the 32-bit tag, so at most 2^32 slots (2^31 entries,
        // the table's limit, need no more at a load of 1/2).
        let slots = slots.min(usize::try_from(1u64 << 32).unwrap_or(usize::MAX));
        self.lines = vec![EMPTY_LINE; slots / 8];
        self.slots = self.lines.len() * 8;
        self.len = 0;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of entries it holds without growing.
    pub(crate) fn capacity(&self) -> usize {
        self.slots / 8 * 5
    }

    /// Bytes allocated.
    pub(crate) fn bytes(&self) -> usize {
        self.lines.capacity() * core::mem::size_of::<Line>()
    }

    #[inline]
    fn home(&self, tag: u32) -> usize {
        ((u64::from(tag) * self.slots as u64) >> 32) as usize
    }

    /// The slot after `p`, wrapping at the end.
    #[inline]
    fn next(&self, p: usize) -> usize {
        if p + 1 == self.slots {
            0
        } else {
            p + 1
        }
    }

    /// How many slots `to` lies after `from`, wrapping at the end.
    #[inline]
    fn dist(&self, from: usize, to: usize) -> usize {
        if to >= from {
            to - from
        } else {
            to + self.slots - from
        }
    }

    #[inline]
    fn get(&self, p: usize) -> u64 {
        self.lines[p >> 3].0[p & 7]
    }

    #[inline]
    fn set(&mut self, p: usize, v: u64) {
        self.lines[p >> 3].0[p & 7] = v;
    }

    /// Read the line a look-up of `h` starts on, so that its cache miss overlaps with other
    /// work (a batch look-up issues these for all its keys first). A plain load, not a
    /// prefetch instruction: the crate has no `unsafe`.
    #[inline]
    pub(crate) fn touch(&self, h: u64) -> u64 {
        if self.lines.is_empty() {
            return EMPTY;
        }
        self.get(self.home(tag_of(h)))
    }

    /// The first id whose slot has `h`'s tag and for which `eq` holds. `eq` is called only on
    /// tag matches, so it may read the slab.
    #[inline]
    pub(crate) fn find(&self, h: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.lines.is_empty() {
            return None;
        }
        let tag = tag_of(h);
        let mut p = self.home(tag);
        loop {
            let s = self.get(p);
            if s == EMPTY {
                return None;
            }
            if tag_of(s) == tag && eq(s as u32) {
                return Some(s as u32);
            }
            p = self.next(p);
        }
    }

    /// Add `id` under `h` (the caller guarantees it is not there yet). Grows (doubling, an O(n)
    /// re-placement of slots that does not read the slab) past a load of 5/8; size the table
    /// up front to keep that off the packet path.
    pub(crate) fn insert(&mut self, h: u64, id: u32) {
        if self.len >= self.capacity() {
            self.grow();
        }
        self.place(slot_of(h, id));
        self.len += 1;
    }

    fn place(&mut self, s: u64) {
        let mut p = self.home(tag_of(s));
        while self.get(p) != EMPTY {
            p = self.next(p);
        }
        self.set(p, s);
    }

    fn grow(&mut self) {
        let old = core::mem::take(&mut self.lines);
        let len = self.len;
        self.alloc((self.slots * 2).max(8));
        for line in &old {
            for &s in &line.0 {
                if s != EMPTY {
                    self.place(s);
                }
            }
        }
        self.len = len;
    }

    /// Remove `id` stored under `h`. Returns false if it is not there.
    pub(crate) fn remove(&mut self, h: u64, id: u32) -> bool {
        if self.lines.is_empty() {
            return false;
        }
        let want = slot_of(h, id);
        let mut p = self.home(tag_of(h));
        loop {
            let s = self.get(p);
            if s == EMPTY {
                return false;
            }
            if s == want {
                break;
            }
            p = self.next(p);
        }
        // Backward shift: pull later entries of the run into the hole when the hole lies
        // between their home and where they sit, so no probe ever needs a tombstone.
        let mut hole = p;
        let mut j = p;
        loop {
            j = self.next(j);
            let s = self.get(j);
            if s == EMPTY {
                break;
            }
            let home = self.home(tag_of(s));
            if self.dist(home, j) >= self.dist(hole, j) {
                self.set(hole, s);
                hole = j;
            }
        }
        self.set(hole, EMPTY);
        self.len -= 1;
        true
    }

    /// Every id, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.lines
            .iter()
            .flat_map(|l| l.0.iter())
            .filter(|&&s| s != EMPTY)
            .map(|&s| s as u32)
    }

    /// Remove everything, keeping the allocation.
    pub(crate) fn clear(&mut self) {
        self.lines.fill(EMPTY_LINE);
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Against a map: inserts, removals (backward shift) and growth keep every entry
        /// findable and nothing else. Hashes are drawn from a few values of the top bits so
        /// runs and wrap-around at the end of the table are common.
        #[test]
        fn index_matches_model(
            cap in 0usize..40,
            ops in proptest::collection::vec((any::<bool>(), 0u32..64, 0u64..16), 1..400),
        ) {
            // Initial sizes that are not powers of two (e.g. 24, 48 slots), then doublings.
            let mut ix = Index::with_capacity(cap);
            let mut model: HashMap<u32, u64> = HashMap::new();
            for (add, id, hi) in ops {
                // Top 4 bits from `hi` (crowded homes), the rest of the tag from the id.
                let h = (hi << 60) | (u64::from(id) << 33) | 0xabc;
                if add {
                    if model.contains_key(&id) { continue; }
                    ix.insert(h, id);
                    model.insert(id, h);
                } else if let Some(h) = model.remove(&id) {
                    prop_assert!(ix.remove(h, id));
                } else {
                    prop_assert!(!ix.remove(h, id));
                }
                prop_assert_eq!(ix.len(), model.len());
                for (&id, &h) in &model {
                    prop_assert_eq!(ix.find(h, |j| j == id), Some(id));
                }
                let mut all: Vec<u32> = ix.iter().collect();
                all.sort();
                let mut want: Vec<u32> = model.keys().copied().collect();
                want.sort();
                prop_assert_eq!(all, want);
            }
        }
    }

    #[test]
    fn wraps_around_the_end() {
        let mut ix = Index::with_capacity(5);
        assert_eq!(ix.capacity(), 5);
        // All at the last home slot: the run wraps to slot 0 and removal shifts across it.
        let h = u64::MAX << 32;
        for id in 0..5 {
            ix.insert(h, id);
        }
        assert_eq!(ix.bytes(), 64, "no growth");
        assert!(ix.remove(h, 1));
        for id in [0, 2, 3, 4] {
            assert_eq!(ix.find(h, |j| j == id), Some(id));
        }
        assert_eq!(ix.find(h, |j| j == 1), None);
    }
}
