//! IPv4 and IPv6 reassembly of fragments addressed to the director (docs/internals/forwarding.md#fragments).
//!
//! The kernel reassembles a fragmented datagram before IPVS schedules it: IPv4 in the local
//! delivery path (and in IPVS's own out-hook for NAT replies), IPv6 in conntrack's defrag. A
//! plane that schedules on ports must do the same, since only the first fragment carries them.
//! This module is the pure part: fragments in, a whole datagram out. It does no I/O and reads
//! no clock; the caller passes the time.
//!
//! Rules, as Linux applies them (`ip_frag_queue`, `ip6_frag_queue`, `inet_frag_queue_insert`):
//! - A datagram is identified by (source, destination, identification, protocol) for IPv4 and
//!   (source, destination, identification) for IPv6.
//! - **Overlap**: a fragment that overlaps data already received, without lying entirely inside
//!   it, discards the whole datagram (RFC 5722 for IPv6; Linux does the same for IPv4 since
//!   2018, the "FragmentSmack" fix). A fragment entirely inside data already received is a
//!   duplicate: it is dropped and the datagram kept.
//! - A last fragment that ends before data already received, or a second last fragment with a
//!   different end, or data past the end a last fragment set, or an empty fragment: the
//!   datagram is discarded. A non-last IPv6 fragment whose length is not a multiple of 8 is
//!   dropped (RFC 8200); an IPv4 one is cut down to a multiple of 8, as Linux does.
//! - A datagram longer than 65 535 bytes (IPv4 total length; IPv6 payload length) is discarded.
//! - An incomplete datagram is given up after a timeout counted from its first fragment
//!   (`ipfrag_time` 30 s for IPv4, 60 s for IPv6) — whether its first fragment is missing or
//!   any other.
//! - Memory is bounded: every queued fragment is charged its data plus a fixed overhead. When a
//!   fragment takes the total over the high threshold (`ipfrag_high_thresh`, 4 MiB), the oldest
//!   incomplete datagrams are discarded until it is under the low threshold (`ipfrag_low_thresh`,
//!   3 MiB). This is what Linux did before 4.17; since then it refuses new fragments while over
//!   the high threshold instead. We evict: the fragments of an honest datagram arrive within
//!   milliseconds of each other, so its queue is young, while a flood of fragments that never
//!   complete ages; refusing would let such a flood stop all reassembly for the whole timeout.
//!   The bound is the director's, not a worker's, as the kernel's is per network namespace:
//!   the reassemblers of one director share one [`FragMemory`], each charges it what it holds,
//!   and one that finds the shared total over the high threshold evicts its own oldest
//!   datagrams until the total is under the low threshold, and, when it has nothing older
//!   left, the datagram it was adding to. So what a director holds stays under the high
//!   threshold plus one fragment per worker, and a worker flooded with fragments that never
//!   complete evicts its own, not another worker's honest datagrams.
//!
//! The reassembled datagram has the first fragment's L2 and IP headers (IPv4 options included;
//! the IPv6 fragment header removed), its length fields fixed, the IPv4 MF flag and offset
//! cleared, and DF set only when the largest fragment carried DF (as Linux, so a sender's DF is
//! honoured on the way out). [`Reassembled`] tells the caller the largest fragment received, so
//! that it sends no fragment bigger than that (the kernel's `frag_max_size`).

use core::net::IpAddr;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use rvs_core::Time;

use crate::bytes::{get16, get32, set16};
use crate::ipv4::FLAG_DF;
use crate::ipv6::{self, nh};
use crate::parse::{Parsed, L3};

/// Limits of the reassembler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// Bytes held before the oldest datagrams are discarded (`ipfrag_high_thresh`).
    pub high_thresh: usize,
    /// Bytes held after an eviction at most (`ipfrag_low_thresh`).
    pub low_thresh: usize,
    /// How long an incomplete IPv4 datagram is kept, in milliseconds (`ipfrag_time`).
    pub timeout_v4_ms: u64,
    /// The same for IPv6 (`ip6frag_time`).
    pub timeout_v6_ms: u64,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            high_thresh: 4 * 1024 * 1024,
            low_thresh: 3 * 1024 * 1024,
            timeout_v4_ms: 30_000,
            timeout_v6_ms: 60_000,
        }
    }
}

/// What a queued fragment costs beyond its data (the kernel charges a whole buffer's truesize):
/// so that 8-byte fragments cannot hold many times the memory they are charged.
pub const FRAGMENT_OVERHEAD: usize = 128;
/// What a datagram being reassembled costs beyond its fragments.
pub const QUEUE_OVERHEAD: usize = 256;

/// Why a fragment, or a whole datagram, was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FragDrop {
    /// Overlapping fragments: the datagram is discarded (RFC 5722).
    Overlap,
    /// A fragment entirely inside data already received: the fragment is dropped.
    Duplicate,
    /// The datagram would be longer than 65 535 bytes.
    TooBig,
    /// Inconsistent length: empty fragment, a second last fragment with another end, data past
    /// the end, a non-last IPv6 fragment not a multiple of 8 bytes.
    BadLength,
    /// Headers that cannot be a fragment (no IPv6 fragment header found, too short).
    Malformed,
    /// Not complete within the timeout (per datagram).
    Timeout,
    /// Discarded to bring memory under the low threshold (per datagram).
    Evicted,
    /// The reassembled datagram did not fit the caller's buffer.
    NoRoom,
}

