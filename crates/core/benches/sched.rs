//! Decision time per scheduler at 10, 1 000 and 10 000 destinations.
//!
//! Weights are varied (1..=100, with a few weight-0 and a few threshold-overloaded
//! destinations) and every destination carries some active and inactive connections. For the
//! load-based schedulers (lc, wlc, sed, nq, fo, ovf, twos, lblc, lblcr) each decision also binds
//! a connection to the chosen destination and expires the connection chosen 64 decisions
//! earlier, each followed by `load_changed`, as the connection code will do; so their numbers
//! are "decision + two load updates".
//!
//! Run: `cargo bench -p rvs-core --bench sched -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rvs_core::sched::{RandomSource, SchedParams};
use rvs_core::{
    DestConfig, DestId, Family, Flow, Protocol, SchedKind, ServiceConfig, ServiceFlags, ServiceId,
    ServiceKey, ServiceTable, Time,
};

/// xorshift64*: cheap deterministic randomness for set-up and for twos.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl RandomSource for Rng {
    fn below(&mut self, n: u32) -> u32 {
        ((self.next() >> 32) % u64::from(n.max(1))) as u32
    }
}

fn build(kind: SchedKind, n: usize) -> (ServiceTable, ServiceId, Vec<DestId>) {
    // mh allows at most M destinations: use the 16381-slot table for 10 000.
    let params = SchedParams {
        mh_tab_index: if n > 4093 { 14 } else { 12 },
        ..SchedParams::default()
    };
    let mut t = ServiceTable::with_params(params);
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        port: 80,
    };
    let flags = match kind {
        SchedKind::Sh | SchedKind::Mh => ServiceFlags::SCHED1,
        _ => 0,
    };
    let sid = t
        .add_service(
            key,
            ServiceConfig::new(kind, Family::Inet).flags(flags),
            Time(0),
        )
        .expect("service");
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let r = rng.next();
        let weight = match r % 50 {
            0 => 0,
            _ => 1 + (r >> 8) % 100,
        } as u32;
        // One in 25 destinations has a low upper threshold and ends up overloaded.
        let upper = if (r >> 20).is_multiple_of(25) { 5 } else { 0 };
        let cfg = DestConfig::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32 + 1)), 80)
            .weight(weight)
            .thresholds(upper, 0);
        let id = t.add_dest(&key, cfg, Time(0)).expect("dest");
        ids.push(id);
    }
    for &id in &ids {
        let a = rng.next() % 20;
        let ina = rng.next() % 40;
        for k in 0..a + ina {
            if let Some(d) = t.dests.get_mut(id) {
                d.bind_conn(false, k >= a);
            }
            t.load_changed(id);
        }
    }
    (t, sid, ids)
}

fn flow(k: u64) -> Flow {
    Flow {
        proto: Some(Protocol::Tcp),
        saddr: IpAddr::V4(Ipv4Addr::from(
            0xc000_0000u32.wrapping_add((k as u32).wrapping_mul(2_654_435_761)),
        )),
        sport: (1024 + k % 60000) as u16,
        // lblc/lblcr: 4096 distinct destination IPs, so most decisions hit the cache.
        daddr: IpAddr::V4(Ipv4Addr::from(0xac10_0000u32 + (k % 4096) as u32)),
        dport: 80,
        inverse: false,
        midstream: false,
    }
}

fn load_based(kind: SchedKind) -> bool {
    matches!(
        kind,
        SchedKind::Lc
            | SchedKind::Wlc
            | SchedKind::Sed
            | SchedKind::Nq
            | SchedKind::Fo
            | SchedKind::Ovf
            | SchedKind::Twos
            | SchedKind::Lblc
            | SchedKind::Lblcr
    )
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sched");
    for kind in SchedKind::ALL {
        for n in [10usize, 1000, 10_000] {
            let (mut t, sid, _ids) = build(kind, n);
            let mut rng = Rng(42);
            let mut k = 0u64;
            // Connections in flight: each decision binds one and expires the one from 64
            // decisions ago, so loads stay steady.
            let mut ring: [Option<DestId>; 64] = [None; 64];
            let with_load = load_based(kind);
            group.bench_with_input(BenchmarkId::new(kind.name(), n), &n, |b, _| {
                b.iter(|| {
                    k = k.wrapping_add(1);
                    let f = flow(k);
                    let got = t.schedule(sid, &f, Time(k), &mut rng);
                    if with_load {
                        let slot = (k % 64) as usize;
                        if let Some(old) = ring[slot].take() {
                            if let Some(d) = t.dests.get_mut(old) {
                                d.unbind_conn(false, false, Time(k));
                            }
                            t.load_changed(old);
                        }
                        if let Some(id) = got {
                            if let Some(d) = t.dests.get_mut(id) {
                                d.bind_conn(false, false);
                            }
                            t.load_changed(id);
                            ring[slot] = Some(id);
                        }
                    }
                    black_box(got)
                })
            });
        }
    }
    group.finish();
}

/// Adversarial cases: almost every destination overloaded, so the walks have to skip far.
/// `usable` destinations out of `n` stay healthy.
fn worst(c: &mut Criterion) {
    let mut group = c.benchmark_group("sched_worst");
    let cases: [(SchedKind, usize, usize); 6] = [
        (SchedKind::Rr, 10_000, 1),
        (SchedKind::Wrr, 10_000, 1),
        (SchedKind::Sh, 10_000, 1),
        (SchedKind::Mh, 100, 1),
        (SchedKind::Mh, 4093, 41),
        (SchedKind::Twos, 10_000, 1),
    ];
    for (kind, n, usable) in cases {
        let (mut t, sid, ids) = build(kind, n);
        // Overload everything but the `usable` most recently added destinations (list head,
        // so that mh gives them slots even when the table is smaller than the list) by editing
        // in a threshold of 1 and binding one connection.
        let key = t.service(sid).map(|s| s.key).expect("service");
        for (i, &id) in ids.iter().rev().enumerate() {
            let mut cfg = t.dests[id].cfg;
            if i < usable {
                cfg.weight = cfg.weight.max(1);
                cfg.u_threshold = 0;
            } else {
                cfg.u_threshold = 1;
            }
            cfg.l_threshold = 0;
            t.edit_dest(&key, cfg).expect("edit");
            if i >= usable {
                if let Some(d) = t.dests.get_mut(id) {
                    d.bind_conn(false, true);
                }
                t.load_changed(id);
            }
        }
        let mut rng = Rng(7);
        let mut k = 0u64;
        let label = format!("{}-{usable}-of", kind.name());
        group.bench_with_input(BenchmarkId::new(label, n), &n, |b, _| {
            b.iter(|| {
                k = k.wrapping_add(1);
                black_box(t.schedule(sid, &flow(k), Time(k), &mut rng))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, worst);
criterion_main!(benches);
