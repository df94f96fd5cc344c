//! The checkers: one async function per type that performs a single check attempt.
//!
//! Retries, spacing and state live in [`crate::state::CheckerState`]; a function here only
//! answers "did this one attempt succeed?".
//!
//! HTTP_GET/SSL_GET with several urls: one attempt fetches every url in order and fails at the
//! first failing one; a retry starts again from the first url. keepalived instead retries only
//! the failing url and, while a server is down, spaces the urls by `delay_loop` unless
//! `fast_recovery` is set (spec §1.7) — so rvs recovers like `fast_recovery` always on and may
//! send a few more requests to urls that already passed.

mod dns;
mod http;
mod misc;
mod net;
mod ping;
mod smtp;
mod tcp;
mod udp;

use std::sync::Arc;
use std::time::Duration;

use crate::config::CheckKind;
use crate::error::Result;
use crate::random::RandomSource;

pub use misc::run_command;

/// Weight reported by a successful MISC_CHECK with `misc_dynamic` (spec §2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MiscWeight {
    /// Exit 0: back to the configured weight.
    Configured,
    /// Exit 2..=255: weight `status − 2`.
    Weight(u32),
}

/// A successful check attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckSuccess {
    /// Set only by MISC_CHECK with `misc_dynamic`.
    pub dynamic: Option<MiscWeight>,
}

/// Shared context of all checkers of an engine: TLS client configs and randomness.
#[derive(Clone)]
pub struct CheckContext {
    pub(crate) random: Arc<dyn RandomSource>,
    pub(crate) tls: http::TlsConfigs,
}

impl std::fmt::Debug for CheckContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckContext").finish_non_exhaustive()
    }
}

impl CheckContext {
    /// A context using `random` for DNS ids and ICMP identifiers.
    pub fn new(random: Arc<dyn RandomSource>) -> Result<Self> {
        Ok(CheckContext {
            random,
            tls: http::TlsConfigs::new()?,
        })
    }
}

/// Perform one check attempt of `kind`, bounded by `connect_timeout` per network step
/// (MISC_CHECK uses its own `misc_timeout`).
pub async fn run_check(
    kind: &CheckKind,
    connect_timeout: Duration,
    ctx: &CheckContext,
) -> Result<CheckSuccess> {
    match kind {
        CheckKind::Tcp(o) => tcp::check(o, connect_timeout).await,
        CheckKind::Http(h) => http::check(h, connect_timeout, ctx).await,
        CheckKind::Misc(m) => misc::check(m).await,
        CheckKind::Smtp(s) => smtp::check(s, connect_timeout).await,
        CheckKind::Dns(d) => dns::check(d, connect_timeout, ctx).await,
        CheckKind::Udp(u) => udp::check(u, connect_timeout).await,
        CheckKind::Ping(p) => ping::check(p, connect_timeout, ctx).await,
    }
    .map(|dynamic| CheckSuccess { dynamic })
}
