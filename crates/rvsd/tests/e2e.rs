//! End-to-end: the rvsd binary on loopback with nginx/socat real servers and curl clients,
//! administered with rvsadm. Each test owns 127.77.N.0/24 (see `common`), so they run in
//! parallel. Tests skip (with the reason) when nginx/curl/socat are missing, except under CI, where that fails
//! (see rvs-require).

mod common;

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

const SEC: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(50);

/// Three nginx real servers A, B, C on 127.77.`net`.11–13:8080.
fn abc(dir: &std::path::Path, net: u8, big: Option<usize>) -> Nginx {
    start_nginx(
        dir,
        &[
            Site::named(&format!("127.77.{net}.11:8080"), "A"),
            Site::named(&format!("127.77.{net}.12:8080"), "B"),
            Site::named(&format!("127.77.{net}.13:8080"), "C"),
        ],
        big,
    )
}

/// `n` requests to `url` in one curl, each on a new connection (`Connection: close`); the
/// answering server names in order.
fn names(url: &str, n: usize, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["-H", "Connection: close"]);
    args.extend(std::iter::repeat_n(url, n));
    curl_ok(&args).lines().map(String::from).collect()
}

/// `s` repeated `times` times, split into words.
fn cycle(s: &str, times: usize) -> Vec<String> {
    let one: Vec<String> = s.split_whitespace().map(String::from).collect();
    one.iter()
        .cycle()
        .take(one.len() * times)
        .cloned()
        .collect()
}

/// Poll `-Lnc` until `pred` holds for the parsed entries; returns them (panics on timeout).
fn conns_until(d: &Rvsd, what: &str, pred: impl Fn(&[ConnLine]) -> bool) -> Vec<ConnLine> {
    let mut last = Vec::new();
    let ok = wait_until(5 * SEC, POLL, || {
        last = parse_conns(&d.ok(&["-Lnc"]));
        pred(&last)
    });
    assert!(ok, "-Lnc never showed {what}: {last:#?}");
    last
}

/// Poll `--stats --exact` until `pred` holds; returns the parsed lines (panics on timeout).
fn stats_until(d: &Rvsd, what: &str, pred: impl Fn(&[StatLine]) -> bool) -> Vec<StatLine> {
    let mut last = Vec::new();
    let ok = wait_until(5 * SEC, POLL, || {
        last = parse_stats(&d.ok(&["-Ln", "--stats", "--exact"]));
        pred(&last)
    });
    assert!(ok, "--stats never showed {what}: {last:#?}");
    last
}

/// The `-Ln` line of a real server, split into words (`-> addr Forward Weight Active InAct`).
fn dest_line(d: &Rvsd, addr: &str) -> Option<Vec<String>> {
    d.ok(&["-Ln"])
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .find(|f| f.len() == 6 && f[0] == "->" && f[1] == addr)
}

/// Acceptance 1: rr and wrr hand out new connections in exactly the kernel's order, where the
/// newest real server is first in the list.
#[test]
fn rr_and_wrr_follow_the_kernel_order() {
    require!("nginx", "curl");
    let dir = tempdir("order");
    let _ng = abc(dir.path(), 1, None);
    let d = start_rvsd(dir.path(), &[]);
    d.table(&[
        "-A -t 127.77.1.1:8080 -s rr",
        "-a -t 127.77.1.1:8080 -r 127.77.1.11:8080 -m",
        "-a -t 127.77.1.1:8080 -r 127.77.1.12:8080 -m",
        "-a -t 127.77.1.1:8080 -r 127.77.1.13:8080 -m",
        // docs/internals/schedulers.md#wrr--weighted-round-robin worked example: list order [A=4, B=3, C=2], i.e. C added first.
        "-A -t 127.77.1.1:8081 -s wrr",
        "-a -t 127.77.1.1:8081 -r 127.77.1.13:8080 -m -w 2",
        "-a -t 127.77.1.1:8081 -r 127.77.1.12:8080 -m -w 3",
        "-a -t 127.77.1.1:8081 -r 127.77.1.11:8080 -m -w 4",
    ]);
    // Added A, B, C → list C, B, A → rr hands out C, B, A, C, …
    assert_eq!(names("http://127.77.1.1:8080/", 9, &[]), cycle("C B A", 3));
    // wrr: the docs/internals/schedulers.md#wrr--weighted-round-robin cycle `A A B A B C A B C`, after a first pass at cw = 1. That first pass
    // is the kernel's (ip_vs_wrr_dest_changed): the service started empty (mw = 0, cw = 0);
    // adding C (w 2) gave di = 2, mw = 2 - (di - 1) = 1 and, as cw was 0, cw = mw = 1; the
    // later adds only raise mw and `cw > mw || cw == 0` no longer holds, so cw stays 1.
    let mut want = cycle("A B C", 1);
    want.extend(cycle("A A B A B C A B C", 2));
    assert_eq!(names("http://127.77.1.1:8081/", 21, &[]), want);
    // Every request was its own connection, scheduled once.
    let st = stats_until(&d, "30 connections", |s| {
        s.iter()
            .filter(|l| l.is_service)
            .map(|l| l.n[0])
            .sum::<u64>()
            == 30
    });
    assert_eq!(stat(&st, "127.77.1.1:8080", true).n[0], 9);
    assert_eq!(stat(&st, "127.77.1.1:8081", true).n[0], 21);
}

