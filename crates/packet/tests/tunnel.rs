//! TUN encapsulation / decapsulation and the MTU rules, cross-checked with etherparse.

mod common;

use std::net::IpAddr;

use common::*;
use rvs_packet::checksum;
use rvs_packet::gre::GrePacket;
use rvs_packet::gue::GuePacket;
use rvs_packet::ipv4::Ipv4Packet;
use rvs_packet::ipv6::Ipv6Packet;
use rvs_packet::parse::{proto, verify_l4_checksum};
use rvs_packet::tunnel::{
    self, decapsulate, encapsulate, Encap, MtuCheck, MtuVerdict, TunnelCsum, TunnelParams,
    TunnelType,
};
use rvs_packet::{parse, Error, L3};

const HEADROOM: usize = 128;

fn params(outer: Fam, kind: TunnelType, csum: TunnelCsum) -> TunnelParams {
    TunnelParams {
        kind,
        csum,
        src: dip(outer),
        dst: rip(outer),
        dst_mac: RS_MAC,
        src_mac: DIR_MAC,
        pmtu_disc: true,
        ident: 0x1234,
        gue_sport: tunnel::gue_source_port(0xdead_beef),
        inner_partial: None,
    }
}

/// Puts `frame` after `HEADROOM` bytes of headroom.
fn with_headroom(frame: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; HEADROOM];
    b.extend_from_slice(frame);
    b
}

fn kinds() -> Vec<(TunnelType, TunnelCsum)> {
    vec![
        (TunnelType::Ipip, TunnelCsum::NoCsum),
        (TunnelType::Gue { port: 6080 }, TunnelCsum::NoCsum),
        (TunnelType::Gue { port: 6080 }, TunnelCsum::Csum),
        (TunnelType::Gue { port: 6080 }, TunnelCsum::RemCsum),
        (TunnelType::Gre, TunnelCsum::NoCsum),
        (TunnelType::Gre, TunnelCsum::Csum),
    ]
}

#[test]
fn encapsulate_then_decapsulate_every_combination() {
    for inner in [Fam::V4, Fam::V6] {
        for outer in [Fam::V4, Fam::V6] {
            for (kind, csum) in kinds() {
                for vlans in [0usize, 1] {
                    let frame = add_vlans(&build(inner, Proto::Tcp, b"tunnelled payload"), vlans);
                    let p = parse(&frame).unwrap();
                    let mut buf = with_headroom(&frame);
                    let t = params(outer, kind, csum);
                    let (s, l) = encapsulate(&mut buf, HEADROOM, frame.len(), &p, &t).unwrap();
                    let out = buf[s..s + l].to_vec();
                    let ctx = format!("{inner:?} in {outer:?} {kind:?} {csum:?} vlans {vlans}");
                    let op = parse(&out).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    let l2 = 14 + 4 * vlans;
                    assert_eq!(op.l2_len, l2, "{ctx}");
                    assert_eq!(&out[0..6], &RS_MAC);
                    assert_eq!(&out[6..12], &DIR_MAC);
                    assert_eq!(op.addrs(&out), Some((dip(outer), rip(outer))), "{ctx}");
                    assert_eq!(op.ttl(&out), Some(64), "outer TTL = inner TTL: {ctx}");
                    let inner_proto = if inner == Fam::V4 {
                        proto::IPIP
                    } else {
                        proto::IPV6
                    };
                    let overhead = tunnel::overhead(outer == Fam::V6, kind, csum, false);
                    assert_eq!(l, frame.len() + overhead, "{ctx}");
                    // The inner packet is intact right after the outer headers.
                    assert_eq!(&out[l2 + overhead..], &frame[p.l2_len..], "{ctx}");
                    match kind {
                        TunnelType::Ipip => assert_eq!(op.proto, inner_proto),
                        TunnelType::Gue { port } => {
                            assert_eq!(op.proto, proto::UDP);
                            assert_eq!(op.ports(&out).unwrap().1, port);
                            let sport = op.ports(&out).unwrap().0;
                            assert!((32768..=60999).contains(&sport));
                            let g = GuePacket::new_checked(&out[op.l4_off + 8..]).unwrap();
                            assert_eq!((g.protocol(), g.hlen(), g.flags()), (inner_proto, 0, 0));
                            let uc = u16::from_be_bytes([out[op.l4_off + 6], out[op.l4_off + 7]]);
                            if csum == TunnelCsum::NoCsum {
                                assert_eq!(uc, 0, "{ctx}");
                            } else {
                                assert_ne!(uc, 0);
                                verify_l4_checksum(&out, &op).unwrap();
                                etherparse_check(&out);
                            }
                        }
                        TunnelType::Gre => {
                            assert_eq!(op.proto, proto::GRE);
                            let g = GrePacket::new_checked(&out[op.l4_off..]).unwrap();
                            assert_eq!(g.has_checksum(), csum == TunnelCsum::Csum);
                            assert!(g.verify_checksum());
                            assert_eq!(
                                g.protocol(),
                                if inner == Fam::V4 { 0x0800 } else { 0x86dd }
                            );
                        }
                    }
                    if outer == Fam::V4 {
                        let ip = Ipv4Packet::new_checked(&out[l2..]).unwrap();
                        assert!(ip.verify_checksum());
                        assert_eq!(ip.ident(), 0x1234);
                        // DF copied from the IPv4 inner only (etherparse sets DF on inner v4).
                        assert_eq!(ip.dont_frag(), inner == Fam::V4, "{ctx}");
                        etherparse_check(&out);
                    } else {
                        let ip = Ipv6Packet::new_checked(&out[l2..]).unwrap();
                        assert_eq!(ip.flow_label(), 0);
                    }
                    // Decapsulate: the original frame comes back (with the new MACs).
                    let mut b2 = out.clone();
                    let port = match kind {
                        TunnelType::Gue { port } => Some(port),
                        _ => None,
                    };
                    let d = decapsulate(&mut b2, 0, out.len(), &op, port).unwrap();
                    let back = &b2[d.start..d.start + d.len];
                    assert_eq!(&back[12..], &frame[12..], "{ctx}");
                    assert_eq!(d.outer_src, dip(outer));
                    assert_eq!(
                        d.encap,
                        match kind {
                            TunnelType::Ipip => Encap::Ipip,
                            TunnelType::Gue { .. } => Encap::Gue,
                            TunnelType::Gre => Encap::Gre,
                        }
                    );
                    etherparse_check(back);
                }
            }
        }
    }
}

