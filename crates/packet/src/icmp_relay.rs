//! ICMP error relay (docs/internals/forwarding.md#icmp-errors): find the packet quoted inside an ICMP/ICMPv6
//! error, rewrite it and the outer header for NAT / FULLNAT connections, and dig
//! the client's packet out of errors about the director's own tunnel packets.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bytes::{arr16, arr4, get16, set16};
use crate::checksum;
use crate::error::{need, Error, Layer, Result};
use crate::gre::GrePacket;
use crate::gue::GuePacket;
use crate::icmp::{v4, v6};
use crate::ipv4::Ipv4Packet;
use crate::ipv6;
use crate::nat::Endpoint;
use crate::parse::{proto, Parsed, L3};

/// An ICMP error message and the packet it quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    /// Offset of the ICMP header in the frame.
    pub icmp_off: usize,
    /// ICMP type.
    pub msg_type: u8,
    /// ICMP code.
    pub code: u8,
    /// The 4 bytes after the checksum (MTU of FRAG_NEEDED / PACKET_TOO_BIG).
    pub info: u32,
    /// Offset of the quoted IP header.
    pub quoted_off: usize,
    /// End of the quoted bytes present (the ICMP message end).
    pub quoted_end: usize,
    /// Offset of the quoted transport header (or fragment data).
    pub quoted_l4_off: usize,
    /// Protocol of the quoted packet.
    pub quoted_proto: u8,
    /// Quoted source address (the original sender).
    pub quoted_src: IpAddr,
    /// Quoted destination address.
    pub quoted_dst: IpAddr,
    /// Quoted `(source, destination)` ports of TCP/UDP/SCTP, present only when at
    /// least 8 transport bytes are quoted (docs/internals/forwarding.md#icmp-errors) and the quote is not a non-first
    /// fragment.
    pub quoted_ports: Option<(u16, u16)>,
    /// The quoted packet had DF set (IPv4 only).
    pub quoted_df: bool,
}

impl IcmpError {
    /// True for ICMP FRAG_NEEDED or ICMPv6 PACKET_TOO_BIG.
    pub fn is_too_big(&self, l3: L3) -> bool {
        match l3 {
            L3::Ipv4 => self.msg_type == v4::DEST_UNREACH && self.code == v4::FRAG_NEEDED,
            _ => self.msg_type == v6::PACKET_TOO_BIG,
        }
    }
}

/// Locates the quoted packet of an ICMP error in an unfragmented ICMP/ICMPv6
/// packet. Returns `Ok(None)` for messages IPVS leaves alone: ICMPv4 types other
/// than DEST_UNREACH, SOURCE_QUENCH and TIME_EXCEEDED, and ICMPv6 informational
/// messages (docs/internals/forwarding.md#icmp-errors). Errors for a truncated or malformed quote.
pub fn icmp_error(frame: &[u8], p: &Parsed) -> Result<Option<IcmpError>> {
    let is_v6 = match (p.l3, p.proto) {
        (L3::Ipv4, proto::ICMP) => false,
        (L3::Ipv6, proto::ICMPV6) => true,
        _ => return Ok(None),
    };
    if p.is_fragment() {
        // The kernel reassembles ICMP before looking inside (docs/internals/forwarding.md#where-the-director-sees-packets).
        return Err(Error::Fragment);
    }
    p.check_against(frame)?;
    let layer = if is_v6 { Layer::Icmpv6 } else { Layer::Icmp };
    let icmp = &frame[p.l4_off..p.l3_end];
    need(icmp, 8, layer)?;
    let (t, code) = (icmp[0], icmp[1]);
    let handled = if is_v6 {
        v6::is_error(t)
    } else {
        matches!(t, v4::DEST_UNREACH | v4::SOURCE_QUENCH | v4::TIME_EXCEEDED)
    };
    if !handled {
        return Ok(None);
    }
    let q = p.l4_off + 8;
    let end = p.l3_end;
    let quoted = &frame[q..end];
    let (src, dst, l4_rel, qproto, first, df) = if is_v6 {
        need(quoted, ipv6::HEADER_LEN, Layer::Quoted)?;
        if quoted[0] >> 4 != 6 {
            return Err(Error::BadVersion(quoted[0] >> 4));
        }
        let w = ipv6::walk_ext(quoted, quoted.len())?;
        (
            IpAddr::V6(Ipv6Addr::from(arr16(quoted, 8))),
            IpAddr::V6(Ipv6Addr::from(arr16(quoted, 24))),
            w.l4_off,
            w.proto,
            !matches!(w.frag, Some(f) if f.offset != 0),
            false,
        )
    } else {
        need(quoted, 20, Layer::Quoted)?;
        let ip = Ipv4Packet::new_unchecked(quoted);
        if ip.version() != 4 {
            return Err(Error::BadVersion(ip.version()));
        }
        let hl = ip.header_len();
        if hl < 20 || hl > quoted.len() {
            return Err(Error::BadIhl(quoted[0] & 0xf));
        }
        (
            IpAddr::V4(ip.src()),
            IpAddr::V4(ip.dst()),
            hl,
            ip.protocol(),
            ip.frag_offset() == 0,
            ip.dont_frag(),
        )
    };
    let l4 = q + l4_rel;
    let ports = (first && matches!(qproto, proto::TCP | proto::UDP | proto::SCTP) && end >= l4 + 8)
        .then(|| (get16(frame, l4), get16(frame, l4 + 2)));
    Ok(Some(IcmpError {
        icmp_off: p.l4_off,
        msg_type: t,
        code,
        info: crate::bytes::get32(icmp, 4),
        quoted_off: q,
        quoted_end: end,
        quoted_l4_off: l4,
        quoted_proto: qproto,
        quoted_src: src,
        quoted_dst: dst,
        quoted_ports: ports,
        quoted_df: df,
    }))
}

