//! The running daemon: state, clock, data planes, and the periodic work.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration as StdDuration;

use std::collections::HashMap;

use rvs_control::model as m;
use rvs_control::proto::{ErrorKind, Payload, RemoteError, Request, Response};

use crate::clock::Clock;
use crate::shard::Shard;
use crate::state::{is_change, State};

/// Whether `req` shows or resets counters or connection timers (`-L` with `--stats`,
/// `--rate`, `--exact`; `-Lc`; `-Z`, which must zero what the XDP program counted before it):
/// those are answered after a sweep of the program's counters ([`Daemon::sweep_xdp`]).
/// `-L` without options asks for the same services, so it pays the sweep too; a batch
/// (`-R`) sweeps once if it holds a `-Z`.
fn shows_counters(req: &Request) -> bool {
    match req {
        Request::GetServices
        | Request::GetService(_)
        | Request::GetDests(_)
        | Request::GetConns
        | Request::Zero(_) => true,
        Request::Batch(reqs) => reqs.iter().any(shows_counters),
        _ => false,
    }
}

/// Ticks (of 100 ms) in a second: the memory figure and retired shards are looked at once a
/// second.
const SECOND: u64 = 10;

/// Everything the daemon's tasks share.
pub struct Daemon {
    /// The control plane's state (held for microseconds, never across an await; the data
    /// planes do not take it per connection or packet: they lock their shard).
    pub state: Arc<Mutex<State>>,
    /// The clock.
    pub clock: Clock,
    /// The socket proxy data plane, if running (taken out at shutdown).
    pub proxy: Mutex<Option<rvs_proxy::Proxy>>,
}

