//! Address families, protocols and the kernel's address folding.
//!
//! [`Family`] and [`Protocol`] are the one family and transport-protocol type of the workspace:
//! the control protocol, the keepalived configuration, the health checkers, the socket proxy and
//! the packet I/O layer all use these (with the `serde` feature, as the control protocol's
//! lower-case wire names `inet`/`inet6` and `tcp`/`udp`/`sctp`).

use std::net::IpAddr;

/// Address family of a service, destination or connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Family {
    /// IPv4 (`AF_INET` = 2).
    Inet,
    /// IPv6 (`AF_INET6` = 10).
    Inet6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Inet,
            IpAddr::V6(_) => Family::Inet6,
        }
    }
    /// The kernel's `AF_*` number.
    pub fn af(self) -> u16 {
        match self {
            Family::Inet => 2,
            Family::Inet6 => 10,
        }
    }
    /// Bytes in an address of this family.
    pub fn addr_len(self) -> usize {
        match self {
            Family::Inet => 4,
            Family::Inet6 => 16,
        }
    }
}

/// Transport protocol of a virtual service or connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Protocol {
    /// IANA protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
    /// From an IANA protocol number.
    pub fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }
    /// Name as ipvsadm and `/proc/net/ip_vs` print it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
    /// Lower-case name, as keepalived's messages and nftables write it.
    pub fn lower_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// The kernel's address fold used by sh, dh, mh, lblc and lblcr (`ip_vs_sh_hashkey` et al.):
/// IPv4 is the address as a host-order `u32`; IPv6 is the XOR of its four 32-bit words.
pub fn fold(addr: &IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(*a),
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            w(0) ^ w(4) ^ w(8) ^ w(12)
        }
    }
}

/// Apply a service's persistence netmask to a client address (docs/internals/persistence.md): IPv4 `mask` is the mask as a
/// host-order `u32` (255.255.255.255 = `0xffff_ffff`); IPv6 `mask` is a prefix length.
pub fn mask_addr(addr: &IpAddr, mask: u32) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4((u32::from(*a) & mask).into()),
        IpAddr::V6(a) => {
            let plen = mask.min(128);
            let bits = u128::from(*a);
            let m = if plen == 0 {
                0
            } else {
                u128::MAX << (128 - plen)
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_v4_is_host_order() {
        assert_eq!(fold(&"10.0.0.2".parse().unwrap()), 0x0a00_0002);
    }

    #[test]
    fn fold_v6_xors_words() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(fold(&a), 0x2001_0db8 ^ 1);
    }

    #[test]
    fn mask() {
        let a: IpAddr = "192.168.7.9".parse().unwrap();
        assert_eq!(
            mask_addr(&a, 0xffff_ff00),
            "192.168.7.0".parse::<IpAddr>().unwrap()
        );
        let b: IpAddr = "2001:db8:1:2::9".parse().unwrap();
        assert_eq!(mask_addr(&b, 48), "2001:db8:1::".parse::<IpAddr>().unwrap());
        assert_eq!(mask_addr(&b, 128), b);
        assert_eq!(mask_addr(&b, 0), "::".parse::<IpAddr>().unwrap());
    }
}
