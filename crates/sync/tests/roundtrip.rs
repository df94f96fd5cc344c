//! Property tests: whatever the connections, encode → decode gives them back (minus what the
//! version cannot carry), every message respects `sync_maxlen`, and arbitrary or mutated bytes
//! never panic the decoder.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use rvs_sync::{parse, Encoder, RxStats, SeqAdjust, SeqData, SyncConn, Version};

fn addr(v6: bool) -> impl Strategy<Value = IpAddr> {
    if v6 {
        any::<[u8; 16]>()
            .prop_map(|b| IpAddr::V6(Ipv6Addr::from(b)))
            .boxed()
    } else {
        any::<[u8; 4]>()
            .prop_map(|b| IpAddr::V4(Ipv4Addr::from(b)))
            .boxed()
    }
}

fn seq() -> impl Strategy<Value = SeqData> {
    any::<[u32; 6]>().prop_map(|w| SeqData {
        in_seq: SeqAdjust {
            init_seq: w[0],
            delta: w[1],
            previous_delta: w[2],
        },
        out_seq: SeqAdjust {
            init_seq: w[3],
            delta: w[4],
            previous_delta: w[5],
        },
    })
}

prop_compose! {
    fn conn(v6: bool)(
        protocol in prop_oneof![Just(6u8), Just(17), Just(132)],
        flags in any::<u32>(),
        state in 0u16..14,
        caddr in addr(v6), vaddr in addr(v6), daddr in addr(v6),
        ports in any::<(u16, u16, u16)>(),
        fwmark in any::<u32>(),
        timeout_secs in any::<u32>(),
        s in seq(),
        pe_data in proptest::collection::vec(any::<u8>(), 0..=255),
        pe_name in proptest::collection::vec(any::<u8>(), 1..=16),
        laddr in addr(v6), lport in any::<u16>(), fullnat in any::<bool>(),
    ) -> SyncConn {
        // HASHED never travels; SEQ data exactly when a SEQ flag says so.
        let flags = flags & !0x40;
        let has_seq = flags & 0x600 != 0;
        let pe_name = if pe_data.is_empty() { Vec::new() } else { pe_name };
        SyncConn {
            protocol, flags, state, caddr, cport: ports.0, vaddr, vport: ports.1, daddr,
            dport: ports.2, fwmark, timeout_secs, seq: has_seq.then_some(s), pe_data, pe_name,
            local: fullnat.then_some((laddr, lport)),
        }
    }
}

fn any_conn() -> impl Strategy<Value = SyncConn> {
    prop_oneof![conn(false), conn(true)]
}

/// What a version-0 receiver gets back from `c`.
fn as_v0(c: &SyncConn) -> SyncConn {
    let flags = c.flags & 0xffff;
    SyncConn {
        flags,
        fwmark: 0,
        timeout_secs: 0,
        seq: if flags & 0x600 != 0 { c.seq } else { None },
        pe_data: Vec::new(),
        pe_name: Vec::new(),
        local: None,
        ..c.clone()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn v1_round_trip(conns in proptest::collection::vec(any_conn(), 0..60),
                     maxlen in 1u32..3000, syncid in any::<u8>()) {
        let mut enc = Encoder::new(Version::V1, syncid, maxlen);
        let mut msgs = Vec::new();
        for c in &conns {
            msgs.extend(enc.push(c).unwrap());
        }
        msgs.extend(enc.finish());
        let mut back = Vec::new();
        let mut st = RxStats::default();
        for m in &msgs {
            // Only a message with a single record may exceed maxlen.
            prop_assert!(m.len() <= maxlen as usize || m[4] == 1);
            st.decode(m, syncid, |c| back.push(c));
        }
        prop_assert_eq!(st.dropped_total(), 0);
        prop_assert_eq!(back, conns);
    }

    #[test]
    fn v0_round_trip(conns in proptest::collection::vec(conn(false), 0..60),
                     maxlen in 1u32..3000) {
        let mut enc = Encoder::new(Version::V0, 0, maxlen);
        let mut msgs = Vec::new();
        for c in &conns {
            msgs.extend(enc.push(c).unwrap());
        }
        msgs.extend(enc.finish());
        let mut back = Vec::new();
        let mut st = RxStats::default();
        for m in &msgs {
            prop_assert!(m.len() <= maxlen as usize || m[0] == 1);
            st.decode(m, 0, |c| back.push(c));
        }
        prop_assert_eq!(st.dropped_total(), 0);
        let want: Vec<SyncConn> = conns.iter().map(as_v0).collect();
        prop_assert_eq!(back, want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600),
                                   fix_size in any::<bool>(), syncid in any::<u8>()) {
        let mut b = b;
        if fix_size && b.len() >= 4 {
            let n = b.len() as u16;
            b[2..4].copy_from_slice(&n.to_be_bytes());
        }
        let mut st = RxStats::default();
        let n = st.decode(&b, syncid, |_| {});
        prop_assert!(n <= 255);
        prop_assert_eq!(st.datagrams, 1);
    }

    #[test]
    fn mutated_messages_never_panic(conns in proptest::collection::vec(any_conn(), 1..8),
                                    flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
                                    cut in any::<usize>()) {
        let mut enc = Encoder::new(Version::V1, 0, 65000);
        for c in &conns {
            prop_assert!(enc.push(c).unwrap().is_none());
        }
        let mut m = enc.finish().unwrap();
        for (at, v) in flips {
            let i = at % m.len();
            m[i] = v;
        }
        let keep = 4 + cut % (m.len() - 3);
        m.truncate(keep.min(m.len()));
        let n = m.len() as u16;
        m[2..4].copy_from_slice(&n.to_be_bytes());
        if let Ok(p) = parse(&m, 0) {
            for r in p.records() {
                let _ = r;
            }
        }
    }
}
