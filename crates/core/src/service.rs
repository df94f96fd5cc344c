//! Virtual services (docs/internals/connections.md#services-and-real-servers): keys, flags and configuration.

use std::net::IpAddr;

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

/// Persistence engine (`--pe`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeKind {
    /// SIP: persistence by Call-ID (docs/internals/persistence.md#persistence-engines---pe-sip).
    Sip,
}

impl PeKind {
    /// From the name ipvsadm passes.
    pub fn from_name(name: &str) -> Option<PeKind> {
        match name {
            "sip" => Some(PeKind::Sip),
            _ => None,
        }
    }
    /// Name.
    pub fn name(self) -> &'static str {
        match self {
            PeKind::Sip => "sip",
        }
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
