//! Gratuitous ARP and unsolicited neighbour advertisements, for taking over a VIP (VRRP
//! transition to MASTER, rvsd start). Build the frame here, send it with
//! [`Sender::send`](crate::Sender::send) or [`Port::send_batch`](crate::Port::send_batch).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Length of a gratuitous ARP frame (without the padding the NIC adds to 60 bytes).
pub const GARP_LEN: usize = 42;
/// Length of an unsolicited neighbour advertisement with a target link-layer address option.
pub const UNSOLICITED_NA_LEN: usize = 86;

/// A gratuitous ARP *request* (sender = target = `ip`, broadcast), the form keepalived and
/// most hosts send: it updates every ARP cache on the segment that already has `ip`.
pub fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> [u8; GARP_LEN] {
    let mut f = [0u8; GARP_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    // Target hardware address stays zero (unknown), target protocol address is ours.
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// An unsolicited neighbour advertisement for `ip` (RFC 4861 §7.2.6): to all-nodes
/// (ff02::1), override flag set, solicited flag clear, hop limit 255, with the target
/// link-layer address option. Sent from `ip` itself.
pub fn unsolicited_na(mac: [u8; 6], ip: Ipv6Addr) -> [u8; UNSOLICITED_NA_LEN] {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut f = [0u8; UNSOLICITED_NA_LEN];
    f[0..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let icmp_len: u16 = 32; // 4 header + 4 flags + 16 target + 8 option
    f[14] = 0x60;
    f[18..20].copy_from_slice(&icmp_len.to_be_bytes());
    f[20] = 58; // ICMPv6
    f[21] = 255; // hop limit: receivers reject ND with anything else
    f[22..38].copy_from_slice(&ip.octets());
    f[38..54].copy_from_slice(&all_nodes.octets());
    let icmp = 54;
    f[icmp] = 136; // neighbour advertisement
    f[icmp + 4] = 0x20; // override
    f[icmp + 8..icmp + 24].copy_from_slice(&ip.octets());
    f[icmp + 24] = 2; // option: target link-layer address
    f[icmp + 25] = 1; // length in units of 8 bytes
    f[icmp + 26..icmp + 32].copy_from_slice(&mac);
    let sum = icmpv6_checksum(&ip, &all_nodes, &f[icmp..]);
    f[icmp + 2..icmp + 4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// RFC 1071 checksum of ICMPv6 `msg` with its pseudo-header.
fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for c in bytes.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += u32::from(w);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(msg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_layout() {
        let mac = [2, 0, 0, 0, 0, 7];
        let f = gratuitous_arp(mac, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[28..32], &[192, 0, 2, 1]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &[192, 0, 2, 1]);
    }

    #[test]
    fn na_checksum_verifies() {
        let ip: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let f = unsolicited_na([2, 0, 0, 0, 0, 7], ip);
        // Summing a message with its checksum in place gives 0 after complementing.
        let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
        assert_eq!(icmpv6_checksum(&ip, &all_nodes, &f[54..]), 0);
        assert_eq!(f[54], 136);
        assert_eq!(f[21], 255);
        assert_ne!(&f[56..58], &[0, 0]);
    }

    #[test]
    fn checksum_known_vector() {
        // RFC 1071 example words 0001 f203 f4f5 f6f7 sum to 0xddf2 (complement 0x220d),
        // fed here through the pseudo-header with zero addresses and a 58 next header.
        let zero = Ipv6Addr::UNSPECIFIED;
        let msg = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        // Pseudo-header adds length 8 and next header 58: 0xddf2 + 8 + 58 = 0xde34.
        assert_eq!(icmpv6_checksum(&zero, &zero, &msg), !0xde34u16);
    }
}
