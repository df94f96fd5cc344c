//! Test fixtures: a round-robin Balancer that records everything, and small loopback servers.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvs_proxy::{
    Backend, Balancer, FlowEvent, FlowHandle, FlowInfo, IdleLimits, KernelSplice, Proxy,
    ProxyConfig, ProxyProtocol, Refusal, Traffic,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Every await in tests is bounded by this.
pub const T: Duration = Duration::from_secs(20);

pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(T, f)
        .await
        .expect("test step timed out")
}

/// Round-robin over `backends`, recording opens, reschedules and events.
pub struct RrBalancer {
    pub backends: Vec<SocketAddr>,
    next: AtomicUsize,
    handles: AtomicU64,
    pub refuse: AtomicBool,
    pub proxy_protocol: ProxyProtocol,
    pub udp_idle: Duration,
    pub one_packet: bool,
    pub source: Option<IpAddr>,
    pub tcp_idle: Option<Duration>,
    pub tcp_fin: Option<Duration>,
    pub opens: Mutex<Vec<(FlowInfo, Backend)>>,
    pub reschedules: Mutex<Vec<(FlowInfo, Backend)>>,
    pub events: Mutex<Vec<(FlowHandle, FlowEvent)>>,
    /// What `limits` answers (as after an `ipvsadm --set`); `None` keeps the open-time limits.
    pub limits: Mutex<Option<IdleLimits>>,
}

impl RrBalancer {
    pub fn new(backends: Vec<SocketAddr>) -> Self {
        RrBalancer {
            backends,
            next: AtomicUsize::new(0),
            handles: AtomicU64::new(1),
            refuse: AtomicBool::new(false),
            proxy_protocol: ProxyProtocol::Off,
            udp_idle: Duration::from_secs(300),
            one_packet: false,
            source: None,
            tcp_idle: None,
            tcp_fin: None,
            opens: Mutex::new(Vec::new()),
            reschedules: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
            limits: Mutex::new(None),
        }
    }

    fn pick(&self) -> Backend {
        let i = self.next.fetch_add(1, SeqCst) % self.backends.len();
        let mut b = Backend::new(
            self.backends[i],
            FlowHandle(self.handles.fetch_add(1, SeqCst)),
        );
        b.proxy_protocol = self.proxy_protocol;
        b.udp_idle_timeout = self.udp_idle;
        b.one_packet = self.one_packet;
        b.source = self.source;
        b.tcp_idle_timeout = self.tcp_idle;
        b.tcp_fin_timeout = self.tcp_fin;
        b
    }

    /// Events of one handle, in order.
    pub fn events_of(&self, h: FlowHandle) -> Vec<FlowEvent> {
        let ev = self.events.lock().unwrap();
        ev.iter()
            .filter(|(x, _)| *x == h)
            .map(|(_, e)| *e)
            .collect()
    }

    /// Sum of the Traffic events of one handle.
    pub fn traffic_of(&self, h: FlowHandle) -> Traffic {
        let mut t = Traffic::default();
        for e in self.events_of(h) {
            if let FlowEvent::Traffic(x) = e {
                t.in_packets += x.in_packets;
                t.in_bytes += x.in_bytes;
                t.out_packets += x.out_packets;
                t.out_bytes += x.out_bytes;
            }
        }
        t
    }

    pub fn is_closed(&self, h: FlowHandle) -> bool {
        self.events_of(h)
            .iter()
            .any(|e| matches!(e, FlowEvent::Closed(_)))
    }

