//! The HA pair's director-side checks shared by the failover tests (VRRP, connection sync).

use rvs_lab::Netns;

/// True while `ns` holds `cidr` (e.g. `10.1.0.100/24`) on `dev`: the VRRP MASTER's VIP.
pub fn has_addr(ns: &Netns, dev: &str, cidr: &str) -> bool {
    ns.ip(["-4", "-o", "addr", "show", "dev", dev])
        .map(|s| s.contains(cidr))
        .unwrap_or(false)
}

/// A lost machine's first half: every link in `devs` goes down (no last advert, no ARP, no
/// more sync messages); the caller then SIGKILLs its rvsd.
pub fn links_down(ns: &Netns, devs: &[&str]) {
    for dev in devs {
        ns.ip(["link", "set", dev, "down"]).expect("link down");
    }
}

/// A lost machine coming back: every link in `devs` up again.
pub fn links_up(ns: &Netns, devs: &[&str]) {
    for dev in devs {
        ns.ip(["link", "set", dev, "up"]).expect("link up");
    }
}
