//! Post-parse validation (keepalived `validate_check_config`, `vrrp_complete_init`):
//! defaults with warnings, port rules, clamping, cross references, script security.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

use crate::diag::{ErrorClass, Pos};
use crate::model::*;
use crate::parse::{Parser, RawVs};

/// keepalived's way of naming a virtual service in messages: `[ADDR]:proto:PORT`,
/// `FWM n` or `[GROUP]:0`.
pub fn vs_name(key: &VsKey, proto: Option<Protocol>) -> String {
    // keepalived writes the protocol in lower case in these names ("[10.0.0.1]:tcp:80").
    let p = proto.map_or_else(|| "none".to_string(), |p| p.name().to_ascii_lowercase());
    match key {
        VsKey::Addr { addr, port } => format!("[{addr}]:{p}:{}", port.unwrap_or(0)),
        VsKey::Fwmark(m) => format!("FWM {m}"),
        VsKey::Group(g) => format!("[{g}]:0"),
    }
}

fn rs_name(addr: &IpAddr, port: Option<u16>, proto: Option<Protocol>) -> String {
    format!(
        "[{addr}]:{}:{}",
        proto.map_or_else(|| "none".to_string(), |p| p.name().to_ascii_lowercase()),
        port.unwrap_or(0)
    )
}

impl Parser {
    fn warn(&mut self, class: ErrorClass, pos: &Pos, msg: String) {
        self.err_at(class, pos, msg, "");
    }

    /// An error that stops keepalived's VRRP process although `-t` reports it with an ordinary
    /// class (exit 5): a general error marked [`crate::diag::Diagnostic::stops`].
    fn stop(&mut self, pos: &Pos, msg: String) {
        self.err_at(ErrorClass::GeneralError, pos, msg, "");
        if let Some(d) = self.diags.last_mut() {
            d.stops = true;
        }
    }

    pub(crate) fn validate(&mut self) {
        let raw = std::mem::take(&mut self.raw_vs);
        for r in raw {
            if let Some(vs) = self.validate_vs(r) {
                self.cfg.virtual_servers.push(vs);
            }
        }
        self.validate_vrrp();
        self.script_security();
    }

