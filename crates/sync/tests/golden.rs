//! Golden wire tests: sync messages written out byte by byte from the kernel's structures
//! (`include/net/ip_vs.h` / `net/netfilter/ipvs/ip_vs_sync.c`), compared with what the encoder
//! builds, then read back by the decoder.
//!
//! Layouts (all multi-byte fields big-endian unless said otherwise):
//!
//! ```text
//! struct ip_vs_sync_mesg (v1 header, 8 bytes)
//!   0 u8 reserved = 0 | 1 u8 syncid | 2 be16 size (whole message) | 4 u8 nr_conns
//!   5 s8 version = 1  | 6 be16 spare = 0
//! struct ip_vs_sync_v4 (36 bytes) / ip_vs_sync_v6 (72 bytes)
//!   0 u8 type (0 = IPv4, 1 = IPv6) | 1 u8 protocol | 2 be16 ver_size (ver << 12 | len)
//!   4 be32 flags | 8 be16 state | 10 be16 cport | 12 be16 vport | 14 be16 dport
//!   16 be32 fwmark | 20 be32 timeout (s) | 24 caddr | 28/40 vaddr | 32/56 daddr
//!   then options: u8 type, u8 len, data — 1 SEQ (24 bytes: in_seq, out_seq as
//!   {init_seq, delta, previous_delta}), 2 PE data, 3 PE name
//!   records start at 4-byte-aligned offsets; padding counts in size, not in ver_size
//! struct ip_vs_sync_mesg_v0 (v0 header, 4 bytes)
//!   0 u8 nr_conns | 1 u8 syncid | 2 be16 size
//! struct ip_vs_sync_conn_v0 (24 bytes)
//!   0 u8 reserved | 1 u8 protocol | 2 be16 cport | 4 be16 vport | 6 be16 dport
//!   8 caddr | 12 vaddr | 16 daddr | 20 be16 flags | 22 be16 state
//!   + 24 bytes of struct ip_vs_sync_conn_options in host order (x86: little-endian)
//!     when flags has IN_SEQ (0x400) / OUT_SEQ (0x200)
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_sync::{parse, Encoder, RecordError, RxStats, SeqAdjust, SeqData, SyncConn, Version};

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

fn conn(caddr: IpAddr, vaddr: IpAddr, daddr: IpAddr) -> SyncConn {
    SyncConn {
        protocol: 6,
        flags: 0,
        state: 1,
        caddr,
        cport: 0,
        vaddr,
        vport: 0,
        daddr,
        dport: 0,
        fwmark: 0,
        timeout_secs: 0,
        seq: None,
        pe_data: Vec::new(),
        pe_name: Vec::new(),
        local: None,
    }
}

fn encode_all(enc: &mut Encoder, conns: &[SyncConn]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for c in conns {
        if let Some(m) = enc.push(c).expect("encodable") {
            out.push(m);
        }
    }
    out.extend(enc.finish());
    out
}

fn decode_all(msg: &[u8], syncid: u8) -> Vec<SyncConn> {
    parse(msg, syncid)
        .expect("header accepted")
        .records()
        .map(|r| r.expect("record accepted"))
        .collect()
}

/// One IPv4 TCP direct-routing connection, syncid 1, ESTABLISHED, DROUTE|NOOUTPUT, 900 s.
#[test]
fn v1_ipv4_single_record() {
    let c = SyncConn {
        flags: 0x83 | 0x40, // HASHED is set locally and must not go on the wire
        cport: 45678,
        vport: 80,
        dport: 80,
        timeout_secs: 900,
        ..conn(v4([10, 0, 0, 2]), v4([192, 168, 1, 100]), v4([10, 1, 0, 1]))
    };
    #[rustfmt::skip]
    let want: Vec<u8> = vec![
        // header: reserved, syncid 1, size 44, 1 conn, version 1, spare
        0x00, 0x01, 0x00, 0x2c, 0x01, 0x01, 0x00, 0x00,
        // type IPv4, TCP, ver_size 0|36
        0x00, 0x06, 0x00, 0x24,
        // flags 0x83
        0x00, 0x00, 0x00, 0x83,
        // state 1, cport 45678 (0xb26e), vport 80, dport 80
        0x00, 0x01, 0xb2, 0x6e, 0x00, 0x50, 0x00, 0x50,
        // fwmark 0, timeout 900 (0x384)
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x84,
        // caddr, vaddr, daddr
        10, 0, 0, 2, 192, 168, 1, 100, 10, 1, 0, 1,
    ];
    let mut enc = Encoder::new(Version::V1, 1, 1472);
    let got = encode_all(&mut enc, std::slice::from_ref(&c));
    assert_eq!(got, vec![want.clone()]);
    let back = decode_all(&want, 1);
    assert_eq!(
        back,
        vec![SyncConn {
            flags: 0x83,
            ..c.clone()
        }]
    );
    // A backup with syncid 0 accepts it too.
    assert_eq!(decode_all(&want, 0).len(), 1);
}

