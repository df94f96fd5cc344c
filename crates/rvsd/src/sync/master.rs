//! The master daemon's thread: collect announcements from the shards, encode, send; and answer
//! bulk-resync requests (`docs/internals/sync.md#bulk-resync`), paced behind the live stream.

use std::collections::VecDeque;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rvs_control::model::DaemonConfig;
use rvs_core::sync::{SyncConn, SyncParams};
use rvs_sync::outbox::DEFAULT_FLUSH_MS;
use rvs_sync::{Outbox, Version};

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
    /// always goes out on the same one ([`SyncConn::port_index`]).
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
    let mut outs: Vec<Outbox> = (0..ports)
        .map(|_| {
            Outbox::new(
                Version::from_sysctl(params.version),
                cfg.syncid,
                u32::from(cfg.sync_maxlen),
                params.qlen_max,
                DEFAULT_FLUSH_MS,
            )
        })
        .collect();
    let mut batch: Vec<SyncConn> = Vec::new();
    let mut answers: VecDeque<Bulk> = VecDeque::new();
    // Resync pacing: a token bucket filled at `resync_rate` datagrams per second, holding at
    // most 100 ms worth (a late round does not turn into a burst).
    let mut credit = 0f64;
    let cap = (f64::from(resync_rate) / 10.0).max(1.0);
    let mut last_round = std::time::Instant::now();
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(COLLECT_EVERY);
        // The shards carry the current sysctls (the control plane applies `sync_*` to each);
        // a changed `sync_version` closes the message under construction.
        let mut version = None;
        let mut oldest: Option<u64> = None;
        for s in shards.all() {
            let mut g = shard::lock(&s);
            let tap = &mut g.director.sync;
            if !tap.is_master() {
                tap.set_master(true);
            }
            version.get_or_insert(tap.params.version);
            if let Some(t) = tap.drain_into(&mut batch) {
                oldest = Some(oldest.map_or(t.0, |o| o.min(t.0)));
            }
        }
        if let Some(v) = version {
            for out in &mut outs {
                out.set_version(Version::from_sysctl(v));
            }
        }
        let now = clock.now().0;
        let queued = oldest.unwrap_or(now);
        for c in batch.drain(..) {
            let i = c.port_index(ports as u32);
            // Refusals (IPv6 under version 0, …) are counted by the outbox.
            let _ = outs[i].push_queued(&c, now, queued);
        }
        // The live stream first.
        let mut waiting: Option<u64> = None;
        let mut tx = rvs_sync::TxStats::default();
        for (out, sock) in outs.iter_mut().zip(&socks.stream) {
            while let Some((m, oldest)) = out.poll_timed(now) {
                match sock.send(&m) {
                    Ok(n) => {
                        counters.tx_datagrams.fetch_add(1, Ordering::Relaxed);
                        counters.tx_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        counters.tx_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("sync send: {e}");
                    }
                }
                counters.lag.record(now.saturating_sub(oldest));
            }
            if let Some(t) = out.oldest_unsent() {
                waiting = Some(waiting.map_or(t, |w| w.min(t)));
            }
            tx.records += out.stats.records;
            tx.refused += out.stats.refused;
            tx.messages += out.stats.messages;
            tx.dropped_queue_full += out.stats.dropped_queue_full;
        }
        counters
            .lag
            .set_waiting(waiting.map_or(0, |t| clock.now().0.saturating_sub(t)));
        *crate::lock::lock(&counters.tx) = tx;
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
    // Stopped: the packet path stops announcing.
    for s in shards.all() {
        shard::lock(&s).director.sync.set_master(false);
    }
}
