//! The maps of the XDP program's SYN answering (`bpf/syn_answer.h`,
//! docs/internals/syn-flood.md#syn-answering-in-xdp): the cookie key and clock, the services
//! whose SYNs the program answers, the interfaces' MTUs, and what it counted.
//!
//! The program answers a SYN exactly as the userspace SYN proxy would
//! (`rvs_packet::syncookie`): rvsd keeps these maps equal to its director's view — the key
//! derived from the director's seed, the epoch of its clock, the set of services
//! `Director::syn_proxy_serves` accepts — and the userspace proxy checks the cookies.
#![allow(unsafe_code)]

use std::collections::HashSet;
use std::net::IpAddr;

use aya::maps::{Array, HashMap, MapData, MapError, PerCpuArray};
use aya::Ebpf;
use rvs_packet::syncookie::CookieKey;

use crate::xdp::Error;

/// `struct rvs_syn_cfg`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cfg {
    key: [u64; 2],
    epoch_ns: u64,
    on: u32,
    pad: u32,
}

/// `struct rvs_syn_svc`: a SYN-proxied service's address and port.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Svc {
    addr: [u8; 16],
    port: u16,
    family: u8,
    pad: u8,
}

const _: () = assert!(std::mem::size_of::<Cfg>() == 32);
const _: () = assert!(std::mem::size_of::<Svc>() == 20);

// SAFETY: #[repr(C)] structs of integers and byte arrays without implicit padding (sizes
// asserted above match the C layout): every bit pattern is valid, copyable as bytes.
unsafe impl aya::Pod for Cfg {}
// SAFETY: as above.
unsafe impl aya::Pod for Svc {}

/// What the program's SYN answering counted, summed over CPUs (`enum rvs_syn_stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SynCounters {
    /// SYNs answered with a cookie SYN-ACK in XDP.
    pub answered: u64,
    /// SYNs to a served service left to userspace (a shape the program does not rewrite,
    /// no room to grow the frame, no MTU for the interface).
    pub left: u64,
}

/// The SYN answering's maps.
pub struct SynAnswer {
    cfg: Array<MapData, Cfg>,
    svcs: HashMap<MapData, Svc, u32>,
    mtu: HashMap<MapData, u32, u32>,
    stats: PerCpuArray<MapData, u64>,
    current: Cfg,
    services: HashSet<Svc>,
}

impl std::fmt::Debug for SynAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SynAnswer")
            .field("on", &self.current.on)
            .field("services", &self.services.len())
            .finish_non_exhaustive()
    }
}

fn svc(addr: IpAddr, port: u16) -> Svc {
    let mut a = [0u8; 16];
    let family = match addr {
        IpAddr::V4(v) => {
            a[..4].copy_from_slice(&v.octets());
            4
        }
        IpAddr::V6(v) => {
            a = v.octets();
            6
        }
    };
    Svc {
        addr: a,
        port: port.to_be(),
        family,
        pad: 0,
    }
}

impl SynAnswer {
    /// Takes the maps out of the loaded object.
    pub(crate) fn take(ebpf: &mut Ebpf) -> Result<SynAnswer, Error> {
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| Error::Object(format!("no map {name}")))
        };
        Ok(SynAnswer {
            cfg: Array::try_from(take("rvs_syn_cfg")?)?,
            svcs: HashMap::try_from(take("rvs_syn_svcs")?)?,
            mtu: HashMap::try_from(take("rvs_syn_mtu")?)?,
            stats: PerCpuArray::try_from(take("rvs_syn_stats")?)?,
            current: Cfg::default(),
            services: HashSet::new(),
        })
    }

    /// Sets the cookie key, rvsd's clock zero on `CLOCK_MONOTONIC` (nanoseconds: the
    /// program's time is `(bpf_ktime_get_ns() - epoch_ns)`, read as the userspace proxy reads
    /// rvsd's clock) and whether to answer at all. Written only when it changed.
    pub fn set_config(&mut self, key: CookieKey, epoch_ns: u64, on: bool) -> Result<(), Error> {
        let c = Cfg {
            key: key.0,
            epoch_ns,
            on: u32::from(on),
            pad: 0,
        };
        if c != self.current {
            self.cfg.set(0, c, 0)?;
            self.current = c;
        }
        Ok(())
    }

    /// Whether the program answers now.
    pub fn is_on(&self) -> bool {
        self.current.on != 0
    }

    /// Makes the served services exactly `services` (address, port): new ones first, then
    /// the ones that went. IPv6 services are stored but not answered yet (the program
    /// answers IPv4 SYNs only; userspace answers the others).
    pub fn set_services(&mut self, services: &HashSet<(IpAddr, u16)>) -> Result<(), Error> {
        let want: HashSet<Svc> = services.iter().map(|&(a, p)| svc(a, p)).collect();
        for s in want.difference(&self.services) {
            self.svcs.insert(s, 1, 0)?;
        }
        for s in self.services.difference(&want) {
            match self.svcs.remove(s) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.services = want;
        Ok(())
    }

    /// Services served now.
    pub fn services(&self) -> usize {
        self.services.len()
    }

    /// The MTU of interface `ifindex` (the SYN-ACK's MSS is the ingress link's, less the
    /// headers, as the userspace proxy computes it). A SYN arriving on an interface without
    /// one is left to userspace.
    pub fn set_mtu(&mut self, ifindex: u32, mtu: u32) -> Result<(), Error> {
        self.mtu.insert(ifindex, mtu, 0)?;
        Ok(())
    }

    /// Forgets interface `ifindex`'s MTU: its SYNs are left to userspace.
    pub fn clear_mtu(&mut self, ifindex: u32) -> Result<(), Error> {
        match self.mtu.remove(&ifindex) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// What the program counted.
    pub fn counters(&self) -> Result<SynCounters, Error> {
        let mut sums = [0u64; 2];
        for (i, sum) in sums.iter_mut().enumerate() {
            let per_cpu = self.stats.get(&(i as u32), 0)?;
            *sum = per_cpu.iter().copied().fold(0u64, u64::wrapping_add);
        }
        Ok(SynCounters {
            answered: sums[0],
            left: sums[1],
        })
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of the program's `bpf_ktime_get_ns`, against
/// which [`SynAnswer::set_config`]'s epoch is given.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call;
    // CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}
