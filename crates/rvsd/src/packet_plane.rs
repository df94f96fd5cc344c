//! The packet data plane inside rvsd (`rvsd --interface IFACE`, repeatable; issue 4 item 2).
//!
//! One AF_PACKET [`Port`] per interface and worker thread (`--packet-workers N` per
//! interface, default 1; several join a `PACKET_FANOUT` hash group), plus one *keeper* thread
//! that owns the nftables ingress guard and warms the kernel's neighbour table. The frames
//! are classified and rewritten by [`rvs_packet::plane::Plane`] (spec `ipvs.md` §5);
//! the decisions come from the daemon's one authoritative [`rvs_core::Director`] in
//! [`State`], the same one the socket proxy and `rvsadm -L`, `--stats`, `-Lnc` use, so both
//! planes share one connection and statistics model (DESIGN.md "Data planes").
//!
//! # Locking: one lock per received block, none while transmitting
//!
//! The packet plane's services live in one shard of their own ([`crate::shard`]): a reply
//! from a real server must find its connection before its service is known. A worker takes
//! that shard's lock when the first frame of a ring block arrives and holds it until every
//! frame of the block (`BLOCKS_PER_BATCH`) is processed: one lock per block, not per packet
//! (a few hundred frames under load; the kernel retires a block after 1 ms). The lock is
//! released before the block's rewritten frames are transmitted (`recv_batch_then`), so the
//! `sendmmsg` calls — about 90 % of a worker's time, most of it the receiving side's work run
//! inline by veth — run without it, in parallel across workers. Neither the socket proxy's
//! services nor control requests for them take this lock; a table change for a packet-plane
//! service does, briefly. Not done: per-worker connection tables (flows steered to a worker by
//! the fanout hash, as DPVS does per core), which would remove the remaining shared lock.
//!
//! # Which plane serves which service
//!
//! With `--interface`, the packet plane serves every virtual service except those whose VIP
//! is a loopback address (127.0.0.0/8, ::1): no frame on an interface ever carries those, so
//! only the socket proxy can serve them, and it keeps doing so. The proxy opens no listener
//! for the others ([`State::proxy_listeners`]), so a service is never carried by both planes.
//! The rule is deliberately by address and not by "is the VIP on an interface's network": a
//! VIP usually sits on `lo` or is routed to the director, and the nft guard drops its traffic
//! before the host stack anyway, so a proxy listener for it would never see a packet.
//!
//! # The nft guard
//!
//! At start a stale `table netdev rvs` (left by a crash) is deleted, then a fresh one is
//! installed on the plane's interfaces; it is refilled on every table change and removed on
//! exit (`rvs_packet_io::nft`). It drops, after the AF_PACKET taps saw them: packets to the
//! VIPs (address and port; address only for port-0 and firewall-mark services), replies to
//! full-NAT local addresses in the plane's port range, and replies from NAT / full-NAT real
//! servers (by address and port) unless addressed to one of the director's own interface
//! addresses (`keep_local`, so health checks and the director's own connections work).
//!
//! The keeper applies a table change within about 10 ms plus one `nft` run, then resolves
//! new real servers; the control request that made the change waits for that (at most
//! [`APPLY_WAIT`], see [`wait_applied`]), so, as with the kernel, a rule is in force when
//! `rvsadm` returns and the first packet after it meets the plane, not the host stack.
//!
//! # Next hops
//!
//! Each worker has its own rtnetlink [`Resolver`] and uses [`Resolver::try_resolve`], which
//! never blocks: a frame whose next hop is not resolved yet is dropped (counted `no_route`)
//! while the kernel is made to probe it, and the failure is remembered for 200 ms. The keeper
//! resolves every real server with the blocking [`Resolver::resolve`] as soon as it is added
//! (before the control request returns), so the first packet of a flow normally finds the
//! entry. A cache miss costs two netlink round trips inside the batch (and so under the
//! lock), once per destination per cache TTL (30 s).
//!
//! # Firewall marks
//!
//! AF_PACKET shows a frame before netfilter, and `tpacket3_hdr` has no `skb->mark` anyway, so
//! the mark an nft `meta mark set` rule puts on a packet never reaches rvsd. The keeper reads
//! the director's ruleset instead (every second and on each table change, while a
//! firewall-mark service exists; [`crate::nft_marks`]) and the plane applies
//! the mark rules it finds exactly where the kernel's mangle/PREROUTING rule would
//! (`PlaneConfig::marks`); rules it cannot express are logged, and `--fwmark-rule` gives a
//! rule to rvsd directly.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rvs_core::{FwdMethod, Protocol, ServiceKey, Time};
use rvs_packet::plane::{
    DropCounters, MarkRule, Neighbours, NextHop, Plane, PlaneConfig, PortConfig, PortId, Verdict,
};
use rvs_packet_io::nft::{self, GuardRules, IngressGuard, LocalPorts, Match};
use rvs_packet_io::{Port, Resolver, ResolverConfig, RxFrame, Sender};

use crate::clock::Clock;
use crate::learned_neighbours::{solicitation_sender, Learned};
use crate::shard::{self, Shard, ShardRef};
use crate::state::State;

/// Headroom before a frame in a worker's buffer: tunnels grow the frame into it (up to
/// 40 + 8 + 12 bytes, `Plane::process`), generated replies are written from byte 0.
const HEADROOM: usize = 128;
/// Largest frame a worker takes: a 64 KB GRO / GSO super-frame (cut into segments, see
/// `rvs_packet::gso`) plus an Ethernet header with two VLAN tags.
const MAX_FRAME: usize = 65535 + 22;
/// Largest frame a worker sends: a jumbo frame plus an L2 header and a tunnel header.
const OUT_FRAME: usize = 9216 + 22 + 64;
/// Room after the frame for a generated ICMP error (`Plane::process` asks for `len + 48`).
const TAIL: usize = 256;
/// Frames that do not fit back into their ring slot (tunnel encapsulation, fragments),
/// queued per batch and sent with one `sendmmsg` per interface.
const OUT_SLOTS: usize = 64;
/// Ring blocks a worker processes per hold of the state lock (see "Locking" above).
const BLOCKS_PER_BATCH: usize = 1;
/// How long a worker waits for frames before it looks at the stop flag again.
const POLL: Duration = Duration::from_millis(100);
/// Most fragments one packet is split into (a 9 KB frame at the 68-byte minimum MTU).
const MAX_FRAGMENTS: usize = 256;

