//! Tests of the connection table: kernel traces, state tables cell by cell, timeouts, expiry,
//! look-ups and a model-based property test.

use std::collections::HashMap as StdHashMap;
use std::net::IpAddr;

use proptest::prelude::*;

use super::state::{self, chunk, sctp, tcp, TableDir};
use super::*;
use crate::addr::{Family, Protocol};
use crate::dest::{DestConfig, FwdMethod};
use crate::sched::SchedKind;
use crate::service::{ServiceConfig, ServiceKey};

const SEED: HashSeed = HashSeed([
    0x0123_4567_89ab_cdef,
    0xfedc_ba98_7654_3210,
    0x0f1e_2d3c_4b5a_6978,
    0x8796_a5b4_c3d2_e1f0,
]);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A service table with one TCP service 10.0.0.1:80 and one dest 192.168.1.1:80 using `fwd`.
fn setup(fwd: FwdMethod, proto: Protocol) -> (ServiceTable, DestId) {
    let mut t = ServiceTable::new();
    let key = ServiceKey::Addr {
        proto,
        addr: ip("10.0.0.1"),
        port: 80,
    };
    t.add_service(
        key,
        ServiceConfig::new(SchedKind::Rr, Family::Inet),
        Time(0),
    )
    .unwrap();
    let d = t
        .add_dest(
            &key,
            DestConfig::new(ip("192.168.1.1"), 80).fwd(fwd),
            Time(0),
        )
        .unwrap();
    (t, d)
}

fn new_conn(proto: u8, cport: u16, dest: DestId) -> NewConn<'static> {
    let mut n = NewConn::new(
        proto,
        ip("172.16.0.9"),
        cport,
        ip("10.0.0.1"),
        80,
        ip("192.168.1.1"),
        80,
    );
    n.dest = Some(dest);
    n
}

fn syn() -> Segment {
    Segment::Tcp(TcpFlags::from_byte(0x02))
}
fn synack() -> Segment {
    Segment::Tcp(TcpFlags::from_byte(0x12))
}
fn ack() -> Segment {
    Segment::Tcp(TcpFlags::from_byte(0x10))
}
fn finack() -> Segment {
    Segment::Tcp(TcpFlags::from_byte(0x11))
}
fn rst() -> Segment {
    Segment::Tcp(TcpFlags::from_byte(0x04))
}

/// (active, inactive) of dest `d`.
fn counts(t: &ServiceTable, d: DestId) -> (u32, u32) {
    let d = &t.dests[d];
    (d.active, d.inactive)
}

struct Step {
    dir: Direction,
    seg: Segment,
    state: &'static str,
    timeout: u64,
    active: u32,
    inactive: u32,
}

fn run_trace(fwd: FwdMethod, steps: &[Step]) -> (ConnTable, ServiceTable, DestId, ConnId) {
    let (mut svc, d) = setup(fwd, Protocol::Tcp);
    let sys = ConnSysctls::default();
    let mut ct = ConnTable::new(SEED, Time(0));
    let id = ct
        .insert(&new_conn(proto::TCP, 40000, d), Time(0), &mut svc)
        .unwrap();
    assert_eq!(counts(&svc, d), (0, 1), "a new conn starts inactive");
    assert_eq!(ct.get(id).unwrap().timeout(), secs(3));
    let mut now = Time(0);
    for (i, s) in steps.iter().enumerate() {
        now = now + Duration::from_millis(100);
        ct.on_packet(id, s.dir, s.seg, &sys, now, &mut svc).unwrap();
        let c = ct.get(id).unwrap();
        assert_eq!(c.state_name(), s.state, "step {i}");
        assert_eq!(c.timeout(), secs(s.timeout), "step {i}");
        assert_eq!(c.expires(), Some(now + secs(s.timeout)), "step {i}");
        assert_eq!(counts(&svc, d), (s.active, s.inactive), "step {i}");
    }
    (ct, svc, d, id)
}

fn step(dir: Direction, seg: Segment, state: &'static str, timeout: u64, a: u32, i: u32) -> Step {
    Step {
        dir,
        seg,
        state,
        timeout,
        active: a,
        inactive: i,
    }
}

use Direction::{Input as IN, Output as OUT};

#[test]
fn nat_trace() {
    let (mut ct, mut svc, d, id) = run_trace(
        FwdMethod::Masq,
        &[
            step(IN, syn(), "SYN_RECV", 60, 1, 0),
            step(OUT, synack(), "SYN_RECV", 60, 1, 0),
            step(IN, ack(), "ESTABLISHED", 900, 1, 0),
            step(IN, ack(), "ESTABLISHED", 900, 1, 0),
            step(IN, finack(), "CLOSE_WAIT", 60, 0, 1),
            step(OUT, finack(), "TIME_WAIT", 120, 0, 1),
            step(IN, ack(), "TIME_WAIT", 120, 0, 1),
        ],
    );
    assert_eq!(ct.get(id).unwrap().flags() & flags::NOOUTPUT, 0);
    let mut ev = Vec::new();
    // Last packet at 0.7 s; TIME_WAIT lasts 120 s.
    ct.expire(Time(120_690), 1000, &mut svc, &mut ev);
    assert!(ev.is_empty());
    ct.expire(Time(120_700), 1000, &mut svc, &mut ev);
    assert_eq!(ev.len(), 1);
    assert!(matches!(ev[0], Expired::Removed(r) if r.id == id && r.dest == Some(d)));
    assert_eq!(counts(&svc, d), (0, 0));
    assert!(ct.is_empty());
}

#[test]
fn dr_trace_fin_wait_stays_until_expiry() {
    let (mut ct, mut svc, d, id) = run_trace(
        FwdMethod::Route,
        &[
            step(IN, syn(), "SYN_RECV", 60, 1, 0),
            step(IN, ack(), "ESTABLISHED", 900, 1, 0),
            step(IN, finack(), "FIN_WAIT", 120, 0, 1),
            step(IN, ack(), "FIN_WAIT", 120, 0, 1),
            step(IN, ack(), "FIN_WAIT", 120, 0, 1),
        ],
    );
    assert_ne!(ct.get(id).unwrap().flags() & flags::NOOUTPUT, 0);
    assert_eq!(ct.get(id).unwrap().fwd(), flags::DROUTE);
    let mut ev = Vec::new();
    ct.expire(Time(500 + 120_000), 1000, &mut svc, &mut ev);
    assert_eq!(ev.len(), 1);
    assert_eq!(counts(&svc, d), (0, 0));
}

#[test]
fn dr_rst_closes() {
    run_trace(
        FwdMethod::Tunnel,
        &[
            step(IN, syn(), "SYN_RECV", 60, 1, 0),
            step(IN, ack(), "ESTABLISHED", 900, 1, 0),
            step(IN, rst(), "CLOSE", 10, 0, 1),
        ],
    );
}

#[test]
fn segment_without_flags_closes_and_output_clears_nooutput() {
    let (ct, _, _, id) = run_trace(
        FwdMethod::Route,
        &[
            step(IN, syn(), "SYN_RECV", 60, 1, 0),
            step(IN, Segment::Tcp(TcpFlags::default()), "CLOSE", 10, 0, 1),
            // An output packet on a DR conn (e.g. the RS routes replies through us) switches
            // it to the OUTPUT table for good: CLOSE + SYN out → SYN_SENT (active).
            step(OUT, syn(), "SYN_SENT", 120, 1, 0),
        ],
    );
    assert_eq!(ct.get(id).unwrap().flags() & flags::NOOUTPUT, 0);
}

