//! The golden fixture format, the test topology, the runner and the failure report.
//!
//! A fixture (`tests/golden/<name>.case`) is line oriented; `#` starts a comment line:
//!
//! ```text
//! case nat-v4-tcp-syn
//! config -A -t 198.51.100.10:80 -s rr
//! config -a -t 198.51.100.10:80 -r 192.168.1.11:8080 -m
//! step SYN from the client
//! at 1000                      (milliseconds; default 1000 × step number)
//! cmd -d -t ... -r ...         (table edits applied before the packet)
//! port 0                       (ingress port)
//! in 0000: 02 00 00 ...        (input frame, 16 bytes a line)
//! verdict transmit port=1
//! out 0000: 02 00 00 ...       (expected frame for transmit / fragment / local)
//! flags badsum                 (expected output carries a deliberately bad checksum)
//! counters conns=1 inpkts=1 inbytes=60 outpkts=0 outbytes=0
//! drops ttl_exceeded=1
//! live 1                       (connections left in the table, templates included)
//! ```
//!
//! Config lines are ipvsadm commands (`-A`, `-a`, `-e`, `-d`, `--add-laddr`) plus the
//! plane's own settings: `sysctl NAME VALUE`, `mtu PORT N`, `mark PROTO ADDR LO-HI MARK`,
//! `lport LO HI`.
//!
//! The topology is fixed (see [`topology`]): port 0 faces the clients through a router, port 1
//! the real servers on 192.168.1.0/24 and 2001:db8:2::/64.

use std::cell::Cell;
use std::fmt::Write as _;
use std::net::IpAddr;

use rvs_core::conn::HashSeed;
use rvs_core::dest::{TunCsum, TunType, TunnelConfig};
use rvs_core::{
    DestConfig, Director, Family, FwdMethod, Protocol, RandomSource, SchedKind, ServiceConfig,
    ServiceFlags, ServiceKey, Time,
};
use rvs_packet::plane::{
    DropCounters, DropReason, MarkRule, Neighbours, NextHop, Plane, PlaneConfig, PortConfig,
    PortId, Verdict,
};

use super::build::{a4, a6, Mac};

// ---------------------------------------------------------------------------------------------
// Topology

pub const P0_MAC: Mac = [0x02, 0, 0, 0, 0, 0x01];
pub const P1_MAC: Mac = [0x02, 0, 0, 0, 0x01, 0x01];
pub const ROUTER_MAC: Mac = [0x02, 0, 0, 0, 0, 0xfe];

pub fn p0_addr(v6: bool) -> IpAddr {
    if v6 {
        a6("2001:db8:1::1")
    } else {
        a4("198.51.100.1")
    }
}
pub fn p1_addr(v6: bool) -> IpAddr {
    if v6 {
        a6("2001:db8:2::1")
    } else {
        a4("192.168.1.1")
    }
}
pub fn vip(v6: bool) -> IpAddr {
    if v6 {
        a6("2001:db8:1::10")
    } else {
        a4("198.51.100.10")
    }
}
pub fn lip(v6: bool) -> IpAddr {
    if v6 {
        a6("2001:db8:2::100")
    } else {
        a4("192.168.1.100")
    }
}
pub fn client(v6: bool) -> IpAddr {
    if v6 {
        a6("2001:db8:c::5")
    } else {
        a4("203.0.113.5")
    }
}
pub fn client2(v6: bool) -> IpAddr {
    if v6 {
        a6("2001:db8:c::6")
    } else {
        a4("203.0.113.6")
    }
}
/// Real server `n` (11, 12, ...; IPv6 `2001:db8:2::<n in hex>` so the last byte is `n` too).
pub fn rs(v6: bool, n: u8) -> IpAddr {
    if v6 {
        a6(&format!("2001:db8:2::{n:x}"))
    } else {
        a4(&format!("192.168.1.{n}"))
    }
}
/// MAC of a host on the real-server link: 02:00:00:00:01:<last address byte>.
pub fn host_mac(a: IpAddr) -> Mac {
    let last = match a {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    };
    [0x02, 0, 0, 0, 0x01, last]
}

/// Addresses on the real-server link are neighbours on port 1 (x.99 never resolves);
/// everything else goes to the router on port 0.
#[derive(Default)]
pub struct Topology {
    /// While set, no next hop is known yet (frames wait for it: [`run_held`]).
    pub unresolved: Cell<bool>,
}

fn on_rs_link(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => a.octets()[..3] == [192, 168, 1],
        IpAddr::V6(a) => a.segments()[..4] == [0x2001, 0xdb8, 2, 0],
    }
}

