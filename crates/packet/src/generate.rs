//! Messages the director originates, each written into a caller-provided buffer:
//! ICMP/ICMPv6 errors (time exceeded docs/internals/forwarding.md#common-steps-for-every-method, FRAG_NEEDED / PACKET_TOO_BIG docs/internals/forwarding.md#mtu,
//! port unreachable docs/internals/forwarding.md#where-the-director-sees-packets), ARP replies and gratuitous ARP, IPv6 neighbour
//! advertisements.
//!
//! ICMP errors are written as IP packets (L3 onward) so the same code serves a
//! frame's own packet and a client packet dug out of a tunnel ICMP error; prefix
//! them with [`crate::ethernet::write_reply_header`] or
//! [`crate::ethernet::write_header`]. ARP and ND are written as whole frames.
//!
//! Source address of an ICMP error (`src` argument): Linux `icmp_send` /
//! `icmp6_send` use the original packet's destination when it was addressed to
//! the host itself (`RTCF_LOCAL`) — for IPVS that is the VIP, also for the
//! FRAG_NEEDED sent to a client after a tunnel ICMP (docs/internals/forwarding.md#icmp-errors) — and otherwise an
//! address of the interface the packet arrived on (e.g. the DIP for a NAT reply
//! from a real server, `nat_icmp_send`). The caller picks it.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::arp::{self, ArpPacket};
use crate::bytes::{arr16, get16, set16, set32};
use crate::checksum;
use crate::error::{Error, Layer, Result};
use crate::ethernet::{self, ethertype, MacAddr, BROADCAST};
use crate::icmp::{v4, v6, IcmpPacket};
use crate::ipv4::Ipv4Packet;
use crate::ipv6::{self, Ipv6Packet};
use crate::parse::{proto, Parsed, L3};

/// Largest ICMPv4 error datagram: Linux `icmp_send` caps the reply at 576 bytes
/// (RFC 1812 §4.3.2.3: as much of the original as fits in 576).
pub const ICMP4_MAX: usize = 576;
/// Largest ICMPv6 error packet: the IPv6 minimum MTU (RFC 4443 §2.4(c)).
pub const ICMP6_MAX: usize = 1280;
/// TTL / hop limit of generated ICMP errors (Linux default `ip_default_ttl` and
/// IPv6 default hop limit, 64).
pub const DEFAULT_TTL: u8 = 64;
/// Minimum Ethernet frame length without FCS; ARP frames are padded to it.
pub const ETH_MIN: usize = 60;

fn room(out: &[u8], need: usize) -> Result<()> {
    if out.len() < need {
        Err(Error::NoRoom {
            need,
            have: out.len(),
        })
    } else {
        Ok(())
    }
}

/// Writes an ICMPv4 error about the IPv4 packet `orig` (L3 bytes; may be a
/// truncated quote) from `src`, addressed to the original source. Returns the
/// length written, or `Ok(None)` when RFC 1122 §3.2.2 / Linux `icmp_send` forbid
/// an error: the original is a non-first fragment, an ICMP error (or of unknown
/// ICMP type), or its source is unspecified, broadcast or multicast, or its
/// destination broadcast or multicast.
///
/// Quotes as much of the original (bounded by its total length) as fits in
/// [`ICMP4_MAX`]. TOS = `(orig & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL` as in
/// `icmp_send`; DF clear (the ICMP socket uses IP_PMTUDISC_DONT); TTL 64.
#[allow(clippy::too_many_arguments)]
pub fn icmp4_error(
    out: &mut [u8],
    orig: &[u8],
    src: Ipv4Addr,
    msg_type: u8,
    code: u8,
    rest: u32,
    ident: u16,
) -> Result<Option<usize>> {
    crate::error::need(orig, 20, Layer::Ipv4)?;
    let o = Ipv4Packet::new_unchecked(orig);
    if o.version() != 4 {
        return Err(Error::BadVersion(o.version()));
    }
    let hl = o.header_len();
    if hl < 20 || hl > orig.len() {
        return Err(Error::BadIhl(orig[0] & 0xf));
    }
    if o.frag_offset() != 0 {
        return Ok(None);
    }
    let (os, od) = (o.src(), o.dst());
    if os.is_unspecified() || os.is_broadcast() || os.is_multicast() {
        return Ok(None);
    }
    if od.is_broadcast() || od.is_multicast() {
        return Ok(None);
    }
    if o.protocol() == proto::ICMP {
        // An ICMP error is never sent about an ICMP error, nor about a message
        // whose type cannot be read (`icmp_send` treats unknown types as errors).
        match orig.get(hl) {
            Some(&t) if !v4::is_error(t) && t <= 18 => {}
            _ => return Ok(None),
        }
    }
    let olen = usize::from(o.total_len()).clamp(hl, orig.len());
    let quote = olen.min(ICMP4_MAX - 28);
    let total = 28 + quote;
    room(out, total)?;
    let tos = (o.tos() & 0x1e) | 0xc0;
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut out[..total]);
        ip.set_version_ihl(20);
        ip.set_tos(tos);
        ip.set_total_len(total as u16);
        ip.set_ident(ident);
        ip.set_flags_frag(0);
        ip.set_ttl(DEFAULT_TTL);
        ip.set_protocol(proto::ICMP);
        ip.set_src(src);
        ip.set_dst(os);
        ip.fill_checksum();
    }
    out[28..total].copy_from_slice(&orig[..quote]);
    let mut ic = IcmpPacket::new_unchecked(&mut out[20..total]);
    ic.set_type_code(msg_type, code);
    ic.set_rest(rest);
    ic.set_checksum(0);
    let c = checksum::checksum(&out[20..total]);
    set16(out, 22, c);
    Ok(Some(total))
}

