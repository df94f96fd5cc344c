//! Connection synchronisation rules (`docs/internals/sync.md`): when a master director
//! announces an entry, and what a backup makes of a received one. Time is passed in.

use std::net::IpAddr;

use rvs_core::conn::state::{tcp, tmpl, TcpFlags};
use rvs_core::conn::{flags, HashSeed, Segment};
use rvs_core::director::{Packet, Verdict};
use rvs_core::sync::{Applied, ApplySkip, SyncConn, SyncV4};
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

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(src: &str, sport: u16, f: &str) -> Packet<'static> {
    Packet {
        fwmark: 0,
        proto: Protocol::Tcp,
        saddr: ip(src),
        sport,
        daddr: ip("10.0.0.1"),
        dport: 80,
        seg: Segment::Tcp(TcpFlags {
            syn: f.contains('S'),
            fin: f.contains('F'),
            ack: f.contains('A'),
            rst: f.contains('R'),
        }),
        len: 60,
        payload: &[],
    }
}

fn udp(src: &str, sport: u16, port: u16) -> Packet<'static> {
    Packet {
        fwmark: 0,
        proto: Protocol::Udp,
        saddr: ip(src),
        sport,
        daddr: ip("10.0.0.1"),
        dport: port,
        seg: Segment::Udp,
        len: 40,
        payload: &[],
    }
}

fn key(proto: Protocol, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto,
        addr: ip("10.0.0.1"),
        port,
    }
}

/// A director with TCP :80 (rr, DR) and UDP :53 (rr, NAT) over two real servers.
fn director(master: bool) -> Director {
    let mut d = Director::new(HashSeed([1, 2, 3, 4]), Time(0));
    for (k, fwd) in [
        (key(Protocol::Tcp, 80), FwdMethod::Route),
        (key(Protocol::Udp, 53), FwdMethod::Masq),
    ] {
        d.table
            .add_service(k, ServiceConfig::new(SchedKind::Rr, k.family()), Time(0))
            .unwrap();
        for rs in ["192.168.1.1", "192.168.1.2"] {
            d.table
                .add_dest(&k, DestConfig::new(ip(rs), k.port()).fwd(fwd), Time(0))
                .unwrap();
        }
    }
    d.sync.set_master(master);
    d
}

fn drain(d: &mut Director) -> Vec<SyncConn> {
    let mut v = Vec::new();
    d.sync.drain_into(&mut v);
    v
}

/// Send `n` packets of one TCP connection (SYN, then ACKs) and return at which packet numbers
/// (1-based) an announcement was queued.
fn tcp_announcements(d: &mut Director, n: u32) -> Vec<u32> {
    let mut at = Vec::new();
    for i in 1..=n {
        let f = if i == 1 { "S" } else { "A" };
        let v = d.packet_in(&tcp("1.1.1.1", 1000, f), Time::from_secs(1), &mut NoRandom);
        assert!(matches!(v, Verdict::Forward(_)));
        if !drain(d).is_empty() {
            at.push(i);
        }
    }
    at
}

#[test]
fn tcp_is_announced_on_packets_3_53_103() {
    let mut d = director(true);
    assert_eq!(tcp_announcements(&mut d, 110), vec![3, 53, 103]);
}

