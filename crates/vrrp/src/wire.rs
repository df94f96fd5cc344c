//! VRRP wire format: RFC 3768 (v2) and RFC 5798 (v3) over IPv4 and IPv6.
//!
//! Two layers, in the style of smoltcp:
//! * [`Packet`] is a zero-copy view over a byte buffer (`&[u8]` to read, `&mut [u8]` to write);
//! * [`Advert`] is the owned, decoded representation with [`Advert::parse`] and [`Advert::emit`].
//!
//! Checksums follow keepalived 2.2.7 (docs/internals/vrrp.md#on-the-wire): v2/IPv4 over the VRRP message only,
//! v3/IPv4 over an IPv4 pseudo-header plus the message, IPv6 (any version) over the IPv6
//! pseudo-header, with [`ChecksumMode`] for the two interop variants (old keepalived unicast and
//! RFC 9568 peers). The enclosing IP headers are in [`crate::ip`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::error::Error;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// IP protocol number of the IPsec Authentication Header (VRRPv2 `auth_type AH`).
pub const IPPROTO_AH: u8 = 51;
/// The IPv4 VRRP multicast group (RFC 3768 §5.2.2).
pub const MCAST_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 VRRP multicast group (RFC 5798 §5.1.2.2).
pub const MCAST_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// TTL / hop limit every VRRP advert is sent with and (for multicast) must arrive with.
pub const VRRP_TTL: u8 = 255;
/// Length of the fixed VRRP header (both versions).
pub const HEADER_LEN: usize = 8;
/// Length of the v2 authentication data trailer (present for v2 over IPv4 only).
pub const AUTH_DATA_LEN: usize = 8;
/// The only VRRP packet type (ADVERTISEMENT).
pub const TYPE_ADVERTISEMENT: u8 = 1;

/// The multicast group VRRP uses for `family`.
pub fn mcast_group(family: Family) -> IpAddr {
    match family {
        Family::Inet => IpAddr::V4(MCAST_GROUP_V4),
        Family::Inet6 => IpAddr::V6(MCAST_GROUP_V6),
    }
}

/// VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: whole-second intervals, authentication trailer (IPv4).
    V2,
    /// RFC 5798: centisecond intervals, no authentication, pseudo-header checksum.
    V3,
}

impl Version {
    /// The version number as it appears in the high nibble of byte 0.
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }

    /// The version for a wire number, if it is one we speak.
    pub fn from_number(n: u8) -> Option<Version> {
        match n {
            2 => Some(Version::V2),
            3 => Some(Version::V3),
            _ => None,
        }
    }
}

/// Address family of a VRRP instance (and of every address in its adverts): the workspace's
/// one family type.
pub use rvs_core::Family;

/// VRRPv2 authentication type (byte 4 of a v2 advert).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// 0: no authentication (8 zero bytes still follow the addresses over IPv4).
    None,
    /// 1: simple text password, zero padded to 8 bytes.
    Pass,
    /// 2: IPsec AH (RFC 2338). Recognised so it can be rejected clearly; not implemented.
    Ah,
}

impl AuthType {
    /// The wire value.
    pub fn number(self) -> u8 {
        match self {
            AuthType::None => 0,
            AuthType::Pass => 1,
            AuthType::Ah => 2,
        }
    }

    /// The auth type for a wire value, if defined.
    pub fn from_number(n: u8) -> Option<AuthType> {
        match n {
            0 => Some(AuthType::None),
            1 => Some(AuthType::Pass),
            2 => Some(AuthType::Ah),
            _ => None,
        }
    }
}

/// Which checksum variant to compute / accept for VRRPv3 over IPv4.
///
/// v2 over IPv4 always checksums the message alone; anything over IPv6 always includes the IPv6
/// pseudo-header (the kernel computes it for raw IPv6 sockets), so the mode only matters for
/// v3/IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChecksumMode {
    /// Pseudo-header with the packet's real source and destination: RFC 5798 as keepalived 2.2.7
    /// implements it (the default).
    #[default]
    PseudoHeader,
    /// Pseudo-header with the multicast group as destination even when unicasting: keepalived
    /// ≤ 1.3.6 (`old_unicast_checksum`).
    OldUnicast,
    /// No pseudo-header, as RFC 9568 and some vendors (and keepalived ≥ 2.2.8 with
    /// `v3_checksum_as_v2`) compute it.
    NoPseudoHeader,
}

/// RFC 1071 one's-complement sum of `data` added to `acc` (not folded).
fn sum_be16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Internet checksum (RFC 1071) of `data`.
pub fn internet_checksum(data: &[u8]) -> u16 {
    fold(sum_be16(0, data))
}

