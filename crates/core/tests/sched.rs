//! Scheduler behaviour from the kernel's worked examples (docs/internals/schedulers.md) and the tie-break, weight-0,
//! OVERLOAD and threshold-hysteresis cases of every scheduler.

mod sched_util;

use std::net::IpAddr;

use rvs_core::hash::hash_32;
use rvs_core::sched::{mh_offset_skip, SchedParams, Scheduler};
use rvs_core::{DestConfig, DestId, Family, SchedKind, ServiceFlags, Time};
use sched_util::{client, flow, rip, Script, Svc};

fn any_flow() -> rvs_core::Flow {
    client(1)
}

// ---------------------------------------------------------------- rr

#[test]
fn rr_after_adding_a_b_c_gives_c_b_a() {
    let mut s = Svc::new(SchedKind::Rr);
    let a = s.add(1, 1);
    let b = s.add(2, 1);
    let c = s.add(3, 1);
    let got = s.run(&any_flow(), 7);
    assert_eq!(
        got,
        vec![
            Some(c),
            Some(b),
            Some(a),
            Some(c),
            Some(b),
            Some(a),
            Some(c)
        ]
    );
}

#[test]
fn rr_skips_weight_zero_and_overloaded_and_single_eligible_repeats() {
    let mut s = Svc::new(SchedKind::Rr);
    let a = s.add(1, 1);
    let b = s.add(2, 0);
    let c = s.add_cfg(DestConfig::new(rip(3), 80).thresholds(1, 0));
    s.bind(c, 1, true);
    assert!(s.table.dests[c].overload);
    assert_eq!(s.run(&any_flow(), 3), vec![Some(a); 3]);
    s.edit(a, |c| c.weight = 0);
    assert_eq!(s.schedule(&any_flow()), None);
    s.edit(b, |c| c.weight = 2);
    assert_eq!(s.schedule(&any_flow()), Some(b));
}

#[test]
fn rr_delete_moves_cursor_to_predecessor() {
    let mut s = Svc::new(SchedKind::Rr);
    let a = s.add(1, 1);
    let b = s.add(2, 1);
    let c = s.add(3, 1);
    // list c b a
    assert_eq!(s.schedule(&any_flow()), Some(c));
    assert_eq!(s.schedule(&any_flow()), Some(b));
    s.del(b); // cursor → c, so a comes next
    assert_eq!(s.schedule(&any_flow()), Some(a));
    assert_eq!(s.schedule(&any_flow()), Some(c));
}

// ---------------------------------------------------------------- wrr

/// Picks of a wrr service whose destinations (added first to last) are `added`, with the
/// scheduler either bound after the destinations exist (`init_service`: cw = mw, the start of
/// the cycle) or before them (every add then runs the `dest_changed` reset, which leaves cw
/// where the adds left it, so the same cycle is entered at another phase).
fn wrr_picks(added: &[(u8, u32)], n: usize, init_after: bool) -> Vec<String> {
    let mut s = Svc::new(if init_after {
        SchedKind::Rr
    } else {
        SchedKind::Wrr
    });
    for &(i, w) in added {
        s.add(i, w);
    }
    if init_after {
        let cfg = rvs_core::ServiceConfig::new(SchedKind::Wrr, Family::Inet);
        s.table.edit_service(&s.key, cfg, Time(0)).unwrap();
    }
    let picks = s.run(&any_flow(), n);
    picks
        .iter()
        .map(|p| {
            let d = &s.table.dests[p.expect("a pick")];
            match (d.cfg.addr, d.weight()) {
                (a, _) if a == rip(1) => "A".to_string(),
                (a, _) if a == rip(2) => "B".to_string(),
                (a, _) if a == rip(3) => "C".to_string(),
                (_, w) => w.to_string(),
            }
        })
        .collect()
}

/// Whether `got` repeats `cycle` from some phase.
fn is_rotation_of(got: &[String], cycle: &[&str]) -> bool {
    (0..cycle.len()).any(|ph| {
        got.iter()
            .enumerate()
            .all(|(i, g)| g == cycle[(ph + i) % cycle.len()])
    })
}

#[test]
fn wrr_spec_example_a4_b3_c2() {
    // List order [A=4, B=3, C=2]: C added first, A last.
    let added = [(3, 2), (2, 3), (1, 4)];
    let cycle = ["A", "A", "B", "A", "B", "C", "A", "B", "C"];
    assert_eq!(wrr_picks(&added, 18, true), [cycle, cycle].concat());
    assert!(is_rotation_of(&wrr_picks(&added, 27, false), &cycle));
}

#[test]
fn wrr_spec_example_c2_b3_a4() {
    // List order [C=2, B=3, A=4]: A added first.
    let added = [(1, 4), (2, 3), (3, 2)];
    let cycle = ["A", "B", "A", "C", "B", "A", "C", "B", "A"];
    assert_eq!(wrr_picks(&added, 18, true), [cycle, cycle].concat());
    assert!(is_rotation_of(&wrr_picks(&added, 27, false), &cycle));
}

#[test]
fn wrr_spec_example_4_2_6() {
    // List order [4, 2, 6]: di = 2, mw = 5, cw 5, 3, 1 → 6 4 6 4 2 6.
    let added = [(16, 6), (15, 2), (14, 4)];
    let cycle = ["6", "4", "6", "4", "2", "6"];
    // (Destinations 14..16 are named by their weights.)
    assert_eq!(wrr_picks(&added, 12, true), [cycle, cycle].concat());
    assert!(is_rotation_of(&wrr_picks(&added, 18, false), &cycle));
}

#[test]
fn wrr_adds_keep_cw_where_the_reset_rule_leaves_it() {
    // Adding C=2, B=3, A=4 one by one to a live wrr service: cw = 2 after the first add, and
    // the reset rule (cw ≤ mw, di = 1) keeps it, so the first round serves everyone ≥ 2.
    let got = wrr_picks(&[(3, 2), (2, 3), (1, 4)], 3, false);
    assert_eq!(got, ["A", "B", "C"]);
}

