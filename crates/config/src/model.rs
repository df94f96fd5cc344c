//! The typed configuration model: plain data, defaults applied, validated.
//!
//! Field docs give keepalived's keyword and default. Optional fields that inherit
//! (checker → real server → virtual server → checker-type default) stay `None` here;
//! [`Checker::timing`] resolves them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::diag::Pos;

/// A whole keepalived configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// `global_defs { … }` (all blocks merged, later keys win).
    pub global: GlobalDefs,
    /// `virtual_server_group NAME { … }`, in file order.
    pub virtual_server_groups: Vec<VirtualServerGroup>,
    /// `virtual_server … { … }` that survived validation, in file order.
    pub virtual_servers: Vec<VirtualServer>,
    /// `vrrp_script NAME { … }` that survived validation.
    pub vrrp_scripts: Vec<VrrpScript>,
    /// `vrrp_instance NAME { … }`.
    pub vrrp_instances: Vec<VrrpInstance>,
    /// `vrrp_sync_group NAME { … }` with at least two members.
    pub vrrp_sync_groups: Vec<VrrpSyncGroup>,
    /// `static_ipaddress { … }`.
    pub static_ipaddresses: Vec<IpAddress>,
    /// `static_routes { … }`.
    pub static_routes: Vec<Route>,
    /// `static_rules { … }`.
    pub static_rules: Vec<Rule>,
    /// `SSL { … }` for SSL_GET checkers; `None` = auto-generated context.
    pub ssl: Option<SslContext>,
    /// Keywords rvs recognises as keepalived's but does not model (e.g.
    /// `net_namespace`, `use_vmac`, SNMP settings), kept so nothing is lost silently.
    pub unmodelled: Vec<RawSetting>,
    /// Keywords parsed into this model whose effect rvsd does not implement (static and
    /// virtual addresses/routes/rules, SMTP alerts, `vrrp_startup_delay`): `rvsd -t` and
    /// `rvsd -f` name each with its position, so none is ignored silently.
    pub not_acted_on: Vec<RawSetting>,
}

/// A recognised keepalived keyword whose meaning rvs does not implement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSetting {
    /// Where it was written.
    pub pos: Pos,
    /// The block it was in (`global_defs`, `vrrp_instance VI_1`, …; empty at top level).
    pub context: String,
    /// The keyword and its words.
    pub words: Vec<String>,
}

/// A script or program with arguments, run as a user (keepalived's notify/misc scripts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Where it was configured.
    pub pos: Pos,
    /// Program and arguments, split by keepalived's quoted/escaped tokenizer.
    pub argv: Vec<String>,
    /// `user` to run as (`None` = `script_user` / `keepalived_script` / root).
    pub user: Option<String>,
    /// `group` to run as.
    pub group: Option<String>,
}

impl GlobalDefs {
    /// The user (and group) a script runs as, as keepalived chooses it: the script's own
    /// `user`, else `script_user`, else `keepalived_script` when that user exists; `None`
    /// means root (docs/internals/keepalived.md#global_defs).
    pub fn script_identity(&self, s: &Script) -> Option<(String, Option<String>)> {
        match (&s.user, &self.script_user) {
            (Some(u), _) => Some((u.clone(), s.group.clone())),
            (None, Some((u, g))) => Some((u.clone(), g.clone())),
            (None, None) => crate::validate::user_exists("keepalived_script")
                .then(|| ("keepalived_script".to_string(), None)),
        }
    }
}

