//! Wire tests against captures of keepalived 2.2.7's VRRP traffic (`tests/data/*.pcap`):
//!
//! 1. every VRRP packet decodes to exactly the fields tshark 4.0 reports for it
//!    (`tests/data/*.tshark`, an independent dissector's output, so tshark is not needed here);
//! 2. every packet re-encodes byte for byte, IP header and VRRP message, checksums included;
//! 3. replays: an [`Instance`] configured like one of the two keepalived nodes is fed the other
//!    node's packets at their capture times, and must emit the same adverts (bytes, IP IDs) at the
//!    same times, and the same gratuitous ARP / NA rounds, as that node did.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use rvs_vrrp::ip::{encode_ipv4, encode_ipv6, Ipv4Header, Ipv6Header};
use rvs_vrrp::wire::pass_auth_data;
use rvs_vrrp::{
    Action, Advert, Auth, ChecksumMode, Family, Instance, InstanceConfig, Packet, RxPacket, State,
    UnicastPeer, Version,
};

// ----- a tiny pcap reader ------------------------------------------------------------------------

struct Frame {
    /// 1-based frame number, as tshark counts.
    number: usize,
    time: Duration,
    data: Vec<u8>,
}

fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Classic libpcap, microsecond timestamps, either byte order, Ethernet link type.
fn read_pcap(name: &str) -> Vec<Frame> {
    let d = std::fs::read(data_path(name)).expect("capture file");
    assert!(d.len() >= 24, "pcap header");
    let le = match &d[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] => false,
        m => panic!("not a microsecond pcap: {m:02x?}"),
    };
    let u32_at = |o: usize| {
        let b = [d[o], d[o + 1], d[o + 2], d[o + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    assert_eq!(u32_at(20), 1, "link type Ethernet");
    let mut frames = Vec::new();
    let mut off = 24;
    while off + 16 <= d.len() {
        let (sec, usec, incl) = (u32_at(off), u32_at(off + 4), u32_at(off + 8) as usize);
        off += 16;
        assert!(off + incl <= d.len(), "truncated record");
        frames.push(Frame {
            number: frames.len() + 1,
            time: Duration::from_secs(u64::from(sec)) + Duration::from_micros(u64::from(usec)),
            data: d[off..off + incl].to_vec(),
        });
        off += incl;
    }
    assert_eq!(off, d.len(), "trailing bytes in pcap");
    frames
}

fn ethertype(f: &Frame) -> u16 {
    u16::from_be_bytes([f.data[12], f.data[13]])
}

fn eth_src(f: &Frame) -> [u8; 6] {
    f.data[6..12].try_into().unwrap()
}

/// The IP packet of a VRRP frame (IPv4 protocol 112 or IPv6 next header 112).
fn vrrp_ip(f: &Frame) -> Option<&[u8]> {
    let ip = &f.data[14..];
    match ethertype(f) {
        0x0800 if ip[9] == 112 => Some(ip),
        0x86dd if ip[6] == 112 => Some(ip),
        _ => None,
    }
}

/// Target address of a gratuitous ARP or unsolicited NA frame, if it is one.
fn gratuitous_target(f: &Frame) -> Option<IpAddr> {
    let p = &f.data[14..];
    match ethertype(f) {
        0x0806 => {
            // keepalived's GARP (docs/internals/vrrp.md#gratuitous-arp-and-unsolicited-na): a request whose sender IP is the target IP, to the
            // broadcast MAC. Ordinary ARP traffic in the capture is not one.
            let garp = p[6..8] == [0, 1] && p[14..18] == p[24..28] && p[18..24] == [0xff; 6];
            garp.then(|| IpAddr::V4(Ipv4Addr::new(p[24], p[25], p[26], p[27])))
        }
        0x86dd if p[6] == 58 && p[40] == 136 => {
            let t: [u8; 16] = p[48..64].try_into().unwrap();
            Some(IpAddr::V6(Ipv6Addr::from(t)))
        }
        _ => None,
    }
}

// ----- tshark fixture ----------------------------------------------------------------------------

/// One line of the tshark fixture, fields as named in its header.
struct Dissected {
    frame: usize,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    /// IPv4 id or IPv6 flow label.
    id_or_flow: u32,
    version: u8,
    packet_type: u8,
    vrid: u8,
    priority: u8,
    count: u8,
    auth_type: Option<u8>,
    interval: u16,
    checksum: u16,
    addresses: Vec<IpAddr>,
    auth_string: String,
}

fn hex(s: &str) -> u32 {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

fn read_tshark(name: &str) -> Vec<Dissected> {
    let text = std::fs::read_to_string(data_path(name)).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let c: Vec<&str> = l.split('|').collect();
            assert_eq!(c.len(), 22, "{l}");
            assert_eq!(c[21], "1", "tshark says the checksum is good: {l}");
            let pick = |a: &str, b: &str| if a.is_empty() { b } else { a }.to_string();
            let addrs = pick(c[18], c[19]);
            Dissected {
                frame: c[0].parse().unwrap(),
                src: pick(c[1], c[2]).parse().unwrap(),
                dst: pick(c[3], c[4]).parse().unwrap(),
                ttl: pick(c[5], c[6]).parse().unwrap(),
                id_or_flow: hex(&pick(c[7], c[8])),
                version: c[9].parse().unwrap(),
                packet_type: c[10].parse().unwrap(),
                vrid: c[11].parse().unwrap(),
                priority: c[12].parse().unwrap(),
                count: c[13].parse().unwrap(),
                auth_type: c[14].parse().ok(),
                interval: pick(c[15], c[16]).parse().unwrap(),
                checksum: hex(c[17]) as u16,
                addresses: addrs.split(',').map(|a| a.parse().unwrap()).collect(),
                auth_string: c[20].to_string(),
            }
        })
        .collect()
}

// ----- 1 + 2: decode exactly, re-encode byte for byte -------------------------------------------

fn check_capture(pcap: &str, tshark: &str, expected_packets: usize) {
    let frames = read_pcap(pcap);
    let dissected = read_tshark(tshark);
    let vrrp: Vec<&Frame> = frames.iter().filter(|f| vrrp_ip(f).is_some()).collect();
    assert_eq!(vrrp.len(), expected_packets);
    assert_eq!(dissected.len(), expected_packets);
    for (f, t) in vrrp.iter().zip(&dissected) {
        assert_eq!(f.number, t.frame, "same packet sequence as tshark");
        let ip = vrrp_ip(f).unwrap();
        let rx = RxPacket::parse(ip).unwrap();
        assert_eq!(
            (rx.src, rx.dst, rx.ttl),
            (t.src, t.dst, t.ttl),
            "frame {}",
            t.frame
        );
        assert!(!rx.ah);
        let family = Family::of(&rx.src);
        let p = Packet::new_checked(rx.vrrp, family).unwrap();
        assert_eq!(
            p.expected_len(),
            rx.vrrp.len(),
            "exact length, frame {}",
            t.frame
        );
        assert_eq!(p.version().number(), t.version);
        assert_eq!(p.packet_type(), t.packet_type);
        assert_eq!(p.vrid(), t.vrid);
        assert_eq!(p.priority(), t.priority);
        assert_eq!(p.count(), t.count);
        assert_eq!(p.checksum(), t.checksum);
        assert_eq!(p.addresses().collect::<Vec<_>>(), t.addresses);
        match p.version() {
            Version::V2 => {
                assert_eq!(Some(p.auth_type_raw()), t.auth_type);
                assert_eq!(u16::from(p.adver_int_v2()), t.interval);
                let auth = p.auth_data().unwrap();
                let expect = pass_auth_data(t.auth_string.as_bytes());
                assert_eq!(auth, expect, "frame {}", t.frame);
            }
            Version::V3 => {
                assert_eq!(t.auth_type, None);
                assert_eq!(p.reserved_v3(), 0);
                assert_eq!(p.max_adver_int_v3(), t.interval);
            }
        }
        // keepalived's checksum variant verifies everything it sent.
        assert!(p.verify_checksum(rx.src, rx.dst, ChecksumMode::PseudoHeader));

        // Re-encode from the decoded representation.
        let advert = Advert::parse(rx.vrrp, family).unwrap();
        let again = match (rx.src, rx.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let (h, _) = Ipv4Header::parse(ip).unwrap();
                assert_eq!(u32::from(h.id), t.id_or_flow);
                assert_eq!((h.tos, h.flags_frag), (0xc0, 0), "keepalived's IPv4 header");
                assert!(Ipv4Header::checksum_ok(ip));
                encode_ipv4(&advert, s, d, h.id, h.ttl, ChecksumMode::PseudoHeader).unwrap()
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let (h, _) = Ipv6Header::parse(ip).unwrap();
                assert_eq!(h.flow_label, t.id_or_flow);
                assert_eq!(h.traffic_class, 0xc0);
                encode_ipv6(&advert, s, d, h.hop_limit, h.flow_label).unwrap()
            }
            _ => unreachable!("tshark agrees the families match"),
        };
        assert_eq!(again, ip, "byte-for-byte re-encode of frame {}", t.frame);
    }
}