    /// Waits (bounded) until handle `h` has its Closed event.
    pub async fn wait_closed(&self, h: FlowHandle) {
        within(async {
            while !self.is_closed(h) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
    }

    pub fn opened(&self) -> Vec<(FlowInfo, Backend)> {
        self.opens.lock().unwrap().clone()
    }
}

impl Balancer for RrBalancer {
    fn open(&self, flow: &FlowInfo) -> Result<Backend, Refusal> {
        if self.refuse.load(SeqCst) {
            return Err(Refusal::NoDestination);
        }
        let b = self.pick();
        self.opens.lock().unwrap().push((*flow, b));
        Ok(b)
    }

    fn reschedule(&self, flow: &FlowInfo, failed: &Backend) -> Option<Backend> {
        let mut b = self.pick();
        if b.addr == failed.addr {
            b = self.pick();
        }
        if b.addr == failed.addr {
            return None;
        }
        self.reschedules.lock().unwrap().push((*flow, b));
        Some(b)
    }

    fn event(&self, handle: FlowHandle, ev: FlowEvent) {
        self.events.lock().unwrap().push((handle, ev));
    }

    fn limits(&self, _handle: FlowHandle) -> Option<IdleLimits> {
        *self.limits.lock().unwrap()
    }
}

/// A port on `ip` that is free right now (each test uses its own 127.0.0.x, so no races).
pub fn free_port(ip: &str) -> SocketAddr {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    let u = std::net::UdpSocket::bind(l.local_addr().unwrap());
    drop(l);
    match u {
        Ok(u) => u.local_addr().unwrap(),
        Err(_) => free_port(ip),
    }
}

/// Kernel splicing mode of every proxy these tests start: `RVS_TEST_PROXY_SPLICE=on|off|auto`
/// (unset: off, the daemon's default). The suite runs once as it is and once with `on`
/// (scripts/test), so every test covers both relays; `on` needs root (BPF).
pub fn splice_mode() -> KernelSplice {
    let mode = match std::env::var("RVS_TEST_PROXY_SPLICE") {
        Ok(v) => KernelSplice::parse(&v)
            .unwrap_or_else(|| panic!("RVS_TEST_PROXY_SPLICE={v}: expected on, off or auto")),
        Err(_) => KernelSplice::Off,
    };
    if mode == KernelSplice::On {
        rvs_require::root();
    }
    mode
}

/// The proxy configuration of the tests: the defaults, with [`splice_mode`].
/// Spliced flows are handed to the kernel at connect (`kernel_splice_after: 0`), so that every
/// flow of every test takes the kernel path; the hand-off after a few reads has its own test.
pub fn config() -> ProxyConfig {
    ProxyConfig {
        kernel_splice: splice_mode(),
        kernel_splice_after: 0,
        ..ProxyConfig::default()
    }
}

pub fn start_proxy(b: Arc<RrBalancer>, workers: usize) -> Proxy {
    let cfg = ProxyConfig {
        workers,
        connect_timeout: Duration::from_secs(2),
        ..config()
    };
    Proxy::start(cfg, b).unwrap()
}

/// HTTP-like server: reads one request (until a blank line), answers with its name, closes.
pub async fn name_server(addr: &str, name: &'static str) -> SocketAddr {
    let l = TcpListener::bind(addr).await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = format!("HTTP/1.0 200 OK\r\n\r\n{name}");
                let _ = s.write_all(body.as_bytes()).await;
            });
        }
    });
    a
}

/// Echo server: writes back everything, half-closes when the client does.
pub async fn echo_server(addr: &str) -> SocketAddr {
    let l = TcpListener::bind(addr).await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    a
}

/// One request through the proxy: send a request, read the whole answer.
pub async fn get(vip: SocketAddr) -> String {
    within(async {
        let mut s = TcpStream::connect(vip).await.unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    })
    .await
}

/// UDP echo: answers every datagram with `name:` + payload.
pub async fn udp_name_echo(addr: &str, name: &'static str) -> SocketAddr {
    let s = UdpSocket::bind(addr).await.unwrap();
    let a = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, peer)) = s.recv_from(&mut buf).await else {
                return;
            };
            let mut out = format!("{name}:").into_bytes();
            out.extend_from_slice(&buf[..n]);
            let _ = s.send_to(&out, peer).await;
        }
    });
    a
}

/// Deterministic test data (xorshift), so corruption and reordering are both caught.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