#[test]
fn wrr_all_weights_zero_gives_none() {
    let mut s = Svc::new(SchedKind::Wrr);
    s.add(1, 0);
    s.add(2, 0);
    assert_eq!(s.run(&any_flow(), 3), vec![None; 3]);
}

#[test]
fn wrr_overload_skips_and_hysteresis_restores() {
    let mut s = Svc::new(SchedKind::Wrr);
    let b = s.add(2, 1);
    let a = s.add_cfg(DestConfig::new(rip(1), 80).weight(3).thresholds(4, 2));
    s.bind(a, 4, false);
    assert!(s.table.dests[a].overload);
    assert!(s.run(&any_flow(), 10).iter().all(|p| *p == Some(b)));
    s.unbind(a, 2, false); // 2 left: not < 2, still overloaded
    assert!(s.table.dests[a].overload);
    assert!(s.run(&any_flow(), 10).iter().all(|p| *p == Some(b)));
    s.unbind(a, 1, false); // 1 < 2: cleared
    assert!(!s.table.dests[a].overload);
    let picks = s.run(&any_flow(), 8);
    assert_eq!(picks.iter().filter(|p| **p == Some(a)).count(), 6);
    assert_eq!(picks.iter().filter(|p| **p == Some(b)).count(), 2);
}

#[test]
fn wrr_everything_overloaded_gives_none() {
    let mut s = Svc::new(SchedKind::Wrr);
    let a = s.add_cfg(DestConfig::new(rip(1), 80).weight(3).thresholds(1, 0));
    let b = s.add_cfg(DestConfig::new(rip(2), 80).weight(5).thresholds(1, 0));
    s.bind(a, 1, true);
    s.bind(b, 1, true);
    assert_eq!(s.run(&any_flow(), 4), vec![None; 4]);
    s.unbind(b, 1, true);
    assert_eq!(s.schedule(&any_flow()), Some(b));
}

// ---------------------------------------------------------------- lc wlc sed nq fo ovf

#[test]
fn lc_ties_go_to_first_in_list_and_weight_is_only_a_filter() {
    let mut s = Svc::new(SchedKind::Lc);
    let a = s.add(1, 1);
    let b = s.add(2, 100);
    let c = s.add(3, 5);
    // list c b a, all idle: c.
    assert_eq!(s.schedule(&any_flow()), Some(c));
    s.bind(c, 1, false); // c overhead 1
    assert_eq!(s.schedule(&any_flow()), Some(b));
    s.bind(b, 1, false);
    s.bind(a, 1, true); // a overhead 256
    assert_eq!(s.schedule(&any_flow()), Some(c), "tie at 1 → first");
    s.edit(c, |c| c.weight = 0);
    assert_eq!(s.schedule(&any_flow()), Some(b));
}

#[test]
fn wlc_uses_cross_multiplication_and_first_wins_ties() {
    let mut s = Svc::new(SchedKind::Wlc);
    let a = s.add(1, 2);
    let b = s.add(2, 1);
    // list b a; loads b=1 (1/1), a=2 (2/2): tie → b.
    s.bind(b, 1, false);
    s.bind(a, 2, false);
    assert_eq!(s.schedule(&any_flow()), Some(b));
    s.bind(b, 1, false); // b 2/1 > a 2/2
    assert_eq!(s.schedule(&any_flow()), Some(a));
    // Active connections weigh 256 inactive ones.
    s.bind(a, 1, true); // a (256+2)/2 = 129 vs b 2
    assert_eq!(s.schedule(&any_flow()), Some(b));
    s.edit(b, |c| c.weight = 0);
    assert_eq!(s.schedule(&any_flow()), Some(a));
}

#[test]
fn sed_ignores_inactive_connections() {
    let mut s = Svc::new(SchedKind::Sed);
    let a = s.add(1, 1);
    let b = s.add(2, 1);
    s.bind(b, 50, false); // inactive only: cost still 1
    assert_eq!(s.schedule(&any_flow()), Some(b));
    s.bind(b, 1, true); // b (1+1)/1 vs a 1/1
    assert_eq!(s.schedule(&any_flow()), Some(a));
}

#[test]
fn nq_returns_first_idle_even_if_not_the_cheapest() {
    let mut s = Svc::new(SchedKind::Nq);
    let a = s.add(1, 1); // idle, weight 1: cost 1/1
    let b = s.add(2, 100); // busy: cost (1+1)/100, the cheaper
    s.bind(b, 1, true);
    assert_eq!(s.schedule(&any_flow()), Some(a));
    s.bind(a, 1, true); // nobody idle: (2/1) vs (2/100)
    assert_eq!(s.schedule(&any_flow()), Some(b));
}

#[test]
fn fo_takes_highest_weight_first_on_ties_and_skips_overload() {
    let mut s = Svc::new(SchedKind::Fo);
    let a = s.add_cfg(DestConfig::new(rip(1), 80).weight(5).thresholds(2, 0));
    let b = s.add(2, 5);
    let c = s.add(3, 3);
    // list c b a: b and a tie at 5 → b.
    assert_eq!(s.schedule(&any_flow()), Some(b));
    s.edit(b, |c| c.weight = 0);
    assert_eq!(s.schedule(&any_flow()), Some(a));
    s.bind(a, 2, false);
    assert_eq!(s.schedule(&any_flow()), Some(c));
    s.unbind(a, 1, false); // 1*4 < 2*3 → cleared
    assert_eq!(s.schedule(&any_flow()), Some(a));
}

