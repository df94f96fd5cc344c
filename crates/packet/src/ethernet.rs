//! Ethernet II frames and 802.1Q / 802.1ad VLAN tags.

use crate::bytes::{arr6, get16, set16};
use crate::error::{need, Layer, Result};
use crate::view::view;

/// A 48-bit MAC address.
pub type MacAddr = [u8; 6];

/// The broadcast MAC address.
pub const BROADCAST: MacAddr = [0xff; 6];

/// EtherType values this crate understands.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service VLAN tag (outer tag of QinQ).
    pub const QINQ: u16 = 0x88a8;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
}

/// Length of the Ethernet II header without tags.
pub const HEADER_LEN: usize = 14;
/// Length of one VLAN tag.
pub const VLAN_TAG_LEN: usize = 4;
/// Most VLAN tags `parse` walks through (QinQ).
pub const MAX_VLAN_TAGS: usize = 2;

view!(
    /// View over an Ethernet II frame (tags, if any, follow the source address).
    EthernetFrame,
    Layer::Ethernet,
    HEADER_LEN
);

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    fn check_len(&self) -> Result<()> {
        self.min_check()
    }
    /// Destination MAC.
    pub fn dst(&self) -> MacAddr {
        arr6(self.b(), 0)
    }
    /// Source MAC.
    pub fn src(&self) -> MacAddr {
        arr6(self.b(), 6)
    }
    /// The EtherType right after the addresses (a TPID when the frame is tagged).
    pub fn ethertype(&self) -> u16 {
        get16(self.b(), 12)
    }
    /// Bytes after the 14-byte header.
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC.
    pub fn set_dst(&mut self, m: MacAddr) {
        self.bm()[0..6].copy_from_slice(&m);
    }
    /// Sets the source MAC.
    pub fn set_src(&mut self, m: MacAddr) {
        self.bm()[6..12].copy_from_slice(&m);
    }
    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, t: u16) {
        set16(self.bm(), 12, t)
    }
}

view!(
    /// View over one 802.1Q tag as it follows a TPID: TCI then the inner EtherType.
    VlanTag,
    Layer::Vlan,
    VLAN_TAG_LEN
);

impl<T: AsRef<[u8]>> VlanTag<T> {
    fn check_len(&self) -> Result<()> {
        self.min_check()
    }
    /// Tag control information (PCP, DEI, VID).
    pub fn tci(&self) -> u16 {
        get16(self.b(), 0)
    }
    /// VLAN identifier (low 12 bits of the TCI).
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }
    /// Priority code point.
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }
    /// EtherType of what follows the tag.
    pub fn ethertype(&self) -> u16 {
        get16(self.b(), 2)
    }
}

/// Writes an Ethernet header with `tags` (each `(tpid, tci)`) and returns its length.
pub fn write_header(
    out: &mut [u8],
    dst: MacAddr,
    src: MacAddr,
    tags: &[(u16, u16)],
    ethertype: u16,
) -> Result<usize> {
    let len = HEADER_LEN + tags.len() * VLAN_TAG_LEN;
    if out.len() < len {
        return Err(crate::Error::NoRoom {
            need: len,
            have: out.len(),
        });
    }
    out[0..6].copy_from_slice(&dst);
    out[6..12].copy_from_slice(&src);
    let mut off = 12;
    for &(tpid, tci) in tags {
        set16(out, off, tpid);
        set16(out, off + 2, tci);
        off += 4;
    }
    set16(out, off, ethertype);
    Ok(len)
}

/// Writes the L2 header of a reply to `frame`: addresses swapped (our MAC as source),
/// the same VLAN tags, and `ethertype`. Returns the header length.
pub fn write_reply_header(
    out: &mut [u8],
    frame: &[u8],
    l2_len: usize,
    our_mac: MacAddr,
    ethertype: u16,
) -> Result<usize> {
    need(frame, l2_len.max(HEADER_LEN), Layer::Ethernet)?;
    if out.len() < l2_len {
        return Err(crate::Error::NoRoom {
            need: l2_len,
            have: out.len(),
        });
    }
    out[..l2_len].copy_from_slice(&frame[..l2_len]);
    out[0..6].copy_from_slice(&frame[6..12]);
    out[6..12].copy_from_slice(&our_mac);
    set16(out, l2_len - 2, ethertype);
    Ok(l2_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_setters() {
        let mut f = [0u8; 14];
        let mut e = EthernetFrame::new_checked(&mut f[..]).unwrap();
        e.set_dst([1, 2, 3, 4, 5, 6]);
        e.set_src([7, 8, 9, 10, 11, 12]);
        e.set_ethertype(ethertype::IPV6);
        assert_eq!(e.dst(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(e.src(), [7, 8, 9, 10, 11, 12]);
        assert_eq!(e.ethertype(), 0x86dd);
        assert!(EthernetFrame::new_checked(&f[..13]).is_err());
    }

    #[test]
    fn vlan_tag_fields() {
        let t = VlanTag::new_checked([0xa0, 0x64, 0x08, 0x00]).unwrap();
        assert_eq!(t.vid(), 100);
        assert_eq!(t.pcp(), 5);
        assert_eq!(t.ethertype(), ethertype::IPV4);
    }

    #[test]
    fn reply_header_keeps_tags() {
        let mut f = [0u8; 18];
        let n = write_header(&mut f, [1; 6], [2; 6], &[(ethertype::VLAN, 7)], 0x0800).unwrap();
        assert_eq!(n, 18);
        let mut out = [0u8; 18];
        write_reply_header(&mut out, &f, 18, [9; 6], ethertype::ARP).unwrap();
        assert_eq!(&out[0..6], &[2; 6]);
        assert_eq!(&out[6..12], &[9; 6]);
        assert_eq!(get16(&out, 14), 7);
        assert_eq!(get16(&out, 16), ethertype::ARP);
        assert!(write_header(&mut [0u8; 10], [0; 6], [0; 6], &[], 0).is_err());
    }
}
