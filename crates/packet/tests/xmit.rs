//! The per-method transmit sequence (docs/internals/forwarding.md#common-steps-for-every-method order: TTL, MTU, rewrite).

mod common;

use common::*;
use rvs_packet::nat::Endpoint;
use rvs_packet::parse::verify_l4_checksum;
use rvs_packet::tunnel::{TunnelCsum, TunnelParams, TunnelType};
use rvs_packet::xmit::{transmit, Egress, Method, Outcome};
use rvs_packet::{parse, Error};

fn egress(mtu: u32) -> Egress {
    Egress {
        dst_mac: RS_MAC,
        src_mac: DIR_MAC,
        mtu,
        pmtu_disc: true,
        relayed_icmp: false,
        frag_max: None,
    }
}

fn tun(kind: TunnelType) -> TunnelParams {
    TunnelParams {
        kind,
        csum: TunnelCsum::NoCsum,
        src: DIP4.into(),
        dst: RIP4.into(),
        dst_mac: RS_MAC,
        src_mac: DIR_MAC,
        pmtu_disc: true,
        ident: 3,
        gue_sport: 50000,
        inner_partial: None,
    }
}

fn run(frame: &[u8], method: Method<'_>, eg: &Egress) -> (Result<Outcome, Error>, Vec<u8>) {
    let p = parse(frame).unwrap();
    let mut buf = vec![0u8; 64];
    buf.extend_from_slice(frame);
    let r = transmit(&mut buf, 64, frame.len(), &p, method, eg);
    (r, buf)
}

#[test]
fn every_method_sends_a_valid_frame() {
    let t = tun(TunnelType::Ipip);
    let g = tun(TunnelType::Gue { port: 6080 });
    for f in [Fam::V4, Fam::V6] {
        let frame = build(f, Proto::Tcp, b"data");
        let methods = [
            Method::Nat {
                dst: Endpoint::new(rip(f), 8080),
            },
            Method::NatReply {
                src: Endpoint::new(vip(f), 80),
            },
            Method::FullNat {
                src: Endpoint::new(lip(f), 5000),
                dst: Endpoint::new(rip(f), 8080),
            },
            Method::Dr,
            Method::Tun(&t),
            Method::Tun(&g),
        ];
        for m in methods {
            let (r, buf) = run(&frame, m, &egress(1500));
            let Ok(Outcome::Send { start, len }) = r else {
                panic!("{f:?} {m:?}: {r:?}")
            };
            let out = &buf[start..start + len];
            assert_eq!(&out[0..6], &RS_MAC, "{m:?}");
            assert_eq!(&out[6..12], &DIR_MAC);
            let op = parse(out).unwrap();
            assert_eq!(op.ttl(out), Some(63), "{f:?} {m:?}: TTL decremented once");
            if !matches!(m, Method::Tun(_)) {
                verify_l4_checksum(out, &op).unwrap();
                etherparse_check(out);
            }
        }
    }
}

#[test]
fn refusals_leave_the_frame_untouched() {
    // TTL 1: time exceeded.
    let f1 = build_addr(CIP4.into(), VIP4.into(), Proto::Udp, 1, 2, 1, b"x");
    let (r, buf) = run(&f1, Method::Dr, &egress(1500));
    assert_eq!(r, Ok(Outcome::TimeExceeded));
    assert_eq!(&buf[64..], &f1[..]);
    // IPv4 DF too big: FRAG_NEEDED with the route MTU, TTL restored byte for byte.
    let big = build(Fam::V4, Proto::Tcp, &[0u8; 1400]);
    let (r, buf) = run(
        &big,
        Method::Nat {
            dst: Endpoint::new(RIP4.into(), 80),
        },
        &egress(1000),
    );
    assert_eq!(r, Ok(Outcome::FragNeeded(1000)));
    assert_eq!(&buf[64..], &big[..]);
    // Through an IPIP tunnel the inner MTU is 20 smaller.
    let t = tun(TunnelType::Ipip);
    let (r, _) = run(&big, Method::Tun(&t), &egress(1440));
    assert_eq!(r, Ok(Outcome::FragNeeded(1420)));
    // IPv6: PACKET_TOO_BIG.
    let big6 = build(Fam::V6, Proto::Udp, &[0u8; 1400]);
    let (r, buf) = run(&big6, Method::Dr, &egress(1280));
    assert_eq!(r, Ok(Outcome::PacketTooBig(1280)));
    assert_eq!(&buf[64..], &big6[..]);
    // Relayed ICMP is never answered with FRAG_NEEDED: it may be fragmented.
    let mut eg = egress(1000);
    eg.relayed_icmp = true;
    let (r, _) = run(&big, Method::Dr, &eg);
    assert!(
        matches!(r, Ok(Outcome::Fragment { mtu: 1000, .. })),
        "{r:?}"
    );
    // Tunnel with pmtu_disc = 0: the outer packet is fragmented at the route MTU.
    let mut t0 = tun(TunnelType::Gre);
    t0.pmtu_disc = false;
    let mut eg = egress(1000);
    eg.pmtu_disc = false;
    let (r, buf) = run(&big, Method::Tun(&t0), &eg);
    let Ok(Outcome::Fragment {
        start,
        len,
        mtu: 1000,
    }) = r
    else {
        panic!("{r:?}")
    };
    let p = parse(&buf[start..start + len]).unwrap();
    let mut fr = rvs_packet::frag::fragment_ipv4(&buf[start..start + len], &p, 1000).unwrap();
    let mut out = [0u8; 1100];
    let mut n = 0;
    while let Some(l) = fr.next_into(&mut out).unwrap() {
        parse(&out[..l]).unwrap();
        n += 1;
        assert!(n < 5);
    }
    assert_eq!(n, 2);
    // Impossible parameters are errors, the frame is left alone.
    let small = build(Fam::V4, Proto::Tcp, b"");
    let (r, buf) = run(
        &small,
        Method::Nat {
            dst: Endpoint::new(RIP6.into(), 1),
        },
        &egress(1500),
    );
    assert_eq!(r, Err(Error::FamilyMismatch));
    assert_eq!(&buf[64..], &small[..]);
    let (r, _) = run(&small, Method::Tun(&t), &egress(80));
    assert_eq!(r, Err(Error::MtuTooSmall(60)));
}