/// What rvsd needs to know about one interface of the plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub ifindex: u32,
    /// MAC address.
    pub mac: [u8; 6],
    /// MTU.
    pub mtu: u32,
    /// Addresses with their prefix lengths.
    pub addrs: Vec<(IpAddr, u8)>,
}

impl Iface {
    fn addr4(&self) -> Option<Ipv4Addr> {
        self.addrs.iter().find_map(|(a, _)| match a {
            IpAddr::V4(v) => Some(*v),
            IpAddr::V6(_) => None,
        })
    }

    /// A global IPv6 address (link-local ones cannot source tunnels or ICMP errors to
    /// clients off-link).
    fn addr6(&self) -> Option<Ipv6Addr> {
        self.addrs.iter().find_map(|(a, _)| match a {
            IpAddr::V6(v) if (v.segments()[0] & 0xffc0) != 0xfe80 => Some(*v),
            _ => None,
        })
    }

    fn on_link(&self, a: IpAddr) -> bool {
        self.addrs
            .iter()
            .any(|&(net, len)| same_prefix(net, a, len))
    }
}

fn same_prefix(a: IpAddr, b: IpAddr, len: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Reads the MTU and addresses of `name` (its MAC and index come from the open port).
fn iface_info(port: &Port) -> Result<Iface, String> {
    let name = port.ifname().to_string();
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .ok_or_else(|| format!("{name}: cannot read the MTU from /sys/class/net"))?;
    let mut addrs = Vec::new();
    let all = nix::ifaddrs::getifaddrs().map_err(|e| format!("getifaddrs: {e}"))?;
    for ifa in all.filter(|i| i.interface_name == name) {
        let (Some(a), Some(m)) = (ifa.address, ifa.netmask) else {
            continue;
        };
        if let (Some(a), Some(m)) = (a.as_sockaddr_in(), m.as_sockaddr_in()) {
            addrs.push((IpAddr::V4(a.ip()), u32::from(m.ip()).count_ones() as u8));
        } else if let (Some(a), Some(m)) = (a.as_sockaddr_in6(), m.as_sockaddr_in6()) {
            addrs.push((IpAddr::V6(a.ip()), u128::from(m.ip()).count_ones() as u8));
        }
    }
    Ok(Iface {
        name,
        ifindex: port.ifindex(),
        mac: port.mac(),
        mtu,
        addrs,
    })
}

/// Parses a `--fwmark-rule` value: `PROTO:ADDR:PORT[-PORT]=MARK`, PROTO one of `tcp`, `udp`,
/// `sctp`, `any`; an IPv6 address in brackets. The rvs stand-in for
/// `nft add rule ... ip daddr ADDR tcp dport PORTS meta mark set MARK` (see the module docs).
pub fn parse_mark_rule(s: &str) -> Result<MarkRule, String> {
    let bad = || format!("bad --fwmark-rule {s:?}: want PROTO:ADDR:PORT[-PORT]=MARK");
    let (lhs, mark) = s.rsplit_once('=').ok_or_else(bad)?;
    let mark: u32 = mark.parse().map_err(|_| bad())?;
    let (proto, rest) = lhs.split_once(':').ok_or_else(bad)?;
    let proto = match proto {
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        "any" => 0,
        _ => return Err(bad()),
    };
    let (addr, ports) = rest.rsplit_once(':').ok_or_else(bad)?;
    let addr: IpAddr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| bad())?;
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
        None => {
            let p: u16 = ports.parse().map_err(|_| bad())?;
            (p, p)
        }
    };
    if lo > hi || mark == 0 {
        return Err(bad());
    }
    Ok(MarkRule {
        proto,
        addr,
        ports: (lo, hi),
        mark,
    })
}

/// Options of the packet plane.
#[derive(Debug, Clone)]
pub struct Options {
    /// Firewall-mark rules (`--fwmark-rule`).
    pub marks: Vec<MarkRule>,
    /// Full-NAT local port range (must not overlap the kernel's `ip_local_port_range` on the
    /// local addresses: the guard drops replies to these ports).
    pub lport_range: (u16, u16),
    /// Worker threads per interface (`--packet-workers`); more than one joins the
    /// interface's sockets in a `PACKET_FANOUT` hash group, so a flow stays on one worker.
    pub workers_per_interface: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers_per_interface: 1,
            marks: Vec::new(),
            lport_range: PlaneConfig::default().lport_range,
        }
    }
}

/// The port an owned address lives on: the interface whose network contains it, else the
/// first interface (a VIP on `lo` routed to the director: ARP for it never reaches us, and
/// the gratuitous ARP then goes out of the first `--interface`).
fn port_of(ifaces: &[Iface], a: IpAddr) -> PortId {
    ifaces.iter().position(|i| i.on_link(a)).unwrap_or(0) as PortId
}

/// The plane's configuration for the current table (pure: unit-tested below).
pub fn plane_config(ifaces: &[Iface], st: &State, opts: &Options) -> PlaneConfig {
    let opts = with_nft_marks(st, opts);
    let shard = st.packet_shard().map(|s| shard::lock(s));
    let mut c = plane_config_of(ifaces, shard.as_deref(), st.vrrp.as_deref(), &opts);
    c.pmtu_disc = st.sysctls.int("pmtu_disc") != 0;
    c
}

/// The options with the mark rules read from the director's nft ruleset added after the
/// `--fwmark-rule` ones (see [`crate::nft_marks`]).
fn with_nft_marks(st: &State, opts: &Options) -> Options {
    let mut o = opts.clone();
    o.marks.extend(st.nft_marks.iter().cloned());
    o
}

