//! The control plane's state of the daemon, and the control requests applied to it.
//!
//! Every change — from rvsadm, a rules file, or health checks — goes through [`State::handle`],
//! so the table, the warnings and the listeners stay consistent whoever made the change. The
//! services themselves live in shards ([`crate::shard`]) that the data planes lock without
//! this state's lock.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use rvs_control::model as m;
use rvs_control::proto::{ErrorKind, Payload, Request, Response};
use rvs_core::conn::state::tcp;
use rvs_core::director::Sysctls;
use rvs_core::sysctl::{Effect, MachineDefaults, SysctlError, SysctlSet};
use rvs_core::{FwdMethod, Protocol, ServiceKey, Time};

use crate::convert::*;
use crate::listing;
use crate::packet_plane::config::{self as packet_config, PacketFeed};
use crate::shard::{self, RouteMap, Routes, ServiceExtra, Shard, ShardRef, Wakeups};

/// Which data planes run beside the socket proxy (which always runs), to say what the table can
/// and cannot serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planes {
    /// The packet plane (`--interface`).
    pub packet: bool,
}

/// Where a service lives.
#[derive(Clone)]
struct Placement {
    /// Its shard.
    shard: ShardRef,
    /// Creation order: the order of `-L --nosort` (the kernel lists its hash order, which
    /// ipvsadm's default sort hides).
    seq: u64,
}

/// The daemon's state: the control plane's view over the shards.
pub struct State {
    /// Settings every shard applies (`--set` timeouts; the sysctls below are applied on top).
    pub sys: Sysctls,
    /// The IPVS sysctls (`rvsd --sysctl`, `rvsadm --sysctl`): the one place their values live.
    pub sysctls: SysctlSet,
    /// Current services.
    services: HashMap<ServiceKey, Placement>,
    /// The shard of every service the packet plane serves, when it runs.
    packet_shard: Option<ShardRef>,
    /// Shards whose services were deleted, kept while connections or proxy flows remain.
    retired: Vec<ShardRef>,
    next_shard: u32,
    next_seq: u64,
    /// The proxy's view of the shards.
    pub routes: Arc<Routes>,
    /// The control side's copy of what `routes` publishes, changed entry by entry as services
    /// and shards come and go, and published whole (a cheap copy, see [`RouteMap`]).
    route_map: RouteMap,
    /// Running data planes.
    pub planes: Planes,
    /// The VRRP driver's status, when it runs (rendered into the metrics).
    pub vrrp: Option<Arc<crate::vrrp::StatusBoard>>,
    /// The keepalived runtime's health counters, when `-f` runs one (rendered into the metrics).
    pub health: Option<Arc<crate::keepalived::counters::HealthCounters>>,
    /// Bumped by every request that may change the table or the local addresses, when the
    /// VRRP driver starts and when the nft mark rules change; each bump publishes a new
    /// [`PacketView`] to the packet plane, when it runs.
    generation: u64,
    /// The packet plane's feed, once it runs ([`State::attach_packet_plane`]).
    packet: Option<PacketFeed>,
    /// The services `rvs_syn_proxy=1` does not cover, as last logged.
    syn_proxy_warned: crate::syn_proxy_check::Warned,
    /// Mark rules read from the director's nft ruleset (`crate::nft_marks`).
    pub nft_marks: Vec<rvs_packet::plane::MarkRule>,
    /// Virtual services whose keepalived `quorum` is not met: their VIPs are not announced
    /// (`crate::announce`).
    pub quorum_lost: std::collections::HashSet<ServiceKey>,
    /// The announce table and the announcer's counters, when `--announce-table` runs.
    pub announce: Option<(u32, Arc<crate::announce_status::AnnounceStatus>)>,
    /// Connection-synchronisation daemons (`--start-daemon`, `lvs_sync_daemon`).
    pub sync: crate::sync::SyncDaemons,
    /// Services owned by a discovery source (etcd, Docker): rvsadm may not change them.
    pub managed: crate::discovery::status::Managed,
    /// The discovery sources' counters (rendered into the metrics).
    pub discovery: Vec<Arc<crate::discovery::status::SourceStatus>>,
    /// While a [`Request::Batch`] is applied: publications to the data planes are deferred
    /// to its end (see [`Deferred`]).
    deferred: Option<Deferred>,
    /// Socket-proxy listeners to open (`true`) or close since the proxy last took them
    /// ([`State::take_listener_changes`]), in order: what a request changed, so the proxy
    /// applies the change without comparing the whole table.
    listener_changes: Vec<(rvs_proxy::ListenerSpec, bool)>,
    /// Shards asking the ticker for visits ([`Wakeups`]), shared by every shard.
    wakeups: Arc<Wakeups>,
    /// Current services by creation order (`seq`): the order of `-L --nosort`, read without
    /// sorting the table.
    order: std::collections::BTreeMap<u64, ServiceKey>,
    /// Real servers of the current services, kept change by change.
    real_servers: u64,
}

/// What a batch owes the data planes once it is applied. Publishing the routes or the packet
/// plane's view costs time proportional to the whole table; a batch pays it once instead of
/// once per request, so loading N services costs O(N), not O(N²).
#[derive(Clone, Copy, Default)]
struct Deferred {
    routes: bool,
    view: bool,
}

fn done() -> Response {
    Response::ok(Payload::Done)
}

impl State {
    /// A fresh state at time `now` with no services.
    pub fn new(now: Time, planes: Planes) -> State {
        let mut st = State {
            sys: Sysctls::default(),
            sysctls: SysctlSet::new(machine_defaults()),
            services: HashMap::new(),
            packet_shard: None,
            retired: Vec::new(),
            next_shard: 1,
            next_seq: 0,
            routes: Arc::new(Routes::default()),
            route_map: RouteMap::default(),
            planes,
            vrrp: None,
            health: None,
            generation: 0,
            packet: None,
            syn_proxy_warned: Default::default(),
            nft_marks: Vec::new(),
            quorum_lost: std::collections::HashSet::new(),
            announce: None,
            sync: crate::sync::SyncDaemons::default(),
            managed: crate::discovery::status::Managed::default(),
            discovery: Vec::new(),
            deferred: None,
            listener_changes: Vec::new(),
            wakeups: Arc::default(),
            order: std::collections::BTreeMap::new(),
            real_servers: 0,
        };
        st.sync.params = st.sysctls.sync_params();
        if planes.packet {
            let sh = st.new_shard(now);
            // Its workers use it without waking it: the ticker visits it always.
            shard::lock(&sh).pin(now);
            let id = shard::lock(&sh).id;
            st.route_map.by_id.insert(id, sh.clone());
            st.packet_shard = Some(sh);
            st.publish_routes();
        }
        st
    }

    fn new_shard(&mut self, now: Time) -> ShardRef {
        let id = self.next_shard;
        // Ids are never reused while the daemon runs (2^24 services created is far away;
        // a handle keeps 24 bits for the id).
        self.next_shard = self.next_shard.wrapping_add(1).max(1) & 0x00ff_ffff;
        let mut sh = Shard::new(id, now, &self.sys, self.wakeups.clone());
        self.sysctls.apply_all(&mut sh.director);
        Arc::new(Mutex::new(sh))
    }

