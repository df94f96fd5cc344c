//! `vrrp_sync_group`: instances that move together (docs/internals/vrrp.md#configuration, keepalived's
//! `vrrp_sync.c`).
//!
//! Rules, as keepalived applies them:
//! * a member may only become MASTER when every member wants to (its master-down timer expired or
//!   it is already MASTER); then all BACKUP members go MASTER together;
//! * a member that leaves MASTER for BACKUP (higher-priority advert) takes the others with it;
//! * a member in FAULT puts the whole group in FAULT until every member's own fault clears.

use std::collections::VecDeque;
use std::time::Duration;

use crate::error::Error;
use crate::instance::{Action, Instance, State};
use crate::ip::RxPacket;
use crate::notify::{Notify, NotifyState};
use crate::rx::Reject;

/// Output of a [`SyncGroup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupAction {
    /// An action of member `index` (position in [`SyncGroup::members`]).
    Member {
        /// Member index.
        index: usize,
        /// Its action.
        action: Action,
    },
    /// A group notification (`GROUP "<name>" <STATE> 0`).
    Group(Notify),
}

/// A sync group owning its member instances.
#[derive(Debug, Clone)]
pub struct SyncGroup {
    name: String,
    members: Vec<Instance>,
    actions: VecDeque<GroupAction>,
    state: State,
    tracking_weight: bool,
}

impl SyncGroup {
    /// Hold or allow preemption for every member ([`Instance::set_preempt_hold`]).
    pub fn set_preempt_hold(&mut self, hold: bool) {
        for m in &mut self.members {
            m.set_preempt_hold(hold);
        }
    }

    /// Build a group; keepalived drops groups with fewer than 2 members, so this refuses them.
    /// Members' weighted trackers are dropped, as keepalived does without
    /// `sync_group_tracking_weight` (use [`SyncGroup::with_tracking_weight`] to keep them).
    pub fn new(name: &str, members: Vec<Instance>) -> Result<SyncGroup, Error> {
        Self::build(name, members, false)
    }

    /// Like [`SyncGroup::new`] with `sync_group_tracking_weight`: weighted trackers keep working.
    pub fn with_tracking_weight(name: &str, members: Vec<Instance>) -> Result<SyncGroup, Error> {
        Self::build(name, members, true)
    }

    fn build(
        name: &str,
        mut members: Vec<Instance>,
        tracking_weight: bool,
    ) -> Result<SyncGroup, Error> {
        if members.len() < 2 {
            return Err(Error::Config(format!(
                "Sync group {name} has only {} virtual router(s) - removing",
                members.len()
            )));
        }
        for m in &mut members {
            m.set_sync_member(true);
            if !tracking_weight {
                // Members are still in INIT here, so no transition can result.
                m.ignore_weighted_trackers(Duration::ZERO);
            }
        }
        Ok(SyncGroup {
            name: name.to_string(),
            members,
            actions: VecDeque::new(),
            state: State::Init,
            tracking_weight,
        })
    }

    /// Group name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The members, in configuration order.
    pub fn members(&self) -> &[Instance] {
        &self.members
    }

    /// The group's state: FAULT if any member is, MASTER if all are, INIT/STOP if all are, else
    /// BACKUP.
    pub fn state(&self) -> State {
        self.state
    }

    /// Start every member.
    pub fn start(&mut self, now: Duration) {
        let prev = self.states();
        for m in &mut self.members {
            m.start(now);
        }
        self.reconcile(now, &prev);
    }

    /// Feed a received packet to member `index` (the driver demultiplexes by VRID).
    pub fn handle_advert(
        &mut self,
        now: Duration,
        index: usize,
        rx: &RxPacket<'_>,
    ) -> Result<(), Reject> {
        let prev = self.states();
        let r = match self.members.get_mut(index) {
            Some(m) => m.handle_advert(now, rx),
            None => return Ok(()),
        };
        self.reconcile(now, &prev);
        r
    }

    /// Process due deadlines of every member.
    pub fn handle_timeout(&mut self, now: Duration) {
        let prev = self.states();
        for m in &mut self.members {
            if m.poll_timeout().is_some_and(|t| t <= now) {
                m.handle_timeout(now);
            }
        }
        self.reconcile(now, &prev);
    }

