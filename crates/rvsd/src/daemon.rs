//! The running daemon: state, clock, data planes, and the periodic work.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration as StdDuration;

use rvs_control::proto::{Request, Response};

use crate::clock::Clock;
use crate::shard::Shard;
use crate::state::{is_change, State};

/// Everything the daemon's tasks share.
pub struct Daemon {
    /// The control plane's state (held for microseconds, never across an await; the data
    /// planes do not take it per connection or packet: they lock their shard).
    pub state: Arc<Mutex<State>>,
    /// The clock.
    pub clock: Clock,
    /// The socket proxy data plane, if running (taken out at shutdown).
    pub proxy: Mutex<Option<rvs_proxy::Proxy>>,
}

impl Daemon {
    /// Lock the state (a poisoned lock is recovered: the table's invariants hold between calls).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock::lock(&self.state)
    }

    /// Apply one control request, then bring the proxy's listeners in line with the table.
    pub async fn request(self: &Arc<Self>, req: Request) -> Response {
        let (mut resp, changed, packet) = {
            let mut st = self.lock();
            let r = st.handle(&req, self.clock.now());
            let changed = is_change(&req) && r.result.is_ok();
            let packet = st
                .packet_feed()
                .map(|f| (f.applied.clone(), st.generation()));
            (r, changed, packet)
        };
        if let Some((applied, generation)) = packet {
            // Like the kernel, a change is in force when rvsadm returns (bounded wait).
            crate::packet_plane::wait_applied(&applied, generation).await;
        }
        if changed {
            let d = self.clone();
            let res = tokio::task::spawn_blocking(move || d.sync_listeners()).await;
            match res {
                Ok(Ok(())) => {}
                Ok(Err(w)) => resp.warnings.push(w),
                Err(e) => resp.warnings.push(format!("listener update failed: {e}")),
            }
        }
        resp
    }

    /// Open and close proxy listeners to match the services (blocking). Returns a one-line
    /// warning when some listener could not be opened.
    pub fn sync_listeners(&self) -> Result<(), String> {
        let want = self.lock().proxy_listeners();
        let proxy = crate::lock::lock(&self.proxy);
        let Some(p) = proxy.as_ref() else {
            return Ok(());
        };
        p.set_listeners(&want).map_err(|e| {
            let msg = format!("socket proxy: {e}");
            tracing::warn!("{msg}");
            msg
        })
    }

    /// Expiry, estimator and defences: run until the task is dropped.
    pub async fn ticker(self: Arc<Self>) {
        let mut iv = tokio::time::interval(StdDuration::from_millis(100));
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut avail = crate::memory::available_pages();
        let mut n: u64 = 0;
        loop {
            iv.tick().await;
            n += 1;
            if n.is_multiple_of(10) {
                avail = crate::memory::available_pages();
            }
            let shards = {
                let mut st = self.lock();
                st.reap_retired();
                st.shards()
            };
            for s in shards {
                let mut g = crate::shard::lock(&s);
                let now = self.clock.now();
                let Shard { director, rng, .. } = &mut *g;
                // A bounded amount of expiry per tick keeps every lock hold short; what is
                // left is done on the next tick.
                director.tick(now, avail, 20_000, rng);
            }
            if let Some(notifier) = crate::sd_notify::get() {
                // Only a ticker that got through every shard keeps systemd's watchdog quiet.
                notifier.watchdog_tick(std::time::Instant::now());
                if n.is_multiple_of(50) {
                    let doc = crate::status::snapshot(&self.lock());
                    notifier.send(&crate::sd_notify::status_line(&crate::status::summary(
                        &doc,
                    )));
                }
            }
        }
    }
}
