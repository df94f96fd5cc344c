//! AGENT_CHECK's reply parser on arbitrary bytes: never a panic; a reply that parses names a
//! percentage within bounds, and parsing only looks at the first line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_health::{parse_reply, MalformedReply};

fuzz_target!(|data: &[u8]| {
    let r = parse_reply(data);
    if let Ok(reply) = &r {
        assert!(reply.percent.is_none_or(|p| p <= rvs_health::check::agent::MAX_PERCENT));
    }
    if let Some(i) = data.iter().position(|&b| b == b'\n') {
        let first: Result<_, MalformedReply> = parse_reply(&data[..i]);
        assert_eq!(first, r);
    }
});
