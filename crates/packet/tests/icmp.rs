//! ICMP error relay (docs/internals/forwarding.md#icmp-errors), generated ICMP/ICMPv6 errors, ARP and ND.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::*;
use etherparse::{icmpv4, icmpv6, Icmpv4Type, Icmpv6Type, PacketBuilder};
use rvs_packet::ethernet::{self, ethertype};
use rvs_packet::generate;
use rvs_packet::icmp::{v4, v6, IcmpPacket};
use rvs_packet::icmp_relay::{self, icmp_error, icmp_nat_in, icmp_nat_out};
use rvs_packet::ipv4::Ipv4Packet;
use rvs_packet::nat::Endpoint;
use rvs_packet::parse::verify_l4_checksum;
use rvs_packet::tunnel::{self, TunnelCsum, TunnelParams, TunnelType};
use rvs_packet::{parse, Error, L3};

/// An ICMP error from `src` to `dst` quoting the IP packet of `quoted_frame`
/// (at most `max_quote` bytes of it).
fn icmp_error_frame(
    src: IpAddr,
    dst: IpAddr,
    quoted_frame: &[u8],
    max_quote: usize,
    too_big: bool,
) -> Vec<u8> {
    let qp = parse(quoted_frame).unwrap();
    let q = &quoted_frame[qp.l2_len..qp.l3_end];
    let q = &q[..q.len().min(max_quote)];
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, DIR_MAC);
    let mut out = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let t = if too_big {
                Icmpv4Type::DestinationUnreachable(
                    icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
                )
            } else {
                Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port)
            };
            eth.ipv4(s.octets(), d.octets(), 60)
                .icmpv4(t)
                .write(&mut out, q)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let t = if too_big {
                Icmpv6Type::PacketTooBig { mtu: 1400 }
            } else {
                Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Port)
            };
            eth.ipv6(s.octets(), d.octets(), 60)
                .icmpv6(t)
                .write(&mut out, q)
        }
        _ => panic!("mixed"),
    }
    .unwrap();
    out
}

fn quoted_ip_checksum_ok(frame: &[u8], e: &icmp_relay::IcmpError) -> bool {
    Ipv4Packet::new_unchecked(&frame[e.quoted_off..]).verify_checksum()
}

#[test]
fn nat_icmp_both_directions() {
    for f in [Fam::V4, Fam::V6] {
        for pr in [Proto::Tcp, Proto::Udp] {
            let hdr = if f == Fam::V4 { 20 } else { 40 };
            for quote in [hdr + 4, hdr + 8, hdr + 44, 2000] {
                // Client side: an error about our reply VIP:80 -> CIP:40000.
                let reply = build_addr(vip(f), cip(f), pr, 80, 40000, 64, b"some reply data");
                let mut fr = icmp_error_frame(cip(f), vip(f), &reply, quote, false);
                etherparse_check(&fr);
                let p = parse(&fr).unwrap();
                verify_l4_checksum(&fr, &p).unwrap();
                let e = icmp_error(&fr, &p).unwrap().expect("an error message");
                assert_eq!((e.quoted_src, e.quoted_dst), (vip(f), cip(f)));
                let ports_quoted = quote >= hdr + 8;
                assert_eq!(
                    e.quoted_ports.is_some(),
                    ports_quoted,
                    "{f:?} quote {quote}"
                );
                let before_l4 = fr[e.quoted_l4_off + 4..].to_vec();
                icmp_nat_in(&mut fr, &p, &e, Endpoint::new(rip(f), 8080)).unwrap();
                etherparse_check(&fr);
                let p2 = parse(&fr).unwrap();
                verify_l4_checksum(&fr, &p2).unwrap();
                assert_eq!(p2.addrs(&fr), Some((cip(f), rip(f))));
                let e2 = icmp_error(&fr, &p2).unwrap().unwrap();
                assert_eq!(e2.quoted_src, rip(f));
                if ports_quoted {
                    assert_eq!(e2.quoted_ports, Some((8080, 40000)));
                }
                if f == Fam::V4 {
                    assert!(quoted_ip_checksum_ok(&fr, &e2));
                }
                // The quoted transport checksum is left alone, as the kernel does.
                assert_eq!(&fr[e2.quoted_l4_off + 4..], &before_l4[..]);

                // RS side: an error about the client's packet CIP:40000 -> RIP:8080.
                let req = build_addr(cip(f), rip(f), pr, 40000, 8080, 64, b"request");
                let mut fr = icmp_error_frame(rip(f), cip(f), &req, quote, false);
                let p = parse(&fr).unwrap();
                let e = icmp_error(&fr, &p).unwrap().unwrap();
                icmp_nat_out(&mut fr, &p, &e, Endpoint::new(vip(f), 80)).unwrap();
                etherparse_check(&fr);
                let p2 = parse(&fr).unwrap();
                assert_eq!(p2.addrs(&fr), Some((vip(f), cip(f))));
                let e2 = icmp_error(&fr, &p2).unwrap().unwrap();
                assert_eq!(e2.quoted_dst, vip(f));
                if ports_quoted {
                    assert_eq!(e2.quoted_ports, Some((40000, 80)));
                }
                if f == Fam::V4 {
                    assert!(quoted_ip_checksum_ok(&fr, &e2));
                }
            }
        }
    }
}

