//! VRRP end to end in network namespaces (issue 6, item 5): rvsd directors (real processes) and
//! keepalived 2.2.7 on rvs-lab's HA pair (client 10.1.0.2; director1 10.1.0.11, director2
//! 10.1.0.12 on the client segment; VIP 10.1.0.100 owned by VRRP; nginx on rs1/rs2 behind a
//! `-m` service on the VIP served by rvsd's socket proxy).
//!
//! Needs root (skipped with a printed reason otherwise, a failure under CI: see rvs-require), `ip`, `nginx`, `keepalived` and
//! `tshark` (Debian packages `iproute2 nginx-light keepalived tshark`). The tests share one lock:
//! they measure failover gaps, which CPU contention from a parallel test would distort.
//!
//! "Killing" a director means what losing the machine means to its peers: rvsd (or keepalived)
//! gets SIGKILL — no priority-0 advert, the VIP stays configured — and its client-side link goes
//! down. The graceful path (SIGTERM, priority 0) is exercised by the interop test.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::{Rvsd, RVSD};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rvs_lab::topo::HA_VIP;
use rvs_lab::{Netns, NsChild, Topology};

static SERIAL: Mutex<()> = Mutex::new(());

/// Which VRRP implementation runs on a director.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Impl {
    Rvsd,
    Keepalived,
}

/// One director's VRRP settings.
#[derive(Debug, Clone, Copy)]
struct Vrrp {
    version: u8,
    /// `advert_int` in seconds.
    advert_int: f64,
    priority: u8,
    nopreempt: bool,
}

impl Vrrp {
    fn conf(&self) -> String {
        // v2: PASS authentication (issue 6 (b)); v3 has none.
        let auth = if self.version == 2 {
            "    authentication {\n        auth_type PASS\n        auth_pass rvs-e2e\n    }\n"
        } else {
            ""
        };
        format!(
            "global_defs {{\n    vrrp_garp_master_delay 1\n}}\n\
             vrrp_instance VI_E2E {{\n    state BACKUP\n    interface eth0\n    \
             virtual_router_id 61\n    version {}\n    priority {}\n    advert_int {}\n{}{}    \
             virtual_ipaddress {{\n        {HA_VIP}/24 dev eth0 label eth0:1\n    }}\n}}\n",
            self.version,
            self.priority,
            self.advert_int,
            if self.nopreempt {
                "    nopreempt\n"
            } else {
                ""
            },
            auth,
        )
    }
}

/// A director process (rvsd with or without VRRP, keepalived) with its log file.
struct Proc {
    child: Option<NsChild>,
    log: PathBuf,
}

impl Proc {
    fn pid(&self) -> Option<i32> {
        self.child
            .as_ref()
            .and_then(NsChild::pid)
            .and_then(|p| i32::try_from(p).ok())
    }

    fn signal(&mut self, sig: Signal) {
        if let Some(p) = self.pid() {
            let _ = kill(Pid::from_raw(p), sig);
        }
    }

