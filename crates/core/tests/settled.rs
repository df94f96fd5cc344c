//! A director that is ticked only while it has work ([`Director::settled`]) and resumed before
//! each use ([`Director::resume`]) reads exactly like one ticked every 100 ms: rates, counters,
//! connection entries. This is what lets rvsd's ticker skip idle shards; if the estimator
//! skipped a statistic that moved, or a resumed director lost the estimator's phase, the rates
//! would differ here.
//!
//! The reference steps every estimator itself, on the same 2-second grid, as rvs did before
//! (and as the kernel does): its director runs with `run_estimation` off so that its own
//! estimator code is not the oracle.

use std::net::IpAddr;

use rvs_core::conn::{HashSeed, Segment};
use rvs_core::director::Packet;
use rvs_core::estimator::Rates;
use rvs_core::{
    DestConfig, Director, FwdMethod, Protocol, RandomSource, SchedKind, ServiceConfig,
    ServiceFlags, ServiceKey, Time,
};

struct NoRandom;
impl RandomSource for NoRandom {
    fn below(&mut self, _n: u32) -> u32 {
        0
    }
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: ip("10.0.0.1"),
        port,
    }
}

const RS: [&str; 3] = ["192.168.1.1", "192.168.1.2", "192.168.1.3"];

/// Four UDP services: rr, wlc, sh, and a one-packet rr one (its traffic moves the counters
/// without leaving a connection entry). (lblc's cache keeps a director awake for its 24-hour
/// expiration: longer than this test.)
fn director() -> Director {
    let mut d = Director::new(HashSeed([1, 2, 3, 4]), Time(0));
    d.sys.conn.timeouts.set(900, 120, 3).unwrap();
    let cfgs = [
        (53, ServiceConfig::new(SchedKind::Rr, key(53).family())),
        (54, ServiceConfig::new(SchedKind::Wlc, key(54).family())),
        (55, ServiceConfig::new(SchedKind::Sh, key(55).family())),
        (
            56,
            ServiceConfig::new(SchedKind::Rr, key(56).family()).flags(ServiceFlags::ONEPACKET),
        ),
    ];
    for (port, cfg) in cfgs {
        d.table.add_service(key(port), cfg, Time(0)).unwrap();
        for rs in RS {
            d.table
                .add_dest(
                    &key(port),
                    DestConfig::new(ip(rs), 53).fwd(FwdMethod::Masq),
                    Time(0),
                )
                .unwrap();
        }
    }
    d
}

/// The reference director: estimation by the test, every estimator each 2 s.
fn reference() -> Director {
    let mut d = director();
    d.sys.run_estimation = false;
    d
}

/// One tick of the reference at `now`: the director's own work, then every estimator's step
/// when a 2-second period ends (the director's first period ends at 2 s).
fn tick_reference(d: &mut Director, now: Time, pages: u64) {
    d.tick(now, pages, 100_000, &mut NoRandom);
    if now.0.is_multiple_of(2000) {
        d.table.for_each_stats_mut(|s| s.est.tick(s.live));
        let live = d.total.live;
        d.total.est.tick(live);
    }
}

/// What a user can see: every rate and counter, and the number of entries.
fn observed(d: &Director) -> (Vec<(Rates, rvs_core::stats::Counters)>, usize) {
    let mut v = vec![(d.total.est.rates(), d.total.shown())];
    for (_, s) in d.table.services() {
        v.push((s.stats.est.rates(), s.stats.shown()));
        for &id in &s.dests {
            let ds = &d.table.dests.get(id).unwrap().stats;
            v.push((ds.est.rates(), ds.shown()));
        }
    }
    (v, d.conns.len())
}

