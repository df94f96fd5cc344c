//! The checkers: one async function per type that performs a single check attempt.
//!
//! Retries, spacing and state live in [`crate::state::CheckerState`]; a function here only
//! answers "did this one attempt succeed?".
//!
//! HTTP_GET/SSL_GET fetch one url per attempt ([`run_check_url`]); the url sequencing is
//! [`crate::state::HttpCheckerState`]'s. [`run_check`] fetches them all, for one-off checks.

pub mod agent;
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

pub use misc::{run_as_ids, run_command};

/// Weight reported by a successful MISC_CHECK with `misc_dynamic` (docs/internals/keepalived.md#checkers-and-their-timers).
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
    /// Set only by AGENT_CHECK: the agent's reply (`None` inside: malformed, ignored).
    pub agent: Option<Option<agent::AgentReply>>,
}

/// Shared context of all checkers of an engine: TLS client configs and randomness.
#[derive(Clone)]
pub struct CheckContext {
    pub(crate) random: Arc<dyn RandomSource>,
    pub(crate) tls: http::TlsConfigs,
    pub(crate) agent_counters: Arc<agent::AgentCounters>,
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
            agent_counters: Arc::default(),
        })
    }

    /// Count AGENT_CHECK replies in `counters` (shared with the daemon's metrics).
    pub fn with_agent_counters(mut self, counters: Arc<agent::AgentCounters>) -> Self {
        self.agent_counters = counters;
        self
    }
}

/// Perform one check attempt of `kind`, bounded by `connect_timeout` per network step
/// (MISC_CHECK uses its own `misc_timeout`). For HTTP_GET/SSL_GET only url number `url` is
/// fetched; other checkers ignore `url`.
pub async fn run_check_url(
    kind: &CheckKind,
    url: usize,
    connect_timeout: Duration,
    ctx: &CheckContext,
) -> Result<CheckSuccess> {
    match kind {
        CheckKind::Http(h) => {
            let u = h.urls.get(url).ok_or_else(|| {
                crate::Error::Unsupported(format!("{} has no url number {url}", kind.name()))
            })?;
            http::check_url(h, u, connect_timeout, ctx).await?;
            Ok(CheckSuccess::default())
        }
        _ => run_check(kind, connect_timeout, ctx).await,
    }
}

/// Perform one complete check of `kind` (every url for HTTP_GET/SSL_GET), bounded by
/// `connect_timeout` per network step (MISC_CHECK uses its own `misc_timeout`).
pub async fn run_check(
    kind: &CheckKind,
    connect_timeout: Duration,
    ctx: &CheckContext,
) -> Result<CheckSuccess> {
    let plain = |dynamic| CheckSuccess {
        dynamic,
        agent: None,
    };
    match kind {
        CheckKind::Tcp(o) => tcp::check(o, connect_timeout).await.map(plain),
        CheckKind::Http(h) => http::check(h, connect_timeout, ctx).await.map(plain),
        CheckKind::Misc(m) => misc::check(m).await.map(plain),
        CheckKind::Smtp(s) => smtp::check(s, connect_timeout).await.map(plain),
        CheckKind::Dns(d) => dns::check(d, connect_timeout, ctx).await.map(plain),
        CheckKind::Udp(u) => udp::check(u, connect_timeout).await.map(plain),
        CheckKind::Ping(p) => ping::check(p, connect_timeout, ctx).await.map(plain),
        CheckKind::Agent(a) => {
            let out = agent::check(a, connect_timeout, &ctx.agent_counters).await?;
            Ok(CheckSuccess {
                dynamic: None,
                agent: Some(match out {
                    agent::AgentOutcome::Reply(r) => Some(r),
                    agent::AgentOutcome::Malformed => None,
                }),
            })
        }
    }
}