    /// `rvsadm --sysctl NAME=VALUE` / `rvsd --sysctl`: validate, store, apply to every shard
    /// (the packet plane's view, published at the bump, carries `pmtu_disc`). A sysctl rvs does
    /// not act on yet is stored with a warning.
    fn set_sysctl(&mut self, name: &str, value: &str, now: Time) -> Response {
        let def = match self.sysctls.set(name, value, cpu_count()) {
            Ok(d) => d,
            Err(e) => {
                let kind = match e {
                    SysctlError::Unknown(_) => ErrorKind::Enoent,
                    SysctlError::Invalid { .. } => ErrorKind::Einval,
                    SysctlError::ReadOnly { .. } => ErrorKind::Eperm,
                };
                return Response::err(error(kind, e.to_string()));
            }
        };
        for s in self.shards() {
            // Woken first: a sysctl may give a settled shard work (`run_estimation`).
            let mut g = shard::lock(&s);
            g.wake(now);
            self.sysctls.apply(def.name, &mut g.director);
        }
        if def.name.starts_with("sync_") || def.name == "backup_only" {
            // Sync daemons started from now on use them (`crate::sync`).
            self.sync.params = self.sysctls.sync_params();
        }
        self.bump_generation();
        let mut r = done();
        if def.name == "rvs_syn_proxy" {
            for w in self.syn_proxy_unproxied() {
                r = r.warn(w);
            }
        }
        match def.effect {
            Effect::NotYet(why) => r.warn(format!(
                "net.ipv4.vs.{} = {}: stored, but rvs does not act on it yet ({why})",
                def.name,
                self.sysctls
                    .get(def.name)
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            )),
            _ => r,
        }
    }

    /// `rvsadm --sysctl`: every sysctl with its value.
    fn sysctl_entries(&self) -> Vec<m::SysctlEntry> {
        self.sysctls
            .iter()
            .map(|(d, v)| {
                let (acts, writable, note) = match d.effect {
                    Effect::Acts => (true, true, None),
                    Effect::NotYet(w) => (false, true, Some(w.to_string())),
                    Effect::ReadOnly(w) => (false, false, Some(w.to_string())),
                };
                m::SysctlEntry {
                    name: d.name.to_string(),
                    value: v.to_string(),
                    writable,
                    acts,
                    note,
                }
            })
            .collect()
    }

    /// The current table generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Bump the table generation (see [`State::generation`]) and hand the packet plane its
    /// new view.
    pub fn bump_generation(&mut self) {
        if let Some(d) = &mut self.deferred {
            d.view = true;
            return;
        }
        self.generation += 1;
        self.publish_packet_view();
        let w = self.syn_proxy_unproxied();
        self.syn_proxy_warned.log_new(w);
    }

    /// The TCP services `rvs_syn_proxy=1` leaves unprotected (see [`crate::syn_proxy_check`]).
    pub fn syn_proxy_unproxied(&self) -> Vec<String> {
        let on = self.sysctls.int("rvs_syn_proxy") != 0;
        if !on {
            return Vec::new();
        }
        let services: Vec<(ServiceKey, ShardRef)> = self
            .service_keys()
            .into_iter()
            .filter_map(|k| Some((k, self.shard_of(&k)?.clone())))
            .collect();
        crate::syn_proxy_check::unproxied(on, self.packet_shard.as_ref(), &services)
    }

    /// Connect the packet plane: from now on every change publishes its view to `feed`
    /// (once here, so the plane starts from the current table).
    pub fn attach_packet_plane(&mut self, feed: PacketFeed) {
        self.packet = Some(feed);
        self.publish_packet_view();
    }

    /// The packet plane's feed, when it runs.
    pub fn packet_feed(&self) -> Option<&PacketFeed> {
        self.packet.as_ref()
    }

    /// Compute the packet plane's view of the table (once, for every worker and the keeper)
    /// and publish it.
    fn publish_packet_view(&self) {
        let Some(feed) = &self.packet else {
            return;
        };
        let sh = self.packet_shard.as_ref().map(|s| shard::lock(s));
        let view = packet_config::view_of(
            feed,
            sh.as_deref(),
            self.vrrp.as_ref(),
            &self.nft_marks,
            self.sysctls.int("pmtu_disc") != 0,
            self.generation,
        );
        drop(sh);
        feed.view.publish(view);
    }

    /// After a VRRP transition (the packet plane's keeper sees the board's epoch move):
    /// publish a view with the new owned addresses. Does nothing when the current view
    /// already reflects the board.
    pub fn follow_vrrp(&mut self) {
        let moved = self
            .packet
            .as_ref()
            .is_some_and(|f| f.view.load().vrrp_moved());
        if moved {
            self.bump_generation();
        }
    }

    /// Replace the mark rules read from nft; a change is published like a table change.
    pub fn set_nft_marks(&mut self, rules: Vec<rvs_packet::plane::MarkRule>) {
        if self.nft_marks != rules {
            self.nft_marks = rules;
            self.bump_generation();
        }
    }

    /// Attach the VRRP driver's status board.
    pub fn set_vrrp(&mut self, board: Arc<crate::vrrp::StatusBoard>) {
        self.vrrp = Some(board);
        self.bump_generation();
    }

    /// Attach the keepalived runtime's health counters.
    pub fn set_health(&mut self, counters: Arc<crate::keepalived::counters::HealthCounters>) {
        self.health = Some(counters);
    }

    /// The packet plane's shard, when it runs.
    pub fn packet_shard(&self) -> Option<&ShardRef> {
        self.packet_shard.as_ref()
    }

    /// The shard of service `key`.
    pub fn shard_of(&self, key: &ServiceKey) -> Option<&ShardRef> {
        self.services.get(key).map(|p| &p.shard)
    }

    /// Every service key, in creation order.
    pub fn service_keys(&self) -> Vec<ServiceKey> {
        self.order.values().copied().collect()
    }

    /// Every service key in creation order, lazily (a sampler that stops early pays for
    /// what it reads).
    pub fn service_keys_iter(&self) -> impl Iterator<Item = &ServiceKey> {
        self.order.values()
    }

    /// Every shard once: the packet plane's, each service's, and retired ones. O(services):
    /// the packet plane's shard is the only one services share (every other service has a
    /// shard of its own, see [`crate::shard`]), so skipping it is the whole de-duplication.
    pub fn shards(&self) -> Vec<ShardRef> {
        let mut v: Vec<ShardRef> = Vec::with_capacity(1 + self.services.len() + self.retired.len());
        v.extend(self.packet_shard.iter().cloned());
        let packet = self.packet_shard.as_ref();
        v.extend(
            self.services
                .values()
                .filter(|p| !packet.is_some_and(|s| Arc::ptr_eq(s, &p.shard)))
                .map(|p| p.shard.clone()),
        );
        v.extend(self.retired.iter().cloned());
        v
    }

    /// Where the sync daemons find the shards.
    pub fn sync_shards(&self) -> crate::sync::Shards {
        crate::sync::Shards {
            routes: self.routes.clone(),
            packet: self.packet_shard.clone(),
        }
    }

    /// Run `f` on the shard of `key` with its lock held.
    pub fn with_service<R>(&self, key: &ServiceKey, f: impl FnOnce(&mut Shard) -> R) -> Option<R> {
        let s = self.shard_of(key)?;
        let mut g = shard::lock(s);
        Some(f(&mut g))
    }

