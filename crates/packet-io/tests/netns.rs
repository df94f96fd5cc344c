//! Root-only tests in network namespaces: each builds its own rvs-lab lab (namespaces and a
//! veth pair, deleted on drop, also on panic). Without root or the tools they need, they say
//! why and pass (fail under CI, see rvs-require).

use std::net::{IpAddr, UdpSocket};
use std::time::{Duration, Instant};

use rvs_lab::{Lab, Netns};
use rvs_packet_io::announce::{gratuitous_arp, unsolicited_na};
use rvs_packet_io::{
    nft, Error, Fanout, FrameSink, GuardRules, IngressGuard, Match, Port, PortConfig, Resolver,
    ResolverConfig, Sender,
};

/// True if the tests can create namespaces (root, `ip`, `nft`, `ping`); otherwise skipped with
/// the reason, or a failure under CI (see rvs-require).
fn can_run() -> bool {
    rvs_require::root() && rvs_require::tools(&["ip", "nft", "ping"])
}

/// Two namespaces of one lab joined by a veth pair `a0` (in `a`, 10.77.0.1/24, fd77::1/64) —
/// `b0` (in `b`, 10.77.0.2/24, fd77::2/64), both up, IPv6 without duplicate address detection.
struct Pair {
    a: Netns,
    b: Netns,
    /// Owns the namespaces (a test may add more).
    lab: Lab,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let mut lab = Lab::new(&format!("io{tag}")).expect("lab");
        let a = lab.add_netns("a").expect("namespace a");
        let b = lab.add_netns("b").expect("namespace b");
        lab.veth(&a, "a0", &b, "b0").expect("veth a0-b0");
        a.sh("ip addr add 10.77.0.1/24 dev a0 && ip addr add fd77::1/64 dev a0 nodad")
            .unwrap();
        b.sh("ip addr add 10.77.0.2/24 dev b0 && ip addr add fd77::2/64 dev b0 nodad")
            .unwrap();
        Pair { a, b, lab }
    }
}

/// An Ethernet frame with a private EtherType (0x88b5, IEEE local experimental) carrying a
/// magic and a sequence number, padded to `len` bytes.
fn marker_frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(22)];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(b"RVS!");
    f[18..22].copy_from_slice(&seq.to_be_bytes());
    f
}

/// The sequence number of a marker frame (untagged), if it is one.
fn marker_seq(f: &[u8]) -> Option<u32> {
    if f.len() >= 22 && f[12..14] == [0x88, 0xb5] && &f[14..18] == b"RVS!" {
        Some(u32::from_be_bytes([f[18], f[19], f[20], f[21]]))
    } else {
        None
    }
}

/// An Ethernet/IPv4/UDP frame with a valid IPv4 header checksum (UDP checksum 0: none).
fn udp4_frame(
    dst: [u8; 6],
    src: [u8; 6],
    sip: [u8; 4],
    dip: [u8; 4],
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let ip_len = 20 + 8 + payload.len();
    let mut f = vec![0u8; 14 + ip_len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&sip);
    ip[16..20].copy_from_slice(&dip);
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f[42..].copy_from_slice(payload);
    f
}

const VIP: [u8; 4] = [10, 77, 0, 100];

fn open(ns: &Netns, ifname: &'static str, cfg: PortConfig) -> Port {
    ns.exec(move || Port::open(ifname, &cfg).expect("open port"))
        .unwrap()
}

/// Receives until `f` has counted `want` frames (it returns true for those) or `limit`
/// passes; at most 10 000 polls. Returns the count.
fn drain(port: &mut Port, limit: Duration, want: usize, mut f: impl FnMut(&[u8]) -> bool) -> usize {
    let end = Instant::now() + limit;
    let mut n = 0;
    for _ in 0..10_000 {
        if n >= want || Instant::now() >= end {
            break;
        }
        port.recv_batch(Duration::from_millis(20), |fr| {
            if f(fr.data()) {
                n += 1;
            }
        })
        .expect("recv_batch");
    }
    n
}

fn refs(frames: &[Vec<u8>]) -> Vec<&[u8]> {
    frames.iter().map(|f| f.as_slice()).collect()
}

/// ICMP echo type (8 request, 0 reply) of an untagged IPv4 frame with the given addresses.
fn icmp_echo(f: &[u8], src: [u8; 4], dst: [u8; 4]) -> Option<u8> {
    (f.len() >= 42 && f[12..14] == [8, 0] && f[23] == 1 && f[26..30] == src && f[30..34] == dst)
        .then(|| f[34])
}

