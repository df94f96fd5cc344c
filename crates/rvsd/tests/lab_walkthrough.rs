//! Every lab's printed walkthrough works (issue 18 item 1): the test builds the lab as
//! `rvs-lab up` does (nginx on the real servers, the HA lab's files), takes the text
//! `rvs-lab up` prints ([`Topology::describe`]), parses its command lines and runs them one by
//! one in a root shell — rvsd and rvsadm are the binaries built for these tests — then checks
//! what came out: the real server already answered, rvsd came up, every rvsadm command
//! succeeded, the curls through the VIP reached every real server in turn, the director counted
//! them. A lab whose printed commands stop working fails here.
//!
//! Root only (skipped with a reason otherwise, failing under CI). Each lab is torn down on drop,
//! which also kills the rvsd the walkthrough started in the background.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{packet_path, parse_stats, rvsadm_bin, rvsadm_lib, tempdir, PacketPath, RVSD};
use rvs_lab::{parse_walkthrough, BuildOptions, Lab, LabKind, NsCommand, SelftestMode, Topology};

/// A directory holding `rvsd` (and `rvsadm`, when cargo built it) for the walkthrough's PATH.
fn bin_dir(dir: &Path) -> (PathBuf, bool) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    std::os::unix::fs::symlink(RVSD, bin.join("rvsd")).expect("rvsd link");
    let adm = rvsadm_bin();
    if let Some(a) = &adm {
        std::os::unix::fs::symlink(a, bin.join("rvsadm")).expect("rvsadm link");
    }
    (bin, adm.is_some())
}

