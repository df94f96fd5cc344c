//! What `rvs-lab up` prints after the lab's addresses: complete commands to paste into a root
//! shell — rvsd with its exact `--interface` options, the rvsadm table, a look at a real
//! server that already listens, and the curl through the VIP that shows it working. A test
//! (rvsd's `lab_walkthrough`) runs exactly these lines, so they cannot silently rot.
//!
//! The commands assume `rvsd` and `rvsadm` on `PATH` (e.g. `target/release` after
//! `cargo build --release`). Each rvsd gets its own control socket and log in the lab's work
//! directory, so a lab never touches a daemon running on the host.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::ecmp::{real_server_addr, Ecmp, ANNOUNCE_TABLE, PORT, VIP};
use crate::error::{LabError, Result};
use crate::topo::{LabKind, Node, Topology, HA_DIP, HA_VIP};

/// One line of the walkthrough: a shell command, with a comment printed above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the command does (printed as `# …` above it), if anything needs saying.
    pub comment: Option<String>,
    /// The command, as a root shell runs it (empty: the step is only its comment).
    pub command: String,
}

impl Step {
    fn new(comment: Option<String>, command: String) -> Step {
        Step { comment, command }
    }
}

/// VRRP instance of the HA lab's walkthrough: the VIP on the client segment and the floating
/// DIP (the real servers' gateway) on the server segment move together.
fn ha_vrrp_conf(priority: u8, dip: bool) -> String {
    // The direct-routing pairs' real servers route through the router, not a floating DIP.
    let dip = if dip {
        format!("        {HA_DIP}/24 dev eth1 label eth1:1\n")
    } else {
        String::new()
    };
    format!(
        "# written by rvs-lab for the HA lab's walkthrough\n\
         vrrp_instance VI_LAB {{\n    state BACKUP\n    interface eth0\n    \
         virtual_router_id 51\n    priority {priority}\n    advert_int 1\n    \
         virtual_ipaddress {{\n        {HA_VIP}/24 dev eth0 label eth0:1\n{dip}    }}\n}}\n"
    )
}

/// `args` as they follow a command line's other words: each with a leading space.
fn options_text(args: &[&str]) -> String {
    args.iter().map(|a| format!(" {a}")).collect()
}

impl Topology {
    /// Adds `args` to every rvsd command line of the walkthrough (after its own options). The
    /// test that runs the walkthrough gives it the packet-plane mode it covers (`--xdp
    /// generic`, from rvs-testkit); `rvs-lab up` adds nothing.
    pub fn set_walkthrough_rvsd_options(&mut self, args: &[&str]) {
        self.rvsd_options = options_text(args);
    }

    /// The control socket of `director`'s rvsd in the walkthrough.
    pub fn walkthrough_socket(&self, director: &Node) -> PathBuf {
        self.lab().workdir().join(format!("{}.sock", director.role))
    }

    /// The log file of `director`'s rvsd in the walkthrough.
    pub fn walkthrough_log(&self, director: &Node) -> PathBuf {
        self.lab().workdir().join(format!("{}.log", director.role))
    }

    /// HA lab: the rules file both directors load (`--rules`).
    fn ha_rules(&self) -> PathBuf {
        self.lab().workdir().join("rules")
    }

    /// HA lab: `director`'s VRRP configuration (`--vrrp`).
    fn ha_vrrp(&self, director: &Node) -> PathBuf {
        self.lab()
            .workdir()
            .join(format!("{}-vrrp.conf", director.role))
    }

    /// Writes the files the walkthrough's commands read (the HA lab's rules and VRRP
    /// configurations; nothing for the other labs).
    pub fn write_walkthrough_files(&self) -> Result<()> {
        if !self.kind().is_ha_pair() {
            return Ok(());
        }
        let rules: String = self
            .rvsadm_commands()
            .iter()
            .map(|c| format!("{}\n", c.strip_prefix("rvsadm ").unwrap_or(c)))
            .collect();
        let write = |p: PathBuf, text: &str| {
            std::fs::write(&p, text).map_err(|e| LabError::io(p.display().to_string(), e))
        };
        write(self.ha_rules(), &rules)?;
        for (d, prio) in self.directors().into_iter().zip([150u8, 100]) {
            write(
                self.ha_vrrp(d),
                &ha_vrrp_conf(prio, self.kind() == LabKind::Ha),
            )?;
        }
        Ok(())
    }

