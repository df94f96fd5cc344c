//! The XDP program on this kernel: the verifier accepts it, and `BPF_PROG_TEST_RUN` shows what
//! it does with a packet with and without an entry (root; clang at build time).

mod common;

use std::net::IpAddr;

use rvs_bpf::test_run::verdict;
use rvs_bpf::xdp::{Egress, Flow, FlowKey};
use rvs_packet::fastpath::OfferAction;

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
    let r = fp.test_run(&input, 1).unwrap();
    assert_eq!((r.retval, &r.data), (verdict::PASS, &input));
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let key = FlowKey::new(6, (ip("203.0.113.5"), 40002), (ip("198.51.100.10"), 80));
    let egress = Egress {
        ifindex: 1,
        dst_mac: [2, 0, 0, 0, 1, 0x0b],
        src_mac: [2, 0, 0, 0, 1, 1],
        max_len: 1500,
    };
    let action = OfferAction::Rewrite {
        src: None,
        dst: Some((ip("192.168.1.11"), 8080)),
    };
    fp.insert(&key, &Flow::new(action, egress)).unwrap();
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
