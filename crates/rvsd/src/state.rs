//! The one authoritative director state of the daemon, and the control requests applied to it.
//!
//! Every change — from rvsadm, a rules file, or (later) health checks — goes through
//! [`State::handle`], so the table, the warnings and the listeners stay consistent whoever made
//! the change.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use rvs_control::model as m;
use rvs_control::proto::{ErrorKind, Payload, Request, Response};
use rvs_core::conn::state::tcp;
use rvs_core::conn::HashSeed;
use rvs_core::{Director, FwdMethod, Protocol, ServiceKey, Time};

use crate::clock::{os_random_u64, Rng};
use crate::convert::*;

/// rvs additions kept per service beside the core's table.
#[derive(Clone, Debug, Default)]
pub struct ServiceExtra {
    /// PROXY protocol header toward real servers (`--proxy-protocol`).
    pub proxy_protocol: m::ProxyProtocol,
    /// Full-NAT local addresses (`--add-laddr -z`).
    pub laddrs: Vec<LocalAddr>,
    /// Round-robin cursor over `laddrs`.
    pub next_laddr: usize,
}

/// One full-NAT local address and its use.
#[derive(Clone, Debug)]
pub struct LocalAddr {
    /// The address.
    pub addr: IpAddr,
    /// Flows that used it.
    pub conns: u64,
}

/// Which data planes run beside the socket proxy (which always runs), to say what the table can
/// and cannot serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planes {
    /// The packet plane (`--interface`).
    pub packet: bool,
}

/// The daemon's state.
pub struct State {
    /// The IPVS model.
    pub director: Director,
    /// Random source for schedulers and defences.
    pub rng: Rng,
    /// Per-service additions.
    pub extra: HashMap<ServiceKey, ServiceExtra>,
    /// Running data planes.
    pub planes: Planes,
    /// Proxy flows: handle → the connection tuple (looked up on every event, so a connection
    /// that expired in the meantime is never confused with a new one reusing its id).
    pub flows: HashMap<u64, crate::balancer::FlowRec>,
    /// Next proxy flow handle.
    pub next_handle: u64,
    /// Connections the proxy rescheduled after a failed connect.
    pub reschedules: u64,
    /// The VRRP driver's status, when it runs (rendered into the metrics).
    pub vrrp: Option<std::sync::Arc<crate::vrrp::StatusBoard>>,
    /// Bumped by every request that may change the table or the local addresses: the packet
    /// plane rebuilds its configuration and its nft guard when it sees a new value.
    pub generation: u64,
    /// The last `generation` the packet plane applied (nft guard refilled, new real servers
    /// resolved), when it runs: control requests wait for it (`Daemon::request`).
    pub packet_applied: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

/// The client-side tuple of a proxy flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    /// Protocol.
    pub proto: Protocol,
    /// Client.
    pub client: SocketAddr,
    /// Virtual service address.
    pub vip: SocketAddr,
}

fn done() -> Response {
    Response::ok(Payload::Done)
}

impl State {
    /// A fresh state at time `now` with random hash seeds.
    pub fn new(now: Time, planes: Planes) -> State {
        let seed = HashSeed([
            os_random_u64(),
            os_random_u64(),
            os_random_u64(),
            os_random_u64(),
        ]);
        State {
            director: Director::new(seed, now),
            rng: Rng::from_os(),
            extra: HashMap::new(),
            planes,
            flows: HashMap::new(),
            next_handle: 1,
            reschedules: 0,
            vrrp: None,
            generation: 0,
            packet_applied: None,
        }
    }

    /// Why a service cannot be served by the running planes, if it cannot.
    pub fn service_unserved(&self, key: &ServiceKey) -> Option<String> {
        if self.planes.packet {
            return None;
        }
        let why = match key {
            ServiceKey::Fwmark { .. } => "firewall-mark services",
            ServiceKey::Addr { port: 0, .. } => "port-0 (all ports) services",
            ServiceKey::Addr {
                proto: Protocol::Sctp,
                ..
            } => "SCTP services",
            _ => return None,
        };
        Some(format!(
            "{} is accepted but not served: {why} need the packet data plane (rvsd --interface), \
             and rvsd runs only the socket proxy",
            key_from_core(key)
        ))
    }

    /// Why a destination cannot be served by the running planes, if it cannot.
    pub fn dest_unserved(&self, key: &ServiceKey, d: &rvs_core::DestConfig) -> Option<String> {
        if self.planes.packet {
            return None;
        }
        let how = match d.fwd {
            FwdMethod::Masq | FwdMethod::FullNat => return None,
            FwdMethod::Route => "direct routing (-g, ipvsadm's default)",
            FwdMethod::Tunnel => "tunnelling (-i)",
            FwdMethod::Local => "local delivery",
            FwdMethod::Bypass => "bypass",
        };
        Some(format!(
            "real server {} of {} is accepted but not served: {how} needs the packet data plane \
             (rvsd --interface); the socket proxy serves -m and --fullnat real servers",
            SocketAddr::new(d.addr, d.port),
            key_from_core(key)
        ))
    }