#[test]
fn established_assures_template_and_udp_reply_too() {
    let (mut svc, d) = setup(FwdMethod::Masq, Protocol::Tcp);
    let sys = ConnSysctls::default();
    let mut ct = ConnTable::new(SEED, Time(0));
    let mut tn = new_conn(proto::TCP, 0, d);
    tn.flags = flags::TEMPLATE;
    tn.timeout = secs(360);
    let t = ct.insert(&tn, Time(0), &mut svc).unwrap();
    assert_eq!(svc.dests[d].persist, 1);
    assert_eq!(counts(&svc, d), (0, 0), "templates are not active/inactive");
    let c = ct
        .insert(&new_conn(proto::TCP, 1234, d), Time(0), &mut svc)
        .unwrap();
    assert!(ct.set_control(c, t));
    assert_eq!(ct.get(t).unwrap().n_control(), 1);
    assert_eq!(ct.get(t).unwrap().state_name(), "NONE");
    let o = ct.on_packet(c, IN, syn(), &sys, Time(1), &mut svc).unwrap();
    assert_eq!(o.assured, None);
    assert_eq!(o.moved, Some((d, true)));
    let o = ct.on_packet(c, IN, ack(), &sys, Time(2), &mut svc).unwrap();
    assert_eq!(o.assured, Some(t));
    assert_eq!(ct.get(t).unwrap().state_name(), "ASSURED");

    // UDP: only a reply assures; counters never move.
    let (mut svc, d) = setup(FwdMethod::Masq, Protocol::Udp);
    let mut ct = ConnTable::new(SEED, Time(0));
    let mut tn = new_conn(proto::UDP, 0, d);
    tn.flags = flags::TEMPLATE;
    let t = ct.insert(&tn, Time(0), &mut svc).unwrap();
    let c = ct
        .insert(&new_conn(proto::UDP, 53, d), Time(0), &mut svc)
        .unwrap();
    ct.set_control(c, t);
    let o = ct
        .on_packet(c, IN, Segment::Udp, &sys, Time(5), &mut svc)
        .unwrap();
    assert_eq!(o.assured, None);
    assert_eq!(ct.get(c).unwrap().timeout(), secs(300));
    assert_eq!(ct.get(c).unwrap().state_name(), "UDP");
    let o = ct
        .on_packet(c, OUT, Segment::Udp, &sys, Time(6), &mut svc)
        .unwrap();
    assert_eq!(o.assured, Some(t));
    assert_eq!(counts(&svc, d), (0, 1));
}

/// The docs/internals/connections.md#tcp tables, copied verbatim.
const SPEC_TABLES: &str = "
INPUT       NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
  syn       SR  ES  ES  SR  SR  SR  SR  SR  SR  SR  SR
  fin       CL  CW  SS  TW  TW  TW  CL  CW  LA  LI  TW
  ack       ES  ES  SS  ES  FW  TW  CL  CW  CL  LI  ES
  rst       CL  CL  CL  SR  CL  CL  CL  CL  LA  LI  SR
OUTPUT
  syn       SS  ES  SS  SR  SS  SS  SS  SS  SS  LI  SR
  fin       TW  FW  SS  TW  FW  TW  CL  TW  LA  LI  TW
  ack       ES  ES  SS  ES  FW  TW  CL  CW  LA  ES  ES
  rst       CL  CL  SS  CL  CL  TW  CL  CL  CL  CL  CL
INPUT_ONLY
  syn       SR  ES  ES  SR  SR  SR  SR  SR  SR  SR  SR
  fin       CL  FW  SS  TW  FW  TW  CL  CW  LA  LI  TW
  ack       ES  ES  SS  ES  FW  TW  CL  CW  CL  LI  ES
  rst       CL  CL  CL  SR  CL  CL  CL  CL  LA  LI  CL
";

const SPEC_TABLES_SECURE: &str = "
INPUT       NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
  syn       SR  ES  ES  SR  SR  SR  SR  SR  SR  SR  SA
  fin       CL  CW  SS  TW  TW  TW  CL  CW  LA  LI  SA
  ack       ES  ES  SS  SR  FW  TW  CL  CW  CL  LI  SA
  rst       CL  CL  CL  SR  CL  CL  CL  CL  LA  LI  CL
OUTPUT
  syn       SS  ES  SS  SA  SS  SS  SS  SS  SS  LI  SA
  fin       TW  FW  SS  TW  FW  TW  CL  TW  LA  LI  TW
  ack       ES  ES  SS  ES  FW  TW  CL  CW  LA  ES  ES
  rst       CL  CL  SS  CL  CL  TW  CL  CL  CL  CL  CL
INPUT_ONLY
  syn       SA  ES  ES  SR  SA  SA  SA  SA  SA  SA  SA
  fin       CL  FW  SS  TW  FW  TW  CL  CW  LA  LI  TW
  ack       ES  ES  SS  ES  FW  TW  CL  CW  CL  LI  ES
  rst       CL  CL  CL  SR  CL  CL  CL  CL  LA  LI  CL
";

fn abbrev(s: &str) -> u8 {
    let names = [
        "NO", "ES", "SS", "SR", "FW", "TW", "CL", "CW", "LA", "LI", "SA",
    ];
    names
        .iter()
        .position(|n| *n == s)
        .expect("state abbreviation") as u8
}

fn check_spec_table(text: &str, secure: bool) {
    let mut dir = None;
    let mut cells = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap();
        let d = match first {
            "INPUT" => Some(TableDir::Input),
            "OUTPUT" => Some(TableDir::Output),
            "INPUT_ONLY" => Some(TableDir::InputOnly),
            _ => None,
        };
        if d.is_some() {
            dir = d;
            continue;
        }
        let flags = match first {
            "syn" => TcpFlags::from_byte(0x02),
            "fin" => TcpFlags::from_byte(0x01),
            "ack" => TcpFlags::from_byte(0x10),
            "rst" => TcpFlags::from_byte(0x04),
            other => panic!("unexpected row {other}"),
        };
        let next: Vec<u8> = words.map(abbrev).collect();
        assert_eq!(next.len(), tcp::COUNT);
        for (cur, &want) in next.iter().enumerate() {
            let got = state::tcp_next_state(secure, dir.unwrap(), flags, cur as u8);
            assert_eq!(
                got,
                want,
                "{:?} {first} from {}",
                dir,
                state::TCP_STATE_NAMES[cur]
            );
            cells += 1;
        }
    }
    assert_eq!(cells, 3 * 4 * tcp::COUNT);
}

#[test]
fn tcp_tables_match_spec_cell_by_cell() {
    check_spec_table(SPEC_TABLES, false);
    check_spec_table(SPEC_TABLES_SECURE, true);
}

#[test]
fn flag_precedence() {
    let all = TcpFlags {
        syn: true,
        fin: true,
        ack: true,
        rst: true,
    };
    // RST wins: INPUT rst from ES is CL (syn would keep ES).
    assert_eq!(
        state::tcp_next_state(false, TableDir::Input, all, tcp::ESTABLISHED),
        tcp::CLOSE
    );
    // SYN beats FIN and ACK: INPUT syn from NO is SR.
    let sfa = TcpFlags { rst: false, ..all };
    assert_eq!(
        state::tcp_next_state(false, TableDir::Input, sfa, tcp::NONE),
        tcp::SYN_RECV
    );
    // FIN beats ACK: INPUT fin from ES is CW.
    let fa = TcpFlags {
        fin: true,
        ack: true,
        ..TcpFlags::default()
    };
    assert_eq!(
        state::tcp_next_state(false, TableDir::Input, fa, tcp::ESTABLISHED),
        tcp::CLOSE_WAIT
    );
    assert_eq!(
        state::tcp_next_state(
            false,
            TableDir::Input,
            TcpFlags::default(),
            tcp::ESTABLISHED
        ),
        tcp::CLOSE
    );
    // Corrupt state input does not panic.
    assert_eq!(
        state::tcp_next_state(false, TableDir::Input, fa, 200),
        tcp::CLOSE
    );
}

