//! End-to-end scenarios of the core pipeline: scheduling, persistence (docs/internals/persistence.md), one-packet
//! scheduling, the SIP engine, state traces with counters, reuse rules and statistics.

use std::net::IpAddr;

use rvs_core::conn::state::{tcp, TcpFlags};
use rvs_core::conn::{HashSeed, Segment};
use rvs_core::director::{DropReason, Packet, Verdict};
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

fn tcp_key(vip: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip(vip),
        port,
    }
}

fn flags(s: &str) -> TcpFlags {
    TcpFlags {
        syn: s.contains('S'),
        fin: s.contains('F'),
        ack: s.contains('A'),
        rst: s.contains('R'),
    }
}

fn tcp_pkt<'a>(src: &str, sport: u16, dst: &str, dport: u16, f: &str) -> Packet<'a> {
    Packet {
        fwmark: 0,
        proto: Protocol::Tcp,
        saddr: ip(src),
        sport,
        daddr: ip(dst),
        dport,
        seg: Segment::Tcp(flags(f)),
        len: 60,
        payload: &[],
    }
}

fn udp_pkt<'a>(src: &str, sport: u16, dst: &str, dport: u16, payload: &'a [u8]) -> Packet<'a> {
    Packet {
        fwmark: 0,
        proto: Protocol::Udp,
        saddr: ip(src),
        sport,
        daddr: ip(dst),
        dport,
        seg: Segment::Udp,
        len: 28 + payload.len() as u32,
        payload,
    }
}

fn director() -> Director {
    Director::new(HashSeed([1, 2, 3, 4]), Time(0))
}

/// Add service `k` with `cfg` and the real servers `rss` (port `port`, method `fwd`), at time 0.
fn setup(
    d: &mut Director,
    k: ServiceKey,
    cfg: ServiceConfig,
    rss: &[&str],
    port: u16,
    fwd: FwdMethod,
) {
    d.table.add_service(k, cfg, Time(0)).unwrap();
    for rs in rss {
        d.table
            .add_dest(&k, DestConfig::new(ip(rs), port).fwd(fwd), Time(0))
            .unwrap();
    }
}

fn dest_of(v: Verdict) -> IpAddr {
    match v {
        Verdict::Forward(r) => r.daddr,
        other => panic!("expected a route, got {other:?}"),
    }
}

#[test]
fn rr_service_alternates_and_counts() {
    let mut d = director();
    let k = tcp_key("10.0.0.1", 80);
    setup(
        &mut d,
        k,
        ServiceConfig::new(SchedKind::Rr, k.family()),
        &["192.168.1.1", "192.168.1.2"],
        80,
        FwdMethod::Masq,
    );
    let now = Time::from_secs(1);
    // Newest first: .2 then .1.
    let a = dest_of(d.packet_in(
        &tcp_pkt("1.1.1.1", 1000, "10.0.0.1", 80, "S"),
        now,
        &mut NoRandom,
    ));
    let b = dest_of(d.packet_in(
        &tcp_pkt("1.1.1.1", 1001, "10.0.0.1", 80, "S"),
        now,
        &mut NoRandom,
    ));
    assert_eq!((a, b), (ip("192.168.1.2"), ip("192.168.1.1")));
    // A packet of the first connection sticks to it.
    let again = dest_of(d.packet_in(
        &tcp_pkt("1.1.1.1", 1000, "10.0.0.1", 80, "A"),
        now,
        &mut NoRandom,
    ));
    assert_eq!(again, a);
    assert_eq!(d.total.shown().conns, 2);
    assert_eq!(d.total.shown().inpkts, 3);
    assert_eq!(d.total.shown().inbytes, 180);
}

