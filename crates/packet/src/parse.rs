//! One-pass classification of an Ethernet frame: where each layer starts, which
//! family and protocol, fragment state. Validates every length field it relies on
//! and the IPv4 header checksum; never panics.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::arp::ArpPacket;
use crate::bytes::{arr16, arr4, get16};
use crate::checksum;
use crate::error::{need, Error, Layer, Result};
use crate::ethernet::{ethertype, HEADER_LEN, MAX_VLAN_TAGS, VLAN_TAG_LEN};
use crate::ipv4::Ipv4Packet;
use crate::ipv6::{self, Ipv6Packet};
use crate::tcp::TcpPacket;

/// IP protocol numbers used by this crate.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IPv4-in-IP (IPIP).
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6-in-IP.
    pub const IPV6: u8 = 41;
    /// GRE.
    pub const GRE: u8 = 47;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// What the frame carries at layer 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L3 {
    /// ARP (Ethernet/IPv4).
    Arp,
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
    /// Another EtherType; nothing past L2 was read.
    Other(u16),
}

/// Fragment state of an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frag {
    /// Offset of this fragment's data in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// Identification (IPv4: 16 bits; IPv6: 32 bits).
    pub ident: u32,
}

/// Where everything is in a classified frame. Offsets are from the frame start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Length of the L2 header including VLAN tags (= offset of L3).
    pub l2_len: usize,
    /// VLAN tags as `(tpid, tci)`, outermost first; `vlan_count` are valid.
    pub vlans: [(u16, u16); MAX_VLAN_TAGS],
    /// Number of VLAN tags.
    pub vlan_count: u8,
    /// The innermost EtherType.
    pub ethertype: u16,
    /// Layer-3 kind.
    pub l3: L3,
    /// End of the L3 packet as its length field says (excludes Ethernet padding).
    pub l3_end: usize,
    /// Offset of the transport header (or of the fragment data for a non-first fragment).
    pub l4_off: usize,
    /// Transport protocol (IP protocol / last IPv6 next header); 0 for ARP/other.
    pub proto: u8,
    /// Fragment state, when the packet is a fragment.
    pub frag: Option<Frag>,
}

impl Parsed {
    /// Offset of the L3 header.
    pub fn l3_off(&self) -> usize {
        self.l2_len
    }
    /// Length of the IP packet (header + payload, no padding).
    pub fn l3_len(&self) -> usize {
        self.l3_end.saturating_sub(self.l2_len)
    }
    /// Length of the transport segment in this packet.
    pub fn l4_len(&self) -> usize {
        self.l3_end.saturating_sub(self.l4_off)
    }
    /// Checks that these offsets are usable on `frame` (they are when `self` came
    /// from `parse(frame)`; the fields are public, so every primitive re-checks
    /// instead of trusting them): for IP a full fixed header before the transport
    /// offset, and the L3 end within the frame.
    pub fn check_against(&self, frame: &[u8]) -> Result<()> {
        let min = match self.l3 {
            L3::Ipv4 => 20,
            L3::Ipv6 => 40,
            _ => return Err(Error::Unsupported("not an IP packet")),
        };
        if self.l3_end > frame.len() || self.l2_len + min > self.l4_off || self.l4_off > self.l3_end
        {
            return Err(Error::BadLength(if self.l3 == L3::Ipv4 {
                Layer::Ipv4
            } else {
                Layer::Ipv6
            }));
        }
        Ok(())
    }
    /// True for IPv4 or IPv6.
    pub fn is_ip(&self) -> bool {
        matches!(self.l3, L3::Ipv4 | L3::Ipv6)
    }
    /// True when the transport header is present (not a non-first fragment).
    pub fn has_l4(&self) -> bool {
        self.is_ip() && !matches!(self.frag, Some(f) if f.offset != 0)
    }
    /// True for a fragment of any kind.
    pub fn is_fragment(&self) -> bool {
        self.frag.is_some()
    }
    /// The VLAN tags in use.
    pub fn vlan_tags(&self) -> &[(u16, u16)] {
        &self.vlans[..usize::from(self.vlan_count).min(MAX_VLAN_TAGS)]
    }
    /// Source and destination addresses of an IP packet.
    pub fn addrs(&self, frame: &[u8]) -> Option<(IpAddr, IpAddr)> {
        let o = self.l2_len;
        match self.l3 {
            L3::Ipv4 if frame.len() >= o + 20 => Some((
                IpAddr::V4(Ipv4Addr::from(arr4(frame, o + 12))),
                IpAddr::V4(Ipv4Addr::from(arr4(frame, o + 16))),
            )),
            L3::Ipv6 if frame.len() >= o + 40 => Some((
                IpAddr::V6(Ipv6Addr::from(arr16(frame, o + 8))),
                IpAddr::V6(Ipv6Addr::from(arr16(frame, o + 24))),
            )),
            _ => None,
        }
    }
    /// Source and destination ports of a TCP/UDP/SCTP packet with its transport header.
    pub fn ports(&self, frame: &[u8]) -> Option<(u16, u16)> {
        if !self.has_l4()
            || !matches!(self.proto, proto::TCP | proto::UDP | proto::SCTP)
            || frame.len() < self.l4_off + 4
        {
            return None;
        }
        Some((get16(frame, self.l4_off), get16(frame, self.l4_off + 2)))
    }
    /// TTL (IPv4) or hop limit (IPv6).
    pub fn ttl(&self, frame: &[u8]) -> Option<u8> {
        match self.l3 {
            L3::Ipv4 => frame.get(self.l2_len + 8).copied(),
            L3::Ipv6 => frame.get(self.l2_len + 7).copied(),
            _ => None,
        }
    }
}

