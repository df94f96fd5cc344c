//! The VRRP driver task: owns every instance, feeds it packets, timers, link states and script
//! results, and carries out its actions (adverts, VIPs, GARP/NA, notifies). See the module
//! documentation of [`crate::vrrp`].

mod reload;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_vrrp::{
    Action, GroupAction, Instance, Notify, NotifyState, RxPacket, State, Subject, SyncGroup,
};
use tokio::sync::{mpsc, oneshot};

use super::exec;
use super::netlink::{self, Rtnl};
use super::setup::{self, GroupPlan, Plan, TrackSource};
use super::socket::{self, RawSocket};
use super::status::{InstanceDetail, InstanceStatus, StatusBoard};

/// How often link state is read for `track_interface` and the instances' own interfaces.
pub const LINK_POLL: Duration = Duration::from_millis(200);
/// Most packets handled per read batch (keeps one batch short).
const BATCH: usize = 64;

/// A running VRRP driver.
pub struct Handle {
    status: Arc<StatusBoard>,
    stop: Option<oneshot::Sender<()>>,
    reloads: mpsc::Sender<reload::Request>,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// The status board (for metrics).
    pub fn status(&self) -> Arc<StatusBoard> {
        self.status.clone()
    }

    /// Resign every instance (priority-0 adverts, VIPs removed, `notify_stop`) and wait for the
    /// driver to finish (bounded: 5 s) and for its notify scripts to run (bounded: 3 s).
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            tracing::error!("VRRP: driver did not stop within 5 s");
            self.task.abort();
        }
        exec::wait_notifies(Duration::from_secs(3)).await;
    }
}

/// Start the VRRP driver for every `vrrp_instance` in `cfg`, in the current network namespace.
/// Must be called inside a tokio runtime (with time, net, process and signal drivers). Returns
/// `Ok(None)` when the configuration has no `vrrp_instance`.
pub fn start(cfg: &rvs_config::Config) -> Result<Option<Handle>, String> {
    Ok(prepare(cfg)?.map(Prepared::start))
}

/// Set up the VRRP driver for every `vrrp_instance` in `cfg` without running it: the
/// configuration is checked, the sockets are open, and the status board already lists every
/// instance (INIT). rvsd attaches the board to its state before it loads the virtual servers,
/// so the packet plane never owns — answers ARP/ND for, announces — a VIP of an instance that
/// is not MASTER, not even in the moment before the driver runs. `Ok(None)` when the
/// configuration has no `vrrp_instance`.
pub fn prepare(cfg: &rvs_config::Config) -> Result<Option<Prepared>, String> {
    if cfg.vrrp_instances.is_empty() {
        return Ok(None);
    }
    let plan = setup::plan(cfg)?;
    let driver = Driver::new(plan)?;
    driver.publish();
    Ok(Some(Prepared { driver }))
}

/// A VRRP driver set up by [`prepare`], not running yet (dropping it changes nothing on the
/// host: no advert sent, no address touched).
pub struct Prepared {
    driver: Driver,
}

impl Prepared {
    /// The status board (every instance INIT until [`Prepared::start`]).
    pub fn status(&self) -> Arc<StatusBoard> {
        self.driver.status.clone()
    }

    /// Hold preemption (`rvs_vrrp::Instance::set_preempt_hold`) of every instance while
    /// `held` says so: rvsd passes its resync gate, so a restarted director does not take the
    /// VIP from a live MASTER before it has that MASTER's connections.
    pub fn hold_preempt_while(&mut self, held: PreemptHold) {
        self.driver.preempt_hold = Some(held);
    }

    /// Run the driver. Must be called inside a tokio runtime (with time, net, process and
    /// signal drivers).
    pub fn start(self) -> Handle {
        let status = self.driver.status.clone();
        let (tx, rx) = oneshot::channel();
        let (reloads, reload_rx) = mpsc::channel(4);
        let task = tokio::spawn(self.driver.run(rx, reload_rx));
        Handle {
            status,
            stop: Some(tx),
            reloads,
            task,
        }
    }
}

/// Whether preemption is held now (read before every advert is handled).
pub type PreemptHold = Arc<dyn Fn() -> bool + Send + Sync>;