#[test]
fn nat_trace_counts_active_and_inactive() {
    let mut d = director();
    let k = tcp_key("10.0.0.1", 80);
    d.table
        .add_service(k, ServiceConfig::new(SchedKind::Wlc, k.family()), Time(0))
        .unwrap();
    let rs = d
        .table
        .add_dest(
            &k,
            DestConfig::new(ip("192.168.1.1"), 8080).fwd(FwdMethod::Masq),
            Time(0),
        )
        .unwrap();
    let t = Time::from_secs(10);
    let v = d.packet_in(
        &tcp_pkt("1.1.1.1", 4000, "10.0.0.1", 80, "S"),
        t,
        &mut NoRandom,
    );
    let Verdict::Forward(r) = v else {
        panic!("{v:?}")
    };
    assert_eq!(r.dport, 8080);
    let id = r.conn.unwrap();
    let info = d.conns.info(id).unwrap();
    assert_eq!(info.state, tcp::SYN_RECV);
    assert_eq!(info.expires_in_secs(t), 60);
    assert_eq!(
        (d.table.dests[rs].active, d.table.dests[rs].inactive),
        (1, 0)
    );
    // SYN+ACK from the real server: SYN has priority, SYN_RECV stays.
    let reply = d
        .packet_out(&tcp_pkt("192.168.1.1", 8080, "1.1.1.1", 4000, "SA"), t)
        .unwrap();
    assert_eq!((reply.vaddr, reply.vport), (ip("10.0.0.1"), 80));
    assert_eq!(d.conns.info(id).unwrap().state, tcp::SYN_RECV);
    d.packet_in(
        &tcp_pkt("1.1.1.1", 4000, "10.0.0.1", 80, "A"),
        t,
        &mut NoRandom,
    );
    let info = d.conns.info(id).unwrap();
    assert_eq!(info.state, tcp::ESTABLISHED);
    assert_eq!(info.expires_in_secs(t), 900);
    // Client FIN → CLOSE_WAIT (60 s, inactive).
    d.packet_in(
        &tcp_pkt("1.1.1.1", 4000, "10.0.0.1", 80, "FA"),
        t,
        &mut NoRandom,
    );
    let info = d.conns.info(id).unwrap();
    assert_eq!(info.state, tcp::CLOSE_WAIT);
    assert_eq!(info.expires_in_secs(t), 60);
    assert_eq!(
        (d.table.dests[rs].active, d.table.dests[rs].inactive),
        (0, 1)
    );
    assert_eq!(d.total.shown().outpkts, 1);
    // It expires and the counters go back to zero.
    d.tick(
        t + rvs_core::Duration::from_secs(61),
        1 << 30,
        1000,
        &mut NoRandom,
    );
    assert!(d.conns.info(id).is_none());
    assert_eq!(
        (d.table.dests[rs].active, d.table.dests[rs].inactive),
        (0, 0)
    );
}

#[test]
fn dr_fin_wait_stays_and_outpkts_stay_zero() {
    let mut d = director();
    let k = tcp_key("10.0.0.1", 80);
    d.table
        .add_service(k, ServiceConfig::new(SchedKind::Rr, k.family()), Time(0))
        .unwrap();
    let rs = d
        .table
        .add_dest(&k, DestConfig::new(ip("192.168.1.1"), 80), Time(0))
        .unwrap();
    let t = Time::from_secs(1);
    let id = match d.packet_in(
        &tcp_pkt("1.1.1.1", 5, "10.0.0.1", 80, "S"),
        t,
        &mut NoRandom,
    ) {
        Verdict::Forward(r) => r.conn.unwrap(),
        v => panic!("{v:?}"),
    };
    d.packet_in(
        &tcp_pkt("1.1.1.1", 5, "10.0.0.1", 80, "A"),
        t,
        &mut NoRandom,
    );
    assert_eq!(d.conns.info(id).unwrap().state, tcp::ESTABLISHED);
    d.packet_in(
        &tcp_pkt("1.1.1.1", 5, "10.0.0.1", 80, "FA"),
        t,
        &mut NoRandom,
    );
    assert_eq!(d.conns.info(id).unwrap().state, tcp::FIN_WAIT);
    d.packet_in(
        &tcp_pkt("1.1.1.1", 5, "10.0.0.1", 80, "A"),
        t,
        &mut NoRandom,
    );
    let info = d.conns.info(id).unwrap();
    assert_eq!(info.state, tcp::FIN_WAIT);
    assert_eq!(info.expires_in_secs(t), 120);
    assert_eq!(
        (d.table.dests[rs].active, d.table.dests[rs].inactive),
        (0, 1)
    );
    assert_eq!(d.total.shown().outpkts, 0);
    d.packet_in(
        &tcp_pkt("1.1.1.1", 5, "10.0.0.1", 80, "R"),
        t,
        &mut NoRandom,
    );
    let info = d.conns.info(id).unwrap();
    assert_eq!((info.state, info.expires_in_secs(t)), (tcp::CLOSE, 10));
}

