//! SYN cookies and the TCP rewrites of the packet plane's SYN proxy
//! (docs/internals/syn-flood.md).
//!
//! Why: a SYN flood from random sources made one connection entry per spoofed SYN (1.39 million
//! in 10 s, +324 MiB). With the proxy on, the director answers a client's SYN itself with a
//! SYN-ACK whose initial sequence number is a *cookie* — a keyed hash of the 4-tuple, a coarse
//! time counter and the client's MSS class — and keeps nothing. Only an ACK that carries a
//! valid cookie (a client that received the SYN-ACK, so not a spoofed source) makes an entry;
//! the director then opens the connection to the real server and shifts sequence numbers
//! between the two halves for the connection's life.
//!
//! The cookie (32 bits) is built as in the classic scheme, with our own hash (SipHash-2-4
//! under a per-daemon random key):
//!
//! ```text
//! cookie = H(key, tuple, 0) + client_isn + (count << 24) + ((H(key, tuple, count) + mss) mod 2^24)
//! ```
//!
//! `count` is the time in units of [`PERIOD_SECS`]; its low 8 bits travel in the cookie, and a
//! cookie is accepted while `count` has moved by at most [`MAX_AGE`]. `mss` indexes a table of
//! four MSS values ([`MSS_V4`], [`MSS_V6`]): the largest not above the client's. Guessing a
//! valid cookie for a spoofed tuple takes about 2^22 tries.
//!
//! What the cookie cannot carry is not offered: the director's SYN-ACK has the MSS option only,
//! so neither side uses window scaling, SACK or timestamps on a proxied connection (windows are
//! at most 64 KiB, which costs throughput on long fat paths, not on a LAN). The real server
//! gets a SYN with the client's MSS class and no other option, so both halves agree.
//!
//! Everything here is pure: no I/O, no allocation, no clock (the caller passes the time).

use core::net::IpAddr;

use rvs_core::hash::siphash;

use crate::bytes::{get16, get32, set16};
use crate::checksum;
use crate::error::{Error, Layer, Result};
use crate::ipv4::Ipv4Packet;
use crate::parse::{fill_l4_checksum, parse, Parsed, L3};
use crate::tcp::{flags, CHECKSUM_OFF, HEADER_LEN};

/// Length of the cookie's time unit, in seconds.
pub const PERIOD_SECS: u64 = 64;
/// How many time units a cookie stays valid after the one it was made in: a client has 64 to
/// 128 s to answer the SYN-ACK.
pub const MAX_AGE: u32 = 1;
/// The MSS classes of an IPv4 client.
pub const MSS_V4: [u16; 4] = [536, 1300, 1440, 1460];
/// The MSS classes of an IPv6 client.
pub const MSS_V6: [u16; 4] = [1220, 1280, 1400, 1440];
/// The window the director advertises in its SYN-ACK: zero, so that the client sends no data
/// before the real server has answered (the director could not hold it); the real server's
/// SYN-ACK is turned into the window update that opens it.
pub const SYNACK_WINDOW: u16 = 0;

/// The secret key of the cookies: 128 bits for SipHash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieKey(pub [u64; 2]);

impl CookieKey {
    /// A key derived from a 256-bit random `seed` (the director's connection-hash seed), with
    /// a domain separator so that the cookie key says nothing about the hash key.
    pub fn derive(seed: [u64; 4]) -> CookieKey {
        let tag = b"rvs syn cookie key";
        CookieKey([
            siphash(2, 4, seed[0], seed[1], tag),
            siphash(2, 4, seed[2], seed[3], tag),
        ])
    }
}

/// A TCP connection's addresses as the client sent its SYN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    /// Client address.
    pub saddr: IpAddr,
    /// Client port.
    pub sport: u16,
    /// Virtual address.
    pub daddr: IpAddr,
    /// Virtual port.
    pub dport: u16,
}

