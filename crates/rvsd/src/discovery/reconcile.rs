//! Ownership and reconciliation, shared by the Docker and etcd sources.
//!
//! A source computes the whole table it wants ([`Desired`]) from what it knows (every labelled
//! container, every key under the prefix); a [`Reconciler`] brings the running table to it as
//! a diff, through [`Daemon::request`] — the path rvsadm's requests take — so listings,
//! metrics, proxy listeners and the packet plane follow as for any other change.
//!
//! Ownership: a source only ever touches the services it created itself. A wanted service that
//! already exists (from rvsadm, a rules file, keepalived.conf or the other source) is left
//! alone and the conflict logged. The services a source owns are registered in the daemon's
//! state ([`super::status::Managed`]), where the control socket refuses rvsadm changes to them with an error
//! naming the source: an edit there would be undone at the next change anyway.
//!
//! Removal drains: a real server the source no longer wants gets weight 0 and is deleted when
//! its connections have ended (or after the drain time); a service whose real servers are all
//! gone is then deleted. A real server wanted again while draining gets its weight back.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_control::model as m;
use rvs_control::proto::{Request, Response};

use super::status::SourceStatus;
use crate::daemon::Daemon;

/// A real server's identity inside a service.
pub type DestId = (IpAddr, u16);

/// One service as a source wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredService {
    /// The service (`-A`).
    pub spec: m::ServiceSpec,
    /// Its real servers (`-a`).
    pub dests: BTreeMap<DestId, m::DestSpec>,
}

/// The whole table a source wants, by service (ordered by its text for stable logs).
pub type Desired = BTreeMap<String, DesiredService>;

/// Add `svc` to `want` (keyed by its display text).
pub fn want_service(want: &mut Desired, spec: m::ServiceSpec) -> &mut DesiredService {
    want.entry(spec.key.to_string())
        .or_insert_with(|| DesiredService {
            spec,
            dests: BTreeMap::new(),
        })
}

/// A real server this source put into the table.
#[derive(Debug, Clone)]
struct OwnedDest {
    spec: m::DestSpec,
    /// Set while it drains: (since, deadline).
    drain: Option<(Instant, Instant)>,
}

/// A service this source created.
#[derive(Debug, Clone)]
struct Owned {
    spec: m::ServiceSpec,
    dests: BTreeMap<DestId, OwnedDest>,
    /// The source no longer wants it: deleted once its real servers have drained.
    removing: bool,
}

/// Brings the table to what one source wants; owns what it created.
pub struct Reconciler {
    daemon: Arc<Daemon>,
    /// `etcd http://127.0.0.1:2379, prefix /rvs` — in logs and in rvsadm's refusals.
    owner: Arc<str>,
    drain_time: Duration,
    owned: BTreeMap<String, Owned>,
    status: Arc<SourceStatus>,
    /// Problems already logged, so that a persisting one is logged once, not per change.
    reported: HashSet<String>,
    /// Problems seen since the last apply (a problem not seen again may be logged again if
    /// it comes back).
    round: HashSet<String>,
}

fn failed(r: &Response) -> Option<String> {
    match &r.result {
        Ok(_) => None,
        Err(e) => Some(
            e.detail
                .clone()
                .unwrap_or_else(|| e.kind.strerror().to_string()),
        ),
    }
}

impl Reconciler {
    /// A reconciler for the source described by `owner`.
    pub fn new(
        daemon: Arc<Daemon>,
        owner: String,
        drain_time: Duration,
        status: Arc<SourceStatus>,
    ) -> Reconciler {
        Reconciler {
            daemon,
            owner: owner.into(),
            drain_time,
            owned: BTreeMap::new(),
            status,
            reported: HashSet::new(),
            round: HashSet::new(),
        }
    }

    /// Skip an entry: log the reason (once while the problem persists) and count it. Sources
    /// call it for what they cannot decode before [`Reconciler::apply`].
    pub fn skip(&mut self, what: String) {
        self.round.insert(what.clone());
        if self.reported.insert(what.clone()) {
            SourceStatus::count(&self.status.skipped, 1);
            tracing::warn!("{}: skipped: {what}", self.owner);
        }
    }

