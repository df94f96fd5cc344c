//! Root-only tests: build every topology, check the connectivity that needs no director, the
//! userspace decapsulator end to end, and that nothing is left behind — even after a panic.
//! Without root each test prints why it is skipped and passes; under CI (`RVS_REQUIRE_ALL=1` or
//! `CI=true`) it fails instead (see rvs-require).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rvs_lab::{
    list_namespaces, socat_transfer, DecapCounters, Lab, LabKind, Netns, SelftestMode, Topology,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// 32 bytes that differ per call, like the selftest's random payload.
fn payload() -> Vec<u8> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(7);
    (0..32u32)
        .map(|i| (seed.wrapping_mul(u128::from(i) + 0x9e37)).to_le_bytes()[3])
        .collect()
}

fn addr(t: &Topology, role: &str, dev: &str) -> Ipv4Addr {
    t.node(role)
        .and_then(|n| n.iface(dev))
        .map(|i| i.addr)
        .unwrap_or_else(|| panic!("{role} {dev} has no address"))
}

/// Every recorded MAC is what the kernel reports now, and unicast, non-zero.
fn assert_macs(t: &Topology) {
    for n in t.nodes() {
        for i in &n.ifaces {
            assert_eq!(n.ns.mac(&i.name).unwrap(), i.mac, "{} {}", n.role, i.name);
            assert_ne!(i.mac.0, [0; 6]);
            assert_eq!(i.mac.0[0] & 1, 0, "multicast MAC on {} {}", n.role, i.name);
        }
    }
}

