//! `rvsd -f keepalived.conf`: run what a keepalived configuration describes.
//!
//! * [`plan`] maps the parsed configuration (rvs-config) onto IPVS services and real-server
//!   templates exactly as keepalived's `ipvs_set_srule`/`ipvs_set_drule` do (spec
//!   `keepalived.md` §2.1), and onto the health engine's resolved checker configuration
//!   (rvs-health, §1.5–1.7 inheritance).
//! * [`Keepalived`] runs it: the services are created through [`Daemon::request`] (the path
//!   rvsadm uses, so `rvsadm -Ln`, metrics and the proxy listeners follow), the health engine is
//!   started, and its [`Action`]s are applied through the same path by one task that never stops
//!   draining the channel. Commands run in their own tasks.
//! * [`Keepalived::reload`] (SIGHUP) re-reads the file, keeps the running configuration when the
//!   new one has any error (logged with `file:line:col` and the offending text), and otherwise
//!   applies only the differences (§2.9). A real server the file no longer has is **drained**
//!   (weight 0, deleted when its connections end or after `--drain-time`) instead of being
//!   deleted at once as keepalived does (keepalived issues #1228, #2240).
//! * Around it: `lvs_notify_fifo`/`notify_fifo` lines (§2.7) from a thread of their own,
//!   `ha_suspend` (§2.2 step 5) by polling whether the VIP is local, and counters of what the
//!   checkers did for the metrics endpoint ([`render_metrics`]). Configured features rvsd does
//!   not run (the sync daemon, FIFO reader scripts, …) are named in a warning at start.
//!
//! Section numbers refer to `spec/keepalived.md`; deliberate differences are listed in
//! `docs/keepalived-differences.md` ("Running a configuration").

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_config as kc;
use rvs_control::model as m;
use rvs_control::proto::{ErrorKind, Payload, Request, Response};
use rvs_health as hc;
use rvs_health::Action;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::daemon::Daemon;

/// What a configuration asks of the director: services, real-server templates, checkers.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// IPVS services in file order (one per group member for `virtual_server group`).
    pub services: Vec<m::ServiceSpec>,
    /// Per health-engine virtual server: its services and destination templates.
    pub vs: HashMap<hc::VsKey, VsPlan>,
    /// The health engine's configuration.
    pub checks: Vec<hc::VirtualServerCheck>,
    /// `global_defs { lvs_timeouts }`: tcp, tcpfin, udp (unset ones keep the running value).
    pub timeouts: [Option<Duration>; 3],
    /// `global_defs { lvs_flush }`: flush the table at start-up (§2.2 step 1).
    pub flush: bool,
    /// `ha_suspend` virtual servers and their addresses: their checkers run only while one
    /// of the addresses is configured locally (§2.2 step 5).
    pub suspend_vips: Vec<(hc::VsKey, Vec<IpAddr>)>,
    /// `notify_fifo` / `lvs_notify_fifo` paths.
    pub fifos: Vec<PathBuf>,
}

/// Writes `lvs_notify_fifo` lines from a thread of its own: a FIFO without a reader fills up
/// and blocks its writer, which must never be the daemon. Lines that do not fit in the
/// queue are dropped with a warning.
struct FifoWriter {
    tx: std::sync::mpsc::SyncSender<String>,
}

