//! Kernel splicing of established TCP flows: once the real server is connected (and the PROXY
//! header written), both sockets go into the worker's BPF socket hash (`rvs_bpf::sockmap`) and
//! the kernel moves every byte from one to the other. User space keeps what only it can do:
//! it waits for each direction's end (EOF or error, which the spliced socket still reports),
//! forwards the half-close once the kernel has handed the peer everything before it, resets
//! both sides on an error or an idle limit, and reports the kernel's counts.
//!
//! The sockets leave tokio once spliced: the worker's [`SockWatch`] set watches them for the
//! peer's FIN and errors only, so the worker does not wake while the kernel moves the data. A
//! socket the program *held* (data for user space, see [`Splicer::splice`]) is relayed with
//! full readiness instead ([`held_relay`]).

use std::io::{self, ErrorKind, Read};
use std::net::{Shutdown, SocketAddr, TcpStream as StdStream};
use std::os::fd::AsFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use rvs_bpf::sockmap::{Error, Splicer};
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::api::{CloseReason, FlowEvent};
use crate::worker::{Counters, Flow};
use crate::KernelSplice;
use rvs_bpf::sock_watch::{SockWatch, ENDED};

/// Said once per process, not once per worker.
static REPORTED: AtomicBool = AtomicBool::new(false);

/// The worker's splicer, or `None` (said once in the log) where the kernel refuses: no BPF, no
/// permission, a build without BPF objects.
pub(crate) fn load(mode: KernelSplice) -> Option<Splicer> {
    if mode == KernelSplice::Off {
        return None;
    }
    match Splicer::load() {
        Ok(s) => {
            if !REPORTED.swap(true, Relaxed) {
                tracing::info!("kernel splicing of TCP flows on (BPF sockmap)");
            }
            Some(s)
        }
        Err(e) => {
            if !REPORTED.swap(true, Relaxed) {
                if mode == KernelSplice::On {
                    tracing::warn!(error = %e, "kernel splicing refused; TCP flows are relayed in user space");
                } else {
                    tracing::info!(error = %e, "kernel splicing unavailable; TCP flows are relayed in user space");
                }
            }
            None
        }
    }
}

/// How [`start`] left a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Started {
    /// Not spliced (no splicer, or the kernel refused these sockets): relay in user space.
    No,
    /// Spliced.
    Spliced {
        /// The program held the first socket already (data reached it before its peer was in
        /// the hash): that direction is relayed by user space.
        held: bool,
    },
}

/// Puts the flow's two sockets into the kernel splicer.
pub(crate) fn start(flow: &Flow, client: &TcpStream, server: &TcpStream) -> Started {
    let w = flow.worker();
    let mut sp = w.splicer.borrow_mut();
    let Some(sp) = sp.as_mut() else {
        return Started::No;
    };
    match sp.splice(client.as_fd(), server.as_fd()) {
        Ok(pair) => {
            Counters::inc(&w.counters.kernel_spliced);
            flow.kernel_spliced(pair);
            // Only the socket that joined the hash first can be held by the insertion window:
            // the second one's data waited in its queue until the program had both. When
            // `splice` returns, the program has run for everything that arrived before (its
            // last kick took the socket lock the receive path holds while it runs). A lookup
            // failure counts as held: the relay with full readiness is always correct.
            let held = sp.held(pair.a).unwrap_or(true);
            Started::Spliced { held }
        }
        Err(e) => {
            tracing::debug!(error = %e, "kernel splice refused for a flow; user-space relay");
            Started::No
        }
    }
}

/// Resets both sockets if dropped while armed (the flow's task was dropped: the drain at
/// shutdown ran out), as [`crate::tcp::ResetOnDrop`] does for tokio's sockets.
struct ResetBoth<'a>(Option<(&'a StdStream, &'a StdStream)>);

impl Drop for ResetBoth<'_> {
    fn drop(&mut self) {
        if let Some((a, b)) = self.0 {
            crate::tcp::reset(a);
            crate::tcp::reset(b);
        }
    }
}

/// Carries a spliced flow to its end with its sockets out of tokio, and ends it as
/// [`crate::tcp::serve`] does (half-closes, reset on error, idle limits, `Closed`). The caller
/// hands over its only strong references to the sockets.
pub(crate) async fn serve(
    flow: &Flow,
    client: Rc<TcpStream>,
    server: Rc<TcpStream>,
    held: bool,
    limits: (Option<Duration>, Option<Duration>),
    addrs: (SocketAddr, SocketAddr),
) {
    let taken = |s: Rc<TcpStream>| Rc::into_inner(s).map(TcpStream::into_std);
    let (Some(Ok(client)), Some(Ok(server))) = (taken(client), taken(server)) else {
        // Not reachable (the caller held the only strong references; deregistering from the
        // reactor does not fail on a live socket): what could be taken is closed; say reset.
        Counters::inc(&flow.worker().counters.resets);
        flow.close(CloseReason::Reset);
        return;
    };
    let (client, server) = (Rc::new(client), Rc::new(server));
    // The flow's packet counts now read these sockets (the counts carry on).
    flow.count_segments(&client, &server);
    let mut abort = ResetBoth(Some((&client, &server)));
    let watch = flow.worker().splice_watch.borrow().clone();
    let relay = async {
        match watch {
            Some(watch) if !held => watched(flow, &watch, &client, &server).await,
            _ => held_relay(flow, &client, &server, [true, true], None).await,
        }
    };
    let mut idled = false;
    let mut result = Ok(());
    tokio::select! {
        r = relay => result = r,
        () = crate::tcp::idle_watch(flow, limits.0, limits.1) => idled = true,
    }
    if crate::tcp::finish(flow, result, idled, &*client, &*server, addrs) {
        abort.0 = None;
    }
}

