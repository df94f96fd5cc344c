//! An HA pair with connection sync, failed over under load: the set-up the sync end-to-end
//! tests share (rvsd's `sync_failover` and `sync_failover_direct`).
//!
//! Why here: every failover test needs the same pieces — two directors configured from a
//! keepalived.conf (VRRP and `lvs_sync_daemon`), four echo real servers, N long-lived client
//! connections that time every echo, a lost MASTER (links down, then SIGKILL) — and differs only
//! in the forwarding method, sync on or off, persistence and a few rvsd flags ([`PairSetup`]).
//!
//! The labs (rvs-lab): NAT uses [`LabKind::Ha`] (the real servers' gateway is the floating DIP
//! 10.2.0.1, a second VRRP address); FULLNAT the same lab with a local address VRRP moves with
//! the VIP; DR and TUN use [`LabKind::HaDr`] / [`LabKind::HaTun`], where the real servers hold
//! the VIP on `lo` and answer the client through a router, never through a director.
//!
//! Every wait is bounded; the lab, the echo servers, the client threads and rvsd are torn down
//! on drop, also when the test panics.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rvs_lab::topo::{BuildOptions, LabKind, HA_DIP, HA_VIP};
use rvs_lab::{Lab, Netns, Protocol, Topology};

use crate::packet_path::{leading_count, XdpCounters};
use crate::{parse_stats, stat, wait, Rvsd};

/// The service port (socat echo servers on every real server).
pub const PORT: u16 = 9000;
/// Real servers behind the pair: with `rr`, a director without sync would pick another server
/// for most connections.
pub const REAL_SERVERS: u8 = 4;
/// The FULLNAT local address: a VRRP virtual address on `eth1`, so it moves with the VIP.
pub const LIP: &str = "10.2.0.100";

/// How the pair forwards to the real servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Masquerading; the DIP (the real servers' gateway) is in the VRRP instance.
    Nat,
    /// Direct routing ([`LabKind::HaDr`]).
    Dr,
    /// IPIP tunnelling ([`LabKind::HaTun`]).
    Tun,
    /// Full NAT with the local address [`LIP`] in the VRRP instance; the table comes from an
    /// ipvsadm rules file (keepalived has no FULLNAT `lb_kind`).
    Fullnat,
}

impl Method {
    /// The rvs-lab topology the method needs.
    pub fn lab_kind(self) -> LabKind {
        match self {
            Method::Nat | Method::Fullnat => LabKind::Ha,
            Method::Dr => LabKind::HaDr,
            Method::Tun => LabKind::HaTun,
        }
    }

    /// Whether the real servers answer the client without a director.
    pub fn direct(self) -> bool {
        matches!(self, Method::Dr | Method::Tun)
    }
}

/// How both directors are set up beyond their priority.
#[derive(Clone)]
pub struct PairSetup {
    /// The rvsd binary under test.
    pub rvsd: &'static str,
    /// Forwarding method (and so the lab).
    pub method: Method,
    /// `lvs_sync_daemon eth1 VI_SYNC` in `global_defs`.
    pub sync: bool,
    /// `persistence_timeout 300` (`-p 300`) on the virtual server.
    pub persist: bool,
    /// More words for the `lvs_sync_daemon` line (e.g. `maxlen 100`).
    pub sync_opts: &'static str,
    /// More rvsd arguments.
    pub args: Vec<&'static str>,
    /// More `global_defs` lines (e.g. `    lvs_timeouts tcp 4\n`).
    pub globals: &'static str,
    /// How long the connections stream after the BACKUP lists them all and before the MASTER
    /// is lost; the BACKUP's table is sampled meanwhile ([`Outcome::hold`]).
    pub hold: Duration,
}

impl PairSetup {
    /// Sync on, no persistence, nothing else.
    pub fn new(rvsd: &'static str, method: Method) -> PairSetup {
        PairSetup {
            rvsd,
            method,
            sync: true,
            persist: false,
            sync_opts: "",
            args: Vec::new(),
            globals: "",
            hold: Duration::ZERO,
        }
    }
}

