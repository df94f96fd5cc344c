//! The AF_XDP slow path of the packet plane (`--xdp` with `--xdp-slow-path auto|xsk`;
//! docs/internals/packet-plane.md#the-af_xdp-slow-path).
//!
//! With the XDP program attached, the packets it does not forward itself go to the userspace
//! plane. Without this module they take the host stack's way (`XDP_PASS`): an skb, the
//! AF_PACKET tap's copy, the nft guard's drop. Here each worker also owns an
//! [`XskPort`] on one receive queue of its interface, registered in the program's `XSKMAP`,
//! and the program redirects to it exactly the packets the guard would drop (the rules are
//! the guard's, kept in the program's `rvs_take` map by the keeper). What the rules do not
//! take — ARP, ICMP, fragments, the host's own traffic, frames too big for a UMEM chunk —
//! still goes to the host stack and the worker's AF_PACKET port, so the worker runs both:
//! [`run`] walks a block of whichever has frames, through the same [`Worker::step`].
//!
//! Where an XSK cannot be opened (no queue for the worker, a kernel without AF_XDP, a driver
//! that refuses), the worker keeps AF_PACKET alone and one log line says why.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;
use std::time::Duration;

use rvs_bpf::xdp::{Mode, SlowPath, TakeKey, TakeRanges};
use rvs_packet_io::xsk::{rx_queues, XskStats};
use rvs_packet_io::{GuardRules, Port, XskBind, XskConfig, XskPort};

use super::iface::Iface;
use super::worker::{self, Context, WorkerReport};
pub use super::xdp::SlowPathSetting;

/// What [`open`] made: a socket or none per worker port, and each interface's slow path
/// (`xsk copy`, `xsk zerocopy`, `af_packet`).
pub(super) type Opened = (Vec<Option<XskPort>>, Vec<(String, String)>);