    fn validate_vs(&mut self, r: RawVs) -> Option<VirtualServer> {
        let RawVs {
            mut vs,
            protocol,
            scheduler,
            method,
            rs,
        } = r;
        let pos = vs.pos.clone();
        if let VsKey::Group(g) = &vs.key {
            if !self.cfg.virtual_server_groups.iter().any(|x| &x.name == g) {
                // keepalived only logs this and runs without the service; a service
                // that silently vanishes is worth an error.
                let msg = format!(
                    "Virtual server group {g} specified but not configured - ignoring virtual server {}",
                    vs_name(&vs.key, protocol)
                );
                self.warn(ErrorClass::GeneralError, &pos, msg);
                return None;
            }
        }
        let is_fwmark = matches!(vs.key, VsKey::Fwmark(_));
        vs.protocol = match (is_fwmark, protocol) {
            (true, Some(_)) => {
                let msg = format!(
                    "Warning: Virtual server {}: protocol specified for fwmark - protocol will be ignored",
                    vs_name(&vs.key, None)
                );
                self.warn(ErrorClass::Warning, &pos, msg);
                None
            }
            (true, None) => None,
            (false, Some(p)) => Some(p),
            (false, None) => {
                let msg = format!(
                    "Virtual server {}: no protocol set - defaulting to UDP",
                    vs_name(&vs.key, None)
                );
                self.warn(ErrorClass::Warning, &pos, msg);
                Some(Protocol::Udp)
            }
        };
        let name = vs_name(&vs.key, vs.protocol);
        match scheduler {
            Some(s) => vs.scheduler = s,
            None => self.warn(
                ErrorClass::Warning,
                &pos,
                format!("Virtual server {name}: no scheduler set, setting default 'wlc'"),
            ),
        }
        match method {
            Some(m) => vs.method = m,
            None => self.warn(
                ErrorClass::Warning,
                &pos,
                format!("Virtual server {name}: no forwarding method set, setting default NAT"),
            ),
        }
        if vs.ops && vs.protocol != Some(Protocol::Udp) {
            self.warn(
                ErrorClass::GeneralError,
                &pos,
                format!("Virtual server {name}: one packet scheduling requires UDP - resetting"),
            );
            vs.ops = false;
        }
        if let VsKey::Addr { port: None, .. } = vs.key {
            if vs.persistence_timeout == 0 {
                self.warn(
                    ErrorClass::Warning,
                    &pos,
                    format!("Virtual server {name}: zero port only valid for persistent services - setting"),
                );
                vs.persistence_timeout = 360;
            }
        }
        if is_fwmark && vs.ha_suspend {
            self.warn(
                ErrorClass::Warning,
                &pos,
                format!("Virtual server {name}: cannot use ha_suspend with fwmarks - clearing ha_suspend"),
            );
            vs.ha_suspend = false;
        }
        let vs_port = match vs.key {
            VsKey::Addr { port, .. } => port,
            _ => None,
        };
        // Real servers: inheritance, family, ports, duplicates.
        let mut seen: HashSet<(IpAddr, Option<u16>)> = HashSet::new();
        for (mut s, weight, m, inhibit, alpha) in rs {
            s.weight = weight.unwrap_or(vs.weight);
            s.method = m.unwrap_or(vs.method);
            s.inhibit_on_failure = inhibit.unwrap_or(vs.inhibit_on_failure);
            s.alpha = alpha.unwrap_or(vs.alpha);
            let tunnel = matches!(s.method, ForwardMethod::Tun { .. });
            let fam = Family::of(&s.addr);
            match vs.family {
                Some(f) if f != fam && !tunnel => {
                    self.warn(
                        ErrorClass::GeneralError,
                        &s.pos,
                        format!("Address family of virtual server and real server {} don't match - skipping real server.", s.addr),
                    );
                    continue;
                }
                None if !tunnel => vs.family = Some(fam),
                _ => {}
            }
            self.fix_port(
                &vs,
                &name,
                is_fwmark,
                vs_port,
                s.method,
                &s.addr,
                &mut s.port,
                &s.pos.clone(),
            );
            if !seen.insert((s.addr, s.port)) {
                let msg = format!(
                    "VS {name}: real server {} is duplicated - removing second rs",
                    rs_name(&s.addr, s.port, vs.protocol)
                );
                self.warn(ErrorClass::GeneralError, &s.pos, msg);
                continue;
            }
            vs.real_servers.push(s);
        }
        if let Some(mut ss) = vs.sorry_server.take() {
            let m = ss.method.unwrap_or(vs.method);
            let p = ss.pos.clone();
            self.fix_port(
                &vs,
                &name,
                is_fwmark,
                vs_port,
                m,
                &ss.addr.clone(),
                &mut ss.port,
                &p,
            );
            vs.sorry_server = Some(ss);
        }
        if vs.real_servers.is_empty() {
            self.warn(
                ErrorClass::GeneralError,
                &pos,
                format!("Virtual server {name} has no real servers - ignoring"),
            );
            return None;
        }
        let total: u64 = vs.real_servers.iter().map(|s| s.weight as u64).sum();
        if (vs.quorum as u64) > total {
            let t = total.min(u32::MAX as u64) as u32;
            let shown = &name[..];
            let msg = format!(
                "Warning - quorum {} for {} exceeds total weight of real servers {t}, reducing quorum to {t}",
                vs.quorum,
                shown.strip_prefix("Virtual server ").unwrap_or(shown)
            );
            self.warn(ErrorClass::Warning, &pos, msg);
            vs.quorum = t;
        }
        if vs.quorum > 0 && vs.hysteresis >= vs.quorum {
            self.warn(
                ErrorClass::Warning,
                &pos,
                format!(
                    "Virtual server {name}: hysteresis {} >= quorum {}; setting hysteresis to {}",
                    vs.hysteresis,
                    vs.quorum,
                    vs.quorum - 1
                ),
            );
            vs.hysteresis = vs.quorum - 1;
        }
        Some(vs)
    }

