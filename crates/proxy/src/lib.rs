//! rvs-proxy: the socket data plane of rvs.
//!
//! Terminates TCP and relays UDP for virtual services, full-NAT style: the real server sees the
//! director's address (optionally the client's via a PROXY protocol header). Every scheduling
//! decision and all accounting go through the [`Balancer`] trait, implemented by rvsd over
//! rvs-core; this crate only moves bytes.
//!
//! Shape: [`Proxy::start`] spawns N worker threads, each a tokio current-thread runtime with its
//! own `SO_REUSEPORT` socket per listener, so the kernel spreads connections over workers and no
//! lock is taken per connection. [`Proxy::set_listeners`] reconciles the listener set
//! ([`Proxy::change_listeners`] applies a change to it),
//! [`Proxy::shutdown`] stops accepting and drains.
//!
//! # Implementing [`Balancer`] over an IPVS connection table
//!
//! The proxy is a full-NAT plane, so the NAT rows of the IPVS TCP state table apply. Feed the
//! events to the state machine as these segments:
//!
//! | proxy call / event | IPVS input | resulting state (normal table) |
//! |---|---|---|
//! | `open` → `Ok` | INPUT syn on a new entry | SYN_RECV (active) |
//! | `Connected` | OUTPUT syn (SYN+ACK), then INPUT ack | ESTABLISHED (active) |
//! | `ClientFin` | INPUT fin | ESTABLISHED → CLOSE_WAIT, FIN_WAIT → TIME_WAIT |
//! | `ServerFin` | OUTPUT fin | ESTABLISHED → FIN_WAIT, CLOSE_WAIT → TIME_WAIT |
//! | `Closed(Normal)` | INPUT ack (last ACK) | stays TIME_WAIT; expire with its timeout |
//! | `Closed(Reset)`, `Closed(Aborted)` | INPUT rst | CLOSE (10 s) |
//! | `Closed(ConnectFailed)` | OUTPUT rst | SYN_RECV → CLOSE |
//! | `Traffic` | counters only (`in_pkts` etc.); restart the entry's timer | unchanged |
//!
//! A TCP entry must not expire while its flow is open (no `Closed` yet): the proxy holds the
//! sockets, so expiring the entry would only make `-Lnc` lie. After `Closed` the entry lives
//! on for its state's timeout, as in the kernel. For UDP: `open` creates the entry with the udp
//! timeout, `Traffic` restarts its timer, `Closed(IdleTimeout)` is the kernel's expiry (delete
//! the entry); the proxy enforces the timeout itself from `Backend::udp_idle_timeout`.
//! One-packet (`-o`) UDP entries are closed (`Closed(Normal)`) when the next datagram of the
//! same client to the same real server supersedes them, which is the point where they stop
//! mattering. `reschedule` is the place to count the retry and re-bind the entry to another
//! real server (the failed handle is closed right after it returns).

mod api;
pub mod http;
mod kernel_splice;
mod latency_probe;
mod pe_relay;
pub mod proxy_protocol;
mod server_pool;
mod tcp;
pub mod tcp_info;
mod udp;
mod udp_batch;
mod worker;

use std::collections::BTreeSet;
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::sync::mpsc;

pub use api::{
    Backend, Balancer, CloseReason, ContentReject, FlowEvent, FlowHandle, FlowInfo, IdleLimits,
    Inspect, ListenerSpec, Protocol, ProxyProtocol, Refusal, Routed, Traffic,
};

use worker::{Command, Counters, Worker};