    /// SIGKILL and reap.
    fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        if let Some(c) = self.child.take() {
            let _ = c.wait_output(Duration::from_secs(5));
        }
    }

    /// SIGTERM and wait (bounded) for it to exit.
    fn terminate(&mut self) {
        self.signal(Signal::SIGTERM);
        if let Some(c) = self.child.take() {
            let _ = c.wait_output(Duration::from_secs(10));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// One director: its namespace and what runs on it.
struct Director {
    name: String,
    ns: Netns,
    dir: PathBuf,
    /// rvsd (the proxy plane, and VRRP when `Impl::Rvsd`).
    rvsd: Option<Rvsd>,
    /// keepalived, when `Impl::Keepalived`.
    keepalived: Option<Proc>,
    runs: u32,
}

impl Director {
    fn new(topo: &Topology, role: &str) -> Director {
        let ns = topo.node(role).expect("director").ns.clone();
        let dir = topo.lab().workdir().join(role);
        std::fs::create_dir_all(&dir).expect("workdir");
        Director {
            name: role.into(),
            ns,
            dir,
            rvsd: None,
            keepalived: None,
            runs: 0,
        }
    }

    /// Start rvsd (proxy + rules; VRRP too with `Impl::Rvsd`) or rvsd (proxy) + keepalived.
    fn start(&mut self, imp: Impl, v: Vrrp) {
        self.start_conf(imp, &v.conf());
    }

    /// Like [`Director::start`] with a whole keepalived.conf.
    fn start_conf(&mut self, imp: Impl, text: &str) {
        self.runs += 1;
        let conf = self.dir.join(format!("keepalived-{}.conf", self.runs));
        std::fs::write(&conf, text).expect("write conf");
        let rules = self.dir.join("rules");
        std::fs::write(
            &rules,
            format!(
                "-A -t {HA_VIP}:80 -s rr\n-a -t {HA_VIP}:80 -r 10.2.0.11:80 -m -w 1\n\
                 -a -t {HA_VIP}:80 -r 10.2.0.12:80 -m -w 1\n"
            ),
        )
        .expect("write rules");
        // Each run in its own directory: a fresh control socket and log.
        let run = self.dir.join(format!("run-{}", self.runs));
        std::fs::create_dir_all(&run).expect("run directory");
        let (rules, conf_arg) = (rules.display().to_string(), conf.display().to_string());
        let mut args = vec!["--drain-time", "0", "--rules", &rules];
        if imp == Impl::Rvsd {
            args.extend(["--vrrp", &conf_arg]);
        }
        self.rvsd = Some(Rvsd::start_in(RVSD, Some(&self.ns), &run, &args));
        if imp == Impl::Keepalived {
            let log = self.dir.join(format!("keepalived-{}.log", self.runs));
            let d = &self.dir;
            for f in ["ka.pid", "ka-vrrp.pid", "ka-check.pid"] {
                let _ = std::fs::remove_file(d.join(f));
            }
            let cmd = format!(
                "exec keepalived -P -n -l -D -f {} -p {} -r {} -c {} >{} 2>&1",
                conf.display(),
                d.join("ka.pid").display(),
                d.join("ka-vrrp.pid").display(),
                d.join("ka-check.pid").display(),
                log.display()
            );
            let child = self
                .ns
                .cmd("sh")
                .args(["-c", &cmd])
                .spawn()
                .expect("spawn keepalived");
            self.keepalived = Some(Proc {
                child: Some(child),
                log,
            });
        }
    }

    /// Replace the running rvsd's keepalived.conf by `text` (atomically) and send it SIGHUP.
    fn reload_conf(&mut self, text: &str) {
        let conf = self.dir.join(format!("keepalived-{}.conf", self.runs));
        let tmp = conf.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write conf");
        std::fs::rename(&tmp, &conf).expect("replace conf");
        self.rvsd
            .as_mut()
            .expect("rvsd running")
            .signal(Signal::SIGHUP);
    }

    /// Machine loss: the client-side link goes down (so no last advert leaves), then the VRRP
    /// process is SIGKILLed (keepalived: its VRRP child first, which would otherwise resign on
    /// its parent's death), then the rest stops.
    fn crash(&mut self) {
        self.ns
            .ip(["link", "set", "eth0", "down"])
            .expect("link down");
        self.kill_keepalived_child();
        // SIGKILL the VRRP process: keepalived, or rvsd (dropping the harness's handle kills
        // its process group).
        match &mut self.keepalived {
            Some(k) => k.kill(),
            None => self.rvsd = None,
        }
        self.stop_all();
    }

    /// SIGKILL keepalived's VRRP child (from its pid file).
    fn kill_keepalived_child(&self) {
        if self.keepalived.is_none() {
            return;
        }
        if let Some(pid) = std::fs::read_to_string(self.dir.join("ka-vrrp.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    /// Bring the link back (after [`Director::crash`]).
    fn revive(&mut self) {
        self.ns.ip(["link", "set", "eth0", "up"]).expect("link up");
        // A killed director leaves its VIP configured. rvsd removes it when it starts; the
        // test removes it for every implementation so that all runs start alike.
        let _ = self
            .ns
            .ip(["addr", "del", &format!("{HA_VIP}/24"), "dev", "eth0"]);
    }

    /// Graceful stop of everything (SIGTERM: priority-0 advert).
    fn stop_all(&mut self) {
        if let Some(mut k) = self.keepalived.take() {
            k.terminate();
        }
        if let Some(mut r) = self.rvsd.take() {
            r.stop();
        }
    }

    /// `rvsadm -L --vrrp` against this director's rvsd (rvsadm's library, so the test never
    /// runs a stale binary), bounded to 20 s: (exit status, stdout, stderr).
    fn rvsadm_vrrp(&self) -> (i32, String, String) {
        let a = self
            .rvsd
            .as_ref()
            .expect("rvsd started")
            .adm(&["-L", "--vrrp"]);
        (a.code, a.out, a.err)
    }

    fn has_vip(&self) -> bool {
        self.ns
            .ip(["-4", "-o", "addr", "show", "dev", "eth0"])
            .map(|s| s.contains(&format!("{HA_VIP}/24")))
            .unwrap_or(false)
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        if let Some(r) = &self.rvsd {
            s.push_str(&format!(
                "--- {} {}\n{}",
                self.name,
                r.log.display(),
                r.log_text()
            ));
        }
        if let Some(p) = &self.keepalived {
            s.push_str(&format!(
                "--- {} {}\n{}",
                self.name,
                p.log.display(),
                p.log_text()
            ));
        }
        s
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        self.kill_keepalived_child();
        if let Some(mut k) = self.keepalived.take() {
            k.kill();
        }
        // The harness's Rvsd is killed (SIGKILL to its process group) when dropped.
        self.rvsd = None;
    }
}

/// Poll `f` every 20 ms until it holds; panic after `timeout`.
fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool, what: &str) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// [`wait_until`] that shows the directors' logs when it fails.
fn wait_logs(timeout: Duration, f: impl FnMut() -> bool, what: &str, dirs: &[&Director]) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(timeout, f, what)
    }));
    if r.is_err() {
        let logs: String = dirs.iter().map(|d| d.logs()).collect();
        panic!("timed out waiting for {what}:\n{logs}");
    }
}

/// One HTTP GET through the VIP with short timeouts, so that a probe that hits the dead
/// director costs ≤ 0.15 s instead of a TCP SYN retransmission (1 s).
fn probe(vip: Ipv4Addr) -> bool {
    let addr = SocketAddr::new(IpAddr::V4(vip), 80);
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(50)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    for _ in 0..16 {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return false,
        }
    }
    buf.starts_with(b"HTTP/1.1 200") && (buf.ends_with(b"rs1\n") || buf.ends_with(b"rs2\n"))
}

