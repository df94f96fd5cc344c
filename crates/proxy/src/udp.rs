//! UDP: per-client flows over connected sockets to the real server; replies leave from the VIP
//! socket so the client sees the address it sent to.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, ErrorKind, IoSlice};
use std::net::SocketAddr;
use std::rc::{Rc, Weak};

use socket2::{Domain, SockAddr, SockRef, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::api::{Backend, CloseReason, FlowInfo, ListenerSpec, Protocol, ProxyProtocol};
use crate::proxy_protocol::{encode_v2, ProxyHeader};
use crate::udp_batch::SLOTS;
use crate::worker::{Counters, Flow, Worker};

/// Datagrams handled per readiness wake-up before yielding, so one busy listener cannot starve
/// the other tasks of the worker.
const BATCH: usize = 64;

/// Flow key: (client, None) for a scheduled flow, (client, Some(real server)) for the socket
/// that carries one-packet-scheduled datagrams of that client to that real server.
type Key = (SocketAddr, Option<SocketAddr>);
type Table = RefCell<HashMap<Key, Rc<UdpFlow>>>;

struct UdpFlow {
    key: Key,
    sock: UdpSocket,
    flow: Rc<Flow>,
    header: Option<ProxyHeader>,
    /// Idle limit (the udp timeout; re-read when it runs out, see `Balancer::limits`).
    idle: Cell<std::time::Duration>,
    last_active: Cell<Instant>,
    task: Cell<Option<AbortHandle>>,
}

/// Ends the flows of a listener when its task ends (listener removed or shutdown).
struct TableGuard(Rc<Table>);

impl Drop for TableGuard {
    fn drop(&mut self) {
        for (_, f) in self.0.borrow_mut().drain() {
            if let Some(t) = f.task.take() {
                t.abort();
            }
        }
    }
}

pub(crate) async fn listener_loop(w: Rc<Worker>, spec: ListenerSpec, vip_sock: UdpSocket) {
    let vip_sock = Rc::new(vip_sock);
    let table: Rc<Table> = Rc::new(RefCell::new(HashMap::new()));
    let _guard = TableGuard(table.clone());
    let fixed_vip = (!spec.addr.ip().is_unspecified()).then_some(spec.addr);
    let vip = match fixed_vip {
        Some(v) => v,
        None => match vip_sock.local_addr() {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(listener = %spec.addr, error = %e, "udp listener unusable");
                return;
            }
        },
    };
    loop {
        if let Err(e) = vip_sock.readable().await {
            tracing::warn!(listener = %spec.addr, error = %e, "udp listener failed");
            return;
        }
        let mut handled = 0;
        while handled < BATCH {
            let mut batch = w.udp_batch.borrow_mut();
            match batch.recv(&vip_sock) {
                Ok(n) => {
                    for i in 0..n {
                        // recvmmsg on an IPv4/IPv6 socket always gives the source address.
                        if let (payload, Some(client)) = batch.get(i) {
                            datagram(&w, &table, &vip_sock, vip, client, payload);
                        }
                    }
                    handled += n;
                    if n < SLOTS {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // ICMP errors reported on the unconnected socket; nothing to do with them.
                Err(e) => {
                    tracing::debug!(listener = %spec.addr, error = %e, "udp recv error");
                    break;
                }
            }
        }
        if handled >= BATCH {
            tokio::task::yield_now().await;
        }
    }
}

/// One datagram from `client` to the VIP: find or schedule its flow and forward it.
fn datagram(
    w: &Rc<Worker>,
    table: &Rc<Table>,
    vip_sock: &Rc<UdpSocket>,
    vip: SocketAddr,
    client: SocketAddr,
    payload: &[u8],
) {
    let existing = table.borrow().get(&(client, None)).cloned();
    let f = match existing {
        Some(f) => f,
        None => {
            let info = FlowInfo {
                protocol: Protocol::Udp,
                client,
                vip,
            };
            // The datagram goes along: a persistence engine (SIP) schedules by its content.
            let b = match w.balancer.open_with(&info, payload) {
                Ok(b) => b,
                Err(r) => {
                    Counters::inc(&w.counters.refused);
                    tracing::debug!(%client, %vip, refusal = ?r, "udp refused");
                    return;
                }
            };
            if b.proxy_protocol == ProxyProtocol::V1 {
                // v1 has no datagram form: refuse (counted, and Closed(Unsupported) tells the
                // balancer) rather than send without the header. Debug level: this repeats per
                // datagram, and rvsd should reject the configuration in the first place.
                Counters::inc(&w.counters.refused);
                tracing::debug!(%vip, rs = %b.addr, "PROXY protocol v1 cannot carry UDP; dropped");
                Flow::new(w.clone(), b.handle).close(CloseReason::Unsupported);
                return;
            }
            if b.one_packet {
                let key = (client, Some(b.addr));
                let reuse = table.borrow().get(&key).cloned();
                match reuse {
                    Some(f) => {
                        // The previous datagram's entry is done: one-packet scheduling.
                        f.flow.rebind(CloseReason::Normal, b.handle);
                        f
                    }
                    None => match new_flow(w, table, vip_sock, key, vip, &b) {
                        Ok(f) => f,
                        Err(_) => return,
                    },
                }
            } else {
                match new_flow(w, table, vip_sock, (client, None), vip, &b) {
                    Ok(f) => f,
                    Err(_) => return,
                }
            }
        }
    };
    f.last_active.set(Instant::now());
    f.flow.count(true, payload.len());
    let sent = match &f.header {
        None => SockRef::from(&f.sock).send(payload),
        Some(h) => SockRef::from(&f.sock)
            .send_vectored(&[IoSlice::new(h.as_bytes()), IoSlice::new(payload)]),
    };
    if let Err(e) = sent {
        // A full socket buffer or an ICMP error from the real server: UDP drops.
        Counters::inc(&w.counters.udp_dropped);
        tracing::trace!(%client, error = %e, "udp send to real server failed");
    }
}

fn new_flow(
    w: &Rc<Worker>,
    table: &Rc<Table>,
    vip_sock: &Rc<UdpSocket>,
    key: Key,
    vip: SocketAddr,
    b: &Backend,
) -> io::Result<Rc<UdpFlow>> {
    let flow = Flow::new(w.clone(), b.handle);
    let sock = match connect(b) {
        Ok(s) => s,
        Err(e) => {
            Counters::inc(&w.counters.connect_failures);
            tracing::debug!(rs = %b.addr, error = %e, "udp socket to real server failed");
            flow.close(CloseReason::ConnectFailed);
            return Err(e);
        }
    };
    let header =
        (b.proxy_protocol == ProxyProtocol::V2).then(|| encode_v2(Protocol::Udp, key.0, vip));
    let f = Rc::new(UdpFlow {
        key,
        sock,
        flow,
        header,
        idle: Cell::new(b.udp_idle_timeout),
        last_active: Cell::new(Instant::now()),
        task: Cell::new(None),
    });
    Counters::inc(&w.counters.udp_flows_created);
    Counters::inc(&w.counters.udp_flows_active);
    let task = tokio::task::spawn_local(reply_loop(
        f.clone(),
        Rc::downgrade(table),
        vip_sock.clone(),
    ));
    f.task.set(Some(task.abort_handle()));
    table.borrow_mut().insert(key, f.clone());
    Ok(f)
}

fn connect(b: &Backend) -> io::Result<UdpSocket> {
    let s = Socket::new(
        Domain::for_address(b.addr),
        Type::DGRAM.nonblocking().cloexec(),
        None,
    )?;
    if let Some(src) = b.source {
        s.bind(&SockAddr::from(SocketAddr::new(src, 0)))?;
    }
    s.connect(&SockAddr::from(b.addr))?;
    UdpSocket::from_std(s.into())
}

/// Counts the flow as gone from the active gauge however the reply task ends.
struct ActiveUdp(Rc<Worker>);

impl Drop for ActiveUdp {
    fn drop(&mut self) {
        Counters::dec(&self.0.counters.udp_flows_active);
    }
}

/// Relays replies of one flow back to its client until the flow idles out.
async fn reply_loop(f: Rc<UdpFlow>, table: Weak<Table>, vip_sock: Rc<UdpSocket>) {
    let w = f.flow.worker().clone();
    let _active = ActiveUdp(w.clone());
    let client = f.key.0;
    let mut reason = CloseReason::IdleTimeout;
    loop {
        let deadline = f.last_active.get() + f.idle.get();
        tokio::select! {
            r = f.sock.readable() => {
                if r.is_err() {
                    reason = CloseReason::Reset;
                    break;
                }
                for _ in 0..BATCH / SLOTS {
                    let mut batch = w.udp_batch.borrow_mut();
                    match batch.recv(&f.sock) {
                        Ok(n) => {
                            f.last_active.set(Instant::now());
                            for i in 0..n {
                                f.flow.count(false, batch.get(i).0.len());
                            }
                            // All of them to the client in one sendmmsg, from the VIP socket.
                            let sent = batch.send_to(&vip_sock, client).unwrap_or(0);
                            for _ in sent..n {
                                Counters::inc(&w.counters.udp_dropped);
                            }
                            if n < SLOTS {
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        // ECONNREFUSED from an ICMP port unreachable: the flow stays, as an
                        // IPVS entry does, until it idles out.
                        Err(_) => break,
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                // `--set udp` may have changed the limit since the flow opened.
                if let Some(l) = f.flow.current_limits() {
                    f.idle.set(l.udp_idle_timeout);
                }
                if Instant::now() >= f.last_active.get() + f.idle.get() {
                    break;
                }
            }
        }
    }
    if let Some(t) = table.upgrade() {
        let mut t = t.borrow_mut();
        if t.get(&f.key).is_some_and(|g| Rc::ptr_eq(g, &f)) {
            t.remove(&f.key);
        }
    }
    f.flow.close(reason);
}
