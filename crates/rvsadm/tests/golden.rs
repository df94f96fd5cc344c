//! Golden outputs for a varied table (IPv4, IPv6, fwmark, persistence with masks, ops,
//! scheduler flags, every forwarding method, tunnels with checksum flags, thresholds, big
//! counters) in every listing format, plus save/restore round trips and the requests that
//! `-A/-E/-a/-e` send (full replacement with ipvsadm's defaults).

mod common;
use common::*;
use rvs_control::*;
use std::net::Ipv4Addr;

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

#[test]
fn save_of_varied_table() {
    assert_eq!(
        listing(&["-Sn"]),
        "-A -t 192.0.2.200:443 -s lc -p 1800 -M 255.255.0.0 --pe sip --proxy-protocol v2\n\
-a -t 192.0.2.200:443 -r 127.0.0.1:443 -g -w 1\n\
-a -t 192.0.2.200:443 -r 192.168.2.1:443 -g -w 10\n\
-A -t 10.0.0.1:80 -s wrr\n\
-a -t 10.0.0.1:80 -r 192.168.1.10:80 -m -w 5\n\
-a -t 10.0.0.1:80 -r 192.168.1.11:8080 --fullnat -w 1\n\
-A -t 10.0.0.3:0 -s wlc -p 360\n\
-A -u 10.0.0.1:53 -s mh -o -b mh-fallback,mh-port\n\
-a -u 10.0.0.1:53 -r 192.168.1.20:53 -m -w 1\n\
-A --sctp-service 10.0.0.2:5000 -s rr\n\
-a --sctp-service 10.0.0.2:5000 -r 192.168.3.1:5000 -i -w 1 --tun-type gue --tun-port 5555 --tun-remcsum\n\
-a --sctp-service 10.0.0.2:5000 -r 192.168.3.2:5000 -i -w 2 --tun-type gre --tun-csum\n\
-a --sctp-service 10.0.0.2:5000 -r 192.168.3.3:5000 -i -w 3 --tun-type ipip\n\
-A -t [2001:db8::1]:443 -s sed -p 600 -M 64\n\
-a -t [2001:db8::1]:443 -r 192.168.4.1:443 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum\n\
-a -t [2001:db8::1]:443 -r [2001:db8::10]:443 -m -w 1\n\
-A -f 7 -6 -s wlc -p 360\n\
-a -f 7 -6 -r [2001:db8::20]:0 -m -w 4\n\
-A -f 100 -s rr -b flag-1,flag-3\n\
-a -f 100 -r 192.168.5.1:0 -g -w 1\n"
    );
}

/// What `-S` keeps (it drops counters and thresholds, and Local prints as `-g`).
fn saved_shape(services: &[ServiceEntry]) -> Vec<(ServiceSpec, Vec<DestSpec>)> {
    let mut v: Vec<(ServiceSpec, Vec<DestSpec>)> = services
        .iter()
        .map(|s| {
            let mut d: Vec<DestSpec> = s
                .dests
                .iter()
                .map(|d| {
                    let mut spec = d.spec.clone();
                    spec.u_threshold = 0;
                    spec.l_threshold = 0;
                    if spec.method == ForwardMethod::Local {
                        spec.method = ForwardMethod::Route;
                    }
                    spec
                })
                .collect();
            d.sort_by_key(|d| (d.addr, d.port));
            (s.spec.clone(), d)
        })
        .collect();
    v.sort_by_key(|(s, _)| format!("{:?}", s.key));
    v
}

#[test]
fn save_clear_restore_round_trip() {
    let mut t = MemTable::with(varied());
    let saved = run(&mut t, &["-Sn"]);
    assert_eq!(saved.code, 0);
    let before = saved_shape(&t.services);

    assert_eq!(run(&mut t, &["-C"]).code, 0);
    assert!(t.services.is_empty());
    assert_eq!(run(&mut t, &["-Sn"]).out, "");

    let r = run_with(&mut t, &rvsadm::names::NoNames, &["-R"], &saved.out);
    assert_eq!((r.code, r.err.as_str(), r.out.as_str()), (0, "", ""));
    assert_eq!(saved_shape(&t.services), before);
    assert_eq!(run(&mut t, &["-Sn"]).out, saved.out);
    // One request per line, in order, sent as one batch.
    let adds = t
        .requests
        .iter()
        .filter(|r| matches!(r, Request::AddService(_) | Request::AddDest { .. }))
        .count();
    assert_eq!(adds, saved.out.lines().count());
    assert_eq!(t.batches, 1);
}

