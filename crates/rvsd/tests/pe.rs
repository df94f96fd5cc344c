//! Content persistence engines end to end (docs/guide/persistence.md): rvsd's socket proxy with
//! nginx, socat (TLS) and python3 (SIP) real servers, curl, openssl and raw sockets as
//! clients, and rvs-testkit's counting server for the server-connection reuse tests. Each test owns
//! 127.77.N.0/24 (N = 80..88; VIP .1, real servers .11–.13).

mod common;

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::*;

const SEC: Duration = Duration::from_secs(1);

/// Three nginx real servers A, B, C on 127.77.`net`.11–13:8080, each with `extra` directives
/// (`{name}` replaced by its name).
fn abc(dir: &std::path::Path, net: u8, extra: &str) -> Nginx {
    let sites: Vec<Site> = ["A", "B", "C"]
        .iter()
        .enumerate()
        .map(|(i, n)| Site {
            extra: extra.replace("{name}", n),
            ..Site::named(&format!("127.77.{net}.{}:8080", 11 + i), n)
        })
        .collect();
    start_nginx(dir, &sites, None)
}

/// rvsd with a persistent rr service on 127.77.`net`.1:8080 using engine `pe`, and the three
/// real servers (masquerading).
fn service(dir: &std::path::Path, net: u8, pe: &str, extra_args: &[&str]) -> Rvsd {
    let d = start_rvsd(dir, extra_args);
    let vip = format!("127.77.{net}.1:8080");
    d.ok(&["-A", "-t", &vip, "-s", "rr", "-p", "60", "--pe", pe]);
    for i in 11..=13 {
        d.ok(&[
            "-a",
            "-t",
            &vip,
            "-r",
            &format!("127.77.{net}.{i}:8080"),
            "-m",
        ]);
    }
    d
}

/// The answering servers of one curl run (`urls` on one keep-alive connection).
fn served(args: &[&str]) -> Vec<String> {
    curl_ok(args).lines().map(String::from).collect()
}

fn distinct(v: &[String]) -> usize {
    let mut s = v.to_vec();
    s.sort();
    s.dedup();
    s.len()
}

/// The value of the `Set-Cookie` for `name` in a header dump, if any.
fn set_cookie(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if !k.eq_ignore_ascii_case("set-cookie") {
            return None;
        }
        let v = v.trim().split(';').next()?;
        let (n, val) = v.split_once('=')?;
        (n == name).then(|| val.to_string())
    })
}