    /// Earliest deadline of any member.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.members.iter().filter_map(Instance::poll_timeout).min()
    }

    /// Interface state of member `index`.
    pub fn set_interface_up(&mut self, now: Duration, index: usize, up: bool) {
        let prev = self.states();
        if let Some(m) = self.members.get_mut(index) {
            m.set_interface_up(now, up);
        }
        self.reconcile(now, &prev);
    }

    /// Tracker `tracker` of member `index`.
    pub fn set_tracker(&mut self, now: Duration, index: usize, tracker: usize, ok: bool) {
        let prev = self.states();
        if let Some(m) = self.members.get_mut(index) {
            m.set_tracker(now, tracker, ok);
        }
        self.reconcile(now, &prev);
    }

    /// Shut every member down.
    pub fn shutdown(&mut self, now: Duration) {
        let prev = self.states();
        for m in &mut self.members {
            m.shutdown(now);
        }
        self.reconcile(now, &prev);
    }

    /// Removed from the configuration by a reload: every member resigns like at shutdown
    /// ([`Instance::delete`]: DELETED or FAULT notified).
    pub fn delete(&mut self, now: Duration, notify_deleted: bool) {
        let prev = self.states();
        for m in &mut self.members {
            m.delete(now, notify_deleted);
        }
        self.reconcile(now, &prev);
    }

    /// Whether weighted trackers keep working (`sync_group_tracking_weight`).
    pub fn tracking_weight(&self) -> bool {
        self.tracking_weight
    }

    /// Reload of member `index` with its identity unchanged ([`Instance::reconfigure`], with
    /// `tracker_ok` the current states of its new trackers); the
    /// group's rules apply to the result (weighted trackers dropped again unless
    /// `sync_group_tracking_weight`, a member's new fault faults the group). An out-of-range
    /// index is an error.
    pub fn reconfigure_member(
        &mut self,
        now: Duration,
        index: usize,
        cfg: crate::config::InstanceConfig,
        tracker_ok: &[bool],
    ) -> Result<(), Error> {
        let prev = self.states();
        let tracking_weight = self.tracking_weight;
        let m = self
            .members
            .get_mut(index)
            .ok_or_else(|| Error::Config(format!("sync group {}: no member {index}", self.name)))?;
        m.reconfigure(now, cfg, tracker_ok)?;
        if !tracking_weight {
            m.ignore_weighted_trackers(now);
        }
        self.reconcile(now, &prev);
        Ok(())
    }

    /// Next action, members' and the group's, in order.
    pub fn poll_action(&mut self) -> Option<GroupAction> {
        self.actions.pop_front()
    }

    /// Member `index` mutably, e.g. for [`Instance::encode_adverts`].
    pub fn member_mut(&mut self, index: usize) -> Option<&mut Instance> {
        self.members.get_mut(index)
    }

    fn states(&self) -> Vec<State> {
        self.members.iter().map(Instance::state).collect()
    }

    fn reconcile(&mut self, now: Duration, prev: &[State]) {
        // Each pass can only move members further in one direction (fault, backup, master), so
        // three passes settle it; the bound keeps a logic slip from looping forever.
        for _ in 0..4 {
            let before = self.states();
            let any_fault = self.members.iter().any(Instance::own_fault);
            for m in &mut self.members {
                m.set_group_fault(now, any_fault);
            }
            let dropped = prev
                .iter()
                .zip(&self.members)
                .any(|(p, m)| *p == State::Master && m.state() == State::Backup);
            if dropped {
                for m in &mut self.members {
                    m.force_backup(now);
                }
            }
            let ready = self.members.iter().all(|m| {
                m.state() == State::Master || (m.state() == State::Backup && m.wants_master())
            });
            if ready && self.members.iter().any(|m| m.state() == State::Backup) {
                for m in &mut self.members {
                    m.force_master(now);
                }
            }
            if self.states() == before {
                break;
            }
        }
        for (index, m) in self.members.iter_mut().enumerate() {
            while let Some(action) = m.poll_action() {
                self.actions
                    .push_back(GroupAction::Member { index, action });
            }
        }
        let states = self.states();
        let new = if states.contains(&State::Fault) {
            State::Fault
        } else if states.iter().all(|s| *s == State::Master) {
            State::Master
        } else if states.iter().all(|s| *s == State::Stopped) {
            State::Stopped
        } else if states.iter().all(|s| *s == State::Init) {
            State::Init
        } else {
            State::Backup
        };
        if new != self.state {
            self.state = new;
            let ns = match new {
                State::Master => Some(NotifyState::Master),
                State::Backup => Some(NotifyState::Backup),
                State::Fault => Some(NotifyState::Fault),
                State::Stopped => Some(NotifyState::Stop),
                State::Init => None,
            };
            if let Some(state) = ns {
                self.actions
                    .push_back(GroupAction::Group(Notify { state, priority: 0 }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InstanceConfig;
    use crate::instance::Transmit;
    use crate::wire::Version;
    use std::net::IpAddr;

    const T0: Duration = Duration::from_secs(50);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cfg(vrid: u8, prio: u8) -> InstanceConfig {
        let mut c = InstanceConfig::new(
            &format!("VI_{vrid}"),
            vrid,
            Version::V2,
            ip("10.0.0.2"),
            vec![ip(&format!("10.0.{vrid}.100"))],
        );
        c.priority = prio;
        c
    }

    fn group(p1: u8, p2: u8) -> SyncGroup {
        let m = vec![
            Instance::new(cfg(1, p1)).unwrap(),
            Instance::new(cfg(2, p2)).unwrap(),
        ];
        SyncGroup::new("G", m).unwrap()
    }

    fn drain(g: &mut SyncGroup) -> Vec<GroupAction> {
        std::iter::from_fn(|| g.poll_action()).collect()
    }

    fn group_notifies(a: &[GroupAction]) -> Vec<NotifyState> {
        a.iter()
            .filter_map(|a| match a {
                GroupAction::Group(n) => Some(n.state),
                GroupAction::Member { .. } => None,
            })
            .collect()
    }

    fn states(g: &SyncGroup) -> Vec<State> {
        g.members().iter().map(Instance::state).collect()
    }

    fn peer_advert(vrid: u8, prio: u8) -> Transmit {
        let mut c = cfg(vrid, prio.max(1));
        c.src_addr = ip("10.0.0.1");
        Instance::new(c)
            .unwrap()
            .encode_adverts(prio)
            .unwrap()
            .remove(0)
    }

    fn feed(g: &mut SyncGroup, now: Duration, index: usize, prio: u8) {
        let tx = peer_advert(index as u8 + 1, prio);
        g.handle_advert(now, index, &RxPacket::parse(&tx.packet).unwrap())
            .unwrap();
    }

    #[test]
    fn fewer_than_two_members_is_refused() {
        let e = SyncGroup::new("G", vec![Instance::new(cfg(1, 100)).unwrap()]).unwrap_err();
        assert!(e.to_string().contains("only 1 virtual router"));
    }

    #[test]
    fn members_become_master_together() {
        let mut g = group(100, 200);
        g.start(T0);
        assert_eq!(group_notifies(&drain(&mut g)), [NotifyState::Backup]);
        // VI_2 (200) times out first but has to wait for VI_1.
        let t2 = T0 + Duration::from_micros(3_218_750);
        assert_eq!(g.poll_timeout(), Some(t2));
        g.handle_timeout(t2);
        assert_eq!(states(&g), [State::Backup, State::Backup]);
        assert!(g.members()[1].wants_master());
        assert!(drain(&mut g).is_empty());
        let t1 = T0 + Duration::from_micros(3_609_375);
        g.handle_timeout(t1);
        assert_eq!(states(&g), [State::Master, State::Master]);
        let a = drain(&mut g);
        assert_eq!(group_notifies(&a), [NotifyState::Master]);
        for i in 0..2 {
            assert!(a.contains(&GroupAction::Member {
                index: i,
                action: Action::AddVips
            }));
        }
        assert_eq!(g.state(), State::Master);
    }

    #[test]
    fn a_heard_master_cancels_the_wish() {
        let mut g = group(100, 200);
        g.start(T0);
        let t2 = T0 + Duration::from_micros(3_218_750);
        g.handle_timeout(t2);
        assert!(g.members()[1].wants_master());
        feed(&mut g, t2 + Duration::from_millis(10), 1, 250);
        assert!(!g.members()[1].wants_master());
        g.handle_timeout(T0 + Duration::from_micros(3_609_375));
        assert_eq!(states(&g), [State::Backup, State::Backup]);
    }

    #[test]
    fn one_member_losing_mastership_takes_the_others() {
        let mut g = group(100, 100);
        g.start(T0);
        g.handle_timeout(T0 + Duration::from_micros(3_609_375));
        assert_eq!(states(&g), [State::Master, State::Master]);
        drain(&mut g);
        feed(&mut g, T0 + Duration::from_secs(4), 0, 150);
        assert_eq!(states(&g), [State::Backup, State::Backup]);
        let a = drain(&mut g);
        assert!(a.contains(&GroupAction::Member {
            index: 1,
            action: Action::RemoveVips
        }));
        assert_eq!(group_notifies(&a), [NotifyState::Backup]);
    }

    #[test]
    fn a_fault_faults_the_group_until_it_clears() {
        let mut g = group(100, 100);
        g.start(T0);
        g.handle_timeout(T0 + Duration::from_micros(3_609_375));
        drain(&mut g);
        let t = T0 + Duration::from_secs(5);
        g.set_interface_up(t, 1, false);
        assert_eq!(states(&g), [State::Fault, State::Fault]);
        let a = drain(&mut g);
        for i in 0..2 {
            assert!(a.contains(&GroupAction::Member {
                index: i,
                action: Action::SendAdvert { priority: 0 }
            }));
        }
        assert_eq!(group_notifies(&a), [NotifyState::Fault]);
        assert_eq!(g.poll_timeout(), None);
        g.set_interface_up(t + Duration::from_secs(1), 1, true);
        assert_eq!(states(&g), [State::Backup, State::Backup]);
        assert_eq!(group_notifies(&drain(&mut g)), [NotifyState::Backup]);
    }

    #[test]
    fn weighted_trackers_are_dropped_unless_tracking_weight() {
        let with_trackers = |vrid| {
            let mut c = cfg(vrid, 100);
            c.trackers = vec![
                crate::config::TrackerConfig {
                    weight: -50,
                    reverse: false,
                },
                crate::config::TrackerConfig {
                    weight: 0,
                    reverse: false,
                },
                crate::config::TrackerConfig {
                    weight: 20,
                    reverse: false,
                },
            ];
            Instance::new(c).unwrap()
        };
        let mut g = SyncGroup::new("G", vec![with_trackers(1), with_trackers(2)]).unwrap();
        g.start(T0);
        g.set_tracker(T0, 0, 0, false);
        assert_eq!(
            g.members()[0].effective_priority(),
            100,
            "weighted tracker dropped"
        );
        g.set_tracker(T0, 0, 1, false);
        assert_eq!(
            states(&g),
            [State::Fault, State::Fault],
            "weight 0 still faults"
        );

        let mut g =
            SyncGroup::with_tracking_weight("G", vec![with_trackers(1), with_trackers(2)]).unwrap();
        g.start(T0);
        assert_eq!(g.members()[0].effective_priority(), 120);
        g.set_tracker(T0, 0, 0, false);
        assert_eq!(g.members()[0].effective_priority(), 70);
    }

    #[test]
    fn shutdown_stops_every_member() {
        let mut g = group(100, 100);
        g.start(T0);
        g.handle_timeout(T0 + Duration::from_micros(3_609_375));
        drain(&mut g);
        g.shutdown(T0 + Duration::from_secs(6));
        assert_eq!(states(&g), [State::Stopped, State::Stopped]);
        assert_eq!(group_notifies(&drain(&mut g)), [NotifyState::Stop]);
    }

    #[test]
    fn reconfigured_member_keeps_the_group_master_and_deleted_group_resigns() {
        let mut g = group(150, 150);
        g.start(T0);
        let t = g.poll_timeout().unwrap();
        g.handle_timeout(t);
        assert_eq!(states(&g), vec![State::Master, State::Master]);
        drain(&mut g);
        g.reconfigure_member(t + Duration::from_millis(10), 1, cfg(2, 120), &[])
            .unwrap();
        assert_eq!(states(&g), vec![State::Master, State::Master]);
        assert_eq!(g.members()[1].base_priority(), 120);
        let a = drain(&mut g);
        assert!(group_notifies(&a).is_empty(), "{a:?}");
        assert!(a.contains(&GroupAction::Member {
            index: 1,
            action: Action::SendAdvert { priority: 120 }
        }));
        assert!(g.reconfigure_member(t, 2, cfg(3, 100), &[]).is_err());
        g.delete(t + Duration::from_millis(20), false);
        assert_eq!(states(&g), vec![State::Stopped, State::Stopped]);
        let a = drain(&mut g);
        for index in [0, 1] {
            assert!(a.contains(&GroupAction::Member {
                index,
                action: Action::SendAdvert { priority: 0 }
            }));
            assert!(a.contains(&GroupAction::Member {
                index,
                action: Action::RemoveVips
            }));
        }
    }
}