/// Where an instance lives: a lone instance or a member of a sync group.
#[derive(Debug, Clone, Copy)]
struct Slot {
    unit: usize,
    member: usize,
}

enum Unit {
    Single(Instance),
    Group(Box<SyncGroup>, GroupPlan),
}

/// What an action is about.
enum Who {
    Instance(usize),
    Group(usize),
}

enum Event {
    Packet { sock: usize, data: socket::Received },
    Script { index: usize, ok: bool },
}

struct Driver {
    plan: Plan,
    units: Vec<Unit>,
    /// Instance id → slot.
    slots: Vec<Slot>,
    /// (unit, member) → instance id.
    ids: HashMap<(usize, usize), usize>,
    sockets: Vec<Arc<RawSocket>>,
    /// Instance id → socket index.
    sock_of: Vec<usize>,
    rtnl: Rtnl,
    fifos: Vec<exec::Fifo>,
    counters: Vec<rvs_vrrp::script::ScriptCounter>,
    link_up: HashMap<String, bool>,
    last_state: Vec<State>,
    last_priority: Vec<u8>,
    /// Instance id → when it entered its current state (for `rvsadm -L --vrrp`).
    state_since: Vec<Instant>,
    epoch: Instant,
    status: Arc<StatusBoard>,
    events_tx: mpsc::Sender<Event>,
    events: mpsc::Receiver<Event>,
    /// See [`Prepared::hold_preempt_while`].
    preempt_hold: Option<PreemptHold>,
    /// The hold last given to the instances.
    held: bool,
}

impl Driver {
    fn new(plan: Plan) -> Result<Driver, String> {
        let rtnl = Rtnl::open().map_err(|e| format!("rtnetlink: {e}"))?;
        let (sockets, sock_of) = open_sockets(&plan)?;
        // Units: sync groups, then lone instances.
        let (units, slots) = build_units(&plan, |id| {
            Instance::new(plan.instances[id].cfg.clone()).map_err(|e| e.to_string())
        })?;
        let ids = ids_of(&slots);
        let fifos = plan
            .fifos
            .iter()
            .map(|p| exec::Fifo::open(p))
            .collect::<Result<Vec<_>, _>>()?;
        let counters = plan
            .scripts
            .iter()
            .map(|s| rvs_vrrp::script::ScriptCounter::new(s.rise, s.fall, s.init_fail))
            .collect();
        let (events_tx, events) = mpsc::channel(1024);
        let n = plan.instances.len();
        let last_priority = plan.instances.iter().map(|i| i.cfg.priority).collect();
        Ok(Driver {
            plan,
            units,
            slots,
            ids,
            sockets,
            sock_of,
            rtnl,
            fifos,
            counters,
            link_up: HashMap::new(),
            last_state: vec![State::Init; n],
            last_priority,
            state_since: vec![Instant::now(); n],
            epoch: Instant::now(),
            status: Arc::new(StatusBoard::default()),
            events_tx,
            events,
            preempt_hold: None,
            held: false,
        })
    }
}

/// One raw socket per (interface, family), joined to the instances' multicast groups; and the
/// socket index of every instance.
fn open_sockets(plan: &Plan) -> Result<(Vec<Arc<RawSocket>>, Vec<usize>), String> {
    let mut sockets: Vec<Arc<RawSocket>> = Vec::new();
    let mut sock_of = Vec::new();
    for ip in &plan.instances {
        let v6 = ip.cfg.src_addr.is_ipv6();
        let i = match sockets
            .iter()
            .position(|s| s.ifname() == ip.ifname && s.is_v6() == v6)
        {
            Some(i) => i,
            None => {
                let s = if v6 {
                    RawSocket::open_v6(&ip.ifname, ip.ifindex, ip.cfg.unicast_ttl)
                } else {
                    RawSocket::open_v4(&ip.ifname, ip.ifindex)
                };
                sockets.push(Arc::new(
                    s.map_err(|e| format!("VRRP socket on {}: {e}", ip.ifname))?,
                ));
                sockets.len() - 1
            }
        };
        if !ip.cfg.is_unicast() {
            let g = ip.cfg.mcast_group;
            sockets[i]
                .join(g)
                .map_err(|e| format!("join {g} on {}: {e}", ip.ifname))?;
        }
        sock_of.push(i);
    }
    Ok((sockets, sock_of))
}