#[test]
fn ovf_allows_active_equal_to_weight_but_not_above() {
    let mut s = Svc::new(SchedKind::Ovf);
    let b = s.add(2, 1);
    let a = s.add(1, 2);
    s.bind(a, 2, true);
    assert_eq!(
        s.schedule(&any_flow()),
        Some(a),
        "active == weight is eligible"
    );
    s.bind(a, 1, true);
    assert_eq!(s.schedule(&any_flow()), Some(b));
    s.bind(b, 2, true);
    assert_eq!(s.schedule(&any_flow()), None);
    // Inactive connections do not count.
    s.unbind(a, 1, true);
    s.bind(a, 10, false);
    assert_eq!(s.schedule(&any_flow()), Some(a));
}

// ---------------------------------------------------------------- twos

#[test]
fn twos_walks_weights_and_prefers_less_loaded_per_weight() {
    let mut s = Svc::new(SchedKind::Twos);
    let a = s.add(1, 1);
    let b = s.add(2, 3);
    let c = s.add(3, 0);
    // list c(0) b(3) a(1); total 4; r ∈ [0,4]. r=0..3 → b, r=4 → a.
    let mut pick = |r1: u32, r2: u32| {
        let mut rng = Script(vec![r1, r2], 0);
        let now = Time(0);
        s.table.schedule(s.id, &any_flow(), now, &mut rng)
    };
    assert_eq!(pick(0, 0), Some(b));
    assert_eq!(pick(3, 3), Some(b));
    assert_eq!(pick(4, 4), Some(a));
    // Both idle: equal → choice 1.
    assert_eq!(pick(4, 0), Some(a));
    assert_eq!(pick(0, 4), Some(b));
    let _ = c;
    s.bind(b, 1, false);
    let mut rng = Script(vec![0, 4], 0);
    assert_eq!(
        s.table.schedule(s.id, &any_flow(), Time(0), &mut rng),
        Some(a)
    );
}

// ---------------------------------------------------------------- sh

#[test]
fn sh_bucket_examples_and_weighted_fill() {
    assert_eq!(hash_32(0x0a00_0002, 8), 137);
    let mut s = Svc::new(SchedKind::Sh);
    let z = s.add(3, 0);
    let y = s.add(2, 1);
    let x = s.add(1, 2);
    // list weights [2, 1, 0] → buckets x x y z x x y z …: 128/64/64.
    let Some(Scheduler::Sh(sh)) = s.table.service(s.id).and_then(|v| v.scheduler()) else {
        panic!("not sh");
    };
    let b = sh.buckets();
    assert_eq!(b.len(), 256);
    assert_eq!(&b[..4], &[Some(x), Some(x), Some(y), Some(z)]);
    let count = |d| b.iter().filter(|e| **e == Some(d)).count();
    assert_eq!((count(x), count(y), count(z)), (128, 64, 64));
    // 10.0.0.2 → bucket 137 → 137 % 4 = 1 → x.
    let f = flow(
        "10.0.0.2".parse().unwrap(),
        5555,
        "192.0.2.1".parse().unwrap(),
    );
    assert_eq!(s.schedule(&f), Some(x));
    // 10.0.0.3 → 235 → 235 % 4 = 3 → z, weight 0: none without fallback.
    let g = flow(
        "10.0.0.3".parse().unwrap(),
        5555,
        "192.0.2.1".parse().unwrap(),
    );
    assert_eq!(s.schedule(&g), None);
}

#[test]
fn sh_port_flag_hashes_the_source_port() {
    let mut s = Svc::with(SchedKind::Sh, ServiceFlags::SH_PORT, SchedParams::default());
    let ids: Vec<_> = (1..=4).map(|i| s.add(i, 1)).collect();
    // 10.0.0.2 with port 12345 → bucket 232 → 232 % 4 = 0 → list head = the last added.
    let f = flow(
        "10.0.0.2".parse().unwrap(),
        12345,
        "192.0.2.1".parse().unwrap(),
    );
    assert_eq!(s.schedule(&f), Some(ids[3]));
    // Without the flag the port is ignored: bucket 137 → 1 → ids[2].
    let mut t = Svc::new(SchedKind::Sh);
    let ids: Vec<_> = (1..=4).map(|i| t.add(i, 1)).collect();
    assert_eq!(t.schedule(&f), Some(ids[2]));
}

#[test]
fn sh_fallback_first_probe_is_twice_the_hash() {
    let mut s = Svc::with(
        SchedKind::Sh,
        ServiceFlags::SH_FALLBACK,
        SchedParams::default(),
    );
    // 8 destinations of weight 1: bucket i → list position i % 8.
    let ids: Vec<_> = (1..=8).map(|i| s.add(i, 1)).collect();
    let list: Vec<DestId> = s.table.service(s.id).unwrap().dests.clone();
    let f = flow("10.0.0.2".parse().unwrap(), 1, "192.0.2.1".parse().unwrap());
    // ih = 137 → position 1; make it unusable via OVERLOAD.
    let victim = list[137 % 8];
    s.edit(victim, |c| c.u_threshold = 1);
    s.bind(victim, 1, false);
    // The kernel probes bucket (2*137 + o) % 256: first 274 % 256 = 18 → position 2.
    assert_eq!(s.schedule(&f), Some(list[18 % 8]));
    // Without the quirk it would have been position 138 % 8 = 2 as well; make 2 unusable too
    // and check the walk continues from 19 (position 3) rather than 139 (position 3) … use a
    // distinguishing case: overload 2 and 3, the kernel's next probe 20 → position 4.
    for p in [2usize, 3] {
        let d = list[p];
        s.edit(d, |c| c.u_threshold = 1);
        s.bind(d, 1, false);
    }
    assert_eq!(s.schedule(&f), Some(list[4]));
    // Everything unusable → none, quickly.
    for &d in &ids {
        if !s.table.dests[d].overload {
            s.edit(d, |c| c.u_threshold = 1);
            s.bind(d, 1, false);
        }
    }
    assert_eq!(s.schedule(&f), None);
    s.unbind(ids[0], 1, false);
    assert_eq!(s.schedule(&f), Some(ids[0]));
}