    /// The walkthrough `rvs-lab up` prints (see the module docs).
    pub fn walkthrough(&self) -> Vec<Step> {
        let mut v = Vec::new();
        let client = self.client().ns_name().to_owned();
        let directors = self.directors();
        let first = directors[0];
        let dir_ns = first.ns_name();
        let servers = self.real_servers();
        let ports = self.nginx_ports();
        let listing: Vec<String> = servers
            .iter()
            .filter_map(|n| n.addr().map(|a| format!("{} {a}", n.role)))
            .collect();
        let first_rs = servers.first().and_then(|n| Some((n, n.addr()?)));
        if !self.nginx_started() {
            v.push(Step::new(
                Some(format!(
                    "nothing listens on the real servers (--no-nginx): the curls below fail \
                     until a web server listens on port {} in each",
                    self.port
                )),
                String::new(),
            ));
        } else if let Some((rs, rip)) = first_rs {
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            v.push(Step::new(
                Some(format!(
                    "nginx already listens on every real server ({}; port{} {}); each page \
                     names its server ({}):",
                    listing.join(", "),
                    if ports.len() > 1 { "s" } else { "" },
                    ports.join(" and "),
                    rs.role
                )),
                format!(
                    "ip netns exec {dir_ns} curl -sS --max-time 5 http://{rip}:{}/",
                    self.port
                ),
            ));
        }
        let is_ha = self.kind().is_ha_pair();
        for (i, d) in directors.iter().enumerate() {
            let ifaces: String = d
                .ifaces
                .iter()
                .map(|i| format!(" --interface {}", i.name))
                .collect();
            let extra = if is_ha {
                format!(
                    " --rules {} --vrrp {}",
                    self.ha_rules().display(),
                    self.ha_vrrp(d).display()
                )
            } else {
                String::new()
            };
            let comment = match (i, is_ha) {
                (0, false) => Some(format!(
                    "rvsd with the packet plane on the director's interfaces, in the \
                     background (log: {})",
                    self.walkthrough_log(d).display()
                )),
                (0, true) => Some(format!(
                    "both directors: rvsd with the packet plane, the table from the rules \
                     file, VRRP for the VIP{} (priority 150 and 100)",
                    if self.kind() == LabKind::Ha {
                        " and the real servers' gateway"
                    } else {
                        " (the real servers answer through the router)"
                    }
                )),
                _ => None,
            };
            v.push(Step::new(
                comment,
                format!(
                    "ip netns exec {} rvsd --socket {}{ifaces}{extra}{} >{} 2>&1 &",
                    d.ns_name(),
                    self.walkthrough_socket(d).display(),
                    self.rvsd_options,
                    self.walkthrough_log(d).display()
                ),
            ));
        }
        let sockets: Vec<String> = directors
            .iter()
            .map(|d| format!("[ -S {} ]", self.walkthrough_socket(d).display()))
            .collect();
        v.push(Step::new(
            Some(if is_ha {
                "wait (at most 10 s) until both rvsd listen on their control sockets".into()
            } else {
                "wait (at most 10 s) until rvsd listens on its control socket".into()
            }),
            format!(
                "timeout 10 sh -c 'until {}; do sleep 0.1; done'",
                sockets.join(" && ")
            ),
        ));
        let sock = self.walkthrough_socket(first).display().to_string();
        let url = format!("http://{}:{}/", self.vip, self.port);
        if is_ha {
            v.push(Step::new(
                Some("wait (at most 15 s) for VRRP to elect a MASTER that answers the VIP".into()),
                format!(
                    "timeout 15 sh -c 'until ip netns exec {client} curl -s --max-time 1 -o \
                     /dev/null {url}; do sleep 0.2; done'"
                ),
            ));
            v.push(Step::new(
                Some("director1 (priority 150) is MASTER".into()),
                format!("ip netns exec {dir_ns} rvsadm --socket {sock} -L --vrrp"),
            ));
        } else {
            for (i, c) in self.rvsadm_commands().iter().enumerate() {
                let rest = c.strip_prefix("rvsadm ").unwrap_or(c);
                let comment = match self.gue_port {
                    Some(p) => format!(
                        "the virtual service and its real servers (IPIP; for GUE add \
                         --tun-type gue --tun-port {p} to the -a lines)"
                    ),
                    None => "the virtual service and its real servers".to_owned(),
                };
                v.push(Step::new(
                    (i == 0).then_some(comment),
                    format!("ip netns exec {dir_ns} rvsadm --socket {sock} {rest}"),
                ));
            }
        }
        let n = servers.len().max(2);
        for i in 0..n {
            v.push(Step::new(
                (i == 0).then(|| {
                    "through the VIP from the client: round robin, each real server in turn"
                        .to_owned()
                }),
                format!("ip netns exec {client} curl -sS --max-time 5 {url}"),
            ));
        }
        if self.kind() == LabKind::Fullnat {
            v.push(Step::new(
                Some("the real server saw the director's local address, not the client".into()),
                format!("ip netns exec {client} curl -sS --max-time 5 {url}whoami"),
            ));
        }
        v.push(Step::new(
            Some("the director counted the connections and packets".into()),
            format!("ip netns exec {dir_ns} rvsadm --socket {sock} -Ln --stats"),
        ));
        v
    }

