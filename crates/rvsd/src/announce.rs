//! Route injection for scale-out (`rvsd --announce-table N`): while a VIP can be served, rvsd
//! keeps a host route `VIP/32` (`/128`) on `lo` in kernel routing table N with a route protocol
//! number of its own; a routing daemon (BIRD's kernel protocol with `learn`, FRR's
//! `redistribute table`, GoBGP's zebra import) reads that table and announces the VIPs by BGP,
//! so an ECMP router spreads a VIP's flows over every director that announces it.
//!
//! Why a routing table and not BGP here: the table is the engine-neutral interface every
//! routing daemon already reads, and the one a person can inspect (`ip route show table N`).
//! Why a protocol number of our own: BIRD 2.0 does not learn routes whose protocol is `kernel`
//! or `bird`, and the number tells our routes from anyone else's, so a restarted rvsd removes
//! what a killed one left and never touches other routes in the table.
//!
//! A VIP can be served when one of its virtual services has an available real server with a
//! weight above 0, its quorum is met (keepalived `quorum`), a running data plane serves it,
//! and — with VRRP — its instance is MASTER here. On shutdown every route is withdrawn first ([`Announcer::withdraw_all`]); the
//! daemon then waits a convergence delay while it still forwards, and only then drains.
//! The reconciliation reads the kernel's table every period, so a route deleted by hand comes
//! back and one added under our protocol number for a VIP that cannot serve goes.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rvs_core::ServiceKey;

pub use crate::announce_status::AnnounceStatus;
use crate::lock::lock;
use crate::state::State;
use crate::vrrp::netlink::Rtnl;

/// Our default route protocol number: not one iproute2's `rt_protos` names (kernel 2, boot 3,
/// static 4, zebra 11, bird 12, keepalived 18, babel 42, bgp 186 …).
pub const DEFAULT_PROTOCOL: u8 = 252;

/// How often the table is reconciled with the kernel when nothing changed.
const PERIOD: Duration = Duration::from_millis(200);

/// Settings of the announcer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Kernel routing table (1..=2^32-1, not `local` 255 or `main` 254 or `default` 253).
    pub table: u32,
    /// Route protocol number of our routes.
    pub protocol: u8,
}

/// Check `--announce-table` / `--announce-protocol` values.
pub fn check_options(o: &Options) -> Result<(), String> {
    if o.table == 0 || (253..=255).contains(&o.table) {
        return Err(format!(
            "announce table {}: use a table of its own (not 0, default 253, main 254, local 255)",
            o.table
        ));
    }
    if matches!(o.protocol, 0..=4 | 12) {
        return Err(format!(
            "announce protocol {}: 0-4 (unspec, redirect, kernel, boot, static) and 12 (bird) are \
             not ours to use, and BIRD does not learn kernel/bird routes",
            o.protocol
        ));
    }
    Ok(())
}

/// The VIPs that can be served now (see the module documentation).
pub fn serving_vips(st: &State) -> BTreeSet<IpAddr> {
    let standby = st
        .vrrp
        .as_ref()
        .map(|b| b.standby_vips())
        .unwrap_or_default();
    let mut out = BTreeSet::new();
    for key in st.service_keys() {
        let ServiceKey::Addr { addr, .. } = key else {
            // A firewall-mark service has no address of its own to announce.
            continue;
        };
        if out.contains(&addr)
            || standby.contains(&addr)
            || st.quorum_lost.contains(&key)
            || st.service_unserved(&key).is_some()
        {
            continue;
        }
        let serves = st
            .with_service(&key, |sh| {
                let t = &sh.director.table;
                let Some(s) = t.id_of(&key).and_then(|id| t.service(id)) else {
                    return false;
                };
                s.dests
                    .iter()
                    .filter_map(|&d| t.dests.get(d))
                    .any(|d| d.available && d.weight() > 0 && !d.overload)
            })
            .unwrap_or(false);
        if serves {
            out.insert(addr);
        }
    }
    out
}

/// Our routes in the kernel: table, protocol and `lo`.
struct KernelRoutes {
    rtnl: Rtnl,
    lo: u32,
    opts: Options,
}

impl KernelRoutes {
    fn open(opts: Options) -> std::io::Result<KernelRoutes> {
        let mut rtnl = Rtnl::open()?;
        let lo = rtnl.link("lo")?.index;
        Ok(KernelRoutes { rtnl, lo, opts })
    }