/// One director: rvsd with the packet plane on both interfaces, run from keepalived.conf.
pub struct Director {
    name: String,
    ns: Netns,
    /// rvsd, run by the shared harness (`None` after a crash).
    rvsd: Option<Rvsd>,
}

impl Director {
    /// Starts rvsd in `role`'s namespace with VRRP priority `priority`.
    pub fn start(topo: &Topology, role: &str, priority: u8, setup: &PairSetup) -> Director {
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
        // The addresses VRRP moves. The VIP, on the client side, is instance VI_SYNC (the
        // one the sync daemons follow). NAT's real servers route through the DIP and
        // FULLNAT's answer the local address: those are a second instance, VI_GW, on the
        // server side, in one `vrrp_sync_group` with VI_SYNC so that both always move
        // together (the keepalived layout for a NAT gateway). DR and TUN real servers route
        // through the lab's router and need no gateway instance.
        let mut gw = format!("        {HA_DIP}/24 dev eth1 label eth1:1\n");
        if setup.method == Method::Fullnat {
            gw.push_str(&format!("        {LIP}/24 dev eth1 label eth1:2\n"));
        }
        let instance = |name: &str, dev: &str, vrid: u8, addrs: &str| {
            format!(
                "vrrp_instance {name} {{\n    state BACKUP\n    interface {dev}\n    \
                 version 3\n    virtual_router_id {vrid}\n    priority {priority}\n    \
                 advert_int 0.5\n    virtual_ipaddress {{\n{addrs}    }}\n}}\n"
            )
        };
        let mut vrrp = instance(
            "VI_SYNC",
            "eth0",
            63,
            &format!("        {HA_VIP}/24 dev eth0 label eth0:1\n"),
        );
        if !setup.method.direct() {
            vrrp.push_str(&instance("VI_GW", "eth1", 64, &gw));
            vrrp.push_str(
                "vrrp_sync_group SG_PAIR {\n    group {\n        VI_SYNC\n        VI_GW\n    }\n}\n",
            );
        }
        let virtual_server = match setup.method {
            Method::Fullnat => String::new(),
            m => {
                let kind = match m {
                    Method::Dr => "DR",
                    Method::Tun => "TUN",
                    _ => "NAT",
                };
                format!(
                    "virtual_server {HA_VIP} {PORT} {{\n    lb_algo rr\n    lb_kind {kind}\n    \
                     protocol TCP\n{rs}}}\n"
                )
            }
        };
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n    vrrp_garp_master_delay 1\n{sync_line}{}}}\n\
                 {vrrp}{virtual_server}",
                setup.globals
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
        if setup.method == Method::Fullnat {
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
        let rvsd = Rvsd::start_in(setup.rvsd, Some(&ns), &dir, &args);
        Director {
            name: role.into(),
            ns,
            rvsd: Some(rvsd),
        }
    }

    /// rvsadm (the library, over the control socket); (exit code, stdout, stderr).
    pub fn adm(&self, args: &[&str]) -> (i32, String, String) {
        match &self.rvsd {
            Some(r) => {
                let a = r.adm(args);
                (a.code, a.out, a.err)
            }
            None => (2, String::new(), format!("{}: rvsd crashed", self.name)),
        }
    }

    /// ESTABLISHED entries of the VIP's service in `-Lnc`.
    pub fn established(&self) -> usize {
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
    pub fn destinations(&self) -> BTreeSet<String> {
        let (_, out, _) = self.adm(&["-L", "-n", "-c"]);
        let vip = format!("{HA_VIP}:{PORT}");
        out.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 6 && f[2] == "ESTABLISHED" && f[4] == vip).then(|| f[5].to_string())
            })
            .collect()
    }

    /// Conns, InPkts, OutPkts, InBytes, OutBytes of the VIP's service (`-Ln --stats --exact`).
    pub fn stats(&self) -> [u64; 5] {
        let (code, out, err) = self.adm(&["-L", "-n", "--stats", "--exact"]);
        assert_eq!(code, 0, "{}: rvsadm --stats: {err}", self.name);
        let lines = parse_stats(&out);
        stat(&lines, &format!("{HA_VIP}:{PORT}"), true).n
    }

    /// InPkts of the VIP's service.
    pub fn in_pkts(&self) -> u64 {
        self.stats()[1]
    }

    /// OutPkts of the VIP's service: replies through this director (none in DR and TUN).
    pub fn out_pkts(&self) -> u64 {
        self.stats()[2]
    }

    /// `rvsadm -L --daemon`'s output.
    pub fn daemons(&self) -> String {
        self.adm(&["-L", "--daemon"]).1
    }

    /// True while this director holds the VIP (it is the VRRP MASTER).
    pub fn has_vip(&self) -> bool {
        crate::ha::has_addr(&self.ns, "eth0", &format!("{HA_VIP}/24"))
    }

    /// True while this director holds the gateway address (the DIP) on `eth1`: the MASTER of
    /// the NAT and FULLNAT pairs' VI_GW.
    pub fn has_dip(&self) -> bool {
        crate::ha::has_addr(&self.ns, "eth1", &format!("{HA_DIP}/24"))
    }

    /// Machine loss: both links go down (no last advert, no more sync messages), then rvsd is
    /// SIGKILLed and reaped.
    pub fn crash(&mut self) {
        crate::ha::links_down(&self.ns, &["eth0", "eth1"]);
        // Dropping the harness's Rvsd SIGKILLs its process group and reaps it.
        self.rvsd = None;
    }

    /// The lost machine boots again: the addresses VRRP had put on it are gone (a reboot loses
    /// them), its links come up, rvsd starts with the same configuration.
    pub fn reboot(self, topo: &Topology, priority: u8, setup: &PairSetup) -> Director {
        for (cidr, dev) in [
            (format!("{HA_VIP}/24"), "eth0"),
            (format!("{HA_DIP}/24"), "eth1"),
        ] {
            let _ = self.ns.ip(["addr", "del", &cidr, "dev", dev]);
        }
        crate::ha::links_up(&self.ns, &["eth0", "eth1"]);
        Director::start(topo, &self.name, priority, setup)
    }

    /// Client ports of the ESTABLISHED entries of the VIP's service in `-Lnc`.
    pub fn client_ports(&self) -> BTreeSet<u16> {
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

    /// Stops rvsd in order (SIGTERM) and returns its packet workers' final reports (frames,
    /// ring drops, drops by reason): what to look at when a connection went missing.
    pub fn stop_and_report(&mut self) -> String {
        match self.rvsd.as_mut() {
            Some(r) => r
                .stop()
                .lines()
                .filter(|l| l.contains("packet worker"))
                .map(|l| format!("{l}\n"))
                .collect(),
            None => format!("{}: rvsd crashed\n", self.name),
        }
    }

    /// rvsd's log so far (empty after a crash).
    pub fn log_text(&self) -> String {
        self.rvsd.as_ref().map(Rvsd::log_text).unwrap_or_default()
    }

    /// Whether this director's packet plane runs the XDP fast path (`RVS_TEST_XDP`, or a
    /// test's own `--xdp`); false after a crash.
    pub fn xdp(&self) -> bool {
        self.rvsd.as_ref().is_some_and(Rvsd::xdp)
    }

    /// With the XDP fast path: stops rvsd in order (SIGTERM) and returns what its program did
    /// over the daemon's life, from the syncer's last log lines. `None` without XDP (rvsd is
    /// left running) or after a crash.
    ///
    /// # Panics
    /// If the log of an XDP run lacks the syncer's lines.
    pub fn stop_xdp(&mut self) -> Option<XdpTotals> {
        if !self.xdp() {
            return None;
        }
        let log = self.rvsd.as_mut()?.stop();
        let counters = XdpCounters::from_log(&log)
            .unwrap_or_else(|| panic!("{}: no XDP counters in the log:\n{log}", self.name));
        // "XDP fast path: N flow entries written, M installed at the end".
        let entries = log
            .lines()
            .filter(|l| l.contains("flow entries written"))
            .find_map(|l| leading_count(l.split("XDP fast path: ").nth(1)?))
            .unwrap_or_else(|| panic!("{}: no XDP entry count in the log:\n{log}", self.name));
        Some(XdpTotals {
            forwarded: counters.forwarded,
            entries,
        })
    }
}

