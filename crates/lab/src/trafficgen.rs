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

/// The most frames one `BPF_PROG_TEST_RUN` call makes: a few milliseconds at full speed, so
/// the duration and the rate are kept to within that.
const CHUNK: u64 = 16 * 1024;

/// The most frames one call makes at a set rate: a burst far below a veth's 256-frame ring.
const PACED_BURST: u64 = 32;

fn sysfs(dev: &str, what: &str) -> Result<String> {
    let path = format!("/sys/class/net/{dev}/{what}");
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| LabError::io(path, e))
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
    let ifindex: u32 = sysfs(&opts.dev, "ifindex")?
        .parse()
        .map_err(|_| LabError::Invalid(format!("ifindex of {}", opts.dev)))?;
    let gen = Generator::load(&opts.spec)
        .map_err(|e| LabError::Invalid(format!("traffic generator: {e}")))?;
    let start = Instant::now();
    let mut sent = 0u64;
    // Frames a paced run gave up on (it fell more than a millisecond behind): catching up in
    // one burst would overflow the receiver's ring at a rate it sustains on average.
    let mut skipped = 0u64;
    let max_behind = (opts.rate / 1000).max(PACED_BURST);
    loop {
        let elapsed = start.elapsed();
        if elapsed >= opts.duration {
            break;
        }
        let n = if opts.rate == 0 {
            CHUNK
        } else {
            let due = ((opts.rate as f64 * elapsed.as_secs_f64()) as u64).saturating_sub(skipped);
            if due <= sent {
                std::thread::sleep(Duration::from_micros(20));
                continue;
            }
            let mut behind = due - sent;
            if behind > max_behind {
                skipped += behind - max_behind;
                behind = max_behind;
            }
            behind.min(PACED_BURST)
        };
        gen.send(ifindex, n as u32, 0)
            .map_err(|e| LabError::Invalid(format!("sending on {}: {e}", opts.dev)))?;
        sent += n;
    }
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
