//! rvsd's control-socket framing and JSON model on arbitrary bytes, as rvsd reads them (a
//! `FrameBuffer` with the request limit): never a panic, never a frame beyond the limit, and a
//! request that decodes re-encodes to a frame that decodes to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_control::codec::{decode, encode, FrameBuffer, MAX_REQUEST_FRAME};
use rvs_control::proto::{Request, Response};

fuzz_target!(|data: &[u8]| {
    let mut fb = FrameBuffer::with_limit(MAX_REQUEST_FRAME);
    // Fed in two pieces, so partial frames are exercised too.
    let cut = data.first().map_or(0, |b| usize::from(*b) % (data.len() + 1));
    fb.push(&data[..cut]);
    let mut got = Vec::new();
    while let Ok(Some(r)) = fb.next_message::<Request>() {
        got.push(r);
    }
    fb.push(&data[cut..]);
    while let Ok(Some(r)) = fb.next_message::<Request>() {
        got.push(r);
    }
    for r in got {
        let frame = encode(&r).expect("a decoded request encodes");
        let (again, used) = decode::<Request>(&frame).unwrap().unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(again, r);
    }
    // rvsadm's side: responses.
    let _ = decode::<Response>(data);
});
