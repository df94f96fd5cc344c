//! Loopback throughput of one proxy worker against an in-process backend.
//!
//! Measures, each for a fixed time: new connections per second (request/response/close, like
//! `Connection: close`), keep-alive requests per second, and bulk MB/s (server → client) with
//! splice on and off. Client, backend and proxy worker each run on their own thread.
//!
//! Run: `cargo run --release -p rvs-proxy --example throughput [seconds-per-case]`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_proxy::{
    Backend, Balancer, FlowEvent, FlowHandle, FlowInfo, ListenerSpec, Protocol, Proxy, ProxyConfig,
    Refusal,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
const RESPONSE_BODY: usize = 100;

/// One fixed backend; counts events so the work a real balancer would see is not optimised away.
struct OneBackend {
    addr: SocketAddr,
    next: AtomicU64,
    events: AtomicU64,
}

impl Balancer for OneBackend {
    fn open(&self, _flow: &FlowInfo) -> Result<Backend, Refusal> {
        Ok(Backend::new(
            self.addr,
            FlowHandle(self.next.fetch_add(1, Relaxed)),
        ))
    }
    fn reschedule(&self, _flow: &FlowInfo, _failed: &Backend) -> Option<Backend> {
        None
    }
    fn event(&self, _handle: FlowHandle, _ev: FlowEvent) {
        self.events.fetch_add(1, Relaxed);
    }
}

fn response() -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {RESPONSE_BODY}\r\n\r\n").into_bytes();
    r.resize(r.len() + RESPONSE_BODY, b'x');
    r
}

/// Backend: answers every request on a connection (keep-alive); on the `/bulk` port it
/// streams data until the client goes away.
async fn backend(http: TcpListener, bulk: TcpListener) {
    tokio::task::spawn_local(async move {
        loop {
            let Ok((mut s, _)) = bulk.accept().await else {
                return;
            };
            tokio::task::spawn_local(async move {
                let chunk = vec![7u8; 256 * 1024];
                while s.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    let resp: &'static [u8] = Box::leak(response().into_boxed_slice());
    loop {
        let Ok((mut s, _)) = http.accept().await else {
            return;
        };
        let _ = s.set_nodelay(true);
        tokio::task::spawn_local(async move {
            let mut buf = [0u8; 1024];
            let mut have = 0;
            loop {
                match s.read(&mut buf[have..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => have += n,
                }
                while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                    if s.write_all(resp).await.is_err() {
                        return;
                    }
                    buf.copy_within(end + 4..have, 0);
                    have -= end + 4;
                }
            }
        });
    }
}

async fn read_response(s: &mut TcpStream, want: usize, buf: &mut [u8]) -> bool {
    let mut got = 0;
    while got < want {
        match s.read(buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    true
}

/// `conc` clients each: connect, request, read the response, close; for `secs`.
async fn conns_per_sec(vip: SocketAddr, conc: usize, secs: f64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let want = response().len();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let done = done.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 4096];
            while Instant::now() < end {
                let Ok(mut s) = TcpStream::connect(vip).await else {
                    continue;
                };
                if s.write_all(REQUEST).await.is_err() {
                    continue;
                }
                if read_response(&mut s, want, &mut buf).await {
                    done.fetch_add(1, Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Relaxed) as f64 / secs
}

/// `conc` keep-alive connections sending requests back to back, for `secs`.
async fn requests_per_sec(vip: SocketAddr, conc: usize, secs: f64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let want = response().len();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let done = done.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 4096];
            let mut s = TcpStream::connect(vip).await.expect("connect");
            s.set_nodelay(true).expect("nodelay");
            while Instant::now() < end {
                s.write_all(REQUEST).await.expect("write");
                assert!(read_response(&mut s, want, &mut buf).await);
                done.fetch_add(1, Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Relaxed) as f64 / secs
}

/// One connection reading the backend's stream for `secs`: MB/s (10^6 bytes).
async fn bulk_mb_per_sec(vip: SocketAddr, secs: f64) -> f64 {
    let mut s = TcpStream::connect(vip).await.expect("connect");
    let mut buf = vec![0u8; 256 * 1024];
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut total = 0u64;
    while Instant::now() < end {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n as u64,
        }
    }
    total as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn local_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);

    // Backend thread.
    let http = std::net::TcpListener::bind("127.0.0.201:0").expect("bind backend");
    let bulk = std::net::TcpListener::bind("127.0.0.201:0").expect("bind backend");
    let (http_addr, bulk_addr) = (http.local_addr().unwrap(), bulk.local_addr().unwrap());
    http.set_nonblocking(true).unwrap();
    bulk.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = local_rt();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            backend(
                TcpListener::from_std(http).unwrap(),
                TcpListener::from_std(bulk).unwrap(),
            )
            .await
        });
    });

    for splice in [true, false] {
        let bal = Arc::new(OneBackend {
            addr: http_addr,
            next: AtomicU64::new(1),
            events: AtomicU64::new(0),
        });
        let bulk_bal = Arc::new(OneBackend {
            addr: bulk_addr,
            next: AtomicU64::new(1),
            events: AtomicU64::new(0),
        });
        let cfg = ProxyConfig {
            workers: 1,
            splice,
            ..ProxyConfig::default()
        };
        let proxy = Proxy::start(cfg.clone(), bal.clone()).expect("proxy");
        let bulk_proxy = Proxy::start(cfg, bulk_bal).expect("proxy");
        let vip: SocketAddr = "127.0.0.200:18080".parse().unwrap();
        let bulk_vip: SocketAddr = "127.0.0.200:18081".parse().unwrap();
        proxy
            .set_listeners(&[ListenerSpec {
                protocol: Protocol::Tcp,
                addr: vip,
            }])
            .expect("listen");
        bulk_proxy
            .set_listeners(&[ListenerSpec {
                protocol: Protocol::Tcp,
                addr: bulk_vip,
            }])
            .expect("listen");

        let rt = local_rt();
        let local = tokio::task::LocalSet::new();
        let (cps, rps, direct_rps, mbs, direct_mbs) = local.block_on(&rt, async {
            let cps = conns_per_sec(vip, 16, secs).await;
            let rps = requests_per_sec(vip, 16, secs).await;
            let direct_rps = requests_per_sec(http_addr, 16, secs).await;
            let mbs = bulk_mb_per_sec(bulk_vip, secs).await;
            let direct_mbs = bulk_mb_per_sec(bulk_addr, secs).await;
            (cps, rps, direct_rps, mbs, direct_mbs)
        });
        let st = proxy.stats();
        println!(
            "splice={splice:<5} conn/s={cps:>8.0}  keepalive req/s={rps:>8.0} (direct {direct_rps:.0})  \
             bulk MB/s={mbs:>7.0} (direct {direct_mbs:.0})  [events={} resets={}]",
            bal.events.load(Relaxed),
            st.resets
        );
        proxy.shutdown(Duration::from_millis(200));
        bulk_proxy.shutdown(Duration::from_millis(200));
    }
}
