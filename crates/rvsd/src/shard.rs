//! Shards of the director: each is one rvs-core [`Director`] (its own services, connection
//! table, statistics and random source) behind its own lock.
//!
//! Why: the kernel serialises scheduling per service (`svc->sched_lock`) and looks connections
//! up under RCU; it has no lock that every connection of every service takes. rvsd gets the
//! same property by giving every service the socket proxy carries a shard of its own, so proxy
//! workers serving different services never meet on a lock, and one service's connections
//! serialise only on that service's lock, as they do on its scheduler lock in the kernel.
//! The services of the packet plane share one shard (a reply from a real server must find its
//! connection without knowing the service first), which its workers lock once per receive
//! batch, never per packet.
//!
//! The control plane ([`crate::state::State`]) owns the map from service to shard; data planes
//! reach their shard without it: the proxy through [`Routes`], the packet plane through the
//! shard it was given at start. Lock order: `State`, then a shard; never two shards at once.
//!
//! The types a shard holds are declared here, below every module that uses them (the control
//! state, the balancer, the listings), so those modules depend on this one and not on each
//! other.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use rvs_control::model as m;
use rvs_core::conn::ConnId;
use rvs_core::laddr::LaddrPool;
use rvs_core::{DestId, Director, Protocol, ServiceKey, Time};

use crate::clock::{os_random_u64, Rng};
use crate::cow_map::CowMap;
use crate::published::{Published, ThreadCache};

pub use crate::lock::lock;

/// rvs additions kept per service beside the core's table.
#[derive(Clone, Debug, Default)]
pub struct ServiceExtra {
    /// PROXY protocol header toward real servers (`--proxy-protocol`).
    pub proxy_protocol: m::ProxyProtocol,
    /// Full-NAT local addresses (`--add-laddr -z`): the service's one pool. The socket proxy
    /// takes addresses round-robin from it; the packet plane's workers get clones of it in
    /// their published configuration, which share its port cursor and conflict counters
    /// (`rvs_core::laddr`), so `--get-laddr` CONFLICTS reads them here. The use (CONNS) is
    /// counted from the live connections when asked ([`crate::listing::local_addr_conns`]).
    pub laddrs: LaddrPool,
}

/// The client-side tuple of a proxy flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    /// Protocol.
    pub proto: Protocol,
    /// Client.
    pub client: SocketAddr,
    /// Virtual service address.
    pub vip: SocketAddr,
}

/// What the balancer remembers about a proxy flow.
#[derive(Clone, Copy, Debug)]
pub struct FlowRec {
    /// The client-side tuple.
    pub key: FlowKey,
    /// Its connection entry (`None` for one-packet flows, which have none).
    pub conn: Option<ConnId>,
    /// Its destination.
    pub dest: DestId,
    /// The full-NAT local address it connects from (`--add-laddr`), counted by `--get-laddr`
    /// while the flow lives.
    pub laddr: Option<IpAddr>,
}

/// One shard: a director of its own and the proxy flows it carries.
pub struct Shard {
    /// Unique for the daemon's lifetime (never reused), so a proxy flow handle names its shard.
    pub id: u32,
    /// The IPVS model of this shard's services.
    pub director: Director,
    /// Random source for schedulers and defences.
    pub rng: Rng,
    /// Per-service additions (PROXY protocol, full-NAT local addresses).
    pub extra: HashMap<ServiceKey, ServiceExtra>,
    /// Proxy flows: handle → the connection tuple (looked up on every event, so a connection
    /// that expired in the meantime is never confused with a new one reusing its id). A fast
    /// hasher: the handles are rvsd's own, not chosen by the network.
    pub flows: hashbrown::HashMap<u64, FlowRec>,
    /// Next proxy flow sequence number (the low [`SEQ_BITS`] of a handle).
    pub next_flow: u64,
    /// Connections the proxy rescheduled after a failed connect.
    pub reschedules: u64,
    /// Proxy flows of content persistence engines closed unserved, per
    /// [`rvs_proxy::ContentReject::ALL`] reason.
    pub pe_rejects: [u64; rvs_proxy::ContentReject::ALL.len()],
    /// On the ticker's list ([`Shard::wake`]); false while settled and left alone.
    ticking: bool,
    /// Never left alone by the ticker: the packet plane's shard, whose workers use it without
    /// waking it.
    pinned: bool,
    /// Where [`Shard::wake`] tells the ticker.
    wakeups: Arc<Wakeups>,
    /// What this shard last added to [`Wakeups::totals`].
    contrib: Contribution,
}

/// One shard's part of the table's totals, or their sum over shards: counters (as shown),
/// rates, connection entries, proxy reschedules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Contribution {
    /// Counters since the last zeroing.
    pub counters: rvs_core::stats::Counters,
    /// Rates.
    pub rates: rvs_core::estimator::Rates,
    /// Connection-table entries.
    pub entries: u64,
    /// Proxy connections rescheduled.
    pub reschedules: u64,
}