#[test]
fn restore_error_behaviour() {
    // Kernel errors are printed and the restore goes on; the status is the last line's.
    let mut t = MemTable::with(vec![]);
    let input = "-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n-A -t 10.0.0.2:80\n";
    let r = run_with(&mut t, &rvsadm::names::NoNames, &["-R"], input);
    assert_eq!((r.code, r.err.as_str()), (0, "Service already exists\n"));
    assert_eq!(t.services.len(), 2);
    let r = run_with(
        &mut t,
        &rvsadm::names::NoNames,
        &["-R"],
        "-A -t 10.0.0.3:80\n-D -t 10.9.9.9:80\n",
    );
    assert_eq!((r.code, r.err.as_str()), (255, "No such service\n"));
    assert_eq!(t.services.len(), 3);

    // A validation error aborts the whole restore with status 2; earlier lines stay applied.
    let mut t = MemTable::with(vec![]);
    let input = "-A -t 10.0.0.1:80\n-A -t 10.0.0.2:0\n-A -t 10.0.0.3:80\n";
    let r = run_with(&mut t, &rvsadm::names::NoNames, &["-R"], input);
    assert_eq!(
        (r.code, r.err.as_str()),
        (2, "Zero port specified for non-persistent service\n")
    );
    assert_eq!(t.services.len(), 1);

    // popt errors only end that line (status 255 if it is the last).
    let mut t = MemTable::with(vec![]);
    let r = run_with(
        &mut t,
        &rvsadm::names::NoNames,
        &["-R"],
        "-A --bogus\n-A -t 10.0.0.1:80\n",
    );
    assert_eq!((r.code, r.err.as_str()), (0, "--bogus: unknown option\n"));
    assert_eq!(t.services.len(), 1);

    // -R inside the stream: help hint naming argv[0], exit 255.
    let r = run_with(
        &mut t,
        &rvsadm::names::NoNames,
        &["-R"],
        "-C\n-R\n-A -t 10.0.0.9:80\n",
    );
    assert_eq!(
        (r.code, r.err.as_str()),
        (
            255,
            "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n"
        )
    );
    assert!(t.services.is_empty());

    // `ipvsadm` tokens are dropped, blank lines skipped, listings work inside a restore.
    let r = run_with(
        &mut t,
        &rvsadm::names::NoNames,
        &["-R"],
        "ipvsadm -A -t 10.0.0.1:80 -s rr\n\n\t\nipvsadm -a -t 10.0.0.1:80 -r 10.1.1.1:80 -m\n-S -n\n",
    );
    assert_eq!(r.code, 0);
    assert_eq!(
        r.out,
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.1.1:80 -m -w 1\n"
    );
}

/// `-R` sends its changes in batches of `BATCH_MAX`, flushed before anything else is done or
/// printed: the output, the order of requests and the status are those of line-by-line
/// sending.
#[test]
fn restore_sends_batches_and_keeps_line_order() {
    let max = rvs_control::proto::BATCH_MAX;
    let mut input: String = (0..max + 1)
        .map(|i| format!("-A -t 10.{}.{}.1:80\n", i / 256, i % 256))
        .collect();
    // The last line fails: its status is the restore's.
    input.push_str("-A -t 10.0.0.1:80\n");
    let mut t = MemTable::with(vec![]);
    let r = run_with(&mut t, &rvsadm::names::NoNames, &["-R"], &input);
    assert_eq!((r.code, r.err.as_str()), (255, "Service already exists\n"));
    assert_eq!(t.services.len(), max + 1);
    assert_eq!(t.batches, 2);

    // A listing in the stream sees every change queued before it; an error printed by a
    // queued change comes before the listing's output and the next parse error.
    let mut t = MemTable::with(vec![]);
    let r = run_with(
        &mut t,
        &rvsadm::names::NoNames,
        &["-R"],
        "-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.1:80\n-S -n\n-A --bogus\n-D -t 10.0.0.1:80\n",
    );
    assert_eq!(r.out, "-A -t 10.0.0.1:80 -s rr\n");
    assert_eq!(
        (r.code, r.err.as_str()),
        (0, "Service already exists\n--bogus: unknown option\n")
    );
    assert!(t.services.is_empty());
    assert_eq!(t.batches, 2);
}

