//! rvs-health: keepalived-compatible health checking for rvs.
//!
//! * [`config`]: plain, resolved configuration types the daemon fills from keepalived.conf.
//! * [`check`]: one attempt of each checker type (TCP, HTTP/SSL, MISC, SMTP, DNS, UDP, PING).
//! * [`state`]: the pure logic — checker retries (spec §2.3), real server up/down → IPVS
//!   (§2.4), `misc_dynamic` weights (§2.5), quorum/hysteresis/sorry server (§2.6), shutdown
//!   (§2.8) and reload (§2.9) — producing [`Action`]s.
//! * [`engine`]: tokio tasks driving it all: [`HealthEngine::start`] → [`Handle`].
//!
//! Section numbers refer to `spec/keepalived.md`.

pub mod action;
pub mod check;
pub mod config;
pub mod engine;
pub mod error;
pub mod random;
pub mod state;

pub use action::{Action, Notification};
pub use check::{run_check, run_command, CheckContext, CheckSuccess, MiscWeight};
pub use config::*;
pub use engine::{
    validate, CheckerStatus, Handle, HealthEngine, NetProbe, Probe, RsStatus, VsStatus,
};
pub use error::{Error, Result};
pub use random::{Fixed, RandomSource, SplitMix};
