//! Fragmentation on output. IPv4 (RFC 791 §3.2, the kernel's `ip_fragment`), for packets
//! the MTU check of docs/internals/forwarding.md#mtu lets through as
//! [`crate::tunnel::MtuVerdict::MayFragment`]: no DF, or the outer packet of a tunnel with
//! `pmtu_disc` = 0. IPv6 (RFC 8200 §4.5, the kernel's `ip6_fragment`), for datagrams the
//! plane reassembled ([`crate::reassembly`]) and sends on in fragments no larger than the
//! ones it received, and for the outer IPv6 packet of a tunnel. [`fragment`] picks the family.

use crate::bytes::{get16, set16, set32};
use crate::error::{Error, Layer, Result};
use crate::ipv4::{FLAG_DF, FLAG_MF};
use crate::ipv6::{self, nh};
use crate::parse::{Parsed, L3};

/// The fragments of an IPv4 or an IPv6 packet, one per [`Self::next_into`] call.
#[derive(Debug, Clone)]
pub enum Fragmenter<'a> {
    /// IPv4.
    V4(Ipv4Fragmenter<'a>),
    /// IPv6.
    V6(Ipv6Fragmenter<'a>),
}

/// Prepares to split the packet of `frame` (classified as `p`) into fragments of at most `mtu`
/// bytes of IP packet: [`fragment_ipv4`] or [`fragment_ipv6`] with identification `ident6`.
pub fn fragment<'a>(frame: &'a [u8], p: &Parsed, mtu: u32, ident6: u32) -> Result<Fragmenter<'a>> {
    match p.l3 {
        L3::Ipv6 => fragment_ipv6(frame, p, mtu, ident6).map(Fragmenter::V6),
        _ => fragment_ipv4(frame, p, mtu).map(Fragmenter::V4),
    }
}

impl Fragmenter<'_> {
    /// Writes the next fragment (a whole frame) into `out` and returns its length, or `None`
    /// when all were written.
    pub fn next_into(&mut self, out: &mut [u8]) -> Result<Option<usize>> {
        match self {
            Fragmenter::V4(f) => f.next_into(out),
            Fragmenter::V6(f) => f.next_into(out),
        }
    }
}

/// Writes the fragments of one IPv4 packet, one per [`Self::next_into`] call.
#[derive(Debug, Clone)]
pub struct Ipv4Fragmenter<'a> {
    frame: &'a [u8],
    l2: usize,
    hl: usize,
    /// Payload bytes per non-last fragment (a multiple of 8).
    chunk: usize,
    /// Next payload byte to send (relative to the IP payload start).
    next: usize,
    payload_len: usize,
    /// Fragment offset and MF of the packet being split (it may be a fragment).
    base_off: usize,
    base_mf: bool,
    /// Option bytes of the non-first fragments (non-copied options as NOP).
    later_opts: [u8; 40],
}

/// Prepares to split the IPv4 packet of `frame` (classified as `p`) into
/// fragments of at most `mtu` bytes of IP packet each. Refuses DF packets (they
/// get FRAG_NEEDED instead, docs/internals/forwarding.md#mtu) and an MTU that cannot carry the header plus
/// 8 bytes. A packet that already fits yields itself as the single fragment.
pub fn fragment_ipv4<'a>(frame: &'a [u8], p: &Parsed, mtu: u32) -> Result<Ipv4Fragmenter<'a>> {
    if p.l3 != L3::Ipv4 {
        return Err(Error::Unsupported(
            "IPv4 fragmentation of a non-IPv4 packet",
        ));
    }
    p.check_against(frame)?;
    let l2 = p.l2_len;
    let hl = crate::nat::ipv4_header_len(frame, l2, p.l3_end)?;
    let ff = get16(frame, l2 + 6);
    if ff & FLAG_DF != 0 {
        return Err(Error::Unsupported("fragmentation of a DF packet"));
    }
    let mtu = mtu.min(0xffff) as usize;
    if mtu < hl + 8 {
        return Err(Error::MtuTooSmall(mtu as u32));
    }
    // Linux `ip_options_fragment`: options without the "copied" flag become NOPs
    // in later fragments, so every fragment keeps the same header length.
    let mut later_opts = [0u8; 40];
    let opts = &frame[l2 + 20..l2 + hl];
    later_opts[..opts.len()].copy_from_slice(opts);
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            t => {
                let len = opts.get(i + 1).map_or(0, |&l| usize::from(l));
                if len < 2 || i + len > opts.len() {
                    return Err(Error::BadField(Layer::Ipv4));
                }
                if t & 0x80 == 0 {
                    later_opts[i..i + len].fill(1);
                }
                i += len;
            }
        }
    }
    let payload_len = p.l3_end - l2 - hl;
    let base_off = usize::from(ff & 0x1fff) * 8;
    if base_off + payload_len > 0xffff {
        return Err(Error::BadLength(Layer::Ipv4));
    }
    Ok(Ipv4Fragmenter {
        frame,
        l2,
        hl,
        chunk: (mtu - hl) & !7,
        next: 0,
        payload_len,
        base_off,
        base_mf: ff & FLAG_MF != 0,
        later_opts,
    })
}

