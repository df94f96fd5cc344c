//! Software segmentation of TCP super-frames.
//!
//! An AF_PACKET tap sees a frame after GRO (a NIC's or veth's receive offload merged several
//! TCP segments into one skb) or, on a veth, as the sender's stack built it with GSO/TSO: one
//! TCP packet of up to 64 KB that the *device* was going to cut into MTU-sized segments. The
//! kernel's IPVS never meets the problem because the skb keeps its `gso_size` and is cut on
//! output (`ip_vs_xmit` → `ip_finish_output_gso`). A frame sent back with AF_PACKET has no
//! such metadata, and a frame larger than the link MTU is refused or, with DF, answered with
//! FRAG_NEEDED although no real packet was ever too big.
//!
//! So the data plane cuts such a frame back into segments that fit the MTU of the link it
//! came in on, before processing each: same headers, sequence numbers advanced, IPv4 total
//! length / IPv6 payload length and identification (+1 per segment, as GSO does) rewritten,
//! FIN and PSH only on the last segment, CWR only on the first, full checksums recomputed.
//! The original segment size is not known (the kernel reports it only with
//! `PACKET_VNET_HDR`), so segments carry as much as the MTU allows; TCP does not care.

use crate::bytes::{get16, get32, set16, set32};
use crate::checksum;
use crate::error::{Error, Layer, Result};
use crate::parse::{fill_l4_checksum, parse, proto, Parsed, L3};

/// Writes the segments of one TCP super-frame, one per [`TcpSegmenter::next_into`] call.
#[derive(Debug, Clone)]
pub struct TcpSegmenter<'a> {
    frame: &'a [u8],
    l3_off: usize,
    /// Start of the TCP header.
    l4_off: usize,
    /// End of the TCP header (start of the payload).
    hdr_end: usize,
    l3_end: usize,
    v6: bool,
    /// Payload bytes per segment.
    mss: usize,
    /// Next payload byte (absolute offset in `frame`).
    next: usize,
    index: u16,
}

/// Prepares to cut the TCP packet of `frame` (classified as `p`) into segments whose IP
/// packets are at most `mtu` bytes. Fails for non-TCP packets, fragments, and an MTU that
/// cannot carry the headers plus 8 bytes of payload.
pub fn segment_tcp<'a>(frame: &'a [u8], p: &Parsed, mtu: u32) -> Result<TcpSegmenter<'a>> {
    if p.proto != proto::TCP || !matches!(p.l3, L3::Ipv4 | L3::Ipv6) {
        return Err(Error::Unsupported("segmentation of a non-TCP packet"));
    }
    if p.is_fragment() {
        return Err(Error::Fragment);
    }
    p.check_against(frame)?;
    let l3_off = p.l3_off();
    if p.l4_off + 20 > p.l3_end {
        return Err(Error::BadField(Layer::Tcp));
    }
    let thl = usize::from(frame[p.l4_off + 12] >> 4) * 4;
    let hdr_end = p.l4_off + thl;
    if thl < 20 || hdr_end > p.l3_end {
        return Err(Error::BadField(Layer::Tcp));
    }
    let headers = hdr_end - l3_off;
    let mtu = (mtu as usize).min(0xffff);
    if mtu < headers + 8 {
        return Err(Error::MtuTooSmall(mtu as u32));
    }
    Ok(TcpSegmenter {
        frame,
        l3_off,
        l4_off: p.l4_off,
        hdr_end,
        l3_end: p.l3_end,
        v6: p.l3 == L3::Ipv6,
        mss: mtu - headers,
        next: hdr_end,
        index: 0,
    })
}