#[test]
fn secure_tcp_is_used_when_enabled() {
    let (mut svc, d) = setup(FwdMethod::Masq, Protocol::Tcp);
    let sys = ConnSysctls {
        secure_tcp: true,
        ..ConnSysctls::default()
    };
    let mut ct = ConnTable::new(SEED, Time(0));
    let c = ct
        .insert(&new_conn(proto::TCP, 1, d), Time(0), &mut svc)
        .unwrap();
    ct.on_packet(c, IN, syn(), &sys, Time(0), &mut svc);
    assert_eq!(ct.get(c).unwrap().state(), tcp::SYN_RECV);
    // Secure INPUT ack from SR stays SR (normal table: ES): the handshake must be seen out.
    ct.on_packet(c, IN, ack(), &sys, Time(0), &mut svc);
    assert_eq!(ct.get(c).unwrap().state(), tcp::SYN_RECV);
    ct.on_packet(c, OUT, synack(), &sys, Time(0), &mut svc);
    assert_eq!(ct.get(c).unwrap().state_name(), "SYNACK");
    assert_eq!(counts(&svc, d), (1, 0), "SYNACK is active");
}

#[test]
fn active_states_and_creation_rules() {
    let active: Vec<&str> = (0..tcp::COUNT as u8)
        .filter(|&s| state::tcp_state_active(s))
        .map(|s| state::TCP_STATE_NAMES[s as usize])
        .collect();
    assert_eq!(active, ["ESTABLISHED", "SYN_SENT", "SYN_RECV", "SYNACK"]);
    let f = TcpFlags::from_byte;
    assert!(state::tcp_can_create(f(0x02), false));
    assert!(
        state::tcp_can_create(f(0x12), false),
        "SYN+ACK (active FTP)"
    );
    assert!(!state::tcp_can_create(f(0x06), false), "SYN+RST");
    assert!(!state::tcp_can_create(f(0x10), false));
    assert!(state::tcp_can_create(f(0x10), true), "sloppy_tcp");
    assert!(!state::tcp_can_create(f(0x14), true), "RST never");
    assert!(state::sctp_can_create(chunk::INIT, false));
    assert!(!state::sctp_can_create(chunk::DATA, false));
    assert!(state::sctp_can_create(chunk::DATA, true));
}

#[test]
fn set_timeouts() {
    let mut t = Timeouts::default();
    assert_eq!(t.get(), (900, 120, 300));
    t.set(3600, 0, 0).unwrap();
    assert_eq!(t.get(), (3600, 120, 300));
    t.set(0, 30, 10).unwrap();
    assert_eq!(t.get(), (3600, 30, 10));
    assert!(t.set(state::MAX_SET_TIMEOUT_SECS + 1, 1, 1).is_err());
    assert_eq!(t.get(), (3600, 30, 10), "a rejected --set changes nothing");
    // Other states keep their fixed timeouts.
    assert_eq!(t.for_state(proto::TCP, tcp::SYN_RECV), secs(60));
    assert_eq!(t.for_state(proto::TCP, tcp::TIME_WAIT), secs(120));

    // Existing conns pick the new values up on their next transition.
    let (mut svc, d) = setup(FwdMethod::Route, Protocol::Tcp);
    let mut sys = ConnSysctls::default();
    let mut ct = ConnTable::new(SEED, Time(0));
    let c = ct
        .insert(&new_conn(proto::TCP, 1, d), Time(0), &mut svc)
        .unwrap();
    ct.on_packet(c, IN, syn(), &sys, Time(0), &mut svc);
    ct.on_packet(c, IN, ack(), &sys, Time(0), &mut svc);
    assert_eq!(ct.get(c).unwrap().timeout(), secs(900));
    sys.timeouts = t;
    assert_eq!(ct.get(c).unwrap().timeout(), secs(900));
    ct.on_packet(c, IN, ack(), &sys, Time(1000), &mut svc);
    assert_eq!(ct.get(c).unwrap().timeout(), secs(3600));
    assert_eq!(ct.get(c).unwrap().expires(), Some(Time(1000 + 3_600_000)));
    ct.on_packet(c, IN, finack(), &sys, Time(2000), &mut svc);
    assert_eq!(ct.get(c).unwrap().timeout(), secs(30));
}

