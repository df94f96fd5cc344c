//! The connection-synchronisation engine (`docs/internals/sync.md`): a master daemon that
//! multicasts the connections the packet path announces, and a backup daemon that installs the
//! connections it receives, wire-compatible with the kernel's IPVS sync daemon.
//!
//! Each daemon is a thread of its own with one UDP socket. The master collects announcements
//! from every shard's [`rvs_core::sync::SyncTap`] (taking each shard's lock only to move the
//! queued records out) and encodes them with [`rvs_sync::Outbox`]; the backup decodes every
//! datagram ([`rvs_sync::RxStats`]) and applies each record to the shard that serves its
//! service ([`rvs_core::Director::apply_synced`]). Started and stopped by `rvsadm
//! --start-daemon/--stop-daemon` and by keepalived's `lvs_sync_daemon` following VRRP.
//!
//! Beyond the kernel: a backup daemon that starts asks the master for its whole table
//! ([`resync`]), and while that runs a director that has just started holds VRRP preemption
//! ([`gate`]), so a rebooted MASTER never takes over with an empty table.

mod backup;
pub mod follow;
pub mod gate;
pub mod lag;
mod master;
pub mod metrics;
pub mod resync;
pub mod socket;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rvs_control::model::{DaemonConfig, SyncRole};
use rvs_control::proto::ErrorKind;
use rvs_core::sync::{ApplySkip, SyncParams};
use rvs_core::ServiceKey;
use rvs_sync::wire::{effective_maxlen, Role, DEFAULT_GROUP, DEFAULT_PORT, DEFAULT_TTL};
use rvs_sync::{RxStats, TxStats};

use crate::clock::Clock;
use crate::shard::{self, Routes, ShardRef};

/// Where the daemons find the shards: the published routes (every service's shard) and the
/// packet plane's shard.
#[derive(Clone)]
pub struct Shards {
    /// The proxy's view of services and shards, kept current by the control plane.
    pub routes: Arc<Routes>,
    /// The packet plane's shard, when it runs.
    pub packet: Option<ShardRef>,
}

impl Shards {
    /// Every live shard once.
    pub fn all(&self) -> Vec<ShardRef> {
        let mut v: Vec<ShardRef> = self.packet.iter().cloned().collect();
        self.routes.with(|m| {
            for s in m.by_id.values() {
                if !v.iter().any(|x| Arc::ptr_eq(x, s)) {
                    v.push(s.clone());
                }
            }
        });
        v
    }

    /// The shard of the service a record belongs to: by fwmark, or by protocol, address and
    /// port (then the persistent port-0 catch-all); else the packet plane's shard, where an
    /// entry without a service is kept unbound as the kernel keeps it.
    pub fn for_record(&self, c: &rvs_core::sync::SyncConn) -> Option<ShardRef> {
        let fam = rvs_core::Family::of(&c.caddr);
        let found = self.routes.with(|m| {
            if c.fwmark != 0 {
                let k = ServiceKey::Fwmark {
                    family: fam,
                    mark: c.fwmark,
                };
                if let Some(s) = m.by_service.get(&k) {
                    return Some(s.clone());
                }
            }
            let proto = rvs_core::Protocol::from_number(c.protocol)?;
            for port in [c.vport, 0] {
                let k = ServiceKey::Addr {
                    proto,
                    addr: c.vaddr,
                    port,
                };
                if let Some(s) = m.by_service.get(&k) {
                    return Some(s.clone());
                }
            }
            None
        });
        found.or_else(|| self.packet.clone())
    }
}

/// What the daemons counted (rendered as metrics).
#[derive(Default)]
pub struct Counters {
    /// Send side.
    pub tx: Mutex<TxStats>,
    /// Datagrams sent, bytes sent, send errors.
    pub tx_datagrams: std::sync::atomic::AtomicU64,
    /// Bytes sent.
    pub tx_bytes: std::sync::atomic::AtomicU64,
    /// `send` failures.
    pub tx_errors: std::sync::atomic::AtomicU64,
    /// Receive side (decoding).
    pub rx: Mutex<RxStats>,
    /// Records applied: created, updated.
    pub rx_created: std::sync::atomic::AtomicU64,
    /// Records that updated an existing entry.
    pub rx_updated: std::sync::atomic::AtomicU64,
    /// Records not applied, indexed like [`ApplySkip::ALL`].
    pub rx_skipped: Mutex<[u64; ApplySkip::ALL.len()]>,
    /// Records for which no shard exists (no service and no packet plane).
    pub rx_no_shard: std::sync::atomic::AtomicU64,
    /// The master's sync lag.
    pub lag: lag::Lag,
    /// Bulk resync, both sides.
    pub resync: resync::ResyncCounters,
}