/// Errors of the proxy handle.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The configuration cannot work (e.g. zero workers).
    #[error("invalid proxy configuration: {0}")]
    Config(&'static str),
    /// A worker runtime or thread could not be created.
    #[error("cannot start proxy worker: {0}")]
    Start(#[source] io::Error),
    /// Some listeners could not be opened; the others were applied.
    #[error("{}", listen_failures(.0))]
    Listen(Vec<(ListenerSpec, io::Error)>),
    /// A worker thread has exited (it panicked); the proxy should be restarted.
    #[error("proxy worker {0} is not running")]
    WorkerGone(usize),
    /// A worker did not confirm a listener change in time (it is stuck or overloaded).
    #[error("proxy workers did not apply the listener change within {0:?}")]
    WorkerTimeout(Duration),
}

fn listen_failures(f: &[(ListenerSpec, io::Error)]) -> String {
    let list: Vec<String> = f
        .iter()
        .map(|(s, e)| format!("{} {}: {e}", s.protocol.name(), s.addr))
        .collect();
    format!("cannot listen on {}", list.join("; "))
}

/// Tuning of the proxy. `Default` gives sensible values for a director.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Worker threads (each with its own listeners); usually the number of cores.
    pub workers: usize,
    /// Bound on a connect to a real server before it counts as failed and is rescheduled.
    pub connect_timeout: Duration,
    /// Use splice(2) for bulk directions (after a read fills the buffer); off = always copy.
    /// Applies to flows the kernel does not splice (see `kernel_splice`).
    pub splice: bool,
    /// Hand established TCP flows to the kernel (BPF sockmap): after the connect and the PROXY
    /// header, the kernel moves the data between the two sockets without user space.
    pub kernel_splice: KernelSplice,
    /// With kernel splicing: how many reads a flow is relayed in user space before it is
    /// handed to the kernel (0: at connect). Setting up a spliced flow costs about twenty
    /// system calls (socket cookies, four map updates, the byte-count snapshots, the flush
    /// checks at its end), more than a short flow's whole relay; a flow that is still open
    /// after this many messages, or whose read fills the buffer (bulk), is handed over.
    pub kernel_splice_after: u32,
    /// Buffered-copy chunk, one buffer per worker (not per connection).
    pub buffer_size: usize,
    /// Longest time traffic counts are held back before a [`FlowEvent::Traffic`] is sent (so
    /// rates and `--stats` stay current on long or idle-but-open flows).
    pub traffic_interval: Duration,
    /// TCP listen backlog per worker socket.
    pub backlog: i32,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            connect_timeout: Duration::from_secs(3),
            splice: true,
            kernel_splice: KernelSplice::Auto,
            kernel_splice_after: 8,
            buffer_size: 16 * 1024,
            traffic_interval: Duration::from_secs(1),
            backlog: 1024,
        }
    }
}

/// Whether established TCP flows are spliced in the kernel (`rvsd --proxy-splice`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KernelSplice {
    /// Where the kernel allows it (BPF sockmap loads): every TCP flow once connected.
    Auto,
    /// The same as `Auto`, but a kernel that refuses is a warning rather than a note: the
    /// operator asked for it. Flows still fall back to the user-space relay.
    On,
    /// Never: every byte goes through user space (copy or splice(2)). The default: measured
    /// with `bench/proxy.sh`, splicing through the sockmap costs more CPU per request than it
    /// saves (docs/benchmarks.md), so it is opt-in until that is understood.
    #[default]
    Off,
}

impl KernelSplice {
    /// `auto`, `on` or `off`.
    pub fn parse(s: &str) -> Option<KernelSplice> {
        match s {
            "auto" => Some(KernelSplice::Auto),
            "on" => Some(KernelSplice::On),
            "off" => Some(KernelSplice::Off),
            _ => None,
        }
    }
}