/// The plane's configuration for the packet shard's services and the VRRP state.
fn plane_config_of(
    ifaces: &[Iface],
    sh: Option<&Shard>,
    vrrp: Option<&crate::vrrp::StatusBoard>,
    opts: &Options,
) -> PlaneConfig {
    let ports = ifaces
        .iter()
        .map(|i| PortConfig {
            mac: i.mac,
            mtu: i.mtu,
            addr4: i.addr4(),
            addr6: i.addr6(),
        })
        .collect();
    let mut owned: Vec<(IpAddr, PortId)> = Vec::new();
    let mut own = |a: IpAddr| {
        if !a.is_loopback() && !owned.iter().any(|&(o, _)| o == a) {
            owned.push((a, port_of(ifaces, a)));
        }
    };
    let mut laddrs = Vec::new();
    let services = || sh.into_iter().flat_map(|sh| sh.director.table.services());
    for (_, s) in services() {
        if !State::packet_serves(&s.key) {
            continue;
        }
        if let ServiceKey::Addr { addr, .. } = s.key {
            own(addr);
        }
        if let Some(x) = sh.and_then(|sh| sh.extra.get(&s.key)) {
            for &(_, a) in x.laddrs.entries() {
                laddrs.push((s.key, a));
                own(a);
            }
        }
    }
    // Firewall-mark VIPs are owned only while a service of that mark exists.
    for m in &opts.marks {
        let marked = services()
            .any(|(_, s)| matches!(s.key, ServiceKey::Fwmark { mark, .. } if mark == m.mark));
        if marked {
            own(m.addr);
        }
    }
    // With VRRP, a VIP belongs to this director only while its instance is MASTER: as BACKUP
    // the plane must not answer ARP/ND for it (the VRRP driver removes it from the interface
    // and the peer announces it).
    if let Some(board) = vrrp {
        let standby = board.standby_vips();
        owned.retain(|(a, _)| !standby.contains(a));
    }
    PlaneConfig {
        ports,
        owned,
        marks: opts.marks.clone(),
        laddrs,
        lport_range: opts.lport_range,
        pmtu_disc: true,
    }
}

/// The nft guard's rules for the current table (pure: unit-tested below), and the real
/// servers to resolve.
pub fn guard_rules(ifaces: &[Iface], st: &State, opts: &Options) -> (GuardRules, Vec<IpAddr>) {
    let opts = &with_nft_marks(st, opts);
    let mut g = GuardRules::default();
    let mut rs = Vec::new();
    let (lo, hi) = opts.lport_range;
    let shard = st.packet_shard().map(|s| shard::lock(s));
    let shard = shard.as_deref();
    for (_, s) in shard
        .into_iter()
        .flat_map(|sh| sh.director.table.services())
    {
        if !State::packet_serves(&s.key) {
            continue;
        }
        // The protocol and port replies come from, when the service has them.
        let svc_l4 = match s.key {
            ServiceKey::Addr { proto, addr, port } => {
                g.vips.push(if port == 0 {
                    Match::addr(addr)
                } else {
                    Match::service(addr, proto, port)
                });
                Some(proto)
            }
            ServiceKey::Fwmark { mark, .. } => {
                for m in opts.marks.iter().filter(|m| m.mark == mark) {
                    g.vips.push(Match::addr(m.addr));
                }
                None
            }
        };
        for d in s
            .dests
            .iter()
            .filter_map(|id| shard.and_then(|sh| sh.director.table.dests.get(*id)))
        {
            if !rs.contains(&d.cfg.addr) {
                rs.push(d.cfg.addr);
            }
            if matches!(d.cfg.fwd, FwdMethod::Masq | FwdMethod::FullNat) {
                g.replies.push(match svc_l4 {
                    Some(p) if d.cfg.port != 0 => Match::service(d.cfg.addr, p, d.cfg.port),
                    _ => Match::addr(d.cfg.addr),
                });
            }
        }
        if let Some(x) = shard.and_then(|sh| sh.extra.get(&s.key)) {
            let protos: Vec<Protocol> = match svc_l4 {
                Some(p) => vec![p],
                None => {
                    let mut v: Vec<Protocol> = opts
                        .marks
                        .iter()
                        .filter_map(|m| Protocol::from_number(m.proto))
                        .collect();
                    v.dedup();
                    if v.is_empty() {
                        v = vec![Protocol::Tcp, Protocol::Udp];
                    }
                    v
                }
            };
            for &(_, addr) in x.laddrs.entries() {
                for &proto in &protos {
                    g.local_ports.push(LocalPorts {
                        addr,
                        proto,
                        ports: lo..=hi,
                    });
                }
            }
        }
    }
    for i in ifaces {
        for &(a, _) in &i.addrs {
            if !g.keep_local.contains(&a) {
                g.keep_local.push(a);
            }
        }
    }
    (g, rs)
}

/// Next hops for a worker's plane: its own rtnetlink resolver, asked without blocking.
struct Hops {
    resolver: RefCell<Resolver>,
    ifindexes: Vec<u32>,
    /// Destinations the kernel could not resolve, and when: not asked again for
    /// [`NEGATIVE_TTL`], so a flood toward an unroutable or dead address costs a hash lookup
    /// per packet, not two netlink round trips (and a probe) under the state lock.
    failed: RefCell<HashMap<IpAddr, Instant>>,
    /// Senders of ARP requests and neighbour solicitations (see [`crate::learned_neighbours`]):
    /// used when the kernel has no entry. Shared by the workers (a reply often arrives on
    /// another interface than the client's solicitation); touched only on a kernel miss or
    /// for a solicitation, never per forwarded packet.
    learned: Arc<Mutex<Learned>>,
}

/// How long a failed next-hop lookup is remembered.
const NEGATIVE_TTL: Duration = Duration::from_millis(200);
/// Most remembered failures; the memory is cleared when full (bounded, allocation-free after
/// warm-up).
const NEGATIVE_MAX: usize = 4096;

impl Hops {
    fn learned_hop(&self, dst: &IpAddr, now: Instant) -> Option<NextHop> {
        self.learned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(dst, now)
    }
}

impl Neighbours for Hops {
    fn next_hop(&self, dst: IpAddr) -> Option<NextHop> {
        let now = Instant::now();
        if let Some(t) = self.failed.borrow().get(&dst) {
            if now.duration_since(*t) < NEGATIVE_TTL {
                return self.learned_hop(&dst, now);
            }
        }
        let nh = match self.resolver.borrow_mut().try_resolve(dst) {
            Ok(Some(nh)) => nh,
            _ => {
                let mut f = self.failed.borrow_mut();
                if f.len() >= NEGATIVE_MAX {
                    f.clear();
                }
                f.insert(dst, now);
                return self.learned_hop(&dst, now);
            }
        };
        let port = self.ifindexes.iter().position(|&i| i == nh.ifindex)?;
        Some(NextHop {
            port: port as PortId,
            mac: nh.mac,
        })
    }
}