impl FifoWriter {
    /// Open (creating the FIFO if missing, as keepalived does) every path.
    fn start(paths: &[PathBuf]) -> Option<FifoWriter> {
        let mut files = Vec::new();
        for p in paths {
            if !p.exists() {
                if let Err(e) =
                    rustix::fs::mkfifoat(rustix::fs::CWD, p, rustix::fs::Mode::from_raw_mode(0o600))
                {
                    tracing::error!("notify fifo {}: cannot create: {e}", p.display());
                    continue;
                }
            }
            // Read+write: opening a FIFO this way does not wait for a reader (Linux).
            match std::fs::OpenOptions::new().read(true).append(true).open(p) {
                Ok(f) => files.push((p.clone(), f)),
                Err(e) => tracing::error!("notify fifo {}: {e}", p.display()),
            }
        }
        if files.is_empty() {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(1024);
        std::thread::Builder::new()
            .name("rvsd-notify-fifo".into())
            .spawn(move || {
                use std::io::Write;
                while let Ok(line) = rx.recv() {
                    for (p, f) in &mut files {
                        if let Err(e) = f.write_all(line.as_bytes()) {
                            tracing::warn!("notify fifo {}: {e}", p.display());
                        }
                    }
                }
            })
            .ok()?;
        Some(FifoWriter { tx })
    }

    fn send(&self, line: String) {
        if self.tx.try_send(line).is_err() {
            tracing::warn!("notify fifo: no reader keeps up; line dropped");
        }
    }
}

/// Whether `ip` is configured on this host (binding a socket to it succeeds). keepalived
/// follows netlink address events; rvsd polls this once a second.
pub fn is_local(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// The IPVS side of one `virtual_server` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VsPlan {
    /// The services it stands for (several for a group, §2.1).
    pub services: Vec<m::ServiceKey>,
    /// Real servers: how to install each (the weight is the engine's to set).
    pub dests: HashMap<SocketAddr, m::DestSpec>,
    /// The sorry server, installed with its own method (`sorry_server_lvs_method`).
    pub sorry: Option<(SocketAddr, m::DestSpec)>,
}

impl VsPlan {
    fn template(&self, dest: SocketAddr, sorry: bool) -> Option<&m::DestSpec> {
        if sorry {
            return self.sorry.as_ref().filter(|s| s.0 == dest).map(|s| &s.1);
        }
        self.dests.get(&dest)
    }
}

fn family(f: kc::Family) -> m::Family {
    match f {
        kc::Family::Inet => m::Family::Inet,
        kc::Family::Inet6 => m::Family::Inet6,
    }
}

fn protocol(p: kc::Protocol) -> m::Protocol {
    match p {
        kc::Protocol::Tcp => m::Protocol::Tcp,
        kc::Protocol::Udp => m::Protocol::Udp,
        kc::Protocol::Sctp => m::Protocol::Sctp,
    }
}

fn hprotocol(p: kc::Protocol) -> hc::Protocol {
    match p {
        kc::Protocol::Tcp => hc::Protocol::Tcp,
        kc::Protocol::Udp => hc::Protocol::Udp,
        kc::Protocol::Sctp => hc::Protocol::Sctp,
    }
}

/// The control-protocol key of one service of a virtual server.
pub fn service_key(k: &kc::ServiceKey) -> m::ServiceKey {
    match *k {
        kc::ServiceKey::Addr {
            protocol: p,
            addr,
            port,
        } => m::ServiceKey::Addr {
            protocol: protocol(p),
            addr,
            port,
        },
        kc::ServiceKey::Fwmark { family: f, mark } => m::ServiceKey::Fwmark {
            mark,
            family: family(f),
        },
    }
}

/// The health engine's identity of a virtual server (spec §2.9 reload identity).
pub fn vs_key(vs: &kc::VirtualServer) -> hc::VsKey {
    match &vs.key {
        kc::VsKey::Addr { addr, port } => hc::VsKey::Addr {
            protocol: hprotocol(vs.protocol.unwrap_or(kc::Protocol::Udp)),
            addr: SocketAddr::new(*addr, port.unwrap_or(0)),
        },
        kc::VsKey::Fwmark(mark) => hc::VsKey::Fwmark {
            mark: *mark,
            ipv6: vs.family == Some(kc::Family::Inet6),
        },
        kc::VsKey::Group(name) => hc::VsKey::Group { name: name.clone() },
    }
}

/// The IPVS service attributes of a virtual server (spec §2.1 `ipvs_set_srule`).
///
/// keepalived quirk copied: for the address entries of a `virtual_server_group` the
/// persistence netmask is reset to /32 (/128), so `persistence_granularity` only applies to
/// plain address and fwmark services.
pub fn service_spec(vs: &kc::VirtualServer, key: m::ServiceKey) -> m::ServiceSpec {
    let mut s = m::ServiceSpec::with_defaults(key);
    s.scheduler = vs.scheduler.name().to_string();
    let f = &vs.sched_flags;
    s.flags.one_packet = vs.ops;
    // IP_VS_SVC_F_SCHED1/2 are also sh-fallback/sh-port and mh-fallback/mh-port.
    s.flags.sched1 = f.flag_1 || f.sh_fallback || f.mh_fallback;
    s.flags.sched2 = f.flag_2 || f.sh_port || f.mh_port;
    s.flags.sched3 = f.flag_3;
    if vs.persistence_timeout > 0 {
        s.flags.persistent = true;
        s.timeout = vs.persistence_timeout;
        s.pe_name = vs.persistence_engine.clone();
        let group_addr =
            matches!(vs.key, kc::VsKey::Group(_)) && matches!(s.key, m::ServiceKey::Addr { .. });
        if !group_addr {
            match vs.persistence_granularity {
                Some(kc::Granularity::V4(mask)) if s.key.family() == m::Family::Inet => {
                    s.netmask = u32::from(mask)
                }
                Some(kc::Granularity::V6(len)) if s.key.family() == m::Family::Inet6 => {
                    s.netmask = u32::from(len)
                }
                _ => {}
            }
        }
    }
    s
}

/// A destination template for a forwarding method (spec §2.1 `ipvs_set_drule`).
pub fn dest_spec(addr: IpAddr, port: u16, method: kc::ForwardMethod) -> m::DestSpec {
    let mut d = m::DestSpec::with_defaults(addr, port);
    match method {
        kc::ForwardMethod::Nat => d.method = m::ForwardMethod::Masq,
        kc::ForwardMethod::Dr => d.method = m::ForwardMethod::Route,
        kc::ForwardMethod::Tun { tunnel, csum } => {
            d.method = m::ForwardMethod::Tunnel;
            match tunnel {
                kc::TunnelType::Ipip => d.tun_type = m::TunnelType::Ipip,
                kc::TunnelType::Gre => d.tun_type = m::TunnelType::Gre,
                kc::TunnelType::Gue { port } => {
                    d.tun_type = m::TunnelType::Gue;
                    d.tun_port = port;
                }
            }
            d.tun_csum = match csum {
                kc::TunnelCsum::NoCsum => m::TunnelCsum::NoCsum,
                kc::TunnelCsum::Csum => m::TunnelCsum::Csum,
                kc::TunnelCsum::RemCsum => m::TunnelCsum::RemCsum,
            };
        }
    }
    d
}

fn command(s: &kc::Script, g: &kc::GlobalDefs) -> hc::Command {
    // `script_user` from global_defs (else keepalived_script) is the default user of every
    // script (§1.3).
    let (user, group) = match g.script_identity(s) {
        Some((u, grp)) => (Some(u), grp),
        None => (None, None),
    };
    hc::Command {
        argv: s.argv.clone(),
        user,
        group,
    }
}

fn connect(c: &kc::CheckerCommon, rs: SocketAddr) -> hc::ConnectOpts {
    hc::ConnectOpts {
        connect: SocketAddr::new(
            c.connect_ip.unwrap_or(rs.ip()),
            c.connect_port.unwrap_or(rs.port()),
        ),
        bindto: c.bindto,
        bind_port: c.bind_port,
        bind_if: c.bind_if.clone(),
        fwmark: c.fwmark,
    }
}

fn http(
    h: &kc::HttpCheck,
    c: &kc::CheckerCommon,
    rs: &kc::RealServer,
    vs: &kc::VirtualServer,
    addr: SocketAddr,
    tls: bool,
    at: &kc::Pos,
) -> Result<hc::HttpCheck, String> {
    let mut urls = Vec::new();
    for u in &h.urls {
        if u.regex.is_some() {
            // No regex engine in rvs-health; silently passing would be a lie (issue 5: no stubs).
            return Err(format!(
                "{}: url regex is not supported by rvsd (remove `regex` from the url block)",
                u.pos
            ));
        }
        urls.push(hc::HttpUrl {
            path: u.path.clone(),
            digest: u.digest,
            status_codes: u.status_codes.iter().map(|r| (r.lo, r.hi)).collect(),
            virtualhost: u.virtualhost.clone(),
        });
    }
    if urls.is_empty() {
        return Err(format!("{at}: HTTP/SSL_GET checker has no urls specified"));
    }
    Ok(hc::HttpCheck {
        connect: connect(c, addr),
        protocol: match h.http_protocol {
            kc::HttpProtocol::Http10 => hc::HttpProtocol::Http10,
            kc::HttpProtocol::Http10C => hc::HttpProtocol::Http10Close,
            kc::HttpProtocol::Http11 => hc::HttpProtocol::Http11,
        },
        // virtualhost inheritance: url (kept on the url) → checker → RS → VS (§1.7).
        virtualhost: h
            .virtualhost
            .clone()
            .or_else(|| rs.virtualhost.clone())
            .or_else(|| vs.virtualhost.clone()),
        tls: tls.then_some(hc::TlsOpts {
            enable_sni: h.enable_sni,
        }),
        urls,
        fast_recovery: h.fast_recovery,
    })
}

/// The health checkers of one real server (one checker per SMTP `host {}` block).
fn checkers(
    cfg: &kc::Config,
    vs: &kc::VirtualServer,
    rs: &kc::RealServer,
    addr: SocketAddr,
) -> Result<Vec<hc::CheckerConfig>, String> {
    let mut out = Vec::new();
    for ch in &rs.checkers {
        let t = ch.timing(rs, vs);
        let timing = hc::CheckerTiming {
            delay_loop: t.delay_loop,
            connect_timeout: t.connect_timeout,
            retry: t.retry,
            delay_before_retry: t.delay_before_retry,
            warmup: t.warmup,
        };
        let c = &ch.common;
        let kinds = match &ch.kind {
            kc::CheckerKind::Tcp => vec![hc::CheckKind::Tcp(connect(c, addr))],
            kc::CheckerKind::Http(h) => vec![hc::CheckKind::Http(http(
                h, c, rs, vs, addr, false, &ch.pos,
            )?)],
            kc::CheckerKind::Ssl(h) => vec![hc::CheckKind::Http(http(
                h, c, rs, vs, addr, true, &ch.pos,
            )?)],
            kc::CheckerKind::Misc(mc) => vec![hc::CheckKind::Misc(hc::MiscCheck {
                command: command(&mc.path, &cfg.global),
                // misc_timeout defaults to the VS delay_loop (§2.5).
                timeout: mc.timeout.unwrap_or(vs.delay_loop),
                dynamic: mc.dynamic,
            })],
            kc::CheckerKind::Smtp(s) => {
                let hosts: Vec<hc::ConnectOpts> = if s.hosts.is_empty() {
                    vec![connect(c, addr)]
                } else {
                    // Legacy `host {}` blocks: keepalived checks each; one checker each here.
                    s.hosts
                        .iter()
                        .map(|h| {
                            let mut merged = h.clone();
                            merged.bindto = h.bindto.or(c.bindto);
                            merged.bind_if = h.bind_if.clone().or_else(|| c.bind_if.clone());
                            merged.fwmark = h.fwmark.or(c.fwmark);
                            connect(&merged, addr)
                        })
                        .collect()
                };
                hosts
                    .into_iter()
                    .map(|connect| {
                        hc::CheckKind::Smtp(hc::SmtpCheck {
                            connect,
                            helo_name: s.helo_name.clone(),
                        })
                    })
                    .collect()
            }
            kc::CheckerKind::Dns(d) => vec![hc::CheckKind::Dns(hc::DnsCheck {
                connect: connect(c, addr),
                qtype: match d.qtype {
                    kc::DnsType::A => hc::DnsType::A,
                    kc::DnsType::Ns => hc::DnsType::Ns,
                    kc::DnsType::Cname => hc::DnsType::Cname,
                    kc::DnsType::Soa => hc::DnsType::Soa,
                    kc::DnsType::Mx => hc::DnsType::Mx,
                    kc::DnsType::Txt => hc::DnsType::Txt,
                    kc::DnsType::Aaaa => hc::DnsType::Aaaa,
                },
                name: d.name.clone(),
            })],
            kc::CheckerKind::Udp(u) => vec![hc::CheckKind::Udp(hc::UdpCheck {
                connect: connect(c, addr),
                payload: u.payload.clone(),
                require_reply: u.require_reply.clone(),
                min_reply_length: u.min_reply_length.unwrap_or(0) as usize,
                max_reply_length: u.max_reply_length.map(|n| n as usize),
            })],
            kc::CheckerKind::Ping => vec![hc::CheckKind::Ping(hc::PingCheck {
                connect: connect(c, addr),
            })],
        };
        for kind in kinds {
            out.push(hc::CheckerConfig {
                kind,
                timing,
                alpha: c.alpha.unwrap_or(rs.alpha),
                log_all_failures: c
                    .log_all_failures
                    .unwrap_or(cfg.global.checker_log_all_failures),
            });
        }
    }
    Ok(out)
}

/// Map a configuration onto IPVS services, destination templates and health checks.
///
/// VRRP instances are run by `rvsd::vrrp` from the same file. `notes` receives one line per
/// configured feature rvsd accepts but does not act on (sync daemon, notify FIFOs, `ha_suspend`, …) so the operator is told, never left guessing.
/// Errors name what cannot run.
pub fn plan(cfg: &kc::Config, notes: &mut Vec<String>) -> Result<Plan, String> {
    let mut p = Plan {
        flush: cfg.global.lvs_flush,
        timeouts: [
            cfg.global.lvs_timeouts.tcp,
            cfg.global.lvs_timeouts.tcpfin,
            cfg.global.lvs_timeouts.udp,
        ],
        ..Plan::default()
    };
    if let Some(s) = &cfg.global.lvs_sync_daemon {
        notes.push(format!(
            "{}: lvs_sync_daemon is not supported by rvsd (no connection synchronisation)",
            s.pos
        ));
    }
    // keepalived writes the LVS lines to both the general and the LVS FIFO (§2.7).
    for s in [&cfg.global.notify_fifo, &cfg.global.lvs_notify_fifo]
        .into_iter()
        .flatten()
    {
        if let Some(path) = s.argv.first() {
            p.fifos.push(PathBuf::from(path));
        }
    }
    if cfg.ssl.is_some() {
        notes.push(
            "the SSL { } block (client certificate for SSL_GET) is not used by rvsd: SSL_GET \
             connects without a client certificate"
                .to_string(),
        );
    }
    for u in &cfg.unmodelled {
        notes.push(format!(
            "{}: `{}` ({}) is recognised but not acted on by rvsd",
            u.pos,
            u.words.join(" "),
            u.context
        ));
    }
    let mut seen: HashMap<m::ServiceKey, String> = HashMap::new();
    for vs in &cfg.virtual_servers {
        let name = kc::vs_name(&vs.key, vs.protocol);
        let key = vs_key(vs);
        let mut vp = VsPlan::default();
        for sk in vs.services(&cfg.virtual_server_groups) {
            let k = service_key(&sk);
            if let Some(other) = seen.insert(k.clone(), name.clone()) {
                return Err(format!(
                    "{}: virtual server {name} and {other} both describe the IPVS service {k}",
                    vs.pos
                ));
            }
            p.services.push(service_spec(vs, k.clone()));
            vp.services.push(k);
        }
        let mut rss = Vec::new();
        for rs in &vs.real_servers {
            let addr = SocketAddr::new(rs.addr, rs.port.unwrap_or(0));
            let mut d = dest_spec(rs.addr, addr.port(), rs.method);
            d.weight = rs.weight;
            d.u_threshold = rs.uthreshold;
            d.l_threshold = rs.lthreshold;
            vp.dests.insert(addr, d);
            rss.push(hc::RealServerCheck {
                addr,
                weight: rs.weight,
                inhibit_on_failure: rs.inhibit_on_failure,
                notify_up: rs.notify_up.as_ref().map(|s| command(s, &cfg.global)),
                notify_down: rs.notify_down.as_ref().map(|s| command(s, &cfg.global)),
                checkers: checkers(cfg, vs, rs, addr)
                    .map_err(|e| format!("{e} (real server {addr} of {name})"))?,
            });
        }
        let sorry = vs.sorry_server.as_ref().map(|ss| {
            let addr = SocketAddr::new(ss.addr, ss.port.unwrap_or(0));
            // The sorry server has its own method (sorry_server_lvs_method, default the VS
            // method) and weight 1 (§2.6).
            let d = dest_spec(ss.addr, addr.port(), ss.method.unwrap_or(vs.method));
            vp.sorry = Some((addr, d));
            hc::SorryServer {
                addr,
                inhibit: ss.inhibit,
            }
        });
        let mut suspended = false;
        if vs.ha_suspend {
            // fwmark services have no address (the parser clears ha_suspend there, §1.5).
            let ips: Vec<IpAddr> = vp
                .services
                .iter()
                .filter_map(|k| match k {
                    m::ServiceKey::Addr { addr, .. } => Some(*addr),
                    m::ServiceKey::Fwmark { .. } => None,
                })
                .collect();
            if !ips.is_empty() {
                suspended = !ips.iter().any(|ip| is_local(*ip));
                p.suspend_vips.push((key.clone(), ips));
            }
        }
        p.checks.push(hc::VirtualServerCheck {
            key: key.clone(),
            quorum: vs.quorum,
            hysteresis: vs.hysteresis,
            quorum_up: vs.quorum_up.as_ref().map(|s| command(s, &cfg.global)),
            quorum_down: vs.quorum_down.as_ref().map(|s| command(s, &cfg.global)),
            sorry_server: sorry,
            omega: vs.omega,
            suspended,
            real_servers: rss,
        });
        p.vs.insert(key, vp);
    }
    hc::validate(&p.checks).map_err(|e| e.to_string())?;
    Ok(p)
}

/// What the health engine did, counted for the metrics endpoint
/// (`rvs_health_actions_total{action=…}`, `rvs_health_transitions_total{kind=…,to=…}`).
/// Process-wide: one daemon runs one configuration.
static COUNTS: [AtomicU64; 11] = [const { AtomicU64::new(0) }; 11];
const ACTION_LABELS: [&str; 7] = [
    "add",
    "set_weight",
    "remove",
    "drain",
    "drain_deleted",
    "run_command",
    "error",
];
const C_ADD: usize = 0;
const C_WEIGHT: usize = 1;
const C_REMOVE: usize = 2;
const C_DRAIN: usize = 3;
const C_DRAINED: usize = 4;
const C_COMMAND: usize = 5;
const C_ERROR: usize = 6;
const C_RS_UP: usize = 7;
const C_RS_DOWN: usize = 8;
const C_Q_UP: usize = 9;
const C_Q_DOWN: usize = 10;

fn count(i: usize) {
    COUNTS[i].fetch_add(1, Ordering::Relaxed);
}

/// Append the health counters in Prometheus text format (called by [`crate::metrics`]).
pub fn render_metrics(out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP rvs_health_actions_total Table changes and commands requested by the health \
         checkers (rvsd -f), by action.\n# TYPE rvs_health_actions_total counter"
    );
    for (i, l) in ACTION_LABELS.iter().enumerate() {
        let v = COUNTS[i].load(Ordering::Relaxed);
        let _ = writeln!(out, "rvs_health_actions_total{{action=\"{l}\"}} {v}");
    }
    let _ = writeln!(
        out,
        "# HELP rvs_health_transitions_total Real server and quorum state changes (rvsd -f).\n\
         # TYPE rvs_health_transitions_total counter"
    );
    for (i, kind, to) in [
        (C_RS_UP, "real_server", "up"),
        (C_RS_DOWN, "real_server", "down"),
        (C_Q_UP, "quorum", "up"),
        (C_Q_DOWN, "quorum", "down"),
    ] {
        let v = COUNTS[i].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "rvs_health_transitions_total{{kind=\"{kind}\",to=\"{to}\"}} {v}"
        );
    }
}

