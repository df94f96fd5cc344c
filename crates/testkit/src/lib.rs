//! # rvs-testkit: the end-to-end test harness
//!
//! One place for what every end-to-end test of rvs needs, so the tests read as scenarios:
//!
//! * [`Rvsd`]: the daemon as a real process — on the host's loopback or inside an rvs-lab
//!   namespace, with rvsadm commands, a `keepalived.conf`, or `--interface` packet-plane
//!   options — its control socket and log in the test's directory, driven with rvsadm's own
//!   code ([`rvsadm_lib`]).
//! * [`start_nginx`]: nginx real servers (rvs-lab's [`Nginx`], the one launcher the labs use
//!   too).
//! * [`curl`], [`curl_ok`], [`curl_get`], [`Download`], [`ClientLoop`]: real clients.
//! * [`CountingHttp`]: a real server counting connections and requests (server-connection
//!   reuse tests).
//! * [`PacketPath`]: AF_PACKET or XDP, the packet-plane mode `RVS_TEST_XDP` asks for; every
//!   rvsd started with `--interface` runs in it unless the test passed `--xdp`.
//! * [`wait_until`], [`wait_for`]: bounded polling; [`Proc`]: a process group killed on drop.
//! * [`Etcd`], [`Dockerd`]: a real etcd and a real dockerd (own data, ports or socket and
//!   bridge), stopped on drop, for the discovery tests.
//! * [`failover`]: an HA pair of directors with connection sync (NAT, FULLNAT, DR, TUN),
//!   long-lived clients and a lost MASTER, for the sync end-to-end tests.
//! * [`SyncLink`]: two namespaces on one veth and a multicast sender, for the sync daemon
//!   tests.
//! * [`EchoStreams`]: connections streaming numbered lines through a failover, with the
//!   largest gap each one saw.
//! * [`parse_conns`], [`parse_stats`], [`parse_dests`]: rvsadm listings.
//! * [`require!`] (programs), [`require_root!`] (root): skip with the reason outside CI, fail
//!   under CI (`RVS_REQUIRE_ALL=1` from `.ci/run`, or `CI=true`); the decision is rvs-require's,
//!   re-exported here.
//!
//! Every process dies with its guard (also when the test panics), every wait is bounded.

pub mod agent;
pub mod client;
pub mod counting_http;
pub mod docker;
pub mod etcd;
pub mod failover;
pub mod ha;
pub mod listing;
pub mod packet_path;
pub mod proc;
pub mod rvsd;
pub mod slow_http;
pub mod stream;
pub mod sync_link;
pub mod wait;

pub use agent::Agent;
pub use client::{
    curl, curl_get, curl_in, curl_in_ok, curl_ok, download_in, pattern, report, write_pattern,
    ClientLoop, Download,
};
pub use counting_http::CountingHttp;
pub use docker::Dockerd;
pub use etcd::Etcd;
pub use listing::{parse_conns, parse_dests, parse_stats, stat, ConnLine, StatLine};
pub use packet_path::{Forwards, PacketPath};
pub use proc::{run_bounded, Proc};
pub use rvs_lab::{in_ci, is_root, require, require_root, Listen, Netns, Nginx, Site};
pub use rvs_require::{require_root, require_that, require_tools, which};
pub use rvsd::{rvsadm_exe, rvsadm_lib, wait_plane_ready, Adm, Rvsd};
pub use slow_http::SlowHttp;
pub use stream::{EchoStreams, StreamReport};
pub use sync_link::SyncLink;
pub use wait::{tempdir, wait, wait_for, wait_until};

use std::path::Path;

/// Stop the test unless every program in the list is installed: skipped with the reason
/// outside CI, a failure under CI (see rvs-require's `require_tools!`).
#[macro_export]
macro_rules! require {
    ($($prog:expr),+ $(,)?) => {
        $crate::require_tools!($($prog),+);
    };
}

/// Starts nginx on the host serving `sites` (files in `dir/nginx-<first site>/`); `big`
/// writes `/big.bin` of that many bytes into every site's root. Returns once every site
/// accepts connections.
///
/// # Panics
/// If nginx cannot start (the test checked with [`require!`] that it is installed).
pub fn start_nginx(dir: &Path, sites: &[Site], big: Option<usize>) -> Nginx {
    start_nginx_in(None, dir, sites, big)
}

/// [`start_nginx`] inside a namespace (`None`: the host).
///
/// # Panics
/// If nginx cannot start.
pub fn start_nginx_in(ns: Option<&Netns>, dir: &Path, sites: &[Site], big: Option<usize>) -> Nginx {
    let first = sites.first().expect("at least one site");
    let tag = match first.listen {
        Listen::Port(p) => format!("port-{p}"),
        Listen::Addr(a) => format!("{}-{}", a.ip(), a.port()),
    };
    let dir = dir.join(format!("nginx-{tag}"));
    if let Some(n) = big {
        for s in sites {
            let root = rvs_lab::nginx::site_root(&dir, s);
            std::fs::create_dir_all(&root).expect("nginx root");
            write_pattern(&root.join("big.bin"), n);
        }
    }
    Nginx::start(ns, &dir, sites).unwrap_or_else(|e| panic!("nginx: {e}"))
}
