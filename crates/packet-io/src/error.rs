use std::io;
use std::net::IpAddr;
use std::time::Duration;

/// Everything that can fail in rvs-packet-io.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on an interface failed.
    #[error("{op} on {ifname}: {source}")]
    Sys {
        /// What was attempted (e.g. `"setsockopt(PACKET_RX_RING)"`).
        op: &'static str,
        /// The interface concerned.
        ifname: String,
        /// The OS error.
        source: io::Error,
    },
    /// The ring or port configuration is not acceptable to the kernel's rules.
    #[error("invalid port configuration: {0}")]
    Config(String),
    /// Running `nft` failed or it rejected the generated script.
    #[error("nft: {0}")]
    Nft(String),
    /// A netlink request failed.
    #[error("rtnetlink: {0}")]
    Netlink(String),
    /// The kernel has no route to the address.
    #[error("no route to {0}")]
    NoRoute(IpAddr),
    /// The next hop did not become resolvable within the probe deadline.
    #[error("neighbour {addr} on ifindex {ifindex} unresolved after probing for {waited:?}")]
    Unresolved {
        /// The neighbour address (gateway or on-link destination).
        addr: IpAddr,
        /// The interface it was probed on.
        ifindex: u32,
        /// How long we waited.
        waited: Duration,
    },
}

impl Error {
    pub(crate) fn sys(op: &'static str, ifname: &str, source: io::Error) -> Self {
        Error::Sys {
            op,
            ifname: ifname.to_owned(),
            source,
        }
    }
}
