//! AF_XDP backend: an XSK socket bound to one receive queue of one interface, fed by the XDP
//! program's `bpf_redirect_map` into an `XSKMAP` (the packet plane's slow path,
//! docs/internals/packet-plane.md#the-af_xdp-slow-path).
//!
//! # Memory
//!
//! The socket owns a UMEM: an anonymous mapping cut into [`CHUNK`]-byte chunks, one frame
//! each, registered with the kernel (`XDP_UMEM_REG`). Four single-producer single-consumer
//! rings, each mapped from the socket, move chunk addresses between us and the kernel:
//!
//! * **fill** (we produce): empty chunks the kernel may receive into;
//! * **rx** (kernel produces): descriptors `{addr, len}` of received frames;
//! * **tx** (we produce): descriptors of frames to send;
//! * **completion** (kernel produces): chunks whose transmission is done.
//!
//! A chunk is always in exactly one place: a ring, a block being walked, or our free list.
//!
//! # The pull-style port
//!
//! [`XskPort`] implements [`PacketPort`] as the AF_PACKET [`Port`](crate::Port) does: a block
//! is up to [`XskConfig::batch`] RX descriptors; its frames are the UMEM chunks themselves
//! (the plane rewrites them in place, no copy of ours). A frame marked for the interface it
//! came in on goes onto the TX ring as it is (the chunk travels; it comes back through the
//! completion ring). A frame marked for another interface is sent with `sendmmsg` on an
//! AF_PACKET socket straight from the chunk (an XSK transmits only on its own queue), and its
//! chunk is refilled once that call returned. Unmarked frames' chunks go back to the fill
//! ring when the block is finished.
//!
//! # What the ring does not say
//!
//! AF_PACKET's ring header tells the packet type and whether the transport checksum is
//! still partial (`TP_STATUS_CSUMNOTREADY`); an XSK descriptor has neither. The packet type
//! is read from the destination MAC. A partial checksum (`CHECKSUM_PARTIAL`: a local sender,
//! or a container on a veth, hands its packet over with only the pseudo-header sum in the
//! checksum field) is recognised by exactly that: a TCP or UDP checksum field equal to the
//! folded pseudo-header sum is reported by [`RxFrame::checksum_not_ready`], so the data plane
//! completes it before rewriting. A complete checksum that happens to have that value is
//! recomputed to itself, so the test never damages a good packet.
//!
//! # Safety model
//!
//! The rings and the UMEM are `MAP_SHARED`/registered memory the kernel writes concurrently.
//! Ring indices are read with acquire and published with release ordering (the kernel uses
//! `smp_load_acquire`/`smp_store_release` on the same words); entries are only read between
//! our consumer index and the producer index we loaded, and only written between our
//! producer index and the consumer index plus the ring size. Descriptor addresses from the
//! kernel are bounds-checked against the UMEM before any slice is formed.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::afpacket::{last_err, setsockopt, RawSocket};
use crate::{Error, FrameSink, PacketPort, PortStats, RxBlock, RxFrame};

/// Bytes per UMEM chunk (one frame). Aligned mode needs a power of two.
pub const CHUNK: u32 = 4096;

/// The longest frame the XDP program redirects into an XSK (`RVS_XSK_MAX_FRAME` in
/// `crates/bpf/bpf/include/rvs_xdp.h`): a chunk less the 256 bytes of XDP headroom the kernel
/// keeps in front of a copied frame, rounded down. Longer frames (GRO/GSO super-frames) stay on
/// the AF_PACKET path, which cuts them into segments.
pub const MAX_FRAME: usize = 3584;

/// How the socket binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XskBind {
    /// Zero-copy where the driver supports it, else copy.
    #[default]
    Auto,
    /// Copy mode (`XDP_COPY`): the kernel copies each frame into the UMEM. The only mode of
    /// generic XDP and of drivers without AF_XDP support (veth).
    Copy,
    /// Zero-copy (`XDP_ZEROCOPY`): the driver receives into the UMEM; fails where unsupported.
    ZeroCopy,
}

/// The mode a bound socket runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XskMode {
    /// The kernel copies frames between its buffers and the UMEM.
    Copy,
    /// The driver DMAs into and out of the UMEM.
    ZeroCopy,
}

