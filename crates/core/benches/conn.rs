//! Connection-table benchmarks at 1 M and 10 M entries: look-up latency and throughput, timer
//! restart, the per-packet path, insert and expiry, plus the measured bytes per entry.
//!
//! Run once with short times on a shared machine:
//! `cargo bench -p rvs-core --bench conn -- --warm-up-time 1 --measurement-time 3`
//!
//! # Why the keys are computed, not loaded
//!
//! A data plane has the packet's tuple in L1 when it looks the flow up. Reading keys from a big
//! array in random order would add a cache (and TLB) miss per look-up that the data plane does
//! not pay, so the key of step `k` is computed in registers: a full-period LCG over `0..N`
//! gives a random-looking visiting order (not a constant stride a prefetcher could follow), and
//! a bijective scramble of the index gives the client address. Entry `i` is the `i`-th
//! inserted, so on the freshly filled table its id is `ConnId(i)`.
//!
//! # Latency versus throughput
//!
//! - *latency* benchmarks chain each look-up on the previous result: the next key depends,
//!   through an opaque zero, on a field read from the entry found (its client port), as a data
//!   plane reads the entry it looked up. Chaining on the id alone would not do: the CPU predicts
//!   the key comparison and starts the next look-up before the entry arrives. This is the cost
//!   of one look-up in isolation.
//! - *batch* benchmarks do 32 independent look-ups per iteration, as a data plane working
//!   through a batch of received frames would; out-of-order execution overlaps their misses.
//!   Criterion's time is per iteration: divide by 32 (the `thrpt` line gives look-ups/s).
//!
//! # Clock
//!
//! Times are the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time:
//! the machine this was written on is shared by several busy builds, and wall time then counts
//! the time the thread waits for a core. Other processes still compete for the shared cache,
//! so a quiet machine gives lower numbers. Set `RVS_BENCH_WALL=1` for wall-clock time.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rvs_core::conn::{
    ConnId, ConnSysctls, ConnTable, Direction, Expired, HashSeed, InKey, NewConn, OutKey, Segment,
    TcpFlags,
};
use rvs_core::{Duration, ServiceTable, Time};

const SEED: HashSeed = HashSeed([
    0x9e37_79b9_7f4a_7c15,
    0xbf58_476d_1ce4_e5b9,
    0x94d0_49bb_1331_11eb,
    0x2545_f491_4f6c_dd1d,
]);

/// Look-ups per iteration of the batch benchmarks.
const BATCH: usize = 32;
/// Entries taken out and put back by the insert and expiry benchmarks per round.
const ROUND: usize = 100_000;
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// Client tuple `i`: the address is a bijective scramble of `i` (so tuples are unique), the
/// port a cheap function of it. Salt 0 is the table's content, other salts give disjoint sets
/// (the top byte of the address differs).
#[inline(always)]
fn key(i: u32, salt: u32) -> (Ipv4Addr, u16) {
    let a = i.wrapping_mul(0x9e37_79b1).rotate_left(7) ^ 0x5bd1_e995;
    let p = 1024 + ((i.wrapping_mul(0x85eb_ca6b) >> 16) % 60_000) as u16;
    (Ipv4Addr::from(a ^ salt), p)
}

/// Real server of a client tuple (NAT replies come from it).
#[inline(always)]
fn rs_of(port: u16) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 0, (port % 200) as u8)
}

/// Full-period LCG over `0..N` (Hull–Dobell: `N` = 2^a·5^b, `A - 1` divisible by 4 and 5, `C`
/// coprime to `N`). `N` is a constant so `%` is a multiplication.
#[inline(always)]
fn step<const N: u64>(i: u32) -> u32 {
    const A: u64 = 1 + 20 * 12_345;
    ((A * u64::from(i) + 7) % N) as u32
}

/// A second full-period LCG, for the per-packet benchmark: visiting entries in the same order
/// as the timer-restart benchmark before it would find them linked to their order neighbours
/// in the wheel lists (an eager restart relinks each entry next to the previous one), so
/// unlinking one would pull the next into cache, a prefetch real traffic does not give.
#[inline(always)]
fn step2<const N: u64>(i: u32) -> u32 {
    const A: u64 = 1 + 20 * 777;
    ((A * u64::from(i) + 3) % N) as u32
}

