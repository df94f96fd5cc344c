//! The XDP fast path of the packet plane (`--xdp`, docs/internals/packet-plane.md#the-xdp-fast-path).
//!
//! The program (`rvs_bpf::xdp`) is attached to every interface of the plane. The workers keep
//! running the userspace plane on AF_PACKET for every packet the program passes; with the fast
//! path on, their plane also describes each rewrite it does for an ESTABLISHED flow
//! ([`rvs_packet::fastpath::Offer`]) and hands the offers, after the block, to the **syncer**
//! thread of this module, which owns the program and its maps:
//!
//! * it installs an entry per offer at once (one per flow direction), so the flow's next
//!   packets are forwarded in the kernel;
//! * every [`SWEEP`] it reads each entry's packet and byte counters and last-seen time and
//!   gives the new traffic to rvs-core under the shard's lock ([`Director::conn_traffic`],
//!   which counts it where the kernel counts and restarts the connection's timer from the
//!   last-seen time), so `--stats`, `--rate`, `-Lnc` timeouts and expiry stay rvs-core's;
//!   a control request or page that shows counters runs the same sweep before it reads
//!   ([`XdpSweep`]), so its answer holds every packet the program forwarded before it;
//! * in the same pass it removes the entries whose connection expired, left ESTABLISHED or
//!   lost its real server ([`rvs_packet::fastpath::still_valid`]), and those of a VIP this
//!   director no longer holds (its VRRP instance left MASTER) or of a director that forwards
//!   nothing (`backup_only` with a backup daemon): their packets meet rvs-core again.
//!
//! rvs-core stays the one model: the program never creates, schedules or changes a
//! connection.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_bpf::xdp::{Counters, FastPath, Flow, FlowKey, Mode};
use rvs_core::conn::state::Direction;
use rvs_core::stats::Traffic;
use rvs_core::{Director, Time};
use rvs_packet::fastpath::{same_connection, still_valid, Offer};

use super::iface::Iface;
use crate::clock::Clock;
use crate::shard::{self, ShardRef};

/// How often the syncer reads the counters back and removes stale entries. Far below any
/// connection timeout, so a flow the program carries never expires in rvs-core.
pub const SWEEP: Duration = Duration::from_millis(100);
/// Entries a sweep reads from the map and then handles under one taking of the shard's lock.
/// The packet workers take that lock for every frame the program leaves to userspace; a sweep
/// of 1 000 000 entries under one taking held them up for ~0.4–0.8 s (`cargo bench -p rvsd
/// --bench xdp_sweep`, docs/benchmarks.md); 1 024 entries hold it about a thousandth of that.
const LOCK_CHUNK: usize = 1024;
/// Up to this many installed entries, a sweep reads each on its own (a look-up each) rather
/// than the whole map in batches.
const ONE_BY_ONE: usize = 64;
/// Offer batches queued between the workers and the syncer; a full queue drops the batch
/// (its flows are offered again by their next packet).
pub(super) const QUEUE: usize = 1024;

/// `--xdp-slow-path`. It lives beside [`XdpSetting`] (not in `xsk`) because the plane's
/// configuration names it, and `xsk` depends on the worker, which depends on the configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SlowPathSetting {
    /// AF_XDP where a socket can be bound, AF_PACKET elsewhere (one log line says why).
    #[default]
    Auto,
    /// AF_XDP on every worker, or rvsd does not start.
    Xsk,
    /// AF_PACKET alone, as without XDP.
    AfPacket,
}

impl FromStr for SlowPathSetting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => SlowPathSetting::Auto,
            "xsk" => SlowPathSetting::Xsk,
            "af_packet" => SlowPathSetting::AfPacket,
            _ => {
                return Err(format!(
                    "--xdp-slow-path {s}: expected auto, xsk or af_packet"
                ))
            }
        })
    }
}

/// `--xdp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum XdpSetting {
    /// AF_PACKET alone.
    #[default]
    Off,
    /// Try (native, else generic); on failure, AF_PACKET alone with one log line saying why.
    Auto,
    /// Required (native, else generic): rvsd does not start without it.
    On,
    /// Required, native only.
    Native,
    /// Required, generic only.
    Generic,
}

