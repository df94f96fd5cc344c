//! The VRRP driver's published status: the [`StatusBoard`] (per instance state, priorities,
//! transitions, adverts), rendered into rvsd's Prometheus metrics and answered to
//! `rvsadm -L --vrrp` by [`answer`].

use crate::lock::lock;
use crate::published::Doorbell;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use rvs_control::model::{Family, VrrpInstanceEntry, VrrpRejects, VrrpState};
use rvs_control::proto::{Payload, Response};
use rvs_vrrp::Instance;

/// One instance as shown in metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    /// Instance name.
    pub name: String,
    /// Interface.
    pub interface: String,
    /// VRID.
    pub vrid: u8,
    /// `INIT`, `BACKUP`, `MASTER`, `FAULT`, `STOP`.
    pub state: &'static str,
    /// Effective priority.
    pub priority: u8,
    /// Configured (base) priority.
    pub base_priority: u8,
    /// State transitions.
    pub transitions: u64,
    /// Times MASTER was entered.
    pub became_master: u64,
    /// Adverts sent (per advert, not per unicast peer).
    pub adverts_sent: u64,
    /// Of which priority 0.
    pub priority_zero_sent: u64,
    /// Packets received for this VRID.
    pub adverts_received: u64,
    /// Of which accepted.
    pub adverts_accepted: u64,
    /// Of which rejected by validation.
    pub adverts_rejected: u64,
    /// Received with priority 0.
    pub priority_zero_received: u64,
    /// The addresses the instance advertises (and installs while MASTER): the packet plane
    /// answers ARP/ND for them only while this instance is MASTER.
    pub vips: Vec<std::net::IpAddr>,
}

impl InstanceStatus {
    pub(super) fn of(i: &Instance, ifname: &str) -> InstanceStatus {
        let c = i.counters();
        InstanceStatus {
            name: i.config().name.clone(),
            interface: ifname.to_string(),
            vrid: i.config().vrid,
            state: i.state().as_str(),
            priority: i.effective_priority(),
            base_priority: i.base_priority(),
            transitions: c.transitions,
            became_master: c.became_master,
            adverts_sent: c.adverts_sent,
            priority_zero_sent: c.priority_zero_sent,
            adverts_received: c.rx.received,
            adverts_accepted: c.rx.accepted,
            adverts_rejected: c.rx.rejected_total(),
            priority_zero_received: c.rx.priority_zero,
            vips: i.config().vips.clone(),
        }
    }
}

/// What `rvsadm -L --vrrp` shows of an instance beyond [`InstanceStatus`] (kept apart so that
/// the metrics' record stays small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceDetail {
    /// VRRP version, 2 or 3.
    pub version: u8,
    /// IPv6 adverts.
    pub ipv6: bool,
    /// `advert_int` in centiseconds.
    pub advert_int_cs: u16,
    /// Rejected adverts by reason (`RejectKind::name`), nonzero counts only.
    pub rejects: Vec<(&'static str, u64)>,
    /// Received adverts with priority 0.
    pub priority_zero_received: u64,
    /// The `vrrp_sync_group` the instance is a member of.
    pub sync_group: Option<String>,
    /// When the instance entered its current state.
    pub since: Instant,
}

