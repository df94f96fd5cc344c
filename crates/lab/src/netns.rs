//! Namespaces, links and addresses, driven through `ip` (iproute2) so every step is a command a
//! person could type, plus the [`Lab`] owner that deletes them again.

use std::fmt;
use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rvs_core::Protocol;

use crate::cmd::{NsChild, NsCommand};
use crate::decap::{DecapConfig, Decapsulator};
use crate::error::{LabError, Result};
use crate::nginx::{Nginx, Site};

/// Prefix of every namespace made by [`Lab::new`] (tests). The CLI uses [`CLI_PREFIX`] so that
/// `rvs-lab down` never touches a lab a test is using.
pub const TEST_PREFIX: &str = "rvlt";
/// Default prefix of labs made by the `rvs-lab` command.
pub const CLI_PREFIX: &str = "rvl";
/// Where labs keep generated files (nginx configs, pages, logs): `WORK_ROOT/<prefix>/`.
pub const WORK_ROOT: &str = "/tmp/rvs-lab";

/// Longest interface name Linux accepts (IFNAMSIZ − 1).
pub const IFNAME_MAX: usize = 15;

/// True when running as root (euid 0). Everything in this crate except the pure helpers needs it.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = LabError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || LabError::Invalid(format!("not a MAC address: {s:?}"));
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

/// Packet and byte counters of an interface (`/sys/class/net/DEV/statistics`), e.g. to show
/// that DR/TUN replies bypass the director.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

/// A handle on one named network namespace (`/run/netns/<name>`). Cheap to clone; it does not
/// own the namespace — the [`Lab`] that made it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    name: String,
    workdir: PathBuf,
}

impl Netns {
    /// The namespace name as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command run inside this namespace (`ip netns exec NAME program …`).
    pub fn cmd(&self, program: &str) -> NsCommand {
        NsCommand::new(&self.name, program)
    }

    /// A shell script run inside the namespace (`sh -c SCRIPT`); fails unless it exits 0,
    /// with its stderr. Returns stdout.
    pub fn sh(&self, script: &str) -> Result<String> {
        self.cmd("sh").args(["-c", script]).run()
    }

    /// Like [`Netns::sh`] for a script that may fail: whether it exited 0, and its stdout
    /// followed by its stderr.
    pub fn try_sh(&self, script: &str) -> Result<(bool, String)> {
        let out = self.cmd("sh").args(["-c", script]).output()?;
        let text = format!(
            "{}{}",
            out.stdout_str(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text))
    }

