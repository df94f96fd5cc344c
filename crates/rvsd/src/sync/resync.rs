//! Bulk resync (`docs/internals/sync.md#bulk-resync`), both ends.
//!
//! - [`ask`]: a backup daemon that starts asks the master for its whole table (a request
//!   multicast to the resync port), applies the unicast answer like the live stream, and ends
//!   when the master's end marker says every record arrived (else asks again, at most
//!   [`ATTEMPTS`] times). Either way it releases the [`ResyncGate`].
//! - [`Bulk`]: the master's answer to one request, paced by the master thread so the live
//!   stream always goes first.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_control::model::DaemonConfig;
use rvs_core::conn::ConnId;
use rvs_core::sync::SyncConn;
use rvs_sync::resync::{resync_port, Control};
use rvs_sync::{Encoder, Version};

use super::gate::ResyncGate;
use super::{Counters, Shards};
use crate::clock::Clock;
use crate::shard::{self, ShardRef};

/// Requests per resync before the backup gives up (no answer, or records lost on the way).
pub const ATTEMPTS: u32 = 3;
/// How long a backup waits for the first answer to a request.
const ANSWER_WAIT: Duration = Duration::from_millis(500);
/// How long a running answer may pause before the backup asks again.
const STALL: Duration = Duration::from_secs(2);
/// How long after the start a request that cannot leave is tried again. A director whose
/// link just came up has no usable source address for a while: an IPv6 link-local address
/// stays tentative through duplicate address detection (1–2 s), and sending to an IPv6 group
/// fails with EADDRNOTAVAIL meanwhile. Such a request asked nobody, so it spends no attempt.
const SEND_WAIT: Duration = Duration::from_secs(5);
/// Pause between two tries of a request that could not leave.
const SEND_RETRY: Duration = Duration::from_millis(100);
/// Entries resolved per shard-lock hold on the master.
const CHUNK: usize = 256;

/// Counters of bulk resync, both sides.
#[derive(Default)]
pub struct ResyncCounters {
    /// Requests this director sent.
    pub requests: AtomicU64,
    /// Resyncs that ended, by outcome: every record arrived.
    pub complete: AtomicU64,
    /// Resyncs that ended with part of the table (records lost, master gone mid-way).
    pub partial: AtomicU64,
    /// Resyncs no master answered.
    pub unanswered: AtomicU64,
    /// Records received by the last resync.
    pub last_records: AtomicU64,
    /// Duration of the last resync in milliseconds (request to end).
    pub last_duration_ms: AtomicU64,
    /// Requests this director answered as master.
    pub served: AtomicU64,
    /// Records sent in those answers.
    pub served_records: AtomicU64,
}

/// How a resync ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Complete,
    Partial,
    Unanswered,
    Stopped,
}

/// The backup's side: ask, receive, apply; runs on its own thread until the resync ended or
/// `stop` is set, then releases `gate`.
#[allow(clippy::too_many_arguments)]
pub(super) fn ask(
    sock: UdpSocket,
    cfg: DaemonConfig,
    shards: Shards,
    clock: Clock,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    gate: Arc<ResyncGate>,
) {
    let started = Instant::now();
    let group = cfg.mcast_group.unwrap_or(rvs_sync::wire::DEFAULT_GROUP);
    let to = SocketAddr::new(group, resync_port(cfg.mcast_port));
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; 65_536];
    let mut recs: Vec<SyncConn> = Vec::new();
    let c = &counters.resync;
    let mut outcome = Outcome::Unanswered;
    let mut got = 0u64;
    let mut master: Option<SocketAddr> = None;
    // Distinct per request, so a late end marker of an earlier one is not taken for this one.
    let seed = (clock.now().0 as u32) ^ std::process::id().rotate_left(16);
    'attempts: for attempt in 0..ATTEMPTS {
        let nonce = seed.wrapping_add(attempt);
        let req = Control::Request {
            syncid: cfg.syncid,
            nonce,
        }
        .encode();
        // Bounded: SEND_WAIT after the start, or a stop.
        loop {
            match sock.send_to(&req, to) {
                Ok(_) => {
                    c.requests.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(e) if started.elapsed() < SEND_WAIT && !stop.load(Ordering::Relaxed) => {
                    tracing::debug!("sync resync request not sent yet: {e}");
                    std::thread::sleep(SEND_RETRY);
                }
                Err(e) => {
                    tracing::warn!("sync resync request: {e}");
                    break;
                }
            }
        }
        got = 0;
        let mut answered = false;
        let mut last = Instant::now();
        // Bounded: every wait ends after ANSWER_WAIT without an answer or STALL without data.
        loop {
            if stop.load(Ordering::Relaxed) {
                outcome = Outcome::Stopped;
                break 'attempts;
            }
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    let wait = if answered { STALL } else { ANSWER_WAIT };
                    if last.elapsed() >= wait {
                        if answered {
                            outcome = Outcome::Partial;
                        }
                        continue 'attempts;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::debug!("sync resync recv: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            // One master answers one resync; anything else on this port is ignored.
            if master.is_some_and(|m| m != from) {
                continue;
            }
            let dgram = &buf[..n];
            match Control::parse(dgram) {
                Some(Control::End {
                    nonce: nn, records, ..
                }) if nn == nonce => {
                    master = Some(from);
                    if got >= u64::from(records) {
                        outcome = Outcome::Complete;
                        break 'attempts;
                    }
                    tracing::warn!(
                        "sync resync from {from}: {got} of {records} records arrived (attempt {})",
                        attempt + 1
                    );
                    outcome = Outcome::Partial;
                    continue 'attempts;
                }
                Some(_) => {}
                None => {
                    master = Some(from);
                    answered = true;
                    last = Instant::now();
                    crate::lock::lock(&counters.rx).decode(dgram, cfg.syncid, |r| recs.push(r));
                    got += recs.len() as u64;
                    super::backup::apply(&recs, false, &shards, &clock, &counters);
                    recs.clear();
                }
            }
        }
    }
    let ms = started.elapsed().as_millis() as u64;
    c.last_records.store(got, Ordering::Relaxed);
    c.last_duration_ms.store(ms, Ordering::Relaxed);
    let from = master.map(|m| m.to_string()).unwrap_or_default();
    match outcome {
        Outcome::Complete => {
            c.complete.fetch_add(1, Ordering::Relaxed);
            tracing::info!("sync resync from {from} complete: {got} records in {ms} ms");
        }
        Outcome::Partial => {
            c.partial.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("sync resync from {from} incomplete: {got} records in {ms} ms");
        }
        Outcome::Unanswered => {
            c.unanswered.fetch_add(1, Ordering::Relaxed);
            tracing::info!("sync resync: no master answered in {ms} ms");
        }
        Outcome::Stopped => {}
    }
    gate.release();
}

