//! `global_defs`: process-wide settings, LVS timeouts and the LVS sync daemon.

use std::net::IpAddr;
use std::time::Duration;

use super::{parse_ip, Parser, MAX_US};
use crate::diag::ErrorClass;
use crate::lexer::Token;
use crate::model::*;
use crate::tree::Node;

impl Parser {
    pub(super) fn global_defs(&mut self, kids: &[Node]) {
        for n in kids {
            self.note_not_acted_on(n, "global_defs");
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
                "rvs_announce_table" => g.rvs_announce = self.rvs_announce(n),
                "rvs_docker" => g.rvs_docker = self.rvs_docker(n),
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

    /// `rvs_docker [SOCKET]` (rvs addition): the dockerd API socket, an absolute path.
    fn rvs_docker(&mut self, n: &Node) -> Option<std::path::PathBuf> {
        if n.len() > 2 {
            let extra = n.word(2)?.clone();
            self.err_tok(
                ErrorClass::GeneralError,
                n,
                &extra,
                "rvs_docker takes one argument, the dockerd socket path".to_string(),
            );
            return None;
        }
        let Some(t) = n.word(1).cloned() else {
            return Some(std::path::PathBuf::from("/var/run/docker.sock"));
        };
        let p = t.text.strip_prefix("unix://").unwrap_or(&t.text);
        if !p.starts_with('/') {
            self.err_tok(
                ErrorClass::GeneralError,
                n,
                &t,
                format!(
                    "rvs_docker {}: the dockerd socket must be an absolute path",
                    t.text
                ),
            );
            return None;
        }
        Some(std::path::PathBuf::from(p))
    }

    /// `rvs_announce_table TABLE [protocol P] [delay SECS]` (rvs addition).
    fn rvs_announce(&mut self, n: &Node) -> Option<RvsAnnounce> {
        let t = self.need(n, 1)?.clone();
        let table = self.uint_tok(n, &t, 1, u64::from(u32::MAX))? as u32;
        if (253..=255).contains(&table) {
            self.err_tok(
                ErrorClass::GeneralError,
                n,
                &t,
                format!(
                    "rvs_announce_table {table}: use a table of its own (not default 253, main 254, local 255)"
                ),
            );
            return None;
        }
        let mut a = RvsAnnounce {
            table,
            protocol: 252,
            delay: Duration::from_secs(3),
        };
        let mut i = 2;
        while i < n.len() {
            let w = n.arg(i).unwrap_or("").to_string();
            let Some(v) = n.word(i + 1).cloned() else {
                self.err(
                    ErrorClass::GeneralError,
                    n,
                    format!("rvs_announce_table: no value after '{w}'"),
                );
                return None;
            };
            match w.as_str() {
                "protocol" => {
                    let p = self.uint_tok(n, &v, 1, 255)? as u8;
                    if matches!(p, 1..=4 | 12) {
                        self.err_tok(
                            ErrorClass::GeneralError,
                            n,
                            &v,
                            format!(
                                "rvs_announce_table: protocol {p} is not ours to use (redirect, kernel, boot, static, bird)"
                            ),
                        );
                        return None;
                    }
                    a.protocol = p;
                }
                "delay" => a.delay = self.timer_tok(n, &v, 0, 3_600_000_000)?,
                _ => {
                    self.err(
                        ErrorClass::GeneralError,
                        n,
                        format!("Unknown option {w} specified for rvs_announce_table"),
                    );
                    return None;
                }
            }
            i += 2;
        }
        Some(a)
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
