//! The socket proxy's [`Balancer`], implemented over the director state.
//!
//! The proxy sees connection events, not packets; they are fed to rvs-core as the TCP segments
//! the kernel would have seen for a NAT connection, so `rvsadm -Lnc` shows SYN_RECV,
//! ESTABLISHED, FIN_WAIT, CLOSE_WAIT, TIME_WAIT and CLOSE with the kernel's timeouts, and the
//! active/inactive counts feed lc/wlc/sed/nq:
//!
//! | proxy event | segments fed | resulting state |
//! |---|---|---|
//! | `open` | INPUT syn (new entry) | SYN_RECV |
//! | `Connected` | OUTPUT syn+ack, INPUT ack | ESTABLISHED |
//! | `Traffic` | INPUT ack / OUTPUT ack (UDP: a datagram) per direction that moved data | unchanged, timeout reloaded |
//! | `ClientFin` | INPUT fin | CLOSE_WAIT (or TIME_WAIT after a server FIN) |
//! | `ServerFin` | OUTPUT fin | FIN_WAIT (or TIME_WAIT after a client FIN) |
//! | `Closed(Normal)` | INPUT ack | stays, expires on its timeout |
//! | `Closed(Reset/Aborted/IdleTimeout)` | INPUT rst | CLOSE (10 s) |
//! | `Closed(ConnectFailed)` | OUTPUT rst | CLOSE |
//! | `Latency` (pewma services) | none: a response-time sample for the real server | unchanged |

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use rvs_control::model::ProxyProtocol as CtlProxyProtocol;
use rvs_core::conn::state::{tcp, Direction, TcpFlags};
use rvs_core::conn::{ConnId, Segment};
use rvs_core::director::{Packet, PeKey, PeRecord, Verdict};
use rvs_core::service::PeKind;
use rvs_core::stats::Traffic;
use rvs_core::{DestId, FwdMethod, Protocol, ServiceFlags, ServiceKey};
use rvs_proxy::{
    Backend, Balancer, CloseReason, ContentReject, FlowEvent, FlowHandle, FlowInfo, IdleLimits,
    ProxyProtocol, Refusal, Routed,
};

use crate::clock::Clock;
use crate::shard::{self, shard_of_handle, FlowKey, FlowRec, Routes, Shard};

// Every use of a shard below that may create an entry, count traffic or change a flow starts
// with `Shard::wake`: the ticker leaves settled shards alone until then.

/// The balancer: the shards (found through the published routes, never through the daemon
/// state's lock) plus the clock.
#[derive(Clone)]
pub struct DirectorBalancer {
    /// Where each service's shard is.
    pub routes: Arc<Routes>,
    /// The daemon clock.
    pub clock: Clock,
}

fn flags(s: &str) -> TcpFlags {
    TcpFlags {
        syn: s.contains('S'),
        fin: s.contains('F'),
        ack: s.contains('A'),
        rst: s.contains('R'),
    }
}

/// The service a flow's listener stands for.
fn service_key(flow: &FlowInfo) -> ServiceKey {
    ServiceKey::Addr {
        proto: flow.protocol,
        addr: flow.vip.ip(),
        port: flow.vip.port(),
    }
}

/// A director verdict that scheduled nothing, as the proxy's refusal.
pub(crate) fn refusal_of(v: Verdict) -> Refusal {
    match v {
        Verdict::Pass => Refusal::NoService,
        Verdict::Drop(_) => Refusal::Drop,
        _ => Refusal::NoDestination,
    }
}

fn secs(d: rvs_core::Duration) -> StdDuration {
    StdDuration::from_millis(d.as_millis())
}