impl TcpSegmenter<'_> {
    /// Writes the next segment (a complete frame) into `out`; returns its length, or `None`
    /// when every payload byte was written. A packet without payload, or one that already
    /// fits, yields one segment equal to it (checksums recomputed).
    pub fn next_into(&mut self, out: &mut [u8]) -> Result<Option<usize>> {
        let payload_end = self.l3_end;
        if self.next > payload_end || (self.next == payload_end && self.index > 0) {
            return Ok(None);
        }
        let chunk = (payload_end - self.next).min(self.mss);
        let len = self.hdr_end + chunk;
        if out.len() < len {
            return Err(Error::NoRoom {
                need: len,
                have: out.len(),
            });
        }
        let f = self.frame;
        out[..self.hdr_end].copy_from_slice(&f[..self.hdr_end]);
        out[self.hdr_end..len].copy_from_slice(&f[self.next..self.next + chunk]);
        let first = self.index == 0;
        let last = self.next + chunk >= payload_end;
        let l3 = self.l3_off;
        let ip_len = len - l3;
        if self.v6 {
            set16(out, l3 + 4, (ip_len - 40) as u16);
        } else {
            set16(out, l3 + 2, ip_len as u16);
            let id = get16(f, l3 + 4).wrapping_add(self.index);
            set16(out, l3 + 4, id);
            let ihl = usize::from(out[l3] & 0x0f) * 4;
            set16(out, l3 + 10, 0);
            let c = checksum::checksum(&out[l3..l3 + ihl]);
            set16(out, l3 + 10, c);
        }
        let l4 = self.l4_off;
        let offset = (self.next - self.hdr_end) as u32;
        set32(out, l4 + 4, get32(f, l4 + 4).wrapping_add(offset));
        let mut flags = out[l4 + 13];
        if !last {
            flags &= !(crate::tcp::flags::FIN | crate::tcp::flags::PSH);
        }
        if !first {
            flags &= !0x80; // CWR
        }
        out[l4 + 13] = flags;
        let p = parse(&out[..len])?;
        fill_l4_checksum(&mut out[..len], &p)?;
        self.next += chunk;
        self.index = self.index.wrapping_add(1);
        Ok(Some(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::verify_l4_checksum;

    /// Ethernet + IPv4 (DF, id 7) + TCP (doff 8: 12 option bytes) + `n` payload bytes, with
    /// PSH|ACK|FIN set.
    fn v4_frame(n: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 32 + n];
        f[12] = 0x08;
        let ip = 14;
        f[ip] = 0x45;
        set16(&mut f, ip + 2, (20 + 32 + n) as u16);
        set16(&mut f, ip + 4, 7);
        set16(&mut f, ip + 6, 0x4000);
        f[ip + 8] = 64;
        f[ip + 9] = 6;
        f[ip + 12..ip + 16].copy_from_slice(&[10, 0, 0, 1]);
        f[ip + 16..ip + 20].copy_from_slice(&[10, 0, 0, 2]);
        let c = checksum::checksum(&f[ip..ip + 20]);
        set16(&mut f, ip + 10, c);
        let t = ip + 20;
        set16(&mut f, t, 80);
        set16(&mut f, t + 2, 40000);
        set32(&mut f, t + 4, 0xffff_fff0);
        f[t + 12] = 8 << 4;
        f[t + 13] = 0x19;
        for (i, b) in f[t + 32..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let p = parse(&f).unwrap();
        fill_l4_checksum(&mut f, &p).unwrap();
        f
    }

    #[test]
    fn cuts_a_super_frame_into_mtu_sized_valid_segments() {
        let f = v4_frame(3000);
        let p = parse(&f).unwrap();
        let mut s = segment_tcp(&f, &p, 1500).unwrap();
        let mut out = vec![0u8; 2000];
        let mut payload = Vec::new();
        let mut segs = 0;
        for _ in 0..10 {
            let Some(n) = s.next_into(&mut out).unwrap() else {
                break;
            };
            let seg = &out[..n];
            let q = parse(seg).unwrap();
            assert!(q.l3_len() <= 1500);
            verify_l4_checksum(seg, &q).unwrap();
            assert_eq!(checksum::checksum(&seg[14..34]), 0, "IPv4 header checksum");
            assert_eq!(get16(seg, 18), 7 + segs as u16, "ident");
            let seq = get32(seg, 34 + 4);
            assert_eq!(seq, 0xffff_fff0u32.wrapping_add(payload.len() as u32));
            payload.extend_from_slice(&seg[66..]);
            segs += 1;
            let last = payload.len() == 3000;
            assert_eq!(seg[34 + 13] & 0x09 != 0, last, "FIN/PSH only on the last");
        }
        assert_eq!(segs, 3);
        assert_eq!(payload, f[66..].to_vec());
    }

    #[test]
    fn no_payload_is_one_segment() {
        let f = v4_frame(0);
        let p = parse(&f).unwrap();
        let mut s = segment_tcp(&f, &p, 1500).unwrap();
        let mut out = vec![0u8; 200];
        assert_eq!(s.next_into(&mut out).unwrap(), Some(f.len()));
        assert_eq!(&out[..f.len()], &f[..]);
        assert_eq!(s.next_into(&mut out).unwrap(), None);
    }

    #[test]
    fn refuses_tiny_mtu_and_small_buffers() {
        let f = v4_frame(100);
        let p = parse(&f).unwrap();
        assert!(segment_tcp(&f, &p, 56).is_err());
        let mut s = segment_tcp(&f, &p, 1500).unwrap();
        let mut out = vec![0u8; 50];
        assert!(s.next_into(&mut out).is_err());
    }
}
