//! The packet data plane inside rvsd (`rvsd --interface IFACE`, repeatable; issue 4 item 2).
//!
//! One AF_PACKET [`Port`] (a pull-style [`rvs_packet_io::PacketPort`]) per interface and worker thread (`--packet-workers N` per
//! interface, default 1; several join a `PACKET_FANOUT` hash group), plus one *keeper* thread
//! that owns the nftables ingress guard and warms the kernel's neighbour table. The frames
//! are classified and rewritten by [`rvs_packet::plane::Plane`] (docs/internals/forwarding.md);
//! the decisions come from the [`rvs_core::Director`] of the shard that holds every
//! packet-plane service (the socket proxy's services have shards of their own), the same model
//! `rvsadm -L`, `--stats` and `-Lnc` read, so both planes share one connection and statistics
//! model (docs/internals/architecture.md#two-data-planes-one-model).
//!
//! # Locking: one lock per received block, none while transmitting
//!
//! The packet plane's services live in one shard of their own ([`crate::shard`]): a reply
//! from a real server must find its connection before its service is known. A worker takes
//! that shard's lock when the first frame of a ring block arrives and holds it until every
//! frame of the block (`BLOCKS_PER_BATCH`) is processed: one lock per block, not per packet
//! (a few hundred frames under load; the kernel retires a block after 1 ms). The lock is
//! released before the block is finished and its rewritten frames are transmitted
//! ([`rvs_packet_io::RxBlock::finish`], see `worker::Worker::step`), so the
//! `sendmmsg` calls — about 90 % of a worker's time, most of it the receiving side's work run
//! inline by veth — run without it, in parallel across workers. Neither the socket proxy's
//! services nor control requests for them take this lock; a table change for a packet-plane
//! service does, briefly. Not done: per-worker connection tables (flows steered to a worker by
//! the fanout hash, as DPVS does per core), which would remove the remaining shared lock.
//!
//! # Which plane serves which service
//!
//! With `--interface`, the packet plane serves every virtual service except those whose VIP
//! is a loopback address (127.0.0.0/8, ::1): no frame on an interface ever carries those, so
//! only the socket proxy can serve them, and it keeps doing so. The proxy opens no listener
//! for the others ([`State::proxy_listeners`]), so a service is never carried by both planes.
//! The rule is deliberately by address and not by "is the VIP on an interface's network": a
//! VIP usually sits on `lo` or is routed to the director, and the nft guard drops its traffic
//! before the host stack anyway, so a proxy listener for it would never see a packet.
//!
//! # The nft guard
//!
//! At start a stale `table netdev rvs` (left by a crash) is deleted, then a fresh one is
//! installed on the plane's interfaces; it is refilled on every table change and removed on
//! exit (`rvs_packet_io::nft`). It drops, after the AF_PACKET taps saw them: packets to the
//! VIPs (address and port; address only for port-0 and firewall-mark services), replies to
//! full-NAT local addresses in the plane's port range, and replies from NAT / full-NAT real
//! servers (by address and port) unless addressed to one of the director's own interface
//! addresses (`keep_local`, so health checks and the director's own connections work).
//!
//! The keeper (`keeper`) applies a table change as soon as the control side publishes it
//! (one `nft` run), then resolves new real servers; the control request that made the change
//! waits for that (at most [`APPLY_WAIT`], see [`wait_applied`]), so, as with the kernel, a
//! rule is in force when `rvsadm` returns and the first packet after it meets the plane, not
//! the host stack.
//!
//! # Published configuration
//!
//! The control side ([`State`]) computes the plane's [`PacketView`] once per change — the
//! workers' [`PlaneConfig`](rvs_packet::plane::PlaneConfig), the guard's rules, the real
//! servers to resolve — and publishes it ([`crate::published`]). A worker compares one atomic
//! version with its snapshot at each block and swaps its configuration when it moved; no
//! worker takes the `State` lock.
//!
//! # Modules
//!
//! [`config`]: interfaces, options and the view; `worker`: the per-port loop; `keeper`:
//! the guard, announcements, real-server resolution and mark rules; `hops`: the workers'
//! next-hop cache; `unresolved`: frames waiting for a next hop.
//!
//! # Next hops
//!
//! A worker's next-hop lookup is cache-only (`hops`): it reads the table the keeper
//! publishes, then the neighbours learned from solicitations, and makes no system call. A
//! destination in neither is *neighbour pending*: the plane drops the frame (counted
//! `no_route`) and the worker holds it as the plane left it, the director done with it
//! (`unresolved`, as the kernel queues packets for a neighbour it is resolving); after the
//! block, outside the lock, the destination goes to the keeper (at most once per 200 ms per
//! worker), which asks the kernel over rtnetlink, fires a probe when the neighbour is
//! unknown, looks again a few milliseconds later, and publishes what it learned. The worker
//! then runs only the held frames' transmit step and sends them (each frame is handled by the
//! director once); frames
//! whose next hop is not known within 3 s are dropped and counted. The keeper resolves every
//! real server with the blocking [`Resolver::resolve`](rvs_packet_io::Resolver::resolve) as
//! soon as it is added (before the control request returns), so the first packet of a flow
//! normally finds the entry; entries older than 30 s are re-read from the kernel.
//!
//! # Firewall marks
//!
//! AF_PACKET shows a frame before netfilter, and `tpacket3_hdr` has no `skb->mark` anyway, so
//! the mark an nft `meta mark set` rule puts on a packet never reaches rvsd. The keeper reads
//! the director's ruleset instead (every second and on each table change, while a
//! firewall-mark service exists; [`crate::nft_marks`]) and the plane applies
//! the mark rules it finds exactly where the kernel's mangle/PREROUTING rule would
//! (`PlaneConfig::marks`); rules it cannot express are logged, and `--fwmark-rule` gives a
//! rule to rvsd directly.