/// Classifies `frame` (starting at the Ethernet destination address).
///
/// Walks up to two VLAN tags (802.1ad outer + 802.1Q inner), then ARP / IPv4 /
/// IPv6. For IP it checks version, IHL, total/payload length against the buffer
/// (shorter is padding, longer is truncation), the IPv4 header checksum, the
/// IPv6 extension header chain (docs/internals/forwarding.md#where-the-director-sees-packets: non-first IPv6 fragments are recognised so
/// they are not scheduled), and the transport header of the first fragment:
/// TCP data offset, UDP length (unfragmented only), ICMP/ICMPv6/GRE minimum length.
/// A first fragment too short to hold its transport header is truncated (the
/// tiny-fragment attack of RFC 1858 is refused this way).
pub fn parse(frame: &[u8]) -> Result<Parsed> {
    need(frame, HEADER_LEN, Layer::Ethernet)?;
    let mut et = get16(frame, 12);
    let mut off = HEADER_LEN;
    let mut vlans = [(0u16, 0u16); MAX_VLAN_TAGS];
    let mut n = 0usize;
    while et == ethertype::VLAN || et == ethertype::QINQ {
        if n == MAX_VLAN_TAGS {
            return Err(Error::Unsupported("more than two VLAN tags"));
        }
        need(frame, off + VLAN_TAG_LEN, Layer::Vlan)?;
        vlans[n] = (et, get16(frame, off));
        et = get16(frame, off + 2);
        off += VLAN_TAG_LEN;
        n += 1;
    }
    let p = Parsed {
        l2_len: off,
        vlans,
        vlan_count: n as u8,
        ethertype: et,
        l3: L3::Other(et),
        l3_end: frame.len(),
        l4_off: off,
        proto: 0,
        frag: None,
    };
    parse_l3(frame, p)
}

/// Classifies a bare IP packet (no L2 header: what a TUN device or a raw socket
/// delivers), by its version nibble. The result has `l2_len` 0; the L3/L4
/// primitives (NAT, TTL, ICMP relay, checksums) work on it, the ones that need an
/// Ethernet header (DR, encapsulation, [`crate::tunnel::decapsulate`]) refuse it.
pub fn parse_ip(packet: &[u8]) -> Result<Parsed> {
    need(packet, 1, Layer::Ipv4)?;
    let et = match packet[0] >> 4 {
        4 => ethertype::IPV4,
        6 => ethertype::IPV6,
        v => return Err(Error::BadVersion(v)),
    };
    let p = Parsed {
        l2_len: 0,
        vlans: [(0, 0); MAX_VLAN_TAGS],
        vlan_count: 0,
        ethertype: et,
        l3: L3::Other(et),
        l3_end: packet.len(),
        l4_off: 0,
        proto: 0,
        frag: None,
    };
    parse_l3(packet, p)
}