impl XskMode {
    /// `copy` / `zerocopy`.
    pub fn name(self) -> &'static str {
        match self {
            XskMode::Copy => "copy",
            XskMode::ZeroCopy => "zerocopy",
        }
    }
}

/// Configuration of an [`XskPort`].
#[derive(Debug, Clone)]
pub struct XskConfig {
    /// The receive queue to bind to (the XDP program redirects a packet to the socket of the
    /// queue it arrived on).
    pub queue: u32,
    /// Entries of each of the four rings: a power of two.
    pub ring_size: u32,
    /// UMEM chunks; at least twice `ring_size` (a full fill ring plus frames in flight).
    pub chunks: u32,
    /// Copy or zero-copy.
    pub bind: XskBind,
    /// Most RX descriptors per block.
    pub batch: usize,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            queue: 0,
            ring_size: 1024,
            chunks: 2048,
            bind: XskBind::Auto,
            batch: 256,
        }
    }
}

/// Counters of an XSK port beyond [`PortStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Frames received from the RX ring.
    pub rx_frames: u64,
    /// Frames put on the TX ring (received ones sent back out, and copies from
    /// [`FrameSink::send_frames`]).
    pub tx_ring: u64,
    /// Received frames sent to another interface over AF_PACKET.
    pub tx_other: u64,
    /// Frames that could not be sent (no free chunk, TX ring full, AF_PACKET refused).
    pub tx_errors: u64,
    /// The kernel's counters (`XDP_STATISTICS`): frames dropped (too big for a chunk, ...).
    pub rx_dropped: u64,
    /// ... dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// ... dropped because the fill ring was empty.
    pub rx_fill_empty: u64,
    /// TX descriptors the kernel rejected.
    pub tx_invalid: u64,
}