#[test]
fn ecn_and_df_rules() {
    // Inner CE becomes ECT(0) outside; DSCP copied (INET_ECN_encapsulate).
    assert_eq!(tunnel::ecn_encapsulate(0xb8 | 3), 0xb8 | 2);
    assert_eq!(tunnel::ecn_encapsulate(0xb8 | 1), 0xb8 | 1);
    assert_eq!(tunnel::ecn_encapsulate(0x28), 0x28);
    let mut frame = build(Fam::V4, Proto::Udp, b"x");
    frame[15] = 0x2b; // DSCP 10, CE
    Ipv4Packet::new_unchecked(&mut frame[14..]).fill_checksum();
    let p = parse(&frame).unwrap();
    let mut buf = with_headroom(&frame);
    let mut t = params(Fam::V4, TunnelType::Ipip, TunnelCsum::NoCsum);
    t.pmtu_disc = false;
    let (s, _) = encapsulate(&mut buf, HEADROOM, frame.len(), &p, &t).unwrap();
    let ip = Ipv4Packet::new_checked(&buf[s + 14..]).unwrap();
    assert_eq!(ip.tos(), 0x2a);
    assert!(!ip.dont_frag(), "pmtu_disc=0: DF not copied");
    // IPv6 outer carries the same DS field in its traffic class.
    let mut buf = with_headroom(&frame);
    let t6 = params(Fam::V6, TunnelType::Ipip, TunnelCsum::NoCsum);
    let (s, _) = encapsulate(&mut buf, HEADROOM, frame.len(), &p, &t6).unwrap();
    assert_eq!(
        Ipv6Packet::new_checked(&buf[s + 14..])
            .unwrap()
            .traffic_class(),
        0x2a
    );
}