fn persistent_setup(d: &mut Director, timeout: u32) -> ServiceKey {
    let k = tcp_key("10.0.0.1", 443);
    setup(
        d,
        k,
        ServiceConfig::new(SchedKind::Rr, k.family())
            .persistent(timeout)
            .netmask(0xffff_ff00),
        &["192.168.1.1", "192.168.1.2"],
        443,
        FwdMethod::Route,
    );
    k
}

#[test]
fn persistence_keeps_a_client_network_on_one_server() {
    let mut d = director();
    persistent_setup(&mut d, 360);
    let t = Time::from_secs(1);
    let first = dest_of(d.packet_in(
        &tcp_pkt("1.1.1.1", 1, "10.0.0.1", 443, "S"),
        t,
        &mut NoRandom,
    ));
    // Same /24, other ports: same server; another network: the next server.
    for (src, port) in [("1.1.1.1", 2), ("1.1.1.77", 3), ("1.1.1.1", 4)] {
        let r = dest_of(d.packet_in(&tcp_pkt(src, port, "10.0.0.1", 443, "S"), t, &mut NoRandom));
        assert_eq!(r, first);
    }
    let other = dest_of(d.packet_in(
        &tcp_pkt("2.2.2.2", 1, "10.0.0.1", 443, "S"),
        t,
        &mut NoRandom,
    ));
    assert_ne!(other, first);
    // Templates are counted as persistent conns, not active/inactive.
    let did = d
        .table
        .dests
        .iter()
        .find(|(_, x)| x.cfg.addr == first)
        .unwrap()
        .0;
    assert_eq!(d.table.dests[did].persist, 1);
    assert_eq!(d.table.dests[did].total_conns(), 4);
}

#[test]
fn quiesced_dest_keeps_its_clients_removed_dest_reschedules_them() {
    let mut d = director();
    let k = persistent_setup(&mut d, 360);
    let t = Time::from_secs(1);
    let first = dest_of(d.packet_in(
        &tcp_pkt("1.1.1.1", 1, "10.0.0.1", 443, "S"),
        t,
        &mut NoRandom,
    ));
    // Weight 0: existing template still sends the client there.
    let mut cfg = DestConfig::new(first, 443);
    cfg.weight = 0;
    d.table.edit_dest(&k, cfg).unwrap();
    let again = dest_of(d.packet_in(
        &tcp_pkt("1.1.1.1", 2, "10.0.0.1", 443, "S"),
        t,
        &mut NoRandom,
    ));
    assert_eq!(again, first);
    // A new client network does not go there.
    let other = dest_of(d.packet_in(
        &tcp_pkt("3.3.3.3", 2, "10.0.0.1", 443, "S"),
        t,
        &mut NoRandom,
    ));
    assert_ne!(other, first);
    // With expire_quiescent_template the template is invalidated.
    d.sys.expire_quiescent_template = true;
    let moved = dest_of(d.packet_in(
        &tcp_pkt("1.1.1.1", 3, "10.0.0.1", 443, "S"),
        t,
        &mut NoRandom,
    ));
    assert_ne!(moved, first);
}

