//! `rvsd -f keepalived.conf`: run what a keepalived configuration describes.
//!
//! * [`plan`] maps the parsed configuration (rvs-config) onto IPVS services and real-server
//!   templates exactly as keepalived's `ipvs_set_srule`/`ipvs_set_drule` do (docs/internals/keepalived.md#virtual-servers), and onto the health engine's resolved checker configuration
//!   (rvs-health, docs/internals/keepalived.md inheritance).
//! * [`Keepalived`] runs it: the services are created through [`Daemon::request`] (the path
//!   rvsadm uses, so `rvsadm -Ln`, metrics and the proxy listeners follow), the health engine is
//!   started, and its [`Action`]s are applied through the same path by one task that never stops
//!   draining the channel. Commands run in their own tasks.
//! * [`Keepalived::reload`] (SIGHUP) re-reads the file, keeps the running configuration when the
//!   new one has any error (logged with `file:line:col` and the offending text), and otherwise
//!   applies only the differences (docs/internals/keepalived.md#reload-sighup). A real server the file no longer has is **drained**
//!   (weight 0, deleted when its connections end or after `--drain-time`) instead of being
//!   deleted at once as keepalived does (keepalived issues #1228, #2240).
//! * Around it: `lvs_notify_fifo`/`notify_fifo` lines (docs/internals/keepalived.md#notifications) from a thread of their own,
//!   `ha_suspend` (docs/internals/keepalived.md#the-retry-machine) by polling whether the VIP is local, and counters of what the
//!   checkers did for the metrics endpoint ([`HealthCounters`]: created by [`Keepalived::start`],
//!   counted by its tasks and attached to the daemon's state). Configured features rvsd does
//!   not run (the sync daemon, FIFO reader scripts, …) are named in a warning at start.
//!
//! The behaviour reproduced here is described in docs/internals/keepalived.md; deliberate differences are listed in
//! `docs/keepalived-differences.md` ("Running a configuration").

mod apply;
pub mod counters;
mod fifo;
pub mod netconf;
mod plan;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvs_config as kc;
use rvs_control::model as m;
use rvs_control::proto::{ErrorKind, Payload, Request};
use rvs_health as hc;
use rvs_health::Action;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::daemon::Daemon;
use apply::{add_or_edit, apply, current_dest, describe, drain_tick, is_kind, send, Shared};
pub use counters::HealthCounters;
use fifo::FifoWriter;
pub use plan::{parsed_not_acted_on, plan, Plan, VsPlan};