/// A mapping we own and unmap on drop.
#[derive(Debug)]
struct Mmap {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone (the port that holds it lends slices only
// for the life of a borrow of the port), so moving it to another thread is sound.
unsafe impl Send for Mmap {}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly one mapping created by `Mmap::new`, unmapped once;
        // no slice into it outlives the port that owns it.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

impl Mmap {
    /// `fd == -1`: anonymous private memory (the UMEM); else the socket's ring at `offset`.
    fn new(
        len: usize,
        fd: RawFd,
        offset: u64,
        what: &'static str,
        ifname: &str,
    ) -> Result<Mmap, Error> {
        let (flags, off) = if fd < 0 {
            (
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                0,
            )
        } else {
            (libc::MAP_SHARED | libc::MAP_POPULATE, offset as libc::off_t)
        };
        // SAFETY: a fresh mapping at an address of the kernel's choice; the result is checked.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                off,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::sys(what, ifname, last_err()));
        }
        Ok(Mmap {
            base: NonNull::new(base.cast()).expect("mmap returned a non-null mapping"),
            len,
        })
    }
}

/// One of the four rings: indices shared with the kernel, entries of `T`.
#[derive(Debug)]
struct Ring {
    map: Mmap,
    producer: usize,
    consumer: usize,
    flags: usize,
    desc: usize,
    mask: u32,
    size: u32,
    /// Our own index: the producer for fill/tx, the consumer for rx/completion.
    local: u32,
}

impl Ring {
    fn map(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        entries: u32,
        entry: usize,
        pgoff: u64,
        ifname: &str,
        (what, producer): (&'static str, bool),
    ) -> Result<Ring, Error> {
        let len = off.desc as usize + entries as usize * entry;
        let map = Mmap::new(len, fd, pgoff, what, ifname)?;
        let fits = |o: u64, n: usize| (o as usize).checked_add(n).is_some_and(|e| e <= len);
        if !(fits(off.producer, 4) && fits(off.consumer, 4) && fits(off.flags, 4)) {
            return Err(Error::Config(format!(
                "{what}: ring offsets outside the mapping"
            )));
        }
        let mut r = Ring {
            map,
            producer: off.producer as usize,
            consumer: off.consumer as usize,
            flags: off.flags as usize,
            desc: off.desc as usize,
            mask: entries - 1,
            size: entries,
            local: 0,
        };
        r.local = if producer {
            r.word(r.producer).load(Ordering::Relaxed)
        } else {
            r.word(r.consumer).load(Ordering::Relaxed)
        };
        Ok(r)
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off + 4 <= len` was checked in `map`; the kernel aligns the index words to
        // at least 4 bytes (they are cache-line aligned); AtomicU32 has u32's layout, and the
        // kernel only accesses the word atomically too.
        unsafe { &*self.map.base.as_ptr().add(off).cast::<AtomicU32>() }
    }

    fn flags(&self) -> u32 {
        self.word(self.flags).load(Ordering::Relaxed)
    }

    /// Consumer side: entries the kernel produced that we have not consumed.
    fn available(&self) -> u32 {
        self.word(self.producer)
            .load(Ordering::Acquire)
            .wrapping_sub(self.local)
    }

    /// Producer side: free entries.
    fn room(&self) -> u32 {
        let cons = self.word(self.consumer).load(Ordering::Acquire);
        self.size - self.local.wrapping_sub(cons)
    }

    /// Producer side: true when the kernel consumed everything we produced.
    fn drained(&self) -> bool {
        self.word(self.consumer).load(Ordering::Acquire) == self.local
    }

    /// Pointer to entry `i` (any index; masked) of `T`-sized entries.
    fn entry<T>(&self, i: u32) -> *mut T {
        let at = self.desc + (i & self.mask) as usize * size_of::<T>();
        // SAFETY: `desc + size * size_of::<T>() <= len` by construction in `map` (T is the
        // ring's entry type), and `i & mask < size`.
        unsafe { self.map.base.as_ptr().add(at).cast::<T>() }
    }

    /// Producer side: makes `n` written entries visible to the kernel.
    fn publish(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.word(self.producer)
            .store(self.local, Ordering::Release);
    }

    /// Consumer side: gives `n` read entries back to the kernel.
    fn release(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.word(self.consumer)
            .store(self.local, Ordering::Release);
    }
}

/// An AF_XDP socket on one receive queue of one interface, with its UMEM and rings.
///
/// Not `Sync`: a worker owns its port.
pub struct XskPort {
    // Field order matters for Drop: the rings and the UMEM are unmapped before the socket
    // closes (the kernel keeps the UMEM pages pinned until then anyway).
    rx: Ring,
    tx: Ring,
    fill: Ring,
    comp: Ring,
    umem: Mmap,
    fd: OwnedFd,
    /// AF_PACKET transmit socket for frames to other interfaces.
    side: RawSocket,
    ifname: String,
    ifindex: u32,
    mac: [u8; 6],
    queue: u32,
    mode: XskMode,
    /// Chunks (their addresses) that are in no ring.
    free: Vec<u64>,
    /// The block being walked: its descriptors, and the chunks to refill after it.
    descs: Vec<libc::xdp_desc>,
    recycle: Vec<u64>,
    batch: usize,
    stats: XskStats,
}

impl std::fmt::Debug for XskPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskPort")
            .field("ifname", &self.ifname)
            .field("queue", &self.queue)
            .field("mode", &self.mode)
            .field("free", &self.free.len())
            .finish_non_exhaustive()
    }
}

fn set_int(
    fd: RawFd,
    name: libc::c_int,
    v: u32,
    op: &'static str,
    ifname: &str,
) -> Result<(), Error> {
    setsockopt(fd, libc::SOL_XDP, name, &(v as libc::c_int)).map_err(|e| Error::sys(op, ifname, e))
}

fn get<T>(fd: RawFd, name: libc::c_int, op: &'static str, ifname: &str) -> Result<T, Error> {
    // SAFETY: only used with plain-old-data kernel structs (all-zero is valid).
    let mut v: T = unsafe { zeroed() };
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` and `len` describe a writable buffer of `T`'s size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            name,
            ptr::addr_of_mut!(v).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(Error::sys(op, ifname, last_err()));
    }
    if len as usize != size_of::<T>() {
        return Err(Error::Config(format!(
            "{op}: the kernel answered {len} bytes, expected {}",
            size_of::<T>()
        )));
    }
    Ok(v)
}

impl XskPort {
    /// Opens an XSK on `ifname` queue `cfg.queue`: registers the UMEM, maps the rings, fills
    /// the fill ring and binds. The interface needs an XDP program that redirects into an
    /// `XSKMAP` holding [`XskPort::as_raw_fd`] for the queue, or the socket receives nothing.
    pub fn open(ifname: &str, cfg: &XskConfig) -> Result<XskPort, Error> {
        if !cfg.ring_size.is_power_of_two() || cfg.ring_size < 8 {
            return Err(Error::Config(format!(
                "XSK ring size {} is not a power of two of at least 8",
                cfg.ring_size
            )));
        }
        if cfg.chunks < 2 * cfg.ring_size || cfg.chunks > (1 << 20) {
            return Err(Error::Config(format!(
                "XSK UMEM of {} chunks: between twice the ring size ({}) and 2^20",
                cfg.chunks,
                2 * cfg.ring_size
            )));
        }
        if cfg.batch == 0 {
            return Err(Error::Config("XSK batch must be at least 1".into()));
        }
        let cname = CString::new(ifname)
            .map_err(|_| Error::Config(format!("interface name {ifname:?} contains NUL")))?;
        // SAFETY: `cname` is a valid NUL-terminated string for the duration of the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(Error::sys("if_nametoindex", ifname, last_err()));
        }
        let side = RawSocket::open(ifname, 64)?;
        // Protocol 0: a transmit-only socket that receives nothing.
        side.bind(0)?;
        let (mac, _) = side.identity();
        // SAFETY: plain socket(2) call; the returned fd is checked before use.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(Error::sys("socket(AF_XDP)", ifname, last_err()));
        }
        // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sfd = fd.as_raw_fd();
        let umem_len = cfg.chunks as usize * CHUNK as usize;
        let umem = Mmap::new(umem_len, -1, 0, "mmap(UMEM)", ifname)?;
        let reg = libc::xdp_umem_reg {
            addr: umem.base.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: CHUNK,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(sfd, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg)
            .map_err(|e| Error::sys("setsockopt(XDP_UMEM_REG)", ifname, e))?;
        let n = cfg.ring_size;
        set_int(
            sfd,
            libc::XDP_UMEM_FILL_RING,
            n,
            "setsockopt(XDP_UMEM_FILL_RING)",
            ifname,
        )?;
        set_int(
            sfd,
            libc::XDP_UMEM_COMPLETION_RING,
            n,
            "setsockopt(XDP_UMEM_COMPLETION_RING)",
            ifname,
        )?;
        set_int(sfd, libc::XDP_RX_RING, n, "setsockopt(XDP_RX_RING)", ifname)?;
        set_int(sfd, libc::XDP_TX_RING, n, "setsockopt(XDP_TX_RING)", ifname)?;
        let off: libc::xdp_mmap_offsets = get(
            sfd,
            libc::XDP_MMAP_OFFSETS,
            "getsockopt(XDP_MMAP_OFFSETS)",
            ifname,
        )?;
        let dsz = size_of::<libc::xdp_desc>();
        let rx = Ring::map(
            sfd,
            &off.rx,
            n,
            dsz,
            libc::XDP_PGOFF_RX_RING as u64,
            ifname,
            ("mmap(XSK rx ring)", false),
        )?;
        let tx = Ring::map(
            sfd,
            &off.tx,
            n,
            dsz,
            libc::XDP_PGOFF_TX_RING as u64,
            ifname,
            ("mmap(XSK tx ring)", true),
        )?;
        let fill = Ring::map(
            sfd,
            &off.fr,
            n,
            8,
            libc::XDP_UMEM_PGOFF_FILL_RING,
            ifname,
            ("mmap(XSK fill ring)", true),
        )?;
        let comp = Ring::map(
            sfd,
            &off.cr,
            n,
            8,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            ifname,
            ("mmap(XSK completion ring)", false),
        )?;
        let mut port = XskPort {
            rx,
            tx,
            fill,
            comp,
            umem,
            fd,
            side,
            ifname: ifname.to_owned(),
            ifindex,
            mac,
            queue: cfg.queue,
            mode: XskMode::Copy,
            free: (0..cfg.chunks)
                .rev()
                .map(|i| u64::from(i) * u64::from(CHUNK))
                .collect(),
            descs: Vec::with_capacity(cfg.batch),
            recycle: Vec::with_capacity(cfg.batch),
            batch: cfg.batch,
            stats: XskStats::default(),
        };
        // Receive buffers before the first frame can arrive.
        port.refill();
        let bind = |flags: u16| {
            let sa = libc::sockaddr_xdp {
                sxdp_family: libc::AF_XDP as u16,
                sxdp_flags: flags | libc::XDP_USE_NEED_WAKEUP,
                sxdp_ifindex: ifindex,
                sxdp_queue_id: cfg.queue,
                sxdp_shared_umem_fd: 0,
            };
            // SAFETY: `sa` is a valid sockaddr_xdp and the length passed is its size.
            let rc = unsafe {
                libc::bind(
                    sfd,
                    ptr::addr_of!(sa).cast(),
                    size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                Err(last_err())
            } else {
                Ok(())
            }
        };
        let bound = match cfg.bind {
            XskBind::Copy => bind(libc::XDP_COPY),
            XskBind::ZeroCopy => bind(libc::XDP_ZEROCOPY),
            XskBind::Auto => bind(libc::XDP_ZEROCOPY).or_else(|_| bind(libc::XDP_COPY)),
        };
        bound.map_err(|e| Error::sys("bind(AF_XDP)", ifname, e))?;
        let opts: libc::xdp_options =
            get(sfd, libc::XDP_OPTIONS, "getsockopt(XDP_OPTIONS)", ifname)?;
        port.mode = if opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0 {
            XskMode::ZeroCopy
        } else {
            XskMode::Copy
        };
        Ok(port)
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The receive queue the socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Copy or zero-copy, as the kernel reports it.
    pub fn mode(&self) -> XskMode {
        self.mode
    }

    /// The socket descriptor: what goes into the `XSKMAP`, and for an external poller.
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The XSK counters, with the kernel's (`XDP_STATISTICS`).
    pub fn xsk_stats(&mut self) -> Result<XskStats, Error> {
        let k: libc::xdp_statistics = get(
            self.fd.as_raw_fd(),
            libc::XDP_STATISTICS,
            "getsockopt(XDP_STATISTICS)",
            &self.ifname,
        )?;
        let mut s = self.stats;
        let (_, side_errors) = self.side.tx_counts();
        s.tx_errors += side_errors;
        s.rx_dropped = k.rx_dropped;
        s.rx_ring_full = k.rx_ring_full;
        s.rx_fill_empty = k.rx_fill_ring_empty_descs;
        s.tx_invalid = k.tx_invalid_descs;
        Ok(s)
    }

    /// Gives free chunks to the kernel to receive into, and wakes the driver when it asks.
    fn refill(&mut self) {
        let n = self.fill.room().min(self.free.len() as u32);
        for k in 0..n {
            let addr = self.free.pop().expect("counted above");
            // SAFETY: entry `local + k` is between our producer index and the kernel's
            // consumer index plus the ring size (`room`), so the kernel does not read it yet.
            unsafe {
                ptr::write(
                    self.fill.entry::<u64>(self.fill.local.wrapping_add(k)),
                    addr,
                )
            };
        }
        if n > 0 {
            self.fill.publish(n);
        }
        if self.fill.flags() & libc::XDP_RING_NEED_WAKEUP != 0 {
            // SAFETY: a zero-length, non-blocking recvfrom on our socket: no buffer is touched.
            unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    ptr::null_mut(),
                    ptr::null_mut(),
                )
            };
        }
    }