impl DirectorBalancer {
    /// Schedule a flow; `avoid` is a real server that just failed to accept a connection.
    /// `first`: the flow's first message, when the proxy has it (UDP, or after
    /// [`rvs_proxy::Inspect::FirstData`]).
    fn schedule(
        st: &mut Shard,
        flow: &FlowInfo,
        now: rvs_core::Time,
        avoid: Option<DestId>,
        first: Option<&[u8]>,
    ) -> Result<Backend, Refusal> {
        let proto = flow.protocol;
        let pkt = Self::packet(flow, first.unwrap_or(&[]));
        // A real server that refused a connect is skipped: try as many times as there are
        // destinations, dropping each entry that lands on it again.
        let svc = st
            .director
            .table
            .find(0, proto, &flow.vip.ip(), flow.vip.port())
            .and_then(|sid| st.director.table.service(sid));
        let tries = svc.map_or(1, |s| s.dests.len().max(1));
        // A persistence engine that reads content: the proxy must read it first. A reschedule
        // after a failed connect goes to any other server (the key is not at hand any more).
        let pe = svc.and_then(|s| s.cfg.pe.as_ref());
        if let (Some(pe), None) = (pe, avoid) {
            if let Some(what) = crate::pe::inspect_of(pe, proto, first) {
                return Err(Refusal::Inspect(what));
            }
        }
        let keyless = pe.is_some() && avoid.is_some();
        for _ in 0..tries {
            let Shard { director, rng, .. } = st;
            let verdict = if keyless {
                let key = PeKey {
                    data: None,
                    named: None,
                    record: PeRecord::Nothing,
                };
                match director.pe_target(&pkt, &key, now, rng) {
                    Ok(t) => director.open_flow_to(&pkt, t, now),
                    Err(v) => v,
                }
            } else {
                director.open_flow(&pkt, now, rng)
            };
            let route = match verdict {
                Verdict::Forward(r) => r,
                Verdict::Pass => return Err(Refusal::NoService),
                Verdict::Reject => return Err(Refusal::NoDestination),
                Verdict::Drop(_) => return Err(Refusal::Drop),
            };
            let Some(dest) = route.dest else {
                return Err(Refusal::NoDestination);
            };
            if avoid == Some(dest) || !matches!(route.fwd, FwdMethod::Masq | FwdMethod::FullNat) {
                if let Some(c) = route.conn {
                    st.director.abort_conn(c, now);
                }
                if avoid == Some(dest) {
                    continue;
                }
                // Chosen a DR/TUN real server, which a socket plane cannot reach as the
                // kernel would: refuse rather than connect to it in the wrong way.
                tracing::debug!(
                    "flow {} → {}: scheduled to a real server the proxy cannot serve",
                    flow.client,
                    flow.vip
                );
                return Err(Refusal::NoDestination);
            }
            return Ok(Self::backend(st, flow, proto, route, dest));
        }
        Err(Refusal::NoDestination)
    }

