//! lblc (docs/internals/schedulers.md#lblc--locality-based-least-connection, `ip_vs_lblc.c`) and lblcr (docs/internals/schedulers.md#lblcr--lblc-with-replication, `ip_vs_lblcr.c`): a per-service cache from
//! destination IP to destination (lblc) or to a set of destinations (lblcr), falling back to
//! wlc, with the kernel's 60-second garbage collection.
//!
//! The wlc fallback uses the same O(log n) index as wlc, and the "some destination is less than
//! half busy" half of the lblc overload test is a counter kept up to date on every load change,
//! so a decision never scans the destination list. lblcr still scans its (small) per-IP set.

use std::net::IpAddr;

use crate::addr::fold;
use crate::dest::{Dest, DestId};
use crate::hash::hash_32;
use crate::sched::least::{Least, Metric};
use crate::sched::DestView;
use crate::time::{Duration, Time};

/// `IP_VS_LBLC_TAB_BITS` / `IP_VS_LBLCR_TAB_BITS`.
const TAB_BITS: u32 = 10;
/// 1024 buckets.
const TAB_SIZE: usize = 1 << TAB_BITS;
/// `max_size`: entries above which the 60 s run starts removing idle entries.
const MAX_SIZE: usize = TAB_SIZE * 16;
/// `ENTRY_TIMEOUT`: idle time after which an over-limit run may remove an entry.
const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// `CHECK_EXPIRE_INTERVAL`.
const CHECK_EXPIRE_INTERVAL: Duration = Duration::from_secs(60);
/// `COUNT_FOR_FULL_EXPIRATION`: every 30th run is a full expiration scan.
const COUNT_FOR_FULL_EXPIRATION: u32 = 30;

/// A cached reference to a destination. The kernel holds a reference count on the destination
/// object; here the arena id can be recycled once a deleted destination has left the trash, so
/// the address and port are kept to recognise the same destination.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct DestRef {
    id: DestId,
    addr: IpAddr,
    port: u16,
}

impl DestRef {
    fn of(view: &DestView<'_>, id: DestId) -> Option<DestRef> {
        let d = view.arena.get(id)?;
        Some(DestRef {
            id,
            addr: d.cfg.addr,
            port: d.cfg.port,
        })
    }

    /// The destination object, if it still exists, and whether it is AVAILABLE, i.e. still
    /// linked into this service.
    fn resolve<'a>(&self, view: &DestView<'a>) -> Option<(&'a Dest, bool)> {
        let d = view.arena.get(self.id)?;
        if d.cfg.addr != self.addr || d.cfg.port != self.port {
            return None;
        }
        Some((d, d.available && view.pos_of(self.id).is_some()))
    }
}

/// What both caches share: the wlc index, the half-idle counter and the GC clock.
#[derive(Clone, Debug)]
struct Common {
    wlc: Least,
    /// Per list position: `activeconns * 2 < weight`.
    half_idle: Vec<bool>,
    half_idle_count: usize,
    /// `counter` of the GC timer.
    counter: u32,
    /// `rover` of the over-limit GC walk.
    rover: usize,
    /// When the GC timer fires next.
    next_gc: Time,
    /// Number of cache entries.
    entries: usize,
}

fn half_idle(d: &Dest) -> bool {
    u64::from(d.active) * 2 < u64::from(d.weight())
}

impl Common {
    fn new(view: &DestView<'_>, now: Time) -> Common {
        let mut c = Common {
            wlc: Least::new(Metric::Wlc, view),
            half_idle: Vec::new(),
            half_idle_count: 0,
            counter: 1,
            rover: 0,
            next_gc: now + CHECK_EXPIRE_INTERVAL,
            entries: 0,
        };
        c.rebuild(view);
        c
    }

    fn rebuild(&mut self, view: &DestView<'_>) {
        self.wlc.rebuild(view);
        self.half_idle.clear();
        self.half_idle
            .extend(view.iter().map(|(_, d)| half_idle(d)));
        self.half_idle_count = self.half_idle.iter().filter(|&&h| h).count();
    }

