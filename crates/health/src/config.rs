//! Plain configuration types for the checking engine.
//!
//! These are *resolved* values: the daemon fills them from the parsed keepalived.conf after
//! applying keepalived's inheritance (checker value → real server → virtual server → checker-type
//! default, docs/internals/keepalived.md#checkers-and-their-timers) and validation/clamping (docs/internals/keepalived.md#virtual-servers). [`CheckerTiming::keepalived_defaults`]
//! gives the checker-type defaults of the docs/internals/keepalived.md#checkers-and-their-timers table so the daemon does not have to copy them.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Transport protocol of an address-based virtual service (docs/internals/keepalived.md#virtual-servers `protocol`): the
/// workspace's one type.
pub use rvs_core::Protocol;

/// Identity of a virtual server, as keepalived matches them on reload (docs/internals/keepalived.md#reload-sighup).
///
/// The engine never interprets it beyond equality; it is handed back in every [`crate::Action`]
/// so the daemon can find the IPVS service(s). For `Group` the daemon applies the action to
/// every service of the group (docs/internals/keepalived.md#virtual-servers: all members get the same destinations).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VsKey {
    /// `virtual_server IP PORT` with its protocol.
    Addr {
        /// Protocol of the service.
        protocol: Protocol,
        /// Virtual address and port.
        addr: SocketAddr,
    },
    /// `virtual_server fwmark N`.
    Fwmark {
        /// Firewall mark.
        mark: u32,
        /// Address family is IPv6.
        ipv6: bool,
    },
    /// `virtual_server group NAME`.
    Group {
        /// Name of the `virtual_server_group`.
        name: String,
    },
}

impl fmt::Display for VsKey {
    /// keepalived's message format (docs/internals/keepalived.md#virtual-servers end): `[ADDR]:proto:PORT`, `FWM n`, `[NAME]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VsKey::Addr { protocol, addr } => {
                let p = protocol.lower_name();
                write!(f, "[{}]:{}:{}", addr.ip(), p, addr.port())
            }
            VsKey::Fwmark { mark, .. } => write!(f, "FWM {mark}"),
            VsKey::Group { name } => write!(f, "[{name}]"),
        }
    }
}

/// A command to run (`notify_up`, `notify_down`, `quorum_up`, `quorum_down`, `misc_path`).
///
/// keepalived splits the configured string with its quoted tokenizer and `execve`s the result
/// directly (no shell); the configured arguments are passed exactly, nothing is appended
/// (docs/internals/keepalived.md#notifications). `user`/`group` are the optional `script [user [group]]` words.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Command {
    /// Program followed by its arguments; must not be empty.
    pub argv: Vec<String>,
    /// Run as this user (name or numeric uid).
    pub user: Option<String>,
    /// Run with this group (name or numeric gid); default: the user's primary group.
    pub group: Option<String>,
}

impl Command {
    /// A command without user/group switching.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            user: None,
            group: None,
        }
    }
}

/// One `virtual_server` block as the health engine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServerCheck {
    /// Identity of the service.
    pub key: VsKey,
    /// `quorum` (default 1). Clamped by the engine to `1..=Σ configured RS weights` (docs/internals/keepalived.md#virtual-servers).
    pub quorum: u32,
    /// `hysteresis` (default 0). Clamped by the engine to `quorum − 1` (docs/internals/keepalived.md#virtual-servers).
    pub hysteresis: u32,
    /// `quorum_up` command.
    pub quorum_up: Option<Command>,
    /// `quorum_down` command.
    pub quorum_down: Option<Command>,
    /// `sorry_server` (+ `sorry_server_inhibit`).
    pub sorry_server: Option<SorryServer>,
    /// `omega`: run RS `notify_down` and `quorum_down` at shutdown (docs/internals/keepalived.md#shutdown).
    pub omega: bool,
    /// Start with checking suspended: `ha_suspend` with the VIP not configured locally (docs/internals/keepalived.md#the-retry-machine). Suspended checkers only reschedule every `delay_loop`; the daemon flips
    /// this at run time with [`crate::Handle::set_suspended`]. Only read when the virtual server
    /// first appears (a reload keeps the run-time state).
    pub suspended: bool,
    /// Real servers, at most one per address (the parser removes duplicates, docs/internals/keepalived.md#virtual-servers).
    pub real_servers: Vec<RealServerCheck>,
}

/// `sorry_server IP [PORT]` with `sorry_server_inhibit`. Its weight is always 1 (docs/internals/keepalived.md#quorum-and-the-sorry-server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SorryServer {
    /// Address of the sorry server (port as normalised by the parser).
    pub addr: SocketAddr,
    /// `sorry_server_inhibit`: keep it installed with weight 0 when not in use.
    pub inhibit: bool,
}

