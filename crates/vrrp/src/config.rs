//! Per-instance configuration: the `vrrp_instance` fields of keepalived.conf (docs/internals/vrrp.md#configuration) that the protocol logic needs, already parsed. Parsing the text is `rvs-config`'s job.

use std::net::IpAddr;
use std::time::Duration;

use crate::error::Error;
use crate::wire::{mcast_group, ChecksumMode, Family, Version, AUTH_DATA_LEN};

/// v2 authentication (`authentication { auth_type …; auth_pass … }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Auth {
    /// No authentication: 8 zero bytes on the wire for v2/IPv4.
    #[default]
    None,
    /// `auth_type PASS`: the password truncated/zero-padded to 8 bytes
    /// ([`crate::wire::pass_auth_data`]).
    Pass([u8; AUTH_DATA_LEN]),
    /// `auth_type AH`: not implemented; [`InstanceConfig::validate`] rejects it so that a config
    /// asking for it fails loudly instead of silently running unauthenticated.
    Ah,
}

/// keepalived's `state` keyword: only an initial preference (docs/internals/vrrp.md#states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialState {
    /// `state MASTER` (or derived for priority 255): an address owner starts as MASTER at once.
    Master,
    /// `state BACKUP`.
    Backup,
}

/// One `unicast_peer` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnicastPeer {
    /// Peer address (also the destination of our adverts).
    pub addr: IpAddr,
    /// `min_ttl` (checked with `check_unicast_src`).
    pub min_ttl: u8,
    /// `max_ttl` (checked with `check_unicast_src`).
    pub max_ttl: u8,
}

impl UnicastPeer {
    /// A peer without TTL limits.
    pub fn new(addr: IpAddr) -> Self {
        UnicastPeer {
            addr,
            min_ttl: 0,
            max_ttl: 255,
        }
    }
}

/// Gratuitous ARP / unsolicited NA settings (`garp_*`, docs/internals/vrrp.md#gratuitous-arp-and-unsolicited-na), keepalived 2.2.7 defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarpConfig {
    /// `garp_master_delay`: second batch after becoming MASTER (0 = none). Default 5 s.
    pub master_delay: Duration,
    /// `garp_master_repeat`: rounds per batch. Default 5.
    pub master_repeat: u32,
    /// `garp_lower_prio_delay`: second batch after a lower-priority advert. Default 5 s.
    pub lower_prio_delay: Duration,
    /// `garp_lower_prio_repeat`: rounds on a lower-priority advert. Default 5.
    pub lower_prio_repeat: u32,
    /// `garp_master_refresh`: periodic refresh while MASTER (0 = off, the default).
    pub master_refresh: Duration,
    /// `garp_master_refresh_repeat`: rounds per refresh. Default 1.
    pub master_refresh_repeat: u32,
    /// `vrrp_min_garp`: one message per address and no delayed batch.
    pub min_garp: bool,
}

impl Default for GarpConfig {
    fn default() -> Self {
        GarpConfig {
            master_delay: Duration::from_secs(5),
            master_repeat: 5,
            lower_prio_delay: Duration::from_secs(5),
            lower_prio_repeat: 5,
            master_refresh: Duration::ZERO,
            master_refresh_repeat: 1,
            min_garp: false,
        }
    }
}

/// One tracked object (`track_interface`, `track_script`, `track_file`, …) as seen by the
/// priority logic: the driver reports whether it is OK/up, the instance applies the weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerConfig {
    /// -253..253. `> 0` adds while OK, `< 0` adds (subtracts) while failed, `0` = FAULT while
    /// failed.
    pub weight: i32,
    /// `reverse`: swap OK and failed.
    pub reverse: bool,
}