/// ICMP TIME_EXCEEDED / TTL exceeded in transit (docs/internals/forwarding.md#common-steps-for-every-method: TTL ≤ 1).
pub fn time_exceeded_v4(
    out: &mut [u8],
    orig: &[u8],
    src: Ipv4Addr,
    ident: u16,
) -> Result<Option<usize>> {
    icmp4_error(out, orig, src, v4::TIME_EXCEEDED, v4::EXC_TTL, 0, ident)
}

/// ICMP DEST_UNREACH / FRAG_NEEDED with the next-hop MTU (RFC 1191 §4, docs/internals/forwarding.md#mtu).
pub fn frag_needed_v4(
    out: &mut [u8],
    orig: &[u8],
    src: Ipv4Addr,
    mtu: u32,
    ident: u16,
) -> Result<Option<usize>> {
    let rest = mtu.min(0xffff);
    icmp4_error(
        out,
        orig,
        src,
        v4::DEST_UNREACH,
        v4::FRAG_NEEDED,
        rest,
        ident,
    )
}

/// ICMP DEST_UNREACH / PORT_UNREACH (`nat_icmp_send`, docs/internals/forwarding.md#where-the-director-sees-packets).
pub fn port_unreachable_v4(
    out: &mut [u8],
    orig: &[u8],
    src: Ipv4Addr,
    ident: u16,
) -> Result<Option<usize>> {
    icmp4_error(out, orig, src, v4::DEST_UNREACH, v4::PORT_UNREACH, 0, ident)
}

/// Writes an ICMPv6 error about the IPv6 packet `orig` (L3 bytes, possibly a
/// truncated quote) from `src`, to the original source. `Ok(None)` where RFC 4443
/// §2.4(e) forbids one: the original is an ICMPv6 error or a redirect, its source
/// is unspecified or multicast, or its destination is multicast (except for
/// PACKET_TOO_BIG and parameter problem code 2). Quotes as much as fits in
/// [`ICMP6_MAX`]; traffic class 0, hop limit 64 (Linux `icmp6_send` defaults).
pub fn icmp6_error(
    out: &mut [u8],
    orig: &[u8],
    src: Ipv6Addr,
    msg_type: u8,
    code: u8,
    info: u32,
) -> Result<Option<usize>> {
    crate::error::need(orig, 40, Layer::Ipv6)?;
    if orig[0] >> 4 != 6 {
        return Err(Error::BadVersion(orig[0] >> 4));
    }
    let os = Ipv6Addr::from(arr16(orig, 8));
    let od = Ipv6Addr::from(arr16(orig, 24));
    if os.is_unspecified() || os.is_multicast() {
        return Ok(None);
    }
    let mcast_ok = msg_type == v6::PACKET_TOO_BIG || (msg_type == v6::PARAM_PROBLEM && code == 2);
    if od.is_multicast() && !mcast_ok {
        return Ok(None);
    }
    let olen = (40 + usize::from(get16(orig, 4))).min(orig.len());
    if let Ok(w) = ipv6::walk_ext(orig, olen) {
        if w.proto == proto::ICMPV6 && !matches!(w.frag, Some(f) if f.offset != 0) {
            match orig.get(w.l4_off) {
                Some(&t) if !v6::is_error(t) && t != 137 => {}
                _ => return Ok(None),
            }
        }
    }
    let quote = olen.min(ICMP6_MAX - 48);
    let total = 48 + quote;
    room(out, total)?;
    {
        let mut ip = Ipv6Packet::new_unchecked(&mut out[..total]);
        ip.set_version_tc_flow(0, 0);
        ip.set_payload_len((total - 40) as u16);
        ip.set_next_header(proto::ICMPV6);
        ip.set_hop_limit(DEFAULT_TTL);
        ip.set_src(src);
        ip.set_dst(os);
    }
    out[48..total].copy_from_slice(&orig[..quote]);
    let mut ic = IcmpPacket::new_unchecked(&mut out[40..total]);
    ic.set_type_code(msg_type, code);
    ic.set_rest(info);
    ic.set_checksum(0);
    let acc = checksum::pseudo_v6(src, os, proto::ICMPV6, (total - 40) as u32);
    let c = !checksum::fold(checksum::sum(acc, &out[40..total]));
    set16(out, 42, c);
    Ok(Some(total))
}

