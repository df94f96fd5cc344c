//! Connection synchronisation end to end (issue 11): a director failover loses no established
//! connection.
//!
//! rvs-lab's HA pair with four real servers: the client 10.1.0.2 and the directors' `eth0`
//! (10.1.0.11, 10.1.0.12) on one bridge, the directors' `eth1` (10.2.0.2, 10.2.0.3) and the
//! real servers rs1..rs4 (10.2.0.11..14, each a socat TCP echo server on port 9000) on another;
//! the real servers' default route is the floating DIP 10.2.0.1. Two real `rvsd` processes,
//! each with the AF_PACKET plane on both interfaces, configured only by a keepalived.conf
//! (`-f`): two VRRP instances in one `vrrp_sync_group` — VI_SYNC owns the VIP 10.1.0.100 on
//! `eth0`, VI_GW the gateway DIP on `eth1` (priorities 150 / 100) — a NAT virtual server
//! VIP:9000 with `rr` over the four real servers, and — in the synced run — `lvs_sync_daemon
//! eth1 VI_SYNC` in `global_defs`.
//!
//! N long-lived TCP connections (one thread each, from the client's namespace) send a line
//! every 100 ms and wait for its echo. Once the BACKUP lists every connection (`-Lnc`, so the
//! sync stream carried them), the MASTER's machine is lost (both links down, rvsd SIGKILLed);
//! the BACKUP takes the VIP and DIP. With sync, every connection gets its echoes back through
//! the new MASTER: no reset, no end of stream, and the new MASTER counts their packets. The
//! same run without `lvs_sync_daemon` shows the loss (the new MASTER has no entry for a
//! mid-stream segment and does not schedule it), so the test can fail.
//!
//! The pair, the clients and the failover run are rvs-testkit's `failover` module (shared with
//! `sync_failover_direct.rs`, DR and TUN). Root only (CI runs it as root). Needs `ip`, `nft`
//! and `socat` (Debian `iproute2 nftables socat`). Every wait is bounded; the lab, the echo servers, the client threads and rvsd are
//! torn down on drop, also when the test panics.

mod common;

use rvs_testkit::failover::{
    continued_after, failover, Clients, Director, HaPair, Method, Outcome, PairSetup,
};
use rvs_testkit::wait;
use std::thread;
use std::time::{Duration, Instant};

use rvs_lab::Topology;

/// NAT pair from keepalived.conf, sync on or off, `persistence_timeout` when `persist`.
fn nat(sync: bool, persist: bool) -> PairSetup {
    PairSetup {
        sync,
        persist,
        ..PairSetup::new(common::RVSD, Method::Nat)
    }
}

/// FULLNAT pair (table from a rules file, VRRP and sync from keepalived.conf): the local
/// address and port travel with each connection (rvs's optional-flagged option), so the real
/// servers' replies to the local address — which VRRP moves with the VIP — find the synced
/// entries on the new MASTER.
fn fullnat(persist: bool) -> PairSetup {
    PairSetup {
        persist,
        ..PairSetup::new(common::RVSD, Method::Fullnat)
    }
}

