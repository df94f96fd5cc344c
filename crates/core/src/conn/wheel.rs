//! A hierarchical timer wheel whose lists are threaded through the connection slab.
//!
//! Six levels of 64 slots over 10 ms ticks (level 0 spans 640 ms, level 5 about 21 years), the
//! layout of the Linux and tokio wheels. Every connection carries `next`/`prev` links, so
//! arming, re-arming and stopping a timer are O(1) and expiry never scans the table: an
//! [`Wheel::advance`] call only touches slots whose time has come (found through a per-level
//! occupancy bitmap) and the entries in them. A slot that comes due is spliced in O(1) onto a
//! "check" list; entries on it either fire (their tick is reached) or cascade to a lower level.
//! Work per call is bounded by the caller's budget, so a million timers falling due at once are
//! spread over several calls instead of causing one latency spike.
//!
//! Link encoding (no extra field): `prev` is either a slab index, `HEAD | bucket` for the first
//! entry of a bucket, [`UNLINKED`] when no timer is armed, or [`FREE`] for a free slab slot.

use super::Conn;

/// Milliseconds per wheel tick.
pub const TICK_MS: u64 = 10;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const LEVELS: usize = 6;
/// Bucket index of the check list (entries due or to be cascaded).
const CHECK: usize = LEVELS * SLOTS;

/// No entry.
pub(crate) const NIL: u32 = u32::MAX;
/// `prev` of a live entry whose timer is not armed.
pub(crate) const UNLINKED: u32 = u32::MAX;
/// `prev` of a free slab slot.
pub(crate) const FREE: u32 = u32::MAX - 1;
/// Flag in `prev` marking the first entry of a bucket; the low bits are the bucket index.
const HEAD: u32 = 0x8000_0000;

/// The wheel: bucket heads, occupancy bitmaps and the current tick.
#[derive(Clone, Debug)]
pub(crate) struct Wheel {
    heads: Vec<u32>,
    occupied: [u64; LEVELS],
    /// Current tick: every armed timer has a tick > `elapsed`, or sits on the check list.
    elapsed: u64,
    /// Number of armed timers.
    armed: usize,
}

/// The tick at or after `ms` (timers never fire early).
#[inline]
fn tick_of(ms: u64) -> u64 {
    ms.div_ceil(TICK_MS)
}

impl Wheel {
    pub(crate) fn new(now_ms: u64) -> Wheel {
        Wheel {
            heads: vec![NIL; CHECK + 1],
            occupied: [0; LEVELS],
            elapsed: now_ms / TICK_MS,
            armed: 0,
        }
    }

    pub(crate) fn armed(&self) -> usize {
        self.armed
    }

    /// Bucket for an expiry tick relative to `elapsed`.
    #[inline]
    fn bucket_for(&self, t: u64) -> usize {
        if t <= self.elapsed {
            return CHECK;
        }
        let masked = (self.elapsed ^ t) | (SLOTS as u64 - 1);
        let significant = 63 - masked.leading_zeros();
        let level = ((significant / SLOT_BITS) as usize).min(LEVELS - 1);
        let slot = ((t >> (level as u32 * SLOT_BITS)) as usize) & (SLOTS - 1);
        level * SLOTS + slot
    }

    #[inline]
    fn push(&mut self, slab: &mut [Conn], b: usize, i: u32) {
        let old = self.heads[b];
        {
            let c = &mut slab[i as usize];
            c.next = old;
            c.prev = HEAD | b as u32;
        }
        if old != NIL {
            slab[old as usize].prev = i;
        }
        self.heads[b] = i;
        if b < CHECK {
            self.occupied[b / SLOTS] |= 1 << (b % SLOTS);
        }
    }

    /// Arm (or re-arm) entry `i`'s timer for its `expires` field.
    #[inline]
    pub(crate) fn arm(&mut self, slab: &mut [Conn], i: u32) {
        self.stop(slab, i);
        let t = tick_of(slab[i as usize].expires);
        let b = self.bucket_for(t);
        slab[i as usize].due = t as u32;
        self.push(slab, b, i);
        self.armed += 1;
    }

    /// Entry `i`'s `expires` has been set anew (a timer restart): arm it, or, if it is armed
    /// and its new tick is not earlier than the tick it is filed under, leave it where it is.
    ///
    /// This makes the per-packet restart of a long timeout nearly free: no unlinking (which
    /// touches two neighbour entries in random places of the slab) and no relinking. It is
    /// exact because the wheel never trusts a bucket: every entry of a bucket that comes due
    /// is checked against its `expires` and fires only if that is reached, or is filed again
    /// further on. A bucket comes due no later than the tick it was chosen for (`due`), so an
    /// entry whose deadline moved later is looked at before its deadline and moved then, once
    /// per bucket period instead of once per packet. A deadline that moved earlier must be
    /// re-filed now.
    ///
    /// `due` keeps only 32 bits; comparing with wrap-around is exact while the two ticks are
    /// less than 2^31 ticks (248 days) apart. A new tick earlier than `due` is always closer
    /// than that (it is at least the current time, `due` at most a maximal timeout ahead of
    /// the time it was filed), and a later tick that looks earlier only costs a re-file.
    #[inline]
    pub(crate) fn restart(&mut self, slab: &mut [Conn], i: u32) {
        let c = &slab[i as usize];
        if Self::is_armed(c) && (tick_of(c.expires) as u32).wrapping_sub(c.due) < 1 << 31 {
            return;
        }
        self.arm(slab, i);
    }