#[test]
fn sh_fallback_probe_sequence_differs_from_plain_linear_probe() {
    // ih = 235 (10.0.0.3): the kernel probes 2*235 % 256 = 214, then 215, …; a linear probe
    // from ih + 1 would hit 236. With 256 weight-1 destinations every bucket is its own.
    let mut s = Svc::with(
        SchedKind::Sh,
        ServiceFlags::SH_FALLBACK,
        SchedParams::default(),
    );
    for i in 0..=255u8 {
        s.add_cfg(DestConfig::new(IpAddr::from([10, 9, 0, i]), 80));
    }
    let list: Vec<DestId> = s.table.service(s.id).unwrap().dests.clone();
    let victim = list[235];
    s.edit(victim, |c| c.weight = 0);
    let f = flow("10.0.0.3".parse().unwrap(), 1, "192.0.2.1".parse().unwrap());
    assert_eq!(s.schedule(&f), Some(list[214]));
}

#[test]
fn sh_table_bits_come_from_params() {
    let params = SchedParams {
        sh_tab_bits: 4,
        ..SchedParams::default()
    };
    let mut s = Svc::with(SchedKind::Sh, 0, params);
    s.add(1, 1);
    let Some(Scheduler::Sh(sh)) = s.table.service(s.id).and_then(|v| v.scheduler()) else {
        panic!("not sh");
    };
    assert_eq!(sh.buckets().len(), 16);
}

// ---------------------------------------------------------------- dh

#[test]
fn dh_ignores_weights_hashes_destination_and_is_not_rebuilt_on_edit() {
    let mut s = Svc::new(SchedKind::Dh);
    let a = s.add(1, 1);
    let b = s.add(2, 7);
    // list b a: bucket i → b if even.
    let to = |d: &str| flow("198.51.100.1".parse().unwrap(), 1, d.parse().unwrap());
    // hash_32(10.0.0.2, 8) = 137 (odd) → a; 10.0.0.3 → 235 → a; 192.168.1.100 → 89 → a.
    assert_eq!(s.schedule(&to("10.0.0.2")), Some(a));
    let even = (0u32..)
        .map(|k| IpAddr::from((0x0a00_0000u32 + k).to_be_bytes()))
        .find(|ip| hash_32(rvs_core::addr::fold(ip), 8).is_multiple_of(2))
        .unwrap();
    let fe = flow("198.51.100.1".parse().unwrap(), 1, even);
    assert_eq!(s.schedule(&fe), Some(b));
    // Edit does not rebuild; weight 0 and OVERLOAD make the bucket fail (no fallback).
    let before = match s.table.service(s.id).and_then(|v| v.scheduler()) {
        Some(Scheduler::Dh(d)) => d.buckets().to_vec(),
        _ => panic!("not dh"),
    };
    s.edit(b, |c| c.weight = 0);
    let after = match s.table.service(s.id).and_then(|v| v.scheduler()) {
        Some(Scheduler::Dh(d)) => d.buckets().to_vec(),
        _ => panic!("not dh"),
    };
    assert_eq!(before, after);
    assert_eq!(s.schedule(&fe), None);
    s.edit(b, |c| {
        c.weight = 1;
        c.u_threshold = 1;
        c.l_threshold = 0;
    });
    assert_eq!(s.schedule(&fe), Some(b));
    s.bind(b, 1, false);
    assert_eq!(s.schedule(&fe), None);
    s.unbind(b, 1, false);
    assert_eq!(s.schedule(&fe), Some(b));
    // Delete rebuilds: everything goes to a.
    s.del(b);
    assert_eq!(s.schedule(&fe), Some(a));
}

// ---------------------------------------------------------------- mh

#[test]
fn mh_offsets_and_skips_of_the_spec() {
    let m = 4093;
    let os = |a: &str| mh_offset_skip(Family::Inet, &a.parse().unwrap(), 80, m);
    assert_eq!(os("10.0.0.1"), (3167, 700));
    assert_eq!(os("10.0.0.2"), (1231, 3544));
    assert_eq!(os("10.0.0.3"), (1631, 3453));
}

fn mh_table(s: &Svc) -> Vec<Option<DestId>> {
    match s.table.service(s.id).and_then(|v| v.scheduler()) {
        Some(Scheduler::Mh(m)) => m.table().to_vec(),
        _ => panic!("not mh"),
    }
}

#[test]
fn mh_populates_by_preference_and_weight() {
    let mut s = Svc::new(SchedKind::Mh);
    let a = s.add_cfg(DestConfig::new("10.0.0.1".parse().unwrap(), 80));
    let b = s.add_cfg(DestConfig::new("10.0.0.2".parse().unwrap(), 80).weight(3));
    let t = mh_table(&s);
    assert_eq!(t.len(), 4093);
    assert!(t.iter().all(Option::is_some));
    // First claims: list order b (turns 3) then a (turns 1); b takes its offset 1231 first,
    // a its offset 3167.
    assert_eq!(t[1231], Some(b));
    assert_eq!(t[3167], Some(a));
    let nb = t.iter().filter(|e| **e == Some(b)).count();
    assert_eq!(nb, 4093 - t.iter().filter(|e| **e == Some(a)).count());
    // Weight 3:1 → b holds 3 of every 4 claims: ceil(4093 * 3 / 4).
    assert_eq!(nb, 3070);
}

