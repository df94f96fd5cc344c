//! The benches' packet generator (`bpf/trafficgen.c`): 64-byte IPv4 UDP datagrams or TCP SYNs
//! sent with `BPF_PROG_TEST_RUN` in live-frames mode, so the generating CPU pays tens of
//! nanoseconds per frame (no socket, no skb on its side) and the receiver is what a bench
//! measures. `rvs-lab trafficgen` is its command line; `bench/packet.sh` drives it.
//!
//! Why not an existing tool: trafgen (netsniff-ng) builds an skb per frame on its CPU and,
//! when the receiving veth runs NAPI (which is what moves the director's work to its own CPU),
//! its frames wait in the veth's ring holding the socket's send buffer, so it stops with
//! `EAGAIN` as soon as the receiver is saturated; xdp-trafficgen (xdp-tools 1.3.1, the same
//! kernel mechanism) does not load on kernel 6.18 (its probe program attaches to the
//! `xdp_redirect_map_err` tracepoint, which this kernel no longer has).
#![allow(unsafe_code)]

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::time::Instant;

use aya::maps::{Array, MapData};
use aya::programs::Xdp;
use aya::Ebpf;
use rvs_packet::checksum;

use crate::test_run::{self, Run};
use crate::xdp::Error;

const PROGRAM: &str = "rvs_trafficgen";

/// `struct rvs_gen_cfg`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cfg {
    mode: u32,
    span: u32,
    base: u32,
    l4_csum_off: u32,
    ip_sum: u32,
    l4_sum: u32,
    udp: u32,
    pad: u32,
    frame: [u8; 64],
}

impl Default for Cfg {
    fn default() -> Cfg {
        Cfg {
            mode: 0,
            span: 0,
            base: 0,
            l4_csum_off: 0,
            ip_sum: 0,
            l4_sum: 0,
            udp: 0,
            pad: 0,
            frame: [0; 64],
        }
    }
}

/// Every frame's length (`RVS_GEN_LEN`): 64 bytes on the wire with the FCS.
const LEN: usize = 60;

const _: () = assert!(std::mem::size_of::<Cfg>() == 96);

/// `struct rvs_gen_pace`: the program's pacer, in 1/256 ns.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Pace {
    interval: u64,
    burst: u64,
    next: u64,
}

// SAFETY: a #[repr(C)] struct of three u64s, no padding: every bit pattern is valid.
unsafe impl aya::Pod for Pace {}

/// The pacer's unit: 1/256 ns, so an interval keeps a fraction of a nanosecond (at a million
/// frames a second, a whole-nanosecond interval would already be 0.05 % off at some rates).
const PACE_UNIT: u128 = 256;

// SAFETY: a #[repr(C)] struct of u32s and a byte array, without padding (size asserted above,
// the C layout): every bit pattern is valid, copyable as bytes.
unsafe impl aya::Pod for Cfg {}

/// What the frames carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// A UDP datagram of 18 payload bytes (a 64-byte frame with its FCS).
    Udp,
    /// A TCP SYN without options (padded to the 60-byte minimum frame).
    TcpSyn,
}

/// What changes from one frame to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vary {
    /// The transport source port runs through `count` ports from the template's: `count`
    /// flows, each seen again every `count` frames (established flows).
    SourcePort {
        /// How many flows.
        count: u32,
    },
    /// The IPv4 source address runs through `count` addresses from `first`: every frame a
    /// new flow until the sequence wraps (new connections, a SYN flood).
    SourceAddr {
        /// The first source address.
        first: Ipv4Addr,
        /// How many addresses.
        count: u32,
    },
}

/// The frame template and how it varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Destination MAC (the receiver's interface).
    pub dst_mac: [u8; 6],
    /// Source MAC (the sending interface).
    pub src_mac: [u8; 6],
    /// IPv4 source of the template (with [`Vary::SourceAddr`], replaced in every frame).
    pub saddr: Ipv4Addr,
    /// IPv4 destination.
    pub daddr: Ipv4Addr,
    /// UDP or TCP SYN.
    pub proto: Proto,
    /// Transport source port of the template (the first flow's).
    pub sport: u16,
    /// Transport destination port.
    pub dport: u16,
    /// What changes per frame.
    pub vary: Vary,
}

/// The template: Ethernet, IPv4 (TTL 64, DF clear, no options), UDP with 18 bytes of 0x41 or a
/// TCP SYN (window 65535) padded to 60 bytes; checksums complete.
pub fn frame(spec: &Spec) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&spec.dst_mac);
    f.extend_from_slice(&spec.src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let (proto, l4_len) = match spec.proto {
        Proto::Udp => (17u8, 8 + 18),
        Proto::TcpSyn => (6u8, 20),
    };
    let total = 20 + l4_len;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&spec.saddr.octets());
    ip[16..20].copy_from_slice(&spec.daddr.octets());
    let c = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut l4 = Vec::with_capacity(l4_len as usize);
    l4.extend_from_slice(&spec.sport.to_be_bytes());
    l4.extend_from_slice(&spec.dport.to_be_bytes());
    match spec.proto {
        Proto::Udp => {
            l4.extend_from_slice(&(l4_len as u16).to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
            l4.extend_from_slice(&[0x41; 18]);
        }
        Proto::TcpSyn => {
            l4.extend_from_slice(&1u32.to_be_bytes()); // sequence number
            l4.extend_from_slice(&0u32.to_be_bytes()); // acknowledgment number
            l4.push(5 << 4); // data offset: 20 bytes
            l4.push(0x02); // SYN
            l4.extend_from_slice(&0xffffu16.to_be_bytes()); // window
            l4.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        }
    }
    let pseudo = checksum::pseudo_v4(spec.saddr, spec.daddr, proto, l4_len);
    let mut c = !checksum::fold(checksum::sum(pseudo, &l4));
    if spec.proto == Proto::Udp {
        c = checksum::udp_mangle_zero(c);
    }
    let at = if spec.proto == Proto::Udp { 6 } else { 16 };
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&l4);
    f.resize(LEN, 0);
    f
}