/// Opaque function of the entry `r` found, for chaining look-ups.
#[inline(always)]
fn dep(ct: &ConnTable, r: Option<ConnId>) -> u32 {
    r.and_then(|id| ct.get(id))
        .map_or(1, |c| u32::from(c.cport()))
}

fn new_conn(k: &(Ipv4Addr, u16), timeout: Duration) -> NewConn<'static> {
    let mut n = NewConn::new(
        6,
        IpAddr::V4(k.0),
        k.1,
        IpAddr::V4(VIP),
        80,
        IpAddr::V4(rs_of(k.1)),
        80,
    );
    n.timeout = timeout;
    n
}

/// Thread CPU time in ns (`CLOCK_THREAD_CPUTIME_ID`), or wall time since an arbitrary point
/// with `RVS_BENCH_WALL=1`.
fn clock_ns() -> u64 {
    static WALL: std::sync::OnceLock<Option<Instant>> = std::sync::OnceLock::new();
    let wall = WALL.get_or_init(|| std::env::var_os("RVS_BENCH_WALL").map(|_| Instant::now()));
    if let Some(t0) = wall {
        return t0.elapsed().as_nanos() as u64;
    }
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Time elapsed on [`clock_ns`] since `t0`.
fn since(t0: u64) -> std::time::Duration {
    std::time::Duration::from_nanos(clock_ns().saturating_sub(t0))
}

/// Criterion measurement on [`clock_ns`].
struct CpuTime;

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = std::time::Duration;
    fn start(&self) -> u64 {
        clock_ns()
    }
    fn end(&self, t0: u64) -> std::time::Duration {
        since(t0)
    }
    fn add(&self, a: &Self::Value, b: &Self::Value) -> Self::Value {
        *a + *b
    }
    fn zero(&self) -> Self::Value {
        std::time::Duration::ZERO
    }
    fn to_f64(&self, v: &Self::Value) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &NsFormatter
    }
}

/// Formats nanoseconds like criterion's wall-time formatter (elements/s for throughput).
struct NsFormatter;

