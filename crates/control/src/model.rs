//! IPVS objects as ipvsadm sees them (docs/internals/connections.md, docs/internals/ipvsadm.md).
//!
//! The types stay close to the kernel's user API (`ip_vs_service_user`, `ip_vs_dest_user`,
//! the netlink attributes of docs/internals/ipvsadm.md) so that rvsd can apply ipvsadm's requests with kernel
//! semantics and rvsadm can print them byte for byte like ipvsadm does.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `IP_VS_VERSION_CODE` of the kernel IPVS that rvs emulates: 1.2.1.
pub const IPVS_VERSION_CODE: u32 = 0x0001_0201;

/// Default size of the connection hash table, printed by `ipvsadm -L` as `(size=4096)`.
pub const DEFAULT_CONN_TAB_SIZE: u32 = 4096;

/// Transport protocol and address family: the workspace's one type for each (rvs-core), on the
/// wire as `"tcp"`/`"udp"`/`"sctp"` and `"inet"`/`"inet6"`.
pub use rvs_core::{Family, Protocol};

/// Identifies a virtual service: `proto VIP:port` or a firewall mark.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKey {
    /// An address/port service (`-t`, `-u`, `--sctp-service`).
    Addr {
        /// Transport protocol.
        protocol: Protocol,
        /// Virtual IP address; its family is the service's family.
        addr: IpAddr,
        /// Virtual port (0 = all ports, only legal for persistent services).
        port: u16,
    },
    /// A firewall-mark service (`-f MARK`, `-6` for IPv6).
    Fwmark {
        /// The mark, 1..=u32::MAX.
        mark: u32,
        /// Address family of the packets the mark groups.
        family: Family,
    },
}

impl std::fmt::Display for ServiceKey {
    /// `TCP 10.0.0.1:80`, `UDP [2001:db8::1]:53`, `FWM 1`, `FWM 1 IPv6` (for logs and warnings).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => write!(f, "{} {}", protocol.name(), SocketAddr::new(*addr, *port)),
            ServiceKey::Fwmark { mark, family } => match family {
                Family::Inet => write!(f, "FWM {mark}"),
                Family::Inet6 => write!(f, "FWM {mark} IPv6"),
            },
        }
    }
}

impl ServiceKey {
    /// Address family of the service.
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr { addr, .. } => Family::of(addr),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }
}

/// Service flags that ipvsadm sets (`IP_VS_SVC_F_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceFlags {
    /// `IP_VS_SVC_F_PERSISTENT` (`-p`).
    pub persistent: bool,
    /// `IP_VS_SVC_F_ONEPACKET` (`-o`).
    pub one_packet: bool,
    /// `IP_VS_SVC_F_SCHED1` (`flag-1`, alias `sh-fallback` / `mh-fallback`).
    pub sched1: bool,
    /// `IP_VS_SVC_F_SCHED2` (`flag-2`, alias `sh-port` / `mh-port`).
    pub sched2: bool,
    /// `IP_VS_SVC_F_SCHED3` (`flag-3`).
    pub sched3: bool,
}

impl ServiceFlags {
    /// True if any scheduler flag is set.
    pub fn any_sched(&self) -> bool {
        self.sched1 || self.sched2 || self.sched3
    }
}

/// PROXY protocol header sent to real servers by the socket data plane (rvs addition).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// No header (the default).
    #[default]
    None,
    /// Text header, version 1.
    V1,
    /// Binary header, version 2.
    V2,
}

impl ProxyProtocol {
    /// Name used on the command line and in listings (`v1`, `v2`); `None` has no name.
    pub fn name(self) -> Option<&'static str> {
        match self {
            ProxyProtocol::None => None,
            ProxyProtocol::V1 => Some("v1"),
            ProxyProtocol::V2 => Some("v2"),
        }
    }
}

/// A complete virtual service definition, as sent by `-A` and `-E`.
///
/// `-E` is a full replacement (docs/internals/ipvsadm.md#which-options-go-with-which-command): every field is meaningful, none means "unchanged".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// Which service.
    pub key: ServiceKey,
    /// Scheduler name (`wlc` by default in ipvsadm). The kernel validates it (ENOENT).
    pub scheduler: String,
    /// Persistence, one-packet and scheduler flags.
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds (0 unless persistent).
    pub timeout: u32,
    /// Persistence granularity: for IPv4 the mask as a host-order integer
    /// (255.255.255.0 = 0xFFFF_FF00, default 0xFFFF_FFFF); for IPv6 the prefix length (default 128).
    pub netmask: u32,
    /// Persistence engine name (`sip`), if any.
    pub pe_name: Option<String>,
    /// PROXY protocol header towards real servers (rvs addition, `--proxy-protocol`).
    #[serde(default)]
    pub proxy_protocol: ProxyProtocol,
}