/// A 16-bit word of `f` at `at` as the program reads it (memory order): the program's sums
/// are all in that order, which one's-complement addition allows.
fn word(f: &[u8], at: usize) -> u32 {
    u32::from(u16::from_ne_bytes([f[at], f[at + 1]]))
}

/// The program's configuration for `spec` over its template `f`.
fn cfg(spec: &Spec, f: &[u8]) -> Cfg {
    let l4_csum_off: usize = match spec.proto {
        Proto::Udp => 40,
        Proto::TcpSyn => 50,
    };
    let not = |w: u32| 0xffff - w;
    let mut c = Cfg {
        l4_csum_off: l4_csum_off as u32,
        udp: u32::from(spec.proto == Proto::Udp),
        ..Cfg::default()
    };
    c.frame[..LEN].copy_from_slice(f);
    match spec.vary {
        Vary::SourcePort { count } => {
            c.mode = 0;
            c.span = count;
            c.base = u32::from(spec.sport);
            c.l4_sum = not(word(f, l4_csum_off)) + not(word(f, 34));
        }
        Vary::SourceAddr { first, count } => {
            c.mode = 1;
            c.span = count;
            c.base = u32::from(first);
            let old = not(word(f, 26)) + not(word(f, 28));
            c.ip_sum = not(word(f, 24)) + old;
            c.l4_sum = not(word(f, l4_csum_off)) + old;
        }
    }
    c
}

/// The pacer's setting for `rate` frames per second (0: flat out) and bursts of at most
/// `burst` frames.
fn pacing(rate: u64, burst: u64) -> Pace {
    if rate == 0 {
        return Pace::default();
    }
    let interval = (1_000_000_000 * PACE_UNIT / u128::from(rate)).max(1) as u64;
    Pace {
        interval,
        // `burst` frames due at once: the current one and `burst - 1` intervals' worth.
        burst: interval.saturating_mul(burst.max(1) - 1),
        next: 0,
    }
}

/// The loaded generator.
pub struct Generator {
    ebpf: Ebpf,
    seq: Array<MapData, u64>,
    pace: Array<MapData, Pace>,
    frame: Vec<u8>,
}

impl Generator {
    /// Loads `bpf/trafficgen.c` (the verifier checks it here) configured for `spec`.
    pub fn load(spec: &Spec) -> Result<Generator, Error> {
        let mut ebpf = crate::xdp::load_xdp("trafficgen", PROGRAM)?;
        let frame = frame(spec);
        let mut cfgs: Array<MapData, Cfg> = Array::try_from(
            ebpf.take_map("rvs_gen_cfg")
                .ok_or_else(|| Error::Object("no map rvs_gen_cfg".into()))?,
        )?;
        cfgs.set(0, cfg(spec, &frame), 0)?;
        let seq = Array::try_from(
            ebpf.take_map("rvs_gen_seq")
                .ok_or_else(|| Error::Object("no map rvs_gen_seq".into()))?,
        )?;
        let pace = Array::try_from(
            ebpf.take_map("rvs_gen_pace")
                .ok_or_else(|| Error::Object("no map rvs_gen_pace".into()))?,
        )?;
        Ok(Generator {
            ebpf,
            seq,
            pace,
            frame,
        })
    }

    fn program(&self) -> Result<&Xdp, Error> {
        Ok(self
            .ebpf
            .program(PROGRAM)
            .ok_or_else(|| Error::Object(format!("no program {PROGRAM}")))?
            .try_into()?)
    }

    /// Paces what follows at `rate` frames per second (0, the default: as fast as the CPU
    /// goes), at most `burst` frames back to back when the sender fell behind. The program
    /// paces itself (see `bpf/trafficgen.c`): a repetition before the next frame's due time is
    /// dropped, not sent and not counted.
    pub fn set_rate(&mut self, rate: u64, burst: u64) -> Result<(), Error> {
        Ok(self.pace.set(0, pacing(rate, burst), 0)?)
    }

    /// Sends out of interface `ifindex` (of the caller's network namespace) until `deadline`,
    /// at the set rate: one kernel call for the whole run. A frame the interface could not
    /// take (a veth whose peer's ring is full) is dropped by it and counted there.
    pub fn send_until(&self, ifindex: u32, deadline: Instant) -> Result<(), Error> {
        let fd = self.program()?.fd()?;
        test_run::xdp_live_until(fd.as_fd(), &self.frame, ifindex, 0, deadline)
            .map_err(|e| Error::Object(format!("BPF_PROG_TEST_RUN (live frames): {e}")))
    }

    /// One frame as the program makes it, without sending it (`BPF_PROG_TEST_RUN`, not live):
    /// for tests. Advances the sequence like a sent frame.
    pub fn next_frame(&self) -> Result<Run, Error> {
        self.next_frame_over(&self.frame)
    }

    /// The same, the program given `stale` (60 bytes) as the page's content: what it makes of
    /// a recycled page that still holds a frame a receiver rewrote.
    pub fn next_frame_over(&self, stale: &[u8]) -> Result<Run, Error> {
        let fd = self.program()?.fd()?;
        test_run::xdp(fd.as_fd(), stale, 0)
            .map_err(|e| Error::Object(format!("BPF_PROG_TEST_RUN: {e}")))
    }

    /// Frames the program has produced so far (sent or not).
    pub fn produced(&self) -> Result<u64, Error> {
        Ok(self.seq.get(&0, 0)?)
    }
}