/// The units of `plan` (sync groups, then lone instances) and every instance's slot, with the
/// instances `make` returns.
fn build_units(
    plan: &Plan,
    mut make: impl FnMut(usize) -> Result<Instance, String>,
) -> Result<(Vec<Unit>, Vec<Slot>), String> {
    let mut units = Vec::new();
    let mut slots = vec![Slot { unit: 0, member: 0 }; plan.instances.len()];
    let mut grouped = HashSet::new();
    for g in &plan.groups {
        let mut members = Vec::new();
        for (m, &id) in g.members.iter().enumerate() {
            members.push(make(id)?);
            slots[id] = Slot {
                unit: units.len(),
                member: m,
            };
            grouped.insert(id);
        }
        let sg = if g.tracking_weight {
            SyncGroup::with_tracking_weight(&g.name, members)
        } else {
            SyncGroup::new(&g.name, members)
        }
        .map_err(|e| e.to_string())?;
        units.push(Unit::Group(Box::new(sg), g.clone()));
    }
    for (id, slot) in slots.iter_mut().enumerate() {
        if grouped.contains(&id) {
            continue;
        }
        *slot = Slot {
            unit: units.len(),
            member: 0,
        };
        units.push(Unit::Single(make(id)?));
    }
    Ok((units, slots))
}

/// (unit, member) → instance id.
fn ids_of(slots: &[Slot]) -> HashMap<(usize, usize), usize> {
    slots
        .iter()
        .enumerate()
        .map(|(id, s)| ((s.unit, s.member), id))
        .collect()
}

impl Driver {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn instance(&self, id: usize) -> &Instance {
        let s = self.slots[id];
        match &self.units[s.unit] {
            Unit::Single(i) => i,
            Unit::Group(g, _) => &g.members()[s.member],
        }
    }

    fn instance_mut(&mut self, id: usize) -> Option<&mut Instance> {
        let s = self.slots[id];
        match &mut self.units[s.unit] {
            Unit::Single(i) => Some(i),
            Unit::Group(g, _) => g.member_mut(s.member),
        }
    }

    // ----- inputs routed to the unit that owns the instance ----------------------------------

    fn set_interface_up(&mut self, id: usize, up: bool) {
        let now = self.now();
        let s = self.slots[id];
        match &mut self.units[s.unit] {
            Unit::Single(i) => i.set_interface_up(now, up),
            Unit::Group(g, _) => g.set_interface_up(now, s.member, up),
        }
    }

    fn set_tracker(&mut self, id: usize, t: usize, ok: bool) {
        let now = self.now();
        let s = self.slots[id];
        match &mut self.units[s.unit] {
            Unit::Single(i) => i.set_tracker(now, t, ok),
            Unit::Group(g, _) => g.set_tracker(now, s.member, t, ok),
        }
    }

    /// Give the instances the current preemption hold, if it changed.
    fn follow_preempt_hold(&mut self) {
        let held = self.preempt_hold.as_ref().is_some_and(|f| f());
        if held == self.held {
            return;
        }
        self.held = held;
        tracing::info!(
            "VRRP: preemption {} (connection resync {})",
            if held { "held" } else { "allowed" },
            if held { "running" } else { "ended" }
        );
        for u in &mut self.units {
            match u {
                Unit::Single(i) => i.set_preempt_hold(held),
                Unit::Group(g, _) => g.set_preempt_hold(held),
            }
        }
    }

    fn handle_packet(&mut self, id: usize, rx: &RxPacket<'_>) {
        self.follow_preempt_hold();
        let now = self.now();
        let s = self.slots[id];
        let r = match &mut self.units[s.unit] {
            Unit::Single(i) => i.handle_advert(now, rx),
            Unit::Group(g, _) => g.handle_advert(now, s.member, rx),
        };
        if let Err(reason) = r {
            tracing::debug!(
                "({}) advert from {} rejected: {reason}",
                self.plan.instances[id].cfg.name,
                rx.src
            );
        }
    }