#[test]
fn icmp_error_filters_and_failures() {
    // Echo is not an error: IPVS passes it.
    let echo = build(Fam::V4, Proto::Icmp, b"ping");
    assert_eq!(icmp_error(&echo, &parse(&echo).unwrap()), Ok(None));
    let echo6 = build(Fam::V6, Proto::Icmp, b"ping");
    assert_eq!(icmp_error(&echo6, &parse(&echo6).unwrap()), Ok(None));
    // Not ICMP at all.
    let tcp = build(Fam::V4, Proto::Tcp, b"");
    assert_eq!(icmp_error(&tcp, &parse(&tcp).unwrap()), Ok(None));
    // Quote shorter than an IP header.
    let reply = build(Fam::V4, Proto::Tcp, b"");
    let short = icmp_error_frame(CIP4.into(), VIP4.into(), &reply, 12, false);
    assert!(matches!(
        icmp_error(&short, &parse(&short).unwrap()),
        Err(Error::Truncated { .. })
    ));
    // Bad ICMP checksum is detected (the kernel drops it).
    let mut bad = icmp_error_frame(CIP4.into(), VIP4.into(), &reply, 100, false);
    let n = bad.len();
    bad[n - 1] ^= 1;
    let p = parse(&bad).unwrap();
    assert_eq!(
        verify_l4_checksum(&bad, &p),
        Err(Error::BadChecksum(rvs_packet::Layer::Icmp))
    );
    // Family mismatch on rewrite.
    let mut fr = icmp_error_frame(CIP4.into(), VIP4.into(), &reply, 100, false);
    let p = parse(&fr).unwrap();
    let e = icmp_error(&fr, &p).unwrap().unwrap();
    assert_eq!(
        icmp_nat_in(&mut fr, &p, &e, Endpoint::new(RIP6.into(), 1)),
        Err(Error::FamilyMismatch)
    );
    // FRAG_NEEDED / PACKET_TOO_BIG recognised.
    let tb = icmp_error_frame(CIP4.into(), VIP4.into(), &reply, 100, true);
    let p = parse(&tb).unwrap();
    let e = icmp_error(&tb, &p).unwrap().unwrap();
    assert!(e.is_too_big(L3::Ipv4));
    assert_eq!(e.info & 0xffff, 1400);
}

