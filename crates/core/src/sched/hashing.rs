//! The hashing schedulers: sh (docs/internals/schedulers.md#sh--source-hashing, `ip_vs_sh.c`), dh (docs/internals/schedulers.md#dh--destination-hashing, `ip_vs_dh.c`) and mh (docs/internals/schedulers.md#mh--maglev-hashing,
//! `ip_vs_mh.c`). Tables map flows exactly like the kernel's, so kernel directors and rvs agree.
//!
//! sh and dh use the modern kernels' `hash_32` (top bits of the golden-ratio product). Old
//! kernels computed `(fold * 2654435761) & mask` (low bits) instead; a fleet mixing rvs with
//! such kernels would not agree on sh/dh placement.

use std::net::IpAddr;

use crate::addr::{fold, Family};
use crate::dest::{Dest, DestId};
use crate::hash::{hash_32, hsiphash_1u32};
use crate::sched::index::MaxTree;
use crate::sched::mh_grace::{self, Members, PreviousTable};
use crate::sched::{DestView, Flow};
use crate::service::ServiceFlags;
use crate::time::{Duration, Time};

/// sh/mh "is_unavailable": weight ≤ 0 or OVERLOAD (the AVAILABLE flag is not checked; removed
/// destinations are no longer in the table because del rebuilds it).
#[inline]
fn usable(d: &Dest) -> bool {
    d.eligible()
}

/// The address and port sh and mh hash: the source (the destination for an ICMP error in the
/// reverse direction), and the matching port only with the `*-port` flag and only for
/// TCP/UDP/SCTP (`ip_vs_sh_get_port` / `ip_vs_mh_get_port`).
fn hash_addr_port(flow: &Flow, with_port: bool) -> (IpAddr, u16) {
    let addr = if flow.inverse { flow.daddr } else { flow.saddr };
    let port = match (with_port, flow.proto) {
        (true, Some(_)) if flow.inverse => flow.dport,
        (true, Some(_)) => flow.sport,
        _ => 0,
    };
    (addr, port)
}

/// `fold` as the kernel does it with the *service's* family: an IPv6 destination of an IPv4
/// service (tunnelling across families) contributes its first 32-bit word (`addr->ip`), and an
/// IPv4 destination of an IPv6 service XORs with the zero padding of `nf_inet_addr`.
pub fn fold_af(af: Family, addr: &IpAddr) -> u32 {
    match (af, addr) {
        (Family::Inet, IpAddr::V6(a)) => {
            let o = a.octets();
            u32::from_be_bytes([o[0], o[1], o[2], o[3]])
        }
        _ => fold(addr),
    }
}

/// Per-position bookkeeping of how many table slots each destination holds and whether it is
/// usable now, so that a fallback walk over a table without any usable slot ends at once
/// (the kernel would probe every slot and find nothing, which gives the same answer).
#[derive(Clone, Debug, Default)]
struct SlotCount {
    /// Slots held by the destination at each list position.
    slots: Vec<u32>,
    /// Whether the destination at each list position was usable when last looked at.
    usable: Vec<bool>,
    /// Slots whose destination is usable.
    usable_slots: u64,
}

impl SlotCount {
    fn reset(&mut self, view: &DestView<'_>) {
        self.slots.clear();
        self.slots.resize(view.len(), 0);
        self.usable.clear();
        self.usable.extend(view.iter().map(|(_, d)| usable(d)));
        self.usable_slots = 0;
    }
    fn add_slot(&mut self, pos: usize) {
        if let Some(s) = self.slots.get_mut(pos) {
            *s += 1;
            if self.usable.get(pos).copied().unwrap_or(false) {
                self.usable_slots += 1;
            }
        }
    }
    fn on_change(&mut self, view: &DestView<'_>, id: DestId) {
        let Some(p) = view.pos_of(id) else {
            return;
        };
        let now = view.get(p).is_some_and(usable);
        let (Some(was), Some(&n)) = (self.usable.get_mut(p), self.slots.get(p)) else {
            return;
        };
        if *was != now {
            if now {
                self.usable_slots += u64::from(n);
            } else {
                self.usable_slots = self.usable_slots.saturating_sub(u64::from(n));
            }
            *was = now;
        }
    }
}

/// sh — source hashing with a `2^bits`-bucket table.
///
/// The sh-fallback walk probes buckets `2*ih, 2*ih + 1, …` (mod size) for the first usable
/// destination. A max tree over the buckets' usability answers that in O(log size) instead of
/// up to `size` probes; a destination's buckets are updated only when its usability flips.
#[derive(Clone, Debug)]
pub struct Sh {
    bits: u32,
    buckets: Vec<Option<DestId>>,
    /// 1 where the bucket's destination is usable (weight > 0, not OVERLOAD).
    usable_buckets: MaxTree,
    /// Buckets held by the destination at each list position.
    buckets_of: Vec<Vec<u32>>,
    /// Usability of the destination at each list position, as last indexed.
    usable_pos: Vec<bool>,
}

