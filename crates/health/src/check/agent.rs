//! AGENT_CHECK: HAProxy's agent protocol (docs/guide/load-aware.md#the-agent-check).
//!
//! The checker connects to the agent port of the real server and reads one line, which the
//! server's own agent writes from what it knows about its load: `75%`, `drain`, `up`, `down`,
//! `maint`, … (words may be combined, separated by spaces, tabs or commas). Why an agent: only
//! the real server knows its load; keepalived's nearest tool (`MISC_CHECK misc_dynamic`) forks a
//! program per check on the director instead.
//!
//! [`parse_reply`] is pure (and fuzzed): it never panics and refuses, as a whole, a line with a
//! word it does not know, so that a garbled answer changes nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::net;
use crate::config::AgentCheck;
use crate::error::{Error, Result};

/// Longest agent line read; a longer one is malformed (HAProxy reads one small buffer too).
pub const MAX_REPLY: usize = 512;

/// Largest percentage accepted in a reply (the weight is bounded by `max_weight` afterwards).
pub const MAX_PERCENT: u32 = 100_000;

/// Administrative word of a reply: what the operator of the real server wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentAdmin {
    /// `ready`: leave drain mode.
    Ready,
    /// `drain`: weight 0, open connections kept.
    Drain,
    /// `maint`: out of service, like a failed check.
    Maint,
}

/// One parsed agent line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgentReply {
    /// `N%`: weight relative to the configured weight (last one wins).
    pub percent: Option<u32>,
    /// `ready` / `drain` / `maint` (last one wins).
    pub admin: Option<AgentAdmin>,
    /// `up` (`Some(true)`) or `down`/`fail`/`stopped` (`Some(false)`); last one wins.
    pub up: Option<bool>,
    /// `maxconn:N`: accepted for compatibility with HAProxy agents and not acted on.
    pub maxconn: Option<u32>,
}

impl AgentReply {
    /// The reply takes the server out of service (`down`, `fail`, `stopped`, `maint`).
    pub fn takes_out(&self) -> bool {
        self.up == Some(false) || self.admin == Some(AgentAdmin::Maint)
    }
}

/// Why a line is not a valid agent reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MalformedReply {
    /// Nothing but blanks (or a comment) before the end of the line.
    Empty,
    /// Not UTF-8 text.
    NotText,
    /// A word that is not part of the protocol (at most 32 bytes of it kept).
    UnknownWord(String),
    /// `N%` with N not an integer in `0..=MAX_PERCENT`.
    BadPercent(String),
}

impl std::fmt::Display for MalformedReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MalformedReply::Empty => f.write_str("empty agent reply"),
            MalformedReply::NotText => f.write_str("agent reply is not text"),
            MalformedReply::UnknownWord(w) => write!(f, "unknown word {w:?} in agent reply"),
            MalformedReply::BadPercent(w) => write!(f, "bad percentage {w:?} in agent reply"),
        }
    }
}

fn clip(w: &str) -> String {
    w.chars().take(32).collect()
}

/// Parse one agent line (without or with its `\r\n`/`\n`). Words are separated by spaces, tabs
/// or commas and are case-insensitive; `#` starts a comment that runs to the end of the line
/// (HAProxy agents put a reason there: `down#disk full`).
pub fn parse_reply(line: &[u8]) -> std::result::Result<AgentReply, MalformedReply> {
    let line = match line.iter().position(|&b| b == b'\n') {
        Some(i) => &line[..i],
        None => line,
    };
    let text = std::str::from_utf8(line).map_err(|_| MalformedReply::NotText)?;
    let text = text.split('#').next().unwrap_or("");
    let mut r = AgentReply::default();
    let mut words = 0;
    for w in text.split([' ', '\t', ',', '\r']).filter(|w| !w.is_empty()) {
        words += 1;
        let lower = w.to_ascii_lowercase();
        if let Some(num) = lower.strip_suffix('%') {
            let p = num
                .parse::<u32>()
                .ok()
                .filter(|p| *p <= MAX_PERCENT && num.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| MalformedReply::BadPercent(clip(w)))?;
            r.percent = Some(p);
            continue;
        }
        if let Some(n) = lower.strip_prefix("maxconn:") {
            let v = n
                .parse::<u32>()
                .ok()
                .filter(|_| n.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| MalformedReply::UnknownWord(clip(w)))?;
            r.maxconn = Some(v);
            continue;
        }
        match lower.as_str() {
            "up" => r.up = Some(true),
            "down" | "fail" | "failed" | "stopped" => r.up = Some(false),
            "ready" => r.admin = Some(AgentAdmin::Ready),
            "drain" => r.admin = Some(AgentAdmin::Drain),
            "maint" => r.admin = Some(AgentAdmin::Maint),
            _ => return Err(MalformedReply::UnknownWord(clip(w))),
        }
    }
    if words == 0 {
        return Err(MalformedReply::Empty);
    }
    Ok(r)
}

