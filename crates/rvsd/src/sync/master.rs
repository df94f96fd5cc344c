//! The master daemon's thread: collect announcements from the shards, encode, send.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rvs_control::model::DaemonConfig;
use rvs_core::sync::{SyncConn, SyncParams};
use rvs_sync::outbox::DEFAULT_FLUSH_MS;
use rvs_sync::{Outbox, Version};

use super::{Counters, Shards};
use crate::clock::Clock;
use crate::shard;

/// How often the shards' taps are emptied: the announcements wait at most this long before
/// they are encoded, and partial messages at most [`DEFAULT_FLUSH_MS`] more.
const COLLECT_EVERY: Duration = Duration::from_millis(10);

pub(super) fn run(
    sock: UdpSocket,
    cfg: DaemonConfig,
    params: SyncParams,
    shards: Shards,
    clock: Clock,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let mut out = Outbox::new(
        Version::from_sysctl(params.version),
        cfg.syncid,
        u32::from(cfg.sync_maxlen),
        params.qlen_max,
        DEFAULT_FLUSH_MS,
    );
    let mut batch: Vec<SyncConn> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(COLLECT_EVERY);
        // The shards carry the current sysctls (the control plane applies `sync_*` to each);
        // a changed `sync_version` closes the message under construction.
        let mut version = None;
        for s in shards.all() {
            let mut g = shard::lock(&s);
            let tap = &mut g.director.sync;
            if !tap.is_master() {
                tap.set_master(true);
            }
            version.get_or_insert(tap.params.version);
            tap.drain_into(&mut batch);
        }
        if let Some(v) = version {
            out.set_version(Version::from_sysctl(v));
        }
        let now = clock.now().0;
        for c in batch.drain(..) {
            // Refusals (IPv6 under version 0, …) are counted by the outbox.
            let _ = out.push(&c, now);
        }
        while let Some(m) = out.poll(now) {
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
        }
        *counters.tx.lock().unwrap_or_else(|p| p.into_inner()) = out.stats.clone();
    }
    // Stopped: the packet path stops announcing.
    for s in shards.all() {
        shard::lock(&s).director.sync.set_master(false);
    }
}
