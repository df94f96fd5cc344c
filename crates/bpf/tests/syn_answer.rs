//! The XDP program's SYN answering (`bpf/syn_answer.h`) checked against the userspace SYN
//! proxy, the way Katran tests its program: the same SYN goes through the loaded program with
//! `BPF_PROG_TEST_RUN` and through `Plane::process` with `rvs_syn_proxy=1`, with the same
//! cookie key (derived from the director's seed, as rvsd fills the map) and the same time;
//! the program's SYN-ACK must be the plane's byte for byte. One implementation checks the
//! other: a difference in the cookie, the MSS class, the options walk, a header field or a
//! checksum fails here. Then the verdicts: what the program must leave to userspace (a
//! service that is not SYN-proxied, the proxy off, malformed SYNs, other flags) comes out
//! `XDP_PASS` and untouched.
//!
//! Needs root (BPF) and clang at build time.

mod common;

#[path = "../../packet/tests/golden_src/build.rs"]
#[allow(dead_code)]
mod build;
#[path = "../../packet/tests/golden_src/fixture.rs"]
#[allow(dead_code)]
mod fixture;

use std::collections::HashSet;
use std::net::IpAddr;

use etherparse::{PacketBuilder, TcpOptionElement};
use fixture::{build as build_rig, Rig, Zero, HEADROOM, P0_MAC, ROUTER_MAC};
use rvs_bpf::syn_answer::monotonic_ns;
use rvs_bpf::test_run::verdict;
use rvs_bpf::xdp::FastPath;
use rvs_core::Time;
use rvs_packet::plane::{DropReason, Verdict};
use rvs_packet::syncookie::CookieKey;

const VIP: &str = "198.51.100.10";
/// The interface the test runs frames "in on": lo, which exists in every namespace.
const IFINDEX: u32 = 1;
/// rvsd's clock at the test, in seconds: the middle of a 64-second unit (so the program's
/// reading, a fraction of a second later, falls in the same unit), as late as the host's
/// `CLOCK_MONOTONIC` allows (the epoch cannot be before its zero), so that the unit's counter
/// is not zero on a host that has been up a while.
fn now_secs() -> u64 {
    let up = monotonic_ns() / 1_000_000_000;
    (up.saturating_sub(64) / 64).min(100_000) * 64 + 32
}

/// A director with a SYN-proxied NAT service VIP:80, a plain one VIP:81 (a DR real server:
/// never proxied), and the program's maps filled as rvsd fills them.
fn setup(fp: &mut FastPath) -> Rig {
    let rig = build_rig(&[
        format!("-A -t {VIP}:80 -s rr"),
        format!("-a -t {VIP}:80 -r 192.168.1.2:8080 -m"),
        format!("-A -t {VIP}:81 -s rr"),
        format!("-a -t {VIP}:81 -r 192.168.1.2 -g"),
        "sysctl rvs_syn_proxy 1".to_string(),
    ])
    .unwrap();
    let key = CookieKey::derive(rig.director.conns.seed().0);
    let epoch = monotonic_ns() - now_secs() * 1_000_000_000;
    // The frames come in for the plane's port 0 (the fixture's director MAC).
    fp.set_mac(IFINDEX, P0_MAC).unwrap();
    let syn = fp.syn_answer();
    syn.set_config(key, epoch, true).unwrap();
    let vip: IpAddr = VIP.parse().unwrap();
    syn.set_services(&HashSet::from([(vip, 80)])).unwrap();
    syn.set_mtu(IFINDEX, 1500).unwrap();
    rig
}

