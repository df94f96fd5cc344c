//! The packet worker: one per port (interface and fanout member). It receives a ring block,
//! processes its frames with [`rvs_packet::plane::Plane`] under the packet shard's lock
//! (taken once per block), and transmits the rewritten frames after the lock is released.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rvs_core::Time;
use rvs_packet::plane::{DropCounters, Neighbours, Plane, PortId, Verdict};
use rvs_packet_io::{FrameSink, PacketPort, RxBlock, RxFrame, Sender};

use super::config::{Iface, PacketView};
use super::frag_stats::{FragStats, Publisher};
use super::hops::{HopTable, Hops, Misses};
use super::unresolved::{HoldCounters, Unresolved};
use super::xdp::OfferOut;
use crate::clock::Clock;
use crate::learned_neighbours::{solicitation_sender, Learned};
use crate::lock::lock;
use crate::published::{Doorbell, Published, Snapshot};
use crate::shard::{self, Shard, ShardRef};

/// Headroom before a frame in a worker's buffer: tunnels grow the frame into it (up to
/// 40 + 8 + 12 bytes, `Plane::process`), generated replies are written from byte 0.
const HEADROOM: usize = 128;
/// Largest frame a worker takes: a 64 KB GRO / GSO super-frame (cut into segments, see
/// `rvs_packet::gso`) plus an Ethernet header with two VLAN tags.
const MAX_FRAME: usize = 65535 + 22;
/// Largest frame a worker sends: a jumbo frame plus an L2 header and a tunnel header.
const OUT_FRAME: usize = 9216 + 22 + 64;
/// Room after the frame for a generated ICMP error (`Plane::process` asks for `len + 48`).
const TAIL: usize = 256;
/// Frames that do not fit back into their ring slot (tunnel encapsulation, fragments),
/// queued per batch and sent with one `sendmmsg` per interface.
const OUT_SLOTS: usize = 64;
/// Ring blocks a worker processes per hold of the shard lock (see "Locking" above).
pub(super) const BLOCKS_PER_BATCH: usize = 1;
/// How long a worker waits for frames before it looks at the stop flag again.
pub(super) const POLL: Duration = Duration::from_millis(100);
/// Most fragments one packet is split into (a 9 KB frame at the 68-byte minimum MTU).
const MAX_FRAGMENTS: usize = 256;
/// How long a worker holding frames for an unresolved next hop waits for a block before it
/// looks at the published next hops again ([`super::unresolved`]).
const HELD_POLL: Duration = Duration::from_millis(1);

/// What a worker does with its next-hop lookup after a block, outside the lock.
pub(super) trait Lookup: Neighbours {
    /// Hands the block's misses to the keeper.
    fn after_block(&self, cx: &Context);
    /// Lookups that found nothing so far.
    fn pending(&self) -> u64;
    /// Whether a lookup of `dst` would find a next hop now (counts nothing).
    fn resolved(&self, dst: &std::net::IpAddr) -> bool;
}

impl Lookup for Hops {
    fn after_block(&self, cx: &Context) {
        self.hand_over(&cx.misses, &cx.bell);
    }

    fn pending(&self) -> u64 {
        Hops::pending(self)
    }

    fn resolved(&self, dst: &std::net::IpAddr) -> bool {
        Hops::resolved(self, dst)
    }
}

/// Frames that do not fit back into their ring slot, sent after the batch.
struct OutQueue {
    arena: Vec<u8>,
    frames: Vec<(PortId, usize)>,
    sent: u64,
    failed: u64,
}

const SLOT: usize = OUT_FRAME;

impl OutQueue {
    fn new() -> Self {
        OutQueue {
            arena: vec![0; OUT_SLOTS * SLOT],
            frames: Vec::with_capacity(OUT_SLOTS),
            sent: 0,
            failed: 0,
        }
    }

    fn push<S: FrameSink>(&mut self, senders: &mut [S], port: PortId, frame: &[u8]) {
        if frame.len() > SLOT {
            self.failed += 1;
            return;
        }
        if self.frames.len() == OUT_SLOTS {
            self.flush(senders);
        }
        let i = self.frames.len();
        self.arena[i * SLOT..i * SLOT + frame.len()].copy_from_slice(frame);
        self.frames.push((port, frame.len()));
    }

    fn flush<S: FrameSink>(&mut self, senders: &mut [S]) {
        if self.frames.is_empty() {
            return;
        }
        for (p, sender) in senders.iter_mut().enumerate() {
            let batch: Vec<&[u8]> = self
                .frames
                .iter()
                .enumerate()
                .filter(|(_, (q, _))| usize::from(*q) == p)
                .map(|(i, &(_, len))| &self.arena[i * SLOT..i * SLOT + len])
                .collect();
            if batch.is_empty() {
                continue;
            }
            let n = sender.send_frames(&batch);
            self.sent += n as u64;
            self.failed += (batch.len() - n) as u64;
        }
        self.frames.clear();
    }
}

/// What a worker counted, reported when it stops.
#[derive(Debug, Default, Clone)]
pub struct WorkerReport {
    /// Interface.
    pub iface: String,
    /// Frames received.
    pub frames: u64,
    /// Batches (lock acquisitions).
    pub batches: u64,
    /// Frames too large or truncated, left to the host.
    pub oversize: u64,
    /// Frames for another host's MAC (`PACKET_OTHERHOST`), ignored.
    pub other_host: u64,
    /// Frames whose transport checksum was completed (`CHECKSUM_PARTIAL`).
    pub csum_completed: u64,
    /// TCP super-frames (GRO / GSO) cut into segments.
    pub segmented: u64,
    /// Frames the kernel dropped because the receive ring was full.
    pub ring_drops: u64,
    /// Frames the port failed to transmit.
    pub tx_errors: u64,
    /// Frames sent outside the ring (tunnels, fragments) / that failed.
    pub out_sent: u64,
    /// See `out_sent`.
    pub out_failed: u64,
    /// The plane's drop counters.
    pub drops: DropCounters,
    /// Next-hop lookups that found nothing (neighbour pending; each frame is in the
    /// `no_route` drops), handed to the keeper.
    pub neighbour_pending: u64,
    /// Frames held for an unresolved next hop, and what became of them.
    pub held: HoldCounters,
    /// Why the worker stopped early, if it did.
    pub error: Option<String>,
}

/// What a worker shares with the rest of the plane.
pub(super) struct Context {
    /// The shard of the services this plane serves: the only lock a worker takes per block.
    pub shard: ShardRef,
    /// The plane's configuration, published by the control side ([`super::config::PacketView`]).
    pub view: Arc<Published<PacketView>>,
    /// Neighbours learned from solicitations, shared by the workers.
    pub learned: Arc<Mutex<Learned>>,
    /// The next hops the keeper resolved.
    pub hops: Arc<Published<HopTable>>,
    /// Where misses go, and the keeper's bell.
    pub misses: Arc<Misses>,
    pub bell: Arc<Doorbell>,
    pub clock: Clock,
    pub stop: Arc<AtomicBool>,
    pub ifaces: Arc<Vec<Iface>>,
    /// Where fast-path offers go, when the XDP fast path runs (`super::xdp`).
    pub offers: Option<std::sync::mpsc::SyncSender<Vec<rvs_packet::fastpath::Offer>>>,
    /// Where the reassembly counters are summed (metrics).
    pub frag: Arc<FragStats>,
    /// Where the SYN-proxy counters are summed (metrics).
    pub syn: Arc<super::syn_stats::SynStats>,
}

/// Where a verdict's bytes go: back into the ring slot (sent by the port's batched
/// `sendmmsg` before the block is released), or into the out queue.
struct Emitter<S> {
    ifaces: Arc<Vec<Iface>>,
    senders: Vec<S>,
    out: OutQueue,
    frag: Vec<u8>,
    /// Fragments sent (re-fragmented packets).
    frags_sent: u64,
}

