//! The topologies: NAT, DR, TUN, FULLNAT, the kernel selftest's, and an HA pair. Each builder
//! returns a [`Topology`] that names every namespace, interface, address and MAC, and owns the
//! [`Lab`] (dropping the topology removes everything).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::decap::{DecapConfig, DEFAULT_DEV};
use crate::error::{LabError, Result};
use crate::netns::{Lab, MacAddr, Netns};

/// Which topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabKind {
    /// Client, director with two interfaces, two real servers whose gateway is the DIP.
    Nat,
    /// Client, router, director and real servers on one L2 segment; VIP on the real servers' `lo`.
    Dr,
    /// Client, router, director, real servers each on its own routed network, with a userspace
    /// decapsulator (no ipip/gre in this kernel).
    Tun,
    /// Client, director, real servers with no route back to the client.
    Fullnat,
    /// The three namespaces of the kernel's `ipvs.sh` selftest, set up for one mode.
    Selftest(SelftestMode),
    /// Two directors on the client segment (for VRRP), two real servers.
    Ha,
    /// The HA pair for direct routing: the two directors share the VIP segment with a router
    /// (the client sits behind it); real servers hold the VIP on `lo` (ARP sysctls) and answer
    /// the client straight through the router, never through a director.
    HaDr,
    /// [`LabKind::HaDr`] with a decapsulator on every real server, for tunnelling.
    HaTun,
}

/// The per-mode setup of the kernel selftest (docs/internals/forwarding.md#the-kernels-ipvs-selftest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelftestMode {
    /// Direct routing: VIP on ns2's `lo`, ARP sysctls, reply via veth20 straight to the client.
    Dr,
    /// Masquerading: veth20 deleted, ns2's default route via the director.
    Nat,
    /// Tunnelling: like DR, director with `ip_forward=0`, a decapsulator on ns2.
    Tun,
}

impl fmt::Display for LabKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabKind::Nat => f.write_str("nat"),
            LabKind::Dr => f.write_str("dr"),
            LabKind::Tun => f.write_str("tun"),
            LabKind::Fullnat => f.write_str("fullnat"),
            LabKind::Selftest(m) => write!(f, "selftest-{}", m.as_str()),
            LabKind::Ha => f.write_str("ha"),
            LabKind::HaDr => f.write_str("ha-dr"),
            LabKind::HaTun => f.write_str("ha-tun"),
        }
    }
}

impl LabKind {
    /// One of the HA pairs (two directors, VIP left to VRRP).
    pub fn is_ha_pair(self) -> bool {
        matches!(self, LabKind::Ha | LabKind::HaDr | LabKind::HaTun)
    }
}

impl SelftestMode {
    /// `dr`, `nat` or `tun`.
    pub fn as_str(self) -> &'static str {
        match self {
            SelftestMode::Dr => "dr",
            SelftestMode::Nat => "nat",
            SelftestMode::Tun => "tun",
        }
    }
}

/// One addressed interface of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// Interface name inside the node's namespace.
    pub name: String,
    /// Its IPv4 address.
    pub addr: Ipv4Addr,
    /// Prefix length of the address.
    pub prefix_len: u8,
    /// Its Ethernet address.
    pub mac: MacAddr,
}

/// One role of a topology (client, router, director, real server, switch) and its namespace.
#[derive(Debug, Clone)]
pub struct Node {
    /// `client`, `router`, `director` (`director1`/`director2` in the HA pair), `rs1`, `rs2`…,
    /// `switch`.
    pub role: String,
    /// The namespace.
    pub ns: Netns,
    /// Interfaces that carry an address, in creation order (VIPs on `lo` are not listed; see
    /// [`Topology::vip`]).
    pub ifaces: Vec<Iface>,
}

impl Node {
    /// The interface called `name`, if it carries an address.
    pub fn iface(&self, name: &str) -> Option<&Iface> {
        self.ifaces.iter().find(|i| i.name == name)
    }

    /// Address of the first interface (the client-side one for directors).
    pub fn addr(&self) -> Option<Ipv4Addr> {
        self.ifaces.first().map(|i| i.addr)
    }

    /// The namespace name.
    pub fn ns_name(&self) -> &str {
        self.ns.name()
    }
}

/// Options for [`Topology::build`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildOptions {
    /// Start the TUN lab's decapsulators as threads of this process (tests). The `rvs-lab up`
    /// command turns this off and runs them as `rvs-lab decap` processes instead, so they
    /// outlive it.
    pub in_process_decap: bool,
    /// Number of real servers, 1..=[`MAX_REAL_SERVERS`] (default 2). The kernel selftest
    /// topology always has exactly one and ignores this.
    pub real_servers: u8,
}

/// Most real servers a topology can have: their host parts (10 + *i*) stay below the FULLNAT
/// local address 10.2.0.100.
pub const MAX_REAL_SERVERS: u8 = 80;

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            in_process_decap: true,
            real_servers: 2,
        }
    }
}

/// VIP of the NAT, DR, TUN and FULLNAT labs (on the director's `lo`; on the real servers' `lo`
/// too for DR and TUN).
pub const LAB_VIP: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 1);
/// VIP of the HA pair (on the client segment; not configured: VRRP owns it).
pub const HA_VIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 100);
/// Floating server-side gateway of the HA pair (not configured: VRRP owns it).
pub const HA_DIP: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);
/// The client's address in the direct-routing HA pairs ([`LabKind::HaDr`], [`LabKind::HaTun`]),
/// behind the router.
pub const HA_DIRECT_CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);
/// The router's address on the server segment of the direct-routing HA pairs: the real servers'
/// default route, so their replies bypass the directors.
pub const HA_DIRECT_GW: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 254);
/// VIP of the kernel selftest.
pub const SELFTEST_VIP: Ipv4Addr = Ipv4Addr::new(207, 175, 44, 110);
/// Service port of the kernel selftest.
pub const SELFTEST_PORT: u16 = 8080;
/// GUE port the TUN lab's decapsulators listen on (`--tun-type gue --tun-port 6080`).
pub const TUN_GUE_PORT: u16 = 6080;
/// The FULLNAT lab's local address (on the director's server-side interface).
pub const FULLNAT_LADDR: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 100);