impl FragDrop {
    /// Every reason, in counter order.
    pub const ALL: [FragDrop; 8] = [
        FragDrop::Overlap,
        FragDrop::Duplicate,
        FragDrop::TooBig,
        FragDrop::BadLength,
        FragDrop::Malformed,
        FragDrop::Timeout,
        FragDrop::Evicted,
        FragDrop::NoRoom,
    ];
    /// Stable snake_case name (metrics).
    pub fn name(self) -> &'static str {
        match self {
            FragDrop::Overlap => "overlap",
            FragDrop::Duplicate => "duplicate",
            FragDrop::TooBig => "too_big",
            FragDrop::BadLength => "bad_length",
            FragDrop::Malformed => "malformed",
            FragDrop::Timeout => "timeout",
            FragDrop::Evicted => "evicted",
            FragDrop::NoRoom => "no_room",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// What the reassembler counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FragCounters {
    /// Fragments received.
    pub fragments: u64,
    /// Datagrams reassembled.
    pub reassembled: u64,
    drops: [u64; FragDrop::ALL.len()],
}

impl FragCounters {
    /// The count for `r`.
    pub fn get(&self, r: FragDrop) -> u64 {
        self.drops[r.index()]
    }
    /// Every reason with its count, in [`FragDrop::ALL`] order.
    pub fn all(&self) -> impl Iterator<Item = (FragDrop, u64)> + '_ {
        FragDrop::ALL.iter().map(|&r| (r, self.get(r)))
    }
    fn add(&mut self, r: FragDrop) {
        self.drops[r.index()] = self.drops[r.index()].wrapping_add(1);
    }
}

/// What [`Reassembler::insert`] did with a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Kept; the datagram is not complete yet.
    Queued,
    /// The datagram is complete: write it with [`Reassembler::write_complete`].
    Complete(Reassembled),
    /// Dropped (and counted) for this reason.
    Dropped(FragDrop),
}

/// A datagram just completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reassembled {
    /// Length of the largest fragment's IP packet: nothing bigger is sent on (the kernel's
    /// `frag_max_size`).
    pub max_frag: u32,
    /// The fragments' identification (IPv6 fragment headers of the re-fragmented datagram
    /// reuse it).
    pub ident: u32,
    /// How many fragments made it.
    pub fragments: u32,
    /// Length of the frame [`Reassembler::write_complete`] writes.
    pub len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    ident: u32,
    /// IPv4 protocol; 0 for IPv6, whose key has none.
    proto: u8,
}

#[derive(Debug)]
struct Piece {
    off: usize,
    data: Vec<u8>,
}

impl Piece {
    fn end(&self) -> usize {
        self.off + self.data.len()
    }
}

#[derive(Debug)]
struct Queue {
    seq: u64,
    created: Time,
    /// Pieces sorted by offset, never overlapping.
    pieces: Vec<Piece>,
    /// Bytes of data held (the kernel's `meat`).
    meat: usize,
    /// End of the datagram's data as known so far (final once `last_in`).
    len: usize,
    last_in: bool,
    /// L2 header plus the unfragmentable IP header of the first fragment (offset 0); for IPv6
    /// without the fragment header.
    head: Vec<u8>,
    /// In `head`: the L2 length, and for IPv6 where the next-header byte that named the
    /// fragment header is, with the value it takes.
    l2: usize,
    v6_next: Option<(usize, u8)>,
    max_size: usize,
    max_df_size: usize,
    mem: usize,
}

impl Queue {
    fn new(seq: u64, now: Time) -> Queue {
        Queue {
            seq,
            created: now,
            pieces: Vec::new(),
            meat: 0,
            len: 0,
            last_in: false,
            head: Vec::new(),
            l2: 0,
            v6_next: None,
            max_size: 0,
            max_df_size: 0,
            mem: QUEUE_OVERHEAD,
        }
    }
    fn complete(&self) -> bool {
        self.last_in && !self.head.is_empty() && self.meat == self.len
    }
}

/// One fragment's place in its frame.
struct Located {
    key: Key,
    v6: bool,
    /// Offset of the fragment's data in the datagram, whether more follow.
    off: usize,
    more: bool,
    df: bool,
    /// The data, and the unfragmentable head (L2 + IP header) it comes after.
    data: (usize, usize),
    head_end: usize,
    /// IPv6: where the next-header byte naming the fragment header is, and what follows it.
    v6_next: Option<(usize, u8)>,
    l2: usize,
    l3_len: usize,
}

/// Bytes held by all the reassemblers of one director (see the module's memory rule).
#[derive(Debug, Default)]
pub struct FragMemory(AtomicUsize);

impl FragMemory {
    /// Bytes charged now, over every reassembler sharing it.
    pub fn held(&self) -> usize {
        self.0.load(Relaxed)
    }
}

