//! The packet worker: one per port (interface and fanout member). It receives a ring block,
//! processes its frames with [`rvs_packet::plane::Plane`] under the packet shard's lock
//! (taken once per block), and transmits the rewritten frames after the lock is released.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rvs_core::Time;
use rvs_packet::plane::{DropCounters, Neighbours, NextHop, Plane, PortId, Verdict};
use rvs_packet_io::{Port, Resolver, ResolverConfig, RxFrame, Sender};

use super::config::{Iface, PacketView};
use crate::clock::Clock;
use crate::learned_neighbours::{solicitation_sender, Learned};
use crate::lock::lock;
use crate::published::Published;
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
const POLL: Duration = Duration::from_millis(100);
/// Most fragments one packet is split into (a 9 KB frame at the 68-byte minimum MTU).
const MAX_FRAGMENTS: usize = 256;

/// Next hops for a worker's plane: its own rtnetlink resolver, asked without blocking.
struct Hops {
    resolver: RefCell<Resolver>,
    ifindexes: Vec<u32>,
    /// Destinations the kernel could not resolve, and when: not asked again for
    /// [`NEGATIVE_TTL`], so a flood toward an unroutable or dead address costs a hash lookup
    /// per packet, not two netlink round trips (and a probe) under the state lock.
    failed: RefCell<HashMap<IpAddr, Instant>>,
    /// Senders of ARP requests and neighbour solicitations (see [`crate::learned_neighbours`]):
    /// used when the kernel has no entry. Shared by the workers (a reply often arrives on
    /// another interface than the client's solicitation); touched only on a kernel miss or
    /// for a solicitation, never per forwarded packet.
    learned: Arc<Mutex<Learned>>,
}

/// How long a failed next-hop lookup is remembered.
const NEGATIVE_TTL: Duration = Duration::from_millis(200);
/// Most remembered failures; the memory is cleared when full (bounded, allocation-free after
/// warm-up).
const NEGATIVE_MAX: usize = 4096;

impl Hops {
    fn learned_hop(&self, dst: &IpAddr, now: Instant) -> Option<NextHop> {
        lock(&self.learned).get(dst, now)
    }
}