/// Waits (≤ 2 s) until the decapsulator's counters satisfy `ok`: the worker bumps them right
/// after the TUN write, which can be after the test already saw the packet arrive.
fn counters_when(d: &rvs_lab::Decapsulator, ok: impl Fn(&DecapCounters) -> bool) -> DecapCounters {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let c = d.counters();
        if ok(&c) || std::time::Instant::now() >= deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts the topology's namespaces are gone once it is dropped.
fn drop_and_check_gone(t: Topology) {
    let prefix = t.lab().prefix().to_owned();
    let workdir = t.lab().workdir().to_owned();
    t.destroy().unwrap();
    assert!(list_namespaces(&prefix).unwrap().is_empty());
    assert!(!workdir.exists());
}

#[test]
fn nat_lab_connectivity_without_a_director() {
    rvs_require::require_root!();
    let mut t = rvs_lab::nat("nat").unwrap();
    assert_eq!(t.kind(), LabKind::Nat);
    assert_eq!(t.nodes().len(), 5);
    assert_macs(&t);
    let (client, director) = (t.client().ns.clone(), t.director().ns.clone());
    let cip = addr(&t, "client", "eth0");
    let dip = addr(&t, "director", "eth1");
    assert_eq!(dip, Ipv4Addr::new(10, 2, 0, 1));

    // Client reaches the director's client-side address.
    let data = payload();
    let got = socat_transfer(
        &director,
        &client,
        addr(&t, "director", "eth0"),
        7001,
        &data,
    );
    assert_eq!(got.unwrap(), data);
    // Each real server reaches the DIP.
    for rs in t.real_servers() {
        let data = payload();
        let got = socat_transfer(&director, &rs.ns, dip, 7002, &data).unwrap();
        assert_eq!(got, data, "{} -> DIP", rs.role);
    }
    // The VIP answers on the director itself (it is on lo).
    let got = socat_transfer(&director, &client, t.vip, 7003, &data).unwrap();
    assert_eq!(got, data);

    // Plain kernel forwarding through the director (ip_forward=1): nginx on each real server
    // names itself, and sees the client's own address (no NAT without a director).
    t.start_nginx().unwrap();
    for rs in t.real_servers() {
        let rip = rs.addr().unwrap();
        assert_eq!(
            client.curl(&format!("http://{rip}/")).unwrap(),
            format!("{}\n", rs.role)
        );
        assert_eq!(
            client.curl(&format!("http://{rip}/whoami")).unwrap(),
            format!("{cip}\n")
        );
    }
    // socat echo servers, TCP and UDP, through the director.
    let rs1 = t.real_servers()[0].ns.clone();
    let rip1 = t.real_servers()[0].addr().unwrap();
    let _tcp = rs1.echo_server(rvs_lab::Protocol::Tcp, 9001).unwrap();
    let _udp = rs1.echo_server(rvs_lab::Protocol::Udp, 9002).unwrap();
    for (proto, port) in [("TCP", 9001), ("UDP", 9002)] {
        let back = client
            .cmd("socat")
            .args(["-t", "1", "-T", "2", "-", &format!("{proto}:{rip1}:{port}")])
            .stdin(b"echo me\n".to_vec())
            .run()
            .unwrap();
        assert_eq!(back, "echo me\n", "{proto} echo");
    }
    // Real servers' gateway is the DIP.
    let route = t.real_servers()[0]
        .ns
        .ip(["route", "show", "default"])
        .unwrap();
    assert!(route.contains("via 10.2.0.1"), "{route}");
    drop_and_check_gone(t);
}

#[test]
fn nat_lab_kernel_baseline_alternates_real_servers() {
    rvs_require::require_root!();
    let mut t = rvs_lab::nat("natbase").unwrap();
    t.start_nginx().unwrap();
    let client = t.client().ns.clone();
    let url = format!("http://{}/", t.vip);
    // Without the baseline the director itself owns the VIP and nothing listens on :80.
    assert!(client.curl(&url).is_err());
    t.kernel_nat_baseline().unwrap();
    let pages: Vec<String> = (0..4).map(|_| client.curl(&url).unwrap()).collect();
    assert_eq!(pages, ["rs1\n", "rs2\n", "rs1\n", "rs2\n"]);
    // Masquerading keeps the client address, and the reply came back through the director.
    let cip = addr(&t, "client", "eth0");
    let seen = client.curl(&format!("http://{}/whoami", t.vip)).unwrap();
    assert_eq!(seen, format!("{cip}\n"));
    // UDP too, any port: a socat echo on each real server.
    let _e: Vec<_> = t
        .real_servers()
        .iter()
        .map(|rs| rs.ns.echo_server(rvs_lab::Protocol::Udp, 5353).unwrap())
        .collect();
    let back = client
        .cmd("socat")
        .args(["-t", "1", "-T", "2", "-", &format!("UDP:{}:5353", t.vip)])
        .stdin(b"via the kernel\n".to_vec())
        .run()
        .unwrap();
    assert_eq!(back, "via the kernel\n");
    t.remove_kernel_nat_baseline().unwrap();
    assert!(client.curl(&url).is_err());
    // Other kinds refuse.
    let dr = rvs_lab::dr("natbasedr").unwrap();
    assert!(dr.kernel_nat_baseline().is_err());
}

#[test]
fn dr_lab_segment_and_real_server_setup() {
    rvs_require::require_root!();
    let mut t = rvs_lab::dr("dr").unwrap();
    assert_macs(&t);
    let router = t.router().unwrap().ns.clone();
    let client = t.client().ns.clone();
    let director = t.director().ns.clone();
    let data = payload();
    assert_eq!(
        socat_transfer(&router, &client, addr(&t, "router", "eth0"), 7011, &data).unwrap(),
        data
    );
    // Director and real servers share the L2 segment.
    for rs in t.real_servers() {
        let got = socat_transfer(&rs.ns, &director, rs.addr().unwrap(), 7012, &data).unwrap();
        assert_eq!(got, data);
        let lo = rs.ns.ip(["-4", "addr", "show", "dev", "lo"]).unwrap();
        assert!(lo.contains("10.100.0.1/32"), "{lo}");
        assert_eq!(
            rs.ns.sysctl_get("net.ipv4.conf.all.arp_ignore").unwrap(),
            "1"
        );
        assert_eq!(
            rs.ns.sysctl_get("net.ipv4.conf.eth0.arp_announce").unwrap(),
            "2"
        );
        assert_eq!(
            rs.ns.sysctl_get("net.ipv4.conf.all.rp_filter").unwrap(),
            "0"
        );
    }
    // Real server to client traffic goes through the router, never through the director.
    let before = director.link_stats("eth0").unwrap();
    let big = vec![0x5a; 200_000];
    let got = socat_transfer(
        &client,
        &t.real_servers()[0].ns,
        addr(&t, "client", "eth0"),
        7014,
        &big,
    );
    assert_eq!(got.unwrap().len(), big.len());
    let after = director.link_stats("eth0").unwrap();
    let router_in = t.router().unwrap().ns.link_stats("eth1").unwrap();
    assert!(router_in.rx_bytes >= 200_000, "{router_in:?}");
    // Only broadcast/multicast chatter may reach the director meanwhile.
    assert!(
        after.rx_bytes - before.rx_bytes < 20_000,
        "{before:?} {after:?}"
    );
    // The router sends VIP traffic to the director, where the VIP is local.
    let got = socat_transfer(&director, &client, t.vip, 7013, &data).unwrap();
    assert_eq!(got, data);
    // Real servers are reachable from the client through the router.
    t.start_nginx().unwrap();
    let rip = t.real_servers()[1].addr().unwrap();
    assert_eq!(client.curl(&format!("http://{rip}/")).unwrap(), "rs2\n");
    drop_and_check_gone(t);
}

/// Builds an IPv4/UDP packet `src -> dst` carrying `data` (checksums filled).
fn udp_packet(src: SocketAddrV4, dst: SocketAddrV4, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    etherparse::PacketBuilder::ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .udp(src.port(), dst.port())
        .write(&mut out, data)
        .unwrap();
    out
}

/// Sends `bytes` from `ns` as the payload of a raw IPv4 packet of `proto` to `to` (the kernel
/// adds the outer IPv4 header: this is what a director's IPIP/GRE encapsulation puts on the
/// wire).
fn send_raw(ns: &Netns, proto: i32, to: Ipv4Addr, bytes: &[u8]) {
    ns.exec(|| -> std::io::Result<usize> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(proto)))?;
        s.send_to(bytes, &SockAddr::from(SocketAddrV4::new(to, 0)))
    })
    .unwrap()
    .unwrap();
}