    /// The packet a new flow stands for: a TCP SYN or a UDP datagram (with `payload`).
    pub(crate) fn packet<'a>(flow: &FlowInfo, payload: &'a [u8]) -> Packet<'a> {
        let seg = match flow.protocol {
            Protocol::Tcp => Segment::Tcp(flags("S")),
            _ => Segment::Udp,
        };
        Packet {
            fwmark: 0,
            proto: flow.protocol,
            saddr: flow.client.ip(),
            sport: flow.client.port(),
            daddr: flow.vip.ip(),
            dport: flow.vip.port(),
            seg,
            len: 0,
            payload,
        }
    }

    /// The backend of a flow whose entry the director just made (content engines).
    pub(crate) fn accept(
        st: &mut Shard,
        flow: &FlowInfo,
        verdict: Verdict,
        now: rvs_core::Time,
    ) -> Result<Backend, Refusal> {
        let route = match verdict {
            Verdict::Forward(r) => r,
            v => return Err(refusal_of(v)),
        };
        let Some(dest) = route.dest else {
            return Err(Refusal::NoDestination);
        };
        if !matches!(route.fwd, FwdMethod::Masq | FwdMethod::FullNat) {
            if let Some(c) = route.conn {
                st.director.abort_conn(c, now);
            }
            return Err(Refusal::NoDestination);
        }
        Ok(Self::backend(st, flow, flow.protocol, route, dest))
    }

    fn backend(
        st: &mut Shard,
        flow: &FlowInfo,
        proto: Protocol,
        route: rvs_core::director::Route,
        dest: DestId,
    ) -> Backend {
        let key = ServiceKey::Addr {
            proto,
            addr: flow.vip.ip(),
            port: flow.vip.port(),
        };
        let svc = st
            .director
            .table
            .dests
            .get(dest)
            .and_then(|d| st.director.table.service(d.svc));
        let svc_key = svc.map(|s| s.key).unwrap_or(key);
        let one_packet =
            svc.is_some_and(|s| s.cfg.flags.has(ServiceFlags::ONEPACKET)) && proto == Protocol::Udp;
        let measure_latency = proto == Protocol::Tcp
            && svc.is_some_and(|s| {
                matches!(s.scheduler(), Some(rvs_core::sched::Scheduler::Pewma(_)))
            });
        let extra = st.extra.get_mut(&svc_key);
        let proxy_protocol = match extra.as_ref().map(|x| x.proxy_protocol) {
            Some(CtlProxyProtocol::V1) => ProxyProtocol::V1,
            Some(CtlProxyProtocol::V2) => ProxyProtocol::V2,
            _ => ProxyProtocol::Off,
        };
        // Full-NAT: connect from one of the service's local addresses, round robin.
        let source: Option<IpAddr> = match (route.fwd, extra) {
            (FwdMethod::FullNat, Some(x)) => x.laddrs.next_addr(route.daddr),
            _ => None,
        };
        let handle = st.next_handle();
        st.flows.insert(
            handle,
            FlowRec {
                key: FlowKey {
                    proto,
                    client: flow.client,
                    vip: flow.vip,
                },
                conn: route.conn,
                dest,
                laddr: source,
            },
        );
        let l = Self::limits_of(st);
        Backend {
            addr: SocketAddr::new(route.daddr, route.dport),
            handle: FlowHandle(handle),
            proxy_protocol,
            source,
            tcp_idle_timeout: l.tcp_idle_timeout,
            tcp_fin_timeout: l.tcp_fin_timeout,
            udp_idle_timeout: l.udp_idle_timeout,
            measure_latency,
            one_packet,
        }
    }

    /// The proxy's idle limits from the shard's timeouts (`--set`): ESTABLISHED, FIN_WAIT,
    /// udp.
    fn limits_of(st: &Shard) -> IdleLimits {
        let t = &st.director.sys.conn.timeouts;
        IdleLimits {
            tcp_idle_timeout: Some(secs(t.tcp[usize::from(tcp::ESTABLISHED)])),
            tcp_fin_timeout: Some(secs(t.tcp[usize::from(tcp::FIN_WAIT)])),
            udp_idle_timeout: secs(t.udp),
        }
    }

    /// The flow's connection entry if it still belongs to this flow (an entry that expired and
    /// whose slot was reused by another tuple is not touched).
    fn conn_of(st: &Shard, rec: &FlowRec) -> Option<ConnId> {
        let id = rec.conn?;
        let i = st.director.conns.info(id)?;
        let same = i.caddr == rec.key.client.ip()
            && i.cport == rec.key.client.port()
            && i.vaddr == rec.key.vip.ip()
            && i.vport == rec.key.vip.port()
            && i.protocol == rec.key.proto.number();
        same.then_some(id)
    }
}

impl Balancer for DirectorBalancer {
    fn limits(&self, handle: FlowHandle) -> Option<IdleLimits> {
        let shard = self.routes.shard(shard_of_handle(handle.0))?;
        let st = shard::lock(&shard);
        Some(Self::limits_of(&st))
    }

    fn open(&self, flow: &FlowInfo) -> Result<Backend, Refusal> {
        let key = ServiceKey::Addr {
            proto: flow.protocol,
            addr: flow.vip.ip(),
            port: flow.vip.port(),
        };
        let shard = self.routes.service(&key).ok_or(Refusal::NoService)?;
        let now = self.clock.now();
        let mut st = shard::lock(&shard);
        st.wake(now);
        Self::schedule(&mut st, flow, now, None, None)
    }

