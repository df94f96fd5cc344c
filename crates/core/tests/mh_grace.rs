//! mh's previous table (`rvs_mh_grace`, an rvs addition): after a real-server change, a packet
//! that does not start a connection and has no entry on this director goes where the table
//! before the change pointed, for the grace; a SYN always uses the current table.

use std::net::IpAddr;

use rvs_core::conn::state::TcpFlags;
use rvs_core::conn::{HashSeed, Segment};
use rvs_core::director::{Packet, Verdict};
use rvs_core::sysctl::{MachineDefaults, SysctlSet};
use rvs_core::time::Duration;
use rvs_core::{
    DestConfig, Director, FwdMethod, Protocol, RandomSource, SchedKind, ServiceConfig,
    ServiceFlags, ServiceKey, Time,
};

struct NoRandom;
impl RandomSource for NoRandom {
    fn below(&mut self, _n: u32) -> u32 {
        0
    }
}

const VIP: &str = "10.0.0.1";
const FLOWS: u16 = 600;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key() -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip(VIP),
        port: 80,
    }
}

fn rs(i: u8) -> DestConfig {
    DestConfig::new(ip(&format!("192.168.1.{i}")), 80).fwd(FwdMethod::Route)
}

/// A director as the scale-out docs configure it: mh over address and port, DR, `sloppy_tcp`,
/// and `rvs_mh_grace` set to `grace` seconds through the sysctl table.
fn director(grace: &str) -> Director {
    let mut d = Director::new(HashSeed([7, 7, 7, 7]), Time(0));
    let mut sys = SysctlSet::new(MachineDefaults {
        free_buffer_pages: 1 << 20,
        cpus: 2,
    });
    sys.set("sloppy_tcp", "1", 2).unwrap();
    sys.set("rvs_mh_grace", grace, 2).unwrap();
    sys.apply_all(&mut d);
    let cfg = ServiceConfig::new(SchedKind::Mh, key().family()).flags(ServiceFlags::MH_PORT);
    d.table.add_service(key(), cfg, Time(0)).unwrap();
    for i in 1..=4 {
        d.table.add_dest(&key(), rs(i), Time(0)).unwrap();
    }
    d
}

fn pkt(sport: u16, syn: bool) -> Packet<'static> {
    Packet {
        fwmark: 0,
        proto: Protocol::Tcp,
        saddr: ip("198.51.100.7"),
        sport,
        daddr: ip(VIP),
        dport: 80,
        seg: Segment::Tcp(TcpFlags {
            syn,
            fin: false,
            ack: !syn,
            rst: false,
        }),
        len: 60,
        payload: &[],
    }
}

fn dest(v: Verdict) -> IpAddr {
    match v {
        Verdict::Forward(r) => r.daddr,
        other => panic!("expected a route, got {other:?}"),
    }
}

/// Real server of each flow `1000..1000 + FLOWS` for `syn` packets at `now`.
fn send(d: &mut Director, base: u16, syn: bool, now: Time) -> Vec<IpAddr> {
    (0..FLOWS)
        .map(|k| dest(d.packet_in(&pkt(base + k, syn), now, &mut NoRandom)))
        .collect()
}

fn add_fifth(ds: &mut [&mut Director]) {
    for d in ds {
        d.table.add_dest(&key(), rs(5), Time(0)).unwrap();
    }
}

#[test]
fn moved_flows_keep_their_real_server_across_a_real_server_change() {
    // Director A scheduled the flows; a fifth real server is added on every director; the
    // router then moves the flows to director B (no entries) and C (grace off).
    let mut a = director("60");
    let mut b = director("60");
    let mut c = director("0");
    let before = send(&mut a, 1000, true, Time::from_secs(1));
    add_fifth(&mut [&mut a, &mut b, &mut c]);
    let now = Time::from_secs(2);
    let on_b = send(&mut b, 1000, false, now);
    let on_c = send(&mut c, 1000, false, now);
    assert_eq!(
        on_b, before,
        "with the grace every moved flow keeps its server"
    );
    let moved = (0..usize::from(FLOWS))
        .filter(|&i| on_c[i] != before[i])
        .count();
    assert!(
        moved > 0,
        "without the grace some flows move (the table changed)"
    );
    // B created entries for them: later packets follow the entries, also after the grace.
    for t in 3..70 {
        b.tick(Time::from_secs(t), u64::MAX, 100_000, &mut NoRandom);
    }
    assert_eq!(send(&mut b, 1000, false, Time::from_secs(70)), before);
}

