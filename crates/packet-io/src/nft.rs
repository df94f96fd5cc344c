//! The nftables ingress guard: `table netdev rvs`.
//!
//! rvsd receives with `ETH_P_ALL` taps, which the kernel runs *before* the netdev ingress hook
//! (`__netif_receive_skb_core`: taps, then tc ingress, then netfilter ingress). Dropping VIP
//! traffic in a netdev ingress chain therefore leaves rvsd's copy intact while the host stack
//! never sees the packet: it neither answers (RST, ICMP port unreachable, echo reply) nor
//! forwards it, whatever `ip_forward` says.
//!
//! Each interface gets one base chain; the addresses live in named sets so a table change is
//! one `nft -f -` transaction that flushes and refills the sets (atomic: a packet sees the old
//! or the new sets, never a mix). The script is generated as text and fed to the `nft` program:
//! simple to read in logs, easy to test, no hand-rolled netlink.
//!
//! Rule order in each chain (first match wins):
//! 1. destination in `vip4`/`vip6` (address-only VIPs, e.g. firewall-mark services): drop;
//! 2. destination `addr . proto . port` in `vip4_svc`/`vip6_svc`: drop;
//! 3. destination `addr . proto . port` in the FULLNAT local-port ranges `lport4`/`lport6`
//!    (replies to a local address within rvsd's port range): drop;
//! 4. destination in `keep4`/`keep6` (the director's own addresses): accept — so replies to the
//!    director's own connections, e.g. health checks to a real server, are not caught by 6;
//! 5. ICMPv6 router solicitations and neighbour solicitations / advertisements: accept — a
//!    real server's neighbour discovery goes to multicast addresses (a solicitation for its
//!    gateway, the director, is sent to the solicited-node group), which are not in `keep6`,
//!    so rule 6 would hide it from the kernel when the real server is listed by address only
//!    (`rs6`: a port-0 or firewall-mark NAT service), and the real server could no longer
//!    resolve its gateway; IPv4 needs no such rule, ARP is not IP;
//! 6. source in `rs4`/`rs6` or source `addr . proto . port` in `rs4_svc`/`rs6_svc` (NAT replies
//!    from real servers): drop.
//!
//! Fragments: rvsd reassembles TCP, UDP and SCTP fragments to a VIP or local address and from a
//! NAT real server (docs/internals/forwarding.md#fragments), but port-qualified rules cannot
//! see a non-first fragment, which has no transport header. So every address of a VIP, a
//! local address or a NAT real server is also in `frag4`/`frag6` (destinations) or
//! `rsfrag4`/`rsfrag6` (sources), and their TCP/UDP/SCTP fragments are dropped — the
//! destination rule with the VIP drops (before rule 4), the source rule with the real-server
//! drops (after it, so fragments to the director's own addresses still reach it). Without
//! them the host would hold a VIP's fragments it can never reassemble and forward a real
//! server's later reply fragments unrewritten.
//!
//! For rule 3 to be safe the local-port range must not overlap the kernel's
//! `net.ipv4.ip_local_port_range` on those addresses.
//!
//! Port-qualified rules need the transport header, which non-first IP fragments lack: such
//! fragments are only caught by the address-only sets (`vip4`, `rs4`, ...). Address-only
//! entries are the safe choice for VIPs that receive fragmented traffic.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::process::{Command, Stdio};

use crate::Error;

/// The table's name (family `netdev`).
pub const TABLE: &str = "rvs";

/// A transport protocol in an `inet_proto` set (nftables writes it lower-case): the workspace's
/// one protocol type.
pub use rvs_core::Protocol;

/// An address, optionally narrowed to one protocol and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Match {
    /// The IPv4 or IPv6 address.
    pub addr: IpAddr,
    /// Protocol and port; `None` matches every packet of the address.
    pub l4: Option<(Protocol, u16)>,
}

