//! A userspace tunnel decapsulator for real servers of the TUN lab.
//!
//! # Why it exists
//!
//! LVS-TUN sends each client packet to the real server wrapped in an outer IP header (IPIP,
//! protocol 4; or GRE, protocol 47; or GUE, UDP on the `--tun-port`). A real server normally
//! unwraps it with a kernel tunnel device (`tunl0` from the `ipip` module, `gre0`, a `fou`
//! port). The kernel these labs run on has **no ipip, gre or fou support** (`ip link add … type
//! ipip` answers "Unknown device type"), so the lab does the kernel's job in userspace.
//!
//! # How it works
//!
//! Inside the real server's namespace the decapsulator opens
//!
//! * raw IPv4 sockets for protocols 4 (IPv4-in-IPv4), 41 (IPv6-in-IPv4) and 47 (GRE), and the
//!   same three as raw IPv6 sockets (4in6, 6in6, GRE over IPv6) when IPv6 is enabled. A raw
//!   socket gets a copy of every packet of its protocol addressed to the namespace, after
//!   reassembly; because a raw socket took the packet the kernel does *not* answer "protocol
//!   unreachable" even though it has no handler of its own;
//! * optionally a UDP socket on the GUE port (dual stack when IPv6 is enabled, taking IPv6
//!   datagrams with UDP checksum 0 as the kernel's `fou` does, see `gue_socket`);
//! * a TUN device (default name `rvsdec0`, up, `rp_filter` 0, no address).
//!
//! One thread waits on all sockets with `poll(2)` (100 ms ticks, so that stopping is prompt),
//! strips the outer IPv4 header (IPv6 raw sockets already deliver without it), the GRE header
//! (C/K/S optional words, checksum verified when present) or the UDP + GUE header (version 0 with
//! its option words, or version 1 "direct IP"), checks that what is left starts like an IPv4 or
//! IPv6 header, and **writes the inner packet into the TUN device**. For the kernel this looks
//! exactly like the packet arriving on an interface: its destination is the VIP configured on
//! `lo`, so the local stack accepts it (the TUN device has `rp_filter` 0, since the client's
//! address is routed elsewhere) and the socket listening on the VIP answers. The reply is an
//! ordinary packet from the VIP to the client, routed by the real server's routing table
//! straight to the client — the director never sees it, as in LVS-TUN with a kernel tunnel.
//!
//! The decapsulator only creates sockets and the device inside the namespace (from a thread that
//! entered it with `setns(2)`); the sockets stay bound to that namespace, so the worker thread
//! itself can run anywhere. Dropping the [`Decapsulator`] stops the thread and removes the
//! device.

use std::fs::{self, File};
use std::io::{ErrorKind, Read};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{setns, CloneFlags};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{LabError, Result};

/// Name of the TUN device a decapsulator creates unless told otherwise.
pub const DEFAULT_DEV: &str = "rvsdec0";

/// IP protocol numbers we take packets for.
const IPPROTO_IPIP: i32 = 4;
const IPPROTO_IPV6: i32 = 41;
const IPPROTO_GRE: i32 = 47;

/// Largest packet we read; anything larger is cut and then dropped as malformed.
const BUF: usize = 65_536;

/// At most this many packets are read from one socket per wake-up, so that one busy socket
/// cannot starve the others or the stop flag.
const BATCH: usize = 64;

/// What a [`Decapsulator`] accepts.
#[derive(Debug, Clone)]
pub struct DecapConfig {
    /// TUN device name (≤ 15 characters).
    pub dev: String,
    /// Take IPIP / IPv6-in-IP (protocols 4 and 41).
    pub ipip: bool,
    /// Take GRE (protocol 47).
    pub gre: bool,
    /// Take GUE on this UDP port (the `--tun-port` of the dest), if any.
    pub gue_port: Option<u16>,
}

impl Default for DecapConfig {
    fn default() -> Self {
        DecapConfig {
            dev: DEFAULT_DEV.into(),
            ipip: true,
            gre: true,
            gue_port: None,
        }
    }
}

/// Counters of a running decapsulator (monotonic).
#[derive(Debug, Default)]
pub struct DecapStats {
    ipip: AtomicU64,
    gre: AtomicU64,
    gue: AtomicU64,
    dropped: AtomicU64,
}

