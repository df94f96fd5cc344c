//! The backup's side of the wire, following `ip_vs_process_message`: a datagram is checked as a
//! whole (length, syncid, version), then read record by record. Whatever the bytes, decoding
//! never panics and never reads past the datagram: a bad message or record is reported with its
//! reason so the caller can count it.
//!
//! What is dropped, as in the kernel:
//! - the whole datagram: shorter than 4 bytes, `size` ≠ received length, another syncid;
//! - the rest of a version-1 datagram from a bad record on (records before it are kept):
//!   a record header or length past the end, a record version ≠ 0, a record type other than
//!   IPv4/IPv6, a record shorter than its address family needs, an option header or length past
//!   the record, a zero-length option, a SEQ option that is not 24 bytes, PE data over 255 or
//!   a PE name over 16 bytes, a repeated SEQ/PE option;
//! - one version-1 record: an unknown option type without the optional bit (0x40);
//! - the rest of a version-0 datagram: a record (or its sequence data) past the end.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_core::conn::flags;
use rvs_core::sync::{SeqAdjust, SeqData, SyncConn};

use crate::encode::Version;
use crate::wire::*;

/// Why a datagram, or the rest of it, was dropped.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than the 4-byte version-0 header.
    TooShort,
    /// The header's `size` is not the datagram's length.
    SizeMismatch,
    /// The backup has a syncid ≠ 0 and the message carries another.
    SyncidMismatch,
    /// A record header, or the length a record claims, runs past the end of the datagram.
    RecordOverrun,
    /// A record claims a length shorter than its fixed part (e.g. a truncated IPv6 record).
    RecordTooShort,
    /// A record version other than 0 in `ver_size`.
    RecordVersion,
    /// A record type other than IPv4 (0) or IPv6 (bit 0).
    RecordType,
    /// An option header or its data runs past the record, or an option has length 0.
    OptionOverrun,
    /// A SEQ option that is not 24 bytes, PE data over 255 or a PE name over 16 bytes, or a
    /// SEQ/PE option given twice.
    BadOption,
    /// Version 0: a record or its sequence data runs past the end of the datagram.
    V0Overrun,
}

impl DropReason {
    /// Every reason, for metrics.
    pub const ALL: [DropReason; 10] = [
        DropReason::TooShort,
        DropReason::SizeMismatch,
        DropReason::SyncidMismatch,
        DropReason::RecordOverrun,
        DropReason::RecordTooShort,
        DropReason::RecordVersion,
        DropReason::RecordType,
        DropReason::OptionOverrun,
        DropReason::BadOption,
        DropReason::V0Overrun,
    ];
    /// Name for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TooShort => "too_short",
            DropReason::SizeMismatch => "size_mismatch",
            DropReason::SyncidMismatch => "syncid_mismatch",
            DropReason::RecordOverrun => "record_overrun",
            DropReason::RecordTooShort => "record_too_short",
            DropReason::RecordVersion => "record_version",
            DropReason::RecordType => "record_type",
            DropReason::OptionOverrun => "option_overrun",
            DropReason::BadOption => "bad_option",
            DropReason::V0Overrun => "v0_overrun",
        }
    }
}

/// A record that is well-formed but skipped (the rest of the message is still read).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// An option type the decoder does not know, without the optional bit.
    UnknownOption,
}

/// What went wrong with one record.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RecordError {
    /// This record is skipped; the iterator goes on.
    Skip(SkipReason),
    /// This record and the rest of the datagram are dropped; the iterator ends.
    Drop(DropReason),
}

/// A datagram whose header passed the checks.
#[derive(Copy, Clone, Debug)]
pub struct Message<'a> {
    buf: &'a [u8],
    version: Version,
    syncid: u8,
    nr: u8,
}