impl Match {
    /// Every packet of `addr`.
    pub fn addr(addr: IpAddr) -> Self {
        Match { addr, l4: None }
    }

    /// Packets of `addr` with protocol `proto` and port `port`.
    pub fn service(addr: IpAddr, proto: Protocol, port: u16) -> Self {
        Match {
            addr,
            l4: Some((proto, port)),
        }
    }
}

/// A FULLNAT local address and the port range rvsd allocates from on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocalPorts {
    /// The local address (LIP).
    pub addr: IpAddr,
    /// The protocol.
    pub proto: Protocol,
    /// The ports rvsd owns on that address.
    pub ports: RangeInclusive<u16>,
}

/// What the kernel stack must not handle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardRules {
    /// Traffic to these destinations is rvsd's (VIPs).
    pub vips: Vec<Match>,
    /// Replies to FULLNAT local addresses within rvsd's port ranges.
    pub local_ports: Vec<LocalPorts>,
    /// The director's own addresses: traffic to them is exempt from the `replies` rule.
    pub keep_local: Vec<IpAddr>,
    /// Traffic from these sources is rvsd's (NAT replies from real servers, by real-server address and optionally port).
    pub replies: Vec<Match>,
}

/// The sets of the table, with their nftables types; order is the declaration order.
const SETS: [(&str, &str, bool); 16] = [
    ("vip4", "ipv4_addr", false),
    ("vip4_svc", "ipv4_addr . inet_proto . inet_service", false),
    ("vip6", "ipv6_addr", false),
    ("vip6_svc", "ipv6_addr . inet_proto . inet_service", false),
    ("lport4", "ipv4_addr . inet_proto . inet_service", true),
    ("lport6", "ipv6_addr . inet_proto . inet_service", true),
    ("keep4", "ipv4_addr", false),
    ("keep6", "ipv6_addr", false),
    ("rs4", "ipv4_addr", false),
    ("rs4_svc", "ipv4_addr . inet_proto . inet_service", false),
    ("rs6", "ipv6_addr", false),
    ("rs6_svc", "ipv6_addr . inet_proto . inet_service", false),
    ("frag4", "ipv4_addr", false),
    ("frag6", "ipv6_addr", false),
    ("rsfrag4", "ipv4_addr", false),
    ("rsfrag6", "ipv6_addr", false),
];

/// The rules of every chain, in order (see the module docs).
const CHAIN_RULES: [&str; 17] = [
    "ip daddr @frag4 ip frag-off & 0x3fff != 0 meta l4proto { tcp, udp, sctp } counter drop",
    "ip6 daddr @frag6 exthdr frag exists meta l4proto { tcp, udp, sctp } counter drop",
    "ip daddr @vip4 counter drop",
    "ip daddr . meta l4proto . th dport @vip4_svc counter drop",
    "ip6 daddr @vip6 counter drop",
    "ip6 daddr . meta l4proto . th dport @vip6_svc counter drop",
    "ip daddr . meta l4proto . th dport @lport4 counter drop",
    "ip6 daddr . meta l4proto . th dport @lport6 counter drop",
    "ip daddr @keep4 accept",
    "ip6 daddr @keep6 accept",
    "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept",
    "ip saddr @rsfrag4 ip frag-off & 0x3fff != 0 meta l4proto { tcp, udp, sctp } counter drop",
    "ip6 saddr @rsfrag6 exthdr frag exists meta l4proto { tcp, udp, sctp } counter drop",
    "ip saddr @rs4 counter drop",
    "ip saddr . meta l4proto . th sport @rs4_svc counter drop",
    "ip6 saddr @rs6 counter drop",
    "ip6 saddr . meta l4proto . th sport @rs6_svc counter drop",
];