/// Client packets a kernel fast path forwarded reach rvs-core as counts
/// (`Director::fast_path_traffic`): a batch that holds a packet the rules would announce
/// (the 3rd, 53rd, 103rd ...) announces the entry once; one that holds none announces nothing.
#[test]
fn fast_path_batches_are_announced_where_their_packets_would_have_been() {
    let mut d = director(true);
    // SYN and the handshake's ACK through the packet path: not announced yet.
    assert!(tcp_announcements(&mut d, 2).is_empty());
    let id = d
        .conns
        .lookup_in(6, &ip("1.1.1.1"), 1000, &ip("10.0.0.1"), 80)
        .expect("the connection");
    let batch = |d: &mut Director, n: u64, at: u64| {
        let t = rvs_core::stats::Traffic {
            in_pkts: n,
            in_bytes: 60 * n,
            ..Default::default()
        };
        assert!(d.fast_path_traffic(id, t, Time::from_secs(at)));
        drain(d).len()
    };
    // Packets 3..=10 went through the fast path: the 3rd is in the batch.
    assert_eq!(batch(&mut d, 8, 2), 1);
    // 11..=52: none.
    assert_eq!(batch(&mut d, 42, 3), 0);
    // 53..=53 and then 54..=200 (103 and 153 in it: one announcement for the batch).
    assert_eq!(batch(&mut d, 1, 4), 1);
    assert_eq!(batch(&mut d, 147, 5), 1);
    // The counters and the timer moved as for packets.
    let c = d.conns.get(id).unwrap();
    assert_eq!(c.in_pkts, 200);
    // Not a master: nothing, whatever the batch.
    let mut b = director(false);
    tcp_announcements(&mut b, 2);
    let id = b
        .conns
        .lookup_in(6, &ip("1.1.1.1"), 1000, &ip("10.0.0.1"), 80)
        .unwrap();
    let t = rvs_core::stats::Traffic {
        in_pkts: 100,
        ..Default::default()
    };
    assert!(b.fast_path_traffic(id, t, Time::from_secs(2)));
    assert!(drain(&mut b).is_empty());
}

#[test]
fn nothing_is_queued_without_a_master_daemon() {
    let mut d = director(false);
    assert!(tcp_announcements(&mut d, 60).is_empty());
}

#[test]
fn tcp_state_change_forces_an_announcement() {
    let mut d = director(true);
    assert_eq!(tcp_announcements(&mut d, 5), vec![3]);
    let v = d.packet_in(
        &tcp("1.1.1.1", 1000, "FA"),
        Time::from_secs(2),
        &mut NoRandom,
    );
    assert!(matches!(v, Verdict::Forward(_)));
    let got = drain(&mut d);
    assert_eq!(got.len(), 1, "FIN → FIN_WAIT is sent at once");
    let c = &got[0];
    assert_eq!(c.state, u16::from(tcp::FIN_WAIT));
    assert_eq!(c.flags & flags::FWD_MASK, flags::DROUTE);
    assert_ne!(c.flags & flags::NOOUTPUT, 0);
    assert_eq!(c.flags & flags::HASHED, 0);
    assert_eq!((c.caddr, c.cport), (ip("1.1.1.1"), 1000));
    assert_eq!((c.vaddr, c.vport), (ip("10.0.0.1"), 80));
    assert!([ip("192.168.1.1"), ip("192.168.1.2")].contains(&c.daddr));
    assert_eq!(c.timeout_secs, 120);
    // Another packet in FIN_WAIT: no change, not a multiple → nothing.
    d.packet_in(
        &tcp("1.1.1.1", 1000, "A"),
        Time::from_secs(2),
        &mut NoRandom,
    );
    assert!(drain(&mut d).is_empty());
}

#[test]
fn tcp_outside_the_synced_states_is_never_announced() {
    let mut d = director(true);
    // Only SYNs: the entry stays in SYN_RECV.
    for _ in 0..60 {
        d.packet_in(
            &tcp("1.1.1.1", 1000, "S"),
            Time::from_secs(1),
            &mut NoRandom,
        );
    }
    assert!(drain(&mut d).is_empty());
}

#[test]
fn udp_on_3_and_53_and_period_zero_only_once() {
    let mut d = director(true);
    let mut at = Vec::new();
    for i in 1..=60 {
        d.packet_in(&udp("1.1.1.1", 5000, 53), Time::from_secs(1), &mut NoRandom);
        if !drain(&mut d).is_empty() {
            at.push(i);
        }
    }
    assert_eq!(at, vec![3, 53]);

    let mut d = director(true);
    d.sync.params.period = 0;
    let mut at = Vec::new();
    for i in 1..=120 {
        d.packet_in(&udp("1.1.1.1", 5000, 53), Time::from_secs(1), &mut NoRandom);
        if !drain(&mut d).is_empty() {
            at.push(i);
        }
    }
    assert_eq!(at, vec![3]);
}