/// The reassembly queues of one worker: bounded, expiring, and never panicking on input.
#[derive(Debug)]
pub struct Reassembler {
    cfg: ReassemblyConfig,
    queues: HashMap<Key, Queue>,
    /// Queues by age (creation sequence), oldest first, IPv4 then IPv6: for eviction and
    /// expiry (the families time out differently).
    order: [BTreeMap<u64, Key>; 2],
    seq: u64,
    mem: usize,
    /// The director's total, which `mem` is part of.
    shared: Arc<FragMemory>,
    counters: FragCounters,
    /// The datagram [`Insert::Complete`] announced, until written.
    done: Option<Queue>,
}

impl Drop for Reassembler {
    /// What it held leaves the director's total with it.
    fn drop(&mut self) {
        let n = self.mem;
        self.release(n);
    }
}

impl Reassembler {
    /// An empty reassembler with limits `cfg`, alone under them.
    pub fn new(cfg: ReassemblyConfig) -> Reassembler {
        Reassembler::sharing(cfg, Arc::default())
    }

    /// An empty reassembler with limits `cfg` applied to the total of every reassembler
    /// sharing `memory` (the workers of one director).
    pub fn sharing(cfg: ReassemblyConfig, memory: Arc<FragMemory>) -> Reassembler {
        Reassembler {
            shared: memory,
            cfg,
            queues: HashMap::new(),
            order: [BTreeMap::new(), BTreeMap::new()],
            seq: 0,
            mem: 0,
            counters: FragCounters::default(),
            done: None,
        }
    }

    /// What it counted.
    pub fn counters(&self) -> &FragCounters {
        &self.counters
    }

    /// Bytes charged for the datagrams being reassembled (by this reassembler).
    pub fn mem(&self) -> usize {
        self.mem
    }

    fn charge(&mut self, n: usize) {
        self.mem += n;
        self.shared.0.fetch_add(n, Relaxed);
    }

    fn release(&mut self, n: usize) {
        let n = n.min(self.mem);
        self.mem -= n;
        self.shared.0.fetch_sub(n, Relaxed);
    }

    /// Datagrams being reassembled.
    pub fn queues(&self) -> usize {
        self.queues.len()
    }

    /// Takes the fragment `frame` (classified as `p`, a fragment) received at `now`.
    pub fn insert(&mut self, frame: &[u8], p: &Parsed, now: Time) -> Insert {
        self.counters.fragments = self.counters.fragments.wrapping_add(1);
        self.done = None;
        self.expire(now);
        let loc = match locate(frame, p) {
            Ok(l) => l,
            Err(r) => return self.dropped(r),
        };
        let (d0, d1) = loc.data;
        let mut end = loc.off + (d1 - d0);
        let mut d1 = d1;
        if loc.more && end & 7 != 0 {
            if loc.v6 {
                return self.dropped(FragDrop::BadLength);
            }
            // IPv4: Linux keeps the 8-byte multiple and drops the tail.
            end &= !7;
            d1 = d0 + (end - loc.off);
        }
        let unfrag = loc.head_end - loc.l2;
        let limit = if loc.v6 {
            // The IPv6 payload length covers the extension headers before the fragment header.
            0xffff - (unfrag - ipv6::HEADER_LEN)
        } else {
            0xffff - unfrag
        };
        if end > limit {
            self.remove(&loc.key);
            return self.dropped(FragDrop::TooBig);
        }
        if !loc.more && loc.off == 0 {
            // A datagram in one fragment (an IPv6 atomic fragment): whole at once, and kept
            // out of any queue (RFC 6946).
            let mut q = Queue::new(0, now);
            self.charge(QUEUE_OVERHEAD);
            q.last_in = true;
            q.len = end;
            return self.add_piece(q, &loc, frame, (d0, d1), end, false);
        }
        let q = match self.queues.remove(&loc.key) {
            Some(q) => q,
            None => {
                self.seq += 1;
                self.order[family(&loc.key)].insert(self.seq, loc.key);
                self.charge(QUEUE_OVERHEAD);
                Queue::new(self.seq, now)
            }
        };
        let mut q = q;
        if end == loc.off {
            return self.discard(q, &loc.key, FragDrop::BadLength);
        }
        if !loc.more {
            if end < q.len || (q.last_in && end != q.len) {
                return self.discard(q, &loc.key, FragDrop::BadLength);
            }
            q.last_in = true;
            q.len = end;
        } else if end > q.len {
            if q.last_in {
                return self.discard(q, &loc.key, FragDrop::BadLength);
            }
            q.len = end;
        }
        self.add_piece(q, &loc, frame, (d0, d1), end, true)
    }

