//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums are carried as `u64` partial sums ("unfolded", like the kernel's `__wsum`)
//! so several pieces (pseudo-header, header, payload) can be added before the
//! final fold. [`fold`] turns a partial sum into the 16-bit one's-complement sum;
//! the checksum field holds its complement.

use core::net::{Ipv4Addr, Ipv6Addr};

/// Adds `data` to the partial sum `acc` as a sequence of big-endian 16-bit words;
/// an odd trailing byte is padded with zero (RFC 1071 §4.1).
#[inline]
pub fn sum(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        // Four 16-bit words at once; a u64 accumulator cannot overflow for any
        // frame size this crate handles (< 2^48 bytes).
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]))
            + u64::from(u16::from_be_bytes([c[2], c[3]]))
            + u64::from(u16::from_be_bytes([c[4], c[5]]))
            + u64::from(u16::from_be_bytes([c[6], c[7]]));
    }
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a partial sum into a 16-bit one's-complement sum (end-around carry).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The Internet checksum of `data`: the complement of its folded sum.
/// Computing it over a region whose checksum field is zero gives the field value;
/// over a region with a correct field it gives 0.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(0, data))
}

/// Partial sum of the IPv4 pseudo-header (RFC 793 §3.1, RFC 768).
#[inline]
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4_len: u32) -> u64 {
    let acc = sum(0, &src.octets());
    let acc = sum(acc, &dst.octets());
    acc + u64::from(proto) + u64::from(l4_len)
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1).
#[inline]
pub fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, l4_len: u32) -> u64 {
    let acc = sum(0, &src.octets());
    let acc = sum(acc, &dst.octets());
    acc + u64::from(proto) + u64::from(l4_len >> 16) + u64::from(l4_len & 0xffff)
}

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')` for one changed 16-bit word.
#[inline]
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!hc) + u64::from(!old) + u64::from(new))
}

/// RFC 1624 eqn. 3 generalised to a changed run of 16-bit words (`old` and `new`
/// have the same even length): the kernel's `ip_vs_check_diff4/16`.
#[inline]
pub fn update_bytes(hc: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    // ~m for each word equals 0xffff - m, so sum(~old) = n*0xffff - sum(old).
    let mut acc = u64::from(!hc);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        acc += u64::from(!u16::from_be_bytes([o[0], o[1]]));
        acc += u64::from(u16::from_be_bytes([n[0], n[1]]));
    }
    !fold(acc)
}

/// Incremental update for a changed IPv4 address (32 bits).
#[inline]
pub fn update32(hc: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    update_bytes(hc, &old, &new)
}

/// Incremental update for a changed IPv6 address (128 bits).
#[inline]
pub fn update128(hc: u16, old: [u8; 16], new: [u8; 16]) -> u16 {
    update_bytes(hc, &old, &new)
}

/// UDP transmits a computed checksum of 0 as 0xFFFF, because 0 means "no
/// checksum" (RFC 768; the kernel's `CSUM_MANGLED_0`).
#[inline]
pub fn udp_mangle_zero(c: u16) -> u16 {
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// True when two checksum field values are equal in one's-complement arithmetic
/// (0x0000 and 0xFFFF both denote zero and both verify, RFC 1624 §3).
#[inline]
pub fn equivalent(a: u16, b: u16) -> bool {
    a == b || (a == 0 || a == 0xffff) && (b == 0 || b == 0xffff)
}

const CRC32C_TABLE: [u32; 256] = crc32c_table();

const fn crc32c_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// CRC32c (Castagnoli), the SCTP checksum (RFC 9260 appendix B). SCTP stores it
/// least-significant byte first (the kernel's `cpu_to_le32` in
/// `sctp_compute_cksum`); see [`sctp_checksum_bytes`].
pub fn crc32c(data: &[u8]) -> u32 {
    !crc32c_update(!0, data)
}

/// Feeds `data` into a running (non-finalised) CRC32c register `crc`; start
/// with `!0` and complement the end result.
pub fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// The four checksum bytes of an SCTP packet (`data` = SCTP header and chunks
/// with a zeroed checksum field).
pub fn sctp_checksum_bytes(data: &[u8]) -> [u8; 4] {
    crc32c(data).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_vectors() {
        // RFC 3720 §B.4 and the common "123456789" check value.
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(sctp_checksum_bytes(&[0u8; 32]), [0xaa, 0x36, 0x91, 0x8a]);
        let inc: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&inc), 0x46dd_794e);
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 worked example: sum of 0001 f203 f4f5 f6f7 is ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(0, &d)), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 §4: HC=0xDD2F, m=0x5555 -> m'=0x3285 gives HC'=0x0000.
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn update_matches_recompute() {
        let mut d = [0u8; 20];
        for (i, b) in d.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        d[10] = 0;
        d[11] = 0;
        let c = checksum(&d);
        let old = arr(&d[12..16]);
        let new = [10, 0, 0, 99];
        let inc = update32(c, old, new);
        d[12..16].copy_from_slice(&new);
        assert!(equivalent(inc, checksum(&d)));
    }

    fn arr(s: &[u8]) -> [u8; 4] {
        [s[0], s[1], s[2], s[3]]
    }

    #[test]
    fn mangle_and_equivalence() {
        assert_eq!(udp_mangle_zero(0), 0xffff);
        assert_eq!(udp_mangle_zero(7), 7);
        assert!(equivalent(0, 0xffff));
        assert!(!equivalent(1, 0xffff));
    }
}
