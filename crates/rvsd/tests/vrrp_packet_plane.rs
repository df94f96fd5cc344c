//! VRRP and the packet data plane together, end to end (issue 6: "as MASTER the VIPs are
//! installed and served by the data planes; as BACKUP they are removed and the packet plane
//! stops answering ARP for them").
//!
//! rvs-lab's HA pair: the client 10.1.0.2 and the directors' `eth0` (10.1.0.11, 10.1.0.12) on
//! one bridge, the directors' `eth1` (10.2.0.2, 10.2.0.3) and the nginx real servers rs1
//! 10.2.0.11, rs2 10.2.0.12 on another; the real servers' default route is the floating DIP
//! 10.2.0.1. Two real `rvsd` processes, each with `--interface eth0 --interface eth1` (the
//! AF_PACKET plane), the same NAT service on the VIP 10.1.0.100:80 (`--rules`), and one VRRP
//! instance (`--vrrp`, priorities 150 / 100, advert_int 1) that owns the VIP on `eth0` and the
//! DIP on `eth1`.
//!
//! The client's `eth0` is captured (dumpcap) from before the directors start to the end, and
//! the ARP frames that claim the VIP (sender address = VIP: replies and gratuitous ARPs) are
//! attributed to the directors by MAC. The test proves:
//! (a) the client's ARP requests for the VIP are answered by the MASTER only;
//! (b) curl through the VIP works and is counted by the MASTER (`rvsadm -Ln --stats`, NAT:
//!     both directions through its plane) while the BACKUP's counters stay 0;
//! (c) after the MASTER's machine is lost (links down, rvsd SIGKILLed), the BACKUP becomes
//!     MASTER, announces the VIP, the client's neighbour entry moves to its MAC, and a bounded
//!     curl loop succeeds again within 5 s, counted by the new MASTER;
//! (d) before the failover the BACKUP never claimed the VIP (no ARP reply, no gratuitous ARP
//!     from its MAC), although it saw every one of the client's broadcast requests.
//!
//! Root only: prints `SKIP …` and returns without root, a failure under CI (see rvs-require). Needs `ip`,
//! `nft`, `nginx`, `curl` and `dumpcap`/`tshark` (Debian `iproute2 nftables nginx-light curl
//! tshark`, see scripts/install-test-deps). Every wait is bounded; the lab (namespaces,
//! nginx), rvsd and the capture are torn down on drop, also when the test panics.

mod common;

use rvs_testkit::wait;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Rvsd, RVSD};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rvs_lab::topo::{HA_DIP, HA_VIP};
use rvs_lab::{MacAddr, Netns, NsChild, Topology};

const PORT: u16 = 80;

/// Seconds since the epoch (the clock dumpcap stamps frames with).
fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One director: rvsd with the packet plane on both interfaces and VRRP.
struct Director {
    ns: Netns,
    /// MAC of its client-side `eth0`.
    mac: MacAddr,
    rvsd: Option<Rvsd>,
}

impl Director {
    fn start(topo: &Topology, role: &str, priority: u8) -> Director {
        let node = topo.node(role).expect("director node");
        let ns = node.ns.clone();
        let mac = node.iface("eth0").expect("director eth0").mac;
        let dir = topo.lab().workdir().join(role);
        std::fs::create_dir_all(&dir).expect("director workdir");
        let conf = dir.join("keepalived.conf");
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n    vrrp_garp_master_delay 1\n}}\n\
                 vrrp_instance VI_PP {{\n    state BACKUP\n    interface eth0\n    \
                 virtual_router_id 62\n    priority {priority}\n    advert_int 1\n    \
                 virtual_ipaddress {{\n        {HA_VIP}/24 dev eth0 label eth0:1\n        \
                 {HA_DIP}/24 dev eth1 label eth1:1\n    }}\n}}\n"
            ),
        )
        .expect("write keepalived.conf");
        let rules = dir.join("rules");
        std::fs::write(
            &rules,
            format!(
                "-A -t {HA_VIP}:{PORT} -s rr\n-a -t {HA_VIP}:{PORT} -r 10.2.0.11:{PORT} -m -w 1\n\
                 -a -t {HA_VIP}:{PORT} -r 10.2.0.12:{PORT} -m -w 1\n"
            ),
        )
        .expect("write rules");
        let (rules, conf) = (rules.display().to_string(), conf.display().to_string());
        let rvsd = Rvsd::start_in(
            RVSD,
            Some(&ns),
            &dir,
            &[
                "--drain-time",
                "0",
                "--interface",
                "eth0",
                "--interface",
                "eth1",
                "--rules",
                &rules,
                "--vrrp",
                &conf,
            ],
        );
        Director {
            ns,
            mac,
            rvsd: Some(rvsd),
        }
    }

    /// `Conns InPkts OutPkts` of the VIP's service line in `rvsadm -L -n --stats --exact`.
    fn stats(&self) -> (u64, u64, u64) {
        let rvsd = self.rvsd.as_ref().expect("rvsd running");
        let out = rvsd.ok(&["-L", "-n", "--stats", "--exact"]);
        let lines = common::parse_stats(&out);
        let n = common::stat(&lines, &format!("{HA_VIP}:{PORT}"), true).n;
        (n[0], n[1], n[2])
    }

    fn has_vip(&self) -> bool {
        rvs_testkit::ha::has_addr(&self.ns, "eth0", &format!("{HA_VIP}/24"))
    }

    /// Machine loss: both links go down (no last advert, no ARP from its kernel, which keeps
    /// the addresses), then rvsd is SIGKILLed and reaped.
    fn crash(&mut self) {
        rvs_testkit::ha::links_down(&self.ns, &["eth0", "eth1"]);
        // Dropping the harness's Rvsd SIGKILLs its process group and reaps it.
        self.rvsd = None;
    }

    fn log_text(&self) -> String {
        self.rvsd.as_ref().map(Rvsd::log_text).unwrap_or_default()
    }
}

