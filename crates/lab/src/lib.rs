//! # rvs-lab: network-namespace topologies for rvs
//!
//! Tests, benchmarks and demos of the rvs data planes need the networks LVS runs in: a client, a
//! director, real servers, sometimes a router or a second director. This crate builds them out
//! of network namespaces, veth pairs and bridges by driving `ip` (iproute2) — every step is a
//! command a person could type — and removes them again:
//!
//! * [`Lab`] owns namespaces named `<prefix>-<role>` (prefix unique per test and process, so
//!   tests run in parallel) and deletes them in `Drop`, also while a test panics; it kills the
//!   processes inside first. [`cleanup_stale`] and [`cleanup_orphans`] remove leftovers of runs
//!   that were killed.
//! * [`Netns`] runs commands inside a namespace ([`NsCommand`], always with a deadline), spawns
//!   long-running processes that die with their handle ([`NsChild`]; nginx with a generated
//!   config via [`Netns::nginx`]), runs Rust closures inside it ([`Netns::exec`]), waits for
//!   ports, reads MACs, sets sysctls, addresses and routes.
//! * [`topo`] builds the topologies: [`nat`], [`dr`], [`tun()`], [`fullnat`], [`selftest`] (the
//!   kernel's `ipvs.sh`) and [`ha`], each a [`Topology`] describing names, addresses and MACs;
//!   [`nat_dual`] and [`tun_dual`] are the NAT and TUN labs with an IPv6 layer
//!   ([`Topology::add_ipv6`]); [`LabKind::HaDr`] and [`LabKind::HaTun`] are HA pairs whose real
//!   servers answer the client through a router ([`Topology::build`]).
//! * [`decap`] is a userspace IPIP/GRE/GUE decapsulator on a TUN device for the TUN lab's real
//!   servers, because **this kernel has no ipip/gre/fou modules** (see its module docs for how
//!   it works).
//!
//! Everything except the pure helpers needs root. Tests start with
//! `rvs_require::require_root!()` (the rvs-require crate), which skips with the reason
//! outside CI and fails the test under CI.
//!
//! ```no_run
//! use std::time::Duration;
//! use rvs_lab::{Protocol, Result};
//!
//! fn nat_lab_baseline() -> Result<()> {
//!     if !rvs_lab::is_root() {
//!         return Ok(());
//!     }
//!     let mut t = rvs_lab::nat("nat_lab_baseline")?; // removed when `t` drops, even on panic
//!     t.start_nginx()?; // rs1, rs2 serve "rs1\n" / "rs2\n" on port 80
//!     let rs1 = t.real_servers()[0].addr().unwrap();
//!     let page = t
//!         .client()
//!         .ns
//!         .cmd("curl")
//!         .args(["-sS", "--max-time", "3", &format!("http://{rs1}/")])
//!         .run()?;
//!     assert_eq!(page, "rs1\n");
//!     t.director().ns.wait_for_port(Protocol::Tcp, 22, Duration::from_millis(1)).ok();
//!     Ok(())
//! }
//! ```

#![warn(missing_docs)]

pub mod cmd;
pub mod decap;
pub mod delay;
pub mod ecmp;
pub mod error;
pub mod netns;
pub mod nginx;
pub mod sink;
pub mod tools;
pub mod topo;
pub mod trafficgen;
pub mod walkthrough;

pub use cmd::{NsChild, NsCommand, Output, DEFAULT_TIMEOUT};
pub use decap::{DecapConfig, DecapCounters, Decapsulator};
pub use delay::{DelayConfig, OutputDelay};
pub use error::{LabError, Result};
pub use netns::{
    cleanup_orphans, cleanup_stale, is_root, list_namespaces, socat_transfer, Lab, MacAddr, Netns,
    CLI_PREFIX, TEST_PREFIX,
};
pub use nginx::{Listen, Nginx, Site};
/// The workspace's transport-protocol type, re-exported for the lab's callers.
pub use rvs_core::Protocol;
pub use tools::{in_ci, require, require_root, which};
pub use topo::{
    dr, fullnat, ha, nat, nat_dual, selftest, tun, tun_dual, BuildOptions, Iface, Ipv6Layer,
    LabKind, Node, SelftestMode, Topology,
};
pub use walkthrough::{parse_walkthrough, Step, ECMP_CURLS, TRY_IT};
