//! One attempt of each checker type against real loopback servers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use md5::{Digest, Md5};
use rvs_health::*;

const T: Duration = Duration::from_millis(500);

fn ctx() -> CheckContext {
    CheckContext::new(Arc::new(SplitMix::new(42))).unwrap()
}

fn http(addr: std::net::SocketAddr, urls: Vec<HttpUrl>) -> HttpCheck {
    HttpCheck {
        connect: ConnectOpts::to(addr),
        protocol: HttpProtocol::Http10,
        virtualhost: None,
        tls: None,
        urls,
        fast_recovery: false,
    }
}

fn body_handler() -> Handler {
    Arc::new(|path: &str| match path {
        "/ok" => (200, b"hello world".to_vec()),
        "/moved" => (302, b"elsewhere".to_vec()),
        "/missing" => (404, b"nope".to_vec()),
        _ => (500, b"error".to_vec()),
    })
}

#[tokio::test]
async fn tcp_up_and_down() {
    let srv = http_server("127.0.0.1", body_handler()).await;
    assert!(
        run_check(&CheckKind::Tcp(ConnectOpts::to(srv.addr)), T, &ctx())
            .await
            .is_ok()
    );
    let closed = closed_tcp_port("127.0.0.1").await;
    let e = run_check(&CheckKind::Tcp(ConnectOpts::to(closed)), T, &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Io {
                what: "connect",
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn tcp_bindto_source_address() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let mut o = ConnectOpts::to(addr);
    o.bindto = Some("127.0.0.77".parse().unwrap());
    let (kind, c) = (CheckKind::Tcp(o), ctx());
    let (r, acc) = tokio::join!(run_check(&kind, T, &c), async {
        tokio::time::timeout(WAIT, l.accept())
            .await
            .unwrap()
            .unwrap()
    });
    r.unwrap();
    assert_eq!(acc.1.ip().to_string(), "127.0.0.77");
}

#[tokio::test]
async fn http_status_digest_and_request_bytes() {
    let srv = http_server("127.0.0.1", body_handler()).await;
    let c = ctx();
    // Default status range 200-299 and the right digest.
    let mut url = HttpUrl::new("/ok");
    url.digest = Some(Md5::digest(b"hello world").into());
    run_check(&CheckKind::Http(http(srv.addr, vec![url.clone()])), T, &c)
        .await
        .unwrap();
    // keepalived's request bytes, Host = connect ip:port.
    let req = srv.requests.lock().unwrap()[0].clone();
    assert_eq!(
        req,
        format!(
            "GET /ok HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: {}\r\n\r\n",
            srv.addr
        )
    );
    // Digest mismatch.
    url.digest = Some(Md5::digest(b"something else").into());
    let e = run_check(&CheckKind::Http(http(srv.addr, vec![url])), T, &c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("MD5 digest error"), "{e}");
    // 302 fails the default range, passes an explicit range.
    let mut moved = HttpUrl::new("/moved");
    assert!(
        run_check(&CheckKind::Http(http(srv.addr, vec![moved.clone()])), T, &c)
            .await
            .is_err()
    );
    moved.status_codes = vec![(300, 399)];
    run_check(&CheckKind::Http(http(srv.addr, vec![moved.clone()])), T, &c)
        .await
        .unwrap();
    // All urls must pass.
    let urls = vec![moved, HttpUrl::new("/missing")];
    let e = run_check(&CheckKind::Http(http(srv.addr, urls)), T, &c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("status code error: 404"), "{e}");
}

#[tokio::test]
async fn http_virtualhost_and_protocol() {
    let srv = http_server("127.0.0.1", body_handler()).await;
    let mut h = http(srv.addr, vec![HttpUrl::new("/ok")]);
    h.virtualhost = Some("www.example.org".into());
    h.protocol = HttpProtocol::Http11;
    run_check(&CheckKind::Http(h.clone()), T, &ctx())
        .await
        .unwrap();
    // url-level virtualhost wins.
    h.urls[0].virtualhost = Some("url.example.org".into());
    run_check(&CheckKind::Http(h), T, &ctx()).await.unwrap();
    let reqs = srv.requests.lock().unwrap().clone();
    assert_eq!(
        reqs[0],
        "GET /ok HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: www.example.org\r\n\r\n"
    );
    assert!(reqs[1].contains("\r\nHost: url.example.org\r\n"));
}

#[tokio::test]
async fn http_no_data_is_failure() {
    // A server that accepts and closes at once.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let t = tokio::spawn(async move {
        for _ in 0..2 {
            let (s, _) = l.accept().await.unwrap();
            drop(s);
        }
    });
    let e = run_check(
        &CheckKind::Http(http(addr, vec![HttpUrl::new("/")])),
        T,
        &ctx(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Http(_) | Error::Io { .. }), "{e}");
    t.abort();
}

