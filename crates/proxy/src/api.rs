//! The boundary between the proxy (moves bytes) and the balancer (decides).
//!
//! rvs-proxy does not know rvs-core's table (only its [`Protocol`] type): rvsd implements
//! [`Balancer`] over its connection table and schedulers, and the proxy calls it from its worker
//! threads.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Transport protocol of a listener or flow: the workspace's one type. The proxy carries TCP
/// (connections terminated and relayed) and UDP (datagrams relayed per client flow); a listener
/// asked for SCTP is refused when it is opened ([`SCTP_UNSUPPORTED`]).
pub use rvs_core::Protocol;

/// Why an SCTP listener cannot be opened.
pub const SCTP_UNSUPPORTED: &str = "the socket proxy carries TCP and UDP, not SCTP";

/// What the proxy knows about a new flow when it asks the balancer to schedule it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowInfo {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The client's address and port (CIP:cport).
    pub client: SocketAddr,
    /// The virtual service address the client dialled (VIP:vport).
    pub vip: SocketAddr,
}

/// Opaque token chosen by the balancer to find its connection entry again in [`Balancer::event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowHandle(pub u64);

/// PROXY protocol header written to the real server before any client byte (per service).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProxyProtocol {
    /// No header: the real server sees only the director's address.
    #[default]
    Off,
    /// Text header (TCP only; a UDP flow asking for it is closed with [`CloseReason::Unsupported`]).
    V1,
    /// Binary header; for UDP it is prepended to every datagram toward the real server.
    V2,
}

/// The real server chosen for a flow, and how to talk to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Real server address (RIP:rport).
    pub addr: SocketAddr,
    /// The balancer's token for this flow's connection entry.
    pub handle: FlowHandle,
    /// Header to send first toward the real server.
    pub proxy_protocol: ProxyProtocol,
    /// Local address to connect from (full-NAT local address); `None` lets the kernel choose.
    pub source: Option<IpAddr>,
    /// TCP flows: idle time (no data either way) after which a flow with both directions open
    /// is reset, like an expiring ESTABLISHED entry (`--set tcp`). `None`: no limit.
    pub tcp_idle_timeout: Option<Duration>,
    /// TCP flows: idle time after which a half-closed flow (one FIN seen) is reset, like an
    /// expiring FIN_WAIT/CLOSE_WAIT entry (`--set tcpfin`). `None`: no limit.
    pub tcp_fin_timeout: Option<Duration>,
    /// UDP flows: idle time after which the flow ends (the IPVS udp timeout). Not used for TCP,
    /// whose lifetime is the lifetime of its two sockets.
    pub udp_idle_timeout: Duration,
    /// TCP flows: time the real server's first answer and report it with
    /// [`FlowEvent::Latency`] (set for services whose scheduler uses it, `pewma`).
    pub measure_latency: bool,
    /// UDP flows: one-packet scheduling (`-o`): every datagram is scheduled by its own
    /// [`Balancer::open`] and its handle is closed when the next datagram of that client to the
    /// same real server supersedes it or the socket idles out. Not used for TCP.
    pub one_packet: bool,
}

impl Backend {
    /// A backend with no PROXY header, kernel-chosen source, no TCP idle limits, the IPVS
    /// default udp timeout (300 s) and no one-packet scheduling.
    pub fn new(addr: SocketAddr, handle: FlowHandle) -> Self {
        Backend {
            addr,
            handle,
            proxy_protocol: ProxyProtocol::Off,
            source: None,
            tcp_idle_timeout: None,
            tcp_fin_timeout: None,
            udp_idle_timeout: Duration::from_secs(300),
            measure_latency: false,
            one_packet: false,
        }
    }
}

/// Why the balancer will not carry a flow. TCP clients are reset, UDP datagrams dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// No virtual service matches the listener any more.
    NoService,
    /// The service has no available real server (all weight 0, over threshold, or none).
    NoDestination,
    /// A defence (drop_entry/drop_packet style) decided to drop the flow.
    Drop,
    /// Not a refusal: the service runs a persistence engine that reads the flow's content
    /// (`--pe`), so the balancer must see it before it chooses a real server. The proxy reads
    /// what [`Inspect`] says and calls the matching method.
    Inspect(Inspect),
}

/// What of a flow's bytes a content persistence engine needs to see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Inspect {
    /// The first message as it arrives (SIP: its Call-ID): [`Balancer::open_with`]. UDP
    /// flows always go through `open_with`, so UDP never sees this.
    FirstData,
    /// The TLS ClientHello's server name: [`Balancer::open_tls`].
    TlsHello,
    /// Every HTTP/1.x request head ([`Balancer::route_request`]) and every response head
    /// ([`Balancer::response`]).
    Http,
}

