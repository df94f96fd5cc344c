//! Destinations (real servers): configuration, connection counters and the OVERLOAD
//! hysteresis of docs/internals/schedulers.md#words-used-on-this-page.

use std::net::IpAddr;

use crate::addr::Family;
use crate::service::{ServiceId, ServiceKey};
use crate::stats::Stats;
use crate::time::Time;

/// Index of a destination in the director's destination arena. Stable for the life of the
/// destination, including while it sits in the trash after deletion.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestId(pub u32);

/// Forwarding method (`conn_flags & IP_VS_CONN_F_FWD_MASK`), plus rvs's full-NAT.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum FwdMethod {
    /// NAT, `-m` (`MASQ` = 0).
    Masq,
    /// Local node (`LOCALNODE` = 1).
    Local,
    /// Tunnelling, `-i` (`TUNNEL` = 2).
    Tunnel,
    /// Direct routing, `-g` (`DROUTE` = 3), ipvsadm's default.
    #[default]
    Route,
    /// Bypass (`BYPASS` = 4), used only for cache_bypass connections.
    Bypass,
    /// Full NAT (`--fullnat`, DPVS's `FULLNAT` = 5): SNAT to a local address plus DNAT.
    FullNat,
}

impl FwdMethod {
    /// The value of the low bits of `conn_flags`.
    pub fn code(self) -> u32 {
        match self {
            FwdMethod::Masq => 0,
            FwdMethod::Local => 1,
            FwdMethod::Tunnel => 2,
            FwdMethod::Route => 3,
            FwdMethod::Bypass => 4,
            FwdMethod::FullNat => 5,
        }
    }
    /// Whether the director sees replies (NAT and full-NAT); the kernel sets `NOOUTPUT` for the
    /// others, which selects the INPUT_ONLY TCP table.
    pub fn sees_replies(self) -> bool {
        matches!(self, FwdMethod::Masq | FwdMethod::FullNat)
    }
}

/// Tunnel encapsulation (`--tun-type`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum TunType {
    /// IP-in-IP (0), the default.
    #[default]
    Ipip,
    /// Generic UDP Encapsulation (1); needs a port.
    Gue,
    /// GRE (2).
    Gre,
}

/// Tunnel checksum option (`--tun-nocsum|--tun-csum|--tun-remcsum`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum TunCsum {
    /// No checksum (0), the default.
    #[default]
    NoCsum,
    /// Checksum (1).
    Csum,
    /// Remote checksum offload (2, GUE only).
    RemCsum,
}

/// Tunnel parameters of a destination.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct TunnelConfig {
    /// Encapsulation.
    pub tun_type: TunType,
    /// GUE destination port (network meaning, host order here); 0 when unused.
    pub port: u16,
    /// Checksum option.
    pub csum: TunCsum,
}

/// What an administrator sets on a destination (`-a`/`-e`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct DestConfig {
    /// Real server address.
    pub addr: IpAddr,
    /// Real server port (0 = use the packet's port).
    pub port: u16,
    /// Weight, 0..=65535 through ipvsadm (the kernel takes any non-negative int).
    pub weight: u32,
    /// Forwarding method.
    pub fwd: FwdMethod,
    /// Upper connection threshold, 0 = none.
    pub u_threshold: u32,
    /// Lower connection threshold, 0 = none.
    pub l_threshold: u32,
    /// Tunnel parameters (meaningful for `Tunnel`).
    pub tunnel: TunnelConfig,
}

impl DestConfig {
    /// A destination with ipvsadm's defaults: weight 1, direct routing, no thresholds.
    pub fn new(addr: IpAddr, port: u16) -> DestConfig {
        DestConfig {
            addr,
            port,
            weight: 1,
            fwd: FwdMethod::Route,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: TunnelConfig::default(),
        }
    }
    /// Builder: set the weight.
    pub fn weight(mut self, w: u32) -> DestConfig {
        self.weight = w;
        self
    }
    /// Builder: set the forwarding method.
    pub fn fwd(mut self, fwd: FwdMethod) -> DestConfig {
        self.fwd = fwd;
        self
    }
    /// Builder: set the thresholds (upper, lower).
    pub fn thresholds(mut self, upper: u32, lower: u32) -> DestConfig {
        self.u_threshold = upper;
        self.l_threshold = lower;
        self
    }
}