    /// keepalived's port rules for real and sorry servers.
    #[allow(clippy::too_many_arguments)]
    fn fix_port(
        &mut self,
        vs: &VirtualServer,
        name: &str,
        is_fwmark: bool,
        vs_port: Option<u16>,
        method: ForwardMethod,
        addr: &IpAddr,
        port: &mut Option<u16>,
        pos: &Pos,
    ) {
        let nat = method == ForwardMethod::Nat;
        if is_fwmark {
            if !nat && port.is_some() {
                let msg = format!(
                    "WARNING - fwmark virtual server {name}, real server {} has port specified - clearing",
                    rs_name(addr, *port, vs.protocol)
                );
                self.warn(ErrorClass::Warning, pos, msg);
                *port = None;
            }
            return;
        }
        if matches!(vs.key, VsKey::Group(_)) {
            return;
        }
        match *port {
            None => *port = vs_port,
            Some(p) if !nat && Some(p) != vs_port => {
                let msg = format!(
                    "WARNING - virtual server {name} and real server {} ports don't match - resetting",
                    rs_name(addr, *port, vs.protocol)
                );
                self.warn(ErrorClass::Warning, pos, msg);
                *port = vs_port;
            }
            _ => {}
        }
    }

    fn validate_vrrp(&mut self) {
        let strict = self.cfg.global.vrrp_strict;
        // Scripts.
        let scripts = std::mem::take(&mut self.raw_scripts);
        // With enable_script_security keepalived will not fall back to root: a
        // script without a user needs `script_user` or the keepalived_script user.
        let no_default_user = self.cfg.global.enable_script_security
            && self.cfg.global.script_user.is_none()
            && !user_exists("keepalived_script");
        for (pos, name, script, mut s) in scripts {
            match script {
                Some(sc) if no_default_user && sc.user.is_none() => {
                    let p = sc.pos.clone();
                    self.warn(
                        ErrorClass::GeneralError,
                        &p,
                        "Unable to set default user keepalived_script for script".into(),
                    );
                    self.warn(
                        ErrorClass::GeneralError,
                        &p,
                        format!("Unable to set default user for vrrp script {name} - removing"),
                    );
                }
                Some(sc) => {
                    s.script = sc;
                    self.cfg.vrrp_scripts.push(s);
                }
                None => self.warn(
                    ErrorClass::GeneralError,
                    &pos,
                    format!("No script set for vrrp_script {name} - removing"),
                ),
            }
        }
        let script_names: HashSet<String> = self
            .cfg
            .vrrp_scripts
            .iter()
            .map(|s| s.name.clone())
            .collect();
        let global_version = self.cfg.global.vrrp_version;
        let raws = std::mem::take(&mut self.raw_instances);
        let mut seen_vrid: HashMap<(u8, bool, String, Option<IpAddr>), String> = HashMap::new();
        let mut names = HashSet::new();
        for r in raws {
            let mut inst = r.inst;
            let name = inst.name.clone();
            let pos = inst.pos.clone();
            if !names.insert(name.clone()) {
                self.warn(
                    ErrorClass::GeneralError,
                    &pos,
                    format!("vrrp instance {name} already defined"),
                );
                continue;
            }
            let Some(vrid) = r.vrid else {
                // keepalived's VRRP process exits here (the daemon stops), yet -t says 5.
                self.stop(&pos, format!("({name}) the virtual router id must be set"));
                continue;
            };
            inst.vrid = vrid;
            let v6 = inst
                .virtual_ipaddresses
                .first()
                .map(|a| a.addr.is_ipv6())
                .unwrap_or(false);
            inst.version = r.version.unwrap_or(if v6 { 3 } else { global_version });
            // VIP family must be uniform.
            if let Some(first) = inst.virtual_ipaddresses.first().map(|a| a.addr.is_ipv6()) {
                let mut keep = Vec::new();
                for a in std::mem::take(&mut inst.virtual_ipaddresses) {
                    if a.addr.is_ipv6() != first {
                        self.warn(
                            ErrorClass::GeneralError,
                            &a.pos,
                            format!(
                                "({name}): address family must match VRRP instance [{}] - ignoring",
                                a.addr
                            ),
                        );
                    } else {
                        keep.push(a);
                    }
                }
                inst.virtual_ipaddresses = keep;
            }
            let owner_by_state = inst.state == Some(VrrpState::Master) && r.priority.is_none();
            inst.priority = r.priority.unwrap_or(if owner_by_state { 255 } else { 100 });
            let strict_i = inst.strict_mode.unwrap_or(strict);
            if strict_i && inst.state == Some(VrrpState::Master) && inst.priority != 255 {
                self.warn(
                    ErrorClass::GeneralError,
                    &pos,
                    format!("({name}) State MASTER must match being address owner"),
                );
                inst.state = Some(VrrpState::Backup);
            }
            if let Some(a) = inst.authentication.clone() {
                if strict_i {
                    self.warn(
                        ErrorClass::GeneralError,
                        &pos,
                        format!("({name}) Strict mode does not support authentication. Ignoring."),
                    );
                    inst.authentication = None;
                } else if inst.version == 3 {
                    self.warn(
                        ErrorClass::GeneralError,
                        &pos,
                        format!("({name}) VRRPv3 does not support authentication. Ignoring."),
                    );
                    inst.authentication = None;
                } else if v6 && a.auth_type == AuthType::Ah {
                    self.warn(
                        ErrorClass::GeneralError,
                        &pos,
                        format!("({name}) AH authentication is not supported with IPv6. Ignoring."),
                    );
                    inst.authentication = None;
                } else if a.auth_type == AuthType::Ah
                    && inst.state == Some(VrrpState::Master)
                    && inst.priority != 255
                {
                    self.warn(
                        ErrorClass::GeneralError,
                        &pos,
                        format!("({name}) Initial state master is incompatible with AH authentication - clearing"),
                    );
                    inst.state = Some(VrrpState::Backup);
                }
            }
            if inst.virtual_ipaddresses.is_empty() {
                if inst.version == 3 || strict_i {
                    self.stop(
                        &pos,
                        format!("({name}) No VIP specified; at least one is required"),
                    );
                    continue;
                }
                self.warn(
                    ErrorClass::Warning,
                    &pos,
                    format!("({name}) No VIP specified; at least one is sensible"),
                );
            }
            if inst.nopreempt && inst.priority == 255 {
                self.warn(
                    ErrorClass::Warning,
                    &pos,
                    format!(
                        "({name}) nopreempt is incompatible with priority 255. resetting nopreempt"
                    ),
                );
                inst.nopreempt = false;
            } else if inst.nopreempt && inst.state == Some(VrrpState::Master) {
                self.warn(
                    ErrorClass::Warning,
                    &pos,
                    format!("({name}) Warning - nopreempt will not work with initial state MASTER - clearing"),
                );
                inst.nopreempt = false;
            }
            if !inst.preempt_delay.is_zero() && inst.state == Some(VrrpState::Master) {
                self.warn(
                    ErrorClass::Warning,
                    &pos,
                    format!("({name}) Warning - preempt delay will not work with initial state MASTER - clearing"),
                );
                inst.preempt_delay = std::time::Duration::ZERO;
            }
            // Advert interval rounding (docs/internals/vrrp.md#configuration).
            let us = inst.advert_int.as_micros() as u64;
            if inst.version == 2 {
                if us % 1_000_000 != 0 {
                    let secs = ((us + 500_000) / 1_000_000).max(1);
                    self.warn(
                        ErrorClass::Warning,
                        &pos,
                        format!(
                            "({name}) VRRPv2 advertisement interval {:.6}s must be an integer. rounding",
                            us as f64 / 1e6
                        ),
                    );
                    inst.advert_int = std::time::Duration::from_secs(secs);
                }
            } else {
                let cs = ((us + 5_000) / 10_000).clamp(1, 4095);
                inst.advert_int = std::time::Duration::from_millis(cs * 10);
            }
            let unicast = !inst.unicast_peers.is_empty();
            if inst.interface.is_none() && !(unicast && inst.unicast_src_ip.is_some()) {
                // keepalived stops the VRRP process for a multicast instance without one.
                self.stop(&pos, format!("({name}) no interface specified - an interface is required unless unicast_src_ip and unicast_peer are set"));
                continue;
            }
            // Identity as keepalived sees it: VRID, family, interface and (unicast) source.
            let key = (
                vrid,
                v6,
                inst.interface.clone().unwrap_or_default(),
                inst.unicast_src_ip,
            );
            if let Some(other) = seen_vrid.get(&key) {
                self.stop(
                    &pos,
                    format!(
                        "{other} and {name} both use VRID {vrid} with {} on interface {}",
                        if v6 { "IPv6" } else { "IPv4" },
                        key.2
                    ),
                );
                continue;
            }
            seen_vrid.insert(key, name.clone());
            // Track scripts must exist.
            let mut ts = Vec::new();
            for t in std::mem::take(&mut inst.track_scripts) {
                if script_names.contains(&t.name) {
                    ts.push(t);
                } else {
                    self.warn(
                        ErrorClass::GeneralError,
                        &t.pos,
                        format!("({name}) track script {} not found, ignoring...", t.name),
                    );
                }
            }
            inst.track_scripts = ts;
            self.cfg.vrrp_instances.push(inst);
        }
        // Sync groups.
        let inst_names: HashSet<String> = self
            .cfg
            .vrrp_instances
            .iter()
            .map(|i| i.name.clone())
            .collect();
        let mut member_of: HashMap<String, String> = HashMap::new();
        for mut g in std::mem::take(&mut self.raw_groups) {
            let mut members = Vec::new();
            for m in std::mem::take(&mut g.members) {
                if !inst_names.contains(&m) {
                    let msg = format!(
                        "Virtual router {m} specified in sync group {} doesn't exist - ignoring",
                        g.name
                    );
                    self.warn(ErrorClass::GeneralError, &g.pos, msg);
                } else if let Some(o) = member_of.get(&m) {
                    let msg = format!("Virtual router {m} cannot exist in more than one sync group; ignoring {} (already in {o})", g.name);
                    self.warn(ErrorClass::GeneralError, &g.pos, msg);
                } else {
                    members.push(m);
                }
            }
            g.members = members;
            if g.members.is_empty() {
                let msg = format!("Sync group {} has no virtual router(s). removing", g.name);
                self.warn(ErrorClass::GeneralError, &g.pos, msg);
                continue;
            }
            if g.members.len() == 1 {
                // keepalived 2.2.7 warns and keeps the group.
                let msg = format!(
                    "Sync group {} has only 1 virtual router(s) - this probably isn't what you want",
                    g.name
                );
                self.warn(ErrorClass::Warning, &g.pos, msg);
            }
            for m in &g.members {
                member_of.insert(m.clone(), g.name.clone());
            }
            self.cfg.vrrp_sync_groups.push(g);
        }
        if let Some(d) = &self.cfg.global.lvs_sync_daemon {
            if let Some(i) = &d.instance {
                if !inst_names.contains(i) {
                    let (pos, msg) = (
                        d.pos.clone(),
                        format!("lvs_sync_daemon vrrp instance {i} not found - ignoring"),
                    );
                    self.warn(ErrorClass::GeneralError, &pos, msg);
                }
            }
        }
    }