impl Neighbours for Topology {
    fn next_hop(&self, dst: IpAddr) -> Option<NextHop> {
        if self.unresolved.get() {
            return None;
        }
        if on_rs_link(dst) {
            let m = host_mac(dst);
            (m[5] != 99).then_some(NextHop { port: 1, mac: m })
        } else {
            Some(NextHop {
                port: 0,
                mac: ROUTER_MAC,
            })
        }
    }
}

pub fn topology() -> PlaneConfig {
    let v4 = |a: IpAddr| match a {
        IpAddr::V4(a) => a,
        _ => unreachable!(),
    };
    let v6 = |a: IpAddr| match a {
        IpAddr::V6(a) => a,
        _ => unreachable!(),
    };
    PlaneConfig {
        ports: vec![
            PortConfig {
                mac: P0_MAC,
                mtu: 1500,
                addr4: Some(v4(p0_addr(false))),
                addr6: Some(v6(p0_addr(true))),
            },
            PortConfig {
                mac: P1_MAC,
                mtu: 1500,
                addr4: Some(v4(p1_addr(false))),
                addr6: Some(v6(p1_addr(true))),
            },
        ],
        owned: vec![
            (vip(false), 0),
            (vip(true), 0),
            (lip(false), 1),
            (lip(true), 1),
        ],
        ..PlaneConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture model

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub doc: String,
    pub at: Option<u64>,
    pub cmds: Vec<String>,
    pub port: u16,
    pub input: Vec<u8>,
    pub verdict: String,
    pub out: Option<Vec<u8>>,
    /// Free-form decode of the expected output (a comment in the file).
    pub note: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Case {
    pub name: String,
    pub doc: Vec<String>,
    pub config: Vec<String>,
    pub steps: Vec<Step>,
    pub flags: Vec<String>,
    pub counters: String,
    pub drops: String,
    pub live: usize,
}

fn hex_lines(out: &mut String, key: &str, b: &[u8]) {
    for (i, c) in b.chunks(16).enumerate() {
        let _ = write!(out, "{key} {:04x}:", i * 16);
        for x in c {
            let _ = write!(out, " {x:02x}");
        }
        out.push('\n');
    }
}

impl Case {
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for d in &self.doc {
            let _ = writeln!(s, "# {d}");
        }
        let _ = writeln!(s, "case {}", self.name);
        for c in &self.config {
            let _ = writeln!(s, "config {c}");
        }
        if !self.flags.is_empty() {
            let _ = writeln!(s, "flags {}", self.flags.join(" "));
        }
        for st in &self.steps {
            let _ = writeln!(s, "\nstep {}", st.doc);
            if let Some(at) = st.at {
                let _ = writeln!(s, "at {at}");
            }
            for c in &st.cmds {
                let _ = writeln!(s, "cmd {c}");
            }
            let _ = writeln!(s, "port {}", st.port);
            let _ = writeln!(s, "# input: {}", describe(&st.input));
            hex_lines(&mut s, "in", &st.input);
            let _ = writeln!(s, "verdict {}", st.verdict);
            if let Some(o) = &st.out {
                let _ = writeln!(s, "# expected: {}", describe(o));
                for n in &st.note {
                    let _ = writeln!(s, "# {n}");
                }
                hex_lines(&mut s, "out", o);
            }
        }
        let _ = writeln!(s, "\ncounters {}", self.counters);
        let _ = writeln!(s, "drops {}", self.drops);
        let _ = writeln!(s, "live {}", self.live);
        s
    }

    pub fn parse(text: &str) -> Result<Case, String> {
        let mut c = Case::default();
        let mut step: Option<Step> = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(d) = line.strip_prefix("# ") {
                if step.is_none() && c.name.is_empty() {
                    c.doc.push(d.to_string());
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            let err = |m: &str| format!("line {}: {m}: {line}", n + 1);
            match k {
                "case" => c.name = v.to_string(),
                "config" => c.config.push(v.to_string()),
                "flags" => c.flags = v.split_whitespace().map(String::from).collect(),
                "step" => {
                    if let Some(s) = step.take() {
                        c.steps.push(s);
                    }
                    step = Some(Step {
                        doc: v.to_string(),
                        ..Step::default()
                    });
                }
                "counters" | "drops" | "live" => {
                    if let Some(s) = step.take() {
                        c.steps.push(s);
                    }
                    match k {
                        "counters" => c.counters = v.to_string(),
                        "drops" => c.drops = v.to_string(),
                        _ => c.live = v.parse().map_err(|_| err("bad live"))?,
                    }
                }
                "at" | "cmd" | "port" | "in" | "verdict" | "out" => {
                    let s = step.as_mut().ok_or_else(|| err("outside a step"))?;
                    match k {
                        "at" => s.at = Some(v.parse().map_err(|_| err("bad at"))?),
                        "cmd" => s.cmds.push(v.to_string()),
                        "port" => s.port = v.parse().map_err(|_| err("bad port"))?,
                        "verdict" => s.verdict = v.to_string(),
                        _ => {
                            let (_, hex) = v.split_once(':').ok_or_else(|| err("no offset"))?;
                            let mut bytes = Vec::new();
                            for h in hex.split_whitespace() {
                                bytes.push(u8::from_str_radix(h, 16).map_err(|_| err("bad hex"))?);
                            }
                            if k == "in" {
                                s.input.extend(bytes);
                            } else {
                                s.out.get_or_insert_with(Vec::new).extend(bytes);
                            }
                        }
                    }
                }
                _ => return Err(err("unknown keyword")),
            }
        }
        if let Some(s) = step.take() {
            c.steps.push(s);
        }
        Ok(c)
    }
}

// ---------------------------------------------------------------------------------------------
// Building the plane from config lines

pub struct Zero;
impl RandomSource for Zero {
    fn below(&mut self, _n: u32) -> u32 {
        0
    }
}

fn parse_ep(s: &str) -> Result<(IpAddr, u16), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (a, p) = rest.split_once(']').ok_or("bad [addr]")?;
        let a: IpAddr = a.parse().map_err(|_| format!("bad address {a}"))?;
        let p = p
            .strip_prefix(':')
            .map_or(Ok(0), |p| p.parse())
            .map_err(|_| "bad port")?;
        return Ok((a, p));
    }
    let (a, p) = match s.rsplit_once(':') {
        Some((a, p)) => (a, p.parse().map_err(|_| "bad port")?),
        None => (s, 0),
    };
    Ok((a.parse().map_err(|_| format!("bad address {a}"))?, p))
}

