//! The few rtnetlink requests the VRRP driver needs: interface index and link state, the
//! interface's primary address, and VIP add/remove with keepalived's `label` (docs/internals/vrrp.md#configuration `virtual_ipaddress`: `<IP>/<len> [brd] [dev] [scope] [label <LABEL>]`).
//!
//! Requests are synchronous: the kernel answers address and link requests at once, and the read
//! timeout only guards against a reply that never comes. The socket belongs to the network
//! namespace rvsd runs in.

use std::net::IpAddr;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr as NlAddr};
use socket2::SockRef;

/// Upper bound on reply datagrams for one dump (a host with that many addresses is not one we
/// can serve anyway); keeps every loop bounded.
const MAX_REPLY_DATAGRAMS: usize = 10_000;

/// An rtnetlink socket.
pub struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// Link state of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// `IFF_UP` and `IFF_RUNNING` (keepalived's "interface up": administratively up with carrier).
    pub up: bool,
}

/// One address to add or remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrSpec {
    /// Interface index.
    pub index: u32,
    /// Address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
    /// `label` (IPv4 only; the kernel requires it to start with the interface name).
    pub label: Option<String>,
    /// `brd` (IPv4).
    pub broadcast: Option<std::net::Ipv4Addr>,
    /// `scope`.
    pub scope: AddressScope,
}

impl Rtnl {
    /// Open a socket in the current network namespace.
    pub fn open() -> std::io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&NlAddr::new(0, 0))?;
        SockRef::from(&sock).set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(Rtnl {
            sock,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Send one request; collect the answers (all parts of a dump). A NACK is `Err` with the
    /// errno. Also used by the route announcer (`crate::announce`).
    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, std::io::Error> {
        self.seq = self.seq.wrapping_add(1);
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | flags;
        hdr.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
        req.finalize();
        let mut out = vec![0; req.header.length as usize];
        req.serialize(&mut out);
        self.sock.send(&out, 0)?;
        let dump = flags & NLM_F_DUMP != 0;
        let mut answers = Vec::new();
        for _ in 0..MAX_REPLY_DATAGRAMS {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            let mut off = 0;
            while off < n {
                let msg: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&self.buf[off..n]).map_err(|e| {
                        std::io::Error::other(format!("malformed rtnetlink reply: {e}"))
                    })?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == self.seq {
                    match msg.payload {
                        NetlinkPayload::Done(_) => return Ok(answers),
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(answers),
                                Some(code) => Err(std::io::Error::from_raw_os_error(-code.get())),
                            }
                        }
                        NetlinkPayload::InnerMessage(m) => {
                            answers.push(m);
                            if !dump && flags & NLM_F_ACK == 0 {
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
        Err(std::io::Error::other("rtnetlink reply did not end"))
    }

    /// Index and state of interface `name`.
    pub fn link(&mut self, name: &str) -> std::io::Result<Link> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        for a in self.request(RouteNetlinkMessage::GetLink(m), 0)? {
            if let RouteNetlinkMessage::NewLink(l) = a {
                let f = l.header.flags;
                return Ok(Link {
                    index: l.header.index,
                    up: f.contains(LinkFlags::Up) && f.contains(LinkFlags::Running),
                });
            }
        }
        Err(std::io::Error::other(format!("no interface {name}")))
    }

    /// Addresses of the family of `v6` on interface `index`, in the kernel's order (the primary
    /// first).
    pub fn addresses(&mut self, index: u32, v6: bool) -> std::io::Result<Vec<(IpAddr, u8)>> {
        let mut m = AddressMessage::default();
        m.header.family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        m.header.index = index;
        let mut out = Vec::new();
        for a in self.request(RouteNetlinkMessage::GetAddress(m), NLM_F_DUMP)? {
            let RouteNetlinkMessage::NewAddress(a) = a else {
                continue;
            };
            if a.header.index != index {
                continue;
            }
            // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on p2p links).
            let local = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let addr = local.or_else(|| {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(ip) = addr {
                out.push((ip, a.header.prefix_len));
            }
        }
        Ok(out)
    }

    fn addr_message(spec: &AddrSpec) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = match spec.addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.prefix_len = spec.prefix;
        m.header.index = spec.index;
        m.header.scope = spec.scope;
        m.attributes.push(AddressAttribute::Local(spec.addr));
        m.attributes.push(AddressAttribute::Address(spec.addr));
        if let (IpAddr::V4(_), Some(l)) = (spec.addr, &spec.label) {
            m.attributes.push(AddressAttribute::Label(l.clone()));
        }
        if let Some(b) = spec.broadcast {
            m.attributes.push(AddressAttribute::Broadcast(b));
        }
        if spec.addr.is_ipv6() {
            // A VIP moves between routers: duplicate address detection would only delay it
            // (keepalived adds IPv6 VIPs with IFA_F_NODAD too).
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        m
    }

    /// Add an address (`ip addr add … label …`). Already present is success (a restarted
    /// director finds its VIP where a killed one left it).
    pub fn add_address(&mut self, spec: &AddrSpec) -> std::io::Result<()> {
        let m = Self::addr_message(spec);
        match self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Remove an address: `Ok(true)` if it was there, `Ok(false)` if not.
    pub fn del_address(&mut self, spec: &AddrSpec) -> std::io::Result<bool> {
        let m = Self::addr_message(spec);
        match self.request(RouteNetlinkMessage::DelAddress(m), NLM_F_ACK) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(false),
            r => r.map(|_| true),
        }
    }
}

/// keepalived's `scope` words (`ip`'s names).
pub fn parse_scope(s: Option<&str>) -> AddressScope {
    match s {
        Some("host") => AddressScope::Host,
        Some("link") => AddressScope::Link,
        Some("site") => AddressScope::Site,
        Some("nowhere") => AddressScope::Nowhere,
        Some(n) => n
            .parse::<u8>()
            .map(AddressScope::Other)
            .unwrap_or(AddressScope::Universe),
        None => AddressScope::Universe,
    }
}
