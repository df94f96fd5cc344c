//! The IPVS sysctls end to end: `rvsd --sysctl` at start, `rvsadm --sysctl` listing (golden)
//! and setting at run time with the kernel's validation, and the values in the metrics. That
//! they act is shown by `packet_plane::sloppy_tcp_lets_a_director_take_over_established_connections`,
//! `packet_plane::expire_nodest_conn_ends_a_deleted_servers_flows_also_in_the_fast_path` (both
//! also with the XDP fast path) and by rvs-core's unit tests. No test here starts a packet
//! plane, so scripts/test does not run this file again with the XDP fast path. Owns
//! 127.77.40.0/24.

mod common;

use std::time::Duration;

use common::*;

/// The listing with the machine-dependent values (`sync_qlen_max` and `rvs_conn_max` from the
/// memory, `est_cpulist` from the CPU count) replaced by `<machine>`.
fn normalised(out: &str) -> String {
    out.lines()
        .map(|l| {
            let machine = [
                "net.ipv4.vs.sync_qlen_max = ",
                "net.ipv4.vs.est_cpulist = ",
                "net.ipv4.vs.rvs_conn_max = ",
            ];
            match machine.iter().find(|p| l.starts_with(*p)) {
                Some(p) => {
                    let note = l.find('\t').map(|i| &l[i..]).unwrap_or("");
                    format!("{p}<machine>{note}\n")
                }
                None => format!("{l}\n"),
            }
        })
        .collect()
}

fn golden(sloppy_tcp: &str, drop_entry: &str, sync_version: &str) -> String {
    format!(
        "net.ipv4.vs.amemthresh = 1024
net.ipv4.vs.am_droprate = 10
net.ipv4.vs.drop_entry = {drop_entry}
net.ipv4.vs.drop_packet = 0
net.ipv4.vs.conntrack = 0\t# read-only: rvs keeps no netfilter conntrack entries for its connections
net.ipv4.vs.secure_tcp = 0
net.ipv4.vs.snat_reroute = 0\t# no effect in rvs yet: the packet plane routes NAT replies itself; there is no netfilter re-route
net.ipv4.vs.sync_version = {sync_version}
net.ipv4.vs.sync_ports = 2
net.ipv4.vs.sync_persist_mode = 0
net.ipv4.vs.sync_qlen_max = <machine>
net.ipv4.vs.sync_sock_size = 0
net.ipv4.vs.cache_bypass = 0
net.ipv4.vs.expire_nodest_conn = 0
net.ipv4.vs.sloppy_tcp = {sloppy_tcp}
net.ipv4.vs.sloppy_sctp = 0
net.ipv4.vs.expire_quiescent_template = 0
net.ipv4.vs.sync_threshold = 3\t50
net.ipv4.vs.sync_refresh_period = 0
net.ipv4.vs.sync_retries = 0
net.ipv4.vs.nat_icmp_send = 0\t# no effect in rvs yet: the packet plane does not answer stray real-server packets with ICMP yet
net.ipv4.vs.pmtu_disc = 1
net.ipv4.vs.backup_only = 0
net.ipv4.vs.conn_reuse_mode = 1
net.ipv4.vs.schedule_icmp = 0\t# no effect in rvs yet: the packet plane never schedules a connection from an ICMP error yet
net.ipv4.vs.ignore_tunneled = 0\t# no effect in rvs yet: the packet plane passes unknown protocols to the host unmarked
net.ipv4.vs.run_estimation = 1
net.ipv4.vs.est_cpulist = <machine>\t# no effect in rvs yet: rvs runs the rate estimator in the daemon's ticker, not in kernel threads
net.ipv4.vs.est_nice = 0\t# no effect in rvs yet: rvs runs the rate estimator in the daemon's ticker, not in kernel threads
net.ipv4.vs.debug_level = 0\t# read-only: kernel debug output (CONFIG_IP_VS_DEBUG); rvs logs through RUST_LOG
net.ipv4.vs.lblc_expiration = 86400
net.ipv4.vs.lblcr_expiration = 86400
net.ipv4.vs.rvs_mh_grace = 0
net.ipv4.vs.rvs_conn_max = <machine>
net.ipv4.vs.rvs_syn_proxy = 0
net.ipv4.vs.rvs_pewma_decay_ms = 2000
net.ipv4.vs.rvs_pewma_floor_us = 50
net.ipv4.vs.rvs_pewma_ceiling_us = 10000000
net.ipv4.vs.rvs_pewma_unmeasured_us = 1000
net.ipv4.vs.rvs_pewma_explore = 64
"
    )
}

