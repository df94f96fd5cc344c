//! The data-plane entry point: one frame in, one verdict out (docs/internals/forwarding.md).
//!
//! [`Plane::process`] classifies a frame, asks the director ([`rvs_core::Director`]) what to do
//! with it, rewrites it in place with the primitives of this crate and returns a [`Verdict`]:
//! transmit on a port, send a frame the director originated (ARP / ND reply, ICMP error), pass
//! to the host stack, or drop with a counted [`DropReason`].
//!
//! The order of the kernel's hooks is kept (docs/internals/forwarding.md#where-the-director-sees-packets): a packet is first tried as a reply of a
//! NAT / full-NAT connection (`ip_vs_out_hook`, [`Director::packet_out`]), then as a
//! client→server packet (`ip_vs_in_hook`, [`Director::packet_in_fullnat`]). Statistics are
//! counted by the director exactly where the kernel counts them: requests in `packet_in`,
//! replies in `packet_out`, so DR and TUN connections keep OutPkts at 0 (docs/internals/connections.md#counters).
//!
//! What the plane does not do, and where it differs from the kernel:
//! - Fragments are reassembled before they are scheduled, as the kernel does
//!   (docs/internals/forwarding.md#fragments): those addressed to a VIP or full-NAT local
//!   address, and those from a NAT real server (its replies). The datagram is processed
//!   whole, then sent on in fragments no bigger than the largest one received
//!   ([`crate::reassembly`]). A fragment the reassembler refuses is counted as
//!   [`DropReason::Fragment`] and, by reason, in [`Plane::frag_counters`]; other fragments
//!   are passed to the host stack.
//! - TCP/UDP checksums of forwarded packets are not verified, as in the kernel (which checks
//!   them only when an application helper mangles the payload); the incremental update of
//!   RFC 1624 keeps a bad checksum bad, so the receiver still rejects it. The checksum of an
//!   ICMP error is verified before it is relayed (docs/internals/forwarding.md#icmp-errors).
//! - No route-PMTU cache toward real servers: a FRAG_NEEDED about a tunnel packet is answered
//!   from the MTU it reports (docs/internals/forwarding.md#icmp-errors "else the MTU reported in the ICMP").
//!
//! Nothing on the forward path allocates: the scratch buffer used to quote a packet inside a
//! generated ICMP error is allocated once with the plane.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_core::conn::flags as cflags;
use rvs_core::conn::state::Direction;
use rvs_core::conn::state::{sctp_event_chunk, TcpFlags};
use rvs_core::conn::{ConnId, Segment};
use rvs_core::director::{DropReason as CoreDrop, Packet, ReplyRoute, Route};
use rvs_core::laddr::LaddrPools;
use rvs_core::stats::Traffic;
use rvs_core::{Director, FwdMethod, Protocol, RandomSource, Time};

use crate::error::Error;
use crate::ethernet::{self, ethertype, MacAddr};
use crate::fastpath::{Offer, OfferAction, OfferEncap};
use crate::generate;
use crate::icmp_relay::{self, IcmpError};
use crate::nat::Endpoint;
use crate::parse::{parse, proto, verify_l4_checksum, Parsed, L3};
use crate::reassembly::{
    FragCounters, FragMemory, Insert, Reassembled, Reassembler, ReassemblyConfig,
};
use crate::tunnel::{self, TunnelCsum, TunnelParams, TunnelType};
use crate::xmit::{self, Egress, Method, Outcome};

mod pending;
mod syn_proxy;
pub use pending::Pending;
use pending::Xmit;
pub use syn_proxy::SynProxyCounters;

/// Index of a port (interface) of the plane, into [`PlaneConfig::ports`].
pub type PortId = u16;

/// One interface of the director.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// Its MAC address (source of everything sent on it).
    pub mac: MacAddr,
    /// Route MTU of the link (docs/internals/forwarding.md).
    pub mtu: u32,
    /// Its IPv4 address (DIP): source of tunnels and of ICMP errors about transit packets.
    pub addr4: Option<Ipv4Addr>,
    /// Its IPv6 address.
    pub addr6: Option<Ipv6Addr>,
}

/// Where to send a packet for an address: the I/O layer answers from the kernel's route and
/// neighbour tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// Egress port.
    pub port: PortId,
    /// MAC of the next hop (the host itself on a link, else the gateway).
    pub mac: MacAddr,
}

/// Next-hop lookup: a cache the I/O layer keeps filled (from the kernel's route and
/// neighbour tables there, a table in tests).
///
/// The plane asks it for every forwarded packet, inside a batch and under the data plane's
/// table lock, so an implementation answers from memory only: no system call, no waiting.
pub trait Neighbours {
    /// The cached next hop toward `dst`; `None` when the cache has none — *neighbour
    /// pending*, smoltcp's term: no route, or the neighbour is not resolved yet. The packet
    /// is then dropped as [`DropReason::NoRoute`], the plane keeps what it needs to send it
    /// later ([`Plane::take_pending`]), and the implementation notes `dst` so that it is
    /// resolved outside the batch (after which later packets find it).
    fn next_hop(&self, dst: IpAddr) -> Option<NextHop>;
}

/// A firewall-mark rule: what `nft ... meta mark set N` does in front of the kernel's IPVS,
/// so that fwmark services (`-f N`) see marked packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkRule {
    /// IP protocol, 0 for any.
    pub proto: u8,
    /// Destination address.
    pub addr: IpAddr,
    /// Destination ports, inclusive.
    pub ports: (u16, u16),
    /// Mark to set.
    pub mark: u32,
}

/// Static configuration of a plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaneConfig {
    /// Interfaces.
    pub ports: Vec<PortConfig>,
    /// Addresses the director owns and answers ARP / neighbour solicitations for, with the
    /// port they live on: the VIPs, and the full-NAT local addresses.
    pub owned: Vec<(IpAddr, PortId)>,
    /// Firewall-mark rules, first match wins.
    pub marks: Vec<MarkRule>,
    /// Full-NAT local addresses per service (`rvsadm --add-laddr -t VIP:port -z LIP`) and the
    /// local port range: each service's pool is the control side's instance, shared by every
    /// worker (one port cursor, one conflict counter per address; see `rvs_core::laddr`).
    pub laddrs: LaddrPools,
    /// `pmtu_disc` sysctl (docs/internals/sysctls.md, default 1).
    pub pmtu_disc: bool,
    /// Addresses of the director's services that it does not hold now: the VIPs and local
    /// addresses of VRRP instances that are not MASTER here (not in `owned`). TCP, UDP and
    /// SCTP packets to them are passed, new and existing connections alike: on a kernel
    /// BACKUP keepalived removed the address, so the packet is not local and IPVS's LOCAL_IN
    /// hook never sees it (a synced connection gets its packets only after the takeover).
    /// ICMP is not held back (the kernel's FORWARD hook relays errors for a connection too).
    /// Any order: the plane sorts it, to look every packet's destination up by binary search
    /// (a director MASTER for some instances and BACKUP for others may list many).
    pub standby: Vec<IpAddr>,
}

impl Default for PlaneConfig {
    fn default() -> Self {
        PlaneConfig {
            ports: Vec::new(),
            owned: Vec::new(),
            marks: Vec::new(),
            laddrs: LaddrPools::default(),
            pmtu_disc: true,
            standby: Vec::new(),
        }
    }
}