/// A snapshot of [`DecapStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecapCounters {
    /// Inner packets injected that came as IPIP / IPv6-in-IP.
    pub ipip: u64,
    /// Inner packets injected that came in GRE.
    pub gre: u64,
    /// Inner packets injected that came in GUE.
    pub gue: u64,
    /// Packets dropped: malformed, unknown inner protocol, bad GRE checksum, TUN write error.
    pub dropped: u64,
}

impl DecapStats {
    fn snapshot(&self) -> DecapCounters {
        DecapCounters {
            ipip: self.ipip.load(Ordering::Relaxed),
            gre: self.gre.load(Ordering::Relaxed),
            gue: self.gue.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Kind of socket a packet came from; decides how the outer headers are stripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// IPv4 raw socket of protocol 4 or 41: outer IPv4 header included.
    Raw4Ipip,
    /// IPv4 raw socket of protocol 47: outer IPv4 header, then GRE.
    Raw4Gre,
    /// IPv6 raw socket of protocol 4 or 41: IPv6 raw sockets deliver the payload only.
    Raw6Ipip,
    /// IPv6 raw socket of protocol 47: GRE header first.
    Raw6Gre,
    /// UDP socket: the GUE header first.
    Gue,
}

enum Sock {
    Raw(Socket),
    Udp(UdpSocket),
}

impl Sock {
    fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Sock::Raw(s) => (&*s).read(buf),
            Sock::Udp(s) => s.recv(buf),
        }
    }
}

/// A running userspace decapsulator (see the module docs). Stops when dropped.
#[derive(Debug)]
pub struct Decapsulator {
    stop: Arc<AtomicBool>,
    stats: Arc<DecapStats>,
    thread: Option<JoinHandle<()>>,
    dev: String,
    netns: Option<String>,
}

impl Decapsulator {
    /// Starts a decapsulator inside namespace `netns` (a name under `/run/netns`), or in the
    /// caller's namespace when `None` (the `rvs-lab decap` command runs under `ip netns exec`).
    pub fn start(netns: Option<&str>, config: DecapConfig) -> Result<Decapsulator> {
        if config.dev.is_empty() || config.dev.len() > 15 {
            return Err(LabError::Invalid(format!(
                "TUN device name {:?} must be 1..=15 characters",
                config.dev
            )));
        }
        let (device, socks) = match netns {
            Some(name) => {
                let path = format!("/run/netns/{name}");
                let file = File::open(&path).map_err(|e| LabError::io(path, e))?;
                let cfg = config.clone();
                // The device and the sockets must be created by a thread that is inside the
                // namespace; a scoped thread keeps the caller's own namespace untouched.
                thread::scope(|s| {
                    s.spawn(move || {
                        setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| {
                            LabError::Sys {
                                context: format!("setns into {name}"),
                                source,
                            }
                        })?;
                        open_all(&cfg)
                    })
                    .join()
                    .map_err(|_| LabError::ThreadPanicked(name.to_owned()))?
                })?
            }
            None => open_all(&config)?,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(DecapStats::default());
        let thread = {
            let stop = Arc::clone(&stop);
            let stats = Arc::clone(&stats);
            thread::Builder::new()
                .name(format!("decap-{}", config.dev))
                .spawn(move || run(device, socks, &stop, &stats))
                .map_err(|e| LabError::io("spawning the decapsulator thread", e))?
        };
        Ok(Decapsulator {
            stop,
            stats,
            thread: Some(thread),
            dev: config.dev,
            netns: netns.map(str::to_owned),
        })
    }

    /// The TUN device name.
    pub fn dev(&self) -> &str {
        &self.dev
    }

    /// The namespace it works in (`None`: the process's own).
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// Current counters.
    pub fn counters(&self) -> DecapCounters {
        self.stats.snapshot()
    }

    /// True while the worker thread runs (it only ends when stopped, or if polling fails).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the worker and closes the device (same as dropping it).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // The worker polls in 100 ms ticks, so this join is bounded.
            let _ = t.join();
        }
    }
}

