//! What one sweep of the XDP fast path's table costs (`XdpSweep::now`): the sweep every
//! `rvsadm -L` that shows counters or timers, every `/metrics` scrape and every `/api/status`
//! runs before it answers, and the syncer thread every 100 ms — at 10 000, 100 000 and
//! 1 000 000 entries in the program's real flow map. Root (the program's maps are created in
//! the kernel; nothing is attached). `cargo bench -p rvsd --bench xdp_sweep`.
//!
//! The table: a packet-plane state with a UDP NAT service of two real servers and N UDP
//! connections, each made by rvs-core from a distinct client's first datagram, each with the
//! entry the plane's offer for it installs (the client's direction, the NAT rewrite), written
//! into the map by the same code as the syncer's. No traffic between sweeps: a sweep reads
//! each of the N entries from the map (one `bpf(BPF_MAP_LOOKUP_ELEM)` each), finds no new
//! packets, and checks under the shard's lock that each entry still holds. That is the floor
//! of a sweep; entries with new traffic add feeding it to rvs-core (counters, timer). Wall
//! time: the sweep is a system call per entry, so the thread's CPU time would leave out
//! nothing a request waits for, and on a loaded machine compare the sizes within one run.
//!
//! `xdp_sweep_longest_lock_wait/entries_N` is not a sweep's time: it is the longest another thread waited for
//! the packet shard's lock while one sweep ran — what a packet worker, which takes that lock
//! for every frame the program leaves to userspace (new connections, SYN/FIN/RST), can be
//! held up by a sweep.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use rvs_bpf::xdp::FastPath;
use rvs_core::conn::state::Direction;
use rvs_core::conn::Segment;
use rvs_core::{Packet, Protocol, Time, Verdict};
use rvs_packet::fastpath::{Offer, OfferAction};
use rvsd::clock::Clock;
use rvsd::packet_plane::XdpSweep;
use rvsd::shard::ShardRef;
use rvsd::state::{Planes, State};

const VIP: [u8; 4] = [10, 100, 0, 1];
const PORT: u16 = 9;

/// A packet-plane state with the UDP NAT service `10.100.0.1:9` over two real servers.
fn table() -> State {
    let mut st = State::new(Time(0), Planes { packet: true });
    for cmd in [
        "-A -u 10.100.0.1:9 -s rr",
        "-a -u 10.100.0.1:9 -r 10.2.0.11:9 -m",
        "-a -u 10.100.0.1:9 -r 10.2.0.12:9 -m",
    ] {
        let argv: Vec<String> = std::iter::once("ipvsadm")
            .chain(cmd.split_whitespace())
            .map(String::from)
            .collect();
        let req = rvsd::rules::table_request(&argv, &rvs_ipvsadm::names::NoNames).expect(cmd);
        assert!(st.handle(&req, Time(0)).result.is_ok(), "{cmd}");
    }
    st
}

/// Client `i`: distinct addresses in 10.64.0.0/10 and ports from 1024.
fn client(i: u32) -> (IpAddr, u16) {
    let a = 0x0a40_0000 | (i >> 4);
    (
        IpAddr::from(a.to_be_bytes()),
        1024 + (i & 0xf) as u16 * 1000,
    )
}

/// `n` connections in the packet shard's director, each from a client's first datagram, and
/// the offer of each (what the plane offers for the client's next datagram).
fn connections(shard: &ShardRef, clock: &Clock, n: u32) -> Vec<Offer> {
    let mut sh = shard.lock().expect("shard lock");
    let sh = &mut *sh;
    let vip = IpAddr::from(VIP);
    (0..n)
        .map(|i| {
            let (caddr, cport) = client(i);
            let pkt = Packet {
                fwmark: 0,
                proto: Protocol::Udp,
                saddr: caddr,
                sport: cport,
                daddr: vip,
                dport: PORT,
                seg: Segment::Udp,
                len: 64,
                payload: &[],
            };
            let Verdict::Forward(r) = sh.director.packet_in(&pkt, clock.now(), &mut sh.rng) else {
                panic!("datagram {i} not forwarded");
            };
            Offer {
                conn: r.conn.expect("a connection"),
                dir: Direction::Input,
                proto: 17,
                src: (caddr, cport),
                dst: (vip, PORT),
                action: OfferAction::Rewrite {
                    src: None,
                    dst: Some((r.daddr, r.dport)),
                },
                port: 0,
                in_port: 0,
                dst_mac: [2, 0, 0, 0, 2, 11],
                src_mac: [2, 0, 0, 0, 2, 1],
                max_len: 1500,
            }
        })
        .collect()
}

/// The longest a packet worker waited for the shard's lock during each of `iters` sweeps,
/// summed: a thread takes and releases the lock in a loop (as the workers do for every frame
/// the program leaves to userspace) while the sweep runs, and keeps its longest wait.
fn worker_wait(sweep: &XdpSweep, shard: &ShardRef, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let stop = AtomicBool::new(false);
        let longest = std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let mut longest = Duration::ZERO;
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    drop(shard.lock().expect("shard lock"));
                    longest = longest.max(t0.elapsed());
                    std::thread::yield_now();
                }
                longest
            });
            sweep.now();
            stop.store(true, Ordering::Relaxed);
            waiter.join().expect("waiter")
        });
        total += longest;
    }
    total
}

/// A table of `n` connections and entries, and its packet shard.
fn sweep_of(n: u32) -> (XdpSweep, ShardRef) {
    let st = table();
    let shard = st.packet_shard().expect("the packet shard").clone();
    let clock = Clock::new();
    let offers = connections(&shard, &clock, n);
    let fp = FastPath::load().expect("the XDP program (root, clang at build time)");
    let (sweep, installed) = XdpSweep::detached(fp, shard.clone(), clock, 1, offers);
    assert_eq!(installed, n as usize, "entries written");
    (sweep, shard)
}

fn bench(c: &mut Criterion) {
    let tables: Vec<(u32, XdpSweep, ShardRef)> = [10_000u32, 100_000, 1_000_000]
        .into_iter()
        .map(|n| {
            let (sweep, shard) = sweep_of(n);
            (n, sweep, shard)
        })
        .collect();
    let mut g = c.benchmark_group("xdp_sweep");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1));
    for (n, sweep, _) in &tables {
        g.throughput(Throughput::Elements(u64::from(*n)));
        g.bench_function(format!("entries_{n}"), |b| b.iter(|| sweep.now()));
    }
    g.finish();
    // Not a time per sweep: the longest wait for the shard's lock another thread saw during
    // one sweep (criterion's figure is its mean over the sweeps).
    let mut g = c.benchmark_group("xdp_sweep_longest_lock_wait");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1));
    for (n, sweep, shard) in &tables {
        g.bench_function(format!("entries_{n}"), |b| {
            b.iter_custom(|iters| worker_wait(sweep, shard, iters))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