/// `global_defs`.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalDefs {
    /// `router_id` (default: host name; only used in SMTP alerts).
    pub router_id: Option<String>,
    /// `notification_email { … }`.
    pub notification_email: Vec<String>,
    /// `notification_email_from` (default `keepalived@<hostname>`).
    pub notification_email_from: Option<String>,
    /// `smtp_server IP [PORT]` (port default 25).
    pub smtp_server: Option<(IpAddr, u16)>,
    /// `smtp_helo_name`.
    pub smtp_helo_name: Option<String>,
    /// `smtp_connect_timeout` (seconds).
    pub smtp_connect_timeout: Option<Duration>,
    /// `smtp_alert [BOOL]`.
    pub smtp_alert: Option<bool>,
    /// `smtp_alert_vrrp [BOOL]`.
    pub smtp_alert_vrrp: Option<bool>,
    /// `smtp_alert_checker [BOOL]`.
    pub smtp_alert_checker: Option<bool>,
    /// `checker_log_all_failures [BOOL]` (false).
    pub checker_log_all_failures: bool,
    /// `default_interface` (eth0).
    pub default_interface: String,
    /// `vrrp_mcast_group4` (224.0.0.18).
    pub vrrp_mcast_group4: Ipv4Addr,
    /// `vrrp_mcast_group6` (ff02::12).
    pub vrrp_mcast_group6: Ipv6Addr,
    /// `vrrp_version` (2).
    pub vrrp_version: u8,
    /// `vrrp_garp_master_delay` (5 s; 0 = none).
    pub vrrp_garp_master_delay: Duration,
    /// `vrrp_garp_master_repeat` (5).
    pub vrrp_garp_master_repeat: u32,
    /// `vrrp_garp_lower_prio_delay` (default: the master delay).
    pub vrrp_garp_lower_prio_delay: Option<Duration>,
    /// `vrrp_garp_lower_prio_repeat` (default: the master repeat).
    pub vrrp_garp_lower_prio_repeat: Option<u32>,
    /// `vrrp_garp_master_refresh` (0 = off).
    pub vrrp_garp_master_refresh: Duration,
    /// `vrrp_garp_master_refresh_repeat` (1).
    pub vrrp_garp_master_refresh_repeat: u32,
    /// `vrrp_garp_interval` (0 = no spacing).
    pub vrrp_garp_interval: Duration,
    /// `vrrp_gna_interval` (0 = no spacing).
    pub vrrp_gna_interval: Duration,
    /// `vrrp_min_garp [BOOL]`.
    pub vrrp_min_garp: bool,
    /// `vrrp_down_timer_adverts` 1..100 (3).
    pub vrrp_down_timer_adverts: u32,
    /// `vrrp_lower_prio_no_advert [BOOL]` (false; true in strict mode).
    pub vrrp_lower_prio_no_advert: Option<bool>,
    /// `vrrp_higher_prio_send_advert [BOOL]` (false).
    pub vrrp_higher_prio_send_advert: bool,
    /// `vrrp_check_unicast_src`.
    pub vrrp_check_unicast_src: bool,
    /// `vrrp_skip_check_adv_addr`.
    pub vrrp_skip_check_adv_addr: bool,
    /// `vrrp_strict`.
    pub vrrp_strict: bool,
    /// `vrrp_startup_delay` (0).
    pub vrrp_startup_delay: Duration,
    /// `lvs_sync_daemon …`.
    pub lvs_sync_daemon: Option<LvsSyncDaemon>,
    /// rvs addition: `rvs_announce_table TABLE [protocol P] [delay SECS]` (scale-out route
    /// injection, as `rvsd --announce-table`).
    pub rvs_announce: Option<RvsAnnounce>,
    /// rvs addition: `rvs_docker [SOCKET]`: labelled Docker containers become real servers
    /// (as `rvsd --docker`); the dockerd API socket, `/var/run/docker.sock` by default.
    pub rvs_docker: Option<std::path::PathBuf>,
    /// `lvs_timeouts [tcp S] [tcpfin S] [udp S]` (unset = unchanged).
    pub lvs_timeouts: LvsTimeouts,
    /// `lvs_flush`.
    pub lvs_flush: bool,
    /// `lvs_flush_on_stop [VS]`.
    pub lvs_flush_on_stop: Option<FlushOnStop>,
    /// `notify_fifo PATH [user [group]]`.
    pub notify_fifo: Option<Script>,
    /// `vrrp_notify_fifo`.
    pub vrrp_notify_fifo: Option<Script>,
    /// `lvs_notify_fifo`.
    pub lvs_notify_fifo: Option<Script>,
    /// `script_user USER [GROUP]`.
    pub script_user: Option<(String, Option<String>)>,
    /// `enable_script_security`.
    pub enable_script_security: bool,
    /// `dynamic_interfaces [allow_if_changes]`.
    pub dynamic_interfaces: bool,
    /// `reload_check_config [LOGFILE]`: `Some(None)` = on without a log file.
    pub reload_check_config: Option<Option<String>>,
}

impl Default for GlobalDefs {
    fn default() -> Self {
        GlobalDefs {
            router_id: None,
            notification_email: Vec::new(),
            notification_email_from: None,
            smtp_server: None,
            smtp_helo_name: None,
            smtp_connect_timeout: None,
            smtp_alert: None,
            smtp_alert_vrrp: None,
            smtp_alert_checker: None,
            checker_log_all_failures: false,
            default_interface: "eth0".into(),
            vrrp_mcast_group4: Ipv4Addr::new(224, 0, 0, 18),
            vrrp_mcast_group6: Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12),
            vrrp_version: 2,
            vrrp_garp_master_delay: Duration::from_secs(5),
            vrrp_garp_master_repeat: 5,
            vrrp_garp_lower_prio_delay: None,
            vrrp_garp_lower_prio_repeat: None,
            vrrp_garp_master_refresh: Duration::ZERO,
            vrrp_garp_master_refresh_repeat: 1,
            vrrp_garp_interval: Duration::ZERO,
            vrrp_gna_interval: Duration::ZERO,
            vrrp_min_garp: false,
            vrrp_down_timer_adverts: 3,
            vrrp_lower_prio_no_advert: None,
            vrrp_higher_prio_send_advert: false,
            vrrp_check_unicast_src: false,
            vrrp_skip_check_adv_addr: false,
            vrrp_strict: false,
            vrrp_startup_delay: Duration::ZERO,
            lvs_sync_daemon: None,
            rvs_announce: None,
            rvs_docker: None,
            lvs_timeouts: LvsTimeouts::default(),
            lvs_flush: false,
            lvs_flush_on_stop: None,
            notify_fifo: None,
            vrrp_notify_fifo: None,
            lvs_notify_fifo: None,
            script_user: None,
            enable_script_security: false,
            dynamic_interfaces: false,
            reload_check_config: None,
        }
    }
}

/// `lvs_timeouts`: IPVS protocol timeouts (`None` = leave unchanged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LvsTimeouts {
    /// `tcp S`.
    pub tcp: Option<Duration>,
    /// `tcpfin S`.
    pub tcpfin: Option<Duration>,
    /// `udp S`.
    pub udp: Option<Duration>,
}

