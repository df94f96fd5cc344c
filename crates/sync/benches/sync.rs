//! What connection synchronisation costs the master: the same 10 000 new TCP connections
//! (SYN, ACK, one data segment each: the third packet announces the connection) through a
//! director with no sync daemon, and with a master daemon's sink installed, as the engine
//! installs it (the packet path encodes each announced record into its datagram; the engine
//! collects the finished datagrams and hands their buffers back); and what a backup pays to
//! decode and apply them.
//!
//! `cargo bench -p rvs-sync --bench sync`. Prints the bytes on the wire per connection once.
//! `RVS_SYNC_BENCH_ONCE=none|master` runs the 10 000 connections once and exits, for
//! `valgrind --tool=callgrind` (instruction counts do not depend on the machine's load).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rvs_core::conn::state::TcpFlags;
use rvs_core::conn::{HashSeed, Segment};
use rvs_core::director::Packet;
use rvs_core::{
    DestConfig, Director, FwdMethod, Protocol, RandomSource, SchedKind, ServiceConfig, ServiceKey,
    Time,
};
use rvs_sync::{MasterSink, RxStats, Version};

const CONNS: u32 = 10_000;

struct Zero;
impl RandomSource for Zero {
    fn below(&mut self, _n: u32) -> u32 {
        0
    }
}

fn vip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
}

fn director(master: bool) -> Director {
    let mut d = Director::new(HashSeed([7, 7, 7, 7]), Time(0));
    let k = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: vip(),
        port: 80,
    };
    d.table
        .add_service(k, ServiceConfig::new(SchedKind::Rr, k.family()), Time(0))
        .unwrap();
    for i in 0..4u8 {
        let rs = IpAddr::V4(Ipv4Addr::new(10, 2, 0, 11 + i));
        d.table
            .add_dest(&k, DestConfig::new(rs, 80).fwd(FwdMethod::Masq), Time(0))
            .unwrap();
    }
    if master {
        d.sync.set_sink(Box::new(sink()));
    }
    d
}

/// The sink the master daemon installs (one sync port, 1472-byte messages).
fn sink() -> MasterSink {
    MasterSink::new(Version::V1, 1, 1472, 100_000, 1, 20)
}

fn pkt(i: u32, f: TcpFlags) -> Packet<'static> {
    Packet {
        fwmark: 0,
        proto: Protocol::Tcp,
        saddr: IpAddr::V4(Ipv4Addr::from(0x0b00_0000 | (i >> 10))),
        sport: 1024 + (i & 1023) as u16,
        daddr: vip(),
        dport: 80,
        seg: Segment::Tcp(f),
        len: 60,
        payload: &[],
    }
}

const SYN: TcpFlags = TcpFlags {
    syn: true,
    fin: false,
    ack: false,
    rst: false,
};
const ACK: TcpFlags = TcpFlags {
    syn: false,
    fin: false,
    ack: true,
    rst: false,
};

/// Run the connections; with a master sink, collect the finished datagrams every 64
/// connections (the engine collects every 10 ms) and hand their buffers back. Returns the
/// bytes of the datagrams and their number.
fn run(d: &mut Director) -> (usize, usize) {
    let mut rng = Zero;
    let mut out = Vec::new();
    let (mut bytes, mut n) = (0, 0);
    for i in 0..CONNS {
        let now = Time(u64::from(i) / 50);
        for f in [SYN, ACK, ACK] {
            black_box(d.packet_in(&pkt(i, f), now, &mut rng));
        }
        if i % 64 == 63 || i == CONNS - 1 {
            if let Some(s) = d.sync.sink_mut::<MasterSink>() {
                // The last round flushes the partial message.
                let at = if i == CONNS - 1 { now.0 + 1000 } else { now.0 };
                s.collect(at, &mut out);
                for g in out.drain(..) {
                    bytes += g.bytes.len();
                    n += 1;
                    s.recycle(g);
                }
            }
        }
    }
    (bytes, n)
}

fn bench(c: &mut Criterion) {
    if let Ok(mode) = std::env::var("RVS_SYNC_BENCH_ONCE") {
        let mut d = director(mode == "master");
        let (bytes, n) = run(&mut d);
        println!("{mode}: {bytes} bytes in {n} datagrams");
        return;
    }
    // Bytes per connection, once.
    let mut d = director(true);
    let (bytes, n) = run(&mut d);
    println!(
        "sync: {CONNS} connections → {bytes} bytes in {n} messages ({:.1} bytes per connection)",
        bytes as f64 / f64::from(CONNS)
    );

    let mut g = c.benchmark_group("master");
    g.throughput(Throughput::Elements(u64::from(CONNS)));
    g.sample_size(20);
    g.bench_function(
        "10k new TCP connections, 3 packets each, no sync daemon",
        |b| {
            b.iter_batched(
                || director(false),
                |mut d| run(&mut d),
                BatchSize::PerIteration,
            )
        },
    );
    g.bench_function(
        "10k new TCP connections, 3 packets each, master daemon + encode",
        |b| {
            b.iter_batched(
                || director(true),
                |mut d| run(&mut d),
                BatchSize::PerIteration,
            )
        },
    );
    g.finish();

    // The backup: decode and apply the messages the master produced.
    let mut m = director(true);
    let mut msgs = Vec::new();
    {
        let mut rng = Zero;
        for i in 0..CONNS {
            for f in [SYN, ACK, ACK] {
                m.packet_in(&pkt(i, f), Time(0), &mut rng);
            }
        }
        let mut out = Vec::new();
        if let Some(s) = m.sync.sink_mut::<MasterSink>() {
            s.collect(10_000, &mut out);
        }
        msgs.extend(out.into_iter().map(|g| g.bytes));
    }
    let mut g = c.benchmark_group("backup");
    g.throughput(Throughput::Elements(u64::from(CONNS)));
    g.sample_size(20);
    g.bench_function("decode + apply 10k synced connections", |b| {
        b.iter_batched(
            || director(false),
            |mut d| {
                let mut st = RxStats::default();
                let mut recs = Vec::new();
                for x in &msgs {
                    st.decode(x, 1, |c| recs.push(c));
                }
                for r in &recs {
                    let _ = black_box(d.apply_synced(r, false, Time(0)));
                }
                d
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