/// IPv6 VIP of the NAT lab's IPv6 layer ([`Topology::add_ipv6`]): on the client's link and
/// configured nowhere.
pub const LAB_VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x100);

/// IPv6 VIP of the TUN lab's IPv6 layer ([`Topology::add_ipv6`] on [`tun()`]): on the
/// director's and the real servers' `lo`, routed by the router to the director (the IPv6 twin of
/// [`LAB_VIP`] there).
pub const LAB_TUN_VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x100, 0, 0, 0, 0, 0, 1);

/// nftables table of [`Topology::kernel_nat_baseline`].
pub const BASELINE_TABLE: &str = "rvslab_baseline";

/// A built topology. Dropping it tears everything down.
#[derive(Debug)]
pub struct Topology {
    kind: LabKind,
    nodes: Vec<Node>,
    /// The virtual IP clients dial.
    pub vip: Ipv4Addr,
    /// The service port (80 for the nginx labs, 8080 for the selftest).
    pub port: u16,
    /// FULLNAT local addresses configured on the director (empty for other kinds).
    pub laddrs: Vec<Ipv4Addr>,
    /// GUE port the decapsulators listen on (TUN lab only).
    pub gue_port: Option<u16>,
    /// Roles whose real servers need a decapsulator (TUN lab, selftest TUN).
    decap_roles: Vec<String>,
    /// The IPv6 layer, once [`Topology::add_ipv6`] added it.
    ipv6: Option<Ipv6Layer>,
    /// Whether [`Topology::start_nginx`] ran (the walkthrough says what listens).
    nginx: bool,
    /// More options for the walkthrough's rvsd command lines
    /// ([`Topology::set_walkthrough_rvsd_options`]), each with a leading space.
    pub(crate) rvsd_options: String,
    // Last: the lab must be dropped after everything that refers to it.
    lab: Lab,
}

/// Builds the NAT lab in a fresh test lab named after `tag`.
pub fn nat(tag: &str) -> Result<Topology> {
    Topology::build(Lab::new(tag)?, LabKind::Nat, BuildOptions::default())
}

/// Builds the NAT lab with its IPv6 layer ([`Topology::add_ipv6`]) in a fresh test lab named
/// after `tag`: dual stack, the IPv4 lab unchanged.
pub fn nat_dual(tag: &str) -> Result<Topology> {
    let mut t = nat(tag)?;
    t.add_ipv6()?;
    Ok(t)
}

/// Builds the TUN lab with its IPv6 layer ([`Topology::add_ipv6`]) in a fresh test lab named
/// after `tag`: dual stack, the IPv4 lab unchanged, the decapsulators taking 6in6, 4in6, GRE
/// and GUE over IPv6 as well.
pub fn tun_dual(tag: &str) -> Result<Topology> {
    let mut t = tun(tag)?;
    t.add_ipv6()?;
    Ok(t)
}

/// Builds the DR lab in a fresh test lab named after `tag`.
pub fn dr(tag: &str) -> Result<Topology> {
    Topology::build(Lab::new(tag)?, LabKind::Dr, BuildOptions::default())
}

/// Builds the TUN lab (decapsulators running) in a fresh test lab named after `tag`.
pub fn tun(tag: &str) -> Result<Topology> {
    Topology::build(Lab::new(tag)?, LabKind::Tun, BuildOptions::default())
}

/// Builds the FULLNAT lab in a fresh test lab named after `tag`.
pub fn fullnat(tag: &str) -> Result<Topology> {
    Topology::build(Lab::new(tag)?, LabKind::Fullnat, BuildOptions::default())
}

/// Builds the kernel selftest topology for `mode` in a fresh test lab named after `tag`.
pub fn selftest(tag: &str, mode: SelftestMode) -> Result<Topology> {
    Topology::build(
        Lab::new(tag)?,
        LabKind::Selftest(mode),
        BuildOptions::default(),
    )
}

/// Builds the HA pair in a fresh test lab named after `tag`.
pub fn ha(tag: &str) -> Result<Topology> {
    Topology::build(Lab::new(tag)?, LabKind::Ha, BuildOptions::default())
}

/// Accumulates nodes while a topology is built.
struct Builder {
    lab: Lab,
    nodes: Vec<Node>,
    real_servers: u8,
}

impl Builder {
    fn node(&mut self, role: &str) -> Result<Netns> {
        self.node_named(role, role)
    }

    /// A node whose namespace suffix differs from its role (the selftest's `ns0`…).
    fn node_named(&mut self, role: &str, suffix: &str) -> Result<Netns> {
        let ns = self.lab.add_netns(suffix)?;
        self.nodes.push(Node {
            role: role.into(),
            ns: ns.clone(),
            ifaces: Vec::new(),
        });
        Ok(ns)
    }

    fn ns(&self, role: &str) -> Result<Netns> {
        self.nodes
            .iter()
            .find(|n| n.role == role)
            .map(|n| n.ns.clone())
            .ok_or_else(|| LabError::Invalid(format!("no node {role}")))
    }

    /// Adds `addr/len` to `dev` of `role` and records it with the MAC.
    fn addr(&mut self, role: &str, dev: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<()> {
        let ns = self.ns(role)?;
        ns.add_addr(dev, &format!("{addr}/{prefix_len}"))?;
        let mac = ns.mac(dev)?;
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.role == role)
            .ok_or_else(|| LabError::Invalid(format!("no node {role}")))?;
        node.ifaces.push(Iface {
            name: dev.into(),
            addr,
            prefix_len,
            mac,
        });
        Ok(())
    }

    /// A point-to-point veth between two roles, each end addressed.
    fn p2p(&mut self, a: (&str, &str, Ipv4Addr), b: (&str, &str, Ipv4Addr), len: u8) -> Result<()> {
        let (na, nb) = (self.ns(a.0)?, self.ns(b.0)?);
        self.lab.veth(&na, a.1, &nb, b.1)?;
        self.addr(a.0, a.1, a.2, len)?;
        self.addr(b.0, b.1, b.2, len)
    }

