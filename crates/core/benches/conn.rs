//! Connection-table benchmarks: insert, lookup (hits in random order), timer restart and expiry
//! at 1 M and 10 M entries, plus the measured bytes per entry.
//!
//! Run once with short times on a shared machine:
//! `cargo bench -p rvs-core --bench conn -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use rvs_core::conn::{ConnId, ConnTable, Expired, HashSeed, NewConn};
use rvs_core::{Duration, ServiceTable, Time};

const SEED: HashSeed = HashSeed([
    0x9e37_79b9_7f4a_7c15,
    0xbf58_476d_1ce4_e5b9,
    0x94d0_49bb_1331_11eb,
    0x2545_f491_4f6c_dd1d,
]);

/// splitmix64: deterministic pseudo-random keys without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Client tuples: a random IPv4 address and port each, unique by construction (the address is
/// a bijective scramble of the index).
fn keys(n: usize, salt: u64) -> Vec<(Ipv4Addr, u16)> {
    let mut r = Rng(salt);
    (0..n as u32)
        .map(|i| {
            let a = i.wrapping_mul(0x9e37_79b1).rotate_left(7) ^ 0x5bd1_e995;
            (Ipv4Addr::from(a), 1024 + (r.next() % 60_000) as u16)
        })
        .collect()
}

fn new_conn(k: &(Ipv4Addr, u16)) -> NewConn<'static> {
    let mut n = NewConn::new(
        6,
        IpAddr::V4(k.0),
        k.1,
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        80,
        IpAddr::V4(Ipv4Addr::new(10, 1, 0, (k.1 % 200) as u8)),
        80,
    );
    n.timeout = Duration::from_secs(900);
    n
}

fn bench_size(c: &mut Criterion, n: usize) {
    let mut svc = ServiceTable::new();
    let now = Time::from_secs(1_000);
    let ks = keys(n, 1);
    // Room for the table plus the entries the insert/expire benchmarks add temporarily.
    let mut ct = ConnTable::with_capacity(SEED, now, n + 1_000_000);
    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for k in &ks {
        ids.push(ct.insert(&new_conn(k), now, &mut svc).expect("insert"));
    }
    let fill = t0.elapsed();
    let bytes = ct.memory_bytes();
    println!(
        "conn/{n}: filled in {:.2?} ({:.0} ns/insert); {} bytes total, {:.1} bytes/entry \
         (entry {} B + indexes/pool/wheel; capacity reserved for {} entries)",
        fill,
        fill.as_nanos() as f64 / n as f64,
        bytes,
        bytes as f64 / n as f64,
        core::mem::size_of::<rvs_core::conn::Conn>(),
        n + 1_000_000,
    );

    let mut order: Vec<usize> = (0..n).collect();
    let mut r = Rng(7);
    for i in (1..n).rev() {
        let j = (r.next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let vip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

    let mut g = c.benchmark_group(format!("conn/{n}"));
    g.sample_size(10);

    g.bench_function("lookup_in hit (random order)", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let k = &ks[order[i]];
            i = if i + 1 == n { 0 } else { i + 1 };
            black_box(ct.lookup_in(6, &IpAddr::V4(k.0), k.1, &vip, 80))
        })
    });

    g.bench_function("lookup_out hit (random order)", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let k = &ks[order[i]];
            i = if i + 1 == n { 0 } else { i + 1 };
            let rs = IpAddr::V4(Ipv4Addr::new(10, 1, 0, (k.1 % 200) as u8));
            black_box(ct.lookup_out(6, &rs, 80, &IpAddr::V4(k.0), k.1))
        })
    });

    g.bench_function("lookup_in miss", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let k = &ks[order[i]];
            i = if i + 1 == n { 0 } else { i + 1 };
            black_box(ct.lookup_in(6, &IpAddr::V4(k.0), k.1 ^ 0x8000, &vip, 80))
        })
    });

    g.bench_function("restart_timer (per packet)", |b| {
        let mut i = 0usize;
        let mut t = now;
        b.iter(|| {
            let id = ids[order[i]];
            i = if i + 1 == n { 0 } else { i + 1 };
            t = t + Duration::from_millis(1);
            black_box(ct.restart_timer(id, t))
        })
    });

    // Insert into the full table: time only the inserts, then take the extra entries out again.
    let extra = keys(1_000_000, 99)
        .into_iter()
        .map(|(a, p)| (Ipv4Addr::from(u32::from(a) ^ 0xff00_0000), p))
        .collect::<Vec<_>>();
    let mut scratch: Vec<ConnId> = Vec::with_capacity(extra.len());
    g.bench_function("insert (table at size)", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let batch = left.min(extra.len());
                let t = Instant::now();
                for k in &extra[..batch] {
                    scratch.push(ct.insert(&new_conn(k), now, &mut svc).expect("insert"));
                }
                total += t.elapsed();
                for id in scratch.drain(..) {
                    ct.remove_and_unbind(id, now, &mut svc);
                }
                left -= batch;
            }
            total
        })
    });

    // Expiry: `batch` entries fall due at once and `expire` removes them (timer wheel pop +
    // unhash + free), per expired entry; the rest of the table is armed 900 s out.
    let mut events: Vec<Expired> = Vec::with_capacity(100_000);
    let mut clock = now + Duration::from_secs(1);
    g.bench_function("expire (per expired entry)", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let batch = left.min(100_000);
                for k in &extra[..batch] {
                    let mut nc = new_conn(k);
                    nc.timeout = Duration::from_millis(500);
                    scratch.push(ct.insert(&nc, clock, &mut svc).expect("insert"));
                }
                scratch.clear();
                clock = clock + Duration::from_secs(1);
                events.clear();
                let t = Instant::now();
                while ct.expire(clock, 10_000, &mut svc, &mut events) {}
                total += t.elapsed();
                left -= batch;
            }
            total
        })
    });
    g.finish();
    println!(
        "conn/{n}: {} entries after the run, {} bytes/entry",
        ct.len(),
        ct.memory_bytes() / ct.len().max(1)
    );
}

fn benches(c: &mut Criterion) {
    bench_size(c, 1_000_000);
    bench_size(c, 10_000_000);
}

criterion_group!(conn, benches);
criterion_main!(conn);