fn bind_udp(ns: &Netns, at: SocketAddrV4) -> UdpSocket {
    let s = ns
        .exec(|| UdpSocket::bind(at))
        .unwrap()
        .unwrap_or_else(|e| panic!("bind {at} in {}: {e}", ns.name()));
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// One tunnelled request and its direct reply: the inner packet must reach a socket on the VIP
/// of the real server, and the server's answer must reach the client without the director.
fn tunnel_round_trip(
    client: &Netns,
    cip: Ipv4Addr,
    rs: &Netns,
    vip: Ipv4Addr,
    vport: u16,
    cport: u16,
    encap: impl FnOnce(&[u8]),
) {
    let server = bind_udp(rs, SocketAddrV4::new(vip, vport));
    let csock = bind_udp(client, SocketAddrV4::new(cip, cport));
    let data = payload();
    encap(&udp_packet(
        SocketAddrV4::new(cip, cport),
        SocketAddrV4::new(vip, vport),
        &data,
    ));
    let mut buf = [0u8; 128];
    let (n, from) = server
        .recv_from(&mut buf)
        .expect("inner packet never reached the VIP socket");
    assert_eq!(&buf[..n], &data[..]);
    assert_eq!(from, SocketAddr::V4(SocketAddrV4::new(cip, cport)));
    server.send_to(b"pong", from).unwrap();
    let (n, from) = csock
        .recv_from(&mut buf)
        .expect("reply never reached the client");
    assert_eq!(&buf[..n], b"pong");
    assert_eq!(from, SocketAddr::V4(SocketAddrV4::new(vip, vport)));
}

#[test]
fn tun_lab_decapsulates_ipip_gre_and_gue() {
    rvs_require::require_root!();
    let t = rvs_lab::tun("tun").unwrap();
    assert_macs(&t);
    assert_eq!(t.lab().decaps().len(), 2);
    let client = t.client().ns.clone();
    let director = t.director().ns.clone();
    let cip = addr(&t, "client", "eth0");
    let rs1 = t.node("rs1").unwrap();
    let rs2 = t.node("rs2").unwrap();
    let (rip1, rip2) = (rs1.addr().unwrap(), rs2.addr().unwrap());
    // Real servers sit on their own networks: only routing reaches them.
    assert_ne!(rip1.octets()[2], addr(&t, "director", "eth0").octets()[2]);

    tunnel_round_trip(&client, cip, &rs1.ns, t.vip, 9000, 40001, |inner| {
        send_raw(&director, 4, rip1, inner)
    });
    tunnel_round_trip(&client, cip, &rs2.ns, t.vip, 9000, 40002, |inner| {
        let mut gre = vec![0, 0, 0x08, 0x00];
        gre.extend_from_slice(inner);
        send_raw(&director, 47, rip2, &gre)
    });
    let gue_port = t.gue_port.unwrap();
    tunnel_round_trip(&client, cip, &rs1.ns, t.vip, 9000, 40003, |inner| {
        let mut gue = vec![0, 4, 0, 0];
        gue.extend_from_slice(inner);
        let s = director
            .exec(|| UdpSocket::bind("0.0.0.0:0"))
            .unwrap()
            .unwrap();
        s.send_to(&gue, SocketAddrV4::new(rip1, gue_port)).unwrap();
    });
    let d = t.lab().decaps();
    let c1 = counters_when(&d[0], |c| c.ipip == 1 && c.gue == 1);
    let c2 = counters_when(&d[1], |c| c.gre == 1);
    assert_eq!((c1.ipip, c1.gue, c1.dropped), (1, 1, 0), "{c1:?}");
    assert_eq!((c2.gre, c2.dropped), (1, 0), "{c2:?}");
    drop_and_check_gone(t);
}

#[test]
fn tun_lab_decapsulator_drops_garbage() {
    rvs_require::require_root!();
    let t = rvs_lab::tun("tungarbage").unwrap();
    let director = t.director().ns.clone();
    let rip1 = t.node("rs1").unwrap().addr().unwrap();
    // An IPIP payload that is not an IP packet.
    send_raw(&director, 4, rip1, &[0xde, 0xad, 0xbe, 0xef]);
    let c = counters_when(&t.lab().decaps()[0], |c| c.dropped == 1);
    assert_eq!((c.dropped, c.ipip), (1, 0));
}

#[test]
fn fullnat_lab_real_servers_only_see_the_director() {
    rvs_require::require_root!();
    let mut t = rvs_lab::fullnat("fullnat").unwrap();
    assert_macs(&t);
    assert_eq!(t.laddrs, vec![Ipv4Addr::new(10, 2, 0, 100)]);
    t.start_nginx().unwrap();
    let director = t.director().ns.clone();
    let client = t.client().ns.clone();
    let rip = t.real_servers()[0].addr().unwrap();
    // From the local address, the real server sees the local address.
    let seen = director
        .cmd("curl")
        .args(["-sS", "--max-time", "3", "--interface", "10.2.0.100"])
        .arg(format!("http://{rip}/whoami"))
        .run()
        .unwrap();
    assert_eq!(seen, "10.2.0.100\n");
    // The client reaches the director, but not the real servers (no forwarding, no route back).
    let data = payload();
    let got = socat_transfer(
        &director,
        &client,
        addr(&t, "director", "eth0"),
        7021,
        &data,
    );
    assert_eq!(got.unwrap(), data);
    let direct = client
        .cmd("curl")
        .args(["-sS", "--max-time", "1", &format!("http://{rip}/")])
        .output()
        .unwrap();
    assert!(!direct.status.success());
    drop_and_check_gone(t);
}

#[test]
fn selftest_dr_topology_matches_the_kernel_selftest() {
    rvs_require::require_root!();
    let t = rvs_lab::selftest("stdr", SelftestMode::Dr).unwrap();
    assert_macs(&t);
    assert_eq!(t.vip, Ipv4Addr::new(207, 175, 44, 110));
    assert_eq!(t.port, 8080);
    let ns0 = t.client();
    let ns1 = t.director();
    let ns2 = t.real_servers()[0];
    assert!(ns0.ns.name().ends_with("-ns0"));
    assert!(ns1.ns.name().ends_with("-ns1"));
    assert!(ns2.ns.name().ends_with("-ns2"));
    assert_eq!(ns0.iface("br0").unwrap().addr, Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(
        ns1.iface("veth10").unwrap().addr,
        Ipv4Addr::new(10, 0, 0, 1)
    );
    assert_eq!(
        ns1.iface("veth12").unwrap().addr,
        Ipv4Addr::new(172, 16, 0, 1)
    );
    assert_eq!(
        ns2.iface("veth21").unwrap().addr,
        Ipv4Addr::new(172, 16, 0, 2)
    );
    assert_eq!(
        ns2.iface("veth20").unwrap().addr,
        Ipv4Addr::new(10, 0, 0, 3)
    );
    let lo = ns1.ns.ip(["-4", "addr", "show", "dev", "lo"]).unwrap();
    assert!(
        lo.contains("207.175.44.110/32") && lo.contains("lo:1"),
        "{lo}"
    );
    let r = ns0.ns.ip(["route", "show", "207.175.44.110"]).unwrap();
    assert!(r.contains("via 10.0.0.1 dev br0"), "{r}");
    assert_eq!(
        t.rvsadm_commands(),
        vec![
            "rvsadm -A -t 207.175.44.110:8080 -s rr".to_owned(),
            "rvsadm -a -t 207.175.44.110:8080 -r 172.16.0.2:8080 -g".to_owned(),
        ]
    );

    // The real server's client-side leg is on the client's L2.
    let data = payload();
    let got = socat_transfer(&ns2.ns, &ns0.ns, Ipv4Addr::new(10, 0, 0, 3), 8080, &data);
    assert_eq!(got.unwrap(), data);
    // Kernel-forwarding baseline: ip_forward=1 on the director and a plain route on the client;
    // the reply comes back straight over veth20 (rp_filter 0 on the real server).
    ns0.ns
        .add_route("172.16.0.0/24", Ipv4Addr::new(10, 0, 0, 1))
        .unwrap();
    let data = payload();
    let got = socat_transfer(&ns2.ns, &ns0.ns, Ipv4Addr::new(172, 16, 0, 2), 8080, &data);
    assert_eq!(got.unwrap(), data);
}

#[test]
fn selftest_nat_baseline_through_the_director() {
    rvs_require::require_root!();
    let t = rvs_lab::selftest("stnat", SelftestMode::Nat).unwrap();
    let ns0 = t.client().ns.clone();
    let ns2 = t.real_servers()[0];
    assert!(!ns2.ns.links().unwrap().iter().any(|l| l == "veth20"));
    assert!(ns2.iface("veth20").is_none());
    assert_eq!(
        ns2.ns.ip(["route", "show", "default"]).unwrap().trim(),
        "default via 172.16.0.1 dev veth21"
    );
    ns0.add_route("172.16.0.0/24", Ipv4Addr::new(10, 0, 0, 1))
        .unwrap();
    let data = payload();
    let got = socat_transfer(&ns2.ns, &ns0, Ipv4Addr::new(172, 16, 0, 2), 8080, &data);
    assert_eq!(got.unwrap(), data);
}

#[test]
fn selftest_tun_decapsulator_delivers_a_hand_built_ipip_packet() {
    rvs_require::require_root!();
    let t = rvs_lab::selftest("sttun", SelftestMode::Tun).unwrap();
    assert_eq!(
        t.director().ns.sysctl_get("net.ipv4.ip_forward").unwrap(),
        "0"
    );
    let ns0 = t.client().ns.clone();
    let ns1 = t.director().ns.clone();
    let ns2 = t.real_servers()[0].ns.clone();
    assert!(ns2.links().unwrap().iter().any(|l| l == "rvsdec0"));
    // Director (ns1) encapsulates client 10.0.0.2 -> VIP:8080 in IPIP toward 172.16.0.2; the
    // real server answers the client directly over veth20.
    tunnel_round_trip(
        &ns0,
        Ipv4Addr::new(10, 0, 0, 2),
        &ns2,
        t.vip,
        8080,
        40010,
        |inner| send_raw(&ns1, 4, Ipv4Addr::new(172, 16, 0, 2), inner),
    );
    let c = counters_when(&t.lab().decaps()[0], |c| c.ipip == 1);
    assert_eq!((c.ipip, c.gre, c.gue, c.dropped), (1, 0, 0, 0));
}

#[test]
fn selftest_tun_decapsulator_handles_ipv6_outer_and_inner() {
    rvs_require::require_root!();
    let t = rvs_lab::selftest("sttun6", SelftestMode::Tun).unwrap();
    let ns0 = t.client().ns.clone();
    let ns1 = t.director().ns.clone();
    let ns2 = t.real_servers()[0].ns.clone();
    // An IPv6 leg between director and real server (nodad: usable at once).
    ns1.ip(["-6", "addr", "add", "fd01::1/64", "dev", "veth12", "nodad"])
        .unwrap();
    ns2.ip(["-6", "addr", "add", "fd01::2/64", "dev", "veth21", "nodad"])
        .unwrap();
    ns2.ip(["-6", "addr", "add", "fd00::100/128", "dev", "lo", "nodad"])
        .unwrap();
    let rs6: std::net::Ipv6Addr = "fd01::2".parse().unwrap();

    // IPv4 in IPv6 (the raw IPv6 socket path), reply straight to the client over IPv4.
    tunnel_round_trip(
        &ns0,
        Ipv4Addr::new(10, 0, 0, 2),
        &ns2,
        t.vip,
        8080,
        40020,
        |inner| {
            ns1.exec(|| -> std::io::Result<usize> {
                let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(4)))?;
                s.send_to(
                    inner,
                    &SockAddr::from(std::net::SocketAddrV6::new(rs6, 0, 0, 0)),
                )
            })
            .unwrap()
            .unwrap();
        },
    );

    // IPv6 in IPv4 (protocol 41): the inner packet reaches a socket on an IPv6 VIP.
    let vip6: std::net::Ipv6Addr = "fd00::100".parse().unwrap();
    let server = ns2
        .exec(|| UdpSocket::bind(std::net::SocketAddrV6::new(vip6, 9000, 0, 0)))
        .unwrap()
        .unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let data = payload();
    let mut inner = Vec::new();
    etherparse::PacketBuilder::ipv6(
        "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets(),
        vip6.octets(),
        64,
    )
    .udp(40021, 9000)
    .write(&mut inner, &data)
    .unwrap();
    send_raw(&ns1, 41, Ipv4Addr::new(172, 16, 0, 2), &inner);
    let mut buf = [0u8; 128];
    let (n, from) = server.recv_from(&mut buf).unwrap_or_else(|e| {
        panic!(
            "6in4 inner packet lost ({e}); decap {:?}",
            t.lab().decaps()[0].counters()
        )
    });
    assert_eq!(&buf[..n], &data[..]);
    assert_eq!(from.port(), 40021);
    let c = counters_when(&t.lab().decaps()[0], |c| c.ipip == 2);
    assert_eq!((c.ipip, c.dropped), (2, 0));
}

