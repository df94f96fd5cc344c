//! Packet I/O for the rvs packet plane.
//!
//! This crate is the edge between the pure frame logic of `rvs-packet` and the host:
//!
//! - [`afpacket`]: an `AF_PACKET` port per interface (`ETH_P_ALL`, TPACKET_V3 receive ring,
//!   batched transmit with `sendmmsg`, `PACKET_FANOUT` so several workers each own a socket,
//!   VLAN tag re-insertion, kernel drop statistics) and a TX-only [`Sender`] for single frames
//!   such as gratuitous ARP.
//! - [`nft`]: the `table netdev rvs` ingress guard that makes the kernel stack drop the traffic
//!   rvsd handles *after* the `AF_PACKET` taps have seen it.
//! - [`neigh`]: next-hop MAC resolution from the kernel's route and neighbour tables over
//!   rtnetlink, with a cache and probing of missing entries.
//! - [`announce`]: gratuitous ARP and unsolicited neighbour advertisement frames.
//!
//! Everything that moves frames implements [`FrameIo`], so [`MemIo`] (in memory, for tests
//! without root) or an AF_XDP backend later can stand in for [`Port`].
//!
//! # Network namespaces
//!
//! Sockets (AF_PACKET, rtnetlink, the probe's UDP socket) belong to the network namespace of
//! the thread that creates them and keep it wherever they are used from afterwards. The
//! [`nft`] functions run the `nft` program, which starts in the calling *thread's* namespace:
//! call [`IngressGuard`] methods (and let it drop) on a thread of the namespace it guards.
//!
//! # Privileges and host requirements
//!
//! `CAP_NET_RAW` for ports and senders, `CAP_NET_ADMIN` for the ingress guard; the `nft`
//! program (Debian package `nftables`) on `PATH`. The root-only tests also use `ip`
//! (`iproute2`), `ping` (`iputils-ping`) and `bash`.

pub mod afpacket;
pub mod announce;
pub mod mem;
pub mod neigh;
pub mod nft;
pub mod sockopt;

mod error;

pub use afpacket::{Fanout, Port, PortConfig, PortStats, RxFrame, Sender, VlanTag};
pub use error::Error;
pub use mem::MemIo;
pub use neigh::{NextHop, Resolver, ResolverConfig, Route};
pub use nft::{GuardRules, IngressGuard, LocalPorts, Match};

use std::time::Duration;

/// A source and sink of Ethernet frames on one interface.
///
/// Object safe so the data plane can hold `Box<dyn FrameIo>`; [`Port`] is the AF_PACKET
/// implementation.
pub trait FrameIo {
    /// Waits at most `timeout` for frames and hands every available frame to `f`, in arrival
    /// order. Frames marked with [`RxFrame::transmit`] / [`RxFrame::transmit_on`] are sent
    /// (as the callback left them) before the call returns. Returns the number of frames seen;
    /// 0 means the timeout expired.
    fn recv_batch(
        &mut self,
        timeout: Duration,
        f: &mut dyn FnMut(&mut RxFrame<'_>),
    ) -> Result<usize, Error>;

    /// Sends complete Ethernet frames out of this interface; returns how many the kernel took.
    fn send_batch(&mut self, frames: &[&[u8]]) -> Result<usize, Error>;

    /// Counters since the port was opened.
    fn stats(&mut self) -> Result<PortStats, Error>;

    /// The interface's MAC address.
    fn mac(&self) -> [u8; 6];

    /// The interface's index.
    fn ifindex(&self) -> u32;
}