fn parse_l3(frame: &[u8], mut p: Parsed) -> Result<Parsed> {
    let off = p.l2_len;
    let et = p.ethertype;
    let l3 = &frame[off..];
    match et {
        ethertype::ARP => {
            ArpPacket::new_checked(l3)?;
            p.l3 = L3::Arp;
            p.l3_end = off + crate::arp::LEN;
            p.l4_off = p.l3_end;
            return Ok(p);
        }
        ethertype::IPV4 => {
            let ip = Ipv4Packet::new_checked(l3)?;
            if !ip.verify_checksum() {
                return Err(Error::BadChecksum(Layer::Ipv4));
            }
            p.l3 = L3::Ipv4;
            p.l3_end = off + usize::from(ip.total_len());
            p.l4_off = off + ip.header_len();
            p.proto = ip.protocol();
            if ip.is_fragment() {
                p.frag = Some(Frag {
                    offset: ip.frag_offset(),
                    more: ip.more_frags(),
                    ident: u32::from(ip.ident()),
                });
            }
        }
        ethertype::IPV6 => {
            let ip = Ipv6Packet::new_checked(l3)?;
            let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
            let w = ipv6::walk_ext(l3, end)?;
            p.l3 = L3::Ipv6;
            p.l3_end = off + end;
            p.l4_off = off + w.l4_off;
            p.proto = w.proto;
            p.frag = w.frag.map(|f| Frag {
                offset: f.offset,
                more: f.more,
                ident: f.ident,
            });
        }
        _ => return Ok(p),
    }
    if p.has_l4() {
        check_l4(&frame[p.l4_off..p.l3_end], p.proto, p.l3, p.is_fragment())?;
    }
    Ok(p)
}

/// [`parse`], then [`verify_l4_checksum`] for unfragmented TCP, UDP, ICMP and
/// ICMPv6 packets: what a plane that wants every checksum checked calls. IPv6
/// tunnel receivers that accept zero UDP checksums (RFC 6935) use [`parse`].
pub fn parse_checked(frame: &[u8]) -> Result<Parsed> {
    // Keep in sync with `parse`: checksum checks only add to its validation.
    let p = parse(frame)?;
    if p.is_ip() && !p.is_fragment() {
        verify_l4_checksum(frame, &p)?;
    }
    Ok(p)
}

fn check_l4(l4: &[u8], proto: u8, l3: L3, fragment: bool) -> Result<()> {
    match (proto, l3) {
        (proto::TCP, _) => TcpPacket::new_checked(l4).map(|_| ()),
        (proto::UDP, _) => {
            need(l4, 8, Layer::Udp)?;
            let len = usize::from(get16(l4, 4));
            // A first fragment carries only part of the datagram the length covers.
            if len < 8 || (!fragment && len > l4.len()) {
                return Err(Error::BadLength(Layer::Udp));
            }
            Ok(())
        }
        (proto::ICMP, L3::Ipv4) => need(l4, 8, Layer::Icmp),
        (proto::ICMPV6, L3::Ipv6) => need(l4, 8, Layer::Icmpv6),
        (proto::GRE, _) => need(l4, 4, Layer::Gre),
        (proto::SCTP, _) => need(l4, 12, Layer::Sctp),
        _ => Ok(()),
    }
}

/// Partial sum of the pseudo-header of the packet described by `p`, for a
/// transport segment of `l4_len` bytes. IPv6 uses the addresses of the fixed
/// header; a routing header's final destination is not substituted (RFC 8200
/// §8.1 would need it, IPVS traffic does not carry type-0/SRH routing headers).
pub fn pseudo_header(frame: &[u8], p: &Parsed, l4_len: usize) -> Result<u64> {
    p.check_against(frame)?;
    match p.addrs(frame) {
        Some((IpAddr::V4(s), IpAddr::V4(d))) => {
            Ok(checksum::pseudo_v4(s, d, p.proto, l4_len as u32))
        }
        Some((IpAddr::V6(s), IpAddr::V6(d))) => {
            Ok(checksum::pseudo_v6(s, d, p.proto, l4_len as u32))
        }
        _ => Err(Error::Unsupported("not an IP packet")),
    }
}