#[test]
fn ha_pair_carries_vrrp_multicast() {
    rvs_require::require_root!();
    let t = rvs_lab::ha("havrrp").unwrap();
    let ds = t.directors();
    let group = Ipv4Addr::new(224, 0, 0, 18);
    let a1 = ds[0].iface("eth0").unwrap().addr;
    let a2 = ds[1].iface("eth0").unwrap().addr;
    // director2 listens like a VRRP backup: raw protocol 112, member of 224.0.0.18 on eth0.
    let rx = ds[1]
        .ns
        .exec(|| -> std::io::Result<Socket> {
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))?;
            s.join_multicast_v4(&group, &a2)?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            Ok(s)
        })
        .unwrap()
        .unwrap();
    // director1 advertises like a VRRP master (TTL 255, out of eth0).
    let advert = [0x21, 51, 100, 1, 0, 1, 0, 0, 10, 1, 0, 100];
    ds[0]
        .ns
        .exec(|| -> std::io::Result<usize> {
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))?;
            s.set_multicast_if_v4(&a1)?;
            s.set_multicast_ttl_v4(255)?;
            s.send_to(&advert, &SockAddr::from(SocketAddrV4::new(group, 0)))
        })
        .unwrap()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = std::io::Read::read(&mut &rx, &mut buf).expect("advertisement lost");
    // Raw IPv4 sockets deliver the IP header: source director1, TTL 255, then our bytes.
    assert_eq!(&buf[12..16], &a1.octets());
    assert_eq!(buf[8], 255);
    assert_eq!(&buf[20..n], &advert);
}