#[test]
fn cookie_engine_pins_a_jar_ignores_forgeries_and_moves_off_a_removed_server() {
    require!("nginx", "curl");
    let dir = tempdir("pe-cookie");
    let _ng = abc(dir.path(), 80, "");
    let d = service(dir.path(), 80, "cookie", &[]);
    let url = "http://127.77.80.1:8080/";
    let jar = dir.path().join("jar");
    let jar = jar.to_str().unwrap();

    // Without a jar every request is scheduled on its own, also on one keep-alive connection.
    let urls: Vec<&str> = std::iter::repeat_n(url, 6).collect();
    let bare = served(&urls);
    assert!(
        distinct(&bare[..3]) == 3 && bare[3..] == bare[..3],
        "rr without a cookie: {bare:?}"
    );

    // With a jar: 50 requests (one connection) and 5 more curls (new connections) all
    // reach the server that answered first.
    let mut args = vec!["-c", jar, "-b", jar];
    args.extend(std::iter::repeat_n(url, 50));
    let pinned = served(&args);
    assert_eq!(pinned.len(), 50);
    assert_eq!(distinct(&pinned), 1, "one server for a jar: {pinned:?}");
    let first = pinned[0].clone();
    for _ in 0..5 {
        let again = served(&["-c", jar, "-b", jar, "-H", "Connection: close", url]);
        assert_eq!(
            again,
            std::slice::from_ref(&first),
            "a new connection with the jar"
        );
    }
    let jar_text = std::fs::read_to_string(jar).unwrap();
    let value = jar_text
        .lines()
        .find_map(|l| l.split('\t').nth(5).filter(|n| *n == "RVSID").map(|_| l))
        .and_then(|l| l.split('\t').nth(6))
        .expect("RVSID in the jar")
        .to_string();
    assert_eq!(value.len(), 32, "opaque value: {value}");
    assert!(!value.contains("127"), "no address in the cookie: {value}");

    // The template is listed with its engine and value.
    let lnc = d.ok(&["-Lnc", "--persistent-conn"]);
    assert!(
        lnc.contains("cookie:RVSID") && lnc.contains(&value),
        "template with pe data:\n{lnc}"
    );

    // A forged value is ignored: requests are scheduled (they spread) and a real cookie is
    // issued.
    let forged = "RVSID=0123456789abcdef0123456789abcdef";
    let mut seen = Vec::new();
    for _ in 0..3 {
        let out = curl_ok(&["-D", "-", "-b", forged, url]);
        let issued = set_cookie(&out, "RVSID").expect("a cookie replaces the forged one");
        assert_eq!(issued.len(), 32);
        assert_ne!(issued, "0123456789abcdef0123456789abcdef");
        seen.push(out.lines().last().unwrap_or("").to_string());
    }
    assert_eq!(distinct(&seen), 3, "forged cookies are scheduled: {seen:?}");

    // The pinned server is removed (a health checker would): the jar's requests move, and
    // a new cookie is issued once.
    let addr = match first.as_str() {
        "A" => "127.77.80.11:8080",
        "B" => "127.77.80.12:8080",
        _ => "127.77.80.13:8080",
    };
    d.ok(&["-d", "-t", "127.77.80.1:8080", "-r", addr]);
    let out = curl_ok(&["-D", "-", "-c", jar, "-b", jar, url]);
    let moved = out.lines().last().unwrap_or("").to_string();
    assert_ne!(moved, first, "removed server still chosen");
    let renewed = set_cookie(&out, "RVSID").expect("new cookie after the server left");
    assert_ne!(renewed, value);
    let mut args = vec!["-c", jar, "-b", jar];
    args.extend(std::iter::repeat_n(url, 10));
    let after = served(&args);
    assert_eq!(after, vec![moved; 10], "pinned to the new server");
}

#[test]
fn quiescent_pinned_server_keeps_or_loses_clients_as_expire_quiescent_template_says() {
    require!("nginx", "curl");
    let dir = tempdir("pe-quiesce");
    let _ng = abc(dir.path(), 85, "");
    let d = service(dir.path(), 85, "cookie", &[]);
    let url = "http://127.77.85.1:8080/";
    let jar = dir.path().join("jar");
    let jar = jar.to_str().unwrap();
    let first = served(&["-c", jar, "-b", jar, url]).remove(0);
    let addr = format!("127.77.85.{}:8080", 11 + (first.as_bytes()[0] - b'A'));
    d.ok(&["-e", "-t", "127.77.85.1:8080", "-r", &addr, "-m", "-w", "0"]);
    // Kernel default (expire_quiescent_template=0): a template outlives its server's weight.
    let kept = served(&["-c", jar, "-b", jar, url, url, url]);
    assert_eq!(
        kept,
        vec![first.clone(); 3],
        "quiesced server keeps its clients"
    );
    d.ok(&["--sysctl", "expire_quiescent_template=1"]);
    let moved = served(&["-c", jar, "-b", jar, url, url, url]);
    assert!(
        moved.iter().all(|s| *s != first) && distinct(&moved) == 1,
        "with expire_quiescent_template the clients move, and stay: {moved:?}"
    );
}

