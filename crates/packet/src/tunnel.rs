//! TUN forwarding (`-i`, docs/internals/forwarding.md#tunnelling): IPIP / 6in6 / 4in6 / 6in4, GUE and GRE
//! encapsulation in place (growing into headroom), the matching decapsulation for
//! the lab's userspace decapsulator, and the tunnel MTU rules of docs/internals/forwarding.md#mtu.

use core::net::IpAddr;

use crate::bytes::{get16, set16};
use crate::checksum;
use crate::error::{Error, Layer, Result};
use crate::ethernet::{ethertype, MacAddr};
use crate::gre::GrePacket;
use crate::gue::{self, GuePacket};
use crate::ipv4::{self, Ipv4Packet};
use crate::ipv6::{self, Ipv6Packet};
use crate::parse::{proto, Parsed, L3};

/// `--tun-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelType {
    /// `ipip` (0, default): IPPROTO_IPIP (4) for IPv4 inner, IPPROTO_IPV6 (41) for IPv6 inner.
    Ipip,
    /// `gue` (1): UDP to `port` (`--tun-port`, mandatory, non-zero) + GUE header.
    Gue {
        /// Destination UDP port.
        port: u16,
    },
    /// `gre` (2): GRE (47) with protocol 0x0800 / 0x86DD.
    Gre,
}

/// `--tun-nocsum` / `--tun-csum` / `--tun-remcsum` (`tun_flags` 0/1/2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TunnelCsum {
    /// No outer checksum (GUE UDP checksum 0, GRE without C bit). Default.
    #[default]
    NoCsum,
    /// Outer checksum: GUE UDP checksum / GRE checksum word.
    Csum,
    /// GUE only: UDP checksum, plus remote checksum offload when the inner
    /// checksum is partial.
    RemCsum,
}

/// Everything the encapsulation needs from the connection and the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelParams {
    /// Tunnel type.
    pub kind: TunnelType,
    /// Checksum option.
    pub csum: TunnelCsum,
    /// Outer source: the route's preferred source toward the RS.
    pub src: IpAddr,
    /// Outer destination: the RS address. Its family picks the outer header.
    pub dst: IpAddr,
    /// Ethernet destination (next hop toward the RS).
    pub dst_mac: MacAddr,
    /// Ethernet source (egress interface).
    pub src_mac: MacAddr,
    /// `pmtu_disc` sysctl: copy DF from an IPv4 inner header (docs/internals/forwarding.md#tunnelling).
    pub pmtu_disc: bool,
    /// IPv4 outer identification ("normal IP ident selection" is the caller's).
    pub ident: u16,
    /// GUE UDP source port, normally [`gue_source_port`] of the inner flow hash.
    pub gue_sport: u16,
    /// With [`TunnelCsum::RemCsum`]: `(csum_start, csum_offset)` of a partial
    /// (not yet computed) inner transport checksum, relative to the inner packet
    /// start; `None` when the inner checksum is complete, in which case no GUE
    /// option is added (the kernel adds it only for `CHECKSUM_PARTIAL`).
    pub inner_partial: Option<(u16, u16)>,
}

/// Bytes the outer headers add (docs/internals/forwarding.md#mtu: IP header 20/40, + UDP 8 + GUE 4 [+8 with the
/// remcsum option], or GRE 4 [+4 with checksum]).
pub fn overhead(outer_v6: bool, kind: TunnelType, csum: TunnelCsum, remcsum_opt: bool) -> usize {
    let ip = if outer_v6 {
        ipv6::HEADER_LEN
    } else {
        ipv4::HEADER_LEN
    };
    ip + match kind {
        TunnelType::Ipip => 0,
        TunnelType::Gue { .. } => 8 + gue::header_len_for(remcsum_opt),
        TunnelType::Gre => {
            if csum == TunnelCsum::Csum {
                8
            } else {
                4
            }
        }
    }
}

/// The MTU available to the inner packet (docs/internals/forwarding.md#mtu): route MTU minus [`overhead`];
/// below 68 (IPv4 outer) or 1280 (IPv6 outer) the packet must be dropped.
pub fn tunnel_mtu(
    route_mtu: u32,
    outer_v6: bool,
    kind: TunnelType,
    csum: TunnelCsum,
    remcsum_opt: bool,
) -> Result<u32> {
    let mtu = route_mtu.saturating_sub(overhead(outer_v6, kind, csum, remcsum_opt) as u32);
    let min = if outer_v6 { 1280 } else { 68 };
    if mtu < min {
        Err(Error::MtuTooSmall(mtu))
    } else {
        Ok(mtu)
    }
}