#[test]
fn mh_weight_zero_keeps_table_and_fallback_moves_only_its_keys() {
    let mut s = Svc::with(
        SchedKind::Mh,
        ServiceFlags::MH_FALLBACK,
        SchedParams::default(),
    );
    let ids: Vec<_> = (1..=5).map(|i| s.add(i, 1)).collect();
    let before_table = mh_table(&s);
    let before: Vec<_> = s.clients(2000);
    s.edit(ids[2], |c| c.weight = 0);
    assert_eq!(mh_table(&s), before_table, "last_weight keeps the table");
    let after: Vec<_> = s.clients(2000);
    for (x, y) in before.iter().zip(&after) {
        if *x != Some(ids[2]) {
            assert_eq!(x, y);
        } else {
            assert!(y.is_some() && *y != Some(ids[2]));
        }
    }
    // Without fallback those keys get none.
    let mut t = Svc::new(SchedKind::Mh);
    let ids: Vec<_> = (1..=5).map(|i| t.add(i, 1)).collect();
    t.edit(ids[2], |c| c.weight = 0);
    let picks = t.clients(2000);
    assert!(picks.contains(&None));
    assert!(!picks.contains(&Some(ids[2])));
}

#[test]
fn mh_fallback_rehashes_the_offset() {
    use rvs_core::hash::hsiphash_1u32;
    let mut s = Svc::with(
        SchedKind::Mh,
        ServiceFlags::MH_FALLBACK,
        SchedParams::default(),
    );
    for i in 1..=20 {
        s.add(i, 1);
    }
    let t = mh_table(&s);
    let f = flow("10.0.0.2".parse().unwrap(), 1, "192.0.2.1".parse().unwrap());
    let v = 0x0a00_0002u32;
    let ih = hsiphash_1u32(v, 2_654_435_761) % 4093;
    let victim = t[ih as usize].unwrap();
    s.edit(victim, |c| c.u_threshold = 1);
    s.bind(victim, 1, false);
    // Kernel: probe H(v + (o + ih) % M) % M for o = 0, 1, …
    let expect = (0..4093u32)
        .map(|o| t[(hsiphash_1u32(v.wrapping_add((o + ih) % 4093), 2_654_435_761) % 4093) as usize])
        .find(|d| d.is_some_and(|d| d != victim))
        .flatten();
    assert!(expect.is_some());
    assert_eq!(s.schedule(&f), expect);
}

#[test]
fn mh_table_size_comes_from_params() {
    let params = SchedParams {
        mh_tab_index: 8,
        ..SchedParams::default()
    };
    let mut s = Svc::with(SchedKind::Mh, 0, params);
    s.add(1, 1);
    assert_eq!(mh_table(&s).len(), 251);
}

// ---------------------------------------------------------------- lblc / lblcr

#[test]
fn lblc_sticks_to_cached_dest_even_when_threshold_overloaded() {
    let mut s = Svc::new(SchedKind::Lblc);
    let b = s.add(2, 10);
    let a = s.add_cfg(DestConfig::new(rip(1), 80).weight(10).thresholds(1, 0));
    let f = client(3);
    assert_eq!(s.schedule(&f), Some(a)); // both idle: first in list
    s.bind(a, 1, false);
    assert!(s.table.dests[a].overload);
    // Cached: the OVERLOAD flag is not checked for the cache hit (kernel behaviour).
    assert_eq!(s.schedule(&f), Some(a));
    // A new destination IP goes through wlc, which skips OVERLOAD.
    assert_eq!(s.schedule(&client(4)), Some(b));
}

#[test]
fn lblc_reschedules_when_cached_dest_is_lblc_overloaded() {
    let mut s = Svc::new(SchedKind::Lblc);
    let b = s.add(2, 4);
    let a = s.add(1, 2);
    let f = client(3);
    assert_eq!(s.schedule(&f), Some(a));
    s.bind(a, 3, true); // active 3 > weight 2, and b has 0*2 < 4
    assert_eq!(s.schedule(&f), Some(b));
    // The entry now points at b.
    s.bind(a, 0, true);
    assert_eq!(s.schedule(&f), Some(b));
    // Weight 0 on the cached dest reschedules too.
    s.edit(b, |c| c.weight = 0);
    s.unbind(a, 3, true);
    assert_eq!(s.schedule(&f), Some(a));
}

#[test]
fn lblc_overloaded_needs_a_half_idle_dest() {
    let mut s = Svc::new(SchedKind::Lblc);
    let b = s.add(2, 2);
    let a = s.add(1, 2);
    let f = client(3);
    assert_eq!(s.schedule(&f), Some(a));
    s.bind(a, 3, true);
    s.bind(b, 1, true); // b: 1*2 < 2 false → nobody half idle → a not lblc-overloaded
    assert_eq!(s.schedule(&f), Some(a));
    s.unbind(b, 1, true);
    assert_eq!(s.schedule(&f), Some(b));
}

#[test]
fn lblc_gc_full_expiration_every_thirty_runs() {
    let params = SchedParams {
        lblc_expiration: 600,
        ..SchedParams::default()
    };
    let mut s = Svc::with(SchedKind::Lblc, 0, params);
    s.add(1, 1);
    for k in 0..100 {
        s.schedule(&client(k));
    }
    let entries = |s: &Svc| match s.table.service(s.id).and_then(|v| v.scheduler()) {
        Some(Scheduler::Lblc(l)) => l.entries(),
        _ => panic!("not lblc"),
    };
    assert_eq!(entries(&s), 100);
    // Runs at 60, 120, …; the 30th (counter 30) at 1800 s is the full scan.
    for t in 1..=25u64 {
        s.table.tick(Time::from_secs(60 * t));
    }
    // Keep 10 entries alive at 1500 s.
    s.now = Time::from_secs(1500);
    for k in 0..10 {
        s.schedule(&client(k));
    }
    for t in 26..30u64 {
        s.table.tick(Time::from_secs(60 * t));
    }
    assert_eq!(entries(&s), 100);
    s.table.tick(Time::from_secs(1800));
    assert_eq!(entries(&s), 10, "idle ≥ 600 s removed, fresh ones kept");
}