/// `lvs_flush_on_stop [VS]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOnStop {
    /// Flush everything.
    All,
    /// Delete only the configured virtual services.
    VirtualServers,
}

/// rvs addition: `rvs_announce_table TABLE [protocol P] [delay SECS]`: keep a route for every
/// VIP that can be served in kernel routing table TABLE with route protocol P, for a routing
/// daemon to announce; on stop withdraw them and wait SECS before draining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RvsAnnounce {
    /// Kernel routing table (1..=4294967295 except 253, 254, 255).
    pub table: u32,
    /// Route protocol number (default 252; not 0-4 or 12).
    pub protocol: u8,
    /// Convergence delay after the withdrawal (default 3 s).
    pub delay: Duration,
}

/// `lvs_sync_daemon IFNAME [[inst] VRRP_INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group IP]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvsSyncDaemon {
    /// Where it was configured.
    pub pos: Pos,
    /// Interface the sync messages use.
    pub interface: String,
    /// VRRP instance whose state decides master/backup sync daemon (`None`: both run).
    pub instance: Option<String>,
    /// Sync id 0..255 (default: the instance's VRID, or 0).
    pub sync_id: Option<u8>,
    /// `maxlen` 1..65507.
    pub maxlen: Option<u16>,
    /// `port` (8848).
    pub port: u16,
    /// `ttl` 1..255.
    pub ttl: Option<u8>,
    /// `group` (224.0.0.81).
    pub group: IpAddr,
}

/// Address family (`inet`, `inet6`) and IPVS transport protocol (keepalived's default when
/// `protocol` is missing is UDP): the workspace's one type for each.
pub use rvs_core::{Family, Protocol};

/// `virtual_server_group NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServerGroup {
    /// Where it was defined.
    pub pos: Pos,
    /// The group name.
    pub name: String,
    /// Entries in file order.
    pub entries: Vec<VsgEntry>,
}

/// One line of a `virtual_server_group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VsgEntry {
    /// `IP [PORT]`, `A.B.C.D-E [PORT]`, `A-B [PORT]`, `IP/LEN [PORT]`: the inclusive
    /// address range `first..=last` (equal for a single address); port `None` = 0.
    Range {
        /// First address.
        first: IpAddr,
        /// Last address (same family).
        last: IpAddr,
        /// Port; `None` when written as 0 or omitted.
        port: Option<u16>,
    },
    /// `fwmark N [inet|inet6]`.
    Fwmark {
        /// The mark.
        mark: u32,
        /// Family if given.
        family: Option<Family>,
    },
}

/// What a `virtual_server` header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VsKey {
    /// `virtual_server IP [PORT]` (port `None` = 0).
    Addr {
        /// Virtual IP.
        addr: IpAddr,
        /// Virtual port.
        port: Option<u16>,
    },
    /// `virtual_server fwmark N`.
    Fwmark(u32),
    /// `virtual_server group NAME`.
    Group(String),
}

/// IPVS scheduler (`lvs_sched` / `lb_algo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Lblc,
    Sh,
    Mh,
    Dh,
    Fo,
    Ovf,
    Lblcr,
    Sed,
    Nq,
    Twos,
    /// rvs's latency-aware scheduler (not a kernel one).
    Pewma,
}

impl Scheduler {
    /// Parse keepalived's (lower-case, case-sensitive) scheduler name.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "rr" => Scheduler::Rr,
            "wrr" => Scheduler::Wrr,
            "lc" => Scheduler::Lc,
            "wlc" => Scheduler::Wlc,
            "lblc" => Scheduler::Lblc,
            "sh" => Scheduler::Sh,
            "mh" => Scheduler::Mh,
            "dh" => Scheduler::Dh,
            "fo" => Scheduler::Fo,
            "ovf" => Scheduler::Ovf,
            "lblcr" => Scheduler::Lblcr,
            "sed" => Scheduler::Sed,
            "nq" => Scheduler::Nq,
            "twos" => Scheduler::Twos,
            "pewma" => Scheduler::Pewma,
            _ => return None,
        })
    }

    /// The IPVS name.
    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Sh => "sh",
            Scheduler::Mh => "mh",
            Scheduler::Dh => "dh",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Twos => "twos",
            Scheduler::Pewma => "pewma",
        }
    }
}

/// Tunnel encapsulation for `TUN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelType {
    /// IP-in-IP (default).
    Ipip,
    /// GUE with its UDP port.
    Gue {
        /// Destination UDP port.
        port: u16,
    },
    /// GRE.
    Gre,
}

/// Tunnel checksum option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelCsum {
    /// `nocsum` (default).
    NoCsum,
    /// `csum`.
    Csum,
    /// `remcsum` (GUE only).
    RemCsum,
}

/// Forwarding method (`lvs_method` / `lb_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardMethod {
    /// NAT (masquerading; keepalived's default, with a warning).
    Nat,
    /// Direct routing.
    Dr,
    /// Tunnelling.
    Tun {
        /// Encapsulation.
        tunnel: TunnelType,
        /// Checksum option.
        csum: TunnelCsum,
    },
}

/// Scheduler flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags {
    /// `flag-1`.
    pub flag_1: bool,
    /// `flag-2`.
    pub flag_2: bool,
    /// `flag-3`.
    pub flag_3: bool,
    /// `sh-port` (sh only).
    pub sh_port: bool,
    /// `sh-fallback` (sh only).
    pub sh_fallback: bool,
    /// `mh-port` (mh only).
    pub mh_port: bool,
    /// `mh-fallback` (mh only).
    pub mh_fallback: bool,
}