    fn message(&self, vip: IpAddr) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = match vip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.destination_prefix_length = if vip.is_ipv4() { 32 } else { 128 };
        // Tables above 255 only fit the attribute; the header then says "see the attribute".
        m.header.table = u8::try_from(self.opts.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
        m.header.protocol = RouteProtocol::Other(self.opts.protocol);
        // As `ip route add VIP dev lo` (no gateway: link scope).
        m.header.scope = RouteScope::Link;
        m.header.kind = RouteType::Unicast;
        m.attributes.push(RouteAttribute::Table(self.opts.table));
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(vip)));
        m.attributes.push(RouteAttribute::Oif(self.lo));
        m
    }

    /// Our routes now in the kernel's table (both families).
    fn installed(&mut self) -> std::io::Result<BTreeSet<IpAddr>> {
        let mut out = BTreeSet::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut m = RouteMessage::default();
            m.header.address_family = family;
            for a in self
                .rtnl
                .request(RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP)?
            {
                let RouteNetlinkMessage::NewRoute(r) = a else {
                    continue;
                };
                let table = r
                    .attributes
                    .iter()
                    .find_map(|x| match x {
                        RouteAttribute::Table(t) => Some(*t),
                        _ => None,
                    })
                    .unwrap_or(u32::from(r.header.table));
                if table != self.opts.table
                    || r.header.protocol != RouteProtocol::Other(self.opts.protocol)
                {
                    continue;
                }
                let dst = r.attributes.iter().find_map(|x| match x {
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
                    _ => None,
                });
                if let Some(d) = dst {
                    out.insert(d);
                }
            }
        }
        Ok(out)
    }

    fn add(&mut self, vip: IpAddr) -> std::io::Result<()> {
        let m = self.message(vip);
        self.rtnl
            .request(
                RouteNetlinkMessage::NewRoute(m),
                NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            )
            .map(|_| ())
    }

    fn del(&mut self, vip: IpAddr) -> std::io::Result<()> {
        let m = self.message(vip);
        match self
            .rtnl
            .request(RouteNetlinkMessage::DelRoute(m), NLM_F_ACK)
        {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Make the kernel's table hold exactly `want`; returns how many routes changed.
    fn reconcile(&mut self, want: &BTreeSet<IpAddr>) -> std::io::Result<usize> {
        let have = self.installed()?;
        let mut n = 0;
        for vip in have.difference(want) {
            self.del(*vip)?;
            tracing::info!(
                "announce: route {vip} withdrawn from table {}",
                self.opts.table
            );
            n += 1;
        }
        for vip in want.difference(&have) {
            self.add(*vip)?;
            tracing::info!(
                "announce: route {vip} dev lo added to table {}",
                self.opts.table
            );
            n += 1;
        }
        Ok(n)
    }
}

/// The running announcer: a thread that reconciles table N with [`serving_vips`].
pub struct Announcer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    opts: Options,
    /// Counters for the metrics.
    pub status: Arc<AnnounceStatus>,
}

impl Announcer {
    /// Open rtnetlink and start reconciling table `opts.table` with the VIPs `state` can
    /// serve. Fails if rtnetlink cannot be opened (the daemon must not run believing it
    /// announces).
    pub fn start(state: Arc<Mutex<State>>, opts: Options) -> Result<Announcer, String> {
        check_options(&opts)?;
        let mut kr = KernelRoutes::open(opts).map_err(|e| format!("rtnetlink: {e}"))?;
        // The first reconciliation is synchronous: a bad table or a missing permission is an
        // error at start, not a log line later.
        let want = serving_vips(&lock(&state));
        kr.reconcile(&want)
            .map_err(|e| format!("routing table {}: {e}", opts.table))?;
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(AnnounceStatus::default());
        status.routes.store(want.len() as u64, Ordering::Relaxed);
        let (s, st) = (stop.clone(), status.clone());
        let thread = std::thread::Builder::new()
            .name("rvs-announce".into())
            .spawn(move || run(kr, state, s, st))
            .map_err(|e| format!("announce thread: {e}"))?;
        Ok(Announcer {
            stop,
            thread: Some(thread),
            opts,
            status,
        })
    }

