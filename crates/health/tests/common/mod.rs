//! Shared helpers for the integration tests: loopback servers, config builders, bounded waits.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvs_health::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn vs_key() -> VsKey {
    VsKey::Addr {
        protocol: Protocol::Tcp,
        addr: "10.0.0.1:80".parse().unwrap(),
    }
}

pub fn timing(delay_loop_ms: u64, retry: u32, dbr_ms: u64) -> CheckerTiming {
    CheckerTiming {
        delay_loop: Duration::from_millis(delay_loop_ms),
        connect_timeout: Duration::from_millis(500),
        retry,
        delay_before_retry: Duration::from_millis(dbr_ms),
        warmup: Duration::ZERO,
    }
}

pub fn checker(kind: CheckKind, timing: CheckerTiming) -> CheckerConfig {
    CheckerConfig {
        kind,
        timing,
        alpha: false,
        log_all_failures: true,
    }
}

pub fn real_server(addr: SocketAddr, weight: u32, checkers: Vec<CheckerConfig>) -> RealServerCheck {
    RealServerCheck {
        addr,
        weight,
        inhibit_on_failure: false,
        notify_up: None,
        notify_down: None,
        checkers,
    }
}

pub fn virtual_server(rss: Vec<RealServerCheck>) -> VirtualServerCheck {
    VirtualServerCheck {
        key: vs_key(),
        quorum: 1,
        hysteresis: 0,
        quorum_up: None,
        quorum_down: None,
        sorry_server: None,
        omega: false,
        suspended: false,
        real_servers: rss,
    }
}

pub fn opts(startup: Duration) -> EngineOptions {
    EngineOptions {
        startup_delay: startup,
        random: Arc::new(Fixed(0)),
        ..EngineOptions::default()
    }
}

/// Receive the next action within [`WAIT`], skipping `Notify`.
pub async fn next_action(rx: &mut mpsc::Receiver<Action>) -> Action {
    loop {
        let a = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("timed out waiting for an action")
            .expect("engine closed the channel");
        if !matches!(a, Action::Notify(_)) {
            return a;
        }
    }
}

/// Receive actions (skipping `Notify`) until one matches `pred`, within [`WAIT`]; returns
/// everything received, the matching one last.
pub async fn until(rx: &mut mpsc::Receiver<Action>, pred: impl Fn(&Action) -> bool) -> Vec<Action> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let a = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out; got so far: {got:?}"))
            .expect("engine closed the channel");
        let hit = pred(&a);
        got.push(a);
        if hit {
            return got;
        }
    }
}

pub fn is_add(a: &Action, dest: SocketAddr) -> bool {
    matches!(a, Action::AddDest { dest: d, .. } if *d == dest)
}

pub fn is_remove(a: &Action, dest: SocketAddr) -> bool {
    matches!(a, Action::RemoveDest { dest: d, .. } if *d == dest)
}

/// A handler for the HTTP test server: path → (status, body). Requests are recorded.
pub type Handler = Arc<dyn Fn(&str) -> (u16, Vec<u8>) + Send + Sync>;

/// An HTTP/1.0 server on 127.0.0.1 that records every request's raw bytes.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<String>>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 || buf.len() > 65536 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn response(status: u16, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.0 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn path_of(req: &str) -> String {
    req.split_whitespace().nth(1).unwrap_or("").to_string()
}

