//! Golden outputs for a varied table (IPv4, IPv6, fwmark, persistence with masks, ops,
//! scheduler flags, every forwarding method, tunnels with checksum flags, thresholds, big
//! counters) in every listing format, plus save/restore round trips and the requests that
//! `-A/-E/-a/-e` send (full replacement with ipvsadm's defaults).

mod common;
use common::*;
use rvs_control::*;

fn varied() -> Vec<ServiceEntry> {
    use ForwardMethod::*;
    let mut web = svc(tcp("10.0.0.1", 80), "wrr");
    let mut d1 = dest("192.168.1.10", 80, Masq, 5, 12, 345);
    d1.spec.u_threshold = 100;
    d1.spec.l_threshold = 50;
    d1.persist_conns = 0;
    d1.stats = Stats {
        conns: 99_999_999,
        inpkts: 100_000_000,
        outpkts: 999_999_999_999,
        inbytes: 123_456_789_012_345_678,
        outbytes: 5_000_000_000,
        cps: 1234,
        inpps: 56789,
        outpps: 123_456_789,
        inbps: 987_654_321,
        outbps: 12,
    };
    let mut d2 = dest("192.168.1.11", 8080, FullNat, 1, 0, 1);
    d2.stats = Stats {
        conns: 7,
        inpkts: 70,
        outpkts: 60,
        inbytes: 7000,
        outbytes: 6000,
        ..Default::default()
    };
    web.dests = vec![d2, d1];
    web.stats = Stats {
        conns: 100_000_006,
        inpkts: 100_000_070,
        outpkts: 1_000_000_000_059,
        inbytes: 123_456_789_012_352_678,
        outbytes: 5_000_006_000,
        cps: 1234,
        inpps: 56789,
        outpps: 123_456_789,
        inbps: 987_654_321,
        outbps: 12,
    };

    // 192.0.2.200 and 10.0.0.1 are more than 2^31 apart: ipvsadm's wrapping comparison sorts
    // 192.0.2.200 first.
    let mut tls = persistent(
        svc(tcp("192.0.2.200", 443), "lc"),
        1800,
        Some(mask(255, 255, 0, 0)),
    );
    tls.spec.pe_name = Some("sip".into());
    tls.spec.proxy_protocol = ProxyProtocol::V2;
    let mut p = dest("192.168.2.1", 443, Route, 10, 3, 4);
    p.persist_conns = 9;
    tls.dests = vec![dest("127.0.0.1", 443, Local, 1, 0, 0), p];

    let mut dns = svc(udp("10.0.0.1", 53), "mh");
    dns.spec.flags.one_packet = true;
    dns.spec.flags.sched1 = true;
    dns.spec.flags.sched2 = true;
    dns.dests = vec![dest("192.168.1.20", 53, Masq, 1, 0, 0)];

    let mut sctp = ServiceEntry {
        spec: ServiceSpec {
            key: ServiceKey::Addr {
                protocol: Protocol::Sctp,
                addr: ip("10.0.0.2"),
                port: 5000,
            },
            ..svc(tcp("10.0.0.2", 5000), "rr").spec
        },
        stats: Stats::default(),
        dests: vec![],
    };
    let mut gue = dest("192.168.3.1", 5000, Tunnel, 1, 0, 0);
    gue.spec.tun_type = TunnelType::Gue;
    gue.spec.tun_port = 5555;
    gue.spec.tun_csum = TunnelCsum::RemCsum;
    let mut gre = dest("192.168.3.2", 5000, Tunnel, 2, 0, 0);
    gre.spec.tun_type = TunnelType::Gre;
    gre.spec.tun_csum = TunnelCsum::Csum;
    let ipip = dest("192.168.3.3", 5000, Tunnel, 3, 0, 0);
    sctp.dests = vec![ipip, gre, gue];

    let mut v6 = persistent(svc(tcp("2001:db8::1", 443), "sed"), 600, Some(64));
    let mut mixed = dest("192.168.4.1", 443, Tunnel, 1, 0, 0);
    mixed.spec.tun_type = TunnelType::Gue;
    mixed.spec.tun_port = 6080;
    v6.dests = vec![mixed, dest("2001:db8::10", 443, Masq, 1, 2, 3)];

    let mut fw = svc(fwm(100, false), "rr");
    fw.spec.flags.sched1 = true;
    fw.spec.flags.sched3 = true;
    fw.dests = vec![dest("192.168.5.1", 0, Route, 1, 0, 0)];

    let mut fw6 = persistent(svc(fwm(7, true), "wlc"), 360, None);
    fw6.dests = vec![dest("2001:db8::20", 0, Masq, 4, 0, 0)];

    let any = persistent(svc(tcp("10.0.0.3", 0), "wlc"), 360, None);

    vec![fw, v6, sctp, any, dns, fw6, web, tls]
}

