//! In-place rewrites of the forwarding methods that keep the frame size: NAT
//! (`-m`, docs/internals/forwarding.md#nat), FULLNAT (SNAT + DNAT in one pass), TTL / hop-limit
//! decrement (docs/internals/forwarding.md#common-steps-for-every-method) and the DR MAC rewrite (`-g`, docs/internals/forwarding.md#direct-routing).

use core::net::IpAddr;

use crate::bytes::{get16, set16};
use crate::checksum::{self, update128, update16, update32};
use crate::error::{Error, Layer, Result};
use crate::ethernet::MacAddr;
use crate::parse::{self, proto, Parsed, L3};

/// A transport endpoint (address and port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Address.
    pub addr: IpAddr,
    /// Port (host order).
    pub port: u16,
}

impl Endpoint {
    /// Builds an endpoint.
    pub fn new(addr: IpAddr, port: u16) -> Self {
        Self { addr, port }
    }
}

/// What NAT does with an IPv4 UDP datagram whose checksum is 0 ("none").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UdpZeroChecksum {
    /// Compute a full checksum, as the kernel's `udp_snat_handler` /
    /// `udp_dnat_handler` do (they take the full-recompute branch when the old
    /// checksum is 0; docs/internals/forwarding.md#nat). A fragment cannot be summed here and keeps 0.
    #[default]
    Compute,
    /// Leave 0: the datagram goes out without a checksum, as it came in (RFC 768).
    /// IPv4 only: an (invalid) IPv6 zero checksum is always computed.
    Keep,
}

/// Outcome of a TTL / hop-limit decrement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlVerdict {
    /// Decremented; forward the packet.
    Forward,
    /// TTL was ≤ 1: the packet must not be forwarded; answer with ICMP time
    /// exceeded (docs/internals/forwarding.md#common-steps-for-every-method) and drop. The frame was not modified.
    Expired,
}

fn check_ip(frame: &[u8], p: &Parsed) -> Result<()> {
    p.check_against(frame)
}

/// Rewrites source and/or destination address and port of a TCP or UDP packet
/// with checksums kept valid:
///
/// - IPv4 header checksum recomputed (`ip_send_check`, as `ip_vs_nat_xmit` does);
/// - TCP/UDP checksum updated incrementally for the pseudo-header address change
///   and the port change (RFC 1624; the kernel's `tcp_fast_csum_update` /
///   `udp_fast_csum_update`), a UDP result of 0 sent as 0xFFFF (`CSUM_MANGLED_0`);
/// - IPv4 UDP checksum 0 handled per `udp_zero`.
///
/// Fragments: the first fragment is rewritten in full (the checksum it carries
/// covers the whole datagram, and an incremental update is exact for it). A
/// non-first fragment has no transport header: only its addresses change and the
/// ports are ignored; this stays consistent as long as every fragment of the
/// datagram is rewritten with the same endpoints. (The kernel reassembles first,
/// docs/internals/forwarding.md#where-the-director-sees-packets.) The family of each endpoint must match the packet.
pub fn rewrite(
    frame: &mut [u8],
    p: &Parsed,
    src: Option<Endpoint>,
    dst: Option<Endpoint>,
    udp_zero: UdpZeroChecksum,
) -> Result<()> {
    check_ip(frame, p)?;
    for ep in [src, dst].into_iter().flatten() {
        if !matches!(
            (ep.addr, p.l3),
            (IpAddr::V4(_), L3::Ipv4) | (IpAddr::V6(_), L3::Ipv6)
        ) {
            return Err(Error::FamilyMismatch);
        }
    }
    let csum_off = match p.proto {
        proto::TCP => crate::tcp::CHECKSUM_OFF,
        proto::UDP => crate::udp::CHECKSUM_OFF,
        proto::SCTP => return rewrite_sctp(frame, p, src, dst),
        _ => {
            return Err(Error::Unsupported(
                "NAT of a protocol other than TCP/UDP/SCTP",
            ))
        }
    };
    let l4 = p.has_l4();
    if l4 && p.l4_off + csum_off + 2 > p.l3_end {
        return Err(Error::Truncated {
            layer: if p.proto == proto::TCP {
                Layer::Tcp
            } else {
                Layer::Udp
            },
            need: p.l4_off + csum_off + 2,
            have: p.l3_end,
        });
    }
    let ip = p.l2_len;
    if p.l3 == L3::Ipv4 {
        // Validate the header length before touching anything (stale `Parsed`).
        ipv4_header_len(frame, ip, p.l3_end)?;
    }
    let co = p.l4_off + csum_off;
    let mut c = if l4 { get16(frame, co) } else { 0 };
    let udp_zero_in = l4 && p.proto == proto::UDP && c == 0;
    let (sa_off, da_off, alen) = match p.l3 {
        L3::Ipv4 => (ip + 12, ip + 16, 4),
        _ => (ip + 8, ip + 24, 16),
    };
    for (ep, a_off, p_off) in [(src, sa_off, 0usize), (dst, da_off, 2usize)] {
        let Some(ep) = ep else { continue };
        match (ep.addr, p.l3) {
            (IpAddr::V4(a), L3::Ipv4) => {
                let new = a.octets();
                let old = crate::bytes::arr4(frame, a_off);
                c = update32(c, old, new);
                frame[a_off..a_off + alen].copy_from_slice(&new);
            }
            (IpAddr::V6(a), L3::Ipv6) => {
                let new = a.octets();
                let old = crate::bytes::arr16(frame, a_off);
                c = update128(c, old, new);
                frame[a_off..a_off + alen].copy_from_slice(&new);
            }
            _ => return Err(Error::FamilyMismatch),
        }
        if l4 {
            let old = get16(frame, p.l4_off + p_off);
            c = update16(c, old, ep.port);
            set16(frame, p.l4_off + p_off, ep.port);
        }
    }
    if p.l3 == L3::Ipv4 {
        ipv4_refresh_checksum(frame, ip, p.l3_end)?;
    }
    if l4 {
        if udp_zero_in {
            // IPv6 forbids 0 (RFC 8200 §8.1), so it is computed under either policy.
            let compute = udp_zero == UdpZeroChecksum::Compute || p.l3 == L3::Ipv6;
            if compute && !p.is_fragment() {
                return parse::fill_l4_checksum(frame, p);
            }
            // RFC 768: 0 = no checksum; a fragment cannot be summed here.
            c = 0;
        } else if p.proto == proto::UDP {
            c = checksum::udp_mangle_zero(c);
        }
        set16(frame, co, c);
    }
    Ok(())
}