#[test]
fn encapsulation_errors() {
    let frame = build(Fam::V4, Proto::Tcp, b"");
    let p = parse(&frame).unwrap();
    let mut buf = with_headroom(&frame);
    let t = params(Fam::V4, TunnelType::Gue { port: 6080 }, TunnelCsum::NoCsum);
    // Not enough headroom.
    let mut small = frame.clone();
    assert!(matches!(
        encapsulate(&mut small, 0, frame.len(), &p, &t),
        Err(Error::NoRoom { .. })
    ));
    // Range beyond the buffer.
    assert!(encapsulate(&mut buf, HEADROOM, frame.len() + 1, &p, &t).is_err());
    let mut bad = t;
    bad.kind = TunnelType::Gue { port: 0 };
    assert!(encapsulate(&mut buf, HEADROOM, frame.len(), &p, &bad).is_err());
    let mut bad = t;
    bad.kind = TunnelType::Gre;
    bad.csum = TunnelCsum::RemCsum;
    assert!(encapsulate(&mut buf, HEADROOM, frame.len(), &p, &bad).is_err());
    let mut bad = t;
    bad.src = DIP6.into();
    assert_eq!(
        encapsulate(&mut buf, HEADROOM, frame.len(), &p, &bad).unwrap_err(),
        Error::FamilyMismatch
    );
    // Decapsulating a non-tunnel packet, or GUE on another port.
    let mut plain = frame.clone();
    assert!(decapsulate(&mut plain, 0, frame.len(), &p, Some(6080)).is_err());
    let (s, l) = encapsulate(&mut buf, HEADROOM, frame.len(), &p, &t).unwrap();
    let op = parse(&buf[s..s + l]).unwrap();
    assert!(decapsulate(&mut buf, s, l, &op, Some(6081)).is_err());
    // A corrupted GRE checksum is refused.
    let mut g = with_headroom(&frame);
    let tg = params(Fam::V4, TunnelType::Gre, TunnelCsum::Csum);
    let (s, l) = encapsulate(&mut g, HEADROOM, frame.len(), &p, &tg).unwrap();
    let op = parse(&g[s..s + l]).unwrap();
    g[s + l - 1] ^= 0x55;
    assert_eq!(
        decapsulate(&mut g, s, l, &op, None).unwrap_err(),
        Error::BadChecksum(rvs_packet::Layer::Gre)
    );
}

#[test]
fn gue_remote_checksum_offload() {
    // Inner TCP whose checksum is "partial": the field holds the pseudo-header
    // sum, the rest is left to whoever completes it (here: the decapsulator).
    for inner in [Fam::V4, Fam::V6] {
        let mut frame = build(inner, Proto::Tcp, b"remote checksum offload");
        let p = parse(&frame).unwrap();
        let l4_len = p.l4_len();
        let seed = rvs_packet::parse::pseudo_header(&frame, &p, l4_len).unwrap();
        let at = p.l4_off + 16;
        frame[at..at + 2].copy_from_slice(&checksum::fold(seed).to_be_bytes());
        let start = (p.l4_off - p.l2_len) as u16;
        let mut t = params(Fam::V4, TunnelType::Gue { port: 6080 }, TunnelCsum::RemCsum);
        t.inner_partial = Some((start, start + 16));
        let mut buf = with_headroom(&frame);
        let (s, l) = encapsulate(&mut buf, HEADROOM, frame.len(), &p, &t).unwrap();
        let out = buf[s..s + l].to_vec();
        let op = parse(&out).unwrap();
        let g = GuePacket::new_checked(&out[op.l4_off + 8..]).unwrap();
        assert_eq!(g.hlen(), 2);
        assert_eq!(g.flags(), rvs_packet::gue::FLAG_PRIV);
        assert_eq!(g.remcsum(), Some((start, start + 16)));
        assert_eq!(l, frame.len() + 20 + 8 + 12);
        verify_l4_checksum(&out, &op).unwrap();
        let mut b2 = out.clone();
        let d = decapsulate(&mut b2, 0, l, &op, Some(6080)).unwrap();
        let back = b2[d.start..d.start + d.len].to_vec();
        let bp = parse(&back).unwrap();
        verify_l4_checksum(&back, &bp).unwrap();
        etherparse_check(&back);
    }
}

