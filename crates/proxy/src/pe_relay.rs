//! TCP flows of services whose persistence engine reads content (`--pe sip|sni|cookie|
//! cookie-learn|header`): the proxy reads what the engine needs before a real server is
//! chosen ([`Inspect`]).
//!
//! * First message (SIP over TCP) and TLS ClientHello (`sni`): read up to a bounded size, ask
//!   the balancer, then the ordinary relay of [`crate::tcp`] carries the flow, starting with
//!   the bytes already read.
//! * HTTP: the proxy follows the connection request by request. Each request head is parsed
//!   (bounded: [`http::MAX_HEAD`] bytes, [`http::MAX_HEADERS`] lines; `431` and close beyond)
//!   and routed by its own key ([`crate::Balancer::route_request`]). When a request goes to
//!   another real server than the previous one, the previous response has been relayed in
//!   full already (requests are handled one at a time), so the proxy leaves its connection
//!   to the old server — parked in the worker's [`ServerPool`] when it ended its last response
//!   cleanly — and takes a parked one to the new server or opens one: a client connection
//!   may be re-pinned between requests, never within one. Request bodies and responses are framed
//!   (`Content-Length`, chunked, no-body responses) so the next head is found; pipelined
//!   requests wait in the buffer and are served in order. A `101 Switching Protocols` answer
//!   to an `Upgrade` request, or a 2xx answer to `CONNECT`, turns the rest of the connection
//!   into a plain byte relay. Bytes that are not HTTP/1.x close the connection (counted by
//!   reason, [`ContentReject`]).

use std::io::{self, ErrorKind, IoSlice};
use std::net::Shutdown;
use std::rc::Rc;
use std::time::Duration;

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::api::{
    Backend, CloseReason, ContentReject, FlowEvent, FlowInfo, Inspect, ProxyProtocol, Refusal,
};
use crate::http::{self, tls, BodyKind, BodyScanner, HeadError, Parse};
use crate::proxy_protocol::{encode_v1, encode_v2};
use crate::server_pool::{self, ServerPool};
use crate::tcp::{connect, copy_dir, reset, serve, write_all, ResetOnDrop};
use crate::worker::{ActiveGuard, Counters, Flow, Worker};

/// Longest wait for a complete request head (also the first message or ClientHello) from the
/// moment the proxy starts waiting for it: the keep-alive idle limit between requests, and the
/// bound on a client trickling a head byte by byte.
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Wait for a real server's response (or further body bytes) when the service's limits give
/// none: the IPVS ESTABLISHED timeout.
const DEFAULT_IDLE: Duration = Duration::from_secs(900);

/// Bytes read per call.
const READ_CHUNK: usize = 16 * 1024;

/// After an error answer, how long the client's further bytes are read and discarded before the
/// socket is closed: closing with unread data would send RST, which can destroy the answer
/// before the client has read it.
const LINGER: Duration = Duration::from_secs(2);

pub(crate) async fn flow(w: Rc<Worker>, client: TcpStream, info: FlowInfo, what: Inspect) {
    match what {
        Inspect::FirstData => first_message(w, client, info).await,
        Inspect::TlsHello => tls_hello(w, client, info).await,
        Inspect::Http => Http::new(w, client, info).run().await,
    }
}