/// Resync pacing on the master: datagrams per second an answer may use (the live stream is
/// never held back for it). At ~40 records per 1472-byte datagram the default moves about
/// 80 000 connections per second, ~3 MB/s.
pub const DEFAULT_RESYNC_RATE: u32 = 2000;

struct Running {
    cfg: DaemonConfig,
    stop: Arc<AtomicBool>,
    /// The daemon's thread and, for a backup, its resync thread.
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The running sync daemons of this director (at most one master and one backup).
pub struct SyncDaemons {
    master: Option<Running>,
    backup: Option<Running>,
    /// The sync sysctls (kernel defaults until set).
    pub params: SyncParams,
    /// Counters of both daemons.
    pub counters: Arc<Counters>,
    /// Held while this director's first resync runs (read by the VRRP driver).
    pub gate: Arc<gate::ResyncGate>,
    /// Resync datagrams per second a master sends (`rvsd --sync-resync-rate`).
    pub resync_rate: u32,
}

impl Default for SyncDaemons {
    fn default() -> SyncDaemons {
        SyncDaemons {
            master: None,
            backup: None,
            params: SyncParams::default(),
            counters: Arc::default(),
            gate: Arc::default(),
            resync_rate: DEFAULT_RESYNC_RATE,
        }
    }
}

/// A start/stop failure: errno class and detail.
pub type Failure = (ErrorKind, String);

impl SyncDaemons {
    /// The running daemons' settings as `-L --daemon` lists them (master first).
    pub fn list(&self) -> Vec<DaemonConfig> {
        [&self.master, &self.backup]
            .into_iter()
            .flatten()
            .map(|r| r.cfg.clone())
            .collect()
    }

    /// Whether any daemon runs.
    pub fn any_runs(&self) -> bool {
        self.master.is_some() || self.backup.is_some()
    }

    /// Whether `role` runs.
    pub fn runs(&self, role: SyncRole) -> bool {
        match role {
            SyncRole::Master => self.master.is_some(),
            SyncRole::Backup => self.backup.is_some(),
        }
    }

