//! Transition tests for [`Instance`]: every arrow of docs/internals/vrrp.md#states, the timers of docs/internals/vrrp.md#timers and the GARP rules
//! of docs/internals/vrrp.md#gratuitous-arp-and-unsolicited-na.

use super::*;
use crate::config::{Auth, TrackerConfig, UnicastPeer};
use crate::rx::RejectKind;
use crate::wire::pass_auth_data;

const T0: Duration = Duration::from_secs(100);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cfg_v2(prio: u8) -> InstanceConfig {
    let mut c = InstanceConfig::new(
        "VI_1",
        51,
        Version::V2,
        ip("10.0.0.2"),
        vec![ip("10.0.0.100"), ip("10.0.0.101")],
    );
    c.priority = prio;
    c
}

fn cfg_v3(prio: u8, advert_cs: u16) -> InstanceConfig {
    let mut c = cfg_v2(prio);
    c.version = Version::V3;
    c.advert_int_cs = advert_cs;
    c
}

fn drain(i: &mut Instance) -> Vec<Action> {
    std::iter::from_fn(|| i.poll_action()).collect()
}

fn notify(state: NotifyState, priority: u8) -> Action {
    Action::Notify(Notify { state, priority })
}

/// The packet a peer configured like `cfg` (but with `src`) sends with `prio`.
fn peer_tx(cfg: &InstanceConfig, src: &str, prio: u8) -> Transmit {
    let mut c = cfg.clone();
    c.src_addr = ip(src);
    c.priority = prio.max(1);
    if cfg.is_unicast() {
        c.unicast_peers = vec![UnicastPeer::new(cfg.src_addr)];
    }
    let mut p = Instance::new(c).unwrap();
    p.encode_adverts(prio).unwrap().remove(0)
}

fn deliver(i: &mut Instance, now: Duration, tx: &Transmit) -> Result<(), Reject> {
    match (tx.src, tx.dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            i.handle_advert(now, &RxPacket::from_ipv6_parts(s, d, tx.ttl, &tx.packet))
        }
        _ => i.handle_advert(now, &RxPacket::parse(&tx.packet).unwrap()),
    }
}

fn from_peer(i: &mut Instance, now: Duration, src: &str, prio: u8) -> Result<(), Reject> {
    let tx = peer_tx(i.config(), src, prio);
    deliver(i, now, &tx)
}

fn started(cfg: InstanceConfig) -> Instance {
    let mut i = Instance::new(cfg).unwrap();
    i.start(T0);
    drain(&mut i);
    i
}

/// An instance that became MASTER by timeout at `T0 + down`; returns it and that time.
fn master(cfg: InstanceConfig) -> (Instance, Duration) {
    let mut i = started(cfg);
    let t = i.poll_timeout().unwrap();
    i.handle_timeout(t);
    assert_eq!(i.state(), State::Master);
    drain(&mut i);
    (i, t)
}

// ----- timers ----------------------------------------------------------------------------------

#[test]
fn skew_and_down_interval_v2() {
    // docs/internals/vrrp.md#timers: v2, P=100, A=1 s → 3.609375 s; skew independent of the interval.
    let i = Instance::new(cfg_v2(100)).unwrap();
    assert_eq!(i.skew_time(), us(609_375));
    assert_eq!(i.master_down_interval(), us(3_609_375));
    let mut c = cfg_v2(100);
    c.advert_int_cs = 300;
    let i = Instance::new(c).unwrap();
    assert_eq!(i.skew_time(), us(609_375));
    assert_eq!(i.master_down_interval(), us(9_609_375));
}

#[test]
fn skew_and_down_interval_v3() {
    // docs/internals/vrrp.md#timers: v3, P=90, M=0.5 s → 1824218 µs exactly.
    let i = Instance::new(cfg_v3(90, 50)).unwrap();
    assert_eq!(i.master_down_interval(), us(1_824_218));
    // Sub-second: 10 cs, P=100 → 3 × 100 ms + floor(156 × 10 × 625 / 16) µs.
    let i = Instance::new(cfg_v3(100, 10)).unwrap();
    assert_eq!(i.skew_time(), us(60_937));
    assert_eq!(i.master_down_interval(), us(360_937));
    let mut c = cfg_v3(100, 10);
    c.down_timer_adverts = 5;
    assert_eq!(
        Instance::new(c).unwrap().master_down_interval(),
        us(560_937)
    );
}

// ----- INIT ------------------------------------------------------------------------------------

#[test]
fn start_enters_backup_with_down_timer() {
    let mut i = Instance::new(cfg_v2(100)).unwrap();
    assert_eq!(i.state(), State::Init);
    assert_eq!(i.poll_timeout(), None);
    i.start(T0);
    assert_eq!(i.state(), State::Backup);
    assert_eq!(drain(&mut i), [notify(NotifyState::Backup, 100)]);
    assert_eq!(i.poll_timeout(), Some(T0 + us(3_609_375)));
}

