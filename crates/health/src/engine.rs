//! The driver: one tokio task per checker, one engine task owning the [`VsState`]s, actions
//! out through an mpsc channel, reload and shutdown through a [`Handle`].

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::action::Action;
use crate::check::{run_check_url, CheckContext, CheckSuccess, MiscWeight};
use crate::config::{CheckKind, CheckerConfig, EngineOptions, VirtualServerCheck, VsKey};
use crate::error::{Error, Result};
use crate::state::{CheckerState, HttpCheckerState, InheritedChecker, VsState};

/// Performs one check attempt. The engine uses [`NetProbe`] (the real checkers) unless
/// [`EngineOptions::probe`] says otherwise; tests of pure timing inject a scripted probe so
/// they can run on tokio's paused clock without sockets.
pub trait Probe: Send + Sync + 'static {
    /// One attempt of `checker` (for HTTP_GET/SSL_GET: of its url number `url`).
    fn probe<'a>(
        &'a self,
        checker: &'a CheckerConfig,
        url: usize,
        ctx: &'a CheckContext,
    ) -> Pin<Box<dyn Future<Output = Result<CheckSuccess>> + Send + 'a>>;
}

/// The real checkers of [`crate::check`].
#[derive(Debug, Default, Clone, Copy)]
pub struct NetProbe;

impl Probe for NetProbe {
    fn probe<'a>(
        &'a self,
        checker: &'a CheckerConfig,
        url: usize,
        ctx: &'a CheckContext,
    ) -> Pin<Box<dyn Future<Output = Result<CheckSuccess>> + Send + 'a>> {
        Box::pin(run_check_url(
            &checker.kind,
            url,
            checker.timing.connect_timeout,
            ctx,
        ))
    }
}

/// Live state of one checker, for status output and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckerStatus {
    /// keepalived block name (`TCP_CHECK`, …).
    pub kind: &'static str,
    /// What it checks (address or program).
    pub target: String,
    /// Current up/down state.
    pub up: bool,
    /// At least one attempt finished.
    pub has_run: bool,
    /// keepalived's retry counter.
    pub retry_it: u32,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Attempts made.
    pub checks: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Result of the last attempt (`None` before the first).
    pub last_ok: Option<bool>,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
}

/// Status of one real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsStatus {
    /// Address.
    pub addr: SocketAddr,
    /// Alive (no checker down).
    pub alive: bool,
    /// Installed in IPVS.
    pub set: bool,
    /// Effective weight (configured + dynamic).
    pub weight: u32,
    /// Its checkers.
    pub checkers: Vec<CheckerStatus>,
}

/// Status of one virtual server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsStatus {
    /// Identity.
    pub key: VsKey,
    /// Quorum state.
    pub quorum_up: bool,
    /// Sorry server in use.
    pub sorry_active: bool,
    /// Sum of alive effective weights.
    pub alive_weight: u64,
    /// Real servers.
    pub real_servers: Vec<RsStatus>,
}

enum Control {
    Reload(Vec<VirtualServerCheck>, oneshot::Sender<Result<()>>),
    Suspend(VsKey, bool, oneshot::Sender<Result<()>>),
    Status(oneshot::Sender<Vec<VsStatus>>),
    Shutdown(oneshot::Sender<()>),
}

enum ReportKind {
    Up(bool),
    ConfirmedDown,
    Weight(MiscWeight),
    /// AGENT_CHECK: the percentage of the configured weight now asked for (0: drain).
    AgentPercent(u32),
}

struct Report {
    uid: u64,
    kind: ReportKind,
}

struct CheckerTask {
    uid: u64,
    cfg: CheckerConfig,
    status: Arc<Mutex<CheckerStatus>>,
    join: JoinHandle<()>,
}

/// Running tasks handed over by a reload (`[rs][checker]`) and, per real server, whether it
/// survived the reload alive.
type Reuse = (Vec<Vec<Option<CheckerTask>>>, Vec<bool>);

struct VsRuntime {
    state: VsState,
    checkers: Vec<Vec<CheckerTask>>,
    /// `ha_suspend`: shared with the checker tasks of this VS.
    suspended: Arc<AtomicBool>,
}

/// Entry point.
#[derive(Debug)]
pub struct HealthEngine;

