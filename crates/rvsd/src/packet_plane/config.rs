//! What the packet plane is told about the table: its interfaces and options, and the
//! [`PacketView`] the control side computes once per change and publishes to the workers and
//! the keeper (pure functions of the packet shard, the VRRP state and the options, unit-tested
//! below).

use std::net::IpAddr;
use std::sync::Arc;

use rvs_core::laddr::LaddrPools;
use rvs_core::{FwdMethod, Protocol, ServiceKey};
use rvs_packet::plane::{MarkRule, PlaneConfig, PortConfig, PortId};
use rvs_packet_io::nft::{GuardRules, LocalPorts, Match};

pub use super::iface::Iface;
use crate::published::{Doorbell, Published};
use crate::shard::Shard;
use crate::vrrp::StatusBoard;

/// Parses a `--fwmark-rule` value: `PROTO:ADDR:PORT[-PORT]=MARK`, PROTO one of `tcp`, `udp`,
/// `sctp`, `any`; an IPv6 address in brackets. The rvs stand-in for
/// `nft add rule ... ip daddr ADDR tcp dport PORTS meta mark set MARK` (see the module docs).
pub fn parse_mark_rule(s: &str) -> Result<MarkRule, String> {
    let bad = || format!("bad --fwmark-rule {s:?}: want PROTO:ADDR:PORT[-PORT]=MARK");
    let (lhs, mark) = s.rsplit_once('=').ok_or_else(bad)?;
    let mark: u32 = mark.parse().map_err(|_| bad())?;
    let (proto, rest) = lhs.split_once(':').ok_or_else(bad)?;
    let proto = match proto {
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        "any" => 0,
        _ => return Err(bad()),
    };
    let (addr, ports) = rest.rsplit_once(':').ok_or_else(bad)?;
    let addr: IpAddr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| bad())?;
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
        None => {
            let p: u16 = ports.parse().map_err(|_| bad())?;
            (p, p)
        }
    };
    if lo > hi || mark == 0 {
        return Err(bad());
    }
    Ok(MarkRule {
        proto,
        addr,
        ports: (lo, hi),
        mark,
    })
}

/// Options of the packet plane.
#[derive(Debug, Clone)]
pub struct Options {
    /// Firewall-mark rules (`--fwmark-rule`).
    pub marks: Vec<MarkRule>,
    /// Full-NAT local port range (must not overlap the kernel's `ip_local_port_range` on the
    /// local addresses: the guard drops replies to these ports).
    pub lport_range: (u16, u16),
    /// Worker threads per interface (`--packet-workers`); more than one joins the
    /// interface's sockets in a `PACKET_FANOUT` hash group, so a flow stays on one worker.
    pub workers_per_interface: usize,
    /// `--xdp`: the XDP fast path for established flows.
    pub xdp: super::xdp::XdpSetting,
    /// `--xdp-slow-path`: AF_XDP or AF_PACKET for what the XDP program does not forward.
    pub slow_path: super::xdp::SlowPathSetting,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers_per_interface: 1,
            xdp: super::xdp::XdpSetting::default(),
            slow_path: super::xdp::SlowPathSetting::default(),
            marks: Vec::new(),
            lport_range: rvs_core::laddr::DEFAULT_PORT_RANGE,
        }
    }
}

/// Whether the packet plane serves `key` (when it runs): every VIP but loopback ones,
/// firewall-mark services included; loopback VIPs stay with the socket proxy (see "Which
/// plane serves which service" in [`crate::packet_plane`]).
pub fn packet_serves(key: &ServiceKey) -> bool {
    match key {
        ServiceKey::Addr { addr, .. } => !addr.is_loopback(),
        ServiceKey::Fwmark { .. } => true,
    }
}

/// Everything the packet plane needs to know about the table, computed once per change by
/// the control side ([`crate::state::State`]) and published: the workers take their
/// [`PlaneConfig`] from it, the keeper its nft guard, the real servers to resolve and the
/// addresses to announce. Neither takes the state's lock to get it.
#[derive(Debug, Clone, Default)]
pub struct PacketView {
    /// The table generation it was computed for ([`crate::state::State::generation`]).
    pub generation: u64,
    /// The workers' plane configuration.
    pub config: PlaneConfig,
    /// The nft ingress guard's rules.
    pub guard: GuardRules,
    /// Real servers of the plane's services, whose next hops the keeper resolves.
    pub real_servers: Vec<IpAddr>,
    /// Whether a firewall-mark service exists: only then does the keeper read the nft
    /// ruleset for mark rules.
    pub wants_marks: bool,
    /// The VRRP driver's status board, if it runs, and the epoch of it this view reflects:
    /// the keeper has the view recomputed when the board's epoch moves on.
    pub vrrp: Option<(Arc<StatusBoard>, u64)>,
}