/// Proxy-wide counters, summed over workers at read time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// TCP connections accepted (including refused ones).
    pub tcp_accepted: u64,
    /// TCP flows currently open (scheduled, connecting or relaying).
    pub tcp_active: u64,
    /// Flows or datagrams the balancer refused (plus UDP flows asking for PROXY v1).
    pub refused: u64,
    /// Connects (TCP) or socket setups (UDP) to real servers that failed.
    pub connect_failures: u64,
    /// Flows rescheduled to another real server after a failed connect.
    pub reschedules: u64,
    /// TCP flows that ended with a reset or error.
    pub resets: u64,
    /// TCP directions that switched to splice(2).
    pub spliced: u64,
    /// TCP flows handed to the kernel (BPF sockmap).
    pub kernel_spliced: u64,
    /// UDP flows created.
    pub udp_flows_created: u64,
    /// UDP flows currently open.
    pub udp_flows_active: u64,
    /// UDP datagrams dropped (socket buffer full, ICMP error).
    pub udp_dropped: u64,
    /// Payload bytes client → real server.
    pub in_bytes: u64,
    /// Payload bytes real server → client.
    pub out_bytes: u64,
}

/// Result of [`Proxy::shutdown`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// TCP flows still open when the drain time ran out (they were aborted with
    /// [`CloseReason::Aborted`]).
    pub aborted: usize,
}

struct WorkerHandle {
    tx: mpsc::UnboundedSender<Command>,
    thread: Option<JoinHandle<usize>>,
}

/// Handle to the running proxy: its workers and their listeners.
pub struct Proxy {
    workers: Vec<WorkerHandle>,
    counters: Vec<Arc<Counters>>,
    listeners: Mutex<BTreeSet<ListenerSpec>>,
    backlog: i32,
}

/// How long `set_listeners` waits for a worker to confirm a change.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

impl Proxy {
    /// Start `config.workers` worker threads with no listeners.
    pub fn start(config: ProxyConfig, balancer: Arc<dyn Balancer>) -> Result<Proxy, ProxyError> {
        if config.workers == 0 {
            return Err(ProxyError::Config("workers must be at least 1"));
        }
        if config.buffer_size < 1024 {
            return Err(ProxyError::Config("buffer_size must be at least 1024"));
        }
        let mut proxy = Proxy {
            workers: Vec::with_capacity(config.workers),
            counters: Vec::with_capacity(config.workers),
            listeners: Mutex::new(BTreeSet::new()),
            backlog: config.backlog,
        };
        for i in 0..config.workers {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .map_err(ProxyError::Start)?;
            let counters = Arc::new(Counters::default());
            let (b, cfg, c) = (balancer.clone(), config.clone(), counters.clone());
            let (tx, rx) = mpsc::unbounded_channel();
            let thread = std::thread::Builder::new()
                .name(format!("rvs-proxy-{i}"))
                // The worker state is thread-local (Rc, RefCell): built on its own thread.
                .spawn(move || worker::run(rt, Worker::new(b, cfg, c), rx))
                .map_err(ProxyError::Start)?;
            proxy.workers.push(WorkerHandle {
                tx,
                thread: Some(thread),
            });
            proxy.counters.push(counters);
        }
        Ok(proxy)
    }

    /// Make the set of listeners equal to `specs`: open the new ones on every worker, close the
    /// ones not listed (closing a UDP listener ends its flows; TCP connections already accepted
    /// go on). Blocks until the workers have applied the change (from async code call it via
    /// `spawn_blocking` or `block_in_place`). Listeners that cannot be opened
    /// are reported together in [`ProxyError::Listen`]; the rest of the change is applied.
    /// Costs O(listeners); [`Proxy::change_listeners`] costs O(change).
    pub fn set_listeners(&self, specs: &[ListenerSpec]) -> Result<(), ProxyError> {
        let wanted: BTreeSet<ListenerSpec> = specs.iter().copied().collect();
        let (add, remove): (Vec<ListenerSpec>, Vec<ListenerSpec>) = {
            let current = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            (
                wanted.difference(&current).copied().collect(),
                current.difference(&wanted).copied().collect(),
            )
        };
        self.change_listeners(&add, &remove)
    }