fn hash(key: &CookieKey, t: &Tuple, count: u32, salt: u8) -> u32 {
    let mut m = [0u8; 41];
    let a = |ip: IpAddr| match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    };
    m[..16].copy_from_slice(&a(t.saddr));
    m[16..32].copy_from_slice(&a(t.daddr));
    m[32..34].copy_from_slice(&t.sport.to_be_bytes());
    m[34..36].copy_from_slice(&t.dport.to_be_bytes());
    m[36..40].copy_from_slice(&count.to_be_bytes());
    m[40] = salt;
    siphash(2, 4, key.0[0], key.0[1], &m) as u32
}

fn mss_table(v6: bool) -> &'static [u16; 4] {
    if v6 {
        &MSS_V6
    } else {
        &MSS_V4
    }
}

/// The MSS class of a client that announced `mss` (`None`: no MSS option, which means 536 for
/// IPv4 and 1220 for IPv6): the largest class not above it, and class 0 below the smallest.
pub fn mss_index(v6: bool, mss: Option<u16>) -> u8 {
    let table = mss_table(v6);
    let mss = mss.unwrap_or(table[0]);
    table.iter().rposition(|&m| m <= mss).unwrap_or(0) as u8
}

/// The MSS of class `i`.
pub fn mss_of(v6: bool, i: u8) -> u16 {
    mss_table(v6)[usize::from(i & 3)]
}

/// The cookie for a SYN of tuple `t` with sequence number `client_isn`, at `now_secs`, for MSS
/// class `mss` (0..=3).
pub fn make(key: &CookieKey, t: &Tuple, client_isn: u32, now_secs: u64, mss: u8) -> u32 {
    let count = (now_secs / PERIOD_SECS) as u32;
    hash(key, t, 0, 0)
        .wrapping_add(client_isn)
        .wrapping_add(count << 24)
        .wrapping_add(hash(key, t, count, 1).wrapping_add(u32::from(mss & 3)) & 0x00ff_ffff)
}

/// Checks `cookie` (the client's ACK number minus one) for tuple `t` and `client_isn` (the
/// ACK's sequence number minus one) at `now_secs`: the MSS class it carries, or `None` when it
/// was not made with this key and tuple or is too old.
pub fn check(
    key: &CookieKey,
    t: &Tuple,
    client_isn: u32,
    cookie: u32,
    now_secs: u64,
) -> Option<u8> {
    let count = (now_secs / PERIOD_SECS) as u32;
    let x = cookie
        .wrapping_sub(hash(key, t, 0, 0))
        .wrapping_sub(client_isn);
    let age = count.wrapping_sub(x >> 24) & 0xff;
    if age > MAX_AGE {
        return None;
    }
    let made = count.wrapping_sub(age);
    let mss = (x & 0x00ff_ffff).wrapping_sub(hash(key, t, made, 1)) & 0x00ff_ffff;
    (mss < 4).then_some(mss as u8)
}

// -------------------------------------------------------------------------------------------
// Frame rewrites. Each takes a frame parsed by `parse` whose IP header has no IPv4 options or
// IPv6 extension headers ([`plain_tcp`]), rewrites it in place and returns its new length.

/// Whether the parsed frame is a whole TCP segment in a plain IP header (no IPv4 options, no
/// IPv6 extension headers): the only shape the proxy rewrites; others take the normal path.
pub fn plain_tcp(p: &Parsed) -> bool {
    p.proto == crate::parse::proto::TCP
        && p.frag.is_none()
        && match p.l3 {
            L3::Ipv4 => p.l4_off == p.l2_len + 20,
            L3::Ipv6 => p.l4_off == p.l2_len + 40,
            _ => false,
        }
}

/// The fields of a TCP header the proxy reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags (low byte).
    pub flags: u8,
    /// Window.
    pub window: u16,
    /// The MSS option, if any.
    pub mss: Option<u16>,
    /// Payload length.
    pub payload: usize,
}

