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

/// The program paces itself: at one frame a second, the first repetition is sent and the
/// ones right after it are dropped (not sent, not counted) until the next one is due.
#[test]
fn a_paced_generator_drops_what_is_not_yet_due() {
    let Some(mut g) = load(&spec(Proto::Udp, Vary::SourcePort { count: 4 })) else {
        return;
    };
    g.set_rate(1, 1).unwrap();
    assert_eq!(g.next_frame().unwrap().retval, verdict::TX);
    for _ in 0..3 {
        assert_eq!(g.next_frame().unwrap().retval, verdict::DROP);
    }
    assert_eq!(g.produced().unwrap(), 1, "only the sent frame is counted");
    // Flat out again: every repetition is a frame.
    g.set_rate(0, 1).unwrap();
    assert_eq!(g.next_frame().unwrap().retval, verdict::TX);
    assert_eq!(g.produced().unwrap(), 2);
}

/// Frames received on `dev` of the calling thread's network namespace.
fn rx_packets(dev: &str) -> u64 {
    let t =
        std::fs::read_to_string("/proc/thread-self/net/dev").expect("/proc/thread-self/net/dev");
    let line = t
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{dev}:")))
        .unwrap_or_else(|| panic!("{dev} in /proc/net/dev:\n{t}"));
    line.split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// A live run: `send_until` ends at its deadline (the signal interrupts the one long kernel
/// call), the frames reach the veth's peer, and a paced run sends no more than its rate allows
/// (the rate times the time it ran, plus one burst) — flat out, the same time gives far more.
#[test]
fn live_runs_end_at_their_deadline_and_keep_their_rate() {
    rvs_require::require_root!();
    rvs_require::require_tools!("ip", "ethtool");
    let (tx, rx) = std::sync::mpsc::channel();
    // The namespace is this thread's; its interfaces go with it.
    std::thread::spawn(move || {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
            rvs_require::unmet(format!("unshare(CLONE_NEWNET): {e}"));
            return;
        }
        let run = |cmd: &str, args: &[&str]| {
            let st = std::process::Command::new(cmd)
                .args(args)
                .status()
                .expect("run");
            assert!(st.success(), "{cmd} {args:?}");
        };
        run(
            "ip",
            &["link", "add", "tg0", "type", "veth", "peer", "name", "tg1"],
        );
        run("ip", &["link", "set", "tg0", "up"]);
        run("ip", &["link", "set", "tg1", "up"]);
        // A veth takes frames from ndo_xdp_xmit only into a peer that runs NAPI.
        run("ethtool", &["-K", "tg1", "gro", "on"]);
        let ifindex = nix::net::if_::if_nametoindex("tg0").expect("ifindex");
        let Some(mut g) = load(&spec(Proto::Udp, Vary::SourcePort { count: 4 })) else {
            return;
        };
        let mut out = Vec::new();
        for rate in [2_000u64, 0] {
            g.set_rate(rate, 32).unwrap();
            let before = (g.produced().unwrap(), rx_packets("tg1"));
            let start = std::time::Instant::now();
            g.send_until(ifindex, start + std::time::Duration::from_millis(300))
                .unwrap();
            let took = start.elapsed();
            // The peer's NAPI may still be draining its ring: wait for it, bounded.
            let produced = g.produced().unwrap() - before.0;
            let mut got = 0;
            for _ in 0..100 {
                got = rx_packets("tg1") - before.1;
                if got > 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            out.push((rate, produced, got, took));
        }
        tx.send(out).unwrap();
    });
    // Bounded: a run the signal did not end would take minutes.
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the live runs ended");
    let [(rate, paced, paced_got, took), (_, flat, flat_got, flat_took)] = out[..] else {
        panic!("{out:?}")
    };
    assert!(
        took.as_millis() < 10_000 && flat_took.as_millis() < 10_000,
        "{out:?}"
    );
    assert!(paced > 0 && paced_got > 0 && flat_got > 0, "{out:?}");
    let allowed = (rate as f64 * took.as_secs_f64()) as u64 + 32;
    assert!(
        paced <= allowed,
        "paced at {rate}/s for {took:?}: {paced} frames > {allowed}"
    );
    assert!(
        flat > 10 * allowed,
        "flat out made only {flat} frames in {flat_took:?}"
    );
}
