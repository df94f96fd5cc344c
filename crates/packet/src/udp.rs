//! UDP header (RFC 768).

use crate::bytes::{get16, set16};
use crate::error::{Error, Layer, Result};
use crate::view::view;

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field.
pub const CHECKSUM_OFF: usize = 6;

view!(
    /// View over a UDP datagram.
    UdpPacket,
    Layer::Udp,
    HEADER_LEN
);

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Checks the length field (≥ 8 and within the buffer).
    fn check_len(&self) -> Result<()> {
        self.min_check()?;
        let l = usize::from(self.len());
        if l < HEADER_LEN || l > self.b().len() {
            return Err(Error::BadLength(Layer::Udp));
        }
        Ok(())
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        get16(self.b(), 0)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get16(self.b(), 2)
    }
    /// Length field (header + data).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        get16(self.b(), 4)
    }
    /// Checksum field; 0 means "not computed", legal only over IPv4 (RFC 768) and
    /// for IPv6 tunnels (RFC 6935).
    pub fn checksum(&self) -> u16 {
        get16(self.b(), CHECKSUM_OFF)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, p: u16) {
        set16(self.bm(), 0, p)
    }
    /// Sets the destination port.
    pub fn set_dst_port(&mut self, p: u16) {
        set16(self.bm(), 2, p)
    }
    /// Sets the length field.
    pub fn set_len(&mut self, l: u16) {
        set16(self.bm(), 4, l)
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, c: u16) {
        set16(self.bm(), CHECKSUM_OFF, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let mut b = [0u8; 12];
        let mut u = UdpPacket::new_unchecked(&mut b[..]);
        u.set_src_port(53);
        u.set_dst_port(5353);
        u.set_len(12);
        u.set_checksum(0);
        let u = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            (u.src_port(), u.dst_port(), u.len(), u.checksum()),
            (53, 5353, 12, 0)
        );
        let mut c = b;
        c[5] = 13;
        assert_eq!(
            UdpPacket::new_checked(&c[..]).unwrap_err(),
            Error::BadLength(Layer::Udp)
        );
        c[5] = 7;
        assert!(UdpPacket::new_checked(&c[..]).is_err());
    }
}