/// Elements of each set in [`SETS`] order, rendered as nft element text.
fn elements(rules: &GuardRules) -> [Vec<String>; 16] {
    let mut out: [Vec<String>; 16] = Default::default();
    let mut put = |name: &str, e: String| {
        let i = SETS.iter().position(|s| s.0 == name).expect("known set");
        if !out[i].contains(&e) {
            out[i].push(e);
        }
    };
    let fam = |a: &IpAddr| if a.is_ipv4() { "4" } else { "6" };
    for m in &rules.vips {
        put(&format!("frag{}", fam(&m.addr)), m.addr.to_string());
        match m.l4 {
            None => put(&format!("vip{}", fam(&m.addr)), m.addr.to_string()),
            Some((p, port)) => put(
                &format!("vip{}_svc", fam(&m.addr)),
                format!("{} . {} . {}", m.addr, p.lower_name(), port),
            ),
        }
    }
    for l in &rules.local_ports {
        put(&format!("frag{}", fam(&l.addr)), l.addr.to_string());
        put(
            &format!("lport{}", fam(&l.addr)),
            format!(
                "{} . {} . {}-{}",
                l.addr,
                l.proto.lower_name(),
                l.ports.start(),
                l.ports.end()
            ),
        );
    }
    for a in &rules.keep_local {
        put(&format!("keep{}", fam(a)), a.to_string());
    }
    for m in &rules.replies {
        put(&format!("rsfrag{}", fam(&m.addr)), m.addr.to_string());
        match m.l4 {
            None => put(&format!("rs{}", fam(&m.addr)), m.addr.to_string()),
            Some((p, port)) => put(
                &format!("rs{}_svc", fam(&m.addr)),
                format!("{} . {} . {}", m.addr, p.lower_name(), port),
            ),
        }
    }
    out
}

fn check_ifname(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "interface name {name:?} cannot be used in an nft script"
        )))
    }
}

fn check_rules(rules: &GuardRules) -> Result<(), Error> {
    if let Some(l) = rules.local_ports.iter().find(|l| l.ports.is_empty()) {
        return Err(Error::Config(format!(
            "empty local port range {}-{} on {}",
            l.ports.start(),
            l.ports.end(),
            l.addr
        )));
    }
    Ok(())
}

/// The statements that (re)fill every set; the sets must exist.
fn render_elements(script: &mut String, rules: &GuardRules) {
    for ((name, _, _), elems) in SETS.iter().zip(elements(rules)) {
        if !elems.is_empty() {
            let _ = writeln!(
                script,
                "add element netdev {TABLE} {name} {{ {} }}",
                elems.join(", ")
            );
        }
    }
}

/// A script that deletes `table netdev rvs` if it exists (and does nothing otherwise: the
/// `table` statement creates it empty first, which works on every nft version, unlike
/// `destroy`).
pub fn render_delete() -> String {
    format!("table netdev {TABLE}\ndelete table netdev {TABLE}\n")
}

/// A script that replaces any existing table with a fresh one for `interfaces` and `rules`,
/// in one transaction.
pub fn render_table(interfaces: &[&str], rules: &GuardRules) -> Result<String, Error> {
    for i in interfaces {
        check_ifname(i)?;
    }
    check_rules(rules)?;
    let mut s = render_delete();
    let _ = writeln!(s, "table netdev {TABLE} {{");
    for (name, ty, interval) in SETS {
        let flags = if interval { " flags interval;" } else { "" };
        let _ = writeln!(s, "\tset {name} {{ type {ty};{flags} }}");
    }
    for (n, ifname) in interfaces.iter().enumerate() {
        let _ = writeln!(s, "\tchain in_{n} {{");
        // Early priority: nothing else in this hook should see rvsd's traffic first.
        let _ = writeln!(
            s,
            "\t\ttype filter hook ingress device \"{ifname}\" priority -500; policy accept;"
        );
        for r in CHAIN_RULES {
            let _ = writeln!(s, "\t\t{r}");
        }
        let _ = writeln!(s, "\t}}");
    }
    let _ = writeln!(s, "}}");
    render_elements(&mut s, rules);
    Ok(s)
}