fn put_addr(frame: &mut [u8], off: usize, a: IpAddr, l3: L3) -> Result<()> {
    match (a, l3) {
        (IpAddr::V4(a), L3::Ipv4) => frame[off..off + 4].copy_from_slice(&a.octets()),
        (IpAddr::V6(a), L3::Ipv6) => frame[off..off + 16].copy_from_slice(&a.octets()),
        _ => return Err(Error::FamilyMismatch),
    }
    Ok(())
}

/// Rewrites an ICMP error in place, the kernel's `ip_vs_nat_icmp` /
/// `ip_vs_nat_icmp_v6` generalised to FULLNAT: outer source/destination
/// addresses, quoted source/destination address and port; then the outer IPv4
/// header checksum and the quoted IPv4 header checksum are recomputed
/// (`ip_send_check` on both), and the ICMP / ICMPv6 checksum is recomputed over
/// the whole message. The quoted transport checksum is left as it is, exactly as
/// the kernel leaves it (it is usually cut off by the quote anyway and no host
/// checks it). Ports are written only when the quote holds them.
pub fn icmp_rewrite(
    frame: &mut [u8],
    p: &Parsed,
    e: &IcmpError,
    outer_src: Option<IpAddr>,
    outer_dst: Option<IpAddr>,
    quoted_src: Option<Endpoint>,
    quoted_dst: Option<Endpoint>,
) -> Result<()> {
    p.check_against(frame)?;
    let ip = p.l2_len;
    if e.quoted_end > frame.len()
        || e.quoted_end != p.l3_end
        || e.icmp_off != p.l4_off
        || e.quoted_off != p.l4_off + 8
        || e.quoted_l4_off < e.quoted_off
        || e.quoted_off + if p.l3 == L3::Ipv4 { 20 } else { 40 } > e.quoted_end
    {
        return Err(Error::BadLength(Layer::Quoted));
    }
    if e.quoted_ports.is_some() && e.quoted_l4_off + 4 > e.quoted_end {
        return Err(Error::BadLength(Layer::Quoted));
    }
    if p.l3 == L3::Ipv4 {
        crate::nat::ipv4_header_len(frame, ip, p.l3_end)?;
        crate::nat::ipv4_header_len(frame, e.quoted_off, e.quoted_end)?;
    }
    let (so, doff) = if p.l3 == L3::Ipv4 { (12, 16) } else { (8, 24) };
    if let Some(a) = outer_src {
        put_addr(frame, ip + so, a, p.l3)?;
    }
    if let Some(a) = outer_dst {
        put_addr(frame, ip + doff, a, p.l3)?;
    }
    let q = e.quoted_off;
    for (ep, ao, po) in [(quoted_src, so, 0), (quoted_dst, doff, 2)] {
        let Some(ep) = ep else { continue };
        put_addr(frame, q + ao, ep.addr, p.l3)?;
        if e.quoted_ports.is_some() {
            set16(frame, e.quoted_l4_off + po, ep.port);
        }
    }
    if p.l3 == L3::Ipv4 {
        crate::nat::ipv4_refresh_checksum(frame, ip, p.l3_end)?;
        crate::nat::ipv4_refresh_checksum(frame, q, e.quoted_end)?;
        set16(frame, e.icmp_off + 2, 0);
        let c = checksum::checksum(&frame[e.icmp_off..p.l3_end]);
        set16(frame, e.icmp_off + 2, c);
    } else {
        set16(frame, e.icmp_off + 2, 0);
        let acc = checksum::pseudo_v6(
            Ipv6Addr::from(arr16(frame, ip + 8)),
            Ipv6Addr::from(arr16(frame, ip + 24)),
            proto::ICMPV6,
            (p.l3_end - e.icmp_off) as u32,
        );
        let c = !checksum::fold(checksum::sum(acc, &frame[e.icmp_off..p.l3_end]));
        set16(frame, e.icmp_off + 2, c);
    }
    Ok(())
}

