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
//! - [`xsk`]: an AF_XDP port (UMEM, fill/completion/rx/tx rings) on one receive queue, fed by
//!   the XDP program's redirect: the packet plane's slow path when XDP runs.
//!
//! Receiving is *pull-style*: a [`PacketPort`] lends out one block of received frames at a
//! time ([`PacketPort::next_block`]); the caller walks its frames ([`RxBlock::next_frame`]),
//! rewriting them in place and marking those to send back out, and finishes the block
//! ([`RxBlock::finish`]), which transmits the marked frames and returns the block's memory to
//! the kernel. The caller decides what happens between the last frame and the transmission
//! (the rvsd packet worker releases its table lock there) without callbacks. [`Port`]
//! (AF_PACKET, TPACKET_V3: a block is a ring block) and [`MemIo`] (in memory, for tests
//! without root) implement it, and so does [`XskPort`] (AF_XDP: a block is a batch of RX
//! descriptors, frames are UMEM chunks rewritten in place, marked frames go to the TX ring).

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
pub mod xsk;

mod error;

pub use afpacket::{Block, Fanout, Port, PortConfig, PortStats, RxFrame, Sender, VlanTag};
pub use error::Error;
pub use mem::MemIo;
pub use neigh::{NextHop, Resolver, ResolverConfig, Route};
pub use nft::{GuardRules, IngressGuard, LocalPorts, Match};
pub use xsk::{XskBind, XskConfig, XskMode, XskPort, XskStats};

use std::time::Duration;

/// Something that sends complete Ethernet frames: the transmit side of a [`PacketPort`], and
/// all of a transmit-only [`Sender`].
pub trait FrameSink {
    /// Sends `frames` (each a complete Ethernet frame); returns how many were taken (the
    /// rest are counted as transmit errors by the implementation).
    fn send_frames(&mut self, frames: &[&[u8]]) -> usize;
}

/// A pull-style packet port on one interface (see the crate docs).
pub trait PacketPort: FrameSink {
    /// A block of received frames, borrowed from the port until finished.
    type Block<'a>: RxBlock<'a>
    where
        Self: 'a;

    /// Waits at most `timeout` for received frames and lends out the next block of them;
    /// `None` when none arrived in time.
    fn next_block(&mut self, timeout: Duration) -> Result<Option<Self::Block<'_>>, Error>;

    /// Counters since the port was opened.
    fn stats(&mut self) -> Result<PortStats, Error>;

    /// The interface's MAC address.
    fn mac(&self) -> [u8; 6];

    /// The interface's index.
    fn ifindex(&self) -> u32;
}

/// One block of received frames, lent out by [`PacketPort::next_block`].
pub trait RxBlock<'a> {
    /// The next frame of the block, in arrival order, or `None` after the last. The frame
    /// may be rewritten in place and marked with [`RxFrame::transmit`] /
    /// [`RxFrame::transmit_on`]; a marked frame is sent as it is when the walk moves on.
    fn next_frame(&mut self) -> Option<&mut RxFrame<'a>>;

    /// Sends the marked frames and gives the block back to the port. Dropping the block
    /// does the same; `finish` says where it happens.
    fn finish(self);
}
