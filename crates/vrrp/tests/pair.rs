//! Two instances on a simulated link (in memory, 200 µs delivery): convergence to exactly one
//! MASTER, failover when the master dies, preemption (and not with `nopreempt`), graceful
//! resignation — the sans-IO counterpart of the end-to-end scenarios, with the timing
//! bounds of the benchmark (RFC bound 3 × A + skew; ≤ 0.4 s with v3 `advert_int 0.1`).

use std::net::IpAddr;
use std::time::Duration;

use rvs_vrrp::{
    Action, Auth, Instance, InstanceConfig, RxPacket, State, Transmit, UnicastPeer, Version,
};

const LINK_DELAY: Duration = Duration::from_micros(200);

struct Node {
    cfg: InstanceConfig,
    inst: Option<Instance>,
    holds_vips: bool,
}

struct Net {
    now: Duration,
    nodes: Vec<Node>,
    inflight: Vec<(Duration, usize, Transmit)>,
    /// (time, node) of every MASTER entry.
    masters: Vec<(Duration, usize)>,
}

impl Net {
    fn new(cfgs: Vec<InstanceConfig>) -> Net {
        Net {
            now: Duration::ZERO,
            nodes: cfgs
                .into_iter()
                .map(|cfg| Node {
                    cfg,
                    inst: None,
                    holds_vips: false,
                })
                .collect(),
            inflight: Vec::new(),
            masters: Vec::new(),
        }
    }

    fn start(&mut self, n: usize) {
        let mut i = Instance::new(self.nodes[n].cfg.clone()).unwrap();
        i.start(self.now);
        self.nodes[n].inst = Some(i);
        self.drain(n);
    }

    /// The node dies silently (power cut): no priority-0 advert, its VIPs vanish with it.
    fn kill(&mut self, n: usize) {
        self.nodes[n].inst = None;
        self.nodes[n].holds_vips = false;
    }

    /// Graceful stop (SIGTERM).
    fn stop(&mut self, n: usize) {
        if let Some(i) = self.nodes[n].inst.as_mut() {
            i.shutdown(self.now);
        }
        self.drain(n);
        self.nodes[n].inst = None;
    }

    fn state(&self, n: usize) -> Option<State> {
        self.nodes[n].inst.as_ref().map(Instance::state)
    }

    fn drain(&mut self, n: usize) {
        let Some(inst) = self.nodes[n].inst.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        let mut vips = Vec::new();
        while let Some(a) = inst.poll_action() {
            match a {
                Action::SendAdvert { priority } => {
                    out.extend(inst.encode_adverts(priority).unwrap())
                }
                Action::AddVips => vips.push(true),
                Action::RemoveVips => vips.push(false),
                Action::Garp { .. } | Action::AnnounceSource | Action::Notify(_) => {}
            }
        }
        for add in vips {
            assert_ne!(self.nodes[n].holds_vips, add, "VIPs added/removed twice");
            self.nodes[n].holds_vips = add;
            if add {
                self.masters.push((self.now, n));
            }
        }
        for tx in out {
            for to in 0..self.nodes.len() {
                let addressed = tx.dst.is_multicast() || tx.dst == self.nodes[to].cfg.src_addr;
                if to != n && addressed {
                    self.inflight.push((self.now + LINK_DELAY, to, tx.clone()));
                }
            }
        }
    }