impl Neighbours for Hops {
    fn next_hop(&self, dst: IpAddr) -> Option<NextHop> {
        let now = Instant::now();
        if let Some(t) = self.failed.borrow().get(&dst) {
            if now.duration_since(*t) < NEGATIVE_TTL {
                return self.learned_hop(&dst, now);
            }
        }
        let nh = match self.resolver.borrow_mut().try_resolve(dst) {
            Ok(Some(nh)) => nh,
            _ => {
                let mut f = self.failed.borrow_mut();
                if f.len() >= NEGATIVE_MAX {
                    f.clear();
                }
                f.insert(dst, now);
                return self.learned_hop(&dst, now);
            }
        };
        let port = self.ifindexes.iter().position(|&i| i == nh.ifindex)?;
        Some(NextHop {
            port: port as PortId,
            mac: nh.mac,
        })
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

    fn push(&mut self, senders: &mut [Sender], port: PortId, frame: &[u8]) {
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

    fn flush(&mut self, senders: &mut [Sender]) {
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
            let n = sender.send_batch(&batch);
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
    pub clock: Clock,
    pub stop: Arc<AtomicBool>,
    pub ifaces: Arc<Vec<Iface>>,
}

/// Where a verdict's bytes go: back into the ring slot (sent by the port's batched
/// `sendmmsg` before the block is released), or into the out queue.
struct Emitter {
    ifaces: Arc<Vec<Iface>>,
    senders: Vec<Sender>,
    out: OutQueue,
    frag: Vec<u8>,
}

impl Emitter {
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
            } => {
                let frame = &buf[start..start + len];
                let Ok(p) = rvs_packet::parse(frame) else {
                    return;
                };
                let Ok(mut fr) = rvs_packet::frag::fragment_ipv4(frame, &p, mtu) else {
                    return;
                };
                for _ in 0..MAX_FRAGMENTS {
                    match fr.next_into(&mut self.frag) {
                        Ok(Some(k)) => self.out.push(&mut self.senders, port, &self.frag[..k]),
                        _ => break,
                    }
                }
            }
            // Pass: the host stack has its own copy (the guard lets it through);
            // Drop: counted by the plane, and the guard keeps it from the host.
            Verdict::Pass | Verdict::Drop(_) => {}
        }
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

pub(super) fn worker(me: usize, mut port: Port, sh: Context) -> WorkerReport {
    let mut rep = WorkerReport {
        iface: sh.ifaces[me].name.clone(),
        ..WorkerReport::default()
    };
    let resolver = match Resolver::new(ResolverConfig::default()) {
        Ok(r) => r,
        Err(e) => {
            rep.error = Some(format!("rtnetlink: {e}"));
            return rep;
        }
    };
    let mut senders = Vec::with_capacity(sh.ifaces.len());
    for i in sh.ifaces.iter() {
        match Sender::open(&i.name) {
            Ok(s) => senders.push(s),
            Err(e) => {
                rep.error = Some(format!("sender on {}: {e}", i.name));
                return rep;
            }
        }
    }
    let hops = Hops {
        resolver: RefCell::new(resolver),
        ifindexes: sh.ifaces.iter().map(|i| i.ifindex).collect(),
        failed: RefCell::new(HashMap::with_capacity(NEGATIVE_MAX)),
        learned: sh.learned.clone(),
    };
    let mut view = sh.view.load();
    let mut plane = Plane::new(view.config.clone(), hops);
    let mut buf = vec![0u8; HEADROOM + MAX_FRAME + TAIL];
    let mut em = Emitter {
        ifaces: sh.ifaces.clone(),
        senders,
        out: OutQueue::new(),
        frag: vec![0u8; OUT_FRAME],
    };
    let port_in = me as PortId;
    let mtu = sh.ifaces[me].mtu;
    while !sh.stop.load(Ordering::Relaxed) {
        // Taken at a block's first frame, released once the block is processed and before its
        // transmissions go out (`recv_batch_then`), so the sendmmsg calls run without it.
        let guard: RefCell<Option<MutexGuard<'_, Shard>>> = RefCell::new(None);
        let mut now = Time(0);
        let walk = |f: &mut RxFrame<'_>| {
            if !addressed_to_us(f.pkt_type()) {
                rep.other_host += 1;
                return;
            }
            if f.truncated() || f.data().len() > MAX_FRAME {
                rep.oversize += 1;
                return;
            }
            if let Some((ip, mac)) = solicitation_sender(f.data()) {
                // As the kernel does for a request to one of its addresses: remember the
                // sender, so the first reply toward it is not dropped for want of a neighbour.
                if sh.ifaces[me].on_link(ip) {
                    let mut l = lock(&sh.learned);
                    l.learn(ip, mac, port_in, Instant::now());
                }
            }
            let mut guard = guard.borrow_mut();
            if guard.is_none() {
                // A changed table or VRRP state: the control side published a new
                // configuration (one atomic load when nothing changed).
                if sh.view.refresh(&mut view) {
                    plane.set_config(view.config.clone());
                }
                *guard = Some(shard::lock(&sh.shard));
                now = sh.clock.now();
                rep.batches += 1;
            }
            let Some(st) = guard.as_deref_mut() else {
                return;
            };
            rep.frames += 1;
            let Shard { director, rng, .. } = st;
            if let Some(p) = super_frame(f.data(), mtu) {
                // Cut into segments that fit the link, each processed like a frame of its
                // own (checksums are recomputed in full, partial or not).
                rep.segmented += 1;
                let Ok(mut seg) = rvs_packet::gso::segment_tcp(f.data(), &p, mtu) else {
                    return;
                };
                for _ in 0..MAX_FRAGMENTS {
                    let n = match seg.next_into(&mut buf[HEADROOM..HEADROOM + OUT_FRAME]) {
                        Ok(Some(n)) => n,
                        _ => break,
                    };
                    let v = plane.process(director, &mut buf, HEADROOM, n, port_in, now, rng);
                    em.emit(v, &buf, None);
                }
                return;
            }
            let len = f.data().len();
            buf[HEADROOM..HEADROOM + len].copy_from_slice(f.data());
            if f.checksum_not_ready() {
                // CHECKSUM_PARTIAL (veth, local senders): complete the transport checksum,
                // or the incremental rewrite of §5.3 keeps it wrong and the receiver drops
                // the packet. TCP, UDP and ICMP only; others are left as they are.
                let frame = &mut buf[HEADROOM..HEADROOM + len];
                if let Ok(p) = rvs_packet::parse(frame) {
                    if rvs_packet::parse::fill_l4_checksum(frame, &p).is_ok() {
                        rep.csum_completed += 1;
                    }
                }
            }
            let v = plane.process(director, &mut buf, HEADROOM, len, port_in, now, rng);
            em.emit(v, &buf, Some(f));
        };
        let res = port.recv_batch_then(POLL, walk, || drop(guard.borrow_mut().take()));
        drop(guard);
        em.out.flush(&mut em.senders);
        if let Err(e) = res {
            rep.error = Some(format!("receive on {}: {e}", rep.iface));
            break;
        }
    }
    if let Ok(ps) = port.stats() {
        rep.ring_drops = ps.kernel_drops;
        rep.tx_errors = ps.tx_errors;
    }
    rep.out_sent = em.out.sent;
    rep.out_failed = em.out.failed;
    rep.drops = plane.drops().clone();
    rep
}

#[cfg(test)]
mod tests {
    use super::*;

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