    /// Takes back the chunks whose transmission completed.
    fn reap(&mut self) {
        let n = self.comp.available();
        for k in 0..n {
            // SAFETY: entries between our consumer index and the producer index loaded (with
            // acquire) by `available` were written by the kernel and are ours to read.
            let addr =
                unsafe { ptr::read(self.comp.entry::<u64>(self.comp.local.wrapping_add(k))) };
            self.free.push(addr & !u64::from(CHUNK - 1));
        }
        if n > 0 {
            self.comp.release(n);
        }
    }

    /// Puts a frame at UMEM offset `addr` on the TX ring; false when the ring is full.
    fn tx_push(&mut self, addr: u64, len: u32) -> bool {
        if self.tx.room() == 0 {
            self.kick();
            if self.tx.room() == 0 {
                return false;
            }
        }
        let d = libc::xdp_desc {
            addr,
            len,
            options: 0,
        };
        // SAFETY: `room() > 0`: the entry at our producer index is not the kernel's.
        unsafe { ptr::write(self.tx.entry::<libc::xdp_desc>(self.tx.local), d) };
        self.tx.publish(1);
        self.stats.tx_ring += 1;
        true
    }

    /// Makes the kernel send what is on the TX ring. In copy mode the `sendto` does the
    /// transmission itself, a bounded number of frames per call (the kernel answers EAGAIN
    /// when it stopped for its budget), so it is repeated until the ring is drained; in
    /// zero-copy mode it only wakes the driver, when the driver asks for it.
    fn kick(&mut self) {
        for _ in 0..256 {
            if self.tx.drained() {
                break;
            }
            if self.mode == XskMode::ZeroCopy && self.tx.flags() & libc::XDP_RING_NEED_WAKEUP == 0 {
                break;
            }
            // SAFETY: a zero-length, non-blocking sendto on our socket: no buffer is read.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    ptr::null(),
                    0,
                )
            };
            if rc < 0 {
                match last_err().raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS)
                    | Some(libc::EINTR) => {}
                    // ENETDOWN, ENXIO...: the frames stay queued for a later kick.
                    _ => break,
                }
            }
            if self.mode == XskMode::ZeroCopy {
                break;
            }
        }
        self.reap();
    }

    /// Waits up to `timeout` for received frames and lends out the next block of them.
    pub fn next_block(&mut self, timeout: Duration) -> Result<Option<XskBlock<'_>>, Error> {
        self.reap();
        self.refill();
        if self.rx.available() == 0 {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: `pfd` is one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let e = last_err();
                if e.raw_os_error() == Some(libc::EINTR) {
                    return Ok(None);
                }
                return Err(Error::sys("poll", &self.ifname, e));
            }
            if self.rx.available() == 0 {
                return Ok(None);
            }
        }
        let n = self.rx.available().min(self.batch as u32);
        self.descs.clear();
        for k in 0..n {
            // SAFETY: as in `reap`: entries up to the producer index are the kernel's writes.
            let d = unsafe {
                ptr::read(
                    self.rx
                        .entry::<libc::xdp_desc>(self.rx.local.wrapping_add(k)),
                )
            };
            self.descs.push(d);
        }
        // The descriptors are copied out; their chunks are ours until we give them back.
        self.rx.release(n);
        self.stats.rx_frames += u64::from(n);
        Ok(Some(XskBlock {
            port: self,
            next: 0,
            current: None,
        }))
    }

    /// Counters in the shape every port reports.
    pub fn stats(&mut self) -> Result<PortStats, Error> {
        let x = self.xsk_stats()?;
        let drops = x.rx_dropped + x.rx_ring_full + x.rx_fill_empty;
        Ok(PortStats {
            rx_frames: x.rx_frames,
            kernel_packets: x.rx_frames + drops,
            kernel_drops: drops,
            tx_frames: x.tx_ring + x.tx_other,
            tx_errors: x.tx_errors + x.tx_invalid,
            ..PortStats::default()
        })
    }
}