impl FromStr for XdpSetting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "off" => XdpSetting::Off,
            "auto" => XdpSetting::Auto,
            "on" => XdpSetting::On,
            "native" => XdpSetting::Native,
            "generic" => XdpSetting::Generic,
            _ => {
                return Err(format!(
                    "--xdp {s}: expected auto, on, off, native or generic"
                ))
            }
        })
    }
}

/// What the fast path is doing, for the log, the metrics and the status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XdpReport {
    /// Interface name and XDP mode (`native` / `generic`), when attached.
    pub modes: Vec<(String, &'static str)>,
    /// Interface name and its slow path: `xsk copy`, `xsk zerocopy` (AF_XDP) or `af_packet`.
    pub slow_paths: Vec<(String, String)>,
    /// Why it is not in use (`--xdp auto` fell back), if so.
    pub unavailable: Option<String>,
    /// The program's verdict counters (updated every sweep).
    pub counters: Counters,
    /// Entries installed now.
    pub entries: u64,
    /// What the program's SYN answering counted (updated every sweep).
    pub syn: rvs_bpf::syn_answer::SynCounters,
}

/// The loaded and attached program, before the syncer starts.
pub(super) struct Attached {
    fp: FastPath,
}

impl Attached {
    /// The program's AF_XDP slow-path maps (once).
    pub(super) fn slow_path(&mut self) -> Option<rvs_bpf::xdp::SlowPath> {
        self.fp.slow_path()
    }
}

/// Loads the program and attaches it to `ifaces` per `setting`. `Ok(None)`: not in use (off,
/// or auto and it could not be; the reason is logged once and put in `report`).
pub(super) fn attach(
    setting: XdpSetting,
    ifaces: &[Iface],
    report: &Mutex<XdpReport>,
) -> Result<Option<Attached>, String> {
    let mode = match setting {
        XdpSetting::Off => return Ok(None),
        XdpSetting::Auto | XdpSetting::On => None,
        XdpSetting::Native => Some(Mode::Native),
        XdpSetting::Generic => Some(Mode::Generic),
    };
    let tried = (|| {
        let mut fp = FastPath::load().map_err(|e| e.to_string())?;
        let mut modes = Vec::new();
        for i in ifaces {
            // A veth's native XDP_TX / XDP_REDIRECT reach its peer only when the peer runs
            // NAPI (GRO on, or an XDP program of its own), which rvsd cannot see from here:
            // without it the frames are dropped. Generic mode always delivers.
            let m = match mode {
                None if is_veth(&i.name) => {
                    tracing::info!(
                        "XDP on {}: generic mode (a veth's native XDP reaches its peer only \
                         when the peer runs NAPI; --xdp native forces it)",
                        i.name
                    );
                    Some(Mode::Generic)
                }
                m => m,
            };
            let m = fp
                .attach(i.ifindex, i.mac, m)
                .map_err(|e| format!("XDP on {}: {e}", i.name))?;
            modes.push((i.name.clone(), m.name()));
        }
        Ok::<_, String>((fp, modes))
    })();
    let mut r = crate::lock::lock(report);
    match tried {
        Ok((fp, modes)) => {
            for (name, m) in &modes {
                tracing::info!("XDP fast path on {name} ({m} mode)");
            }
            r.modes = modes;
            Ok(Some(Attached { fp }))
        }
        Err(e) if setting == XdpSetting::Auto => {
            tracing::warn!("{e}; the packet plane runs on AF_PACKET alone (--xdp auto)");
            r.unavailable = Some(e);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Whether interface `name` is a veth, as sysfs shows it to this namespace: its link is
/// another interface (the peer) and it has neither a device nor a lower interface (a VLAN or
/// macvlan has `lower_*`, a NIC a `device`).
fn is_veth(name: &str) -> bool {
    let dir = std::path::PathBuf::from(format!("/sys/class/net/{name}"));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).map(|s| s.trim().to_string());
    let (Ok(ifindex), Ok(iflink)) = (read("ifindex"), read("iflink")) else {
        return false;
    };
    let lower = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("lower_"))
        })
        .unwrap_or(true);
    ifindex != iflink && !lower && !dir.join("device").exists()
}

