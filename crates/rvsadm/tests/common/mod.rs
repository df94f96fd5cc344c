//! Shared test helpers: an in-memory IPVS table that answers rvs-control requests with kernel
//! semantics (enough for rvsadm's tests), builders for a varied table, and a runner.

#![allow(dead_code)]

use rvs_control::*;
use rvsadm::app::{App, Backend, BackendError};
use rvsadm::names::Names;
use std::net::{IpAddr, Ipv4Addr};

/// An in-memory table. Services are kept in "kernel" order; new dests go to the head of the
/// list like the kernel does.
#[derive(Default)]
pub struct MemTable {
    pub info: Info,
    pub services: Vec<ServiceEntry>,
    pub conns: Vec<ConnEntry>,
    pub timeouts: Option<Timeouts>,
    pub daemons: Vec<DaemonConfig>,
    pub laddrs: Vec<ServiceLocalAddrs>,
    /// VRRP instances (`-L --vrrp`); empty = rvsd runs no VRRP.
    pub vrrp: Vec<VrrpInstanceEntry>,
    /// IPVS sysctls (`--sysctl`).
    pub sysctls: Vec<SysctlEntry>,
    /// If set, every request other than GetInfo fails with this error.
    pub fail_with: Option<RemoteError>,
    /// Warnings attached to every response.
    pub warnings: Vec<String>,
    /// Every request received, in order (the requests of a batch one by one).
    pub requests: Vec<Request>,
    /// Batches received (`-R`).
    pub batches: usize,
}

fn ok(p: Payload) -> Response {
    Response::ok(p)
}

fn err(k: ErrorKind) -> Response {
    Response::err(RemoteError::new(k))
}