#[test]
fn cap1_decodes_exactly_and_reencodes() {
    check_capture("cap1.pcap", "cap1.tshark", 37);
}

#[test]
fn cap2_decodes_exactly_and_reencodes() {
    check_capture("cap2.pcap", "cap2.tshark", 257);
}

#[test]
fn gratuitous_frames_rebuild_byte_for_byte() {
    use rvs_vrrp::garp::{garp_frame, unsolicited_na_frame};
    let mut n = 0;
    for name in ["cap1.pcap", "cap2.pcap"] {
        for f in read_pcap(name) {
            let Some(target) = gratuitous_target(&f) else {
                continue;
            };
            let built = match target {
                IpAddr::V4(v) => garp_frame(eth_src(&f), v).to_vec(),
                IpAddr::V6(v) => unsolicited_na_frame(eth_src(&f), v, false).to_vec(),
            };
            assert_eq!(built, f.data, "{name} frame {}", f.number);
            n += 1;
        }
    }
    // cap1: 50 GARPs; cap2: 105 GARPs (of 115 ARP frames) and 70 unsolicited NAs.
    assert_eq!(n, 50 + 105 + 70);
}

#[test]
fn spec_examples_are_in_the_captures() {
    // The hex dumps quoted in docs/internals/vrrp.md#on-the-wire are frames 1 and 53 of cap1 and 3/10 of cap2.
    let c1 = read_pcap("cap1.pcap");
    assert_eq!(
        &c1[0].data[14..],
        &unhex("45c0002c00010000ff70d03f0a4d0002e0000012 213364020101f6e70a4d00640a4d00657365637265743132")[..]
    );
    assert_eq!(
        &vrrp_ip(&c1[52]).unwrap()[20..28],
        &unhex("213300020101 5ae8")[..]
    );
    let c2 = read_pcap("cap2.pcap");
    assert_eq!(
        vrrp_ip(&c2[2]).unwrap(),
        &unhex("45c0002000010000ff70a6100a4d00020a4d0001 313464010032 4a9c 0a4d0096")[..]
    );
    assert_eq!(
        &vrrp_ip(&c2[9]).unwrap()[20..],
        &unhex("3134c8010032e69b0a4d0096")[..]
    );
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// ----- 3: replays ----------------------------------------------------------------------------------

/// How far an emitted packet may be from keepalived's (its own scheduling/processing latency).
/// 10 ms: a node's other instances' GARP bursts delay its timers by up to ~5 ms (cap2 frame 325).
const TOLERANCE: Duration = Duration::from_millis(10);
/// A GARP/NA burst is sent back to back; one burst of 10 NAs in cap2 took 20 ms (frames 172-181).
const BURST_TOLERANCE: Duration = Duration::from_millis(25);

struct Replay<'a> {
    cfg: InstanceConfig,
    /// Start the instance at this time.
    start: Duration,
    /// Shut it down at this time (after feeding everything up to it).
    end: Duration,
    frames: &'a [Frame],
}