/// The packet type AF_PACKET would report, from the destination MAC.
fn pkt_type(frame: &[u8], mac: &[u8; 6]) -> u8 {
    match frame.get(..6) {
        Some(d) if d == [0xff; 6] => libc::PACKET_BROADCAST,
        Some(d) if d[0] & 1 != 0 => libc::PACKET_MULTICAST,
        Some(d) if d == mac => libc::PACKET_HOST,
        _ => libc::PACKET_OTHERHOST,
    }
}

fn be16(b: &[u8], at: usize) -> u32 {
    u32::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// True when `frame` (Ethernet, IPv4 without fragmentation or IPv6 without extension headers,
/// TCP or UDP) carries a partial checksum: its checksum field holds the folded
/// pseudo-header sum, as a `CHECKSUM_PARTIAL` packet does (see the module docs).
pub(crate) fn partial_checksum(frame: &[u8]) -> bool {
    let Some(&[t0, t1]) = frame.get(12..14) else {
        return false;
    };
    let ip = &frame[14..];
    let (sum, proto, l4) = match u16::from_be_bytes([t0, t1]) {
        0x0800 => {
            if ip.len() < 20 || ip[0] >> 4 != 4 {
                return false;
            }
            let ihl = usize::from(ip[0] & 0xf) * 4;
            let total = be16(ip, 2) as usize;
            if ihl < 20 || total < ihl || total > ip.len() || be16(ip, 6) & 0x3fff != 0 {
                return false;
            }
            let mut s = 0u32;
            for at in (12..20).step_by(2) {
                s += be16(ip, at);
            }
            s += u32::from(ip[9]) + (total - ihl) as u32;
            (s, ip[9], &ip[ihl..total])
        }
        0x86dd => {
            if ip.len() < 40 || ip[0] >> 4 != 6 {
                return false;
            }
            let plen = be16(ip, 4) as usize;
            if 40 + plen > ip.len() {
                return false;
            }
            let mut s = 0u32;
            for at in (8..40).step_by(2) {
                s += be16(ip, at);
            }
            s += u32::from(ip[6]) + plen as u32;
            (s, ip[6], &ip[40..40 + plen])
        }
        _ => return false,
    };
    let at = match proto {
        6 => 16,
        17 => 6,
        _ => return false,
    };
    if l4.len() < at + 2 {
        return false;
    }
    let field = be16(l4, at) as u16;
    let f = fold(sum);
    field == f || (f == 0xffff && field == 0)
}

/// A block of received frames lent out by [`XskPort::next_block`]; see the module docs for
/// where each frame's chunk goes when the walk moves past it.
pub struct XskBlock<'a> {
    port: &'a mut XskPort,
    next: usize,
    current: Option<RxFrame<'a>>,
}

