//! What `rvs_syn_proxy=1` does not cover, said out loud (docs/internals/syn-flood.md#why-not-dr-and-tun).
//!
//! The SYN proxy answers for a TCP service on the packet plane whose real servers are all NAT
//! or full-NAT. A TCP service with a DR or TUN real server, or one the socket proxy serves
//! (its listening sockets' kernel stack answers SYNs, with its own `tcp_syncookies`), is not
//! proxied; without a word an operator would believe the flood defence covers it. These
//! warnings go to rvsadm's answer when the sysctl is turned on and to rvsd's log whenever the
//! table changes while it is on (each service once until its reason changes).

use std::collections::HashSet;

use rvs_core::service::ServiceKey;
use rvs_core::{FwdMethod, Protocol};

use crate::shard::{self, ShardRef};

/// Warnings already logged.
#[derive(Debug, Default)]
pub struct Warned(HashSet<String>);

/// How rvsadm names a service.
fn name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { proto, addr, port } => {
            let p = match proto {
                Protocol::Tcp => "TCP",
                Protocol::Udp => "UDP",
                Protocol::Sctp => "SCTP",
            };
            format!("{p} {}", std::net::SocketAddr::new(*addr, *port))
        }
        ServiceKey::Fwmark { mark, .. } => format!("FWM {mark}"),
    }
}

/// One warning per TCP service `rvs_syn_proxy=1` (`on`) leaves unprotected: `services` with
/// their shards, `packet` the packet plane's shard (the others are the socket proxy's).
pub fn unproxied(
    on: bool,
    packet: Option<&ShardRef>,
    services: &[(ServiceKey, ShardRef)],
) -> Vec<String> {
    if !on {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (key, sh) in services {
        let key = *key;
        let tcp = match key {
            ServiceKey::Addr { proto, .. } => proto == Protocol::Tcp,
            ServiceKey::Fwmark { .. } => true,
        };
        if !tcp {
            continue;
        }
        if !packet.is_some_and(|p| std::sync::Arc::ptr_eq(p, sh)) {
            out.push(format!(
                "rvs_syn_proxy=1 does not apply to {}: the socket proxy serves it (its \
                 kernel TCP stack answers SYNs, with net.ipv4.tcp_syncookies)",
                name(&key)
            ));
            continue;
        }
        let g = shard::lock(sh);
        let d = &g.director;
        let Some(svc) = d.table.id_of(&key).and_then(|id| d.table.service(id)) else {
            continue;
        };
        let direct = svc.dests.iter().any(|&id| {
            d.table
                .dests
                .get(id)
                .is_some_and(|x| !matches!(x.cfg.fwd, FwdMethod::Masq | FwdMethod::FullNat))
        });
        if direct {
            out.push(format!(
                "rvs_syn_proxy=1 does not apply to {}: it has a DR or TUN real server, \
                 which the SYN proxy cannot serve (the table bound and the memory-pressure \
                 defences still do)",
                name(&key)
            ));
        }
    }
    out
}

impl Warned {
    /// Logs the warnings in `now` not logged yet.
    pub fn log_new(&mut self, now: Vec<String>) {
        let now: HashSet<String> = now.into_iter().collect();
        for w in now.difference(&self.0) {
            tracing::warn!("{w}");
        }
        self.0 = now;
    }
}