    /// Plugs each `(role, dev, addr)` into a new bridge `bridge` in the `switch` node.
    fn segment(&mut self, bridge: &str, members: &[(&str, &str, Ipv4Addr)], len: u8) -> Result<()> {
        let sw = self.ns("switch")?;
        let mut ports = Vec::new();
        for (role, dev, _) in members {
            let port = switch_port(role, dev);
            let ns = self.ns(role)?;
            self.lab.veth(&ns, dev, &sw, &port)?;
            ports.push(port);
        }
        let port_refs: Vec<&str> = ports.iter().map(String::as_str).collect();
        self.lab.bridge(&sw, bridge, &port_refs)?;
        for (role, dev, addr) in members {
            self.addr(role, dev, *addr, len)?;
        }
        Ok(())
    }

    fn vip_on_lo(&self, role: &str, vip: Ipv4Addr) -> Result<()> {
        self.ns(role)?.add_addr("lo", &format!("{vip}/32"))
    }

    /// VIP on `lo` plus the LVS-DR/TUN ARP and reverse-path sysctls.
    fn real_server_vip(&self, role: &str, vip: Ipv4Addr, devs: &[&str]) -> Result<()> {
        let ns = self.ns(role)?;
        ns.add_addr("lo", &format!("{vip}/32"))?;
        ns.real_server_sysctls(devs)
    }

    fn forward(&self, role: &str, on: bool) -> Result<()> {
        self.ns(role)?
            .sysctl("net.ipv4.ip_forward", if on { "1" } else { "0" })
    }

    /// Routers see asymmetric paths in DR/TUN (requests via the director, replies straight
    /// from the real servers), so strict reverse-path filtering must be off.
    fn no_rp_filter(&self, role: &str, devs: &[&str]) -> Result<()> {
        let ns = self.ns(role)?;
        for s in ["all", "default"].iter().chain(devs) {
            ns.sysctl(&format!("net.ipv4.conf.{s}.rp_filter"), "0")?;
        }
        Ok(())
    }

    fn route(&self, role: &str, dest: &str, via: Ipv4Addr) -> Result<()> {
        self.ns(role)?.add_route(dest, via)
    }
}

/// Name of the switch-side port for `dev` of `role`, cut to the interface name limit.
fn switch_port(role: &str, dev: &str) -> String {
    let mut s = format!("{role}-{dev}");
    s.truncate(crate::netns::IFNAME_MAX);
    s
}

/// `fd00:net:sub::host`, the lab's IPv6 addressing.
const fn v6(net: u16, sub: u16, host: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, net, sub, 0, 0, 0, 0, host)
}

/// Adds `addr/len` to `dev` with `nodad` (usable at once).
fn add6(ns: &Netns, dev: &str, addr: Ipv6Addr, len: u8) -> Result<()> {
    ns.ip([
        "-6",
        "addr",
        "add",
        &format!("{addr}/{len}"),
        "dev",
        dev,
        "nodad",
    ])
    .map(drop)
}

/// An IPv6 route to `dest` (`default` or a prefix) via `gw`.
fn route6(ns: &Netns, dest: &str, gw: Ipv6Addr) -> Result<()> {
    ns.ip(["-6", "route", "add", dest, "via", &gw.to_string()])
        .map(drop)
}

const fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

impl Topology {
    /// Builds topology `kind` inside `lab`. On error everything made so far is removed.
    pub fn build(lab: Lab, kind: LabKind, opts: BuildOptions) -> Result<Topology> {
        if opts.real_servers == 0 || opts.real_servers > MAX_REAL_SERVERS {
            return Err(LabError::Invalid(format!(
                "real_servers must be 1..={MAX_REAL_SERVERS}, not {}",
                opts.real_servers
            )));
        }
        let mut b = Builder {
            lab,
            nodes: Vec::new(),
            real_servers: opts.real_servers,
        };
        let spec = match kind {
            LabKind::Nat => build_nat(&mut b)?,
            LabKind::Dr => build_dr(&mut b)?,
            LabKind::Tun => build_tun(&mut b)?,
            LabKind::Fullnat => build_fullnat(&mut b)?,
            LabKind::Selftest(mode) => build_selftest(&mut b, mode)?,
            LabKind::Ha => build_ha(&mut b)?,
            LabKind::HaDr => build_ha_direct(&mut b, false)?,
            LabKind::HaTun => build_ha_direct(&mut b, true)?,
        };
        let mut topo = Topology {
            kind,
            nodes: b.nodes,
            vip: spec.vip,
            port: spec.port,
            laddrs: spec.laddrs,
            gue_port: spec.gue_port,
            decap_roles: spec.decap_roles,
            ipv6: None,
            nginx: false,
            rvsd_options: String::new(),
            lab: b.lab,
        };
        if opts.in_process_decap {
            for role in topo.decap_roles.clone() {
                let ns = topo
                    .node(&role)
                    .map(|n| n.ns.clone())
                    .ok_or_else(|| LabError::Invalid(format!("no node {role}")))?;
                let cfg = topo.decap_config();
                topo.lab.start_decap(&ns, cfg)?;
            }
        }
        Ok(topo)
    }

    /// Which topology this is.
    pub fn kind(&self) -> LabKind {
        self.kind
    }

    /// The lab that owns the namespaces (for its prefix, work directory, or to hand it
    /// processes with [`Lab::own`]).
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// Mutable access to the lab.
    pub fn lab_mut(&mut self) -> &mut Lab {
        &mut self.lab
    }

