//! The sync decoder on arbitrary datagrams: it must never panic, never hand over more records
//! than the header announces, and whatever it accepts must survive re-encoding; the same for
//! the bulk-resync control messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_sync::resync::Control;
use rvs_sync::{parse, Encoder, RxStats, Version};

fuzz_target!(|data: &[u8]| {
    // Half the inputs get a consistent size field so the fuzzer reaches the record parser.
    let mut buf = data.to_vec();
    if buf.len() >= 4 && buf.len() <= usize::from(u16::MAX) && buf[0] & 0x80 != 0 {
        let n = buf.len() as u16;
        buf[2..4].copy_from_slice(&n.to_be_bytes());
    }
    // The bulk-resync control messages share the port range: their parser must hold too, and
    // what it accepts re-encodes to the same bytes.
    if let Some(c) = Control::parse(data) {
        assert_eq!(c.encode(), data);
    }
    let syncid = data.first().copied().unwrap_or(0) & 0x3;
    let mut st = RxStats::default();
    let mut got = Vec::new();
    let n = st.decode(&buf, syncid, |c| got.push(c));
    if let Ok(m) = parse(&buf, syncid) {
        assert!(n <= usize::from(m.nr_conns()));
        // Records that decoded re-encode (version 1 carries everything a decoder yields,
        // unless the addresses mix families, which v1 decoding never produces).
        let mut enc = Encoder::new(Version::V1, syncid, 65000);
        for c in &got {
            let _ = enc.push(c);
        }
        let _ = enc.finish();
    }
});