#[test]
fn icmp_about_our_tunnel_packets() {
    for (kind, gue_port) in [
        (TunnelType::Ipip, None),
        (TunnelType::Gue { port: 6080 }, Some(6080)),
        (TunnelType::Gre, None),
    ] {
        // The client's packet, tunnelled by the director DIP -> RIP...
        let client = build(Fam::V4, Proto::Tcp, &[7u8; 1400]);
        let p = parse(&client).unwrap();
        let mut buf = vec![0u8; 64];
        buf.extend_from_slice(&client);
        let t = TunnelParams {
            kind,
            csum: TunnelCsum::NoCsum,
            src: DIP4.into(),
            dst: RIP4.into(),
            dst_mac: RS_MAC,
            src_mac: DIR_MAC,
            pmtu_disc: true,
            ident: 1,
            gue_sport: 40000,
            inner_partial: None,
        };
        let (s, l) = tunnel::encapsulate(&mut buf, 64, client.len(), &p, &t).unwrap();
        let tunnelled = buf[s..s + l].to_vec();
        // ...draws a FRAG_NEEDED from a router on the way, quoting 576 - 28 bytes.
        let icmp = icmp_error_frame(
            Ipv4Addr::new(10, 9, 9, 9).into(),
            DIP4.into(),
            &tunnelled,
            548,
            true,
        );
        let ip = parse(&icmp).unwrap();
        let e = icmp_error(&icmp, &ip).unwrap().unwrap();
        assert!(e.is_too_big(L3::Ipv4));
        let ti = icmp_relay::icmp_tunnel_inner(&icmp, &e, gue_port)
            .unwrap()
            .expect("tunnel quote");
        assert_eq!((ti.inner_src, ti.inner_dst), (CIP4.into(), VIP4.into()));
        assert!(ti.inner_df);
        assert_eq!(ti.inner, L3::Ipv4);
        // The MTU announced to the client (docs/internals/forwarding.md#icmp-errors) and the FRAG_NEEDED itself.
        let mtu = icmp_relay::tunnel_frag_needed_mtu(None, e.info & 0xffff);
        assert_eq!(mtu, 1380);
        let mut out = [0u8; 700];
        let l2 =
            ethernet::write_header(&mut out, CLIENT_MAC, DIR_MAC, &[], ethertype::IPV4).unwrap();
        let n = generate::frag_needed_v4(&mut out[l2..], &icmp[ti.inner_off..], VIP4, mtu, 7)
            .unwrap()
            .unwrap();
        let fr = &out[..l2 + n];
        etherparse_check(fr);
        let gp = parse(fr).unwrap();
        assert_eq!(gp.addrs(fr), Some((VIP4.into(), CIP4.into())));
        let ge = icmp_error(fr, &gp).unwrap().unwrap();
        assert_eq!(ge.info & 0xffff, 1380);
        assert_eq!(ge.quoted_src, IpAddr::from(CIP4));
        // Not a tunnel: a plain TCP quote.
        let plain = icmp_error_frame(CIP4.into(), VIP4.into(), &client, 100, true);
        let pp = parse(&plain).unwrap();
        let pe = icmp_error(&plain, &pp).unwrap().unwrap();
        assert_eq!(
            icmp_relay::icmp_tunnel_inner(&plain, &pe, gue_port),
            Ok(None)
        );
    }
    assert_eq!(icmp_relay::tunnel_frag_needed_mtu(Some(1400), 1480), 1380);
    assert_eq!(icmp_relay::tunnel_frag_needed_mtu(None, 88), 88);
    assert_eq!(icmp_relay::tunnel_frag_needed_mtu(None, 89), 69);
}