/// A destination with its live state.
#[derive(Clone, Debug)]
pub struct Dest {
    /// The service this destination belongs (or last belonged) to.
    pub svc: ServiceId,
    /// The key of that service, used to re-use trashed destinations (docs/internals/connections.md#services-and-real-servers).
    pub svc_key: ServiceKey,
    /// Configuration.
    pub cfg: DestConfig,
    /// Last non-zero weight (set on add even if 0; on edit only when the new weight is non-zero).
    /// Only mh uses it.
    pub last_weight: u32,
    /// `IP_VS_DEST_F_AVAILABLE`: linked into its service (cleared when deleted).
    pub available: bool,
    /// `IP_VS_DEST_F_OVERLOAD`.
    pub overload: bool,
    /// Connections in an "active" state.
    pub active: u32,
    /// Other connections (and every UDP connection).
    pub inactive: u32,
    /// Persistence templates bound to this destination.
    pub persist: u32,
    /// Counters and rate estimator.
    pub stats: Stats,
    /// Measured response time (rvs addition; only the `pewma` scheduler reads it).
    pub latency: crate::latency::LatencyEwma,
    /// Position in the service's list (0 = head = newest). Kept current by the service table.
    pub(crate) pos: u32,
    /// When the destination was deleted, if it is in the trash.
    pub(crate) trashed_at: Option<Time>,
    /// Last time a connection was unbound (for the trash's idle period).
    pub(crate) last_unbind: Time,
}

impl Dest {
    pub(crate) fn new(svc: ServiceId, svc_key: ServiceKey, cfg: DestConfig, now: Time) -> Dest {
        Dest {
            svc,
            svc_key,
            cfg,
            last_weight: cfg.weight,
            available: true,
            overload: false,
            active: 0,
            inactive: 0,
            persist: 0,
            stats: Stats::default(),
            latency: crate::latency::LatencyEwma::default(),
            pos: 0,
            trashed_at: None,
            last_unbind: now,
        }
    }

    /// Address family of the destination.
    pub fn family(&self) -> Family {
        Family::of(&self.cfg.addr)
    }
    /// Weight.
    #[inline]
    pub fn weight(&self) -> u32 {
        self.cfg.weight
    }
    /// `ip_vs_dest_conn_overhead`: `(activeconns << 8) + inactconns` (docs/internals/schedulers.md#words-used-on-this-page).
    #[inline]
    pub fn overhead(&self) -> u64 {
        (u64::from(self.active) << 8) + u64::from(self.inactive)
    }
    /// Position in the service's destination list (0 = head).
    #[inline]
    pub fn list_pos(&self) -> usize {
        self.pos as usize
    }
    /// The common "eligible" test of most schedulers: weight > 0 and not OVERLOAD.
    #[inline]
    pub fn eligible(&self) -> bool {
        self.cfg.weight > 0 && !self.overload
    }
    /// Connections counted against the thresholds (templates excluded, docs/internals/schedulers.md#words-used-on-this-page).
    #[inline]
    pub fn total_conns(&self) -> u32 {
        self.active.saturating_add(self.inactive)
    }
    /// Connections (templates included) still bound to this destination.
    pub fn refs(&self) -> u32 {
        self.total_conns().saturating_add(self.persist)
    }
    /// Whether the destination was deleted and sits in the trash.
    pub fn is_trashed(&self) -> bool {
        self.trashed_at.is_some()
    }

    /// `ip_vs_bind_dest`: a connection (or template) is bound to this destination.
    /// `inactive` is the INACTIVE bit the connection starts with.
    pub fn bind_conn(&mut self, template: bool, inactive: bool) {
        if template {
            self.persist += 1;
        } else if inactive {
            self.inactive += 1;
        } else {
            self.active += 1;
        }
        if self.cfg.u_threshold != 0 && self.total_conns() >= self.cfg.u_threshold {
            self.overload = true;
        }
    }

    /// `ip_vs_unbind_dest`: a connection (or template) bound here expires.
    pub fn unbind_conn(&mut self, template: bool, inactive: bool, now: Time) {
        if template {
            self.persist = self.persist.saturating_sub(1);
        } else if inactive {
            self.inactive = self.inactive.saturating_sub(1);
        } else {
            self.active = self.active.saturating_sub(1);
        }
        let total = u64::from(self.total_conns());
        if self.cfg.l_threshold != 0 {
            if total < u64::from(self.cfg.l_threshold) {
                self.overload = false;
            }
        } else if self.cfg.u_threshold != 0 {
            if total * 4 < u64::from(self.cfg.u_threshold) * 3 {
                self.overload = false;
            }
        } else {
            self.overload = false;
        }
        self.last_unbind = now;
    }

    /// A TCP/SCTP state change moved a connection between the active and inactive counters.
    pub fn move_conn(&mut self, to_active: bool) {
        if to_active {
            self.inactive = self.inactive.saturating_sub(1);
            self.active += 1;
        } else {
            self.active = self.active.saturating_sub(1);
            self.inactive += 1;
        }
    }

    /// Apply an edit (`-e`, full replacement), with the kernel's OVERLOAD and `last_weight` rules.
    pub(crate) fn update(&mut self, cfg: DestConfig) {
        // docs/internals/schedulers.md#words-used-on-this-page: OVERLOAD is cleared if the new upper threshold is 0 or larger than the old one.
        if cfg.u_threshold == 0 || cfg.u_threshold > self.cfg.u_threshold {
            self.overload = false;
        }
        if cfg.weight != 0 {
            self.last_weight = cfg.weight;
        }
        self.cfg = cfg;
    }
}

