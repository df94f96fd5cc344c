//! The scale-out lab (`rvs-lab up ecmp`): N active directors behind an ECMP router, each
//! announcing the VIP by BGP through BIRD while rvsd can serve it.
//!
//! ```text
//!  client 10.20.0.2 ── c0 │ router 10.20.0.1, br0 10.30.0.1 (BIRD: BGP multipath + BFD,
//!                         │        fib_multipath_hash_policy=1)
//!                         br0 ── d1..dN ── directors 10.30.0.11.. (rvsd --announce-table 100,
//!                          │                                       BIRD: kernel learn + BGP/BFD)
//!                          └──── s1..sM ── real servers 10.30.0.21.. (DR: VIP 10.100.0.1 on lo)
//! ```
//!
//! The router reaches the VIP through one next hop per director that announces it; a
//! director forwards by MAC to a real server on the shared segment, and the real server
//! answers the client directly through the router. The BIRD configurations are the ones in
//! `examples/`, used unchanged.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};
use crate::netns::{Lab, Netns};

/// `examples/bird-director.conf`.
pub const BIRD_DIRECTOR_CONF: &str = include_str!("../../../examples/bird-director.conf");
/// `examples/bird-router.conf`.
pub const BIRD_ROUTER_CONF: &str = include_str!("../../../examples/bird-router.conf");
/// The kernel routing table rvsd announces into (`--announce-table`), as the BIRD example
/// reads it.
pub const ANNOUNCE_TABLE: u32 = 100;
/// The VIP.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 1);
/// The service port (nginx on the real servers; the tests add echo ports).
pub const PORT: u16 = 80;
/// Router address on the client side.
pub const ROUTER_CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);
/// The client.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 2);
/// Router address on the director/real-server segment (the directors' BGP neighbour).
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 30, 0, 1);
/// Most directors and real servers (addresses .11.. and .21.. of 10.30.0.0/24).
pub const MAX_NODES: usize = 9;

/// Director `i` (0-based) address.
pub fn director_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 30, 0, 11 + i as u8)
}

/// Real server `i` (0-based) address.
pub fn real_server_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 30, 0, 21 + i as u8)
}

/// The running lab.
pub struct Ecmp {
    lab: Lab,
    /// The router.
    pub router: Netns,
    /// The client.
    pub client: Netns,
    /// The directors, in order (`d1`, `d2`, …).
    pub directors: Vec<Netns>,
    /// The real servers (`s1`, …).
    pub real_servers: Vec<Netns>,
    /// Whether [`Ecmp::start_nginx`] ran (the walkthrough says so, or says what is missing).
    nginx: bool,
    /// More options for the walkthrough's rvsd command lines
    /// ([`Ecmp::set_walkthrough_rvsd_options`]), each with a leading space.
    pub(crate) rvsd_options: String,
}

/// Builds the ECMP lab with `directors` directors and `real_servers` real servers in a fresh
/// test lab named after `tag`, BIRD running on the router and every director (rvsd is not
/// started: tests and people start it with the options they study).
pub fn ecmp(tag: &str, directors: usize, real_servers: usize) -> Result<Ecmp> {
    let mut e = Ecmp::build(Lab::new(tag)?, directors, real_servers)?;
    e.start_bird()?;
    Ok(e)
}

impl Ecmp {
    /// Creates the namespaces, links, addresses, routes and sysctls.
    pub fn build(mut lab: Lab, directors: usize, real_servers: usize) -> Result<Ecmp> {
        if !(1..=MAX_NODES).contains(&directors) || !(1..=MAX_NODES).contains(&real_servers) {
            return Err(LabError::Invalid(format!(
                "ecmp: 1..={MAX_NODES} directors and real servers"
            )));
        }
        let router = lab.add_netns("r")?;
        let client = lab.add_netns("c")?;
        lab.veth(&client, "eth0", &router, "c0")?;
        client.add_addr("eth0", &format!("{CLIENT}/24"))?;
        client.ip([
            "route",
            "add",
            "default",
            "via",
            &ROUTER_CLIENT_SIDE.to_string(),
        ])?;
        router.add_addr("c0", &format!("{ROUTER_CLIENT_SIDE}/24"))?;
        router.sysctl("net.ipv4.ip_forward", "1")?;
        // Flows, not packets or source addresses, are spread over the directors.
        router.sysctl("net.ipv4.fib_multipath_hash_policy", "1")?;
        lab.bridge(&router, "br0", &[])?;
        router.add_addr("br0", &format!("{ROUTER}/24"))?;
        let mut e = Ecmp {
            lab,
            router,
            client,
            directors: Vec::new(),
            real_servers: Vec::new(),
            nginx: false,
            rvsd_options: String::new(),
        };
        for _ in 0..directors {
            e.add_director_ns()?;
        }
        for _ in 0..real_servers {
            e.add_real_server()?;
        }
        Ok(e)
    }

