//! `rvsadm -L --vrrp`: the control socket's view of the VRRP driver's [`StatusBoard`].
//!
//! Kept apart from `state.rs` so that the request handler only delegates here.

use std::time::Instant;

use rvs_control::model::{Family, VrrpInstanceEntry, VrrpRejects, VrrpState};
use rvs_control::proto::{Payload, Response};

use super::{InstanceDetail, InstanceStatus, StatusBoard};

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
}