#[test]
fn removed_dest_reschedules_persistent_clients() {
    let mut d = director();
    let k = persistent_setup(&mut d, 360);
    let t = Time::from_secs(1);
    let first = dest_of(d.packet_in(
        &tcp_pkt("1.1.1.1", 1, "10.0.0.1", 443, "S"),
        t,
        &mut NoRandom,
    ));
    d.table.del_dest(&k, &first, 443, t).unwrap();
    let next = dest_of(d.packet_in(
        &tcp_pkt("1.1.1.1", 2, "10.0.0.1", 443, "S"),
        t,
        &mut NoRandom,
    ));
    assert_ne!(next, first);
    // The old connection's packets are dropped (expire_nodest_conn = 0).
    let v = d.packet_in(
        &tcp_pkt("1.1.1.1", 1, "10.0.0.1", 443, "A"),
        t,
        &mut NoRandom,
    );
    assert_eq!(v, Verdict::Drop(DropReason::DestUnavailable));
    // With expire_nodest_conn = 1 the old connection is expired; a non-SYN is then not ours.
    d.sys.conn.expire_nodest_conn = true;
    let v = d.packet_in(
        &tcp_pkt("1.1.1.1", 1, "10.0.0.1", 443, "A"),
        t,
        &mut NoRandom,
    );
    assert_eq!(v, Verdict::Pass);
}

#[test]
fn template_outlives_its_timeout_while_it_controls_connections() {
    let mut d = director();
    persistent_setup(&mut d, 10);
    let t0 = Time::from_secs(1);
    let first = dest_of(d.packet_in(
        &tcp_pkt("1.1.1.1", 1, "10.0.0.1", 443, "S"),
        t0,
        &mut NoRandom,
    ));
    d.packet_in(
        &tcp_pkt("1.1.1.1", 1, "10.0.0.1", 443, "A"),
        t0,
        &mut NoRandom,
    );
    // At 11 s the template fires but controls an ESTABLISHED conn: re-armed for 60 s.
    let t1 = Time::from_secs(12);
    d.tick(t1, 1 << 30, 1000, &mut NoRandom);
    let tmpl = d
        .conns
        .iter()
        .find(|&c| d.conns.info(c).unwrap().cport == 0)
        .unwrap();
    let info = d.conns.info(tmpl).unwrap();
    assert_eq!(
        info.timeout.as_secs(),
        60,
        "quirk: timeout overwritten with 60 s"
    );
    // A new connection from the same client still goes to the same server.
    let again = dest_of(d.packet_in(
        &tcp_pkt("1.1.1.1", 9, "10.0.0.1", 443, "S"),
        t1,
        &mut NoRandom,
    ));
    assert_eq!(again, first);
}

#[test]
fn one_packet_scheduling_spreads_every_datagram() {
    let mut d = director();
    let k = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: ip("10.0.0.1"),
        port: 53,
    };
    setup(
        &mut d,
        k,
        ServiceConfig::new(SchedKind::Rr, k.family()).flags(ServiceFlags::ONEPACKET),
        &["192.168.1.1", "192.168.1.2"],
        53,
        FwdMethod::Masq,
    );
    let t = Time::from_secs(1);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let v = d.packet_in(
            &udp_pkt("1.1.1.1", 999, "10.0.0.1", 53, b"q"),
            t,
            &mut NoRandom,
        );
        let Verdict::Forward(r) = v else {
            panic!("{v:?}")
        };
        assert!(r.conn.is_none(), "one-packet entries are not kept");
        seen.push(r.daddr);
    }
    assert_eq!(seen[0], seen[2]);
    assert_ne!(seen[0], seen[1]);
    assert_eq!(d.conns.hashed_len(), 0);
    for (_, x) in d.table.dests.iter() {
        assert_eq!(x.total_conns(), 0);
    }
}

