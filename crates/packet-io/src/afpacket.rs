//! AF_PACKET backend: one `ETH_P_ALL` socket per interface and worker, a TPACKET_V3 receive
//! ring, batched transmit with `sendmmsg`.
//!
//! # Why `sendmmsg` and not a TPACKET TX ring
//!
//! A forwarded frame lives in the receive ring (rewritten in place by the data plane); the
//! generated ones (ICMP errors, ARP replies, tunnel encapsulations) live in caller buffers.
//! Either way one copy is needed to reach the kernel: with a TX ring we would copy into a ring
//! slot, with `sendmmsg` the kernel copies into the skb. `sendmmsg` gives the same single
//! system call per batch, points its iovecs straight into the receive ring (no copy of ours),
//! reports failures per batch position, and needs no slot bookkeeping, no waiting for the
//! kernel to hand `TP_STATUS_AVAILABLE` slots back, and no second mmap. A TX ring would save
//! the skb data copy through page fragments, which is worth revisiting only if the benchmark
//! shows transmit to be the bottleneck.
//!
//! # Safety model
//!
//! The ring is a `MAP_SHARED` mapping the kernel writes into. A block belongs to user space
//! exactly while its `block_status` has `TP_STATUS_USER`; we read that with an acquire fence,
//! only touch the block while we own it, and hand it back with a release fence before storing
//! `TP_STATUS_KERNEL`. Frame offsets read from the ring are bounds-checked against the block
//! before any slice is formed, so a corrupt header can drop a frame but never read outside
//! the mapping.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

use crate::{Error, FrameSink, PacketPort, RxBlock};

/// 802.1Q header length: what re-inserting a tag adds in front of the EtherType.
const VLAN_HLEN: usize = 4;
/// Offset of the EtherType (or TPID) in an Ethernet frame.
const ETH_ALEN2: usize = 12;

/// How several sockets share an interface's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fanout {
    /// Fanout group id (per network namespace); every worker of one interface uses the same.
    pub group: u16,
    /// Ask the kernel to reassemble IP fragments before hashing, so all fragments of a
    /// datagram reach the same worker (`PACKET_FANOUT_FLAG_DEFRAG`).
    pub defrag: bool,
}

/// Configuration of a [`Port`].
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// Size of one ring block in bytes: a multiple of the page size. A block is handed to
    /// user space when full or when `block_timeout` expires.
    pub block_size: u32,
    /// Number of blocks in the ring.
    pub block_count: u32,
    /// Nominal frame size the kernel validates the ring geometry with (TPACKET_V3 packs
    /// frames of any length into a block; this only has to divide `block_size`).
    pub frame_size: u32,
    /// Most ring blocks one [`Port::recv_batch`] call hands to its callback; `None` (the
    /// default): every block that is ready, one pass over the ring at most. A caller that
    /// holds a lock across a call bounds how long it holds it with this. Note that under
    /// load blocks are usually retired by `block_timeout`, not because they are full: at
    /// 400 000 frames/s a block holds about 400 frames, whatever its size.
    pub blocks_per_call: Option<usize>,
    /// Block retire timeout: the longest a received frame waits in a partially filled block.
    /// Small values keep latency low at light load. Whole milliseconds, at least 1.
    pub block_timeout: Duration,
    /// Join a hash fanout group (flows spread over the sockets of the group by the kernel's
    /// symmetric flow hash).
    pub fanout: Option<Fanout>,
    /// Do not receive frames transmitted on the interface, ours or anyone's
    /// (`PACKET_IGNORE_OUTGOING`), so the director does not see its own transmissions.
    pub ignore_outgoing: bool,
    /// Put a VLAN tag the NIC/driver stripped (`TP_STATUS_VLAN_VALID`) back into the frame, so
    /// the data plane sees the frame as it was on the wire. The tag is also reported by
    /// [`RxFrame::vlan`] either way.
    pub reinsert_vlan: bool,
    /// Put the interface in promiscuous mode for the life of the socket.
    pub promiscuous: bool,
    /// Bypass the qdisc on transmit (`PACKET_QDISC_BYPASS`): faster, but no traffic shaping
    /// and drops instead of back-pressure when the device queue is full.
    pub qdisc_bypass: bool,
    /// Frames sent per `sendmmsg` call at most.
    pub tx_batch: usize,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            block_size: 1 << 18,
            block_count: 16,
            frame_size: 2048,
            blocks_per_call: None,
            block_timeout: Duration::from_millis(1),
            fanout: None,
            ignore_outgoing: true,
            reinsert_vlan: true,
            promiscuous: false,
            qdisc_bypass: false,
            tx_batch: 64,
        }
    }
}

/// An 802.1Q/802.1ad tag the kernel took off a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    /// Tag protocol identifier (0x8100 or 0x88a8).
    pub tpid: u16,
    /// Tag control information: priority (3 bits), DEI (1 bit), VLAN id (12 bits).
    pub tci: u16,
}

impl VlanTag {
    /// The 12-bit VLAN id.
    pub fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }
}

