//! Two namespaces joined by one veth: the sync daemon tests' bench, where `a` plays the peer
//! director (it multicasts hand-built sync messages) and rvsd runs in `b`.
//!
//! Why here: every sync-daemon test needs the same link, work directory and multicast sender;
//! one copy keeps their addresses and socket options consistent (TTL / hop limit 1, the
//! sender's interface pinned, as a director's master daemon sends).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use rvs_lab::{Lab, Netns};
use socket2::{Domain, Protocol, Socket, Type};

use crate::wait;

/// `a` (10.9.0.1/24 on `a0`) and `b` (10.9.0.2/24 on `b0`), and `b`'s work directory.
pub struct SyncLink {
    /// The peer: sends sync messages.
    pub a: Netns,
    /// Where rvsd runs.
    pub b: Netns,
    /// rvsd's work directory (in the lab's).
    pub dir: PathBuf,
    // Last: the namespaces go after everything that refers to them.
    lab: Lab,
}

impl SyncLink {
    /// Builds the link in a fresh lab named after `tag`.
    ///
    /// # Panics
    /// If a namespace, the veth or an address cannot be made (root is checked by the caller).
    pub fn new(tag: &str) -> SyncLink {
        let mut lab = Lab::new(tag).expect("lab");
        let a = lab.add_netns("a").expect("netns a");
        let b = lab.add_netns("b").expect("netns b");
        lab.veth(&a, "a0", &b, "b0").expect("veth");
        a.add_addr("a0", "10.9.0.1/24").expect("addr a");
        b.add_addr("b0", "10.9.0.2/24").expect("addr b");
        let dir = lab.workdir().join("b");
        std::fs::create_dir_all(&dir).expect("workdir");
        SyncLink { a, b, dir, lab }
    }

    /// The lab (its work directory, or to hand it processes).
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// Waits (at most 10 s) until both ends have a link-local IPv6 address out of duplicate
    /// address detection, so an IPv6 multicast can be sent and received.
    ///
    /// # Panics
    /// If one does not.
    pub fn wait_ipv6(&self) {
        for (ns, dev) in [(&self.a, "a0"), (&self.b, "b0")] {
            assert!(
                wait(Duration::from_secs(10), || {
                    ns.ip(["-6", "-o", "addr", "show", "dev", dev])
                        .is_ok_and(|s| s.contains("fe80") && !s.contains("tentative"))
                }),
                "no usable link-local address on {dev}"
            );
        }
    }

    /// A UDP socket in `a` that multicasts out of `a0` with TTL 1 (IPv4) or hop limit 1
    /// (IPv6), like a master sync daemon.
    ///
    /// # Panics
    /// If the socket cannot be made.
    pub fn sender(&self, ipv6: bool) -> UdpSocket {
        self.a
            .exec(move || -> std::io::Result<UdpSocket> {
                if ipv6 {
                    let idx = nix::net::if_::if_nametoindex("a0").map_err(std::io::Error::from)?;
                    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
                    s.set_multicast_if_v6(idx)?;
                    s.set_multicast_hops_v6(1)?;
                    s.bind_device(Some(b"a0"))?;
                    Ok(s.into())
                } else {
                    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
                    s.set_multicast_if_v4(&Ipv4Addr::new(10, 9, 0, 1))?;
                    s.set_multicast_ttl_v4(1)?;
                    s.bind(&SocketAddr::from(([10, 9, 0, 1], 0)).into())?;
                    Ok(s.into())
                }
            })
            .expect("enter a")
            .expect("sender socket")
    }
}
