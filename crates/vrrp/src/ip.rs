//! The IPv4/IPv6 headers around a VRRP message, for raw sockets.
//!
//! keepalived writes the IPv4 header itself (`IP_HDRINCL`): version 4, IHL 5, TOS `0xc0`
//! (network control), an ID counter per instance, no DF, TTL 255, protocol 112. For IPv6 the kernel
//! builds the header (traffic class `0xc0`, hop limit 255, a kernel-chosen flow label); the builder
//! here exists for tests, for `IPV6_HDRINCL` and for packet-plane injection.
//!
//! On receive an IPv4 raw socket hands over the whole IP packet ([`RxPacket::parse_ipv4`]); an IPv6
//! raw socket hands over only the payload, with hop limit and destination from ancillary data
//! ([`RxPacket::from_ipv6_parts`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::Error;
use crate::wire::{internet_checksum, Advert, ChecksumMode, IPPROTO_AH, IPPROTO_VRRP};

/// TOS / traffic class keepalived sends adverts with (precedence 6, "internetwork control").
pub const VRRP_TOS: u8 = 0xc0;
/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;

/// A decoded IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Header length in bytes (IHL × 4; 20 without options).
    pub header_len: u8,
    /// Type of service byte.
    pub tos: u8,
    /// Total length field.
    pub total_len: u16,
    /// Identification.
    pub id: u16,
    /// Flags (3 bits) and fragment offset (13 bits).
    pub flags_frag: u16,
    /// Time to live.
    pub ttl: u8,
    /// Protocol (112 for VRRP, 51 for AH).
    pub protocol: u8,
    /// Header checksum as received.
    pub checksum: u16,
    /// Source.
    pub src: Ipv4Addr,
    /// Destination.
    pub dst: Ipv4Addr,
}

impl Ipv4Header {
    /// Parse the header at the start of `buf`; returns it and the bytes after it (options
    /// skipped), clipped to the total length when that is consistent.
    pub fn parse(buf: &[u8]) -> Result<(Ipv4Header, &[u8]), Error> {
        if buf.len() < IPV4_HEADER_LEN {
            return Err(Error::Truncated {
                need: IPV4_HEADER_LEN,
                got: buf.len(),
            });
        }
        if buf[0] >> 4 != 4 {
            return Err(Error::NotIp(buf[0] >> 4));
        }
        let hl = usize::from(buf[0] & 0x0f) * 4;
        if hl < IPV4_HEADER_LEN {
            return Err(Error::FieldRange("IPv4 IHL"));
        }
        if buf.len() < hl {
            return Err(Error::Truncated {
                need: hl,
                got: buf.len(),
            });
        }
        let be16 = |o: usize| u16::from_be_bytes([buf[o], buf[o + 1]]);
        let h = Ipv4Header {
            header_len: hl as u8,
            tos: buf[1],
            total_len: be16(2),
            id: be16(4),
            flags_frag: be16(6),
            ttl: buf[8],
            protocol: buf[9],
            checksum: be16(10),
            src: Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]),
            dst: Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]),
        };
        // Keep trailing Ethernet padding out of the payload, but never read past the buffer.
        let end = usize::from(h.total_len).clamp(hl, buf.len());
        Ok((h, &buf[hl..end]))
    }

    /// Whether the header checksum verifies over the header bytes of `buf`.
    pub fn checksum_ok(buf: &[u8]) -> bool {
        let hl = buf.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
        buf.len() >= hl && hl >= IPV4_HEADER_LEN && internet_checksum(&buf[..hl]) == 0
    }

    /// Append a 20-byte header (no options) with a computed checksum. `header_len` is ignored.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(0x45);
        out.push(self.tos);
        out.extend_from_slice(&self.total_len.to_be_bytes());
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.flags_frag.to_be_bytes());
        out.push(self.ttl);
        out.push(self.protocol);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.src.octets());
        out.extend_from_slice(&self.dst.octets());
        let c = internet_checksum(&out[start..]);
        out[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
    }

    /// The header keepalived writes for a VRRP payload of `payload_len` bytes.
    pub fn vrrp(src: Ipv4Addr, dst: Ipv4Addr, id: u16, ttl: u8, payload_len: usize) -> Self {
        Ipv4Header {
            header_len: IPV4_HEADER_LEN as u8,
            tos: VRRP_TOS,
            total_len: (IPV4_HEADER_LEN + payload_len).min(usize::from(u16::MAX)) as u16,
            id,
            flags_frag: 0,
            ttl,
            protocol: IPPROTO_VRRP,
            checksum: 0,
            src,
            dst,
        }
    }
}