/// Every connection continued, with no silence of 2 s or more after the VIP moved.
fn assert_all_continued(o: &Outcome) {
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

#[test]
fn failover_keeps_every_synced_connection() {
    if !rvs_lab::require(
        "failover_keeps_every_synced_connection",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    let o = failover("syncnat", 200, &nat(true, false));
    assert_eq!(o.backup_entries, o.n);
    assert_all_continued(&o);
}

#[test]
fn fullnat_failover_keeps_every_synced_connection() {
    if !rvs_lab::require(
        "fullnat_failover_keeps_every_synced_connection",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    let o = failover("syncfnat", 200, &fullnat(false));
    assert_eq!(o.backup_entries, o.n);
    assert_all_continued(&o);
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
    let o = failover("syncfnatp", 50, &fullnat(true));
    assert_all_continued(&o);
    assert_eq!(o.servers_before.len(), 1, "{:?}", o.servers_before);
    assert_eq!(o.servers_after, o.servers_before);
}

/// Long-lived connections whose packets the MASTER's XDP program forwards stay synced: the
/// sync rules run on the packet counts read back from the program's maps (every 10th client
/// packet re-announces a connection here, `sync_threshold 3 10`), so the BACKUP's entries,
/// with a TCP timeout of 4 s (`lvs_timeouts tcp 4`), never expire during 10 s of streaming,
/// and `-Lnc` on the BACKUP shows at most those 4 s; then the MASTER is lost and every
/// connection continues. On AF_PACKET the packet path runs the same rules per packet. Before
/// the fix (XDP mode), the entries the program carried were announced at most once and
/// expired on the BACKUP 4 s later (and ~15 % were never announced: their 3rd packet went
/// through the program).
#[test]
fn flows_carried_past_their_timeout_stay_synced() {
    if !rvs_lab::require(
        "flows_carried_past_their_timeout_stay_synced",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    let setup = PairSetup {
        globals: "    lvs_timeouts tcp 4\n",
        args: vec!["--sysctl", "sync_threshold=3 10"],
        hold: Duration::from_secs(10),
        ..nat(true, false)
    };
    let o = failover("synchold", 50, &setup);
    assert!(o.hold.samples >= 10, "{:?}", o.hold);
    assert_eq!(
        o.hold.fewest, o.n,
        "synced entries expired on the BACKUP while the MASTER carried them: {:?}",
        o.hold
    );
    assert!(o.hold.longest_expire <= 4, "{:?}", o.hold);
    assert_all_continued(&o);
}

#[test]
fn failover_without_sync_loses_the_connections() {
    if !rvs_lab::require(
        "failover_without_sync_loses_the_connections",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    let o = failover("syncoff", 50, &nat(false, false));
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
    let o = failover("syncper", 50, &nat(true, true));
    assert_all_continued(&o);
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
fn failback_setup() -> PairSetup {
    PairSetup {
        sync_opts: "maxlen 100",
        args: vec![
            "--sysctl",
            "sync_threshold=3 0",
            "--sync-resync-rate",
            "20",
            "--sync-resync-hold",
            "60",
        ],
        ..PairSetup::new(common::RVSD, Method::Nat)
    }
}

/// An HA pair after the first failover: director1 (priority 150) was lost, director2 (100)
/// carries the `n` connections. Returns the topology, both directors and the clients.
fn after_failover(
    tag: &str,
    n: usize,
    setup: &PairSetup,
) -> (Topology, Director, Director, Clients) {
    let HaPair {
        topo,
        mut d1,
        d2,
        client,
    } = HaPair::start(tag, setup);
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

/// The failback run: after the first failover director1 comes back with the higher priority;
/// it must resync (the log says "complete: N records"), then preempt, and every connection
/// continues through the move back.
fn failback(tag: &str, setup: &PairSetup) {
    let n = 200;
    let (topo, d1, d2, clients) = after_failover(tag, n, setup);
    // director1 comes back with the higher priority: it must resync, then preempt.
    let mut d1 = d1.reboot(&topo, 150, setup);
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
    if let Some(group) = setup.sync_opts.split("group ").nth(1) {
        let daemons = d1.daemons();
        assert!(
            daemons.contains(&format!("group={group},")),
            "not on {group}: {daemons}"
        );
    }
    assert!(
        wait(Duration::from_secs(10), || !d2.has_vip()),
        "director2 kept the VIP"
    );
    // Time for retransmissions across the move, then some echoes.
    thread::sleep(Duration::from_secs(8));
    let logs = clients.finish();
    let (ok, failures, worst) = continued_after(&logs, back);
    println!(
        "failback ({}): {}/{n} connections continued; director1 listed {listed} when it took \
         the VIP; longest silence after {:.2} s",
        d1.daemons().trim(),
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
    // With the XDP fast path: director1 forwarded nothing before it preempted, so what its
    // program forwarded is the resynced connections' traffic after the move back.
    if let Some(x) = d1.stop_xdp() {
        assert!(
            x.entries >= n as u64 && x.forwarded >= 5 * n as u64,
            "director1's XDP program did not take over the resynced connections: {x:?}"
        );
    }
}

#[test]
fn failback_resyncs_before_preempting_and_keeps_every_connection() {
    if !rvs_lab::require(
        "failback_resyncs_before_preempting_and_keeps_every_connection",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    failback("syncfb", &failback_setup());
}

/// The same failback with the daemons on the IPv6 group ff02::1:81 (`lvs_sync_daemon … group`):
/// the live stream, the resync request (multicast to the group on port + 64) and the answer
/// (unicast to the asker's link-local address on `eth1`) all over IPv6.
#[test]
fn failback_resyncs_over_an_ipv6_group() {
    if !rvs_lab::require(
        "failback_resyncs_over_an_ipv6_group",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    let setup = PairSetup {
        sync_opts: "maxlen 100 group ff02::1:81",
        ..failback_setup()
    };
    failback("syncfb6", &setup);
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
    let (topo, d1, mut d2, clients) = after_failover("syncfbk", n, &failback_setup());
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

/// InPkts of `d`'s service over 2 s, starting 0.5 s from now (the XDP syncer's sweep, 100 ms,
/// has then removed what it was going to remove and counted what came before).
fn in_pkts_over_two_seconds(d: &Director) -> (u64, u64) {
    thread::sleep(Duration::from_millis(500));
    let a = d.in_pkts();
    thread::sleep(Duration::from_secs(2));
    (a, d.in_pkts())
}

/// A director that gave the VIP back forwards nothing for it, also not with the XDP fast
/// path: after the failback director2 is BACKUP again, and the switch turns into a hub
/// (bridge `ageing_time 0`: every frame flooded), so the clients' frames to director1's MAC
/// reach director2 too. The userspace plane ignores frames for another host's MAC; the XDP
/// program matches flows by their addresses alone, so director2's entries from its time as
/// MASTER must be gone: before the fix its program went on forwarding the flooded frames
/// (duplicates to the real servers, counted in director2's InPkts). The connections continue
/// through director1.
#[test]
fn a_director_that_gave_the_vip_back_forwards_nothing_for_it() {
    if !rvs_lab::require(
        "a_director_that_gave_the_vip_back_forwards_nothing_for_it",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    let n = 20;
    let setup = failback_setup();
    let (topo, d1, mut d2, clients) = after_failover("syncgive", n, &setup);
    // director2 carries the connections for a while (with XDP: in its program).
    thread::sleep(Duration::from_secs(2));
    let d1 = d1.reboot(&topo, 150, &setup);
    assert!(
        wait(Duration::from_secs(30), || d1.has_vip() && !d2.has_vip()),
        "director1 did not take the VIP back:\n{}",
        d1.log_text()
    );
    let back = Instant::now();
    let switch = topo.node("switch").expect("the lab's switch").ns.clone();
    switch
        .ip(["link", "set", "br0", "type", "bridge", "ageing_time", "0"])
        .expect("bridge ageing_time 0");
    let (a, b) = in_pkts_over_two_seconds(&d2);
    thread::sleep(Duration::from_secs(3));
    let logs = clients.finish();
    let (ok, failures, _) = continued_after(&logs, back);
    let xdp = d2.stop_xdp();
    println!(
        "director2 as BACKUP with flooded frames: InPkts {a} -> {b}; {}/{n} continued; its \
         XDP program {xdp:?}",
        ok.len()
    );
    assert_eq!(a, b, "director2 forwarded frames for the VIP it gave back");
    assert_eq!(ok.len(), n, "{}", failures.join("\n"));
    if let Some(x) = xdp {
        assert!(x.forwarded > 0, "director2's program never carried: {x:?}");
    }
}

/// `backup_only`: a director that starts a backup daemon with `backup_only = 1` forwards
/// nothing from then on, as the kernel's does — including the flows its XDP program was
/// carrying (before the fix their entries kept forwarding them). The MASTER of a pair without
/// `lvs_sync_daemon` (so that no VRRP-driven daemon control stops the one started here),
/// carrying 20 connections, gets `--sysctl backup_only=1` and a backup daemon; its InPkts
/// must stop.
#[test]
fn backup_only_stops_every_flow_also_in_the_fast_path() {
    if !rvs_lab::require(
        "backup_only_stops_every_flow_also_in_the_fast_path",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    let n = 20;
    let HaPair {
        topo: _topo,
        mut d1,
        d2: _d2,
        client,
    } = HaPair::start("syncbonly", &nat(false, false));
    let clients = Clients::start(&client, n);
    assert!(
        wait(Duration::from_secs(15), || d1.established() >= n),
        "MASTER lists {} of {n} connections",
        d1.established()
    );
    // The connections stream for a while (with XDP: through the program).
    thread::sleep(Duration::from_secs(2));
    let (code, _, err) = d1.adm(&["--sysctl", "backup_only=1"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = d1.adm(&[
        "--start-daemon",
        "backup",
        "--mcast-interface",
        "eth1",
        "--syncid",
        "99",
    ]);
    assert_eq!(code, 0, "{err}");
    let (a, b) = in_pkts_over_two_seconds(&d1);
    let daemons = d1.daemons();
    drop(clients);
    let xdp = d1.stop_xdp();
    println!("MASTER with backup_only: InPkts {a} -> {b}; its XDP program {xdp:?}");
    assert!(
        daemons.contains("backup sync daemon"),
        "the backup daemon stopped: {daemons:?}"
    );
    assert_eq!(
        a, b,
        "the MASTER forwarded with backup_only and a backup daemon"
    );
    if let Some(x) = xdp {
        assert!(x.forwarded > 0, "the program never carried: {x:?}");
    }
}

/// The packets the real servers received for the service port since [`count_at_servers`]
/// installed its counter (nft, input hook, in each real server's namespace).
fn received_at_servers(topo: &Topology) -> u64 {
    topo.real_servers()
        .iter()
        .map(|rs| {
            let out = rs
                .ns
                .cmd("nft")
                .args(["list", "chain", "inet", SERVER_TABLE, "input"])
                .run()
                .expect("nft list: the real server's counter");
            out.split_whitespace()
                .skip_while(|w| *w != "packets")
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no counter in {out}"))
        })
        .sum()
}

/// nftables table of [`count_at_servers`].
const SERVER_TABLE: &str = "rvs_test_received";

/// Counts, in every real server, the TCP packets received for the service port.
fn count_at_servers(topo: &Topology) {
    let rules = format!(
        "table inet {SERVER_TABLE} {{\n  chain input {{\n    type filter hook input priority 0; \
         policy accept;\n    tcp dport {} counter\n  }}\n}}\n",
        rvs_testkit::failover::PORT
    );
    for rs in topo.real_servers() {
        rs.ns
            .cmd("nft")
            .args(["-f", "-"])
            .stdin(rules.clone())
            .run()
            .expect("nft: the real server's counter");
    }
}

/// A BACKUP serves nothing for the VIP, not even the frames that reach it at its own MAC: the
/// client's neighbour entry for the VIP is pinned to director2's MAC (a stale ARP cache, a
/// static entry) while director1 is MASTER. A kernel BACKUP does not hold the VIP (keepalived
/// removed it), so those packets are not local and IPVS never sees them: the synced
/// connections get theirs only after a takeover, and no new connection is made. Before the
/// change director2's userspace plane forwarded the synced connections' packets (its InPkts
/// grew, the real servers received them) and scheduled new connections; in both modes (with
/// XDP the program has no entry for a standby VIP and leaves the frames to the plane).
#[test]
fn a_backup_serves_nothing_for_the_vip_at_its_own_mac() {
    if !rvs_lab::require(
        "a_backup_serves_nothing_for_the_vip_at_its_own_mac",
        &["ip", "nft", "socat"],
    ) {
        return;
    }
    let n = 10;
    let HaPair {
        topo,
        d1: _d1,
        mut d2,
        client,
    } = HaPair::start("syncbkmac", &nat(true, false));
    let clients = Clients::start(&client, n);
    assert!(
        wait(Duration::from_secs(15), || d2.established() >= n),
        "the BACKUP lists {} of {n} synced connections",
        d2.established()
    );
    count_at_servers(&topo);
    let mac = topo
        .node("director2")
        .and_then(|d| d.iface("eth0"))
        .expect("director2's eth0")
        .mac
        .to_string();
    let vip = rvs_lab::topo::HA_VIP;
    let rx = |ns: &rvs_lab::Netns| -> u64 {
        let out = ns
            .ip(["-s", "-o", "link", "show", "eth0"])
            .expect("ip -s link");
        // `... RX: bytes packets ... \    N M ...`: the second number after "RX:".
        out.split("RX:")
            .nth(1)
            .and_then(|r| {
                r.split_whitespace()
                    .filter_map(|w| w.parse::<u64>().ok())
                    .nth(1)
            })
            .unwrap_or_else(|| panic!("no RX counters in {out}"))
    };
    let d2_ns = topo.node("director2").expect("director2").ns.clone();
    let (before, rx_before) = (d2.stats(), rx(&d2_ns));
    client
        .ip([
            "neigh",
            "replace",
            &vip.to_string(),
            "lladdr",
            &mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])
        .expect("pin the VIP to director2's MAC");
    // What director1 forwarded before the pin has arrived by now.
    thread::sleep(Duration::from_millis(300));
    let at_servers = received_at_servers(&topo);
    // A new connection, at director2's MAC too.
    let addr = std::net::SocketAddr::from((vip, rvs_testkit::failover::PORT));
    let connected = client
        .exec(move || std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
        .expect("enter the client namespace");
    let (a, b) = in_pkts_over_two_seconds(&d2);
    let (after, rx_after, at_servers_after) = (d2.stats(), rx(&d2_ns), received_at_servers(&topo));
    drop(clients);
    let xdp = d2.stop_xdp();
    println!(
        "BACKUP with the client's frames at its MAC: stats {before:?} -> {after:?}, InPkts {a} \
         -> {b}, frames received on eth0 {}, the real servers received {}; its XDP program \
         {xdp:?}",
        rx_after - rx_before,
        at_servers_after - at_servers
    );
    assert!(
        rx_after - rx_before >= n as u64,
        "the client's frames did not reach director2"
    );
    assert!(!connected, "a new connection through the BACKUP");
    assert_eq!(
        (after[0], after[1]),
        (before[0], before[1]),
        "the BACKUP scheduled or forwarded (Conns, InPkts)"
    );
    assert_eq!(a, b, "the BACKUP forwarded for a VIP it does not hold");
    assert_eq!(
        at_servers_after, at_servers,
        "the real servers received packets through the BACKUP"
    );
}