#[test]
fn lblc_gc_over_limit_removes_idle_entries_toward_the_goal() {
    let mut s = Svc::new(SchedKind::Lblc);
    s.add(1, 1);
    for k in 0..17_000 {
        s.schedule(&client(k));
    }
    let entries = |s: &Svc| match s.table.service(s.id).and_then(|v| v.scheduler()) {
        Some(Scheduler::Lblc(l)) => l.entries(),
        _ => panic!("not lblc"),
    };
    assert_eq!(entries(&s), 17_000);
    // Not idle for 360 s yet: nothing goes.
    s.table.tick(Time::from_secs(60));
    assert_eq!(entries(&s), 17_000);
    s.table.tick(Time::from_secs(360));
    let left = entries(&s);
    // goal = (17000 − 16384) * 4 / 3 = 821, checked after whole buckets.
    assert!(left <= 17_000 - 821, "{left}");
    assert!(left > 17_000 - 821 - 200, "{left}");
}

#[test]
fn lblcr_grows_the_set_and_prunes_the_most_loaded_after_expiration() {
    let params = SchedParams {
        lblcr_expiration: 100,
        ..SchedParams::default()
    };
    let mut s = Svc::with(SchedKind::Lblcr, 0, params);
    let b = s.add(2, 2);
    let a = s.add(1, 2);
    let f = client(7);
    assert_eq!(s.schedule(&f), Some(a));
    s.bind(a, 3, true); // lblc-overloaded while b is half idle → wlc → b joins the set
    assert_eq!(s.schedule(&f), Some(b));
    // Set {b, a}: min is b (0/2) and it is fine.
    assert_eq!(s.schedule(&f), Some(b));
    // After the expiration the most loaded member (a) is dropped, then b is used.
    s.now = Time::from_secs(101);
    assert_eq!(s.schedule(&f), Some(b));
    s.unbind(a, 3, true);
    s.bind(b, 1, false);
    // a is no longer in the set: b (1/2) is returned although a (0/2) is less loaded.
    assert_eq!(s.schedule(&f), Some(b));
    // A new IP goes by wlc: a.
    assert_eq!(s.schedule(&client(8)), Some(a));
}

#[test]
fn lblcr_skips_overloaded_and_removed_members() {
    let mut s = Svc::new(SchedKind::Lblcr);
    let b = s.add(2, 1);
    let a = s.add_cfg(DestConfig::new(rip(1), 80).thresholds(1, 0));
    let f = client(7);
    assert_eq!(s.schedule(&f), Some(a));
    s.bind(a, 1, false); // OVERLOAD: set_min skips it (unlike lblc's cache hit)
    assert_eq!(s.schedule(&f), Some(b));
    s.unbind(a, 1, false);
    // Set {b, a}, b first: both 0 load → b.
    assert_eq!(s.schedule(&f), Some(b));
    s.del(b);
    assert_eq!(s.schedule(&f), Some(a));
}

// ---------------------------------------------------------------- every scheduler

fn fallback_flags(kind: SchedKind) -> u32 {
    match kind {
        SchedKind::Sh | SchedKind::Mh => ServiceFlags::SCHED1,
        _ => 0,
    }
}

/// A (weight 3, thresholds u=4 l=2, list head) and B (weight 1, 10 inactive connections).
/// Returns how many of `n` varied flows went to A, and whether any got none.
fn hysteresis_setup(kind: SchedKind) -> (Svc, DestId, DestId) {
    let mut s = Svc::with(kind, fallback_flags(kind), SchedParams::default());
    let b = s.add(2, 1);
    s.bind(b, 10, false);
    let a = s.add_cfg(DestConfig::new(rip(1), 80).weight(3).thresholds(4, 2));
    (s, a, b)
}

fn count(s: &mut Svc, base: u32, n: u32, d: DestId) -> (usize, usize) {
    let picks: Vec<_> = (base..base + n).map(|k| s.schedule(&client(k))).collect();
    (
        picks.iter().filter(|p| **p == Some(d)).count(),
        picks.iter().filter(|p| p.is_none()).count(),
    )
}

#[test]
fn every_scheduler_skips_overloaded_until_hysteresis_clears() {
    for kind in SchedKind::ALL {
        let (mut s, a, _b) = hysteresis_setup(kind);
        let (to_a, none) = count(&mut s, 0, 200, a);
        assert!(to_a > 0, "{kind:?}: A is used while healthy");
        assert_eq!(none, 0, "{kind:?}");
        s.bind(a, 4, false);
        assert!(s.table.dests[a].overload);
        // Fresh flows (fresh destination IPs for lblc/lblcr) never go to A.
        let (to_a, none) = count(&mut s, 1000, 200, a);
        assert_eq!(to_a, 0, "{kind:?}: overloaded A used");
        if kind == SchedKind::Dh {
            // dh has no fallback: A's destination IPs get none.
            assert!(none > 0, "{kind:?}");
        } else {
            assert_eq!(none, 0, "{kind:?}: B should take everything");
        }
        s.unbind(a, 2, false); // 2 left, not < l_threshold 2
        assert!(s.table.dests[a].overload, "{kind:?}");
        let (to_a, _) = count(&mut s, 2000, 200, a);
        assert_eq!(to_a, 0, "{kind:?}: still overloaded");
        s.unbind(a, 1, false); // 1 < 2: cleared
        assert!(!s.table.dests[a].overload, "{kind:?}");
        let (to_a, none) = count(&mut s, 3000, 200, a);
        assert!(to_a > 0, "{kind:?}: A back in use");
        assert_eq!(none, 0, "{kind:?}");
    }
}

#[test]
fn every_scheduler_upper_threshold_alone_clears_at_three_quarters() {
    for kind in SchedKind::ALL {
        let mut s = Svc::with(kind, fallback_flags(kind), SchedParams::default());
        let b = s.add(2, 1);
        s.bind(b, 10, false);
        let a = s.add_cfg(DestConfig::new(rip(1), 80).weight(3).thresholds(8, 0));
        s.bind(a, 8, false);
        assert!(s.table.dests[a].overload);
        s.unbind(a, 2, false); // 6*4 = 24 < 24? no
        assert_eq!(count(&mut s, 0, 100, a).0, 0, "{kind:?}");
        s.unbind(a, 1, false); // 5*4 = 20 < 24: cleared
        assert!(!s.table.dests[a].overload);
        // wlc family: a (5/3) beats b (10/1); rr/wrr/hashes/twos: a gets a share.
        assert!(count(&mut s, 500, 200, a).0 > 0, "{kind:?}");
    }
}

