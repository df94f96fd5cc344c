//! The body framing of `rvs_proxy::http` (chunked coding above all) on arbitrary bytes, fed in
//! one piece and in the pieces the first byte chooses: never a panic, never more bytes claimed
//! than given, and both feedings agree on where the body ends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_proxy::http::{BodyKind, BodyScanner};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let kind = match sel % 3 {
        0 => BodyKind::Chunked,
        1 => BodyKind::Length(u64::from(sel)),
        _ => BodyKind::UntilClose,
    };
    let step = usize::from(sel / 3).max(1);
    let mut whole = BodyScanner::new(kind);
    let w = whole.feed(rest);
    if let Ok(n) = w {
        assert!(n <= rest.len());
    }
    let mut parts = BodyScanner::new(kind);
    let mut taken = 0;
    let mut failed = false;
    for piece in rest.chunks(step) {
        if parts.done() {
            break;
        }
        match parts.feed(piece) {
            Ok(n) => {
                assert!(n <= piece.len());
                taken += n;
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    match w {
        Ok(n) if !failed => {
            assert_eq!(whole.done(), parts.done());
            assert_eq!(n, taken);
        }
        Ok(_) => panic!("pieces failed where the whole did not"),
        Err(_) => assert!(failed, "the whole failed where the pieces did not"),
    }
});