/// Counters of a port since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames handed to the `recv_batch` callback.
    pub rx_frames: u64,
    /// Frames the kernel queued to the socket (`PACKET_STATISTICS` tp_packets, includes drops).
    pub kernel_packets: u64,
    /// Frames the kernel dropped because the ring was full (`tp_drops`).
    pub kernel_drops: u64,
    /// Times the ring's queue was frozen for lack of a free block (`tp_freeze_q_cnt`).
    pub kernel_freezes: u64,
    /// Frames whose capture was shorter than the wire length (still delivered; see
    /// [`RxFrame::truncated`]).
    pub rx_truncated: u64,
    /// Frames whose stripped VLAN tag was re-inserted.
    pub rx_vlan_reinserted: u64,
    /// Frames the kernel accepted for transmission.
    pub tx_frames: u64,
    /// Frames that could not be sent (kernel error or no buffer space after retries).
    pub tx_errors: u64,
}

/// A received frame, valid for the duration of the `recv_batch` callback.
///
/// The bytes live in the receive ring; the callback may rewrite them in place and mark the
/// frame for transmission, which then happens without another copy of ours.
#[derive(Debug)]
pub struct RxFrame<'a> {
    data: &'a mut [u8],
    wire_len: u32,
    vlan: Option<VlanTag>,
    vlan_in_data: bool,
    rxhash: u32,
    timestamp: Duration,
    pkt_type: u8,
    tx_ifindex: Option<u32>,
    own_ifindex: u32,
    csum_not_ready: bool,
}

impl<'a> RxFrame<'a> {
    /// A frame over a caller's buffer, for test doubles of [`PacketPort`].
    pub fn new(data: &'a mut [u8], ifindex: u32) -> Self {
        let wire_len = data.len() as u32;
        RxFrame {
            data,
            wire_len,
            vlan: None,
            vlan_in_data: false,
            rxhash: 0,
            timestamp: Duration::ZERO,
            pkt_type: libc::PACKET_HOST,
            tx_ifindex: None,
            own_ifindex: ifindex,
            csum_not_ready: false,
        }
    }

    /// A frame of a port that reads the packet type and the partial-checksum state from
    /// somewhere other than a ring header (the AF_XDP port).
    pub(crate) fn with_meta(mut self, pkt_type: u8, csum_not_ready: bool) -> Self {
        self.pkt_type = pkt_type;
        self.csum_not_ready = csum_not_ready;
        self
    }

    /// The frame bytes, starting at the destination MAC.
    pub fn data(&self) -> &[u8] {
        self.data
    }

    /// The frame bytes, writable (in the ring: rewrite in place, then [`transmit`](Self::transmit)).
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.data
    }

    /// Shortens the frame to `len` bytes (e.g. after decapsulation); longer is ignored since
    /// the ring slot cannot grow.
    pub fn truncate(&mut self, len: usize) {
        if len < self.data.len() {
            let data = std::mem::take(&mut self.data);
            self.data = &mut data[..len];
            self.wire_len = self.wire_len.min(len as u32);
        }
    }

    /// Length of the frame on the wire (including a re-inserted VLAN tag).
    pub fn wire_len(&self) -> usize {
        self.wire_len as usize
    }

    /// True if the ring captured fewer bytes than the frame had (a frame larger than a block).
    pub fn truncated(&self) -> bool {
        (self.data.len() as u64) < u64::from(self.wire_len)
    }

    /// The VLAN tag the kernel stripped, if any. When [`PortConfig::reinsert_vlan`] is set it
    /// is also back in [`data`](Self::data) (see [`vlan_in_data`](Self::vlan_in_data)).
    pub fn vlan(&self) -> Option<VlanTag> {
        self.vlan
    }

    /// True if the stripped VLAN tag was re-inserted into the frame bytes.
    pub fn vlan_in_data(&self) -> bool {
        self.vlan_in_data
    }

    /// The kernel's flow hash of the frame (0 if none was computed).
    pub fn rxhash(&self) -> u32 {
        self.rxhash
    }

    /// Receive timestamp (CLOCK_REALTIME, since the epoch) as the kernel stamped it.
    pub fn timestamp(&self) -> Duration {
        self.timestamp
    }

    /// `sll_pkttype`: `libc::PACKET_HOST`, `PACKET_BROADCAST`, `PACKET_MULTICAST`,
    /// `PACKET_OTHERHOST` (not for us: seen in promiscuous mode) or `PACKET_OUTGOING`.
    pub fn pkt_type(&self) -> u8 {
        self.pkt_type
    }

    /// True when the kernel handed the frame over with its transport checksum not filled in
    /// (`TP_STATUS_CSUMNOTREADY`: a `CHECKSUM_PARTIAL` skb, e.g. from a local sender or a
    /// container on a veth with checksum offload). The checksum field then holds only the
    /// pseudo-header sum; a frame forwarded as it is arrives with a bad checksum, so the
    /// data plane must complete it first.
    pub fn checksum_not_ready(&self) -> bool {
        self.csum_not_ready
    }

    /// Send this frame (as it is when the callback returns) out of the interface it came in on.
    pub fn transmit(&mut self) {
        self.tx_ifindex = Some(self.own_ifindex);
    }

    /// Send this frame out of another interface of the same network namespace.
    pub fn transmit_on(&mut self, ifindex: u32) {
        self.tx_ifindex = Some(ifindex);
    }

    /// The interface the frame is marked to be sent on, if any.
    pub fn tx_ifindex(&self) -> Option<u32> {
        self.tx_ifindex
    }
}

