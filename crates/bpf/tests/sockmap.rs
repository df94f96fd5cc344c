//! Kernel splicing on this kernel: two spliced sockets relay each other's data with no read or
//! write in user space, data queued before the splice included, and the counts match (root;
//! clang at build time).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use rvs_bpf::sockmap::{Error, Splicer};

fn load() -> Option<Splicer> {
    if !rvs_require::root() {
        return None;
    }
    match Splicer::load() {
        Ok(s) => Some(s),
        Err(e @ Error::Unavailable(_)) => {
            rvs_require::unmet(e);
            None
        }
        Err(e) => panic!("the kernel refused the sockmap program: {e}"),
    }
}

/// A connected pair: (the far end, the near end the splicer gets).
fn pair(l: &TcpListener) -> (TcpStream, TcpStream) {
    let far = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (near, _) = l.accept().unwrap();
    for s in [&far, &near] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    (far, near)
}

#[test]
fn spliced_sockets_relay_both_ways_and_count() {
    let Some(mut sp) = load() else { return };
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    // client ⇄ a (proxy's client side), b (proxy's server side) ⇄ server
    let (mut client, a) = pair(&l);
    let (mut server, b) = pair(&l);
    // Sent before the splice: must come through, ahead of what follows.
    client.write_all(b"early ").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let p = sp.splice(a.as_fd(), b.as_fd()).unwrap();
    assert_eq!((sp.sockets(), sp.directions()), (2, 2));
    let body = vec![7u8; 1 << 20];
    let w = std::thread::spawn(move || {
        client.write_all(&body).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).unwrap();
        back
    });
    let mut got = vec![0u8; 6 + (1 << 20)];
    server.read_exact(&mut got).unwrap();
    assert_eq!(&got[..6], b"early ");
    assert!(got[6..].iter().all(|&x| x == 7));
    server.write_all(b"thanks").unwrap();
    // The proxy's side sees the client's FIN as EOF, with nothing to read before it.
    let mut buf = [0u8; 16];
    let r = (&a).read(&mut buf);
    assert!(matches!(r, Ok(0)), "{r:?}");
    let (ab, ba) = sp.moved(&p).unwrap();
    assert_eq!(ab.bytes, 6 + (1 << 20));
    assert_eq!(ba.bytes, 6);
    assert!(ab.skbs >= 1 && ba.skbs >= 1 && ab.last_ns > 0);
    // Forward the half-close as the proxy does — once b has taken everything meant for it —
    // then close both, once a has too.
    let flushed = |toward_b: bool| {
        for _ in 0..2000 {
            let to = if toward_b { b.as_fd() } else { a.as_fd() };
            if sp.unsent(&p, to, toward_b).unwrap() == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("redirected data not sent within 2 s");
    };
    flushed(true);
    b.shutdown(Shutdown::Write).unwrap();
    assert_eq!(server.read(&mut buf).unwrap(), 0);
    server.shutdown(Shutdown::Write).unwrap();
    assert_eq!((&b).read(&mut buf).unwrap(), 0);
    flushed(false);
    drop((a, b));
    assert_eq!(w.join().unwrap(), b"thanks");
    sp.unsplice(&p);
    // Closed sockets leave the hash by themselves; the directions went with unsplice.
    assert_eq!((sp.sockets(), sp.directions()), (0, 0));
}

/// The kernel only takes established (or listening) TCP sockets; when the second socket is
/// refused the first is taken out again, so the caller can go on without splicing.
#[test]
fn a_closing_socket_is_refused_and_nothing_is_left_behind() {
    let Some(mut sp) = load() else { return };
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let (_far, near) = pair(&l);
    let (far2, closing) = pair(&l);
    far2.shutdown(Shutdown::Write).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!((&closing).read(&mut buf).unwrap(), 0); // CLOSE_WAIT now
    assert!(sp.splice(near.as_fd(), closing.as_fd()).is_err());
    assert_eq!((sp.sockets(), sp.directions()), (0, 0));
}

/// Data that reaches the first socket while the second is not in the hash yet (the window
/// between the two insertions) is neither lost nor overtaken: the first socket is held, so it
/// and everything after it stay readable there for user space to forward, in order, while
/// the other direction is still spliced by the kernel. Dropping it instead stalled short
/// flows whose request arrived just then (no response ever came).
#[test]
fn data_in_the_insertion_window_is_held_for_user_space_in_order() {
    let Some(mut sp) = load() else { return };
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let (mut client, a) = pair(&l);
    let (mut server, b) = pair(&l);
    let p = sp
        .splice_pausing(a.as_fd(), b.as_fd(), || {
            client.write_all(b"GET / ").unwrap();
            // Let it arrive and run the program while only `a` is in the hash.
            std::thread::sleep(Duration::from_millis(50));
        })
        .unwrap();
    assert!(sp.held(p.a).unwrap(), "a should be held");
    assert!(!sp.held(p.b).unwrap());
    client.write_all(b"HTTP/1.0").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < 14 {
        let n = (&a).read(&mut buf).unwrap();
        assert!(n > 0, "EOF after {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"GET / HTTP/1.0");
    // Nothing of it reached the server by the kernel; the other way is still spliced.
    assert_eq!(sp.moved(&p).unwrap().0.bytes, 0);
    server.write_all(b"200").unwrap();
    let mut back = [0u8; 3];
    client.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"200");
    assert_eq!(sp.moved(&p).unwrap().1.bytes, 3);
    sp.unsplice(&p);
}