#[test]
fn every_scheduler_never_picks_weight_zero() {
    for kind in SchedKind::ALL {
        for flags in [0, fallback_flags(kind)] {
            let mut s = Svc::with(kind, flags, SchedParams::default());
            let ids: Vec<_> = (1..=4).map(|i| s.add(i, 2)).collect();
            let zero = ids[1];
            s.edit(zero, |c| c.weight = 0);
            let picks = s.clients(300);
            assert!(!picks.contains(&Some(zero)), "{kind:?} flags {flags}");
            let nones = picks.iter().filter(|p| p.is_none()).count();
            match kind {
                // Hashing without fallback: keys on the weight-0 destination get none (dh's
                // table maps destination IPs, and the test flows vary those too).
                SchedKind::Sh | SchedKind::Mh | SchedKind::Dh if flags == 0 => {
                    assert!(nones > 0, "{kind:?}")
                }
                _ => assert_eq!(nones, 0, "{kind:?} flags {flags}"),
            }
        }
    }
}

#[test]
fn every_scheduler_with_no_destination_or_all_overloaded_gives_none() {
    for kind in SchedKind::ALL {
        let mut s = Svc::with(kind, fallback_flags(kind), SchedParams::default());
        assert_eq!(s.schedule(&client(1)), None, "{kind:?} empty");
        let ids: Vec<_> = (1..=3)
            .map(|i| s.add_cfg(DestConfig::new(rip(i), 80).thresholds(1, 0)))
            .collect();
        for &d in &ids {
            s.bind(d, 1, true);
        }
        let picks = s.clients(50);
        assert!(picks.iter().all(Option::is_none), "{kind:?}");
        s.unbind(ids[0], 1, true);
        let picks = s.clients(50);
        match kind {
            SchedKind::Sh | SchedKind::Mh | SchedKind::Twos | SchedKind::Rr | SchedKind::Wrr => {
                assert!(picks.iter().all(|p| *p == Some(ids[0])), "{kind:?}")
            }
            SchedKind::Dh => assert!(picks.contains(&Some(ids[0])), "{kind:?}"),
            _ => assert!(picks.iter().all(|p| *p == Some(ids[0])), "{kind:?}"),
        }
    }
}

#[test]
fn every_scheduler_breaks_full_ties_by_list_order_or_table() {
    // Identical destinations: the list-order schedulers pick the head (newest) first.
    for kind in [
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Fo,
        SchedKind::Ovf,
        SchedKind::Lblc,
        SchedKind::Lblcr,
    ] {
        let mut s = Svc::new(kind);
        let _a = s.add(1, 2);
        let b = s.add(2, 2);
        assert_eq!(s.schedule(&client(1)), Some(b), "{kind:?}");
    }
    // twos with r1 = r2 = 0 takes the first eligible one.
    let mut s = Svc::new(SchedKind::Twos);
    s.add(1, 2);
    let b = s.add(2, 2);
    let mut rng = Script(vec![0, 0], 0);
    assert_eq!(
        s.table.schedule(s.id, &client(1), Time(0), &mut rng),
        Some(b)
    );
    // Hashing schedulers: the same key always gives the same destination.
    for kind in [SchedKind::Sh, SchedKind::Dh, SchedKind::Mh] {
        let mut s = Svc::new(kind);
        for i in 1..=7 {
            s.add(i, 1);
        }
        let first = s.clients(100);
        assert_eq!(s.clients(100), first, "{kind:?}");
    }
}

#[test]
fn scheduler_changed_by_service_edit_sees_existing_dests() {
    let mut s = Svc::new(SchedKind::Rr);
    let a = s.add(1, 1);
    let b = s.add(2, 5);
    s.bind(b, 3, false);
    for kind in SchedKind::ALL {
        let cfg = rvs_core::ServiceConfig::new(kind, Family::Inet);
        s.table.edit_service(&s.key, cfg, Time(0)).unwrap();
        let p = s.schedule(&client(9));
        assert!(p == Some(a) || p == Some(b), "{kind:?}");
    }
    // wlc: a 0/1 beats b 3/5.
    let cfg = rvs_core::ServiceConfig::new(SchedKind::Wlc, Family::Inet);
    s.table.edit_service(&s.key, cfg, Time(0)).unwrap();
    assert_eq!(s.schedule(&client(9)), Some(a));
}

// ---------------------------------------------------------------- families, inverse, errors

#[test]
fn sh_and_mh_hash_the_destination_side_for_inverse_flows() {
    for kind in [SchedKind::Sh, SchedKind::Mh] {
        let flags = ServiceFlags::SCHED2; // *-port
        let mut s = Svc::with(kind, flags, SchedParams::default());
        for i in 1..=9 {
            s.add(i, 1 + u32::from(i % 3));
        }
        for k in 0..200u32 {
            let c = client(k);
            let forward = s.schedule(&c);
            // An ICMP error travelling the other way: the client is the destination.
            let mut inv = c;
            inv.inverse = true;
            inv.saddr = "198.18.0.1".parse().unwrap();
            inv.sport = 7;
            inv.daddr = c.saddr;
            inv.dport = c.sport;
            assert_eq!(s.schedule(&inv), forward, "{kind:?}");
        }
        // Without a transport protocol the port is 0 even with the flag.
        let mut plain = Svc::with(kind, 0, SchedParams::default());
        let mut ported = Svc::with(kind, flags, SchedParams::default());
        for i in 1..=9 {
            plain.add(i, 1);
            ported.add(i, 1);
        }
        for k in 0..50u32 {
            let mut c = client(k);
            c.proto = None;
            assert_eq!(plain.schedule(&c), ported.schedule(&c), "{kind:?}");
        }
    }
}