/// The configuration of one VRRP instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// Instance name (notify arguments, logs).
    pub name: String,
    /// `virtual_router_id`, 1..255.
    pub vrid: u8,
    /// `version`.
    pub version: Version,
    /// Base `priority`, 1..255 (255 = address owner).
    pub priority: u8,
    /// `state`.
    pub initial_state: InitialState,
    /// `advert_int` in centiseconds (v2: a multiple of 100).
    pub advert_int_cs: u16,
    /// `authentication` (v2/IPv4 only).
    pub auth: Auth,
    /// `virtual_ipaddress` (advertised, in config order).
    pub vips: Vec<IpAddr>,
    /// `preempt` (true) / `nopreempt` (false).
    pub preempt: bool,
    /// `preempt_delay`, 0..1000 s.
    pub preempt_delay: Duration,
    /// Our primary address: `unicast_src_ip` / `mcast_src_ip` or the interface's primary (IPv6:
    /// link-local) address. Used as source, for the checksum and for the tie-break.
    pub src_addr: IpAddr,
    /// `unicast_peer`; empty = multicast.
    pub unicast_peers: Vec<UnicastPeer>,
    /// `mcast_dst_ip` (default 224.0.0.18 / ff02::12).
    pub mcast_group: IpAddr,
    /// `unicast_ttl` (IPv4 TTL / IPv6 hop limit of unicast adverts). Default 255.
    pub unicast_ttl: u8,
    /// `check_unicast_src` (also implied by a peer's `min_ttl`/`max_ttl`).
    pub check_unicast_src: bool,
    /// `down_timer_adverts`, 1..100. Default 3.
    pub down_timer_adverts: u32,
    /// `garp_*`.
    pub garp: GarpConfig,
    /// `lower_prio_no_advert` (keepalived default false; true in strict mode).
    pub lower_prio_no_advert: bool,
    /// `higher_prio_send_advert`.
    pub higher_prio_send_advert: bool,
    /// `skip_check_adv_addr`.
    pub skip_check_adv_addr: bool,
    /// Checksum variant for sending v3/IPv4 (PseudoHeader = keepalived/RFC 5798 default,
    /// OldUnicast = `old_unicast_checksum`, NoPseudoHeader = RFC 9568 / `v3_checksum_as_v2`).
    pub checksum_mode: ChecksumMode,
    /// Switch to the old unicast checksum when a peer is seen using it (keepalived's default;
    /// `old_unicast_checksum never` turns it off).
    pub old_unicast_autodetect: bool,
    /// `notify_priority_changes`: report effective-priority changes (FIFO `MASTER_PRIORITY` /
    /// `BACKUP_PRIORITY`).
    pub notify_priority_changes: bool,
    /// Tracked objects, indexed by position in [`crate::Instance::set_tracker`].
    pub trackers: Vec<TrackerConfig>,
}

impl InstanceConfig {
    /// A configuration with keepalived's defaults: priority 100, `advert_int 1`, preempt, BACKUP,
    /// multicast to the family's group.
    pub fn new(
        name: &str,
        vrid: u8,
        version: Version,
        src_addr: IpAddr,
        vips: Vec<IpAddr>,
    ) -> Self {
        InstanceConfig {
            name: name.to_string(),
            vrid,
            version,
            priority: 100,
            initial_state: InitialState::Backup,
            advert_int_cs: 100,
            auth: Auth::None,
            vips,
            preempt: true,
            preempt_delay: Duration::ZERO,
            src_addr,
            unicast_peers: Vec::new(),
            mcast_group: mcast_group(Family::of(&src_addr)),
            unicast_ttl: 255,
            check_unicast_src: false,
            down_timer_adverts: 3,
            garp: GarpConfig::default(),
            lower_prio_no_advert: false,
            higher_prio_send_advert: false,
            skip_check_adv_addr: false,
            checksum_mode: ChecksumMode::PseudoHeader,
            old_unicast_autodetect: true,
            notify_priority_changes: false,
            trackers: Vec::new(),
        }
    }

    /// keepalived's conversion of an `advert_int` value in seconds to centiseconds (docs/internals/vrrp.md#configuration): v2
    /// rounds to whole seconds (at least 1, at most 255); v3 rounds to the nearest 10 ms (at least
    /// 10 ms, at most 40.95 s). Non-finite input gives the default of 1 s.
    pub fn advert_int_cs_from_secs(version: Version, secs: f64) -> u16 {
        if !secs.is_finite() {
            return 100;
        }
        match version {
            Version::V2 => (secs.round().clamp(1.0, 255.0) as u16) * 100,
            Version::V3 => (secs * 100.0).round().clamp(1.0, 4095.0) as u16,
        }
    }

    /// The address family (that of `src_addr`).
    pub fn family(&self) -> Family {
        Family::of(&self.src_addr)
    }

    /// Whether adverts go to unicast peers rather than the multicast group.
    pub fn is_unicast(&self) -> bool {
        !self.unicast_peers.is_empty()
    }

    /// `advert_int` as a duration.
    pub fn advert_int(&self) -> Duration {
        Duration::from_millis(10 * u64::from(self.advert_int_cs))
    }

    /// The advert interval as it goes on the wire (v2 seconds, v3 centiseconds).
    pub fn wire_interval(&self) -> u16 {
        match self.version {
            Version::V2 => self.advert_int_cs / 100,
            Version::V3 => self.advert_int_cs,
        }
    }

    /// The 8 auth bytes expected/sent for v2 over IPv4.
    pub fn auth_data(&self) -> [u8; AUTH_DATA_LEN] {
        match self.auth {
            Auth::Pass(p) => p,
            Auth::None | Auth::Ah => [0; AUTH_DATA_LEN],
        }
    }

    /// The v2 auth type byte.
    pub fn auth_type(&self) -> u8 {
        match self.auth {
            Auth::None => 0,
            Auth::Pass(_) => 1,
            Auth::Ah => 2,
        }
    }

