//! PING_CHECK (docs/internals/keepalived.md#checkers-and-their-timers): one ICMP/ICMPv6 echo request, success = a matching echo reply within
//! `connect_timeout`.
//!
//! Socket choice: first an unprivileged ICMP datagram socket (`SOCK_DGRAM`, `IPPROTO_ICMP`),
//! which works for any user whose group is inside `net.ipv4.ping_group_range` (for IPv6 the same
//! sysctl applies); the kernel then owns the echo identifier and filters replies for us. If that
//! is refused (EACCES/EPERM: group outside the range, the default on many distributions being
//! `1 0` = nobody) we fall back to a raw socket, which needs CAP_NET_RAW (root). With a raw
//! IPv4 socket replies arrive with their IP header and every ICMP packet is seen (including our
//! own request on loopback), so we match type, identifier and sequence ourselves.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Protocol, Type};

use super::{net, CheckContext, MiscWeight};
use crate::config::PingCheck;
use crate::error::{Error, Result};

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub(crate) async fn check(
    p: &PingCheck,
    timeout: Duration,
    ctx: &CheckContext,
) -> Result<Option<MiscWeight>> {
    let target = SocketAddr::new(p.connect.connect.ip(), 0);
    let v4 = target.is_ipv4();
    let proto = if v4 {
        Protocol::ICMPV4
    } else {
        Protocol::ICMPV6
    };
    let (sock, raw) = match net::dgram_socket(&p.connect, Type::DGRAM, proto, target) {
        Ok(s) => (s, false),
        Err(e)
            if matches!(e.kind(), ErrorKind::PermissionDenied) || e.raw_os_error() == Some(1) =>
        {
            let s = net::dgram_socket(&p.connect, Type::RAW, proto, target).map_err(|e2| {
                Error::Ping(format!(
                    "no ICMP socket: unprivileged ping refused ({e}; see net.ipv4.ping_group_range) \
                     and raw socket refused ({e2}; needs CAP_NET_RAW)"
                ))
            })?;
            (s, true)
        }
        Err(e) => return Err(Error::io("ICMP socket")(e)),
    };
    let r = ctx.random.next_u64();
    let ident = r as u16;
    let seq = (r >> 16) as u16;
    let (req_type, reply_type) = if v4 { (8u8, 0u8) } else { (128u8, 129u8) };
    let mut pkt = vec![req_type, 0, 0, 0];
    pkt.extend_from_slice(&ident.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(b"rvs-health-ping!");
    if v4 {
        // The kernel fills the ICMPv6 checksum itself; for ICMPv4 raw sockets we must.
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }
    net::step(timeout, "ICMP send", sock.send(&pkt)).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Err(_) => return Err(Error::Ping(format!("no echo reply from {}", target.ip()))),
            Ok(r) => r.map_err(Error::io("ICMP receive"))?,
        };
        let mut m = &buf[..n];
        if raw && v4 {
            let ihl = usize::from(m.first().map_or(0, |b| b & 0x0f)) * 4;
            if m.len() < ihl {
                continue;
            }
            m = &m[ihl..];
        }
        if m.len() < 8 || m[0] != reply_type {
            continue;
        }
        // On a datagram socket the kernel rewrote the identifier; only the sequence is ours.
        let id_ok = !raw || m[4..6] == ident.to_be_bytes();
        if id_ok && m[6..8] == seq.to_be_bytes() {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_checksum() {
        // Echo request, id 1, seq 1, no payload: checksum 0xf7fd.
        let pkt = [8, 0, 0, 0, 0, 1, 0, 1];
        assert_eq!(checksum(&pkt), 0xf7fd);
    }
}