/// Controls a running engine. Dropping it stops all checkers without emitting actions.
///
/// The engine awaits room in the action channel, so keep receiving actions while awaiting
/// [`Handle::reload`] or [`Handle::shutdown`] (e.g. in another task); otherwise a full
/// channel would stall both sides.
#[derive(Debug)]
pub struct Handle {
    ctl: mpsc::Sender<Control>,
    task: JoinHandle<()>,
}

/// Check the configuration for things the engine cannot act on.
pub fn validate(config: &[VirtualServerCheck]) -> Result<()> {
    let mut keys = HashSet::new();
    for vs in config {
        if !keys.insert(&vs.key) {
            return Err(Error::Unsupported(format!(
                "virtual server {} is duplicated",
                vs.key
            )));
        }
        let mut addrs = HashSet::new();
        let cmds = [&vs.quorum_up, &vs.quorum_down];
        for c in cmds.into_iter().flatten() {
            if c.argv.is_empty() {
                return Err(Error::Unsupported(format!(
                    "empty quorum command in VS {}",
                    vs.key
                )));
            }
        }
        for rs in &vs.real_servers {
            if !addrs.insert(rs.addr) {
                return Err(Error::Unsupported(format!(
                    "VS {}: real server {} is duplicated",
                    vs.key, rs.addr
                )));
            }
            for c in [&rs.notify_up, &rs.notify_down].into_iter().flatten() {
                if c.argv.is_empty() {
                    return Err(Error::Unsupported(format!(
                        "empty notify command for {}",
                        rs.addr
                    )));
                }
            }
            for ch in &rs.checkers {
                match &ch.kind {
                    CheckKind::Http(h) if h.urls.is_empty() => {
                        return Err(Error::Unsupported(format!(
                            "{} of real server {} has no url",
                            ch.kind.name(),
                            rs.addr
                        )))
                    }
                    CheckKind::Agent(a) if a.min_weight > a.max_weight => {
                        return Err(Error::Unsupported(format!(
                            "AGENT_CHECK of real server {}: min_weight {} above max_weight {}",
                            rs.addr, a.min_weight, a.max_weight
                        )))
                    }
                    CheckKind::Misc(m) if m.command.argv.is_empty() => {
                        return Err(Error::Unsupported(format!(
                            "MISC_CHECK of real server {} has no misc_path",
                            rs.addr
                        )))
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

impl HealthEngine {
    /// Start checking `config` with default options; actions go to `actions`.
    /// Must be called inside a tokio runtime.
    pub fn start(config: Vec<VirtualServerCheck>, actions: mpsc::Sender<Action>) -> Result<Handle> {
        Self::start_with(config, actions, EngineOptions::default())
    }

    /// Start with explicit options (random source, start-up delay, probe).
    pub fn start_with(
        config: Vec<VirtualServerCheck>,
        actions: mpsc::Sender<Action>,
        opts: EngineOptions,
    ) -> Result<Handle> {
        validate(&config)?;
        let ctx = CheckContext::new(opts.random.clone())?
            .with_agent_counters(opts.agent_counters.clone());
        let (ctl_tx, ctl_rx) = mpsc::channel(16);
        let (rep_tx, rep_rx) = mpsc::channel(1024);
        let mut engine = Engine {
            vss: Vec::new(),
            locations: HashMap::new(),
            next_uid: 0,
            actions,
            reports: rep_tx,
            opts,
            ctx,
        };
        let task = tokio::spawn(async move {
            let mut out = Vec::new();
            for cfg in &config {
                let mut state = VsState::new(cfg);
                out.extend(state.start(engine.opts.rs_init_notifies));
                let susp = Arc::new(AtomicBool::new(cfg.suspended));
                let rt = engine.spawn_vs(state, cfg, None, susp);
                engine.vss.push(rt);
            }
            engine.reindex();
            engine.emit(out).await;
            engine.run(ctl_rx, rep_rx).await;
        });
        Ok(Handle { ctl: ctl_tx, task })
    }
}

impl Handle {
    /// Apply a new configuration, keeping the state of unchanged checkers (docs/internals/keepalived.md#reload-sighup). An
    /// invalid configuration is refused and the old one keeps running.
    pub async fn reload(&self, config: Vec<VirtualServerCheck>) -> Result<()> {
        validate(&config)?;
        let (tx, rx) = oneshot::channel();
        self.ctl
            .send(Control::Reload(config, tx))
            .await
            .map_err(|_| Error::EngineGone)?;
        rx.await.map_err(|_| Error::EngineGone)?
    }

    /// Suspend or resume the checkers of a virtual server (`ha_suspend`: the daemon calls this
    /// as the VIP disappears from / appears on local interfaces, docs/internals/keepalived.md#the-retry-machine). Suspended
    /// checkers keep their state and run no checks.
    pub async fn set_suspended(&self, vs: VsKey, suspended: bool) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.ctl
            .send(Control::Suspend(vs, suspended, tx))
            .await
            .map_err(|_| Error::EngineGone)?;
        rx.await.map_err(|_| Error::EngineGone)?
    }

    /// Current state of every virtual server, real server and checker.
    pub async fn status(&self) -> Result<Vec<VsStatus>> {
        let (tx, rx) = oneshot::channel();
        self.ctl
            .send(Control::Status(tx))
            .await
            .map_err(|_| Error::EngineGone)?;
        rx.await.map_err(|_| Error::EngineGone)
    }

    /// Stop all checkers and emit the shutdown actions (docs/internals/keepalived.md#shutdown); returns when they are sent.
    pub async fn shutdown(self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.ctl
            .send(Control::Shutdown(tx))
            .await
            .map_err(|_| Error::EngineGone)?;
        rx.await.map_err(|_| Error::EngineGone)?;
        let _ = self.task.await;
        Ok(())
    }
}

struct Engine {
    vss: Vec<VsRuntime>,
    /// Checker uid → (vs, rs, checker) indexes.
    locations: HashMap<u64, (usize, usize, usize)>,
    next_uid: u64,
    actions: mpsc::Sender<Action>,
    reports: mpsc::Sender<Report>,
    opts: EngineOptions,
    ctx: CheckContext,
}

fn target(kind: &CheckKind) -> String {
    match kind {
        CheckKind::Tcp(o) => o.connect.to_string(),
        CheckKind::Http(h) => h.connect.connect.to_string(),
        CheckKind::Misc(m) => m.command.argv.join(" "),
        CheckKind::Smtp(s) => s.connect.connect.to_string(),
        CheckKind::Dns(d) => d.connect.connect.to_string(),
        CheckKind::Udp(u) => u.connect.connect.to_string(),
        CheckKind::Ping(p) => p.connect.connect.ip().to_string(),
        CheckKind::Agent(a) => a.connect.connect.to_string(),
    }
}

impl Engine {
    /// Spawn checker tasks for a VS. `reuse[i][c]` hands over a running task; `healthy[i]`
    /// says real server `i` survived a reload alive.
    ///
    /// Fresh checkers get keepalived's pre-loaded retry counter (one failure is enough) at
    /// start-up, on new servers and on servers that are not alive; on a server that survived
    /// a reload alive they need the usual `retry + 1` failures (ipwrapper.c
    /// `migrate_checkers`, docs/internals/keepalived.md#reload-sighup).
    fn spawn_vs(
        &mut self,
        state: VsState,
        cfg: &VirtualServerCheck,
        mut reuse: Option<Reuse>,
        suspended: Arc<AtomicBool>,
    ) -> VsRuntime {
        let mut checkers = Vec::new();
        for (i, rs) in cfg.real_servers.iter().enumerate() {
            let mut tasks = Vec::new();
            for (c, ch) in rs.checkers.iter().enumerate() {
                let old = reuse
                    .as_mut()
                    .and_then(|r| r.0.get_mut(i))
                    .and_then(|v| v.get_mut(c))
                    .and_then(Option::take);
                let healthy = reuse
                    .as_ref()
                    .and_then(|r| r.1.get(i).copied())
                    .unwrap_or(false);
                let task = match old {
                    Some(t) => t,
                    None => {
                        let retry_it = if healthy { 0 } else { ch.timing.retry };
                        let init = CheckerState::fresh(state.rs[i].checker_up[c], retry_it);
                        self.spawn_checker(ch.clone(), init, suspended.clone())
                    }
                };
                tasks.push(task);
            }
            checkers.push(tasks);
        }
        VsRuntime {
            state,
            checkers,
            suspended,
        }
    }

    fn spawn_checker(
        &mut self,
        cfg: CheckerConfig,
        init: CheckerState,
        suspended: Arc<AtomicBool>,
    ) -> CheckerTask {
        let uid = self.next_uid;
        self.next_uid += 1;
        let status = Arc::new(Mutex::new(CheckerStatus {
            kind: cfg.kind.name(),
            target: target(&cfg.kind),
            up: init.up,
            has_run: false,
            retry_it: init.retry_it,
            consecutive_failures: 0,
            checks: 0,
            failures: 0,
            last_ok: None,
            last_error: None,
        }));
        // First run after the start-up delay plus a uniform random warmup (docs/internals/keepalived.md#the-retry-machine).
        let first = self.opts.startup_delay + self.opts.random.duration_up_to(cfg.timing.warmup);
        let join = tokio::spawn(checker_loop(
            uid,
            cfg.clone(),
            init,
            first,
            self.ctx.clone(),
            self.opts.probe.clone(),
            status.clone(),
            self.reports.clone(),
            suspended,
        ));
        CheckerTask {
            uid,
            cfg,
            status,
            join,
        }
    }

    fn reindex(&mut self) {
        self.locations.clear();
        for (v, vs) in self.vss.iter().enumerate() {
            for (r, rs) in vs.checkers.iter().enumerate() {
                for (c, t) in rs.iter().enumerate() {
                    self.locations.insert(t.uid, (v, r, c));
                }
            }
        }
    }

    async fn emit(&self, actions: Vec<Action>) {
        for a in actions {
            tracing::debug!(?a, "health action");
            if self.actions.send(a).await.is_err() {
                tracing::warn!("health action receiver dropped");
                return;
            }
        }
    }

    async fn run(&mut self, mut ctl: mpsc::Receiver<Control>, mut rep: mpsc::Receiver<Report>) {
        loop {
            tokio::select! {
                c = ctl.recv() => match c {
                    None => {
                        self.abort_all();
                        return;
                    }
                    Some(Control::Shutdown(done)) => {
                        self.abort_all();
                        let mut out = Vec::new();
                        for vs in &mut self.vss {
                            out.extend(vs.state.shutdown());
                        }
                        self.emit(out).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(Control::Status(tx)) => {
                        let _ = tx.send(self.status());
                    }
                    Some(Control::Suspend(key, on, tx)) => {
                        let r = match self.vss.iter().find(|v| v.state.cfg.key == key) {
                            Some(v) => {
                                v.suspended.store(on, Ordering::Relaxed);
                                Ok(())
                            }
                            None => Err(Error::Unsupported(format!("no virtual server {key}"))),
                        };
                        let _ = tx.send(r);
                    }
                    Some(Control::Reload(cfg, tx)) => {
                        let out = self.reload(cfg);
                        self.emit(out).await;
                        let _ = tx.send(Ok(()));
                    }
                },
                Some(r) = rep.recv() => {
                    let Some(&(v, i, c)) = self.locations.get(&r.uid) else {
                        continue; // a checker aborted by a reload
                    };
                    let state = &mut self.vss[v].state;
                    let out = match r.kind {
                        ReportKind::Up(up) => state.checker_changed(i, c, up),
                        ReportKind::ConfirmedDown => state.checker_confirmed_down(i),
                        ReportKind::Weight(MiscWeight::Configured) => state.dynamic_weight(i, c, None),
                        ReportKind::Weight(MiscWeight::Weight(w)) => state.dynamic_weight(i, c, Some(w)),
                        ReportKind::AgentPercent(p) => state.agent_weight(i, c, p),
                    };
                    self.emit(out).await;
                }
            }
        }
    }

    fn abort_all(&mut self) {
        for vs in &self.vss {
            for t in vs.checkers.iter().flatten() {
                t.join.abort();
            }
        }
    }

    fn status(&self) -> Vec<VsStatus> {
        self.vss
            .iter()
            .map(|vs| VsStatus {
                key: vs.state.cfg.key.clone(),
                quorum_up: vs.state.quorum_up,
                sorry_active: vs.state.sorry_active,
                alive_weight: vs.state.alive_weight(),
                real_servers: vs
                    .state
                    .rs
                    .iter()
                    .zip(&vs.checkers)
                    .map(|(r, tasks)| RsStatus {
                        addr: r.cfg.addr,
                        alive: r.alive,
                        set: r.set,
                        weight: r.effective_weight(),
                        checkers: tasks
                            .iter()
                            .map(|t| {
                                t.status
                                    .lock()
                                    .map(|s| s.clone())
                                    .unwrap_or_else(|p| p.into_inner().clone())
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Reload (docs/internals/keepalived.md#reload-sighup): VS identity = key; RS identity = address; a new checker that
    /// compares equal to an unused old one on the same RS takes over its running task and
    /// state; everything else starts fresh.
    fn reload(&mut self, config: Vec<VirtualServerCheck>) -> Vec<Action> {
        let mut out = Vec::new();
        let mut old: Vec<Option<VsRuntime>> = std::mem::take(&mut self.vss)
            .into_iter()
            .map(Some)
            .collect();
        // Vanished virtual servers first, as keepalived's clear_diff_services runs before the
        // new configuration is installed.
        for slot in old.iter_mut() {
            let gone = slot
                .as_ref()
                .is_some_and(|o| !config.iter().any(|c| c.key == o.state.cfg.key));
            if gone {
                if let Some(o) = slot.take() {
                    for t in o.checkers.iter().flatten() {
                        t.join.abort();
                    }
                    out.extend(o.state.removed());
                }
            }
        }
        let mut new_vss = Vec::new();
        for cfg in &config {
            let pos = old
                .iter()
                .position(|o| o.as_ref().is_some_and(|o| o.state.cfg.key == cfg.key));
            match pos.and_then(|p| old[p].take()) {
                None => {
                    let mut state = VsState::new(cfg);
                    out.extend(state.start(self.opts.rs_init_notifies));
                    let susp = Arc::new(AtomicBool::new(cfg.suspended));
                    new_vss.push(self.spawn_vs(state, cfg, None, susp));
                }
                Some(o) => {
                    let VsRuntime {
                        state: old_state,
                        checkers: old_tasks,
                        suspended,
                    } = o;
                    // Pool old tasks per RS address.
                    let mut pool: HashMap<SocketAddr, Vec<(usize, CheckerTask)>> = HashMap::new();
                    for (i, tasks) in old_tasks.into_iter().enumerate() {
                        let addr = old_state.rs[i].cfg.addr;
                        pool.entry(addr)
                            .or_default()
                            .extend(tasks.into_iter().enumerate());
                    }
                    let mut inherited = Vec::new();
                    let mut reuse = Vec::new();
                    let healthy: Vec<bool> = cfg
                        .real_servers
                        .iter()
                        .map(|rs| {
                            old_state
                                .rs
                                .iter()
                                .any(|o| o.cfg.addr == rs.addr && o.alive)
                        })
                        .collect();
                    for rs in &cfg.real_servers {
                        let mut inh = Vec::new();
                        let mut re = Vec::new();
                        let old_i = old_state.rs.iter().position(|o| o.cfg.addr == rs.addr);
                        for ch in &rs.checkers {
                            let found = pool.get_mut(&rs.addr).and_then(|v| {
                                v.iter()
                                    .position(|(_, t)| t.cfg == *ch)
                                    .map(|p| v.remove(p))
                            });
                            match (found, old_i) {
                                (Some((oc, t)), Some(oi)) => {
                                    let o = &old_state.rs[oi];
                                    inh.push(Some(InheritedChecker {
                                        up: o.checker_up[oc],
                                        dynamic: o.checker_dyn[oc],
                                    }));
                                    re.push(Some(t));
                                }
                                _ => {
                                    inh.push(None);
                                    re.push(None);
                                }
                            }
                        }
                        inherited.push(inh);
                        reuse.push(re);
                    }
                    // Checkers nobody took over stop now.
                    for t in pool.into_values().flatten() {
                        t.1.join.abort();
                    }
                    let (state, actions) = VsState::reload(&old_state, cfg, &inherited);
                    out.extend(actions);
                    new_vss.push(self.spawn_vs(state, cfg, Some((reuse, healthy)), suspended));
                }
            }
        }
        self.vss = new_vss;
        self.reindex();
        out
    }
}

#[allow(clippy::too_many_arguments)]
async fn checker_loop(
    uid: u64,
    cfg: CheckerConfig,
    st: CheckerState,
    first: std::time::Duration,
    ctx: CheckContext,
    probe: Arc<dyn Probe>,
    status: Arc<Mutex<CheckerStatus>>,
    reports: mpsc::Sender<Report>,
    suspended: Arc<AtomicBool>,
) {
    let mut machine = match &cfg.kind {
        CheckKind::Http(_) => Machine::Http(HttpCheckerState::new(st)),
        _ => Machine::Simple(st),
    };
    let name = cfg.kind.name();
    let tgt = target(&cfg.kind);
    let mut delay = first;
    // AGENT_CHECK: what the agent asked for so far (`ready` returns to the last percentage).
    let mut agent = crate::check::agent::AgentMemory::default();
    // AGENT_CHECK `maxconn:N` is not acted on: said once per checker, not once per reply.
    let mut maxconn_warned = false;
    loop {
        tokio::time::sleep(delay).await;
        if suspended.load(Ordering::Relaxed) {
            // ha_suspend: only reschedule (keepalived's disabled checker).
            delay = cfg.timing.delay_loop;
            continue;
        }
        let url = machine.url();
        let res = probe.probe(&cfg, url, &ctx).await;
        let step = machine.step(res.is_ok(), &cfg);
        let st = machine.base();
        {
            let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
            s.up = st.up;
            s.has_run = st.has_run;
            s.retry_it = st.retry_it;
            s.checks += 1;
            s.last_ok = Some(res.is_ok());
            match &res {
                Ok(_) => {
                    s.consecutive_failures = 0;
                    s.last_error = None;
                }
                Err(e) => {
                    s.consecutive_failures += 1;
                    s.failures += 1;
                    s.last_error = Some(e.to_string());
                }
            }
        }
        match (&res, step.transition) {
            (Err(e), _) if step.retrying && cfg.log_all_failures => {
                tracing::info!(
                    "{name} on service {tgt} failed: {e} (retry {})",
                    st.retry_it
                );
            }
            (Err(e), Some(false)) => {
                tracing::info!(
                    "{name} on service {tgt} failed after {} retries: {e}",
                    cfg.timing.retry
                )
            }
            (Ok(_), Some(true)) => tracing::info!("{name} on service {tgt} succeeded"),
            _ => {}
        }
        if let Ok(CheckSuccess {
            agent: Some(Some(reply)),
            ..
        }) = &res
        {
            if let (Some(n), false) = (reply.maxconn, maxconn_warned) {
                maxconn_warned = true;
                tracing::warn!(
                    "{name} on service {tgt}: the agent's maxconn:{n} is not acted on (rvs does \
                     not queue connections per real server; the rest of the reply is applied; \
                     an upper connection threshold, ipvsadm -x / uthreshold, is the nearest \
                     equivalent); said once for this checker"
                );
            }
            // Like misc_dynamic: the weight first, then any up transition.
            let percent = agent.apply(reply);
            if reports
                .send(Report {
                    uid,
                    kind: ReportKind::AgentPercent(percent),
                })
                .await
                .is_err()
            {
                return;
            }
        }
        if let Ok(CheckSuccess {
            dynamic: Some(w), ..
        }) = res
        {
            // keepalived applies the weight before the up transition (docs/internals/keepalived.md#checkers-and-their-timers).
            if reports
                .send(Report {
                    uid,
                    kind: ReportKind::Weight(w),
                })
                .await
                .is_err()
            {
                return;
            }
        }
        if step.confirmed_down
            && reports
                .send(Report {
                    uid,
                    kind: ReportKind::ConfirmedDown,
                })
                .await
                .is_err()
        {
            return;
        }
        if let Some(up) = step.transition {
            if reports
                .send(Report {
                    uid,
                    kind: ReportKind::Up(up),
                })
                .await
                .is_err()
            {
                return;
            }
        }
        delay = step.next;
    }
}

/// The per-checker retry machine: HTTP has its own url sequencing (docs/internals/keepalived.md#checkers-and-their-timers).
enum Machine {
    Simple(CheckerState),
    Http(HttpCheckerState),
}

impl Machine {
    fn url(&self) -> usize {
        match self {
            Machine::Simple(_) => 0,
            Machine::Http(h) => h.url_it,
        }
    }

    fn base(&self) -> CheckerState {
        match self {
            Machine::Simple(s) => *s,
            Machine::Http(h) => h.base,
        }
    }

    fn step(&mut self, ok: bool, cfg: &CheckerConfig) -> crate::state::StepOutcome {
        match (self, &cfg.kind) {
            (Machine::Http(h), CheckKind::Http(hc)) => {
                h.on_result(ok, hc.urls.len(), &cfg.timing, hc.fast_recovery)
            }
            (Machine::Http(h), _) => h.base.on_result(ok, &cfg.timing),
            (Machine::Simple(s), _) => s.on_result(ok, &cfg.timing),
        }
    }
}
