//! The packet plane's frame parser (`crates/packet`) on arbitrary Ethernet frames and bare IP
//! packets: never a panic, and whatever parses describes offsets inside the frame
//! (`Parsed::check_against` for IP); the checked parse accepts a subset of what the plain one does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_packet::{parse, parse_checked, parse_ip};

fuzz_target!(|data: &[u8]| {
    let plain = parse(data);
    if let Ok(p) = &plain {
        assert!(p.l2_len <= p.l3_end && p.l3_end <= data.len());
        if p.is_ip() {
            p.check_against(data)
                .expect("parsed IP offsets lie inside the frame");
        }
    }
    if parse_checked(data).is_ok() {
        assert!(plain.is_ok(), "parse_checked accepted what parse refused");
    }
    if let Ok(p) = parse_ip(data) {
        if p.is_ip() {
            p.check_against(data)
                .expect("parsed IP offsets lie inside the packet");
        }
    }
});