/// ICMPv6 TIME_EXCEEDED / hop limit exceeded (docs/internals/forwarding.md#common-steps-for-every-method).
pub fn time_exceeded_v6(out: &mut [u8], orig: &[u8], src: Ipv6Addr) -> Result<Option<usize>> {
    icmp6_error(out, orig, src, v6::TIME_EXCEEDED, v6::EXC_HOPLIMIT, 0)
}

/// ICMPv6 PACKET_TOO_BIG with the MTU (docs/internals/forwarding.md#mtu).
pub fn packet_too_big(
    out: &mut [u8],
    orig: &[u8],
    src: Ipv6Addr,
    mtu: u32,
) -> Result<Option<usize>> {
    icmp6_error(out, orig, src, v6::PACKET_TOO_BIG, 0, mtu)
}

/// ICMPv6 DEST_UNREACH / port unreachable.
pub fn port_unreachable_v6(out: &mut [u8], orig: &[u8], src: Ipv6Addr) -> Result<Option<usize>> {
    icmp6_error(out, orig, src, v6::DEST_UNREACH, v6::PORT_UNREACH, 0)
}

/// The target address of an ARP request (`Some` only for op = request), so the
/// caller can check whether it owns it.
pub fn arp_request_target(frame: &[u8], p: &Parsed) -> Option<Ipv4Addr> {
    if p.l3 != L3::Arp || frame.len() < p.l2_len + arp::LEN {
        return None;
    }
    let a = ArpPacket::new_unchecked(&frame[p.l2_len..]);
    (a.op() == arp::OP_REQUEST).then(|| a.tpa())
}

/// Writes the ARP reply to the request in `frame`: "`tpa` is at `our_mac`", to the
/// requester's MAC, VLAN tags kept, padded to [`ETH_MIN`]. Returns the length.
pub fn arp_reply(out: &mut [u8], frame: &[u8], p: &Parsed, our_mac: MacAddr) -> Result<usize> {
    if arp_request_target(frame, p).is_none() {
        return Err(Error::Unsupported("not an ARP request"));
    }
    let req = ArpPacket::new_unchecked(&frame[p.l2_len..]);
    let (sha, spa, tpa) = (req.sha(), req.spa(), req.tpa());
    let l2 = ethernet::write_header(out, sha, our_mac, p.vlan_tags(), ethertype::ARP)?;
    let total = (l2 + arp::LEN).max(ETH_MIN);
    room(out, total)?;
    ArpPacket::new_unchecked(&mut out[l2..]).write(arp::OP_REPLY, our_mac, tpa, sha, spa);
    out[l2 + arp::LEN..total].fill(0);
    Ok(total)
}

/// Writes a gratuitous ARP announcing `vip` at `mac` (what keepalived sends when it
/// takes a VIP): broadcast ARP request with sender = target = `vip` and a zero
/// target MAC (RFC 5227 §2.3 ARP announcement), padded to [`ETH_MIN`].
pub fn gratuitous_arp(
    out: &mut [u8],
    mac: MacAddr,
    vip: Ipv4Addr,
    vlans: &[(u16, u16)],
) -> Result<usize> {
    let l2 = ethernet::write_header(out, BROADCAST, mac, vlans, ethertype::ARP)?;
    let total = (l2 + arp::LEN).max(ETH_MIN);
    room(out, total)?;
    ArpPacket::new_unchecked(&mut out[l2..]).write(arp::OP_REQUEST, mac, vip, [0; 6], vip);
    out[l2 + arp::LEN..total].fill(0);
    Ok(total)
}

/// A validated neighbour solicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solicitation {
    /// The address asked for.
    pub target: Ipv6Addr,
    /// IPv6 source of the solicitation (unspecified for duplicate address detection).
    pub src: Ipv6Addr,
    /// Source link-layer address option, when present.
    pub src_lladdr: Option<MacAddr>,
    /// Ethernet source of the frame.
    pub eth_src: MacAddr,
}

