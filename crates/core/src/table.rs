//! The service table: services, their destinations, the trash of deleted destinations, and
//! packet-to-service lookup (docs/internals/connections.md#services-and-real-servers).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::addr::{Family, Protocol};
use crate::dest::{Dest, DestArena, DestConfig, DestId, FwdMethod, TunType};
use crate::error::{Error, Result};
use crate::sched::{DestView, Flow, RandomSource, SchedParams, Scheduler};
use crate::service::{Service, ServiceConfig, ServiceId, ServiceKey};
use crate::stats::Stats;
use crate::time::{Duration, Time};

/// How long a deleted destination stays re-usable after its last connection is gone
/// (`IP_VS_DEST_TRASH_PERIOD`).
pub const DEST_TRASH_PERIOD: Duration = Duration::from_secs(120);

/// The mh table size for `CONFIG_IP_VS_MH_TAB_INDEX` = index; `None` outside 8..=17.
pub fn mh_table_size(index: u8) -> Option<u32> {
    const PRIMES: [u32; 10] = [
        251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
    ];
    index
        .checked_sub(8)
        .and_then(|i| PRIMES.get(usize::from(i)).copied())
}

/// An estimator on [`ServiceTable::moving`].
#[derive(Clone, Copy, Debug)]
enum Moving {
    Service(ServiceId),
    Dest(DestId),
}

/// All virtual services and destinations of one director.
#[derive(Clone, Debug, Default)]
pub struct ServiceTable {
    services: Vec<Option<Service>>,
    free: Vec<u32>,
    by_key: HashMap<ServiceKey, ServiceId>,
    /// Every destination, live or trashed.
    pub dests: DestArena,
    trash: Vec<DestId>,
    /// Services and destinations whose estimators have work: counters moved since the last
    /// step, or averages not yet at rest. Every estimator not listed is settled (a step would
    /// change nothing, [`Stats::is_settled`]), so the 2-second step visits only this list and
    /// reads exactly as stepping every estimator would (see [`ServiceTable::estimate`]). May
    /// hold stale or repeated ids; `Stats::listed` decides.
    moving: Vec<Moving>,
    /// Scratch for [`ServiceTable::estimate`].
    due: Vec<Moving>,
    /// Number of port-0 (catch-all) services, to skip that lookup when there are none.
    port0: u32,
    /// Number of TCP port-21 services (the FTP lookup rule of docs/internals/connections.md#services-and-real-servers).
    ftp: u32,
    /// Compile-time scheduler parameters.
    pub params: SchedParams,
}

impl ServiceTable {
    /// An empty table with the kernel's default scheduler parameters.
    pub fn new() -> ServiceTable {
        ServiceTable::default()
    }

    /// An empty table with the given scheduler parameters.
    pub fn with_params(params: SchedParams) -> ServiceTable {
        ServiceTable {
            params,
            ..ServiceTable::default()
        }
    }

    /// The service with id `id`.
    #[inline]
    pub fn service(&self, id: ServiceId) -> Option<&Service> {
        self.services.get(id.0 as usize).and_then(Option::as_ref)
    }

    fn service_mut(&mut self, id: ServiceId) -> Option<&mut Service> {
        self.services
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
    }

    /// The id of the service with key `key`.
    pub fn id_of(&self, key: &ServiceKey) -> Option<ServiceId> {
        self.by_key.get(key).copied()
    }