#[test]
fn sip_engine_persists_by_call_id() {
    let mut d = director();
    let k = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: ip("10.0.0.1"),
        port: 5060,
    };
    let mut cfg = ServiceConfig::new(SchedKind::Rr, k.family()).persistent(60);
    cfg.pe = Some(rvs_core::service::PeKind::Sip);
    d.table.add_service(k, cfg, Time(0)).unwrap();
    for rs in ["192.168.1.1", "192.168.1.2"] {
        d.table
            .add_dest(
                &k,
                DestConfig::new(ip(rs), 5060).fwd(FwdMethod::Masq),
                Time(0),
            )
            .unwrap();
    }
    let t = Time::from_secs(1);
    let call_a = b"INVITE sip:a SIP/2.0\r\nCall-ID: aaa@x\r\n\r\n";
    let call_b = b"INVITE sip:b SIP/2.0\r\nCall-ID: bbb@x\r\n\r\n";
    let a1 = dest_of(d.packet_in(
        &udp_pkt("1.1.1.1", 1, "10.0.0.1", 5060, call_a),
        t,
        &mut NoRandom,
    ));
    let b1 = dest_of(d.packet_in(
        &udp_pkt("1.1.1.1", 2, "10.0.0.1", 5060, call_b),
        t,
        &mut NoRandom,
    ));
    assert_ne!(
        a1, b1,
        "different calls from one client may go to different servers"
    );
    // The same Call-ID from another client and port goes to the same server.
    let a2 = dest_of(d.packet_in(
        &udp_pkt("7.7.7.7", 3, "10.0.0.1", 5060, call_a),
        t,
        &mut NoRandom,
    ));
    assert_eq!(a1, a2);
    // No Call-ID: dropped.
    let v = d.packet_in(
        &udp_pkt("1.1.1.1", 4, "10.0.0.1", 5060, b"hello"),
        t,
        &mut NoRandom,
    );
    assert_eq!(v, Verdict::Drop(DropReason::PersistenceEngine));
}

#[test]
fn no_destination_rejects_and_unknown_traffic_passes() {
    let mut d = director();
    let k = tcp_key("10.0.0.1", 80);
    d.table
        .add_service(k, ServiceConfig::new(SchedKind::Wlc, k.family()), Time(0))
        .unwrap();
    let t = Time::from_secs(1);
    assert_eq!(
        d.packet_in(
            &tcp_pkt("1.1.1.1", 1, "10.0.0.1", 80, "S"),
            t,
            &mut NoRandom
        ),
        Verdict::Reject
    );
    assert_eq!(
        d.packet_in(
            &tcp_pkt("1.1.1.1", 1, "10.0.0.2", 80, "S"),
            t,
            &mut NoRandom
        ),
        Verdict::Pass
    );
    // A non-SYN segment without a connection is not scheduled.
    d.table
        .add_dest(&k, DestConfig::new(ip("192.168.1.1"), 80), Time(0))
        .unwrap();
    assert_eq!(
        d.packet_in(
            &tcp_pkt("1.1.1.1", 1, "10.0.0.1", 80, "A"),
            t,
            &mut NoRandom
        ),
        Verdict::Pass
    );
    d.sys.conn.sloppy_tcp = true;
    assert!(matches!(
        d.packet_in(
            &tcp_pkt("1.1.1.1", 1, "10.0.0.1", 80, "A"),
            t,
            &mut NoRandom
        ),
        Verdict::Forward(_)
    ));
}

#[test]
fn reuse_of_a_time_wait_tuple_reschedules() {
    let mut d = director();
    let k = tcp_key("10.0.0.1", 80);
    setup(
        &mut d,
        k,
        ServiceConfig::new(SchedKind::Rr, k.family()),
        &["192.168.1.1", "192.168.1.2"],
        80,
        FwdMethod::Masq,
    );
    let t = Time::from_secs(1);
    let a = dest_of(d.packet_in(
        &tcp_pkt("1.1.1.1", 7, "10.0.0.1", 80, "S"),
        t,
        &mut NoRandom,
    ));
    // ESTABLISHED, then RST → CLOSE (an RST in SYN_RECV would keep SYN_RECV); a new SYN on the
    // same tuple is then a new connection (conn_reuse_mode 1).
    d.packet_in(
        &tcp_pkt("1.1.1.1", 7, "10.0.0.1", 80, "A"),
        t,
        &mut NoRandom,
    );
    d.packet_in(
        &tcp_pkt("1.1.1.1", 7, "10.0.0.1", 80, "R"),
        t,
        &mut NoRandom,
    );
    let b = dest_of(d.packet_in(
        &tcp_pkt("1.1.1.1", 7, "10.0.0.1", 80, "S"),
        t,
        &mut NoRandom,
    ));
    assert_ne!(a, b);
    assert_eq!(d.conns.hashed_len(), 1);
    assert_eq!(d.total.shown().conns, 2);
}