/// `persistence_granularity`: IPv4 netmask or IPv6 prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// Dotted IPv4 netmask.
    V4(Ipv4Addr),
    /// IPv6 prefix length 1..128.
    V6(u8),
}

/// `sorry_server IP [PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SorryServer {
    /// Where it was configured.
    pub pos: Pos,
    /// Address.
    pub addr: IpAddr,
    /// Port (resolved like a real server's).
    pub port: Option<u16>,
    /// `sorry_server_inhibit`.
    pub inhibit: bool,
    /// `sorry_server_lvs_method` (default: the virtual server's).
    pub method: Option<ForwardMethod>,
}

/// `virtual_server`.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualServer {
    /// Where the header is.
    pub pos: Pos,
    /// Address/port, fwmark or group.
    pub key: VsKey,
    /// Address family (from the address, `ip_family`, or the real servers).
    pub family: Option<Family>,
    /// `protocol` (UDP when missing, as keepalived). `None` for fwmark services.
    pub protocol: Option<Protocol>,
    /// `lvs_sched` / `lb_algo` (wlc).
    pub scheduler: Scheduler,
    /// `lvs_method` / `lb_kind` (NAT).
    pub method: ForwardMethod,
    /// `persistence_timeout` seconds (0 = not persistent; no value = 360).
    pub persistence_timeout: u32,
    /// `persistence_granularity`.
    pub persistence_granularity: Option<Granularity>,
    /// `persistence_engine`.
    pub persistence_engine: Option<String>,
    /// `ops` (one-packet scheduling, UDP only).
    pub ops: bool,
    /// Scheduler flags.
    pub sched_flags: SchedFlags,
    /// `delay_loop` (60 s).
    pub delay_loop: Duration,
    /// `connect_timeout` (inherited by checkers; checker default 5 s).
    pub connect_timeout: Option<Duration>,
    /// `retry` (inherited).
    pub retry: Option<u32>,
    /// `delay_before_retry` (inherited).
    pub delay_before_retry: Option<Duration>,
    /// `warmup` (inherited; default = delay_loop).
    pub warmup: Option<Duration>,
    /// `inhibit_on_failure` (inherited by real servers).
    pub inhibit_on_failure: bool,
    /// `alpha` (inherited by real servers).
    pub alpha: bool,
    /// `omega`.
    pub omega: bool,
    /// `quorum` (1; clamped to the total real-server weight).
    pub quorum: u32,
    /// `hysteresis` (0; clamped below quorum).
    pub hysteresis: u32,
    /// `quorum_up`.
    pub quorum_up: Option<Script>,
    /// `quorum_down`.
    pub quorum_down: Option<Script>,
    /// `weight`: default real-server weight (1).
    pub weight: u32,
    /// `sorry_server`.
    pub sorry_server: Option<SorryServer>,
    /// `ha_suspend`.
    pub ha_suspend: bool,
    /// `virtualhost` (default Host for HTTP/SSL checkers).
    pub virtualhost: Option<String>,
    /// `smtp_alert [BOOL]`.
    pub smtp_alert: Option<bool>,
    /// `real_server` blocks that survived validation.
    pub real_servers: Vec<RealServer>,
}

/// `real_server IP [PORT]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RealServer {
    /// Where the header is.
    pub pos: Pos,
    /// Address.
    pub addr: IpAddr,
    /// Port after keepalived's port rules (`None` = 0, e.g. fwmark services).
    pub port: Option<u16>,
    /// `weight` 0..2147483647 (default: the VS `weight`).
    pub weight: u32,
    /// `lvs_method` (default: the VS method).
    pub method: ForwardMethod,
    /// `uthreshold` (0).
    pub uthreshold: u32,
    /// `lthreshold` (0).
    pub lthreshold: u32,
    /// `inhibit_on_failure` (default: the VS setting).
    pub inhibit_on_failure: bool,
    /// `alpha` (default: the VS setting).
    pub alpha: bool,
    /// `notify_up`.
    pub notify_up: Option<Script>,
    /// `notify_down`.
    pub notify_down: Option<Script>,
    /// `retry` (inherited by checkers).
    pub retry: Option<u32>,
    /// `delay_before_retry`.
    pub delay_before_retry: Option<Duration>,
    /// `warmup`.
    pub warmup: Option<Duration>,
    /// `connect_timeout`.
    pub connect_timeout: Option<Duration>,
    /// `delay_loop`.
    pub delay_loop: Option<Duration>,
    /// `smtp_alert [BOOL]` (real servers default to true, see docs/internals/keepalived.md#global_defs).
    pub smtp_alert: Option<bool>,
    /// `virtualhost`.
    pub virtualhost: Option<String>,
    /// Health checkers; none = always up.
    pub checkers: Vec<Checker>,
}