/// Why the plane dropped a frame (or consumed it and answered with an ICMP error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Truncated or inconsistent headers (parse error).
    Malformed,
    /// Bad IPv4 header checksum, or bad checksum of an ICMP error to relay (docs/internals/forwarding.md#icmp-errors).
    BadChecksum,
    /// A fragment the reassembler refused (overlap, duplicate, too big, inconsistent length;
    /// by reason in [`Plane::frag_counters`], docs/internals/forwarding.md#fragments).
    Fragment,
    /// The connection's destination was deleted (docs/internals/connections.md#when-a-packet-meets-an-existing-entry, `expire_nodest_conn` = 0).
    DestUnavailable,
    /// The drop_packet defence (docs/internals/sysctls.md#memory-pressure-defences).
    Defense,
    /// The persistence engine could not parse the packet (docs/internals/persistence.md#persistence-engines---pe-sip).
    PersistenceEngine,
    /// No connection entry could be created.
    NoMemory,
    /// The connection table holds `rvs_conn_max` entries (docs/internals/sysctls.md).
    TableFull,
    /// No full-NAT local address/port left.
    NoLocalAddress,
    /// No route or unresolved neighbour toward the next hop.
    NoRoute,
    /// TTL / hop limit ≤ 1: ICMP time exceeded sent (docs/internals/forwarding.md#common-steps-for-every-method).
    TtlExceeded,
    /// IPv4 DF packet too big: FRAG_NEEDED sent (docs/internals/forwarding.md#mtu).
    FragNeeded,
    /// IPv6 packet too big: PACKET_TOO_BIG sent (docs/internals/forwarding.md#mtu).
    PacketTooBig,
    /// Too big and silently dropped (IPv6 non-first fragment, relayed ICMPv6; docs/internals/forwarding.md#mtu).
    TooBig,
    /// No destination: ICMP port unreachable sent (`ip_vs_leave`, docs/internals/connections.md#life-of-an-entry).
    Rejected,
    /// The buffer has no room for the rewrite (tunnel headroom, generated reply).
    NoRoom,
    /// The rewrite refused the frame (unsupported protocol for NAT, tunnel MTU < minimum...).
    Rewrite,
    /// An ICMP error about one of the director's tunnel packets, consumed (docs/internals/forwarding.md#icmp-errors).
    TunnelIcmp,
    /// SYN proxy: an ACK to a proxied service that matches no connection and carries no
    /// valid SYN cookie (docs/internals/syn-flood.md).
    BadCookie,
    /// SYN proxy: a packet of a proxied connection before the real server answered its SYN.
    SynProxyWait,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 20] = [
        DropReason::Malformed,
        DropReason::BadChecksum,
        DropReason::Fragment,
        DropReason::DestUnavailable,
        DropReason::Defense,
        DropReason::PersistenceEngine,
        DropReason::NoMemory,
        DropReason::TableFull,
        DropReason::NoLocalAddress,
        DropReason::NoRoute,
        DropReason::TtlExceeded,
        DropReason::FragNeeded,
        DropReason::PacketTooBig,
        DropReason::TooBig,
        DropReason::Rejected,
        DropReason::NoRoom,
        DropReason::Rewrite,
        DropReason::TunnelIcmp,
        DropReason::BadCookie,
        DropReason::SynProxyWait,
    ];
    /// Stable snake_case name (metrics, fixtures).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::Fragment => "fragment",
            DropReason::DestUnavailable => "dest_unavailable",
            DropReason::Defense => "defense",
            DropReason::PersistenceEngine => "persistence_engine",
            DropReason::NoMemory => "no_memory",
            DropReason::TableFull => "table_full",
            DropReason::NoLocalAddress => "no_local_address",
            DropReason::NoRoute => "no_route",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::FragNeeded => "frag_needed",
            DropReason::PacketTooBig => "packet_too_big",
            DropReason::TooBig => "too_big",
            DropReason::Rejected => "rejected",
            DropReason::NoRoom => "no_room",
            DropReason::Rewrite => "rewrite",
            DropReason::TunnelIcmp => "tunnel_icmp",
            DropReason::BadCookie => "bad_cookie",
            DropReason::SynProxyWait => "syn_proxy_wait",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// What to do with the frame after [`Plane::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward `buf[start..start + len]` (rewritten in place) on `port`.
    Transmit {
        /// Egress port.
        port: PortId,
        /// Frame start in the buffer.
        start: usize,
        /// Frame length.
        len: usize,
    },
    /// Forward the IP packet in `buf[start..start + len]` on `port` in fragments of at most
    /// `mtu` bytes ([`crate::frag::fragment`]): too big and allowed to be fragmented
    /// (docs/internals/forwarding.md#mtu), or a reassembled datagram sent on in fragments no
    /// bigger than the ones received.
    Fragment {
        /// Egress port.
        port: PortId,
        /// Frame start.
        start: usize,
        /// Frame length.
        len: usize,
        /// IP MTU of the fragments.
        mtu: u32,
        /// Identification of IPv6 fragment headers (IPv4 fragments keep their header's).
        ident: u32,
    },
    /// Send the frame the director generated in `buf[start..start + len]` (ARP reply,
    /// neighbour advertisement, ICMP error) on `port`. The input frame is consumed.
    Local {
        /// Egress port.
        port: PortId,
        /// Frame start.
        start: usize,
        /// Frame length.
        len: usize,
    },
    /// Not the director's business: hand the frame, unchanged, to the host stack.
    Pass,
    /// A fragment kept for reassembly: nothing to send yet.
    Queued,
    /// Dropped, and counted under this reason.
    Drop(DropReason),
}

/// Per-reason drop counters of a plane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::ALL.len()],
}

impl DropCounters {
    /// The count for `r`.
    pub fn get(&self, r: DropReason) -> u64 {
        self.counts[r.index()]
    }
    /// Non-zero counters, in [`DropReason::ALL`] order.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|&r| (r, self.get(r)))
            .filter(|&(_, n)| n != 0)
    }
    fn add(&mut self, r: DropReason) {
        self.counts[r.index()] = self.counts[r.index()].wrapping_add(1);
    }
}

/// Size of the scratch buffer: the longest quote of a generated ICMPv6 error
/// ([`generate::ICMP6_MAX`]) plus an L2 header with two VLAN tags.
const SCRATCH: usize = generate::ICMP6_MAX + 32;

/// The packet data plane of one worker: the configuration of the machine it runs on (with the
/// services' full-NAT pools, shared with the other workers), drop counters and scratch space.
/// The director (services, connections, statistics) is *not* part of it: the daemon keeps it —
/// in rvsd, the [`Director`] of the shard that holds every packet-plane service, shared by all
/// workers (the socket proxy's services live in shards of their own) — and lends it to
/// [`Plane::process`]; the caller decides how it is locked (rvsd locks it once per received
/// batch of frames, not per frame).
pub struct Plane<N: Neighbours> {
    /// Route and neighbour resolution.
    pub neigh: N,
    cfg: PlaneConfig,
    drops: DropCounters,
    scratch: Box<[u8]>,
    ident: u16,
    /// Fast-path offers made since the last [`Plane::drain_offers`]; `None` when off.
    offers: Option<Vec<Offer>>,
    /// The flow of the packet being forwarded, when it may be offered (set by `ip`, taken by
    /// `send`).
    offer_ctx: Option<OfferCtx>,
    /// Fragments being reassembled.
    reasm: Reassembler,
    /// Set while the packet being processed is a datagram just reassembled.
    reasm_ctx: Option<Reassembled>,
    /// The SYN proxy's cookie key, derived from the director's seed on first use.
    cookie_key: Option<syn_proxy::KeyCache>,
    /// What the SYN proxy did.
    syn: SynProxyCounters,
    /// The transmission the last frame could not finish for want of a next hop.
    pending: Option<Pending>,
}

/// What `ip` knows of an offerable packet before it is rewritten.
#[derive(Clone, Copy)]
struct OfferCtx {
    conn: ConnId,
    dir: Direction,
    proto: u8,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    in_port: PortId,
}

/// A frame and where it lies in the caller's buffer.
#[derive(Clone, Copy)]
struct Frame {
    start: usize,
    end: usize,
    port_in: PortId,
}