#[test]
fn sctp_handshake_and_shutdown() {
    let (mut svc, d) = setup(FwdMethod::Masq, Protocol::Sctp);
    let sys = ConnSysctls::default();
    let mut ct = ConnTable::new(SEED, Time(0));
    let c = ct
        .insert(&new_conn(proto::SCTP, 5000, d), Time(0), &mut svc)
        .unwrap();
    type SctpStep = (Direction, u8, &'static str, u64, (u32, u32));
    let steps: [SctpStep; 7] = [
        (IN, chunk::INIT, "INIT1", 4, (0, 1)),
        (OUT, chunk::INIT_ACK, "C-SENT", 61, (0, 1)),
        (IN, chunk::COOKIE_ECHO, "C-REPLIED", 61, (0, 1)),
        (OUT, chunk::COOKIE_ACK, "ESTABLISHED", 900, (1, 0)),
        (IN, chunk::DATA, "ESTABLISHED", 900, (1, 0)),
        (IN, chunk::SHUTDOWN, "S-RECEIVED", 61, (0, 1)),
        (OUT, chunk::SHUTDOWN_ACK, "S-ACK-SENT", 61, (0, 1)),
    ];
    for (i, (dir, ch, name, to, cnt)) in steps.into_iter().enumerate() {
        ct.on_packet(c, dir, Segment::Sctp(ch), &sys, Time(0), &mut svc);
        let e = ct.get(c).unwrap();
        assert_eq!(e.state_name(), name, "step {i}");
        assert_eq!(e.timeout(), secs(to), "step {i}");
        assert_eq!(counts(&svc, d), cnt, "step {i}");
    }
    ct.on_packet(
        c,
        IN,
        Segment::Sctp(chunk::SHUTDOWN_COMPLETE),
        &sys,
        Time(0),
        &mut svc,
    );
    assert_eq!(ct.get(c).unwrap().state(), sctp::CLOSED);
    // Bundled ABORT after COOKIE-ECHO counts as ABORT.
    assert_eq!(
        state::sctp_event_chunk(chunk::COOKIE_ECHO, Some(chunk::ABORT)),
        chunk::ABORT
    );
    assert_eq!(
        state::sctp_event_chunk(chunk::DATA, Some(chunk::ABORT)),
        chunk::DATA
    );
    // A few table cells: INPUT_ONLY INIT from REJECTED → INIT; ABORT from C-WAIT → REJECTED;
    // unknown chunk types act as DATA.
    assert_eq!(
        state::sctp_next_state(TableDir::InputOnly, chunk::INIT, sctp::REJECTED),
        sctp::INIT
    );
    assert_eq!(
        state::sctp_next_state(TableDir::Output, chunk::ABORT, sctp::INIT1),
        sctp::REJECTED
    );
    assert_eq!(
        state::sctp_next_state(TableDir::Input, 200, sctp::NONE),
        sctp::ESTABLISHED
    );
    assert_eq!(state::SCTP_STATE_NAMES.len(), sctp::COUNT);
}

#[test]
fn state_names() {
    assert_eq!(state::state_name(proto::TCP, false, tcp::SYNACK), "SYNACK");
    assert_eq!(state::state_name(proto::TCP, false, 11), "ERR!");
    assert_eq!(state::state_name(proto::UDP, false, 0), "UDP");
    assert_eq!(state::state_name(proto::IP, true, 1), "ASSURED");
    assert_eq!(
        state::state_name(proto::SCTP, false, sctp::COOKIE_ECHOED),
        "C-ECHOED"
    );
    assert_eq!(state::ProtoName(0).to_string(), "IP");
    assert_eq!(state::ProtoName(132).to_string(), "SCTP");
    assert_eq!(state::ProtoName(50).to_string(), "IP_50");
}

#[test]
fn expiry_order_and_rearm_of_controlling_template() {
    let (mut svc, d) = setup(FwdMethod::Route, Protocol::Tcp);
    let mut ct = ConnTable::new(SEED, Time(0));
    let mut ids = Vec::new();
    for (i, to) in [10u64, 2, 5].iter().enumerate() {
        let mut n = new_conn(proto::TCP, 100 + i as u16, d);
        n.timeout = secs(*to);
        ids.push(ct.insert(&n, Time(0), &mut svc).unwrap());
    }
    let mut ev = Vec::new();
    let mut order = Vec::new();
    for ms in (0..=11_000).step_by(250) {
        ev.clear();
        ct.expire(Time(ms), usize::MAX, &mut svc, &mut ev);
        for e in &ev {
            if let Expired::Removed(r) = e {
                order.push((ms, r.id));
            }
        }
    }
    assert_eq!(
        order,
        vec![(2000, ids[1]), (5000, ids[2]), (10_000, ids[0])]
    );
    assert_eq!(counts(&svc, d), (0, 0));

    // A template controlling a conn is postponed by 60 s (timeout overwritten), then dies
    // after its child.
    let mut tn = new_conn(proto::TCP, 0, d);
    tn.flags = flags::TEMPLATE;
    tn.timeout = secs(30);
    let t0 = Time(20_000);
    let t = ct.insert(&tn, t0, &mut svc).unwrap();
    let mut cn = new_conn(proto::TCP, 999, d);
    cn.timeout = secs(100);
    let c = ct.insert(&cn, t0, &mut svc).unwrap();
    ct.set_control(c, t);
    assert!(
        ct.remove_and_unbind(t, t0, &mut svc).is_none(),
        "controls a conn"
    );
    ev.clear();
    ct.expire(t0 + secs(30), 100, &mut svc, &mut ev);
    assert_eq!(ev, vec![Expired::Rearmed(t)]);
    assert_eq!(ct.get(t).unwrap().timeout(), secs(60));
    assert_eq!(ct.get(t).unwrap().expires(), Some(t0 + secs(90)));
    ev.clear();
    ct.expire(t0 + secs(90), 100, &mut svc, &mut ev);
    assert_eq!(ev, vec![Expired::Rearmed(t)]);
    ev.clear();
    ct.expire(t0 + secs(100), 100, &mut svc, &mut ev);
    assert_eq!(ev.len(), 1);
    assert!(matches!(ev[0], Expired::Removed(r) if r.id == c && r.control == Some(t)));
    assert_eq!(ct.get(t).unwrap().n_control(), 0);
    assert_eq!(svc.dests[d].persist, 1);
    ev.clear();
    ct.expire(t0 + secs(150), 100, &mut svc, &mut ev);
    assert_eq!(ev.len(), 1);
    assert_eq!(svc.dests[d].persist, 0);
    assert!(ct.is_empty());
    assert_eq!(ct.armed_timers(), 0);
}

#[test]
fn one_packet_conns_are_unhashed_and_expire_at_once() {
    let (mut svc, d) = setup(FwdMethod::Masq, Protocol::Udp);
    let mut ct = ConnTable::new(SEED, Time(0));
    let mut n = new_conn(proto::UDP, 53, d);
    n.flags = flags::ONE_PACKET;
    let c = ct.insert(&n, Time(1000), &mut svc).unwrap();
    assert_eq!(ct.hashed_len(), 0);
    assert_eq!(ct.iter().count(), 0);
    assert!(ct
        .lookup_in(proto::UDP, &ip("172.16.0.9"), 53, &ip("10.0.0.1"), 80)
        .is_none());
    let mut ev = Vec::new();
    ct.expire(Time(1000), 10, &mut svc, &mut ev);
    assert!(matches!(ev[..], [Expired::Removed(r)] if r.id == c));
    // ONE_PACKET is dropped for non-UDP.
    let (mut svc, d) = setup(FwdMethod::Masq, Protocol::Tcp);
    let mut n = new_conn(proto::TCP, 53, d);
    n.flags = flags::ONE_PACKET;
    let c = ct.insert(&n, Time(1000), &mut svc).unwrap();
    assert_eq!(ct.get(c).unwrap().flags() & flags::ONE_PACKET, 0);
    assert_eq!(ct.hashed_len(), 1);
}

#[test]
fn expiry_budget_spreads_work() {
    let (mut svc, d) = setup(FwdMethod::Route, Protocol::Tcp);
    let mut ct = ConnTable::new(SEED, Time(0));
    for p in 0..1000u16 {
        ct.insert(&new_conn(proto::TCP, 1000 + p, d), Time(0), &mut svc)
            .unwrap();
    }
    let mut ev = Vec::new();
    let mut calls = 0;
    while ct.expire(Time(3000), 100, &mut svc, &mut ev) {
        calls += 1;
        assert!(calls < 100, "bounded");
    }
    assert_eq!(ev.len(), 1000);
    assert!(calls >= 9, "work was spread over {calls} calls");
    assert!(ct.is_empty());
    assert_eq!(counts(&svc, d), (0, 0));
}

#[test]
fn long_timeouts_cascade_without_firing_early() {
    let (mut svc, d) = setup(FwdMethod::Route, Protocol::Tcp);
    let mut ct = ConnTable::new(SEED, Time(123_456));
    let tos = [1u64, 59, 61, 641, 3599, 86_400, 2_678_400];
    for (i, to) in tos.iter().enumerate() {
        let mut n = new_conn(proto::TCP, i as u16 + 1, d);
        n.timeout = secs(*to);
        ct.insert(&n, Time(123_456), &mut svc).unwrap();
    }
    let mut ev = Vec::new();
    let mut fired = Vec::new();
    // Advance in uneven hops; every expiry must happen within one hop after its deadline.
    let mut now = 123_456u64;
    let end = 123_456 + 2_678_400_000 + 10_000;
    let mut hop = 7u64;
    while now < end {
        now = (now + hop).min(end);
        hop = (hop * 3 / 2).min(3_600_000);
        ev.clear();
        ct.expire(Time(now), usize::MAX, &mut svc, &mut ev);
        for e in &ev {
            if let Expired::Removed(r) = e {
                fired.push((r.id, now));
            }
        }
    }
    assert_eq!(fired.len(), tos.len());
    let mut prev_deadline = 0;
    for (id, at) in fired {
        let deadline = 123_456 + tos[id.0 as usize] * 1000;
        assert!(at >= deadline, "fired early");
        assert!(deadline >= prev_deadline, "order");
        prev_deadline = deadline;
    }
}

#[test]
fn lookups_both_directions_v4_v6_fullnat() {
    let (mut svc, _) = setup(FwdMethod::Masq, Protocol::Tcp);
    let mut ct = ConnTable::new(SEED, Time(0));
    let n4 = NewConn::new(
        proto::TCP,
        ip("198.51.100.7"),
        40001,
        ip("203.0.113.1"),
        443,
        ip("10.1.1.1"),
        8443,
    );
    let a = ct.insert(&n4, Time(0), &mut svc).unwrap();
    let n6 = NewConn::new(
        proto::TCP,
        ip("2001:db8::7"),
        40001,
        ip("2001:db8:ffff::1"),
        443,
        ip("fd00::10"),
        8443,
    );
    let b = ct.insert(&n6, Time(0), &mut svc).unwrap();
    let mut nf = NewConn::new(
        proto::UDP,
        ip("2001:db8::8"),
        5353,
        ip("2001:db8:ffff::1"),
        53,
        ip("10.2.2.2"),
        53,
    );
    nf.local = Some((ip("10.9.9.9"), 61000));
    let f = ct.insert(&nf, Time(0), &mut svc).unwrap();

    let lin = |ct: &ConnTable, p, c: &str, cp, v: &str, vp| ct.lookup_in(p, &ip(c), cp, &ip(v), vp);
    assert_eq!(
        lin(&ct, 6, "198.51.100.7", 40001, "203.0.113.1", 443),
        Some(a)
    );
    assert_eq!(
        lin(&ct, 6, "2001:db8::7", 40001, "2001:db8:ffff::1", 443),
        Some(b)
    );
    assert_eq!(
        lin(&ct, 17, "2001:db8::8", 5353, "2001:db8:ffff::1", 53),
        Some(f)
    );
    // Wrong protocol / port / vip / IPv4-mapped confusion.
    assert_eq!(
        lin(&ct, 17, "198.51.100.7", 40001, "203.0.113.1", 443),
        None
    );
    assert_eq!(lin(&ct, 6, "198.51.100.7", 40002, "203.0.113.1", 443), None);
    assert_eq!(lin(&ct, 6, "198.51.100.7", 40001, "203.0.113.2", 443), None);
    assert_eq!(
        lin(&ct, 6, "::ffff:198.51.100.7", 40001, "203.0.113.1", 443),
        None
    );

    // NAT replies: RS → client.
    assert_eq!(
        ct.lookup_out(6, &ip("10.1.1.1"), 8443, &ip("198.51.100.7"), 40001),
        Some(a)
    );
    assert_eq!(
        ct.lookup_out(6, &ip("fd00::10"), 8443, &ip("2001:db8::7"), 40001),
        Some(b)
    );
    assert_eq!(
        ct.lookup_out(6, &ip("10.1.1.1"), 443, &ip("198.51.100.7"), 40001),
        None
    );
    assert_eq!(
        ct.lookup_out(6, &ip("10.1.1.2"), 8443, &ip("198.51.100.7"), 40001),
        None
    );

    // Full-NAT replies: RS → local address (an IPv6 client behind an IPv4 local address).
    assert_eq!(
        ct.lookup_fullnat_out(17, &ip("10.2.2.2"), 53, &ip("10.9.9.9"), 61000),
        Some(f)
    );
    assert_eq!(
        ct.lookup_fullnat_out(17, &ip("10.2.2.2"), 53, &ip("10.9.9.9"), 61001),
        None
    );
    assert_eq!(
        ct.lookup_fullnat_out(6, &ip("10.2.2.2"), 53, &ip("10.9.9.9"), 61000),
        None
    );
    assert_eq!(
        ct.lookup_fullnat_out(17, &ip("10.1.1.1"), 8443, &ip("10.9.9.9"), 61000),
        None
    );

    let info = ct.info(f).unwrap();
    assert_eq!(info.local, Some((ip("10.9.9.9"), 61000)));
    assert_eq!(info.family, Family::Inet6);
    assert_eq!(info.daddr, ip("10.2.2.2"));
    assert_eq!(info.expires_in_secs(Time(1500)), 1);
    assert_eq!(info.state_name, "UDP");

    // After removal nothing is found in either index and the pool is released.
    for id in [a, b, f] {
        assert!(ct.remove_and_unbind(id, Time(0), &mut svc).is_some());
    }
    assert_eq!(lin(&ct, 6, "198.51.100.7", 40001, "203.0.113.1", 443), None);
    assert_eq!(
        ct.lookup_fullnat_out(17, &ip("10.2.2.2"), 53, &ip("10.9.9.9"), 61000),
        None
    );
    assert!(ct.pool.map.is_empty());
    assert_eq!(ct.by_local.len(), 0);
}

#[test]
fn many_conns_from_one_client_and_seed_independence() {
    let (mut svc, _) = setup(FwdMethod::Masq, Protocol::Tcp);
    for seed in [SEED, HashSeed([0; 4]), HashSeed([u64::MAX; 4])] {
        let mut ct = ConnTable::new(seed, Time(0));
        let mut ids = Vec::new();
        for p in 1..=20_000u16 {
            let n = NewConn::new(
                6,
                ip("192.0.2.1"),
                p,
                ip("10.0.0.1"),
                80,
                ip("10.1.1.1"),
                80,
            );
            ids.push(ct.insert(&n, Time(0), &mut svc).unwrap());
        }
        // Same client port towards two VIPs: same hash bucket chain, told apart by vaddr.
        let other = NewConn::new(
            6,
            ip("192.0.2.1"),
            1,
            ip("10.0.0.2"),
            80,
            ip("10.1.1.1"),
            80,
        );
        let o = ct.insert(&other, Time(0), &mut svc).unwrap();
        for (i, p) in (1..=20_000u16).enumerate() {
            assert_eq!(
                ct.lookup_in(6, &ip("192.0.2.1"), p, &ip("10.0.0.1"), 80),
                Some(ids[i])
            );
            assert_eq!(
                ct.lookup_out(6, &ip("10.1.1.1"), 80, &ip("192.0.2.1"), p),
                Some(ids[i])
            );
        }
        assert_eq!(
            ct.lookup_in(6, &ip("192.0.2.1"), 1, &ip("10.0.0.2"), 80),
            Some(o)
        );
        assert_eq!(ct.pool.slots.len(), 3, "addresses are interned");
        assert_eq!(ct.hashed_len(), 20_001);
    }
}

#[test]
fn no_cport_second_lookup_and_fill_cport() {
    let (mut svc, _) = setup(FwdMethod::Masq, Protocol::Tcp);
    let mut ct = ConnTable::new(SEED, Time(0));
    let mut n = NewConn::new(
        6,
        ip("192.0.2.1"),
        0,
        ip("10.0.0.1"),
        20,
        ip("10.1.1.1"),
        20,
    );
    n.flags = flags::NO_CPORT;
    let c = ct.insert(&n, Time(0), &mut svc).unwrap();
    // Any client port falls back to the cport-0 entry.
    assert_eq!(
        ct.lookup_in(6, &ip("192.0.2.1"), 5555, &ip("10.0.0.1"), 20),
        Some(c)
    );
    assert!(ct.fill_cport(c, 5555));
    assert_eq!(
        ct.lookup_in(6, &ip("192.0.2.1"), 5555, &ip("10.0.0.1"), 20),
        Some(c)
    );
    assert_eq!(
        ct.lookup_in(6, &ip("192.0.2.1"), 5556, &ip("10.0.0.1"), 20),
        None
    );
    assert_eq!(ct.no_cport, 0);
}

#[test]
fn templates_lookup_invalidate_pe_and_fwmark() {
    let (mut svc, d) = setup(FwdMethod::Route, Protocol::Udp);
    let mut ct = ConnTable::new(SEED, Time(0));
    let mut tn = NewConn::new(
        17,
        ip("192.0.2.0"),
        0,
        ip("10.0.0.1"),
        80,
        ip("192.168.1.1"),
        80,
    );
    tn.flags = flags::TEMPLATE;
    tn.dest = Some(d);
    tn.timeout = secs(360);
    let t = ct.insert(&tn, Time(0), &mut svc).unwrap();
    assert_eq!(ct.get(t).unwrap().timeout(), secs(360));
    assert_eq!(
        ct.lookup_template(17, &ip("192.0.2.0"), &ip("10.0.0.1"), 80, None),
        Some(t)
    );
    // A normal look-up with cport 0 does not see templates.
    assert_eq!(
        ct.lookup_in(17, &ip("192.0.2.0"), 0, &ip("10.0.0.1"), 80),
        None
    );
    // fwmark template: protocol 0, vaddr = mark as IPv4, IPv6 client.
    let mut fw = NewConn::new(
        0,
        ip("2001:db8::"),
        0,
        ip("0.0.0.7"),
        0,
        ip("192.168.1.1"),
        0,
    );
    fw.flags = flags::TEMPLATE;
    let f = ct.insert(&fw, Time(0), &mut svc).unwrap();
    assert_eq!(
        ct.lookup_template(0, &ip("2001:db8::"), &ip("0.0.0.7"), 0, None),
        Some(f)
    );
    assert_eq!(
        ct.lookup_template(0, &ip("2001:db8::"), &ip("0.0.0.8"), 0, None),
        None
    );
    assert_eq!(ct.info(f).unwrap().state_name, "NONE");
    // SIP templates: matched by Call-ID as well.
    let mut sip = tn.clone();
    sip.pe_data = Some(b"a84b4c76e66710");
    sip.dest = None;
    let s = ct.insert(&sip, Time(0), &mut svc).unwrap();
    assert_eq!(
        ct.lookup_template(
            17,
            &ip("192.0.2.0"),
            &ip("10.0.0.1"),
            80,
            Some(b"a84b4c76e66710")
        ),
        Some(s)
    );
    assert_eq!(
        ct.lookup_template(17, &ip("192.0.2.0"), &ip("10.0.0.1"), 80, Some(b"other")),
        None
    );
    assert_eq!(ct.pe_data(s), Some(&b"a84b4c76e66710"[..]));
    let long = [b'x'; 256];
    let mut bad = sip.clone();
    bad.pe_data = Some(&long);
    assert!(ct.insert(&bad, Time(0), &mut svc).is_err());
    // Invalidation: no longer found, still listed with 0xffff ports.
    assert!(ct.invalidate_template(t));
    assert!(!ct.invalidate_template(t));
    assert_eq!(
        ct.lookup_template(17, &ip("192.0.2.0"), &ip("10.0.0.1"), 80, None),
        None
    );
    let i = ct.info(t).unwrap();
    assert_eq!((i.cport, i.vport, i.dport), (0, 0xffff, 0xffff));
    assert!(ct.iter().any(|x| x == t));
    assert_eq!(ct.hashed_len(), 3);
    // Removing the PE template frees its slot for re-use.
    ct.remove_and_unbind(s, Time(0), &mut svc).unwrap();
    assert_eq!(ct.pe_free.len(), 1);
    ct.remove_and_unbind(t, Time(0), &mut svc).unwrap();
    assert_eq!(svc.dests[d].persist, 0);
}

#[test]
fn sync_conns_keep_their_activity_bit() {
    let (mut svc, d) = setup(FwdMethod::Route, Protocol::Tcp);
    let mut ct = ConnTable::new(SEED, Time(0));
    let mut n = new_conn(6, 1, d);
    n.flags = flags::SYNC | flags::MASQ; // active (no INACTIVE), stale fwd bits
    let c = ct.insert(&n, Time(0), &mut svc).unwrap();
    assert_eq!(counts(&svc, d), (1, 0));
    let f = ct.get(c).unwrap().flags();
    assert_eq!(
        f & flags::FWD_MASK,
        flags::DROUTE,
        "method comes from the dest"
    );
    assert_ne!(f & flags::NOOUTPUT, 0);
}

#[test]
fn thresholds_follow_bind_and_unbind() {
    let mut svc = ServiceTable::new();
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip("10.0.0.1"),
        port: 80,
    };
    svc.add_service(
        key,
        ServiceConfig::new(SchedKind::Rr, Family::Inet),
        Time(0),
    )
    .unwrap();
    let d = svc
        .add_dest(
            &key,
            DestConfig::new(ip("192.168.1.1"), 80).thresholds(2, 1),
            Time(0),
        )
        .unwrap();
    let mut ct = ConnTable::new(SEED, Time(0));
    let a = ct.insert(&new_conn(6, 1, d), Time(0), &mut svc).unwrap();
    assert!(!svc.dests[d].overload);
    let b = ct.insert(&new_conn(6, 2, d), Time(0), &mut svc).unwrap();
    assert!(svc.dests[d].overload);
    ct.remove_and_unbind(a, Time(0), &mut svc).unwrap();
    assert!(
        svc.dests[d].overload,
        "1 is not below the lower threshold 1"
    );
    ct.remove_and_unbind(b, Time(0), &mut svc).unwrap();
    assert!(!svc.dests[d].overload);
}