/// Why the proxy closed a flow of a content-engine service without serving it; the balancer
/// counts them ([`Balancer::rejected`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentReject {
    /// The bytes are not HTTP/1.x (another protocol, HTTP/2, TLS on an HTTP engine).
    NotHttp,
    /// A request head over the size or header-count limit (answered `431`).
    HeadTooLarge,
    /// A malformed or ambiguous request (answered `400`).
    BadRequest,
    /// A real server's response could not be framed (answered `502` if nothing was sent yet).
    BadResponse,
    /// The bytes are not a TLS ClientHello (on `sni`).
    NotTls,
    /// A ClientHello over the size limit or malformed.
    BadHello,
    /// The client sent nothing usable before the head timeout or closed first.
    Timeout,
}

impl ContentReject {
    /// Every reason, in a fixed order (for counters).
    pub const ALL: [ContentReject; 7] = [
        ContentReject::NotHttp,
        ContentReject::HeadTooLarge,
        ContentReject::BadRequest,
        ContentReject::BadResponse,
        ContentReject::NotTls,
        ContentReject::BadHello,
        ContentReject::Timeout,
    ];
    /// Label of the metric.
    pub fn label(self) -> &'static str {
        match self {
            ContentReject::NotHttp => "not_http",
            ContentReject::HeadTooLarge => "head_too_large",
            ContentReject::BadRequest => "bad_request",
            ContentReject::BadResponse => "bad_response",
            ContentReject::NotTls => "not_tls",
            ContentReject::BadHello => "bad_hello",
            ContentReject::Timeout => "timeout",
        }
    }
}

/// Where one HTTP request goes ([`Balancer::route_request`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routed {
    /// A new backend: the proxy finishes with the connection's current real server (its
    /// handle is closed) and connects to this one. `None`: the request goes to the current
    /// backend.
    pub backend: Option<Backend>,
    /// A header line (CRLF included) to add to this request's final response: the cookie
    /// engine's `Set-Cookie`.
    pub add_header: Option<String>,
}

/// Bytes and packets moved since the previous [`FlowEvent::Traffic`] of the same flow.
///
/// "in" is client → real server, "out" is real server → client, as in IPVS statistics.
/// For TCP the packets are the kernel's segment counts of the proxy's two sockets (`TCP_INFO`
/// `tcpi_segs_in`: "in" received from the client, "out" received from the real server, ACKs
/// and FIN included), as IPVS counts the packets of each direction; the bytes are payload. For
/// UDP the counts are datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Packets (TCP segments / datagrams) client → server.
    pub in_packets: u64,
    /// Bytes client → server (payload, without PROXY header).
    pub in_bytes: u64,
    /// Packets (TCP segments / datagrams) server → client.
    pub out_packets: u64,
    /// Bytes server → client.
    pub out_bytes: u64,
}

impl Traffic {
    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == Traffic::default()
    }
}

/// How a flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// TCP: both directions finished with FIN. UDP one-packet: superseded by the next datagram.
    Normal,
    /// TCP: a side reset or an I/O error; the other side was reset too.
    Reset,
    /// TCP: the connect to this handle's real server failed or timed out.
    ConnectFailed,
    /// UDP: no datagram in either direction for the backend's `udp_idle_timeout`.
    /// TCP: no data for `tcp_idle_timeout`/`tcp_fin_timeout`; both sides were reset.
    IdleTimeout,
    /// The backend asked for something the protocol cannot carry (PROXY v1 over UDP).
    Unsupported,
    /// The proxy stopped the flow: shutdown drain time ran out, or its listener was removed.
    Aborted,
}

/// Lifecycle and accounting events of one flow, in order.
///
/// A TCP flow sees `Connected`, then any of `Traffic`, `ClientFin`, `ServerFin`, then exactly one
/// `Closed`. A UDP flow sees `Traffic` events then `Closed`. Traffic is batched: a flow that
/// moved data is reported once per `ProxyConfig::traffic_interval` tick (also when it has gone
/// idle since), and always just before `ClientFin`, `ServerFin` and `Closed`, so a balancer that
/// sums them gets exact totals (TCP segment counts are read at the interval and at `Closed`, not
/// before each FIN: two system calls per read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowEvent {
    /// TCP: the real server accepted the connection (IPVS input: server SYN+ACK → ESTABLISHED).
    Connected,
    /// Counters since the previous `Traffic` event.
    Traffic(Traffic),
    /// TCP: the client finished sending (its FIN was forwarded to the real server).
    ClientFin,
    /// TCP: the real server finished sending (its FIN was forwarded to the client).
    ServerFin,
    /// TCP, when [`Backend::measure_latency`]: the connect time plus the time from the
    /// client's first bytes to the real server's first bytes (once per connection).
    Latency(Duration),
    /// Terminal: the flow is gone; no further event carries this handle.
    Closed(CloseReason),
}