#[test]
fn refresh_period_replaces_the_packet_rule_with_retries() {
    let mut d = director(true);
    d.sync.params.period = 0;
    d.sync.params.refresh_period_secs = 100;
    d.sync.params.retries = 1;
    let mut sent = Vec::new();
    // UDP timeout 300 s: re-announce when the expiry moved ≥ min(100, max(150, 10)) = 100 s.
    for s in 0..400u64 {
        d.packet_in(&udp("1.1.1.1", 5000, 53), Time::from_secs(s), &mut NoRandom);
        if !drain(&mut d).is_empty() {
            sent.push(s);
        }
    }
    // First packet: the expiry moved from 0 (never synced) → sent. Then one retry once
    // R/8 = 12.5 s have passed since the last send (its expiry − timeout); the retry stores its
    // own expiry, so the next full refresh comes 100 s after the retry, and so on.
    assert_eq!(sent, vec![0, 13, 114, 127, 228, 241, 342, 355]);
}

fn persistent_director(persist_mode: bool) -> Director {
    let mut d = Director::new(HashSeed([9, 9, 9, 9]), Time(0));
    let k = key(Protocol::Tcp, 443);
    d.table
        .add_service(
            k,
            ServiceConfig::new(SchedKind::Rr, k.family()).persistent(300),
            Time(0),
        )
        .unwrap();
    for rs in ["192.168.1.1", "192.168.1.2"] {
        d.table
            .add_dest(
                &k,
                DestConfig::new(ip(rs), 443).fwd(FwdMethod::Masq),
                Time(0),
            )
            .unwrap();
    }
    d.sync.set_master(true);
    d.sync.params.persist_mode = persist_mode;
    d
}

fn tcp443(f: &str) -> Packet<'static> {
    Packet {
        dport: 443,
        ..tcp("1.1.1.1", 2000, f)
    }
}

#[test]
fn templates_travel_with_their_connections() {
    let mut d = persistent_director(false);
    let mut per_packet = Vec::new();
    for i in 0..4 {
        d.packet_in(
            &tcp443(if i == 0 { "S" } else { "A" }),
            Time::from_secs(1),
            &mut NoRandom,
        );
        per_packet.push(drain(&mut d));
    }
    let is_tmpl = |c: &SyncConn| c.flags & flags::TEMPLATE != 0;
    // The controller is considered after every packet of a child, whether the child itself
    // was announced or not, and templates have no packet-count rule (only the refresh rule,
    // off by default): the template goes out with every packet, as with the kernel.
    for (i, got) in per_packet.iter().enumerate() {
        let want = if i == 2 { 2 } else { 1 };
        assert_eq!(got.len(), want, "packet {}: {got:?}", i + 1);
        assert!(is_tmpl(got.last().unwrap()));
    }
    // Packet 3 announces the connection, then its template.
    let c = &per_packet[2][0];
    assert!(!is_tmpl(c));
    assert_eq!(c.cport, 2000);
    let t = &per_packet[2][1];
    assert_eq!((t.cport, t.timeout_secs), (0, 300));
    assert_eq!(t.state, u16::from(tmpl::ASSURED));
}

#[test]
fn persist_mode_sends_only_templates() {
    let mut d = persistent_director(true);
    let mut got = Vec::new();
    for i in 0..60 {
        d.packet_in(
            &tcp443(if i == 0 { "S" } else { "A" }),
            Time::from_secs(1),
            &mut NoRandom,
        );
        got.extend(drain(&mut d));
    }
    assert!(!got.is_empty());
    assert!(got.iter().all(|c| c.flags & flags::TEMPLATE != 0));
}

