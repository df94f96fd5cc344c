//! Reload (SIGHUP) of the VRRP driver: keepalived's `clear_diff_vrrp` (docs/internals/vrrp.md#reload) as far as it is safe.
//!
//! * An instance is the same across a reload when its name, interface, VRID, address family and
//!   version are: it keeps its state, the master it follows, its timers and counters, and takes
//!   the new priority, `advert_int`, VIPs, trackers, notify scripts ([`Instance::reconfigure`]).
//!   A MASTER advertises its new priority at once, drops the VIPs the file no longer has and adds
//!   (and announces) the new ones; a BACKUP with a raised priority preempts through its down
//!   timer.
//! * A sync group is kept only when its name, `sync_group_tracking_weight` and its members (the
//!   same instances in the same order) are; otherwise its members leave and start again, since
//!   the group's joint state has no meaning for a different set of instances.
//! * Removed instances resign like at shutdown (priority-0 advert from a MASTER, VIPs removed),
//!   notified as DELETED with `notify_deleted`, else FAULT (keepalived's choice); new instances
//!   start in their initial state.
//! * Everything that can fail (the new configuration's validation, sockets, FIFOs) happens before
//!   the first running instance is touched: a failed reload leaves VRRP as it was.
//! * Sockets, FIFOs and the reader / script tasks are replaced; `vrrp_script` results carry over
//!   for a script with the same name and command, and link states carry over, so that a reload
//!   does not briefly pretend that a failed object is fine.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use rvs_vrrp::script::ScriptCounter;
use rvs_vrrp::{Instance, State, Version};
use tokio::sync::{mpsc, oneshot};

use super::{build_units, ids_of, open_sockets, Driver, Handle, Unit};
use crate::vrrp::setup::{self, InstancePlan, Plan, TrackSource};

/// A reload handed to the driver task.
pub(super) struct Request {
    /// The new configuration's plan.
    pub plan: Plan,
    /// The outcome: a one-line summary, or why nothing changed.
    pub done: oneshot::Sender<Result<String, String>>,
}

/// What makes an instance "the same" across a reload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    name: String,
    ifname: String,
    vrid: u8,
    v6: bool,
    version: Version,
}

fn identity(ip: &InstancePlan) -> Identity {
    Identity {
        name: ip.cfg.name.clone(),
        ifname: ip.ifname.clone(),
        vrid: ip.cfg.vrid,
        v6: ip.cfg.src_addr.is_ipv6(),
        version: ip.cfg.version,
    }
}

/// The current state of `ip`'s tracked objects, by tracker index: known link states and
/// declared script results; unknown ones are OK, as at start-up.
fn tracker_states(
    ip: &InstancePlan,
    link_up: &HashMap<String, bool>,
    counters: &[ScriptCounter],
) -> Vec<bool> {
    ip.track
        .iter()
        .map(|t| match t {
            TrackSource::Interface(n) => link_up.get(n).copied().unwrap_or(true),
            TrackSource::Script(s) => counters
                .get(*s)
                .and_then(ScriptCounter::declared)
                .unwrap_or(true),
        })
        .collect()
}

impl Handle {
    /// Apply a new configuration to the running instances (see the module documentation).
    /// Returns a one-line summary; on error nothing changed.
    pub async fn reload(&self, cfg: &rvs_config::Config) -> Result<String, String> {
        let plan = setup::plan(cfg)?;
        let (done, answer) = oneshot::channel();
        self.reloads
            .send(Request { plan, done })
            .await
            .map_err(|_| "the VRRP driver is not running".to_string())?;
        answer
            .await
            .map_err(|_| "the VRRP driver stopped during the reload".to_string())?
    }

