//! The master's side of the wire: records appended to a message until the next one does not
//! fit in `sync_maxlen`, as `ip_vs_sync_conn_v1` / `ip_vs_sync_conn_v0` fill their buffers.

use std::net::IpAddr;

use rvs_core::conn::flags;
use rvs_core::sync::{SeqData, SyncConn, SyncV4};

use crate::wire::*;

/// Protocol version of the messages an [`Encoder`] builds (`sync_version`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// Version 0: IPv4 only, no timeout, fwmark or PE data.
    V0,
    /// Version 1 (the default).
    V1,
}

impl Version {
    /// From the `sync_version` sysctl value (anything but 0 is version 1, as the kernel reads it).
    pub fn from_sysctl(v: u8) -> Version {
        if v == 0 {
            Version::V0
        } else {
            Version::V1
        }
    }
}

/// Why a connection cannot be put on the wire.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum EncodeError {
    /// Version 0 carries IPv4 only.
    V0Ipv6,
    /// The virtual or real-server address has another family than the client address.
    MixedFamily,
    /// PE data longer than 255 bytes.
    PeDataTooLong,
    /// PE name longer than 16 bytes.
    PeNameTooLong,
}

impl EncodeError {
    /// Name for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            EncodeError::V0Ipv6 => "v0_ipv6",
            EncodeError::MixedFamily => "mixed_family",
            EncodeError::PeDataTooLong => "pe_data_too_long",
            EncodeError::PeNameTooLong => "pe_name_too_long",
        }
    }
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EncodeError::V0Ipv6 => "sync version 0 cannot carry IPv6 connections",
            EncodeError::MixedFamily => "connection addresses of different families",
            EncodeError::PeDataTooLong => "persistence-engine data longer than 255 bytes",
            EncodeError::PeNameTooLong => "persistence-engine name longer than 16 bytes",
        })
    }
}

impl std::error::Error for EncodeError {}

/// Most records one message can announce: `nr_conns` is one byte. (The kernel does not check
/// this for version 1 and would wrap the count with a `sync_maxlen` above ~9 KB; rvs closes the
/// message instead.)
pub const MAX_RECORDS: u8 = u8::MAX;

/// Builds sync messages of one version, syncid and maximum length.
#[derive(Clone, Debug)]
pub struct Encoder {
    version: Version,
    syncid: u8,
    maxlen: usize,
    buf: Vec<u8>,
    nr: u8,
    /// Sent messages' buffers handed back ([`Encoder::recycle`]): a new message reuses one
    /// instead of allocating.
    spare: Vec<Vec<u8>>,
}

/// Buffers an [`Encoder`] keeps for reuse.
const SPARE_BUFFERS: usize = 16;

impl Encoder {
    /// An encoder for messages of at most `maxlen` bytes (UDP payload; see
    /// [`effective_maxlen`]). A single record longer than that still goes out, alone, as the
    /// kernel sizes its buffer `max(record + header, sync_maxlen)`.
    pub fn new(version: Version, syncid: u8, maxlen: u32) -> Encoder {
        Encoder {
            version,
            syncid,
            maxlen: (maxlen as usize).min(usize::from(u16::MAX)),
            buf: Vec::new(),
            nr: 0,
            spare: Vec::new(),
        }
    }

    /// Hand back the buffer of a message that was sent, for a later message to reuse.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS && buf.capacity() >= self.maxlen {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// The version records are written in.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Switch the version (the `sync_version` sysctl changed): the message under construction is
    /// finished first, since one message holds one version, and returned.
    pub fn set_version(&mut self, v: Version) -> Option<Vec<u8>> {
        if v == self.version {
            return None;
        }
        let out = self.finish();
        self.version = v;
        out
    }

    /// Records in the message under construction.
    pub fn pending(&self) -> u8 {
        self.nr
    }

    /// Append `c`. If it does not fit in the current message, that message is finished and
    /// returned and `c` starts a new one.
    pub fn push(&mut self, c: &SyncConn) -> Result<Option<Vec<u8>>, EncodeError> {
        // The common record — version 1, IPv4, no options — is one fixed 36-byte layout,
        // built with a few stores: the packet path encodes one per new connection.
        if self.version == Version::V1 {
            if let Some(r) = SyncV4::of(c) {
                return Ok(self.push_fixed_v4(&fixed_v4(&r)));
            }
        }
        check(c, self.version)?;
        let len = record_len(c, self.version);
        let mut done = None;
        if self.nr > 0 {
            let pad = self.pad();
            if self.buf.len() + pad + len > self.maxlen || self.nr == MAX_RECORDS {
                done = self.finish();
            }
        }
        if self.nr == 0 {
            self.start(len);
        }
        let pad = self.pad();
        if pad > 0 {
            self.buf.resize(self.buf.len() + pad, 0);
        }
        match self.version {
            Version::V1 => write_v1(&mut self.buf, c, len),
            Version::V0 => write_v0(&mut self.buf, c),
        }
        self.nr += 1;
        Ok(done)
    }

