//! Snapshots of the table for rvsadm's listings (`-L`, `--stats`, `--rate`, `-c`), one shard
//! at a time: the control state ([`crate::state::State::list_services`] and friends) walks
//! its shards and calls these under each shard's lock.

use std::net::{IpAddr, SocketAddr};

use rvs_control::model as m;
use rvs_core::{ServiceKey, Time};

use crate::convert::*;
use crate::shard::Shard;

/// Service `key` of shard `sh`, with its destinations in kernel list order (newest first;
/// rvsadm sorts).
pub fn service(sh: &Shard, key: &ServiceKey) -> Option<m::ServiceEntry> {
    let t = &sh.director.table;
    let s = t.service(t.id_of(key)?)?;
    let pp = sh
        .extra
        .get(&s.key)
        .map(|x| x.proxy_protocol)
        .unwrap_or_default();
    let dests = s
        .dests
        .iter()
        .filter_map(|&d| t.dests.get(d))
        .map(|d| m::DestEntry {
            spec: dest_from_core(&d.cfg),
            active_conns: d.active,
            inactive_conns: d.inactive,
            persist_conns: d.persist,
            stats: stats_from_core(&d.stats),
        })
        .collect();
    Some(m::ServiceEntry {
        spec: service_from_core(&s.key, &s.cfg, pp),
        stats: stats_from_core(&s.stats),
        dests,
    })
}

/// The connection entries of shard `sh` as `ipvsadm -Lc` shows them (one-packet entries are
/// never listed).
pub fn conns(sh: &Shard, now: Time) -> Vec<m::ConnEntry> {
    let c = &sh.director.conns;
    c.iter()
        .filter_map(|id| c.info(id))
        .map(|i| {
            let protocol = match i.protocol {
                0 => m::ConnProtocol::Ip,
                p => match rvs_core::Protocol::from_number(p) {
                    Some(p) => m::ConnProtocol::Proto(p),
                    None => m::ConnProtocol::Other(p),
                },
            };
            let pe = i.pe_data.map(|d| {
                let name = sh
                    .director
                    .pe_of(i.dest)
                    .map_or_else(|| "sip".to_string(), rvs_core::service::PeKind::name);
                (name, String::from_utf8_lossy(d).into_owned())
            });
            // Fwmark templates already carry the mark in vaddr as an IPv4 address.
            let vaddr: IpAddr = i.vaddr;
            m::ConnEntry {
                protocol,
                client: SocketAddr::new(i.caddr, i.cport),
                virtual_addr: SocketAddr::new(vaddr, i.vport),
                dest: SocketAddr::new(i.daddr, i.dport),
                state: i.state_name.to_string(),
                expires: u32::try_from(i.expires_in_secs(now)).unwrap_or(u32::MAX),
                pe,
            }
        })
        .collect()
}

/// `--get-laddr` CONNS: how many live connections of service `key` use the full-NAT local
/// address `addr`, on both planes — packet-plane connections by the local address in their
/// entry, socket-proxy flows by the address they connected from. Counted when asked (a walk of
/// the shard's connections, like `-L -c`), so it is always the current use, as DPVS's counter is.
pub fn local_addr_conns(sh: &Shard, key: &ServiceKey, addr: IpAddr) -> u64 {
    let table = &sh.director.table;
    let of_service = |d: Option<rvs_core::DestId>| {
        d.and_then(|d| table.dests.get(d))
            .and_then(|d| table.service(d.svc))
            .is_some_and(|s| s.key == *key)
    };
    let conns = &sh.director.conns;
    let packet = conns
        .iter()
        .filter_map(|id| conns.info(id))
        .filter(|c| c.local.is_some_and(|(a, _)| a == addr) && of_service(c.dest))
        .count();
    let proxy = sh
        .flows
        .values()
        .filter(|f| f.laddr == Some(addr) && of_service(Some(f.dest)))
        .count();
    (packet + proxy) as u64
}
