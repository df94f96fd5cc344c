//! TCP: accept, schedule, connect (with one reschedule), PROXY header, relay with half-close.

use std::io::{self, ErrorKind, Read};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::Duration;

use nix::fcntl::{splice, SpliceFFlags};
use nix::libc::{EINPROGRESS, MSG_MORE, MSG_NOSIGNAL};
use socket2::{Domain, SockRef, Socket, Type};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream};

use crate::api::{
    Backend, CloseReason, FlowEvent, FlowInfo, ListenerSpec, Protocol, ProxyProtocol, Refusal,
};
use crate::proxy_protocol::{encode_v1, encode_v2};
use crate::worker::{ActiveGuard, Counters, Flow, Worker};

/// Bytes moved per splice(2) call: the default pipe capacity (16 pages).
const SPLICE_CHUNK: usize = 64 * 1024;

pub(crate) async fn accept_loop(w: Rc<Worker>, spec: ListenerSpec, listener: TcpListener) {
    // A wildcard listener needs the accepted socket's own address as the VIP; a specific one
    // is its own VIP and saves a getsockname per connection.
    let fixed_vip = (!spec.addr.ip().is_unspecified()).then_some(spec.addr);
    loop {
        match listener.accept().await {
            Ok((stream, client)) => {
                Counters::inc(&w.counters.tcp_accepted);
                let vip = match fixed_vip {
                    Some(v) => v,
                    None => match stream.local_addr() {
                        Ok(v) => v,
                        Err(_) => continue,
                    },
                };
                // Boxed: the flow's future is the whole relay's state machine (kilobytes),
                // and tokio moves a task's future by value — into the task, and again with
                // each change of the task's stage — so unboxed each connection paid several
                // copies of it (callgrind: ~3 600 instructions per connection in memcpy);
                // boxed, one copy into the box and pointer moves.
                tokio::task::spawn_local(Box::pin(flow(w.clone(), stream, client, vip)));
            }
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: back off instead of spinning on a full accept queue.
                tracing::warn!(listener = %spec.addr, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Close `s` with RST instead of FIN (SO_LINGER 0), to pass on an abort or a refusal.
pub(crate) fn reset(s: &impl AsFd) {
    let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// Resets the sockets it watches if dropped while armed. A flow the proxy stops — its task is
/// dropped when the drain time at shutdown runs out — must end with RST, not the FIN a plain
/// drop sends: after a FIN a client of a protocol without its own framing would take the
/// truncated stream for a complete one.
pub(crate) struct ResetOnDrop<'a>(pub Option<&'a TcpStream>);

impl ResetOnDrop<'_> {
    /// The flow ends normally: let the socket close with FIN.
    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for ResetOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.0 {
            reset(s);
        }
    }
}

pub(crate) async fn connect(b: &Backend, timeout: Duration) -> io::Result<TcpStream> {
    let sock = Socket::new(
        Domain::for_address(b.addr),
        Type::STREAM.nonblocking().cloexec(),
        None,
    )?;
    if let Some(src) = b.source {
        // Without IP_BIND_ADDRESS_NO_PORT, bind(port 0) reserves a port for every destination,
        // capping one source address at the ephemeral range (~28k) of concurrent flows; with
        // it the port is picked at connect time and only the 4-tuple must be unique. Best
        // effort: where the kernel refuses it, the plain bind still works, with that cap.
        let _ = nix::sys::socket::setsockopt(
            &sock,
            nix::sys::socket::sockopt::IpBindAddressNoPort,
            &true,
        );
        sock.bind(&SocketAddr::new(src, 0).into())?;
    }
    // The relay forwards what it reads at once; Nagle would add latency the kernel IPVS path
    // does not have.
    sock.set_tcp_nodelay(true)?;
    match sock.connect(&b.addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(sock))?;
    // The connect is over when the socket becomes writable. A failed one (refused, reset,
    // unreachable) also hangs up the socket (EPOLLHUP/EPOLLERR, seen as write-closed), and
    // only then is SO_ERROR read: tokio's own connect reads it every time, one getsockopt
    // per connection for nothing.
    let ready = match tokio::time::timeout(timeout, stream.ready(Interest::WRITABLE)).await {
        Ok(r) => r?,
        Err(_) => return Err(io::Error::new(ErrorKind::TimedOut, "connect timed out")),
    };
    if ready.is_write_closed() {
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
    }
    Ok(stream)
}

async fn flow(w: Rc<Worker>, client: TcpStream, peer: SocketAddr, vip: SocketAddr) {
    let info = FlowInfo {
        protocol: Protocol::Tcp,
        client: peer,
        vip,
    };
    let backend = match w.balancer.open(&info) {
        Ok(b) => b,
        Err(Refusal::Inspect(what)) => return crate::pe_relay::flow(w, client, info, what).await,
        Err(r) => {
            Counters::inc(&w.counters.refused);
            tracing::debug!(client = %peer, %vip, refusal = ?r, "refused");
            reset(&client);
            return;
        }
    };
    serve(w, client, info, backend, &[]).await;
}

/// Carry a scheduled flow: connect to `backend` (rescheduling once), send the PROXY header and
/// `first` (bytes a persistence engine read from the client already), then relay.
pub(crate) async fn serve(
    w: Rc<Worker>,
    client: TcpStream,
    info: FlowInfo,
    mut backend: Backend,
    first: &[u8],
) {
    let (peer, vip) = (info.client, info.vip);
    let _active = ActiveGuard::new(&w);
    // Shared with the flow's accounting, which reads the sockets' segment counts (weakly: they
    // are closed when this task ends).
    let client = Rc::new(client);
    let mut client_abort = ResetOnDrop(Some(&client));
    let flow = Flow::new(w.clone(), backend.handle);
    flow.measure_latency(backend.measure_latency);
    let timeout = w.cfg.connect_timeout;
    let server = match connect(&backend, timeout).await {
        Ok(s) => s,
        Err(e) => {
            Counters::inc(&w.counters.connect_failures);
            tracing::debug!(rs = %backend.addr, error = %e, "connect failed, rescheduling");
            let next = w.balancer.reschedule(&info, &backend);
            let Some(next) = next else {
                flow.close(CloseReason::ConnectFailed);
                reset(&client);
                return;
            };
            Counters::inc(&w.counters.reschedules);
            flow.rebind(CloseReason::ConnectFailed, next.handle);
            backend = next;
            match connect(&backend, timeout).await {
                Ok(s) => s,
                Err(e) => {
                    Counters::inc(&w.counters.connect_failures);
                    tracing::debug!(rs = %backend.addr, error = %e, "connect failed after reschedule");
                    flow.close(CloseReason::ConnectFailed);
                    reset(&client);
                    return;
                }
            }
        }
    };
    flow.event(FlowEvent::Connected);
    // The client socket has TCP_NODELAY already: it is inherited from the listener.

    let server = Rc::new(server);
    flow.count_segments(&client, &server);
    let header = match backend.proxy_protocol {
        ProxyProtocol::Off => None,
        ProxyProtocol::V1 => Some(encode_v1(peer, vip)),
        ProxyProtocol::V2 => Some(encode_v2(Protocol::Tcp, peer, vip)),
    };
    let mut result = Ok(());
    if let Some(h) = header {
        result = write_all(&server, h.as_bytes()).await;
    }
    if result.is_ok() && !first.is_empty() {
        flow.count(true, first.len());
        result = write_all(&server, first).await;
    }
    let mut server_abort = ResetOnDrop(Some(&server));
    let limits = (backend.tcp_idle_timeout, backend.tcp_fin_timeout);
    // Kernel splicing (BPF sockmap) where the worker has it: at once, or after a few reads in
    // user space (`ProxyConfig::kernel_splice_after`), so a short flow does not pay for it.
    // A flow timed for pewma stays in user space: the splicer would hide the first byte.
    let splicer = !backend.measure_latency && w.splicer.borrow().is_some();
    let mut hand_off_now = splicer && w.cfg.kernel_splice_after == 0;
    if splicer && !hand_off_now {
        flow.hand_off_after(Some(w.cfg.kernel_splice_after));
    }
    let mut idled = false;
    while result.is_ok() {
        if hand_off_now {
            if let crate::kernel_splice::Started::Spliced { held } =
                crate::kernel_splice::start(&flow, &client, &server)
            {
                // The spliced relay takes the sockets out of tokio (and resets them if
                // dropped).
                client_abort.disarm();
                server_abort.disarm();
                drop((client_abort, server_abort));
                let addrs = (peer, backend.addr);
                return crate::kernel_splice::serve(&flow, client, server, held, limits, addrs)
                    .await;
            }
            // Refused for these sockets: on in user space, for good.
            flow.hand_off_after(None);
        }
        let relay = async {
            tokio::try_join!(
                copy_dir(&flow, &client, &server, true),
                copy_dir(&flow, &server, &client, false)
            )
            .map(|_| ())
        };
        tokio::select! {
            r = relay => result = r,
            () = idle_watch(&flow, limits.0, limits.1) => {
                idled = true;
            }
        }
        if is_hand_off(&result) {
            // Both directions stopped with nothing in hand (`Flow::hand_off_due`).
            result = Ok(());
            hand_off_now = true;
            continue;
        }
        break;
    }
    if finish(
        &flow,
        result,
        idled,
        &*client,
        &*server,
        (peer, backend.addr),
    ) {
        client_abort.disarm();
        server_abort.disarm();
    }
}

/// Ends a relayed flow after its relay returned `result` (or its idle limit ran out: `idled`):
/// resets both sockets unless it ended normally, and reports `Closed`. `true` when it ended
/// normally (the sockets may close with FIN). `addrs`: client and real server, for the log.
pub(crate) fn finish(
    flow: &Flow,
    result: io::Result<()>,
    idled: bool,
    client: &impl AsFd,
    server: &impl AsFd,
    addrs: (SocketAddr, SocketAddr),
) -> bool {
    let (peer, rs) = addrs;
    match result {
        Ok(()) if idled => {
            tracing::debug!(client = %peer, %rs, "flow idle, reset");
            reset(client);
            reset(server);
            flow.close(CloseReason::IdleTimeout);
            false
        }
        Ok(()) => {
            flow.close(CloseReason::Normal);
            true
        }
        Err(e) => {
            tracing::debug!(client = %peer, %rs, error = %e, "flow reset");
            Counters::inc(&flow.worker().counters.resets);
            reset(client);
            reset(server);
            flow.close(CloseReason::Reset);
            false
        }
    }
}

/// Completes when the flow has been idle longer than its limit for the current phase (both
/// directions open, or half-closed). Never completes when neither limit is set. The timer is
/// re-armed only when it fires, so an active flow costs one wake-up per idle period.
pub(crate) async fn idle_watch(flow: &Flow, mut idle: Option<Duration>, mut fin: Option<Duration>) {
    if idle.is_none() && fin.is_none() {
        return std::future::pending().await;
    }
    // Re-check period while the current phase has no limit (the phase may change).
    const NO_LIMIT_RECHECK: Duration = Duration::from_secs(1);
    loop {
        let limit = if flow.half_closed() { fin } else { idle };
        let Some(limit) = limit else {
            tokio::time::sleep(NO_LIMIT_RECHECK).await;
            continue;
        };
        let mut deadline = flow.last_active() + limit;
        if tokio::time::Instant::now() >= deadline {
            // A spliced flow's data never passes here: ask the kernel when it last moved.
            flow.refresh_last_active();
            deadline = flow.last_active() + limit;
        }
        if tokio::time::Instant::now() >= deadline {
            // The limit ran out; `--set` may have changed it since the flow opened.
            match flow.current_limits() {
                Some(l) if (l.tcp_idle_timeout, l.tcp_fin_timeout) != (idle, fin) => {
                    (idle, fin) = (l.tcp_idle_timeout, l.tcp_fin_timeout);
                    continue;
                }
                _ => return,
            }
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// What one buffered step did.
enum Step {
    /// Spurious readiness.
    Again,
    /// The source sent FIN.
    Eof,
    /// Data forwarded; `full` when the read filled the whole buffer (bulk transfer).
    Sent { full: bool },
    /// Data read but only partly written; the rest must be written before reading again.
    Pending { rest: Vec<u8>, full: bool },
}

/// One read from `from` into `buf`. A read shorter than `buf` emptied the socket's receive
/// queue (tcp_recvmsg only stops early when the queue is empty), so the socket's readiness is
/// cleared right away, as on EAGAIN: the next wait goes straight to the reactor instead of
/// costing one more `recv` that would only return EAGAIN (one syscall per message and
/// direction, a third of the relay's syscalls for small request/response traffic). Safe with
/// the reactor's edge-triggered epoll: data arriving after the read raises a new edge, and a
/// FIN already seen stays (tokio keeps the closed state when clearing). nginx makes the same
/// inference (`rev->ready = 0` on a short read). The one case where a short read leaves data
/// behind is a read stopped at a TCP urgent (MSG_OOB) mark, obsolete since RFC 6093: the rest
/// then waits for the next segment or FIN of that direction.
fn read_drain(from: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut short = 0;
    let r = from.try_io(Interest::READABLE, || {
        let n = (&*SockRef::from(from)).read(buf)?;
        if n > 0 && n < buf.len() {
            short = n;
            // WouldBlock is how try_io is told to clear the readiness; the data is kept.
            return Err(ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match r {
        Err(e) if e.kind() == ErrorKind::WouldBlock && short > 0 => Ok(short),
        r => r,
    }
}

pub(crate) async fn write_all(to: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        to.writable().await?;
        match to.try_write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Relay one direction until EOF, then forward the half-close. `inbound` is client → server.
///
/// Starts with buffered copy through the worker's scratch buffer (small messages cost one
/// read + one write and no per-connection memory); once a read fills the whole buffer the
/// direction is bulk and switches to splice(2) through a pooled pipe (no copy to user space).
pub(crate) async fn copy_dir(
    flow: &Flow,
    from: &TcpStream,
    to: &TcpStream,
    inbound: bool,
) -> io::Result<()> {
    let w = flow.worker();
    let mut bulk = false;
    let mut splice_ok = w.cfg.splice;
    loop {
        if bulk && splice_ok {
            match splice_dir(flow, from, to, inbound).await? {
                SpliceEnd::Eof => break,
                // Splice refused by this kind of socket or no pipe: buffered copy from now on.
                SpliceEnd::Unsupported => splice_ok = false,
            }
        }
        let ready = from.ready(Interest::READABLE | Interest::ERROR).await?;
        // The peer's FIN is already queued behind whatever this read returns (EPOLLRDHUP), so
        // the next read is EOF and the FIN is forwarded right after: MSG_MORE holds the data
        // back so that data and FIN leave in one segment, as HAProxy does. One loopback
        // segment less per closing flow (and one wake-up less for the receiver).
        // More: TCP takes the FIN only in sequence, so every byte before it was queued when
        // the readiness said so, and a short read (which empties the queue, see
        // `read_drain`) leaves nothing but the EOF: that read is not made (one syscall less
        // per closing direction that carried data, e.g. a response followed by the server's
        // close). Not after an error (EPOLLERR, e.g. a reset): the read must report it.
        let fin_queued = ready.is_read_closed() && !ready.is_error();
        let flags = if ready.is_read_closed() {
            MSG_MORE | MSG_NOSIGNAL
        } else {
            MSG_NOSIGNAL
        };
        let step = {
            let mut buf = w.scratch.borrow_mut();
            match read_drain(from, &mut buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => Step::Again,
                Err(e) => return Err(e),
                Ok(0) => Step::Eof,
                Ok(n) => {
                    flow.count_bytes(inbound, n);
                    let full = n == buf.len();
                    // Write directly, bypassing tokio's cached readiness (a fresh socket is
                    // writable before the reactor has said so).
                    match SockRef::from(to).send_with_flags(&buf[..n], flags) {
                        Ok(m) if m == n => Step::Sent { full },
                        Ok(m) => Step::Pending {
                            rest: buf[m..n].to_vec(),
                            full,
                        },
                        Err(e) if e.kind() == ErrorKind::WouldBlock => Step::Pending {
                            rest: buf[..n].to_vec(),
                            full,
                        },
                        Err(e) => return Err(e),
                    }
                }
            }
        };
        match step {
            Step::Again => {
                flow.set_clean(inbound, true);
                continue;
            }
            Step::Eof => break,
            Step::Sent { full } => bulk = full,
            Step::Pending { rest, full } => {
                flow.set_clean(inbound, false);
                write_all(to, &rest).await?;
                bulk = full;
            }
        }
        // A short read emptied the queue (`read_drain`); a full one may have stopped inside an
        // skb. Bulk directions are handed over from `splice_dir`, at their EAGAIN.
        flow.set_clean(inbound, !bulk);
        if fin_queued && !bulk {
            break;
        }
        if !bulk && flow.hand_off_due(inbound, false) {
            return Err(io::Error::other(HandOff));
        }
    }
    if !flow.half_closed() {
        SockRef::from(to).shutdown(Shutdown::Write)?;
    }
    // else the other direction has finished already, so both sockets are closed as soon as
    // this returns, and close(2) sends the FIN itself: neither socket has unread data (each
    // was read to EOF), so it is a FIN and not a RST, and any data held back is sent first.
    // A shutdown here would be one more syscall for the same segment.
    flow.event(if inbound {
        FlowEvent::ClientFin
    } else {
        FlowEvent::ServerFin
    });
    Ok(())
}

enum SpliceEnd {
    Eof,
    Unsupported,
}

fn splice_flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}

async fn splice_dir(
    flow: &Flow,
    from: &TcpStream,
    to: &TcpStream,
    inbound: bool,
) -> io::Result<SpliceEnd> {
    let w = flow.worker();
    let pipe = match w.take_pipe() {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, "no pipe for splice, buffered copy");
            return Ok(SpliceEnd::Unsupported);
        }
    };
    Counters::inc(&w.counters.spliced);
    let mut moved_any = false;
    loop {
        from.readable().await?;
        let n = match from.try_io(Interest::READABLE, || {
            splice(from, None, &pipe.write, None, SPLICE_CHUNK, splice_flags())
                .map_err(io::Error::from)
        }) {
            Ok(0) => {
                w.put_pipe(pipe);
                return Ok(SpliceEnd::Eof);
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                // The queue is empty and the pipe too: a clean point to hand the flow over.
                flow.set_clean(inbound, true);
                if flow.hand_off_due(inbound, true) {
                    w.put_pipe(pipe);
                    return Err(io::Error::other(HandOff));
                }
                continue;
            }
            Err(e) if !moved_any && e.raw_os_error() == Some(nix::libc::EINVAL) => {
                w.put_pipe(pipe);
                return Ok(SpliceEnd::Unsupported);
            }
            Err(e) => return Err(e),
        };
        moved_any = true;
        flow.count_bytes(inbound, n);
        flow.set_clean(inbound, false);
        let mut in_pipe = n;
        while in_pipe > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                splice(&pipe.read, None, to, None, in_pipe, splice_flags()).map_err(io::Error::from)
            }) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(m) => in_pipe -= m,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // The pipe still holds data: it is dropped, never returned to the pool.
                Err(e) => return Err(e),
            }
        }
    }
}

/// The error a user-space relay direction returns to stop the relay when the flow is due for
/// the kernel splicer ([`Flow::hand_off_due`]); never leaves [`serve`].
#[derive(Debug)]
struct HandOff;

impl std::fmt::Display for HandOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("flow handed to the kernel splicer")
    }
}

impl std::error::Error for HandOff {}

fn is_hand_off(r: &io::Result<()>) -> bool {
    matches!(r, Err(e) if e.get_ref().is_some_and(|i| i.is::<HandOff>()))
}