impl Ipv4Fragmenter<'_> {
    /// Writes the next fragment (a whole frame: L2 header, IPv4 header, data) into
    /// `out` and returns its length, or `None` when all were written.
    pub fn next_into(&mut self, out: &mut [u8]) -> Result<Option<usize>> {
        if self.next >= self.payload_len && !(self.next == 0 && self.payload_len == 0) {
            return Ok(None);
        }
        let first = self.next == 0;
        let remaining = self.payload_len - self.next;
        let (len, last) = if remaining <= self.chunk {
            (remaining, true)
        } else {
            (self.chunk, false)
        };
        let total = self.l2 + self.hl + len;
        if out.len() < total {
            return Err(Error::NoRoom {
                need: total,
                have: out.len(),
            });
        }
        let (l2, hl) = (self.l2, self.hl);
        out[..l2 + hl].copy_from_slice(&self.frame[..l2 + hl]);
        if !first {
            out[l2 + 20..l2 + hl].copy_from_slice(&self.later_opts[..hl - 20]);
        }
        let data = l2 + hl + self.next;
        out[l2 + hl..total].copy_from_slice(&self.frame[data..data + len]);
        let off = (self.base_off + self.next) / 8;
        let mf = !last || self.base_mf;
        set16(out, l2 + 2, (hl + len) as u16);
        set16(
            out,
            l2 + 6,
            (off as u16 & 0x1fff) | if mf { FLAG_MF } else { 0 },
        );
        crate::nat::ipv4_refresh_checksum(out, l2, total)?;
        self.next += len.max(1);
        Ok(Some(total))
    }
}

/// Writes the fragments of one IPv6 packet, one per [`Self::next_into`] call.
#[derive(Debug, Clone)]
pub struct Ipv6Fragmenter<'a> {
    frame: &'a [u8],
    l2: usize,
    /// End of the unfragmentable part (IPv6 header, hop-by-hop and routing headers), from the
    /// frame start.
    unfrag_end: usize,
    /// Where the next-header byte that will name the fragment header is, and its old value.
    nh_at: usize,
    next: u8,
    ident: u32,
    /// Payload bytes per non-last fragment (a multiple of 8).
    chunk: usize,
    /// Next byte of the fragmentable part to send, its length.
    pos: usize,
    len: usize,
    /// The packet fits: it is sent as it is.
    whole: bool,
}

/// Prepares to split the IPv6 packet of `frame` into fragments of at most `mtu` bytes of IP
/// packet, with fragment headers of identification `ident` after the unfragmentable part (the
/// header, a hop-by-hop header, routing headers and the destination options before them).
/// Refuses a packet that already is a fragment and an MTU that cannot carry 8 bytes of data.
/// A packet that fits yields itself, unchanged.
pub fn fragment_ipv6<'a>(
    frame: &'a [u8],
    p: &Parsed,
    mtu: u32,
    ident: u32,
) -> Result<Ipv6Fragmenter<'a>> {
    if p.l3 != L3::Ipv6 {
        return Err(Error::Unsupported(
            "IPv6 fragmentation of a non-IPv6 packet",
        ));
    }
    p.check_against(frame)?;
    if p.is_fragment() {
        return Err(Error::Fragment);
    }
    let l2 = p.l2_len;
    let ip = &frame[l2..p.l3_end];
    let (mut nh_at, mut off) = (6, ipv6::HEADER_LEN);
    for _ in 0..ipv6::MAX_EXT_HEADERS {
        let cur = ip[nh_at];
        let unfragmentable = match cur {
            nh::HOP_BY_HOP | nh::ROUTING => true,
            // Destination options are unfragmentable only before a routing header.
            nh::DEST_OPTS => ip.get(off) == Some(&nh::ROUTING),
            _ => false,
        };
        if !unfragmentable {
            break;
        }
        let len = (usize::from(*ip.get(off + 1).ok_or(Error::BadExtHeader)?) + 1) * 8;
        if off + len > ip.len() {
            return Err(Error::BadExtHeader);
        }
        nh_at = off;
        off += len;
    }
    let mtu = mtu as usize;
    let whole = ip.len() <= mtu;
    if !whole && mtu < off + 8 + 8 {
        return Err(Error::MtuTooSmall(mtu as u32));
    }
    Ok(Ipv6Fragmenter {
        frame,
        l2,
        unfrag_end: l2 + off,
        nh_at: l2 + nh_at,
        next: ip[nh_at],
        ident,
        chunk: mtu.saturating_sub(off + 8) & !7,
        pos: 0,
        len: ip.len() - off,
        whole,
    })
}