#[test]
fn one_packet_connections_are_never_announced_but_their_template_is() {
    let mut d = Director::new(HashSeed([5, 5, 5, 5]), Time(0));
    let k = key(Protocol::Udp, 53);
    d.table
        .add_service(
            k,
            ServiceConfig::new(SchedKind::Rr, k.family())
                .flags(ServiceFlags::ONEPACKET)
                .persistent(60),
            Time(0),
        )
        .unwrap();
    d.table
        .add_dest(&k, DestConfig::new(ip("192.168.1.1"), 53), Time(0))
        .unwrap();
    d.sync.set_master(true);
    let mut got = Vec::new();
    for _ in 0..5 {
        d.packet_in(&udp("1.1.1.1", 5000, 53), Time::from_secs(1), &mut NoRandom);
        got.extend(drain(&mut d));
    }
    assert!(!got.is_empty());
    assert!(
        got.iter().all(|c| c.flags & flags::TEMPLATE != 0),
        "{got:?}"
    );

    // Without persistence nothing at all.
    let mut d = Director::new(HashSeed([5, 5, 5, 5]), Time(0));
    d.table
        .add_service(
            k,
            ServiceConfig::new(SchedKind::Rr, k.family()).flags(ServiceFlags::ONEPACKET),
            Time(0),
        )
        .unwrap();
    d.table
        .add_dest(&k, DestConfig::new(ip("192.168.1.1"), 53), Time(0))
        .unwrap();
    d.sync.set_master(true);
    for _ in 0..60 {
        d.packet_in(&udp("1.1.1.1", 5000, 53), Time::from_secs(1), &mut NoRandom);
    }
    assert!(drain(&mut d).is_empty());
}

#[test]
fn version_0_never_sends_ipv6() {
    let mut d = Director::new(HashSeed([1, 1, 1, 1]), Time(0));
    let k = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: ip("2001:db8::1"),
        port: 53,
    };
    d.table
        .add_service(k, ServiceConfig::new(SchedKind::Rr, k.family()), Time(0))
        .unwrap();
    d.table
        .add_dest(&k, DestConfig::new(ip("2001:db8::a"), 53), Time(0))
        .unwrap();
    d.sync.set_master(true);
    d.sync.params.version = 0;
    let p = Packet {
        saddr: ip("2001:db8::99"),
        daddr: ip("2001:db8::1"),
        ..udp("1.1.1.1", 5000, 53)
    };
    for _ in 0..10 {
        d.packet_in(&p, Time::from_secs(1), &mut NoRandom);
    }
    assert!(drain(&mut d).is_empty());
    d.sync.params.version = 1;
    for _ in 0..50 {
        d.packet_in(&p, Time::from_secs(1), &mut NoRandom);
    }
    assert_eq!(drain(&mut d).len(), 1, "packet 53 under version 1");
}

// ---------------------------------------------------------------------------------------------
// Backup

fn record(daddr: &str, state: u8, fl: u32) -> SyncConn {
    SyncConn {
        protocol: 6,
        flags: fl,
        state: u16::from(state),
        caddr: ip("1.1.1.1"),
        cport: 1000,
        vaddr: ip("10.0.0.1"),
        vport: 80,
        daddr: ip(daddr),
        dport: 80,
        fwmark: 0,
        timeout_secs: 900,
        seq: None,
        pe_data: Vec::new(),
        pe_name: Vec::new(),
        local: None,
    }
}

#[test]
fn backup_creates_bound_entries_that_carry_traffic() {
    let mut m = director(true);
    tcp_announcements(&mut m, 3);
    let mut b = director(false);
    let id = m.conns.iter().next().unwrap();
    let mut rec = m.snapshot(id).unwrap();
    // Bits a backup must not take over.
    rec.flags |= flags::ONE_PACKET | flags::NFCT;
    let got = b.apply_synced(&rec, false, Time::from_secs(10)).unwrap();
    let Applied::Created(bid) = got else {
        panic!("{got:?}")
    };
    let info = b.conns.info(bid).unwrap();
    assert_eq!(info.state, tcp::ESTABLISHED);
    assert_eq!(info.flags & (flags::ONE_PACKET | flags::NFCT), 0);
    assert_ne!(info.flags & flags::SYNC, 0);
    assert_eq!(info.flags & flags::FWD_MASK, flags::DROUTE);
    assert_eq!(info.in_pkts, 3);
    assert_eq!(info.expires_in_secs(Time::from_secs(10)), 900);
    assert_eq!(info.daddr, rec.daddr);
    // Counted as an active connection of the local real server, and listed (`-Lnc`).
    let d = b.table.dests.get(info.dest.unwrap()).unwrap();
    assert_eq!((d.active, d.inactive), (1, 0));
    assert_eq!(b.conns.iter().count(), 1);

    // After fail-over, a mid-stream ACK is forwarded to the same real server without
    // scheduling (rr on the backup would pick 192.168.1.1 first too, so use a second client
    // whose entry points at the other server to prove it).
    let other = if rec.daddr == ip("192.168.1.1") {
        "192.168.1.2"
    } else {
        "192.168.1.1"
    };
    let mut rec2 = record(other, tcp::ESTABLISHED, flags::DROUTE);
    rec2.caddr = ip("2.2.2.2");
    b.apply_synced(&rec2, false, Time::from_secs(10)).unwrap();
    let v = b.packet_in(
        &tcp("2.2.2.2", 1000, "A"),
        Time::from_secs(11),
        &mut NoRandom,
    );
    let Verdict::Forward(r) = v else {
        panic!("{v:?}")
    };
    assert_eq!(r.daddr, ip(other));
    assert!(!r.new);
}

