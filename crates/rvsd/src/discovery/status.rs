//! What the rest of rvsd sees of the discovery sources: which services they own (kept in the
//! daemon's state, so that the control socket can refuse rvsadm changes to them) and their
//! counters (rendered into the metrics). A leaf module: the state holds these types without
//! depending on the sources themselves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rvs_control::model as m;
use rvs_control::proto::{ErrorKind, RemoteError, Request};

/// Services owned by a discovery source, kept in the daemon's state so that the control
/// socket can refuse rvsadm changes to them.
#[derive(Debug, Default)]
pub struct Managed {
    /// Service → a description of its owner (`etcd http://…, prefix /rvs`).
    owners: HashMap<m::ServiceKey, Arc<str>>,
}

impl Managed {
    /// Whether any service is managed.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// The owner of `key`, if a source manages it.
    pub fn owner(&self, key: &m::ServiceKey) -> Option<&str> {
        self.owners.get(key).map(|s| &**s)
    }

    pub(super) fn insert(&mut self, key: m::ServiceKey, owner: Arc<str>) {
        self.owners.insert(key, owner);
    }

    pub(super) fn remove(&mut self, key: &m::ServiceKey) {
        self.owners.remove(key);
    }

    /// Why an rvsadm request must be refused, if it changes a managed service or one of its
    /// real servers (a flush, when any service is managed).
    pub fn refusal(&self, req: &Request) -> Option<RemoteError> {
        let key = match req {
            Request::AddService(s) | Request::EditService(s) => &s.key,
            Request::DelService(k) => k,
            Request::AddDest { service, .. }
            | Request::EditDest { service, .. }
            | Request::DelDest { service, .. } => service,
            Request::Flush => {
                let mut owners: Vec<&str> = self.owners.values().map(|s| &**s).collect();
                owners.sort_unstable();
                owners.dedup();
                return (!owners.is_empty()).then(|| {
                    RemoteError::with_detail(
                        ErrorKind::Managed,
                        format!(
                            "refusing to flush: {} service(s) are managed by {}; remove them \
                             there (an rvsadm change would be undone)",
                            self.owners.len(),
                            owners.join(" and ")
                        ),
                    )
                });
            }
            _ => return None,
        };
        let owner = self.owner(key)?;
        Some(RemoteError::with_detail(
            ErrorKind::Managed,
            format!(
                "{key} is managed by {owner}: change it there (an rvsadm change would be \
                 undone)"
            ),
        ))
    }
}

/// Counters and state of one source, rendered into the metrics and read by the status page.
#[derive(Debug)]
pub struct SourceStatus {
    /// `docker` or `etcd` (the `source` label).
    pub name: &'static str,
    /// 1 while the source is followed (its stream is open), 0 while it is lost.
    pub connected: AtomicU64,
    /// Times the source was lost (stream ended, request failed).
    pub disconnects: AtomicU64,
    /// Full reads of the source (at start and after every loss).
    pub resyncs: AtomicU64,
    /// Changes received (container events, watch events).
    pub events: AtomicU64,
    /// Diffs applied to the table (several events coalesce into one).
    pub applies: AtomicU64,
    /// Table requests made by the diffs.
    pub requests: AtomicU64,
    /// Entries skipped: malformed keys/values or labels, refused by the table, conflicts.
    pub skipped: AtomicU64,
    /// etcd: the revision the table is at (0 for Docker).
    pub revision: AtomicU64,
    /// Services and real servers the source owns now.
    pub services: AtomicU64,
    /// Real servers it owns now (draining ones included).
    pub dests: AtomicU64,
}

impl SourceStatus {
    /// Fresh counters for source `name`.
    pub fn new(name: &'static str) -> SourceStatus {
        SourceStatus {
            name,
            connected: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            events: AtomicU64::new(0),
            applies: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            revision: AtomicU64::new(0),
            services: AtomicU64::new(0),
            dests: AtomicU64::new(0),
        }
    }

    /// Mark the source followed or lost (a loss is counted once).
    pub fn set_connected(&self, up: bool) {
        let was = self.connected.swap(u64::from(up), Ordering::Relaxed);
        if was == 1 && !up {
            self.disconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count one of the counters above.
    pub fn count(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// Render the sources' metrics.
pub fn render_metrics(sources: &[Arc<SourceStatus>], out: &mut String) {
    if sources.is_empty() {
        return;
    }
    type Get = fn(&SourceStatus) -> &AtomicU64;
    let series: [(&str, &str, &str, Get); 10] = [
        (
            "rvs_discovery_connected",
            "gauge",
            "1 while the discovery source (dockerd, etcd) is followed, 0 while it is lost (the last table stays).",
            |s| &s.connected,
        ),
        (
            "rvs_discovery_disconnects_total",
            "counter",
            "Times the discovery source was lost.",
            |s| &s.disconnects,
        ),
        (
            "rvs_discovery_resyncs_total",
            "counter",
            "Full reads of the discovery source (start, and after every loss).",
            |s| &s.resyncs,
        ),
        (
            "rvs_discovery_events_total",
            "counter",
            "Changes received from the discovery source.",
            |s| &s.events,
        ),
        (
            "rvs_discovery_applies_total",
            "counter",
            "Diffs applied to the table (events coalesce).",
            |s| &s.applies,
        ),
        (
            "rvs_discovery_requests_total",
            "counter",
            "Table changes made by the discovery source.",
            |s| &s.requests,
        ),
        (
            "rvs_discovery_skipped_total",
            "counter",
            "Entries skipped: malformed, refused by the table, or conflicting with entries the source does not own.",
            |s| &s.skipped,
        ),
        (
            "rvs_discovery_revision",
            "gauge",
            "etcd revision the table follows (0 for Docker).",
            |s| &s.revision,
        ),
        (
            "rvs_discovery_services",
            "gauge",
            "Services the discovery source owns.",
            |s| &s.services,
        ),
        (
            "rvs_discovery_real_servers",
            "gauge",
            "Real servers the discovery source owns (draining ones included).",
            |s| &s.dests,
        ),
    ];
    for (name, kind, help, get) in series {
        crate::exposition::header(out, name, kind, help);
        for s in sources {
            let labels = format!("source=\"{}\"", s.name);
            crate::exposition::sample(out, name, &labels, get(s).load(Ordering::Relaxed));
        }
    }
}
