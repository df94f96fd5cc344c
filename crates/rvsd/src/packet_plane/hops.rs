//! Next hops for the workers: a cache the keeper fills and the workers only read.
//!
//! The plane asks for a next hop per forwarded packet, under the packet shard's lock. A
//! worker answers from the [`HopTable`] the keeper publishes, then from the neighbours learned
//! from solicitations ([`crate::learned_neighbours`]); when neither knows the destination the
//! answer is *neighbour pending*: the plane drops the frame (counted `no_route`), the worker
//! holds the frame until the next hop is known ([`super::unresolved`]) and the destination is
//! noted. After the block, outside the lock, the worker hands its misses
//! to the keeper ([`Misses`]) and rings its bell; the keeper asks the kernel over rtnetlink
//! (firing a probe when the neighbour is unknown) and publishes the table again when it
//! learned something. No worker makes a system call for a next hop. A destination the kernel
//! does not know yet is looked at again soon after the probe ([`Resolving::retry`]: 2 ms,
//! then twice as long each time, for up to [`PROBE_FOR`]), so that held frames leave as soon
//! as the neighbour answers rather than when the next packet reports it again.
//!
//! The keeper also resolves every real server as soon as it is added (blocking, before the
//! control request returns), and re-reads entries older than [`REFRESH_AFTER`] so that a
//! moved neighbour is followed and a vanished one dropped.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_packet::plane::{Neighbours, NextHop, PortId};
use rvs_packet_io::Resolver;

use super::iface::Iface;
use crate::learned_neighbours::Learned;
use crate::lock::lock;
use crate::published::{Doorbell, Published, Snapshot};

/// How long a destination a worker reported is not reported again: a flood toward an
/// unroutable or dead address costs a hash lookup per packet, not a keeper round per packet.
pub(super) const REPORT_AGAIN_AFTER: Duration = Duration::from_millis(200);
/// Most remembered reports per worker; cleared when full (bounded memory under a flood).
const REPORTED_MAX: usize = 4096;
/// Most misses waiting for the keeper; more are dropped (the next packet reports them again).
const MISSES_MAX: usize = 4096;
/// How long the keeper keeps looking for a destination it probed: the kernel gives up on a
/// neighbour after three probes one second apart.
pub(super) const PROBE_FOR: Duration = Duration::from_secs(3);
/// First wait before looking again at a probed destination (doubled each time).
const PROBE_FIRST_LOOK: Duration = Duration::from_millis(2);
/// Age after which the keeper re-reads a cached next hop from the kernel.
pub(super) const REFRESH_AFTER: Duration = Duration::from_secs(30);

/// The next hops the keeper resolved, by destination.
#[derive(Debug, Clone, Default)]
pub struct HopTable {
    hops: HashMap<IpAddr, NextHop>,
}

impl FromIterator<(IpAddr, NextHop)> for HopTable {
    fn from_iter<I: IntoIterator<Item = (IpAddr, NextHop)>>(it: I) -> Self {
        HopTable {
            hops: it.into_iter().collect(),
        }
    }
}

impl HopTable {
    /// The next hop of `dst`, if resolved.
    pub fn get(&self, dst: &IpAddr) -> Option<NextHop> {
        self.hops.get(dst).copied()
    }
}

/// Destinations the workers could not find, waiting for the keeper.
#[derive(Debug, Default)]
pub struct Misses {
    queue: Mutex<Vec<IpAddr>>,
}

impl Misses {
    /// Queues `dsts` (bounded); true when something was queued.
    fn push(&self, dsts: &[IpAddr]) -> bool {
        let mut q = lock(&self.queue);
        let room = MISSES_MAX.saturating_sub(q.len());
        q.extend(dsts.iter().take(room));
        room > 0
    }

    /// Takes every queued destination.
    pub fn take(&self) -> Vec<IpAddr> {
        std::mem::take(&mut *lock(&self.queue))
    }
}

/// A worker's next-hop lookup: cache-only (see the module docs).
pub(super) struct Hops {
    table: Arc<Published<HopTable>>,
    snap: RefCell<Snapshot<HopTable>>,
    /// Neighbours learned from solicitations, shared by the workers (a reply often arrives
    /// on another interface than the client's solicitation); locked only on a table miss.
    learned: Arc<Mutex<Learned>>,
    /// This block's misses, handed to the keeper after it.
    misses: RefCell<Vec<IpAddr>>,
    /// When each destination was last reported.
    reported: RefCell<HashMap<IpAddr, Instant>>,
    /// Lookups that found nothing (each one a dropped frame).
    pending: Cell<u64>,
}