    /// Apply one control request.
    pub fn handle(&mut self, req: &Request, now: Time) -> Response {
        if is_change(req)
            || matches!(
                req,
                Request::AddLocalAddr { .. } | Request::DelLocalAddr { .. }
            )
        {
            self.generation = self.generation.wrapping_add(1);
        }
        let d = &mut self.director;
        match req {
            Request::Hello { .. } => Response::err(error(
                ErrorKind::Einval,
                "Hello is only valid as the first message",
            )),
            Request::GetInfo => Response::ok(Payload::Info(m::Info::default())),
            Request::GetVrrp => crate::vrrp::status::answer(self.vrrp.as_deref()),
            Request::AddService(spec) => {
                let key = key_to_core(&spec.key);
                let cfg = match service_to_core(spec) {
                    Ok(c) => c,
                    Err(e) => return Response::err(remote_error(&e)),
                };
                match d.table.add_service(key, cfg, now) {
                    Ok(_) => {
                        self.extra.insert(
                            key,
                            ServiceExtra {
                                proxy_protocol: spec.proxy_protocol,
                                ..ServiceExtra::default()
                            },
                        );
                        let mut r = done();
                        if let Some(w) = self.service_unserved(&key) {
                            tracing::warn!("{w}");
                            r = r.warn(w);
                        }
                        r
                    }
                    Err(e) => Response::err(remote_error(&e)),
                }
            }
            Request::EditService(spec) => {
                let key = key_to_core(&spec.key);
                let cfg = match service_to_core(spec) {
                    Ok(c) => c,
                    Err(e) => return Response::err(remote_error(&e)),
                };
                match d.table.edit_service(&key, cfg, now) {
                    Ok(()) => {
                        self.extra.entry(key).or_default().proxy_protocol = spec.proxy_protocol;
                        done()
                    }
                    Err(e) => Response::err(remote_error(&e)),
                }
            }
            Request::DelService(k) => {
                let key = key_to_core(k);
                match d.del_service(&key, now) {
                    Ok(()) => {
                        self.extra.remove(&key);
                        done()
                    }
                    Err(e) => Response::err(remote_error(&e)),
                }
            }
            Request::Flush => {
                d.clear(now);
                self.extra.clear();
                done()
            }
            Request::Zero(k) => match k {
                None => {
                    d.zero(None);
                    done()
                }
                Some(k) => match d.table.id_of(&key_to_core(k)) {
                    Some(id) => {
                        d.zero(Some(id));
                        done()
                    }
                    None => Response::err(remote_error(&rvs_core::Error::NoService)),
                },
            },
            Request::AddDest { service, dest } => {
                let key = key_to_core(service);
                let cfg = dest_to_core(dest);
                match d.table.add_dest(&key, cfg, now) {
                    Ok(_) => {
                        let mut r = done();
                        if let Some(w) = self.dest_unserved(&key, &cfg) {
                            tracing::warn!("{w}");
                            r = r.warn(w);
                        }
                        r
                    }
                    Err(e) => Response::err(remote_error(&e)),
                }
            }
            Request::EditDest { service, dest } => {
                let key = key_to_core(service);
                let cfg = dest_to_core(dest);
                match d.table.edit_dest(&key, cfg) {
                    Ok(_) => {
                        let mut r = done();
                        if let Some(w) = self.dest_unserved(&key, &cfg) {
                            tracing::warn!("{w}");
                            r = r.warn(w);
                        }
                        r
                    }
                    Err(e) => Response::err(remote_error(&e)),
                }
            }
            Request::DelDest {
                service,
                addr,
                port,
            } => match d.del_dest(&key_to_core(service), addr, *port, now) {
                Ok(_) => done(),
                Err(e) => Response::err(remote_error(&e)),
            },
            Request::SetTimeouts(t) => {
                match d.sys.conn.timeouts.set(
                    u64::from(t.tcp),
                    u64::from(t.tcp_fin),
                    u64::from(t.udp),
                ) {
                    Ok(()) => done(),
                    Err(e) => Response::err(remote_error(&e)),
                }
            }
            Request::GetTimeouts => {
                let t = &d.sys.conn.timeouts;
                let secs = |x: rvs_core::Duration| u32::try_from(x.as_secs()).unwrap_or(u32::MAX);
                Response::ok(Payload::Timeouts(m::Timeouts {
                    tcp: secs(t.tcp[usize::from(tcp::ESTABLISHED)]),
                    tcp_fin: secs(t.tcp[usize::from(tcp::FIN_WAIT)]),
                    udp: secs(t.udp),
                }))
            }
            Request::GetServices => Response::ok(Payload::Services(crate::listing::services(self))),
            Request::GetService(k) => match crate::listing::service(self, &key_to_core(k)) {
                Some(s) => Response::ok(Payload::Service(s)),
                None => Response::err(remote_error(&rvs_core::Error::NoService)),
            },
            Request::GetDests(k) => match crate::listing::service(self, &key_to_core(k)) {
                Some(s) => Response::ok(Payload::Dests(s.dests)),
                None => Response::err(remote_error(&rvs_core::Error::NoService)),
            },
            Request::GetConns => Response::ok(Payload::Conns(crate::listing::conns(self, now))),
            Request::GetDaemons => Response::ok(Payload::Daemons(Vec::new())),
            Request::StartDaemon(_) => Response::err(error(
                ErrorKind::Unsupported,
                "connection synchronisation (--start-daemon) is not yet supported by rvsd",
            )),
            Request::StopDaemon { .. } => Response::err(error(
                ErrorKind::Esrch,
                "no connection synchronisation daemon is running",
            )),
            Request::AddLocalAddr { service, addr } => {
                let key = key_to_core(service);
                if d.table.id_of(&key).is_none() {
                    return Response::err(remote_error(&rvs_core::Error::NoService));
                }
                if rvs_core::Family::of(addr) != key.family() {
                    return Response::err(error(
                        ErrorKind::Einval,
                        "local address family differs from the service",
                    ));
                }
                let x = self.extra.entry(key).or_default();
                if x.laddrs.iter().any(|l| l.addr == *addr) {
                    return Response::err(remote_error(&rvs_core::Error::Exists));
                }
                x.laddrs.push(LocalAddr {
                    addr: *addr,
                    conns: 0,
                });
                done()
            }
            Request::DelLocalAddr { service, addr } => {
                let key = key_to_core(service);
                if d.table.id_of(&key).is_none() {
                    return Response::err(remote_error(&rvs_core::Error::NoService));
                }
                let x = self.extra.entry(key).or_default();
                match x.laddrs.iter().position(|l| l.addr == *addr) {
                    Some(i) => {
                        x.laddrs.remove(i);
                        done()
                    }
                    None => Response::err(remote_error(&rvs_core::Error::NotFound)),
                }
            }
            Request::GetLocalAddrs(k) => {
                let keys: Vec<ServiceKey> = match k {
                    Some(k) => {
                        let key = key_to_core(k);
                        if d.table.id_of(&key).is_none() {
                            return Response::err(remote_error(&rvs_core::Error::NoService));
                        }
                        vec![key]
                    }
                    None => d.table.services().map(|(_, s)| s.key).collect(),
                };
                let out = keys
                    .iter()
                    .map(|key| m::ServiceLocalAddrs {
                        service: key_from_core(key),
                        laddrs: self
                            .extra
                            .get(key)
                            .map(|x| {
                                x.laddrs
                                    .iter()
                                    .map(|l| m::LocalAddrEntry {
                                        addr: l.addr,
                                        port_conflicts: 0,
                                        conns: l.conns,
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                    .collect();
                Response::ok(Payload::LocalAddrs(out))
            }
        }
    }

    /// The listeners the socket proxy should have: every TCP and UDP service with a port —
    /// except, when the packet plane runs, services it serves (every VIP but loopback ones,
    /// see `packet_plane`), so a service is never carried by both planes.
    pub fn proxy_listeners(&self) -> Vec<rvs_proxy::ListenerSpec> {
        let mut v: Vec<rvs_proxy::ListenerSpec> = self
            .director
            .table
            .services()
            .filter_map(|(_, s)| match s.key {
                ServiceKey::Addr { proto, addr, port }
                    if port != 0 && (!self.planes.packet || addr.is_loopback()) =>
                {
                    let protocol = match proto {
                        Protocol::Tcp => rvs_proxy::Protocol::Tcp,
                        Protocol::Udp => rvs_proxy::Protocol::Udp,
                        Protocol::Sctp => return None,
                    };
                    Some(rvs_proxy::ListenerSpec {
                        protocol,
                        addr: SocketAddr::new(addr, port),
                    })
                }
                _ => None,
            })
            .collect();
        v.sort_by_key(|l| (l.addr, l.protocol == rvs_proxy::Protocol::Udp));
        v
    }
}

/// Whether a request changes the table (and so the listeners).
pub fn is_change(req: &Request) -> bool {
    matches!(
        req,
        Request::AddService(_)
            | Request::EditService(_)
            | Request::DelService(_)
            | Request::Flush
            | Request::AddDest { .. }
            | Request::EditDest { .. }
            | Request::DelDest { .. }
    )
}