fn frame_time(frames: &[Frame], n: usize) -> Duration {
    frames[n - 1].time
}

/// Run a replay; returns the number of adverts and GARP/NA frames matched.
fn run_replay(r: Replay<'_>) -> (usize, usize) {
    let me = r.cfg.src_addr;
    let vrid = r.cfg.vrid;
    let vips = r.cfg.vips.clone();
    let in_window = |f: &&Frame| f.time >= r.start && f.time <= r.end;
    let ours = |f: &&Frame| {
        vrrp_ip(f).is_some_and(|ip| {
            let rx = RxPacket::parse(ip).unwrap();
            rx.vrrp[1] == vrid && rx.src == me
        })
    };
    let mut own: VecDeque<&Frame> = r.frames.iter().filter(in_window).filter(ours).collect();
    let my_mac = eth_src(own.front().expect("the node sent adverts"));
    let mut inputs: VecDeque<&Frame> = r
        .frames
        .iter()
        .filter(in_window)
        .filter(|f| {
            vrrp_ip(f).is_some_and(|ip| {
                let rx = RxPacket::parse(ip).unwrap();
                rx.vrrp[1] == vrid && rx.src != me
            })
        })
        .collect();
    let mut garps: VecDeque<&Frame> = r
        .frames
        .iter()
        .filter(in_window)
        .filter(|f| eth_src(f) == my_mac && gratuitous_target(f).is_some_and(|t| vips.contains(&t)))
        .collect();
    let (n_own, n_garp) = (own.len(), garps.len());

    let mut inst = Instance::new(r.cfg.clone()).unwrap();
    // keepalived arms its next advert timer only after it has pushed a GARP/NA burst out, so the
    // timer after a burst may run later by the burst's duration (20 ms for frames 172-181).
    let burst = std::cell::Cell::new(Duration::ZERO);
    let mut drain = |inst: &mut Instance, now: Duration, own: &mut VecDeque<&Frame>| {
        while let Some(a) = inst.poll_action() {
            match a {
                Action::SendAdvert { priority } => {
                    for tx in inst.encode_adverts(priority).unwrap() {
                        let f = own.pop_front().unwrap_or_else(|| {
                            panic!("advert prio {priority} at {now:?} that keepalived did not send")
                        });
                        let ip = vrrp_ip(f).unwrap();
                        let wire = match tx.dst {
                            IpAddr::V4(_) => ip,
                            IpAddr::V6(_) => &ip[40..],
                        };
                        assert_eq!(tx.packet, wire, "advert bytes vs frame {}", f.number);
                        assert_eq!(tx.ttl, ip[if tx.dst.is_ipv4() { 8 } else { 7 }]);
                        assert!(
                            diff(f.time, now) <= TOLERANCE,
                            "frame {} at {:?}, ours at {now:?}",
                            f.number,
                            f.time
                        );
                    }
                }
                Action::Garp { rounds } => {
                    for _ in 0..rounds {
                        for vip in &vips {
                            let f = garps.pop_front().expect("keepalived sent this GARP/NA");
                            assert_eq!(gratuitous_target(f), Some(*vip), "frame {}", f.number);
                            assert!(
                                diff(f.time, now) <= BURST_TOLERANCE,
                                "GARP frame {}",
                                f.number
                            );
                            burst.set(burst.get().max(f.time.saturating_sub(now)));
                        }
                    }
                }
                Action::AddVips | Action::RemoveVips | Action::Notify(_) => {}
                Action::AnnounceSource => panic!("no FAULT in these captures"),
            }
        }
    };

    inst.start(r.start);
    drain(&mut inst, r.start, &mut own);
    loop {
        let next_in = inputs.front().map(|f| f.time);
        let dl = inst.poll_timeout().filter(|d| *d <= r.end);
        match (dl, next_in) {
            (Some(dl), n) if n.map_or(true, |n| dl <= n) => {
                // keepalived runs a timer a little after it is due and re-arms from that moment;
                // run ours at the moment keepalived's packet shows it ran, when that is close.
                let now = match own.front() {
                    Some(f) if f.time >= dl && f.time <= dl + burst.get() + TOLERANCE => f.time,
                    _ => dl,
                };
                burst.set(Duration::ZERO);
                inst.handle_timeout(now);
                drain(&mut inst, now, &mut own);
            }
            (_, Some(t)) => {
                let f = inputs.pop_front().unwrap();
                let rx = RxPacket::parse(vrrp_ip(f).unwrap()).unwrap();
                let _ = inst.handle_advert(t, &rx);
                drain(&mut inst, t, &mut own);
            }
            (_, None) => break,
        }
    }
    inst.shutdown(r.end);
    drain(&mut inst, r.end, &mut own);
    assert!(
        own.is_empty(),
        "keepalived sent adverts we did not: {:?}",
        own.front().map(|f| f.number)
    );
    assert!(
        garps.is_empty(),
        "keepalived sent GARP/NA we did not: {:?}",
        garps.front().map(|f| f.number)
    );
    assert_eq!(inst.state(), State::Stopped);
    (n_own, n_garp)
}