    /// `ip ARGS` inside the namespace (`ip -n NAME ARGS`); returns stdout.
    pub fn ip<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        NsCommand::host("ip")
            .args(["-n", &self.name])
            .args(args)
            .run()
    }

    /// `sysctl -w key=value` inside the namespace (e.g. `net.ipv4.ip_forward`, `1`).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.cmd("sysctl")
            .args(["-q", "-w", &format!("{key}={value}")])
            .run()
            .map(drop)
    }

    /// Reads a sysctl (`sysctl -n key`), trimmed.
    pub fn sysctl_get(&self, key: &str) -> Result<String> {
        Ok(self
            .cmd("sysctl")
            .args(["-n", key])
            .run()?
            .trim()
            .to_owned())
    }

    /// Adds an address (`cidr` like `10.0.0.1/24`) to `dev`.
    pub fn add_addr(&self, dev: &str, cidr: &str) -> Result<()> {
        self.ip(["addr", "add", cidr, "dev", dev]).map(drop)
    }

    /// Adds an address with a label (`lo:1` style, as the kernel selftest puts its VIP).
    pub fn add_addr_label(&self, dev: &str, cidr: &str, label: &str) -> Result<()> {
        self.ip(["addr", "add", cidr, "dev", dev, "label", label])
            .map(drop)
    }

    /// Removes an address from `dev`.
    pub fn del_addr(&self, dev: &str, cidr: &str) -> Result<()> {
        self.ip(["addr", "del", cidr, "dev", dev]).map(drop)
    }

    /// `ip route add DEST via GW` (`DEST` may be `default`).
    pub fn add_route(&self, dest: &str, via: Ipv4Addr) -> Result<()> {
        self.ip(["route", "add", dest, "via", &via.to_string()])
            .map(drop)
    }

    /// `ip route add DEST via GW dev DEV`.
    pub fn add_route_dev(&self, dest: &str, via: Ipv4Addr, dev: &str) -> Result<()> {
        self.ip(["route", "add", dest, "via", &via.to_string(), "dev", dev])
            .map(drop)
    }

    /// `ip route del DEST`.
    pub fn del_route(&self, dest: &str) -> Result<()> {
        self.ip(["route", "del", dest]).map(drop)
    }

    /// Sets a link up.
    pub fn link_up(&self, dev: &str) -> Result<()> {
        self.ip(["link", "set", dev, "up"]).map(drop)
    }

    /// Deletes a link (and its veth peer).
    pub fn del_link(&self, dev: &str) -> Result<()> {
        self.ip(["link", "del", dev]).map(drop)
    }

    /// The Ethernet address of `dev`.
    pub fn mac(&self, dev: &str) -> Result<MacAddr> {
        let out = self.ip(["-o", "link", "show", "dev", dev])?;
        let mac = out
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .ok_or_else(|| LabError::Invalid(format!("{dev} in {} has no MAC", self.name)))?;
        mac.parse()
    }

    /// Counters of `dev` (read through `ip netns exec`, which mounts the namespace's `/sys`).
    pub fn link_stats(&self, dev: &str) -> Result<LinkStats> {
        check_ifname(dev)?;
        let base = format!("/sys/class/net/{dev}/statistics");
        let out = self
            .cmd("cat")
            .args(
                ["rx_packets", "tx_packets", "rx_bytes", "tx_bytes"].map(|f| format!("{base}/{f}")),
            )
            .run()?;
        let v: Vec<u64> = out
            .lines()
            .map(|l| l.trim().parse::<u64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| LabError::Invalid(format!("statistics of {dev}: {e}")))?;
        match v[..] {
            [rx_packets, tx_packets, rx_bytes, tx_bytes] => Ok(LinkStats {
                rx_packets,
                tx_packets,
                rx_bytes,
                tx_bytes,
            }),
            _ => Err(LabError::Invalid(format!("statistics of {dev}: {out:?}"))),
        }
    }

    /// Names of the interfaces in the namespace.
    pub fn links(&self) -> Result<Vec<String>> {
        let out = self.ip(["-o", "link", "show"])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_owned())
            .collect())
    }

    /// Starts a long-running program in the namespace; it is killed when the handle drops.
    pub fn spawn(&self, cmd: NsCommand) -> Result<NsChild> {
        cmd.spawn()
    }

    /// Runs `f` on a fresh thread that has entered this namespace (`setns(2)`), and returns its
    /// result. Sockets created inside `f` belong to the namespace even after `f` returns, so
    /// tests can bind/connect/send from Rust directly:
    ///
    /// ```no_run
    /// # fn demo(ns: &rvs_lab::Netns) -> Result<(), Box<dyn std::error::Error>> {
    /// let sock = ns.exec(|| std::net::UdpSocket::bind("0.0.0.0:9000"))??;
    /// # Ok(()) }
    /// ```
    pub fn exec<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).map_err(|e| LabError::io(path, e))?;
        let name = self.name.clone();
        thread::scope(|s| {
            s.spawn(move || -> Result<T> {
                setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| LabError::Sys {
                    context: format!("setns into {name}"),
                    source,
                })?;
                Ok(f())
            })
            .join()
            .map_err(|_| LabError::ThreadPanicked(self.name.clone()))?
        })
    }

    /// Waits (at most `timeout`) until something in the namespace listens on `port` (TCP) or has
    /// bound it (UDP), as reported by `ss`.
    pub fn wait_for_port(&self, proto: Protocol, port: u16, timeout: Duration) -> Result<()> {
        let flag = match proto {
            Protocol::Tcp => "-Hltn",
            Protocol::Udp => "-Hlun",
            Protocol::Sctp => "-HlSn",
        };
        let deadline = Instant::now() + timeout;
        loop {
            let out = self
                .cmd("ss")
                .args([flag, &format!("sport = :{port}")])
                .timeout(timeout)
                .run()?;
            if !out.trim().is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("{proto:?} port {port} listening in {}", self.name),
                    after: timeout,
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts nginx in the namespace, listening on `port` (all addresses, so it also answers on
    /// a VIP on `lo`; on IPv6 too, `listen [::]:PORT`, when the kernel has IPv6), with a
    /// generated config under the lab's work directory. `GET /` returns
    /// `<name>\n` (a page that names the server) and `GET /whoami` returns the client address
    /// as the server saw it (`$remote_addr`), which is what FULLNAT tests check. Returns once
    /// the port listens (≤ 5 s). Needs Debian's `nginx-light` (or any nginx).
    pub fn nginx(&self, name: &str, port: u16) -> Result<NsChild> {
        self.nginx_ports(name, &[port])
    }

    /// [`Netns::nginx`] listening on several ports (one nginx; its files are those of the first
    /// port's, see [`Netns::nginx_root`]).
    pub fn nginx_ports(&self, name: &str, ports: &[u16]) -> Result<NsChild> {
        let first = *ports
            .first()
            .ok_or_else(|| LabError::Invalid("nginx needs a port".into()))?;
        let sites: Vec<Site> = ports.iter().map(|p| Site::port(*p, name)).collect();
        let n = Nginx::start(Some(self), &self.nginx_dir(first), &sites)?;
        n.into_child()
            .ok_or_else(|| LabError::Invalid(format!("nginx in {} not running", self.name)))
    }

    /// The directory of the nginx [`Netns::nginx`] starts on `port`.
    fn nginx_dir(&self, port: u16) -> PathBuf {
        self.workdir.join(format!("nginx-{}-{port}", self.name))
    }

    /// The document root of the nginx [`Netns::nginx`] starts on `port`: files put there are
    /// served (`/NAME`).
    pub fn nginx_root(&self, port: u16) -> PathBuf {
        crate::nginx::site_root(&self.nginx_dir(port), &Site::port(port, ""))
    }

    /// Starts an echo server on `port` (all addresses): TCP and SCTP send back what each
    /// connection sends (socat `TCP-LISTEN:PORT,fork,reuseaddr,backlog=256 PIPE`, `SCTP-LISTEN`
    /// likewise), UDP answers each datagram with itself ([`Netns::udp_responder`]). Returns once
    /// the port is bound (≤ 5 s).
    ///
    /// Why the backlog: socat's default is 5, and it forks a child per connection before it
    /// accepts the next. On a loaded machine a burst of connections filled that queue and the
    /// kernel dropped a SYN (`TcpExtListenDrops`), so one connect in a few hundred took the
    /// client's 1 s SYN retransmission — a failover test then missed a connection.
    pub fn echo_server(&self, proto: Protocol, port: u16) -> Result<NsChild> {
        let kind = match proto {
            Protocol::Tcp => "TCP",
            Protocol::Sctp => "SCTP",
            Protocol::Udp => return self.udp_responder(port, None),
        };
        let listen = format!("{kind}-LISTEN:{port},fork,reuseaddr,backlog=256");
        let child = self.cmd("socat").args([listen.as_str(), "PIPE"]).spawn()?;
        self.wait_for_port(proto, port, Duration::from_secs(5))?;
        Ok(child)
    }

    /// Starts a UDP server on `port` (IPv4 and IPv6, all addresses) that answers every datagram
    /// from its sender: with `reply` when given, else with the datagram itself. Returns once the
    /// port is bound (≤ 5 s).
    ///
    /// Why not socat: `socat UDP-RECVFROM:PORT,fork` loses datagrams. The child it forks for
    /// one datagram keeps reading the shared socket until its own timeout, and drops a datagram
    /// from another peer that it happens to read, so a second flow that arrives within that
    /// window sometimes gets no answer (seen as a flaky IPv6 NAT test). This server is one
    /// process with one socket and no fork (Debian's `python3`).
    pub fn udp_responder(&self, port: u16, reply: Option<&str>) -> Result<NsChild> {
        self.udp_responder_on("::", port, reply)
    }

    /// [`Netns::udp_responder`] bound to one address (`"::"`: every address of both
    /// families). Answers then leave from that address, which a direct-routing real server
    /// needs: bound to the VIP on its `lo`, it replies from the VIP, not from the address the
    /// route to the client would pick.
    pub fn udp_responder_on(&self, addr: &str, port: u16, reply: Option<&str>) -> Result<NsChild> {
        const SERVER: &str = r#"
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
if addr == "::":
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind((addr, port))
reply = sys.argv[3].encode() if len(sys.argv) > 3 else None
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(reply if reply is not None else data, peer)
"#;
        let port_arg = port.to_string();
        let mut args = vec!["-c", SERVER, addr, port_arg.as_str()];
        if let Some(r) = reply {
            args.push(r);
        }
        let child = self.cmd("python3").args(args).spawn()?;
        self.wait_for_port(Protocol::Udp, port, Duration::from_secs(5))?;
        Ok(child)
    }

    /// `curl -sS --max-time 3 URL` inside the namespace; returns the body.
    pub fn curl(&self, url: &str) -> Result<String> {
        self.cmd("curl")
            .args(["-sS", "--max-time", "3", url])
            .timeout(Duration::from_secs(5))
            .run()
    }

    /// Sets the sysctls of a real server that owns the VIP without answering ARP for it
    /// (LVS-DR/TUN): `arp_ignore=1`, `arp_announce=2` on `all` and on `devs`; `rp_filter=0` on
    /// `all`, `default` and `devs`.
    pub fn real_server_sysctls(&self, devs: &[&str]) -> Result<()> {
        let mut scopes = vec!["all"];
        scopes.extend_from_slice(devs);
        for s in &scopes {
            self.sysctl(&format!("net.ipv4.conf.{s}.arp_ignore"), "1")?;
            self.sysctl(&format!("net.ipv4.conf.{s}.arp_announce"), "2")?;
        }
        scopes.push("default");
        for s in &scopes {
            self.sysctl(&format!("net.ipv4.conf.{s}.rp_filter"), "0")?;
        }
        Ok(())
    }
}

/// The kernel selftest's pass criterion as a helper: starts `socat -u TCP-LISTEN:PORT STDOUT`
/// in `server`, sends `payload` from `client` with `socat -u STDIN TCP:DST:PORT` (connect
/// timeout 2 s), and returns what the server received (it exits when the client closes; ≤ 5 s).
pub fn socat_transfer(
    server: &Netns,
    client: &Netns,
    dst: Ipv4Addr,
    port: u16,
    payload: &[u8],
) -> Result<Vec<u8>> {
    let listener = server
        .cmd("socat")
        .args(["-u", &format!("TCP-LISTEN:{port},reuseaddr"), "STDOUT"])
        .spawn_captured()?;
    server.wait_for_port(Protocol::Tcp, port, Duration::from_secs(5))?;
    client
        .cmd("socat")
        .args([
            "-u",
            "STDIN",
            &format!("TCP:{dst}:{port},connect-timeout=2"),
        ])
        .stdin(payload.to_vec())
        .timeout(Duration::from_secs(5))
        .run()?;
    let out = listener.wait_output(Duration::from_secs(5))?;
    Ok(out.stdout)
}

/// Owner of a set of namespaces. Every namespace made through it is deleted when it is dropped —
/// also while unwinding from a panicking test — after the processes inside are killed and the
/// decapsulators stopped. Namespace names are `<prefix>-<role>`.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    workdir: PathBuf,
    namespaces: Vec<Netns>,
    decaps: Vec<Decapsulator>,
    children: Vec<NsChild>,
    keep: bool,
}

static LAB_SEQ: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// A lab for a test: prefix `rvlt-<tag>-<pid>-<n>`, unique per process and call, so tests
    /// can run in parallel. `tag` is cut to 12 characters of `[a-z0-9]`. Removes orphaned labs
    /// of dead test processes first ([`cleanup_orphans`]). Fails with [`LabError::NotRoot`]
    /// when not root.
    pub fn new(tag: &str) -> Result<Lab> {
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .take(12)
            .collect();
        if is_root() {
            // Leftovers of killed runs would otherwise pile up; never touches live labs.
            let _ = cleanup_orphans();
        }
        let n = LAB_SEQ.fetch_add(1, Ordering::Relaxed);
        Lab::with_prefix(&format!("{TEST_PREFIX}-{tag}-{}-{n}", std::process::id()))
    }

    /// A lab with an exact prefix (the CLI's `--prefix`). The prefix is `[A-Za-z0-9_-]`, at
    /// most 40 characters.
    pub fn with_prefix(prefix: &str) -> Result<Lab> {
        if !is_root() {
            return Err(LabError::NotRoot);
        }
        if prefix.is_empty()
            || prefix.len() > 40
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(LabError::Invalid(format!(
                "bad lab prefix {prefix:?} (1..=40 of [A-Za-z0-9_-])"
            )));
        }
        let workdir = Path::new(WORK_ROOT).join(prefix);
        fs::create_dir_all(&workdir).map_err(|e| LabError::io(workdir.display().to_string(), e))?;
        Ok(Lab {
            prefix: prefix.to_owned(),
            workdir,
            namespaces: Vec::new(),
            decaps: Vec::new(),
            children: Vec::new(),
            keep: false,
        })
    }

    /// The prefix of every namespace of this lab.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Directory for generated files; removed with the lab.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// Namespaces made so far, in creation order.
    pub fn namespaces(&self) -> &[Netns] {
        &self.namespaces
    }

    /// Creates namespace `<prefix>-<role>` with `lo` up. It is owned by the lab from now on.
    pub fn add_netns(&mut self, role: &str) -> Result<Netns> {
        let name = format!("{}-{role}", self.prefix);
        NsCommand::host("ip").args(["netns", "add", &name]).run()?;
        let ns = Netns {
            name,
            workdir: self.workdir.clone(),
        };
        self.namespaces.push(ns.clone());
        ns.link_up("lo")?;
        Ok(ns)
    }

    /// Creates a veth pair with one end `a_if` in `a` and the other `b_if` in `b`, both up. The
    /// ends are created directly inside their namespaces, so the names only need to be unique
    /// within each namespace and nothing ever appears in the host's namespace.
    pub fn veth(&self, a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
        check_ifname(a_if)?;
        check_ifname(b_if)?;
        NsCommand::host("ip")
            .args(["link", "add", a_if, "netns", &a.name, "type", "veth"])
            .args(["peer", "name", b_if, "netns", &b.name])
            .run()?;
        a.link_up(a_if)?;
        b.link_up(b_if)
    }

    /// Creates bridge `name` in `ns` (no STP, so ports forward at once) with `ports` enslaved,
    /// everything up.
    pub fn bridge(&self, ns: &Netns, name: &str, ports: &[&str]) -> Result<()> {
        check_ifname(name)?;
        ns.ip([
            "link",
            "add",
            name,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ])?;
        for p in ports {
            ns.ip(["link", "set", p, "master", name])?;
        }
        ns.link_up(name)
    }

    /// Starts a userspace tunnel decapsulator in `ns` (see [`crate::decap`]); the lab stops it
    /// before deleting the namespace.
    pub fn start_decap(&mut self, ns: &Netns, config: DecapConfig) -> Result<&Decapsulator> {
        let d = Decapsulator::start(Some(&ns.name), config)?;
        self.decaps.push(d);
        Ok(&self.decaps[self.decaps.len() - 1])
    }

    /// Decapsulators started with [`Lab::start_decap`].
    pub fn decaps(&self) -> &[Decapsulator] {
        &self.decaps
    }

    /// Hands a process to the lab: it is killed when the lab is dropped (before the namespaces
    /// go), so it need not be kept in a variable.
    pub fn own(&mut self, child: NsChild) {
        self.children.push(child);
    }

    /// Leaves everything in place when the lab is dropped (for `rvs-lab up`); use
    /// [`cleanup_stale`] with the prefix, or `rvs-lab down`, to remove it later.
    /// Decapsulators are stopped anyway (they are threads of this process).
    pub fn keep(&mut self) {
        self.keep = true;
        for c in self.children.drain(..) {
            c.detach();
        }
    }

    /// Deletes the lab now, reporting the first error (dropping does the same silently).
    pub fn destroy(mut self) -> Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        // Order matters: a thread or process inside a namespace keeps it alive after
        // `ip netns del`, so everything running inside goes first.
        self.decaps.clear();
        self.children.clear();
        let mut first_err = None;
        for ns in self.namespaces.drain(..).rev() {
            if let Err(e) = delete_netns(&ns.name) {
                first_err.get_or_insert(e);
            }
        }
        let _ = fs::remove_dir_all(&self.workdir);
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.keep {
            self.decaps.clear();
            return;
        }
        if let Err(e) = self.teardown() {
            eprintln!("rvs-lab: cleanup of {} incomplete: {e}", self.prefix);
        }
    }
}