    /// Reject what keepalived rejects outright, and what this implementation does not support
    /// (AH). Softer keepalived fix-ups (nopreempt with priority 255, …) are applied by
    /// [`InstanceConfig::normalized`].
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(format!("({}) {m}", self.name)));
        let fam = self.family();
        if self.vrid == 0 {
            return bad("VRID 0 not valid - must be between 1 & 255".into());
        }
        if self.priority == 0 {
            return bad("priority 0 not valid - must be between 1 & 255".into());
        }
        match self.version {
            Version::V2 => {
                if self.advert_int_cs == 0
                    || self.advert_int_cs % 100 != 0
                    || self.advert_int_cs > 25500
                {
                    return bad(format!(
                        "VRRPv2 advert_int must be whole seconds 1..255, got {} cs",
                        self.advert_int_cs
                    ));
                }
            }
            Version::V3 => {
                if self.advert_int_cs == 0 || self.advert_int_cs > 4095 {
                    return bad(format!(
                        "VRRPv3 advert_int must be 0.01..40.95 s, got {} cs",
                        self.advert_int_cs
                    ));
                }
                if self.vips.is_empty() {
                    return bad("No VIP specified; at least one is required".into());
                }
            }
        }
        match self.auth {
            Auth::Ah => return bad("AH authentication is not supported by rvs".into()),
            Auth::Pass(_) if self.version == Version::V3 || fam == Family::Inet6 => {
                return bad("PASS authentication is only valid with VRRPv2 over IPv4".into())
            }
            _ => {}
        }
        if self.vips.len() > 255 {
            return bad(format!("{} VIPs do not fit in one advert", self.vips.len()));
        }
        if let Some(v) = self.vips.iter().find(|v| Family::of(v) != fam) {
            return bad(format!("address family must match VRRP instance [{v}]"));
        }
        if let Some(p) = self
            .unicast_peers
            .iter()
            .find(|p| Family::of(&p.addr) != fam)
        {
            return bad(format!("unicast peer {} has the wrong family", p.addr));
        }
        if Family::of(&self.mcast_group) != fam || !self.mcast_group.is_multicast() {
            return bad(format!("invalid multicast group {}", self.mcast_group));
        }
        if !(1..=100).contains(&self.down_timer_adverts) {
            return bad("down_timer_adverts must be 1..100".into());
        }
        if self.preempt_delay > Duration::from_secs(1000) {
            return bad("preempt_delay must be 0..1000 s".into());
        }
        if let Some(t) = self
            .trackers
            .iter()
            .find(|t| !(-253..=253).contains(&t.weight))
        {
            return bad(format!("tracker weight {} outside -253..253", t.weight));
        }
        Ok(())
    }

    /// The configuration after keepalived's silent/warned fix-ups (docs/internals/vrrp.md#configuration): `nopreempt` is cleared
    /// for an address owner or `state MASTER`; `preempt_delay` is cleared with `state MASTER` or
    /// `nopreempt`.
    pub fn normalized(&self) -> InstanceConfig {
        let mut c = self.clone();
        if c.priority == 255 || c.initial_state == InitialState::Master {
            c.preempt = true;
        }
        if c.initial_state == InitialState::Master || !c.preempt {
            c.preempt_delay = Duration::ZERO;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> InstanceConfig {
        InstanceConfig::new(
            "VI_1",
            51,
            Version::V2,
            "10.0.0.1".parse().unwrap(),
            vec!["10.0.0.100".parse().unwrap()],
        )
    }

    #[test]
    fn defaults_are_valid() {
        cfg().validate().unwrap();
        assert_eq!(cfg().mcast_group, "224.0.0.18".parse::<IpAddr>().unwrap());
        assert_eq!(cfg().wire_interval(), 1);
    }

    #[test]
    fn rejects() {
        let mut c = cfg();
        c.auth = Auth::Ah;
        assert!(c.validate().unwrap_err().to_string().contains("AH"));
        let mut c = cfg();
        c.advert_int_cs = 50;
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.version = Version::V3;
        c.auth = Auth::Pass(*b"abcdefgh");
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.vrid = 0;
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.vips.push("::1".parse().unwrap());
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.version = Version::V3;
        c.vips.clear();
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.trackers.push(TrackerConfig {
            weight: 254,
            reverse: false,
        });
        assert!(c.validate().is_err());
    }

    #[test]
    fn advert_int_conversion_rounds_like_keepalived() {
        let f = InstanceConfig::advert_int_cs_from_secs;
        assert_eq!(f(Version::V2, 1.0), 100);
        assert_eq!(f(Version::V2, 1.4), 100);
        assert_eq!(f(Version::V2, 1.5), 200);
        assert_eq!(f(Version::V2, 0.2), 100);
        assert_eq!(f(Version::V2, 300.0), 25500);
        assert_eq!(f(Version::V3, 0.5), 50);
        assert_eq!(f(Version::V3, 0.014), 1);
        assert_eq!(f(Version::V3, 0.016), 2);
        assert_eq!(f(Version::V3, 41.0), 4095);
        assert_eq!(f(Version::V3, f64::NAN), 100);
    }

    #[test]
    fn normalization_clears_nopreempt_for_owner() {
        let mut c = cfg();
        c.priority = 255;
        c.preempt = false;
        assert!(c.normalized().preempt);
        let mut c = cfg();
        c.preempt = false;
        c.preempt_delay = Duration::from_secs(10);
        assert_eq!(c.normalized().preempt_delay, Duration::ZERO);
    }
}