/// Runs one printed command; (exit success, stdout, stderr). An rvsadm line runs the binary
/// when built, else rvsadm's own code in process (the binary's `main` only wires it to the
/// process) with the line's `--socket`.
fn run(line: &str, bin: &Path, have_rvsadm: bool) -> (bool, String, String) {
    let words: Vec<&str> = line.split_whitespace().collect();
    if !have_rvsadm {
        if let ["ip", "netns", "exec", _ns, "rvsadm", "--socket", sock, args @ ..] =
            words.as_slice()
        {
            let a = rvsadm_lib(Path::new(sock), args, "");
            return (a.code == 0, a.out, a.err);
        }
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = NsCommand::host("sh")
        .args(["-c", line])
        .env("PATH", &path)
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    (
        out.status.success(),
        out.stdout_str(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Builds lab `kind` as `rvs-lab up` does, runs its printed walkthrough and checks it.
fn walkthrough(test: &str, kind: LabKind) {
    if !common::require(test, &["nginx", "curl", "nft", "timeout"]) {
        return;
    }
    let dir = tempdir(test);
    let (bin, have_rvsadm) = bin_dir(dir.path());
    let lab = Lab::new(test).expect("lab");
    let mut t = Topology::build(lab, kind, BuildOptions::default()).expect("topology");
    // The packet-plane mode these tests cover (RVS_TEST_XDP): `--xdp generic` on the printed
    // rvsd lines for the XDP pass of scripts/test, nothing otherwise.
    let mode = PacketPath::requested();
    t.set_walkthrough_rvsd_options(mode.args());
    t.write_walkthrough_files().expect("walkthrough files");
    t.start_nginx().expect("nginx");
    let printed = t.describe();
    let cmds = parse_walkthrough(&printed);
    assert!(!printed.contains('…'), "no ellipsis in\n{printed}");

    let client = t.client().ns_name().to_owned();
    let url = format!("http://{}:{}/", t.vip, t.port);
    let names: BTreeSet<String> = t
        .real_servers()
        .iter()
        .map(|n| format!("{}\n", n.role))
        .collect();
    // Every director's rvsd is started with each of its interfaces.
    for d in t.directors() {
        let ifaces: String = d
            .ifaces
            .iter()
            .map(|i| format!(" --interface {}", i.name))
            .collect();
        assert!(
            cmds.iter().any(|c| c.starts_with(&format!(
                "ip netns exec {} rvsd --socket {}{ifaces}",
                d.ns_name(),
                t.walkthrough_socket(d).display()
            ))),
            "{} runs rvsd on{ifaces}:\n{printed}",
            d.role
        );
    }

    let mut seen = BTreeSet::new();
    let (mut vip_curls, mut rs_checked, mut stats_checked) = (0, false, false);
    for c in &cmds {
        let (ok, out, err) = run(c, &bin, have_rvsadm);
        let logs = || {
            t.directors()
                .iter()
                .map(|d| std::fs::read_to_string(t.walkthrough_log(d)).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n---\n")
        };
        assert!(
            ok,
            "printed command failed: {c}\nstdout: {out}\nstderr: {err}\nrvsd log:\n{}\nprinted:\n{printed}",
            logs()
        );
        if c.starts_with(&format!("ip netns exec {client} curl")) && c.ends_with(&url) {
            assert!(
                names.contains(&out),
                "{c} answered {out:?}, not a real server"
            );
            seen.insert(out);
            vip_curls += 1;
        } else if c.ends_with("whoami") {
            assert_eq!(
                out.trim(),
                t.laddrs[0].to_string(),
                "the FULLNAT real server sees the local address"
            );
        } else if c.starts_with("ip netns exec") && c.contains(" curl ") {
            assert_eq!(
                out, "rs1\n",
                "{c}: the real server answers before rvsd runs"
            );
            rs_checked = true;
        } else if c.ends_with("-Ln --stats") {
            let svc = format!("{}:{}", t.vip, t.port);
            let lines = parse_stats(&out);
            let s = lines
                .iter()
                .find(|l| l.is_service && l.addr == svc)
                .unwrap_or_else(|| panic!("no {svc} in\n{out}"));
            assert!(
                s.n[0] >= vip_curls && s.n[1] >= 3 * vip_curls,
                "the director counted {vip_curls} connections: {s:?}"
            );
            stats_checked = true;
        } else if c.ends_with("-L --vrrp") {
            assert!(out.contains("MASTER"), "{out}");
        }
    }
    assert!(
        rs_checked,
        "the walkthrough shows a real server answering:\n{printed}"
    );
    assert!(vip_curls >= 2, "curl through the VIP:\n{printed}");
    assert_eq!(
        seen, names,
        "the curls through the VIP reached every real server:\n{printed}"
    );
    if !kind.is_ha_pair() {
        assert!(
            stats_checked,
            "the walkthrough shows the counters:\n{printed}"
        );
    }
    for d in t.directors() {
        let ifaces: Vec<&str> = d.ifaces.iter().map(|i| i.name.as_str()).collect();
        let log = std::fs::read_to_string(t.walkthrough_log(d)).unwrap_or_default();
        packet_path::check_log(mode, &ifaces, &log, None);
    }
}

#[test]
fn nat_lab_walkthrough_runs() {
    walkthrough("wtnat", LabKind::Nat);
}

#[test]
fn dr_lab_walkthrough_runs() {
    walkthrough("wtdr", LabKind::Dr);
}

#[test]
fn tun_lab_walkthrough_runs() {
    walkthrough("wttun", LabKind::Tun);
}

#[test]
fn fullnat_lab_walkthrough_runs() {
    walkthrough("wtfnat", LabKind::Fullnat);
}

#[test]
fn selftest_dr_lab_walkthrough_runs() {
    walkthrough("wtsdr", LabKind::Selftest(SelftestMode::Dr));
}

#[test]
fn selftest_nat_lab_walkthrough_runs() {
    walkthrough("wtsnat", LabKind::Selftest(SelftestMode::Nat));
}

#[test]
fn selftest_tun_lab_walkthrough_runs() {
    walkthrough("wtstun", LabKind::Selftest(SelftestMode::Tun));
}

#[test]
fn ha_lab_walkthrough_runs() {
    walkthrough("wtha", LabKind::Ha);
}

#[test]
fn ha_dr_lab_walkthrough_runs() {
    walkthrough("wthadr", LabKind::HaDr);
}

#[test]
fn ha_tun_lab_walkthrough_runs() {
    walkthrough("wthatun", LabKind::HaTun);
}

/// Lines of `uniq -c` output: (count, text).
fn counts(out: &str) -> Vec<(u64, String)> {
    out.lines()
        .filter_map(|l| {
            let (n, w) = l.trim().split_once(' ')?;
            Some((n.parse().ok()?, w.trim().to_owned()))
        })
        .collect()
}

/// The ECMP lab's walkthrough (`rvs-lab up ecmp`, real BIRD): every printed line runs, and
/// what it shows is checked — the real server answers, three next hops on the router, three
/// established BGP sessions, the VIP in the announce table, the connections reach every real
/// server and every director counts some, and after SIGTERM on one director its next hop goes
/// while every new connection still answers.
#[test]
fn ecmp_lab_walkthrough_runs() {
    let test = "ecmp_lab_walkthrough_runs";
    if !common::require(test, &["nginx", "curl", "bird", "birdc", "timeout"]) {
        return;
    }
    let dir = tempdir("wtecmp");
    let (bin, have_rvsadm) = bin_dir(dir.path());
    let mut e = rvs_lab::ecmp::ecmp("wtecmp", 3, 4).expect("ecmp lab");
    let mode = PacketPath::requested();
    e.set_walkthrough_rvsd_options(mode.args());
    e.start_nginx().expect("nginx");
    let printed = e.to_string();
    let cmds = parse_walkthrough(&printed);
    assert!(
        !printed.contains('…') && !printed.contains('<'),
        "{printed}"
    );
    let client = e.client.name().to_owned();
    let names: BTreeSet<String> = (1..=4).map(|i| format!("rs{i}")).collect();
    for i in 0..3 {
        assert!(
            cmds.iter().any(|c| c.starts_with(&format!(
                "ip netns exec {} rvsd --socket {} --interface eth0 --announce-table 100",
                e.directors[i].name(),
                e.walkthrough_socket(i).display()
            ))),
            "director {i} runs rvsd:\n{printed}"
        );
    }
    let (mut hops_seen, mut sessions, mut announced, mut spread) = (false, false, false, false);
    let (mut stats, mut after_term) = (Vec::new(), false);
    for c in &cmds {
        let (ok, out, err) = run(c, &bin, have_rvsadm);
        let logs = || {
            (0..e.directors.len())
                .map(|i| std::fs::read_to_string(e.walkthrough_log(i)).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n---\n")
        };
        assert!(
            ok,
            "printed command failed: {c}\nstdout: {out}\nstderr: {err}\nrvsd logs:\n{}\nprinted:\n{printed}",
            logs()
        );
        if c.ends_with(&format!("ip route show {}", rvs_lab::ecmp::VIP)) {
            let hops = rvs_lab::ecmp::parse_next_hops(&out);
            assert_eq!(hops.len(), 3, "three next hops: {out}");
            hops_seen = true;
        } else if c.ends_with("show protocols") {
            assert_eq!(out.matches("Established").count(), 3, "{out}");
            sessions = true;
        } else if c.ends_with("ip route show table 100") {
            assert!(out.contains(&rvs_lab::ecmp::VIP.to_string()), "{out}");
            announced = true;
        } else if c.starts_with("ip netns exec") && c.contains(" curl ") {
            assert_eq!(
                out, "rs1\n",
                "{c}: the real server answers before rvsd runs"
            );
        } else if c.contains(&format!("ip netns exec {client} curl")) && c.contains("-w ") {
            let got = counts(&out);
            assert_eq!(
                got,
                vec![(20, "200".to_owned())],
                "every connection answered after SIGTERM: {out}"
            );
            after_term = true;
        } else if c.contains(&format!("ip netns exec {client} curl")) {
            let got = counts(&out);
            let total: u64 = got.iter().map(|g| g.0).sum();
            let seen: BTreeSet<String> = got.into_iter().map(|g| g.1).collect();
            assert_eq!(total, rvs_lab::ECMP_CURLS as u64, "{out}");
            assert_eq!(seen, names, "every real server answered: {out}");
            spread = true;
        } else if c.ends_with("-Ln --stats") {
            let lines = parse_stats(&out);
            let svc = format!("{}:{}", rvs_lab::ecmp::VIP, rvs_lab::ecmp::PORT);
            let s = lines
                .iter()
                .find(|l| l.is_service && l.addr == svc)
                .unwrap_or_else(|| panic!("no {svc} in\n{out}"));
            stats.push(s.n[0]);
        }
    }
    assert!(
        hops_seen && sessions && announced && spread && after_term,
        "{printed}"
    );
    assert_eq!(stats.len(), 3, "{printed}");
    assert!(
        stats.iter().all(|&s| s > 0) && stats.iter().sum::<u64>() >= rvs_lab::ECMP_CURLS as u64,
        "every director scheduled some of the connections: {stats:?}"
    );
    for i in 0..e.directors.len() {
        let log = std::fs::read_to_string(e.walkthrough_log(i)).unwrap_or_default();
        packet_path::check_log(mode, &["eth0"], &log, None);
    }
}
