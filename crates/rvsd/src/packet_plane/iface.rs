//! One interface of the packet plane as rvsd sees it: its own module because the plane's
//! configuration, the keeper, the next-hop cache and the XDP loader all describe interfaces
//! the same way, and none of them should import another for it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    pub(super) fn addr4(&self) -> Option<Ipv4Addr> {
        self.addrs.iter().find_map(|(a, _)| match a {
            IpAddr::V4(v) => Some(*v),
            IpAddr::V6(_) => None,
        })
    }

    /// A global IPv6 address (link-local ones cannot source tunnels or ICMP errors to
    /// clients off-link).
    pub(super) fn addr6(&self) -> Option<Ipv6Addr> {
        self.addrs.iter().find_map(|(a, _)| match a {
            IpAddr::V6(v) if (v.segments()[0] & 0xffc0) != 0xfe80 => Some(*v),
            _ => None,
        })
    }

    /// True when `a` is on one of the interface's networks.
    pub fn on_link(&self, a: IpAddr) -> bool {
        self.addrs
            .iter()
            .any(|&(net, len)| same_prefix(net, a, len))
    }
}

/// True when `a` and `b` share their first `len` bits (false across families).
pub(super) fn same_prefix(a: IpAddr, b: IpAddr, len: u8) -> bool {
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
