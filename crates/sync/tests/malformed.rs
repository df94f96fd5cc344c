//! Every malformed datagram is dropped with its reason and counted, and records before the
//! fault are still delivered (as the kernel applies them).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_sync::{parse, DropReason, Encoder, RecordError, RxStats, SyncConn, Version};

fn c4(i: u8) -> SyncConn {
    SyncConn {
        protocol: 6,
        flags: 0x83,
        state: 1,
        caddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)),
        cport: 1000 + u16::from(i),
        vaddr: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)),
        vport: 80,
        daddr: IpAddr::V4(Ipv4Addr::new(10, 0, 2, 1)),
        dport: 80,
        fwmark: 0,
        timeout_secs: 900,
        seq: None,
        pe_data: Vec::new(),
        pe_name: Vec::new(),
        local: None,
    }
}

fn c6(i: u8) -> SyncConn {
    SyncConn {
        caddr: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(i))),
        vaddr: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 1)),
        daddr: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 2, 1)),
        ..c4(i)
    }
}

fn msg(v: Version, conns: &[SyncConn]) -> Vec<u8> {
    let mut e = Encoder::new(v, 0, 65000);
    for c in conns {
        assert!(e.push(c).unwrap().is_none());
    }
    e.finish().unwrap()
}

fn set_size(m: &mut [u8]) {
    let n = m.len() as u16;
    m[2..4].copy_from_slice(&n.to_be_bytes());
}

/// Decode and return (good records, the drop reason if any).
fn run(m: &[u8]) -> (usize, Option<DropReason>) {
    let mut st = RxStats::default();
    let n = st.decode(m, 0, |_| {});
    let reason = DropReason::ALL.into_iter().find(|r| st.dropped(*r) > 0);
    assert!(st.dropped_total() <= 1);
    (n, reason)
}

#[test]
fn header_drops() {
    assert_eq!(run(&[]), (0, Some(DropReason::TooShort)));
    assert_eq!(run(&[0, 0, 0]), (0, Some(DropReason::TooShort)));
    let mut m = msg(Version::V1, &[c4(1)]);
    m[3] += 1;
    assert_eq!(run(&m), (0, Some(DropReason::SizeMismatch)));
    let mut m = msg(Version::V1, &[c4(1)]);
    m.push(0);
    assert_eq!(run(&m), (0, Some(DropReason::SizeMismatch)));
    let mut m = msg(Version::V1, &[c4(1)]);
    m[1] = 5;
    assert_eq!(parse(&m, 6).unwrap_err(), DropReason::SyncidMismatch);
    assert!(parse(&m, 5).is_ok());
    assert!(parse(&m, 0).is_ok());
}

#[test]
fn zero_counts_and_version_confusion() {
    // A v1 header announcing no record.
    let mut m = msg(Version::V1, &[c4(1)]);
    m[4] = 0;
    let mut st = RxStats::default();
    assert_eq!(st.decode(&m, 0, |_| {}), 0);
    assert_eq!((st.empty, st.dropped_total()), (1, 0));
    // spare ≠ 0: read as version 0, whose count is the reserved byte (0): nothing happens,
    // exactly what a v0-only kernel does with a v1 message.
    let mut m = msg(Version::V1, &[c4(1)]);
    m[7] = 1;
    let p = parse(&m, 0).unwrap();
    assert_eq!((p.version(), p.nr_conns()), (Version::V0, 0));
    // reserved ≠ 0: version 0 with `reserved` records read from offset 4 — the v1 header and
    // record bytes as v0 records; they run past the end and the rest is dropped.
    let mut m = msg(Version::V1, &[c4(1)]);
    m[0] = 3;
    let (n, r) = run(&m);
    assert_eq!(parse(&m, 0).unwrap().version(), Version::V0);
    assert_eq!((n, r), (1, Some(DropReason::V0Overrun)));
    // A v0 message whose first byte is 0 with a 1 at offset 5 is still v0 unless spare is 0.
    let m = msg(Version::V0, &[c4(1)]);
    assert_eq!(parse(&m, 0).unwrap().version(), Version::V0);
}

