//! The VRRP driver: runs the `vrrp_instance` / `vrrp_sync_group` / `vrrp_script` blocks of a
//! keepalived.conf with the sans-IO protocol of `rvs-vrrp` (docs/internals/vrrp.md).
//!
//! One tokio task (`vrrp/driver.rs`) owns every instance and does all protocol work; I/O is at its edges:
//!
//! * **Sockets** ([`socket`]): one raw IPv4 protocol-112 socket per interface with `IP_HDRINCL`
//!   (the protocol crate writes the IP header exactly as keepalived does), bound to the
//!   interface, multicast loop off, joined to the instances' groups. A reader task per socket
//!   forwards packets; the driver demultiplexes by VRID and hands each VRID at most one advert
//!   per read batch, as keepalived does.
//! * **VIPs** ([`netlink`]): rtnetlink `RTM_NEWADDR` / `RTM_DELADDR` with `IFA_LABEL`
//!   (`label eth0:1`), `brd` and `scope`; `virtual_ipaddress_excluded` is handled the same way but
//!   not advertised. The socket proxy listens with `IP_FREEBIND`, so it starts receiving when the
//!   VIP appears and stops when it goes.
//! * **GARP / unsolicited NA**: frames from `rvs_vrrp::garp` (byte-identical to keepalived's)
//!   sent with `rvs_packet_io::afpacket::Sender`, spaced by `vrrp_garp_interval`.
//! * **Link state** (`track_interface` and the instance's own interface): rtnetlink `RTM_GETLINK`
//!   polled every [`LINK_POLL`]; up = `IFF_UP` and `IFF_RUNNING`.
//! * **Scripts** ([`exec`]): each tracked `vrrp_script` runs every `interval` with its `timeout`
//!   (process group killed), results counted with `rvs_vrrp::script::ScriptCounter` (rise/fall).
//! * **Notify**: `notify_<state>` and `notify` (+ `INSTANCE|GROUP name STATE priority`) scripts,
//!   `notify_fifo` / `vrrp_notify_fifo` lines.
//! * **Shutdown** ([`Handle::shutdown`]): every instance resigns (priority-0 advert, VIPs
//!   removed, `notify_stop`) before rvsd exits.
//! * **Reload** ([`Handle::reload`], SIGHUP): instances whose identity is unchanged keep their
//!   state and take the new settings, removed ones resign, new ones start (`vrrp/driver/reload.rs`).
//!
//! Status: [`StatusBoard`] (per instance state, priorities, transitions, adverts sent / received /
//! rejected), rendered into rvsd's Prometheus metrics by [`StatusBoard::render_metrics`] and
//! answered to `rvsadm -L --vrrp` by [`status::answer`] (with the [`InstanceDetail`]s).

mod driver;
pub mod exec;
pub mod netlink;
pub mod setup;
pub mod socket;
pub mod status;

pub use driver::{prepare, start, Handle, PreemptHold, Prepared, LINK_POLL};
pub use status::{InstanceDetail, InstanceStatus, StatusBoard};