fn check_ifname(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > IFNAME_MAX || name.contains(['/', ' ', ':']) {
        return Err(LabError::Invalid(format!(
            "interface name {name:?} must be 1..={IFNAME_MAX} characters without '/', ':' or spaces"
        )));
    }
    Ok(())
}

/// Kills every process inside namespace `name` (never this process), then deletes it.
fn delete_netns(name: &str) -> Result<()> {
    kill_netns_pids(name);
    NsCommand::host("ip")
        .args(["netns", "del", name])
        .run()
        .map(drop)
}

/// SIGKILLs the processes `ip netns pids` lists, and waits (≤ 1 s) for them to go.
fn kill_netns_pids(name: &str) {
    let me = std::process::id();
    let pids = |name: &str| -> Vec<i32> {
        NsCommand::host("ip")
            .args(["netns", "pids", name])
            .timeout(Duration::from_secs(5))
            .run()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .filter(|p| *p != me)
            .filter_map(|p| i32::try_from(p).ok())
            .collect()
    };
    let mut left = pids(name);
    for p in &left {
        let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while !left.is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        left.retain(|p| alive(*p));
    }
}

/// True while `pid` exists and is not a zombie (a killed process whose parent is gone waits
/// for init to reap it; it no longer holds its namespace).
fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3, after the parenthesised command name (which may contain spaces).
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Names of all namespaces whose name starts with `<prefix>-`.
pub fn list_namespaces(prefix: &str) -> Result<Vec<String>> {
    let out = NsCommand::host("ip").args(["netns", "list"]).run()?;
    let want = format!("{prefix}-");
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&want))
        .map(str::to_owned)
        .collect())
}

