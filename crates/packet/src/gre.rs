//! GRE header (RFC 2784, key/sequence of RFC 2890) as used by IPVS `--tun-type gre`.

use crate::bytes::{get16, set16};
use crate::error::{Error, Layer, Result};
use crate::view::view;

/// C bit: checksum present.
pub const FLAG_CSUM: u16 = 0x8000;
/// K bit: key present (RFC 2890).
pub const FLAG_KEY: u16 = 0x2000;
/// S bit: sequence number present (RFC 2890).
pub const FLAG_SEQ: u16 = 0x1000;

view!(
    /// View over a GRE header and its payload.
    GrePacket,
    Layer::Gre,
    4
);

impl<T: AsRef<[u8]>> GrePacket<T> {
    /// Checks version 0, no routing (R bit, deprecated by RFC 2784) and that the
    /// optional fields fit.
    fn check_len(&self) -> Result<()> {
        self.min_check()?;
        if self.version() != 0 || self.flags() & 0x4000 != 0 {
            return Err(Error::BadField(Layer::Gre));
        }
        crate::error::need(self.b(), self.header_len(), Layer::Gre)
    }
    /// Flags and version word.
    pub fn flags(&self) -> u16 {
        get16(self.b(), 0)
    }
    /// Version (must be 0).
    pub fn version(&self) -> u16 {
        self.flags() & 7
    }
    /// Checksum present.
    pub fn has_checksum(&self) -> bool {
        self.flags() & FLAG_CSUM != 0
    }
    /// Protocol type (EtherType of the payload).
    pub fn protocol(&self) -> u16 {
        get16(self.b(), 2)
    }
    /// Header length with the optional checksum, key and sequence words.
    pub fn header_len(&self) -> usize {
        let f = self.flags();
        4 + 4 * usize::from(f & FLAG_CSUM != 0)
            + 4 * usize::from(f & FLAG_KEY != 0)
            + 4 * usize::from(f & FLAG_SEQ != 0)
    }
    /// Checksum field (valid only when [`Self::has_checksum`]).
    pub fn checksum(&self) -> u16 {
        get16(self.b(), 4)
    }
    /// True when no checksum is present or it verifies over header and payload.
    pub fn verify_checksum(&self) -> bool {
        !self.has_checksum() || crate::checksum::checksum(self.b()) == 0
    }
    /// The encapsulated packet.
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GrePacket<T> {
    /// Writes a version-0 header with protocol `proto`, with a zeroed checksum word
    /// when `csum` (call [`Self::fill_checksum`] once the payload is in place).
    pub fn write_header(&mut self, proto: u16, csum: bool) {
        let b = self.bm();
        set16(b, 0, if csum { FLAG_CSUM } else { 0 });
        set16(b, 2, proto);
        if csum {
            set16(b, 4, 0);
            set16(b, 6, 0);
        }
    }
    /// Computes the checksum over the whole buffer (GRE header + payload, RFC 2784 §2.5).
    pub fn fill_checksum(&mut self) {
        set16(self.bm(), 4, 0);
        let c = crate::checksum::checksum(self.b());
        set16(self.bm(), 4, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_checksum() {
        let mut b = [0u8; 12];
        b[8..].copy_from_slice(&[0x45, 0, 0, 4]);
        let mut g = GrePacket::new_unchecked(&mut b[..]);
        g.write_header(0x0800, true);
        g.fill_checksum();
        let g = GrePacket::new_checked(&b[..]).unwrap();
        assert_eq!(g.header_len(), 8);
        assert!(g.verify_checksum());
        assert_eq!(g.payload(), &[0x45, 0, 0, 4]);
        let mut c = b;
        c[9] ^= 1;
        assert!(!GrePacket::new_checked(&c[..]).unwrap().verify_checksum());
        c[1] = 1;
        assert_eq!(
            GrePacket::new_checked(&c[..]).unwrap_err(),
            Error::BadField(Layer::Gre)
        );
    }
}
