//! The per-method transmit sequence of `ip_vs_*_xmit` (docs/internals/forwarding.md) as
//! one call, for a data plane that has already decided the connection and the
//! route: TTL / hop limit decrement, MTU check, then the method's rewrite.
//!
//! The order copies `__ip_vs_get_out_rt`: the TTL is decremented first (TTL ≤ 1
//! → time exceeded, frame untouched), then `ensure_mtu_is_adequate` runs on the
//! (inner) packet, and only then is the frame rewritten or encapsulated. The ICMP
//! messages the outcome asks for are built with [`crate::generate`], because only
//! the caller knows their source address.

use crate::error::Result;
use crate::ethernet::MacAddr;
use crate::nat::{self, Endpoint, TtlVerdict};
use crate::parse::{Parsed, L3};
use crate::tunnel::{self, MtuCheck, MtuVerdict, TunnelParams};

/// What to do to the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method<'a> {
    /// NAT request (`-m`, docs/internals/forwarding.md#nat): destination := RS.
    Nat {
        /// RS `daddr:dport`.
        dst: Endpoint,
    },
    /// NAT reply (`handle_response`, docs/internals/forwarding.md#where-the-director-sees-packets): source := `VIP:vport`.
    NatReply {
        /// `VIP:vport`.
        src: Endpoint,
    },
    /// FULLNAT, either direction: both endpoints replaced.
    FullNat {
        /// New source.
        src: Endpoint,
        /// New destination.
        dst: Endpoint,
    },
    /// Direct routing (`-g`, docs/internals/forwarding.md#direct-routing): only the MACs (and TTL) change.
    Dr,
    /// Tunnel (`-i`, docs/internals/forwarding.md#tunnelling). Its MACs are in the parameters.
    Tun(&'a TunnelParams),
}

/// The route toward the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    /// Next-hop MAC (ignored for [`Method::Tun`], which carries its own).
    pub dst_mac: MacAddr,
    /// Egress interface MAC (ignored for [`Method::Tun`]).
    pub src_mac: MacAddr,
    /// Route MTU.
    pub mtu: u32,
    /// `pmtu_disc` sysctl.
    pub pmtu_disc: bool,
    /// The frame is an ICMP error being relayed (no FRAG_NEEDED about it).
    pub relayed_icmp: bool,
    /// The frame is a datagram the director reassembled, whose largest fragment had this IP
    /// length: an IPv6 one is too big only when that fragment is (docs/internals/forwarding.md#mtu).
    pub frag_max: Option<u32>,
}

/// Result of [`transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Rewritten; send `buf[start..start + len]`.
    Send {
        /// Frame start.
        start: usize,
        /// Frame length.
        len: usize,
    },
    /// Rewritten but larger than `mtu` and allowed to be fragmented: send the
    /// fragments of `buf[start..start + len]` ([`crate::frag::fragment`]).
    Fragment {
        /// Frame start.
        start: usize,
        /// Frame length.
        len: usize,
        /// IP MTU of the fragments.
        mtu: u32,
    },
    /// TTL / hop limit ≤ 1: answer ICMP time exceeded, drop. Frame untouched.
    TimeExceeded,
    /// IPv4, DF, too big: answer ICMP FRAG_NEEDED with this MTU, drop. Untouched.
    FragNeeded(u32),
    /// IPv6 too big: answer ICMPv6 PACKET_TOO_BIG with this MTU, drop. Untouched.
    PacketTooBig(u32),
    /// Too big and nothing is sent back (IPv6 non-first fragment, relayed ICMPv6).
    Drop,
}