/// Opens an XSK for each worker port that can have one and registers it with the program.
/// `ports` are the workers' AF_PACKET ports with their interface's index in `ifaces`, in the
/// order the workers are made; `modes` the XDP mode of each interface. Returns one entry per
/// port, and a description of the slow path of each interface for the report.
pub(super) fn open(
    setting: SlowPathSetting,
    slow: &mut SlowPath,
    ifaces: &[Iface],
    modes: &[(String, &'static str)],
    ports: &[(usize, Port)],
) -> Result<Opened, String> {
    let mut out = Vec::with_capacity(ports.len());
    let mut paths: Vec<(String, String)> = Vec::new();
    let mut nth = vec![0u32; ifaces.len()];
    for (n, _) in ports {
        let iface = &ifaces[*n];
        let queue = nth[*n];
        nth[*n] += 1;
        let generic = modes
            .iter()
            .any(|(name, m)| *name == iface.name && *m == Mode::Generic.name());
        let tried = if setting == SlowPathSetting::AfPacket {
            Err("--xdp-slow-path af_packet".to_string())
        } else if queue >= rx_queues(&iface.name) {
            Err(format!(
                "{} has {} receive queue(s), this worker would need queue {queue}",
                iface.name,
                rx_queues(&iface.name)
            ))
        } else {
            let cfg = XskConfig {
                queue,
                // Generic XDP delivers to an XSK in copy mode only.
                bind: if generic {
                    XskBind::Copy
                } else {
                    XskBind::Auto
                },
                ..XskConfig::default()
            };
            XskPort::open(&iface.name, &cfg)
                .map_err(|e| e.to_string())
                .and_then(|p| {
                    slow.register(iface.ifindex, *n as u32, queue, p.as_raw_fd())
                        .map(|()| p)
                        .map_err(|e| e.to_string())
                })
        };
        let path = match tried {
            Ok(p) => {
                tracing::info!(
                    "XDP slow path on {} queue {queue}: AF_XDP ({} mode)",
                    iface.name,
                    p.mode().name()
                );
                let d = format!("xsk {}", p.mode().name());
                out.push(Some(p));
                d
            }
            Err(e) if setting == SlowPathSetting::Xsk => {
                return Err(format!("AF_XDP on {} queue {queue}: {e}", iface.name))
            }
            Err(e) => {
                if setting != SlowPathSetting::AfPacket {
                    tracing::warn!(
                        "XDP slow path on {} queue {queue}: AF_PACKET (AF_XDP unavailable: {e})",
                        iface.name
                    );
                }
                out.push(None);
                "af_packet".to_string()
            }
        };
        // One description per interface: its first worker's.
        if !paths.iter().any(|(i, _)| *i == iface.name) {
            paths.push((iface.name.clone(), path));
        }
    }
    Ok((out, paths))
}

/// The program's rules for what the userspace plane takes: the nft guard's, in its order of
/// precedence (see `rvs_packet_io::nft`).
pub(super) fn rules(g: &GuardRules) -> HashMap<TakeKey, TakeRanges> {
    let mut out = HashMap::new();
    let none = TakeRanges::default();
    for m in &g.vips {
        let k = match m.l4 {
            None => TakeKey::vip(m.addr),
            Some((proto, port)) => TakeKey::vip_service(m.addr, proto.number(), port),
        };
        out.insert(k, none);
    }
    for lp in &g.local_ports {
        let r = out
            .entry(TakeKey::local_ports(lp.addr, lp.proto.number()))
            .or_insert(none);
        if !r.add(*lp.ports.start(), *lp.ports.end()) {
            tracing::warn!(
                "XDP slow path: more than {} port ranges on {:?} {}: the others stay on AF_PACKET",
                rvs_bpf::xdp::TAKE_RANGES,
                lp.proto,
                lp.addr
            );
        }
    }
    for a in &g.keep_local {
        out.insert(TakeKey::keep(*a), none);
    }
    for m in &g.replies {
        let k = match m.l4 {
            None => TakeKey::real_server(m.addr),
            Some((proto, port)) => TakeKey::real_server_service(m.addr, proto.number(), port),
        };
        out.insert(k, none);
    }
    out
}

/// A worker with both ports: blocks from the XSK (what the program redirected) and from the
/// AF_PACKET tap (what it passed to the host stack), each through [`Worker::step`].
///
/// [`Worker::step`]: worker::Worker::step
pub(super) fn run(me: usize, mut afp: Port, mut xsk: XskPort, cx: Context) -> WorkerReport {
    let stop = cx.stop.clone();
    let mut w = match worker::open(me, cx) {
        Ok(w) => w,
        Err(rep) => return *rep,
    };
    let mut idle = false;
    while !stop.load(Ordering::Relaxed) {
        if idle {
            // Nothing on either port last round: sleep until one has frames.
            if let Err(e) = poll_both(xsk.as_fd(), afp.as_fd(), worker::POLL) {
                w.fail(format!("poll on {}: {e}", xsk.ifname()));
                break;
            }
        }
        let a = match w.step(&mut xsk, Duration::ZERO) {
            Ok(n) => n,
            Err(e) => {
                w.fail(format!("receive on {} (AF_XDP): {e}", xsk.ifname()));
                break;
            }
        };
        let b = match w.step(&mut afp, Duration::ZERO) {
            Ok(n) => n,
            Err(e) => {
                w.fail(format!("receive on {}: {e}", afp.ifname()));
                break;
            }
        };
        idle = a == 0 && b == 0;
    }
    match xsk.xsk_stats() {
        Ok(s) => log_stats(&xsk, &s),
        Err(e) => tracing::warn!("XDP slow path on {}: {e}", xsk.ifname()),
    }
    w.report(&mut afp)
}

fn log_stats(xsk: &XskPort, s: &XskStats) {
    tracing::info!(
        "XDP slow path on {} queue {} (AF_XDP, {}): {} frames received, {} sent on its TX ring, {} to other interfaces, {} transmit errors, kernel drops: {} dropped, {} ring full, {} fill ring empty, {} invalid TX descriptors",
        xsk.ifname(),
        xsk.queue(),
        xsk.mode().name(),
        s.rx_frames,
        s.tx_ring,
        s.tx_other,
        s.tx_errors,
        s.rx_dropped,
        s.rx_ring_full,
        s.rx_fill_empty,
        s.tx_invalid
    );
}

/// Waits at most `timeout` until `a` or `b` is readable.
fn poll_both(a: BorrowedFd<'_>, b: BorrowedFd<'_>, timeout: Duration) -> Result<(), String> {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let mut p = [
        PollFd::new(a, PollFlags::POLLIN),
        PollFd::new(b, PollFlags::POLLIN),
    ];
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    match nix::poll::poll(&mut p, PollTimeout::from(ms)) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