#[test]
fn existing_conn_decisions() {
    let sys = ConnSysctls::default();
    let base = ExistingConn {
        protocol: proto::TCP,
        state: tcp::ESTABLISHED,
        flags: flags::NOOUTPUT,
        controlled: false,
        n_control: 0,
        dest_weight: Some(1),
        dest_available: Some(true),
    };
    let act =
        |s: &ConnSysctls, c: ExistingConn, new| state::existing_conn_action(s, &c, new, false);
    assert_eq!(act(&sys, base, true), ExistingAction::Use);
    let tw = ExistingConn {
        state: tcp::TIME_WAIT,
        ..base
    };
    assert_eq!(
        act(&sys, tw, true),
        ExistingAction::Reschedule { expire_old: true }
    );
    assert_eq!(act(&sys, tw, false), ExistingAction::Use, "not a SYN");
    let no_reuse = ConnSysctls {
        conn_reuse_mode: 0,
        ..sys.clone()
    };
    assert_eq!(act(&no_reuse, tw, true), ExistingAction::Use);
    let controlled = ExistingConn {
        controlled: true,
        ..tw
    };
    assert_eq!(act(&sys, controlled, true), ExistingAction::Use);
    let controlling = ExistingConn { n_control: 2, ..tw };
    assert_eq!(
        act(&sys, controlling, true),
        ExistingAction::Reschedule { expire_old: false }
    );
    assert_eq!(
        state::existing_conn_action(&sys, &controlling, true, true),
        ExistingAction::Use,
        "controlling conn with old conntrack is kept"
    );
    // FIN_WAIT with NOOUTPUT only with bit 2.
    let fw = ExistingConn {
        state: tcp::FIN_WAIT,
        ..base
    };
    assert_eq!(act(&sys, fw, true), ExistingAction::Use);
    let mode3 = ConnSysctls {
        conn_reuse_mode: 3,
        ..sys.clone()
    };
    assert_eq!(
        act(&mode3, fw, true),
        ExistingAction::Reschedule { expire_old: true }
    );
    let sctp_closed = ExistingConn {
        protocol: proto::SCTP,
        state: sctp::CLOSED,
        ..base
    };
    assert_eq!(
        act(&sys, sctp_closed, true),
        ExistingAction::Reschedule { expire_old: true }
    );
    // expire_nodest_conn: weight 0 reschedules a SYN even with conn_reuse_mode 0.
    let nodest = ConnSysctls {
        expire_nodest_conn: true,
        conn_reuse_mode: 0,
        ..sys.clone()
    };
    let w0 = ExistingConn {
        dest_weight: Some(0),
        ..base
    };
    assert_eq!(
        act(&nodest, w0, true),
        ExistingAction::Reschedule { expire_old: true }
    );
    assert_eq!(act(&sys, w0, true), ExistingAction::Use);
    // Deleted dest: dropped by default, expired and rescheduled with expire_nodest_conn.
    let gone = ExistingConn {
        dest_available: Some(false),
        ..base
    };
    assert_eq!(
        act(&sys, gone, false),
        ExistingAction::Drop { expire_old: false }
    );
    assert_eq!(
        act(&nodest, gone, false),
        ExistingAction::Reschedule { expire_old: true }
    );
}