/// Shards that asked the ticker for visits, and the memory figure a waking shard's defences
/// start from.
///
/// Why: a shard whose director is settled ([`rvs_core::Director::settled`]: no entry, no
/// estimator with work, nothing in the trash, no scheduler housekeeping) and that carries no
/// proxy flow has nothing for the ticker, so the ticker drops it from its list, and an idle
/// table of 10 000 services costs nothing per tick. Whatever uses a shard again (a proxy
/// flow, a control request, a synced connection) calls [`Shard::wake`] first, under the
/// shard's lock: the director catches up with what the skipped ticks would have done
/// ([`rvs_core::Director::resume`]), and the shard's id is queued here for the ticker.
pub struct Wakeups {
    ids: Mutex<Vec<u32>>,
    /// The sum of every shard's [`Contribution`] as last published ([`Shard::publish_totals`]).
    /// A settled shard's figures do not change while the ticker leaves it alone, and the
    /// ticker publishes every shard it visits, so this is the table's totals as of the last
    /// tick: the once-a-second samplers (status history, service manager's status line)
    /// read it instead of locking every shard.
    sum: Mutex<Contribution>,
    /// `MemAvailable` in pages as the ticker last read it (once a second).
    pages: AtomicU64,
}

impl Default for Wakeups {
    fn default() -> Wakeups {
        Wakeups {
            ids: Mutex::new(Vec::new()),
            sum: Mutex::new(Contribution::default()),
            pages: AtomicU64::new(crate::memory::available_pages()),
        }
    }
}

impl Wakeups {
    /// The ids queued since the last call.
    pub fn take(&self) -> Vec<u32> {
        std::mem::take(&mut *lock(&self.ids))
    }

    /// The totals as of the last tick (see [`Wakeups::sum`]).
    pub fn totals(&self) -> Contribution {
        *lock(&self.sum)
    }

    /// The ticker's latest memory figure.
    pub fn set_pages(&self, pages: u64) {
        self.pages.store(pages, Relaxed);
    }
}

impl std::ops::AddAssign for Contribution {
    fn add_assign(&mut self, o: Contribution) {
        self.counters += o.counters;
        self.rates += o.rates;
        self.entries = self.entries.wrapping_add(o.entries);
        self.reschedules = self.reschedules.wrapping_add(o.reschedules);
    }
}

/// A shared shard.
pub type ShardRef = Arc<Mutex<Shard>>;

/// Bits of a proxy flow handle that count flows within a shard; the bits above are the
/// shard's id. 2^40 flows per shard outlast any daemon.
pub const SEQ_BITS: u32 = 40;

impl Shard {
    /// An empty shard at time `now` with a random connection-hash seed, settled and not on
    /// the ticker's list until [`Shard::wake`].
    pub fn new(
        id: u32,
        now: Time,
        sys: &rvs_core::director::Sysctls,
        wakeups: Arc<Wakeups>,
    ) -> Shard {
        let seed = rvs_core::conn::HashSeed([
            os_random_u64(),
            os_random_u64(),
            os_random_u64(),
            os_random_u64(),
        ]);
        let mut director = Director::new(seed, now);
        director.sys = sys.clone();
        Shard {
            id,
            director,
            rng: Rng::from_os(),
            extra: HashMap::new(),
            flows: hashbrown::HashMap::new(),
            next_flow: 1,
            reschedules: 0,
            pe_rejects: [0; rvs_proxy::ContentReject::ALL.len()],
            ticking: false,
            pinned: false,
            wakeups,
            contrib: Contribution::default(),
        }
    }

    /// About to be used at `now`: if the ticker left this shard alone, bring its director up
    /// to date and ask the ticker to visit it again (see [`Wakeups`]). Call it under the
    /// shard's lock before anything that may create an entry, count traffic or change the
    /// table; it costs one test when the shard is already ticking.
    pub fn wake(&mut self, now: Time) {
        if self.ticking {
            return;
        }
        let pages = self.wakeups.pages.load(Relaxed);
        self.director.resume(now, pages);
        self.ticking = true;
        lock(&self.wakeups.ids).push(self.id);
    }

    /// Keep this shard on the ticker's list for good (the packet plane's), starting now.
    pub fn pin(&mut self, now: Time) {
        self.wake(now);
        self.pinned = true;
    }

    /// Whether the ticker has nothing to do here until the next [`Shard::wake`].
    pub fn settled(&self) -> bool {
        !self.pinned && self.flows.is_empty() && self.director.settled()
    }

    /// Called by the ticker after its visit: leave the shard alone if it is settled. Returns
    /// whether it stays on the ticker's list.
    pub fn keep_ticking(&mut self) -> bool {
        if self.settled() {
            self.ticking = false;
        }
        self.ticking
    }