/// Concurrency: many connections at once over two workers, rr still hands them out exactly
/// evenly, none fails, and the active counts return to 0.
#[test]
fn parallel_connections_are_spread_exactly_and_none_fails() {
    require!("nginx", "curl");
    const N: usize = 300;
    let dir = tempdir("parallel");
    let _ng = abc(dir.path(), 14, None);
    let d = start_rvsd(dir.path(), &["--workers", "2"]);
    d.table(&[
        "-A -t 127.77.14.1:8080 -s rr",
        "-a -t 127.77.14.1:8080 -r 127.77.14.11:8080 -m",
        "-a -t 127.77.14.1:8080 -r 127.77.14.12:8080 -m",
        "-a -t 127.77.14.1:8080 -r 127.77.14.13:8080 -m",
    ]);
    let got = names(
        "http://127.77.14.1:8080/",
        N,
        &["--parallel", "--parallel-max", "30", "--fail"],
    );
    assert_eq!(got.len(), N, "answers: {}", got.len());
    for n in ["A", "B", "C"] {
        assert_eq!(got.iter().filter(|g| *g == n).count(), N / 3, "{n}");
    }
    let st = stats_until(&d, "all connections", |s| {
        stat(s, "127.77.14.1:8080", true).n[0] == N as u64
    });
    for rip in [
        "127.77.14.11:8080",
        "127.77.14.12:8080",
        "127.77.14.13:8080",
    ] {
        assert_eq!(stat(&st, rip, false).n[0], (N / 3) as u64);
    }
    let ok = wait_until(5 * SEC, POLL, || {
        ["11", "12", "13"]
            .iter()
            .all(|h| dest_line(&d, &format!("127.77.14.{h}:8080")).is_some_and(|f| f[4] == "0"))
    });
    assert!(ok, "active connections left: {}", d.ok(&["-Ln"]));
}

/// The kernel's sh bucket of an IPv4 source (docs/internals/schedulers.md#sh--source-hashing, port 0): `hash_32(fold(addr), 8)`.
fn sh_bucket(a: Ipv4Addr) -> usize {
    (u32::from(a).wrapping_mul(0x61C8_8647) >> 24) as usize
}

/// Acceptance 2: sh maps each source address to one server — the one the kernel's hash picks.
#[test]
fn sh_keeps_each_source_address_on_its_kernel_server() {
    require!("nginx", "curl");
    // The hash is the kernel's (the worked examples of docs/internals/schedulers.md), so the expectation below is the kernel's.
    assert_eq!(sh_bucket(Ipv4Addr::new(10, 0, 0, 2)), 137);
    assert_eq!(sh_bucket(Ipv4Addr::new(10, 0, 0, 3)), 235);
    assert_eq!(sh_bucket(Ipv4Addr::new(192, 168, 1, 100)), 89);
    let dir = tempdir("sh");
    let _ng = abc(dir.path(), 2, None);
    // Two workers: the mapping must not depend on which worker accepted the connection.
    let d = start_rvsd(dir.path(), &["--workers", "2"]);
    d.table(&[
        "-A -t 127.77.2.1:8080 -s sh",
        "-a -t 127.77.2.1:8080 -r 127.77.2.11:8080 -m",
        "-a -t 127.77.2.1:8080 -r 127.77.2.12:8080 -m",
        "-a -t 127.77.2.1:8080 -r 127.77.2.13:8080 -m",
    ]);
    // Weights 1, list order C, B, A: bucket i belongs to list[i % 3].
    let list = ["C", "B", "A"];
    let mut used = std::collections::BTreeSet::new();
    for round in 0..2 {
        for host in 101..=110u8 {
            let ip = Ipv4Addr::new(127, 77, 2, host);
            let want = list[sh_bucket(ip) % 3];
            let got = names(
                "http://127.77.2.1:8080/",
                3,
                &["--interface", &ip.to_string()],
            );
            assert_eq!(got, vec![want; 3], "client {ip}, round {round}");
            used.insert(want);
        }
    }
    assert!(used.len() >= 2, "clients spread over {used:?}");
}

/// Acceptance 3: `-p` keeps a client on the server its template chose, across connections;
/// the templates are scheduled rr (C, B, A) and listed by `-Lnc`.
#[test]
fn persistence_keeps_a_client_on_its_server() {
    require!("nginx", "curl");
    let dir = tempdir("persist");
    let _ng = abc(dir.path(), 3, None);
    let d = start_rvsd(dir.path(), &[]);
    d.table(&[
        "-A -t 127.77.3.1:8080 -s rr -p 60",
        "-a -t 127.77.3.1:8080 -r 127.77.3.11:8080 -m",
        "-a -t 127.77.3.1:8080 -r 127.77.3.12:8080 -m",
        "-a -t 127.77.3.1:8080 -r 127.77.3.13:8080 -m",
    ]);
    let clients = [
        ("127.77.3.101", "C"),
        ("127.77.3.102", "B"),
        ("127.77.3.103", "A"),
    ];
    for round in 0..3 {
        for (ip, want) in clients {
            let got = names("http://127.77.3.1:8080/", 3, &["--interface", ip]);
            assert_eq!(got, vec![want; 3], "client {ip}, round {round}");
        }
    }
    // One template per client (cport 0, -p timeout), pointing at its server.
    let conns = parse_conns(&d.ok(&["-Lnc"]));
    for (ip, want) in clients {
        let rip = format!("127.77.3.{}:8080", 11 + "ABC".find(want).unwrap());
        let t: Vec<_> = conns
            .iter()
            .filter(|c| c.source == format!("{ip}:0"))
            .collect();
        assert_eq!(t.len(), 1, "templates of {ip}: {conns:#?}");
        assert_eq!(t[0].dest, rip);
        assert_eq!(t[0].virt, "127.77.3.1:8080");
        assert!(t[0].expires <= 60, "{:?}", t[0]);
    }
}

/// Size of the large file used for long transfers in the quiesce and delete tests.
const MID: usize = 24 << 20;

/// Start a rate-limited download of `/big.bin` through the VIP of net `net` and wait until
/// `-Lnc` shows it ESTABLISHED to `rip`.
fn slow_download(d: &Rvsd, dir: &std::path::Path, net: u8, rip: &str, rate: &str) -> Download {
    let dl = Download::start(
        &dir.join("download"),
        None,
        &[
            "--limit-rate",
            rate,
            &format!("http://127.77.{net}.1:8080/big.bin"),
        ],
    );
    conns_until(d, "the download ESTABLISHED", |c| {
        c.iter().any(|c| c.state == "ESTABLISHED" && c.dest == rip)
    });
    dl
}