/// Checksum of a VRRP message (`msg`, with its checksum field as it is: pass it zeroed to
/// compute, or as received to verify — a correct packet then yields 0).
///
/// `src`/`dst` are the IP addresses of the enclosing packet; `mode` selects the v3/IPv4 variant
/// (see [`ChecksumMode`]). Mixed-family `src`/`dst` fall back to no pseudo-header rather than panic.
pub fn vrrp_checksum(
    version: Version,
    msg: &[u8],
    src: IpAddr,
    dst: IpAddr,
    mode: ChecksumMode,
) -> u16 {
    let len = msg.len() as u32;
    let acc = match (src, dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            // IPv6 pseudo-header (RFC 8200 §8.1): src, dst, upper-layer length, zeros, next header.
            let mut a = sum_be16(0, &s.octets());
            a = sum_be16(a, &d.octets());
            a = a.wrapping_add(len >> 16).wrapping_add(len & 0xffff);
            a.wrapping_add(u32::from(IPPROTO_VRRP))
        }
        (IpAddr::V4(s), IpAddr::V4(d)) if version == Version::V3 => match mode {
            ChecksumMode::NoPseudoHeader => 0,
            ChecksumMode::PseudoHeader | ChecksumMode::OldUnicast => {
                let d = if mode == ChecksumMode::OldUnicast {
                    MCAST_GROUP_V4
                } else {
                    d
                };
                let mut a = sum_be16(0, &s.octets());
                a = sum_be16(a, &d.octets());
                a = a.wrapping_add(u32::from(IPPROTO_VRRP));
                a.wrapping_add(len & 0xffff)
            }
        },
        _ => 0,
    };
    fold(sum_be16(acc, msg))
}

/// Length of a VRRP message with `count` addresses of `family` (including the v2/IPv4 auth
/// trailer).
pub fn message_len(version: Version, family: Family, count: u8) -> usize {
    let trailer = if version == Version::V2 && family == Family::Inet {
        AUTH_DATA_LEN
    } else {
        0
    };
    HEADER_LEN + usize::from(count) * family.addr_len() + trailer
}