/// A real server being drained after a reload removed it.
#[derive(Debug, Clone)]
struct Drain {
    service: m::ServiceKey,
    addr: IpAddr,
    port: u16,
    deadline: Instant,
    since: Instant,
}

/// State shared by the reload path, the action applier and the drainer.
#[derive(Default)]
struct Shared {
    /// The running plan.
    cur: Arc<Plan>,
    /// The plan before the last reload, to resolve actions about what it removed.
    prev: Option<Arc<Plan>>,
    /// Destinations being drained.
    drains: Vec<Drain>,
    /// `lvs_notify_fifo` writer (set at start-up).
    fifo: Option<Arc<FifoWriter>>,
}

impl Shared {
    /// Services and destination template for an action (new plan first, then the old one).
    fn resolve(
        &self,
        vs: &hc::VsKey,
        dest: SocketAddr,
        sorry: bool,
    ) -> Option<(Vec<m::ServiceKey>, m::DestSpec)> {
        [Some(&self.cur), self.prev.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|p| p.vs.get(vs))
            .find_map(|v| {
                v.template(dest, sorry)
                    .map(|t| (v.services.clone(), t.clone()))
            })
    }

    fn services(&self, vs: &hc::VsKey) -> Vec<m::ServiceKey> {
        [Some(&self.cur), self.prev.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|p| p.vs.get(vs).map(|v| v.services.clone()))
            .unwrap_or_default()
    }
}