impl MemTable {
    pub fn with(services: Vec<ServiceEntry>) -> MemTable {
        MemTable {
            services,
            timeouts: Some(Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300,
            }),
            ..Default::default()
        }
    }

    fn find(&mut self, k: &ServiceKey) -> Option<&mut ServiceEntry> {
        self.services.iter_mut().find(|s| &s.spec.key == k)
    }

    fn answer(&mut self, req: &Request) -> Response {
        if let (Some(e), false) = (&self.fail_with, matches!(req, Request::GetInfo)) {
            return Response::err(e.clone());
        }
        match req {
            // rvsd refuses a batch inside a batch.
            Request::Batch(_) => err(ErrorKind::Einval),
            Request::Hello { .. } => ok(Payload::Hello {
                protocol: PROTOCOL_VERSION,
                server: "memtable".into(),
            }),
            Request::GetInfo => ok(Payload::Info(self.info)),
            Request::AddService(spec) => {
                if self.find(&spec.key).is_some() {
                    return err(ErrorKind::Eexist);
                }
                self.services.push(ServiceEntry {
                    spec: spec.clone(),
                    stats: Stats::default(),
                    dests: vec![],
                });
                ok(Payload::Done)
            }
            Request::EditService(spec) => match self.find(&spec.key) {
                Some(s) => {
                    s.spec = spec.clone();
                    ok(Payload::Done)
                }
                None => err(ErrorKind::Esrch),
            },
            Request::DelService(k) => {
                let before = self.services.len();
                self.services.retain(|s| &s.spec.key != k);
                if before == self.services.len() {
                    err(ErrorKind::Esrch)
                } else {
                    ok(Payload::Done)
                }
            }
            Request::Flush => {
                self.services.clear();
                ok(Payload::Done)
            }
            Request::Zero(k) => {
                let zero = |s: &mut ServiceEntry| {
                    s.stats = Stats::default();
                    for d in &mut s.dests {
                        d.stats = Stats::default();
                    }
                };
                match k {
                    None => {
                        self.services.iter_mut().for_each(zero);
                        ok(Payload::Done)
                    }
                    Some(k) => match self.find(k) {
                        Some(s) => {
                            zero(s);
                            ok(Payload::Done)
                        }
                        None => err(ErrorKind::Esrch),
                    },
                }
            }
            Request::AddDest { service, dest } => {
                if dest.weight > i32::MAX as u32 {
                    return err(ErrorKind::Erange);
                }
                if dest.u_threshold != 0 && dest.l_threshold > dest.u_threshold {
                    return err(ErrorKind::Erange);
                }
                let Some(s) = self.find(service) else {
                    return err(ErrorKind::Esrch);
                };
                if s.dests
                    .iter()
                    .any(|d| d.spec.addr == dest.addr && d.spec.port == dest.port)
                {
                    return err(ErrorKind::Eexist);
                }
                s.dests.insert(
                    0,
                    DestEntry {
                        spec: dest.clone(),
                        active_conns: 0,
                        inactive_conns: 0,
                        persist_conns: 0,
                        stats: Stats::default(),
                    },
                );
                ok(Payload::Done)
            }
            Request::EditDest { service, dest } => {
                let Some(s) = self.find(service) else {
                    return err(ErrorKind::Esrch);
                };
                match s
                    .dests
                    .iter_mut()
                    .find(|d| d.spec.addr == dest.addr && d.spec.port == dest.port)
                {
                    Some(d) => {
                        d.spec = dest.clone();
                        ok(Payload::Done)
                    }
                    None => err(ErrorKind::Enoent),
                }
            }
            Request::DelDest {
                service,
                addr,
                port,
            } => {
                let Some(s) = self.find(service) else {
                    return err(ErrorKind::Esrch);
                };
                let before = s.dests.len();
                s.dests
                    .retain(|d| !(d.spec.addr == *addr && d.spec.port == *port));
                if before == s.dests.len() {
                    err(ErrorKind::Enoent)
                } else {
                    ok(Payload::Done)
                }
            }
            Request::SetTimeouts(t) => {
                let cur = self.timeouts.get_or_insert(Timeouts {
                    tcp: 900,
                    tcp_fin: 120,
                    udp: 300,
                });
                if t.tcp != 0 {
                    cur.tcp = t.tcp;
                }
                if t.tcp_fin != 0 {
                    cur.tcp_fin = t.tcp_fin;
                }
                if t.udp != 0 {
                    cur.udp = t.udp;
                }
                ok(Payload::Done)
            }
            Request::GetServices => ok(Payload::Services(self.services.clone())),
            Request::GetService(k) => match self.find(k) {
                Some(s) => ok(Payload::Service(s.clone())),
                None => err(ErrorKind::Esrch),
            },
            Request::GetDests(k) => match self.find(k) {
                Some(s) => ok(Payload::Dests(s.dests.clone())),
                None => err(ErrorKind::Esrch),
            },
            Request::GetConns => ok(Payload::Conns(self.conns.clone())),
            Request::GetTimeouts => ok(Payload::Timeouts(self.timeouts.unwrap())),
            Request::GetDaemons => ok(Payload::Daemons(self.daemons.clone())),
            Request::StartDaemon(_) => Response::err(RemoteError::with_detail(
                ErrorKind::Unsupported,
                "--start-daemon: connection synchronisation is not supported yet",
            )),
            Request::StopDaemon { .. } => err(ErrorKind::Esrch),
            Request::AddLocalAddr { service, addr } => {
                if self.find(service).is_none() {
                    return err(ErrorKind::Esrch);
                }
                match self.laddrs.iter_mut().find(|l| &l.service == service) {
                    Some(l) => {
                        if l.laddrs.iter().any(|x| x.addr == *addr) {
                            return err(ErrorKind::Eexist);
                        }
                        l.laddrs.push(LocalAddrEntry {
                            addr: *addr,
                            port_conflicts: 0,
                            conns: 0,
                        })
                    }
                    None => self.laddrs.push(ServiceLocalAddrs {
                        service: service.clone(),
                        laddrs: vec![LocalAddrEntry {
                            addr: *addr,
                            port_conflicts: 0,
                            conns: 0,
                        }],
                    }),
                }
                ok(Payload::Done)
            }
            Request::DelLocalAddr { service, addr } => {
                match self.laddrs.iter_mut().find(|l| &l.service == service) {
                    Some(l) if l.laddrs.iter().any(|x| x.addr == *addr) => {
                        l.laddrs.retain(|x| x.addr != *addr);
                        ok(Payload::Done)
                    }
                    _ => err(ErrorKind::Enoent),
                }
            }
            Request::GetLocalAddrs(k) => ok(Payload::LocalAddrs(
                self.laddrs
                    .iter()
                    .filter(|l| k.as_ref().map_or(true, |k| &l.service == k))
                    .cloned()
                    .collect(),
            )),
            Request::GetVrrp => ok(Payload::Vrrp(self.vrrp.clone())),
            Request::GetSysctls => ok(Payload::Sysctls(self.sysctls.clone())),
            Request::SetSysctl { name, value } => {
                match self.sysctls.iter_mut().find(|e| &e.name == name) {
                    Some(e) => {
                        e.value = value.clone();
                        ok(Payload::Done)
                    }
                    None => Response::err(RemoteError::with_detail(
                        ErrorKind::Enoent,
                        format!("net.ipv4.vs.{name}: no such sysctl"),
                    )),
                }
            }
        }
    }
}