/// Removes what a crashed run left behind: every namespace named `<prefix>-…` (processes inside
/// are killed first) and the work directories `WORK_ROOT/<prefix>…`. Returns the namespaces
/// deleted. Careful: with a short prefix such as [`TEST_PREFIX`] this also removes labs of tests
/// running right now in other processes; [`cleanup_orphans`] does not.
pub fn cleanup_stale(prefix: &str) -> Result<Vec<String>> {
    let names = list_namespaces(prefix)?;
    for n in &names {
        delete_netns(n)?;
    }
    if let Ok(dir) = fs::read_dir(WORK_ROOT) {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(names)
}

/// Removes test labs (`rvlt-<tag>-<pid>-<n>-…`) whose process no longer exists: leftovers of
/// test runs that were killed (SIGKILL, timeout) before `Drop` could run, namespaces and work
/// directories. Safe to call while other tests run ([`Lab::new`] calls it). Returns the
/// namespaces deleted.
pub fn cleanup_orphans() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in list_namespaces(TEST_PREFIX)? {
        if !orphaned(&name) {
            continue;
        }
        // Another process may be removing the same orphan right now; that is not an error.
        if delete_netns(&name).is_ok() {
            removed.push(name);
        }
    }
    if let Ok(dir) = fs::read_dir(WORK_ROOT) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{TEST_PREFIX}-")) && orphaned(&name) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(removed)
}

/// True for a test lab name (`rvlt-<tag>-<pid>-…`) whose process is gone. The tag is
/// alphanumeric, so the pid is the third dash-separated field.
fn orphaned(name: &str) -> bool {
    let pid = name.split('-').nth(2).and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(pid) => pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let m: MacAddr = "02:ab:00:10:ff:7e".parse().unwrap();
        assert_eq!(m.0, [0x02, 0xab, 0x00, 0x10, 0xff, 0x7e]);
        assert_eq!(m.to_string(), "02:ab:00:10:ff:7e");
        for bad in [
            "",
            "02:ab:00:10:ff",
            "02:ab:00:10:ff:7e:01",
            "2:ab:00:10:ff:7e",
            "zz:ab:00:10:ff:7e",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("director1-eth0").is_ok());
        assert!(check_ifname("sixteen-chars-xx").is_err());
        assert!(check_ifname("").is_err());
        assert!(check_ifname("lo:1").is_err());
    }
}
