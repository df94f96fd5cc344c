//! UDP through the proxy, real sockets on 127.0.0.0/8 only.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rvs_proxy::{CloseReason, FlowEvent, ListenerSpec, Protocol, ProxyProtocol};
use tokio::net::UdpSocket;

fn udp(addr: SocketAddr) -> ListenerSpec {
    ListenerSpec {
        protocol: Protocol::Udp,
        addr,
    }
}

/// Send `msg` to `vip`, return the answer and check it came from the VIP address.
async fn ask(c: &UdpSocket, vip: SocketAddr, msg: &str) -> String {
    c.send_to(msg.as_bytes(), vip).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = within(c.recv_from(&mut buf)).await.unwrap();
    assert_eq!(from, vip, "reply must come from the VIP");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[tokio::test]
async fn udp_flow_is_sticky_and_expires_when_idle() {
    let a = udp_name_echo("127.0.0.71:0", "A").await;
    let b = udp_name_echo("127.0.0.72:0", "B").await;
    let mut bal = RrBalancer::new(vec![a, b]);
    bal.udp_idle = Duration::from_millis(300);
    let bal = Arc::new(bal);
    let proxy = start_proxy(bal.clone(), 2);
    let vip = free_port("127.0.0.70");
    proxy.set_listeners(&[udp(vip)]).unwrap();

    let c = UdpSocket::bind("127.0.0.73:0").await.unwrap();
    assert_eq!(ask(&c, vip, "one").await, "A:one");
    assert_eq!(ask(&c, vip, "two").await, "A:two");
    assert_eq!(ask(&c, vip, "three").await, "A:three");
    assert_eq!(bal.opened().len(), 1);
    let first = bal.opened()[0];
    assert_eq!(first.0.client, c.local_addr().unwrap());
    assert_eq!(first.0.protocol, Protocol::Udp);
    assert_eq!(proxy.stats().udp_flows_active, 1);

    // Idle past the udp timeout: the flow ends, the next datagram is scheduled anew.
    bal.wait_closed(first.1.handle).await;
    assert_eq!(
        bal.events_of(first.1.handle).last(),
        Some(&FlowEvent::Closed(CloseReason::IdleTimeout))
    );
    let t = bal.traffic_of(first.1.handle);
    assert_eq!((t.in_packets, t.in_bytes), (3, 11));
    assert_eq!((t.out_packets, t.out_bytes), (3, 17));
    assert_eq!(proxy.stats().udp_flows_active, 0);
    assert_eq!(ask(&c, vip, "four").await, "B:four");
    assert_eq!(bal.opened().len(), 2);
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn a_longer_udp_timeout_set_after_open_keeps_the_flow() {
    let a = udp_name_echo("127.0.0.120:0", "A").await;
    let b = udp_name_echo("127.0.0.121:0", "B").await;
    let mut bal = RrBalancer::new(vec![a, b]);
    bal.udp_idle = Duration::from_millis(300);
    let bal = Arc::new(bal);
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.122");
    proxy.set_listeners(&[udp(vip)]).unwrap();
    let c = UdpSocket::bind("127.0.0.123:0").await.unwrap();
    assert_eq!(ask(&c, vip, "one").await, "A:one");
    let first = bal.opened()[0].1.handle;
    // `--set` raises the udp timeout while the flow is open: at the old limit the flow asks
    // again and stays.
    *bal.limits.lock().unwrap() = Some(rvs_proxy::IdleLimits {
        tcp_idle_timeout: None,
        tcp_fin_timeout: None,
        udp_idle_timeout: Duration::from_millis(1500),
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!bal.is_closed(first), "closed at the old limit");
    assert_eq!(ask(&c, vip, "two").await, "A:two");
    assert_eq!(bal.opened().len(), 1);
    // Then it idles out on the new limit.
    bal.wait_closed(first).await;
    assert_eq!(
        bal.events_of(first).last(),
        Some(&FlowEvent::Closed(CloseReason::IdleTimeout))
    );
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn udp_flow_stays_while_active() {
    let a = udp_name_echo("127.0.0.75:0", "A").await;
    let b = udp_name_echo("127.0.0.76:0", "B").await;
    let mut bal = RrBalancer::new(vec![a, b]);
    bal.udp_idle = Duration::from_millis(600);
    let bal = Arc::new(bal);
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.74");
    proxy.set_listeners(&[udp(vip)]).unwrap();
    let c = UdpSocket::bind("127.0.0.77:0").await.unwrap();
    // Ten datagrams 100 ms apart span 1 s, longer than the timeout, but the flow never idles.
    for i in 0..10 {
        assert_eq!(ask(&c, vip, &format!("m{i}")).await, format!("A:m{i}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(bal.opened().len(), 1);
    assert!(!bal.is_closed(bal.opened()[0].1.handle));
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn one_packet_scheduling_spreads_every_datagram() {
    let a = udp_name_echo("127.0.0.81:0", "A").await;
    let b = udp_name_echo("127.0.0.82:0", "B").await;
    let mut bal = RrBalancer::new(vec![a, b]);
    bal.one_packet = true;
    let bal = Arc::new(bal);
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.80");
    proxy.set_listeners(&[udp(vip)]).unwrap();
    let c = UdpSocket::bind("127.0.0.83:0").await.unwrap();
    let mut got = Vec::new();
    for i in 0..6 {
        got.push(ask(&c, vip, &format!("q{i}")).await);
    }
    assert_eq!(got, ["A:q0", "B:q1", "A:q2", "B:q3", "A:q4", "B:q5"]);
    let opens = bal.opened();
    assert_eq!(opens.len(), 6);
    // Each datagram's handle is closed when the next one to the same server supersedes it,
    // after carrying its request and its reply.
    for (_, b) in &opens[..4] {
        let ev = bal.events_of(b.handle);
        assert_eq!(ev.last(), Some(&FlowEvent::Closed(CloseReason::Normal)));
        let t = bal.traffic_of(b.handle);
        assert_eq!((t.in_packets, t.out_packets), (1, 1));
    }
    // Two sockets: one per real server for this client.
    assert_eq!(proxy.stats().udp_flows_created, 2);
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn udp_refusal_drops() {
    let a = udp_name_echo("127.0.0.85:0", "A").await;
    let bal = Arc::new(RrBalancer::new(vec![a]));
    bal.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.84");
    proxy.set_listeners(&[udp(vip)]).unwrap();
    let c = UdpSocket::bind("127.0.0.86:0").await.unwrap();
    c.send_to(b"x", vip).await.unwrap();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_millis(300), c.recv_from(&mut buf)).await;
    assert!(r.is_err(), "a refused datagram must not be answered");
    assert_eq!(proxy.stats().refused, 1);
    // Refusal is per datagram: once the balancer accepts, traffic flows.
    bal.refuse.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(ask(&c, vip, "y").await, "A:y");
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn udp_proxy_v2_header_per_datagram() {
    // Real server that parses the v2 header in front of each datagram and answers with the
    // client address it carries plus the payload.
    let rs = UdpSocket::bind("127.0.0.88:0").await.unwrap();
    let rs_addr = rs.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let Ok((n, peer)) = rs.recv_from(&mut buf).await else {
                return;
            };
            let h = ppp::v2::Header::try_from(&buf[..n]).unwrap();
            assert_eq!(h.protocol, ppp::v2::Protocol::Datagram);
            let src = match h.addresses {
                ppp::v2::Addresses::IPv4(x) => SocketAddr::from((x.source_address, x.source_port)),
                other => panic!("{other:?}"),
            };
            let payload = &buf[h.len()..n];
            let out = format!("{src}|{}", String::from_utf8_lossy(payload));
            let _ = rs.send_to(out.as_bytes(), peer).await;
        }
    });
    let mut bal = RrBalancer::new(vec![rs_addr]);
    bal.proxy_protocol = ProxyProtocol::V2;
    let bal = Arc::new(bal);
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.87");
    proxy.set_listeners(&[udp(vip)]).unwrap();
    let c = UdpSocket::bind("127.0.0.89:0").await.unwrap();
    let me = c.local_addr().unwrap();
    assert_eq!(ask(&c, vip, "p1").await, format!("{me}|p1"));
    assert_eq!(ask(&c, vip, "p2").await, format!("{me}|p2"));
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn udp_proxy_v1_is_refused_not_sent_bare() {
    let a = udp_name_echo("127.0.0.91:0", "A").await;
    let mut bal = RrBalancer::new(vec![a]);
    bal.proxy_protocol = ProxyProtocol::V1;
    let bal = Arc::new(bal);
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.90");
    proxy.set_listeners(&[udp(vip)]).unwrap();
    let c = UdpSocket::bind("127.0.0.92:0").await.unwrap();
    c.send_to(b"x", vip).await.unwrap();
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
        [FlowEvent::Closed(CloseReason::Unsupported)]
    );
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_millis(200), c.recv_from(&mut buf)).await;
    assert!(r.is_err());
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn udp_ipv6_loopback() {
    if !rvs_require::ipv6_loopback() {
        return;
    }
    let probe = std::net::UdpSocket::bind("[::1]:0").unwrap();
    let vip = probe.local_addr().unwrap();
    drop(probe);
    let a = udp_name_echo("[::1]:0", "A6").await;
    let bal = Arc::new(RrBalancer::new(vec![a]));
    let proxy = start_proxy(bal.clone(), 1);
    proxy.set_listeners(&[udp(vip)]).unwrap();
    let c = UdpSocket::bind("[::1]:0").await.unwrap();
    assert_eq!(ask(&c, vip, "v6").await, "A6:v6");
    // A wildcard port is not a listener: every worker would bind a different one.
    let zero = udp("[::1]:0".parse().unwrap());
    assert!(proxy.set_listeners(&[udp(vip), zero]).is_err());
    assert_eq!(proxy.listeners(), vec![udp(vip)]);
    proxy.shutdown(Duration::from_secs(1));
}

#[tokio::test]
async fn removing_a_udp_listener_ends_its_flows() {
    let a = udp_name_echo("127.0.0.94:0", "A").await;
    let bal = Arc::new(RrBalancer::new(vec![a]));
    let proxy = start_proxy(bal.clone(), 1);
    let vip = free_port("127.0.0.93");
    proxy.set_listeners(&[udp(vip)]).unwrap();
    let c = UdpSocket::bind("127.0.0.95:0").await.unwrap();
    assert_eq!(ask(&c, vip, "hi").await, "A:hi");
    let h = bal.opened()[0].1.handle;
    proxy.set_listeners(&[]).unwrap();
    bal.wait_closed(h).await;
    assert_eq!(
        bal.events_of(h).last(),
        Some(&FlowEvent::Closed(CloseReason::Aborted))
    );
    assert_eq!(bal.traffic_of(h).in_bytes, 2);
    within(async {
        while proxy.stats().udp_flows_active > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    proxy.shutdown(Duration::from_secs(1));
}
