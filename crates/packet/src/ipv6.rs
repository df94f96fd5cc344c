//! IPv6 fixed header (RFC 8200) and the extension headers that stand between it
//! and the transport header.

use core::net::Ipv6Addr;

use crate::bytes::{arr16, get16, get32, set16, set32};
use crate::error::{need, Error, Layer, Result};
use crate::view::view;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// Next-header values of the extension headers `walk_ext` steps over.
pub mod nh {
    /// Hop-by-hop options (must come first, RFC 8200 §4.1).
    pub const HOP_BY_HOP: u8 = 0;
    /// Routing header.
    pub const ROUTING: u8 = 43;
    /// Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Authentication header (RFC 4302; length in 4-byte units).
    pub const AUTH: u8 = 51;
    /// Destination options.
    pub const DEST_OPTS: u8 = 60;
    /// No next header.
    pub const NONE: u8 = 59;
}

/// Most extension headers walked before giving up; bounds work per packet.
pub const MAX_EXT_HEADERS: usize = 8;

view!(
    /// View over an IPv6 packet.
    Ipv6Packet,
    Layer::Ipv6,
    HEADER_LEN
);

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Checks the version and that the payload length fits the buffer (trailing
    /// padding allowed). Jumbograms (payload length 0 with a jumbo option) are not
    /// supported and read as an empty payload.
    fn check_len(&self) -> Result<()> {
        self.min_check()?;
        if self.version() != 6 {
            return Err(Error::BadVersion(self.version()));
        }
        let total = HEADER_LEN + usize::from(self.payload_len());
        if total > self.b().len() {
            return Err(Error::Truncated {
                layer: Layer::Ipv6,
                need: total,
                have: self.b().len(),
            });
        }
        Ok(())
    }
    /// Version nibble.
    pub fn version(&self) -> u8 {
        self.b()[0] >> 4
    }
    /// Traffic class (DS field).
    pub fn traffic_class(&self) -> u8 {
        ((get16(self.b(), 0) >> 4) & 0xff) as u8
    }
    /// Flow label.
    pub fn flow_label(&self) -> u32 {
        get32(self.b(), 0) & 0x000f_ffff
    }
    /// Payload length.
    pub fn payload_len(&self) -> u16 {
        get16(self.b(), 4)
    }
    /// Next header of the fixed header.
    pub fn next_header(&self) -> u8 {
        self.b()[6]
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.b()[7]
    }
    /// Source address.
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(arr16(self.b(), 8))
    }
    /// Destination address.
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(arr16(self.b(), 24))
    }
    /// Bytes after the fixed header, bounded by the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Writes version 6, `traffic_class` and `flow_label`.
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let w = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        set32(self.bm(), 0, w);
    }
    /// Sets the payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        set16(self.bm(), 4, v)
    }
    /// Sets the next header.
    pub fn set_next_header(&mut self, v: u8) {
        self.bm()[6] = v;
    }
    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.bm()[7] = v;
    }
    /// Sets the source address.
    pub fn set_src(&mut self, a: Ipv6Addr) {
        self.bm()[8..24].copy_from_slice(&a.octets());
    }
    /// Sets the destination address.
    pub fn set_dst(&mut self, a: Ipv6Addr) {
        self.bm()[24..40].copy_from_slice(&a.octets());
    }
}

/// Fragment information from an IPv6 fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Frag {
    /// Fragment offset in bytes.
    pub offset: u16,
    /// M flag.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

/// Result of walking the extension header chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtWalk {
    /// Offset of the upper-layer header (from the start of the IPv6 header).
    pub l4_off: usize,
    /// Upper-layer protocol (the last next-header value).
    pub proto: u8,
    /// Fragment header contents, when present.
    pub frag: Option<Ipv6Frag>,
}

