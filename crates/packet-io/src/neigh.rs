//! Next-hop resolution from the kernel's route and neighbour tables over rtnetlink.
//!
//! The data plane transmits with AF_PACKET, below the kernel's neighbour subsystem, so it must
//! put the next hop's MAC into each frame itself. The kernel already knows the answer: the
//! route (`RTM_GETROUTE` for the destination, as `ip route get` does) gives the output
//! interface and gateway, the neighbour table (`RTM_GETNEIGH`) the gateway's MAC.
//!
//! # Probing a missing entry
//!
//! When the neighbour table has no usable entry we make the *kernel* resolve it, by sending
//! one small UDP datagram to the neighbour (port 9, discard) from a socket bound to the output
//! interface. The kernel queues the datagram, sends ARP requests / neighbour solicitations with
//! its own retransmit timers, and fills its table; we re-read the table until the entry is
//! usable or the deadline passes. We chose this over building ARP/NS frames ourselves because
//! it keeps one neighbour state machine on the host (the kernel's, with its NUD timers,
//! IPv6 link-local scopes, and `ip neigh` visibility), needs no raw socket in the resolver,
//! and works the same for IPv4 and IPv6. The cost is one datagram to the discard port of the
//! neighbour (typically answered with nothing or an ICMP port unreachable, both harmless).
//!
//! Entries in `STALE` state are used (as the kernel does) and a probe is fired so the kernel
//! revalidates them; it would not on its own, since our traffic bypasses it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, SocketAddrV6, UdpSocket};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr as NlAddr};
use socket2::{Domain, SockRef, Type};

use crate::Error;

/// The kernel's route to a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Output interface.
    pub ifindex: u32,
    /// Gateway, or `None` when the destination is on-link.
    pub gateway: Option<IpAddr>,
    /// Preferred source address, if the route has one.
    pub pref_src: Option<IpAddr>,
}

/// A resolved next hop: where to send a frame for some destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// Output interface.
    pub ifindex: u32,
    /// The neighbour's IP address (the gateway, or the destination itself when on-link).
    pub neighbour: IpAddr,
    /// The neighbour's MAC address: the destination MAC of the frame.
    pub mac: [u8; 6],
    /// Preferred source address of the route, if any.
    pub pref_src: Option<IpAddr>,
}

/// Tuning of a [`Resolver`].
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// How long a cached next hop is used before it is re-read from the kernel.
    pub ttl: Duration,
    /// How long [`Resolver::resolve`] waits for a probed neighbour.
    pub probe_timeout: Duration,
    /// Pause between re-reads of the neighbour table while waiting.
    pub poll_interval: Duration,
    /// UDP port the probe datagram goes to.
    pub probe_port: u16,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            ttl: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(3),
            poll_interval: Duration::from_millis(10),
            probe_port: 9,
        }
    }
}

/// The kernel's view of one neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NeighEntry {
    state: NeighbourState,
    mac: Option<[u8; 6]>,
}

impl NeighEntry {
    fn usable_mac(&self) -> Option<[u8; 6]> {
        match self.state {
            NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp => self.mac,
            _ => None,
        }
    }
}

/// Resolves destinations to next hops, with a cache. One per control thread; the data plane
/// reads copies of the results.
#[derive(Debug)]
pub struct Resolver {
    sock: Socket,
    seq: u32,
    cfg: ResolverConfig,
    cache: HashMap<IpAddr, (NextHop, Instant)>,
    buf: Vec<u8>,
}

/// Why a request failed: the kernel said no (errno), or the conversation itself failed.
enum ReqError {
    Nack(i32),
    Io(Error),
}

impl From<ReqError> for Error {
    fn from(e: ReqError) -> Error {
        match e {
            ReqError::Nack(errno) => {
                Error::Netlink(std::io::Error::from_raw_os_error(errno).to_string())
            }
            ReqError::Io(e) => e,
        }
    }
}

/// Upper bound on netlink datagrams read for one request, so a misbehaving peer cannot keep
/// us looping.
const MAX_REPLY_DATAGRAMS: usize = 100_000;

impl Resolver {
    /// Opens an rtnetlink socket in the calling thread's network namespace.
    pub fn new(cfg: ResolverConfig) -> Result<Self, Error> {
        let nl = |e: std::io::Error| Error::Netlink(format!("socket: {e}"));
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(nl)?;
        sock.bind_auto().map_err(nl)?;
        sock.connect(&NlAddr::new(0, 0)).map_err(nl)?;
        // The kernel answers route/neighbour requests synchronously; the timeout only guards
        // against waiting forever on a reply that never comes.
        SockRef::from(&sock)
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(nl)?;
        Ok(Resolver {
            sock,
            seq: 0,
            cfg,
            cache: HashMap::new(),
            buf: vec![0; 64 * 1024],
        })
    }