    /// [`Encoder::push`] of a record in fixed form, without building a [`SyncConn`] (version
    /// 1; a version-0 encoder takes the general path).
    #[inline]
    pub fn push_v4(&mut self, r: &SyncV4) -> Result<Option<Vec<u8>>, EncodeError> {
        if self.version != Version::V1 {
            return self.push(&r.to_conn());
        }
        Ok(self.push_fixed_v4(&fixed_v4(r)))
    }

    /// Append a 36-byte version-1 record built by [`fixed_v4`].
    #[inline]
    fn push_fixed_v4(&mut self, r: &[u8; V1_V4_RECORD_LEN]) -> Option<Vec<u8>> {
        let mut done = None;
        if self.nr > 0 {
            let pad = (4 - (self.buf.len() & 3)) & 3;
            if self.buf.len() + pad + V1_V4_RECORD_LEN > self.maxlen || self.nr == MAX_RECORDS {
                done = self.finish();
            } else if pad > 0 {
                // After a record with options of an odd length.
                self.buf.resize(self.buf.len() + pad, 0);
            }
        }
        if self.nr == 0 {
            self.start(V1_V4_RECORD_LEN);
        }
        self.buf.extend_from_slice(r);
        self.nr += 1;
        done
    }

    /// Finish the message under construction, if it has records: its header gets the length
    /// and record count now (once per message, not per record).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.nr == 0 {
            return None;
        }
        self.patch_header();
        self.nr = 0;
        Some(std::mem::take(&mut self.buf))
    }

    fn pad(&self) -> usize {
        match self.version {
            // Version-1 records start at 4-byte-aligned offsets from the message start.
            Version::V1 if self.nr > 0 => (4 - (self.buf.len() & 3)) & 3,
            _ => 0,
        }
    }

    fn start(&mut self, first: usize) {
        let hdr = match self.version {
            Version::V1 => V1_HEADER_LEN,
            Version::V0 => V0_HEADER_LEN,
        };
        let cap = self.maxlen.max(first + hdr);
        self.buf = match self.spare.pop() {
            Some(b) if b.capacity() >= cap => b,
            _ => Vec::with_capacity(cap),
        };
        match self.version {
            Version::V1 => {
                self.buf
                    .extend_from_slice(&[0, self.syncid, 0, 8, 0, PROTO_VERSION_1, 0, 0])
            }
            Version::V0 => self.buf.extend_from_slice(&[0, self.syncid, 0, 4]),
        }
    }

    fn patch_header(&mut self) {
        let size = (self.buf.len() as u16).to_be_bytes();
        self.buf[2..4].copy_from_slice(&size);
        match self.version {
            Version::V1 => self.buf[4] = self.nr,
            Version::V0 => self.buf[0] = self.nr,
        }
    }
}

fn check(c: &SyncConn, v: Version) -> Result<(), EncodeError> {
    let v6 = c.is_v6();
    // The common record first: one family, no engine data, no local address.
    if !v6
        && !c.daddr.is_ipv6()
        && !c.vaddr.is_ipv6()
        && c.pe_data.is_empty()
        && c.pe_name.is_empty()
        && c.local.is_none()
    {
        return Ok(());
    }
    let fwmark_template = c.flags & flags::TEMPLATE != 0 && c.protocol == 0;
    if c.daddr.is_ipv6() != v6 || (c.vaddr.is_ipv6() != v6 && !fwmark_template) {
        return Err(EncodeError::MixedFamily);
    }
    if v == Version::V0 && v6 {
        return Err(EncodeError::V0Ipv6);
    }
    if c.pe_data.len() > PE_DATA_MAX {
        return Err(EncodeError::PeDataTooLong);
    }
    if c.pe_name.len() > PE_NAME_MAX {
        return Err(EncodeError::PeNameTooLong);
    }
    if c.local.is_some_and(|(a, _)| a.is_ipv6() != v6) {
        return Err(EncodeError::MixedFamily);
    }
    Ok(())
}

/// Data length of the local-address option for a record of this family.
pub fn local_len(v6: bool) -> usize {
    if v6 {
        18
    } else {
        6
    }
}

fn has_seq(c: &SyncConn) -> bool {
    c.flags & (flags::IN_SEQ | flags::OUT_SEQ) != 0
}