/// Check a received datagram's header for a backup with `backup_syncid` (0 accepts every
/// syncid). Version 1 is recognised by version byte 1 with reserved and spare 0; anything else
/// is read as version 0, as the kernel does (a version-1 message therefore looks like an empty
/// version-0 message to an old receiver).
pub fn parse(buf: &[u8], backup_syncid: u8) -> Result<Message<'_>, DropReason> {
    if buf.len() < V0_HEADER_LEN {
        return Err(DropReason::TooShort);
    }
    if usize::from(u16::from_be_bytes([buf[2], buf[3]])) != buf.len() {
        return Err(DropReason::SizeMismatch);
    }
    let syncid = buf[1];
    if backup_syncid != 0 && syncid != backup_syncid {
        return Err(DropReason::SyncidMismatch);
    }
    let v1 = buf.len() >= V1_HEADER_LEN
        && buf[0] == 0
        && buf[5] == PROTO_VERSION_1
        && buf[6] == 0
        && buf[7] == 0;
    Ok(if v1 {
        Message {
            buf,
            version: Version::V1,
            syncid,
            nr: buf[4],
        }
    } else {
        Message {
            buf,
            version: Version::V0,
            syncid,
            nr: buf[0],
        }
    })
}

impl<'a> Message<'a> {
    /// Protocol version.
    pub fn version(&self) -> Version {
        self.version
    }
    /// Sync id of the sender.
    pub fn syncid(&self) -> u8 {
        self.syncid
    }
    /// Number of records the header announces.
    pub fn nr_conns(&self) -> u8 {
        self.nr
    }
    /// The records, in order.
    pub fn records(&self) -> Records<'a> {
        Records {
            buf: self.buf,
            version: self.version,
            left: self.nr,
            pos: match self.version {
                Version::V1 => V1_HEADER_LEN,
                Version::V0 => V0_HEADER_LEN,
            },
        }
    }
}

/// Iterator over the records of a [`Message`]. After a [`RecordError::Drop`] it ends.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    buf: &'a [u8],
    version: Version,
    left: u8,
    pos: usize,
}

impl Iterator for Records<'_> {
    type Item = Result<SyncConn, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = match self.version {
            Version::V1 => self.next_v1(),
            Version::V0 => self.next_v0(),
        };
        if let Err(RecordError::Drop(_)) = r {
            self.left = 0;
        }
        Some(r)
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn v4(b: &[u8], at: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]))
}

fn v6(b: &[u8], at: usize) -> IpAddr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    IpAddr::V6(Ipv6Addr::from(o))
}

fn seq_from(words: [u32; 6]) -> SeqData {
    SeqData {
        in_seq: SeqAdjust {
            init_seq: words[0],
            delta: words[1],
            previous_delta: words[2],
        },
        out_seq: SeqAdjust {
            init_seq: words[3],
            delta: words[4],
            previous_delta: words[5],
        },
    }
}

