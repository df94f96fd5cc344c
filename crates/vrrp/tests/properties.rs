//! Property tests: no input bytes make anything panic, encode/decode round-trips, and random
//! event sequences keep the state machine's invariants (VIPs installed exactly while MASTER,
//! a deadline exactly while BACKUP/MASTER).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use proptest::prelude::*;
use rvs_vrrp::ip::{encode_ipv4, Ipv4Header, Ipv6Header};
use rvs_vrrp::rx::validate;
use rvs_vrrp::{
    Action, Advert, Auth, ChecksumMode, Family, Instance, InstanceConfig, Packet, RxPacket, State,
    TrackerConfig, Version,
};

fn configs() -> Vec<InstanceConfig> {
    let v4 = |s: &str| -> IpAddr { s.parse().unwrap() };
    let mut a = InstanceConfig::new("A", 1, Version::V2, v4("10.0.0.2"), vec![v4("10.0.0.100")]);
    a.auth = Auth::Pass(*b"password");
    let b = InstanceConfig::new(
        "B",
        1,
        Version::V3,
        v4("10.0.0.2"),
        vec![v4("10.0.0.100"), v4("10.0.0.101")],
    );
    let mut c = b.clone();
    c.unicast_peers = vec![rvs_vrrp::UnicastPeer::new(v4("10.0.0.1"))];
    c.check_unicast_src = true;
    let d = InstanceConfig::new(
        "D",
        1,
        Version::V3,
        v4("fe80::2"),
        vec![v4("fe80::100"), v4("2001:db8::100")],
    );
    vec![a, b, c, d]
}

fn exercise(bytes: &[u8]) {
    if let Ok(rx) = RxPacket::parse(bytes) {
        let fam = Family::of(&rx.src);
        if let Ok(p) = Packet::new_checked(rx.vrrp, fam) {
            let _ = (
                p.version(),
                p.packet_type(),
                p.vrid(),
                p.priority(),
                p.count(),
            );
            let _ = (p.auth_type_raw(), p.adver_int_v2(), p.max_adver_int_v3());
            let _ = (p.interval(), p.checksum(), p.expected_len(), p.auth_data());
            let _ = p.addresses().count();
            let _ = p.verify_checksum(rx.src, rx.dst, ChecksumMode::PseudoHeader);
        }
        let _ = Advert::parse(rx.vrrp, fam);
        for cfg in configs() {
            for check in [true, false] {
                for mode in [
                    ChecksumMode::PseudoHeader,
                    ChecksumMode::OldUnicast,
                    ChecksumMode::NoPseudoHeader,
                ] {
                    let _ = validate(&cfg, &rx, check, mode);
                }
            }
            let mut i = Instance::new(cfg).unwrap();
            i.start(Duration::ZERO);
            let _ = i.handle_advert(Duration::from_secs(1), &rx);
            i.handle_timeout(Duration::from_secs(10));
            let _ = i.handle_advert(Duration::from_secs(11), &rx);
        }
    }
    let _ = Ipv4Header::parse(bytes);
    let _ = Ipv6Header::parse(bytes);
    let _ = Ipv4Header::checksum_ok(bytes);
    for fam in [Family::Inet, Family::Inet6] {
        let _ = Advert::parse(bytes, fam);
    }
}

/// A VRRP-looking IPv4 packet with random fields, so fuzzing gets past the IP header checks.
fn vrrpish() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..80),
        any::<u8>(),
        any::<u16>(),
    )
        .prop_map(|(first, body, ttl, tot)| {
            let mut h = Ipv4Header::vrrp(
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(224, 0, 0, 18),
                1,
                ttl,
                body.len() + 1,
            );
            if tot % 3 == 0 {
                h.total_len = tot;
            }
            let mut p = Vec::new();
            h.emit(&mut p);
            p.push(first);
            p.extend_from_slice(&body);
            p
        })
}

fn address(v6: bool) -> BoxedStrategy<IpAddr> {
    if v6 {
        any::<u128>()
            .prop_map(|a| IpAddr::V6(Ipv6Addr::from(a)))
            .boxed()
    } else {
        any::<u32>()
            .prop_map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .boxed()
    }
}

fn advert() -> impl Strategy<Value = (Advert, bool)> {
    any::<bool>().prop_flat_map(|v6| {
        (
            any::<bool>(),
            any::<u8>(),
            any::<u8>(),
            0u8..3,
            0u16..4096,
            prop::collection::vec(address(v6), 0..20),
            any::<[u8; 8]>(),
        )
            .prop_map(
                move |(v3, vrid, priority, auth, int, addresses, auth_data)| {
                    let version = if v3 { Version::V3 } else { Version::V2 };
                    let v2v4 = !v3 && !v6;
                    (
                        Advert {
                            version,
                            packet_type: 1,
                            vrid,
                            priority,
                            auth_or_reserved: if v3 { 0 } else { auth },
                            adver_int: if v3 { int } else { int % 256 },
                            addresses,
                            auth_data: if v2v4 { auth_data } else { [0; 8] },
                        },
                        v6,
                    )
                },
            )
    })
}

