//! The engine end to end on loopback with real servers, real scripts and the real clock
//! (intervals of tens of milliseconds; every wait bounded by `common::WAIT`).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rvs_health::*;
use tokio::sync::mpsc;

fn start(cfg: Vec<VirtualServerCheck>) -> (Handle, mpsc::Receiver<Action>) {
    let (tx, rx) = mpsc::channel(256);
    let h = HealthEngine::start_with(cfg, tx, opts(Duration::from_millis(10))).unwrap();
    (h, rx)
}

/// Receive actions until `pred`, applying each to `table` (commands are run and awaited).
async fn apply_until(
    rx: &mut mpsc::Receiver<Action>,
    table: &mut Table,
    pred: impl Fn(&Action) -> bool,
) -> Vec<Action> {
    let got = until(rx, pred).await;
    for a in &got {
        table.apply(a).await;
    }
    got.into_iter()
        .filter(|a| !matches!(a, Action::Notify(_)))
        .collect()
}

/// Poll the status (bounded) until real server `rs` has a successful check.
async fn wait_checked(h: &Handle, rs: usize) {
    tokio::time::timeout(WAIT, async {
        loop {
            let st = h.status().await.unwrap();
            if st[0].real_servers[rs].checkers[0].last_ok == Some(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("checker never succeeded");
}

fn log_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn logger(dir: &Path, log: &Path) -> String {
    script(dir, "log.sh", &format!("echo \"$@\" >> {}", log.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_get_down_and_up_with_notify_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("notify.log");
    let sh = logger(dir.path(), &log);
    let status = Arc::new(AtomicU16::new(200));
    let bad = Arc::new(AtomicUsize::new(0));
    let (s2, b2) = (status.clone(), bad.clone());
    let srv1 = http_server(
        "127.0.0.2",
        Arc::new(move |_: &str| {
            let st = s2.load(Ordering::SeqCst);
            if st != 200 {
                b2.fetch_add(1, Ordering::SeqCst);
            }
            (st, b"one".to_vec())
        }),
    )
    .await;
    let srv2 = http_server("127.0.0.3", Arc::new(|_: &str| (200, b"two".to_vec()))).await;
    let mk = |addr: SocketAddr, name: &str| {
        let mut url = HttpUrl::new("/health");
        url.digest = None;
        let h = HttpCheck {
            connect: ConnectOpts::to(addr),
            protocol: HttpProtocol::Http10,
            virtualhost: Some("www.example.org".into()),
            tls: None,
            urls: vec![url],
            fast_recovery: false,
        };
        let mut rs = real_server(
            addr,
            1,
            vec![checker(CheckKind::Http(h), timing(50, 1, 20))],
        );
        rs.notify_up = Some(Command::new([sh.clone(), "up".into(), name.to_string()]));
        rs.notify_down = Some(Command::new([sh.clone(), "down".into(), name.to_string()]));
        rs
    };
    let (h, mut rx) = start(vec![virtual_server(vec![
        mk(srv1.addr, "rs1"),
        mk(srv2.addr, "rs2"),
    ])]);
    let mut table = Table::default();
    apply_until(&mut rx, &mut table, |a| is_add(a, srv2.addr)).await;
    assert_eq!(table.dests.len(), 2);
    // Let the checker succeed once: a checker that has never run goes down on its first
    // failure (docs/internals/keepalived.md#the-retry-machine), after that it takes retry + 1.
    wait_checked(&h, 0).await;

    status.store(500, Ordering::SeqCst);
    let got = apply_until(&mut rx, &mut table, |a| matches!(a, Action::RunCommand(_))).await;
    assert!(is_remove(&got[0], srv1.addr), "{got:?}");
    assert_eq!(got.len(), 2);
    // retry 1: at least two failed requests before removal.
    assert!(bad.load(Ordering::SeqCst) >= 2);
    assert!(!table.dests.contains_key(&srv1.addr));
    assert_eq!(log_lines(&log), vec!["down rs1"]);

    status.store(200, Ordering::SeqCst);
    let got = apply_until(&mut rx, &mut table, |a| matches!(a, Action::RunCommand(_))).await;
    assert!(is_add(&got[0], srv1.addr), "{got:?}");
    assert_eq!(log_lines(&log), vec!["down rs1", "up rs1"]);
    assert!(srv1.requests.lock().unwrap()[0].contains("\r\nHost: www.example.org\r\n"));
    h.shutdown().await.unwrap();
}

async fn tcp_listener(addr: &str) -> tokio::task::JoinHandle<()> {
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            drop(s);
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_check_inhibit_on_failure() {
    let addr: SocketAddr = closed_tcp_port("127.0.0.4").await;
    let other: SocketAddr = closed_tcp_port("127.0.0.5").await;
    let l1 = tcp_listener(&addr.to_string()).await;
    let l2 = tcp_listener(&other.to_string()).await;
    let t = timing(30, 1, 10);
    let mut rs = real_server(
        addr,
        3,
        vec![checker(CheckKind::Tcp(ConnectOpts::to(addr)), t)],
    );
    rs.inhibit_on_failure = true;
    let rs2 = real_server(
        other,
        1,
        vec![checker(CheckKind::Tcp(ConnectOpts::to(other)), t)],
    );
    let (h, mut rx) = start(vec![virtual_server(vec![rs, rs2])]);
    let mut table = Table::default();
    apply_until(&mut rx, &mut table, |a| is_add(a, other)).await;
    assert_eq!(table.dests[&addr], 3);

    l1.abort();
    let got = apply_until(&mut rx, &mut table, |a| {
        matches!(a, Action::SetWeight { .. })
    })
    .await;
    assert_eq!(
        got,
        vec![Action::SetWeight {
            vs: vs_key(),
            dest: addr,
            weight: 0,
            sorry: false
        }]
    );
    // Still installed, weight 0.
    assert_eq!(table.dests[&addr], 0);
    let st = h.status().await.unwrap();
    assert!(!st[0].real_servers[0].alive && st[0].real_servers[0].set);

    let l1 = tcp_listener(&addr.to_string()).await;
    let got = apply_until(&mut rx, &mut table, |a| {
        matches!(a, Action::SetWeight { .. })
    })
    .await;
    assert!(
        matches!(got[0], Action::SetWeight { weight: 3, .. }),
        "{got:?}"
    );
    assert_eq!(table.dests[&addr], 3);
    h.shutdown().await.unwrap();
    l1.abort();
    l2.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_lost_sorry_server_in_then_regained_with_hysteresis() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.log");
    let sh = logger(dir.path(), &log);
    let flag = |n: u8| dir.path().join(format!("up{n}"));
    let rs_addr = |n: u8| -> SocketAddr { format!("127.0.3.{n}:80").parse().unwrap() };
    let sorry: SocketAddr = "127.0.9.9:80".parse().unwrap();
    let mut rss = Vec::new();
    for n in 1..=3u8 {
        std::fs::write(flag(n), "").unwrap();
        let misc = MiscCheck {
            command: Command::new(["/bin/test", "-e", flag(n).to_str().unwrap()]),
            timeout: Duration::from_secs(5),
            dynamic: false,
        };
        let mut rs = real_server(
            rs_addr(n),
            1,
            vec![checker(CheckKind::Misc(misc), timing(30, 0, 10))],
        );
        rs.notify_up = Some(Command::new([sh.clone(), "up".into(), n.to_string()]));
        rs.notify_down = Some(Command::new([sh.clone(), "down".into(), n.to_string()]));
        rss.push(rs);
    }
    let mut vs = virtual_server(rss);
    vs.quorum = 2;
    vs.hysteresis = 1;
    vs.sorry_server = Some(SorryServer {
        addr: sorry,
        inhibit: false,
    });
    vs.quorum_up = Some(Command::new([sh.clone(), "quorum".into(), "up".into()]));
    vs.quorum_down = Some(Command::new([sh.clone(), "quorum".into(), "down".into()]));
    let (h, mut rx) = start(vec![vs]);
    let mut table = Table::default();
    // W = 3 >= Q + H = 3: all three in.
    apply_until(&mut rx, &mut table, |a| is_add(a, rs_addr(3))).await;
    assert_eq!(table.dests.len(), 3);
    let is_cmd = |a: &Action| matches!(a, Action::RunCommand(_));

    // Down to W = 1: still not < Q − H = 1, quorum holds.
    for n in 1..=2 {
        std::fs::remove_file(flag(n)).unwrap();
        let got = apply_until(&mut rx, &mut table, is_cmd).await;
        assert!(is_remove(&got[0], rs_addr(n)), "{got:?}");
    }
    assert!(h.status().await.unwrap()[0].quorum_up);
    // W = 0: lost; RS 3 out, then sorry server in, then quorum_down.
    std::fs::remove_file(flag(3)).unwrap();
    let got = apply_until(
        &mut rx,
        &mut table,
        |a| matches!(a, Action::RunCommand(c) if c.argv.contains(&"quorum".to_string())),
    )
    .await;
    assert!(is_remove(&got[0], rs_addr(3)), "{got:?}");
    assert!(matches!(got[1], Action::RunCommand(_)));
    assert_eq!(
        got[2],
        Action::AddDest {
            vs: vs_key(),
            dest: sorry,
            weight: 1,
            sorry: true
        }
    );
    assert_eq!(got.len(), 4);
    assert_eq!(table.dests.keys().copied().collect::<Vec<_>>(), vec![sorry]);

    // Servers return one by one; in sorry mode nothing is installed until W >= 3.
    for n in 1..=2 {
        std::fs::write(flag(n), "").unwrap();
        let got = apply_until(&mut rx, &mut table, is_cmd).await;
        assert_eq!(got.len(), 1, "{got:?}");
    }
    assert!(!h.status().await.unwrap()[0].quorum_up);
    std::fs::write(flag(3), "").unwrap();
    let got = apply_until(
        &mut rx,
        &mut table,
        |a| matches!(a, Action::RunCommand(c) if c.argv.contains(&"quorum".to_string())),
    )
    .await;
    assert_eq!(got.len(), 6, "{got:?}");
    assert!(is_remove(&got[1], sorry));
    assert!(
        is_add(&got[2], rs_addr(1)) && is_add(&got[3], rs_addr(2)) && is_add(&got[4], rs_addr(3))
    );
    assert_eq!(table.dests.len(), 3);
    assert!(!table.dests.contains_key(&sorry));
    assert_eq!(
        log_lines(&log),
        vec![
            "down 1",
            "down 2",
            "down 3",
            "quorum down",
            "up 1",
            "up 2",
            "up 3",
            "quorum up"
        ]
    );
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misc_dynamic_weights_from_a_real_script() {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::write(&code, "10").unwrap();
    let prog = script(
        dir.path(),
        "dyn.sh",
        &format!("exit $(cat {})", code.display()),
    );
    let a: SocketAddr = "127.0.4.1:80".parse().unwrap();
    let b: SocketAddr = "127.0.4.2:80".parse().unwrap();
    let misc = MiscCheck {
        command: Command::new([prog]),
        timeout: Duration::from_secs(5),
        dynamic: true,
    };
    let rs = real_server(
        a,
        1,
        vec![checker(CheckKind::Misc(misc), timing(30, 0, 10))],
    );
    let rs2 = real_server(b, 1, vec![]); // no checker: always up
    let (h, mut rx) = start(vec![virtual_server(vec![rs, rs2])]);
    let mut table = Table::default();
    let set = |a: &Action| matches!(a, Action::SetWeight { .. });
    apply_until(&mut rx, &mut table, set).await;
    assert_eq!(table.dests[&a], 8); // exit 10 → weight 8
    std::fs::write(&code, "2").unwrap();
    apply_until(&mut rx, &mut table, set).await;
    assert_eq!(table.dests[&a], 0); // exit 2 → weight 0, still installed
    std::fs::write(&code, "0").unwrap();
    apply_until(&mut rx, &mut table, set).await;
    assert_eq!(table.dests[&a], 1); // exit 0 → configured weight
    std::fs::write(&code, "1").unwrap();
    apply_until(&mut rx, &mut table, |x| is_remove(x, a)).await; // exit 1 → down
    assert_eq!(table.dests.keys().copied().collect::<Vec<_>>(), vec![b]);
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_with_two_checkers_needs_both() {
    let status = Arc::new(AtomicU16::new(200));
    let s2 = status.clone();
    let srv = http_server(
        "127.0.0.6",
        Arc::new(move |_: &str| (s2.load(Ordering::SeqCst), Vec::new())),
    )
    .await;
    let other: SocketAddr = "127.0.5.1:80".parse().unwrap();
    let t = timing(30, 0, 10);
    let http = HttpCheck {
        connect: ConnectOpts::to(srv.addr),
        protocol: HttpProtocol::Http10,
        virtualhost: None,
        tls: None,
        urls: vec![HttpUrl::new("/")],
        fast_recovery: false,
    };
    let rs = real_server(
        srv.addr,
        1,
        vec![
            checker(CheckKind::Tcp(ConnectOpts::to(srv.addr)), t),
            checker(CheckKind::Http(http), t),
        ],
    );
    let (h, mut rx) = start(vec![virtual_server(vec![
        rs,
        real_server(other, 1, vec![]),
    ])]);
    let mut table = Table::default();
    apply_until(&mut rx, &mut table, |a| is_add(a, other)).await;
    status.store(503, Ordering::SeqCst);
    apply_until(&mut rx, &mut table, |a| is_remove(a, srv.addr)).await;
    let st = h.status().await.unwrap();
    let c = &st[0].real_servers[0].checkers;
    assert!(c[0].up && !c[1].up, "{c:?}");
    status.store(200, Ordering::SeqCst);
    apply_until(&mut rx, &mut table, |a| is_add(a, srv.addr)).await;
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_checker_type_through_the_engine_with_alpha() {
    // alpha: a server is only added after its checker succeeded, so each AddDest below
    // proves that checker type ran for real through the engine.
    let http_srv = http_server("127.0.0.7", Arc::new(|_: &str| (200, b"ok".to_vec()))).await;
    let tls_srv = tls_server("127.0.0.8", b"tls ok").await;
    let (smtp_addr, _, smtp_task) = smtp_server("127.0.0.9", 250).await;
    let (dns_addr, _, dns_task) = dns_server("127.0.0.10", 0, false).await;
    let (udp_addr, _, udp_task) = udp_server("127.0.0.11", Some(b"pong".to_vec())).await;
    let tcp_task = tcp_listener("127.0.0.12:8080").await;
    let closed_udp = closed_udp_port("127.0.0.13").await;
    let t = timing(30, 1, 10);
    let http = |addr, tls| HttpCheck {
        connect: ConnectOpts::to(addr),
        protocol: HttpProtocol::Http10,
        virtualhost: None,
        tls,
        urls: vec![HttpUrl::new("/")],
        fast_recovery: true,
    };
    let udp = |addr| UdpCheck {
        connect: ConnectOpts::to(addr),
        payload: b"ping".to_vec(),
        require_reply: Some(b"pong".to_vec()),
        min_reply_length: 0,
        max_reply_length: None,
    };
    let kinds: Vec<(SocketAddr, CheckKind)> = vec![
        (
            "127.0.0.12:8080".parse().unwrap(),
            CheckKind::Tcp(ConnectOpts::to("127.0.0.12:8080".parse().unwrap())),
        ),
        (http_srv.addr, CheckKind::Http(http(http_srv.addr, None))),
        (
            tls_srv.addr,
            CheckKind::Http(http(tls_srv.addr, Some(TlsOpts::default()))),
        ),
        (
            smtp_addr,
            CheckKind::Smtp(SmtpCheck {
                connect: ConnectOpts::to(smtp_addr),
                helo_name: "rvs".into(),
            }),
        ),
        (
            dns_addr,
            CheckKind::Dns(DnsCheck {
                connect: ConnectOpts::to(dns_addr),
                qtype: DnsType::Soa,
                name: ".".into(),
            }),
        ),
        (udp_addr, CheckKind::Udp(udp(udp_addr))),
        (
            "127.0.0.14:0".parse().unwrap(),
            CheckKind::Ping(PingCheck {
                connect: ConnectOpts::to("127.0.0.14:0".parse().unwrap()),
            }),
        ),
        (
            "127.0.0.15:80".parse().unwrap(),
            CheckKind::Misc(MiscCheck {
                command: Command::new(["/bin/true"]),
                timeout: Duration::from_secs(5),
                dynamic: false,
            }),
        ),
        (closed_udp, CheckKind::Udp(udp(closed_udp))),
    ];
    let rss: Vec<RealServerCheck> = kinds
        .iter()
        .map(|(addr, k)| {
            let mut c = checker(k.clone(), t);
            c.alpha = true;
            real_server(*addr, 1, vec![c])
        })
        .collect();
    let (h, mut rx) = start(vec![virtual_server(rss)]);
    let mut want: std::collections::HashSet<SocketAddr> =
        kinds[..kinds.len() - 1].iter().map(|(a, _)| *a).collect();
    let ping_ok = match run_check(
        &kinds[6].1,
        Duration::from_millis(500),
        &CheckContext::new(Arc::new(Fixed(1))).unwrap(),
    )
    .await
    {
        Ok(_) => true,
        Err(e) => {
            // Documented refusal when neither ICMP socket kind is allowed.
            assert!(e.to_string().contains("no ICMP socket"), "{e}");
            want.remove(&kinds[6].0);
            false
        }
    };
    let mut table = Table::default();
    while !want.is_empty() {
        let a = next_action(&mut rx).await;
        table.apply(&a).await;
        if let Action::AddDest { dest, .. } = a {
            assert!(want.remove(&dest), "unexpected add of {dest}");
        }
    }
    // The failing checker has run at least once (bounded poll).
    let st = tokio::time::timeout(WAIT, async {
        loop {
            let st = h.status().await.unwrap();
            if st[0].real_servers.last().unwrap().checkers[0].has_run {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("failing checker never ran");
    let failing = st[0].real_servers.last().unwrap();
    assert!(!failing.alive && !failing.set);
    let err = failing.checkers[0].last_error.clone().unwrap_or_default();
    assert!(err.contains("ICMP port unreachable"), "{err}");
    assert_eq!(table.dests.len(), if ping_ok { 8 } else { 7 });
    h.shutdown().await.unwrap();
    for t in [smtp_task, dns_task, udp_task, tcp_task] {
        t.abort();
    }
}