/// What a successful agent check tells the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentOutcome {
    /// A valid reply that keeps the server in service.
    Reply(AgentReply),
    /// The agent answered something that is not a reply: counted, and the weight is unchanged.
    Malformed,
}

/// Agent replies by what they did, for the metrics endpoint
/// (`rvs_health_agent_replies_total{reply=…}`). Shared by every AGENT_CHECK of an engine.
#[derive(Debug, Default)]
pub struct AgentCounters {
    counts: [AtomicU64; AGENT_LABELS.len()],
}

/// Labels of [`AgentCounters`], in order.
pub const AGENT_LABELS: [&str; 6] = ["weight", "drain", "ready", "up", "down", "malformed"];

impl AgentCounters {
    fn count(&self, label: &str) {
        if let Some(i) = AGENT_LABELS.iter().position(|l| *l == label) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count one reply under the label that says what it did (a reply carrying several words
    /// counts once: taken out > drain > weight > ready > up).
    pub fn record(&self, r: std::result::Result<&AgentReply, &MalformedReply>) {
        let l = match r {
            Err(_) => "malformed",
            Ok(r) if r.takes_out() => "down",
            Ok(r) if r.admin == Some(AgentAdmin::Drain) => "drain",
            Ok(r) if r.percent.is_some() => "weight",
            Ok(r) if r.admin == Some(AgentAdmin::Ready) => "ready",
            Ok(_) => "up",
        };
        self.count(l);
    }

    /// (label, count) pairs.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        AGENT_LABELS
            .iter()
            .zip(&self.counts)
            .map(|(l, c)| (*l, c.load(Ordering::Relaxed)))
            .collect()
    }
}

/// One agent check: connect, optionally send `send`, read one line within `timeout`.
/// A reply that takes the server out is an error (a failed check); a malformed one is a
/// success that changes nothing.
pub(crate) async fn check(
    a: &AgentCheck,
    timeout: Duration,
    counters: &AgentCounters,
) -> Result<AgentOutcome> {
    let mut stream = net::tcp_connect(&a.connect, timeout).await?;
    if let Some(s) = &a.send {
        use tokio::io::AsyncWriteExt;
        net::step(timeout, "agent send", stream.write_all(s.as_bytes())).await?;
    }
    let mut buf = [0u8; MAX_REPLY];
    let mut len = 0;
    // Read until the end of the line, the agent closes, or the buffer is full.
    let read = async {
        while len < buf.len() && !buf[..len].contains(&b'\n') {
            let n = stream.read(&mut buf[len..]).await?;
            if n == 0 {
                break;
            }
            len += n;
        }
        Ok::<_, std::io::Error>(())
    };
    net::step(timeout, "agent reply", read).await?;
    let full_without_eol = len == buf.len() && !buf.contains(&b'\n');
    let parsed = if full_without_eol {
        Err(MalformedReply::UnknownWord("(line too long)".into()))
    } else {
        parse_reply(&buf[..len])
    };
    counters.record(parsed.as_ref());
    match parsed {
        Ok(r) if r.takes_out() => Err(Error::Agent(format!(
            "agent says {}",
            String::from_utf8_lossy(&buf[..len]).trim_end()
        ))),
        Ok(r) => Ok(AgentOutcome::Reply(r)),
        Err(e) => {
            tracing::debug!(target = %a.connect.connect, "ignored: {e}");
            Ok(AgentOutcome::Malformed)
        }
    }
}

/// The percentage an agent checker currently asks for, remembered between replies so that
/// `ready` after `drain` returns to the last percentage, as in HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentMemory {
    /// Last `N%` (100 until one is received).
    pub percent: u32,
    /// In drain mode (`drain` seen, no `ready` since).
    pub drained: bool,
}

impl Default for AgentMemory {
    fn default() -> Self {
        AgentMemory {
            percent: 100,
            drained: false,
        }
    }
}