impl ValueFormatter for NsFormatter {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if ns < 1e3 {
            (1.0, "ns")
        } else if ns < 1e6 {
            (1e-3, "µs")
        } else if ns < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        for v in values {
            *v *= factor;
        }
        unit
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let n = match *t {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) | Throughput::Elements(n) => n,
        } as f64;
        for v in values {
            *v = n * 1e9 / *v / 1e6;
        }
        "M/s"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn bench_size<const N: u64>(c: &mut Criterion<CpuTime>) {
    let n = N as usize;
    let mut svc = ServiceTable::new();
    let now = Time::from_secs(1_000);
    let long = Duration::from_secs(900);
    // Exactly the capacity the table holds, so bytes/entry is what a full table costs.
    let mut ct = ConnTable::with_capacity(SEED, now, n);
    let t0 = clock_ns();
    for i in 0..n as u32 {
        let id = ct.insert(&new_conn(&key(i, 0), long), now, &mut svc);
        assert_eq!(id.ok(), Some(ConnId(i)));
    }
    let fill = since(t0);
    let bytes = ct.memory_bytes();
    println!(
        "conn/{n}: filled in {:.2?} ({:.0} ns/insert, growing nothing); {} bytes total, \
         {:.1} bytes/entry (entry {} B + indexes, address pool, timer wheel)",
        fill,
        fill.as_nanos() as f64 / n as f64,
        bytes,
        bytes as f64 / n as f64,
        core::mem::size_of::<rvs_core::conn::Conn>(),
    );
    let vip = IpAddr::V4(VIP);
    let zero = black_box(0u32);

    let mut g = c.benchmark_group(format!("conn/{n}"));
    g.sample_size(10);

    g.bench_function("lookup_in hit latency", |b| {
        let mut i = 0u32;
        b.iter(|| {
            let (a, p) = key(i, 0);
            let r = ct.lookup_in(6, &IpAddr::V4(a), p, &vip, 80);
            i = step::<N>(i) ^ (dep(&ct, r) & zero);
            r
        })
    });
    g.bench_function("lookup_out hit latency", |b| {
        let mut i = 0u32;
        b.iter(|| {
            let (a, p) = key(i, 0);
            let r = ct.lookup_out(6, &IpAddr::V4(rs_of(p)), 80, &IpAddr::V4(a), p);
            i = step::<N>(i) ^ (dep(&ct, r) & zero);
            r
        })
    });
    g.bench_function("lookup_in miss latency", |b| {
        let mut i = 0u32;
        b.iter(|| {
            let (a, p) = key(i, 0x8000_0000);
            let r = ct.lookup_in(6, &IpAddr::V4(a), p, &vip, 80);
            i = step::<N>(i) ^ (r.map_or(0, |c| c.0 | 1) & zero);
            r
        })
    });

    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("lookup_in hit batch x32 (independent)", |b| {
        let mut i = 0u32;
        b.iter(|| {
            let mut acc = 0u32;
            for _ in 0..BATCH {
                let (a, p) = key(i, 0);
                i = step::<N>(i);
                acc ^= ct
                    .lookup_in(6, &IpAddr::V4(a), p, &vip, 80)
                    .map_or(1, |c| c.0);
            }
            acc
        })
    });
    g.bench_function("lookup_out hit batch x32 (independent)", |b| {
        let mut i = 0u32;
        b.iter(|| {
            let mut acc = 0u32;
            for _ in 0..BATCH {
                let (a, p) = key(i, 0);
                i = step::<N>(i);
                acc ^= ct
                    .lookup_out(6, &IpAddr::V4(rs_of(p)), 80, &IpAddr::V4(a), p)
                    .map_or(1, |c| c.0);
            }
            acc
        })
    });
    g.bench_function("lookup_in hit batch x32 (lookup_in_batch)", |b| {
        let mut i = 0u32;
        let mut keys = [InKey {
            protocol: 6,
            caddr: vip,
            cport: 0,
            vaddr: vip,
            vport: 80,
        }; BATCH];
        let mut out = [None; BATCH];
        b.iter(|| {
            for k in keys.iter_mut() {
                let (a, p) = key(i, 0);
                i = step::<N>(i);
                k.caddr = IpAddr::V4(a);
                k.cport = p;
            }
            ct.lookup_in_batch(&keys, &mut out);
            out.iter().fold(0, |acc, r| acc ^ r.map_or(1, |c| c.0))
        })
    });
    g.bench_function("lookup_out hit batch x32 (lookup_out_batch)", |b| {
        let mut i = 0u32;
        let mut keys = [OutKey {
            protocol: 6,
            saddr: vip,
            sport: 80,
            daddr: vip,
            dport: 0,
        }; BATCH];
        let mut out = [None; BATCH];
        b.iter(|| {
            for k in keys.iter_mut() {
                let (a, p) = key(i, 0);
                i = step::<N>(i);
                k.saddr = IpAddr::V4(rs_of(p));
                k.daddr = IpAddr::V4(a);
                k.dport = p;
            }
            ct.lookup_out_batch(&keys, &mut out);
            out.iter().fold(0, |acc, r| acc ^ r.map_or(1, |c| c.0))
        })
    });
    g.throughput(Throughput::Elements(1));

    // Restart the timer of a random entry that is not in cache (the look-up did not just touch
    // it): the pessimistic case. Time moves 1 ms every 1024 restarts.
    g.bench_function("restart_timer (random cold entry)", |b| {
        let mut i = 0u32;
        let mut k = 0u64;
        b.iter(|| {
            k += 1;
            let id = ConnId(i);
            i = step::<N>(i);
            ct.restart_timer(id, now + Duration::from_millis(k >> 10))
        })
    });

    // What a data plane does per packet of a known TCP connection: look-up, count, state
    // machine + timer restart.
    let sys = ConnSysctls::default();
    let ack = Segment::Tcp(TcpFlags::from_byte(0x10));
    g.bench_function(
        "per packet: lookup_in + in_pkts + on_packet (latency)",
        |b| {
            let mut i = 0u32;
            let mut k = 0u64;
            b.iter(|| {
                k += 1;
                let (a, p) = key(i, 0);
                let id = ct.lookup_in(6, &IpAddr::V4(a), p, &vip, 80);
                let mut next = 1;
                if let Some(id) = id {
                    if let Some(c) = ct.get_mut(id) {
                        c.in_pkts += 1;
                    }
                    let t = now + Duration::from_millis(k >> 10);
                    let o = ct.on_packet(id, Direction::Input, ack, &sys, t, &mut svc);
                    next = u32::from(o.map_or(0, |o| o.new_state));
                }
                i = step2::<N>(i) ^ (next & zero);
            })
        },
    );

    // Insert into the table at size: a round first takes up to ROUND random entries out
    // (untimed), then times as many inserts of new tuples, then takes those out and puts the originals back
    // (untimed), so the table stays between N - ROUND and N entries and never grows.
    let mut ids: Vec<ConnId> = (0..n as u32).map(ConnId).collect();
    let mut scratch: Vec<ConnId> = Vec::with_capacity(ROUND);
    let mut fresh = 0u32;
    let mut pick = 0u32;
    let mut picked: Vec<u32> = Vec::with_capacity(ROUND);
    g.bench_function("insert (table at size)", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let batch = left.min(ROUND);
                take_out::<N>(&mut ct, &mut svc, batch, &mut picked, &mut pick, &ids, now);
                let t = clock_ns();
                for _ in 0..batch {
                    fresh = fresh.wrapping_add(1);
                    let id = ct.insert(&new_conn(&key(fresh, 0x4000_0000), long), now, &mut svc);
                    scratch.push(id.expect("insert"));
                }
                total += since(t);
                for id in scratch.drain(..) {
                    ct.remove_and_unbind(id, now, &mut svc);
                }
                put_back(&mut ct, &mut svc, &picked, &mut ids, now);
                left -= batch;
            }
            total
        })
    });

    // Expiry: per round, up to ROUND entries are swapped for ones with a 500 ms timeout (untimed),
    // the clock moves 1 s, and `expire` with a budget of 1 000 per call removes them (timer wheel pop,
    // unhash, free), timed per expired entry. The worst single `expire` call is the latency a
    // data-plane loop calling it between batches would see.
    let mut events: Vec<Expired> = Vec::with_capacity(ROUND);
    let mut clock = now + Duration::from_secs(1);
    let mut calls: Vec<std::time::Duration> = Vec::new();
    g.bench_function("expire (per expired entry, budget 1000/call)", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let batch = left.min(ROUND);
                take_out::<N>(&mut ct, &mut svc, batch, &mut picked, &mut pick, &ids, now);
                for _ in 0..batch {
                    fresh = fresh.wrapping_add(1);
                    let k = key(fresh, 0x4000_0000);
                    let id = ct.insert(&new_conn(&k, Duration::from_millis(500)), clock, &mut svc);
                    id.expect("insert");
                }
                clock = clock + Duration::from_secs(1);
                events.clear();
                let mut more = true;
                while more {
                    let t = clock_ns();
                    more = ct.expire(clock, 1_000, &mut svc, &mut events);
                    let d = since(t);
                    total += d;
                    calls.push(d);
                }
                assert_eq!(events.len(), batch);
                put_back(&mut ct, &mut svc, &picked, &mut ids, clock);
                left -= batch;
            }
            total
        })
    });
    g.finish();
    calls.sort_unstable();
    let pct = |p: f64| {
        calls
            .get(((calls.len() as f64 * p) as usize).min(calls.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "conn/{n}: expire() calls (budget 1000): {} calls, median {:.2?}, p99 {:.2?}, \
         p99.9 {:.2?}, max {:.2?}; {} entries after the run, {:.1} bytes/entry",
        calls.len(),
        pct(0.5),
        pct(0.99),
        pct(0.999),
        pct(1.0),
        ct.len(),
        ct.memory_bytes() as f64 / ct.len().max(1) as f64
    );
}

/// Take `count` pseudo-random table entries out (their indexes go to `picked`).
fn take_out<const N: u64>(
    ct: &mut ConnTable,
    svc: &mut ServiceTable,
    count: usize,
    picked: &mut Vec<u32>,
    pick: &mut u32,
    ids: &[ConnId],
    now: Time,
) {
    picked.clear();
    for _ in 0..count {
        *pick = step::<N>(*pick);
        picked.push(*pick);
        ct.remove_and_unbind(ids[*pick as usize], now, svc);
    }
}

/// Put the entries `picked` back (new ids go to `ids`), armed 900 s after `at`.
fn put_back(
    ct: &mut ConnTable,
    svc: &mut ServiceTable,
    picked: &[u32],
    ids: &mut [ConnId],
    at: Time,
) {
    for &j in picked {
        ids[j as usize] = ct
            .insert(&new_conn(&key(j, 0), Duration::from_secs(900)), at, svc)
            .expect("insert");
    }
}

fn benches(c: &mut Criterion<CpuTime>) {
    bench_size::<1_000_000>(c);
    bench_size::<10_000_000>(c);
}

criterion_group! {
    name = conn;
    config = Criterion::default().with_measurement(CpuTime);
    targets = benches
}
criterion_main!(conn);