#[test]
fn tunnel_mtu_and_mtu_check() {
    use TunnelCsum::*;
    let gue = TunnelType::Gue { port: 1 };
    assert_eq!(
        tunnel::tunnel_mtu(1500, false, TunnelType::Ipip, NoCsum, false),
        Ok(1480)
    );
    assert_eq!(
        tunnel::tunnel_mtu(1500, false, gue, NoCsum, false),
        Ok(1468)
    );
    assert_eq!(
        tunnel::tunnel_mtu(1500, false, gue, RemCsum, true),
        Ok(1460)
    );
    assert_eq!(
        tunnel::tunnel_mtu(1500, false, TunnelType::Gre, NoCsum, false),
        Ok(1476)
    );
    assert_eq!(
        tunnel::tunnel_mtu(1500, false, TunnelType::Gre, Csum, false),
        Ok(1472)
    );
    assert_eq!(
        tunnel::tunnel_mtu(1500, true, TunnelType::Ipip, NoCsum, false),
        Ok(1460)
    );
    assert_eq!(
        tunnel::tunnel_mtu(1320, true, TunnelType::Ipip, NoCsum, false),
        Ok(1280)
    );
    assert_eq!(
        tunnel::tunnel_mtu(1319, true, TunnelType::Ipip, NoCsum, false),
        Err(Error::MtuTooSmall(1279))
    );
    assert_eq!(
        tunnel::tunnel_mtu(87, false, TunnelType::Ipip, NoCsum, false),
        Err(Error::MtuTooSmall(67))
    );
    assert_eq!(
        tunnel::tunnel_mtu(10, false, TunnelType::Ipip, NoCsum, false),
        Err(Error::MtuTooSmall(0))
    );

    let big4 = build(Fam::V4, Proto::Tcp, &[0u8; 1000]); // DF set by etherparse
    let p4 = parse(&big4).unwrap();
    let c = |mtu, tunnel, pmtu_disc, relayed_icmp| MtuCheck {
        mtu,
        tunnel,
        pmtu_disc,
        relayed_icmp,
        frag_max: None,
    };
    assert_eq!(
        tunnel::mtu_check(&big4, &p4, &c(1500, false, true, false)),
        Ok(MtuVerdict::Fits)
    );
    assert_eq!(
        tunnel::mtu_check(&big4, &p4, &c(1040, false, true, false)),
        Ok(MtuVerdict::Fits)
    );
    assert_eq!(
        tunnel::mtu_check(&big4, &p4, &c(1039, false, true, false)),
        Ok(MtuVerdict::FragNeeded(1039))
    );
    assert_eq!(
        tunnel::mtu_check(&big4, &p4, &c(576, true, false, false)),
        Ok(MtuVerdict::MayFragment)
    );
    assert_eq!(
        tunnel::mtu_check(&big4, &p4, &c(576, false, true, true)),
        Ok(MtuVerdict::MayFragment)
    );
    let mut nodf = big4.clone();
    nodf[20] = 0;
    Ipv4Packet::new_unchecked(&mut nodf[14..]).fill_checksum();
    let pn = parse(&nodf).unwrap();
    assert_eq!(
        tunnel::mtu_check(&nodf, &pn, &c(576, false, true, false)),
        Ok(MtuVerdict::MayFragment)
    );
    let big6 = build(Fam::V6, Proto::Udp, &[0u8; 1400]);
    let p6 = parse(&big6).unwrap();
    assert_eq!(
        tunnel::mtu_check(&big6, &p6, &c(1280, true, true, false)),
        Ok(MtuVerdict::PacketTooBig(1280))
    );
    assert_eq!(
        tunnel::mtu_check(&big6, &p6, &c(1280, false, true, true)),
        Ok(MtuVerdict::Drop)
    );
    assert_eq!(
        tunnel::mtu_check(&big6, &p6, &c(1500, false, true, false)),
        Ok(MtuVerdict::Fits)
    );
}

#[test]
fn gue_source_port_is_in_range_and_stable() {
    for h in [0u32, 1, 0xffff, 0x1_0000, u32::MAX, 0x8000_0000] {
        let p = tunnel::gue_source_port(h);
        assert!((32768..=60999).contains(&p), "{h:#x} -> {p}");
    }
    let a = build(Fam::V4, Proto::Tcp, b"");
    let b = build_addr(CIP4.into(), VIP4.into(), Proto::Tcp, 40001, 80, 64, b"");
    let (pa, pb) = (parse(&a).unwrap(), parse(&b).unwrap());
    assert_eq!(tunnel::flow_hash(&a, &pa), tunnel::flow_hash(&a, &pa));
    assert_ne!(tunnel::flow_hash(&a, &pa), tunnel::flow_hash(&b, &pb));
    let _: IpAddr = dip(Fam::V4);
    assert_eq!(pa.l3, L3::Ipv4);
}