impl InstanceDetail {
    pub(super) fn of(i: &Instance, sync_group: Option<&str>, since: Instant) -> InstanceDetail {
        let rx = &i.counters().rx;
        InstanceDetail {
            version: i.config().version.number(),
            ipv6: i.config().src_addr.is_ipv6(),
            advert_int_cs: i.config().advert_int_cs,
            rejects: rvs_vrrp::RejectKind::ALL
                .iter()
                .map(|k| (k.name(), rx.rejected(*k)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            priority_zero_received: rx.priority_zero,
            sync_group: sync_group.map(str::to_string),
            since,
        }
    }
}

#[derive(Debug, Default)]
struct Board {
    instances: Vec<InstanceStatus>,
    /// Parallel to `instances` when the driver published them; empty otherwise.
    details: Vec<InstanceDetail>,
}

/// The driver's published status, read by the metrics endpoint, the packet plane and the
/// control socket.
#[derive(Debug, Default)]
pub struct StatusBoard {
    board: Mutex<Board>,
    epoch: std::sync::atomic::AtomicU64,
    /// Rung whenever the epoch moves, so followers (the packet plane's keeper) wake on a
    /// transition instead of polling the epoch.
    bells: Mutex<Vec<std::sync::Weak<Doorbell>>>,
}

impl StatusBoard {
    /// A copy of every instance's status.
    pub fn snapshot(&self) -> Vec<InstanceStatus> {
        lock(&self.board).instances.clone()
    }

    /// A copy of every instance's status with its details (`None` for a status published
    /// without them).
    pub fn detailed(&self) -> Vec<(InstanceStatus, Option<InstanceDetail>)> {
        let b = lock(&self.board);
        b.instances
            .iter()
            .enumerate()
            .map(|(k, s)| (s.clone(), b.details.get(k).cloned()))
            .collect()
    }

    /// Publish statuses without details (tests that stand in for the driver).
    #[cfg(test)]
    pub(crate) fn publish(&self, v: Vec<InstanceStatus>) {
        self.publish_detailed(v, Vec::new());
    }

    /// Publish statuses with their details (`d` parallel to `v`, or empty).
    pub(crate) fn publish_detailed(&self, v: Vec<InstanceStatus>, d: Vec<InstanceDetail>) {
        let mut b = lock(&self.board);
        let cur = &b.instances;
        // A reload can change an instance's VIPs without a state change: that moves them too.
        let moved = cur.len() != v.len()
            || cur
                .iter()
                .zip(&v)
                .any(|(a, b)| a.state != b.state || a.vips != b.vips);
        b.instances = v;
        b.details = d;
        drop(b);
        if moved {
            self.epoch
                .fetch_add(1, std::sync::atomic::Ordering::Release);
            lock(&self.bells).retain(|b| match b.upgrade() {
                Some(bell) => {
                    bell.ring();
                    true
                }
                None => false,
            });
        }
    }

    /// Ring `bell` on every change of [`StatusBoard::epoch`] from now on (held weakly: a
    /// follower that goes away is forgotten). Subscribing twice is harmless.
    pub fn follow(&self, bell: &std::sync::Arc<Doorbell>) {
        let mut bells = lock(&self.bells);
        let w = std::sync::Arc::downgrade(bell);
        if !bells.iter().any(|b| b.ptr_eq(&w)) {
            bells.push(w);
        }
    }

    /// Changes whenever an instance changes state, so that the packet plane knows when to
    /// re-read which VIPs it owns.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// VIPs of instances that are not MASTER (and that no MASTER instance also holds): a
    /// director must not answer ARP/ND for them, or it would steal the VIP from the peer.
    pub fn standby_vips(&self) -> std::collections::HashSet<std::net::IpAddr> {
        let v = self.snapshot();
        let master: std::collections::HashSet<std::net::IpAddr> = v
            .iter()
            .filter(|i| i.state == "MASTER")
            .flat_map(|i| i.vips.iter().copied())
            .collect();
        v.iter()
            .filter(|i| i.state != "MASTER")
            .flat_map(|i| i.vips.iter().copied())
            .filter(|a| !master.contains(a))
            .collect()
    }

    /// Append the `rvs_vrrp_*` metric families (Prometheus text format) to `out`.
    pub fn render_metrics(&self, out: &mut String) {
        let v = self.snapshot();
        if v.is_empty() {
            return;
        }
        let labels = |s: &InstanceStatus| {
            format!(
                "instance=\"{}\",interface=\"{}\",vrid=\"{}\"",
                s.name.replace('\\', "\\\\").replace('"', "\\\""),
                s.interface.replace('\\', "\\\\").replace('"', "\\\""),
                s.vrid
            )
        };
        let _ = writeln!(
            out,
            "# HELP rvs_vrrp_state 1 for the state the VRRP instance is in.\n# TYPE rvs_vrrp_state gauge"
        );
        for s in &v {
            for st in ["INIT", "BACKUP", "MASTER", "FAULT", "STOP"] {
                let _ = writeln!(
                    out,
                    "rvs_vrrp_state{{{},state=\"{st}\"}} {}",
                    labels(s),
                    u8::from(s.state == st)
                );
            }
        }
        type Get = fn(&InstanceStatus) -> u64;
        let series: [(&str, &str, &str, Get); 10] = [
            ("priority", "gauge", "Effective priority.", |s| {
                u64::from(s.priority)
            }),
            ("base_priority", "gauge", "Configured priority.", |s| {
                u64::from(s.base_priority)
            }),
            ("transitions_total", "counter", "State transitions.", |s| {
                s.transitions
            }),
            (
                "became_master_total",
                "counter",
                "Times MASTER was entered.",
                |s| s.became_master,
            ),
            ("adverts_sent_total", "counter", "Adverts sent.", |s| {
                s.adverts_sent
            }),
            (
                "priority_zero_sent_total",
                "counter",
                "Priority-0 adverts sent.",
                |s| s.priority_zero_sent,
            ),
            (
                "adverts_received_total",
                "counter",
                "VRRP packets received for the VRID.",
                |s| s.adverts_received,
            ),
            (
                "adverts_accepted_total",
                "counter",
                "Adverts that passed validation.",
                |s| s.adverts_accepted,
            ),
            (
                "adverts_rejected_total",
                "counter",
                "Adverts rejected by validation.",
                |s| s.adverts_rejected,
            ),
            (
                "priority_zero_received_total",
                "counter",
                "Priority-0 adverts received.",
                |s| s.priority_zero_received,
            ),
        ];
        for (name, kind, help, get) in series {
            let _ = writeln!(
                out,
                "# HELP rvs_vrrp_{name} {help}\n# TYPE rvs_vrrp_{name} {kind}"
            );
            for s in &v {
                let _ = writeln!(out, "rvs_vrrp_{name}{{{}}} {}", labels(s), get(s));
            }
        }
    }
}

/// The answer to [`rvs_control::Request::GetVrrp`]: every instance in configuration order, or
/// an empty list when rvsd runs no VRRP (`board` is `None`).
pub fn answer(board: Option<&StatusBoard>) -> Response {
    let now = Instant::now();
    let v = board
        .map(|b| {
            b.detailed()
                .iter()
                .map(|(s, d)| entry(s, d.as_ref(), now))
                .collect()
        })
        .unwrap_or_default();
    Response::ok(Payload::Vrrp(v))
}

/// One instance's record. Without details (a status published by something other than the
/// driver) the fields only the details know are left empty: version 2 and the family of the
/// first VIP are keepalived's defaults.
fn entry(s: &InstanceStatus, d: Option<&InstanceDetail>, now: Instant) -> VrrpInstanceEntry {
    // The board holds the driver's own state names; an unknown one would be a bug there, and
    // INIT is the honest "not running" reading of it.
    let state = VrrpState::from_name(s.state).unwrap_or(VrrpState::Init);
    let family = match d {
        Some(d) if d.ipv6 => Family::Inet6,
        Some(_) => Family::Inet,
        None => s.vips.first().map_or(Family::Inet, Family::of),
    };
    VrrpInstanceEntry {
        name: s.name.clone(),
        vrid: s.vrid,
        interface: s.interface.clone(),
        version: d.map_or(2, |d| d.version),
        family,
        state,
        base_priority: s.base_priority,
        effective_priority: s.priority,
        advert_int_cs: d.map_or(0, |d| d.advert_int_cs),
        transitions: s.transitions,
        became_master: s.became_master,
        adverts_sent: s.adverts_sent,
        priority_zero_sent: s.priority_zero_sent,
        adverts_received: s.adverts_received,
        adverts_rejected: s.adverts_rejected,
        priority_zero_received: s.priority_zero_received,
        rejects: d
            .map(|d| {
                d.rejects
                    .iter()
                    .map(|(reason, count)| VrrpRejects {
                        reason: (*reason).to_string(),
                        count: *count,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        in_state_ms: d.map(|d| {
            u64::try_from(now.saturating_duration_since(d.since).as_millis()).unwrap_or(u64::MAX)
        }),
        sync_group: d.and_then(|d| d.sync_group.clone()),
        vips: s.vips.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_vrrp::{Instance, InstanceConfig, RxPacket, Version};
    use std::time::Duration;

    fn status(name: &str, v6: bool) -> (Instance, InstanceStatus) {
        let (src, vip) = if v6 {
            ("fe80::1", "2001:db8::100")
        } else {
            ("10.0.0.1", "10.0.0.100")
        };
        let mut cfg = InstanceConfig::new(
            name,
            51,
            if v6 { Version::V3 } else { Version::V2 },
            src.parse().unwrap(),
            vec![vip.parse().unwrap()],
        );
        cfg.priority = 150;
        let mut i = Instance::new(cfg).unwrap();
        i.start(Duration::ZERO);
        let s = InstanceStatus::of(&i, "eth0");
        (i, s)
    }

    #[test]
    fn a_transition_rings_the_followers_and_a_repeat_does_not() {
        let board = StatusBoard::default();
        let bell = std::sync::Arc::new(Doorbell::default());
        board.follow(&bell);
        board.follow(&bell);
        let (_, mut s) = status("VI_1", false);
        s.state = "BACKUP";
        board.publish(vec![s.clone()]);
        assert!(bell.wait(Duration::ZERO), "the first status is a change");
        board.publish(vec![s.clone()]);
        assert!(
            !bell.wait(Duration::ZERO),
            "the same state again is no change"
        );
        s.state = "MASTER";
        board.publish(vec![s]);
        assert!(bell.wait(Duration::ZERO), "BACKUP -> MASTER rings");
        drop(bell);
        board.publish(Vec::new());
        assert!(
            lock(&board.bells).is_empty(),
            "a dropped follower is forgotten"
        );
    }

    #[test]
    fn no_vrrp_is_an_empty_list() {
        assert_eq!(answer(None), Response::ok(Payload::Vrrp(Vec::new())));
        let empty = StatusBoard::default();
        assert_eq!(
            answer(Some(&empty)),
            Response::ok(Payload::Vrrp(Vec::new()))
        );
    }

    #[test]
    fn every_published_instance_with_its_details() {
        let (i1, s1) = status("VI_1", false);
        let (mut i6, _) = status("VI_6", true);
        // A peer's advert arriving with a hop limit other than 255 is rejected (RFC 5798 §5.1.2.3)
        // and counted by reason.
        let (mut peer, _) = status("VI_6", true);
        let tx = peer.encode_adverts(200).unwrap();
        let rx = RxPacket::from_ipv6_parts(
            "fe80::2".parse().unwrap(),
            "ff02::12".parse().unwrap(),
            64,
            &tx[0].packet,
        );
        assert!(i6.handle_advert(Duration::from_millis(10), &rx).is_err());
        let s6 = InstanceStatus::of(&i6, "eth1");
        assert_eq!(s6.adverts_rejected, 1);
        let since = Instant::now() - Duration::from_secs(5);
        let board = StatusBoard::default();
        board.publish_detailed(
            vec![s1.clone(), s6],
            vec![
                InstanceDetail::of(&i1, None, since),
                InstanceDetail::of(&i6, Some("G1"), since),
            ],
        );
        let Response {
            result: Ok(Payload::Vrrp(v)),
            ..
        } = answer(Some(&board))
        else {
            panic!("not a VRRP answer");
        };
        assert_eq!(v.len(), 2);
        let a = &v[0];
        assert_eq!(
            (a.name.as_str(), a.vrid, a.interface.as_str()),
            ("VI_1", 51, "eth0")
        );
        assert_eq!(a.state, VrrpState::Backup);
        assert_eq!((a.version, a.family), (2, Family::Inet));
        assert_eq!((a.base_priority, a.effective_priority), (150, 150));
        assert_eq!(a.advert_int_cs, 100);
        assert_eq!(a.transitions, s1.transitions);
        assert_eq!(a.sync_group, None);
        assert!(a.rejects.is_empty());
        assert!(a.in_state_ms.is_some_and(|ms| ms >= 5000), "{a:?}");
        assert_eq!(
            a.vips,
            vec!["10.0.0.100".parse::<std::net::IpAddr>().unwrap()]
        );
        let b = &v[1];
        assert_eq!((b.version, b.family), (3, Family::Inet6));
        assert_eq!(b.interface, "eth1");
        assert_eq!((b.adverts_received, b.adverts_rejected), (1, 1));
        assert_eq!(
            b.rejects,
            vec![VrrpRejects {
                reason: "ttl".into(),
                count: 1
            }]
        );
        assert_eq!(b.sync_group.as_deref(), Some("G1"));
    }

    #[test]
    fn a_status_without_details_still_answers() {
        let (_, s) = status("VI_1", true);
        let board = StatusBoard::default();
        board.publish(vec![s]);
        let Response {
            result: Ok(Payload::Vrrp(v)),
            ..
        } = answer(Some(&board))
        else {
            panic!("not a VRRP answer");
        };
        assert_eq!(v[0].family, Family::Inet6);
        assert_eq!(v[0].in_state_ms, None);
        assert!(v[0].rejects.is_empty());
    }

    #[test]
    fn metrics_name_every_instance_and_its_state() {
        let cfg = rvs_vrrp::InstanceConfig::new(
            "VI_1",
            51,
            rvs_vrrp::Version::V2,
            "10.0.0.1".parse().unwrap(),
            vec!["10.0.0.100".parse().unwrap()],
        );
        let mut i = Instance::new(cfg).unwrap();
        i.start(Duration::ZERO);
        let b = StatusBoard::default();
        let mut empty = String::new();
        b.render_metrics(&mut empty);
        assert!(empty.is_empty(), "no VRRP, no VRRP metrics");
        b.publish(vec![InstanceStatus::of(&i, "eth0")]);
        let mut out = String::new();
        b.render_metrics(&mut out);
        let l = "instance=\"VI_1\",interface=\"eth0\",vrid=\"51\"";
        assert!(
            out.contains(&format!("rvs_vrrp_state{{{l},state=\"BACKUP\"}} 1")),
            "{out}"
        );
        assert!(out.contains(&format!("rvs_vrrp_state{{{l},state=\"MASTER\"}} 0")));
        assert!(out.contains(&format!("rvs_vrrp_priority{{{l}}} 100")));
        assert!(out.contains(&format!("rvs_vrrp_transitions_total{{{l}}} 1")));
        assert!(out.contains("# TYPE rvs_vrrp_adverts_rejected_total counter"));
    }
}