#[test]
fn rates_follow_the_estimator() {
    let mut d = director();
    let k = tcp_key("10.0.0.1", 80);
    d.table
        .add_service(k, ServiceConfig::new(SchedKind::Rr, k.family()), Time(0))
        .unwrap();
    d.table
        .add_dest(&k, DestConfig::new(ip("192.168.1.1"), 80), Time(0))
        .unwrap();
    // 100 new connections per second for 4 seconds, estimator every 2 s.
    let mut port = 1u16;
    for sec in 0..4u64 {
        for _ in 0..100 {
            let t = Time::from_secs(sec) + rvs_core::Duration::from_millis(500);
            d.packet_in(
                &tcp_pkt("1.1.1.1", port, "10.0.0.1", 80, "S"),
                t,
                &mut NoRandom,
            );
            port += 1;
        }
        d.tick(Time::from_secs(sec + 1), 1 << 30, 10_000, &mut NoRandom);
    }
    assert_eq!(d.total.est.rates().cps, 44);
    d.zero(None);
    assert_eq!(d.total.shown().conns, 0);
    assert_eq!(d.total.est.rates().cps, 0);
}

/// A picker that hands out one local address with ports from 5000, skipping taken tuples.
struct OneLaddr {
    laddr: IpAddr,
    next: u16,
    last: u16,
    asked: u32,
}

impl rvs_core::director::LocalAddrs for OneLaddr {
    fn pick(
        &mut self,
        _svc: &ServiceKey,
        proto: u8,
        rs: IpAddr,
        rs_port: u16,
        conns: &rvs_core::ConnTable,
    ) -> Option<(IpAddr, u16)> {
        self.asked += 1;
        while self.next <= self.last {
            let p = self.next;
            self.next += 1;
            if conns
                .lookup_fullnat_out(proto, &rs, rs_port, &self.laddr, p)
                .is_none()
            {
                return Some((self.laddr, p));
            }
        }
        None
    }
}

#[test]
fn fullnat_local_address_comes_from_the_picker() {
    let mut d = director();
    let k = tcp_key("10.0.0.1", 80);
    d.table
        .add_service(k, ServiceConfig::new(SchedKind::Rr, k.family()), Time(0))
        .unwrap();
    d.table
        .add_dest(
            &k,
            DestConfig::new(ip("192.168.1.1"), 8080).fwd(FwdMethod::FullNat),
            Time(0),
        )
        .unwrap();
    let mut pick = OneLaddr {
        laddr: ip("192.168.1.100"),
        next: 5000,
        last: 5000,
        asked: 0,
    };
    let now = Time::from_secs(1);
    let v = d.packet_in_fullnat(
        &tcp_pkt("1.1.1.1", 1000, "10.0.0.1", 80, "S"),
        now,
        &mut NoRandom,
        &mut pick,
    );
    let Verdict::Forward(r) = v else {
        panic!("expected a route, got {v:?}")
    };
    assert_eq!(r.local, Some((ip("192.168.1.100"), 5000)));
    assert_eq!(r.dport, 8080);
    // The reply to the local address finds the connection and goes back to the client.
    let reply = d
        .packet_out(
            &tcp_pkt("192.168.1.1", 8080, "192.168.1.100", 5000, "SA"),
            now,
        )
        .expect("reply matched by local address");
    assert_eq!(
        (reply.caddr, reply.cport, reply.vaddr, reply.vport),
        (ip("1.1.1.1"), 1000, ip("10.0.0.1"), 80)
    );
    // Packets of the existing connection do not ask for another address.
    d.packet_in_fullnat(
        &tcp_pkt("1.1.1.1", 1000, "10.0.0.1", 80, "A"),
        now,
        &mut NoRandom,
        &mut pick,
    );
    assert_eq!(pick.asked, 1);
    // The only port is taken toward this real server: the next connection is dropped and
    // not counted.
    let v = d.packet_in_fullnat(
        &tcp_pkt("1.1.1.2", 1000, "10.0.0.1", 80, "S"),
        now,
        &mut NoRandom,
        &mut pick,
    );
    assert_eq!(v, Verdict::Drop(DropReason::NoLocalAddress));
    assert_eq!(d.total.shown().conns, 1);
    assert_eq!(d.conns.len(), 1);
    // Plain packet_in keeps its old behaviour: no local address.
    let v = d.packet_in(
        &tcp_pkt("1.1.1.3", 1000, "10.0.0.1", 80, "S"),
        now,
        &mut NoRandom,
    );
    let Verdict::Forward(r) = v else {
        panic!("expected a route, got {v:?}")
    };
    assert_eq!(r.local, None);
}