/// Frames that do not fit back into their ring slot, sent after the batch.
struct OutQueue {
    arena: Vec<u8>,
    frames: Vec<(PortId, usize)>,
    sent: u64,
    failed: u64,
}

const SLOT: usize = OUT_FRAME;

impl OutQueue {
    fn new() -> Self {
        OutQueue {
            arena: vec![0; OUT_SLOTS * SLOT],
            frames: Vec::with_capacity(OUT_SLOTS),
            sent: 0,
            failed: 0,
        }
    }

    fn push(&mut self, senders: &mut [Sender], port: PortId, frame: &[u8]) {
        if frame.len() > SLOT {
            self.failed += 1;
            return;
        }
        if self.frames.len() == OUT_SLOTS {
            self.flush(senders);
        }
        let i = self.frames.len();
        self.arena[i * SLOT..i * SLOT + frame.len()].copy_from_slice(frame);
        self.frames.push((port, frame.len()));
    }

    fn flush(&mut self, senders: &mut [Sender]) {
        if self.frames.is_empty() {
            return;
        }
        for (p, sender) in senders.iter_mut().enumerate() {
            let batch: Vec<&[u8]> = self
                .frames
                .iter()
                .enumerate()
                .filter(|(_, (q, _))| usize::from(*q) == p)
                .map(|(i, &(_, len))| &self.arena[i * SLOT..i * SLOT + len])
                .collect();
            if batch.is_empty() {
                continue;
            }
            let n = sender.send_batch(&batch);
            self.sent += n as u64;
            self.failed += (batch.len() - n) as u64;
        }
        self.frames.clear();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a worker counted, reported when it stops.
#[derive(Debug, Default, Clone)]
pub struct WorkerReport {
    /// Interface.
    pub iface: String,
    /// Frames received.
    pub frames: u64,
    /// Batches (lock acquisitions).
    pub batches: u64,
    /// Frames too large or truncated, left to the host.
    pub oversize: u64,
    /// Frames for another host's MAC (`PACKET_OTHERHOST`), ignored.
    pub other_host: u64,
    /// Frames whose transport checksum was completed (`CHECKSUM_PARTIAL`).
    pub csum_completed: u64,
    /// TCP super-frames (GRO / GSO) cut into segments.
    pub segmented: u64,
    /// Frames the kernel dropped because the receive ring was full.
    pub ring_drops: u64,
    /// Frames the port failed to transmit.
    pub tx_errors: u64,
    /// Frames sent outside the ring (tunnels, fragments) / that failed.
    pub out_sent: u64,
    /// See `out_sent`.
    pub out_failed: u64,
    /// The plane's drop counters.
    pub drops: DropCounters,
    /// Why the worker stopped early, if it did.
    pub error: Option<String>,
}

struct Shared {
    state: Arc<Mutex<State>>,
    /// The shard of the services this plane serves: the only lock a worker takes per batch.
    shard: ShardRef,
    /// The table generation (`State::generation`), read without the state lock.
    generation: Arc<AtomicU64>,
    /// Neighbours learned from solicitations, shared by the workers.
    learned: Arc<Mutex<Learned>>,
    clock: Clock,
    stop: Arc<AtomicBool>,
    ifaces: Arc<Vec<Iface>>,
    opts: Options,
}

/// Where a verdict's bytes go: back into the ring slot (sent by the port's batched
/// `sendmmsg` before the block is released), or into the out queue.
struct Emitter {
    ifaces: Arc<Vec<Iface>>,
    senders: Vec<Sender>,
    out: OutQueue,
    frag: Vec<u8>,
}

impl Emitter {
    fn emit(&mut self, v: Verdict, buf: &[u8], ring: Option<&mut RxFrame<'_>>) {
        match v {
            Verdict::Transmit { port, start, len } | Verdict::Local { port, start, len } => {
                let Some(ifindex) = self.ifaces.get(usize::from(port)).map(|i| i.ifindex) else {
                    return;
                };
                match ring {
                    Some(f) if len <= f.data().len() => {
                        f.data_mut()[..len].copy_from_slice(&buf[start..start + len]);
                        f.truncate(len);
                        f.transmit_on(ifindex);
                    }
                    _ => self
                        .out
                        .push(&mut self.senders, port, &buf[start..start + len]),
                }
            }
            Verdict::Fragment {
                port,
                start,
                len,
                mtu,
            } => {
                let frame = &buf[start..start + len];
                let Ok(p) = rvs_packet::parse(frame) else {
                    return;
                };
                let Ok(mut fr) = rvs_packet::frag::fragment_ipv4(frame, &p, mtu) else {
                    return;
                };
                for _ in 0..MAX_FRAGMENTS {
                    match fr.next_into(&mut self.frag) {
                        Ok(Some(k)) => self.out.push(&mut self.senders, port, &self.frag[..k]),
                        _ => break,
                    }
                }
            }
            // Pass: the host stack has its own copy (the guard lets it through);
            // Drop: counted by the plane, and the guard keeps it from the host.
            Verdict::Pass | Verdict::Drop(_) => {}
        }
    }
}

/// True when `frame` is a TCP packet longer than the link MTU: a GRO / GSO super-frame that
/// must be cut into segments first (`rvs_packet::gso`).
fn super_frame(frame: &[u8], mtu: u32) -> Option<rvs_packet::Parsed> {
    if frame.len() <= mtu as usize + 14 {
        return None;
    }
    let p = rvs_packet::parse(frame).ok()?;
    (p.proto == 6 && !p.is_fragment() && p.l3_len() > mtu as usize).then_some(p)
}

/// Whether a received frame is the plane's business: not one for another host's MAC
/// (`PACKET_OTHERHOST`), which reaches the socket when a switch floods an unknown unicast
/// (e.g. after the peer that owned the MAC went away) or on a veth, which does not filter by
/// MAC. The kernel drops those frames, and so must the plane: a VRRP BACKUP would otherwise
/// serve a VIP it does not own with the frames flooded toward its dead MASTER's MAC.
fn addressed_to_us(pkt_type: u8) -> bool {
    pkt_type != libc::PACKET_OTHERHOST
}

fn worker(me: usize, mut port: Port, sh: Shared) -> WorkerReport {
    let mut rep = WorkerReport {
        iface: sh.ifaces[me].name.clone(),
        ..WorkerReport::default()
    };
    let resolver = match Resolver::new(ResolverConfig::default()) {
        Ok(r) => r,
        Err(e) => {
            rep.error = Some(format!("rtnetlink: {e}"));
            return rep;
        }
    };
    let mut senders = Vec::with_capacity(sh.ifaces.len());
    for i in sh.ifaces.iter() {
        match Sender::open(&i.name) {
            Ok(s) => senders.push(s),
            Err(e) => {
                rep.error = Some(format!("sender on {}: {e}", i.name));
                return rep;
            }
        }
    }
    let hops = Hops {
        resolver: RefCell::new(resolver),
        ifindexes: sh.ifaces.iter().map(|i| i.ifindex).collect(),
        failed: RefCell::new(HashMap::with_capacity(NEGATIVE_MAX)),
        learned: sh.learned.clone(),
    };
    let mut plane = Plane::new(PlaneConfig::default(), hops);
    let mut generation: Option<(u64, u64)> = None;
    let mut vrrp: Option<Arc<crate::vrrp::StatusBoard>> = None;
    let mut buf = vec![0u8; HEADROOM + MAX_FRAME + TAIL];
    let mut em = Emitter {
        ifaces: sh.ifaces.clone(),
        senders,
        out: OutQueue::new(),
        frag: vec![0u8; OUT_FRAME],
    };
    let port_in = me as PortId;
    let mtu = sh.ifaces[me].mtu;
    while !sh.stop.load(Ordering::Relaxed) {
        // Taken at a block's first frame, released once the block is processed and before its
        // transmissions go out (`recv_batch_then`), so the sendmmsg calls run without it.
        let guard: RefCell<Option<MutexGuard<'_, Shard>>> = RefCell::new(None);
        let mut now = Time(0);
        let walk = |f: &mut RxFrame<'_>| {
            if !addressed_to_us(f.pkt_type()) {
                rep.other_host += 1;
                return;
            }
            if f.truncated() || f.data().len() > MAX_FRAME {
                rep.oversize += 1;
                return;
            }
            if let Some((ip, mac)) = solicitation_sender(f.data()) {
                // As the kernel does for a request to one of its addresses: remember the
                // sender, so the first reply toward it is not dropped for want of a neighbour.
                if sh.ifaces[me].on_link(ip) {
                    let mut l = sh.learned.lock().unwrap_or_else(|p| p.into_inner());
                    l.learn(ip, mac, port_in, Instant::now());
                }
            }
            let mut guard = guard.borrow_mut();
            if guard.is_none() {
                // A changed table or VRRP state rebuilds the configuration first; that reads
                // the daemon state, whose lock comes before the shard's.
                let key = config_key(&sh.generation, vrrp.as_deref());
                if generation != Some(key) {
                    let st = lock(&sh.state);
                    vrrp = st.vrrp.clone();
                    let g = shard::lock(&sh.shard);
                    let opts = with_nft_marks(&st, &sh.opts);
                    let cfg = plane_config_of(&sh.ifaces, Some(&g), vrrp.as_deref(), &opts);
                    plane.set_config(cfg);
                    // The epoch is read again: a transition between the two reads is then
                    // seen at the next batch.
                    generation = Some((key.0, config_key(&sh.generation, vrrp.as_deref()).1));
                }
                *guard = Some(shard::lock(&sh.shard));
                now = sh.clock.now();
                rep.batches += 1;
            }
            let Some(st) = guard.as_deref_mut() else {
                return;
            };
            rep.frames += 1;
            let Shard { director, rng, .. } = st;
            if let Some(p) = super_frame(f.data(), mtu) {
                // Cut into segments that fit the link, each processed like a frame of its
                // own (checksums are recomputed in full, partial or not).
                rep.segmented += 1;
                let Ok(mut seg) = rvs_packet::gso::segment_tcp(f.data(), &p, mtu) else {
                    return;
                };
                for _ in 0..MAX_FRAGMENTS {
                    let n = match seg.next_into(&mut buf[HEADROOM..HEADROOM + OUT_FRAME]) {
                        Ok(Some(n)) => n,
                        _ => break,
                    };
                    let v = plane.process(director, &mut buf, HEADROOM, n, port_in, now, rng);
                    em.emit(v, &buf, None);
                }
                return;
            }
            let len = f.data().len();
            buf[HEADROOM..HEADROOM + len].copy_from_slice(f.data());
            if f.checksum_not_ready() {
                // CHECKSUM_PARTIAL (veth, local senders): complete the transport checksum,
                // or the incremental rewrite of §5.3 keeps it wrong and the receiver drops
                // the packet. TCP, UDP and ICMP only; others are left as they are.
                let frame = &mut buf[HEADROOM..HEADROOM + len];
                if let Ok(p) = rvs_packet::parse(frame) {
                    if rvs_packet::parse::fill_l4_checksum(frame, &p).is_ok() {
                        rep.csum_completed += 1;
                    }
                }
            }
            let v = plane.process(director, &mut buf, HEADROOM, len, port_in, now, rng);
            em.emit(v, &buf, Some(f));
        };
        let res = port.recv_batch_then(POLL, walk, || drop(guard.borrow_mut().take()));
        drop(guard);
        em.out.flush(&mut em.senders);
        if let Err(e) = res {
            rep.error = Some(format!("receive on {}: {e}", rep.iface));
            break;
        }
    }
    if let Ok(ps) = port.stats() {
        rep.ring_drops = ps.kernel_drops;
        rep.tx_errors = ps.tx_errors;
    }
    rep.out_sent = em.out.sent;
    rep.out_failed = em.out.failed;
    rep.drops = plane.drops().clone();
    rep
}

/// Waits (at most [`APPLY_WAIT`]) until the packet plane applied table generation
/// `generation`: its nft guard lists the new VIPs and new real servers are resolved, so the
/// first packet after `rvsadm -A/-a` is the plane's and not the host stack's.
pub async fn wait_applied(applied: &AtomicU64, generation: u64) {
    let polls = (APPLY_WAIT.as_millis() / 10) as usize;
    for _ in 0..polls {
        if applied.load(Ordering::Acquire) >= generation {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::warn!("the packet plane has not applied table change {generation} yet");
}

/// Longest a control request waits for the packet plane ([`wait_applied`]).
pub const APPLY_WAIT: Duration = Duration::from_secs(3);

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

/// Keeps the nft guard in line with the table, announces new VIPs and warms the neighbour
/// table for new real servers. Removes the guard when stopped.
/// Follows the director's nft ruleset for mark rules (every [`NFT_POLL`]).
#[derive(Default)]
struct NftMarks {
    last: Option<Result<crate::nft_marks::Found, String>>,
    next: Option<Instant>,
}

/// How often the nft ruleset is read for mark rules.
const NFT_POLL: Duration = Duration::from_secs(1);

impl NftMarks {
    /// Re-reads the ruleset when due, or at once with `force` (a table change). Only while
    /// some firewall-mark service exists: otherwise marks matter to nobody, and a large
    /// ruleset (container hosts) is not listed every second for nothing.
    fn poll(&mut self, state: &Mutex<State>, force: bool) {
        let now = Instant::now();
        if !force && self.next.is_some_and(|t| now < t) {
            return;
        }
        self.next = Some(now + NFT_POLL);
        {
            let mut st = lock(state);
            let wanted = st
                .service_keys()
                .iter()
                .any(|k| matches!(k, ServiceKey::Fwmark { .. }));
            if !wanted {
                if !st.nft_marks.is_empty() {
                    st.nft_marks.clear();
                    st.bump_generation();
                }
                self.last = None;
                return;
            }
        }
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
                let mut st = lock(state);
                if st.nft_marks != f.rules {
                    st.nft_marks = f.rules.clone();
                    st.bump_generation();
                }
            }
            Err(e) => tracing::warn!("firewall marks from nft: {e}"),
        }
        self.last = Some(found);
    }
}

/// What the plane's configuration depends on: the table generation and the VRRP state epoch.
fn config_key(generation: &AtomicU64, vrrp: Option<&crate::vrrp::StatusBoard>) -> (u64, u64) {
    (
        generation.load(Ordering::Acquire),
        vrrp.map_or(0, |b| b.epoch()),
    )
}

fn keeper(
    mut guard: IngressGuard,
    sh: Shared,
    applied: Arc<AtomicU64>,
    mut marks: NftMarks,
) -> Result<(), String> {
    let mut resolver =
        Resolver::new(ResolverConfig::default()).map_err(|e| format!("rtnetlink: {e}"))?;
    let mut senders = Vec::new();
    for i in sh.ifaces.iter() {
        senders.push(Sender::open(&i.name).map_err(|e| format!("sender on {}: {e}", i.name))?);
    }
    let mut generation: Option<u64> = None;
    let mut announced: HashSet<IpAddr> = HashSet::new();
    let mut resolved: HashSet<IpAddr> = HashSet::new();
    while !sh.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10));
        // A table change may have added the first firewall-mark service: its marks are read
        // before the change is applied (and before rvsadm returns, see `wait_applied`).
        let changed = generation != Some(lock(&sh.state).generation());
        marks.poll(&sh.state, changed);
        let (gen_now, rules, rs, owned) = {
            let st = lock(&sh.state);
            let gen_now = st.generation();
            if generation == Some(gen_now) {
                continue;
            }
            generation = Some(gen_now);
            let (rules, rs) = guard_rules(&sh.ifaces, &st, &sh.opts);
            (
                gen_now,
                rules,
                rs,
                plane_config(&sh.ifaces, &st, &sh.opts).owned,
            )
        };
        if let Err(e) = guard.update(&rules) {
            tracing::error!("nft ingress guard update: {e}");
        }
        let new: Vec<(IpAddr, PortId)> = owned
            .into_iter()
            .filter(|(a, _)| announced.insert(*a))
            .collect();
        announce(&sh.ifaces, &mut senders, &new);
        // Bounded: each resolve waits at most the resolver's probe timeout (3 s).
        for a in rs {
            if sh.stop.load(Ordering::Relaxed) {
                break;
            }
            if resolved.contains(&a) {
                continue;
            }
            match resolver.resolve(a) {
                Ok(_) => {
                    resolved.insert(a);
                }
                Err(e) => tracing::warn!("next hop of real server {a}: {e}"),
            }
        }
        applied.store(gen_now, Ordering::Release);
    }
    guard
        .remove()
        .map_err(|e| format!("removing the nft guard: {e}"))
}

