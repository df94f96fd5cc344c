//! End-to-end tests of the packet data plane (issue 4 item 6): `rvsd --interface …` as a real
//! process inside the director namespace of an rvs-lab topology, configured with rvsadm
//! (in-process `App` over the real control socket), nginx / socat real servers and curl /
//! socat clients in their own namespaces.
//!
//! Root only: each test prints `SKIP …` and passes without root (CI runs them as root).
//! Everything is bounded in time (curl `--max-time`, socat timeouts, bounded polls), and the
//! lab (namespaces, processes, work directory) is torn down on drop, even on panic; rvsd is
//! declared after the lab so it is stopped first.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rvs_lab::{require_root, socat_transfer, Netns, NsChild, SelftestMode};
use rvsadm::app::{App, SocketBackend};

/// rvsd running in a namespace; SIGTERM + wait on [`Rvsd::stop`], killed on drop otherwise.
struct Rvsd {
    child: Option<NsChild>,
    socket: PathBuf,
}

impl Rvsd {
    fn start(ns: &Netns, dir: &Path, ifaces: &[&str], extra: &[&str]) -> Rvsd {
        let socket = dir.join("rvsd.sock");
        let mut args: Vec<String> = vec![
            "--socket".into(),
            socket.display().to_string(),
            "--metrics-listen".into(),
            "off".into(),
            "--workers".into(),
            "1".into(),
            "--drain-time".into(),
            "0".into(),
        ];
        for i in ifaces {
            args.push("--interface".into());
            args.push((*i).into());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = ns
            .cmd(env!("CARGO_BIN_EXE_rvsd"))
            .args(&args)
            .env("RUST_LOG", "info")
            .spawn_captured()
            .expect("spawn rvsd");
        let mut r = Rvsd {
            child: Some(child),
            socket,
        };
        let start = Instant::now();
        for _ in 0..200 {
            if r.socket.exists() && r.adm(&["-L", "-n"]).0 == 0 {
                return r;
            }
            let running = r.child.as_mut().is_some_and(|c| c.is_running());
            if !running || start.elapsed() > Duration::from_secs(20) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let err = r.stop();
        panic!("rvsd did not come up:\n{err}");
    }

    /// Runs rvsadm with `args` against this rvsd; (exit code, stdout, stderr).
    fn adm(&self, args: &[&str]) -> (i32, String, String) {
        let mut argv = vec!["rvsadm".to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        let mut backend = SocketBackend::new(Some(self.socket.clone()));
        let names = rvsadm::names::NoNames;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = App::new(&mut backend, &names, &mut out, &mut err).run(&argv, &mut &b""[..]);
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    fn adm_ok(&self, line: &str) {
        let line = line.strip_prefix("rvsadm ").unwrap_or(line);
        let args: Vec<&str> = line.split_whitespace().collect();
        let (code, out, err) = self.adm(&args);
        assert_eq!(code, 0, "rvsadm {line}: {out}{err}");
    }

    /// `Conns InPkts OutPkts` of the service line of `rvsadm -L -n --stats` starting with
    /// `prefix` (e.g. `TCP  10.100.0.1:80`).
    fn stats(&self, prefix: &str) -> (u64, u64, u64) {
        let (code, out, err) = self.adm(&["-L", "-n", "--stats"]);
        assert_eq!(code, 0, "{err}");
        let line = out
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in\n{out}"));
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(2)
            .take(3)
            .map(|x| x.parse().unwrap_or_else(|_| panic!("{line}")))
            .collect();
        (f[0], f[1], f[2])
    }

    /// SIGTERM, then waits for the exit; returns what rvsd logged.
    fn stop(&mut self) -> String {
        let Some(child) = self.child.take() else {
            return String::new();
        };
        if let Some(pid) = child.pid() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match child.wait_output(Duration::from_secs(20)) {
            Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => format!("rvsd did not stop: {e}"),
        }
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        let log = self.stop();
        if std::thread::panicking() {
            eprintln!("--- rvsd log ---\n{log}");
        }
    }
}

/// curl with a few bounded retries (the first packets of a lab may meet an unresolved
/// neighbour, which the plane drops while the kernel probes it).
fn curl(ns: &Netns, url: &str) -> String {
    let mut last = String::new();
    for _ in 0..5 {
        match ns.curl(url) {
            Ok(s) => return s,
            Err(e) => last = e.to_string(),
        }
    }
    panic!("curl {url}: {last}");
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom");
    b
}

/// True when `table netdev rvs` exists in `ns`.
fn guard_present(ns: &Netns) -> bool {
    ns.cmd("nft")
        .args(["list", "tables"])
        .run()
        .map(|s| s.contains("netdev rvs"))
        .unwrap_or(false)
}

/// (a) NAT lab: two real servers alternate under rr, replies are SNATed back to the VIP (the
/// client talks to the VIP only, and gets answers), the real servers see the client's
/// address, `--stats` counts both directions; the nft guard exists while rvsd runs and is
/// gone after it stops.
#[test]
fn nat_lab_round_robin_snat_and_stats() {
    if !require_root("nat_lab_round_robin_snat_and_stats") {
        return;
    }
    let mut t = rvs_lab::nat("ppnat").expect("nat lab");
    t.start_nginx().expect("nginx");
    let director = t.director().ns.clone();
    let client = t.client().ns.clone();
    let mut rvsd = Rvsd::start(&director, t.lab().workdir(), &["eth0", "eth1"], &[]);
    for c in t.rvsadm_commands() {
        rvsd.adm_ok(&c);
    }
    assert!(guard_present(&director), "nft guard missing");
    let url = format!("http://{}:{}/", t.vip, t.port);
    // Warm up (one connection), then four in a row must alternate.
    let first = curl(&client, &url);
    assert!(first == "rs1\n" || first == "rs2\n", "{first:?}");
    let pages: Vec<String> = (0..4).map(|_| curl(&client, &url)).collect();
    for w in pages.windows(2) {
        assert_ne!(w[0], w[1], "rr must alternate: {pages:?}");
    }
    assert!(pages.iter().any(|p| p == "rs1\n") && pages.iter().any(|p| p == "rs2\n"));
    // NAT keeps the client address toward the real server.
    let who = curl(&client, &format!("http://{}:{}/whoami", t.vip, t.port));
    assert_eq!(who.trim(), "10.1.0.2");
    let (conns, inpkts, outpkts) = rvsd.stats(&format!("TCP  {}:{}", t.vip, t.port));
    assert!(conns >= 6, "conns {conns}");
    assert!(inpkts >= 6 * 3, "inpkts {inpkts}");
    assert!(outpkts >= 6 * 2, "outpkts {outpkts}");
    let (code, out, _) = rvsd.adm(&["-L", "-n", "-c"]);
    assert_eq!(code, 0);
    assert!(out.contains("10.1.0.2"), "-Lnc shows the client:\n{out}");
    let log = rvsd.stop();
    assert!(
        !guard_present(&director),
        "nft guard left after exit:\n{log}"
    );
    assert!(log.contains("nft ingress guard removed"), "{log}");
}

/// (b) The kernel selftest's pass criterion (spec §9) through rvsd: 32 random bytes sent
/// with socat from ns0 to the VIP arrive unchanged at the real server in ns2.
fn selftest(mode: SelftestMode, tag: &str) -> (u64, u64, u64) {
    let t = rvs_lab::selftest(tag, mode).expect("selftest lab");
    let director = t.director().ns.clone();
    let client = t.client().ns.clone();
    let rs = t.real_servers()[0].ns.clone();
    let rvsd = Rvsd::start(&director, t.lab().workdir(), &["veth10", "veth12"], &[]);
    for c in t.rvsadm_commands() {
        rvsd.adm_ok(&c);
    }
    let payload = random_bytes(32);
    let mut got = Vec::new();
    for _ in 0..3 {
        match socat_transfer(&rs, &client, t.vip, t.port, &payload) {
            Ok(b) if b == payload => {
                got = b;
                break;
            }
            Ok(b) => got = b,
            Err(e) => eprintln!("{tag}: transfer failed, retrying: {e}"),
        }
    }
    assert_eq!(got, payload, "{tag}: bytes differ");
    rvsd.stats(&format!("TCP  {}:{}", t.vip, t.port))
}

#[test]
fn selftest_dr_bytes_and_outpkts_zero() {
    if !require_root("selftest_dr_bytes_and_outpkts_zero") {
        return;
    }
    let (conns, inpkts, outpkts) = selftest(SelftestMode::Dr, "ppsdr");
    assert!(conns >= 1 && inpkts >= 3, "{conns} {inpkts}");
    assert_eq!(outpkts, 0, "DR replies bypass the director");
}

#[test]
fn selftest_nat_bytes() {
    if !require_root("selftest_nat_bytes") {
        return;
    }
    let (conns, inpkts, outpkts) = selftest(SelftestMode::Nat, "ppsnat");
    assert!(
        conns >= 1 && inpkts >= 3 && outpkts >= 2,
        "{conns} {inpkts} {outpkts}"
    );
}

#[test]
fn selftest_tun_bytes_and_outpkts_zero() {
    if !require_root("selftest_tun_bytes_and_outpkts_zero") {
        return;
    }
    let (conns, inpkts, outpkts) = selftest(SelftestMode::Tun, "ppstun");
    assert!(conns >= 1 && inpkts >= 3, "{conns} {inpkts}");
    assert_eq!(outpkts, 0, "TUN replies bypass the director");
}
