//! ARP for IPv4 over Ethernet (RFC 826).

use core::net::Ipv4Addr;

use crate::bytes::{arr4, arr6, get16, set16};
use crate::error::{Error, Layer, Result};
use crate::ethernet::MacAddr;
use crate::view::view;

/// Length of an Ethernet/IPv4 ARP packet.
pub const LEN: usize = 28;
/// Opcode: request.
pub const OP_REQUEST: u16 = 1;
/// Opcode: reply.
pub const OP_REPLY: u16 = 2;

view!(
    /// View over an ARP packet.
    ArpPacket,
    Layer::Arp,
    LEN
);

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Checks the length and that it is Ethernet (1) / IPv4 (0x0800) with address
    /// lengths 6 and 4, the only kind this crate reads.
    fn check_len(&self) -> Result<()> {
        self.min_check()?;
        if self.htype() != 1 || self.ptype() != 0x0800 || self.b()[4] != 6 || self.b()[5] != 4 {
            return Err(Error::BadField(Layer::Arp));
        }
        Ok(())
    }
    /// Hardware type.
    pub fn htype(&self) -> u16 {
        get16(self.b(), 0)
    }
    /// Protocol type.
    pub fn ptype(&self) -> u16 {
        get16(self.b(), 2)
    }
    /// Operation.
    pub fn op(&self) -> u16 {
        get16(self.b(), 6)
    }
    /// Sender hardware address.
    pub fn sha(&self) -> MacAddr {
        arr6(self.b(), 8)
    }
    /// Sender protocol address.
    pub fn spa(&self) -> Ipv4Addr {
        Ipv4Addr::from(arr4(self.b(), 14))
    }
    /// Target hardware address.
    pub fn tha(&self) -> MacAddr {
        arr6(self.b(), 18)
    }
    /// Target protocol address.
    pub fn tpa(&self) -> Ipv4Addr {
        Ipv4Addr::from(arr4(self.b(), 24))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes a complete Ethernet/IPv4 ARP packet.
    pub fn write(&mut self, op: u16, sha: MacAddr, spa: Ipv4Addr, tha: MacAddr, tpa: Ipv4Addr) {
        let b = self.bm();
        set16(b, 0, 1);
        set16(b, 2, 0x0800);
        b[4] = 6;
        b[5] = 4;
        set16(b, 6, op);
        b[8..14].copy_from_slice(&sha);
        b[14..18].copy_from_slice(&spa.octets());
        b[18..24].copy_from_slice(&tha);
        b[24..28].copy_from_slice(&tpa.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read() {
        let mut b = [0u8; LEN];
        ArpPacket::new_unchecked(&mut b[..]).write(
            OP_REQUEST,
            [1; 6],
            Ipv4Addr::new(10, 0, 0, 1),
            [0; 6],
            Ipv4Addr::new(10, 0, 0, 100),
        );
        let a = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(a.op(), OP_REQUEST);
        assert_eq!(a.sha(), [1; 6]);
        assert_eq!(a.spa(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(a.tha(), [0; 6]);
        assert_eq!(a.tpa(), Ipv4Addr::new(10, 0, 0, 100));
        let e = etherparse::ArpPacketSlice::from_slice(&b).unwrap();
        assert_eq!(e.sender_hw_addr(), &[1; 6]);
        let mut c = b;
        c[5] = 16;
        assert_eq!(
            ArpPacket::new_checked(&c[..]).unwrap_err(),
            Error::BadField(Layer::Arp)
        );
    }
}