impl Sh {
    pub(crate) fn new(view: &DestView<'_>, bits: u8) -> Sh {
        // CONFIG_IP_VS_SH_TAB_BITS is 4..=20 in Kconfig (Scheduler::new rejects others).
        let bits = u32::from(bits.clamp(4, 20));
        let mut s = Sh {
            bits,
            buckets: vec![None; 1 << bits],
            usable_buckets: MaxTree::default(),
            buckets_of: Vec::new(),
            usable_pos: Vec::new(),
        };
        s.reassign(view);
        s
    }

    /// `ip_vs_sh_reassign`: walk the list cyclically, giving each destination `max(weight, 1)`
    /// consecutive buckets (weights read now; a weight-0 destination still gets one bucket).
    pub(crate) fn reassign(&mut self, view: &DestView<'_>) {
        let n = view.len();
        self.buckets_of.iter_mut().for_each(Vec::clear);
        self.buckets_of.resize_with(n, Vec::new);
        self.usable_pos.clear();
        self.usable_pos
            .extend((0..n).map(|p| view.get(p).is_some_and(usable)));
        let mut pos = 0usize;
        let mut d_count = 0u64;
        for (i, b) in self.buckets.iter_mut().enumerate() {
            if n == 0 {
                *b = None;
                continue;
            }
            *b = view.ids.get(pos).copied();
            if let Some(list) = self.buckets_of.get_mut(pos) {
                list.push(i as u32);
            }
            d_count += 1;
            if d_count >= view.get(pos).map_or(0, |d| u64::from(d.weight())) {
                pos = (pos + 1) % n;
                d_count = 0;
            }
        }
        let arena = view.arena;
        let buckets = &self.buckets;
        self.usable_buckets.rebuild(buckets.len(), |i| {
            u64::from(buckets[i].and_then(|id| arena.get(id)).is_some_and(usable))
        });
    }

    /// The bucket of `(addr, port)` at `offset`: `(offset + hash_32(port + fold(addr))) & mask`.
    #[inline]
    fn hashkey(&self, addr: &IpAddr, port: u16, offset: u32) -> usize {
        let v = u32::from(port).wrapping_add(fold(addr));
        (offset.wrapping_add(hash_32(v, self.bits)) & ((1 << self.bits) - 1)) as usize
    }

    /// Re-index the destination's buckets if its usability flipped.
    pub(crate) fn on_load_change(&mut self, view: &DestView<'_>, id: DestId) {
        let Some(p) = view.pos_of(id) else {
            return;
        };
        let now = view.get(p).is_some_and(usable);
        let Some(was) = self.usable_pos.get_mut(p) else {
            return;
        };
        if *was == now {
            return;
        }
        *was = now;
        if let Some(list) = self.buckets_of.get(p) {
            for &b in list {
                self.usable_buckets.update(b as usize, u64::from(now));
            }
        }
    }

    pub(crate) fn schedule(
        &self,
        view: &DestView<'_>,
        flow: &Flow,
        flags: ServiceFlags,
    ) -> Option<DestId> {
        let (addr, port) = hash_addr_port(flow, flags.has(ServiceFlags::SH_PORT));
        let arena = view.arena;
        let ih = self.hashkey(&addr, port, 0);
        // An empty bucket (empty service) is "none" with or without fallback.
        let first = (*self.buckets.get(ih)?)?;
        if arena.get(first).is_some_and(usable) {
            return Some(first);
        }
        if !flags.has(ServiceFlags::SH_FALLBACK) {
            return None;
        }
        // Kernel quirk: the probe for o = 0.. is hashkey(addr, port, (o + ih) % size), and
        // hashkey adds the hash again, so the walk starts at bucket 2*ih, not ih + 1, and then
        // visits every bucket once, cyclically. Every bucket is filled (the service is not
        // empty), so the kernel's "stop at an empty bucket" never triggers here.
        let start = self.hashkey(&addr, port, ih as u32);
        let b = self
            .usable_buckets
            .first_at_least(start, 1)
            .or_else(|| self.usable_buckets.first_at_least(0, 1))?;
        *self.buckets.get(b)?
    }

    /// The table (for tests and inspection).
    pub fn buckets(&self) -> &[Option<DestId>] {
        &self.buckets
    }
}