/// The running packet plane; stopped (threads joined, nft guard removed) by [`stop`] or drop.
///
/// [`stop`]: PacketPlane::stop
pub struct PacketPlane {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<WorkerReport>>,
    keeper: Option<JoinHandle<Result<(), String>>>,
}

impl PacketPlane {
    /// Opens a port on each interface, installs the nft guard (after deleting a stale one)
    /// and starts the threads. Needs CAP_NET_RAW and CAP_NET_ADMIN and the `nft` program.
    pub fn start(
        interfaces: &[String],
        state: Arc<Mutex<State>>,
        clock: Clock,
        opts: Options,
    ) -> Result<PacketPlane, String> {
        let mut ports = Vec::new();
        let mut ifaces = Vec::new();
        let per = opts.workers_per_interface.clamp(1, 64);
        for (n, name) in interfaces.iter().enumerate() {
            if ifaces.iter().any(|i: &Iface| &i.name == name) {
                return Err(format!("--interface {name} given twice"));
            }
            let mut cfg = rvs_packet_io::PortConfig {
                blocks_per_call: Some(BLOCKS_PER_BATCH),
                ..Default::default()
            };
            if per > 1 {
                // One fanout group per interface (ids are per network namespace): the
                // kernel's flow hash keeps both directions of a flow on one worker; defrag so
                // all fragments of a datagram meet.
                cfg.fanout = Some(rvs_packet_io::Fanout {
                    group: (std::process::id() as u16)
                        .wrapping_mul(64)
                        .wrapping_add(n as u16),
                    defrag: true,
                });
            }
            for _ in 0..per {
                let port =
                    Port::open(name, &cfg).map_err(|e| format!("--interface {name}: {e}"))?;
                if ports.iter().all(|(i, _)| *i != n) {
                    ifaces.push(iface_info(&port)?);
                }
                ports.push((n, port));
            }
        }
        nft::cleanup_stale().map_err(|e| format!("removing a stale nft guard: {e}"))?;
        let (rules, _) = guard_rules(&ifaces, &lock(&state), &opts);
        let names: Vec<&str> = interfaces.iter().map(String::as_str).collect();
        let guard = IngressGuard::install(&names, &rules)
            .map_err(|e| format!("installing the nft ingress guard: {e}"))?;
        let ifaces = Arc::new(ifaces);
        let stop = Arc::new(AtomicBool::new(false));
        let (packet_shard, generation) = {
            let st = lock(&state);
            let s = st
                .packet_shard()
                .cloned()
                .ok_or("the daemon state was made without the packet plane")?;
            (s, st.generation.clone())
        };
        let learned = Arc::new(Mutex::new(Learned::default()));
        let shared = || Shared {
            state: state.clone(),
            shard: packet_shard.clone(),
            generation: generation.clone(),
            learned: learned.clone(),
            clock,
            stop: stop.clone(),
            ifaces: ifaces.clone(),
            opts: opts.clone(),
        };
        let mut pp = PacketPlane {
            stop: stop.clone(),
            workers: Vec::new(),
            keeper: None,
        };
        let sh = shared();
        let applied = Arc::new(AtomicU64::new(0));
        // Mark rules from nft are in place before the first frame is seen.
        let mut marks = NftMarks::default();
        marks.poll(&state, true);
        lock(&state).packet_applied = Some(applied.clone());
        pp.keeper = Some(
            std::thread::Builder::new()
                .name("rvs-keeper".into())
                .spawn(move || keeper(guard, sh, applied, marks))
                .map_err(|e| format!("spawning the keeper thread: {e}"))?,
        );
        for (i, port) in ports {
            let sh = shared();
            let h = std::thread::Builder::new()
                .name(format!("rvs-pkt-{}", ifaces[i].name))
                .spawn(move || worker(i, port, sh))
                .map_err(|e| format!("spawning a packet worker: {e}"))?;
            pp.workers.push(h);
        }
        for i in ifaces.iter() {
            let a: Vec<String> = i.addrs.iter().map(|(a, l)| format!("{a}/{l}")).collect();
            tracing::info!(
                "packet plane on {} (index {}, mtu {}, {})",
                i.name,
                i.ifindex,
                i.mtu,
                a.join(" ")
            );
        }
        Ok(pp)
    }