/// Scheduling and accounting, implemented by rvsd over rvs-core.
///
/// Called from the proxy's worker threads, so implementations must be cheap and must not block:
/// `open` runs once per TCP connection or UDP flow (per datagram for one-packet services).
///
/// Contract: every handle returned by `open` or `reschedule` receives exactly one
/// [`FlowEvent::Closed`] event, after all its other events.
pub trait Balancer: Send + Sync + 'static {
    /// A client opened a flow to a listener: choose a real server, or refuse.
    fn open(&self, flow: &FlowInfo) -> Result<Backend, Refusal>;
    /// The connect to `failed` did not succeed: choose another real server once (the proxy does
    /// not ask again for this flow). `failed.handle` is closed with
    /// [`CloseReason::ConnectFailed`] right after this call returns.
    fn reschedule(&self, flow: &FlowInfo, failed: &Backend) -> Option<Backend>;
    /// A lifecycle or accounting event of the flow carrying `handle`.
    fn event(&self, handle: FlowHandle, ev: FlowEvent);
    /// `traffic` (unless empty), then the lifecycle event `ev`, of the flow carrying `handle`:
    /// what two [`Balancer::event`] calls would report. The proxy reports the traffic counted
    /// before each FIN and before the close this way, so that a balancer paying per call (a
    /// lock, a lookup of the flow) can take both at once.
    fn event_after(&self, handle: FlowHandle, traffic: Traffic, ev: FlowEvent) {
        if !traffic.is_empty() {
            self.event(handle, FlowEvent::Traffic(traffic));
        }
        self.event(handle, ev);
    }
    /// [`Balancer::open`] with the flow's first message: every UDP flow is opened this way
    /// (the datagram is at hand), and TCP flows after [`Inspect::FirstData`].
    fn open_with(&self, flow: &FlowInfo, first: &[u8]) -> Result<Backend, Refusal> {
        let _ = first;
        self.open(flow)
    }
    /// Schedule a flow after [`Inspect::TlsHello`], by the ClientHello's server name (`None`:
    /// the hello names none).
    fn open_tls(&self, flow: &FlowInfo, server_name: Option<&[u8]>) -> Result<Backend, Refusal> {
        let _ = server_name;
        self.open(flow)
    }
    /// Route one HTTP request of a flow after [`Inspect::Http`]. `current`: the backend the
    /// connection's previous request went to, if that connection is still usable.
    fn route_request(
        &self,
        flow: &FlowInfo,
        request: &crate::http::Request<'_>,
        current: Option<&Backend>,
    ) -> Result<Routed, Refusal> {
        let _ = (flow, request, current);
        Err(Refusal::NoService)
    }
    /// The final response head a real server sent for a request routed to `handle` (the
    /// `cookie-learn` engine learns from it).
    fn response(&self, handle: FlowHandle, response: &crate::http::Response<'_>) {
        let _ = (handle, response);
    }
    /// A flow of a content-engine service was closed without being served.
    fn rejected(&self, flow: &FlowInfo, why: ContentReject) {
        let _ = (flow, why);
    }
    /// The idle limits now in force for the flow carrying `handle`, asked when one of its
    /// limits runs out: `ipvsadm --set` changes them for open connections (the kernel applies
    /// the new timeout from a connection's next packet). `None` keeps the limits of the
    /// [`Backend`] the flow was opened with.
    fn limits(&self, handle: FlowHandle) -> Option<IdleLimits> {
        let _ = handle;
        None
    }
}

/// A flow's idle limits (see [`Backend`]'s fields of the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleLimits {
    /// TCP, both directions open.
    pub tcp_idle_timeout: Option<Duration>,
    /// TCP, one direction finished.
    pub tcp_fin_timeout: Option<Duration>,
    /// UDP.
    pub udp_idle_timeout: Duration,
}

/// A VIP:port the proxy listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerSpec {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The address to bind; it need not be configured on the host yet (IP_FREEBIND).
    pub addr: SocketAddr,
}