/// Walks hop-by-hop, routing, fragment, destination-options and AH headers of the
/// IPv6 packet `ip` (bounded by `end`) to find the upper-layer header, like the
/// kernel's `ipv6_find_hdr`. Stops at a non-first fragment, whose payload is not a
/// header (RFC 8200 §4.5). Rejects a hop-by-hop header anywhere but first and chains
/// longer than [`MAX_EXT_HEADERS`].
pub fn walk_ext(ip: &[u8], end: usize) -> Result<ExtWalk> {
    need(ip, HEADER_LEN, Layer::Ipv6)?;
    let end = end.min(ip.len());
    let mut proto = ip[6];
    let mut off = HEADER_LEN;
    let mut frag = None;
    for i in 0..=MAX_EXT_HEADERS {
        match proto {
            nh::HOP_BY_HOP | nh::ROUTING | nh::DEST_OPTS | nh::AUTH | nh::FRAGMENT => {
                if i == MAX_EXT_HEADERS {
                    return Err(Error::BadExtHeader);
                }
                if proto == nh::HOP_BY_HOP && i != 0 {
                    return Err(Error::BadExtHeader);
                }
                need(&ip[..end], off + 8, Layer::Ipv6Ext)?;
                let next = ip[off];
                let len = match proto {
                    nh::FRAGMENT => 8,
                    nh::AUTH => (usize::from(ip[off + 1]) + 2) * 4,
                    _ => (usize::from(ip[off + 1]) + 1) * 8,
                };
                need(&ip[..end], off + len, Layer::Ipv6Ext)?;
                if proto == nh::FRAGMENT {
                    let w = get16(ip, off + 2);
                    let f = Ipv6Frag {
                        offset: w & 0xfff8,
                        more: w & 1 != 0,
                        ident: get32(ip, off + 4),
                    };
                    frag = Some(f);
                    if f.offset != 0 {
                        return Ok(ExtWalk {
                            l4_off: off + len,
                            proto: next,
                            frag,
                        });
                    }
                }
                proto = next;
                off += len;
            }
            _ => break,
        }
    }
    Ok(ExtWalk {
        l4_off: off,
        proto,
        frag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
        p.set_version_tc_flow(0xb8, 0x12345);
        p.set_payload_len(payload.len() as u16);
        p.set_next_header(nh);
        p.set_hop_limit(64);
        p.set_src("2001:db8::1".parse().unwrap());
        p.set_dst("2001:db8::2".parse().unwrap());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn fields() {
        let b = base(17, &[0; 8]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload().len(), 8);
        let e = etherparse::Ipv6HeaderSlice::from_slice(&b).unwrap();
        assert_eq!(e.traffic_class(), 0xb8);
        assert_eq!(e.source_addr(), p.src());
        let mut t = b.clone();
        t[5] = 9;
        assert!(Ipv6Packet::new_checked(&t[..]).is_err());
        t[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&t[..]).unwrap_err(),
            Error::BadVersion(4)
        );
    }

    #[test]
    fn walks_chain_and_fragments() {
        // hop-by-hop (8) -> dest opts (16) -> fragment (8, first, M=1) -> TCP
        let mut pl = vec![nh::DEST_OPTS, 0, 1, 4, 0, 0, 0, 0];
        pl.extend_from_slice(&[nh::FRAGMENT, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        pl.extend_from_slice(&[6, 0, 0x00, 0x01, 0, 0, 0, 7]);
        pl.extend_from_slice(&[0; 20]);
        let b = base(nh::HOP_BY_HOP, &pl);
        let w = walk_ext(&b, b.len()).unwrap();
        assert_eq!(w.proto, 6);
        assert_eq!(w.l4_off, 40 + 32);
        assert_eq!(
            w.frag,
            Some(Ipv6Frag {
                offset: 0,
                more: true,
                ident: 7
            })
        );
        // non-first fragment stops the walk
        let b2 = base(nh::FRAGMENT, &[17, 0, 0x00, 0x08, 0, 0, 0, 1, 1, 2, 3, 4]);
        let w = walk_ext(&b2, b2.len()).unwrap();
        assert_eq!(w.frag.unwrap().offset, 8);
        assert_eq!(w.l4_off, 48);
        // hop-by-hop not first
        let b3 = base(
            nh::DEST_OPTS,
            &[0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0],
        );
        assert_eq!(walk_ext(&b3, b3.len()).unwrap_err(), Error::BadExtHeader);
        // truncated extension header
        let b4 = base(nh::ROUTING, &[6, 1, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            walk_ext(&b4, b4.len()).unwrap_err(),
            Error::Truncated { .. }
        ));
    }
}