#[test]
fn header_and_cookie_learn_engines_pin_their_keys() {
    require!("nginx", "curl");
    let dir = tempdir("pe-header");
    // The application sets its own session cookie on every answer.
    let _ng = abc(
        dir.path(),
        81,
        r#"add_header Set-Cookie "JSESSIONID={name}$request_id; Path=/";"#,
    );
    // header:X-User-Id through keepalived.conf's persistence_engine.
    let conf = "virtual_server 127.77.81.1 8080 {\n  lb_algo rr\n  lb_kind NAT\n  \
                protocol TCP\n  persistence_timeout 60\n  persistence_engine header:X-User-Id\n  \
                real_server 127.77.81.11 8080 {\n  }\n  real_server 127.77.81.12 8080 {\n  }\n  \
                real_server 127.77.81.13 8080 {\n  }\n}\n\
                virtual_server 127.77.81.1 8081 {\n  lb_algo rr\n  lb_kind NAT\n  \
                protocol TCP\n  persistence_timeout 60\n  persistence_engine cookie-learn:JSESSIONID\n  \
                real_server 127.77.81.11 8080 {\n  }\n  real_server 127.77.81.12 8080 {\n  }\n  \
                real_server 127.77.81.13 8080 {\n  }\n}\n";
    let d = start_keepalived(dir.path(), conf, &[]);
    let url = "http://127.77.81.1:8080/";
    assert!(
        wait_until(5 * SEC, Duration::from_millis(50), || curl_get(url)
            .is_some()),
        "service up:\n{}",
        d.log_text()
    );
    let mut by_user = Vec::new();
    for user in ["alice", "bob", "carol", "dave"] {
        let h = format!("X-User-Id: {user}");
        let mut args = vec!["-H", h.as_str()];
        args.extend(std::iter::repeat_n(url, 12));
        let got = served(&args);
        assert_eq!(distinct(&got), 1, "{user} on one server: {got:?}");
        // and on new connections too
        let again = served(&["-H", &h, "-H", "Connection: close", url]);
        assert_eq!(again[0], got[0]);
        by_user.push(got[0].clone());
    }
    assert!(distinct(&by_user) >= 2, "users spread: {by_user:?}");
    let no_header: Vec<&str> = std::iter::repeat_n(url, 3).collect();
    assert_eq!(distinct(&served(&no_header)), 3, "no header: scheduled");

    // cookie-learn: the session the application set keeps the client on its server.
    let url = "http://127.77.81.1:8081/";
    let jar = dir.path().join("jar");
    let jar = jar.to_str().unwrap();
    let mut args = vec!["-c", jar, "-b", jar];
    args.extend(std::iter::repeat_n(url, 30));
    let got = served(&args);
    assert_eq!(distinct(&got), 1, "learnt session on one server: {got:?}");
    for _ in 0..3 {
        let again = served(&["-c", jar, "-b", jar, "-H", "Connection: close", url]);
        assert_eq!(again[0], got[0]);
    }
    let bare: Vec<&str> = std::iter::repeat_n(url, 3).collect();
    assert_eq!(distinct(&served(&bare)), 3, "no session: scheduled");
    let lnc = d.ok(&["-Lnc", "--persistent-conn"]);
    assert!(
        lnc.contains("header:X-User-Id") && lnc.contains("alice"),
        "header templates listed:\n{lnc}"
    );
    assert!(
        lnc.contains("cookie-learn:JSESSIONID")
            && lnc.contains(&format!("JSESSIONID={}", got[0])[11..]),
        "learnt templates listed:\n{lnc}"
    );
}

/// A self-signed certificate and key in `dir` (cert.pem holds both, for socat).
fn certificate(dir: &std::path::Path) -> String {
    let pem = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=rvs-test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&pem)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let both = format!(
        "{}{}",
        std::fs::read_to_string(&pem).unwrap(),
        std::fs::read_to_string(&key).unwrap()
    );
    std::fs::write(&pem, both).unwrap();
    pem.display().to_string()
}

