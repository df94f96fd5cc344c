//! Full-NAT local addresses: one pool per service, shared by every worker of both data planes
//! (DPVS-style `--add-laddr`).
//!
//! A service's [`LaddrPool`] is kept with the service by the control side (where `--add-laddr`
//! puts it). The packet plane's workers receive it, through [`LaddrPools`] (their
//! [`LocalAddrs`]), in their published configuration and ask it for a local address *and
//! port* whose `<laddr, lport, rs, rs_port>` tuple is free in the connection table; the socket
//! proxy asks it only for an address ([`LaddrPool::next_addr`]), since the kernel picks the
//! port of its outgoing socket.
//!
//! # One instance, no lock
//!
//! A pool is a handle: its clones share the allocation state — the port cursor, the
//! round-robin position and each address's conflict counter — through atomics, so every
//! worker that holds the service's pool allocates from the same cursor and counts into the
//! same counters, without a lock of its own (the packet plane allocates under its shard lock
//! anyway; the atomics make the pool correct without relying on that). Only the address list
//! is a snapshot: `--add-laddr`/`--del-laddr` change the control side's copy, which the planes
//! see with the next publication; an address kept across the change keeps its counter.
//!
//! Why shared: with one cursor per worker (as before), two workers start at the same port, so
//! the second worker's first connection toward a real server collides with the first worker's
//! and has to try again; one shared cursor hands out each port once per turn.
//!
//! # CONFLICTS
//!
//! `--get-laddr` CONFLICTS counts, per local address, the port allocations that collided with
//! a connection already using that `<laddr, lport, rs, rs_port>` tuple and had to try another
//! port (DPVS's meaning). CONNS, the current use, is read from the live connections, not kept
//! here. The socket proxy never picks a port, so it adds nothing to CONFLICTS: the kernel's own
//! search for a free 4-tuple at `connect` is invisible to rvsd.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::conn::ConnTable;
use crate::director::LocalAddrs;
use crate::service::ServiceKey;

/// At most this many ports are tried per local address before the next address is tried:
/// bounds the work per new connection when a pool is nearly exhausted.
const PORT_TRIES: u32 = 4096;

/// The default full-NAT local port range (inclusive), as the packet plane's `--lport-range`
/// default.
pub const DEFAULT_PORT_RANGE: (u16, u16) = (1024, 65535);

/// One local address of a pool and its conflict counter.
#[derive(Debug)]
struct Laddr {
    addr: IpAddr,
    conflicts: AtomicU64,
}

/// The allocation state every clone of a pool shares.
#[derive(Debug, Default)]
struct Cursor {
    /// Next port to try, as an offset into the port range, shared by every local address (any
    /// port is fine as long as the `<laddr, lport, rs, rs_port>` tuple is free). Wraps.
    port: AtomicU32,
    /// Round-robin position over the service's local addresses.
    addr: AtomicUsize,
}

/// One service's full-NAT local addresses, taken round-robin, with a collision-free port
/// allocator. Cloning shares the allocation state (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct LaddrPool {
    addrs: Vec<Arc<Laddr>>,
    cursor: Arc<Cursor>,
}

impl PartialEq for LaddrPool {
    /// Same addresses in the same order (the counters are not configuration).
    fn eq(&self, other: &Self) -> bool {
        self.addrs.len() == other.addrs.len()
            && self
                .addrs
                .iter()
                .zip(&other.addrs)
                .all(|(a, b)| a.addr == b.addr)
    }
}

impl Eq for LaddrPool {}

impl LaddrPool {
    /// Add `addr`; false if it is there already.
    pub fn add(&mut self, addr: IpAddr) -> bool {
        if self.addrs.iter().any(|l| l.addr == addr) {
            return false;
        }
        self.addrs.push(Arc::new(Laddr {
            addr,
            conflicts: AtomicU64::new(0),
        }));
        true
    }

    /// Remove `addr`; false if it was not there.
    pub fn remove(&mut self, addr: IpAddr) -> bool {
        let before = self.addrs.len();
        self.addrs.retain(|l| l.addr != addr);
        self.addrs.len() != before
    }

