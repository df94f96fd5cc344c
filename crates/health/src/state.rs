//! Pure state logic: the per-checker retry machine (docs/internals/keepalived.md#the-retry-machine) and the per-virtual-server
//! real-server / quorum / sorry-server logic (docs/internals/keepalived.md).
//!
//! Nothing here does I/O or reads a clock: inputs are check results and configuration, outputs
//! are the next delay and lists of [`Action`]s in keepalived's order.

use std::time::Duration;

use crate::action::{Action, Notification};
use crate::config::{CheckerTiming, RealServerCheck, SorryServer, VirtualServerCheck};

/// Largest weight IPVS accepts; effective weights are clamped to `0..=MAX_WEIGHT` (docs/internals/keepalived.md).
pub const MAX_WEIGHT: i64 = 2_147_483_647;

/// Retry state of one checker (docs/internals/keepalived.md#the-retry-machine): `is_up`, `has_run` and the retry counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckerState {
    /// The checker considers its target up.
    pub up: bool,
    /// At least one check has completed.
    pub has_run: bool,
    /// Failures since the last success or transition (keepalived's `retry_it`).
    pub retry_it: u32,
}

/// What to do after one check attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepOutcome {
    /// `Some(up)` if the checker changed state.
    pub transition: Option<bool>,
    /// Delay until the next attempt.
    pub next: Duration,
    /// The failure was absorbed by a retry (logged only with `log_all_failures`).
    pub retrying: bool,
    /// The first completed check of a checker that started down (alpha) failed: keepalived
    /// still runs the server's down notifiers then (ipwrapper.c `update_svr_checker_state`).
    pub confirmed_down: bool,
}

impl CheckerState {
    /// Initial state (docs/internals/keepalived.md#the-retry-machine): alpha checkers start down, others up; the retry
    /// counter is pre-loaded with `retry` so the very first failure takes the checker down.
    pub fn new(alpha: bool, retry: u32) -> Self {
        CheckerState {
            up: !alpha,
            has_run: false,
            retry_it: retry,
        }
    }

    /// A checker that has not run yet, with a given state and retry counter (reload, docs/internals/keepalived.md#reload-sighup: `retry_it = retry` makes the first failure take it down).
    pub fn fresh(up: bool, retry_it: u32) -> Self {
        CheckerState {
            up,
            has_run: false,
            retry_it,
        }
    }

    /// Feed one check result (docs/internals/keepalived.md#the-retry-machine; keepalived's TCP/UDP/SMTP/DNS/MISC/PING epilogs).
    ///
    /// Retries are only spent while the checker is up (or has never run): a checker that is
    /// already down is simply tried again every `delay_loop`, as keepalived's MISC, UDP and
    /// HTTP epilogs do.
    pub fn on_result(&mut self, ok: bool, t: &CheckerTiming) -> StepOutcome {
        if ok {
            self.retry_it = 0;
            let was_up = self.up;
            self.up = true;
            self.has_run = true;
            StepOutcome {
                transition: (!was_up).then_some(true),
                next: t.delay_loop,
                retrying: false,
                confirmed_down: false,
            }
        } else if self.has_run && !self.up {
            StepOutcome {
                transition: None,
                next: t.delay_loop,
                retrying: false,
                confirmed_down: false,
            }
        } else if self.retry_it < t.retry {
            self.retry_it += 1;
            StepOutcome {
                transition: None,
                next: t.delay_before_retry,
                retrying: true,
                confirmed_down: false,
            }
        } else {
            let was_up = self.up;
            let had_run = self.has_run;
            self.up = false;
            self.has_run = true;
            self.retry_it = 0;
            StepOutcome {
                transition: was_up.then_some(false),
                next: t.delay_loop,
                retrying: false,
                confirmed_down: !was_up && !had_run,
            }
        }
    }
}

/// HTTP_GET/SSL_GET state: one url is fetched per attempt (keepalived `check_http.c` epilog,
/// docs/internals/keepalived.md).
///
/// * A url that passes moves on to the next one after `delay_loop`; when the last one passes
///   (and no url is marked failed) the checker is up.
/// * A failure while up (or before the first full pass) is retried on the same url after
///   `delay_before_retry`; after `retry + 1` consecutive failures the checker goes down and the
///   url is marked failed.
/// * While a url is marked failed it is retried every `max(delay_before_retry, delay_loop)`;
///   once it passes, every url is checked again from the first before the checker is up.
/// * `fast_recovery` runs the next attempt at once while the checker is down (or has never
///   completed a pass) and no url is marked failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpCheckerState {
    /// Up/has-run/retry counter, as for the other checkers.
    pub base: CheckerState,
    /// Index of the url the next attempt fetches.
    pub url_it: usize,
    /// The url that took the checker down, until it passes again.
    pub failed_url: Option<usize>,
}

impl HttpCheckerState {
    /// Start at the first url.
    pub fn new(base: CheckerState) -> Self {
        HttpCheckerState {
            base,
            url_it: 0,
            failed_url: None,
        }
    }

    /// Feed the result of fetching url `self.url_it` out of `n_urls`.
    pub fn on_result(
        &mut self,
        ok: bool,
        n_urls: usize,
        t: &CheckerTiming,
        fast_recovery: bool,
    ) -> StepOutcome {
        let b = &mut self.base;
        let mut transition = None;
        let mut retrying = false;
        // keepalived: REGISTER_CHECKER_NEW on success; on failure RETRY if the checker is up
        // or has never run (marking it has-run), else FAILED.
        let retry = !ok && (b.up || !b.has_run);
        if !ok && retry {
            b.has_run = true;
        }
        let mut wrapped = false;
        if ok {
            if self.url_it + 1 >= n_urls {
                wrapped = true;
            } else {
                self.url_it += 1;
            }
            b.retry_it = 0;
        } else if retry {
            b.retry_it += 1;
        }
        if ok && wrapped && self.failed_url.is_none() {
            if !b.up || !b.has_run {
                transition = (!b.up).then_some(true);
                b.up = true;
                b.has_run = true;
            }
            self.url_it = 0;
            b.retry_it = 0;
        } else if retry && b.retry_it > t.retry {
            if b.up {
                transition = Some(false);
                b.up = false;
            }
            self.failed_url = Some(self.url_it);
        } else if ok && self.failed_url.is_some() {
            // The failed url passes again: check all urls from the first.
            self.failed_url = None;
            self.url_it = 0;
            b.retry_it = 0;
        } else if retry {
            retrying = true;
        }
        let mut next = if ok {
            if !b.has_run {
                // Before the first full pass one failure is enough (docs/internals/keepalived.md#the-retry-machine).
                b.retry_it = t.retry;
            }
            t.delay_loop
        } else if self.failed_url.is_some() {
            t.delay_before_retry.max(t.delay_loop)
        } else {
            t.delay_before_retry
        };
        if fast_recovery && (!b.has_run || (!b.up && self.failed_url.is_none())) {
            next = Duration::ZERO;
        }
        // HTTP marks the checker as run before judging a failure, so keepalived never
        // reports a confirmed-down here.
        StepOutcome {
            transition,
            next,
            retrying,
            confirmed_down: false,
        }
    }
}