fn last_request(t: &MemTable) -> Request {
    t.requests.last().cloned().unwrap()
}

#[test]
fn edit_sends_full_replacement_with_ipvsadm_defaults() {
    let mut t = MemTable::with(vec![]);
    assert_eq!(
        run(
            &mut t,
            &[
                "-A",
                "-t",
                "10.0.0.1:80",
                "-s",
                "sh",
                "-p",
                "-M",
                "255.255.255.0",
                "-b",
                "sh-port",
                "--proxy-protocol",
                "v1"
            ]
        )
        .code,
        0
    );
    assert_eq!(
        last_request(&t),
        Request::AddService(ServiceSpec {
            key: tcp("10.0.0.1", 80),
            scheduler: "sh".into(),
            flags: ServiceFlags {
                persistent: true,
                sched2: true,
                ..Default::default()
            },
            timeout: 360,
            netmask: mask(255, 255, 255, 0),
            pe_name: None,
            proxy_protocol: ProxyProtocol::V1,
        })
    );
    // -E without options: scheduler back to wlc, flags cleared, timeout 0, mask default.
    assert_eq!(run(&mut t, &["-E", "-t", "10.0.0.1:80"]).code, 0);
    assert_eq!(
        last_request(&t),
        Request::EditService(ServiceSpec {
            key: tcp("10.0.0.1", 80),
            scheduler: "wlc".into(),
            flags: ServiceFlags::default(),
            timeout: 0,
            netmask: 0xFFFF_FFFF,
            pe_name: None,
            proxy_protocol: ProxyProtocol::None,
        })
    );
    // IPv6 service: default prefix 128; -M after -t is a prefix length.
    run(
        &mut t,
        &[
            "-A",
            "-t",
            "[2001:db8::1]:443",
            "-p",
            "60",
            "-M",
            "64",
            "--pe",
            "sip",
        ],
    );
    match last_request(&t) {
        Request::AddService(s) => {
            assert_eq!(
                (s.timeout, s.netmask, s.pe_name.as_deref()),
                (60, 64, Some("sip"))
            )
        }
        r => panic!("{r:?}"),
    }
    // Quirk kept: -M before an IPv6 -t is parsed as an IPv4 mask, then -t resets it to 128.
    run(&mut t, &["-A", "-M", "64", "-t", "[2001:db8::2]:443", "-p"]);
    match last_request(&t) {
        Request::AddService(s) => assert_eq!(s.netmask, 128),
        r => panic!("{r:?}"),
    }
    // fwmark + -6, UDP ops.
    run(&mut t, &["-A", "-f", "5", "-6", "-s", "rr"]);
    match last_request(&t) {
        Request::AddService(s) => {
            assert_eq!(s.key, fwm(5, true));
            assert_eq!(s.netmask, 128);
        }
        r => panic!("{r:?}"),
    }
    run(&mut t, &["-A", "-u", "10.0.0.1:53", "-o"]);
    match last_request(&t) {
        Request::AddService(s) => assert!(s.flags.one_packet && s.key == udp("10.0.0.1", 53)),
        r => panic!("{r:?}"),
    }
}

