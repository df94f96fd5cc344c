//! Connection synchronisation end to end (issue 11): a director failover loses no established
//! connection.
//!
//! rvs-lab's HA pair with four real servers: the client 10.1.0.2 and the directors' `eth0`
//! (10.1.0.11, 10.1.0.12) on one bridge, the directors' `eth1` (10.2.0.2, 10.2.0.3) and the
//! real servers rs1..rs4 (10.2.0.11..14, each a socat TCP echo server on port 9000) on another;
//! the real servers' default route is the floating DIP 10.2.0.1. Two real `rvsd` processes,
//! each with the AF_PACKET plane on both interfaces, configured only by a keepalived.conf
//! (`-f`): one VRRP instance that owns the VIP 10.1.0.100 on `eth0` and the DIP on `eth1`
//! (priorities 150 / 100), a NAT virtual server VIP:9000 with `rr` over the four real
//! servers, and — in the synced run — `lvs_sync_daemon eth1 VI_SYNC` in `global_defs`.
//!
//! N long-lived TCP connections (one thread each, from the client's namespace) send a line
//! every 100 ms and wait for its echo. Once the BACKUP lists every connection (`-Lnc`, so the
//! sync stream carried them), the MASTER's machine is lost (both links down, rvsd SIGKILLed);
//! the BACKUP takes the VIP and DIP. With sync, every connection gets its echoes back through
//! the new MASTER: no reset, no end of stream, and the new MASTER counts their packets. The
//! same run without `lvs_sync_daemon` shows the loss (the new MASTER has no entry for a
//! mid-stream segment and does not schedule it), so the test can fail.
//!
//! Root only (CI runs it as root). Needs `ip`, `nft` and `socat` (Debian `iproute2 nftables
//! socat`). Every wait is bounded; the lab, the echo servers, the client threads and rvsd are
//! torn down on drop, also when the test panics.

mod common;

use rvs_testkit::wait;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rvs_lab::topo::{BuildOptions, LabKind, HA_DIP, HA_VIP};
use rvs_lab::{Lab, Netns, Protocol, Topology};

const PORT: u16 = 9000;
const REAL_SERVERS: u8 = 4;

/// One director: rvsd with the packet plane on both interfaces, run from keepalived.conf.
struct Director {
    name: String,
    ns: Netns,
    /// rvsd, run by the shared harness (`None` after a crash).
    rvsd: Option<common::Rvsd>,
}

/// How a director is set up beyond its priority.
#[derive(Clone, Default)]
struct Setup {
    /// `lvs_sync_daemon eth1 VI_SYNC` in `global_defs`.
    sync: bool,
    /// `persistence_timeout 300` on the virtual server.
    persist: bool,
    /// More words for the `lvs_sync_daemon` line (e.g. `maxlen 100`).
    sync_opts: &'static str,
    /// More rvsd arguments.
    args: Vec<&'static str>,
    /// FULLNAT instead of NAT: the table comes from an ipvsadm rules file (`--rules`; keepalived
    /// has no FULLNAT `lb_kind`), with the local address [`LIP`] that VRRP moves with the VIP;
    /// keepalived.conf (`--vrrp`) holds VRRP and `lvs_sync_daemon`.
    fullnat: bool,
}

/// The FULLNAT local address: a VRRP virtual address on `eth1`, so it moves with the VIP.
const LIP: &str = "10.2.0.100";