fn is_kind(r: &Response, kinds: &[ErrorKind]) -> bool {
    matches!(&r.result, Err(e) if kinds.contains(&e.kind))
}

fn describe(r: &Response) -> String {
    match &r.result {
        Ok(_) => "ok".to_string(),
        Err(e) => e
            .detail
            .clone()
            .unwrap_or_else(|| e.kind.strerror().to_string()),
    }
}

/// Send one request through the rvsadm path. Its warnings (entries not served by the running
/// data planes, listeners that could not be opened) are already logged by the daemon.
async fn send(daemon: &Arc<Daemon>, req: Request) -> Response {
    daemon.request(req).await
}

/// The current state of one destination in the table.
fn current_dest(daemon: &Daemon, svc: &m::ServiceKey, addr: SocketAddr) -> Option<m::DestEntry> {
    let st = daemon.lock();
    crate::listing::service(&st, &crate::convert::key_to_core(svc))?
        .dests
        .into_iter()
        .find(|d| d.spec.addr == addr.ip() && d.spec.port == addr.port())
}

/// Add with keepalived's tolerance: "exists" means edit to the wanted spec (§2.1).
async fn add_or_edit(daemon: &Arc<Daemon>, svc: &m::ServiceKey, dest: m::DestSpec) -> Response {
    let r = send(
        daemon,
        Request::AddDest {
            service: svc.clone(),
            dest: dest.clone(),
        },
    )
    .await;
    if is_kind(&r, &[ErrorKind::Eexist]) {
        return send(
            daemon,
            Request::EditDest {
                service: svc.clone(),
                dest,
            },
        )
        .await;
    }
    r
}