impl<N: Neighbours> Plane<N> {
    /// A plane with configuration `cfg`.
    pub fn new(cfg: PlaneConfig, neigh: N) -> Plane<N> {
        Plane {
            neigh,
            cfg: prepared(cfg),
            drops: DropCounters::default(),
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            ident: 0,
            offers: None,
            offer_ctx: None,
            reasm: Reassembler::new(ReassemblyConfig::default()),
            reasm_ctx: None,
            cookie_key: None,
            syn: SynProxyCounters::default(),
            pending: None,
        }
    }

    /// Replaces the reassembly limits (dropping the datagrams being reassembled).
    pub fn set_reassembly(&mut self, cfg: ReassemblyConfig) {
        self.reasm = Reassembler::new(cfg);
    }

    /// Applies the reassembly memory bound to the total of every plane sharing `memory`
    /// (the workers of one director, as the kernel's bound is per namespace), with the
    /// default limits (dropping the datagrams being reassembled).
    pub fn share_reassembly_memory(&mut self, memory: std::sync::Arc<FragMemory>) {
        self.reasm = Reassembler::sharing(ReassemblyConfig::default(), memory);
    }

    /// What the reassembler counted (fragments, datagrams, drops by reason).
    pub fn frag_counters(&self) -> &FragCounters {
        self.reasm.counters()
    }

    /// Bytes held and datagrams being reassembled.
    pub fn frag_held(&self) -> (usize, usize) {
        (self.reasm.mem(), self.reasm.queues())
    }

    /// Gives up the datagrams not reassembled in time (also done at every fragment): call it
    /// when idle so that their memory is returned.
    pub fn expire_fragments(&mut self, now: Time) {
        self.reasm.expire(now);
    }

    /// Turns fast-path offers on or off (off by default): with them on, every forwarded
    /// packet of an established flow that a kernel fast path could forward the same way is
    /// described in an [`Offer`] (see [`crate::fastpath`]); collect them with
    /// [`Plane::drain_offers`].
    pub fn set_fast_path_offers(&mut self, on: bool) {
        self.offers = on.then(Vec::new);
    }

    /// Moves the offers made so far to the end of `out`.
    pub fn drain_offers(&mut self, out: &mut Vec<Offer>) {
        if let Some(o) = self.offers.as_mut() {
            out.append(o);
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PlaneConfig {
        &self.cfg
    }

    /// Replaces the configuration (after a table or interface change). Drop counters are
    /// kept; the full-NAT port cursors live in the services' pools, which the new
    /// configuration shares, so ports are not reused sooner than necessary.
    pub fn set_config(&mut self, cfg: PlaneConfig) {
        self.cfg = prepared(cfg);
    }

    /// The drop counters.
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Processes the Ethernet frame `buf[start..start + len]` received on `port_in` at `now`,
    /// asking `director` (and updating its connections and statistics).
    ///
    /// The frame is rewritten in place; tunnels grow it into the headroom before `start`
    /// (up to 40 + 8 + 12 bytes), and a generated reply is written from `buf[0]`, so give a
    /// buffer with about 64 bytes of headroom and room for `len + 48` bytes after it (an
    /// [`generate::ICMP6_MAX`]-byte error at most). The verdict says which bytes to send.
    // The director is lent per call (rvsd locks it once per batch), which makes the eighth
    // argument; a struct around the frame coordinates would only move them around.
    #[allow(clippy::too_many_arguments)]
    pub fn process(
        &mut self,
        director: &mut Director,
        buf: &mut [u8],
        start: usize,
        len: usize,
        port_in: PortId,
        now: Time,
        rng: &mut dyn RandomSource,
    ) -> Verdict {
        self.pending = None;
        let Some(end) = start.checked_add(len).filter(|&e| e <= buf.len()) else {
            return self.drop(DropReason::NoRoom);
        };
        let f = Frame {
            start,
            end,
            port_in,
        };
        let p = match parse(&buf[start..end]) {
            Ok(p) => p,
            Err(e) => return self.parse_error(e),
        };
        match p.l3 {
            L3::Arp => self.arp(buf, f, &p),
            L3::Ipv4 | L3::Ipv6 => self.ip(director, buf, f, &p, now, rng),
            L3::Other(_) => Verdict::Pass,
        }
    }

    fn drop(&mut self, r: DropReason) -> Verdict {
        self.drops.add(r);
        Verdict::Drop(r)
    }

    fn parse_error(&mut self, e: Error) -> Verdict {
        match e {
            // More VLAN tags than we walk, or nothing we know: the host stack decides.
            Error::Unsupported(_) => Verdict::Pass,
            Error::BadChecksum(_) => self.drop(DropReason::BadChecksum),
            _ => self.drop(DropReason::Malformed),
        }
    }

    fn owns(&self, a: IpAddr, port: Option<PortId>) -> bool {
        self.cfg
            .owned
            .iter()
            .any(|&(o, p)| o == a && port.is_none_or(|q| q == p))
    }

    /// An address of this machine: owned (VIP, local address) or an interface address.
    fn is_local(&self, a: IpAddr) -> bool {
        self.owns(a, None)
            || self
                .cfg
                .ports
                .iter()
                .any(|p| p.addr4.map(IpAddr::V4) == Some(a) || p.addr6.map(IpAddr::V6) == Some(a))
    }

    fn port_addr(&self, port: PortId, v6: bool) -> Option<IpAddr> {
        let p = self.cfg.ports.get(usize::from(port))?;
        if v6 {
            p.addr6.map(IpAddr::V6)
        } else {
            p.addr4.map(IpAddr::V4)
        }
    }

    fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }

    /// Writes the `i`-th announcement of the owned addresses into `out`: a gratuitous ARP
    /// for an IPv4 address, an unsolicited neighbour advertisement for an IPv6 one, sent on
    /// the port the address lives on (what the director sends when it starts or takes over
    /// the VIPs). Returns the port and the frame length, or `None` past the last address.
    /// Call with `i = 0, 1, ...` until `None`.
    pub fn announcement(&self, i: usize, out: &mut [u8]) -> Option<(PortId, usize)> {
        let &(addr, port) = self.cfg.owned.get(i)?;
        let mac = self.cfg.ports.get(usize::from(port))?.mac;
        let len = match addr {
            IpAddr::V4(a) => generate::gratuitous_arp(out, mac, a, &[]),
            IpAddr::V6(a) => generate::unsolicited_neighbor_advert(out, mac, a, &[]),
        };
        len.ok().map(|n| (port, n))
    }

    // ---------------------------------------------------------------------------------------
    // ARP and neighbour discovery

    /// Answers ARP requests for owned addresses on the port they live on; everything else
    /// ARP goes to the host stack.
    fn arp(&mut self, buf: &mut [u8], f: Frame, p: &Parsed) -> Verdict {
        let frame = &buf[f.start..f.end];
        let Some(tpa) = generate::arp_request_target(frame, p) else {
            return Verdict::Pass;
        };
        if !self.owns(IpAddr::V4(tpa), Some(f.port_in)) {
            return Verdict::Pass;
        }
        let Some(mac) = self.cfg.ports.get(usize::from(f.port_in)).map(|p| p.mac) else {
            return Verdict::Pass;
        };
        let n = (f.end - f.start).min(self.scratch.len());
        self.scratch[..n].copy_from_slice(&buf[f.start..f.start + n]);
        match generate::arp_reply(buf, &self.scratch[..n], p, mac) {
            Ok(len) => Verdict::Local {
                port: f.port_in,
                start: 0,
                len,
            },
            Err(_) => self.drop(DropReason::NoRoom),
        }
    }

    /// Answers a neighbour solicitation for an owned address (RFC 4861 §7.2.4).
    fn neighbour(&mut self, buf: &mut [u8], f: Frame, p: &Parsed) -> Option<Verdict> {
        let ns = generate::neighbor_solicitation(&buf[f.start..f.end], p)?;
        if !self.owns(IpAddr::V6(ns.target), Some(f.port_in)) {
            return None;
        }
        let mac = self.cfg.ports.get(usize::from(f.port_in))?.mac;
        let vlans = p.vlans;
        let nv = usize::from(p.vlan_count).min(vlans.len());
        Some(
            match generate::neighbor_advert_reply(buf, &ns, mac, &vlans[..nv]) {
                Ok(len) => Verdict::Local {
                    port: f.port_in,
                    start: 0,
                    len,
                },
                Err(_) => self.drop(DropReason::NoRoom),
            },
        )
    }

    // ---------------------------------------------------------------------------------------
    // IP

    fn ip(
        &mut self,
        director: &mut Director,
        buf: &mut [u8],
        f: Frame,
        p: &Parsed,
        now: Time,
        rng: &mut dyn RandomSource,
    ) -> Verdict {
        self.offer_ctx = None;
        let Some((src, dst)) = p.addrs(&buf[f.start..f.end]) else {
            return self.drop(DropReason::Malformed);
        };
        if p.l3 == L3::Ipv6 && p.proto == proto::ICMPV6 {
            if let Some(v) = self.neighbour(buf, f, p) {
                return v;
            }
        }
        // A VIP or local address the VRRP peer holds now: not this director's to serve (see
        // `PlaneConfig::standby`).
        if !matches!(p.proto, proto::ICMP | proto::ICMPV6)
            && self.cfg.standby.binary_search(&dst).is_ok()
        {
            return Verdict::Pass;
        }
        if p.is_fragment() {
            // docs/internals/forwarding.md#fragments: reassembled before scheduling, as the
            // kernel does. The host's own (DIP) traffic goes to its stack.
            return if self.wants_reassembly(director, p, src, dst) {
                self.reassemble(director, buf, f, p, now, rng)
            } else {
                Verdict::Pass
            };
        }
        let protocol = match p.proto {
            proto::TCP => Protocol::Tcp,
            proto::UDP => Protocol::Udp,
            proto::SCTP => Protocol::Sctp,
            proto::ICMP | proto::ICMPV6 => return self.icmp(director, buf, f, p, now),
            _ => return Verdict::Pass,
        };
        let frame = &buf[f.start..f.end];
        let Some((sport, dport)) = p.ports(frame) else {
            return self.drop(DropReason::Malformed);
        };
        let (seg, payload_off) = segment(frame, p);
        let fwmark = self.mark(p.proto, dst, dport);
        // The packet without its payload (which borrows the frame), for the SYN proxy that
        // rewrites the frame before the director sees the packet.
        let head: Packet<'static> = Packet {
            fwmark,
            proto: protocol,
            saddr: src,
            sport,
            daddr: dst,
            dport,
            seg,
            len: p.l3_len() as u32,
            payload: &[],
        };
        let payload = payload_off.min(p.l3_end)..p.l3_end;
        let pkt = Packet {
            payload: &frame[payload.clone()],
            ..head
        };
        let steady = self.offers.is_some() && steady_packet(frame, p, seg);
        let offer = |director: &Director, conn: ConnId, dir: Direction| {
            let established = match protocol {
                Protocol::Tcp => director
                    .conns
                    .get(conn)
                    .is_some_and(|c| c.state() == rvs_core::conn::state::tcp::ESTABLISHED),
                _ => true,
            };
            // A SYN-proxied connection's segments are shifted here: never by a fast path.
            (steady && established && !is_proxied(director, conn)).then_some(OfferCtx {
                conn,
                dir,
                proto: p.proto,
                src: (src, sport),
                dst: (dst, dport),
                in_port: f.port_in,
            })
        };
        // Out-hook before in-hook (docs/internals/forwarding.md#where-the-director-sees-packets: LOCAL_IN priorities 98 < 99; FORWARD replies).
        if let Some(r) = director.packet_out(&pkt, now) {
            self.offer_ctx = offer(director, r.conn, Direction::Output);
            if is_proxied(director, r.conn) {
                return self.syn_proxy_reply(director, buf, f, p, &r, now);
            }
            return self.reply(buf, f, p, &r);
        }
        if protocol == Protocol::Tcp && director.sys.syn_proxy {
            if let Some(v) = self.syn_proxy_open(director, buf, f, p, &head, now, rng) {
                return v;
            }
        }
        let pkt = Packet {
            payload: &buf[f.start..f.end][payload],
            ..head
        };
        let v = director.packet_in_fullnat(&pkt, now, rng, &mut self.cfg.laddrs);
        match v {
            rvs_core::Verdict::Forward(route) => {
                if let (Some(conn), Some(_)) = (route.conn, route.dest) {
                    // Not the packet that made a UDP connection: a flow of one datagram (a DNS
                    // query, every packet of a flood of new flows) gains nothing from a fast
                    // path, and building its offer and filing it in rvsd's per-flow table
                    // cost a new flow ~1 080 instructions more with `--xdp` on
                    // (docs/internals/packet-plane.md, "New flows with XDP on").
                    if !(route.new && protocol == Protocol::Udp) {
                        self.offer_ctx = offer(director, conn, Direction::Input);
                    }
                    if is_proxied(director, conn) {
                        if let Some(v) = self.syn_proxy_forward(director, buf, f, p, conn) {
                            return v;
                        }
                    }
                }
                self.forward(director, buf, f, p, &route)
            }
            other => self.refused(other, buf, f, p),
        }
    }

