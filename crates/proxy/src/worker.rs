//! One worker: a thread running a tokio current-thread runtime with its own SO_REUSEPORT
//! listeners, so the kernel spreads connections over workers and nothing is shared per connection.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::api::{Balancer, CloseReason, FlowEvent, FlowHandle, ListenerSpec, Protocol, Traffic};
use crate::ProxyConfig;

/// Per-worker counters; written only by their worker (relaxed, uncontended), summed on read.
/// Aligned so two workers' counters never share a cache line.
#[derive(Default, Debug)]
#[repr(align(128))]
pub(crate) struct Counters {
    pub tcp_accepted: AtomicU64,
    pub tcp_active: AtomicU64,
    pub refused: AtomicU64,
    pub connect_failures: AtomicU64,
    pub reschedules: AtomicU64,
    pub resets: AtomicU64,
    pub spliced: AtomicU64,
    pub kernel_spliced: AtomicU64,
    pub udp_flows_created: AtomicU64,
    pub udp_flows_active: AtomicU64,
    pub udp_dropped: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_bytes: AtomicU64,
}

impl Counters {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
    pub fn dec(c: &AtomicU64) {
        c.fetch_sub(1, Relaxed);
    }
}

/// A pipe used to splice(2) one direction of one TCP flow.
pub(crate) struct Pipe {
    pub read: OwnedFd,
    pub write: OwnedFd,
}

/// Pipes kept per worker for reuse; more than this many idle pipes are closed.
const PIPE_POOL_MAX: usize = 256;

/// State shared by all tasks of one worker (they all run on its thread).
pub(crate) struct Worker {
    pub balancer: Arc<dyn Balancer>,
    pub cfg: ProxyConfig,
    pub counters: Arc<Counters>,
    /// TCP buffered-copy scratch: only borrowed between awaits, so one per worker suffices.
    pub scratch: RefCell<Box<[u8]>>,
    /// UDP datagram batch (recvmmsg/sendmmsg buffers), same rule.
    pub udp_batch: RefCell<crate::udp_batch::Batch>,
    pipes: RefCell<Vec<Pipe>>,
    /// Idle keep-alive connections to real servers (HTTP relay of the content engines).
    pub server_pool: crate::server_pool::ServerPool,
    /// The kernel splicer (BPF sockmap) of this worker, when the kernel allows it.
    pub splicer: RefCell<Option<rvs_bpf::sockmap::Splicer>>,
    /// The epoll set watching spliced sockets outside tokio (with the splicer; made when the
    /// worker's runtime runs).
    pub splice_watch: RefCell<Option<Rc<rvs_bpf::sock_watch::SockWatch>>>,
    /// Flows with traffic not yet reported; drained by [`traffic_tick`].
    dirty: RefCell<Vec<Weak<Flow>>>,
    /// Flows spliced in the kernel: user space sees none of their reads, so every traffic tick
    /// reads their counts.
    spliced: RefCell<Vec<Weak<Flow>>>,
    /// Open TCP flows of this worker, for the shutdown drain.
    active: Cell<usize>,
    idle: Notify,
}

impl Worker {
    pub fn new(balancer: Arc<dyn Balancer>, cfg: ProxyConfig, counters: Arc<Counters>) -> Self {
        Worker {
            scratch: RefCell::new(vec![0u8; cfg.buffer_size].into_boxed_slice()),
            udp_batch: RefCell::new(crate::udp_batch::Batch::new()),
            pipes: RefCell::new(Vec::new()),
            server_pool: crate::server_pool::ServerPool::default(),
            splicer: RefCell::new(crate::kernel_splice::load(cfg.kernel_splice)),
            splice_watch: RefCell::new(None),
            dirty: RefCell::new(Vec::new()),
            spliced: RefCell::new(Vec::new()),
            balancer,
            cfg,
            counters,
            active: Cell::new(0),
            idle: Notify::new(),
        }
    }