impl ServiceSpec {
    /// The persistence granularity ipvsadm uses when `-M` is not given: 255.255.255.255 for
    /// IPv4, prefix 128 for IPv6.
    pub fn default_netmask(family: Family) -> u32 {
        match family {
            Family::Inet => 0xFFFF_FFFF,
            Family::Inet6 => 128,
        }
    }

    /// A service as `ipvsadm -A` creates it without options: `wlc`, no flags, not persistent,
    /// default netmask, no PE, no PROXY protocol.
    pub fn with_defaults(key: ServiceKey) -> ServiceSpec {
        let netmask = Self::default_netmask(key.family());
        ServiceSpec {
            key,
            scheduler: "wlc".to_string(),
            flags: ServiceFlags::default(),
            timeout: 0,
            netmask,
            pe_name: None,
            proxy_protocol: ProxyProtocol::None,
        }
    }
}

/// Forwarding method of a real server (`IP_VS_CONN_F_FWD_MASK` values, plus FULLNAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMethod {
    /// NAT (`-m`, `IP_VS_CONN_F_MASQ` = 0).
    Masq,
    /// Local node (`IP_VS_CONN_F_LOCALNODE` = 1); chosen by the kernel for local addresses.
    Local,
    /// Tunnelling (`-i`, `IP_VS_CONN_F_TUNNEL` = 2).
    Tunnel,
    /// Direct routing (`-g`, `IP_VS_CONN_F_DROUTE` = 3), ipvsadm's default.
    Route,
    /// Bypass (`IP_VS_CONN_F_BYPASS` = 4); never set through ipvsadm.
    Bypass,
    /// Full NAT (`--fullnat`): SNAT to a local address plus DNAT (rvs/DPVS addition).
    FullNat,
}

impl ForwardMethod {
    /// Name as in `ipvsadm -L` (`Masq`, `Local`, `Tunnel`, `Route`, `FullNat`; `Bypass`).
    pub fn name(self) -> &'static str {
        match self {
            ForwardMethod::Masq => "Masq",
            ForwardMethod::Local => "Local",
            ForwardMethod::Tunnel => "Tunnel",
            ForwardMethod::Route => "Route",
            ForwardMethod::Bypass => "Bypass",
            ForwardMethod::FullNat => "FullNat",
        }
    }
}

/// Tunnel encapsulation of a tunnelling real server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelType {
    /// IP-in-IP (default).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation; needs a port.
    Gue,
    /// GRE.
    Gre,
}

impl TunnelType {
    /// Name as used by ipvsadm (`ipip`, `gue`, `gre`).
    pub fn name(self) -> &'static str {
        match self {
            TunnelType::Ipip => "ipip",
            TunnelType::Gue => "gue",
            TunnelType::Gre => "gre",
        }
    }
}

/// Tunnel checksum mode (`IP_VS_TUNNEL_ENCAP_FLAG_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelCsum {
    /// No checksum (`--tun-nocsum`, default).
    #[default]
    NoCsum,
    /// With checksum (`--tun-csum`).
    Csum,
    /// Remote checksum offload (`--tun-remcsum`, GUE only).
    RemCsum,
}

/// A complete real-server definition, as sent by `-a` and `-e` (full replacement for `-e`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestSpec {
    /// Real server address; its family may differ from the service's only for tunnelling.
    pub addr: IpAddr,
    /// Real server port (forced to the service port by ipvsadm for DR/TUN non-fwmark services).
    pub port: u16,
    /// Weight 0..=65535 (ipvsadm default 1).
    pub weight: u32,
    /// Forwarding method (ipvsadm default `Route`).
    pub method: ForwardMethod,
    /// Upper connection threshold (0 = none).
    pub u_threshold: u32,
    /// Lower connection threshold (0 = none).
    pub l_threshold: u32,
    /// Tunnel type (meaningful for `Tunnel` only).
    pub tun_type: TunnelType,
    /// GUE destination port (0 = unset).
    pub tun_port: u16,
    /// Tunnel checksum mode.
    pub tun_csum: TunnelCsum,
}