impl std::fmt::Debug for XskBlock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskBlock")
            .field("frames", &self.port.descs.len())
            .field("next", &self.next)
            .finish()
    }
}

impl XskBlock<'_> {
    /// The chunk of descriptor `i` of the block.
    fn chunk(&self, i: usize) -> u64 {
        self.port.descs[i].addr & !u64::from(CHUNK - 1)
    }

    /// Sends (or schedules the refill of) the frame last lent out.
    fn retire_current(&mut self) {
        let Some(frame) = self.current.take() else {
            return;
        };
        let chunk = self.chunk(self.next - 1);
        let port = &mut *self.port;
        match frame.tx_ifindex() {
            Some(ix) if ix == port.ifindex => {
                let addr = frame.data().as_ptr() as u64 - port.umem.base.as_ptr() as u64;
                if !port.tx_push(addr, frame.data().len() as u32) {
                    port.stats.tx_errors += 1;
                    port.recycle.push(chunk);
                }
            }
            Some(ix) => {
                let (p, l) = (frame.data().as_ptr(), frame.data().len());
                // SAFETY: the frame lies in a chunk of this block, which goes back to the
                // kernel only after the flush in `Drop`, and nothing refers to it any more.
                unsafe { port.side.queue(p, l, ix) };
                port.stats.tx_other += 1;
                port.recycle.push(chunk);
            }
            None => port.recycle.push(chunk),
        }
    }
}

