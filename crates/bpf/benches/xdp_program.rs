//! The XDP program's own time per packet, as the kernel measures it (`BPF_PROG_TEST_RUN`'s
//! duration: its clock around the program run, not the system call), for the packets of an
//! established flow — what `bench/packet.sh`'s "XDP program" line measures under traffic —
//! and for a packet without an entry. Root; `cargo bench -p rvs-bpf --bench xdp_program`.
//!
//! Each iteration is one run on a fresh copy of the frame (`repeat` 1: the program rewrites
//! the frame in place, so repeating on one buffer would measure the miss path after the first
//! run); the figure includes the kernel's fixed cost of timing one run.

use std::net::IpAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rvs_bpf::test_run::verdict;
use rvs_bpf::xdp::{Egress, FastPath, Flow, FlowKey};
use rvs_packet::fastpath::OfferAction;

/// The generator's spec for UDP 10.1.0.2:10000 -> 10.100.0.1:9 over `flows` source ports.
fn udp_spec(flows: u32) -> rvs_bpf::trafficgen::Spec {
    rvs_bpf::trafficgen::Spec {
        dst_mac: [2, 0, 0, 0, 0, 1],
        src_mac: [2, 0, 0, 0, 0, 2],
        saddr: "10.1.0.2".parse().unwrap(),
        daddr: "10.100.0.1".parse().unwrap(),
        proto: rvs_bpf::trafficgen::Proto::Udp,
        sport: 10000,
        dport: 9,
        vary: rvs_bpf::trafficgen::Vary::SourcePort { count: flows },
    }
}

/// A 64-byte UDP datagram 10.1.0.2:10000 -> 10.100.0.1:9 (as bench/packet.sh sends), made by
/// the benches' generator.
fn udp_frame() -> Vec<u8> {
    rvs_bpf::trafficgen::frame(&udp_spec(1))
}

fn kernel_time(fp: &mut FastPath, frame: &[u8], want: u32, iters: u64) -> Duration {
    let mut ns = 0u64;
    for _ in 0..iters {
        let r = fp.test_run(frame, 1).expect("BPF_PROG_TEST_RUN");
        assert_eq!(r.retval, want);
        ns += u64::from(r.duration_ns);
    }
    Duration::from_nanos(ns)
}

fn bench(c: &mut Criterion) {
    let mut fp = FastPath::load().expect("the XDP program (root, clang at build time)");
    let frame = udp_frame();
    // The frame is addressed to the interface it is run "in on" (else it is another host's).
    fp.set_mac(1, udp_spec(1).dst_mac)
        .expect("the MAC of ifindex 1");
    let mut g = c.benchmark_group("xdp_program");
    g.bench_function("udp_no_entry_passed", |b| {
        b.iter_custom(|iters| kernel_time(&mut fp, &frame, verdict::PASS, iters))
    });
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let key = FlowKey::new(17, (ip("10.1.0.2"), 10000), (ip("10.100.0.1"), 9));
    let egress = Egress {
        ifindex: 1,
        dst_mac: [2, 0, 0, 0, 1, 0x0b],
        src_mac: [2, 0, 0, 0, 1, 1],
        max_len: 1500,
    };
    let action = OfferAction::Rewrite {
        src: None,
        dst: Some((ip("10.2.0.11"), 9)),
    };
    // As rvsd installs it: the interface and MAC the flow's frames come in on.
    let entry = Flow::new(action, egress).arriving(1, udp_spec(1).dst_mac);
    fp.insert(&key, &entry).unwrap();
    g.bench_function("udp_nat_established", |b| {
        b.iter_custom(|iters| kernel_time(&mut fp, &frame, verdict::TX, iters))
    });
    // The reference: the benches' generator, a program of a few dozen instructions — the
    // kernel's fixed cost of timing one run is most of its figure.
    let gen = rvs_bpf::trafficgen::Generator::load(&udp_spec(256)).expect("the generator program");
    g.bench_function("reference_trivial_program", |b| {
        b.iter_custom(|iters| {
            let mut ns = 0u64;
            for _ in 0..iters {
                ns += u64::from(gen.next_frame().expect("BPF_PROG_TEST_RUN").duration_ns);
            }
            Duration::from_nanos(ns)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
