//! The benches' packet sink on this kernel: the verifier accepts it; it counts and drops what
//! a director forwarded into the real servers' prefix, and passes everything else (root).

use std::net::Ipv4Addr;
use std::os::fd::AsFd;

use rvs_bpf::sink::{Counts, Sink};
use rvs_bpf::test_run::{self, verdict};
use rvs_bpf::trafficgen::{frame, Proto, Spec, Vary};

fn spec(daddr: Ipv4Addr, proto: Proto, dport: u16) -> Spec {
    Spec {
        dst_mac: [2, 0, 0, 0, 0, 1],
        src_mac: [2, 0, 0, 0, 0, 2],
        saddr: Ipv4Addr::new(10, 1, 0, 2),
        daddr,
        proto,
        sport: 10000,
        dport,
        vary: Vary::SourcePort { count: 1 },
    }
}

#[test]
fn the_sink_counts_what_reached_the_real_servers_and_passes_the_rest() {
    if !rvs_require::root() {
        return;
    }
    let sink = match Sink::load(Ipv4Addr::new(10, 2, 0, 0), 24) {
        Ok(s) => s,
        Err(e @ rvs_bpf::xdp::Error::Unavailable(_)) => return rvs_require::unmet(e),
        Err(e) => panic!("the kernel refused the sink: {e}"),
    };
    let fd = sink.program().unwrap().fd().unwrap();
    let run = |f: &[u8]| test_run::xdp(fd.as_fd(), f, 0).unwrap().retval;
    let rs = Ipv4Addr::new(10, 2, 0, 11);
    let vip = Ipv4Addr::new(10, 100, 0, 1);
    // Forwarded to a real server: counted and dropped.
    assert_eq!(run(&frame(&spec(rs, Proto::Udp, 9))), verdict::DROP);
    assert_eq!(run(&frame(&spec(rs, Proto::Udp, 9))), verdict::DROP);
    assert_eq!(run(&frame(&spec(rs, Proto::TcpSyn, 80))), verdict::DROP);
    // Not rewritten (still to the VIP), another port, not IPv4: passed, not counted.
    assert_eq!(run(&frame(&spec(vip, Proto::Udp, 9))), verdict::PASS);
    assert_eq!(run(&frame(&spec(rs, Proto::Udp, 53))), verdict::PASS);
    let mut arp = frame(&spec(rs, Proto::Udp, 9));
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(run(&arp), verdict::PASS);
    assert_eq!(sink.counts().unwrap(), Counts { udp9: 2, tcp80: 1 });
}
