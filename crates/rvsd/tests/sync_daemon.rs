//! The sync daemons' control and the backup's receive path, against a real rvsd:
//! `--start-daemon` / `--stop-daemon` / `-L --daemon` with ipvsadm's texts and exit codes, and
//! sync messages multicast from another namespace — a good one is installed (`-Lnc` lists it,
//! bound to the local real server), a wrong syncid and a bad size are dropped and counted by
//! reason in the metrics; and the same receive path on an IPv6 group.
//!
//! Two namespaces joined by a veth (a: 10.9.0.1, b: 10.9.0.2; rvs-testkit's `SyncLink`); rvsd
//! (socket proxy only) in b.
//! Root only (CI runs it as root); needs `ip` and `curl`. Everything is torn down on drop.

mod common;

use rvs_testkit::wait;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rvs_lab::Netns;
use rvs_sync::{Encoder, SyncConn, Version};
use rvs_testkit::SyncLink;

const METRICS: &str = "127.0.0.1:19105";

/// rvsd (socket proxy only) in the link's `b`, started and torn down by the shared harness.
struct Rvsd(common::Rvsd);

impl Rvsd {
    fn start(link: &SyncLink) -> Rvsd {
        Rvsd(common::Rvsd::start_in(
            common::RVSD,
            Some(&link.b),
            &link.dir,
            &["--metrics-listen", METRICS, "--drain-time", "0"],
        ))
    }

    /// rvsadm (the library) against it: (exit code, stdout, stderr).
    fn adm(&self, args: &[&str]) -> (i32, String, String) {
        let a = self.0.adm(args);
        (a.code, a.out, a.err)
    }
}

fn record() -> SyncConn {
    SyncConn {
        protocol: 6,
        flags: 0,
        state: 1,
        caddr: IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)),
        cport: 1000,
        vaddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        vport: 80,
        daddr: IpAddr::V4(Ipv4Addr::new(10, 9, 0, 5)),
        dport: 80,
        fwmark: 0,
        timeout_secs: 900,
        seq: None,
        pe_data: Vec::new(),
        pe_name: Vec::new(),
        local: None,
    }
}

fn message(syncid: u8, c: &SyncConn) -> Vec<u8> {
    let mut e = Encoder::new(Version::V1, syncid, 1472);
    assert!(e.push(c).unwrap().is_none());
    e.finish().unwrap()
}

