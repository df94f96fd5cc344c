//! Property tests of the schedulers (issue 2): wrr proportions, hashing stability and
//! disruption, and the least-load guarantee of the lc family.

mod sched_util;

use std::net::IpAddr;

use proptest::prelude::*;
use rvs_core::sched::{SchedParams, Scheduler};
use rvs_core::{DestConfig, DestId, Family, SchedKind, ServiceConfig, ServiceFlags, Time};
use sched_util::{client, Svc};

fn addr(i: usize) -> IpAddr {
    IpAddr::from([10, 1, (i / 250) as u8, (i % 250) as u8 + 1])
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn mh_table(s: &Svc) -> Vec<Option<DestId>> {
    match s.table.service(s.id).and_then(|v| v.scheduler()) {
        Some(Scheduler::Mh(m)) => m.table().to_vec(),
        _ => panic!("not mh"),
    }
}

/// Fraction of mh slots that changed owner although their owner was not `victim`.
fn mh_extra_movement(weights: &[u32], victim: usize) -> f64 {
    let mut s = Svc::new(SchedKind::Mh);
    let ids: Vec<_> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| s.add_cfg(DestConfig::new(addr(i), 80).weight(w)))
        .collect();
    let before = mh_table(&s);
    let v = ids[victim % ids.len()];
    s.del(v);
    let after = mh_table(&s);
    let extra = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| **b != Some(v) && b != a)
        .count();
    extra as f64 / before.len() as f64
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// From `init_service` (cw = mw), one cycle of sum(w)/gcd picks gives each destination
    /// exactly weight/gcd picks.
    #[test]
    fn wrr_gives_weight_over_gcd_picks_per_cycle(
        weights in proptest::collection::vec(0u32..7, 1..8),
        scale in 1u32..4,
    ) {
        let weights: Vec<u32> = weights.iter().map(|w| w * scale).collect();
        let mut s = Svc::new(SchedKind::Rr);
        let ids: Vec<_> = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| s.add_cfg(DestConfig::new(addr(i), 80).weight(w)))
            .collect();
        s.table
            .edit_service(&s.key, ServiceConfig::new(SchedKind::Wrr, Family::Inet), Time(0))
            .unwrap();
        let g = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd);
        if g == 0 {
            prop_assert!(s.clients(5).iter().all(Option::is_none));
            return Ok(());
        }
        let cycle: u32 = weights.iter().map(|w| w / g).sum();
        for _round in 0..2 {
            let picks = s.clients(cycle);
            for (id, w) in ids.iter().zip(&weights) {
                let n = picks.iter().filter(|p| **p == Some(*id)).count() as u32;
                prop_assert_eq!(n, w / g);
            }
        }
    }

    /// sh and mh: the same key gives the same destination, and overloading one destination
    /// (with the fallback flag) moves only the keys that were on it.
    #[test]
    fn hashing_is_stable_and_overload_moves_only_its_keys(
        n in 2usize..12,
        weights in proptest::collection::vec(1u32..5, 12),
        victim in 0usize..12,
        mh in any::<bool>(),
        port in any::<bool>(),
    ) {
        let kind = if mh { SchedKind::Mh } else { SchedKind::Sh };
        let flags = ServiceFlags::SCHED1 | if port { ServiceFlags::SCHED2 } else { 0 };
        let mut s = Svc::with(kind, flags, SchedParams::default());
        let ids: Vec<_> = (0..n)
            .map(|i| {
                s.add_cfg(DestConfig::new(addr(i), 80).weight(weights[i]).thresholds(1, 0))
            })
            .collect();
        let before = s.clients(500);
        prop_assert_eq!(&s.clients(500), &before);
        let v = ids[victim % n];
        s.bind(v, 1, true);
        let after = s.clients(500);
        for (b, a) in before.iter().zip(&after) {
            if *b == Some(v) {
                prop_assert!(a.is_some() && *a != Some(v));
            } else {
                prop_assert_eq!(a, b);
            }
        }
        // Clearing the overload restores every key.
        s.unbind(v, 1, true);
        prop_assert_eq!(&s.clients(500), &before);
    }

    /// mh: deleting a destination moves its keys and only a bounded number of others.
    /// Measured at M = 4093 (30 trials each): equal weights, mean extra movement 0.1 % (3
    /// dests) … 3.3 % (100 dests), worst 3.8 %; weights 1..10, mean ≤ 4.5 %, worst 6.9 %
    /// (50 dests). Asserted bounds: 5 % with equal weights, 10 % with weights 1..10.
    #[test]
    fn mh_delete_moves_few_other_keys(
        n in 2usize..60,
        weights in proptest::collection::vec(1u32..11, 60),
        equal in any::<bool>(),
        victim in 0usize..60,
    ) {
        let w: Vec<u32> = if equal { vec![1; n] } else { weights[..n].to_vec() };
        let extra = mh_extra_movement(&w, victim);
        let bound = if equal { 0.05 } else { 0.10 };
        prop_assert!(extra <= bound, "extra {extra} > {bound}");
    }

    /// lc, wlc, sed: never a destination whose weighted load is strictly worse than another
    /// eligible one's. nq: the first idle destination if there is one (kernel rule, which may
    /// be "worse" per weight), else the same guarantee on (active + 1) / weight.
    #[test]
    fn least_family_never_picks_a_strictly_worse_dest(
        loads in proptest::collection::vec((0u32..4, 0u32..6, 0u32..6, any::<bool>()), 1..12),
        which in 0usize..4,
    ) {
        let kind = [SchedKind::Lc, SchedKind::Wlc, SchedKind::Sed, SchedKind::Nq][which];
        let mut s = Svc::new(kind);
        let ids: Vec<_> = loads
            .iter()
            .enumerate()
            .map(|(i, &(w, _, _, ov))| {
                s.add_cfg(
                    DestConfig::new(addr(i), 80)
                        .weight(w)
                        .thresholds(if ov { 1 } else { 0 }, 0),
                )
            })
            .collect();
        for (id, &(_, a, i, _)) in ids.iter().zip(&loads) {
            s.bind(*id, a, true);
            s.bind(*id, i, false);
        }
        let eligible: Vec<DestId> = ids
            .iter()
            .copied()
            .filter(|&d| s.table.dests[d].eligible())
            .collect();
        let got = s.schedule(&client(0));
        let Some(g) = got else {
            prop_assert!(eligible.is_empty());
            return Ok(());
        };
        prop_assert!(eligible.contains(&g));
        // cost as (numerator, weight)
        let cost = |d: DestId| {
            let d = &s.table.dests[d];
            let num = match kind {
                SchedKind::Lc | SchedKind::Wlc => d.overhead(),
                _ => u64::from(d.active) + 1,
            };
            let w = if kind == SchedKind::Lc { 1 } else { u64::from(d.weight()) };
            (u128::from(num), u128::from(w))
        };
        if kind == SchedKind::Nq && eligible.iter().any(|&d| s.table.dests[d].active == 0) {
            prop_assert_eq!(s.table.dests[g].active, 0);
            return Ok(());
        }
        let (gn, gw) = cost(g);
        for &d in &eligible {
            let (dn, dw) = cost(d);
            prop_assert!(gn * dw <= dn * gw, "{kind:?} chose a strictly worse dest");
        }
    }
}

/// sh is not consistent hashing: the kernel re-deals the whole table on every add/delete, so
/// deleting one destination moves keys of others too. This documents (and pins) that kernel
/// behaviour; only OVERLOAD/fallback keeps other keys in place (property above).
#[test]
fn sh_delete_redeals_the_table_like_the_kernel() {
    let mut s = Svc::new(SchedKind::Sh);
    let ids: Vec<_> = (0..4)
        .map(|i| s.add_cfg(DestConfig::new(addr(i), 80)))
        .collect();
    let before = s.clients(1000);
    s.del(ids[2]);
    let after = s.clients(1000);
    let moved_others = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| **b != Some(ids[2]) && b != a)
        .count();
    // 4 → 3 weight-1 destinations: bucket i goes from list[i % 4] to list[i % 3], so about
    // half of all keys move although only a quarter were on the removed destination.
    assert!(moved_others > 300, "{moved_others}");
}
