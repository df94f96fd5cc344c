//! Health checkers (`TCP_CHECK`, `HTTP_GET`, ...) inside a `real_server`.

use std::time::Duration;

use super::{Parser, MAX_US, TIMER_MAX};

/// Largest IPVS weight, the bound of AGENT_CHECK's `min_weight`/`max_weight`.
const MAX_WEIGHT: u64 = 2_147_483_647;
use crate::diag::ErrorClass;
use crate::lexer::split_quoted_escaped;
use crate::model::*;
use crate::tree::Node;

impl Parser {
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

    pub(super) fn checker(&mut self, n: &Node) -> Option<Checker> {
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
            "AGENT_CHECK" => {
                let mut a = AgentCheck::default();
                for k in n.kids() {
                    self.no_block(k);
                    if self.checker_common(k, &mut common, true) {
                        continue;
                    }
                    match k.kw() {
                        "send" => a.send = self.string(k, 1),
                        "min_weight" => {
                            a.min_weight = self.uint(k, 1, 0, MAX_WEIGHT).map(|v| v as u32)
                        }
                        "max_weight" => {
                            a.max_weight = self.uint(k, 1, 0, MAX_WEIGHT).map(|v| v as u32)
                        }
                        _ => self.unknown(k),
                    }
                }
                if let (Some(lo), Some(hi)) = (a.min_weight, a.max_weight) {
                    if lo > hi {
                        self.err(
                            ErrorClass::GeneralError,
                            n,
                            format!("AGENT_CHECK min_weight {lo} is above max_weight {hi}"),
                        );
                        return None;
                    }
                }
                CheckerKind::Agent(a)
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