/// Apply one engine action through the rvsadm path (spec §2.1 error tolerance).
async fn apply(daemon: &Arc<Daemon>, shared: &Mutex<Shared>, drain_time: Duration, a: Action) {
    let lock = || shared.lock().unwrap_or_else(|p| p.into_inner());
    match &a {
        Action::AddDest {
            vs,
            dest,
            weight,
            sorry,
        }
        | Action::SetWeight {
            vs,
            dest,
            weight,
            sorry,
        } => {
            let (vs, dest, weight, sorry) = (vs, *dest, *weight, *sorry);
            count(if matches!(a, Action::AddDest { .. }) {
                C_ADD
            } else {
                C_WEIGHT
            });
            let Some((svcs, mut spec)) = lock().resolve(vs, dest, sorry) else {
                count(C_ERROR);
                tracing::error!("health: no configuration for {dest} of VS {vs}; ignored");
                return;
            };
            // keepalived clamps the effective weight to 0..=INT_MAX (§2 terms).
            spec.weight = weight.min(i32::MAX as u32);
            for svc in svcs {
                lock().drains.retain(|d| {
                    !(d.service == svc && d.addr == dest.ip() && d.port == dest.port())
                });
                let r = add_or_edit(daemon, &svc, spec.clone()).await;
                match &r.result {
                    Ok(_) => tracing::info!(
                        "installed {}{dest} in {svc} with weight {}",
                        if sorry { "sorry server " } else { "" },
                        spec.weight
                    ),
                    Err(_) => {
                        tracing::error!("IPVS cmd add/edit {svc} -> {dest} error: {}", describe(&r))
                    }
                }
            }
        }
        Action::RemoveDest { vs, dest, sorry } => {
            let (dest, sorry) = (*dest, *sorry);
            count(C_REMOVE);
            let svcs = lock().services(vs);
            for svc in svcs {
                let r = send(
                    daemon,
                    Request::DelDest {
                        service: svc.clone(),
                        addr: dest.ip(),
                        port: dest.port(),
                    },
                )
                .await;
                if r.result.is_ok() {
                    tracing::info!(
                        "removed {}{dest} from {svc}",
                        if sorry { "sorry server " } else { "" }
                    );
                } else if !is_kind(&r, &[ErrorKind::Enoent, ErrorKind::Esrch]) {
                    count(C_ERROR);
                    tracing::error!("IPVS cmd del {svc} -> {dest} error: {}", describe(&r));
                }
            }
        }
        Action::DrainDest { vs, dest, .. } => {
            let dest = *dest;
            count(C_DRAIN);
            let svcs = lock().services(vs);
            for svc in svcs {
                let Some(cur) = current_dest(daemon, &svc, dest) else {
                    continue;
                };
                let mut spec = cur.spec.clone();
                spec.weight = 0;
                let r = send(
                    daemon,
                    Request::EditDest {
                        service: svc.clone(),
                        dest: spec,
                    },
                )
                .await;
                if r.result.is_err() {
                    tracing::debug!("drain {svc} -> {dest}: {}", describe(&r));
                    continue;
                }
                tracing::info!(
                    "draining {dest} of {svc}: weight 0, {} active connection(s); deleted when \
                     they end or in {} s",
                    cur.active_conns,
                    drain_time.as_secs()
                );
                let now = Instant::now();
                let mut sh = lock();
                sh.drains.retain(|d| {
                    !(d.service == svc && d.addr == dest.ip() && d.port == dest.port())
                });
                sh.drains.push(Drain {
                    service: svc,
                    addr: dest.ip(),
                    port: dest.port(),
                    deadline: now + drain_time,
                    since: now,
                });
            }
        }
        Action::RunCommand(cmd) => {
            count(C_COMMAND);
            let cmd = cmd.clone();
            // Asynchronously, like keepalived (§2.7); the result is only logged.
            tokio::spawn(async move {
                match hc::run_command(&cmd).await {
                    Ok(st) if st.success() => tracing::debug!("{:?}: {st}", cmd.argv),
                    Ok(st) => tracing::warn!("notify command {:?} {st}", cmd.argv),
                    Err(e) => tracing::error!("notify command {:?}: {e}", cmd.argv),
                }
            });
        }
        Action::Notify(n) => {
            count(match n {
                hc::Notification::RealServer { up: true, .. } => C_RS_UP,
                hc::Notification::RealServer { up: false, .. } => C_RS_DOWN,
                hc::Notification::Quorum { up: true, .. } => C_Q_UP,
                hc::Notification::Quorum { up: false, .. } => C_Q_DOWN,
            });
            tracing::info!("{n}");
            let fifo = lock().fifo.clone();
            if let Some(f) = fifo {
                f.send(format!("{}\n", n.fifo_line()));
            }
        }
    }
}

/// Delete drained destinations whose connections ended or whose time is up.
async fn drain_tick(daemon: &Arc<Daemon>, shared: &Mutex<Shared>) {
    let due: Vec<(Drain, String)> = {
        let drains = shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drains
            .clone();
        let now = Instant::now();
        let mut due = Vec::new();
        let mut gone = Vec::new();
        for d in drains {
            match current_dest(daemon, &d.service, SocketAddr::new(d.addr, d.port)) {
                // Deleted by someone else, or given weight again (re-added): not ours any more.
                None => gone.push(d),
                Some(e) if e.spec.weight != 0 => gone.push(d),
                Some(e) => {
                    // TCP: connections that are not established any more (FIN/TIME_WAIT
                    // entries) no longer carry users. UDP/SCTP have only inactive entries.
                    let tcp = matches!(
                        d.service,
                        m::ServiceKey::Addr {
                            protocol: m::Protocol::Tcp,
                            ..
                        }
                    );
                    let open = if tcp {
                        e.active_conns
                    } else {
                        e.active_conns + e.inactive_conns
                    };
                    if open == 0 {
                        due.push((d, "its connections ended".to_string()));
                    } else if now >= d.deadline {
                        due.push((
                            d,
                            format!("the drain time is up with {open} connection(s) open"),
                        ));
                    }
                }
            }
        }
        let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
        sh.drains.retain(|x| {
            !gone
                .iter()
                .chain(due.iter().map(|(d, _)| d))
                .any(|d| d.service == x.service && d.addr == x.addr && d.port == x.port)
        });
        due
    };
    for (d, why) in due {
        let r = send(
            daemon,
            Request::DelDest {
                service: d.service.clone(),
                addr: d.addr,
                port: d.port,
            },
        )
        .await;
        if r.result.is_ok() {
            count(C_DRAINED);
            tracing::info!(
                "drained {} of {}: deleted after {:.1} s ({why})",
                SocketAddr::new(d.addr, d.port),
                d.service,
                d.since.elapsed().as_secs_f64()
            );
        }
    }
}