/// Parses the service part of an ipvsadm command (`-t|-u|--sctp-service EP` or `-f MARK
/// [-6]`), returning the key.
fn service_key(args: &[&str]) -> Result<ServiceKey, String> {
    let six = args.contains(&"-6");
    for w in args.windows(2) {
        let proto = match w[0] {
            "-t" => Protocol::Tcp,
            "-u" => Protocol::Udp,
            "--sctp-service" => Protocol::Sctp,
            "-f" => {
                return Ok(ServiceKey::Fwmark {
                    family: if six { Family::Inet6 } else { Family::Inet },
                    mark: w[1].parse().map_err(|_| "bad mark")?,
                })
            }
            _ => continue,
        };
        let (addr, port) = parse_ep(w[1])?;
        return Ok(ServiceKey::Addr { proto, addr, port });
    }
    Err("no service".into())
}

fn opt<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1])
}

/// Applies one ipvsadm-like command to the director.
pub fn apply(d: &mut Director, line: &str, now: Time) -> Result<(), String> {
    let args: Vec<&str> = line.split_whitespace().collect();
    let cmd = *args.first().ok_or("empty")?;
    match cmd {
        "-A" => {
            let key = service_key(&args)?;
            let sched = opt(&args, "-s").unwrap_or("wlc");
            let sched = SchedKind::from_name(sched)
                .map_err(|e| e.to_string())?
                .ok_or("none scheduler")?;
            let mut cfg = ServiceConfig::new(sched, key.family());
            if let Some(t) = opt(&args, "-p") {
                cfg = cfg.persistent(t.parse().map_err(|_| "bad -p")?);
            }
            if let Some(m) = opt(&args, "-M") {
                let mask = match m.parse::<IpAddr>() {
                    Ok(IpAddr::V4(a)) => u32::from(a),
                    _ => m.parse().map_err(|_| "bad -M")?,
                };
                cfg = cfg.netmask(mask);
            }
            if args.contains(&"-o") {
                cfg = cfg.flags(ServiceFlags::ONEPACKET);
            }
            d.table
                .add_service(key, cfg, now)
                .map_err(|e| e.to_string())?;
        }
        "-a" | "-e" => {
            let key = service_key(&args)?;
            let (addr, port) = parse_ep(opt(&args, "-r").ok_or("no -r")?)?;
            let mut cfg = DestConfig::new(addr, port);
            if let Some(w) = opt(&args, "-w") {
                cfg = cfg.weight(w.parse().map_err(|_| "bad -w")?);
            }
            let fwd = if args.contains(&"-m") {
                FwdMethod::Masq
            } else if args.contains(&"-i") {
                FwdMethod::Tunnel
            } else if args.contains(&"--fullnat") {
                FwdMethod::FullNat
            } else {
                FwdMethod::Route
            };
            cfg = cfg.fwd(fwd);
            if fwd == FwdMethod::Tunnel {
                cfg.tunnel = TunnelConfig {
                    tun_type: match opt(&args, "--tun-type").unwrap_or("ipip") {
                        "ipip" => TunType::Ipip,
                        "gue" => TunType::Gue,
                        "gre" => TunType::Gre,
                        t => return Err(format!("bad tun type {t}")),
                    },
                    port: opt(&args, "--tun-port")
                        .map_or(Ok(0), |p| p.parse())
                        .map_err(|_| "bad port")?,
                    csum: if args.contains(&"--tun-csum") {
                        TunCsum::Csum
                    } else if args.contains(&"--tun-remcsum") {
                        TunCsum::RemCsum
                    } else {
                        TunCsum::NoCsum
                    },
                };
            }
            if cmd == "-a" {
                d.table
                    .add_dest(&key, cfg, now)
                    .map_err(|e| e.to_string())?;
            } else {
                d.table.edit_dest(&key, cfg).map_err(|e| e.to_string())?;
            }
        }
        "-d" => {
            let key = service_key(&args)?;
            let (addr, port) = parse_ep(opt(&args, "-r").ok_or("no -r")?)?;
            d.del_dest(&key, &addr, port, now)
                .map_err(|e| e.to_string())?;
        }
        "sysctl" => {
            let v = args
                .get(2)
                .ok_or("no value")?
                .parse::<u32>()
                .map_err(|_| "bad value")?
                != 0;
            match args.get(1).copied() {
                Some("expire_nodest_conn") => d.sys.conn.expire_nodest_conn = v,
                Some("cache_bypass") => d.sys.cache_bypass = v,
                Some("rvs_syn_proxy") => d.sys.syn_proxy = v,
                Some("pmtu_disc") => {} // plane setting, see `build`
                _ => return Err("unknown sysctl".into()),
            }
        }
        "--add-laddr" | "mtu" | "mark" | "lport" => {} // plane settings, see `build`
        _ => return Err(format!("unknown command {cmd}")),
    }
    Ok(())
}