#[test]
fn ha_pair_shares_both_segments() {
    rvs_require::require_root!();
    let t = rvs_lab::ha("ha").unwrap();
    assert_macs(&t);
    let ds = t.directors();
    assert_eq!(ds.len(), 2);
    let data = payload();
    // Client and both directors on one segment; directors see each other on both.
    for d in &ds {
        let a = d.iface("eth0").unwrap().addr;
        assert_eq!(
            socat_transfer(&d.ns, &t.client().ns, a, 7031, &data).unwrap(),
            data
        );
    }
    let d2_server = ds[1].iface("eth1").unwrap().addr;
    assert_eq!(
        socat_transfer(&ds[1].ns, &ds[0].ns, d2_server, 7032, &data).unwrap(),
        data
    );
    for rs in t.real_servers() {
        let a = ds[0].iface("eth1").unwrap().addr;
        assert_eq!(
            socat_transfer(&ds[0].ns, &rs.ns, a, 7033, &data).unwrap(),
            data
        );
    }
    // Neither the VIP nor the floating DIP is configured: VRRP owns them.
    for d in &ds {
        let all = d.ns.ip(["-4", "addr"]).unwrap();
        assert!(
            !all.contains("10.1.0.100") && !all.contains("10.2.0.1/"),
            "{all}"
        );
    }
}