#[test]
fn decapsulate_bare_ip_packets() {
    for outer in [Fam::V4, Fam::V6] {
        for (kind, csum) in kinds() {
            let frame = build(Fam::V4, Proto::Udp, b"for the decapsulator");
            let p = parse(&frame).unwrap();
            let mut buf = with_headroom(&frame);
            let (s, l) = encapsulate(
                &mut buf,
                HEADROOM,
                frame.len(),
                &p,
                &params(outer, kind, csum),
            )
            .unwrap();
            // What a raw socket hands the decapsulator: the outer IP packet.
            let mut outer_ip = buf[s + 14..s + l].to_vec();
            let port = match kind {
                TunnelType::Gue { port } => Some(port),
                _ => None,
            };
            let inner = tunnel::decapsulate_ip(&mut outer_ip, port).unwrap();
            assert_eq!(&outer_ip[inner.range.clone()], &frame[14..]);
            assert_eq!((inner.outer_src, inner.outer_dst), (dip(outer), rip(outer)));
            // A frame-less packet cannot go through the frame decapsulator.
            let pp = rvs_packet::parse_ip(&outer_ip).unwrap();
            let n = outer_ip.len();
            assert!(decapsulate(&mut outer_ip, 0, n, &pp, port).is_err());
        }
    }
    let mut junk = build(Fam::V4, Proto::Tcp, b"")[14..].to_vec();
    assert!(tunnel::decapsulate_ip(&mut junk, None).is_err());
}

/// Splits `frame` and checks every fragment, then reassembles the payload.
fn fragment_all(frame: &[u8], mtu: u32) -> Vec<Vec<u8>> {
    let p = parse(frame).unwrap();
    let mut fr = rvs_packet::frag::fragment_ipv4(frame, &p, mtu).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 2000];
    for _ in 0..100 {
        match fr.next_into(&mut buf).unwrap() {
            Some(n) => out.push(buf[..n].to_vec()),
            None => break,
        }
    }
    out
}

#[test]
fn ipv4_fragmentation() {
    let payload: Vec<u8> = (0..1400u32).map(|i| (i * 13) as u8).collect();
    let mut frame = build(Fam::V4, Proto::Udp, &payload);
    frame[20] = 0; // clear DF
    Ipv4Packet::new_unchecked(&mut frame[14..]).fill_checksum();
    let p = parse(&frame).unwrap();
    let frags = fragment_all(&frame, 576);
    assert_eq!(frags.len(), 3); // 1408 bytes of UDP: 552 + 552 + 304
    let mut data = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        let fp = parse(f).unwrap();
        assert!(fp.l3_len() <= 576);
        let fr = fp.frag.unwrap();
        assert_eq!(fr.offset as usize, data.len());
        assert_eq!(fr.more, i + 1 < frags.len());
        assert_eq!(fp.has_l4(), i == 0);
        etherparse::PacketHeaders::from_ethernet_slice(f).unwrap();
        data.extend_from_slice(&f[fp.l4_off..fp.l3_end]);
    }
    assert_eq!(&data[..], &frame[p.l4_off..p.l3_end]);
    // A packet that fits is one unfragmented copy.
    let one = fragment_all(&frame, 1500);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0], frame);
    // DF packets are refused (they get FRAG_NEEDED instead), as is a tiny MTU.
    let df = build(Fam::V4, Proto::Udp, &payload);
    let dp = parse(&df).unwrap();
    assert!(rvs_packet::frag::fragment_ipv4(&df, &dp, 576).is_err());
    assert_eq!(
        rvs_packet::frag::fragment_ipv4(&frame, &p, 27).unwrap_err(),
        Error::MtuTooSmall(27)
    );
    // Options: copied ones (router alert, 0x94) stay, others become NOPs.
    let mut o = frame[..34].to_vec();
    o.extend_from_slice(&[0x94, 4, 0, 0, 7, 3, 4, 0]);
    o.extend_from_slice(&frame[34..]);
    o[14] = 0x47;
    let tl = (o.len() - 14) as u16;
    o[16..18].copy_from_slice(&tl.to_be_bytes());
    Ipv4Packet::new_unchecked(&mut o[14..]).fill_checksum();
    let frags = fragment_all(&o, 576);
    assert_eq!(&frags[0][34..42], &[0x94, 4, 0, 0, 7, 3, 4, 0]);
    for f in &frags[1..] {
        assert_eq!(&f[34..42], &[0x94, 4, 0, 0, 1, 1, 1, 0]);
        assert!(Ipv4Packet::new_checked(&f[14..]).unwrap().verify_checksum());
    }
    // Splitting a fragment keeps its offset and MF.
    let second = &fragment_all(&frame, 576)[1];
    let again = fragment_all(second, 300);
    let offs: Vec<u16> = again
        .iter()
        .map(|f| parse(f).unwrap().frag.unwrap().offset)
        .collect();
    assert_eq!(offs, vec![552, 552 + 280]);
    assert!(again.iter().all(|f| parse(f).unwrap().frag.unwrap().more));
}