    /// The verdict for a packet the director did not forward.
    fn refused(&mut self, v: rvs_core::Verdict, buf: &mut [u8], f: Frame, p: &Parsed) -> Verdict {
        match v {
            rvs_core::Verdict::Forward(_) | rvs_core::Verdict::Pass => Verdict::Pass,
            rvs_core::Verdict::Reject => self.icmp_to_sender(buf, f, p, Gen::PortUnreach),
            rvs_core::Verdict::Drop(r) => self.drop(match r {
                CoreDrop::DestUnavailable => DropReason::DestUnavailable,
                CoreDrop::Defense => DropReason::Defense,
                CoreDrop::PersistenceEngine => DropReason::PersistenceEngine,
                CoreDrop::NoMemory => DropReason::NoMemory,
                CoreDrop::TableFull => DropReason::TableFull,
                CoreDrop::NoLocalAddress => DropReason::NoLocalAddress,
            }),
        }
    }

    /// Whether a fragment is IPVS traffic to reassemble: addressed to a VIP or local address
    /// (requests, full-NAT replies, ICMP errors), or a transport fragment from a NAT real
    /// server (a reply on its way back through the director, which the kernel's out-hook
    /// gathers too).
    fn wants_reassembly(&self, director: &Director, p: &Parsed, src: IpAddr, dst: IpAddr) -> bool {
        let transport = matches!(p.proto, proto::TCP | proto::UDP | proto::SCTP);
        if self.owns(dst, None) {
            return transport || matches!(p.proto, proto::ICMP | proto::ICMPV6);
        }
        transport
            && director
                .table
                .dests
                .iter()
                .any(|(_, d)| d.cfg.fwd == FwdMethod::Masq && d.cfg.addr == src)
    }

    /// Queues a fragment; once its datagram is complete, writes it over the fragment (the
    /// buffer must have room for it) and processes it like any packet.
    fn reassemble(
        &mut self,
        director: &mut Director,
        buf: &mut [u8],
        f: Frame,
        p: &Parsed,
        now: Time,
        rng: &mut dyn RandomSource,
    ) -> Verdict {
        let info = match self.reasm.insert(&buf[f.start..f.end], p, now) {
            Insert::Queued => return Verdict::Queued,
            Insert::Dropped(_) => return self.drop(DropReason::Fragment),
            Insert::Complete(info) => info,
        };
        let Some(len) = self.reasm.write_complete(&mut buf[f.start..]) else {
            return self.drop(DropReason::NoRoom);
        };
        let g = Frame {
            start: f.start,
            end: f.start + len,
            port_in: f.port_in,
        };
        let q = match parse(&buf[g.start..g.end]) {
            Ok(q) if !q.is_fragment() => q,
            Ok(_) => return self.drop(DropReason::Malformed),
            Err(e) => return self.parse_error(e),
        };
        self.reasm_ctx = Some(info);
        let v = self.ip(director, buf, g, &q, now, rng);
        self.reasm_ctx = None;
        v
    }