    /// The owner text (`etcd http://…, prefix /rvs`).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    async fn send(&self, req: Request) -> Response {
        SourceStatus::count(&self.status.requests, 1);
        self.daemon.request(req).await
    }

    fn exists(&self, key: &m::ServiceKey) -> bool {
        self.daemon
            .lock()
            .shard_of(&crate::convert::key_to_core(key))
            .is_some()
    }

    fn current(&self, key: &m::ServiceKey, id: DestId) -> Option<m::DestEntry> {
        let st = self.daemon.lock();
        st.list_service(&crate::convert::key_to_core(key))?
            .dests
            .into_iter()
            .find(|d| (d.spec.addr, d.spec.port) == id)
    }

    /// Bring the table to `want`: create, edit, and drain what is no longer wanted. Problems
    /// (a service that exists and is not ours, a request the table refuses) skip that entry
    /// with a logged reason; the rest is applied.
    pub async fn apply(&mut self, want: &Desired) {
        SourceStatus::count(&self.status.applies, 1);
        for (name, ds) in want {
            let key = &ds.spec.key;
            if !self.owned.contains_key(name) {
                if self.exists(key) {
                    let p = format!(
                        "{key} exists and was not created by this source; its real servers \
                         are left alone"
                    );
                    self.skip(p);
                    continue;
                }
                let r = self.send(Request::AddService(ds.spec.clone())).await;
                if let Some(e) = failed(&r) {
                    let p = format!("{key}: the table refused the service: {e}");
                    self.skip(p);
                    continue;
                }
                tracing::info!("{}: created {key}", self.owner);
                self.daemon
                    .lock()
                    .managed
                    .insert(key.clone(), self.owner.clone());
                self.owned.insert(
                    name.clone(),
                    Owned {
                        spec: ds.spec.clone(),
                        dests: BTreeMap::new(),
                        removing: false,
                    },
                );
            }
            let mut owned = self.owned.remove(name).unwrap_or_else(|| Owned {
                spec: ds.spec.clone(),
                dests: BTreeMap::new(),
                removing: false,
            });
            owned.removing = false;
            if owned.spec != ds.spec {
                let r = self.send(Request::EditService(ds.spec.clone())).await;
                match failed(&r) {
                    None => {
                        tracing::info!("{}: changed {key}", self.owner);
                        owned.spec = ds.spec.clone();
                    }
                    Some(e) => {
                        let p = format!("{key}: the table refused the change: {e}");
                        self.skip(p);
                    }
                }
            }
            for (id, spec) in &ds.dests {
                let addr = SocketAddr::new(id.0, id.1);
                let (req, verb) = match owned.dests.get(id) {
                    Some(d) if d.spec == *spec && d.drain.is_none() => continue,
                    Some(d) if d.drain.is_some() => (
                        Request::EditDest {
                            service: key.clone(),
                            dest: spec.clone(),
                        },
                        "restored",
                    ),
                    Some(_) => (
                        Request::EditDest {
                            service: key.clone(),
                            dest: spec.clone(),
                        },
                        "changed",
                    ),
                    None => (
                        Request::AddDest {
                            service: key.clone(),
                            dest: spec.clone(),
                        },
                        "added",
                    ),
                };
                let r = self.send(req).await;
                match failed(&r) {
                    None => {
                        tracing::info!(
                            "{}: {verb} {addr} in {key} (weight {})",
                            self.owner,
                            spec.weight
                        );
                        owned.dests.insert(
                            *id,
                            OwnedDest {
                                spec: spec.clone(),
                                drain: None,
                            },
                        );
                    }
                    Some(e) => {
                        let p = format!("{addr} of {key}: the table refused it: {e}");
                        self.skip(p);
                    }
                }
            }
            let gone: Vec<DestId> = owned
                .dests
                .iter()
                .filter(|(id, d)| !ds.dests.contains_key(id) && d.drain.is_none())
                .map(|(id, _)| *id)
                .collect();
            for id in gone {
                self.start_drain(key, id, &mut owned).await;
            }
            self.owned.insert(name.clone(), owned);
        }
        let unwanted: Vec<String> = self
            .owned
            .iter()
            .filter(|(n, o)| !want.contains_key(*n) && !o.removing)
            .map(|(n, _)| n.clone())
            .collect();
        for name in unwanted {
            let Some(mut owned) = self.owned.remove(&name) else {
                continue;
            };
            owned.removing = true;
            let key = owned.spec.key.clone();
            tracing::info!(
                "{}: {key} is no longer wanted: draining its real servers, then deleting it",
                self.owner
            );
            let ids: Vec<DestId> = owned
                .dests
                .iter()
                .filter(|(_, d)| d.drain.is_none())
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                self.start_drain(&key, id, &mut owned).await;
            }
            self.owned.insert(name, owned);
        }
        let round = std::mem::take(&mut self.round);
        self.reported.retain(|r| round.contains(r));
        self.update_gauges();
        self.tick().await;
    }

    async fn start_drain(&self, key: &m::ServiceKey, id: DestId, owned: &mut Owned) {
        let Some(d) = owned.dests.get_mut(&id) else {
            return;
        };
        let mut spec = d.spec.clone();
        spec.weight = 0;
        let now = Instant::now();
        let r = self
            .send(Request::EditDest {
                service: key.clone(),
                dest: spec,
            })
            .await;
        let addr = SocketAddr::new(id.0, id.1);
        match failed(&r) {
            None => tracing::info!(
                "{}: draining {addr} of {key}: weight 0, deleted when its connections end or \
                 in {} s",
                self.owner,
                self.drain_time.as_secs()
            ),
            // Gone already: the tick below forgets it.
            Some(e) => tracing::debug!("{}: drain {addr} of {key}: {e}", self.owner),
        }
        d.drain = Some((now, now + self.drain_time));
    }

    fn update_gauges(&self) {
        let dests: usize = self.owned.values().map(|o| o.dests.len()).sum();
        self.status
            .services
            .store(self.owned.len() as u64, Ordering::Relaxed);
        self.status.dests.store(dests as u64, Ordering::Relaxed);
    }

    /// Delete drained real servers whose connections ended (or whose drain time is up), and
    /// removed services once empty. Called after every apply and periodically.
    pub async fn tick(&mut self) {
        let now = Instant::now();
        let names: Vec<String> = self.owned.keys().cloned().collect();
        for name in names {
            let Some(mut owned) = self.owned.remove(&name) else {
                continue;
            };
            let key = owned.spec.key.clone();
            let tcp = matches!(
                key,
                m::ServiceKey::Addr {
                    protocol: m::Protocol::Tcp,
                    ..
                }
            );
            let draining: Vec<(DestId, Instant, Instant)> = owned
                .dests
                .iter()
                .filter_map(|(id, d)| d.drain.map(|(s, dl)| (*id, s, dl)))
                .collect();
            for (id, since, deadline) in draining {
                let addr = SocketAddr::new(id.0, id.1);
                let why = match self.current(&key, id) {
                    None => {
                        owned.dests.remove(&id);
                        continue;
                    }
                    Some(e) => {
                        // TCP: entries past ESTABLISHED no longer carry users; UDP and SCTP
                        // have only inactive entries.
                        let open = if tcp {
                            e.active_conns
                        } else {
                            e.active_conns + e.inactive_conns
                        };
                        if open == 0 {
                            "its connections ended".to_string()
                        } else if now >= deadline {
                            format!("the drain time is up with {open} connection(s) open")
                        } else {
                            continue;
                        }
                    }
                };
                let r = self
                    .send(Request::DelDest {
                        service: key.clone(),
                        addr: id.0,
                        port: id.1,
                    })
                    .await;
                match failed(&r) {
                    None => tracing::info!(
                        "{}: removed {addr} from {key} after {:.1} s of draining ({why})",
                        self.owner,
                        since.elapsed().as_secs_f64()
                    ),
                    Some(e) => tracing::warn!("{}: deleting {addr} of {key}: {e}", self.owner),
                }
                owned.dests.remove(&id);
            }
            if owned.removing && owned.dests.is_empty() {
                let r = self.send(Request::DelService(key.clone())).await;
                match failed(&r) {
                    None => tracing::info!("{}: deleted {key}", self.owner),
                    Some(e) => tracing::warn!("{}: deleting {key}: {e}", self.owner),
                }
                self.daemon.lock().managed.remove(&key);
                continue;
            }
            self.owned.insert(name, owned);
        }
        self.update_gauges();
    }
}
