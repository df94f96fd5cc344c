//! The packet plane's XDP fast path (`bpf/xdp.c`): loading, attaching, and its maps.
//!
//! The program forwards packets of connections that have an entry in `rvs_flows` — one entry
//! per direction, keyed by the 5-tuple as it is on the wire — and passes everything else to
//! the userspace plane. rvsd computes each entry's action from rvs-core's connection (the
//! program never schedules, never changes a state), installs it with [`FastPath::insert`],
//! reads the per-entry counters back with [`FastPath::flow`] and removes it when the
//! connection expires.
#![allow(unsafe_code)]

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use aya::maps::{DevMapHash, HashMap, MapData, MapError, PerCpuArray, XskMap};
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::Ebpf;
use rvs_packet::fastpath::{Offer, OfferAction, OfferEncap};

/// The program's name in `bpf/xdp.c`.
const PROGRAM: &str = "rvs_xdp";

/// Why the fast path cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object is not in this build.
    #[error("XDP unavailable: {0}")]
    Unavailable(&'static str),
    /// The kernel refused to load the object (verifier, BTF, privileges).
    #[error("XDP unavailable: loading the program: {0}")]
    Load(#[from] aya::EbpfError),
    /// Loading or attaching the program failed.
    #[error("XDP program: {0}")]
    Program(#[from] ProgramError),
    /// A map operation failed.
    #[error("XDP map: {0}")]
    Map(#[from] MapError),
    /// Adding an interface to the redirect map failed.
    #[error("XDP redirect map: {0}")]
    Ports(#[from] aya::maps::xdp::XdpMapError),
    /// The object does not have what this module expects (out of step with `bpf/xdp.c`).
    #[error("XDP object: {0}")]
    Object(String),
}

/// An entry's key: the packet's 5-tuple as it is on the wire (the C `struct rvs_flow_key`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    saddr: [u8; 16],
    daddr: [u8; 16],
    sport: u16,
    dport: u16,
    family: u8,
    proto: u8,
    pad: [u8; 2],
}

/// An entry's value (the C `struct rvs_flow`): the action, then what the program counted.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flow {
    ifindex: u32,
    max_len: u16,
    op: u8,
    flags: u8,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    saddr: [u8; 16],
    daddr: [u8; 16],
    sport: u16,
    dport: u16,
    in_ifindex: u32,
    in_mac: [u8; 6],
    pad: [u8; 6],
    packets: u64,
    bytes: u64,
    last_seen_ns: u64,
}

/// `bpf(2)`'s BPF_MAP_LOOKUP_BATCH.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// The attribute block of the BPF_MAP_*_BATCH commands (`union bpf_attr`, the `batch` member).
#[repr(C)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

// The batch reads hand the kernel arrays of these: their sizes are the map's key and value
// sizes in `bpf/xdp.c` (`struct rvs_flow_key`, `struct rvs_flow`).
const _: () = assert!(std::mem::size_of::<FlowKey>() == 40 && std::mem::size_of::<Flow>() == 96);

/// An interface's own MAC (the C `struct rvs_port_mac`): the program forwards only the unicast
/// frames addressed to it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PortMac {
    mac: [u8; 6],
    pad: [u8; 2],
}

const _: () = assert!(std::mem::size_of::<PortMac>() == 8);
const _: () = assert!(std::mem::size_of::<FlowKey>() == 40);
const _: () = assert!(std::mem::size_of::<Flow>() == 96);

// SAFETY: both are #[repr(C)] structs of integers and byte arrays with no implicit padding
// (sizes asserted above match the C layout), so every bit pattern is a valid value and
// they can be copied to and from the kernel as plain bytes.
unsafe impl aya::Pod for FlowKey {}
// SAFETY: as above.
unsafe impl aya::Pod for Flow {}
// SAFETY: as above (bytes only).
unsafe impl aya::Pod for PortMac {}

const OP_REWRITE: u8 = 1;
const OP_IPIP: u8 = 2;
const OP_GUE: u8 = 3;
const OP_GRE: u8 = 4;
const F_SRC: u8 = 0x01;
const F_DST: u8 = 0x02;
const F_PMTU_DISC: u8 = 0x04;
const F_OUTER_V6: u8 = 0x08;
const F_TUN_CSUM: u8 = 0x10;

fn addr16(a: IpAddr) -> [u8; 16] {
    let mut out = [0; 16];
    match a {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out = a.octets(),
    }
    out
}

impl FlowKey {
    /// The key of packets `src → dst` of IP protocol `proto` (TCP or UDP).
    pub fn new(proto: u8, src: (IpAddr, u16), dst: (IpAddr, u16)) -> FlowKey {
        FlowKey {
            saddr: addr16(src.0),
            daddr: addr16(dst.0),
            sport: src.1.to_be(),
            dport: dst.1.to_be(),
            family: if src.0.is_ipv6() { 6 } else { 4 },
            proto,
            pad: [0; 2],
        }
    }
}

/// Where the program sends a flow's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    /// Egress interface (`XDP_TX` when it is the one the packet came in on, else redirect).
    pub ifindex: u32,
    /// Next hop's MAC.
    pub dst_mac: [u8; 6],
    /// Egress interface's MAC.
    pub src_mac: [u8; 6],
    /// Largest (inner) L3 packet the program forwards: the route MTU, minus the tunnel
    /// header for tunnels. Longer packets go to userspace (fragmentation, ICMP errors).
    pub max_len: u16,
}

