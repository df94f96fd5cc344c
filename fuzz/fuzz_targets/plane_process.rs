//! The whole pure packet path, `Plane::process` (`crates/packet`), over a sequence of frames
//! from both sides of a director with NAT, DR, TUN, full-NAT, persistent, UDP and IPv6
//! services: never a panic, and every verdict that sends bytes names a range inside the buffer
//! (a `Fragment` verdict is also fragmented). The director's table, connection entries and
//! timers carry over from frame to frame, so state-machine paths (SYN, SYN-ACK, replies,
//! expiry, ICMP errors about known flows) are reached, not only the parser.
//!
//! Input: records `[port][time step, 100 ms units][length: u16 LE][frame bytes]`, up to 32 of
//! them (scripts/fuzz seeds the corpus from the golden fixtures in this format).
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use rvs_core::conn::HashSeed;
use rvs_core::{
    DestConfig, Director, FwdMethod, Protocol, RandomSource, SchedKind, ServiceConfig, ServiceKey,
    Time,
};
use rvs_packet::plane::{Neighbours, NextHop, Plane, PlaneConfig, PortConfig, Verdict};

const HEADROOM: usize = 128;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The golden fixtures' topology: port 0 towards clients (router 02:00:00:00:00:fe), port 1 on
/// the real servers' link (192.168.1.0/24, 2001:db8:2::/64; .99 never resolves).
struct Topology;

impl Neighbours for Topology {
    fn next_hop(&self, dst: IpAddr) -> Option<NextHop> {
        let (link, last) = match dst {
            IpAddr::V4(a) => (a.octets()[..3] == [192, 168, 1], a.octets()[3]),
            IpAddr::V6(a) => (a.segments()[..4] == [0x2001, 0xdb8, 2, 0], a.octets()[15]),
        };
        if !link {
            return Some(NextHop {
                port: 0,
                mac: [2, 0, 0, 0, 0, 0xfe],
            });
        }
        (last != 99).then_some(NextHop {
            port: 1,
            mac: [2, 0, 0, 0, 1, last],
        })
    }
}

struct Rng(u32);

impl RandomSource for Rng {
    fn below(&mut self, n: u32) -> u32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        if n == 0 {
            0
        } else {
            self.0 % n
        }
    }
}

fn key(proto: Protocol, addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto,
        addr: ip(addr),
        port,
    }
}

fn director() -> Director {
    let mut d = Director::new(HashSeed([1, 2, 3, 4]), Time(0));
    let services: [(ServiceKey, FwdMethod, u16, Option<u32>, [&str; 2]); 7] = [
        (
            key(Protocol::Tcp, "198.51.100.10", 80),
            FwdMethod::Masq,
            8080,
            None,
            ["192.168.1.11", "192.168.1.12"],
        ),
        (
            key(Protocol::Udp, "198.51.100.10", 53),
            FwdMethod::Route,
            53,
            None,
            ["192.168.1.11", "192.168.1.12"],
        ),
        (
            key(Protocol::Tcp, "198.51.100.10", 443),
            FwdMethod::Tunnel,
            443,
            None,
            ["192.168.1.13", "192.168.1.99"],
        ),
        (
            key(Protocol::Tcp, "198.51.100.10", 8443),
            FwdMethod::FullNat,
            8443,
            None,
            ["192.168.1.11", "192.168.1.12"],
        ),
        (
            key(Protocol::Tcp, "198.51.100.10", 21),
            FwdMethod::Masq,
            21,
            Some(300),
            ["192.168.1.11", "192.168.1.12"],
        ),
        (
            key(Protocol::Tcp, "2001:db8:1::10", 80),
            FwdMethod::Masq,
            8080,
            None,
            ["2001:db8:2::b", "2001:db8:2::c"],
        ),
        (
            key(Protocol::Udp, "2001:db8:1::10", 53),
            FwdMethod::Route,
            53,
            None,
            ["2001:db8:2::b", "2001:db8:2::c"],
        ),
    ];
    for (k, fwd, port, persist, dests) in services {
        let mut cfg = ServiceConfig::new(SchedKind::Wlc, k.family());
        if let Some(t) = persist {
            cfg = cfg.persistent(t);
        }
        d.table.add_service(k, cfg, Time(0)).unwrap();
        for a in dests {
            d.table
                .add_dest(&k, DestConfig::new(ip(a), port).fwd(fwd), Time(0))
                .unwrap();
        }
    }
    d
}

