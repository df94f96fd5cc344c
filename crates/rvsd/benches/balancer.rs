//! The socket proxy's per-connection cost in the balancer (route lookup, shard lock,
//! scheduling, connection events), and what two threads get from per-service shards.
//!
//! `cargo bench -p rvsd --bench balancer -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use rvs_core::Time;
use rvs_proxy::{Balancer, CloseReason, FlowEvent, FlowInfo, Protocol, Traffic};
use rvsd::balancer::DirectorBalancer;
use rvsd::clock::Clock;
use rvsd::state::{Planes, State};

/// A state with two proxied services, each over two NAT real servers.
fn table() -> State {
    let mut st = State::new(Time(0), Planes { packet: false });
    for cmd in [
        "-A -t 127.0.0.1:80 -s wlc",
        "-a -t 127.0.0.1:80 -r 127.0.0.11:8081 -m",
        "-a -t 127.0.0.1:80 -r 127.0.0.12:8081 -m",
        "-A -t 127.0.0.1:81 -s wlc",
        "-a -t 127.0.0.1:81 -r 127.0.0.11:8082 -m",
        "-a -t 127.0.0.1:81 -r 127.0.0.12:8082 -m",
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

/// One whole proxied TCP connection as the proxy reports it.
fn connection(b: &DirectorBalancer, n: u64, vport: u16) {
    let flow = FlowInfo {
        protocol: Protocol::Tcp,
        // Distinct clients so every connection is a new entry; client ports from 1024 (the
        // kernel never schedules a connection from port 20, FTP data).
        client: std::net::SocketAddr::new(
            std::net::Ipv4Addr::from(0x0a00_0000 | ((n / 60_000) as u32 & 0xff_ffff)).into(),
            1024 + (n % 60_000) as u16,
        ),
        vip: std::net::SocketAddr::new([127, 0, 0, 1].into(), vport),
    };
    let be = b.open(&flow).expect("scheduled");
    let t = Traffic {
        in_packets: 1,
        in_bytes: 100,
        out_packets: 1,
        out_bytes: 200,
    };
    for ev in [
        FlowEvent::Connected,
        FlowEvent::Traffic(t),
        FlowEvent::ClientFin,
        FlowEvent::ServerFin,
        FlowEvent::Closed(CloseReason::Normal),
    ] {
        b.event(be.handle, ev);
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("balancer");
    let st = table();
    let b = DirectorBalancer {
        routes: st.routes.clone(),
        clock: Clock::new(),
    };
    let mut n = 0u64;
    g.bench_function("connection_one_thread", |bench| {
        bench.iter(|| {
            n += 1;
            connection(&b, n, 80);
        })
    });
    // Two threads, each running connections; per connection wall time of the pair.
    for (name, ports) in [
        ("connection_two_threads_same_service", [80u16, 80]),
        ("connection_two_threads_two_services", [80u16, 81]),
    ] {
        let st = table();
        let b = Arc::new(DirectorBalancer {
            routes: st.routes.clone(),
            clock: Clock::new(),
        });
        let base = Arc::new(std::sync::atomic::AtomicU64::new(1 << 30));
        g.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let per = iters.div_ceil(2);
                let start = Instant::now();
                let hs: Vec<_> = ports
                    .iter()
                    .map(|&port| {
                        let b = b.clone();
                        let first = base.fetch_add(per, std::sync::atomic::Ordering::Relaxed);
                        std::thread::spawn(move || {
                            for i in 0..per {
                                connection(&b, first + i, port);
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().expect("bench thread");
                }
                start.elapsed().div_f64(2.0 * per as f64 / iters as f64)
            })
        });
        drop(st);
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
