//! The master daemon's thread: collect announcements from the shards, encode, send; and answer
//! bulk-resync requests (`docs/internals/sync.md#bulk-resync`), paced behind the live stream.

use std::collections::VecDeque;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rvs_control::model::DaemonConfig;
use rvs_core::sync::SyncParams;
use rvs_sync::outbox::DEFAULT_FLUSH_MS;
use rvs_sync::{Datagram, MasterSink, TxStats, Version};

use super::resync::{answerable, request_of, Bulk};
use super::{Counters, Shards};
use crate::clock::Clock;
use crate::shard;

/// How often the shards' taps are emptied: the announcements wait at most this long before
/// they are encoded, and partial messages at most [`DEFAULT_FLUSH_MS`] more.
const COLLECT_EVERY: Duration = Duration::from_millis(10);
/// Resync answers in progress at once (more requests wait for a slot by being repeated).
const MAX_ANSWERS: usize = 4;

/// The sockets of a master daemon.
pub(super) struct MasterSockets {
    /// The live stream, connected to the group: one socket per `sync_ports` port; a connection
    /// always goes out on the same one ([`rvs_core::sync::SyncConn::port_index`]).
    pub stream: Vec<UdpSocket>,
    /// Bound to the group's resync port: requests (`None` when it could not be opened: the
    /// master then only streams).
    pub listener: Option<UdpSocket>,
    /// Unicast answers to requests.
    pub answer: Option<UdpSocket>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    socks: MasterSockets,
    cfg: DaemonConfig,
    params: SyncParams,
    resync_rate: u32,
    shards: Shards,
    clock: Clock,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let ports = socks.stream.len().max(1);
    // Installed in every shard: the packet path encodes announced records straight into
    // datagrams (`rvs_sync::sink`); this thread only collects and sends them.
    let sink = MasterSink::new(
        Version::from_sysctl(params.version),
        cfg.syncid,
        u32::from(cfg.sync_maxlen),
        params.qlen_max,
        ports,
        DEFAULT_FLUSH_MS,
    );
    let mut batch: Vec<Datagram> = Vec::new();
    let mut tx = TxStats::default();
    let mut answers: VecDeque<Bulk> = VecDeque::new();
    // Resync pacing: a token bucket filled at `resync_rate` datagrams per second, holding at
    // most 100 ms worth (a late round does not turn into a burst).
    let mut credit = 0f64;
    let cap = (f64::from(resync_rate) / 10.0).max(1.0);
    let mut last_round = std::time::Instant::now();
    let mut buf = [0u8; 64];
    // Sent datagrams, whose buffers go back to a sink next round.
    let mut spent: Vec<Datagram> = Vec::new();
    // The shards to visit, listed again only when the routes were republished (a service
    // added or removed): listing them walks the whole route map, which cost more than the
    // rest of a round.
    let mut listed: Option<(u64, Vec<shard::ShardRef>)> = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(COLLECT_EVERY);
        let version = shards.routes.version();
        if !matches!(&listed, Some((v, _)) if *v == version) {
            listed = Some((version, shards.all()));
        }
        let all = listed.as_ref().map_or(&[][..], |(_, l)| &l[..]);
        // Each shard's lock is taken once per round: to hand back the buffers sent last
        // round, take what is due, and read the oldest record still waiting.
        let mut waiting: Option<u64> = None;
        for s in all {
            let mut g = shard::lock(s);
            // Read under the lock: every record the packet path announced is older.
            let now = clock.now().0;
            let tap = &mut g.director.sync;
            if tap.sink_mut::<MasterSink>().is_none() {
                tap.set_sink(Box::new(sink.clone()));
            }
            let Some(m) = tap.sink_mut::<MasterSink>() else {
                continue;
            };
            for d in spent.drain(..) {
                m.recycle(d);
            }
            m.collect(now, &mut batch);
            tx.add(&m.take_stats());
            if let Some(t) = m.oldest_unsent() {
                waiting = Some(waiting.map_or(t, |w| w.min(t)));
            }
            drop(g);
            for d in batch.drain(..) {
                let d = send(&socks.stream, d, &counters);
                counters
                    .lag
                    .record(clock.now().0.saturating_sub(d.oldest_ms));
                spent.push(d);
            }
        }
        counters
            .lag
            .set_waiting(waiting.map_or(0, |t| clock.now().0.saturating_sub(t)));
        *crate::lock::lock(&counters.tx) = tx.clone();
        // Then resync: new requests (bounded per round), and one answer's share of the rate.
        if let (Some(l), Some(a)) = (&socks.listener, &socks.answer) {
            for _ in 0..16 {
                let Ok((n, from)) = l.recv_from(&mut buf) else {
                    break;
                };
                let Some(nonce) = request_of(&buf[..n], cfg.syncid) else {
                    continue;
                };
                if !answerable(&from) {
                    continue;
                }
                // A repeated request restarts that asker's answer.
                answers.retain(|b| b.to() != from);
                if answers.len() < MAX_ANSWERS {
                    tracing::info!("sync resync requested by {from}");
                    answers.push_back(Bulk::new(from, nonce, &cfg, &shards));
                }
            }
            let elapsed = last_round.elapsed().as_secs_f64();
            last_round = std::time::Instant::now();
            if let Some(b) = answers.front_mut() {
                credit = (credit + elapsed * f64::from(resync_rate)).min(cap);
                let budget = credit.floor();
                if budget >= 1.0 {
                    credit -= budget;
                    if b.step(a, budget as usize, &counters) {
                        answers.pop_front();
                    }
                }
            } else {
                credit = 0.0;
            }
        }
    }
    // Stopped: the packet path stops announcing (what it had not handed over is dropped).
    for s in shards.all() {
        shard::lock(&s).director.sync.set_master(false);
    }
}

/// Send one datagram on its port's socket and count it; the datagram comes back for its
/// buffer to be reused.
fn send(stream: &[UdpSocket], d: Datagram, counters: &Counters) -> Datagram {
    let Some(sock) = stream.get(d.port) else {
        counters.tx_errors.fetch_add(1, Ordering::Relaxed);
        return d;
    };
    match sock.send(&d.bytes) {
        Ok(n) => {
            counters.tx_datagrams.fetch_add(1, Ordering::Relaxed);
            counters.tx_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        Err(e) => {
            counters.tx_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("sync send: {e}");
        }
    }
    d
}
