//! Neighbours learned from the ARP requests and neighbour solicitations the packet plane sees.
//!
//! When the kernel receives an ARP request or a neighbour solicitation for one of its own
//! addresses, it records the sender (`neigh_event_ns`), so its first reply to that sender
//! needs no lookup. For a VIP, the packet plane answers instead and the kernel never learns the
//! client: the first reply toward it would find no neighbour entry and be dropped while the
//! kernel probes (a TCP client then waits a second for its SYN retry). The workers therefore
//! note the sender of every ARP request and neighbour solicitation that arrives on-link, and
//! the next-hop lookup falls back to these when the kernel has no entry. The kernel's table
//! stays authoritative; learned entries only fill its gaps, and expire.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use rvs_packet::plane::{NextHop, PortId};

/// How long a learned neighbour is used (the kernel keeps a STALE entry at least this long).
pub const LEARNED_TTL: Duration = Duration::from_secs(60);
/// Most learned neighbours; the table is cleared when full (bounded memory under a flood).
pub const LEARNED_MAX: usize = 4096;

/// The sender (address, MAC) of an ARP request or of a neighbour solicitation carrying a
/// source link-layer address option; `None` for any other frame (untagged Ethernet only).
pub fn solicitation_sender(frame: &[u8]) -> Option<(IpAddr, [u8; 6])> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    match ethertype {
        0x0806 => {
            let arp = frame.get(14..42)?;
            // Ethernet/IPv4, 6/4-byte addresses, request.
            if arp[0..8] != [0, 1, 8, 0, 6, 4, 0, 1] {
                return None;
            }
            let mac: [u8; 6] = arp[8..14].try_into().ok()?;
            let ip = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
            (!ip.is_unspecified()).then_some((IpAddr::V4(ip), mac))
        }
        0x86dd => {
            let ip6 = frame.get(14..54)?;
            // ICMPv6 directly after the fixed header, hop limit 255 (RFC 4861 §7.1.1).
            if ip6[6] != 58 || ip6[7] != 255 {
                return None;
            }
            let src: [u8; 16] = ip6[8..24].try_into().ok()?;
            let src = Ipv6Addr::from(src);
            let icmp = frame.get(54..)?;
            // Neighbour solicitation: type 135, code 0, 4 reserved bytes, 16-byte target.
            if icmp.len() < 24 || icmp[0] != 135 || icmp[1] != 0 || src.is_unspecified() {
                return None;
            }
            let mut opts = &icmp[24..];
            while opts.len() >= 8 {
                let len = usize::from(opts[1]) * 8;
                if len == 0 || len > opts.len() {
                    return None;
                }
                if opts[0] == 1 && len == 8 {
                    let mac: [u8; 6] = opts[2..8].try_into().ok()?;
                    return Some((IpAddr::V6(src), mac));
                }
                opts = &opts[len..];
            }
            None
        }
        _ => None,
    }
}

/// Learned neighbours of one worker.
#[derive(Default)]
pub struct Learned {
    map: HashMap<IpAddr, (NextHop, Instant)>,
}

impl Learned {
    /// Note that `ip` is at `mac` on `port`.
    pub fn learn(&mut self, ip: IpAddr, mac: [u8; 6], port: PortId, now: Instant) {
        if self.map.len() >= LEARNED_MAX && !self.map.contains_key(&ip) {
            self.map.clear();
        }
        self.map.insert(ip, (NextHop { port, mac }, now));
    }

    /// The learned next hop of `ip`, if fresh.
    pub fn get(&self, ip: &IpAddr, now: Instant) -> Option<NextHop> {
        let (nh, at) = self.map.get(ip)?;
        (now.duration_since(*at) < LEARNED_TTL).then_some(*nh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

    fn arp_request(sender: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend(MAC);
        f.extend([0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend(MAC);
        f.extend(sender);
        f.extend([0; 6]);
        f.extend([10, 1, 0, 100]);
        f
    }

    fn neighbour_solicitation(src: Ipv6Addr, hop_limit: u8, with_option: bool) -> Vec<u8> {
        let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend("fd00:1::100".parse::<Ipv6Addr>().unwrap().octets());
        if with_option {
            icmp.extend([1, 1]);
            icmp.extend(MAC);
        }
        let mut f = vec![0x33, 0x33, 0xff, 0, 1, 0];
        f.extend(MAC);
        f.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend((icmp.len() as u16).to_be_bytes());
        f.extend([58, hop_limit]);
        f.extend(src.octets());
        f.extend("ff02::1:ff00:100".parse::<Ipv6Addr>().unwrap().octets());
        f.extend(icmp);
        f
    }

    #[test]
    fn senders_of_arp_requests_and_solicitations() {
        assert_eq!(
            solicitation_sender(&arp_request([10, 1, 0, 2])),
            Some(("10.1.0.2".parse().unwrap(), MAC))
        );
        let src: Ipv6Addr = "fd00:1::2".parse().unwrap();
        assert_eq!(
            solicitation_sender(&neighbour_solicitation(src, 255, true)),
            Some((IpAddr::V6(src), MAC))
        );
    }

    #[test]
    fn other_frames_teach_nothing() {
        // An ARP reply, DAD probes (unspecified sender), a routed NS (hop limit below 255),
        // an NS without the link-layer option, truncated frames.
        let mut reply = arp_request([10, 1, 0, 2]);
        reply[21] = 2;
        assert_eq!(solicitation_sender(&reply), None);
        assert_eq!(solicitation_sender(&arp_request([0, 0, 0, 0])), None);
        let src: Ipv6Addr = "fd00:1::2".parse().unwrap();
        assert_eq!(
            solicitation_sender(&neighbour_solicitation(src, 64, true)),
            None
        );
        assert_eq!(
            solicitation_sender(&neighbour_solicitation(src, 255, false)),
            None
        );
        assert_eq!(
            solicitation_sender(&neighbour_solicitation(Ipv6Addr::UNSPECIFIED, 255, true)),
            None
        );
        let ns = neighbour_solicitation(src, 255, true);
        for n in 0..ns.len() {
            assert_eq!(solicitation_sender(&ns[..n]), None, "truncated at {n}");
        }
        // A zero-length option must not loop.
        let mut bad = ns.clone();
        let opt = bad.len() - 8;
        bad[opt + 1] = 0;
        assert_eq!(solicitation_sender(&bad), None);
    }

    #[test]
    fn learned_entries_expire_and_stay_bounded() {
        let mut l = Learned::default();
        let t0 = Instant::now();
        let ip: IpAddr = "10.1.0.2".parse().unwrap();
        l.learn(ip, MAC, 0, t0);
        assert_eq!(l.get(&ip, t0).map(|n| n.mac), Some(MAC));
        assert_eq!(l.get(&ip, t0 + LEARNED_TTL), None);
        for i in 0..(LEARNED_MAX as u32 + 10) {
            l.learn(IpAddr::V4(Ipv4Addr::from(i)), MAC, 1, t0);
        }
        assert!(l.map.len() <= LEARNED_MAX);
    }
}