/// Maps a flow hash into the default ephemeral port range 32768..=60999 exactly as
/// the kernel's `udp_flow_src_port` does (`hash ^= hash << 16`, then scale).
pub fn gue_source_port(hash: u32) -> u16 {
    const MIN: u64 = 32768;
    const MAX: u64 = 60999;
    let h = hash ^ (hash << 16);
    ((u64::from(h) * (MAX - MIN)) >> 32) as u16 + MIN as u16
}

/// A stable hash of the inner flow (addresses, protocol, ports) for
/// [`gue_source_port`]. The kernel uses `skb_get_hash` (randomly keyed), so values
/// differ from a kernel director; only per-flow stability matters to receivers.
pub fn flow_hash(frame: &[u8], p: &Parsed) -> u32 {
    // FNV-1a, 32 bit.
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= u32::from(x);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    if let Some((s, d)) = p.addrs(frame) {
        match (s, d) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                eat(&s.octets());
                eat(&d.octets());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                eat(&s.octets());
                eat(&d.octets());
            }
            _ => {}
        }
    }
    eat(&[p.proto]);
    if let Some((sp, dp)) = p.ports(frame) {
        eat(&sp.to_be_bytes());
        eat(&dp.to_be_bytes());
    }
    h
}

/// `INET_ECN_encapsulate`: DSCP copied; inner CE becomes ECT(0) outside, other ECN
/// codepoints copied (docs/internals/forwarding.md#tunnelling).
pub fn ecn_encapsulate(inner_ds: u8) -> u8 {
    let ecn = inner_ds & 3;
    (inner_ds & !3) | if ecn == 3 { 2 } else { ecn }
}