/// State of one real server inside a [`VsState`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsState {
    /// Configuration.
    pub cfg: RealServerCheck,
    /// Up state of each checker (same order as `cfg.checkers`), as last reported.
    pub checker_up: Vec<bool>,
    /// Dynamic weight contribution of each checker (MISC_CHECK `misc_dynamic`, docs/internals/keepalived.md#checkers-and-their-timers).
    pub checker_dyn: Vec<i64>,
    /// keepalived's "alive": no checker is down.
    pub alive: bool,
    /// keepalived's "set": installed as an IPVS destination (possibly with weight 0).
    pub set: bool,
}

impl RsState {
    fn new(cfg: &RealServerCheck, checker_up: Vec<bool>) -> Self {
        let n = cfg.checkers.len();
        let alive = checker_up.iter().all(|u| *u);
        RsState {
            cfg: cfg.clone(),
            checker_up,
            checker_dyn: vec![0; n],
            alive,
            set: false,
        }
    }

    /// Number of checkers that are down (keepalived's `num_failed_checkers`).
    pub fn failed_checkers(&self) -> usize {
        self.checker_up.iter().filter(|u| !**u).count()
    }

    /// Configured weight plus dynamic adjustments, clamped to `0..=MAX_WEIGHT` (docs/internals/keepalived.md).
    pub fn effective_weight(&self) -> u32 {
        let w = i64::from(self.cfg.weight) + self.checker_dyn.iter().sum::<i64>();
        w.clamp(0, MAX_WEIGHT) as u32
    }
}

/// What a reload keeps of an old checker (docs/internals/keepalived.md#reload-sighup: an equal checker inherits its state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InheritedChecker {
    /// Up state.
    pub up: bool,
    /// Dynamic weight contribution.
    pub dynamic: i64,
}

/// State of one virtual server: its real servers, quorum and sorry server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsState {
    /// Configuration (real servers' configs live in [`RsState::cfg`]).
    pub cfg: VirtualServerCheck,
    /// Quorum after clamping to `1..=Σ weights` (docs/internals/keepalived.md#virtual-servers).
    pub quorum: u32,
    /// Hysteresis after clamping to `quorum − 1`.
    pub hysteresis: u32,
    /// Quorum state.
    pub quorum_up: bool,
    /// The sorry server is in use ("sorry server mode": quorum down and sorry server active).
    pub sorry_active: bool,
    /// The sorry server is installed (weight 1 when active, 0 with `sorry_server_inhibit`).
    pub sorry_set: bool,
    /// Real servers, in configuration order.
    pub rs: Vec<RsState>,
}

fn clamp_quorum(cfg: &VirtualServerCheck) -> (u32, u32) {
    let total: u64 = cfg.real_servers.iter().map(|r| u64::from(r.weight)).sum();
    let q = u64::from(cfg.quorum.max(1)).min(total.max(1)) as u32;
    let h = cfg.hysteresis.min(q - 1);
    (q, h)
}

impl VsState {
    /// Initial state before start-up (docs/internals/keepalived.md#the-retry-machine): alpha checkers down, others up;
    /// nothing installed yet. Call [`VsState::start`] next.
    pub fn new(cfg: &VirtualServerCheck) -> Self {
        let (quorum, hysteresis) = clamp_quorum(cfg);
        let rs = cfg
            .real_servers
            .iter()
            .map(|r| RsState::new(r, r.checkers.iter().map(|c| !c.alpha).collect()))
            .collect();
        let mut cfg = cfg.clone();
        cfg.real_servers.clear();
        VsState {
            cfg,
            quorum,
            hysteresis,
            quorum_up: false,
            sorry_active: false,
            sorry_set: false,
            rs,
        }
    }

    /// Sum of the effective weights of alive real servers (`W` of docs/internals/keepalived.md#quorum-and-the-sorry-server).
    pub fn alive_weight(&self) -> u64 {
        self.rs
            .iter()
            .filter(|r| r.alive)
            .map(|r| u64::from(r.effective_weight()))
            .sum()
    }

    fn key(&self) -> crate::VsKey {
        self.cfg.key.clone()
    }

    fn add(&self, rs: &RsState, weight: u32) -> Action {
        Action::AddDest {
            vs: self.key(),
            dest: rs.cfg.addr,
            weight,
            sorry: false,
        }
    }

    fn edit(&self, rs: &RsState, weight: u32) -> Action {
        Action::SetWeight {
            vs: self.key(),
            dest: rs.cfg.addr,
            weight,
            sorry: false,
        }
    }

    fn remove(&self, rs: &RsState) -> Action {
        Action::RemoveDest {
            vs: self.key(),
            dest: rs.cfg.addr,
            sorry: false,
        }
    }