/// The direct-routing HA pairs: the router and both directors share the VIP segment, the
/// directors, the router and the real servers the server segment; the real servers hold the
/// VIP on `lo` without claiming it by ARP and route to the client through the router (not a
/// director); the TUN pair runs a decapsulator on each.
#[test]
fn ha_direct_pairs_route_replies_around_the_directors() {
    rvs_require::require_root!();
    for kind in [LabKind::HaDr, LabKind::HaTun] {
        let t = Topology::build(
            Lab::new(&format!("hadir{}", kind == LabKind::HaTun)).unwrap(),
            kind,
            rvs_lab::BuildOptions::default(),
        )
        .unwrap();
        assert_macs(&t);
        assert!(t.kind().is_ha_pair());
        let ds = t.directors();
        assert_eq!(ds.len(), 2);
        let router = t.router().unwrap();
        let data = payload();
        // The router reaches both directors on the VIP segment and the real servers on the
        // server segment; the client reaches the real servers through the router.
        for d in &ds {
            let a = d.iface("eth0").unwrap().addr;
            assert_eq!(
                socat_transfer(&d.ns, &router.ns, a, 7041, &data).unwrap(),
                data
            );
        }
        for rs in t.real_servers() {
            let a = rs.addr().unwrap();
            assert_eq!(
                socat_transfer(&rs.ns, &t.client().ns, a, 7042, &data).unwrap(),
                data
            );
            let lo = rs.ns.ip(["-4", "addr", "show", "dev", "lo"]).unwrap();
            assert!(lo.contains("10.1.0.100/32"), "{lo}");
            assert_eq!(
                rs.ns.sysctl_get("net.ipv4.conf.eth0.arp_ignore").unwrap(),
                "1"
            );
            assert_eq!(
                rs.ns.sysctl_get("net.ipv4.conf.eth0.arp_announce").unwrap(),
                "2"
            );
            // A reply from the VIP to the client leaves through the router.
            let r = rs
                .ns
                .ip(["-4", "route", "get", "192.168.1.2", "from", "10.1.0.100"])
                .unwrap();
            assert!(r.contains("via 10.2.0.254 dev eth0"), "{r}");
        }
        // Nothing holds the VIP yet (VRRP will), and nobody answers ARP for it: the real
        // servers keep theirs to themselves (while a director's address answers).
        router
            .ns
            .cmd("ping")
            .args(["-c", "1", "-W", "1", "10.1.0.11"])
            .run()
            .expect("ping director1");
        let arp = router
            .ns
            .cmd("ping")
            .args(["-c", "1", "-W", "1", "10.1.0.100"])
            .run();
        assert!(arp.is_err(), "the VIP answered before any director held it");
        assert_eq!(
            t.lab().decaps().len(),
            if kind == LabKind::HaTun { 2 } else { 0 }
        );
    }
}

#[test]
fn a_panicking_test_leaves_nothing_behind() {
    rvs_require::require_root!();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut t = rvs_lab::nat("panics").unwrap();
        t.start_nginx().unwrap();
        let pids = rvs_lab::NsCommand::host("ip")
            .args(["netns", "pids", t.real_servers()[0].ns.name()])
            .run()
            .unwrap();
        tx.send((
            t.lab().prefix().to_owned(),
            t.lab().workdir().to_owned(),
            pids,
        ))
        .unwrap();
        panic!("deliberate panic with a lab and nginx up");
    });
    assert!(handle.join().is_err());
    let (prefix, workdir, pids) = rx.recv().unwrap();
    assert!(!pids.trim().is_empty(), "nginx should have been running");
    assert!(list_namespaces(&prefix).unwrap().is_empty());
    assert!(!workdir.exists());
    for pid in pids.split_whitespace() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().chars().next());
        assert!(
            stat.is_empty() || state == Some(Some('Z')),
            "process {pid} survived the lab: {stat}"
        );
    }
}

#[test]
fn cleanup_stale_removes_a_kept_lab() {
    rvs_require::require_root!();
    let mut lab = Lab::new("stale").unwrap();
    let prefix = lab.prefix().to_owned();
    let a = lab.add_netns("a").unwrap();
    let b = lab.add_netns("b").unwrap();
    lab.veth(&a, "eth0", &b, "eth0").unwrap();
    let keeper = a.cmd("sleep").arg("30").spawn().unwrap();
    lab.own(keeper);
    lab.keep(); // as if the process had crashed before Drop
    drop(lab);
    let mut left = list_namespaces(&prefix).unwrap();
    left.sort();
    assert_eq!(left, vec![format!("{prefix}-a"), format!("{prefix}-b")]);
    let mut removed = rvs_lab::cleanup_stale(&prefix).unwrap();
    removed.sort();
    assert_eq!(removed, left);
    assert!(list_namespaces(&prefix).unwrap().is_empty());
    assert!(!Path::new(rvs_lab::netns::WORK_ROOT).join(&prefix).exists());
}