#[test]
fn rx_ring_receives_peer_frames_and_pings() {
    if !can_run() {
        return;
    }
    let p = Pair::new("rx");
    let (a_mac, b_mac) = (p.a.mac("a0").unwrap().0, p.b.mac("b0").unwrap().0);
    // Small blocks so 100 frames span several blocks and ring wrap-around is exercised.
    let cfg = PortConfig {
        block_size: 4096,
        block_count: 4,
        ..PortConfig::default()
    };
    let mut port = open(&p.a, "a0", cfg);
    assert_eq!(port.mac(), a_mac);
    assert!(port.ifindex() > 0);
    let mut sender = p.b.exec(|| Sender::open("b0").expect("sender")).unwrap();
    let mut seqs = Vec::new();
    for burst in 0..5u32 {
        let frames: Vec<Vec<u8>> = (0..20)
            .map(|i| marker_frame(a_mac, b_mac, burst * 20 + i, 60))
            .collect();
        assert_eq!(sender.send_batch(&refs(&frames)), 20);
        drain(&mut port, Duration::from_secs(3), 20, |f| {
            let s = marker_seq(f);
            seqs.extend(s);
            s.is_some()
        });
    }
    assert_eq!(seqs, (0..100).collect::<Vec<u32>>());

    let b = p.b.name().to_owned();
    let pinger = std::thread::spawn(move || {
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &b,
                "ping",
                "-c",
                "3",
                "-i",
                "0.2",
                "-W",
                "1",
                "10.77.0.1",
            ])
            .output()
            .expect("ping")
    });
    let requests = drain(&mut port, Duration::from_secs(5), 3, |f| {
        icmp_echo(f, [10, 77, 0, 2], [10, 77, 0, 1]) == Some(8)
    });
    let out = pinger.join().unwrap();
    assert!(
        out.status.success(),
        "ping: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(requests, 3);
    let st = port.stats().unwrap();
    assert!(st.rx_frames >= 103, "{st:?}");
    assert_eq!(st.kernel_drops, 0, "{st:?}");
    assert!(st.kernel_packets >= 103, "{st:?}");
}

#[test]
fn blocks_per_call_bounds_a_batch() {
    if !can_run() {
        return;
    }
    let p = Pair::new("bpc");
    let (a_mac, b_mac) = (p.a.mac("a0").unwrap().0, p.b.mac("b0").unwrap().0);
    let small = |blocks_per_call| PortConfig {
        block_size: 4096,
        block_count: 8,
        blocks_per_call,
        ..PortConfig::default()
    };
    // A 60-byte frame takes about 150 bytes of a block: 60 frames fill several 4 KB blocks.
    let mut one = open(&p.a, "a0", small(Some(1)));
    let mut all = open(&p.a, "a0", small(None));
    let mut sender = p.b.exec(|| Sender::open("b0").expect("sender")).unwrap();
    let frames: Vec<Vec<u8>> = (0..60).map(|i| marker_frame(a_mac, b_mac, i, 60)).collect();
    assert_eq!(sender.send_batch(&refs(&frames)), 60);
    // Every block is retired (full, or after the 1 ms timeout).
    std::thread::sleep(Duration::from_millis(50));
    let batch = |port: &mut Port| {
        let mut seqs = Vec::new();
        port.recv_batch(Duration::from_millis(20), |f| {
            seqs.extend(marker_seq(f.data()))
        })
        .expect("recv_batch");
        seqs
    };
    let first = batch(&mut one);
    assert!(!first.is_empty() && first.len() < 60, "{}", first.len());
    let mut seqs = first;
    for _ in 0..20 {
        if seqs.len() >= 60 {
            break;
        }
        seqs.extend(batch(&mut one));
    }
    assert_eq!(seqs, (0..60).collect::<Vec<u32>>());
    assert_eq!(batch(&mut all), (0..60).collect::<Vec<u32>>());
}

