//! Route injection (`--announce-table`, keepalived.conf `rvs_announce_table`): in a namespace of
//! its own, rvsd keeps `VIP/32` (`/128`) on `lo` in the table with protocol 252 exactly while
//! the VIP can be served, repairs the table when someone else changes it, and on SIGTERM
//! withdraws every route first and still forwards during the convergence delay.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use rvs_lab::{Lab, Netns, Protocol};

/// `ip route show table 100 proto 252` (both families), one route per line, trimmed.
fn routes(ns: &Netns) -> Vec<String> {
    routes_in(ns, 100, 252)
}

/// `ip route show table TABLE proto PROTO` (both families), one route per line, trimmed.
fn routes_in(ns: &Netns, table: u32, proto: u8) -> Vec<String> {
    let (table, proto) = (table.to_string(), proto.to_string());
    let mut v = Vec::new();
    for fam in ["-4", "-6"] {
        let out = ns
            .cmd("ip")
            .args([fam, "route", "show", "table", &table, "proto", &proto])
            .output()
            .expect("ip route");
        let err = String::from_utf8_lossy(&out.stderr);
        // A table with no route at all does not exist for the kernel.
        if !out.status.success() && err.contains("FIB table does not exist") {
            continue;
        }
        assert!(out.status.success(), "ip route: {err}");
        let text = String::from_utf8_lossy(&out.stdout);
        v.extend(text.lines().map(|l| l.trim().to_string()));
    }
    v
}

/// Waits (≤ 3 s) until the table holds exactly `want` (prefixes, e.g. `10.9.0.1`).
fn expect_routes(ns: &Netns, want: &[&str]) {
    let mut got = Vec::new();
    let ok = wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
        got = routes(ns);
        let dst: Vec<&str> = got
            .iter()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        dst.len() == want.len() && want.iter().all(|w| dst.contains(w))
    });
    assert!(ok, "table 100 should hold {want:?}, holds {got:?}");
    for l in &got {
        assert!(l.contains(" dev lo "), "{l}");
    }
}

/// One echo round trip to `addr` from inside `ns`.
fn echo(ns: &Netns, addr: SocketAddr) -> Result<(), String> {
    ns.exec(move || -> Result<(), String> {
        let mut s =
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        s.write_all(b"x\n").map_err(|e| e.to_string())?;
        let mut b = [0u8; 2];
        s.read_exact(&mut b).map_err(|e| e.to_string())?;
        (b == *b"x\n").then_some(()).ok_or_else(|| format!("{b:?}"))
    })
    .map_err(|e| e.to_string())?
}