/// Runs the transmit sequence of `method` on the frame `buf[start..start + len]`
/// classified as `p` (offsets relative to `start`). Errors are malformed input or
/// impossible parameters (family mismatch, no headroom, tunnel MTU too small).
pub fn transmit(
    buf: &mut [u8],
    start: usize,
    len: usize,
    p: &Parsed,
    method: Method<'_>,
    eg: &Egress,
) -> Result<Outcome> {
    let end = start
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or(crate::Error::NoRoom {
            need: start.saturating_add(len),
            have: buf.len(),
        })?;
    let frame = &mut buf[start..end];
    p.check_against(frame)?;
    let (mtu, is_tunnel) = match method {
        Method::Tun(t) => {
            let remcsum_opt = t.csum == tunnel::TunnelCsum::RemCsum && t.inner_partial.is_some();
            let outer_v6 = t.dst.is_ipv6();
            (
                tunnel::tunnel_mtu(eg.mtu, outer_v6, t.kind, t.csum, remcsum_opt)?,
                true,
            )
        }
        _ => (eg.mtu, false),
    };
    let saved = save_ttl(frame, p);
    if nat::decrement_ttl(frame, p)? == TtlVerdict::Expired {
        return Ok(Outcome::TimeExceeded);
    }
    let check = MtuCheck {
        mtu,
        tunnel: is_tunnel,
        pmtu_disc: eg.pmtu_disc,
        relayed_icmp: eg.relayed_icmp,
        frag_max: eg.frag_max,
    };
    let verdict = tunnel::mtu_check(frame, p, &check)?;
    let undo_ttl = |frame: &mut [u8]| restore_ttl(frame, p, saved);
    let fragment = match verdict {
        MtuVerdict::Fits => false,
        MtuVerdict::MayFragment => true,
        MtuVerdict::FragNeeded(m) => {
            undo_ttl(frame);
            return Ok(Outcome::FragNeeded(m));
        }
        MtuVerdict::PacketTooBig(m) => {
            undo_ttl(frame);
            return Ok(Outcome::PacketTooBig(m));
        }
        MtuVerdict::Drop => {
            undo_ttl(frame);
            return Ok(Outcome::Drop);
        }
    };
    let rewritten = match method {
        Method::Nat { dst } => nat::dnat(frame, p, dst).map(|()| (start, len)),
        Method::NatReply { src } => nat::snat(frame, p, src).map(|()| (start, len)),
        Method::FullNat { src, dst } => nat::fullnat(frame, p, src, dst).map(|()| (start, len)),
        Method::Dr => nat::set_macs(frame, eg.dst_mac, eg.src_mac).map(|()| (start, len)),
        Method::Tun(t) => tunnel::encapsulate(buf, start, len, p, t),
    };
    let (start, len) = match rewritten {
        Ok(r) => r,
        Err(e) => {
            // Leave the frame as it came for the caller's drop accounting.
            restore_ttl(&mut buf[start..end], p, saved);
            return Err(e);
        }
    };
    if let Method::Nat { .. } | Method::NatReply { .. } | Method::FullNat { .. } | Method::Dr =
        method
    {
        nat::set_macs(&mut buf[start..start + len], eg.dst_mac, eg.src_mac)?;
    }
    Ok(if fragment {
        Outcome::Fragment {
            start,
            len,
            // The outer packet of a tunnel is fragmented at the route MTU.
            mtu: eg.mtu,
        }
    } else {
        Outcome::Send { start, len }
    })
}

/// TTL (or hop limit) byte and IPv4 header checksum before the decrement.
fn save_ttl(frame: &[u8], p: &Parsed) -> [u8; 3] {
    let ip = p.l2_len;
    match p.l3 {
        L3::Ipv4 => [frame[ip + 8], frame[ip + 10], frame[ip + 11]],
        _ => [frame[ip + 7], 0, 0],
    }
}

/// Puts back what [`save_ttl`] saved, so a refused frame is returned byte for
/// byte as it came (the ICMP error quotes the packet as it arrived).
fn restore_ttl(frame: &mut [u8], p: &Parsed, saved: [u8; 3]) {
    let ip = p.l2_len;
    match p.l3 {
        L3::Ipv4 => {
            frame[ip + 8] = saved[0];
            frame[ip + 10] = saved[1];
            frame[ip + 11] = saved[2];
        }
        _ => frame[ip + 7] = saved[0],
    }
}