#[test]
fn generated_icmpv4_errors() {
    for payload_len in [0usize, 10, 1400] {
        let orig = build(Fam::V4, Proto::Udp, &vec![3u8; payload_len]);
        let p = parse(&orig).unwrap();
        let ipb = &orig[p.l2_len..p.l3_end];
        for (kind, t, c) in [
            ("time", v4::TIME_EXCEEDED, v4::EXC_TTL),
            ("frag", v4::DEST_UNREACH, v4::FRAG_NEEDED),
            ("port", v4::DEST_UNREACH, v4::PORT_UNREACH),
        ] {
            let mut out = [0u8; 700];
            let l2 =
                ethernet::write_reply_header(&mut out, &orig, p.l2_len, DIR_MAC, ethertype::IPV4)
                    .unwrap();
            let body = &mut out[l2..];
            let n = match kind {
                "time" => generate::time_exceeded_v4(body, ipb, VIP4, 9),
                "frag" => generate::frag_needed_v4(body, ipb, VIP4, 1400, 9),
                _ => generate::port_unreachable_v4(body, ipb, VIP4, 9),
            }
            .unwrap()
            .unwrap();
            assert_eq!(n, 28 + ipb.len().min(548), "{kind}");
            assert!(n <= generate::ICMP4_MAX);
            let fr = &out[..l2 + n];
            assert_eq!(&fr[0..6], &CLIENT_MAC);
            etherparse_check(fr);
            let gp = parse(fr).unwrap();
            verify_l4_checksum(fr, &gp).unwrap();
            let ip = Ipv4Packet::new_checked(&fr[14..]).unwrap();
            assert_eq!(
                (ip.src(), ip.dst(), ip.ttl(), ip.tos()),
                (VIP4, CIP4, 64, 0xc0)
            );
            let ic = IcmpPacket::new_checked(&fr[34..]).unwrap();
            assert_eq!((ic.msg_type(), ic.code()), (t, c));
            if kind == "frag" {
                assert_eq!(ic.frag_mtu(), 1400);
            }
            assert_eq!(&fr[42..], &ipb[..n - 28]);
        }
    }
    let mut out = [0u8; 700];
    // Never about an ICMP error, a non-first fragment, or a multicast/broadcast.
    let e = icmp_error_frame(
        CIP4.into(),
        VIP4.into(),
        &build(Fam::V4, Proto::Tcp, b""),
        100,
        false,
    );
    assert_eq!(
        generate::time_exceeded_v4(&mut out, &e[14..], VIP4, 1),
        Ok(None)
    );
    let echo = build(Fam::V4, Proto::Icmp, b"");
    assert!(generate::time_exceeded_v4(&mut out, &echo[14..], VIP4, 1)
        .unwrap()
        .is_some());
    let mut frag = build(Fam::V4, Proto::Udp, b"");
    frag[14 + 7] = 1;
    assert_eq!(
        generate::time_exceeded_v4(&mut out, &frag[14..], VIP4, 1),
        Ok(None)
    );
    let mc = build_addr(
        CIP4.into(),
        Ipv4Addr::new(224, 0, 0, 5).into(),
        Proto::Udp,
        1,
        2,
        1,
        b"",
    );
    assert_eq!(
        generate::time_exceeded_v4(&mut out, &mc[14..], VIP4, 1),
        Ok(None)
    );
    let bc = build_addr(
        Ipv4Addr::UNSPECIFIED.into(),
        VIP4.into(),
        Proto::Udp,
        1,
        2,
        1,
        b"",
    );
    assert_eq!(
        generate::time_exceeded_v4(&mut out, &bc[14..], VIP4, 1),
        Ok(None)
    );
    // Output too small.
    let orig = build(Fam::V4, Proto::Udp, b"");
    assert!(matches!(
        generate::time_exceeded_v4(&mut out[..30], &orig[14..], VIP4, 1),
        Err(Error::NoRoom { .. })
    ));
}

#[test]
fn generated_icmpv6_errors() {
    for payload_len in [0usize, 10, 1400] {
        let orig = build(Fam::V6, Proto::Udp, &vec![3u8; payload_len]);
        let ipb = &orig[14..];
        for kind in ["ptb", "time", "port"] {
            let mut out = [0u8; 1400];
            let l2 = ethernet::write_reply_header(&mut out, &orig, 14, DIR_MAC, ethertype::IPV6)
                .unwrap();
            let body = &mut out[l2..];
            let n = match kind {
                "ptb" => generate::packet_too_big(body, ipb, VIP6, 1280),
                "time" => generate::time_exceeded_v6(body, ipb, VIP6),
                _ => generate::port_unreachable_v6(body, ipb, VIP6),
            }
            .unwrap()
            .unwrap();
            assert_eq!(n, 48 + ipb.len().min(1232));
            assert!(n <= generate::ICMP6_MAX);
            let fr = &out[..l2 + n];
            etherparse_check(fr);
            let gp = parse(fr).unwrap();
            verify_l4_checksum(fr, &gp).unwrap();
            assert_eq!(gp.addrs(fr), Some((VIP6.into(), CIP6.into())));
            let ic = IcmpPacket::new_checked(&fr[54..]).unwrap();
            if kind == "ptb" {
                assert_eq!((ic.msg_type(), ic.rest()), (v6::PACKET_TOO_BIG, 1280));
            }
        }
    }
    let mut out = [0u8; 1400];
    let mcast: Ipv6Addr = "ff02::1".parse().unwrap();
    let mc = build_addr(CIP6.into(), mcast.into(), Proto::Udp, 1, 2, 64, b"");
    assert_eq!(
        generate::port_unreachable_v6(&mut out, &mc[14..], VIP6),
        Ok(None)
    );
    assert!(generate::packet_too_big(&mut out, &mc[14..], VIP6, 1280)
        .unwrap()
        .is_some());
    let err = icmp_error_frame(
        CIP6.into(),
        VIP6.into(),
        &build(Fam::V6, Proto::Tcp, b""),
        100,
        false,
    );
    assert_eq!(
        generate::time_exceeded_v6(&mut out, &err[14..], VIP6),
        Ok(None)
    );
    let echo = build(Fam::V6, Proto::Icmp, b"");
    assert!(generate::time_exceeded_v6(&mut out, &echo[14..], VIP6)
        .unwrap()
        .is_some());
}