    /// [`State::with_service`] for a change made at `now`: the shard is woken first
    /// ([`Shard::wake`]), so a change that gives it periodic work (a real server in the
    /// trash, a revived one's estimator, a scheduler's state) gets its ticks.
    fn change_service<R>(
        &self,
        key: &ServiceKey,
        now: Time,
        f: impl FnOnce(&mut Shard) -> R,
    ) -> Option<R> {
        self.with_service(key, |g| {
            g.wake(now);
            f(g)
        })
    }

    /// The shard with id `id`, live or retired (the ticker resolves [`Wakeups`] with it).
    pub fn shard_by_id(&self, id: u32) -> Option<ShardRef> {
        self.route_map.by_id.get(&id).cloned()
    }

    /// The queue of shards asking for the ticker.
    pub fn wakeups(&self) -> &Arc<Wakeups> {
        &self.wakeups
    }

    /// Every service with its destinations in kernel list order (newest first); rvsadm sorts.
    pub fn list_services(&self) -> Vec<m::ServiceEntry> {
        self.service_keys()
            .iter()
            .filter_map(|k| self.list_service(k))
            .collect()
    }

    /// One service as the listings show it.
    pub fn list_service(&self, key: &ServiceKey) -> Option<m::ServiceEntry> {
        self.with_service(key, |sh| listing::service(sh, key))
            .flatten()
    }

    /// The connection table as `ipvsadm -Lc` shows it, every shard's.
    pub fn list_conns(&self, now: Time) -> Vec<m::ConnEntry> {
        let mut out = Vec::new();
        for s in self.shards() {
            out.extend(listing::conns(&shard::lock(&s), now));
        }
        out
    }

    /// Tell the proxy where every service and shard is now (at the end of a batch, when one
    /// is being applied). The map was kept up to date change by change; publishing copies
    /// only its bucket pointers, so a single `-A` does not pay for the whole table.
    fn publish_routes(&mut self) {
        if let Some(d) = &mut self.deferred {
            d.routes = true;
            return;
        }
        self.routes.publish(self.route_map.clone());
    }

    /// Drop retired shards nothing refers to any more; called by the ticker.
    pub fn reap_retired(&mut self) {
        let before = self.retired.len();
        let mut gone = Vec::new();
        self.retired.retain(|s| {
            let mut g = shard::lock(s);
            let idle = g.is_idle();
            if idle {
                g.withdraw_totals();
                gone.push(g.id);
            }
            !idle
        });
        for id in &gone {
            self.route_map.by_id.remove(id);
        }
        if self.retired.len() != before {
            self.publish_routes();
        }
    }