impl Flow {
    /// The entry for `offer` (the plane's own rewrite of the flow), sent out of interface
    /// `ifindex` (the offer's port), its frames coming in on `ingress` (the interface of the
    /// offer's `in_port` and its MAC: see [`Flow::arriving`]), with its key.
    pub fn from_offer(offer: &Offer, ifindex: u32, ingress: (u32, [u8; 6])) -> (FlowKey, Flow) {
        let key = FlowKey::new(offer.proto, offer.src, offer.dst);
        let egress = Egress {
            ifindex,
            dst_mac: offer.dst_mac,
            src_mac: offer.src_mac,
            max_len: offer.max_len,
        };
        (
            key,
            Flow::new(offer.action, egress).arriving(ingress.0, ingress.1),
        )
    }

    /// The entry with the interface its frames come in on and that interface's MAC: the
    /// program takes a unicast frame arriving there at that MAC as the director's without
    /// looking the interface's MAC up (which cost 12-20 ns a packet, see docs/benchmarks.md);
    /// any other frame of the flow is checked against [`FastPath::set_mac`]'s registry. An
    /// entry made by [`Flow::new`] alone is checked for every frame.
    pub fn arriving(self, ifindex: u32, mac: [u8; 6]) -> Flow {
        Flow {
            in_ifindex: ifindex,
            in_mac: mac,
            ..self
        }
    }

    /// An entry doing `action` toward `egress`, counters at zero.
    pub fn new(action: OfferAction, egress: Egress) -> Flow {
        let mut f = Flow {
            ifindex: egress.ifindex,
            max_len: egress.max_len,
            dst_mac: egress.dst_mac,
            src_mac: egress.src_mac,
            ..Flow::default()
        };
        match action {
            OfferAction::Rewrite { src, dst } => {
                f.op = OP_REWRITE;
                if let Some((a, p)) = src {
                    f.flags |= F_SRC;
                    f.saddr = addr16(a);
                    f.sport = p.to_be();
                }
                if let Some((a, p)) = dst {
                    f.flags |= F_DST;
                    f.daddr = addr16(a);
                    f.dport = p.to_be();
                }
            }
            OfferAction::Tunnel {
                src,
                dst,
                pmtu_disc,
                encap,
            } => {
                f.saddr = addr16(src);
                f.daddr = addr16(dst);
                if pmtu_disc {
                    f.flags |= F_PMTU_DISC;
                }
                if dst.is_ipv6() {
                    f.flags |= F_OUTER_V6;
                }
                let csum = match encap {
                    OfferEncap::Ipip => {
                        f.op = OP_IPIP;
                        false
                    }
                    OfferEncap::Gue { sport, port, csum } => {
                        f.op = OP_GUE;
                        // The rewrite's ports are unused by a tunnel: they hold the outer UDP's.
                        f.sport = sport.to_be();
                        f.dport = port.to_be();
                        csum
                    }
                    OfferEncap::Gre { csum } => {
                        f.op = OP_GRE;
                        csum
                    }
                };
                if csum {
                    f.flags |= F_TUN_CSUM;
                }
            }
        }
        f
    }