fn metric(ns: &Netns, line_start: &str) -> Option<u64> {
    let body = ns.curl(&format!("http://{METRICS}/metrics")).ok()?;
    body.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn daemons_are_controlled_like_ipvsadm_and_the_backup_installs_what_it_receives() {
    if !rvs_lab::require(
        "daemons_are_controlled_like_ipvsadm_and_the_backup_installs_what_it_receives",
        &["ip", "curl"],
    ) {
        return;
    }
    let link = SyncLink::new("syncd");
    let b = &link.b;
    let d = Rvsd::start(&link);

    for l in [
        &["-A", "-t", "10.0.0.1:80", "-s", "rr"][..],
        &["-a", "-t", "10.0.0.1:80", "-r", "10.9.0.5:80", "-m"],
    ] {
        assert_eq!(d.adm(l).0, 0, "{l:?}");
    }
    assert_eq!(
        d.adm(&["-L", "--daemon"]),
        (0, String::new(), String::new())
    );
    assert_eq!(
        d.adm(&[
            "--start-daemon",
            "backup",
            "--mcast-interface",
            "b0",
            "--syncid",
            "7"
        ])
        .0,
        0
    );
    assert_eq!(
        d.adm(&["--start-daemon", "backup", "--mcast-interface", "b0"]),
        (255, String::new(), "Daemon has already run\n".into())
    );
    assert_eq!(
        d.adm(&["--start-daemon", "master", "--mcast-interface", "nosuch0"]),
        (255, String::new(), "No such device\n".into())
    );
    assert_eq!(
        d.adm(&["--stop-daemon", "master"]),
        (255, String::new(), "No daemon is running\n".into())
    );
    assert_eq!(
        d.adm(&["-L", "--daemon"]).1,
        "backup sync daemon (mcast=b0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );

    // The "master": a multicast sender in namespace a.
    let tx = link.sender(false);
    let to = SocketAddr::from(([224, 0, 0, 81], 8848));
    let good = message(7, &record());
    let mut short = good.clone();
    short.pop();
    let mut other = record();
    other.caddr = IpAddr::V4(Ipv4Addr::new(2, 2, 2, 2));
    tx.send_to(&message(8, &other), to).expect("send");
    tx.send_to(&short, to).expect("send");
    tx.send_to(&good, to).expect("send");

    assert!(
        wait(Duration::from_secs(5), || d
            .adm(&["-L", "-n", "-c"])
            .1
            .contains(
                "ESTABLISHED 1.1.1.1:1000       10.0.0.1:80        10.9.0.5:80"
            )),
        "the synced connection is not listed:\n{}",
        d.adm(&["-L", "-n", "-c"]).1
    );
    let (_, conns, _) = d.adm(&["-L", "-n", "-c"]);
    assert!(
        !conns.contains("2.2.2.2"),
        "another syncid was applied:\n{conns}"
    );
    // Bound to the local real server: one active connection.
    let (_, table, _) = d.adm(&["-L", "-n"]);
    assert!(
        table.contains("  -> 10.9.0.5:80                  Masq    1      1          0"),
        "{table}"
    );
    let m = |l: &str| metric(b, l);
    assert!(
        wait(Duration::from_secs(5), || m(
            "rvs_sync_applied_connections_total{result=\"created\"}"
        ) == Some(1)),
        "metrics: {:?}",
        b.curl(&format!("http://{METRICS}/metrics"))
    );
    assert_eq!(
        m("rvs_sync_dropped_datagrams_total{side=\"receive\",reason=\"syncid_mismatch\"}"),
        Some(1)
    );
    assert_eq!(
        m("rvs_sync_dropped_datagrams_total{side=\"receive\",reason=\"size_mismatch\"}"),
        Some(1)
    );
    assert_eq!(m("rvs_sync_received_datagrams_total"), Some(3));
    assert_eq!(m("rvs_sync_daemon_running{role=\"backup\"}"), Some(1));

    // Master and backup together, listed master first; stop both.
    assert_eq!(
        d.adm(&[
            "--start-daemon",
            "master",
            "--mcast-interface",
            "b0",
            "--syncid",
            "7"
        ])
        .0,
        0
    );
    assert_eq!(
        d.adm(&["-L", "--daemon"]).1,
        "master sync daemon (mcast=b0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n\
         backup sync daemon (mcast=b0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    assert_eq!(d.adm(&["--stop-daemon", "backup"]).0, 0);
    assert_eq!(d.adm(&["--stop-daemon", "master"]).0, 0);
    assert_eq!(d.adm(&["-L", "--daemon"]).1, "");
}

/// An IPv6 group: the backup binds and joins it on its interface (`maxlen` 1500 − 48), and a
/// message multicast to it from the other namespace is installed.
#[test]
fn backup_receives_on_an_ipv6_group() {
    if !rvs_lab::require("backup_receives_on_an_ipv6_group", &["ip", "curl"]) {
        return;
    }
    let link = SyncLink::new("syncd6");
    // Link-local addresses come with the links; wait until they left duplicate detection.
    link.wait_ipv6();
    let d = Rvsd::start(&link);
    for l in [
        &["-A", "-t", "10.0.0.1:80", "-s", "rr"][..],
        &["-a", "-t", "10.0.0.1:80", "-r", "10.9.0.5:80", "-m"],
        &[
            "--start-daemon",
            "backup",
            "--mcast-interface",
            "b0",
            "--mcast-group",
            "ff02::1:81",
        ],
    ] {
        assert_eq!(d.adm(l).0, 0, "{l:?}");
    }
    assert_eq!(
        d.adm(&["-L", "--daemon"]).1,
        "backup sync daemon (mcast=b0, syncid=0, maxlen=1452, group=ff02::1:81, port=8848, ttl=1)\n"
    );
    let tx = link.sender(true);
    let to: SocketAddr = "[ff02::1:81]:8848".parse().unwrap();
    tx.send_to(&message(0, &record()), to).expect("send");
    assert!(
        wait(Duration::from_secs(5), || d
            .adm(&["-L", "-n", "-c"])
            .1
            .contains(
                "ESTABLISHED 1.1.1.1:1000       10.0.0.1:80        10.9.0.5:80"
            )),
        "the synced connection is not listed:\n{}",
        d.adm(&["-L", "-n", "-c"]).1
    );
}

/// As the kernel: no sync daemon starts while a service has a real server of the other address
/// family (the protocol cannot carry those connections), and no such real server is added
/// while one runs — EINVAL both ways, with ipvsadm's text for it.
#[test]
fn mixed_family_services_and_sync_daemons_exclude_each_other() {
    if !rvs_lab::require(
        "mixed_family_services_and_sync_daemons_exclude_each_other",
        &["ip", "curl"],
    ) {
        return;
    }
    let link = SyncLink::new("syncmix");
    let d = Rvsd::start(&link);
    let einval = "Invalid operation.  Possibly wrong module version, address not unicast, ...\n";
    let mixed = ["-a", "-t", "10.0.0.2:80", "-r", "[fd00::5]:80", "-i"];
    assert_eq!(d.adm(&["-A", "-t", "10.0.0.2:80", "-s", "rr"]).0, 0);
    assert_eq!(d.adm(&mixed).0, 0, "a tunnel service may mix families");
    let start = ["--start-daemon", "master", "--mcast-interface", "b0"];
    assert_eq!(d.adm(&start), (255, String::new(), einval.into()));
    assert_eq!(d.adm(&["-L", "--daemon"]).1, "");
    assert_eq!(
        d.adm(&["-d", "-t", "10.0.0.2:80", "-r", "[fd00::5]:80"]).0,
        0
    );
    assert_eq!(d.adm(&start).0, 0);
    assert_eq!(d.adm(&mixed), (255, String::new(), einval.into()));
    // Same-family real servers are fine.
    assert_eq!(
        d.adm(&["-a", "-t", "10.0.0.2:80", "-r", "10.9.0.5:80", "-i"])
            .0,
        0
    );
    assert_eq!(d.adm(&["--stop-daemon", "master"]).0, 0);
    assert_eq!(d.adm(&mixed).0, 0, "allowed again once no daemon runs");
}

/// keepalived's `lvs_sync_daemon` followed across reloads: a changed line restarts the daemons
/// with the new settings, a removed one stops them, a line added back starts them again.
#[test]
fn lvs_sync_daemon_changes_on_reload_restart_the_daemons() {
    if !rvs_lab::require(
        "lvs_sync_daemon_changes_on_reload_restart_the_daemons",
        &["ip", "curl"],
    ) {
        return;
    }
    let link = SyncLink::new("syncrl");
    let conf = |line: &str| {
        format!(
            "global_defs {{\n{line}\n}}\nvirtual_server 10.0.0.3 80 {{\n    lb_algo rr\n    \
             lb_kind NAT\n    protocol TCP\n}}\n"
        )
    };
    let d = common::Rvsd::keepalived_in(
        common::RVSD,
        Some(&link.b),
        &link.dir,
        &conf("    lvs_sync_daemon b0 id 5"),
        &["--drain-time", "0"],
    );
    let daemons = || d.adm(&["-L", "--daemon"]).out;
    let both = |id: u8, port: u16| {
        format!(
            "master sync daemon (mcast=b0, syncid={id}, maxlen=1472, group=224.0.0.81, port={port}, ttl=1)\n\
             backup sync daemon (mcast=b0, syncid={id}, maxlen=1472, group=224.0.0.81, port={port}, ttl=1)\n"
        )
    };
    assert!(
        wait(Duration::from_secs(10), || daemons() == both(5, 8848)),
        "{}",
        daemons()
    );
    d.reload(&conf("    lvs_sync_daemon b0 id 9 port 9000"));
    assert!(
        wait(Duration::from_secs(10), || daemons() == both(9, 9000)),
        "after the change: {}",
        daemons()
    );
    d.reload(&conf(""));
    assert!(
        wait(Duration::from_secs(10), || daemons().is_empty()),
        "after the removal: {}",
        daemons()
    );
    d.reload(&conf("    lvs_sync_daemon b0 id 7"));
    assert!(
        wait(Duration::from_secs(10), || daemons() == both(7, 8848)),
        "after adding it back: {}",
        daemons()
    );
}

/// `sync_ports` = 4: the backup receives on the daemon's port and the next three (a kernel
/// master with 4 ports spreads its connections over them).
#[test]
fn backup_receives_on_every_sync_port() {
    if !rvs_lab::require("backup_receives_on_every_sync_port", &["ip", "curl"]) {
        return;
    }
    let link = SyncLink::new("syncports");
    let d = common::Rvsd::start_in(
        common::RVSD,
        Some(&link.b),
        &link.dir,
        &["--drain-time", "0", "--sysctl", "sync_ports=4"],
    );
    for l in [
        &["-A", "-t", "10.0.0.1:80", "-s", "rr"][..],
        &["-a", "-t", "10.0.0.1:80", "-r", "10.9.0.5:80", "-m"],
        &["--start-daemon", "backup", "--mcast-interface", "b0"],
    ] {
        assert_eq!(d.adm(l).code, 0, "{l:?}");
    }
    let tx = link.sender(false);
    // One connection per port, 8848 … 8851.
    for i in 0..4u16 {
        let mut c = record();
        c.cport = 2000 + i;
        tx.send_to(
            &message(0, &c),
            SocketAddr::from(([224, 0, 0, 81], 8848 + i)),
        )
        .expect("send");
    }
    let listed = || {
        let out = d.adm(&["-L", "-n", "-c"]).out;
        (0..4u16)
            .filter(|i| out.contains(&format!("1.1.1.1:{}", 2000 + i)))
            .count()
    };
    assert!(
        wait(Duration::from_secs(5), || listed() == 4),
        "{} of 4 connections arrived:\n{}",
        listed(),
        d.adm(&["-L", "-n", "-c"]).out
    );
}
