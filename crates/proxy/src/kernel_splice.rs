//! Kernel splicing of established TCP flows: once the real server is connected (and the PROXY
//! header written), both sockets go into the worker's BPF socket hash (`rvs_bpf::sockmap`) and
//! the kernel moves every byte from one to the other. User space keeps what only it can do:
//! it waits for each direction's end (EOF or error, which the spliced socket still reports),
//! forwards the half-close once the kernel has handed the peer everything before it, resets
//! both sides on an error or an idle limit, and reports the kernel's counts.

use std::io::{self, ErrorKind, Read};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use rvs_bpf::sockmap::{Error, Splicer};
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::api::FlowEvent;
use crate::worker::{Counters, Flow};
use crate::KernelSplice;

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

/// Puts the flow's two sockets into the kernel splicer. `false`: not spliced (no splicer, or the
/// kernel refused these sockets): relay in user space as before.
pub(crate) fn start(flow: &Flow, client: &TcpStream, server: &TcpStream) -> bool {
    let w = flow.worker();
    let mut sp = w.splicer.borrow_mut();
    let Some(sp) = sp.as_mut() else {
        return false;
    };
    match sp.splice(client.as_fd(), server.as_fd()) {
        Ok(pair) => {
            Counters::inc(&w.counters.kernel_spliced);
            flow.kernel_spliced(pair);
            true
        }
        Err(e) => {
            tracing::debug!(error = %e, "kernel splice refused for a flow; user-space relay");
            false
        }
    }
}

/// Relays a spliced flow until both directions have ended; the same outcome as the user-space
/// relay (`Ok` after two FINs, `Err` after a reset or error).
pub(crate) async fn relay(flow: &Flow, client: &TcpStream, server: &TcpStream) -> io::Result<()> {
    tokio::try_join!(
        direction(flow, client, server, true),
        direction(flow, server, client, false)
    )?;
    Ok(())
}

/// One direction: wait for its end, then pass the half-close on once `to` has taken all the
/// kernel redirected toward it.
///
/// Data read here was not redirected: the program *holds* a socket whose peer was not in the
/// hash when data arrived (the window between the two insertions of [`Splicer::splice`]), and
/// passes it and everything after it to this socket. This loop then relays the direction
/// itself, after `to` has taken what the kernel redirected before the hold, so nothing is
/// overtaken.
async fn direction(flow: &Flow, from: &TcpStream, to: &TcpStream, inbound: bool) -> io::Result<()> {
    // Reads normally find only EOF; a held direction gets a full buffer once it has data.
    let mut probe = [0u8; 512];
    let mut big: Vec<u8> = Vec::new();
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
            flushed(flow, to, inbound).await?;
        }
        flow.count_bytes(inbound, n);
        crate::tcp::write_all(to, if held { &big[..n] } else { &probe[..n] }).await?;
        if !held {
            big = vec![0u8; flow.worker().cfg.buffer_size];
        }
    }
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
async fn flushed(flow: &Flow, to: &TcpStream, inbound: bool) -> io::Result<()> {
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