fn arp_request(target: Ipv4Addr, vlans: usize) -> Vec<u8> {
    let mut f = [0u8; 42];
    ethernet::write_header(&mut f, ethernet::BROADCAST, CLIENT_MAC, &[], ethertype::ARP).unwrap();
    rvs_packet::arp::ArpPacket::new_unchecked(&mut f[14..]).write(
        rvs_packet::arp::OP_REQUEST,
        CLIENT_MAC,
        CIP4,
        [0; 6],
        target,
    );
    add_vlans(&f, vlans)
}

#[test]
fn arp_reply_and_gratuitous() {
    for vlans in 0..=2 {
        let req = arp_request(VIP4, vlans);
        let p = parse(&req).unwrap();
        assert_eq!(p.l3, L3::Arp);
        assert_eq!(generate::arp_request_target(&req, &p), Some(VIP4));
        let mut out = [0u8; 80];
        let n = generate::arp_reply(&mut out, &req, &p, DIR_MAC).unwrap();
        assert_eq!(n, 60);
        let fr = &out[..n];
        let h = etherparse::PacketHeaders::from_ethernet_slice(fr).unwrap();
        let Some(etherparse::NetHeaders::Arp(a)) = h.net else {
            panic!("etherparse: not ARP")
        };
        assert_eq!(a.operation, etherparse::ArpOperation::REPLY);
        assert_eq!(a.sender_hw_addr(), &DIR_MAC);
        assert_eq!(a.sender_protocol_addr(), &VIP4.octets());
        assert_eq!(a.target_hw_addr(), &CLIENT_MAC);
        assert_eq!(a.target_protocol_addr(), &CIP4.octets());
        assert_eq!(&fr[0..6], &CLIENT_MAC);
        assert_eq!(parse(fr).unwrap().vlan_count as usize, vlans);
        // A reply is not a request.
        let rp = parse(fr).unwrap();
        assert_eq!(generate::arp_request_target(fr, &rp), None);
        assert!(generate::arp_reply(&mut [0u8; 80], fr, &rp, DIR_MAC).is_err());
    }
    let mut out = [0u8; 64];
    let n = generate::gratuitous_arp(&mut out, DIR_MAC, VIP4, &[(0x8100, 5)]).unwrap();
    assert_eq!(n, 60);
    let h = etherparse::PacketHeaders::from_ethernet_slice(&out[..n]).unwrap();
    let Some(etherparse::NetHeaders::Arp(a)) = h.net else {
        panic!("not ARP")
    };
    assert_eq!(a.operation, etherparse::ArpOperation::REQUEST);
    assert_eq!(a.sender_protocol_addr(), a.target_protocol_addr());
    assert_eq!(&out[0..6], &ethernet::BROADCAST);
    assert!(generate::gratuitous_arp(&mut out[..40], DIR_MAC, VIP4, &[]).is_err());
}

