//! The ClientHello reader of the `sni` engine (`rvs_proxy::http::tls`) on arbitrary bytes:
//! never a panic, and a server name it returns is a lower-case DNS name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_proxy::http::tls::{client_hello, Hello};

fuzz_target!(|data: &[u8]| {
    if let Ok(Hello::Complete(Some(name))) = client_hello(data) {
        assert!(!name.is_empty() && name.len() <= 253);
        assert!(name
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-._".contains(c)));
    }
});
