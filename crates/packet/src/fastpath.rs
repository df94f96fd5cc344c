//! Offers to a kernel fast path (rvsd's XDP program): when the plane forwards a packet of an
//! established connection, it describes the rewrite it just did — keyed by the packet's
//! 5-tuple as it arrived — so that later packets of the same flow and direction can get the
//! same rewrite without reaching userspace.
//!
//! An offer is made only for a packet that changed nothing in rvs-core's model and whose
//! followers would not either: TCP without SYN/FIN/RST on an ESTABLISHED connection, UDP with a
//! checksum; no VLAN tag, IPv4 options or IPv6 extension headers; sent whole (not fragmented);
//! NAT, FULLNAT, DR or a tunnel (IP-in-IP, GUE, GRE, each with its checksum option). The fast
//! path still passes to userspace every packet
//! that could change a state (see docs/internals/packet-plane.md#the-xdp-fast-path), so the
//! offer is what the plane *would* do with the flow's ordinary packets, nothing more.

use core::net::IpAddr;

use rvs_core::conn::state::{existing_conn_action, Direction, ExistingAction};
use rvs_core::conn::ConnId;
use rvs_core::Director;

use crate::ethernet::MacAddr;
use crate::plane::PortId;

/// The rewrite of an offered flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferAction {
    /// Replace the source and/or destination (NAT: one of them; FULLNAT: both; DR: neither).
    Rewrite {
        /// New source address and port.
        src: Option<(IpAddr, u16)>,
        /// New destination address and port.
        dst: Option<(IpAddr, u16)>,
    },
    /// Tunnel encapsulation with this outer header (its family is the destination's).
    Tunnel {
        /// Outer source.
        src: IpAddr,
        /// Outer destination.
        dst: IpAddr,
        /// `pmtu_disc`: DF copied from an IPv4 inner header.
        pmtu_disc: bool,
        /// What goes between the outer IP header and the inner packet.
        encap: OfferEncap,
    },
}

/// The headers of an offered tunnel between its outer IP header and the inner packet.
///
/// `--tun-remcsum` is offered as [`OfferEncap::Gue`] with `csum`: the plane adds the remote
/// checksum option only to a packet whose inner checksum is partial, and such a packet is
/// never handed to a fast path (it completes the checksum first, or passes it to the plane),
/// so what a fast path sends for the flow is a plain GUE header with the UDP checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferEncap {
    /// IP-in-IP (4in4, 6in4, 4in6, 6in6): nothing.
    Ipip,
    /// GUE: UDP from `sport` to `port`, then a 4-byte GUE header.
    Gue {
        /// The GUE source port of the inner flow (stable per flow).
        sport: u16,
        /// The GUE port (`--tun-port`).
        port: u16,
        /// The UDP checksum is computed (`--tun-csum`, `--tun-remcsum`); else 0.
        csum: bool,
    },
    /// GRE (version 0, no key or sequence).
    Gre {
        /// With the C bit and the checksum word (`--tun-csum`).
        csum: bool,
    },
}

/// One flow direction the plane forwarded, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// The connection in the director.
    pub conn: ConnId,
    /// Client → server or back.
    pub dir: Direction,
    /// IP protocol (TCP or UDP).
    pub proto: u8,
    /// Source of the packets as they arrive.
    pub src: (IpAddr, u16),
    /// Destination of the packets as they arrive.
    pub dst: (IpAddr, u16),
    /// The rewrite.
    pub action: OfferAction,
    /// Egress port.
    pub port: PortId,
    /// The port the offered packet came in on (the flow direction's ingress): a fast path may
    /// take the flow's frames that arrive there at that port's own MAC without looking the
    /// port's MAC up again.
    pub in_port: PortId,
    /// Next hop's MAC.
    pub dst_mac: MacAddr,
    /// Egress port's MAC.
    pub src_mac: MacAddr,
    /// Largest (inner) L3 length sent whole: longer packets are the plane's (fragmentation,
    /// ICMP errors).
    pub max_len: u16,
}

/// Whether connection `offer.conn` is still the one the offer was made for (ids are reused
/// once an entry expires): same protocol, same client, same real server or local address.
/// Traffic a fast path forwarded for the offer belongs to the connection only then.
pub fn same_connection(director: &Director, offer: &Offer) -> bool {
    let Some(c) = director.conns.info(offer.conn) else {
        return false;
    };
    if c.protocol != offer.proto || c.flags & rvs_core::conn::flags::TEMPLATE != 0 {
        return false;
    }
    // Port-0 and firewall-mark connections keep the packet's ports; compare what is set.
    let same = |a: (IpAddr, u16), b: (IpAddr, u16)| a.0 == b.0 && (b.1 == 0 || a.1 == b.1);
    let client = (c.caddr, c.cport);
    match offer.dir {
        Direction::Input => same(offer.src, client),
        Direction::Output => {
            same(offer.src, (c.daddr, c.dport))
                && (same(offer.dst, client) || c.local.is_some_and(|l| same(offer.dst, l)))
        }
    }
}

/// Whether `offer` still describes its connection as rvs-core has it now: the
/// [`same_connection`], a TCP connection still ESTABLISHED, and a packet of it would still be
/// forwarded to its real server (the destination was not deleted or made unavailable). A fast
/// path removes an offer as soon as this turns false, so that the flow's packets meet rvs-core
/// again.
pub fn still_valid(director: &Director, offer: &Offer) -> bool {
    if !same_connection(director, offer) {
        return false;
    }
    let established = director.conns.get(offer.conn).is_some_and(|c| {
        c.protocol() != crate::parse::proto::TCP
            || c.state() == rvs_core::conn::state::tcp::ESTABLISHED
    });
    established
        && director
            .conns
            .existing(offer.conn, &director.table)
            .is_some_and(|ex| {
                existing_conn_action(&director.sys.conn, &ex, false, false) == ExistingAction::Use
            })
}
