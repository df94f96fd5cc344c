//! `rvs-lab trafficgen`: the benches' packet generator (`rvs_bpf::trafficgen`) driven for a
//! duration at a rate, out of an interface of the current network namespace (run it under
//! `ip netns exec`). bench/packet.sh uses it as the client.

use std::time::{Duration, Instant};

use rvs_bpf::trafficgen::{Generator, Spec};

use crate::error::{LabError, Result};

/// What to send, where, how fast and how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// The sending interface (its MAC is the frames' source).
    pub dev: String,
    /// The frames' template and what varies.
    pub spec: Spec,
    /// Frames per second; 0: as fast as the generator's CPU and the interface go.
    pub rate: u64,
    /// How long.
    pub duration: Duration,
}

/// What a run produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Frames the program made and handed to the interface (the interface's own counters say
    /// how many it could transmit).
    pub produced: u64,
    /// How long the run took.
    pub elapsed: Duration,
    /// CPU time this process spent (its `/proc/self/schedstat`, kernel time included: the
    /// frames are made inside the `bpf(2)` call), so a bench can leave the generator out of
    /// the machine's busy time.
    pub cpu: Duration,
}

/// The most frames a paced run sends back to back after it fell behind (preempted): far below
/// a veth's 256-frame ring, so a rate the receiver sustains on average does not overflow it.
const PACED_BURST: u64 = 32;

fn sysfs(dev: &str, what: &str) -> Result<String> {
    let path = format!("/sys/class/net/{dev}/{what}");
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| LabError::io(path, e))
}

/// The interface index of `dev` in the current namespace.
pub fn ifindex_of(dev: &str) -> Result<u32> {
    sysfs(dev, "ifindex")?
        .parse()
        .map_err(|_| LabError::Invalid(format!("ifindex of {dev}")))
}

/// The MAC of `dev` in the current namespace.
pub fn mac_of(dev: &str) -> Result<[u8; 6]> {
    parse_mac(&sysfs(dev, "address")?)
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || LabError::Invalid(format!("not a MAC address: {s}"));
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next().ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// Sends for `opts.duration`, at `opts.rate` when not 0.
pub fn run(opts: &Options) -> Result<Report> {
    let ifindex = ifindex_of(&opts.dev)?;
    let mut gen = Generator::load(&opts.spec)
        .map_err(|e| LabError::Invalid(format!("traffic generator: {e}")))?;
    let start = Instant::now();
    gen.set_rate(opts.rate, PACED_BURST)
        .map_err(|e| LabError::Invalid(format!("traffic generator: {e}")))?;
    gen.send_until(ifindex, start + opts.duration)
        .map_err(|e| LabError::Invalid(format!("sending on {}: {e}", opts.dev)))?;
    let produced = gen
        .produced()
        .map_err(|e| LabError::Invalid(format!("traffic generator: {e}")))?;
    let schedstat = std::fs::read_to_string("/proc/self/schedstat")
        .map_err(|e| LabError::io("/proc/self/schedstat", e))?;
    let cpu_ns: u64 = schedstat
        .split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| LabError::Invalid(format!("/proc/self/schedstat: {schedstat}")))?;
    Ok(Report {
        produced,
        elapsed: start.elapsed(),
        cpu: Duration::from_nanos(cpu_ns),
    })
}