impl Records<'_> {
    fn next_v1(&mut self) -> Result<SyncConn, RecordError> {
        let drop = |r| Err(RecordError::Drop(r));
        let b = self.buf;
        let start = self.pos;
        if start + V1_V4_RECORD_LEN > b.len() {
            return drop(DropReason::RecordOverrun);
        }
        let ver_size = be16(b, start + 2);
        let size = usize::from(ver_size & SIZE_MASK);
        let end = start + size;
        if end > b.len() {
            return drop(DropReason::RecordOverrun);
        }
        if ver_size >> VER_SHIFT != 0 {
            return drop(DropReason::RecordVersion);
        }
        // The next record starts at the next 4-byte boundary after this one.
        self.pos = start + ((size + 3) & !3);
        let kind = b[start];
        let is_v6 = if kind & TYPE_F_INET6 != 0 {
            true
        } else if kind == 0 {
            false
        } else {
            return drop(DropReason::RecordType);
        };
        let fixed = if is_v6 {
            V1_V6_RECORD_LEN
        } else {
            V1_V4_RECORD_LEN
        };
        if size < fixed {
            return drop(DropReason::RecordTooShort);
        }
        let mut c = SyncConn {
            protocol: b[start + 1],
            flags: be32(b, start + 4),
            state: be16(b, start + 8),
            cport: be16(b, start + 10),
            vport: be16(b, start + 12),
            dport: be16(b, start + 14),
            fwmark: be32(b, start + 16),
            timeout_secs: be32(b, start + 20),
            caddr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            vaddr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            daddr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            seq: None,
            pe_data: Vec::new(),
            pe_name: Vec::new(),
            local: None,
        };
        let a = start + 24;
        if is_v6 {
            c.caddr = v6(b, a);
            c.vaddr = v6(b, a + 16);
            c.daddr = v6(b, a + 32);
        } else {
            c.caddr = v4(b, a);
            c.vaddr = v4(b, a + 4);
            c.daddr = v4(b, a + 8);
        }
        let mut p = start + fixed;
        let mut unknown = false;
        let mut have_pe_data = false;
        let mut have_pe_name = false;
        while p < end {
            if p + 2 > end {
                return drop(DropReason::OptionOverrun);
            }
            let ptype = b[p];
            let plen = usize::from(b[p + 1]);
            p += 2;
            if plen == 0 || p + plen > end {
                return drop(DropReason::OptionOverrun);
            }
            let data = &b[p..p + plen];
            match ptype & !OPT_F_OPTIONAL {
                OPT_SEQ_DATA => {
                    if plen != SEQ_DATA_LEN || c.seq.is_some() {
                        return drop(DropReason::BadOption);
                    }
                    let mut w = [0u32; 6];
                    for (i, x) in w.iter_mut().enumerate() {
                        *x = be32(data, i * 4);
                    }
                    c.seq = Some(seq_from(w));
                }
                OPT_PE_DATA => {
                    if plen > PE_DATA_MAX || have_pe_data {
                        return drop(DropReason::BadOption);
                    }
                    have_pe_data = true;
                    c.pe_data = data.to_vec();
                }
                OPT_PE_NAME => {
                    if plen > PE_NAME_MAX || have_pe_name {
                        return drop(DropReason::BadOption);
                    }
                    have_pe_name = true;
                    c.pe_name = data.to_vec();
                }
                // rvs's own option is optional-flagged; without the flag it is some other
                // sender's mandatory option and the record is skipped like any unknown one.
                OPT_LOCAL_ADDR if ptype & OPT_F_OPTIONAL != 0 => {
                    if plen != crate::encode::local_len(is_v6) || c.local.is_some() {
                        return drop(DropReason::BadOption);
                    }
                    let a = if is_v6 { v6(data, 0) } else { v4(data, 0) };
                    c.local = Some((a, be16(data, plen - 2)));
                }
                _ => {
                    if ptype & OPT_F_OPTIONAL == 0 {
                        // The kernel stops reading this record's options here and skips it.
                        unknown = true;
                        break;
                    }
                }
            }
            p += plen;
        }
        if unknown {
            return Err(RecordError::Skip(SkipReason::UnknownOption));
        }
        Ok(c)
    }

    fn next_v0(&mut self) -> Result<SyncConn, RecordError> {
        let b = self.buf;
        let start = self.pos;
        if start + V0_RECORD_LEN > b.len() {
            return Err(RecordError::Drop(DropReason::V0Overrun));
        }
        let fl = u32::from(be16(b, start + 20));
        let has_seq = fl & (flags::IN_SEQ | flags::OUT_SEQ) != 0;
        let len = if has_seq {
            V0_FULL_RECORD_LEN
        } else {
            V0_RECORD_LEN
        };
        if start + len > b.len() {
            return Err(RecordError::Drop(DropReason::V0Overrun));
        }
        self.pos = start + len;
        let seq = has_seq.then(|| {
            let mut w = [0u32; 6];
            for (i, x) in w.iter_mut().enumerate() {
                let at = start + V0_RECORD_LEN + i * 4;
                *x = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            }
            seq_from(w)
        });
        Ok(SyncConn {
            protocol: b[start + 1],
            cport: be16(b, start + 2),
            vport: be16(b, start + 4),
            dport: be16(b, start + 6),
            caddr: v4(b, start + 8),
            vaddr: v4(b, start + 12),
            daddr: v4(b, start + 16),
            flags: fl,
            state: be16(b, start + 22),
            fwmark: 0,
            timeout_secs: 0,
            seq,
            pe_data: Vec::new(),
            pe_name: Vec::new(),
            local: None,
        })
    }
}
