//! Views, parse and every rewrite primitive, cross-checked against etherparse.

mod common;

use common::*;
use rvs_packet::checksum;
use rvs_packet::nat::{self, Endpoint, TtlVerdict, UdpZeroChecksum};
use rvs_packet::parse::{fill_l4_checksum, proto, verify_l4_checksum};
use rvs_packet::{parse, Error, Layer, L3};

const FAMS: [Fam; 2] = [Fam::V4, Fam::V6];

fn l4_csum_off(p: &rvs_packet::Parsed) -> usize {
    p.l4_off + if p.proto == proto::TCP { 16 } else { 6 }
}

/// The incrementally updated transport checksum must equal a full recompute.
fn assert_incremental_equals_full(frame: &[u8]) {
    let p = parse(frame).unwrap();
    let at = l4_csum_off(&p);
    let inc = u16::from_be_bytes([frame[at], frame[at + 1]]);
    let mut full = frame.to_vec();
    fill_l4_checksum(&mut full, &p).unwrap();
    let fullc = u16::from_be_bytes([full[at], full[at + 1]]);
    assert!(
        checksum::equivalent(inc, fullc),
        "incremental {inc:#06x} vs full {fullc:#06x}"
    );
}

#[test]
fn parse_matches_etherparse() {
    for f in FAMS {
        for pr in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
            for vlans in 0..=2 {
                for len in [0usize, 1, 7, 100] {
                    let payload: Vec<u8> = (0..len as u8).collect();
                    let frame = add_vlans(&build(f, pr, &payload), vlans);
                    etherparse_check(&frame);
                    let p = parse(&frame).unwrap();
                    assert_eq!(p.l2_len, 14 + 4 * vlans);
                    assert_eq!(usize::from(p.vlan_count), vlans);
                    let iphl = if f == Fam::V4 { 20 } else { 40 };
                    assert_eq!(p.l4_off, p.l2_len + iphl);
                    assert_eq!(p.l3_end, frame.len());
                    assert_eq!(p.l3, if f == Fam::V4 { L3::Ipv4 } else { L3::Ipv6 });
                    let (s, d, ports) = ep_tuple(&frame);
                    assert_eq!(p.addrs(&frame), Some((s, d)));
                    assert_eq!(p.ports(&frame), ports);
                    assert_eq!(p.ttl(&frame), Some(64));
                    verify_l4_checksum(&frame, &p).unwrap();
                    // Ethernet padding after the IP packet is not part of it.
                    let mut padded = frame.clone();
                    padded.resize(frame.len() + 9, 0xee);
                    let pp = parse(&padded).unwrap();
                    assert_eq!(pp.l3_end, frame.len());
                    verify_l4_checksum(&padded, &pp).unwrap();
                }
            }
        }
    }
}

