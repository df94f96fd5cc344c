//! The HTTP/1.x head parsers of the content persistence engines (`rvs_proxy::http`) on
//! arbitrary bytes: never a panic, a complete head lies inside the input and never exceeds the
//! size limit, the relay's cheap completeness check (`request_head_len`) agrees with the full
//! parser, and the accessors (framing, cookies, keep-alive) work on whatever parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_proxy::http::{
    parse_request, parse_response, request_head_len, HeadError, Parse, MAX_HEAD, MAX_HEADERS,
};

fuzz_target!(|data: &[u8]| {
    match (request_head_len(data), parse_request(data)) {
        (Ok(Some(n)), Ok(Parse::Complete(r))) => assert_eq!(n, r.len),
        (
            Ok(Some(_)),
            Err(HeadError::Malformed(_) | HeadError::NotHttp | HeadError::TooManyHeaders),
        ) => {}
        (Ok(None), Ok(Parse::Partial)) => {}
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("request_head_len {a:?} but parse_request {b:?}"),
    }
    if let Ok(Parse::Complete(r)) = parse_request(data) {
        assert!(r.len <= data.len() && r.len <= MAX_HEAD);
        assert!(r.headers.len() <= MAX_HEADERS);
        let _ = r.body();
        let _ = (r.keep_alive(), r.wants_upgrade(), r.is_connect());
        let _ = (r.cookie(b"RVSID"), r.header(b"x-user-id"));
    }
    if let Ok(Parse::Complete(r)) = parse_response(data) {
        assert!(r.headers_at <= r.len && r.len <= data.len() && r.len <= MAX_HEAD);
        assert!((100..=999).contains(&r.status));
        let _ = (r.body(b"GET"), r.body(b"HEAD"));
        let _ = (r.keep_alive(), r.is_interim(), r.set_cookie(b"JSESSIONID"));
    }
});