/// Builds a plane: the topology, plane settings from the config, then the table.
/// A plane and the director it is lent, as rvsd pairs them (the director lives outside the
/// plane so that several planes and the socket proxy can share it).
pub struct Rig {
    pub plane: Plane<Topology>,
    pub director: Director,
}

impl Rig {
    pub fn process(
        &mut self,
        buf: &mut [u8],
        start: usize,
        len: usize,
        port_in: PortId,
        now: Time,
        rng: &mut dyn RandomSource,
    ) -> Verdict {
        self.plane
            .process(&mut self.director, buf, start, len, port_in, now, rng)
    }
    pub fn drops(&self) -> &DropCounters {
        self.plane.drops()
    }
    pub fn announcement(&self, i: usize, out: &mut [u8]) -> Option<(PortId, usize)> {
        self.plane.announcement(i, out)
    }
    pub fn config(&self) -> &PlaneConfig {
        self.plane.config()
    }
}

pub fn build(config: &[String]) -> Result<Rig, String> {
    let mut cfg = topology();
    for line in config {
        let args: Vec<&str> = line.split_whitespace().collect();
        match args.first().copied() {
            Some("--add-laddr") => {
                let key = service_key(&args)?;
                let a: IpAddr = opt(&args, "-z")
                    .ok_or("no -z")?
                    .parse()
                    .map_err(|_| "bad -z")?;
                cfg.laddrs.add(key, a);
            }
            Some("mtu") => {
                let p: usize = args[1].parse().map_err(|_| "bad port")?;
                cfg.ports[p].mtu = args[2].parse().map_err(|_| "bad mtu")?;
            }
            Some("sysctl") if args.get(1) == Some(&"pmtu_disc") => {
                cfg.pmtu_disc = args[2] != "0";
            }
            Some("lport") => {
                cfg.laddrs.set_range((
                    args[1].parse().map_err(|_| "bad lport")?,
                    args[2].parse().map_err(|_| "bad lport")?,
                ));
            }
            Some("mark") => {
                let (lo, hi) = args[3].split_once('-').ok_or("bad range")?;
                cfg.marks.push(MarkRule {
                    proto: args[1].parse().map_err(|_| "bad proto")?,
                    addr: args[2].parse().map_err(|_| "bad addr")?,
                    ports: (
                        lo.parse().map_err(|_| "bad port")?,
                        hi.parse().map_err(|_| "bad port")?,
                    ),
                    mark: args[4].parse().map_err(|_| "bad mark")?,
                });
            }
            _ => {}
        }
    }
    let mut d = Director::new(HashSeed([1, 2, 3, 4]), Time(0));
    for line in config {
        apply(&mut d, line, Time(0)).map_err(|e| format!("config `{line}`: {e}"))?;
    }
    Ok(Rig {
        plane: Plane::new(cfg, Topology::default()),
        director: d,
    })
}