    /// True when the pool has no address.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Every local address in the order they were added.
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.addrs.iter().map(|l| l.addr)
    }

    /// Every local address with its conflict count (`--get-laddr`), in the order they were
    /// added.
    pub fn conflicts(&self) -> impl Iterator<Item = (IpAddr, u64)> + '_ {
        self.addrs
            .iter()
            .map(|l| (l.addr, l.conflicts.load(Ordering::Relaxed)))
    }

    /// The local addresses of the family of `rs` (an address of the other family cannot
    /// reach it).
    fn candidates<'a>(&'a self, rs: &'a IpAddr) -> impl Iterator<Item = &'a Laddr> + 'a {
        self.addrs
            .iter()
            .filter(move |l| l.addr.is_ipv4() == rs.is_ipv4())
            .map(|l| &**l)
    }

    /// The next local address toward the real server `rs`, round-robin, for a plane whose
    /// port the kernel picks (the socket proxy).
    pub fn next_addr(&self, rs: IpAddr) -> Option<IpAddr> {
        let n = self.candidates(&rs).count();
        if n == 0 {
            return None;
        }
        let k = self.cursor.addr.fetch_add(1, Ordering::Relaxed) % n;
        self.candidates(&rs).nth(k).map(|l| l.addr)
    }

    /// A local address and a port from `range` (inclusive) whose
    /// `<laddr, lport, rs, rs_port>` tuple is not in `conns`; the addresses are taken
    /// round-robin, the ports from the shared cursor. Every port found taken counts one
    /// conflict on its address. `None` when no tuple is free within the bounded tries.
    pub fn pick(
        &self,
        proto: u8,
        rs: IpAddr,
        rs_port: u16,
        conns: &ConnTable,
        range: (u16, u16),
    ) -> Option<(IpAddr, u16)> {
        let n = self.candidates(&rs).count();
        if n == 0 {
            return None;
        }
        let (lo, hi) = (range.0.min(range.1), range.0.max(range.1));
        let span = u32::from(hi - lo) + 1;
        let first = self.cursor.addr.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let Some(laddr) = self.candidates(&rs).nth(first.wrapping_add(i) % n) else {
                continue;
            };
            for _ in 0..span.min(PORT_TRIES) {
                let off = self.cursor.port.fetch_add(1, Ordering::Relaxed) % span;
                let port = lo + off as u16;
                if conns
                    .lookup_fullnat_out(proto, &rs, rs_port, &laddr.addr, port)
                    .is_none()
                {
                    return Some((laddr.addr, port));
                }
                laddr.conflicts.fetch_add(1, Ordering::Relaxed);
            }
        }
        None
    }
}

/// The packet plane's local addresses: every service's [`LaddrPool`] (the control side's
/// instance, shared) and the plane's port range. Its [`LocalAddrs`] picks from the pool of the
/// connection's service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaddrPools {
    pools: HashMap<ServiceKey, LaddrPool>,
    range: (u16, u16),
}

impl Default for LaddrPools {
    fn default() -> Self {
        LaddrPools::new(DEFAULT_PORT_RANGE)
    }
}

impl LaddrPools {
    /// No pool yet; ports from `range` (inclusive).
    pub fn new(range: (u16, u16)) -> LaddrPools {
        LaddrPools {
            pools: HashMap::new(),
            range,
        }
    }

    /// The port range.
    pub fn range(&self) -> (u16, u16) {
        self.range
    }

    /// Set the port range.
    pub fn set_range(&mut self, range: (u16, u16)) {
        self.range = range;
    }

    /// Use `pool` (a clone of the service's instance: it shares its state) for `svc`.
    pub fn insert(&mut self, svc: ServiceKey, pool: LaddrPool) {
        self.pools.insert(svc, pool);
    }

    /// Add `addr` to the pool of `svc` (made if needed); false if it is there already.
    pub fn add(&mut self, svc: ServiceKey, addr: IpAddr) -> bool {
        self.pools.entry(svc).or_default().add(addr)
    }

    /// The pool of `svc`.
    pub fn get(&self, svc: &ServiceKey) -> Option<&LaddrPool> {
        self.pools.get(svc)
    }

    /// Every `(service, pool)`, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&ServiceKey, &LaddrPool)> {
        self.pools.iter()
    }

    /// Number of local addresses over all services.
    pub fn len(&self) -> usize {
        self.pools.values().map(|p| p.addrs.len()).sum()
    }

    /// True when no service has a local address.
    pub fn is_empty(&self) -> bool {
        self.pools.values().all(LaddrPool::is_empty)
    }
}

