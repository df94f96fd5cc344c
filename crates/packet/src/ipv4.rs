//! IPv4 header (RFC 791), options included.

use core::net::Ipv4Addr;

use crate::bytes::{arr4, get16, set16};
use crate::checksum;
use crate::error::{Error, Layer, Result};
use crate::view::view;

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// "Don't fragment" flag in the flags/fragment-offset word.
pub const FLAG_DF: u16 = 0x4000;
/// "More fragments" flag.
pub const FLAG_MF: u16 = 0x2000;

view!(
    /// View over an IPv4 packet.
    Ipv4Packet,
    Layer::Ipv4,
    HEADER_LEN
);

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Checks version, IHL (≥ 5 and within the buffer) and total length (≥ header
    /// length and within the buffer; trailing bytes such as Ethernet padding are allowed).
    fn check_len(&self) -> Result<()> {
        self.min_check()?;
        if self.version() != 4 {
            return Err(Error::BadVersion(self.version()));
        }
        let ihl = self.b()[0] & 0x0f;
        if ihl < 5 || self.header_len() > self.b().len() {
            return Err(Error::BadIhl(ihl));
        }
        let tl = usize::from(self.total_len());
        if tl < self.header_len() {
            return Err(Error::BadLength(Layer::Ipv4));
        }
        if tl > self.b().len() {
            return Err(Error::Truncated {
                layer: Layer::Ipv4,
                need: tl,
                have: self.b().len(),
            });
        }
        Ok(())
    }
    /// Version nibble.
    pub fn version(&self) -> u8 {
        self.b()[0] >> 4
    }
    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[0] & 0x0f) * 4
    }
    /// DS field (DSCP and ECN, formerly TOS).
    pub fn tos(&self) -> u8 {
        self.b()[1]
    }
    /// Total length field.
    pub fn total_len(&self) -> u16 {
        get16(self.b(), 2)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        get16(self.b(), 4)
    }
    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        get16(self.b(), 6) & FLAG_DF != 0
    }
    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        get16(self.b(), 6) & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (get16(self.b(), 6) & 0x1fff) << 3
    }
    /// True for any fragment (MF set or offset non-zero).
    pub fn is_fragment(&self) -> bool {
        get16(self.b(), 6) & 0x3fff != 0
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.b()[8]
    }
    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.b()[9]
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        get16(self.b(), 10)
    }
    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(arr4(self.b(), 12))
    }
    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(arr4(self.b(), 16))
    }
    /// Option bytes (between byte 20 and the header length).
    pub fn options(&self) -> &[u8] {
        &self.b()[HEADER_LEN..self.header_len()]
    }
    /// True when the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.b()[..self.header_len()]) == 0
    }
    /// The payload as bounded by the total length field.
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length (must be a multiple of 4, 20..=60).
    pub fn set_version_ihl(&mut self, header_len: usize) {
        self.bm()[0] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }
    /// Sets the DS field.
    pub fn set_tos(&mut self, v: u8) {
        self.bm()[1] = v;
    }
    /// Sets the total length.
    pub fn set_total_len(&mut self, v: u16) {
        set16(self.bm(), 2, v)
    }
    /// Sets the identification.
    pub fn set_ident(&mut self, v: u16) {
        set16(self.bm(), 4, v)
    }
    /// Sets the flags/fragment-offset word.
    pub fn set_flags_frag(&mut self, v: u16) {
        set16(self.bm(), 6, v)
    }
    /// Sets the TTL (checksum not updated).
    pub fn set_ttl(&mut self, v: u8) {
        self.bm()[8] = v;
    }
    /// Sets the protocol.
    pub fn set_protocol(&mut self, v: u8) {
        self.bm()[9] = v;
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        set16(self.bm(), 10, v)
    }
    /// Sets the source address (checksum not updated).
    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.bm()[12..16].copy_from_slice(&a.octets());
    }
    /// Sets the destination address (checksum not updated).
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.bm()[16..20].copy_from_slice(&a.octets());
    }
    /// Recomputes the header checksum (the kernel's `ip_send_check`).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.b()[..hl]);
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> [u8; 28] {
        let mut b = [0u8; 28];
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_version_ihl(20);
        p.set_total_len(28);
        p.set_ident(0x1234);
        p.set_flags_frag(FLAG_DF);
        p.set_ttl(64);
        p.set_protocol(17);
        p.set_src(Ipv4Addr::new(10, 0, 0, 1));
        p.set_dst(Ipv4Addr::new(10, 0, 0, 2));
        p.fill_checksum();
        b
    }

    #[test]
    fn roundtrip_and_checksum() {
        let b = sample();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.header_len(), 20);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.src(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.payload().len(), 8);
        let e = etherparse::Ipv4HeaderSlice::from_slice(&b).unwrap();
        assert_eq!(e.header_checksum(), p.checksum());
        assert_eq!(e.to_header().calc_header_checksum(), p.checksum());
    }

    #[test]
    fn rejects_bad_fields() {
        let mut b = sample();
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadIhl(4)
        );
        let mut b = sample();
        b[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadIhl(15)
        );
        let mut b = sample();
        b[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadVersion(6)
        );
        let mut b = sample();
        b[3] = 29;
        assert!(matches!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::Truncated { .. }
        ));
        let mut b = sample();
        b[3] = 19;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadLength(Layer::Ipv4)
        );
        let mut b = sample();
        b[8] = 1;
        assert!(!Ipv4Packet::new_checked(&b[..]).unwrap().verify_checksum());
    }
}
