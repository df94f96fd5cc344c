//! The VRRP receive path's decoders on arbitrary bytes: an IP packet (IPv4 with optional AH,
//! or IPv6) and the VRRP advert inside, for both families. Never a panic; an advert that
//! parses has at most as many addresses as its count field allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_vrrp::{Advert, Family, RxPacket};

fuzz_target!(|data: &[u8]| {
    let _ = RxPacket::parse(data);
    for fam in [Family::Inet, Family::Inet6] {
        if let Ok(a) = Advert::parse(data, fam) {
            assert!(a.addresses.len() <= 255);
        }
    }
});
