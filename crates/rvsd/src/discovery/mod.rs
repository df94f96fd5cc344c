//! Discovery: real servers that come and go by themselves, from Docker and from etcd.
//!
//! * [`docker`] (`rvsd --docker [SOCKET]`, keepalived.conf `rvs_docker`): labelled
//!   containers become real servers while they run and are healthy;
//! * [`etcd`] (`rvsd --etcd URL --etcd-prefix P`, keepalived.conf `rvs_etcd`): the services
//!   and real servers under a key prefix are the table, for any number of directors;
//! * [`reconcile`]: what both share — the wanted table applied as a diff through the rvsadm
//!   path, ownership of what a source created, draining of what it no longer wants;
//! * [`status`]: what the daemon's state holds of them — the services they own (rvsadm
//!   changes to those are refused) and their counters for the metrics;
//! * [`http`]: the one small HTTP/1.1 client both speak (dockerd's API on its Unix socket,
//!   etcd's JSON gateway).
//!
//! Losing a source keeps the table as it is; both reconnect by themselves and resynchronise.
//! The set-ups end to end: docs/containers.md.

pub mod docker;
pub mod etcd;
pub mod http;
pub mod reconcile;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use crate::daemon::Daemon;
pub use status::{Managed, SourceStatus};

/// Start following etcd (options checked by [`etcd::Etcd::new`]).
pub fn spawn_etcd(
    daemon: Arc<Daemon>,
    etcd: etcd::Etcd,
    drain_time: Duration,
) -> tokio::task::JoinHandle<()> {
    let status = Arc::new(SourceStatus::new("etcd"));
    daemon.lock().discovery.push(status.clone());
    tokio::spawn(etcd::run(daemon, etcd, drain_time, status))
}

/// Start following dockerd on `socket`.
pub fn spawn_docker(
    daemon: Arc<Daemon>,
    socket: std::path::PathBuf,
    drain_time: Duration,
) -> tokio::task::JoinHandle<()> {
    let status = Arc::new(SourceStatus::new("docker"));
    daemon.lock().discovery.push(status.clone());
    tokio::spawn(docker::run(daemon, socket, drain_time, status))
}
