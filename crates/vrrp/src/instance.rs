//! The state machine of one `vrrp_instance`, as keepalived 2.2.7 runs it (docs/internals/vrrp.md).
//!
//! Sans-IO: every method takes `now`, a [`Duration`] since an epoch the driver picks (use a
//! monotonic clock), queues [`Action`]s for the driver to perform ([`Instance::poll_action`]) and
//! leaves the next deadline in [`Instance::poll_timeout`]; the driver calls
//! [`Instance::handle_timeout`] when it passes.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use crate::config::{InitialState, InstanceConfig};
use crate::error::Error;
use crate::ip::{encode_ipv4, RxPacket};
use crate::notify::{Notify, NotifyState};
use crate::rx::{validate, Reject, RxCounters, ValidAdvert};
use crate::wire::{Advert, ChecksumMode, Version, HEADER_LEN, TYPE_ADVERTISEMENT};

/// VRRP state of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Configured, not started.
    Init,
    /// Listening for the master; takes over when the master-down timer expires.
    Backup,
    /// Owns the VIPs and advertises.
    Master,
    /// An interface or tracker with weight 0 is down; adverts are ignored.
    Fault,
    /// Shut down (terminal).
    Stopped,
}

impl State {
    /// keepalived's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
            State::Stopped => "STOP",
        }
    }
}

/// Something the driver must do, in queue order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send one advert with this priority to every destination (the multicast group, or each
    /// unicast peer). [`Instance::encode_adverts`] builds the packets.
    SendAdvert {
        /// Priority to advertise (0 = resigning).
        priority: u8,
    },
    /// Install the VIPs (and eVIPs, virtual routes/rules): entering MASTER.
    AddVips,
    /// Remove them: leaving MASTER.
    RemoveVips,
    /// Send `rounds` back-to-back rounds of gratuitous ARP / unsolicited NA, each round covering
    /// every VIP then every eVIP.
    Garp {
        /// Number of rounds.
        rounds: u32,
    },
    /// Send one GARP/NA for the unicast source address (a unicast instance leaving FAULT).
    AnnounceSource,
    /// Deliver a notification (scripts, FIFO).
    Notify(Notify),
}

/// One packet to send, built by [`Instance::encode_adverts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Source address.
    pub src: IpAddr,
    /// Destination (group or peer).
    pub dst: IpAddr,
    /// TTL / hop limit to send with.
    pub ttl: u8,
    /// IPv4: the whole packet including the IP header (for `IP_HDRINCL`). IPv6: the VRRP message
    /// with its checksum filled in (the kernel may recompute it with `IPV6_CHECKSUM`).
    pub packet: Vec<u8>,
}

/// Counters of one instance (for status output and metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Receive side, including the per-reason reject counts.
    pub rx: RxCounters,
    /// Adverts queued for sending (per [`Action::SendAdvert`], not per peer).
    pub adverts_sent: u64,
    /// Of which with priority 0.
    pub priority_zero_sent: u64,
    /// State transitions (any).
    pub transitions: u64,
    /// Times MASTER was entered.
    pub became_master: u64,
    /// Times MASTER was left.
    pub released_master: u64,
    /// Times FAULT was entered.
    pub fault_entered: u64,
}

#[derive(Debug, Clone, Copy)]
struct Tracker {
    weight: i32,
    reverse: bool,
    ok: bool,
    /// Dropped because the instance is in a sync group (see [`Instance::ignore_weighted_trackers`]).
    ignored: bool,
}

impl Tracker {
    /// OK after applying `reverse`.
    fn effective_ok(&self) -> bool {
        self.ok != self.reverse
    }
}