/// dh — destination hashing with 256 buckets.
#[derive(Clone, Debug)]
pub struct Dh {
    buckets: Vec<Option<DestId>>,
}

/// `IP_VS_DH_TAB_BITS`.
const DH_TAB_BITS: u32 = 8;

impl Dh {
    pub(crate) fn new(view: &DestView<'_>) -> Dh {
        let mut d = Dh {
            buckets: vec![None; 1 << DH_TAB_BITS],
        };
        d.reassign(view);
        d
    }

    /// `ip_vs_dh_reassign`: bucket i = i-th destination cyclically; weights ignored.
    pub(crate) fn reassign(&mut self, view: &DestView<'_>) {
        let n = view.len();
        for (i, b) in self.buckets.iter_mut().enumerate() {
            *b = if n == 0 {
                None
            } else {
                view.ids.get(i % n).copied()
            };
        }
    }

    pub(crate) fn schedule(&self, view: &DestView<'_>, flow: &Flow) -> Option<DestId> {
        // Always the packet's real destination address: no inverse handling, no port.
        let b = hash_32(fold(&flow.daddr), DH_TAB_BITS) as usize;
        let id = (*self.buckets.get(b)?)?;
        let d = view.arena.get(id)?;
        // AVAILABLE (still linked into this service), weight > 0, not OVERLOAD.
        (view.pos_of(id).is_some() && d.eligible()).then_some(id)
    }

    /// The table (for tests and inspection).
    pub fn buckets(&self) -> &[Option<DestId>] {
        &self.buckets
    }
}

/// mh hash keys (`generate_hash_secret`): constant, not random.
pub const MH_K1: u64 = 2_654_435_761;
/// Second mh key, for the skip.
pub const MH_K2: u64 = 2_654_446_892;

/// `ip_vs_mh_hashkey`: `hsiphash(offset + port + fold(addr))`.
#[inline]
fn mh_hash(af: Family, addr: &IpAddr, port: u16, key: u64, offset: u32) -> u32 {
    let v = offset
        .wrapping_add(u32::from(port))
        .wrapping_add(fold_af(af, addr));
    hsiphash_1u32(v, key)
}

/// Offset and skip of a destination in a table of `m` slots (`ip_vs_mh_permutate`).
/// (`m` is one of the kernel's primes; a degenerate `m < 2` gives `(0, 1)`.)
pub fn mh_offset_skip(af: Family, addr: &IpAddr, port: u16, m: u32) -> (u32, u32) {
    if m < 2 {
        return (0, 1);
    }
    let offset = mh_hash(af, addr, port, MH_K1, 0) % m;
    let skip = mh_hash(af, addr, port, MH_K2, 0) % (m - 1) + 1;
    (offset, skip)
}

/// mh — Maglev hashing.
#[derive(Clone, Debug)]
pub struct Mh {
    /// Table size M (a prime).
    m: u32,
    /// `IP_VS_MH_TAB_BITS` = `CONFIG_IP_VS_MH_TAB_INDEX / 2`.
    tab_bits: u32,
    lookup: Vec<Option<DestId>>,
    count: SlotCount,
    /// Rebuild scratch, kept to avoid reallocating on every change.
    setup: Vec<(u32, u32, u32, u64)>,
    taken: Vec<bool>,
    /// The destinations the current table was built from (handed to `previous` on a change).
    members: Members,
    /// The table before the last change, kept for `rvs_mh_grace` (rvs addition).
    previous: PreviousTable,
}