    /// Stop reconciling and delete every route of ours from the table (the first step of a
    /// graceful shutdown). Returns how many routes were withdrawn.
    pub fn withdraw_all(&mut self) -> Result<usize, String> {
        self.stop();
        let mut kr = KernelRoutes::open(self.opts).map_err(|e| format!("rtnetlink: {e}"))?;
        let n = kr
            .reconcile(&BTreeSet::new())
            .map_err(|e| format!("routing table {}: {e}", self.opts.table))?;
        self.status.routes.store(0, Ordering::Relaxed);
        Ok(n)
    }
}

impl Announcer {
    /// Stop reconciling; the routes stay as they are (a reload that replaces the announcer
    /// stops the old one before the new one starts, then withdraws the old one's routes).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Announcer {
    /// Stops the thread; the routes stay (a crash leaves them too: the next start removes
    /// what cannot be served). A graceful stop calls [`Announcer::withdraw_all`] first.
    fn drop(&mut self) {
        self.stop();
    }
}

/// The reconciliation loop: every [`PERIOD`] (checked for stop every 50 ms).
fn run(
    mut kr: KernelRoutes,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    status: Arc<AnnounceStatus>,
) {
    let mut failing = false;
    while !stop.load(Ordering::Acquire) {
        for _ in 0..4 {
            if stop.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(PERIOD / 4);
        }
        let want = serving_vips(&lock(&state));
        match kr.reconcile(&want) {
            Ok(n) => {
                status.changes.fetch_add(n as u64, Ordering::Relaxed);
                status.routes.store(want.len() as u64, Ordering::Relaxed);
                if failing {
                    tracing::info!("announce: table {} reconciled again", kr.opts.table);
                    failing = false;
                }
            }
            Err(e) => {
                status.errors.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    tracing::error!("announce: table {}: {e}", kr.opts.table);
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Planes;
    use crate::test_support::parse_cmd;
    use rvs_core::Time;

    fn st(cmds: &[&str]) -> State {
        let mut st = State::new(Time(0), Planes { packet: true });
        for c in cmds {
            let r = st.handle(&parse_cmd(c), Time(0));
            assert!(r.result.is_ok(), "{c}: {r:?}");
        }
        st
    }

    fn ips(v: &[&str]) -> BTreeSet<IpAddr> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn a_vip_is_announced_while_a_service_can_serve() {
        let mut s = st(&[
            "-A -t 10.0.0.1:80 -s mh",
            "-a -t 10.0.0.1:80 -r 192.168.1.10:80 -g",
            "-A -t 10.0.0.1:443 -s mh",
            "-A -t 10.0.0.2:80 -s rr",
            "-a -t 10.0.0.2:80 -r 192.168.1.10:80 -g -w 0",
            "-A -t [2001:db8::1]:80 -s rr",
            "-a -t [2001:db8::1]:80 -r [2001:db8::10]:80 -g",
            "-A -f 7 -s rr",
            "-a -f 7 -r 192.168.1.10:0 -g",
        ]);
        // 10.0.0.2 only has a weight-0 server; the fwmark service has no address.
        assert_eq!(serving_vips(&s), ips(&["10.0.0.1", "2001:db8::1"]));
        s.handle(
            &parse_cmd("-e -t 10.0.0.2:80 -r 192.168.1.10:80 -g -w 1"),
            Time(0),
        );
        assert_eq!(
            serving_vips(&s),
            ips(&["10.0.0.1", "10.0.0.2", "2001:db8::1"])
        );
        s.handle(&parse_cmd("-d -t 10.0.0.1:80 -r 192.168.1.10:80"), Time(0));
        assert_eq!(serving_vips(&s), ips(&["10.0.0.2", "2001:db8::1"]));
        // Quorum lost (keepalived): not announced although a server is up.
        let k = rvs_core::ServiceKey::Addr {
            proto: rvs_core::Protocol::Tcp,
            addr: "10.0.0.2".parse().unwrap(),
            port: 80,
        };
        s.quorum_lost.insert(k);
        assert_eq!(serving_vips(&s), ips(&["2001:db8::1"]));
    }

    #[test]
    fn tables_and_protocols_that_are_not_ours_are_refused() {
        let o = |table, protocol| check_options(&Options { table, protocol });
        assert!(o(100, DEFAULT_PROTOCOL).is_ok());
        assert!(o(70000, DEFAULT_PROTOCOL).is_ok());
        for t in [0, 253, 254, 255] {
            assert!(o(t, DEFAULT_PROTOCOL).is_err(), "{t}");
        }
        for p in [0, 2, 3, 4, 12] {
            assert!(o(100, p).is_err(), "{p}");
        }
    }
}