/// Verifies the transport checksum of an unfragmented TCP, UDP, ICMP, ICMPv6 or
/// SCTP (CRC32c) packet. IPv4 UDP with checksum 0 passes (RFC 768); IPv6 UDP with checksum 0 is
/// [`Error::UdpZeroChecksumV6`] (RFC 8200 §8.1; tunnel endpoints that accept it per
/// RFC 6935 do not call this). Other protocols pass unchecked.
pub fn verify_l4_checksum(frame: &[u8], p: &Parsed) -> Result<()> {
    if p.is_fragment() {
        return Err(Error::Fragment);
    }
    p.check_against(frame)?;
    let l4 = &frame[p.l4_off..p.l3_end];
    let layer = match (p.proto, p.l3) {
        (proto::TCP, _) => Layer::Tcp,
        (proto::UDP, l3) => {
            need(l4, 8, Layer::Udp)?;
            if get16(l4, 6) == 0 {
                return if l3 == L3::Ipv6 {
                    Err(Error::UdpZeroChecksumV6)
                } else {
                    Ok(())
                };
            }
            Layer::Udp
        }
        (proto::ICMP, L3::Ipv4) => {
            // ICMPv4 has no pseudo-header.
            return if checksum::checksum(l4) == 0 {
                Ok(())
            } else {
                Err(Error::BadChecksum(Layer::Icmp))
            };
        }
        (proto::ICMPV6, L3::Ipv6) => Layer::Icmpv6,
        (proto::SCTP, _) => {
            // CRC32c over the SCTP packet with the checksum field taken as zero.
            need(l4, 12, Layer::Sctp)?;
            let stored = [l4[8], l4[9], l4[10], l4[11]];
            let mut c = checksum::crc32c_update(!0, &l4[..8]);
            c = checksum::crc32c_update(c, &[0; 4]);
            c = checksum::crc32c_update(c, &l4[12..]);
            return if (!c).to_le_bytes() == stored {
                Ok(())
            } else {
                Err(Error::BadChecksum(Layer::Sctp))
            };
        }
        _ => return Ok(()),
    };
    let acc = pseudo_header(frame, p, l4.len())?;
    if checksum::fold(checksum::sum(acc, l4)) == 0xffff {
        Ok(())
    } else {
        Err(Error::BadChecksum(layer))
    }
}

/// Computes and stores the full transport checksum of an unfragmented TCP, UDP or
/// ICMP/ICMPv6 packet (used after building or when a full recompute is required).
/// UDP results of 0 are stored as 0xFFFF.
pub fn fill_l4_checksum(frame: &mut [u8], p: &Parsed) -> Result<()> {
    if p.is_fragment() {
        return Err(Error::Fragment);
    }
    p.check_against(frame)?;
    let csum_off = match (p.proto, p.l3) {
        (proto::TCP, _) => crate::tcp::CHECKSUM_OFF,
        (proto::UDP, _) => crate::udp::CHECKSUM_OFF,
        (proto::ICMP, L3::Ipv4) | (proto::ICMPV6, L3::Ipv6) => 2,
        _ => return Err(Error::Unsupported("no transport checksum to fill")),
    };
    if p.l3_end > frame.len() || p.l4_off + csum_off + 2 > p.l3_end {
        return Err(Error::Truncated {
            layer: Layer::Ipv4,
            need: p.l4_off + csum_off + 2,
            have: p.l3_end.min(frame.len()),
        });
    }
    let l4_len = p.l4_len();
    let acc = if p.proto == proto::ICMP {
        0
    } else {
        pseudo_header(frame, p, l4_len)?
    };
    let at = p.l4_off + csum_off;
    frame[at] = 0;
    frame[at + 1] = 0;
    let mut c = !checksum::fold(checksum::sum(acc, &frame[p.l4_off..p.l3_end]));
    if p.proto == proto::UDP {
        c = checksum::udp_mangle_zero(c);
    }
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}