/// Read more bytes into `buf`; `Ok(0)` at EOF.
///
/// Reads into the vector's spare capacity (nothing is zeroed), so a buffer kept for a
/// connection's life costs no allocation or clearing per read.
async fn read_more(s: &TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> io::Result<usize> {
    buf.reserve(READ_CHUNK);
    loop {
        match tokio::time::timeout_at(deadline, s.readable()).await {
            Err(_) => return Err(ErrorKind::TimedOut.into()),
            Ok(r) => r?,
        }
        let room = buf.capacity() - buf.len();
        match s.try_read_buf(buf) {
            Ok(n) => {
                if n > 0 && n < room {
                    // A short read emptied the socket's queue: forget the readiness now, so
                    // the next wait goes to the event loop instead of costing a `read` that
                    // returns EAGAIN first (bytes arriving meanwhile raise a new event).
                    let _ = s.try_io(Interest::READABLE, || {
                        Err::<(), _>(io::Error::from(ErrorKind::WouldBlock))
                    });
                }
                return Ok(n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// Refuse a flow the balancer would not schedule.
fn refused(w: &Worker, client: &TcpStream, info: &FlowInfo, r: Refusal) {
    Counters::inc(&w.counters.refused);
    tracing::debug!(client = %info.client, vip = %info.vip, refusal = ?r, "refused");
    reset(client);
}

/// Answer with an error status (if any), then close without destroying the answer.
async fn close_with(client: &TcpStream, status: Option<&str>) {
    if let Some(s) = status {
        let msg = format!("HTTP/1.1 {s}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        if write_all(client, msg.as_bytes()).await.is_err() {
            reset(client);
            return;
        }
    }
    let _ = SockRef::from(client).shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut sink = Vec::new();
    let mut discarded = 0;
    while discarded < 1 << 20 {
        sink.clear();
        match read_more(client, &mut sink, deadline).await {
            Ok(0) => return,
            Ok(n) => discarded += n,
            Err(_) => break,
        }
    }
    reset(client);
}

/// SIP over TCP: the first message's head (up to its empty line) decides.
async fn first_message(w: Rc<Worker>, client: TcpStream, info: FlowInfo) {
    let mut buf = Vec::new();
    let deadline = Instant::now() + HEAD_TIMEOUT;
    loop {
        if buf.windows(4).any(|x| x == b"\r\n\r\n") || buf.len() >= http::MAX_HEAD {
            break;
        }
        match read_more(&client, &mut buf, deadline).await {
            Ok(0) if buf.is_empty() => return,
            Ok(0) => break,
            Ok(_) => {}
            Err(_) if buf.is_empty() => return,
            Err(_) => break,
        }
    }
    match w.balancer.open_with(&info, &buf) {
        Ok(b) => serve(w, client, info, b, &buf).await,
        Err(r) => refused(&w, &client, &info, r),
    }
}

/// `sni`: the ClientHello's server name decides; nothing is decrypted.
async fn tls_hello(w: Rc<Worker>, client: TcpStream, info: FlowInfo) {
    let mut buf = Vec::new();
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let name = loop {
        if !buf.is_empty() {
            match tls::client_hello(&buf) {
                Ok(tls::Hello::Complete(name)) => break name,
                Ok(tls::Hello::Partial) => {}
                Err(e) => {
                    let why = match e {
                        tls::HelloError::NotTls => ContentReject::NotTls,
                        _ => ContentReject::BadHello,
                    };
                    tracing::debug!(client = %info.client, reason = e.label(), "closed");
                    w.balancer.rejected(&info, why);
                    close_with(&client, None).await;
                    return;
                }
            }
        }
        match read_more(&client, &mut buf, deadline).await {
            Ok(0) if buf.is_empty() => return,
            Ok(n) if n > 0 => {}
            _ => {
                w.balancer.rejected(&info, ContentReject::Timeout);
                close_with(&client, None).await;
                return;
            }
        }
    };
    match w.balancer.open_tls(&info, name.as_deref()) {
        Ok(b) => serve(w, client, info, b, &buf).await,
        Err(r) => refused(&w, &client, &info, r),
    }
}

/// The connection to the real server of the current request.
struct Upstream {
    backend: Backend,
    sock: TcpStream,
    flow: Rc<Flow>,
    /// The connection has answered a request before (kept from the previous request or taken
    /// from the pool), so the server may have closed it as idle just before this request: a
    /// failure before any byte of an answer is then retried on a fresh connection, for
    /// requests that can be sent again.
    carried: bool,
    /// The last exchange ended cleanly with both sides keeping the connection: it may be
    /// parked in the worker's [`ServerPool`] when this client connection leaves it.
    parkable: bool,
}

impl Upstream {
    fn idle(&self) -> Duration {
        self.backend.tcp_idle_timeout.unwrap_or(DEFAULT_IDLE)
    }

    /// The server closed or reset the idle connection (its keep-alive timeout): a readable
    /// socket between responses can only mean that.
    fn gone(&self) -> bool {
        let mut b = [0u8; 1];
        !matches!(self.sock.try_read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock)
    }

    /// Done with this server for this client connection: its handle closes normally, and the
    /// connection is parked for reuse when it can be, else finished with FIN.
    fn release(self, w: &Rc<Worker>) {
        self.flow.event(FlowEvent::ClientFin);
        self.flow.close(CloseReason::Normal);
        match server_pool::Key::of(&self.backend).filter(|_| self.parkable) {
            Some(key) => ServerPool::put(w, key, self.sock),
            None => {
                let _ = SockRef::from(&self.sock).shutdown(Shutdown::Write);
            }
        }
    }

    fn abort(self) {
        reset(&self.sock);
        self.flow.close(CloseReason::Reset);
    }
}

/// How one request/response exchange ended.
enum Exchange {
    /// Both sides keep the connection: wait for the next request.
    KeepAlive,
    /// The connection ends after this response.
    Close,
    /// Switched protocols: relay bytes both ways; the server's bytes already read come first.
    Upgraded(Vec<u8>),
}

/// Why the HTTP loop stopped.
enum End {
    /// The client closed between requests, or a response ended the connection.
    Done,
    /// Refused content: counted, answered with the status if any, closed.
    Reject(ContentReject, Option<&'static str>),
    /// No real server for a request (balancer refusal or failed connects): answered `503`.
    Refused,
    /// An I/O error or a broken message mid-exchange: reset both sides.
    Reset,
}

struct Http {
    w: Rc<Worker>,
    client: TcpStream,
    info: FlowInfo,
    /// Client bytes read and not yet forwarded (the next pipelined requests included).
    cbuf: Vec<u8>,
    /// Server bytes read and not yet forwarded; kept for the connection's life so its memory
    /// is reused from response to response.
    sbuf: Vec<u8>,
    up: Option<Upstream>,
}

impl Http {
    fn new(w: Rc<Worker>, client: TcpStream, info: FlowInfo) -> Self {
        Http {
            w,
            client,
            info,
            cbuf: Vec::new(),
            sbuf: Vec::new(),
            up: None,
        }
    }

    async fn run(mut self) {
        let _active = ActiveGuard::new(&self.w);
        let end = self.serve().await;
        let mut abort = ResetOnDrop(Some(&self.client));
        match end {
            End::Done => {
                if let Some(u) = self.up.take() {
                    u.release(&self.w);
                }
                abort.disarm();
                let _ = SockRef::from(&self.client).shutdown(Shutdown::Write);
            }
            End::Reject(why, status) => {
                tracing::debug!(client = %self.info.client, reason = why.label(), "closed");
                self.w.balancer.rejected(&self.info, why);
                if let Some(u) = self.up.take() {
                    u.release(&self.w);
                }
                abort.disarm();
                close_with(&self.client, status).await;
            }
            End::Refused => {
                if let Some(u) = self.up.take() {
                    u.release(&self.w);
                }
                abort.disarm();
                close_with(&self.client, Some("503 Service Unavailable")).await;
            }
            End::Reset => {
                Counters::inc(&self.w.counters.resets);
                if let Some(u) = self.up.take() {
                    u.abort();
                }
            }
        }
    }

    /// Read until `cbuf` holds a complete request head; `Ok(None)` when the client closed or
    /// went idle with nothing pending.
    async fn request_head(&mut self) -> Result<Option<usize>, End> {
        let deadline = Instant::now() + HEAD_TIMEOUT;
        loop {
            if !self.cbuf.is_empty() {
                match http::request_head_len(&self.cbuf) {
                    Ok(Some(n)) => return Ok(Some(n)),
                    Ok(None) => {}
                    Err(e) => return Err(reject_head(e)),
                }
            }
            match read_more(&self.client, &mut self.cbuf, deadline).await {
                Ok(0) | Err(_) if self.cbuf.is_empty() => return Ok(None),
                Ok(0) => return Err(End::Reject(ContentReject::BadRequest, None)),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::TimedOut => {
                    return Err(End::Reject(
                        ContentReject::Timeout,
                        Some("408 Request Timeout"),
                    ))
                }
                Err(_) => return Err(End::Reset),
            }
        }
    }

    async fn serve(&mut self) -> End {
        loop {
            match self.request_head().await {
                Ok(Some(_)) => {}
                Ok(None) => return End::Done,
                Err(e) => return e,
            }
            let req = match http::parse_request(&self.cbuf) {
                Ok(Parse::Complete(r)) => r,
                Ok(Parse::Partial) => {
                    return End::Reject(ContentReject::BadRequest, Some("400 Bad Request"))
                }
                Err(e) => return reject_head(e),
            };
            let head_len = req.len;
            let body = match req.body() {
                Ok(b) => b,
                Err(e) => return reject_head(e),
            };
            let method = Method::of(req.method);
            let client_keeps = req.keep_alive();
            let switching = req.wants_upgrade() || req.is_connect();
            // A request that can be sent again goes over a kept or parked connection without
            // a check (a closed one is noticed by the failed exchange and retried); any other
            // first checks that the server has not closed the kept connection.
            let repeatable =
                !switching && server_pool::reusable_for(req.method, body != BodyKind::None);
            if !repeatable && self.up.as_ref().is_some_and(Upstream::gone) {
                if let Some(u) = self.up.take() {
                    u.abort();
                }
            }
            let current = self.up.as_ref().map(|u| &u.backend);
            let routed = match self.w.balancer.route_request(&self.info, &req, current) {
                Ok(r) => r,
                Err(r) => {
                    Counters::inc(&self.w.counters.refused);
                    tracing::debug!(client = %self.info.client, refusal = ?r, "request refused");
                    return End::Refused;
                }
            };
            drop(req);
            if let Some(b) = routed.backend {
                if let Some(old) = self.up.take() {
                    old.release(&self.w);
                }
                match self.open_upstream(b, repeatable).await {
                    Some(u) => self.up = Some(u),
                    None => return End::Refused,
                }
            }
            let add_header = routed.add_header.as_deref();
            let (sent, answered) = if repeatable {
                match self.exchange_repeatable(head_len, method, add_header).await {
                    Ok(a) => (Ok(()), a),
                    Err(e) => return e,
                }
            } else {
                let Some(up) = self.up.as_mut() else {
                    return End::Refused;
                };
                up.parkable = false;
                up.flow.count(true, head_len);
                if write_all(&up.sock, &self.cbuf[..head_len]).await.is_err() {
                    return End::Reset;
                }
                self.cbuf.drain(..head_len);
                let up = &*up;
                tokio::join!(
                    send_body(up, &self.client, &mut self.cbuf, body),
                    relay_response(
                        &self.w,
                        up,
                        &self.client,
                        &mut self.sbuf,
                        method,
                        switching,
                        add_header,
                    )
                )
            };
            let exchange = match answered {
                Ok(x) => x,
                Err(RespError::Io | RespError::Silent { eof: false }) => return End::Reset,
                Err(RespError::Silent { eof: true }) => {
                    return End::Reject(ContentReject::BadResponse, Some("502 Bad Gateway"))
                }
                Err(RespError::Bad { sent_any }) => {
                    let status = (!sent_any).then_some("502 Bad Gateway");
                    return End::Reject(ContentReject::BadResponse, status);
                }
            };
            match (sent, exchange) {
                (Err(_), Exchange::KeepAlive) => return End::Reset,
                (_, Exchange::Upgraded(early)) => return self.tunnel(early).await,
                (Err(_), Exchange::Close) | (Ok(()), Exchange::Close) => return End::Done,
                (Ok(()), Exchange::KeepAlive) => {
                    if let Some(u) = self.up.as_mut() {
                        u.parkable = true;
                        u.carried = true;
                    }
                    if !client_keeps {
                        return End::Done;
                    }
                }
            }
        }
    }

    /// Send a bodiless idempotent request (its head is `cbuf[..head_len]`) and relay the
    /// answer. When the connection carried earlier exchanges and the server closes or resets it
    /// before any byte of an answer (it timed the connection out as idle while the request
    /// was on its way), the same request goes once more on a fresh connection to the same
    /// server.
    async fn exchange_repeatable(
        &mut self,
        head_len: usize,
        method: Method,
        add_header: Option<&str>,
    ) -> Result<Result<Exchange, RespError>, End> {
        let mut retried = false;
        loop {
            let Some(up) = self.up.as_mut() else {
                return Err(End::Refused);
            };
            up.parkable = false;
            let answered = match write_all(&up.sock, &self.cbuf[..head_len]).await {
                Ok(()) => {
                    relay_response(
                        &self.w,
                        up,
                        &self.client,
                        &mut self.sbuf,
                        method,
                        false,
                        add_header,
                    )
                    .await
                }
                Err(_) => Err(RespError::Silent { eof: false }),
            };
            if up.carried && !retried && matches!(answered, Err(RespError::Silent { .. })) {
                retried = true;
                tracing::debug!(rs = %up.backend.addr, "idle server connection closed, retrying");
                if !self.redial().await {
                    return Err(End::Refused);
                }
                continue;
            }
            up.flow.count(true, head_len);
            self.cbuf.drain(..head_len);
            return Ok(answered);
        }
    }

    /// Replace the current server connection (found closed) by a fresh one to the same server,
    /// keeping its handle.
    async fn redial(&mut self) -> bool {
        let Some(up) = self.up.as_mut() else {
            return false;
        };
        reset(&up.sock);
        match dial(&self.w, &up.backend, &self.info).await {
            Ok(s) => {
                up.sock = s;
                up.carried = false;
                true
            }
            Err(_) => {
                Counters::inc(&self.w.counters.connect_failures);
                if let Some(u) = self.up.take() {
                    u.flow.close(CloseReason::ConnectFailed);
                }
                false
            }
        }
    }

    /// Connect to a newly routed backend (one reschedule if the connect fails) and send its
    /// PROXY header; `reuse`: a parked connection to the server may serve instead.
    async fn open_upstream(&self, mut b: Backend, reuse: bool) -> Option<Upstream> {
        let w = &self.w;
        let flow = Flow::new(w.clone(), b.handle);
        let parked = server_pool::Key::of(&b)
            .filter(|_| reuse)
            .and_then(|k| w.server_pool.take(k));
        if let Some(sock) = parked {
            flow.event(FlowEvent::Connected);
            return Some(Upstream {
                backend: b,
                sock,
                flow,
                carried: true,
                parkable: false,
            });
        }
        let sock = match dial(w, &b, &self.info).await {
            Ok(s) => s,
            Err(e) => {
                Counters::inc(&w.counters.connect_failures);
                tracing::debug!(rs = %b.addr, error = %e, "connect failed, rescheduling");
                let Some(next) = w.balancer.reschedule(&self.info, &b) else {
                    flow.close(CloseReason::ConnectFailed);
                    return None;
                };
                Counters::inc(&w.counters.reschedules);
                flow.rebind(CloseReason::ConnectFailed, next.handle);
                b = next;
                match dial(w, &b, &self.info).await {
                    Ok(s) => s,
                    Err(_) => {
                        Counters::inc(&w.counters.connect_failures);
                        flow.close(CloseReason::ConnectFailed);
                        return None;
                    }
                }
            }
        };
        flow.event(FlowEvent::Connected);
        Some(Upstream {
            backend: b,
            sock,
            flow,
            carried: false,
            parkable: false,
        })
    }

    /// After a protocol switch: forward what each side sent already, then relay bytes.
    async fn tunnel(&mut self, early: Vec<u8>) -> End {
        let Some(up) = self.up.as_ref() else {
            return End::Reset;
        };
        if !early.is_empty() {
            up.flow.count(false, early.len());
            if write_all(&self.client, &early).await.is_err() {
                return End::Reset;
            }
        }
        if !self.cbuf.is_empty() {
            up.flow.count(true, self.cbuf.len());
            if write_all(&up.sock, &self.cbuf).await.is_err() {
                return End::Reset;
            }
            self.cbuf.clear();
        }
        let relay = async {
            tokio::try_join!(
                copy_dir(&up.flow, &self.client, &up.sock, true),
                copy_dir(&up.flow, &up.sock, &self.client, false)
            )
        };
        let r = tokio::select! {
            r = relay => r.map(|_| ()),
            () = crate::tcp::idle_watch(&up.flow, up.backend.tcp_idle_timeout, up.backend.tcp_fin_timeout) => {
                Err(ErrorKind::TimedOut.into())
            }
        };
        match r {
            Ok(()) => {
                // Both directions finished with FIN, already forwarded by the relay.
                if let Some(u) = self.up.take() {
                    u.flow.close(CloseReason::Normal);
                }
                End::Done
            }
            Err(_) => End::Reset,
        }
    }
}

/// A new connection to `b`'s real server, its PROXY header (if any) sent.
async fn dial(w: &Worker, b: &Backend, info: &FlowInfo) -> io::Result<TcpStream> {
    let sock = connect(b, w.cfg.connect_timeout).await?;
    let header = match b.proxy_protocol {
        ProxyProtocol::Off => None,
        ProxyProtocol::V1 => Some(encode_v1(info.client, info.vip)),
        ProxyProtocol::V2 => Some(encode_v2(crate::api::Protocol::Tcp, info.client, info.vip)),
    };
    if let Some(h) = header {
        if let Err(e) = write_all(&sock, h.as_bytes()).await {
            reset(&sock);
            return Err(e);
        }
    }
    Ok(sock)
}

/// What of a request's method its response's framing depends on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Head,
    Connect,
    Other,
}

impl Method {
    fn of(m: &[u8]) -> Method {
        match m {
            b"HEAD" => Method::Head,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }
    /// The token [`http::Response::body`] takes.
    fn token(self) -> &'static [u8] {
        match self {
            Method::Head => b"HEAD",
            Method::Connect => b"CONNECT",
            Method::Other => b"GET",
        }
    }
}

fn reject_head(e: HeadError) -> End {
    match e {
        HeadError::TooLarge | HeadError::TooManyHeaders => End::Reject(
            ContentReject::HeadTooLarge,
            Some("431 Request Header Fields Too Large"),
        ),
        HeadError::NotHttp => End::Reject(ContentReject::NotHttp, None),
        HeadError::Malformed(_) => End::Reject(ContentReject::BadRequest, Some("400 Bad Request")),
    }
}

/// Forward the request body (framed by `kind`) from `cbuf` and the client to the server.
async fn send_body(
    up: &Upstream,
    client: &TcpStream,
    cbuf: &mut Vec<u8>,
    kind: BodyKind,
) -> io::Result<()> {
    let mut scan = BodyScanner::new(kind);
    loop {
        if !cbuf.is_empty() && !scan.done() {
            let n = scan
                .feed(cbuf)
                .map_err(|_| io::Error::from(ErrorKind::InvalidData))?;
            if n > 0 {
                up.flow.count(true, n);
                write_all(&up.sock, &cbuf[..n]).await?;
                cbuf.drain(..n);
            }
        }
        if scan.done() {
            return Ok(());
        }
        let deadline = Instant::now() + up.idle();
        if read_more(client, cbuf, deadline).await? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
    }
}

enum RespError {
    /// The server or the client failed: reset.
    Io,
    /// The server closed (`eof`) or reset the connection before any byte of an answer.
    Silent { eof: bool },
    /// The server's response cannot be framed; `sent_any`: part of it reached the client.
    Bad { sent_any: bool },
}

/// Write all of `parts` in as few `writev` calls as the socket takes.
async fn write_parts(to: &TcpStream, mut parts: [&[u8]; 3]) -> io::Result<()> {
    loop {
        let Some(first) = parts.iter().position(|p| !p.is_empty()) else {
            return Ok(());
        };
        to.writable().await?;
        let iov = parts.map(IoSlice::new);
        match to.try_write_vectored(&iov[first..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(mut n) => {
                for p in &mut parts {
                    let k = n.min(p.len());
                    *p = &p[k..];
                    n -= k;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// Relay the response to one request: interim (1xx) responses, the final head (with the
/// engine's added header), and its body. The head, the added header and the body bytes read
/// with the head leave in one `writev` (a small response: one read, one write).
async fn relay_response(
    w: &Worker,
    up: &Upstream,
    client: &TcpStream,
    sbuf: &mut Vec<u8>,
    method: Method,
    switching: bool,
    add_header: Option<&str>,
) -> Result<Exchange, RespError> {
    let mut sent_any = false;
    let bad = |sent_any| RespError::Bad { sent_any };
    loop {
        let deadline = Instant::now() + up.idle();
        let head = loop {
            if !sbuf.is_empty() {
                match http::parse_response(sbuf) {
                    Ok(Parse::Complete(r)) => break r,
                    Ok(Parse::Partial) => {}
                    Err(_) => return Err(bad(sent_any)),
                }
            }
            let silent = sbuf.is_empty() && !sent_any;
            match read_more(&up.sock, sbuf, deadline).await {
                Ok(0) if silent => return Err(RespError::Silent { eof: true }),
                Ok(0) => return Err(bad(sent_any)),
                Ok(_) => {}
                Err(e) if silent && e.kind() != ErrorKind::TimedOut => {
                    return Err(RespError::Silent { eof: false })
                }
                Err(_) => return Err(RespError::Io),
            }
        };
        let interim = head.is_interim();
        if !interim {
            w.balancer.response(up.backend.handle, &head);
        }
        let kind = head.body(method.token()).map_err(|_| bad(sent_any))?;
        let (status, keep, at, len) = (head.status, head.keep_alive(), head.headers_at, head.len);
        drop(head);
        up.flow.count(false, len);
        let added = add_header.filter(|_| !interim).unwrap_or("").as_bytes();
        let upgraded = switching
            && (status == 101 || (method == Method::Connect && (200..300).contains(&status)));
        // The body bytes already read go out with the head.
        let mut scan = BodyScanner::new(kind);
        let with_head = if interim || upgraded {
            0
        } else {
            scan.feed(&sbuf[len..]).map_err(|_| bad(sent_any))?
        };
        up.flow.count(false, with_head);
        write_parts(client, [&sbuf[..at], added, &sbuf[at..len + with_head]])
            .await
            .map_err(|_| RespError::Io)?;
        sent_any = true;
        sbuf.drain(..len + with_head);
        if interim {
            continue;
        }
        if upgraded {
            return Ok(Exchange::Upgraded(std::mem::take(sbuf)));
        }
        loop {
            if !sbuf.is_empty() && !scan.done() {
                let n = scan.feed(sbuf).map_err(|_| bad(true))?;
                if n > 0 {
                    up.flow.count(false, n);
                    write_all(client, &sbuf[..n])
                        .await
                        .map_err(|_| RespError::Io)?;
                    sbuf.drain(..n);
                }
            }
            if scan.done() {
                break;
            }
            let deadline = Instant::now() + up.idle();
            match read_more(&up.sock, sbuf, deadline).await {
                Ok(0) if scan.until_close() => return Ok(Exchange::Close),
                Ok(0) => return Err(bad(true)),
                Ok(_) => {}
                Err(_) => return Err(RespError::Io),
            }
        }
        // Bytes after the response were not asked for: do not reuse this connection.
        return Ok(if keep && sbuf.is_empty() && kind != BodyKind::UntilClose {
            Exchange::KeepAlive
        } else {
            Exchange::Close
        });
    }
}