#[test]
fn commands_time_out_and_report_failures() {
    rvs_require::require_root!();
    let mut lab = Lab::new("cmds").unwrap();
    let ns = lab.add_netns("x").unwrap();
    let started = std::time::Instant::now();
    let err = ns
        .cmd("sleep")
        .arg("5")
        .timeout(Duration::from_millis(200))
        .output()
        .unwrap_err();
    assert!(matches!(err, rvs_lab::LabError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // A program that leaves a child holding its stdout open does not hang `run`.
    let started = std::time::Instant::now();
    let out = ns
        .cmd("sh")
        .args(["-c", "echo hi; sleep 3 & exit 0"])
        .timeout(Duration::from_secs(2))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout_str(), "hi\n");
    assert!(started.elapsed() < Duration::from_millis(2500));
    let err = ns.ip(["link", "set", "nonexistent", "up"]).unwrap_err();
    assert!(matches!(err, rvs_lab::LabError::Command { .. }), "{err}");
    let err = ns
        .wait_for_port(rvs_lab::Protocol::Tcp, 9, Duration::from_millis(100))
        .unwrap_err();
    assert!(matches!(err, rvs_lab::LabError::Timeout { .. }), "{err}");
    assert!(lab.veth(&ns, "name-much-too-long", &ns, "b").is_err());
    // A closure inside the namespace sees only the namespace's interfaces.
    let links = ns
        .exec(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default())
        .unwrap();
    assert!(links.contains("lo:") && !links.contains("eth0"), "{links}");
    drop(lab);
}

#[test]
fn cli_up_list_down() {
    rvs_require::require_root!();
    let exe = env!("CARGO_BIN_EXE_rvs-lab");
    let prefix = format!("rvlt-cli-{}-x", std::process::id());
    let run = |args: &[&str]| {
        let out = Command::new(exe).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "rvs-lab {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let up = run(&["up", "tun", "--prefix", &prefix, "--no-nginx"]);
    assert!(
        up.contains(" -a -t 10.100.0.1:80 -r 10.5.1.11:80 -i\n"),
        "{up}"
    );
    assert!(up.contains(&format!("{prefix}-rs1")), "{up}");
    // The decapsulators run as processes inside the real servers' namespaces.
    let pids = rvs_lab::NsCommand::host("ip")
        .args(["netns", "pids", &format!("{prefix}-rs1")])
        .run()
        .unwrap();
    assert_eq!(pids.split_whitespace().count(), 1, "{pids}");
    let list = run(&["list"]);
    assert!(list.contains(&format!("{prefix}-director")), "{list}");
    // A second `up` with the same prefix is refused.
    let again = Command::new(exe)
        .args(["up", "nat", "--prefix", &prefix])
        .output()
        .unwrap();
    assert!(!again.status.success());
    let down = run(&["down", "--prefix", &prefix]);
    assert_eq!(down.lines().count(), 5, "{down}");
    assert!(list_namespaces(&prefix).unwrap().is_empty());
}

#[test]
fn topologies_scale_the_number_of_real_servers() {
    rvs_require::require_root!();
    let opts = rvs_lab::BuildOptions {
        real_servers: 4,
        ..Default::default()
    };
    let t = Topology::build(Lab::new("nat4").unwrap(), LabKind::Nat, opts).unwrap();
    assert_eq!(
        t.rips(),
        (11..=14)
            .map(|h| Ipv4Addr::new(10, 2, 0, h))
            .collect::<Vec<_>>()
    );
    assert_eq!(t.rvsadm_commands().len(), 5);
    let rs4 = t.node("rs4").unwrap();
    let data = payload();
    let got = socat_transfer(&rs4.ns, &t.client().ns, rs4.addr().unwrap(), 7041, &data);
    assert_eq!(got.unwrap(), data);

    let opts = rvs_lab::BuildOptions {
        real_servers: 3,
        ..Default::default()
    };
    let t = Topology::build(Lab::new("tun3").unwrap(), LabKind::Tun, opts).unwrap();
    assert_eq!(t.lab().decaps().len(), 3);
    assert_eq!(addr(&t, "router", "eth4"), Ipv4Addr::new(10, 5, 3, 1));
    let rs3 = t.node("rs3").unwrap();
    assert_eq!(rs3.addr(), Some(Ipv4Addr::new(10, 5, 3, 13)));
    let cip = addr(&t, "client", "eth0");
    let director = t.director().ns.clone();
    tunnel_round_trip(&t.client().ns, cip, &rs3.ns, t.vip, 9000, 40030, |inner| {
        send_raw(&director, 4, Ipv4Addr::new(10, 5, 3, 13), inner)
    });

    let bad = rvs_lab::BuildOptions {
        real_servers: 0,
        ..Default::default()
    };
    let lab = Lab::new("bad").unwrap();
    let prefix = lab.prefix().to_owned();
    assert!(Topology::build(lab, LabKind::Dr, bad).is_err());
    assert!(list_namespaces(&prefix).unwrap().is_empty());
}

#[test]
fn topologies_describe_themselves() {
    rvs_require::require_root!();
    let mut t = Topology::build(
        Lab::new("describe").unwrap(),
        LabKind::Fullnat,
        rvs_lab::BuildOptions::default(),
    )
    .unwrap();
    let d = t.describe();
    let cmds = rvs_lab::parse_walkthrough(&d);
    let dir = t.director().ns.name().to_owned();
    let sock = t.walkthrough_socket(t.director()).display().to_string();
    assert!(
        cmds.iter().any(|c| c.starts_with(&format!(
            "ip netns exec {dir} rvsd --socket {sock} --interface eth0 --interface eth1 >"
        )) && c.ends_with(" 2>&1 &")),
        "{d}"
    );
    // The options a test adds (its packet-plane mode) follow rvsd's own on its line.
    t.set_walkthrough_rvsd_options(&["--xdp", "generic"]);
    let with = rvs_lab::parse_walkthrough(&t.describe());
    assert!(
        with.iter().any(|c| c.starts_with(&format!(
            "ip netns exec {dir} rvsd --socket {sock} --interface eth0 --interface eth1 \
             --xdp generic >"
        ))),
        "{with:?}"
    );
    assert!(
        cmds.contains(&format!(
            "ip netns exec {dir} rvsadm --socket {sock} --add-laddr -t 10.100.0.1:80 -z 10.2.0.100"
        )),
        "{d}"
    );
    assert!(
        cmds.contains(&format!(
            "ip netns exec {dir} rvsadm --socket {sock} -a -t 10.100.0.1:80 -r 10.2.0.12:80 --fullnat"
        )),
        "{d}"
    );
    let client = t.client().ns.name();
    assert!(
        cmds.contains(&format!(
            "ip netns exec {client} curl -sS --max-time 5 http://10.100.0.1:80/whoami"
        )),
        "{d}"
    );
    assert!(!d.contains('…'), "no ellipsis: {d}");
}

/// A stand-in for the TUN data plane, to prove the TUN lab carries real TCP: the director routes
/// the VIP into a TUN device, and a thread wraps each packet in IPIP to a real server chosen by
/// the parity of the client port. Stops when `stop` is set.
fn emulated_ipip_director(
    director: &Netns,
    vip: Ipv4Addr,
    rips: Vec<Ipv4Addr>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    director.del_addr("lo", &format!("{vip}/32")).unwrap();
    director.sysctl("net.ipv4.ip_forward", "1").unwrap();
    let (dev, raw) = director
        .exec(|| {
            let mut cfg = tun::Configuration::default();
            cfg.tun_name("enc0").mtu(1480).up();
            let dev = tun::create(&cfg).unwrap();
            let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(4))).unwrap();
            (dev, raw)
        })
        .unwrap();
    director
        .ip(["route", "add", &format!("{vip}/32"), "dev", "enc0"])
        .unwrap();
    std::thread::spawn(move || {
        let mut sent = 0;
        let mut buf = vec![0u8; 2048];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok(n) = dev.recv_timeout(&mut buf, Duration::from_millis(50)) else {
                continue;
            };
            let pkt = &buf[..n];
            // IPv4 with TCP/UDP: source port right after the IP header.
            if n < 24 || pkt[0] >> 4 != 4 {
                continue;
            }
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            let sport = u16::from_be_bytes([pkt[ihl], pkt[ihl + 1]]);
            let rip = rips[usize::from(sport) % rips.len()];
            if raw
                .send_to(pkt, &SockAddr::from(SocketAddrV4::new(rip, 0)))
                .is_ok()
            {
                sent += 1;
            }
        }
        sent
    })
}