#[tokio::test]
async fn ssl_get_self_signed_without_verification_and_sni() {
    let srv = tls_server("127.0.0.1", b"secure body").await;
    let mut url = HttpUrl::new("/");
    url.digest = Some(Md5::digest(b"secure body").into());
    let mut h = http(srv.addr, vec![url]);
    h.tls = Some(TlsOpts { enable_sni: false });
    h.virtualhost = Some("rs.example".into());
    run_check(&CheckKind::Http(h.clone()), T, &ctx())
        .await
        .unwrap();
    // SNI only with enable_sni (and a virtual host).
    h.tls = Some(TlsOpts { enable_sni: true });
    run_check(&CheckKind::Http(h.clone()), T, &ctx())
        .await
        .unwrap();
    // The certificate names rs.example; a different SNI still works (no verification).
    h.virtualhost = Some("other.example".into());
    run_check(&CheckKind::Http(h), T, &ctx()).await.unwrap();
    let sni = srv.sni.lock().unwrap().clone();
    assert_eq!(
        sni,
        vec![
            None,
            Some("rs.example".to_string()),
            Some("other.example".to_string())
        ]
    );
    assert!(srv.requests.lock().unwrap()[0].contains("Host: rs.example\r\n"));
}

#[tokio::test]
async fn ssl_get_against_plain_http_fails() {
    let srv = http_server("127.0.0.1", body_handler()).await;
    let mut h = http(srv.addr, vec![HttpUrl::new("/ok")]);
    h.tls = Some(TlsOpts::default());
    assert!(run_check(&CheckKind::Http(h), T, &ctx()).await.is_err());
}

#[tokio::test]
async fn smtp_dialogue() {
    let (addr, lines, task) = smtp_server("127.0.0.1", 250).await;
    let s = SmtpCheck {
        connect: ConnectOpts::to(addr),
        helo_name: "smtpchecker.keepalived.org".into(),
    };
    run_check(&CheckKind::Smtp(s.clone()), T, &ctx())
        .await
        .unwrap();
    assert_eq!(
        *lines.lock().unwrap(),
        vec![
            "HELO smtpchecker.keepalived.org".to_string(),
            "QUIT".to_string()
        ]
    );
    task.abort();
    let (addr, _, task) = smtp_server("127.0.0.1", 550).await;
    let s = SmtpCheck {
        connect: ConnectOpts::to(addr),
        ..s
    };
    let e = run_check(&CheckKind::Smtp(s), T, &ctx()).await.unwrap_err();
    assert!(e.to_string().contains("expected 250, got 550"), "{e}");
    task.abort();
}

#[tokio::test]
async fn dns_query_and_rcode() {
    let (addr, queries, task) = dns_server("127.0.0.1", 0, true).await;
    let d = DnsCheck {
        connect: ConnectOpts::to(addr),
        qtype: DnsType::A,
        name: "www.example.org".into(),
    };
    // The first reply has the wrong id and is ignored.
    run_check(&CheckKind::Dns(d.clone()), T, &ctx())
        .await
        .unwrap();
    let q = queries.lock().unwrap()[0].clone();
    assert_eq!(&q[2..6], &[0x01, 0x00, 0x00, 0x01]); // RD, QDCOUNT 1
    assert_eq!(&q[12..], b"\x03www\x07example\x03org\x00\x00\x01\x00\x01");
    task.abort();
    let (addr, _, task) = dns_server("127.0.0.1", 2, false).await;
    let d = DnsCheck {
        connect: ConnectOpts::to(addr),
        ..d
    };
    let e = run_check(&CheckKind::Dns(d), T, &ctx()).await.unwrap_err();
    assert!(e.to_string().contains("RCODE 2"), "{e}");
    task.abort();
    // Nothing listening: ICMP port unreachable → failure.
    let d = DnsCheck {
        connect: ConnectOpts::to(closed_udp_port("127.0.0.1").await),
        qtype: DnsType::Soa,
        name: ".".into(),
    };
    assert!(run_check(&CheckKind::Dns(d), T, &ctx()).await.is_err());
}