    /// A clean (empty) pipe from the pool, or a new one.
    pub fn take_pipe(&self) -> nix::Result<Pipe> {
        if let Some(p) = self.pipes.borrow_mut().pop() {
            return Ok(p);
        }
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok(Pipe { read, write })
    }

    /// Give back a pipe that holds no data (a pipe with data left in it must be dropped).
    pub fn put_pipe(&self, p: Pipe) {
        let mut pool = self.pipes.borrow_mut();
        if pool.len() < PIPE_POOL_MAX {
            pool.push(p);
        }
    }
}

/// Marks one open TCP flow for the drain; dropping it (however the task ends) releases it.
pub(crate) struct ActiveGuard(Rc<Worker>);

impl ActiveGuard {
    pub fn new(w: &Rc<Worker>) -> Self {
        w.active.set(w.active.get() + 1);
        Counters::inc(&w.counters.tcp_active);
        ActiveGuard(w.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let w = &self.0;
        w.active.set(w.active.get() - 1);
        Counters::dec(&w.counters.tcp_active);
        if w.active.get() == 0 {
            w.idle.notify_one();
        }
    }
}

/// Accounting of one flow toward the balancer: batches traffic and guarantees exactly one
/// `Closed` per handle, even when the task is dropped (shutdown, listener removal).
pub(crate) struct Flow {
    worker: Rc<Worker>,
    /// Itself, to put on the worker's list of flows with unreported traffic.
    me: Weak<Flow>,
    handle: Cell<FlowHandle>,
    traffic: Cell<Traffic>,
    /// On the worker's `dirty` list (until the next traffic tick).
    listed: Cell<bool>,
    /// Last read that returned data or last FIN, for TCP idle limits.
    last_active: Cell<Instant>,
    /// One direction has finished (TCP), so the FIN timeout applies.
    half_closed: Cell<bool>,
    closed: Cell<bool>,
    /// Timing of the real server's first answer, for latency-aware scheduling.
    latency: Cell<crate::latency_probe::LatencyProbe>,
    /// TCP: the sockets whose kernel segment counts are the flow's packets (see [`Segments`]).
    segments: RefCell<Option<Segments>>,
    /// TCP: the flow's pair in the kernel splicer, and the bytes of it already reported.
    kernel: RefCell<Option<KernelSpliced>>,
    /// TCP, user-space relay: reads left before the flow is handed to the kernel splicer
    /// (`None`: never; see [`Flow::hand_off_due`]).
    hand_off_in: Cell<Option<u32>>,
    /// TCP, user-space relay: each direction (client → server first) may not be handed to the
    /// kernel now (see [`Flow::set_clean`]).
    unclean: [Cell<bool>; 2],
}

/// Why a flow's traffic is reported.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flush {
    /// Before a FIN event: bytes only.
    Fin,
    /// The traffic tick: bytes, and segments if anything moved.
    Tick,
    /// Before `Closed`: everything, so the totals are exact.
    Close,
}

struct KernelSpliced {
    pair: rvs_bpf::sockmap::Pair,
    reported_in: u64,
    reported_out: u64,
}

/// The two sockets of a TCP flow and their segment counts already reported. Packets of a TCP
/// flow are the kernel's segments (`TCP_INFO`): "in" are those received from the client,
/// "out" those received from the real server, as IPVS counts the packets it sees in each
/// direction. Weak, so a flow outliving its sockets (dropped task) reads nothing.
struct Segments {
    client: Weak<dyn AsFd>,
    server: Weak<dyn AsFd>,
    reported_in: u32,
    reported_out: u32,
}

impl Segments {
    /// Segments received on each socket since the last call (wrapping `u32` counters).
    fn take(&mut self) -> (u64, u64) {
        let seen = |s: &Weak<dyn AsFd>| {
            s.upgrade()
                .and_then(|s| crate::tcp_info::tcp_info(&*s).ok())
                .map(|i| i.segs_in)
        };
        let mut d = (0, 0);
        if let Some(n) = seen(&self.client) {
            d.0 = u64::from(n.wrapping_sub(self.reported_in));
            self.reported_in = n;
        }
        if let Some(n) = seen(&self.server) {
            d.1 = u64::from(n.wrapping_sub(self.reported_out));
            self.reported_out = n;
        }
        d
    }
}