/// An Ethernet/IPv4/TCP SYN from `src:sport` to VIP:`dport`.
fn syn(
    src: &str,
    sport: u16,
    dport: u16,
    isn: u32,
    opts: &[TcpOptionElement],
    payload: &[u8],
) -> Vec<u8> {
    let s: std::net::Ipv4Addr = src.parse().unwrap();
    let d: std::net::Ipv4Addr = VIP.parse().unwrap();
    let mut b = PacketBuilder::ethernet2(ROUTER_MAC, P0_MAC)
        .ipv4(s.octets(), d.octets(), 60)
        .tcp(sport, dport, isn, 29200)
        .syn();
    if !opts.is_empty() {
        b = b.options(opts).unwrap();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// What the userspace plane does with `f` on port 0 at [`now_secs`]: the frame it sends back
/// on port 0, or its verdict.
fn userspace(rig: &mut Rig, f: &[u8]) -> Result<Vec<u8>, Verdict> {
    let mut buf = vec![0u8; HEADROOM + f.len() + 2048];
    buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
    match rig.process(
        &mut buf,
        HEADROOM,
        f.len(),
        0,
        Time::from_secs(now_secs()),
        &mut Zero,
    ) {
        Verdict::Local {
            port: 0,
            start,
            len,
        } => Ok(buf[start..start + len].to_vec()),
        v => Err(v),
    }
}

/// Fixes the IPv4 header checksum of frame `f` after a test edited the header.
fn fix_ip_checksum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let mut s: u32 = f[14..34]
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    let c = !(s as u16);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn program_answers_syns_byte_for_byte_as_the_userspace_proxy() {
    let Some(mut fp) = common::fast_path() else {
        return;
    };
    let mut rig = setup(&mut fp);
    use TcpOptionElement::*;
    let linux = [
        MaximumSegmentSize(1460),
        SelectiveAcknowledgementPermitted,
        Timestamp(123_456, 0),
        Noop,
        WindowScale(7),
    ];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "linux options, MSS 1460",
            syn("203.0.113.5", 40000, 80, 1000, &linux, &[]),
        ),
        (
            "MSS 1300",
            syn(
                "203.0.113.6",
                1024,
                80,
                0xffff_ffff,
                &[MaximumSegmentSize(1300)],
                &[],
            ),
        ),
        (
            "MSS 1439: class 1300",
            syn("10.1.2.3", 65535, 80, 7, &[MaximumSegmentSize(1439)], &[]),
        ),
        (
            "MSS 1440",
            syn(
                "10.1.2.4",
                5,
                80,
                0x8000_0000,
                &[Noop, MaximumSegmentSize(1440)],
                &[],
            ),
        ),
        (
            "MSS 9000: class 1460",
            syn("10.1.2.5", 6, 80, 1, &[MaximumSegmentSize(9000)], &[]),
        ),
        (
            "MSS 100: class 536",
            syn("10.1.2.6", 7, 80, 2, &[MaximumSegmentSize(100)], &[]),
        ),
        (
            "MSS 0",
            syn("10.1.2.7", 8, 80, 3, &[MaximumSegmentSize(0)], &[]),
        ),
        (
            "no options (a 54-byte frame)",
            syn("192.0.2.1", 33333, 80, 99, &[], &[]),
        ),
        (
            "two MSS options: the last wins",
            syn(
                "192.0.2.2",
                2,
                80,
                4,
                &[MaximumSegmentSize(1460), MaximumSegmentSize(1300)],
                &[],
            ),
        ),
        (
            "payload on the SYN (fast open)",
            syn("192.0.2.3", 3, 80, 5, &linux, b"GET / HTTP/1.0\r\n\r\n"),
        ),
    ];
    let mut cases = cases;
    // Options the walk must stop at as the userspace walk does: an End-of-options before the
    // MSS, a length running past the header, a length below 2.
    let mut eol = syn(
        "192.0.2.10",
        10,
        80,
        10,
        &[Noop, Noop, Noop, Noop, MaximumSegmentSize(1460)],
        &[],
    );
    eol[54] = 0;
    cases.push(("End-of-options before the MSS", eol));
    let mut long = syn(
        "192.0.2.11",
        11,
        80,
        11,
        &[Noop, Noop, Noop, Noop, MaximumSegmentSize(1460)],
        &[],
    );
    long[59] = 40;
    cases.push(("MSS length past the header", long));
    let mut short = syn(
        "192.0.2.12",
        12,
        80,
        12,
        &[Noop, Noop, Noop, Noop, MaximumSegmentSize(1460)],
        &[],
    );
    short[55] = 1;
    short[56] = 2;
    short[57] = 1;
    cases.push(("an option of length 1", short));
    // ECN setup (ECE + CWR) on the SYN: answered, the flags are not echoed.
    let mut ecn = syn("192.0.2.13", 13, 80, 13, &linux, &[]);
    ecn[47] |= 0xc0;
    cases.push(("ECN-setup SYN", ecn));
    // Ethernet padding after a short frame.
    let mut padded = syn("192.0.2.14", 14, 80, 14, &[], &[]);
    padded.extend_from_slice(&[0; 6]);
    cases.push(("padded to 60 bytes", padded));
    // Random tuples and sequence numbers.
    let mut x: u64 = 0x1234_5678_9abc_def0;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let src = format!(
            "{}.{}.{}.{}",
            1 + (x >> 8) % 223,
            (x >> 16) as u8,
            (x >> 24) as u8,
            (x >> 32) as u8
        );
        let mss = MaximumSegmentSize(500 + ((x >> 40) % 1200) as u16);
        cases.push((
            "random",
            syn(&src, (x >> 48) as u16, 80, x as u32, &[mss], &[]),
        ));
    }
    for (what, f) in &cases {
        let want = userspace(&mut rig, f).unwrap_or_else(|v| panic!("{what}: userspace {v:?}"));
        let r = fp.test_run(f, IFINDEX).unwrap();
        assert_eq!(r.retval, verdict::TX, "{what}: verdict");
        assert_eq!(
            r.data, want,
            "{what}: the program's SYN-ACK differs from the plane's"
        );
    }
    assert_eq!(rig.director.conns.len(), 0);
    let c = fp.syn_answer().counters().unwrap();
    assert_eq!((c.answered, c.left), (cases.len() as u64, 0));
}