impl Drop for Decapsulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Creates the TUN device and the sockets; must run inside the target namespace.
fn open_all(config: &DecapConfig) -> Result<(tun::Device, Vec<(Sock, Source)>)> {
    let mut tcfg = tun::Configuration::default();
    tcfg.tun_name(&config.dev).up();
    let device = tun::create(&tcfg).map_err(|source| LabError::Tun {
        name: config.dev.clone(),
        source,
    })?;
    // The inner packet's source (the client) is routed via another interface, so reverse path
    // filtering would drop it. `/proc/sys/net` belongs to the namespace of the writing thread.
    let rp = format!("/proc/sys/net/ipv4/conf/{}/rp_filter", config.dev);
    fs::write(&rp, "0").map_err(|e| LabError::io(rp, e))?;

    let mut socks = Vec::new();
    let raw = |domain: Domain, proto: i32| -> std::io::Result<Sock> {
        let s = Socket::new(domain, Type::RAW, Some(Protocol::from(proto)))?;
        s.set_nonblocking(true)?;
        Ok(Sock::Raw(s))
    };
    let mut protos = Vec::new();
    if config.ipip {
        protos.push((IPPROTO_IPIP, Source::Raw4Ipip, Source::Raw6Ipip));
        protos.push((IPPROTO_IPV6, Source::Raw4Ipip, Source::Raw6Ipip));
    }
    if config.gre {
        protos.push((IPPROTO_GRE, Source::Raw4Gre, Source::Raw6Gre));
    }
    let v6 = ipv6_enabled();
    for (proto, src4, src6) in protos {
        socks.push((
            raw(Domain::IPV4, proto)
                .map_err(|e| LabError::io(format!("raw IPv4 socket, protocol {proto}"), e))?,
            src4,
        ));
        if v6 {
            socks.push((
                raw(Domain::IPV6, proto)
                    .map_err(|e| LabError::io(format!("raw IPv6 socket, protocol {proto}"), e))?,
                src6,
            ));
        }
    }
    if let Some(port) = config.gue_port {
        socks.push((Sock::Udp(gue_socket(port, v6)?), Source::Gue));
    }
    Ok((device, socks))
}

/// The GUE socket on `port`: one dual-stack socket when IPv6 is on (`v6`), else plain IPv4;
/// non-blocking.
///
/// Over IPv6 it accepts UDP checksum 0 (`UDP_NO_CHECK6_RX`, RFC 6935/6936 zero checksums for
/// tunnels), as the kernel's `fou` receive socket does (`udp_sock_create6` sets it unless
/// `use_udp6_rx_checksums`): IPVS (and rvsd) send GUE without a UDP checksum unless the dest
/// has `--tun-csum`/`--tun-remcsum`, and a plain IPv6 UDP socket has the kernel drop such
/// datagrams as checksum errors (`Udp6InCsumErrors`).
fn gue_socket(port: u16, v6: bool) -> Result<UdpSocket> {
    let addr: SocketAddr = if v6 {
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0))
    } else {
        SocketAddr::from(([0, 0, 0, 0], port))
    };
    let s = UdpSocket::bind(addr).map_err(|e| LabError::io(format!("GUE port {port}"), e))?;
    if v6 {
        rvs_packet_io::sockopt::set_udp_flag(&s, rvs_packet_io::sockopt::UDP_NO_CHECK6_RX)
            .map_err(|e| LabError::io("setsockopt(UDP_NO_CHECK6_RX) on the GUE socket", e))?;
    }
    s.set_nonblocking(true)
        .map_err(|e| LabError::io("GUE socket", e))?;
    Ok(s)
}

