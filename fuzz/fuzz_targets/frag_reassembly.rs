//! The packet plane's reassembler (`crates/packet/src/reassembly.rs`) on arbitrary frames:
//! never a panic, memory never above its high threshold, every datagram it completes written
//! with length fields that describe it, and nothing left once the timeouts pass.
//!
//! Input: the records plane_process reads, `[port][time step, 100 ms units][length: u16 LE]
//! [frame bytes]` (the port is ignored), up to 64 of them; scripts/fuzz seeds the corpus with
//! the golden fixtures' fragment cases.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_core::Time;
use rvs_packet::reassembly::{Insert, Reassembler, ReassemblyConfig};
use rvs_packet::{parse, L3};

fuzz_target!(|data: &[u8]| {
    // Small thresholds, so that eviction is reached with few inputs.
    let cfg = ReassemblyConfig {
        high_thresh: 16 * 1024,
        low_thresh: 8 * 1024,
        ..ReassemblyConfig::default()
    };
    let mut r = Reassembler::new(cfg);
    let mut out = vec![0u8; 70_000];
    let mut now = 0u64;
    let mut rest = data;
    for _ in 0..64 {
        if rest.len() < 4 {
            break;
        }
        now += u64::from(rest[1]) * 100;
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]])) % 2048;
        rest = &rest[4..];
        let n = len.min(rest.len());
        let frame = &rest[..n];
        rest = &rest[n..];
        let Ok(p) = parse(frame) else { continue };
        if !p.is_fragment() {
            continue;
        }
        if let Insert::Complete(info) = r.insert(frame, &p, Time(now)) {
            let k = r
                .write_complete(&mut out)
                .expect("70 000 bytes hold any datagram");
            assert_eq!(k, info.len);
            let l2 = p.l2_len;
            let l3 = match p.l3 {
                L3::Ipv4 => usize::from(u16::from_be_bytes([out[l2 + 2], out[l2 + 3]])),
                _ => 40 + usize::from(u16::from_be_bytes([out[l2 + 4], out[l2 + 5]])),
            };
            assert_eq!(l2 + l3, k, "the length field describes the datagram");
        }
        assert!(r.mem() <= cfg.high_thresh, "{} bytes held", r.mem());
    }
    r.expire(Time(now + 120_000));
    assert_eq!(
        (r.queues(), r.mem()),
        (0, 0),
        "everything expired and accounted"
    );
});