    /// SIGHUP: re-read `path` and [`Handle::reload`] it, logging the outcome. A file that does
    /// not load keeps the running instances.
    pub async fn reload_file(&self, path: &Path, config_id: Option<String>) {
        let opts = rvs_config::CheckOptions {
            config_id,
            check_interfaces: true,
        };
        // Off the runtime (see crate::off_runtime), then the same verdict as rvs_config::load.
        let loaded = crate::off_runtime::check_config(path, &opts)
            .await
            .and_then(|r| {
                r.into_result(&path.display().to_string())
                    .map_err(|e| e.to_string())
            });
        let cfg = match loaded {
            Ok(cfg) => cfg,
            Err(e) => {
                tracing::error!(
                    "SIGHUP: VRRP keeps the running instances: {}: {e}",
                    path.display()
                );
                return;
            }
        };
        match self.reload(&cfg).await {
            Ok(summary) => {
                tracing::info!("SIGHUP: VRRP reloaded from {}: {summary}", path.display())
            }
            Err(e) => tracing::error!("SIGHUP: VRRP keeps the running instances: {e}"),
        }
    }
}

impl Driver {
    /// Replace the running configuration by `plan` (see the module documentation). The caller
    /// restarts the reader and script tasks after a success.
    pub(super) fn reload(&mut self, plan: Plan) -> Result<String, String> {
        // 1. Everything that can fail, before any running instance is touched. Building fresh
        // instances validates every new configuration.
        let (mut units, slots) = build_units(&plan, |id| {
            Instance::new(plan.instances[id].cfg.clone()).map_err(|e| e.to_string())
        })?;
        let (sockets, sock_of) = open_sockets(&plan)?;
        let fifos = plan
            .fifos
            .iter()
            .map(|p| crate::vrrp::exec::Fifo::open(p))
            .collect::<Result<Vec<_>, _>>()?;
        let now = self.now();

        // 2. Which old unit each new unit continues.
        let old_ids: HashMap<Identity, usize> = self
            .plan
            .instances
            .iter()
            .enumerate()
            .map(|(id, ip)| (identity(ip), id))
            .collect();
        let old_id_of = |new_id: usize| old_ids.get(&identity(&plan.instances[new_id])).copied();
        let mut reuse: Vec<Option<usize>> = vec![None; units.len()];
        for (nu, unit) in units.iter().enumerate() {
            reuse[nu] = match unit {
                Unit::Single(_) => {
                    let new_id = slots.iter().position(|s| s.unit == nu && s.member == 0);
                    new_id
                        .and_then(old_id_of)
                        .map(|old| self.slots[old].unit)
                        .filter(|&ou| matches!(self.units[ou], Unit::Single(_)))
                }
                Unit::Group(_, gp) => {
                    let ids: Option<Vec<usize>> =
                        gp.members.iter().map(|&m| old_id_of(m)).collect();
                    ids.and_then(|ids| {
                        let ou = self.slots[*ids.first()?].unit;
                        match &self.units[ou] {
                            Unit::Group(g, old_gp)
                                if old_gp.name == gp.name
                                    && g.tracking_weight() == gp.tracking_weight
                                    && old_gp.members == ids =>
                            {
                                Some(ou)
                            }
                            _ => None,
                        }
                    })
                }
            };
        }

        // 3. Old units that do not continue resign, with the old plan's addresses and scripts.
        let kept: std::collections::HashSet<usize> = reuse.iter().flatten().copied().collect();
        let mut removed = 0;
        for ou in 0..self.units.len() {
            if kept.contains(&ou) {
                continue;
            }
            match &mut self.units[ou] {
                Unit::Single(i) => {
                    let id = self.ids[&(ou, 0)];
                    removed += 1;
                    i.delete(now, self.plan.instances[id].notify.deleted.is_some());
                }
                Unit::Group(g, gp) => {
                    removed += gp.members.len();
                    let deleted = gp
                        .members
                        .iter()
                        .any(|&id| self.plan.instances[id].notify.deleted.is_some());
                    g.delete(now, deleted);
                }
            }
        }
        self.drain();

        // 4. Continuing units take their new configuration, with the current states of their
        // tracked objects; a MASTER's VIPs follow the file. Script results carry over for a
        // script with the same name, command and rise/fall.
        let counters: Vec<ScriptCounter> = plan
            .scripts
            .iter()
            .map(|s| {
                self.plan
                    .scripts
                    .iter()
                    .position(|o| {
                        o.name == s.name
                            && o.argv == s.argv
                            && o.user == s.user
                            && o.rise == s.rise
                            && o.fall == s.fall
                    })
                    .and_then(|k| self.counters.get(k).copied())
                    .unwrap_or_else(|| {
                        rvs_vrrp::script::ScriptCounter::new(s.rise, s.fall, s.init_fail)
                    })
            })
            .collect();
        let mut old_units: Vec<Option<Unit>> = std::mem::take(&mut self.units)
            .into_iter()
            .map(Some)
            .collect();
        let mut announce: Vec<(usize, Vec<crate::vrrp::netlink::AddrSpec>)> = Vec::new();
        let mut old_of_new: Vec<Option<usize>> = vec![None; plan.instances.len()];
        for (nu, ou) in reuse.iter().enumerate() {
            let Some(ou) = *ou else { continue };
            let Some(mut old) = old_units[ou].take() else {
                continue;
            };
            let members: Vec<usize> = match &units[nu] {
                Unit::Single(_) => slots
                    .iter()
                    .position(|s| s.unit == nu)
                    .into_iter()
                    .collect(),
                Unit::Group(_, gp) => gp.members.clone(),
            };
            for (m, &new_id) in members.iter().enumerate() {
                let old_id = self.ids[&(ou, m)];
                old_of_new[new_id] = Some(old_id);
                let cfg = plan.instances[new_id].cfg.clone();
                let ok = tracker_states(&plan.instances[new_id], &self.link_up, &counters);
                let (r, master) = match &mut old {
                    Unit::Single(i) => (i.reconfigure(now, cfg, &ok), i.state() == State::Master),
                    Unit::Group(g, _) => (
                        g.reconfigure_member(now, m, cfg, &ok),
                        g.members().get(m).map(Instance::state) == Some(State::Master),
                    ),
                };
                if let Err(e) = r {
                    // Not expected (the configuration validated above and the identity matched);
                    // a refused reconfiguration changed nothing, so the instance runs on as it was.
                    tracing::error!("({}) reload: {e}", plan.instances[new_id].cfg.name);
                }
                if master {
                    let old_addrs = &self.plan.instances[old_id].addrs;
                    let new_addrs = &plan.instances[new_id].addrs;
                    for a in old_addrs.iter().filter(|a| !new_addrs.contains(a)) {
                        match self.rtnl.del_address(a) {
                            Ok(_) => tracing::info!(
                                "({}) reload: removed {}/{}",
                                plan.instances[new_id].cfg.name,
                                a.addr,
                                a.prefix
                            ),
                            Err(e) => tracing::error!("cannot remove {}: {e}", a.addr),
                        }
                    }
                    let added: Vec<_> = new_addrs
                        .iter()
                        .filter(|a| !old_addrs.contains(a))
                        .cloned()
                        .collect();
                    if !added.is_empty() {
                        announce.push((new_id, added));
                    }
                    self.reload_routes(
                        &self.plan.instances[old_id].clone(),
                        &plan.instances[new_id],
                    );
                }
            }
            if let (Unit::Group(_, gp_old), Unit::Group(_, gp_new)) = (&mut old, &units[nu]) {
                *gp_old = gp_new.clone();
            }
            units[nu] = old;
        }

        // 5. Per-instance bookkeeping, scripts, then the swap.
        let n = plan.instances.len();
        let mut last_state = vec![State::Init; n];
        let mut last_priority: Vec<u8> = plan.instances.iter().map(|i| i.cfg.priority).collect();
        let mut state_since = vec![Instant::now(); n];
        for (new_id, old) in old_of_new.iter().enumerate() {
            if let Some(old) = *old {
                last_state[new_id] = self.last_state[old];
                last_priority[new_id] = self.last_priority[old];
                state_since[new_id] = self.state_since[old];
            }
        }
        let kept_instances = old_of_new.iter().flatten().count();
        let started = n - kept_instances;
        self.plan = plan;
        self.ids = ids_of(&slots);
        self.slots = slots;
        self.units = units;
        // New instances start without the preemption hold: give it to them again.
        if self.held {
            for u in &mut self.units {
                match u {
                    Unit::Single(i) => i.set_preempt_hold(true),
                    Unit::Group(g, _) => g.set_preempt_hold(true),
                }
            }
        }
        self.sockets = sockets;
        self.sock_of = sock_of;
        self.fifos = fifos;
        self.counters = counters;
        self.last_state = last_state;
        self.last_priority = last_priority;
        self.state_since = state_since;
        // Events queued by the old readers and scripts name old indexes: a new channel drops
        // them, and the old tasks end when their sends fail.
        let (tx, rx) = mpsc::channel(1024);
        self.events_tx = tx;
        self.events = rx;

        // 6. New instances learn the known link and script states before they start (kept
        // ones already have them: reporting an unchanged state again changes nothing).
        for id in 0..self.plan.instances.len() {
            let ip = &self.plan.instances[id];
            let own_down = ip.track_primary && self.link_up.get(&ip.ifname) == Some(&false);
            let failed: Vec<usize> = tracker_states(ip, &self.link_up, &self.counters)
                .iter()
                .enumerate()
                .filter(|(_, ok)| !**ok)
                .map(|(k, _)| k)
                .collect();
            if own_down {
                self.set_interface_up(id, false);
            }
            for k in failed {
                self.set_tracker(id, k, false);
            }
        }
        for u in &mut self.units {
            match u {
                Unit::Single(i) => i.start(now),
                Unit::Group(g, _) => g.start(now),
            }
        }
        for (id, addrs) in announce {
            let name = self.plan.instances[id].cfg.name.clone();
            for a in &addrs {
                match self.rtnl.add_address(a) {
                    Ok(()) => tracing::info!("({name}) reload: added {}/{}", a.addr, a.prefix),
                    Err(e) => tracing::error!("({name}) cannot add {}: {e}", a.addr),
                }
            }
            let rounds = self.plan.instances[id].cfg.garp.master_repeat.max(1);
            let targets = self.vip_targets(id, &addrs);
            self.garp(targets, rounds);
        }
        self.drain();
        Ok(format!(
            "{kept_instances} instance(s) kept, {started} started, {removed} removed"
        ))
    }
}