    /// `--start-daemon`: EEXIST if the role runs, ENODEV for an unknown interface, EINVAL for a
    /// group that is not multicast; defaults filled in as the kernel reports them.
    pub fn start(
        &mut self,
        req: &DaemonConfig,
        shards: Shards,
        clock: Clock,
    ) -> Result<(), Failure> {
        if self.runs(req.role) {
            return Err((ErrorKind::Eexist, "Daemon has already run".into()));
        }
        if shards
            .all()
            .iter()
            .any(|s| shard::lock(s).director.has_mixed_family_dests())
        {
            return Err((
                ErrorKind::Einval,
                "a service has real servers of the other address family, which the sync \
                 protocol cannot carry"
                    .into(),
            ));
        }
        let ifc = socket::Interface::lookup(&req.mcast_ifn)
            .ok_or_else(|| (ErrorKind::Enodev, format!("no interface {}", req.mcast_ifn)))?;
        let group = req.mcast_group.unwrap_or(DEFAULT_GROUP);
        if !group.is_multicast() {
            return Err((
                ErrorKind::Einval,
                format!("{group} is not a multicast group"),
            ));
        }
        let role = match req.role {
            SyncRole::Master => Role::Master,
            SyncRole::Backup => Role::Backup,
        };
        let maxlen = effective_maxlen(role, u32::from(req.sync_maxlen), ifc.mtu, group.is_ipv6());
        let cfg = DaemonConfig {
            role: req.role,
            mcast_ifn: req.mcast_ifn.clone(),
            syncid: req.syncid,
            sync_maxlen: maxlen as u16,
            mcast_group: Some(group),
            mcast_port: if req.mcast_port == 0 {
                DEFAULT_PORT
            } else {
                req.mcast_port
            },
            mcast_ttl: if req.mcast_ttl == 0 {
                DEFAULT_TTL
            } else {
                req.mcast_ttl
            },
        };
        let stop = Arc::new(AtomicBool::new(false));
        let params = self.params;
        let counters = self.counters.clone();
        let sock_err = |e: std::io::Error| (ErrorKind::Einval, format!("sync socket: {e}"));
        let thread_err = |e: std::io::Error| (ErrorKind::Enomem, format!("sync thread: {e}"));
        let rport = rvs_sync::resync::resync_port(cfg.mcast_port);
        let mut threads = Vec::new();
        match req.role {
            SyncRole::Master => {
                // `sync_ports` sockets, on the daemon's port and the next ones.
                let stream = (0..params.ports.max(1))
                    .map(|i| {
                        let port = cfg.mcast_port.wrapping_add(i as u16);
                        socket::master(&ifc, group, port, cfg.mcast_ttl, params.sock_size)
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sock_err)?;
                // Without them the master still streams; it only cannot answer resyncs.
                let listener = socket::resync_listener(&ifc, group, rport)
                    .map_err(|e| tracing::warn!("sync resync listener: {e}"))
                    .ok();
                let answer = socket::resync_asker(&ifc, group, cfg.mcast_ttl)
                    .map_err(|e| tracing::warn!("sync resync socket: {e}"))
                    .ok();
                let socks = master::MasterSockets {
                    stream,
                    listener,
                    answer,
                };
                let (st, c, rate) = (stop.clone(), cfg.clone(), self.resync_rate);
                threads.push(
                    std::thread::Builder::new()
                        .name("rvs-sync-master".into())
                        .spawn(move || {
                            master::run(socks, c, params, rate, shards, clock, counters, st)
                        })
                        .map_err(thread_err)?,
                );
            }
            SyncRole::Backup => {
                // One receiving thread per `sync_ports` socket, as the kernel runs them.
                let socks = (0..params.ports.max(1))
                    .map(|i| {
                        let port = cfg.mcast_port.wrapping_add(i as u16);
                        socket::backup(&ifc, group, port, params.sock_size)
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sock_err)?;
                // The resync runs beside the live stream, which the daemon thread applies.
                let gate = self.gate.clone();
                match socket::resync_asker(&ifc, group, cfg.mcast_ttl) {
                    Ok(rs) => {
                        let (st, c, sh, co) =
                            (stop.clone(), cfg.clone(), shards.clone(), counters.clone());
                        threads.push(
                            std::thread::Builder::new()
                                .name("rvs-sync-resync".into())
                                .spawn(move || resync::ask(rs, c, sh, clock, co, st, gate))
                                .map_err(thread_err)?,
                        );
                    }
                    Err(e) => {
                        tracing::warn!("sync resync socket: {e}; no resync");
                        gate.release();
                    }
                }
                for sock in socks {
                    let (st, c, sh, co) =
                        (stop.clone(), cfg.clone(), shards.clone(), counters.clone());
                    let t = std::thread::Builder::new()
                        .name("rvs-sync-backup".into())
                        .spawn(move || backup::run(sock, c, sh, clock, co, st));
                    match t {
                        Ok(t) => threads.push(t),
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            for t in threads {
                                let _ = t.join();
                            }
                            return Err(thread_err(e));
                        }
                    }
                }
            }
        }
        tracing::info!(
            "sync daemon started: {} mcast={} syncid={} maxlen={} group={} port={} ttl={}",
            role_name(cfg.role),
            cfg.mcast_ifn,
            cfg.syncid,
            cfg.sync_maxlen,
            group_text(&group),
            cfg.mcast_port,
            cfg.mcast_ttl
        );
        let r = Running { cfg, stop, threads };
        match req.role {
            SyncRole::Master => self.master = Some(r),
            SyncRole::Backup => self.backup = Some(r),
        }
        Ok(())
    }

    /// `--stop-daemon`: ESRCH if the role does not run. Waits for the thread (it checks its
    /// stop flag at least every 200 ms).
    pub fn stop(&mut self, role: SyncRole) -> Result<(), Failure> {
        let slot = match role {
            SyncRole::Master => &mut self.master,
            SyncRole::Backup => &mut self.backup,
        };
        let Some(mut r) = slot.take() else {
            return Err((ErrorKind::Esrch, "No daemon is running".into()));
        };
        r.halt();
        tracing::info!("sync daemon stopped: {}", role_name(role));
        Ok(())
    }

    /// Stop whatever runs (daemon shutdown).
    pub fn stop_all(&mut self) {
        for role in [SyncRole::Master, SyncRole::Backup] {
            let _ = self.stop(role);
        }
    }
}

impl Drop for SyncDaemons {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn role_name(r: SyncRole) -> &'static str {
    match r {
        SyncRole::Master => "master",
        SyncRole::Backup => "backup",
    }
}

fn group_text(g: &IpAddr) -> String {
    g.to_string()
}