/// A neighbour solicitation for `target` from `src` (unspecified for DAD).
fn neighbor_solicit(src: Ipv6Addr, target: Ipv6Addr, hop: u8, sllao: bool) -> Vec<u8> {
    let t = target.octets();
    let dst = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let mut f = vec![0u8; 14 + 40 + 24 + if sllao { 8 } else { 0 }];
    let d = dst.octets();
    ethernet::write_header(
        &mut f,
        [0x33, 0x33, d[12], d[13], d[14], d[15]],
        CLIENT_MAC,
        &[],
        ethertype::IPV6,
    )
    .unwrap();
    let plen = (f.len() - 54) as u16;
    let mut ip = rvs_packet::ipv6::Ipv6Packet::new_unchecked(&mut f[14..]);
    ip.set_version_tc_flow(0, 0);
    ip.set_payload_len(plen);
    ip.set_next_header(58);
    ip.set_hop_limit(hop);
    ip.set_src(src);
    ip.set_dst(dst);
    f[54] = v6::NEIGHBOR_SOLICIT;
    f[62..78].copy_from_slice(&t);
    if sllao {
        f[78] = 1;
        f[79] = 1;
        f[80..86].copy_from_slice(&CLIENT_MAC);
    }
    let p = parse(&f).unwrap();
    rvs_packet::parse::fill_l4_checksum(&mut f, &p).unwrap();
    f
}