    /// One more real server on the segment (DR: VIP on `lo`), named `s<N>`.
    pub fn add_real_server(&mut self) -> Result<Netns> {
        let i = self.real_servers.len();
        if i >= MAX_NODES {
            return Err(LabError::Invalid(format!(
                "ecmp: at most {MAX_NODES} real servers"
            )));
        }
        let ns = self.lab.add_netns(&format!("s{}", i + 1))?;
        let port = format!("s{}", i + 1);
        self.lab.veth(&ns, "eth0", &self.router, &port)?;
        self.router.ip(["link", "set", &port, "master", "br0"])?;
        ns.add_addr("eth0", &format!("{}/24", real_server_addr(i)))?;
        ns.add_addr("lo", &format!("{VIP}/32"))?;
        ns.real_server_sysctls(&["eth0"])?;
        ns.ip(["route", "add", "default", "via", &ROUTER.to_string()])?;
        self.real_servers.push(ns.clone());
        Ok(ns)
    }

    /// A director namespace on the segment (no BIRD, no rvsd yet).
    fn add_director_ns(&mut self) -> Result<Netns> {
        let i = self.directors.len();
        if i >= MAX_NODES {
            return Err(LabError::Invalid(format!(
                "ecmp: at most {MAX_NODES} directors"
            )));
        }
        let ns = self.lab.add_netns(&format!("d{}", i + 1))?;
        let port = format!("d{}", i + 1);
        self.lab.veth(&ns, "eth0", &self.router, &port)?;
        self.router.ip(["link", "set", &port, "master", "br0"])?;
        ns.add_addr("eth0", &format!("{}/24", director_addr(i)))?;
        ns.ip(["route", "add", "default", "via", &ROUTER.to_string()])?;
        self.directors.push(ns.clone());
        Ok(ns)
    }

    /// Adds one more director with its BIRD running (a scale-out step).
    pub fn add_director(&mut self) -> Result<Netns> {
        let ns = self.add_director_ns()?;
        self.start_bird_in(&ns, "director", BIRD_DIRECTOR_CONF)?;
        Ok(ns)
    }

    /// nginx on every real server, port [`PORT`], each page naming its server (`rs1`, …).
    pub fn start_nginx(&mut self) -> Result<()> {
        for (i, s) in self.real_servers.clone().iter().enumerate() {
            let child = s.nginx(&format!("rs{}", i + 1), PORT)?;
            self.lab.own(child);
        }
        self.nginx = true;
        Ok(())
    }

    /// Whether nginx runs on the real servers.
    pub fn nginx_started(&self) -> bool {
        self.nginx
    }

    /// The lab (work directory, ownership of processes).
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// Mutable lab.
    pub fn lab_mut(&mut self) -> &mut Lab {
        &mut self.lab
    }

    /// BIRD's control socket in `ns`.
    pub fn bird_socket(&self, ns: &Netns) -> PathBuf {
        self.lab.workdir().join(format!("bird-{}.ctl", ns.name()))
    }

    /// BIRD's log of `ns`.
    pub fn bird_log(&self, ns: &Netns) -> PathBuf {
        self.lab.workdir().join(format!("bird-{}.log", ns.name()))
    }

