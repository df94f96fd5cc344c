//! End-to-end tests of the packet plane's reassembly (docs/internals/forwarding.md#fragments):
//! `rvsd --interface …` in the director namespace of an rvs-lab topology, UDP echo servers on
//! the real servers, datagrams larger than the links' 1 500-byte MTU sent by the client's own
//! kernel (which fragments them), and crafted fragments (overlapping, too big, alone) sent as
//! raw frames from the client's namespace.
//!
//! Without reassembly the plane drops every fragment to a VIP, so the echo tests fail then
//! (checked by hand when this file was written: no answer comes back).
//!
//! Root only (rvs-require: a skip outside CI, a failure under CI). Every exchange is bounded
//! (read timeouts, bounded polls); the lab is torn down on drop, rvsd (declared after it)
//! first.

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use common::packet_path::{self, XdpCounters};
use common::{wait_plane_ready, wait_until, Rvsd};
use rvs_lab::Netns;

/// The UDP service port of these tests.
const UDP_PORT: u16 = 5353;
/// Where rvsd serves its metrics, inside the director's namespace.
const METRICS: &str = "127.0.0.1:9478";

/// rvsd with the packet plane on `ifaces` and its metrics on [`METRICS`].
fn start(ns: &Netns, dir: &Path, ifaces: &[&str]) -> Rvsd {
    let mut args = vec!["--drain-time", "0", "--metrics-listen", METRICS];
    for i in ifaces {
        args.extend(["--interface", i]);
    }
    Rvsd::start_in(common::RVSD, Some(ns), dir, &args)
}

/// Stops `rvsd` and checks its log for the packet-plane mode it ran in (`RVS_TEST_XDP`, see
/// rvs-testkit's `packet_path`). With the XDP fast path the program leaves every fragment to
/// the host stack's path — the AF_PACKET tap, where the plane reassembles it, and the nft
/// guard, which drops it — so it passed at least as many frames as "other" as the plane
/// received fragments.
fn stop_and_check_mode(rvsd: &mut Rvsd, director: &Netns, ifaces: &[&str]) {
    let fragments = metric(director, "rvs_packet_frag_fragments_total");
    let path = rvsd.packet_path().expect("a packet plane");
    let log = rvsd.stop();
    packet_path::check_log(path, ifaces, &log, None);
    if path.is_xdp() {
        let c = XdpCounters::from_log(&log)
            .unwrap_or_else(|| panic!("no XDP counters in the log:\n{log}"));
        assert!(
            fragments > 0 && c.pass_other >= fragments,
            "{fragments} fragments reached the plane, the program passed {c:?}:\n{log}"
        );
    }
}

