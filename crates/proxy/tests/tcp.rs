//! TCP through the proxy, real sockets on 127.0.0.0/8 only.

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rvs_proxy::{
    CloseReason, FlowEvent, FlowHandle, KernelSplice, ListenerSpec, Protocol, Proxy, ProxyConfig,
    ProxyProtocol,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

fn tcp(addr: SocketAddr) -> ListenerSpec {
    ListenerSpec {
        protocol: Protocol::Tcp,
        addr,
    }
}

#[tokio::test]
async fn round_robin_order_over_two_workers() {
    let a = name_server("127.0.0.11:0", "RS1").await;
    let b = name_server("127.0.0.12:0", "RS2").await;
    let c = name_server("127.0.0.13:0", "RS3").await;
    let bal = Arc::new(RrBalancer::new(vec![a, b, c]));
    let proxy = start_proxy(bal.clone(), 2);
    let vip = free_port("127.0.0.10");
    proxy.set_listeners(&[tcp(vip)]).unwrap();
    assert_eq!(proxy.listeners(), vec![tcp(vip)]);

    let mut got = Vec::new();
    for _ in 0..9 {
        let body = get(vip).await;
        got.push(body.rsplit("\r\n\r\n").next().unwrap().to_string());
    }
    assert_eq!(
        got,
        ["RS1", "RS2", "RS3", "RS1", "RS2", "RS3", "RS1", "RS2", "RS3"]
    );
    let opens = bal.opened();
    assert_eq!(opens.len(), 9);
    assert!(opens
        .iter()
        .all(|(f, _)| f.vip == vip && f.protocol == Protocol::Tcp && f.client.ip().is_loopback()));
    let s = proxy.stats();
    assert_eq!(s.tcp_accepted, 9);
    let report = proxy.shutdown(Duration::from_secs(5));
    assert_eq!(report.aborted, 0);
}

async fn bulk_both_ways(ip_vip: &str, ip_rs: &str, splice: bool) {
    const LEN: usize = 8 * 1024 * 1024;
    let rs = echo_server(&format!("{ip_rs}:0")).await;
    let bal = Arc::new(RrBalancer::new(vec![rs]));
    let cfg = ProxyConfig {
        workers: 1,
        splice,
        ..config()
    };
    let proxy = Proxy::start(cfg, bal.clone()).unwrap();
    let vip = free_port(ip_vip);
    proxy.set_listeners(&[tcp(vip)]).unwrap();

    let data = pattern(LEN, 42);
    let s = within(TcpStream::connect(vip)).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let to_send = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&to_send).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::with_capacity(LEN);
    within(r.read_to_end(&mut back)).await.unwrap();
    within(writer).await.unwrap();
    assert_eq!(back.len(), LEN);
    assert!(back == data, "echoed bytes differ");

    let h = bal.opened()[0].1.handle;
    bal.wait_closed(h).await;
    let t = bal.traffic_of(h);
    assert_eq!(t.in_bytes, LEN as u64);
    assert_eq!(t.out_bytes, LEN as u64);
    assert!(t.in_packets > 0 && t.out_packets > 0);
    assert_eq!(
        bal.events_of(h).last(),
        Some(&FlowEvent::Closed(CloseReason::Normal))
    );
    let st = proxy.stats();
    assert_eq!(st.in_bytes, LEN as u64);
    assert_eq!(st.out_bytes, LEN as u64);
    if st.kernel_spliced > 0 {
        // The kernel moved the bytes: user space never saw a bulk read.
        assert_eq!((st.kernel_spliced, st.spliced), (1, 0), "{st:?}");
    } else if splice {
        assert!(st.spliced >= 1, "bulk transfer did not use splice: {st:?}");
    } else {
        assert_eq!(st.spliced, 0);
    }
    if splice_mode() == KernelSplice::Off {
        assert_eq!(st.kernel_spliced, 0);
    }
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn multi_megabyte_both_ways_spliced() {
    bulk_both_ways("127.0.0.20", "127.0.0.21", true).await;
}

#[tokio::test]
async fn multi_megabyte_both_ways_buffered() {
    bulk_both_ways("127.0.0.22", "127.0.0.23", false).await;
}

/// Server that reads until the client's FIN, then answers with the byte count and closes.
async fn count_server(addr: &str) -> SocketAddr {
    let l = TcpListener::bind(addr).await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut all = Vec::new();
                if s.read_to_end(&mut all).await.is_ok() {
                    let _ = s.write_all(format!("got {}", all.len()).as_bytes()).await;
                }
            });
        }
    });
    a
}