    /// The walkthrough as printed (two-space indent, comments above their command).
    pub fn render_walkthrough(&self) -> String {
        render(&self.walkthrough())
    }
}

/// Steps as printed (two-space indent, comments above their command).
pub fn render(steps: &[Step]) -> String {
    let mut s = String::new();
    for st in steps {
        if let Some(c) = &st.comment {
            let _ = writeln!(s, "  # {c}");
        }
        if !st.command.is_empty() {
            let _ = writeln!(s, "  {}", st.command);
        }
    }
    s
}

/// Connections the ECMP walkthrough opens to show the spread (enough that every director and
/// every real server gets some: a miss has a probability below 1e-4 with 4 real servers).
pub const ECMP_CURLS: usize = 40;

/// A shell test that the router has `n` next hops for the VIP (`via` appears once per hop,
/// in a single route as in a multipath one).
fn router_has_hops(router: &str, n: usize) -> String {
    format!("[ $(ip netns exec {router} ip route show {VIP} | grep -c via) -eq {n} ]")
}

impl Ecmp {
    /// Adds `args` to every rvsd command line of the walkthrough, as
    /// [`Topology::set_walkthrough_rvsd_options`] does.
    pub fn set_walkthrough_rvsd_options(&mut self, args: &[&str]) {
        self.rvsd_options = options_text(args);
    }

    /// The control socket of director `i`'s rvsd in the walkthrough.
    pub fn walkthrough_socket(&self, i: usize) -> PathBuf {
        self.lab()
            .workdir()
            .join(format!("{}.sock", self.directors[i].name()))
    }

    /// The log file of director `i`'s rvsd in the walkthrough.
    pub fn walkthrough_log(&self, i: usize) -> PathBuf {
        self.lab()
            .workdir()
            .join(format!("{}.log", self.directors[i].name()))
    }

    /// The pid file the walkthrough writes for director `i`'s rvsd (for the SIGTERM step).
    pub fn walkthrough_pid(&self, i: usize) -> PathBuf {
        self.lab()
            .workdir()
            .join(format!("{}.pid", self.directors[i].name()))
    }