    /// Stops the workers and the keeper (which removes the nft guard); logs their counters.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.workers.drain(..) {
            match h.join() {
                Ok(r) => {
                    let drops: Vec<String> = r
                        .drops
                        .nonzero()
                        .map(|(d, n)| format!("{}={n}", d.name()))
                        .collect();
                    tracing::info!(
                        "packet worker {}: {} frames in {} batches, {} oversize, {} for other hosts, {} ring drops, {} transmit errors, {} checksums completed, {} super-frames segmented, {} sent outside the ring ({} failed), drops: {}",
                        r.iface,
                        r.frames,
                        r.batches,
                        r.oversize,
                        r.other_host,
                        r.ring_drops,
                        r.tx_errors,
                        r.csum_completed,
                        r.segmented,
                        r.out_sent,
                        r.out_failed,
                        if drops.is_empty() { "none".into() } else { drops.join(" ") }
                    );
                    if let Some(e) = r.error {
                        tracing::error!("packet worker {}: {e}", r.iface);
                    }
                }
                Err(_) => tracing::error!("a packet worker panicked"),
            }
        }
        if let Some(k) = self.keeper.take() {
            match k.join() {
                Ok(Ok(())) => tracing::info!("nft ingress guard removed"),
                Ok(Err(e)) => tracing::error!("packet plane keeper: {e}"),
                Err(_) => tracing::error!("the packet plane keeper panicked"),
            }
        }
    }
}