#[tokio::test]
async fn udp_check_semantics() {
    let short = Duration::from_millis(150);
    let (echo, got, t1) = udp_server("127.0.0.1", Some(b"PONG-1".to_vec())).await;
    let (silent, _, t2) = udp_server("127.0.0.1", None).await;
    let closed = closed_udp_port("127.0.0.1").await;
    let u = |addr, require_reply: Option<&[u8]>| UdpCheck {
        connect: ConnectOpts::to(addr),
        payload: b"PING".to_vec(),
        require_reply: require_reply.map(<[u8]>::to_vec),
        min_reply_length: 0,
        max_reply_length: None,
    };
    let c = ctx();
    // No reply required: silence is success, ICMP unreachable is failure.
    run_check(&CheckKind::Udp(u(silent, None)), short, &c)
        .await
        .unwrap();
    let e = run_check(&CheckKind::Udp(u(closed, None)), short, &c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ICMP port unreachable"), "{e}");
    // Reply required.
    run_check(&CheckKind::Udp(u(echo, Some(b"PONG"))), short, &c)
        .await
        .unwrap();
    assert_eq!(got.lock().unwrap()[0], b"PING");
    assert!(
        run_check(&CheckKind::Udp(u(echo, Some(b"NOPE"))), short, &c)
            .await
            .is_err()
    );
    // Only the shorter of reply and expectation is compared (keepalived); a minimum length
    // makes the whole expectation count.
    run_check(
        &CheckKind::Udp(u(echo, Some(b"PONG-1-and-more"))),
        short,
        &c,
    )
    .await
    .unwrap();
    let mut strict = u(echo, Some(b"PONG-1-and-more"));
    strict.min_reply_length = 15;
    assert!(run_check(&CheckKind::Udp(strict), short, &c).await.is_err());
    assert!(run_check(&CheckKind::Udp(u(silent, Some(b""))), short, &c)
        .await
        .is_err());
    let mut long = u(echo, Some(b""));
    long.max_reply_length = Some(4);
    assert!(run_check(&CheckKind::Udp(long), short, &c).await.is_err());
    t1.abort();
    t2.abort();
}

#[tokio::test]
async fn ping_loopback() {
    let p = PingCheck {
        connect: ConnectOpts::to("127.0.0.1:0".parse().unwrap()),
    };
    match run_check(&CheckKind::Ping(p), T, &ctx()).await {
        Ok(_) => {}
        // Neither an unprivileged ICMP socket nor a raw one is allowed here: the error must
        // say so (this is the documented failure, not a skipped assertion).
        Err(Error::Ping(msg)) if msg.contains("no ICMP socket") => {
            rvs_require::unmet(format_args!("ping not permitted here: {msg}"));
        }
        Err(e) => panic!("ping 127.0.0.1 failed: {e}"),
    }
}

#[tokio::test]
async fn misc_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx();
    let m = |argv: Vec<String>, dynamic| {
        CheckKind::Misc(MiscCheck {
            command: Command::new(argv),
            timeout: Duration::from_secs(5),
            dynamic,
        })
    };
    let exit = |code: i32| vec!["/bin/sh".to_string(), "-c".into(), format!("exit {code}")];
    assert_eq!(
        run_check(&m(exit(0), false), T, &c).await.unwrap().dynamic,
        None
    );
    assert!(run_check(&m(exit(1), false), T, &c).await.is_err());
    assert!(run_check(&m(exit(3), false), T, &c).await.is_err());
    assert_eq!(
        run_check(&m(exit(0), true), T, &c).await.unwrap().dynamic,
        Some(MiscWeight::Configured)
    );
    assert!(run_check(&m(exit(1), true), T, &c).await.is_err());
    assert_eq!(
        run_check(&m(exit(10), true), T, &c).await.unwrap().dynamic,
        Some(MiscWeight::Weight(8))
    );
    assert_eq!(
        run_check(&m(exit(255), true), T, &c).await.unwrap().dynamic,
        Some(MiscWeight::Weight(253))
    );
    // Arguments are passed exactly.
    let out = dir.path().join("args");
    let s = script(
        dir.path(),
        "args.sh",
        &format!("echo \"$@\" > {}", out.display()),
    );
    run_check(&m(vec![s, "a b".into(), "c".into()], false), T, &c)
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "a b c\n");
    // misc_timeout kills the program and fails.
    let slow = CheckKind::Misc(MiscCheck {
        command: Command::new(["/bin/sleep", "5"]),
        timeout: Duration::from_millis(100),
        dynamic: false,
    });
    let started = std::time::Instant::now();
    let e = run_check(&slow, T, &c).await.unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // A missing program is a clear error.
    let e = run_check(&m(vec!["/nonexistent/prog".into()], false), T, &c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot run"), "{e}");
}