fn plane() -> Plane<Topology> {
    let v4 = |s: &str| s.parse().unwrap();
    let v6 = |s: &str| s.parse().unwrap();
    let cfg = PlaneConfig {
        ports: vec![
            PortConfig {
                mac: [2, 0, 0, 0, 0, 1],
                mtu: 1500,
                addr4: Some(v4("198.51.100.1")),
                addr6: Some(v6("2001:db8:1::1")),
            },
            PortConfig {
                mac: [2, 0, 0, 0, 1, 1],
                mtu: 1500,
                addr4: Some(v4("192.168.1.1")),
                addr6: Some(v6("2001:db8:2::1")),
            },
        ],
        owned: vec![
            (ip("198.51.100.10"), 0),
            (ip("2001:db8:1::10"), 0),
            (ip("192.168.1.100"), 1),
        ],
        laddrs: {
            let mut l = rvs_core::laddr::LaddrPools::default();
            l.add(
                key(Protocol::Tcp, "198.51.100.10", 8443),
                ip("192.168.1.100"),
            );
            l
        },
        pmtu_disc: true,
        ..PlaneConfig::default()
    };
    Plane::new(cfg, Topology)
}

fuzz_target!(|data: &[u8]| {
    let mut d = director();
    // The SYN proxy (NAT and full-NAT services) on for inputs with an odd first byte.
    d.sys.syn_proxy = data.first().is_some_and(|b| b & 1 != 0);
    let mut p = plane();
    let mut rng = Rng(7);
    let mut now = 1_000u64;
    // Room for a reassembled datagram of up to 64 KiB (the plane writes it over the fragment).
    let mut buf = vec![0u8; HEADROOM + 65_600 + 256];
    let mut rest = data;
    for _ in 0..32 {
        if rest.len() < 4 {
            break;
        }
        // Ports 0 and 1 exist; 2 does not (a frame from an unknown port must be refused).
        let port = u16::from(rest[0] % 3);
        now += u64::from(rest[1]) * 100;
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]])) % 2048;
        rest = &rest[4..];
        let n = len.min(rest.len());
        buf.fill(0);
        buf[HEADROOM..HEADROOM + n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        let v = p.process(&mut d, &mut buf, HEADROOM, n, port, Time(now), &mut rng);
        match v {
            Verdict::Transmit { start, len, .. } | Verdict::Local { start, len, .. } => {
                assert!(
                    start.checked_add(len).is_some_and(|e| e <= buf.len()),
                    "{v:?}"
                );
            }
            Verdict::Fragment {
                start,
                len,
                mtu,
                ident,
                ..
            } => {
                let frame = &buf[start..start + len];
                let parsed = rvs_packet::parse(frame).expect("a frame to fragment parses");
                let mut frags = rvs_packet::frag::fragment(frame, &parsed, mtu, ident)
                    .expect("a frame to fragment can be fragmented");
                let mut out = vec![0u8; 2048];
                let mut covered = 0usize;
                while let Some(n) = frags.next_into(&mut out).expect("fragments fit 2 KiB") {
                    assert!(n <= out.len());
                    covered += n;
                    assert!(covered < 64 * len, "fragmentation does not end");
                }
            }
            Verdict::Pass | Verdict::Drop(_) | Verdict::Queued => {}
        }
        if rest.first().is_some_and(|b| b & 0x80 != 0) {
            d.tick(Time(now), u64::MAX, 1_000, &mut rng);
        }
    }
});