/// Run the client probe loop (every 10 ms, for `dur`) in the client namespace on a thread;
/// `during` runs meanwhile and returns the instant of the event of interest. Returns the gap:
/// from that instant to the first successful request after it that follows a failure (zero if
/// no request failed), and the number of failed requests.
fn measure(topo: &Topology, dur: Duration, during: impl FnOnce() -> Instant) -> (Duration, usize) {
    let client = topo.client().ns.clone();
    let samples = thread::scope(|s| {
        let h = s.spawn(move || {
            client
                .exec(move || {
                    let end = Instant::now() + dur;
                    let mut v = Vec::new();
                    while Instant::now() < end {
                        let t = Instant::now();
                        v.push((t, probe(HA_VIP)));
                        thread::sleep(Duration::from_millis(10));
                    }
                    v
                })
                .expect("probe in client namespace")
        });
        let at = during();
        (at, h.join().expect("probe thread"))
    });
    let (at, v) = samples;
    let after: Vec<_> = v.iter().filter(|(t, _)| *t >= at).collect();
    let failed = after.iter().filter(|(_, ok)| !ok).count();
    let Some(first_fail) = after.iter().position(|(_, ok)| !ok) else {
        return (Duration::ZERO, 0);
    };
    let back = after[first_fail..]
        .iter()
        .find(|(_, ok)| *ok)
        .unwrap_or_else(|| panic!("no successful request after the failover ({failed} failed)"));
    (back.0 - at, failed)
}

/// The longest run of failed requests in `measure`'s sense is what a planned switch (preemption)
/// costs; used where the event itself causes no outage until the switch.
fn outage(topo: &Topology, dur: Duration, during: impl FnOnce() -> Instant) -> Duration {
    let mut worst = Duration::ZERO;
    let client = topo.client().ns.clone();
    let v = thread::scope(|s| {
        let h = s.spawn(move || {
            client
                .exec(move || {
                    let end = Instant::now() + dur;
                    let mut v = Vec::new();
                    while Instant::now() < end {
                        v.push((Instant::now(), probe(HA_VIP)));
                        thread::sleep(Duration::from_millis(10));
                    }
                    v
                })
                .expect("probe in client namespace")
        });
        during();
        h.join().expect("probe thread")
    });
    let mut fail_start = None;
    for (t, ok) in &v {
        match (ok, fail_start) {
            (false, None) => fail_start = Some(*t),
            (true, Some(f)) => {
                worst = worst.max(*t - f);
                fail_start = None;
            }
            _ => {}
        }
    }
    assert!(fail_start.is_none(), "requests still failing at the end");
    worst
}

fn lab(tag: &str) -> Topology {
    let mut t = rvs_lab::ha(tag).expect("HA topology");
    t.start_nginx().expect("nginx");
    t
}

/// Wait until exactly `master` holds the VIP; then check for `hold` that it stays that way
/// (sampled every 50 ms: exactly one master at any time after convergence).
/// rvsd on both directors of `topo` with one preemptive instance (director1 priority 150,
/// director2 100), started together; returns once director1 has been the only MASTER for
/// `hold` (converged within 10 s), with the two settings.
fn rvsd_pair(
    topo: &Topology,
    version: u8,
    advert_int: f64,
    hold: Duration,
) -> (Director, Director, Vrrp, Vrrp) {
    let mut d1 = Director::new(topo, "director1");
    let mut d2 = Director::new(topo, "director2");
    let hi = Vrrp {
        version,
        advert_int,
        priority: 150,
        nopreempt: false,
    };
    let lo = Vrrp {
        priority: 100,
        ..hi
    };
    d1.start(Impl::Rvsd, hi);
    d2.start(Impl::Rvsd, lo);
    expect_master(&[&d1, &d2], 0, Duration::from_secs(10), hold);
    (d1, d2, hi, lo)
}