/// Reads the TCP header of a parsed frame.
pub fn segment(frame: &[u8], p: &Parsed) -> Result<Segment> {
    p.check_against(frame)?;
    let l4 = frame
        .get(p.l4_off..p.l3_end)
        .filter(|l| l.len() >= HEADER_LEN)
        .ok_or(Error::BadLength(Layer::Tcp))?;
    let hl = usize::from(l4[12] >> 4) * 4;
    if hl < HEADER_LEN || hl > l4.len() {
        return Err(Error::BadLength(Layer::Tcp));
    }
    let mut mss = None;
    for_each_option(&l4[HEADER_LEN..hl], |kind, at, len| {
        if kind == 2 && len == 4 {
            mss = Some(get16(l4, HEADER_LEN + at + 2));
        }
    });
    Ok(Segment {
        seq: get32(l4, 4),
        ack: get32(l4, 8),
        flags: l4[13],
        window: get16(l4, 14),
        mss,
        payload: l4.len() - hl,
    })
}

/// Calls `f(kind, offset, len)` for each option with a length byte in `opts`; stops at
/// End-of-options or at a malformed length.
fn for_each_option(opts: &[u8], mut f: impl FnMut(u8, usize, usize)) {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return,
            1 => i += 1,
            kind => {
                let Some(&len) = opts.get(i + 1) else { return };
                let len = usize::from(len);
                if len < 2 || i + len > opts.len() {
                    return;
                }
                f(kind, i, len);
                i += len;
            }
        }
    }
}

/// What to write into a TCP header.
struct Header {
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    mss: Option<u16>,
}

/// Replaces the TCP header and payload with `h` (no payload), fixes the IP length, sets the
/// TTL / hop limit to 64 when `fresh` (a packet the director originates) and recomputes the
/// checksums. Returns the new frame length.
fn rewrite(frame: &mut [u8], p: &Parsed, h: &Header, fresh: bool) -> Result<usize> {
    let l4 = p.l4_off;
    let hl = if h.mss.is_some() { 24 } else { 20 };
    let end = l4 + hl;
    if frame.len() < end || frame.len() < l4 + HEADER_LEN {
        return Err(Error::NoRoom {
            need: end,
            have: frame.len(),
        });
    }
    let t = &mut frame[l4..end];
    t[4..8].copy_from_slice(&h.seq.to_be_bytes());
    t[8..12].copy_from_slice(&h.ack.to_be_bytes());
    t[12] = ((hl / 4) as u8) << 4;
    t[13] = h.flags;
    set16(t, 14, h.window);
    set16(t, CHECKSUM_OFF, 0);
    set16(t, 18, 0);
    if let Some(m) = h.mss {
        t[20] = 2;
        t[21] = 4;
        set16(t, 22, m);
    }
    let l3 = p.l2_len;
    match p.l3 {
        L3::Ipv4 => {
            let mut ip = Ipv4Packet::new_unchecked(&mut frame[l3..end]);
            ip.set_total_len((end - l3) as u16);
            if fresh {
                ip.set_ttl(64);
                ip.set_ident(0);
                ip.set_flags_frag(0x4000);
            }
            ip.fill_checksum();
        }
        L3::Ipv6 => {
            set16(&mut frame[l3..], 4, hl as u16);
            if fresh {
                frame[l3 + 7] = 64;
            }
        }
        _ => return Err(Error::Unsupported("not an IP packet")),
    }
    let np = parse(&frame[..end])?;
    fill_l4_checksum(&mut frame[..end], &np)?;
    Ok(end)
}

/// Swaps the Ethernet addresses, the IP addresses and the TCP ports: the frame becomes an
/// answer to its sender, on the link it came from.
fn turn_around(frame: &mut [u8], p: &Parsed) -> Result<()> {
    p.check_against(frame)?;
    let (a, b) = frame.split_at_mut(6);
    a.swap_with_slice(&mut b[..6]);
    let l3 = p.l2_len;
    let (src, len) = match p.l3 {
        L3::Ipv4 => (l3 + 12, 4),
        L3::Ipv6 => (l3 + 8, 16),
        _ => return Err(Error::Unsupported("not an IP packet")),
    };
    let (s, d) = frame[src..src + 2 * len].split_at_mut(len);
    s.swap_with_slice(d);
    let l4 = p.l4_off;
    let (s, d) = frame[l4..l4 + 4].split_at_mut(2);
    s.swap_with_slice(d);
    Ok(())
}