#[test]
fn state_master_below_255_still_starts_in_backup() {
    let mut c = cfg_v2(150);
    c.initial_state = InitialState::Master;
    let i = started(c);
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn address_owner_starts_master_at_once() {
    let mut c = cfg_v2(255);
    c.initial_state = InitialState::Master;
    let mut i = Instance::new(c).unwrap();
    i.start(T0);
    assert_eq!(i.state(), State::Master);
    assert_eq!(
        drain(&mut i),
        [
            Action::SendAdvert { priority: 255 },
            Action::AddVips,
            Action::Garp { rounds: 5 },
            notify(NotifyState::Master, 255),
        ]
    );
}

#[test]
fn owner_with_state_backup_waits() {
    let mut i = Instance::new(cfg_v2(255)).unwrap();
    i.start(T0);
    assert_eq!(i.state(), State::Backup);
    // skew for 255 is 1/256 s
    assert_eq!(i.poll_timeout(), Some(T0 + us(3_003_906)));
}

#[test]
fn start_with_interface_down_enters_fault() {
    let mut i = Instance::new(cfg_v2(100)).unwrap();
    i.set_interface_up(T0, false);
    assert_eq!(i.state(), State::Init);
    i.start(T0);
    assert_eq!(i.state(), State::Fault);
    assert_eq!(drain(&mut i), [notify(NotifyState::Fault, 100)]);
    assert_eq!(i.poll_timeout(), None);
}

// ----- BACKUP ----------------------------------------------------------------------------------

#[test]
fn backup_timeout_becomes_master_advert_first() {
    let mut i = started(cfg_v2(100));
    let t = T0 + us(3_609_375);
    i.handle_timeout(t - us(1));
    assert_eq!(i.state(), State::Backup, "not before the deadline");
    i.handle_timeout(t);
    assert_eq!(
        drain(&mut i),
        [
            Action::SendAdvert { priority: 100 },
            Action::AddVips,
            Action::Garp { rounds: 5 },
            notify(NotifyState::Master, 100),
        ]
    );
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.counters().became_master, 1);
    assert_eq!(i.poll_timeout(), Some(t + Duration::from_secs(1)));
}

#[test]
fn backup_accepts_higher_priority_and_restarts_timer() {
    let mut i = started(cfg_v2(100));
    from_peer(&mut i, T0 + ms(3000), "10.0.0.1", 150).unwrap();
    assert_eq!(i.poll_timeout(), Some(T0 + ms(3000) + us(3_609_375)));
    assert_eq!(i.master(), Some((ip("10.0.0.1"), 150)));
    assert!(drain(&mut i).is_empty());
}

#[test]
fn backup_equal_priority_counts_as_higher() {
    let mut i = started(cfg_v2(100));
    // Lower address, same priority: still accepted in BACKUP (first master keeps it).
    from_peer(&mut i, T0 + ms(3000), "10.0.0.1", 100).unwrap();
    assert_eq!(i.poll_timeout(), Some(T0 + ms(3000) + us(3_609_375)));
}

#[test]
fn backup_discards_lower_priority_without_restarting_timer() {
    let mut i = started(cfg_v2(100));
    let deadline = i.poll_timeout().unwrap();
    from_peer(&mut i, T0 + ms(3000), "10.0.0.1", 50).unwrap();
    assert_eq!(i.poll_timeout(), Some(deadline));
    assert_eq!(i.counters().rx.accepted, 1);
    i.handle_timeout(deadline);
    assert_eq!(i.state(), State::Master);
}

