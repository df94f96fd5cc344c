//! IPv4 fragmentation on output (RFC 791 §3.2, the kernel's `ip_fragment`), for
//! packets the MTU check of docs/internals/forwarding.md#mtu lets through as [`crate::tunnel::MtuVerdict::MayFragment`]:
//! no DF, or the outer packet of a tunnel with `pmtu_disc` = 0.

use crate::bytes::{get16, set16};
use crate::error::{Error, Layer, Result};
use crate::ipv4::{FLAG_DF, FLAG_MF};
use crate::parse::{Parsed, L3};

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