#[tokio::test]
async fn half_close_and_event_sequence() {
    let rs = count_server("127.0.0.31:0").await;
    let bal = Arc::new(RrBalancer::new(vec![rs]));
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.30");
    proxy.set_listeners(&[tcp(vip)]).unwrap();

    let mut s = within(TcpStream::connect(vip)).await.unwrap();
    let req = pattern(100_000, 7);
    within(s.write_all(&req)).await.unwrap();
    // The client is done sending but still expects the answer.
    s.shutdown().await.unwrap();
    let mut out = String::new();
    within(s.read_to_string(&mut out)).await.unwrap();
    assert_eq!(out, "got 100000");

    let h = bal.opened()[0].1.handle;
    bal.wait_closed(h).await;
    let seq: Vec<FlowEvent> = bal
        .events_of(h)
        .into_iter()
        .filter(|e| !matches!(e, FlowEvent::Traffic(_)))
        .collect();
    assert_eq!(
        seq,
        [
            FlowEvent::Connected,
            FlowEvent::ClientFin,
            FlowEvent::ServerFin,
            FlowEvent::Closed(CloseReason::Normal)
        ]
    );
    let t = bal.traffic_of(h);
    assert_eq!(t.in_bytes, 100_000);
    assert_eq!(t.out_bytes, "got 100000".len() as u64);
    // Traffic before the client FIN is flushed before the ClientFin event.
    let evs = bal.events_of(h);
    let fin_at = evs.iter().position(|e| *e == FlowEvent::ClientFin).unwrap();
    let in_before: u64 = evs[..fin_at]
        .iter()
        .map(|e| match e {
            FlowEvent::Traffic(t) => t.in_bytes,
            _ => 0,
        })
        .sum();
    assert_eq!(in_before, 100_000);
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn connect_failure_is_rescheduled_once() {
    // Nothing listens on `dead`: the connect is refused at once.
    let dead = free_port("127.0.0.41");
    let live = name_server("127.0.0.42:0", "LIVE").await;
    let bal = Arc::new(RrBalancer::new(vec![dead, live]));
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.40");
    proxy.set_listeners(&[tcp(vip)]).unwrap();

    let body = get(vip).await;
    assert!(body.ends_with("LIVE"), "{body:?}");
    let first = bal.opened()[0].1;
    assert_eq!(first.addr, dead);
    assert_eq!(
        bal.events_of(first.handle),
        [FlowEvent::Closed(CloseReason::ConnectFailed)]
    );
    let re = bal.reschedules.lock().unwrap().clone();
    assert_eq!(re.len(), 1);
    assert_eq!(re[0].1.addr, live);
    bal.wait_closed(re[0].1.handle).await;
    assert_eq!(
        bal.events_of(re[0].1.handle).first(),
        Some(&FlowEvent::Connected)
    );
    let s = proxy.stats();
    assert_eq!((s.connect_failures, s.reschedules), (1, 1));
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn connect_failure_with_no_alternative_resets_client() {
    let dead = free_port("127.0.0.44");
    let bal = Arc::new(RrBalancer::new(vec![dead]));
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.43");
    proxy.set_listeners(&[tcp(vip)]).unwrap();
    // The reset may arrive before the client's connect has even returned.
    match within(TcpStream::connect(vip)).await {
        Ok(mut s) => {
            let mut buf = [0u8; 16];
            let r = within(s.read(&mut buf)).await;
            assert!(matches!(r, Ok(0)) || r.is_err(), "{r:?}");
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
    }
    let h = within(async {
        loop {
            if let Some((_, b)) = bal.opened().first() {
                return b.handle;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    bal.wait_closed(h).await;
    assert_eq!(
        bal.events_of(h),
        [FlowEvent::Closed(CloseReason::ConnectFailed)]
    );
    assert_eq!(proxy.stats().reschedules, 0);
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn refusal_closes_the_connection() {
    let rs = name_server("127.0.0.46:0", "RS").await;
    let bal = Arc::new(RrBalancer::new(vec![rs]));
    bal.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.45");
    proxy.set_listeners(&[tcp(vip)]).unwrap();
    match within(TcpStream::connect(vip)).await {
        Ok(mut s) => {
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n").await;
            let mut buf = [0u8; 16];
            let r = within(s.read(&mut buf)).await;
            assert!(
                matches!(r, Ok(0))
                    || r.as_ref()
                        .is_err_and(|e| e.kind() == ErrorKind::ConnectionReset),
                "{r:?}"
            );
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
    }
    within(async {
        while proxy.stats().refused == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(proxy.stats().refused, 1);
    assert!(bal.events.lock().unwrap().is_empty());
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn server_reset_is_passed_to_client() {
    let l = TcpListener::bind("127.0.0.48:0").await.unwrap();
    let rs = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 4];
        let _ = s.read_exact(&mut buf).await;
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
    });
    let bal = Arc::new(RrBalancer::new(vec![rs]));
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.47");
    proxy.set_listeners(&[tcp(vip)]).unwrap();
    let mut s = within(TcpStream::connect(vip)).await.unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 16];
    let r = within(s.read(&mut buf)).await;
    assert_eq!(r.map_err(|e| e.kind()), Err(ErrorKind::ConnectionReset));
    let h = bal.opened()[0].1.handle;
    bal.wait_closed(h).await;
    assert_eq!(
        bal.events_of(h).last(),
        Some(&FlowEvent::Closed(CloseReason::Reset))
    );
    assert_eq!(proxy.stats().resets, 1);
    proxy.shutdown(Duration::from_secs(1));
}

/// Real server that reads a PROXY header (v1 or v2), parses it with `ppp`, then answers
/// `src=.. dst=.. rest=..` with the bytes that followed the header.
async fn pp_server(addr: &str, v2: bool) -> SocketAddr {
    let l = TcpListener::bind(addr).await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        let (src, dst) = if v2 {
            let mut head = [0u8; 16];
            s.read_exact(&mut head).await.unwrap();
            let len = u16::from_be_bytes([head[14], head[15]]) as usize;
            let mut all = head.to_vec();
            all.resize(16 + len, 0);
            s.read_exact(&mut all[16..]).await.unwrap();
            let h = ppp::v2::Header::try_from(&all[..]).unwrap();
            assert_eq!(h.protocol, ppp::v2::Protocol::Stream);
            match h.addresses {
                ppp::v2::Addresses::IPv4(x) => (
                    SocketAddr::from((x.source_address, x.source_port)),
                    SocketAddr::from((x.destination_address, x.destination_port)),
                ),
                other => panic!("{other:?}"),
            }
        } else {
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while !line.ends_with(b"\r\n") && line.len() < 108 {
                s.read_exact(&mut b).await.unwrap();
                line.push(b[0]);
            }
            let text = std::str::from_utf8(&line).unwrap();
            let h = ppp::v1::Header::try_from(text).unwrap();
            match h.addresses {
                ppp::v1::Addresses::Tcp4(x) => (
                    SocketAddr::from((x.source_address, x.source_port)),
                    SocketAddr::from((x.destination_address, x.destination_port)),
                ),
                other => panic!("{other:?}"),
            }
        };
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        let answer = format!(
            "src={src} dst={dst} rest={}",
            String::from_utf8_lossy(&rest)
        );
        s.write_all(answer.as_bytes()).await.unwrap();
    });
    a
}

async fn proxy_protocol_case(v2: bool, vip_ip: &str, rs_ip: &str, client_ip: &str) {
    let rs = pp_server(&format!("{rs_ip}:0"), v2).await;
    let mut b = RrBalancer::new(vec![rs]);
    b.proxy_protocol = if v2 {
        ProxyProtocol::V2
    } else {
        ProxyProtocol::V1
    };
    let bal = Arc::new(b);
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port(vip_ip);
    proxy.set_listeners(&[tcp(vip)]).unwrap();

    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{client_ip}:0").parse().unwrap())
        .unwrap();
    let mut s = within(sock.connect(vip)).await.unwrap();
    let me = s.local_addr().unwrap();
    s.write_all(b"hello").await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = String::new();
    within(s.read_to_string(&mut out)).await.unwrap();
    assert_eq!(out, format!("src={me} dst={vip} rest=hello"));
    let h = bal.opened()[0].1.handle;
    bal.wait_closed(h).await;
    // The header is not client payload: it is not counted.
    assert_eq!(bal.traffic_of(h).in_bytes, 5);
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn proxy_protocol_v1_header() {
    proxy_protocol_case(false, "127.0.0.50", "127.0.0.51", "127.0.0.52").await;
}

#[tokio::test]
async fn proxy_protocol_v2_header() {
    proxy_protocol_case(true, "127.0.0.53", "127.0.0.54", "127.0.0.55").await;
}

#[tokio::test]
async fn source_address_is_used_for_the_real_server_side() {
    let l = TcpListener::bind("127.0.0.57:0").await.unwrap();
    let rs = l.local_addr().unwrap();
    let seen = tokio::spawn(async move {
        let (mut s, peer) = l.accept().await.unwrap();
        s.write_all(b"x").await.unwrap();
        peer
    });
    let mut b = RrBalancer::new(vec![rs]);
    b.source = Some("127.0.0.58".parse().unwrap());
    let bal = Arc::new(b);
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.56");
    proxy.set_listeners(&[tcp(vip)]).unwrap();
    let mut s = within(TcpStream::connect(vip)).await.unwrap();
    let mut buf = [0u8; 1];
    within(s.read_exact(&mut buf)).await.unwrap();
    let peer = within(seen).await.unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.58");
    proxy.shutdown(Duration::from_secs(1));
}

/// Server that sends `len` bytes of pattern(seed 9) and closes.
async fn source_server(addr: &str, len: usize) -> SocketAddr {
    let l = TcpListener::bind(addr).await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        let data = pattern(len, 9);
        let _ = s.write_all(&data).await;
    });
    a
}

#[tokio::test]
async fn graceful_shutdown_lets_a_long_transfer_complete() {
    const LEN: usize = 32 * 1024 * 1024;
    let rs = source_server("127.0.0.61:0", LEN).await;
    let bal = Arc::new(RrBalancer::new(vec![rs]));
    let proxy = start_proxy(bal.clone(), 2);
    let vip = free_port("127.0.0.60");
    proxy.set_listeners(&[tcp(vip)]).unwrap();

    let mut s = within(TcpStream::connect(vip)).await.unwrap();
    let mut got = vec![0u8; 1024 * 1024];
    within(s.read_exact(&mut got)).await.unwrap();

    // Shut down while most of the transfer is still to come; the client keeps reading slowly
    // enough that the proxy is mid-transfer when the listeners close.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(proxy.shutdown(Duration::from_secs(15)));
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // No new connections once shutdown has begun.
    let refused = TcpStream::connect(vip).await;
    assert!(refused.is_err(), "listener still open during drain");

    let mut rest = Vec::new();
    within(s.read_to_end(&mut rest)).await.unwrap();
    got.extend_from_slice(&rest);
    // The client closes its side too, so the flow is complete (not half-open).
    drop(s);
    assert_eq!(got.len(), LEN);
    assert!(got == pattern(LEN, 9));
    let report = within(rx).await.unwrap();
    assert_eq!(report.aborted, 0);
    let h = bal.opened()[0].1.handle;
    assert_eq!(
        bal.events_of(h).last(),
        Some(&FlowEvent::Closed(CloseReason::Normal))
    );
}

#[tokio::test]
async fn drain_time_bounds_shutdown() {
    let rs = echo_server("127.0.0.63:0").await;
    let bal = Arc::new(RrBalancer::new(vec![rs]));
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.62");
    proxy.set_listeners(&[tcp(vip)]).unwrap();
    // An idle connection that would never end by itself.
    let mut s = within(TcpStream::connect(vip)).await.unwrap();
    s.write_all(b"x").await.unwrap();
    let mut b = [0u8; 1];
    within(s.read_exact(&mut b)).await.unwrap();

    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = std::time::Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(proxy.shutdown(Duration::from_millis(300)));
    });
    let report = within(rx).await.unwrap();
    assert_eq!(report.aborted, 1);
    assert!(started.elapsed() < Duration::from_secs(5));
    let h: FlowHandle = bal.opened()[0].1.handle;
    assert_eq!(
        bal.events_of(h).last(),
        Some(&FlowEvent::Closed(CloseReason::Aborted))
    );
    // Stopped by the proxy, not finished: the client sees a reset, not an end of stream.
    let r = within(s.read(&mut b)).await;
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
}

#[tokio::test]
async fn listeners_are_reconciled() {
    let rs = name_server("127.0.0.66:0", "RS").await;
    let bal = Arc::new(RrBalancer::new(vec![rs]));
    let proxy = start_proxy(bal.clone(), 2);
    let v1 = free_port("127.0.0.64");
    let v2 = free_port("127.0.0.65");
    // A VIP not configured on any interface yet (TEST-NET-1): IP_FREEBIND lets it bind.
    // No traffic is sent to it.
    let future_vip: SocketAddr = format!("192.0.2.77:{}", v1.port()).parse().unwrap();
    proxy
        .set_listeners(&[tcp(v1), tcp(v2), tcp(future_vip)])
        .unwrap();
    assert!(get(v1).await.ends_with("RS"));
    assert!(get(v2).await.ends_with("RS"));

    proxy.set_listeners(&[tcp(v2)]).unwrap();
    assert_eq!(proxy.listeners(), vec![tcp(v2)]);
    let gone = within(TcpStream::connect(v1)).await;
    assert_eq!(
        gone.map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused)
    );
    assert!(get(v2).await.ends_with("RS"));

    // A listener that cannot be opened is reported; the others stay.
    let taken = std::net::UdpSocket::bind("127.0.0.65:0").unwrap();
    let bad = ListenerSpec {
        protocol: Protocol::Udp,
        addr: taken.local_addr().unwrap(),
    };
    let err = proxy.set_listeners(&[tcp(v2), bad]).unwrap_err();
    assert!(matches!(err, rvs_proxy::ProxyError::Listen(ref f) if f.len() == 1 && f[0].0 == bad));
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("cannot listen on UDP {}: ", bad.addr)),
        "{msg}"
    );
    assert_eq!(proxy.listeners(), vec![tcp(v2)]);
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn ipv6_loopback() {
    // Some containers have no IPv6 loopback (a skip, or a failure under CI).
    if !rvs_require::ipv6_loopback() {
        return;
    }
    let probe = std::net::TcpListener::bind("[::1]:0").unwrap();
    let vip = probe.local_addr().unwrap();
    drop(probe);
    let rs = name_server("[::1]:0", "RS6").await;
    let bal = Arc::new(RrBalancer::new(vec![rs]));
    let proxy = start_proxy(bal.clone(), 1);
    proxy.set_listeners(&[tcp(vip)]).unwrap();
    assert!(get(vip).await.ends_with("RS6"));
    assert!(bal.opened()[0].0.client.is_ipv6());
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn idle_tcp_flow_is_reset_but_active_one_is_not() {
    let rs = echo_server("127.0.0.101:0").await;
    let mut b = RrBalancer::new(vec![rs]);
    b.tcp_idle = Some(Duration::from_millis(600));
    let bal = Arc::new(b);
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.100");
    proxy.set_listeners(&[tcp(vip)]).unwrap();

    // Active for 1 s, longer than the limit, with gaps well under it: never cut.
    let mut s = within(TcpStream::connect(vip)).await.unwrap();
    let mut buf = [0u8; 2];
    for i in 0..10u8 {
        s.write_all(&[b'a', i]).await.unwrap();
        within(s.read_exact(&mut buf)).await.unwrap();
        assert_eq!(buf, [b'a', i]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Then idle: reset after the limit.
    let started = std::time::Instant::now();
    let r = within(s.read(&mut buf)).await;
    assert_eq!(r.map_err(|e| e.kind()), Err(ErrorKind::ConnectionReset));
    assert!(started.elapsed() < Duration::from_secs(3));
    let h = bal.opened()[0].1.handle;
    bal.wait_closed(h).await;
    assert_eq!(
        bal.events_of(h).last(),
        Some(&FlowEvent::Closed(CloseReason::IdleTimeout))
    );
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn a_longer_tcp_timeout_set_after_open_keeps_the_flow() {
    let rs = echo_server("127.0.0.125:0").await;
    let mut b = RrBalancer::new(vec![rs]);
    b.tcp_idle = Some(Duration::from_millis(300));
    let bal = Arc::new(b);
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.124");
    proxy.set_listeners(&[tcp(vip)]).unwrap();
    let mut s = within(TcpStream::connect(vip)).await.unwrap();
    let mut buf = [0u8; 2];
    s.write_all(b"a1").await.unwrap();
    within(s.read_exact(&mut buf)).await.unwrap();
    // `--set` raises the tcp timeout: idle past the old limit, the connection still works.
    *bal.limits.lock().unwrap() = Some(rvs_proxy::IdleLimits {
        tcp_idle_timeout: Some(Duration::from_millis(1500)),
        tcp_fin_timeout: None,
        udp_idle_timeout: Duration::from_secs(300),
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    s.write_all(b"a2").await.unwrap();
    within(s.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"a2");
    // Then idle past the new limit: reset.
    let r = within(s.read(&mut buf)).await;
    assert_eq!(r.map_err(|e| e.kind()), Err(ErrorKind::ConnectionReset));
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn half_closed_flow_uses_fin_timeout() {
    // Real server that reads to EOF and then never answers nor closes.
    let l = TcpListener::bind("127.0.0.103:0").await.unwrap();
    let rs = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all).await;
        tokio::time::sleep(T).await;
    });
    let mut b = RrBalancer::new(vec![rs]);
    b.tcp_fin = Some(Duration::from_millis(300));
    let bal = Arc::new(b);
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.102");
    proxy.set_listeners(&[tcp(vip)]).unwrap();
    let mut s = within(TcpStream::connect(vip)).await.unwrap();
    s.write_all(b"bye").await.unwrap();
    s.shutdown().await.unwrap();
    let mut buf = [0u8; 4];
    let r = within(s.read(&mut buf)).await;
    assert_eq!(r.map_err(|e| e.kind()), Err(ErrorKind::ConnectionReset));
    let h = bal.opened()[0].1.handle;
    bal.wait_closed(h).await;
    let seq: Vec<FlowEvent> = bal
        .events_of(h)
        .into_iter()
        .filter(|e| !matches!(e, FlowEvent::Traffic(_)))
        .collect();
    assert_eq!(
        seq,
        [
            FlowEvent::Connected,
            FlowEvent::ClientFin,
            FlowEvent::Closed(CloseReason::IdleTimeout)
        ]
    );
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn many_concurrent_connections_over_two_workers() {
    let a = name_server("127.0.0.105:0", "A").await;
    let b = name_server("127.0.0.106:0", "B").await;
    let bal = Arc::new(RrBalancer::new(vec![a, b]));
    let proxy = start_proxy(bal.clone(), 2);
    let vip = free_port("127.0.0.104");
    proxy.set_listeners(&[tcp(vip)]).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        tasks.push(tokio::spawn(get(vip)));
    }
    let mut counts = (0, 0);
    for t in tasks {
        let body = within(t).await.unwrap();
        if body.ends_with('A') {
            counts.0 += 1;
        } else if body.ends_with('B') {
            counts.1 += 1;
        } else {
            panic!("bad answer {body:?}");
        }
    }
    assert_eq!(counts, (100, 100));
    within(async {
        while proxy.stats().tcp_active > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let s = proxy.stats();
    assert_eq!(s.tcp_accepted, 200);
    // Every handle got exactly one Closed.
    for (_, b) in bal.opened() {
        let closes = bal
            .events_of(b.handle)
            .iter()
            .filter(|e| matches!(e, FlowEvent::Closed(_)))
            .count();
        assert_eq!(closes, 1);
    }
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn traffic_is_reported_during_a_long_flow() {
    // Real server that sends 8 small pieces 40 ms apart.
    let l = TcpListener::bind("127.0.0.108:0").await.unwrap();
    let rs = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        for _ in 0..8 {
            s.write_all(b"0123456789").await.unwrap();
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    });
    let bal = Arc::new(RrBalancer::new(vec![rs]));
    let cfg = ProxyConfig {
        workers: 1,
        traffic_interval: Duration::from_millis(50),
        ..config()
    };
    let proxy = Proxy::start(cfg, bal.clone()).unwrap();
    let vip = free_port("127.0.0.107");
    proxy.set_listeners(&[tcp(vip)]).unwrap();
    let mut s = within(TcpStream::connect(vip)).await.unwrap();
    let mut all = Vec::new();
    within(s.read_to_end(&mut all)).await.unwrap();
    assert_eq!(all.len(), 80);
    drop(s);
    let h = bal.opened()[0].1.handle;
    bal.wait_closed(h).await;
    let evs = bal.events_of(h);
    let fin_at = evs.iter().position(|e| *e == FlowEvent::ServerFin).unwrap();
    let interim = evs[..fin_at]
        .iter()
        .filter(|e| matches!(e, FlowEvent::Traffic(_)))
        .count();
    assert!(interim >= 2, "traffic not reported while flowing: {evs:?}");
    assert_eq!(bal.traffic_of(h).out_bytes, 80);
    // Segments from the real server: its SYN+ACK, the 8 pieces (40 ms apart: no coalescing)
    // and its FIN.
    assert_eq!(bal.traffic_of(h).out_packets, 10);
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn traffic_of_an_idle_open_flow_is_reported() {
    let rs = echo_server("127.0.0.110:0").await;
    let bal = Arc::new(RrBalancer::new(vec![rs]));
    let cfg = ProxyConfig {
        workers: 1,
        traffic_interval: Duration::from_millis(50),
        ..config()
    };
    let proxy = Proxy::start(cfg, bal.clone()).unwrap();
    let vip = free_port("127.0.0.109");
    proxy.set_listeners(&[tcp(vip)]).unwrap();
    let mut s = within(TcpStream::connect(vip)).await.unwrap();
    s.write_all(b"request").await.unwrap();
    let mut buf = [0u8; 7];
    within(s.read_exact(&mut buf)).await.unwrap();
    // The connection stays open and idle; its counts must still reach the balancer.
    let h = bal.opened()[0].1.handle;
    within(async {
        while bal.traffic_of(h).out_bytes < 7 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(bal.traffic_of(h).in_bytes, 7);
    assert!(!bal.is_closed(h));
    drop(s);
    bal.wait_closed(h).await;
    proxy.shutdown(Duration::from_secs(1));
}

/// Packets of a TCP flow are the segments the proxy's two sockets received, as IPVS counts the
/// packets of each direction: checked against what the client and the real server themselves
/// sent (their own `TCP_INFO`), on an exchange of five messages each way with half-closes.
#[tokio::test]
async fn packets_are_the_segments_each_side_sent() {
    use rvs_proxy::tcp_info::tcp_info;
    let l = TcpListener::bind("127.0.0.112:0").await.unwrap();
    let rs = l.local_addr().unwrap();
    let bal = Arc::new(RrBalancer::new(vec![rs]));
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.111");
    proxy.set_listeners(&[tcp(vip)]).unwrap();

    let mut c = within(TcpStream::connect(vip)).await.unwrap();
    c.set_nodelay(true).unwrap();
    let (mut s, _) = within(l.accept()).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = [0u8; 4];
    for _ in 0..5 {
        c.write_all(b"ping").await.unwrap();
        within(s.read_exact(&mut buf)).await.unwrap();
        s.write_all(b"pong").await.unwrap();
        within(c.read_exact(&mut buf)).await.unwrap();
    }
    // Client FIN first; the real server answers it with its own FIN and sends nothing after.
    c.shutdown().await.unwrap();
    assert_eq!(within(s.read(&mut buf)).await.unwrap(), 0);
    s.shutdown().await.unwrap();
    assert_eq!(within(c.read(&mut buf)).await.unwrap(), 0);
    let h = bal.opened()[0].1.handle;
    bal.wait_closed(h).await;
    // Let the client's last ACK (of the proxy's FIN) leave; the proxy may have closed first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let client_sent = tcp_info(&c).unwrap().segs_out;
    let server_sent = tcp_info(&s).unwrap().segs_out;
    let t = bal.traffic_of(h);
    assert_eq!((t.in_bytes, t.out_bytes), (20, 20));
    // Everything the server sent ended with its FIN, which the proxy read before closing; its
    // SYN+ACK left from the listening socket, so the accepted socket's count lacks it.
    assert_eq!(
        t.out_packets,
        u64::from(server_sent) + 1,
        "{t:?}, client sent {client_sent}"
    );
    // The client's ACK of the proxy's FIN may arrive after the proxy's last count.
    assert!(
        (u64::from(client_sent) - 1..=u64::from(client_sent)).contains(&t.in_packets),
        "{t:?}, client sent {client_sent}"
    );
    // The handshake and the FIN are segments too: more than one per message.
    assert!(t.in_packets >= 5 + 2 && t.out_packets >= 5 + 2, "{t:?}");
    proxy.shutdown(Duration::from_secs(1));
}

/// A one-worker proxy with kernel splicing forced on, handing a flow to the kernel after
/// `after` reads (0: at connect), round robin over `rs`, listening on a free port of `vip_ip`.
/// The kernel-splice tests set their proxy up this way (they need root: BPF).
fn start_splicing(
    rs: SocketAddr,
    vip_ip: &str,
    after: u32,
) -> (Arc<RrBalancer>, Proxy, SocketAddr) {
    let bal = Arc::new(RrBalancer::new(vec![rs]));
    let cfg = ProxyConfig {
        workers: 1,
        kernel_splice: KernelSplice::On,
        kernel_splice_after: after,
        ..ProxyConfig::default()
    };
    let proxy = Proxy::start(cfg, bal.clone()).unwrap();
    let vip = free_port(vip_ip);
    proxy.set_listeners(&[tcp(vip)]).unwrap();
    (bal, proxy, vip)
}

/// Kernel splicing forced on (whatever `RVS_TEST_PROXY_SPLICE` says): the flow is spliced, bytes
/// the client sent before the real server was connected and a real server that speaks first
/// both come through, the half-close is passed on after the data, and the counts are the
/// kernel's.
#[tokio::test]
async fn kernel_splice_relays_early_data_banner_and_half_close() {
    if !rvs_require::root() {
        return;
    }
    // Real server: greets first, then answers with the length of what it got until EOF.
    let l = TcpListener::bind("127.0.0.114:0").await.unwrap();
    let rs = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.write_all(b"220 hello\r\n").await.unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.unwrap();
        s.write_all(format!("got {}", all.len()).as_bytes())
            .await
            .unwrap();
    });
    let (bal, proxy, vip) = start_splicing(rs, "127.0.0.113", 0);

    let mut c = within(TcpStream::connect(vip)).await.unwrap();
    // Sent at once: it may well arrive before the proxy has connected the real server.
    let body = pattern(300_000, 3);
    let mut banner = [0u8; 11];
    let (mut r, mut w) = c.split();
    let send = async {
        w.write_all(&body).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let recv = async {
        r.read_exact(&mut banner).await.unwrap();
        let mut rest = String::new();
        r.read_to_string(&mut rest).await.unwrap();
        rest
    };
    let ((), rest) = within(async { tokio::join!(send, recv) }).await;
    assert_eq!(&banner, b"220 hello\r\n");
    assert_eq!(rest, "got 300000");
    drop(c);
    let h = bal.opened()[0].1.handle;
    bal.wait_closed(h).await;
    let st = proxy.stats();
    assert_eq!(
        st.kernel_spliced, 1,
        "the flow was not spliced in the kernel: {st:?}"
    );
    let t = bal.traffic_of(h);
    assert_eq!((t.in_bytes, t.out_bytes), (300_000, 11 + 10));
    assert!(t.in_packets > 2 && t.out_packets > 2, "{t:?}");
    let seq: Vec<FlowEvent> = bal
        .events_of(h)
        .into_iter()
        .filter(|e| !matches!(e, FlowEvent::Traffic(_)))
        .collect();
    assert_eq!(
        seq,
        [
            FlowEvent::Connected,
            FlowEvent::ClientFin,
            FlowEvent::ServerFin,
            FlowEvent::Closed(CloseReason::Normal)
        ]
    );
    proxy.shutdown(Duration::from_secs(1));
}

/// Context switches of this process's thread named `name` (voluntary: it slept and was woken).
fn wakeups_of_thread(name: &str) -> u64 {
    for t in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = t.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("voluntary_ctxt_switches:"))
            .unwrap();
        return line.split_whitespace().nth(1).unwrap().parse().unwrap();
    }
    panic!("no thread named {name}");
}

/// A spliced flow costs its worker no wake-up per message: its sockets are out of tokio's
/// reactor and watched for the end of the flow only (`rvs_bpf::sock_watch`). 300 echoed
/// round trips through one spliced flow wake the worker thread a handful of times (its traffic
/// tick), not once or more per message as they did while the sockets stayed registered for
/// readable/writable edges. Counts wake-ups (context switches), not time.
#[tokio::test]
async fn a_spliced_flow_does_not_wake_its_worker_per_message() {
    rvs_require::require_root!();
    let rs = echo_server("127.0.0.116:0").await;
    let (bal, proxy, vip) = start_splicing(rs, "127.0.0.115", 0);

    let mut c = within(TcpStream::connect(vip)).await.unwrap();
    c.set_nodelay(true).unwrap();
    let mut buf = [0u8; 100];
    let mut round_trip = async |c: &mut TcpStream, i: u8| {
        let msg = [i; 100];
        c.write_all(&msg).await.unwrap();
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, msg);
    };
    within(round_trip(&mut c, 0)).await;
    // The kernel may have carried that message before the worker, descheduled right after
    // putting the sockets into the map, counted the flow as spliced.
    within(async {
        while proxy.stats().kernel_spliced != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    const N: u64 = 300;
    let before = wakeups_of_thread("rvs-proxy-0");
    within(async {
        for i in 1..=N {
            round_trip(&mut c, i as u8).await;
        }
    })
    .await;
    let woken = wakeups_of_thread("rvs-proxy-0") - before;
    assert!(
        woken < N / 10,
        "the worker woke {woken} times for {N} round trips of a spliced flow"
    );
    // The end of the flow is still seen: half-close passed on, the flow closes normally.
    c.shutdown().await.unwrap();
    let mut rest = Vec::new();
    within(c.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty());
    let h = bal.opened()[0].1.handle;
    bal.wait_closed(h).await;
    assert_eq!(
        bal.events_of(h).last(),
        Some(&FlowEvent::Closed(CloseReason::Normal))
    );
    let t = bal.traffic_of(h);
    assert_eq!((t.in_bytes, t.out_bytes), (100 * (N + 1), 100 * (N + 1)));
    proxy.shutdown(Duration::from_secs(1));
}

/// With `kernel_splice_after`, a short flow stays in user space (it is not worth the splice
/// set-up) and a long one is handed to the kernel in mid-stream: 4 MiB echoed while the client
/// keeps writing arrive intact and in order, the flow counts as spliced once, its byte counts
/// (user space's before, the kernel's after) add up exactly, and it ends normally.
#[tokio::test]
async fn a_long_flow_is_handed_to_the_kernel_mid_stream_a_short_one_is_not() {
    rvs_require::require_root!();
    let rs = echo_server("127.0.0.118:0").await;
    let (bal, proxy, vip) = start_splicing(rs, "127.0.0.117", 6);

    // Short: one message each way (two reads), then the close.
    let mut c = within(TcpStream::connect(vip)).await.unwrap();
    c.write_all(b"0123456789").await.unwrap();
    let mut ten = [0u8; 10];
    within(c.read_exact(&mut ten)).await.unwrap();
    c.shutdown().await.unwrap();
    let mut rest = Vec::new();
    within(c.read_to_end(&mut rest)).await.unwrap();
    let short = bal.opened()[0].1.handle;
    bal.wait_closed(short).await;
    assert_eq!(proxy.stats().kernel_spliced, 0, "{:?}", proxy.stats());

    // Long: small writes (many reads on the way) while the echo streams back.
    const LEN: usize = 4 << 20;
    let data = pattern(LEN, 7);
    let c = within(TcpStream::connect(vip)).await.unwrap();
    c.set_nodelay(true).unwrap();
    let (mut r, mut w) = c.into_split();
    let send = async {
        for chunk in data.chunks(1000) {
            w.write_all(chunk).await.unwrap();
        }
        w.shutdown().await.unwrap();
    };
    let recv = async {
        let mut got = Vec::with_capacity(LEN);
        r.read_to_end(&mut got).await.unwrap();
        got
    };
    let ((), got) = within(async { tokio::join!(send, recv) }).await;
    assert!(got == data, "the echo differs (got {} bytes)", got.len());
    let long = bal.opened()[1].1.handle;
    bal.wait_closed(long).await;
    assert_eq!(proxy.stats().kernel_spliced, 1, "{:?}", proxy.stats());
    assert_eq!(
        bal.events_of(long).last(),
        Some(&FlowEvent::Closed(CloseReason::Normal))
    );
    let t = bal.traffic_of(long);
    assert_eq!((t.in_bytes, t.out_bytes), (LEN as u64, LEN as u64));
    proxy.shutdown(Duration::from_secs(1));
}