/// One VRRP instance.
#[derive(Debug, Clone)]
pub struct Instance {
    cfg: InstanceConfig,
    state: State,
    /// Base priority; an owner lowers it to 254 on an owner conflict (docs/internals/vrrp.md#states).
    base_priority: u8,
    effective_priority: u8,
    trackers: Vec<Tracker>,
    interface_up: bool,
    /// Fault imposed by a sync group because another member is in FAULT.
    group_fault: bool,
    sync_member: bool,
    /// Sync members wait in BACKUP with this set until the whole group may become MASTER.
    want_master: bool,
    /// Master_Adver_Interval in centiseconds.
    master_adver_int_cs: u16,
    /// BACKUP: master-down timer. MASTER: advert timer.
    main_deadline: Option<Duration>,
    preempt_time: Option<Duration>,
    /// Preemption held from outside (rvsd: until the connection resync after a start ended).
    preempt_hold: bool,
    garp_delayed: Option<(Duration, u32)>,
    garp_lower_delayed: Option<(Duration, u32)>,
    garp_refresh: Option<Duration>,
    master_addr: Option<IpAddr>,
    master_priority: u8,
    checksum_mode: ChecksumMode,
    ip_id: u16,
    actions: VecDeque<Action>,
    counters: Counters,
}

impl Instance {
    /// Create an instance in INIT. The configuration is validated and keepalived's fix-ups applied
    /// ([`InstanceConfig::normalized`]).
    pub fn new(cfg: InstanceConfig) -> Result<Instance, Error> {
        cfg.validate()?;
        let cfg = cfg.normalized();
        let trackers = cfg
            .trackers
            .iter()
            .map(|t| Tracker {
                weight: t.weight,
                reverse: t.reverse,
                ok: true,
                ignored: false,
            })
            .collect();
        let mut i = Instance {
            base_priority: cfg.priority,
            effective_priority: cfg.priority,
            trackers,
            interface_up: true,
            group_fault: false,
            sync_member: false,
            want_master: false,
            master_adver_int_cs: cfg.advert_int_cs,
            main_deadline: None,
            preempt_time: None,
            preempt_hold: false,
            garp_delayed: None,
            garp_lower_delayed: None,
            garp_refresh: None,
            master_addr: None,
            master_priority: 0,
            checksum_mode: cfg.checksum_mode,
            ip_id: 0,
            actions: VecDeque::new(),
            counters: Counters::default(),
            state: State::Init,
            cfg,
        };
        i.effective_priority = i.compute_priority();
        Ok(i)
    }

    // ----- accessors -------------------------------------------------------------------------