/// A decoded IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Header {
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Payload length.
    pub payload_len: u16,
    /// Next header (112 for VRRP; extension headers are not walked).
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source.
    pub src: Ipv6Addr,
    /// Destination.
    pub dst: Ipv6Addr,
}

impl Ipv6Header {
    /// Parse the fixed header at the start of `buf`; returns it and the payload (clipped to the
    /// payload length when consistent).
    pub fn parse(buf: &[u8]) -> Result<(Ipv6Header, &[u8]), Error> {
        if buf.len() < IPV6_HEADER_LEN {
            return Err(Error::Truncated {
                need: IPV6_HEADER_LEN,
                got: buf.len(),
            });
        }
        if buf[0] >> 4 != 6 {
            return Err(Error::NotIp(buf[0] >> 4));
        }
        let w = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&buf[8..24]);
        d.copy_from_slice(&buf[24..40]);
        let h = Ipv6Header {
            traffic_class: ((w >> 20) & 0xff) as u8,
            flow_label: w & 0x000f_ffff,
            payload_len: u16::from_be_bytes([buf[4], buf[5]]),
            next_header: buf[6],
            hop_limit: buf[7],
            src: Ipv6Addr::from(s),
            dst: Ipv6Addr::from(d),
        };
        let end = (IPV6_HEADER_LEN + usize::from(h.payload_len)).min(buf.len());
        Ok((h, &buf[IPV6_HEADER_LEN..end]))
    }

    /// Append the 40-byte header.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let w = (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0xfffff);
        out.extend_from_slice(&w.to_be_bytes());
        out.extend_from_slice(&self.payload_len.to_be_bytes());
        out.push(self.next_header);
        out.push(self.hop_limit);
        out.extend_from_slice(&self.src.octets());
        out.extend_from_slice(&self.dst.octets());
    }

    /// The header the kernel builds for a VRRP payload (flow label as given).
    pub fn vrrp(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        flow_label: u32,
        payload_len: usize,
    ) -> Self {
        Ipv6Header {
            traffic_class: VRRP_TOS,
            flow_label,
            payload_len: payload_len.min(usize::from(u16::MAX)) as u16,
            next_header: IPPROTO_VRRP,
            hop_limit,
            src,
            dst,
        }
    }
}

/// Encode a complete IPv4 VRRP packet (header + message) as keepalived sends it.
pub fn encode_ipv4(
    advert: &Advert,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    ttl: u8,
    mode: ChecksumMode,
) -> Result<Vec<u8>, Error> {
    let mut msg = Vec::with_capacity(64);
    advert.emit(&mut msg, IpAddr::V4(src), IpAddr::V4(dst), mode)?;
    let mut out = Vec::with_capacity(IPV4_HEADER_LEN + msg.len());
    Ipv4Header::vrrp(src, dst, id, ttl, msg.len()).emit(&mut out);
    out.extend_from_slice(&msg);
    Ok(out)
}

/// Encode a complete IPv6 VRRP packet (header + message).
pub fn encode_ipv6(
    advert: &Advert,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    flow_label: u32,
) -> Result<Vec<u8>, Error> {
    let mut msg = Vec::with_capacity(64);
    advert.emit(
        &mut msg,
        IpAddr::V6(src),
        IpAddr::V6(dst),
        ChecksumMode::PseudoHeader,
    )?;
    let mut out = Vec::with_capacity(IPV6_HEADER_LEN + msg.len());
    Ipv6Header::vrrp(src, dst, hop_limit, flow_label, msg.len()).emit(&mut out);
    out.extend_from_slice(&msg);
    Ok(out)
}

