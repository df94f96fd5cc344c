//! A small HTTP/1.1 real server that counts what reaches it — connections accepted, requests —
//! for the tests of the proxy's server-connection reuse, with two behaviours nginx cannot be
//! held to precisely: closing a connection a fixed time after its last response (a short
//! keep-alive timeout, to race the proxy's reuse), and answering `Connection: close` while
//! keeping the socket open, to catch a request the proxy must not send on that connection.
//!
//! It answers every request head (bodiless requests only) with `200` and the body
//! `<name> <connection number>\n`, so a client sees which server and which server connection
//! served it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How the server treats a connection after a response.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Keep-alive; close the connection when no request arrives within this time.
    KeepAlive(Duration),
    /// Every response says `Connection: close`; the socket stays open for a while anyway and a
    /// request arriving on it is counted ([`CountingHttp::requests_after_close`]).
    Close,
}

#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    requests: AtomicU64,
    after_close: AtomicU64,
}

/// The running server; stopped on drop.
pub struct CountingHttp {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    thread: Option<JoinHandle<()>>,
}

/// How long a `Mode::Close` connection is watched for a request after its response.
const WATCH_AFTER_CLOSE: Duration = Duration::from_secs(2);

impl CountingHttp {
    /// Listen on `addr` (`"127.77.86.11:8080"`) as server `name`.
    ///
    /// # Panics
    /// If the address cannot be bound.
    pub fn start(addr: &str, name: &str, mode: Mode) -> CountingHttp {
        let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        l.set_nonblocking(true).expect("nonblocking listener");
        let addr = l.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let (s, c, name) = (stop.clone(), counts.clone(), name.to_string());
        let thread = std::thread::spawn(move || {
            while !s.load(SeqCst) {
                match l.accept() {
                    Ok((conn, _)) => {
                        let n = c.connections.fetch_add(1, SeqCst) + 1;
                        let (c, name) = (c.clone(), name.clone());
                        std::thread::spawn(move || serve(conn, &name, n, mode, &c));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        CountingHttp {
            addr,
            stop,
            counts,
            thread: Some(thread),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counts.connections.load(SeqCst)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.counts.requests.load(SeqCst)
    }

    /// `Mode::Close`: requests that arrived on a connection after its `Connection: close`
    /// response (a client or proxy that ignored it).
    pub fn requests_after_close(&self) -> u64 {
        self.counts.after_close.load(SeqCst)
    }
}

impl Drop for CountingHttp {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection: answer each request head; ends on EOF, error, or the mode's timeout.
fn serve(mut conn: TcpStream, name: &str, n: u64, mode: Mode, c: &Counts) {
    let idle = match mode {
        Mode::KeepAlive(d) => d,
        Mode::Close => Duration::from_secs(10),
    };
    let _ = conn.set_read_timeout(Some(idle));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            c.requests.fetch_add(1, SeqCst);
            let body = format!("{name} {n}\n");
            let close = matches!(mode, Mode::Close);
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n{body}",
                body.len(),
                if close { "Connection: close\r\n" } else { "" }
            );
            if conn.write_all(resp.as_bytes()).is_err() {
                return;
            }
            if close {
                // Keep the socket open; anything more on it is a request sent in spite of the
                // close.
                let _ = conn.set_read_timeout(Some(WATCH_AFTER_CLOSE));
                if matches!(conn.read(&mut chunk), Ok(k) if k > 0) {
                    c.after_close.fetch_add(1, SeqCst);
                }
                return;
            }
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}
