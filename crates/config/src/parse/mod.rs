//! Keyword handlers: turn the block tree into the typed model, reporting every
//! unknown keyword and every bad value with keepalived's message texts.

use std::net::IpAddr;
use std::time::Duration;

use crate::diag::{Diagnostic, ErrorClass, Pos};
use crate::lexer::{split_quoted_escaped, Token};
use crate::model::*;
use crate::tree::Node;

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

    // ----- global_defs -----------------------------------------------------------

    fn global_defs(&mut self, kids: &[Node]) {
        for n in kids {
            if n.kw() != "notification_email" {
                self.no_block(n);
            }
            let mut g = std::mem::take(&mut self.cfg.global);
            match n.kw() {
                "router_id" => {
                    if let Some(t) = self.need_or(n, 1, "routerid name missing - ignoring") {
                        g.router_id = Some(t.text.clone())
                    }
                }
                "notification_email" => {
                    if n.children.is_some() {
                        for k in n.kids() {
                            g.notification_email
                                .extend(k.line.tokens.iter().map(|t| t.text.clone()));
                        }
                        if n.kids().is_empty() {
                            self.err(
                                ErrorClass::Warning,
                                n,
                                "Warning - empty notification_email block",
                            );
                        }
                    } else {
                        // keepalived logs "'{' missing from beginning of block"
                        self.err(
                            ErrorClass::MissingBlockStart,
                            n,
                            "'{' missing from beginning of block notification_email",
                        );
                    }
                }
                "notification_email_from" => {
                    if let Some(t) = self.need_or(n, 1, "emailfrom missing - ignoring") {
                        g.notification_email_from = Some(t.text.clone())
                    }
                }
                "smtp_server" => {
                    if let Some(a) = self.ip(n, 1) {
                        let port = match n.word(2) {
                            Some(t) => self.port_tok(n, t).unwrap_or(25),
                            None => 25,
                        };
                        g.smtp_server = Some((a, port));
                    }
                }
                "smtp_helo_name" => g.smtp_helo_name = self.string(n, 1),
                "smtp_connect_timeout" => {
                    g.smtp_connect_timeout = self.uint(n, 1, 0, 4294).map(Duration::from_secs);
                    if g.smtp_connect_timeout.is_none() && n.len() > 1 {
                        let v = n.arg(1).unwrap_or("");
                        self.err(
                            ErrorClass::GeneralError,
                            n,
                            format!("smtp_connect_timeout '{v}' must be in [0, 4294] - ignoring"),
                        );
                    }
                }
                "smtp_alert" => g.smtp_alert = self.opt_bool(n, 1),
                "smtp_alert_vrrp" => g.smtp_alert_vrrp = self.opt_bool(n, 1),
                "smtp_alert_checker" => g.smtp_alert_checker = self.opt_bool(n, 1),
                "checker_log_all_failures" => {
                    g.checker_log_all_failures = self.opt_bool(n, 1).unwrap_or(false)
                }
                "default_interface" => {
                    if let Some(t) = self.need_or(n, 1, "default_interface requires interface name")
                    {
                        g.default_interface = t.text.clone()
                    }
                }
                "vrrp_mcast_group4" => match self.ip(n, 1) {
                    Some(IpAddr::V4(a)) if a.is_multicast() => g.vrrp_mcast_group4 = a,
                    Some(_) => self.err(
                        ErrorClass::GeneralError,
                        n,
                        "vrrp_mcast_group4 must be an IPv4 multicast address - ignoring",
                    ),
                    None => {}
                },
                "vrrp_mcast_group6" => match self.ip(n, 1) {
                    Some(IpAddr::V6(a)) if a.is_multicast() => g.vrrp_mcast_group6 = a,
                    Some(_) => self.err(
                        ErrorClass::GeneralError,
                        n,
                        "vrrp_mcast_group6 must be an IPv6 multicast address - ignoring",
                    ),
                    None => {}
                },
                "vrrp_version" => {
                    if let Some(v) = self.uint(n, 1, 2, 3) {
                        g.vrrp_version = v as u8
                    } else if n.len() > 1 {
                        self.err(
                            ErrorClass::GeneralError,
                            n,
                            format!("vrrp_version '{}' must be 2 or 3", n.arg(1).unwrap_or("")),
                        );
                    }
                }
                "vrrp_garp_master_delay" => {
                    if let Some(v) = self.uint(n, 1, 0, 3600) {
                        g.vrrp_garp_master_delay = Duration::from_secs(v)
                    }
                }
                "vrrp_garp_master_repeat" => {
                    if let Some(v) = self.uint(n, 1, 0, 3600) {
                        g.vrrp_garp_master_repeat = v as u32
                    }
                }
                "vrrp_garp_lower_prio_delay" => {
                    g.vrrp_garp_lower_prio_delay = self.uint(n, 1, 0, 3600).map(Duration::from_secs)
                }
                "vrrp_garp_lower_prio_repeat" => {
                    g.vrrp_garp_lower_prio_repeat = self.uint(n, 1, 0, 3600).map(|v| v as u32)
                }
                "vrrp_garp_master_refresh" => {
                    if let Some(v) = self.uint(n, 1, 0, u32::MAX as u64) {
                        g.vrrp_garp_master_refresh = Duration::from_secs(v)
                    }
                }
                "vrrp_garp_master_refresh_repeat" => {
                    if let Some(v) = self.uint(n, 1, 1, u32::MAX as u64) {
                        g.vrrp_garp_master_refresh_repeat = v as u32
                    }
                }
                // keepalived 2.2.7 rejects an explicit 0 here although 0 is the
                // documented default; rvs accepts 0 (docs/keepalived-differences.md).
                "vrrp_garp_interval" => {
                    if let Some(v) = self.timer(n, 1, 0, MAX_US) {
                        g.vrrp_garp_interval = v
                    } else if n.len() > 1 {
                        self.err(
                            ErrorClass::GeneralError,
                            n,
                            format!("vrrp_garp_interval '{}' is invalid", n.arg(1).unwrap_or("")),
                        );
                    }
                }
                "vrrp_gna_interval" => {
                    if let Some(v) = self.timer(n, 1, 0, MAX_US) {
                        g.vrrp_gna_interval = v
                    } else if n.len() > 1 {
                        self.err(
                            ErrorClass::GeneralError,
                            n,
                            format!("vrrp_gna_interval '{}' is invalid", n.arg(1).unwrap_or("")),
                        );
                    }
                }
                "vrrp_min_garp" => g.vrrp_min_garp = self.opt_bool(n, 1).unwrap_or(false),
                "vrrp_down_timer_adverts" => {
                    if let Some(v) = self.uint(n, 1, 1, 100) {
                        g.vrrp_down_timer_adverts = v as u32
                    }
                }
                "vrrp_lower_prio_no_advert" => g.vrrp_lower_prio_no_advert = self.opt_bool(n, 1),
                "vrrp_higher_prio_send_advert" => {
                    g.vrrp_higher_prio_send_advert = self.opt_bool(n, 1).unwrap_or(false)
                }
                "vrrp_check_unicast_src" => g.vrrp_check_unicast_src = true,
                "vrrp_skip_check_adv_addr" => {
                    g.vrrp_skip_check_adv_addr = self.opt_bool(n, 1).unwrap_or(true)
                }
                "vrrp_strict" => g.vrrp_strict = true,
                "vrrp_startup_delay" => {
                    if let Some(v) = self.timer(n, 1, 0, MAX_US) {
                        g.vrrp_startup_delay = v
                    }
                }
                "lvs_sync_daemon" => g.lvs_sync_daemon = self.lvs_sync_daemon(n),
                "lvs_timeouts" => self.lvs_timeouts(n, &mut g.lvs_timeouts),
                "lvs_flush" => g.lvs_flush = true,
                "lvs_flush_on_stop" => {
                    g.lvs_flush_on_stop = match n.arg(1) {
                        None => Some(FlushOnStop::All),
                        Some("VS") => Some(FlushOnStop::VirtualServers),
                        Some(o) => {
                            self.err(
                                ErrorClass::GeneralError,
                                n,
                                format!("Unknown lvs_flush_on_stop type {o}"),
                            );
                            None
                        }
                    }
                }
                "notify_fifo" => g.notify_fifo = self.script(n, true),
                "vrrp_notify_fifo" => g.vrrp_notify_fifo = self.script(n, true),
                "lvs_notify_fifo" => g.lvs_notify_fifo = self.script(n, true),
                "script_user" => {
                    if let Some(u) = self.need_or(n, 1, "No script username specified") {
                        g.script_user = Some((u.text.clone(), n.arg(2).map(str::to_string)))
                    }
                }
                "enable_script_security" => g.enable_script_security = true,
                "dynamic_interfaces" => g.dynamic_interfaces = true,
                "reload_check_config" => g.reload_check_config = Some(n.arg(1).map(str::to_string)),
                kw if GLOBAL_UNMODELLED.contains(&kw) => self.record_unmodelled(n, "global_defs"),
                _ => self.unknown(n),
            }
            self.cfg.global = g;
        }
    }

    fn lvs_timeouts(&mut self, n: &Node, t: &mut LvsTimeouts) {
        let mut i = 1;
        if n.len() < 2 {
            self.need(n, 1);
            return;
        }
        while i < n.len() {
            let kw = n.arg(i).unwrap_or("");
            let slot = match kw {
                "tcp" => &mut t.tcp,
                "tcpfin" => &mut t.tcpfin,
                "udp" => &mut t.udp,
                _ => {
                    self.err(
                        ErrorClass::GeneralError,
                        n,
                        format!("Unknown option {kw} specified for lvs_timeouts"),
                    );
                    i += 1;
                    continue;
                }
            };
            match n.word(i + 1) {
                Some(tok) => {
                    let tok = tok.clone();
                    if let Some(v) = self.uint_tok(n, &tok, 1, 86400 * 31) {
                        *slot = Some(Duration::from_secs(v));
                    }
                }
                None => self.err(
                    ErrorClass::GeneralError,
                    n,
                    format!("No value specified for lvs_timeout {kw} - ignoring"),
                ),
            }
            i += 2;
        }
    }

    fn lvs_sync_daemon(&mut self, n: &Node) -> Option<LvsSyncDaemon> {
        let interface = self
            .need_or(n, 1, "lvs_sync_daemon requires interface")?
            .text
            .clone();
        let mut d = LvsSyncDaemon {
            pos: n.head().pos.clone(),
            interface,
            instance: None,
            sync_id: None,
            maxlen: None,
            port: 8848,
            ttl: None,
            group: IpAddr::V4(std::net::Ipv4Addr::new(224, 0, 0, 81)),
        };
        let mut i = 2;
        while i < n.len() {
            let w = n.arg(i).unwrap_or("").to_string();
            let val = n.word(i + 1).cloned();
            let take_val = |p: &mut Parser| -> Option<Token> {
                if val.is_none() {
                    p.err(
                        ErrorClass::GeneralError,
                        n,
                        format!("lvs_sync_daemon: no value after '{w}'"),
                    );
                }
                val.clone()
            };
            match w.as_str() {
                "id" => {
                    if let Some(t) = take_val(self) {
                        d.sync_id = self.uint_tok(n, &t, 0, 255).map(|v| v as u8);
                    }
                    i += 2;
                }
                "maxlen" => {
                    if let Some(t) = take_val(self) {
                        d.maxlen = self.uint_tok(n, &t, 1, 65507).map(|v| v as u16);
                    }
                    i += 2;
                }
                "port" => {
                    if let Some(t) = take_val(self) {
                        if let Some(p) = self.port_tok(n, &t) {
                            d.port = p;
                        }
                    }
                    i += 2;
                }
                "ttl" => {
                    if let Some(t) = take_val(self) {
                        d.ttl = self.uint_tok(n, &t, 1, 255).map(|v| v as u8);
                    }
                    i += 2;
                }
                "group" => {
                    if let Some(t) = take_val(self) {
                        match parse_ip(&t.text) {
                            Some(a) if a.is_multicast() => d.group = a,
                            _ => self.err_tok(
                                ErrorClass::GeneralError,
                                n,
                                &t,
                                format!(
                                    "lvs_sync_daemon group address {} is not a multicast address",
                                    t.text
                                ),
                            ),
                        }
                    }
                    i += 2;
                }
                "inst" => {
                    if let Some(t) = take_val(self) {
                        d.instance = Some(t.text.clone());
                    }
                    i += 2;
                }
                _ if i == 2 => {
                    d.instance = Some(w);
                    i += 1;
                }
                _ => {
                    self.err(
                        ErrorClass::GeneralError,
                        n,
                        format!("Unknown option {w} specified for lvs_sync_daemon"),
                    );
                    i += 1;
                }
            }
        }
        Some(d)
    }

    // ----- virtual_server_group -------------------------------------------------

    fn vsg(&mut self, n: &Node) {
        let Some(name) = self.string(n, 1) else {
            return;
        };
        if !self.need_block(n) {
            return;
        }
        let mut g = VirtualServerGroup {
            pos: n.head().pos.clone(),
            name: name.clone(),
            entries: Vec::new(),
        };
        for k in n.kids() {
            self.no_block(k);
            if k.kw() == "fwmark" {
                let Some(t) = self.need(k, 1) else { continue };
                let mark = match t.text.parse::<u32>() {
                    Ok(m) => m,
                    Err(_) => {
                        self.err_tok(
                            ErrorClass::GeneralError,
                            k,
                            t,
                            format!(
                                "({name}): fwmark '{}' must be in [0, 4294967295] - ignoring",
                                t.text
                            ),
                        );
                        continue;
                    }
                };
                let family = match k.arg(2) {
                    None => None,
                    Some("inet") => Some(Family::Inet),
                    Some("inet6") => Some(Family::Inet6),
                    Some(o) => {
                        self.err(
                            ErrorClass::GeneralError,
                            k,
                            format!("({name}): unknown family {o} for fwmark - ignoring"),
                        );
                        None
                    }
                };
                g.entries.push(VsgEntry::Fwmark { mark, family });
                continue;
            }
            let spec = k.kw();
            let port = match k.word(1) {
                Some(t) => {
                    match t.text.parse::<u16>() {
                        Ok(0) => None,
                        Ok(p) => Some(p),
                        Err(_) => {
                            self.err_tok(
                            ErrorClass::GeneralError,
                            k,
                            t,
                            format!("Invalid virtual server group IP address {spec} port {} - skipping", t.text),
                        );
                            continue;
                        }
                    }
                }
                None => None,
            };
            if k.len() > 2 {
                self.err(
                    ErrorClass::GeneralError,
                    k,
                    format!("({name}): unexpected words after the port - ignoring them"),
                );
            }
            match parse_vsg_range(spec) {
                Ok((first, last)) => g.entries.push(VsgEntry::Range { first, last, port }),
                Err(msg) => self.err(ErrorClass::GeneralError, k, msg),
            }
        }
        if g.entries.is_empty() {
            self.err(
                ErrorClass::GeneralError,
                n,
                format!("virtual server group {name} has no entries - removing"),
            );
            return;
        }
        self.cfg.virtual_server_groups.push(g);
    }

    // ----- virtual_server ------------------------------------------------------

    fn method(&mut self, n: &Node) -> Option<ForwardMethod> {
        let t = self.need(n, 1)?;
        let m = match t.text.as_str() {
            "NAT" => ForwardMethod::Nat,
            "DR" => ForwardMethod::Dr,
            "TUN" => {
                let mut tunnel = TunnelType::Ipip;
                let mut csum = TunnelCsum::NoCsum;
                let mut i = 2;
                while i < n.len() {
                    match n.arg(i).unwrap_or("") {
                        "type" => {
                            match n.arg(i + 1) {
                                Some("ipip") => tunnel = TunnelType::Ipip,
                                Some("gre") => tunnel = TunnelType::Gre,
                                Some("gue") => {
                                    if n.arg(i + 2) == Some("port") {
                                        let p = n.word(i + 3).cloned();
                                        match p {
                                            Some(p) => {
                                                let port = self.port_tok(n, &p)?;
                                                tunnel = TunnelType::Gue { port };
                                                i += 2;
                                            }
                                            None => {
                                                self.err(
                                                    ErrorClass::GeneralError,
                                                    n,
                                                    "gue tunnel requires a port",
                                                );
                                                return None;
                                            }
                                        }
                                    } else {
                                        self.err(
                                            ErrorClass::GeneralError,
                                            n,
                                            "gue tunnel requires a port",
                                        );
                                        return None;
                                    }
                                }
                                other => {
                                    self.err(
                                        ErrorClass::GeneralError,
                                        n,
                                        format!("unknown tunnel type {}", other.unwrap_or("")),
                                    );
                                    return None;
                                }
                            }
                            i += 2;
                        }
                        "nocsum" => {
                            csum = TunnelCsum::NoCsum;
                            i += 1
                        }
                        "csum" => {
                            csum = TunnelCsum::Csum;
                            i += 1
                        }
                        "remcsum" => {
                            csum = TunnelCsum::RemCsum;
                            i += 1
                        }
                        o => {
                            self.err(
                                ErrorClass::GeneralError,
                                n,
                                format!("unknown tunnel option {o}"),
                            );
                            return None;
                        }
                    }
                }
                match (tunnel, csum) {
                    (TunnelType::Ipip, TunnelCsum::Csum | TunnelCsum::RemCsum) => {
                        self.err(
                            ErrorClass::GeneralError,
                            n,
                            "ipip tunnels do not support checksum options",
                        );
                        return None;
                    }
                    (TunnelType::Gre, TunnelCsum::RemCsum) => {
                        self.err(
                            ErrorClass::GeneralError,
                            n,
                            "gre tunnels do not support remcsum",
                        );
                        return None;
                    }
                    _ => {}
                }
                ForwardMethod::Tun { tunnel, csum }
            }
            other => {
                let t = t.clone();
                self.err_tok(
                    ErrorClass::GeneralError,
                    n,
                    &t,
                    format!("PARSER : unknown [{other}] routing method for virtual server."),
                );
                return None;
            }
        };
        Some(m)
    }

    fn virtual_server(&mut self, n: &Node) {
        let Some(first) = self.need(n, 1) else { return };
        let key = match first.text.as_str() {
            "fwmark" => {
                let Some(t) = self.need(n, 2) else { return };
                match t.text.parse::<u32>() {
                    Ok(m) => VsKey::Fwmark(m),
                    Err(_) => {
                        self.err_tok(
                            ErrorClass::GeneralError,
                            n,
                            t,
                            format!(
                                "virtual server fwmark '{}' must be in [0, 4294967295] - ignoring",
                                t.text
                            ),
                        );
                        return;
                    }
                }
            }
            "group" => {
                let Some(t) = self.need(n, 2) else { return };
                VsKey::Group(t.text.clone())
            }
            a => {
                let port_s = n.arg(2);
                let addr = parse_ip(a);
                let port = match port_s {
                    None => Some(None),
                    Some(p) => match p.parse::<u16>() {
                        Ok(0) => Some(None),
                        Ok(p) => Some(Some(p)),
                        Err(_) => None,
                    },
                };
                match (addr, port) {
                    (Some(addr), Some(port)) => VsKey::Addr { addr, port },
                    _ => {
                        let shown = match port_s {
                            Some(p) => format!("{a}/{p}"),
                            None => a.to_string(),
                        };
                        self.err(
                            ErrorClass::GeneralError,
                            n,
                            format!("Invalid virtual server IP address/port {shown} - skipping"),
                        );
                        return;
                    }
                }
            }
        };
        let family = match &key {
            VsKey::Addr { addr, .. } => Some(Family::of(addr)),
            _ => None,
        };
        let mut r = RawVs {
            vs: VirtualServer {
                pos: n.head().pos.clone(),
                key,
                family,
                protocol: None,
                scheduler: Scheduler::Wlc,
                method: ForwardMethod::Nat,
                persistence_timeout: 0,
                persistence_granularity: None,
                persistence_engine: None,
                ops: false,
                sched_flags: SchedFlags::default(),
                delay_loop: Duration::from_secs(60),
                connect_timeout: None,
                retry: None,
                delay_before_retry: None,
                warmup: None,
                inhibit_on_failure: false,
                alpha: false,
                omega: false,
                quorum: 1,
                hysteresis: 0,
                quorum_up: None,
                quorum_down: None,
                weight: 1,
                sorry_server: None,
                ha_suspend: false,
                virtualhost: None,
                smtp_alert: None,
                real_servers: Vec::new(),
            },
            protocol: None,
            scheduler: None,
            method: None,
            rs: Vec::new(),
        };
        if !self.need_block(n) {
            self.raw_vs.push(r);
            return;
        }
        let name = n.line.raw.clone();
        for k in n.kids() {
            if k.kw() != "real_server" {
                self.no_block(k);
            }
            let vs = &mut r.vs;
            match k.kw() {
                "lvs_sched" | "lb_algo" => {
                    if let Some(t) = self.need(k, 1) {
                        match Scheduler::from_name(&t.text) {
                            Some(s) => r.scheduler = Some(s),
                            None => self.err_tok(
                                ErrorClass::GeneralError,
                                k,
                                t,
                                format!("Invalid lvs_scheduler '{}' - ignoring", t.text),
                            ),
                        }
                    }
                }
                "lvs_method" | "lb_kind" => {
                    if let Some(m) = self.method(k) {
                        r.method = Some(m)
                    }
                }
                "protocol" => {
                    if let Some(t) = self.need(k, 1) {
                        match t.text.to_ascii_uppercase().as_str() {
                            "TCP" => r.protocol = Some(Protocol::Tcp),
                            "UDP" => r.protocol = Some(Protocol::Udp),
                            "SCTP" => r.protocol = Some(Protocol::Sctp),
                            _ => self.err_tok(
                                ErrorClass::GeneralError,
                                k,
                                t,
                                format!("Unknown protocol {} - ignoring", t.text),
                            ),
                        }
                    }
                }
                "persistence_timeout" => match k.word(1) {
                    None => vs.persistence_timeout = 360,
                    Some(t) => {
                        let t = t.clone();
                        match self.uint_tok(k, &t, 1, 2_678_400) {
                            Some(v) => vs.persistence_timeout = v as u32,
                            None => {
                                self.err(ErrorClass::GeneralError, k, "persistence_timeout invalid")
                            }
                        }
                    }
                },
                "persistence_granularity" => {
                    if let Some(t) = self.need(k, 1) {
                        let g = if t.text.contains('.') {
                            // keepalived (and IPVS) take any dotted mask, even a
                            // non-contiguous one.
                            t.text
                                .parse::<std::net::Ipv4Addr>()
                                .ok()
                                .map(Granularity::V4)
                        } else {
                            t.text
                                .parse::<u8>()
                                .ok()
                                .filter(|&l| (1..=128).contains(&l))
                                .map(Granularity::V6)
                        };
                        match g {
                            Some(g) => {
                                vs.persistence_granularity = Some(g);
                                if vs.persistence_timeout == 0 {
                                    vs.persistence_timeout = 360;
                                }
                            }
                            None => self.err_tok(
                                ErrorClass::GeneralError,
                                k,
                                t,
                                format!("Invalid persistence_granularity specified - {}", t.text),
                            ),
                        }
                    }
                }
                "persistence_engine" => vs.persistence_engine = self.string(k, 1),
                "ops" => vs.ops = true,
                "flag-1" => vs.sched_flags.flag_1 = true,
                "flag-2" => vs.sched_flags.flag_2 = true,
                "flag-3" => vs.sched_flags.flag_3 = true,
                "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => {
                    let want = if k.kw().starts_with("sh") {
                        Scheduler::Sh
                    } else {
                        Scheduler::Mh
                    };
                    if r.scheduler != Some(want) {
                        self.err(
                            ErrorClass::GeneralError,
                            k,
                            format!(
                                "{} only applies to {} scheduler - ignoring",
                                k.kw(),
                                want.name()
                            ),
                        );
                    } else {
                        match k.kw() {
                            "sh-port" => vs.sched_flags.sh_port = true,
                            "sh-fallback" => vs.sched_flags.sh_fallback = true,
                            "mh-port" => vs.sched_flags.mh_port = true,
                            _ => vs.sched_flags.mh_fallback = true,
                        }
                    }
                }
                // IPVS has no "hashed" flag to set; keepalived accepts it for sh only.
                "hashed" => {
                    if r.scheduler != Some(Scheduler::Sh) {
                        self.err(
                            ErrorClass::GeneralError,
                            k,
                            "hashed only applies to sh scheduler - ignoring",
                        );
                    }
                }
                // keepalived's maximum here is TIMER_MAXIMUM (ULONG_MAX - 1 µs).
                "delay_loop" => match self.timer(k, 1, 1, TIMER_MAX) {
                    Some(d) => vs.delay_loop = d,
                    None if k.len() > 1 => self.err(
                        ErrorClass::GeneralError,
                        k,
                        format!(
                            "virtual server delay loop '{}' invalid - ignoring",
                            k.arg(1).unwrap_or("")
                        ),
                    ),
                    None => {}
                },
                "connect_timeout" => {
                    vs.connect_timeout = self.timer(k, 1, 1, MAX_US).or(vs.connect_timeout)
                }
                "retry" => {
                    if let Some(v) = self.uint(k, 1, 1, u32::MAX as u64) {
                        vs.retry = Some(v as u32)
                    } else if k.len() > 1 {
                        self.err(
                            ErrorClass::GeneralError,
                            k,
                            format!("retry value invalid - {}", k.arg(1).unwrap_or("")),
                        );
                    }
                }
                "delay_before_retry" => {
                    vs.delay_before_retry = self.timer(k, 1, 0, TIMER_MAX).or(vs.delay_before_retry)
                }
                "warmup" => vs.warmup = self.timer(k, 1, 0, TIMER_MAX).or(vs.warmup),
                "inhibit_on_failure" => {
                    vs.inhibit_on_failure = self.opt_bool(k, 1).unwrap_or(vs.inhibit_on_failure)
                }
                "alpha" => vs.alpha = self.opt_bool(k, 1).unwrap_or(vs.alpha),
                "omega" => vs.omega = self.opt_bool(k, 1).unwrap_or(vs.omega),
                "quorum" => {
                    if let Some(t) = self.need(k, 1) {
                        match t.text.parse::<u32>() {
                            Ok(q) if q >= 1 => vs.quorum = q,
                            _ => {
                                let t = t.clone();
                                self.err_tok(
                                    ErrorClass::InvalidNumber,
                                    k,
                                    &t,
                                    format!(
                                        "Quorum {} must be in [1, 4294967295]. Setting to 1.",
                                        t.text
                                    ),
                                );
                                r.vs.quorum = 1;
                            }
                        }
                    }
                }
                "hysteresis" => {
                    if let Some(v) = self.uint(k, 1, 0, u32::MAX as u64) {
                        vs.hysteresis = v as u32
                    }
                }
                "quorum_up" | "quorum_down" => {
                    let up = k.kw() == "quorum_up";
                    let exists = if up {
                        vs.quorum_up.is_some()
                    } else {
                        vs.quorum_down.is_some()
                    };
                    if exists {
                        self.err(
                            ErrorClass::GeneralError,
                            k,
                            format!(
                                "({name}) {} script already specified - ignoring {}",
                                k.kw(),
                                k.line.rest_from(1)
                            ),
                        );
                    } else {
                        let s = self.script(k, true);
                        if up {
                            r.vs.quorum_up = s
                        } else {
                            r.vs.quorum_down = s
                        }
                    }
                }
                "weight" => {
                    if let Some(v) = self.uint(k, 1, 1, i32::MAX as u64) {
                        vs.weight = v as u32
                    }
                }
                "sorry_server" => {
                    if let Some(a) = self.ip(k, 1) {
                        let port = match k.word(2) {
                            Some(t) => {
                                let t = t.clone();
                                match t.text.parse::<u16>() {
                                    Ok(0) => None,
                                    Ok(p) => Some(p),
                                    Err(_) => {
                                        self.err_tok(
                                            ErrorClass::GeneralError,
                                            k,
                                            &t,
                                            format!("Invalid sorry_server port {}", t.text),
                                        );
                                        None
                                    }
                                }
                            }
                            None => None,
                        };
                        r.vs.sorry_server = Some(SorryServer {
                            pos: k.head().pos.clone(),
                            addr: a,
                            port,
                            inhibit: false,
                            method: None,
                        });
                    }
                }
                "sorry_server_inhibit" => match vs.sorry_server.as_mut() {
                    Some(s) => s.inhibit = self.opt_bool(k, 1).unwrap_or(true),
                    None => self.err(
                        ErrorClass::GeneralError,
                        k,
                        "Ignoring sorry_server inhibit used before or without sorry_server",
                    ),
                },
                "sorry_server_lvs_method" => {
                    if r.vs.sorry_server.is_none() {
                        self.err(
                            ErrorClass::GeneralError,
                            k,
                            "Ignoring sorry_server_lvs_method used before or without sorry_server",
                        );
                    } else if let Some(m) = self.method(k) {
                        if let Some(s) = r.vs.sorry_server.as_mut() {
                            s.method = Some(m);
                        }
                    }
                }
                "ha_suspend" => vs.ha_suspend = true,
                "virtualhost" => {
                    if let Some(t) = self.need_or(k, 1, "virtual server virtualhost missing") {
                        vs.virtualhost = Some(t.text.clone())
                    }
                }
                "smtp_alert" => vs.smtp_alert = self.opt_bool(k, 1),
                "ip_family" => match k.arg(1) {
                    Some("inet") => vs.family = check_family(vs.family, Family::Inet, self, k),
                    Some("inet6") => vs.family = check_family(vs.family, Family::Inet6, self, k),
                    Some(o) => self.err(
                        ErrorClass::GeneralError,
                        k,
                        format!("Unknown address family {o}"),
                    ),
                    None => {
                        self.need(k, 1);
                    }
                },
                "snmp_name" | "nftables_ipvs" => self.record_unmodelled(k, "virtual_server"),
                "real_server" => {
                    if let Some(rs) = self.real_server(k, &r.vs) {
                        r.rs.push(rs);
                    }
                }
                _ => self.unknown(k),
            }
        }
        self.raw_vs.push(r);
    }

    fn real_server(&mut self, n: &Node, vs: &VirtualServer) -> Option<RawRs> {
        let a = self.need(n, 1)?;
        let addr = parse_ip(&a.text);
        let port = match n.arg(2) {
            None => Some(None),
            Some(p) => match p.parse::<u16>() {
                Ok(0) => Some(None),
                Ok(p) => Some(Some(p)),
                Err(_) => None,
            },
        };
        let (Some(addr), Some(port)) = (addr, port) else {
            self.err(
                ErrorClass::GeneralError,
                n,
                format!(
                    "Invalid real server ip address/port {}/{} - skipping",
                    a.text,
                    n.arg(2).unwrap_or("")
                ),
            );
            return None;
        };
        let mut rs = RealServer {
            pos: n.head().pos.clone(),
            addr,
            port,
            weight: vs.weight,
            method: ForwardMethod::Nat,
            uthreshold: 0,
            lthreshold: 0,
            inhibit_on_failure: false,
            alpha: false,
            notify_up: None,
            notify_down: None,
            retry: None,
            delay_before_retry: None,
            warmup: None,
            connect_timeout: None,
            delay_loop: None,
            smtp_alert: None,
            virtualhost: None,
            checkers: Vec::new(),
        };
        let mut weight = None;
        let mut method = None;
        let mut inhibit = None;
        let mut alpha = None;
        if n.children.is_none() {
            // keepalived accepts `real_server IP PORT` without a block only by
            // corrupting what follows; a bare server is a clear error here.
            self.need_block(n);
        }
        for k in n.kids() {
            if !is_checker_kw(k.kw()) {
                self.no_block(k);
            }
            match k.kw() {
                "weight" => {
                    if let Some(t) = self.need(k, 1) {
                        let t = t.clone();
                        match self.uint_tok(k, &t, 0, i32::MAX as u64) {
                            Some(v) => weight = Some(v as u32),
                            None => self.err_tok(
                                ErrorClass::InvalidNumber,
                                k,
                                &t,
                                format!("Real server weight {} is outside range 0-2147483647", t.text),
                            ),
                        }
                    }
                }
                "lvs_method" | "lb_kind" => method = self.method(k).or(method),
                "uthreshold" => rs.uthreshold = self.uint(k, 1, 0, u32::MAX as u64).map(|v| v as u32).unwrap_or(rs.uthreshold),
                "lthreshold" => rs.lthreshold = self.uint(k, 1, 0, u32::MAX as u64).map(|v| v as u32).unwrap_or(rs.lthreshold),
                "inhibit_on_failure" => inhibit = self.opt_bool(k, 1).or(inhibit),
                "alpha" => alpha = self.opt_bool(k, 1).or(alpha),
                "notify_up" => rs.notify_up = self.script(k, true),
                "notify_down" => rs.notify_down = self.script(k, true),
                "retry" => {
                    if let Some(v) = self.uint(k, 1, 1, u32::MAX as u64) {
                        rs.retry = Some(v as u32)
                    } else if k.len() > 1 {
                        self.err(ErrorClass::GeneralError, k, format!("retry value invalid - {}", k.arg(1).unwrap_or("")));
                    }
                }
                "delay_before_retry" => rs.delay_before_retry = self.timer(k, 1, 0, TIMER_MAX).or(rs.delay_before_retry),
                "warmup" => rs.warmup = self.timer(k, 1, 0, TIMER_MAX).or(rs.warmup),
                "connect_timeout" => rs.connect_timeout = self.timer(k, 1, 1, MAX_US).or(rs.connect_timeout),
                "delay_loop" => rs.delay_loop = self.timer(k, 1, 1, TIMER_MAX).or(rs.delay_loop),
                "smtp_alert" => rs.smtp_alert = self.opt_bool(k, 1),
                "virtualhost" => rs.virtualhost = self.string(k, 1),
                "snmp_name" => self.record_unmodelled(k, "real_server"),
                "BFD_CHECK" | "FILE_CHECK" => self.err(
                    ErrorClass::Fatal,
                    k,
                    format!("{} is not supported by rvs - a real server cannot be checked this way (remove the checker or use another one)", k.kw()),
                ),
                kw if is_checker_kw(kw) => {
                    if let Some(c) = self.checker(k) {
                        rs.checkers.push(c);
                    }
                }
                _ => self.unknown(k),
            }
        }
        Some((rs, weight, method, inhibit, alpha))
    }

    // ----- checkers ------------------------------------------------------------

    /// Common checker keywords; returns false if `k` is not one of them.
    fn checker_common(&mut self, k: &Node, c: &mut CheckerCommon, connecting: bool) -> bool {
        match k.kw() {
            "connect_ip" if connecting => c.connect_ip = self.ip(k, 1),
            "connect_port" if connecting => {
                c.connect_port = self.uint(k, 1, 1, 65535).map(|v| v as u16);
                if c.connect_port.is_none() && k.len() > 1 {
                    let v = k.arg(1).unwrap_or("");
                    self.err(
                        ErrorClass::GeneralError,
                        k,
                        format!("Invalid checker connect_port '{v}'"),
                    );
                }
            }
            "bindto" if connecting => c.bindto = self.ip(k, 1),
            "bind_port" if connecting => c.bind_port = self.uint(k, 1, 1, 65535).map(|v| v as u16),
            "bind_if" if connecting => c.bind_if = self.string(k, 1),
            "connect_timeout" => {
                c.connect_timeout = self.timer(k, 1, 1, MAX_US);
                if c.connect_timeout.is_none() && k.len() > 1 {
                    let v = k.arg(1).unwrap_or("");
                    self.err(
                        ErrorClass::GeneralError,
                        k,
                        format!("connect_timeout {v} invalid - ignoring"),
                    );
                }
            }
            "fwmark" if connecting => {
                c.fwmark = self.uint(k, 1, 0, u32::MAX as u64).map(|v| v as u32)
            }
            "retry" => c.retry = self.uint(k, 1, 0, u32::MAX as u64).map(|v| v as u32),
            "nb_get_retry" => {
                self.err(
                    ErrorClass::Deprecated,
                    k,
                    "nb_get_retry is deprecated - please use 'retry'",
                );
                c.retry = self.uint(k, 1, 0, u32::MAX as u64).map(|v| v as u32)
            }
            "delay_before_retry" => c.delay_before_retry = self.timer(k, 1, 0, TIMER_MAX),
            "warmup" => c.warmup = self.timer(k, 1, 0, TIMER_MAX),
            "delay_loop" => c.delay_loop = self.timer(k, 1, 1, TIMER_MAX),
            "alpha" => c.alpha = self.opt_bool(k, 1),
            "log_all_failures" => c.log_all_failures = self.opt_bool(k, 1),
            _ => return false,
        }
        true
    }

    fn checker(&mut self, n: &Node) -> Option<Checker> {
        if !self.need_block(n) {
            return None;
        }
        let kw = n.kw().to_string();
        let mut common = CheckerCommon::default();
        let pos = n.head().pos.clone();
        let kind = match kw.as_str() {
            "TCP_CHECK" | "PING_CHECK" => {
                for k in n.kids() {
                    self.no_block(k);
                    if !self.checker_common(k, &mut common, true) {
                        self.unknown(k);
                    }
                }
                if kw == "TCP_CHECK" {
                    CheckerKind::Tcp
                } else {
                    CheckerKind::Ping
                }
            }
            "HTTP_GET" | "SSL_GET" => {
                let mut h = HttpCheck::default();
                for k in n.kids() {
                    if k.kw() != "url" {
                        self.no_block(k);
                    }
                    if self.checker_common(k, &mut common, true) {
                        continue;
                    }
                    match k.kw() {
                        "url" => {
                            if let Some(u) = self.url(k) {
                                h.urls.push(u);
                            }
                        }
                        "http_protocol" => match k.arg(1) {
                            Some("1.0") => h.http_protocol = HttpProtocol::Http10,
                            Some("1.0C") | Some("1.0c") => h.http_protocol = HttpProtocol::Http10C,
                            Some("1.1") => h.http_protocol = HttpProtocol::Http11,
                            Some(o) => self.err(
                                ErrorClass::GeneralError,
                                k,
                                format!("Invalid http_protocol version {o}"),
                            ),
                            None => {
                                self.need(k, 1);
                            }
                        },
                        "virtualhost" => h.virtualhost = self.string(k, 1),
                        "fast_recovery" => h.fast_recovery = self.opt_bool(k, 1).unwrap_or(false),
                        "enable_sni" if kw == "SSL_GET" => {
                            h.enable_sni = self.opt_bool(k, 1).unwrap_or(false)
                        }
                        _ => self.unknown(k),
                    }
                }
                if h.urls.is_empty() {
                    // keepalived 2.2.7 logs this and then crashes (rc 139) under -t.
                    self.err(
                        ErrorClass::GeneralError,
                        n,
                        "HTTP/SSL_GET checker has no urls specified - ignoring",
                    );
                    return None;
                }
                if kw == "HTTP_GET" {
                    CheckerKind::Http(h)
                } else {
                    CheckerKind::Ssl(h)
                }
            }
            "MISC_CHECK" => {
                let mut path = None;
                let mut timeout = None;
                let mut dynamic = false;
                let mut user = None;
                for k in n.kids() {
                    self.no_block(k);
                    if self.checker_common(k, &mut common, false) {
                        continue;
                    }
                    match k.kw() {
                        // Without a value keepalived only says so at the end of the block.
                        "misc_path" if k.len() > 1 => path = self.script(k, false),
                        "misc_path" => {}
                        "misc_timeout" => {
                            timeout = self.uint(k, 1, 1, u32::MAX as u64).map(Duration::from_secs)
                        }
                        "misc_dynamic" => dynamic = true,
                        "user" => {
                            if let Some(u) = self.string(k, 1) {
                                user = Some((u, k.arg(2).map(str::to_string)));
                            }
                        }
                        _ => self.unknown(k),
                    }
                }
                let Some(mut path) = path else {
                    self.err(
                        ErrorClass::GeneralError,
                        n,
                        "No script path has been specified for MISC_CHECKER - skipping",
                    );
                    return None;
                };
                if let Some((u, g)) = user {
                    path.user = Some(u);
                    path.group = g;
                }
                CheckerKind::Misc(MiscCheck {
                    path,
                    timeout,
                    dynamic,
                })
            }
            "SMTP_CHECK" => {
                let mut s = SmtpCheck {
                    helo_name: "smtpchecker.keepalived.org".into(),
                    hosts: Vec::new(),
                };
                for k in n.kids() {
                    if k.kw() != "host" {
                        self.no_block(k);
                    }
                    if self.checker_common(k, &mut common, true) {
                        continue;
                    }
                    match k.kw() {
                        "helo_name" => {
                            if let Some(h) = self.need_or(k, 1, "SMTP_CHECK helo name missing") {
                                s.helo_name = h.text.clone()
                            }
                        }
                        "host" => {
                            if !self.need_block(k) {
                                continue;
                            }
                            let mut hc = CheckerCommon::default();
                            for h in k.kids() {
                                self.no_block(h);
                                if !self.checker_common(h, &mut hc, true) {
                                    self.unknown(h);
                                }
                            }
                            s.hosts.push(hc);
                        }
                        _ => self.unknown(k),
                    }
                }
                CheckerKind::Smtp(s)
            }
            "DNS_CHECK" => {
                let mut d = DnsCheck {
                    qtype: DnsType::Soa,
                    name: ".".into(),
                };
                for k in n.kids() {
                    self.no_block(k);
                    if self.checker_common(k, &mut common, true) {
                        continue;
                    }
                    match k.kw() {
                        "type" => {
                            if let Some(t) = self.need(k, 1) {
                                let q = match t.text.as_str() {
                                    "A" => Some(DnsType::A),
                                    "NS" => Some(DnsType::Ns),
                                    "CNAME" => Some(DnsType::Cname),
                                    "SOA" => Some(DnsType::Soa),
                                    "MX" => Some(DnsType::Mx),
                                    "TXT" => Some(DnsType::Txt),
                                    "AAAA" => Some(DnsType::Aaaa),
                                    _ => None,
                                };
                                match q {
                                    Some(q) => d.qtype = q,
                                    None => {
                                        let t = t.clone();
                                        self.err_tok(
                                            ErrorClass::GeneralError,
                                            k,
                                            &t,
                                            format!(
                                                "DNS_CHECK: unknown type {} - ignoring",
                                                t.text
                                            ),
                                        )
                                    }
                                }
                            }
                        }
                        "name" => {
                            if let Some(nm) = self.string(k, 1) {
                                d.name = nm
                            }
                        }
                        _ => self.unknown(k),
                    }
                }
                CheckerKind::Dns(d)
            }
            "UDP_CHECK" => {
                let mut u = UdpCheck::default();
                for k in n.kids() {
                    self.no_block(k);
                    if self.checker_common(k, &mut common, true) {
                        continue;
                    }
                    match k.kw() {
                        "payload" => {
                            if let Some(t) = self.need(k, 1) {
                                match parse_hex(&t.text) {
                                    Some(b) => u.payload = b,
                                    None => {
                                        let t = t.clone();
                                        self.err_tok(
                                            ErrorClass::GeneralError,
                                            k,
                                            &t,
                                            format!("Invalid hex string {} for payload", t.text),
                                        )
                                    }
                                }
                            }
                        }
                        "require_reply" => match k.word(1) {
                            None => u.require_reply = Some(Vec::new()),
                            Some(t) => match parse_hex(&t.text) {
                                Some(b) => u.require_reply = Some(b),
                                None => {
                                    let t = t.clone();
                                    self.err_tok(
                                        ErrorClass::GeneralError,
                                        k,
                                        &t,
                                        format!("Invalid hex string {} for require_reply", t.text),
                                    )
                                }
                            },
                        },
                        "min_reply_length" => {
                            u.min_reply_length = self.uint(k, 1, 0, 65535).map(|v| v as u32)
                        }
                        "max_reply_length" => {
                            u.max_reply_length = self.uint(k, 1, 0, 65535).map(|v| v as u32)
                        }
                        _ => self.unknown(k),
                    }
                }
                CheckerKind::Udp(u)
            }
            _ => return None,
        };
        Some(Checker { pos, common, kind })
    }

    fn url(&mut self, n: &Node) -> Option<Url> {
        if !self.need_block(n) {
            return None;
        }
        let mut u = Url {
            pos: n.head().pos.clone(),
            path: String::new(),
            digest: None,
            status_codes: Vec::new(),
            virtualhost: None,
            regex: None,
            regex_no_match: false,
        };
        let mut has_path = false;
        for k in n.kids() {
            self.no_block(k);
            match k.kw() {
                "path" => {
                    if let Some(p) = self.string(k, 1) {
                        u.path = p;
                        has_path = true;
                    }
                }
                "digest" => {
                    if let Some(t) = self.need(k, 1) {
                        let t = t.clone();
                        if t.text.len() != 32 {
                            self.err_tok(
                                ErrorClass::GeneralError,
                                k,
                                &t,
                                format!(
                                    "digest '{}' character length should be 32 rather than {}",
                                    t.text,
                                    t.text.len()
                                ),
                            );
                        } else {
                            match parse_hex(&t.text) {
                                Some(b) => {
                                    let mut d = [0u8; 16];
                                    d.copy_from_slice(&b[..16]);
                                    u.digest = Some(d);
                                }
                                None => self.err_tok(
                                    ErrorClass::GeneralError,
                                    k,
                                    &t,
                                    format!("digest '{}' is not a hex string - ignoring", t.text),
                                ),
                            }
                        }
                    }
                }
                // keepalived silently keeps the default for a bare `status_code`.
                "status_code" => {
                    for t in &k.line.tokens[1..] {
                        match parse_status(&t.text) {
                            Some(r) => u.status_codes.push(r),
                            None => self.err_tok(
                                ErrorClass::GeneralError,
                                k,
                                t,
                                format!("Invalid HTTP_GET status code '{}'", t.text),
                            ),
                        }
                    }
                }
                "virtualhost" => u.virtualhost = self.string(k, 1),
                "regex" => u.regex = Some(split_quoted_escaped(k.line.rest_from(1)).join(" ")),
                "regex_no_match" => u.regex_no_match = true,
                "regex_options" | "regex_min_offset" | "regex_max_offset" | "regex_stack" => {
                    self.record_unmodelled(k, "url")
                }
                _ => self.unknown(k),
            }
        }
        if !has_path {
            self.err(
                ErrorClass::GeneralError,
                n,
                "HTTP/SSL_GET checker url has no path - ignoring",
            );
            return None;
        }
        if u.status_codes.is_empty() {
            u.status_codes.push(StatusRange { lo: 200, hi: 299 });
        }
        Some(u)
    }

    // ----- VRRP --------------------------------------------------------------------

    fn vrrp_script(&mut self, n: &Node) {
        let Some(name) = self.string(n, 1) else {
            return;
        };
        let pos = n.head().pos.clone();
        let mut s = VrrpScript {
            pos: pos.clone(),
            name: name.clone(),
            script: Script {
                pos: pos.clone(),
                argv: Vec::new(),
                user: None,
                group: None,
            },
            interval: Duration::from_secs(1),
            timeout: None,
            weight: 0,
            reverse: false,
            rise: 1,
            fall: 1,
            init_fail: false,
        };
        let mut script = None;
        let mut user = None;
        if self.need_block(n) {
            for k in n.kids() {
                self.no_block(k);
                match k.kw() {
                    // Without a value keepalived only says "No script set" later.
                    "script" if k.len() > 1 => script = self.script(k, false),
                    "script" => {}
                    "interval" => {
                        if let Some(v) = self.uint(k, 1, 1, u32::MAX as u64 / 1_000_000) {
                            s.interval = Duration::from_secs(v)
                        }
                    }
                    "timeout" => {
                        s.timeout = self
                            .uint(k, 1, 1, u32::MAX as u64 / 1_000_000)
                            .map(Duration::from_secs)
                    }
                    "weight" => {
                        if let Some(t) = self.need(k, 1) {
                            let t = t.clone();
                            if let Some(w) = self.int_tok(k, &t, -253, 253) {
                                s.weight = w as i32;
                            }
                            match k.arg(2) {
                                None => {}
                                Some("reverse") => s.reverse = true,
                                Some(o) => self.err(
                                    ErrorClass::GeneralError,
                                    k,
                                    format!("vrrp_script {name} unknown weight option {o}"),
                                ),
                            }
                        }
                    }
                    "rise" => {
                        s.rise = self
                            .uint(k, 1, 1, u32::MAX as u64)
                            .map(|v| v as u32)
                            .unwrap_or(s.rise)
                    }
                    "fall" => {
                        s.fall = self
                            .uint(k, 1, 1, u32::MAX as u64)
                            .map(|v| v as u32)
                            .unwrap_or(s.fall)
                    }
                    "user" => {
                        if let Some(u) = self.string(k, 1) {
                            user = Some((u, k.arg(2).map(str::to_string)));
                        }
                    }
                    "init_fail" => s.init_fail = true,
                    _ => self.unknown(k),
                }
            }
        }
        if let (Some(sc), Some((u, g))) = (script.as_mut(), user) {
            sc.user = Some(u);
            sc.group = g;
        }
        self.raw_scripts.push((pos, name, script, s));
    }

    fn notify_kw(&mut self, k: &Node, notify: &mut Notify, owner: &str) -> bool {
        let slot = match k.kw() {
            "notify_master" => &mut notify.master,
            "notify_backup" => &mut notify.backup,
            "notify_fault" => &mut notify.fault,
            "notify_stop" => &mut notify.stop,
            "notify_deleted" => &mut notify.deleted,
            "notify" => &mut notify.notify,
            "notify_master_rx_lower_pri" => &mut notify.master_rx_lower_pri,
            _ => return false,
        };
        if slot.is_some() {
            self.err(
                ErrorClass::GeneralError,
                k,
                format!(
                    "({owner}) {} script already specified - ignoring {}",
                    k.kw(),
                    k.line.rest_from(1)
                ),
            );
            return true;
        }
        if k.kw() == "notify_deleted" && k.len() == 1 {
            *slot = None;
            return true;
        }
        *slot = self.script(k, true);
        true
    }

    fn track_interfaces(&mut self, n: &Node) -> Vec<TrackInterface> {
        let mut v = Vec::new();
        if n.children.is_none() {
            self.err(
                ErrorClass::MissingBlockStart,
                n,
                format!("'{{' missing from beginning of block {}", n.kw()),
            );
            return v;
        }
        for k in n.kids() {
            self.no_block(k);
            let mut t = TrackInterface {
                name: k.kw().to_string(),
                weight: 0,
                reverse: false,
            };
            let mut i = 1;
            while i < k.len() {
                match k.arg(i).unwrap_or("") {
                    "weight" => {
                        match k.word(i + 1) {
                            Some(w) => {
                                let w = w.clone();
                                if let Some(x) = self.int_tok(k, &w, -253, 253) {
                                    t.weight = x as i32
                                }
                            }
                            None => self.err(
                                ErrorClass::GeneralError,
                                k,
                                format!("track_interface {} weight without value", t.name),
                            ),
                        }
                        i += 2;
                    }
                    "reverse" => {
                        t.reverse = true;
                        i += 1
                    }
                    "noreverse" => i += 1,
                    o => {
                        self.err(
                            ErrorClass::GeneralError,
                            k,
                            format!("track_interface {} option {o} unknown", t.name),
                        );
                        i += 1
                    }
                }
            }
            v.push(t);
        }
        v
    }

    fn track_scripts(&mut self, n: &Node) -> Vec<TrackScript> {
        let mut v = Vec::new();
        if n.children.is_none() {
            self.err(
                ErrorClass::MissingBlockStart,
                n,
                format!("'{{' missing from beginning of block {}", n.kw()),
            );
            return v;
        }
        for k in n.kids() {
            self.no_block(k);
            let mut t = TrackScript {
                pos: k.head().pos.clone(),
                name: k.kw().to_string(),
                weight: None,
                reverse: None,
            };
            let mut i = 1;
            while i < k.len() {
                match k.arg(i).unwrap_or("") {
                    "weight" => {
                        match k.word(i + 1) {
                            Some(w) => {
                                let w = w.clone();
                                t.weight = self.int_tok(k, &w, -253, 253).map(|x| x as i32)
                            }
                            None => self.err(
                                ErrorClass::GeneralError,
                                k,
                                format!("track script {} weight has no value", t.name),
                            ),
                        }
                        i += 2;
                    }
                    "reverse" => {
                        t.reverse = Some(true);
                        i += 1
                    }
                    "noreverse" => {
                        t.reverse = Some(false);
                        i += 1
                    }
                    o => {
                        self.err(
                            ErrorClass::GeneralError,
                            k,
                            format!("track script {} option {o} unknown", t.name),
                        );
                        i += 1
                    }
                }
            }
            v.push(t);
        }
        v
    }

    fn vrrp_sync_group(&mut self, n: &Node) {
        let Some(name) = self
            .need_or(n, 1, "vrrp_sync_group must have a name - skipping")
            .map(|t| t.text.clone())
        else {
            return;
        };
        let mut g = VrrpSyncGroup {
            pos: n.head().pos.clone(),
            name: name.clone(),
            members: Vec::new(),
            track_interfaces: Vec::new(),
            track_scripts: Vec::new(),
            notify: Notify::default(),
            smtp_alert: None,
            notify_priority_changes: None,
            sync_group_tracking_weight: false,
        };
        if self.need_block(n) {
            for k in n.kids() {
                let block_kw = matches!(k.kw(), "group" | "track_interface" | "track_script");
                if !block_kw {
                    self.no_block(k);
                }
                if self.notify_kw(k, &mut g.notify, &name) {
                    continue;
                }
                match k.kw() {
                    "group" => {
                        if k.children.is_none() {
                            self.err(
                                ErrorClass::MissingBlockStart,
                                k,
                                "'{' missing from beginning of block group",
                            );
                        }
                        for m in k.kids() {
                            g.members
                                .extend(m.line.tokens.iter().map(|t| t.text.clone()));
                        }
                    }
                    "track_interface" => g.track_interfaces = self.track_interfaces(k),
                    "track_script" => g.track_scripts = self.track_scripts(k),
                    "smtp_alert" => g.smtp_alert = self.opt_bool(k, 1),
                    "notify_priority_changes" => g.notify_priority_changes = self.opt_bool(k, 1),
                    "sync_group_tracking_weight" => g.sync_group_tracking_weight = true,
                    "global_tracking" => {
                        self.err(ErrorClass::Deprecated, k, "(global_tracking) is deprecated. Use track_interface/script/file on the sync group");
                        g.sync_group_tracking_weight = true;
                    }
                    "track_file" | "track_process" | "track_bfd" => {
                        self.record_unmodelled(k, "vrrp_sync_group")
                    }
                    _ => self.unknown(k),
                }
            }
        }
        self.raw_groups.push(g);
    }

    fn vrrp_instance(&mut self, n: &Node) {
        let Some(name) = self
            .need_or(n, 1, "vrrp_instance must have a name")
            .map(|t| t.text.clone())
        else {
            return;
        };
        let mut inst = VrrpInstance {
            pos: n.head().pos.clone(),
            name: name.clone(),
            state: None,
            interface: None,
            vrid: 0,
            priority: 100,
            advert_int: Duration::from_secs(1),
            version: 2,
            authentication: None,
            virtual_ipaddresses: Vec::new(),
            virtual_ipaddresses_excluded: Vec::new(),
            virtual_routes: Vec::new(),
            virtual_rules: Vec::new(),
            nopreempt: false,
            preempt_delay: Duration::ZERO,
            unicast_src_ip: None,
            mcast_src_ip: None,
            unicast_peers: Vec::new(),
            unicast_ttl: None,
            mcast_dst_ip: None,
            check_unicast_src: false,
            track_src_ip: false,
            dont_track_primary: false,
            unicast_fault_no_peer: false,
            track_interfaces: Vec::new(),
            track_scripts: Vec::new(),
            notify: Notify::default(),
            smtp_alert: None,
            notify_priority_changes: None,
            garp_master_delay: None,
            garp_master_repeat: None,
            garp_lower_prio_delay: None,
            garp_lower_prio_repeat: None,
            garp_master_refresh: None,
            garp_master_refresh_repeat: None,
            down_timer_adverts: None,
            lower_prio_no_advert: None,
            higher_prio_send_advert: None,
            accept: None,
            strict_mode: None,
            skip_check_adv_addr: None,
            lvs_sync_daemon_interface: None,
        };
        let mut vrid = None;
        let mut priority = None;
        let mut version = None;
        let ctx = format!("vrrp_instance {name}");
        if self.need_block(n) {
            for k in n.kids() {
                let block_kw = matches!(
                    k.kw(),
                    "virtual_ipaddress"
                        | "virtual_ipaddress_excluded"
                        | "virtual_routes"
                        | "virtual_rules"
                        | "unicast_peer"
                        | "track_interface"
                        | "track_script"
                        | "authentication"
                        | "track_file"
                        | "track_process"
                        | "track_bfd"
                );
                if !block_kw {
                    self.no_block(k);
                }
                if self.notify_kw(k, &mut inst.notify, &name) {
                    continue;
                }
                match k.kw() {
                    "state" => {
                        if let Some(t) = self.need(k, 1) {
                            match t.text.as_str() {
                                "MASTER" => inst.state = Some(VrrpState::Master),
                                "BACKUP" => {
                                    if inst.state == Some(VrrpState::Master) {
                                        self.err(ErrorClass::Warning, k, format!("({name}) state previously set as MASTER - ignoring BACKUP"));
                                    } else {
                                        inst.state = Some(VrrpState::Backup)
                                    }
                                }
                                o => {
                                    let o = o.to_string();
                                    self.err(
                                        ErrorClass::GeneralError,
                                        k,
                                        format!(
                                            "({name}) unknown state '{o}', defaulting to BACKUP"
                                        ),
                                    );
                                    inst.state = Some(VrrpState::Backup);
                                }
                            }
                        }
                    }
                    "interface" => inst.interface = self.string(k, 1),
                    "virtual_router_id" => {
                        if let Some(t) = self.need(k, 1) {
                            let t = t.clone();
                            match self.uint_tok(k, &t, 1, 255) {
                                Some(v) => vrid = Some(v as u8),
                                None => self.err_tok(
                                    ErrorClass::GeneralError,
                                    k,
                                    &t,
                                    format!(
                                        "({name}): VRID '{}' not valid - must be between 1 & 255",
                                        t.text
                                    ),
                                ),
                            }
                        }
                    }
                    "priority" => {
                        if let Some(t) = self.need(k, 1) {
                            let t = t.clone();
                            match self.uint_tok(k, &t, 1, 255) {
                                Some(v) => priority = Some(v as u8),
                                None => self.err_tok(
                                    ErrorClass::GeneralError,
                                    k,
                                    &t,
                                    format!("({name}) Priority not valid! must be between 1 & 255. Using default 100"),
                                ),
                            }
                        }
                    }
                    "advert_int" => match self.timer(k, 1, 10_000, 255_000_000) {
                        Some(d) => inst.advert_int = d,
                        None if k.len() > 1 => {
                            let v = k.arg(1).unwrap_or("");
                            self.err(
                                ErrorClass::GeneralError,
                                k,
                                format!("({name}) Advert interval ({v}) not valid! Must be > 0 - ignoring"),
                            )
                        }
                        None => {}
                    },
                    "version" => {
                        if let Some(v) = self.uint(k, 1, 2, 3) {
                            version = Some(v as u8)
                        }
                    }
                    "authentication" => inst.authentication = self.authentication(k, &name),
                    "virtual_ipaddress" => {
                        let v = self.ip_addresses_block(k, &name, false);
                        inst.virtual_ipaddresses.extend(v)
                    }
                    "virtual_ipaddress_excluded" => {
                        let v = self.ip_addresses_block(k, &name, false);
                        inst.virtual_ipaddresses_excluded.extend(v)
                    }
                    "virtual_routes" => {
                        if self.value_block(k) {
                            let v = self.routes(k.kids(), true);
                            inst.virtual_routes.extend(v)
                        }
                    }
                    "virtual_rules" => {
                        if self.value_block(k) {
                            let v = self.rules(k.kids());
                            inst.virtual_rules.extend(v)
                        }
                    }
                    "nopreempt" => inst.nopreempt = true,
                    "preempt" => inst.nopreempt = false,
                    "preempt_delay" => {
                        if let Some(d) = self.timer(k, 1, 0, 1_000_000_000) {
                            inst.preempt_delay = d
                        }
                    }
                    "unicast_src_ip" => inst.unicast_src_ip = self.ip(k, 1),
                    "mcast_src_ip" => inst.mcast_src_ip = self.ip(k, 1),
                    "unicast_peer" => {
                        if self.value_block(k) {
                            for p in k.kids() {
                                self.no_block(p);
                                if let Some(u) = self.unicast_peer(p, &name) {
                                    inst.unicast_peers.push(u);
                                }
                            }
                        }
                    }
                    "unicast_ttl" => inst.unicast_ttl = self.uint(k, 1, 0, 255).map(|v| v as u8),
                    "mcast_dst_ip" => match self.ip(k, 1) {
                        Some(a) if a.is_multicast() => inst.mcast_dst_ip = Some(a),
                        Some(a) => self.err(
                            ErrorClass::GeneralError,
                            k,
                            format!(
                                "({name}) mcast_dst_ip {a} is not a multicast address - ignoring"
                            ),
                        ),
                        None => {}
                    },
                    "check_unicast_src" => inst.check_unicast_src = true,
                    "track_src_ip" => inst.track_src_ip = true,
                    "dont_track_primary" => inst.dont_track_primary = true,
                    "unicast_fault_no_peer" => inst.unicast_fault_no_peer = true,
                    "track_interface" => inst.track_interfaces = self.track_interfaces(k),
                    "track_script" => inst.track_scripts = self.track_scripts(k),
                    "smtp_alert" => inst.smtp_alert = self.opt_bool(k, 1),
                    "notify_priority_changes" => inst.notify_priority_changes = self.opt_bool(k, 1),
                    "garp_master_delay" => {
                        inst.garp_master_delay = self.uint(k, 1, 0, 3600).map(Duration::from_secs)
                    }
                    "garp_master_repeat" => {
                        inst.garp_master_repeat = self.uint(k, 1, 0, 3600).map(|v| v as u32)
                    }
                    "garp_lower_prio_delay" => {
                        inst.garp_lower_prio_delay =
                            self.uint(k, 1, 0, 3600).map(Duration::from_secs)
                    }
                    "garp_lower_prio_repeat" => {
                        inst.garp_lower_prio_repeat = self.uint(k, 1, 0, 3600).map(|v| v as u32)
                    }
                    "garp_master_refresh" => {
                        inst.garp_master_refresh =
                            self.uint(k, 1, 0, u32::MAX as u64).map(Duration::from_secs)
                    }
                    "garp_master_refresh_repeat" => {
                        inst.garp_master_refresh_repeat =
                            self.uint(k, 1, 1, u32::MAX as u64).map(|v| v as u32)
                    }
                    "down_timer_adverts" => {
                        inst.down_timer_adverts = self.uint(k, 1, 1, 100).map(|v| v as u32)
                    }
                    "lower_prio_no_advert" => inst.lower_prio_no_advert = self.opt_bool(k, 1),
                    "higher_prio_send_advert" => inst.higher_prio_send_advert = self.opt_bool(k, 1),
                    "accept" => inst.accept = Some(true),
                    "no_accept" => inst.accept = Some(false),
                    "strict_mode" => inst.strict_mode = self.opt_bool(k, 1),
                    "skip_check_adv_addr" => inst.skip_check_adv_addr = self.opt_bool(k, 1),
                    "lvs_sync_daemon_interface" => {
                        self.err(ErrorClass::Deprecated, k, format!("({name}) Specifying lvs_sync_daemon_interface against a vrrp is deprecated."));
                        self.err(
                            ErrorClass::Deprecated,
                            k,
                            "        Please use global lvs_sync_daemon",
                        );
                        inst.lvs_sync_daemon_interface = self.string(k, 1);
                    }
                    kw if INSTANCE_UNMODELLED.contains(&kw) => self.record_unmodelled(k, &ctx),
                    _ => self.unknown(k),
                }
            }
        }
        self.raw_instances.push(RawInstance {
            inst,
            vrid,
            priority,
            version,
        });
    }

    /// A value block (`{` required); keepalived only logs when it is missing.
    fn value_block(&mut self, k: &Node) -> bool {
        if k.children.is_none() {
            self.err(
                ErrorClass::MissingBlockStart,
                k,
                format!("'{{' missing from beginning of block {}", k.kw()),
            );
            return false;
        }
        true
    }

    fn authentication(&mut self, n: &Node, name: &str) -> Option<Authentication> {
        if !self.need_block(n) {
            return None;
        }
        let mut ty = None;
        let mut pass: Option<Vec<u8>> = None;
        for k in n.kids() {
            self.no_block(k);
            match k.kw() {
                "auth_type" => {
                    if let Some(t) = self.need(k, 1) {
                        match t.text.as_str() {
                            "PASS" => ty = Some(AuthType::Pass),
                            "AH" => ty = Some(AuthType::Ah),
                            o => {
                                let o = o.to_string();
                                self.err(
                                    ErrorClass::GeneralError,
                                    k,
                                    format!("({name}) unknown authentication type '{o}'"),
                                )
                            }
                        }
                    }
                }
                "auth_pass" => {
                    if let Some(t) = self.need(k, 1) {
                        let mut b = t.text.as_bytes().to_vec();
                        if b.len() > 8 {
                            self.err(
                                ErrorClass::Warning,
                                k,
                                "Truncating auth_pass to 8 characters",
                            );
                            b.truncate(8);
                        }
                        pass = Some(b);
                    }
                }
                _ => self.unknown(k),
            }
        }
        match (ty, pass) {
            (Some(t), Some(p)) => Some(Authentication {
                auth_type: t,
                password: p,
            }),
            (Some(_), None) => {
                self.err(
                    ErrorClass::GeneralError,
                    n,
                    format!("({name}) authentication has no password - ignoring"),
                );
                None
            }
            (None, Some(_)) => {
                self.err(
                    ErrorClass::GeneralError,
                    n,
                    format!("({name}) authentication has no auth_type - ignoring"),
                );
                None
            }
            (None, None) => None,
        }
    }

    fn unicast_peer(&mut self, p: &Node, name: &str) -> Option<UnicastPeer> {
        let Some(addr) = parse_ip(p.kw()) else {
            self.err(
                ErrorClass::GeneralError,
                p,
                format!(
                    "({name}) VRRP unicast peer address {} is invalid - ignoring",
                    p.kw()
                ),
            );
            return None;
        };
        let mut u = UnicastPeer {
            addr,
            min_ttl: None,
            max_ttl: None,
        };
        let mut i = 1;
        while i < p.len() {
            let w = p.arg(i).unwrap_or("");
            let val = p.word(i + 1).cloned();
            match (w, val) {
                ("min_ttl", Some(t)) => u.min_ttl = self.uint_tok(p, &t, 0, 255).map(|v| v as u8),
                ("max_ttl", Some(t)) => u.max_ttl = self.uint_tok(p, &t, 0, 255).map(|v| v as u8),
                _ => self.err(
                    ErrorClass::GeneralError,
                    p,
                    format!("({name}) unknown unicast_peer option '{w}'"),
                ),
            }
            i += 2;
        }
        Some(u)
    }

    fn ip_addresses_block(&mut self, n: &Node, owner: &str, is_static: bool) -> Vec<IpAddress> {
        if !self.value_block(n) {
            return Vec::new();
        }
        self.ip_addresses(n.kids(), owner, is_static)
    }

    /// VIP / static address lines (§1.8.1).
    fn ip_addresses(&mut self, kids: &[Node], _owner: &str, is_static: bool) -> Vec<IpAddress> {
        let mut out = Vec::new();
        'line: for k in kids {
            self.no_block(k);
            let spec = k.kw();
            let (a, plen) = match spec.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (spec, None),
            };
            let Some(addr) = parse_ip(a) else {
                self.err(
                    ErrorClass::GeneralError,
                    k,
                    format!("VRRP parsed invalid IP {spec}. skipping IP..."),
                );
                continue;
            };
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match plen {
                None => max,
                Some(l) => match l.parse::<u8>() {
                    Ok(v) if v <= max => v,
                    _ => {
                        self.err(
                            ErrorClass::GeneralError,
                            k,
                            format!("Invalid address prefix len {l} for address {a} - using {max}"),
                        );
                        max
                    }
                },
            };
            let mut ip = IpAddress {
                pos: k.head().pos.clone(),
                addr,
                prefix,
                dev: None,
                brd: None,
                scope: None,
                label: None,
                peer: None,
                no_track: false,
                preferred_lft: None,
                use_vmac: false,
                flags: Vec::new(),
                track_group: None,
            };
            let mut i = 1;
            while i < k.len() {
                let w = k.arg(i).unwrap_or("").to_string();
                let takes = matches!(
                    w.as_str(),
                    "dev"
                        | "brd"
                        | "broadcast"
                        | "scope"
                        | "label"
                        | "peer"
                        | "preferred_lft"
                        | "track_group"
                );
                if takes {
                    let Some(v) = k.arg(i + 1).map(str::to_string) else {
                        self.err(
                            ErrorClass::GeneralError,
                            k,
                            format!("No {w} parameter specified for {spec}"),
                        );
                        break;
                    };
                    match w.as_str() {
                        "dev" => ip.dev = Some(v),
                        "brd" | "broadcast" => {
                            if addr.is_ipv6() {
                                self.err(ErrorClass::GeneralError, k, format!("VRRP is trying to assign a broadcast {v} to the IPv6 address {spec} - skipping"));
                                continue 'line;
                            }
                            ip.brd = Some(v)
                        }
                        "scope" => {
                            if addr.is_ipv6() {
                                self.err(
                                    ErrorClass::Warning,
                                    k,
                                    format!(
                                        "Cannot set scope on IPv6 address {spec} - ignoring scope"
                                    ),
                                );
                            } else {
                                ip.scope = Some(v)
                            }
                        }
                        "label" => {
                            if v.len() >= 16 {
                                self.err(
                                    ErrorClass::GeneralError,
                                    k,
                                    format!("Label {v} is too long for address {spec} - skipping"),
                                );
                                continue 'line;
                            }
                            if addr.is_ipv6() {
                                self.err(
                                    ErrorClass::Warning,
                                    k,
                                    format!(
                                        "Cannot set label on IPv6 address {spec} - ignoring label"
                                    ),
                                );
                            } else {
                                ip.label = Some(v)
                            }
                        }
                        "peer" => match parse_ip(&v) {
                            Some(p) => ip.peer = Some(p),
                            None => self.err(
                                ErrorClass::GeneralError,
                                k,
                                format!("Invalid peer address {v} for {spec}"),
                            ),
                        },
                        "preferred_lft" => ip.preferred_lft = Some(v),
                        _ => ip.track_group = Some(v),
                    }
                    i += 2;
                    continue;
                }
                match w.as_str() {
                    "home" | "-nodad" | "mngtmpaddr" | "noprefixroute" | "autojoin" => {
                        ip.flags.push(w)
                    }
                    "no_track" => ip.no_track = true,
                    "use_vmac" if !is_static => ip.use_vmac = true,
                    _ => self.err(
                        ErrorClass::GeneralError,
                        k,
                        format!("Unknown configuration entry '{w}' for ip address - ignoring"),
                    ),
                }
                i += 1;
            }
            out.push(ip);
        }
        out
    }

    /// Route lines (`virtual_routes` when `tracked`, else `static_routes`).
    fn routes(&mut self, kids: &[Node], tracked: bool) -> Vec<Route> {
        let mut out = Vec::new();
        'line: for k in kids {
            self.no_block(k);
            let words: Vec<&str> = k.line.tokens.iter().map(|t| t.text.as_str()).collect();
            let mut i = 0;
            let mut route_type = "unicast".to_string();
            if let Some(&w) = words.first() {
                if matches!(
                    w,
                    "blackhole"
                        | "unreachable"
                        | "prohibit"
                        | "throw"
                        | "unicast"
                        | "local"
                        | "broadcast"
                        | "anycast"
                        | "multicast"
                        | "nat"
                ) {
                    route_type = w.to_string();
                    i = 1;
                }
            }
            let first_word = i;
            let mut r = Route {
                pos: k.head().pos.clone(),
                route_type,
                dest: Prefix {
                    addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    len: 0,
                },
                src: None,
                via: Vec::new(),
                dev: None,
                table: None,
                scope: None,
                metric: None,
                no_track: false,
                options: Vec::new(),
            };
            let mut have_dest = false;
            while i < words.len() {
                let w = words[i];
                let val = words.get(i + 1).copied();
                let known = matches!(
                    w,
                    "src"
                        | "via"
                        | "gw"
                        | "or"
                        | "nexthop"
                        | "dev"
                        | "oif"
                        | "table"
                        | "scope"
                        | "metric"
                        | "priority"
                        | "preference"
                ) || ROUTE_OPTIONS.contains(&w);
                let needs_val = !matches!(w, "no_track" | "onlink" | "pervasive");
                if have_dest && !known && needs_val {
                    if let (Some(a), true) = (parse_ip(w), r.via.is_empty()) {
                        // `DEST GATEWAY …`: keepalived takes a bare address as the gateway.
                        r.via.push(a);
                        i += 1;
                        continue;
                    }
                    // keepalived first tries the word as an address.
                    self.err(
                        ErrorClass::GeneralError,
                        k,
                        format!("VRRP parsed invalid IP {w}. skipping IP..."),
                    );
                    self.err(
                        ErrorClass::GeneralError,
                        k,
                        format!("unknown route keyword {w}"),
                    );
                    continue 'line;
                }
                if needs_val && known && val.is_none() {
                    self.missing_after(k, i + 1);
                    continue 'line;
                }
                match w {
                    "src" => match val.and_then(parse_ip) {
                        Some(a) => r.src = Some(a),
                        None => {
                            self.err(
                                ErrorClass::GeneralError,
                                k,
                                format!("Invalid route src address {}", val.unwrap_or("")),
                            );
                            continue 'line;
                        }
                    },
                    "via" | "gw" | "or" | "nexthop" => {
                        if w == "gw" {
                            self.err(
                                ErrorClass::Deprecated,
                                k,
                                "\"gw\" for routes is deprecated. Please use \"via\"",
                            );
                        }
                        if w == "or" {
                            self.err(
                                ErrorClass::Deprecated,
                                k,
                                "\"or\" for routes is deprecated. Please use \"nexthop\"",
                            );
                        }
                        let v = if w == "nexthop" && val == Some("via") {
                            i += 1;
                            words.get(i + 1).copied()
                        } else {
                            val
                        };
                        match v.and_then(parse_ip) {
                            Some(a) => r.via.push(a),
                            None => {
                                self.err(
                                    ErrorClass::GeneralError,
                                    k,
                                    format!("Invalid route gateway {}", v.unwrap_or("")),
                                );
                                continue 'line;
                            }
                        }
                    }
                    "dev" | "oif" => r.dev = val.map(str::to_string),
                    "table" => r.table = val.map(str::to_string),
                    "scope" => r.scope = val.map(str::to_string),
                    "metric" | "priority" | "preference" => {
                        match val.and_then(|v| v.parse().ok()) {
                            Some(m) => r.metric = Some(m),
                            None => {
                                self.err(
                                    ErrorClass::InvalidNumber,
                                    k,
                                    format!("Invalid route metric {}", val.unwrap_or("")),
                                );
                                continue 'line;
                            }
                        }
                    }
                    "no_track" => {
                        r.no_track = true;
                        i += 1;
                        continue;
                    }
                    "onlink" | "pervasive" => {
                        r.options.push((w.to_string(), String::new()));
                        i += 1;
                        continue;
                    }
                    _ if !have_dest => {
                        let d = if w == "default" {
                            Some(Prefix {
                                addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                                len: 0,
                            })
                        } else {
                            parse_prefix(w)
                        };
                        match d {
                            Some(p) => {
                                r.dest = p;
                                have_dest = true;
                            }
                            None => {
                                self.err(
                                    ErrorClass::GeneralError,
                                    k,
                                    format!("Invalid route destination {w} - skipping"),
                                );
                                continue 'line;
                            }
                        }
                        i += 1;
                        continue;
                    }
                    _ if ROUTE_OPTIONS.contains(&w) => r
                        .options
                        .push((w.to_string(), val.unwrap_or("").to_string())),
                    _ => {
                        self.err(
                            ErrorClass::GeneralError,
                            k,
                            format!("unknown route keyword {w}"),
                        );
                        continue 'line;
                    }
                }
                i += 2;
            }
            if !have_dest {
                // keepalived: missing parameter after the last word (e.g. a bare
                // `blackhole`).
                if words.len() <= first_word {
                    self.missing_after(k, words.len());
                } else {
                    self.err(ErrorClass::GeneralError, k, "Route must have a destination");
                }
                continue;
            }
            // keepalived gives this warning for static routes too.
            let _ = tracked;
            if r.dev.is_none() && !r.no_track {
                self.err(
                    ErrorClass::Warning,
                    k,
                    format!(
                        "Warning - cannot track route {}/{} with no interface specified, not tracking",
                        r.dest.addr, r.dest.len
                    ),
                );
                r.no_track = true;
            }
            out.push(r);
        }
        out
    }

    fn rules(&mut self, kids: &[Node]) -> Vec<Rule> {
        let mut out = Vec::new();
        'line: for k in kids {
            self.no_block(k);
            let words: Vec<&str> = k.line.tokens.iter().map(|t| t.text.as_str()).collect();
            let mut r = Rule {
                pos: k.head().pos.clone(),
                from: None,
                to: None,
                table: None,
                preference: 0,
                options: Vec::new(),
            };
            let mut pref = None;
            let mut i = 0;
            while i < words.len() {
                let w = words[i];
                if matches!(w, "not" | "l3mdev") {
                    r.options.push((w.to_string(), String::new()));
                    i += 1;
                    continue;
                }
                let known = matches!(
                    w,
                    "from" | "to" | "table" | "lookup" | "preference" | "priority" | "prio"
                ) || RULE_OPTIONS.contains(&w);
                if !known {
                    // keepalived's wording depends on whether the rule's action
                    // (`table …`) has been seen yet.
                    let msg = if r.table.is_none() {
                        format!("Invalid rule action {w}")
                    } else {
                        format!("Unknown rule option {w}")
                    };
                    self.err(ErrorClass::GeneralError, k, msg);
                    continue 'line;
                }
                let Some(val) = words.get(i + 1).copied() else {
                    self.missing_after(k, i + 1);
                    continue 'line;
                };
                match w {
                    "from" | "to" => {
                        let p = if val == "all" {
                            Some(Prefix {
                                addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                                len: 0,
                            })
                        } else {
                            parse_prefix(val)
                        };
                        match p {
                            Some(p) if w == "from" => r.from = Some(p),
                            Some(p) => r.to = Some(p),
                            None => {
                                self.err(
                                    ErrorClass::GeneralError,
                                    k,
                                    format!("VRRP parsed invalid IP {val}. skipping IP..."),
                                );
                                self.err(
                                    ErrorClass::GeneralError,
                                    k,
                                    format!("Invalid rule {w} address {val}"),
                                );
                                continue 'line;
                            }
                        }
                    }
                    "table" | "lookup" => r.table = Some(val.to_string()),
                    "preference" | "priority" | "prio" => match val.parse::<u32>() {
                        Ok(p) => pref = Some(p),
                        Err(_) => {
                            self.err(
                                ErrorClass::InvalidNumber,
                                k,
                                format!("Invalid rule preference {val} - skipping rule"),
                            );
                            continue 'line;
                        }
                    },
                    _ if RULE_OPTIONS.contains(&w) => {
                        r.options.push((w.to_string(), val.to_string()))
                    }
                    _ => {
                        self.err(
                            ErrorClass::GeneralError,
                            k,
                            format!("Invalid rule action {w}"),
                        );
                        continue 'line;
                    }
                }
                i += 2;
            }
            r.preference = match pref {
                Some(p) => p,
                None => {
                    let p = self.next_rule_pref;
                    self.next_rule_pref = self.next_rule_pref.saturating_sub(1);
                    self.err(
                        ErrorClass::Warning,
                        k,
                        format!("Rule has no preference specified - setting to {p}. This is probably not what you want."),
                    );
                    p
                }
            };
            out.push(r);
        }
        out
    }
}