fn diff(a: Duration, b: Duration) -> Duration {
    if a > b {
        a - b
    } else {
        b - a
    }
}

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cap1_config(src: &str, priority: u8) -> InstanceConfig {
    let mut c = InstanceConfig::new(
        "VI_1",
        51,
        Version::V2,
        v4(src),
        vec![v4("10.77.0.100"), v4("10.77.0.101")],
    );
    c.priority = priority;
    c.auth = Auth::Pass(pass_auth_data(b"secret12345"));
    c
}

#[test]
fn replay_cap1_node2_master_preempted_then_fast_takeover() {
    // 10.77.0.2, priority 100: MASTER at frame 1, preempted by 10.77.0.1 (150) at frame 13,
    // takes over 0.61 s (Skew_Time) after the priority-0 advert of frame 53, priority 0 at
    // shutdown (frame 87). Its IP IDs run 1, 2, 3 … 0x10 across both mastership periods.
    let frames = read_pcap("cap1.pcap");
    let cfg = cap1_config("10.77.0.2", 100);
    let down = Instance::new(cfg.clone()).unwrap().master_down_interval();
    assert_eq!(down, Duration::from_micros(3_609_375));
    let (adverts, garps) = run_replay(Replay {
        start: frame_time(&frames, 1) - down,
        end: frame_time(&frames, 87),
        cfg,
        frames: &frames,
    });
    assert_eq!((adverts, garps), (16, 30));
}

