//! keepalived's `lvs_sync_daemon`: which sync daemons run follows the VRRP instance named in
//! it (MASTER → the master daemon, any other state → the backup daemon, as keepalived switches
//! the kernel's daemons); without an instance both run for the daemon's lifetime.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvs_config::model::LvsSyncDaemon;
use rvs_control::model::{DaemonConfig, SyncRole};

use crate::daemon::Daemon;
use crate::vrrp::StatusBoard;

/// How often the VRRP status is looked at. A MASTER transition starts the master daemon within
/// this delay (its first announcements are the connections' next packets).
const POLL: Duration = Duration::from_millis(50);

/// The daemon settings `spec` asks for in `role`; the sync id defaults to the instance's VRID
/// (`vrid`), else 0, as in keepalived.
pub fn daemon_config(spec: &LvsSyncDaemon, vrid: Option<u8>, role: SyncRole) -> DaemonConfig {
    DaemonConfig {
        role,
        mcast_ifn: spec.interface.clone(),
        syncid: spec.sync_id.or(vrid).unwrap_or(0),
        sync_maxlen: spec.maxlen.unwrap_or(0),
        mcast_group: Some(spec.group),
        mcast_port: spec.port,
        mcast_ttl: spec.ttl.unwrap_or(0),
    }
}

/// Which roles should run: with an instance, master iff it is MASTER (backup otherwise, also
/// before VRRP has started); without one, both.
fn wanted(spec: &LvsSyncDaemon, board: Option<&StatusBoard>) -> [bool; 2] {
    let Some(inst) = &spec.instance else {
        return [true, true];
    };
    let master = board.is_some_and(|b| {
        b.snapshot()
            .iter()
            .any(|i| &i.name == inst && i.state == "MASTER")
    });
    [master, !master]
}

/// What the follower follows: keepalived's `lvs_sync_daemon` and the VRID of its instance, or
/// nothing (no `lvs_sync_daemon`: the daemons it started are stopped).
pub type Target = Option<(LvsSyncDaemon, Option<u8>)>;

/// The follower thread's handle: a reload gives it the new [`Target`].
pub struct Follower {
    target: Arc<Mutex<Target>>,
}

impl Follower {
    /// The configuration was reloaded: follow `t` from now on. A changed `lvs_sync_daemon`
    /// (interface, instance, id, maxlen, port, ttl, group) stops the daemons running for the
    /// old one and starts them again as the new one says, as keepalived restarts the kernel's
    /// daemons on a reload; a removed one stops them.
    pub fn set(&self, t: Target) {
        *crate::lock::lock(&self.target) = t;
    }
}

/// Start the follower thread for `target` (from `global_defs`), reading VRRP state from
/// `board`.
pub fn spawn(daemon: Arc<Daemon>, target: Target, board: Option<Arc<StatusBoard>>) -> Follower {
    let shared = Arc::new(Mutex::new(target));
    let follower = Follower {
        target: shared.clone(),
    };
    let run = move || {
        let mut last_err: Option<String> = None;
        let mut current: Target = None;
        let roles = [SyncRole::Master, SyncRole::Backup];
        loop {
            let t = crate::lock::lock(&shared).clone();
            if t != current {
                // Whatever runs was started for the old setting: stop it, start afresh.
                if current.is_some() {
                    tracing::info!("lvs_sync_daemon changed: restarting the sync daemons");
                    let mut st = daemon.lock();
                    for role in roles {
                        if st.sync.runs(role) {
                            let _ = st.sync.stop(role);
                        }
                    }
                }
                current = t;
                last_err = None;
            }
            let Some((spec, vrid)) = &current else {
                std::thread::sleep(POLL);
                continue;
            };
            let want = wanted(spec, board.as_deref());
            // Stop first, so that a MASTER → BACKUP switch never runs both.
            for (i, role) in roles.iter().enumerate() {
                let mut st = daemon.lock();
                if !want[i] && st.sync.runs(*role) {
                    let _ = st.sync.stop(*role);
                }
            }
            for (i, role) in roles.iter().enumerate() {
                let mut st = daemon.lock();
                if want[i] && !st.sync.runs(*role) {
                    let cfg = daemon_config(spec, *vrid, *role);
                    let shards = st.sync_shards();
                    match st.sync.start(&cfg, shards, daemon.clock) {
                        Ok(()) => last_err = None,
                        Err((_, e)) => {
                            // Said once per distinct failure; retried every poll.
                            if last_err.as_deref() != Some(e.as_str()) {
                                tracing::warn!("lvs_sync_daemon {}: {e}", spec.interface);
                                last_err = Some(e);
                            }
                        }
                    }
                }
            }
            std::thread::sleep(POLL);
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("rvs-sync-follow".into())
        .spawn(run)
    {
        tracing::warn!("lvs_sync_daemon: cannot start: {e}");
    }
    follower
}