    /// The (normalized) configuration.
    pub fn config(&self) -> &InstanceConfig {
        &self.cfg
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Effective priority (base + tracker weights, clamped to 1..254; 255 for an owner).
    pub fn effective_priority(&self) -> u8 {
        self.effective_priority
    }

    /// Base priority (the configured one, or 254 after an owner conflict).
    pub fn base_priority(&self) -> u8 {
        self.base_priority
    }

    /// The master we last accepted an advert from, and its priority.
    pub fn master(&self) -> Option<(IpAddr, u8)> {
        self.master_addr.map(|a| (a, self.master_priority))
    }

    /// Master_Adver_Interval (v3: learned from the master; v2: own `advert_int`).
    pub fn master_adver_int(&self) -> Duration {
        Duration::from_millis(10 * u64::from(self.master_adver_int_cs))
    }

    /// The checksum variant in use for sending v3/IPv4 (may switch to the old unicast one).
    pub fn checksum_mode(&self) -> ChecksumMode {
        self.checksum_mode
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether a sync-group member is waiting for its group to become MASTER.
    pub fn wants_master(&self) -> bool {
        self.want_master
    }

    /// Skew_Time (docs/internals/vrrp.md#timers): v2 `(256 − P) / 256` s; v3 `(256 − P) × M / 256`, in whole µs.
    pub fn skew_time(&self) -> Duration {
        let p = 256 - u64::from(self.effective_priority);
        match self.cfg.version {
            Version::V2 => Duration::from_micros(p * 1_000_000 / 256),
            Version::V3 => {
                Duration::from_micros(p * u64::from(self.master_adver_int_cs) * 625 / 16)
            }
        }
    }

    /// Master_Down_Interval = `down_timer_adverts × M + Skew_Time`.
    pub fn master_down_interval(&self) -> Duration {
        self.master_adver_int() * self.cfg.down_timer_adverts + self.skew_time()
    }

    // ----- sans-IO plumbing ------------------------------------------------------------------

    /// Next action for the driver, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest pending deadline; call [`Instance::handle_timeout`] once it has passed.
    pub fn poll_timeout(&self) -> Option<Duration> {
        [
            self.main_deadline,
            self.garp_delayed.map(|g| g.0),
            self.garp_lower_delayed.map(|g| g.0),
            self.garp_refresh,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Build the packets for an [`Action::SendAdvert`]: one per destination, IPv4 with its header
    /// (the per-instance IP ID counter starts at 1 and skips 0, as keepalived's does).
    pub fn encode_adverts(&mut self, priority: u8) -> Result<Vec<Transmit>, Error> {
        let advert = Advert {
            version: self.cfg.version,
            packet_type: TYPE_ADVERTISEMENT,
            vrid: self.cfg.vrid,
            priority,
            auth_or_reserved: match self.cfg.version {
                Version::V2 => self.cfg.auth_type(),
                Version::V3 => 0,
            },
            adver_int: self.cfg.wire_interval(),
            addresses: self.cfg.vips.clone(),
            auth_data: self.cfg.auth_data(),
        };
        let (dsts, ttl): (Vec<IpAddr>, u8) = if self.cfg.is_unicast() {
            (
                self.cfg.unicast_peers.iter().map(|p| p.addr).collect(),
                self.cfg.unicast_ttl,
            )
        } else {
            (vec![self.cfg.mcast_group], 255)
        };
        let src = self.cfg.src_addr;
        let mut out = Vec::with_capacity(dsts.len());
        for dst in dsts {
            let packet = match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    self.ip_id = self.ip_id.wrapping_add(1);
                    if self.ip_id == 0 {
                        self.ip_id = 1;
                    }
                    encode_ipv4(&advert, s, d, self.ip_id, ttl, self.checksum_mode)?
                }
                _ => {
                    let mut v = Vec::with_capacity(advert.buffer_len(self.cfg.family()));
                    advert.emit(&mut v, src, dst, self.checksum_mode)?;
                    v
                }
            };
            out.push(Transmit {
                src,
                dst,
                ttl,
                packet,
            });
        }
        Ok(out)
    }

    // ----- inputs ----------------------------------------------------------------------------

    /// Start: INIT → BACKUP (FAULT if a fault is already present). An address owner whose wanted
    /// state is MASTER becomes MASTER at once (keepalived arms a 1 µs timer; here it happens in
    /// this call, or at once on the group's decision for a sync member).
    pub fn start(&mut self, now: Duration) {
        if self.state != State::Init {
            return;
        }
        self.master_adver_int_cs = self.cfg.advert_int_cs;
        if self.fault_active() {
            self.enter_fault(now);
        } else if self.owner_wants_master() && !self.preempt_hold {
            self.owner_takeover(now);
        } else {
            self.enter_backup(now);
        }
    }

    /// Feed a received packet for this instance's VRID. Returns the rejection reason if it was
    /// invalid (already counted). Packets received in INIT/FAULT/STOP are ignored (`Ok`).
    pub fn handle_advert(&mut self, now: Duration, rx: &RxPacket<'_>) -> Result<(), Reject> {
        self.counters.rx.received += 1;
        if !matches!(self.state, State::Backup | State::Master) {
            self.counters.rx.ignored_state += 1;
            return Ok(());
        }
        let check_vips = self.state == State::Master
            || !(self.cfg.skip_check_adv_addr && self.master_addr == Some(rx.src));
        match validate(&self.cfg, rx, check_vips, self.checksum_mode) {
            Err(r) => {
                self.counters.rx.count(r.kind());
                // keepalived quirk (docs/internals/vrrp.md#states, capture-verified): a MASTER restarts its advert timer
                // after *any* packet for its VRID, even a rejected one, so two split-brain masters
                // starve each other's adverts. Copied for wire-identical behaviour.
                // Packets too short to carry a VRID never reach an instance in keepalived (the
                // dispatcher drops them), so they do not count as "for its VRID".
                let for_us = rx.vrrp.len() >= HEADER_LEN
                    && !matches!(r, Reject::Vrid { .. } | Reject::Family);
                if self.state == State::Master && for_us {
                    self.restart_advert_timer(now);
                }
                Err(r)
            }
            Ok(v) => {
                self.counters.rx.accepted += 1;
                if v.old_unicast_checksum {
                    self.checksum_mode = ChecksumMode::OldUnicast;
                }
                if v.priority == 0 {
                    self.counters.rx.priority_zero += 1;
                }
                match self.state {
                    State::Backup => self.backup_rx(now, v),
                    State::Master => self.master_rx(now, v),
                    _ => {}
                }
                Ok(())
            }
        }
    }

    /// Process every deadline that is due at `now`.
    pub fn handle_timeout(&mut self, now: Duration) {
        if let Some((t, rounds)) = self.garp_delayed {
            if t <= now {
                self.garp_delayed = None;
                if self.state == State::Master {
                    self.push(Action::Garp { rounds });
                }
            }
        }
        if let Some((t, rounds)) = self.garp_lower_delayed {
            if t <= now {
                self.garp_lower_delayed = None;
                if self.state == State::Master {
                    self.push(Action::Garp { rounds });
                }
            }
        }
        if let Some(t) = self.garp_refresh {
            if t <= now && self.state == State::Master {
                self.push(Action::Garp {
                    rounds: self.cfg.garp.master_refresh_repeat,
                });
                self.garp_refresh = Some(now + self.cfg.garp.master_refresh);
            }
        }
        let Some(t) = self.main_deadline else { return };
        if t > now {
            return;
        }
        match self.state {
            State::Master => {
                self.send_advert(self.effective_priority);
                self.main_deadline = Some(now + self.cfg.advert_int());
            }
            State::Backup => {
                if self.sync_member {
                    // The group decides (all members must want MASTER); keep waiting meanwhile.
                    self.want_master = true;
                    self.main_deadline = Some(now + self.master_down_interval());
                } else {
                    self.enter_master(now);
                }
            }
            _ => self.main_deadline = None,
        }
    }

    /// The instance's interface went up or down (down = FAULT).
    pub fn set_interface_up(&mut self, now: Duration, up: bool) {
        self.interface_up = up;
        self.reevaluate(now);
    }

    /// A tracked object (index into [`InstanceConfig::trackers`]) is now OK (`true`) or failed.
    /// Out-of-range indexes are ignored.
    pub fn set_tracker(&mut self, now: Duration, index: usize, ok: bool) {
        if let Some(t) = self.trackers.get_mut(index).filter(|t| !t.ignored) {
            t.ok = ok;
            self.reevaluate(now);
        }
    }

    /// Shutdown (SIGTERM): a MASTER sends a priority-0 advert and removes its VIPs; STOP is
    /// notified in any state.
    pub fn shutdown(&mut self, _now: Duration) {
        self.stop_with(NotifyState::Stop);
    }

    /// Removed from the configuration by a reload: like [`Instance::shutdown`], but notified as
    /// DELETED when `notify_deleted` is configured, else as FAULT (keepalived's choice, docs/internals/vrrp.md#notifications).
    pub fn delete(&mut self, _now: Duration, notify_deleted: bool) {
        self.stop_with(if notify_deleted {
            NotifyState::Deleted
        } else {
            NotifyState::Fault
        });
    }

    /// Reload (SIGHUP) of an instance whose identity (name, interface, VRID, family, version)
    /// is unchanged: take the new configuration — priority, `advert_int`, VIPs, trackers,
    /// preemption, notify flags — and keep the state, the master last heard, the running timers
    /// and the counters, as keepalived keeps a MASTER a MASTER across a reload (docs/internals/vrrp.md#reload).
    ///
    /// `tracker_ok` holds the current state of the new configuration's tracked objects, by
    /// index (missing entries are OK), so the new priority is right from the first advert. A
    /// MASTER advertises at once (with its new priority, so a higher backup can preempt it); a
    /// BACKUP keeps its down timer (shifted by the change of skew), so a raised priority takes
    /// over through ordinary preemption: the next lower-priority advert is discarded and the
    /// timer runs out. Adding or removing the VIPs of a MASTER is the driver's job (it knows the
    /// old and the new address lists). A configuration that does not validate changes nothing.
    pub fn reconfigure(
        &mut self,
        now: Duration,
        cfg: InstanceConfig,
        tracker_ok: &[bool],
    ) -> Result<(), Error> {
        cfg.validate()?;
        if (cfg.vrid, cfg.version, cfg.src_addr.is_ipv6())
            != (self.cfg.vrid, self.cfg.version, self.cfg.src_addr.is_ipv6())
        {
            return Err(Error::Config(format!(
                "({}) VRID, version or address family changed: not the same instance",
                cfg.name
            )));
        }
        let cfg = cfg.normalized();
        let old_skew = self.skew_time();
        let old_priority = self.effective_priority;
        self.trackers = cfg
            .trackers
            .iter()
            .enumerate()
            .map(|(k, t)| Tracker {
                weight: t.weight,
                reverse: t.reverse,
                ok: tracker_ok.get(k).copied().unwrap_or(true),
                ignored: false,
            })
            .collect();
        self.base_priority = cfg.priority;
        if cfg.checksum_mode != self.cfg.checksum_mode {
            self.checksum_mode = cfg.checksum_mode;
        }
        self.cfg = cfg;
        self.effective_priority = self.compute_priority();
        match self.state {
            State::Master => {
                // A MASTER always advertises its own interval.
                self.master_adver_int_cs = self.cfg.advert_int_cs;
                self.send_advert(self.effective_priority);
                self.main_deadline = Some(now + self.cfg.advert_int());
                if old_priority != self.effective_priority && self.cfg.notify_priority_changes {
                    self.notify(NotifyState::MasterPriority);
                }
            }
            State::Backup => {
                if self.cfg.version == Version::V2 {
                    // v2 never learns the master's interval: it is the configured one.
                    self.master_adver_int_cs = self.cfg.advert_int_cs;
                }
                if let Some(t) = self.main_deadline {
                    let new = (t + self.skew_time()).saturating_sub(old_skew);
                    self.main_deadline = Some(new.max(now));
                }
                if old_priority != self.effective_priority && self.cfg.notify_priority_changes {
                    self.notify(NotifyState::BackupPriority);
                }
            }
            _ => {}
        }
        self.follow_fault(now);
        Ok(())
    }

    fn stop_with(&mut self, report: NotifyState) {
        if self.state == State::Stopped {
            return;
        }
        if self.state == State::Master {
            self.send_advert(0);
            self.push(Action::RemoveVips);
            self.counters.released_master += 1;
        }
        self.set_state(State::Stopped);
        self.clear_timers();
        self.notify(report);
    }

    /// Hold or allow preemption from outside the protocol: while held, a BACKUP treats a
    /// lower-priority MASTER's adverts like a higher one's (it stays BACKUP and its master-down
    /// timer restarts), and an address owner starting up waits in BACKUP instead of taking over
    /// at once. A MASTER that falls silent is still replaced when the down timer expires. rvsd
    /// holds it while a restarted director resyncs its connection table.
    pub fn set_preempt_hold(&mut self, hold: bool) {
        self.preempt_hold = hold;
    }

    /// Whether preemption is held ([`Instance::set_preempt_hold`]).
    pub fn preempt_held(&self) -> bool {
        self.preempt_hold
    }

    // ----- sync-group hooks ------------------------------------------------------------------

    /// Mark the instance as a sync-group member: its master-down expiry only sets
    /// [`Instance::wants_master`] and the [`crate::SyncGroup`] decides.
    pub fn set_sync_member(&mut self, member: bool) {
        self.sync_member = member;
    }

    /// Drop trackers with a non-zero weight, as keepalived does for sync-group members unless
    /// `sync_group_tracking_weight` is set (`(I) ignoring tracked script S with weights due to G`).
    /// Weight-0 trackers still put the instance in FAULT.
    pub fn ignore_weighted_trackers(&mut self, now: Duration) {
        for t in &mut self.trackers {
            if t.weight != 0 {
                t.ignored = true;
            }
        }
        self.reevaluate(now);
    }

    /// Whether the instance's own conditions (interface, weight-0 trackers) put it in FAULT,
    /// ignoring a fault imposed by its group.
    pub fn own_fault(&self) -> bool {
        !self.interface_up
            || self
                .trackers
                .iter()
                .any(|t| t.weight == 0 && !t.effective_ok())
    }

    /// Group decision: BACKUP → MASTER.
    pub fn force_master(&mut self, now: Duration) {
        if self.state == State::Backup {
            self.enter_master(now);
        }
    }

    /// Group decision: MASTER → BACKUP (another member lost mastership).
    pub fn force_backup(&mut self, now: Duration) {
        if self.state == State::Master {
            self.leave_master_to_backup(now);
        }
    }

    /// Group decision: impose or lift a fault because another member is in FAULT.
    pub fn set_group_fault(&mut self, now: Duration, fault: bool) {
        if self.group_fault != fault {
            self.group_fault = fault;
            self.reevaluate(now);
        }
    }

    // ----- internals -------------------------------------------------------------------------

    fn push(&mut self, a: Action) {
        self.actions.push_back(a);
    }

    fn notify(&mut self, state: NotifyState) {
        let priority = self.effective_priority;
        self.push(Action::Notify(Notify { state, priority }));
    }

    fn send_advert(&mut self, priority: u8) {
        self.counters.adverts_sent += 1;
        if priority == 0 {
            self.counters.priority_zero_sent += 1;
        }
        self.push(Action::SendAdvert { priority });
    }

    fn set_state(&mut self, s: State) {
        if self.state != s {
            self.state = s;
            self.counters.transitions += 1;
        }
    }

    fn clear_timers(&mut self) {
        self.main_deadline = None;
        self.preempt_time = None;
        self.garp_delayed = None;
        self.garp_lower_delayed = None;
        self.garp_refresh = None;
    }

    fn restart_advert_timer(&mut self, now: Duration) {
        if !self.cfg.lower_prio_no_advert {
            self.main_deadline = Some(now + self.cfg.advert_int());
        }
    }

    fn owner_wants_master(&self) -> bool {
        self.base_priority == 255 && self.cfg.initial_state == InitialState::Master
    }

    fn fault_active(&self) -> bool {
        self.group_fault || self.own_fault()
    }

    fn compute_priority(&self) -> u8 {
        if self.base_priority == 255 {
            return 255;
        }
        let adj: i32 = self
            .trackers
            .iter()
            .filter(|t| !t.ignored)
            .map(|t| match (t.weight, t.effective_ok()) {
                (w, true) if w > 0 => w,
                (w, false) if w < 0 => w,
                _ => 0,
            })
            .sum();
        (i32::from(self.base_priority) + adj).clamp(1, 254) as u8
    }

    /// Apply a change of interface/tracker/group state: priority and FAULT.
    fn reevaluate(&mut self, now: Duration) {
        let old_skew = self.skew_time();
        let old = self.effective_priority;
        self.effective_priority = self.compute_priority();
        if old != self.effective_priority {
            match self.state {
                State::Backup => {
                    // docs/internals/vrrp.md#timers: a priority change in BACKUP shifts the running down timer by the
                    // difference in skew.
                    if let Some(t) = self.main_deadline {
                        let new = (t + self.skew_time()).saturating_sub(old_skew);
                        self.main_deadline = Some(new.max(now));
                    }
                    if self.cfg.notify_priority_changes {
                        self.notify(NotifyState::BackupPriority);
                    }
                }
                State::Master if self.cfg.notify_priority_changes => {
                    self.notify(NotifyState::MasterPriority)
                }
                _ => {}
            }
        }
        self.follow_fault(now);
    }

    /// Enter or leave FAULT as the tracked objects now say.
    fn follow_fault(&mut self, now: Duration) {
        let fault = self.fault_active();
        match self.state {
            State::Backup | State::Master if fault => self.enter_fault(now),
            State::Fault if !fault => self.leave_fault(now),
            _ => {}
        }
    }

    fn enter_backup(&mut self, now: Duration) {
        self.set_state(State::Backup);
        self.want_master = false;
        self.preempt_time = None;
        self.main_deadline = Some(now + self.master_down_interval());
        self.notify(NotifyState::Backup);
    }

    fn owner_takeover(&mut self, now: Duration) {
        if self.sync_member {
            // Let the group decide; an owner is ready at once.
            self.set_state(State::Backup);
            self.want_master = true;
            self.main_deadline = Some(now + self.master_down_interval());
            self.notify(NotifyState::Backup);
        } else {
            self.enter_master(now);
        }
    }

    /// `vrrp_state_goto_master`: advert first (so the old master drops its VIPs before our
    /// GARPs), then VIPs, GARP/NA, notify.
    fn enter_master(&mut self, now: Duration) {
        self.want_master = false;
        self.preempt_time = None;
        // A MASTER always advertises its own interval.
        self.master_adver_int_cs = self.cfg.advert_int_cs;
        self.send_advert(self.effective_priority);
        self.set_state(State::Master);
        self.counters.became_master += 1;
        self.master_addr = None;
        self.push(Action::AddVips);
        let g = self.cfg.garp;
        if !self.cfg.vips.is_empty() {
            let rounds = if g.min_garp { 1 } else { g.master_repeat };
            if rounds > 0 {
                self.push(Action::Garp { rounds });
            }
            if !g.min_garp && !g.master_delay.is_zero() && g.master_repeat > 0 {
                self.garp_delayed = Some((now + g.master_delay, g.master_repeat));
            }
        }
        if !g.master_refresh.is_zero() && g.master_refresh_repeat > 0 {
            self.garp_refresh = Some(now + g.master_refresh);
        }
        self.notify(NotifyState::Master);
        self.main_deadline = Some(now + self.cfg.advert_int());
    }

    fn leave_master_to_backup(&mut self, now: Duration) {
        self.push(Action::RemoveVips);
        self.counters.released_master += 1;
        self.garp_delayed = None;
        self.garp_lower_delayed = None;
        self.garp_refresh = None;
        self.enter_backup(now);
    }

    fn enter_fault(&mut self, _now: Duration) {
        if self.state == State::Master {
            // Leaving MASTER for FAULT: resign with priority 0 so the backup takes over after
            // Skew_Time, and drop the VIPs.
            self.send_advert(0);
            self.push(Action::RemoveVips);
            self.counters.released_master += 1;
        }
        self.set_state(State::Fault);
        self.want_master = false;
        self.counters.fault_entered += 1;
        self.clear_timers();
        self.notify(NotifyState::Fault);
    }

    fn leave_fault(&mut self, now: Duration) {
        self.master_adver_int_cs = self.cfg.advert_int_cs;
        self.master_addr = None;
        if self.cfg.is_unicast() {
            // Refresh the peer's neighbour cache for our unicast source address.
            self.push(Action::AnnounceSource);
        }
        if self.owner_wants_master() {
            self.owner_takeover(now);
        } else {
            self.enter_backup(now);
        }
    }

    /// v3: take the master's advertised interval as Master_Adver_Interval. A zero interval (not
    /// something keepalived sends) is ignored rather than collapsing the down timer to the skew.
    fn adopt_interval(&mut self, interval_cs: u16) {
        if self.cfg.version == Version::V3 && interval_cs != 0 {
            self.master_adver_int_cs = interval_cs;
        }
    }

    /// BACKUP receive processing (docs/internals/vrrp.md#states).
    fn backup_rx(&mut self, now: Duration, v: ValidAdvert) {
        let p = v.priority;
        let me = self.effective_priority;
        if p == 0 {
            // The master resigned: take over after Skew_Time only.
            self.main_deadline = Some(now + self.skew_time());
            return;
        }
        let delay = self.cfg.preempt_delay;
        let preempt_held = !delay.is_zero()
            && match self.preempt_time {
                None => true,
                Some(t) => t > now,
            };
        if !self.cfg.preempt || p >= me || preempt_held || self.preempt_hold {
            self.adopt_interval(v.interval_cs);
            self.master_addr = Some(v.src);
            self.master_priority = p;
            self.want_master = false;
            if !delay.is_zero() {
                if p >= me {
                    self.preempt_time = None;
                } else if self.preempt_time.is_none() {
                    self.preempt_time = Some(now + delay);
                }
            }
            self.main_deadline = Some(now + self.master_down_interval());
        }
        // else: lower priority with preemption allowed — discarded, and the timer is *not*
        // restarted, so we take over when it expires (observed).
    }

    /// MASTER receive processing (docs/internals/vrrp.md#states).
    fn master_rx(&mut self, now: Duration, v: ValidAdvert) {
        let p = v.priority;
        let own = self.cfg.src_addr;
        if p == 0 {
            self.send_advert(self.effective_priority);
            self.main_deadline = Some(now + self.cfg.advert_int());
            return;
        }
        let higher = |me: u8| p > me || (p == me && ip_cmp_key(&v.src) > ip_cmp_key(&own));
        if self.cfg.higher_prio_send_advert && higher(self.effective_priority) {
            self.send_advert(self.effective_priority);
        }
        if p == 255 && self.effective_priority == 255 && v.src != own {
            // keepalived 2.2.7: "CONFIGURATION ERROR: local instance and a remote instance are
            // both configured as address owner, please fix - reducing local priority".
            self.base_priority = 254;
            self.effective_priority = self.compute_priority();
        }
        let me = self.effective_priority;
        if v.src == own && p == me {
            // Our own advert looped back (keepalived only warns).
            self.restart_advert_timer(now);
            return;
        }
        if higher(me) {
            self.adopt_interval(v.interval_cs);
            self.master_addr = Some(v.src);
            self.master_priority = p;
            // No priority-0 advert in this case.
            self.leave_master_to_backup(now);
            return;
        }
        // Lower priority (or equal with a lower address): keepalived re-asserts itself, which the
        // RFCs do not do (strict mode / lower_prio_no_advert turns it off).
        if !self.cfg.lower_prio_no_advert {
            self.send_advert(me);
            self.main_deadline = Some(now + self.cfg.advert_int());
        }
        let g = self.cfg.garp;
        if !self.cfg.vips.is_empty() && g.lower_prio_repeat > 0 {
            let rounds = if g.min_garp { 1 } else { g.lower_prio_repeat };
            self.push(Action::Garp { rounds });
            if !g.min_garp && !g.lower_prio_delay.is_zero() {
                self.garp_lower_delayed = Some((now + g.lower_prio_delay, g.lower_prio_repeat));
            }
        }
        self.notify(NotifyState::MasterRxLowerPri);
    }
}

/// Numeric big-endian comparison key of an address (IPv4 32-bit, IPv6 128-bit).
fn ip_cmp_key(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(*v)),
        IpAddr::V6(v) => u128::from(*v),
    }
}

#[cfg(test)]
mod tests;