#[test]
fn replay_cap1_node1_preempts_then_resigns() {
    // 10.77.0.1, priority 150: started in BACKUP, discards the two lower-priority adverts
    // (frames 1, 12) without restarting its timer, becomes MASTER at frame 13, sends the second
    // GARP batch 5 s later (frames 28-37, just before the advert of frame 38), priority 0 at 53.
    let frames = read_pcap("cap1.pcap");
    let cfg = cap1_config("10.77.0.1", 150);
    let down = Instance::new(cfg.clone()).unwrap().master_down_interval();
    assert_eq!(down, Duration::from_micros(3_414_062));
    let (adverts, garps) = run_replay(Replay {
        start: frame_time(&frames, 13) - down,
        end: frame_time(&frames, 53),
        cfg,
        frames: &frames,
    });
    assert_eq!((adverts, garps), (21, 20));
}

#[test]
fn replay_cap2_vrid52_v3_unicast() {
    // v3 unicast, 0.5 s: 10.77.0.2 (100) is MASTER (frames 3, 9), yields to 10.77.0.1 (200),
    // learns M = 50 cs, and after the peer's reload to priority 90 takes over exactly
    // 3 × 0.5 s + (256−100) × 0.5 / 256 s = 1.804687 s after the last priority-200 advert.
    let frames = read_pcap("cap2.pcap");
    let mut cfg = InstanceConfig::new(
        "VI_52",
        52,
        Version::V3,
        v4("10.77.0.2"),
        vec![v4("10.77.0.150")],
    );
    cfg.advert_int_cs = 50;
    cfg.unicast_peers = vec![UnicastPeer::new(v4("10.77.0.1"))];
    let down = Instance::new(cfg.clone()).unwrap().master_down_interval();
    assert_eq!(down, Duration::from_micros(1_804_687));
    let (adverts, garps) = run_replay(Replay {
        start: frame_time(&frames, 3) - down,
        end: frame_time(&frames, 281),
        cfg,
        frames: &frames,
    });
    assert_eq!((adverts, garps), (69, 15));
}

