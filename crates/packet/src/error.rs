//! The one error type of the crate.

use thiserror::Error;

/// The protocol layer an error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Ethernet II header.
    Ethernet,
    /// 802.1Q / 802.1ad tag.
    Vlan,
    /// ARP (RFC 826).
    Arp,
    /// IPv4 header (RFC 791).
    Ipv4,
    /// IPv6 fixed header (RFC 8200).
    Ipv6,
    /// IPv6 extension header.
    Ipv6Ext,
    /// TCP header.
    Tcp,
    /// UDP header.
    Udp,
    /// ICMPv4 message.
    Icmp,
    /// ICMPv6 message.
    Icmpv6,
    /// SCTP common header (RFC 9260).
    Sctp,
    /// GRE header (RFC 2784).
    Gre,
    /// GUE header (draft-ietf-intarea-gue).
    Gue,
    /// An IP header quoted inside an ICMP error.
    Quoted,
}

/// Everything that can go wrong while parsing, rewriting or generating a frame.
///
/// Bad input never panics (docs/internals/architecture.md#rules-of-the-house); the data plane drops the frame and
/// counts the error by its variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Error {
    /// The buffer ends before the header of `layer` does.
    #[error("truncated {layer:?} header: need {need} bytes, have {have}")]
    Truncated {
        /// Layer whose header is cut short.
        layer: Layer,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// IP version nibble does not match the EtherType / tunnel protocol.
    #[error("bad IP version {0}")]
    BadVersion(u8),
    /// IPv4 IHL below 5 or beyond the buffer.
    #[error("bad IPv4 header length (IHL {0})")]
    BadIhl(u8),
    /// A length field (IPv4 total length, IPv6 payload length, UDP length, TCP data
    /// offset) is inconsistent with the header or the buffer.
    #[error("bad {0:?} length field")]
    BadLength(Layer),
    /// A checksum does not verify.
    #[error("bad {0:?} checksum")]
    BadChecksum(Layer),
    /// IPv6 UDP with checksum 0, forbidden by RFC 8200 §8.1 outside tunnels (RFC 6935).
    #[error("IPv6 UDP datagram with zero checksum")]
    UdpZeroChecksumV6,
    /// Malformed IPv6 extension header chain (hop-by-hop not first, too many headers).
    #[error("bad IPv6 extension header chain")]
    BadExtHeader,
    /// The operation needs the transport header, which a non-first fragment lacks.
    #[error("operation needs the transport header of a non-first fragment")]
    Fragment,
    /// The frame is not of the kind the operation works on.
    #[error("unsupported frame for this operation: {0}")]
    Unsupported(&'static str),
    /// Address family of an argument does not match the packet.
    #[error("address family mismatch")]
    FamilyMismatch,
    /// Not enough headroom or output space.
    #[error("no room: need {need} bytes, have {have}")]
    NoRoom {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// Tunnel MTU below the minimum of the outer family (68 / 1280, docs/internals/forwarding.md#mtu).
    #[error("tunnel MTU {0} below the outer family minimum")]
    MtuTooSmall(u32),
    /// A field holds a value this implementation rejects (GUE version, GRE version...).
    #[error("bad {0:?} field value")]
    BadField(Layer),
}

impl Error {
    /// A stable snake_case label for drop counters and metrics (docs/internals/architecture.md:
    /// malformed frames are dropped and counted).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Truncated { .. } => "truncated",
            Error::BadVersion(_) => "bad_version",
            Error::BadIhl(_) => "bad_ihl",
            Error::BadLength(_) => "bad_length",
            Error::BadChecksum(_) => "bad_checksum",
            Error::UdpZeroChecksumV6 => "udp_zero_checksum_v6",
            Error::BadExtHeader => "bad_ext_header",
            Error::Fragment => "fragment",
            Error::Unsupported(_) => "unsupported",
            Error::FamilyMismatch => "family_mismatch",
            Error::NoRoom { .. } => "no_room",
            Error::MtuTooSmall(_) => "mtu_too_small",
            Error::BadField(_) => "bad_field",
        }
    }
}

/// Result alias of the crate.
pub type Result<T> = core::result::Result<T, Error>;

/// Fails with [`Error::Truncated`] unless `buf` has at least `need` bytes.
#[inline]
pub(crate) fn need(buf: &[u8], need: usize, layer: Layer) -> Result<()> {
    if buf.len() < need {
        Err(Error::Truncated {
            layer,
            need,
            have: buf.len(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct_and_display_works() {
        let all = [
            Error::Truncated {
                layer: Layer::Tcp,
                need: 20,
                have: 3,
            },
            Error::BadVersion(5),
            Error::BadIhl(3),
            Error::BadLength(Layer::Udp),
            Error::BadChecksum(Layer::Ipv4),
            Error::UdpZeroChecksumV6,
            Error::BadExtHeader,
            Error::Fragment,
            Error::Unsupported("x"),
            Error::FamilyMismatch,
            Error::NoRoom { need: 2, have: 1 },
            Error::MtuTooSmall(60),
            Error::BadField(Layer::Gue),
        ];
        let mut r: Vec<_> = all.iter().map(Error::reason).collect();
        r.sort_unstable();
        r.dedup();
        assert_eq!(r.len(), all.len());
        assert_eq!(
            all[0].to_string(),
            "truncated Tcp header: need 20 bytes, have 3"
        );
    }
}
