//! The XDP program on this kernel: the verifier accepts it, and `BPF_PROG_TEST_RUN` shows what
//! it does with a packet with and without an entry (root; clang at build time).

mod common;

use std::net::IpAddr;

use rvs_bpf::test_run::verdict;
use rvs_bpf::xdp::{Egress, Flow, FlowKey};
use rvs_packet::fastpath::OfferAction;

/// An entry that NATs to `dst` and sends out of interface 1 from the director's MAC to the
/// real server's, as rvsd installs one for a NAT flow.
fn nat_to(dst: (IpAddr, u16)) -> Flow {
    let egress = Egress {
        ifindex: 1,
        dst_mac: [2, 0, 0, 0, 1, 0x0b],
        src_mac: [2, 0, 0, 0, 1, 1],
        max_len: 1500,
    };
    Flow::new(
        OfferAction::Rewrite {
            src: None,
            dst: Some(dst),
        },
        egress,
    )
}

/// The MAC of the director's interface in the frames below (ifindex 1, `lo`, in the runs).
const DIRECTOR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

#[test]
fn verifier_accepts_the_program() {
    let Some(fp) = common::fast_path() else {
        return;
    };
    assert_eq!(fp.counters().unwrap(), Default::default());
}

/// A NAT connection's client ACK (golden case seq-nat-v4-tcp, step 3): passed without an
/// entry, rewritten byte for byte as the userspace plane does with one, and counted.
#[test]
fn nat_request_rewritten_only_with_an_entry() {
    let Some(mut fp) = common::fast_path() else {
        return;
    };
    let input = hex("02 00 00 00 00 01 02 00 00 00 00 fe 08 00 45 00
        00 28 12 34 40 00 40 06 c2 58 cb 00 71 05 c6 33
        64 0a 9c 42 00 50 00 00 03 e8 00 00 00 4d 50 10
        fa f0 ad d8 00 00");
    let expected = hex("02 00 00 00 01 0b 02 00 00 00 01 01 08 00 45 00
        00 28 12 34 40 00 3f 06 2b e3 cb 00 71 05 c0 a8
        01 0b 9c 42 1f 90 00 00 03 e8 00 00 00 4d 50 10
        fa f0 f7 22 00 00");
    fp.set_mac(1, DIRECTOR_MAC).unwrap();
    let r = fp.test_run(&input, 1).unwrap();
    assert_eq!((r.retval, &r.data), (verdict::PASS, &input));
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let key = FlowKey::new(6, (ip("203.0.113.5"), 40002), (ip("198.51.100.10"), 80));
    fp.insert(&key, &nat_to((ip("192.168.1.11"), 8080)))
        .unwrap();
    let r = fp.test_run(&input, 1).unwrap();
    assert_eq!(r.retval, verdict::TX);
    assert_eq!(r.data, expected);
    let f = fp.flow(&key).unwrap().unwrap();
    assert_eq!((f.packets(), f.bytes()), (1, 40));
    assert!(f.last_seen().is_some());
    let c = fp.counters().unwrap();
    assert_eq!((c.tx, c.pass_no_flow), (1, 1));
    fp.remove(&key).unwrap();
    assert_eq!(fp.flow(&key).unwrap(), None);
    fp.remove(&key).unwrap();
}

/// A frame of a flow with an entry, but for another host's MAC (a switch flooding an unknown
/// unicast, or the frames of a VIP whose MAC moved to the VRRP peer): the kernel drops it
/// (`PACKET_OTHERHOST`) and so must the director — passed untouched, counted as another
/// host's, not forwarded and not sent to the slow path. The same frame at the interface's own
/// MAC is forwarded; so is it once the interface's MAC is registered as the frame's
/// destination (a changed address); an interface with no MAC registered forwards nothing.
#[test]
fn a_frame_for_another_hosts_mac_is_passed_untouched() {
    let Some(mut fp) = common::fast_path() else {
        return;
    };
    // seq-nat-v4-udp's client datagram 203.0.113.5:40000 -> 198.51.100.10:53.
    let mut own = hex("02 00 00 00 00 01 02 00 00 00 00 fe 08 00 45 00
        00 21 00 01 00 00 40 11 14 88 cb 00 71 05 c6 33
        64 0a 9c 40 00 35 00 0d 00 00 71 75 65 72 79");
    // A real UDP checksum (the program leaves checksum-less UDP to userspace).
    let sum = udp_checksum(&own[26..34], &own[34..]);
    own[40..42].copy_from_slice(&sum.to_be_bytes());
    let mut foreign = own.clone();
    foreign[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x99]);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let key = FlowKey::new(17, (ip("203.0.113.5"), 40000), (ip("198.51.100.10"), 53));
    fp.insert(&key, &nat_to((ip("192.168.1.11"), 5353)))
        .unwrap();
    // No MAC registered for the interface: nothing is for it.
    let r = fp.test_run(&own, 1).unwrap();
    assert_eq!((r.retval, &r.data), (verdict::PASS, &own));
    fp.set_mac(1, DIRECTOR_MAC).unwrap();
    let r = fp.test_run(&foreign, 1).unwrap();
    assert_eq!(
        (r.retval, &r.data),
        (verdict::PASS, &foreign),
        "a frame for another host's MAC must be passed untouched"
    );
    let c = fp.counters().unwrap();
    assert_eq!((c.pass_other_host, c.tx, c.xsk), (2, 0, 0), "{c:?}");
    assert_eq!(fp.flow(&key).unwrap().unwrap().packets(), 0);
    // At the interface's own MAC: forwarded, rewritten toward the real server.
    let r = fp.test_run(&own, 1).unwrap();
    assert_eq!(r.retval, verdict::TX);
    assert_eq!(&r.data[..6], &[2, 0, 0, 0, 1, 0x0b]);
    assert_eq!(&r.data[30..34], &[192, 168, 1, 11]);
    // Broadcast and multicast destinations are not another host's: as before.
    let mut bcast = own.clone();
    bcast[..6].copy_from_slice(&[0xff; 6]);
    assert_eq!(fp.test_run(&bcast, 1).unwrap().retval, verdict::TX);
    // The interface's MAC changed to the flooded frame's destination: it is ours now.
    fp.set_mac(1, [2, 0, 0, 0, 0, 0x99]).unwrap();
    assert_eq!(fp.test_run(&foreign, 1).unwrap().retval, verdict::TX);
    assert_eq!(fp.test_run(&own, 1).unwrap().retval, verdict::PASS);
    let c = fp.counters().unwrap();
    assert_eq!((c.pass_other_host, c.tx), (3, 3), "{c:?}");
    assert_eq!(fp.flow(&key).unwrap().unwrap().packets(), 3);
    // An entry as rvsd installs it names the interface and MAC its frames come in on: those
    // need no look-up, any other is still checked against the registry.
    fp.set_mac(1, DIRECTOR_MAC).unwrap();
    let nat = nat_to((ip("192.168.1.11"), 5353));
    let vouched = nat.arriving(1, DIRECTOR_MAC);
    fp.insert(&key, &vouched).unwrap();
    assert_eq!(fp.test_run(&own, 1).unwrap().retval, verdict::TX);
    let r = fp.test_run(&foreign, 1).unwrap();
    assert_eq!((r.retval, &r.data), (verdict::PASS, &foreign));
    // Vouched for another interface: the look-up decides (ifindex 1's MAC is the frame's).
    fp.insert(&key, &nat.arriving(7, DIRECTOR_MAC)).unwrap();
    assert_eq!(fp.test_run(&own, 1).unwrap().retval, verdict::TX);
    let c = fp.counters().unwrap();
    assert_eq!((c.pass_other_host, c.tx), (4, 5), "{c:?}");
}

/// The UDP checksum over an IPv4 pseudo-header of `addrs` (source and destination, 8 bytes)
/// and the datagram `udp` (its checksum field zero).
fn udp_checksum(addrs: &[u8], udp: &[u8]) -> u16 {
    let mut s: u32 = 17 + udp.len() as u32;
    for c in addrs.chunks(2).chain(udp.chunks(2)) {
        let hi = u32::from(c[0]) << 8;
        s += hi | c.get(1).copied().map_or(0, u32::from);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    match !(s as u16) {
        0 => 0xffff,
        c => c,
    }
}

/// The sweep reads the flow map in batches: every entry comes back once, with its value, in
/// batches of at most the size asked for.
#[test]
fn the_flow_map_is_read_whole_in_batches() {
    let Some(mut fp) = common::fast_path() else {
        return;
    };
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let n: u16 = 3000;
    for i in 0..n {
        let key = FlowKey::new(
            17,
            (ip("203.0.113.5"), 10_000 + i),
            (ip("198.51.100.10"), 53),
        );
        fp.insert(&key, &nat_to((ip("192.168.1.11"), 1 + i)))
            .unwrap();
    }
    let mut seen = std::collections::HashMap::new();
    let mut batches = 0;
    fp.flows_in_batches(1024, |keys, flows| {
        assert!(keys.len() <= 1024 && keys.len() == flows.len());
        batches += 1;
        for (k, f) in keys.iter().zip(flows) {
            assert!(seen.insert(*k, *f).is_none(), "{k:?} handed twice");
        }
    })
    .unwrap();
    assert_eq!(seen.len(), usize::from(n));
    assert!(batches >= 3, "{batches} batches");
    for i in 0..n {
        let key = FlowKey::new(
            17,
            (ip("203.0.113.5"), 10_000 + i),
            (ip("198.51.100.10"), 53),
        );
        assert_eq!(seen[&key], fp.flow(&key).unwrap().unwrap());
        assert_eq!(seen[&key], nat_to((ip("192.168.1.11"), 1 + i)));
    }
    // An empty map: one call, no entries.
    for i in 0..n {
        let key = FlowKey::new(
            17,
            (ip("203.0.113.5"), 10_000 + i),
            (ip("198.51.100.10"), 53),
        );
        fp.remove(&key).unwrap();
    }
    let mut got = 0;
    fp.flows_in_batches(1024, |keys, _| got += keys.len())
        .unwrap();
    assert_eq!(got, 0);
}