#[test]
fn sysctls_at_start_listed_set_and_exported() {
    require!("curl");
    let dir = tempdir("sysctl");
    let d = start_rvsd(
        dir.path(),
        &[
            "--metrics-listen",
            "127.77.40.1:9760",
            "--sysctl",
            "sloppy_tcp=1",
            "--sysctl",
            "net.ipv4.vs.sync_version=0",
            "--sysctl",
            "sync_ports=2",
            "--sysctl",
            "snat_reroute=0",
        ],
    );
    // A sysctl rvs does not act on is never accepted silently.
    assert!(
        d.log_text().contains(
            "--sysctl snat_reroute=0: net.ipv4.vs.snat_reroute = 0: stored, but rvs does not act on it yet (the packet plane routes NAT replies itself; there is no netfilter re-route)"
        ),
        "{}",
        d.log_text()
    );
    assert!(!d.log_text().contains("sync_version = 0: stored"));
    assert_eq!(normalised(&d.ok(&["--sysctl"])), golden("1", "0", "0"));

    // Run time: valid, then refused as the kernel refuses them; the table keeps its values.
    assert_eq!(d.ok(&["--sysctl", "drop_entry=2"]), "");
    for (arg, code, err) in [
        (
            "drop_entry=4",
            255,
            "net.ipv4.vs.drop_entry: invalid value \"4\": must be 0..3\n",
        ),
        (
            "sync_ports=3",
            255,
            "net.ipv4.vs.sync_ports: invalid value \"3\": must be a power of two, at least 1\n",
        ),
        (
            "sync_threshold=50 3",
            255,
            "net.ipv4.vs.sync_threshold: invalid value \"50 3\": both must be at least 0 and the threshold below the period (or period 0)\n",
        ),
        (
            "conntrack=1",
            255,
            "net.ipv4.vs.conntrack: read-only in rvs: rvs keeps no netfilter conntrack entries for its connections\n",
        ),
        ("no_such=1", 255, "net.ipv4.vs.no_such: no such sysctl\n"),
        ("sloppy_tcp=on", 255, "net.ipv4.vs.sloppy_tcp: invalid value \"on\": not an integer that fits an int\n"),
        ("=1", 2, "illegal sysctl name `' specified\n"),
    ] {
        let a = d.adm(&["--sysctl", arg]);
        assert_eq!((a.code, a.err.as_str()), (code, err), "--sysctl {arg}");
    }
    let a = d.adm(&["--sysctl", "sloppy_tcp=0"]);
    assert_eq!((a.code, a.err.as_str()), (0, ""));
    assert_eq!(d.ok(&["--sysctl", "sync_retries=3"]), "");
    let a = d.adm(&["--sysctl", "nat_icmp_send=1"]);
    assert_eq!(
        (a.code, a.err.as_str()),
        (
            0,
            "net.ipv4.vs.nat_icmp_send = 1: stored, but rvs does not act on it yet (the packet plane does not answer stray real-server packets with ICMP yet)\n"
        )
    );
    let want = golden("0", "2", "0")
        .replace(
            "net.ipv4.vs.sync_retries = 0",
            "net.ipv4.vs.sync_retries = 3",
        )
        .replace(
            "net.ipv4.vs.nat_icmp_send = 0",
            "net.ipv4.vs.nat_icmp_send = 1",
        );
    assert_eq!(normalised(&d.ok(&["--sysctl"])), want);
    assert_eq!(
        d.ok(&["--sysctl", "drop_entry"]),
        "net.ipv4.vs.drop_entry = 2\n"
    );

    // Metrics: every integer sysctl, the pair as two series, whether rvs acts on it.
    let mut text = String::new();
    let ok = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        text = curl_ok(&["http://127.77.40.1:9760/metrics"]);
        text.contains("rvs_ipvs_sysctl{name=\"drop_entry\",acts=\"1\"} 2\n")
    });
    assert!(ok, "{text}");
    for l in [
        "rvs_ipvs_sysctl{name=\"sloppy_tcp\",acts=\"1\"} 0\n",
        "rvs_ipvs_sysctl{name=\"sync_version\",acts=\"1\"} 0\n",
        "rvs_ipvs_sysctl{name=\"sync_retries\",acts=\"1\"} 3\n",
        "rvs_ipvs_sysctl{name=\"sync_ports\",acts=\"1\"} 2\n",
        "rvs_ipvs_sysctl{name=\"nat_icmp_send\",acts=\"0\"} 1\n",
        "rvs_ipvs_sysctl{name=\"sync_threshold\",acts=\"1\",part=\"threshold\"} 3\n",
        "rvs_ipvs_sysctl{name=\"sync_threshold\",acts=\"1\",part=\"period\"} 50\n",
        "rvs_ipvs_sysctl{name=\"est_nice\",acts=\"0\"} 0\n",
    ] {
        assert!(text.contains(l), "{l} missing in\n{text}");
    }
    assert!(text.contains("rvs_ipvs_sysctl_info{name=\"est_cpulist\",acts=\"0\",value=\""));
}

/// A value the kernel would refuse stops rvsd at start, naming it.
#[test]
fn bad_sysctl_at_start_is_fatal() {
    let dir = tempdir("sysctl-bad");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["--metrics-listen", "off", "--socket"])
        .arg(dir.path().join("s.sock"))
        .args(["--sysctl", "secure_tcp=7"])
        .output()
        .expect("run rvsd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("rvsd: --sysctl secure_tcp=7: net.ipv4.vs.secure_tcp: invalid value \"7\": must be 0..3"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["--sysctl", "secure_tcp"])
        .output()
        .expect("run rvsd");
    assert_eq!(out.status.code(), Some(2));
}