pub(crate) fn last_err() -> io::Error {
    io::Error::last_os_error()
}

/// `setsockopt` for plain-old-data option values.
pub(crate) fn setsockopt<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of exactly `size_of::<T>()` bytes for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(last_err())
    } else {
        Ok(())
    }
}

/// An `AF_PACKET` socket bound to one interface, with the batched transmit path.
#[derive(Debug)]
pub(crate) struct RawSocket {
    fd: OwnedFd,
    ifname: String,
    ifindex: u32,
    mac: [u8; 6],
    tx: TxQueue,
    tx_frames: u64,
    tx_errors: u64,
}

impl RawSocket {
    /// Opens a packet socket with protocol 0: it receives nothing until bound with a protocol,
    /// so no frame of another interface slips in between `socket()` and `bind()`.
    pub(crate) fn open(ifname: &str, tx_batch: usize) -> Result<Self, Error> {
        if tx_batch == 0 {
            return Err(Error::Config("tx_batch must be at least 1".into()));
        }
        let cname = CString::new(ifname)
            .map_err(|_| Error::Config(format!("interface name {ifname:?} contains NUL")))?;
        // SAFETY: `cname` is a valid NUL-terminated string for the duration of the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(Error::sys("if_nametoindex", ifname, last_err()));
        }
        // SAFETY: plain socket(2) call; the returned fd is checked before use.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(Error::sys("socket(AF_PACKET)", ifname, last_err()));
        }
        // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mac = hw_addr(fd.as_raw_fd(), ifname)?;
        Ok(RawSocket {
            fd,
            ifname: ifname.to_owned(),
            ifindex,
            mac,
            tx: TxQueue::with_capacity(tx_batch),
            tx_frames: 0,
            tx_errors: 0,
        })
    }

    /// The interface's MAC address and index.
    pub(crate) fn identity(&self) -> ([u8; 6], u32) {
        (self.mac, self.ifindex)
    }

    /// Frames the kernel accepted and frames that could not be sent, so far.
    pub(crate) fn tx_counts(&self) -> (u64, u64) {
        (self.tx_frames, self.tx_errors)
    }

    pub(crate) fn bind(&self, protocol: u16) -> Result<(), Error> {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = protocol.to_be();
        sll.sll_ifindex = self.ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(Error::sys("bind", &self.ifname, last_err()));
        }
        Ok(())
    }

    fn set(&self, op: &'static str, name: libc::c_int, value: libc::c_int) -> Result<(), Error> {
        setsockopt(self.fd.as_raw_fd(), libc::SOL_PACKET, name, &value)
            .map_err(|e| Error::sys(op, &self.ifname, e))
    }

    /// Queues a frame for the next flush, flushing first when the queue is full.
    ///
    /// # Safety
    /// `frame` must stay valid and unmodified until the next [`flush`](Self::flush).
    pub(crate) unsafe fn queue(&mut self, frame: *const u8, len: usize, ifindex: u32) {
        if self.tx.len == self.tx.capacity() {
            self.flush();
        }
        self.tx.push(frame, len, ifindex);
    }

    /// Sends everything queued. Transient back-pressure (`ENOBUFS`/`EAGAIN`) is waited out a
    /// bounded number of times; a frame the kernel rejects is counted and skipped so one bad
    /// frame does not stall the batch.
    pub(crate) fn flush(&mut self) {
        let n = self.tx.len;
        if n == 0 {
            return;
        }
        self.tx.build_headers();
        let mut done = 0usize;
        let mut stalls = 0u32;
        while done < n {
            // SAFETY: `msgs[done..n]` are initialised mmsghdrs whose iovecs and addresses point
            // into `self.tx` buffers and into frames the caller guaranteed live (see `queue`).
            let rc = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    self.tx.msgs.as_mut_ptr().add(done),
                    (n - done) as libc::c_uint,
                    0,
                )
            };
            if rc > 0 {
                done += rc as usize;
                self.tx_frames += rc as u64;
                continue;
            }
            let err = last_err();
            match err.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) if stalls < 100 => {
                    stalls += 1;
                    wait_writable(self.fd.as_raw_fd(), 1);
                }
                _ => {
                    // The first unsent frame was refused (EMSGSIZE, ENETDOWN, ...) or the
                    // device stayed full: count it and go on with the rest.
                    done += 1;
                    self.tx_errors += 1;
                }
            }
        }
        self.tx.len = 0;
    }

    pub(crate) fn send_frames(&mut self, frames: &[&[u8]]) -> usize {
        let before = self.tx_frames;
        for frame in frames {
            // SAFETY: `frames` outlives this function, and we flush before returning.
            unsafe { self.queue(frame.as_ptr(), frame.len(), self.ifindex) };
        }
        self.flush();
        (self.tx_frames - before) as usize
    }
}