#[test]
fn backup_updates_inactive_and_replaces_moved_clients() {
    let mut b = director(false);
    let at = Time::from_secs(5);
    let rec = record("192.168.1.1", tcp::ESTABLISHED, flags::DROUTE);
    let Applied::Created(id) = b.apply_synced(&rec, false, at).unwrap() else {
        panic!()
    };
    let dest = b.conns.get(id).unwrap().dest().unwrap();
    // Same entry goes FIN_WAIT / inactive.
    let fin = record(
        "192.168.1.1",
        tcp::FIN_WAIT,
        flags::DROUTE | flags::INACTIVE,
    );
    assert_eq!(b.apply_synced(&fin, false, at), Ok(Applied::Updated(id)));
    let d = b.table.dests.get(dest).unwrap();
    assert_eq!((d.active, d.inactive), (0, 1));
    assert_eq!(b.conns.get(id).unwrap().state(), tcp::FIN_WAIT);
    // An inactive record naming another real server is a stale expiry notice: ignored.
    let stale = record(
        "192.168.1.2",
        tcp::TIME_WAIT,
        flags::DROUTE | flags::INACTIVE,
    );
    assert_eq!(
        b.apply_synced(&stale, false, at),
        Err(ApplySkip::StaleInactive)
    );
    // An active one replaces the entry.
    let moved = record("192.168.1.2", tcp::ESTABLISHED, flags::DROUTE);
    let Ok(Applied::Created(nid)) = b.apply_synced(&moved, false, at) else {
        panic!()
    };
    assert_eq!(b.conns.info(nid).unwrap().daddr, ip("192.168.1.2"));
    assert_eq!(b.conns.iter().count(), 1);
}

#[test]
fn backup_rejects_bad_records_and_uses_local_timeouts_for_v0() {
    let mut b = director(false);
    let at = Time::from_secs(5);
    let mut r = record("192.168.1.1", tcp::ESTABLISHED, 0);
    r.protocol = 47;
    assert_eq!(
        b.apply_synced(&r, false, at),
        Err(ApplySkip::UnknownProtocol)
    );
    let r = record("192.168.1.1", 11, 0);
    assert_eq!(b.apply_synced(&r, false, at), Err(ApplySkip::BadState));
    let mut r = record("192.168.1.1", tcp::ESTABLISHED, 0);
    r.pe_data = b"x".to_vec();
    r.pe_name = b"foo".to_vec();
    assert_eq!(b.apply_synced(&r, false, at), Err(ApplySkip::PeUnknown));
    // Version 0: no timeout on the wire → the local ESTABLISHED timeout (900 s); the flags are
    // taken as they come (plus SYNC).
    let mut r = record("192.168.1.1", tcp::ESTABLISHED, flags::DROUTE);
    r.timeout_secs = 0;
    let Ok(Applied::Created(id)) = b.apply_synced(&r, true, at) else {
        panic!()
    };
    assert_eq!(b.conns.info(id).unwrap().expires_in_secs(at), 900);
}

