//! Applying the health engine's actions to the table, and draining removed real servers.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_control::model as m;
use rvs_control::proto::{ErrorKind, Request, Response};
use rvs_health as hc;
use rvs_health::Action;

use super::counters::*;
use super::fifo::FifoWriter;
use super::plan::Plan;
use crate::daemon::Daemon;

/// A real server being drained after a reload removed it.
#[derive(Debug, Clone)]
pub(super) struct Drain {
    service: m::ServiceKey,
    addr: IpAddr,
    port: u16,
    deadline: Instant,
    since: Instant,
}

/// State shared by the reload path, the action applier and the drainer.
#[derive(Default)]
pub(super) struct Shared {
    /// The running plan.
    pub(super) cur: Arc<Plan>,
    /// The plan before the last reload, to resolve actions about what it removed.
    pub(super) prev: Option<Arc<Plan>>,
    /// Destinations being drained.
    pub(super) drains: Vec<Drain>,
    /// `lvs_notify_fifo` writer (set at start-up).
    pub(super) fifo: Option<Arc<FifoWriter>>,
}

impl Shared {
    /// Services and destination template for an action (new plan first, then the old one).
    fn resolve(
        &self,
        vs: &hc::VsKey,
        dest: SocketAddr,
        sorry: bool,
    ) -> Option<(Vec<m::ServiceKey>, m::DestSpec)> {
        [Some(&self.cur), self.prev.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|p| p.vs.get(vs))
            .find_map(|v| {
                v.template(dest, sorry)
                    .map(|t| (v.services.clone(), t.clone()))
            })
    }

    fn services(&self, vs: &hc::VsKey) -> Vec<m::ServiceKey> {
        [Some(&self.cur), self.prev.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|p| p.vs.get(vs).map(|v| v.services.clone()))
            .unwrap_or_default()
    }
}

pub(super) fn is_kind(r: &Response, kinds: &[ErrorKind]) -> bool {
    matches!(&r.result, Err(e) if kinds.contains(&e.kind))
}

pub(super) fn describe(r: &Response) -> String {
    match &r.result {
        Ok(_) => "ok".to_string(),
        Err(e) => e
            .detail
            .clone()
            .unwrap_or_else(|| e.kind.strerror().to_string()),
    }
}

/// Send one request through the rvsadm path. Its warnings (entries not served by the running
/// data planes, listeners that could not be opened) are already logged by the daemon.
pub(super) async fn send(daemon: &Arc<Daemon>, req: Request) -> Response {
    daemon.request(req).await
}

/// The current state of one destination in the table.
pub(super) fn current_dest(
    daemon: &Daemon,
    svc: &m::ServiceKey,
    addr: SocketAddr,
) -> Option<m::DestEntry> {
    let st = daemon.lock();
    st.list_service(&crate::convert::key_to_core(svc))?
        .dests
        .into_iter()
        .find(|d| d.spec.addr == addr.ip() && d.spec.port == addr.port())
}

/// Add with keepalived's tolerance: "exists" means edit to the wanted spec (docs/internals/keepalived.md#virtual-servers).
pub(super) async fn add_or_edit(
    daemon: &Arc<Daemon>,
    svc: &m::ServiceKey,
    dest: m::DestSpec,
) -> Response {
    let r = send(
        daemon,
        Request::AddDest {
            service: svc.clone(),
            dest: dest.clone(),
        },
    )
    .await;
    if is_kind(&r, &[ErrorKind::Eexist]) {
        return send(
            daemon,
            Request::EditDest {
                service: svc.clone(),
                dest,
            },
        )
        .await;
    }
    r
}