    /// Arm entry `i`'s timer so that it fires at the next [`Wheel::advance`] whose `now` has
    /// reached its `expires` (for "expire now" and ONE_PACKET entries, which must not wait for
    /// the next tick boundary).
    #[inline]
    pub(crate) fn arm_due(&mut self, slab: &mut [Conn], i: u32) {
        self.stop(slab, i);
        // The check list is examined at the next advance whatever `due` says.
        slab[i as usize].due = self.elapsed as u32;
        self.push(slab, CHECK, i);
        self.armed += 1;
    }

    /// Stop entry `i`'s timer if it is armed.
    #[inline]
    pub(crate) fn stop(&mut self, slab: &mut [Conn], i: u32) {
        let (prev, next) = {
            let c = &slab[i as usize];
            (c.prev, c.next)
        };
        if prev == UNLINKED || prev == FREE {
            return;
        }
        if prev & HEAD != 0 {
            let b = (prev & !HEAD) as usize;
            self.heads[b] = next;
            if next == NIL {
                if b < CHECK {
                    self.occupied[b / SLOTS] &= !(1 << (b % SLOTS));
                }
            } else {
                slab[next as usize].prev = prev;
            }
        } else {
            slab[prev as usize].next = next;
            if next != NIL {
                slab[next as usize].prev = prev;
            }
        }
        let c = &mut slab[i as usize];
        c.prev = UNLINKED;
        c.next = NIL;
        self.armed -= 1;
    }

    /// Whether entry `i`'s timer is armed.
    #[inline]
    pub(crate) fn is_armed(c: &Conn) -> bool {
        c.prev != UNLINKED && c.prev != FREE
    }

    /// The earliest slot that comes due: (bucket, deadline tick).
    fn next_expiration(&self) -> Option<(usize, u64)> {
        let mut best: Option<(usize, u64)> = None;
        for (level, &occ) in self.occupied.iter().enumerate() {
            if occ == 0 {
                continue;
            }
            let shift = level as u32 * SLOT_BITS;
            let slot_range = 1u64 << shift;
            let level_range = slot_range << SLOT_BITS;
            let now_slot = ((self.elapsed >> shift) as usize) & (SLOTS - 1);
            let slot = (occ.rotate_right(now_slot as u32).trailing_zeros() as usize + now_slot)
                & (SLOTS - 1);
            let level_start = self.elapsed & !(level_range - 1);
            let mut deadline = level_start + slot as u64 * slot_range;
            if deadline < self.elapsed {
                // Only the top level can hold a slot "behind" the current one (a timer clamped
                // there across a wrap); it comes due in the next turn of that level.
                if level == LEVELS - 1 || slot < now_slot {
                    deadline += level_range;
                } else {
                    deadline = self.elapsed;
                }
            }
            let better = match best {
                None => true,
                Some((_, d)) => deadline < d,
            };
            if better {
                best = Some((level * SLOTS + slot, deadline));
            }
        }
        best
    }

    /// Move the wheel to `now_ms`, appending up to `budget` expired entries to `out` (their
    /// timers are disarmed). Cascading an entry to a lower level also counts against the budget.
    /// Returns true when more work is pending for this `now_ms` (call again).
    pub(crate) fn advance(
        &mut self,
        slab: &mut [Conn],
        now_ms: u64,
        budget: usize,
        out: &mut Vec<u32>,
    ) -> bool {
        let target = now_ms / TICK_MS;
        // A zero budget would make no progress and report "more" forever.
        let budget = budget.max(1);
        let mut work = 0usize;
        loop {
            // Examine the check list.
            while self.heads[CHECK] != NIL {
                if work >= budget {
                    return true;
                }
                work += 1;
                let i = self.heads[CHECK];
                self.stop(slab, i);
                let expires = slab[i as usize].expires;
                let t = tick_of(expires);
                // `t <= elapsed` implies `expires <= now_ms`; the exact test also lets entries
                // armed with `arm_due` fire without waiting for a tick boundary.
                if t <= self.elapsed || expires <= now_ms {
                    out.push(i);
                } else {
                    let b = self.bucket_for(t);
                    slab[i as usize].due = t as u32;
                    self.push(slab, b, i);
                    self.armed += 1;
                }
            }
            match self.next_expiration() {
                Some((b, deadline)) if deadline <= target => {
                    if deadline > self.elapsed {
                        self.elapsed = deadline;
                    }
                    // Splice the whole slot onto the (empty) check list in O(1).
                    let head = self.heads[b];
                    self.heads[b] = NIL;
                    self.occupied[b / SLOTS] &= !(1 << (b % SLOTS));
                    if head != NIL {
                        slab[head as usize].prev = HEAD | CHECK as u32;
                    }
                    self.heads[CHECK] = head;
                }
                _ => {
                    if target > self.elapsed {
                        self.elapsed = target;
                    }
                    return false;
                }
            }
        }
    }
}