/// What the syncer shares with the plane.
pub(super) struct SyncContext {
    pub stop: Arc<AtomicBool>,
    pub ifaces: Arc<Vec<Iface>>,
    /// Brings the program's SYN-answering maps up to date and returns its counters
    /// (`packet_plane::syn_answer`; a closure so that this module does not depend on the
    /// plane's view, which depends on it).
    pub syn_answer: Box<dyn FnMut(&mut FastPath) -> rvs_bpf::syn_answer::SynCounters + Send>,
}

/// What a sweep works with besides the maps: where the counters go (the connections, under
/// the shard's lock, on the daemon's clock; the report for metrics and status) and which
/// VIPs are on standby.
pub(super) struct Sink {
    pub shard: ShardRef,
    pub clock: Clock,
    pub report: Arc<Mutex<XdpReport>>,
    /// The virtual addresses of VRRP instances that are not MASTER now (none without VRRP),
    /// read again at every sweep: from the plane's view's VRRP status board (a closure so
    /// that this module does not depend on the plane's view, which depends on it).
    pub standby: Box<dyn Fn() -> HashSet<IpAddr> + Send>,
}

/// The program's maps, the entries rvsd installed in them and where their counters go. The
/// syncer thread owns it; it sits behind a lock ([`XdpSweep`]) only so that a control request
/// that shows counters or timeouts can run the same sweep first.
struct Table {
    fp: FastPath,
    installed: HashMap<FlowKey, Installed>,
    sink: Sink,
    /// The addresses of VRRP instances that are not MASTER, as of the last sweep.
    standby: HashSet<IpAddr>,
}

impl Table {
    /// One sweep (the VRRP standby addresses read again first).
    fn sweep(&mut self) {
        self.standby = standby_addrs(&self.sink);
        sweep(&mut self.fp, &mut self.installed, &self.sink, &self.standby);
    }
}

/// A sweep on request: `rvsadm -L` (with `--stats`, `--rate`, `-c`), `-Z`, the metrics and the
/// status page run one sweep before they read, so that their answer holds every packet the
/// program forwarded before the request came, as the kernel's counters do — instead of lagging
/// by up to one [`SWEEP`]. One sweep per request whatever the table's size (the map read
/// once in batches, the shard's lock taken after each). Empty when the fast path is off, and
/// again once the plane stopped (the syncer takes the program out to detach it): then
/// [`XdpSweep::now`] does nothing.
#[derive(Clone, Default)]
pub struct XdpSweep(Arc<Mutex<Option<Table>>>);

impl XdpSweep {
    /// Runs one sweep now, if the fast path runs. Takes the shard's lock inside: the caller
    /// must hold neither the shard's nor the daemon state's lock.
    pub fn now(&self) {
        if let Some(t) = crate::lock::lock(&self.0).as_mut() {
            t.sweep();
        }
    }

    /// Whether the fast path runs (a sweep would do something).
    pub fn active(&self) -> bool {
        crate::lock::lock(&self.0).is_some()
    }

    /// The sweep of a table with an entry written into `fp`'s map for each of `offers`
    /// (their connections in `shard`'s director, every one leaving through `ifindex`), as
    /// the syncer installs them, but with no plane and no syncer thread: for measuring what
    /// one [`XdpSweep::now`] costs at a table's size (`benches/xdp_sweep.rs`). The plane has
    /// one port (an offer for another is not installed). Returns it with the number of
    /// entries written.
    pub fn detached(
        fp: FastPath,
        shard: ShardRef,
        clock: Clock,
        ifindex: u32,
        offers: impl IntoIterator<Item = Offer>,
    ) -> (XdpSweep, usize) {
        let sink = Sink {
            shard,
            clock,
            report: Arc::default(),
            standby: Box::new(HashSet::new),
        };
        let mut t = Table {
            fp,
            installed: HashMap::new(),
            standby: HashSet::new(),
            sink,
        };
        let iface = Iface {
            name: String::new(),
            ifindex,
            mac: [0; 6],
            mtu: 1500,
            addrs: Vec::new(),
        };
        for o in offers {
            install(&mut t, std::slice::from_ref(&iface), o);
        }
        let n = t.installed.len();
        (XdpSweep(Arc::new(Mutex::new(Some(t)))), n)
    }
}