/// The master's answer to one request: the table in [`CHUNK`]-entry batches, encoded as
/// version-1 messages, then the end marker; [`Bulk::step`] sends at most a given number of
/// datagrams per call.
pub(super) struct Bulk {
    to: SocketAddr,
    nonce: u32,
    syncid: u8,
    enc: Encoder,
    /// Entries not resolved yet, per shard.
    pending: VecDeque<(ShardRef, Vec<ConnId>)>,
    msgs: VecDeque<Vec<u8>>,
    records: u32,
    started: Instant,
}

impl Bulk {
    /// An answer to `to` covering every entry the shards hold now (entries created later reach
    /// the asker through the live stream, which it receives meanwhile).
    pub(super) fn new(to: SocketAddr, nonce: u32, cfg: &DaemonConfig, shards: &Shards) -> Bulk {
        let pending = shards
            .all()
            .into_iter()
            .map(|s| {
                let ids = shard::lock(&s).director.resync_ids();
                (s, ids)
            })
            .collect();
        Bulk {
            to,
            nonce,
            syncid: cfg.syncid,
            enc: Encoder::new(Version::V1, cfg.syncid, u32::from(cfg.sync_maxlen)),
            pending,
            msgs: VecDeque::new(),
            records: 0,
            started: Instant::now(),
        }
    }

    /// Who asked.
    pub(super) fn to(&self) -> SocketAddr {
        self.to
    }

    /// Send at most `budget` datagrams; true once the end marker went out.
    pub(super) fn step(&mut self, sock: &UdpSocket, budget: usize, counters: &Counters) -> bool {
        let mut sent = 0;
        while sent < budget {
            if let Some(m) = self.msgs.pop_front() {
                send(sock, &m, self.to, counters);
                sent += 1;
                continue;
            }
            if self.refill() {
                continue;
            }
            if let Some(m) = self.enc.finish() {
                self.msgs.push_back(m);
                continue;
            }
            let end = Control::End {
                syncid: self.syncid,
                nonce: self.nonce,
                records: self.records,
            }
            .encode();
            send(sock, &end, self.to, counters);
            let c = &counters.resync;
            c.served.fetch_add(1, Ordering::Relaxed);
            c.served_records
                .fetch_add(u64::from(self.records), Ordering::Relaxed);
            tracing::info!(
                "sync resync to {}: {} records in {} ms",
                self.to,
                self.records,
                self.started.elapsed().as_millis()
            );
            return true;
        }
        false
    }

    /// Resolve the next batch of entries into messages; false when none is left.
    fn refill(&mut self) -> bool {
        let Some((s, mut ids)) = self.pending.pop_front() else {
            return false;
        };
        let rest = ids.split_off(ids.len().saturating_sub(CHUNK));
        let recs: Vec<SyncConn> = {
            let g = shard::lock(&s);
            rest.iter()
                .filter_map(|id| g.director.resync_record(*id))
                .collect()
        };
        if !ids.is_empty() {
            self.pending.push_front((s, ids));
        }
        for r in &recs {
            match self.enc.push(r) {
                Ok(done) => {
                    self.records += 1;
                    if let Some(m) = done {
                        self.msgs.push_back(m);
                    }
                }
                Err(e) => tracing::debug!("sync resync: entry not sent: {e}"),
            }
        }
        true
    }
}

fn send(sock: &UdpSocket, m: &[u8], to: SocketAddr, counters: &Counters) {
    match sock.send_to(m, to) {
        Ok(n) => {
            counters.tx_datagrams.fetch_add(1, Ordering::Relaxed);
            counters.tx_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        Err(e) => {
            counters.tx_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("sync resync send: {e}");
        }
    }
}

/// A request read from the master's listener, if `dgram` is one for `syncid`.
pub(super) fn request_of(dgram: &[u8], syncid: u8) -> Option<u32> {
    match Control::parse(dgram)? {
        c @ Control::Request { nonce, .. } if c.matches(syncid) => Some(nonce),
        _ => None,
    }
}

/// Whether `a` is an address a resync answer may go to (not multicast, not unspecified).
pub(super) fn answerable(a: &SocketAddr) -> bool {
    let ip: IpAddr = a.ip();
    !ip.is_multicast() && !ip.is_unspecified()
}