    /// True when `other` does the same thing (counters ignored).
    pub fn same_action(&self, other: &Flow) -> bool {
        Flow {
            packets: 0,
            bytes: 0,
            last_seen_ns: 0,
            ..*self
        } == Flow {
            packets: 0,
            bytes: 0,
            last_seen_ns: 0,
            ..*other
        }
    }

    /// Packets the program forwarded for this entry.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Their bytes (L3 length of the forwarded — inner, for tunnels — packets).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// When the program last forwarded a packet of the entry, on `CLOCK_MONOTONIC` at tick
    /// resolution (`bpf_ktime_get_coarse_ns`: up to one tick behind); `None` when it never did.
    pub fn last_seen(&self) -> Option<Duration> {
        (self.last_seen_ns != 0).then(|| Duration::from_nanos(self.last_seen_ns))
    }
}

/// Where the program runs on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// In the driver, before an skb exists.
    Native,
    /// Generic XDP in the stack, after the skb is built (works on every interface).
    Generic,
}

impl Mode {
    /// `native` / `generic`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Generic => "generic",
        }
    }
}

/// The program's verdict counters, summed over CPUs (`enum rvs_xdp_stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Forwarded out of the ingress interface (`XDP_TX`).
    pub tx: u64,
    /// Forwarded out of another interface (`XDP_REDIRECT`).
    pub redirect: u64,
    /// Passed: no entry for the 5-tuple.
    pub pass_no_flow: u64,
    /// Passed: SYN, FIN or RST (may change the connection's state).
    pub pass_state: u64,
    /// Passed: not a case the fast path handles (ICMP, fragment, IP options...).
    pub pass_other: u64,
    /// Passed: has an entry but TTL expiring, too big, or egress not in the redirect map.
    pub pass_limit: u64,
    /// Not forwarded, redirected to the slow path's AF_XDP socket (a subset of none of the
    /// above: a packet counts under one verdict).
    pub xsk: u64,
    /// Passed untouched: a unicast frame for another host's MAC (`PACKET_OTHERHOST`, which
    /// the host stack drops) that the program would otherwise have forwarded, answered or
    /// sent to the slow path (a frame it passes anyway is counted under that verdict).
    pub pass_other_host: u64,
}

/// The loaded program and its maps.
pub struct FastPath {
    ebpf: Ebpf,
    flows: HashMap<MapData, FlowKey, Flow>,
    /// The same map, for [`FastPath::flows_in_batches`].
    flows_fd: std::os::fd::OwnedFd,
    ports: DevMapHash<MapData>,
    macs: HashMap<MapData, u32, PortMac>,
    stats: PerCpuArray<MapData, u64>,
    slow: Option<SlowPath>,
    syn: crate::syn_answer::SynAnswer,
    attached: Vec<(u32, Mode)>,
}

impl std::fmt::Debug for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPath")
            .field("attached", &self.attached)
            .finish_non_exhaustive()
    }
}

/// The object `name` (one of `bpf/*.c`, built by build.rs) with its XDP program `program`
/// loaded into the kernel (the verifier checks it here), not attached: what every XDP
/// program of this crate starts from.
pub(crate) fn load_xdp(name: &str, program: &str) -> Result<Ebpf, Error> {
    let object = crate::object(name).map_err(|u| Error::Unavailable(u.reason))?;
    let mut ebpf = Ebpf::load(object)?;
    let prog: &mut Xdp = ebpf
        .program_mut(program)
        .ok_or_else(|| Error::Object(format!("no program {program}")))?
        .try_into()?;
    prog.load()?;
    Ok(ebpf)
}