#[test]
fn tun_lab_carries_tcp_through_an_emulated_ipip_director() {
    rvs_require::require_root!();
    let mut t = rvs_lab::tun("tuntcp").unwrap();
    t.start_nginx().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let director = t.director().ns.clone();
    let worker = emulated_ipip_director(&director, t.vip, t.rips(), stop.clone());
    let client = t.client().ns.clone();
    let cip = addr(&t, "client", "eth0");
    let before = director.link_stats("eth0").unwrap();
    for (port, want) in [(40100, "rs1\n"), (40101, "rs2\n"), (40102, "rs1\n")] {
        let page = client
            .cmd("curl")
            .args(["-sS", "--max-time", "3", "--local-port", &port.to_string()])
            .arg(format!("http://{}/", t.vip))
            .run();
        assert_eq!(page.unwrap(), want, "client port {port}");
    }
    let whoami = client
        .cmd("curl")
        .args(["-sS", "--max-time", "3", "--local-port", "40104"])
        .arg(format!("http://{}/whoami", t.vip))
        .run()
        .unwrap();
    assert_eq!(
        whoami,
        format!("{cip}\n"),
        "the real server sees the client"
    );
    let after = director.link_stats("eth0").unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = worker.join().unwrap();
    assert!(
        sent >= 4 * 4,
        "at least SYN, ACK, request, FIN per connection: {sent}"
    );
    // The director only ever sent encapsulated requests: its transmit count matches what the
    // emulator sent (plus ARP), while the replies went router -> client directly.
    assert!(
        after.tx_packets - before.tx_packets <= sent + 4,
        "{before:?} {after:?} sent {sent}"
    );
    // Every encapsulated packet was taken apart by one of the two real servers (the counters
    // may trail the last packets by a moment: wait ≤ 2 s).
    let d = t.lab().decaps();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let (mut c1, mut c2) = (0, 0);
    while std::time::Instant::now() < deadline {
        (c1, c2) = (d[0].counters().ipip, d[1].counters().ipip);
        if c1 + c2 == sent {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(c1 + c2, sent);
    assert!(c1 > 0 && c2 > 0, "{c1} {c2}");
}

/// `rvs-lab up ecmp`: BIRD runs on the router and the three directors, every director's BGP
/// session with the router is established (BFD on), and the printed text says what to run.
#[test]
fn cli_up_ecmp_starts_bird_and_prints_what_to_try() {
    rvs_require::require_root!();
    let exe = env!("CARGO_BIN_EXE_rvs-lab");
    let prefix = format!("rvlt-ecmp-{}-x", std::process::id());
    let out = Command::new(exe)
        .args(["up", "ecmp", "--prefix", &prefix, "--no-nginx"])
        .output()
        .unwrap();
    let up = String::from_utf8_lossy(&out.stdout).into_owned();
    // Removed whatever happens below.
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = rvs_lab::cleanup_stale(&self.0);
        }
    }
    let _down = Down(prefix.clone());
    assert!(
        out.status.success(),
        "{up}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        up.contains("--announce-table 100 --sysctl sloppy_tcp=1"),
        "{up}"
    );
    assert!(up.contains("-A -t 10.100.0.1:80 -s mh -b mh-port"), "{up}");
    assert!(
        up.contains("-a -t 10.100.0.1:80 -r 10.30.0.24:80 -g"),
        "{up}"
    );
    let sock = format!("/tmp/rvs-lab/{prefix}/bird-{prefix}-r.ctl");
    let mut shown = String::new();
    let established = (0..100).any(|_| {
        shown = rvs_lab::NsCommand::new(&format!("{prefix}-r"), "birdc")
            .args(["-s", &sock, "show", "protocols"])
            .run()
            .unwrap_or_default();
        let ok = shown.matches("Established").count() == 3;
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    assert!(established, "three BGP sessions on the router:\n{shown}");
    let mut bfd = String::new();
    let up3 = (0..100).any(|_| {
        bfd = rvs_lab::NsCommand::new(&format!("{prefix}-r"), "birdc")
            .args(["-s", &sock, "show", "bfd", "sessions"])
            .run()
            .unwrap_or_default();
        let ok = bfd.matches(" Up ").count() == 3;
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    assert!(up3, "three BFD sessions up:\n{bfd}");
}
