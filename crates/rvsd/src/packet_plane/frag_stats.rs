//! The packet workers' reassembly counters, summed for the metrics page
//! (`rvs_packet_frag_*`, docs/internals/forwarding.md#fragments).
//!
//! Each worker owns a reassembler (in its `Plane`) and publishes what changed after each
//! block, outside the shard lock: the difference since its last publication is added to
//! shared atomics, so the sum over workers needs no lock and no per-worker slot.

use std::sync::atomic::{AtomicU64, Ordering};

use rvs_packet::reassembly::{FragCounters, FragDrop};

/// The sum over the workers.
#[derive(Debug, Default)]
pub struct FragStats {
    fragments: AtomicU64,
    reassembled: AtomicU64,
    drops: [AtomicU64; FragDrop::ALL.len()],
    /// Gauges: bytes held and datagrams being reassembled.
    held_bytes: AtomicU64,
    held_datagrams: AtomicU64,
    /// Fragments sent on (re-fragmented datagrams).
    sent: AtomicU64,
    /// Bytes the workers' reassemblers hold, all together: the director's one memory bound
    /// (`rvs_packet::reassembly`), as the kernel's `ipfrag_high_thresh` is per namespace.
    pub memory: std::sync::Arc<rvs_packet::reassembly::FragMemory>,
}

/// A snapshot of [`FragStats`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FragTotals {
    /// Fragments received for reassembly.
    pub fragments: u64,
    /// Datagrams reassembled.
    pub reassembled: u64,
    /// Drops by reason, in [`FragDrop::ALL`] order.
    pub drops: Vec<(FragDrop, u64)>,
    /// Bytes held by incomplete datagrams.
    pub held_bytes: u64,
    /// Incomplete datagrams.
    pub held_datagrams: u64,
    /// Fragments sent.
    pub sent: u64,
}

impl FragStats {
    /// The current sums.
    pub fn totals(&self) -> FragTotals {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FragTotals {
            fragments: r(&self.fragments),
            reassembled: r(&self.reassembled),
            drops: FragDrop::ALL
                .iter()
                .zip(self.drops.iter())
                .map(|(&d, a)| (d, r(a)))
                .collect(),
            held_bytes: r(&self.held_bytes),
            held_datagrams: r(&self.held_datagrams),
            sent: r(&self.sent),
        }
    }
}

/// One worker's last publication.
#[derive(Debug, Default)]
pub(super) struct Publisher {
    last: FragCounters,
    held: (usize, usize),
    sent: u64,
}

impl Publisher {
    /// Adds what changed since the last call to `to`. Cheap when nothing did.
    pub(super) fn publish(
        &mut self,
        to: &FragStats,
        now: &FragCounters,
        held: (usize, usize),
        sent: u64,
    ) {
        if *now == self.last && held == self.held && sent == self.sent {
            return;
        }
        let add = |a: &AtomicU64, new: u64, old: u64| {
            // Wrapping differences: a gauge that went down adds its two's complement.
            a.fetch_add(new.wrapping_sub(old), Ordering::Relaxed);
        };
        add(&to.fragments, now.fragments, self.last.fragments);
        add(&to.reassembled, now.reassembled, self.last.reassembled);
        for (i, &d) in FragDrop::ALL.iter().enumerate() {
            add(&to.drops[i], now.get(d), self.last.get(d));
        }
        add(&to.held_bytes, held.0 as u64, self.held.0 as u64);
        add(&to.held_datagrams, held.1 as u64, self.held.1 as u64);
        add(&to.sent, sent, self.sent);
        self.last = now.clone();
        self.held = held;
        self.sent = sent;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_workers_sum_and_gauges_go_down() {
        let stats = FragStats::default();
        let (mut a, mut b) = (Publisher::default(), Publisher::default());
        let mut c = FragCounters::default();
        c.fragments = 3;
        a.publish(&stats, &c, (1000, 2), 0);
        b.publish(&stats, &c, (500, 1), 4);
        let t = stats.totals();
        assert_eq!(
            (t.fragments, t.held_bytes, t.held_datagrams, t.sent),
            (6, 1500, 3, 4)
        );
        c.fragments = 5;
        c.reassembled = 1;
        a.publish(&stats, &c, (0, 0), 0);
        let t = stats.totals();
        assert_eq!(
            (t.fragments, t.reassembled, t.held_bytes, t.held_datagrams),
            (8, 1, 500, 1)
        );
    }
}