/// A running keepalived configuration.
pub struct Keepalived {
    daemon: Arc<Daemon>,
    path: PathBuf,
    opts: kc::CheckOptions,
    shared: Arc<Mutex<Shared>>,
    engine: Arc<tokio::sync::Mutex<Option<hc::Handle>>>,
    applier: JoinHandle<()>,
    drainer: JoinHandle<()>,
    suspender: JoinHandle<()>,
}

/// `ha_suspend`: once a second, suspend or resume the checkers of virtual servers whose
/// address disappeared from or appeared on this host (§2.2 step 5).
async fn watch_suspend(
    shared: Arc<Mutex<Shared>>,
    engine: Arc<tokio::sync::Mutex<Option<hc::Handle>>>,
) {
    let mut known: HashMap<hc::VsKey, bool> = HashMap::new();
    let mut iv = tokio::time::interval(Duration::from_secs(1));
    loop {
        iv.tick().await;
        let vips = {
            let sh = shared.lock().unwrap_or_else(|p| p.into_inner());
            sh.cur.suspend_vips.clone()
        };
        known.retain(|k, _| vips.iter().any(|(v, _)| v == k));
        for (key, ips) in vips {
            let local = ips.iter().any(|ip| is_local(*ip));
            // First sight (start, or ha_suspend added by a reload): tell the engine anyway;
            // it is idempotent, and a surviving VS keeps its run-time state over a reload.
            let was = known.get(&key).copied();
            if was == Some(local) {
                continue;
            }
            let guard = engine.lock().await;
            let Some(h) = guard.as_ref() else { return };
            match h.set_suspended(key.clone(), !local).await {
                Ok(()) => {
                    if was.is_some() || !local {
                        tracing::info!(
                            "ha_suspend: address of VS {key} {}: checkers {}",
                            if local {
                                "is configured"
                            } else {
                                "is not configured"
                            },
                            if local { "running" } else { "suspended" }
                        );
                    }
                    known.insert(key, local);
                }
                Err(e) => tracing::warn!("ha_suspend: VS {key}: {e}"),
            }
        }
    }
}

fn log_notes(notes: &[String]) {
    for n in notes {
        tracing::warn!("{n}");
    }
}

/// Apply `lvs_timeouts` (only the ones set; the others keep their running value).
async fn apply_timeouts(daemon: &Arc<Daemon>, t: [Option<Duration>; 3]) {
    if t.iter().all(Option::is_none) {
        return;
    }
    let cur = match send(daemon, Request::GetTimeouts).await.result {
        Ok(Payload::Timeouts(c)) => c,
        _ => return,
    };
    let secs = |d: Option<Duration>, dflt: u32| {
        d.map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
            .unwrap_or(dflt)
    };
    let want = m::Timeouts {
        tcp: secs(t[0], cur.tcp),
        tcp_fin: secs(t[1], cur.tcp_fin),
        udp: secs(t[2], cur.udp),
    };
    let r = send(daemon, Request::SetTimeouts(want)).await;
    if r.result.is_err() {
        tracing::error!("lvs_timeouts: {}", describe(&r));
    }
}

/// Create a service, or bring an existing one to `spec`.
async fn put_service(daemon: &Arc<Daemon>, spec: &m::ServiceSpec) -> Result<(), String> {
    let r = send(daemon, Request::AddService(spec.clone())).await;
    let r = if is_kind(&r, &[ErrorKind::Eexist]) {
        send(daemon, Request::EditService(spec.clone())).await
    } else {
        r
    };
    match &r.result {
        Ok(_) => Ok(()),
        Err(_) => Err(format!("service {}: {}", spec.key, describe(&r))),
    }
}