impl FastPath {
    /// Loads `bpf/xdp.c` into the kernel (the verifier checks it here); attaches nothing.
    pub fn load() -> Result<FastPath, Error> {
        let mut ebpf = load_xdp("xdp", PROGRAM)?;
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| Error::Object(format!("no map {name}")))
        };
        let flows_map = take("rvs_flows")?;
        // Its own descriptor for the batch reads (aya has no call for BPF_MAP_LOOKUP_BATCH).
        let flows_fd = match &flows_map {
            aya::maps::Map::HashMap(d) => d
                .fd()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| Error::Object(format!("rvs_flows: dup: {e}")))?,
            _ => return Err(Error::Object("rvs_flows is not a hash map".into())),
        };
        let flows = HashMap::try_from(flows_map)?;
        let ports = DevMapHash::try_from(take("rvs_xdp_ports")?)?;
        let macs = HashMap::try_from(take("rvs_port_macs")?)?;
        let stats = PerCpuArray::try_from(take("rvs_xdp_stats")?)?;
        let slow = SlowPath {
            xsks: XskMap::try_from(take("rvs_xsks")?)?,
            slots: HashMap::try_from(take("rvs_xsk_slots")?)?,
            take: HashMap::try_from(take("rvs_take")?)?,
            taken: std::collections::HashMap::new(),
        };
        let syn = crate::syn_answer::SynAnswer::take(&mut ebpf)?;
        Ok(FastPath {
            ebpf,
            flows,
            flows_fd,
            ports,
            macs,
            stats,
            slow: Some(slow),
            syn,
            attached: Vec::new(),
        })
    }

    fn program(&mut self) -> Result<&mut Xdp, Error> {
        Ok(self
            .ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| Error::Object(format!("no program {PROGRAM}")))?
            .try_into()?)
    }

    /// Attaches the program to interface `ifindex`, whose own MAC is `mac`, in `mode` (or
    /// native, falling back to generic, when `None`) and adds the interface to the redirect
    /// map. Returns the mode in use. The program is detached when the [`FastPath`] is dropped.
    ///
    /// The MAC is registered first ([`FastPath::set_mac`]), so the program never runs on the
    /// interface without knowing which unicast frames are the director's.
    pub fn attach(
        &mut self,
        ifindex: u32,
        mac: [u8; 6],
        mode: Option<Mode>,
    ) -> Result<Mode, Error> {
        self.set_mac(ifindex, mac)?;
        let prog = self.program()?;
        let used = match mode {
            Some(Mode::Native) => {
                prog.attach_to_if_index(ifindex, XdpMode::Driver)?;
                Mode::Native
            }
            Some(Mode::Generic) => {
                prog.attach_to_if_index(ifindex, XdpMode::Skb)?;
                Mode::Generic
            }
            None => match prog.attach_to_if_index(ifindex, XdpMode::Driver) {
                Ok(_) => Mode::Native,
                Err(_) => {
                    prog.attach_to_if_index(ifindex, XdpMode::Skb)?;
                    Mode::Generic
                }
            },
        };
        self.add_port(ifindex)?;
        self.attached.push((ifindex, used));
        Ok(used)
    }

    /// Registers `mac` as interface `ifindex`'s own (again, after the interface's address
    /// changed). The program forwards, answers or sends to the slow path only the unicast
    /// frames addressed to the MAC of the interface they arrive on; a frame for another MAC,
    /// or on an interface with none registered, is passed untouched and counted as
    /// [`Counters::pass_other_host`] — the host stack drops it (`PACKET_OTHERHOST`).
    pub fn set_mac(&mut self, ifindex: u32, mac: [u8; 6]) -> Result<(), Error> {
        self.macs.insert(ifindex, PortMac { mac, pad: [0; 2] }, 0)?;
        Ok(())
    }

    /// Makes `ifindex` a possible egress (`XDP_REDIRECT` target) without attaching to it.
    pub fn add_port(&mut self, ifindex: u32) -> Result<(), Error> {
        self.ports.insert(ifindex, ifindex, None, 0)?;
        Ok(())
    }

    /// The maps of the AF_XDP slow path, to be owned by whoever registers the sockets and
    /// keeps the rules (the first call takes them; later calls answer `None`).
    pub fn slow_path(&mut self) -> Option<SlowPath> {
        self.slow.take()
    }

    /// The maps of the program's SYN answering (`bpf/syn_answer.h`).
    pub fn syn_answer(&mut self) -> &mut crate::syn_answer::SynAnswer {
        &mut self.syn
    }

    /// Where the program is attached, and how.
    pub fn attached(&self) -> &[(u32, Mode)] {
        &self.attached
    }

    /// Installs (or replaces) the entry for `key`. Replacing resets its counters: read them
    /// first with [`FastPath::flow`].
    pub fn insert(&mut self, key: &FlowKey, flow: &Flow) -> Result<(), Error> {
        self.flows.insert(key, flow, 0)?;
        Ok(())
    }

    /// Removes the entry for `key` (no error when there is none).
    pub fn remove(&mut self, key: &FlowKey) -> Result<(), Error> {
        match self.flows.remove(key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The entry for `key` with its counters, if installed.
    pub fn flow(&self, key: &FlowKey) -> Result<Option<Flow>, Error> {
        match self.flows.get(key, 0) {
            Ok(f) => Ok(Some(f)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads every entry with its counters, `max` at a time (`BPF_MAP_LOOKUP_BATCH`: one
    /// system call per batch instead of one per entry — the sweep of a million entries spent
    /// 2–3 s in per-entry look-ups), and hands each batch to `each` before reading the next, so
    /// the caller can act on it (and release a lock) between system calls. Entries added or
    /// removed meanwhile may be missed or seen; an entry is never handed twice. Fails (before
    /// any `each`) on a kernel without batch look-ups for hash maps (before 5.6).
    pub fn flows_in_batches(
        &self,
        max: usize,
        mut each: impl FnMut(&[FlowKey], &[Flow]),
    ) -> Result<(), Error> {
        let mut max = max.clamp(1, 1 << 16);
        let mut keys = vec![FlowKey::default(); max];
        let mut flows = vec![Flow::default(); max];
        // The position token: a hash map's is a 32-bit bucket index; room for more.
        let (mut from, mut next) = ([0u8; 16], [0u8; 16]);
        let mut first = true;
        // Each call reads at least one bucket or entry: bounded by the map's size.
        for _ in 0..(2 << 20) {
            let mut attr = BatchAttr {
                in_batch: if first { 0 } else { from.as_ptr() as u64 },
                out_batch: next.as_mut_ptr() as u64,
                keys: keys.as_mut_ptr() as u64,
                values: flows.as_mut_ptr() as u64,
                count: max as u32,
                map_fd: self.flows_fd.as_raw_fd() as u32,
                elem_flags: 0,
                flags: 0,
            };
            // SAFETY: `attr` is a complete BPF_MAP_LOOKUP_BATCH attribute block; `keys` and
            // `flows` hold `count` elements of exactly the map's key and value size (asserted
            // below), `from` and `next` are 16 bytes (the kernel reads and writes 4), all alive
            // and unaliased for the call; the kernel writes back `count`.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    BPF_MAP_LOOKUP_BATCH,
                    &mut attr as *mut BatchAttr,
                    std::mem::size_of::<BatchAttr>() as libc::c_uint,
                )
            };
            let errno = (rc < 0).then(std::io::Error::last_os_error);
            let n = (attr.count as usize).min(max);
            match errno.as_ref().and_then(|e| e.raw_os_error()) {
                None => {}
                // The end: the last entries (if any) came with it.
                Some(libc::ENOENT) => {
                    each(&keys[..n], &flows[..n]);
                    return Ok(());
                }
                // One bucket holds more than `max` entries: read it with more room.
                Some(libc::ENOSPC) if max < 1 << 16 => {
                    max *= 2;
                    keys.resize(max, FlowKey::default());
                    flows.resize(max, Flow::default());
                    continue;
                }
                Some(_) => {
                    return Err(Error::Object(format!(
                        "BPF_MAP_LOOKUP_BATCH on rvs_flows: {}",
                        errno.map(|e| e.to_string()).unwrap_or_default()
                    )))
                }
            }
            each(&keys[..n], &flows[..n]);
            from = next;
            first = false;
        }
        Err(Error::Object(
            "BPF_MAP_LOOKUP_BATCH on rvs_flows did not reach the end".into(),
        ))
    }

    /// The program's verdict counters.
    pub fn counters(&self) -> Result<Counters, Error> {
        let mut sums = [0u64; 8];
        for (i, sum) in sums.iter_mut().enumerate() {
            let per_cpu = self.stats.get(&(i as u32), 0)?;
            *sum = per_cpu.iter().copied().fold(0u64, u64::wrapping_add);
        }
        Ok(Counters {
            tx: sums[0],
            redirect: sums[1],
            pass_no_flow: sums[2],
            pass_state: sums[3],
            pass_other: sums[4],
            pass_limit: sums[5],
            xsk: sums[6],
            pass_other_host: sums[7],
        })
    }

    /// Runs the program once on `frame` as received on `ingress_ifindex`
    /// (`BPF_PROG_TEST_RUN`), with the maps as they are.
    pub fn test_run(
        &mut self,
        frame: &[u8],
        ingress_ifindex: u32,
    ) -> Result<crate::test_run::Run, Error> {
        let prog = self.program()?;
        let fd = prog.fd()?;
        crate::test_run::xdp(fd.as_fd(), frame, ingress_ifindex)
            .map_err(|e| Error::Object(format!("BPF_PROG_TEST_RUN: {e}")))
    }
}

/// A rule of the slow path: which packets the program sends to the AF_XDP socket rather than
/// to the host stack (the C `struct rvs_take_key`; see `rvs_xdp.h`). These mirror the nft
/// guard's rules, in the same order of precedence.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TakeKey {
    addr: [u8; 16],
    port: u16,
    family: u8,
    proto: u8,
    kind: u8,
    pad: [u8; 3],
}

/// The port ranges of a [`TakeKey::local_ports`] rule (the C `struct rvs_take_val`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakeRanges {
    lo: [u16; TAKE_RANGES],
    hi: [u16; TAKE_RANGES],
}

/// Port ranges one [`TakeKey::local_ports`] rule holds (`RVS_TAKE_RANGES`).
pub const TAKE_RANGES: usize = 4;
/// Interfaces and queues per interface the XSK map has room for (`RVS_XSK_SLOTS`,
/// `RVS_XSK_QUEUES`).
pub const XSK_SLOTS: u32 = 64;
/// See [`XSK_SLOTS`].
pub const XSK_QUEUES: u32 = 64;

const _: () = assert!(std::mem::size_of::<TakeKey>() == 24);
const _: () = assert!(std::mem::size_of::<TakeRanges>() == 16);

// SAFETY: #[repr(C)] structs of integers and byte arrays without implicit padding (sizes
// asserted above match the C layout): every bit pattern is valid, copyable as bytes.
unsafe impl aya::Pod for TakeKey {}
// SAFETY: as above.
unsafe impl aya::Pod for TakeRanges {}

impl Default for TakeRanges {
    /// No range (`lo > hi` in every slot).
    fn default() -> Self {
        TakeRanges {
            lo: [1; TAKE_RANGES],
            hi: [0; TAKE_RANGES],
        }
    }
}

const TAKE_VIP_ADDR: u8 = 1;
const TAKE_VIP_SVC: u8 = 2;
const TAKE_LPORT: u8 = 3;
const TAKE_KEEP: u8 = 4;
const TAKE_RS_ADDR: u8 = 5;
const TAKE_RS_SVC: u8 = 6;

impl TakeKey {
    fn new(kind: u8, addr: IpAddr, proto: u8, port: u16) -> TakeKey {
        TakeKey {
            addr: addr16(addr),
            port: port.to_be(),
            family: if addr.is_ipv6() { 6 } else { 4 },
            proto,
            kind,
            pad: [0; 3],
        }
    }

    /// Every packet to `addr` (a port-0 or firewall-mark service's VIP).
    pub fn vip(addr: IpAddr) -> TakeKey {
        TakeKey::new(TAKE_VIP_ADDR, addr, 0, 0)
    }

    /// Packets to `addr`, IP protocol `proto`, port `port` (a service).
    pub fn vip_service(addr: IpAddr, proto: u8, port: u16) -> TakeKey {
        TakeKey::new(TAKE_VIP_SVC, addr, proto, port)
    }

    /// Packets to `addr`, IP protocol `proto`, with a port in the rule's ranges (replies to a
    /// FULLNAT local address).
    pub fn local_ports(addr: IpAddr, proto: u8) -> TakeKey {
        TakeKey::new(TAKE_LPORT, addr, proto, 0)
    }

    /// The director's own address: packets to it are not taken by the real-server rules.
    pub fn keep(addr: IpAddr) -> TakeKey {
        TakeKey::new(TAKE_KEEP, addr, 0, 0)
    }

    /// Every packet from `addr` (a NAT real server listed by address).
    pub fn real_server(addr: IpAddr) -> TakeKey {
        TakeKey::new(TAKE_RS_ADDR, addr, 0, 0)
    }

    /// Packets from `addr`, IP protocol `proto`, port `port` (a NAT real server's replies).
    pub fn real_server_service(addr: IpAddr, proto: u8, port: u16) -> TakeKey {
        TakeKey::new(TAKE_RS_SVC, addr, proto, port)
    }
}

impl TakeRanges {
    /// Adds `lo..=hi`; false when the rule already holds [`TAKE_RANGES`] ranges.
    pub fn add(&mut self, lo: u16, hi: u16) -> bool {
        for i in 0..TAKE_RANGES {
            if self.lo[i] > self.hi[i] {
                self.lo[i] = lo;
                self.hi[i] = hi;
                return true;
            }
        }
        false
    }
}

/// The slow path's maps: the AF_XDP sockets by interface slot and queue, and the rules of
/// what goes to them.
pub struct SlowPath {
    xsks: XskMap<MapData>,
    slots: HashMap<MapData, u32, u32>,
    take: HashMap<MapData, TakeKey, TakeRanges>,
    taken: std::collections::HashMap<TakeKey, TakeRanges>,
}

impl std::fmt::Debug for SlowPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlowPath")
            .field("rules", &self.taken.len())
            .finish_non_exhaustive()
    }
}