    fn on_change(&mut self, view: &DestView<'_>, id: DestId) {
        self.wlc.on_change(view, id);
        if let Some(p) = view.pos_of(id) {
            let now = view.get(p).is_some_and(half_idle);
            if let Some(was) = self.half_idle.get_mut(p) {
                if *was != now {
                    if now {
                        self.half_idle_count += 1;
                    } else {
                        self.half_idle_count = self.half_idle_count.saturating_sub(1);
                    }
                    *was = now;
                }
            }
        }
    }

    /// The lblc/lblcr `is_overloaded`: more active connections than weight while some
    /// destination of the service has `activeconns * 2 < weight`. (This is not the threshold
    /// OVERLOAD flag.)
    fn overloaded(&self, d: &Dest) -> bool {
        d.active > d.weight() && self.half_idle_count > 0
    }

    /// Catch up with the GC runs missed while the cache was empty and nobody ticked: each one
    /// would only have advanced the run counter (see [`check_expire`]), so the next full
    /// expiration comes at the run the kernel's would.
    fn resume(&mut self, now: Time) {
        if self.entries != 0 {
            return;
        }
        while now >= self.next_gc {
            self.next_gc = self.next_gc + CHECK_EXPIRE_INTERVAL;
            if self.counter.is_multiple_of(COUNT_FOR_FULL_EXPIRATION) {
                self.counter = 1;
            } else {
                self.counter += 1;
            }
        }
    }

    /// Whether the GC timer fires at `now`; re-arms it.
    fn gc_due(&mut self, now: Time) -> bool {
        if now < self.next_gc {
            return false;
        }
        self.next_gc = now + CHECK_EXPIRE_INTERVAL;
        true
    }
}

/// The kernel's cache bucket of a destination IP.
#[inline]
fn bucket_of(addr: &IpAddr) -> usize {
    hash_32(fold(addr), TAB_BITS) as usize
}

/// One periodic GC run over `buckets` (`ip_vs_lblc_check_expire` / `ip_vs_lblcr_check_expire`),
/// generic over the entry type through `lastuse`.
fn check_expire<E>(
    c: &mut Common,
    buckets: &mut [Vec<E>],
    now: Time,
    expiration: Duration,
    lastuse: impl Fn(&E) -> Time,
) {
    if c.counter.is_multiple_of(COUNT_FOR_FULL_EXPIRATION) {
        // Full expiration check: every entry idle for the sysctl expiration goes. The walk
        // starts after the rover and ends on it, leaving it unchanged.
        for b in buckets.iter_mut() {
            let before = b.len();
            b.retain(|e| now < lastuse(e) + expiration);
            c.entries = c.entries.saturating_sub(before - b.len());
        }
        c.counter = 1;
        return;
    }
    if c.entries <= MAX_SIZE {
        c.counter += 1;
        return;
    }
    let mut goal = ((c.entries - MAX_SIZE) * 4 / 3).min(MAX_SIZE / 2) as i64;
    let mut j = c.rover;
    for _ in 0..TAB_SIZE {
        j = (j + 1) & (TAB_SIZE - 1);
        if let Some(b) = buckets.get_mut(j) {
            let before = b.len();
            b.retain(|e| now < lastuse(e) + ENTRY_TIMEOUT);
            let removed = before - b.len();
            c.entries = c.entries.saturating_sub(removed);
            goal -= removed as i64;
        }
        // The kernel checks the goal only after a whole bucket.
        if goal <= 0 {
            break;
        }
    }
    c.rover = j;
}

#[derive(Clone, Debug)]
struct LblcEntry {
    addr: IpAddr,
    dest: DestRef,
    lastuse: Time,
}

/// lblc: destination IP → destination.
#[derive(Clone, Debug)]
pub struct Lblc {
    common: Common,
    buckets: Vec<Vec<LblcEntry>>,
    pub(crate) expiration: Duration,
}