    /// Every service with its id (in slab order; listing order is the front end's business).
    pub fn services(&self) -> impl Iterator<Item = (ServiceId, &Service)> {
        self.services
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (ServiceId(i as u32), s)))
    }

    /// Number of services.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether there are no services.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// A view of a service's destinations for scheduling.
    pub fn view(&self, id: ServiceId) -> Option<DestView<'_>> {
        let s = self.service(id)?;
        Some(DestView {
            ids: &s.dests,
            arena: &self.dests,
        })
    }

    fn validate_service(key: &ServiceKey, cfg: &ServiceConfig) -> Result<()> {
        if let ServiceKey::Fwmark { mark: 0, .. } = key {
            return Err(Error::Invalid("fwmark must be non-zero"));
        }
        if key.family() == Family::Inet6 && !(1..=128).contains(&cfg.netmask) {
            return Err(Error::Invalid(
                "IPv6 netmask must be a prefix length 1..128",
            ));
        }
        Ok(())
    }

    fn count_key(&mut self, key: &ServiceKey, delta: i32) {
        if let ServiceKey::Addr { proto, port, .. } = key {
            if *port == 0 {
                self.port0 = self.port0.saturating_add_signed(delta);
            }
            if *proto == Protocol::Tcp && *port == 21 {
                self.ftp = self.ftp.saturating_add_signed(delta);
            }
        }
    }

    /// `-A`: add a service.
    pub fn add_service(
        &mut self,
        key: ServiceKey,
        cfg: ServiceConfig,
        now: Time,
    ) -> Result<ServiceId> {
        Self::validate_service(&key, &cfg)?;
        if self.by_key.contains_key(&key) {
            return Err(Error::Exists);
        }
        let empty = DestView {
            ids: &[],
            arena: &self.dests,
        };
        let sched = match cfg.scheduler {
            Some(k) => Some(Scheduler::new(k, &empty, cfg.flags, &self.params, now)?),
            None => None,
        };
        let svc = Service {
            key,
            cfg,
            dests: Vec::new(),
            sched,
            stats: Stats::default(),
        };
        let id = match self.free.pop() {
            Some(i) => {
                self.services[i as usize] = Some(svc);
                ServiceId(i)
            }
            None => {
                self.services.push(Some(svc));
                ServiceId((self.services.len() - 1) as u32)
            }
        };
        self.by_key.insert(key, id);
        self.count_key(&key, 1);
        Ok(id)
    }

    /// `-E`: replace a service's configuration. A changed scheduler is bound anew
    /// (`init_service`), as the kernel does.
    pub fn edit_service(&mut self, key: &ServiceKey, cfg: ServiceConfig, now: Time) -> Result<()> {
        Self::validate_service(key, &cfg)?;
        let id = self.id_of(key).ok_or(Error::NoService)?;
        let params = self.params;
        let svc = self.services[id.0 as usize]
            .as_mut()
            .ok_or(Error::NoService)?;
        let old_kind = svc.sched.as_ref().map(Scheduler::kind);
        if old_kind != cfg.scheduler {
            let view = DestView {
                ids: &svc.dests,
                arena: &self.dests,
            };
            svc.sched = match cfg.scheduler {
                Some(k) => Some(Scheduler::new(k, &view, cfg.flags, &params, now)?),
                None => None,
            };
        }
        svc.cfg = cfg;
        Ok(())
    }

    /// `-D`: delete a service; its destinations go to the trash.
    pub fn del_service(&mut self, key: &ServiceKey, now: Time) -> Result<()> {
        let id = self.by_key.remove(key).ok_or(Error::NoService)?;
        self.count_key(key, -1);
        let svc = self.services[id.0 as usize]
            .take()
            .ok_or(Error::NoService)?;
        self.free.push(id.0);
        for d in svc.dests {
            self.trash_dest(d, now);
        }
        Ok(())
    }

    /// `-C`: delete every service.
    pub fn clear(&mut self, now: Time) {
        let keys: Vec<ServiceKey> = self.by_key.keys().copied().collect();
        for k in keys {
            // Cannot fail: the key was just read from the table.
            let _ = self.del_service(&k, now);
        }
    }

    fn trash_dest(&mut self, id: DestId, now: Time) {
        if let Some(d) = self.dests.get_mut(id) {
            d.available = false;
            d.trashed_at = Some(now);
            self.trash.push(id);
        }
    }

    fn validate_dest(svc_key: &ServiceKey, cfg: &DestConfig) -> Result<()> {
        if cfg.weight > i32::MAX as u32 {
            return Err(Error::Range("weight"));
        }
        if cfg.l_threshold > cfg.u_threshold {
            return Err(Error::Range("lower threshold above upper threshold"));
        }
        if cfg.fwd == FwdMethod::Tunnel
            && cfg.tunnel.tun_type == TunType::Gue
            && cfg.tunnel.port == 0
        {
            return Err(Error::Invalid("GUE tunnel needs a port"));
        }
        match cfg.addr {
            IpAddr::V4(a) => {
                if a.is_multicast() || a.is_broadcast() || a.is_unspecified() {
                    return Err(Error::Invalid("destination must be a unicast address"));
                }
            }
            IpAddr::V6(a) => {
                let link_local = (a.segments()[0] & 0xffc0) == 0xfe80;
                if a.is_multicast() || a.is_unspecified() || link_local {
                    return Err(Error::Invalid(
                        "destination must be a unicast, non-link-local address",
                    ));
                }
            }
        }
        // Only tunnelling may cross address families.
        if cfg.fwd != FwdMethod::Tunnel && Family::of(&cfg.addr) != svc_key.family() {
            return Err(Error::Invalid(
                "destination family differs from the service",
            ));
        }
        Ok(())
    }

    /// Find a live destination of service `svc` by address and port.
    pub fn find_dest(&self, svc: ServiceId, addr: &IpAddr, port: u16) -> Option<DestId> {
        let s = self.service(svc)?;
        s.dests.iter().copied().find(|&id| {
            let d = &self.dests[id];
            d.cfg.addr == *addr && d.cfg.port == port
        })
    }

    fn renumber(&mut self, svc: ServiceId) {
        if let Some(s) = self.services.get(svc.0 as usize).and_then(Option::as_ref) {
            for (i, &id) in s.dests.iter().enumerate() {
                if let Some(d) = self.dests.get_mut(id) {
                    d.pos = i as u32;
                }
            }
        }
    }

    /// `-a`: add a destination at the head of the service's list, re-using a trashed one with the
    /// same service, address and port (keeping its counters, docs/internals/connections.md#services-and-real-servers).
    pub fn add_dest(&mut self, key: &ServiceKey, cfg: DestConfig, now: Time) -> Result<DestId> {
        Self::validate_dest(key, &cfg)?;
        let sid = self.id_of(key).ok_or(Error::NoService)?;
        if self.find_dest(sid, &cfg.addr, cfg.port).is_some() {
            return Err(Error::Exists);
        }
        let svc = self.service(sid).ok_or(Error::NoService)?;
        if let Some(crate::sched::SchedKind::Mh) = svc.cfg.scheduler {
            let m = mh_table_size(self.params.mh_tab_index).unwrap_or(4093);
            if svc.dests.len() as u32 >= m {
                return Err(Error::Invalid("more destinations than mh table slots"));
            }
        }
        let reuse = self.trash.iter().position(|&t| {
            let d = &self.dests[t];
            d.svc_key == *key && d.cfg.addr == cfg.addr && d.cfg.port == cfg.port
        });
        let id = match reuse {
            Some(i) => {
                let id = self.trash.swap_remove(i);
                let d = &mut self.dests[id];
                d.svc = sid;
                d.trashed_at = None;
                d.available = true;
                d.update(cfg);
                // `last_weight` is set on add even when the weight is 0.
                d.last_weight = cfg.weight;
                // Its estimator stopped in the trash (as the kernel stops it); it runs again
                // from where it was.
                if !d.stats.is_settled() && !d.stats.listed {
                    d.stats.listed = true;
                    self.moving.push(Moving::Dest(id));
                }
                id
            }
            None => self.dests.insert(Dest::new(sid, *key, cfg, now)),
        };
        let svc = self.services[sid.0 as usize]
            .as_mut()
            .ok_or(Error::NoService)?;
        svc.dests.insert(0, id);
        self.renumber(sid);
        let svc = self.services[sid.0 as usize]
            .as_mut()
            .ok_or(Error::NoService)?;
        if let Some(s) = svc.sched.as_mut() {
            let view = DestView {
                ids: &svc.dests,
                arena: &self.dests,
            };
            s.on_add_dest(&view, svc.cfg.flags, id);
        }
        Ok(id)
    }

    /// `-e`: replace a destination's configuration.
    pub fn edit_dest(&mut self, key: &ServiceKey, cfg: DestConfig) -> Result<DestId> {
        Self::validate_dest(key, &cfg)?;
        let sid = self.id_of(key).ok_or(Error::NoService)?;
        let id = self
            .find_dest(sid, &cfg.addr, cfg.port)
            .ok_or(Error::NotFound)?;
        self.dests[id].update(cfg);
        let svc = self.services[sid.0 as usize]
            .as_mut()
            .ok_or(Error::NoService)?;
        if let Some(s) = svc.sched.as_mut() {
            let view = DestView {
                ids: &svc.dests,
                arena: &self.dests,
            };
            s.on_edit_dest(&view, svc.cfg.flags, id);
        }
        Ok(id)
    }

    /// `-d`: unlink a destination; it goes to the trash with its counters.
    pub fn del_dest(
        &mut self,
        key: &ServiceKey,
        addr: &IpAddr,
        port: u16,
        now: Time,
    ) -> Result<DestId> {
        let sid = self.id_of(key).ok_or(Error::NoService)?;
        let id = self.find_dest(sid, addr, port).ok_or(Error::NotFound)?;
        let svc = self.services[sid.0 as usize]
            .as_mut()
            .ok_or(Error::NoService)?;
        let old_pos = svc
            .dests
            .iter()
            .position(|&d| d == id)
            .ok_or(Error::NotFound)?;
        svc.dests.remove(old_pos);
        self.trash_dest(id, now);
        self.renumber(sid);
        let svc = self.services[sid.0 as usize]
            .as_mut()
            .ok_or(Error::NoService)?;
        if let Some(s) = svc.sched.as_mut() {
            let view = DestView {
                ids: &svc.dests,
                arena: &self.dests,
            };
            s.on_del_dest(&view, svc.cfg.flags, id, old_pos);
        }
        Ok(id)
    }

    /// Free trashed destinations that nothing references and that have been idle for
    /// [`DEST_TRASH_PERIOD`] (the kernel checks every 60 s).
    pub fn gc_trash(&mut self, now: Time) {
        let dests = &mut self.dests;
        self.trash.retain(|&id| {
            let Some(d) = dests.get(id) else {
                return false;
            };
            let idle_from = d.trashed_at.unwrap_or(now).max(d.last_unbind);
            if d.refs() == 0 && now >= idle_from + DEST_TRASH_PERIOD {
                dests.remove(id);
                false
            } else {
                true
            }
        });
    }

    /// Destinations currently in the trash.
    pub fn trash(&self) -> &[DestId] {
        &self.trash
    }

    /// Packet-to-service lookup in the kernel's order (docs/internals/connections.md#services-and-real-servers): fwmark, exact match, the FTP rule,
    /// then the port-0 catch-all.
    pub fn find(
        &self,
        fwmark: u32,
        proto: Protocol,
        vaddr: &IpAddr,
        vport: u16,
    ) -> Option<ServiceId> {
        if fwmark != 0 {
            let k = ServiceKey::Fwmark {
                family: Family::of(vaddr),
                mark: fwmark,
            };
            if let Some(&id) = self.by_key.get(&k) {
                return Some(id);
            }
        }
        let exact = |port| {
            self.by_key
                .get(&ServiceKey::Addr {
                    proto,
                    addr: *vaddr,
                    port,
                })
                .copied()
        };
        if let Some(id) = exact(vport) {
            return Some(id);
        }
        // FTP data connections in passive mode: ports 20 and unprivileged ports map to port 21.
        if proto == Protocol::Tcp && self.ftp > 0 && (vport == 20 || vport >= 1024) {
            if let Some(id) = exact(21) {
                return Some(id);
            }
        }
        if self.port0 > 0 {
            return exact(0);
        }
        None
    }

    /// Run the service's scheduler for a new flow.
    pub fn schedule(
        &mut self,
        svc: ServiceId,
        flow: &Flow,
        now: Time,
        rng: &mut dyn RandomSource,
    ) -> Option<DestId> {
        let s = self.services.get_mut(svc.0 as usize)?.as_mut()?;
        let sched = s.sched.as_mut()?;
        let view = DestView {
            ids: &s.dests,
            arena: &self.dests,
        };
        sched.schedule(&view, flow, s.cfg.flags, now, rng)
    }

    /// Tell the owning service's scheduler that `id`'s counters or OVERLOAD flag changed.
    pub fn load_changed(&mut self, id: DestId) {
        let Some(d) = self.dests.get(id) else {
            return;
        };
        if !d.available {
            return;
        }
        let sid = d.svc;
        if let Some(s) = self
            .services
            .get_mut(sid.0 as usize)
            .and_then(Option::as_mut)
        {
            if let Some(sched) = s.sched.as_mut() {
                let view = DestView {
                    ids: &s.dests,
                    arena: &self.dests,
                };
                sched.on_load_change(&view, id);
            }
        }
    }

    /// `lblc_expiration` / `lblcr_expiration`: for services created from now on and for the
    /// lblc/lblcr schedulers already running (the kernel reads the sysctl at every collection).
    pub fn set_lblc_expiration(&mut self, lblc: Duration, lblcr: Duration) {
        self.params.lblc_expiration = lblc.as_secs().min(u64::from(u32::MAX)) as u32;
        self.params.lblcr_expiration = lblcr.as_secs().min(u64::from(u32::MAX)) as u32;
        for s in self.services.iter_mut().flatten() {
            if let Some(sched) = s.sched.as_mut() {
                sched.set_expiration(lblc, lblcr);
            }
        }
    }

    /// `rvs_mh_grace`: how long every mh scheduler keeps its previous table (new services too).
    pub fn set_mh_grace(&mut self, grace: Duration) {
        self.params.mh_grace = grace.as_secs().min(u64::from(u32::MAX)) as u32;
        for s in self.services.iter_mut().flatten() {
            if let Some(sched) = s.sched.as_mut() {
                sched.set_mh_grace(grace);
            }
        }
    }

    /// `rvs_pewma_*`: the parameters of every pewma scheduler (new services too).
    pub fn set_pewma(&mut self, params: crate::latency::PewmaParams) {
        self.params.pewma = params.clamped();
        for s in self.services.iter_mut().flatten() {
            if let Some(sched) = s.sched.as_mut() {
                sched.set_pewma(params);
            }
        }
    }

    /// Scheduler housekeeping (lblc/lblcr garbage collection) and trash collection; call about
    /// once a second.
    pub fn tick(&mut self, now: Time) {
        for s in self.services.iter_mut().flatten() {
            if let Some(sched) = s.sched.as_mut() {
                sched.tick(now);
            }
        }
        self.gc_trash(now);
    }

    /// Whether [`ServiceTable::tick`] and [`ServiceTable::estimate`] have nothing to do: no
    /// trashed destination waits to be freed, no scheduler keeps timed state, and (when
    /// `estimating`) no estimator has work. A table at rest may go unticked for any time; call
    /// [`ServiceTable::resume`] before using it again.
    pub fn at_rest(&self, estimating: bool) -> bool {
        self.trash.is_empty()
            && (!estimating || self.moving.is_empty())
            && self
                .services
                .iter()
                .flatten()
                .all(|s| s.sched.as_ref().is_none_or(|x| !x.needs_ticks()))
    }

    /// Catch up with the once-a-second housekeeping missed while at rest (see
    /// [`crate::sched::Scheduler::resume`]).
    pub fn resume(&mut self, now: Time) {
        for s in self.services.iter_mut().flatten() {
            if let Some(sched) = s.sched.as_mut() {
                sched.resume(now);
            }
        }
    }

    /// Count against destination `did` and its service with `f` (only while the destination
    /// is AVAILABLE when `only_available`), and list both estimators as having work. Returns
    /// whether anything was counted.
    pub(crate) fn count(
        &mut self,
        did: DestId,
        only_available: bool,
        f: impl Fn(&mut Stats),
    ) -> bool {
        let Some(d) = self.dests.get_mut(did) else {
            return false;
        };
        if only_available && !d.available {
            return false;
        }
        f(&mut d.stats);
        if !d.stats.listed {
            d.stats.listed = true;
            self.moving.push(Moving::Dest(did));
        }
        let sid = d.svc;
        if let Some(s) = self.service_mut(sid) {
            f(&mut s.stats);
            if !s.stats.listed {
                s.stats.listed = true;
                self.moving.push(Moving::Service(sid));
            }
        }
        true
    }

    /// One 2-second estimator step of every live service and every destination linked into
    /// one, in time proportional to the estimators with work rather than to the table: a
    /// settled estimator's step is the identity ([`Stats::is_settled`]), so stepping only the
    /// listed ones gives exactly the kernel's figures for all. Trashed destinations are not
    /// stepped (the kernel stops their estimator); [`ServiceTable::add_dest`] lists a revived
    /// one again.
    pub fn estimate(&mut self) {
        let mut due = core::mem::take(&mut self.due);
        due.clear();
        // Take each listed estimator once: the flag is cleared at its first id, so a repeated
        // id, or a stale id whose slot now holds an object that listed itself too, is stepped
        // once.
        for m in self.moving.drain(..) {
            let st = match m {
                Moving::Service(id) => self
                    .services
                    .get_mut(id.0 as usize)
                    .and_then(Option::as_mut)
                    .map(|s| &mut s.stats),
                Moving::Dest(id) => self
                    .dests
                    .get_mut(id)
                    .filter(|d| d.available)
                    .map(|d| &mut d.stats),
            };
            if let Some(st) = st.filter(|st| st.listed) {
                st.listed = false;
                due.push(m);
            }
        }
        for &m in &due {
            let st = match m {
                Moving::Service(id) => self.service_mut(id).map(|s| &mut s.stats),
                Moving::Dest(id) => self.dests.get_mut(id).map(|d| &mut d.stats),
            };
            if let Some(st) = st {
                st.est.tick(st.live);
                if !st.is_settled() {
                    st.listed = true;
                    self.moving.push(m);
                }
            }
        }
        self.due = due;
    }

    /// Mutable access to a service's counters.
    pub fn service_stats_mut(&mut self, id: ServiceId) -> Option<&mut Stats> {
        self.service_mut(id).map(|s| &mut s.stats)
    }

    /// Mutable access to every service's and linked destination's stats (zeroing; changing
    /// anything but the zero point must keep [`ServiceTable::moving`]'s rule).
    pub fn for_each_stats_mut(&mut self, mut f: impl FnMut(&mut Stats)) {
        for s in self.services.iter_mut().flatten() {
            f(&mut s.stats);
            for &d in &s.dests {
                if let Some(d) = self.dests.get_mut(d) {
                    f(&mut d.stats);
                }
            }
        }
    }
}