fn ipv6_enabled() -> bool {
    fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6")
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

/// The worker: wait, read, strip, inject, until told to stop.
fn run(device: tun::Device, socks: Vec<(Sock, Source)>, stop: &AtomicBool, stats: &DecapStats) {
    let mut buf = vec![0u8; BUF];
    while !stop.load(Ordering::Relaxed) {
        let mut fds: Vec<PollFd<'_>> = socks
            .iter()
            .map(|(s, _)| {
                let fd = match s {
                    Sock::Raw(r) => r.as_fd(),
                    Sock::Udp(u) => u.as_fd(),
                };
                PollFd::new(fd, PollFlags::POLLIN)
            })
            .collect();
        match poll(&mut fds, PollTimeout::from(100u8)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        for ((sock, source), ready) in socks.iter().zip(ready) {
            if !ready {
                continue;
            }
            for _ in 0..BATCH {
                let n = match sock.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                };
                match inner_packet(*source, &buf[..n]) {
                    Some(inner) if device.send(inner).is_ok() => {
                        let counter = match source {
                            Source::Raw4Ipip | Source::Raw6Ipip => &stats.ipip,
                            Source::Raw4Gre | Source::Raw6Gre => &stats.gre,
                            Source::Gue => &stats.gue,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Strips the encapsulation of a packet read from a socket of kind `source`; `None` when it is
/// malformed or does not carry IPv4/IPv6.
fn inner_packet(source: Source, pkt: &[u8]) -> Option<&[u8]> {
    let inner = match source {
        Source::Raw4Ipip => strip_ipv4(pkt)?.1,
        Source::Raw4Gre => strip_gre(strip_ipv4(pkt)?.1)?,
        Source::Raw6Ipip => pkt,
        Source::Raw6Gre => strip_gre(pkt)?,
        Source::Gue => strip_gue(pkt)?,
    };
    valid_ip(inner).then_some(inner)
}

/// Returns (protocol, payload) of an IPv4 packet, honouring IHL and the total length.
fn strip_ipv4(pkt: &[u8]) -> Option<(u8, &[u8])> {
    let first = *pkt.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*pkt.get(2)?, *pkt.get(3)?]));
    if ihl < 20 || total < ihl || total > pkt.len() {
        return None;
    }
    Some((pkt[9], &pkt[ihl..total]))
}

/// GRE (RFC 2784 / 2890): flags C (checksum), K (key), S (sequence); routing and versions other
/// than 0 are refused, as the kernel's gre0 does.
fn strip_gre(gre: &[u8]) -> Option<&[u8]> {
    let flags = u16::from_be_bytes([*gre.first()?, *gre.get(1)?]);
    let proto = u16::from_be_bytes([*gre.get(2)?, *gre.get(3)?]);
    const C: u16 = 0x8000;
    const R: u16 = 0x4000;
    const K: u16 = 0x2000;
    const S: u16 = 0x1000;
    if flags & R != 0 || flags & 0x0007 != 0 {
        return None;
    }
    if proto != 0x0800 && proto != 0x86dd {
        return None;
    }
    let mut len = 4;
    if flags & C != 0 {
        // The checksum covers the GRE header and payload; a correct one sums to zero.
        if internet_checksum(gre) != 0 {
            return None;
        }
        len += 4;
    }
    if flags & K != 0 {
        len += 4;
    }
    if flags & S != 0 {
        len += 4;
    }
    gre.get(len..)
}

/// GUE (draft-ietf-intarea-gue): version 0 header with `hlen` option words, control messages
/// dropped; version 1 is the "direct IP" form where the UDP payload is the IP packet itself.
fn strip_gue(udp_payload: &[u8]) -> Option<&[u8]> {
    let first = *udp_payload.first()?;
    match first >> 6 {
        0 => {
            let control = first & 0x20 != 0;
            let hlen = usize::from(first & 0x1f) * 4;
            let proto = *udp_payload.get(1)?;
            if control || (proto != 4 && proto != 41) {
                return None;
            }
            udp_payload.get(4 + hlen..)
        }
        1 => Some(udp_payload),
        _ => None,
    }
}

/// True when `pkt` starts like an IPv4 or IPv6 packet that fits in it.
fn valid_ip(pkt: &[u8]) -> bool {
    match pkt.first().map(|b| b >> 4) {
        Some(4) => strip_ipv4(pkt).is_some(),
        Some(6) => pkt.len() >= 40,
        _ => false,
    }
}

/// RFC 1071 one's complement sum, folded and complemented.
fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // `sum` is now ≤ 0xffff, so the cast keeps every bit.
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid IPv4 header (20 bytes, total length 20, protocol `proto`).
    fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + payload.len()).unwrap();
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        let c = internet_checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn ipip_strips_outer_header() {
        let inner = ipv4(17, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let outer = ipv4(4, &inner);
        assert_eq!(inner_packet(Source::Raw4Ipip, &outer), Some(&inner[..]));
    }

    #[test]
    fn ipip_refuses_truncated_or_non_ip() {
        let inner = ipv4(17, &[0; 8]);
        let outer = ipv4(4, &inner);
        assert_eq!(
            inner_packet(Source::Raw4Ipip, &outer[..outer.len() - 1]),
            None
        );
        let junk = ipv4(4, &[0x00; 30]);
        assert_eq!(inner_packet(Source::Raw4Ipip, &junk), None);
        assert_eq!(inner_packet(Source::Raw4Ipip, &[]), None);
    }

    #[test]
    fn gre_with_and_without_checksum_and_key() {
        let inner = ipv4(6, &[0; 20]);
        let mut plain = vec![0, 0, 0x08, 0x00];
        plain.extend_from_slice(&inner);
        assert_eq!(inner_packet(Source::Raw6Gre, &plain), Some(&inner[..]));

        let mut csum = vec![0x80, 0, 0x08, 0x00, 0, 0, 0, 0];
        csum.extend_from_slice(&inner);
        let c = internet_checksum(&csum);
        csum[4..6].copy_from_slice(&c.to_be_bytes());
        let outer = ipv4(47, &csum);
        assert_eq!(inner_packet(Source::Raw4Gre, &outer), Some(&inner[..]));
        // One flipped bit and the checksum no longer holds.
        let mut bad = csum.clone();
        bad[10] ^= 1;
        assert_eq!(inner_packet(Source::Raw6Gre, &bad), None);

        let mut key = vec![0x20, 0, 0x08, 0x00, 0, 0, 0, 7];
        key.extend_from_slice(&inner);
        assert_eq!(inner_packet(Source::Raw6Gre, &key), Some(&inner[..]));

        let mut routing = vec![0x40, 0, 0x08, 0x00];
        routing.extend_from_slice(&inner);
        assert_eq!(inner_packet(Source::Raw6Gre, &routing), None);
        let mut other_proto = vec![0, 0, 0x88, 0x47];
        other_proto.extend_from_slice(&inner);
        assert_eq!(inner_packet(Source::Raw6Gre, &other_proto), None);
    }

    #[test]
    fn gue_versions_and_options() {
        let inner = ipv4(17, &[0; 8]);
        let mut v0 = vec![0x00, 4, 0, 0];
        v0.extend_from_slice(&inner);
        assert_eq!(inner_packet(Source::Gue, &v0), Some(&inner[..]));

        // hlen = 2 words of options (the remote checksum offload layout of docs/internals/forwarding.md#tunnelling).
        let mut opts = vec![0x02, 4, 0, 1, 0x80, 0, 0, 0, 0, 20, 0, 26];
        opts.extend_from_slice(&inner);
        assert_eq!(inner_packet(Source::Gue, &opts), Some(&inner[..]));

        assert_eq!(inner_packet(Source::Gue, &inner), Some(&inner[..]));

        let mut control = vec![0x20, 4, 0, 0];
        control.extend_from_slice(&inner);
        assert_eq!(inner_packet(Source::Gue, &control), None);
        let mut bad_proto = vec![0x00, 17, 0, 0];
        bad_proto.extend_from_slice(&inner);
        assert_eq!(inner_packet(Source::Gue, &bad_proto), None);
    }

    /// A GUE datagram over IPv6 without a UDP checksum (what rvsd and IPVS send by default)
    /// reaches the decapsulator's socket; before `UDP_NO_CHECK6_RX` the kernel dropped it as
    /// a checksum error. Unprivileged: the sender zeroes its checksums with
    /// `UDP_NO_CHECK6_TX` on `::1` of the caller's namespace.
    #[test]
    fn gue_socket_takes_zero_checksum_udp_over_ipv6() {
        rvs_require::require_that!(ipv6_enabled(), "IPv6 is disabled on this host");
        if !rvs_require::ipv6_loopback() {
            return;
        }
        // A free port: bind an ephemeral one, note it, let it go.
        let port = UdpSocket::bind("[::]:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let rx = gue_socket(port, true).expect("GUE socket");
        let tx = UdpSocket::bind("[::1]:0").unwrap();
        rvs_packet_io::sockopt::set_udp_flag(&tx, rvs_packet_io::sockopt::UDP_NO_CHECK6_TX)
            .expect("UDP_NO_CHECK6_TX");
        let inner = ipv4(17, &[0; 8]);
        let mut gue = vec![0x00, 4, 0, 0];
        gue.extend_from_slice(&inner);
        tx.send_to(&gue, ("::1", port)).unwrap();
        let mut buf = [0u8; 256];
        let mut got = None;
        // Bounded: 100 polls of 10 ms.
        for _ in 0..100 {
            match rx.recv(&mut buf) {
                Ok(n) => {
                    got = Some(n);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
        let n = got.expect("zero-checksum GUE over IPv6 was dropped");
        assert_eq!(inner_packet(Source::Gue, &buf[..n]), Some(&inner[..]));
    }

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 §3 example: sum of these words is 0xddf2, complement 0x220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&data), 0x220d);
    }

    #[test]
    fn bad_device_name_is_refused_before_any_syscall() {
        let cfg = DecapConfig {
            dev: "a-name-that-is-too-long".into(),
            ..DecapConfig::default()
        };
        assert!(matches!(
            Decapsulator::start(None, cfg),
            Err(LabError::Invalid(_))
        ));
    }
}