impl Daemon {
    /// Lock the state (a poisoned lock is recovered: the table's invariants hold between calls).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock::lock(&self.state)
    }

    /// Apply one control request (or a batch of them), then bring the proxy's listeners in
    /// line with the table. A service the proxy cannot listen for is taken out again and its
    /// `-A` answered [`ErrorKind::CannotListen`], as the kernel would refuse a service it
    /// cannot hold, so `rvsadm` fails (status 255) instead of warning with status 0.
    pub async fn request(self: &Arc<Self>, req: Request) -> Response {
        if shows_counters(&req) {
            if let Some(s) = self.xdp_sweep() {
                // Blocking (one read per installed entry): off the runtime's threads.
                let _ = tokio::task::spawn_blocking(move || s.now()).await;
            }
        }
        let (mut resp, changed, packet) = {
            let mut st = self.lock();
            let r = st.handle(&req, self.clock.now());
            // A failed request may have changed the table too (a batch, or the undo of a
            // service that could not listen): any pending listener change is applied.
            let changed = (is_change(&req) && r.result.is_ok()) || st.listeners_changed();
            let packet = st
                .packet_feed()
                .map(|f| (f.applied.clone(), st.generation()));
            (r, changed, packet)
        };
        if let Some((applied, generation)) = packet {
            // Like the kernel, a change is in force when rvsadm returns (bounded wait).
            crate::packet_plane::wait_applied(&applied, generation).await;
        }
        if changed {
            let d = self.clone();
            let res = tokio::task::spawn_blocking(move || d.sync_listeners()).await;
            match res {
                Ok(Ok(())) => {}
                Ok(Err(rvs_proxy::ProxyError::Listen(failed))) => {
                    let left = self.refuse_unlistened(&req, &mut resp, failed);
                    if !left.is_empty() {
                        let w = rvs_proxy::ProxyError::Listen(left).to_string();
                        tracing::warn!("socket proxy: {w}");
                        resp.warnings.push(format!("socket proxy: {w}"));
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!("socket proxy: {e}");
                    resp.warnings.push(format!("socket proxy: {e}"));
                }
                Err(e) => resp.warnings.push(format!("listener update failed: {e}")),
            }
        }
        resp
    }

    /// The XDP fast path's sweep on request, when it runs (`packet_plane::XdpSweep`).
    pub fn xdp_sweep(&self) -> Option<crate::packet_plane::XdpSweep> {
        let st = self.lock();
        let s = st.packet_feed()?.xdp_sweep.clone();
        drop(st);
        s.active().then_some(s)
    }

    /// Brings the XDP program's counters and last-seen times into the statistics and the
    /// connection timers now (one sweep), before something that shows them is computed, so
    /// that it holds every packet the program forwarded before, as the kernel's counters
    /// would. Nothing without the fast path. Blocking: for threads that may block (the web
    /// pages run in `spawn_blocking`); [`Daemon::request`] does it itself.
    pub fn sweep_xdp(&self) {
        if let Some(s) = self.xdp_sweep() {
            s.now();
        }
    }

    /// Services whose listener failed and that `req` added (alone or in its batch): delete
    /// them again and turn their `-A` answers into [`ErrorKind::CannotListen`] errors. Returns
    /// the failures that belong to no `-A` of this request (they stay warnings).
    fn refuse_unlistened(
        &self,
        req: &Request,
        resp: &mut Response,
        failed: Vec<(rvs_proxy::ListenerSpec, std::io::Error)>,
    ) -> Vec<(rvs_proxy::ListenerSpec, std::io::Error)> {
        // (request, response) pairs: the batch's, or the single request's.
        let pairs: Vec<(&Request, &mut Response)> = match req {
            Request::Batch(reqs) => match &mut resp.result {
                Ok(Payload::Batch(resps)) => reqs.iter().zip(resps.iter_mut()).collect(),
                _ => Vec::new(),
            },
            _ => vec![(req, resp)],
        };
        let mut adds: HashMap<rvs_proxy::ListenerSpec, &mut Response> = HashMap::new();
        for (q, r) in pairs {
            if let (Request::AddService(spec), true) = (q, r.result.is_ok()) {
                if let Some(l) = listener_of(&spec.key) {
                    adds.insert(l, r);
                }
            }
        }
        let mut left = Vec::new();
        let mut undo = Vec::new();
        for (spec, e) in failed {
            match adds.remove(&spec) {
                Some(r) => {
                    let proto = match spec.protocol {
                        rvs_core::Protocol::Udp => "UDP",
                        _ => "TCP",
                    };
                    let detail = format!(
                        "cannot listen on {proto} {}: {e}; service not added",
                        spec.addr
                    );
                    tracing::warn!("socket proxy: {detail}");
                    *r = Response::err(RemoteError::with_detail(ErrorKind::CannotListen, detail));
                    undo.push(Request::DelService(key_of(&spec)));
                }
                None => left.push((spec, e)),
            }
        }
        if !undo.is_empty() {
            let mut st = self.lock();
            let now = self.clock.now();
            for r in st.handle_batch(&undo, now) {
                if let Err(e) = r.result {
                    tracing::warn!("taking out a service that cannot listen: {e}");
                }
            }
        }
        left
    }

    /// Open and close proxy listeners as the requests applied so far changed the services
    /// (blocking). Only the change is applied (see [`State::take_listener_changes`]), so a
    /// single `-A` costs the same on a table of any size. The proxy's lock is taken before the
    /// state's, so changes taken by concurrent requests reach the proxy in the order they were
    /// made.
    pub fn sync_listeners(&self) -> Result<(), rvs_proxy::ProxyError> {
        let proxy = crate::lock::lock(&self.proxy);
        let (open, close) = self.lock().take_listener_changes();
        let Some(p) = proxy.as_ref() else {
            return Ok(());
        };
        p.change_listeners(&open, &close)
    }

    /// Expiry, estimator and defences ([`Ticker`]) every 100 ms, and the service manager's
    /// watchdog and status line: run until the task is dropped.
    pub async fn ticker(self: Arc<Self>) {
        let mut iv = tokio::time::interval(StdDuration::from_millis(100));
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut t = Ticker::new(&self.lock());
        let mut n: u64 = 0;
        loop {
            iv.tick().await;
            n += 1;
            t.step(&self.state, &self.clock);
            if let Some(notifier) = crate::sd_notify::get() {
                // Only a ticker that got through its shards keeps systemd's watchdog quiet.
                notifier.watchdog_tick(std::time::Instant::now());
                if n.is_multiple_of(50) {
                    // Totals and counts only: not a listing of every service.
                    let doc = crate::status::snapshot_limited(&self.lock(), 0);
                    notifier.send(&crate::sd_notify::status_line(&crate::status::summary(
                        &doc,
                    )));
                }
            }
        }
    }
}