impl<'a> RxBlock<'a> for XskBlock<'a> {
    fn next_frame(&mut self) -> Option<&mut RxFrame<'a>> {
        self.retire_current();
        while self.next < self.port.descs.len() {
            let d = self.port.descs[self.next];
            self.next += 1;
            let (addr, len) = (d.addr as usize, d.len as usize);
            if addr.checked_add(len).is_none_or(|e| e > self.port.umem.len) || len < 14 {
                // Never from a sane kernel; the chunk (if any) is given back.
                let chunk = self.chunk(self.next - 1);
                if (chunk as usize) < self.port.umem.len {
                    self.port.recycle.push(chunk);
                }
                continue;
            }
            // SAFETY: `addr + len <= umem.len` (checked above); the chunk is ours from the
            // RX ring until `retire_current`/`Drop` gives it away, chunks of a block do not
            // overlap, and the previous frame's slice was given up in `retire_current`.
            let data: &'a mut [u8] = unsafe {
                std::slice::from_raw_parts_mut(self.port.umem.base.as_ptr().add(addr), len)
            };
            let kind = pkt_type(data, &self.port.mac);
            let partial = partial_checksum(data);
            self.current = Some(RxFrame::new(data, self.port.ifindex).with_meta(kind, partial));
            return self.current.as_mut();
        }
        None
    }

    fn finish(self) {}
}