    // ----- outputs ---------------------------------------------------------------------------

    /// Drain and perform every queued action of every unit.
    fn drain(&mut self) {
        for u in 0..self.units.len() {
            // Bounded: each action is performed once; the state machine queues a handful per
            // input.
            for _ in 0..10_000 {
                let next = match &mut self.units[u] {
                    Unit::Single(i) => i
                        .poll_action()
                        .map(|a| (Who::Instance(self.ids[&(u, 0)]), a)),
                    Unit::Group(g, _) => g.poll_action().map(|ga| match ga {
                        GroupAction::Member { index, action } => {
                            (Who::Instance(self.ids[&(u, index)]), action)
                        }
                        GroupAction::Group(n) => (Who::Group(u), Action::Notify(n)),
                    }),
                };
                let Some((who, action)) = next else { break };
                self.perform(who, action);
            }
        }
        self.log_transitions();
        self.publish();
    }

    fn perform(&mut self, who: Who, action: Action) {
        let id = match who {
            Who::Group(u) => {
                if let Action::Notify(n) = action {
                    self.notify_group(u, n);
                }
                return;
            }
            Who::Instance(id) => id,
        };
        let name = self.plan.instances[id].cfg.name.clone();
        match action {
            Action::SendAdvert { priority } => {
                let txs = match self.instance_mut(id).map(|i| i.encode_adverts(priority)) {
                    Some(Ok(t)) => t,
                    Some(Err(e)) => {
                        tracing::error!("({name}) cannot encode advert: {e}");
                        return;
                    }
                    None => return,
                };
                let sock = &self.sockets[self.sock_of[id]];
                for tx in txs {
                    if let Err(e) = sock.send(&tx.packet, tx.src, tx.dst) {
                        tracing::warn!("({name}) send advert to {}: {e}", tx.dst);
                    }
                }
            }
            Action::AddVips => {
                for a in self.plan.instances[id].addrs.clone() {
                    match self.rtnl.add_address(&a) {
                        Ok(()) => tracing::info!(
                            "({name}) added {}/{}{}",
                            a.addr,
                            a.prefix,
                            a.label
                                .as_deref()
                                .map(|l| format!(" label {l}"))
                                .unwrap_or_default()
                        ),
                        Err(e) => tracing::error!("({name}) cannot add {}: {e}", a.addr),
                    }
                }
                self.add_routes(id);
            }
            Action::RemoveVips => self.remove_vips(id),
            Action::Garp { rounds } => {
                let addrs = self.vip_targets(id, &self.plan.instances[id].addrs);
                self.garp(addrs, rounds);
            }
            Action::AnnounceSource => {
                let ip = &self.plan.instances[id];
                self.garp(vec![(ip.ifname.clone(), ip.cfg.src_addr)], 1);
            }
            Action::Notify(n) => self.notify_instance(id, n),
        }
    }

    /// `virtual_routes` then `virtual_rules` of instance `id` (after its addresses: a route
    /// may name one as `src`).
    fn add_routes(&mut self, id: usize) {
        use crate::keepalived::netconf::{add_route, add_rule};
        let ip = &self.plan.instances[id];
        let (name, routes, rules) = (ip.cfg.name.clone(), ip.routes.clone(), ip.rules.clone());
        for r in &routes {
            match add_route(&mut self.rtnl, r) {
                Ok(()) => tracing::info!("({name}) added route {}", r.text),
                Err(e) => tracing::error!("({name}) cannot add route {}: {e}", r.text),
            }
        }
        for r in &rules {
            match add_rule(&mut self.rtnl, r) {
                Ok(()) => tracing::info!("({name}) added rule {}", r.text),
                Err(e) => tracing::error!("({name}) cannot add rule {}: {e}", r.text),
            }
        }
    }