    /// This shard's figures now (what [`Shard::publish_totals`] publishes).
    pub fn contribution(&self) -> Contribution {
        let d = &self.director;
        Contribution {
            counters: d.total.shown(),
            rates: d.total.est.rates(),
            entries: d.conns.len() as u64,
            reschedules: self.reschedules,
        }
    }

    /// Bring this shard's part of [`Wakeups::totals`] up to date: after every ticker visit
    /// and after anything that changes its figures without waking it (zeroing).
    pub fn publish_totals(&mut self) {
        let now = self.contribution();
        if now != self.contrib {
            let mut sum = lock(&self.wakeups.sum);
            Self::take_out(&mut sum, &self.contrib);
            *sum += now;
            self.contrib = now;
        }
    }

    /// Take this shard's part out of [`Wakeups::totals`] (it is being dropped).
    pub fn withdraw_totals(&mut self) {
        let mut sum = lock(&self.wakeups.sum);
        Self::take_out(&mut sum, &self.contrib);
        self.contrib = Contribution::default();
    }

    fn take_out(sum: &mut Contribution, c: &Contribution) {
        sum.counters = sum.counters - c.counters;
        sum.rates -= c.rates;
        sum.entries = sum.entries.wrapping_sub(c.entries);
        sum.reschedules = sum.reschedules.wrapping_sub(c.reschedules);
    }

    /// Whether the shard is on the ticker's list.
    pub fn is_ticking(&self) -> bool {
        self.ticking
    }

    /// A new proxy flow handle naming this shard.
    pub fn next_handle(&mut self) -> u64 {
        let seq = self.next_flow & ((1 << SEQ_BITS) - 1);
        self.next_flow = self.next_flow.wrapping_add(1);
        (u64::from(self.id) << SEQ_BITS) | seq
    }

    /// True when nothing refers to the shard any more: no service, no connection, no flow.
    pub fn is_idle(&self) -> bool {
        self.director.table.is_empty() && self.director.conns.is_empty() && self.flows.is_empty()
    }
}

/// The id of the shard a proxy flow handle belongs to.
pub fn shard_of_handle(handle: u64) -> u32 {
    (handle >> SEQ_BITS) as u32
}

/// Where the proxy finds a service's shard. The control side keeps one and changes it entry by
/// entry; copy-on-write buckets ([`CowMap`]) make publishing it after a change cost O(changed
/// bucket), not O(table).
#[derive(Clone, Default)]
pub struct RouteMap {
    /// Current services.
    pub by_service: CowMap<ServiceKey, ShardRef>,
    /// Every live shard by id, also shards of deleted services whose connections and flows are
    /// still winding down.
    pub by_id: CowMap<u32, ShardRef>,
}

/// The published [`RouteMap`]: written by the control plane on every change of the service
/// set, read by the proxy workers through a per-thread snapshot revalidated with one atomic
/// load ([`Published::with_cached`]), so looking up a shard takes no lock that all workers
/// share.
pub type Routes = Published<RouteMap>;

thread_local! {
    /// A proxy worker's snapshot of the routes.
    static CACHE: ThreadCache<RouteMap> = const { RefCell::new(None) };
}

impl Routes {
    /// Run `f` over the current map (this thread's snapshot of it).
    pub fn with<R>(&self, f: impl FnOnce(&RouteMap) -> R) -> R {
        self.with_cached(&CACHE, f)
    }

    /// The shard serving `key`.
    pub fn service(&self, key: &ServiceKey) -> Option<ShardRef> {
        self.with(|m| m.by_service.get(key).cloned())
    }

    /// The shard with `id`.
    pub fn shard(&self, id: u32) -> Option<ShardRef> {
        self.with(|m| m.by_id.get(&id).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: u32) -> ShardRef {
        Arc::new(Mutex::new(Shard::new(
            id,
            Time(0),
            &Default::default(),
            Arc::default(),
        )))
    }

    #[test]
    fn handles_name_their_shard() {
        let s = shard(7);
        let mut g = lock(&s);
        let a = g.next_handle();
        let b = g.next_handle();
        assert_ne!(a, b);
        assert_eq!(shard_of_handle(a), 7);
        assert_eq!(shard_of_handle(b), 7);
    }

    #[test]
    fn route_cache_follows_publications() {
        let r = Routes::default();
        assert!(r.shard(1).is_none());
        let mut m = RouteMap::default();
        m.by_id.insert(1, shard(1));
        r.publish(m);
        assert_eq!(r.shard(1).map(|s| lock(&s).id), Some(1));
        r.publish(RouteMap::default());
        assert!(r.shard(1).is_none(), "a stale per-thread copy was used");
        // Two route tables on one thread do not share the cached copy.
        let other = Routes::default();
        let mut m = RouteMap::default();
        m.by_id.insert(2, shard(2));
        other.publish(m);
        assert!(r.shard(2).is_none());
        assert!(other.shard(2).is_some());
    }
}