/// The relay of a cleanly spliced flow: waits for each direction's end (the peer's FIN or an
/// error) in the watch set, then passes it on.
async fn watched(
    flow: &Flow,
    watch: &SockWatch,
    client: &StdStream,
    server: &StdStream,
) -> io::Result<()> {
    let reg = watch.watch(client, server)?;
    // Side 0: the client socket, the end of client → server; side 1 the server socket.
    let mut open = [true, true];
    let mut probe = [0u8; 512];
    while open != [false, false] {
        let ev = reg.next().await;
        for side in 0..2 {
            if !open[side] || ev[side] & ENDED == 0 {
                continue;
            }
            let (from, to) = if side == 0 {
                (client, server)
            } else {
                (server, client)
            };
            let n = match (&*from).read(&mut probe) {
                Ok(n) => n,
                // The edge came before the end (e.g. a FIN still behind data in flight).
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    continue
                }
                Err(e) => return Err(e),
            };
            if n > 0 {
                // Data for user space after all: the program held this socket (its peer left
                // the hash while data still came). Full readiness for the rest of the flow.
                reg.remove(client, server);
                return held_relay(flow, client, server, open, Some((side, &probe[..n]))).await;
            }
            end_direction(flow, to, side == 0).await?;
            open[side] = false;
        }
    }
    Ok(())
}

/// The relay of a spliced flow whose sockets may give data to user space (the program *held*
/// one): both sockets registered with tokio for full readiness — through duplicates of their
/// descriptors, closed when this returns — and each open direction read until its end.
/// `first` is data already read from side 0 (client) or 1 (server).
async fn held_relay(
    flow: &Flow,
    client: &StdStream,
    server: &StdStream,
    open: [bool; 2],
    first: Option<(usize, &[u8])>,
) -> io::Result<()> {
    let c = TcpStream::from_std(client.try_clone()?)?;
    let s = TcpStream::from_std(server.try_clone()?)?;
    let first_of = |side: usize| first.filter(|f| f.0 == side).map_or(&[][..], |f| f.1);
    let inbound = async {
        if open[0] {
            held_direction(flow, &c, &s, server, true, first_of(0)).await
        } else {
            Ok(())
        }
    };
    let outbound = async {
        if open[1] {
            held_direction(flow, &s, &c, client, false, first_of(1)).await
        } else {
            Ok(())
        }
    };
    tokio::try_join!(inbound, outbound)?;
    Ok(())
}

/// One direction of [`held_relay`]: until the program holds it, its reads find only the end;
/// once held, what it reads is relayed after what the kernel redirected before the hold, so
/// nothing is overtaken. `to_std` is `to`'s own socket (the flow's).
async fn held_direction(
    flow: &Flow,
    from: &TcpStream,
    to: &TcpStream,
    to_std: &StdStream,
    inbound: bool,
    first: &[u8],
) -> io::Result<()> {
    let mut probe = [0u8; 512];
    let mut big: Vec<u8> = Vec::new();
    if !first.is_empty() {
        flushed(flow, to_std, inbound).await?;
        flow.count_bytes(inbound, first.len());
        crate::tcp::write_all(to, first).await?;
        big = vec![0u8; flow.worker().cfg.buffer_size];
    }
    loop {
        from.ready(Interest::READABLE).await?;
        let held = !big.is_empty();
        let buf: &mut [u8] = if held { &mut big } else { &mut probe };
        let n = match from.try_io(Interest::READABLE, || (&*SockRef::from(from)).read(buf)) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        if !held {
            // What the kernel redirected before the hold goes out first.
            flushed(flow, to_std, inbound).await?;
        }
        flow.count_bytes(inbound, n);
        crate::tcp::write_all(to, if held { &big[..n] } else { &probe[..n] }).await?;
        if !held {
            big = vec![0u8; flow.worker().cfg.buffer_size];
        }
    }
    end_direction(flow, to_std, inbound).await
}

/// A direction has ended (its source read EOF): once `to` has taken everything the kernel
/// redirected toward it, pass the half-close on.
async fn end_direction(flow: &Flow, to: &StdStream, inbound: bool) -> io::Result<()> {
    flushed(flow, to, inbound).await?;
    if !flow.half_closed() {
        SockRef::from(to).shutdown(Shutdown::Write)?;
    }
    // else the other direction has ended and was flushed: closing both sockets sends the FIN.
    flow.event(if inbound {
        FlowEvent::ClientFin
    } else {
        FlowEvent::ServerFin
    });
    Ok(())
}

/// Waits until `to` has taken everything the kernel redirected toward it (the kernel hands it
/// over from a work queue, so it can lag behind the sender's FIN). Polled, backing off from
/// 1 ms to 20 ms: this runs once per direction and most often finds nothing pending. A peer
/// that stops reading keeps it waiting, as a blocked write would the user-space relay; the
/// idle limit ends such a flow.
async fn flushed(flow: &Flow, to: &StdStream, inbound: bool) -> io::Result<()> {
    let mut wait = Duration::from_millis(1);
    loop {
        let pending = {
            let sp = flow.worker().splicer.borrow();
            let (Some(sp), Some(pair)) = (sp.as_ref(), flow.kernel_pair()) else {
                return Ok(());
            };
            // The pair is (client, server): data from the client goes toward the server.
            match sp.unsent(&pair, to.as_fd(), inbound) {
                Ok(n) => n,
                Err(Error::Io(e)) => return Err(e),
                Err(e) => return Err(io::Error::other(e)),
            }
        };
        if pending == 0 {
            return Ok(());
        }
        if let Some(e) = to.take_error()? {
            return Err(e);
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(20));
    }
}
