//! The keeper: the packet plane's thread on the control side of the published view. It keeps
//! the nft ingress guard in line with the table, announces new VIPs, resolves new real
//! servers, follows the director's nft ruleset for mark rules, and reports each applied
//! table generation (what control requests wait for, [`super::wait_applied`]). It removes
//! the guard when stopped.
//!
//! It also owns the workers' next hops ([`super::hops`]): it resolves the real servers and
//! the destinations the workers missed, and publishes the table.
//!
//! It wakes when the control side publishes a new [`PacketView`], a worker queues a miss or
//! the VRRP status board records a transition (all three ring its [`Doorbell`]), not on a
//! timer. Two inputs have no notification of their own and are looked at on the keeper's
//! bounded wait: the nft ruleset (every [`NFT_POLL`] while a firewall-mark service exists)
//! and the kernel's neighbour table for destinations it probed (a few milliseconds after the
//! probe, then less and less often, while workers hold frames for them).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_packet::plane::PortId;
use rvs_packet_io::nft::IngressGuard;
use rvs_packet_io::{Resolver, ResolverConfig, Sender};

use super::config::{Iface, PacketView};
use super::hops::{HopTable, Misses, Resolving};
use crate::lock::lock;
use crate::published::{Doorbell, Published};
use crate::state::State;

/// Longest wait for a change, so that the stop flag is seen.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// How often the keeper looks for cached next hops due for a re-read
/// ([`super::hops::REFRESH_AFTER`]).
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// Sends a gratuitous ARP / unsolicited NA for each address (best effort, logged).
fn announce(ifaces: &[Iface], senders: &mut [Sender], addrs: &[(IpAddr, PortId)]) {
    for &(a, p) in addrs {
        let (Some(i), Some(s)) = (ifaces.get(usize::from(p)), senders.get_mut(usize::from(p)))
        else {
            continue;
        };
        let r = match a {
            IpAddr::V4(v4) => s.send(&rvs_packet_io::announce::gratuitous_arp(i.mac, v4)),
            IpAddr::V6(v6) => s.send(&rvs_packet_io::announce::unsolicited_na(i.mac, v6)),
        };
        match r {
            Ok(()) => tracing::info!("announced {a} on {}", i.name),
            Err(e) => tracing::warn!("announcing {a} on {}: {e}", i.name),
        }
    }
}

/// Follows the director's nft ruleset for mark rules (every [`NFT_POLL`]).
#[derive(Default)]
pub(super) struct NftMarks {
    last: Option<Result<crate::nft_marks::Found, String>>,
    next: Option<Instant>,
}

/// How often the nft ruleset is read for mark rules.
const NFT_POLL: Duration = Duration::from_secs(1);

impl NftMarks {
    /// Re-reads the ruleset when due, or at once with `force` (a table change), and hands
    /// changed rules to the control state (which publishes a new view). Only while some
    /// firewall-mark service exists (`wanted`): otherwise marks matter to nobody, and a large
    /// ruleset (container hosts) is not listed every second for nothing.
    pub(super) fn poll(&mut self, state: &Mutex<State>, wanted: bool, force: bool) {
        if !wanted {
            let had_rules = matches!(&self.last, Some(Ok(f)) if !f.rules.is_empty());
            if had_rules {
                lock(state).set_nft_marks(Vec::new());
            }
            self.last = None;
            self.next = None;
            return;
        }
        let now = Instant::now();
        if !force && self.next.is_some_and(|t| now < t) {
            return;
        }
        self.next = Some(now + NFT_POLL);
        let found = crate::nft_marks::read_ruleset(Duration::from_secs(2));
        if self.last.as_ref() == Some(&found) {
            return;
        }
        match &found {
            Ok(f) => {
                for r in &f.rules {
                    tracing::info!(
                        "nft mark rule: proto {} daddr {} dport {}-{} → mark {}",
                        r.proto,
                        r.addr,
                        r.ports.0,
                        r.ports.1,
                        r.mark
                    );
                }
                for u in &f.unsupported {
                    tracing::warn!(
                        "nft: {u}: this mark rule is not applied by the packet plane \
                         (use --fwmark-rule)"
                    );
                }
                lock(state).set_nft_marks(f.rules.clone());
            }
            Err(e) => tracing::warn!("firewall marks from nft: {e}"),
        }
        self.last = Some(found);
    }
}