/// What the TLS server at `vip` says to a ClientHello naming `name`.
fn tls_hello(vip: &str, name: &str) -> String {
    let out = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-quiet", "-connect", vip])
        .args(["-servername", name])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            if let Some(mut i) = c.stdin.take() {
                i.write_all(b"hello\n")?;
            }
            c.wait_with_output()
        })
        .expect("run openssl s_client");
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if said.is_empty() {
        eprintln!("s_client {name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    said
}

#[test]
fn sni_engine_pins_server_names_without_decrypting() {
    require!("socat", "openssl", "timeout");
    let dir = tempdir("pe-sni");
    let cert = certificate(dir.path());
    let _servers: Vec<Proc> = ["A", "B", "C"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut c = Command::new("socat");
            c.arg(format!(
                "OPENSSL-LISTEN:8443,bind=127.77.82.{},reuseaddr,fork,cert={cert},verify=0",
                11 + i
            ))
            // The server reads the client's line before it answers and closes: a server that
            // closes with unread bytes resets the connection, and a reset may overtake the
            // answer (the proxy forwards it as a reset, as it must).
            .arg(format!("SYSTEM:read l; echo {n}"));
            Proc::spawn("socat", c)
        })
        .collect();
    for i in 11..=13 {
        let a = format!("127.77.82.{i}:8443");
        assert!(
            wait_until(5 * SEC, Duration::from_millis(50), || TcpStream::connect(
                &a
            )
            .is_ok()),
            "socat on {a}"
        );
    }
    let d = start_rvsd(dir.path(), &[]);
    d.ok(&[
        "-A",
        "-t",
        "127.77.82.1:443",
        "-s",
        "rr",
        "-p",
        "60",
        "--pe",
        "sni",
    ]);
    for i in 11..=13 {
        d.ok(&[
            "-a",
            "-t",
            "127.77.82.1:443",
            "-r",
            &format!("127.77.82.{i}:8443"),
            "-m",
        ]);
    }
    let vip = "127.77.82.1:443";
    let mut first = Vec::new();
    for name in ["a.example", "b.example", "c.example"] {
        let got: Vec<String> = (0..4).map(|_| tls_hello(vip, name)).collect();
        assert!(
            got.iter().all(|g| !g.is_empty()),
            "answers for {name}: {got:?}"
        );
        assert_eq!(distinct(&got), 1, "{name} on one server: {got:?}");
        first.push(got[0].clone());
    }
    assert_eq!(
        distinct(&first),
        3,
        "three names, three servers (rr): {first:?}"
    );
    // Case and a trailing dot do not make another name.
    assert_eq!(tls_hello(vip, "A.EXAMPLE"), first[0]);
    // Not TLS: closed, counted.
    let mut s = TcpStream::connect(vip).unwrap();
    s.set_read_timeout(Some(5 * SEC)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.is_empty(), "nothing relayed for non-TLS bytes: {buf:?}");
}

/// A SIP real server on `addr` (UDP): answers every datagram with `name` and the Call-ID.
fn sip_server(addr: &str, name: &str) -> Proc {
    let (host, port) = addr.split_once(':').unwrap();
    let script = format!(
        "import socket,re\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.bind(('{host}',{port}))\n\
         while True:\n\
         \x20 d,a=s.recvfrom(65535)\n\
         \x20 m=re.search(rb'\\r\\nCall-ID: *([^\\r]*)',d)\n\
         \x20 s.sendto(b'{name} '+(m.group(1) if m else b'-'),a)\n"
    );
    let mut c = Command::new("python3");
    c.args(["-c", &script]);
    Proc::spawn("sip-server", c)
}