#[test]
fn backup_entry_without_a_local_dest_stays_unbound_until_one_appears() {
    let mut b = director(false);
    let at = Time::from_secs(5);
    let r = record("192.168.1.9", tcp::ESTABLISHED, flags::DROUTE);
    let Ok(Applied::Created(id)) = b.apply_synced(&r, false, at) else {
        panic!()
    };
    assert!(b.conns.get(id).unwrap().dest().is_none());
    b.table
        .add_dest(
            &key(Protocol::Tcp, 80),
            DestConfig::new(ip("192.168.1.9"), 80).fwd(FwdMethod::Route),
            at,
        )
        .unwrap();
    assert_eq!(b.apply_synced(&r, false, at), Ok(Applied::Updated(id)));
    let did = b.conns.get(id).unwrap().dest().unwrap();
    assert_eq!(b.table.dests.get(did).unwrap().active, 1);
}

#[test]
fn backup_templates_are_found_again_and_keep_the_mark_address() {
    let mut b = Director::new(HashSeed([3, 3, 3, 3]), Time(0));
    let k = ServiceKey::Fwmark {
        family: rvs_core::Family::Inet6,
        mark: 7,
    };
    b.table
        .add_service(
            k,
            ServiceConfig::new(SchedKind::Rr, k.family()).persistent(300),
            Time(0),
        )
        .unwrap();
    b.table
        .add_dest(&k, DestConfig::new(ip("2001:db8::a"), 0), Time(0))
        .unwrap();
    // As decoded from an IPv6 record: the mark in the first four bytes of vaddr.
    let t = SyncConn {
        protocol: 0,
        flags: flags::TEMPLATE | flags::DROUTE,
        state: u16::from(tmpl::ASSURED),
        caddr: ip("2001:db8:1::"),
        cport: 0,
        vaddr: ip("0:7::"),
        vport: 0,
        daddr: ip("2001:db8::a"),
        dport: 0,
        fwmark: 7,
        timeout_secs: 300,
        seq: None,
        pe_data: Vec::new(),
        pe_name: Vec::new(),
        local: None,
    };
    let at = Time::from_secs(1);
    let Ok(Applied::Created(id)) = b.apply_synced(&t, false, at) else {
        panic!()
    };
    let (vaddr, dest) = {
        let info = b.conns.info(id).unwrap();
        (info.vaddr, info.dest.unwrap())
    };
    assert_eq!(vaddr, ip("0.0.0.7"));
    assert_eq!(b.apply_synced(&t, false, at), Ok(Applied::Updated(id)));
    assert_eq!(b.table.dests.get(dest).unwrap().persist, 1);
}

#[test]
fn backup_only_leaves_packets_to_the_host_while_a_backup_daemon_runs() {
    let mut d = director(false);
    d.sync.params.backup_only = true;
    // No backup daemon: the sysctl alone changes nothing.
    let v = d.packet_in(
        &tcp("1.1.1.1", 1000, "S"),
        Time::from_secs(1),
        &mut NoRandom,
    );
    assert!(matches!(v, Verdict::Forward(_)));
    d.sync.set_backup(true);
    let v = d.packet_in(
        &tcp("1.1.1.1", 1000, "A"),
        Time::from_secs(1),
        &mut NoRandom,
    );
    assert_eq!(v, Verdict::Pass);
    let v = d.packet_in(
        &tcp("3.3.3.3", 1000, "S"),
        Time::from_secs(1),
        &mut NoRandom,
    );
    assert_eq!(v, Verdict::Pass);
    // Without the sysctl a backup forwards as usual.
    d.sync.params.backup_only = false;
    let v = d.packet_in(
        &tcp("1.1.1.1", 1000, "A"),
        Time::from_secs(1),
        &mut NoRandom,
    );
    assert!(matches!(v, Verdict::Forward(_)));
}