/// The periodic work over the shards: expiry, the estimator, the defences, reaping retired
/// shards.
///
/// Each 100 ms step visits the shards on the ticker's list, and only those: a shard joins it
/// when something uses it ([`crate::shard::Shard::wake`]) and leaves it once settled (no
/// connection entry, no proxy flow, no estimator with work, nothing in the trash, no
/// scheduler housekeeping; see [`crate::shard::Wakeups`]). So the work is proportional to
/// the shards with something to expire or estimate, not to the table: an idle table of
/// 10 000 services costs a step nothing.
pub struct Ticker {
    ticking: Vec<crate::shard::ShardRef>,
    wakeups: Arc<crate::shard::Wakeups>,
    avail: u64,
    steps: u64,
}

impl Ticker {
    /// A ticker over `st`'s shards.
    pub fn new(st: &State) -> Ticker {
        Ticker {
            ticking: Vec::new(),
            wakeups: st.wakeups().clone(),
            avail: crate::memory::available_pages(),
            steps: 0,
        }
    }

    /// One step (the daemon makes one every 100 ms); returns the number of shards visited.
    pub fn step(&mut self, state: &Mutex<State>, clock: &Clock) -> usize {
        self.steps += 1;
        if self.steps.is_multiple_of(SECOND) {
            self.avail = crate::memory::available_pages();
            self.wakeups.set_pages(self.avail);
            crate::lock::lock(state).reap_retired();
        }
        let woken = self.wakeups.take();
        if !woken.is_empty() {
            let st = crate::lock::lock(state);
            self.ticking
                .extend(woken.into_iter().filter_map(|id| st.shard_by_id(id)));
        }
        let visited = self.ticking.len();
        let avail = self.avail;
        self.ticking.retain(|s| {
            let mut g = crate::shard::lock(s);
            let now = clock.now();
            let Shard { director, rng, .. } = &mut *g;
            // A bounded amount of expiry per tick keeps every lock hold short; what is left
            // is done on the next tick.
            director.tick(now, avail, 20_000, rng);
            g.publish_totals();
            g.keep_ticking()
        });
        visited
    }
}

/// The listener a service of the control model needs, when the proxy carries it at all.
fn listener_of(key: &m::ServiceKey) -> Option<rvs_proxy::ListenerSpec> {
    match crate::convert::key_to_core(key) {
        rvs_core::ServiceKey::Addr { proto, addr, port } => Some(rvs_proxy::ListenerSpec {
            protocol: proto,
            addr: std::net::SocketAddr::new(addr, port),
        }),
        rvs_core::ServiceKey::Fwmark { .. } => None,
    }
}

