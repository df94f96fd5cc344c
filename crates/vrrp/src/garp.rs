//! Gratuitous ARP and unsolicited Neighbour Advertisement frames exactly as keepalived sends them
//! (docs/internals/vrrp.md#gratuitous-arp-and-unsolicited-na, checked byte for byte against the captures), for the driver to put
//! on the wire when an [`crate::Action::Garp`] or [`crate::Action::AnnounceSource`] asks for it.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::internet_checksum;

/// Length of a gratuitous ARP Ethernet frame (no padding; the NIC pads to 60).
pub const GARP_FRAME_LEN: usize = 42;
/// Length of an unsolicited NA Ethernet frame.
pub const NA_FRAME_LEN: usize = 86;

const BROADCAST: [u8; 6] = [0xff; 6];

/// A gratuitous ARP for `vip` from `mac`: Ethernet broadcast, ARP **request** (op 1), sender =
/// target = `vip`, target MAC broadcast.
pub fn garp_frame(mac: [u8; 6], vip: Ipv4Addr) -> [u8; GARP_FRAME_LEN] {
    let mut f = [0u8; GARP_FRAME_LEN];
    f[0..6].copy_from_slice(&BROADCAST);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4, op 1
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&vip.octets());
    f[32..38].copy_from_slice(&BROADCAST);
    f[38..42].copy_from_slice(&vip.octets());
    f
}

/// An unsolicited NA for `vip` from `mac`: IPv6 src = the VIP, dst ff02::1, hop limit 255,
/// ICMPv6 136 with Override (plus Router when `router`, i.e. IPv6 forwarding is on), target = the
/// VIP, option 2 (target link-layer address) = `mac`.
pub fn unsolicited_na_frame(mac: [u8; 6], vip: Ipv6Addr, router: bool) -> [u8; NA_FRAME_LEN] {
    const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut f = [0u8; NA_FRAME_LEN];
    f[0..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    // IPv6: version 6, traffic class 0, flow label 0, payload 32, next header ICMPv6, hop 255
    f[14..22].copy_from_slice(&[0x60, 0, 0, 0, 0, 32, 58, 255]);
    f[22..38].copy_from_slice(&vip.octets());
    f[38..54].copy_from_slice(&ALL_NODES.octets());
    let icmp = 54;
    f[icmp] = 136;
    f[icmp + 4] = if router { 0xa0 } else { 0x20 };
    f[icmp + 8..icmp + 24].copy_from_slice(&vip.octets());
    f[icmp + 24] = 2;
    f[icmp + 25] = 1;
    f[icmp + 26..icmp + 32].copy_from_slice(&mac);
    // Checksum over the IPv6 pseudo-header and the ICMPv6 message.
    let mut pseudo = Vec::with_capacity(40 + 32);
    pseudo.extend_from_slice(&vip.octets());
    pseudo.extend_from_slice(&ALL_NODES.octets());
    pseudo.extend_from_slice(&32u32.to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(&f[icmp..]);
    let c = internet_checksum(&pseudo);
    f[icmp + 2..icmp + 4].copy_from_slice(&c.to_be_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_matches_spec_example() {
        // docs/internals/vrrp.md#gratuitous-arp-and-unsolicited-na
        let f = garp_frame(
            [0xb6, 0x06, 0xc0, 0x58, 0x10, 0x9a],
            Ipv4Addr::new(10, 77, 0, 100),
        );
        let hex: String = f.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ffffffffffffb606c058109a08060001080006040001b606c058109a0a4d0064ffffffffffff0a4d0064"
        );
    }

    #[test]
    fn na_router_flag() {
        let mac = [2, 0, 0, 0, 0, 1];
        let vip: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let a = unsolicited_na_frame(mac, vip, false);
        let b = unsolicited_na_frame(mac, vip, true);
        assert_eq!(a[58], 0x20);
        assert_eq!(b[58], 0xa0);
        // Both checksums verify (sum over pseudo-header + message is zero after folding).
        for f in [a, b] {
            let mut p = Vec::new();
            p.extend_from_slice(&f[22..54]);
            p.extend_from_slice(&[0, 0, 0, 32, 0, 0, 0, 58]);
            p.extend_from_slice(&f[54..]);
            assert_eq!(internet_checksum(&p), 0);
        }
    }
}