impl<S: FrameSink> Emitter<S> {
    fn emit(&mut self, v: Verdict, buf: &[u8], ring: Option<&mut RxFrame<'_>>) {
        match v {
            Verdict::Transmit { port, start, len } | Verdict::Local { port, start, len } => {
                let Some(ifindex) = self.ifaces.get(usize::from(port)).map(|i| i.ifindex) else {
                    return;
                };
                match ring {
                    Some(f) if len <= f.data().len() => {
                        f.data_mut()[..len].copy_from_slice(&buf[start..start + len]);
                        f.truncate(len);
                        f.transmit_on(ifindex);
                    }
                    _ => self
                        .out
                        .push(&mut self.senders, port, &buf[start..start + len]),
                }
            }
            Verdict::Fragment {
                port,
                start,
                len,
                mtu,
                ident,
            } => {
                let frame = &buf[start..start + len];
                let Ok(p) = rvs_packet::parse(frame) else {
                    return;
                };
                let Ok(mut fr) = rvs_packet::frag::fragment(frame, &p, mtu, ident) else {
                    return;
                };
                for _ in 0..MAX_FRAGMENTS {
                    match fr.next_into(&mut self.frag) {
                        Ok(Some(k)) => {
                            self.frags_sent += 1;
                            self.out.push(&mut self.senders, port, &self.frag[..k]);
                        }
                        _ => break,
                    }
                }
            }
            // Pass: the host stack has its own copy (the guard lets it through);
            // Drop: counted by the plane, and the guard keeps it from the host;
            // Queued: a fragment the plane keeps until its datagram is complete.
            Verdict::Pass | Verdict::Drop(_) | Verdict::Queued => {}
        }
    }
}

/// Completes the transport checksum of a `CHECKSUM_PARTIAL` frame (veth, local senders), or
/// the incremental rewrite of docs/internals/forwarding.md#nat keeps it wrong and the receiver
/// drops the packet. TCP, UDP and ICMP only; others are left as they are. True when done.
fn complete_checksum(frame: &mut [u8]) -> bool {
    match rvs_packet::parse(frame) {
        Ok(p) => rvs_packet::parse::fill_l4_checksum(frame, &p).is_ok(),
        Err(_) => false,
    }
}

/// True when `frame` is a TCP packet longer than the link MTU: a GRO / GSO super-frame that
/// must be cut into segments first (`rvs_packet::gso`).
fn super_frame(frame: &[u8], mtu: u32) -> Option<rvs_packet::Parsed> {
    if frame.len() <= mtu as usize + 14 {
        return None;
    }
    let p = rvs_packet::parse(frame).ok()?;
    (p.proto == 6 && !p.is_fragment() && p.l3_len() > mtu as usize).then_some(p)
}

/// Whether a received frame is the plane's business: not one for another host's MAC
/// (`PACKET_OTHERHOST`), which reaches the socket when a switch floods an unknown unicast
/// (e.g. after the peer that owned the MAC went away) or on a veth, which does not filter by
/// MAC. The kernel drops those frames, and so must the plane: a VRRP BACKUP would otherwise
/// serve a VIP it does not own with the frames flooded toward its dead MASTER's MAC.
fn addressed_to_us(pkt_type: u8) -> bool {
    pkt_type != libc::PACKET_OTHERHOST
}

/// Runs a worker on `port` until the plane stops; returns what it counted.
pub(super) fn run<P: PacketPort>(me: usize, mut port: P, cx: Context) -> WorkerReport {
    let stop = cx.stop.clone();
    let mut w = match open(me, cx) {
        Ok(w) => w,
        Err(rep) => return *rep,
    };
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = w.step(&mut port, POLL) {
            w.fail(format!("receive on {}: {e}", w.rep.iface));
            break;
        }
    }
    w.report(&mut port)
}

/// A worker for interface `me` with its transmit sockets (one per interface); the report
/// saying why when they cannot be opened.
pub(super) fn open(me: usize, cx: Context) -> Result<Worker<Hops, Sender>, Box<WorkerReport>> {
    let mut senders = Vec::with_capacity(cx.ifaces.len());
    for i in cx.ifaces.iter() {
        match Sender::open(&i.name) {
            Ok(s) => senders.push(s),
            Err(e) => {
                return Err(Box::new(WorkerReport {
                    iface: cx.ifaces[me].name.clone(),
                    error: Some(format!("sender on {}: {e}", i.name)),
                    ..WorkerReport::default()
                }))
            }
        }
    }
    let hops = Hops::new(cx.hops.clone(), cx.learned.clone());
    Ok(Worker::new(me, cx, hops, senders))
}

/// One worker's state between blocks: its plane (configuration, neighbours, drop counters),
/// its snapshot of the published view, its buffers and counters. Generic over the port it
/// receives from ([`Worker::step`]) and the senders of its out queue, so that it runs on
/// AF_PACKET in the daemon and on [`rvs_packet_io::MemIo`] in tests.
pub(super) struct Worker<N: Lookup, S: FrameSink> {
    me: usize,
    cx: Context,
    plane: Plane<N>,
    view: Snapshot<PacketView>,
    buf: Vec<u8>,
    em: Emitter<S>,
    rep: WorkerReport,
    offers: Option<OfferOut>,
    frag: Publisher,
    syn: super::syn_stats::Publisher,
    /// Frames waiting for their next hop.
    held: Unresolved,
}

impl<N: Lookup, S: FrameSink> Worker<N, S> {
    /// A worker for interface `me` of `cx.ifaces`; `senders` has one sender per interface.
    pub(super) fn new(me: usize, cx: Context, neighbours: N, senders: Vec<S>) -> Self {
        let view = cx.view.load();
        let mut plane = Plane::new(view.config.clone(), neighbours);
        // One reassembly memory bound for the director, not one per worker.
        plane.share_reassembly_memory(cx.frag.memory.clone());
        let offers = cx.offers.clone().map(OfferOut::new);
        plane.set_fast_path_offers(offers.is_some());
        Worker {
            me,
            offers,
            plane,
            view,
            buf: vec![0u8; HEADROOM + MAX_FRAME + TAIL],
            em: Emitter {
                ifaces: cx.ifaces.clone(),
                senders,
                out: OutQueue::new(),
                frag: vec![0u8; OUT_FRAME],
                frags_sent: 0,
            },
            frag: Publisher::default(),
            syn: super::syn_stats::Publisher::default(),
            held: Unresolved::default(),
            rep: WorkerReport {
                iface: cx.ifaces[me].name.clone(),
                ..WorkerReport::default()
            },
            cx,
        }
    }