#[test]
fn replay_cap2_vrid53_v3_ipv6_multicast() {
    // v3 over IPv6, 1 s, node fe80::b406:c0ff:fe58:109a priority 110 against priority 120.
    let frames = read_pcap("cap2.pcap");
    let src: IpAddr = "fe80::b406:c0ff:fe58:109a".parse().unwrap();
    let cfg = {
        let mut c = InstanceConfig::new(
            "VI_53",
            53,
            Version::V3,
            src,
            vec!["fe80::53".parse().unwrap(), "2001:db8::53".parse().unwrap()],
        );
        c.priority = 110;
        c
    };
    let down = Instance::new(cfg.clone()).unwrap().master_down_interval();
    assert_eq!(down, Duration::from_micros(3_570_312));
    let (adverts, garps) = run_replay(Replay {
        start: frame_time(&frames, 17) - down,
        end: frame_time(&frames, 281),
        cfg,
        frames: &frames,
    });
    assert_eq!((adverts, garps), (11, 30));
}

#[test]
fn replay_cap2_vrid61_interval_mismatch_starves_adverts() {
    // v2, 10.77.0.2 priority 200 with advert_int 2 against a peer with advert_int 1: every
    // peer advert is rejected (interval mismatch) — both are MASTER — and, keepalived's quirk,
    // each rejected packet restarts our 2 s advert timer, so we send exactly one advert (frame
    // 333) before the priority-0 one at shutdown (frame 443).
    let frames = read_pcap("cap2.pcap");
    let mut cfg = InstanceConfig::new(
        "VI_61",
        61,
        Version::V2,
        v4("10.77.0.2"),
        vec![v4("10.77.0.161")],
    );
    cfg.priority = 200;
    cfg.advert_int_cs = 200;
    let down = Instance::new(cfg.clone()).unwrap().master_down_interval();
    let (adverts, garps) = run_replay(Replay {
        start: frame_time(&frames, 333) - down,
        end: frame_time(&frames, 443),
        cfg,
        frames: &frames,
    });
    assert_eq!((adverts, garps), (2, 10));
}

#[test]
fn cap2_mismatch_experiment_rejects_for_keepalived_reasons() {
    use rvs_vrrp::rx::validate;
    use rvs_vrrp::Reject;
    // Frames 284-445 of cap2: two keepalived nodes whose VRIDs 61-63 disagree (advert_int 1 vs 2,
    // password "aaaa" vs "bbbb", one VIP vs two). Each side must reject every advert of the
    // other, for the reason keepalived logged.
    let frames = read_pcap("cap2.pcap");
    let node = |vrid: u8, me: &str| -> InstanceConfig {
        let n1 = me == "10.77.0.1";
        let mut vips = vec![v4(&format!("10.77.0.{}", 100 + u16::from(vrid)))];
        if vrid == 63 && !n1 {
            vips.push(v4("10.77.0.164"));
        }
        let mut c = InstanceConfig::new("VI", vrid, Version::V2, v4(me), vips);
        c.priority = if n1 { 150 } else { 200 };
        if vrid == 61 && !n1 {
            c.advert_int_cs = 200;
        }
        if vrid == 62 {
            c.auth = Auth::Pass(pass_auth_data(if n1 { b"aaaa" } else { b"bbbb" }));
        }
        c
    };
    let mut seen = 0;
    for f in &frames {
        let Some(ip) = vrrp_ip(f) else { continue };
        let rx = RxPacket::parse(ip).unwrap();
        let vrid = rx.vrrp[1];
        if !(61..=63).contains(&vrid) {
            continue;
        }
        let sender_is_n1 = rx.src == v4("10.77.0.1");
        let receiver = node(
            vrid,
            if sender_is_n1 {
                "10.77.0.2"
            } else {
                "10.77.0.1"
            },
        );
        let expected = match (vrid, sender_is_n1) {
            (61, true) => Reject::AdvertInterval {
                got: 1,
                expected: 2,
            },
            (61, false) => Reject::AdvertInterval {
                got: 2,
                expected: 1,
            },
            (62, _) => Reject::Password,
            (63, true) => Reject::AddressCount {
                got: 1,
                expected: 2,
            },
            (63, false) => Reject::AddressCount {
                got: 2,
                expected: 1,
            },
            _ => unreachable!(),
        };
        assert_eq!(
            validate(&receiver, &rx, true, ChecksumMode::PseudoHeader),
            Err(expected),
            "frame {}",
            f.number
        );
        // The sender's own configuration accepts it (so the reject is the mismatch alone).
        let mut sender = node(
            vrid,
            if sender_is_n1 {
                "10.77.0.1"
            } else {
                "10.77.0.2"
            },
        );
        sender.src_addr = receiver.src_addr;
        assert!(validate(&sender, &rx, true, ChecksumMode::PseudoHeader).is_ok());
        seen += 1;
    }
    assert_eq!(
        seen,
        3 + 1 + 14 + 1 + 1 + 1 + 18 + 1 + 1 + 1 + 5 + 13 + 1 + 1
    );
}