#[test]
fn a_syn_uses_the_current_table_and_the_grace_ends() {
    let mut a = director("30");
    let mut b = director("30");
    let before = send(&mut a, 1000, true, Time::from_secs(1));
    add_fifth(&mut [&mut a, &mut b]);
    // New connections (SYN) on B go where the new table says: as on A, and some to s5.
    let new_a = send(&mut a, 5000, true, Time::from_secs(2));
    let new_b = send(&mut b, 5000, true, Time::from_secs(2));
    assert_eq!(new_a, new_b);
    assert!(new_b.contains(&ip("192.168.1.5")));
    // The grace is counted from the first tick after the change.
    b.tick(Time::from_secs(2), u64::MAX, 100_000, &mut NoRandom);
    b.tick(Time::from_secs(31), u64::MAX, 100_000, &mut NoRandom);
    assert_eq!(send(&mut b, 1000, false, Time::from_secs(31)), before);
    // Past it, a flow without entry is looked up in the current table (fresh ports: no entry).
    let mut late = director("30");
    let orig = send(&mut late, 20000, true, Time::from_secs(1));
    add_fifth(&mut [&mut late]);
    let mut moved_to = director("30");
    add_fifth(&mut [&mut moved_to]);
    let current = send(&mut moved_to, 20000, true, Time::from_secs(1));
    let mut c = director("30");
    add_fifth(&mut [&mut c]);
    c.tick(Time::from_secs(2), u64::MAX, 100_000, &mut NoRandom);
    c.tick(Time::from_secs(33), u64::MAX, 100_000, &mut NoRandom);
    let after_grace = send(&mut c, 20000, false, Time::from_secs(33));
    assert_eq!(after_grace, current);
    assert_ne!(after_grace, orig, "the table changed for some of them");
}

#[test]
fn a_removed_server_is_never_chosen_from_the_previous_table() {
    let mut a = director("60");
    let mut b = director("60");
    let before = send(&mut a, 1000, true, Time::from_secs(1));
    let gone = ip("192.168.1.2");
    for d in [&mut a, &mut b] {
        d.table
            .del_dest(&key(), &gone, 80, Time::from_secs(1))
            .unwrap();
    }
    let on_b = send(&mut b, 1000, false, Time::from_secs(2));
    for (i, (&was, &now)) in before.iter().zip(&on_b).enumerate() {
        assert_ne!(now, gone, "flow {i}");
        if was != gone {
            assert_eq!(now, was, "flow {i} of a remaining server keeps it");
        }
    }
}

#[test]
fn an_edit_that_leaves_the_table_alone_keeps_the_kept_table() {
    let mut a = director("60");
    let mut b = director("60");
    let before = send(&mut a, 1000, true, Time::from_secs(1));
    add_fifth(&mut [&mut a, &mut b]);
    // Editing a threshold rebuilds the table to the same contents: the kept one stays.
    let cfg = rs(5).thresholds(1000, 0);
    b.table.edit_dest(&key(), cfg).unwrap();
    assert_eq!(send(&mut b, 1000, false, Time::from_secs(2)), before);
}

#[test]
fn setting_the_grace_to_zero_forgets_the_kept_table() {
    let mut a = director("60");
    let mut b = director("60");
    let mut c = director("0");
    let before = send(&mut a, 1000, true, Time::from_secs(1));
    add_fifth(&mut [&mut a, &mut b, &mut c]);
    b.table.set_mh_grace(Duration::ZERO);
    let on_b = send(&mut b, 1000, false, Time::from_secs(2));
    assert_eq!(on_b, send(&mut c, 1000, false, Time::from_secs(2)));
    assert_ne!(on_b, before);
}

#[test]
fn a_weight_change_keeps_moved_flows_on_their_server_too() {
    let mut a = director("60");
    let mut b = director("60");
    let mut c = director("0");
    let before = send(&mut a, 1000, true, Time::from_secs(1));
    for d in [&mut a, &mut b, &mut c] {
        d.table.edit_dest(&key(), rs(1).weight(4)).unwrap();
    }
    assert_eq!(send(&mut b, 1000, false, Time::from_secs(2)), before);
    assert_ne!(
        send(&mut c, 1000, false, Time::from_secs(2)),
        before,
        "the weight change moved some slots"
    );
}