    fn mark(&self, protocol: u8, dst: IpAddr, dport: u16) -> u32 {
        self.cfg
            .marks
            .iter()
            .find(|m| {
                (m.proto == 0 || m.proto == protocol)
                    && m.addr == dst
                    && (m.ports.0..=m.ports.1).contains(&dport)
            })
            .map_or(0, |m| m.mark)
    }

    /// Client → server: transmit per the connection's forwarding method (docs/internals/forwarding.md).
    fn forward(
        &mut self,
        director: &mut Director,
        buf: &mut [u8],
        f: Frame,
        p: &Parsed,
        route: &Route,
    ) -> Verdict {
        let rs = Endpoint::new(route.daddr, route.dport);
        let xmit = match route.fwd {
            FwdMethod::Masq => Xmit::Rewrite(Method::Nat { dst: rs }),
            FwdMethod::Route => Xmit::Rewrite(Method::Dr),
            // docs/internals/forwarding.md#when-nothing-can-be-scheduled: bypass forwards to the original destination only if it is not one of
            // ours (the kernel requires a non-local unicast address).
            FwdMethod::Bypass if self.is_local(route.daddr) => return Verdict::Pass,
            FwdMethod::Bypass => Xmit::Rewrite(Method::Dr),
            FwdMethod::FullNat => match route.local {
                Some((la, lp)) => Xmit::Rewrite(Method::FullNat {
                    src: Endpoint::new(la, lp),
                    dst: rs,
                }),
                None => return self.drop(DropReason::NoLocalAddress),
            },
            FwdMethod::Tunnel => {
                let Some(t) = self.tunnel_params(director, buf, f, p, route) else {
                    return self.drop(DropReason::NoRoute);
                };
                Xmit::Tunnel(t)
            }
            // docs/internals/forwarding.md#when-nothing-can-be-scheduled: a local real server gets the packet through the host stack.
            FwdMethod::Local => return Verdict::Pass,
        };
        self.send(buf, f, p, xmit, route.daddr, false)
    }

