//! The kernel's fixed scheduler hash functions.
//!
//! sh/dh/lblc/lblcr use `hash_32` and mh uses `hsiphash`; both must map flows exactly like the
//! kernel so a mixed fleet of kernel LVS and rvs directors agrees on where a client goes.

/// `GOLDEN_RATIO_32` of `include/linux/hash.h`.
pub const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// The kernel's generic `hash_32(val, bits)`: multiplicative hashing, top `bits` bits.
#[inline]
pub fn hash_32(val: u32, bits: u32) -> u32 {
    debug_assert!((1..=32).contains(&bits));
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

#[inline(always)]
fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-c-d over an arbitrary message with a 128-bit key `(k0, k1)`, returning 64 bits.
/// Generic so the implementation can be checked against the published SipHash-2-4 vectors.
pub fn siphash(c_rounds: usize, d_rounds: usize, k0: u64, k1: u64, msg: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut chunks = msg.chunks_exact(8);
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let m = u64::from_le_bytes(w);
        v[3] ^= m;
        for _ in 0..c_rounds {
            sipround(&mut v);
        }
        v[0] ^= m;
    }
    let rest = chunks.remainder();
    let mut b = (msg.len() as u64) << 56;
    for (i, byte) in rest.iter().enumerate() {
        b |= u64::from(*byte) << (8 * i);
    }
    v[3] ^= b;
    for _ in 0..c_rounds {
        sipround(&mut v);
    }
    v[0] ^= b;
    v[2] ^= 0xff;
    for _ in 0..d_rounds {
        sipround(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The kernel's `hsiphash_1u32(v, key)` on 64-bit architectures with `key = {k, k}`:
/// SipHash-1-3 over the 4 little-endian bytes of `v`, truncated to 32 bits.
#[inline]
pub fn hsiphash_1u32(v: u32, k: u64) -> u32 {
    // Specialised form of `siphash(1, 3, k, k, &v.to_le_bytes())`: one block, length 4.
    let mut s = [
        k ^ 0x736f_6d65_7073_6575,
        k ^ 0x646f_7261_6e64_6f6d,
        k ^ 0x6c79_6765_6e65_7261,
        k ^ 0x7465_6462_7974_6573,
    ];
    let b = (4u64 << 56) | u64::from(v);
    s[3] ^= b;
    sipround(&mut s);
    s[0] ^= b;
    s[2] ^= 0xff;
    sipround(&mut s);
    sipround(&mut s);
    sipround(&mut s);
    (s[0] ^ s[1] ^ s[2] ^ s[3]) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_32_matches_spec_examples() {
        // sh bucket of 10.0.0.2 (port 0) is 137 (docs/internals/schedulers.md#sh--source-hashing).
        assert_eq!(hash_32(0x0a00_0002, 8), 137);
        assert_eq!(hash_32(0x0a00_0003, 8), 235);
        assert_eq!(hash_32(0xc0a8_0164, 8), 89);
        assert_eq!(hash_32(0x0a00_0002u32.wrapping_add(12345), 8), 232);
    }

    #[test]
    fn siphash24_reference_vector() {
        // The reference vector of the SipHash paper: key 00..0f, message 00..0e.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(siphash(2, 4, k0, k1, &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn hsiphash_specialisation_matches_generic() {
        for v in [0u32, 1, 0x0a00_0051, 0xdead_beef, u32::MAX] {
            for k in [2_654_435_761u64, 2_654_446_892] {
                assert_eq!(
                    hsiphash_1u32(v, k),
                    siphash(1, 3, k, k, &v.to_le_bytes()) as u32
                );
            }
        }
    }

    #[test]
    fn mh_offset_skip_of_10_0_0_1_port_80() {
        // docs/internals/schedulers.md#mh--maglev-hashing: 10.0.0.1:80 → offset 3167, skip 700 with M = 4093.
        let v = 80u32.wrapping_add(0x0a00_0001);
        assert_eq!(hsiphash_1u32(v, 2_654_435_761) % 4093, 3167);
        assert_eq!(hsiphash_1u32(v, 2_654_446_892) % 4092 + 1, 700);
    }
}
