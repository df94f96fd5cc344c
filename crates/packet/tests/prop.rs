//! Property tests: no input panics `parse` or any primitive; incremental checksum
//! updates equal full recomputation.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::*;
use proptest::prelude::*;
use rvs_packet::checksum;
use rvs_packet::generate;
use rvs_packet::icmp_relay;
use rvs_packet::nat::{self, Endpoint, UdpZeroChecksum};
use rvs_packet::parse::{fill_l4_checksum, proto, verify_l4_checksum};
use rvs_packet::tunnel::{self, MtuCheck, TunnelCsum, TunnelParams, TunnelType};
use rvs_packet::{parse, xmit, Parsed};

const EPS: [fn() -> Endpoint; 2] = [
    || Endpoint::new(RIP4.into(), 8080),
    || Endpoint::new(RIP6.into(), 8080),
];

/// Runs every primitive on `frame` as classified by `p` (which may belong to a
/// different frame: stale offsets must not panic either). Returns nothing: the
/// property is "no panic"; rewrites that succeed on a parseable frame must leave
/// a parseable frame.
fn exercise(frame: &[u8], p: &Parsed) {
    let parseable = parse(frame).as_ref() == Ok(p);
    for ep in EPS {
        let ep = ep();
        for op in 0..4 {
            let mut f = frame.to_vec();
            let r = match op {
                0 => nat::dnat(&mut f, p, ep),
                1 => nat::snat(&mut f, p, ep),
                2 => nat::fullnat(&mut f, p, ep, ep),
                _ => nat::rewrite(&mut f, p, Some(ep), None, UdpZeroChecksum::Keep),
            };
            if r.is_ok() && parseable {
                let np = parse(&f).expect("a NATed parseable frame parses");
                if verify_l4_checksum(frame, p).is_ok() && np.proto != proto::UDP {
                    verify_l4_checksum(&f, &np).expect("checksum stays valid");
                }
            }
        }
    }
    let mut f = frame.to_vec();
    let _ = nat::decrement_ttl(&mut f, p);
    if parseable {
        parse(&f).expect("TTL decrement keeps the frame parseable");
    }
    let mut f = frame.to_vec();
    let _ = nat::dr_forward(&mut f, p, RS_MAC, DIR_MAC);
    let _ = nat::set_macs(&mut f, RS_MAC, DIR_MAC);
    let _ = verify_l4_checksum(frame, p);
    let mut f = frame.to_vec();
    let _ = fill_l4_checksum(&mut f, p);
    for (tunnel, pmtu_disc, relayed_icmp) in [(false, true, false), (true, false, true)] {
        let _ = tunnel::mtu_check(
            frame,
            p,
            &MtuCheck {
                mtu: 60,
                tunnel,
                pmtu_disc,
                relayed_icmp,
                frag_max: None,
            },
        );
    }
    let _ = tunnel::flow_hash(frame, p);
    let tp = TunnelParams {
        kind: TunnelType::Gue { port: 6080 },
        csum: TunnelCsum::Csum,
        src: DIP4.into(),
        dst: RIP4.into(),
        dst_mac: RS_MAC,
        src_mac: DIR_MAC,
        pmtu_disc: false,
        ident: 0,
        gue_sport: 50000,
        inner_partial: None,
    };
    for m in [
        xmit::Method::Nat { dst: EPS[0]() },
        xmit::Method::NatReply { src: EPS[1]() },
        xmit::Method::FullNat {
            src: EPS[0](),
            dst: EPS[0](),
        },
        xmit::Method::Dr,
        xmit::Method::Tun(&tp),
    ] {
        for mtu in [100u32, 1500] {
            let eg = xmit::Egress {
                dst_mac: RS_MAC,
                src_mac: DIR_MAC,
                mtu,
                pmtu_disc: mtu > 100,
                relayed_icmp: false,
                frag_max: None,
            };
            let mut buf = vec![0u8; 64];
            buf.extend_from_slice(frame);
            let r = xmit::transmit(&mut buf, 64, frame.len(), p, m, &eg);
            if parseable {
                if let Ok(xmit::Outcome::Send { start, len }) = r {
                    parse(&buf[start..start + len]).expect("a transmitted frame parses");
                }
            }
        }
    }
    for mtu in [0u32, 28, 68, 100, 1500] {
        if let Ok(mut fr) = rvs_packet::frag::fragment_ipv4(frame, p, mtu) {
            let mut out = [0u8; 256];
            for _ in 0..64 {
                match fr.next_into(&mut out) {
                    Ok(Some(n)) if parseable => {
                        // The transport header may be cut (tiny first fragment), the
                        // IPv4 header never is.
                        let ip = rvs_packet::ipv4::Ipv4Packet::new_checked(&out[p.l2_len..n])
                            .expect("fragment IPv4 header valid");
                        assert!(ip.verify_checksum());
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    }
    for outer in [Fam::V4, Fam::V6] {
        for (kind, csum) in [
            (TunnelType::Ipip, TunnelCsum::NoCsum),
            (TunnelType::Gue { port: 6080 }, TunnelCsum::Csum),
            (TunnelType::Gue { port: 6080 }, TunnelCsum::RemCsum),
            (TunnelType::Gre, TunnelCsum::Csum),
        ] {
            let mut buf = vec![0u8; 80];
            buf.extend_from_slice(frame);
            let t = TunnelParams {
                kind,
                csum,
                src: dip(outer),
                dst: rip(outer),
                dst_mac: RS_MAC,
                src_mac: DIR_MAC,
                pmtu_disc: true,
                ident: 0,
                gue_sport: 50000,
                inner_partial: Some((20, 36)),
            };
            if let Ok((s, l)) = tunnel::encapsulate(&mut buf, 80, frame.len(), p, &t) {
                if parseable {
                    let op = parse(&buf[s..s + l]).expect("an encapsulated frame parses");
                    let _ = tunnel::decapsulate(&mut buf, s, l, &op, Some(6080));
                }
            }
        }
    }
    let mut f = frame.to_vec();
    let _ = tunnel::decapsulate(&mut f, 0, frame.len(), p, Some(6080));
    let mut f = frame.to_vec();
    let _ = tunnel::decapsulate(&mut f, 0, frame.len(), p, None);
    // The same bytes as a bare IP packet (TUN device / raw socket).
    if let Some(l3) = frame.get(p.l2_len.min(frame.len())..) {
        let mut ip = l3.to_vec();
        if let Ok(ipp) = rvs_packet::parse_ip(&ip) {
            let mut c = ip.clone();
            let _ = nat::dnat(&mut c, &ipp, EPS[0]());
            let _ = nat::decrement_ttl(&mut c, &ipp);
            let _ = icmp_relay::icmp_error(&ip, &ipp);
        }
        let _ = tunnel::decapsulate_ip(&mut ip, Some(6080));
    }
    if let Ok(Some(e)) = icmp_relay::icmp_error(frame, p) {
        for ep in EPS {
            let mut f = frame.to_vec();
            let _ = icmp_relay::icmp_nat_in(&mut f, p, &e, ep());
            let mut f = frame.to_vec();
            let _ = icmp_relay::icmp_nat_out(&mut f, p, &e, ep());
        }
        let _ = icmp_relay::icmp_tunnel_inner(frame, &e, Some(6080));
    }
    let mut out = [0u8; 1400];
    if let Some(orig) = frame.get(p.l2_len..) {
        let _ = generate::time_exceeded_v4(&mut out, orig, VIP4, 0);
        let _ = generate::frag_needed_v4(&mut out, orig, VIP4, 1400, 0);
        let _ = generate::port_unreachable_v4(&mut out[..100], orig, VIP4, 0);
        let _ = generate::packet_too_big(&mut out, orig, VIP6, 1280);
        let _ = generate::time_exceeded_v6(&mut out[..90], orig, VIP6);
    }
    let _ = generate::arp_reply(&mut out, frame, p, DIR_MAC);
    if let Some(ns) = generate::neighbor_solicitation(frame, p) {
        let _ = generate::neighbor_advert_reply(&mut out, &ns, DIR_MAC, p.vlan_tags());
    }
}

/// Valid frames of every kind the crate handles, as mutation seeds.
fn seeds() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for f in [Fam::V4, Fam::V6] {
        for pr in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
            v.push(build(f, pr, b"0123456789abcdef"));
            v.push(add_vlans(&build(f, pr, b"x"), 2));
        }
        // An ICMP error quoting a reply.
        let reply = build_addr(vip(f), cip(f), Proto::Tcp, 80, 40000, 64, b"r");
        let rp = parse(&reply).unwrap();
        let mut out = [0u8; 400];
        let l3 = &reply[rp.l2_len..];
        let n = match f {
            Fam::V4 => generate::port_unreachable_v4(&mut out[14..], l3, CIP4, 1),
            Fam::V6 => generate::port_unreachable_v6(&mut out[14..], l3, CIP6),
        }
        .unwrap()
        .unwrap();
        let et = if f == Fam::V4 { 0x0800 } else { 0x86dd };
        rvs_packet::ethernet::write_header(&mut out, DIR_MAC, CLIENT_MAC, &[], et).unwrap();
        v.push(out[..14 + n].to_vec());
        // Tunnelled frames.
        for kind in [
            TunnelType::Ipip,
            TunnelType::Gue { port: 6080 },
            TunnelType::Gre,
        ] {
            let inner = build(f, Proto::Udp, b"tunnel");
            let ip = parse(&inner).unwrap();
            let mut buf = vec![0u8; 64];
            buf.extend_from_slice(&inner);
            let t = TunnelParams {
                kind,
                csum: TunnelCsum::Csum,
                src: dip(f),
                dst: rip(f),
                dst_mac: RS_MAC,
                src_mac: DIR_MAC,
                pmtu_disc: true,
                ident: 0,
                gue_sport: 50000,
                inner_partial: None,
            };
            let (s, l) = tunnel::encapsulate(&mut buf, 64, inner.len(), &ip, &t).unwrap();
            v.push(buf[s..s + l].to_vec());
        }
    }
    // Without DF, so the fragmenter has work.
    for pr in [Proto::Tcp, Proto::Udp] {
        let mut f = build(Fam::V4, pr, &[9u8; 200]);
        f[20] = 0;
        rvs_packet::ipv4::Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
        v.push(f);
    }
    let mut arp = [0u8; 60];
    generate::gratuitous_arp(&mut arp, DIR_MAC, VIP4, &[]).unwrap();
    v.push(arp.to_vec());
    let mut na = [0u8; 100];
    let n = generate::unsolicited_neighbor_advert(&mut na, DIR_MAC, VIP6, &[]).unwrap();
    v.push(na[..n].to_vec());
    v
}

fn arb_ethertype() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(0x0800u16),
        Just(0x86dd),
        Just(0x0806),
        Just(0x8100),
        Just(0x88a8),
        any::<u16>()
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn forged_offsets_never_panic(
        seed in any::<prop::sample::Index>(),
        l2 in 0usize..100,
        l3_end in 0usize..200,
        l4 in 0usize..200,
        kind in 0u8..4,
        proto_ in prop_oneof![Just(1u8), Just(4), Just(6), Just(17), Just(41), Just(47), Just(58), any::<u8>()],
        frag in any::<Option<(u16, bool)>>(),
        vlan_count in any::<u8>(),
    ) {
        let seeds = seeds();
        let f = seeds[seed.index(seeds.len())].clone();
        let p = Parsed {
            l2_len: l2,
            vlans: [(0x8100, 1); 2],
            vlan_count,
            ethertype: 0x0800,
            l3: match kind {
                0 => rvs_packet::L3::Ipv4,
                1 => rvs_packet::L3::Ipv6,
                2 => rvs_packet::L3::Arp,
                _ => rvs_packet::L3::Other(0),
            },
            l3_end,
            l4_off: l4,
            proto: proto_,
            frag: frag.map(|(offset, more)| rvs_packet::Frag { offset, more, ident: 0 }),
        };
        exercise(&f, &p);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        if let Ok(p) = parse(&bytes) {
            exercise(&bytes, &p);
        }
    }

    #[test]
    fn random_payload_after_known_ethertype_never_panics(
        et in arb_ethertype(),
        first in prop_oneof![Just(0x45u8), Just(0x46), Just(0x60), any::<u8>()],
        rest in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&et.to_be_bytes());
        f.push(first);
        f.extend_from_slice(&rest);
        if let Ok(p) = parse(&f) {
            exercise(&f, &p);
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        seed in any::<prop::sample::Index>(),
        muts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let seeds = seeds();
        let orig = seeds[seed.index(seeds.len())].clone();
        let orig_p = parse(&orig).unwrap();
        let mut f = orig.clone();
        for (i, b) in muts {
            let at = i.index(f.len());
            f[at] = b;
        }
        if do_cut {
            f.truncate(cut.index(f.len() + 1));
        }
        if let Ok(p) = parse(&f) {
            exercise(&f, &p);
        }
        // The original's classification applied to the mutated bytes (stale offsets).
        exercise(&f, &orig_p);
    }

    #[test]
    fn incremental_checksums_equal_full_recompute(
        v6 in any::<bool>(),
        tcp in any::<bool>(),
        a in any::<[u8; 16]>(),
        b in any::<[u8; 16]>(),
        n1 in any::<[u8; 16]>(),
        n2 in any::<[u8; 16]>(),
        ports in any::<[u16; 4]>(),
        ttl in 2u8..=255,
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        op in 0u8..3,
        vlans in 0usize..=2,
    ) {
        let addr = |x: [u8; 16]| -> IpAddr {
            if v6 { Ipv6Addr::from(x).into() } else { Ipv4Addr::new(x[0], x[1], x[2], x[3]).into() }
        };
        let pr = if tcp { Proto::Tcp } else { Proto::Udp };
        let mut f = add_vlans(&build_addr(addr(a), addr(b), pr, ports[0], ports[1], ttl, &payload), vlans);
        let p = parse(&f).unwrap();
        let (s, d) = (Endpoint::new(addr(n1), ports[2]), Endpoint::new(addr(n2), ports[3]));
        match op {
            0 => nat::dnat(&mut f, &p, d).unwrap(),
            1 => nat::snat(&mut f, &p, s).unwrap(),
            _ => nat::fullnat(&mut f, &p, s, d).unwrap(),
        }
        prop_assert_eq!(nat::decrement_ttl(&mut f, &p).unwrap(), nat::TtlVerdict::Forward);
        let np = parse(&f).unwrap();
        verify_l4_checksum(&f, &np).unwrap();
        etherparse_check(&f);
        let at = np.l4_off + if tcp { 16 } else { 6 };
        let inc = u16::from_be_bytes([f[at], f[at + 1]]);
        let mut full = f.clone();
        fill_l4_checksum(&mut full, &np).unwrap();
        let fc = u16::from_be_bytes([full[at], full[at + 1]]);
        if tcp {
            prop_assert!(checksum::equivalent(inc, fc), "{:#x} vs {:#x}", inc, fc);
        } else {
            // UDP: 0 is never transmitted; both must be the same non-zero value.
            prop_assert_ne!(inc, 0);
            prop_assert_eq!(inc, fc);
        }
        if !v6 {
            let ip = np.l2_len;
            let c = u16::from_be_bytes([f[ip + 10], f[ip + 11]]);
            let mut h = f[ip..ip + 20].to_vec();
            h[10] = 0;
            h[11] = 0;
            prop_assert!(checksum::equivalent(c, checksum::checksum(&h)));
        }
    }

    #[test]
    fn rfc1624_update_equals_recompute(
        data in proptest::collection::vec(any::<u8>(), 4..64),
        at in any::<prop::sample::Index>(),
        new in any::<[u8; 16]>(),
        width in prop_oneof![Just(2usize), Just(4), Just(16)],
    ) {
        let mut d = data.clone();
        if d.len() % 2 == 1 { d.push(0); }
        while d.len() < width + 2 { d.extend_from_slice(&[0, 0]); }
        // Field position: word aligned, not overlapping the checksum at 0..2.
        let words = (d.len() - width - 2) / 2;
        let off = 2 + 2 * at.index(words + 1);
        d[0] = 0;
        d[1] = 0;
        let c = checksum::checksum(&d);
        d[0..2].copy_from_slice(&c.to_be_bytes());
        let old = d[off..off + width].to_vec();
        let upd = match width {
            2 => checksum::update16(c, u16::from_be_bytes([old[0], old[1]]), u16::from_be_bytes([new[0], new[1]])),
            4 => checksum::update32(c, [old[0], old[1], old[2], old[3]], [new[0], new[1], new[2], new[3]]),
            _ => checksum::update128(c, old.clone().try_into().unwrap(), new),
        };
        d[off..off + width].copy_from_slice(&new[..width]);
        d[0] = 0;
        d[1] = 0;
        let full = checksum::checksum(&d);
        prop_assert!(checksum::equivalent(upd, full), "{:#x} vs {:#x}", upd, full);
        d[0..2].copy_from_slice(&upd.to_be_bytes());
        prop_assert!(checksum::equivalent(checksum::checksum(&d), 0));
    }
}