#[test]
fn existing_reads_dest_state_and_expire_now() {
    let (mut svc, d) = setup(FwdMethod::Route, Protocol::Tcp);
    let mut ct = ConnTable::new(SEED, Time(0));
    let c = ct.insert(&new_conn(6, 1, d), Time(0), &mut svc).unwrap();
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip("10.0.0.1"),
        port: 80,
    };
    svc.del_dest(&key, &ip("192.168.1.1"), 80, Time(0)).unwrap();
    let e = ct.existing(c, &svc).unwrap();
    assert_eq!(e.dest_available, Some(false));
    assert!(ct.expire_now(c, Time(5)));
    let mut ev = Vec::new();
    ct.expire(Time(5), 10, &mut svc, &mut ev);
    assert_eq!(ev.len(), 1);
    assert_eq!(svc.dests[d].refs(), 0, "the trashed dest was unbound");
}

#[test]
fn memory_per_entry_is_within_budget() {
    assert_eq!(core::mem::size_of::<Conn>(), 96);
    let mut svc = ServiceTable::new();
    let n = 100_000usize;
    let mut ct = ConnTable::with_capacity(SEED, Time(0), n);
    for i in 0..n as u32 {
        let c = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
        let nc = NewConn::new(6, c, 1024, ip("10.0.0.1"), 80, ip("10.1.1.1"), 80);
        ct.insert(&nc, Time(0), &mut svc).unwrap();
    }
    let per = ct.memory_bytes() / n;
    assert!(per <= 128, "{per} bytes per entry");
}