/// Validates a neighbour solicitation per RFC 4861 §7.1.1 (hop limit 255, code 0,
/// ≥ 24 bytes, valid checksum, target not multicast, no source link-layer option
/// when the source is unspecified) and returns it.
pub fn neighbor_solicitation(frame: &[u8], p: &Parsed) -> Option<Solicitation> {
    if p.l3 != L3::Ipv6 || p.proto != proto::ICMPV6 || p.is_fragment() {
        return None;
    }
    p.check_against(frame).ok()?;
    let ip = Ipv6Packet::new_unchecked(&frame[p.l2_len..]);
    let icmp = &frame[p.l4_off..p.l3_end];
    if ip.hop_limit() != 255 || icmp.len() < 24 || icmp[0] != v6::NEIGHBOR_SOLICIT || icmp[1] != 0 {
        return None;
    }
    crate::parse::verify_l4_checksum(frame, p).ok()?;
    let ic = IcmpPacket::new_unchecked(icmp);
    let target = ic.nd_target()?;
    let lladdr = ic.nd_lladdr_option(v6::OPT_SOURCE_LLADDR);
    let src = ip.src();
    if target.is_multicast() || (src.is_unspecified() && lladdr.is_some()) {
        return None;
    }
    Some(Solicitation {
        target,
        src,
        src_lladdr: lladdr,
        eth_src: crate::bytes::arr6(frame, 6),
    })
}

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

fn multicast_mac(a: Ipv6Addr) -> MacAddr {
    let o = a.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

fn write_na(
    out: &mut [u8],
    eth_dst: MacAddr,
    our_mac: MacAddr,
    vlans: &[(u16, u16)],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    flags: u32,
) -> Result<usize> {
    let l2 = ethernet::write_header(out, eth_dst, our_mac, vlans, ethertype::IPV6)?;
    let total = l2 + 40 + 32;
    room(out, total)?;
    let f = &mut out[l2..total];
    {
        let mut ip = Ipv6Packet::new_unchecked(&mut f[..]);
        ip.set_version_tc_flow(0, 0);
        ip.set_payload_len(32);
        ip.set_next_header(proto::ICMPV6);
        ip.set_hop_limit(255);
        ip.set_src(src);
        ip.set_dst(dst);
    }
    f[40] = v6::NEIGHBOR_ADVERT;
    f[41] = 0;
    set16(f, 42, 0);
    set32(f, 44, flags);
    f[48..64].copy_from_slice(&src.octets());
    f[64] = v6::OPT_TARGET_LLADDR;
    f[65] = 1;
    f[66..72].copy_from_slice(&our_mac);
    let acc = checksum::pseudo_v6(src, dst, proto::ICMPV6, 32);
    let c = !checksum::fold(checksum::sum(acc, &f[40..72]));
    set16(f, 42, c);
    Ok(total)
}

/// Writes the solicited neighbour advertisement answering `ns` for its target at
/// `our_mac` (RFC 4861 §7.2.4): from the target address, to the solicitation's
/// source with S=1, or to all-nodes with S=0 when the source was unspecified
/// (DAD); O=1, R=0; target link-layer address option; hop limit 255. The Ethernet
/// destination is the source link-layer option, else the frame's source.
pub fn neighbor_advert_reply(
    out: &mut [u8],
    ns: &Solicitation,
    our_mac: MacAddr,
    vlans: &[(u16, u16)],
) -> Result<usize> {
    if ns.src.is_unspecified() {
        write_na(
            out,
            multicast_mac(ALL_NODES),
            our_mac,
            vlans,
            ns.target,
            ALL_NODES,
            v6::NA_OVERRIDE,
        )
    } else {
        write_na(
            out,
            ns.src_lladdr.unwrap_or(ns.eth_src),
            our_mac,
            vlans,
            ns.target,
            ns.src,
            v6::NA_SOLICITED | v6::NA_OVERRIDE,
        )
    }
}

/// Writes an unsolicited neighbour advertisement for `addr` at `mac` to all-nodes
/// (RFC 4861 §7.2.6: S=0, O=1), the IPv6 counterpart of gratuitous ARP.
pub fn unsolicited_neighbor_advert(
    out: &mut [u8],
    mac: MacAddr,
    addr: Ipv6Addr,
    vlans: &[(u16, u16)],
) -> Result<usize> {
    write_na(
        out,
        multicast_mac(ALL_NODES),
        mac,
        vlans,
        addr,
        ALL_NODES,
        v6::NA_OVERRIDE,
    )
}