/// Length of `c`'s record with options, without padding.
pub fn record_len(c: &SyncConn, v: Version) -> usize {
    match v {
        Version::V0 => {
            if has_seq(c) {
                V0_FULL_RECORD_LEN
            } else {
                V0_RECORD_LEN
            }
        }
        Version::V1 => {
            let mut len = if c.is_v6() {
                V1_V6_RECORD_LEN
            } else {
                V1_V4_RECORD_LEN
            };
            if has_seq(c) {
                len += 2 + SEQ_DATA_LEN;
            }
            if !c.pe_data.is_empty() {
                len += 2 + c.pe_data.len();
                if !c.pe_name.is_empty() {
                    len += 2 + c.pe_name.len();
                }
            }
            if c.local.is_some() {
                len += 2 + local_len(c.is_v6());
            }
            len
        }
    }
}

/// The 16 (IPv6 record) or 4 bytes of an address into `out` (of that length); an IPv4
/// address in an IPv6 record (a fwmark template's mark) fills the first four.
fn put_addr(out: &mut [u8], a: &IpAddr) {
    match a {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) if out.len() == 16 => out.copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out.copy_from_slice(&a.octets()[12..]),
    }
}

fn seq_words(s: &SeqData) -> [u32; 6] {
    [
        s.in_seq.init_seq,
        s.in_seq.delta,
        s.in_seq.previous_delta,
        s.out_seq.init_seq,
        s.out_seq.delta,
        s.out_seq.previous_delta,
    ]
}

fn write_v1(buf: &mut Vec<u8>, c: &SyncConn, len: usize) {
    // The fixed part is built on the stack and appended at once: this runs on the packet
    // path for every announced connection.
    let v6 = c.is_v6();
    if v6 {
        let mut r = [0u8; V1_V6_RECORD_LEN];
        fixed_v1(&mut r, c, len, 16);
        buf.extend_from_slice(&r);
    } else {
        let mut r = [0u8; V1_V4_RECORD_LEN];
        fixed_v1(&mut r, c, len, 4);
        buf.extend_from_slice(&r);
    }
    if has_seq(c) {
        buf.push(OPT_SEQ_DATA);
        buf.push(SEQ_DATA_LEN as u8);
        for w in seq_words(&c.seq.unwrap_or_default()) {
            buf.extend_from_slice(&w.to_be_bytes());
        }
    }
    if !c.pe_data.is_empty() {
        buf.push(OPT_PE_DATA);
        buf.push(c.pe_data.len() as u8);
        buf.extend_from_slice(&c.pe_data);
        if !c.pe_name.is_empty() {
            buf.push(OPT_PE_NAME);
            buf.push(c.pe_name.len() as u8);
            buf.extend_from_slice(&c.pe_name);
        }
    }
    if let Some((a, port)) = c.local {
        buf.push(OPT_LOCAL_ADDR | OPT_F_OPTIONAL);
        buf.push(local_len(v6) as u8);
        let mut l = [0u8; 18];
        let n = local_len(v6);
        put_addr(&mut l[..n - 2], &a);
        l[n - 2..n].copy_from_slice(&port.to_be_bytes());
        buf.extend_from_slice(&l[..n]);
    }
}

/// The version-1 record of a connection in fixed form: IPv4, no options, so one 36-byte
/// layout written with a few stores. For such a record the general path ([`check`],
/// [`write_v1`]) writes the same bytes (`tests::the_fixed_layout_is_the_general_encoding`).
#[inline]
fn fixed_v4(c: &SyncV4) -> [u8; V1_V4_RECORD_LEN] {
    let mut r = [0u8; V1_V4_RECORD_LEN];
    // r[0]: type 0 (IPv4).
    r[1] = c.protocol;
    r[2..4].copy_from_slice(&(V1_V4_RECORD_LEN as u16).to_be_bytes());
    r[4..8].copy_from_slice(&(c.flags & !flags::HASHED).to_be_bytes());
    r[8..10].copy_from_slice(&c.state.to_be_bytes());
    r[10..12].copy_from_slice(&c.cport.to_be_bytes());
    r[12..14].copy_from_slice(&c.vport.to_be_bytes());
    r[14..16].copy_from_slice(&c.dport.to_be_bytes());
    r[16..20].copy_from_slice(&c.fwmark.to_be_bytes());
    r[20..24].copy_from_slice(&c.timeout_secs.to_be_bytes());
    r[24..28].copy_from_slice(&c.caddr);
    r[28..32].copy_from_slice(&c.vaddr);
    r[32..36].copy_from_slice(&c.daddr);
    r
}