fn invite(call_id: &str) -> Vec<u8> {
    format!(
        "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33.example.com\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn sip_over_udp_through_the_proxy_keeps_a_call_on_one_server() {
    require!("python3");
    let dir = tempdir("pe-sip");
    let _servers: Vec<Proc> = ["A", "B", "C"]
        .iter()
        .enumerate()
        .map(|(i, n)| sip_server(&format!("127.77.83.{}:5060", 11 + i), n))
        .collect();
    let d = start_rvsd(dir.path(), &[]);
    d.ok(&[
        "-A",
        "-u",
        "127.77.83.1:5060",
        "-s",
        "rr",
        "-p",
        "60",
        "--pe",
        "sip",
    ]);
    for i in 11..=13 {
        d.ok(&[
            "-a",
            "-u",
            "127.77.83.1:5060",
            "-r",
            &format!("127.77.83.{i}:5060"),
            "-m",
        ]);
    }
    let ask = |call: &str| -> Option<String> {
        // A new client socket (new source port) per message: only the Call-ID can keep the
        // call together.
        // 5 s: the answer comes from a python3 process that, when the whole suite runs on a
        // loaded machine, can wait longer than half a second for a CPU (a late answer is not
        // a lost one; a lost one still fails after 5 s).
        let s = UdpSocket::bind("127.77.83.101:0").unwrap();
        s.set_read_timeout(Some(5 * SEC)).unwrap();
        s.send_to(&invite(call), "127.77.83.1:5060").unwrap();
        let mut b = [0u8; 512];
        let n = s.recv(&mut b).ok()?;
        Some(String::from_utf8_lossy(&b[..n]).into_owned())
    };
    // The servers need a moment to bind: retry the first message (bounded).
    assert!(
        wait_until(20 * SEC, Duration::from_millis(100), || ask("warmup@x")
            .is_some()),
        "SIP through the proxy (a datagram without payload to the scheduler drops them all)"
    );
    let mut servers = Vec::new();
    for call in ["call-1@pc33", "call-2@pc33", "call-3@pc33"] {
        let got: Vec<String> = (0..6).map(|_| ask(call).expect("answer")).collect();
        assert_eq!(distinct(&got), 1, "{call} on one server: {got:?}");
        assert!(got[0].ends_with(call), "{got:?}");
        servers.push(got[0].split(' ').next().unwrap().to_string());
    }
    assert!(distinct(&servers) >= 2, "calls spread: {servers:?}");
    // No Call-ID: dropped, as by the kernel's engine.
    // 2 s, not less: a slow answer must not pass for a dropped one.
    let s = UdpSocket::bind("127.77.83.102:0").unwrap();
    s.set_read_timeout(Some(2 * SEC)).unwrap();
    s.send_to(b"OPTIONS sip:x SIP/2.0\r\n\r\n", "127.77.83.1:5060")
        .unwrap();
    assert!(s.recv(&mut [0u8; 64]).is_err(), "no Call-ID, no answer");
    let lnc = d.ok(&["-Lnc", "--persistent-conn"]);
    assert!(lnc.contains("sip") && lnc.contains("call-1@pc33"), "{lnc}");
}

/// Read HTTP responses from `s` until `n` complete ones (Content-Length framed) arrived.
fn read_responses(s: &mut TcpStream, n: usize) -> Vec<(u16, String)> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while out.len() < n {
        let m = s.read(&mut chunk).unwrap_or(0);
        if m == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..m]);
        loop {
            let text = String::from_utf8_lossy(&buf).into_owned();
            let Some(end) = text.find("\r\n\r\n") else {
                break;
            };
            let head = &text[..end];
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() < end + 4 + len {
                break;
            }
            let status = head[9..12].parse().unwrap();
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
            out.push((status, body));
            buf.drain(..end + 4 + len);
        }
    }
    out
}