fn check_family(cur: Option<Family>, want: Family, p: &mut Parser, k: &Node) -> Option<Family> {
    if let Some(c) = cur {
        if c != want {
            p.err(
                ErrorClass::GeneralError,
                k,
                "ip_family does not match the virtual server address - ignoring",
            );
            return cur;
        }
    }
    Some(want)
}

fn is_checker_kw(s: &str) -> bool {
    matches!(
        s,
        "TCP_CHECK"
            | "HTTP_GET"
            | "SSL_GET"
            | "MISC_CHECK"
            | "SMTP_CHECK"
            | "DNS_CHECK"
            | "UDP_CHECK"
            | "PING_CHECK"
            | "BFD_CHECK"
            | "FILE_CHECK"
    )
}

/// Hex string → bytes (even length, hex digits only).
fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `N` or `N-M` within 100..599.
fn parse_status(s: &str) -> Option<StatusRange> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let lo: u16 = a.parse().ok()?;
    let hi: u16 = b.parse().ok()?;
    if !(100..=599).contains(&lo) || !(100..=599).contains(&hi) || lo > hi {
        return None;
    }
    Some(StatusRange { lo, hi })
}

/// A `virtual_server_group` address spec → inclusive range.
fn parse_vsg_range(spec: &str) -> Result<(IpAddr, IpAddr), String> {
    let invalid = || format!("Invalid virtual server group IP address {spec} - skipping");
    if let Some((a, len)) = spec.split_once('/') {
        let addr = parse_ip(a).ok_or_else(invalid)?;
        let max: u32 = if addr.is_ipv4() { 32 } else { 128 };
        let l: u32 = len
            .parse()
            .ok()
            .filter(|&l| (1..=max).contains(&l))
            .ok_or_else(|| format!("Invalid netmask - {spec} - skipping"))?;
        let v = ip_to_u128(addr);
        let host_bits = max - l;
        let mask: u128 = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        if v & mask != 0 {
            return Err(format!("Address mask bits not empty - {spec} - skipping"));
        }
        return Ok((addr, u128_to_ip(v | mask, addr.is_ipv4())));
    }
    if let Some((a, b)) = spec.split_once('-') {
        let first = parse_ip(a).ok_or_else(invalid)?;
        if let Some(last) = parse_ip(b) {
            if first.is_ipv4() != last.is_ipv4() || ip_to_u128(last) < ip_to_u128(first) {
                return Err(invalid());
            }
            return Ok((first, last));
        }
        // Last-octet (IPv4, decimal) or last-group (IPv6, hex) range.
        let v = ip_to_u128(first);
        let (end, shift_mask): (u128, u128) = if first.is_ipv4() {
            (b.parse::<u8>().map_err(|_| invalid())? as u128, 0xff)
        } else {
            (
                u16::from_str_radix(b, 16).map_err(|_| invalid())? as u128,
                0xffff,
            )
        };
        if end <= v & shift_mask {
            return Err(invalid());
        }
        return Ok((first, u128_to_ip((v & !shift_mask) | end, first.is_ipv4())));
    }
    let a = parse_ip(spec).ok_or_else(invalid)?;
    Ok((a, a))
}

