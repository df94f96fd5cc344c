//! Connections that stream while something happens, and the largest gap each one saw.
//!
//! Why: "the connection continues" after a failover is only half the claim; the other half is
//! how long it stalled. An echo after the event shows the first, not the second. Here every
//! connection sends a numbered line every `interval` on a thread of its own while the test
//! acts, and every echoed line's arrival is timed: a connection's gap is the longest time
//! between two echoes (or from the last echo to the end). A reset, a closed connection, or an
//! echo out of sequence marks it broken.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What streaming found.
pub struct StreamReport {
    /// The connections, back for the next step (`None`: broken now or before).
    pub conns: Vec<Option<TcpStream>>,
    /// Per connection, the longest time without an echo (zero for one that was not streaming).
    pub gaps: Vec<Duration>,
    /// Connections that broke while streaming (reset, closed, or an echo out of sequence).
    pub broken: Vec<usize>,
}

impl StreamReport {
    /// The longest gap of any connection that did not break, and which one it was.
    pub fn worst(&self) -> (Duration, Option<usize>) {
        self.gaps
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.broken.contains(i))
            .map(|(i, g)| (*g, Some(i)))
            .max()
            .unwrap_or((Duration::ZERO, None))
    }
}

/// Streaming on a set of connections until [`EchoStreams::finish`].
pub struct EchoStreams {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<StreamReport>>,
}

struct Conn {
    sock: TcpStream,
    sent: u64,
    next_echo: u64,
    pending: Vec<u8>,
    last_send: Instant,
    last_echo: Instant,
    gap: Duration,
}

impl EchoStreams {
    /// Start streaming on `conns` (connected to an echo server that returns every byte; each
    /// must be non-blocking). A line is sent on each connection every `interval`.
    pub fn start(conns: Vec<Option<TcpStream>>, interval: Duration) -> EchoStreams {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || run(conns, interval, &s));
        EchoStreams {
            stop,
            thread: Some(thread),
        }
    }

    /// Stream `settle` longer (bounded to 10 s), then stop sending, wait (at most 5 s) for
    /// the echoes in flight so that the connections are quiet for the next step, and report.
    pub fn finish(mut self, settle: Duration) -> StreamReport {
        std::thread::sleep(settle.min(Duration::from_secs(10)));
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => panic!("the streaming thread panicked"),
        }
    }
}

impl Drop for EchoStreams {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conns: Vec<Option<TcpStream>>, interval: Duration, stop: &AtomicBool) -> StreamReport {
    let start = Instant::now();
    let n = conns.len();
    let mut live: Vec<Option<Conn>> = conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            c.map(|sock| Conn {
                sock,
                sent: 0,
                next_echo: 0,
                pending: Vec::new(),
                // Spread the first sends over one interval.
                last_send: start.checked_sub(interval).unwrap_or(start)
                    + interval.mul_f64(i as f64 / n.max(1) as f64),
                last_echo: start,
                gap: Duration::ZERO,
            })
        })
        .collect();
    let mut broken = Vec::new();
    let mut buf = [0u8; 4096];
    let mut stopped: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if stopped.is_none() && stop.load(Ordering::Acquire) {
            stopped = Some(now);
        }
        if let Some(t) = stopped {
            let quiet = live.iter().flatten().all(|c| c.next_echo == c.sent);
            if quiet || now.duration_since(t) > Duration::from_secs(5) {
                break;
            }
        }
        for (i, slot) in live.iter_mut().enumerate() {
            let Some(c) = slot else { continue };
            let mut ok = true;
            if stopped.is_none() && now.duration_since(c.last_send) >= interval {
                let line = format!("{}\n", c.sent);
                // A full send buffer means the path stalls: skip this beat, the gap shows it.
                match c.sock.write(line.as_bytes()) {
                    Ok(k) if k == line.len() => {
                        c.sent += 1;
                        c.last_send = now;
                    }
                    Ok(_) => ok = false, // a partial line would break the sequence check
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => ok = false,
                }
            }
            loop {
                match c.sock.read(&mut buf) {
                    Ok(0) => {
                        ok = false;
                        break;
                    }
                    Ok(k) => c.pending.extend_from_slice(&buf[..k]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        ok = false;
                        break;
                    }
                }
            }
            while let Some(p) = c.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = c.pending.drain(..=p).collect();
                if line[..p] != *c.next_echo.to_string().as_bytes() {
                    ok = false;
                    break;
                }
                c.next_echo += 1;
                let t = Instant::now();
                c.gap = c.gap.max(t.duration_since(c.last_echo));
                c.last_echo = t;
            }
            if !ok {
                broken.push(i);
                *slot = None;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let end = stopped.unwrap_or_else(Instant::now);
    let mut gaps = vec![Duration::ZERO; n];
    let mut out = Vec::with_capacity(n);
    for (i, slot) in live.into_iter().enumerate() {
        match slot {
            Some(c) => {
                // An echo still missing at the end counts from the last one to the stop.
                let tail = if c.next_echo == c.sent {
                    Duration::ZERO
                } else {
                    end.saturating_duration_since(c.last_echo)
                };
                gaps[i] = c.gap.max(tail);
                out.push(Some(c.sock));
            }
            None => out.push(None),
        }
    }
    StreamReport {
        conns: out,
        gaps,
        broken,
    }
}