    /// The reverse of [`Self::add_routes`]: rules, then routes.
    fn remove_routes(&mut self, id: usize) {
        use crate::keepalived::netconf::{del_route, del_rule};
        let ip = &self.plan.instances[id];
        let (name, routes, rules) = (ip.cfg.name.clone(), ip.routes.clone(), ip.rules.clone());
        for r in &rules {
            match del_rule(&mut self.rtnl, r) {
                Ok(true) => tracing::info!("({name}) removed rule {}", r.text),
                Ok(false) => {}
                Err(e) => tracing::error!("({name}) cannot remove rule {}: {e}", r.text),
            }
        }
        for r in &routes {
            match del_route(&mut self.rtnl, r) {
                Ok(true) => tracing::info!("({name}) removed route {}", r.text),
                Ok(false) => {}
                Err(e) => tracing::error!("({name}) cannot remove route {}: {e}", r.text),
            }
        }
    }

    fn remove_vips(&mut self, id: usize) {
        self.remove_routes(id);
        let name = self.plan.instances[id].cfg.name.clone();
        for a in self.plan.instances[id].addrs.clone() {
            match self.rtnl.del_address(&a) {
                Ok(true) => tracing::info!("({name}) removed {}/{}", a.addr, a.prefix),
                Ok(false) => {}
                Err(e) => tracing::error!("({name}) cannot remove {}: {e}", a.addr),
            }
        }
    }

    /// `rounds` × (every address) gratuitous ARPs, spaced by `vrrp_garp_interval`, in a task of
    /// their own so a spaced burst does not hold up the protocol. Each address goes out of the
    /// interface it is configured on (`(interface, address)`, see [`garp_targets`]).
    /// Where to announce `addrs` of instance `id`: each out of its own interface.
    fn vip_targets(&self, id: usize, addrs: &[netlink::AddrSpec]) -> Vec<(String, IpAddr)> {
        let ip = &self.plan.instances[id];
        garp_targets(&ip.ifname, ip.ifindex, addrs, |i| {
            nix::net::if_::if_indextoname(i)
                .ok()
                .map(|n| n.to_string_lossy().into_owned())
        })
    }

    fn garp(&self, addrs: Vec<(String, IpAddr)>, rounds: u32) {
        let interval = self.plan.garp_interval;
        tokio::spawn(async move {
            // One sender per interface; the NA's router flag says whether that interface
            // forwards (keepalived reads the same sysctl).
            let mut senders: Vec<(String, rvs_packet_io::afpacket::Sender, bool)> = Vec::new();
            for (ifname, _) in &addrs {
                if senders.iter().any(|(n, ..)| n == ifname) {
                    continue;
                }
                match rvs_packet_io::afpacket::Sender::open(ifname) {
                    Ok(s) => {
                        let router = std::fs::read_to_string(format!(
                            "/proc/sys/net/ipv6/conf/{ifname}/forwarding"
                        ))
                        .map(|v| v.trim() == "1")
                        .unwrap_or(false);
                        senders.push((ifname.clone(), s, router));
                    }
                    Err(e) => tracing::warn!("gratuitous ARP on {ifname}: {e}"),
                }
            }
            for _ in 0..rounds.min(1000) {
                for (ifname, a) in &addrs {
                    let Some((_, sender, router)) = senders.iter_mut().find(|(n, ..)| n == ifname)
                    else {
                        continue;
                    };
                    let mac = sender.mac();
                    let r = match a {
                        IpAddr::V4(v4) => sender.send(&rvs_vrrp::garp::garp_frame(mac, *v4)),
                        IpAddr::V6(v6) => {
                            sender.send(&rvs_vrrp::garp::unsolicited_na_frame(mac, *v6, *router))
                        }
                    };
                    if let Err(e) = r {
                        tracing::warn!("gratuitous ARP for {a} on {ifname}: {e}");
                    }
                    if !interval.is_zero() {
                        tokio::time::sleep(interval).await;
                    }
                }
            }
        });
    }

    fn notify_instance(&mut self, id: usize, n: Notify) {
        let name = self.plan.instances[id].cfg.name.clone();
        let notify = self.plan.instances[id].notify.clone();
        self.run_notify(&notify, Subject::Instance, &name, n);
    }

    fn notify_group(&mut self, u: usize, n: Notify) {
        if let Unit::Group(_, gp) = &self.units[u] {
            let (name, notify) = (gp.name.clone(), gp.notify.clone());
            tracing::info!("({name}) Sync group entering {} state", n.state);
            self.run_notify(&notify, Subject::Group, &name, n);
        }
    }