impl std::fmt::Debug for XdpSweep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpSweep")
            .field("active", &self.active())
            .finish()
    }
}

/// An installed entry: the offer it came from and the counters already given to rvs-core.
struct Installed {
    offer: Offer,
    packets: u64,
    bytes: u64,
    /// Read back in the current sweep (an installed entry the map no longer has is not).
    seen: bool,
}

/// The syncer thread: installs offers, feeds the counters back, removes stale entries, until
/// the plane stops (then the program is detached with the [`FastPath`]). `shared` is the
/// plane's [`XdpSweep`]: the syncer puts its table there for control requests to sweep, and
/// takes it out again at the end.
pub(super) fn syncer(
    a: Attached,
    sink: Sink,
    shared: XdpSweep,
    offers: Receiver<Vec<Offer>>,
    mut cx: SyncContext,
) {
    let mut table = Table {
        fp: a.fp,
        installed: HashMap::new(),
        standby: standby_addrs(&sink),
        sink,
    };
    (cx.syn_answer)(&mut table.fp);
    *crate::lock::lock(&shared.0) = Some(table);
    // Entries written over the plane's life (each one map update on this thread).
    let mut writes = 0u64;
    let mut next_sweep = Instant::now() + SWEEP;
    while !cx.stop.load(Ordering::Relaxed) {
        let wait = next_sweep.saturating_duration_since(Instant::now());
        let batch = match offers.recv_timeout(wait) {
            Ok(batch) => Some(batch),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut held = crate::lock::lock(&shared.0);
        let Some(t) = held.as_mut() else { break };
        for o in batch.into_iter().flatten() {
            // A VIP (or FULLNAT local address) on standby: a frame that still reached the
            // plane is rvs-core's to judge, never the program's. (NAT replies name no VIP:
            // the sweep removes those.)
            if t.standby.contains(&o.dst.0) {
                continue;
            }
            writes += u64::from(install(t, &cx.ifaces, o));
        }
        if Instant::now() >= next_sweep {
            t.sweep();
            let c = (cx.syn_answer)(&mut t.fp);
            crate::lock::lock(&t.sink.report).syn = c;
            next_sweep = Instant::now() + SWEEP;
        }
    }
    // Out of reach of control requests; last counters in before the program goes.
    let Some(mut t) = crate::lock::lock(&shared.0).take() else {
        return;
    };
    t.sweep();
    let c = crate::lock::lock(&t.sink.report).counters;
    tracing::info!(
        "XDP fast path: {} frames forwarded (tx {}, redirect {}), {} to the AF_XDP slow path, passed to the host stack: {} without an entry, {} SYN/FIN/RST, {} other, {} over a limit",
        c.tx + c.redirect,
        c.tx,
        c.redirect,
        c.xsk,
        c.pass_no_flow,
        c.pass_state,
        c.pass_other,
        c.pass_limit
    );
    // A line of its own: the one above is parsed by the e2e tests' harness as it is.
    tracing::info!(
        "XDP fast path: {} frames for another host's MAC left to the host stack (which drops them)",
        c.pass_other_host
    );
    tracing::info!(
        "XDP fast path: {writes} flow entries written, {} installed at the end",
        t.installed.len()
    );
    let s = (cx.syn_answer)(&mut t.fp);
    tracing::info!(
        "XDP SYN answering: {} SYN-ACKs sent by the program, {} SYNs to served services left to userspace",
        s.answered,
        s.left
    );
}

/// Installs the entry of `o`; true when the map was written.
fn install(t: &mut Table, ifaces: &[Iface], o: Offer) -> bool {
    let Table {
        fp,
        installed,
        sink,
        ..
    } = t;
    let Some(ifindex) = ifaces.get(usize::from(o.port)).map(|i| i.ifindex) else {
        return false;
    };
    let Some(ingress) = ifaces
        .get(usize::from(o.in_port))
        .map(|i| (i.ifindex, i.mac))
    else {
        return false;
    };
    let (key, flow) = Flow::from_offer(&o, ifindex, ingress);
    if let Some(old) = installed.get(&key) {
        if old.offer == o {
            return false;
        }
        // A changed rewrite (a new next hop, a reused tuple): the old entry's last traffic
        // goes to its connection first, since replacing resets the counters.
        let mut one = HashMap::from([(key, installed.remove(&key).expect("present"))]);
        feed_back(fp, &mut one, sink, &HashSet::new());
    }
    match fp.insert(&key, &flow) {
        Ok(()) => {
            installed.insert(
                key,
                Installed {
                    offer: o,
                    packets: 0,
                    bytes: 0,
                    seen: false,
                },
            );
            true
        }
        Err(e) => {
            tracing::debug!("XDP entry not installed: {e}");
            false
        }
    }
}

/// The VIPs of VRRP instances that are not MASTER (none without VRRP).
fn standby_addrs(cx: &Sink) -> HashSet<IpAddr> {
    (cx.standby)()
}

/// Whether this director serves the connection of `offer` now: it forwards at all (not
/// `backup_only` with a backup daemon running) and holds its virtual address and, for
/// FULLNAT, its local address (no VRRP instance of them is on standby).
///
/// Why the sweep checks it: rvs-core and the userspace plane decide this per packet (a
/// director with forwarding off passes every packet; a BACKUP does not see the frames a
/// switch floods toward the MASTER's MAC), but an installed entry would go on forwarding the
/// flow's packets on its own — a stale program answering for a VIP the peer now holds.
fn serves(director: &Director, offer: &Offer, standby: &HashSet<IpAddr>) -> bool {
    if director.sync.forwarding_disabled() {
        return false;
    }
    director.conns.info(offer.conn).is_some_and(|c| {
        !standby.contains(&c.vaddr) && !c.local.is_some_and(|(a, _)| standby.contains(&a))
    })
}

/// One sweep: counters back into rvs-core, stale entries out.
fn sweep(
    fp: &mut FastPath,
    installed: &mut HashMap<FlowKey, Installed>,
    cx: &Sink,
    standby: &HashSet<IpAddr>,
) {
    let stale = feed_back(fp, installed, cx, standby);
    for key in stale {
        installed.remove(&key);
        if let Err(e) = fp.remove(&key) {
            tracing::warn!("XDP entry not removed: {e}");
        }
    }
    let counters = fp.counters().unwrap_or_default();
    let mut r = crate::lock::lock(&cx.report);
    r.counters = counters;
    r.entries = installed.len() as u64;
}

/// Reads the map's entries [`LOCK_CHUNK`] at a time (one batch read each, outside the lock),
/// and after each batch, under the shard's lock, gives each connection its new traffic and
/// finds the entries that no longer hold (see [`still_valid`], [`serves`]). Returns those.
/// Where batch reads fail (a kernel before 5.6), each installed entry is read on its own.
fn feed_back(
    fp: &FastPath,
    installed: &mut HashMap<FlowKey, Installed>,
    cx: &Sink,
    standby: &HashSet<IpAddr>,
) -> Vec<FlowKey> {
    let mut stale = Vec::new();
    for inst in installed.values_mut() {
        inst.seen = false;
    }
    let mut batch = Vec::with_capacity(LOCK_CHUNK);
    // A few entries (one being replaced, a small table) are read on their own: a batch read
    // walks the whole map.
    let read = if installed.len() <= ONE_BY_ONE {
        Err(None)
    } else {
        fp.flows_in_batches(LOCK_CHUNK, |keys, flows| {
            batch.clear();
            batch.extend(keys.iter().copied().zip(flows.iter().copied()));
            apply(&batch, installed, cx, standby, &mut stale);
        })
        .map_err(Some)
    };
    if let Err(e) = read {
        if let Some(e) = e {
            tracing::debug!("XDP entries read one by one: {e}");
        }
        let keys: Vec<FlowKey> = installed
            .iter()
            .filter(|(_, i)| !i.seen)
            .map(|(k, _)| *k)
            .collect();
        for chunk in keys.chunks(LOCK_CHUNK) {
            batch.clear();
            for key in chunk {
                match fp.flow(key) {
                    Ok(Some(f)) => batch.push((*key, f)),
                    Ok(None) => {}
                    Err(e) => tracing::debug!(
                        "XDP entry {:?} unreadable: {e}",
                        installed.get(key).map(|i| i.offer.conn)
                    ),
                }
            }
            apply(&batch, installed, cx, standby, &mut stale);
        }
    }
    // Installed but gone from the map (should not happen): counted as empty, so the entry is
    // judged like any other and forgotten when it no longer holds.
    let gone: Vec<(FlowKey, Flow)> = installed
        .iter()
        .filter(|(_, i)| !i.seen)
        .map(|(k, _)| (*k, Flow::default()))
        .collect();
    for chunk in gone.chunks(LOCK_CHUNK) {
        apply(chunk, installed, cx, standby, &mut stale);
    }
    stale
}

/// One chunk of read-back entries under the shard's lock: the new traffic of each to rvs-core,
/// and the entries that no longer hold onto `stale`.
fn apply(
    entries: &[(FlowKey, Flow)],
    installed: &mut HashMap<FlowKey, Installed>,
    cx: &Sink,
    standby: &HashSet<IpAddr>,
    stale: &mut Vec<FlowKey>,
) {
    if entries.is_empty() {
        return;
    }
    let (now, mono_now) = (cx.clock.now(), monotonic_now());
    let mut sh = shard::lock(&cx.shard);
    let director = &mut sh.director;
    for &(key, f) in entries {
        let Some(inst) = installed.get_mut(&key) else {
            continue;
        };
        inst.seen = true;
        let (dp, db) = (
            f.packets().saturating_sub(inst.packets),
            f.bytes().saturating_sub(inst.bytes),
        );
        inst.packets = f.packets();
        inst.bytes = f.bytes();
        if dp > 0 && same_connection(director, &inst.offer) {
            let at = seen_at(director, &inst.offer, f.last_seen(), now, mono_now);
            let traffic = match inst.offer.dir {
                Direction::Input => Traffic {
                    in_pkts: dp,
                    in_bytes: db,
                    ..Traffic::default()
                },
                Direction::Output => Traffic {
                    out_pkts: dp,
                    out_bytes: db,
                    ..Traffic::default()
                },
            };
            director.fast_path_traffic(inst.offer.conn, traffic, at);
        }
        if !still_valid(director, &inst.offer) || !serves(director, &inst.offer, standby) {
            stale.push(key);
        }
    }
}

/// The rvs-core time of the program's last packet of the flow: its last-seen
/// (`CLOCK_MONOTONIC`) on the daemon's clock, but never before the connection's own last
/// packet, so a timer restarted by a later userspace packet is not pulled back.
fn seen_at(
    director: &Director,
    offer: &Offer,
    last_seen: Option<Duration>,
    now: Time,
    mono_now: Duration,
) -> Time {
    let ago = last_seen.map_or(Duration::ZERO, |t| mono_now.saturating_sub(t));
    let seen = Time(
        now.0
            .saturating_sub(u64::try_from(ago.as_millis()).unwrap_or(u64::MAX)),
    );
    let last_userspace = director.conns.get(offer.conn).and_then(|c| {
        let expires = c.expires()?;
        let timeout = c.timeout();
        Some(Time(expires.0.saturating_sub(timeout.as_millis())))
    });
    match last_userspace {
        Some(t) if t.0 > seen.0 => t,
        _ => seen,
    }
}

/// `CLOCK_MONOTONIC`, the clock of the program's last-seen times (`bpf_ktime_get_coarse_ns`).
fn monotonic_now() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(Duration::from)
        .unwrap_or_default()
}