/// SCTP NAT (docs/internals/forwarding.md#nat: "SCTP NAT recomputes the CRC32c"): SCTP has no
/// pseudo-header, so the CRC only changes with the ports; it is recomputed over
/// the whole packet. A first fragment cannot be summed here ([`Error::Fragment`]);
/// a non-first fragment gets its addresses only.
fn rewrite_sctp(
    frame: &mut [u8],
    p: &Parsed,
    src: Option<Endpoint>,
    dst: Option<Endpoint>,
) -> Result<()> {
    let ip = p.l2_len;
    if p.l3 == L3::Ipv4 {
        ipv4_header_len(frame, ip, p.l3_end)?;
    }
    let l4 = p.has_l4();
    if l4 && p.is_fragment() {
        return Err(Error::Fragment);
    }
    if l4 && p.l4_off + 12 > p.l3_end {
        return Err(Error::Truncated {
            layer: Layer::Sctp,
            need: p.l4_off + 12,
            have: p.l3_end,
        });
    }
    let (sa, da) = if p.l3 == L3::Ipv4 {
        (ip + 12, ip + 16)
    } else {
        (ip + 8, ip + 24)
    };
    for (ep, a_off, p_off) in [(src, sa, 0usize), (dst, da, 2usize)] {
        let Some(ep) = ep else { continue };
        match ep.addr {
            IpAddr::V4(a) => frame[a_off..a_off + 4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => frame[a_off..a_off + 16].copy_from_slice(&a.octets()),
        }
        if l4 {
            set16(frame, p.l4_off + p_off, ep.port);
        }
    }
    if p.l3 == L3::Ipv4 {
        ipv4_refresh_checksum(frame, ip, p.l3_end)?;
    }
    if l4 {
        let c = p.l4_off + 8;
        frame[c..c + 4].fill(0);
        let crc = checksum::sctp_checksum_bytes(&frame[p.l4_off..p.l3_end]);
        frame[c..c + 4].copy_from_slice(&crc);
    }
    Ok(())
}

/// Length of the IPv4 header at `ip`, checked to lie within `ip..end`.
pub(crate) fn ipv4_header_len(frame: &[u8], ip: usize, end: usize) -> Result<usize> {
    let hl = usize::from(frame.get(ip).copied().unwrap_or(0) & 0x0f) * 4;
    if hl < 20 || ip + hl > end || end > frame.len() {
        return Err(Error::BadIhl((hl / 4) as u8));
    }
    Ok(hl)
}

/// Recomputes the IPv4 header checksum at `ip` (the kernel's `ip_send_check`),
/// after checking the header lies within `ip..end`.
pub(crate) fn ipv4_refresh_checksum(frame: &mut [u8], ip: usize, end: usize) -> Result<()> {
    let hl = ipv4_header_len(frame, ip, end)?;
    frame[ip + 10] = 0;
    frame[ip + 11] = 0;
    let c = checksum::checksum(&frame[ip..ip + hl]);
    set16(frame, ip + 10, c);
    Ok(())
}

/// NAT request path (client → RS): destination := RS `daddr:dport` (docs/internals/forwarding.md#nat).
pub fn dnat(frame: &mut [u8], p: &Parsed, dst: Endpoint) -> Result<()> {
    rewrite(frame, p, None, Some(dst), UdpZeroChecksum::Compute)
}

/// NAT reply path (RS → client): source := `VIP:vport` (docs/internals/forwarding.md#nat, `handle_response`).
pub fn snat(frame: &mut [u8], p: &Parsed, src: Endpoint) -> Result<()> {
    rewrite(frame, p, Some(src), None, UdpZeroChecksum::Compute)
}

/// FULLNAT in one pass: request `CIP:cport → VIP:vport` becomes `LIP:lport →
/// RIP:rport`; the reply `RIP:rport → LIP:lport` becomes `VIP:vport → CIP:cport`.
pub fn fullnat(frame: &mut [u8], p: &Parsed, src: Endpoint, dst: Endpoint) -> Result<()> {
    rewrite(frame, p, Some(src), Some(dst), UdpZeroChecksum::Compute)
}

/// Decrements the IPv4 TTL (with the kernel's `ip_decrease_ttl` incremental
/// checksum step: add 0x0100 with end-around carry) or the IPv6 hop limit.
/// TTL ≤ 1 → [`TtlVerdict::Expired`], frame untouched (docs/internals/forwarding.md#common-steps-for-every-method).
pub fn decrement_ttl(frame: &mut [u8], p: &Parsed) -> Result<TtlVerdict> {
    check_ip(frame, p)?;
    let ip = p.l2_len;
    match p.l3 {
        L3::Ipv4 => {
            if frame[ip + 8] <= 1 {
                return Ok(TtlVerdict::Expired);
            }
            frame[ip + 8] -= 1;
            let c = u32::from(get16(frame, ip + 10)) + 0x0100;
            let c = c + u32::from(c >= 0xffff);
            set16(frame, ip + 10, c as u16);
        }
        _ => {
            if frame[ip + 7] <= 1 {
                return Ok(TtlVerdict::Expired);
            }
            frame[ip + 7] -= 1;
        }
    }
    Ok(TtlVerdict::Forward)
}

/// Fails unless `p` describes a frame with an Ethernet header.
pub(crate) fn need_l2(p: &Parsed) -> Result<()> {
    if p.l2_len < crate::ethernet::HEADER_LEN {
        return Err(Error::Unsupported("operation needs an Ethernet header"));
    }
    Ok(())
}

/// Sets the Ethernet destination and source MACs.
pub fn set_macs(frame: &mut [u8], dst: MacAddr, src: MacAddr) -> Result<()> {
    crate::error::need(frame, 12, Layer::Ethernet)?;
    frame[0..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    Ok(())
}

/// DR (`-g`, docs/internals/forwarding.md#direct-routing): the IP packet is unchanged except the TTL decrement; the
/// frame goes to the RS's MAC (`dst`) from the egress MAC (`src`) while the IP
/// destination stays the VIP. On [`TtlVerdict::Expired`] nothing is changed.
pub fn dr_forward(frame: &mut [u8], p: &Parsed, dst: MacAddr, src: MacAddr) -> Result<TtlVerdict> {
    need_l2(p)?;
    let v = decrement_ttl(frame, p)?;
    if v == TtlVerdict::Forward {
        set_macs(frame, dst, src)?;
    }
    Ok(v)
}