#[test]
fn tx_batch_arrives_and_outgoing_is_ignored() {
    if !can_run() {
        return;
    }
    let p = Pair::new("tx");
    let (a_mac, b_mac) = (p.a.mac("a0").unwrap().0, p.b.mac("b0").unwrap().0);
    let mut capture = open(&p.b, "b0", PortConfig::default());
    let mut tx = open(&p.a, "a0", PortConfig::default());
    let mut quiet = open(&p.a, "a0", PortConfig::default());
    let mut see_all = open(
        &p.a,
        "a0",
        PortConfig {
            ignore_outgoing: false,
            ..PortConfig::default()
        },
    );
    let frames: Vec<Vec<u8>> = (0..200)
        .map(|i| marker_frame(b_mac, a_mac, i, 64))
        .collect();
    // Through the trait object, as the data plane's out queue holds its senders.
    let io: &mut dyn FrameSink = &mut tx;
    assert_eq!(io.send_frames(&refs(&frames)), 200);
    let st = tx.stats().unwrap();
    assert_eq!((st.tx_frames, st.tx_errors), (200, 0));

    let mut got = Vec::new();
    let mut first = Vec::new();
    drain(&mut capture, Duration::from_secs(3), 200, |f| {
        let s = marker_seq(f);
        if s == Some(7) {
            first = f.to_vec();
        }
        got.extend(s);
        s.is_some()
    });
    assert_eq!(got, (0..200).collect::<Vec<u32>>());
    assert_eq!(first, frames[7]);

    let outgoing = drain(&mut see_all, Duration::from_secs(3), 200, |f| {
        marker_seq(f).is_some()
    });
    assert_eq!(
        outgoing, 200,
        "a socket without PACKET_IGNORE_OUTGOING sees our transmissions"
    );
    let leaked = drain(&mut quiet, Duration::from_millis(300), usize::MAX, |f| {
        marker_seq(f).is_some()
    });
    assert_eq!(
        leaked, 0,
        "PACKET_IGNORE_OUTGOING must hide our own transmissions"
    );
}

#[test]
fn rx_frames_marked_for_transmit_are_forwarded_from_the_ring() {
    if !can_run() {
        return;
    }
    let p = Pair::new("fw");
    let (a_mac, b_mac) = (p.a.mac("a0").unwrap().0, p.b.mac("b0").unwrap().0);
    let mut capture = open(&p.b, "b0", PortConfig::default());
    let mut port = open(&p.a, "a0", PortConfig::default());
    let mut sender = p.b.exec(|| Sender::open("b0").expect("sender")).unwrap();
    let frames: Vec<Vec<u8>> = (0..50).map(|i| marker_frame(a_mac, b_mac, i, 60)).collect();
    assert_eq!(sender.send_batch(&refs(&frames)), 50);
    // Reflect each marker back to b0 with swapped MACs and the sequence number + 1000: an
    // in-place rewrite sent straight from the ring.
    let mut reflected = 0;
    let end = Instant::now() + Duration::from_secs(3);
    while reflected < 50 && Instant::now() < end {
        port.recv_batch(Duration::from_millis(20), |fr| {
            if let Some(s) = marker_seq(fr.data()) {
                let d = fr.data_mut();
                d[0..6].copy_from_slice(&b_mac);
                d[6..12].copy_from_slice(&a_mac);
                d[18..22].copy_from_slice(&(s + 1000).to_be_bytes());
                fr.transmit();
                reflected += 1;
            }
        })
        .unwrap();
    }
    assert_eq!(reflected, 50);
    let mut back = Vec::new();
    drain(&mut capture, Duration::from_secs(3), 50, |f| {
        let s = marker_seq(f).filter(|_| f[6..12] == a_mac);
        back.extend(s);
        s.is_some()
    });
    assert_eq!(back, (1000..1050).collect::<Vec<u32>>());
    assert_eq!(port.stats().unwrap().tx_frames, 50);
}

