//! rvs-packet: the pure frame layer of the rvs packet data plane.
//!
//! Views over frames in the smoltcp style (`Packet<T: AsRef<[u8]>>`, mutable
//! with `AsMut<[u8]>`), one classifying [`parse`], the Internet checksum and its
//! RFC 1624 incremental updates, and the in-place rewrites of the IPVS forwarding
//! methods (spec `ipvs.md` §5): NAT, DR, TUN (IPIP / GUE / GRE), FULLNAT, ICMP
//! error relay and the ICMP/ARP/ND messages the director generates.
//!
//! Nothing here allocates, does I/O or reads the clock; no input panics.
//! Decisions (which connection, which destination) belong to `rvs-core`.

pub mod arp;
mod bytes;
pub mod checksum;
pub mod error;
pub mod ethernet;
pub mod generate;
pub mod gre;
pub mod gue;
pub mod icmp;
pub mod icmp_relay;
pub mod ipv4;
pub mod ipv6;
pub mod nat;
pub mod parse;
pub mod tcp;
pub mod tunnel;
pub mod udp;
mod view;

pub use error::{Error, Layer, Result};
pub use nat::{Endpoint, TtlVerdict, UdpZeroChecksum};
pub use parse::{parse, Frag, Parsed, L3};