#[test]
fn nopreempt_accepts_lower_priority_master() {
    let mut c = cfg_v2(100);
    c.preempt = false;
    let mut i = started(c);
    for k in 1..10 {
        let now = T0 + Duration::from_secs(k);
        from_peer(&mut i, now, "10.0.0.1", 50).unwrap();
        assert_eq!(i.poll_timeout(), Some(now + us(3_609_375)));
        i.handle_timeout(now);
    }
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn external_preempt_hold_keeps_a_lower_master_until_released() {
    let mut i = started(cfg_v2(100));
    i.set_preempt_hold(true);
    let mut now = T0;
    for _ in 0..10 {
        now += Duration::from_secs(1);
        from_peer(&mut i, now, "10.0.0.1", 50).unwrap();
        assert_eq!(
            i.poll_timeout(),
            Some(now + us(3_609_375)),
            "held: timer restarted"
        );
        i.handle_timeout(now);
        assert_eq!(i.state(), State::Backup);
    }
    i.set_preempt_hold(false);
    now += Duration::from_secs(1);
    let deadline = i.poll_timeout().unwrap();
    from_peer(&mut i, now, "10.0.0.1", 50).unwrap();
    assert_eq!(
        i.poll_timeout(),
        Some(deadline),
        "released: discarded again"
    );
    i.handle_timeout(deadline);
    assert_eq!(i.state(), State::Master);
}

#[test]
fn external_preempt_hold_never_blocks_a_silent_master_takeover() {
    let mut i = started(cfg_v2(100));
    i.set_preempt_hold(true);
    let deadline = i.poll_timeout().unwrap();
    i.handle_timeout(deadline);
    assert_eq!(i.state(), State::Master);
}

#[test]
fn external_preempt_hold_makes_a_starting_owner_wait() {
    let mut c = cfg_v2(255);
    c.initial_state = InitialState::Master;
    let mut i = Instance::new(c).unwrap();
    i.set_preempt_hold(true);
    i.start(T0);
    assert_eq!(i.state(), State::Backup);
    from_peer(&mut i, T0 + ms(500), "10.0.0.1", 100).unwrap();
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn preempt_delay_holds_then_preempts() {
    let mut c = cfg_v2(100);
    c.preempt_delay = Duration::from_secs(10);
    let mut i = started(c);
    // Lower-priority adverts are accepted (timer restarted) until the delay has passed.
    let first = T0 + ms(500);
    from_peer(&mut i, first, "10.0.0.1", 50).unwrap();
    assert_eq!(i.poll_timeout(), Some(first + us(3_609_375)));
    let mut now = first;
    for _ in 0..9 {
        now += Duration::from_secs(1);
        from_peer(&mut i, now, "10.0.0.1", 50).unwrap();
        i.handle_timeout(now);
        assert_eq!(i.state(), State::Backup);
        assert_eq!(i.poll_timeout(), Some(now + us(3_609_375)));
    }
    // 10 s after the first lower advert: discarded, the timer runs out.
    let last_restart = now;
    now = first + Duration::from_secs(10);
    from_peer(&mut i, now, "10.0.0.1", 50).unwrap();
    assert_eq!(i.poll_timeout(), Some(last_restart + us(3_609_375)));
    i.handle_timeout(last_restart + us(3_609_375));
    assert_eq!(i.state(), State::Master);
}

#[test]
fn preempt_delay_cancelled_by_higher_priority() {
    let mut c = cfg_v2(100);
    c.preempt_delay = Duration::from_secs(2);
    let mut i = started(c);
    from_peer(&mut i, T0 + ms(100), "10.0.0.1", 50).unwrap(); // starts the delay
    from_peer(&mut i, T0 + ms(1100), "10.0.0.1", 150).unwrap(); // cancels it
                                                                // A new lower advert starts a fresh delay, so at T0+2.2 s it is still held.
    from_peer(&mut i, T0 + ms(2100), "10.0.0.1", 50).unwrap();
    from_peer(&mut i, T0 + ms(3100), "10.0.0.1", 50).unwrap();
    assert_eq!(i.poll_timeout(), Some(T0 + ms(3100) + us(3_609_375)));
}

#[test]
fn backup_priority_zero_takes_over_after_skew() {
    let mut i = started(cfg_v2(100));
    from_peer(&mut i, T0 + ms(1000), "10.0.0.1", 150).unwrap();
    from_peer(&mut i, T0 + ms(2000), "10.0.0.1", 0).unwrap();
    // observed: 0.610 s after the priority-0 packet for P=100
    assert_eq!(i.poll_timeout(), Some(T0 + ms(2000) + us(609_375)));
    assert_eq!(i.counters().rx.priority_zero, 1);
    i.handle_timeout(T0 + ms(2000) + us(609_375));
    assert_eq!(i.state(), State::Master);
}

#[test]
fn backup_rejects_do_not_restart_timer() {
    let mut c = cfg_v2(100);
    c.auth = Auth::Pass(pass_auth_data(b"right"));
    let mut i = started(c.clone());
    let deadline = i.poll_timeout().unwrap();
    let mut other = c;
    other.auth = Auth::Pass(pass_auth_data(b"wrong"));
    let tx = peer_tx(&other, "10.0.0.1", 200);
    assert_eq!(deadline - T0, us(3_609_375));
    assert_eq!(deliver(&mut i, T0 + ms(1000), &tx), Err(Reject::Password));
    assert_eq!(i.poll_timeout(), Some(deadline));
    assert_eq!(i.counters().rx.rejected(RejectKind::Password), 1);
}

#[test]
fn v3_backup_learns_master_interval() {
    let mut i = started(cfg_v3(100, 100));
    let mut peer = cfg_v3(200, 20);
    peer.src_addr = ip("10.0.0.1");
    let tx = Instance::new(peer)
        .unwrap()
        .encode_adverts(200)
        .unwrap()
        .remove(0);
    deliver(&mut i, T0 + ms(100), &tx).unwrap();
    assert_eq!(i.master_adver_int(), ms(200));
    // 3 × 200 ms + 156 × 20 × 625 / 16 µs
    assert_eq!(i.poll_timeout(), Some(T0 + ms(100) + ms(600) + us(121_875)));
    // Becoming MASTER resets M to our own interval.
    i.handle_timeout(T0 + Duration::from_secs(5));
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.master_adver_int(), ms(1000));
}

#[test]
fn v2_interval_mismatch_is_rejected_not_learned() {
    let mut i = started(cfg_v2(100));
    let mut peer = cfg_v2(200);
    peer.advert_int_cs = 200;
    let tx = peer_tx(&peer, "10.0.0.1", 200);
    assert_eq!(
        deliver(&mut i, T0, &tx),
        Err(Reject::AdvertInterval {
            got: 2,
            expected: 1
        })
    );
}

#[test]
fn skip_check_adv_addr_only_for_the_known_master() {
    let mut c = cfg_v2(100);
    c.skip_check_adv_addr = true;
    let mut i = started(c.clone());
    from_peer(&mut i, T0, "10.0.0.1", 150).unwrap();
    let mut fewer = c;
    fewer.vips.pop();
    // Same master, fewer VIPs: not checked.
    deliver(&mut i, T0 + ms(1000), &peer_tx(&fewer, "10.0.0.1", 150)).unwrap();
    // Another sender: checked.
    assert!(matches!(
        deliver(&mut i, T0 + ms(1100), &peer_tx(&fewer, "10.0.0.3", 150)),
        Err(Reject::AddressCount {
            got: 1,
            expected: 2
        })
    ));
}

// ----- MASTER ----------------------------------------------------------------------------------

#[test]
fn master_advertises_every_interval_and_sends_second_garp_batch() {
    let (mut i, t) = master(cfg_v2(100));
    for k in 1..=6u64 {
        let now = t + Duration::from_secs(k);
        assert_eq!(i.poll_timeout(), Some(now));
        i.handle_timeout(now);
        let a = drain(&mut i);
        if k == 5 {
            // garp_master_delay 5 s: the delayed batch comes first, then the advert.
            assert_eq!(
                a,
                [
                    Action::Garp { rounds: 5 },
                    Action::SendAdvert { priority: 100 }
                ]
            );
        } else {
            assert_eq!(a, [Action::SendAdvert { priority: 100 }]);
        }
    }
    assert_eq!(i.counters().adverts_sent, 7);
}

#[test]
fn min_garp_sends_one_round_and_no_delayed_batch() {
    let mut c = cfg_v2(100);
    c.garp.min_garp = true;
    let mut i = started(c);
    let t = i.poll_timeout().unwrap();
    i.handle_timeout(t);
    assert!(drain(&mut i).contains(&Action::Garp { rounds: 1 }));
    assert_eq!(i.poll_timeout(), Some(t + Duration::from_secs(1)));
    for k in 1..=6 {
        i.handle_timeout(t + Duration::from_secs(k));
    }
    assert!(!drain(&mut i)
        .iter()
        .any(|a| matches!(a, Action::Garp { .. })));
}

#[test]
fn no_vips_no_garp() {
    let mut c = cfg_v2(100);
    c.vips.clear();
    let (i, _) = master(c);
    assert_eq!(i.poll_timeout().map(|d| d - T0), Some(us(4_609_375)));
}

#[test]
fn garp_master_refresh_repeats_while_master() {
    let mut c = cfg_v2(100);
    c.garp.master_delay = Duration::ZERO;
    c.garp.master_refresh = Duration::from_secs(3);
    c.garp.master_refresh_repeat = 2;
    let (mut i, t) = master(c);
    let mut garps = Vec::new();
    for k in 1..=9 {
        let now = t + Duration::from_secs(k);
        i.handle_timeout(now);
        if drain(&mut i).contains(&Action::Garp { rounds: 2 }) {
            garps.push(k);
        }
    }
    assert_eq!(garps, [3, 6, 9]);
}

#[test]
fn master_yields_to_higher_priority_without_priority_zero() {
    let (mut i, t) = master(cfg_v2(100));
    let now = t + ms(300);
    from_peer(&mut i, now, "10.0.0.1", 150).unwrap();
    assert_eq!(i.state(), State::Backup);
    assert_eq!(
        drain(&mut i),
        [Action::RemoveVips, notify(NotifyState::Backup, 100)]
    );
    assert_eq!(i.poll_timeout(), Some(now + us(3_609_375)));
    // The delayed GARP batch of the short mastership is cancelled.
    from_peer(&mut i, t + Duration::from_secs(3), "10.0.0.1", 150).unwrap();
    i.handle_timeout(t + Duration::from_secs(5));
    assert_eq!(i.state(), State::Backup);
    assert!(drain(&mut i).is_empty());
    assert_eq!(i.counters().released_master, 1);
}

#[test]
fn master_tie_break_on_primary_address() {
    // Equal priority, peer address higher than ours (10.0.0.2): yield.
    let (mut i, t) = master(cfg_v2(100));
    from_peer(&mut i, t + ms(10), "10.0.0.3", 100).unwrap();
    assert_eq!(i.state(), State::Backup);
    // Equal priority, peer address lower: stay MASTER and re-assert.
    let (mut i, t) = master(cfg_v2(100));
    from_peer(&mut i, t + ms(10), "10.0.0.1", 100).unwrap();
    assert_eq!(i.state(), State::Master);
    assert_eq!(
        drain(&mut i),
        [
            Action::SendAdvert { priority: 100 },
            Action::Garp { rounds: 5 },
            notify(NotifyState::MasterRxLowerPri, 100),
        ]
    );
}

#[test]
fn ipv6_tie_break_is_128_bit_numeric() {
    let mut c = InstanceConfig::new(
        "VI_6",
        7,
        Version::V3,
        ip("fe80::2"),
        vec![ip("fe80::7"), ip("2001:db8::7")],
    );
    c.priority = 100;
    let (mut i, t) = master(c.clone());
    from_peer(&mut i, t + ms(10), "fe80::1:0", 100).unwrap();
    assert_eq!(i.state(), State::Backup, "fe80::1:0 > fe80::2");
    let (mut i, t) = master(c);
    from_peer(&mut i, t + ms(10), "fe80::1", 100).unwrap();
    assert_eq!(i.state(), State::Master);
}

#[test]
fn master_lower_priority_readvertises_and_restarts_timer() {
    let (mut i, t) = master(cfg_v2(100));
    let now = t + ms(700);
    from_peer(&mut i, now, "10.0.0.1", 50).unwrap();
    assert_eq!(i.poll_timeout(), Some(now + Duration::from_secs(1)));
    let a = drain(&mut i);
    assert_eq!(a[0], Action::SendAdvert { priority: 100 });
    // garp_lower_prio_delay: a second round 5 s later.
    i.handle_timeout(now + Duration::from_secs(5));
    assert!(drain(&mut i).contains(&Action::Garp { rounds: 5 }));
}

#[test]
fn lower_prio_no_advert_stays_silent() {
    let mut c = cfg_v2(100);
    c.lower_prio_no_advert = true;
    c.garp.lower_prio_repeat = 0;
    let (mut i, t) = master(c);
    from_peer(&mut i, t + ms(700), "10.0.0.1", 50).unwrap();
    assert_eq!(drain(&mut i), [notify(NotifyState::MasterRxLowerPri, 100)]);
    assert_eq!(i.poll_timeout(), Some(t + Duration::from_secs(1)));
}

#[test]
fn master_answers_priority_zero_at_once() {
    let (mut i, t) = master(cfg_v2(100));
    from_peer(&mut i, t + ms(200), "10.0.0.1", 0).unwrap();
    assert_eq!(drain(&mut i), [Action::SendAdvert { priority: 100 }]);
    assert_eq!(i.poll_timeout(), Some(t + ms(1200)));
    assert_eq!(i.state(), State::Master);
}

#[test]
fn higher_prio_send_advert_sends_before_yielding() {
    let mut c = cfg_v2(100);
    c.higher_prio_send_advert = true;
    let (mut i, t) = master(c);
    from_peer(&mut i, t + ms(200), "10.0.0.1", 150).unwrap();
    assert_eq!(
        drain(&mut i),
        [
            Action::SendAdvert { priority: 100 },
            Action::RemoveVips,
            notify(NotifyState::Backup, 100)
        ]
    );
}

#[test]
fn two_address_owners_reduce_local_priority() {
    let mut c = cfg_v2(255);
    c.initial_state = InitialState::Master;
    let mut i = Instance::new(c).unwrap();
    i.start(T0);
    drain(&mut i);
    from_peer(&mut i, T0 + ms(100), "10.0.0.1", 255).unwrap();
    assert_eq!(i.base_priority(), 254);
    assert_eq!(i.effective_priority(), 254);
    assert_eq!(i.state(), State::Backup, "255 from the peer now beats 254");
}

#[test]
fn master_restarts_advert_timer_on_rejected_packets() {
    // keepalived quirk (docs/internals/vrrp.md#states): any packet for our VRID pushes the advert timer back.
    let (mut i, t) = master(cfg_v2(100));
    let mut peer = cfg_v2(100);
    peer.advert_int_cs = 200;
    let tx = peer_tx(&peer, "10.0.0.1", 200);
    let now = t + ms(900);
    assert!(deliver(&mut i, now, &tx).is_err());
    assert_eq!(i.poll_timeout(), Some(now + Duration::from_secs(1)));
    assert_eq!(i.state(), State::Master);
    // ... but not with lower_prio_no_advert.
    let mut c = cfg_v2(100);
    c.lower_prio_no_advert = true;
    let (mut i, t) = master(c);
    assert!(deliver(&mut i, t + ms(900), &tx).is_err());
    assert_eq!(i.poll_timeout(), Some(t + Duration::from_secs(1)));
}

// ----- FAULT, trackers, priority ----------------------------------------------------------------

#[test]
fn interface_down_from_master_resigns_and_up_returns_to_backup() {
    let (mut i, t) = master(cfg_v2(100));
    i.set_interface_up(t + ms(100), false);
    assert_eq!(i.state(), State::Fault);
    assert_eq!(
        drain(&mut i),
        [
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
            notify(NotifyState::Fault, 100)
        ]
    );
    assert_eq!(i.poll_timeout(), None);
    // Adverts are ignored in FAULT.
    from_peer(&mut i, t + ms(200), "10.0.0.1", 150).unwrap();
    assert_eq!(i.counters().rx.ignored_state, 1);
    i.set_interface_up(t + ms(300), true);
    assert_eq!(i.state(), State::Backup);
    assert_eq!(drain(&mut i), [notify(NotifyState::Backup, 100)]);
    assert_eq!(i.poll_timeout(), Some(t + ms(300) + us(3_609_375)));
    assert_eq!(i.counters().fault_entered, 1);
}

#[test]
fn unicast_leaving_fault_announces_source() {
    let mut c = cfg_v2(100);
    c.unicast_peers = vec![UnicastPeer::new(ip("10.0.0.1"))];
    let mut i = started(c);
    i.set_interface_up(T0 + ms(1), false);
    drain(&mut i);
    i.set_interface_up(T0 + ms(2), true);
    assert_eq!(
        drain(&mut i),
        [Action::AnnounceSource, notify(NotifyState::Backup, 100)]
    );
}

#[test]
fn owner_leaving_fault_goes_straight_to_master() {
    let mut c = cfg_v2(255);
    c.initial_state = InitialState::Master;
    let mut i = Instance::new(c).unwrap();
    i.set_interface_up(T0, false);
    i.start(T0);
    i.set_interface_up(T0 + ms(5), true);
    assert_eq!(i.state(), State::Master);
}

#[test]
fn weight_zero_tracker_failure_is_fault() {
    let mut c = cfg_v2(100);
    c.trackers = vec![TrackerConfig {
        weight: 0,
        reverse: false,
    }];
    let mut i = started(c);
    i.set_tracker(T0 + ms(1), 0, false);
    assert_eq!(i.state(), State::Fault);
    assert!(i.own_fault());
    i.set_tracker(T0 + ms(2), 0, true);
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn tracker_weights_adjust_priority_and_shift_backup_timer() {
    let mut c = cfg_v2(100);
    c.trackers = vec![
        TrackerConfig {
            weight: -50,
            reverse: false,
        },
        TrackerConfig {
            weight: 20,
            reverse: false,
        },
        TrackerConfig {
            weight: 10,
            reverse: true,
        },
    ];
    let mut i = Instance::new(c).unwrap();
    // All OK: +20 (tracker 1), tracker 2 is reversed so "OK" counts as failed and +10 does not
    // apply, tracker 0 is OK so -50 does not apply.
    assert_eq!(i.effective_priority(), 120);
    i.start(T0);
    let d0 = i.poll_timeout().unwrap();
    i.set_tracker(T0 + ms(10), 0, false);
    assert_eq!(i.effective_priority(), 70);
    // Skew grew by (186 − 136) / 256 s; the running timer moves by that much.
    assert_eq!(
        i.poll_timeout().unwrap(),
        d0 + us(186 * 1_000_000 / 256) - us(136 * 1_000_000 / 256)
    );
    i.set_tracker(T0 + ms(20), 2, false);
    assert_eq!(i.effective_priority(), 80);
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn effective_priority_is_clamped_and_owner_unaffected() {
    let trackers = vec![
        TrackerConfig {
            weight: 200,
            reverse: false,
        },
        TrackerConfig {
            weight: -253,
            reverse: false,
        },
    ];
    let mut c = cfg_v2(100);
    c.trackers = trackers.clone();
    let mut i = Instance::new(c).unwrap();
    assert_eq!(i.effective_priority(), 254, "never raised to owner");
    i.set_tracker(T0, 0, false);
    i.set_tracker(T0, 1, false);
    assert_eq!(i.effective_priority(), 1);
    let mut c = cfg_v2(255);
    c.trackers = trackers;
    let mut i = Instance::new(c).unwrap();
    i.set_tracker(T0, 1, false);
    assert_eq!(i.effective_priority(), 255);
}

#[test]
fn master_adverts_carry_the_new_priority() {
    let mut c = cfg_v2(100);
    c.trackers = vec![TrackerConfig {
        weight: -30,
        reverse: false,
    }];
    c.notify_priority_changes = true;
    let (mut i, t) = master(c);
    i.set_tracker(t + ms(1), 0, false);
    assert_eq!(drain(&mut i), [notify(NotifyState::MasterPriority, 70)]);
    i.handle_timeout(t + Duration::from_secs(1));
    assert_eq!(drain(&mut i), [Action::SendAdvert { priority: 70 }]);
}

// ----- shutdown ----------------------------------------------------------------------------------

#[test]
fn shutdown_master_sends_priority_zero() {
    let (mut i, t) = master(cfg_v2(100));
    i.shutdown(t + ms(1));
    assert_eq!(
        drain(&mut i),
        [
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
            notify(NotifyState::Stop, 100)
        ]
    );
    assert_eq!(i.state(), State::Stopped);
    assert_eq!(i.poll_timeout(), None);
    assert_eq!(i.counters().priority_zero_sent, 1);
    // Nothing happens after STOP.
    i.shutdown(t + ms(2));
    i.handle_timeout(t + Duration::from_secs(10));
    assert!(drain(&mut i).is_empty());
}

#[test]
fn shutdown_backup_only_notifies() {
    let mut i = started(cfg_v2(100));
    i.shutdown(T0 + ms(1));
    assert_eq!(drain(&mut i), [notify(NotifyState::Stop, 100)]);
}

// ----- encoding --------------------------------------------------------------------------------

#[test]
fn unicast_adverts_one_per_peer_with_ip_ids() {
    let mut c = cfg_v3(100, 100);
    c.unicast_peers = vec![
        UnicastPeer::new(ip("10.0.0.1")),
        UnicastPeer::new(ip("10.0.0.3")),
    ];
    c.unicast_ttl = 64;
    let mut i = Instance::new(c).unwrap();
    let tx = i.encode_adverts(100).unwrap();
    assert_eq!(tx.len(), 2);
    assert_eq!(
        tx.iter().map(|t| t.dst).collect::<Vec<_>>(),
        [ip("10.0.0.1"), ip("10.0.0.3")]
    );
    for (n, t) in tx.iter().enumerate() {
        assert_eq!(t.ttl, 64);
        assert_eq!(t.packet[8], 64);
        assert_eq!(u16::from_be_bytes([t.packet[4], t.packet[5]]), n as u16 + 1);
        let rx = RxPacket::parse(&t.packet).unwrap();
        let p = crate::wire::Packet::new_checked(rx.vrrp, crate::wire::Family::Inet).unwrap();
        assert!(p.verify_checksum(rx.src, rx.dst, ChecksumMode::PseudoHeader));
    }
}

#[test]
fn ip_id_wraps_skipping_zero() {
    let mut i = Instance::new(cfg_v2(100)).unwrap();
    let id = |t: &Transmit| u16::from_be_bytes([t.packet[4], t.packet[5]]);
    for _ in 0..65534 {
        i.encode_adverts(100).unwrap();
    }
    assert_eq!(id(&i.encode_adverts(100).unwrap()[0]), 65535);
    assert_eq!(id(&i.encode_adverts(100).unwrap()[0]), 1);
}

#[test]
fn ipv6_adverts_are_vrrp_messages_with_checksum() {
    let c = InstanceConfig::new(
        "VI_6",
        53,
        Version::V3,
        ip("fe80::b406:c0ff:fe58:109a"),
        vec![ip("fe80::53"), ip("2001:db8::53")],
    );
    let mut c = c;
    c.priority = 110;
    let mut i = Instance::new(c).unwrap();
    let tx = i.encode_adverts(110).unwrap().remove(0);
    assert_eq!(tx.dst, ip("ff02::12"));
    // The captured bytes of docs/internals/vrrp.md#on-the-wire.
    assert_eq!(
        &tx.packet[..8],
        &[0x31, 0x35, 0x6e, 0x02, 0x00, 0x64, 0xb1, 0x5c]
    );
}

// ----- checksum interop ---------------------------------------------------------------------------

fn unicast_v3(src: &str, peer: &str) -> InstanceConfig {
    let mut c = cfg_v3(100, 100);
    c.src_addr = ip(src);
    c.unicast_peers = vec![UnicastPeer::new(ip(peer))];
    c
}

#[test]
fn old_unicast_checksum_is_detected_and_adopted() {
    let mut me = started(unicast_v3("10.0.0.2", "10.0.0.1"));
    let mut old = unicast_v3("10.0.0.1", "10.0.0.2");
    old.checksum_mode = ChecksumMode::OldUnicast;
    old.priority = 150;
    let tx = Instance::new(old)
        .unwrap()
        .encode_adverts(150)
        .unwrap()
        .remove(0);
    deliver(&mut me, T0, &tx).unwrap();
    assert_eq!(me.checksum_mode(), ChecksumMode::OldUnicast);
    // ... unless `old_unicast_checksum never`.
    let mut c = unicast_v3("10.0.0.2", "10.0.0.1");
    c.old_unicast_autodetect = false;
    let mut me = started(c);
    assert_eq!(deliver(&mut me, T0, &tx), Err(Reject::Checksum));
}

#[test]
fn rfc9568_checksum_mode() {
    let mut c = unicast_v3("10.0.0.2", "10.0.0.1");
    c.checksum_mode = ChecksumMode::NoPseudoHeader;
    let mut me = started(c.clone());
    let mut peer = unicast_v3("10.0.0.1", "10.0.0.2");
    peer.checksum_mode = ChecksumMode::NoPseudoHeader;
    peer.priority = 150;
    let tx = Instance::new(peer)
        .unwrap()
        .encode_adverts(150)
        .unwrap()
        .remove(0);
    deliver(&mut me, T0, &tx).unwrap();
    // A keepalived 2.2.7 peer (pseudo-header) does not verify in this mode.
    let mut kad = unicast_v3("10.0.0.1", "10.0.0.2");
    kad.priority = 150;
    let tx = Instance::new(kad)
        .unwrap()
        .encode_adverts(150)
        .unwrap()
        .remove(0);
    assert_eq!(deliver(&mut me, T0, &tx), Err(Reject::Checksum));
    assert_eq!(me.counters().rx.rejected(RejectKind::Checksum), 1);
}

#[test]
fn master_ignores_runt_packets_for_its_timer() {
    let (mut i, t) = master(cfg_v2(100));
    let rx = RxPacket {
        src: ip("10.0.0.1"),
        dst: ip("224.0.0.18"),
        ttl: 255,
        ip_total_len: None,
        received_len: 3,
        ah: false,
        vrrp: &[0x21, 51, 100],
    };
    assert!(matches!(
        i.handle_advert(t + ms(500), &rx),
        Err(Reject::Length { got: 3, .. })
    ));
    assert_eq!(rx.vrid(), Some(51));
    assert_eq!(i.poll_timeout(), Some(t + ms(1000)));
}

#[test]
fn v3_zero_interval_is_not_adopted() {
    let mut i = started(cfg_v3(100, 100));
    let mut peer = cfg_v3(200, 100);
    peer.src_addr = ip("10.0.0.1");
    let tx = Instance::new(peer)
        .unwrap()
        .encode_adverts(200)
        .unwrap()
        .remove(0);
    let mut pkt = tx.packet.clone();
    // Zero the interval field and fix the checksum (pseudo-header with the real dst).
    pkt[24] = 0;
    pkt[25] = 0;
    pkt[26] = 0;
    pkt[27] = 0;
    let rx = RxPacket::parse(&pkt).unwrap();
    let c = crate::wire::vrrp_checksum(
        Version::V3,
        rx.vrrp,
        rx.src,
        rx.dst,
        ChecksumMode::PseudoHeader,
    );
    pkt[26..28].copy_from_slice(&c.to_be_bytes());
    i.handle_advert(T0, &RxPacket::parse(&pkt).unwrap())
        .unwrap();
    assert_eq!(i.master_adver_int(), ms(1000));
    assert_eq!(i.poll_timeout(), Some(T0 + us(3_609_375)));
}

#[test]
fn shutdown_from_fault_and_init() {
    let mut i = started(cfg_v2(100));
    i.set_interface_up(T0 + ms(1), false);
    drain(&mut i);
    i.shutdown(T0 + ms(2));
    assert_eq!(drain(&mut i), [notify(NotifyState::Stop, 100)]);
    assert_eq!(i.state(), State::Stopped);
    // Interface changes after STOP do nothing.
    i.set_interface_up(T0 + ms(3), true);
    assert_eq!(i.state(), State::Stopped);
    assert!(drain(&mut i).is_empty());

    let mut i = Instance::new(cfg_v2(100)).unwrap();
    i.shutdown(T0);
    assert_eq!(i.state(), State::Stopped);
    i.start(T0);
    assert_eq!(
        i.state(),
        State::Stopped,
        "a stopped instance does not restart"
    );
}

#[test]
fn delete_reports_deleted_or_fault() {
    let (mut i, t) = master(cfg_v2(100));
    i.delete(t, true);
    assert_eq!(
        drain(&mut i),
        [
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
            notify(NotifyState::Deleted, 100)
        ]
    );
    let mut i = started(cfg_v2(100));
    i.delete(T0, false);
    assert_eq!(drain(&mut i), [notify(NotifyState::Fault, 100)]);
    assert_eq!(i.state(), State::Stopped);
}

// ----- reload ----------------------------------------------------------------------------------

#[test]
fn reconfigured_master_stays_master_and_advertises_its_new_priority() {
    let (mut i, t) = master(cfg_v2(150));
    let before = i.counters().clone();
    let mut c = cfg_v2(90);
    c.vips = vec![ip("10.0.0.100")];
    i.reconfigure(t + ms(300), c, &[]).unwrap();
    assert_eq!(i.state(), State::Master);
    assert_eq!((i.base_priority(), i.effective_priority()), (90, 90));
    assert_eq!(i.config().vips, vec![ip("10.0.0.100")]);
    assert_eq!(drain(&mut i), vec![Action::SendAdvert { priority: 90 }]);
    assert_eq!(i.counters().transitions, before.transitions);
    assert_eq!(i.counters().adverts_sent, before.adverts_sent + 1);
    assert_eq!(i.poll_timeout(), Some(t + ms(300) + Duration::from_secs(1)));
    // A peer at 100 is now higher: the reconfigured master yields to it.
    from_peer(&mut i, t + ms(400), "10.0.0.3", 100).unwrap();
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn reconfigured_backup_with_a_higher_priority_preempts_by_its_down_timer() {
    let mut i = started(cfg_v2(100));
    from_peer(&mut i, T0 + ms(100), "10.0.0.3", 150).unwrap();
    let down = i.poll_timeout().unwrap();
    i.reconfigure(T0 + ms(200), cfg_v2(200), &[]).unwrap();
    assert_eq!(i.state(), State::Backup);
    assert_eq!(i.effective_priority(), 200);
    assert!(drain(&mut i).is_empty(), "a BACKUP sends nothing on reload");
    // Skew shrinks with the higher priority, so the timer moves earlier, never later.
    let shifted = i.poll_timeout().unwrap();
    assert!(shifted <= down, "{shifted:?} > {down:?}");
    // The master's next advert (150 < 200) is discarded without restarting the timer ...
    from_peer(&mut i, T0 + ms(1100), "10.0.0.3", 150).unwrap();
    assert_eq!(i.poll_timeout(), Some(shifted));
    // ... so it runs out and the instance takes over.
    i.handle_timeout(shifted);
    assert_eq!(i.state(), State::Master);
}

#[test]
fn reconfigure_with_an_invalid_configuration_changes_nothing() {
    let (mut i, t) = master(cfg_v2(150));
    let mut bad = cfg_v2(120);
    bad.vrid = 0;
    assert!(i.reconfigure(t + ms(10), bad, &[]).is_err());
    assert_eq!((i.state(), i.base_priority()), (State::Master, 150));
    assert!(drain(&mut i).is_empty());
}

#[test]
fn reconfigure_to_a_failed_weight_zero_tracker_is_handled_by_the_driver_report() {
    // Trackers start OK after a reload; a failed weight-0 tracker reported by the driver then
    // moves a MASTER to FAULT with a priority-0 advert.
    let (mut i, t) = master(cfg_v2(150));
    let mut c = cfg_v2(150);
    c.trackers = vec![TrackerConfig {
        weight: 0,
        reverse: false,
    }];
    i.reconfigure(t + ms(10), c, &[]).unwrap();
    assert_eq!(i.state(), State::Master);
    drain(&mut i);
    i.set_tracker(t + ms(20), 0, false);
    assert_eq!(i.state(), State::Fault);
    assert!(drain(&mut i).contains(&Action::SendAdvert { priority: 0 }));
}

#[test]
fn reconfigure_refuses_another_vrid_or_version() {
    let (mut i, t) = master(cfg_v2(150));
    let mut other = cfg_v2(150);
    other.vrid = 52;
    assert!(i.reconfigure(t, other, &[]).is_err());
    assert!(i.reconfigure(t, cfg_v3(150, 100), &[]).is_err());
    assert_eq!(i.config().vrid, 51);
}

#[test]
fn reconfigure_takes_the_current_tracker_states() {
    // A failed weight −60 tracker is known at reload: the first advert already carries 90.
    let (mut i, t) = master(cfg_v2(150));
    let mut c = cfg_v2(150);
    c.trackers = vec![TrackerConfig {
        weight: -60,
        reverse: false,
    }];
    i.reconfigure(t + ms(10), c, &[false]).unwrap();
    assert_eq!(i.effective_priority(), 90);
    assert_eq!(drain(&mut i), vec![Action::SendAdvert { priority: 90 }]);
}