    /// Every node, in creation order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node with role `role`.
    pub fn node(&self, role: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.role == role)
    }

    fn must(&self, role: &str) -> &Node {
        // Every builder creates these roles; a missing one is a bug in this crate.
        self.node(role)
            .unwrap_or_else(|| panic!("topology {} has no {role}", self.kind))
    }

    /// The client.
    pub fn client(&self) -> &Node {
        self.must("client")
    }

    /// The director (the first one in the HA pair).
    pub fn director(&self) -> &Node {
        self.directors()
            .first()
            .copied()
            .unwrap_or_else(|| panic!("topology {} has no director", self.kind))
    }

    /// All directors (two in the HA pair, one elsewhere).
    pub fn directors(&self) -> Vec<&Node> {
        self.nodes
            .iter()
            .filter(|n| n.role.starts_with("director"))
            .collect()
    }

    /// The real servers, `rs1`, `rs2`…
    pub fn real_servers(&self) -> Vec<&Node> {
        self.nodes
            .iter()
            .filter(|n| n.role.starts_with("rs"))
            .collect()
    }

    /// The router (DR and TUN labs).
    pub fn router(&self) -> Option<&Node> {
        self.node("router")
    }

    /// The real-server address a director forwards to: the server-side address of each real
    /// server (for the selftest, `172.16.0.2`).
    pub fn rips(&self) -> Vec<Ipv4Addr> {
        self.real_servers()
            .iter()
            .filter_map(|n| n.addr())
            .collect()
    }

    /// The IPv6 layer, if [`Topology::add_ipv6`] added one.
    pub fn ipv6(&self) -> Option<&Ipv6Layer> {
        self.ipv6.as_ref()
    }

    /// Adds an IPv6 layer to the NAT or the TUN lab (dual stack; the IPv4 addresses and routes
    /// stay as they are), see [`Ipv6Layer`] for the addresses.
    ///
    /// NAT lab ([`nat_dual`]):
    ///
    /// * client `fd00:1::2/64` and director `eth0` `fd00:1::1/64` on the client link; the
    ///   client's default IPv6 route goes via `fd00:1::1`;
    /// * director `eth1` `fd00:2::1/64` (the IPv6 DIP) and real servers `fd00:2::11`,
    ///   `fd00:2::12`, … `/64` on the server segment, their default IPv6 route via the DIP;
    /// * IPv6 forwarding on in the director (as `ip_forward` is for IPv4);
    /// * the VIP [`LAB_VIP6`] (`fd00:1::100`) lies on the client's link and is configured
    ///   **nowhere**, unlike the IPv4 VIP on the director's `lo`: the client resolves it with a
    ///   neighbour solicitation, and only a data plane that answers ND for its VIPs (rvsd's
    ///   packet plane) makes it reachable.
    ///
    /// TUN lab ([`tun_dual`]), the IPv6 twin of its IPv4 addressing:
    ///
    /// * client `fd00:1::2/64`, router `eth0` `fd00:1::1/64`, the client's default route via
    ///   the router;
    /// * director `eth0` `fd00:4::10/64` (its only interface, so both
    ///   [`Ipv6Layer::director_client_side`] and [`Ipv6Layer::dip`], the source of its
    ///   tunnels), router `eth1` `fd00:4::1/64`, the director's default route via the router;
    /// * real server *i* `fd00:5:i::(10+i)/64` on its own link with router `eth(1+i)`
    ///   `fd00:5:i::1/64`, its default route via the router: real servers are reachable only
    ///   by routing, and answer the client straight through the router;
    /// * IPv6 forwarding on in the router, which routes the VIP [`LAB_TUN_VIP6`]
    ///   (`fd00:100::1`) to the director; the VIP is on the director's `lo` and on every real
    ///   server's `lo` (where the decapsulated packets are delivered), like the IPv4 VIP.
    ///   The decapsulators (started with the lab) already take IPv6-outer packets.
    ///
    /// Every address is added with `nodad`, so it is usable at once. Call it before starting
    /// a data plane that reads the interfaces' addresses at start (rvsd). NAT and TUN labs
    /// only; a second call is an error.
    pub fn add_ipv6(&mut self) -> Result<&Ipv6Layer> {
        if self.kind != LabKind::Nat && self.kind != LabKind::Tun {
            return Err(LabError::Invalid(format!(
                "the IPv6 layer needs the NAT or the TUN lab, not {}",
                self.kind
            )));
        }
        if self.ipv6.is_some() {
            return Err(LabError::Invalid("the IPv6 layer is already there".into()));
        }
        let layer = if self.kind == LabKind::Tun {
            self.add_ipv6_tun()?
        } else {
            self.add_ipv6_nat()?
        };
        Ok(self.ipv6.insert(layer))
    }

    fn add_ipv6_nat(&self) -> Result<Ipv6Layer> {
        let layer = Ipv6Layer {
            vip: LAB_VIP6,
            client: v6(1, 0, 2),
            director_client_side: v6(1, 0, 1),
            dip: v6(2, 0, 1),
            rips: (1..=self.real_servers().len())
                .map(|i| v6(2, 0, 0x10 + u16::try_from(i).unwrap_or(0)))
                .collect(),
            prefix_len: 64,
        };
        let len = layer.prefix_len;
        let client = self.client().ns.clone();
        let director = self.director().ns.clone();
        add6(&client, "eth0", layer.client, len)?;
        add6(&director, "eth0", layer.director_client_side, len)?;
        add6(&director, "eth1", layer.dip, len)?;
        director.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        route6(&client, "default", layer.director_client_side)?;
        let servers: Vec<Netns> = self.real_servers().iter().map(|n| n.ns.clone()).collect();
        for (ns, rip) in servers.iter().zip(&layer.rips) {
            add6(ns, "eth0", *rip, len)?;
            route6(ns, "default", layer.dip)?;
        }
        Ok(layer)
    }

    fn add_ipv6_tun(&self) -> Result<Ipv6Layer> {
        let n = self.real_servers().len();
        let net = |i: usize| u16::try_from(i).unwrap_or(0);
        let director_addr = v6(4, 0, 0x10);
        let layer = Ipv6Layer {
            vip: LAB_TUN_VIP6,
            client: v6(1, 0, 2),
            director_client_side: director_addr,
            dip: director_addr,
            rips: (1..=n).map(|i| v6(5, net(i), 0x10 + net(i))).collect(),
            prefix_len: 64,
        };
        let len = layer.prefix_len;
        let router = self
            .router()
            .map(|r| r.ns.clone())
            .ok_or_else(|| LabError::Invalid("the TUN lab has no router".into()))?;
        let client = self.client().ns.clone();
        let director = self.director().ns.clone();
        let vip_on_lo = |ns: &Netns| {
            ns.ip([
                "-6",
                "addr",
                "add",
                &format!("{}/128", layer.vip),
                "dev",
                "lo",
            ])
            .map(drop)
        };
        add6(&client, "eth0", layer.client, len)?;
        add6(&router, "eth0", v6(1, 0, 1), len)?;
        route6(&client, "default", v6(1, 0, 1))?;
        add6(&director, "eth0", director_addr, len)?;
        add6(&router, "eth1", v6(4, 0, 1), len)?;
        route6(&director, "default", v6(4, 0, 1))?;
        vip_on_lo(&director)?;
        let servers: Vec<Netns> = self.real_servers().iter().map(|n| n.ns.clone()).collect();
        for (i, (ns, rip)) in servers.iter().zip(&layer.rips).enumerate() {
            let gw = v6(5, net(i + 1), 1);
            add6(ns, "eth0", *rip, len)?;
            add6(&router, &format!("eth{}", i + 2), gw, len)?;
            route6(ns, "default", gw)?;
            vip_on_lo(ns)?;
        }
        router.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        route6(&router, &format!("{}/128", layer.vip), director_addr)?;
        Ok(layer)
    }

    /// Whether [`Topology::start_nginx`] started nginx on the real servers.
    pub fn nginx_started(&self) -> bool {
        self.nginx
    }

    /// Roles that run a decapsulator.
    pub fn decap_roles(&self) -> &[String] {
        &self.decap_roles
    }

    /// The decapsulator configuration of this topology's real servers.
    pub fn decap_config(&self) -> DecapConfig {
        DecapConfig {
            dev: DEFAULT_DEV.into(),
            ipip: true,
            gre: true,
            gue_port: self.gue_port,
        }
    }

    /// The ports nginx listens on after [`Topology::start_nginx`]: [`Topology::port`], and 443
    /// as well in the labs on port 80 (a second port for firewall-mark services).
    pub fn nginx_ports(&self) -> Vec<u16> {
        if self.port == 80 {
            vec![80, 443]
        } else {
            vec![self.port]
        }
    }

    /// Starts nginx on every real server, listening on [`Topology::nginx_ports`] (plain HTTP
    /// on each), serving a page with the role name (`rs1\n`) and `/whoami`. The processes are
    /// owned by the lab.
    pub fn start_nginx(&mut self) -> Result<()> {
        let servers: Vec<(String, Netns)> = self
            .real_servers()
            .iter()
            .map(|n| (n.role.clone(), n.ns.clone()))
            .collect();
        let ports = self.nginx_ports();
        for (role, ns) in servers {
            let child = ns.nginx_ports(&role, &ports)?;
            self.lab.own(child);
        }
        self.nginx = true;
        Ok(())
    }

    /// Makes the director's kernel do the NAT lab's job, for comparisons: an nftables table
    /// `ip rvslab_baseline` that DNATs every TCP/UDP packet to the VIP (any port, kept) to the
    /// real servers in turn (`numgen inc mod N`, per connection through conntrack), the replies
    /// being un-NATed by conntrack on their way back. This is the kernel path the packet-plane
    /// benchmark compares against. NAT lab and selftest NAT mode only; needs `nft` (Debian
    /// `nftables`). Undo with [`Topology::remove_kernel_nat_baseline`].
    pub fn kernel_nat_baseline(&self) -> Result<()> {
        if !matches!(
            self.kind,
            LabKind::Nat | LabKind::Selftest(SelftestMode::Nat)
        ) {
            return Err(LabError::Invalid(format!(
                "the kernel NAT baseline needs the NAT lab, not {}",
                self.kind
            )));
        }
        let map: Vec<String> = self
            .rips()
            .iter()
            .enumerate()
            .map(|(i, rip)| format!("{i} : {rip}"))
            .collect();
        let rules = format!(
            "table ip {BASELINE_TABLE} {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {vip} meta l4proto {{ tcp, udp }} dnat to numgen inc mod {n} map {{ {map} }}
  }}
}}
",
            vip = self.vip,
            n = map.len(),
            map = map.join(", ")
        );
        self.director()
            .ns
            .cmd("nft")
            .args(["-f", "-"])
            .stdin(rules)
            .run()
            .map(drop)
    }

    /// Removes what [`Topology::kernel_nat_baseline`] installed.
    pub fn remove_kernel_nat_baseline(&self) -> Result<()> {
        self.director()
            .ns
            .cmd("nft")
            .args(["delete", "table", "ip", BASELINE_TABLE])
            .run()
            .map(drop)
    }

    /// The `rvsadm` command lines that configure the director for this topology (run inside the
    /// director's namespace with `rvsd` running there).
    pub fn rvsadm_commands(&self) -> Vec<String> {
        let svc = format!("{}:{}", self.vip, self.port);
        let mut v = vec![format!("rvsadm -A -t {svc} -s rr")];
        let method = match self.kind {
            LabKind::Nat | LabKind::Selftest(SelftestMode::Nat) | LabKind::Ha => "-m",
            LabKind::Dr | LabKind::Selftest(SelftestMode::Dr) | LabKind::HaDr => "-g",
            LabKind::Tun | LabKind::Selftest(SelftestMode::Tun) | LabKind::HaTun => "-i",
            LabKind::Fullnat => "--fullnat",
        };
        for rip in self.rips() {
            v.push(format!(
                "rvsadm -a -t {svc} -r {rip}:{} {method}",
                self.port
            ));
        }
        for l in &self.laddrs {
            v.push(format!("rvsadm --add-laddr -t {svc} -z {l}"));
        }
        v
    }

    /// Everything a person needs to use the lab by hand: nodes, addresses, MACs and what to run.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "lab {} ({}), VIP {}:{}\n",
            self.lab.prefix(),
            self.kind,
            self.vip,
            self.port
        );
        for n in &self.nodes {
            s.push_str(&format!("  {:<10} netns {}\n", n.role, n.ns.name()));
            for i in &n.ifaces {
                s.push_str(&format!(
                    "             {:<8} {}/{}  {}\n",
                    i.name, i.addr, i.prefix_len, i.mac
                ));
            }
        }
        if let Some(v6) = &self.ipv6 {
            let rips: Vec<String> = v6.rips.iter().map(Ipv6Addr::to_string).collect();
            s.push_str(&format!(
                "  IPv6 (/{}): VIP [{}]:{} ({}), client {}, director {} / {}, real servers {}\n",
                v6.prefix_len,
                v6.vip,
                self.port,
                if self.kind == LabKind::Tun {
                    "on the director's and real servers' lo, routed to the director"
                } else {
                    "not configured; the data plane answers ND"
                },
                v6.client,
                v6.director_client_side,
                v6.dip,
                rips.join(" ")
            ));
        }
        if !self.laddrs.is_empty() {
            let l: Vec<String> = self.laddrs.iter().map(Ipv4Addr::to_string).collect();
            s.push_str(&format!("  FULLNAT local addresses: {}\n", l.join(" ")));
        }
        if !self.decap_roles.is_empty() {
            s.push_str(&format!(
                "  userspace decapsulator ({}: IPIP, GRE{}) on: {}\n",
                DEFAULT_DEV,
                self.gue_port
                    .map(|p| format!(", GUE port {p}"))
                    .unwrap_or_default(),
                self.decap_roles.join(" ")
            ));
        }
        s.push_str(crate::walkthrough::TRY_IT);
        s.push('\n');
        s.push_str(&self.render_walkthrough());
        s.push_str(&format!(
            "remove with: rvs-lab down --prefix {}\n",
            self.lab.prefix()
        ));
        s
    }

    /// Keeps the namespaces after the topology is dropped (the `rvs-lab up` command).
    pub fn keep(&mut self) {
        self.lab.keep();
    }

    /// Tears the topology down now, reporting errors (dropping does it silently).
    pub fn destroy(self) -> Result<()> {
        self.lab.destroy()
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The IPv6 addresses of a dual-stack NAT or TUN lab ([`Topology::add_ipv6`], [`nat_dual`],
/// [`tun_dual`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Layer {
    /// The IPv6 VIP: NAT lab [`LAB_VIP6`] (`fd00:1::100`), on the client's link, configured
    /// nowhere; TUN lab [`LAB_TUN_VIP6`] (`fd00:100::1`), on the director's and the real
    /// servers' `lo`, routed by the router to the director.
    pub vip: Ipv6Addr,
    /// The client's address, `fd00:1::2` on its `eth0`.
    pub client: Ipv6Addr,
    /// The director's client-side address: `fd00:1::1` on its `eth0` (NAT lab); `fd00:4::10` on
    /// its `eth0`, its only interface (TUN lab).
    pub director_client_side: Ipv6Addr,
    /// The director's server-side address: `fd00:2::1` on its `eth1`, the real servers' IPv6
    /// gateway (NAT lab); in the TUN lab the same as `director_client_side`, the source address
    /// of its tunnels (the real servers' gateway is the router).
    pub dip: Ipv6Addr,
    /// The real servers' addresses on their `eth0`, in the order of [`Topology::real_servers`]:
    /// `fd00:2::11`, `fd00:2::12`, … (NAT lab); `fd00:5:1::11`, `fd00:5:2::12`, … (TUN lab).
    pub rips: Vec<Ipv6Addr>,
    /// Prefix length of every address (64).
    pub prefix_len: u8,
}

/// What a builder decided besides the nodes.
struct Spec {
    vip: Ipv4Addr,
    port: u16,
    laddrs: Vec<Ipv4Addr>,
    gue_port: Option<u16>,
    decap_roles: Vec<String>,
}

impl Spec {
    fn new(vip: Ipv4Addr, port: u16) -> Spec {
        Spec {
            vip,
            port,
            laddrs: Vec::new(),
            gue_port: None,
            decap_roles: Vec::new(),
        }
    }
}

/// Role names of the real servers, `rs1`…`rsN`.
fn rs_roles(n: u8) -> Vec<String> {
    (1..=n).map(|i| format!("rs{i}")).collect()
}

/// Creates the nodes `fixed` followed by the real servers.
fn nodes_with_servers(b: &mut Builder, fixed: &[&str]) -> Result<Vec<String>> {
    for r in fixed {
        b.node(r)?;
    }
    let rs = rs_roles(b.real_servers);
    for r in &rs {
        b.node(r)?;
    }
    Ok(rs)
}

/// Real server `i` (1-based) on a /24 whose first three octets are `net`: host part `10 + i`
/// (rs1 = .11, rs2 = .12, …).
fn rs_addr(net: [u8; 3], i: usize) -> Ipv4Addr {
    // `i` ≤ MAX_REAL_SERVERS, so 10 + i fits an octet.
    ip(net[0], net[1], net[2], 10 + u8::try_from(i).unwrap_or(0))
}

/// NAT lab:
/// client 10.1.0.2 — 10.1.0.1 director 10.2.0.1 (DIP) — switch — rs1 10.2.0.11, rs2 10.2.0.12,
/// …, real servers' default route via the DIP, VIP 10.100.0.1 on the director's `lo`.
fn build_nat(b: &mut Builder) -> Result<Spec> {
    let rs = nodes_with_servers(b, &["client", "director", "switch"])?;
    b.p2p(
        ("client", "eth0", ip(10, 1, 0, 2)),
        ("director", "eth0", ip(10, 1, 0, 1)),
        24,
    )?;
    let mut seg = vec![("director", "eth1", ip(10, 2, 0, 1))];
    for (i, r) in rs.iter().enumerate() {
        seg.push((r.as_str(), "eth0", rs_addr([10, 2, 0], i + 1)));
    }
    b.segment("br0", &seg, 24)?;
    b.vip_on_lo("director", LAB_VIP)?;
    b.forward("director", true)?;
    b.route("client", "default", ip(10, 1, 0, 1))?;
    for r in &rs {
        b.route(r, "default", ip(10, 2, 0, 1))?;
    }
    Ok(Spec::new(LAB_VIP, 80))
}

/// DR lab: client 192.168.1.2 — 192.168.1.1 router 10.3.0.1 — switch — director 10.3.0.10,
/// rs1 10.3.0.11, rs2 10.3.0.12, …; VIP 10.100.0.1 on every `lo` of director and real servers;
/// the router routes the VIP to the director; real servers answer through the router directly.
fn build_dr(b: &mut Builder) -> Result<Spec> {
    let rs = nodes_with_servers(b, &["client", "router", "director", "switch"])?;
    b.p2p(
        ("client", "eth0", ip(192, 168, 1, 2)),
        ("router", "eth0", ip(192, 168, 1, 1)),
        24,
    )?;
    let mut seg = vec![
        ("router", "eth1", ip(10, 3, 0, 1)),
        ("director", "eth0", ip(10, 3, 0, 10)),
    ];
    for (i, r) in rs.iter().enumerate() {
        seg.push((r.as_str(), "eth0", rs_addr([10, 3, 0], i + 1)));
    }
    b.segment("br0", &seg, 24)?;
    b.forward("router", true)?;
    b.no_rp_filter("router", &["eth0", "eth1"])?;
    b.route("router", &format!("{LAB_VIP}/32"), ip(10, 3, 0, 10))?;
    b.route("client", "default", ip(192, 168, 1, 1))?;
    b.vip_on_lo("director", LAB_VIP)?;
    b.route("director", "default", ip(10, 3, 0, 1))?;
    for r in &rs {
        b.real_server_vip(r, LAB_VIP, &["eth0", "lo"])?;
        b.route(r, "default", ip(10, 3, 0, 1))?;
    }
    Ok(Spec::new(LAB_VIP, 80))
}

/// TUN lab: the router joins the client network 192.168.1.0/24, the director's 10.4.0.0/24 and
/// one network per real server (rs*i* on 10.5.*i*.0/24 at 10.5.*i*.(10+*i*), router eth(1+*i*)
/// at 10.5.*i*.1), so real servers are reachable only by routing. Real servers have the VIP on
/// `lo`, the DR sysctls and a userspace decapsulator.
fn build_tun(b: &mut Builder) -> Result<Spec> {
    let rs = nodes_with_servers(b, &["client", "router", "director"])?;
    b.p2p(
        ("client", "eth0", ip(192, 168, 1, 2)),
        ("router", "eth0", ip(192, 168, 1, 1)),
        24,
    )?;
    b.p2p(
        ("director", "eth0", ip(10, 4, 0, 10)),
        ("router", "eth1", ip(10, 4, 0, 1)),
        24,
    )?;
    let mut router_devs = vec!["eth0".to_owned(), "eth1".to_owned()];
    for (i, r) in rs.iter().enumerate() {
        let net = u8::try_from(i + 1).unwrap_or(0);
        let dev = format!("eth{}", i + 2);
        b.p2p(
            (r.as_str(), "eth0", rs_addr([10, 5, net], i + 1)),
            ("router", &dev, ip(10, 5, net, 1)),
            24,
        )?;
        b.route(r, "default", ip(10, 5, net, 1))?;
        b.real_server_vip(r, LAB_VIP, &["eth0", "lo"])?;
        router_devs.push(dev);
    }
    b.forward("router", true)?;
    let devs: Vec<&str> = router_devs.iter().map(String::as_str).collect();
    b.no_rp_filter("router", &devs)?;
    b.route("router", &format!("{LAB_VIP}/32"), ip(10, 4, 0, 10))?;
    b.route("client", "default", ip(192, 168, 1, 1))?;
    b.vip_on_lo("director", LAB_VIP)?;
    b.route("director", "default", ip(10, 4, 0, 1))?;
    let mut spec = Spec::new(LAB_VIP, 80);
    spec.gue_port = Some(TUN_GUE_PORT);
    spec.decap_roles = rs;
    Ok(spec)
}

/// FULLNAT lab: like NAT, but the director does not forward, carries the local address
/// 10.2.0.100/32 on eth1, and real servers have no default route at all: they can only answer
/// the director's addresses on their own segment.
fn build_fullnat(b: &mut Builder) -> Result<Spec> {
    let rs = nodes_with_servers(b, &["client", "director", "switch"])?;
    b.p2p(
        ("client", "eth0", ip(10, 1, 0, 2)),
        ("director", "eth0", ip(10, 1, 0, 1)),
        24,
    )?;
    let mut seg = vec![("director", "eth1", ip(10, 2, 0, 1))];
    for (i, r) in rs.iter().enumerate() {
        seg.push((r.as_str(), "eth0", rs_addr([10, 2, 0], i + 1)));
    }
    b.segment("br0", &seg, 24)?;
    b.ns("director")?
        .add_addr("eth1", &format!("{FULLNAT_LADDR}/32"))?;
    b.vip_on_lo("director", LAB_VIP)?;
    b.forward("director", false)?;
    b.route("client", "default", ip(10, 1, 0, 1))?;
    let mut spec = Spec::new(LAB_VIP, 80);
    spec.laddrs = vec![FULLNAT_LADDR];
    Ok(spec)
}

/// The kernel selftest (`tools/testing/selftests/net/netfilter/ipvs.sh`, docs/internals/forwarding.md#the-kernels-ipvs-selftest), same names
/// and addresses; namespaces `<prefix>-ns0` (client and bridge), `-ns1` (director), `-ns2`
/// (real server).
fn build_selftest(b: &mut Builder, mode: SelftestMode) -> Result<Spec> {
    let vip = SELFTEST_VIP;
    let ns0 = b.node_named("client", "ns0")?;
    let ns1 = b.node_named("director", "ns1")?;
    let ns2 = b.node_named("rs1", "ns2")?;
    b.lab.veth(&ns1, "veth10", &ns0, "veth01")?;
    b.lab.veth(&ns2, "veth20", &ns0, "veth02")?;
    b.lab.veth(&ns1, "veth12", &ns2, "veth21")?;
    b.lab.bridge(&ns0, "br0", &["veth01", "veth02"])?;
    b.addr("client", "br0", ip(10, 0, 0, 2), 24)?;
    b.addr("director", "veth10", ip(10, 0, 0, 1), 24)?;
    b.addr("director", "veth12", ip(172, 16, 0, 1), 24)?;
    // The real server's server-side address first: it is the RIP (`Node::addr`).
    b.addr("rs1", "veth21", ip(172, 16, 0, 2), 24)?;
    b.addr("rs1", "veth20", ip(10, 0, 0, 3), 24)?;
    ns0.add_route_dev(&format!("{vip}/32"), ip(10, 0, 0, 1), "br0")?;
    ns1.add_addr_label("lo", &format!("{vip}/32"), "lo:1")?;
    let mut spec = Spec::new(vip, SELFTEST_PORT);
    match mode {
        SelftestMode::Dr => {
            b.forward("director", true)?;
            ns2.add_addr("lo", &format!("{vip}/32"))?;
            ns2.real_server_sysctls(&["veth21"])?;
        }
        SelftestMode::Nat => {
            b.forward("director", true)?;
            ns2.del_link("veth20")?;
            if let Some(n) = b.nodes.iter_mut().find(|n| n.role == "rs1") {
                n.ifaces.retain(|i| i.name != "veth20");
            }
            ns2.add_route("default", ip(172, 16, 0, 1))?;
        }
        SelftestMode::Tun => {
            b.forward("director", false)?;
            for s in ["all", "default", "veth10", "veth12"] {
                ns1.sysctl(&format!("net.ipv4.conf.{s}.send_redirects"), "0")?;
            }
            ns2.add_addr("lo", &format!("{vip}/32"))?;
            ns2.real_server_sysctls(&["veth21", "veth20"])?;
            spec.decap_roles = vec!["rs1".into()];
        }
    }
    Ok(spec)
}

/// HA pair: client 10.1.0.2, director1 10.1.0.11 / 10.2.0.2, director2 10.1.0.12 / 10.2.0.3 on
/// two bridges (client segment br0, server segment br1) in the switch; rs1 10.2.0.11, rs2
/// 10.2.0.12 with their default route via the floating DIP 10.2.0.1. The VIP 10.1.0.100 and
/// the DIP are left to VRRP.
fn build_ha(b: &mut Builder) -> Result<Spec> {
    let rs = nodes_with_servers(b, &["client", "director1", "director2", "switch"])?;
    b.segment(
        "br0",
        &[
            ("client", "eth0", ip(10, 1, 0, 2)),
            ("director1", "eth0", ip(10, 1, 0, 11)),
            ("director2", "eth0", ip(10, 1, 0, 12)),
        ],
        24,
    )?;
    let mut seg = vec![
        ("director1", "eth1", ip(10, 2, 0, 2)),
        ("director2", "eth1", ip(10, 2, 0, 3)),
    ];
    for (i, r) in rs.iter().enumerate() {
        seg.push((r.as_str(), "eth0", rs_addr([10, 2, 0], i + 1)));
    }
    b.segment("br1", &seg, 24)?;
    for d in ["director1", "director2"] {
        b.forward(d, true)?;
    }
    for r in &rs {
        b.route(r, "default", HA_DIP)?;
    }
    Ok(Spec::new(HA_VIP, 80))
}

/// Direct-routing HA pair (DR, or TUN with `tun`):
///
/// * client 192.168.1.2 — 192.168.1.1 router (`eth0`), the client's default route;
/// * VIP segment `br0`: router `eth1` 10.1.0.1, director1 `eth0` 10.1.0.11, director2 `eth0`
///   10.1.0.12; the VIP 10.1.0.100 lies on it and is left to VRRP, so the router finds the
///   MASTER by ARP (and follows its gratuitous ARPs);
/// * server segment `br1`: director1 `eth1` 10.2.0.2, director2 `eth1` 10.2.0.3, router `eth2`
///   10.2.0.254, rs*i* 10.2.0.(10+*i*);
/// * every real server has the VIP on `lo` with `arp_ignore=1`, `arp_announce=2` and
///   `rp_filter=0` (the LVS-DR real-server setup: it accepts packets for the VIP but never
///   answers ARP for it), and its default route via the router, so replies (source VIP) go to
///   the client without a director; for TUN a decapsulator too;
/// * the router forwards with `rp_filter` off (replies from the VIP arrive on `eth2`, not on
///   the VIP segment); the directors' default route is the router.
fn build_ha_direct(b: &mut Builder, tun: bool) -> Result<Spec> {
    let rs = nodes_with_servers(b, &["client", "router", "director1", "director2", "switch"])?;
    b.p2p(
        ("client", "eth0", HA_DIRECT_CLIENT),
        ("router", "eth0", ip(192, 168, 1, 1)),
        24,
    )?;
    b.segment(
        "br0",
        &[
            ("router", "eth1", ip(10, 1, 0, 1)),
            ("director1", "eth0", ip(10, 1, 0, 11)),
            ("director2", "eth0", ip(10, 1, 0, 12)),
        ],
        24,
    )?;
    let mut seg = vec![
        ("director1", "eth1", ip(10, 2, 0, 2)),
        ("director2", "eth1", ip(10, 2, 0, 3)),
        ("router", "eth2", HA_DIRECT_GW),
    ];
    for (i, r) in rs.iter().enumerate() {
        seg.push((r.as_str(), "eth0", rs_addr([10, 2, 0], i + 1)));
    }
    b.segment("br1", &seg, 24)?;
    b.forward("router", true)?;
    b.no_rp_filter("router", &["eth0", "eth1", "eth2"])?;
    b.route("client", "default", ip(192, 168, 1, 1))?;
    for d in ["director1", "director2"] {
        b.forward(d, true)?;
        b.route(d, "default", ip(10, 1, 0, 1))?;
    }
    for r in &rs {
        b.real_server_vip(r, HA_VIP, &["eth0", "lo"])?;
        b.route(r, "default", HA_DIRECT_GW)?;
    }
    let mut spec = Spec::new(HA_VIP, 80);
    if tun {
        spec.gue_port = Some(TUN_GUE_PORT);
        spec.decap_roles = rs;
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_ports_fit_interface_names() {
        assert_eq!(switch_port("rs1", "eth0"), "rs1-eth0");
        assert_eq!(switch_port("director2", "eth1"), "director2-eth1");
        assert!(switch_port("a-very-long-role", "eth0").len() <= crate::netns::IFNAME_MAX);
    }

    #[test]
    fn kinds_print_like_the_cli_names_them() {
        assert_eq!(LabKind::Fullnat.to_string(), "fullnat");
        assert_eq!(
            LabKind::Selftest(SelftestMode::Tun).to_string(),
            "selftest-tun"
        );
    }
}