/// A SIP template with PE data and name (record not a multiple of 4 → padding) followed by an
/// IPv6 NAT connection with sequence data, in one message.
#[test]
fn v1_options_padding_and_ipv6() {
    let tmpl = SyncConn {
        protocol: 17,
        flags: 0x1000, // TEMPLATE, MASQ
        state: 0,
        vport: 5060,
        dport: 5060,
        fwmark: 7,
        timeout_secs: 360,
        pe_data: b"abc123".to_vec(),
        pe_name: b"sip".to_vec(),
        local: None,
        ..conn(v4([0, 0, 0, 0]), v4([10, 0, 0, 1]), v4([172, 16, 0, 2]))
    };
    let seq = SeqData {
        in_seq: SeqAdjust {
            init_seq: 0x0102_0304,
            delta: 5,
            previous_delta: 0xffff_fffe,
        },
        out_seq: SeqAdjust {
            init_seq: 0xa0b0_c0d0,
            delta: 0,
            previous_delta: 1,
        },
    };
    let c6 = SyncConn {
        protocol: 6,
        flags: 0x0400 | 0x0100, // IN_SEQ | INACTIVE, MASQ
        state: 4,               // FIN_WAIT
        cport: 0x1234,
        vport: 443,
        dport: 8443,
        timeout_secs: 120,
        seq: Some(seq),
        ..conn(v6("2001:db8::2"), v6("2001:db8::80"), v6("fd00::a0a0"))
    };
    // Record 1: 36 + (2 + 6) PE data + (2 + 3) PE name = 49 bytes, so 3 bytes of padding put
    // record 2 at offset 8 + 52 = 60.
    #[rustfmt::skip]
    let mut want: Vec<u8> = vec![
        // header: size patched below, 2 conns
        0x00, 0x09, 0x00, 0x00, 0x02, 0x01, 0x00, 0x00,
        // record 1: IPv4, UDP, ver_size 49
        0x00, 0x11, 0x00, 49,
        0x00, 0x00, 0x10, 0x00,             // flags TEMPLATE
        0x00, 0x00, 0x00, 0x00, 0x13, 0xc4, 0x13, 0xc4, // state 0, cport 0, vport/dport 5060
        0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x01, 0x68, // fwmark 7, timeout 360
        0, 0, 0, 0, 10, 0, 0, 1, 172, 16, 0, 2,
        0x02, 6, b'a', b'b', b'c', b'1', b'2', b'3', // PE data "abc123"
        0x03, 3, b's', b'i', b'p',                   // PE name "sip"
        0x00, 0x00, 0x00,                            // padding to offset 60
        // record 2: IPv6, TCP, ver_size 72 + 26 = 98
        0x01, 0x06, 0x00, 98,
        0x00, 0x00, 0x05, 0x00,             // flags IN_SEQ | INACTIVE
        0x00, 0x04, 0x12, 0x34, 0x01, 0xbb, 0x20, 0xfb, // state 4, cport, vport 443, dport 8443
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x78, // fwmark 0, timeout 120
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80,
        0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa0, 0xa0,
        0x01, 24,                                    // SEQ option
        0x01, 0x02, 0x03, 0x04, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xfe,
        0xa0, 0xb0, 0xc0, 0xd0, 0, 0, 0, 0, 0, 0, 0, 1,
    ];
    let size = want.len() as u16;
    assert_eq!(size, 8 + 49 + 3 + 98);
    want[2..4].copy_from_slice(&size.to_be_bytes());

    let mut enc = Encoder::new(Version::V1, 9, 1472);
    let got = encode_all(&mut enc, &[tmpl.clone(), c6.clone()]);
    assert_eq!(got, vec![want.clone()]);
    assert_eq!(decode_all(&want, 9), vec![tmpl, c6]);
}