/// One thing that happens to both directors at `now`.
fn act(d: &mut Director, r: &mut Lcg, now: Time) {
    match r.below(20) {
        0 => d.zero(None),
        1 => {
            // A real server leaves and comes back (its counters and estimator are revived
            // from the trash).
            let k = key(53 + r.below(4) as u16);
            let rs = ip(RS[r.below(3) as usize]);
            if d.del_dest(&k, &rs, 53, now).is_err() {
                let _ = d
                    .table
                    .add_dest(&k, DestConfig::new(rs, 53).fwd(FwdMethod::Masq), now);
            }
        }
        _ => {
            let port = 53 + r.below(4) as u16;
            let n = 1 + r.below(50);
            let client = ip(&format!("172.16.0.{}", 1 + r.below(200)));
            for i in 0..n {
                let payload = [0u8; 100];
                let len = 28 + r.below(1400) as u32;
                let pkt = Packet {
                    fwmark: 0,
                    proto: Protocol::Udp,
                    saddr: client,
                    sport: 1000 + (i % 7) as u16,
                    daddr: ip("10.0.0.1"),
                    dport: port,
                    seg: Segment::Udp,
                    len,
                    payload: &payload,
                };
                let _ = d.packet_in(&pkt, now, &mut NoRandom);
            }
        }
    }
}

#[test]
fn a_director_ticked_only_while_unsettled_reads_like_one_ticked_always() {
    let pages = 1 << 20;
    for seed in 1..=6u64 {
        let mut always = reference();
        let mut lazy = director();
        let (mut ra, mut rl) = (Lcg(seed * 7919), Lcg(seed * 7919));
        let mut awake = true;
        let (mut lazy_ticks, mut steps) = (0u32, 0u32);
        // 40 simulated minutes in 100 ms steps; activity comes in bursts with long quiet
        // stretches between them (so the lazy director really sleeps).
        let mut quiet_until = 0u64;
        let mut gate = Lcg(seed);
        for step in 1..=24_000u64 {
            let now = Time(step * 100);
            if step >= quiet_until && gate.below(100) < 5 {
                if gate.below(4) == 0 {
                    quiet_until = step + 3000 + gate.below(9000);
                }
                if !awake {
                    lazy.resume(now, pages);
                    awake = true;
                }
                act(&mut always, &mut ra, now);
                act(&mut lazy, &mut rl, now);
            }
            tick_reference(&mut always, now, pages);
            if awake {
                lazy.tick(now, pages, 100_000, &mut NoRandom);
                lazy_ticks += 1;
                awake = !lazy.settled();
            }
            steps += 1;
            assert_eq!(
                observed(&always),
                observed(&lazy),
                "seed {seed}: differs at {} ms",
                now.0
            );
        }
        assert!(
            lazy_ticks < steps / 2,
            "seed {seed}: the lazy director slept too little to test anything ({lazy_ticks} of \
             {steps} ticks)"
        );
        assert!(lazy_ticks > 100, "seed {seed}: no activity");
    }
}

/// The estimator's phase survives a long sleep: traffic after an hour at rest is averaged
/// into the same 2-second step as in a director ticked throughout.
#[test]
fn resume_keeps_the_estimator_phase() {
    let mut always = reference();
    let mut lazy = director();
    for step in 1..=30u64 {
        let now = Time(step * 100);
        tick_reference(&mut always, now, 1 << 20);
        lazy.tick(now, 1 << 20, 1000, &mut NoRandom);
    }
    assert!(lazy.settled());
    let late = Time(3_600_000 + 1_300);
    for step in 31..=late.0 / 100 {
        tick_reference(&mut always, Time(step * 100), 1 << 20);
    }
    lazy.resume(late, 1 << 20);
    let mut r = (Lcg(5), Lcg(5));
    for _ in 0..3 {
        act(&mut always, &mut r.0, late);
        act(&mut lazy, &mut r.1, late);
    }
    let mut saw_rates = false;
    for step in late.0 / 100 + 1..late.0 / 100 + 200 {
        let now = Time(step * 100);
        tick_reference(&mut always, now, 1 << 20);
        lazy.tick(now, 1 << 20, 1000, &mut NoRandom);
        assert_eq!(observed(&always), observed(&lazy), "at {} ms", now.0);
        saw_rates |= lazy.total.est.rates() != Rates::default();
    }
    assert!(saw_rates, "no traffic reached the estimator");
}