#[test]
fn lazy_restart_fires_at_the_new_deadline_never_the_old() {
    // Restarts that push the deadline later leave the entry in its wheel bucket; when that
    // bucket comes due the entry must be re-filed, not fired, and fire exactly at its last
    // deadline. A restart that pulls the deadline earlier must take effect at once.
    let mut svc = ServiceTable::new();
    let t0 = 5_000_000u64;
    let mut ct = ConnTable::new(SEED, Time(t0));
    let mut n = NewConn::new(
        6,
        ip("10.0.0.9"),
        1000,
        ip("10.0.0.1"),
        80,
        ip("10.1.1.1"),
        80,
    );
    n.timeout = Duration::from_secs(900);
    let a = ct.insert(&n, Time(t0), &mut svc).unwrap();
    n.cport = 1001;
    let b = ct.insert(&n, Time(t0), &mut svc).unwrap();
    let mut out = Vec::new();
    // Restart `a` every 7 s for an hour (its original bucket comes due long before).
    let mut now = t0;
    while now < t0 + 3_600_000 {
        now += 7_000;
        ct.restart_timer(a, Time(now));
        while ct.poll_expired(Time(now), 3, &mut out) {}
        assert!(!out.contains(&a), "fired at {now} though restarted");
    }
    assert_eq!(ct.get(a).unwrap().expires(), Some(Time(now + 900_000)));
    assert!(out.contains(&b), "the untouched entry expired");
    let last = now;
    // `a`: one ms before its deadline nothing, at the deadline it fires.
    out.clear();
    while ct.poll_expired(Time(last + 899_999), 3, &mut out) {}
    assert!(out.is_empty());
    while ct.poll_expired(Time(last + 900_000), 3, &mut out) {}
    assert_eq!(out, vec![a]);
    // Shortening: re-arm with 900 s, then restart with 1 s; it fires after 1 s.
    ct.set_timeout(a, Duration::from_secs(900));
    let t1 = last + 900_000;
    ct.restart_timer(a, Time(t1));
    ct.set_timeout(a, Duration::from_secs(1));
    ct.restart_timer(a, Time(t1));
    out.clear();
    while ct.poll_expired(Time(t1 + 999), 3, &mut out) {}
    assert!(out.is_empty());
    while ct.poll_expired(Time(t1 + 1_000), 3, &mut out) {}
    assert_eq!(out, vec![a]);
}

// ---------------------------------------------------------------------------------------------
// Model-based property test: random insert / restart / remove / advance sequences keep the wheel
// and the indexes consistent with a naive model.

#[derive(Clone, Debug)]
enum Op {
    Insert {
        client: u8,
        port: u16,
        timeout_ms: u32,
    },
    Restart {
        pick: u16,
        timeout_ms: u32,
    },
    Remove {
        pick: u16,
    },
    Advance {
        ms: u32,
    },
    Invalidate {
        pick: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), 1u16..50, 0u32..200_000)
            .prop_map(|(client, port, timeout_ms)| Op::Insert { client, port, timeout_ms }),
        2 => (any::<u16>(), 0u32..5_000_000).prop_map(|(pick, timeout_ms)| Op::Restart { pick, timeout_ms }),
        1 => any::<u16>().prop_map(|pick| Op::Remove { pick }),
        3 => prop_oneof![0u32..50, 0u32..5_000, 0u32..2_000_000].prop_map(|ms| Op::Advance { ms }),
        1 => any::<u16>().prop_map(|pick| Op::Invalidate { pick }),
    ]
}

#[derive(Clone, Debug)]
struct ModelConn {
    caddr: IpAddr,
    cport: u16,
    expires: u64,
    vport: u16,
}

fn fires_by(expires: u64, now: u64) -> bool {
    expires.div_ceil(TICK_MS) * TICK_MS <= now
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn wheel_and_indexes_match_model(ops in proptest::collection::vec(op(), 1..200)) {
        let mut svc = ServiceTable::new();
        let start = 1_000_000u64;
        let mut ct = ConnTable::new(SEED, Time(start));
        let mut model: StdHashMap<ConnId, ModelConn> = StdHashMap::new();
        let mut now = start;
        let mut out = Vec::new();
        for op in ops {
            match op {
                Op::Insert { client, port, timeout_ms } => {
                    let caddr = if client % 2 == 0 {
                        IpAddr::from([10, 0, 0, client])
                    } else {
                        IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(client)])
                    };
                    if model.values().any(|m| m.caddr == caddr && m.cport == port) {
                        continue;
                    }
                    let mut n = NewConn::new(6, caddr, port, ip("10.0.0.1"), 80, ip("10.1.1.1"), 80);
                    n.timeout = Duration::from_millis(u64::from(timeout_ms));
                    let id = ct.insert(&n, Time(now), &mut svc).unwrap();
                    prop_assert!(!model.contains_key(&id));
                    model.insert(id, ModelConn { caddr, cport: port, expires: now + u64::from(timeout_ms), vport: 80 });
                }
                Op::Restart { pick, timeout_ms } => {
                    let mut ids: Vec<ConnId> = model.keys().copied().collect();
                    ids.sort();
                    if ids.is_empty() { continue; }
                    let id = ids[usize::from(pick) % ids.len()];
                    ct.set_timeout(id, Duration::from_millis(u64::from(timeout_ms)));
                    ct.restart_timer(id, Time(now));
                    if let Some(m) = model.get_mut(&id) { m.expires = now + u64::from(timeout_ms); }
                }
                Op::Remove { pick } => {
                    let mut ids: Vec<ConnId> = model.keys().copied().collect();
                    ids.sort();
                    if ids.is_empty() { continue; }
                    let id = ids[usize::from(pick) % ids.len()];
                    prop_assert!(ct.remove_and_unbind(id, Time(now), &mut svc).is_some());
                    model.remove(&id);
                }
                Op::Invalidate { pick } => {
                    let mut ids: Vec<ConnId> = model.keys().copied().collect();
                    ids.sort();
                    if ids.is_empty() { continue; }
                    let id = ids[usize::from(pick) % ids.len()];
                    ct.invalidate_template(id);
                    if let Some(m) = model.get_mut(&id) { m.vport = INVALID_PORT; m.cport = 0; }
                }
                Op::Advance { ms } => {
                    now += u64::from(ms);
                    out.clear();
                    let mut more = true;
                    let mut rounds = 0;
                    while more {
                        more = ct.poll_expired(Time(now), 7, &mut out);
                        rounds += 1;
                        prop_assert!(rounds < 10_000);
                    }
                    // Every entry whose tick has been reached must fire; an entry may fire
                    // earlier than its tick boundary but never before its exact expiry time.
                    let mut got = out.clone();
                    got.sort();
                    let mut dedup = got.clone();
                    dedup.dedup();
                    prop_assert_eq!(dedup.len(), got.len(), "fired twice");
                    for (&id, m) in &model {
                        if fires_by(m.expires, now) {
                            prop_assert!(got.contains(&id), "{:?} due at {} not fired at {}", id, m.expires, now);
                        }
                    }
                    for id in &got {
                        let m = model.get(id);
                        prop_assert!(m.is_some_and(|m| m.expires <= now), "{:?} fired early", id);
                    }
                    for id in got {
                        prop_assert!(ct.get(id).unwrap().expires().is_none());
                        prop_assert!(ct.remove_and_unbind(id, Time(now), &mut svc).is_some());
                        model.remove(&id);
                    }
                }
            }
            // Consistency after every step.
            prop_assert_eq!(ct.len(), model.len());
            prop_assert_eq!(ct.hashed_len(), model.len());
            prop_assert_eq!(ct.armed_timers(), model.len());
            for (&id, m) in &model {
                let c = ct.get(id).unwrap();
                prop_assert_eq!(c.expires(), Some(Time(m.expires)));
                if m.vport == 80 {
                    prop_assert_eq!(ct.lookup_in(6, &m.caddr, m.cport, &ip("10.0.0.1"), 80), Some(id));
                    prop_assert_eq!(ct.lookup_out(6, &ip("10.1.1.1"), 80, &m.caddr, m.cport), Some(id));
                } else {
                    prop_assert_eq!(c.vport(), INVALID_PORT);
                }
            }
        }
    }
}