/// A read/write view over a VRRP message (no IP header) in a byte buffer.
///
/// Accessors never panic once [`Packet::new_checked`] succeeded; it only guarantees the fixed header
/// plus the address list and trailer implied by the count fit, not that the buffer is exactly that
/// long (keepalived reports an exact-length mismatch as a receive error, see [`crate::rx`]).
#[derive(Debug, Clone, Copy)]
pub struct Packet<T> {
    buf: T,
    family: Family,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap `buf` after checking the header, known version and that the body fits.
    pub fn new_checked(buf: T, family: Family) -> Result<Self, Error> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated {
                need: HEADER_LEN,
                got: b.len(),
            });
        }
        let vn = b[0] >> 4;
        let version = Version::from_number(vn).ok_or(Error::UnknownVersion(vn))?;
        let need = message_len(version, family, b[3]);
        if b.len() < need {
            return Err(Error::Truncated { need, got: b.len() });
        }
        Ok(Packet { buf, family })
    }

    /// The address family the buffer was interpreted with.
    pub fn family(&self) -> Family {
        self.family
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Version (validated by `new_checked`).
    pub fn version(&self) -> Version {
        // new_checked guaranteed a known version; V3 is only a fallback for the unreachable case.
        Version::from_number(self.b()[0] >> 4).unwrap_or(Version::V3)
    }

    /// Packet type (low nibble of byte 0); 1 is ADVERTISEMENT.
    pub fn packet_type(&self) -> u8 {
        self.b()[0] & 0x0f
    }

    /// Virtual router id.
    pub fn vrid(&self) -> u8 {
        self.b()[1]
    }

    /// Advertised priority (0 = master resigning, 255 = address owner).
    pub fn priority(&self) -> u8 {
        self.b()[2]
    }

    /// Number of addresses in the list.
    pub fn count(&self) -> u8 {
        self.b()[3]
    }

    /// v2: authentication type byte (meaningless for v3).
    pub fn auth_type_raw(&self) -> u8 {
        self.b()[4]
    }

    /// v2: advertisement interval in whole seconds (byte 5).
    pub fn adver_int_v2(&self) -> u8 {
        self.b()[5]
    }

    /// v3: the 4 reserved bits above the interval (should be zero).
    pub fn reserved_v3(&self) -> u8 {
        self.b()[4] >> 4
    }

    /// v3: Max Advertise Interval in centiseconds (12 bits).
    pub fn max_adver_int_v3(&self) -> u16 {
        u16::from_be_bytes([self.b()[4], self.b()[5]]) & 0x0fff
    }

    /// The advertisement interval in the unit of the packet's version, as a duration.
    pub fn interval(&self) -> Duration {
        match self.version() {
            Version::V2 => Duration::from_secs(u64::from(self.adver_int_v2())),
            Version::V3 => Duration::from_millis(10 * u64::from(self.max_adver_int_v3())),
        }
    }

    /// Checksum field as received.
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[6], self.b()[7]])
    }

    /// Length of the message implied by the count (what keepalived expects to receive).
    pub fn expected_len(&self) -> usize {
        message_len(self.version(), self.family, self.count())
    }

    /// The `i`th address, if `i < count`.
    pub fn address(&self, i: usize) -> Option<IpAddr> {
        if i >= usize::from(self.count()) {
            return None;
        }
        let off = HEADER_LEN + i * self.family.addr_len();
        let b = self.b();
        match self.family {
            Family::Inet => {
                let o: [u8; 4] = b.get(off..off + 4)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(o)))
            }
            Family::Inet6 => {
                let o: [u8; 16] = b.get(off..off + 16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(o)))
            }
        }
    }

    /// Iterator over the address list.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        (0..usize::from(self.count())).filter_map(move |i| self.address(i))
    }

    /// v2 over IPv4: the 8 authentication bytes after the addresses.
    pub fn auth_data(&self) -> Option<[u8; AUTH_DATA_LEN]> {
        if self.version() != Version::V2 || self.family != Family::Inet {
            return None;
        }
        let off = HEADER_LEN + usize::from(self.count()) * 4;
        self.b().get(off..off + AUTH_DATA_LEN)?.try_into().ok()
    }

    /// The message bytes as far as the count implies (ignoring trailing garbage).
    pub fn message(&self) -> &[u8] {
        let n = self.expected_len().min(self.b().len());
        &self.b()[..n]
    }

    /// Whether the checksum verifies for a packet from `src` to `dst` under `mode`.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr, mode: ChecksumMode) -> bool {
        vrrp_checksum(self.version(), self.message(), src, dst, mode) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Recompute and store the checksum for a packet from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr, mode: ChecksumMode) {
        let version = self.version();
        let n = self.expected_len().min(self.buf.as_ref().len());
        let b = &mut self.buf.as_mut()[..n];
        b[6] = 0;
        b[7] = 0;
        let c = vrrp_checksum(version, b, src, dst, mode);
        b[6..8].copy_from_slice(&c.to_be_bytes());
    }

    /// Overwrite the priority byte (the checksum must be refilled afterwards).
    pub fn set_priority(&mut self, prio: u8) {
        self.buf.as_mut()[2] = prio;
    }
}

/// A decoded VRRP advertisement (owned representation).
///
/// Holds every field needed to re-encode the message byte for byte except the checksum, which
/// [`Advert::emit`] computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Protocol version.
    pub version: Version,
    /// Packet type; always [`TYPE_ADVERTISEMENT`] for packets we build.
    pub packet_type: u8,
    /// Virtual router id (1..255; 0 is decoded but never valid for an instance).
    pub vrid: u8,
    /// Priority, 0..255.
    pub priority: u8,
    /// v2: auth type byte (0/1/2). v3: the 4 reserved bits (normally 0).
    pub auth_or_reserved: u8,
    /// Raw interval field: v2 whole seconds (≤ 255), v3 centiseconds (≤ 4095).
    pub adver_int: u16,
    /// Address list (all of the family the advert is encoded for).
    pub addresses: Vec<IpAddr>,
    /// v2/IPv4 authentication data (password zero padded, or zeros); ignored otherwise.
    pub auth_data: [u8; AUTH_DATA_LEN],
}

impl Advert {
    /// Decode the VRRP message in `buf` (no IP header) for `family`. Trailing bytes beyond the
    /// length implied by the count are ignored here (receive validation rejects them).
    pub fn parse(buf: &[u8], family: Family) -> Result<Advert, Error> {
        let p = Packet::new_checked(buf, family)?;
        let version = p.version();
        let (auth_or_reserved, adver_int) = match version {
            Version::V2 => (p.auth_type_raw(), u16::from(p.adver_int_v2())),
            Version::V3 => (p.reserved_v3(), p.max_adver_int_v3()),
        };
        Ok(Advert {
            version,
            packet_type: p.packet_type(),
            vrid: p.vrid(),
            priority: p.priority(),
            auth_or_reserved,
            adver_int,
            addresses: p.addresses().collect(),
            auth_data: p.auth_data().unwrap_or([0; AUTH_DATA_LEN]),
        })
    }