fn listing(args: &[&str]) -> String {
    let mut t = MemTable::with(varied());
    let r = run(&mut t, args);
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{args:?}");
    r.out
}

/// `⏎`-terminated lines → text.
fn g(s: &str) -> String {
    s.lines()
        .map(|l| l.trim_start_matches('|'))
        .filter(|l| !l.is_empty())
        .map(|l| format!("{}\n", l.strip_suffix('⏎').expect("line must end in ⏎")))
        .collect()
}

#[test]
fn default_listing() {
    assert_eq!(
        listing(&["-Ln"]),
        g("
|IP Virtual Server version 1.2.1 (size=4096)⏎
|Prot LocalAddress:Port Scheduler Flags⏎
|  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn⏎
|TCP  192.0.2.200:443 lc persistent 1800 mask 255.255.0.0 pe sip proxy-protocol v2⏎
|  -> 127.0.0.1:443                Local   1      0          0         ⏎
|  -> 192.168.2.1:443              Route   10     3          4         ⏎
|TCP  10.0.0.1:80 wrr⏎
|  -> 192.168.1.10:80              Masq    5      12         345       ⏎
|  -> 192.168.1.11:8080            FullNat 1      0          1         ⏎
|TCP  10.0.0.3:0 wlc persistent 360⏎
|UDP  10.0.0.1:53 mh (mh-fallback,mh-port) ops⏎
|  -> 192.168.1.20:53              Masq    1      0          0         ⏎
|SCTP 10.0.0.2:5000 rr⏎
|  -> 192.168.3.1:5000             Tunnel  1      0          0         ⏎
|  -> 192.168.3.2:5000             Tunnel  2      0          0         ⏎
|  -> 192.168.3.3:5000             Tunnel  3      0          0         ⏎
|TCP  [2001:db8::1]:443 sed persistent 600 mask 64⏎
|  -> 192.168.4.1:443              Tunnel  1      0          0         ⏎
|  -> [2001:db8::10]:443           Masq    1      2          3         ⏎
|FWM  7 IPv6 wlc persistent 360⏎
|  -> [2001:db8::20]:0             Masq    4      0          0         ⏎
|FWM  100 rr (flag-1,flag-3)⏎
|  -> 192.168.5.1:0                Route   1      0          0         ⏎
")
    );
}

#[test]
fn stats_listing() {
    assert_eq!(
        listing(&["-Ln", "--stats"]),
        g("
|IP Virtual Server version 1.2.1 (size=4096)⏎
|Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes⏎
|  -> RemoteAddress:Port⏎
|TCP  192.0.2.200:443                     0        0        0        0        0⏎
|  -> 127.0.0.1:443                       0        0        0        0        0⏎
|  -> 192.168.2.1:443                     0        0        0        0        0⏎
|TCP  10.0.0.1:80                   100000K  100000K    1000G  123456T    5000M⏎
|  -> 192.168.1.10:80              99999999  100000K     999G  123456T    5000M⏎
|  -> 192.168.1.11:8080                   7       70       60     7000     6000⏎
|TCP  10.0.0.3:0                          0        0        0        0        0⏎
|UDP  10.0.0.1:53                         0        0        0        0        0⏎
|  -> 192.168.1.20:53                     0        0        0        0        0⏎
|SCTP 10.0.0.2:5000                       0        0        0        0        0⏎
|  -> 192.168.3.1:5000                    0        0        0        0        0⏎
|  -> 192.168.3.2:5000                    0        0        0        0        0⏎
|  -> 192.168.3.3:5000                    0        0        0        0        0⏎
|TCP  [2001:db8::1]:443                   0        0        0        0        0⏎
|  -> 192.168.4.1:443                     0        0        0        0        0⏎
|  -> [2001:db8::10]:443                  0        0        0        0        0⏎
|FWM  7 IPv6                              0        0        0        0        0⏎
|  -> [2001:db8::20]:0                    0        0        0        0        0⏎
|FWM  100                                 0        0        0        0        0⏎
|  -> 192.168.5.1:0                       0        0        0        0        0⏎
")
    );
}

#[test]
fn stats_exact_listing() {
    let out = listing(&["-Ln", "--stats", "--exact"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[6],
        "TCP  10.0.0.1:80                  100000006 100000070 1000000000059 123456789012352678 5000006000"
    );
    assert_eq!(
        lines[7],
        "  -> 192.168.1.10:80              99999999 100000000 999999999999 123456789012345678 5000000000"
    );
    assert_eq!(
        lines[8],
        "  -> 192.168.1.11:8080                   7       70       60     7000     6000"
    );
}

#[test]
fn rate_listing() {
    let out = listing(&["-Ln", "--rate"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[1],
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS"
    );
    assert_eq!(
        lines[6],
        "TCP  10.0.0.1:80                      1234    56789  123456K  987654K       12"
    );
    // Dest cps/inpps/outpps are printed exactly (%8llu), the byte rates as largenum.
    assert_eq!(
        lines[7],
        "  -> 192.168.1.10:80                  1234    56789 123456789  987654K       12"
    );
    let exact = listing(&["-Ln", "--rate", "-X"]);
    assert_eq!(
        exact.lines().nth(7).unwrap(),
        "  -> 192.168.1.10:80                  1234    56789 123456789 987654321       12"
    );
}

#[test]
fn thresholds_persistent_and_tunnel_listings() {
    let out = listing(&["-Ln", "--thresholds"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[3],
        "TCP  192.0.2.200:443 lc persistent 1800 mask 255.255.0.0 pe sip proxy-protocol v2"
    );
    assert_eq!(
        lines[7],
        "  -> 192.168.1.10:80              100        50         12         345       "
    );
    assert_eq!(
        lines[8],
        "  -> 192.168.1.11:8080            0          0          0          1         "
    );

    let out = listing(&["-Ln", "--persistent-conn"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[5],
        "  -> 192.168.2.1:443              10        9           3          4         "
    );

    // One service (no version header), tunnel details.
    assert_eq!(
        listing(&["-Ln", "--tun-info", "--sctp-service", "10.0.0.2:5000"]),
        g("
|Prot LocalAddress:Port Scheduler Flags⏎
|  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn⏎
|SCTP 10.0.0.2:5000 rr⏎
|  -> 192.168.3.1:5000             Tunnel  gue:5555:r+c  1      0          0         ⏎
|  -> 192.168.3.2:5000             Tunnel  gre:+c        2      0          0         ⏎
|  -> 192.168.3.3:5000             Tunnel  ipip          3      0          0         ⏎
")
    );
    let out = listing(&["-Ln", "--tun-info"]);
    assert!(out.contains(
        "\n  -> 192.168.1.11:8080            FullNat n/a           1      0          1         \n"
    ));
}