    /// Run until `until`, processing deliveries and deadlines in time order. Bounded: no run in
    /// these tests needs more than 100 000 events.
    fn run_until(&mut self, until: Duration) {
        for _ in 0..100_000 {
            let next_timer = (0..self.nodes.len())
                .filter_map(|n| {
                    let i = self.nodes[n].inst.as_ref()?;
                    i.poll_timeout().map(|t| (t, n))
                })
                .min();
            let next_packet = self
                .inflight
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.0)
                .map(|(k, p)| (p.0, k));
            match (next_timer, next_packet) {
                (Some((t, n)), p) if t <= until && p.map_or(true, |p| t <= p.0) => {
                    self.now = self.now.max(t);
                    if let Some(i) = self.nodes[n].inst.as_mut() {
                        i.handle_timeout(self.now);
                    }
                    self.drain(n);
                }
                (_, Some((t, k))) if t <= until => {
                    self.now = self.now.max(t);
                    let (_, to, tx) = self.inflight.remove(k);
                    if let Some(i) = self.nodes[to].inst.as_mut() {
                        let rx = match (tx.src, tx.dst) {
                            (IpAddr::V6(s), IpAddr::V6(d)) => {
                                RxPacket::from_ipv6_parts(s, d, tx.ttl, &tx.packet)
                            }
                            _ => RxPacket::parse(&tx.packet).unwrap(),
                        };
                        i.handle_advert(self.now, &rx).unwrap();
                    }
                    self.drain(to);
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("event bound exceeded");
    }

    /// Exactly one node is MASTER and it alone holds the VIPs.
    fn assert_one_master(&self) -> usize {
        let masters: Vec<usize> = (0..self.nodes.len())
            .filter(|n| self.state(*n) == Some(State::Master))
            .collect();
        assert_eq!(masters.len(), 1, "at {:?}", self.now);
        for (n, node) in self.nodes.iter().enumerate() {
            assert_eq!(node.holds_vips, n == masters[0]);
        }
        masters[0]
    }

    /// Sample the invariant every 50 ms over `d`.
    fn hold_one_master(&mut self, d: Duration) -> usize {
        let end = self.now + d;
        let m = self.assert_one_master();
        while self.now < end {
            let step = self.now + Duration::from_millis(50);
            self.run_until(step.min(end));
            assert_eq!(
                self.assert_one_master(),
                m,
                "mastership moved at {:?}",
                self.now
            );
        }
        m
    }

    fn last_master_since(&self, t: Duration) -> Option<(Duration, usize)> {
        self.masters.iter().rev().find(|m| m.0 >= t).copied()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pair(version: Version, advert_cs: u16, prios: [u8; 2]) -> Vec<InstanceConfig> {
    ["10.9.0.1", "10.9.0.2"]
        .iter()
        .zip(prios)
        .map(|(src, prio)| {
            let mut c = InstanceConfig::new("VI", 7, version, ip(src), vec![ip("10.9.0.100")]);
            c.priority = prio;
            c.advert_int_cs = advert_cs;
            if version == Version::V2 {
                c.auth = Auth::Pass(*b"pass\0\0\0\0");
            }
            c
        })
        .collect()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn v2_failover_and_preemption() {
    let mut net = Net::new(pair(Version::V2, 100, [150, 100]));
    net.start(0);
    net.start(1);
    net.run_until(secs(5.0));
    assert_eq!(net.hold_one_master(secs(5.0)), 0);

    // Kill the master: the backup takes over within 3 × 1 s + (256 − 100)/256 s of its last advert.
    let killed = net.now;
    net.kill(0);
    net.run_until(killed + secs(5.0));
    let (t, n) = net.last_master_since(killed).unwrap();
    assert_eq!(n, 1);
    assert!(
        t - killed <= secs(3.609_375 + 0.001),
        "gap {:?}",
        t - killed
    );
    assert!(
        t - killed >= secs(2.609),
        "no earlier than one interval short of the bound"
    );
    assert_eq!(net.hold_one_master(secs(3.0)), 1);

    // Restart the higher-priority node: it preempts after its own down timer.
    let restarted = net.now;
    net.start(0);
    net.run_until(restarted + secs(5.0));
    let (t, n) = net.last_master_since(restarted).unwrap();
    assert_eq!(n, 0);
    assert_eq!(t - restarted, secs(3.414_062));
    assert_eq!(net.hold_one_master(secs(5.0)), 0);
}

#[test]
fn nopreempt_keeps_the_current_master() {
    let mut cfgs = pair(Version::V2, 100, [150, 100]);
    cfgs[0].preempt = false;
    let mut net = Net::new(cfgs);
    net.start(1);
    net.run_until(secs(5.0));
    assert_eq!(net.hold_one_master(secs(1.0)), 1);
    net.start(0);
    net.run_until(secs(20.0));
    assert_eq!(
        net.hold_one_master(secs(5.0)),
        1,
        "the 150 node does not preempt"
    );
    assert_eq!(net.state(0), Some(State::Backup));
}

#[test]
fn graceful_stop_hands_over_after_skew_time() {
    let mut net = Net::new(pair(Version::V2, 100, [150, 100]));
    net.start(0);
    net.start(1);
    net.run_until(secs(6.0));
    assert_eq!(net.assert_one_master(), 0);
    let stopped = net.now;
    net.stop(0);
    net.run_until(stopped + secs(2.0));
    let (t, n) = net.last_master_since(stopped).unwrap();
    assert_eq!(n, 1);
    assert_eq!(t - stopped, LINK_DELAY + secs(0.609_375));
}

#[test]
fn v3_subsecond_failover_within_400ms() {
    let mut net = Net::new(pair(Version::V3, 10, [150, 100]));
    net.start(0);
    net.start(1);
    net.run_until(secs(1.0));
    assert_eq!(net.hold_one_master(secs(1.0)), 0);
    let killed = net.now;
    net.kill(0);
    net.run_until(killed + secs(1.0));
    let (t, n) = net.last_master_since(killed).unwrap();
    assert_eq!(n, 1);
    // 3 × 100 ms + (256 − 100) × 100 ms / 256 = 360.9 ms at most after the kill.
    assert!(t - killed <= secs(0.4), "gap {:?}", t - killed);
    assert_eq!(net.hold_one_master(secs(1.0)), 1);
}

#[test]
fn v3_ipv6_pair_converges() {
    let cfgs = ["fe80::1", "fe80::2"]
        .iter()
        .zip([100u8, 100])
        .map(|(src, prio)| {
            let mut c = InstanceConfig::new(
                "VI6",
                9,
                Version::V3,
                ip(src),
                vec![ip("fe80::99"), ip("2001:db8::99")],
            );
            c.priority = prio;
            c.advert_int_cs = 50;
            c
        })
        .collect();
    let mut net = Net::new(cfgs);
    // Same priority, started together: the higher address wins the tie.
    net.start(0);
    net.start(1);
    net.run_until(secs(4.0));
    assert_eq!(net.hold_one_master(secs(3.0)), 1);
}

#[test]
fn unicast_pair_converges_and_fails_over() {
    let mut cfgs = pair(Version::V3, 100, [100, 200]);
    cfgs[0].unicast_peers = vec![UnicastPeer::new(ip("10.9.0.2"))];
    cfgs[1].unicast_peers = vec![UnicastPeer::new(ip("10.9.0.1"))];
    let mut net = Net::new(cfgs);
    net.start(0);
    net.run_until(secs(4.0));
    assert_eq!(net.assert_one_master(), 0);
    net.start(1);
    net.run_until(secs(10.0));
    assert_eq!(net.hold_one_master(secs(3.0)), 1);
    let killed = net.now;
    net.kill(1);
    net.run_until(killed + secs(5.0));
    assert_eq!(net.last_master_since(killed).map(|m| m.1), Some(0));
    assert_eq!(net.assert_one_master(), 0);
}