    /// The address family of the list (IPv4 for an empty list).
    pub fn family(&self) -> Family {
        self.addresses.first().map_or(Family::Inet, Family::of)
    }

    /// Encoded length for `family`.
    pub fn buffer_len(&self, family: Family) -> usize {
        HEADER_LEN
            + self.addresses.len() * family.addr_len()
            + if self.version == Version::V2 && family == Family::Inet {
                AUTH_DATA_LEN
            } else {
                0
            }
    }

    /// The advertisement interval as a duration.
    pub fn interval(&self) -> Duration {
        match self.version {
            Version::V2 => Duration::from_secs(u64::from(self.adver_int)),
            Version::V3 => Duration::from_millis(10 * u64::from(self.adver_int)),
        }
    }

    /// Encode into `out` (appended), computing the checksum for a packet `src` → `dst`.
    ///
    /// Fails if the fields do not fit the wire format (too many or mixed-family addresses, an
    /// interval out of range, a nibble overflow).
    pub fn emit(
        &self,
        out: &mut Vec<u8>,
        src: IpAddr,
        dst: IpAddr,
        mode: ChecksumMode,
    ) -> Result<(), Error> {
        let family = Family::of(&src);
        if Family::of(&dst) != family {
            return Err(Error::FamilyMismatch);
        }
        let count = u8::try_from(self.addresses.len())
            .map_err(|_| Error::TooManyAddresses(self.addresses.len()))?;
        if self.packet_type > 0x0f {
            return Err(Error::FieldRange("packet type"));
        }
        let (b4, b5) = match self.version {
            Version::V2 => (
                self.auth_or_reserved,
                u8::try_from(self.adver_int)
                    .map_err(|_| Error::FieldRange("v2 advert interval"))?,
            ),
            Version::V3 => {
                if self.adver_int > 0x0fff || self.auth_or_reserved > 0x0f {
                    return Err(Error::FieldRange("v3 max advert interval"));
                }
                let v = (u16::from(self.auth_or_reserved) << 12) | self.adver_int;
                let [hi, lo] = v.to_be_bytes();
                (hi, lo)
            }
        };
        let start = out.len();
        out.extend_from_slice(&[
            (self.version.number() << 4) | self.packet_type,
            self.vrid,
            self.priority,
            count,
            b4,
            b5,
            0,
            0,
        ]);
        for a in &self.addresses {
            match (a, family) {
                (IpAddr::V4(v4), Family::Inet) => out.extend_from_slice(&v4.octets()),
                (IpAddr::V6(v6), Family::Inet6) => out.extend_from_slice(&v6.octets()),
                _ => {
                    out.truncate(start);
                    return Err(Error::FamilyMismatch);
                }
            }
        }
        if self.version == Version::V2 && family == Family::Inet {
            out.extend_from_slice(&self.auth_data);
        }
        let c = vrrp_checksum(self.version, &out[start..], src, dst, mode);
        out[start + 6..start + 8].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }
}