impl Hops {
    pub(super) fn new(table: Arc<Published<HopTable>>, learned: Arc<Mutex<Learned>>) -> Hops {
        Hops {
            snap: RefCell::new(table.load()),
            table,
            learned,
            misses: RefCell::new(Vec::new()),
            reported: RefCell::new(HashMap::new()),
            pending: Cell::new(0),
        }
    }

    /// Whether a lookup of `dst` would find a next hop now; counts and reports nothing.
    pub(super) fn resolved(&self, dst: &IpAddr) -> bool {
        let mut snap = self.snap.borrow_mut();
        self.table.refresh(&mut snap);
        snap.get(dst).is_some() || lock(&self.learned).get(dst, Instant::now()).is_some()
    }

    /// Lookups that found no next hop so far.
    pub(super) fn pending(&self) -> u64 {
        self.pending.get()
    }

    /// Hands this block's misses to the keeper and wakes it; called after the block, outside
    /// the shard lock.
    pub(super) fn hand_over(&self, to: &Misses, bell: &Doorbell) {
        let mut m = self.misses.borrow_mut();
        if m.is_empty() {
            return;
        }
        if to.push(&m) {
            bell.ring();
        }
        m.clear();
    }
}

impl Neighbours for Hops {
    fn next_hop(&self, dst: IpAddr) -> Option<NextHop> {
        let mut snap = self.snap.borrow_mut();
        self.table.refresh(&mut snap);
        if let Some(h) = snap.get(&dst) {
            return Some(h);
        }
        let now = Instant::now();
        if let Some(h) = lock(&self.learned).get(&dst, now) {
            return Some(h);
        }
        self.pending.set(self.pending.get() + 1);
        let mut reported = self.reported.borrow_mut();
        let due = reported
            .get(&dst)
            .is_none_or(|t| now.duration_since(*t) >= REPORT_AGAIN_AFTER);
        if due {
            if reported.len() >= REPORTED_MAX {
                reported.clear();
            }
            reported.insert(dst, now);
            let mut m = self.misses.borrow_mut();
            if m.len() < MISSES_MAX {
                m.push(dst);
            }
        }
        None
    }
}

/// The keeper's side: resolves destinations with rtnetlink and publishes the table.
pub(super) struct Resolving {
    resolver: Resolver,
    ifindexes: Vec<u32>,
    table: Arc<Published<HopTable>>,
    /// The table as last published, with when each entry was read from the kernel.
    current: HashMap<IpAddr, (NextHop, Instant)>,
    /// Destinations probed and not resolved yet: (give up at, next look, wait after it).
    probing: HashMap<IpAddr, (Instant, Instant, Duration)>,
    changed: bool,
}

impl Resolving {
    pub(super) fn new(
        resolver: Resolver,
        ifaces: &[Iface],
        table: Arc<Published<HopTable>>,
    ) -> Resolving {
        Resolving {
            resolver,
            ifindexes: ifaces.iter().map(|i| i.ifindex).collect(),
            table,
            current: HashMap::new(),
            probing: HashMap::new(),
            changed: false,
        }
    }

    fn note(&mut self, dst: IpAddr, nh: rvs_packet_io::NextHop) {
        let Some(port) = self.ifindexes.iter().position(|&i| i == nh.ifindex) else {
            // Not through one of the plane's interfaces: no next hop the plane can use.
            return;
        };
        let hop = NextHop {
            port: port as PortId,
            mac: nh.mac,
        };
        let old = self.current.insert(dst, (hop, Instant::now()));
        if old.map(|(h, _)| h) != Some(hop) {
            self.changed = true;
        }
    }

    /// Resolves `dst`, waiting for the kernel's probe (at most the resolver's probe
    /// timeout): for real servers, before a table change is reported applied.
    pub(super) fn resolve(&mut self, dst: IpAddr) -> Result<(), String> {
        if self.current.contains_key(&dst) {
            return Ok(());
        }
        let nh = self.resolver.resolve(dst).map_err(|e| e.to_string())?;
        self.note(dst, nh);
        Ok(())
    }

