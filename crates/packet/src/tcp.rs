//! TCP header (RFC 9293).

use crate::bytes::{get16, get32, set16};
use crate::error::{Error, Layer, Result};
use crate::view::view;

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Offset of the checksum field.
pub const CHECKSUM_OFF: usize = 16;

/// TCP flag bits (low byte of the flags field).
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
}

view!(
    /// View over a TCP segment.
    TcpPacket,
    Layer::Tcp,
    HEADER_LEN
);

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Checks the data offset (≥ 5 words and within the buffer).
    fn check_len(&self) -> Result<()> {
        self.min_check()?;
        let hl = self.header_len();
        if hl < HEADER_LEN || hl > self.b().len() {
            return Err(Error::BadLength(Layer::Tcp));
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
    /// Sequence number.
    pub fn seq(&self) -> u32 {
        get32(self.b(), 4)
    }
    /// Acknowledgement number.
    pub fn ack(&self) -> u32 {
        get32(self.b(), 8)
    }
    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[12] >> 4) * 4
    }
    /// Flag byte (see [`flags`]).
    pub fn flags(&self) -> u8 {
        self.b()[13]
    }
    /// SYN set.
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }
    /// ACK set.
    pub fn ack_flag(&self) -> bool {
        self.flags() & flags::ACK != 0
    }
    /// FIN set.
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }
    /// RST set.
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }
    /// Window.
    pub fn window(&self) -> u16 {
        get16(self.b(), 14)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get16(self.b(), CHECKSUM_OFF)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port (checksum not updated).
    pub fn set_src_port(&mut self, p: u16) {
        set16(self.bm(), 0, p)
    }
    /// Sets the destination port (checksum not updated).
    pub fn set_dst_port(&mut self, p: u16) {
        set16(self.bm(), 2, p)
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
        let mut b = [0u8; 24];
        b[0..2].copy_from_slice(&1234u16.to_be_bytes());
        b[2..4].copy_from_slice(&80u16.to_be_bytes());
        b[12] = 6 << 4;
        b[13] = flags::SYN | flags::ACK;
        let mut t = TcpPacket::new_checked(&mut b[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (1234, 80));
        assert!(t.syn() && t.ack_flag() && !t.fin() && !t.rst());
        assert_eq!(t.header_len(), 24);
        t.set_dst_port(8080);
        t.set_checksum(0xabcd);
        assert_eq!((t.dst_port(), t.checksum()), (8080, 0xabcd));
        b[12] = 7 << 4;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            Error::BadLength(Layer::Tcp)
        );
        b[12] = 4 << 4;
        assert!(TcpPacket::new_checked(&b[..]).is_err());
    }
}