fn wait_writable(fd: RawFd, timeout_ms: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
}

/// Reads the interface's MAC address with `SIOCGIFHWADDR`.
pub(crate) fn hw_addr(fd: RawFd, ifname: &str) -> Result<[u8; 6], Error> {
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { zeroed() };
    let name = ifname.as_bytes();
    if name.len() >= req.ifr_name.len() {
        return Err(Error::Config(format!("interface name {ifname:?} too long")));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads `ifr_name` and writes `ifr_hwaddr` inside `req`.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) };
    if rc < 0 {
        return Err(Error::sys("ioctl(SIOCGIFHWADDR)", ifname, last_err()));
    }
    // SAFETY: the kernel filled the hwaddr member of the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(mac)
}

/// Preallocated `sendmmsg` arguments: one iovec, one destination and one header per frame.
struct TxQueue {
    iov: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_ll>,
    msgs: Vec<libc::mmsghdr>,
    len: usize,
}

// SAFETY: the raw pointers refer to this queue's own vectors or to frames that are only
// queued between a `queue` and the `flush` in the same call on the same thread; nothing is
// shared, so moving the queue between threads is sound.
unsafe impl Send for TxQueue {}

impl std::fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxQueue")
            .field("capacity", &self.iov.len())
            .field("len", &self.len)
            .finish()
    }
}

impl TxQueue {
    fn with_capacity(n: usize) -> Self {
        TxQueue {
            iov: vec![
                libc::iovec {
                    iov_base: ptr::null_mut(),
                    iov_len: 0
                };
                n
            ],
            // SAFETY: both are plain old data; all-zero is valid.
            addrs: vec![unsafe { zeroed() }; n],
            // SAFETY: as above.
            msgs: vec![unsafe { zeroed() }; n],
            len: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.iov.len()
    }

    fn push(&mut self, frame: *const u8, len: usize, ifindex: u32) {
        let i = self.len;
        self.iov[i] = libc::iovec {
            iov_base: frame as *mut libc::c_void,
            iov_len: len,
        };
        let a = &mut self.addrs[i];
        a.sll_family = libc::AF_PACKET as u16;
        a.sll_ifindex = ifindex as i32;
        // The EtherType as found in the frame (already network order): the kernel sets
        // skb->protocol from it, which matters for taps and qdisc classification.
        a.sll_protocol = if len >= ETH_ALEN2 + 2 {
            // SAFETY: `frame` has at least 14 readable bytes (checked above).
            unsafe { ptr::read_unaligned(frame.add(ETH_ALEN2) as *const u16) }
        } else {
            0
        };
        self.len += 1;
    }

    /// Points each header at its iovec and address; done at flush time because the vectors
    /// never move after construction but headers are cheap to rebuild and this keeps `push`
    /// free of raw self-references.
    fn build_headers(&mut self) {
        for i in 0..self.len {
            let m = &mut self.msgs[i].msg_hdr;
            m.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_ll).cast();
            m.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            m.msg_iov = &mut self.iov[i];
            m.msg_iovlen = 1;
            m.msg_control = ptr::null_mut();
            m.msg_controllen = 0;
            m.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
    }
}

/// The mmap'd TPACKET_V3 receive ring.
#[derive(Debug)]
struct Ring {
    base: NonNull<u8>,
    size: usize,
    block_size: usize,
    block_count: usize,
    next: usize,
}

// SAFETY: the mapping is owned by this value alone (no slice into it outlives a
// `recv_batch` call), so moving it to another thread is sound.
unsafe impl Send for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `base`/`size` are exactly the mapping created in `Port::open`, unmapped once.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.size) };
    }
}

impl Ring {
    fn block(&self, i: usize) -> *mut libc::tpacket_block_desc {
        // SAFETY: i < block_count, so the offset stays inside the mapping.
        unsafe { self.base.as_ptr().add(i * self.block_size).cast() }
    }

    fn block_status(&self, i: usize) -> u32 {
        let bd = self.block(i);
        // SAFETY: the block descriptor is inside the mapping and 8-aligned (page aligned
        // block); volatile because the kernel writes it concurrently.
        let status = unsafe { ptr::read_volatile(ptr::addr_of!((*bd).hdr.bh1.block_status)) };
        // Everything the kernel wrote into the block happens-before we read it below.
        fence(Ordering::Acquire);
        status
    }

    fn release(&self, i: usize) {
        let bd = self.block(i);
        // Our reads and writes of the block complete before the kernel may reuse it.
        fence(Ordering::Release);
        // SAFETY: as in `block_status`; we own the block until this store.
        unsafe {
            ptr::write_volatile(
                ptr::addr_of_mut!((*bd).hdr.bh1.block_status),
                libc::TP_STATUS_KERNEL,
            )
        };
    }
}