/// What a director's XDP program did over its daemon's life ([`Director::stop_xdp`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpTotals {
    /// Frames the program forwarded itself (`XDP_TX` + `XDP_REDIRECT`).
    pub forwarded: u64,
    /// Flow entries the syncer wrote into the program's map.
    pub entries: u64,
}

/// What one client connection saw.
#[derive(Debug, Default)]
pub struct ConnLog {
    /// The client's port.
    pub port: u16,
    /// When each echo came back.
    pub echoes: Vec<Instant>,
    /// How the connection ended early (reset, end of stream, connect failure).
    pub error: Option<String>,
    /// How long its connect took (a lost SYN or SYN-ACK shows as ≥ 1 s, the first
    /// retransmission).
    pub connect: Duration,
}

/// N client connections, each on its own thread: send `id:seq\n`, wait for the echo, pause
/// 100 ms, repeat until stopped.
pub struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<ConnLog>>,
}

impl Clients {
    /// Opens `n` connections to the VIP from `client`'s namespace, one after the other, and
    /// starts their threads.
    pub fn start(client: &Netns, n: usize) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let vip = SocketAddr::from((HA_VIP, PORT));
        // Sockets made inside the namespace stay there.
        // Bounded: 3 s per connect and 15 s in all; what is not connected by then fails.
        let streams: Vec<(std::io::Result<TcpStream>, Duration)> = client
            .exec(move || {
                let end = Instant::now() + Duration::from_secs(15);
                (0..n)
                    .map(|_| {
                        let t = Instant::now();
                        if t >= end {
                            return (
                                Err(std::io::Error::new(
                                    ErrorKind::TimedOut,
                                    "connect budget spent",
                                )),
                                Duration::ZERO,
                            );
                        }
                        // 3 s: a SYN lost anyway is sent again after 1 s. (A full accept
                        // queue of the echo servers used to drop one now and then under load,
                        // which the former 1 s bound turned into a missing connection.)
                        let s = TcpStream::connect_timeout(&vip, Duration::from_secs(3));
                        (s, t.elapsed())
                    })
                    .collect()
            })
            .expect("enter the client namespace");
        let threads = streams
            .into_iter()
            .enumerate()
            .map(|(id, (s, took))| {
                let stop = stop.clone();
                thread::spawn(move || ConnLog {
                    connect: took,
                    ..converse(id, s, &stop)
                })
            })
            .collect();
        Clients { stop, threads }
    }

    /// Stops every connection and returns what each saw, in the order they were opened.
    pub fn finish(mut self) -> Vec<ConnLog> {
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

/// Outcome of one failover run ([`failover`]).
pub struct Outcome {
    /// Connections opened.
    pub n: usize,
    /// Connections that echoed at least 5 times after the VIP moved and never failed.
    pub survived: usize,
    /// Their longest time without an echo after the VIP moved (to the first echo, or between
    /// two).
    pub worst_gap: Duration,
    /// What happened to the others.
    pub failures: Vec<String>,
    /// Entries the BACKUP listed before the failover.
    pub backup_entries: usize,
    /// Real servers of the connections on the old MASTER before the failover.
    pub servers_before: BTreeSet<String>,
    /// Real servers of the connections on the new MASTER after new ones were opened (only
    /// with persistence).
    pub servers_after: BTreeSet<String>,
    /// The new MASTER's InPkts of the service before and after.
    pub in_pkts: (u64, u64),
    /// OutPkts of the service: the old MASTER's before the crash, the new MASTER's at the end
    /// (replies through a director; 0 and 0 in DR and TUN, where real servers answer directly).
    pub out_pkts: (u64, u64),
    /// How long after the crash the BACKUP held the VIP.
    pub moved_after: Duration,
    /// DR and TUN: replies from the VIP's port the router forwarded from the server segment to
    /// the client, counted by an nftables rule in the router (before the crash, at the end):
    /// proof that the real servers answered directly. (0, 0) in the other labs.
    pub router_replies: (u64, u64),
    /// The longest connect of the `n` clients (≥ 1 s: a handshake packet was lost and sent
    /// again).
    pub slowest_connect: Duration,
    /// The BACKUP's table while the connections streamed for [`PairSetup::hold`] (sampled
    /// every 500 ms).
    pub hold: HoldSample,
    /// With the XDP fast path: what the new MASTER's program did. It was BACKUP until the
    /// crash and forwarded nothing then, so every frame it forwarded belongs to the takeover.
    pub new_master_xdp: Option<XdpTotals>,
    /// Handshakes the real servers dropped with a full accept queue while the clients
    /// connected (`TcpExtListenDrops`).
    pub listen_drops: u64,
}

/// SYNs and handshakes the real servers' kernels dropped because the echo server's accept
/// queue was full (`TcpExtListenDrops`, summed over the real servers): a connect that then
/// takes 1 s (the client's SYN retransmission) was held up there, not by a director.
fn listen_drops(topo: &Topology) -> u64 {
    topo.real_servers()
        .iter()
        .map(|rs| {
            let out = rs
                .ns
                .cmd("nstat")
                .args(["-asz", "TcpExtListenDrops"])
                .run()
                .unwrap_or_default();
            out.lines()
                .filter_map(|l| l.strip_prefix("TcpExtListenDrops"))
                .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// nftables table of the reply counter in the DR/TUN labs' router.
const REPLY_TABLE: &str = "rvs_direct_replies";

/// Counts, in the router of a DR/TUN pair, the replies from the VIP's port forwarded from the
/// server segment (`eth2`) to the client (`eth0`).
fn count_router_replies(router: &Netns) {
    let rules = format!(
        "table ip {REPLY_TABLE} {{\n  chain replies {{\n    type filter hook forward priority 0; \
         policy accept;\n    iifname \"eth2\" oifname \"eth0\" ip saddr {HA_VIP} tcp sport \
         {PORT} counter\n  }}\n}}\n"
    );
    router
        .cmd("nft")
        .args(["-f", "-"])
        .stdin(rules)
        .run()
        .expect("nft: the router's reply counter");
}

/// The packets [`count_router_replies`]'s rule counted.
fn router_replies(router: &Netns) -> u64 {
    let out = router
        .cmd("nft")
        .args(["list", "chain", "ip", REPLY_TABLE, "replies"])
        .run()
        .expect("nft list");
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {out}"))
}

/// A running HA pair: the lab, echo servers on every real server, director1 (priority 150)
/// MASTER and director2 (100) BACKUP, and — with sync — their daemons following VRRP.
pub struct HaPair {
    /// The lab (dropped last).
    pub topo: Topology,
    /// Priority 150, MASTER after [`HaPair::start`].
    pub d1: Director,
    /// Priority 100, BACKUP after [`HaPair::start`].
    pub d2: Director,
    /// The client's namespace.
    pub client: Netns,
}

impl HaPair {
    /// Builds the lab of `setup.method` (lab name from `tag`), starts both directors and waits
    /// until director1 alone is MASTER and, with sync, the master and backup daemons run.
    pub fn start(tag: &str, setup: &PairSetup) -> HaPair {
        let mut topo = Topology::build(
            Lab::new(tag).expect("lab"),
            setup.method.lab_kind(),
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
        let d1 = Director::start(&topo, "director1", 150, setup);
        let d2 = Director::start(&topo, "director2", 100, setup);
        assert!(
            wait(Duration::from_secs(15), || d1.has_vip() && !d2.has_vip()),
            "director1 did not become the only MASTER:\n{}\n{}",
            d1.log_text(),
            d2.log_text()
        );
        if setup.sync {
            assert!(
                wait(Duration::from_secs(5), || {
                    d1.daemons()
                        .starts_with("master sync daemon (mcast=eth1, syncid=63,")
                        && d2
                            .daemons()
                            .starts_with("backup sync daemon (mcast=eth1, syncid=63,")
                }),
                "sync daemons do not follow VRRP: {:?} {:?}",
                d1.daemons(),
                d2.daemons()
            );
        }
        HaPair {
            topo,
            d1,
            d2,
            client,
        }
    }
}

/// Connections with at least 5 echoes after `t` and no error, the rest as failures, and the
/// longest time without an echo after `t` among those that continued (to the first echo, or
/// between two).
pub fn continued_after(logs: &[ConnLog], t: Instant) -> (Vec<u16>, Vec<String>, Duration) {
    let mut ok = Vec::new();
    let mut failures = Vec::new();
    let mut worst = Duration::ZERO;
    for l in logs {
        let later: Vec<Instant> = l.echoes.iter().copied().filter(|e| *e > t).collect();
        if l.error.is_none() && later.len() >= 5 {
            ok.push(l.port);
            let mut prev = t;
            for e in later {
                worst = worst.max(e - prev);
                prev = e;
            }
        } else {
            failures.push(format!(
                "port {}: {} echoes after, error {:?}",
                l.port,
                later.len(),
                l.error
            ));
        }
    }
    (ok, failures, worst)
}

/// One failover run: an [`HaPair`] set up as `setup` says, `n` client connections streaming
/// through the VIP; once the BACKUP lists them all (with sync), director1's machine is lost
/// (links down, rvsd SIGKILLed); director2 takes the VIP; 8 s later (retransmissions across the
/// move, then echoes) the clients stop and report. With persistence, 3 more connections are
/// opened after the failover to see where the synced templates send them.
pub fn failover(tag: &str, n: usize, setup: &PairSetup) -> Outcome {
    let (sync, persist) = (setup.sync, setup.persist);
    // Bound, not `_`: the lab must outlive the directors (dropped in reverse order).
    let HaPair {
        topo: _topo,
        mut d1,
        mut d2,
        client,
    } = HaPair::start(tag, setup);
    let router = setup.method.direct().then(|| {
        _topo
            .router()
            .expect("the router of a DR/TUN lab")
            .ns
            .clone()
    });
    if let Some(r) = &router {
        count_router_replies(r);
    }
    if setup.method == Method::Tun && d1.xdp() {
        // The client's veth leaves its TCP checksums partial (offloaded), and the XDP program
        // passes such packets to the userspace plane rather than encapsulate bytes that are
        // not a checksum yet (docs/internals/packet-plane.md): with offload off, as from a
        // NIC, the program encapsulates the client's packets itself, which is what the
        // takeover check below needs to see.
        client
            .cmd("ethtool")
            .args(["-K", "eth0", "tx", "off"])
            .run()
            .expect("ethtool -K eth0 tx off in the client");
    }
    let clients = Clients::start(&client, n);
    // Every connection is established on the MASTER; with sync the BACKUP lists them too.
    if !wait(Duration::from_secs(10), || d1.established() >= n) {
        let listed = d1.established();
        let table = d1.adm(&["-L", "-n", "-c"]).1;
        let report = d1.stop_and_report();
        let drops = listen_drops(&_topo);
        let logs = clients.finish();
        let bad: Vec<String> = logs
            .iter()
            .filter(|l| l.error.is_some() || l.connect >= Duration::from_millis(900))
            .map(|l| format!("port {}: connect {:?}, {:?}", l.port, l.connect, l.error))
            .collect();
        panic!(
            "MASTER lists {listed} of {n} connections\nslow or failed clients:\n{}\n\
             MASTER's table:\n{table}\nits packet workers:\n{report}\nthe real servers' \
             listen drops: {drops}",
            bad.join("\n")
        );
    }
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
    let hold = sample_backup(&d2, setup.hold);
    let backup_entries = d2.established();
    let listen_drops = listen_drops(&_topo);
    let before = d2.in_pkts();
    let out_before = d1.out_pkts();
    let replies_before = router.as_ref().map_or(0, router_replies);
    let servers_before = d1.destinations();

    let crashed = Instant::now();
    d1.crash();
    assert!(
        wait(Duration::from_secs(10), || d2.has_vip()),
        "director2 did not take the VIP:\n{}",
        d2.log_text()
    );
    let moved = Instant::now();
    if !setup.method.direct() {
        // The sync group moves the gateway with the VIP.
        assert!(
            wait(Duration::from_secs(5), || d2.has_dip()),
            "director2 took the VIP but not the gateway address:\n{}",
            d2.log_text()
        );
    }
    // Time for the stalled connections to retransmit (TCP backs off up to a few seconds
    // while the VIP was away) and then to echo on.
    thread::sleep(Duration::from_secs(8));
    // New connections from the same client after the failover: with persistence they go to
    // the real server of the synced template.
    let mut servers_after = BTreeSet::new();
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
    let out_after = d2.out_pkts();
    let slowest_connect = logs.iter().map(|l| l.connect).max().unwrap_or_default();
    let replies_after = router.as_ref().map_or(0, router_replies);
    let (ok, failures, worst_gap) = continued_after(&logs, moved);
    let new_master_xdp = d2.stop_xdp();
    let via_router = if router.is_some() {
        format!("; replies through the router {replies_before} -> {replies_after}")
    } else {
        String::new()
    };
    println!(
        "{:?} sync={sync} persist={persist}: {}/{n} connections continued; the VIP moved {:.2} s \
         after the crash; longest silence after it {:.2} s; BACKUP had {backup_entries} entries; \
         new MASTER InPkts {before} -> {after}; OutPkts old {out_before}, new {out_after}\
         {via_router}; slowest connect {:.3} s, real servers' listen drops {listen_drops}; \
         new MASTER's XDP program {new_master_xdp:?}",
        setup.method,
        ok.len(),
        (moved - crashed).as_secs_f64(),
        worst_gap.as_secs_f64(),
        slowest_connect.as_secs_f64()
    );
    if sync {
        assert!(
            after > before,
            "the new MASTER forwarded nothing ({before} -> {after})"
        );
        // With the XDP fast path the synced connections, once their first packets met
        // rvs-core on the new MASTER, are the program's to forward like any established
        // flow: an entry per surviving connection at least, and most of their frames.
        if let Some(x) = new_master_xdp {
            assert!(
                x.entries >= ok.len() as u64 && x.forwarded >= 5 * ok.len() as u64,
                "the new MASTER's XDP program did not take over the {} synced connections \
                 that continued: {x:?}",
                ok.len()
            );
        }
    }
    Outcome {
        n,
        survived: ok.len(),
        worst_gap,
        failures,
        backup_entries,
        servers_before,
        servers_after,
        in_pkts: (before, after),
        out_pkts: (out_before, out_after),
        moved_after: moved - crashed,
        router_replies: (replies_before, replies_after),
        slowest_connect,
        listen_drops,
        hold,
        new_master_xdp,
    }
}

/// What the BACKUP listed while the MASTER carried the connections ([`PairSetup::hold`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct HoldSample {
    /// Samples taken.
    pub samples: usize,
    /// The fewest ESTABLISHED entries of the VIP's service in one sample.
    pub fewest: usize,
    /// The longest remaining time (`-Lnc`'s expire, seconds) of those entries.
    pub longest_expire: u32,
}

/// Samples the BACKUP's `-Lnc` every 500 ms for `hold` ([`HoldSample`]).
fn sample_backup(backup: &Director, hold: Duration) -> HoldSample {
    let mut h = HoldSample {
        fewest: usize::MAX,
        ..HoldSample::default()
    };
    let end = Instant::now() + hold;
    let vip = format!("{HA_VIP}:{PORT}");
    // Bounded by `hold`.
    while Instant::now() < end {
        thread::sleep(Duration::from_millis(500));
        let (_, out, _) = backup.adm(&["-L", "-n", "-c"]);
        let est: Vec<_> = crate::parse_conns(&out)
            .into_iter()
            .filter(|c| c.state == "ESTABLISHED" && c.virt == vip)
            .collect();
        h.samples += 1;
        h.fewest = h.fewest.min(est.len());
        h.longest_expire = est
            .iter()
            .map(|c| c.expires)
            .max()
            .unwrap_or(0)
            .max(h.longest_expire);
    }
    if h.samples == 0 {
        h.fewest = 0;
    }
    h
}