/// Incoming ICMP error from the client side about a NAT connection (docs/internals/forwarding.md#icmp-errors): outer
/// destination := RS, quoted source := RS `daddr:dport`.
pub fn icmp_nat_in(frame: &mut [u8], p: &Parsed, e: &IcmpError, rs: Endpoint) -> Result<()> {
    icmp_rewrite(frame, p, e, None, Some(rs.addr), Some(rs), None)
}

/// Outgoing ICMP error from a real server about a NAT connection (docs/internals/forwarding.md#icmp-errors): outer
/// source := VIP, quoted destination := `VIP:vport`.
pub fn icmp_nat_out(frame: &mut [u8], p: &Parsed, e: &IcmpError, vip: Endpoint) -> Result<()> {
    icmp_rewrite(frame, p, e, Some(vip.addr), None, None, Some(vip))
}

/// The client packet found inside an ICMP error about one of the director's own
/// tunnel packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelIcmp {
    /// Offset of the inner (client's) IP header in the frame.
    pub inner_off: usize,
    /// Inner family.
    pub inner: L3,
    /// Inner source (the client).
    pub inner_src: IpAddr,
    /// Inner destination (the VIP).
    pub inner_dst: IpAddr,
    /// The client's packet had DF (IPv4).
    pub inner_df: bool,
}

/// Recognises an ICMP error quoting one of the director's tunnel packets (docs/internals/forwarding.md#icmp-errors:
/// quoted protocol IPIP / IPv6-in-IP, GRE, or UDP to `gue_port`) and locates the
/// client's packet inside. `Ok(None)` when the quote is not a tunnel packet or is
/// too short to reach the inner IP header.
pub fn icmp_tunnel_inner(
    frame: &[u8],
    e: &IcmpError,
    gue_port: Option<u16>,
) -> Result<Option<TunnelIcmp>> {
    if e.quoted_end > frame.len() || e.quoted_l4_off > e.quoted_end {
        return Err(Error::BadLength(Layer::Quoted));
    }
    let l4 = &frame[e.quoted_l4_off..e.quoted_end];
    let (rel, v6) = match e.quoted_proto {
        proto::IPIP => (0, false),
        proto::IPV6 => (0, true),
        proto::GRE => {
            let Ok(g) = GrePacket::new_checked(l4) else {
                return Ok(None);
            };
            match g.protocol() {
                crate::ethernet::ethertype::IPV4 => (g.header_len(), false),
                crate::ethernet::ethertype::IPV6 => (g.header_len(), true),
                _ => return Ok(None),
            }
        }
        proto::UDP => {
            if l4.len() < 8 || gue_port.is_none() || Some(get16(l4, 2)) != gue_port {
                return Ok(None);
            }
            let Ok(g) = GuePacket::new_checked(&l4[8..]) else {
                return Ok(None);
            };
            match g.protocol() {
                proto::IPIP => (8 + g.header_len(), false),
                proto::IPV6 => (8 + g.header_len(), true),
                _ => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    let off = e.quoted_l4_off + rel;
    let inner = &frame[off.min(e.quoted_end)..e.quoted_end];
    if v6 {
        if inner.len() < 40 || inner[0] >> 4 != 6 {
            return Ok(None);
        }
        Ok(Some(TunnelIcmp {
            inner_off: off,
            inner: L3::Ipv6,
            inner_src: IpAddr::V6(Ipv6Addr::from(arr16(inner, 8))),
            inner_dst: IpAddr::V6(Ipv6Addr::from(arr16(inner, 24))),
            inner_df: false,
        }))
    } else {
        if inner.len() < 20 || inner[0] >> 4 != 4 {
            return Ok(None);
        }
        Ok(Some(TunnelIcmp {
            inner_off: off,
            inner: L3::Ipv4,
            inner_src: IpAddr::V4(Ipv4Addr::from(arr4(inner, 12))),
            inner_dst: IpAddr::V4(Ipv4Addr::from(arr4(inner, 16))),
            inner_df: get16(inner, 6) & crate::ipv4::FLAG_DF != 0,
        }))
    }
}

/// The MTU to announce to the client after a FRAG_NEEDED about a tunnel packet
/// (docs/internals/forwarding.md#icmp-errors, `ip_vs_in_icmp`): the updated route MTU toward the RS when known, else
/// the reported MTU; minus 20 when that value exceeds 68 + 20.
pub fn tunnel_frag_needed_mtu(route_mtu: Option<u32>, reported: u32) -> u32 {
    let mtu = route_mtu.unwrap_or(reported);
    if mtu > 68 + 20 {
        mtu - 20
    } else {
        mtu
    }
}
