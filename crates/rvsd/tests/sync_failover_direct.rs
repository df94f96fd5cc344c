//! Connection synchronisation end to end in direct routing and tunnelling (issue 11): a
//! director failover loses no established connection when the real servers answer the client
//! themselves.
//!
//! rvs-lab's `ha-dr` / `ha-tun` pairs: the client 192.168.1.2 sits behind a router; the router
//! (10.1.0.1) and the directors' `eth0` (10.1.0.11, 10.1.0.12) share the VIP segment, where
//! VRRP moves the VIP 10.1.0.100 (the router follows the new MASTER's gratuitous ARP); the
//! directors' `eth1` (10.2.0.2, 10.2.0.3), the router's 10.2.0.254 and the real servers rs1..rs4
//! (10.2.0.11..14, socat echo servers on port 9000) share the server segment. Each real server
//! holds the VIP on `lo` with `arp_ignore=1` / `arp_announce=2` (it takes packets for the VIP
//! but never claims it by ARP) and its default route is the router: replies go to the client
//! without touching a director. In `ha-tun` every real server also runs the lab's
//! decapsulator (this kernel has no `ipip` module), which hands the inner packet to its stack.
//!
//! Two real `rvsd` processes with the AF_PACKET plane on both interfaces, configured only by a
//! keepalived.conf: one VRRP instance for the VIP (priorities 150 / 100, VRRPv3 `advert_int
//! 0.5`), `lb_kind DR` or `TUN` with `rr` over the four real servers, and — in the synced runs —
//! `lvs_sync_daemon eth1 VI_SYNC`. 200 connections stream a line every 100 ms; once the BACKUP
//! lists them all, the MASTER's machine is lost (links down, rvsd SIGKILLed). With sync every
//! connection goes on through the new MASTER with no silence of 2 s after the VIP moved; the
//! directors' OutPkts stay 0 (the replies never passed a director). Without sync the new MASTER
//! has no entry for the mid-stream segments and the connections die, so the test can fail.
//! An nftables counter in the router shows the replies took the direct path before and after
//! the failover.
//!
//! In XDP mode (`RVS_TEST_XDP=generic`) the new MASTER's program must take over the synced
//! flows (it forwards their frames after their first packet met rvs-core); in TUN the client's
//! checksum offload is turned off for it, since the program leaves packets with partial
//! checksums to the userspace plane.
//!
//! The pair and the run are rvs-testkit's `failover` module. Root only (CI runs it as root);
//! needs `ip`, `nft` and `socat` (and `ethtool` for TUN). Every wait is bounded; everything is torn down on drop.

mod common;

use rvs_testkit::failover::{failover, Method, Outcome, PairSetup};
use std::time::Duration;

fn setup(method: Method, sync: bool, persist: bool) -> PairSetup {
    PairSetup {
        sync,
        persist,
        ..PairSetup::new(common::RVSD, method)
    }
}

/// Every connection continued with no silence of 2 s after the VIP moved, and no reply went
/// through a director.
fn assert_all_continued_directly(o: &Outcome) {
    assert_eq!(
        o.survived,
        o.n,
        "connections lost in the failover:\n{}",
        o.failures.join("\n")
    );
    assert!(o.worst_gap < Duration::from_secs(2), "{:?}", o.worst_gap);
    assert_eq!(
        o.out_pkts,
        (0, 0),
        "replies went through a director: not direct routing"
    );
    assert!(o.in_pkts.1 > o.in_pkts.0, "{:?}", o.in_pkts);
    let (before, after) = o.router_replies;
    assert!(
        before > 0 && after > before,
        "the router forwarded {before} then {after} replies: the real servers did not answer \
         the client directly"
    );
}

/// Fewer than half survive without sync: the synced runs prove something.
fn assert_lost(o: &Outcome) {
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

/// One client with `-p`: every connection on one real server, and the new connections after
/// the failover go there too (synced template).
fn assert_same_server(o: &Outcome) {
    assert_all_continued_directly(o);
    assert_eq!(o.servers_before.len(), 1, "{:?}", o.servers_before);
    assert_eq!(o.servers_after, o.servers_before);
}

const TOOLS: &[&str] = &["ip", "nft", "socat"];
/// TUN with the XDP fast path also turns checksum offload off on the client (`ethtool -K`).
const TUN_TOOLS: &[&str] = &["ip", "nft", "socat", "ethtool"];

#[test]
fn dr_failover_keeps_every_synced_connection() {
    if !rvs_lab::require("dr_failover_keeps_every_synced_connection", TOOLS) {
        return;
    }
    let o = failover("syncdr", 200, &setup(Method::Dr, true, false));
    assert_eq!(o.backup_entries, o.n);
    assert_all_continued_directly(&o);
}

#[test]
fn dr_failover_without_sync_loses_the_connections() {
    if !rvs_lab::require("dr_failover_without_sync_loses_the_connections", TOOLS) {
        return;
    }
    assert_lost(&failover("syncdroff", 50, &setup(Method::Dr, false, false)));
}

#[test]
fn dr_persistent_clients_keep_their_real_server_after_failover() {
    if !rvs_lab::require(
        "dr_persistent_clients_keep_their_real_server_after_failover",
        TOOLS,
    ) {
        return;
    }
    assert_same_server(&failover("syncdrp", 50, &setup(Method::Dr, true, true)));
}

#[test]
fn tun_failover_keeps_every_synced_connection() {
    if !rvs_lab::require("tun_failover_keeps_every_synced_connection", TUN_TOOLS) {
        return;
    }
    let o = failover("synctun", 200, &setup(Method::Tun, true, false));
    assert_eq!(o.backup_entries, o.n);
    assert_all_continued_directly(&o);
}

#[test]
fn tun_failover_without_sync_loses_the_connections() {
    if !rvs_lab::require("tun_failover_without_sync_loses_the_connections", TUN_TOOLS) {
        return;
    }
    assert_lost(&failover(
        "synctunoff",
        50,
        &setup(Method::Tun, false, false),
    ));
}

#[test]
fn tun_persistent_clients_keep_their_real_server_after_failover() {
    if !rvs_lab::require(
        "tun_persistent_clients_keep_their_real_server_after_failover",
        TUN_TOOLS,
    ) {
        return;
    }
    assert_same_server(&failover("synctunp", 50, &setup(Method::Tun, true, true)));
}
