//! Frame builders (etherparse) and the etherparse cross-check used by the tests.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const DIR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];

pub const CIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const VIP4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
pub const RIP4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
pub const LIP4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 250);
pub const DIP4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
pub const CIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x10);
pub const RIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
pub const LIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0xfa);
pub const DIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fam {
    V4,
    V6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
}

pub fn cip(f: Fam) -> IpAddr {
    match f {
        Fam::V4 => CIP4.into(),
        Fam::V6 => CIP6.into(),
    }
}
pub fn vip(f: Fam) -> IpAddr {
    match f {
        Fam::V4 => VIP4.into(),
        Fam::V6 => VIP6.into(),
    }
}
pub fn rip(f: Fam) -> IpAddr {
    match f {
        Fam::V4 => RIP4.into(),
        Fam::V6 => RIP6.into(),
    }
}
pub fn lip(f: Fam) -> IpAddr {
    match f {
        Fam::V4 => LIP4.into(),
        Fam::V6 => LIP6.into(),
    }
}
pub fn dip(f: Fam) -> IpAddr {
    match f {
        Fam::V4 => DIP4.into(),
        Fam::V6 => DIP6.into(),
    }
}

/// Builds an Ethernet frame `src:sport -> dst:dport` with etherparse.
#[allow(clippy::too_many_arguments)]
pub fn build_addr(
    src: IpAddr,
    dst: IpAddr,
    p: Proto,
    sport: u16,
    dport: u16,
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, DIR_MAC);
    let mut out = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let b = eth.ipv4(s.octets(), d.octets(), ttl);
            match p {
                Proto::Tcp => b
                    .tcp(sport, dport, 1000, 65535)
                    .ack(7)
                    .write(&mut out, payload),
                Proto::Udp => b.udp(sport, dport).write(&mut out, payload),
                Proto::Icmp => b.icmpv4_echo_request(sport, dport).write(&mut out, payload),
            }
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let b = eth.ipv6(s.octets(), d.octets(), ttl);
            match p {
                Proto::Tcp => b
                    .tcp(sport, dport, 1000, 65535)
                    .syn()
                    .write(&mut out, payload),
                Proto::Udp => b.udp(sport, dport).write(&mut out, payload),
                Proto::Icmp => b.icmpv6_echo_request(sport, dport).write(&mut out, payload),
            }
        }
        _ => panic!("mixed families"),
    }
    .expect("etherparse builds");
    out
}

/// A client request to the VIP.
pub fn build(f: Fam, p: Proto, payload: &[u8]) -> Vec<u8> {
    build_addr(cip(f), vip(f), p, 40000, 80, 64, payload)
}

/// Inserts `n` 802.1Q tags (the first 802.1ad when n == 2) after the MACs.
pub fn add_vlans(frame: &[u8], n: usize) -> Vec<u8> {
    let mut out = frame[..12].to_vec();
    for i in 0..n {
        let tpid: u16 = if n == 2 && i == 0 { 0x88a8 } else { 0x8100 };
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&(100 + i as u16).to_be_bytes());
    }
    out.extend_from_slice(&frame[12..]);
    out
}

/// Asserts etherparse parses `frame` and every checksum it can compute equals the
/// one in the frame (UDP 0 accepted only for IPv4).
pub fn etherparse_check(frame: &[u8]) {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("etherparse parses the frame");
    let payload = h.payload.slice();
    match (&h.net, &h.transport) {
        (Some(NetHeaders::Ipv4(ip, _)), t) => {
            assert_eq!(
                ip.header_checksum,
                ip.calc_header_checksum(),
                "IPv4 header checksum"
            );
            match t {
                Some(TransportHeader::Tcp(tcp)) => {
                    assert_eq!(
                        tcp.checksum,
                        tcp.calc_checksum_ipv4(ip, payload).unwrap(),
                        "TCP/4"
                    )
                }
                Some(TransportHeader::Udp(u)) if u.checksum != 0 => assert_eq!(
                    u.checksum,
                    u.calc_checksum_ipv4(ip, payload).unwrap(),
                    "UDP/4"
                ),
                Some(TransportHeader::Icmpv4(i)) => {
                    assert_eq!(i.checksum, i.icmp_type.calc_checksum(payload), "ICMP")
                }
                _ => {}
            }
        }
        (Some(NetHeaders::Ipv6(ip, _)), t) => match t {
            Some(TransportHeader::Tcp(tcp)) => {
                assert_eq!(
                    tcp.checksum,
                    tcp.calc_checksum_ipv6(ip, payload).unwrap(),
                    "TCP/6"
                )
            }
            Some(TransportHeader::Udp(u)) => {
                assert_eq!(
                    u.checksum,
                    u.calc_checksum_ipv6(ip, payload).unwrap(),
                    "UDP/6"
                )
            }
            Some(TransportHeader::Icmpv6(i)) => assert_eq!(
                i.checksum,
                i.icmp_type
                    .calc_checksum(ip.source, ip.destination, payload)
                    .unwrap(),
                "ICMPv6"
            ),
            _ => {}
        },
        _ => {}
    }
}

/// etherparse's view of addresses and ports.
pub fn ep_tuple(frame: &[u8]) -> (IpAddr, IpAddr, Option<(u16, u16)>) {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("etherparse parses");
    let (s, d) = match h.net {
        Some(NetHeaders::Ipv4(ip, _)) => (
            IpAddr::from(Ipv4Addr::from(ip.source)),
            IpAddr::from(Ipv4Addr::from(ip.destination)),
        ),
        Some(NetHeaders::Ipv6(ip, _)) => (
            IpAddr::from(Ipv6Addr::from(ip.source)),
            IpAddr::from(Ipv6Addr::from(ip.destination)),
        ),
        _ => panic!("not IP"),
    };
    let ports = match h.transport {
        Some(TransportHeader::Tcp(t)) => Some((t.source_port, t.destination_port)),
        Some(TransportHeader::Udp(u)) => Some((u.source_port, u.destination_port)),
        _ => None,
    };
    (s, d, ports)
}