/// A NAT service 10.0.0.1:80 → 192.168.1.1:80 whose table holds at most `max` entries.
fn bounded(max: usize) -> Director {
    let mut d = director();
    let k = tcp_key("10.0.0.1", 80);
    setup(
        &mut d,
        k,
        ServiceConfig::new(SchedKind::Rr, k.family()),
        &["192.168.1.1"],
        80,
        FwdMethod::Masq,
    );
    d.conns.set_max_entries(max);
    d
}

#[test]
fn a_full_table_refuses_new_connections_and_keeps_established_ones() {
    let mut d = bounded(3);
    let now = Time::from_secs(1);
    // An established connection, then two half-open ones fill the table.
    let est = tcp_pkt("1.1.1.1", 1000, "10.0.0.1", 80, "S");
    assert!(matches!(
        d.packet_in(&est, now, &mut NoRandom),
        Verdict::Forward(_)
    ));
    let reply = tcp_pkt("192.168.1.1", 80, "1.1.1.1", 1000, "SA");
    assert!(d.packet_out(&reply, now).is_some());
    let ack = tcp_pkt("1.1.1.1", 1000, "10.0.0.1", 80, "A");
    assert!(matches!(
        d.packet_in(&ack, now, &mut NoRandom),
        Verdict::Forward(_)
    ));
    for port in [2000, 2001] {
        let syn = tcp_pkt("6.6.6.6", port, "10.0.0.1", 80, "S");
        assert!(matches!(
            d.packet_in(&syn, now, &mut NoRandom),
            Verdict::Forward(_)
        ));
    }
    assert_eq!(d.conns.len(), 3);
    // The fourth is refused and counted; the table does not grow.
    for port in 3000..3100 {
        let syn = tcp_pkt("6.6.6.6", port, "10.0.0.1", 80, "S");
        assert_eq!(
            d.packet_in(&syn, now, &mut NoRandom),
            Verdict::Drop(DropReason::TableFull)
        );
    }
    assert_eq!(d.conns.len(), 3);
    assert_eq!(d.conns.refused_full(), 100);
    assert_eq!(d.total.shown().conns, 3);
    // The established connection still flows both ways.
    assert_eq!(
        dest_of(d.packet_in(&ack, now, &mut NoRandom)),
        ip("192.168.1.1")
    );
    assert!(d
        .packet_out(&tcp_pkt("192.168.1.1", 80, "1.1.1.1", 1000, "A"), now)
        .is_some());
    // Once entries leave, new connections are accepted again.
    let later = Time::from_secs(200);
    while d.tick(later, u64::MAX, 1000, &mut NoRandom) {}
    assert!(d.conns.len() < 3);
    let syn = tcp_pkt("1.1.1.1", 4000, "10.0.0.1", 80, "S");
    assert!(matches!(
        d.packet_in(&syn, later, &mut NoRandom),
        Verdict::Forward(_)
    ));
}

/// A small deterministic generator, so the sampling windows move.
struct Lcg(u64);
impl RandomSource for Lcg {
    fn below(&mut self, n: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % u64::from(n.max(1))) as u32
    }
}