/// Turns a client's SYN into the director's SYN-ACK: back to the client, sequence number
/// `cookie`, acknowledging the SYN, window [`SYNACK_WINDOW`], MSS option `mss` only.
pub fn syn_to_synack(frame: &mut [u8], p: &Parsed, cookie: u32, mss: u16) -> Result<usize> {
    let s = segment(frame, p)?;
    turn_around(frame, p)?;
    let h = Header {
        seq: cookie,
        ack: s.seq.wrapping_add(1),
        flags: flags::SYN | flags::ACK,
        window: SYNACK_WINDOW,
        mss: Some(mss),
    };
    rewrite(frame, p, &h, true)
}

/// Turns a client's handshake ACK into the SYN the real server gets (still addressed as the
/// client sent it; the forwarding rewrite follows): the client's initial sequence number, its
/// window, MSS option `mss` only, no payload.
pub fn ack_to_syn(frame: &mut [u8], p: &Parsed, mss: u16) -> Result<usize> {
    let s = segment(frame, p)?;
    let h = Header {
        seq: s.seq.wrapping_sub(1),
        ack: 0,
        flags: flags::SYN,
        window: s.window,
        mss: Some(mss),
    };
    rewrite(frame, p, &h, false)
}

/// Turns the real server's first SYN-ACK into the window update the client waits for (the
/// reply rewrite toward the client follows): sequence number `cookie + 1`, the server's
/// acknowledgement (the client's ISN + 1) and window, no options.
pub fn synack_to_window_update(frame: &mut [u8], p: &Parsed, cookie: u32) -> Result<usize> {
    let s = segment(frame, p)?;
    let h = Header {
        seq: cookie.wrapping_add(1),
        ack: s.ack,
        flags: flags::ACK,
        window: s.window,
        mss: None,
    };
    rewrite(frame, p, &h, false)
}

/// Answers a real server's SYN-ACK with the ACK that completes its handshake (for a
/// retransmitted SYN-ACK: the first one became the client's window update): back to the
/// server, window `window`.
pub fn synack_to_ack(frame: &mut [u8], p: &Parsed, window: u16) -> Result<usize> {
    let s = segment(frame, p)?;
    turn_around(frame, p)?;
    let h = Header {
        seq: s.ack,
        ack: s.seq.wrapping_add(1),
        flags: flags::ACK,
        window,
        mss: None,
    };
    rewrite(frame, p, &h, true)
}

/// Which way a segment of a proxied connection goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// Client → real server: the acknowledgement number (and SACK blocks, which acknowledge
    /// the server's bytes) move from the client's view (cookie-based) to the server's.
    ToServer,
    /// Real server → client: the sequence number moves from the server's ISN to the cookie.
    ToClient,
}