/// Keywords shared by the connecting checkers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckerCommon {
    /// `connect_ip` (default: the real server address).
    pub connect_ip: Option<IpAddr>,
    /// `connect_port` (default: the real server port).
    pub connect_port: Option<u16>,
    /// `bindto`.
    pub bindto: Option<IpAddr>,
    /// `bind_port`.
    pub bind_port: Option<u16>,
    /// `bind_if`.
    pub bind_if: Option<String>,
    /// `connect_timeout`.
    pub connect_timeout: Option<Duration>,
    /// `fwmark` (SO_MARK).
    pub fwmark: Option<u32>,
    /// `retry` (0 allowed here).
    pub retry: Option<u32>,
    /// `delay_before_retry`.
    pub delay_before_retry: Option<Duration>,
    /// `warmup`.
    pub warmup: Option<Duration>,
    /// `delay_loop`.
    pub delay_loop: Option<Duration>,
    /// `alpha [BOOL]`.
    pub alpha: Option<bool>,
    /// `log_all_failures [BOOL]`.
    pub log_all_failures: Option<bool>,
}

/// A health checker of a real server.
#[derive(Debug, Clone, PartialEq)]
pub struct Checker {
    /// Where the checker block starts.
    pub pos: Pos,
    /// Shared keywords.
    pub common: CheckerCommon,
    /// Type-specific settings.
    pub kind: CheckerKind,
}

/// Checker types.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckerKind {
    /// `TCP_CHECK`: connect and close.
    Tcp,
    /// `HTTP_GET`.
    Http(HttpCheck),
    /// `SSL_GET` (HTTP over TLS).
    Ssl(HttpCheck),
    /// `MISC_CHECK`.
    Misc(MiscCheck),
    /// `SMTP_CHECK`.
    Smtp(SmtpCheck),
    /// `DNS_CHECK`.
    Dns(DnsCheck),
    /// `UDP_CHECK`.
    Udp(UdpCheck),
    /// `PING_CHECK`.
    Ping,
    /// `AGENT_CHECK` (rvs's own): HAProxy's agent protocol.
    Agent(AgentCheck),
}

/// `AGENT_CHECK { … }`: besides the TCP_CHECK keywords, `send`, `min_weight`, `max_weight`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentCheck {
    /// `send STRING`: written after connecting.
    pub send: Option<String>,
    /// `min_weight N` (default 0).
    pub min_weight: Option<u32>,
    /// `max_weight N` (default: the real server's weight).
    pub max_weight: Option<u32>,
}

impl CheckerKind {
    /// keepalived's block keyword for this checker.
    pub fn keyword(&self) -> &'static str {
        match self {
            CheckerKind::Tcp => "TCP_CHECK",
            CheckerKind::Http(_) => "HTTP_GET",
            CheckerKind::Ssl(_) => "SSL_GET",
            CheckerKind::Misc(_) => "MISC_CHECK",
            CheckerKind::Smtp(_) => "SMTP_CHECK",
            CheckerKind::Dns(_) => "DNS_CHECK",
            CheckerKind::Udp(_) => "UDP_CHECK",
            CheckerKind::Ping => "PING_CHECK",
            CheckerKind::Agent(_) => "AGENT_CHECK",
        }
    }

    /// (retry, delay_before_retry) defaults of the checker type; `None` delay = delay_loop.
    fn defaults(&self) -> (u32, Option<Duration>) {
        match self {
            CheckerKind::Http(_) | CheckerKind::Ssl(_) => (1, Some(Duration::from_secs(3))),
            CheckerKind::Misc(_) => (0, Some(Duration::from_secs(1))),
            CheckerKind::Dns(_) => (3, None),
            _ => (1, Some(Duration::from_secs(1))),
        }
    }
}

/// Timing of one checker after inheritance (checker → RS → VS → type default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckerTiming {
    /// Interval between checks.
    pub delay_loop: Duration,
    /// Connection/answer timeout.
    pub connect_timeout: Duration,
    /// Failures tolerated before "down" (down after `retry + 1`).
    pub retry: u32,
    /// Interval between retries.
    pub delay_before_retry: Duration,
    /// Upper bound of the random initial delay (0 = none).
    pub warmup: Duration,
}

impl Checker {
    /// Resolve the timing of this checker of `rs` in `vs`.
    pub fn timing(&self, rs: &RealServer, vs: &VirtualServer) -> CheckerTiming {
        let c = &self.common;
        let delay_loop = c.delay_loop.or(rs.delay_loop).unwrap_or(vs.delay_loop);
        let (retry_d, dbr_d) = self.kind.defaults();
        CheckerTiming {
            delay_loop,
            connect_timeout: c
                .connect_timeout
                .or(rs.connect_timeout)
                .or(vs.connect_timeout)
                .unwrap_or(Duration::from_secs(5)),
            retry: c.retry.or(rs.retry).or(vs.retry).unwrap_or(retry_d),
            delay_before_retry: c
                .delay_before_retry
                .or(rs.delay_before_retry)
                .or(vs.delay_before_retry)
                .or(dbr_d)
                .unwrap_or(delay_loop),
            warmup: c.warmup.or(rs.warmup).or(vs.warmup).unwrap_or(delay_loop),
        }
    }
}

/// `http_protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpProtocol {
    /// HTTP/1.0 (default).
    #[default]
    Http10,
    /// HTTP/1.0 with `Connection: close`.
    Http10C,
    /// HTTP/1.1 (with `Connection: close`).
    Http11,
}

/// `HTTP_GET` / `SSL_GET` settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpCheck {
    /// `url { … }` blocks (at least one).
    pub urls: Vec<Url>,
    /// `http_protocol`.
    pub http_protocol: HttpProtocol,
    /// `virtualhost`.
    pub virtualhost: Option<String>,
    /// `fast_recovery [BOOL]`.
    pub fast_recovery: bool,
    /// `enable_sni [BOOL]` (SSL_GET).
    pub enable_sni: bool,
}

