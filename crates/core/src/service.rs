//! Virtual services (docs/internals/connections.md#services-and-real-servers): keys, flags and configuration.

use std::net::IpAddr;
use std::sync::Arc;

use crate::addr::{Family, Protocol};
use crate::dest::DestId;
use crate::sched::{SchedKind, Scheduler};
use crate::stats::Stats;

/// Index of a service in the director's service slab.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub u32);

/// What identifies a virtual service.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    /// `-t|-u|--sctp-service addr:port` (port 0 = catch-all, must be persistent).
    Addr {
        /// Protocol.
        proto: Protocol,
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port.
        port: u16,
    },
    /// `-f mark [-6]`.
    Fwmark {
        /// Address family of the service.
        family: Family,
        /// The firewall mark (non-zero).
        mark: u32,
    },
}

impl ServiceKey {
    /// Address family.
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr { addr, .. } => Family::of(addr),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }
    /// The virtual port (0 for fwmark services).
    pub fn port(&self) -> u16 {
        match self {
            ServiceKey::Addr { port, .. } => *port,
            ServiceKey::Fwmark { .. } => 0,
        }
    }
    /// The fwmark (0 for address services).
    pub fn fwmark(&self) -> u32 {
        match self {
            ServiceKey::Addr { .. } => 0,
            ServiceKey::Fwmark { mark, .. } => *mark,
        }
    }
}

/// Service flags (`IP_VS_SVC_F_*`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct ServiceFlags(pub u32);

impl ServiceFlags {
    /// `-p`: persistent service.
    pub const PERSISTENT: u32 = 0x0001;
    /// `-o`: one-packet scheduling.
    pub const ONEPACKET: u32 = 0x0004;
    /// `flag-1`; `sh-fallback` / `mh-fallback`.
    pub const SCHED1: u32 = 0x0008;
    /// `flag-2`; `sh-port` / `mh-port`.
    pub const SCHED2: u32 = 0x0010;
    /// `flag-3`.
    pub const SCHED3: u32 = 0x0020;
    /// Alias of `SCHED1` for sh.
    pub const SH_FALLBACK: u32 = Self::SCHED1;
    /// Alias of `SCHED2` for sh.
    pub const SH_PORT: u32 = Self::SCHED2;
    /// Alias of `SCHED1` for mh.
    pub const MH_FALLBACK: u32 = Self::SCHED1;
    /// Alias of `SCHED2` for mh.
    pub const MH_PORT: u32 = Self::SCHED2;

    /// Whether every bit of `f` is set.
    #[inline]
    pub fn has(self, f: u32) -> bool {
        self.0 & f == f
    }
}

/// Persistence engine (`--pe`): what, beyond the client's address, decides which real server a
/// persistent service's new connection goes to (docs/internals/persistence.md).
///
/// `sip` is the kernel's engine (the packet plane and the socket proxy both run it). The
/// others read the flow's bytes as a proxy does, so only the socket proxy runs them
/// ([`PeKind::content_only`]): the HTTP engines look at every request of a connection, `sni`
/// at the TLS ClientHello.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeKind {
    /// SIP: persistence by Call-ID (docs/internals/persistence.md#persistence-engines---pe-sip).
    Sip,
    /// `cookie[:NAME]`: the director issues a cookie naming the real server (keyed hash).
    Cookie(Arc<str>),
    /// `cookie-learn:NAME`: pins the application's own session cookie to the server that set it.
    CookieLearn(Arc<str>),
    /// `header:NAME`: pins the value of a request header.
    Header(Arc<str>),
    /// `sni`: pins the server name of a TLS ClientHello (no decryption).
    Sni,
}

/// Name of the cookie `--pe cookie` issues when no name is given.
pub const DEFAULT_PE_COOKIE: &str = "RVSID";

/// RFC 9110 token: what a cookie or header name may be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