impl Drop for XskBlock<'_> {
    fn drop(&mut self) {
        self.retire_current();
        // Frames not walked go back as they are.
        while self.next < self.port.descs.len() {
            let chunk = self.chunk(self.next);
            self.port.recycle.push(chunk);
            self.next += 1;
        }
        let port = &mut *self.port;
        // Frames pointing into this block's chunks leave before the chunks are reused.
        port.side.flush();
        port.kick();
        let done = std::mem::take(&mut port.recycle);
        port.free.extend_from_slice(&done);
        port.recycle = done;
        port.recycle.clear();
        port.refill();
    }
}

impl AsFd for XskPort {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl FrameSink for XskPort {
    /// Copies each frame into a free chunk and sends it on the TX ring.
    fn send_frames(&mut self, frames: &[&[u8]]) -> usize {
        let mut taken = 0;
        for f in frames {
            if f.len() > (CHUNK as usize) {
                self.stats.tx_errors += 1;
                continue;
            }
            if self.free.is_empty() {
                self.kick();
            }
            let Some(addr) = self.free.pop() else {
                self.stats.tx_errors += 1;
                continue;
            };
            // SAFETY: the chunk at `addr` is free (in no ring, lent to no block), inside the
            // UMEM, and `f.len() <= CHUNK`.
            unsafe {
                ptr::copy_nonoverlapping(
                    f.as_ptr(),
                    self.umem.base.as_ptr().add(addr as usize),
                    f.len(),
                );
            }
            if self.tx_push(addr, f.len() as u32) {
                taken += 1;
            } else {
                self.stats.tx_errors += 1;
                self.free.push(addr);
            }
        }
        self.kick();
        taken
    }
}

impl PacketPort for XskPort {
    type Block<'a> = XskBlock<'a>;

    fn next_block(&mut self, timeout: Duration) -> Result<Option<XskBlock<'_>>, Error> {
        XskPort::next_block(self, timeout)
    }

    fn stats(&mut self) -> Result<PortStats, Error> {
        XskPort::stats(self)
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

/// Number of receive queues of `ifname` (`/sys/class/net/IF/queues/rx-*`), at least 1.
pub fn rx_queues(ifname: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{ifname}/queues"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 + TCP with `csum` in the checksum field, 4 bytes of payload.
    fn tcp4(csum: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let mut ip = vec![
            0x45, 0, 0, 44, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&(20u16 + 24).to_be_bytes());
        f.extend(ip);
        let mut tcp = vec![0u8; 24];
        tcp[12] = 0x50;
        tcp[16..18].copy_from_slice(&csum.to_be_bytes());
        f.extend(tcp);
        f
    }

    #[test]
    fn partial_checksum_is_the_pseudo_header_sum() {
        // 10.0.0.1 + 10.0.0.2 + proto 6 + length 24.
        let pseudo = fold(0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 24);
        assert!(partial_checksum(&tcp4(pseudo)));
        assert!(!partial_checksum(&tcp4(pseudo.wrapping_add(1))));
        assert!(!partial_checksum(&tcp4(0)));
        // A fragment is never judged.
        let mut frag = tcp4(pseudo);
        frag[20] = 0x20;
        assert!(!partial_checksum(&frag));
        // Truncated frames are not judged either.
        assert!(!partial_checksum(&tcp4(pseudo)[..40]));
        assert!(!partial_checksum(&[0u8; 10]));
    }

    #[test]
    fn packet_type_from_the_destination_mac() {
        let mac = [2, 0, 0, 0, 0, 1];
        let mut f = vec![0u8; 14];
        f[..6].copy_from_slice(&mac);
        assert_eq!(pkt_type(&f, &mac), libc::PACKET_HOST);
        f[..6].copy_from_slice(&[0xff; 6]);
        assert_eq!(pkt_type(&f, &mac), libc::PACKET_BROADCAST);
        f[..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(pkt_type(&f, &mac), libc::PACKET_MULTICAST);
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        assert_eq!(pkt_type(&f, &mac), libc::PACKET_OTHERHOST);
    }

    #[test]
    fn bad_geometry_is_refused_before_any_system_call() {
        let bad = XskConfig {
            ring_size: 1000,
            ..XskConfig::default()
        };
        assert!(matches!(XskPort::open("lo", &bad), Err(Error::Config(_))));
        let bad = XskConfig {
            chunks: 100,
            ..XskConfig::default()
        };
        assert!(matches!(XskPort::open("lo", &bad), Err(Error::Config(_))));
    }
}