#[test]
fn fanout_splits_flows_between_sockets() {
    if !can_run() {
        return;
    }
    let p = Pair::new("fan");
    let (a_mac, b_mac) = (p.a.mac("a0").unwrap().0, p.b.mac("b0").unwrap().0);
    let cfg = PortConfig {
        fanout: Some(Fanout {
            group: 4242,
            defrag: false,
        }),
        ..PortConfig::default()
    };
    let mut ports = [open(&p.a, "a0", cfg.clone()), open(&p.a, "a0", cfg)];
    let mut sender = p.b.exec(|| Sender::open("b0").expect("sender")).unwrap();
    // 64 flows x 4 packets to a non-local address (the kernel drops them: no forwarding).
    let frames: Vec<Vec<u8>> = (0..4)
        .flat_map(|_| {
            (0..64u16).map(move |flow| {
                let mut payload = *b"RVSF..";
                payload[4..6].copy_from_slice(&flow.to_be_bytes());
                udp4_frame(
                    a_mac,
                    b_mac,
                    [10, 77, 0, 2],
                    [10, 77, 0, 99],
                    10_000 + flow,
                    7000,
                    &payload,
                )
            })
        })
        .collect();
    assert_eq!(sender.send_batch(&refs(&frames)), 256);
    let mut owner: [[u32; 2]; 64] = [[0; 2]; 64];
    let mut total = 0;
    let end = Instant::now() + Duration::from_secs(5);
    while total < 256 && Instant::now() < end {
        for (k, port) in ports.iter_mut().enumerate() {
            port.recv_batch(Duration::from_millis(10), |fr| {
                let f = fr.data();
                if f.len() >= 48 && f[12..14] == [8, 0] && &f[42..46] == b"RVSF" {
                    let flow = u16::from_be_bytes([f[46], f[47]]) as usize;
                    owner[flow][k] += 1;
                    total += 1;
                }
            })
            .unwrap();
        }
    }
    assert_eq!(total, 256);
    for (flow, counts) in owner.iter().enumerate() {
        assert!(
            *counts == [4, 0] || *counts == [0, 4],
            "flow {flow} split across sockets: {counts:?}"
        );
    }
    let first = owner.iter().filter(|c| c[0] == 4).count();
    assert!(
        first > 0 && first < 64,
        "all 64 flows on one socket ({first} on the first)"
    );
    // The group's own hook must also ignore outgoing frames (PACKET_FANOUT_FLAG_IGNORE_OUTGOING).
    // Sent from a socket outside the group: the kernel never loops a member's own frames back
    // to its group anyway.
    let markers: Vec<Vec<u8>> = (0..10).map(|i| marker_frame(b_mac, a_mac, i, 60)).collect();
    let mut other = p.a.exec(|| Sender::open("a0").expect("sender")).unwrap();
    assert_eq!(other.send_batch(&refs(&markers)), 10);
    let mut echoed = 0;
    for port in ports.iter_mut() {
        echoed += drain(port, Duration::from_millis(200), usize::MAX, |f| {
            marker_seq(f).is_some()
        });
    }
    assert_eq!(echoed, 0, "a fanout member saw our own transmissions");
}

#[test]
fn vlan_tag_is_reinserted_or_reported() {
    if !can_run() {
        return;
    }
    let p = Pair::new("vl");
    let (a_mac, b_mac) = (p.a.mac("a0").unwrap().0, p.b.mac("b0").unwrap().0);
    let mut reinsert = open(&p.a, "a0", PortConfig::default());
    let mut beside = open(
        &p.a,
        "a0",
        PortConfig {
            reinsert_vlan: false,
            ..PortConfig::default()
        },
    );
    let untagged = marker_frame(a_mac, b_mac, 5, 64);
    let mut tagged = untagged[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x60, 0x64]); // priority 3, VLAN 100
    tagged.extend_from_slice(&untagged[12..]);
    let mut sender = p.b.exec(|| Sender::open("b0").expect("sender")).unwrap();
    sender.send(&tagged).unwrap();

    for (port, want_in_data) in [(&mut reinsert, true), (&mut beside, false)] {
        let mut seen = None;
        let end = Instant::now() + Duration::from_secs(3);
        while seen.is_none() && Instant::now() < end {
            port.recv_batch(Duration::from_millis(20), |fr| {
                if fr.data()[6..12] == b_mac {
                    seen = Some((
                        fr.data().to_vec(),
                        fr.vlan(),
                        fr.vlan_in_data(),
                        fr.wire_len(),
                    ));
                }
            })
            .unwrap();
        }
        let (data, vlan, in_data, wire_len) = seen.expect("tagged frame received");
        let tag = vlan.expect("kernel reported the stripped tag");
        assert_eq!((tag.tpid, tag.tci, tag.vid()), (0x8100, 0x6064, 100));
        assert_eq!(in_data, want_in_data);
        if want_in_data {
            assert_eq!(data, tagged);
            assert_eq!(wire_len, tagged.len());
        } else {
            assert_eq!(data, untagged);
        }
    }
    assert_eq!(reinsert.stats().unwrap().rx_vlan_reinserted, 1);
    assert_eq!(beside.stats().unwrap().rx_vlan_reinserted, 0);
}

