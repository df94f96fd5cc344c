//! GUE header (draft-ietf-intarea-gue, variant 0) as the kernel's `ipvs_gue_encap`
//! writes it (docs/internals/forwarding.md#tunnelling): version 0, C = 0, hlen in 4-byte option words, protocol
//! of the inner packet, 16 flag bits; optional private-flags word with the
//! remote-checksum-offload option (`GUE_PFLAG_REMCSUM`).

use crate::bytes::{get16, get32, set16, set32};
use crate::error::{Error, Layer, Result};
use crate::view::view;

/// Length of the base GUE header.
pub const HEADER_LEN: usize = 4;
/// `GUE_FLAG_PRIV`: a 4-byte private-flags word follows the header.
pub const FLAG_PRIV: u16 = 0x0001;
/// `GUE_PFLAG_REMCSUM`: bit 31 of the private flags, remote checksum offload.
pub const PFLAG_REMCSUM: u32 = 0x8000_0000;
/// Length of the private-flags word (`GUE_LEN_PRIV`).
pub const LEN_PRIV: usize = 4;
/// Length of the remcsum option (`GUE_PLEN_REMCSUM`): start and offset.
pub const PLEN_REMCSUM: usize = 4;

view!(
    /// View over a GUE header (after the UDP header) and its payload.
    GuePacket,
    Layer::Gue,
    HEADER_LEN
);

impl<T: AsRef<[u8]>> GuePacket<T> {
    /// Checks version 0 and that the options fit.
    fn check_len(&self) -> Result<()> {
        self.min_check()?;
        if self.version() != 0 {
            return Err(Error::BadField(Layer::Gue));
        }
        crate::error::need(self.b(), self.header_len(), Layer::Gue)
    }
    /// Version (2 bits).
    pub fn version(&self) -> u8 {
        self.b()[0] >> 6
    }
    /// C bit: control message rather than data.
    pub fn control(&self) -> bool {
        self.b()[0] & 0x20 != 0
    }
    /// Option length in 4-byte words.
    pub fn hlen(&self) -> u8 {
        self.b()[0] & 0x1f
    }
    /// Total header length including options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + usize::from(self.hlen()) * 4
    }
    /// Inner protocol (4 = IPv4, 41 = IPv6).
    pub fn protocol(&self) -> u8 {
        self.b()[1]
    }
    /// Flags.
    pub fn flags(&self) -> u16 {
        get16(self.b(), 2)
    }
    /// The remote-checksum-offload option `(start, offset)` relative to the inner
    /// packet, if the PRIV flag and the REMCSUM private flag are set.
    pub fn remcsum(&self) -> Option<(u16, u16)> {
        if self.flags() & FLAG_PRIV == 0 || self.header_len() < HEADER_LEN + LEN_PRIV {
            return None;
        }
        let pf = get32(self.b(), HEADER_LEN);
        if pf & PFLAG_REMCSUM == 0 || self.header_len() < HEADER_LEN + LEN_PRIV + PLEN_REMCSUM {
            return None;
        }
        let o = HEADER_LEN + LEN_PRIV;
        Some((get16(self.b(), o), get16(self.b(), o + 2)))
    }
    /// The encapsulated packet.
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GuePacket<T> {
    /// Writes the header for inner protocol `proto`, with the remcsum option when
    /// `remcsum` is `Some((start, offset))`. The buffer must hold [`header_len_for`].
    pub fn write_header(&mut self, proto: u8, remcsum: Option<(u16, u16)>) {
        let b = self.bm();
        match remcsum {
            None => {
                b[0] = 0;
                b[1] = proto;
                set16(b, 2, 0);
            }
            Some((start, off)) => {
                b[0] = ((LEN_PRIV + PLEN_REMCSUM) / 4) as u8;
                b[1] = proto;
                set16(b, 2, FLAG_PRIV);
                set32(b, 4, PFLAG_REMCSUM);
                set16(b, 8, start);
                set16(b, 10, off);
            }
        }
    }
}

/// GUE header length with or without the remcsum option (docs/internals/forwarding.md#mtu: 4, or 4 + 8).
pub fn header_len_for(remcsum: bool) -> usize {
    HEADER_LEN + if remcsum { LEN_PRIV + PLEN_REMCSUM } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_remcsum() {
        let mut b = [0u8; 16];
        GuePacket::new_unchecked(&mut b[..]).write_header(4, None);
        let g = GuePacket::new_checked(&b[..]).unwrap();
        assert_eq!((g.header_len(), g.protocol(), g.remcsum()), (4, 4, None));
        GuePacket::new_unchecked(&mut b[..]).write_header(41, Some((40, 56)));
        let g = GuePacket::new_checked(&b[..]).unwrap();
        assert_eq!(g.header_len(), 12);
        assert_eq!(header_len_for(true), 12);
        assert_eq!(g.remcsum(), Some((40, 56)));
        assert!(!g.control());
        b[0] |= 0x40;
        assert_eq!(
            GuePacket::new_checked(&b[..]).unwrap_err(),
            Error::BadField(Layer::Gue)
        );
        b[0] = 0x1f;
        assert!(GuePacket::new_checked(&b[..]).is_err());
    }
}