impl SlowPath {
    /// Registers the AF_XDP socket `fd`, bound to queue `queue` of interface `ifindex`, which
    /// has slot `slot` (each interface its own, below [`XSK_SLOTS`]): the program redirects
    /// the packets rvsd takes that arrive on that queue to it.
    pub fn register(
        &mut self,
        ifindex: u32,
        slot: u32,
        queue: u32,
        fd: std::os::fd::RawFd,
    ) -> Result<(), Error> {
        if slot >= XSK_SLOTS || queue >= XSK_QUEUES {
            return Err(Error::Object(format!(
                "XSK slot {slot} / queue {queue} beyond the map ({XSK_SLOTS} x {XSK_QUEUES})"
            )));
        }
        self.xsks.set(slot * XSK_QUEUES + queue, fd, 0)?;
        self.slots.insert(ifindex, slot, 0)?;
        Ok(())
    }

    /// Makes the map's rules exactly `rules` (inserting the new ones first, then removing the
    /// ones that went, so a packet of a rule that stays never falls between two states).
    pub fn set_rules(
        &mut self,
        rules: &std::collections::HashMap<TakeKey, TakeRanges>,
    ) -> Result<(), Error> {
        for (k, v) in rules {
            if self.taken.get(k) != Some(v) {
                self.take.insert(k, v, 0)?;
                self.taken.insert(*k, *v);
            }
        }
        let gone: Vec<TakeKey> = self
            .taken
            .keys()
            .filter(|k| !rules.contains_key(k))
            .copied()
            .collect();
        for k in gone {
            match self.take.remove(&k) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e.into()),
            }
            self.taken.remove(&k);
        }
        Ok(())
    }

    /// Rules installed now.
    pub fn rules(&self) -> usize {
        self.taken.len()
    }
}