pub fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Transmit { port, .. } => format!("transmit port={port}"),
        Verdict::Fragment {
            port, mtu, ident, ..
        } if *ident != 0 => format!("fragment port={port} mtu={mtu} ident={ident:#x}"),
        Verdict::Fragment { port, mtu, .. } => format!("fragment port={port} mtu={mtu}"),
        Verdict::Local { port, .. } => format!("local port={port}"),
        Verdict::Pass => "pass".into(),
        Verdict::Queued => "queued".into(),
        Verdict::Drop(r) => format!("drop {}", r.name()),
    }
}

pub fn counters_text(p: &Rig) -> (String, String, usize) {
    counters_text_less_no_route(p, 0)
}

/// [`counters_text`] with `held` taken off the `no_route` drops.
fn counters_text_less_no_route(p: &Rig, held: u64) -> (String, String, usize) {
    let t = p.director.total.shown();
    let c = format!(
        "conns={} inpkts={} inbytes={} outpkts={} outbytes={}",
        t.conns, t.inpkts, t.inbytes, t.outpkts, t.outbytes
    );
    let d: Vec<String> = p
        .drops()
        .nonzero()
        .map(|(r, n)| {
            (
                r,
                if r == DropReason::NoRoute {
                    n - held
                } else {
                    n
                },
            )
        })
        .filter(|&(_, n)| n != 0)
        .map(|(r, n)| format!("{}={n}", r.name()))
        .collect();
    let d = if d.is_empty() {
        "none".to_string()
    } else {
        d.join(" ")
    };
    (c, d, p.director.conns.len())
}

/// What one run of a case produced.
pub struct Run {
    pub steps: Vec<(String, Option<Vec<u8>>, bool)>,
    pub counters: String,
    pub drops: String,
    pub live: usize,
}

pub const HEADROOM: usize = 128;

/// Runs a case; returns the verdict, output frame and "passed frame unchanged" per step.
pub fn run(c: &Case) -> Result<Run, String> {
    let mut plane = build(&c.config)?;
    let mut steps = Vec::new();
    for (i, st) in c.steps.iter().enumerate() {
        let now = Time(st.at.unwrap_or(1000 * (i as u64 + 1)));
        for cmd in &st.cmds {
            apply(&mut plane.director, cmd, now).map_err(|e| format!("cmd `{cmd}`: {e}"))?;
        }
        let mut buf = vec![0u8; HEADROOM + st.input.len() + 2048];
        buf[HEADROOM..HEADROOM + st.input.len()].copy_from_slice(&st.input);
        let v = plane.process(&mut buf, HEADROOM, st.input.len(), st.port, now, &mut Zero);
        let out = match v {
            Verdict::Transmit { start, len, .. }
            | Verdict::Fragment { start, len, .. }
            | Verdict::Local { start, len, .. } => Some(buf[start..start + len].to_vec()),
            _ => None,
        };
        let untouched = buf[HEADROOM..HEADROOM + st.input.len()] == st.input[..];
        steps.push((verdict_text(&v), out, untouched));
    }
    let (counters, drops, live) = counters_text(&plane);
    Ok(Run {
        steps,
        counters,
        drops,
        live,
    })
}