/// The mismatch experiment's node 1 (10.77.0.1, priority 150, advert_int 1) for VRID `vrid`.
fn cap2_node1(vrid: u8, version: Version) -> InstanceConfig {
    let vip = v4(&format!("10.77.0.{}", 100 + u16::from(vrid)));
    let mut c = InstanceConfig::new("VI", vrid, version, v4("10.77.0.1"), vec![vip]);
    c.priority = if vrid == 64 { 100 } else { 150 };
    if vrid == 62 {
        c.auth = Auth::Pass(pass_auth_data(b"aaaa"));
    }
    c
}

#[test]
fn replay_cap2_vrid61_node1_timer_pushed_back_by_rejected_advert() {
    // The other side of the starvation quirk: the one advert node 2 sent (frame 333, rejected
    // for its interval) restarts node 1's advert timer, so node 1's next advert (frame 343)
    // comes 1.000249 s after frame 333 instead of on its own beat.
    let frames = read_pcap("cap2.pcap");
    let cfg = cap2_node1(61, Version::V2);
    let down = Instance::new(cfg.clone()).unwrap().master_down_interval();
    let (adverts, garps) = run_replay(Replay {
        start: frame_time(&frames, 301) - down,
        end: frame_time(&frames, 439),
        cfg,
        frames: &frames,
    });
    assert_eq!((adverts, garps), (18, 10));
}

#[test]
fn replay_cap2_vrid62_node1_password_mismatch() {
    // Node 2's advert (frame 284, password "bbbb") arrives while node 1 is BACKUP: rejected, and
    // it does not restart the master-down timer, so node 1 becomes MASTER on time (frame 307).
    let frames = read_pcap("cap2.pcap");
    let cfg = cap2_node1(62, Version::V2);
    let down = Instance::new(cfg.clone()).unwrap().master_down_interval();
    let start = frame_time(&frames, 307) - down;
    assert!(frame_time(&frames, 284) > start);
    let (adverts, garps) = run_replay(Replay {
        start,
        end: frame_time(&frames, 440),
        cfg,
        frames: &frames,
    });
    assert_eq!((adverts, garps), (19, 10));
}

#[test]
fn replay_cap2_vrid64_node1_v3_multicast() {
    let frames = read_pcap("cap2.pcap");
    let cfg = cap2_node1(64, Version::V3);
    let down = Instance::new(cfg.clone()).unwrap().master_down_interval();
    assert_eq!(down, Duration::from_micros(3_609_375));
    let (adverts, garps) = run_replay(Replay {
        start: frame_time(&frames, 319) - down,
        end: frame_time(&frames, 442),
        cfg,
        frames: &frames,
    });
    assert_eq!((adverts, garps), (19, 10));
}