impl Ipv6Fragmenter<'_> {
    /// Writes the next fragment (a whole frame: L2 header, unfragmentable part, fragment
    /// header, data) into `out` and returns its length, or `None` when all were written.
    pub fn next_into(&mut self, out: &mut [u8]) -> Result<Option<usize>> {
        if self.whole {
            self.whole = false;
            self.pos = self.len.max(1);
            let n = self.unfrag_end + self.len;
            if out.len() < n {
                return Err(Error::NoRoom {
                    need: n,
                    have: out.len(),
                });
            }
            out[..n].copy_from_slice(&self.frame[..n]);
            return Ok(Some(n));
        }
        if self.pos >= self.len && !(self.pos == 0 && self.len == 0) {
            return Ok(None);
        }
        let remaining = self.len - self.pos;
        let (len, last) = if remaining <= self.chunk {
            (remaining, true)
        } else {
            (self.chunk, false)
        };
        let u = self.unfrag_end;
        let total = u + 8 + len;
        if out.len() < total {
            return Err(Error::NoRoom {
                need: total,
                have: out.len(),
            });
        }
        out[..u].copy_from_slice(&self.frame[..u]);
        out[self.nh_at] = nh::FRAGMENT;
        set16(
            out,
            self.l2 + 4,
            (total - self.l2 - ipv6::HEADER_LEN) as u16,
        );
        out[u] = self.next;
        out[u + 1] = 0;
        set16(out, u + 2, (self.pos as u16 & 0xfff8) | u16::from(!last));
        set32(out, u + 4, self.ident);
        out[u + 8..total].copy_from_slice(&self.frame[u + self.pos..u + self.pos + len]);
        self.pos += len.max(1);
        Ok(Some(total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eth + IPv6 (+ hop-by-hop when `hbh`) + UDP with `n` bytes of payload.
    fn v6(n: usize, hbh: bool) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        let ext = if hbh { 8 } else { 0 };
        f[18..20].copy_from_slice(&((ext + 8 + n) as u16).to_be_bytes());
        f[20] = if hbh { nh::HOP_BY_HOP } else { 17 };
        f[21] = 64;
        f[22] = 0x20;
        f[38] = 0x20;
        if hbh {
            f.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        }
        f.extend_from_slice(&[0x13, 0x88, 0, 53]);
        f.extend_from_slice(&((8 + n) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend((0..n).map(|i| i as u8));
        f
    }

    #[test]
    fn ipv6_fragments_reassemble_to_the_packet() {
        for hbh in [false, true] {
            let f = v6(4000, hbh);
            let p = crate::parse(&f).unwrap();
            let mut fr = fragment(&f, &p, 1280, 0x1234_5678).unwrap();
            let mut out = vec![0u8; 2000];
            let mut r = crate::reassembly::Reassembler::new(Default::default());
            let mut n_frags = 0;
            let mut done = None;
            while let Some(n) = fr.next_into(&mut out).unwrap() {
                n_frags += 1;
                assert!(n - 14 <= 1280);
                let q = crate::parse(&out[..n]).unwrap();
                let fh = q.frag.expect("a fragment");
                assert_eq!(fh.ident, 0x1234_5678);
                if let crate::reassembly::Insert::Complete(_) =
                    r.insert(&out[..n], &q, rvs_core::Time(0))
                {
                    let mut whole = vec![0u8; 70_000];
                    let k = r.write_complete(&mut whole).unwrap();
                    whole.truncate(k);
                    done = Some(whole);
                }
            }
            assert_eq!(n_frags, 4);
            assert_eq!(done.expect("reassembled"), f);
        }
    }

    #[test]
    fn ipv6_that_fits_is_sent_whole_and_fragments_are_refused() {
        let f = v6(100, false);
        let p = crate::parse(&f).unwrap();
        let mut fr = fragment_ipv6(&f, &p, 1280, 1).unwrap();
        let mut out = vec![0u8; 2000];
        let n = fr.next_into(&mut out).unwrap().unwrap();
        assert_eq!(&out[..n], &f[..]);
        assert_eq!(fr.next_into(&mut out).unwrap(), None);
        let big = v6(2000, false);
        let bp = crate::parse(&big).unwrap();
        assert!(fragment_ipv6(&big, &bp, 50, 1).is_err());
    }
}
