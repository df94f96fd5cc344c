//! Frames waiting for their next hop: a worker's counterpart of the kernel's per-neighbour
//! queue.
//!
//! When the kernel sends toward a neighbour it has not resolved yet, it does not drop the
//! packet: it queues a few per neighbour (`unres_qlen_bytes`), sends them once the neighbour
//! answers, and drops them (counted `unres_discards`) when the queue is full or resolution
//! fails. A TCP client's first SYN (or a real server's first SYN-ACK toward a new client behind
//! a router) therefore waits a millisecond instead of being lost and retransmitted a second
//! later. The packet plane's next-hop lookup is cache-only ([`super::hops`]): a frame whose
//! next hop is not cached would be dropped while the keeper asks the kernel. Instead the
//! worker holds it here, keyed by the destination the plane looked up, and sends it once the
//! keeper has published that next hop ([`Worker`](super::worker)); frames still waiting after
//! [`HOLD_FOR`] are dropped and counted.
//!
//! As in the kernel, where IPVS is done with a packet before the neighbour layer queues it,
//! a held frame is one the director has already handled: scheduled, counted in the service,
//! real-server and connection statistics, moved through its state machine, rewritten up to the
//! transmit step. It is kept with the plane's [`Pending`] (where it goes, by which method) and
//! on release only the transmit step runs ([`rvs_packet::plane::Plane::send_pending`]: TTL,
//! MTU, the method's rewrite, the next hop's MACs), without the director, so every frame is
//! accounted once however long it waited.
//!
//! Bounds (the kernel's shape, smaller numbers): at most [`BYTES_PER_HOP`] bytes per
//! destination, the oldest frame giving way to a new one; at most [`HOPS_MAX`] destinations
//! per worker, a frame toward one more being dropped. A frame dropped here was counted by the
//! director all the same, as the kernel counts a packet its neighbour queue later drops.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use rvs_core::Time;
use rvs_packet::plane::Pending;

/// Most bytes held per destination (the kernel's `unres_qlen_bytes` is 208 KiB; a worker
/// holds fewer, since a queue here is per worker and only bridges one rtnetlink round).
pub(super) const BYTES_PER_HOP: usize = 64 * 1024;
/// Most destinations with frames held, per worker (bounded memory under a flood toward
/// unresolvable addresses: at most `HOPS_MAX * BYTES_PER_HOP`).
pub(super) const HOPS_MAX: usize = 64;
/// How long frames wait for their next hop: the kernel gives up on a neighbour after three
/// probes one second apart.
pub(super) const HOLD_FOR: rvs_core::Duration = rvs_core::Duration(3000);

/// What happened to held frames, for the worker's report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HoldCounters {
    /// Frames held for an unresolved next hop.
    pub held: u64,
    /// Held frames sent on after their next hop resolved.
    pub released: u64,
    /// Held frames dropped because their next hop did not resolve within [`HOLD_FOR`].
    pub expired: u64,
    /// Frames dropped because a queue was full (the oldest of a destination's, or a new one
    /// when [`HOPS_MAX`] destinations wait).
    pub discarded: u64,
}

/// A frame as the plane left it (its checksums completed when the input's were partial,
/// before the plane saw it), and what is left to do to send it: the plane's [`Pending`] in
/// the worker (another type only in this module's tests).
pub(super) struct HeldFrame<T = Pending> {
    pub bytes: Vec<u8>,
    pub pending: T,
}

struct Queue<T> {
    frames: VecDeque<HeldFrame<T>>,
    bytes: usize,
    since: Time,
}

/// One worker's held frames, by the destination whose next hop they wait for.
pub(super) struct Unresolved<T = Pending> {
    queues: HashMap<IpAddr, Queue<T>>,
    counters: HoldCounters,
}

impl<T> Default for Unresolved<T> {
    fn default() -> Self {
        Unresolved {
            queues: HashMap::new(),
            counters: HoldCounters::default(),
        }
    }
}

impl<T> Unresolved<T> {
    /// True when no frame waits.
    pub(super) fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    pub(super) fn counters(&self) -> HoldCounters {
        self.counters
    }