    /// Sends one request and collects the answers (all parts of a dump).
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        dump: bool,
    ) -> Result<Vec<RouteNetlinkMessage>, ReqError> {
        let io =
            |what: &str, e: std::io::Error| ReqError::Io(Error::Netlink(format!("{what}: {e}")));
        self.seq = self.seq.wrapping_add(1);
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
        hdr.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
        req.finalize();
        let mut out = vec![0; req.header.length as usize];
        req.serialize(&mut out);
        self.sock.send(&out, 0).map_err(|e| io("send", e))?;
        let mut answers = Vec::new();
        for _ in 0..MAX_REPLY_DATAGRAMS {
            let n = self
                .sock
                .recv(&mut &mut self.buf[..], 0)
                .map_err(|e| io("recv", e))?;
            let mut off = 0;
            while off < n {
                let msg: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&self.buf[off..n]).map_err(|e| {
                        ReqError::Io(Error::Netlink(format!("malformed reply: {e}")))
                    })?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == self.seq {
                    match msg.payload {
                        NetlinkPayload::Done(_) => return Ok(answers),
                        NetlinkPayload::Error(e) => match e.code {
                            None => return Ok(answers),
                            Some(code) => return Err(ReqError::Nack(-code.get())),
                        },
                        NetlinkPayload::InnerMessage(m) => {
                            answers.push(m);
                            if !dump {
                                return Ok(answers);
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
        Err(ReqError::Io(Error::Netlink("reply did not end".into())))
    }

    /// The kernel's route to `dst` (like `ip route get`).
    pub fn route(&mut self, dst: IpAddr) -> Result<Route, Error> {
        let mut m = RouteMessage::default();
        (m.header.address_family, m.header.destination_prefix_length) = match dst {
            IpAddr::V4(_) => (AddressFamily::Inet, 32),
            IpAddr::V6(_) => (AddressFamily::Inet6, 128),
        };
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
        let answers = match self.request(RouteNetlinkMessage::GetRoute(m), false) {
            Ok(a) => a,
            // The kernel's verdicts for "no route": unreachable/prohibit/blackhole routes and
            // an empty table.
            Err(ReqError::Nack(
                libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EACCES | libc::EINVAL,
            )) => return Err(Error::NoRoute(dst)),
            Err(e) => return Err(e.into()),
        };
        for a in answers {
            if let RouteNetlinkMessage::NewRoute(r) = a {
                if r.header.kind != RouteType::Unicast {
                    return Err(Error::NoRoute(dst));
                }
                let mut route = Route {
                    ifindex: 0,
                    gateway: None,
                    pref_src: None,
                };
                for attr in r.attributes {
                    match attr {
                        RouteAttribute::Oif(i) => route.ifindex = i,
                        RouteAttribute::Gateway(g) => route.gateway = route_ip(&g),
                        RouteAttribute::PrefSource(s) => route.pref_src = route_ip(&s),
                        _ => {}
                    }
                }
                if route.ifindex == 0 {
                    return Err(Error::NoRoute(dst));
                }
                return Ok(route);
            }
        }
        Err(Error::NoRoute(dst))
    }

    /// The kernel's neighbour entry for `addr` on `ifindex`.
    fn neighbour(&mut self, ifindex: u32, addr: IpAddr) -> Result<Option<NeighEntry>, Error> {
        let mut m = NeighbourMessage::default();
        m.header.family = match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.ifindex = ifindex;
        for a in self.request(RouteNetlinkMessage::GetNeighbour(m), true)? {
            let RouteNetlinkMessage::NewNeighbour(n) = a else {
                continue;
            };
            if n.header.ifindex != ifindex {
                continue;
            }
            let mut dst = None;
            let mut mac = None;
            for attr in &n.attributes {
                match attr {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                        dst = Some(IpAddr::V4(*a))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                        dst = Some(IpAddr::V6(*a))
                    }
                    NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                        mac = Some([l[0], l[1], l[2], l[3], l[4], l[5]])
                    }
                    _ => {}
                }
            }
            if dst == Some(addr) {
                return Ok(Some(NeighEntry {
                    state: n.header.state,
                    mac,
                }));
            }
        }
        Ok(None)
    }

    /// Makes the kernel resolve `addr` on `ifindex` by sending it one UDP datagram from a
    /// socket bound to that interface (see the module docs).
    pub fn probe(&self, ifindex: u32, addr: IpAddr) -> Result<(), Error> {
        let fail = |e: std::io::Error| Error::Netlink(format!("probe {addr}: {e}"));
        let index = NonZeroU32::new(ifindex).ok_or_else(|| Error::Config("ifindex 0".into()))?;
        let (domain, target) = match addr {
            IpAddr::V4(_) => (Domain::IPV4, SocketAddr::new(addr, self.cfg.probe_port)),
            // Link-local neighbours need the interface as scope.
            IpAddr::V6(a) => (
                Domain::IPV6,
                SocketAddr::V6(SocketAddrV6::new(a, self.cfg.probe_port, 0, ifindex)),
            ),
        };
        let s = socket2::Socket::new(domain, Type::DGRAM, None).map_err(fail)?;
        match addr {
            IpAddr::V4(_) => s.bind_device_by_index_v4(Some(index)),
            IpAddr::V6(_) => s.bind_device_by_index_v6(Some(index)),
        }
        .map_err(fail)?;
        s.set_nonblocking(true).map_err(fail)?;
        let udp: UdpSocket = s.into();
        match udp.send_to(b"rvs", target) {
            Ok(_) => Ok(()),
            // A previous failed resolution may be reported here; the datagram still kicked
            // the kernel's state machine, which is all we wanted.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EHOSTUNREACH) | Some(libc::EAGAIN) | Some(libc::ENOBUFS)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(fail(e)),
        }
    }

    /// The cached next hop of `dst`, if fresh; no system call.
    pub fn lookup(&self, dst: IpAddr, now: Instant) -> Option<NextHop> {
        self.cache
            .get(&dst)
            .filter(|(_, t)| now.duration_since(*t) < self.cfg.ttl)
            .map(|(nh, _)| *nh)
    }

    /// One look at the kernel without waiting: the next hop if the kernel has a usable
    /// entry, else `None` after firing a probe (call again later).
    pub fn try_resolve(&mut self, dst: IpAddr) -> Result<Option<NextHop>, Error> {
        let now = Instant::now();
        if let Some(nh) = self.lookup(dst, now) {
            return Ok(Some(nh));
        }
        let route = self.route(dst)?;
        let neighbour = route.gateway.unwrap_or(dst);
        let entry = self.neighbour(route.ifindex, neighbour)?;
        match entry.as_ref().and_then(NeighEntry::usable_mac) {
            Some(mac) => {
                if entry.is_some_and(|e| e.state == NeighbourState::Stale) {
                    self.probe(route.ifindex, neighbour)?;
                }
                let nh = NextHop {
                    ifindex: route.ifindex,
                    neighbour,
                    mac,
                    pref_src: route.pref_src,
                };
                self.cache.insert(dst, (nh, now));
                Ok(Some(nh))
            }
            None => {
                self.probe(route.ifindex, neighbour)?;
                Ok(None)
            }
        }
    }

    /// The next hop of `dst`: from the cache, else from the kernel, probing and waiting up to
    /// [`ResolverConfig::probe_timeout`] when the neighbour is unknown. Blocks: call it from a
    /// control thread, not a packet worker (workers use [`lookup`](Self::lookup) on a copy, or
    /// [`try_resolve`](Self::try_resolve)).
    pub fn resolve(&mut self, dst: IpAddr) -> Result<NextHop, Error> {
        let start = Instant::now();
        if let Some(nh) = self.try_resolve(dst)? {
            return Ok(nh);
        }
        let route = self.route(dst)?;
        let neighbour = route.gateway.unwrap_or(dst);
        let max_polls = (self.cfg.probe_timeout.as_nanos()
            / self.cfg.poll_interval.as_nanos().max(1))
        .min(1_000_000) as usize;
        for _ in 0..max_polls {
            if start.elapsed() >= self.cfg.probe_timeout {
                break;
            }
            std::thread::sleep(self.cfg.poll_interval);
            let entry = self.neighbour(route.ifindex, neighbour)?;
            if let Some(mac) = entry.as_ref().and_then(NeighEntry::usable_mac) {
                let nh = NextHop {
                    ifindex: route.ifindex,
                    neighbour,
                    mac,
                    pref_src: route.pref_src,
                };
                self.cache.insert(dst, (nh, Instant::now()));
                return Ok(nh);
            }
        }
        Err(Error::Unresolved {
            addr: neighbour,
            ifindex: route.ifindex,
            waited: start.elapsed(),
        })
    }

    /// Re-reads every cached entry older than the TTL (without waiting for probes); entries
    /// the kernel no longer resolves are dropped from the cache. Returns how many were
    /// refreshed.
    pub fn refresh(&mut self) -> usize {
        let now = Instant::now();
        let stale: Vec<IpAddr> = self
            .cache
            .iter()
            .filter(|(_, (_, t))| now.duration_since(*t) >= self.cfg.ttl)
            .map(|(d, _)| *d)
            .collect();
        let mut refreshed = 0;
        for dst in stale {
            self.cache.remove(&dst);
            if matches!(self.try_resolve(dst), Ok(Some(_))) {
                refreshed += 1;
            }
        }
        refreshed
    }

    /// Forgets the cached next hop of `dst` (e.g. after a route change).
    pub fn invalidate(&mut self, dst: IpAddr) {
        self.cache.remove(&dst);
    }

    /// Forgets every cached next hop.
    pub fn clear(&mut self) {
        self.cache.clear();
    }
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_states() {
        let mac = Some([2, 0, 0, 0, 0, 1]);
        for s in [
            NeighbourState::Reachable,
            NeighbourState::Stale,
            NeighbourState::Delay,
            NeighbourState::Probe,
            NeighbourState::Permanent,
        ] {
            assert_eq!(NeighEntry { state: s, mac }.usable_mac(), mac, "{s}");
        }
        for s in [
            NeighbourState::Incomplete,
            NeighbourState::Failed,
            NeighbourState::None,
        ] {
            assert_eq!(NeighEntry { state: s, mac }.usable_mac(), None, "{s}");
        }
        let no_mac = NeighEntry {
            state: NeighbourState::Reachable,
            mac: None,
        };
        assert_eq!(no_mac.usable_mac(), None);
    }
}