    /// The tunnel toward the real server of `route`, from its configuration; the outer
    /// source and the MACs, which come from the next hop, are left unspecified
    /// ([`Xmit::Tunnel`]). `None` when the real server is gone.
    fn tunnel_params(
        &mut self,
        director: &mut Director,
        buf: &[u8],
        f: Frame,
        p: &Parsed,
        route: &Route,
    ) -> Option<TunnelParams> {
        let cfg = route
            .dest
            .and_then(|d| director.table.dests.get(d))
            .map(|d| d.cfg.tunnel)?;
        let src = if route.daddr.is_ipv6() {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let kind = match cfg.tun_type {
            rvs_core::dest::TunType::Ipip => TunnelType::Ipip,
            rvs_core::dest::TunType::Gue => TunnelType::Gue { port: cfg.port },
            rvs_core::dest::TunType::Gre => TunnelType::Gre,
        };
        let csum = match cfg.csum {
            rvs_core::dest::TunCsum::NoCsum => TunnelCsum::NoCsum,
            rvs_core::dest::TunCsum::Csum => TunnelCsum::Csum,
            rvs_core::dest::TunCsum::RemCsum => TunnelCsum::RemCsum,
        };
        let frame = &buf[f.start..f.end];
        let gue_sport = tunnel::gue_source_port(tunnel::flow_hash(frame, p));
        Some(TunnelParams {
            kind,
            csum,
            src,
            dst: route.daddr,
            dst_mac: [0; 6],
            src_mac: [0; 6],
            pmtu_disc: self.cfg.pmtu_disc,
            ident: self.next_ident(),
            gue_sport,
            // Frames from the wire carry complete checksums: never CHECKSUM_PARTIAL.
            inner_partial: None,
        })
    }

    /// Server → client of a NAT / full-NAT connection (`handle_response`, docs/internals/forwarding.md#where-the-director-sees-packets).
    fn reply(&mut self, buf: &mut [u8], f: Frame, p: &Parsed, r: &ReplyRoute) -> Verdict {
        let vip = Endpoint::new(r.vaddr, r.vport);
        let method = match r.fwd {
            FwdMethod::Masq => Method::NatReply { src: vip },
            FwdMethod::FullNat => Method::FullNat {
                src: vip,
                dst: Endpoint::new(r.caddr, r.cport),
            },
            // Replies of other methods that pass through are accepted unchanged (docs/internals/forwarding.md#where-the-director-sees-packets).
            _ => return Verdict::Pass,
        };
        self.send(buf, f, p, Xmit::Rewrite(method), r.caddr, false)
    }

    /// Keeps what it takes to send a frame later, when its next hop was missing (see
    /// [`Pending`]); not for a datagram the plane reassembled.
    fn keep_pending(&mut self, pending: Pending) {
        self.offer_ctx = None;
        if self.reasm_ctx.is_none() {
            self.pending = Some(pending);
        }
    }

    /// Sends the frame the plane generated in `buf[start..start + len]` (an Ethernet header
    /// without VLAN tags, its MACs still to write) toward `next`: writes the next hop's MAC
    /// and the egress port's. Without a next hop, the frame is dropped and kept for later
    /// ([`Xmit::Local`]).
    fn send_local(
        &mut self,
        buf: &mut [u8],
        port_in: PortId,
        start: usize,
        len: usize,
        next: IpAddr,
    ) -> Verdict {
        let Some(hop) = self.neigh.next_hop(next) else {
            self.keep_pending(Pending {
                next,
                port_in,
                start,
                len,
                xmit: Xmit::Local,
                relayed_icmp: false,
            });
            return self.drop(DropReason::NoRoute);
        };
        let Some(mac) = self.cfg.ports.get(usize::from(hop.port)).map(|q| q.mac) else {
            return self.drop(DropReason::NoRoute);
        };
        let Some(macs) = buf.get_mut(start..start + 12).filter(|_| len >= 14) else {
            return self.drop(DropReason::NoRoom);
        };
        macs[..6].copy_from_slice(&hop.mac);
        macs[6..].copy_from_slice(&mac);
        Verdict::Local {
            port: hop.port,
            start,
            len,
        }
    }

    /// Runs [`xmit::transmit`] toward `next` and turns its outcome into a verdict, answering
    /// TTL expiry and MTU refusals with ICMP errors to the sender. Without a next hop, the
    /// frame is dropped and what it takes to send it later is kept ([`Pending`]).
    fn send(
        &mut self,
        buf: &mut [u8],
        f: Frame,
        p: &Parsed,
        xmit: Xmit,
        next: IpAddr,
        relayed_icmp: bool,
    ) -> Verdict {
        if xmit == Xmit::Local {
            return self.send_local(buf, f.port_in, f.start, f.end - f.start, next);
        }
        let Some(hop) = self.neigh.next_hop(next) else {
            self.keep_pending(Pending {
                next,
                port_in: f.port_in,
                start: f.start,
                len: f.end - f.start,
                xmit,
                relayed_icmp,
            });
            return self.drop(DropReason::NoRoute);
        };
        let Some(port) = self.cfg.ports.get(usize::from(hop.port)).copied() else {
            return self.drop(DropReason::NoRoute);
        };
        let tun;
        let method = match xmit {
            Xmit::Rewrite(m) => m,
            // Sent by `send_local` above; this arm only completes the match.
            Xmit::Local => return self.send_local(buf, f.port_in, f.start, f.end - f.start, next),
            Xmit::Tunnel(mut t) => {
                let Some(src) = self.port_addr(hop.port, t.dst.is_ipv6()) else {
                    return self.drop(DropReason::NoRoute);
                };
                t.src = src;
                t.dst_mac = hop.mac;
                t.src_mac = port.mac;
                tun = t;
                Method::Tun(&tun)
            }
        };
        let eg = Egress {
            dst_mac: hop.mac,
            src_mac: port.mac,
            mtu: port.mtu,
            pmtu_disc: self.cfg.pmtu_disc,
            relayed_icmp,
            frag_max: self.reasm_ctx.map(|r| r.max_frag),
        };
        let ctx = self.offer_ctx.take().filter(|_| !relayed_icmp);
        // A reassembled datagram goes on in fragments no bigger than the largest received
        // (the kernel's `frag_max_size`; never below the minimum every host reassembles),
        // except inside a tunnel, whose outer packet is fragmented at the route MTU.
        let tunnel = matches!(method, Method::Tun(_));
        let resend = self.reasm_ctx.filter(|_| !tunnel).map(|r| {
            let floor = if p.l3 == L3::Ipv6 { 1280 } else { 576 };
            (port.mtu.min(r.max_frag.max(floor)), r.ident)
        });
        match xmit::transmit(buf, f.start, f.end - f.start, p, method, &eg) {
            Ok(Outcome::Send { start, len })
                if resend.is_some_and(|(m, _)| len - p.l2_len > m as usize)
                    && may_fragment(&buf[start..start + len], p) =>
            {
                let (mtu, ident) = resend.unwrap_or((port.mtu, 0));
                let ident = if p.l3 == L3::Ipv6 { ident } else { 0 };
                Verdict::Fragment {
                    port: hop.port,
                    start,
                    len,
                    mtu,
                    ident,
                }
            }
            Ok(Outcome::Send { start, len }) => {
                if let (Some(ctx), Some(offers)) = (ctx, self.offers.as_mut()) {
                    if let Some(o) = make_offer(ctx, method, hop.port, &eg) {
                        offers.push(o);
                    }
                }
                Verdict::Transmit {
                    port: hop.port,
                    start,
                    len,
                }
            }
            Ok(Outcome::Fragment { start, len, mtu }) => {
                // IPv6 fragment headers need an identification; IPv4 keeps the header's.
                let v6_out = if tunnel {
                    next.is_ipv6()
                } else {
                    p.l3 == L3::Ipv6
                };
                let ident = match (v6_out, self.reasm_ctx) {
                    (false, _) => 0,
                    (true, Some(r)) if !tunnel => r.ident,
                    (true, _) => u32::from(self.next_ident()),
                };
                Verdict::Fragment {
                    port: hop.port,
                    start,
                    len,
                    mtu: resend.map_or(mtu, |(m, _)| m.min(mtu)),
                    ident,
                }
            }
            Ok(Outcome::TimeExceeded) => self.icmp_to_sender(buf, f, p, Gen::TimeExceeded),
            Ok(Outcome::FragNeeded(m)) => self.icmp_to_sender(buf, f, p, Gen::FragNeeded(m)),
            Ok(Outcome::PacketTooBig(m)) => self.icmp_to_sender(buf, f, p, Gen::TooBig(m)),
            Ok(Outcome::Drop) => self.drop(DropReason::TooBig),
            Err(Error::NoRoom { .. }) => self.drop(DropReason::NoRoom),
            Err(_) => self.drop(DropReason::Rewrite),
        }
    }

    /// Answers the sender of the frame with an ICMP error, through the port and MAC it came
    /// from, and counts the frame as dropped for that reason. The source address is the
    /// packet's destination when it was addressed to the director (the VIP or a local
    /// address, as `icmp_send` does for local packets), else the address of the port it
    /// arrived on.
    fn icmp_to_sender(&mut self, buf: &mut [u8], f: Frame, p: &Parsed, g: Gen) -> Verdict {
        let reason = g.reason();
        self.drops.add(reason);
        let frame = &buf[f.start..f.end];
        let Some((_, dst)) = p.addrs(frame) else {
            return Verdict::Drop(reason);
        };
        let v6 = p.l3 == L3::Ipv6;
        let src = if self.is_local(dst) {
            Some(dst)
        } else {
            self.port_addr(f.port_in, v6)
        };
        let Some(src) = src else {
            return Verdict::Drop(reason);
        };
        let Some(mac) = self.cfg.ports.get(usize::from(f.port_in)).map(|p| p.mac) else {
            return Verdict::Drop(reason);
        };
        // Copy L2 header and the quoted packet aside: the reply is written over the buffer.
        let l2 = p.l2_len;
        let n = (p.l3_end).min(self.scratch.len());
        self.scratch[..n].copy_from_slice(&buf[f.start..f.start + n]);
        let et = if v6 { ethertype::IPV6 } else { ethertype::IPV4 };
        let Ok(h) = ethernet::write_reply_header(buf, &self.scratch[..n], l2, mac, et) else {
            return Verdict::Drop(reason);
        };
        let ident = self.next_ident();
        let orig = &self.scratch[l2..n];
        let out = &mut buf[h..];
        let written = match (src, g) {
            (IpAddr::V4(s), Gen::TimeExceeded) => generate::time_exceeded_v4(out, orig, s, ident),
            (IpAddr::V4(s), Gen::FragNeeded(m)) => generate::frag_needed_v4(out, orig, s, m, ident),
            (IpAddr::V4(s), Gen::PortUnreach) => generate::port_unreachable_v4(out, orig, s, ident),
            (IpAddr::V6(s), Gen::TimeExceeded) => generate::time_exceeded_v6(out, orig, s),
            (IpAddr::V6(s), Gen::TooBig(m)) => generate::packet_too_big(out, orig, s, m),
            (IpAddr::V6(s), Gen::PortUnreach) => generate::port_unreachable_v6(out, orig, s),
            _ => Ok(None),
        };
        match written {
            Ok(Some(len)) => Verdict::Local {
                port: f.port_in,
                start: 0,
                len: h + len,
            },
            // RFC 1122 / 4443 forbid an error here (e.g. about an ICMP error): just drop.
            _ => Verdict::Drop(reason),
        }
    }

    // ---------------------------------------------------------------------------------------
    // ICMP (docs/internals/forwarding.md#icmp-errors)

    fn icmp(
        &mut self,
        director: &mut Director,
        buf: &mut [u8],
        f: Frame,
        p: &Parsed,
        now: Time,
    ) -> Verdict {
        let e = match icmp_relay::icmp_error(&buf[f.start..f.end], p) {
            Ok(Some(e)) => e,
            // Echo and other informational messages: the host stack answers (docs/internals/forwarding.md#icmp-errors).
            Ok(None) => return Verdict::Pass,
            Err(_) => return self.drop(DropReason::Malformed),
        };
        if let Some(v) = self.icmp_tunnel(director, buf, f, p, &e) {
            return v;
        }
        let Some((qs, qd)) = e.quoted_ports else {
            return Verdict::Pass;
        };
        let conns = &director.conns;
        // A client's error about a reply we sent (quoted VIP:vport → client:cport):
        // the connection is found with the quote reversed (`ip_vs_in_icmp`).
        if let Some(id) = conns.lookup_in(e.quoted_proto, &e.quoted_dst, qd, &e.quoted_src, qs) {
            return self.icmp_in(director, buf, f, p, &e, id, now);
        }
        // A real server's error about a request we forwarded (`ip_vs_out_icmp`): quoted
        // client:cport → RS:dport (NAT) or LIP:lport → RS:dport (full-NAT).
        let out = conns
            .lookup_out(e.quoted_proto, &e.quoted_dst, qd, &e.quoted_src, qs)
            .or_else(|| {
                conns.lookup_fullnat_out(e.quoted_proto, &e.quoted_dst, qd, &e.quoted_src, qs)
            });
        if let Some(id) = out {
            return self.icmp_out(director, buf, f, p, &e, id, now);
        }
        Verdict::Pass
    }

    fn verify_icmp(&mut self, buf: &[u8], f: Frame, p: &Parsed) -> bool {
        verify_l4_checksum(&buf[f.start..f.end], p).is_ok()
    }

    #[allow(clippy::too_many_arguments)]
    fn icmp_in(
        &mut self,
        director: &mut Director,
        buf: &mut [u8],
        f: Frame,
        p: &Parsed,
        e: &IcmpError,
        id: ConnId,
        now: Time,
    ) -> Verdict {
        if !self.verify_icmp(buf, f, p) {
            return self.drop(DropReason::BadChecksum);
        }
        let Some(info) = director.conns.info(id) else {
            return Verdict::Pass;
        };
        let (daddr, dport, local, dest) = (info.daddr, info.dport, info.local, info.dest);
        let fwd = fwd_of(info.flags);
        let traffic = Traffic {
            in_pkts: 1,
            in_bytes: p.l3_len() as u64,
            out_pkts: 0,
            out_bytes: 0,
        };
        director.conn_traffic(id, traffic, now);
        let rs = Endpoint::new(daddr, dport);
        let frame = &mut buf[f.start..f.end];
        let rewritten = match fwd {
            FwdMethod::Masq => icmp_relay::icmp_nat_in(frame, p, e, rs),
            FwdMethod::FullNat => match local {
                Some((la, lp)) => icmp_relay::icmp_rewrite(
                    frame,
                    p,
                    e,
                    Some(la),
                    Some(daddr),
                    Some(rs),
                    Some(Endpoint::new(la, lp)),
                ),
                None => return self.drop(DropReason::NoLocalAddress),
            },
            FwdMethod::Local => return Verdict::Pass,
            _ => Ok(()),
        };
        if rewritten.is_err() {
            return self.drop(DropReason::Rewrite);
        }
        let xmit = match fwd {
            FwdMethod::Tunnel => {
                let route = Route {
                    conn: Some(id),
                    dest,
                    fwd,
                    daddr,
                    dport,
                    local,
                    new: false,
                };
                let Some(t) = self.tunnel_params(director, buf, f, p, &route) else {
                    return self.drop(DropReason::NoRoute);
                };
                Xmit::Tunnel(t)
            }
            // NAT / full-NAT after the rewrite, DR as is: MACs and TTL only.
            _ => Xmit::Rewrite(Method::Dr),
        };
        self.send(buf, f, p, xmit, daddr, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn icmp_out(
        &mut self,
        director: &mut Director,
        buf: &mut [u8],
        f: Frame,
        p: &Parsed,
        e: &IcmpError,
        id: ConnId,
        now: Time,
    ) -> Verdict {
        let Some(info) = director.conns.info(id) else {
            return Verdict::Pass;
        };
        let fwd = fwd_of(info.flags);
        let vip = Endpoint::new(info.vaddr, info.vport);
        let client = Endpoint::new(info.caddr, info.cport);
        if !matches!(fwd, FwdMethod::Masq | FwdMethod::FullNat) {
            return Verdict::Pass;
        }
        if !self.verify_icmp(buf, f, p) {
            return self.drop(DropReason::BadChecksum);
        }
        let traffic = Traffic {
            in_pkts: 0,
            in_bytes: 0,
            out_pkts: 1,
            out_bytes: p.l3_len() as u64,
        };
        director.conn_traffic(id, traffic, now);
        let frame = &mut buf[f.start..f.end];
        let rewritten = if fwd == FwdMethod::Masq {
            icmp_relay::icmp_nat_out(frame, p, e, vip)
        } else {
            icmp_relay::icmp_rewrite(
                frame,
                p,
                e,
                Some(vip.addr),
                Some(client.addr),
                Some(client),
                Some(vip),
            )
        };
        if rewritten.is_err() {
            return self.drop(DropReason::Rewrite);
        }
        self.send(buf, f, p, Xmit::Rewrite(Method::Dr), client.addr, true)
    }

    /// An ICMP error about one of our tunnel packets (addressed to an interface address,
    /// quoting IPIP / GRE / GUE toward a tunnel real server): tell the client (docs/internals/forwarding.md#icmp-errors).
    fn icmp_tunnel(
        &mut self,
        director: &mut Director,
        buf: &mut [u8],
        f: Frame,
        p: &Parsed,
        e: &IcmpError,
    ) -> Option<Verdict> {
        if !matches!(
            e.quoted_proto,
            proto::IPIP | proto::IPV6 | proto::GRE | proto::UDP
        ) {
            return None;
        }
        let (_, dst) = p.addrs(&buf[f.start..f.end])?;
        let ours =
            self.cfg.ports.iter().any(|q| {
                q.addr4.map(IpAddr::V4) == Some(dst) || q.addr6.map(IpAddr::V6) == Some(dst)
            });
        if !ours || e.quoted_src != dst {
            return None;
        }
        // The tunnel real server the quote was sent to, and its GUE port.
        let dest = director
            .table
            .dests
            .iter()
            .find(|(_, d)| d.cfg.fwd == FwdMethod::Tunnel && d.cfg.addr == e.quoted_dst);
        let (_, d) = dest?;
        let gue_port =
            (d.cfg.tunnel.tun_type == rvs_core::dest::TunType::Gue).then_some(d.cfg.tunnel.port);
        let t = icmp_relay::icmp_tunnel_inner(&buf[f.start..f.end], e, gue_port).ok()??;
        if !self.verify_icmp(buf, f, p) {
            return Some(self.drop(DropReason::BadChecksum));
        }
        let too_big = e.is_too_big(p.l3);
        if too_big && t.inner == L3::Ipv4 && !t.inner_df {
            // The client's packet may be fragmented: nothing to tell it.
            return Some(self.drop(DropReason::TunnelIcmp));
        }
        self.drops.add(DropReason::TunnelIcmp);
        // Quote only what the ICMP message holds (not the Ethernet padding after it).
        let inner_start = f.start + t.inner_off;
        let n = (f.start + p.l3_end)
            .saturating_sub(inner_start)
            .min(self.scratch.len());
        self.scratch[..n].copy_from_slice(&buf[inner_start..inner_start + n]);
        let et = if t.inner == L3::Ipv6 {
            ethertype::IPV6
        } else {
            ethertype::IPV4
        };
        // The error goes to the client from the VIP, through the client's next hop, whose
        // MACs `send_local` writes.
        let h = ethernet::write_header(buf, [0; 6], [0; 6], &[], et).ok()?;
        let ident = self.next_ident();
        let orig = &self.scratch[..n];
        let out = &mut buf[h..];
        let reported = if p.l3 == L3::Ipv4 {
            e.info & 0xffff
        } else {
            e.info
        };
        let mtu = tunnel_inner_mtu(p.l3, t.inner, reported);
        // Other errors are relayed with their type and code when the families agree; an
        // ICMPv4 error about a 6in4 packet (or the reverse) has no counterpart and is only
        // consumed.
        let written = match (t.inner_dst, too_big, p.l3) {
            (IpAddr::V4(s), true, _) => generate::frag_needed_v4(out, orig, s, mtu, ident),
            (IpAddr::V4(s), false, L3::Ipv4) => {
                generate::icmp4_error(out, orig, s, e.msg_type, e.code, 0, ident)
            }
            (IpAddr::V6(s), true, _) => generate::packet_too_big(out, orig, s, mtu),
            (IpAddr::V6(s), false, L3::Ipv6) => {
                generate::icmp6_error(out, orig, s, e.msg_type, e.code, 0)
            }
            _ => Ok(None),
        };
        Some(match written {
            Ok(Some(len)) => self.send_local(buf, f.port_in, 0, h + len, t.inner_src),
            _ => Verdict::Drop(DropReason::TunnelIcmp),
        })
    }
}

/// The MTU announced to the client after a FRAG_NEEDED / PACKET_TOO_BIG about a tunnel
/// packet (docs/internals/forwarding.md#icmp-errors): the reported MTU less the outer header, `tunnel_frag_needed_mtu` for an
/// IPv4 outer header (minus 20 above 88), minus 40 for an IPv6 outer header, and never below
/// 1280 for an IPv6 client.
fn tunnel_inner_mtu(outer: L3, inner: L3, reported: u32) -> u32 {
    let m = match outer {
        L3::Ipv4 => icmp_relay::tunnel_frag_needed_mtu(None, reported),
        _ => reported.saturating_sub(40),
    };
    if inner == L3::Ipv6 {
        m.max(1280)
    } else {
        m
    }
}

/// Whether the rewritten packet `frame` (classified as `p` before the rewrite, which kept its
/// headers where they were) may be cut into fragments: IPv6 always (the director fragments
/// what it reassembled), IPv4 without DF. A reassembled IPv4 datagram keeps DF only when its
/// sender set it on the largest fragment; it then goes whole when it fits the link.
fn may_fragment(frame: &[u8], p: &Parsed) -> bool {
    match p.l3 {
        L3::Ipv4 => frame.get(p.l2_len + 6).is_some_and(|b| b & 0x40 == 0),
        _ => true,
    }
}

/// What ICMP error to generate.
#[derive(Debug, Clone, Copy)]
enum Gen {
    TimeExceeded,
    FragNeeded(u32),
    TooBig(u32),
    PortUnreach,
}

impl Gen {
    fn reason(self) -> DropReason {
        match self {
            Gen::TimeExceeded => DropReason::TtlExceeded,
            Gen::FragNeeded(_) => DropReason::FragNeeded,
            Gen::TooBig(_) => DropReason::PacketTooBig,
            Gen::PortUnreach => DropReason::Rejected,
        }
    }
}

/// Whether connection `id` was opened by the SYN proxy (its segments are shifted).
fn is_proxied(director: &Director, id: ConnId) -> bool {
    director
        .conns
        .get(id)
        .is_some_and(|c| c.flags() & cflags::SYNPROXY != 0)
}

/// The forwarding method in a connection's flags.
fn fwd_of(fl: u32) -> FwdMethod {
    match fl & cflags::FWD_MASK {
        cflags::MASQ => FwdMethod::Masq,
        cflags::LOCALNODE => FwdMethod::Local,
        cflags::TUNNEL => FwdMethod::Tunnel,
        cflags::DROUTE => FwdMethod::Route,
        cflags::BYPASS => FwdMethod::Bypass,
        _ => FwdMethod::FullNat,
    }
}

/// The state-machine input of a transport header and the offset of its payload.
/// Whether a packet is one whose flow a fast path may take over: TCP without SYN/FIN/RST or
/// UDP with a checksum, no VLAN tag, IPv4 without options, IPv6 without extension headers.
fn steady_packet(frame: &[u8], p: &Parsed, seg: Segment) -> bool {
    let plain_ip = match p.l3 {
        L3::Ipv4 => p.l4_off == p.l2_len + 20,
        L3::Ipv6 => p.l4_off == p.l2_len + 40,
        _ => false,
    };
    let steady_l4 = match seg {
        Segment::Tcp(fl) => !(fl.syn || fl.fin || fl.rst),
        Segment::Udp => frame
            .get(p.l4_off + 6..p.l4_off + 8)
            .is_some_and(|c| c != [0, 0]),
        _ => false,
    };
    p.vlan_count == 0 && plain_ip && steady_l4
}

/// The offer for a packet just sent whole with `method` through `eg` on `port`; `None` for a
/// rewrite the fast path does not do (a tunnel whose inner checksum was partial, which the
/// plane never sees from the wire).
fn make_offer(ctx: OfferCtx, method: Method<'_>, port: PortId, eg: &Egress) -> Option<Offer> {
    let (action, dst_mac, src_mac, max_len) = match method {
        Method::Nat { dst } => (
            OfferAction::Rewrite {
                src: None,
                dst: Some((dst.addr, dst.port)),
            },
            eg.dst_mac,
            eg.src_mac,
            eg.mtu,
        ),
        Method::NatReply { src } => (
            OfferAction::Rewrite {
                src: Some((src.addr, src.port)),
                dst: None,
            },
            eg.dst_mac,
            eg.src_mac,
            eg.mtu,
        ),
        Method::FullNat { src, dst } => (
            OfferAction::Rewrite {
                src: Some((src.addr, src.port)),
                dst: Some((dst.addr, dst.port)),
            },
            eg.dst_mac,
            eg.src_mac,
            eg.mtu,
        ),
        Method::Dr => (
            OfferAction::Rewrite {
                src: None,
                dst: None,
            },
            eg.dst_mac,
            eg.src_mac,
            eg.mtu,
        ),
        Method::Tun(t) => {
            // The inner checksum is complete here (see `tunnel_params`), so no remote
            // checksum option was added and `remcsum` sends what `csum` sends.
            let encap = match (t.kind, t.csum) {
                (TunnelType::Ipip, _) => OfferEncap::Ipip,
                (TunnelType::Gue { port }, c) => OfferEncap::Gue {
                    sport: t.gue_sport,
                    port,
                    csum: c != TunnelCsum::NoCsum,
                },
                (TunnelType::Gre, TunnelCsum::NoCsum) => OfferEncap::Gre { csum: false },
                (TunnelType::Gre, TunnelCsum::Csum) => OfferEncap::Gre { csum: true },
                (TunnelType::Gre, TunnelCsum::RemCsum) => return None,
            };
            if t.inner_partial.is_some() {
                return None;
            }
            let mtu = tunnel::tunnel_mtu(eg.mtu, t.dst.is_ipv6(), t.kind, t.csum, false).ok()?;
            (
                OfferAction::Tunnel {
                    src: t.src,
                    dst: t.dst,
                    pmtu_disc: t.pmtu_disc,
                    encap,
                },
                t.dst_mac,
                t.src_mac,
                mtu,
            )
        }
    };
    Some(Offer {
        conn: ctx.conn,
        dir: ctx.dir,
        proto: ctx.proto,
        src: ctx.src,
        dst: ctx.dst,
        action,
        port,
        in_port: ctx.in_port,
        dst_mac,
        src_mac,
        max_len: u16::try_from(max_len).unwrap_or(u16::MAX),
    })
}

/// `cfg` as the plane keeps it: the standby addresses sorted for their binary search.
fn prepared(mut cfg: PlaneConfig) -> PlaneConfig {
    cfg.standby.sort_unstable();
    cfg.standby.dedup();
    cfg
}

fn segment(frame: &[u8], p: &Parsed) -> (Segment, usize) {
    let l4 = p.l4_off;
    match p.proto {
        proto::TCP => {
            let fl = frame.get(l4 + 13).copied().unwrap_or(0);
            let doff = usize::from(frame.get(l4 + 12).copied().unwrap_or(0x50) >> 4) * 4;
            (
                Segment::Tcp(TcpFlags {
                    fin: fl & 0x01 != 0,
                    syn: fl & 0x02 != 0,
                    rst: fl & 0x04 != 0,
                    ack: fl & 0x10 != 0,
                }),
                l4 + doff,
            )
        }
        proto::UDP => (Segment::Udp, l4 + 8),
        proto::SCTP => {
            // The first chunk decides, except COOKIE_ECHO/ACK followed by ABORT
            // (`sctp_event_chunk`).
            let first = frame.get(l4 + 12).copied().unwrap_or(0);
            let clen = frame
                .get(l4 + 14..l4 + 16)
                .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
            let next = l4 + 12 + ((clen + 3) & !3);
            let second = (clen >= 4 && next < p.l3_end)
                .then(|| frame.get(next).copied())
                .flatten();
            (Segment::Sctp(sctp_event_chunk(first, second)), l4 + 12)
        }
        _ => (Segment::Other, l4),
    }
}
