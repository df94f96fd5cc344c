//! Dropping the capabilities rvsd never uses.
//!
//! Linux capabilities belong to each thread, and a thread starts with its creator's: so rvsd
//! reduces its sets once, first thing in `main`, before the runtime or any data-plane thread
//! exists, and every thread it starts later has only what is kept here. What is kept is what
//! the *running* daemon needs, because every start-up action can happen again later: a
//! `rvsadm -A` opens a proxy listener, a SIGHUP reload starts VRRP instances and checkers.
//!
//! Kept (effective and permitted):
//! - `CAP_NET_ADMIN`: VIPs added and removed over rtnetlink (VRRP), the packet plane's nft
//!   guard and interface settings, `SO_MARK` on checker sockets, forced socket buffers.
//! - `CAP_NET_RAW`: AF_PACKET sockets (packet plane, gratuitous ARP / NA), raw protocol-112
//!   sockets (VRRP), `SO_BINDTODEVICE` (checkers' `bind_if`).
//! - `CAP_NET_BIND_SERVICE`: proxy listeners on ports below 1024, opened whenever a service
//!   is added.
//! - `CAP_SETUID`, `CAP_SETGID`: checker and notify scripts run as their `script_user`.
//! - `CAP_KILL`: a timed-out script's process group, which runs as another user, is killed.
//! - `CAP_DAC_READ_SEARCH`: a reload reads the configuration and its `include`s with the
//!   rights start-up had, whoever owns them.
//! - Only with the packet plane's XDP fast path (`--interface` with `--xdp` other than
//!   `off`): `CAP_BPF` (its maps, and the syncer reads them all the daemon's life) and
//!   `CAP_PERFMON` (the verifier accepts the program's packet-pointer arithmetic only with it),
//!   and `CAP_IPC_LOCK`: the AF_XDP slow path's UMEM (8 MiB per socket) is pinned memory,
//!   which without it is charged to `RLIMIT_MEMLOCK` (often 8 MiB for the whole process).
//!   The proxy's kernel splicing (`--proxy-splice` other than `off`) keeps the same two: its
//!   sockmap program and maps need `CAP_BPF`.
//!
//! Everything else (for example `CAP_SYS_ADMIN`, `CAP_SYS_MODULE`, `CAP_DAC_OVERRIDE`,
//! `CAP_CHOWN`, `CAP_SYS_PTRACE`) leaves the effective, permitted and inheritable sets. The
//! bounding set is left alone: the scripts rvsd runs are programs of the administrator's
//! (keepalived runs them with full root rights), and a program executed as root gets the
//! bounding set back. The systemd unit narrows the bounding set for the whole service instead
//! (`CapabilityBoundingSet=`), which also covers the scripts.

use rustix::thread::{capabilities, set_capabilities, CapabilitySet, CapabilitySets};

/// The capabilities the running daemon keeps (see the module documentation for why each).
pub const KEEP: CapabilitySet = CapabilitySet::NET_ADMIN
    .union(CapabilitySet::NET_RAW)
    .union(CapabilitySet::NET_BIND_SERVICE)
    .union(CapabilitySet::SETUID)
    .union(CapabilitySet::SETGID)
    .union(CapabilitySet::KILL)
    .union(CapabilitySet::DAC_READ_SEARCH);

/// What the XDP fast path needs on top of [`KEEP`].
pub const KEEP_XDP: CapabilitySet = CapabilitySet::BPF
    .union(CapabilitySet::PERFMON)
    .union(CapabilitySet::IPC_LOCK);

/// What [`drop_unneeded`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Capabilities that were permitted before and no longer are.
    pub dropped: CapabilitySet,
    /// Capabilities still permitted.
    pub kept: CapabilitySet,
}

/// Reduce the calling thread's effective, permitted and inheritable sets to [`KEEP`] (with
/// [`KEEP_XDP`] when `xdp`). Call before any other thread is started. A process that holds
/// nothing beyond them (an unprivileged user) has nothing to drop.
pub fn drop_unneeded(xdp: bool) -> std::io::Result<Dropped> {
    let keep = if xdp { KEEP.union(KEEP_XDP) } else { KEEP };
    let cur = capabilities(None)?;
    let want = CapabilitySets {
        effective: cur.effective & keep,
        permitted: cur.permitted & keep,
        inheritable: cur.inheritable & keep,
    };
    if want != cur {
        set_capabilities(None, want)?;
    }
    Ok(Dropped {
        dropped: cur.permitted - want.permitted,
        kept: want.permitted,
    })
}

/// `cap_net_admin,cap_net_raw,…` for the log.
pub fn names(set: CapabilitySet) -> String {
    let v: Vec<String> = set
        .iter_names()
        .map(|(n, _)| format!("cap_{}", n.to_ascii_lowercase()))
        .collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_capability_names() {
        assert_eq!(
            names(CapabilitySet::NET_ADMIN | CapabilitySet::KILL),
            "cap_kill,cap_net_admin"
        );
        assert_eq!(names(CapabilitySet::empty()), "none");
    }

    #[test]
    fn keep_is_what_the_unit_allows() {
        // The unit's CapabilityBoundingSet must hold every kept capability, or a kept one
        // would be missing under systemd (and one allowed there but not kept is dead weight).
        let unit = include_str!("../../../dist/systemd/rvsd.service");
        let line = unit
            .lines()
            .find(|l| l.starts_with("CapabilityBoundingSet="))
            .expect("CapabilityBoundingSet line");
        let mut allowed: Vec<String> = line["CapabilityBoundingSet=".len()..]
            .split_whitespace()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        allowed.sort();
        let mut kept: Vec<String> = names(KEEP).split(',').map(String::from).collect();
        kept.sort();
        assert_eq!(allowed, kept);
    }
}