/// The record without options into `r`, for addresses of `a` bytes (4 or 16).
#[inline(always)]
fn fixed_v1(r: &mut [u8], c: &SyncConn, len: usize, a: usize) {
    r[0] = if a == 16 { TYPE_F_INET6 } else { 0 };
    r[1] = c.protocol;
    r[2..4].copy_from_slice(&((len as u16) & SIZE_MASK).to_be_bytes());
    r[4..8].copy_from_slice(&(c.flags & !flags::HASHED).to_be_bytes());
    r[8..10].copy_from_slice(&c.state.to_be_bytes());
    r[10..12].copy_from_slice(&c.cport.to_be_bytes());
    r[12..14].copy_from_slice(&c.vport.to_be_bytes());
    r[14..16].copy_from_slice(&c.dport.to_be_bytes());
    r[16..20].copy_from_slice(&c.fwmark.to_be_bytes());
    r[20..24].copy_from_slice(&c.timeout_secs.to_be_bytes());
    put_addr(&mut r[24..24 + a], &c.caddr);
    put_addr(&mut r[24 + a..24 + 2 * a], &c.vaddr);
    put_addr(&mut r[24 + 2 * a..24 + 3 * a], &c.daddr);
}

/// Version 0 copies the sequence data in the sender's byte order (a kernel quirk). rvs writes
/// little-endian, the order of every x86 and arm64 kernel it meets.
fn write_v0(buf: &mut Vec<u8>, c: &SyncConn) {
    buf.push(0);
    buf.push(c.protocol);
    buf.extend_from_slice(&c.cport.to_be_bytes());
    buf.extend_from_slice(&c.vport.to_be_bytes());
    buf.extend_from_slice(&c.dport.to_be_bytes());
    let mut a = [0u8; 12];
    put_addr(&mut a[..4], &c.caddr);
    put_addr(&mut a[4..8], &c.vaddr);
    put_addr(&mut a[8..], &c.daddr);
    buf.extend_from_slice(&a);
    buf.extend_from_slice(&((c.flags & !flags::HASHED) as u16).to_be_bytes());
    buf.extend_from_slice(&c.state.to_be_bytes());
    if has_seq(c) {
        for w in seq_words(&c.seq.unwrap_or_default()) {
            buf.extend_from_slice(&w.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn conn(i: u32) -> SyncConn {
        let a = |x: u32| IpAddr::V4(Ipv4Addr::from(x.wrapping_mul(0x9e37_79b9)));
        SyncConn {
            protocol: [6, 17, 132, 0][(i % 4) as usize],
            flags: i.wrapping_mul(0x0101_0107) & !(flags::IN_SEQ | flags::OUT_SEQ) | flags::HASHED,
            state: (i % 13) as u16,
            caddr: a(i),
            cport: i as u16 ^ 0x5a5a,
            vaddr: a(i + 1),
            vport: (i >> 3) as u16,
            daddr: a(i + 2),
            dport: (i >> 5) as u16 | 0x8000,
            fwmark: i.wrapping_mul(77),
            timeout_secs: i.wrapping_mul(1_000_003),
            seq: None,
            pe_data: Vec::new(),
            pe_name: Vec::new(),
            local: None,
        }
    }

    /// The fixed 36-byte layout the packet path writes is, byte for byte, what the general
    /// version-1 path writes for the same record (HASHED removed, length 36, type 0).
    #[test]
    fn the_fixed_layout_is_the_general_encoding() {
        for i in 0..2000 {
            let c = conn(i);
            let r = SyncV4::of(&c).expect("a plain IPv4 record");
            assert_eq!(
                r.to_conn(),
                SyncConn {
                    flags: c.flags & !flags::HASHED,
                    ..c.clone()
                }
            );
            let fixed = fixed_v4(&r);
            let mut general = Vec::new();
            write_v1(&mut general, &c, record_len(&c, Version::V1));
            assert_eq!(&fixed[..], &general[..], "{c:?}");
            // And through the encoder, both entries give the same message.
            let (mut a, mut b) = (
                Encoder::new(Version::V1, 3, 1472),
                Encoder::new(Version::V1, 3, 1472),
            );
            a.push(&c).unwrap();
            b.push_v4(&r).unwrap();
            assert_eq!(a.finish(), b.finish());
        }
    }

    /// Records with options, IPv6 records and mixed families never take the fixed layout.
    #[test]
    fn only_plain_ipv4_records_take_the_fixed_layout() {
        let with = |f: &dyn Fn(&mut SyncConn)| {
            let mut c = conn(7);
            f(&mut c);
            SyncV4::of(&c).is_some()
        };
        assert!(with(&|_| {}));
        assert!(!with(&|c| c.flags |= flags::IN_SEQ));
        assert!(!with(&|c| c.pe_data = b"x".to_vec()));
        assert!(!with(&|c| c.pe_name = b"sip".to_vec()));
        assert!(!with(&|c| c.local = Some((c.daddr, 9))));
        assert!(!with(&|c| c.caddr = "::1".parse().unwrap()));
        assert!(!with(&|c| c.daddr = "::1".parse().unwrap()));
        assert!(!with(&|c| c.vaddr = "::1".parse().unwrap()));
    }
}
