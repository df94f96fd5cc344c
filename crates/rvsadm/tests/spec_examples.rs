//! The exact examples of docs/internals/ipvsadm.md, byte for byte (`⏎` marks an end of line so that
//! trailing spaces are visible, as in docs/internals/ipvsadm.md).

mod common;
use common::*;
use rvs_control::*;

/// Turns spec-style text (`⏎` at each end of line) into the real bytes.
fn g(s: &str) -> String {
    s.lines()
        .map(|l| l.trim_start_matches('|'))
        .filter(|l| !l.is_empty())
        .map(|l| format!("{}\n", l.strip_suffix('⏎').expect("every line ends in ⏎")))
        .collect()
}

#[test]
fn list_numeric_matches_spec_and_sort_quirk() {
    let mut t = MemTable::with(spec_example_table());
    let r = run(&mut t, &["-Ln"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.err, "");
    let want = g("
|IP Virtual Server version 1.2.1 (size=4096)⏎
|Prot LocalAddress:Port Scheduler Flags⏎
|  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn⏎
|TCP  207.175.44.110:80 rr⏎
|  -> 192.168.10.1:80              Masq    1      3          12        ⏎
|  -> 192.168.10.2:80              Masq    1      2          10        ⏎
|TCP  10.0.0.1:443 wlc persistent 360 mask 255.255.255.0⏎
|  -> 172.16.0.2:443               Route   100    0          0         ⏎
|  -> 172.16.0.3:443               Tunnel  0      1          0         ⏎
|UDP  10.0.0.1:53 sh (sh-fallback,sh-port) ops⏎
|  -> 172.16.0.2:53                Masq    1      0          5         ⏎
|TCP  [2001:db8::80]:80 rr⏎
|  -> [2001:db8::a0a0]:80          Masq    1      0          0         ⏎
|FWM  1 wrr persistent 300⏎
|  -> 192.168.10.1:0               Masq    3      0          0         ⏎
|FWM  2 IPv6 rr⏎
");
    assert_eq!(r.out, want);
    // `-l` and the long form are the same command.
    assert_eq!(run(&mut t, &["-l", "--numeric"]).out, want);
}

#[test]
fn nosort_prints_kernel_order() {
    let mut t = MemTable::with(spec_example_table());
    let r = run(&mut t, &["-Ln", "--nosort"]);
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(lines[3], "FWM  2 IPv6 rr");
    assert_eq!(lines[4], "TCP  [2001:db8::80]:80 rr");
    // Dests newest first, as the kernel lists them.
    let i = lines
        .iter()
        .position(|l| l.starts_with("TCP  207.175.44.110:80"))
        .unwrap();
    assert!(lines[i + 1].starts_with("  -> 192.168.10.2:80"));
    assert!(lines[i + 2].starts_with("  -> 192.168.10.1:80"));
    // --sort is accepted and changes nothing.
    assert_eq!(
        run(&mut t, &["-Ln", "--sort"]).out,
        run(&mut t, &["-Ln"]).out
    );
}

fn stats_table() -> Vec<ServiceEntry> {
    let mut s = svc(tcp("207.175.44.110", 80), "rr");
    s.stats = Stats {
        conns: 1234,
        inpkts: 56789,
        outpkts: 45678,
        inbytes: 3456789,
        outbytes: 123_456_789_012,
        cps: 12,
        inpps: 340,
        outpps: 310,
        inbps: 28900,
        outbps: 412000,
    };
    let mut d = dest("192.168.10.1", 80, ForwardMethod::Masq, 1, 3, 12);
    d.stats = Stats {
        conns: 617,
        inpkts: 28394,
        outpkts: 22839,
        inbytes: 1728394,
        outbytes: 61_728_394_506,
        cps: 6,
        inpps: 170,
        outpps: 155,
        inbps: 14450,
        outbps: 206000,
    };
    d.spec.u_threshold = 100;
    d.spec.l_threshold = 50;
    s.dests = vec![d];
    vec![s]
}

#[test]
fn stats_matches_spec() {
    let mut t = MemTable::with(stats_table());
    let r = run(&mut t, &["-Ln", "--stats"]);
    assert_eq!(
        r.out,
        g("
|IP Virtual Server version 1.2.1 (size=4096)⏎
|Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes⏎
|  -> RemoteAddress:Port⏎
|TCP  207.175.44.110:80                1234    56789    45678  3456789     123G⏎
|  -> 192.168.10.1:80                   617    28394    22839  1728394   61728M⏎
")
    );
    let r = run(&mut t, &["-Ln", "--stats", "--exact"]);
    assert_eq!(
        r.out.lines().nth(3).unwrap(),
        "TCP  207.175.44.110:80                1234    56789    45678  3456789 123456789012"
    );
    assert_eq!(
        r.out.lines().nth(4).unwrap(),
        "  -> 192.168.10.1:80                   617    28394    22839  1728394 61728394506"
    );
    // -X is --exact.
    assert_eq!(run(&mut t, &["-Ln", "--stats", "-X"]).out, r.out);
}

#[test]
fn rate_matches_spec() {
    let mut t = MemTable::with(stats_table());
    let r = run(&mut t, &["-Ln", "--rate"]);
    assert_eq!(
        r.out,
        g("
|IP Virtual Server version 1.2.1 (size=4096)⏎
|Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS⏎
|  -> RemoteAddress:Port⏎
|TCP  207.175.44.110:80                  12      340      310    28900   412000⏎
|  -> 192.168.10.1:80                     6      170      155    14450   206000⏎
")
    );
}

#[test]
fn thresholds_matches_spec() {
    let mut t = MemTable::with(stats_table());
    let r = run(&mut t, &["-Ln", "--thresholds"]);
    assert_eq!(
        r.out,
        g("
|IP Virtual Server version 1.2.1 (size=4096)⏎
|Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ⏎
|  -> RemoteAddress:Port⏎
|TCP  207.175.44.110:80 rr⏎
|  -> 192.168.10.1:80              100        50         3          12        ⏎
")
    );
}

#[test]
fn persistent_conn_matches_spec() {
    let mut s = persistent(svc(tcp("10.0.0.1", 443), "wlc"), 360, None);
    let mut d = dest("172.16.0.2", 443, ForwardMethod::Route, 1, 2, 7);
    d.persist_conns = 4;
    s.dests = vec![d];
    let mut t = MemTable::with(vec![s]);
    let r = run(&mut t, &["-Ln", "--persistent-conn"]);
    assert_eq!(
        r.out,
        g("
|IP Virtual Server version 1.2.1 (size=4096)⏎
|Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn ⏎
|  -> RemoteAddress:Port⏎
|TCP  10.0.0.1:443 wlc persistent 360⏎
|  -> 172.16.0.2:443               1         4           2          7         ⏎
")
    );
}

#[test]
fn tun_info_matches_spec() {
    let mut s = svc(tcp("207.175.44.110", 80), "rr");
    let mut gue = dest("192.168.10.1", 80, ForwardMethod::Tunnel, 1, 0, 0);
    gue.spec.tun_type = TunnelType::Gue;
    gue.spec.tun_port = 6080;
    s.dests = vec![
        dest("192.168.10.3", 80, ForwardMethod::Masq, 1, 0, 0),
        dest("192.168.10.2", 80, ForwardMethod::Tunnel, 1, 0, 0),
        gue,
    ];
    let mut t = MemTable::with(vec![s]);
    let r = run(&mut t, &["-Ln", "--tun-info"]);
    assert_eq!(
        r.out,
        g("
|IP Virtual Server version 1.2.1 (size=4096)⏎
|Prot LocalAddress:Port Scheduler Flags⏎
|  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn⏎
|TCP  207.175.44.110:80 rr⏎
|  -> 192.168.10.1:80              Tunnel  gue:6080:-c   1      0          0         ⏎
|  -> 192.168.10.2:80              Tunnel  ipip          1      0          0         ⏎
|  -> 192.168.10.3:80              Masq    n/a           1      0          0         ⏎
")
    );
}

fn conn(
    p: ConnProtocol,
    c: &str,
    v: &str,
    d: &str,
    state: &str,
    expires: u32,
    pe: Option<(&str, &str)>,
) -> ConnEntry {
    ConnEntry {
        protocol: p,
        client: sa(c),
        virtual_addr: sa(v),
        dest: sa(d),
        state: state.into(),
        expires,
        pe: pe.map(|(a, b)| (a.to_string(), b.to_string())),
    }
}

#[test]
fn connections_match_spec() {
    let tcp_p = ConnProtocol::Proto(Protocol::Tcp);
    let udp_p = ConnProtocol::Proto(Protocol::Udp);
    let mut t = MemTable::with(vec![]);
    t.conns = vec![
        conn(
            tcp_p,
            "10.0.0.2:45678",
            "207.175.44.110:80",
            "192.168.10.1:80",
            "ESTABLISHED",
            898,
            None,
        ),
        conn(
            udp_p,
            "10.0.0.2:5353",
            "10.0.0.1:53",
            "172.16.0.2:53",
            "UDP",
            297,
            None,
        ),
        conn(
            tcp_p,
            "10.0.0.0:0",
            "10.0.0.1:443",
            "172.16.0.2:443",
            "NONE",
            359,
            None,
        ),
        conn(
            ConnProtocol::Ip,
            "10.0.0.2:0",
            "0.0.0.1:0",
            "192.168.10.1:0",
            "ASSURED",
            299,
            None,
        ),
        conn(
            udp_p,
            "10.0.0.2:0",
            "10.0.0.1:5060",
            "172.16.0.2:5060",
            "NONE",
            120,
            Some(("sip", "a84b4c76e66710")),
        ),
    ];
    let r = run(&mut t, &["-Lnc"]);
    assert_eq!(r.code, 0);
    assert_eq!(
        r.out,
        g("
|IPVS connection entries⏎
|pro expire state       source             virtual            destination⏎
|TCP 14:58  ESTABLISHED 10.0.0.2:45678     207.175.44.110:80  192.168.10.1:80⏎
|UDP 04:57  UDP         10.0.0.2:5353      10.0.0.1:53        172.16.0.2:53⏎
|TCP 05:59  NONE        10.0.0.0:0         10.0.0.1:443       172.16.0.2:443⏎
|IP  04:59  ASSURED     10.0.0.2:0         0.0.0.1:0          192.168.10.1:0⏎
|UDP 02:00  NONE        10.0.0.2:0         10.0.0.1:5060      172.16.0.2:5060⏎
")
    );
    let r = run(&mut t, &["-Lnc", "--persistent-conn"]);
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(
        lines[1],
        "pro expire state       source             virtual            destination        pe name          pe_data"
    );
    assert_eq!(
        lines[6],
        "UDP 02:00  NONE        10.0.0.2:0         10.0.0.1:5060      172.16.0.2:5060  sip                a84b4c76e66710"
    );
    // Lines without PE data keep the short format.
    assert_eq!(
        lines[2],
        "TCP 14:58  ESTABLISHED 10.0.0.2:45678     207.175.44.110:80  192.168.10.1:80"
    );
}

#[test]
fn timeout_and_daemon_lines() {
    let mut t = MemTable::with(vec![]);
    let r = run(&mut t, &["-L", "--timeout"]);
    assert_eq!(r.out, "Timeout (tcp tcpfin udp): 900 120 300\n");
    assert_eq!(run(&mut t, &["-L", "--daemon"]).out, "");
    t.daemons = vec![
        DaemonConfig {
            role: SyncRole::Backup,
            mcast_ifn: "eth1".into(),
            syncid: 2,
            sync_maxlen: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
        },
        DaemonConfig {
            role: SyncRole::Master,
            mcast_ifn: "eth0".into(),
            syncid: 1,
            sync_maxlen: 1472,
            mcast_group: Some(ip("224.0.0.81")),
            mcast_port: 8848,
            mcast_ttl: 1,
        },
    ];
    assert_eq!(
        run(&mut t, &["-L", "--daemon"]).out,
        "master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n\
         backup sync daemon (mcast=eth1, syncid=2)\n"
    );
}

#[test]
fn save_matches_spec() {
    use ForwardMethod::*;
    let mut s1 = svc(tcp("207.175.44.110", 80), "rr");
    let mut gue = dest("192.168.10.2", 80, Tunnel, 1, 0, 0);
    gue.spec.tun_type = TunnelType::Gue;
    gue.spec.tun_port = 6080;
    s1.dests = vec![gue, dest("192.168.10.1", 80, Masq, 1, 0, 0)];
    let mut s2 = persistent(
        svc(tcp("10.0.0.1", 443), "wlc"),
        360,
        Some(mask(255, 255, 255, 0)),
    );
    s2.dests = vec![dest("172.16.0.2", 443, Route, 100, 0, 0)];
    let mut s3 = svc(udp("10.0.0.1", 53), "sh");
    s3.spec.flags.one_packet = true;
    s3.spec.flags.sched1 = true;
    s3.spec.flags.sched2 = true;
    let mut s4 = svc(tcp("2001:db8::80", 80), "rr");
    s4.dests = vec![dest("2001:db8::a0a0", 80, Masq, 1, 0, 0)];
    let mut s5 = persistent(svc(fwm(1, false), "wrr"), 300, None);
    s5.dests = vec![dest("192.168.10.1", 0, Masq, 3, 0, 0)];
    let s6 = svc(fwm(2, true), "rr");
    let mut t = MemTable::with(vec![s6, s5, s4, s3, s2, s1]);
    let r = run(&mut t, &["-Sn"]);
    assert_eq!(r.code, 0);
    assert_eq!(
        r.out,
        "-A -t 207.175.44.110:80 -s rr\n\
-a -t 207.175.44.110:80 -r 192.168.10.1:80 -m -w 1\n\
-a -t 207.175.44.110:80 -r 192.168.10.2:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum\n\
-A -t 10.0.0.1:443 -s wlc -p 360 -M 255.255.255.0\n\
-a -t 10.0.0.1:443 -r 172.16.0.2:443 -g -w 100\n\
-A -u 10.0.0.1:53 -s sh -o -b sh-fallback,sh-port\n\
-A -t [2001:db8::80]:80 -s rr\n\
-a -t [2001:db8::80]:80 -r [2001:db8::a0a0]:80 -m -w 1\n\
-A -f 1 -s wrr -p 300\n\
-a -f 1 -r 192.168.10.1:0 -m -w 3\n\
-A -f 2 -6 -s rr\n"
    );
    // --save is -S.
    assert_eq!(run(&mut t, &["--save", "-n"]).out, r.out);
}
