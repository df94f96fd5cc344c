//! The benches' packet sink (`bpf/sink.c`): counts and drops, at the first interface after the
//! director, the datagrams and segments the director forwarded to the real servers, so the far
//! side of a bench costs a few tens of nanoseconds per packet instead of a bridge and two
//! namespaces' receive (`rvs-lab sink` is its command line; `bench/packet.sh` uses it).

use std::net::Ipv4Addr;

use aya::maps::{Array, MapData, PerCpuArray};
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;

use crate::xdp::Error;

const PROGRAM: &str = "rvs_sink";

/// `struct rvs_sink_cfg`: the real servers' prefix, network order.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Cfg {
    net: u32,
    mask: u32,
}

// SAFETY: a #[repr(C)] pair of u32s, no padding: every bit pattern is valid.
#[allow(unsafe_code)]
unsafe impl aya::Pod for Cfg {}

/// What the sink counted (and dropped), summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// UDP datagrams to port 9 addressed into the prefix.
    pub udp9: u64,
    /// TCP segments to port 80 addressed into the prefix.
    pub tcp80: u64,
}

/// The loaded sink (attached by [`Sink::attach`]; detached when dropped).
pub struct Sink {
    ebpf: Ebpf,
    stats: PerCpuArray<MapData, u64>,
}

impl Sink {
    /// Loads `bpf/sink.c` for destinations in `net`/`prefix_len`.
    pub fn load(net: Ipv4Addr, prefix_len: u8) -> Result<Sink, Error> {
        if prefix_len > 32 {
            return Err(Error::Object(format!("prefix length {prefix_len} > 32")));
        }
        let mut ebpf = crate::xdp::load_xdp("sink", PROGRAM)?;
        let mask = u32::MAX
            .checked_shl(32 - u32::from(prefix_len))
            .unwrap_or(0);
        let mut cfg: Array<MapData, Cfg> = Array::try_from(
            ebpf.take_map("rvs_sink_cfg")
                .ok_or_else(|| Error::Object("no map rvs_sink_cfg".into()))?,
        )?;
        cfg.set(
            0,
            Cfg {
                net: (u32::from(net) & mask).to_be(),
                mask: mask.to_be(),
            },
            0,
        )?;
        let stats = PerCpuArray::try_from(
            ebpf.take_map("rvs_sink_stats")
                .ok_or_else(|| Error::Object("no map rvs_sink_stats".into()))?,
        )?;
        Ok(Sink { ebpf, stats })
    }

    /// Attaches to `ifindex` (of the caller's network namespace), natively where the driver
    /// can (a veth can), else generic.
    pub fn attach(&mut self, ifindex: u32) -> Result<crate::xdp::Mode, Error> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| Error::Object(format!("no program {PROGRAM}")))?
            .try_into()?;
        Ok(match prog.attach_to_if_index(ifindex, XdpMode::Driver) {
            Ok(_) => crate::xdp::Mode::Native,
            Err(_) => {
                prog.attach_to_if_index(ifindex, XdpMode::Skb)?;
                crate::xdp::Mode::Generic
            }
        })
    }

    /// The counts so far.
    pub fn counts(&self) -> Result<Counts, Error> {
        let sum =
            |i: u32| -> Result<u64, Error> { Ok(self.stats.get(&i, 0)?.iter().copied().sum()) };
        Ok(Counts {
            udp9: sum(0)?,
            tcp80: sum(1)?,
        })
    }

    /// The program, for a test run (`BPF_PROG_TEST_RUN`) without attaching it.
    pub fn program(&self) -> Result<&Xdp, Error> {
        Ok(self
            .ebpf
            .program(PROGRAM)
            .ok_or_else(|| Error::Object(format!("no program {PROGRAM}")))?
            .try_into()?)
    }
}
