//! Keeps the XDP program's SYN answering (`rvs_bpf::syn_answer`, `bpf/syn_answer.h`) equal to
//! the director, so that a SYN the program answers gets the very SYN-ACK the userspace SYN
//! proxy would have sent, and the client's ACK passes the userspace proxy's check
//! (docs/internals/syn-flood.md#syn-answering-in-xdp):
//!
//! * the cookie key, derived from the director's connection-hash seed as the plane derives it;
//! * the epoch of rvsd's clock on `CLOCK_MONOTONIC`, so the program reads the time the plane
//!   reads (rounded so that the program is never ahead: a cookie made "later" than the ACK's
//!   check would be refused);
//! * the set of services the director SYN-proxies (`Director::syn_proxy_serves`):
//!   address:port TCP services (not firewall-mark, not port 0, no mark rule over them) whose
//!   real servers are all NAT or full-NAT, while `rvs_syn_proxy` is 1;
//! * the MTU of each interface (the SYN-ACK's MSS).
//!
//! Run by the XDP syncer every sweep; it recomputes the set only when the table generation,
//! the sysctl or the seed moved, so an idle rvsd does one lock and three comparisons a sweep.

use std::collections::HashSet;
use std::net::IpAddr;

use rvs_bpf::syn_answer::{monotonic_ns, SynCounters};
use rvs_bpf::xdp::FastPath;
use rvs_core::conn::HashSeed;
use rvs_core::service::ServiceKey;
use rvs_core::Protocol;
use rvs_packet::plane::MarkRule;
use rvs_packet::syncookie::CookieKey;

use std::sync::Arc;

use super::config::PacketView;
use super::iface::Iface;
use crate::clock::Clock;
use crate::published::Published;
use crate::shard::{self, ShardRef};

/// What the maps were last made from.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Made {
    generation: u64,
    on: bool,
    seed: HashSeed,
}

/// The syncer's keeper of the SYN-answering maps.
pub(super) struct SynAnswerKeeper {
    shard: ShardRef,
    view: Arc<Published<PacketView>>,
    ifaces: Arc<Vec<Iface>>,
    epoch_ns: u64,
    made: Option<Made>,
    mtus: bool,
}

impl SynAnswerKeeper {
    pub(super) fn new(
        clock: &Clock,
        shard: ShardRef,
        view: Arc<Published<PacketView>>,
        ifaces: Arc<Vec<Iface>>,
    ) -> SynAnswerKeeper {
        SynAnswerKeeper {
            shard,
            view,
            ifaces,
            epoch_ns: epoch_ns(clock),
            made: None,
            mtus: false,
        }
    }

    /// Brings the maps up to date; returns the program's counters.
    pub(super) fn keep(&mut self, fp: &mut FastPath) -> SynCounters {
        if !self.mtus {
            self.mtus = set_mtus(fp, &self.ifaces);
        }
        let view = self.view.load();
        let (made, services) = {
            let sh = shard::lock(&self.shard);
            let d = &sh.director;
            let made = Made {
                generation: view.generation,
                on: d.sys.syn_proxy,
                seed: d.conns.seed(),
            };
            if self.made == Some(made) {
                drop(sh);
                return fp.syn_answer().counters().unwrap_or_default();
            }
            let services = if made.on {
                served(d, &view.config.marks)
            } else {
                HashSet::new()
            };
            (made, services)
        };
        let syn = fp.syn_answer();
        let key = CookieKey::derive(made.seed.0);
        let done = syn
            .set_services(&services)
            .and_then(|()| syn.set_config(key, self.epoch_ns, made.on && !services.is_empty()));
        match done {
            Ok(()) => {
                if made.on {
                    tracing::info!(
                        "XDP SYN answering: {} SYN-proxied service(s) answered in the kernel",
                        services.len()
                    );
                }
                self.made = Some(made);
            }
            Err(e) => tracing::warn!("XDP SYN answering not updated: {e}"),
        }
        syn.counters().unwrap_or_default()
    }
}

/// rvsd's clock zero on `CLOCK_MONOTONIC`, in nanoseconds. The clock's reading is truncated
/// to milliseconds and taken before the monotonic one, so the epoch is at or after the true
/// one: the program's time is never ahead of the plane's.
fn epoch_ns(clock: &Clock) -> u64 {
    let ms = clock.now().0;
    monotonic_ns().saturating_sub(ms.saturating_mul(1_000_000))
}

fn set_mtus(fp: &mut FastPath, ifaces: &[Iface]) -> bool {
    for i in ifaces {
        if let Err(e) = fp.syn_answer().set_mtu(i.ifindex, i.mtu) {
            tracing::warn!("XDP SYN answering: MTU of {}: {e}", i.name);
            return false;
        }
    }
    true
}

/// The services whose SYNs the program may answer: those the plane's proxy answers for every
/// packet that reaches them with no firewall mark.
fn served(d: &rvs_core::Director, marks: &[MarkRule]) -> HashSet<(IpAddr, u16)> {
    d.table
        .services()
        .filter_map(|(_, s)| match s.key {
            ServiceKey::Addr {
                proto: Protocol::Tcp,
                addr,
                port,
            } if port != 0 => Some((addr, port)),
            _ => None,
        })
        .filter(|&(addr, port)| {
            !marks.iter().any(|m| {
                (m.proto == 0 || m.proto == 6)
                    && m.addr == addr
                    && (m.ports.0..=m.ports.1).contains(&port)
            }) && d.syn_proxy_serves(0, &addr, port)
        })
        .collect()
}