impl PacketView {
    /// True when a VRRP transition happened since this view was computed.
    pub fn vrrp_moved(&self) -> bool {
        self.vrrp.as_ref().is_some_and(|(b, e)| b.epoch() != *e)
    }
}

/// The packet plane's end of the control state: what the control side needs to compute the
/// view, and where it publishes it.
#[derive(Debug, Clone)]
pub struct PacketFeed {
    /// The plane's interfaces.
    pub ifaces: Arc<Vec<Iface>>,
    /// Its options.
    pub opts: Options,
    /// The view, republished on every change.
    pub view: Arc<Published<PacketView>>,
    /// The last table generation the plane applied (nft guard refilled, new real servers
    /// resolved): control requests wait for it ([`super::wait_applied`]).
    pub applied: Arc<Published<u64>>,
    /// The keeper's wake-up: rung by every publication of the view.
    pub bell: Arc<Doorbell>,
    /// The XDP fast path's modes and counters (metrics, status).
    pub xdp: Arc<std::sync::Mutex<super::xdp::XdpReport>>,
    /// A sweep of the XDP program's counters on request: run by the control requests that show
    /// counters or timeouts before they read them (nothing when the fast path is off).
    pub xdp_sweep: super::xdp::XdpSweep,
    /// The workers' reassembly counters (metrics).
    pub frag: Arc<super::frag_stats::FragStats>,
    /// The workers' SYN-proxy counters (metrics).
    pub syn: Arc<super::syn_stats::SynStats>,
}

impl PacketFeed {
    /// A feed for a plane on `ifaces`, with an empty view.
    pub fn new(ifaces: Vec<Iface>, opts: Options) -> PacketFeed {
        let bell = Arc::new(Doorbell::default());
        PacketFeed {
            ifaces: Arc::new(ifaces),
            opts,
            view: Arc::new(Published::default().ringing(bell.clone())),
            applied: Arc::new(Published::new(0)),
            bell,
            xdp: Arc::default(),
            xdp_sweep: super::xdp::XdpSweep::default(),
            frag: Arc::default(),
            syn: Arc::default(),
        }
    }
}

/// The view of the packet shard `sh` at table generation `generation`; `nft_marks` are the
/// mark rules read from the director's nft ruleset (see [`crate::nft_marks`]), applied after
/// the `--fwmark-rule` ones; `pmtu_disc` is the sysctl of that name.
pub fn view_of(
    feed: &PacketFeed,
    sh: Option<&Shard>,
    vrrp: Option<&Arc<StatusBoard>>,
    nft_marks: &[MarkRule],
    pmtu_disc: bool,
    generation: u64,
) -> PacketView {
    let mut opts = feed.opts.clone();
    opts.marks.extend(nft_marks.iter().cloned());
    // The epoch is read before the board: a transition in between is seen as a move later.
    let vrrp = vrrp.map(|b| (b.clone(), b.epoch()));
    let mut config = plane_config_of(&feed.ifaces, sh, vrrp.as_ref().map(|(b, _)| &**b), &opts);
    config.pmtu_disc = pmtu_disc;
    let (guard, real_servers) = guard_rules_of(&feed.ifaces, sh, &opts);
    let wants_marks = sh.is_some_and(|sh| {
        sh.director
            .table
            .services()
            .any(|(_, s)| matches!(s.key, ServiceKey::Fwmark { .. }))
    });
    PacketView {
        generation,
        config,
        guard,
        real_servers,
        wants_marks,
        vrrp,
    }
}

/// The port an owned address lives on: the interface whose network contains it, else the
/// first interface (a VIP on `lo` routed to the director: ARP for it never reaches us, and
/// the gratuitous ARP then goes out of the first `--interface`).
fn port_of(ifaces: &[Iface], a: IpAddr) -> PortId {
    ifaces.iter().position(|i| i.on_link(a)).unwrap_or(0) as PortId
}