impl Flow {
    pub fn new(worker: Rc<Worker>, handle: FlowHandle) -> Rc<Self> {
        Rc::new_cyclic(|me| Flow {
            worker,
            me: me.clone(),
            handle: Cell::new(handle),
            traffic: Cell::new(Traffic::default()),
            listed: Cell::new(false),
            last_active: Cell::new(Instant::now()),
            half_closed: Cell::new(false),
            closed: Cell::new(false),
            latency: Cell::new(crate::latency_probe::LatencyProbe::Off),
            segments: RefCell::new(None),
            kernel: RefCell::new(None),
            hand_off_in: Cell::new(None),
            unclean: [Cell::new(false), Cell::new(false)],
        })
    }

    /// Hand the flow to the kernel splicer after `reads` more reads of the user-space relay
    /// (`None`: never).
    pub fn hand_off_after(&self, reads: Option<u32>) {
        self.hand_off_in.set(reads);
    }

    /// Whether the user-space relay's direction `inbound` could stop now without losing or
    /// repeating a byte: it holds nothing read and not yet written, and its last read emptied
    /// the socket's receive queue (a short read, or `EAGAIN`). The second matters because the
    /// kernel's splicer takes the queue skb by skb and ignores how much of the first one was
    /// read already: a read that stopped inside an skb would have that part sent twice.
    pub fn set_clean(&self, inbound: bool, clean: bool) {
        self.unclean[usize::from(!inbound)].set(!clean);
    }

    /// Called by a direction of the user-space relay at a clean point ([`Flow::set_clean`]),
    /// `bulk` when its transfer is bulk: whether the flow should go to the kernel splicer now.
    /// Yes when its reads are used up or the transfer is bulk, both directions are still open,
    /// and the other direction is clean too (it waits for data: stopping it loses nothing, and
    /// what arrives from now on waits in the sockets' queues for the kernel).
    pub fn hand_off_due(&self, inbound: bool, bulk: bool) -> bool {
        let Some(left) = self.hand_off_in.get() else {
            return false;
        };
        let left = left.saturating_sub(1);
        self.hand_off_in.set(Some(left));
        (left == 0 || bulk) && !self.half_closed.get() && !self.unclean[usize::from(inbound)].get()
    }

    /// The flow's sockets are spliced in the kernel as `pair`: its bytes are the splicer's
    /// counts from now on, read at every traffic tick.
    pub fn kernel_spliced(&self, pair: rvs_bpf::sockmap::Pair) {
        *self.kernel.borrow_mut() = Some(KernelSpliced {
            pair,
            reported_in: 0,
            reported_out: 0,
        });
        self.worker.spliced.borrow_mut().push(self.me.clone());
    }

    /// The flow's pair in the kernel splicer, if spliced.
    pub fn kernel_pair(&self) -> Option<rvs_bpf::sockmap::Pair> {
        self.kernel.borrow().as_ref().map(|k| k.pair)
    }

    /// Spliced flows: move the idle clock to the kernel's last data time of either socket
    /// (`TCP_INFO` `tcpi_last_data_recv`), since user space sees no reads. Asked when an idle
    /// limit runs out, so it costs two getsockopts per idle period, none per byte.
    pub fn refresh_last_active(&self) {
        if self.kernel.borrow().is_none() {
            return;
        }
        let Some((c, s)) = self
            .segments
            .borrow()
            .as_ref()
            .map(|s| (s.client.upgrade(), s.server.upgrade()))
        else {
            return;
        };
        let since = [c, s]
            .iter()
            .flatten()
            .filter_map(|s| crate::tcp_info::tcp_info(&**s).ok())
            .map(|i| i.last_data_recv)
            .min();
        if let Some(ms) = since {
            let at = Instant::now()
                .checked_sub(Duration::from_millis(u64::from(ms)))
                .unwrap_or_else(Instant::now);
            if at > self.last_active.get() {
                self.last_active.set(at);
            }
        }
    }