impl Keepalived {
    /// Load `path`, create its services and start checking (spec §2.2). Errors (a file that
    /// cannot run, a feature rvsd cannot run) are returned with the file position.
    pub async fn start(
        daemon: Arc<Daemon>,
        path: &Path,
        opts: kc::CheckOptions,
        drain_time: Duration,
    ) -> Result<Keepalived, String> {
        let report = kc::check(path, &opts);
        for d in &report.diagnostics {
            // Recoverable problems: keepalived logs them and runs (§2.10); so does rvsd.
            if d.class.is_warning() || report.can_run() {
                tracing::warn!("{d}");
            } else {
                tracing::error!("{d}");
            }
        }
        let cfg = report
            .into_result(&path.display().to_string())
            .map_err(|e| e.to_string())?;
        let mut notes = Vec::new();
        let plan = plan(&cfg, &mut notes).map_err(|e| format!("{}: {e}", path.display()))?;
        log_notes(&notes);
        if plan.flush {
            let _ = send(&daemon, Request::Flush).await;
        }
        apply_timeouts(&daemon, plan.timeouts).await;
        for s in &plan.services {
            put_service(&daemon, s).await?;
        }
        let checks = plan.checks.clone();
        let fifos = plan.fifos.clone();
        let shared = Arc::new(Mutex::new(Shared {
            cur: Arc::new(plan),
            prev: None,
            drains: Vec::new(),
            fifo: FifoWriter::start(&fifos).map(Arc::new),
        }));
        let (tx, mut rx) = mpsc::channel::<Action>(1024);
        let applier = {
            let daemon = daemon.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                while let Some(a) = rx.recv().await {
                    apply(&daemon, &shared, drain_time, a).await;
                }
            })
        };
        let drainer = {
            let daemon = daemon.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut iv = tokio::time::interval(Duration::from_millis(250));
                loop {
                    iv.tick().await;
                    drain_tick(&daemon, &shared).await;
                }
            })
        };
        let engine = hc::HealthEngine::start(checks, tx).map_err(|e| e.to_string())?;
        let engine = Arc::new(tokio::sync::Mutex::new(Some(engine)));
        let suspender = tokio::spawn(watch_suspend(shared.clone(), engine.clone()));
        tracing::info!(
            "{}: {} virtual server(s), {} service(s); health checking started",
            path.display(),
            cfg.virtual_servers.len(),
            shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .cur
                .services
                .len()
        );
        Ok(Keepalived {
            daemon,
            path: path.to_path_buf(),
            opts,
            shared,
            engine,
            applier,
            drainer,
            suspender,
        })
    }

    /// SIGHUP: re-read the file and apply only the differences (spec §2.9), or keep the
    /// running configuration and say why. Returns the outcome as one line (also logged).
    pub async fn reload(&mut self) -> Result<String, String> {
        let r = self.try_reload().await;
        match &r {
            Ok(s) => tracing::info!("SIGHUP: {s}"),
            Err(e) => tracing::error!("SIGHUP: keeping the running configuration: {e}"),
        }
        r
    }

    async fn try_reload(&mut self) -> Result<String, String> {
        let path = self.path.display().to_string();
        let report = kc::check(&self.path, &self.opts);
        // Stricter than keepalived, which applies a partially parsed file (§2.9): any error
        // keeps the running configuration, like keepalived's reload_check_config but without
        // refusing warnings. The script-security class (scripts that would run as root
        // without enable_script_security) is reported but, as in keepalived, not refused:
        // the file ran the same way at start-up.
        let errors: Vec<&kc::Diagnostic> = report
            .diagnostics
            .iter()
            .filter(|d| !d.class.is_warning() && d.class != kc::ErrorClass::SecurityError)
            .collect();
        if let Some(first) = errors.first() {
            for d in &errors {
                tracing::error!("{d}");
            }
            return Err(format!(
                "{path} has {} error(s), first: {}",
                errors.len(),
                first.to_string().replace('\n', " ")
            ));
        }
        for d in &report.diagnostics {
            tracing::warn!("{d}");
        }
        let mut notes = Vec::new();
        let new = plan(&report.config, &mut notes).map_err(|e| format!("{path}: {e}"))?;
        log_notes(&notes);
        let old = self
            .shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cur
            .clone();
        let d = &self.daemon;

        // Services: add new ones (a new member of a surviving group gets the group's current
        // real servers, §2.9), edit changed ones.
        let old_specs: HashMap<&m::ServiceKey, &m::ServiceSpec> =
            old.services.iter().map(|s| (&s.key, s)).collect();
        let (mut added, mut edited) = (0, 0);
        for s in &new.services {
            match old_specs.get(&s.key) {
                Some(o) if *o == s => {}
                Some(_) => {
                    put_service(d, s).await?;
                    edited += 1;
                }
                None => {
                    put_service(d, s).await?;
                    added += 1;
                    let sibling = new
                        .vs
                        .iter()
                        .find(|(_, v)| v.services.contains(&s.key))
                        .and_then(|(k, _)| old.vs.get(k))
                        .and_then(|ov| ov.services.first().cloned());
                    if let Some(sib) = sibling {
                        let entry = {
                            let st = d.lock();
                            crate::listing::service(&st, &crate::convert::key_to_core(&sib))
                        };
                        for de in entry.map(|e| e.dests).unwrap_or_default() {
                            add_or_edit(d, &s.key, de.spec).await;
                        }
                    }
                }
            }
        }
        let checks = new.checks.clone();
        let new = Arc::new(new);
        {
            let mut sh = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            sh.prev = Some(old.clone());
            sh.cur = new.clone();
        }
        if let Some(e) = self.engine.lock().await.as_ref() {
            e.reload(checks)
                .await
                .map_err(|e| format!("health engine refused the new configuration: {e}"))?;
        }
        // A surviving real server whose method or thresholds changed is edited in place,
        // keeping its current weight (the engine owns weights).
        for (k, nv) in &new.vs {
            let Some(ov) = old.vs.get(k) else { continue };
            for (addr, nt) in &nv.dests {
                let Some(ot) = ov.dests.get(addr) else {
                    continue;
                };
                let mut a = ot.clone();
                let mut b = nt.clone();
                a.weight = 0;
                b.weight = 0;
                if a == b {
                    continue;
                }
                for svc in &nv.services {
                    if let Some(cur) = current_dest(d, svc, *addr) {
                        let mut spec = nt.clone();
                        spec.weight = cur.spec.weight;
                        add_or_edit(d, svc, spec).await;
                    }
                }
            }
        }
        // Virtual servers the file no longer has are removed entirely, as keepalived does.
        let mut removed = 0;
        for s in &old.services {
            if !new.services.iter().any(|n| n.key == s.key) {
                let r = send(d, Request::DelService(s.key.clone())).await;
                if r.result.is_ok() {
                    removed += 1;
                }
            }
        }
        apply_timeouts(d, new.timeouts).await;
        Ok(format!(
            "{path} reloaded: {added} service(s) added, {edited} changed, {removed} removed"
        ))
    }

    /// SIGTERM: stop checking and apply keepalived's shutdown removals and `omega` notifiers
    /// (spec §2.8), bounded in time; the socket proxy then drains open connections.
    pub async fn shutdown(mut self) {
        self.suspender.abort();
        let engine = self.engine.lock().await.take();
        if let Some(e) = engine {
            if tokio::time::timeout(Duration::from_secs(3), e.shutdown())
                .await
                .is_err()
            {
                tracing::warn!("health engine did not stop within 3 s");
            }
        }
        // The engine dropped its sender: the applier finishes what is queued and ends.
        let _ = tokio::time::timeout(Duration::from_secs(3), &mut self.applier).await;
        self.applier.abort();
        self.drainer.abort();
    }

    /// The health engine's view, for status output.
    pub async fn status(&self) -> Option<Vec<hc::VsStatus>> {
        self.engine.lock().await.as_ref()?.status().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(text: &str) -> Plan {
        let r = kc::check_str("k.conf", text, &kc::CheckOptions::default());
        assert!(r.can_run(), "{}", r.render());
        let mut notes = Vec::new();
        plan(&r.config, &mut notes).unwrap()
    }

    #[test]
    fn nat_service_and_dests() {
        let p = plan_of(
            "virtual_server 10.0.0.1 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n \
             persistence_timeout 600\n persistence_granularity 255.255.255.0\n \
             real_server 192.168.1.1 8080 {\n  weight 3\n  uthreshold 10\n  TCP_CHECK {\n  }\n }\n}\n",
        );
        let s = &p.services[0];
        assert_eq!(s.scheduler, "rr");
        assert!(s.flags.persistent);
        assert_eq!(s.timeout, 600);
        assert_eq!(s.netmask, 0xFFFF_FF00);
        let vp = p.vs.values().next().unwrap();
        let d = &vp.dests[&"192.168.1.1:8080".parse().unwrap()];
        assert_eq!(d.method, m::ForwardMethod::Masq);
        assert_eq!(d.port, 8080);
        assert_eq!(d.weight, 3);
        assert_eq!(d.u_threshold, 10);
        assert_eq!(p.checks[0].real_servers[0].checkers.len(), 1);
    }

    #[test]
    fn dr_port_forced_and_sorry_method() {
        let p = plan_of(
            "virtual_server 10.0.0.1 80 {\n lb_algo wlc\n lb_kind DR\n protocol TCP\n \
             sorry_server 192.168.9.9 8080\n sorry_server_lvs_method NAT\n \
             real_server 192.168.1.1 80 {\n }\n}\n",
        );
        let vp = p.vs.values().next().unwrap();
        let d = vp.dests.values().next().unwrap();
        assert_eq!(d.method, m::ForwardMethod::Route);
        let (sa, sd) = vp.sorry.as_ref().unwrap();
        assert_eq!(*sa, "192.168.9.9:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(sd.method, m::ForwardMethod::Masq);
    }

    #[test]
    fn group_expands_and_ignores_granularity() {
        let p = plan_of(
            "virtual_server_group G {\n 10.0.0.1-3 80\n fwmark 7\n}\n\
             virtual_server group G {\n lb_algo sh\n sh-port\n lb_kind TUN type gue port 6080\n \
             protocol TCP\n persistence_timeout 60\n persistence_granularity 255.255.0.0\n \
             real_server 192.168.1.1 80 {\n }\n}\n",
        );
        assert_eq!(p.services.len(), 4);
        assert!(p.services[0].flags.sched2);
        // keepalived quirk: group address entries keep /32.
        assert_eq!(p.services[0].netmask, 0xFFFF_FFFF);
        assert_eq!(p.services[3].netmask, 0xFFFF_0000);
        let vp = &p.vs[&hc::VsKey::Group { name: "G".into() }];
        let d = vp.dests.values().next().unwrap();
        assert_eq!(d.method, m::ForwardMethod::Tunnel);
        assert_eq!(d.tun_type, m::TunnelType::Gue);
        assert_eq!(d.tun_port, 6080);
    }

    #[test]
    fn checker_inheritance() {
        let p = plan_of(
            "global_defs {\n script_user nobody\n}\n\
             virtual_server 10.0.0.1 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n \
             delay_loop 7\n virtualhost vs.example\n alpha\n \
             real_server 192.168.1.1 8080 {\n  connect_timeout 2\n  \
             HTTP_GET {\n   url {\n    path /a\n    status_code 200-204\n   }\n  }\n  \
             SSL_GET {\n   enable_sni\n   virtualhost ssl.example\n   url {\n    path /b\n   }\n  }\n  \
             MISC_CHECK {\n   misc_path \"/bin/true x\"\n  }\n  \
             TCP_CHECK {\n   connect_ip 192.168.1.9\n   connect_port 9000\n   retry 0\n  }\n }\n}\n",
        );
        let cs = &p.checks[0].real_servers[0].checkers;
        assert_eq!(cs.len(), 4);
        let rs: SocketAddr = "192.168.1.1:8080".parse().unwrap();
        match &cs[0].kind {
            hc::CheckKind::Http(h) => {
                assert!(h.tls.is_none());
                assert_eq!(h.connect.connect, rs);
                assert_eq!(h.virtualhost.as_deref(), Some("vs.example"));
                assert_eq!(h.urls[0].status_codes, vec![(200, 204)]);
            }
            k => panic!("{k:?}"),
        }
        // HTTP defaults: delay_before_retry 3 s; connect_timeout from the real server.
        assert_eq!(cs[0].timing.delay_loop, Duration::from_secs(7));
        assert_eq!(cs[0].timing.connect_timeout, Duration::from_secs(2));
        assert_eq!(cs[0].timing.delay_before_retry, Duration::from_secs(3));
        assert!(cs[0].alpha, "alpha inherited from the virtual server");
        match &cs[1].kind {
            hc::CheckKind::Http(h) => {
                assert_eq!(h.tls, Some(hc::TlsOpts { enable_sni: true }));
                assert_eq!(h.virtualhost.as_deref(), Some("ssl.example"));
            }
            k => panic!("{k:?}"),
        }
        match &cs[2].kind {
            hc::CheckKind::Misc(m) => {
                assert_eq!(m.command.argv, vec!["/bin/true", "x"]);
                assert_eq!(m.command.user.as_deref(), Some("nobody"));
                // misc_timeout defaults to the VS delay_loop; MISC retry defaults to 0.
                assert_eq!(m.timeout, Duration::from_secs(7));
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(cs[2].timing.retry, 0);
        match &cs[3].kind {
            hc::CheckKind::Tcp(c) => {
                assert_eq!(c.connect, "192.168.1.9:9000".parse().unwrap())
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(cs[3].timing.retry, 0);
    }

    #[test]
    fn ha_suspend_starts_suspended_without_the_vip() {
        let conf = |vip: &str| {
            format!(
                "virtual_server {vip} 80 {{\n lb_algo rr\n lb_kind NAT\n protocol TCP\n \
                 ha_suspend\n real_server 127.0.0.1 80 {{\n }}\n}}\n"
            )
        };
        // 192.0.2.0/24 is TEST-NET-1: never configured here.
        let p = plan_of(&conf("192.0.2.1"));
        assert!(p.checks[0].suspended);
        assert_eq!(p.suspend_vips.len(), 1);
        let p = plan_of(&conf("127.0.0.1"));
        assert!(!p.checks[0].suspended);
    }

    #[test]
    fn metrics_text() {
        count(C_RS_DOWN);
        let mut t = String::new();
        render_metrics(&mut t);
        assert!(
            t.contains("# TYPE rvs_health_actions_total counter\n"),
            "{t}"
        );
        assert!(
            t.contains("rvs_health_actions_total{action=\"drain\"} "),
            "{t}"
        );
        assert!(
            t.lines().any(|l| l
                .starts_with("rvs_health_transitions_total{kind=\"real_server\",to=\"down\"} ")
                && !l.ends_with(" 0")),
            "{t}"
        );
    }

    #[test]
    fn regex_url_is_refused() {
        let r = kc::check_str(
            "k.conf",
            "virtual_server 10.0.0.1 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n \
             real_server 192.168.1.1 80 {\n  HTTP_GET {\n   url {\n    path /\n    regex \"ok\"\n   }\n  }\n }\n}\n",
            &kc::CheckOptions::default(),
        );
        let mut notes = Vec::new();
        let e = plan(&r.config, &mut notes).unwrap_err();
        assert!(e.contains("regex"), "{e}");
    }
}