impl Director {
    fn start_with(topo: &Topology, role: &str, priority: u8, setup: &Setup) -> Director {
        let node = topo.node(role).expect("director node");
        let ns = node.ns.clone();
        let dir = topo.lab().workdir().join(role);
        std::fs::create_dir_all(&dir).expect("director workdir");
        let conf = dir.join("keepalived.conf");
        let sync_line = if setup.sync {
            format!("    lvs_sync_daemon eth1 VI_SYNC {}\n", setup.sync_opts)
        } else {
            String::new()
        };
        let mut rs = String::new();
        if setup.persist {
            rs.push_str("    persistence_timeout 300\n");
        }
        for i in 0..REAL_SERVERS {
            rs.push_str(&format!(
                "    real_server 10.2.0.{} {PORT} {{\n        weight 1\n    }}\n",
                11 + i
            ));
        }
        let (lip_line, virtual_server) = if setup.fullnat {
            (
                format!("        {LIP}/24 dev eth1 label eth1:2\n"),
                String::new(),
            )
        } else {
            (
                String::new(),
                format!(
                    "virtual_server {HA_VIP} {PORT} {{\n    lb_algo rr\n    lb_kind NAT\n    \
                     protocol TCP\n{rs}}}\n"
                ),
            )
        };
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n    vrrp_garp_master_delay 1\n{sync_line}}}\n\
                 vrrp_instance VI_SYNC {{\n    state BACKUP\n    interface eth0\n    \
                 version 3\n    \
                 virtual_router_id 63\n    priority {priority}\n    advert_int 0.5\n    \
                 virtual_ipaddress {{\n        {HA_VIP}/24 dev eth0 label eth0:1\n        \
                 {HA_DIP}/24 dev eth1 label eth1:1\n{lip_line}    }}\n}}\n{virtual_server}"
            ),
        )
        .expect("write keepalived.conf");
        let conf = conf.display().to_string();
        let rules = dir.join("rules");
        let rules = rules.display().to_string();
        let mut args = vec![
            "--drain-time",
            "0",
            "--interface",
            "eth0",
            "--interface",
            "eth1",
        ];
        if setup.fullnat {
            let svc = format!("{HA_VIP}:{PORT}");
            let persist = if setup.persist { " -p 300" } else { "" };
            let mut r = format!("-A -t {svc} -s rr{persist}\n--add-laddr -t {svc} -z {LIP}\n");
            for i in 0..REAL_SERVERS {
                r.push_str(&format!(
                    "-a -t {svc} -r 10.2.0.{}:{PORT} --fullnat\n",
                    11 + i
                ));
            }
            std::fs::write(&rules, r).expect("write the rules file");
            args.extend(["--vrrp", &conf, "--rules", &rules]);
        } else {
            args.extend(["-f", &conf]);
        }
        args.extend(setup.args.iter().copied());
        let rvsd = common::Rvsd::start_in(common::RVSD, Some(&ns), &dir, &args);
        Director {
            name: role.into(),
            ns,
            rvsd: Some(rvsd),
        }
    }

    /// rvsadm (the library, over the control socket); (exit code, stdout, stderr).
    fn adm(&self, args: &[&str]) -> (i32, String, String) {
        match &self.rvsd {
            Some(r) => {
                let a = r.adm(args);
                (a.code, a.out, a.err)
            }
            None => (2, String::new(), format!("{}: rvsd crashed", self.name)),
        }
    }

    /// ESTABLISHED entries of the VIP's service in `-Lnc`.
    fn established(&self) -> usize {
        let (code, out, _) = self.adm(&["-L", "-n", "-c"]);
        if code != 0 {
            return 0;
        }
        let vip = format!("{HA_VIP}:{PORT}");
        out.lines()
            .filter(|l| l.contains("ESTABLISHED") && l.contains(&vip))
            .count()
    }

    /// Real servers of the ESTABLISHED entries of the VIP's service in `-Lnc`.
    fn destinations(&self) -> std::collections::BTreeSet<String> {
        let (_, out, _) = self.adm(&["-L", "-n", "-c"]);
        let vip = format!("{HA_VIP}:{PORT}");
        out.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 6 && f[2] == "ESTABLISHED" && f[4] == vip).then(|| f[5].to_string())
            })
            .collect()
    }

    /// InPkts of the VIP's service (`-Ln --stats --exact`).
    fn in_pkts(&self) -> u64 {
        let (code, out, err) = self.adm(&["-L", "-n", "--stats", "--exact"]);
        assert_eq!(code, 0, "{}: rvsadm --stats: {err}", self.name);
        let lines = common::parse_stats(&out);
        common::stat(&lines, &format!("{HA_VIP}:{PORT}"), true).n[1]
    }

    fn has_vip(&self) -> bool {
        rvs_testkit::ha::has_addr(&self.ns, "eth0", &format!("{HA_VIP}/24"))
    }

    /// Machine loss: both links go down (no last advert, no more sync messages), then rvsd is
    /// SIGKILLed and reaped.
    fn crash(&mut self) {
        rvs_testkit::ha::links_down(&self.ns, &["eth0", "eth1"]);
        // Dropping the harness's Rvsd SIGKILLs its process group and reaps it.
        self.rvsd = None;
    }

    /// The lost machine boots again: the addresses VRRP had put on it are gone (a reboot loses
    /// them), its links come up, rvsd starts with the same configuration.
    fn reboot(self, topo: &Topology, priority: u8, setup: &Setup) -> Director {
        for (cidr, dev) in [
            (format!("{HA_VIP}/24"), "eth0"),
            (format!("{HA_DIP}/24"), "eth1"),
        ] {
            let _ = self.ns.ip(["addr", "del", &cidr, "dev", dev]);
        }
        rvs_testkit::ha::links_up(&self.ns, &["eth0", "eth1"]);
        Director::start_with(topo, &self.name, priority, setup)
    }

    /// Client ports of the ESTABLISHED entries of the VIP's service in `-Lnc`.
    fn client_ports(&self) -> std::collections::BTreeSet<u16> {
        let (_, out, _) = self.adm(&["-L", "-n", "-c"]);
        let vip = format!("{HA_VIP}:{PORT}");
        out.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() != 6 || f[2] != "ESTABLISHED" || f[4] != vip {
                    return None;
                }
                f[3].rsplit_once(':').and_then(|(_, p)| p.parse().ok())
            })
            .collect()
    }

    fn log_text(&self) -> String {
        self.rvsd
            .as_ref()
            .map(common::Rvsd::log_text)
            .unwrap_or_default()
    }
}

