//! The benches' packet generator on this kernel: the verifier accepts it, and the frames it
//! makes carry the varied field and correct checksums (root; clang at build time).

use std::net::Ipv4Addr;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use rvs_bpf::test_run::verdict;
use rvs_bpf::trafficgen::{Generator, Proto, Spec, Vary};

fn load(spec: &Spec) -> Option<Generator> {
    if !rvs_require::root() {
        return None;
    }
    match Generator::load(spec) {
        Ok(g) => Some(g),
        Err(e @ rvs_bpf::xdp::Error::Unavailable(_)) => {
            rvs_require::unmet(e);
            None
        }
        Err(e) => panic!("the kernel refused the generator: {e}"),
    }
}

fn spec(proto: Proto, vary: Vary) -> Spec {
    Spec {
        dst_mac: [2, 0, 0, 0, 0, 1],
        src_mac: [2, 0, 0, 0, 0, 2],
        saddr: Ipv4Addr::new(10, 1, 0, 2),
        daddr: Ipv4Addr::new(10, 100, 0, 1),
        proto,
        sport: 65530,
        dport: 9,
        vary,
    }
}

/// The source address, source port and whether both checksums verify, of a generated frame.
fn inspect(frame: &[u8]) -> (Ipv4Addr, u16, bool) {
    assert_eq!(frame.len(), 60);
    let p = SlicedPacket::from_ethernet(frame).expect("a parsable frame");
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    let hdr = ip.header();
    let ip_ok = rvs_packet::checksum::checksum(hdr.slice()) == 0;
    let src = hdr.source_addr();
    let l4 = &frame[34..14 + usize::from(hdr.total_len())];
    let proto = hdr.protocol().0;
    let pseudo =
        rvs_packet::checksum::pseudo_v4(src, hdr.destination_addr(), proto, l4.len() as u32);
    let l4_ok = rvs_packet::checksum::fold(rvs_packet::checksum::sum(pseudo, l4)) == 0xffff;
    let sport = match p.transport {
        Some(TransportSlice::Udp(u)) => {
            assert_ne!(u.checksum(), 0, "UDP checksum present");
            u.source_port()
        }
        Some(TransportSlice::Tcp(t)) => {
            assert!(t.syn() && !t.ack());
            t.source_port()
        }
        _ => panic!("not UDP or TCP"),
    };
    (src, sport, ip_ok && l4_ok)
}

/// Steady flows: the source port runs through `count` ports (wrapping past 65535 is not asked
/// for: 65530 + 0..4) and back, each frame with a correct UDP checksum.
#[test]
fn udp_flows_vary_the_source_port() {
    let Some(g) = load(&spec(Proto::Udp, Vary::SourcePort { count: 4 })) else {
        return;
    };
    let mut ports = Vec::new();
    for _ in 0..6 {
        let run = g.next_frame().unwrap();
        assert_eq!(run.retval, verdict::TX);
        let (src, sport, ok) = inspect(&run.data);
        assert_eq!(src, Ipv4Addr::new(10, 1, 0, 2));
        assert!(ok, "checksums of the frame with port {sport}");
        ports.push(sport);
    }
    assert_eq!(ports, [65530, 65531, 65532, 65533, 65530, 65531]);
    assert_eq!(g.produced().unwrap(), 6);
}

/// New connections and SYN floods: the source address changes per frame, with both the IPv4
/// header checksum and the transport checksum (its pseudo-header) updated.
#[test]
fn syns_vary_the_source_address() {
    for proto in [Proto::TcpSyn, Proto::Udp] {
        let first = Ipv4Addr::new(10, 128, 255, 254);
        let Some(g) = load(&spec(proto, Vary::SourceAddr { first, count: 1000 })) else {
            return;
        };
        for i in 0..300u32 {
            let run = g.next_frame().unwrap();
            assert_eq!(run.retval, verdict::TX);
            let (src, sport, ok) = inspect(&run.data);
            assert_eq!(src, Ipv4Addr::from(u32::from(first) + i), "{proto:?}");
            assert_eq!(sport, 65530);
            assert!(ok, "checksums of {proto:?} from {src}");
        }
    }
}

/// A live frame's page comes back after the receiver rewrote it in place: the next frame made
/// on it must still be the template's, whatever the page held.
#[test]
fn a_recycled_page_gets_the_whole_template_again() {
    let Some(g) = load(&spec(Proto::Udp, Vary::SourcePort { count: 2 })) else {
        return;
    };
    let clean = g.next_frame().unwrap().data;
    // What a NAT director leaves: other MACs, destination, TTL; here simply other bytes.
    let stale = vec![0xa5u8; 60];
    let run = g.next_frame_over(&stale).unwrap();
    assert_eq!(run.retval, verdict::TX);
    let (src, sport, ok) = inspect(&run.data);
    assert!(ok);
    assert_eq!((src, sport), (Ipv4Addr::new(10, 1, 0, 2), 65531));
    // The third frame is the first one's flow again, byte for byte.
    assert_eq!(g.next_frame_over(&stale).unwrap().data, clean);
}