#[test]
fn fullnat_local_address_travels_and_replies_find_the_synced_entry() {
    let mut b = director(false);
    let mut rec = record("192.168.1.1", tcp::ESTABLISHED, 5);
    rec.local = Some((ip("10.9.0.1"), 2001));
    let Applied::Created(id) = b.apply_synced(&rec, false, Time::from_secs(10)).unwrap() else {
        panic!("not created")
    };
    assert_eq!(b.conns.info(id).unwrap().local, rec.local);
    // The real server's reply to the local address finds it, as on the master.
    assert_eq!(
        b.conns
            .lookup_fullnat_out(6, &ip("192.168.1.1"), 80, &ip("10.9.0.1"), 2001),
        Some(id)
    );
    // And the backup's snapshot carries it on (a third director resyncing from this one).
    assert_eq!(b.snapshot(id).unwrap().local, rec.local);
    // A local address of the other family than the real server is not taken.
    let mut bad = record("192.168.1.2", tcp::ESTABLISHED, 5);
    bad.caddr = ip("3.3.3.3");
    bad.local = Some((ip("fd00::1"), 2002));
    let Applied::Created(id) = b.apply_synced(&bad, false, Time::from_secs(10)).unwrap() else {
        panic!("not created")
    };
    assert_eq!(b.conns.info(id).unwrap().local, None);
}

/// The fixed form the packet path announces most entries in is exactly the entry's general
/// record, and the entries it cannot carry (full-NAT local address, IPv6, sequence data) are
/// left to the general record.
#[test]
fn the_fixed_form_is_the_general_record_and_only_for_plain_ipv4_entries() {
    let mut d = director(true);
    for i in 0..20u16 {
        for _ in 0..3 {
            d.packet_in(
                &udp("1.1.1.1", 2000 + i, 53),
                Time::from_secs(1),
                &mut NoRandom,
            );
        }
        d.packet_in(
            &tcp("2.2.2.2", 3000 + i, "S"),
            Time::from_secs(1),
            &mut NoRandom,
        );
    }
    let announced = drain(&mut d);
    assert_eq!(announced.len(), 20, "the UDP ones, at their third packet");
    let mut plain = 0;
    for id in d.resync_ids() {
        let general = d.snapshot(id).unwrap();
        let fixed = d.conns.sync_v4(id).expect("plain IPv4 entries");
        assert_eq!(fixed.to_conn(), general);
        assert_eq!(SyncV4::of(&general), Some(fixed));
        plain += 1;
    }
    assert_eq!(plain, 40);
    // What the daemon announced is what the fixed form says.
    for r in &announced {
        assert!(SyncV4::of(r).is_some_and(|f| f.to_conn() == *r));
    }
    // Entries the fixed form cannot carry.
    let mut b = director(false);
    let mut rec = record("192.168.1.1", tcp::ESTABLISHED, 5);
    rec.local = Some((ip("10.9.0.1"), 2001));
    let mut v6 = record("fd00::1", tcp::ESTABLISHED, 5);
    v6.caddr = ip("fd00::9");
    v6.vaddr = ip("fd00::2");
    let mut seq = record("192.168.1.2", tcp::ESTABLISHED, 5);
    seq.cport = 1001;
    seq.flags |= flags::IN_SEQ;
    seq.seq = Some(Default::default());
    for r in [rec, v6, seq] {
        let Ok(Applied::Created(id)) = b.apply_synced(&r, false, Time::from_secs(10)) else {
            panic!("not created: {r:?}")
        };
        assert_eq!(b.conns.sync_v4(id), None, "{r:?}");
        assert_eq!(SyncV4::of(&b.snapshot(id).unwrap()), None, "{r:?}");
    }
}

#[test]
fn sync_ports_choose_one_port_per_connection_and_spread_them() {
    let mut seen = std::collections::BTreeSet::new();
    for cport in 0..64u16 {
        let mut c = record("192.168.1.1", tcp::ESTABLISHED, 0);
        c.cport = cport;
        assert_eq!(c.port_index(1), 0);
        let i = c.port_index(4);
        assert!(i < 4);
        c.state = u16::from(tcp::CLOSE_WAIT);
        assert_eq!(
            c.port_index(4),
            i,
            "every update of a connection on one port"
        );
        seen.insert(i);
    }
    assert_eq!(seen.len(), 4, "64 clients use all 4 ports");
}