impl Drop for PacketPlane {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Planes;
    use crate::test_support::parse_cmd;
    use rvs_control::proto::Request;

    fn ifaces() -> Vec<Iface> {
        vec![
            Iface {
                name: "eth0".into(),
                ifindex: 2,
                mac: [2, 0, 0, 0, 0, 1],
                mtu: 1500,
                addrs: vec![("10.1.0.1".parse().unwrap(), 24)],
            },
            Iface {
                name: "eth1".into(),
                ifindex: 3,
                mac: [2, 0, 0, 0, 0, 2],
                mtu: 1500,
                addrs: vec![
                    ("10.2.0.1".parse().unwrap(), 24),
                    ("fe80::1".parse().unwrap(), 64),
                ],
            },
        ]
    }

    fn state(cmds: &[&str]) -> State {
        let mut st = State::new(Time(0), Planes { packet: true });
        for c in cmds {
            let req = parse_cmd(c);
            let r = st.handle(&req, Time(0));
            assert!(r.result.is_ok(), "{c}: {:?}", r.result);
        }
        st
    }

    #[test]
    fn frames_for_other_hosts_are_ignored() {
        assert!(!addressed_to_us(libc::PACKET_OTHERHOST));
        for t in [
            libc::PACKET_HOST,
            libc::PACKET_BROADCAST,
            libc::PACKET_MULTICAST,
        ] {
            assert!(addressed_to_us(t), "pkt_type {t}");
        }
    }

