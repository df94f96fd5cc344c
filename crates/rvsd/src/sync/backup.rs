//! The backup daemon's thread: receive, decode, apply to the shards.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rvs_control::model::DaemonConfig;
use rvs_core::sync::{Applied, ApplySkip, SyncConn};
use rvs_sync::{parse, Version};

use super::{Counters, Shards};
use crate::clock::Clock;
use crate::shard;

/// How long a receive waits before the thread looks at its stop flag again.
const POLL: Duration = Duration::from_millis(100);

pub(super) fn run(
    sock: UdpSocket,
    cfg: DaemonConfig,
    shards: Shards,
    clock: Clock,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    if let Err(e) = sock.set_read_timeout(Some(POLL)) {
        tracing::warn!("sync backup: {e}");
    }
    // Larger than any UDP payload: a datagram is never cut, so its size field is checked
    // against what was really sent.
    let mut buf = vec![0u8; 65_536];
    let mut recs: Vec<SyncConn> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        // Every shard (also one created since) knows a backup daemon runs, for `backup_only`.
        mark_backup(&shards, true);
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::debug!("sync recv: {e}");
                std::thread::sleep(POLL);
                continue;
            }
        };
        let dgram = &buf[..n];
        let v0 = parse(dgram, cfg.syncid).is_ok_and(|m| m.version() == Version::V0);
        crate::lock::lock(&counters.rx).decode(dgram, cfg.syncid, |c| recs.push(c));
        apply(&recs, v0, &shards, &clock, &counters);
        recs.clear();
    }
    mark_backup(&shards, false);
}

fn mark_backup(shards: &Shards, on: bool) {
    for s in shards.all() {
        let mut g = shard::lock(&s);
        if g.director.sync.is_backup() != on {
            g.director.sync.set_backup(on);
        }
    }
}

/// Apply a datagram's records, taking each shard's lock once for its run of records.
pub(super) fn apply(
    recs: &[SyncConn],
    v0: bool,
    shards: &Shards,
    clock: &Clock,
    counters: &Counters,
) {
    let mut i = 0;
    while i < recs.len() {
        let Some(s) = shards.for_record(&recs[i]) else {
            counters.rx_no_shard.fetch_add(1, Ordering::Relaxed);
            i += 1;
            continue;
        };
        let mut g = shard::lock(&s);
        let now = clock.now();
        // A synced entry gives a settled shard work for the ticker.
        g.wake(now);
        // Consecutive records of the same shard share the lock hold.
        loop {
            match g.director.apply_synced(&recs[i], v0, now) {
                Ok(Applied::Created(_)) => {
                    counters.rx_created.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Applied::Updated(_)) => {
                    counters.rx_updated.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    if let Some(k) = ApplySkip::ALL.iter().position(|x| *x == e) {
                        crate::lock::lock(&counters.rx_skipped)[k] += 1;
                    }
                }
            }
            i += 1;
            if i >= recs.len()
                || !shards
                    .for_record(&recs[i])
                    .is_some_and(|n| Arc::ptr_eq(&n, &s))
            {
                break;
            }
        }
    }
}