/// An inclusive status-code range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    /// Lowest code.
    pub lo: u16,
    /// Highest code.
    pub hi: u16,
}

/// `url { path digest status_code virtualhost regex … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Where the block starts.
    pub pos: Pos,
    /// `path`.
    pub path: String,
    /// `digest`: MD5 of the body (16 bytes).
    pub digest: Option<[u8; 16]>,
    /// `status_code` ranges (default 200-299).
    pub status_codes: Vec<StatusRange>,
    /// `virtualhost` for this URL.
    pub virtualhost: Option<String>,
    /// `regex`.
    pub regex: Option<String>,
    /// `regex_no_match`.
    pub regex_no_match: bool,
}

impl Url {
    /// True if `code` is an accepted status.
    pub fn status_ok(&self, code: u16) -> bool {
        self.status_codes
            .iter()
            .any(|r| r.lo <= code && code <= r.hi)
    }
}

/// `MISC_CHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiscCheck {
    /// `misc_path` (program and arguments).
    pub path: Script,
    /// `misc_timeout` (default: the VS delay_loop).
    pub timeout: Option<Duration>,
    /// `misc_dynamic`: exit codes 2..255 set the weight to `code - 2`.
    pub dynamic: bool,
}

/// `SMTP_CHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpCheck {
    /// `helo_name` (smtpchecker.keepalived.org).
    pub helo_name: String,
    /// Legacy `host { … }` sub-blocks: extra check destinations.
    pub hosts: Vec<CheckerCommon>,
}

/// DNS query types of `DNS_CHECK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum DnsType {
    A,
    Ns,
    Cname,
    Soa,
    Mx,
    Txt,
    Aaaa,
}

/// `DNS_CHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    /// `type` (SOA).
    pub qtype: DnsType,
    /// `name` (`.`).
    pub name: String,
}

/// `UDP_CHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UdpCheck {
    /// `payload HEX`.
    pub payload: Vec<u8>,
    /// `require_reply [HEX]`: `Some(empty)` = any reply.
    pub require_reply: Option<Vec<u8>>,
    /// `min_reply_length`.
    pub min_reply_length: Option<u32>,
    /// `max_reply_length`.
    pub max_reply_length: Option<u32>,
}

/// `SSL { password ca certificate key }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SslContext {
    /// `password`.
    pub password: Option<String>,
    /// `ca`.
    pub ca: Option<String>,
    /// `certificate`.
    pub certificate: Option<String>,
    /// `key`.
    pub key: Option<String>,
}

/// VRRP instance state (`state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrrpState {
    /// `MASTER`.
    Master,
    /// `BACKUP`.
    Backup,
}

/// VRRP authentication type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// `PASS`: simple password.
    Pass,
    /// `AH`: IPsec AH.
    Ah,
}

/// `authentication { auth_type; auth_pass }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    /// `auth_type`.
    pub auth_type: AuthType,
    /// `auth_pass`, truncated to 8 bytes (zero-padded on the wire).
    pub password: Vec<u8>,
}

/// A VIP / static address line (docs/internals/vrrp.md#configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAddress {
    /// Where it was written.
    pub pos: Pos,
    /// Address.
    pub addr: IpAddr,
    /// Prefix length (default /32 or /128).
    pub prefix: u8,
    /// `dev` (default: the instance interface).
    pub dev: Option<String>,
    /// `brd`.
    pub brd: Option<String>,
    /// `scope` (global).
    pub scope: Option<String>,
    /// `label`.
    pub label: Option<String>,
    /// `peer`.
    pub peer: Option<IpAddr>,
    /// `no_track`.
    pub no_track: bool,
    /// `preferred_lft`.
    pub preferred_lft: Option<String>,
    /// `use_vmac`.
    pub use_vmac: bool,
    /// Flags: `home`, `-nodad`, `mngtmpaddr`, `noprefixroute`, `autojoin`.
    pub flags: Vec<String>,
    /// `track_group` (static addresses).
    pub track_group: Option<String>,
}

/// An IP prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

/// A `virtual_routes` / `static_routes` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Where it was written.
    pub pos: Pos,
    /// Route type: `unicast` (default), `blackhole`, `unreachable`, `prohibit`, `throw`.
    pub route_type: String,
    /// Destination prefix.
    pub dest: Prefix,
    /// `src`.
    pub src: Option<IpAddr>,
    /// `via`/`gw` gateways (several with `or`/`nexthop`).
    pub via: Vec<IpAddr>,
    /// `dev`.
    pub dev: Option<String>,
    /// `table`.
    pub table: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `metric` / `preference`.
    pub metric: Option<u32>,
    /// `no_track`.
    pub no_track: bool,
    /// Other `name value` options passed through (e.g. `mtu 1400`).
    pub options: Vec<(String, String)>,
}

/// A `virtual_rules` / `static_rules` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Where it was written.
    pub pos: Pos,
    /// `from`.
    pub from: Option<Prefix>,
    /// `to`.
    pub to: Option<Prefix>,
    /// `table`.
    pub table: Option<String>,
    /// `preference`/`priority`/`prio` (keepalived assigns one if missing).
    pub preference: u32,
    /// Other options passed through.
    pub options: Vec<(String, String)>,
}