    /// Inserts the piece into `q` (put back in the table when `queued`), completing it or not.
    fn add_piece(
        &mut self,
        mut q: Queue,
        loc: &Located,
        frame: &[u8],
        data: (usize, usize),
        end: usize,
        queued: bool,
    ) -> Insert {
        // Where the piece goes: after every piece that ends at or before its start.
        let i = q.pieces.partition_point(|x| x.end() <= loc.off);
        let mut covered = loc.off;
        let mut j = i;
        while j < q.pieces.len() && q.pieces[j].off < end {
            if q.pieces[j].off > covered {
                break;
            }
            covered = covered.max(q.pieces[j].end());
            j += 1;
        }
        if j > i {
            // It meets received data: inside it entirely is a duplicate, anything else an
            // overlap that discards the datagram.
            if covered >= end {
                if queued {
                    self.queues.insert(loc.key, q);
                }
                return self.dropped(FragDrop::Duplicate);
            }
            return self.discard(q, &loc.key, FragDrop::Overlap);
        }
        if let Some(next) = q.pieces.get(i) {
            if next.off < end {
                return self.discard(q, &loc.key, FragDrop::Overlap);
            }
        }
        let bytes = &frame[data.0..data.1];
        let cost = bytes.len() + FRAGMENT_OVERHEAD + if loc.off == 0 { loc.head_end } else { 0 };
        q.pieces.insert(
            i,
            Piece {
                off: loc.off,
                data: bytes.to_vec(),
            },
        );
        q.meat += bytes.len();
        if loc.off == 0 {
            q.head = frame[..loc.head_end].to_vec();
            q.l2 = loc.l2;
            q.v6_next = loc.v6_next;
        }
        q.max_size = q.max_size.max(loc.l3_len);
        if loc.df && loc.l3_len >= q.max_df_size {
            q.max_df_size = loc.l3_len;
        }
        q.mem += cost;
        self.charge(cost);
        if q.complete() {
            self.release(q.mem);
            if queued {
                self.order[family(&loc.key)].remove(&q.seq);
            }
            self.counters.reassembled = self.counters.reassembled.wrapping_add(1);
            let r = Reassembled {
                max_frag: q.max_size as u32,
                ident: loc.key.ident,
                fragments: q.pieces.len() as u32,
                len: q.head.len() + q.len,
            };
            self.done = Some(q);
            return Insert::Complete(r);
        }
        if !queued {
            // Only a datagram in one piece is not queued, and it is always complete.
            self.release(q.mem);
            return self.dropped(FragDrop::Malformed);
        }
        let seq = q.seq;
        self.queues.insert(loc.key, q);
        if self.shared.held() > self.cfg.high_thresh {
            self.evict(seq);
            if self.shared.held() > self.cfg.high_thresh && self.remove(&loc.key) {
                // Nothing older of ours is left and other workers hold the rest: this
                // datagram goes, as the kernel refuses fragments over the high threshold.
                self.counters.add(FragDrop::Evicted);
                return Insert::Dropped(FragDrop::Evicted);
            }
        }
        Insert::Queued
    }

    /// Writes the datagram the last [`Insert::Complete`] announced into `out` (a whole frame:
    /// the first fragment's L2 header, the IP header, the data) and returns its length.
    /// `None` when there is none, or when `out` is too small (counted as [`FragDrop::NoRoom`]).
    pub fn write_complete(&mut self, out: &mut [u8]) -> Option<usize> {
        let q = self.done.take()?;
        let total = q.head.len() + q.len;
        if out.len() < total {
            self.counters.add(FragDrop::NoRoom);
            return None;
        }
        out[..q.head.len()].copy_from_slice(&q.head);
        let mut at = q.head.len();
        for piece in &q.pieces {
            out[at..at + piece.data.len()].copy_from_slice(&piece.data);
            at += piece.data.len();
        }
        let l2 = q.l2;
        match q.v6_next {
            None => {
                // IPv4: total length, flags (DF only if the largest fragment had it), checksum.
                set16(out, l2 + 2, (total - l2) as u16);
                let df = q.max_df_size != 0 && q.max_df_size == q.max_size;
                set16(out, l2 + 6, if df { FLAG_DF } else { 0 });
                let hl = q.head.len() - l2;
                out[l2 + 10] = 0;
                out[l2 + 11] = 0;
                let c = crate::checksum::checksum(&out[l2..l2 + hl]);
                set16(out, l2 + 10, c);
            }
            Some((nh_at, next)) => {
                out[nh_at] = next;
                set16(out, l2 + 4, (total - l2 - ipv6::HEADER_LEN) as u16);
            }
        }
        Some(total)
    }

    /// Gives up the datagrams older than their timeout at `now`: the oldest of each family
    /// first, so the cost is the number expired.
    pub fn expire(&mut self, now: Time) {
        for fam in 0..2 {
            let timeout = if fam == 1 {
                self.cfg.timeout_v6_ms
            } else {
                self.cfg.timeout_v4_ms
            };
            while let Some((_, &key)) = self.order[fam].first_key_value() {
                let young = self
                    .queues
                    .get(&key)
                    .is_some_and(|q| now.0 < q.created.0.saturating_add(timeout));
                if young {
                    break;
                }
                if self.remove(&key) {
                    self.counters.add(FragDrop::Timeout);
                } else {
                    self.order[fam].pop_first();
                }
            }
        }
    }