fn ip_to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

fn u128_to_ip(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(std::net::Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(v))
    }
}

/// Known `global_defs` keywords rvs records but does not model (keepalived 2.2.7).
const GLOBAL_UNMODELLED: &[&str] = &[
    "lvs_id",
    "max_auto_priority",
    "min_auto_priority_delay",
    "vrrp_priority",
    "checker_priority",
    "bfd_priority",
    "vrrp_no_swap",
    "checker_no_swap",
    "bfd_no_swap",
    "vrrp_rt_priority",
    "checker_rt_priority",
    "bfd_rt_priority",
    "vrrp_rlimit_rttime",
    "checker_rlimit_rttime",
    "bfd_rlimit_rttime",
    "vrrp_cpu_affinity",
    "checker_cpu_affinity",
    "bfd_cpu_affinity",
    "vrrp_iptables",
    "vrrp_ipsets",
    "nftables",
    "nftables_priority",
    "nftables_ifindex",
    "nftables_counters",
    "vrrp_garp_lower_prio_no_advert",
    "vrrp_version_3_checksum",
    "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_cmd_rcv_bufs_force",
    "vrrp_netlink_monitor_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs_force",
    "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_cmd_rcv_bufs_force",
    "lvs_netlink_monitor_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs_force",
    "rs_init_notifies",
    "no_checker_emails",
    "no_email_faults",
    "enable_traps",
    "enable_snmp_vrrp",
    "enable_snmp_keepalived",
    "enable_snmp_checker",
    "enable_snmp_rfc",
    "enable_snmp_rfcv2",
    "enable_snmp_rfcv3",
    "snmp_socket",
    "enable_dbus",
    "dbus_service_name",
    "vrrp_notify_priority_changes",
    "vrrp_rx_bufs_policy",
    "vrrp_rx_bufs_multiplier",
    "vrrp_startup_delay_bootstrap",
    "vrrp_log_unknown_vrids",
    "vrrp_garp_extra_if",
    "vrrp_netlink_timers",
    "fifo_write_vrrp_states_on_reload",
    "notify_fifo_script",
    "vrrp_notify_fifo_script",
    "lvs_notify_fifo_script",
    "random_seed",
    "data_use_instance",
    "umask",
    "startup_script",
    "startup_script_timeout",
    "shutdown_script",
    "shutdown_script_timeout",
    "process_names",
    "process_name",
    "vrrp_process_name",
    "checker_process_name",
    "bfd_process_name",
    "include_check",
    "log_file",
    "tmp_config_directory",
    "vrrp_socket_priority",
    "checker_socket_priority",
    "bfd_socket_priority",
    "vrrp_track_process_force",
    "vrrp_track_process_priority",
    "vmac_prefix",
    "vmac_addr_prefix",
    "linkbeat_use_polling",
    "net_namespace",
    "net_namespace_ipvs",
    "namespace_with_ipsets",
    "instance",
    "use_pid_dir",
    "child_wait_time",
    "disable_local_igmp",
    "vrrp_dont_defer_addr_changes",
    "config_save_dir",
    "log_unknown_vrids",
    "nftables_ipvs",
    "nftables_ipvs_priority",
    "nftables_ipvs_start_fwmark",
    "process_monitor_rcv_bufs",
    "process_monitor_rcv_bufs_force",
    "reload_file",
    "reload_repeat",
    "reload_time_file",
];