/// Apply one engine action through the rvsadm path (docs/internals/keepalived.md#virtual-servers error tolerance).
pub(super) async fn apply(
    daemon: &Arc<Daemon>,
    shared: &Mutex<Shared>,
    counters: &HealthCounters,
    drain_time: Duration,
    a: Action,
) {
    let lock = || crate::lock::lock(shared);
    match &a {
        Action::AddDest {
            vs,
            dest,
            weight,
            sorry,
        }
        | Action::SetWeight {
            vs,
            dest,
            weight,
            sorry,
        } => {
            let (vs, dest, weight, sorry) = (vs, *dest, *weight, *sorry);
            counters.count(if matches!(a, Action::AddDest { .. }) {
                C_ADD
            } else {
                C_WEIGHT
            });
            let Some((svcs, mut spec)) = lock().resolve(vs, dest, sorry) else {
                counters.count(C_ERROR);
                tracing::error!("health: no configuration for {dest} of VS {vs}; ignored");
                return;
            };
            // keepalived clamps the effective weight to 0..=INT_MAX (docs/internals/keepalived.md terms).
            spec.weight = weight.min(i32::MAX as u32);
            for svc in svcs {
                lock().drains.retain(|d| {
                    !(d.service == svc && d.addr == dest.ip() && d.port == dest.port())
                });
                let r = add_or_edit(daemon, &svc, spec.clone()).await;
                match &r.result {
                    Ok(_) => tracing::info!(
                        "installed {}{dest} in {svc} with weight {}",
                        if sorry { "sorry server " } else { "" },
                        spec.weight
                    ),
                    Err(_) => {
                        tracing::error!("IPVS cmd add/edit {svc} -> {dest} error: {}", describe(&r))
                    }
                }
            }
        }
        Action::RemoveDest { vs, dest, sorry } => {
            let (dest, sorry) = (*dest, *sorry);
            counters.count(C_REMOVE);
            let svcs = lock().services(vs);
            for svc in svcs {
                let r = send(
                    daemon,
                    Request::DelDest {
                        service: svc.clone(),
                        addr: dest.ip(),
                        port: dest.port(),
                    },
                )
                .await;
                if r.result.is_ok() {
                    tracing::info!(
                        "removed {}{dest} from {svc}",
                        if sorry { "sorry server " } else { "" }
                    );
                } else if !is_kind(&r, &[ErrorKind::Enoent, ErrorKind::Esrch]) {
                    counters.count(C_ERROR);
                    tracing::error!("IPVS cmd del {svc} -> {dest} error: {}", describe(&r));
                }
            }
        }
        Action::DrainDest { vs, dest, .. } => {
            let dest = *dest;
            counters.count(C_DRAIN);
            let svcs = lock().services(vs);
            for svc in svcs {
                let Some(cur) = current_dest(daemon, &svc, dest) else {
                    continue;
                };
                let mut spec = cur.spec.clone();
                spec.weight = 0;
                let r = send(
                    daemon,
                    Request::EditDest {
                        service: svc.clone(),
                        dest: spec,
                    },
                )
                .await;
                if r.result.is_err() {
                    tracing::debug!("drain {svc} -> {dest}: {}", describe(&r));
                    continue;
                }
                tracing::info!(
                    "draining {dest} of {svc}: weight 0, {} active connection(s); deleted when \
                     they end or in {} s",
                    cur.active_conns,
                    drain_time.as_secs()
                );
                let now = Instant::now();
                let mut sh = lock();
                sh.drains.retain(|d| {
                    !(d.service == svc && d.addr == dest.ip() && d.port == dest.port())
                });
                sh.drains.push(Drain {
                    service: svc,
                    addr: dest.ip(),
                    port: dest.port(),
                    deadline: now + drain_time,
                    since: now,
                });
            }
        }
        Action::RunCommand(cmd) => {
            counters.count(C_COMMAND);
            let cmd = cmd.clone();
            // Asynchronously, like keepalived (docs/internals/keepalived.md#notifications); the result is only logged.
            tokio::spawn(async move {
                match hc::run_command(&cmd).await {
                    Ok(st) if st.success() => tracing::debug!("{:?}: {st}", cmd.argv),
                    Ok(st) => tracing::warn!("notify command {:?} {st}", cmd.argv),
                    Err(e) => tracing::error!("notify command {:?}: {e}", cmd.argv),
                }
            });
        }
        Action::Notify(n) => {
            counters.count(match n {
                hc::Notification::RealServer { up: true, .. } => C_RS_UP,
                hc::Notification::RealServer { up: false, .. } => C_RS_DOWN,
                hc::Notification::Quorum { up: true, .. } => C_Q_UP,
                hc::Notification::Quorum { up: false, .. } => C_Q_DOWN,
            });
            tracing::info!("{n}");
            if let hc::Notification::Quorum {
                vs: hc::VsKey::Addr { protocol, addr },
                up,
            } = n
            {
                // The route announcer stops announcing a VIP whose quorum is lost.
                let key = rvs_core::ServiceKey::Addr {
                    proto: match protocol {
                        hc::Protocol::Tcp => rvs_core::Protocol::Tcp,
                        hc::Protocol::Udp => rvs_core::Protocol::Udp,
                        hc::Protocol::Sctp => rvs_core::Protocol::Sctp,
                    },
                    addr: addr.ip(),
                    port: addr.port(),
                };
                let mut st = daemon.lock();
                if *up {
                    st.quorum_lost.remove(&key);
                } else {
                    st.quorum_lost.insert(key);
                }
            }
            let fifo = lock().fifo.clone();
            if let Some(f) = fifo {
                f.send(format!("{}\n", n.fifo_line()));
            }
        }
    }
}

/// Delete drained destinations whose connections ended or whose time is up.
pub(super) async fn drain_tick(
    daemon: &Arc<Daemon>,
    shared: &Mutex<Shared>,
    counters: &HealthCounters,
) {
    let due: Vec<(Drain, String)> = {
        let drains = crate::lock::lock(shared).drains.clone();
        let now = Instant::now();
        let mut due = Vec::new();
        let mut gone = Vec::new();
        for d in drains {
            match current_dest(daemon, &d.service, SocketAddr::new(d.addr, d.port)) {
                // Deleted by someone else, or given weight again (re-added): not ours any more.
                None => gone.push(d),
                Some(e) if e.spec.weight != 0 => gone.push(d),
                Some(e) => {
                    // TCP: connections that are not established any more (FIN/TIME_WAIT
                    // entries) no longer carry users. UDP/SCTP have only inactive entries.
                    let tcp = matches!(
                        d.service,
                        m::ServiceKey::Addr {
                            protocol: m::Protocol::Tcp,
                            ..
                        }
                    );
                    let open = if tcp {
                        e.active_conns
                    } else {
                        e.active_conns + e.inactive_conns
                    };
                    if open == 0 {
                        due.push((d, "its connections ended".to_string()));
                    } else if now >= d.deadline {
                        due.push((
                            d,
                            format!("the drain time is up with {open} connection(s) open"),
                        ));
                    }
                }
            }
        }
        let mut sh = crate::lock::lock(shared);
        sh.drains.retain(|x| {
            !gone
                .iter()
                .chain(due.iter().map(|(d, _)| d))
                .any(|d| d.service == x.service && d.addr == x.addr && d.port == x.port)
        });
        due
    };
    for (d, why) in due {
        let r = send(
            daemon,
            Request::DelDest {
                service: d.service.clone(),
                addr: d.addr,
                port: d.port,
            },
        )
        .await;
        if r.result.is_ok() {
            counters.count(C_DRAINED);
            tracing::info!(
                "drained {} of {}: deleted after {:.1} s ({why})",
                SocketAddr::new(d.addr, d.port),
                d.service,
                d.since.elapsed().as_secs_f64()
            );
        }
    }
}