    /// keepalived: scripts that exist and would run as root without
    /// `enable_script_security` give `SECURITY VIOLATION` (exit 6).
    fn script_security(&mut self) {
        let g = &self.cfg.global;
        let security_on = g.enable_script_security;
        let default_user_root = g.script_user.is_none() && !user_exists("keepalived_script");
        let root = |s: &Script| match &s.user {
            Some(u) => u == "root",
            None => default_user_root,
        };
        let insecure = |s: &Script| {
            !security_on && root(s) && s.argv.first().is_some_and(|p| resolve_program(p))
        };
        // VRRP process: vrrp_scripts in use (tracked somewhere) and notify scripts.
        let tracked: HashSet<&str> = self
            .cfg
            .vrrp_instances
            .iter()
            .flat_map(|i| i.track_scripts.iter())
            .chain(
                self.cfg
                    .vrrp_sync_groups
                    .iter()
                    .flat_map(|g| g.track_scripts.iter()),
            )
            .map(|t| t.name.as_str())
            .collect();
        let mut vrrp: Vec<&Script> = Vec::new();
        for s in &self.cfg.vrrp_scripts {
            if tracked.contains(s.name.as_str()) {
                vrrp.push(&s.script);
            }
        }
        for i in &self.cfg.vrrp_instances {
            vrrp.extend(i.notify.scripts());
        }
        for sg in &self.cfg.vrrp_sync_groups {
            vrrp.extend(sg.notify.scripts());
        }
        // Checker process: quorum/notify scripts and MISC_CHECK programs.
        let mut check: Vec<&Script> = Vec::new();
        for vs in &self.cfg.virtual_servers {
            check.extend(vs.quorum_up.iter());
            check.extend(vs.quorum_down.iter());
            for rs in &vs.real_servers {
                check.extend(rs.notify_up.iter());
                check.extend(rs.notify_down.iter());
                for c in &rs.checkers {
                    if let CheckerKind::Misc(m) = &c.kind {
                        check.push(&m.path);
                    }
                }
            }
        }
        // Tracked scripts whose program cannot be found are disabled, and keepalived
        // counts that as an error (notify and MISC scripts are only logged). A
        // script starting `</` only tests that a file can be opened. Observed:
        // with `net_namespace` set, keepalived -t does not get as far as this.
        let in_netns =
            self.cfg.unmodelled.iter().any(|u| {
                u.context.is_empty() && u.words.first().is_some_and(|w| w == "net_namespace")
            });
        let mut disabled: Vec<(Pos, String)> = Vec::new();
        if !self.cfg.vrrp_instances.is_empty() && !in_netns {
            for s in &self.cfg.vrrp_scripts {
                let prog = s.script.argv.first().map(String::as_str).unwrap_or("");
                let file_test = prog
                    .strip_prefix('<')
                    .is_some_and(|r| r.trim_start().starts_with('/'));
                if tracked.contains(s.name.as_str()) && !file_test && !resolve_program(prog) {
                    disabled.push((s.pos.clone(), s.name.clone()));
                }
            }
        }
        let bad_check = check.iter().find(|s| insecure(s)).map(|s| s.pos.clone());
        let bad_vrrp = vrrp.iter().find(|s| insecure(s)).map(|s| s.pos.clone());
        for (pos, name) in disabled {
            self.warn(
                ErrorClass::GeneralError,
                &pos,
                format!("Disabling track script {name} since not found/accessible"),
            );
        }
        if let Some(pos) = bad_check {
            self.warn(
                ErrorClass::SecurityError,
                &pos,
                "SECURITY VIOLATION - check scripts are being executed but script_security not enabled.".into(),
            );
        }
        if let Some(pos) = bad_vrrp {
            self.warn(
                ErrorClass::SecurityError,
                &pos,
                "SECURITY VIOLATION - scripts are being executed but script_security not enabled."
                    .into(),
            );
        }
    }
}