    #[test]
    fn vrrp_backup_does_not_own_its_vips() {
        use crate::vrrp::{InstanceStatus, StatusBoard};
        let mut st = state(&["-A -t 10.100.0.1:80 -s rr", "-A -t 10.100.0.7:80 -s rr"]);
        let inst = |state: &'static str, vip: &str| InstanceStatus {
            name: "VI_1".into(),
            interface: "eth0".into(),
            vrid: 51,
            state,
            priority: 100,
            base_priority: 100,
            transitions: 0,
            became_master: 0,
            adverts_sent: 0,
            priority_zero_sent: 0,
            adverts_received: 0,
            adverts_accepted: 0,
            adverts_rejected: 0,
            priority_zero_received: 0,
            vips: vec![vip.parse().unwrap()],
        };
        let board = std::sync::Arc::new(StatusBoard::default());
        let owns = |st: &State, a: &str| {
            plane_config(&ifaces(), st, &Options::default())
                .owned
                .iter()
                .any(|(o, _)| o.to_string() == a)
        };
        // As rvsd attaches it (`vrrp::prepare`): every instance INIT, before the driver runs.
        board.publish(vec![inst("INIT", "10.100.0.1")]);
        st.vrrp = Some(board.clone());
        assert!(
            !owns(&st, "10.100.0.1"),
            "INIT must not answer ARP for its VIP"
        );
        board.publish(vec![inst("BACKUP", "10.100.0.1")]);
        let e0 = config_key(&st.generation, st.vrrp.as_deref());
        assert!(
            !owns(&st, "10.100.0.1"),
            "BACKUP must not answer ARP for its VIP"
        );
        assert!(
            owns(&st, "10.100.0.7"),
            "a VIP no instance manages stays owned"
        );
        board.publish(vec![inst("MASTER", "10.100.0.1")]);
        assert_ne!(
            config_key(&st.generation, st.vrrp.as_deref()),
            e0,
            "a transition must make the workers rebuild"
        );
        assert!(owns(&st, "10.100.0.1"));
        let e1 = config_key(&st.generation, st.vrrp.as_deref());
        board.publish(vec![inst("MASTER", "10.100.0.1")]);
        assert_eq!(
            config_key(&st.generation, st.vrrp.as_deref()),
            e1,
            "no transition, no rebuild"
        );
    }

    #[test]
    fn config_and_guard_follow_the_table() {
        let opts = Options {
            marks: vec![parse_mark_rule("tcp:10.100.0.2:80-443=6666").unwrap()],
            ..Options::default()
        };
        let st = state(&[
            "-A -t 10.100.0.1:80 -s rr",
            "-a -t 10.100.0.1:80 -r 10.2.0.11:80 -m",
            "-a -t 10.100.0.1:80 -r 10.2.0.12:80 -g",
            "-A -t 10.2.0.50:0 -p 60",
            "-A -t 127.0.0.1:8080",
            "-A -f 6666 -p 60",
            "-a -f 6666 -r 10.2.0.13 -m",
            "-A -t 10.100.0.3:80",
            "--add-laddr -t 10.100.0.3:80 -z 10.2.0.100",
        ]);
        let c = plane_config(&ifaces(), &st, &opts);
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[1].addr4, Some("10.2.0.1".parse().unwrap()));
        assert_eq!(c.ports[1].addr6, None, "link-local is not a source");
        let owned: Vec<(String, PortId)> =
            c.owned.iter().map(|(a, p)| (a.to_string(), *p)).collect();
        for want in [
            ("10.100.0.1", 0),
            ("10.2.0.50", 1),
            ("10.100.0.3", 0),
            ("10.2.0.100", 1),
            ("10.100.0.2", 0),
        ] {
            assert!(owned.contains(&(want.0.to_string(), want.1)), "{owned:?}");
        }
        assert!(!owned.iter().any(|(a, _)| a == "127.0.0.1"));
        assert_eq!(c.laddrs.len(), 1);

        let (g, rs) = guard_rules(&ifaces(), &st, &opts);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(g
            .vips
            .contains(&Match::service(ip("10.100.0.1"), Protocol::Tcp, 80)));
        assert!(g.vips.contains(&Match::addr(ip("10.2.0.50"))));
        assert!(g.vips.contains(&Match::addr(ip("10.100.0.2"))));
        assert!(!g.vips.iter().any(|m| m.addr == ip("127.0.0.1")));
        // NAT replies by address and port; DR real servers are not guarded (replies bypass).
        assert!(g
            .replies
            .contains(&Match::service(ip("10.2.0.11"), Protocol::Tcp, 80)));
        assert!(!g.replies.iter().any(|m| m.addr == ip("10.2.0.12")));
        assert!(g.replies.contains(&Match::addr(ip("10.2.0.13"))));
        assert_eq!(g.local_ports.len(), 1);
        assert_eq!(g.local_ports[0].addr, ip("10.2.0.100"));
        assert!(g.keep_local.contains(&ip("10.1.0.1")));
        assert!(rs.contains(&ip("10.2.0.12")));
        // The proxy keeps only the loopback service.
        let l = st.proxy_listeners();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].addr, "127.0.0.1:8080".parse().unwrap());
    }

    #[test]
    fn generation_moves_on_changes_only() {
        let mut st = state(&["-A -t 10.100.0.1:80"]);
        let g = st.generation();
        st.handle(&Request::GetServices, Time(0));
        assert_eq!(st.generation(), g);
        st.handle(&parse_cmd("-a -t 10.100.0.1:80 -r 10.2.0.11 -m"), Time(0));
        assert_ne!(st.generation(), g);
    }

    #[test]
    fn mark_rules_parse() {
        let m = parse_mark_rule("tcp:10.100.0.1:80-443=6666").unwrap();
        assert_eq!((m.proto, m.ports, m.mark), (6, (80, 443), 6666));
        let m = parse_mark_rule("any:[2001:db8::1]:53=7").unwrap();
        assert_eq!(m.addr, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(m.ports, (53, 53));
        for bad in [
            "tcp:10.0.0.1:80",
            "icmp:10.0.0.1:80=1",
            "tcp:10.0.0.1:90-80=1",
            "tcp:x:80=1",
        ] {
            assert!(parse_mark_rule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(same_prefix(ip("10.2.0.1"), ip("10.2.0.200"), 24));
        assert!(!same_prefix(ip("10.2.0.1"), ip("10.2.1.1"), 24));
        assert!(same_prefix(ip("2001:db8::1"), ip("2001:db8::ff"), 64));
        assert!(!same_prefix(ip("10.2.0.1"), ip("2001:db8::ff"), 0));
    }
}