#[test]
fn neighbor_discovery() {
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    // Solicited.
    let ns = neighbor_solicit(CIP6, VIP6, 255, true);
    etherparse_check(&ns);
    let p = parse(&ns).unwrap();
    let s = generate::neighbor_solicitation(&ns, &p).expect("valid NS");
    assert_eq!(
        (s.target, s.src, s.src_lladdr),
        (VIP6, CIP6, Some(CLIENT_MAC))
    );
    let mut out = [0u8; 100];
    let n = generate::neighbor_advert_reply(&mut out, &s, DIR_MAC, p.vlan_tags()).unwrap();
    let fr = &out[..n];
    etherparse_check(fr);
    let np = parse(fr).unwrap();
    verify_l4_checksum(fr, &np).unwrap();
    assert_eq!(np.addrs(fr), Some((VIP6.into(), CIP6.into())));
    assert_eq!(np.ttl(fr), Some(255));
    let ic = IcmpPacket::new_checked(&fr[54..]).unwrap();
    assert_eq!(ic.msg_type(), v6::NEIGHBOR_ADVERT);
    assert_eq!(ic.rest(), v6::NA_SOLICITED | v6::NA_OVERRIDE);
    assert_eq!(ic.nd_target(), Some(VIP6));
    assert_eq!(ic.nd_lladdr_option(v6::OPT_TARGET_LLADDR), Some(DIR_MAC));
    assert_eq!(&fr[0..6], &CLIENT_MAC);
    // Duplicate address detection: reply to all-nodes, S = 0.
    let dad = neighbor_solicit(Ipv6Addr::UNSPECIFIED, VIP6, 255, false);
    let p = parse(&dad).unwrap();
    let s = generate::neighbor_solicitation(&dad, &p).unwrap();
    let n = generate::neighbor_advert_reply(&mut out, &s, DIR_MAC, &[]).unwrap();
    let fr = &out[..n];
    let np = parse(fr).unwrap();
    verify_l4_checksum(fr, &np).unwrap();
    assert_eq!(np.addrs(fr), Some((VIP6.into(), all_nodes.into())));
    assert_eq!(
        IcmpPacket::new_checked(&fr[54..]).unwrap().rest(),
        v6::NA_OVERRIDE
    );
    assert_eq!(&fr[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
    // Invalid solicitations are ignored.
    let hop = neighbor_solicit(CIP6, VIP6, 254, true);
    assert!(generate::neighbor_solicitation(&hop, &parse(&hop).unwrap()).is_none());
    let dad_sllao = neighbor_solicit(Ipv6Addr::UNSPECIFIED, VIP6, 255, true);
    assert!(generate::neighbor_solicitation(&dad_sllao, &parse(&dad_sllao).unwrap()).is_none());
    let mut badsum = neighbor_solicit(CIP6, VIP6, 255, true);
    badsum[70] ^= 1;
    assert!(generate::neighbor_solicitation(&badsum, &parse(&badsum).unwrap()).is_none());
    // Unsolicited advertisement.
    let n = generate::unsolicited_neighbor_advert(&mut out, DIR_MAC, VIP6, &[(0x8100, 9)]).unwrap();
    let fr = &out[..n];
    let np = parse(fr).unwrap();
    verify_l4_checksum(fr, &np).unwrap();
    assert_eq!(np.vlan_count, 1);
    assert_eq!(np.addrs(fr), Some((VIP6.into(), all_nodes.into())));
}

#[test]
fn fullnat_icmp_rewrites_both_sides() {
    for f in [Fam::V4, Fam::V6] {
        // RS answers LIP:5000 -> RIP:8080 traffic with an error; it must reach the
        // client as VIP -> CIP quoting CIP:40000 -> VIP:80.
        let req = build_addr(lip(f), rip(f), Proto::Udp, 5000, 8080, 64, b"q");
        let mut fr = icmp_error_frame(rip(f), lip(f), &req, 200, false);
        let p = parse(&fr).unwrap();
        let e = icmp_error(&fr, &p).unwrap().unwrap();
        icmp_relay::icmp_rewrite(
            &mut fr,
            &p,
            &e,
            Some(vip(f)),
            Some(cip(f)),
            Some(Endpoint::new(cip(f), 40000)),
            Some(Endpoint::new(vip(f), 80)),
        )
        .unwrap();
        etherparse_check(&fr);
        let p2 = parse(&fr).unwrap();
        verify_l4_checksum(&fr, &p2).unwrap();
        assert_eq!(p2.addrs(&fr), Some((vip(f), cip(f))));
        let e2 = icmp_error(&fr, &p2).unwrap().unwrap();
        assert_eq!((e2.quoted_src, e2.quoted_dst), (cip(f), vip(f)));
        assert_eq!(e2.quoted_ports, Some((40000, 80)));
    }
}

#[test]
fn icmpv6_about_our_ipv6_tunnel_packets() {
    for (kind, gue_port) in [
        (TunnelType::Ipip, None),
        (TunnelType::Gue { port: 6080 }, Some(6080)),
        (TunnelType::Gre, None),
    ] {
        let client = build(Fam::V6, Proto::Tcp, &[7u8; 1300]);
        let p = parse(&client).unwrap();
        let mut buf = vec![0u8; 64];
        buf.extend_from_slice(&client);
        let t = TunnelParams {
            kind,
            csum: TunnelCsum::Csum,
            src: DIP6.into(),
            dst: RIP6.into(),
            dst_mac: RS_MAC,
            src_mac: DIR_MAC,
            pmtu_disc: true,
            ident: 1,
            gue_sport: 40000,
            inner_partial: None,
        };
        let (s, l) = tunnel::encapsulate(&mut buf, 64, client.len(), &p, &t).unwrap();
        let tunnelled = &buf[s..s + l];
        // A router sends PACKET_TOO_BIG to the director, quoting as much as fits.
        let mut out = [0u8; 1400];
        let l2 = ethernet::write_header(&mut out, DIR_MAC, RS_MAC, &[], ethertype::IPV6).unwrap();
        let router: Ipv6Addr = "2001:db8:9::1".parse().unwrap();
        let n = generate::packet_too_big(&mut out[l2..], &tunnelled[14..], router, 1300)
            .unwrap()
            .unwrap();
        let icmp = &out[..l2 + n];
        let ip = parse(icmp).unwrap();
        let e = icmp_error(icmp, &ip).unwrap().unwrap();
        assert!(e.is_too_big(L3::Ipv6));
        assert_eq!(e.info, 1300);
        let ti = icmp_relay::icmp_tunnel_inner(icmp, &e, gue_port)
            .unwrap()
            .expect("tunnel quote");
        assert_eq!(
            (ti.inner, ti.inner_src, ti.inner_dst),
            (L3::Ipv6, CIP6.into(), VIP6.into())
        );
        // PACKET_TOO_BIG to the client quoting its own packet, from the VIP.
        let mtu = 1300 - tunnel::overhead(true, kind, TunnelCsum::Csum, false) as u32;
        let mut o2 = [0u8; 1400];
        let l2 =
            ethernet::write_header(&mut o2, CLIENT_MAC, DIR_MAC, &[], ethertype::IPV6).unwrap();
        let n = generate::packet_too_big(&mut o2[l2..], &icmp[ti.inner_off..], VIP6, mtu)
            .unwrap()
            .unwrap();
        let fr = &o2[..l2 + n];
        etherparse_check(fr);
        let gp = parse(fr).unwrap();
        assert_eq!(gp.addrs(fr), Some((VIP6.into(), CIP6.into())));
    }
}