pub async fn http_server(ip: &str, handler: Handler) -> HttpServer {
    let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let reqs = requests.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let reqs = reqs.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                if let Some(req) = read_request(&mut s).await {
                    let (status, body) = handler(&path_of(&req));
                    reqs.lock().unwrap().push(req);
                    let _ = s.write_all(&response(status, &body)).await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    HttpServer {
        addr,
        requests,
        task,
    }
}

/// A TLS (self-signed, generated here) HTTP server; records the SNI of each connection.
pub struct TlsServer {
    pub addr: SocketAddr,
    pub sni: Arc<Mutex<Vec<Option<String>>>>,
    pub requests: Arc<Mutex<Vec<String>>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn tls_server(ip: &str, body: &'static [u8]) -> TlsServer {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck = rcgen::generate_simple_self_signed(vec!["rs.example".to_string()]).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sni = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (sni2, reqs2) = (sni.clone(), requests.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let (sni, reqs) = (sni2.clone(), reqs2.clone());
            tokio::spawn(async move {
                let Ok(Ok(mut tls)) = tokio::time::timeout(WAIT, acceptor.accept(s)).await else {
                    return;
                };
                sni.lock()
                    .unwrap()
                    .push(tls.get_ref().1.server_name().map(str::to_string));
                if let Some(req) = read_request(&mut tls).await {
                    reqs.lock().unwrap().push(req);
                    let _ = tls.write_all(&response(200, body)).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    TlsServer {
        addr,
        sni,
        requests,
        task,
    }
}

/// A minimal SMTP server: banner, HELO → 250 (or `helo_code`), QUIT → 221. Records lines.
pub async fn smtp_server(
    ip: &str,
    helo_code: u16,
) -> (
    SocketAddr,
    Arc<Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l2 = lines.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let lines = l2.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = s.into_split();
                let mut rd = BufReader::new(rd);
                let _ = wr.write_all(b"220-rvs test\r\n220 ready\r\n").await;
                for _ in 0..4 {
                    let mut line = String::new();
                    match tokio::time::timeout(WAIT, rd.read_line(&mut line)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return,
                    }
                    let l = line.trim_end().to_string();
                    lines.lock().unwrap().push(l.clone());
                    if l.starts_with("HELO ") {
                        let _ = wr
                            .write_all(format!("{helo_code} hello\r\n").as_bytes())
                            .await;
                    } else if l == "QUIT" {
                        let _ = wr.write_all(b"221 bye\r\n").await;
                        return;
                    }
                }
            });
        }
    });
    (addr, lines, task)
}

/// A DNS-like UDP responder: answers every query with the same id, QR set and `rcode`;
/// `wrong_id` answers with another id first. Records each query's (qname bytes, qtype).
pub async fn dns_server(
    ip: &str,
    rcode: u8,
    wrong_id: bool,
) -> (
    SocketAddr,
    Arc<Mutex<Vec<Vec<u8>>>>,
    tokio::task::JoinHandle<()>,
) {
    let sock = UdpSocket::bind(format!("{ip}:0")).await.unwrap();
    let addr = sock.local_addr().unwrap();
    let queries = Arc::new(Mutex::new(Vec::new()));
    let q2 = queries.clone();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            if n < 12 {
                continue;
            }
            q2.lock().unwrap().push(buf[..n].to_vec());
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80; // QR
            reply[3] = (reply[3] & 0xf0) | rcode;
            if wrong_id {
                let mut other = reply.clone();
                other[0] ^= 0xff;
                let _ = sock.send_to(&other, peer).await;
            }
            let _ = sock.send_to(&reply, peer).await;
        }
    });
    (addr, queries, task)
}

/// A UDP server that replies `reply` to every datagram (or stays silent if `None`).
pub async fn udp_server(
    ip: &str,
    reply: Option<Vec<u8>>,
) -> (
    SocketAddr,
    Arc<Mutex<Vec<Vec<u8>>>>,
    tokio::task::JoinHandle<()>,
) {
    let sock = UdpSocket::bind(format!("{ip}:0")).await.unwrap();
    let addr = sock.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g2 = got.clone();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            g2.lock().unwrap().push(buf[..n].to_vec());
            if let Some(r) = &reply {
                let _ = sock.send_to(r, peer).await;
            }
        }
    });
    (addr, got, task)
}

/// A local port that nothing listens on (bound then released).
pub async fn closed_tcp_port(ip: &str) -> SocketAddr {
    let l = std::net::TcpListener::bind(format!("{ip}:0")).unwrap();
    l.local_addr().unwrap()
}

pub async fn closed_udp_port(ip: &str) -> SocketAddr {
    let s = std::net::UdpSocket::bind(format!("{ip}:0")).unwrap();
    s.local_addr().unwrap()
}

/// Write an executable shell script into `dir`.
pub fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.to_string_lossy().into_owned()
}

/// Apply actions like a daemon would for commands: run `RunCommand`s and wait for them, and
/// keep a map of installed destinations → weight.
#[derive(Default, Debug)]
pub struct Table {
    pub dests: HashMap<SocketAddr, u32>,
}

impl Table {
    pub async fn apply(&mut self, a: &Action) {
        match a {
            Action::AddDest { dest, weight, .. } | Action::SetWeight { dest, weight, .. } => {
                self.dests.insert(*dest, *weight);
            }
            Action::RemoveDest { dest, .. } | Action::DrainDest { dest, .. } => {
                self.dests.remove(dest);
            }
            Action::RunCommand(c) => {
                let st = tokio::time::timeout(WAIT, run_command(c))
                    .await
                    .unwrap()
                    .unwrap();
                assert!(st.success(), "command {c:?} failed: {st}");
            }
            Action::Notify(_) => {}
        }
    }
}