    fn run_notify(
        &mut self,
        notify: &rvs_config::model::Notify,
        subject: Subject,
        name: &str,
        n: Notify,
    ) {
        let specific = match n.state {
            NotifyState::Master => notify.master.as_ref(),
            NotifyState::Backup => notify.backup.as_ref(),
            NotifyState::Fault => notify.fault.as_ref(),
            NotifyState::Stop => notify.stop.as_ref(),
            NotifyState::Deleted => notify.deleted.as_ref(),
            NotifyState::MasterRxLowerPri => notify.master_rx_lower_pri.as_ref(),
            _ => None,
        };
        let user = |s: &rvs_config::model::Script| {
            self.plan.global.as_ref().and_then(|g| g.script_identity(s))
        };
        if let Some(s) = specific {
            exec::spawn_notify(s.argv.clone(), user(s));
        }
        if n.state.runs_generic_script() {
            if let Some(s) = &notify.notify {
                let mut argv = s.argv.clone();
                argv.extend(n.script_args(subject, name));
                exec::spawn_notify(argv, user(s));
            }
        }
        let line = n.fifo_line(subject, name);
        for f in &mut self.fifos {
            f.write_line(&line);
        }
    }

    fn log_transitions(&mut self) {
        for id in 0..self.last_state.len() {
            let prio = self.instance(id).effective_priority();
            if prio != self.last_priority[id] {
                tracing::info!(
                    "({}) Changing effective priority from {} to {prio}",
                    self.plan.instances[id].cfg.name,
                    self.last_priority[id]
                );
                self.last_priority[id] = prio;
            }
            let st = self.instance(id).state();
            if st != self.last_state[id] {
                let i = self.instance(id);
                tracing::info!(
                    "({}) Entering {} STATE (priority {})",
                    i.config().name,
                    st.as_str(),
                    i.effective_priority()
                );
                self.last_state[id] = st;
                self.state_since[id] = Instant::now();
            }
        }
    }

    fn publish(&self) {
        let v = (0..self.slots.len())
            .map(|id| InstanceStatus::of(self.instance(id), &self.plan.instances[id].ifname))
            .collect();
        let d = (0..self.slots.len())
            .map(|id| {
                let group = match &self.units[self.slots[id].unit] {
                    Unit::Group(_, gp) => Some(gp.name.as_str()),
                    Unit::Single(_) => None,
                };
                InstanceDetail::of(self.instance(id), group, self.state_since[id])
            })
            .collect();
        self.status.publish_detailed(v, d);
    }

    // ----- periodic inputs -------------------------------------------------------------------