/// Storage for every destination of the director, so that connections can refer to one by a
/// small stable index.
#[derive(Clone, Debug, Default)]
pub struct DestArena {
    slots: Vec<Option<Dest>>,
    free: Vec<u32>,
}

impl DestArena {
    pub(crate) fn insert(&mut self, d: Dest) -> DestId {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(d);
                DestId(i)
            }
            None => {
                self.slots.push(Some(d));
                DestId((self.slots.len() - 1) as u32)
            }
        }
    }
    pub(crate) fn remove(&mut self, id: DestId) -> Option<Dest> {
        let d = self.slots.get_mut(id.0 as usize)?.take();
        if d.is_some() {
            self.free.push(id.0);
        }
        d
    }
    /// The destination `id`, if it exists (live or trashed).
    #[inline]
    pub fn get(&self, id: DestId) -> Option<&Dest> {
        self.slots.get(id.0 as usize).and_then(Option::as_ref)
    }
    /// Mutable access to destination `id`.
    #[inline]
    pub fn get_mut(&mut self, id: DestId) -> Option<&mut Dest> {
        self.slots.get_mut(id.0 as usize).and_then(Option::as_mut)
    }
    /// Every destination, live and trashed.
    pub fn iter(&self) -> impl Iterator<Item = (DestId, &Dest)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.as_ref().map(|d| (DestId(i as u32), d)))
    }
}

impl core::ops::Index<DestId> for DestArena {
    type Output = Dest;
    #[inline]
    fn index(&self, id: DestId) -> &Dest {
        self.slots[id.0 as usize]
            .as_ref()
            .expect("DestId refers to a freed destination")
    }
}

impl core::ops::IndexMut<DestId> for DestArena {
    #[inline]
    fn index_mut(&mut self, id: DestId) -> &mut Dest {
        self.slots[id.0 as usize]
            .as_mut()
            .expect("DestId refers to a freed destination")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Protocol;

    fn dest(u: u32, l: u32) -> Dest {
        let key = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        };
        let cfg = DestConfig::new("10.0.1.1".parse().unwrap(), 80).thresholds(u, l);
        Dest::new(ServiceId(0), key, cfg, Time(0))
    }

    #[test]
    fn upper_threshold_sets_overload_on_reaching_it() {
        let mut d = dest(3, 0);
        d.bind_conn(false, true);
        d.bind_conn(false, true);
        assert!(!d.overload);
        d.bind_conn(false, true);
        assert!(d.overload);
    }

    #[test]
    fn templates_do_not_count_against_thresholds() {
        let mut d = dest(1, 0);
        d.bind_conn(true, false);
        assert!(!d.overload);
        assert_eq!(d.persist, 1);
    }

    #[test]
    fn hysteresis_without_lower_threshold_is_three_quarters() {
        let mut d = dest(8, 0);
        for _ in 0..8 {
            d.bind_conn(false, true);
        }
        assert!(d.overload);
        // 7*4=28 < 24? no; 6*4=24 < 24? no; 5*4=20 < 24 → clear.
        d.unbind_conn(false, true, Time(0));
        assert!(d.overload);
        d.unbind_conn(false, true, Time(0));
        assert!(d.overload);
        d.unbind_conn(false, true, Time(0));
        assert!(!d.overload);
    }

    #[test]
    fn hysteresis_with_lower_threshold() {
        let mut d = dest(4, 2);
        for _ in 0..4 {
            d.bind_conn(false, false);
        }
        assert!(d.overload);
        d.unbind_conn(false, false, Time(0)); // 3
        d.unbind_conn(false, false, Time(0)); // 2, not < 2
        assert!(d.overload);
        d.unbind_conn(false, false, Time(0)); // 1 < 2
        assert!(!d.overload);
    }

    #[test]
    fn edit_clears_overload_when_threshold_raised_or_removed() {
        let mut d = dest(1, 0);
        d.bind_conn(false, true);
        assert!(d.overload);
        let mut cfg = d.cfg;
        cfg.u_threshold = 1;
        d.update(cfg);
        assert!(d.overload, "same threshold keeps OVERLOAD");
        cfg.u_threshold = 5;
        d.update(cfg);
        assert!(!d.overload);
    }

    #[test]
    fn last_weight_follows_non_zero_edits() {
        let mut d = dest(0, 0);
        let mut cfg = d.cfg;
        cfg.weight = 7;
        d.update(cfg);
        cfg.weight = 0;
        d.update(cfg);
        assert_eq!(d.last_weight, 7);
        assert_eq!(d.weight(), 0);
    }
}