/// `unicast_peer { IP [min_ttl N] [max_ttl N] }` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnicastPeer {
    /// Peer address.
    pub addr: IpAddr,
    /// `min_ttl`.
    pub min_ttl: Option<u8>,
    /// `max_ttl`.
    pub max_ttl: Option<u8>,
}

/// `track_interface` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInterface {
    /// Interface name.
    pub name: String,
    /// `weight` -253..253 (0 = FAULT while down).
    pub weight: i32,
    /// `reverse`.
    pub reverse: bool,
}

/// `track_script` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackScript {
    /// Where it was written.
    pub pos: Pos,
    /// Name of a `vrrp_script`.
    pub name: String,
    /// `weight` override -253..253 (default: the script's).
    pub weight: Option<i32>,
    /// `reverse` / `noreverse` override.
    pub reverse: Option<bool>,
}

/// Notify scripts of an instance or sync group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notify {
    /// `notify_master`.
    pub master: Option<Script>,
    /// `notify_backup`.
    pub backup: Option<Script>,
    /// `notify_fault`.
    pub fault: Option<Script>,
    /// `notify_stop`.
    pub stop: Option<Script>,
    /// `notify_deleted`.
    pub deleted: Option<Script>,
    /// `notify` (generic, 4 extra arguments).
    pub notify: Option<Script>,
    /// `notify_master_rx_lower_pri`.
    pub master_rx_lower_pri: Option<Script>,
}

impl Notify {
    /// All configured scripts.
    pub fn scripts(&self) -> impl Iterator<Item = &Script> {
        [
            &self.master,
            &self.backup,
            &self.fault,
            &self.stop,
            &self.deleted,
            &self.notify,
            &self.master_rx_lower_pri,
        ]
        .into_iter()
        .flatten()
    }
}

/// `vrrp_instance NAME`.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpInstance {
    /// Where the header is.
    pub pos: Pos,
    /// Instance name.
    pub name: String,
    /// `state` as written (an initial preference only, docs/internals/vrrp.md#states).
    pub state: Option<VrrpState>,
    /// `interface`.
    pub interface: Option<String>,
    /// `virtual_router_id` 1..255 (required).
    pub vrid: u8,
    /// `priority` 1..255 (100; 255 if `state MASTER` and no priority).
    pub priority: u8,
    /// `advert_int` (1 s).
    pub advert_int: Duration,
    /// `version` (default: global `vrrp_version`; IPv6 → 3).
    pub version: u8,
    /// `authentication`.
    pub authentication: Option<Authentication>,
    /// `virtual_ipaddress`.
    pub virtual_ipaddresses: Vec<IpAddress>,
    /// `virtual_ipaddress_excluded`.
    pub virtual_ipaddresses_excluded: Vec<IpAddress>,
    /// `virtual_routes`.
    pub virtual_routes: Vec<Route>,
    /// `virtual_rules`.
    pub virtual_rules: Vec<Rule>,
    /// `nopreempt`.
    pub nopreempt: bool,
    /// `preempt_delay` (0).
    pub preempt_delay: Duration,
    /// `unicast_src_ip`.
    pub unicast_src_ip: Option<IpAddr>,
    /// `mcast_src_ip`.
    pub mcast_src_ip: Option<IpAddr>,
    /// `unicast_peer`.
    pub unicast_peers: Vec<UnicastPeer>,
    /// `unicast_ttl`.
    pub unicast_ttl: Option<u8>,
    /// `mcast_dst_ip`.
    pub mcast_dst_ip: Option<IpAddr>,
    /// `check_unicast_src`.
    pub check_unicast_src: bool,
    /// `track_src_ip`.
    pub track_src_ip: bool,
    /// `dont_track_primary`.
    pub dont_track_primary: bool,
    /// `unicast_fault_no_peer`.
    pub unicast_fault_no_peer: bool,
    /// `track_interface`.
    pub track_interfaces: Vec<TrackInterface>,
    /// `track_script`.
    pub track_scripts: Vec<TrackScript>,
    /// Notify scripts.
    pub notify: Notify,
    /// `smtp_alert [BOOL]`.
    pub smtp_alert: Option<bool>,
    /// `notify_priority_changes [BOOL]`.
    pub notify_priority_changes: Option<bool>,
    /// `garp_master_delay`.
    pub garp_master_delay: Option<Duration>,
    /// `garp_master_repeat`.
    pub garp_master_repeat: Option<u32>,
    /// `garp_lower_prio_delay`.
    pub garp_lower_prio_delay: Option<Duration>,
    /// `garp_lower_prio_repeat`.
    pub garp_lower_prio_repeat: Option<u32>,
    /// `garp_master_refresh`.
    pub garp_master_refresh: Option<Duration>,
    /// `garp_master_refresh_repeat`.
    pub garp_master_refresh_repeat: Option<u32>,
    /// `down_timer_adverts` 1..100.
    pub down_timer_adverts: Option<u32>,
    /// `lower_prio_no_advert [BOOL]`.
    pub lower_prio_no_advert: Option<bool>,
    /// `higher_prio_send_advert [BOOL]`.
    pub higher_prio_send_advert: Option<bool>,
    /// `accept` (`Some(true)`) / `no_accept` (`Some(false)`).
    pub accept: Option<bool>,
    /// `strict_mode [BOOL]`.
    pub strict_mode: Option<bool>,
    /// `skip_check_adv_addr [BOOL]`.
    pub skip_check_adv_addr: Option<bool>,
    /// Deprecated `lvs_sync_daemon_interface`.
    pub lvs_sync_daemon_interface: Option<String>,
}