fn gcd_u64(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// `fls`: 1-based index of the highest set bit, 0 for 0.
fn fls(x: u64) -> u32 {
    64 - x.leading_zeros()
}

impl Mh {
    pub(crate) fn new(view: &DestView<'_>, m: u32, tab_index: u8, grace: Duration) -> Mh {
        let mut s = Mh {
            m,
            tab_bits: u32::from(tab_index / 2),
            lookup: vec![None; m as usize],
            count: SlotCount::default(),
            setup: Vec::new(),
            taken: Vec::new(),
            members: Members::new(),
            previous: PreviousTable::new(grace),
        };
        s.reassign(view);
        s
    }

    /// `ip_vs_mh_dest_changed` / `ip_vs_mh_reassign`: rebuild from `last_weight`. With a grace
    /// (`rvs_mh_grace`), the outgoing table is kept for mid-stream packets (see `mh_grace`).
    pub(crate) fn reassign(&mut self, view: &DestView<'_>) {
        let outgoing = self
            .previous
            .wanted()
            .then(|| (self.lookup.clone(), std::mem::take(&mut self.members)));
        self.rebuild(view);
        mh_grace::members(view, &mut self.members);
        if let Some((old, old_members)) = outgoing {
            self.previous.changed(old, old_members, &self.lookup);
        }
    }

    /// A new grace length (`rvs_mh_grace`); 0 forgets a kept table.
    pub(crate) fn set_grace(&mut self, grace: Duration) {
        self.previous.set_grace(grace);
    }

    /// Housekeeping about once a second: the kept table's grace.
    pub(crate) fn tick(&mut self, now: Time) {
        self.previous.tick(now);
    }

    /// Whether a previous table is kept (for tests).
    pub fn keeps_previous(&self) -> bool {
        self.previous.is_kept()
    }

    /// The table built from the destinations' `last_weight` (the kernel's populate).
    fn rebuild(&mut self, view: &DestView<'_>) {
        self.count.reset(view);
        let m = self.m;
        // gcd of the positive last weights; none → the table is cleared.
        let mut g = 0u64;
        let mut maxw = 0u64;
        for (_, d) in view.iter() {
            let lw = u64::from(d.last_weight);
            if lw > 0 {
                g = if g > 0 { gcd_u64(lw, g) } else { lw };
            }
            maxw = maxw.max(lw);
        }
        if g < 1 || m < 2 {
            self.lookup.iter_mut().for_each(|s| *s = None);
            return;
        }
        let rshift = fls(maxw / g).saturating_sub(self.tab_bits);
        // The service's family (all destinations carry the same service key).
        let af = view
            .iter()
            .next()
            .map_or(Family::Inet, |(_, d)| d.svc_key.family());
        self.setup.clear();
        for (_, d) in view.iter() {
            let (offset, skip) = mh_offset_skip(af, &d.cfg.addr, d.cfg.port, m);
            let lw = u64::from(d.last_weight);
            let shifted = (lw / g) >> rshift;
            let turns = if shifted != 0 {
                shifted
            } else {
                u64::from(lw != 0)
            };
            // (offset, skip, perm, turns)
            self.setup.push((offset, skip, offset, turns));
        }
        self.taken.clear();
        self.taken.resize(m as usize, false);
        // ip_vs_mh_populate: rounds over the list; each destination with turns ≥ 1 claims
        // `turns` slots, each the next free one along its permutation; stop at the M-th slot.
        let n = view.len();
        let mut filled = 0u32;
        'fill: loop {
            for pos in 0..n {
                let Some(ds) = self.setup.get_mut(pos) else {
                    break 'fill;
                };
                for _ in 0..ds.3 {
                    let mut c = ds.2;
                    while self.taken[c as usize] {
                        ds.2 += ds.1;
                        if ds.2 >= m {
                            ds.2 -= m;
                        }
                        c = ds.2;
                    }
                    self.taken[c as usize] = true;
                    self.lookup[c as usize] = view.ids.get(pos).copied();
                    self.count.add_slot(pos);
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
    }

    pub(crate) fn on_load_change(&mut self, view: &DestView<'_>, id: DestId) {
        self.count.on_change(view, id);
    }

    pub(crate) fn schedule(
        &self,
        view: &DestView<'_>,
        flow: &Flow,
        flags: ServiceFlags,
    ) -> Option<DestId> {
        let (addr, port) = hash_addr_port(flow, flags.has(ServiceFlags::MH_PORT));
        let af = Family::of(&addr);
        let m = self.m;
        let arena = view.arena;
        let ok = |id: DestId| arena.get(id).is_some_and(usable);
        let ih = mh_hash(af, &addr, port, MH_K1, 0) % m;
        if flow.midstream {
            // A flow already under way: where the table before the last change sent it, while
            // that table is kept and its choice is still usable (rvs addition).
            if let Some(id) = self.previous.choose(ih, view, ok) {
                return Some(id);
            }
        }
        let first = (*self.lookup.get(ih as usize)?)?;
        if ok(first) {
            return Some(first);
        }
        if !flags.has(ServiceFlags::MH_FALLBACK) || self.count.usable_slots == 0 {
            return None;
        }
        for o in 0..m {
            // Unlike sh, the offset is re-hashed: probe H(v(addr, port, (o + ih) % M)) % M.
            let r = ((u64::from(o) + u64::from(ih)) % u64::from(m)) as u32;
            let slot = mh_hash(af, &addr, port, MH_K1, r) % m;
            let id = (*self.lookup.get(slot as usize)?)?;
            if ok(id) {
                return Some(id);
            }
        }
        None
    }

    /// The lookup table (for tests and inspection).
    pub fn table(&self) -> &[Option<DestId>] {
        &self.lookup
    }
}