/// What one client connection saw.
#[derive(Debug, Default)]
struct ConnLog {
    /// The client's port.
    port: u16,
    /// When each echo came back.
    echoes: Vec<Instant>,
    /// How the connection ended early (reset, end of stream, connect failure).
    error: Option<String>,
}

/// N client connections, each on its own thread: send `id:seq\n`, wait for the echo, pause
/// 100 ms, repeat until stopped.
struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<ConnLog>>,
}

impl Clients {
    fn start(client: &Netns, n: usize) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let vip = SocketAddr::from((HA_VIP, PORT));
        // Sockets made inside the namespace stay there.
        // Bounded: 3 s per connect and 15 s in all; what is not connected by then fails.
        let streams: Vec<std::io::Result<TcpStream>> = client
            .exec(move || {
                let end = Instant::now() + Duration::from_secs(15);
                (0..n)
                    .map(|_| {
                        if Instant::now() >= end {
                            return Err(std::io::Error::new(
                                ErrorKind::TimedOut,
                                "connect budget spent",
                            ));
                        }
                        // 3 s: a SYN lost on a loaded machine is sent again after 1 s.
                        TcpStream::connect_timeout(&vip, Duration::from_secs(3))
                    })
                    .collect()
            })
            .expect("enter the client namespace");
        let threads = streams
            .into_iter()
            .enumerate()
            .map(|(id, s)| {
                let stop = stop.clone();
                thread::spawn(move || converse(id, s, &stop))
            })
            .collect();
        Clients { stop, threads }
    }

    fn finish(mut self) -> Vec<ConnLog> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .drain(..)
            .map(|t| t.join().unwrap_or_default())
            .collect()
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn converse(id: usize, s: std::io::Result<TcpStream>, stop: &AtomicBool) -> ConnLog {
    let mut log = ConnLog::default();
    let mut s = match s {
        Ok(s) => s,
        Err(e) => {
            log.error = Some(format!("connect: {e}"));
            return log;
        }
    };
    log.port = s.local_addr().map(|a| a.port()).unwrap_or(0);
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let mut seq = 0u64;
    let mut got: Vec<u8> = Vec::new();
    let mut buf = [0u8; 256];
    // Bounded: the test stops every client within its own bounded run.
    while !stop.load(Ordering::Relaxed) {
        let line = format!("{id}:{seq}\n");
        if let Err(e) = s.write_all(line.as_bytes()) {
            log.error = Some(format!("write: {e}"));
            return log;
        }
        got.clear();
        loop {
            if stop.load(Ordering::Relaxed) {
                return log;
            }
            match s.read(&mut buf) {
                Ok(0) => {
                    log.error = Some("end of stream".into());
                    return log;
                }
                Ok(k) => {
                    got.extend_from_slice(&buf[..k]);
                    if got.ends_with(b"\n") {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => {
                    log.error = Some(format!("read: {e}"));
                    return log;
                }
            }
        }
        if got != line.as_bytes() {
            log.error = Some(format!(
                "echo mismatch: {:?}",
                String::from_utf8_lossy(&got)
            ));
            return log;
        }
        log.echoes.push(Instant::now());
        seq += 1;
        thread::sleep(Duration::from_millis(100));
    }
    log
}

/// Outcome of one failover run.
struct Outcome {
    n: usize,
    /// Connections that echoed at least 5 times after the VIP moved and never failed.
    survived: usize,
    /// Their largest wait for the first echo after the VIP moved.
    worst_gap: Duration,
    failures: Vec<String>,
    /// Entries the BACKUP listed before the failover.
    backup_entries: usize,
    /// Real servers of the connections on the old MASTER before the failover.
    servers_before: std::collections::BTreeSet<String>,
    /// Real servers of the connections on the new MASTER after new ones were opened (only
    /// with persistence).
    servers_after: std::collections::BTreeSet<String>,
}

/// One run, NAT (the one method this lab fits: a DR real server's replies, source VIP, would
/// come back through the director, which owns the VIP and drops them as martians), with
/// `persistence_timeout` when `persist`.
fn failover(tag: &str, n: usize, sync: bool, persist: bool) -> Outcome {
    let setup = Setup {
        sync,
        persist,
        ..Setup::default()
    };
    failover_with(tag, n, &setup)
}

/// One failover run of directors set up as `setup` says.
fn failover_with(tag: &str, n: usize, setup: &Setup) -> Outcome {
    let (sync, persist) = (setup.sync, setup.persist);
    let mut topo = Topology::build(
        Lab::new(tag).expect("lab"),
        LabKind::Ha,
        BuildOptions {
            real_servers: REAL_SERVERS,
            ..BuildOptions::default()
        },
    )
    .expect("HA topology");
    let mut echo = Vec::new();
    for rs in topo.real_servers() {
        echo.push(
            rs.ns
                .echo_server(Protocol::Tcp, PORT)
                .expect("socat echo server"),
        );
    }
    for c in echo {
        topo.lab_mut().own(c);
    }
    let client = topo.client().ns.clone();
    let mut d1 = Director::start_with(&topo, "director1", 150, setup);
    let d2 = Director::start_with(&topo, "director2", 100, setup);
    assert!(
        wait(Duration::from_secs(15), || d1.has_vip() && !d2.has_vip()),
        "director1 did not become the only MASTER:\n{}\n{}",
        d1.log_text(),
        d2.log_text()
    );
    if sync {
        assert!(
            wait(Duration::from_secs(5), || {
                let (_, a, _) = d1.adm(&["-L", "--daemon"]);
                let (_, b, _) = d2.adm(&["-L", "--daemon"]);
                a.starts_with("master sync daemon (mcast=eth1, syncid=63,")
                    && b.starts_with("backup sync daemon (mcast=eth1, syncid=63,")
            }),
            "sync daemons do not follow VRRP: {:?} {:?}",
            d1.adm(&["-L", "--daemon"]),
            d2.adm(&["-L", "--daemon"])
        );
    }
    let clients = Clients::start(&client, n);
    // Every connection is established on the MASTER; with sync the BACKUP lists them too.
    assert!(
        wait(Duration::from_secs(10), || d1.established() >= n),
        "MASTER lists {} of {n} connections",
        d1.established()
    );
    if sync {
        assert!(
            wait(Duration::from_secs(10), || d2.established() >= n),
            "BACKUP lists {} of {n} synced connections:\n{}",
            d2.established(),
            d2.adm(&["-L", "-n", "-c"]).1
        );
    } else {
        thread::sleep(Duration::from_secs(2));
    }
    let backup_entries = d2.established();
    let before = d2.in_pkts();
    let servers_before = d1.destinations();

    let crashed = Instant::now();
    d1.crash();
    assert!(
        wait(Duration::from_secs(10), || d2.has_vip()),
        "director2 did not take the VIP:\n{}",
        d2.log_text()
    );
    let moved = Instant::now();
    println!(
        "the VIP moved {:.2} s after the crash",
        (moved - crashed).as_secs_f64()
    );
    // Time for the stalled connections to retransmit (TCP backs off up to a few seconds
    // while the VIP was away) and then to echo on.
    thread::sleep(Duration::from_secs(8));
    // New connections from the same client after the failover: with persistence they go to
    // the real server of the synced template.
    let mut servers_after = Default::default();
    if persist {
        let more = Clients::start(&client, 3);
        assert!(
            wait(Duration::from_secs(10), || d2.established() >= n + 3),
            "the new MASTER lists {} of {} connections",
            d2.established(),
            n + 3
        );
        servers_after = d2.destinations();
        drop(more);
    }
    let logs = clients.finish();
    let after = d2.in_pkts();

    let mut survived = 0;
    let mut worst_gap = Duration::ZERO;
    let mut failures = Vec::new();
    for (id, l) in logs.iter().enumerate() {
        let later: Vec<&Instant> = l.echoes.iter().filter(|t| **t > moved).collect();
        match (&l.error, later.first()) {
            (None, Some(first)) if later.len() >= 5 => {
                survived += 1;
                worst_gap = worst_gap.max(first.duration_since(moved));
            }
            (err, _) => failures.push(format!(
                "conn {id}: {} echoes after failover, error {err:?}",
                later.len()
            )),
        }
    }
    if sync {
        assert!(
            after > before,
            "the new MASTER forwarded nothing ({before} → {after})"
        );
    }
    println!(
        "sync={sync} persist={persist}: {survived}/{n} connections continued; worst first echo {:.2} s after the \
         VIP moved; BACKUP had {backup_entries} entries; new MASTER InPkts {before} → {after}",
        worst_gap.as_secs_f64()
    );
    Outcome {
        n,
        survived,
        worst_gap,
        failures,
        backup_entries,
        servers_before,
        servers_after,
    }
}

#[test]
fn failover_keeps_every_synced_connection() {
    if !rvs_lab::require(
        "failover_keeps_every_synced_connection",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    let o = failover("syncnat", 200, true, false);
    assert_eq!(o.backup_entries, o.n);
    assert_eq!(
        o.survived,
        o.n,
        "connections lost in the failover:\n{}",
        o.failures.join("\n")
    );
    // A stalled client tries again on its retransmission timer (RTO 0.2 s doubling: 0.2, 0.6,
    // 1.4, 3.0, 6.2 s after the loss), whatever the director does; the sync makes sure the new
    // MASTER forwards that retransmission at once. With `advert_int 0.5` (VRRPv3) the VIP moves
    // 1.3–1.8 s after the crash, so the next retransmission follows within 1.6 s. (With
    // `advert_int 1` the VIP moves 2.6–3.6 s after it, and a takeover just after the 3.0 s
    // retransmission waits for the 6.2 s one: a gap of up to 3.2 s no director can shorten.)
    assert!(o.worst_gap < Duration::from_secs(2), "{:?}", o.worst_gap);
}

/// FULLNAT: the local address and port travel with each connection (rvs's optional-flagged
/// option), so the real servers' replies to the local address — which VRRP moves with the
/// VIP — find the synced entries on the new MASTER.
#[test]
fn fullnat_failover_keeps_every_synced_connection() {
    if !rvs_lab::require(
        "fullnat_failover_keeps_every_synced_connection",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    let setup = Setup {
        sync: true,
        fullnat: true,
        ..Setup::default()
    };
    let o = failover_with("syncfnat", 200, &setup);
    assert_eq!(o.backup_entries, o.n);
    assert_eq!(
        o.survived,
        o.n,
        "connections lost in the failover:\n{}",
        o.failures.join("\n")
    );
    assert!(o.worst_gap < Duration::from_secs(2), "{:?}", o.worst_gap);
}

/// FULLNAT with `-p`: the clients keep their real server after the failover (templates
/// synced), and their connections continue.
#[test]
fn fullnat_persistent_clients_keep_their_real_server_after_failover() {
    if !rvs_lab::require(
        "fullnat_persistent_clients_keep_their_real_server_after_failover",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    let setup = Setup {
        sync: true,
        persist: true,
        fullnat: true,
        ..Setup::default()
    };
    let o = failover_with("syncfnatp", 50, &setup);
    assert_eq!(
        o.survived,
        o.n,
        "connections lost in the failover:\n{}",
        o.failures.join("\n")
    );
    assert_eq!(o.servers_before.len(), 1, "{:?}", o.servers_before);
    assert_eq!(o.servers_after, o.servers_before);
}

#[test]
fn failover_without_sync_loses_the_connections() {
    if !rvs_lab::require(
        "failover_without_sync_loses_the_connections",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    let o = failover("syncoff", 50, false, false);
    assert_eq!(
        o.backup_entries, 0,
        "nothing to sync without lvs_sync_daemon"
    );
    assert!(
        o.survived < o.n / 2,
        "{} of {} connections survived without sync: the synced run proves nothing",
        o.survived,
        o.n
    );
}

#[test]
fn persistent_clients_keep_their_real_server_after_failover() {
    if !rvs_lab::require(
        "persistent_clients_keep_their_real_server_after_failover",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    let o = failover("syncper", 50, true, true);
    assert_eq!(
        o.survived,
        o.n,
        "connections lost in the failover:\n{}",
        o.failures.join("\n")
    );
    // One client: persistence put every connection on one real server, and the synced template
    // sends the new connections there too (rr without it would spread them over others).
    assert_eq!(o.servers_before.len(), 1, "{:?}", o.servers_before);
    assert_eq!(o.servers_after, o.servers_before);
}

/// The failback runs' directors: both sync; the live stream announces a connection only once
/// (`sync_threshold 3 0`), so a director that restarts learns the old connections from the
/// bulk resync alone; the master paces its answer to 20 datagrams of 2 records per second
/// (200 connections take 5 s, longer than VRRP's 1.8 s down timer, so preempting without the
/// hold would come too early), and the hold's bound is 60 s.
fn failback_setup() -> Setup {
    Setup {
        sync: true,
        persist: false,
        sync_opts: "maxlen 100",
        args: vec![
            "--sysctl",
            "sync_threshold=3 0",
            "--sync-resync-rate",
            "20",
            "--sync-resync-hold",
            "60",
        ],
        fullnat: false,
    }
}

/// An HA pair after the first failover: director1 (priority 150) was lost, director2 (100)
/// carries the `n` connections. Returns the topology, both directors and the clients.
fn after_failover(tag: &str, n: usize) -> (Topology, Director, Director, Clients) {
    let mut topo = Topology::build(
        Lab::new(tag).expect("lab"),
        LabKind::Ha,
        BuildOptions {
            real_servers: REAL_SERVERS,
            ..BuildOptions::default()
        },
    )
    .expect("HA topology");
    let mut echo = Vec::new();
    for rs in topo.real_servers() {
        echo.push(
            rs.ns
                .echo_server(Protocol::Tcp, PORT)
                .expect("socat echo server"),
        );
    }
    for c in echo {
        topo.lab_mut().own(c);
    }
    let setup = failback_setup();
    let mut d1 = Director::start_with(&topo, "director1", 150, &setup);
    let d2 = Director::start_with(&topo, "director2", 100, &setup);
    assert!(
        wait(Duration::from_secs(15), || d1.has_vip() && !d2.has_vip()),
        "director1 did not become the only MASTER:\n{}\n{}",
        d1.log_text(),
        d2.log_text()
    );
    let client = topo.client().ns.clone();
    let clients = Clients::start(&client, n);
    assert!(
        wait(Duration::from_secs(15), || d1.established() >= n
            && d2.established() >= n),
        "MASTER lists {}, BACKUP {} of {n} connections",
        d1.established(),
        d2.established()
    );
    d1.crash();
    assert!(
        wait(Duration::from_secs(10), || d2.has_vip()),
        "director2 did not take the VIP:\n{}",
        d2.log_text()
    );
    // The stalled connections retransmit and go on through director2.
    let in_before = d2.in_pkts();
    assert!(
        wait(Duration::from_secs(10), || d2.in_pkts()
            > in_before + n as u64),
        "director2 forwards nothing after the failover"
    );
    (topo, d1, d2, clients)
}

/// Connections with at least 5 echoes after `t` and no error, the rest as failures, and the
/// longest wait for a first echo after `t` among those that continued.
fn continued_after(logs: &[ConnLog], t: Instant) -> (Vec<u16>, Vec<String>, Duration) {
    let mut ok = Vec::new();
    let mut failures = Vec::new();
    let mut worst = Duration::ZERO;
    for l in logs {
        let later = l.echoes.iter().filter(|e| **e > t).count();
        if l.error.is_none() && later >= 5 {
            ok.push(l.port);
            if let Some(first) = l.echoes.iter().find(|e| **e > t) {
                worst = worst.max(*first - t);
            }
        } else {
            failures.push(format!(
                "port {}: {later} echoes after, error {:?}",
                l.port, l.error
            ));
        }
    }
    (ok, failures, worst)
}

#[test]
fn failback_resyncs_before_preempting_and_keeps_every_connection() {
    if !rvs_lab::require(
        "failback_resyncs_before_preempting_and_keeps_every_connection",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    let n = 200;
    let (topo, d1, d2, clients) = after_failover("syncfb", n);
    // director1 comes back with the higher priority: it must resync, then preempt.
    let d1 = d1.reboot(&topo, 150, &failback_setup());
    let mut at_vip = None;
    // Bounded: 40 s (the resync takes ~5 s, then VRRP's down timer ~1.8 s).
    let end = Instant::now() + Duration::from_secs(40);
    while Instant::now() < end {
        if d1.has_vip() {
            at_vip = Some((Instant::now(), d1.established(), d1.log_text()));
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let (back, listed, log) = at_vip
        .unwrap_or_else(|| panic!("director1 did not preempt within 40 s:\n{}", d1.log_text()));
    assert!(
        log.contains(&format!("complete: {n} records")),
        "director1 took the VIP before its resync completed:\n{log}"
    );
    assert!(
        listed >= n,
        "director1 took the VIP listing {listed} of {n} connections"
    );
    assert!(
        wait(Duration::from_secs(10), || !d2.has_vip()),
        "director2 kept the VIP"
    );
    // Time for retransmissions across the move, then some echoes.
    thread::sleep(Duration::from_secs(8));
    let logs = clients.finish();
    let (ok, failures, worst) = continued_after(&logs, back);
    println!(
        "failback: {}/{n} connections continued; director1 listed {listed} when it took the VIP; \
         worst first echo {:.2} s after",
        ok.len(),
        worst.as_secs_f64()
    );
    assert_eq!(
        ok.len(),
        n,
        "connections lost in the failback:\n{}",
        failures.join("\n")
    );
    assert!(worst < Duration::from_secs(2), "{worst:?}");
}

#[test]
fn killing_the_master_during_a_resync_keeps_what_arrived() {
    if !rvs_lab::require(
        "killing_the_master_during_a_resync_keeps_what_arrived",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    let n = 200;
    let (topo, d1, mut d2, clients) = after_failover("syncfbk", n);
    let d1 = d1.reboot(&topo, 150, &failback_setup());
    // Part of the table has arrived (the answer takes ~5 s at 40 records per second).
    assert!(
        wait(Duration::from_secs(20), || d1.established() >= 40),
        "director1's resync brought {} connections:\n{}",
        d1.established(),
        d1.log_text()
    );
    d2.crash();
    thread::sleep(Duration::from_millis(200));
    let had = d1.client_ports();
    assert!(
        !had.is_empty() && had.len() < n,
        "the resync was not cut short: director1 holds {} of {n}",
        had.len()
    );
    // No MASTER is heard any more: the hold must not keep director1 from taking over.
    assert!(
        wait(Duration::from_secs(10), || d1.has_vip()),
        "director1 did not take over after director2 was lost:\n{}",
        d1.log_text()
    );
    let back = Instant::now();
    thread::sleep(Duration::from_secs(8));
    let logs = clients.finish();
    let (ok, failures, _) = continued_after(&logs, back);
    let lost: Vec<&u16> = had.iter().filter(|p| !ok.contains(p)).collect();
    println!(
        "resync cut short: director1 held {} of {n}; {} of them continued, {} connections in all",
        had.len(),
        had.len() - lost.len(),
        ok.len()
    );
    assert!(
        lost.is_empty(),
        "connections director1 had synced were lost: {lost:?}\n{}",
        failures.join("\n")
    );
}