/// `vrrp_sync_group NAME`.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpSyncGroup {
    /// Where the header is.
    pub pos: Pos,
    /// Group name.
    pub name: String,
    /// `group { INSTANCE … }`.
    pub members: Vec<String>,
    /// `track_interface`.
    pub track_interfaces: Vec<TrackInterface>,
    /// `track_script`.
    pub track_scripts: Vec<TrackScript>,
    /// Notify scripts.
    pub notify: Notify,
    /// `smtp_alert [BOOL]`.
    pub smtp_alert: Option<bool>,
    /// `notify_priority_changes [BOOL]`.
    pub notify_priority_changes: Option<bool>,
    /// `sync_group_tracking_weight`.
    pub sync_group_tracking_weight: bool,
}

/// `vrrp_script NAME`.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpScript {
    /// Where the header is.
    pub pos: Pos,
    /// Script name (referenced by `track_script`).
    pub name: String,
    /// `script` (required).
    pub script: Script,
    /// `interval` (1 s).
    pub interval: Duration,
    /// `timeout` (default: interval).
    pub timeout: Option<Duration>,
    /// `weight` -253..253 (0).
    pub weight: i32,
    /// `weight … reverse`.
    pub reverse: bool,
    /// `rise` (1).
    pub rise: u32,
    /// `fall` (1).
    pub fall: u32,
    /// `init_fail`.
    pub init_fail: bool,
}

/// One IPVS virtual service a `virtual_server` stands for (docs/internals/keepalived.md#virtual-servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    /// (protocol, address, port); port 0 = all ports (persistent services only).
    Addr {
        /// Transport protocol.
        protocol: Protocol,
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port (0 = any).
        port: u16,
    },
    /// (family, firewall mark).
    Fwmark {
        /// Address family of the service.
        family: Family,
        /// The mark.
        mark: u32,
    },
}

impl VsgEntry {
    /// Number of addresses in the entry (1 for fwmark entries).
    pub fn len(&self) -> u128 {
        match self {
            VsgEntry::Range { first, last, .. } => ip_u128(last)
                .saturating_sub(ip_u128(first))
                .saturating_add(1),
            VsgEntry::Fwmark { .. } => 1,
        }
    }

    /// Never true: an entry always names at least one address or mark.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The addresses of a range entry, first to last, lazily (a range can be large).
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let (lo, hi, v4) = match self {
            VsgEntry::Range { first, last, .. } => (ip_u128(first), ip_u128(last), first.is_ipv4()),
            VsgEntry::Fwmark { .. } => (1, 0, true),
        };
        (0..=hi.saturating_sub(lo))
            .take_while(move |_| lo <= hi)
            .map(move |i| {
                let v = lo + i;
                if v4 {
                    IpAddr::V4(Ipv4Addr::from(v as u32))
                } else {
                    IpAddr::V6(Ipv6Addr::from(v))
                }
            })
    }
}

fn ip_u128(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u32::from(*v) as u128,
        IpAddr::V6(v) => u128::from(*v),
    }
}

impl VirtualServer {
    /// The IPVS services this virtual server stands for, lazily: one for an address
    /// or fwmark server; for `group NAME` one per address of every address entry
    /// (ranges expanded address by address, with the entry's port) plus one per
    /// fwmark entry, all sharing this server's real servers (keepalived quirk: for
    /// group address entries the persistence netmask is not applied).
    /// `groups` is [`Config::virtual_server_groups`]; a missing group yields nothing.
    pub fn services<'a>(
        &'a self,
        groups: &'a [VirtualServerGroup],
    ) -> Box<dyn Iterator<Item = ServiceKey> + 'a> {
        let proto = self.protocol.unwrap_or(Protocol::Udp);
        match &self.key {
            VsKey::Addr { addr, port } => Box::new(std::iter::once(ServiceKey::Addr {
                protocol: proto,
                addr: *addr,
                port: port.unwrap_or(0),
            })),
            VsKey::Fwmark(mark) => Box::new(std::iter::once(ServiceKey::Fwmark {
                family: self.family.unwrap_or(Family::Inet),
                mark: *mark,
            })),
            VsKey::Group(name) => {
                let family = self.family;
                let entries = groups
                    .iter()
                    .filter(move |g| &g.name == name)
                    .flat_map(|g| g.entries.iter());
                Box::new(
                    entries.flat_map(move |e| -> Box<dyn Iterator<Item = ServiceKey> + 'a> {
                        match e {
                            VsgEntry::Range { port, .. } => {
                                let port = port.unwrap_or(0);
                                Box::new(e.addresses().map(move |addr| ServiceKey::Addr {
                                    protocol: proto,
                                    addr,
                                    port,
                                }))
                            }
                            VsgEntry::Fwmark { mark, family: f } => {
                                Box::new(std::iter::once(ServiceKey::Fwmark {
                                    family: f.or(family).unwrap_or(Family::Inet),
                                    mark: *mark,
                                }))
                            }
                        }
                    }),
                )
            }
        }
    }
}
