//! PROXY protocol v1/v2 header encoders (HAProxy's `proxy-protocol.txt`).
//!
//! Hand-written because only encoding is needed on the hot path and both headers are tiny and
//! fixed-shape; headers are built on the stack, no allocation. Tests check them with the `ppp`
//! parser.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use crate::api::Protocol;

/// Longest header produced: v1 TCP6 with two full IPv6 addresses is 104 bytes (spec max 107).
const MAX_LEN: usize = 108;

/// The v2 signature, the first 12 bytes of every v2 header.
const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// An encoded header, kept inline.
#[derive(Clone, Copy)]
pub struct ProxyHeader {
    buf: [u8; MAX_LEN],
    len: usize,
}

impl ProxyHeader {
    /// The header bytes to send before the payload.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Debug for ProxyHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ProxyHeader")
            .field(&self.as_bytes())
            .finish()
    }
}

/// The v1 text header for a TCP connection from `client` to `vip`.
///
/// `client` and `vip` have the same family (a listener is one family, IPv6 sockets are v6-only);
/// if they ever differ the header says `UNKNOWN`, which the spec allows receivers to accept.
pub fn encode_v1(client: SocketAddr, vip: SocketAddr) -> ProxyHeader {
    let mut h = ProxyHeader {
        buf: [0; MAX_LEN],
        len: 0,
    };
    let mut cur = std::io::Cursor::new(&mut h.buf[..]);
    // Cannot fail: the longest possible line fits in MAX_LEN.
    let res = match (client.ip(), vip.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => write!(
            cur,
            "PROXY TCP4 {s} {d} {} {}\r\n",
            client.port(),
            vip.port()
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => write!(
            cur,
            "PROXY TCP6 {s} {d} {} {}\r\n",
            client.port(),
            vip.port()
        ),
        _ => write!(cur, "PROXY UNKNOWN\r\n"),
    };
    debug_assert!(res.is_ok());
    h.len = cur.position() as usize;
    h
}

/// The v2 binary header (command PROXY) for a flow of `protocol` from `client` to `vip`.
pub fn encode_v2(protocol: Protocol, client: SocketAddr, vip: SocketAddr) -> ProxyHeader {
    let mut h = ProxyHeader {
        buf: [0; MAX_LEN],
        len: 0,
    };
    h.buf[..12].copy_from_slice(&V2_SIGNATURE);
    // Version 2 in the high nibble, command PROXY (1) in the low nibble.
    h.buf[12] = 0x21;
    // STREAM (1) or DGRAM (2). SCTP never reaches the proxy (its listeners are refused); were
    // it to, its one-to-one sockets are streams.
    let transport = match protocol {
        Protocol::Tcp | Protocol::Sctp => 0x1,
        Protocol::Udp => 0x2,
    };
    match (client.ip(), vip.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            h.buf[13] = 0x10 | transport;
            h.buf[14..16].copy_from_slice(&12u16.to_be_bytes());
            h.buf[16..20].copy_from_slice(&s.octets());
            h.buf[20..24].copy_from_slice(&d.octets());
            h.buf[24..26].copy_from_slice(&client.port().to_be_bytes());
            h.buf[26..28].copy_from_slice(&vip.port().to_be_bytes());
            h.len = 28;
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            h.buf[13] = 0x20 | transport;
            h.buf[14..16].copy_from_slice(&36u16.to_be_bytes());
            h.buf[16..32].copy_from_slice(&s.octets());
            h.buf[32..48].copy_from_slice(&d.octets());
            h.buf[48..50].copy_from_slice(&client.port().to_be_bytes());
            h.buf[50..52].copy_from_slice(&vip.port().to_be_bytes());
            h.len = 52;
        }
        _ => {
            // Mixed families cannot be expressed: family UNSPEC, no address block.
            h.buf[13] = 0x00;
            h.buf[14..16].copy_from_slice(&0u16.to_be_bytes());
            h.len = 16;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::{v1, v2};

    #[test]
    fn v1_tcp4_parses() {
        let h = encode_v1(
            "127.0.0.9:40000".parse().unwrap(),
            "127.0.0.1:8080".parse().unwrap(),
        );
        let text = std::str::from_utf8(h.as_bytes()).unwrap();
        assert_eq!(text, "PROXY TCP4 127.0.0.9 127.0.0.1 40000 8080\r\n");
        let parsed = v1::Header::try_from(text).unwrap();
        match parsed.addresses {
            v1::Addresses::Tcp4(a) => {
                assert_eq!(a.source_address.to_string(), "127.0.0.9");
                assert_eq!(a.source_port, 40000);
                assert_eq!(a.destination_address.to_string(), "127.0.0.1");
                assert_eq!(a.destination_port, 8080);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn v1_tcp6_longest_fits() {
        let c: SocketAddr = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535"
            .parse()
            .unwrap();
        let v: SocketAddr = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65534"
            .parse()
            .unwrap();
        let h = encode_v1(c, v);
        assert_eq!(h.as_bytes().len(), 104);
        let text = std::str::from_utf8(h.as_bytes()).unwrap();
        let parsed = v1::Header::try_from(text).unwrap();
        match parsed.addresses {
            v1::Addresses::Tcp6(a) => {
                assert_eq!(a.source_port, 65535);
                assert_eq!(a.destination_port, 65534);
                assert_eq!(std::net::IpAddr::V6(a.source_address), c.ip());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn v2_tcp4_and_udp6_parse() {
        let c4: SocketAddr = "10.1.2.3:1234".parse().unwrap();
        let v4: SocketAddr = "192.0.2.1:443".parse().unwrap();
        let h = encode_v2(Protocol::Tcp, c4, v4);
        let parsed = v2::Header::try_from(h.as_bytes()).unwrap();
        assert_eq!(parsed.command, v2::Command::Proxy);
        assert_eq!(parsed.protocol, v2::Protocol::Stream);
        match parsed.addresses {
            v2::Addresses::IPv4(a) => {
                assert_eq!(std::net::IpAddr::V4(a.source_address), c4.ip());
                assert_eq!(a.source_port, 1234);
                assert_eq!(std::net::IpAddr::V4(a.destination_address), v4.ip());
                assert_eq!(a.destination_port, 443);
            }
            other => panic!("unexpected {other:?}"),
        }

        let c6: SocketAddr = "[2001:db8::5]:5353".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:53".parse().unwrap();
        let h = encode_v2(Protocol::Udp, c6, v6);
        assert_eq!(h.as_bytes().len(), 52);
        let parsed = v2::Header::try_from(h.as_bytes()).unwrap();
        assert_eq!(parsed.protocol, v2::Protocol::Datagram);
        match parsed.addresses {
            v2::Addresses::IPv6(a) => {
                assert_eq!(std::net::IpAddr::V6(a.source_address), c6.ip());
                assert_eq!(a.destination_port, 53);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn mixed_families_are_unknown() {
        let c: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let v: SocketAddr = "[::1]:2".parse().unwrap();
        assert_eq!(encode_v1(c, v).as_bytes(), b"PROXY UNKNOWN\r\n");
        let h = encode_v2(Protocol::Tcp, c, v);
        let parsed = v2::Header::try_from(h.as_bytes()).unwrap();
        assert_eq!(parsed.addresses, v2::Addresses::Unspecified);
    }
}