#[test]
fn drop_entry_under_memory_pressure_removes_half_open_entries_first() {
    use rvs_core::defense::Mode;
    let mut d = bounded(1 << 20);
    d.defense.drop_entry = Mode(1);
    let now = Time::from_secs(1);
    // One established connection.
    let syn = tcp_pkt("1.1.1.1", 1000, "10.0.0.1", 80, "S");
    d.packet_in(&syn, now, &mut NoRandom);
    d.packet_out(&tcp_pkt("192.168.1.1", 80, "1.1.1.1", 1000, "SA"), now);
    d.packet_in(
        &tcp_pkt("1.1.1.1", 1000, "10.0.0.1", 80, "A"),
        now,
        &mut NoRandom,
    );
    // 3 200 spoofed SYNs: SYN_RECV entries.
    for i in 0..3200u32 {
        let src = format!("6.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff);
        d.packet_in(
            &tcp_pkt(&src, 5000, "10.0.0.1", 80, "S"),
            now,
            &mut NoRandom,
        );
    }
    assert_eq!(d.conns.len(), 3201);
    // Plenty of memory: the automatic mode stays off and nothing is dropped.
    d.tick(Time::from_secs(2), u64::MAX, 0, &mut NoRandom);
    assert_eq!(d.defense.drop_entry, Mode(1));
    assert_eq!(d.conns.len(), 3201);
    // Below amemthresh: each second a random 32nd of the table is scanned and its half-open
    // entries go. After 32 passes about 1 - (31/32)^32 = 64 % of them are gone (the windows
    // overlap at random), long before the 60 s SYN_RECV timeout.
    let mut rng = Lcg(7);
    for t in 3..35 {
        d.tick(Time::from_secs(t), 10, 0, &mut rng);
    }
    assert_eq!(d.defense.drop_entry, Mode(2));
    let left = d.conns.len();
    assert!(left < 3201 * 55 / 100, "{left} entries left");
    let t = 35;
    // The established connection (idle < 60 s) is never a candidate.
    let ack = tcp_pkt("1.1.1.1", 1000, "10.0.0.1", 80, "A");
    assert_eq!(
        dest_of(d.packet_in(&ack, Time::from_secs(t), &mut NoRandom)),
        ip("192.168.1.1")
    );
}

#[test]
fn drop_packet_and_secure_tcp_act_under_memory_pressure() {
    use rvs_core::conn::state::tcp;
    use rvs_core::defense::Mode;
    let mut d = bounded(1 << 20);
    d.defense.drop_packet = Mode(1);
    d.defense.secure_tcp = Mode(1);
    // amemthresh 1024, 512 pages available: 1 in 1024 / 512 = 2 new connections is dropped.
    d.tick(Time::from_secs(1), 512, 0, &mut NoRandom);
    let now = Time::from_secs(1);
    let mut dropped = 0;
    for port in 0..100u16 {
        let syn = tcp_pkt("6.6.6.6", 1000 + port, "10.0.0.1", 80, "S");
        if d.packet_in(&syn, now, &mut NoRandom) == Verdict::Drop(DropReason::Defense) {
            dropped += 1;
        }
    }
    assert_eq!(dropped, 50);
    // secure_tcp: a client's ACK without the server's SYN-ACK does not establish (a spoofed
    // handshake stays SYN_RECV, which drop_entry may remove).
    let state = |d: &Director, port: u16| {
        let id = d
            .conns
            .lookup_in(6, &ip("6.6.6.9"), port, &ip("10.0.0.1"), 80)
            .unwrap();
        d.conns.get(id).unwrap().state()
    };
    let handshake = |d: &mut Director, port: u16| {
        for f in ["S", "A"] {
            let p = tcp_pkt("6.6.6.9", port, "10.0.0.1", 80, f);
            while d.packet_in(&p, now, &mut NoRandom) == Verdict::Drop(DropReason::Defense) {}
        }
    };
    handshake(&mut d, 1);
    assert_eq!(state(&d, 1), tcp::SYN_RECV);
    // Pressure over: everything accepted again, and the normal table establishes on the ACK.
    d.tick(Time::from_secs(2), u64::MAX, 0, &mut NoRandom);
    assert!((0..10).all(|p| {
        let syn = tcp_pkt("6.6.6.7", p, "10.0.0.1", 80, "S");
        matches!(d.packet_in(&syn, now, &mut NoRandom), Verdict::Forward(_))
    }));
    handshake(&mut d, 2);
    assert_eq!(state(&d, 2), tcp::ESTABLISHED);
}
