//! `virtual_server_group`, `virtual_server` and `real_server`: the LVS side of the configuration.

use std::net::IpAddr;
use std::time::Duration;

use super::{parse_ip, Parser, RawRs, RawVs, MAX_US, TIMER_MAX};
use crate::diag::ErrorClass;
use crate::model::*;
use crate::tree::Node;

impl Parser {
    pub(super) fn vsg(&mut self, n: &Node) {
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

    pub(super) fn virtual_server(&mut self, n: &Node) {
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
            self.note_not_acted_on(k, "virtual_server");
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
            self.note_not_acted_on(k, "real_server");
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
            | "AGENT_CHECK"
            | "BFD_CHECK"
            | "FILE_CHECK"
    )
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