/// What the keeper shares with the rest of the plane.
pub(super) struct Context {
    /// The control state: taken only to hand it a VRRP transition or new mark rules.
    pub state: Arc<Mutex<State>>,
    pub view: Arc<Published<PacketView>>,
    pub applied: Arc<Published<u64>>,
    /// Rung by every publication of the view and by workers that queued misses.
    pub bell: Arc<Doorbell>,
    /// The next hops the keeper publishes to the workers.
    pub hops: Arc<Published<HopTable>>,
    /// Destinations the workers could not find.
    pub misses: Arc<Misses>,
    pub stop: Arc<AtomicBool>,
    pub ifaces: Arc<Vec<Iface>>,
    /// The XDP program's slow-path rules (what goes to the AF_XDP sockets), kept equal to
    /// the guard's, when AF_XDP sockets run.
    pub slow: Option<rvs_bpf::xdp::SlowPath>,
    /// The XDP fast path's sweep (empty without it): its entries are checked against each
    /// new table before the change counts as applied.
    pub xdp_sweep: super::xdp::XdpSweep,
}

pub(super) fn keeper(
    mut guard: IngressGuard,
    mut cx: Context,
    mut marks: NftMarks,
) -> Result<(), String> {
    let resolver =
        Resolver::new(ResolverConfig::default()).map_err(|e| format!("rtnetlink: {e}"))?;
    let mut hops = Resolving::new(resolver, &cx.ifaces, cx.hops.clone());
    let mut senders = Vec::new();
    for i in cx.ifaces.iter() {
        senders.push(Sender::open(&i.name).map_err(|e| format!("sender on {}: {e}", i.name))?);
    }
    // The version of the view last applied.
    let mut seen: Option<u64> = None;
    let mut announced: HashSet<IpAddr> = HashSet::new();
    let mut next_refresh = Instant::now() + REFRESH_EVERY;
    while !cx.stop.load(Ordering::Relaxed) {
        let cur = cx.view.load();
        // A VRRP transition rings the bell (the board may be attached after the plane
        // started, so this is looked at on every round; following twice is harmless).
        if let Some((board, _)) = &cur.vrrp {
            board.follow(&cx.bell);
        }
        if seen == Some(cur.version()) {
            // A probed next hop is looked at again soon: workers hold frames for it.
            let wait = hops
                .next_retry()
                .map_or(STOP_CHECK, |t| t.saturating_duration_since(Instant::now()))
                .min(STOP_CHECK);
            cx.bell.wait(wait);
            if cx.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        // Next hops the workers missed: one look at the kernel each, outside any batch.
        hops.misses(cx.misses.take());
        hops.retry();
        if Instant::now() >= next_refresh {
            hops.refresh();
            next_refresh = Instant::now() + REFRESH_EVERY;
        }
        hops.publish();
        if cx.view.load().vrrp_moved() {
            lock(&cx.state).follow_vrrp();
        }
        // A table change may have added the first firewall-mark service: its marks are read
        // before the change is applied (and before rvsadm returns, see `wait_applied`).
        let cur = cx.view.load();
        marks.poll(&cx.state, cur.wants_marks, seen != Some(cur.version()));
        let view = cx.view.load();
        if seen == Some(view.version()) {
            continue;
        }
        seen = Some(view.version());
        if let Err(e) = guard.update(&view.guard) {
            tracing::error!("nft ingress guard update: {e}");
        }
        if let Some(slow) = cx.slow.as_mut() {
            if let Err(e) = slow.set_rules(&super::xsk::rules(&view.guard)) {
                tracing::error!("XDP slow path rules update: {e}");
            }
        }
        let new: Vec<(IpAddr, PortId)> = view
            .config
            .owned
            .iter()
            .copied()
            .filter(|(a, _)| announced.insert(*a))
            .collect();
        announce(&cx.ifaces, &mut senders, &new);
        // Bounded: each resolve waits at most the resolver's probe timeout (3 s).
        for &a in &view.real_servers {
            if cx.stop.load(Ordering::Relaxed) {
                break;
            }
            if let Err(e) = hops.resolve(a) {
                tracing::warn!("next hop of real server {a}: {e}");
            }
        }
        // The workers have the real servers' next hops before the change counts as applied.
        hops.publish();
        // And the XDP program forwards no flow the new table would not: a sweep checks every
        // entry against it (a real server deleted or quiesced, a service removed, a VIP on
        // standby), so that when `rvsadm -d` returns nothing more goes to the deleted server,
        // as with the kernel, whose table is its data path's. Without it the program went on
        // for up to one sweep period (`scale_out` in XDP mode saw connections of a deleted
        // real server still answered). The keeper holds neither the shard's nor the state's
        // lock here, as the sweep requires.
        cx.xdp_sweep.now();
        cx.applied.publish(view.generation);
    }
    guard
        .remove()
        .map_err(|e| format!("removing the nft guard: {e}"))
}