#[test]
fn dest_requests_and_defaults() {
    let mut t = MemTable::with(vec![svc(tcp("10.0.0.1", 80), "rr")]);
    // Defaults: -g, weight 1, port from the service, thresholds 0, ipip/0/nocsum.
    assert_eq!(
        run(&mut t, &["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1"]).code,
        0
    );
    let want = DestSpec {
        addr: ip("10.1.1.1"),
        port: 80,
        weight: 1,
        method: ForwardMethod::Route,
        u_threshold: 0,
        l_threshold: 0,
        tun_type: TunnelType::Ipip,
        tun_port: 0,
        tun_csum: TunnelCsum::NoCsum,
    };
    assert_eq!(
        last_request(&t),
        Request::AddDest {
            service: tcp("10.0.0.1", 80),
            dest: want.clone()
        }
    );
    // DR forces the service port.
    run(
        &mut t,
        &["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.2:8080", "-g"],
    );
    match last_request(&t) {
        Request::AddDest { dest, .. } => assert_eq!(dest.port, 80),
        r => panic!("{r:?}"),
    }
    // NAT keeps its port; full NAT too.
    run(
        &mut t,
        &[
            "-a",
            "-t",
            "10.0.0.1:80",
            "-r",
            "10.1.1.3:8080",
            "-m",
            "-w",
            "0",
            "-x",
            "100",
            "-y",
            "10",
        ],
    );
    match last_request(&t) {
        Request::AddDest { dest, .. } => {
            assert_eq!(
                (dest.port, dest.weight, dest.method),
                (8080, 0, ForwardMethod::Masq)
            );
            assert_eq!((dest.u_threshold, dest.l_threshold), (100, 10));
        }
        r => panic!("{r:?}"),
    }
    run(
        &mut t,
        &[
            "-a",
            "-t",
            "10.0.0.1:80",
            "-r",
            "10.1.1.4:8081",
            "--fullnat",
        ],
    );
    match last_request(&t) {
        Request::AddDest { dest, .. } => {
            assert_eq!((dest.port, dest.method), (8081, ForwardMethod::FullNat))
        }
        r => panic!("{r:?}"),
    }
    // -e is a full replacement: omitted options go back to ipvsadm's defaults.
    run(
        &mut t,
        &["-e", "-t", "10.0.0.1:80", "-r", "10.1.1.3:8080", "-m"],
    );
    match last_request(&t) {
        Request::EditDest { dest, .. } => {
            assert_eq!((dest.weight, dest.u_threshold, dest.l_threshold), (1, 0, 0))
        }
        r => panic!("{r:?}"),
    }
    // Tunnel to another family with GUE.
    run(
        &mut t,
        &[
            "-a",
            "-t",
            "10.0.0.1:80",
            "-r",
            "2001:db8::9",
            "-i",
            "--tun-type",
            "gue",
            "--tun-port",
            "6080",
            "--tun-csum",
        ],
    );
    match last_request(&t) {
        Request::AddDest { dest, .. } => {
            assert_eq!(dest.addr, ip("2001:db8::9"));
            assert_eq!(
                (dest.tun_type, dest.tun_port, dest.tun_csum),
                (TunnelType::Gue, 6080, TunnelCsum::Csum)
            );
        }
        r => panic!("{r:?}"),
    }
    // -d sends the address and the port as given (copied from the service if omitted).
    run(&mut t, &["-d", "-t", "10.0.0.1:80", "-r", "10.1.1.3:8080"]);
    assert_eq!(
        last_request(&t),
        Request::DelDest {
            service: tcp("10.0.0.1", 80),
            addr: ip("10.1.1.3"),
            port: 8080
        }
    );
    // Zero: all, or one service; -t 0.0.0.0:0 means all (libipvs sends no service).
    run(&mut t, &["-Z"]);
    assert_eq!(last_request(&t), Request::Zero(None));
    run(&mut t, &["-Z", "-t", "10.0.0.1:80"]);
    assert_eq!(last_request(&t), Request::Zero(Some(tcp("10.0.0.1", 80))));
    run(&mut t, &["-Z", "-t", "0.0.0.0:0"]);
    assert_eq!(last_request(&t), Request::Zero(None));
    // --set, daemons, laddr.
    run(&mut t, &["--set", "10", "0", "30"]);
    assert_eq!(
        last_request(&t),
        Request::SetTimeouts(Timeouts {
            tcp: 10,
            tcp_fin: 0,
            udp: 30
        })
    );
    assert_eq!(
        run(&mut t, &["-L", "--timeout"]).out,
        "Timeout (tcp tcpfin udp): 10 120 30\n"
    );
    run(&mut t, &["--start-daemon", "backup", "--syncid", "7"]);
    match last_request(&t) {
        Request::StartDaemon(d) => {
            assert_eq!(
                (d.role, d.mcast_ifn.as_str(), d.syncid),
                (SyncRole::Backup, "eth0", 7)
            )
        }
        r => panic!("{r:?}"),
    }
    run(&mut t, &["--stop-daemon", "master"]);
    assert_eq!(
        last_request(&t),
        Request::StopDaemon {
            role: SyncRole::Master,
            syncid: 0
        }
    );
}

