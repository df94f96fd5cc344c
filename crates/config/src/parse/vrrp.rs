//! VRRP: `vrrp_script`, `vrrp_sync_group`, `vrrp_instance` and the static/tracked addresses, routes and rules.

use std::net::IpAddr;
use std::time::Duration;

use super::{parse_ip, parse_prefix, Parser, RawInstance};
use crate::diag::ErrorClass;
use crate::model::*;
use crate::tree::Node;

impl Parser {
    pub(super) fn vrrp_script(&mut self, n: &Node) {
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

    pub(super) fn vrrp_sync_group(&mut self, n: &Node) {
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
                self.note_not_acted_on(k, &format!("vrrp_sync_group {name}"));
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

    pub(super) fn vrrp_instance(&mut self, n: &Node) {
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
                self.note_not_acted_on(k, &ctx);
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

    /// VIP / static address lines (docs/internals/vrrp.md#configuration).
    pub(super) fn ip_addresses(
        &mut self,
        kids: &[Node],
        _owner: &str,
        is_static: bool,
    ) -> Vec<IpAddress> {
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
    pub(super) fn routes(&mut self, kids: &[Node], tracked: bool) -> Vec<Route> {
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

    pub(super) fn rules(&mut self, kids: &[Node]) -> Vec<Rule> {
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