#[test]
fn nft_guard_hides_vip_traffic_from_the_kernel_but_not_from_the_tap() {
    if !can_run() {
        return;
    }
    let p = Pair::new("nft");
    p.a.sh("ip addr add 10.77.0.100/32 dev a0 && sysctl -qw net.ipv4.ip_forward=1")
        .unwrap();
    let vip = IpAddr::from(VIP);
    let ping_vip = "ping -c 2 -i 0.2 -W 1 10.77.0.100";
    // Without the guard the kernel answers: the check below can fail.
    assert!(
        p.b.try_sh(ping_vip).unwrap().0,
        "VIP must answer before the guard"
    );

    let b_sock =
        p.b.exec(|| UdpSocket::bind("10.77.0.2:5353").unwrap())
            .unwrap();
    let mut tap = open(
        &p.a,
        "a0",
        PortConfig {
            ignore_outgoing: false,
            ..PortConfig::default()
        },
    );
    let a = &p.a;
    let b = &p.b;
    a.exec(|| {
        let a_sock = UdpSocket::bind("10.77.0.1:7777").unwrap();
        a_sock
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let udp_arrives = || {
            b_sock.send_to(b"reply?", "10.77.0.1:7777").unwrap();
            let mut buf = [0u8; 64];
            a_sock.recv_from(&mut buf).is_ok()
        };
        assert!(udp_arrives());

        // A crashed run's table is replaced on install and removed by the start-up cleanup.
        nft::cleanup_stale().expect("cleanup with no table");
        let stale = IngressGuard::install(&["a0"], &GuardRules::default()).unwrap();
        std::mem::forget(stale);
        assert!(a.try_sh("nft list table netdev rvs").unwrap().0);
        nft::cleanup_stale().expect("cleanup of the stale table");
        assert!(
            !a.try_sh("nft list table netdev rvs").unwrap().0,
            "stale table still there"
        );

        let rules = GuardRules {
            vips: vec![Match::addr(vip)],
            replies: vec![Match::service(
                IpAddr::from([10, 77, 0, 2]),
                rvs_core::Protocol::Udp,
                5353,
            )],
            ..GuardRules::default()
        };
        let mut guard = IngressGuard::install(&["a0"], &rules).unwrap();
        // Drain what the tap saw so far, then ping the VIP under the guard.
        drain(&mut tap, Duration::from_millis(100), usize::MAX, |_| false);
        let (ok, out) = b.try_sh(ping_vip).unwrap();
        assert!(!ok, "the kernel answered a guarded VIP: {out}");
        let (mut requests, mut replies) = (0, 0);
        drain(&mut tap, Duration::from_millis(500), usize::MAX, |f| {
            if icmp_echo(f, [10, 77, 0, 2], VIP) == Some(8) {
                requests += 1;
            }
            if icmp_echo(f, VIP, [10, 77, 0, 2]) == Some(0) {
                replies += 1;
            }
            false
        });
        assert_eq!(requests, 2, "the tap must still see the echo requests");
        assert_eq!(replies, 0, "the kernel must not answer");
        // NAT reply rule: traffic from the "real server" 10.77.0.2:5353 is dropped...
        assert!(
            !udp_arrives(),
            "reply from a real server reached the kernel"
        );
        let counters = a.sh("nft list chain netdev rvs in_0").unwrap();
        assert!(counters.contains("@vip4 counter packets 2"), "{counters}");

        // ...unless it is addressed to one of the director's own addresses (health checks).
        let mut keep = rules.clone();
        keep.keep_local.push(IpAddr::from([10, 77, 0, 1]));
        guard.update(&keep).unwrap();
        assert!(
            udp_arrives(),
            "keep_local must exempt the director's own traffic"
        );

        // Narrow the VIP to tcp/80: ICMP to it is the kernel's again, atomically updated sets.
        let narrow = GuardRules {
            vips: vec![Match::service(vip, rvs_core::Protocol::Tcp, 80)],
            ..GuardRules::default()
        };
        guard.update(&narrow).unwrap();
        assert!(a
            .sh("nft list set netdev rvs vip4_svc")
            .unwrap()
            .contains("10.77.0.100 . tcp . 80"));
        assert!(!a
            .sh("nft list set netdev rvs vip4")
            .unwrap()
            .contains("10.77.0.100"));
        assert!(
            b.try_sh(ping_vip).unwrap().0,
            "ICMP to a tcp/80-only VIP must reach the kernel"
        );
        // TCP to the VIP's port 80 is dropped before the kernel could send a RST: connect
        // times out instead of being refused.
        let (ok, out) = b
            .try_sh("timeout 2 bash -c 'echo > /dev/tcp/10.77.0.100/80' 2>&1; echo rc=$?")
            .unwrap();
        assert!(ok);
        assert!(
            out.contains("rc=124"),
            "expected a timeout (no RST), got {out}"
        );
        let (ok, out) = b
            .try_sh("timeout 2 bash -c 'echo > /dev/tcp/10.77.0.100/81' 2>&1; echo rc=$?")
            .unwrap();
        assert!(
            ok && out.contains("rc=1"),
            "port 81 is the kernel's: refused, got {out}"
        );

        guard.remove().unwrap();
        assert!(
            !a.try_sh("nft list table netdev rvs").unwrap().0,
            "table not removed"
        );
        assert!(udp_arrives());
    })
    .unwrap();
}