pub mod config;
pub mod frag_stats;
mod hops;
mod iface;
mod keeper;
mod syn_answer;
pub mod syn_stats;
mod unresolved;
mod worker;
pub mod xdp;
pub mod xsk;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rvs_packet_io::nft::{self, IngressGuard};
use rvs_packet_io::Port;

pub use config::{parse_mark_rule, Iface, Options, PacketFeed, PacketView};
pub use worker::WorkerReport;
pub use xdp::SlowPathSetting;
pub use xdp::{XdpReport, XdpSetting, XdpSweep};

use crate::clock::Clock;
use crate::learned_neighbours::Learned;
use crate::lock::lock;
use crate::published::Published;
use crate::state::State;
use keeper::NftMarks;

/// Reads the MTU and addresses of `name` (its MAC and index come from the open port).
fn iface_info(port: &Port) -> Result<Iface, String> {
    let name = port.ifname().to_string();
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .ok_or_else(|| format!("{name}: cannot read the MTU from /sys/class/net"))?;
    let mut addrs = Vec::new();
    let all = nix::ifaddrs::getifaddrs().map_err(|e| format!("getifaddrs: {e}"))?;
    for ifa in all.filter(|i| i.interface_name == name) {
        let (Some(a), Some(m)) = (ifa.address, ifa.netmask) else {
            continue;
        };
        if let (Some(a), Some(m)) = (a.as_sockaddr_in(), m.as_sockaddr_in()) {
            addrs.push((IpAddr::V4(a.ip()), u32::from(m.ip()).count_ones() as u8));
        } else if let (Some(a), Some(m)) = (a.as_sockaddr_in6(), m.as_sockaddr_in6()) {
            addrs.push((IpAddr::V6(a.ip()), u128::from(m.ip()).count_ones() as u8));
        }
    }
    Ok(Iface {
        name,
        ifindex: port.ifindex(),
        mac: port.mac(),
        mtu,
        addrs,
    })
}

/// Waits (at most [`APPLY_WAIT`]) until the packet plane applied table generation
/// `generation`: its nft guard lists the new VIPs and new real servers are resolved, so the
/// first packet after `rvsadm -A/-a` is the plane's and not the host stack's. Woken by the
/// keeper's publication, not by polling.
pub async fn wait_applied(applied: &Published<u64>, generation: u64) {
    if !applied.wait_until(|g| *g >= generation, APPLY_WAIT).await {
        tracing::warn!("the packet plane has not applied table change {generation} yet");
    }
}

/// Longest a control request waits for the packet plane ([`wait_applied`]).
pub const APPLY_WAIT: Duration = Duration::from_secs(3);

/// The running packet plane; stopped (threads joined, nft guard removed) by [`stop`] or drop.
///
/// [`stop`]: PacketPlane::stop
pub struct PacketPlane {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<WorkerReport>>,
    keeper: Option<JoinHandle<Result<(), String>>>,
    syncer: Option<JoinHandle<()>>,
}