#[test]
fn ipv6_services_fold_addresses_like_the_kernel() {
    use rvs_core::{Protocol, ServiceConfig, ServiceKey, ServiceTable};
    let mut t = ServiceTable::new();
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: "2001:db8::80".parse().unwrap(),
        port: 443,
    };
    t.add_service(
        key,
        ServiceConfig::new(SchedKind::Sh, Family::Inet6),
        Time(0),
    )
    .unwrap();
    let ids: Vec<DestId> = (1..=4u16)
        .map(|i| {
            let a: IpAddr = format!("2001:db8:1::{i}").parse().unwrap();
            t.add_dest(&key, DestConfig::new(a, 443), Time(0)).unwrap()
        })
        .collect();
    let list = t.service(t.id_of(&key).unwrap()).unwrap().dests.clone();
    assert_eq!(list.len(), ids.len());
    let c: IpAddr = "2001:db8::1".parse().unwrap();
    // fold = 0x20010db8 ^ 0 ^ 0 ^ 1
    let bucket = hash_32(0x2001_0db9, 8) as usize;
    let f = flow(c, 1, "2001:db8::80".parse().unwrap());
    let sid = t.id_of(&key).unwrap();
    let got = t.schedule(sid, &f, Time(0), &mut sched_util::Lcg(1));
    assert_eq!(got, Some(list[bucket % 4]));
    // mh offsets of an IPv6 destination use the same fold.
    let a: IpAddr = "2001:db8:1::1".parse().unwrap();
    let v = 443u32.wrapping_add(0x2001_0db8 ^ 0x0001_0000 ^ 1);
    let (off, _) = mh_offset_skip(Family::Inet6, &a, 443, 4093);
    assert_eq!(
        off,
        rvs_core::hash::hsiphash_1u32(v, rvs_core::sched::MH_K1) % 4093
    );
    // An IPv6 (tunnel) destination of an IPv4 service folds to its first word (`addr->ip`).
    assert_eq!(rvs_core::sched::fold_af(Family::Inet, &a), 0x2001_0db8);
    assert_eq!(
        rvs_core::sched::fold_af(Family::Inet6, &"10.0.0.1".parse().unwrap()),
        0x0a00_0001
    );
}

#[test]
fn mh_rejects_bad_table_index_and_too_many_dests() {
    use rvs_core::sched::DestView;
    let arena = rvs_core::dest::DestArena::default();
    let view = DestView {
        ids: &[],
        arena: &arena,
    };
    let bad = SchedParams {
        mh_tab_index: 18,
        ..SchedParams::default()
    };
    let flags = ServiceFlags::default();
    assert!(Scheduler::new(SchedKind::Mh, &view, flags, &bad, Time(0)).is_err());
    // 252 destinations cannot be switched to mh with a 251-slot table.
    let small = SchedParams {
        mh_tab_index: 8,
        ..SchedParams::default()
    };
    let mut s = Svc::with(SchedKind::Rr, 0, small);
    for i in 0..252u32 {
        s.add_cfg(DestConfig::new(
            IpAddr::from((0x0a09_0000 + i).to_be_bytes()),
            80,
        ));
    }
    let cfg = rvs_core::ServiceConfig::new(SchedKind::Mh, Family::Inet);
    assert!(s.table.edit_service(&s.key, cfg, Time(0)).is_err());
}

#[test]
fn lblc_stale_entry_of_deleted_dest_is_rejected_and_valid_again_after_re_add() {
    let mut s = Svc::new(SchedKind::Lblc);
    let b = s.add(2, 1);
    let a = s.add(1, 1);
    let f = client(5);
    assert_eq!(s.schedule(&f), Some(a));
    s.bind(b, 1, false); // make b the worse wlc choice
    s.del(a);
    assert_eq!(s.schedule(&f), Some(b), "stale entry rejected, wlc → b");
    // Re-adding a re-uses the trashed destination (docs/internals/connections.md#services-and-real-servers); the entry now says b, and b is fine.
    let a2 = s.add(1, 1);
    assert_eq!(a2, a, "same destination object re-used from the trash");
    assert_eq!(s.schedule(&f), Some(b));
}

#[test]
fn lblcr_entry_survives_delete_and_re_add_of_its_member() {
    let mut s = Svc::new(SchedKind::Lblcr);
    let b = s.add(2, 1);
    let a = s.add(1, 1);
    let f = client(5);
    assert_eq!(s.schedule(&f), Some(a));
    s.bind(a, 1, false);
    s.del(a);
    // set {a}: a not AVAILABLE → wlc → b, added to the set.
    assert_eq!(s.schedule(&f), Some(b));
    s.bind(b, 2, false);
    let a2 = s.add(1, 1);
    assert_eq!(a2, a);
    // set {b, a}: a is AVAILABLE again and less loaded (1 vs 2).
    assert_eq!(s.schedule(&f), Some(a));
}

#[test]
fn sh_rejects_table_bits_outside_kconfig_range() {
    use rvs_core::sched::DestView;
    let arena = rvs_core::dest::DestArena::default();
    let view = DestView {
        ids: &[],
        arena: &arena,
    };
    for bits in [0u8, 3, 21, 255] {
        let p = SchedParams {
            sh_tab_bits: bits,
            ..SchedParams::default()
        };
        assert!(
            Scheduler::new(SchedKind::Sh, &view, ServiceFlags::default(), &p, Time(0)).is_err()
        );
    }
    let p = SchedParams {
        sh_tab_bits: 20,
        ..SchedParams::default()
    };
    assert!(Scheduler::new(SchedKind::Sh, &view, ServiceFlags::default(), &p, Time(0)).is_ok());
}