#[test]
fn routes_follow_what_can_be_served_and_go_first_on_sigterm() {
    rvs_require::require_root!();
    let mut lab = Lab::new("annc").expect("lab");
    let ns = lab.add_netns("d").expect("netns");
    ns.ip(["link", "set", "lo", "up"]).expect("lo up");
    let echo_srv = ns.echo_server(Protocol::Tcp, 8080).expect("echo server");
    lab.own(echo_srv);
    // A route a killed rvsd left behind (our protocol, a VIP that is not served): removed.
    ns.ip([
        "route",
        "add",
        "10.9.9.9/32",
        "dev",
        "lo",
        "table",
        "100",
        "proto",
        "252",
    ])
    .expect("stale route");
    // Someone else's route in the same table: never touched.
    ns.ip([
        "route",
        "add",
        "10.8.8.8/32",
        "dev",
        "lo",
        "table",
        "100",
        "proto",
        "static",
    ])
    .expect("foreign route");
    let dir = lab.workdir().join("rvsd");
    std::fs::create_dir_all(&dir).unwrap();
    let mut d = Rvsd::start_in(
        RVSD,
        Some(&ns),
        &dir,
        &[
            "--announce-table",
            "100",
            "--announce-delay",
            "2",
            "--drain-time",
            "1",
        ],
    );
    expect_routes(&ns, &[]);
    d.table(&[
        "-A -t 127.0.0.10:80 -s mh",
        "-A -t [::1]:80 -s rr",
        "-a -t [::1]:80 -r [::1]:8080 -m",
    ]);
    // 127.0.0.10 has no real server yet.
    expect_routes(&ns, &["::1"]);
    d.table(&["-a -t 127.0.0.10:80 -r 127.0.0.1:8080 -m"]);
    expect_routes(&ns, &["127.0.0.10", "::1"]);
    let ip4 = routes(&ns)
        .into_iter()
        .find(|l| l.starts_with("127.0.0.10"));
    assert_eq!(ip4.as_deref(), Some("127.0.0.10 dev lo scope link"));
    // Weight 0: it cannot take new connections, so it is not announced.
    d.table(&["-e -t 127.0.0.10:80 -r 127.0.0.1:8080 -m -w 0"]);
    expect_routes(&ns, &["::1"]);
    d.table(&["-e -t 127.0.0.10:80 -r 127.0.0.1:8080 -m -w 1"]);
    expect_routes(&ns, &["127.0.0.10", "::1"]);
    // Removed by hand: put back.
    ns.ip(["route", "del", "127.0.0.10/32", "table", "100"])
        .expect("route del");
    expect_routes(&ns, &["127.0.0.10", "::1"]);
    let foreign = ns
        .cmd("ip")
        .args(["route", "show", "table", "100", "proto", "static"])
        .run()
        .unwrap();
    assert!(foreign.contains("10.8.8.8"), "{foreign}");
    let vip: SocketAddr = "127.0.0.10:80".parse().unwrap();
    echo(&ns, vip).expect("served before the stop");

    // SIGTERM: the routes go at once, forwarding goes on through the delay.
    d.signal(Signal::SIGTERM);
    let t0 = Instant::now();
    expect_routes(&ns, &[]);
    let withdrawn = t0.elapsed();
    assert!(d.running(), "rvsd must still run after withdrawing");
    echo(&ns, vip).expect("still forwarding after the withdrawal");
    assert!(
        withdrawn < Duration::from_millis(1500),
        "withdrawn after {withdrawn:?}"
    );
    let st = d.wait_exit(Duration::from_secs(15)).expect("rvsd exits");
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "the convergence delay was not kept: {:?}",
        t0.elapsed()
    );
    assert!(st.success(), "{}", d.log_text());
    assert!(d.log_text().contains("2 announced route(s) withdrawn"));
    let foreign = ns
        .cmd("ip")
        .args(["route", "show", "table", "100"])
        .run()
        .unwrap();
    assert_eq!(foreign.trim(), "10.8.8.8 dev lo proto static scope link");
}

/// keepalived.conf's `rvs_announce_table` does the same as the flag, and `rvsd -t` checks it.
#[test]
fn keepalived_conf_keyword_announces() {
    rvs_require::require_root!();
    let mut lab = Lab::new("annk").expect("lab");
    let ns = lab.add_netns("d").expect("netns");
    ns.ip(["link", "set", "lo", "up"]).expect("lo up");
    let conf = "global_defs {\n  rvs_announce_table 100 protocol 252 delay 0\n}\n\
                virtual_server 127.0.0.11 80 {\n  lb_algo mh\n  lb_kind NAT\n  protocol TCP\n\
                \x20 real_server 127.0.0.1 8080 {\n    weight 1\n  }\n}\n";
    let dir = lab.workdir().join("rvsd");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("check.conf");
    std::fs::write(&path, conf).unwrap();
    let out = ns
        .cmd(RVSD)
        .args(["-t", "-f", &path.display().to_string()])
        .output()
        .expect("rvsd -t");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let bad = conf.replace("rvs_announce_table 100", "rvs_announce_table 254");
    std::fs::write(&path, &bad).unwrap();
    let out = ns
        .cmd(RVSD)
        .args(["-t", "-f", &path.display().to_string()])
        .output()
        .expect("rvsd -t");
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("use a table of its own"),
        "{out:?}"
    );

    let mut d = Rvsd::keepalived_in(RVSD, Some(&ns), &dir, conf, &["--drain-time", "0"]);
    expect_routes(&ns, &["127.0.0.11"]);
    d.signal(Signal::SIGTERM);
    expect_routes(&ns, &[]);
    assert!(d.wait_exit(Duration::from_secs(15)).is_some());
}