/// What receive validation needs to know about one received packet, whatever socket it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxPacket<'a> {
    /// IP source.
    pub src: IpAddr,
    /// IP destination (multicast group or our unicast address).
    pub dst: IpAddr,
    /// TTL / hop limit as received.
    pub ttl: u8,
    /// IPv4 total-length field, when the IP header was seen (check 12 of docs/internals/vrrp.md#receive-checks).
    pub ip_total_len: Option<u16>,
    /// Bytes actually received including the IPv4 header (compared with `ip_total_len`).
    pub received_len: usize,
    /// An AH header preceded the VRRP message.
    pub ah: bool,
    /// The VRRP message (after the IP header and any AH header), possibly with trailing bytes.
    pub vrrp: &'a [u8],
}

impl<'a> RxPacket<'a> {
    /// Parse a whole IPv4 packet as read from a raw IPv4 socket. Only protocol 112, or 51 (AH)
    /// followed by 112, is accepted.
    pub fn parse_ipv4(buf: &'a [u8]) -> Result<RxPacket<'a>, Error> {
        let (h, _) = Ipv4Header::parse(buf)?;
        // Unlike `Ipv4Header::parse` keep trailing bytes: a too-long packet is a length error
        // for validation to report, not something to silently drop here.
        let payload = &buf[usize::from(h.header_len)..];
        let (ah, vrrp) = match h.protocol {
            IPPROTO_VRRP => (false, payload),
            IPPROTO_AH => (true, skip_ah(payload)?),
            p => return Err(Error::NotVrrp(p)),
        };
        Ok(RxPacket {
            src: IpAddr::V4(h.src),
            dst: IpAddr::V4(h.dst),
            ttl: h.ttl,
            ip_total_len: Some(h.total_len),
            received_len: buf.len(),
            ah,
            vrrp,
        })
    }

    /// Parse a whole IPv6 packet (header included, as captured or read with `IPV6_HDRINCL`).
    pub fn parse_ipv6(buf: &'a [u8]) -> Result<RxPacket<'a>, Error> {
        let (h, payload) = Ipv6Header::parse(buf)?;
        let (ah, vrrp) = match h.next_header {
            IPPROTO_VRRP => (false, payload),
            IPPROTO_AH => (true, skip_ah(payload)?),
            p => return Err(Error::NotVrrp(p)),
        };
        Ok(RxPacket {
            src: IpAddr::V6(h.src),
            dst: IpAddr::V6(h.dst),
            ttl: h.hop_limit,
            ip_total_len: None,
            received_len: buf.len(),
            ah,
            vrrp,
        })
    }

    /// Parse either family by the version nibble.
    pub fn parse(buf: &'a [u8]) -> Result<RxPacket<'a>, Error> {
        match buf.first().map(|b| b >> 4) {
            Some(4) => Self::parse_ipv4(buf),
            Some(6) => Self::parse_ipv6(buf),
            Some(v) => Err(Error::NotIp(v)),
            None => Err(Error::Truncated { need: 1, got: 0 }),
        }
    }

    /// The VRID byte, for demultiplexing among the instances sharing a socket (`None` if the
    /// message is too short to hold one).
    pub fn vrid(&self) -> Option<u8> {
        self.vrrp.get(1).copied()
    }

    /// Build from what a raw IPv6 socket delivers: the payload plus ancillary data
    /// (`IPV6_RECVHOPLIMIT`, `IPV6_RECVPKTINFO`).
    pub fn from_ipv6_parts(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, vrrp: &'a [u8]) -> Self {
        RxPacket {
            src: IpAddr::V6(src),
            dst: IpAddr::V6(dst),
            ttl: hop_limit,
            ip_total_len: None,
            received_len: vrrp.len(),
            ah: false,
            vrrp,
        }
    }
}

/// Skip an AH header (RFC 4302: next header, length in 4-byte words minus 2), insisting that
/// VRRP follows.
fn skip_ah(payload: &[u8]) -> Result<&[u8], Error> {
    if payload.len() < 12 {
        return Err(Error::Truncated {
            need: 12,
            got: payload.len(),
        });
    }
    let len = (usize::from(payload[1]) + 2) * 4;
    if payload[0] != IPPROTO_VRRP {
        return Err(Error::NotVrrp(payload[0]));
    }
    payload.get(len..).ok_or(Error::Truncated {
        need: len,
        got: payload.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Version;

    #[test]
    fn ipv4_header_matches_spec_example() {
        // docs/internals/vrrp.md#on-the-wire: 45c0 002c 0001 0000 ff70 d03f 0a4d0002 e0000012
        let h = Ipv4Header::vrrp(
            Ipv4Addr::new(10, 77, 0, 2),
            Ipv4Addr::new(224, 0, 0, 18),
            1,
            255,
            24,
        );
        let mut out = Vec::new();
        h.emit(&mut out);
        assert_eq!(
            out,
            [
                0x45, 0xc0, 0x00, 0x2c, 0x00, 0x01, 0x00, 0x00, 0xff, 0x70, 0xd0, 0x3f, 10, 77, 0,
                2, 224, 0, 0, 18
            ]
        );
        assert!(Ipv4Header::checksum_ok(&out));
        let (p, rest) = Ipv4Header::parse(&out).unwrap();
        assert_eq!(p.checksum, 0xd03f);
        assert!(rest.is_empty());
    }

    #[test]
    fn ah_packets_are_recognised() {
        let advert = Advert {
            version: Version::V2,
            packet_type: 1,
            vrid: 1,
            priority: 100,
            auth_or_reserved: 2,
            adver_int: 1,
            addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))],
            auth_data: [0; 8],
        };
        let mut msg = Vec::new();
        advert
            .emit(
                &mut msg,
                "10.0.0.2".parse().unwrap(),
                "224.0.0.18".parse().unwrap(),
                ChecksumMode::default(),
            )
            .unwrap();
        // AH: next=112, len=4 (24 bytes: 12 fixed + 12 ICV), reserved, SPI, seq, ICV.
        let mut ah = vec![IPPROTO_VRRP, 4, 0, 0];
        ah.extend_from_slice(&[0; 20]);
        let mut pkt = Vec::new();
        let mut h = Ipv4Header::vrrp(
            Ipv4Addr::new(10, 0, 0, 2),
            MCAST,
            1,
            255,
            ah.len() + msg.len(),
        );
        h.protocol = IPPROTO_AH;
        h.emit(&mut pkt);
        pkt.extend_from_slice(&ah);
        pkt.extend_from_slice(&msg);
        let rx = RxPacket::parse(&pkt).unwrap();
        assert!(rx.ah);
        assert_eq!(rx.vrrp, &msg[..]);
    }

    const MCAST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

    #[test]
    fn non_vrrp_and_garbage_are_errors() {
        let mut pkt = Vec::new();
        let mut h = Ipv4Header::vrrp(Ipv4Addr::new(1, 2, 3, 4), MCAST, 1, 255, 0);
        h.protocol = 6;
        h.emit(&mut pkt);
        assert_eq!(RxPacket::parse(&pkt), Err(Error::NotVrrp(6)));
        assert!(RxPacket::parse(&[]).is_err());
        assert!(RxPacket::parse(&[0x46, 0, 0]).is_err());
        assert!(RxPacket::parse(&[0x70; 50]).is_err());
    }

    #[test]
    fn ipv6_header_roundtrip() {
        let h = Ipv6Header::vrrp(
            "fe80::1".parse().unwrap(),
            "ff02::12".parse().unwrap(),
            255,
            0x12345,
            40,
        );
        let mut out = Vec::new();
        h.emit(&mut out);
        out.extend_from_slice(&[0; 40]);
        let (p, payload) = Ipv6Header::parse(&out).unwrap();
        assert_eq!(p, h);
        assert_eq!(payload.len(), 40);
        assert_eq!(&out[..4], &[0x6c, 0x01, 0x23, 0x45]);
    }
}