#[test]
fn http_engines_handle_pipelining_limits_and_foreign_bytes() {
    require!("nginx", "curl");
    let dir = tempdir("pe-http");
    let _ng = abc(dir.path(), 84, "");
    let d = service(
        dir.path(),
        84,
        "header:X-User-Id",
        &["--metrics-listen", "127.77.84.1:9760"],
    );
    let vip = "127.77.84.1:8080";
    let connect = || {
        let s = TcpStream::connect(vip).unwrap();
        s.set_read_timeout(Some(5 * SEC)).unwrap();
        s
    };

    // Pipelining: five requests in one write, answered in order, each routed by its own key.
    let mut s = connect();
    let mut reqs = String::new();
    for u in ["u1", "u2", "u1", "u3", "u1"] {
        reqs += &format!("GET / HTTP/1.1\r\nHost: x\r\nX-User-Id: {u}\r\n\r\n");
    }
    s.write_all(reqs.as_bytes()).unwrap();
    let got = read_responses(&mut s, 5);
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(got.iter().all(|(st, _)| *st == 200));
    assert_eq!(got[0].1, got[2].1);
    assert_eq!(got[0].1, got[4].1);
    assert_ne!(got[0].1, got[1].1, "u2 scheduled to the next server (rr)");

    // A body on a keep-alive connection (Content-Length and chunked), then another request.
    let mut s = connect();
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nX-User-Id: u1\r\nContent-Length: 5\r\n\r\nhello\
          POST / HTTP/1.1\r\nHost: x\r\nX-User-Id: u1\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n\
          GET / HTTP/1.1\r\nHost: x\r\nX-User-Id: u1\r\n\r\n",
    )
    .unwrap();
    let got = read_responses(&mut s, 3);
    assert_eq!(got.len(), 3, "{got:?}");

    // Oversized head: 431, then close.
    let mut s = connect();
    let mut big = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        big += &format!("X-Filler-{i}: {}\r\n", "v".repeat(20));
    }
    big += "\r\n";
    s.write_all(big.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");
    let mut s = connect();
    let _ = s.write_all(format!("GET /{} HTTP/1.1\r\n", "a".repeat(40 * 1024)).as_bytes());
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");

    // Not HTTP: closed without an answer, counted.
    let mut s = connect();
    s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{answer:?}");
    // Smuggling shape: 400.
    let mut s = connect();
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");

    let metrics = curl_ok(&["http://127.77.84.1:9760/metrics"]);
    for (reason, n) in [("head_too_large", 2), ("not_http", 1), ("bad_request", 1)] {
        let line = format!("rvs_proxy_pe_rejected_total{{reason=\"{reason}\"}} {n}");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }

    // Engines that need the socket proxy are refused where they cannot work, by name.
    let a = d.adm(&["-A", "-t", "127.77.84.1:9000", "-s", "rr", "--pe", "cookie"]);
    assert_ne!(a.code, 0);
    assert!(
        a.err.contains("cookie:RVSID") && a.err.contains("-p"),
        "{}",
        a.err
    );
    let a = d.adm(&[
        "-A",
        "-u",
        "127.77.84.1:9000",
        "-s",
        "rr",
        "-p",
        "--pe",
        "sni",
    ]);
    assert_ne!(a.code, 0);
    assert!(a.err.contains("sni") && a.err.contains("TCP"), "{}", a.err);
    let a = d.adm(&[
        "-A",
        "-t",
        "127.77.84.1:9000",
        "-p",
        "--pe",
        "cookie:bad name",
    ]);
    assert_ne!(a.code, 0);
}