pub(crate) fn user_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd")
        .map(|s| s.lines().any(|l| l.split(':').next() == Some(name)))
        .unwrap_or(false)
}

/// Does the program exist (absolute/relative path, or found on `PATH`)?
fn resolve_program(p: &str) -> bool {
    if p.is_empty() {
        return false;
    }
    if p.contains('/') {
        return Path::new(p).is_file();
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    path.split(':')
        .filter(|d| !d.is_empty())
        .any(|d| Path::new(d).join(p).is_file())
}

/// Is `prog` resolvable the way the script-security check resolves it? (For tests
/// whose expectation depends on the machine, e.g. whether `killall` is installed.)
pub fn program_exists(prog: &str) -> bool {
    resolve_program(prog)
}

/// Does network interface `name` exist in the current network namespace?
pub fn interface_exists(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('/')
        && name != "."
        && name != ".."
        && Path::new("/sys/class/net").join(name).exists()
}

impl Parser {
    /// keepalived checks every interface the configuration names against the
    /// current network namespace and refuses to run without them (unless
    /// `dynamic_interfaces`). `exists` answers for one interface name.
    pub(crate) fn check_interfaces(&mut self, exists: &dyn Fn(&str) -> bool) {
        if self.cfg.global.dynamic_interfaces {
            return;
        }
        let mut missing: Vec<(Pos, String)> = Vec::new();
        let mut need = |pos: &Pos, name: &str, what: String| {
            if !exists(name) {
                missing.push((
                    pos.clone(),
                    format!("WARNING - interface {name} for {what} doesn't exist"),
                ));
            }
        };
        for i in &self.cfg.vrrp_instances {
            if let Some(ifn) = &i.interface {
                need(&i.pos, ifn, format!("vrrp_instance {}", i.name));
            }
            for t in &i.track_interfaces {
                need(
                    &i.pos,
                    &t.name,
                    format!("track_interface of vrrp_instance {}", i.name),
                );
            }
            for a in i
                .virtual_ipaddresses
                .iter()
                .chain(&i.virtual_ipaddresses_excluded)
            {
                if let Some(d) = &a.dev {
                    need(&a.pos, d, format!("ip address {}/{}", a.addr, a.prefix));
                }
            }
            for r in &i.virtual_routes {
                if let Some(d) = &r.dev {
                    need(&r.pos, d, format!("route {}/{}", r.dest.addr, r.dest.len));
                }
            }
        }
        for g in &self.cfg.vrrp_sync_groups {
            for t in &g.track_interfaces {
                need(
                    &g.pos,
                    &t.name,
                    format!("track_interface of vrrp_sync_group {}", g.name),
                );
            }
        }
        for a in &self.cfg.static_ipaddresses {
            if let Some(d) = &a.dev {
                need(&a.pos, d, format!("ip address {}/{}", a.addr, a.prefix));
            }
        }
        for r in &self.cfg.static_routes {
            if let Some(d) = &r.dev {
                need(&r.pos, d, format!("route {}/{}", r.dest.addr, r.dest.len));
            }
        }
        if let Some(d) = &self.cfg.global.lvs_sync_daemon {
            need(&d.pos, &d.interface, "lvs_sync_daemon".into());
        }
        if missing.is_empty() {
            return;
        }
        let first = missing[0].0.clone();
        // Each "doesn't exist" line is an ordinary error in keepalived (so `-t` exits 5); the
        // summary line below is the "cannot run" one.
        for (pos, msg) in missing {
            self.warn(ErrorClass::GeneralError, &pos, msg);
        }
        self.warn(
            ErrorClass::BadInterface,
            &first,
            "Non-existent interface specified in configuration".into(),
        );
    }
}