#[test]
fn local_addresses() {
    let mut t = MemTable::with(vec![svc(tcp("10.0.0.1", 80), "rr")]);
    assert_eq!(
        run(
            &mut t,
            &["--add-laddr", "-t", "10.0.0.1:80", "-z", "192.168.100.1"]
        )
        .code,
        0
    );
    assert_eq!(
        run(
            &mut t,
            &["--add-laddr", "-t", "10.0.0.1:80", "-z", "192.168.100.2"]
        )
        .code,
        0
    );
    let r = run(
        &mut t,
        &["--add-laddr", "-t", "10.0.0.1:80", "-z", "192.168.100.2"],
    );
    assert_eq!(
        (r.code, r.err.as_str()),
        (255, "Local address already exists\n")
    );
    let r = run(
        &mut t,
        &["--add-laddr", "-t", "10.0.0.9:80", "-z", "192.168.100.2"],
    );
    assert_eq!((r.code, r.err.as_str()), (255, "Service not defined\n"));
    assert_eq!(
        run(&mut t, &["--get-laddr", "-n"]).out,
        concat!(
            "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     \n",
            "TCP 10.0.0.1:80      2       \n",
            "                              192.168.100.1        0          0         \n",
            "                              192.168.100.2        0          0         \n",
        )
    );
    assert_eq!(
        run(
            &mut t,
            &["--del-laddr", "-t", "10.0.0.1:80", "-z", "192.168.100.1"]
        )
        .code,
        0
    );
    let r = run(
        &mut t,
        &["--del-laddr", "-t", "10.0.0.1:80", "-z", "192.168.100.1"],
    );
    assert_eq!((r.code, r.err.as_str()), (255, "No such local address\n"));
}

/// Fixed names, standing in for the resolver and /etc/services.
struct FixedNames;

impl rvsadm::names::Names for FixedNames {
    fn host_to_ipv4(&self, name: &str) -> Option<Ipv4Addr> {
        match name {
            "lb.example.com" => Some(Ipv4Addr::new(10, 0, 0, 1)),
            _ => None,
        }
    }
    fn addr_to_host(&self, addr: std::net::IpAddr) -> Option<String> {
        match addr.to_string().as_str() {
            "10.0.0.1" => Some("lb.example.com".into()),
            "192.168.1.10" => Some("a-very-long-real-server-name.example.com".into()),
            "2001:db8::1" => Some("v6.example.com".into()),
            _ => None,
        }
    }
    fn service_to_port(&self, name: &str, proto: Protocol) -> Option<u16> {
        match (name, proto) {
            ("http", Protocol::Tcp) => Some(80),
            ("domain", Protocol::Udp) => Some(53),
            _ => None,
        }
    }
    fn port_to_service(&self, port: u16, proto: Protocol) -> Option<String> {
        match (port, proto) {
            (80, Protocol::Tcp) => Some("http".into()),
            (443, Protocol::Tcp) => Some("https".into()),
            (53, Protocol::Udp) => Some("domain".into()),
            _ => None,
        }
    }
}

#[test]
fn names_without_numeric() {
    let mut t = MemTable::with(varied());
    let r = run_with(&mut t, &FixedNames, &["-L"], "");
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(
        lines[3],
        "TCP  192.0.2.200:https lc persistent 1800 mask 255.255.0.0 pe sip proxy-protocol v2"
    );
    assert_eq!(lines[6], "TCP  lb.example.com:http wrr");
    // Real-server names are cut at 28 characters ("...name.example.com:http" loses its tail).
    assert_eq!(
        lines[7],
        "  -> a-very-long-real-server-name Masq    5      12         345       "
    );
    assert_eq!(
        lines[10],
        "UDP  lb.example.com:domain mh (mh-fallback,mh-port) ops"
    );
    assert!(r
        .out
        .contains("\nTCP  [v6.example.com]:https sed persistent 600 mask 64\n"));
    // Service names in the save format, and host/service names accepted as input.
    let s = run_with(&mut t, &FixedNames, &["-S"], "");
    assert!(s.out.contains("\n-A -t lb.example.com:http -s wrr\n"));
    assert!(s.out.contains(
        "\n-a -t lb.example.com:http -r a-very-long-real-server-name.example.com:http -m -w 5\n"
    ));
    let mut t2 = MemTable::with(vec![]);
    assert_eq!(
        run_with(
            &mut t2,
            &FixedNames,
            &["-A", "-t", "lb.example.com:http"],
            ""
        )
        .code,
        0
    );
    assert_eq!(t2.services[0].spec.key, tcp("10.0.0.1", 80));
    assert_eq!(
        run_with(
            &mut t2,
            &FixedNames,
            &["-A", "-u", "lb.example.com:domain"],
            ""
        )
        .code,
        0
    );
    assert_eq!(t2.services[1].spec.key, udp("10.0.0.1", 53));
    // The service name is looked up for the service's protocol only.
    let r = run_with(
        &mut t2,
        &FixedNames,
        &["-A", "-u", "lb.example.com:http"],
        "",
    );
    assert_eq!(
        (r.code, r.err.as_str()),
        (2, "illegal virtual server address[:port] specified\n")
    );
}

