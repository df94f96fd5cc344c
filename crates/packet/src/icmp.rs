//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) messages, including neighbour
//! solicitation and advertisement (RFC 4861).

use core::net::Ipv6Addr;

use crate::bytes::{arr16, get16, get32, set16, set32};
use crate::error::{Layer, Result};
use crate::view::view;

/// Length of the fixed ICMP header (type, code, checksum, 4 bytes of "rest").
pub const HEADER_LEN: usize = 8;

/// ICMPv4 types and codes used here.
pub mod v4 {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 3;
    /// Source quench.
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;
    /// Code: port unreachable.
    pub const PORT_UNREACH: u8 = 3;
    /// Code: fragmentation needed and DF set.
    pub const FRAG_NEEDED: u8 = 4;
    /// Code: TTL exceeded in transit.
    pub const EXC_TTL: u8 = 0;

    /// True for error types (RFC 1122 §3.2.2: never answer these with an error).
    pub fn is_error(t: u8) -> bool {
        matches!(t, 3 | 4 | 5 | 11 | 12)
    }
}

/// ICMPv6 types and codes used here.
pub mod v6 {
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 1;
    /// Packet too big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Neighbour solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbour advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// Code: port unreachable.
    pub const PORT_UNREACH: u8 = 4;
    /// Code: hop limit exceeded.
    pub const EXC_HOPLIMIT: u8 = 0;
    /// ND option: source link-layer address.
    pub const OPT_SOURCE_LLADDR: u8 = 1;
    /// ND option: target link-layer address.
    pub const OPT_TARGET_LLADDR: u8 = 2;
    /// NA flag: router.
    pub const NA_ROUTER: u32 = 0x8000_0000;
    /// NA flag: solicited.
    pub const NA_SOLICITED: u32 = 0x4000_0000;
    /// NA flag: override.
    pub const NA_OVERRIDE: u32 = 0x2000_0000;

    /// True for error messages (types 0..=127, RFC 4443 §2.1).
    pub fn is_error(t: u8) -> bool {
        t < 128
    }
}

view!(
    /// View over an ICMPv4 or ICMPv6 message (same fixed header layout).
    IcmpPacket,
    Layer::Icmp,
    HEADER_LEN
);

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    fn check_len(&self) -> Result<()> {
        self.min_check()
    }
    /// Type.
    pub fn msg_type(&self) -> u8 {
        self.b()[0]
    }
    /// Code.
    pub fn code(&self) -> u8 {
        self.b()[1]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get16(self.b(), 2)
    }
    /// The 4 bytes after the checksum (identifier/sequence, MTU, pointer, flags).
    pub fn rest(&self) -> u32 {
        get32(self.b(), 4)
    }
    /// Next-hop MTU of an ICMPv4 FRAG_NEEDED (RFC 1191: low 16 bits of "rest").
    pub fn frag_mtu(&self) -> u16 {
        get16(self.b(), 6)
    }
    /// Bytes after the 8-byte header: the quoted packet of an error message.
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..]
    }
    /// Target address of a neighbour solicitation/advertisement (bytes 8..24).
    pub fn nd_target(&self) -> Option<Ipv6Addr> {
        (self.b().len() >= 24).then(|| Ipv6Addr::from(arr16(self.b(), 8)))
    }
    /// The link-layer address carried in ND option `opt_type` (8-byte option with a
    /// 6-byte Ethernet address, RFC 4861 §4.6.1), if present and well formed.
    pub fn nd_lladdr_option(&self, opt_type: u8) -> Option<[u8; 6]> {
        let b = self.b();
        let mut off = 24;
        // Bounded: each option is ≥ 8 bytes and the message is finite.
        while off + 2 <= b.len() {
            let len = usize::from(b[off + 1]) * 8;
            if len == 0 || off + len > b.len() {
                return None;
            }
            if b[off] == opt_type && len == 8 {
                let mut m = [0u8; 6];
                m.copy_from_slice(&b[off + 2..off + 8]);
                return Some(m);
            }
            off += len;
        }
        None
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Sets type and code.
    pub fn set_type_code(&mut self, t: u8, c: u8) {
        self.bm()[0] = t;
        self.bm()[1] = c;
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, c: u16) {
        set16(self.bm(), 2, c)
    }
    /// Sets the 4 "rest of header" bytes.
    pub fn set_rest(&mut self, v: u32) {
        set32(self.bm(), 4, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_nd_options() {
        let mut b = [0u8; 32];
        let mut p = IcmpPacket::new_checked(&mut b[..]).unwrap();
        p.set_type_code(v6::NEIGHBOR_SOLICIT, 0);
        p.set_rest(0);
        b[8..24].copy_from_slice(&"2001:db8::5".parse::<Ipv6Addr>().unwrap().octets());
        b[24] = v6::OPT_SOURCE_LLADDR;
        b[25] = 1;
        b[26..32].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        let p = IcmpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), 135);
        assert_eq!(p.nd_target(), Some("2001:db8::5".parse().unwrap()));
        assert_eq!(
            p.nd_lladdr_option(v6::OPT_SOURCE_LLADDR),
            Some([2, 0, 0, 0, 0, 9])
        );
        assert_eq!(p.nd_lladdr_option(v6::OPT_TARGET_LLADDR), None);
        let mut bad = b;
        bad[25] = 0;
        assert_eq!(
            IcmpPacket::new_unchecked(&bad[..]).nd_lladdr_option(1),
            None
        );
        assert!(v4::is_error(11) && !v4::is_error(8));
        assert!(v6::is_error(2) && !v6::is_error(135));
        assert!(IcmpPacket::new_checked(&b[..7]).is_err());
    }
}