/// The worker's side: offers go to the syncer at most once per second per flow direction,
/// and a UDP flow direction's only from its second packet on.
///
/// Why the second packet: a flow of one datagram (a DNS query, or each packet of a new-flow
/// flood) gains nothing from an entry but costs one: a map update when installed, and a map
/// read every sweep for as long as its connection lives (UDP: 5 minutes). The plane already
/// makes no offer for the packet that created a UDP connection (the client's first), so a
/// client-direction offer goes at once; a reply direction is sent from its second offer.
/// TCP offers come only for an ESTABLISHED connection, after a handshake, so they go at once.
pub(super) struct OfferOut {
    tx: SyncSender<Vec<Offer>>,
    batch: Vec<Offer>,
    recent: HashMap<(rvs_core::conn::ConnId, bool), Recent>,
    pruned: Instant,
}

/// When a flow direction was last offered, and whether that offer went to the syncer.
struct Recent {
    at: Instant,
    sent: bool,
}

impl OfferOut {
    pub(super) fn new(tx: SyncSender<Vec<Offer>>) -> OfferOut {
        OfferOut {
            tx,
            batch: Vec::new(),
            recent: HashMap::new(),
            pruned: Instant::now(),
        }
    }

    /// Sends the offers `plane` made during a block (called after the block, without the lock).
    pub(super) fn send<N: rvs_packet::plane::Neighbours>(
        &mut self,
        plane: &mut rvs_packet::plane::Plane<N>,
    ) {
        let mut made = Vec::new();
        plane.drain_offers(&mut made);
        if made.is_empty() {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.pruned) > Duration::from_secs(1) {
            self.recent
                .retain(|_, r| now.duration_since(r.at) < Duration::from_secs(1));
            self.pruned = now;
        }
        for o in made {
            if let Some(o) = self.admit(o, now) {
                self.batch.push(o);
            }
        }
        if !self.batch.is_empty() {
            let b = std::mem::take(&mut self.batch);
            // Full: the syncer is behind; these flows are offered again later.
            let _ = self.tx.try_send(b);
        }
    }