#[test]
fn neighbours_are_resolved_and_missing_ones_probed() {
    if !can_run() {
        return;
    }
    let p = Pair::new("nb");
    let b_mac = p.b.mac("b0").unwrap().0;
    p.a.sh("ip route add 10.99.0.0/24 via 10.77.0.2 && ip -6 route add fd99::/64 via fd77::2")
        .unwrap();
    let a = &p.a;
    a.exec(|| {
        let ttl = Duration::from_millis(300);
        let mut r = Resolver::new(ResolverConfig {
            probe_timeout: Duration::from_secs(2),
            ttl,
            ..ResolverConfig::default()
        })
        .unwrap();
        let a0 = a
            .sh("cat /sys/class/net/a0/ifindex")
            .unwrap()
            .trim()
            .parse::<u32>()
            .unwrap();
        for (dst, neighbour, via_gw) in [
            ("10.77.0.2", "10.77.0.2", false),
            ("fd77::2", "fd77::2", false),
            ("10.99.0.5", "10.77.0.2", true),
            ("fd99::5", "fd77::2", true),
        ] {
            let dst: IpAddr = dst.parse().unwrap();
            let neighbour: IpAddr = neighbour.parse().unwrap();
            let route = r.route(dst).unwrap();
            assert_eq!(route.ifindex, a0);
            assert_eq!(route.gateway, via_gw.then_some(neighbour));
            if !via_gw {
                // The kernel has no entry yet: resolve() must probe for it.
                let table = a.sh(&format!("ip neigh show {neighbour} dev a0")).unwrap();
                assert!(
                    table.trim().is_empty(),
                    "entry exists before probing: {table}"
                );
            }
            let nh = r.resolve(dst).unwrap();
            assert_eq!(
                (nh.ifindex, nh.neighbour, nh.mac),
                (a0, neighbour, b_mac),
                "{dst}"
            );
            assert_eq!(r.lookup(dst, Instant::now()), Some(nh));
            let table = a.sh(&format!("ip neigh show {neighbour} dev a0")).unwrap();
            assert!(
                table.contains("lladdr"),
                "kernel entry after probing: {table}"
            );
        }
        // Nobody at .50: probing gives up after the deadline.
        let t = Instant::now();
        match r.resolve("10.77.0.50".parse().unwrap()) {
            Err(Error::Unresolved { .. }) => {}
            other => panic!("expected Unresolved, got {other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(4));
        // No default route in the namespace.
        assert!(matches!(
            r.resolve("10.123.0.1".parse().unwrap()),
            Err(Error::NoRoute(_))
        ));
        // Expired entries leave the fast path and come back with a refresh.
        std::thread::sleep(ttl);
        let v4: IpAddr = "10.99.0.5".parse().unwrap();
        assert_eq!(r.lookup(v4, Instant::now()), None);
        assert_eq!(r.refresh(), 4);
        assert!(r.lookup(v4, Instant::now()).is_some());
        r.invalidate("10.77.0.2".parse().unwrap());
        assert_eq!(r.lookup("10.77.0.2".parse().unwrap(), Instant::now()), None);
    })
    .unwrap();
}

#[test]
fn gratuitous_arp_and_unsolicited_na_reach_the_peer() {
    if !can_run() {
        return;
    }
    let p = Pair::new("ga");
    let a_mac = p.a.mac("a0").unwrap().0;
    // Let the peer learn from unsolicited announcements, so the kernel judges the frames
    // (untracked NAs create entries only on routers: RFC 9131, hence forwarding).
    p.b.sh(
        "sysctl -qw net.ipv4.conf.b0.arp_accept=1 && sysctl -qw net.ipv6.conf.all.forwarding=1 \
         && sysctl -qw net.ipv6.conf.b0.accept_untracked_na=1",
    )
    .unwrap();
    // Multicast (ff02::1) is routed only once addrconf has seen the carrier come up, which
    // the kernel's link watch reports asynchronously.
    let mut ready = false;
    for _ in 0..150 {
        ready =
            !p.b.sh("ip -6 route show table local type multicast dev b0")
                .unwrap()
                .trim()
                .is_empty();
        if ready {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ready, "b0 never got its multicast route");
    let mut capture = open(&p.b, "b0", PortConfig::default());
    let mut sender = p.a.exec(|| Sender::open("a0").expect("sender")).unwrap();
    assert_eq!(sender.mac(), a_mac);
    let garp = gratuitous_arp(a_mac, VIP.into());
    let na = unsolicited_na(a_mac, "fd77::100".parse().unwrap());
    sender.send(&garp).unwrap();
    sender.send(&na).unwrap();
    let (mut got_garp, mut got_na) = (false, false);
    drain(&mut capture, Duration::from_secs(3), 2, |f| {
        let (g, n) = (f == garp.as_slice(), f == na.as_slice());
        got_garp |= g;
        got_na |= n;
        g || n
    });
    assert!(got_garp && got_na, "garp {got_garp} na {got_na}");
    let mac = a_mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let mut learned = (String::new(), String::new());
    for _ in 0..50 {
        learned = (
            p.b.sh("ip neigh show 10.77.0.100 dev b0").unwrap(),
            p.b.sh("ip -6 neigh show fd77::100 dev b0").unwrap(),
        );
        if learned.0.contains(&mac) && learned.1.contains(&mac) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(learned.0.contains(&mac), "ARP not learned: {}", learned.0);
    assert!(
        learned.1.contains(&mac),
        "NA not learned: {}\n{}",
        learned.1,
        p.b.sh("awk '$2 != 0' /proc/net/snmp6").unwrap()
    );
}

#[test]
fn nft_guard_stops_forwarding_to_vips_and_of_real_server_replies() {
    if !can_run() {
        return;
    }
    // b0 (client side) -- a0 [A: router/director, ip_forward=1] a1 -- c0 (real server side)
    let mut p = Pair::new("fwd");
    let c = p.lab.add_netns("c").expect("namespace c");
    let out = std::process::Command::new("ip")
        .args([
            "link",
            "add",
            "a1",
            "netns",
            p.a.name(),
            "type",
            "veth",
            "peer",
            "name",
            "c0",
            "netns",
            c.name(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.a.sh(
        "ip addr add 10.78.0.1/24 dev a1 && ip link set a1 up && sysctl -qw net.ipv4.ip_forward=1",
    )
    .unwrap();
    c.sh("ip addr add 10.78.0.5/24 dev c0 && ip link set c0 up && ip route add default via 10.78.0.1").unwrap();
    p.b.sh("ip route add 10.78.0.0/24 via 10.77.0.1").unwrap();
    let b_to_c = "ping -c 2 -i 0.2 -W 1 10.78.0.5";
    let c_to_b = "ping -c 2 -i 0.2 -W 1 10.77.0.2";
    assert!(
        p.b.try_sh(b_to_c).unwrap().0,
        "forwarding must work before the guard"
    );
    assert!(
        c.try_sh(c_to_b).unwrap().0,
        "forwarding must work before the guard"
    );

    let mut tap_a0 = open(&p.a, "a0", PortConfig::default());
    let mut tap_a1 = open(&p.a, "a1", PortConfig::default());
    let mut c_capture = open(&c, "c0", PortConfig::default());
    let mut b_capture = open(&p.b, "b0", PortConfig::default());
    let (a, b) = (&p.a, &p.b);
    a.exec(|| {
        let rules = GuardRules {
            vips: vec![Match::addr(IpAddr::from([10, 78, 0, 5]))],
            replies: vec![Match::addr(IpAddr::from([10, 78, 0, 5]))],
            ..GuardRules::default()
        };
        let guard = IngressGuard::install(&["a0", "a1"], &rules).unwrap();
        for port in [&mut tap_a0, &mut tap_a1, &mut c_capture, &mut b_capture] {
            drain(port, Duration::from_millis(50), usize::MAX, |_| false);
        }
        // Client -> VIP: seen by the tap on a0, never forwarded to c0.
        assert!(!b.try_sh(b_to_c).unwrap().0, "a guarded VIP was forwarded");
        let is_req = |f: &[u8], s, d| icmp_echo(f, s, d) == Some(8);
        let seen = drain(&mut tap_a0, Duration::from_millis(300), usize::MAX, |f| {
            is_req(f, [10, 77, 0, 2], [10, 78, 0, 5])
        });
        assert_eq!(seen, 2, "the tap on a0 must see the client's packets");
        let leaked = drain(
            &mut c_capture,
            Duration::from_millis(300),
            usize::MAX,
            |f| is_req(f, [10, 77, 0, 2], [10, 78, 0, 5]),
        );
        assert_eq!(leaked, 0, "the kernel forwarded VIP traffic");
        // Real server -> client (a NAT reply would look like this): seen on a1, not forwarded.
        assert!(
            !c.try_sh(c_to_b).unwrap().0,
            "a real server's packet was forwarded"
        );
        let seen = drain(&mut tap_a1, Duration::from_millis(300), usize::MAX, |f| {
            is_req(f, [10, 78, 0, 5], [10, 77, 0, 2])
        });
        assert_eq!(seen, 2, "the tap on a1 must see the real server's packets");
        let leaked = drain(
            &mut b_capture,
            Duration::from_millis(300),
            usize::MAX,
            |f| is_req(f, [10, 78, 0, 5], [10, 77, 0, 2]),
        );
        assert_eq!(leaked, 0, "the kernel forwarded a real server's reply");
        guard.remove().unwrap();
    })
    .unwrap();
    assert!(
        p.b.try_sh(b_to_c).unwrap().0,
        "forwarding must work again after removal"
    );
}

#[test]
fn full_ring_drops_are_counted() {
    if !can_run() {
        return;
    }
    let p = Pair::new("drop");
    let (a_mac, b_mac) = (p.a.mac("a0").unwrap().0, p.b.mac("b0").unwrap().0);
    // Two 4 KiB blocks hold a few dozen small frames; send far more without reading.
    let mut port = open(
        &p.a,
        "a0",
        PortConfig {
            block_size: 4096,
            block_count: 2,
            ..PortConfig::default()
        },
    );
    let mut sender = p.b.exec(|| Sender::open("b0").expect("sender")).unwrap();
    let frames: Vec<Vec<u8>> = (0..500)
        .map(|i| marker_frame(a_mac, b_mac, i, 60))
        .collect();
    assert_eq!(sender.send_batch(&refs(&frames)), 500);
    std::thread::sleep(Duration::from_millis(50));
    let received = drain(&mut port, Duration::from_millis(300), usize::MAX, |f| {
        marker_seq(f).is_some()
    });
    let st = port.stats().unwrap();
    assert!(received > 0 && received < 500, "received {received}");
    assert!(st.kernel_drops > 0, "{st:?}");
    assert!(
        received as u64 + st.kernel_drops >= 500,
        "received {received}, {st:?}"
    );
    assert!(st.kernel_packets >= 500, "{st:?}");
    // Counters accumulate across reads (the kernel resets its own on every read).
    let again = port.stats().unwrap();
    assert_eq!(again.kernel_drops, st.kernel_drops);
}

/// A NAT real server listed by address only (`rs6`: port-0 or firewall-mark service) must
/// still resolve its gateway, the director: its neighbour solicitation goes to the
/// solicited-node multicast group, not to one of the director's own addresses (`keep6`), and
/// the guard must let it through to the kernel (rule 5 of the guard). Its other traffic to
/// the director's own addresses passes as before, and what is not neighbour discovery and not
/// for the director is still dropped.
#[test]
fn nft_guard_lets_an_address_only_ipv6_real_server_resolve_the_director() {
    if !can_run() {
        return;
    }
    // a: director (fd77::1), b: real server (fd77::2), a second address on b's side that is
    // not the director's.
    let p = Pair::new("nd6");
    p.a.sh("ip addr add fd77::99/64 dev a0 nodad").unwrap();
    let ping = "ping -6 -c 1 -W 2 fd77::1";
    assert!(
        p.b.try_sh(ping).unwrap().0,
        "ping must work before the guard"
    );
    let (a, b) = (&p.a, &p.b);
    a.exec(|| {
        let rules = GuardRules {
            keep_local: vec!["fd77::1".parse().unwrap()],
            replies: vec![Match::addr("fd77::2".parse().unwrap())],
            ..GuardRules::default()
        };
        let guard = IngressGuard::install(&["a0"], &rules).unwrap();
        // Both sides forget each other: b must send a multicast solicitation for fd77::1.
        a.sh("ip -6 neigh flush dev a0").unwrap();
        b.sh("ip -6 neigh flush dev b0").unwrap();
        let (ok, out) = b.try_sh(ping).unwrap();
        assert!(
            ok,
            "the real server could not resolve the director: {out}\n{}\n{}",
            b.sh("ip -6 neigh show dev b0").unwrap(),
            a.sh("nft list chain netdev rvs in_0").unwrap()
        );
        assert!(
            b.sh("ip -6 neigh show fd77::1 dev b0")
                .unwrap()
                .contains("lladdr"),
            "the director's MAC is known"
        );
        // fd77::99 is not in keep6: the real server's ping to it stays dropped.
        assert!(
            !b.try_sh("ping -6 -c 1 -W 1 fd77::99").unwrap().0,
            "traffic from an address-only real server reached the kernel"
        );
        let counters = a.sh("nft list chain netdev rvs in_0").unwrap();
        assert!(
            !counters.contains("@rs6 counter packets 0 "),
            "the rs6 rule dropped the ping to fd77::99: {counters}"
        );
        guard.remove().unwrap();
    })
    .unwrap();
}