/// Pad/truncate a PASS password to the 8 bytes on the wire, as keepalived does.
pub fn pass_auth_data(password: &[u8]) -> [u8; AUTH_DATA_LEN] {
    let mut d = [0u8; AUTH_DATA_LEN];
    let n = password.len().min(AUTH_DATA_LEN);
    d[..n].copy_from_slice(&password[..n]);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn spec_checksum_examples() {
        // docs/internals/vrrp.md#on-the-wire worked checks.
        let v2 = unhex("21 33 64 02 01 01 0000 0a4d0064 0a4d0065 7365637265743132");
        let c = vrrp_checksum(
            Version::V2,
            &v2,
            v4("10.77.0.2"),
            v4("224.0.0.18"),
            ChecksumMode::PseudoHeader,
        );
        assert_eq!(c, 0xf6e7);
        let v3 = unhex("31 34 64 01 0032 0000 0a4d0096");
        let src = v4("10.77.0.2");
        let dst = v4("10.77.0.1");
        assert_eq!(
            vrrp_checksum(Version::V3, &v3, src, dst, ChecksumMode::PseudoHeader),
            0x4a9c
        );
        assert_eq!(
            vrrp_checksum(Version::V3, &v3, src, dst, ChecksumMode::OldUnicast),
            0x74d7
        );
        assert_eq!(
            vrrp_checksum(Version::V3, &v3, src, dst, ChecksumMode::NoPseudoHeader),
            0x5fb5
        );
        let v6 = unhex(
            "31 35 6e 02 0064 0000 fe800000000000000000000000000053 \
             20010db8000000000000000000000053",
        );
        assert_eq!(
            vrrp_checksum(
                Version::V3,
                &v6,
                "fe80::b406:c0ff:fe58:109a".parse().unwrap(),
                "ff02::12".parse().unwrap(),
                ChecksumMode::PseudoHeader
            ),
            0xb15c
        );
    }

    #[test]
    fn odd_length_checksum_pads_with_zero() {
        assert_eq!(internet_checksum(&[0x01]), !0x0100);
        assert_eq!(internet_checksum(&[]), 0xffff);
    }

    #[test]
    fn view_rejects_short_and_unknown_version() {
        assert!(matches!(
            Packet::new_checked(&[0x21u8, 1, 2][..], Family::Inet),
            Err(Error::Truncated { need: 8, got: 3 })
        ));
        assert!(matches!(
            Packet::new_checked(&[0x41u8, 1, 2, 0, 0, 1, 0, 0][..], Family::Inet),
            Err(Error::UnknownVersion(4))
        ));
        // v2/IPv4 with one address needs 8 + 4 + 8 bytes.
        let r = Packet::new_checked(&[0x21u8, 1, 2, 1, 0, 1, 0, 0, 1, 2, 3, 4][..], Family::Inet);
        assert!(matches!(r, Err(Error::Truncated { need: 20, got: 12 })));
    }

    #[test]
    fn emit_then_parse_roundtrip_v3_v6() {
        let a = Advert {
            version: Version::V3,
            packet_type: 1,
            vrid: 9,
            priority: 200,
            auth_or_reserved: 0,
            adver_int: 10,
            addresses: vec!["fe80::9".parse().unwrap(), "2001:db8::9".parse().unwrap()],
            auth_data: [0; 8],
        };
        let src: IpAddr = "fe80::1".parse().unwrap();
        let dst = mcast_group(Family::Inet6);
        let mut out = Vec::new();
        a.emit(&mut out, src, dst, ChecksumMode::PseudoHeader)
            .unwrap();
        assert_eq!(out.len(), 8 + 32);
        let p = Packet::new_checked(&out[..], Family::Inet6).unwrap();
        assert!(p.verify_checksum(src, dst, ChecksumMode::PseudoHeader));
        assert_eq!(p.interval(), Duration::from_millis(100));
        assert_eq!(Advert::parse(&out, Family::Inet6).unwrap(), a);
    }

    #[test]
    fn emit_rejects_out_of_range_fields() {
        let mut a = Advert {
            version: Version::V2,
            packet_type: 1,
            vrid: 1,
            priority: 100,
            auth_or_reserved: 0,
            adver_int: 256,
            addresses: vec![v4("10.0.0.1")],
            auth_data: [0; 8],
        };
        let mut out = Vec::new();
        let (s, d) = (v4("10.0.0.2"), v4("224.0.0.18"));
        assert!(a.emit(&mut out, s, d, ChecksumMode::default()).is_err());
        a.adver_int = 1;
        a.addresses.push("::1".parse().unwrap());
        assert_eq!(
            a.emit(&mut out, s, d, ChecksumMode::default()),
            Err(Error::FamilyMismatch)
        );
        assert!(out.is_empty());
        a.version = Version::V3;
        a.addresses.pop();
        a.adver_int = 4096;
        assert!(a.emit(&mut out, s, d, ChecksumMode::default()).is_err());
    }

    #[test]
    fn fill_checksum_matches_emit() {
        let mut buf = unhex("31 34 64 01 0032 0000 0a4d0096");
        let (s, d) = (v4("10.77.0.2"), v4("10.77.0.1"));
        let mut p = Packet::new_checked(&mut buf[..], Family::Inet).unwrap();
        p.fill_checksum(s, d, ChecksumMode::PseudoHeader);
        assert_eq!(p.checksum(), 0x4a9c);
        p.set_priority(200);
        p.fill_checksum(s, d, ChecksumMode::PseudoHeader);
        // From the other side of the capture: 10.77.0.1 → 10.77.0.2 prio 200 is 0xe69b; the
        // pseudo-header sum is symmetric in src/dst, so swapping them does not change it.
        assert_eq!(p.checksum(), 0xe69b);
    }

    #[test]
    fn pass_password_is_truncated_and_padded() {
        assert_eq!(pass_auth_data(b"secret12345"), *b"secret12");
        assert_eq!(pass_auth_data(b"ab"), [b'a', b'b', 0, 0, 0, 0, 0, 0]);
    }
}