    /// The offer if it is to go to the syncer now (see the type's docs).
    fn admit(&mut self, o: Offer, now: Instant) -> Option<Offer> {
        let k = (o.conn, o.dir == Direction::Input);
        match self.recent.get_mut(&k) {
            Some(r) if r.sent && now.duration_since(r.at) < Duration::from_secs(1) => None,
            Some(r) => {
                *r = Recent {
                    at: now,
                    sent: true,
                };
                Some(o)
            }
            None => {
                let sent = o.proto != UDP || o.dir == Direction::Input;
                self.recent.insert(k, Recent { at: now, sent });
                sent.then_some(o)
            }
        }
    }
}

/// IP protocol number of UDP.
const UDP: u8 = 17;

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_packet::fastpath::OfferAction;

    fn offer(proto: u8, conn: u32, dir: Direction) -> Offer {
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        Offer {
            conn: rvs_core::conn::ConnId(conn),
            dir,
            proto,
            src: (a, 1000),
            dst: (a, 53),
            action: OfferAction::Rewrite {
                src: None,
                dst: None,
            },
            port: 0,
            in_port: 0,
            dst_mac: [0; 6],
            src_mac: [0; 6],
            max_len: 1500,
        }
    }

    #[test]
    fn udp_flows_are_offered_from_their_second_packet_tcp_at_once() {
        let (tx, _rx) = std::sync::mpsc::sync_channel(4);
        let mut out = OfferOut::new(tx);
        let t = Instant::now();
        // The client direction: the plane offers it from its second packet, so the first
        // offer goes; later ones within a second are not sent again.
        assert!(out.admit(offer(UDP, 2, Direction::Input), t).is_some());
        assert!(out.admit(offer(UDP, 2, Direction::Input), t).is_none());
        // A reply direction counts on its own, from its second offer: a one-reply flow is
        // never installed.
        assert!(out.admit(offer(UDP, 1, Direction::Output), t).is_none());
        assert!(out.admit(offer(UDP, 2, Direction::Output), t).is_none());
        assert!(out.admit(offer(UDP, 2, Direction::Output), t).is_some());
        // After a second, a sent flow direction is offered again (a changed rewrite).
        let later = t + Duration::from_millis(1100);
        assert!(out.admit(offer(UDP, 2, Direction::Input), later).is_some());
        // TCP (offered only when ESTABLISHED): at once.
        assert!(out.admit(offer(6, 3, Direction::Input), t).is_some());
        assert!(out.admit(offer(6, 3, Direction::Input), t).is_none());
    }
}