/// Runs a case as [`run`] does, but with every frame's next hop unknown when it arrives: a
/// frame the plane could not send for want of it is kept ([`Plane::take_pending`]), copied
/// into a fresh buffer (as rvsd's worker holds it) and finished once the next hop is known
/// ([`Plane::send_pending`]), before the next step. Returns the run (its drops without the
/// one `no_route` each frame that waited adds) and, per step, whether its frame waited for
/// its next hop: `Some(true)` held and finished, `Some(false)` dropped without being kept (a
/// reassembled datagram), `None` it did not wait.
pub fn run_held(c: &Case) -> Result<(Run, Vec<Option<bool>>), String> {
    let mut plane = build(&c.config)?;
    let mut steps = Vec::new();
    let mut waited = Vec::new();
    for (i, st) in c.steps.iter().enumerate() {
        let now = Time(st.at.unwrap_or(1000 * (i as u64 + 1)));
        for cmd in &st.cmds {
            apply(&mut plane.director, cmd, now).map_err(|e| format!("cmd `{cmd}`: {e}"))?;
        }
        let mut buf = vec![0u8; HEADROOM + st.input.len() + 2048];
        buf[HEADROOM..HEADROOM + st.input.len()].copy_from_slice(&st.input);
        plane.plane.neigh.unresolved.set(true);
        let mut v = plane.process(&mut buf, HEADROOM, st.input.len(), st.port, now, &mut Zero);
        plane.plane.neigh.unresolved.set(false);
        let pending = plane.plane.take_pending();
        waited.push(match (v, pending.is_some()) {
            (Verdict::Drop(DropReason::NoRoute), kept) => Some(kept),
            (_, false) => None,
            (_, true) => return Err(format!("step {}: kept with verdict {v:?}", i + 1)),
        });
        if let Some(p) = pending {
            let (start, len) = p.frame();
            let kept = buf[start..start + len].to_vec();
            buf = vec![0u8; HEADROOM + len + 2048];
            buf[HEADROOM..HEADROOM + len].copy_from_slice(&kept);
            v = plane.plane.send_pending(&p, &mut buf, HEADROOM, len);
            // A next hop that never resolves (x.99) leaves it kept again.
            plane.plane.take_pending();
        }
        let out = match v {
            Verdict::Transmit { start, len, .. }
            | Verdict::Fragment { start, len, .. }
            | Verdict::Local { start, len, .. } => Some(buf[start..start + len].to_vec()),
            _ => None,
        };
        steps.push((verdict_text(&v), out, false));
    }
    let n = waited.iter().filter(|w| w.is_some()).count() as u64;
    let (counters, drops, live) = counters_text_less_no_route(&plane, n);
    Ok((
        Run {
            steps,
            counters,
            drops,
            live,
        },
        waited,
    ))
}

// ---------------------------------------------------------------------------------------------
// Independent frame checker and decoder

fn sum16(mut acc: u32, b: &[u8]) -> u32 {
    for c in b.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}
fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn pseudo(src: &[u8], dst: &[u8], proto: u8, len: usize) -> u32 {
    let mut s = sum16(0, src);
    s = sum16(s, dst);
    s += u32::from(proto);
    s += (len as u32) & 0xffff;
    s += (len as u32) >> 16;
    s
}

