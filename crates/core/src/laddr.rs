//! Full-NAT local addresses: the one pool type of both data planes (DPVS-style `--add-laddr`).
//!
//! A [`LaddrPool`] holds `(service, local address)` pairs. The packet plane asks it, through
//! [`LocalAddrs`], for a local address *and port* whose `<laddr, lport, rs, rs_port>` tuple is
//! free in the connection table; the socket proxy asks it only for an address
//! ([`LaddrPool::next_addr`]), since the kernel picks the port of its outgoing socket. Their use
//! (`--get-laddr` CONNS) is read from the live connections, not kept here.

use std::net::IpAddr;

use crate::conn::ConnTable;
use crate::director::LocalAddrs;
use crate::service::ServiceKey;

/// At most this many ports are tried per local address before the next address is tried:
/// bounds the work per new connection when a pool is nearly exhausted.
const PORT_TRIES: u32 = 4096;

/// Full-NAT local addresses of one or more services, taken round-robin, with a collision-free
/// port allocator.
#[derive(Debug, Clone)]
pub struct LaddrPool {
    laddrs: Vec<(ServiceKey, IpAddr)>,
    range: (u16, u16),
    /// Next port to try, shared by every local address (any port is fine as long as the
    /// `<laddr, lport, rs, rs_port>` tuple is free).
    cursor: u16,
    /// Round-robin position over a service's local addresses.
    next_addr: usize,
}

impl Default for LaddrPool {
    fn default() -> Self {
        LaddrPool::new(Vec::new(), (1024, 65535))
    }
}

impl LaddrPool {
    /// A pool of `laddrs` whose ports are taken from `range` (inclusive).
    pub fn new(laddrs: Vec<(ServiceKey, IpAddr)>, range: (u16, u16)) -> LaddrPool {
        LaddrPool {
            laddrs,
            range,
            cursor: range.0,
            next_addr: 0,
        }
    }

    /// New addresses and port range (after a table change). The port cursor is kept, so ports
    /// are not reused sooner than necessary.
    pub fn reconfigure(&mut self, laddrs: Vec<(ServiceKey, IpAddr)>, range: (u16, u16)) {
        self.laddrs = laddrs;
        self.range = range;
        self.next_addr = 0;
    }

    /// Add `addr` for `svc`; false if it is there already.
    pub fn add(&mut self, svc: ServiceKey, addr: IpAddr) -> bool {
        if self.laddrs.contains(&(svc, addr)) {
            return false;
        }
        self.laddrs.push((svc, addr));
        true
    }

    /// Remove `addr` of `svc`; false if it was not there.
    pub fn remove(&mut self, svc: &ServiceKey, addr: IpAddr) -> bool {
        let before = self.laddrs.len();
        self.laddrs.retain(|(k, a)| !(k == svc && *a == addr));
        self.laddrs.len() != before
    }

    /// Every `(service, local address)` in the order they were added.
    pub fn entries(&self) -> &[(ServiceKey, IpAddr)] {
        &self.laddrs
    }

    /// The local addresses of `svc` of the family of `rs` (an address of the other family
    /// cannot reach it).
    fn candidates<'a>(
        &'a self,
        svc: &'a ServiceKey,
        rs: &'a IpAddr,
    ) -> impl Iterator<Item = IpAddr> + 'a {
        self.laddrs
            .iter()
            .filter(move |(k, a)| k == svc && a.is_ipv4() == rs.is_ipv4())
            .map(|&(_, a)| a)
    }

    /// The next local address of `svc` toward the real server `rs`, round-robin, for a plane
    /// whose port the kernel picks (the socket proxy).
    pub fn next_addr(&mut self, svc: &ServiceKey, rs: IpAddr) -> Option<IpAddr> {
        let n = self.candidates(svc, &rs).count();
        if n == 0 {
            return None;
        }
        let k = self.next_addr % n;
        self.next_addr = (k + 1) % n;
        self.candidates(svc, &rs).nth(k)
    }
}

impl LocalAddrs for LaddrPool {
    fn pick(
        &mut self,
        svc: &ServiceKey,
        proto: u8,
        rs: IpAddr,
        rs_port: u16,
        conns: &ConnTable,
    ) -> Option<(IpAddr, u16)> {
        let n = self.candidates(svc, &rs).count();
        if n == 0 {
            return None;
        }
        let (lo, hi) = self.range;
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        for i in 0..n {
            let k = (self.next_addr + i) % n;
            let Some(laddr) = self.candidates(svc, &rs).nth(k) else {
                continue;
            };
            for _ in 0..span.min(PORT_TRIES) {
                let port = if self.cursor < lo || self.cursor > hi {
                    lo
                } else {
                    self.cursor
                };
                self.cursor = if port == hi { lo } else { port + 1 };
                if conns
                    .lookup_fullnat_out(proto, &rs, rs_port, &laddr, port)
                    .is_none()
                {
                    self.next_addr = (k + 1) % n;
                    return Some((laddr, port));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Protocol;

    fn svc(port: u16) -> ServiceKey {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port,
        }
    }

    #[test]
    fn next_addr_rotates_over_the_service_addresses_of_the_real_servers_family() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let mut p = LaddrPool::default();
        assert!(p.add(svc(80), ip("10.2.0.1")));
        assert!(p.add(svc(80), ip("2001:db8::1")));
        assert!(p.add(svc(80), ip("10.2.0.2")));
        assert!(p.add(svc(81), ip("10.2.0.9")));
        assert!(!p.add(svc(80), ip("10.2.0.1")), "twice");
        let rs = ip("10.1.0.11");
        let got: Vec<_> = (0..3).map(|_| p.next_addr(&svc(80), rs).unwrap()).collect();
        assert_eq!(got, [ip("10.2.0.1"), ip("10.2.0.2"), ip("10.2.0.1")]);
        assert_eq!(
            p.next_addr(&svc(80), ip("2001:db8::11")),
            Some(ip("2001:db8::1"))
        );
        assert!(p.remove(&svc(81), ip("10.2.0.9")));
        assert!(!p.remove(&svc(81), ip("10.2.0.9")));
        assert_eq!(p.next_addr(&svc(81), rs), None);
    }
}