/// Acceptance 4: weight 0 quiesces: the open (slow, large) transfer finishes intact while
/// every new connection goes to the other server.
#[test]
fn weight_zero_lets_open_connections_finish() {
    require!("nginx", "curl");
    let dir = tempdir("quiesce");
    let _ng = abc(dir.path(), 4, Some(MID));
    let d = start_rvsd(dir.path(), &[]);
    d.table(&[
        "-A -t 127.77.4.1:8080 -s rr",
        "-a -t 127.77.4.1:8080 -r 127.77.4.11:8080 -m",
        "-a -t 127.77.4.1:8080 -r 127.77.4.12:8080 -m",
    ]);
    // List B, A: the first connection goes to B.
    let started = Instant::now();
    let dl = slow_download(&d, dir.path(), 4, "127.77.4.12:8080", "8M");
    d.ok(&[
        "-e",
        "-t",
        "127.77.4.1:8080",
        "-r",
        "127.77.4.12:8080",
        "-m",
        "-w",
        "0",
    ]);
    // The transfer is still open on B: weight 0, one active connection.
    assert_eq!(
        dest_line(&d, "127.77.4.12:8080").unwrap()[2..5],
        ["Masq", "0", "1"]
    );
    assert_eq!(
        names("http://127.77.4.1:8080/", 6, &[]),
        cycle("A", 6),
        "new connections avoid the quiesced server"
    );
    let (ok, report) = dl.finish(30 * SEC);
    assert!(ok, "download failed: {report}");
    assert_eq!(report, format!("200 {MID}"));
    eprintln!("download took {:?}", started.elapsed());
    // It ended as a normal close through rvsd, not a reset.
    conns_until(&d, "the download closed normally", |c| {
        c.iter()
            .any(|c| c.dest == "127.77.4.12:8080" && c.state == "TIME_WAIT")
    });
}

/// Acceptance 5: `-d` of a real server with an open connection. rvsd keeps the open proxied
/// flow running to completion (the kernel with expire_nodest_conn=0 would drop its packets
/// instead — the socket proxy has no packets to drop, and cutting a client that has lost
/// nothing yet would be worse); new connections go to the remaining servers. The flow's entry
/// stays in `-Lnc` until it expires, as the kernel keeps entries of deleted destinations.
/// Its traffic after the delete is not counted in `--stats` (rvs-core counts only available
/// destinations, like the kernel, whose packets for them are dropped anyway).
#[test]
fn deleting_a_server_lets_its_open_connection_finish() {
    require!("nginx", "curl");
    let dir = tempdir("delete");
    let _ng = abc(dir.path(), 5, Some(MID));
    let d = start_rvsd(dir.path(), &[]);
    d.table(&[
        "-A -t 127.77.5.1:8080 -s rr",
        "-a -t 127.77.5.1:8080 -r 127.77.5.11:8080 -m",
        "-a -t 127.77.5.1:8080 -r 127.77.5.12:8080 -m",
    ]);
    let mut dl = slow_download(&d, dir.path(), 5, "127.77.5.12:8080", "8M");
    d.ok(&["-d", "-t", "127.77.5.1:8080", "-r", "127.77.5.12:8080"]);
    assert!(dest_line(&d, "127.77.5.12:8080").is_none());
    // The flow is still open on the deleted server.
    let c = parse_conns(&d.ok(&["-Lnc"]));
    assert!(
        c.iter()
            .any(|c| c.dest == "127.77.5.12:8080" && c.state == "ESTABLISHED"),
        "{c:#?}"
    );
    assert_eq!(names("http://127.77.5.1:8080/", 6, &[]), cycle("A", 6));
    assert!(dl.running(), "the transfer ended before the check");
    let (ok, report) = dl.finish(30 * SEC);
    assert!(ok, "download failed: {report}");
    assert_eq!(report, format!("200 {MID}"));
    // It closed normally through rvsd; its entry stays listed until it expires.
    conns_until(&d, "the deleted server's flow closed normally", |c| {
        c.iter()
            .any(|c| c.dest == "127.77.5.12:8080" && c.state == "TIME_WAIT")
    });
}

/// Send one HTTP request with `Connection: close` on a new connection to `vip` and read the
/// answer to EOF; returns (bytes sent, bytes received).
fn raw_request(vip: &str) -> (usize, usize) {
    let mut s = TcpStream::connect(vip).expect("connect to VIP");
    s.set_read_timeout(Some(5 * SEC)).unwrap();
    let req = format!("GET / HTTP/1.1\r\nHost: {vip}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read answer");
    assert!(resp.starts_with(b"HTTP/1.1 200"), "{resp:?}");
    (req.len(), resp.len())
}