fn expect_master(dirs: &[&Director], master: usize, converge: Duration, hold: Duration) {
    let ok = |d: &[&Director]| {
        d.iter()
            .enumerate()
            .all(|(i, x)| x.has_vip() == (i == master))
    };
    let end = Instant::now() + converge;
    while !ok(dirs) {
        if Instant::now() > end {
            let logs: String = dirs.iter().map(|d| d.logs()).collect();
            panic!(
                "{} did not become the only master:\n{logs}",
                dirs[master].name
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    let end = Instant::now() + hold;
    while Instant::now() < end {
        let holders: Vec<&str> = dirs
            .iter()
            .filter(|d| d.has_vip())
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(
            holders,
            vec![dirs[master].name.as_str()],
            "exactly one master after convergence"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// (a) Two rvsd directors: kill the master, the backup takes over (gap measured through the
/// VIP); restart the higher-priority node, it preempts.
#[test]
fn rvsd_pair_failover_and_preempt() {
    rvs_require::require_root!();
    let _g = serial();
    let topo = lab("vrrpa");
    let (mut d1, d2, hi, _) = rvsd_pair(&topo, 2, 1.0, Duration::from_secs(2));
    assert!(
        topo.client().ns.exec(|| probe(HA_VIP)).unwrap(),
        "request through the VIP on director1"
    );
    // Issue 6: `rvsadm -L --vrrp` shows each side's state, priorities and advert counters.
    let row = |d: &Director| -> Vec<String> {
        let (code, out, err) = d.rvsadm_vrrp();
        assert_eq!((code, err.as_str()), (0, ""), "{}: {out}", d.name);
        println!("{}: rvsadm -L --vrrp\n{out}", d.name);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{}: header + one instance:\n{out}", d.name);
        assert!(lines[0].starts_with("Name "), "{out}");
        lines[1].split_whitespace().map(String::from).collect()
    };
    let count = |r: &[String], col: usize| r[col].parse::<u64>().expect("counter");
    // Columns: Name VRID Interface Ver State Prio Adv-int Transitions Sent Rcvd Rejected
    // In-state Sync-group VIPs.
    let m = row(&d1);
    assert_eq!(
        &m[..7],
        ["VI_E2E", "61", "eth0", "2", "MASTER", "150/150", "1.00s"]
    );
    assert!(count(&m, 8) > 0, "the master sent adverts: {m:?}");
    assert_eq!(m[13], HA_VIP.to_string());
    let b = row(&d2);
    assert_eq!(
        &b[..7],
        ["VI_E2E", "61", "eth0", "2", "BACKUP", "100/100", "1.00s"]
    );
    assert!(count(&b, 9) > 0, "the backup received adverts: {b:?}");
    assert_eq!(count(&b, 10), 0, "no advert rejected: {b:?}");
    let (gap, failed) = measure(&topo, Duration::from_secs(8), || {
        thread::sleep(Duration::from_millis(500));
        let t = Instant::now();
        d1.crash();
        t
    });
    println!(
        "rvsd pair, v2 advert_int 1, backup priority 100: client gap {:.3} s after the master died \
         ({failed} failed requests; RFC bound 3 × 1 s + skew 0.609 s = 3.609 s)",
        gap.as_secs_f64()
    );
    // director1's VIP may still be configured on its dead link, as on a machine that lost power.
    assert!(d2.has_vip(), "director2 took over");
    assert!(
        gap < Duration::from_millis(4600),
        "gap {gap:?} within the RFC bound + 1 s"
    );
    // Preempt: director1 (150) comes back and takes the VIP again.
    d1.revive();
    let out = outage(&topo, Duration::from_secs(8), || {
        let t = Instant::now();
        d1.start(Impl::Rvsd, hi);
        t
    });
    expect_master(
        &[&d1, &d2],
        0,
        Duration::from_secs(10),
        Duration::from_secs(2),
    );
    println!(
        "rvsd pair: director1 preempted after restart; longest client outage {:.3} s",
        out.as_secs_f64()
    );
    let log = d2.rvsd.as_ref().unwrap().log_text();
    assert!(
        log.contains("Entering BACKUP STATE"),
        "director2 gave up:\n{log}"
    );
}

/// SIGHUP reloads VRRP: a raised priority on the backup preempts the master while the instance
/// keeps running (same counters); a file that does not load changes nothing; an instance the
/// file no longer has resigns (priority 0), so the peer takes over within Skew_Time.
#[test]
fn rvsd_reload_priority_preempts() {
    rvs_require::require_root!();
    let _g = serial();
    let topo = lab("vrrpr");
    let (d1, mut d2, _, lo) = rvsd_pair(&topo, 3, 0.5, Duration::from_secs(1));
    // The Rcvd column of `rvsadm -L --vrrp`.
    let received = |d: &Director| -> u64 {
        let (code, out, err) = d.rvsadm_vrrp();
        assert_eq!((code, err.as_str()), (0, ""), "{out}");
        let line = out.lines().nth(1).unwrap_or("");
        let row: Vec<&str> = line.split_whitespace().collect();
        row.get(9).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    let logged = |d: &Director, what: &str| d.rvsd.as_ref().unwrap().log_text().contains(what);
    let before = received(&d2);
    assert!(before > 0, "director2 hears director1");

    // director2 100 → 200: it preempts (Master_Down_Interval 3 × 0.5 s + skew), in place.
    let raised = Vrrp {
        priority: 200,
        ..lo
    };
    d2.reload_conf(&raised.conf());
    wait_logs(
        Duration::from_secs(5),
        || logged(&d2, "1 instance(s) kept, 0 started, 0 removed"),
        "director2 reloads VRRP in place",
        &[&d2],
    );
    expect_master(
        &[&d1, &d2],
        1,
        Duration::from_secs(5),
        Duration::from_secs(1),
    );
    let (_, table, _) = d2.rvsadm_vrrp();
    println!("director2 after the reload:\n{table}");
    assert!(table.contains("MASTER        200/200"), "{table}");
    assert!(
        received(&d2) >= before,
        "the instance kept its counters (not restarted):\n{table}"
    );
    assert!(
        topo.client().ns.exec(|| probe(HA_VIP)).unwrap(),
        "request through the VIP on director2"
    );

    // A file that does not load: nothing changes.
    d2.reload_conf("vrrp_instance VI_E2E {\n    state BACKUP\n");
    wait_logs(
        Duration::from_secs(5),
        || logged(&d2, "VRRP keeps the running instances"),
        "director2 refuses the broken file",
        &[&d2],
    );
    expect_master(&[&d1, &d2], 1, Duration::ZERO, Duration::from_secs(2));

    // The instance removed from the file resigns: director1 takes over after Skew_Time
    // (0.21 s), not after Master_Down_Interval (1.7 s).
    let t = Instant::now();
    d2.reload_conf("global_defs {\n    vrrp_garp_master_delay 1\n}\n");
    expect_master(&[&d1, &d2], 0, Duration::from_secs(3), Duration::ZERO);
    let took = t.elapsed();
    println!(
        "director2 removed its instance: director1 master after {:.3} s",
        took.as_secs_f64()
    );
    assert!(
        took < Duration::from_millis(1200),
        "director1 took over by the priority-0 advert, not the down timer: {took:?}"
    );
    expect_master(&[&d1, &d2], 0, Duration::ZERO, Duration::from_secs(1));
    assert!(
        logged(&d2, "0 instance(s) kept, 0 started, 1 removed"),
        "{}",
        d2.logs()
    );
    let (code, out, _) = d2.rvsadm_vrrp();
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "no VRRP instances (rvsd runs without vrrp_instance configuration)\n"
    );
}

/// (a) With `nopreempt` a restarted higher-priority node stays BACKUP.
#[test]
fn rvsd_pair_nopreempt() {
    rvs_require::require_root!();
    let _g = serial();
    let topo = lab("vrrpn");
    let mut d1 = Director::new(&topo, "director1");
    let mut d2 = Director::new(&topo, "director2");
    let hi = Vrrp {
        version: 3,
        advert_int: 0.5,
        priority: 150,
        nopreempt: true,
    };
    let lo = Vrrp {
        priority: 100,
        ..hi
    };
    d1.start(Impl::Rvsd, hi);
    // director1 alone: it becomes master after the down timer.
    expect_master(&[&d1, &d2], 0, Duration::from_secs(10), Duration::ZERO);
    d2.start(Impl::Rvsd, lo);
    expect_master(
        &[&d1, &d2],
        0,
        Duration::from_secs(2),
        Duration::from_secs(2),
    );
    d1.crash();
    // director1's VIP may stay on its dead link (as on a machine that lost power); revive()
    // clears it.
    wait_logs(
        Duration::from_secs(5),
        || d2.has_vip(),
        "director2 takes over",
        &[&d2],
    );
    d1.revive();
    d1.start(Impl::Rvsd, hi);
    // Master_Down_Interval is 3 × 0.5 + skew ≈ 1.7 s: 4 s is well past any preemption.
    expect_master(
        &[&d1, &d2],
        1,
        Duration::from_secs(2),
        Duration::from_secs(4),
    );
    let log = d1.rvsd.as_ref().unwrap().log_text();
    assert!(
        !log.contains("Entering MASTER STATE"),
        "nopreempt director1 took over:\n{log}"
    );
    assert!(topo.client().ns.exec(|| probe(HA_VIP)).unwrap());
}

/// The driver's I/O besides adverts and VIPs: a failing `track_script` (weight −60, on the
/// `vrrp_sync_group`, so every member tracks it; `sync_group_tracking_weight` keeps the weight)
/// moves the group's two instances to the peer together; a `track_interface` with weight 0 puts
/// the group in FAULT; `notify` scripts get keepalived's four
/// arguments and `vrrp_notify_fifo` keepalived's lines; SIGTERM notifies STOP.
#[test]
fn rvsd_tracking_notify_and_sync_group() {
    rvs_require::require_root!();
    let _g = serial();
    let topo = rvs_lab::ha("vrrpt").expect("HA topology");
    let mut d1 = Director::new(&topo, "director1");
    let mut d2 = Director::new(&topo, "director2");
    let vip2 = Ipv4Addr::new(10, 1, 0, 101);
    let conf = |d: &Director, prio: u8, tracked: bool| {
        let dir = d.dir.display().to_string();
        std::fs::write(
            d.dir.join("notify.sh"),
            format!("#!/bin/sh\necho \"$@\" >> {dir}/notify.log\n"),
        )
        .unwrap();
        std::fs::write(
            d.dir.join("chk.sh"),
            format!("#!/bin/sh\ntest ! -e {dir}/fail\n"),
        )
        .unwrap();
        for f in ["notify.sh", "chk.sh"] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d.dir.join(f), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let track = if tracked {
            "    track_script {\n        chk\n    }\n    track_interface {\n        eth1 weight 0\n    }\n"
        } else {
            ""
        };
        let inst = |name: &str, vrid: u8, vip: Ipv4Addr, label: &str| {
            format!(
                "vrrp_instance {name} {{\n    state BACKUP\n    interface eth0\n    \
                 virtual_router_id {vrid}\n    priority {prio}\n    advert_int 1\n    \
                 virtual_ipaddress {{\n        {vip}/24 dev eth0 label {label}\n    }}\n    \
                 notify {dir}/notify.sh\n}}\n"
            )
        };
        format!(
            "global_defs {{\n    vrrp_notify_fifo {dir}/fifo\n    vrrp_garp_master_delay 0\n}}\n\
             vrrp_script chk {{\n    script {dir}/chk.sh\n    interval 1\n    weight -60\n}}\n\
             vrrp_sync_group G {{\n    group {{\n        VI_1\n        VI_2\n    }}\n    \
             sync_group_tracking_weight\n{track}    notify {dir}/notify.sh\n}}\n{}{}",
            inst("VI_1", 61, HA_VIP, "eth0:1"),
            inst("VI_2", 62, vip2, "eth0:2"),
        )
    };
    // Read director1's FIFO from before rvsd opens it.
    let fifo = d1.dir.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let fifo_log = d1.dir.join("fifo.log");
    let _reader = rvs_lab::NsCommand::host("sh")
        .args([
            "-c",
            &format!("exec cat {} > {}", fifo.display(), fifo_log.display()),
        ])
        .spawn()
        .unwrap();
    let c1 = conf(&d1, 150, true);
    let c2 = conf(&d2, 100, false);
    d1.start_conf(Impl::Rvsd, &c1);
    d2.start_conf(Impl::Rvsd, &c2);
    let has = |d: &Director, vip: Ipv4Addr| {
        d.ns.ip(["-4", "-o", "addr", "show", "dev", "eth0"])
            .map(|s| s.contains(&format!("{vip}/24")))
            .unwrap_or(false)
    };
    let both = |d: &Director| has(d, HA_VIP) && has(d, vip2);
    let none = |d: &Director| !has(d, HA_VIP) && !has(d, vip2);
    wait_logs(
        Duration::from_secs(10),
        || both(&d1) && none(&d2),
        "director1 master of G",
        &[&d1, &d2],
    );
    let labels = d1
        .ns
        .ip(["-4", "-o", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(
        labels.contains("eth0:1") && labels.contains("eth0:2"),
        "{labels}"
    );
    let notify1 = d1.dir.join("notify.log");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    wait_logs(
        Duration::from_secs(3),
        || {
            read(&notify1).contains("INSTANCE VI_1 MASTER 150")
                && read(&notify1).contains("GROUP G MASTER 0")
        },
        "notify MASTER",
        &[&d1, &d2],
    );
    // The script fails: VI_1 drops to 90 < 100, the whole group moves to director2.
    std::fs::write(d1.dir.join("fail"), "").unwrap();
    wait_logs(
        Duration::from_secs(10),
        || both(&d2) && none(&d1),
        "G moves to director2",
        &[&d1, &d2],
    );
    wait_logs(
        Duration::from_secs(3),
        || {
            read(&notify1).contains("INSTANCE VI_1 BACKUP 90")
                && read(&notify1).contains("INSTANCE VI_2 BACKUP")
        },
        "notify BACKUP",
        &[&d1, &d2],
    );
    // track_interface eth1 weight 0: FAULT.
    d1.ns.ip(["link", "set", "eth1", "down"]).unwrap();
    wait_logs(
        Duration::from_secs(3),
        || {
            read(&notify1).contains("INSTANCE VI_1 FAULT")
                && read(&notify1).contains("GROUP G FAULT")
        },
        "notify FAULT",
        &[&d1, &d2],
    );
    // Everything clears: director1 (150) preempts with both instances.
    d1.ns.ip(["link", "set", "eth1", "up"]).unwrap();
    std::fs::remove_file(d1.dir.join("fail")).unwrap();
    wait_logs(
        Duration::from_secs(10),
        || both(&d1) && none(&d2),
        "G back on director1",
        &[&d1, &d2],
    );
    // SIGHUP keeps the group and its members (same names, VRIDs, interface): director2 raised
    // to 200 takes G over by preemption, both instances moving together.
    d2.reload_conf(&conf(&d2, 200, false));
    wait_logs(
        Duration::from_secs(10),
        || both(&d2) && none(&d1),
        "G preempted by the reloaded director2",
        &[&d1, &d2],
    );
    let log2 = d2.rvsd.as_ref().unwrap().log_text();
    assert!(
        log2.contains("2 instance(s) kept, 0 started, 0 removed"),
        "{log2}"
    );
    wait_logs(
        Duration::from_secs(3),
        || read(&d2.dir.join("notify.log")).contains("GROUP G MASTER 0"),
        "notify GROUP G MASTER on director2",
        &[&d2],
    );
    d1.stop_all();
    // Notify scripts run in their own tasks: the last ones may still be writing when the
    // daemon is gone, so wait (bounded) for the STOP lines instead of reading once.
    wait_logs(
        Duration::from_secs(3),
        || read(&notify1).contains("INSTANCE VI_1 STOP"),
        "notify STOP of VI_1",
        &[&d1, &d2],
    );
    wait_logs(
        Duration::from_secs(3),
        || {
            let f = read(&fifo_log);
            f.contains("INSTANCE \"VI_1\" MASTER 150")
                && f.contains("INSTANCE \"VI_1\" BACKUP 90")
                && f.contains("GROUP \"G\" FAULT 0")
                && f.contains("INSTANCE \"VI_1\" STOP")
        },
        "FIFO lines",
        &[&d1, &d2],
    );
    println!("notify log of director1:\n{}", read(&notify1));
}

/// tshark's verdict on rvsd's adverts captured in `ns`: panics on a malformed packet, an expert
/// warning or a bad checksum.
fn tshark_check(ns: &Netns, dir: &Path, src: Ipv4Addr, version: u8) {
    let pcap = dir.join(format!("adverts-v{version}.pcap"));
    let _ = std::fs::remove_file(&pcap);
    ns.cmd("tshark")
        .args([
            "-q",
            "-i",
            "eth0",
            "-a",
            "duration:3",
            "-f",
            &format!("ip proto 112 and src host {src}"),
            "-w",
            &pcap.display().to_string(),
        ])
        .timeout(Duration::from_secs(15))
        .output()
        .expect("tshark capture");
    let out = rvs_lab::NsCommand::host("tshark")
        .args(["-r", &pcap.display().to_string(), "-V"])
        .timeout(Duration::from_secs(15))
        .output()
        .expect("tshark -V");
    let text = out.stdout_str();
    let n = text.matches("Virtual Router Redundancy Protocol").count();
    assert!(n >= 2, "tshark saw {n} VRRP adverts from {src}:\n{text}");
    assert!(
        text.contains(&format!("Version {version}, Packet type 1 (Advertisement)")),
        "{text}"
    );
    for bad in [
        "[Malformed",
        "Expert Info (Warning",
        "Expert Info (Error",
        "[incorrect",
        "Status: Bad",
    ] {
        assert!(!text.contains(bad), "tshark reports {bad:?}:\n{text}");
    }
    println!("tshark: {n} VRRPv{version} adverts from rvsd dissected without warnings");
}

/// (b) rvsd and keepalived 2.2.7 as master and backup, v2 (PASS) and v3: exactly one master
/// after convergence, failover both ways (graceful: priority 0), preemption back; tshark on
/// rvsd's adverts.
#[test]
fn interop_with_keepalived() {
    rvs_require::require_root!();
    rvs_require::require_tools!("keepalived", "tshark", "nginx");
    let _g = serial();
    let topo = lab("vrrpk");
    for version in [2u8, 3] {
        for rvsd_master in [true, false] {
            let mut d1 = Director::new(&topo, "director1");
            let mut d2 = Director::new(&topo, "director2");
            let base = Vrrp {
                version,
                advert_int: 1.0,
                priority: 150,
                nopreempt: false,
            };
            // director1 is the master (150), director2 the backup (100).
            let (i1, i2) = if rvsd_master {
                (Impl::Rvsd, Impl::Keepalived)
            } else {
                (Impl::Keepalived, Impl::Rvsd)
            };
            let case = format!("v{version} master={i1:?} backup={i2:?}");
            d2.start(
                i2,
                Vrrp {
                    priority: 100,
                    ..base
                },
            );
            d1.start(i1, base);
            expect_master(
                &[&d1, &d2],
                0,
                Duration::from_secs(10),
                Duration::from_secs(3),
            );
            assert!(topo.client().ns.exec(|| probe(HA_VIP)).unwrap(), "{case}");
            if rvsd_master {
                tshark_check(&d1.ns, &d1.dir, Ipv4Addr::new(10, 1, 0, 11), version);
            }
            // Failover: the master resigns (SIGTERM → priority 0), the backup takes over.
            let t = Instant::now();
            d1.stop_all();
            expect_master(&[&d1, &d2], 1, Duration::from_secs(5), Duration::ZERO);
            println!(
                "{case}: backup holds the VIP {:.3} s after SIGTERM to the master",
                t.elapsed().as_secs_f64()
            );
            expect_master(&[&d1, &d2], 1, Duration::ZERO, Duration::from_secs(2));
            if !rvsd_master {
                tshark_check(&d2.ns, &d2.dir, Ipv4Addr::new(10, 1, 0, 12), version);
            }
            // Failback: the higher priority returns and preempts.
            d1.revive();
            d1.start(i1, base);
            expect_master(
                &[&d1, &d2],
                0,
                Duration::from_secs(10),
                Duration::from_secs(2),
            );
            assert!(topo.client().ns.exec(|| probe(HA_VIP)).unwrap(), "{case}");
            println!("{case}: exactly one master, failover and failback OK");
            d1.stop_all();
            d2.stop_all();
            d2.revive();
        }
    }
}

/// (b) over IPv6 (VRRPv3, ff02::12, link-local sources): rvsd and keepalived as master and
/// backup, exactly one holder of the IPv6 VIP, failover (SIGTERM) and failback; tshark on rvsd's
/// adverts.
#[test]
fn interop_with_keepalived_ipv6() {
    rvs_require::require_root!();
    rvs_require::require_tools!("keepalived", "tshark", "nginx");
    let _g = serial();
    let topo = rvs_lab::ha("vrrp6").expect("HA topology");
    let vip = "fd00:1::100/64";
    let conf = |prio: u8| {
        format!(
            "vrrp_instance VI_6 {{\n    state BACKUP\n    interface eth0\n    \
             virtual_router_id 66\n    version 3\n    priority {prio}\n    advert_int 1\n    \
             virtual_ipaddress {{\n        {vip} dev eth0\n    }}\n}}\n"
        )
    };
    let has6 = |d: &Director| {
        d.ns.ip(["-6", "-o", "addr", "show", "dev", "eth0"])
            .map(|s| s.contains(vip))
            .unwrap_or(false)
    };
    for rvsd_master in [true, false] {
        let mut d1 = Director::new(&topo, "director1");
        let mut d2 = Director::new(&topo, "director2");
        let (i1, i2) = if rvsd_master {
            (Impl::Rvsd, Impl::Keepalived)
        } else {
            (Impl::Keepalived, Impl::Rvsd)
        };
        let case = format!("IPv6 master={i1:?} backup={i2:?}");
        d2.start_conf(i2, &conf(100));
        d1.start_conf(i1, &conf(150));
        let only =
            |m: usize, d1: &Director, d2: &Director| has6(d1) == (m == 0) && has6(d2) == (m == 1);
        wait_logs(
            Duration::from_secs(10),
            || only(0, &d1, &d2),
            &format!("{case}: director1 master"),
            &[&d1, &d2],
        );
        for _ in 0..40 {
            assert!(only(0, &d1, &d2), "{case}: exactly one master");
            thread::sleep(Duration::from_millis(50));
        }
        // rvsd's adverts are checked while it is master (after the failover when it is BACKUP).
        if rvsd_master {
            tshark_check6(&d1.ns, &d1.dir);
        }
        d1.stop_all();
        wait_logs(
            Duration::from_secs(5),
            || only(1, &d1, &d2),
            &format!("{case}: director2 takes over"),
            &[&d1, &d2],
        );
        if !rvsd_master {
            tshark_check6(&d2.ns, &d2.dir);
        }
        d1.start_conf(i1, &conf(150));
        wait_logs(
            Duration::from_secs(10),
            || only(0, &d1, &d2),
            &format!("{case}: director1 preempts"),
            &[&d1, &d2],
        );
        println!("{case}: exactly one master, failover and failback OK");
        d1.stop_all();
        d2.stop_all();
        for d in [&d1, &d2] {
            let _ = d.ns.ip(["addr", "del", vip, "dev", "eth0"]);
        }
    }
}

/// Unicast peers (`unicast_src_ip` / `unicast_peer`, v2 with PASS) between rvsd and
/// keepalived, both roles: one master, failover (SIGTERM) and failback.
#[test]
fn interop_unicast_with_keepalived() {
    rvs_require::require_root!();
    rvs_require::require_tools!("keepalived", "tshark", "nginx");
    let _g = serial();
    let topo = rvs_lab::ha("vrrpu").expect("HA topology");
    let conf = |prio: u8, me: &str, peer: &str| {
        format!(
            "vrrp_instance VI_U {{\n    state BACKUP\n    interface eth0\n    \
             virtual_router_id 71\n    priority {prio}\n    advert_int 1\n    \
             authentication {{\n        auth_type PASS\n        auth_pass unicast\n    }}\n    \
             unicast_src_ip {me}\n    unicast_peer {{\n        {peer}\n    }}\n    \
             virtual_ipaddress {{\n        {HA_VIP}/24 dev eth0 label eth0:1\n    }}\n}}\n"
        )
    };
    let (a1, a2) = ("10.1.0.11", "10.1.0.12");
    for rvsd_master in [true, false] {
        let mut d1 = Director::new(&topo, "director1");
        let mut d2 = Director::new(&topo, "director2");
        let (i1, i2) = if rvsd_master {
            (Impl::Rvsd, Impl::Keepalived)
        } else {
            (Impl::Keepalived, Impl::Rvsd)
        };
        let case = format!("unicast master={i1:?} backup={i2:?}");
        d2.start_conf(i2, &conf(100, a2, a1));
        d1.start_conf(i1, &conf(150, a1, a2));
        expect_master(
            &[&d1, &d2],
            0,
            Duration::from_secs(10),
            Duration::from_secs(2),
        );
        d1.stop_all();
        expect_master(
            &[&d1, &d2],
            1,
            Duration::from_secs(5),
            Duration::from_secs(1),
        );
        d1.revive();
        d1.start_conf(i1, &conf(150, a1, a2));
        expect_master(
            &[&d1, &d2],
            0,
            Duration::from_secs(10),
            Duration::from_secs(1),
        );
        println!("{case}: exactly one master, failover and failback OK");
        d1.stop_all();
        d2.stop_all();
        d2.revive();
    }
}

/// [`tshark_check`] for IPv6 adverts (VRRPv3) sent from `ns`.
fn tshark_check6(ns: &Netns, dir: &Path) {
    let pcap = dir.join("adverts-v6.pcap");
    let _ = std::fs::remove_file(&pcap);
    ns.cmd("tshark")
        .args([
            "-q",
            "-i",
            "eth0",
            "-a",
            "duration:3",
            "-f",
            "ip6 proto 112",
            "-w",
        ])
        .arg(pcap.display().to_string())
        .timeout(Duration::from_secs(15))
        .output()
        .expect("tshark capture");
    let text = rvs_lab::NsCommand::host("tshark")
        .args(["-r", &pcap.display().to_string(), "-V"])
        .timeout(Duration::from_secs(15))
        .output()
        .expect("tshark -V")
        .stdout_str();
    let n = text
        .matches("Version 3, Packet type 1 (Advertisement)")
        .count();
    assert!(n >= 2, "tshark saw {n} VRRPv3 adverts:\n{text}");
    assert!(text.contains("[Checksum Status: Good]"), "{text}");
    for bad in [
        "[Malformed",
        "Expert Info (Warning",
        "Expert Info (Error",
        "[incorrect",
        "Status: Bad",
    ] {
        assert!(!text.contains(bad), "tshark reports {bad:?}:\n{text}");
    }
    println!("tshark: {n} IPv6 VRRPv3 adverts from rvsd dissected without warnings");
}

/// Benchmark (not a test; `bench/vrrp.sh` runs it): failover time from the master's death to the
/// first successful request via the backup, rvsd vs keepalived under the same settings.
#[test]
#[ignore = "benchmark: run with bench/vrrp.sh"]
fn bench_failover() {
    rvs_require::require_root!();
    let _g = serial();
    let runs: usize = std::env::var("RVS_VRRP_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let topo = lab("vrrpb");
    let settings = [
        (2u8, 1.0f64, "v2 advert_int 1"),
        (3u8, 0.1f64, "v3 advert_int 0.1"),
    ];
    println!("| settings | implementation | runs | min s | median s | max s |");
    println!("|---|---|---|---|---|---|");
    for (version, advert_int, label) in settings {
        for imp in [Impl::Rvsd, Impl::Keepalived] {
            let mut gaps = Vec::new();
            for _ in 0..runs {
                let mut d1 = Director::new(&topo, "director1");
                let mut d2 = Director::new(&topo, "director2");
                let v = Vrrp {
                    version,
                    advert_int,
                    priority: 150,
                    nopreempt: false,
                };
                d1.start(imp, v);
                d2.start(imp, Vrrp { priority: 100, ..v });
                expect_master(
                    &[&d1, &d2],
                    0,
                    Duration::from_secs(10),
                    Duration::from_secs(1),
                );
                let (gap, _) = measure(&topo, Duration::from_secs(7), || {
                    thread::sleep(Duration::from_millis(500));
                    let t = Instant::now();
                    d1.crash();
                    t
                });
                gaps.push(gap.as_secs_f64());
                d2.stop_all();
                d1.revive();
                d2.revive();
            }
            gaps.sort_by(f64::total_cmp);
            println!(
                "| {label} | {imp:?} | {runs} | {:.3} | {:.3} | {:.3} |",
                gaps[0],
                gaps[gaps.len() / 2],
                gaps[gaps.len() - 1]
            );
        }
    }
}