/// Encapsulates the frame `buf[start..start + len]` (classified as `p`) for the
/// tunnel `t`, in place: the outer headers are written into the headroom before
/// the inner IP packet and the L2 header (VLAN tags kept) moves to the front.
/// Ethernet padding after the inner packet is dropped. Returns the new
/// `(start, len)` of the frame.
///
/// Outer header per docs/internals/forwarding.md#tunnelling: IPv4 (IHL 5, TOS = [`ecn_encapsulate`] of the inner DS
/// field, DF copied from an IPv4 inner only with `pmtu_disc`, TTL = inner TTL —
/// decrement it first) or IPv6 (traffic class likewise, flow label 0, hop limit =
/// inner TTL). GUE: UDP checksum 0 unless csum/remcsum; GRE: C bit and checksum
/// only with csum. Mixed families (4in6, 6in4) are allowed for tunnels.
pub fn encapsulate(
    buf: &mut [u8],
    start: usize,
    len: usize,
    p: &Parsed,
    t: &TunnelParams,
) -> Result<(usize, usize)> {
    let end = start
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or(Error::NoRoom {
            need: start.saturating_add(len),
            have: buf.len(),
        })?;
    let frame = &buf[start..end];
    crate::nat::need_l2(p)?;
    p.check_against(frame)?;
    let inner_v6 = p.l3 == L3::Ipv6;
    let inner_len = p.l3_len();
    let l3 = p.l2_len;
    let (inner_ds, inner_ttl, inner_df) = if inner_v6 {
        let ip = Ipv6Packet::new_unchecked(&frame[l3..]);
        (ip.traffic_class(), ip.hop_limit(), false)
    } else {
        let ip = Ipv4Packet::new_unchecked(&frame[l3..]);
        (ip.tos(), ip.ttl(), ip.dont_frag())
    };
    let outer_v6 = match (t.src, t.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => false,
        (IpAddr::V6(_), IpAddr::V6(_)) => true,
        _ => return Err(Error::FamilyMismatch),
    };
    let remcsum_opt = match (t.kind, t.csum) {
        (TunnelType::Gre, TunnelCsum::RemCsum) => {
            return Err(Error::Unsupported("--tun-remcsum is for gue only"))
        }
        (TunnelType::Gue { port: 0 }, _) => return Err(Error::Unsupported("GUE port 0")),
        (TunnelType::Gue { .. }, TunnelCsum::RemCsum) => t.inner_partial,
        _ => None,
    };
    let hdr = overhead(outer_v6, t.kind, t.csum, remcsum_opt.is_some());
    if start < hdr {
        return Err(Error::NoRoom {
            need: hdr,
            have: start,
        });
    }
    let payload_len = hdr - if outer_v6 { 40 } else { 20 } + inner_len;
    if (outer_v6 && payload_len > 0xffff) || (!outer_v6 && hdr + inner_len > 0xffff) {
        return Err(Error::BadLength(Layer::Ipv4));
    }
    let new_start = start - hdr;
    let l2 = p.l2_len;
    buf.copy_within(start..start + l2, new_start);
    let et = if outer_v6 {
        ethertype::IPV6
    } else {
        ethertype::IPV4
    };
    let f = &mut buf[new_start..start + l2 + inner_len];
    f[0..6].copy_from_slice(&t.dst_mac);
    f[6..12].copy_from_slice(&t.src_mac);
    set16(f, l2 - 2, et);
    let inner_proto = if inner_v6 { proto::IPV6 } else { proto::IPIP };
    let outer_proto = match t.kind {
        TunnelType::Ipip => inner_proto,
        TunnelType::Gue { .. } => proto::UDP,
        TunnelType::Gre => proto::GRE,
    };
    let tos = ecn_encapsulate(inner_ds);
    let ip_len = if outer_v6 { 40 } else { 20 };
    match (t.src, t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[l2..]);
            ip.set_version_ihl(20);
            ip.set_tos(tos);
            ip.set_total_len((hdr + inner_len) as u16);
            ip.set_ident(t.ident);
            let df = !inner_v6 && t.pmtu_disc && inner_df;
            ip.set_flags_frag(if df { ipv4::FLAG_DF } else { 0 });
            ip.set_ttl(inner_ttl);
            ip.set_protocol(outer_proto);
            ip.set_src(s);
            ip.set_dst(d);
            ip.fill_checksum();
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ip = Ipv6Packet::new_unchecked(&mut f[l2..]);
            ip.set_version_tc_flow(tos, 0);
            ip.set_payload_len(payload_len as u16);
            ip.set_next_header(outer_proto);
            ip.set_hop_limit(inner_ttl);
            ip.set_src(s);
            ip.set_dst(d);
        }
        _ => return Err(Error::FamilyMismatch),
    }
    let o4 = l2 + ip_len;
    match t.kind {
        TunnelType::Ipip => {}
        TunnelType::Gue { port } => {
            let ulen = hdr - ip_len + inner_len;
            set16(f, o4, t.gue_sport);
            set16(f, o4 + 2, port);
            set16(f, o4 + 4, ulen as u16);
            set16(f, o4 + 6, 0);
            GuePacket::new_unchecked(&mut f[o4 + 8..]).write_header(inner_proto, remcsum_opt);
            if t.csum != TunnelCsum::NoCsum {
                let acc = match (t.src, t.dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        checksum::pseudo_v4(s, d, proto::UDP, ulen as u32)
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        checksum::pseudo_v6(s, d, proto::UDP, ulen as u32)
                    }
                    _ => 0,
                };
                let c = !checksum::fold(checksum::sum(acc, &f[o4..o4 + ulen]));
                set16(f, o4 + 6, checksum::udp_mangle_zero(c));
            }
        }
        TunnelType::Gre => {
            let et = if inner_v6 {
                ethertype::IPV6
            } else {
                ethertype::IPV4
            };
            let csum = t.csum == TunnelCsum::Csum;
            let mut g = GrePacket::new_unchecked(&mut f[o4..]);
            g.write_header(et, csum);
            if csum {
                g.fill_checksum();
            }
        }
    }
    Ok((new_start, l2 + hdr + inner_len))
}

/// Which encapsulation a decapsulated frame had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    /// IP-in-IP (4in4, 6in4, 4in6, 6in6).
    Ipip,
    /// GUE over UDP.
    Gue,
    /// GRE.
    Gre,
}

/// Result of [`decapsulate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapsulated {
    /// New start of the frame in the buffer.
    pub start: usize,
    /// New length of the frame.
    pub len: usize,
    /// Encapsulation found.
    pub encap: Encap,
    /// Outer source address (the director).
    pub outer_src: IpAddr,
    /// Outer destination address (this real server).
    pub outer_dst: IpAddr,
}