    /// Waits at most `timeout` for a block and processes it: the packet shard's lock is
    /// taken at the block's first frame for the plane and released after its last, before
    /// the block's transmissions and the out queue go out, so those system calls run
    /// without it. Returns the number of frames in the block.
    pub(super) fn step<P: PacketPort>(
        &mut self,
        port: &mut P,
        timeout: Duration,
    ) -> Result<usize, rvs_packet_io::Error> {
        self.release_held();
        let timeout = if self.held.is_empty() {
            timeout
        } else {
            timeout.min(HELD_POLL)
        };
        let Some(mut block) = port.next_block(timeout)? else {
            // Idle: datagrams not reassembled in time give their memory back.
            self.plane.expire_fragments(self.cx.clock.now());
            self.publish_frag();
            return Ok(0);
        };
        let Worker {
            me,
            cx,
            plane,
            view,
            buf,
            em,
            rep,
            offers,
            frag: _,
            syn: _,
            held,
        } = self;
        let port_in = *me as PortId;
        let mtu = cx.ifaces[*me].mtu;
        let mut guard: Option<MutexGuard<'_, Shard>> = None;
        let mut now = Time(0);
        let mut seen = 0;
        while let Some(f) = block.next_frame() {
            seen += 1;
            if !addressed_to_us(f.pkt_type()) {
                rep.other_host += 1;
                continue;
            }
            if f.truncated() || f.data().len() > MAX_FRAME {
                rep.oversize += 1;
                continue;
            }
            if let Some((ip, mac)) = solicitation_sender(f.data()) {
                // As the kernel does for a request to one of its addresses: remember the
                // sender, so the first reply toward it is not dropped for want of a neighbour.
                if cx.ifaces[*me].on_link(ip) {
                    lock(&cx.learned).learn(ip, mac, port_in, Instant::now());
                }
            }
            if guard.is_none() {
                // A changed table or VRRP state: the control side published a new
                // configuration (one atomic load when nothing changed).
                if cx.view.refresh(view) {
                    plane.set_config(view.config.clone());
                }
                guard = Some(shard::lock(&cx.shard));
                now = cx.clock.now();
                rep.batches += 1;
            }
            let Some(st) = guard.as_deref_mut() else {
                continue;
            };
            rep.frames += 1;
            let Shard { director, rng, .. } = st;
            if let Some(p) = super_frame(f.data(), mtu) {
                // Cut into segments that fit the link, each processed like a frame of its
                // own (checksums are recomputed in full, partial or not).
                rep.segmented += 1;
                let Ok(mut seg) = rvs_packet::gso::segment_tcp(f.data(), &p, mtu) else {
                    continue;
                };
                for _ in 0..MAX_FRAGMENTS {
                    let n = match seg.next_into(&mut buf[HEADROOM..HEADROOM + OUT_FRAME]) {
                        Ok(Some(n)) => n,
                        _ => break,
                    };
                    let v = plane.process(director, buf, HEADROOM, n, port_in, now, rng);
                    // A segment whose next hop is missing is not held: dropped (counted
                    // `no_route`), as it always was; TCP sends it again.
                    plane.take_pending();
                    em.emit(v, buf, None);
                }
                continue;
            }
            let len = f.data().len();
            buf[HEADROOM..HEADROOM + len].copy_from_slice(f.data());
            if f.checksum_not_ready() && complete_checksum(&mut buf[HEADROOM..HEADROOM + len]) {
                rep.csum_completed += 1;
            }
            let v = plane.process(director, buf, HEADROOM, len, port_in, now, rng);
            if let Some(pending) = plane.take_pending() {
                // Neighbour pending: the director is done with the frame (counted, scheduled,
                // rewritten up to the transmit step); held as the plane left it, finished and
                // sent once the keeper resolved the next hop.
                let (start, n) = pending.frame();
                held.hold(pending.next(), &buf[start..start + n], pending, now);
            }
            em.emit(v, buf, Some(f));
        }
        drop(guard);
        if let Some(o) = offers.as_mut() {
            o.send(plane);
        }
        block.finish();
        em.out.flush(&mut em.senders);
        plane.neigh.after_block(cx);
        self.publish_frag();
        Ok(seen)
    }

    /// Finishes and sends the held frames whose next hop the keeper has published since;
    /// drops those that waited too long. The director handled them when they arrived, so
    /// this takes no lock: only the transmit step is left ([`Plane::send_pending`]).
    fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let now = self.cx.clock.now();
        let neigh = &self.plane.neigh;
        let ready = self.held.take_ready(|d| neigh.resolved(d), now);
        if ready.is_empty() {
            return;
        }
        for h in ready {
            let len = h.bytes.len();
            self.buf[HEADROOM..HEADROOM + len].copy_from_slice(&h.bytes);
            let v = self
                .plane
                .send_pending(&h.pending, &mut self.buf, HEADROOM, len);
            if self.plane.take_pending().is_some() {
                self.held.lost();
            }
            self.em.emit(v, &self.buf, None);
        }
        self.em.out.flush(&mut self.em.senders);
        self.plane.neigh.after_block(&self.cx);
    }

    /// Adds the reassembly counters that changed to the plane's sums (metrics).
    fn publish_frag(&mut self) {
        self.frag.publish(
            &self.cx.frag,
            self.plane.frag_counters(),
            self.plane.frag_held(),
            self.em.frags_sent,
        );
        self.syn.publish(
            &self.cx.syn,
            self.plane.syn_proxy_counters(),
            self.plane
                .drops()
                .get(rvs_packet::plane::DropReason::BadCookie),
        );
    }

    /// Records why the worker stops early.
    pub(super) fn fail(&mut self, why: String) {
        self.rep.error = Some(why);
    }

    /// The worker's counters, with the port's.
    pub(super) fn report<P: PacketPort>(mut self, port: &mut P) -> WorkerReport {
        if let Ok(ps) = port.stats() {
            self.rep.ring_drops = ps.kernel_drops;
            self.rep.tx_errors = ps.tx_errors;
        }
        self.rep.out_sent = self.em.out.sent;
        self.rep.out_failed = self.em.out.failed;
        self.rep.drops = self.plane.drops().clone();
        self.rep.neighbour_pending = self.plane.neigh.pending();
        self.rep.held = self.held.counters();
        self.rep
    }
}

#[cfg(test)]
mod tests {
    //! The worker on [`MemIo`] ports, without root: one lock per block, the configuration
    //! swapped after a publication, the out queue (tunnels, fragments) flushed without the
    //! lock, drops counted.

    use super::*;
    use std::cell::{Cell, RefCell};
    use std::net::{IpAddr, Ipv4Addr};
    use std::rc::Rc;

    use rvs_packet::plane::{DropReason, NextHop};
    use rvs_packet_io::MemIo;

    use crate::packet_plane::config::{Options, PacketFeed};
    use crate::packet_plane::unresolved::HOLD_FOR;
    use crate::state::{Planes, State};
    use crate::test_support::parse_cmd;