/// An AF_PACKET port: receive ring plus batched transmit on one interface.
///
/// Not `Sync`: a worker owns its port. Several workers each open their own port on the same
/// interface with the same [`Fanout`] group.
#[derive(Debug)]
pub struct Port {
    // Field order matters for Drop: unmap the ring before closing the socket.
    ring: Ring,
    sock: RawSocket,
    blocks_per_call: usize,
    reinsert_vlan: bool,
    stats: PortStats,
}

impl Port {
    /// Opens `ifname` with the given configuration.
    pub fn open(ifname: &str, cfg: &PortConfig) -> Result<Self, Error> {
        check_geometry(cfg)?;
        let sock = RawSocket::open(ifname, cfg.tx_batch)?;
        let fd = sock.fd.as_raw_fd();
        sock.set(
            "setsockopt(PACKET_VERSION)",
            libc::PACKET_VERSION,
            libc::tpacket_versions::TPACKET_V3 as libc::c_int,
        )?;
        if cfg.reinsert_vlan {
            // Headroom in front of each frame so a stripped tag can be put back in place.
            sock.set(
                "setsockopt(PACKET_RESERVE)",
                libc::PACKET_RESERVE,
                VLAN_HLEN as libc::c_int,
            )?;
        }
        if cfg.ignore_outgoing {
            sock.set(
                "setsockopt(PACKET_IGNORE_OUTGOING)",
                libc::PACKET_IGNORE_OUTGOING,
                1,
            )?;
        }
        if cfg.qdisc_bypass {
            sock.set(
                "setsockopt(PACKET_QDISC_BYPASS)",
                libc::PACKET_QDISC_BYPASS,
                1,
            )?;
        }
        let frames_per_block = cfg.block_size / cfg.frame_size;
        let req = libc::tpacket_req3 {
            tp_block_size: cfg.block_size,
            tp_block_nr: cfg.block_count,
            tp_frame_size: cfg.frame_size,
            tp_frame_nr: frames_per_block * cfg.block_count,
            tp_retire_blk_tov: cfg.block_timeout.as_millis().clamp(1, u32::MAX as u128) as u32,
            tp_sizeof_priv: 0,
            tp_feature_req_word: libc::TP_FT_REQ_FILL_RXHASH,
        };
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(|e| Error::sys("setsockopt(PACKET_RX_RING)", ifname, e))?;
        let size = cfg.block_size as usize * cfg.block_count as usize;
        // SAFETY: mapping the ring the kernel just allocated for this socket, at its exact size.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::sys("mmap(rx ring)", ifname, last_err()));
        }
        let ring = Ring {
            base: NonNull::new(base.cast()).expect("mmap returned a non-null mapping"),
            size,
            block_size: cfg.block_size as usize,
            block_count: cfg.block_count as usize,
            next: 0,
        };
        sock.bind(libc::ETH_P_ALL as u16)?;
        if cfg.promiscuous {
            // SAFETY: packet_mreq is plain old data; all-zero is valid.
            let mut mreq: libc::packet_mreq = unsafe { zeroed() };
            mreq.mr_ifindex = sock.ifindex as i32;
            mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
            setsockopt(fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
                .map_err(|e| Error::sys("setsockopt(PACKET_MR_PROMISC)", ifname, e))?;
        }
        if let Some(fan) = cfg.fanout {
            join_fanout(&sock, fan, cfg.ignore_outgoing)?;
        }
        Ok(Port {
            blocks_per_call: cfg
                .blocks_per_call
                .unwrap_or(ring.block_count)
                .clamp(1, ring.block_count),
            ring,
            sock,
            reinsert_vlan: cfg.reinsert_vlan,
            stats: PortStats::default(),
        })
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.sock.ifname
    }

    /// The interface's MAC address (read when the port was opened).
    pub fn mac(&self) -> [u8; 6] {
        self.sock.mac
    }

    /// The interface's index.
    pub fn ifindex(&self) -> u32 {
        self.sock.ifindex
    }

    /// The socket descriptor, for an external poller (epoll over several ports).
    pub fn as_raw_fd(&self) -> RawFd {
        self.sock.fd.as_raw_fd()
    }