impl Driver {
    /// A MASTER instance kept by a reload: its `virtual_routes`/`virtual_rules` that are gone
    /// are removed and the new ones added (the addresses are handled alike above).
    fn reload_routes(&mut self, old: &InstancePlan, new: &InstancePlan) {
        use crate::keepalived::netconf::{add_route, add_rule, del_route, del_rule};
        let name = &new.cfg.name;
        for r in old.rules.iter().filter(|r| !new.rules.contains(r)) {
            if let Err(e) = del_rule(&mut self.rtnl, r) {
                tracing::error!("({name}) reload: cannot remove rule {}: {e}", r.text);
            }
        }
        for r in old.routes.iter().filter(|r| !new.routes.contains(r)) {
            if let Err(e) = del_route(&mut self.rtnl, r) {
                tracing::error!("({name}) reload: cannot remove route {}: {e}", r.text);
            }
        }
        for r in new.routes.iter().filter(|r| !old.routes.contains(r)) {
            match add_route(&mut self.rtnl, r) {
                Ok(()) => tracing::info!("({name}) reload: added route {}", r.text),
                Err(e) => tracing::error!("({name}) reload: cannot add route {}: {e}", r.text),
            }
        }
        for r in new.rules.iter().filter(|r| !old.rules.contains(r)) {
            match add_rule(&mut self.rtnl, r) {
                Ok(()) => tracing::info!("({name}) reload: added rule {}", r.text),
                Err(e) => tracing::error!("({name}) reload: cannot add rule {}: {e}", r.text),
            }
        }
    }
}