    /// Read link state of every interface that matters and report changes.
    fn poll_links(&mut self) {
        let mut names: Vec<String> = Vec::new();
        for ip in &self.plan.instances {
            names.push(ip.ifname.clone());
            for t in &ip.track {
                if let TrackSource::Interface(n) = t {
                    names.push(n.clone());
                }
            }
        }
        names.sort();
        names.dedup();
        for n in names {
            // A vanished interface is down.
            let up = self.rtnl.link(&n).map(|l| l.up).unwrap_or(false);
            if self.link_up.get(&n) == Some(&up) {
                continue;
            }
            if self.link_up.contains_key(&n) {
                tracing::info!("interface {n} is {}", if up { "up" } else { "down" });
            }
            self.link_up.insert(n.clone(), up);
            for id in 0..self.plan.instances.len() {
                let ip = &self.plan.instances[id];
                let own = ip.track_primary && ip.ifname == n;
                let trackers: Vec<usize> = ip
                    .track
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| matches!(t, TrackSource::Interface(x) if *x == n))
                    .map(|(k, _)| k)
                    .collect();
                if own {
                    self.set_interface_up(id, up);
                }
                for k in trackers {
                    self.set_tracker(id, k, up);
                }
            }
        }
    }

    fn script_result(&mut self, index: usize, ok: bool) {
        let Some(c) = self.counters.get_mut(index) else {
            return;
        };
        let Some(now_ok) = c.record(ok) else { return };
        tracing::info!(
            "VRRP_Script({}) {}",
            self.plan.scripts[index].name,
            if now_ok { "succeeded" } else { "failed" }
        );
        for id in 0..self.plan.instances.len() {
            let ks: Vec<usize> = self.plan.instances[id]
                .track
                .iter()
                .enumerate()
                .filter(|(_, t)| **t == TrackSource::Script(index))
                .map(|(k, _)| k)
                .collect();
            for k in ks {
                self.set_tracker(id, k, now_ok);
            }
        }
    }

    fn start_tasks(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        for (i, s) in self.sockets.iter().enumerate() {
            let s = s.clone();
            let tx = self.events_tx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match s.recv().await {
                        Ok(data) => {
                            if tx.send(Event::Packet { sock: i, data }).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!("VRRP receive on {}: {e}", s.ifname());
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }));
        }
        for (index, sp) in self.plan.scripts.iter().enumerate() {
            let sp = sp.clone();
            let tx = self.events_tx.clone();
            tasks.push(tokio::spawn(async move {
                let mut iv = tokio::time::interval(sp.interval.max(Duration::from_millis(10)));
                iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    iv.tick().await;
                    let ok = match exec::run(&sp.argv, sp.user.as_ref(), sp.timeout).await {
                        exec::Outcome::Exited(0) => true,
                        exec::Outcome::Exited(_) | exec::Outcome::Failed => false,
                        exec::Outcome::TimedOut => {
                            tracing::warn!("VRRP_Script({}) timed out", sp.name);
                            false
                        }
                    };
                    if tx.send(Event::Script { index, ok }).await.is_err() {
                        return;
                    }
                }
            }));
        }
        tasks
    }

    fn handle_batch(&mut self, first: Event) {
        let mut seen: HashSet<(usize, u8)> = HashSet::new();
        let mut ev = Some(first);
        for _ in 0..BATCH {
            let Some(e) = ev.take() else { break };
            match e {
                Event::Script { index, ok } => self.script_result(index, ok),
                Event::Packet { sock, data } => self.dispatch(sock, &data, &mut seen),
            }
            ev = self.events.try_recv().ok();
        }
        if let Some(e) = ev {
            // The batch is full: handle the one already taken out of the queue.
            match e {
                Event::Script { index, ok } => self.script_result(index, ok),
                Event::Packet { sock, data } => self.dispatch(sock, &data, &mut HashSet::new()),
            }
        }
    }

    /// Demultiplex one received packet by VRID to the instance on that socket's interface.
    fn dispatch(&mut self, sock: usize, data: &socket::Received, seen: &mut HashSet<(usize, u8)>) {
        let rx = match data.v6 {
            Some((src, dst, hops)) => RxPacket::from_ipv6_parts(src, dst, hops, &data.data),
            None if self.sockets[sock].is_v6() => return,
            None => match RxPacket::parse(&data.data) {
                Ok(rx) => rx,
                Err(_) => return,
            },
        };
        let Some(vrid) = rx.vrid() else { return };
        let Some(id) = (0..self.plan.instances.len())
            .find(|&id| self.sock_of[id] == sock && self.plan.instances[id].cfg.vrid == vrid)
        else {
            return;
        };
        // Our own adverts (possible with unicast to a local address) are not for us.
        if rx.src == self.plan.instances[id].cfg.src_addr {
            return;
        }
        // keepalived handles at most one advert per VRID per read batch.
        if !seen.insert((sock, vrid)) {
            return;
        }
        self.handle_packet(id, &rx);
    }

    fn next_deadline(&self) -> Option<Duration> {
        self.units
            .iter()
            .filter_map(|u| match u {
                Unit::Single(i) => i.poll_timeout(),
                Unit::Group(g, _) => g.poll_timeout(),
            })
            .min()
    }

    async fn run(
        mut self,
        mut stop: oneshot::Receiver<()>,
        mut reloads: mpsc::Receiver<reload::Request>,
    ) {
        // A VIP left behind by a killed predecessor must not be served while we are BACKUP.
        for id in 0..self.plan.instances.len() {
            self.remove_vips(id);
        }
        self.poll_links();
        // Scripts with init_fail start failed.
        for (index, sp) in self.plan.scripts.clone().iter().enumerate() {
            if sp.init_fail {
                for id in 0..self.plan.instances.len() {
                    let ks: Vec<usize> = self.plan.instances[id]
                        .track
                        .iter()
                        .enumerate()
                        .filter(|(_, t)| **t == TrackSource::Script(index))
                        .map(|(k, _)| k)
                        .collect();
                    for k in ks {
                        self.set_tracker(id, k, false);
                    }
                }
            }
        }
        self.follow_preempt_hold();
        let now = self.now();
        for u in &mut self.units {
            match u {
                Unit::Single(i) => i.start(now),
                Unit::Group(g, _) => g.start(now),
            }
        }
        self.drain();
        let mut tasks = self.start_tasks();
        let mut links = tokio::time::interval(LINK_POLL);
        links.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self
                .next_deadline()
                .map(|d| tokio::time::Instant::from_std(self.epoch + d));
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stop => break,
                _ = sleep => {
                    let now = self.now();
                    for u in &mut self.units {
                        match u {
                            Unit::Single(i) => {
                                if i.poll_timeout().is_some_and(|t| t <= now) {
                                    i.handle_timeout(now);
                                }
                            }
                            Unit::Group(g, _) => g.handle_timeout(now),
                        }
                    }
                }
                _ = links.tick() => self.poll_links(),
                Some(r) = reloads.recv() => {
                    let result = self.reload(r.plan);
                    if result.is_ok() {
                        // The readers and script runners belong to the old sockets and scripts.
                        for t in tasks.drain(..) {
                            t.abort();
                        }
                        tasks = self.start_tasks();
                    }
                    let _ = r.done.send(result);
                }
                ev = self.events.recv() => match ev {
                    Some(e) => self.handle_batch(e),
                    None => break,
                },
            }
            self.drain();
        }
        tracing::info!("VRRP: stopping (priority-0 adverts from every MASTER)");
        let now = self.now();
        for u in &mut self.units {
            match u {
                Unit::Single(i) => i.shutdown(now),
                Unit::Group(g, _) => g.shutdown(now),
            }
        }
        self.drain();
        for t in tasks {
            t.abort();
        }
    }
}