/// A script that replaces the contents of every set, in one transaction.
pub fn render_update(rules: &GuardRules) -> Result<String, Error> {
    check_rules(rules)?;
    let mut s = String::new();
    for (name, _, _) in SETS {
        let _ = writeln!(s, "flush set netdev {TABLE} {name}");
    }
    render_elements(&mut s, rules);
    Ok(s)
}

/// Runs `nft -f -` with `script` on standard input; nft applies a file as one transaction.
fn run_nft(script: &str) -> Result<(), Error> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Nft(format!("cannot run nft: {e}")))?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let write = stdin.write_all(script.as_bytes());
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Nft(format!("waiting for nft: {e}")))?;
    if !out.status.success() {
        return Err(Error::Nft(format!(
            "{}: {}\nscript:\n{script}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    write.map_err(|e| Error::Nft(format!("writing the script to nft: {e}")))
}

/// Deletes any `table netdev rvs` left behind by a crashed rvsd (in the calling thread's
/// network namespace). Safe to call when there is none.
pub fn cleanup_stale() -> Result<(), Error> {
    run_nft(&render_delete())
}

/// An installed `table netdev rvs`. Removed by [`remove`](Self::remove), or on drop
/// (best effort: errors during drop are ignored).
#[derive(Debug)]
pub struct IngressGuard {
    interfaces: Vec<String>,
    rules: GuardRules,
    installed: bool,
}

impl IngressGuard {
    /// Installs the table for `interfaces`, replacing any table of that name (a crashed
    /// run's) in the same transaction.
    pub fn install(interfaces: &[&str], rules: &GuardRules) -> Result<Self, Error> {
        run_nft(&render_table(interfaces, rules)?)?;
        Ok(IngressGuard {
            interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
            rules: rules.clone(),
            installed: true,
        })
    }

    /// Replaces the contents of the sets atomically. Chains (interfaces) stay as they are.
    pub fn update(&mut self, rules: &GuardRules) -> Result<(), Error> {
        if *rules == self.rules {
            return Ok(());
        }
        run_nft(&render_update(rules)?)?;
        self.rules = rules.clone();
        Ok(())
    }

    /// Rebuilds the table for another set of interfaces, atomically.
    pub fn set_interfaces(&mut self, interfaces: &[&str]) -> Result<(), Error> {
        run_nft(&render_table(interfaces, &self.rules)?)?;
        self.interfaces = interfaces.iter().map(|s| s.to_string()).collect();
        Ok(())
    }

    /// The interfaces with a chain.
    pub fn interfaces(&self) -> &[String] {
        &self.interfaces
    }

    /// The rules currently installed.
    pub fn rules(&self) -> &GuardRules {
        &self.rules
    }

    /// Deletes the table.
    pub fn remove(mut self) -> Result<(), Error> {
        self.installed = false;
        run_nft(&render_delete())
    }
}

impl Drop for IngressGuard {
    fn drop(&mut self) {
        if self.installed {
            let _ = run_nft(&render_delete());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> GuardRules {
        GuardRules {
            vips: vec![
                Match::addr("10.0.0.100".parse().unwrap()),
                Match::service("10.0.0.101".parse().unwrap(), Protocol::Tcp, 80),
                Match::service("2001:db8::100".parse().unwrap(), Protocol::Udp, 53),
                Match::service("10.0.0.101".parse().unwrap(), Protocol::Tcp, 80),
            ],
            local_ports: vec![LocalPorts {
                addr: "10.0.1.1".parse().unwrap(),
                proto: Protocol::Tcp,
                ports: 40000..=49999,
            }],
            keep_local: vec!["10.0.1.1".parse().unwrap()],
            replies: vec![
                Match::service("10.0.1.10".parse().unwrap(), Protocol::Tcp, 8080),
                Match::addr("fd00::10".parse().unwrap()),
            ],
        }
    }

    #[test]
    fn table_script_has_chain_per_interface_and_elements() {
        let s = render_table(&["eth0", "veth-d1"], &rules()).unwrap();
        assert!(s.starts_with("table netdev rvs\ndelete table netdev rvs\ntable netdev rvs {\n"));
        assert!(s.contains("\tchain in_0 {\n\t\ttype filter hook ingress device \"eth0\""));
        assert!(s.contains("\tchain in_1 {\n\t\ttype filter hook ingress device \"veth-d1\""));
        assert!(s.contains(
            "set lport4 { type ipv4_addr . inet_proto . inet_service; flags interval; }"
        ));
        assert!(s.contains("add element netdev rvs vip4 { 10.0.0.100 }\n"));
        // Duplicates collapse: nft rejects an element given twice in one statement.
        assert!(s.contains("add element netdev rvs vip4_svc { 10.0.0.101 . tcp . 80 }\n"));
        assert!(s.contains("add element netdev rvs vip6_svc { 2001:db8::100 . udp . 53 }\n"));
        assert!(s.contains("add element netdev rvs lport4 { 10.0.1.1 . tcp . 40000-49999 }\n"));
        assert!(s.contains("add element netdev rvs keep4 { 10.0.1.1 }\n"));
        assert!(s.contains("add element netdev rvs rs4_svc { 10.0.1.10 . tcp . 8080 }\n"));
        assert!(s.contains("add element netdev rvs rs6 { fd00::10 }\n"));
        assert!(
            !s.contains("add element netdev rvs vip6 "),
            "empty sets get no statement"
        );
        // The keep rule sits between the destination drops and the source drops.
        let keep = s.find("ip daddr @keep4 accept").unwrap();
        assert!(s.find("@lport4 counter drop").unwrap() < keep);
        assert!(keep < s.find("ip saddr @rs4 counter drop").unwrap());
        // IPv6 neighbour discovery is accepted after the VIP drops and before the real-server
        // drops (a real server listed by address only must still resolve its gateway).
        let nd = s
            .find("icmpv6 type { nd-router-solicit, nd-neighbor-solicit")
            .unwrap();
        assert!(s.find("@vip6_svc counter drop").unwrap() < nd);
        assert!(nd < s.find("ip6 saddr @rs6 counter drop").unwrap());
        // Fragments, which port rules cannot see: by address, to the VIPs and local
        // addresses first, from the real servers after the keep rule.
        assert!(s.contains("add element netdev rvs frag4 { 10.0.0.100, 10.0.0.101, 10.0.1.1 }\n"));
        assert!(s.contains("add element netdev rvs frag6 { 2001:db8::100 }\n"));
        assert!(s.contains("add element netdev rvs rsfrag4 { 10.0.1.10 }\n"));
        assert!(s.find("ip daddr @frag4 ip frag-off").unwrap() < keep);
        assert!(keep < s.find("ip saddr @rsfrag4 ip frag-off").unwrap());
    }

    #[test]
    fn update_flushes_every_set_then_refills() {
        let s = render_update(&rules()).unwrap();
        let flushes = s.lines().filter(|l| l.starts_with("flush set")).count();
        assert_eq!(flushes, SETS.len());
        let last_flush = s.rfind("flush set").unwrap();
        assert!(last_flush < s.find("add element").unwrap());
        let empty = render_update(&GuardRules::default()).unwrap();
        assert!(!empty.contains("add element"));
    }

    #[test]
    fn hostile_interface_names_and_empty_ranges_are_refused() {
        assert!(render_table(&["eth0\"; flush ruleset"], &GuardRules::default()).is_err());
        assert!(render_table(&[""], &GuardRules::default()).is_err());
        let mut r = GuardRules::default();
        #[allow(clippy::reversed_empty_ranges)]
        let empty = 10..=1;
        r.local_ports.push(LocalPorts {
            addr: "10.0.0.1".parse().unwrap(),
            proto: Protocol::Udp,
            ports: empty,
        });
        assert!(render_update(&r).is_err());
    }
}
