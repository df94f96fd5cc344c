//! rvs-packet: the pure frame layer of the rvs packet data plane.
//!
//! Views over frames in the smoltcp style (`Packet<T: AsRef<[u8]>>`, mutable
//! with `AsMut<[u8]>`), one classifying [`parse`], the Internet checksum and its
//! RFC 1624 incremental updates, and the in-place rewrites of the IPVS forwarding
//! methods (docs/internals/forwarding.md): NAT, DR, TUN (IPIP / GUE / GRE), FULLNAT, ICMP
//! error relay and the ICMP/ARP/ND messages the director generates, and the reassembly and
//! fragmentation of IPv4 and IPv6 datagrams.
//!
//! Nothing here does I/O or reads the clock; no input panics. Nothing allocates on the
//! forward path except [`reassembly`], which must hold fragments until their datagram is
//! complete (bounded in bytes, like the kernel's `ipfrag_high_thresh`).
//! Decisions (which connection, which destination) belong to `rvs-core`.
//!
//! ```
//! use std::net::Ipv4Addr;
//! use rvs_packet::{ethernet, ipv4::Ipv4Packet, nat, parse, Endpoint};
//!
//! // A minimal UDP/IPv4 frame: client 192.0.2.1:5000 -> VIP 198.51.100.10:53.
//! let mut f = [0u8; 14 + 20 + 8];
//! ethernet::write_header(&mut f, [2; 6], [4; 6], &[], ethernet::ethertype::IPV4).unwrap();
//! let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
//! ip.set_version_ihl(20);
//! ip.set_total_len(28);
//! ip.set_ttl(64);
//! ip.set_protocol(17);
//! ip.set_src(Ipv4Addr::new(192, 0, 2, 1));
//! ip.set_dst(Ipv4Addr::new(198, 51, 100, 10));
//! ip.fill_checksum();
//! f[34..36].copy_from_slice(&5000u16.to_be_bytes());
//! f[36..38].copy_from_slice(&53u16.to_be_bytes());
//! f[38..40].copy_from_slice(&8u16.to_be_bytes());
//!
//! // Classify, then DNAT to the real server (docs/internals/forwarding.md#nat) in place.
//! let p = parse(&f).unwrap();
//! nat::dnat(&mut f, &p, Endpoint::new(Ipv4Addr::new(10, 1, 0, 2).into(), 5353)).unwrap();
//! let p = rvs_packet::parse_checked(&f).unwrap(); // every checksum verifies
//! assert_eq!(p.ports(&f), Some((5000, 5353)));
//! ```

#![warn(missing_docs)]

pub mod arp;
mod bytes;
pub mod checksum;
pub mod error;
pub mod ethernet;
pub mod fastpath;
pub mod frag;
pub mod generate;
pub mod gre;
pub mod gso;
pub mod gue;
pub mod icmp;
pub mod icmp_relay;
pub mod ipv4;
pub mod ipv6;
pub mod nat;
pub mod parse;
pub mod plane;
pub mod reassembly;
pub mod syncookie;
pub mod tcp;
pub mod tunnel;
pub mod udp;
mod view;
pub mod xmit;

pub use error::{Error, Layer, Result};
pub use nat::{Endpoint, TtlVerdict, UdpZeroChecksum};
pub use parse::{parse, parse_checked, parse_ip, Frag, Parsed, L3};
