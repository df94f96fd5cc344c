//! `rvs-lab sink`: the benches' packet sink (`rvs_bpf::sink`) attached to an interface of the
//! current network namespace (run it under `ip netns exec`), its counts written to a file
//! every 20 ms until its lifetime ends or it is killed (detaching with the process).

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use rvs_bpf::sink::Sink;

use crate::error::{LabError, Result};
use crate::trafficgen::ifindex_of;

/// Attaches the sink for destinations in `net`/`len` to `dev` and keeps `count_file` at
/// `udp9 N\ntcp80 M\n` (replaced whole, by rename, so a reader never sees half of it) for
/// `lifetime`.
pub fn run(
    dev: &str,
    (net, len): (Ipv4Addr, u8),
    count_file: &Path,
    lifetime: Duration,
) -> Result<()> {
    let bad = |e: rvs_bpf::xdp::Error| LabError::Invalid(format!("packet sink on {dev}: {e}"));
    let mut sink = Sink::load(net, len).map_err(bad)?;
    let mode = sink.attach(ifindex_of(dev)?).map_err(bad)?;
    eprintln!(
        "rvs-lab sink: on {dev} ({} XDP), counting into {}",
        mode.name(),
        count_file.display()
    );
    let tmp = count_file.with_extension("tmp");
    let end = Instant::now() + lifetime;
    while Instant::now() < end {
        let c = sink.counts().map_err(bad)?;
        std::fs::write(&tmp, format!("udp9 {}\ntcp80 {}\n", c.udp9, c.tcp80))
            .map_err(|e| LabError::io(tmp.display().to_string(), e))?;
        std::fs::rename(&tmp, count_file)
            .map_err(|e| LabError::io(count_file.display().to_string(), e))?;
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