/// One captured ARP frame.
#[derive(Debug, Clone)]
struct Arp {
    /// Capture time, seconds since the epoch.
    t: f64,
    /// Ethernet source.
    eth_src: String,
    /// 1 request, 2 reply.
    opcode: u8,
    /// Sender protocol address.
    sender_ip: String,
    /// Sender hardware address.
    sender_mac: String,
}

/// dumpcap writing the ARP frames of one interface to a file; stopped on drop.
struct Capture {
    child: Option<NsChild>,
    file: PathBuf,
}

impl Capture {
    /// Starts dumpcap and waits (≤ 10 s) until it captures.
    fn start(ns: &Netns, dev: &str, dir: &Path) -> Capture {
        let file = dir.join(format!("arp-{}-{dev}.pcapng", ns.name()));
        let err = dir.join(format!("dumpcap-{}-{dev}.err", ns.name()));
        let cmd = format!(
            "exec dumpcap -i {dev} -f arp -w {} 2>{}",
            file.display(),
            err.display()
        );
        let child = ns.cmd("sh").args(["-c", &cmd]).spawn().expect("dumpcap");
        let mut c = Capture {
            child: Some(child),
            file,
        };
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&err).unwrap_or_default();
            if text.contains("Capturing on") {
                return c;
            }
            let running = c.child.as_mut().is_some_and(NsChild::is_running);
            assert!(
                running && Instant::now() < end,
                "dumpcap did not start: {text}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops dumpcap (SIGTERM: it closes the file) and reads the frames back with tshark.
    fn finish(mut self) -> Vec<Arp> {
        if let Some(c) = self.child.take() {
            if let Some(pid) = c.pid().and_then(|p| i32::try_from(p).ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            c.wait_output(Duration::from_secs(10))
                .expect("dumpcap stops on SIGTERM");
        }
        let out = rvs_lab::NsCommand::host("tshark")
            .args(["-r", &self.file.display().to_string(), "-Y", "arp"])
            .args(["-T", "fields", "-E", "separator=,"])
            .args([
                "-e",
                "frame.time_epoch",
                "-e",
                "eth.src",
                "-e",
                "arp.opcode",
            ])
            .args(["-e", "arp.src.proto_ipv4", "-e", "arp.src.hw_mac"])
            .timeout(Duration::from_secs(30))
            .output()
            .expect("tshark -r");
        assert!(out.status.success(), "tshark -r failed: {out:?}");
        out.stdout_str()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f.len() == 5).then(|| Arp {
                    t: f[0].parse().unwrap_or(0.0),
                    eth_src: f[1].to_string(),
                    opcode: f[2].parse().unwrap_or(0),
                    sender_ip: f[3].to_string(),
                    sender_mac: f[4].to_string(),
                })
            })
            .collect()
    }
}

/// One bounded curl of `/` through the VIP from `ns`; the body (`rs1\n` / `rs2\n`) or `None`.
fn curl_once(ns: &Netns, connect_timeout: &str, max_time: &str) -> Option<String> {
    let url = format!("http://{HA_VIP}:{PORT}/");
    let out = ns
        .cmd("curl")
        .args([
            "-sS",
            "--connect-timeout",
            connect_timeout,
            "--max-time",
            max_time,
            &url,
        ])
        .timeout(Duration::from_secs(10))
        .output()
        .ok()?;
    let body = out.stdout_str();
    (out.status.success() && (body == "rs1\n" || body == "rs2\n")).then_some(body)
}