impl AgentMemory {
    /// Fold a valid reply in; returns the percentage now in force (0 while drained).
    pub fn apply(&mut self, r: &AgentReply) -> u32 {
        if let Some(p) = r.percent {
            self.percent = p;
        }
        match r.admin {
            Some(AgentAdmin::Drain) => self.drained = true,
            Some(AgentAdmin::Ready) => self.drained = false,
            _ => {}
        }
        if self.drained {
            0
        } else {
            self.percent
        }
    }
}

/// The weight for `percent` of `configured`, rounded to nearest, within `[min, max]`
/// (`percent == 0` from `drain` is handled by the caller: drain is always weight 0).
pub fn scaled_weight(configured: u32, percent: u32, min: u32, max: u32) -> u32 {
    let w = (u64::from(configured) * u64::from(percent) + 50) / 100;
    let w = u32::try_from(w).unwrap_or(u32::MAX);
    w.clamp(min.min(max), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> AgentReply {
        parse_reply(s.as_bytes()).unwrap()
    }

    #[test]
    fn single_words() {
        assert_eq!(ok("75%\n").percent, Some(75));
        assert_eq!(ok("drain\r\n").admin, Some(AgentAdmin::Drain));
        assert_eq!(ok("READY").admin, Some(AgentAdmin::Ready));
        assert_eq!(ok("up").up, Some(true));
        for w in ["down", "fail", "stopped", "maint", "down#disk full"] {
            assert!(ok(w).takes_out(), "{w}");
        }
    }

    #[test]
    fn combined_words_last_wins() {
        let r = ok("up 50%, ready\tmaxconn:30 # fine");
        assert_eq!(r.percent, Some(50));
        assert_eq!(r.admin, Some(AgentAdmin::Ready));
        assert_eq!(r.up, Some(true));
        assert_eq!(r.maxconn, Some(30));
        assert_eq!(ok("10% 20%").percent, Some(20));
        assert!(!ok("down up").takes_out());
    }

    #[test]
    fn malformed() {
        assert_eq!(parse_reply(b""), Err(MalformedReply::Empty));
        assert_eq!(parse_reply(b" \r\n"), Err(MalformedReply::Empty));
        assert_eq!(parse_reply(b"# nothing"), Err(MalformedReply::Empty));
        assert!(matches!(
            parse_reply(b"75"),
            Err(MalformedReply::UnknownWord(_))
        ));
        for p in ["-5%", "+5%", "%", "1.5%", "100001%", "99999999999999%"] {
            assert!(
                matches!(
                    parse_reply(p.as_bytes()),
                    Err(MalformedReply::BadPercent(_))
                ),
                "{p}"
            );
        }
        assert_eq!(parse_reply(b"\xff%"), Err(MalformedReply::NotText));
        assert!(parse_reply(b"up maxconn:x").is_err());
        // Only the first line counts.
        assert_eq!(ok("50%\ngarbage").percent, Some(50));
    }

    #[test]
    fn memory_drain_ready_percent() {
        let mut m = AgentMemory::default();
        assert_eq!(m.apply(&ok("up")), 100);
        assert_eq!(m.apply(&ok("50%")), 50);
        assert_eq!(m.apply(&ok("drain")), 0);
        assert_eq!(m.apply(&ok("up")), 0, "up does not leave drain");
        assert_eq!(m.apply(&ok("80%")), 0, "a percentage does not leave drain");
        assert_eq!(m.apply(&ok("ready")), 80);
    }

    #[test]
    fn scaling_and_bounds() {
        assert_eq!(scaled_weight(10, 50, 0, 10), 5);
        assert_eq!(scaled_weight(3, 50, 0, 3), 2, "rounded to nearest");
        assert_eq!(scaled_weight(10, 200, 0, 10), 10, "capped at max");
        assert_eq!(scaled_weight(10, 200, 0, 40), 20);
        assert_eq!(scaled_weight(10, 1, 2, 10), 2, "raised to min");
        assert_eq!(scaled_weight(u32::MAX, MAX_PERCENT, 0, u32::MAX), u32::MAX);
    }

    #[test]
    fn counters_label_by_effect() {
        let c = AgentCounters::default();
        c.record(Ok(&ok("50% drain")));
        c.record(Ok(&ok("50%")));
        c.record(Ok(&ok("maint 50%")));
        c.record(Err(&MalformedReply::Empty));
        let s: std::collections::HashMap<_, _> = c.snapshot().into_iter().collect();
        assert_eq!(
            (s["drain"], s["weight"], s["down"], s["malformed"]),
            (1, 1, 1, 1)
        );
    }
}