/// Whether `ip` is configured on this host (binding a socket to it succeeds). keepalived
/// follows netlink address events; rvsd polls this once a second.
pub fn is_local(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// A running keepalived configuration.
pub struct Keepalived {
    daemon: Arc<Daemon>,
    path: PathBuf,
    opts: kc::CheckOptions,
    shared: Arc<Mutex<Shared>>,
    engine: Arc<tokio::sync::Mutex<Option<hc::Handle>>>,
    applier: JoinHandle<()>,
    drainer: JoinHandle<()>,
    suspender: JoinHandle<()>,
    /// `rvs_announce_table` of the file in force (start or last successful reload), for the
    /// route announcer (crate::announce_control).
    announce: Option<kc::RvsAnnounce>,
}

/// `ha_suspend`: once a second, suspend or resume the checkers of virtual servers whose
/// address disappeared from or appeared on this host (docs/internals/keepalived.md#the-retry-machine).
async fn watch_suspend(
    shared: Arc<Mutex<Shared>>,
    engine: Arc<tokio::sync::Mutex<Option<hc::Handle>>>,
) {
    let mut known: HashMap<hc::VsKey, bool> = HashMap::new();
    let mut iv = tokio::time::interval(Duration::from_secs(1));
    loop {
        iv.tick().await;
        let vips = {
            let sh = crate::lock::lock(&shared);
            sh.cur.suspend_vips.clone()
        };
        known.retain(|k, _| vips.iter().any(|(v, _)| v == k));
        for (key, ips) in vips {
            let local = ips.iter().any(|ip| is_local(*ip));
            // First sight (start, or ha_suspend added by a reload): tell the engine anyway;
            // it is idempotent, and a surviving VS keeps its run-time state over a reload.
            let was = known.get(&key).copied();
            if was == Some(local) {
                continue;
            }
            let guard = engine.lock().await;
            let Some(h) = guard.as_ref() else { return };
            match h.set_suspended(key.clone(), !local).await {
                Ok(()) => {
                    if was.is_some() || !local {
                        tracing::info!(
                            "ha_suspend: address of VS {key} {}: checkers {}",
                            if local {
                                "is configured"
                            } else {
                                "is not configured"
                            },
                            if local { "running" } else { "suspended" }
                        );
                    }
                    known.insert(key, local);
                }
                Err(e) => tracing::warn!("ha_suspend: VS {key}: {e}"),
            }
        }
    }
}

fn log_notes(notes: &[String]) {
    for n in notes {
        tracing::warn!("{n}");
    }
}

/// Apply `lvs_timeouts` (only the ones set; the others keep their running value).
async fn apply_timeouts(daemon: &Arc<Daemon>, t: [Option<Duration>; 3]) {
    if t.iter().all(Option::is_none) {
        return;
    }
    let cur = match send(daemon, Request::GetTimeouts).await.result {
        Ok(Payload::Timeouts(c)) => c,
        _ => return,
    };
    let secs = |d: Option<Duration>, dflt: u32| {
        d.map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
            .unwrap_or(dflt)
    };
    let want = m::Timeouts {
        tcp: secs(t[0], cur.tcp),
        tcp_fin: secs(t[1], cur.tcp_fin),
        udp: secs(t[2], cur.udp),
    };
    let r = send(daemon, Request::SetTimeouts(want)).await;
    if r.result.is_err() {
        tracing::error!("lvs_timeouts: {}", describe(&r));
    }
}

/// Create a service, or bring an existing one to `spec`.
async fn put_service(daemon: &Arc<Daemon>, spec: &m::ServiceSpec) -> Result<(), String> {
    let r = send(daemon, Request::AddService(spec.clone())).await;
    let r = if is_kind(&r, &[ErrorKind::Eexist]) {
        send(daemon, Request::EditService(spec.clone())).await
    } else {
        r
    };
    match &r.result {
        Ok(_) => Ok(()),
        Err(_) => Err(format!("service {}: {}", spec.key, describe(&r))),
    }
}

impl Keepalived {
    /// Load `path`, create its services and start checking (docs/internals/keepalived.md#the-retry-machine). Errors (a file that
    /// cannot run, a feature rvsd cannot run) are returned with the file position.
    pub async fn start(
        daemon: Arc<Daemon>,
        path: &Path,
        opts: kc::CheckOptions,
        drain_time: Duration,
    ) -> Result<Keepalived, String> {
        let report = kc::check(path, &opts);
        for d in &report.diagnostics {
            // Recoverable problems: keepalived logs them and runs (docs/internals/keepalived.md#exit-classes); so does rvsd.
            if d.class.is_warning() || report.can_run() {
                tracing::warn!("{d}");
            } else {
                tracing::error!("{d}");
            }
        }
        let cfg = report
            .into_result(&path.display().to_string())
            .map_err(|e| e.to_string())?;
        let mut notes = Vec::new();
        let plan = plan(&cfg, &mut notes).map_err(|e| format!("{}: {e}", path.display()))?;
        log_notes(&notes);
        if plan.flush {
            let _ = send(&daemon, Request::Flush).await;
        }
        apply_timeouts(&daemon, plan.timeouts).await;
        for s in &plan.services {
            put_service(&daemon, s).await?;
        }
        let checks = plan.checks.clone();
        let fifos = plan.fifos.clone();
        let shared = Arc::new(Mutex::new(Shared {
            cur: Arc::new(plan),
            prev: None,
            drains: Vec::new(),
            fifo: FifoWriter::start(&fifos).map(Arc::new),
        }));
        let counters = Arc::new(HealthCounters::default());
        let (tx, mut rx) = mpsc::channel::<Action>(1024);
        let applier = {
            let daemon = daemon.clone();
            let shared = shared.clone();
            let counters = counters.clone();
            tokio::spawn(async move {
                while let Some(a) = rx.recv().await {
                    apply(&daemon, &shared, &counters, drain_time, a).await;
                }
            })
        };
        let drainer = {
            let daemon = daemon.clone();
            let shared = shared.clone();
            let counters = counters.clone();
            tokio::spawn(async move {
                let mut iv = tokio::time::interval(Duration::from_millis(250));
                loop {
                    iv.tick().await;
                    drain_tick(&daemon, &shared, &counters).await;
                }
            })
        };
        let opts_hc = hc::EngineOptions {
            agent_counters: counters.agent.clone(),
            ..hc::EngineOptions::default()
        };
        let engine =
            hc::HealthEngine::start_with(checks, tx, opts_hc).map_err(|e| e.to_string())?;
        let engine = Arc::new(tokio::sync::Mutex::new(Some(engine)));
        let suspender = tokio::spawn(watch_suspend(shared.clone(), engine.clone()));
        daemon.lock().set_health(counters.clone());
        tracing::info!(
            "{}: {} virtual server(s), {} service(s); health checking started",
            path.display(),
            cfg.virtual_servers.len(),
            crate::lock::lock(&shared).cur.services.len()
        );
        Ok(Keepalived {
            daemon,
            path: path.to_path_buf(),
            opts,
            shared,
            engine,
            applier,
            drainer,
            suspender,
            announce: cfg.global.rvs_announce.clone(),
        })
    }

    /// SIGHUP: re-read the file and apply only the differences (docs/internals/keepalived.md#reload-sighup), or keep the
    /// running configuration and say why. Returns the outcome as one line (also logged).
    pub async fn reload(&mut self) -> Result<String, String> {
        let r = self.try_reload().await;
        match &r {
            Ok(s) => tracing::info!("SIGHUP: {s}"),
            Err(e) => tracing::error!("SIGHUP: keeping the running configuration: {e}"),
        }
        r
    }

    async fn try_reload(&mut self) -> Result<String, String> {
        let path = self.path.display().to_string();
        // Off the runtime: the control socket, signals, ticker and checkers go on meanwhile.
        let report = crate::off_runtime::check_config(&self.path, &self.opts).await?;
        // Stricter than keepalived, which applies a partially parsed file (docs/internals/keepalived.md#reload-sighup): any error
        // keeps the running configuration, like keepalived's reload_check_config but without
        // refusing warnings. The script-security class (scripts that would run as root
        // without enable_script_security) is reported but, as in keepalived, not refused:
        // the file ran the same way at start-up.
        let errors: Vec<&kc::Diagnostic> = report
            .diagnostics
            .iter()
            .filter(|d| !d.class.is_warning() && d.class != kc::ErrorClass::SecurityError)
            .collect();
        if let Some(first) = errors.first() {
            for d in &errors {
                tracing::error!("{d}");
            }
            return Err(format!(
                "{path} has {} error(s), first: {}",
                errors.len(),
                first.to_string().replace('\n', " ")
            ));
        }
        for d in &report.diagnostics {
            tracing::warn!("{d}");
        }
        let mut notes = Vec::new();
        let new = plan(&report.config, &mut notes).map_err(|e| format!("{path}: {e}"))?;
        log_notes(&notes);
        let old = crate::lock::lock(&self.shared).cur.clone();
        let d = &self.daemon;

        // Services: add new ones (a new member of a surviving group gets the group's current
        // real servers, docs/internals/keepalived.md#reload-sighup), edit changed ones.
        let old_specs: HashMap<&m::ServiceKey, &m::ServiceSpec> =
            old.services.iter().map(|s| (&s.key, s)).collect();
        let (mut added, mut edited) = (0, 0);
        for s in &new.services {
            match old_specs.get(&s.key) {
                Some(o) if *o == s => {}
                Some(_) => {
                    put_service(d, s).await?;
                    edited += 1;
                }
                None => {
                    put_service(d, s).await?;
                    added += 1;
                    let sibling = new
                        .vs
                        .iter()
                        .find(|(_, v)| v.services.contains(&s.key))
                        .and_then(|(k, _)| old.vs.get(k))
                        .and_then(|ov| ov.services.first().cloned());
                    if let Some(sib) = sibling {
                        let entry = {
                            let st = d.lock();
                            st.list_service(&crate::convert::key_to_core(&sib))
                        };
                        for de in entry.map(|e| e.dests).unwrap_or_default() {
                            add_or_edit(d, &s.key, de.spec).await;
                        }
                    }
                }
            }
        }
        let checks = new.checks.clone();
        let new = Arc::new(new);
        {
            let mut sh = crate::lock::lock(&self.shared);
            sh.prev = Some(old.clone());
            sh.cur = new.clone();
        }
        if let Some(e) = self.engine.lock().await.as_ref() {
            e.reload(checks)
                .await
                .map_err(|e| format!("health engine refused the new configuration: {e}"))?;
        }
        // A surviving real server whose method or thresholds changed is edited in place,
        // keeping its current weight (the engine owns weights).
        for (k, nv) in &new.vs {
            let Some(ov) = old.vs.get(k) else { continue };
            for (addr, nt) in &nv.dests {
                let Some(ot) = ov.dests.get(addr) else {
                    continue;
                };
                let mut a = ot.clone();
                let mut b = nt.clone();
                a.weight = 0;
                b.weight = 0;
                if a == b {
                    continue;
                }
                for svc in &nv.services {
                    if let Some(cur) = current_dest(d, svc, *addr) {
                        let mut spec = nt.clone();
                        spec.weight = cur.spec.weight;
                        add_or_edit(d, svc, spec).await;
                    }
                }
            }
        }
        // Virtual servers the file no longer has are removed entirely, as keepalived does.
        let mut removed = 0;
        for s in &old.services {
            if !new.services.iter().any(|n| n.key == s.key) {
                let r = send(d, Request::DelService(s.key.clone())).await;
                if r.result.is_ok() {
                    removed += 1;
                }
            }
        }
        apply_timeouts(d, new.timeouts).await;
        self.announce = report.config.global.rvs_announce.clone();
        Ok(format!(
            "{path} reloaded: {added} service(s) added, {edited} changed, {removed} removed"
        ))
    }

    /// `rvs_announce_table` of the file in force (re-read by every successful reload).
    pub fn announce_setting(&self) -> Option<&kc::RvsAnnounce> {
        self.announce.as_ref()
    }

    /// SIGTERM: stop checking and apply keepalived's shutdown removals and `omega` notifiers
    /// (docs/internals/keepalived.md#shutdown), bounded in time; the socket proxy then drains open connections.
    pub async fn shutdown(mut self) {
        self.suspender.abort();
        let engine = self.engine.lock().await.take();
        if let Some(e) = engine {
            if tokio::time::timeout(Duration::from_secs(3), e.shutdown())
                .await
                .is_err()
            {
                tracing::warn!("health engine did not stop within 3 s");
            }
        }
        // The engine dropped its sender: the applier finishes what is queued and ends.
        let _ = tokio::time::timeout(Duration::from_secs(3), &mut self.applier).await;
        self.applier.abort();
        self.drainer.abort();
    }

    /// The health engine's view, for status output.
    pub async fn status(&self) -> Option<Vec<hc::VsStatus>> {
        self.engine.lock().await.as_ref()?.status().await.ok()
    }
}