    const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x50];
    const RS_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];

    fn ifaces() -> Vec<Iface> {
        vec![
            Iface {
                name: "eth0".into(),
                ifindex: 2,
                mac: MAC0,
                mtu: 1500,
                addrs: vec![("10.1.0.1".parse().unwrap(), 24)],
            },
            // A smaller MTU toward the real servers, so that large frames are fragmented.
            Iface {
                name: "eth1".into(),
                ifindex: 3,
                mac: MAC1,
                mtu: 1000,
                addrs: vec![("10.2.0.1".parse().unwrap(), 24)],
            },
        ]
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// The worker's own cache-only lookup, recording whether the shard lock was held at
    /// each lookup (the plane looks up a next hop once per forwarded frame).
    struct Table {
        hops: Hops,
        shard: ShardRef,
        lookups: Rc<Cell<usize>>,
        unlocked: Rc<Cell<usize>>,
        /// While set, lookups find nothing though `resolved` says yes: a next hop that
        /// vanishes between the worker's check and the send.
        vanished: Cell<bool>,
    }

    impl Neighbours for Table {
        fn next_hop(&self, dst: IpAddr) -> Option<NextHop> {
            self.lookups.set(self.lookups.get() + 1);
            if self.shard.try_lock().is_ok() {
                self.unlocked.set(self.unlocked.get() + 1);
            }
            if self.vanished.get() {
                return None;
            }
            self.hops.next_hop(dst)
        }
    }

    impl Lookup for Table {
        fn after_block(&self, cx: &Context) {
            self.hops.after_block(cx);
        }

        fn pending(&self) -> u64 {
            Lookup::pending(&self.hops)
        }

        fn resolved(&self, dst: &IpAddr) -> bool {
            self.hops.resolved(dst)
        }
    }

    /// An out-queue sender that records its frames and whether the shard lock was free.
    struct Probe {
        shard: ShardRef,
        frames: Rc<RefCell<Vec<Vec<u8>>>>,
        locked: Rc<Cell<usize>>,
    }

    impl FrameSink for Probe {
        fn send_frames(&mut self, frames: &[&[u8]]) -> usize {
            if self.shard.try_lock().is_err() {
                self.locked.set(self.locked.get() + 1);
            }
            self.frames
                .borrow_mut()
                .extend(frames.iter().map(|f| f.to_vec()));
            frames.len()
        }
    }

    struct Rig {
        st: State,
        worker: Worker<Table, Probe>,
        lookups: Rc<Cell<usize>>,
        unlocked: Rc<Cell<usize>>,
        /// Frames each interface's out-queue sender sent.
        out: Vec<Rc<RefCell<Vec<Vec<u8>>>>>,
        locked_sends: Rc<Cell<usize>>,
    }

    /// A state with the packet plane attached (configured by rvsadm commands) and a worker
    /// on interface 0; the real servers 10.2.0.11 and 10.2.0.12 are resolved, 10.2.0.13 not.
    fn rig(cmds: &[&str]) -> Rig {
        rig_with(cmds, Options::default())
    }

    fn rig_with(cmds: &[&str], opts: Options) -> Rig {
        rig_offering(cmds, opts, None)
    }

    /// [`rig_with`] whose worker hands fast-path offers to `offers` (as with `--xdp`).
    fn rig_offering(
        cmds: &[&str],
        opts: Options,
        offers: Option<std::sync::mpsc::SyncSender<Vec<rvs_packet::fastpath::Offer>>>,
    ) -> Rig {
        let mut st = State::new(Time(0), Planes { packet: true });
        let feed = PacketFeed::new(ifaces(), opts);
        st.attach_packet_plane(feed.clone());
        for c in cmds {
            let r = st.handle(&parse_cmd(c), Time(0));
            assert!(r.result.is_ok(), "{c}: {:?}", r.result);
        }
        let shard = st.packet_shard().unwrap().clone();
        let hop = NextHop {
            port: 1,
            mac: RS_MAC,
        };
        let table: HopTable = [("10.2.0.11", hop), ("10.2.0.12", hop)]
            .iter()
            .map(|(a, h)| (a.parse().unwrap(), *h))
            .collect();
        let cx = Context {
            shard: shard.clone(),
            view: feed.view.clone(),
            learned: Arc::new(Mutex::new(Learned::default())),
            hops: Arc::new(Published::new(table)),
            misses: Arc::new(Misses::default()),
            bell: feed.bell.clone(),
            clock: Clock::new(),
            stop: Arc::new(AtomicBool::new(false)),
            ifaces: feed.ifaces.clone(),
            offers,
            frag: feed.frag.clone(),
            syn: feed.syn.clone(),
        };
        let (lookups, unlocked) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let table = Table {
            hops: Hops::new(cx.hops.clone(), cx.learned.clone()),
            shard: shard.clone(),
            lookups: lookups.clone(),
            unlocked: unlocked.clone(),
            vanished: Cell::new(false),
        };
        let locked_sends = Rc::new(Cell::new(0));
        let out: Vec<_> = (0..2).map(|_| Rc::new(RefCell::new(Vec::new()))).collect();
        let senders = out
            .iter()
            .map(|frames| Probe {
                shard: shard.clone(),
                frames: frames.clone(),
                locked: locked_sends.clone(),
            })
            .collect();
        Rig {
            st,
            worker: Worker::new(0, cx, table, senders),
            lookups,
            unlocked,
            out,
            locked_sends,
        }
    }

    fn port() -> MemIo {
        MemIo::new(MAC0, 2)
    }

    impl Rig {
        /// Another worker on interface 0 sharing this one's shard, published view, next hops
        /// and keeper (as the workers of a `--packet-workers 2` fanout group do); its out
        /// queue sends nowhere.
        fn second_worker(&self) -> Worker<Hops, Probe> {
            let cx = &self.worker.cx;
            let cx = Context {
                shard: cx.shard.clone(),
                view: cx.view.clone(),
                learned: cx.learned.clone(),
                hops: cx.hops.clone(),
                misses: cx.misses.clone(),
                bell: cx.bell.clone(),
                clock: cx.clock,
                stop: cx.stop.clone(),
                ifaces: cx.ifaces.clone(),
                offers: None,
                frag: cx.frag.clone(),
                syn: cx.syn.clone(),
            };
            let hops = Hops::new(cx.hops.clone(), cx.learned.clone());
            let senders = (0..2)
                .map(|_| Probe {
                    shard: cx.shard.clone(),
                    frames: Rc::default(),
                    locked: Rc::default(),
                })
                .collect();
            Worker::new(0, cx, hops, senders)
        }
    }

    /// An Ethernet + IPv4 + UDP frame from the client to `dst`, `payload` bytes of data.
    fn udp4(dst: &str, dport: u16, payload: usize, df: bool) -> Vec<u8> {
        udp4_from(40000, dst, dport, payload, df)
    }

    /// [`udp4`] from client port `sport`.
    fn udp4_from(sport: u16, dst: &str, dport: u16, payload: usize, df: bool) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend(MAC0);
        f.extend(CLIENT_MAC);
        f.extend([0x08, 0x00]);
        let total = (20 + 8 + payload) as u16;
        let mut h = vec![0x45, 0];
        h.extend(total.to_be_bytes());
        h.extend([0, 1, if df { 0x40 } else { 0 }, 0, 64, 17, 0, 0]);
        h.extend(ip("10.1.0.50").octets());
        h.extend(ip(dst).octets());
        let c = rvs_packet::checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend(h);
        f.extend(sport.to_be_bytes());
        f.extend(dport.to_be_bytes());
        f.extend(((8 + payload) as u16).to_be_bytes());
        f.extend([0, 0]); // no UDP checksum
        f.extend(std::iter::repeat_n(0x61, payload));
        f
    }

    /// A broadcast ARP request from the client for `target`.
    fn arp_request(target: &str) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend(CLIENT_MAC);
        f.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend(CLIENT_MAC);
        f.extend(ip("10.1.0.50").octets());
        f.extend([0; 6]);
        f.extend(ip(target).octets());
        f.resize(60, 0);
        f
    }

    const DR: [&str; 2] = [
        "-A -u 10.100.0.1:53 -s rr",
        "-a -u 10.100.0.1:53 -r 10.2.0.11:53 -g",
    ];

    /// [`DR`] and a second UDP service `vip`:53 with one real server `rip`:53 forwarded by
    /// `method` (`-g`, `-i`, `-m`).
    fn rig_dr_and(vip: &str, rip: &str, method: &str) -> Rig {
        let svc = format!("-A -u {vip}:53 -s rr");
        let dest = format!("-a -u {vip}:53 -r {rip}:53 {method}");
        let mut cmds = DR.to_vec();
        cmds.extend([svc.as_str(), dest.as_str()]);
        rig(&cmds)
    }

    #[test]
    fn one_lock_per_block_held_while_frames_are_processed() {
        let mut r = rig(&DR);
        let mut io = port();
        for _ in 0..5 {
            io.inject(&udp4("10.100.0.1", 53, 64, false));
        }
        assert_eq!(r.worker.step(&mut io, Duration::ZERO).unwrap(), 5);
        assert_eq!(r.worker.rep.frames, 5);
        assert_eq!(r.worker.rep.batches, 1, "one lock for the whole block");
        assert_eq!(r.lookups.get(), 5, "each frame forwarded");
        assert_eq!(
            r.unlocked.get(),
            0,
            "a frame was processed without the lock"
        );
        // DR: rewritten in place and sent from the ring slot toward the real server.
        let sent = io.take_sent();
        assert_eq!(sent.len(), 5);
        assert!(sent.iter().all(|(i, f)| *i == 3 && f[..6] == RS_MAC));

        // The same frames in blocks of two: three blocks, three locks.
        let mut io = port().with_block_frames(2);
        for _ in 0..5 {
            io.inject(&udp4("10.100.0.1", 53, 64, false));
        }
        while r.worker.step(&mut io, Duration::ZERO).unwrap() > 0 {}
        assert_eq!(r.worker.rep.frames, 10);
        assert_eq!(r.worker.rep.batches, 4);
        assert_eq!(io.take_sent().len(), 5);
        assert_eq!(r.worker.step(&mut io, Duration::ZERO).unwrap(), 0);
        assert_eq!(r.worker.rep.batches, 4, "no frame, no lock");
    }

    #[test]
    fn configuration_is_swapped_after_a_publication() {
        let mut r = rig(&[]);
        let mut io = port();
        io.inject(&arp_request("10.100.0.9"));
        r.worker.step(&mut io, Duration::ZERO).unwrap();
        assert!(io.take_sent().is_empty(), "not our address yet");
        // The control side adds a service: the next block sees the published view.
        let resp = r.st.handle(&parse_cmd("-A -t 10.100.0.9:80"), Time(0));
        assert!(resp.result.is_ok());
        io.inject(&arp_request("10.100.0.9"));
        r.worker.step(&mut io, Duration::ZERO).unwrap();
        let sent = io.take_sent();
        assert_eq!(sent.len(), 1, "ARP reply for the new VIP");
        let (_, reply) = &sent[0];
        assert_eq!(reply[..6], CLIENT_MAC);
        assert_eq!(&reply[12..14], &[0x08, 0x06]);
        assert_eq!(reply[22..28], MAC0, "answered with our MAC");
    }

    #[test]
    fn out_queue_and_fragments_are_flushed_without_the_lock() {
        let mut r = rig_dr_and("10.100.0.2", "10.2.0.12", "-i");
        let mut io = port();
        // IP-in-IP grows the frame past its ring slot: sent from the out queue.
        let small = udp4("10.100.0.2", 53, 200, false);
        io.inject(&small);
        // Too big for eth1's MTU of 1000, DF clear: fragmented into the out queue.
        io.inject(&udp4("10.100.0.1", 53, 1200, false));
        assert_eq!(r.worker.step(&mut io, Duration::ZERO).unwrap(), 2);
        assert!(io.take_sent().is_empty(), "nothing fits its ring slot");
        assert!(r.out[0].borrow().is_empty());
        let out = r.out[1].borrow().clone();
        assert_eq!(out.len(), 3, "one tunnel packet and two fragments");
        assert_eq!(out[0].len(), small.len() + 20, "IP-in-IP");
        assert!(out[1..].iter().all(|f| f.len() <= 1000 + 14));
        assert_eq!(
            r.locked_sends.get(),
            0,
            "the out queue went out under the lock"
        );
        let rep = r.worker.report(&mut io);
        assert_eq!((rep.out_sent, rep.out_failed), (3, 0));
    }

    #[test]
    fn drops_are_counted_and_misses_go_to_the_keeper() {
        let mut r = rig_dr_and("10.100.0.3", "10.2.0.13", "-g");
        // Publications rang the keeper's bell already; only the miss may ring it now.
        r.worker.cx.bell.wait(Duration::ZERO);
        let mut io = port();
        // The real server's next hop is unknown.
        io.inject(&udp4("10.100.0.3", 53, 64, false));
        io.inject(&udp4("10.100.0.3", 53, 64, false));
        // Two fragments for a VIP, the second overlapping the first: queued, then the
        // datagram is discarded.
        io.inject(&fragment_of(
            &udp4("10.100.0.1", 53, 64, false),
            0,
            72,
            true,
        ));
        io.inject(&fragment_of(
            &udp4("10.100.0.1", 53, 64, false),
            8,
            72,
            true,
        ));
        assert_eq!(r.worker.step(&mut io, Duration::ZERO).unwrap(), 4);
        assert!(io.take_sent().is_empty());
        // The miss went to the keeper (once, after the block) and woke it.
        assert_eq!(
            r.worker.cx.misses.take(),
            vec!["10.2.0.13".parse::<IpAddr>().unwrap()]
        );
        assert!(
            r.worker.cx.bell.wait(Duration::ZERO),
            "the keeper was not woken"
        );
        let rep = r.worker.report(&mut io);
        assert_eq!(rep.drops.get(DropReason::NoRoute), 2);
        assert_eq!(rep.neighbour_pending, 2);
        assert_eq!(rep.drops.get(DropReason::Fragment), 1);
        assert_eq!(rep.frames, 4);
    }

    /// A frame toward a next hop nobody has resolved yet is held, as the kernel queues packets
    /// for a neighbour it is resolving: once the keeper publishes the next hop, the worker
    /// sends the held frames in order, rewritten like any other, without a new frame arriving.
    #[test]
    fn frames_to_an_unresolved_next_hop_are_held_and_sent_once_it_resolves() {
        let mut r = rig_dr_and("10.100.0.3", "10.2.0.13", "-g");
        let mut io = port();
        let first = udp4_from(40001, "10.100.0.3", 53, 64, false);
        let second = udp4_from(40002, "10.100.0.3", 53, 64, false);
        io.inject(&first);
        io.inject(&second);
        assert_eq!(r.worker.step(&mut io, Duration::ZERO).unwrap(), 2);
        assert!(io.take_sent().is_empty(), "no next hop yet");
        assert_eq!(
            r.worker.cx.misses.take(),
            vec!["10.2.0.13".parse::<IpAddr>().unwrap()]
        );
        // Nothing resolved yet: the frames stay held.
        assert_eq!(r.worker.step(&mut io, Duration::ZERO).unwrap(), 0);
        assert!(r.out[1].borrow().is_empty());
        // The keeper resolved 10.2.0.13 and published it.
        let mut table: Vec<(IpAddr, NextHop)> = ["10.2.0.11", "10.2.0.12", "10.2.0.13"]
            .iter()
            .map(|a| {
                (
                    a.parse().unwrap(),
                    NextHop {
                        port: 1,
                        mac: RS_MAC,
                    },
                )
            })
            .collect();
        table[2].1.mac[5] = 0x13;
        r.worker.cx.hops.publish(table.into_iter().collect());
        let batches = r.worker.rep.batches;
        assert_eq!(r.worker.step(&mut io, Duration::ZERO).unwrap(), 0);
        let out = r.out[1].borrow().clone();
        assert_eq!(out.len(), 2, "both held frames sent");
        for (f, sent) in [&first, &second].iter().zip(&out) {
            assert_eq!(sent[..6], [2, 0, 0, 0, 0, 0x13], "the resolved MAC");
            assert_eq!(sent[6..12], MAC1);
            assert_eq!(sent[34..], f[34..], "same datagram (DR)");
        }
        assert_eq!(r.locked_sends.get(), 0, "sent under the lock");
        assert_eq!(r.worker.rep.batches, batches);
        // Nothing is sent twice.
        assert_eq!(r.worker.step(&mut io, Duration::ZERO).unwrap(), 0);
        assert_eq!(r.out[1].borrow().len(), 2);
        let rep = r.worker.report(&mut io);
        assert_eq!((rep.held.held, rep.held.released), (2, 2));
        assert_eq!((rep.held.expired, rep.held.discarded), (0, 0));
    }

    /// Held frames whose next hop does not resolve within the kernel's three probes are
    /// dropped and counted; a fragment is never held (its datagram's other parts are gone).
    #[test]
    fn held_frames_are_dropped_when_the_next_hop_never_resolves() {
        let mut r = rig_dr_and("10.100.0.3", "10.2.0.13", "-g");
        let mut io = port();
        io.inject(&udp4("10.100.0.3", 53, 64, false));
        let whole = udp4_from(40003, "10.100.0.3", 53, 64, false);
        io.inject(&fragment_of(&whole, 0, 40, true));
        io.inject(&fragment_of(&whole, 40, 72, false));
        assert_eq!(r.worker.step(&mut io, Duration::ZERO).unwrap(), 3);
        assert_eq!(
            r.worker.held.counters().held,
            1,
            "the fragments are not held"
        );
        let t0 = r.worker.cx.clock.now().0;
        r.worker.cx.clock = Clock::at(Time(t0 + HOLD_FOR.0 - 1));
        r.worker.step(&mut io, Duration::ZERO).unwrap();
        assert!(!r.worker.held.is_empty(), "still waiting");
        r.worker.cx.clock = Clock::at(Time(t0 + HOLD_FOR.0));
        r.worker.step(&mut io, Duration::ZERO).unwrap();
        assert!(r.worker.held.is_empty());
        // Resolved too late: nothing goes out.
        let hop = NextHop {
            port: 1,
            mac: RS_MAC,
        };
        r.worker
            .cx
            .hops
            .publish([("10.2.0.13".parse().unwrap(), hop)].into_iter().collect());
        r.worker.step(&mut io, Duration::ZERO).unwrap();
        assert!(r.out[1].borrow().is_empty() && io.take_sent().is_empty());
        let rep = r.worker.report(&mut io);
        assert_eq!(
            (rep.held.held, rep.held.released, rep.held.expired),
            (1, 0, 1)
        );
        assert_eq!(rep.drops.get(DropReason::NoRoute), 2, "frame and datagram");
    }

    /// Publishes next hops for `addrs` besides the rig's 10.2.0.11 and 10.2.0.12, as the
    /// keeper does once it resolved them: through eth0 for the clients' 10.1.0.0/24, eth1
    /// for the others; the last byte of each one's MAC is its address's.
    fn resolve(r: &Rig, addrs: &[&str]) {
        let rig_hop = NextHop {
            port: 1,
            mac: RS_MAC,
        };
        let mut table = vec![
            (IpAddr::from(ip("10.2.0.11")), rig_hop),
            (IpAddr::from(ip("10.2.0.12")), rig_hop),
        ];
        for a in addrs {
            let a = ip(a);
            let mut mac = RS_MAC;
            mac[5] = a.octets()[3];
            let port = if a.octets()[..3] == [10, 1, 0] { 0 } else { 1 };
            table.push((IpAddr::V4(a), NextHop { port, mac }));
        }
        r.worker.cx.hops.publish(table.into_iter().collect());
    }

    /// The counters of service `vip`:`port` and of its real servers, as `rvsadm -L -n
    /// --stats` shows them.
    fn stats_of(
        st: &mut State,
        vip: &str,
        port: u16,
    ) -> (rvs_control::model::Stats, Vec<rvs_control::model::Stats>) {
        let r = st.handle(&rvs_control::proto::Request::GetServices, Time(0));
        let Ok(rvs_control::proto::Payload::Services(v)) = r.result else {
            panic!("GetServices: {:?}", r.result);
        };
        let vip: IpAddr = vip.parse().unwrap();
        let s = v
            .iter()
            .find(|s| {
                matches!(s.spec.key, rvs_control::model::ServiceKey::Addr { addr, port: p, .. }
                    if addr == vip && p == port)
            })
            .unwrap_or_else(|| panic!("no service {vip}:{port}"));
        (s.stats, s.dests.iter().map(|d| d.stats).collect())
    }

    /// The packet shard's connections: (client port, real server, incoming packets counted
    /// for the sync rules), by client port.
    fn conns(r: &Rig) -> Vec<(u16, IpAddr, u32)> {
        let guard = shard::lock(&r.worker.cx.shard);
        let c = &guard.director.conns;
        let mut v: Vec<_> = c
            .iter()
            .filter_map(|id| Some((c.info(id)?, c.get(id)?.in_pkts)))
            .map(|(i, n)| (i.cport, i.daddr, n))
            .collect();
        v.sort();
        v
    }

    /// A TCP SYN from the client's port `sport` to `dst`:`dport`, with its checksums.
    fn tcp4_syn(sport: u16, dst: &str, dport: u16) -> Vec<u8> {
        let (src, dst) = (ip("10.1.0.50"), ip(dst));
        let mut f = Vec::new();
        f.extend(MAC0);
        f.extend(CLIENT_MAC);
        f.extend([0x08, 0x00]);
        let mut h = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
        h.extend(src.octets());
        h.extend(dst.octets());
        let c = rvs_packet::checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend(h);
        let mut t = Vec::new();
        t.extend(sport.to_be_bytes());
        t.extend(dport.to_be_bytes());
        t.extend(1000u32.to_be_bytes());
        t.extend(0u32.to_be_bytes());
        t.extend([0x50, 0x02]);
        t.extend(64240u16.to_be_bytes());
        t.extend([0, 0, 0, 0]);
        let acc = rvs_packet::checksum::pseudo_v4(src, dst, 6, 20);
        let c = !rvs_packet::checksum::fold(rvs_packet::checksum::sum(acc, &t));
        t[16..18].copy_from_slice(&c.to_be_bytes());
        f.extend(t);
        f
    }

    /// Frames held for their next hop are the director's business once, as the kernel's
    /// neighbour queue holds packets IPVS already handled: the service, its real server and
    /// the connections (the sync rules' packet count) count each frame once, and what leaves
    /// once the next hop is known is byte for byte what leaves when it was known from the
    /// start — NAT, DR, and a tunnel, whose outer source and MACs come from the next hop.
    #[test]
    fn held_frames_are_accounted_once_and_leave_as_if_resolved() {
        let frames: Vec<_> = [40011, 40011, 40012]
            .iter()
            .map(|&p| udp4_from(p, "10.100.0.3", 53, 64, false))
            .collect();
        // What a rig sent toward the real servers: from the ring slots, then the out queue.
        let sent = |r: &Rig, io: &mut MemIo| -> Vec<Vec<u8>> {
            let mut v: Vec<_> = io.take_sent().into_iter().map(|(_, f)| f).collect();
            v.extend(r.out[1].borrow_mut().drain(..));
            v
        };
        for method in ["-m", "-g", "-i"] {
            let mut r = rig_dr_and("10.100.0.3", "10.2.0.13", method);
            let mut io = port();
            for f in &frames {
                io.inject(f);
            }
            assert_eq!(r.worker.step(&mut io, Duration::ZERO).unwrap(), 3);
            assert!(sent(&r, &mut io).is_empty(), "{method}: no next hop yet");
            resolve(&r, &["10.2.0.13"]);
            assert_eq!(r.worker.step(&mut io, Duration::ZERO).unwrap(), 0);
            let released = sent(&r, &mut io);
            // The same frames through a worker that knew the next hop from the start.
            let mut k = rig_dr_and("10.100.0.3", "10.2.0.13", method);
            resolve(&k, &["10.2.0.13"]);
            let mut kio = port();
            for f in &frames {
                kio.inject(f);
            }
            assert_eq!(k.worker.step(&mut kio, Duration::ZERO).unwrap(), 3);
            let direct = sent(&k, &mut kio);
            assert_eq!(direct.len(), 3, "{method}");
            assert_eq!(
                released, direct,
                "{method}: as if the next hop had been known"
            );
            assert_eq!(released[0][..6], [2, 0, 0, 0, 0, 13], "{method}: its MAC");
            let rs: IpAddr = "10.2.0.13".parse().unwrap();
            // Counted once: 3 packets of 92 bytes (IP length), 2 connections.
            let (svc, dests) = stats_of(&mut r.st, "10.100.0.3", 53);
            assert_eq!(
                (svc.conns, svc.inpkts, svc.inbytes),
                (2, 3, 3 * 92),
                "{method}"
            );
            assert_eq!(
                (dests[0].conns, dests[0].inpkts, dests[0].inbytes),
                (2, 3, 276)
            );
            assert_eq!(
                (svc, dests),
                stats_of(&mut k.st, "10.100.0.3", 53),
                "{method}: as without holding"
            );
            assert_eq!(conns(&r), [(40011, rs, 2), (40012, rs, 1)], "{method}");
            let rep = r.worker.report(&mut io);
            assert_eq!((rep.held.held, rep.held.released), (3, 3));
        }
    }

    /// A SYN held for its next hop is scheduled once: one connection, and the round robin
    /// moved on by one, so the next client goes to the other real server.
    #[test]
    fn a_held_syn_is_scheduled_once() {
        let cmds = [
            "-A -t 10.100.0.4:80 -s rr",
            "-a -t 10.100.0.4:80 -r 10.2.0.13:80 -g",
            "-a -t 10.100.0.4:80 -r 10.2.0.14:80 -g",
        ];
        let mut r = rig(&cmds);
        let mut io = port();
        io.inject(&tcp4_syn(41000, "10.100.0.4", 80));
        assert_eq!(r.worker.step(&mut io, Duration::ZERO).unwrap(), 1);
        assert!(io.take_sent().is_empty(), "no next hop yet");
        resolve(&r, &["10.2.0.13", "10.2.0.14"]);
        r.worker.step(&mut io, Duration::ZERO).unwrap();
        let out = r.out[1].borrow().clone();
        assert_eq!(out.len(), 1, "the held SYN");
        io.inject(&tcp4_syn(41001, "10.100.0.4", 80));
        r.worker.step(&mut io, Duration::ZERO).unwrap();
        let sent = io.take_sent();
        assert_eq!(sent.len(), 1);
        assert_ne!(sent[0].1[..6], out[0][..6], "the other real server");
        let c = conns(&r);
        assert_eq!(c.len(), 2, "one connection per SYN: {c:?}");
        assert_ne!(c[0].1, c[1].1);
        assert_eq!((c[0].2, c[1].2), (1, 1), "each SYN counted once");
        let IpAddr::V4(first) = c[0].1 else {
            panic!("{c:?}")
        };
        assert_eq!(
            out[0][5],
            first.octets()[3],
            "the first client's real server"
        );
        let (svc, dests) = stats_of(&mut r.st, "10.100.0.4", 80);
        assert_eq!((svc.conns, svc.inpkts, svc.inbytes), (2, 2, 80));
        assert!(
            dests.iter().all(|d| (d.conns, d.inpkts) == (1, 1)),
            "{dests:?}"
        );
    }

    /// A real server's reply held for the client's next hop is counted once too (OutPkts),
    /// and leaves rewritten as it would have with the client known (NAT: from the VIP).
    #[test]
    fn a_held_reply_is_counted_once() {
        let cmds = [
            "-A -u 10.100.0.1:53 -s rr",
            "-a -u 10.100.0.1:53 -r 10.2.0.11:53 -m",
        ];
        // The real server's answer to the client's 10.1.0.50:40020.
        let mut reply = udp4_from(53, "10.1.0.50", 40020, 32, false);
        reply[6..12].copy_from_slice(&RS_MAC);
        reply[26..30].copy_from_slice(&ip("10.2.0.11").octets());
        reply[24..26].copy_from_slice(&[0, 0]);
        let c = rvs_packet::checksum::checksum(&reply[14..34]);
        reply[24..26].copy_from_slice(&c.to_be_bytes());
        let request = udp4_from(40020, "10.100.0.1", 53, 16, false);
        let mut sent_back = Vec::new();
        let mut stats = Vec::new();
        for client_known in [false, true] {
            let mut r = rig(&cmds);
            if client_known {
                resolve(&r, &["10.1.0.50"]);
            }
            let mut io = port();
            io.inject(&request);
            r.worker.step(&mut io, Duration::ZERO).unwrap();
            assert_eq!(
                io.take_sent().len(),
                1,
                "the request went to the real server"
            );
            io.inject(&reply);
            r.worker.step(&mut io, Duration::ZERO).unwrap();
            let mut out = io.take_sent();
            if !client_known {
                assert!(out.is_empty(), "the client's next hop is not known yet");
                resolve(&r, &["10.1.0.50"]);
                r.worker.step(&mut io, Duration::ZERO).unwrap();
                out = r.out[0].borrow().iter().map(|f| (2, f.clone())).collect();
                let held = r.worker.held.counters();
                assert_eq!((held.held, held.released), (1, 1));
            }
            assert_eq!(out.len(), 1, "the reply, sent on");
            assert_eq!(out[0].1[26..30], [10, 100, 0, 1], "from the VIP");
            sent_back.push(out[0].1.clone());
            let (svc, _) = stats_of(&mut r.st, "10.100.0.1", 53);
            assert_eq!(
                (svc.inpkts, svc.outpkts),
                (1, 1),
                "client known: {client_known}"
            );
            stats.push((svc, conns(&r)));
        }
        assert_eq!(
            sent_back[0], sent_back[1],
            "as if the client had been known"
        );
        assert_eq!(stats[0], stats[1]);
    }

    /// What the transmit step refuses at release is answered as it would have been at once:
    /// a held DF datagram too big for the real server's link (eth1, MTU 1 000) gets the
    /// client a FRAG_NEEDED, through the port it came in on, quoting it as it arrived.
    #[test]
    fn a_held_frame_too_big_is_answered_frag_needed_at_release() {
        let big = udp4_from(40030, "10.100.0.3", 53, 1200, true);
        let mut answers = Vec::new();
        for known in [false, true] {
            let mut r = rig_dr_and("10.100.0.3", "10.2.0.13", "-m");
            if known {
                resolve(&r, &["10.2.0.13"]);
            }
            let mut io = port();
            io.inject(&big);
            r.worker.step(&mut io, Duration::ZERO).unwrap();
            if !known {
                assert!(io.take_sent().is_empty() && r.out[0].borrow().is_empty());
                resolve(&r, &["10.2.0.13"]);
                r.worker.step(&mut io, Duration::ZERO).unwrap();
            }
            let mut out: Vec<_> = io.take_sent().into_iter().map(|(_, f)| f).collect();
            out.extend(r.out[0].borrow_mut().drain(..));
            assert!(
                r.out[1].borrow().is_empty(),
                "nothing toward the real server"
            );
            assert_eq!(out.len(), 1, "known: {known}");
            let icmp = &out[0];
            assert_eq!(icmp[..6], CLIENT_MAC);
            assert_eq!((icmp[23], icmp[34], icmp[35]), (1, 3, 4), "FRAG_NEEDED");
            assert_eq!(u16::from_be_bytes([icmp[40], icmp[41]]), 1000);
            assert_eq!(
                icmp[42..62],
                big[14..34],
                "quotes the datagram as it arrived"
            );
            answers.push(out[0].clone());
            let rep = r.worker.report(&mut io);
            assert_eq!(rep.drops.get(DropReason::FragNeeded), 1);
        }
        assert_eq!(answers[0], answers[1]);
    }

    /// A held frame whose next hop, found by the worker's check, is gone again when the frame
    /// is sent is dropped and counted expired, not released; it is not held again.
    #[test]
    fn a_held_frame_whose_next_hop_vanishes_before_the_send_counts_as_expired() {
        let mut r = rig_dr_and("10.100.0.3", "10.2.0.13", "-g");
        let mut io = port();
        io.inject(&udp4("10.100.0.3", 53, 64, false));
        r.worker.step(&mut io, Duration::ZERO).unwrap();
        resolve(&r, &["10.2.0.13"]);
        r.worker.plane.neigh.vanished.set(true);
        r.worker.step(&mut io, Duration::ZERO).unwrap();
        assert!(r.worker.held.is_empty(), "not held again");
        r.worker.plane.neigh.vanished.set(false);
        r.worker.step(&mut io, Duration::ZERO).unwrap();
        assert!(io.take_sent().is_empty() && r.out[1].borrow().is_empty());
        let rep = r.worker.report(&mut io);
        assert_eq!(
            (rep.held.held, rep.held.released, rep.held.expired),
            (1, 0, 1)
        );
        assert_eq!(rep.drops.get(DropReason::NoRoute), 2, "held, then lost");
    }

    /// The IPv4 fragment of the unfragmented frame `whole` holding bytes `off..end` of its
    /// IP payload.
    fn fragment_of(whole: &[u8], off: usize, end: usize, more: bool) -> Vec<u8> {
        let mut f = whole[..34].to_vec();
        f.extend_from_slice(&whole[34 + off..34 + end]);
        f[16..18].copy_from_slice(&((20 + end - off) as u16).to_be_bytes());
        let ff = (off / 8) as u16 | if more { 0x2000 } else { 0 };
        f[20..22].copy_from_slice(&ff.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = rvs_packet::checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn fragments_are_reassembled_and_sent_on_at_the_egress_mtu() {
        let mut r = rig(&DR);
        let mut io = port();
        // A 2 408-byte UDP datagram in fragments of 1 480 bytes, last one first.
        let whole = udp4("10.100.0.1", 53, 2400, false);
        io.inject(&fragment_of(&whole, 1480, 2408, false));
        io.inject(&fragment_of(&whole, 0, 1480, true));
        assert_eq!(r.worker.step(&mut io, Duration::ZERO).unwrap(), 2);
        // Toward eth1 (MTU 1 000): three fragments of at most 1 000 bytes, which put
        // together are the datagram (DR: only the MACs and the TTL change).
        let out = r.out[1].borrow().clone();
        assert_eq!(out.len(), 3);
        let mut data = Vec::new();
        for f in &out {
            assert!(f.len() <= 1000 + 14);
            assert_eq!(f[..6], RS_MAC);
            assert_eq!(f[22], 63, "TTL decremented");
            data.extend_from_slice(&f[34..]);
        }
        assert_eq!(data, whole[34..]);
        let t = r.worker.cx.frag.totals();
        assert_eq!((t.fragments, t.reassembled, t.sent), (2, 1, 3));
        assert_eq!((t.held_bytes, t.held_datagrams), (0, 0));
        // A lone fragment is held, then given up once its time is out.
        io.inject(&fragment_of(&whole, 0, 1480, true));
        r.worker.step(&mut io, Duration::ZERO).unwrap();
        assert_eq!(r.worker.cx.frag.totals().held_datagrams, 1);
        r.worker.cx.clock = Clock::at(Time(r.worker.cx.clock.now().0 + 31_000));
        assert_eq!(r.worker.step(&mut io, Duration::ZERO).unwrap(), 0);
        let t = r.worker.cx.frag.totals();
        assert_eq!((t.held_bytes, t.held_datagrams), (0, 0));
        let timeouts = t.drops.iter().find(|(d, _)| d.name() == "timeout");
        assert_eq!(timeouts.map(|&(_, n)| n), Some(1));
    }

    /// `--get-laddr -u SVC`: (local address, CONFLICTS, CONNS).
    fn get_laddr(st: &mut State, svc: &str) -> Vec<(IpAddr, u64, u64)> {
        let a: std::net::SocketAddr = svc.parse().unwrap();
        let key = rvs_core::ServiceKey::Addr {
            proto: rvs_core::Protocol::Udp,
            addr: a.ip(),
            port: a.port(),
        };
        let req =
            rvs_control::proto::Request::GetLocalAddrs(Some(crate::convert::key_from_core(&key)));
        let r = st.handle(&req, Time(0));
        match r.result {
            Ok(rvs_control::proto::Payload::LocalAddrs(v)) => v[0]
                .laddrs
                .iter()
                .map(|l| (l.addr, l.port_conflicts, l.conns))
                .collect(),
            other => panic!("--get-laddr: {other:?}"),
        }
    }

    /// Two workers of one interface serve a full-NAT service from the service's one pool: they
    /// hand out its ports in turn without colliding (one cursor), and a port whose tuple is
    /// taken is a conflict that `--get-laddr` shows, with the connections using the address.
    #[test]
    fn fullnat_workers_share_one_pool_and_conflicts_reach_get_laddr() {
        let opts = Options {
            lport_range: (5000, 5003),
            ..Options::default()
        };
        let cmds = [
            "-A -u 10.100.0.5:53 -s rr",
            "-a -u 10.100.0.5:53 -r 10.2.0.11:53 --fullnat",
            "--add-laddr -u 10.100.0.5:53 -z 10.2.0.100",
        ];
        let mut r = rig_with(&cmds, opts);
        let mut other = r.second_worker();
        let lip: IpAddr = "10.2.0.100".parse().unwrap();
        // Four new flows, alternating between the workers: four distinct ports in turn.
        let mut ports = Vec::new();
        for sport in 41000..41004u16 {
            let mut io = port();
            io.inject(&udp4_from(sport, "10.100.0.5", 53, 32, false));
            let w_steps = if sport % 2 == 0 {
                r.worker.step(&mut io, Duration::ZERO)
            } else {
                other.step(&mut io, Duration::ZERO)
            };
            assert_eq!(w_steps.unwrap(), 1);
            let sent = io.take_sent();
            assert_eq!(sent.len(), 1, "flow from {sport} forwarded");
            let f = &sent[0].1;
            assert_eq!(f[26..30], [10, 2, 0, 100], "source is the local address");
            ports.push(u16::from_be_bytes([f[34], f[35]]));
        }
        assert_eq!(ports, [5000, 5001, 5002, 5003]);
        assert_eq!(get_laddr(&mut r.st, "10.100.0.5:53"), [(lip, 0, 4)]);
        // A fifth flow: every port toward 10.2.0.11:53 is in use. Four tries, four conflicts,
        // and the frame is dropped for want of a local address.
        let mut io = port();
        io.inject(&udp4_from(41004, "10.100.0.5", 53, 32, false));
        other.step(&mut io, Duration::ZERO).unwrap();
        assert!(io.take_sent().is_empty());
        assert_eq!(get_laddr(&mut r.st, "10.100.0.5:53"), [(lip, 4, 4)]);
        assert_eq!(
            other.report(&mut io).drops.get(DropReason::NoLocalAddress),
            1
        );
        // A later table change republishes the pool: the counter and the cursor carry on.
        let resp = r.st.handle(&parse_cmd("-A -t 10.100.0.9:80"), Time(0));
        assert!(resp.result.is_ok());
        let mut io = port();
        io.inject(&udp4_from(41005, "10.100.0.5", 53, 32, false));
        r.worker.step(&mut io, Duration::ZERO).unwrap();
        assert_eq!(get_laddr(&mut r.st, "10.100.0.5:53"), [(lip, 8, 4)]);
    }

    /// The worker's cost of a flood of new UDP flows (every packet from another client
    /// address, as `bench/packet.sh`'s new-connection run), for instruction counts that the
    /// machine's load does not change: run it under callgrind, counting only the worker's
    /// `step` (see docs/benchmarks.md, "new flows"):
    /// `RVS_NEWFLOW_PACKETS=N RVS_NEWFLOW_OFFERS=0|1 valgrind --tool=callgrind
    /// --toggle-collect='*Worker*step*' TEST_BINARY --ignored --exact
    /// packet_plane::worker::tests::new_flow_flood_cost`. `RVS_NEWFLOW_OFFERS=1` is the worker
    /// of `--xdp` (the plane makes fast-path offers, the worker admits them); 0 is AF_PACKET
    /// alone. Ignored in the suite: it measures, it checks only that every packet went out.
    #[test]
    #[ignore]
    fn new_flow_flood_cost() {
        let n: u32 = std::env::var("RVS_NEWFLOW_PACKETS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000);
        let offering = std::env::var("RVS_NEWFLOW_OFFERS").is_ok_and(|v| v == "1");
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let cmds = [
            "-A -u 10.100.0.1:9 -s rr",
            "-a -u 10.100.0.1:9 -r 10.2.0.11:9 -m",
            "-a -u 10.100.0.1:9 -r 10.2.0.12:9 -m",
        ];
        let mut r = rig_offering(&cmds, Options::default(), offering.then_some(tx));
        let mut io = port().with_block_frames(256);
        let mut sent = 0usize;
        let mut k = 0u32;
        while k < n {
            for _ in 0..256.min(n - k) {
                io.inject(&udp4_new_flow(k));
                k += 1;
            }
            while r.worker.step(&mut io, Duration::ZERO).unwrap() > 0 {}
            sent += io.take_sent().len();
            // The syncer's side: take what was offered.
            while rx.try_recv().is_ok() {}
        }
        assert_eq!(sent, n as usize, "every new flow forwarded");
    }

    /// A 64-byte UDP frame (18 bytes of data, a UDP checksum) to 10.100.0.1:9 from client
    /// 10.1.(k)/16 port 10000: the `k`-th flow of a new-flow flood.
    fn udp4_new_flow(k: u32) -> Vec<u8> {
        let src = Ipv4Addr::from(u32::from(ip("10.1.0.0")) | (k & 0xffff));
        let dst = ip("10.100.0.1");
        let mut f = Vec::new();
        f.extend(MAC0);
        f.extend(CLIENT_MAC);
        f.extend([0x08, 0x00]);
        let mut h = vec![0x45, 0, 0, 46, 0, 1, 0, 0, 64, 17, 0, 0];
        h.extend(src.octets());
        h.extend(dst.octets());
        let c = rvs_packet::checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend(h);
        let mut u = vec![0x27, 0x10, 0, 9, 0, 26, 0, 0];
        u.extend([0x41; 18]);
        let acc = rvs_packet::checksum::pseudo_v4(src, dst, 17, 26);
        let c = !rvs_packet::checksum::fold(rvs_packet::checksum::sum(acc, &u));
        u[6..8].copy_from_slice(&c.to_be_bytes());
        f.extend(u);
        f
    }

    #[test]
    fn frames_for_other_hosts_are_ignored() {
        assert!(!addressed_to_us(libc::PACKET_OTHERHOST));
        for t in [
            libc::PACKET_HOST,
            libc::PACKET_BROADCAST,
            libc::PACKET_MULTICAST,
        ] {
            assert!(addressed_to_us(t), "pkt_type {t}");
        }
    }
}