/// One `real_server` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServerCheck {
    /// Destination address as installed in IPVS (port normalised per docs/internals/keepalived.md#virtual-servers).
    pub addr: SocketAddr,
    /// Configured `weight` (0..=2147483647).
    pub weight: u32,
    /// `inhibit_on_failure` (resolved: RS value, else VS value).
    pub inhibit_on_failure: bool,
    /// `notify_up` command.
    pub notify_up: Option<Command>,
    /// `notify_down` command.
    pub notify_down: Option<Command>,
    /// Checkers; none means the server is always up (docs/internals/keepalived.md#virtual-servers).
    pub checkers: Vec<CheckerConfig>,
}

/// One checker block (`TCP_CHECK`, `HTTP_GET`, …) with resolved timing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckerConfig {
    /// What to check.
    pub kind: CheckKind,
    /// Timing, resolved per docs/internals/keepalived.md#checkers-and-their-timers inheritance.
    pub timing: CheckerTiming,
    /// `alpha`: start down and need a success before the RS is used (docs/internals/keepalived.md#the-retry-machine).
    pub alpha: bool,
    /// `log_all_failures`: log intermediate failures (docs/internals/keepalived.md#the-retry-machine).
    pub log_all_failures: bool,
}

/// Timing of one checker (docs/internals/keepalived.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckerTiming {
    /// `delay_loop`: interval between checks while stable.
    pub delay_loop: Duration,
    /// `connect_timeout`: bound on connecting and on each network exchange.
    pub connect_timeout: Duration,
    /// `retry` (old `nb_get_retry`): failures tolerated before going down; `retry + 1`
    /// consecutive failures take an up checker down.
    pub retry: u32,
    /// `delay_before_retry`: spacing of the retries.
    pub delay_before_retry: Duration,
    /// `warmup`: the first check runs after a uniform random delay in `[0, warmup]`
    /// (keepalived: unset → `delay_loop`; `0` disables).
    pub warmup: Duration,
}

/// Which checker type, for [`CheckerTiming::keepalived_defaults`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckerType {
    /// TCP_CHECK
    Tcp,
    /// HTTP_GET / SSL_GET
    Http,
    /// MISC_CHECK
    Misc,
    /// SMTP_CHECK
    Smtp,
    /// DNS_CHECK
    Dns,
    /// UDP_CHECK
    Udp,
    /// PING_CHECK
    Ping,
    /// AGENT_CHECK (ours: HAProxy's agent protocol)
    Agent,
}

impl CheckerTiming {
    /// keepalived's checker-type defaults (docs/internals/keepalived.md#checkers-and-their-timers table, docs/internals/keepalived.md#virtual-servers): `connect_timeout` 5 s,
    /// `retry` 1 (MISC 0, DNS 3), `delay_before_retry` 1 s (HTTP/SSL 3 s, DNS = `delay_loop`),
    /// `warmup` = `delay_loop`.
    pub fn keepalived_defaults(ty: CheckerType, delay_loop: Duration) -> Self {
        let (retry, dbr) = match ty {
            CheckerType::Http => (1, Duration::from_secs(3)),
            CheckerType::Misc => (0, Duration::from_secs(1)),
            CheckerType::Dns => (3, delay_loop),
            CheckerType::Tcp
            | CheckerType::Smtp
            | CheckerType::Udp
            | CheckerType::Ping
            | CheckerType::Agent => (1, Duration::from_secs(1)),
        };
        CheckerTiming {
            delay_loop,
            connect_timeout: Duration::from_secs(5),
            retry,
            delay_before_retry: dbr,
            warmup: delay_loop,
        }
    }
}

/// Where a network checker connects and from where (docs/internals/keepalived.md#checkers-and-their-timers common keywords).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectOpts {
    /// `connect_ip`/`connect_port`, default the RS address and port.
    pub connect: SocketAddr,
    /// `bindto`: local source address.
    pub bindto: Option<IpAddr>,
    /// `bind_port`: local source port.
    pub bind_port: Option<u16>,
    /// `bind_if`: SO_BINDTODEVICE (needs CAP_NET_RAW).
    pub bind_if: Option<String>,
    /// `fwmark`: SO_MARK on the checker socket (needs CAP_NET_ADMIN).
    pub fwmark: Option<u32>,
}