/// Walks a frame, decodes it into a one-line summary and recomputes every checksum in full.
/// Returns (summary, errors).
pub fn check(frame: &[u8]) -> (String, Vec<String>) {
    let mut d = String::new();
    let mut errs = Vec::new();
    if frame.len() < 14 {
        return ("runt".into(), vec!["runt frame".into()]);
    }
    let mac = |m: &[u8]| {
        m.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let _ = write!(d, "eth {}>{}", mac(&frame[6..12]), mac(&frame[0..6]));
    let mut off = 12;
    let mut et = u16::from_be_bytes([frame[12], frame[13]]);
    while et == 0x8100 && frame.len() >= off + 6 {
        let _ = write!(
            d,
            " vlan {}",
            u16::from_be_bytes([frame[off + 2], frame[off + 3]]) & 0xfff
        );
        off += 4;
        et = u16::from_be_bytes([frame[off], frame[off + 1]]);
    }
    off += 2;
    match et {
        0x0806 => {
            let a = &frame[off..];
            if a.len() >= 28 {
                let _ = write!(
                    d,
                    " | arp op={} {}@{} -> {}@{}",
                    u16::from_be_bytes([a[6], a[7]]),
                    IpAddr::from([a[14], a[15], a[16], a[17]]),
                    mac(&a[8..14]),
                    IpAddr::from([a[24], a[25], a[26], a[27]]),
                    mac(&a[18..24])
                );
            }
        }
        0x0800 | 0x86dd => {
            if etherparse::SlicedPacket::from_ethernet(frame).is_err() {
                errs.push("etherparse rejects the frame".into());
            }
            check_ip(&frame[off..], &mut d, &mut errs, 0)
        }
        e => {
            let _ = write!(d, " | ethertype {e:04x}");
        }
    }
    (d, errs)
}

fn check_ip(p: &[u8], d: &mut String, errs: &mut Vec<String>, depth: usize) {
    if depth > 3 || p.is_empty() {
        return;
    }
    let (src, dst, proto, body, frag): (Vec<u8>, Vec<u8>, u8, &[u8], bool);
    match p[0] >> 4 {
        4 if p.len() >= 20 => {
            let hl = usize::from(p[0] & 15) * 4;
            let tl = usize::from(u16::from_be_bytes([p[2], p[3]]));
            if hl < 20 || tl < hl || tl > p.len() {
                errs.push(format!("ipv4 lengths ihl={hl} total={tl} have={}", p.len()));
                return;
            }
            if fold(sum16(0, &p[..hl])) != 0xffff {
                errs.push("ipv4 header checksum".into());
            }
            let ff = u16::from_be_bytes([p[6], p[7]]);
            let _ = write!(
                d,
                " | ipv4 {}>{} ttl={} tos={:#x} id={:#x}{}{} len={}{}",
                IpAddr::from([p[12], p[13], p[14], p[15]]),
                IpAddr::from([p[16], p[17], p[18], p[19]]),
                p[8],
                p[1],
                u16::from_be_bytes([p[4], p[5]]),
                if ff & 0x4000 != 0 { " DF" } else { "" },
                if hl > 20 { " +options" } else { "" },
                tl,
                if ff & 0x3fff != 0 { " fragment" } else { "" },
            );
            src = p[12..16].to_vec();
            dst = p[16..20].to_vec();
            proto = p[9];
            body = &p[hl..tl];
            frag = ff & 0x3fff != 0;
        }
        6 if p.len() >= 40 => {
            let pl = usize::from(u16::from_be_bytes([p[4], p[5]]));
            if 40 + pl > p.len() {
                errs.push("ipv6 payload length".into());
                return;
            }
            let mut nh = p[6];
            let mut b = &p[40..40 + pl];
            let mut fr = false;
            if nh == 44 && b.len() >= 8 {
                fr = true;
                nh = b[0];
                b = &b[8..];
            }
            let _ = write!(
                d,
                " | ipv6 {}>{} hlim={} tc={:#x} len={}{}",
                IpAddr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap()),
                IpAddr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap()),
                p[7],
                (u16::from_be_bytes([p[0], p[1]]) >> 4) as u8,
                pl,
                if fr { " fragment" } else { "" }
            );
            src = p[8..24].to_vec();
            dst = p[24..40].to_vec();
            proto = nh;
            body = b;
            frag = fr;
        }
        v => {
            errs.push(format!("ip version {v}"));
            return;
        }
    }
    if frag {
        return;
    }
    let v6 = src.len() == 16;
    let l4_ok = |acc: u32, b: &[u8]| fold(sum16(acc, b)) == 0xffff;
    match proto {
        6 if body.len() >= 20 => {
            let fl = body[13];
            let _ = write!(
                d,
                " | tcp {}>{} [{}{}{}{}] csum={:#06x}",
                u16::from_be_bytes([body[0], body[1]]),
                u16::from_be_bytes([body[2], body[3]]),
                if fl & 2 != 0 { "S" } else { "" },
                if fl & 16 != 0 { "A" } else { "" },
                if fl & 1 != 0 { "F" } else { "" },
                if fl & 4 != 0 { "R" } else { "" },
                u16::from_be_bytes([body[16], body[17]])
            );
            if !l4_ok(pseudo(&src, &dst, 6, body.len()), body) {
                errs.push("tcp checksum".into());
            }
        }
        17 if body.len() >= 8 => {
            let (sp, dp) = (
                u16::from_be_bytes([body[0], body[1]]),
                u16::from_be_bytes([body[2], body[3]]),
            );
            let c = u16::from_be_bytes([body[6], body[7]]);
            let _ = write!(
                d,
                " | udp {sp}>{dp} len={} csum={c:#06x}",
                u16::from_be_bytes([body[4], body[5]])
            );
            // Zero means "no checksum" for IPv4, and for IPv6 tunnel encapsulation
            // (RFC 6935; GUE with --tun-nocsum, docs/internals/forwarding.md#tunnelling); otherwise it must verify.
            let zero_ok = c == 0 && (!v6 || dp == GUE_PORT);
            if !zero_ok && !l4_ok(pseudo(&src, &dst, 17, body.len()), body) {
                errs.push("udp checksum".into());
            }
            if dp == GUE_PORT && body.len() >= 12 {
                let _ = write!(d, " | gue proto={}", body[9]);
                check_ip(&body[12..], d, errs, depth + 1);
            }
        }
        1 | 58 if body.len() >= 8 => {
            let _ = write!(
                d,
                " | icmp{} type={} code={} rest={:#x}",
                if v6 { "v6" } else { "" },
                body[0],
                body[1],
                u32::from_be_bytes([body[4], body[5], body[6], body[7]])
            );
            let acc = if v6 {
                pseudo(&src, &dst, 58, body.len())
            } else {
                0
            };
            if !l4_ok(acc, body) {
                errs.push("icmp checksum".into());
            }
            let error = if v6 {
                body[0] < 128
            } else {
                matches!(body[0], 3 | 4 | 11)
            };
            if error {
                let q = &body[8..];
                let _ = write!(d, " | quote:");
                if !v6 && q.len() >= 20 {
                    let hl = usize::from(q[0] & 15) * 4;
                    if q.len() >= hl && fold(sum16(0, &q[..hl])) != 0xffff {
                        errs.push("quoted ipv4 header checksum".into());
                    }
                    let _ = write!(
                        d,
                        " {}>{} proto={}",
                        IpAddr::from([q[12], q[13], q[14], q[15]]),
                        IpAddr::from([q[16], q[17], q[18], q[19]]),
                        q[9]
                    );
                    if q.len() >= hl + 4 {
                        let _ = write!(
                            d,
                            " ports {}>{}",
                            u16::from_be_bytes([q[hl], q[hl + 1]]),
                            u16::from_be_bytes([q[hl + 2], q[hl + 3]])
                        );
                    }
                } else if v6 && q.len() >= 40 {
                    let _ = write!(
                        d,
                        " {}>{} nh={}",
                        IpAddr::from(<[u8; 16]>::try_from(&q[8..24]).unwrap()),
                        IpAddr::from(<[u8; 16]>::try_from(&q[24..40]).unwrap()),
                        q[6]
                    );
                    if q.len() >= 44 {
                        let _ = write!(
                            d,
                            " ports {}>{}",
                            u16::from_be_bytes([q[40], q[41]]),
                            u16::from_be_bytes([q[42], q[43]])
                        );
                    }
                }
            }
        }
        132 if body.len() >= 12 => {
            let _ = write!(
                d,
                " | sctp {}>{}",
                u16::from_be_bytes([body[0], body[1]]),
                u16::from_be_bytes([body[2], body[3]])
            );
            let mut z = body.to_vec();
            z[8..12].fill(0);
            if super::build::crc32c(&z).to_le_bytes() != body[8..12] {
                errs.push("sctp crc32c".into());
            }
        }
        4 | 41 => {
            let _ = write!(d, " | ipip");
            check_ip(body, d, errs, depth + 1);
        }
        47 if body.len() >= 4 => {
            let c = body[0] & 0x80 != 0;
            let _ = write!(d, " | gre{}", if c { " C" } else { "" });
            if c && fold(sum16(0, body)) != 0xffff {
                errs.push("gre checksum".into());
            }
            check_ip(&body[if c { 8 } else { 4 }..], d, errs, depth + 1);
        }
        _ => {
            let _ = write!(d, " | proto {proto}");
        }
    }
}