    /// The walkthrough `rvs-lab up ecmp` prints: rvsd with the announce table, `sloppy_tcp`
    /// and the `mh` grace on every director, the same table everywhere, the router's ECMP
    /// route and BGP sessions, connections spread over directors and real servers, and a
    /// director stopped with SIGTERM while new connections keep working.
    pub fn walkthrough(&self) -> Vec<Step> {
        let mut v = Vec::new();
        let r = self.router.name().to_owned();
        let c = self.client.name().to_owned();
        let url = format!("http://{VIP}:{PORT}/");
        let n = self.directors.len();
        let d0 = self.directors[0].name().to_owned();
        if self.nginx_started() {
            let listing: Vec<String> = (0..self.real_servers.len())
                .map(|i| format!("rs{} {}", i + 1, real_server_addr(i)))
                .collect();
            v.push(Step::new(
                Some(format!(
                    "nginx already listens on every real server ({}); each page names its \
                     server:",
                    listing.join(", ")
                )),
                format!(
                    "ip netns exec {d0} curl -sS --max-time 5 http://{}:{PORT}/",
                    real_server_addr(0)
                ),
            ));
        } else {
            v.push(Step::new(
                Some(format!(
                    "nothing listens on the real servers (--no-nginx): the curls below fail \
                     until a web server listens on port {PORT} in each"
                )),
                String::new(),
            ));
        }
        for i in 0..n {
            v.push(Step::new(
                (i == 0).then(|| {
                    format!(
                        "rvsd on every director, in the background: packet plane on eth0, the \
                         VIP's route in table {ANNOUNCE_TABLE} (BIRD announces it) while it can \
                         serve, sloppy_tcp to take over moved flows, mh's previous table kept \
                         120 s after a real-server change (logs in {})",
                        self.lab().workdir().display()
                    )
                }),
                format!(
                    "ip netns exec {} rvsd --socket {} --interface eth0 --announce-table \
                     {ANNOUNCE_TABLE} --sysctl sloppy_tcp=1 --sysctl rvs_mh_grace=120 \
                     --metrics-listen off{} >{} 2>&1 & echo $! >{}",
                    self.directors[i].name(),
                    self.walkthrough_socket(i).display(),
                    self.rvsd_options,
                    self.walkthrough_log(i).display(),
                    self.walkthrough_pid(i).display()
                ),
            ));
        }
        let sockets: Vec<String> = (0..n)
            .map(|i| format!("[ -S {} ]", self.walkthrough_socket(i).display()))
            .collect();
        v.push(Step::new(
            Some("wait (at most 10 s) until every rvsd listens on its control socket".into()),
            format!(
                "timeout 10 sh -c 'until {}; do sleep 0.1; done'",
                sockets.join(" && ")
            ),
        ));
        for i in 0..n {
            for (k, cmd) in self.rvsadm_commands().iter().enumerate() {
                v.push(Step::new(
                    (i == 0 && k == 0).then(|| {
                        "the same table on every director: mh over source address and port \
                         (every director picks the same real server for a flow), DR"
                            .to_owned()
                    }),
                    format!(
                        "ip netns exec {} rvsadm --socket {} {cmd}",
                        self.directors[i].name(),
                        self.walkthrough_socket(i).display()
                    ),
                ));
            }
        }
        v.push(Step::new(
            Some(format!(
                "wait (at most 30 s) until the router has one next hop per director (BGP \
                 through BIRD); then the route, the BGP sessions, and what {d0} announces"
            )),
            format!(
                "timeout 30 sh -c 'until {}; do sleep 0.2; done'",
                router_has_hops(&r, n)
            ),
        ));
        v.push(Step::new(
            None,
            format!("ip netns exec {r} ip route show {VIP}"),
        ));
        v.push(Step::new(
            None,
            format!(
                "ip netns exec {r} birdc -s {} show protocols",
                self.bird_socket(&self.router).display()
            ),
        ));
        v.push(Step::new(
            None,
            format!("ip netns exec {d0} ip route show table {ANNOUNCE_TABLE}"),
        ));
        v.push(Step::new(
            Some(format!(
                "{ECMP_CURLS} connections from the client: the router spreads them over the \
                 directors (L4 hash), mh over the real servers"
            )),
            format!(
                "for i in $(seq {ECMP_CURLS}); do ip netns exec {c} curl -sS --max-time 5 {url}; \
                 done | sort | uniq -c"
            ),
        ));
        for i in 0..n {
            v.push(Step::new(
                (i == 0).then(|| "each director's share".to_owned()),
                format!(
                    "ip netns exec {} rvsadm --socket {} -Ln --stats",
                    self.directors[i].name(),
                    self.walkthrough_socket(i).display()
                ),
            ));
        }
        if n > 1 {
            v.push(Step::new(
                Some(format!(
                    "stop {d0}'s rvsd: its route goes first (the router keeps {} next hops), \
                     then it drains and exits; new connections keep working meanwhile",
                    n - 1
                )),
                format!("kill -TERM $(cat {})", self.walkthrough_pid(0).display()),
            ));
            v.push(Step::new(
                None,
                format!(
                    "timeout 10 sh -c 'until {}; do sleep 0.1; done'",
                    router_has_hops(&r, n - 1)
                ),
            ));
            v.push(Step::new(
                None,
                format!(
                    "for i in $(seq 20); do ip netns exec {c} curl -sS --max-time 5 -o /dev/null \
                     -w '%{{http_code}}\\n' {url}; done | sort | uniq -c"
                ),
            ));
        }
        v
    }
}

/// The commands of a walkthrough as printed by `rvs-lab up` ([`Topology::describe`]): the
/// lines of its "try it" block that are not comments, in order.
pub fn parse_walkthrough(printed: &str) -> Vec<String> {
    printed
        .lines()
        .skip_while(|l| !l.starts_with(TRY_IT))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The heading of the walkthrough block.
pub const TRY_IT: &str = "try it (as root; rvsd and rvsadm on PATH):";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_takes_the_commands_of_the_block() {
        let printed = format!(
            "lab x (nat), VIP 10.100.0.1:80\n  client netns x-client\n{TRY_IT}\n  # a comment\n  \
             ip netns exec x-director rvsd --socket /s --interface eth0 >/l 2>&1 &\n  \
             ip netns exec x-client curl -sS http://10.100.0.1:80/\nremove with: rvs-lab down\n"
        );
        assert_eq!(
            parse_walkthrough(&printed),
            vec![
                "ip netns exec x-director rvsd --socket /s --interface eth0 >/l 2>&1 &".to_owned(),
                "ip netns exec x-client curl -sS http://10.100.0.1:80/".to_owned(),
            ]
        );
        assert!(parse_walkthrough("no block here\n  ls\n").is_empty());
    }
}
