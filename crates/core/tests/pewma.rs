//! pewma, the latency-aware scheduler: slow destinations lose the comparison, weight-0 and
//! OVERLOAD ones are never chosen, exploration keeps every eligible destination measured, and a
//! slow estimate relaxes so that a server is not starved after one bad sample.

mod sched_util;

use rvs_core::latency::PewmaParams;
use rvs_core::{DestConfig, DestId, SchedKind, Time};
use sched_util::{client, rip, Svc};

fn sample(s: &mut Svc, id: DestId, us: u64, at: u64) {
    let p = PewmaParams::default();
    s.table
        .dests
        .get_mut(id)
        .unwrap()
        .latency
        .sample(us, Time(at), &p);
}

fn shares(s: &mut Svc, n: u32, ids: &[DestId]) -> Vec<usize> {
    let picks = s.clients(n);
    assert!(picks.iter().all(Option::is_some), "always a destination");
    ids.iter()
        .map(|id| picks.iter().filter(|p| **p == Some(*id)).count())
        .collect()
}

#[test]
fn a_slow_destination_gets_little_but_not_nothing() {
    let mut s = Svc::new(SchedKind::Pewma);
    let ids: Vec<_> = (1..=3).map(|i| s.add(i, 1)).collect();
    sample(&mut s, ids[0], 500, 0);
    sample(&mut s, ids[1], 500, 0);
    sample(&mut s, ids[2], 20_500, 0);
    let n = 30_000;
    let got = shares(&mut s, n, &ids);
    // The slow one only gets the exploration picks: 1/64 of decisions, 1/3 of those.
    let explore = f64::from(n) / 64.0 / 3.0;
    assert!(
        (got[2] as f64) > explore * 0.6 && (got[2] as f64) < explore * 1.5,
        "slow share {got:?}, exploration ≈ {explore}"
    );
    assert!(got[0] > 13_000 && got[1] > 13_000, "{got:?}");
}

#[test]
fn load_counts_active_connections_and_weights() {
    let mut s = Svc::new(SchedKind::Pewma);
    let a = s.add(1, 1);
    let b = s.add(2, 1);
    sample(&mut s, a, 1000, 0);
    sample(&mut s, b, 3000, 0);
    // a: 1000 × (4 + 1) = 5000 > b: 3000 × 1: b wins the comparisons.
    s.bind(a, 4, true);
    let got = shares(&mut s, 2000, &[a, b]);
    assert!(got[1] > 1900, "{got:?}");
    // Weight 3 on a: 5000 / 3 < 3000 / 1: a wins.
    s.edit(a, |c| c.weight = 3);
    let got = shares(&mut s, 2000, &[a, b]);
    assert!(got[0] > 1900, "{got:?}");
}

#[test]
fn weight_zero_and_overloaded_are_never_chosen() {
    let mut s = Svc::new(SchedKind::Pewma);
    let a = s.add(1, 1);
    let z = s.add(2, 0);
    let o = s.add_cfg(DestConfig::new(rip(3), 80).thresholds(1, 0));
    s.bind(o, 1, true);
    assert!(s.table.dests[o].overload);
    // Make the excluded ones look fastest.
    sample(&mut s, a, 9_000, 0);
    sample(&mut s, z, 50, 0);
    let got = shares(&mut s, 3000, &[a, z, o]);
    assert_eq!(got, vec![3000, 0, 0]);
    s.edit(a, |c| c.weight = 0);
    assert_eq!(s.schedule(&client(1)), None, "nothing eligible");
}

#[test]
fn one_bad_sample_does_not_starve_a_server() {
    let mut s = Svc::new(SchedKind::Pewma);
    let a = s.add(1, 1);
    let b = s.add(2, 1);
    let c = s.add(3, 1);
    sample(&mut s, a, 500, 0);
    sample(&mut s, b, 500, 0);
    // One pathological answer (beyond the 10 s ceiling).
    sample(&mut s, c, 60_000_000, 0);
    s.bind(a, 3, true);
    s.bind(b, 3, true);
    let early = shares(&mut s, 3000, &[a, b, c]);
    assert!(
        early[2] < 60,
        "right after the bad sample c only explores: {early:?}"
    );
    // 20 s later without any sample, c's estimate has relaxed toward the unmeasured 1 ms,
    // below a and b's 500 µs × 4 active: it wins comparisons again.
    s.now = Time(20_000);
    let est = s.table.dests[c]
        .latency
        .estimate(s.now, &PewmaParams::default());
    assert!(est < 1_500.0, "relaxed to {est}");
    let late = shares(&mut s, 3000, &[a, b, c]);
    assert!(late[2] > 1000, "c back in use: {late:?}");
}

#[test]
fn unmeasured_destination_is_tried_and_measured() {
    let mut s = Svc::new(SchedKind::Pewma);
    let a = s.add(1, 1);
    sample(&mut s, a, 5_000, 0);
    let fresh = s.add(2, 1);
    // Without samples the new one counts as 1 ms: faster than a's 5 ms, so it is chosen.
    let got = shares(&mut s, 1000, &[a, fresh]);
    assert!(got[1] > 900, "{got:?}");
}

#[test]
fn listed_by_name_and_not_among_the_kernel_schedulers() {
    assert_eq!(
        SchedKind::from_name("pewma").unwrap(),
        Some(SchedKind::Pewma)
    );
    assert_eq!(SchedKind::Pewma.name(), "pewma");
    assert!(!SchedKind::ALL.contains(&SchedKind::Pewma));
}

#[test]
fn parameters_set_at_run_time_reach_an_existing_scheduler() {
    // `rvs_pewma_explore` on a running table: with one decision in 2 taken blind, the slow
    // destination's share rises from ~1/192 to ~1/6.
    let mut s = Svc::new(SchedKind::Pewma);
    let ids: Vec<_> = (1..=3).map(|i| s.add(i, 1)).collect();
    for (i, us) in [500, 500, 20_500].into_iter().enumerate() {
        sample(&mut s, ids[i], us, 0);
    }
    s.table.set_pewma(PewmaParams {
        explore: 2,
        ..PewmaParams::default()
    });
    let got = shares(&mut s, 6000, &ids);
    assert!(got[2] > 800 && got[2] < 1200, "slow share {got:?}");
    // The parameters are kept for new services too.
    assert_eq!(s.table.params.pewma.explore, 2);
}