impl LocalAddrs for LaddrPools {
    fn pick(
        &mut self,
        svc: &ServiceKey,
        proto: u8,
        rs: IpAddr,
        rs_port: u16,
        conns: &ConnTable,
    ) -> Option<(IpAddr, u16)> {
        self.pools
            .get(svc)?
            .pick(proto, rs, rs_port, conns, self.range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::HashSeed;
    use crate::conn::{ConnTable, NewConn};
    use crate::table::ServiceTable;
    use crate::{Protocol, Time};

    fn svc(port: u16) -> ServiceKey {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn next_addr_rotates_over_the_service_addresses_of_the_real_servers_family() {
        let mut p = LaddrPool::default();
        assert!(p.add(ip("10.2.0.1")));
        assert!(p.add(ip("2001:db8::1")));
        assert!(p.add(ip("10.2.0.2")));
        assert!(!p.add(ip("10.2.0.1")), "twice");
        let rs = ip("10.1.0.11");
        let got: Vec<_> = (0..3).map(|_| p.next_addr(rs).unwrap()).collect();
        assert_eq!(got, [ip("10.2.0.1"), ip("10.2.0.2"), ip("10.2.0.1")]);
        assert_eq!(p.next_addr(ip("2001:db8::11")), Some(ip("2001:db8::1")));
        assert!(p.remove(ip("10.2.0.1")));
        assert!(!p.remove(ip("10.2.0.1")));
        assert!(p.remove(ip("10.2.0.2")));
        assert_eq!(p.next_addr(rs), None);
    }

    fn table() -> ConnTable {
        ConnTable::new(HashSeed([1, 2, 3, 4]), Time(0))
    }

    /// A full-NAT connection entry using `laddr:lport` toward `rs:80`.
    fn occupy(t: &mut ConnTable, laddr: IpAddr, lport: u16, rs: IpAddr) {
        let mut n = NewConn::new(6, ip("192.0.2.1"), lport, ip("10.0.0.1"), 80, rs, 80);
        n.local = Some((laddr, lport));
        t.insert(&n, Time(0), &mut ServiceTable::new())
            .expect("inserted");
    }

    #[test]
    fn clones_share_the_cursor_so_two_holders_never_collide() {
        let mut p = LaddrPool::default();
        p.add(ip("10.2.0.1"));
        let (a, b) = (p.clone(), p.clone());
        let rs = ip("10.1.0.11");
        let mut t = table();
        let mut got = Vec::new();
        for i in 0..6 {
            let holder = if i % 2 == 0 { &a } else { &b };
            let (l, port) = holder.pick(6, rs, 80, &t, (5000, 5009)).unwrap();
            occupy(&mut t, l, port, rs);
            got.push(port);
        }
        assert_eq!(got, [5000, 5001, 5002, 5003, 5004, 5005]);
        assert_eq!(p.conflicts().collect::<Vec<_>>(), [(ip("10.2.0.1"), 0)]);
    }

    #[test]
    fn a_port_whose_tuple_is_taken_counts_a_conflict_and_the_next_is_tried() {
        let mut pools = LaddrPools::new((5000, 5003));
        pools.add(svc(80), ip("10.2.0.1"));
        let rs = ip("10.1.0.11");
        let mut t = table();
        // Someone else (a synced entry, say) already uses 5000 and 5001 toward rs:80.
        occupy(&mut t, ip("10.2.0.1"), 5000, rs);
        occupy(&mut t, ip("10.2.0.1"), 5001, rs);
        let got = pools.pick(&svc(80), 6, rs, 80, &t);
        assert_eq!(got, Some((ip("10.2.0.1"), 5002)));
        let pool = pools.get(&svc(80)).unwrap().clone();
        assert_eq!(pool.conflicts().collect::<Vec<_>>(), [(ip("10.2.0.1"), 2)]);
        // Another real server: the same ports are free toward it, no conflict.
        let got = pools.pick(&svc(80), 6, ip("10.1.0.12"), 80, &t);
        assert_eq!(got, Some((ip("10.2.0.1"), 5003)));
        occupy(&mut t, ip("10.2.0.1"), 5002, rs);
        occupy(&mut t, ip("10.2.0.1"), 5003, rs);
        // Every port toward rs:80 taken: four tries, four conflicts, none left.
        assert_eq!(pools.pick(&svc(80), 6, rs, 80, &t), None);
        assert_eq!(pool.conflicts().collect::<Vec<_>>(), [(ip("10.2.0.1"), 6)]);
        // Another service has no pool.
        assert_eq!(pools.pick(&svc(81), 6, rs, 80, &t), None);
    }

    #[test]
    fn an_address_kept_across_a_change_keeps_its_counter_and_the_cursor_moves_on() {
        let mut p = LaddrPool::default();
        p.add(ip("10.2.0.1"));
        let published = p.clone();
        let rs = ip("10.1.0.11");
        let mut t = table();
        occupy(&mut t, ip("10.2.0.1"), 6000, rs);
        assert_eq!(
            published.pick(6, rs, 80, &t, (6000, 6001)),
            Some((ip("10.2.0.1"), 6001))
        );
        // The control side adds an address to its copy; the counter of the old one is the
        // same counter the published copy counted into.
        p.add(ip("10.2.0.2"));
        assert_eq!(
            p.conflicts().collect::<Vec<_>>(),
            [(ip("10.2.0.1"), 1), (ip("10.2.0.2"), 0)]
        );
        assert_eq!(published.addrs().count(), 1, "a snapshot until republished");
    }
}