impl Lblc {
    pub(crate) fn new(view: &DestView<'_>, now: Time, expiration_secs: u32) -> Lblc {
        Lblc {
            common: Common::new(view, now),
            buckets: vec![Vec::new(); TAB_SIZE],
            expiration: Duration::from_secs(u64::from(expiration_secs)),
        }
    }

    pub(crate) fn rebuild(&mut self, view: &DestView<'_>) {
        self.common.rebuild(view);
    }

    pub(crate) fn on_change(&mut self, view: &DestView<'_>, id: DestId) {
        self.common.on_change(view, id);
    }

    /// Number of cache entries.
    pub fn entries(&self) -> usize {
        self.common.entries
    }

    pub(crate) fn schedule(
        &mut self,
        view: &DestView<'_>,
        daddr: &IpAddr,
        now: Time,
    ) -> Option<DestId> {
        let b = bucket_of(daddr);
        let bucket = self.buckets.get_mut(b)?;
        let idx = bucket.iter().position(|e| e.addr == *daddr);
        if let Some(i) = idx {
            let en = &mut bucket[i];
            en.lastuse = now;
            // AVAILABLE, weight > 0 and not lblc-overloaded; the threshold OVERLOAD flag is
            // deliberately not checked here (kernel behaviour).
            if let Some((d, true)) = en.dest.resolve(view) {
                if d.weight() > 0 && !self.common.overloaded(d) {
                    return Some(en.dest.id);
                }
            }
        }
        let id = self.common.wlc.schedule(view)?;
        let r = DestRef::of(view, id)?;
        match idx {
            Some(i) => {
                // ip_vs_lblc_new replaces the entry's destination (lastuse is now either way).
                bucket[i].dest = r;
                bucket[i].lastuse = now;
            }
            None => {
                bucket.push(LblcEntry {
                    addr: *daddr,
                    dest: r,
                    lastuse: now,
                });
                self.common.entries += 1;
            }
        }
        Some(id)
    }

    /// Whether the cache holds entries the periodic GC must see.
    pub(crate) fn needs_ticks(&self) -> bool {
        self.common.entries != 0
    }

    pub(crate) fn resume(&mut self, now: Time) {
        self.common.resume(now);
    }

    pub(crate) fn tick(&mut self, now: Time) {
        if self.common.gc_due(now) {
            check_expire(
                &mut self.common,
                &mut self.buckets,
                now,
                self.expiration,
                |e| e.lastuse,
            );
        }
    }
}

#[derive(Clone, Debug)]
struct LblcrEntry {
    addr: IpAddr,
    /// The destination set; the kernel adds new members at the front, here they are pushed at
    /// the back and the set is walked in reverse, which is the same order.
    set: Vec<DestRef>,
    lastuse: Time,
    /// `set.lastmod`.
    lastmod: Time,
}

/// lblcr: destination IP → set of destinations.
#[derive(Clone, Debug)]
pub struct Lblcr {
    common: Common,
    buckets: Vec<Vec<LblcrEntry>>,
    pub(crate) expiration: Duration,
}

/// `ip_vs_dest_set_min`: the weighted least-connection member (index into `set`).
fn set_min(set: &[DestRef], view: &DestView<'_>) -> Option<usize> {
    let mut it = set.iter().enumerate().rev();
    let mut least: Option<(usize, u64, u64)> = None;
    // First member that is not OVERLOAD, has weight > 0 and is AVAILABLE.
    for (i, r) in it.by_ref() {
        if let Some((d, avail)) = r.resolve(view) {
            if !d.overload && d.weight() > 0 && avail {
                least = Some((i, d.overhead(), u64::from(d.weight())));
                break;
            }
        }
    }
    let (mut li, mut loh, mut lw) = least?;
    // Then any later non-OVERLOAD, AVAILABLE member strictly less loaded per weight.
    for (i, r) in it {
        if let Some((d, avail)) = r.resolve(view) {
            if d.overload {
                continue;
            }
            let doh = d.overhead();
            let dw = u64::from(d.weight());
            if u128::from(loh) * u128::from(dw) > u128::from(doh) * u128::from(lw) && avail {
                (li, loh, lw) = (i, doh, dw);
            }
        }
    }
    Some(li)
}