    fn open_with(&self, flow: &FlowInfo, first: &[u8]) -> Result<Backend, Refusal> {
        let shard = self
            .routes
            .service(&service_key(flow))
            .ok_or(Refusal::NoService)?;
        let now = self.clock.now();
        let mut st = shard::lock(&shard);
        st.wake(now);
        Self::schedule(&mut st, flow, now, None, Some(first))
    }

    fn open_tls(&self, flow: &FlowInfo, server_name: Option<&[u8]>) -> Result<Backend, Refusal> {
        let shard = self
            .routes
            .service(&service_key(flow))
            .ok_or(Refusal::NoService)?;
        let now = self.clock.now();
        let mut st = shard::lock(&shard);
        st.wake(now);
        Self::pe_open_tls(&mut st, flow, server_name, now)
    }

    fn route_request(
        &self,
        flow: &FlowInfo,
        request: &rvs_proxy::http::Request<'_>,
        current: Option<&Backend>,
    ) -> Result<Routed, Refusal> {
        let shard = self
            .routes
            .service(&service_key(flow))
            .ok_or(Refusal::NoService)?;
        let now = self.clock.now();
        let mut st = shard::lock(&shard);
        st.wake(now);
        Self::pe_route_request(&mut st, flow, request, current, now)
    }

    fn response(&self, handle: FlowHandle, response: &rvs_proxy::http::Response<'_>) {
        let Some(shard) = self.routes.shard(shard_of_handle(handle.0)) else {
            return;
        };
        let now = self.clock.now();
        let mut st = shard::lock(&shard);
        st.wake(now);
        Self::pe_learn(&mut st, handle, response, now);
    }

    fn rejected(&self, flow: &FlowInfo, why: ContentReject) {
        if let Some(shard) = self.routes.service(&service_key(flow)) {
            let mut st = shard::lock(&shard);
            if let Some(i) = ContentReject::ALL.iter().position(|&r| r == why) {
                st.pe_rejects[i] += 1;
            }
        }
    }

    fn reschedule(&self, flow: &FlowInfo, failed: &Backend) -> Option<Backend> {
        let shard = self.routes.shard(shard_of_handle(failed.handle.0))?;
        let now = self.clock.now();
        let mut st = shard::lock(&shard);
        st.wake(now);
        // The failed flow is over: its entry is dropped now, and its coming Closed event must
        // not touch the new entry for the same client tuple.
        let rec = st.flows.remove(&failed.handle.0)?;
        if let Some(c) = Self::conn_of(&st, &rec) {
            st.director.abort_conn(c, now);
        }
        st.reschedules += 1;
        Self::schedule(&mut st, flow, now, Some(rec.dest), None).ok()
    }

    fn event(&self, handle: FlowHandle, ev: FlowEvent) {
        self.events(handle, None, ev);
    }

    fn event_after(&self, handle: FlowHandle, traffic: rvs_proxy::Traffic, ev: FlowEvent) {
        let traffic = (!traffic.is_empty()).then_some(FlowEvent::Traffic(traffic));
        self.events(handle, traffic, ev);
    }
}

impl DirectorBalancer {
    /// `first` (if any), then `ev`, of the flow carrying `handle`, under one lock of its shard
    /// and one lookup of the flow (a short connection reports seven events; four calls).
    fn events(&self, handle: FlowHandle, first: Option<FlowEvent>, ev: FlowEvent) {
        let Some(shard) = self.routes.shard(shard_of_handle(handle.0)) else {
            return;
        };
        let now = self.clock.now();
        let mut st = shard::lock(&shard);
        st.wake(now);
        let Some(rec) = st.flows.get(&handle.0).copied() else {
            return;
        };
        if let FlowEvent::Closed(_) = ev {
            st.flows.remove(&handle.0);
        }
        let conn = Self::conn_of(&st, &rec);
        for ev in first.into_iter().chain([ev]) {
            Self::apply(&mut st.director, &rec, conn, ev, now);
        }
    }