/// The plane's configuration for the packet shard's services and the VRRP state.
fn plane_config_of(
    ifaces: &[Iface],
    sh: Option<&Shard>,
    vrrp: Option<&StatusBoard>,
    opts: &Options,
) -> PlaneConfig {
    let ports = ifaces
        .iter()
        .map(|i| PortConfig {
            mac: i.mac,
            mtu: i.mtu,
            addr4: i.addr4(),
            addr6: i.addr6(),
        })
        .collect();
    let mut owned: Vec<(IpAddr, PortId)> = Vec::new();
    let mut own = |a: IpAddr| {
        if !a.is_loopback() && !owned.iter().any(|&(o, _)| o == a) {
            owned.push((a, port_of(ifaces, a)));
        }
    };
    let mut laddrs = LaddrPools::new(opts.lport_range);
    let services = || sh.into_iter().flat_map(|sh| sh.director.table.services());
    for (_, s) in services() {
        if !packet_serves(&s.key) {
            continue;
        }
        if let ServiceKey::Addr { addr, .. } = s.key {
            own(addr);
        }
        if let Some(x) = sh.and_then(|sh| sh.extra.get(&s.key)) {
            if !x.laddrs.is_empty() {
                // The service's own pool, shared: every worker allocates from one cursor.
                laddrs.insert(s.key, x.laddrs.clone());
            }
            for a in x.laddrs.addrs() {
                own(a);
            }
        }
    }
    // Firewall-mark VIPs are owned only while a service of that mark exists.
    for m in &opts.marks {
        let marked = services()
            .any(|(_, s)| matches!(s.key, ServiceKey::Fwmark { mark, .. } if mark == m.mark));
        if marked {
            own(m.addr);
        }
    }
    // With VRRP, a VIP (or local address) belongs to this director only while its instance
    // is MASTER: as BACKUP the plane must not answer ARP/ND for it (the VRRP driver removes
    // it from the interface and the peer announces it), nor serve the packets that still
    // reach it at this director's MAC, as a kernel BACKUP's IPVS never sees them (the
    // address is not local there).
    let mut standby = Vec::new();
    if let Some(board) = vrrp {
        let held_by_peer = board.standby_vips();
        owned.retain(|&(a, _)| {
            let mine = !held_by_peer.contains(&a);
            if !mine {
                standby.push(a);
            }
            mine
        });
    }
    PlaneConfig {
        ports,
        owned,
        marks: opts.marks.clone(),
        laddrs,
        pmtu_disc: true,
        standby,
    }
}

