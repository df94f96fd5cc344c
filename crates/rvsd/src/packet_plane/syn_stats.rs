//! The packet workers' SYN-proxy counters, summed for the metrics page
//! (`rvs_syn_proxy_*`, docs/internals/syn-flood.md#what-it-counts).
//!
//! Each worker's plane counts what its userspace SYN proxy did; the worker adds what changed
//! to shared atomics after each block, outside the shard lock (as the reassembly counters
//! are published). What the XDP program answered is counted by the program itself and read
//! by the XDP syncer (`XdpReport::syn`).

use std::sync::atomic::{AtomicU64, Ordering};

use rvs_packet::plane::SynProxyCounters;

/// The sum over the workers.
#[derive(Debug, Default)]
pub struct SynStats {
    cookies_sent: AtomicU64,
    cookies_valid: AtomicU64,
    cookies_invalid: AtomicU64,
    servers_answered: AtomicU64,
}

/// A snapshot of [`SynStats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SynTotals {
    /// SYNs the userspace proxy answered with a cookie.
    pub cookies_sent: u64,
    /// Handshake ACKs with a valid cookie.
    pub cookies_valid: u64,
    /// ACKs with no connection and no valid cookie, dropped (`bad_cookie`).
    pub cookies_invalid: u64,
    /// Proxied connections whose real server completed its handshake.
    pub servers_answered: u64,
}

impl SynStats {
    /// The current sums.
    pub fn totals(&self) -> SynTotals {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SynTotals {
            cookies_sent: r(&self.cookies_sent),
            cookies_valid: r(&self.cookies_valid),
            cookies_invalid: r(&self.cookies_invalid),
            servers_answered: r(&self.servers_answered),
        }
    }
}

/// One worker's last publication.
#[derive(Debug, Default)]
pub(super) struct Publisher {
    last: SynProxyCounters,
    invalid: u64,
}

impl Publisher {
    /// Adds what changed since the last call to `to` (`invalid`: the plane's `bad_cookie`
    /// drops). Cheap when nothing did.
    pub(super) fn publish(&mut self, to: &SynStats, now: &SynProxyCounters, invalid: u64) {
        if *now == self.last && invalid == self.invalid {
            return;
        }
        let add = |a: &AtomicU64, new: u64, old: u64| {
            a.fetch_add(new.wrapping_sub(old), Ordering::Relaxed);
        };
        add(&to.cookies_sent, now.cookies_sent, self.last.cookies_sent);
        add(
            &to.cookies_valid,
            now.cookies_valid,
            self.last.cookies_valid,
        );
        add(&to.cookies_invalid, invalid, self.invalid);
        add(
            &to.servers_answered,
            now.servers_answered,
            self.last.servers_answered,
        );
        self.last = *now;
        self.invalid = invalid;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_workers_sum() {
        let stats = SynStats::default();
        let (mut a, mut b) = (Publisher::default(), Publisher::default());
        let mut c = SynProxyCounters {
            cookies_sent: 5,
            cookies_valid: 2,
            servers_answered: 1,
        };
        a.publish(&stats, &c, 3);
        b.publish(&stats, &c, 0);
        c.cookies_sent = 7;
        a.publish(&stats, &c, 4);
        let t = stats.totals();
        assert_eq!(
            (
                t.cookies_sent,
                t.cookies_valid,
                t.cookies_invalid,
                t.servers_answered
            ),
            (12, 4, 4, 2)
        );
    }
}
