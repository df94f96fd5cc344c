//! Per-packet cost of the hot-path primitives on minimum-size frames.
//!
//! Run: `cargo bench -p rvs-packet --bench rewrite -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rvs_packet::ethernet::{self, ethertype};
use rvs_packet::nat::{self, Endpoint};
use rvs_packet::parse;
use rvs_packet::tunnel::{self, TunnelCsum, TunnelParams, TunnelType};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const DIR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const RS_MAC: [u8; 6] = [2, 0, 0, 0, 0, 3];

/// A 64-byte Ethernet frame (no FCS): IPv4 + TCP (ACK) + 10 bytes of data, with
/// valid checksums. Built by hand so the bench has no extra dependency.
fn tcp4_frame() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    ethernet::write_header(&mut f, DIR_MAC, CLIENT_MAC, &[], ethertype::IPV4).unwrap();
    {
        let mut ip = rvs_packet::ipv4::Ipv4Packet::new_unchecked(&mut f[14..]);
        ip.set_version_ihl(20);
        ip.set_total_len(50);
        ip.set_flags_frag(rvs_packet::ipv4::FLAG_DF);
        ip.set_ttl(64);
        ip.set_protocol(6);
        ip.set_src(Ipv4Addr::new(192, 0, 2, 1));
        ip.set_dst(Ipv4Addr::new(198, 51, 100, 10));
        ip.fill_checksum();
    }
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&80u16.to_be_bytes());
    f[46] = 5 << 4;
    f[47] = 0x10;
    f[54..64].copy_from_slice(b"GET / HTTP");
    let p = parse(&f).unwrap();
    rvs_packet::parse::fill_l4_checksum(&mut f, &p).unwrap();
    f
}

fn tcp6_frame() -> Vec<u8> {
    let mut f = vec![0u8; 84];
    ethernet::write_header(&mut f, DIR_MAC, CLIENT_MAC, &[], ethertype::IPV6).unwrap();
    {
        let mut ip = rvs_packet::ipv6::Ipv6Packet::new_unchecked(&mut f[14..]);
        ip.set_version_tc_flow(0, 0);
        ip.set_payload_len(30);
        ip.set_next_header(6);
        ip.set_hop_limit(64);
        ip.set_src(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        ip.set_dst(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x10));
    }
    f[54..56].copy_from_slice(&40000u16.to_be_bytes());
    f[56..58].copy_from_slice(&80u16.to_be_bytes());
    f[66] = 5 << 4;
    f[67] = 0x10;
    let p = parse(&f).unwrap();
    rvs_packet::parse::fill_l4_checksum(&mut f, &p).unwrap();
    f
}

fn bench(c: &mut Criterion) {
    let frame = tcp4_frame();
    let vip = Endpoint::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)), 80);
    let rs = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2)), 8080);

    c.bench_function("parse 64B TCP/IPv4", |b| {
        b.iter(|| parse(black_box(&frame)).unwrap())
    });

    // DNAT alternately to the RS and back to the VIP, so the frame stays valid
    // without a copy per iteration; each iteration is one parse + one DNAT.
    let mut f = frame.clone();
    let mut to_rs = true;
    c.bench_function("parse + NAT DNAT 64B TCP/IPv4", |b| {
        b.iter(|| {
            let p = parse(black_box(&f)).unwrap();
            let ep = if to_rs { rs } else { vip };
            nat::dnat(black_box(&mut f), &p, ep).unwrap();
            to_rs = !to_rs;
        })
    });

    let f6 = tcp6_frame();
    let vip6 = Endpoint::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x10)),
        80,
    );
    let rs6 = Endpoint::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2)),
        8080,
    );
    let mut g = f6.clone();
    let mut to_rs = true;
    c.bench_function("parse + NAT DNAT 84B TCP/IPv6", |b| {
        b.iter(|| {
            let p = parse(black_box(&g)).unwrap();
            let ep = if to_rs { rs6 } else { vip6 };
            nat::dnat(black_box(&mut g), &p, ep).unwrap();
            to_rs = !to_rs;
        })
    });

    // DR: parse, TTL decrement, MAC rewrite. A fresh copy per iteration (setup
    // not timed) because the TTL runs out otherwise.
    c.bench_function("parse + DR (TTL, MACs) 64B TCP/IPv4", |b| {
        b.iter_batched_ref(
            || frame.clone(),
            |f| {
                let p = parse(f).unwrap();
                nat::dr_forward(f, &p, RS_MAC, DIR_MAC).unwrap()
            },
            BatchSize::SmallInput,
        )
    });

    let t = TunnelParams {
        kind: TunnelType::Ipip,
        csum: TunnelCsum::NoCsum,
        src: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2)),
        dst_mac: RS_MAC,
        src_mac: DIR_MAC,
        pmtu_disc: true,
        ident: 1,
        gue_sport: 50000,
        inner_partial: None,
    };
    let mut with_headroom = vec![0u8; 64];
    with_headroom.extend_from_slice(&frame);
    for (name, kind, csum) in [
        (
            "parse + TUN IPIP encap 64B TCP/IPv4",
            TunnelType::Ipip,
            TunnelCsum::NoCsum,
        ),
        (
            "parse + TUN GUE encap (csum) 64B TCP/IPv4",
            TunnelType::Gue { port: 6080 },
            TunnelCsum::Csum,
        ),
    ] {
        let t = TunnelParams { kind, csum, ..t };
        c.bench_function(name, |b| {
            b.iter_batched_ref(
                || with_headroom.clone(),
                |buf| {
                    let p = parse(&buf[64..]).unwrap();
                    tunnel::encapsulate(buf, 64, 64, &p, &t).unwrap()
                },
                BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