/// The nft guard's rules for the packet shard's services, and the real servers to resolve.
fn guard_rules_of(
    ifaces: &[Iface],
    shard: Option<&Shard>,
    opts: &Options,
) -> (GuardRules, Vec<IpAddr>) {
    let mut g = GuardRules::default();
    let mut rs = Vec::new();
    let (lo, hi) = opts.lport_range;
    for (_, s) in shard
        .into_iter()
        .flat_map(|sh| sh.director.table.services())
    {
        if !packet_serves(&s.key) {
            continue;
        }
        // The protocol and port replies come from, when the service has them.
        let svc_l4 = match s.key {
            ServiceKey::Addr { proto, addr, port } => {
                g.vips.push(if port == 0 {
                    Match::addr(addr)
                } else {
                    Match::service(addr, proto, port)
                });
                Some(proto)
            }
            ServiceKey::Fwmark { mark, .. } => {
                for m in opts.marks.iter().filter(|m| m.mark == mark) {
                    g.vips.push(Match::addr(m.addr));
                }
                None
            }
        };
        for d in s
            .dests
            .iter()
            .filter_map(|id| shard.and_then(|sh| sh.director.table.dests.get(*id)))
        {
            if !rs.contains(&d.cfg.addr) {
                rs.push(d.cfg.addr);
            }
            if matches!(d.cfg.fwd, FwdMethod::Masq | FwdMethod::FullNat) {
                g.replies.push(match svc_l4 {
                    Some(p) if d.cfg.port != 0 => Match::service(d.cfg.addr, p, d.cfg.port),
                    _ => Match::addr(d.cfg.addr),
                });
            }
        }
        if let Some(x) = shard.and_then(|sh| sh.extra.get(&s.key)) {
            let protos: Vec<Protocol> = match svc_l4 {
                Some(p) => vec![p],
                None => {
                    let mut v: Vec<Protocol> = opts
                        .marks
                        .iter()
                        .filter_map(|m| Protocol::from_number(m.proto))
                        .collect();
                    v.dedup();
                    if v.is_empty() {
                        v = vec![Protocol::Tcp, Protocol::Udp];
                    }
                    v
                }
            };
            for addr in x.laddrs.addrs() {
                for &proto in &protos {
                    g.local_ports.push(LocalPorts {
                        addr,
                        proto,
                        ports: lo..=hi,
                    });
                }
            }
        }
    }
    for i in ifaces {
        for &(a, _) in &i.addrs {
            if !g.keep_local.contains(&a) {
                g.keep_local.push(a);
            }
        }
    }
    (g, rs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Planes, State};
    use crate::test_support::parse_cmd;
    use rvs_control::proto::Request;
    use rvs_core::Time;

    fn ifaces() -> Vec<Iface> {
        vec![
            Iface {
                name: "eth0".into(),
                ifindex: 2,
                mac: [2, 0, 0, 0, 0, 1],
                mtu: 1500,
                addrs: vec![("10.1.0.1".parse().unwrap(), 24)],
            },
            Iface {
                name: "eth1".into(),
                ifindex: 3,
                mac: [2, 0, 0, 0, 0, 2],
                mtu: 1500,
                addrs: vec![
                    ("10.2.0.1".parse().unwrap(), 24),
                    ("fe80::1".parse().unwrap(), 64),
                ],
            },
        ]
    }

    fn state(cmds: &[&str]) -> State {
        state_with(cmds, Options::default())
    }

    /// A state with the packet plane attached (so every change publishes its view).
    fn state_with(cmds: &[&str], opts: Options) -> State {
        let mut st = State::new(Time(0), Planes { packet: true });
        st.attach_packet_plane(PacketFeed::new(ifaces(), opts));
        for c in cmds {
            let req = parse_cmd(c);
            let r = st.handle(&req, Time(0));
            assert!(r.result.is_ok(), "{c}: {:?}", r.result);
        }
        st
    }

    /// The view the state published last.
    fn published(st: &State) -> crate::published::Snapshot<PacketView> {
        st.packet_feed().expect("attached").view.load()
    }

    #[test]
    fn vrrp_backup_does_not_own_its_vips() {
        use crate::vrrp::{InstanceStatus, StatusBoard};
        let mut st = state(&["-A -t 10.100.0.1:80 -s rr", "-A -t 10.100.0.7:80 -s rr"]);
        let inst = |state: &'static str, vip: &str| InstanceStatus {
            name: "VI_1".into(),
            interface: "eth0".into(),
            vrid: 51,
            state,
            priority: 100,
            base_priority: 100,
            transitions: 0,
            became_master: 0,
            adverts_sent: 0,
            priority_zero_sent: 0,
            adverts_received: 0,
            adverts_accepted: 0,
            adverts_rejected: 0,
            priority_zero_received: 0,
            vips: vec![vip.parse().unwrap()],
        };
        let board = std::sync::Arc::new(StatusBoard::default());
        let owns = |st: &State, a: &str| {
            published(st)
                .config
                .owned
                .iter()
                .any(|(o, _)| o.to_string() == a)
        };
        // As rvsd attaches it (`vrrp::prepare`): every instance INIT, before the driver runs.
        board.publish(vec![inst("INIT", "10.100.0.1")]);
        st.set_vrrp(board.clone());
        assert!(
            !owns(&st, "10.100.0.1"),
            "INIT must not answer ARP for its VIP"
        );
        board.publish(vec![inst("BACKUP", "10.100.0.1")]);
        assert!(published(&st).vrrp_moved(), "the keeper must see the move");
        st.follow_vrrp();
        assert!(!published(&st).vrrp_moved());
        assert!(
            !owns(&st, "10.100.0.1"),
            "BACKUP must not answer ARP for its VIP"
        );
        let standby = |st: &State| -> Vec<String> {
            let v = published(st);
            v.config.standby.iter().map(|a| a.to_string()).collect()
        };
        assert_eq!(
            standby(&st),
            ["10.100.0.1"],
            "BACKUP must not serve its VIP's packets"
        );
        assert!(
            owns(&st, "10.100.0.7"),
            "a VIP no instance manages stays owned"
        );
        let v0 = published(&st).version();
        board.publish(vec![inst("MASTER", "10.100.0.1")]);
        assert!(published(&st).vrrp_moved());
        st.follow_vrrp();
        assert_ne!(
            published(&st).version(),
            v0,
            "a transition must publish a new view"
        );
        assert!(owns(&st, "10.100.0.1"));
        assert!(standby(&st).is_empty(), "MASTER serves its VIP");
        let v1 = published(&st).version();
        board.publish(vec![inst("MASTER", "10.100.0.1")]);
        assert!(!published(&st).vrrp_moved());
        st.follow_vrrp();
        assert_eq!(published(&st).version(), v1, "no transition, no new view");
    }

    #[test]
    fn config_and_guard_follow_the_table() {
        let opts = Options {
            marks: vec![parse_mark_rule("tcp:10.100.0.2:80-443=6666").unwrap()],
            ..Options::default()
        };
        let st = state_with(
            &[
                "-A -t 10.100.0.1:80 -s rr",
                "-a -t 10.100.0.1:80 -r 10.2.0.11:80 -m",
                "-a -t 10.100.0.1:80 -r 10.2.0.12:80 -g",
                "-A -t 10.2.0.50:0 -p 60",
                "-A -t 127.0.0.1:8080",
                "-A -f 6666 -p 60",
                "-a -f 6666 -r 10.2.0.13 -m",
                "-A -t 10.100.0.3:80",
                "--add-laddr -t 10.100.0.3:80 -z 10.2.0.100",
            ],
            opts,
        );
        let view = published(&st);
        assert_eq!(view.generation, st.generation());
        let c = &view.config;
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[1].addr4, Some("10.2.0.1".parse().unwrap()));
        assert_eq!(c.ports[1].addr6, None, "link-local is not a source");
        let owned: Vec<(String, PortId)> =
            c.owned.iter().map(|(a, p)| (a.to_string(), *p)).collect();
        for want in [
            ("10.100.0.1", 0),
            ("10.2.0.50", 1),
            ("10.100.0.3", 0),
            ("10.2.0.100", 1),
            ("10.100.0.2", 0),
        ] {
            assert!(owned.contains(&(want.0.to_string(), want.1)), "{owned:?}");
        }
        assert!(!owned.iter().any(|(a, _)| a == "127.0.0.1"));
        assert_eq!(c.laddrs.len(), 1);

        let (g, rs) = (&view.guard, &view.real_servers);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(g
            .vips
            .contains(&Match::service(ip("10.100.0.1"), Protocol::Tcp, 80)));
        assert!(g.vips.contains(&Match::addr(ip("10.2.0.50"))));
        assert!(g.vips.contains(&Match::addr(ip("10.100.0.2"))));
        assert!(!g.vips.iter().any(|m| m.addr == ip("127.0.0.1")));
        // NAT replies by address and port; DR real servers are not guarded (replies bypass).
        assert!(g
            .replies
            .contains(&Match::service(ip("10.2.0.11"), Protocol::Tcp, 80)));
        assert!(!g.replies.iter().any(|m| m.addr == ip("10.2.0.12")));
        assert!(g.replies.contains(&Match::addr(ip("10.2.0.13"))));
        assert_eq!(g.local_ports.len(), 1);
        assert_eq!(g.local_ports[0].addr, ip("10.2.0.100"));
        assert!(g.keep_local.contains(&ip("10.1.0.1")));
        assert!(rs.contains(&ip("10.2.0.12")));
        // The proxy keeps only the loopback service.
        let l = st.proxy_listeners();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].addr, "127.0.0.1:8080".parse().unwrap());
    }

    #[test]
    fn generation_and_view_move_on_changes_only() {
        let mut st = state(&["-A -t 10.100.0.1:80"]);
        let g = st.generation();
        let v = published(&st).version();
        st.handle(&Request::GetServices, Time(0));
        assert_eq!(st.generation(), g);
        assert_eq!(published(&st).version(), v, "a query publishes nothing");
        st.handle(&parse_cmd("-a -t 10.100.0.1:80 -r 10.2.0.11 -m"), Time(0));
        assert_ne!(st.generation(), g);
        let view = published(&st);
        assert_ne!(view.version(), v);
        // Published after the change was applied: the new real server is in it.
        assert_eq!(view.generation, st.generation());
        assert_eq!(
            view.real_servers,
            vec!["10.2.0.11".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn mark_rules_parse() {
        let m = parse_mark_rule("tcp:10.100.0.1:80-443=6666").unwrap();
        assert_eq!((m.proto, m.ports, m.mark), (6, (80, 443), 6666));
        let m = parse_mark_rule("any:[2001:db8::1]:53=7").unwrap();
        assert_eq!(m.addr, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(m.ports, (53, 53));
        for bad in [
            "tcp:10.0.0.1:80",
            "icmp:10.0.0.1:80=1",
            "tcp:10.0.0.1:90-80=1",
            "tcp:x:80=1",
        ] {
            assert!(parse_mark_rule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(super::super::iface::same_prefix(
            ip("10.2.0.1"),
            ip("10.2.0.200"),
            24
        ));
        assert!(!super::super::iface::same_prefix(
            ip("10.2.0.1"),
            ip("10.2.1.1"),
            24
        ));
        assert!(super::super::iface::same_prefix(
            ip("2001:db8::1"),
            ip("2001:db8::ff"),
            64
        ));
        assert!(!super::super::iface::same_prefix(
            ip("10.2.0.1"),
            ip("2001:db8::ff"),
            0
        ));
    }
}