/// The value of the metric line that starts with `series` (name and labels), 0 when absent.
fn metric(director: &Netns, series: &str) -> u64 {
    let body = director
        .curl(&format!("http://{METRICS}/metrics"))
        .expect("metrics page");
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn frag_drops(director: &Netns, reason: &str) -> u64 {
    metric(
        director,
        &format!("rvs_packet_frag_drops_total{{reason=\"{reason}\"}}"),
    )
}

/// The dual-stack NAT lab with a UDP echo server on each real server, and rvsd serving UDP
/// port [`UDP_PORT`] of both VIPs over every real server of its family (NAT, rr), ready: what
/// the NAT echo test and the hostile-fragments test share. rvsd comes first, so that it is
/// stopped before the lab is torn down.
struct NatEcho {
    rvsd: Rvsd,
    t: rvs_lab::Topology,
    v6: rvs_lab::Ipv6Layer,
    director: Netns,
    client: Netns,
    /// `VIP:port` and `[VIP6]:port`, as `rvsadm` writes them.
    svc4: String,
    svc6: String,
}

fn nat_echo(tag: &str) -> NatEcho {
    let mut t = rvs_lab::nat_dual(tag).expect("dual-stack nat lab");
    let v6 = t.ipv6().cloned().expect("IPv6 layer");
    let servers: Vec<Netns> = t.real_servers().iter().map(|n| n.ns.clone()).collect();
    for ns in &servers {
        let child = ns.udp_responder(UDP_PORT, None).expect("UDP echo server");
        t.lab_mut().own(child);
    }
    let director = t.director().ns.clone();
    let client = t.client().ns.clone();
    let rvsd = start(&director, t.lab().workdir(), &["eth0", "eth1"]);
    let svc4 = format!("{}:{UDP_PORT}", t.vip);
    let svc6 = format!("[{}]:{UDP_PORT}", v6.vip);
    rvsd.line(&format!("-A -u {svc4} -s rr"));
    rvsd.line(&format!("-A -u {svc6} -s rr"));
    for rip in t.rips() {
        rvsd.line(&format!("-a -u {svc4} -r {rip}:{UDP_PORT} -m"));
    }
    for rip in &v6.rips {
        rvsd.line(&format!("-a -u {svc6} -r [{rip}]:{UDP_PORT} -m"));
    }
    let mut rips: Vec<String> = t.rips().iter().map(|r| r.to_string()).collect();
    rips.extend(v6.rips.iter().map(|r| r.to_string()));
    wait_plane_ready(&director, &t.vip.to_string(), &rips);
    NatEcho {
        rvsd,
        t,
        v6,
        director,
        client,
        svc4,
        svc6,
    }
}

/// `n` bytes that differ from one datagram (`seed`) to the next.
fn payload(n: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Sends `data` in one datagram from `client` to `dst` (the client's kernel fragments it) and
/// returns the answer from `dst` (a connected socket takes nothing else), or `None` after 3 s.
fn exchange(client: &Netns, dst: SocketAddr, data: &[u8]) -> Option<Vec<u8>> {
    client
        .exec(|| {
            let any: SocketAddr = if dst.is_ipv6() {
                "[::]:0".parse().unwrap()
            } else {
                "0.0.0.0:0".parse().unwrap()
            };
            let s = UdpSocket::bind(any).expect("bind");
            s.connect(dst).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            s.send(data).expect("send");
            let mut buf = vec![0u8; 65_536];
            s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
        })
        .expect("exec in the client namespace")
}

/// Checks that a datagram of each size comes back byte for byte through `vip`.
fn echo_sizes(client: &Netns, vip: SocketAddr, sizes: &[usize]) {
    for (i, &n) in sizes.iter().enumerate() {
        let data = payload(n, i as u8 + 1);
        let got = exchange(client, vip, &data)
            .unwrap_or_else(|| panic!("no answer to a {n}-byte datagram to {vip}"));
        assert!(
            got == data,
            "{n}-byte datagram to {vip}: {} bytes came back, not the same",
            got.len()
        );
    }
}

/// [`echo_sizes`] through the IPv4 VIP of `t` and the IPv6 VIP of its layer `v6`.
fn echo_both_families(
    client: &Netns,
    t: &rvs_lab::Topology,
    v6: &rvs_lab::Ipv6Layer,
    sizes: &[usize],
) {
    for vip in [IpAddr::V4(t.vip), IpAddr::V6(v6.vip)] {
        echo_sizes(client, SocketAddr::new(vip, UDP_PORT), sizes);
    }
}

/// (a) NAT, both families: datagrams of 4 000 and 30 000 bytes (3 and 21 fragments at a
/// 1 500-byte MTU) to the VIP are reassembled, scheduled, rewritten and sent on in fragments;
/// the real server's echo comes back fragmented, is reassembled by the director as a reply of
/// its connection, rewritten to come from the VIP and sent on in fragments; the client's
/// kernel reassembles it and it is byte for byte what was sent. Each datagram is one packet
/// in the service's statistics, as the kernel counts a reassembled skb.
#[test]
fn fragmented_udp_through_nat_is_echoed_byte_for_byte() {
    rvs_require::require_root!();
    rvs_require::require_tools!("python3", "curl");
    let NatEcho {
        mut rvsd,
        t,
        v6,
        director,
        client,
        svc4,
        svc6,
    } = nat_echo("ppfrag");

    echo_both_families(&client, &t, &v6, &[4000, 30_000]);

    for svc in [&svc4, &svc6] {
        let (conns, inpkts, outpkts) = rvsd.service_stats(&format!("UDP  {svc}"));
        assert_eq!(
            (conns, inpkts, outpkts),
            (2, 2, 2),
            "{svc}: one packet per datagram each way"
        );
    }
    // Requests and replies: 4 datagrams per family, each of (4 000 → 3, 30 000 → 21)
    // fragments.
    assert_eq!(metric(&director, "rvs_packet_frag_reassembled_total"), 8);
    assert!(metric(&director, "rvs_packet_frag_fragments_total") >= 8 * 3);
    assert!(metric(&director, "rvs_packet_frag_sent_total") >= 8 * 3);
    for reason in ["overlap", "too_big", "bad_length", "no_room", "evicted"] {
        assert_eq!(frag_drops(&director, reason), 0, "{reason}");
    }
    assert_eq!(metric(&director, "rvs_packet_frag_held_datagrams"), 0);
    // The host stack saw none of those fragments: the guard dropped them by address (its port
    // rules cannot see a non-first fragment), to the VIPs and from the real servers.
    let guard = director
        .cmd("nft")
        .args(["list", "table", "netdev", "rvs"])
        .run()
        .expect("nft list");
    for set in ["@frag4 ", "@frag6 ", "@rsfrag4 ", "@rsfrag6 "] {
        assert!(
            guard_counter(&guard, set) > 0,
            "no fragment dropped by the {set}rule:\n{guard}"
        );
    }
    stop_and_check_mode(&mut rvsd, &director, &["eth0", "eth1"]);
}

/// The packets counted by the guard's rules that name `set` (one per interface chain).
fn guard_counter(listing: &str, set: &str) -> u64 {
    listing
        .lines()
        .filter(|l| l.contains(set))
        .filter_map(|l| l.split("counter packets ").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

/// (b) Direct routing: the reassembled request is sent on to the real server's MAC in
/// fragments (only MACs and TTL change); the real server, owning the VIP, answers the client
/// directly from the VIP, byte for byte.
#[test]
fn fragmented_udp_through_dr_is_echoed_byte_for_byte() {
    rvs_require::require_root!();
    rvs_require::require_tools!("python3", "curl");
    let mut t = rvs_lab::dr("ppfragdr").expect("dr lab");
    let vip = t.vip.to_string();
    let servers: Vec<Netns> = t.real_servers().iter().map(|n| n.ns.clone()).collect();
    for ns in &servers {
        // Bound to the VIP, so that the answer leaves from it.
        let child = ns
            .udp_responder_on(&vip, UDP_PORT, None)
            .expect("UDP echo server");
        t.lab_mut().own(child);
    }
    let director = t.director().ns.clone();
    let client = t.client().ns.clone();
    let mut rvsd = start(&director, t.lab().workdir(), &["eth0"]);
    let svc = format!("{vip}:{UDP_PORT}");
    rvsd.line(&format!("-A -u {svc} -s rr"));
    for rip in t.rips() {
        rvsd.line(&format!("-a -u {svc} -r {rip}:{UDP_PORT} -g"));
    }
    let rips: Vec<String> = t.rips().iter().map(|r| r.to_string()).collect();
    wait_plane_ready(&director, &vip, &rips);
    echo_sizes(
        &client,
        SocketAddr::new(IpAddr::V4(t.vip), UDP_PORT),
        &[4000, 30_000],
    );
    let (conns, inpkts, outpkts) = rvsd.service_stats(&format!("UDP  {svc}"));
    assert_eq!((conns, inpkts, outpkts), (2, 2, 0), "DR: replies bypass");
    assert_eq!(metric(&director, "rvs_packet_frag_reassembled_total"), 2);
    stop_and_check_mode(&mut rvsd, &director, &["eth0"]);
}

/// An IPv4 packet: header (identification `id`, offset `off` bytes, MF) + `data`.
fn ipv4(src: [u8; 4], dst: [u8; 4], id: u16, off: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    let ff = (off / 8) as u16 | if more { 0x2000 } else { 0 };
    p[6..8].copy_from_slice(&ff.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let c = rvs_packet::checksum::checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(data);
    p
}

/// An IPv6 packet with a fragment header (identification `id`, offset `off` bytes, M) + `data`.
fn ipv6(src: [u8; 16], dst: [u8; 16], id: u32, off: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    p[6] = 44;
    p[7] = 64;
    p[8..24].copy_from_slice(&src);
    p[24..40].copy_from_slice(&dst);
    p.extend_from_slice(&[17, 0]);
    p.extend_from_slice(&((off as u16 & 0xfff8) | u16::from(more)).to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(data);
    p
}

/// The start of a UDP datagram from port 40000 to [`UDP_PORT`] announcing `len` bytes (its
/// checksum is never checked: these datagrams must not get through).
fn udp_head(len: usize) -> Vec<u8> {
    let mut h = 40000u16.to_be_bytes().to_vec();
    h.extend_from_slice(&UDP_PORT.to_be_bytes());
    h.extend_from_slice(&(len as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h
}

/// Sends the IP packets `pkts` as Ethernet frames from `client`'s `eth0` to MAC `dst`
/// (AF_PACKET: the client's kernel neither fragments nor checks them).
fn send_raw(client: &Netns, dst: &str, pkts: &[Vec<u8>]) {
    const SENDER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
src = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
dst = bytes.fromhex(sys.argv[1].replace(":", ""))
for h in sys.argv[2:]:
    p = bytes.fromhex(h)
    s.send(dst + src + (b"\x86\xdd" if p[0] >> 4 == 6 else b"\x08\x00") + p)
"#;
    let hex: Vec<String> = pkts
        .iter()
        .map(|p| p.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let mut args = vec!["-c", SENDER, dst];
    args.extend(hex.iter().map(String::as_str));
    client
        .cmd("python3")
        .args(args)
        .timeout(Duration::from_secs(10))
        .run()
        .expect("raw frames sent");
}

/// (c) Hostile fragments: overlapping fragments (IPv4 and IPv6), a fragment that would make a
/// datagram longer than 65 535 bytes, a non-last IPv6 fragment whose length is not a multiple
/// of 8, and a lone fragment whose datagram never completes: nothing reaches a real server
/// (the service counts no packet), each is counted under its reason, the lone one is held —
/// and the plane still serves a fragmented datagram afterwards.
#[test]
fn hostile_fragments_are_dropped_and_counted_and_the_plane_still_serves() {
    rvs_require::require_root!();
    rvs_require::require_tools!("python3", "curl");
    let NatEcho {
        mut rvsd,
        t,
        v6,
        director,
        client,
        svc4,
        svc6,
    } = nat_echo("ppfragx");
    let director_mac = t.director().iface("eth0").expect("director eth0").mac;

    let c4 = t.client().iface("eth0").expect("client eth0").addr.octets();
    let (c6, vip6) = (v6.client.octets(), v6.vip.octets());
    let vip4 = t.vip.octets();
    let body = payload(1600, 9);
    let mut dgram = udp_head(8 + body.len());
    dgram.extend_from_slice(&body);
    let frames = vec![
        // IPv4 overlap: the last fragment starts 8 bytes inside the first.
        ipv4(c4, vip4, 0x7001, 0, true, &dgram[..1000]),
        ipv4(c4, vip4, 0x7001, 992, false, &dgram[992..]),
        // IPv6 overlap (RFC 5722).
        ipv6(c6, vip6, 0x7002, 0, true, &dgram[..1000]),
        ipv6(c6, vip6, 0x7002, 992, false, &dgram[992..]),
        // Offset 65 528 + 20-byte header + 16 bytes: over 65 535.
        ipv4(c4, vip4, 0x7003, 65528, false, &dgram[..16]),
        // A non-last IPv6 fragment of 1 001 bytes.
        ipv6(c6, vip6, 0x7004, 0, true, &dgram[..1001]),
        // A lone last fragment: its first never comes.
        ipv4(c4, vip4, 0x7005, 1000, false, &dgram[1000..]),
    ];
    // The client resolves the director's MAC for the VIP itself (rvsd answers its ARP).
    send_raw(&client, &director_mac.to_string(), &frames);
    let counted = wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        frag_drops(&director, "overlap") >= 2
            && frag_drops(&director, "too_big") >= 1
            && frag_drops(&director, "bad_length") >= 1
            && metric(&director, "rvs_packet_frag_held_datagrams") >= 1
    });
    assert!(
        counted,
        "drops overlap={} too_big={} bad_length={}, held {}",
        frag_drops(&director, "overlap"),
        frag_drops(&director, "too_big"),
        frag_drops(&director, "bad_length"),
        metric(&director, "rvs_packet_frag_held_datagrams")
    );
    assert_eq!(metric(&director, "rvs_packet_frag_reassembled_total"), 0);
    for svc in [&svc4, &svc6] {
        let (conns, inpkts, _) = rvsd.service_stats(&format!("UDP  {svc}"));
        assert_eq!((conns, inpkts), (0, 0), "{svc}: nothing was scheduled");
    }
    // Still serving: a datagram of three fragments each way, in both families.
    echo_both_families(&client, &t, &v6, &[4000]);
    assert_eq!(metric(&director, "rvs_packet_frag_reassembled_total"), 4);
    stop_and_check_mode(&mut rvsd, &director, &["eth0", "eth1"]);
}