/// The GUE port the cases use (`--tun-port`).
pub const GUE_PORT: u16 = 6080;

pub fn describe(frame: &[u8]) -> String {
    check(frame).0
}

/// Side-by-side hexdump of expected and actual with the first differing byte marked, plus
/// both decodes.
pub fn diff(expected: &[u8], actual: &[u8]) -> String {
    let mut s = String::new();
    let first = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    let _ = writeln!(
        s,
        "  first difference at byte {first:#06x} ({first}); expected {} bytes, got {}",
        expected.len(),
        actual.len()
    );
    s.push_str(&format!(
        "  offset{}actual\n",
        "expected".to_string() + &" ".repeat(42)
    ));
    let rows = expected.len().max(actual.len()).div_ceil(16);
    for r in 0..rows {
        let hex = |b: &[u8]| {
            b.get(r * 16..((r + 1) * 16).min(b.len()))
                .unwrap_or(&[])
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (e, a) = (hex(expected), hex(actual));
        let mark = if e != a { ">>" } else { "  " };
        let _ = writeln!(s, "{mark}{:04x}  {e:<48}  {a}", r * 16);
        if first / 16 == r && e != a {
            let col = 8 + (first % 16) * 3;
            let _ = writeln!(s, "{}^^", " ".repeat(col));
            let col = 8 + 50 + (first % 16) * 3;
            let _ = writeln!(s, "{}^^", " ".repeat(col));
        }
    }
    let _ = writeln!(s, "  expected: {}", describe(expected));
    let _ = writeln!(s, "  actual:   {}", describe(actual));
    s
}