/// A fwmark template of an IPv6 service: protocol 0, the mark in the first four bytes of the
/// IPv6 virtual address.
#[test]
fn v1_ipv6_fwmark_template() {
    let t = SyncConn {
        protocol: 0,
        flags: 0x1000 | 0x3,
        state: 1,
        timeout_secs: 300,
        fwmark: 1,
        ..conn(v6("2001:db8::"), v4([0, 0, 0, 1]), v6("2001:db8::a0"))
    };
    let mut enc = Encoder::new(Version::V1, 0, 1472);
    let got = encode_all(&mut enc, std::slice::from_ref(&t));
    let m = &got[0];
    assert_eq!(m.len(), 8 + 72);
    // vaddr at record offset 40: 0.0.0.1 then zeros.
    assert_eq!(
        &m[8 + 40..8 + 56],
        &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    let back = decode_all(m, 0);
    assert_eq!(back[0].vaddr, v6("0:1::"));
}

/// Version 0: two IPv4 records, the second with sequence data in little-endian.
#[test]
fn v0_records_with_and_without_seq() {
    let a = SyncConn {
        flags: 0x83,
        cport: 1000,
        vport: 80,
        dport: 8080,
        ..conn(v4([1, 2, 3, 4]), v4([5, 6, 7, 8]), v4([9, 10, 11, 12]))
    };
    let b = SyncConn {
        protocol: 17,
        flags: 0x0200, // OUT_SEQ, MASQ
        state: 0,
        cport: 53,
        vport: 53,
        dport: 53,
        seq: Some(SeqData {
            in_seq: SeqAdjust {
                init_seq: 1,
                delta: 2,
                previous_delta: 3,
            },
            out_seq: SeqAdjust {
                init_seq: 0x1122_3344,
                delta: 5,
                previous_delta: 6,
            },
        }),
        ..conn(v4([1, 2, 3, 5]), v4([5, 6, 7, 8]), v4([9, 10, 11, 13]))
    };
    #[rustfmt::skip]
    let want: Vec<u8> = vec![
        // header: 2 conns, syncid 3, size 4 + 24 + 48 = 76
        0x02, 0x03, 0x00, 76,
        // record 1
        0x00, 0x06, 0x03, 0xe8, 0x00, 0x50, 0x1f, 0x90,
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        0x00, 0x83, 0x00, 0x01,
        // record 2
        0x00, 0x11, 0x00, 0x35, 0x00, 0x35, 0x00, 0x35,
        1, 2, 3, 5, 5, 6, 7, 8, 9, 10, 11, 13,
        0x02, 0x00, 0x00, 0x00,
        // sequence data, little-endian words
        1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0,
        0x44, 0x33, 0x22, 0x11, 5, 0, 0, 0, 6, 0, 0, 0,
    ];
    let mut enc = Encoder::new(Version::V0, 3, 1472);
    let got = encode_all(&mut enc, &[a.clone(), b.clone()]);
    assert_eq!(got, vec![want.clone()]);
    let m = parse(&want, 3).unwrap();
    assert_eq!(m.version(), Version::V0);
    assert_eq!(decode_all(&want, 3), vec![a, b]);
}

/// sync_maxlen splits messages: a 100-byte limit holds two 36-byte records (8 + 36 + 36 = 80),
/// not three.
#[test]
fn maxlen_splits_messages() {
    let mut conns = Vec::new();
    for i in 0..5u8 {
        conns.push(SyncConn {
            cport: u16::from(i),
            ..conn(v4([10, 0, 0, i]), v4([10, 0, 1, 1]), v4([10, 0, 2, 1]))
        });
    }
    let mut enc = Encoder::new(Version::V1, 0, 100);
    let got = encode_all(&mut enc, &conns);
    let lens: Vec<usize> = got.iter().map(Vec::len).collect();
    assert_eq!(lens, vec![80, 80, 44]);
    let counts: Vec<u8> = got.iter().map(|m| m[4]).collect();
    assert_eq!(counts, vec![2, 2, 1]);
    let all: Vec<SyncConn> = got.iter().flat_map(|m| decode_all(m, 0)).collect();
    assert_eq!(all, conns);
}

/// The encoder refuses what the protocol cannot carry.
#[test]
fn encoder_refusals() {
    let c6 = conn(v6("::1"), v6("::2"), v6("::3"));
    let mut enc = Encoder::new(Version::V0, 0, 1472);
    assert_eq!(enc.push(&c6), Err(rvs_sync::EncodeError::V0Ipv6));
    let mixed = conn(v4([1, 1, 1, 1]), v4([2, 2, 2, 2]), v6("::3"));
    let mut enc = Encoder::new(Version::V1, 0, 1472);
    assert_eq!(enc.push(&mixed), Err(rvs_sync::EncodeError::MixedFamily));
    assert_eq!(enc.finish(), None);
}

/// An unknown option without the optional bit skips only its record; with the bit it is
/// ignored. A kernel-built message is used as the base.
#[test]
fn unknown_options() {
    let a = SyncConn {
        cport: 1,
        ..conn(v4([1, 1, 1, 1]), v4([2, 2, 2, 2]), v4([3, 3, 3, 3]))
    };
    let mut enc = Encoder::new(Version::V1, 0, 1472);
    let base = encode_all(&mut enc, &[a.clone(), a.clone()]).remove(0);
    // Insert a 4-byte option (type, len 2, 2 bytes) into record 1: ver_size 36 → 40.
    let with = |t: u8| {
        let mut m = base[..8 + 36].to_vec();
        m.extend_from_slice(&[t, 2, 0xaa, 0xbb]);
        m.extend_from_slice(&base[8 + 36..]);
        m[8 + 3] = 40;
        let n = m.len() as u16;
        m[2..4].copy_from_slice(&n.to_be_bytes());
        m
    };
    let m = with(0x09);
    let r: Vec<_> = parse(&m, 0).unwrap().records().collect();
    assert_eq!(
        r,
        vec![
            Err(RecordError::Skip(rvs_sync::SkipReason::UnknownOption)),
            Ok(a.clone())
        ]
    );
    let m = with(0x49);
    let r: Vec<_> = parse(&m, 0).unwrap().records().collect();
    assert_eq!(r, vec![Ok(a.clone()), Ok(a.clone())]);
    let mut st = RxStats::default();
    assert_eq!(st.decode(&with(0x09), 0, |_| {}), 1);
    assert_eq!(st.skipped_unknown_option, 1);
}

/// rvs's FULLNAT option: type 0x50 (0x40 optional | 0x10), length 6, local address and port,
/// after the kernel's fixed record. A kernel receiver masks 0x40 off, finds no option 0x10 and,
/// the optional bit being set, skips it: it reads the connection as without the option.
#[test]
fn v1_fullnat_local_address_option() {
    let c = SyncConn {
        flags: 0x0005, // FULLNAT (rvs's forwarding method 5)
        cport: 40000,
        vport: 9000,
        dport: 9000,
        timeout_secs: 900,
        local: Some((v4([10, 2, 0, 100]), 1025)),
        ..conn(v4([10, 1, 0, 2]), v4([10, 1, 0, 100]), v4([10, 2, 0, 11]))
    };
    #[rustfmt::skip]
    let want: Vec<u8> = vec![
        // header: syncid 0, size 52, 1 conn, version 1
        0x00, 0x00, 0x00, 0x34, 0x01, 0x01, 0x00, 0x00,
        // type IPv4, TCP, ver_size 0|44 (36 + option 2 + 6)
        0x00, 0x06, 0x00, 0x2c,
        0x00, 0x00, 0x00, 0x05,
        // state 1, cport 40000 (0x9c40), vport 9000 (0x2328), dport 9000
        0x00, 0x01, 0x9c, 0x40, 0x23, 0x28, 0x23, 0x28,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x84,
        10, 1, 0, 2, 10, 1, 0, 100, 10, 2, 0, 11,
        // option 0x50, length 6: 10.2.0.100, port 1025 (0x0401)
        0x50, 0x06, 10, 2, 0, 100, 0x04, 0x01,
    ];
    let mut enc = Encoder::new(Version::V1, 0, 1472);
    let got = encode_all(&mut enc, std::slice::from_ref(&c));
    assert_eq!(got, vec![want.clone()]);
    assert_eq!(decode_all(&want, 0), vec![c.clone()]);

    // What a kernel sees: the same record with the option's type made mandatory would be
    // skipped; with it optional, the record stands. rvs's decoder follows the same rule.
    let mut mandatory = want.clone();
    mandatory[44] = 0x10;
    let mut st = RxStats::default();
    assert_eq!(
        st.decode(&mandatory, 0, |_| {}),
        0,
        "unknown mandatory option: skipped"
    );

    // IPv6: 16 address bytes and the port, length 18.
    let c6 = SyncConn {
        flags: 0x0005,
        local: Some((v6("fd00:2::100"), 2000)),
        ..conn(v6("fd00:1::2"), v6("fd00:1::100"), v6("fd00:2::11"))
    };
    let mut enc = Encoder::new(Version::V1, 0, 1472);
    let m = encode_all(&mut enc, std::slice::from_ref(&c6)).remove(0);
    assert_eq!(
        m.len(),
        8 + 72 + 2 + 18,
        "a 92-byte record needs no padding"
    );
    assert_eq!(&m[8 + 72..8 + 72 + 2], &[0x50, 18]);
    assert_eq!(decode_all(&m, 0), vec![c6]);

    // Version 0 has no options: the local address does not travel.
    let mut enc = Encoder::new(Version::V0, 0, 1472);
    let m = encode_all(&mut enc, std::slice::from_ref(&c)).remove(0);
    assert_eq!(m.len(), 4 + 24);
}