impl DestSpec {
    /// A real server as `ipvsadm -a -r ADDR:PORT` creates it without options: weight 1,
    /// direct routing, no thresholds, tunnel ipip/0/nocsum.
    pub fn with_defaults(addr: IpAddr, port: u16) -> DestSpec {
        DestSpec {
            addr,
            port,
            weight: 1,
            method: ForwardMethod::Route,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunnelType::Ipip,
            tun_port: 0,
            tun_csum: TunnelCsum::NoCsum,
        }
    }
}

/// Counters and rates of a service, a destination or the whole table (docs/internals/connections.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets client → server.
    pub inpkts: u64,
    /// Packets server → client.
    pub outpkts: u64,
    /// Bytes client → server.
    pub inbytes: u64,
    /// Bytes server → client.
    pub outbytes: u64,
    /// Connections per second (estimator read-out).
    pub cps: u64,
    /// Incoming packets per second.
    pub inpps: u64,
    /// Outgoing packets per second.
    pub outpps: u64,
    /// Incoming bytes per second.
    pub inbps: u64,
    /// Outgoing bytes per second.
    pub outbps: u64,
}

/// A real server as listed (spec and live counters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestEntry {
    /// The configuration.
    pub spec: DestSpec,
    /// Active connections.
    pub active_conns: u32,
    /// Inactive connections.
    pub inactive_conns: u32,
    /// Persistence templates pointing at this server.
    pub persist_conns: u32,
    /// Counters and rates.
    pub stats: Stats,
}

/// A virtual service as listed, with its real servers in kernel list order
/// (newest first; ipvsadm sorts them unless `--nosort`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// The configuration.
    pub spec: ServiceSpec,
    /// Counters and rates.
    pub stats: Stats,
    /// Real servers.
    pub dests: Vec<DestEntry>,
}

/// Protocol of a connection entry, as `/proc/net/ip_vs_conn` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnProtocol {
    /// A service protocol.
    Proto(Protocol),
    /// Fwmark persistence template (`IP`, protocol 0).
    Ip,
    /// Any other protocol number (`IP_<n>`).
    Other(u8),
}

impl ConnProtocol {
    /// Name as printed (`TCP`, `UDP`, `SCTP`, `IP`, `IP_<n>`).
    pub fn name(self) -> String {
        match self {
            ConnProtocol::Proto(p) => p.name().to_string(),
            ConnProtocol::Ip => "IP".to_string(),
            ConnProtocol::Other(n) => format!("IP_{n}"),
        }
    }
}

/// One connection (or persistence template) of the connection table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnEntry {
    /// Protocol.
    pub protocol: ConnProtocol,
    /// Client address and port (port 0 for templates).
    pub client: SocketAddr,
    /// Virtual address and port; for fwmark templates the mark as an IPv4 address.
    pub virtual_addr: SocketAddr,
    /// Real server address and port.
    pub dest: SocketAddr,
    /// State name as the kernel prints it (`ESTABLISHED`, `FIN_WAIT`, `NONE`, `UDP`, ...).
    pub state: String,
    /// Seconds until expiry.
    pub expires: u32,
    /// Persistence engine name and data (SIP Call-ID), both present or both absent.
    pub pe: Option<(String, String)>,
}

/// Connection timeouts (`--set tcp tcpfin udp`, `-L --timeout`), in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// ESTABLISHED timeout (default 900). In a set request 0 means unchanged.
    pub tcp: u32,
    /// FIN_WAIT timeout (default 120). In a set request 0 means unchanged.
    pub tcp_fin: u32,
    /// UDP timeout (default 300). In a set request 0 means unchanged.
    pub udp: u32,
}

/// Role of a connection-synchronisation daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncRole {
    /// Sends updates.
    Master,
    /// Receives updates.
    Backup,
}

/// Configuration (in requests) or state (in listings) of a sync daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonConfig {
    /// Master or backup.
    pub role: SyncRole,
    /// Multicast interface name (ipvsadm default `eth0`).
    pub mcast_ifn: String,
    /// Sync ID 0..=255.
    pub syncid: u8,
    /// Maximum sync message length (0 = kernel default).
    pub sync_maxlen: u16,
    /// Multicast group, if given.
    pub mcast_group: Option<IpAddr>,
    /// Multicast UDP port (0 = kernel default).
    pub mcast_port: u16,
    /// Multicast TTL (0 = kernel default).
    pub mcast_ttl: u8,
}

/// `GET_INFO`: version and connection table size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// IPVS version code (`0x010201` = 1.2.1).
    pub version: u32,
    /// Connection hash table size.
    pub conn_tab_size: u32,
}