#[test]
fn update_flags_guards_structural_bits() {
    let (mut svc, d) = setup(FwdMethod::Masq, Protocol::Tcp);
    let mut ct = ConnTable::new(SEED, Time(0));
    let c = ct.insert(&new_conn(6, 1, d), Time(0), &mut svc).unwrap();
    assert!(ct.update_flags(c, flags::NFCT | flags::IN_SEQ, 0));
    assert!(ct.update_flags(c, 0, flags::NFCT));
    assert_eq!(
        ct.get(c).unwrap().flags() & (flags::NFCT | flags::IN_SEQ),
        flags::IN_SEQ
    );
    for bad in [
        flags::TEMPLATE,
        flags::INACTIVE,
        flags::HASHED,
        flags::DROUTE,
    ] {
        assert!(!ct.update_flags(c, bad, 0));
        assert!(!ct.update_flags(c, 0, bad));
    }
}

#[test]
fn hash_spreads_sequential_clients_for_any_seed() {
    for seed in [SEED, HashSeed([0; 4]), HashSeed([u64::MAX; 4])] {
        let mut low = std::collections::HashSet::new();
        let mut full = std::collections::HashSet::new();
        for i in 0..65_536u32 {
            let a = Addr16::of(&IpAddr::from((0x0a00_0000 + i).to_be_bytes()));
            let h = seed.addr_port(6, &a.bytes, 80);
            full.insert(h);
            low.insert(h & 0xffff);
        }
        assert_eq!(full.len(), 65_536);
        // 65536 random draws into 65536 bins leave about 41 400 distinct values.
        assert!(low.len() > 39_000, "{} distinct low bits", low.len());
        // Same address, sequential ports (one client opening many connections).
        let a = Addr16::of(&ip("192.0.2.1"));
        let ports: std::collections::HashSet<u64> = (0..=u16::MAX)
            .map(|p| seed.addr_port(6, &a.bytes, p) & 0xffff)
            .collect();
        assert!(ports.len() > 39_000, "{} distinct low bits", ports.len());
    }
}

// Model-based test of the expiry policy with controllers: entries that control others are
// never removed, n_control always equals the number of live children, and the dest counters
// always equal the live entries bound to it.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]
    #[test]
    fn expiry_policy_keeps_control_and_counters_consistent(
        ops in proptest::collection::vec((0u8..4, any::<u16>(), 0u32..120_000), 1..150)
    ) {
        let (mut svc, d) = setup(FwdMethod::Route, Protocol::Tcp);
        let sys = ConnSysctls::default();
        let mut ct = ConnTable::new(SEED, Time(0));
        let mut live: Vec<ConnId> = Vec::new();
        let mut now = 0u64;
        let mut port = 1u16;
        let mut ev = Vec::new();
        for (kind, pick, val) in ops {
            match kind {
                0 => {
                    let mut n = new_conn(6, if pick % 3 == 0 { 0 } else { port }, d);
                    if pick % 3 == 0 {
                        n.flags = flags::TEMPLATE;
                        n.caddr = IpAddr::from((0x0b00_0000u32 + u32::from(port)).to_be_bytes());
                    }
                    port = port.wrapping_add(1).max(1);
                    n.timeout = Duration::from_millis(u64::from(val));
                    let id = ct.insert(&n, Time(now), &mut svc).unwrap();
                    if !live.is_empty() && pick % 2 == 1 {
                        let parent = live[usize::from(pick) % live.len()];
                        ct.set_control(id, parent);
                    }
                    live.push(id);
                }
                1 if !live.is_empty() => {
                    let id = live[usize::from(pick) % live.len()];
                    let f = TcpFlags::from_byte((val & 0x17) as u8);
                    let dir = if val & 0x100 != 0 { OUT } else { IN };
                    ct.on_packet(id, dir, Segment::Tcp(f), &sys, Time(now), &mut svc);
                }
                _ => {
                    now += u64::from(val);
                    ev.clear();
                    while ct.expire(Time(now), 5, &mut svc, &mut ev) {}
                    for e in &ev {
                        if let Expired::Removed(r) = e {
                            live.retain(|&x| x != r.id);
                        }
                    }
                }
            }
            let mut children: StdHashMap<ConnId, u32> = StdHashMap::new();
            let (mut act, mut inact, mut pers) = (0, 0, 0);
            for &id in &live {
                let c = ct.get(id).unwrap();
                if let Some(p) = c.control() {
                    prop_assert!(live.contains(&p));
                    *children.entry(p).or_default() += 1;
                }
                if c.is_template() {
                    pers += 1;
                } else if c.is_inactive() {
                    inact += 1;
                } else {
                    act += 1;
                }
                prop_assert!(c.expires().is_some());
            }
            for &id in &live {
                prop_assert_eq!(ct.get(id).unwrap().n_control(), children.get(&id).copied().unwrap_or(0));
            }
            prop_assert_eq!(ct.len(), live.len());
            let dd = &svc.dests[d];
            prop_assert_eq!((dd.active, dd.inactive, dd.persist), (act, inact, pers));
        }
    }
}

#[test]
fn batch_lookups_equal_single_lookups() {
    // Hits, misses, IPv6, a NO_CPORT entry found through the cport-0 retry, a template (never
    // found by lookup_in/out), and more keys than one chunk.
    let mut svc = ServiceTable::new();
    let mut ct = ConnTable::new(SEED, Time(0));
    let mut keys = Vec::new();
    let mut out_keys = Vec::new();
    for i in 0..40u16 {
        let caddr = if i % 3 == 0 {
            IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, i])
        } else {
            IpAddr::from([10, 9, (i >> 8) as u8, i as u8])
        };
        let rs = IpAddr::from([10, 1, 1, (i % 4) as u8]);
        if i % 5 != 4 {
            let mut n = NewConn::new(6, caddr, 2000 + i, ip("10.0.0.1"), 80, rs, 8080);
            if i == 7 {
                n.cport = 0;
                n.flags = flags::NO_CPORT;
            }
            if i == 8 {
                n.cport = 0;
                n.flags = flags::TEMPLATE;
            }
            ct.insert(&n, Time(0), &mut svc).unwrap();
        }
        let cport = 2000 + i;
        keys.push(InKey {
            protocol: 6,
            caddr,
            cport,
            vaddr: ip("10.0.0.1"),
            vport: 80,
        });
        out_keys.push(OutKey {
            protocol: 6,
            saddr: rs,
            sport: 8080,
            daddr: caddr,
            dport: cport,
        });
    }
    let mut got = vec![None; keys.len()];
    ct.lookup_in_batch(&keys, &mut got);
    let want: Vec<_> = keys
        .iter()
        .map(|k| ct.lookup_in(k.protocol, &k.caddr, k.cport, &k.vaddr, k.vport))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        want.iter().filter(|x| x.is_some()).count(),
        31,
        "hits incl. NO_CPORT"
    );
    let mut got = vec![None; out_keys.len()];
    ct.lookup_out_batch(&out_keys, &mut got);
    let want: Vec<_> = out_keys
        .iter()
        .map(|k| ct.lookup_out(k.protocol, &k.saddr, k.sport, &k.daddr, k.dport))
        .collect();
    assert_eq!(got, want);
    assert_eq!(want.iter().filter(|x| x.is_some()).count(), 30);
}