#[test]
fn parse_never_reads_past_a_truncation() {
    for f in FAMS {
        for pr in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
            let frame = add_vlans(&build(f, pr, b"0123456789"), 1);
            for cut in 0..frame.len() {
                match parse(&frame[..cut]) {
                    Err(Error::Truncated { .. }) => {}
                    other => panic!("{f:?} {pr:?} cut at {cut}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn parse_rejects_bad_fields() {
    let good = build(Fam::V4, Proto::Tcp, b"abc");
    let mut f = good.clone();
    f[14] = 0x44;
    assert_eq!(parse(&f).unwrap_err(), Error::BadIhl(4));
    let mut f = good.clone();
    f[14 + 3] = 10; // total length < header length
    assert_eq!(parse(&f).unwrap_err(), Error::BadLength(Layer::Ipv4));
    let mut f = good.clone();
    f[14 + 8] = 1; // TTL changed, checksum not
    assert_eq!(parse(&f).unwrap_err(), Error::BadChecksum(Layer::Ipv4));
    let mut f = good.clone();
    f[34 + 12] = 0x40; // TCP data offset 4
    assert_eq!(parse(&f).unwrap_err(), Error::BadLength(Layer::Tcp));
    let mut f = good.clone();
    f[34 + 20] ^= 0xff; // payload byte: TCP checksum now wrong
    let p = parse(&f).unwrap();
    assert_eq!(
        verify_l4_checksum(&f, &p).unwrap_err(),
        Error::BadChecksum(Layer::Tcp)
    );

    let mut u = build(Fam::V4, Proto::Udp, b"abc");
    u[34 + 5] = 99; // UDP length beyond the packet
    assert_eq!(parse(&u).unwrap_err(), Error::BadLength(Layer::Udp));
    let mut u = build(Fam::V4, Proto::Udp, b"abc");
    u[34 + 6] = 0;
    u[34 + 7] = 0; // IPv4: no checksum is legal
    let p = parse(&u).unwrap();
    verify_l4_checksum(&u, &p).unwrap();
    let mut u6 = build(Fam::V6, Proto::Udp, b"abc");
    u6[54 + 6] = 0;
    u6[54 + 7] = 0;
    let p = parse(&u6).unwrap();
    assert_eq!(
        verify_l4_checksum(&u6, &p).unwrap_err(),
        Error::UdpZeroChecksumV6
    );

    let mut v = build(Fam::V6, Proto::Tcp, b"");
    v[14] = 0x45;
    assert_eq!(parse(&v).unwrap_err(), Error::BadVersion(4));
    let three = add_vlans(&add_vlans(&build(Fam::V4, Proto::Tcp, b""), 2), 1);
    assert!(matches!(parse(&three).unwrap_err(), Error::Unsupported(_)));
    // Unknown EtherType: classified, nothing read past L2.
    let mut o = build(Fam::V4, Proto::Tcp, b"");
    o[12] = 0x88;
    o[13] = 0xcc;
    assert_eq!(parse(&o).unwrap().l3, L3::Other(0x88cc));
}

/// Adds `n` 4-byte words of NOP options to an IPv4 frame without VLANs.
fn with_ip_options(frame: &[u8], words: usize) -> Vec<u8> {
    let mut out = frame[..34].to_vec();
    out.extend(std::iter::repeat_n(1u8, words * 4));
    out.extend_from_slice(&frame[34..]);
    out[14] = 0x40 | (5 + words as u8);
    let tl = u16::from_be_bytes([out[16], out[17]]) + (words * 4) as u16;
    out[16..18].copy_from_slice(&tl.to_be_bytes());
    let mut ip = rvs_packet::ipv4::Ipv4Packet::new_unchecked(&mut out[14..]);
    ip.fill_checksum();
    out
}

#[test]
fn ipv4_options_are_skipped_and_survive_nat() {
    for pr in [Proto::Tcp, Proto::Udp] {
        let mut f = with_ip_options(&build(Fam::V4, pr, b"hello"), 2);
        etherparse_check(&f);
        let p = parse(&f).unwrap();
        assert_eq!(p.l4_off, 14 + 28);
        let v = rvs_packet::ipv4::Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(v.options(), &[1u8; 8]);
        nat::dnat(&mut f, &p, Endpoint::new(RIP4.into(), 8080)).unwrap();
        etherparse_check(&f);
        assert_eq!(
            ep_tuple(&f),
            (CIP4.into(), RIP4.into(), Some((40000, 8080)))
        );
        assert_incremental_equals_full(&f);
    }
}

#[test]
fn nat_dnat_snat_fullnat_all_families_protocols_vlans() {
    for f in FAMS {
        for pr in [Proto::Tcp, Proto::Udp] {
            for vlans in 0..=2 {
                for len in [0usize, 1, 33, 1000] {
                    let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                    // request: CIP:40000 -> VIP:80 becomes CIP:40000 -> RIP:8080
                    let mut fr = add_vlans(&build(f, pr, &payload), vlans);
                    let p = parse(&fr).unwrap();
                    nat::dnat(&mut fr, &p, Endpoint::new(rip(f), 8080)).unwrap();
                    etherparse_check(&fr);
                    assert_eq!(ep_tuple(&fr), (cip(f), rip(f), Some((40000, 8080))));
                    assert_incremental_equals_full(&fr);
                    // reply: RIP:8080 -> CIP:40000 becomes VIP:80 -> CIP:40000
                    let mut re = add_vlans(
                        &build_addr(rip(f), cip(f), pr, 8080, 40000, 64, &payload),
                        vlans,
                    );
                    let p = parse(&re).unwrap();
                    nat::snat(&mut re, &p, Endpoint::new(vip(f), 80)).unwrap();
                    etherparse_check(&re);
                    assert_eq!(ep_tuple(&re), (vip(f), cip(f), Some((80, 40000))));
                    assert_incremental_equals_full(&re);
                    // FULLNAT request: CIP:40000 -> VIP:80 becomes LIP:5000 -> RIP:8080
                    let mut fu = add_vlans(&build(f, pr, &payload), vlans);
                    let p = parse(&fu).unwrap();
                    nat::fullnat(
                        &mut fu,
                        &p,
                        Endpoint::new(lip(f), 5000),
                        Endpoint::new(rip(f), 8080),
                    )
                    .unwrap();
                    etherparse_check(&fu);
                    assert_eq!(ep_tuple(&fu), (lip(f), rip(f), Some((5000, 8080))));
                    assert_incremental_equals_full(&fu);
                    // and back: RIP:8080 -> LIP:5000 becomes VIP:80 -> CIP:40000
                    let mut back = add_vlans(
                        &build_addr(rip(f), lip(f), pr, 8080, 5000, 64, &payload),
                        vlans,
                    );
                    let p = parse(&back).unwrap();
                    nat::fullnat(
                        &mut back,
                        &p,
                        Endpoint::new(vip(f), 80),
                        Endpoint::new(cip(f), 40000),
                    )
                    .unwrap();
                    etherparse_check(&back);
                    assert_eq!(ep_tuple(&back), (vip(f), cip(f), Some((80, 40000))));
                }
            }
        }
    }
}

#[test]
fn nat_refuses_wrong_family_and_protocol() {
    let mut f = build(Fam::V4, Proto::Tcp, b"");
    let p = parse(&f).unwrap();
    assert_eq!(
        nat::dnat(&mut f, &p, Endpoint::new(RIP6.into(), 1)).unwrap_err(),
        Error::FamilyMismatch
    );
    let mut i = build(Fam::V4, Proto::Icmp, b"");
    let p = parse(&i).unwrap();
    assert!(matches!(
        nat::dnat(&mut i, &p, Endpoint::new(RIP4.into(), 1)),
        Err(Error::Unsupported(_))
    ));
    let mut a = [0u8; 60];
    rvs_packet::generate::gratuitous_arp(&mut a, DIR_MAC, VIP4, &[]).unwrap();
    let p = parse(&a).unwrap();
    assert!(nat::dnat(&mut a, &p, Endpoint::new(RIP4.into(), 1)).is_err());
}

fn zero_udp_checksum(frame: &mut [u8]) {
    let p = parse(frame).unwrap();
    frame[p.l4_off + 6] = 0;
    frame[p.l4_off + 7] = 0;
}

#[test]
fn udp_zero_checksum_rules() {
    // Kernel behaviour (docs/internals/forwarding.md#nat): an absent IPv4 UDP checksum is computed on NAT.
    let mut f = build(Fam::V4, Proto::Udp, b"payload");
    zero_udp_checksum(&mut f);
    let p = parse(&f).unwrap();
    nat::dnat(&mut f, &p, Endpoint::new(RIP4.into(), 53)).unwrap();
    let c = u16::from_be_bytes([f[34 + 6], f[34 + 7]]);
    assert_ne!(c, 0);
    etherparse_check(&f);
    verify_l4_checksum(&f, &p).unwrap();
    // Keep: 0 stays 0 (RFC 768 "no checksum").
    let mut k = build(Fam::V4, Proto::Udp, b"payload");
    zero_udp_checksum(&mut k);
    let p = parse(&k).unwrap();
    nat::rewrite(
        &mut k,
        &p,
        None,
        Some(Endpoint::new(RIP4.into(), 53)),
        UdpZeroChecksum::Keep,
    )
    .unwrap();
    assert_eq!(&k[34 + 6..34 + 8], &[0, 0]);
    assert_eq!(ep_tuple(&k).1, std::net::IpAddr::from(RIP4));
    let p2 = parse(&k).unwrap();
    verify_l4_checksum(&k, &p2).unwrap();
}

#[test]
fn udp_incremental_zero_becomes_ffff() {
    // Find a destination port for which the NATed UDP checksum is zero in one's
    // complement: it must be transmitted as 0xFFFF, never 0.
    for f in FAMS {
        let base = build(f, Proto::Udp, b"x");
        let mut found = false;
        for port in 0..=u16::MAX {
            let mut fr = base.clone();
            let p = parse(&fr).unwrap();
            nat::dnat(&mut fr, &p, Endpoint::new(rip(f), port)).unwrap();
            let at = l4_csum_off(&p);
            let c = u16::from_be_bytes([fr[at], fr[at + 1]]);
            assert_ne!(c, 0, "UDP checksum 0 emitted");
            if c == 0xffff {
                etherparse_check(&fr);
                verify_l4_checksum(&fr, &p).unwrap();
                found = true;
                break;
            }
        }
        assert!(found, "{f:?}: no port gives a 0xFFFF checksum");
    }
}

#[test]
fn ttl_decrement_and_dr() {
    for f in FAMS {
        let mut fr = add_vlans(&build(f, Proto::Tcp, b"dr"), 1);
        let orig = fr.clone();
        let p = parse(&fr).unwrap();
        assert_eq!(
            nat::dr_forward(&mut fr, &p, RS_MAC, DIR_MAC).unwrap(),
            TtlVerdict::Forward
        );
        etherparse_check(&fr);
        assert_eq!(&fr[0..6], &RS_MAC);
        assert_eq!(&fr[6..12], &DIR_MAC);
        assert_eq!(parse(&fr).unwrap().ttl(&fr), Some(63));
        // Only MACs, TTL and (IPv4) header checksum differ.
        let diff: Vec<usize> = (0..fr.len()).filter(|&i| fr[i] != orig[i]).collect();
        assert!(
            diff.iter().all(|&i| i < 12 || (18..18 + 12).contains(&i)),
            "{diff:?}"
        );
        for ttl in [0u8, 1] {
            let mut t = build_addr(cip(f), vip(f), Proto::Udp, 1, 2, ttl, b"");
            let before = t.clone();
            let p = parse(&t).unwrap();
            assert_eq!(nat::decrement_ttl(&mut t, &p).unwrap(), TtlVerdict::Expired);
            assert_eq!(
                nat::dr_forward(&mut t, &p, RS_MAC, DIR_MAC).unwrap(),
                TtlVerdict::Expired
            );
            assert_eq!(t, before);
        }
    }
    // Every TTL value: the kernel's ip_decrease_ttl step keeps the header checksum valid.
    for ttl in 2..=255u8 {
        let mut t = build_addr(CIP4.into(), VIP4.into(), Proto::Tcp, 1, 2, ttl, b"");
        let p = parse(&t).unwrap();
        nat::decrement_ttl(&mut t, &p).unwrap();
        parse(&t).unwrap();
        etherparse_check(&t);
    }
}

#[test]
fn fragments() {
    // IPv4 first fragment (MF) with a UDP header whose length covers more data.
    let mut f = build(Fam::V4, Proto::Udp, &[5u8; 32]);
    f[14 + 6] = 0x20; // MF
    f[34 + 4..34 + 6].copy_from_slice(&1000u16.to_be_bytes());
    rvs_packet::ipv4::Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    let p = parse(&f).unwrap();
    let fr = p.frag.unwrap();
    assert!(fr.more && fr.offset == 0 && p.has_l4());
    assert_eq!(p.ports(&f), Some((40000, 80)));
    assert_eq!(verify_l4_checksum(&f, &p).unwrap_err(), Error::Fragment);
    let old = u16::from_be_bytes([f[40], f[41]]);
    nat::dnat(&mut f, &p, Endpoint::new(RIP4.into(), 8080)).unwrap();
    // The first fragment's checksum moved by exactly the pseudo-header + port delta.
    let expect = checksum::update16(
        checksum::update32(old, VIP4.octets(), RIP4.octets()),
        80,
        8080,
    );
    assert_eq!(
        u16::from_be_bytes([f[40], f[41]]),
        checksum::udp_mangle_zero(expect)
    );
    // A non-first fragment: no transport header; only addresses change.
    let mut n = build(Fam::V4, Proto::Udp, &[5u8; 32]);
    n[14 + 6] = 0x00;
    n[14 + 7] = 0x10; // offset 128 bytes
    rvs_packet::ipv4::Ipv4Packet::new_unchecked(&mut n[14..]).fill_checksum();
    let p = parse(&n).unwrap();
    assert!(!p.has_l4());
    assert_eq!(p.ports(&n), None);
    let payload_before = n[34..].to_vec();
    nat::dnat(&mut n, &p, Endpoint::new(RIP4.into(), 8080)).unwrap();
    assert_eq!(&n[34..], &payload_before[..]);
    assert_eq!(p.addrs(&n).unwrap().1, std::net::IpAddr::from(RIP4));
    parse(&n).unwrap();
    // IPv6 fragment header.
    let inner = build(Fam::V6, Proto::Udp, &[1u8; 16]);
    let mut v6 = inner[..54].to_vec();
    v6[20] = 44; // next header: fragment
    v6.extend_from_slice(&[17, 0, 0x00, 0x09, 0, 0, 0, 42]); // offset 8, M=1
    v6.extend_from_slice(&inner[54..]);
    let pl = (v6.len() - 54) as u16;
    v6[18..20].copy_from_slice(&pl.to_be_bytes());
    let p = parse(&v6).unwrap();
    assert_eq!(
        p.frag,
        Some(rvs_packet::Frag {
            offset: 8,
            more: true,
            ident: 42
        })
    );
    assert_eq!(p.proto, 17);
    assert!(!p.has_l4());
}

#[test]
fn ipv6_extension_headers_located() {
    // hop-by-hop + destination options before TCP.
    let base = build(Fam::V6, Proto::Tcp, b"ext");
    let mut f = base[..54].to_vec();
    f[20] = 0; // hop-by-hop
    f.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]); // HBH -> DO, PadN
    f.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // DO -> TCP
    f.extend_from_slice(&base[54..]);
    let pl = (f.len() - 54) as u16;
    f[18..20].copy_from_slice(&pl.to_be_bytes());
    etherparse_check(&f);
    let p = parse(&f).unwrap();
    assert_eq!((p.proto, p.l4_off), (6, 54 + 16));
    verify_l4_checksum(&f, &p).unwrap();
    nat::dnat(&mut f, &p, Endpoint::new(RIP6.into(), 443)).unwrap();
    etherparse_check(&f);
    assert_incremental_equals_full(&f);
}

/// An SCTP packet (common header + one 20-byte INIT chunk) over IPv4 or IPv6.
fn sctp_frame(f: Fam) -> Vec<u8> {
    let mut sctp = vec![0u8; 12 + 20];
    sctp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    sctp[2..4].copy_from_slice(&80u16.to_be_bytes());
    sctp[4..8].copy_from_slice(&0u32.to_be_bytes());
    sctp[12] = 1; // INIT
    sctp[14..16].copy_from_slice(&20u16.to_be_bytes());
    sctp[16..20].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    let crc = checksum::sctp_checksum_bytes(&sctp);
    sctp[8..12].copy_from_slice(&crc);
    // Reuse an etherparse UDP frame for L2/L3 and swap the payload.
    let base = build(f, Proto::Udp, b"");
    let l3 = 14;
    let hl = if f == Fam::V4 { 20 } else { 40 };
    let mut out = base[..l3 + hl].to_vec();
    out.extend_from_slice(&sctp);
    if f == Fam::V4 {
        out[l3 + 9] = 132;
        let tl = (hl + sctp.len()) as u16;
        out[l3 + 2..l3 + 4].copy_from_slice(&tl.to_be_bytes());
        rvs_packet::ipv4::Ipv4Packet::new_unchecked(&mut out[l3..]).fill_checksum();
    } else {
        out[l3 + 6] = 132;
        out[l3 + 4..l3 + 6].copy_from_slice(&(sctp.len() as u16).to_be_bytes());
    }
    out
}

#[test]
fn sctp_nat_recomputes_crc32c() {
    for f in FAMS {
        let mut fr = sctp_frame(f);
        let p = parse(&fr).unwrap();
        assert_eq!(p.proto, proto::SCTP);
        verify_l4_checksum(&fr, &p).unwrap();
        nat::fullnat(
            &mut fr,
            &p,
            Endpoint::new(lip(f), 5000),
            Endpoint::new(rip(f), 8080),
        )
        .unwrap();
        let p2 = parse(&fr).unwrap();
        verify_l4_checksum(&fr, &p2).unwrap();
        assert_eq!(p2.addrs(&fr), Some((lip(f), rip(f))));
        assert_eq!(p2.ports(&fr), Some((5000, 8080)));
        fr[p2.l4_off + 20] ^= 1;
        assert_eq!(
            verify_l4_checksum(&fr, &p2).unwrap_err(),
            Error::BadChecksum(Layer::Sctp)
        );
    }
}

#[test]
fn bare_ip_packets_from_a_tun_device() {
    for f in FAMS {
        for pr in [Proto::Tcp, Proto::Udp] {
            let frame = build(f, pr, b"no ethernet");
            let mut ip = frame[14..].to_vec();
            let p = rvs_packet::parse_ip(&ip).unwrap();
            assert_eq!(p.l2_len, 0);
            assert_eq!(p.l4_off, if f == Fam::V4 { 20 } else { 40 });
            nat::dnat(&mut ip, &p, Endpoint::new(rip(f), 8080)).unwrap();
            let p2 = rvs_packet::parse_ip(&ip).unwrap();
            verify_l4_checksum(&ip, &p2).unwrap();
            assert_eq!(
                nat::decrement_ttl(&mut ip, &p2).unwrap(),
                TtlVerdict::Forward
            );
            // Operations that need Ethernet refuse.
            assert!(nat::dr_forward(&mut ip, &p2, RS_MAC, DIR_MAC).is_err());
            // Same bytes with an Ethernet header in front agree with etherparse.
            let mut again = frame[..14].to_vec();
            again.extend_from_slice(&ip);
            etherparse_check(&again);
        }
    }
    assert_eq!(
        rvs_packet::parse_ip(&[0x50; 40]).unwrap_err(),
        Error::BadVersion(5)
    );
    assert!(matches!(
        rvs_packet::parse_ip(&[]),
        Err(Error::Truncated { .. })
    ));
}

#[test]
fn ipv6_udp_zero_checksum_is_always_computed() {
    for policy in [UdpZeroChecksum::Compute, UdpZeroChecksum::Keep] {
        let mut f = build(Fam::V6, Proto::Udp, b"v6");
        zero_udp_checksum(&mut f);
        let p = parse(&f).unwrap();
        nat::rewrite(
            &mut f,
            &p,
            None,
            Some(Endpoint::new(RIP6.into(), 53)),
            policy,
        )
        .unwrap();
        verify_l4_checksum(&f, &p).unwrap();
        etherparse_check(&f);
    }
}