#[derive(Debug, Clone)]
enum Op {
    Wait(u16),
    Advert { prio: u8, high_src: bool, bad: bool },
    Interface(bool),
    Tracker(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u16..5000).prop_map(Op::Wait),
        (any::<u8>(), any::<bool>(), any::<bool>()).prop_map(|(prio, high_src, bad)| Op::Advert {
            prio,
            high_src,
            bad
        }),
        any::<bool>().prop_map(Op::Interface),
        (0usize..3, any::<bool>()).prop_map(|(i, ok)| Op::Tracker(i, ok)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        exercise(&bytes);
    }

    #[test]
    fn vrrp_shaped_bytes_never_panic(bytes in vrrpish()) {
        exercise(&bytes);
    }

    #[test]
    fn encode_decode_roundtrip((a, v6) in advert()) {
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            ("fe80::1".parse().unwrap(), "ff02::12".parse().unwrap())
        } else {
            ("10.0.0.1".parse().unwrap(), "224.0.0.18".parse().unwrap())
        };
        let fam = Family::of(&src);
        let mut out = Vec::new();
        a.emit(&mut out, src, dst, ChecksumMode::PseudoHeader).unwrap();
        prop_assert_eq!(out.len(), a.buffer_len(fam));
        let p = Packet::new_checked(&out[..], fam).unwrap();
        prop_assert!(p.verify_checksum(src, dst, ChecksumMode::PseudoHeader));
        prop_assert_eq!(Advert::parse(&out, fam).unwrap(), a.clone());
        if let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) {
            let pkt = encode_ipv4(&a, s, d, 9, 255, ChecksumMode::PseudoHeader).unwrap();
            prop_assert!(Ipv4Header::checksum_ok(&pkt));
            let rx = RxPacket::parse(&pkt).unwrap();
            prop_assert_eq!(rx.vrrp, &out[..]);
        }
    }

    #[test]
    fn state_machine_invariants(ops in prop::collection::vec(op(), 1..60), prio in 1u8..=255) {
        let me: IpAddr = "10.0.0.2".parse().unwrap();
        let mut cfg = InstanceConfig::new("P", 9, Version::V3, me, vec!["10.0.0.9".parse().unwrap()]);
        cfg.priority = prio;
        cfg.advert_int_cs = 20;
        cfg.trackers = vec![
            TrackerConfig { weight: 0, reverse: false },
            TrackerConfig { weight: -40, reverse: false },
            TrackerConfig { weight: 30, reverse: true },
        ];
        let mut i = Instance::new(cfg.clone()).unwrap();
        let mut now = Duration::from_secs(1);
        i.start(now);
        let mut vips_installed = false;
        for op in ops {
            match op {
                Op::Wait(ms) => {
                    let until = now + Duration::from_millis(u64::from(ms));
                    // Bounded: at most one deadline per 10 ms of waiting plus slack.
                    for _ in 0..(u32::from(ms) / 10 + 10) {
                        match i.poll_timeout() {
                            Some(t) if t <= until => {
                                prop_assert!(t >= now, "deadline in the past");
                                now = t;
                                i.handle_timeout(now);
                            }
                            _ => break,
                        }
                    }
                    now = until;
                    i.handle_timeout(now);
                }
                Op::Advert { prio, high_src, bad } => {
                    let mut pc = cfg.clone();
                    pc.src_addr = if high_src { "10.0.0.3" } else { "10.0.0.1" }.parse().unwrap();
                    pc.priority = prio.max(1);
                    if bad {
                        pc.vips.push("10.0.0.10".parse().unwrap());
                    }
                    let tx = Instance::new(pc).unwrap().encode_adverts(prio).unwrap().remove(0);
                    let rx = RxPacket::parse(&tx.packet).unwrap();
                    let r = i.handle_advert(now, &rx);
                    prop_assert!(!bad || r.is_err() || !matches!(i.state(), State::Backup | State::Master));
                }
                Op::Interface(up) => i.set_interface_up(now, up),
                Op::Tracker(t, ok) => i.set_tracker(now, t, ok),
            }
            while let Some(a) = i.poll_action() {
                match a {
                    Action::AddVips => {
                        prop_assert!(!vips_installed);
                        vips_installed = true;
                    }
                    Action::RemoveVips => {
                        prop_assert!(vips_installed);
                        vips_installed = false;
                    }
                    _ => {}
                }
            }
            prop_assert_eq!(vips_installed, i.state() == State::Master);
            prop_assert_eq!(
                i.poll_timeout().is_some(),
                matches!(i.state(), State::Backup | State::Master)
            );
            let p = i.effective_priority();
            prop_assert!(p >= 1);
            prop_assert!(p == 255 || p <= 254);
            prop_assert_eq!(p == 255, i.base_priority() == 255);
            prop_assert!(i.base_priority() == prio || (prio == 255 && i.base_priority() == 254));
        }
    }
}