    /// One event of the flow `rec` (its connection entry `conn`, if it still has one).
    fn apply(
        d: &mut rvs_core::Director,
        rec: &FlowRec,
        conn: Option<ConnId>,
        ev: FlowEvent,
        now: rvs_core::Time,
    ) {
        let tcp_ev = |d: &mut rvs_core::Director, c: ConnId, dir: Direction, f: &str| {
            d.conn_event(c, dir, Segment::Tcp(flags(f)), now);
        };
        match (ev, conn) {
            (FlowEvent::Traffic(t), c) => {
                let t = Traffic {
                    in_pkts: t.in_packets,
                    in_bytes: t.in_bytes,
                    out_pkts: t.out_packets,
                    out_bytes: t.out_bytes,
                };
                match c {
                    Some(c) => {
                        d.conn_traffic(c, t, now);
                        // In the kernel every packet also goes through the state machine,
                        // which reloads the entry's timeout from the current table: that is
                        // how `--set` reaches open connections ("on their next packet"). Feed
                        // one data segment per direction that carried packets (a TCP ACK
                        // keeps the state; a UDP packet refreshes the udp timeout; a UDP
                        // reply also assures a persistence template, as the kernel does).
                        let seg = match rec.key.proto {
                            Protocol::Tcp => Segment::Tcp(flags("A")),
                            _ => Segment::Udp,
                        };
                        if t.in_pkts > 0 {
                            d.conn_event(c, Direction::Input, seg, now);
                        }
                        if t.out_pkts > 0 {
                            d.conn_event(c, Direction::Output, seg, now);
                        }
                    }
                    None if rec.conn.is_none() => d.dest_traffic(rec.dest, t),
                    None => {}
                }
            }
            (FlowEvent::Latency(t), _) => {
                let us = u64::try_from(t.as_micros()).unwrap_or(u64::MAX);
                d.latency_sample(rec.dest, us, now);
            }
            (_, None) => {}
            (FlowEvent::Connected, Some(c)) => {
                tcp_ev(d, c, Direction::Output, "SA");
                tcp_ev(d, c, Direction::Input, "A");
            }
            (FlowEvent::ClientFin, Some(c)) => tcp_ev(d, c, Direction::Input, "FA"),
            (FlowEvent::ServerFin, Some(c)) => tcp_ev(d, c, Direction::Output, "FA"),
            (FlowEvent::Closed(reason), Some(c)) => {
                if rec.key.proto != Protocol::Tcp {
                    // UDP entries simply expire on their timeout, as in the kernel.
                    return;
                }
                match reason {
                    CloseReason::Normal => tcp_ev(d, c, Direction::Input, "A"),
                    CloseReason::ConnectFailed => tcp_ev(d, c, Direction::Output, "R"),
                    CloseReason::Reset
                    | CloseReason::Aborted
                    | CloseReason::IdleTimeout
                    | CloseReason::Unsupported => tcp_ev(d, c, Direction::Input, "R"),
                }
            }
        }
    }
}

/// The content persistence engines' side (`crate::pe` has their keys and checks).
impl DirectorBalancer {
    /// The service of a flow's listener and its persistence engine.
    fn pe_engine_of(st: &Shard, flow: &FlowInfo) -> Result<(ServiceKey, PeKind), Refusal> {
        let t = &st.director.table;
        let svc = t
            .find(0, flow.protocol, &flow.vip.ip(), flow.vip.port())
            .and_then(|sid| t.service(sid))
            .ok_or(Refusal::NoService)?;
        let pe = svc.cfg.pe.clone().ok_or(Refusal::NoService)?;
        Ok((svc.key, pe))
    }

    /// `sni`: schedule a TLS flow by its ClientHello's server name.
    pub(crate) fn pe_open_tls(
        st: &mut Shard,
        flow: &FlowInfo,
        server_name: Option<&[u8]>,
        now: rvs_core::Time,
    ) -> Result<Backend, Refusal> {
        let pkt = Self::packet(flow, &[]);
        let key = PeKey {
            data: server_name.filter(|n| !n.is_empty()),
            named: None,
            record: PeRecord::Data,
        };
        let Shard { director, rng, .. } = st;
        let target = director
            .pe_target(&pkt, &key, now, rng)
            .map_err(refusal_of)?;
        let verdict = director.open_flow_to(&pkt, target, now);
        Self::accept(st, flow, verdict, now)
    }