impl Default for Info {
    fn default() -> Self {
        Info {
            version: IPVS_VERSION_CODE,
            conn_tab_size: DEFAULT_CONN_TAB_SIZE,
        }
    }
}

/// One FULLNAT local address of a service (`--get-laddr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalAddrEntry {
    /// The local (SNAT source) address.
    pub addr: IpAddr,
    /// Port allocation conflicts seen on this address.
    pub port_conflicts: u64,
    /// Connections currently using this address.
    pub conns: u64,
}

/// The local addresses of one service (`--get-laddr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceLocalAddrs {
    /// The service.
    pub service: ServiceKey,
    /// Its local addresses, in configuration order.
    pub laddrs: Vec<LocalAddrEntry>,
}

/// Helper for fwmark persistence templates: the kernel shows the mark as an IPv4 address.
pub fn fwmark_as_addr(mark: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(mark))
}

/// State of a VRRP instance (rvs addition, `rvsadm -L --vrrp`), as keepalived names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VrrpState {
    /// Not started yet.
    Init,
    /// Listening to a master (or waiting for the down timer).
    Backup,
    /// Owns the virtual addresses and advertises.
    Master,
    /// An interface or a tracked object failed; the instance neither listens nor advertises.
    Fault,
    /// Shut down (rvsd is stopping).
    Stop,
}

impl VrrpState {
    /// keepalived's upper-case name (`MASTER`, `BACKUP`, `FAULT`, `INIT`, `STOP`).
    pub fn name(self) -> &'static str {
        match self {
            VrrpState::Init => "INIT",
            VrrpState::Backup => "BACKUP",
            VrrpState::Master => "MASTER",
            VrrpState::Fault => "FAULT",
            VrrpState::Stop => "STOP",
        }
    }

    /// The state for keepalived's upper-case name (the inverse of [`VrrpState::name`]).
    pub fn from_name(s: &str) -> Option<VrrpState> {
        [
            VrrpState::Init,
            VrrpState::Backup,
            VrrpState::Master,
            VrrpState::Fault,
            VrrpState::Stop,
        ]
        .into_iter()
        .find(|v| v.name() == s)
    }
}

/// How many received adverts were rejected for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpRejects {
    /// Short reason name (`ttl`, `password`, `advert_interval`, `checksum`, `not_a_peer`, ...):
    /// which validation check of an advert failed.
    pub reason: String,
    /// Rejected adverts with this reason.
    pub count: u64,
}

/// The status of one VRRP instance (`rvsadm -L --vrrp`, rvs addition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpInstanceEntry {
    /// `vrrp_instance` name.
    pub name: String,
    /// `virtual_router_id`.
    pub vrid: u8,
    /// Interface the instance advertises on.
    pub interface: String,
    /// VRRP version, 2 or 3.
    pub version: u8,
    /// Address family of the adverts.
    pub family: Family,
    /// Current state.
    pub state: VrrpState,
    /// Configured `priority`.
    pub base_priority: u8,
    /// Priority after tracked objects' weights (what the adverts carry).
    pub effective_priority: u8,
    /// `advert_int` in centiseconds.
    pub advert_int_cs: u16,
    /// State transitions since the instance started.
    pub transitions: u64,
    /// Times MASTER was entered.
    pub became_master: u64,
    /// Adverts sent (per advert, not per unicast peer).
    pub adverts_sent: u64,
    /// Of which with priority 0 (resignations).
    pub priority_zero_sent: u64,
    /// VRRP packets received for this VRID.
    pub adverts_received: u64,
    /// Of which rejected by validation.
    pub adverts_rejected: u64,
    /// Received with priority 0 (the peer resigned).
    pub priority_zero_received: u64,
    /// `adverts_rejected` by reason: only the reasons with a nonzero count.
    pub rejects: Vec<VrrpRejects>,
    /// Milliseconds since the instance entered its current state, if known.
    pub in_state_ms: Option<u64>,
    /// `vrrp_sync_group` the instance belongs to, if any.
    pub sync_group: Option<String>,
    /// `virtual_ipaddress` addresses, in configuration order.
    pub vips: Vec<IpAddr>,
}

/// One IPVS sysctl as `rvsadm --sysctl` lists it (rvs addition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlEntry {
    /// Name under `net.ipv4.vs.`.
    pub name: String,
    /// Value as `sysctl -n` prints it.
    pub value: String,
    /// Whether it may be set.
    pub writable: bool,
    /// Whether rvs acts on it; when not (or when read-only), `note` says why.
    pub acts: bool,
    /// Why rvs does not act on it, or why it is read-only.
    pub note: Option<String>,
}