    /// Waits up to `timeout` for a retired block, then hands every frame of every ready block
    /// (at most [`PortConfig::blocks_per_call`] blocks) to `f`. Frames the callback marks for
    /// transmission go out in batches before their block is returned to the kernel. Returns
    /// the number of frames seen (0 on timeout). A convenience over [`PacketPort::next_block`].
    pub fn recv_batch<F>(&mut self, timeout: Duration, mut f: F) -> Result<usize, Error>
    where
        F: FnMut(&mut RxFrame<'_>),
    {
        let mut seen = 0;
        // At most one pass over the ring (or `blocks_per_call` blocks): bounded work per call,
        // and blocks retired while we work are picked up by the next call.
        for k in 0..self.blocks_per_call {
            if k > 0 && !self.block_ready() {
                break;
            }
            let Some(mut block) = self.next_block(timeout)? else {
                break;
            };
            while let Some(frame) = block.next_frame() {
                f(frame);
                seen += 1;
            }
            block.finish();
        }
        Ok(seen)
    }

    fn block_ready(&self) -> bool {
        self.ring.block_status(self.ring.next) & libc::TP_STATUS_USER != 0
    }

    /// Waits up to `timeout` for the next retired ring block and lends it out
    /// ([`PacketPort::next_block`]).
    pub fn next_block(&mut self, timeout: Duration) -> Result<Option<Block<'_>>, Error> {
        if !self.block_ready() {
            let mut pfd = libc::pollfd {
                fd: self.sock.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
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
                return Err(Error::sys("poll", &self.sock.ifname, e));
            }
            if !self.block_ready() {
                return Ok(None);
            }
        }
        let i = self.ring.next;
        let bd = self.ring.block(i);
        // SAFETY: we own block `i` (TP_STATUS_USER seen with acquire); its descriptor is valid.
        let (num, first) = unsafe {
            let h = ptr::addr_of!((*bd).hdr.bh1);
            (
                ptr::read(ptr::addr_of!((*h).num_pkts)),
                ptr::read(ptr::addr_of!((*h).offset_to_first_pkt)) as usize,
            )
        };
        Ok(Some(Block {
            index: i,
            left: num,
            off: Some(first),
            seen: 0,
            current: None,
            port: self,
        }))
    }

    /// Sends complete Ethernet frames out of this interface with as few `sendmmsg` calls as
    /// the batch size allows. Returns the number the kernel accepted; the rest are counted in
    /// [`PortStats::tx_errors`].
    pub fn send_batch(&mut self, frames: &[&[u8]]) -> Result<usize, Error> {
        Ok(self.sock.send_frames(frames))
    }

    /// Counters; reads and accumulates the kernel's `PACKET_STATISTICS` (which reset on read).
    pub fn stats(&mut self) -> Result<PortStats, Error> {
        // SAFETY: tpacket_stats_v3 is plain old data; all-zero is valid.
        let mut st: libc::tpacket_stats_v3 = unsafe { zeroed() };
        let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `st` and `len` describe a writable buffer of the right size.
        let rc = unsafe {
            libc::getsockopt(
                self.sock.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(Error::sys(
                "getsockopt(PACKET_STATISTICS)",
                &self.sock.ifname,
                last_err(),
            ));
        }
        self.stats.kernel_packets += u64::from(st.tp_packets);
        self.stats.kernel_drops += u64::from(st.tp_drops);
        self.stats.kernel_freezes += u64::from(st.tp_freeze_q_cnt);
        let mut out = self.stats;
        out.tx_frames = self.sock.tx_frames;
        out.tx_errors = self.sock.tx_errors;
        Ok(out)
    }
}

/// A ring block lent out by [`Port::next_block`]: its frames, one at a time, rewritable in
/// place. Frames marked for transmission are queued as the walk moves past them and sent
/// when the block is finished (or dropped), just before the block goes back to the kernel.
pub struct Block<'a> {
    port: &'a mut Port,
    index: usize,
    /// Frames the block header still announces.
    left: u32,
    /// Offset of the next frame header in the block; `None` once the walk ended.
    off: Option<usize>,
    seen: usize,
    /// The frame last lent out (its transmit mark is read when the walk moves on).
    current: Option<RxFrame<'a>>,
}

impl std::fmt::Debug for Block<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("index", &self.index)
            .field("left", &self.left)
            .field("seen", &self.seen)
            .finish()
    }
}

impl<'a> Block<'a> {
    /// Queues the transmission of the frame last lent out, if it was marked.
    fn retire_current(&mut self) {
        if let Some(frame) = self.current.take() {
            if let Some(ifindex) = frame.tx_ifindex {
                let (p, l) = (frame.data.as_ptr(), frame.data.len());
                // SAFETY: the frame lies in this block, which is released only after the
                // flush in `Drop`, and nothing refers to it any more (`current` was taken).
                unsafe { self.port.sock.queue(p, l, ifindex) };
            }
        }
    }