impl ConnectOpts {
    /// Connect to `addr` with no source binding.
    pub fn to(addr: SocketAddr) -> Self {
        ConnectOpts {
            connect: addr,
            bindto: None,
            bind_port: None,
            bind_if: None,
            fwmark: None,
        }
    }
}

/// The checker types (docs/internals/keepalived.md#checkers-and-their-timers). BFD_CHECK and FILE_CHECK are not handled by this crate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// TCP_CHECK: success = connected within `connect_timeout`.
    Tcp(ConnectOpts),
    /// HTTP_GET (`tls: None`) or SSL_GET (`tls: Some`).
    Http(HttpCheck),
    /// MISC_CHECK.
    Misc(MiscCheck),
    /// SMTP_CHECK.
    Smtp(SmtpCheck),
    /// DNS_CHECK.
    Dns(DnsCheck),
    /// UDP_CHECK.
    Udp(UdpCheck),
    /// PING_CHECK.
    Ping(PingCheck),
    /// AGENT_CHECK (ours): the real server's agent reports its weight.
    Agent(AgentCheck),
}

impl CheckKind {
    /// The checker type, e.g. for defaults and metrics labels.
    pub fn checker_type(&self) -> CheckerType {
        match self {
            CheckKind::Tcp(_) => CheckerType::Tcp,
            CheckKind::Http(_) => CheckerType::Http,
            CheckKind::Misc(_) => CheckerType::Misc,
            CheckKind::Smtp(_) => CheckerType::Smtp,
            CheckKind::Dns(_) => CheckerType::Dns,
            CheckKind::Udp(_) => CheckerType::Udp,
            CheckKind::Ping(_) => CheckerType::Ping,
            CheckKind::Agent(_) => CheckerType::Agent,
        }
    }

    /// keepalived's block name (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, …).
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Tcp(_) => "TCP_CHECK",
            CheckKind::Http(h) if h.tls.is_some() => "SSL_GET",
            CheckKind::Http(_) => "HTTP_GET",
            CheckKind::Misc(_) => "MISC_CHECK",
            CheckKind::Smtp(_) => "SMTP_CHECK",
            CheckKind::Dns(_) => "DNS_CHECK",
            CheckKind::Udp(_) => "UDP_CHECK",
            CheckKind::Ping(_) => "PING_CHECK",
            CheckKind::Agent(_) => "AGENT_CHECK",
        }
    }
}

/// `http_protocol` (docs/internals/keepalived.md#checkers-and-their-timers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HttpProtocol {
    /// `1.0` (default): `HTTP/1.0`, no `Connection` header.
    #[default]
    Http10,
    /// `1.0C`: `HTTP/1.0` with `Connection: close`.
    Http10Close,
    /// `1.1`: `HTTP/1.1` with `Connection: close`.
    Http11,
}

/// HTTP_GET / SSL_GET.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpCheck {
    /// Connection.
    pub connect: ConnectOpts,
    /// `http_protocol`.
    pub protocol: HttpProtocol,
    /// Checker-level `virtualhost`, already resolved with RS and VS `virtualhost`
    /// (a url's own `virtualhost` still wins).
    pub virtualhost: Option<String>,
    /// TLS (SSL_GET); `None` for HTTP_GET.
    pub tls: Option<TlsOpts>,
    /// URLs, checked in order, one per attempt; all must pass. Must not be empty.
    pub urls: Vec<HttpUrl>,
    /// `fast_recovery`: no `delay_loop` gaps between urls while recovering (docs/internals/keepalived.md#checkers-and-their-timers).
    pub fast_recovery: bool,
}

/// SSL_GET TLS options. The server certificate is never verified, like keepalived.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TlsOpts {
    /// `enable_sni`: send the virtual host (url → checker/RS → VS) as SNI. keepalived sends
    /// none without `enable_sni` or without a virtual host; a virtual host that is not a DNS
    /// name (an IP literal, a `host:port`) is not sent either, where OpenSSL would send the
    /// string as given.
    pub enable_sni: bool,
}

/// One `url { … }` block. `regex*` keywords are not supported: the daemon must refuse them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl {
    /// `path` (request target, sent verbatim).
    pub path: String,
    /// `digest`: expected MD5 of the body, 16 bytes (the config's 32 hex chars, decoded).
    pub digest: Option<[u8; 16]>,
    /// `status_code`: accepted codes as inclusive ranges; empty = keepalived's default 200-299.
    pub status_codes: Vec<(u16, u16)>,
    /// url-level `virtualhost`.
    pub virtualhost: Option<String>,
}

impl HttpUrl {
    /// A url with only a path (status 200-299, no digest).
    pub fn new(path: impl Into<String>) -> Self {
        HttpUrl {
            path: path.into(),
            digest: None,
            status_codes: Vec::new(),
            virtualhost: None,
        }
    }
}