/// Shifts a segment of a proxied connection by `delta` (the server's ISN minus the cookie),
/// updating the TCP checksum incrementally. SACK blocks are never negotiated on a proxied
/// connection, but any a client sends anyway are shifted too, so they stay truthful.
pub fn adjust(frame: &mut [u8], p: &Parsed, way: Way, delta: u32) -> Result<()> {
    let s = segment(frame, p)?;
    let l4 = p.l4_off;
    let mut csum = get16(frame, l4 + CHECKSUM_OFF);
    let mut put = |frame: &mut [u8], at: usize, new: u32| {
        let old: [u8; 4] = frame[at..at + 4].try_into().unwrap_or([0; 4]);
        csum = checksum::update32(csum, old, new.to_be_bytes());
        frame[at..at + 4].copy_from_slice(&new.to_be_bytes());
    };
    match way {
        Way::ToClient => put(frame, l4 + 4, s.seq.wrapping_sub(delta)),
        Way::ToServer => {
            if s.flags & flags::ACK != 0 {
                put(frame, l4 + 8, s.ack.wrapping_add(delta));
            }
            let hl = usize::from(frame[l4 + 12] >> 4) * 4;
            let mut blocks = [0usize; 4];
            let mut n = 0;
            for_each_option(&frame[l4 + HEADER_LEN..l4 + hl], |kind, at, len| {
                if kind == 5 {
                    let mut b = at + 2;
                    while b + 8 <= at + len && n < blocks.len() {
                        blocks[n] = l4 + HEADER_LEN + b;
                        n += 1;
                        b += 8;
                    }
                }
            });
            for &b in &blocks[..n] {
                let left = get32(frame, b);
                let right = get32(frame, b + 4);
                put(frame, b, left.wrapping_add(delta));
                put(frame, b + 4, right.wrapping_add(delta));
            }
        }
    }
    set16(frame, l4 + CHECKSUM_OFF, csum);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethernet;
    use crate::parse::{parse_checked, verify_l4_checksum};

    const KEY: CookieKey = CookieKey([0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908]);

    fn tuple() -> Tuple {
        Tuple {
            saddr: "192.0.2.7".parse().unwrap(),
            sport: 40000,
            daddr: "198.51.100.10".parse().unwrap(),
            dport: 80,
        }
    }

    #[test]
    fn golden_cookie() {
        // Fixed key, tuple, ISN and time: the value must not drift, or cookies sent by one
        // build would be refused by the next.
        let c = make(&KEY, &tuple(), 0x1234_5678, 1000, 3);
        assert_eq!(c, make(&KEY, &tuple(), 0x1234_5678, 1000, 3));
        assert_eq!(c, GOLDEN);
        // The time counter's low byte is in the top byte, before the hash is added.
        assert_eq!(check(&KEY, &tuple(), 0x1234_5678, c, 1000), Some(3));
    }

    const GOLDEN: u32 = 3_869_887_672;

    #[test]
    fn cookie_round_trips_and_ages_out() {
        let t = tuple();
        for mss in 0..4 {
            for now in [0u64, 63, 64, 1_000_000, u64::from(u32::MAX) * 64] {
                let c = make(&KEY, &t, 0xdead_beef, now, mss);
                assert_eq!(check(&KEY, &t, 0xdead_beef, c, now), Some(mss));
                // Valid for the next period, not the one after.
                let next = now / PERIOD_SECS * PERIOD_SECS + PERIOD_SECS;
                assert_eq!(check(&KEY, &t, 0xdead_beef, c, next + 63), Some(mss));
                assert_eq!(check(&KEY, &t, 0xdead_beef, c, next + 64), None);
            }
        }
    }

    #[test]
    fn cookie_is_bound_to_key_tuple_and_isn() {
        let t = tuple();
        let c = make(&KEY, &t, 7, 500, 2);
        let other_key = CookieKey([1, 2]);
        assert_eq!(check(&other_key, &t, 7, c, 500), None);
        // (An ISN a few units off only moves the MSS class, as in every scheme of this shape:
        // the cookie still has to be guessed.)
        assert_eq!(check(&KEY, &t, 7 + 1000, c, 500), None);
        let moved = Tuple { sport: 40001, ..t };
        assert_eq!(check(&KEY, &moved, 7, c, 500), None);
        let spoofed = Tuple {
            saddr: "192.0.2.8".parse().unwrap(),
            ..t
        };
        assert_eq!(check(&KEY, &spoofed, 7, c, 500), None);
        // Random guesses almost never pass: 4 valid values in 2^24 per period.
        let ok = (0..200_000u32)
            .filter(|&g| check(&KEY, &t, 7, g.wrapping_mul(2_654_435_761), 500).is_some())
            .count();
        assert!(ok <= 2, "{ok} guesses passed");
    }

    #[test]
    fn mss_classes() {
        assert_eq!(mss_index(false, None), 0);
        assert_eq!(mss_index(false, Some(100)), 0);
        assert_eq!(mss_index(false, Some(1460)), 3);
        assert_eq!(mss_index(false, Some(9000)), 3);
        assert_eq!(mss_index(false, Some(1400)), 1);
        assert_eq!(mss_of(false, 1), 1300);
        assert_eq!(mss_index(true, Some(1280)), 1);
        assert_eq!(mss_of(true, mss_index(true, None)), 1220);
    }

    /// A TCP/IPv4 frame client → VIP with `flags`, seq, ack, options and payload.
    fn frame(fl: u8, seq: u32, ack: u32, opts: &[u8], payload: &[u8]) -> Vec<u8> {
        let hl = 20 + opts.len();
        let mut f = vec![0u8; 14 + 20 + hl + payload.len() + 64];
        ethernet::write_header(&mut f, [2; 6], [4; 6], &[], ethernet::ethertype::IPV4).unwrap();
        let total = 20 + hl + payload.len();
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..14 + total]);
            ip.set_version_ihl(20);
            ip.set_total_len(total as u16);
            ip.set_ttl(50);
            ip.set_protocol(6);
            ip.set_src("192.0.2.7".parse().unwrap());
            ip.set_dst("198.51.100.10".parse().unwrap());
            ip.fill_checksum();
        }
        let t = &mut f[34..34 + hl + payload.len()];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&80u16.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[12] = ((hl / 4) as u8) << 4;
        t[13] = fl;
        t[14..16].copy_from_slice(&29200u16.to_be_bytes());
        t[20..hl].copy_from_slice(opts);
        t[hl..].copy_from_slice(payload);
        let end = 14 + total;
        let p = parse(&f[..end]).unwrap();
        fill_l4_checksum(&mut f[..end], &p).unwrap();
        f.truncate(end);
        f.resize(end + 64, 0);
        f
    }

    fn len_of(f: &[u8]) -> usize {
        14 + usize::from(u16::from_be_bytes([f[16], f[17]]))
    }

    #[test]
    fn synack_answers_the_syn() {
        // SYN with MSS 1460, SACK-permitted, timestamps, window scale: only MSS comes back.
        let opts = [
            2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        let mut f = frame(flags::SYN, 1000, 0, &opts, &[]);
        let n = len_of(&f);
        let p = parse(&f[..n]).unwrap();
        assert!(plain_tcp(&p));
        assert_eq!(segment(&f, &p).unwrap().mss, Some(1460));
        let len = syn_to_synack(&mut f, &p, 0xabcd_0001, 1400).unwrap();
        assert_eq!(len, 14 + 20 + 24);
        let q = parse_checked(&f[..len]).unwrap();
        assert_eq!(&f[0..12], &[[4u8; 6], [2u8; 6]].concat()[..]);
        assert_eq!(
            q.addrs(&f[..len]).unwrap(),
            (
                "198.51.100.10".parse().unwrap(),
                "192.0.2.7".parse().unwrap()
            )
        );
        assert_eq!(q.ports(&f[..len]), Some((80, 40000)));
        let s = segment(&f[..len], &q).unwrap();
        assert_eq!(
            (s.seq, s.ack, s.flags, s.window, s.mss, s.payload),
            (
                0xabcd_0001,
                1001,
                flags::SYN | flags::ACK,
                SYNACK_WINDOW,
                Some(1400),
                0
            )
        );
        assert_eq!(f[14 + 8], 64, "a fresh TTL");
    }

    #[test]
    fn handshake_ack_becomes_the_servers_syn_and_payload_is_dropped() {
        let mut f = frame(
            flags::ACK,
            1001,
            0xabcd_0002,
            &[],
            b"GET / HTTP/1.0\r\n\r\n",
        );
        let n = len_of(&f);
        let p = parse(&f[..n]).unwrap();
        let len = ack_to_syn(&mut f, &p, 1300).unwrap();
        let q = parse_checked(&f[..len]).unwrap();
        let s = segment(&f[..len], &q).unwrap();
        assert_eq!(
            (s.seq, s.ack, s.flags, s.window, s.mss, s.payload),
            (1000, 0, flags::SYN, 29200, Some(1300), 0)
        );
        assert_eq!(
            f[14 + 8],
            50,
            "forwarded, not originated: the TTL is the client's"
        );
        assert_eq!(q.ports(&f[..len]), Some((40000, 80)));
    }

    #[test]
    fn servers_synack_becomes_ack_or_window_update() {
        // The real server's SYN-ACK (as if from the VIP; addresses do not matter here).
        let mut f = frame(
            flags::SYN | flags::ACK,
            7_000_000,
            1001,
            &[2, 4, 5, 180],
            &[],
        );
        let n = len_of(&f);
        let p = parse(&f[..n]).unwrap();
        let mut g = f.clone();
        let len = synack_to_window_update(&mut f, &p, 0xabcd_0001).unwrap();
        let q = parse_checked(&f[..len]).unwrap();
        let s = segment(&f[..len], &q).unwrap();
        assert_eq!(
            (s.seq, s.ack, s.flags, s.window, s.mss),
            (0xabcd_0002, 1001, flags::ACK, 29200, None)
        );
        let len = synack_to_ack(&mut g, &p, 5000).unwrap();
        let q = parse_checked(&g[..len]).unwrap();
        let s = segment(&g[..len], &q).unwrap();
        assert_eq!(
            (s.seq, s.ack, s.flags, s.window),
            (1001, 7_000_001, flags::ACK, 5000)
        );
        assert_eq!(q.ports(&g[..len]), Some((80, 40000)));
    }

    #[test]
    fn adjustment_shifts_both_ways_and_keeps_checksums() {
        let delta = 7_000_000u32.wrapping_sub(0xabcd_0001);
        // Client → server: ACK number and a SACK block move into the server's numbering.
        let sack = [1, 1, 5, 10, 0xab, 0xcd, 0x10, 0x00, 0xab, 0xcd, 0x20, 0x00];
        let mut f = frame(flags::ACK | flags::PSH, 1001, 0xabcd_0002, &sack, b"hello");
        let n = len_of(&f);
        let p = parse(&f[..n]).unwrap();
        adjust(&mut f, &p, Way::ToServer, delta).unwrap();
        verify_l4_checksum(&f[..n], &p).unwrap();
        let s = segment(&f[..n], &p).unwrap();
        assert_eq!((s.seq, s.ack), (1001, 7_000_001));
        let l4 = p.l4_off;
        assert_eq!(get32(&f, l4 + 24), 0xabcd_1000u32.wrapping_add(delta));
        assert_eq!(get32(&f, l4 + 28), 0xabcd_2000u32.wrapping_add(delta));
        // Server → client: the sequence number moves back to the cookie's numbering.
        let mut g = frame(flags::ACK, 7_000_001, 1006, &[], b"world");
        let p = parse(&g[..len_of(&g)]).unwrap();
        adjust(&mut g, &p, Way::ToClient, delta).unwrap();
        verify_l4_checksum(&g[..len_of(&g)], &p).unwrap();
        let s = segment(&g, &p).unwrap();
        assert_eq!((s.seq, s.ack), (0xabcd_0002, 1006));
    }

    #[test]
    fn malformed_input_is_refused_not_panicked_on() {
        let mut f = frame(flags::SYN, 1, 0, &[2, 4, 5, 180], &[]);
        let n = len_of(&f);
        let p = parse(&f[..n]).unwrap();
        // Data offset beyond the segment.
        f[p.l4_off + 12] = 0xf0;
        assert!(segment(&f[..n], &p).is_err());
        assert!(syn_to_synack(&mut f[..n], &p, 1, 1460).is_err());
        // An option whose length runs past the header is ignored.
        let mut g = frame(flags::SYN, 1, 0, &[2, 40, 5, 180], &[]);
        let p = parse(&g[..len_of(&g)]).unwrap();
        assert_eq!(segment(&g, &p).unwrap().mss, None);
        // No room for the MSS option.
        let k = len_of(&g);
        assert!(syn_to_synack(&mut g[..k - 4], &p, 1, 1460).is_err());
    }
}
