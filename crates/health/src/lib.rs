//! rvs-health: keepalived-compatible health checking for rvs.
//!
//! * [`config`]: plain, resolved configuration types the daemon fills from keepalived.conf.
//! * [`check`]: one attempt of each checker type (TCP, HTTP/SSL, MISC, SMTP, DNS, UDP, PING).
//! * [`state`]: the pure logic — checker retries (docs/internals/keepalived.md#the-retry-machine), real server up/down → IPVS
//!   (docs/internals/keepalived.md#the-retry-machine), `misc_dynamic` weights (docs/internals/keepalived.md#checkers-and-their-timers), quorum/hysteresis/sorry server (docs/internals/keepalived.md#quorum-and-the-sorry-server), shutdown
//!   (docs/internals/keepalived.md#shutdown) and reload (docs/internals/keepalived.md#reload-sighup) — producing [`Action`]s.
//! * [`engine`]: tokio tasks driving it all: [`HealthEngine::start`] → [`Handle`].
//!
//! The behaviour reproduced here is described in docs/internals/keepalived.md.
//!
//! # Mapping keepalived.conf (for the daemon)
//!
//! One [`VirtualServerCheck`] per `virtual_server` block (a `group` VS is one entry with
//! [`VsKey::Group`]; apply its actions to every service of the group, docs/internals/keepalived.md#virtual-servers). Resolve
//! inheritance before filling the types (checker → real server → virtual server → type
//! default via [`CheckerTiming::keepalived_defaults`]): `delay_loop`, `connect_timeout`,
//! `retry`/`nb_get_retry`, `delay_before_retry`, `warmup` (unset = `delay_loop`), `alpha`,
//! `inhibit_on_failure`, `virtualhost` (url → checker → RS → VS; put the first three levels
//! below url into [`HttpCheck::virtualhost`]). `misc_timeout` unset = the VS `delay_loop`.
//! `connect_ip`/`connect_port` default to the real server's address ([`ConnectOpts::to`]).
//! Tokenise `notify_*`/`quorum_*`/`misc_path` with keepalived's quoted tokenizer into
//! [`Command::argv`]; `script_user` defaults are the daemon's to fill into [`Command::user`].
//! `quorum`/`hysteresis` may be given unclamped (the engine clamps as docs/internals/keepalived.md#virtual-servers says).
//! Refuse with a clear message what this crate does not do: `BFD_CHECK`, `FILE_CHECK`, url
//! `regex*`, SMTP_CHECK `host {}` sub-blocks beyond one (make one checker per block).
//! `global_defs { rs_init_notifies }` → [`EngineOptions::rs_init_notifies`]. `ha_suspend`:
//! set [`VirtualServerCheck::suspended`] when the VIP is not local at start and call
//! [`Handle::set_suspended`] as it comes and goes.
//!
//! # Applying actions
//!
//! Apply [`Action`]s in order through the same table-edit path as rvsadm: `AddDest`,
//! `SetWeight` (falls back to add), `RemoveDest`, `DrainDest` (reload removal: drain, then
//! delete), with keepalived's tolerance of "exists"/"not found" (docs/internals/keepalived.md#virtual-servers). Run
//! `RunCommand` asynchronously (e.g. spawn [`run_command`]); write `Notify` to
//! `lvs_notify_fifo` via [`Notification::fifo_line`] and count it in metrics. The daemon
//! creates and deletes the services themselves; the engine only manages destinations.
//! [`Handle::reload`] applies a new config keeping unchanged checkers' state;
//! [`Handle::shutdown`] emits the docs/internals/keepalived.md#shutdown removals (skip them for `--dont-release-ipvs`).

pub mod action;
pub mod check;
pub mod config;
pub mod engine;
pub mod error;
pub mod random;
pub mod state;

pub use action::{Action, Notification};
pub use check::agent::{parse_reply, AgentCounters, AgentReply, MalformedReply};
pub use check::{
    run_as_ids, run_check, run_check_url, run_command, CheckContext, CheckSuccess, MiscWeight,
};
pub use config::*;
pub use engine::{
    validate, CheckerStatus, Handle, HealthEngine, NetProbe, Probe, RsStatus, VsStatus,
};
pub use error::{Error, Result};
pub use random::{Fixed, RandomSource, SplitMix};