/// Where each VIP of an instance is announced: on the interface it is configured on
/// (`virtual_ipaddress … dev IF`), as keepalived does — a floating gateway on the server-side
/// interface must reach the real servers, not the clients on the instance's `interface`.
/// `name_of` maps an interface index to its name; the instance's own interface (`ifname`,
/// `ifindex`) is used when it fails.
fn garp_targets(
    ifname: &str,
    ifindex: u32,
    addrs: &[netlink::AddrSpec],
    name_of: impl Fn(u32) -> Option<String>,
) -> Vec<(String, IpAddr)> {
    addrs
        .iter()
        .map(|a| {
            let dev = if a.index == ifindex {
                None
            } else {
                name_of(a.index)
            };
            (dev.unwrap_or_else(|| ifname.to_string()), a.addr)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vips_are_announced_on_their_own_interface() {
        let spec = |index: u32, addr: &str| netlink::AddrSpec {
            index,
            addr: addr.parse().unwrap(),
            prefix: 24,
            label: None,
            broadcast: None,
            scope: netlink::parse_scope(None),
        };
        let addrs = [
            spec(2, "10.1.0.100"),
            spec(3, "10.2.0.1"),
            spec(9, "10.9.0.1"),
        ];
        let names = |i: u32| match i {
            2 => Some("eth0".to_string()),
            3 => Some("eth1".to_string()),
            _ => None,
        };
        let got = garp_targets("eth0", 2, &addrs, names);
        let want: Vec<(String, IpAddr)> = [
            ("eth0", "10.1.0.100"),
            ("eth1", "10.2.0.1"),
            // An index without a name (gone): the instance's interface.
            ("eth0", "10.9.0.1"),
        ]
        .iter()
        .map(|(d, a)| (d.to_string(), a.parse().unwrap()))
        .collect();
        assert_eq!(got, want);
    }
}
