//! Keyword handlers: turn the block tree into the typed model, reporting every
//! unknown keyword and every bad value with keepalived's message texts.

mod checkers;
mod global_defs;
mod lvs;
mod vrrp;

use std::net::IpAddr;
use std::time::Duration;

use crate::diag::{Diagnostic, ErrorClass, Pos};
use crate::lexer::{split_quoted_escaped, Token};
use crate::model::*;
use crate::tree::Node;

/// keepalived keywords rvs parses (into the model, with keepalived's checks) but rvsd does not
/// act on: no mail is sent, and VRRP starts without the delay. Each occurrence is reported
/// (see `Config::not_acted_on`). (`static_*` and `virtual_routes`/`virtual_rules` are acted
/// on by rvsd, which warns about the sub-options it cannot install.)
pub const NOT_ACTED_ON: &[&str] = &[
    "vrrp_startup_delay",
    "notification_email",
    "notification_email_from",
    "smtp_server",
    "smtp_helo_name",
    "smtp_connect_timeout",
    "smtp_alert",
    "smtp_alert_vrrp",
    "smtp_alert_checker",
];

/// Parser state: the model being built and the diagnostics.
pub(crate) struct Parser {
    pub diags: Vec<Diagnostic>,
    pub cfg: Config,
    /// Virtual servers before validation (validation may drop some).
    pub raw_vs: Vec<RawVs>,
    /// `vrrp_script`s before validation (those without `script` are dropped).
    pub raw_scripts: Vec<(Pos, String, Option<Script>, VrrpScript)>,
    /// `vrrp_sync_group`s before validation.
    pub raw_groups: Vec<VrrpSyncGroup>,
    /// Instances with whether `virtual_router_id` / `priority` were given.
    pub raw_instances: Vec<RawInstance>,
    /// Next automatic rule preference (keepalived counts down from 16384).
    next_rule_pref: u32,
}

/// A virtual server as written, before defaults and validation.
pub(crate) struct RawVs {
    pub vs: VirtualServer,
    pub protocol: Option<Protocol>,
    pub scheduler: Option<Scheduler>,
    pub method: Option<ForwardMethod>,
    /// Real servers with whether `weight` was written.
    pub rs: Vec<RawRs>,
}

/// A real server with the settings that inherit from the virtual server when
/// not written: (server, weight, method, inhibit_on_failure, alpha).
pub(crate) type RawRs = (
    RealServer,
    Option<u32>,
    Option<ForwardMethod>,
    Option<bool>,
    Option<bool>,
);

/// A VRRP instance as written.
pub(crate) struct RawInstance {
    pub inst: VrrpInstance,
    pub vrid: Option<u8>,
    pub priority: Option<u8>,
    pub version: Option<u8>,
}

/// 4294.967295 s: the range keepalived gives `connect_timeout` and global timers.
const MAX_US: u64 = u32::MAX as u64;
/// keepalived's TIMER_MAXIMUM (ULONG_MAX - 1 µs): `delay_loop`, `delay_before_retry`
/// and `warmup` at every level.
const TIMER_MAX: u64 = u64::MAX - 1;

fn fmt_us(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// Parse a numeric IP address (no host names, like `inet_pton`).
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok()
}

/// `ADDR/LEN` or `ADDR` (default full length).
pub(crate) fn parse_prefix(s: &str) -> Option<Prefix> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr = parse_ip(a)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match l {
        Some(l) => l.parse::<u8>().ok().filter(|&x| x <= max)?,
        None => max,
    };
    Some(Prefix { addr, len })
}

impl Parser {
    pub fn new() -> Self {
        Parser {
            diags: Vec::new(),
            cfg: Config::default(),
            raw_vs: Vec::new(),
            raw_scripts: Vec::new(),
            raw_groups: Vec::new(),
            raw_instances: Vec::new(),
            next_rule_pref: 16384,
        }
    }

    // ----- diagnostics helpers -------------------------------------------------

    pub fn err_at(&mut self, class: ErrorClass, pos: &Pos, msg: impl Into<String>, snip: &str) {
        self.diags
            .push(Diagnostic::new(class, Some(pos.clone()), msg).with_snippet(snip));
    }

    /// Report against a node (its position and line text).
    pub fn err(&mut self, class: ErrorClass, n: &Node, msg: impl Into<String>) {
        let pos = n.head().pos.clone();
        self.diags
            .push(Diagnostic::new(class, Some(pos), msg).with_snippet(&*n.line.source));
    }