    /// Route one HTTP request of a `cookie`, `cookie-learn` or `header` service (see
    /// [`rvs_proxy::Balancer::route_request`]).
    pub(crate) fn pe_route_request(
        st: &mut Shard,
        flow: &FlowInfo,
        req: &rvs_proxy::http::Request<'_>,
        current: Option<&Backend>,
        now: rvs_core::Time,
    ) -> Result<Routed, Refusal> {
        let (svc, pe) = Self::pe_engine_of(st, flow)?;
        let ckey = crate::pe::CookieKey::daemon();
        let (raw, cookie_name) = match &pe {
            PeKind::Cookie(n) => (req.cookie(n.as_bytes()), Some(n)),
            PeKind::CookieLearn(n) => (req.cookie(n.as_bytes()), None),
            PeKind::Header(n) => (req.header(n.as_bytes()), None),
            PeKind::Sip | PeKind::Sni => return Err(Refusal::NoService),
        };
        let raw = raw.filter(|v| !v.is_empty());
        let named = match (cookie_name, raw) {
            (Some(_), Some(v)) => {
                let t = &st.director.table;
                let dests = t
                    .find(0, flow.protocol, &flow.vip.ip(), flow.vip.port())
                    .and_then(|sid| t.service(sid))
                    .map(|s| s.dests.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|&d| t.dests.get(d))
                    .map(|d| (d.cfg.addr, d.cfg.port));
                ckey.verify(&svc, v, dests)
            }
            _ => None,
        };
        let data = raw.map(crate::pe::template_key);
        let issue = |addr, port| ckey.value_bytes(&svc, addr, port).to_vec();
        let record = match &pe {
            PeKind::Cookie(_) => PeRecord::Issued(&issue),
            PeKind::Header(_) => PeRecord::Data,
            _ => PeRecord::Nothing,
        };
        let key = PeKey {
            data: data.as_deref(),
            named,
            record,
        };
        let pkt = Self::packet(flow, &[]);
        let Shard { director, rng, .. } = st;
        let target = director
            .pe_target(&pkt, &key, now, rng)
            .map_err(refusal_of)?;
        let add_header = match cookie_name {
            Some(name) => {
                let d = &director.table.dests[target.dest];
                let v = ckey.value_bytes(&svc, d.cfg.addr, d.cfg.port);
                (raw != Some(&v[..])).then(|| {
                    rvs_proxy::http::cookie::set_cookie_line(name, &String::from_utf8_lossy(&v))
                })
            }
            None => None,
        };
        if let Some(cur) = current {
            if st
                .flows
                .get(&cur.handle.0)
                .is_some_and(|r| r.dest == target.dest)
            {
                return Ok(Routed {
                    backend: None,
                    add_header,
                });
            }
            // Re-pinned: the old server connection's entry is replaced by the new one (same
            // client tuple); the proxy's later events for the old handle are ignored.
            st.flows.remove(&cur.handle.0);
        }
        let verdict = st.director.open_flow_to(&pkt, target, now);
        let backend = Self::accept(st, flow, verdict, now)?;
        Ok(Routed {
            backend: Some(backend),
            add_header,
        })
    }

    /// `cookie-learn`: a response that sets the engine's cookie pins its value to the server that
    /// sent it.
    pub(crate) fn pe_learn(
        st: &mut Shard,
        handle: FlowHandle,
        resp: &rvs_proxy::http::Response<'_>,
        now: rvs_core::Time,
    ) {
        let Some(rec) = st.flows.get(&handle.0).copied() else {
            return;
        };
        let Some(PeKind::CookieLearn(name)) = st.director.pe_of(Some(rec.dest)).cloned() else {
            return;
        };
        let Some(v) = resp.set_cookie(name.as_bytes()).filter(|v| !v.is_empty()) else {
            return;
        };
        let flow = FlowInfo {
            protocol: rec.key.proto,
            client: rec.key.client,
            vip: rec.key.vip,
        };
        let pkt = Self::packet(&flow, &[]);
        st.director
            .pe_learn(&pkt, &crate::pe::template_key(v), rec.dest, now);
    }
}
