//! Cost of [`Plane::process`] per packet on one core (issue 4 benchmarks): a packet of a
//! known flow (goal ≤ 350 ns) and the first packet of a new flow, scheduling included (goal
//! ≤ 1 µs), for NAT and DR, on 64-byte IPv4/TCP frames. Each iteration also copies the
//! 64-byte template into the buffer (the frame is rewritten in place).
//!
//! Run: `cargo bench -p rvs-packet --bench plane -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use etherparse::PacketBuilder;
use rvs_core::conn::HashSeed;
use rvs_core::{
    DestConfig, Director, FwdMethod, Protocol, RandomSource, SchedKind, ServiceConfig, ServiceKey,
    Time,
};
use rvs_packet::plane::{Neighbours, NextHop, Plane, PlaneConfig, PortConfig, Verdict};

const HEADROOM: usize = 128;
const VIP: [u8; 4] = [198, 51, 100, 10];

struct Table;
impl Neighbours for Table {
    fn next_hop(&self, dst: IpAddr) -> Option<NextHop> {
        match dst {
            IpAddr::V4(a) if a.octets()[..3] == [192, 168, 1] => Some(NextHop {
                port: 1,
                mac: [2, 0, 0, 0, 1, a.octets()[3]],
            }),
            _ => Some(NextHop {
                port: 0,
                mac: [2, 0, 0, 0, 0, 0xfe],
            }),
        }
    }
}

struct Rng(u32);
impl RandomSource for Rng {
    fn below(&mut self, n: u32) -> u32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        if n == 0 {
            0
        } else {
            self.0 % n
        }
    }
}

/// A plane and the director it is lent (rvsd keeps the director outside the plane).
fn plane(fwd: FwdMethod) -> (Plane<Table>, Director) {
    let mut d = Director::new(HashSeed([7, 8, 9, 10]), Time(0));
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: IpAddr::from(VIP),
        port: 80,
    };
    d.table
        .add_service(
            key,
            ServiceConfig::new(SchedKind::Wlc, key.family()),
            Time(0),
        )
        .unwrap();
    for n in 11..15u8 {
        let port = if fwd == FwdMethod::Masq { 8080 } else { 80 };
        d.table
            .add_dest(
                &key,
                DestConfig::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, n)), port).fwd(fwd),
                Time(0),
            )
            .unwrap();
    }
    let cfg = PlaneConfig {
        ports: vec![
            PortConfig {
                mac: [2, 0, 0, 0, 0, 1],
                mtu: 1500,
                addr4: Some(Ipv4Addr::new(198, 51, 100, 1)),
                addr6: None,
            },
            PortConfig {
                mac: [2, 0, 0, 0, 1, 1],
                mtu: 1500,
                addr4: Some(Ipv4Addr::new(192, 168, 1, 1)),
                addr6: None,
            },
        ],
        owned: vec![(IpAddr::from(VIP), 0)],
        ..PlaneConfig::default()
    };
    (Plane::new(cfg, Table), d)
}

/// A 64-byte frame: Ethernet + IPv4 + TCP + 10 bytes of data.
fn frame(sport: u16, syn: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xfe], [2, 0, 0, 0, 0, 1])
        .ipv4([203, 0, 113, 5], VIP, 64)
        .tcp(sport, 80, 1, 64240);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut f = Vec::new();
    b.write(&mut f, &[0x42; 10]).unwrap();
    f
}

fn known_flow(c: &mut Criterion, name: &str, fwd: FwdMethod) {
    let (mut p, mut d) = plane(fwd);
    let syn = frame(40000, true);
    let ack = frame(40000, false);
    let mut buf = vec![0u8; HEADROOM + 2048];
    buf[HEADROOM..HEADROOM + syn.len()].copy_from_slice(&syn);
    let v = p.process(
        &mut d,
        &mut buf,
        HEADROOM,
        syn.len(),
        0,
        Time(1000),
        &mut Rng(1),
    );
    assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
    c.bench_function(name, |b| {
        b.iter(|| {
            buf[HEADROOM..HEADROOM + ack.len()].copy_from_slice(&ack);
            let v = p.process(
                &mut d,
                &mut buf,
                HEADROOM,
                ack.len(),
                0,
                Time(2000),
                &mut Rng(1),
            );
            black_box(v)
        })
    });
    // The flow is still known after the run (every iteration took the fast path).
    buf[HEADROOM..HEADROOM + ack.len()].copy_from_slice(&ack);
    let v = p.process(
        &mut d,
        &mut buf,
        HEADROOM,
        ack.len(),
        0,
        Time(2000),
        &mut Rng(1),
    );
    assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
}

/// New flows: each packet is a SYN with a fresh source port, so it is scheduled (wlc over
/// four dests) and a connection is created. The table is rebuilt (outside the timing) every
/// 60000 flows to bound memory.
fn new_flow(c: &mut Criterion, name: &str, fwd: FwdMethod) {
    let syn = frame(1, true);
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            let mut rng = Rng(1);
            let mut buf = vec![0u8; HEADROOM + 2048];
            while left > 0 {
                let n = left.min(60_000);
                let (mut p, mut d) = plane(fwd);
                let t = Instant::now();
                for i in 0..n {
                    buf[HEADROOM..HEADROOM + syn.len()].copy_from_slice(&syn);
                    let sport = (1024 + i as u16).to_be_bytes();
                    buf[HEADROOM + 34..HEADROOM + 36].copy_from_slice(&sport);
                    black_box(p.process(
                        &mut d,
                        &mut buf,
                        HEADROOM,
                        syn.len(),
                        0,
                        Time(1000),
                        &mut rng,
                    ));
                }
                total += t.elapsed();
                assert_eq!(d.conns.len() as u64, n);
                left -= n;
            }
            total
        })
    });
}

fn benches(c: &mut Criterion) {
    known_flow(c, "plane/known_flow/nat", FwdMethod::Masq);
    known_flow(c, "plane/known_flow/dr", FwdMethod::Route);
    new_flow(c, "plane/new_flow/nat", FwdMethod::Masq);
    new_flow(c, "plane/new_flow/dr", FwdMethod::Route);
}

criterion_group!(plane_benches, benches);
criterion_main!(plane_benches);