    /// One look at the kernel for each destination a worker missed, without waiting: what
    /// the kernel knows goes into the table, the rest are probed and looked at again by
    /// [`Resolving::retry`] (and a worker reports them again if they are still missing).
    pub(super) fn misses(&mut self, dsts: Vec<IpAddr>) {
        let now = Instant::now();
        for dst in dsts {
            if self.current.contains_key(&dst) || self.probing.contains_key(&dst) {
                continue;
            }
            match self.resolver.try_resolve(dst) {
                Ok(Some(nh)) => self.note(dst, nh),
                Ok(None) => {
                    let first = PROBE_FIRST_LOOK;
                    self.probing
                        .insert(dst, (now + PROBE_FOR, now + first, first * 2));
                }
                Err(_) => {}
            }
        }
    }

    /// Looks again at the probed destinations that are due: found ones go into the table,
    /// those still unknown after [`PROBE_FOR`] are given up (the workers drop what they
    /// held for them).
    pub(super) fn retry(&mut self) {
        let now = Instant::now();
        let due: Vec<IpAddr> = self
            .probing
            .iter()
            .filter(|(_, (_, next, _))| *next <= now)
            .map(|(d, _)| *d)
            .collect();
        for dst in due {
            let found = match self.resolver.try_resolve(dst) {
                Ok(Some(nh)) => {
                    self.note(dst, nh);
                    true
                }
                _ => false,
            };
            match self.probing.get_mut(&dst) {
                Some((until, _, _)) if found || *until <= now => {
                    self.probing.remove(&dst);
                }
                Some((_, next, wait)) => {
                    *next = now + *wait;
                    *wait *= 2;
                }
                None => {}
            }
        }
    }

    /// When [`Resolving::retry`] has something to look at next.
    pub(super) fn next_retry(&self) -> Option<Instant> {
        self.probing.values().map(|(_, next, _)| *next).min()
    }

    /// Re-reads the entries older than [`REFRESH_AFTER`]; those the kernel no longer
    /// resolves leave the table.
    pub(super) fn refresh(&mut self) {
        let now = Instant::now();
        let old: Vec<IpAddr> = self
            .current
            .iter()
            .filter(|(_, (_, t))| now.duration_since(*t) >= REFRESH_AFTER)
            .map(|(d, _)| *d)
            .collect();
        for dst in old {
            self.resolver.invalidate(dst);
            match self.resolver.try_resolve(dst) {
                Ok(Some(nh)) => self.note(dst, nh),
                _ => {
                    self.current.remove(&dst);
                    self.changed = true;
                }
            }
        }
    }

    /// Publishes the table when it changed.
    pub(super) fn publish(&mut self) {
        if std::mem::take(&mut self.changed) {
            let table = self.current.iter().map(|(d, (h, _))| (*d, *h)).collect();
            self.table.publish(table);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hops(table: &Arc<Published<HopTable>>) -> Hops {
        Hops::new(table.clone(), Arc::new(Mutex::new(Learned::default())))
    }

    const HOP: NextHop = NextHop {
        port: 1,
        mac: [2, 0, 0, 0, 0, 0x11],
    };

    #[test]
    fn a_miss_is_pending_reported_once_and_found_after_publication() {
        let table = Arc::new(Published::<HopTable>::default());
        let h = hops(&table);
        let dst: IpAddr = "10.2.0.11".parse().unwrap();
        assert_eq!(h.next_hop(dst), None, "neighbour pending");
        assert_eq!(h.next_hop(dst), None);
        assert_eq!(h.pending(), 2, "every miss counted");
        let (misses, bell) = (Misses::default(), Doorbell::default());
        h.hand_over(&misses, &bell);
        assert_eq!(misses.take(), vec![dst], "reported once per interval");
        assert!(bell.wait(Duration::ZERO), "the keeper is woken");
        h.hand_over(&misses, &bell);
        assert!(misses.take().is_empty());
        // The keeper resolved it: the next lookup finds it without a report.
        table.publish([(dst, HOP)].into_iter().collect());
        assert_eq!(h.next_hop(dst), Some(HOP));
        assert_eq!(h.pending(), 2);
    }

    #[test]
    fn learned_neighbours_fill_the_gaps() {
        let table = Arc::new(Published::<HopTable>::default());
        let h = hops(&table);
        let client: IpAddr = "10.1.0.50".parse().unwrap();
        lock(&h.learned).learn(client, [2, 0, 0, 0, 0, 0x50], 0, Instant::now());
        assert_eq!(
            h.next_hop(client),
            Some(NextHop {
                port: 0,
                mac: [2, 0, 0, 0, 0, 0x50]
            })
        );
        assert_eq!(h.pending(), 0);
    }
}