#[test]
fn program_leaves_to_userspace_what_it_must_not_answer() {
    let Some(mut fp) = common::fast_path() else {
        return;
    };
    let mut rig = setup(&mut fp);
    let mss = [TcpOptionElement::MaximumSegmentSize(1460)];
    let passed = |fp: &mut FastPath, f: &[u8], what: &str| {
        let r = fp.test_run(f, IFINDEX).unwrap();
        assert_eq!((r.retval, r.data.as_slice()), (verdict::PASS, f), "{what}");
    };
    // A service whose real server is DR: userspace does not proxy it either.
    let f = syn("203.0.113.5", 40000, 81, 1000, &mss, &[]);
    passed(&mut fp, &f, "SYN to a service that is not SYN-proxied");
    assert!(matches!(
        userspace(&mut rig, &f),
        Err(Verdict::Transmit { .. })
    ));
    // No service at all.
    passed(
        &mut fp,
        &syn("203.0.113.5", 40000, 82, 1000, &mss, &[]),
        "SYN to no service",
    );
    // Data offset beyond the packet: userspace drops it as malformed.
    let mut bad = syn("203.0.113.5", 40001, 80, 1000, &[], &[]);
    bad[46] = 0xf0;
    passed(&mut fp, &bad, "data offset past the segment");
    assert_eq!(
        userspace(&mut rig, &bad),
        Err(Verdict::Drop(DropReason::Malformed))
    );
    // Data offset below 5.
    let mut low = syn("203.0.113.5", 40002, 80, 1000, &[], &[]);
    low[46] = 0x40;
    passed(&mut fp, &low, "data offset 4");
    // IP total length shorter than the TCP header: truncated.
    let mut trunc = syn("203.0.113.5", 40003, 80, 1000, &mss, &[]);
    trunc[16..18].copy_from_slice(&30u16.to_be_bytes());
    fix_ip_checksum(&mut trunc);
    passed(&mut fp, &trunc, "IP length inside the TCP header");
    // Flags other than a lone SYN (SYN-ACK, SYN+RST, SYN+FIN, a plain ACK).
    for (fl, what) in [
        (0x12u8, "SYN-ACK"),
        (0x06, "SYN+RST"),
        (0x03, "SYN+FIN"),
        (0x10, "ACK"),
    ] {
        let mut f = syn("203.0.113.5", 40004, 80, 1000, &mss, &[]);
        f[47] = fl;
        passed(&mut fp, &f, what);
    }
    // IP options.
    let mut opt = syn("203.0.113.5", 40005, 80, 1000, &[], &[]);
    opt.splice(34..34, [1u8, 1, 1, 0]);
    opt[14] = 0x46;
    let tot = u16::from_be_bytes([opt[16], opt[17]]) + 4;
    opt[16..18].copy_from_slice(&tot.to_be_bytes());
    fix_ip_checksum(&mut opt);
    passed(&mut fp, &opt, "IP options");
    // An interface without an MTU entry (not one of the plane's).
    let f = syn("203.0.113.5", 40006, 80, 1000, &mss, &[]);
    fp.syn_answer().clear_mtu(IFINDEX).unwrap();
    passed(&mut fp, &f, "SYN on an interface that is not the plane's");
    // Left, to a served service: the data offset past the segment, the truncated one, this.
    assert_eq!(fp.syn_answer().counters().unwrap().left, 3);
    fp.syn_answer().set_mtu(IFINDEX, 1500).unwrap();
    let r = fp.test_run(&f, IFINDEX).unwrap();
    assert_eq!(
        r.retval,
        verdict::TX,
        "the same SYN on the plane's interface"
    );
    // For another host's MAC (a flooded frame, PACKET_OTHERHOST): not the director's to
    // answer, as the kernel would not, nor to leave to userspace (not counted as left).
    let mut flooded = f.clone();
    flooded[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
    passed(&mut fp, &flooded, "SYN for another host's MAC");
    assert_eq!(fp.syn_answer().counters().unwrap().left, 3);
    assert_eq!(fp.counters().unwrap().pass_other_host, 1);
    // The proxy off: nothing is answered.
    let key = CookieKey::derive(rig.director.conns.seed().0);
    fp.syn_answer().set_config(key, 0, false).unwrap();
    passed(&mut fp, &f, "SYN with the proxy off");
    let c = fp.syn_answer().counters().unwrap();
    assert_eq!(c.answered, 1);
}