    /// Report against word `t` of node `n`.
    fn err_tok(&mut self, class: ErrorClass, n: &Node, t: &Token, msg: impl Into<String>) {
        self.diags
            .push(Diagnostic::new(class, Some(t.pos.clone()), msg).with_snippet(&*n.line.source));
    }

    /// An unknown keyword: always reported; its block (if any) is skipped whole.
    fn unknown(&mut self, n: &Node) {
        if n.is_anonymous() {
            return; // already reported by the tree builder
        }
        // The loops call `no_block` before dispatching; for an unknown keyword the
        // block is part of this message instead.
        if let Some(last) = self.diags.last() {
            if last.class == ErrorClass::UnexpectedBlockStart
                && last.pos.as_ref() == Some(&n.head().pos)
            {
                self.diags.pop();
            }
        }
        let mut msg = format!("Unknown keyword '{}'", n.kw());
        if n.children.is_some() {
            msg.push_str(" (its block is skipped)");
        }
        self.err(ErrorClass::UnknownKeyword, n, msg);
    }

    /// A keyword that takes no block but has one.
    fn no_block(&mut self, n: &Node) {
        // An anonymous block was already reported by the tree builder.
        if n.children.is_some() && !n.is_anonymous() {
            self.err(
                ErrorClass::UnexpectedBlockStart,
                n,
                format!("Unexpected '{{' after '{}' - ignoring the block", n.kw()),
            );
        }
    }

    /// A keyword that needs a block but has none.
    fn need_block(&mut self, n: &Node) -> bool {
        if n.children.is_none() {
            self.err(
                ErrorClass::MissingBlockStart,
                n,
                format!(
                    "Missing '{{' at beginning of configuration block '{}'",
                    n.kw()
                ),
            );
            return false;
        }
        true
    }

