//! Scale-out end to end with real BIRD (`rvs_lab::ecmp`): three rvsd directors announce the
//! VIP through BIRD (kernel `learn` + eBGP + BFD) to an ECMP router running BIRD with
//! `merge paths`; long-lived TCP connections from many source ports spread over the three;
//! a director is lost (links down, then SIGKILL) and BFD withdraws it; another is stopped
//! with SIGTERM and its route goes before it stops forwarding. With `mh` (source port hashed)
//! and `sloppy_tcp` every connection continues on its real server through whichever director
//! the router now picks; with `sloppy_tcp` off the moved connections break, so the test can
//! fail. During each event every connection streams (rvs-testkit's `EchoStreams`) and the
//! largest gap between its echoes must stay within 3 s. A real server added and then a director
//! lost keeps every connection with `rvs_mh_grace` (mh's previous table) and breaks some
//! without. The number of connections is `RVS_ECMP_CONNS` (default 300).

mod common;

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use rvs_lab::ecmp::{self, Ecmp, VIP};
use rvs_lab::{require_root, Protocol};

const ECHO_PORT: u16 = 7000;

fn conns_wanted() -> usize {
    std::env::var("RVS_ECMP_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// rvsd on director `i` with the echo service (mh over source address and port, DR).
fn start_director(e: &Ecmp, i: usize, sloppy: bool) -> Rvsd {
    start_director_with(e, i, sloppy, 0)
}

/// As [`start_director`], with mh's previous table kept `grace` seconds (`rvs_mh_grace`).
fn start_director_with(e: &Ecmp, i: usize, sloppy: bool, grace: u32) -> Rvsd {
    let ns = &e.directors[i];
    let dir = e.lab().workdir().join(format!("rvsd-{}", ns.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let sloppy_arg = format!("sloppy_tcp={}", u8::from(sloppy));
    let grace_arg = format!("rvs_mh_grace={grace}");
    let d = Rvsd::start_in(
        RVSD,
        Some(ns),
        &dir,
        &[
            "--interface",
            "eth0",
            "--announce-table",
            "100",
            "--announce-delay",
            "3",
            "--drain-time",
            "0",
            "--sysctl",
            &sloppy_arg,
            "--sysctl",
            &grace_arg,
        ],
    );
    let svc = format!("{VIP}:{ECHO_PORT}");
    d.table(&[&format!("-A -t {svc} -s mh -b mh-port")]);
    for r in 0..e.real_servers.len() {
        d.table(&[&format!(
            "-a -t {svc} -r {}:{ECHO_PORT} -g",
            ecmp::real_server_addr(r)
        )]);
    }
    d
}

/// Conns of the echo service on a director (`-L -n --stats`).
fn scheduled(d: &Rvsd) -> u64 {
    d.service_stats(&format!("TCP  {VIP}:{ECHO_PORT}")).0
}

/// One message on every connection; returns the indexes of those whose echo did not come
/// back complete within `limit` (all connections are served in parallel).
fn round(conns: &mut [Option<TcpStream>], tag: &str, limit: Duration) -> Vec<usize> {
    let mut want: Vec<Vec<u8>> = Vec::new();
    for (i, c) in conns.iter_mut().enumerate() {
        let m = format!("{tag} {i}\n").into_bytes();
        if let Some(s) = c {
            if s.write_all(&m).is_err() {
                *c = None;
            }
        }
        want.push(m);
    }
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); conns.len()];
    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        let mut pending = 0;
        for (i, c) in conns.iter_mut().enumerate() {
            let Some(s) = c else { continue };
            if got[i].len() >= want[i].len() {
                continue;
            }
            match s.read(&mut buf) {
                Ok(0) => *c = None,
                Ok(n) => got[i].extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => *c = None,
            }
            if c.is_some() && got[i].len() < want[i].len() {
                pending += 1;
            }
        }
        if pending == 0 || start.elapsed() > limit {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (0..conns.len())
        .filter(|&i| conns[i].is_none() || got[i] != want[i])
        .collect()
}

/// How often each streaming connection sends a line.
const STREAM_EVERY: Duration = Duration::from_millis(250);

/// The bound on a connection's stall during an event.
const MAX_GAP: Duration = Duration::from_secs(3);

/// Streams 2 s more after the event, then requires every connection to have continued with no
/// gap between echoes above [`MAX_GAP`]; returns the connections for the next step.
fn no_gap(streams: EchoStreams, n: usize, what: &str) -> Vec<Option<TcpStream>> {
    let rep = streams.finish(Duration::from_secs(2));
    let (worst, who) = rep.worst();
    eprintln!(
        "{what}: {} of {n} broke, largest gap {worst:?} (connection {who:?})",
        rep.broken.len()
    );
    assert!(
        rep.broken.is_empty(),
        "{} of {n} broke during {what}: {:?}",
        rep.broken.len(),
        rep.broken
    );
    let alive = rep.conns.iter().filter(|c| c.is_some()).count();
    assert_eq!(alive, n, "every connection still streams after {what}");
    assert!(
        worst <= MAX_GAP,
        "a gap of {worst:?} during {what} (bound {MAX_GAP:?})"
    );
    rep.conns
}

/// An echo server on real server `ns` that first says its name (`s1\n`), so the test knows
/// which real server each connection reached.
fn named_echo(e: &mut Ecmp, i: usize) {
    let ns = e.real_servers[i].clone();
    let cmd = format!("echo s{}; exec cat", i + 1);
    let c = ns
        .cmd("socat")
        .args([
            &format!("TCP-LISTEN:{ECHO_PORT},fork,reuseaddr"),
            &format!("SYSTEM:{cmd}"),
        ])
        .spawn()
        .expect("socat");
    e.lab_mut().own(c);
    ns.wait_for_port(Protocol::Tcp, ECHO_PORT, Duration::from_secs(5))
        .expect("echo server listens");
}

/// `n` connections to the VIP from the client, each with the name of the real server that
/// greeted it (empty when the connection failed).
fn open(e: &Ecmp, n: usize) -> (Vec<Option<TcpStream>>, Vec<String>) {
    let addr = SocketAddr::from((VIP, ECHO_PORT));
    e.client
        .exec(move || {
            (0..n)
                .map(|_| {
                    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok();
                    let mut name = String::new();
                    if let Some(c) = s.as_mut() {
                        let _ = c.set_read_timeout(Some(Duration::from_secs(3)));
                        let mut b = [0u8; 1];
                        while let Ok(1) = c.read(&mut b) {
                            if b[0] == b'\n' {
                                break;
                            }
                            name.push(char::from(b[0]));
                        }
                    }
                    let s = s.filter(|c| {
                        !name.is_empty()
                            && c.set_nonblocking(true).is_ok()
                            && c.set_nodelay(true).is_ok()
                    });
                    (s, name)
                })
                .unzip()
        })
        .expect("exec in the client namespace")
}

struct Lab {
    e: Ecmp,
    directors: Vec<Rvsd>,
    hops: Vec<Ipv4Addr>,
}

fn lab(tag: &str, sloppy: bool) -> Lab {
    lab_with(tag, sloppy, 0)
}

fn lab_with(tag: &str, sloppy: bool, grace: u32) -> Lab {
    let mut e = ecmp::ecmp(tag, 3, 4).expect("ecmp lab");
    for i in 0..e.real_servers.len() {
        named_echo(&mut e, i);
    }
    let directors: Vec<Rvsd> = (0..3)
        .map(|i| start_director_with(&e, i, sloppy, grace))
        .collect();
    let hops: Vec<Ipv4Addr> = (0..3).map(ecmp::director_addr).collect();
    if let Err(err) = e.wait_next_hops(&hops, Duration::from_secs(30)) {
        let log = std::fs::read_to_string(e.bird_log(&e.router)).unwrap_or_default();
        panic!("{err}\nrouter BIRD log:\n{log}");
    }
    Lab { e, directors, hops }
}

#[test]
fn directors_come_and_go_and_every_connection_continues() {
    if !require_root("directors_come_and_go_and_every_connection_continues") {
        return;
    }
    let Lab {
        mut e,
        mut directors,
        hops,
    } = lab("ecmp", true);
    let n = conns_wanted();
    let (mut conns, owner) = open(&e, n);
    let opened = conns.iter().filter(|c| c.is_some()).count();
    assert_eq!(opened, n, "every connection opens through the ECMP router");
    assert_eq!(
        round(&mut conns, "hello", Duration::from_secs(5)),
        Vec::<usize>::new()
    );
    // Spread: every director scheduled some of them.
    let shares: Vec<u64> = directors.iter().map(scheduled).collect();
    eprintln!("connections per director: {shares:?}");
    assert!(
        shares.iter().all(|&s| s > 0) && shares.iter().sum::<u64>() >= n as u64,
        "{shares:?}"
    );

    // A lost machine: links down, then SIGKILL. BFD takes its next hop away. Every
    // connection streams throughout; the largest gap between echoes is measured.
    let streams = EchoStreams::start(conns, STREAM_EVERY);
    std::thread::sleep(Duration::from_secs(1));
    e.cut_director(0).expect("links down");
    let bfd = e
        .wait_next_hops(&hops[1..], Duration::from_secs(10))
        .expect("BFD withdraws the lost director");
    directors[0].signal(Signal::SIGKILL);
    eprintln!("lost director withdrawn by BFD after {bfd:?}");
    let conns = no_gap(streams, n, "the loss");
    assert!(
        bfd < Duration::from_millis(1500),
        "BFD withdrawal took {bfd:?} (goal 1 s)"
    );

    // New connections keep working.
    let mut fresh = open(&e, 20).0;
    assert_eq!(
        round(&mut fresh, "fresh", Duration::from_secs(3)),
        Vec::<usize>::new()
    );

    // SIGTERM director 2: its route goes first, while it still runs and forwards.
    let streams = EchoStreams::start(conns, STREAM_EVERY);
    std::thread::sleep(Duration::from_secs(1));
    directors[1].signal(Signal::SIGTERM);
    let t1 = Instant::now();
    let took = e
        .wait_next_hops(&hops[2..], Duration::from_secs(5))
        .expect("SIGTERM withdraws the route");
    assert!(
        directors[1].running(),
        "the route must go before rvsd stops ({took:?})"
    );
    assert!(directors[1].wait_exit(Duration::from_secs(20)).is_some());
    assert!(
        t1.elapsed() >= Duration::from_secs(3),
        "announce delay kept"
    );
    let conns = no_gap(
        streams,
        n,
        "SIGTERM, the withdrawal, the delay and the exit",
    );

    // Scale out again: a fourth director joins; nothing breaks.
    let streams = EchoStreams::start(conns, STREAM_EVERY);
    e.add_director().expect("fourth director");
    let d4 = start_director(&e, 3, true);
    e.wait_next_hops(&[hops[2], ecmp::director_addr(3)], Duration::from_secs(30))
        .expect("the fourth director is announced");
    let conns = no_gap(streams, n, "the join");
    assert!(scheduled(&d4) > 0, "the new director carries some of them");
    let mut fresh = open(&e, 20).0;
    assert_eq!(
        round(&mut fresh, "fresh2", Duration::from_secs(3)),
        Vec::<usize>::new()
    );

    // A real server is added on the running directors: the mh table changes, every
    // connection keeps its entry and so its real server.
    let running = [&directors[2], &d4];
    e.add_real_server().expect("fifth real server");
    named_echo(&mut e, 4);
    let svc = format!("{VIP}:{ECHO_PORT}");
    let streams = EchoStreams::start(conns, STREAM_EVERY);
    std::thread::sleep(Duration::from_secs(1));
    for d in running {
        d.table(&[&format!(
            "-a -t {svc} -r {}:{ECHO_PORT} -g",
            ecmp::real_server_addr(4)
        )]);
    }
    let mut conns = no_gap(streams, n, "the real server's addition");
    // One is removed: exactly its own connections break (their packets are dropped, as the
    // kernel drops them with expire_nodest_conn 0), the others continue.
    for d in running {
        d.table(&[&format!(
            "-d -t {svc} -r {}:{ECHO_PORT}",
            ecmp::real_server_addr(3)
        )]);
    }
    let expected: Vec<usize> = (0..n).filter(|&i| owner[i] == "s4").collect();
    eprintln!("connections on s4: {}", expected.len());
    let lost = round(&mut conns, "after-del", Duration::from_secs(3));
    assert!(!expected.is_empty());
    assert_eq!(
        lost, expected,
        "only the removed real server's connections break"
    );
    // The fourth director took its connections over mid-stream (`sloppy_tcp` created their
    // entries from an ACK) and they streamed through it since: in XDP mode its program must
    // have forwarded frames of them (such an entry is offered like any established flow); on
    // AF_PACKET its log has no XDP line.
    let mut d4 = d4;
    d4.stop_and_check_mode(&["eth0"], Forwards::Some);
}

/// The same loss without `sloppy_tcp`: the connections the router moves to another director
/// break (the control that shows the test above can fail).
#[test]
fn without_sloppy_tcp_moved_connections_break() {
    if !require_root("without_sloppy_tcp_moved_connections_break") {
        return;
    }
    let Lab { e, directors, hops } = lab("ecmpns", false);
    let n = conns_wanted().min(120);
    let mut conns = open(&e, n).0;
    assert_eq!(
        round(&mut conns, "hello", Duration::from_secs(5)),
        Vec::<usize>::new()
    );
    let streams = EchoStreams::start(conns, STREAM_EVERY);
    std::thread::sleep(Duration::from_secs(1));
    e.cut_director(0).expect("links down");
    e.wait_next_hops(&hops[1..], Duration::from_secs(10))
        .expect("BFD withdraws the lost director");
    directors[0].signal(Signal::SIGKILL);
    let rep = streams.finish(Duration::from_secs(4));
    let stalled: Vec<usize> = (0..n)
        .filter(|&i| rep.broken.contains(&i) || rep.gaps[i] > MAX_GAP)
        .collect();
    eprintln!(
        "without sloppy_tcp: {} of {n} broke, {} broke or stalled over {MAX_GAP:?}",
        rep.broken.len(),
        stalled.len()
    );
    assert!(
        !stalled.is_empty(),
        "without sloppy_tcp some of {n} connections must break when a director is lost"
    );
}

/// What [`add_real_server_then_lose_a_director`] leaves running.
struct AfterLoss {
    e: Ecmp,
    directors: Vec<Rvsd>,
    conns: Vec<Option<TcpStream>>,
    /// The real server that greeted each connection.
    owner: Vec<String>,
    /// Connections that broke after the loss.
    lost: Vec<usize>,
}

/// A real server is added on every director, then a director is lost: the flows the router
/// moves are looked up in the changed `mh` table by directors that have no entry for them.
fn add_real_server_then_lose_a_director(tag: &str, grace: u32, n: usize) -> AfterLoss {
    let Lab {
        mut e,
        directors,
        hops,
    } = lab_with(tag, true, grace);
    let (mut conns, owner) = open(&e, n);
    assert_eq!(conns.iter().filter(|c| c.is_some()).count(), n);
    assert_eq!(
        round(&mut conns, "hello", Duration::from_secs(5)),
        Vec::<usize>::new()
    );
    e.add_real_server().expect("fifth real server");
    named_echo(&mut e, 4);
    let svc = format!("{VIP}:{ECHO_PORT}");
    for d in &directors {
        d.table(&[&format!(
            "-a -t {svc} -r {}:{ECHO_PORT} -g",
            ecmp::real_server_addr(4)
        )]);
    }
    let lost = round(&mut conns, "after-add", Duration::from_secs(3));
    assert!(
        lost.is_empty(),
        "{} of {n} broke after a real server was added: {lost:?}",
        lost.len()
    );
    e.cut_director(0).expect("links down");
    e.wait_next_hops(&hops[1..], Duration::from_secs(10))
        .expect("BFD withdraws the lost director");
    directors[0].signal(Signal::SIGKILL);
    let lost = round(&mut conns, "after-loss", Duration::from_secs(3));
    // New connections go by the new table, some of them to the new real server.
    let (mut fresh, greeted) = open(&e, 40);
    assert_eq!(
        round(&mut fresh, "fresh", Duration::from_secs(3)),
        Vec::<usize>::new()
    );
    assert!(
        greeted.iter().any(|g| g == "s5"),
        "new connections use the new table: {greeted:?}"
    );
    AfterLoss {
        e,
        directors,
        conns,
        owner,
        lost,
    }
}

/// Item 3 of scale-out: with `rvs_mh_grace` every moved flow keeps its real server although
/// the `mh` table changed before the director was lost; then a real server is removed and
/// exactly its own connections break.
#[test]
fn real_server_added_then_director_lost_every_connection_continues() {
    if !require_root("real_server_added_then_director_lost_every_connection_continues") {
        return;
    }
    let n = conns_wanted();
    let AfterLoss {
        e,
        directors,
        mut conns,
        owner,
        lost,
    } = add_real_server_then_lose_a_director("ecmpgr", 120, n);
    eprintln!("with rvs_mh_grace=120: {} of {n} broke", lost.len());
    assert!(
        lost.is_empty(),
        "{} of {n} broke although the previous table was kept: {lost:?}",
        lost.len()
    );
    let svc = format!("{VIP}:{ECHO_PORT}");
    for d in &directors[1..] {
        d.table(&[&format!(
            "-d -t {svc} -r {}:{ECHO_PORT}",
            ecmp::real_server_addr(1)
        )]);
    }
    let expected: Vec<usize> = (0..n).filter(|&i| owner[i] == "s2").collect();
    let lost = round(&mut conns, "after-del", Duration::from_secs(3));
    eprintln!(
        "s2 removed: {} broke, {} expected",
        lost.len(),
        expected.len()
    );
    assert!(!expected.is_empty());
    assert_eq!(
        lost, expected,
        "only the removed real server's connections break"
    );
    drop(e);
}

/// The control: without the grace the moved flows whose slot changed owner break.
#[test]
fn real_server_added_then_director_lost_without_grace_breaks_some() {
    if !require_root("real_server_added_then_director_lost_without_grace_breaks_some") {
        return;
    }
    let n = conns_wanted();
    let lost = add_real_server_then_lose_a_director("ecmpng", 0, n).lost;
    eprintln!("with rvs_mh_grace=0: {} of {n} broke", lost.len());
    assert!(
        !lost.is_empty(),
        "without the previous table some of {n} moved connections must break"
    );
}