/// A connection that stays open (ESTABLISHED), or half-closed by the server (FIN_WAIT).
fn hold(vip: &str, server_closes: bool) -> TcpStream {
    let mut s = TcpStream::connect(vip).expect("connect to VIP");
    if server_closes {
        s.set_read_timeout(Some(5 * SEC)).unwrap();
        s.write_all(
            format!("GET / HTTP/1.1\r\nHost: {vip}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).expect("read answer");
    }
    s
}

/// Acceptance 6: `--stats` and `-Lnc` reflect the traffic, `-Z` zeroes, `--set` changes the
/// timeouts `-Lnc` shows (for connections updated afterwards, as in the kernel) and
/// `--timeout` lists them.
#[test]
fn stats_conns_zero_and_timeouts_reflect_the_traffic() {
    require!("nginx");
    let dir = tempdir("stats");
    let _ng = abc(dir.path(), 6, None);
    let d = start_rvsd(dir.path(), &[]);
    d.table(&[
        "-A -t 127.77.6.1:8080 -s rr",
        "-a -t 127.77.6.1:8080 -r 127.77.6.11:8080 -m",
        "-a -t 127.77.6.1:8080 -r 127.77.6.12:8080 -m",
    ]);
    let vip = "127.77.6.1:8080";
    let (mut sent, mut got) = (0, 0);
    for _ in 0..4 {
        let (s, r) = raw_request(vip);
        sent += s;
        got += r;
    }
    // Byte counts are exact (payload both ways); packets are the segments of each side (at
    // least one per direction per connection).
    let st = stats_until(&d, "4 closed connections", |s| {
        let l = stat(s, vip, true);
        l.n[0] == 4 && l.n[3] == sent as u64 && l.n[4] == got as u64
    });
    let svc = stat(&st, vip, true);
    assert!(svc.n[1] >= 4 && svc.n[2] >= 4, "{svc:?}");
    for rip in ["127.77.6.11:8080", "127.77.6.12:8080"] {
        let l = stat(&st, rip, false);
        assert_eq!(l.n[0], 2, "{l:?}");
        assert!(
            l.n[1] >= 2 && l.n[2] >= 2 && l.n[3] > 0 && l.n[4] > 0,
            "{l:?}"
        );
    }
    // Closed normally: TIME_WAIT with the kernel's 120 s.
    let c = conns_until(&d, "4 TIME_WAIT entries", |c| {
        c.iter().filter(|c| c.state == "TIME_WAIT").count() == 4
    });
    for e in &c {
        assert_eq!((e.proto.as_str(), e.virt.as_str()), ("TCP", vip));
        assert!((100..=120).contains(&e.expires), "{e:?}");
    }
    // Open and server-half-closed connections: ESTABLISHED 900 s, FIN_WAIT 120 s.
    let est = hold(vip, false);
    let fin = hold(vip, true);
    let port = |s: &TcpStream| s.local_addr().unwrap().port();
    let entry = |c: &[ConnLine], s: &TcpStream| {
        let p = format!(":{}", port(s));
        c.iter().find(|e| e.source.ends_with(&p)).cloned()
    };
    let c = conns_until(&d, "ESTABLISHED and FIN_WAIT", |c| {
        entry(c, &est).is_some_and(|e| e.state == "ESTABLISHED")
            && entry(c, &fin).is_some_and(|e| e.state == "FIN_WAIT")
    });
    assert!((880..=900).contains(&entry(&c, &est).unwrap().expires));
    assert!((100..=120).contains(&entry(&c, &fin).unwrap().expires));

    assert_eq!(
        d.ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    d.ok(&["--set", "60", "30", "200"]);
    assert_eq!(
        d.ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 60 30 200\n"
    );
    let est2 = hold(vip, false);
    let fin2 = hold(vip, true);
    let c = conns_until(&d, "new entries with the new timeouts", |c| {
        entry(c, &est2).is_some_and(|e| e.state == "ESTABLISHED")
            && entry(c, &fin2).is_some_and(|e| e.state == "FIN_WAIT")
    });
    assert!((50..=60).contains(&entry(&c, &est2).unwrap().expires));
    assert!((20..=30).contains(&entry(&c, &fin2).unwrap().expires));
    // An entry not updated since keeps the timer it had (kernel: next state update)...
    assert!(entry(&c, &est).unwrap().expires > 800);
    // ...and its next packets load the new ESTABLISHED timeout.
    let mut est = est;
    est.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = [0u8; 512];
    est.set_read_timeout(Some(5 * SEC)).unwrap();
    assert!(est.read(&mut answer).unwrap() > 0);
    conns_until(&d, "the open entry with the new timeout", |c| {
        entry(c, &est).is_some_and(|e| e.state == "ESTABLISHED" && e.expires <= 60)
    });

    // Close everything, let the counts settle, then zero.
    drop((est, fin, est2, fin2));
    conns_until(&d, "no open connection", |c| {
        c.iter()
            .all(|c| !["ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT"].contains(&c.state.as_str()))
    });
    stats_until(&d, "8 connections", |s| stat(s, vip, true).n[0] == 8);
    d.ok(&["-Z"]);
    let st = parse_stats(&d.ok(&["-Ln", "--stats", "--exact"]));
    assert_eq!(st.len(), 3, "{st:?}");
    for l in &st {
        assert_eq!(l.n, [0; 5], "after -Z: {l:?}");
    }
    // Zeroing counters does not drop connections.
    assert!(!parse_conns(&d.ok(&["-Lnc"])).is_empty());
}

/// Acceptance 7: a UDP service with a socat echo real server: answers come back, `-Lnc` shows
/// the UDP entry with the udp timeout, `--stats` counts datagrams.
#[test]
fn udp_service_with_an_echo_server() {
    require!("socat");
    let dir = tempdir("udp");
    let mut cmd = Command::new(which("socat").unwrap());
    // No fork: one peer (the proxy's connected socket for our one client flow).
    cmd.args([
        "-T",
        "20",
        "UDP4-LISTEN:5300,bind=127.77.7.11,reuseaddr",
        "PIPE",
    ]);
    let _echo = Proc::spawn("socat", cmd);
    let d = start_rvsd(dir.path(), &[]);
    d.table(&[
        "-A -u 127.77.7.1:5300 -s rr",
        "-a -u 127.77.7.1:5300 -r 127.77.7.11:5300 -m",
    ]);
    let c = UdpSocket::bind("127.77.7.101:0").unwrap();
    c.connect("127.77.7.1:5300").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    // socat may not be bound yet: retry the first datagram a bounded number of times.
    let mut tries = 0;
    let first = loop {
        tries += 1;
        c.send(b"ping-0").unwrap();
        match c.recv(&mut buf) {
            Ok(n) => break buf[..n].to_vec(),
            Err(e) => assert!(tries < 20, "no echo after {tries} tries: {e}"),
        }
    };
    assert_eq!(first, b"ping-0");
    for i in 1..=3 {
        let msg = format!("ping-{i}");
        c.send(msg.as_bytes()).unwrap();
        let n = c.recv(&mut buf).expect("echo");
        assert_eq!(&buf[..n], msg.as_bytes());
    }
    let me = c.local_addr().unwrap().to_string();
    let e = conns_until(&d, "the UDP entry", |c| c.iter().any(|c| c.source == me));
    let e = e.iter().find(|c| c.source == me).unwrap();
    assert_eq!(
        (
            e.proto.as_str(),
            e.state.as_str(),
            e.virt.as_str(),
            e.dest.as_str()
        ),
        ("UDP", "UDP", "127.77.7.1:5300", "127.77.7.11:5300")
    );
    assert!((280..=300).contains(&e.expires), "{e:?}");
    // --set udp: every datagram restarts the entry's timer with the current udp timeout.
    d.ok(&["--set", "0", "0", "100"]);
    assert_eq!(
        d.ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 900 120 100\n"
    );
    c.send(b"ping-4").unwrap();
    let n = c.recv(&mut buf).expect("echo");
    assert_eq!(&buf[..n], b"ping-4");
    conns_until(&d, "the UDP entry with the new timeout", |c| {
        c.iter()
            .any(|c| c.source == me && (90..=100).contains(&c.expires))
    });
    // Datagrams: every echo we received went out; what we sent came in.
    let st = stats_until(&d, "the datagrams", |s| {
        stat(s, "127.77.7.1:5300", true).n[2] >= 4
    });
    let l = stat(&st, "127.77.7.1:5300", true);
    assert_eq!(l.n[0], 1, "one flow: {l:?}");
    assert!(
        l.n[1] >= 4 && l.n[2] >= 4 && l.n[3] >= 24 && l.n[4] >= 24,
        "{l:?}"
    );
}

/// Acceptance 8: `--proxy-protocol v2`: nginx parses the header and reports curl's own source
/// address and port.
#[test]
fn proxy_protocol_v2_carries_the_client_address() {
    require!("nginx", "curl");
    let dir = tempdir("ppv2");
    let _ng = start_nginx(
        dir.path(),
        &[Site {
            proxy_protocol: true,
            ..Site::named(
                "127.77.8.11:8080",
                "$proxy_protocol_addr:$proxy_protocol_port",
            )
        }],
        None,
    );
    let d = start_rvsd(dir.path(), &[]);
    d.table(&[
        "-A -t 127.77.8.1:8080 -s rr --proxy-protocol v2",
        "-a -t 127.77.8.1:8080 -r 127.77.8.11:8080 -m",
    ]);
    assert!(d.ok(&["-Sn"]).contains("--proxy-protocol v2"));
    // The real server really insists on the header: without it the request fails.
    assert!(!curl(&["http://127.77.8.11:8080/"]).status.success());
    for host in ["127.77.8.101", "127.77.8.102"] {
        let out = curl_ok(&[
            "--interface",
            host,
            "-w",
            "%{local_ip}:%{local_port}\n",
            "http://127.77.8.1:8080/",
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[1].starts_with(&format!("{host}:")), "{out}");
        assert_eq!(lines[0], lines[1], "header address = curl's source");
    }
}

/// Acceptance 9: SIGTERM during a long transfer: rvsd stops accepting at once, the transfer
/// completes with the right size, and rvsd then exits 0.
#[test]
fn sigterm_lets_a_long_transfer_complete() {
    require!("nginx", "curl");
    const BIG: usize = 50 << 20;
    let dir = tempdir("sigterm");
    let ng = start_nginx(
        dir.path(),
        &[Site::named("127.77.9.11:8080", "A")],
        Some(BIG),
    );
    let mut d = start_rvsd(dir.path(), &["--drain-time", "20"]);
    d.table(&[
        "-A -t 127.77.9.1:8080 -s rr",
        "-a -t 127.77.9.1:8080 -r 127.77.9.11:8080 -m",
    ]);
    // ~2.5 s at 20 MB/s: long enough to check the drain while it runs.
    let body = dir.path().join("body");
    let mut dl = Download::start(
        &dir.path().join("download"),
        Some(&body),
        &["--limit-rate", "20M", "http://127.77.9.1:8080/big.bin"],
    );
    conns_until(&d, "the download ESTABLISHED", |c| {
        c.iter().any(|c| c.state == "ESTABLISHED")
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    d.signal(Signal::SIGTERM);
    // New connections are refused while the transfer goes on.
    let refused = wait_until(3 * SEC, POLL, || {
        TcpStream::connect_timeout(&"127.77.9.1:8080".parse().unwrap(), SEC).is_err()
    });
    assert!(refused, "the VIP still accepts after SIGTERM");
    assert!(
        dl.running(),
        "the transfer ended before the test could check the drain"
    );
    assert!(d.running(), "rvsd exited with a transfer open");
    let (ok, report) = dl.finish(30 * SEC);
    assert!(ok, "download failed: {report}");
    assert_eq!(report, format!("200 {BIG}"));
    let got = std::fs::read(&body).unwrap();
    let want = std::fs::read(ng.root(0).join("big.bin")).unwrap();
    assert!(got == want, "the body differs from the file");
    let st = d.wait_exit(10 * SEC).expect("rvsd exits after the drain");
    assert_eq!(st.code(), Some(0), "{}", d.log_text());
    eprintln!("drain lasted {:?}", t.elapsed());
    assert!(
        d.log_text().contains("0 connection(s) aborted"),
        "{}",
        d.log_text()
    );
}

/// Acceptance 9, the bound: a transfer still open when the drain time runs out is reset (so
/// the client knows it is incomplete), counted as aborted, and rvsd exits 0.
#[test]
fn sigterm_drain_deadline_resets_what_is_left() {
    require!("nginx", "curl");
    const BIG: usize = 24 << 20;
    let dir = tempdir("deadline");
    let _ng = start_nginx(
        dir.path(),
        &[Site::named("127.77.15.11:8080", "A")],
        Some(BIG),
    );
    let mut d = start_rvsd(dir.path(), &["--drain-time", "1"]);
    d.table(&[
        "-A -t 127.77.15.1:8080 -s rr",
        "-a -t 127.77.15.1:8080 -r 127.77.15.11:8080 -m",
    ]);
    // ~8 s at 3 MB/s: far longer than the drain time.
    let dl = Download::start(
        &dir.path().join("download"),
        None,
        &["--limit-rate", "3M", "http://127.77.15.1:8080/big.bin"],
    );
    conns_until(&d, "the download ESTABLISHED", |c| {
        c.iter().any(|c| c.state == "ESTABLISHED")
    });
    let t = Instant::now();
    d.signal(Signal::SIGTERM);
    let st = d
        .wait_exit(10 * SEC)
        .expect("rvsd exits after the drain time");
    assert_eq!(st.code(), Some(0), "{}", d.log_text());
    assert!(t.elapsed() < 5 * SEC, "exit took {:?}", t.elapsed());
    assert!(
        d.log_text().contains("1 connection(s) aborted"),
        "{}",
        d.log_text()
    );
    // curl 56: "Recv failure: Connection reset by peer" (a FIN would be 18, a short read
    // that a client without Content-Length could not tell from a complete one).
    let (ok, report) = dl.finish_code(10 * SEC);
    assert_eq!(ok, Some(56), "{report}");
}

/// A varied table: every scheduler family, persistence, thresholds, flags, PROXY protocol,
/// UDP one-packet, fwmark and DR/TUN/full-NAT real servers (the last ones warn).
const VARIED: &[&str] = &[
    "-A -t 127.77.13.1:8080 -s wrr --proxy-protocol v2",
    "-a -t 127.77.13.1:8080 -r 127.77.13.11:8080 -m -w 3 -x 100 -y 50",
    "-a -t 127.77.13.1:8080 -r 127.77.13.12:8080 -m -w 0",
    "-A -u 127.77.13.1:5300 -s sh -b sh-fallback,sh-port -o",
    "-a -u 127.77.13.1:5300 -r 127.77.13.13:5300 -m",
    "-A -t 127.77.13.1:8443 -s wlc -p 300 -M 255.255.255.0",
    "-a -t 127.77.13.1:8443 -r 127.77.13.11:8443 --fullnat -w 2",
    "-A -t 127.77.13.2:80 -s mh -b mh-port",
    "-a -t 127.77.13.2:80 -r 127.77.13.14:80 -g",
    "-a -t 127.77.13.2:80 -r 127.77.13.15:80 -i -w 5",
    "-A -f 7 -s lblcr",
    "-a -f 7 -r 127.77.13.16:0 -m",
];

/// Acceptance 10a: `-Sn` → `-C` → `-R` through rvsd reproduces the table byte for byte (with
/// the rvsadm binary when it was built, else its library).
#[test]
fn save_clear_restore_round_trip() {
    let dir = tempdir("restore");
    let d = start_rvsd(dir.path(), &[]);
    for l in VARIED {
        let args: Vec<&str> = l.split_whitespace().collect();
        let a = d.adm(&args);
        assert_eq!(a.code, 0, "{l}: {a:?}");
    }
    let bin = rvsadm_bin();
    let adm = |args: &[&str], stdin: &str| match &bin {
        Some(b) => rvsadm_exe(b, &d.socket, args, stdin),
        None => rvsadm_lib(&d.socket, args, stdin),
    };
    if bin.is_none() {
        rvs_require::unmet("rvsadm binary not built next to rvsd; checked with the library only");
    }
    let saved = adm(&["-Sn"], "");
    assert_eq!(saved.code, 0, "{saved:?}");
    assert_eq!(saved.out.lines().count(), VARIED.len(), "{}", saved.out);
    let listed = d.ok(&["-Ln"]);
    assert_eq!(adm(&["-C"], "").code, 0);
    assert_eq!(d.ok(&["-Sn"]), "");
    let r = adm(&["-R"], &saved.out);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(adm(&["-Sn"], "").out, saved.out);
    assert_eq!(d.ok(&["-Ln"]), listed);
}

/// A service the socket proxy cannot listen for (its address is taken by another socket) is
/// not added: `-A` fails with status 255 and the reason, alone and inside `-R` (whose other
/// lines are applied), and the table does not list it.
#[test]
fn a_service_that_cannot_listen_is_refused() {
    let dir = tempdir("nolisten");
    let d = start_rvsd(dir.path(), &[]);
    // Held without SO_REUSEPORT: the proxy's listener cannot bind beside it.
    let _taken = std::net::TcpListener::bind("127.77.80.1:8080").unwrap();
    let bin = rvsadm_bin();
    let adm = |args: &[&str], stdin: &str| match &bin {
        Some(b) => rvsadm_exe(b, &d.socket, args, stdin),
        None => rvsadm_lib(&d.socket, args, stdin),
    };
    if bin.is_none() {
        rvs_require::unmet("rvsadm binary not built next to rvsd; checked with the library only");
    }
    let a = adm(&["-A", "-t", "127.77.80.1:8080", "-s", "rr"], "");
    assert_eq!(a.code, 255, "{a:?}");
    assert!(
        a.err.contains("cannot listen on TCP 127.77.80.1:8080")
            && a.err.contains("Address already in use"),
        "{a:?}"
    );
    assert_eq!(d.ok(&["-Sn"]), "");
    // In a restore: the other lines are applied, the failing one reports, and as ipvsadm's
    // -R the status is the last line's.
    let r = adm(
        &["-R"],
        "-A -t 127.77.80.1:8081 -s rr\n-A -t 127.77.80.1:8080 -s rr\n-A -t 127.77.80.1:8082 -s rr\n",
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.err.lines().count(), 1, "{r:?}");
    assert!(
        r.err.contains("cannot listen on TCP 127.77.80.1:8080"),
        "{r:?}"
    );
    assert_eq!(
        d.ok(&["-Sn"]),
        "-A -t 127.77.80.1:8081 -s rr\n-A -t 127.77.80.1:8082 -s rr\n"
    );
    let r = adm(
        &["-R"],
        "-A -t 127.77.80.1:8083 -s rr\n-A -t 127.77.80.1:8080 -s rr\n",
    );
    assert_eq!(r.code, 255, "{r:?}");
    // The services that were added listen: a connection is accepted (and, with no real
    // server, closed or reset by the proxy), never refused.
    let c = TcpStream::connect_timeout(&"127.77.80.1:8083".parse().unwrap(), SEC);
    assert!(
        !matches!(&c, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{c:?}"
    );
}

/// Write a rules file atomically (a reader never sees half a file).
fn write_rules(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Acceptance 10b: `rvsd --rules FILE` loads it; SIGHUP with a changed file applies the
/// difference (an unchanged real server keeps its counters); a broken file keeps the running
/// table and logs the error with `file:line`.
#[test]
fn rules_file_reload_on_sighup() {
    require!("nginx", "curl");
    let dir = tempdir("rules");
    let _ng = abc(dir.path(), 10, None);
    let rules = dir.path().join("rules");
    write_rules(
        &rules,
        "-A -t 127.77.10.1:8080 -s rr\n\
         -a -t 127.77.10.1:8080 -r 127.77.10.11:8080 -m -w 1\n\
         -a -t 127.77.10.1:8080 -r 127.77.10.12:8080 -m -w 1\n\
         -a -t 127.77.10.1:8080 -r 127.77.10.13:8080 -m -w 1\n\
         -A -t 127.77.10.1:8082 -s rr\n\
         -a -t 127.77.10.1:8082 -r 127.77.10.14:8082 -g -w 1\n",
    );
    let d = start_rvsd(dir.path(), &["--rules", rules.to_str().unwrap()]);
    // The DR real server is not served: said once per time it is applied.
    let dr_warnings = || d.log_text().matches("127.77.10.14:8082 of TCP").count();
    let warned = dr_warnings();
    assert!(warned > 0, "{}", d.log_text());
    let vip = "127.77.10.1:8080";
    assert_eq!(names(&format!("http://{vip}/"), 6, &[]), cycle("C B A", 2));
    let before = stats_until(&d, "6 connections", |s| stat(s, vip, true).n[0] == 6);
    let a_before = stat(&before, "127.77.10.11:8080", false).clone();
    assert_eq!(a_before.n[0], 2);

    // Change: B's weight, C removed, a new service.
    write_rules(
        &rules,
        "-A -t 127.77.10.1:8080 -s rr\n\
         -a -t 127.77.10.1:8080 -r 127.77.10.11:8080 -m -w 1\n\
         -a -t 127.77.10.1:8080 -r 127.77.10.12:8080 -m -w 3\n\
         -A -t 127.77.10.1:8081 -s wlc\n\
         -a -t 127.77.10.1:8081 -r 127.77.10.13:8080 -m -w 1\n\
         -A -t 127.77.10.1:8082 -s rr\n\
         -a -t 127.77.10.1:8082 -r 127.77.10.14:8082 -g -w 1\n",
    );
    d.signal(Signal::SIGHUP);
    // (-S sorts real servers by address.)
    let want = "-A -t 127.77.10.1:8080 -s rr\n\
                -a -t 127.77.10.1:8080 -r 127.77.10.11:8080 -m -w 1\n\
                -a -t 127.77.10.1:8080 -r 127.77.10.12:8080 -m -w 3\n\
                -A -t 127.77.10.1:8081 -s wlc\n\
                -a -t 127.77.10.1:8081 -r 127.77.10.13:8080 -m -w 1\n\
                -A -t 127.77.10.1:8082 -s rr\n\
                -a -t 127.77.10.1:8082 -r 127.77.10.14:8082 -g -w 1\n";
    let mut now = String::new();
    let applied = wait_until(5 * SEC, POLL, || {
        now = d.ok(&["-Sn"]);
        now == want
    });
    assert!(applied, "after SIGHUP -Sn is\n{now}");
    // Exactly the difference: B edited, C deleted, the new service and its real server.
    let hup = format!("SIGHUP: {}: 4 changes applied", rules.display());
    assert!(
        wait_until(5 * SEC, POLL, || d.log_text().contains(&hup)),
        "{}",
        d.log_text()
    );
    // The unchanged DR entry was not re-applied, so not warned about again.
    assert_eq!(dr_warnings(), warned, "{}", d.log_text());
    let after = parse_stats(&d.ok(&["-Ln", "--stats", "--exact"]));
    assert_eq!(stat(&after, "127.77.10.11:8080", false), &a_before);
    assert_eq!(stat(&after, vip, true).n[0], 6, "the service was kept");
    assert_eq!(names("http://127.77.10.1:8081/", 2, &[]), cycle("C", 2));

    // A broken file: the running table stays, the error names the file and line.
    write_rules(
        &rules,
        "-A -t 127.77.10.1:8080 -s rr\n-a -t 127.77.10.1:8080 -r 127.77.10.11:8080 -w 99999999\n",
    );
    d.signal(Signal::SIGHUP);
    let logged = wait_until(5 * SEC, POLL, || {
        d.log_text().contains("keeping the running table")
    });
    let log = d.log_text();
    assert!(logged, "{log}");
    assert!(log.contains(&format!("{}:2:", rules.display())), "{log}");
    assert_eq!(d.ok(&["-Sn"]), want);
    // The same file at start is fatal, with the same message.
    let mut c = Command::new(env!("CARGO_BIN_EXE_rvsd"));
    c.args(["--metrics-listen", "off", "--workers", "1", "--socket"])
        .arg(dir.path().join("second.sock"))
        .arg("--rules")
        .arg(&rules);
    let o = run_bounded("rvsd", c, "", 10 * SEC);
    assert_eq!(o.code, 1, "{}", o.err);
    assert!(
        o.err.contains(&format!("{}:2:", rules.display())),
        "{}",
        o.err
    );
}

/// Acceptance 11a: with no rvsd, rvsadm says so in one line naming the socket and exits 2
/// (binary when built, and the library).
#[test]
fn rvsadm_without_rvsd_names_the_socket_and_exits_2() {
    let dir = tempdir("nodaemon");
    let sock = dir.path().join("rvsd.sock");
    let mut runs = vec![rvsadm_lib(&sock, &["-Ln"], "")];
    match rvsadm_bin() {
        Some(b) => runs.push(rvsadm_exe(&b, &sock, &["-Ln"], "")),
        None => rvs_require::unmet("rvsadm binary not built next to rvsd; library only"),
    }
    for a in runs {
        assert_eq!(a.code, 2, "{a:?}");
        assert_eq!(a.out, "");
        assert_eq!(a.err.lines().count(), 1, "{a:?}");
        assert!(a.err.contains(sock.to_str().unwrap()), "{a:?}");
    }
}

/// A Prometheus sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, String);

/// Parse one Prometheus sample line.
fn sample(line: &str) -> Option<Sample> {
    let (head, value) = line.rsplit_once(' ')?;
    let (name, labels) = match head.split_once('{') {
        Some((n, rest)) => (n, rest.strip_suffix('}')?),
        None => (head, ""),
    };
    let labels = labels
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.trim_matches('"').to_string())
        })
        .collect();
    Some((name.to_string(), labels, value.to_string()))
}

/// Acceptance 11b: the metrics endpoint serves node_exporter-style labels for a service and
/// its real servers, with the traffic counted.
#[test]
fn metrics_use_node_exporter_labels() {
    require!("nginx", "curl");
    let dir = tempdir("metrics");
    let _ng = abc(dir.path(), 11, None);
    let d = start_rvsd(dir.path(), &["--metrics-listen", "127.77.11.1:9760"]);
    d.table(&[
        "-A -t 127.77.11.1:8080 -s rr",
        "-a -t 127.77.11.1:8080 -r 127.77.11.11:8080 -m",
    ]);
    names("http://127.77.11.1:8080/", 3, &[]);
    let find = |text: &str, name: &str, labels: &[(&str, &str)]| -> Option<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(sample)
            .find(|(n, ls, _)| {
                n == name
                    && ls.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| ls.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|(_, _, v)| v)
    };
    let svc = [
        ("local_address", "127.77.11.1"),
        ("local_port", "8080"),
        ("local_mark", ""),
        ("proto", "TCP"),
    ];
    let mut be = svc.to_vec();
    be.extend([("remote_address", "127.77.11.11"), ("remote_port", "8080")]);
    let mut text = String::new();
    let ok = wait_until(5 * SEC, POLL, || {
        text = curl_ok(&["http://127.77.11.1:9760/metrics"]);
        find(&text, "rvs_service_connections_total", &svc).as_deref() == Some("3")
            && find(&text, "rvs_backend_connections_total", &be).as_deref() == Some("3")
            && find(&text, "rvs_backend_outgoing_bytes_total", &be)
                .is_some_and(|v| v.parse::<u64>().unwrap() > 0)
    });
    assert!(ok, "{text}");
    assert!(text.contains("# TYPE rvs_service_connections_total counter"));
    // The whole exposition is well formed: every sample parses, has a numeric value and a
    // TYPE declared before it, and no series appears twice.
    let mut typed = std::collections::BTreeSet::new();
    let mut seen = std::collections::BTreeSet::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            typed.insert(rest.split_whitespace().next().unwrap().to_string());
            continue;
        }
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        let (name, mut labels, value) = sample(l).unwrap_or_else(|| panic!("bad line {l:?}"));
        // A histogram's series are its name with _bucket, _sum and _count.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| typed.contains(*b)))
            .unwrap_or(&name);
        assert!(typed.contains(family), "no TYPE before {l:?}");
        assert!(value.parse::<f64>().is_ok(), "{l:?}");
        labels.sort();
        assert!(seen.insert((name, labels)), "duplicate series {l:?}");
    }
    assert!(find(&text, "rvs_backend_weight", &be).as_deref() == Some("1"));
}

/// GET `/metrics` from `addr` with a bare HTTP/1.0 request (no curl needed); the body.
fn metrics(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("metrics endpoint");
    s.set_read_timeout(Some(5 * SEC)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let (head, body) = r.split_once("\r\n\r\n").expect("HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// Acceptance 12: a DR real server (ipvsadm's default `-g`) is accepted and listed, with a
/// one-line warning that it is not served and needs the packet data plane, logged and exposed
/// in the metrics; the VIP does not carry traffic to it.
#[test]
fn dr_real_server_warns_and_is_listed() {
    let dir = tempdir("drwarn");
    let d = start_rvsd(dir.path(), &["--metrics-listen", "127.77.12.1:9760"]);
    d.ok(&["-A", "-t", "127.77.12.1:8080", "-s", "rr"]);
    let add = ["-a", "-t", "127.77.12.1:8080", "-r", "127.77.12.11:8080"];
    let a = match rvsadm_bin() {
        Some(b) => rvsadm_exe(&b, &d.socket, &add, ""),
        None => d.adm(&add),
    };
    assert_eq!(a.code, 0, "{a:?}");
    assert_eq!(a.out, "");
    assert_eq!(a.err.lines().count(), 1, "{a:?}");
    assert!(
        a.err.contains("127.77.12.11:8080")
            && a.err.contains("not served")
            && a.err.contains("packet data plane"),
        "{a:?}"
    );
    assert_eq!(
        dest_line(&d, "127.77.12.11:8080").unwrap()[2..],
        ["Route", "1", "0", "0"]
    );
    assert!(d.log_text().contains("not served"));
    let m = metrics("127.77.12.1:9760");
    let line = "rvs_backend_unserved{local_address=\"127.77.12.1\",local_port=\"8080\",\
                local_mark=\"\",proto=\"TCP\",remote_address=\"127.77.12.11\",\
                remote_port=\"8080\"} 1";
    assert!(m.lines().any(|l| l == line), "{m}");
    // Nothing is served: the connection is reset (possibly before connect returns) or closed
    // without an answer.
    let answer =
        TcpStream::connect_timeout(&"127.77.12.1:8080".parse().unwrap(), SEC).and_then(|mut s| {
            s.set_read_timeout(Some(2 * SEC))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf)?;
            Ok(buf)
        });
    assert!(answer.as_ref().map_or(true, |b| b.is_empty()), "{answer:?}");
}