impl PacketPlane {
    /// Opens a port on each interface, installs the nft guard (after deleting a stale one)
    /// and starts the threads. Needs CAP_NET_RAW and CAP_NET_ADMIN and the `nft` program.
    pub fn start(
        interfaces: &[String],
        state: Arc<Mutex<State>>,
        clock: Clock,
        opts: Options,
    ) -> Result<PacketPlane, String> {
        let mut ports = Vec::new();
        let mut ifaces = Vec::new();
        let per = opts.workers_per_interface.clamp(1, 64);
        for (n, name) in interfaces.iter().enumerate() {
            if ifaces.iter().any(|i: &Iface| &i.name == name) {
                return Err(format!("--interface {name} given twice"));
            }
            let mut cfg = rvs_packet_io::PortConfig {
                blocks_per_call: Some(worker::BLOCKS_PER_BATCH),
                ..Default::default()
            };
            if per > 1 {
                // One fanout group per interface (ids are per network namespace): the
                // kernel's flow hash keeps both directions of a flow on one worker; defrag so
                // all fragments of a datagram meet.
                cfg.fanout = Some(rvs_packet_io::Fanout {
                    group: (std::process::id() as u16)
                        .wrapping_mul(64)
                        .wrapping_add(n as u16),
                    defrag: true,
                });
            }
            for _ in 0..per {
                let port =
                    Port::open(name, &cfg).map_err(|e| format!("--interface {name}: {e}"))?;
                if ports.iter().all(|(i, _)| *i != n) {
                    ifaces.push(iface_info(&port)?);
                }
                ports.push((n, port));
            }
        }
        nft::cleanup_stale().map_err(|e| format!("removing a stale nft guard: {e}"))?;
        let feed = PacketFeed::new(ifaces, opts);
        let ifaces = feed.ifaces.clone();
        let packet_shard = {
            let mut st = lock(&state);
            st.attach_packet_plane(feed.clone());
            st.packet_shard()
                .cloned()
                .ok_or("the daemon state was made without the packet plane")?
        };
        // Mark rules from nft are in place before the first frame is seen.
        let mut marks = NftMarks::default();
        marks.poll(&state, feed.view.load().wants_marks, true);
        let names: Vec<&str> = interfaces.iter().map(String::as_str).collect();
        let guard = IngressGuard::install(&names, &feed.view.load().guard)
            .map_err(|e| format!("installing the nft ingress guard: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let learned = Arc::new(Mutex::new(Learned::default()));
        let mut pp = PacketPlane {
            stop: stop.clone(),
            workers: Vec::new(),
            keeper: None,
            syncer: None,
        };
        // The XDP fast path, when asked for: attached before the workers start, so they know
        // whether to make offers.
        let mut offers_tx = None;
        let mut xsks: Vec<Option<rvs_packet_io::XskPort>> = Vec::new();
        let mut slow = None;
        if let Some(mut attached) = xdp::attach(feed.opts.xdp, &ifaces, &feed.xdp)? {
            // The slow path over AF_XDP: a socket per worker where one can be bound, the
            // rules of what goes to them in place before the first frame.
            if let Some(mut sp) = attached.slow_path() {
                let modes = crate::lock::lock(&feed.xdp).modes.clone();
                let (opened, paths) =
                    xsk::open(feed.opts.slow_path, &mut sp, &ifaces, &modes, &ports)?;
                xsks = opened;
                crate::lock::lock(&feed.xdp).slow_paths = paths;
                if xsks.iter().any(Option::is_some) {
                    sp.set_rules(&xsk::rules(&feed.view.load().guard))
                        .map_err(|e| format!("XDP slow path rules: {e}"))?;
                    slow = Some(sp);
                }
            }
            let (tx, rx) = std::sync::mpsc::sync_channel(xdp::QUEUE);
            offers_tx = Some(tx);
            let sink = xdp::Sink {
                shard: packet_shard.clone(),
                clock,
                report: feed.xdp.clone(),
                standby: {
                    let view = feed.view.clone();
                    Box::new(move || {
                        view.load()
                            .vrrp
                            .as_ref()
                            .map(|(board, _)| board.standby_vips())
                            .unwrap_or_default()
                    })
                },
            };
            let shared = feed.xdp_sweep.clone();
            let scx = xdp::SyncContext {
                stop: stop.clone(),
                ifaces: ifaces.clone(),
                syn_answer: {
                    let mut k = syn_answer::SynAnswerKeeper::new(
                        &clock,
                        packet_shard.clone(),
                        feed.view.clone(),
                        ifaces.clone(),
                    );
                    Box::new(move |fp| k.keep(fp))
                },
            };
            pp.syncer = Some(
                std::thread::Builder::new()
                    .name("rvs-xdp".into())
                    .spawn(move || xdp::syncer(attached, sink, shared, rx, scx))
                    .map_err(|e| format!("spawning the XDP syncer thread: {e}"))?,
            );
        }
        let table = Arc::new(Published::<hops::HopTable>::default());
        let misses = Arc::new(hops::Misses::default());
        let kcx = keeper::Context {
            state: state.clone(),
            view: feed.view.clone(),
            applied: feed.applied.clone(),
            bell: feed.bell.clone(),
            hops: table.clone(),
            misses: misses.clone(),
            stop: stop.clone(),
            ifaces: ifaces.clone(),
            slow,
            xdp_sweep: feed.xdp_sweep.clone(),
        };
        pp.keeper = Some(
            std::thread::Builder::new()
                .name("rvs-keeper".into())
                .spawn(move || keeper::keeper(guard, kcx, marks))
                .map_err(|e| format!("spawning the keeper thread: {e}"))?,
        );
        xsks.resize_with(ports.len(), || None);
        for ((i, port), xsk) in ports.into_iter().zip(xsks) {
            let cx = worker::Context {
                shard: packet_shard.clone(),
                view: feed.view.clone(),
                learned: learned.clone(),
                hops: table.clone(),
                misses: misses.clone(),
                bell: feed.bell.clone(),
                clock,
                stop: stop.clone(),
                ifaces: ifaces.clone(),
                offers: offers_tx.clone(),
                frag: feed.frag.clone(),
                syn: feed.syn.clone(),
            };
            let h = std::thread::Builder::new()
                .name(format!("rvs-pkt-{}", ifaces[i].name))
                .spawn(move || match xsk {
                    Some(x) => xsk::run(i, port, x, cx),
                    None => worker::run(i, port, cx),
                })
                .map_err(|e| format!("spawning a packet worker: {e}"))?;
            pp.workers.push(h);
        }
        for i in ifaces.iter() {
            let a: Vec<String> = i.addrs.iter().map(|(a, l)| format!("{a}/{l}")).collect();
            tracing::info!(
                "packet plane on {} (index {}, mtu {}, {})",
                i.name,
                i.ifindex,
                i.mtu,
                a.join(" ")
            );
        }
        Ok(pp)
    }

    /// Stops the workers and the keeper (which removes the nft guard); logs their counters.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.workers.drain(..) {
            match h.join() {
                Ok(r) => {
                    let drops: Vec<String> = r
                        .drops
                        .nonzero()
                        .map(|(d, n)| format!("{}={n}", d.name()))
                        .collect();
                    tracing::info!(
                        "packet worker {}: {} frames in {} batches, {} oversize, {} for other hosts, {} ring drops, {} transmit errors, {} checksums completed, {} super-frames segmented, {} sent outside the ring ({} failed), {} next hops pending, {} frames held for a next hop ({} sent on, {} expired, {} discarded), drops: {}",
                        r.iface,
                        r.frames,
                        r.batches,
                        r.oversize,
                        r.other_host,
                        r.ring_drops,
                        r.tx_errors,
                        r.csum_completed,
                        r.segmented,
                        r.out_sent,
                        r.out_failed,
                        r.neighbour_pending,
                        r.held.held,
                        r.held.released,
                        r.held.expired,
                        r.held.discarded,
                        if drops.is_empty() { "none".into() } else { drops.join(" ") }
                    );
                    if let Some(e) = r.error {
                        tracing::error!("packet worker {}: {e}", r.iface);
                    }
                }
                Err(_) => tracing::error!("a packet worker panicked"),
            }
        }
        if let Some(s) = self.syncer.take() {
            if s.join().is_err() {
                tracing::error!("the XDP syncer panicked");
            }
        }
        if let Some(k) = self.keeper.take() {
            match k.join() {
                Ok(Ok(())) => tracing::info!("nft ingress guard removed"),
                Ok(Err(e)) => tracing::error!("packet plane keeper: {e}"),
                Err(_) => tracing::error!("the packet plane keeper panicked"),
            }
        }
    }
}

impl Drop for PacketPlane {
    fn drop(&mut self) {
        self.shutdown();
    }
}