/// rvsd with a `cookie` rr service on 127.77.`net`.1:8080 over `servers` (masquerading).
fn cookie_service(dir: &std::path::Path, net: u8, servers: &[&CountingHttp]) -> Rvsd {
    let d = start_rvsd(dir, &["--workers", "1"]);
    let vip = format!("127.77.{net}.1:8080");
    d.ok(&["-A", "-t", &vip, "-s", "rr", "-p", "60", "--pe", "cookie"]);
    for s in servers {
        d.ok(&["-a", "-t", &vip, "-r", &s.addr().to_string(), "-m"]);
    }
    d
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

#[test]
fn cookie_relay_reuses_idle_server_connections() {
    require!("curl");
    let dir = tempdir("pe-reuse");
    let servers: Vec<CountingHttp> = (11..=13)
        .zip(["A", "B", "C"])
        .map(|(i, n)| {
            CountingHttp::start(
                &format!("127.77.86.{i}:8080"),
                n,
                counting_http::Mode::KeepAlive(30 * SEC),
            )
        })
        .collect();
    let _d = cookie_service(dir.path(), 86, &servers.iter().collect::<Vec<_>>());
    let url = "http://127.77.86.1:8080/";
    let urls: Vec<&str> = std::iter::repeat_n(url, 30).collect();

    // No cookie: every request is scheduled on its own (rr), so consecutive requests of one
    // client connection go to different servers; two client connections one after the other.
    let mut seen = served(&urls);
    seen.extend(served(&urls));
    assert_eq!(seen.len(), 60);
    let names: Vec<&str> = seen.iter().map(|l| &l[..1]).collect();
    assert!(
        names.windows(2).all(|w| w[0] != w[1]),
        "rr alternates: {seen:?}"
    );
    let requests: u64 = servers.iter().map(CountingHttp::requests).sum();
    let connections: u64 = servers.iter().map(CountingHttp::connections).sum();
    assert_eq!(requests, 60);
    // One server connection per real server, reused by every later request routed to it
    // (also from the second client connection); without reuse there is one per request.
    assert_eq!(
        connections, 3,
        "server connections for 60 requests: {seen:?}"
    );
    assert_eq!(distinct(&seen), 3, "{seen:?}");
}

#[test]
fn a_server_connection_the_server_closed_while_idle_is_retried_on_a_new_one() {
    let dir = tempdir("pe-stale");
    // The server closes a connection 300 ms after its last response.
    let a = CountingHttp::start(
        "127.77.87.11:8080",
        "A",
        counting_http::Mode::KeepAlive(Duration::from_millis(300)),
    );
    let _d = cookie_service(dir.path(), 87, &[&a]);
    let connect = || {
        let s = TcpStream::connect("127.77.87.1:8080").unwrap();
        s.set_read_timeout(Some(5 * SEC)).unwrap();
        s
    };
    // The connection kept for this client connection is closed by the server between two
    // requests of the client.
    let mut s = connect();
    s.write_all(get("/1").as_bytes()).unwrap();
    assert_eq!(read_responses(&mut s, 1), [(200, "A 1\n".to_string())]);
    std::thread::sleep(Duration::from_millis(900));
    s.write_all(get("/2").as_bytes()).unwrap();
    assert_eq!(
        read_responses(&mut s, 1),
        [(200, "A 2\n".to_string())],
        "the request after the server's idle close"
    );
    drop(s);
    // The client left: its server connection is parked, and closed by the server before the
    // next client's request takes it.
    std::thread::sleep(Duration::from_millis(900));
    let mut s = connect();
    s.write_all(get("/3").as_bytes()).unwrap();
    assert_eq!(
        read_responses(&mut s, 1),
        [(200, "A 3\n".to_string())],
        "the request on a parked connection the server closed"
    );
    assert_eq!((a.connections(), a.requests()), (3, 3));
}

#[test]
fn connection_close_from_a_real_server_is_honoured() {
    require!("curl");
    let dir = tempdir("pe-close");
    // Every response says `Connection: close`, but the server keeps the socket open and
    // counts any request sent on it afterwards.
    let a = CountingHttp::start("127.77.88.11:8080", "A", counting_http::Mode::Close);
    let _d = cookie_service(dir.path(), 88, &[&a]);
    let url = "http://127.77.88.1:8080/";
    let urls: Vec<&str> = std::iter::repeat_n(url, 10).collect();
    let seen = served(&urls);
    assert_eq!(seen.len(), 10, "{seen:?}");
    // And from another client connection while the previous server connections are still
    // open at the server.
    let seen2 = served(&urls[..3]);
    assert_eq!(seen2.len(), 3, "{seen2:?}");
    assert_eq!(
        a.requests_after_close(),
        0,
        "a request after Connection: close"
    );
    assert_eq!(a.connections(), 13);
}