#[tokio::test]
async fn misc_user_switch() {
    // As root, run as "nobody" and check the effective uid; as non-root, an error.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("uid");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let s = script(dir.path(), "uid.sh", &format!("id -u > {}", out.display()));
    let mut cmd = Command::new([s]);
    cmd.user = Some("nobody".into());
    let k = CheckKind::Misc(MiscCheck {
        command: cmd,
        timeout: Duration::from_secs(5),
        dynamic: false,
    });
    let r = run_check(&k, T, &ctx()).await;
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if root {
        r.unwrap();
        let uid = std::fs::read_to_string(&out).unwrap();
        assert_ne!(uid.trim(), "0");
    } else {
        assert!(r.is_err());
    }
}

#[tokio::test]
async fn misc_timeout_sends_sigterm_first() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("terminated");
    // `sleep & wait` so the shell runs its TERM trap at once.
    let s = script(
        dir.path(),
        "trap.sh",
        &format!(
            "trap 'echo term > {}; exit 0' TERM\nsleep 5 &\nwait",
            marker.display()
        ),
    );
    let k = CheckKind::Misc(MiscCheck {
        command: Command::new([s]),
        timeout: Duration::from_millis(200),
        dynamic: false,
    });
    let started = std::time::Instant::now();
    let e = run_check(&k, T, &ctx()).await.unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
    // Exited on SIGTERM (no 2 s SIGKILL grace needed) and ran its handler.
    assert!(started.elapsed() < Duration::from_millis(1900));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "term\n");
}

#[tokio::test]
async fn misc_timeout_kills_the_scripts_children() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    // The script ignores SIGTERM and leaves a grandchild behind.
    let s = script(
        dir.path(),
        "stubborn.sh",
        &format!(
            "trap '' TERM\nsleep 30 &\necho $! > {}\nwait\nwait",
            pidfile.display()
        ),
    );
    let k = CheckKind::Misc(MiscCheck {
        command: Command::new([s]),
        timeout: Duration::from_millis(100),
        dynamic: false,
    });
    let e = run_check(&k, T, &ctx()).await.unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let proc_dir = format!("/proc/{}", pid.trim());
    // The grandchild is killed with the group (allow the kernel a moment to reap it; a
    // zombie has no cmdline).
    let gone = async {
        loop {
            let alive = std::fs::read(format!("{proc_dir}/cmdline"))
                .map(|c| !c.is_empty())
                .unwrap_or(false);
            if !alive {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    // Well before the grandchild's own 30 s end.
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .expect("grandchild survived");
}

#[tokio::test]
async fn ipv6_loopback_tcp_http_udp_ping() {
    if !rvs_require::ipv6_loopback() {
        return;
    }
    let l = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let srv = http_server("[::1]", body_handler()).await;
    let c = ctx();
    run_check(&CheckKind::Tcp(ConnectOpts::to(srv.addr)), T, &c)
        .await
        .unwrap();
    run_check(
        &CheckKind::Http(http(srv.addr, vec![HttpUrl::new("/ok")])),
        T,
        &c,
    )
    .await
    .unwrap();
    // Host header for IPv6 without virtualhost: [ip]:port.
    assert!(srv.requests.lock().unwrap()[0].contains(&format!("\r\nHost: {}\r\n", srv.addr)));
    assert!(srv.addr.to_string().starts_with("[::1]:"));
    assert!(run_check(&CheckKind::Tcp(ConnectOpts::to(addr)), T, &c)
        .await
        .is_err());
    let (udp, _, t) = udp_server("[::1]", Some(b"x".to_vec())).await;
    let u = UdpCheck {
        connect: ConnectOpts::to(udp),
        payload: b"y".to_vec(),
        require_reply: Some(Vec::new()),
        min_reply_length: 1,
        max_reply_length: None,
    };
    run_check(&CheckKind::Udp(u), T, &c).await.unwrap();
    t.abort();
    let p = PingCheck {
        connect: ConnectOpts::to("[::1]:0".parse().unwrap()),
    };
    match run_check(&CheckKind::Ping(p), T, &c).await {
        Ok(_) => {}
        Err(Error::Ping(msg)) if msg.contains("no ICMP socket") => eprintln!("{msg}"),
        Err(e) => panic!("ping ::1 failed: {e}"),
    }
}