    /// TCP: count packets from now on as the kernel's segments of `client` and `server`, from
    /// the start of each connection (handshake included, as IPVS counts the SYN). Called again
    /// with the same sockets under a new owner (a spliced flow's sockets leave tokio), the
    /// counts carry on.
    pub fn count_segments<S: AsFd + 'static>(&self, client: &Rc<S>, server: &Rc<S>) {
        let (c, s): (Rc<dyn AsFd>, Rc<dyn AsFd>) = (client.clone(), server.clone());
        let mut segments = self.segments.borrow_mut();
        let reported = segments
            .as_ref()
            .map_or((0, 0), |s| (s.reported_in, s.reported_out));
        *segments = Some(Segments {
            client: Rc::downgrade(&c),
            server: Rc::downgrade(&s),
            reported_in: reported.0,
            reported_out: reported.1,
        });
    }

    /// Time the connect that starts now and the real server's first answer, if `on`
    /// ([`crate::Backend::measure_latency`]).
    pub fn measure_latency(&self, on: bool) {
        self.latency
            .set(crate::latency_probe::LatencyProbe::start(on));
    }

    pub fn worker(&self) -> &Rc<Worker> {
        &self.worker
    }

    /// Count one datagram of `bytes`; `inbound` is client → server.
    pub fn count(&self, inbound: bool, bytes: usize) {
        self.count_with(inbound, bytes, 1);
    }

    /// Count `bytes` of TCP payload moved (the packets are the kernel's segment counts, read
    /// when the traffic is reported).
    pub fn count_bytes(&self, inbound: bool, bytes: usize) {
        self.count_with(inbound, bytes, 0);
    }

    fn count_with(&self, inbound: bool, bytes: usize, packets: u64) {
        let (probe, sample) = self.latency.get().bytes(inbound);
        self.latency.set(probe);
        if let Some(d) = sample {
            self.worker
                .balancer
                .event(self.handle.get(), FlowEvent::Latency(d));
        }
        let mut t = self.traffic.get();
        let c = &self.worker.counters;
        if inbound {
            t.in_packets += packets;
            t.in_bytes += bytes as u64;
            c.in_bytes.fetch_add(bytes as u64, Relaxed);
        } else {
            t.out_packets += packets;
            t.out_bytes += bytes as u64;
            c.out_bytes.fetch_add(bytes as u64, Relaxed);
        }
        self.traffic.set(t);
        self.last_active.set(Instant::now());
        // Reported by the worker's traffic tick (or the next lifecycle event), so a flow that
        // goes idle still gets its counts out within one interval.
        if !self.listed.replace(true) {
            self.worker.dirty.borrow_mut().push(self.me.clone());
        }
    }

    /// Report the traffic counted since the last report, if any. Segment counts cost two
    /// getsockopts, so they are read at close and at a traffic tick when bytes moved, not
    /// before each FIN.
    fn flush(&self, when: Flush) {
        let t = self.take_traffic(when);
        if !t.is_empty() {
            self.worker
                .balancer
                .event(self.handle.get(), FlowEvent::Traffic(t));
        }
    }

    /// The traffic counted since the last report, taken for reporting `when`.
    fn take_traffic(&self, when: Flush) -> Traffic {
        let mut t = self.traffic.replace(Traffic::default());
        if let Some(k) = self.kernel.borrow_mut().as_mut() {
            // Bytes the kernel moved (one map lookup per direction).
            let moved = self
                .worker
                .splicer
                .borrow()
                .as_ref()
                .map(|s| s.moved(&k.pair));
            if let Some(Ok((to_server, to_client))) = moved {
                let (i, o) = (
                    to_server.bytes.saturating_sub(k.reported_in),
                    to_client.bytes.saturating_sub(k.reported_out),
                );
                (k.reported_in, k.reported_out) = (to_server.bytes, to_client.bytes);
                t.in_bytes += i;
                t.out_bytes += o;
                let c = &self.worker.counters;
                c.in_bytes.fetch_add(i, Relaxed);
                c.out_bytes.fetch_add(o, Relaxed);
            }
        }
        let segments = match when {
            Flush::Fin => false,
            Flush::Tick => !t.is_empty(),
            Flush::Close => true,
        };
        if segments {
            if let Some(s) = self.segments.borrow_mut().as_mut() {
                let (i, o) = s.take();
                t.in_packets += i;
                t.out_packets += o;
            }
        }
        t
    }

    /// The flow's idle limits as the balancer has them now (`None`: unchanged since open).
    pub fn current_limits(&self) -> Option<crate::api::IdleLimits> {
        self.worker.balancer.limits(self.handle.get())
    }

    pub fn last_active(&self) -> Instant {
        self.last_active.get()
    }

    pub fn half_closed(&self) -> bool {
        self.half_closed.get()
    }

    /// Report pending traffic, then `ev` (a non-terminal event).
    pub fn event(&self, ev: FlowEvent) {
        if ev == FlowEvent::Connected {
            self.latency.set(self.latency.get().connected());
        }
        if matches!(ev, FlowEvent::ClientFin | FlowEvent::ServerFin) {
            // A FIN restarts the entry's timer with the FIN timeout, as in IPVS.
            self.half_closed.set(true);
            self.last_active.set(Instant::now());
        }
        let t = self.take_traffic(match ev {
            FlowEvent::Closed(_) => Flush::Close,
            _ => Flush::Fin,
        });
        // One call for both (one shard lock and flow lookup in rvsd instead of two).
        self.worker.balancer.event_after(self.handle.get(), t, ev);
    }

    /// Report pending traffic and the terminal event; later calls are no-ops.
    pub fn close(&self, reason: CloseReason) {
        if self.closed.replace(true) {
            return;
        }
        self.event(FlowEvent::Closed(reason));
        if let Some(k) = self.kernel.borrow_mut().take() {
            if let Some(s) = self.worker.splicer.borrow_mut().as_mut() {
                s.unsplice(&k.pair);
            }
        }
    }

    /// Close the current handle with `reason` and carry on accounting under `next`.
    pub fn rebind(&self, reason: CloseReason, next: FlowHandle) {
        self.close(reason);
        self.handle.set(next);
        self.closed.set(false);
        // The connect to the next server is timed afresh.
        let on = self.latency.get() != crate::latency_probe::LatencyProbe::Off;
        self.measure_latency(on);
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.close(CloseReason::Aborted);
    }
}