    /// Holds `frame`, with what is left to do to send it, until the next hop toward `dst`
    /// is known.
    pub(super) fn hold(&mut self, dst: IpAddr, frame: &[u8], pending: T, now: Time) {
        if frame.len() > BYTES_PER_HOP {
            self.counters.discarded += 1;
            return;
        }
        if !self.queues.contains_key(&dst) && self.queues.len() >= HOPS_MAX {
            self.counters.discarded += 1;
            return;
        }
        let q = self.queues.entry(dst).or_insert_with(|| Queue {
            frames: VecDeque::new(),
            bytes: 0,
            since: now,
        });
        while q.bytes + frame.len() > BYTES_PER_HOP {
            let Some(old) = q.frames.pop_front() else {
                break;
            };
            q.bytes -= old.bytes.len();
            self.counters.discarded += 1;
        }
        q.bytes += frame.len();
        q.frames.push_back(HeldFrame {
            bytes: frame.to_vec(),
            pending,
        });
        self.counters.held += 1;
    }

    /// Takes the frames whose next hop `resolved` now knows, in the order received per
    /// destination, and drops (counting them) those that waited [`HOLD_FOR`] or longer.
    pub(super) fn take_ready(
        &mut self,
        resolved: impl Fn(&IpAddr) -> bool,
        now: Time,
    ) -> Vec<HeldFrame<T>> {
        let mut ready = Vec::new();
        let counters = &mut self.counters;
        self.queues.retain(|dst, q| {
            if resolved(dst) {
                counters.released += q.frames.len() as u64;
                ready.extend(q.frames.drain(..));
                false
            } else if now.0.saturating_sub(q.since.0) >= HOLD_FOR.0 {
                counters.expired += q.frames.len() as u64;
                false
            } else {
                true
            }
        });
        ready
    }

    /// A frame taken by [`Unresolved::take_ready`] that still found no next hop (the entry
    /// went away in between): dropped, counted as expired instead of released.
    pub(super) fn lost(&mut self) {
        self.counters.released = self.counters.released.saturating_sub(1);
        self.counters.expired += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dst(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn frames_wait_per_destination_and_leave_in_order_when_resolved() {
        let mut u = Unresolved::<char>::default();
        let (a, b) = (dst("10.2.0.13"), dst("10.2.0.14"));
        u.hold(a, &[1], 'x', Time(0));
        u.hold(b, &[2], 'y', Time(0));
        u.hold(a, &[3], 'z', Time(1));
        assert!(u.take_ready(|_| false, Time(10)).is_empty());
        let got = u.take_ready(|d| *d == a, Time(10));
        let bytes: Vec<_> = got.iter().map(|f| f.bytes.clone()).collect();
        assert_eq!(bytes, [vec![1], vec![3]]);
        let got = u.take_ready(|_| true, Time(10));
        assert_eq!((got.len(), got[0].pending), (1, 'y'), "kept with its frame");
        assert!(u.is_empty());
        let c = u.counters();
        assert_eq!((c.held, c.released, c.expired, c.discarded), (3, 3, 0, 0));
    }

    #[test]
    fn queues_are_bounded_and_a_hop_that_does_not_resolve_drops_them() {
        let mut u = Unresolved::<()>::default();
        let a = dst("10.2.0.13");
        let fits = BYTES_PER_HOP / 1500;
        for i in 0..fits + 2 {
            u.hold(a, &[i as u8; 1500], (), Time(0));
        }
        assert_eq!(u.counters().discarded, 2, "the two oldest gave way");
        let kept = u.take_ready(|_| true, Time(0));
        assert_eq!(kept.len(), fits);
        assert_eq!(kept[0].bytes[0], 2, "the oldest left were dropped");
        // More destinations than allowed: a frame toward one more is dropped.
        for i in 0..=HOPS_MAX as u32 {
            let d = IpAddr::from(std::net::Ipv4Addr::from(0x0a09_0000 + i));
            u.hold(d, &[0], (), Time(0));
        }
        assert_eq!(u.counters().discarded, 3);
        // Nothing resolves: after HOLD_FOR everything held is dropped as expired.
        assert!(u.take_ready(|_| false, Time(HOLD_FOR.0 - 1)).is_empty());
        assert!(!u.is_empty());
        assert!(u.take_ready(|_| false, Time(HOLD_FOR.0)).is_empty());
        assert!(u.is_empty());
        assert_eq!(u.counters().expired, HOPS_MAX as u64);
    }
}