    /// Open the listeners `add` and close the listeners `remove`, as
    /// [`Proxy::set_listeners`] does, in time proportional to the change and not to the number
    /// of listeners (one `-A` on a table of 10 000 services opens one listener and looks at no
    /// other). A listener in `add` that is already open, or in `remove` that is not, is left
    /// as it is. Removals are applied before additions.
    pub fn change_listeners(
        &self,
        add: &[ListenerSpec],
        remove: &[ListenerSpec],
    ) -> Result<(), ProxyError> {
        let mut current = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        let (ack_tx, ack_rx) = std_mpsc::channel();
        let mut expected = 0;
        for spec in remove {
            if !current.remove(spec) {
                continue;
            }
            for (i, w) in self.workers.iter().enumerate() {
                w.tx.send(Command::Remove {
                    spec: *spec,
                    ack: ack_tx.clone(),
                })
                .map_err(|_| ProxyError::WorkerGone(i))?;
                expected += 1;
            }
        }
        let mut failures = Vec::new();
        for spec in add {
            if current.contains(spec) {
                continue;
            }
            if spec.addr.port() == 0 {
                // Every worker would get its own ephemeral port: not one listener.
                let e = io::Error::new(io::ErrorKind::InvalidInput, "a listener needs a port");
                failures.push((*spec, e));
                continue;
            }
            // All sockets are opened here first, so a failure leaves no worker half-configured
            // and the caller gets the bind error directly.
            let sockets: io::Result<Vec<Socket>> = (0..self.workers.len())
                .map(|_| open_socket(spec, self.backlog))
                .collect();
            match sockets {
                Ok(sockets) => {
                    for (i, (w, socket)) in self.workers.iter().zip(sockets).enumerate() {
                        w.tx.send(Command::Add {
                            spec: *spec,
                            socket,
                            ack: ack_tx.clone(),
                        })
                        .map_err(|_| ProxyError::WorkerGone(i))?;
                        expected += 1;
                    }
                    current.insert(*spec);
                }
                Err(e) => failures.push((*spec, e)),
            }
        }
        for _ in 0..expected {
            match ack_rx.recv_timeout(ACK_TIMEOUT) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "worker could not apply a listener"),
                Err(_) => return Err(ProxyError::WorkerTimeout(ACK_TIMEOUT)),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ProxyError::Listen(failures))
        }
    }

    /// The listeners currently served.
    pub fn listeners(&self) -> Vec<ListenerSpec> {
        let current = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        current.iter().copied().collect()
    }

    /// Counters summed over all workers.
    pub fn stats(&self) -> ProxyStats {
        let mut s = ProxyStats::default();
        for c in &self.counters {
            s.tcp_accepted += c.tcp_accepted.load(Relaxed);
            s.tcp_active += c.tcp_active.load(Relaxed);
            s.refused += c.refused.load(Relaxed);
            s.connect_failures += c.connect_failures.load(Relaxed);
            s.reschedules += c.reschedules.load(Relaxed);
            s.resets += c.resets.load(Relaxed);
            s.spliced += c.spliced.load(Relaxed);
            s.kernel_spliced += c.kernel_spliced.load(Relaxed);
            s.udp_flows_created += c.udp_flows_created.load(Relaxed);
            s.udp_flows_active += c.udp_flows_active.load(Relaxed);
            s.udp_dropped += c.udp_dropped.load(Relaxed);
            s.in_bytes += c.in_bytes.load(Relaxed);
            s.out_bytes += c.out_bytes.load(Relaxed);
        }
        s
    }

    /// Stop accepting on every listener, let open TCP connections finish for up to `drain`,
    /// then close what is left. Blocks until all workers have stopped.
    pub fn shutdown(mut self, drain: Duration) -> ShutdownReport {
        self.stop(drain)
    }

    fn stop(&mut self, drain: Duration) -> ShutdownReport {
        for w in &self.workers {
            let _ = w.tx.send(Command::Shutdown { drain });
        }
        let mut report = ShutdownReport::default();
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                match t.join() {
                    Ok(left) => report.aborted += left,
                    Err(_) => tracing::error!("proxy worker panicked"),
                }
            }
        }
        report
    }
}