/// Removes the outer headers of a tunnelled frame `buf[start..start + len]`
/// (classified as `p`) in place, for the lab's userspace decapsulator (issue 4
/// item 4): IPIP/IPv6-in-IP, GRE (version 0, checksum verified when present,
/// key/sequence skipped) and GUE on UDP port `gue_port` (UDP checksum verified
/// when non-zero — zero is accepted over IPv6 too, RFC 6935 — version 0 data
/// messages only, the remcsum option applied). The L2 header moves to sit before
/// the inner packet and its EtherType follows the inner family. Outer fragments
/// are refused ([`Error::Fragment`]).
pub fn decapsulate(
    buf: &mut [u8],
    start: usize,
    len: usize,
    p: &Parsed,
    gue_port: Option<u16>,
) -> Result<Decapsulated> {
    let end = start
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or(Error::NoRoom {
            need: start.saturating_add(len),
            have: buf.len(),
        })?;
    let frame = &mut buf[start..end];
    crate::nat::need_l2(p)?;
    let (inner_off, inner_len, inner_v6, encap, outer_src, outer_dst) =
        decap_inner(frame, p, gue_port)?;
    let l2 = p.l2_len;
    let new_rel = inner_off - l2;
    frame.copy_within(0..l2, new_rel);
    let et = if inner_v6 {
        ethertype::IPV6
    } else {
        ethertype::IPV4
    };
    set16(frame, new_rel + l2 - 2, et);
    debug_assert_eq!(get16(frame, new_rel + l2 - 2), et);
    Ok(Decapsulated {
        start: start + new_rel,
        len: l2 + inner_len,
        encap,
        outer_src,
        outer_dst,
    })
}

/// Finds and validates the inner packet of a tunnel packet classified as `p`,
/// applying the GUE remote checksum option. Returns
/// `(inner_off, inner_len, inner_v6, encap, outer_src, outer_dst)`.
#[allow(clippy::type_complexity)]
fn decap_inner(
    frame: &mut [u8],
    p: &Parsed,
    gue_port: Option<u16>,
) -> Result<(usize, usize, bool, Encap, IpAddr, IpAddr)> {
    p.check_against(frame)?;
    if p.is_fragment() {
        return Err(Error::Fragment);
    }
    let (outer_src, outer_dst) = p
        .addrs(frame)
        .ok_or(Error::Unsupported("decapsulation of a non-IP frame"))?;
    let l4 = p.l4_off;
    let (encap, inner_off, inner_v6, remcsum) = match p.proto {
        proto::IPIP => (Encap::Ipip, l4, false, None),
        proto::IPV6 => (Encap::Ipip, l4, true, None),
        proto::GRE => {
            let g = GrePacket::new_checked(&frame[l4..p.l3_end])?;
            if !g.verify_checksum() {
                return Err(Error::BadChecksum(Layer::Gre));
            }
            let v6 = match g.protocol() {
                ethertype::IPV4 => false,
                ethertype::IPV6 => true,
                _ => return Err(Error::Unsupported("GRE payload not IP")),
            };
            (Encap::Gre, l4 + g.header_len(), v6, None)
        }
        proto::UDP => {
            let u = crate::udp::UdpPacket::new_checked(&frame[l4..p.l3_end])?;
            if gue_port.is_none() || Some(u.dst_port()) != gue_port {
                return Err(Error::Unsupported("UDP not to the GUE port"));
            }
            let ulen = usize::from(u.len());
            if u.checksum() != 0 {
                let acc = crate::parse::pseudo_header(frame, p, ulen)?;
                if checksum::fold(checksum::sum(acc, &frame[l4..l4 + ulen])) != 0xffff {
                    return Err(Error::BadChecksum(Layer::Udp));
                }
            }
            let g = GuePacket::new_checked(&frame[l4 + 8..l4 + ulen])?;
            if g.control() {
                return Err(Error::Unsupported("GUE control message"));
            }
            let v6 = match g.protocol() {
                proto::IPIP => false,
                proto::IPV6 => true,
                _ => return Err(Error::Unsupported("GUE payload not IP")),
            };
            (Encap::Gue, l4 + 8 + g.header_len(), v6, g.remcsum())
        }
        _ => return Err(Error::Unsupported("not a tunnel protocol")),
    };
    let inner = &frame[inner_off..p.l3_end];
    let inner_len = if inner_v6 {
        let ip = Ipv6Packet::new_checked(inner)?;
        40 + usize::from(ip.payload_len())
    } else {
        usize::from(Ipv4Packet::new_checked(inner)?.total_len())
    };
    if let Some((cs, co)) = remcsum {
        // Remote checksum offload (the kernel's `remcsum_adjust`): the field at
        // `co` holds the pseudo-header seed; the checksum of everything from `cs`
        // to the end (seed included) goes into it.
        let (cs, co) = (usize::from(cs), usize::from(co));
        if cs > inner_len || co + 2 > inner_len || co < cs {
            return Err(Error::BadField(Layer::Gue));
        }
        let c = checksum::checksum(&frame[inner_off + cs..inner_off + inner_len]);
        set16(frame, inner_off + co, c);
    }
    Ok((inner_off, inner_len, inner_v6, encap, outer_src, outer_dst))
}