    /// Parses the frame at the walk's offset into `current`.
    fn advance(&mut self) -> bool {
        let Some(off) = self.off else {
            return false;
        };
        if self.left == 0 {
            self.off = None;
            return false;
        }
        self.left -= 1;
        let ring = &self.port.ring;
        let block_size = ring.block_size;
        let block = ring.block(self.index).cast::<u8>();
        let sll_off = tpacket_align(size_of::<libc::tpacket3_hdr>());
        let min_mac = sll_off + size_of::<libc::sockaddr_ll>();
        if off + min_mac > block_size {
            self.off = None;
            return false;
        }
        // SAFETY: `off + min_mac <= block_size`, so the frame header and its sockaddr_ll
        // are inside our block; tpacket3_hdr offsets are 16-aligned (TPACKET_ALIGNMENT).
        let (h, pkt_type) = unsafe {
            let hp = block.add(off).cast::<libc::tpacket3_hdr>();
            let sll = block.add(off + sll_off).cast::<libc::sockaddr_ll>();
            (ptr::read(hp), ptr::read(ptr::addr_of!((*sll).sll_pkttype)))
        };
        let mac = h.tp_mac as usize;
        let snap = h.tp_snaplen as usize;
        if mac < min_mac || off + mac + snap > block_size {
            // A header we do not understand: skip the rest of the block rather than
            // guess where the next frame starts.
            self.off = None;
            return false;
        }
        let vlan = (h.tp_status & libc::TP_STATUS_VLAN_VALID != 0).then_some(VlanTag {
            tpid: if h.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                h.hv1.tp_vlan_tpid
            } else {
                libc::ETH_P_8021Q as u16
            },
            tci: h.hv1.tp_vlan_tci as u16,
        });
        let reinsert = vlan.is_some()
            && self.port.reinsert_vlan
            && snap >= ETH_ALEN2
            && mac - VLAN_HLEN >= min_mac;
        let (start, len) = if reinsert {
            (off + mac - VLAN_HLEN, snap + VLAN_HLEN)
        } else {
            (off + mac, snap)
        };
        // SAFETY: `start + len <= off + mac + snap <= block_size` and `start >= off +
        // min_mac` (headroom reserved with PACKET_RESERVE), all inside our block, which we
        // own until `Drop`; frames of a block do not overlap, and the previous frame's slice
        // was given up in `retire_current`.
        let data: &'a mut [u8] = unsafe { std::slice::from_raw_parts_mut(block.add(start), len) };
        if let (true, Some(tag)) = (reinsert, vlan) {
            // Move the two MAC addresses into the headroom and put the tag after them.
            data.copy_within(VLAN_HLEN..VLAN_HLEN + ETH_ALEN2, 0);
            data[ETH_ALEN2..ETH_ALEN2 + 2].copy_from_slice(&tag.tpid.to_be_bytes());
            data[ETH_ALEN2 + 2..ETH_ALEN2 + 4].copy_from_slice(&tag.tci.to_be_bytes());
            self.port.stats.rx_vlan_reinserted += 1;
        }
        let wire_len = h.tp_len + if reinsert { VLAN_HLEN as u32 } else { 0 };
        let frame = RxFrame {
            data,
            wire_len,
            vlan,
            vlan_in_data: reinsert,
            rxhash: h.hv1.tp_rxhash,
            timestamp: Duration::new(u64::from(h.tp_sec), h.tp_nsec.min(999_999_999)),
            pkt_type,
            tx_ifindex: None,
            own_ifindex: self.port.sock.ifindex,
            csum_not_ready: h.tp_status & libc::TP_STATUS_CSUMNOTREADY != 0,
        };
        if frame.truncated() {
            self.port.stats.rx_truncated += 1;
        }
        self.off = (h.tp_next_offset != 0).then(|| off + h.tp_next_offset as usize);
        self.seen += 1;
        self.current = Some(frame);
        true
    }
}

impl<'a> RxBlock<'a> for Block<'a> {
    fn next_frame(&mut self) -> Option<&mut RxFrame<'a>> {
        self.retire_current();
        if !self.advance() {
            return None;
        }
        self.current.as_mut()
    }

    fn finish(self) {}
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        self.retire_current();
        // Frames pointing into this block must be on their way before it is released.
        self.port.sock.flush();
        self.port.ring.release(self.index);
        self.port.ring.next = (self.index + 1) % self.port.ring.block_count;
        self.port.stats.rx_frames += self.seen as u64;
    }
}

impl AsFd for Port {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.fd.as_fd()
    }
}

impl FrameSink for Port {
    fn send_frames(&mut self, frames: &[&[u8]]) -> usize {
        self.sock.send_frames(frames)
    }
}

impl PacketPort for Port {
    type Block<'a> = Block<'a>;

    fn next_block(&mut self, timeout: Duration) -> Result<Option<Block<'_>>, Error> {
        Port::next_block(self, timeout)
    }

    fn stats(&mut self) -> Result<PortStats, Error> {
        Port::stats(self)
    }

    fn mac(&self) -> [u8; 6] {
        Port::mac(self)
    }

    fn ifindex(&self) -> u32 {
        Port::ifindex(self)
    }
}

fn tpacket_align(x: usize) -> usize {
    (x + libc::TPACKET_ALIGNMENT - 1) & !(libc::TPACKET_ALIGNMENT - 1)
}