impl Drop for Proxy {
    /// Dropping the handle without [`Proxy::shutdown`] stops at once (no drain).
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

/// One worker's socket for `spec`: SO_REUSEPORT so every worker has its own, IP_FREEBIND so the
/// VIP need not be up yet, v6-only so an IPv6 listener never sees v4-mapped clients.
fn open_socket(spec: &ListenerSpec, backlog: i32) -> io::Result<Socket> {
    let ty = match spec.protocol {
        Protocol::Tcp => Type::STREAM,
        Protocol::Udp => Type::DGRAM,
        Protocol::Sctp => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                api::SCTP_UNSUPPORTED,
            ))
        }
    };
    let domain = Domain::for_address(spec.addr);
    let s = Socket::new(domain, ty.nonblocking().cloexec(), None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if spec.addr.is_ipv6() {
        s.set_only_v6(true)?;
        s.set_freebind_v6(true)?;
    } else {
        s.set_freebind_v4(true)?;
    }
    s.bind(&SockAddr::from(spec.addr))?;
    if spec.protocol == Protocol::Tcp {
        // Accepted sockets inherit TCP_NODELAY from the listener (Linux copies the listener's
        // TCP options to the child): the relay forwards what it reads at once, and this saves
        // a setsockopt per connection.
        s.set_tcp_nodelay(true)?;
        s.listen(backlog)?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sctp_listener_is_refused_by_name() {
        let spec = ListenerSpec {
            protocol: Protocol::Sctp,
            addr: "127.0.0.1:0".parse().unwrap(),
        };
        let e = open_socket(&spec, 16).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert!(e.to_string().contains("not SCTP"), "{e}");
    }

    struct Nobody;
    impl Balancer for Nobody {
        fn open(&self, _: &FlowInfo) -> Result<Backend, Refusal> {
            Err(Refusal::NoService)
        }
        fn reschedule(&self, _: &FlowInfo, _: &Backend) -> Option<Backend> {
            None
        }
        fn event(&self, _: FlowHandle, _: FlowEvent) {}
    }

    #[test]
    fn handle_can_be_shared_with_the_control_plane() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Proxy>();
        assert_send_sync::<ProxyStats>();
    }

    #[test]
    fn bad_config_is_rejected() {
        let cfg = ProxyConfig {
            workers: 0,
            ..ProxyConfig::default()
        };
        assert!(matches!(
            Proxy::start(cfg, Arc::new(Nobody)),
            Err(ProxyError::Config(_))
        ));
        let cfg = ProxyConfig {
            buffer_size: 10,
            ..ProxyConfig::default()
        };
        assert!(matches!(
            Proxy::start(cfg, Arc::new(Nobody)),
            Err(ProxyError::Config(_))
        ));
    }

    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let spec = ListenerSpec {
            protocol: Protocol::Tcp,
            addr: "127.0.0.1:0".parse().unwrap(),
        };
        let l = open_socket(&spec, 8).unwrap();
        l.set_nonblocking(false).unwrap();
        let addr = l.local_addr().unwrap().as_socket().unwrap();
        let _c = std::net::TcpStream::connect(addr).unwrap();
        let (a, _) = l.accept().unwrap();
        assert!(a.tcp_nodelay().unwrap());
    }

    #[test]
    fn start_and_stop_without_listeners() {
        let cfg = ProxyConfig {
            workers: 3,
            ..ProxyConfig::default()
        };
        let p = Proxy::start(cfg, Arc::new(Nobody)).unwrap();
        assert!(p.listeners().is_empty());
        assert_eq!(p.stats(), ProxyStats::default());
        assert_eq!(p.shutdown(Duration::from_secs(1)).aborted, 0);
    }
}