/// Requests from the [`crate::Proxy`] handle to a worker.
pub(crate) enum Command {
    /// Serve a listener; the socket is already bound (and listening for TCP).
    Add {
        spec: ListenerSpec,
        socket: socket2::Socket,
        ack: std_mpsc::Sender<std::io::Result<()>>,
    },
    /// Stop serving a listener (closes the socket; for UDP also ends its flows).
    Remove {
        spec: ListenerSpec,
        ack: std_mpsc::Sender<std::io::Result<()>>,
    },
    /// Stop all listeners, wait up to `drain` for TCP flows, then return (dropping the rest).
    Shutdown { drain: Duration },
}

/// Body of a worker thread.
pub(crate) fn run(
    rt: tokio::runtime::Runtime,
    worker: Worker,
    rx: mpsc::UnboundedReceiver<Command>,
) -> usize {
    let local = tokio::task::LocalSet::new();
    let worker = Rc::new(worker);
    let left = local.block_on(&rt, serve(worker, rx));
    // Dropping the LocalSet drops the flows still open; their guards report Closed(Aborted).
    let _enter = rt.enter();
    drop(local);
    left
}

/// Reports the traffic of every flow that moved data since the last tick: one timer per
/// worker instead of one per flow, and no clock read per packet for it.
async fn traffic_tick(w: Rc<Worker>) {
    let mut tick = tokio::time::interval(w.cfg.traffic_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::new();
    loop {
        tick.tick().await;
        std::mem::swap(&mut batch, &mut *w.dirty.borrow_mut());
        for f in batch.drain(..) {
            if let Some(f) = f.upgrade() {
                f.listed.set(false);
                f.flush(Flush::Tick);
            }
        }
        // Spliced flows: the kernel moved their bytes; read and report them (and forget the
        // flows that have closed).
        std::mem::swap(&mut batch, &mut *w.spliced.borrow_mut());
        batch.retain(|f| match f.upgrade() {
            Some(f) if !f.closed.get() => {
                f.flush(Flush::Tick);
                true
            }
            _ => false,
        });
        w.spliced.borrow_mut().append(&mut batch);
    }
}

async fn serve(w: Rc<Worker>, mut rx: mpsc::UnboundedReceiver<Command>) -> usize {
    let _tick = AbortOnDrop(tokio::task::spawn_local(traffic_tick(w.clone())));
    // With a splicer: the set that watches spliced sockets, and its task.
    let _watch = if w.splicer.borrow().is_some() {
        match rvs_bpf::sock_watch::SockWatch::new() {
            Ok(watch) => {
                *w.splice_watch.borrow_mut() = Some(watch.clone());
                Some(AbortOnDrop(tokio::task::spawn_local(async move {
                    let e = watch.run().await;
                    tracing::error!(error = %e, "the watch of spliced sockets failed");
                })))
            }
            Err(e) => {
                // Spliced flows then stay registered in tokio (correct, more wake-ups).
                tracing::warn!(error = %e, "no epoll set for spliced sockets");
                None
            }
        }
    } else {
        None
    };
    let mut listeners: HashMap<ListenerSpec, JoinHandle<()>> = HashMap::new();
    let mut drain = Duration::ZERO;
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Command::Add { spec, socket, ack } => {
                let res = match spawn_listener(&w, spec, socket) {
                    Ok(h) => {
                        if let Some(old) = listeners.insert(spec, h) {
                            stop_listener(old).await;
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                let _ = ack.send(res);
            }
            Command::Remove { spec, ack } => {
                if let Some(h) = listeners.remove(&spec) {
                    stop_listener(h).await;
                }
                let _ = ack.send(Ok(()));
            }
            Command::Shutdown { drain: d } => {
                drain = d;
                break;
            }
        }
    }
    // Stop accepting first, then let open TCP flows finish within the drain time.
    for (_, h) in listeners.drain() {
        stop_listener(h).await;
    }
    let wait = async {
        while w.active.get() > 0 {
            w.idle.notified().await;
        }
    };
    let _ = tokio::time::timeout(drain, wait).await;
    w.active.get()
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Abort a listener task and wait until it is gone, so its socket is closed when the caller
/// is told the listener was removed.
async fn stop_listener(h: JoinHandle<()>) {
    h.abort();
    let _ = h.await;
}

fn spawn_listener(
    w: &Rc<Worker>,
    spec: ListenerSpec,
    socket: socket2::Socket,
) -> std::io::Result<JoinHandle<()>> {
    let h = match spec.protocol {
        Protocol::Tcp => {
            let l = tokio::net::TcpListener::from_std(socket.into())?;
            tokio::task::spawn_local(crate::tcp::accept_loop(w.clone(), spec, l))
        }
        Protocol::Udp => {
            let s = tokio::net::UdpSocket::from_std(socket.into())?;
            tokio::task::spawn_local(crate::udp::listener_loop(w.clone(), spec, s))
        }
        // `open_socket` already refused it; no socket of ours is SCTP.
        Protocol::Sctp => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                crate::api::SCTP_UNSUPPORTED,
            ))
        }
    };
    Ok(h)
}
