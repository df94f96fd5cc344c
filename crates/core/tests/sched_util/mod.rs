//! Helpers shared by the scheduler tests: a service with named destinations, driven the way the
//! connection code will drive it (bind/unbind + `load_changed`).
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

use rvs_core::sched::{RandomSource, SchedParams};
use rvs_core::{
    DestConfig, DestId, Family, Flow, Protocol, SchedKind, ServiceConfig, ServiceId, ServiceKey,
    ServiceTable, Time,
};

/// A deterministic random source (xorshift64*), so that two schedulers can be fed the same
/// numbers.
#[derive(Clone, Debug)]
pub struct Lcg(pub u64);

impl RandomSource for Lcg {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 32) % u64::from(n.max(1))) as u32
    }
}

/// A random source replaying fixed values (each taken modulo the bound).
#[derive(Clone, Debug)]
pub struct Script(pub Vec<u32>, pub usize);

impl RandomSource for Script {
    fn below(&mut self, n: u32) -> u32 {
        let v = self.0.get(self.1).copied().unwrap_or(0);
        self.1 += 1;
        v % n.max(1)
    }
}

/// The address of test destination number `i`: 10.0.1.i.
pub fn rip(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, i))
}

/// A TCP flow from `saddr:sport` to the VIP `daddr:80`.
pub fn flow(saddr: IpAddr, sport: u16, daddr: IpAddr) -> Flow {
    Flow {
        proto: Some(Protocol::Tcp),
        saddr,
        sport,
        daddr,
        dport: 80,
        inverse: false,
        midstream: false,
    }
}

/// The `k`-th of a family of varied client flows.
pub fn client(k: u32) -> Flow {
    let a = 0xc0a8_0000u32.wrapping_add(k.wrapping_mul(7919));
    let d = 0xac10_0000u32.wrapping_add(k.wrapping_mul(104_729));
    flow(
        IpAddr::V4(Ipv4Addr::from(a)),
        (1024 + k % 60000) as u16,
        IpAddr::V4(Ipv4Addr::from(d)),
    )
}

/// One service under test.
pub struct Svc {
    pub table: ServiceTable,
    pub key: ServiceKey,
    pub id: ServiceId,
    pub now: Time,
    pub rng: Lcg,
}

impl Svc {
    pub fn new(kind: SchedKind) -> Svc {
        Svc::with(kind, 0, SchedParams::default())
    }

    pub fn with(kind: SchedKind, flags: u32, params: SchedParams) -> Svc {
        let mut table = ServiceTable::with_params(params);
        let key = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "192.0.2.1"
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            port: 80,
        };
        let cfg = ServiceConfig::new(kind, Family::Inet).flags(flags);
        let id = table.add_service(key, cfg, Time(0)).expect("add service");
        Svc {
            table,
            key,
            id,
            now: Time(0),
            rng: Lcg(0x9e37_79b9_7f4a_7c15),
        }
    }

    /// Add destination `i` (10.0.1.i:80) with `weight`.
    pub fn add(&mut self, i: u8, weight: u32) -> DestId {
        self.add_cfg(DestConfig::new(rip(i), 80).weight(weight))
    }

    pub fn add_cfg(&mut self, cfg: DestConfig) -> DestId {
        self.table
            .add_dest(&self.key, cfg, self.now)
            .expect("add dest")
    }

    pub fn edit(&mut self, id: DestId, f: impl FnOnce(&mut DestConfig)) {
        let mut cfg = self.table.dests[id].cfg;
        f(&mut cfg);
        self.table.edit_dest(&self.key, cfg).expect("edit dest");
    }

    pub fn del(&mut self, id: DestId) {
        let cfg = self.table.dests[id].cfg;
        self.table
            .del_dest(&self.key, &cfg.addr, cfg.port, self.now)
            .expect("del dest");
    }

    /// Bind `n` connections (active or inactive), as the connection code does.
    pub fn bind(&mut self, id: DestId, n: u32, active: bool) {
        for _ in 0..n {
            if let Some(d) = self.table.dests.get_mut(id) {
                d.bind_conn(false, !active);
            }
            self.table.load_changed(id);
        }
    }

    /// Unbind `n` connections.
    pub fn unbind(&mut self, id: DestId, n: u32, active: bool) {
        for _ in 0..n {
            let now = self.now;
            if let Some(d) = self.table.dests.get_mut(id) {
                d.unbind_conn(false, !active, now);
            }
            self.table.load_changed(id);
        }
    }

    pub fn schedule(&mut self, f: &Flow) -> Option<DestId> {
        let now = self.now;
        self.table.schedule(self.id, f, now, &mut self.rng)
    }

    /// Schedule the same flow `n` times.
    pub fn run(&mut self, f: &Flow, n: usize) -> Vec<Option<DestId>> {
        (0..n).map(|_| self.schedule(f)).collect()
    }

    /// Schedule `n` varied client flows.
    pub fn clients(&mut self, n: u32) -> Vec<Option<DestId>> {
        (0..n).map(|k| self.schedule(&client(k))).collect()
    }
}