impl Backend for MemTable {
    fn call(&mut self, req: &Request) -> Result<Response, BackendError> {
        if let Request::Batch(reqs) = req {
            // As rvsd answers one: each request on its own, in order.
            self.batches += 1;
            let mut answers = Vec::new();
            for r in reqs {
                answers.push(self.call(r)?);
            }
            return Ok(Response::ok(Payload::Batch(answers)));
        }
        self.requests.push(req.clone());
        let mut r = self.answer(req);
        if !matches!(req, Request::GetInfo) {
            r.warnings.extend(self.warnings.iter().cloned());
        }
        Ok(r)
    }
}

/// Output of one run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// Runs `ipvsadm <args>` against `table` with the given names and stdin.
pub fn run_with(table: &mut MemTable, names: &dyn Names, args: &[&str], stdin: &str) -> Run {
    let mut argv = vec!["ipvsadm".to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut input = stdin.as_bytes();
    let code = App::new(table, names, &mut out, &mut err).run(&argv, &mut input);
    Run {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

/// Runs with no name resolution and empty stdin.
pub fn run(table: &mut MemTable, args: &[&str]) -> Run {
    run_with(table, &rvsadm::names::NoNames, args, "")
}

// ---- builders -------------------------------------------------------------------------

pub fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

pub fn udp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: addr.parse().unwrap(),
        port,
    }
}

pub fn fwm(mark: u32, v6: bool) -> ServiceKey {
    ServiceKey::Fwmark {
        mark,
        family: if v6 { Family::Inet6 } else { Family::Inet },
    }
}

pub fn svc(key: ServiceKey, sched: &str) -> ServiceEntry {
    let netmask = if key.family() == Family::Inet6 {
        128
    } else {
        0xFFFF_FFFF
    };
    ServiceEntry {
        spec: ServiceSpec {
            key,
            scheduler: sched.into(),
            flags: ServiceFlags::default(),
            timeout: 0,
            netmask,
            pe_name: None,
            proxy_protocol: ProxyProtocol::None,
        },
        stats: Stats::default(),
        dests: vec![],
    }
}

pub fn persistent(mut s: ServiceEntry, timeout: u32, netmask: Option<u32>) -> ServiceEntry {
    s.spec.flags.persistent = true;
    s.spec.timeout = timeout;
    if let Some(m) = netmask {
        s.spec.netmask = m;
    }
    s
}

pub fn dest(
    addr: &str,
    port: u16,
    method: ForwardMethod,
    weight: u32,
    active: u32,
    inact: u32,
) -> DestEntry {
    DestEntry {
        spec: DestSpec {
            addr: addr.parse().unwrap(),
            port,
            weight,
            method,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunnelType::Ipip,
            tun_port: 0,
            tun_csum: TunnelCsum::NoCsum,
        },
        active_conns: active,
        inactive_conns: inact,
        persist_conns: 0,
        stats: Stats::default(),
    }
}

pub fn mask(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from(Ipv4Addr::new(a, b, c, d))
}

pub fn sa(s: &str) -> std::net::SocketAddr {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The table of docs/internals/ipvsadm.md#listings's `-Ln` example, deliberately in a scrambled "kernel" order so the
/// listing must sort it (dests are newest-first, i.e. reversed).
pub fn spec_example_table() -> Vec<ServiceEntry> {
    use ForwardMethod::*;
    let mut s1 = svc(tcp("207.175.44.110", 80), "rr");
    s1.dests = vec![
        dest("192.168.10.2", 80, Masq, 1, 2, 10),
        dest("192.168.10.1", 80, Masq, 1, 3, 12),
    ];
    let mut s2 = persistent(
        svc(tcp("10.0.0.1", 443), "wlc"),
        360,
        Some(mask(255, 255, 255, 0)),
    );
    s2.dests = vec![
        dest("172.16.0.3", 443, Tunnel, 0, 1, 0),
        dest("172.16.0.2", 443, Route, 100, 0, 0),
    ];
    let mut s3 = svc(udp("10.0.0.1", 53), "sh");
    s3.spec.flags.one_packet = true;
    s3.spec.flags.sched1 = true;
    s3.spec.flags.sched2 = true;
    s3.dests = vec![dest("172.16.0.2", 53, Masq, 1, 0, 5)];
    let mut s4 = svc(tcp("2001:db8::80", 80), "rr");
    s4.dests = vec![dest("2001:db8::a0a0", 80, Masq, 1, 0, 0)];
    let mut s5 = persistent(svc(fwm(1, false), "wrr"), 300, None);
    s5.dests = vec![dest("192.168.10.1", 0, Masq, 3, 0, 0)];
    let s6 = svc(fwm(2, true), "rr");
    vec![s6, s4, s3, s2, s5, s1]
}