#[test]
fn v1_record_overruns() {
    // nr_conns larger than what is there: the first record is kept, the second is missing.
    let mut m = msg(Version::V1, &[c4(1)]);
    m[4] = 2;
    assert_eq!(run(&m), (1, Some(DropReason::RecordOverrun)));
    // ver_size longer than the datagram.
    let mut m = msg(Version::V1, &[c4(1), c4(2)]);
    m[8 + 36 + 3] = 37;
    assert_eq!(run(&m), (1, Some(DropReason::RecordOverrun)));
    // ver_size shorter than an IPv4 record.
    let mut m = msg(Version::V1, &[c4(1)]);
    m[8 + 3] = 20;
    assert_eq!(run(&m), (0, Some(DropReason::RecordTooShort)));
    // A truncated IPv6 record: type IPv6 with the IPv4 length.
    let mut m = msg(Version::V1, &[c4(1)]);
    m[8] = 1;
    assert_eq!(run(&m), (0, Some(DropReason::RecordTooShort)));
    // An IPv6 record cut short in the datagram.
    let mut m = msg(Version::V1, &[c6(1)]);
    m.truncate(8 + 50);
    set_size(&mut m);
    assert_eq!(run(&m), (0, Some(DropReason::RecordOverrun)));
    // Record version 1.
    let mut m = msg(Version::V1, &[c4(1)]);
    m[8 + 2] = 0x10;
    assert_eq!(run(&m), (0, Some(DropReason::RecordVersion)));
    // Type 2.
    let mut m = msg(Version::V1, &[c4(1)]);
    m[8] = 2;
    assert_eq!(run(&m), (0, Some(DropReason::RecordType)));
}

/// Build a one-record IPv4 message whose record carries `opts` after its fixed part.
fn with_opts(opts: &[u8]) -> Vec<u8> {
    let mut m = msg(Version::V1, &[c4(1)]);
    m.extend_from_slice(opts);
    let rl = (36 + opts.len()) as u16;
    m[8 + 2..8 + 4].copy_from_slice(&rl.to_be_bytes());
    set_size(&mut m);
    m
}

#[test]
fn v1_option_faults() {
    // One byte of option header.
    assert_eq!(run(&with_opts(&[1])), (0, Some(DropReason::OptionOverrun)));
    // Zero length.
    assert_eq!(
        run(&with_opts(&[2, 0])),
        (0, Some(DropReason::OptionOverrun))
    );
    // Data past the record.
    assert_eq!(
        run(&with_opts(&[2, 9, 1, 2, 3])),
        (0, Some(DropReason::OptionOverrun))
    );
    // SEQ of the wrong length.
    assert_eq!(
        run(&with_opts(&[1, 4, 0, 0, 0, 0])),
        (0, Some(DropReason::BadOption))
    );
    // PE name longer than 16.
    let mut o = vec![3, 17];
    o.extend_from_slice(&[b'x'; 17]);
    assert_eq!(run(&with_opts(&o)), (0, Some(DropReason::BadOption)));
    // PE data twice.
    assert_eq!(
        run(&with_opts(&[2, 1, b'a', 2, 1, b'b'])),
        (0, Some(DropReason::BadOption))
    );
    // SEQ twice (the optional bit is masked off: 0x41 is SEQ again).
    let mut o = vec![1, 24];
    o.extend_from_slice(&[0; 24]);
    o.extend_from_slice(&[0x41, 24]);
    o.extend_from_slice(&[0; 24]);
    assert_eq!(run(&with_opts(&o)), (0, Some(DropReason::BadOption)));
    // A good PE name alone is fine.
    assert_eq!(run(&with_opts(&[3, 3, b's', b'i', b'p'])), (1, None));
}

#[test]
fn v0_overruns() {
    let mut m = msg(Version::V0, &[c4(1)]);
    m[0] = 2;
    assert_eq!(run(&m), (1, Some(DropReason::V0Overrun)));
    // SEQ flag set but no sequence data.
    let mut m = msg(Version::V0, &[c4(1)]);
    m[4 + 20] = 0x04;
    assert_eq!(run(&m), (0, Some(DropReason::V0Overrun)));
}

#[test]
fn records_before_a_fault_are_kept() {
    let mut m = msg(Version::V1, &[c4(1), c4(2), c4(3)]);
    m[8 + 2 * 36] = 6; // record 3 gets an invalid type (bit 0 clear, not 0)
    let recs: Vec<_> = parse(&m, 0).unwrap().records().collect();
    assert_eq!(recs.len(), 3);
    assert!(recs[0].is_ok() && recs[1].is_ok());
    assert_eq!(recs[2], Err(RecordError::Drop(DropReason::RecordType)));
}