    /// Start-up (docs/internals/keepalived.md#the-retry-machine): install real servers, evaluate quorum with `init`,
    /// install the sorry server when needed.
    ///
    /// When quorum is already down at start and a sorry server exists, keepalived adds the
    /// alive servers and then removes them again for the sorry server; we go straight to the
    /// end state (alive servers not added, inhibited ones at weight 0), which is the same table
    /// without the churn.
    pub fn start(&mut self, rs_init_notifies: bool) -> Vec<Action> {
        let mut out = Vec::new();
        let w = self.alive_weight();
        self.quorum_up = w >= u64::from(self.quorum) + u64::from(self.hysteresis);
        let sorry_mode = !self.quorum_up && self.cfg.sorry_server.is_some();
        for i in 0..self.rs.len() {
            let r = &self.rs[i];
            if r.alive && !sorry_mode {
                out.push(self.add(r, r.effective_weight()));
                self.rs[i].set = true;
            } else if r.cfg.inhibit_on_failure {
                out.push(self.add(r, 0));
                self.rs[i].set = true;
            }
            let r = &self.rs[i];
            if r.alive && rs_init_notifies {
                if let Some(c) = &r.cfg.notify_up {
                    out.push(Action::RunCommand(c.clone()));
                }
                out.push(Action::Notify(Notification::RealServer {
                    vs: self.key(),
                    rs: r.cfg.addr,
                    up: true,
                }));
            }
        }
        if sorry_mode {
            // "Starting with quorum down": sorry server in, down notifiers (docs/internals/keepalived.md#quorum-and-the-sorry-server).
            self.enter_sorry_mode(&mut out);
            self.quorum_notify(false, &mut out);
        } else if let Some(ss) = self.cfg.sorry_server.clone() {
            if ss.inhibit {
                out.push(sorry_action(&self.cfg.key, &ss, Some(0), false));
                self.sorry_set = true;
            }
        }
        out
    }