    fn start_bird_in(&mut self, ns: &Netns, role: &str, conf: &str) -> Result<()> {
        let dir = self.lab.workdir().to_path_buf();
        let path = dir.join(format!("bird-{role}-{}.conf", ns.name()));
        std::fs::write(&path, conf).map_err(|e| LabError::io(path.display().to_string(), e))?;
        let sock = self.bird_socket(ns);
        let log = self.bird_log(ns);
        let script = format!(
            "exec bird -f -c '{}' -s '{}' -P '{}' 2>'{}'",
            path.display(),
            sock.display(),
            dir.join(format!("bird-{}.pid", ns.name())).display(),
            log.display()
        );
        let child = ns.cmd("sh").args(["-c", &script]).spawn()?;
        self.lab.own(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sock.exists() {
            if Instant::now() > deadline {
                let l = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(LabError::Invalid(format!(
                    "BIRD did not start in {}: {l}",
                    ns.name()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts BIRD on the router and on every director.
    pub fn start_bird(&mut self) -> Result<()> {
        let r = self.router.clone();
        self.start_bird_in(&r, "router", BIRD_ROUTER_CONF)?;
        for d in self.directors.clone() {
            self.start_bird_in(&d, "director", BIRD_DIRECTOR_CONF)?;
        }
        Ok(())
    }

    /// `birdc -s SOCKET CMD` in `ns`.
    pub fn birdc(&self, ns: &Netns, cmd: &str) -> Result<String> {
        let sock = self.bird_socket(ns).display().to_string();
        let mut args = vec!["-s", sock.as_str()];
        args.extend(cmd.split_whitespace());
        ns.cmd("birdc").args(args).run()
    }

    /// The router's next hops for the VIP in its kernel FIB (empty when it has no route).
    pub fn next_hops(&self) -> Result<Vec<Ipv4Addr>> {
        let out = self
            .router
            .cmd("ip")
            .args(["-4", "route", "show", &format!("{VIP}/32")])
            .run()?;
        Ok(parse_next_hops(&out))
    }

    /// Waits at most `limit` until the router's next hops for the VIP are exactly `want`
    /// (any order); returns how long it took.
    pub fn wait_next_hops(&self, want: &[Ipv4Addr], limit: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            let mut got = self.next_hops()?;
            got.sort();
            let mut w = want.to_vec();
            w.sort();
            if got == w {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                return Err(LabError::Timeout {
                    what: format!("router next hops for {VIP}: want {w:?}, have {got:?}"),
                    after: limit,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Takes director `i`'s link down on both ends (a lost machine, as the router sees it).
    pub fn cut_director(&self, i: usize) -> Result<()> {
        let port = format!("d{}", i + 1);
        self.router.ip(["link", "set", &port, "down"])?;
        self.directors[i].ip(["link", "set", "eth0", "down"])?;
        Ok(())
    }

    /// The table every director runs: `mh` on source address and port (`-b mh-port`), so
    /// every director picks the same real server for a flow, DR to every real server.
    pub fn rvsadm_commands(&self) -> Vec<String> {
        let svc = format!("{VIP}:{PORT}");
        let mut v = vec![format!("-A -t {svc} -s mh -b mh-port")];
        for i in 0..self.real_servers.len() {
            v.push(format!("-a -t {svc} -r {}:{PORT} -g", real_server_addr(i)));
        }
        v
    }

    /// Keeps the lab after this process exits (`rvs-lab up`).
    pub fn keep(&mut self) {
        self.lab.keep();
    }
}

/// Next hops of an `ip route show` line for one prefix: `via A` of a single route, or every
/// `nexthop via A` of a multipath route.
pub fn parse_next_hops(out: &str) -> Vec<Ipv4Addr> {
    let words: Vec<&str> = out.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "via")
        .filter_map(|w| w[1].parse().ok())
        .collect()
}

impl fmt::Display for Ecmp {
    /// What a person needs to use the lab by hand.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.lab.prefix();
        writeln!(
            f,
            "lab {p} (ecmp): {} directors behind router {p}-r, {} real servers (DR), VIP {VIP}:{PORT}",
            self.directors.len(),
            self.real_servers.len()
        )?;
        writeln!(
            f,
            "  client  {p}-c  {CLIENT} (default via {ROUTER_CLIENT_SIDE})"
        )?;
        writeln!(
            f,
            "  router  {p}-r  {ROUTER} on br0; BIRD: BGP multipath + BFD, \
             fib_multipath_hash_policy=1 (control socket {})",
            self.bird_socket(&self.router).display()
        )?;
        for (i, d) in self.directors.iter().enumerate() {
            writeln!(
                f,
                "  director {}  {} (BIRD reads table {ANNOUNCE_TABLE}, socket {})",
                d.name(),
                director_addr(i),
                self.bird_socket(d).display()
            )?;
        }
        for (i, s) in self.real_servers.iter().enumerate() {
            writeln!(
                f,
                "  real server {}  {} (VIP on lo, nginx on :{PORT})",
                s.name(),
                real_server_addr(i)
            )?;
        }
        writeln!(f, "{}", crate::walkthrough::TRY_IT)?;
        f.write_str(&crate::walkthrough::render(&self.walkthrough()))?;
        writeln!(f, "remove with: rvs-lab down --prefix {p}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hops_of_single_and_multipath_routes() {
        assert_eq!(
            parse_next_hops("10.100.0.1 via 10.30.0.11 dev br0 proto bird metric 32\n"),
            vec![Ipv4Addr::new(10, 30, 0, 11)]
        );
        let m = "10.100.0.1 proto bird metric 32 \n\tnexthop via 10.30.0.11 dev br0 weight 1 \n\tnexthop via 10.30.0.12 dev br0 weight 1 \n";
        assert_eq!(
            parse_next_hops(m),
            vec![Ipv4Addr::new(10, 30, 0, 11), Ipv4Addr::new(10, 30, 0, 12)]
        );
        assert!(parse_next_hops("").is_empty());
    }
}