/// `ip route` options keepalived passes through (kept in [`Route::options`]).
const ROUTE_OPTIONS: &[&str] = &[
    "mtu",
    "advmss",
    "rtt",
    "rttvar",
    "reordering",
    "window",
    "cwnd",
    "initcwnd",
    "initrwnd",
    "ssthresh",
    "realms",
    "rto_min",
    "features",
    "quickack",
    "congctl",
    "pref",
    "expires",
    "fastopen_no_cookie",
    "proto",
    "protocol",
    "tos",
    "dsfield",
    "type",
    "encap",
    "nexthop",
    "weight",
    "hoplimit",
    "ttl-propagate",
];

/// `ip rule` options keepalived passes through (kept in [`Rule::options`]).
const RULE_OPTIONS: &[&str] = &[
    "tos",
    "dsfield",
    "fwmark",
    "realms",
    "goto",
    "suppress_prefixlength",
    "suppress_ifgroup",
    "iif",
    "oif",
    "uidrange",
    "sport",
    "dport",
    "ipproto",
    "protocol",
    "no_track",
    "type",
];

/// Known `vrrp_instance` keywords rvs records but does not model.
const INSTANCE_UNMODELLED: &[&str] = &[
    "use_vmac",
    "use_vmac_addr",
    "vmac_xmit_base",
    "use_ipvlan",
    "native_ipv6",
    "promote_secondaries",
    "vrf",
    "kernel_rx_buf_size",
    "debug",
    "linkbeat_use_polling",
    "track_file",
    "track_process",
    "track_bfd",
    "garp_extra_if",
    "old_unicast_checksum",
    "no_accept_on_vrf",
    "snmp_name",
    "dont_track_primary_iface",
    "notify_priority_changes_on_startup",
    "version_3_checksum",
];