    /// Word `i` or keepalived's fatal missing-parameter message.
    fn need<'a>(&mut self, n: &'a Node, i: usize) -> Option<&'a Token> {
        match n.word(i) {
            Some(t) => Some(t),
            None => {
                let kw = n.kw().to_string();
                self.err(
                    ErrorClass::MissingParameter,
                    n,
                    format!("*** Configuration line starting `{kw}` is missing a parameter after keyword `{kw}` at word position {}", i + 1),
                );
                None
            }
        }
    }

    /// Word `i`, or keepalived's non-fatal message for keywords whose handler checks
    /// for the value itself (they do not stop keepalived).
    fn need_or<'a>(&mut self, n: &'a Node, i: usize, msg: &str) -> Option<&'a Token> {
        let t = n.word(i);
        if t.is_none() {
            self.err(ErrorClass::GeneralError, n, msg.to_string());
        }
        t
    }

    /// keepalived's fatal message for a missing word `i` of a line whose first
    /// word is not the keyword (route and rule lines).
    fn missing_after(&mut self, n: &Node, i: usize) {
        let first = n.kw().to_string();
        let prev = n.arg(i.saturating_sub(1)).unwrap_or("").to_string();
        self.err(
            ErrorClass::MissingParameter,
            n,
            format!("*** Configuration line starting `{first}` is missing a parameter after keyword `{prev}` at word position {}", i + 1),
        );
    }

    /// Unsigned integer in `[min, max]` (keepalived `read_unsigned`).
    fn uint_tok(&mut self, n: &Node, t: &Token, min: u64, max: u64) -> Option<u64> {
        let s = t.text.trim_start();
        if s.starts_with('-') {
            self.err_tok(
                ErrorClass::InvalidNumber,
                n,
                t,
                format!("negative number '{}'", t.text),
            );
            return None;
        }
        // strtoul("") is 0 without an error in keepalived.
        let parsed = if s.is_empty() { Ok(0) } else { s.parse() };
        let v: u64 = match parsed {
            Ok(v) => v,
            Err(_) => {
                let is_big = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                let msg = if is_big {
                    format!("number '{}' outside unsigned integer range", t.text)
                } else {
                    format!("invalid number '{}'", t.text)
                };
                self.err_tok(ErrorClass::InvalidNumber, n, t, msg);
                return None;
            }
        };
        if v < min || v > max {
            self.err_tok(
                ErrorClass::InvalidNumber,
                n,
                t,
                format!("number '{}' outside range [{min}, {max}]", t.text),
            );
            return None;
        }
        Some(v)
    }

    fn uint(&mut self, n: &Node, i: usize, min: u64, max: u64) -> Option<u64> {
        let t = self.need(n, i)?;
        self.uint_tok(n, t, min, max)
    }

    /// Signed integer in `[min, max]`.
    fn int_tok(&mut self, n: &Node, t: &Token, min: i64, max: i64) -> Option<i64> {
        match t.text.trim_start().parse::<i64>() {
            Ok(v) if v >= min && v <= max => Some(v),
            Ok(_) => {
                self.err_tok(
                    ErrorClass::InvalidNumber,
                    n,
                    t,
                    format!("number '{}' outside range [{min}, {max}]", t.text),
                );
                None
            }
            Err(_) => {
                self.err_tok(
                    ErrorClass::InvalidNumber,
                    n,
                    t,
                    format!("invalid number '{}'", t.text),
                );
                None
            }
        }
    }

    /// `<TIMER>`: decimal seconds with up to 6 decimals, in `[min_us, max_us]`.
    fn timer_tok(&mut self, n: &Node, t: &Token, min_us: u64, max_us: u64) -> Option<Duration> {
        let s = t.text.trim_start();
        let (ip, fp) = match s.split_once('.') {
            Some((a, b)) => (a, b),
            None => (s, ""),
        };
        // strtod("") is 0 without an error in keepalived, so an empty value is 0.
        let ok = (s.is_empty() || !(ip.is_empty() && fp.is_empty()))
            && ip.bytes().all(|b| b.is_ascii_digit())
            && fp.bytes().all(|b| b.is_ascii_digit());
        if s.starts_with('-') {
            self.err_tok(
                ErrorClass::InvalidNumber,
                n,
                t,
                format!("negative number '{}'", t.text),
            );
            return None;
        }
        if !ok {
            self.err_tok(
                ErrorClass::InvalidNumber,
                n,
                t,
                format!("invalid number '{}'", t.text),
            );
            return None;
        }
        let secs: u64 = if ip.is_empty() {
            0
        } else {
            ip.parse().unwrap_or(u64::MAX)
        };
        let mut frac = String::from(fp);
        let mut round_up = false;
        if frac.len() > 6 {
            self.err_tok(
                ErrorClass::InvalidNumber,
                n,
                t,
                format!("number '{}' has too many decimal places", t.text),
            );
            round_up = frac.as_bytes()[6] >= b'5';
            frac.truncate(6);
        }
        while frac.len() < 6 {
            frac.push('0');
        }
        let us = secs
            .checked_mul(1_000_000)
            .and_then(|v| v.checked_add(frac.parse::<u64>().unwrap_or(0)))
            .and_then(|v| v.checked_add(round_up as u64));
        match us {
            Some(us) if us >= min_us && us <= max_us => Some(Duration::from_micros(us)),
            _ => {
                self.err_tok(
                    ErrorClass::InvalidNumber,
                    n,
                    t,
                    format!(
                        "number '{}' outside range [{}, {}]",
                        t.text,
                        fmt_us(min_us),
                        fmt_us(max_us)
                    ),
                );
                None
            }
        }
    }

    fn timer(&mut self, n: &Node, i: usize, min_us: u64, max_us: u64) -> Option<Duration> {
        let t = self.need(n, i)?;
        self.timer_tok(n, t, min_us, max_us)
    }

    /// `[BOOL]`: absent = true.
    fn opt_bool(&mut self, n: &Node, i: usize) -> Option<bool> {
        match n.word(i) {
            None => Some(true),
            Some(t) => match t.text.as_str() {
                "on" | "true" | "yes" => Some(true),
                "off" | "false" | "no" => Some(false),
                _ => {
                    self.err_tok(
                        ErrorClass::GeneralError,
                        n,
                        t,
                        format!("Invalid {} parameter {}", n.kw(), t.text),
                    );
                    None
                }
            },
        }
    }

    fn ip(&mut self, n: &Node, i: usize) -> Option<IpAddr> {
        let t = self.need(n, i)?;
        match parse_ip(&t.text) {
            Some(a) => Some(a),
            None => {
                self.err_tok(
                    ErrorClass::GeneralError,
                    n,
                    t,
                    format!("Invalid {} address '{}' - ignoring", n.kw(), t.text),
                );
                None
            }
        }
    }

    fn string(&mut self, n: &Node, i: usize) -> Option<String> {
        self.need(n, i).map(|t| t.text.clone())
    }

    fn port_tok(&mut self, n: &Node, t: &Token) -> Option<u16> {
        self.uint_tok(n, t, 1, 65535).map(|v| v as u16)
    }

    /// A script keyword: `KW "CMD ARGS" [user [group]]` (notify style) or
    /// `KW CMD ARGS…` (misc_path/script written unquoted).
    fn script(&mut self, n: &Node, notify_style: bool) -> Option<Script> {
        self.need(n, 1)?;
        let words = split_quoted_escaped(n.line.rest_from(1));
        let Some(first) = words.first() else {
            self.need(n, 99);
            return None;
        };
        let (argv, user, group) = if notify_style || words.len() == 1 {
            (
                split_quoted_escaped(first),
                words.get(1).cloned(),
                words.get(2).cloned(),
            )
        } else {
            (words.clone(), None, None)
        };
        if argv.is_empty() {
            self.err(
                ErrorClass::GeneralError,
                n,
                format!("{} has an empty command - ignoring", n.kw()),
            );
            return None;
        }
        if words.len() > 3 && notify_style {
            self.err(
                ErrorClass::GeneralError,
                n,
                format!(
                    "{}: unexpected words after user and group - ignoring them",
                    n.kw()
                ),
            );
        }
        Some(Script {
            pos: n.head().pos.clone(),
            argv,
            user,
            group,
        })
    }

    /// A keyword of [`NOT_ACTED_ON`]: parsed as usual, and noted in `Config::not_acted_on`.
    fn note_not_acted_on(&mut self, n: &Node, context: &str) {
        if NOT_ACTED_ON.contains(&n.kw()) {
            self.cfg.not_acted_on.push(RawSetting {
                pos: n.head().pos.clone(),
                context: context.to_string(),
                words: n.line.tokens.iter().map(|t| t.text.clone()).collect(),
            });
        }
    }

    fn record_unmodelled(&mut self, n: &Node, context: &str) {
        self.cfg.unmodelled.push(RawSetting {
            pos: n.head().pos.clone(),
            context: context.to_string(),
            words: n.line.tokens.iter().map(|t| t.text.clone()).collect(),
        });
    }

    // ----- top level -------------------------------------------------------------

    pub fn top(&mut self, nodes: &[Node]) {
        for n in nodes {
            self.note_not_acted_on(n, "");
            match n.kw() {
                "global_defs" => {
                    if self.need_block(n) {
                        self.global_defs(n.kids());
                    }
                }
                "virtual_server_group" => self.vsg(n),
                "virtual_server" => self.virtual_server(n),
                "vrrp_instance" => self.vrrp_instance(n),
                "vrrp_sync_group" => self.vrrp_sync_group(n),
                "vrrp_script" => self.vrrp_script(n),
                "static_ipaddress" => {
                    if self.need_block(n) {
                        let v = self.ip_addresses(n.kids(), "static_ipaddress", true);
                        self.cfg.static_ipaddresses.extend(v);
                    }
                }
                "static_routes" => {
                    if self.need_block(n) {
                        let v = self.routes(n.kids(), false);
                        self.cfg.static_routes.extend(v);
                    }
                }
                "static_rules" => {
                    if self.need_block(n) {
                        let v = self.rules(n.kids());
                        self.cfg.static_rules.extend(v);
                    }
                }
                "SSL" => self.ssl(n),
                "BFD_CHECK" => self.unknown(n),
                // keepalived keywords of other subsystems rvs does not run: kept,
                // never silently dropped.
                "linkbeat_use_polling"
                | "net_namespace"
                | "net_namespace_ipvs"
                | "namespace_with_ipsets"
                | "use_pid_dir"
                | "instance"
                | "child_wait_time"
                | "linkbeat_interfaces"
                | "track_group"
                | "track_file"
                | "vrrp_track_file"
                | "vrrp_track_process"
                | "garp_group"
                | "interface_up_down_delays"
                | "bfd_instance" => self.record_unmodelled(n, ""),
                _ => self.unknown(n),
            }
        }
    }

    fn ssl(&mut self, n: &Node) {
        if !self.need_block(n) {
            return;
        }
        let mut ctx = SslContext::default();
        for k in n.kids() {
            self.no_block(k);
            match k.kw() {
                "password" => ctx.password = self.string(k, 1),
                "ca" => ctx.ca = self.string(k, 1),
                "certificate" => ctx.certificate = self.string(k, 1),
                "key" => ctx.key = self.string(k, 1),
                _ => self.unknown(k),
            }
        }
        self.cfg.ssl = Some(ctx);
    }
}