/// `ip_vs_dest_set_max`: the weighted most-loaded member with weight > 0 (AVAILABLE is not
/// checked).
fn set_max(set: &[DestRef], view: &DestView<'_>) -> Option<usize> {
    let mut it = set.iter().enumerate().rev();
    let mut most: Option<(usize, u64, u64)> = None;
    for (i, r) in it.by_ref() {
        if let Some((d, _)) = r.resolve(view) {
            if d.weight() > 0 {
                most = Some((i, d.overhead(), u64::from(d.weight())));
                break;
            }
        }
    }
    let (mut mi, mut moh, mut mw) = most?;
    for (i, r) in it {
        if let Some((d, _)) = r.resolve(view) {
            let doh = d.overhead();
            let dw = u64::from(d.weight());
            if u128::from(moh) * u128::from(dw) < u128::from(doh) * u128::from(mw) && dw > 0 {
                (mi, moh, mw) = (i, doh, dw);
            }
        }
    }
    Some(mi)
}

impl Lblcr {
    pub(crate) fn new(view: &DestView<'_>, now: Time, expiration_secs: u32) -> Lblcr {
        Lblcr {
            common: Common::new(view, now),
            buckets: vec![Vec::new(); TAB_SIZE],
            expiration: Duration::from_secs(u64::from(expiration_secs)),
        }
    }

    pub(crate) fn rebuild(&mut self, view: &DestView<'_>) {
        self.common.rebuild(view);
    }

    pub(crate) fn on_change(&mut self, view: &DestView<'_>, id: DestId) {
        self.common.on_change(view, id);
    }

    /// Number of cache entries.
    pub fn entries(&self) -> usize {
        self.common.entries
    }

    pub(crate) fn schedule(
        &mut self,
        view: &DestView<'_>,
        daddr: &IpAddr,
        now: Time,
    ) -> Option<DestId> {
        let b = bucket_of(daddr);
        let bucket = self.buckets.get_mut(b)?;
        let Some(en) = bucket.iter_mut().find(|e| e.addr == *daddr) else {
            // No entry: wlc over the service, and a new entry {chosen}.
            let id = self.common.wlc.schedule(view)?;
            let r = DestRef::of(view, id)?;
            bucket.push(LblcrEntry {
                addr: *daddr,
                set: vec![r],
                lastuse: now,
                lastmod: now,
            });
            self.common.entries += 1;
            return Some(id);
        };
        en.lastuse = now;
        let min = set_min(&en.set, view).and_then(|i| en.set.get(i).copied());
        // More than one member and the set has not changed for the expiration: drop the most
        // loaded member (time_after: strictly later).
        if en.set.len() > 1 && now > en.lastmod + self.expiration {
            if let Some(i) = set_max(&en.set, view) {
                en.set.remove(i);
                en.lastmod = now;
            }
        }
        if let Some(r) = min {
            if let Some((d, _)) = r.resolve(view) {
                if !self.common.overloaded(d) {
                    return Some(r.id);
                }
            }
        }
        let id = self.common.wlc.schedule(view)?;
        let r = DestRef::of(view, id)?;
        if !en.set.contains(&r) {
            en.set.push(r);
            en.lastmod = now;
        }
        Some(id)
    }

    /// Whether the cache holds entries the periodic GC must see.
    pub(crate) fn needs_ticks(&self) -> bool {
        self.common.entries != 0
    }

    pub(crate) fn resume(&mut self, now: Time) {
        self.common.resume(now);
    }

    pub(crate) fn tick(&mut self, now: Time) {
        if self.common.gc_due(now) {
            check_expire(
                &mut self.common,
                &mut self.buckets,
                now,
                self.expiration,
                |e| e.lastuse,
            );
        }
    }
}