    /// Discards the oldest datagrams (except the one numbered `keep`) until under the low
    /// threshold.
    fn evict(&mut self, keep: u64) {
        while self.shared.held() > self.cfg.low_thresh {
            let oldest =
                |m: &BTreeMap<u64, Key>| m.iter().find(|(&s, _)| s != keep).map(|(&s, &k)| (s, k));
            let victim = match (oldest(&self.order[0]), oldest(&self.order[1])) {
                (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
                (a, b) => a.or(b),
            };
            let Some((seq, key)) = victim else {
                break;
            };
            if self.remove(&key) {
                self.counters.add(FragDrop::Evicted);
            } else {
                self.order[family(&key)].remove(&seq);
            }
        }
    }

    /// Removes the queue of `key`, if any, and what it was charged.
    fn remove(&mut self, key: &Key) -> bool {
        match self.queues.remove(key) {
            Some(q) => {
                self.order[family(key)].remove(&q.seq);
                self.release(q.mem);
                true
            }
            None => false,
        }
    }

    /// Drops the queue `q` (already out of the table) and its fragment for `why`.
    fn discard(&mut self, q: Queue, key: &Key, why: FragDrop) -> Insert {
        self.order[family(key)].remove(&q.seq);
        self.release(q.mem);
        self.dropped(why)
    }

    fn dropped(&mut self, why: FragDrop) -> Insert {
        self.counters.add(why);
        Insert::Dropped(why)
    }
}

fn family(k: &Key) -> usize {
    usize::from(k.src.is_ipv6())
}

/// Finds the key, offset, data and unfragmentable head of the fragment in `frame`.
fn locate(frame: &[u8], p: &Parsed) -> Result<Located, FragDrop> {
    let f = p.frag.ok_or(FragDrop::Malformed)?;
    p.check_against(frame).map_err(|_| FragDrop::Malformed)?;
    let (src, dst) = p.addrs(frame).ok_or(FragDrop::Malformed)?;
    let l2 = p.l2_len;
    match p.l3 {
        L3::Ipv4 => {
            let hl = usize::from(frame[l2] & 0x0f) * 4;
            let ff = get16(frame, l2 + 6);
            Ok(Located {
                key: Key {
                    src,
                    dst,
                    ident: f.ident,
                    proto: frame[l2 + 9],
                },
                v6: false,
                off: usize::from(f.offset),
                more: f.more,
                df: ff & FLAG_DF != 0,
                data: (l2 + hl, p.l3_end),
                head_end: l2 + hl,
                v6_next: None,
                l2,
                l3_len: p.l3_len(),
            })
        }
        L3::Ipv6 => {
            let (frag_at, nh_at) =
                fragment_header(&frame[l2..p.l3_end]).ok_or(FragDrop::Malformed)?;
            let w = get16(frame, l2 + frag_at + 2);
            Ok(Located {
                key: Key {
                    src,
                    dst,
                    ident: get32(frame, l2 + frag_at + 4),
                    proto: 0,
                },
                v6: true,
                off: usize::from(w & 0xfff8),
                more: w & 1 != 0,
                df: false,
                data: (l2 + frag_at + 8, p.l3_end),
                head_end: l2 + frag_at,
                v6_next: Some((l2 + nh_at, frame[l2 + frag_at])),
                l2,
                l3_len: p.l3_len(),
            })
        }
        _ => Err(FragDrop::Malformed),
    }
}

/// In the IPv6 packet `ip`: the offset of the fragment header and of the next-header byte that
/// names it (6 in the fixed header, or the first byte of the extension header before it).
fn fragment_header(ip: &[u8]) -> Option<(usize, usize)> {
    let mut nh_at = 6;
    let mut off = ipv6::HEADER_LEN;
    for _ in 0..=ipv6::MAX_EXT_HEADERS {
        let next = *ip.get(nh_at)?;
        match next {
            nh::FRAGMENT => return (ip.len() >= off + 8).then_some((off, nh_at)),
            nh::HOP_BY_HOP | nh::ROUTING | nh::DEST_OPTS => {
                let len = (usize::from(*ip.get(off + 1)?) + 1) * 8;
                nh_at = off;
                off += len;
            }
            nh::AUTH => {
                let len = (usize::from(*ip.get(off + 1)?) + 2) * 4;
                nh_at = off;
                off += len;
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv4::FLAG_MF;
    use crate::parse::parse;

    const SRC4: [u8; 4] = [203, 0, 113, 5];
    const DST4: [u8; 4] = [198, 51, 100, 10];

    /// The UDP datagram (header + payload) the tests fragment.
    fn datagram(n: usize) -> Vec<u8> {
        let mut d = vec![0u8; 8 + n];
        d[0..2].copy_from_slice(&5000u16.to_be_bytes());
        d[2..4].copy_from_slice(&53u16.to_be_bytes());
        d[4..6].copy_from_slice(&((8 + n) as u16).to_be_bytes());
        for (i, b) in d[8..].iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        d
    }

    /// An Ethernet + IPv4 fragment carrying `data` at byte offset `off`.
    fn frag4(ident: u16, off: usize, more: bool, df: bool, data: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&ident.to_be_bytes());
        let ff = (off / 8) as u16 | if more { FLAG_MF } else { 0 } | if df { FLAG_DF } else { 0 };
        ip[6..8].copy_from_slice(&ff.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&SRC4);
        ip[16..20].copy_from_slice(&DST4);
        let c = crate::checksum::checksum(&ip[..20]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(data);
        f
    }

    /// An Ethernet + IPv6 fragment (with a destination-options header before the fragment
    /// header when `opts`) carrying `data` at byte offset `off`.
    fn frag6(ident: u32, off: usize, more: bool, data: &[u8], opts: bool) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        let ext = if opts { 8 } else { 0 };
        let ip = &mut f[14..];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&((ext + 8 + data.len()) as u16).to_be_bytes());
        ip[6] = if opts { nh::DEST_OPTS } else { nh::FRAGMENT };
        ip[7] = 64;
        ip[8..24].copy_from_slice(
            &"2001:db8:c::5"
                .parse::<core::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        ip[24..40].copy_from_slice(
            &"2001:db8:1::10"
                .parse::<core::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        if opts {
            // Destination options: next = fragment, length 0 (8 bytes), PadN.
            f.extend_from_slice(&[nh::FRAGMENT, 0, 1, 4, 0, 0, 0, 0]);
        }
        let w = off as u16 | u16::from(more);
        f.extend_from_slice(&[17, 0]);
        f.extend_from_slice(&w.to_be_bytes());
        f.extend_from_slice(&ident.to_be_bytes());
        f.extend_from_slice(data);
        f
    }

    fn feed(r: &mut Reassembler, frame: &[u8], now: u64) -> Insert {
        let p = parse(frame).expect("test fragments parse");
        assert!(p.is_fragment());
        r.insert(frame, &p, Time(now))
    }

    fn complete(r: &mut Reassembler) -> Vec<u8> {
        let mut out = vec![0u8; 70_000];
        let n = r.write_complete(&mut out).expect("a complete datagram");
        out.truncate(n);
        out
    }

    #[test]
    fn ipv4_in_and_out_of_order() {
        let d = datagram(3000);
        for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
            let mut r = Reassembler::new(ReassemblyConfig::default());
            let pieces = [
                frag4(7, 0, true, false, &d[..1480]),
                frag4(7, 1480, true, false, &d[1480..2960]),
                frag4(7, 2960, false, false, &d[2960..]),
            ];
            assert_eq!(feed(&mut r, &pieces[order[0]], 0), Insert::Queued);
            assert_eq!(feed(&mut r, &pieces[order[1]], 1), Insert::Queued);
            assert!(r.mem() > 0);
            let Insert::Complete(info) = feed(&mut r, &pieces[order[2]], 2) else {
                panic!("not complete");
            };
            assert_eq!(info.max_frag, 1500);
            assert_eq!(info.fragments, 3);
            let out = complete(&mut r);
            assert_eq!(out.len(), info.len);
            let p = crate::parse_checked(&out).expect("the datagram parses, checksums good");
            assert!(!p.is_fragment());
            assert_eq!(&out[p.l4_off..p.l3_end], &d[..]);
            assert_eq!(get16(&out, 14 + 6), 0, "no MF, offset 0, no DF");
            assert_eq!((r.mem(), r.queues()), (0, 0));
            assert_eq!(r.counters().reassembled, 1);
        }
    }

    #[test]
    fn ipv4_df_kept_only_when_the_largest_fragment_had_it() {
        let d = datagram(100);
        let mut r = Reassembler::new(ReassemblyConfig::default());
        feed(&mut r, &frag4(1, 0, true, true, &d[..64]), 0);
        assert!(matches!(
            feed(&mut r, &frag4(1, 64, false, true, &d[64..]), 0),
            Insert::Complete(_)
        ));
        assert_eq!(get16(&complete(&mut r), 14 + 6), FLAG_DF);
        feed(&mut r, &frag4(2, 0, true, false, &d[..64]), 0);
        feed(&mut r, &frag4(2, 64, false, true, &d[64..]), 0);
        assert_eq!(get16(&complete(&mut r), 14 + 6), 0);
    }

    #[test]
    fn overlap_discards_the_datagram() {
        let d = datagram(200);
        let mut r = Reassembler::new(ReassemblyConfig::default());
        feed(&mut r, &frag4(3, 0, true, false, &d[..104]), 0);
        // Starts inside the first and goes past it: an overlap, not a duplicate.
        assert_eq!(
            feed(&mut r, &frag4(3, 96, true, false, &d[96..200]), 0),
            Insert::Dropped(FragDrop::Overlap)
        );
        assert_eq!((r.queues(), r.mem()), (0, 0));
        // What follows starts a new datagram, which lacks its first part.
        assert_eq!(
            feed(&mut r, &frag4(3, 104, false, false, &d[104..]), 0),
            Insert::Queued
        );
        assert_eq!(r.counters().get(FragDrop::Overlap), 1);
    }

    #[test]
    fn duplicates_are_dropped_and_the_datagram_kept() {
        let d = datagram(200);
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let first = frag4(4, 0, true, false, &d[..104]);
        feed(&mut r, &first, 0);
        assert_eq!(
            feed(&mut r, &first, 0),
            Insert::Dropped(FragDrop::Duplicate)
        );
        // Inside the data received so far, though not the same fragment.
        assert_eq!(
            feed(&mut r, &frag4(4, 8, true, false, &d[8..16]), 0),
            Insert::Dropped(FragDrop::Duplicate)
        );
        let last = frag4(4, 104, false, false, &d[104..]);
        assert!(matches!(feed(&mut r, &last, 0), Insert::Complete(_)));
        assert_eq!(&complete(&mut r)[34..], &d[..]);
        assert_eq!(r.counters().get(FragDrop::Duplicate), 2);
    }

    #[test]
    fn inconsistent_last_fragments_discard_the_datagram() {
        let d = datagram(200);
        let mut r = Reassembler::new(ReassemblyConfig::default());
        feed(&mut r, &frag4(5, 104, false, false, &d[104..]), 0);
        // The same last fragment again is a duplicate.
        assert_eq!(
            feed(&mut r, &frag4(5, 104, false, false, &d[104..]), 0),
            Insert::Dropped(FragDrop::Duplicate)
        );
        // A last fragment with another end discards it.
        assert_eq!(
            feed(&mut r, &frag4(5, 104, false, false, &d[104..200]), 0),
            Insert::Dropped(FragDrop::BadLength)
        );
        assert_eq!(r.queues(), 0);
        // Data past the end a last fragment set.
        feed(&mut r, &frag4(6, 104, false, false, &d[104..]), 0);
        assert_eq!(
            feed(&mut r, &frag4(6, 208, true, false, &d[..16]), 0),
            Insert::Dropped(FragDrop::BadLength)
        );
        // An empty fragment.
        feed(&mut r, &frag4(8, 0, true, false, &d[..16]), 0);
        assert_eq!(
            feed(&mut r, &frag4(8, 16, true, false, &[]), 0),
            Insert::Dropped(FragDrop::BadLength)
        );
        assert_eq!((r.queues(), r.mem()), (0, 0));
    }

    #[test]
    fn too_big_datagrams_are_refused() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        // Offset 65 528 + 20-byte header + 8 bytes > 65 535.
        assert_eq!(
            feed(&mut r, &frag4(9, 65528, false, false, &[0; 8]), 0),
            Insert::Dropped(FragDrop::TooBig)
        );
        assert_eq!(r.counters().get(FragDrop::TooBig), 1);
        assert_eq!(r.queues(), 0);
    }

    #[test]
    fn incomplete_datagrams_time_out() {
        let d = datagram(200);
        let mut r = Reassembler::new(ReassemblyConfig::default());
        // The first fragment never comes.
        feed(&mut r, &frag4(10, 104, false, false, &d[104..]), 1_000);
        feed(&mut r, &frag6(10, 8, false, &d[8..], false), 1_000);
        r.expire(Time(30_999));
        assert_eq!(r.queues(), 2);
        r.expire(Time(31_000));
        assert_eq!(r.queues(), 1, "IPv4 gone after 30 s, IPv6 kept for 60 s");
        r.expire(Time(61_000));
        assert_eq!((r.queues(), r.mem()), (0, 0));
        assert_eq!(r.counters().get(FragDrop::Timeout), 2);
        // A fragment after the timeout starts afresh.
        feed(&mut r, &frag4(11, 0, true, false, &d[..104]), 0);
        assert_eq!(
            feed(&mut r, &frag4(11, 104, false, false, &d[104..]), 40_000),
            Insert::Queued
        );
    }

    /// Two workers' reassemblers share the director's bound: a flood of fragments that never
    /// complete on one worker keeps the total under the high threshold (plus a fragment per
    /// worker), and the flooded worker evicts its own datagrams, not the other's.
    #[test]
    fn the_memory_bound_is_the_directors() {
        let cfg = ReassemblyConfig {
            high_thresh: 64 * 1024,
            low_thresh: 48 * 1024,
            ..ReassemblyConfig::default()
        };
        let shared = Arc::new(FragMemory::default());
        let mut a = Reassembler::sharing(cfg, shared.clone());
        let mut b = Reassembler::sharing(cfg, shared.clone());
        let d = datagram(2000);
        let one = 1480 + FRAGMENT_OVERHEAD + QUEUE_OVERHEAD + 60;
        // Worker a holds a few honest incomplete datagrams.
        for id in 0..8u16 {
            feed(&mut a, &frag4(id, 0, true, false, &d[..1480]), 0);
        }
        let held_a = a.mem();
        assert!(held_a > 0);
        // Worker b is flooded.
        for id in 100..1100u16 {
            feed(&mut b, &frag4(id, 0, true, false, &d[..1480]), 0);
            assert!(
                shared.held() <= cfg.high_thresh + 2 * one,
                "{} bytes held by the director",
                shared.held()
            );
            assert_eq!(shared.held(), a.mem() + b.mem());
        }
        assert_eq!(
            a.mem(),
            held_a,
            "the flood evicted another worker's datagrams"
        );
        assert!(b.counters().get(FragDrop::Evicted) > 900);
        // a's datagrams still complete.
        for id in 0..8u16 {
            let r = feed(&mut a, &frag4(id, 1480, false, false, &d[1480..]), 1);
            assert!(matches!(r, Insert::Complete(_)), "{r:?}");
        }
        drop(b);
        assert_eq!(shared.held(), a.mem());
        // Two workers flooded at once stay under one bound, not one each.
        let mut c = Reassembler::sharing(cfg, shared.clone());
        let mut e = Reassembler::sharing(cfg, shared.clone());
        for id in 0..200u16 {
            feed(&mut c, &frag4(id, 0, true, false, &d[..1480]), 2);
            feed(&mut e, &frag4(id, 0, true, false, &d[..1480]), 2);
            assert!(shared.held() <= cfg.high_thresh + 2 * one);
        }
    }

    #[test]
    fn memory_stays_under_the_high_threshold() {
        let cfg = ReassemblyConfig {
            high_thresh: 64 * 1024,
            low_thresh: 48 * 1024,
            ..ReassemblyConfig::default()
        };
        let mut r = Reassembler::new(cfg);
        let d = datagram(2000);
        for id in 0..1000u16 {
            feed(&mut r, &frag4(id, 0, true, false, &d[..1480]), 0);
            assert!(r.mem() <= cfg.high_thresh, "{} bytes", r.mem());
        }
        assert!(r.counters().get(FragDrop::Evicted) > 900);
        // The youngest datagram survived and completes.
        assert!(matches!(
            feed(&mut r, &frag4(999, 1480, false, false, &d[1480..]), 0),
            Insert::Complete(_)
        ));
    }

    #[test]
    fn ipv6_with_extension_header_before_the_fragment_header() {
        let d = datagram(3000);
        for opts in [false, true] {
            let mut r = Reassembler::new(ReassemblyConfig::default());
            assert_eq!(
                feed(&mut r, &frag6(0xdead, 1448, false, &d[1448..], opts), 0),
                Insert::Queued
            );
            let Insert::Complete(info) = feed(&mut r, &frag6(0xdead, 0, true, &d[..1448], opts), 0)
            else {
                panic!("not complete");
            };
            assert_eq!(info.ident, 0xdead);
            let out = complete(&mut r);
            let p = parse(&out).expect("the datagram parses");
            assert!(!p.is_fragment());
            assert_eq!(p.proto, 17);
            assert_eq!(&out[p.l4_off..p.l3_end], &d[..]);
            assert_eq!(out.len(), 14 + 40 + if opts { 8 } else { 0 } + d.len());
        }
    }

    #[test]
    fn ipv6_rules() {
        let d = datagram(200);
        let mut r = Reassembler::new(ReassemblyConfig::default());
        // Not a multiple of 8 and not last.
        assert_eq!(
            feed(&mut r, &frag6(1, 0, true, &d[..100], false), 0),
            Insert::Dropped(FragDrop::BadLength)
        );
        // Any overlap discards (RFC 5722).
        feed(&mut r, &frag6(2, 0, true, &d[..104], false), 0);
        assert_eq!(
            feed(&mut r, &frag6(2, 96, false, &d[96..], false), 0),
            Insert::Dropped(FragDrop::Overlap)
        );
        // An atomic fragment is whole at once and leaves the queue of its identification alone.
        feed(&mut r, &frag6(3, 0, true, &d[..104], false), 0);
        assert!(matches!(
            feed(&mut r, &frag6(3, 0, false, &d, false), 0),
            Insert::Complete(_)
        ));
        assert_eq!(&complete(&mut r)[54..], &d[..]);
        assert_eq!(r.queues(), 1);
        assert!(matches!(
            feed(&mut r, &frag6(3, 104, false, &d[104..], false), 0),
            Insert::Complete(_)
        ));
    }

    #[test]
    fn no_room_is_counted() {
        let d = datagram(100);
        let mut r = Reassembler::new(ReassemblyConfig::default());
        feed(&mut r, &frag4(1, 0, true, false, &d[..64]), 0);
        feed(&mut r, &frag4(1, 64, false, false, &d[64..]), 0);
        assert_eq!(r.write_complete(&mut [0u8; 40]), None);
        assert_eq!(r.counters().get(FragDrop::NoRoom), 1);
        assert_eq!(
            r.write_complete(&mut [0u8; 400]),
            None,
            "written or given up once"
        );
    }

    proptest::proptest! {
        /// Any sequence of fragments (valid, overlapping, oversized, out of order, both
        /// families): no panic, memory under the bound, and everything accounted for once the
        /// timeouts pass.
        #[test]
        fn arbitrary_fragments_are_bounded_and_accounted(
            frags in proptest::collection::vec(
                (0u32..4, 0usize..9000, proptest::bool::ANY, 0usize..1600, proptest::bool::ANY),
                1..200,
            )
        ) {
            let cfg = ReassemblyConfig {
                high_thresh: 32 * 1024,
                low_thresh: 16 * 1024,
                ..ReassemblyConfig::default()
            };
            let mut r = Reassembler::new(cfg);
            let d = datagram(10_000);
            let mut out = vec![0u8; 70_000];
            for (i, &(id, off, more, len, v6)) in frags.iter().enumerate() {
                let off = off & !7;
                let data = &d[off.min(d.len())..(off + len).min(d.len())];
                let f = if v6 {
                    frag6(id, off, more, data, id == 1)
                } else {
                    frag4(id as u16, off, more, false, data)
                };
                let Ok(p) = parse(&f) else { continue };
                if !p.is_fragment() {
                    continue;
                }
                if let Insert::Complete(info) = r.insert(&f, &p, Time(i as u64)) {
                    let n = r.write_complete(&mut out).expect("fits");
                    proptest::prop_assert_eq!(n, info.len);
                    // The length fields describe the frame (its transport header may still be
                    // inconsistent: that is the plane's to judge).
                    let l3 = if v6 { get16(&out, 18) as usize + 40 } else { get16(&out, 16) as usize };
                    proptest::prop_assert_eq!(14 + l3, n);
                }
                proptest::prop_assert!(r.mem() <= cfg.high_thresh);
            }
            r.expire(Time(1_000_000));
            proptest::prop_assert_eq!((r.queues(), r.mem()), (0, 0));
        }
    }
}