fn check_geometry(cfg: &PortConfig) -> Result<(), Error> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32;
    let bad = |m: String| Err(Error::Config(m));
    if cfg.block_size == 0 || !cfg.block_size.is_multiple_of(page) {
        return bad(format!(
            "block_size {} is not a multiple of the page size {page}",
            cfg.block_size
        ));
    }
    if cfg.block_count == 0 {
        return bad("block_count must be at least 1".into());
    }
    if cfg.frame_size < 128
        || !(cfg.frame_size as usize).is_multiple_of(libc::TPACKET_ALIGNMENT)
        || cfg.frame_size > cfg.block_size
        || !cfg.block_size.is_multiple_of(cfg.frame_size)
    {
        return bad(format!(
            "frame_size {} must be a multiple of {} dividing block_size {}",
            cfg.frame_size,
            libc::TPACKET_ALIGNMENT,
            cfg.block_size
        ));
    }
    if (cfg.block_size as u64) * (cfg.block_count as u64) > (1 << 31) {
        return bad("ring larger than 2 GiB".into());
    }
    Ok(())
}

fn join_fanout(sock: &RawSocket, fan: Fanout, ignore_outgoing: bool) -> Result<(), Error> {
    let mut flags = 0;
    if fan.defrag {
        flags |= libc::PACKET_FANOUT_FLAG_DEFRAG;
    }
    let arg =
        |flags: u32| (u32::from(fan.group) | ((libc::PACKET_FANOUT_HASH | flags) << 16)) as i32;
    if ignore_outgoing {
        // A fanout group receives through its own hook, which has its own ignore-outgoing
        // switch; the per-socket option alone does not cover it.
        let with = flags | libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
        match sock.set("setsockopt(PACKET_FANOUT)", libc::PACKET_FANOUT, arg(with)) {
            Ok(()) => return Ok(()),
            // Kernels before the flag existed: join without it.
            Err(Error::Sys { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    sock.set("setsockopt(PACKET_FANOUT)", libc::PACKET_FANOUT, arg(flags))
}

/// A transmit-only AF_PACKET socket on one interface: for the occasional frame such as a
/// gratuitous ARP or an unsolicited neighbour advertisement. It has no ring and receives
/// nothing.
#[derive(Debug)]
pub struct Sender {
    sock: RawSocket,
}

impl Sender {
    /// Opens a TX-only socket on `ifname`.
    pub fn open(ifname: &str) -> Result<Self, Error> {
        let sock = RawSocket::open(ifname, 16)?;
        // Protocol 0: bound to the interface for sending, but no receive hook.
        sock.bind(0)?;
        Ok(Sender { sock })
    }

    /// Sends one complete Ethernet frame.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), Error> {
        let before = self.sock.tx_errors;
        if self.sock.send_frames(&[frame]) == 1 {
            return Ok(());
        }
        debug_assert!(self.sock.tx_errors > before);
        Err(Error::sys(
            "sendmmsg",
            &self.sock.ifname,
            io::Error::other("the kernel refused the frame"),
        ))
    }

    /// Sends frames in batches; returns how many the kernel accepted.
    pub fn send_batch(&mut self, frames: &[&[u8]]) -> usize {
        self.sock.send_frames(frames)
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.sock.mac
    }

    /// The interface's index.
    pub fn ifindex(&self) -> u32 {
        self.sock.ifindex
    }
}

impl FrameSink for Sender {
    fn send_frames(&mut self, frames: &[&[u8]]) -> usize {
        self.send_batch(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_rules() {
        let ok = PortConfig::default();
        assert!(check_geometry(&ok).is_ok());
        let mut c = ok.clone();
        c.block_size = 5000;
        assert!(check_geometry(&c).is_err());
        let mut c = ok.clone();
        c.frame_size = 2000;
        assert!(check_geometry(&c).is_err());
        let mut c = ok.clone();
        c.block_count = 0;
        assert!(check_geometry(&c).is_err());
        let mut c = ok;
        c.frame_size = 1 << 19;
        assert!(check_geometry(&c).is_err());
    }

    #[test]
    fn test_double_frame_marks_transmit() {
        let mut buf = [0u8; 60];
        let mut f = RxFrame::new(&mut buf, 7);
        assert_eq!(f.tx_ifindex(), None);
        f.transmit();
        assert_eq!(f.tx_ifindex(), Some(7));
        f.transmit_on(9);
        assert_eq!(f.tx_ifindex(), Some(9));
        f.truncate(42);
        assert_eq!(f.data().len(), 42);
        assert_eq!(f.wire_len(), 42);
        assert!(!f.truncated());
        f.truncate(100);
        assert_eq!(f.data().len(), 42);
    }

    #[test]
    fn unknown_interface_is_an_error_naming_it() {
        match Port::open("rvs-nosuch0", &PortConfig::default()) {
            Err(Error::Sys { op, ifname, .. }) => {
                assert_eq!((op, ifname.as_str()), ("if_nametoindex", "rvs-nosuch0"))
            }
            other => panic!("expected an if_nametoindex error, got {other:?}"),
        }
        assert!(matches!(Sender::open("bad\0name"), Err(Error::Config(_))));
    }

    #[test]
    fn vlan_vid() {
        let t = VlanTag {
            tpid: 0x8100,
            tci: 0xa00c,
        };
        assert_eq!(t.vid(), 12);
    }
}