/// Waits (≤ 5 s) until table `table` holds exactly the destinations `want` with protocol
/// `proto`.
fn expect_routes_in(ns: &Netns, table: u32, proto: u8, want: &[&str]) {
    let mut got = Vec::new();
    let ok = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        got = routes_in(ns, table, proto);
        let dst: Vec<&str> = got
            .iter()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        dst.len() == want.len() && want.iter().all(|w| dst.contains(w))
    });
    assert!(
        ok,
        "table {table} proto {proto} should hold {want:?}, holds {got:?}"
    );
}

/// A keepalived.conf with one virtual server on 127.0.0.11:80 and `global` as its
/// global_defs body.
fn announce_conf(global: &str) -> String {
    format!(
        "global_defs {{\n  {global}\n}}\n\
         virtual_server 127.0.0.11 80 {{\n  lb_algo mh\n  lb_kind NAT\n  protocol TCP\n\
         \x20 real_server 127.0.0.1 8080 {{\n    weight 1\n  }}\n}}\n"
    )
}

/// SIGHUP re-reads `rvs_announce_table`: a new table or protocol moves the routes, a removed
/// keyword withdraws them, a broken file changes nothing; with `--announce-table` on the
/// command line the file's keyword is not followed.
#[test]
fn sighup_follows_the_files_announce_table() {
    rvs_require::require_root!();
    let mut lab = Lab::new("annh").expect("lab");
    let ns = lab.add_netns("d").expect("netns");
    ns.ip(["link", "set", "lo", "up"]).expect("lo up");
    let dir = lab.workdir().join("rvsd");
    std::fs::create_dir_all(&dir).unwrap();
    let first = announce_conf("rvs_announce_table 100 protocol 252 delay 0");
    let mut d = Rvsd::keepalived_in(RVSD, Some(&ns), &dir, &first, &["--drain-time", "0"]);
    expect_routes_in(&ns, 100, 252, &["127.0.0.11"]);

    // Another table: the route moves there and leaves table 100.
    d.reload(&announce_conf(
        "rvs_announce_table 101 protocol 252 delay 0",
    ));
    expect_routes_in(&ns, 101, 252, &["127.0.0.11"]);
    expect_routes_in(&ns, 100, 252, &[]);
    // Another protocol in the same table.
    d.reload(&announce_conf(
        "rvs_announce_table 101 protocol 200 delay 0",
    ));
    expect_routes_in(&ns, 101, 200, &["127.0.0.11"]);
    expect_routes_in(&ns, 101, 252, &[]);
    // A file that does not parse: the running setting stays.
    d.reload(&announce_conf(
        "rvs_announce_table 101 protocol 200 delay 0\n  }",
    ));
    assert!(d.wait_log("keeping the running configuration", Duration::from_secs(5)));
    expect_routes_in(&ns, 101, 200, &["127.0.0.11"]);
    // The keyword removed: nothing is announced.
    d.reload(&announce_conf("router_id annh"));
    assert!(d.wait_log("announcing stopped", Duration::from_secs(5)));
    expect_routes_in(&ns, 101, 200, &[]);
    // And back.
    d.reload(&first);
    expect_routes_in(&ns, 100, 252, &["127.0.0.11"]);
    d.signal(Signal::SIGTERM);
    expect_routes_in(&ns, 100, 252, &[]);
    assert!(d.wait_exit(Duration::from_secs(15)).is_some());

    // The command line wins: the file's keyword is not followed on reload.
    let dir2 = lab.workdir().join("rvsd2");
    std::fs::create_dir_all(&dir2).unwrap();
    let mut d2 = Rvsd::keepalived_in(
        RVSD,
        Some(&ns),
        &dir2,
        &first,
        &[
            "--drain-time",
            "0",
            "--announce-table",
            "102",
            "--announce-delay",
            "0",
        ],
    );
    expect_routes_in(&ns, 102, 252, &["127.0.0.11"]);
    d2.reload(&announce_conf(
        "rvs_announce_table 101 protocol 252 delay 0",
    ));
    assert!(d2.wait_log("is not followed", Duration::from_secs(5)));
    expect_routes_in(&ns, 102, 252, &["127.0.0.11"]);
    expect_routes_in(&ns, 101, 252, &[]);
    d2.signal(Signal::SIGTERM);
    assert!(d2.wait_exit(Duration::from_secs(15)).is_some());
}