    /// A checker of real server `rs` changed state (docs/internals/keepalived.md#the-retry-machine aggregation, docs/internals/keepalived.md#the-retry-machine).
    pub fn checker_changed(&mut self, rs: usize, checker: usize, up: bool) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(r) = self.rs.get_mut(rs) else {
            return out;
        };
        let Some(slot) = r.checker_up.get_mut(checker) else {
            return out;
        };
        if *slot == up {
            return out;
        }
        *slot = up;
        if !up {
            // A failed checker's dynamic weight contribution is removed (docs/internals/keepalived.md#checkers-and-their-timers).
            r.checker_dyn[checker] = 0;
        }
        let alive = r.failed_checkers() == 0;
        if alive != r.alive {
            self.perform_svr_state(rs, alive, &mut out);
        }
        out
    }

    /// The first check of an alpha checker failed while its server was never up: run the
    /// server's down notifiers (keepalived `update_svr_checker_state` → `do_rs_notifies`).
    pub fn checker_confirmed_down(&mut self, rs: usize) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(r) = self.rs.get(rs) else {
            return out;
        };
        if r.alive {
            return out;
        }
        if let Some(c) = &r.cfg.notify_down {
            out.push(Action::RunCommand(c.clone()));
        }
        out.push(Action::Notify(Notification::RealServer {
            vs: self.key(),
            rs: r.cfg.addr,
            up: false,
        }));
        out
    }

    /// A MISC_CHECK with `misc_dynamic` reported a weight (`Some(status − 2)`) or exit 0
    /// (`None`: back to the configured weight) — docs/internals/keepalived.md#checkers-and-their-timers, keepalived `update_svr_wgt`.
    pub fn dynamic_weight(
        &mut self,
        rs: usize,
        checker: usize,
        weight: Option<u32>,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(r) = self.rs.get_mut(rs) else {
            return out;
        };
        if checker >= r.checker_dyn.len() {
            return out;
        }
        let old = r.effective_weight();
        r.checker_dyn[checker] = match weight {
            Some(w) => i64::from(w) - i64::from(r.cfg.weight),
            None => 0,
        };
        let new = r.effective_weight();
        if old == new {
            return out;
        }
        let r = &self.rs[rs];
        if r.alive && r.set && !self.sorry_active {
            out.push(self.edit(r, new));
        }
        self.update_quorum(&mut out);
        out
    }

    /// An AGENT_CHECK asks for `percent` of the configured weight (0: `drain` or `0%`), scaled
    /// and bounded by its `min_weight`/`max_weight` (docs/guide/load-aware.md#the-agent-check).
    pub fn agent_weight(&mut self, rs: usize, checker: usize, percent: u32) -> Vec<Action> {
        let Some(r) = self.rs.get(rs) else {
            return Vec::new();
        };
        let Some(crate::config::CheckKind::Agent(a)) = r.cfg.checkers.get(checker).map(|c| &c.kind)
        else {
            return Vec::new();
        };
        let w = if percent == 0 {
            0
        } else {
            crate::check::agent::scaled_weight(r.cfg.weight, percent, a.min_weight, a.max_weight)
        };
        self.dynamic_weight(rs, checker, Some(w))
    }

    /// keepalived `perform_svr_state` (docs/internals/keepalived.md#the-retry-machine): IPVS change unless in sorry-server mode,
    /// then the notify command and notification, then quorum re-evaluation.
    fn perform_svr_state(&mut self, i: usize, alive: bool, out: &mut Vec<Action>) {
        self.rs[i].alive = alive;
        let r = self.rs[i].clone();
        if !self.sorry_active {
            if alive {
                if r.cfg.inhibit_on_failure && r.set {
                    out.push(self.edit(&r, r.effective_weight()));
                } else {
                    out.push(self.add(&r, r.effective_weight()));
                }
                self.rs[i].set = true;
            } else if r.set {
                if r.cfg.inhibit_on_failure {
                    out.push(self.edit(&r, 0));
                } else {
                    out.push(self.remove(&r));
                    self.rs[i].set = false;
                }
            }
        }
        let cmd = if alive {
            &r.cfg.notify_up
        } else {
            &r.cfg.notify_down
        };
        if let Some(c) = cmd {
            out.push(Action::RunCommand(c.clone()));
        }
        out.push(Action::Notify(Notification::RealServer {
            vs: self.key(),
            rs: r.cfg.addr,
            up: alive,
        }));
        self.update_quorum(out);
    }

    /// keepalived `update_quorum_state` (docs/internals/keepalived.md#quorum-and-the-sorry-server), not at start-up.
    fn update_quorum(&mut self, out: &mut Vec<Action>) {
        let w = self.alive_weight();
        let q = u64::from(self.quorum);
        let h = u64::from(self.hysteresis);
        if self.quorum_up {
            if w == 0 || w < q.saturating_sub(h) {
                tracing::info!(
                    "Lost quorum {}-{}={} > {} for VS {}",
                    q,
                    h,
                    q.saturating_sub(h),
                    w,
                    self.cfg.key
                );
                self.quorum_up = false;
                if self.cfg.sorry_server.is_some() && !self.sorry_active {
                    self.enter_sorry_mode(out);
                }
                self.quorum_notify(false, out);
            }
        } else if w >= q + h {
            tracing::info!(
                "Gained quorum {}+{}={} <= {} for VS {}",
                q,
                h,
                q + h,
                w,
                self.cfg.key
            );
            self.quorum_up = true;
            if self.sorry_active {
                self.leave_sorry_mode(out);
            }
            self.quorum_notify(true, out);
        }
    }

    /// Quorum lost with a sorry server: alive servers out (or weight 0 with inhibit), then the
    /// sorry server in (docs/internals/keepalived.md#quorum-and-the-sorry-server).
    fn enter_sorry_mode(&mut self, out: &mut Vec<Action>) {
        for i in 0..self.rs.len() {
            let r = self.rs[i].clone();
            if r.alive && r.set {
                if r.cfg.inhibit_on_failure {
                    out.push(self.edit(&r, 0));
                } else {
                    out.push(self.remove(&r));
                    self.rs[i].set = false;
                }
            }
        }
        if let Some(ss) = self.cfg.sorry_server.clone() {
            let edit = self.sorry_set;
            out.push(sorry_action(&self.cfg.key, &ss, Some(1), edit));
            self.sorry_set = true;
            self.sorry_active = true;
        }
    }

    /// Quorum gained in sorry-server mode: sorry server out (or weight 0 with
    /// `sorry_server_inhibit`), then every alive server back in (docs/internals/keepalived.md#quorum-and-the-sorry-server).
    fn leave_sorry_mode(&mut self, out: &mut Vec<Action>) {
        if let Some(ss) = self.cfg.sorry_server.clone() {
            if ss.inhibit {
                out.push(sorry_action(&self.cfg.key, &ss, Some(0), true));
            } else {
                out.push(sorry_action(&self.cfg.key, &ss, None, false));
                self.sorry_set = false;
            }
        }
        self.sorry_active = false;
        self.restore_pool(out);
    }

    /// Put every alive real server back at its effective weight.
    fn restore_pool(&mut self, out: &mut Vec<Action>) {
        for i in 0..self.rs.len() {
            let r = self.rs[i].clone();
            if r.alive {
                if r.cfg.inhibit_on_failure && r.set {
                    out.push(self.edit(&r, r.effective_weight()));
                } else if !r.set {
                    out.push(self.add(&r, r.effective_weight()));
                }
                self.rs[i].set = true;
            }
        }
    }

    fn quorum_notify(&self, up: bool, out: &mut Vec<Action>) {
        let cmd = if up {
            &self.cfg.quorum_up
        } else {
            &self.cfg.quorum_down
        };
        if let Some(c) = cmd {
            out.push(Action::RunCommand(c.clone()));
        }
        out.push(Action::Notify(Notification::Quorum { vs: self.key(), up }));
    }

    /// Shutdown (docs/internals/keepalived.md#shutdown): every installed real server and the sorry server are deleted;
    /// with `omega`, alive servers' `notify_down` and (if quorum is up) `quorum_down` run.
    /// The daemon deletes the service itself afterwards.
    pub fn shutdown(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        for i in 0..self.rs.len() {
            let r = self.rs[i].clone();
            if r.set {
                out.push(self.remove(&r));
                self.rs[i].set = false;
            }
            if self.cfg.omega && r.alive {
                if let Some(c) = &r.cfg.notify_down {
                    out.push(Action::RunCommand(c.clone()));
                }
                out.push(Action::Notify(Notification::RealServer {
                    vs: self.key(),
                    rs: r.cfg.addr,
                    up: false,
                }));
            }
        }
        if self.sorry_set {
            if let Some(ss) = self.cfg.sorry_server.clone() {
                out.push(sorry_action(&self.cfg.key, &ss, None, false));
            }
            self.sorry_set = false;
            self.sorry_active = false;
        }
        if self.cfg.omega && self.quorum_up {
            self.quorum_notify(false, &mut out);
        }
        out
    }

    /// The virtual server vanished from the configuration on reload: drain everything it had
    /// installed (docs/internals/keepalived.md#reload-sighup; drain instead of delete per issue 5 item 4).
    pub fn removed(&self) -> Vec<Action> {
        let mut out = Vec::new();
        for r in self.rs.iter().filter(|r| r.set) {
            out.push(Action::DrainDest {
                vs: self.key(),
                dest: r.cfg.addr,
                sorry: false,
            });
        }
        if let (true, Some(ss)) = (self.sorry_set, &self.cfg.sorry_server) {
            out.push(Action::DrainDest {
                vs: self.key(),
                dest: ss.addr,
                sorry: true,
            });
        }
        out
    }

    /// Reload of a surviving virtual server (docs/internals/keepalived.md#reload-sighup).
    ///
    /// `inherited[i][c]` is `Some` when checker `c` of real server `i` of the new config
    /// compares equal to a running checker, which keeps its state. Fresh checkers of a
    /// surviving server start up, except alpha ones on a server that is not alive; fresh
    /// checkers of a new server start like at start-up. A failed server is not re-added by
    /// the reload; it waits for a checker success.
    pub fn reload(
        old: &VsState,
        cfg: &VirtualServerCheck,
        inherited: &[Vec<Option<InheritedChecker>>],
    ) -> (VsState, Vec<Action>) {
        let mut out = Vec::new();
        let mut new = VsState::new(cfg);
        new.quorum_up = old.quorum_up;
        new.sorry_active = old.sorry_active;

        // Vanished real servers.
        for o in &old.rs {
            if o.set && !cfg.real_servers.iter().any(|r| r.addr == o.cfg.addr) {
                out.push(Action::DrainDest {
                    vs: cfg.key.clone(),
                    dest: o.cfg.addr,
                    sorry: false,
                });
            }
        }

        // Sorry server.
        match (&old.cfg.sorry_server, &cfg.sorry_server) {
            (Some(o), Some(n)) if o.addr == n.addr => {
                new.sorry_set = old.sorry_set;
                if !new.sorry_active {
                    if new.sorry_set && !n.inhibit {
                        out.push(sorry_action(&cfg.key, n, None, false));
                        new.sorry_set = false;
                    } else if !new.sorry_set && n.inhibit {
                        out.push(sorry_action(&cfg.key, n, Some(0), false));
                        new.sorry_set = true;
                    }
                }
            }
            (o, n) => {
                if let (Some(o), true) = (o, old.sorry_set) {
                    out.push(Action::DrainDest {
                        vs: cfg.key.clone(),
                        dest: o.addr,
                        sorry: true,
                    });
                }
                match n {
                    Some(n) if new.sorry_active => {
                        out.push(sorry_action(&cfg.key, n, Some(1), false));
                        new.sorry_set = true;
                    }
                    Some(n) if n.inhibit => {
                        out.push(sorry_action(&cfg.key, n, Some(0), false));
                        new.sorry_set = true;
                    }
                    Some(_) => {}
                    // Sorry server gone while in use: the pool comes back (restore_pool below).
                    None => new.sorry_active = false,
                }
            }
        }

        for (i, rcfg) in cfg.real_servers.iter().enumerate() {
            let inh = inherited.get(i);
            let old_rs = old.rs.iter().find(|o| o.cfg.addr == rcfg.addr);
            let was_alive = old_rs.map(|o| o.alive);
            for (c, ccfg) in rcfg.checkers.iter().enumerate() {
                match inh.and_then(|v| v.get(c)).copied().flatten() {
                    Some(ic) => {
                        new.rs[i].checker_up[c] = ic.up;
                        new.rs[i].checker_dyn[c] = ic.dynamic;
                    }
                    None => {
                        new.rs[i].checker_up[c] = match was_alive {
                            Some(alive) => !ccfg.alpha || alive,
                            None => !ccfg.alpha,
                        };
                    }
                }
            }
            let alive_now = new.rs[i].failed_checkers() == 0;
            match old_rs {
                Some(o) => {
                    new.rs[i].alive = o.alive;
                    new.rs[i].set = o.set;
                    let old_eff = o.effective_weight();
                    let r = new.rs[i].clone();
                    if alive_now != r.alive {
                        new.perform_svr_state(i, alive_now, &mut out);
                    } else if r.alive && r.set && !new.sorry_active {
                        if old_eff != r.effective_weight() {
                            out.push(new.edit(&r, r.effective_weight()));
                        }
                    } else if !r.alive && !new.sorry_active {
                        if r.set && !r.cfg.inhibit_on_failure {
                            out.push(new.remove(&r));
                            new.rs[i].set = false;
                        } else if !r.set && r.cfg.inhibit_on_failure {
                            out.push(new.add(&r, 0));
                            new.rs[i].set = true;
                        }
                    }
                }
                None => {
                    new.rs[i].alive = alive_now;
                    let r = new.rs[i].clone();
                    if r.alive && !new.sorry_active {
                        out.push(new.add(&r, r.effective_weight()));
                        new.rs[i].set = true;
                    } else if r.cfg.inhibit_on_failure {
                        out.push(new.add(&r, 0));
                        new.rs[i].set = true;
                    }
                }
            }
        }
        if old.sorry_active && !new.sorry_active {
            new.restore_pool(&mut out);
        }
        new.update_quorum(&mut out);
        (new, out)
    }
}