/// The control model's key of the service a listener was for.
fn key_of(l: &rvs_proxy::ListenerSpec) -> m::ServiceKey {
    crate::convert::key_from_core(&rvs_core::ServiceKey::Addr {
        proto: l.protocol,
        addr: l.addr.ip(),
        port: l.addr.port(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::DirectorBalancer;
    use crate::state::Planes;
    use crate::test_support::parse_cmd;
    use rvs_proxy::{Balancer, CloseReason, FlowEvent, FlowInfo};

    /// The ticker visits a shard only while it has work: after a large table is loaded each
    /// new shard is visited once and then left alone; a proxy flow brings its shard back
    /// (and only its), until the flow is over and the shard settles again.
    #[test]
    fn the_ticker_visits_only_shards_with_work() {
        let clock = Clock::new();
        let mut st = State::new(clock.now(), Planes { packet: false });
        let n = 2000;
        let reqs: Vec<Request> = (0..n)
            .flat_map(|i| {
                let vip = format!("127.1.{}.{}:80", i / 250, i % 250 + 1);
                [
                    parse_cmd(&format!("-A -t {vip} -s rr")),
                    parse_cmd(&format!("-a -t {vip} -r 127.0.0.11:8081 -m")),
                ]
            })
            .collect();
        st.handle(&Request::Batch(reqs), clock.now());
        let b = DirectorBalancer {
            routes: st.routes.clone(),
            clock,
        };
        let mut t = Ticker::new(&st);
        let state = Mutex::new(st);
        assert_eq!(t.step(&state, &clock), n, "each new shard is visited once");
        for _ in 0..5 {
            assert_eq!(t.step(&state, &clock), 0, "a settled shard is left alone");
        }
        let flow = FlowInfo {
            protocol: rvs_core::Protocol::Tcp,
            client: "127.0.0.5:40000".parse().unwrap(),
            vip: "127.1.3.7:80".parse().unwrap(),
        };
        let be = b.open(&flow).expect("scheduled");
        assert_eq!(t.step(&state, &clock), 1, "the flow's shard is visited");
        assert_eq!(t.step(&state, &clock), 1, "and stays while the flow lives");
        b.event(be.handle, FlowEvent::Connected);
        b.event(be.handle, FlowEvent::Closed(CloseReason::Reset));
        // The entry (CLOSE, 10 s) and the estimator keep it on the list; nothing else is.
        assert_eq!(t.step(&state, &clock), 1);
        let key = rvs_core::ServiceKey::Addr {
            proto: rvs_core::Protocol::Tcp,
            addr: "127.1.3.7".parse().unwrap(),
            port: 80,
        };
        let woken_shard = crate::lock::lock(&state).shard_of(&key).unwrap().clone();
        assert!(crate::shard::lock(&woken_shard).is_ticking());
    }

    /// The totals the once-a-second samplers read without visiting the shards are the
    /// exact totals as of the ticker's last step: after traffic, zeroing, deletion and reaping.
    #[test]
    fn cached_totals_follow_the_exact_ones() {
        let clock = Clock::new();
        let mut st = State::new(clock.now(), Planes { packet: false });
        for i in 0..20 {
            for c in [
                format!("-A -t 127.1.0.{}:80 -s rr", i + 1),
                format!("-a -t 127.1.0.{}:80 -r 127.0.0.11:8081 -m", i + 1),
                format!("-a -t 127.1.0.{}:80 -r 127.0.0.12:8081 -m", i + 1),
            ] {
                assert!(st.handle(&parse_cmd(&c), clock.now()).result.is_ok());
            }
        }
        assert_eq!(st.size(), (20, 40));
        let b = DirectorBalancer {
            routes: st.routes.clone(),
            clock,
        };
        let mut t = Ticker::new(&st);
        let state = Mutex::new(st);
        let same = |state: &Mutex<State>| {
            let st = crate::lock::lock(state);
            assert_eq!(st.totals_cached(), st.totals());
        };
        for i in 0..30u16 {
            let flow = FlowInfo {
                protocol: rvs_core::Protocol::Tcp,
                client: format!("127.0.0.5:{}", 40000 + i).parse().unwrap(),
                vip: format!("127.1.0.{}:80", i % 7 + 1).parse().unwrap(),
            };
            let be = b.open(&flow).expect("scheduled");
            b.event(be.handle, FlowEvent::Connected);
            if i % 2 == 0 {
                b.event(be.handle, FlowEvent::Closed(CloseReason::Reset));
            }
        }
        t.step(&state, &clock);
        same(&state);
        assert_eq!(crate::lock::lock(&state).totals_cached().counters.conns, 30);
        let mut st = crate::lock::lock(&state);
        assert!(st.handle(&parse_cmd("-Z"), clock.now()).result.is_ok());
        assert!(st
            .handle(&parse_cmd("-D -t 127.1.0.1:80"), clock.now())
            .result
            .is_ok());
        assert!(st
            .handle(
                &parse_cmd("-d -t 127.1.0.2:80 -r 127.0.0.11:8081"),
                clock.now()
            )
            .result
            .is_ok());
        assert_eq!(st.size(), (19, 37));
        drop(st);
        same(&state);
        t.step(&state, &clock);
        same(&state);
    }
}
