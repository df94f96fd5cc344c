//! The machine's available memory, as the kernel's IPVS reads it for its automatic defences
//! (`amemthresh`) and its sysctl defaults (`sync_qlen_max`).

/// Available memory in pages (free + reclaimable, `MemAvailable`), for the automatic defences.
pub fn available_pages() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb / 4)
        .unwrap_or(u64::MAX)
}