/// Add (`weight` Some and not `edit`), edit (`edit`) or remove (`weight` None) the sorry server.
fn sorry_action(vs: &crate::VsKey, ss: &SorryServer, weight: Option<u32>, edit: bool) -> Action {
    match (weight, edit) {
        (Some(weight), false) => Action::AddDest {
            vs: vs.clone(),
            dest: ss.addr,
            weight,
            sorry: true,
        },
        (Some(weight), true) => Action::SetWeight {
            vs: vs.clone(),
            dest: ss.addr,
            weight,
            sorry: true,
        },
        (None, _) => Action::RemoveDest {
            vs: vs.clone(),
            dest: ss.addr,
            sorry: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::*;
    use crate::Action::*;
    use std::net::SocketAddr;

    fn timing(retry: u32) -> CheckerTiming {
        CheckerTiming {
            delay_loop: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(1),
            retry,
            delay_before_retry: Duration::from_secs(2),
            warmup: Duration::ZERO,
        }
    }

    fn checker(alpha: bool) -> CheckerConfig {
        CheckerConfig {
            kind: CheckKind::Tcp(ConnectOpts::to("127.0.0.1:1".parse().unwrap())),
            timing: timing(1),
            alpha,
            log_all_failures: false,
        }
    }

    fn vs_key() -> VsKey {
        VsKey::Addr {
            protocol: Protocol::Tcp,
            addr: "10.0.0.1:80".parse().unwrap(),
        }
    }

    fn rs(n: u8, weight: u32) -> RealServerCheck {
        RealServerCheck {
            addr: format!("127.0.1.{n}:80").parse().unwrap(),
            weight,
            inhibit_on_failure: false,
            notify_up: Some(Command::new(["up", &n.to_string()])),
            notify_down: Some(Command::new(["down", &n.to_string()])),
            checkers: vec![checker(false)],
        }
    }

    fn vs(rss: Vec<RealServerCheck>) -> VirtualServerCheck {
        VirtualServerCheck {
            key: vs_key(),
            quorum: 1,
            hysteresis: 0,
            quorum_up: Some(Command::new(["qup"])),
            quorum_down: Some(Command::new(["qdown"])),
            sorry_server: None,
            omega: false,
            suspended: false,
            real_servers: rss,
        }
    }

    fn addr(n: u8) -> SocketAddr {
        format!("127.0.1.{n}:80").parse().unwrap()
    }

    fn sorry_addr() -> SocketAddr {
        "127.0.9.9:80".parse().unwrap()
    }

    fn add(n: u8, weight: u32) -> Action {
        AddDest {
            vs: vs_key(),
            dest: addr(n),
            weight,
            sorry: false,
        }
    }

    fn edit(n: u8, weight: u32) -> Action {
        SetWeight {
            vs: vs_key(),
            dest: addr(n),
            weight,
            sorry: false,
        }
    }

    fn remove(n: u8) -> Action {
        RemoveDest {
            vs: vs_key(),
            dest: addr(n),
            sorry: false,
        }
    }

    fn cmd(argv: &[&str]) -> Action {
        RunCommand(Command::new(argv.iter().copied()))
    }

    fn rs_note(n: u8, up: bool) -> Action {
        Notify(Notification::RealServer {
            vs: vs_key(),
            rs: addr(n),
            up,
        })
    }

    fn q_note(up: bool) -> Action {
        Notify(Notification::Quorum { vs: vs_key(), up })
    }

    #[test]
    fn checker_goes_down_after_retry_plus_one_failures() {
        let t = timing(2);
        let mut s = CheckerState::new(false, 2);
        // First success: already up, no transition.
        let o = s.on_result(true, &t);
        assert_eq!((o.transition, o.next), (None, t.delay_loop));
        for _ in 0..2 {
            let o = s.on_result(false, &t);
            assert_eq!(
                (o.transition, o.next, o.retrying),
                (None, t.delay_before_retry, true)
            );
        }
        let o = s.on_result(false, &t);
        assert_eq!((o.transition, o.next), (Some(false), t.delay_loop));
        // While down no retries: every delay_loop.
        let o = s.on_result(false, &t);
        assert_eq!(
            (o.transition, o.next, o.retrying),
            (None, t.delay_loop, false)
        );
        // Down → up on one success.
        let o = s.on_result(true, &t);
        assert_eq!(o.transition, Some(true));
        // A success in between resets the count.
        s.on_result(false, &t);
        s.on_result(true, &t);
        s.on_result(false, &t);
        s.on_result(false, &t);
        assert!(s.up);
    }

    #[test]
    fn first_failure_at_start_is_enough() {
        let t = timing(3);
        let mut s = CheckerState::new(false, 3);
        let o = s.on_result(false, &t);
        assert_eq!(o.transition, Some(false));
    }

    #[test]
    fn alpha_starts_down() {
        let t = timing(1);
        let mut s = CheckerState::new(true, 1);
        assert!(!s.up);
        assert_eq!(s.on_result(true, &t).transition, Some(true));
        // An alpha checker whose first check fails confirms the down state once.
        let mut s = CheckerState::new(true, 1);
        let o = s.on_result(false, &t);
        assert_eq!((o.transition, o.confirmed_down), (None, true));
        assert!(!s.on_result(false, &t).confirmed_down);
        // A non-alpha checker going down is a transition, not a confirmation.
        let mut s = CheckerState::new(false, 1);
        let o = s.on_result(false, &t);
        assert_eq!((o.transition, o.confirmed_down), (Some(false), false));
    }

    #[test]
    fn confirmed_down_runs_notify_down_only_for_dead_servers() {
        let mut r = rs(1, 1);
        r.checkers = vec![checker(true)];
        let mut v = VsState::new(&vs(vec![r, rs(2, 1)]));
        v.start(false);
        assert_eq!(
            v.checker_confirmed_down(0),
            vec![cmd(&["down", "1"]), rs_note(1, false)]
        );
        assert_eq!(v.checker_confirmed_down(1), vec![]);
    }

    fn http(alpha: bool, retry: u32) -> HttpCheckerState {
        HttpCheckerState::new(CheckerState::new(alpha, retry))
    }

    #[test]
    fn http_single_url_down_and_recovery() {
        let t = timing(2); // delay_loop 10 s, delay_before_retry 2 s
        let mut h = http(false, 2);
        let o = h.on_result(true, 1, &t, false);
        assert_eq!((o.transition, o.next), (None, t.delay_loop));
        assert!(h.base.has_run);
        // Retries while up are spaced by delay_before_retry; retry + 1 failures → down.
        for _ in 0..2 {
            let o = h.on_result(false, 1, &t, false);
            assert_eq!(
                (o.transition, o.next, o.retrying),
                (None, t.delay_before_retry, true)
            );
        }
        let o = h.on_result(false, 1, &t, false);
        assert_eq!(o.transition, Some(false));
        // Once a url has failed: max(delay_before_retry, delay_loop).
        assert_eq!(o.next, t.delay_loop);
        assert_eq!(h.failed_url, Some(0));
        let o = h.on_result(false, 1, &t, false);
        assert_eq!(
            (o.transition, o.next, o.retrying),
            (None, t.delay_loop, false)
        );
        // The failed url passes: all urls are checked again before the checker is up.
        let o = h.on_result(true, 1, &t, false);
        assert_eq!((o.transition, o.next), (None, t.delay_loop));
        let o = h.on_result(true, 1, &t, false);
        assert_eq!(o.transition, Some(true));
    }

    #[test]
    fn http_urls_in_sequence_and_first_failure_at_start() {
        let t = timing(1);
        let mut h = http(false, 1);
        // url 0 passes, url 1 fails: down at once (never completed a pass).
        assert_eq!(h.on_result(true, 2, &t, false).transition, None);
        assert_eq!(h.url_it, 1);
        let o = h.on_result(false, 2, &t, false);
        assert_eq!(o.transition, Some(false));
        assert_eq!(h.failed_url, Some(1));
        // url 1 passes → restart at url 0; both pass → up.
        h.on_result(true, 2, &t, false);
        assert_eq!((h.url_it, h.failed_url), (0, None));
        assert_eq!(h.on_result(true, 2, &t, false).transition, None);
        assert_eq!(h.on_result(true, 2, &t, false).transition, Some(true));
        assert_eq!(h.url_it, 0);
    }

    #[test]
    fn http_alpha_and_fast_recovery() {
        let t = timing(1);
        let mut h = http(true, 1);
        // Never run: fast_recovery fetches the urls back to back.
        let o = h.on_result(true, 2, &t, true);
        assert_eq!((o.transition, o.next), (None, Duration::ZERO));
        let o = h.on_result(true, 2, &t, true);
        assert_eq!((o.transition, o.next), (Some(true), t.delay_loop));
        // Without fast_recovery the same pass takes delay_loop per url.
        let mut h = http(true, 1);
        assert_eq!(h.on_result(true, 2, &t, false).next, t.delay_loop);
        // An alpha checker failing before its first pass stays down without a transition.
        let mut h = http(true, 1);
        let o = h.on_result(false, 1, &t, false);
        assert_eq!(o.transition, None);
        assert!(!h.base.up && h.base.has_run);
    }

    #[test]
    fn start_adds_alive_and_down_removes() {
        let mut v = VsState::new(&vs(vec![rs(1, 3), rs(2, 1)]));
        assert_eq!(v.start(false), vec![add(1, 3), add(2, 1)]);
        assert!(v.quorum_up);
        assert_eq!(
            v.checker_changed(0, 0, false),
            vec![remove(1), cmd(&["down", "1"]), rs_note(1, false)]
        );
        assert_eq!(v.checker_changed(0, 0, false), vec![]);
        assert_eq!(
            v.checker_changed(0, 0, true),
            vec![add(1, 3), cmd(&["up", "1"]), rs_note(1, true)]
        );
    }

    #[test]
    fn rs_init_notifies_fires_at_start() {
        let mut v = VsState::new(&vs(vec![rs(1, 1)]));
        assert_eq!(
            v.start(true),
            vec![add(1, 1), cmd(&["up", "1"]), rs_note(1, true)]
        );
    }

    #[test]
    fn inhibit_on_failure_sets_weight_zero() {
        let mut r = rs(1, 5);
        r.inhibit_on_failure = true;
        let mut v = VsState::new(&vs(vec![r, rs(2, 1)]));
        v.start(false);
        assert_eq!(
            v.checker_changed(0, 0, false),
            vec![edit(1, 0), cmd(&["down", "1"]), rs_note(1, false)]
        );
        assert!(v.rs[0].set);
        assert_eq!(
            v.checker_changed(0, 0, true),
            vec![edit(1, 5), cmd(&["up", "1"]), rs_note(1, true)]
        );
    }

    #[test]
    fn several_checkers_all_must_be_up() {
        let mut r = rs(1, 1);
        r.checkers = vec![checker(false), checker(false)];
        let mut v = VsState::new(&vs(vec![r, rs(2, 1)]));
        v.start(false);
        assert_eq!(v.checker_changed(0, 0, false).len(), 3);
        // Second checker down: the server is already down, nothing happens.
        assert_eq!(v.checker_changed(0, 1, false), vec![]);
        // First back up: one checker still failed.
        assert_eq!(v.checker_changed(0, 0, true), vec![]);
        assert_eq!(v.checker_changed(0, 1, true).len(), 3);
        assert!(v.rs[0].alive);
    }

    #[test]
    fn quorum_loss_and_gain_with_sorry_server() {
        let mut c = vs(vec![rs(1, 1), rs(2, 1)]);
        c.quorum = 2;
        c.sorry_server = Some(SorryServer {
            addr: sorry_addr(),
            inhibit: false,
        });
        let mut v = VsState::new(&c);
        assert_eq!(v.start(false), vec![add(1, 1), add(2, 1)]);
        // RS 1 down: removed, notified, then quorum lost: RS 2 out, sorry in, quorum_down.
        assert_eq!(
            v.checker_changed(0, 0, false),
            vec![
                remove(1),
                cmd(&["down", "1"]),
                rs_note(1, false),
                remove(2),
                AddDest {
                    vs: vs_key(),
                    dest: sorry_addr(),
                    weight: 1,
                    sorry: true
                },
                cmd(&["qdown"]),
                q_note(false),
            ]
        );
        assert!(v.sorry_active);
        // RS 1 up: no IPVS change in sorry mode; then quorum gained: sorry out, pool back.
        assert_eq!(
            v.checker_changed(0, 0, true),
            vec![
                cmd(&["up", "1"]),
                rs_note(1, true),
                RemoveDest {
                    vs: vs_key(),
                    dest: sorry_addr(),
                    sorry: true
                },
                add(1, 1),
                add(2, 1),
                cmd(&["qup"]),
                q_note(true),
            ]
        );
        assert!(!v.sorry_active);
    }

    #[test]
    fn hysteresis() {
        let mut c = vs(vec![rs(1, 1), rs(2, 1), rs(3, 1)]);
        c.quorum = 2;
        c.hysteresis = 1;
        let mut v = VsState::new(&c);
        v.start(false);
        assert!(v.quorum_up); // W=3 >= Q+H=3
        v.checker_changed(0, 0, false); // W=2
        v.checker_changed(1, 0, false); // W=1, not < Q-H=1
        assert!(v.quorum_up);
        let out = v.checker_changed(2, 0, false); // W=0
        assert!(!v.quorum_up);
        assert!(out.contains(&cmd(&["qdown"])));
        v.checker_changed(0, 0, true); // W=1
        let out = v.checker_changed(1, 0, true); // W=2 < 3
        assert!(!v.quorum_up);
        assert!(!out.contains(&cmd(&["qup"])));
        let out = v.checker_changed(2, 0, true); // W=3
        assert!(v.quorum_up);
        assert_eq!(out.last(), Some(&q_note(true)));
    }

    #[test]
    fn quorum_and_hysteresis_are_clamped() {
        let mut c = vs(vec![rs(1, 2)]);
        c.quorum = 5;
        c.hysteresis = 7;
        let v = VsState::new(&c);
        assert_eq!((v.quorum, v.hysteresis), (2, 1));
    }

    #[test]
    fn sorry_server_inhibit() {
        let mut c = vs(vec![rs(1, 1)]);
        c.sorry_server = Some(SorryServer {
            addr: sorry_addr(),
            inhibit: true,
        });
        let ss = |weight, edit: bool| {
            if edit {
                SetWeight {
                    vs: vs_key(),
                    dest: sorry_addr(),
                    weight,
                    sorry: true,
                }
            } else {
                AddDest {
                    vs: vs_key(),
                    dest: sorry_addr(),
                    weight,
                    sorry: true,
                }
            }
        };
        let mut v = VsState::new(&c);
        assert_eq!(v.start(false), vec![add(1, 1), ss(0, false)]);
        let out = v.checker_changed(0, 0, false);
        assert_eq!(out[3], ss(1, true));
        let out = v.checker_changed(0, 0, true);
        assert_eq!(out[2], ss(0, true));
        assert_eq!(out[3], add(1, 1));
    }

    #[test]
    fn alpha_start_without_and_with_sorry() {
        let mut r = rs(1, 1);
        r.checkers = vec![checker(true)];
        let mut r2 = rs(2, 1);
        r2.checkers = vec![checker(true)];
        r2.inhibit_on_failure = true;
        let mut v = VsState::new(&vs(vec![r.clone(), r2.clone()]));
        // Not added (inhibit: weight 0); quorum down but no sorry server: no notifier.
        assert_eq!(v.start(false), vec![add(2, 0)]);
        assert!(!v.quorum_up);
        // First success: added; quorum gained → quorum_up runs.
        assert_eq!(
            v.checker_changed(0, 0, true),
            vec![
                add(1, 1),
                cmd(&["up", "1"]),
                rs_note(1, true),
                cmd(&["qup"]),
                q_note(true)
            ]
        );

        let mut c = vs(vec![r, r2]);
        c.sorry_server = Some(SorryServer {
            addr: sorry_addr(),
            inhibit: false,
        });
        let mut v = VsState::new(&c);
        assert_eq!(
            v.start(false),
            vec![
                add(2, 0),
                AddDest {
                    vs: vs_key(),
                    dest: sorry_addr(),
                    weight: 1,
                    sorry: true
                },
                cmd(&["qdown"]),
                q_note(false)
            ]
        );
    }

    #[test]
    fn misc_dynamic_weights() {
        let mut v = VsState::new(&vs(vec![rs(1, 1), rs(2, 1)]));
        v.start(false);
        // exit 10 → weight 8.
        assert_eq!(v.dynamic_weight(0, 0, Some(8)), vec![edit(1, 8)]);
        assert_eq!(v.dynamic_weight(0, 0, Some(8)), vec![]);
        // exit 2 → weight 0 (alive, no new connections).
        assert_eq!(v.dynamic_weight(0, 0, Some(0)), vec![edit(1, 0)]);
        assert!(v.rs[0].alive);
        // exit 0 → configured weight.
        assert_eq!(v.dynamic_weight(0, 0, None), vec![edit(1, 1)]);
        v.dynamic_weight(0, 0, Some(253));
        // Failure removes the contribution; coming back uses the configured weight.
        v.checker_changed(0, 0, false);
        assert_eq!(v.rs[0].effective_weight(), 1);
        assert_eq!(v.checker_changed(0, 0, true)[0], add(1, 1));
    }

    #[test]
    fn agent_weights_scale_and_bound() {
        let mut r = rs(1, 10);
        r.checkers[0].kind = CheckKind::Agent(AgentCheck {
            connect: ConnectOpts::to("127.0.0.1:1".parse().unwrap()),
            send: None,
            min_weight: 2,
            max_weight: 15,
        });
        let mut v = VsState::new(&vs(vec![r, rs(2, 1)]));
        v.start(false);
        assert_eq!(v.agent_weight(0, 0, 50), vec![edit(1, 5)]);
        assert_eq!(v.agent_weight(0, 0, 50), vec![]);
        assert_eq!(v.agent_weight(0, 0, 1), vec![edit(1, 2)], "min_weight");
        assert_eq!(v.agent_weight(0, 0, 300), vec![edit(1, 15)], "max_weight");
        assert_eq!(v.agent_weight(0, 0, 0), vec![edit(1, 0)], "drain: 0");
        assert!(v.rs[0].alive, "drained, still installed");
        assert_eq!(v.agent_weight(0, 0, 100), vec![edit(1, 10)]);
        // A checker that is not an agent is left alone.
        assert_eq!(v.agent_weight(1, 0, 50), vec![]);
    }

    #[test]
    fn dynamic_weight_zero_loses_quorum() {
        let mut v = VsState::new(&vs(vec![rs(1, 1)]));
        v.start(false);
        let out = v.dynamic_weight(0, 0, Some(0));
        assert_eq!(out, vec![edit(1, 0), cmd(&["qdown"]), q_note(false)]);
    }

    #[test]
    fn shutdown_with_and_without_omega() {
        let mut c = vs(vec![rs(1, 1), rs(2, 1)]);
        let mut v = VsState::new(&c);
        v.start(false);
        v.checker_changed(1, 0, false);
        assert_eq!(v.shutdown(), vec![remove(1)]);
        c.omega = true;
        let mut v = VsState::new(&c);
        v.start(false);
        assert_eq!(
            v.shutdown(),
            vec![
                remove(1),
                cmd(&["down", "1"]),
                rs_note(1, false),
                remove(2),
                cmd(&["down", "2"]),
                rs_note(2, false),
                cmd(&["qdown"]),
                q_note(false)
            ]
        );
    }

    #[test]
    fn reload_keeps_state_and_applies_differences() {
        let c = vs(vec![rs(1, 1), rs(2, 1), rs(3, 1)]);
        let mut v = VsState::new(&c);
        v.start(false);
        v.checker_changed(1, 0, false); // RS 2 down
                                        // New config: RS 1 weight 4, RS 2 kept (still down), RS 3 gone, RS 4 new.
        let mut r1 = rs(1, 4);
        r1.notify_up = None;
        let c2 = vs(vec![r1, rs(2, 1), rs(4, 1)]);
        let keep = |up| Some(InheritedChecker { up, dynamic: 0 });
        let (n, out) = VsState::reload(&v, &c2, &[vec![keep(true)], vec![keep(false)], vec![None]]);
        assert_eq!(
            out,
            vec![
                DrainDest {
                    vs: vs_key(),
                    dest: addr(3),
                    sorry: false
                },
                edit(1, 4),
                add(4, 1),
            ]
        );
        assert!(!n.rs[1].alive && !n.rs[1].set);
        // Reloading the same config again changes nothing.
        let (n2, out) = VsState::reload(
            &n,
            &c2,
            &[vec![keep(true)], vec![keep(false)], vec![keep(true)]],
        );
        assert_eq!(out, vec![]);
        assert!(n2.quorum_up);
    }

    #[test]
    fn reload_removing_sorry_server_in_use_restores_pool() {
        let mut c = vs(vec![rs(1, 1), rs(2, 1)]);
        c.quorum = 2;
        c.sorry_server = Some(SorryServer {
            addr: sorry_addr(),
            inhibit: false,
        });
        let mut v = VsState::new(&c);
        v.start(false);
        v.checker_changed(0, 0, false);
        assert!(v.sorry_active);
        let mut c2 = c.clone();
        c2.sorry_server = None;
        c2.quorum = 1;
        let keep = |up| Some(InheritedChecker { up, dynamic: 0 });
        let (n, out) = VsState::reload(&v, &c2, &[vec![keep(false)], vec![keep(true)]]);
        assert_eq!(
            out,
            vec![
                DrainDest {
                    vs: vs_key(),
                    dest: sorry_addr(),
                    sorry: true
                },
                add(2, 1),
                cmd(&["qup"]),
                q_note(true)
            ]
        );
        assert!(!n.sorry_active && n.quorum_up);
    }
}