impl PeKind {
    /// From the name ipvsadm passes (`sip`, `sni`, `cookie`, `cookie:NAME`,
    /// `cookie-learn:NAME`, `header:NAME`); `None` for an unknown engine or an invalid NAME.
    pub fn from_name(name: &str) -> Option<PeKind> {
        let (engine, arg) = match name.split_once(':') {
            Some((e, a)) => (e, Some(a)),
            None => (name, None),
        };
        let named = |a: Option<&str>| a.filter(|a| is_token(a)).map(Arc::<str>::from);
        match (engine, arg) {
            ("sip", None) => Some(PeKind::Sip),
            ("sni", None) => Some(PeKind::Sni),
            ("cookie", None) => Some(PeKind::Cookie(Arc::from(DEFAULT_PE_COOKIE))),
            ("cookie", a) => named(a).map(PeKind::Cookie),
            ("cookie-learn", a) => named(a).map(PeKind::CookieLearn),
            ("header", a) => named(a).map(PeKind::Header),
            _ => None,
        }
    }
    /// The engine's name as ipvsadm shows it, with its argument (`cookie:RVSID`).
    pub fn name(&self) -> String {
        match self {
            PeKind::Sip => "sip".into(),
            PeKind::Sni => "sni".into(),
            PeKind::Cookie(n) => format!("cookie:{n}"),
            PeKind::CookieLearn(n) => format!("cookie-learn:{n}"),
            PeKind::Header(n) => format!("header:{n}"),
        }
    }
    /// Whether only a plane that reads the connection's bytes (the socket proxy) can run the
    /// engine: every engine but `sip`.
    pub fn content_only(&self) -> bool {
        !matches!(self, PeKind::Sip)
    }
    /// Whether the engine reads HTTP/1.x requests.
    pub fn is_http(&self) -> bool {
        matches!(
            self,
            PeKind::Cookie(_) | PeKind::CookieLearn(_) | PeKind::Header(_)
        )
    }
}

/// What an administrator sets on a service (`-A`/`-E`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Scheduler (`None` = the "none" scheduler).
    pub scheduler: Option<SchedKind>,
    /// Flags.
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds (meaningful with `PERSISTENT`).
    pub timeout: u32,
    /// IPv4: persistence netmask as a host-order u32; IPv6: prefix length.
    pub netmask: u32,
    /// Persistence engine.
    pub pe: Option<PeKind>,
}

impl ServiceConfig {
    /// A non-persistent service with scheduler `sched` and the default netmask for `family`.
    pub fn new(sched: SchedKind, family: Family) -> ServiceConfig {
        ServiceConfig {
            scheduler: Some(sched),
            flags: ServiceFlags::default(),
            timeout: 0,
            netmask: default_netmask(family),
            pe: None,
        }
    }
    /// Builder: make the service persistent with `timeout` seconds.
    pub fn persistent(mut self, timeout: u32) -> ServiceConfig {
        self.flags.0 |= ServiceFlags::PERSISTENT;
        self.timeout = timeout;
        self
    }
    /// Builder: set the persistence netmask (IPv4 mask as u32, or IPv6 prefix length).
    pub fn netmask(mut self, mask: u32) -> ServiceConfig {
        self.netmask = mask;
        self
    }
    /// Builder: add flags.
    pub fn flags(mut self, f: u32) -> ServiceConfig {
        self.flags.0 |= f;
        self
    }
    /// Whether the service is persistent.
    pub fn is_persistent(&self) -> bool {
        self.flags.has(ServiceFlags::PERSISTENT)
    }
}

/// Default persistence netmask: 255.255.255.255 for IPv4, /128 for IPv6.
pub fn default_netmask(family: Family) -> u32 {
    match family {
        Family::Inet => 0xffff_ffff,
        Family::Inet6 => 128,
    }
}

/// A virtual service with its destinations in the kernel's list order (newest first).
#[derive(Clone, Debug)]
pub struct Service {
    /// Key.
    pub key: ServiceKey,
    /// Configuration.
    pub cfg: ServiceConfig,
    /// Destinations, head first (the most recently added is at index 0).
    pub dests: Vec<DestId>,
    /// Scheduler state.
    pub(crate) sched: Option<Scheduler>,
    /// Counters and estimator.
    pub stats: Stats,
}

impl Service {
    /// The scheduler's state, if the service has one.
    pub fn scheduler(&self) -> Option<&Scheduler> {
        self.sched.as_ref()
    }
}
