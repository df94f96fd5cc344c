//! The control socket against hostile clients, with a real rvsd: a length prefix beyond the
//! request limit is answered with `EMSGSIZE` naming the limit before any of the frame's body
//! is sent (so rvsd did not wait to buffer it); a client that sends a frame's first bytes and
//! then stalls (slowloris) is disconnected after the frame timeout; rvsadm is answered
//! promptly throughout.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{start_rvsd, tempdir};
use rvs_control::codec::{encode, read_frame, MAX_REQUEST_FRAME};
use rvs_control::proto::{ErrorKind, Request, Response, PROTOCOL_VERSION};

fn connect(sock: &std::path::Path) -> UnixStream {
    let s = UnixStream::connect(sock).expect("connect to the control socket");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// rvsadm -Ln answers (exit 0) within 5 s, while the hostile connections are open.
fn rvsadm_answers(d: &common::Rvsd) {
    let t = Instant::now();
    let a = d.adm(&["-Ln"]);
    assert_eq!(a.code, 0, "{a:?}");
    assert!(a.out.contains("TCP  127.77.70.1:8080"), "{a:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "rvsadm -Ln took {:?}",
        t.elapsed()
    );
}

#[test]
fn oversized_frame_is_refused_and_slowloris_is_dropped_while_rvsadm_is_served() {
    let dir = tempdir("ctlsock");
    let d = start_rvsd(dir.path(), &[]);
    d.ok(&["-A", "-t", "127.77.70.1:8080", "-s", "rr"]);

    // A slowloris client: half a Hello frame, then nothing.
    let hello = encode(&Request::Hello {
        protocol: PROTOCOL_VERSION,
        client: "slowloris".into(),
    })
    .unwrap();
    let mut slow = connect(&d.socket);
    slow.write_all(&hello[..3]).unwrap();
    let slow_since = Instant::now();

    // An oversized frame: only its length prefix is sent.
    let mut big = connect(&d.socket);
    big.write_all(&((MAX_REQUEST_FRAME + 1) as u32).to_be_bytes())
        .unwrap();
    let r: Response = read_frame(&mut big)
        .expect("a response frame")
        .expect("a response before the connection closes");
    let e = r.result.expect_err("an error response");
    assert_eq!(e.kind, ErrorKind::Emsgsize);
    let detail = e.detail.unwrap_or_default();
    assert!(
        detail.contains(&format!(
            "exceeds the control socket's limit of {MAX_REQUEST_FRAME} bytes (16 MiB)"
        )),
        "{detail}"
    );
    let mut rest = Vec::new();
    assert_eq!(
        big.read_to_end(&mut rest).unwrap(),
        0,
        "closed after the answer"
    );

    // Other clients are served while the slowloris connection is open.
    rvsadm_answers(&d);

    // The slowloris connection is closed within the frame timeout (10 s) and some slack.
    let mut b = [0u8; 1];
    let n = slow
        .read(&mut b)
        .expect("rvsd closes the stalled connection (EOF, no timeout)");
    assert_eq!(n, 0);
    let waited = slow_since.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(25),
        "closed after {waited:?}"
    );
    assert!(
        d.log_text()
            .contains("a request frame did not arrive whole within 10 s (3 bytes so far)"),
        "{}",
        d.log_text()
    );
    rvsadm_answers(&d);
}