/// Result of [`decapsulate_ip`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InnerPacket {
    /// Where the inner IP packet lies in the outer packet.
    pub range: core::ops::Range<usize>,
    /// Encapsulation found.
    pub encap: Encap,
    /// Outer source address (the director).
    pub outer_src: IpAddr,
    /// Outer destination address (this real server).
    pub outer_dst: IpAddr,
}

/// [`decapsulate`] for a bare outer IP packet (as a raw socket delivers it):
/// validates the outer and inner headers exactly the same way, applies a GUE
/// remcsum option in place, and returns where the inner IP packet is — ready to
/// be written to a TUN device — without moving any bytes.
pub fn decapsulate_ip(packet: &mut [u8], gue_port: Option<u16>) -> Result<InnerPacket> {
    let p = crate::parse::parse_ip(packet)?;
    let (off, len, _, encap, outer_src, outer_dst) = decap_inner(packet, &p, gue_port)?;
    Ok(InnerPacket {
        range: off..off + len,
        encap,
        outer_src,
        outer_dst,
    })
}

/// Outcome of the MTU check of docs/internals/forwarding.md#mtu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtuVerdict {
    /// The packet fits; send it.
    Fits,
    /// IPv4 with DF, too big: send ICMP FRAG_NEEDED with this MTU to the sender, drop.
    FragNeeded(u32),
    /// IPv6 too big (first fragment or unfragmented, not relayed ICMP): send
    /// ICMPv6 PACKET_TOO_BIG with this MTU to the sender, drop.
    PacketTooBig(u32),
    /// Too big and fragmentation is allowed (IPv4 without DF, relayed ICMP, a tunnel
    /// with `pmtu_disc` = 0 whose outer packet may be fragmented, or a reassembled IPv6
    /// datagram whose fragments each fit): the packet must be fragmented on output
    /// ([`crate::frag`]).
    MayFragment,
    /// Too big, and the kernel silently drops it (IPv6 non-first fragment or
    /// relayed ICMPv6).
    Drop,
}

/// Inputs of [`mtu_check`] besides the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtuCheck {
    /// Effective MTU: route MTU, or [`tunnel_mtu`] for tunnels.
    pub mtu: u32,
    /// Tunnel method.
    pub tunnel: bool,
    /// `pmtu_disc` sysctl.
    pub pmtu_disc: bool,
    /// The packet is an ICMP error being relayed (`ip_vs_iph_icmp`).
    pub relayed_icmp: bool,
    /// The packet was reassembled by the director and its largest fragment had this IP
    /// length (the kernel's `frag_max_size`).
    pub frag_max: Option<u32>,
}

/// The kernel's `ensure_mtu_is_adequate` (docs/internals/forwarding.md#mtu), applied to the inner packet's
/// family. For IPv4: DF and too big and not relayed ICMP → FRAG_NEEDED, except
/// tunnels with `pmtu_disc` = 0. For IPv6: too big → PACKET_TOO_BIG only for the
/// first fragment and not for relayed ICMP, dropped in any case; a reassembled datagram
/// is too big only when its largest fragment was (`__mtu_check_toobig_v6`), and is
/// otherwise sent on in fragments.
pub fn mtu_check(frame: &[u8], p: &Parsed, c: &MtuCheck) -> Result<MtuVerdict> {
    p.check_against(frame)?;
    let len = p.l3_len() as u32;
    if len <= c.mtu {
        return Ok(MtuVerdict::Fits);
    }
    Ok(match p.l3 {
        L3::Ipv4 => {
            let df = Ipv4Packet::new_unchecked(&frame[p.l2_len..]).dont_frag();
            if c.tunnel && !c.pmtu_disc {
                MtuVerdict::MayFragment
            } else if df && !c.relayed_icmp {
                MtuVerdict::FragNeeded(c.mtu)
            } else {
                MtuVerdict::MayFragment
            }
        }
        _ => {
            let first = !matches!(p.frag, Some(f) if f.offset != 0);
            if c.frag_max.is_some_and(|m| m <= c.mtu) {
                MtuVerdict::MayFragment
            } else if first && !c.relayed_icmp {
                MtuVerdict::PacketTooBig(c.mtu)
            } else {
                MtuVerdict::Drop
            }
        }
    })
}