/// curl through the VIP that must succeed (a few bounded attempts).
fn curl_ok(ns: &Netns) -> String {
    for _ in 0..5 {
        if let Some(b) = curl_once(ns, "1", "3") {
            return b;
        }
    }
    panic!("curl http://{HA_VIP}:{PORT}/ failed 5 times");
}

/// The client's neighbour entry for the VIP (its lladdr), if any.
fn client_neigh(client: &Netns) -> Option<String> {
    let out = client
        .ip(["neigh", "show", &HA_VIP.to_string(), "dev", "eth0"])
        .ok()?;
    let f: Vec<&str> = out.split_whitespace().collect();
    f.iter()
        .position(|w| *w == "lladdr")
        .and_then(|i| f.get(i + 1))
        .map(|s| s.to_string())
}

fn describe(frames: &[&Arp]) -> String {
    frames
        .iter()
        .map(|a| {
            format!(
                "  t={:.3} eth.src={} op={} sender={} {}\n",
                a.t, a.eth_src, a.opcode, a.sender_ip, a.sender_mac
            )
        })
        .collect()
}

#[test]
fn arp_follows_vrrp_master_and_failover_through_the_packet_plane() {
    rvs_require::require_root!();
    let t0 = Instant::now();
    let mut topo = rvs_lab::ha("vrrppp").expect("HA topology");
    topo.start_nginx().expect("nginx");
    let client = topo.client().ns.clone();
    let vip = HA_VIP.to_string();
    let capture = Capture::start(&client, "eth0", topo.lab().workdir());
    // Director1 first: with the shorter skew of the higher priority it becomes MASTER first.
    let mut d1 = Director::start(&topo, "director1", 150);
    let mut d2 = Director::start(&topo, "director2", 100);
    let (m1, m2) = (d1.mac.to_string(), d2.mac.to_string());
    assert!(
        wait(Duration::from_secs(10), || d1.has_vip() && !d2.has_vip()),
        "director1 did not become the only MASTER:\n{}\n{}",
        d1.log_text(),
        d2.log_text()
    );
    let converged = t0.elapsed();
    // Stays so (2 s: two adverts).
    for _ in 0..20 {
        assert!(d1.has_vip() && !d2.has_vip(), "exactly one MASTER");
        thread::sleep(Duration::from_millis(100));
    }

    // (a) The client resolves the VIP afresh three times: each time the answer is director1's.
    let rounds = 3;
    for _ in 0..rounds {
        let _ = client.ip(["neigh", "del", &vip, "dev", "eth0"]);
        curl_ok(&client);
        assert_eq!(
            client_neigh(&client).as_deref(),
            Some(m1.as_str()),
            "the client's VIP neighbour is the MASTER's MAC"
        );
    }
    // (b) More requests through the VIP: counted by the MASTER, in both directions (NAT: the
    // replies come back through its plane); nothing on the BACKUP.
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(curl_ok(&client));
    }
    assert!(
        seen.iter().any(|b| b == "rs1\n") && seen.iter().any(|b| b == "rs2\n"),
        "rr over both real servers: {seen:?}"
    );
    let (c1, i1, o1) = d1.stats();
    assert!(
        c1 >= rounds + 4 && i1 >= 3 * (rounds + 4) && o1 >= 2 * (rounds + 4),
        "MASTER counters: conns {c1} inpkts {i1} outpkts {o1}"
    );
    assert_eq!(d2.stats(), (0, 0, 0), "the BACKUP served nothing");
    println!("before failover: MASTER director1 conns {c1} inpkts {i1} outpkts {o1}; BACKUP 0 0 0");

    // Both directors run the packet plane in the mode the pass asks for (RVS_TEST_XDP): with
    // XDP, the program is attached to both interfaces of both while VRRP elected one MASTER,
    // so the adverts reached the VRRP engine through it.
    for d in [&d1, &d2] {
        let r = d.rvsd.as_ref().expect("rvsd running");
        let path = r.packet_path().expect("a packet plane");
        rvs_testkit::packet_path::check_log(path, &["eth0", "eth1"], &r.log_text(), None);
    }

    // (c) The MASTER's machine is lost.
    let crash_epoch = epoch_now();
    let crash = Instant::now();
    d1.crash();
    let mut attempts = 0u32;
    let mut back = None;
    while crash.elapsed() < Duration::from_secs(10) {
        attempts += 1;
        if curl_once(&client, "0.3", "1").is_some() {
            back = Some(crash.elapsed());
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let gap = back.unwrap_or_else(|| {
        panic!(
            "no successful request through the VIP within 10 s of the MASTER's loss \
             ({attempts} attempts); director2 VIP: {}\n{}",
            d2.has_vip(),
            d2.log_text()
        )
    });
    println!(
        "failover: first successful curl through the VIP {:.3} s after the MASTER's loss \
         ({attempts} attempts; Master_Down_Interval 3 × 1 s + skew 0.609 s)",
        gap.as_secs_f64()
    );
    assert!(gap <= Duration::from_secs(5), "failover gap {gap:?} > 5 s");
    assert!(d2.has_vip(), "director2 is MASTER");
    assert!(
        wait(Duration::from_secs(2), || client_neigh(&client).as_deref()
            == Some(m2.as_str())),
        "the client's VIP neighbour moved to director2's MAC ({m2}): {:?}",
        client_neigh(&client)
    );
    let (c2a, _, _) = d2.stats();
    assert!(c2a >= 1, "the new MASTER counted the first request: {c2a}");
    for _ in 0..4 {
        curl_ok(&client);
    }
    let (c2, i2, o2) = d2.stats();
    assert!(
        c2 >= c2a + 4 && i2 >= 3 * 5 && o2 >= 2 * 5,
        "new MASTER counters: conns {c2} inpkts {i2} outpkts {o2}"
    );
    println!("after failover: MASTER director2 conns {c2} inpkts {i2} outpkts {o2}");

    // The capture: who claimed the VIP, before and after the loss.
    thread::sleep(Duration::from_millis(200));
    let frames = capture.finish();
    let claims: Vec<&Arp> = frames.iter().filter(|a| a.sender_ip == vip).collect();
    let before: Vec<&Arp> = claims
        .iter()
        .copied()
        .filter(|a| a.t < crash_epoch)
        .collect();
    let after: Vec<&Arp> = claims
        .iter()
        .copied()
        .filter(|a| a.t >= crash_epoch)
        .collect();
    // (d) Before the loss only director1 claimed the VIP: no reply and no gratuitous ARP from
    // director2 (whose plane saw every broadcast request of the client).
    let foreign: Vec<&Arp> = before
        .iter()
        .copied()
        .filter(|a| a.eth_src != m1 || a.sender_mac != m1)
        .collect();
    assert!(
        foreign.is_empty(),
        "before the failover only the MASTER ({m1}) may claim {vip}; the BACKUP is {m2}:\n{}",
        describe(&foreign)
    );
    let requests = frames
        .iter()
        .filter(|a| a.t < crash_epoch && a.opcode == 1 && a.sender_ip == "10.1.0.2")
        .count();
    let replies1 = before.iter().filter(|a| a.opcode == 2).count();
    assert!(
        requests >= rounds as usize && replies1 >= rounds as usize,
        "the client asked ({requests}) and the MASTER answered ({replies1}) at least {rounds} times"
    );
    // After the loss director2 announced the VIP, and only it claimed it.
    let garps2 = after
        .iter()
        .filter(|a| a.eth_src == m2 && a.sender_mac == m2)
        .count();
    assert!(garps2 >= 1, "director2 announced {vip} after taking over");
    let stale: Vec<&Arp> = after.iter().copied().filter(|a| a.eth_src != m2).collect();
    assert!(
        stale.is_empty(),
        "after the failover only director2 claims {vip}:\n{}",
        describe(&stale)
    );
    println!(
        "ARP for {vip}: before the loss {} frames from director1 ({replies1} replies to {requests} \
         requests), 0 from director2; after it {garps2} from director2",
        before.len()
    );
    println!(
        "timings: MASTER elected {:.3} s into the test; failover gap {:.3} s; test {:.3} s",
        converged.as_secs_f64(),
        gap.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    // A 300 KB download through the new MASTER: curl's page fetches are short exchanges,
    // which may end before their flows are installed; this flow goes on long after, so that in
    // XDP mode the new MASTER's program must have forwarded some of it.
    for rs in topo.real_servers() {
        common::write_pattern(&rs.ns.nginx_root(PORT).join("big.bin"), 300_000);
    }
    let got = common::download_in(
        &client,
        &format!("http://{HA_VIP}:{PORT}/big.bin"),
        &topo.lab().workdir().join("big.bin"),
    );
    assert!(
        got == common::pattern(300_000),
        "download: {} bytes",
        got.len()
    );
    // The new MASTER's mode, with its counters once stopped.
    d2.rvsd
        .as_mut()
        .expect("rvsd running")
        .stop_and_check_mode(&["eth0", "eth1"], common::Forwards::Some);
}