/// MISC_CHECK.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MiscCheck {
    /// `misc_path` tokenised, with `user [group]`.
    pub command: Command,
    /// `misc_timeout` (keepalived default: the VS `delay_loop`).
    pub timeout: Duration,
    /// `misc_dynamic`: exit codes 2..=255 set the RS weight to `code − 2` (docs/internals/keepalived.md#checkers-and-their-timers).
    pub dynamic: bool,
}

/// SMTP_CHECK.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SmtpCheck {
    /// Connection (one per legacy `host {}` block needs its own checker).
    pub connect: ConnectOpts,
    /// `helo_name` (default `smtpchecker.keepalived.org`).
    pub helo_name: String,
}

/// DNS_CHECK query type (docs/internals/keepalived.md#checkers-and-their-timers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DnsType {
    /// A
    A,
    /// NS
    Ns,
    /// CNAME
    Cname,
    /// SOA (default)
    #[default]
    Soa,
    /// MX
    Mx,
    /// TXT
    Txt,
    /// AAAA
    Aaaa,
}

impl DnsType {
    /// The QTYPE value.
    pub fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Ns => 2,
            DnsType::Cname => 5,
            DnsType::Soa => 6,
            DnsType::Mx => 15,
            DnsType::Txt => 16,
            DnsType::Aaaa => 28,
        }
    }
}

/// DNS_CHECK.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DnsCheck {
    /// Connection (UDP).
    pub connect: ConnectOpts,
    /// `type`.
    pub qtype: DnsType,
    /// `name` (default `.`).
    pub name: String,
}

/// UDP_CHECK.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UdpCheck {
    /// Connection.
    pub connect: ConnectOpts,
    /// `payload` (decoded hex); empty sends an empty datagram.
    pub payload: Vec<u8>,
    /// `require_reply [HEX]`: `None` = no reply needed (only an ICMP error fails the check);
    /// `Some(bytes)` = a reply must arrive within `connect_timeout` and agree with `bytes` over
    /// the shorter of the two (keepalived's comparison; empty: any reply).
    pub require_reply: Option<Vec<u8>>,
    /// `min_reply_length`.
    pub min_reply_length: usize,
    /// `max_reply_length` (`None`: unlimited).
    pub max_reply_length: Option<usize>,
}

/// PING_CHECK.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PingCheck {
    /// Target (port ignored) and source binding.
    pub connect: ConnectOpts,
}

/// AGENT_CHECK (docs/guide/load-aware.md#the-agent-check): connect, read one line of HAProxy's
/// agent protocol, and scale the real server's weight by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentCheck {
    /// Connection (`connect_port` is usually the agent's own port).
    pub connect: ConnectOpts,
    /// `send STRING`: written once after connecting (HAProxy's `agent-send`), e.g. a
    /// service name for an agent serving several.
    pub send: Option<String>,
    /// `min_weight`: lowest weight a percentage may give (`drain` still gives 0).
    pub min_weight: u32,
    /// `max_weight`: highest weight a percentage may give (default: the configured weight,
    /// so `150%` is capped at 100% unless this is raised).
    pub max_weight: u32,
}

/// Options of the engine itself (globals and test hooks).
#[derive(Clone)]
pub struct EngineOptions {
    /// Fixed delay before every checker's first run, before the warmup jitter
    /// (keepalived: 1 s, docs/internals/keepalived.md#the-retry-machine).
    pub startup_delay: Duration,
    /// `rs_init_notifies` from `global_defs`: fire `notify_up` for servers added at start-up.
    pub rs_init_notifies: bool,
    /// Random source for warmup delays and DNS query ids.
    pub random: std::sync::Arc<dyn crate::RandomSource>,
    /// What performs a check attempt: [`crate::NetProbe`] (the real checkers) by default.
    pub probe: std::sync::Arc<dyn crate::Probe>,
    /// Where AGENT_CHECK replies are counted (the daemon renders them as metrics).
    pub agent_counters: std::sync::Arc<crate::AgentCounters>,
}

impl fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineOptions")
            .field("startup_delay", &self.startup_delay)
            .field("rs_init_notifies", &self.rs_init_notifies)
            .finish_non_exhaustive()
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            startup_delay: Duration::from_secs(1),
            rs_init_notifies: false,
            random: std::sync::Arc::new(crate::random::SplitMix::from_time()),
            probe: std::sync::Arc::new(crate::NetProbe),
            agent_counters: std::sync::Arc::default(),
        }
    }
}