#[test]
fn ipv6_connections_and_truncation() {
    let mut t = MemTable::with(vec![]);
    t.conns = vec![ConnEntry {
        protocol: ConnProtocol::Proto(Protocol::Tcp),
        client: sa("[2001:db8::1234]:40000"),
        virtual_addr: sa("[2001:db8::1]:443"),
        dest: sa("[2001:db8::10]:443"),
        state: "FIN_WAIT".into(),
        expires: 6000,
        pe: None,
    }];
    assert_eq!(
        run(&mut t, &["-Lnc"]).out,
        "IPVS connection entries\n\
pro expire state       source             virtual            destination\n\
TCP 100:00 FIN_WAIT    [2001:db8::1234]:40000 [2001:db8::1]:443  [2001:db8::10]:443\n"
    );
}

#[test]
fn full_thresholds_listing() {
    assert_eq!(
        listing(&["-Ln", "--thresholds"]),
        g("
|IP Virtual Server version 1.2.1 (size=4096)⏎
|Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ⏎
|  -> RemoteAddress:Port⏎
|TCP  192.0.2.200:443 lc persistent 1800 mask 255.255.0.0 pe sip proxy-protocol v2⏎
|  -> 127.0.0.1:443                0          0          0          0         ⏎
|  -> 192.168.2.1:443              0          0          3          4         ⏎
|TCP  10.0.0.1:80 wrr⏎
|  -> 192.168.1.10:80              100        50         12         345       ⏎
|  -> 192.168.1.11:8080            0          0          0          1         ⏎
|TCP  10.0.0.3:0 wlc persistent 360⏎
|UDP  10.0.0.1:53 mh (mh-fallback,mh-port) ops⏎
|  -> 192.168.1.20:53              0          0          0          0         ⏎
|SCTP 10.0.0.2:5000 rr⏎
|  -> 192.168.3.1:5000             0          0          0          0         ⏎
|  -> 192.168.3.2:5000             0          0          0          0         ⏎
|  -> 192.168.3.3:5000             0          0          0          0         ⏎
|TCP  [2001:db8::1]:443 sed persistent 600 mask 64⏎
|  -> 192.168.4.1:443              0          0          0          0         ⏎
|  -> [2001:db8::10]:443           0          0          2          3         ⏎
|FWM  7 IPv6 wlc persistent 360⏎
|  -> [2001:db8::20]:0             0          0          0          0         ⏎
|FWM  100 rr (flag-1,flag-3)⏎
|  -> 192.168.5.1:0                0          0          0          0         ⏎
")
    );
}

#[test]
fn full_persistent_conn_listing() {
    assert_eq!(
        listing(&["-Ln", "--persistent-conn"]),
        g("
|IP Virtual Server version 1.2.1 (size=4096)⏎
|Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn ⏎
|  -> RemoteAddress:Port⏎
|TCP  192.0.2.200:443 lc persistent 1800 mask 255.255.0.0 pe sip proxy-protocol v2⏎
|  -> 127.0.0.1:443                1         0           0          0         ⏎
|  -> 192.168.2.1:443              10        9           3          4         ⏎
|TCP  10.0.0.1:80 wrr⏎
|  -> 192.168.1.10:80              5         0           12         345       ⏎
|  -> 192.168.1.11:8080            1         0           0          1         ⏎
|TCP  10.0.0.3:0 wlc persistent 360⏎
|UDP  10.0.0.1:53 mh (mh-fallback,mh-port) ops⏎
|  -> 192.168.1.20:53              1         0           0          0         ⏎
|SCTP 10.0.0.2:5000 rr⏎
|  -> 192.168.3.1:5000             1         0           0          0         ⏎
|  -> 192.168.3.2:5000             2         0           0          0         ⏎
|  -> 192.168.3.3:5000             3         0           0          0         ⏎
|TCP  [2001:db8::1]:443 sed persistent 600 mask 64⏎
|  -> 192.168.4.1:443              1         0           0          0         ⏎
|  -> [2001:db8::10]:443           1         0           2          3         ⏎
|FWM  7 IPv6 wlc persistent 360⏎
|  -> [2001:db8::20]:0             4         0           0          0         ⏎
|FWM  100 rr (flag-1,flag-3)⏎
|  -> 192.168.5.1:0                1         0           0          0         ⏎
")
    );
}

#[test]
fn full_tun_info_listing() {
    assert_eq!(
        listing(&["-Ln", "--tun-info"]),
        g("
|IP Virtual Server version 1.2.1 (size=4096)⏎
|Prot LocalAddress:Port Scheduler Flags⏎
|  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn⏎
|TCP  192.0.2.200:443 lc persistent 1800 mask 255.255.0.0 pe sip proxy-protocol v2⏎
|  -> 127.0.0.1:443                Local   n/a           1      0          0         ⏎
|  -> 192.168.2.1:443              Route   n/a           10     3          4         ⏎
|TCP  10.0.0.1:80 wrr⏎
|  -> 192.168.1.10:80              Masq    n/a           5      12         345       ⏎
|  -> 192.168.1.11:8080            FullNat n/a           1      0          1         ⏎
|TCP  10.0.0.3:0 wlc persistent 360⏎
|UDP  10.0.0.1:53 mh (mh-fallback,mh-port) ops⏎
|  -> 192.168.1.20:53              Masq    n/a           1      0          0         ⏎
|SCTP 10.0.0.2:5000 rr⏎
|  -> 192.168.3.1:5000             Tunnel  gue:5555:r+c  1      0          0         ⏎
|  -> 192.168.3.2:5000             Tunnel  gre:+c        2      0          0         ⏎
|  -> 192.168.3.3:5000             Tunnel  ipip          3      0          0         ⏎
|TCP  [2001:db8::1]:443 sed persistent 600 mask 64⏎
|  -> 192.168.4.1:443              Tunnel  gue:6080:-c   1      0          0         ⏎
|  -> [2001:db8::10]:443           Masq    n/a           1      2          3         ⏎
|FWM  7 IPv6 wlc persistent 360⏎
|  -> [2001:db8::20]:0             Masq    n/a           4      0          0         ⏎
|FWM  100 rr (flag-1,flag-3)⏎
|  -> 192.168.5.1:0                Route   n/a           1      0          0         ⏎
")
    );
}

#[test]
fn full_rate_listing() {
    assert_eq!(
        listing(&["-Ln", "--rate"]),
        g("
|IP Virtual Server version 1.2.1 (size=4096)⏎
|Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS⏎
|  -> RemoteAddress:Port⏎
|TCP  192.0.2.200:443                     0        0        0        0        0⏎
|  -> 127.0.0.1:443                       0        0        0        0        0⏎
|  -> 192.168.2.1:443                     0        0        0        0        0⏎
|TCP  10.0.0.1:80                      1234    56789  123456K  987654K       12⏎
|  -> 192.168.1.10:80                  1234    56789 123456789  987654K       12⏎
|  -> 192.168.1.11:8080                   0        0        0        0        0⏎
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
fn full_nosort_listing() {
    assert_eq!(
        listing(&["-Ln", "--nosort"]),
        g("
|IP Virtual Server version 1.2.1 (size=4096)⏎
|Prot LocalAddress:Port Scheduler Flags⏎
|  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn⏎
|FWM  100 rr (flag-1,flag-3)⏎
|  -> 192.168.5.1:0                Route   1      0          0         ⏎
|TCP  [2001:db8::1]:443 sed persistent 600 mask 64⏎
|  -> 192.168.4.1:443              Tunnel  1      0          0         ⏎
|  -> [2001:db8::10]:443           Masq    1      2          3         ⏎
|SCTP 10.0.0.2:5000 rr⏎
|  -> 192.168.3.3:5000             Tunnel  3      0          0         ⏎
|  -> 192.168.3.2:5000             Tunnel  2      0          0         ⏎
|  -> 192.168.3.1:5000             Tunnel  1      0          0         ⏎
|TCP  10.0.0.3:0 wlc persistent 360⏎
|UDP  10.0.0.1:53 mh (mh-fallback,mh-port) ops⏎
|  -> 192.168.1.20:53              Masq    1      0          0         ⏎
|FWM  7 IPv6 wlc persistent 360⏎
|  -> [2001:db8::20]:0             Masq    4      0          0         ⏎
|TCP  10.0.0.1:80 wrr⏎
|  -> 192.168.1.11:8080            FullNat 1      0          1         ⏎
|  -> 192.168.1.10:80              Masq    5      12         345       ⏎
|TCP  192.0.2.200:443 lc persistent 1800 mask 255.255.0.0 pe sip proxy-protocol v2⏎
|  -> 127.0.0.1:443                Local   1      0          0         ⏎
|  -> 192.168.2.1:443              Route   10     3          4         ⏎
")
    );
}

fn vrrp_entry(name: &str, vrid: u8, state: VrrpState) -> VrrpInstanceEntry {
    VrrpInstanceEntry {
        name: name.into(),
        vrid,
        interface: "eth0".into(),
        version: 2,
        family: Family::Inet,
        state,
        base_priority: 100,
        effective_priority: 100,
        advert_int_cs: 100,
        transitions: 1,
        became_master: 0,
        adverts_sent: 0,
        priority_zero_sent: 0,
        adverts_received: 0,
        adverts_rejected: 0,
        priority_zero_received: 0,
        rejects: vec![],
        in_state_ms: Some(999),
        sync_group: None,
        vips: vec![ip("10.1.0.100")],
    }
}

/// `-L --vrrp` (rvs addition): the header, one fixed-width line per instance in the order rvsd
/// sent them, a `  -> rejected` line under an instance with rejected adverts; `-l` and `-n`
/// change nothing.
#[test]
fn vrrp_listing() {
    let mut master = vrrp_entry("VI_1", 51, VrrpState::Master);
    master.base_priority = 150;
    master.effective_priority = 150;
    master.transitions = 2;
    master.became_master = 1;
    master.adverts_sent = 1234;
    master.adverts_received = 3;
    master.adverts_rejected = 3;
    master.rejects = vec![
        VrrpRejects {
            reason: "ttl".into(),
            count: 2,
        },
        VrrpRejects {
            reason: "password".into(),
            count: 1,
        },
    ];
    master.in_state_ms = Some(125_400);
    master.sync_group = Some("G1".into());
    master.vips = vec![ip("10.1.0.100"), ip("10.1.0.101")];
    let mut v6 = vrrp_entry("a_long_instance_name", 7, VrrpState::Backup);
    v6.interface = "bond0.100".into();
    v6.version = 3;
    v6.family = Family::Inet6;
    v6.base_priority = 200;
    v6.effective_priority = 140;
    v6.advert_int_cs = 50;
    v6.adverts_received = 98_765_432_100;
    v6.in_state_ms = None;
    v6.vips = vec![ip("2001:db8::100")];
    let fault = vrrp_entry("VI_F", 9, VrrpState::Fault);
    let mut t = MemTable::with(vec![]);
    t.vrrp = vec![master, v6, fault];
    let want = g("
|Name             VRID Interface  Ver State  Prio(eff/base) Adv-int Transitions       Sent       Rcvd   Rejected  In-state Sync-group   VIPs⏎
|VI_1               51 eth0         2 MASTER        150/150   1.00s           2       1234          3          3      125s G1           10.1.0.100,10.1.0.101⏎
|  -> rejected ttl=2 password=1⏎
|a_long_instance_name    7 bond0.100    3 BACKUP        140/200   0.50s           1          0 98765432100          0         - -            2001:db8::100⏎
|VI_F                9 eth0         2 FAULT         100/100   1.00s           1          0          0          0        0s -            10.1.0.100⏎
");
    for args in [&["-L", "--vrrp"][..], &["-l", "--vrrp"], &["-Ln", "--vrrp"]] {
        let r = run(&mut t, args);
        assert_eq!((r.code, r.err.as_str()), (0, ""), "{args:?}");
        assert_eq!(r.out, want, "{args:?}");
        assert_eq!(t.requests.last(), Some(&Request::GetVrrp));
    }
}

/// Without VRRP in rvsd: one line saying so, exit status 0.
#[test]
fn vrrp_listing_without_vrrp() {
    let mut t = MemTable::with(vec![]);
    let r = run(&mut t, &["-L", "--vrrp"]);
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (
            0,
            "no VRRP instances (rvsd runs without vrrp_instance configuration)\n",
            ""
        )
    );
}