    /// A service left its shard: a shard of its own retires (it stays until its connections
    /// are gone), the packet plane's shard stays.
    fn unplace(&mut self, key: &ServiceKey) {
        let Some(p) = self.services.remove(key) else {
            return;
        };
        self.order.remove(&p.seq);
        self.route_map.by_service.remove(key);
        if let Some(l) = self.proxy_listener(key) {
            self.listener_changes.push((l, false));
        }
        let shared = self
            .packet_shard
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &p.shard));
        if !shared {
            self.retired.push(p.shard);
        }
    }

    /// Totals over every shard: counters, rates, connection-table entries, proxy reschedules.
    pub fn totals(&self) -> shard::Contribution {
        let mut t = shard::Contribution::default();
        for s in self.shards() {
            t += shard::lock(&s).contribution();
        }
        t
    }

    /// The number of services and of their real servers (kept change by change).
    pub fn size(&self) -> (u64, u64) {
        (self.services.len() as u64, self.real_servers)
    }

    /// [`State::totals`] as of the ticker's last step, without visiting any shard
    /// ([`crate::shard::Wakeups::totals`]): for the samplers that run every second whatever
    /// the table's size.
    pub fn totals_cached(&self) -> shard::Contribution {
        self.wakeups.totals()
    }

    /// New connections refused because a shard's table held `rvs_conn_max` entries, summed
    /// over shards.
    pub fn conns_refused_full(&self) -> u64 {
        self.shards()
            .into_iter()
            .map(|s| shard::lock(&s).director.conns.refused_full())
            .sum()
    }

    /// Proxy flows of content persistence engines closed unserved, summed over shards, per
    /// [`rvs_proxy::ContentReject::ALL`] reason.
    pub fn pe_rejects(&self) -> [u64; rvs_proxy::ContentReject::ALL.len()] {
        let mut out = [0; rvs_proxy::ContentReject::ALL.len()];
        for s in self.shards() {
            let g = shard::lock(&s);
            for (o, n) in out.iter_mut().zip(g.pe_rejects) {
                *o += n;
            }
        }
        out
    }

    /// Why a service cannot be served by the running planes, if it cannot.
    pub fn service_unserved(&self, key: &ServiceKey) -> Option<String> {
        if self.planes.packet {
            return None;
        }
        let why = match key {
            ServiceKey::Fwmark { .. } => "firewall-mark services",
            ServiceKey::Addr { port: 0, .. } => "port-0 (all ports) services",
            ServiceKey::Addr {
                proto: Protocol::Sctp,
                ..
            } => "SCTP services",
            _ => return None,
        };
        Some(format!(
            "{} is accepted but not served: {why} need the packet data plane (rvsd --interface), \
             and rvsd runs only the socket proxy",
            key_from_core(key)
        ))
    }

    /// Why the service's persistence engine cannot work where the service is served, if it
    /// cannot (the content engines need the socket proxy, persistence and TCP).
    fn pe_unusable(&self, key: &ServiceKey, cfg: &rvs_core::ServiceConfig) -> Option<String> {
        let pe = cfg.pe.as_ref()?;
        let packet = self.planes.packet && packet_config::packet_serves(key);
        crate::pe::unusable(pe, key, cfg.is_persistent(), packet)
    }

    /// Why a destination cannot be served by the running planes, if it cannot.
    pub fn dest_unserved(&self, key: &ServiceKey, d: &rvs_core::DestConfig) -> Option<String> {
        if self.planes.packet {
            return None;
        }
        let how = match d.fwd {
            FwdMethod::Masq | FwdMethod::FullNat => return None,
            FwdMethod::Route => "direct routing (-g, ipvsadm's default)",
            FwdMethod::Tunnel => "tunnelling (-i)",
            FwdMethod::Local => "local delivery",
            FwdMethod::Bypass => "bypass",
        };
        Some(format!(
            "real server {} of {} is accepted but not served: {how} needs the packet data plane \
             (rvsd --interface); the socket proxy serves -m and --fullnat real servers",
            SocketAddr::new(d.addr, d.port),
            key_from_core(key)
        ))
    }

    /// Apply the requests of a [`Request::Batch`] in order, then publish to the data planes
    /// once. A request that may not be batched is answered EINVAL in its place; a failed
    /// request does not stop the others.
    pub fn handle_batch(&mut self, reqs: &[Request], now: Time) -> Vec<Response> {
        let outer = self.deferred.replace(Deferred::default());
        let out = reqs
            .iter()
            .map(|r| {
                if r.is_batchable() {
                    self.handle(r, now)
                } else {
                    Response::err(error(
                        ErrorKind::Einval,
                        "only table changes can be sent in a batch",
                    ))
                }
            })
            .collect();
        let owed = std::mem::replace(&mut self.deferred, outer).unwrap_or_default();
        if owed.routes {
            self.publish_routes();
        }
        if owed.view {
            self.bump_generation();
        }
        out
    }

    /// Apply one control request.
    pub fn handle(&mut self, req: &Request, now: Time) -> Response {
        if let Request::Batch(reqs) = req {
            return Response::ok(Payload::Batch(self.handle_batch(reqs, now)));
        }
        let r = self.apply(req, now);
        // After the change, so the packet plane's view is computed from the new table.
        if is_change(req)
            || matches!(
                req,
                Request::AddLocalAddr { .. } | Request::DelLocalAddr { .. }
            )
        {
            self.bump_generation();
        }
        r
    }

    fn apply(&mut self, req: &Request, now: Time) -> Response {
        let no_service = || Response::err(remote_error(&rvs_core::Error::NoService));
        let result = |r: rvs_core::Result<()>| match r {
            Ok(()) => done(),
            Err(e) => Response::err(remote_error(&e)),
        };
        match req {
            Request::Hello { .. } => Response::err(error(
                ErrorKind::Einval,
                "Hello is only valid as the first message",
            )),
            Request::Batch(reqs) => Response::ok(Payload::Batch(self.handle_batch(reqs, now))),
            Request::GetInfo => Response::ok(Payload::Info(m::Info::default())),
            Request::GetVrrp => crate::vrrp::status::answer(self.vrrp.as_deref()),
            Request::GetSysctls => Response::ok(Payload::Sysctls(self.sysctl_entries())),
            Request::SetSysctl { name, value } => self.set_sysctl(name, value, now),
            Request::AddService(spec) => {
                let key = key_to_core(&spec.key);
                let cfg = match service_to_core(spec) {
                    Ok(c) => c,
                    Err(e) => return Response::err(remote_error(&e)),
                };
                if self.services.contains_key(&key) {
                    return Response::err(remote_error(&rvs_core::Error::Exists));
                }
                if let Some(e) = self.pe_unusable(&key, &cfg) {
                    return Response::err(error(ErrorKind::Unsupported, &e));
                }
                let shard = match &self.packet_shard {
                    Some(p) if packet_config::packet_serves(&key) => p.clone(),
                    _ => self.new_shard(now),
                };
                let added = {
                    let mut g = shard::lock(&shard);
                    g.wake(now);
                    let r = g.director.table.add_service(key, cfg, now).map(|_| g.id);
                    if r.is_ok() {
                        g.extra.insert(
                            key,
                            ServiceExtra {
                                proxy_protocol: spec.proxy_protocol,
                                ..ServiceExtra::default()
                            },
                        );
                    }
                    r
                };
                let id = match added {
                    Ok(id) => id,
                    Err(e) => return Response::err(remote_error(&e)),
                };
                self.route_map.by_service.insert(key, shard.clone());
                self.route_map.by_id.insert(id, shard.clone());
                if let Some(l) = self.proxy_listener(&key) {
                    self.listener_changes.push((l, true));
                }
                self.services.insert(
                    key,
                    Placement {
                        shard,
                        seq: self.next_seq,
                    },
                );
                self.order.insert(self.next_seq, key);
                self.next_seq += 1;
                self.publish_routes();
                let mut r = done();
                if let Some(w) = self.service_unserved(&key) {
                    tracing::warn!("{w}");
                    r = r.warn(w);
                }
                r
            }
            Request::EditService(spec) => {
                let key = key_to_core(&spec.key);
                let cfg = match service_to_core(spec) {
                    Ok(c) => c,
                    Err(e) => return Response::err(remote_error(&e)),
                };
                if let Some(e) = self.pe_unusable(&key, &cfg) {
                    return Response::err(error(ErrorKind::Unsupported, &e));
                }
                self.change_service(&key, now, |g| {
                    let r = g.director.table.edit_service(&key, cfg, now);
                    if r.is_ok() {
                        g.extra.entry(key).or_default().proxy_protocol = spec.proxy_protocol;
                    }
                    result(r)
                })
                .unwrap_or_else(no_service)
            }
            Request::DelService(k) => {
                let key = key_to_core(k);
                let r = self.change_service(&key, now, |g| {
                    let t = &g.director.table;
                    let dests = t
                        .id_of(&key)
                        .and_then(|id| t.service(id))
                        .map_or(0, |s| s.dests.len() as u64);
                    let r = g.director.del_service(&key, now).map(|()| dests);
                    if r.is_ok() {
                        g.extra.remove(&key);
                    }
                    r
                });
                match r {
                    None => no_service(),
                    Some(Err(e)) => Response::err(remote_error(&e)),
                    Some(Ok(dests)) => {
                        self.real_servers = self.real_servers.saturating_sub(dests);
                        self.unplace(&key);
                        self.publish_routes();
                        done()
                    }
                }
            }
            Request::Flush => {
                for key in self.service_keys() {
                    self.unplace(&key);
                }
                self.real_servers = 0;
                // Connections stay in their shards until they expire, as in the kernel.
                for s in self.shards() {
                    let mut g = shard::lock(&s);
                    g.wake(now);
                    g.director.clear(now);
                    g.extra.clear();
                }
                self.publish_routes();
                done()
            }
            Request::Zero(k) => match k {
                None => {
                    for s in self.shards() {
                        let mut g = shard::lock(&s);
                        g.director.zero(None);
                        // Zeroing changes what a settled shard shows without waking it.
                        g.publish_totals();
                    }
                    done()
                }
                Some(k) => {
                    let key = key_to_core(k);
                    self.with_service(&key, |g| match g.director.table.id_of(&key) {
                        Some(id) => {
                            g.director.zero(Some(id));
                            g.publish_totals();
                            done()
                        }
                        None => no_service(),
                    })
                    .unwrap_or_else(no_service)
                }
            },
            Request::AddDest { service, dest } => {
                let key = key_to_core(service);
                let cfg = dest_to_core(dest);
                if self.sync.any_runs() && rvs_core::Family::of(&cfg.addr) != key.family() {
                    // The sync protocol cannot carry mixed-family connections (as the kernel).
                    return Response::err(error(
                        ErrorKind::Einval,
                        "a sync daemon runs: real servers of the other address family are \
                         refused",
                    ));
                }
                match self.change_service(&key, now, |g| g.director.table.add_dest(&key, cfg, now))
                {
                    None => no_service(),
                    Some(Err(e)) => Response::err(remote_error(&e)),
                    Some(Ok(_)) => {
                        self.real_servers += 1;
                        let mut r = done();
                        if let Some(w) = self.dest_unserved(&key, &cfg) {
                            tracing::warn!("{w}");
                            r = r.warn(w);
                        }
                        r
                    }
                }
            }
            Request::EditDest { service, dest } => {
                let key = key_to_core(service);
                let cfg = dest_to_core(dest);
                match self.change_service(&key, now, |g| g.director.table.edit_dest(&key, cfg)) {
                    None => no_service(),
                    Some(Err(e)) => Response::err(remote_error(&e)),
                    Some(Ok(_)) => {
                        let mut r = done();
                        if let Some(w) = self.dest_unserved(&key, &cfg) {
                            tracing::warn!("{w}");
                            r = r.warn(w);
                        }
                        r
                    }
                }
            }
            Request::DelDest {
                service,
                addr,
                port,
            } => {
                let key = key_to_core(service);
                let r = self
                    .change_service(&key, now, |g| {
                        result(g.director.del_dest(&key, addr, *port, now).map(|_| ()))
                    })
                    .unwrap_or_else(no_service);
                if r.result.is_ok() {
                    self.real_servers = self.real_servers.saturating_sub(1);
                }
                r
            }
            Request::SetTimeouts(t) => {
                let r = self.sys.conn.timeouts.set(
                    u64::from(t.tcp),
                    u64::from(t.tcp_fin),
                    u64::from(t.udp),
                );
                if r.is_ok() {
                    for s in self.shards() {
                        shard::lock(&s).director.sys.conn.timeouts = self.sys.conn.timeouts.clone();
                    }
                }
                result(r)
            }
            Request::GetTimeouts => {
                let t = &self.sys.conn.timeouts;
                let secs = |x: rvs_core::Duration| u32::try_from(x.as_secs()).unwrap_or(u32::MAX);
                Response::ok(Payload::Timeouts(m::Timeouts {
                    tcp: secs(t.tcp[usize::from(tcp::ESTABLISHED)]),
                    tcp_fin: secs(t.tcp[usize::from(tcp::FIN_WAIT)]),
                    udp: secs(t.udp),
                }))
            }
            Request::GetServices => Response::ok(Payload::Services(self.list_services())),
            Request::GetService(k) => match self.list_service(&key_to_core(k)) {
                Some(s) => Response::ok(Payload::Service(s)),
                None => no_service(),
            },
            Request::GetDests(k) => match self.list_service(&key_to_core(k)) {
                Some(s) => Response::ok(Payload::Dests(s.dests)),
                None => no_service(),
            },
            Request::GetConns => Response::ok(Payload::Conns(self.list_conns(now))),
            Request::GetDaemons => Response::ok(Payload::Daemons(self.sync.list())),
            Request::StartDaemon(cfg) => {
                let shards = self.sync_shards();
                match self.sync.start(cfg, shards, crate::clock::Clock::at(now)) {
                    Ok(()) => done(),
                    Err((kind, detail)) => Response::err(error(kind, detail)),
                }
            }
            Request::StopDaemon { role, .. } => match self.sync.stop(*role) {
                Ok(()) => done(),
                Err((kind, detail)) => Response::err(error(kind, detail)),
            },
            Request::AddLocalAddr { service, addr } => {
                let key = key_to_core(service);
                if rvs_core::Family::of(addr) != key.family() && self.shard_of(&key).is_some() {
                    return Response::err(error(
                        ErrorKind::Einval,
                        "local address family differs from the service",
                    ));
                }
                self.with_service(&key, |g| {
                    let x = g.extra.entry(key).or_default();
                    if !x.laddrs.add(*addr) {
                        return Response::err(remote_error(&rvs_core::Error::Exists));
                    }
                    done()
                })
                .unwrap_or_else(no_service)
            }
            Request::DelLocalAddr { service, addr } => {
                let key = key_to_core(service);
                self.with_service(&key, |g| {
                    let x = g.extra.entry(key).or_default();
                    if x.laddrs.remove(*addr) {
                        done()
                    } else {
                        Response::err(remote_error(&rvs_core::Error::NotFound))
                    }
                })
                .unwrap_or_else(no_service)
            }
            Request::GetLocalAddrs(k) => {
                let keys: Vec<ServiceKey> = match k {
                    Some(k) => {
                        let key = key_to_core(k);
                        if self.shard_of(&key).is_none() {
                            return no_service();
                        }
                        vec![key]
                    }
                    None => self.service_keys(),
                };
                let out = keys
                    .iter()
                    .map(|key| m::ServiceLocalAddrs {
                        service: key_from_core(key),
                        laddrs: self
                            .with_service(key, |g| {
                                let addrs: Vec<(IpAddr, u64)> = g
                                    .extra
                                    .get(key)
                                    .map(|x| x.laddrs.conflicts().collect())
                                    .unwrap_or_default();
                                addrs
                                    .into_iter()
                                    .map(|(addr, port_conflicts)| m::LocalAddrEntry {
                                        addr,
                                        port_conflicts,
                                        conns: crate::listing::local_addr_conns(g, key, addr),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                    .collect();
                Response::ok(Payload::LocalAddrs(out))
            }
        }
    }

    /// The listeners the socket proxy should have: every TCP and UDP service with a port —
    /// except, when the packet plane runs, services it serves (every VIP but loopback ones,
    /// see `packet_plane`), so a service is never carried by both planes.
    pub fn proxy_listeners(&self) -> Vec<rvs_proxy::ListenerSpec> {
        let mut v: Vec<rvs_proxy::ListenerSpec> = self
            .services
            .keys()
            .filter_map(|key| self.proxy_listener(key))
            .collect();
        v.sort_by_key(|l| (l.addr, l.protocol == Protocol::Udp));
        v
    }

    /// The listener the socket proxy needs for service `key`, if it carries it.
    fn proxy_listener(&self, key: &ServiceKey) -> Option<rvs_proxy::ListenerSpec> {
        match *key {
            // The proxy carries TCP and UDP; SCTP services are the packet plane's.
            ServiceKey::Addr { proto, addr, port }
                if port != 0
                    && proto != Protocol::Sctp
                    && (!self.planes.packet || addr.is_loopback()) =>
            {
                Some(rvs_proxy::ListenerSpec {
                    protocol: proto,
                    addr: SocketAddr::new(addr, port),
                })
            }
            _ => None,
        }
    }

    /// True when listener changes wait for [`State::take_listener_changes`].
    pub fn listeners_changed(&self) -> bool {
        !self.listener_changes.is_empty()
    }

    /// The listener changes made since the last call, folded to one per listener (the last
    /// wins): `(open, close)`. The proxy applies them with
    /// [`rvs_proxy::Proxy::change_listeners`], in time proportional to the change.
    pub fn take_listener_changes(
        &mut self,
    ) -> (Vec<rvs_proxy::ListenerSpec>, Vec<rvs_proxy::ListenerSpec>) {
        let mut last: HashMap<rvs_proxy::ListenerSpec, bool> = HashMap::new();
        let mut order = Vec::new();
        for (l, open) in self.listener_changes.drain(..) {
            if last.insert(l, open).is_none() {
                order.push(l);
            }
        }
        order.into_iter().partition(|l| last[l])
    }
}

/// The machine-dependent sysctl defaults: `sync_qlen_max` from the available memory (the
/// kernel uses its free buffer pages), `est_cpulist` from the CPU count.
fn machine_defaults() -> MachineDefaults {
    MachineDefaults {
        free_buffer_pages: crate::memory::available_pages(),
        cpus: cpu_count(),
    }
}

fn cpu_count() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
}

/// Whether a request changes the table (and so the listeners); a batch does when any of its
/// requests does.
pub fn is_change(req: &Request) -> bool {
    if let Request::Batch(reqs) = req {
        return reqs.iter().any(is_change);
    }
    matches!(
        req,
        Request::AddService(_)
            | Request::EditService(_)
            | Request::DelService(_)
            | Request::Flush
            | Request::AddDest { .. }
            | Request::EditDest { .. }
            | Request::DelDest { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::DirectorBalancer;
    use crate::clock::Clock;
    use crate::test_support::parse_cmd;
    use rvs_proxy::{Balancer, CloseReason, FlowEvent, FlowInfo};

    fn state(cmds: &[&str]) -> State {
        state_with(Planes { packet: false }, cmds)
    }

    fn state_with(planes: Planes, cmds: &[&str]) -> State {
        let mut st = State::new(Time(0), planes);
        for c in cmds {
            let r = st.handle(&parse_cmd(c), Time(0));
            assert!(r.result.is_ok(), "{c}: {r:?}");
        }
        st
    }

    fn tcp(client: &str, vip: &str) -> FlowInfo {
        FlowInfo {
            protocol: Protocol::Tcp,
            client: client.parse().unwrap(),
            vip: vip.parse().unwrap(),
        }
    }

    /// Proxied services :80 (→ 127.0.0.11) and :81 (→ 127.0.0.12), rr, and a balancer over
    /// them.
    fn two_services() -> (State, DirectorBalancer) {
        let st = state(&[
            "-A -t 127.0.0.1:80 -s rr",
            "-a -t 127.0.0.1:80 -r 127.0.0.11:8081 -m",
            "-A -t 127.0.0.1:81 -s rr",
            "-a -t 127.0.0.1:81 -r 127.0.0.12:8081 -m",
        ]);
        let b = DirectorBalancer {
            routes: st.routes.clone(),
            clock: Clock::new(),
        };
        (st, b)
    }

    fn key(s: &str) -> ServiceKey {
        let a: SocketAddr = s.parse().unwrap();
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: a.ip(),
            port: a.port(),
        }
    }

    /// `--get-laddr` CONNS of `svc`: (local address, connections) as rvsadm receives them.
    fn laddr_conns(st: &mut State, svc: &str) -> Vec<(IpAddr, u64)> {
        let req = Request::GetLocalAddrs(Some(key_from_core(&key(svc))));
        match st.handle(&req, Time(0)).result {
            Ok(Payload::LocalAddrs(v)) => v[0].laddrs.iter().map(|l| (l.addr, l.conns)).collect(),
            r => panic!("{r:?}"),
        }
    }

    /// One full-NAT local-address view for both planes: `--get-laddr` CONNS counts the live
    /// packet-plane connections that use the address (by the local address in their entry)
    /// and the live proxy flows that connect from it, and forgets them when they end.
    #[test]
    fn get_laddr_counts_live_fullnat_use_on_both_planes() {
        let mut st = state_with(
            Planes { packet: true },
            &[
                "-A -t 10.0.0.1:80 -s rr",
                "-a -t 10.0.0.1:80 -r 10.1.0.11:8080 --fullnat",
                "--add-laddr -t 10.0.0.1:80 -z 10.2.0.1",
                "--add-laddr -t 10.0.0.1:80 -z 10.2.0.2",
                "-A -t 127.0.0.1:80 -s rr",
                "-a -t 127.0.0.1:80 -r 127.0.0.11:8081 --fullnat",
                "--add-laddr -t 127.0.0.1:80 -z 127.0.0.2",
            ],
        );
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };

        // Packet plane: two new connections through the director as the plane makes them, both
        // given 10.2.0.1 by the plane's local-address allocator.
        struct First(u16);
        impl rvs_core::director::LocalAddrs for First {
            fn pick(
                &mut self,
                _: &ServiceKey,
                _: u8,
                _: IpAddr,
                _: u16,
                _: &rvs_core::ConnTable,
            ) -> Option<(IpAddr, u16)> {
                self.0 += 1;
                Some(("10.2.0.1".parse().unwrap(), self.0))
            }
        }
        let mut pool = First(40000);
        let syn = rvs_core::conn::state::TcpFlags {
            syn: true,
            fin: false,
            ack: false,
            rst: false,
        };
        {
            let shard = st.packet_shard().unwrap().clone();
            let mut g = shard::lock(&shard);
            let Shard { director, rng, .. } = &mut *g;
            for sport in [50000, 50001] {
                let pkt = rvs_core::director::Packet {
                    fwmark: 0,
                    proto: Protocol::Tcp,
                    saddr: ip("192.0.2.7"),
                    sport,
                    daddr: ip("10.0.0.1"),
                    dport: 80,
                    seg: rvs_core::conn::Segment::Tcp(syn),
                    len: 60,
                    payload: &[],
                };
                let v = director.packet_in_fullnat(&pkt, Time(0), rng, &mut pool);
                assert!(matches!(v, rvs_core::Verdict::Forward(_)), "{v:?}");
            }
        }
        assert_eq!(
            laddr_conns(&mut st, "10.0.0.1:80"),
            [(ip("10.2.0.1"), 2), (ip("10.2.0.2"), 0)]
        );
        {
            let shard = st.packet_shard().unwrap().clone();
            let mut g = shard::lock(&shard);
            let ids: Vec<_> = g.director.conns.iter().collect();
            for id in ids {
                g.director.abort_conn(id, Time(0));
            }
        }
        assert_eq!(
            laddr_conns(&mut st, "10.0.0.1:80"),
            [(ip("10.2.0.1"), 0), (ip("10.2.0.2"), 0)]
        );

        // Socket proxy: an open flow counts, a closed one no more.
        let b = DirectorBalancer {
            routes: st.routes.clone(),
            clock: Clock::new(),
        };
        let be = b.open(&tcp("127.0.0.5:40000", "127.0.0.1:80")).unwrap();
        assert_eq!(be.source, Some(ip("127.0.0.2")));
        assert_eq!(laddr_conns(&mut st, "127.0.0.1:80"), [(ip("127.0.0.2"), 1)]);
        b.event(be.handle, FlowEvent::Closed(CloseReason::Normal));
        assert_eq!(laddr_conns(&mut st, "127.0.0.1:80"), [(ip("127.0.0.2"), 0)]);
    }

    /// A batch gives each request the answer it gets alone, goes on after a failure, refuses
    /// what may not be batched, and publishes the routes and the table generation once.
    #[test]
    fn a_batch_answers_each_request_and_publishes_once() {
        let mut st = state(&[]);
        let (routes0, gen0) = (st.routes.version(), st.generation());
        let reqs: Vec<Request> = [
            "-A -t 127.0.0.1:80 -s rr",
            "-a -t 127.0.0.1:80 -r 127.0.0.11:8081 -m",
            "-A -t 127.0.0.1:80",
            "-A -t 127.0.0.1:81",
            "-a -t 127.0.0.1:82 -r 127.0.0.11:8081 -m",
            "-D -t 127.0.0.1:81",
        ]
        .iter()
        .map(|c| parse_cmd(c))
        .chain([Request::GetServices])
        .collect();
        let r = st.handle(&Request::Batch(reqs), Time(0));
        let Ok(Payload::Batch(answers)) = r.result else {
            panic!("{r:?}");
        };
        let kinds: Vec<Option<ErrorKind>> = answers
            .iter()
            .map(|a| a.result.as_ref().err().map(|e| e.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                None,
                None,
                Some(ErrorKind::Eexist),
                None,
                Some(ErrorKind::Esrch),
                None,
                Some(ErrorKind::Einval)
            ]
        );
        assert_eq!(st.service_keys(), [key("127.0.0.1:80")]);
        assert_eq!(st.routes.version(), routes0 + 1, "routes published once");
        assert_eq!(st.generation(), gen0 + 1, "one new table generation");
        assert!(st.routes.service(&key("127.0.0.1:80")).is_some());
        assert!(st.routes.service(&key("127.0.0.1:81")).is_none());
        // Nested batches are refused.
        let r = st.handle_batch(&[Request::Batch(vec![])], Time(0));
        assert_eq!(r[0].result.as_ref().unwrap_err().kind, ErrorKind::Einval);
    }

    /// `shards()` lists each shard once: the packet plane's shard (shared by its services)
    /// once, every proxied service's own, and retired ones.
    /// One `-A`/`-D` on a large table hands the proxy exactly its own listener change and
    /// publishes routes that differ from the previous ones in one entry: nothing in the
    /// request is proportional to the table.
    #[test]
    fn one_change_on_a_large_table_touches_one_listener_and_one_route() {
        let mut st = State::new(Time(0), Planes { packet: false });
        let reqs: Vec<Request> = (0..2000)
            .map(|i| parse_cmd(&format!("-A -t 127.1.{}.{}:80", i / 250, i % 250 + 1)))
            .collect();
        st.handle(&Request::Batch(reqs), Time(0));
        let (open, close) = st.take_listener_changes();
        assert_eq!((open.len(), close.len()), (2000, 0));
        let before = st.routes.load();
        st.handle(&parse_cmd("-A -t 127.2.0.1:80"), Time(0));
        st.handle(&parse_cmd("-A -u 127.2.0.2:53"), Time(0));
        st.handle(&parse_cmd("-D -t 127.1.0.1:80"), Time(0));
        // Added and deleted again before the proxy looked: the last change wins (a close of a
        // listener the proxy never opened, which it ignores).
        st.handle(&parse_cmd("-A -t 127.2.0.3:80"), Time(0));
        st.handle(&parse_cmd("-D -t 127.2.0.3:80"), Time(0));
        let l = |s: &str, p| rvs_proxy::ListenerSpec {
            protocol: p,
            addr: s.parse().unwrap(),
        };
        let (open, close) = st.take_listener_changes();
        assert_eq!(
            open,
            [
                l("127.2.0.1:80", Protocol::Tcp),
                l("127.2.0.2:53", Protocol::Udp)
            ]
        );
        assert_eq!(
            close,
            [
                l("127.1.0.1:80", Protocol::Tcp),
                l("127.2.0.3:80", Protocol::Tcp)
            ]
        );
        assert_eq!(st.take_listener_changes(), (vec![], vec![]));
        let after = st.routes.load();
        assert_eq!(after.by_service.len(), 2001);
        assert!(before.by_service.get(&key("127.1.0.1:80")).is_some());
        assert!(after.by_service.get(&key("127.1.0.1:80")).is_none());
        assert!(after.by_service.get(&key("127.2.0.1:80")).is_some());
        assert_eq!(before.by_service.len(), 2000, "the old copy is unchanged");
    }

    #[test]
    fn shards_lists_each_shard_once() {
        let mut st = state_with(
            Planes { packet: true },
            &[
                "-A -t 10.0.0.1:80",
                "-A -t 10.0.0.2:80",
                "-A -t 127.0.0.1:80",
                "-A -t 127.0.0.1:81",
            ],
        );
        let ids = |st: &State| {
            let mut v: Vec<u32> = st.shards().iter().map(|s| shard::lock(s).id).collect();
            v.sort_unstable();
            v
        };
        assert_eq!(ids(&st).len(), 3);
        let mut uniq = ids(&st);
        uniq.dedup();
        assert_eq!(uniq, ids(&st));
        assert!(st
            .handle(&parse_cmd("-D -t 127.0.0.1:81"), Time(0))
            .result
            .is_ok());
        assert_eq!(ids(&st).len(), 3, "a retired shard is still listed");
        st.reap_retired();
        assert_eq!(ids(&st).len(), 2);
    }

    #[test]
    fn every_proxied_service_has_a_shard_of_its_own() {
        let st = state(&[
            "-A -t 127.0.0.1:80 -s rr",
            "-A -t 127.0.0.1:81 -s wlc",
            "-A -f 7 -s rr",
        ]);
        let a = st.shard_of(&key("127.0.0.1:80")).unwrap();
        let b = st.shard_of(&key("127.0.0.1:81")).unwrap();
        assert!(!Arc::ptr_eq(a, b));
        assert_eq!(st.shards().len(), 3);
        assert_eq!(
            st.service_keys()[..2],
            [key("127.0.0.1:80"), key("127.0.0.1:81")]
        );
        let dup = state(&["-A -t 127.0.0.1:80"]).handle(&parse_cmd("-A -t 127.0.0.1:80"), Time(0));
        assert!(dup.result.is_err(), "a second -A of one service must fail");
    }

    #[test]
    fn packet_plane_services_share_its_shard_and_loopback_ones_do_not() {
        let st = state_with(
            Planes { packet: true },
            &[
                "-A -t 10.0.0.1:80",
                "-A -u 10.0.0.2:53",
                "-A -f 9",
                "-A -t 127.0.0.1:80",
            ],
        );
        let p = st.packet_shard().unwrap().clone();
        assert!(Arc::ptr_eq(st.shard_of(&key("10.0.0.1:80")).unwrap(), &p));
        assert!(!Arc::ptr_eq(st.shard_of(&key("127.0.0.1:80")).unwrap(), &p));
        assert_eq!(shard::lock(&p).director.table.len(), 3);
    }

    #[test]
    fn proxy_flows_use_their_service_shard_and_survive_its_deletion() {
        let (mut st, b) = two_services();
        let f80 = tcp("127.0.0.5:40000", "127.0.0.1:80");
        let f81 = tcp("127.0.0.5:40001", "127.0.0.1:81");
        let b80 = b.open(&f80).unwrap();
        let b81 = b.open(&f81).unwrap();
        assert_eq!(b80.addr, "127.0.0.11:8081".parse().unwrap());
        assert_eq!(b81.addr, "127.0.0.12:8081".parse().unwrap());
        b.event(b80.handle, FlowEvent::Connected);
        let count = |st: &State, k: &str| {
            st.with_service(&key(k), |g| g.director.conns.len())
                .unwrap()
        };
        assert_eq!(
            (count(&st, "127.0.0.1:80"), count(&st, "127.0.0.1:81")),
            (1, 1)
        );
        let listed = st.list_conns(Time(0));
        assert_eq!(listed.len(), 2);

        // Deleting :80 keeps its connection listed (as the kernel keeps it until it expires),
        // and the flow's late events still reach it.
        assert!(st
            .handle(&parse_cmd("-D -t 127.0.0.1:80"), Time(0))
            .result
            .is_ok());
        assert!(st.shard_of(&key("127.0.0.1:80")).is_none());
        assert_eq!(st.list_conns(Time(0)).len(), 2);
        assert!(b.open(&tcp("127.0.0.6:1", "127.0.0.1:80")).is_err());
        b.event(b80.handle, FlowEvent::Closed(CloseReason::Reset));
        st.reap_retired();
        assert_eq!(st.shards().len(), 2, "kept while its entry has not expired");

        // Once expired, the retired shard goes.
        let later = b.clock.now() + rvs_core::Duration::from_secs(3600);
        for s in st.shards() {
            let mut g = shard::lock(&s);
            let Shard { director, rng, .. } = &mut *g;
            director.tick(later, u64::MAX, 100_000, rng);
        }
        st.reap_retired();
        assert_eq!(st.shards().len(), 1);
        b.event(b81.handle, FlowEvent::Closed(CloseReason::Normal));
        assert_eq!(
            st.with_service(&key("127.0.0.1:81"), |g| g.flows.len()),
            Some(0)
        );
    }

    #[test]
    fn totals_timeouts_and_zero_cover_every_shard() {
        let (mut st, b) = two_services();
        for (i, vip) in ["127.0.0.1:80", "127.0.0.1:81"].iter().enumerate() {
            let be = b
                .open(&tcp(&format!("127.0.0.5:{}", 1000 + i), vip))
                .unwrap();
            b.event(be.handle, FlowEvent::Connected);
        }
        assert_eq!(st.totals().counters.conns, 2);
        assert!(st
            .handle(&parse_cmd("--set 100 20 30"), Time(0))
            .result
            .is_ok());
        for s in st.shards() {
            assert_eq!(shard::lock(&s).director.sys.conn.timeouts.udp.as_secs(), 30);
        }
        let fresh = st.handle(&parse_cmd("-A -t 127.0.0.1:82"), Time(0));
        assert!(fresh.result.is_ok());
        let s82 = st.shard_of(&key("127.0.0.1:82")).unwrap().clone();
        assert_eq!(
            shard::lock(&s82).director.sys.conn.timeouts.udp.as_secs(),
            30
        );
        assert!(st.handle(&parse_cmd("-Z"), Time(0)).result.is_ok());
        assert_eq!(st.totals().counters.conns, 0);
        assert!(st.handle(&parse_cmd("-C"), Time(0)).result.is_ok());
        assert!(st.service_keys().is_empty());
        assert_eq!(st.list_conns(Time(0)).len(), 2, "entries outlive -C");
    }

    #[test]
    fn a_proxy_connection_waits_neither_for_the_state_nor_for_another_service() {
        let (st, b) = two_services();
        let a = st.shard_of(&key("127.0.0.1:80")).unwrap().clone();
        let state = Arc::new(Mutex::new(st));
        // The control plane's lock and service :80's shard are both held...
        let _st = state.lock().unwrap();
        let _a = shard::lock(&a);
        // ...and a whole connection to :81 still goes through on another thread.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let f = tcp("127.0.0.5:2000", "127.0.0.1:81");
            let be = b.open(&f).expect("scheduled");
            b.event(be.handle, FlowEvent::Connected);
            b.event(be.handle, FlowEvent::ClientFin);
            b.event(be.handle, FlowEvent::ServerFin);
            b.event(be.handle, FlowEvent::Closed(CloseReason::Normal));
            let _ = tx.send(be.addr);
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(got, Ok("127.0.0.12:8081".parse().unwrap()));
    }

    /// `rvs_syn_proxy=1` names every TCP service it leaves unprotected, in rvsadm's answer:
    /// one with a DR or a TUN real server, one the socket proxy serves; not a NAT or full-NAT
    /// one on the packet plane, not a UDP one; nothing while the sysctl is 0.
    #[test]
    fn syn_proxy_names_the_services_it_cannot_protect() {
        let mut st = state_with(
            Planes { packet: true },
            &[
                "-A -t 10.0.0.1:80 -s rr",
                "-a -t 10.0.0.1:80 -r 10.1.0.11:80 -m",
                "-A -t 10.0.0.2:80 -s rr",
                "-a -t 10.0.0.2:80 -r 10.1.0.12:80 -m",
                "-a -t 10.0.0.2:80 -r 10.1.0.13:80 -g",
                "-A -t 10.0.0.3:80 -s rr",
                "-a -t 10.0.0.3:80 -r 10.1.0.14:80 -i",
                "-A -t 10.0.0.5:80 -s rr",
                "-a -t 10.0.0.5:80 -r 10.1.0.15:80 --fullnat",
                "-A -u 10.0.0.4:53 -s rr",
                "-a -u 10.0.0.4:53 -r 10.1.0.16:53 -g",
                "-A -t 127.0.0.1:80 -s rr",
                "-a -t 127.0.0.1:80 -r 127.0.0.11:8081 -m",
            ],
        );
        assert!(st.syn_proxy_unproxied().is_empty());
        let set = |st: &mut State, v: &str| {
            st.handle(
                &Request::SetSysctl {
                    name: "rvs_syn_proxy".into(),
                    value: v.into(),
                },
                Time(0),
            )
        };
        let r = set(&mut st, "1");
        assert!(r.result.is_ok(), "{r:?}");
        let mut w = r.warnings.clone();
        w.sort();
        assert_eq!(w.len(), 3, "{w:#?}");
        assert!(
            w[0].contains("TCP 10.0.0.2:80") && w[0].contains("DR or TUN"),
            "{w:#?}"
        );
        assert!(
            w[1].contains("TCP 10.0.0.3:80") && w[1].contains("DR or TUN"),
            "{w:#?}"
        );
        assert!(
            w[2].contains("TCP 127.0.0.1:80") && w[2].contains("socket proxy"),
            "{w:#?}"
        );
        assert_eq!(st.syn_proxy_unproxied().len(), 3);
        assert!(set(&mut st, "0").warnings.is_empty());
        assert!(st.syn_proxy_unproxied().is_empty());
    }

    /// A sysctl reaches the shards that exist and the ones created later; `--set` leaves it
    /// alone; a refused value changes nothing.
    #[test]
    fn sysctls_reach_every_shard() {
        let mut st = state(&["-A -t 127.0.0.1:80 -s rr"]);
        let set = |st: &mut State, n: &str, v: &str| {
            st.handle(
                &Request::SetSysctl {
                    name: n.into(),
                    value: v.into(),
                },
                Time(0),
            )
        };
        assert!(set(&mut st, "sloppy_tcp", "1").result.is_ok());
        assert!(set(&mut st, "expire_nodest_conn", "1").result.is_ok());
        // Stored with a warning: rvs does not act on it.
        let r = set(&mut st, "snat_reroute", "0");
        assert!(r.result.is_ok() && r.warnings.len() == 1, "{r:?}");
        let r = set(&mut st, "sync_ports", "4");
        assert!(r.result.is_ok() && r.warnings.is_empty(), "{r:?}");
        let e = set(&mut st, "drop_packet", "5").result.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Einval);
        assert_eq!(
            set(&mut st, "debug_level", "1").result.unwrap_err().kind,
            ErrorKind::Eperm
        );
        assert!(st
            .handle(&parse_cmd("-A -t 127.0.0.1:81 -s rr"), Time(0))
            .result
            .is_ok());
        assert!(st
            .handle(&parse_cmd("--set 10 0 0"), Time(0))
            .result
            .is_ok());
        for k in ["127.0.0.1:80", "127.0.0.1:81"] {
            let (sloppy, nodest, tcp_to) = st
                .with_service(&key(k), |g| {
                    let s = &g.director.sys;
                    (
                        s.conn.sloppy_tcp,
                        s.conn.expire_nodest_conn,
                        s.conn.timeouts.tcp[usize::from(tcp::ESTABLISHED)].as_secs(),
                    )
                })
                .unwrap();
            assert!(sloppy && nodest, "{k}");
            assert_eq!(tcp_to, 10, "{k}");
        }
        assert_eq!(st.sysctls.int("drop_packet"), 0);
        assert_eq!(st.sysctls.int("sync_ports"), 4);
        assert_eq!(st.sync.params.ports, 4);
    }
}
