//! Datagrams in batches: one `recvmmsg` takes up to [`SLOTS`] datagrams off a socket, one
//! `sendmmsg` sends a batch to one address. Under load this divides the system calls per
//! datagram by up to [`SLOTS`]; with a single datagram waiting it costs the same as
//! `recvfrom`/`sendto`.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams per batch.
pub(crate) const SLOTS: usize = 16;
/// Room per datagram: the largest UDP payload, so nothing is ever truncated.
const SLOT: usize = 65536;

/// One worker's batch buffers (1 MiB) and message headers; borrowed between awaits only.
pub(crate) struct Batch {
    bufs: Box<[u8]>,
    lens: [usize; SLOTS],
    from: [Option<SocketAddr>; SLOTS],
    n: usize,
    rx: MultiHeaders<SockaddrStorage>,
    tx: MultiHeaders<SockaddrStorage>,
}

impl Batch {
    pub fn new() -> Self {
        Batch {
            bufs: vec![0u8; SLOTS * SLOT].into_boxed_slice(),
            lens: [0; SLOTS],
            from: [None; SLOTS],
            n: 0,
            rx: MultiHeaders::preallocate(SLOTS, None),
            tx: MultiHeaders::preallocate(SLOTS, None),
        }
    }

    /// Datagram `i` of the batch and its source address.
    pub fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        (&self.bufs[i * SLOT..i * SLOT + self.lens[i]], self.from[i])
    }

    /// Receives what is waiting on `sock`, up to [`SLOTS`] datagrams (WouldBlock: none).
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        self.n = 0;
        let Batch {
            bufs,
            lens,
            from,
            n,
            rx,
            ..
        } = self;
        let mut chunks = bufs.chunks_mut(SLOT);
        let mut slices: [[IoSliceMut<'_>; 1]; SLOTS] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
        let got = sock.try_io(Interest::READABLE, || {
            let res = recvmmsg(
                sock.as_raw_fd(),
                rx,
                slices.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(io::Error::from)?;
            let mut k = 0;
            for r in res {
                lens[k] = r.bytes;
                from[k] = r.address.as_ref().and_then(to_socket_addr);
                k += 1;
            }
            *n = k;
            if k < SLOTS {
                // A short batch emptied the queue (recvmmsg with MSG_DONTWAIT stops early only
                // then): clear the readiness now instead of paying one more call for EAGAIN.
                // The next datagram raises a new edge in the reactor's edge-triggered epoll.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(k)
        });
        match got {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && *n > 0 => Ok(*n),
            r => r,
        }
    }

    /// Sends the datagrams of the last [`Batch::recv`] to `to` from `sock` with one `sendmmsg`;
    /// returns how many the kernel took (the rest are dropped: a full socket buffer, as for
    /// `sendto`).
    pub fn send_to(&mut self, sock: &UdpSocket, to: SocketAddr) -> io::Result<usize> {
        let n = self.n;
        if n == 0 {
            return Ok(0);
        }
        let dest = SockaddrStorage::from(to);
        let addrs = [Some(dest); SLOTS];
        let slices: Vec<[IoSlice<'_>; 1]> = (0..n)
            .map(|i| [IoSlice::new(&self.bufs[i * SLOT..i * SLOT + self.lens[i]])])
            .collect();
        let tx = &mut self.tx;
        let res = sendmmsg(
            sock.as_raw_fd(),
            tx,
            slices.iter(),
            &addrs[..n],
            [],
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        Ok(res.count())
    }
}

fn to_socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    s.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_is_received_and_sent_in_one_call_each() {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for i in 0..5u8 {
            a.send_to(&vec![i; 100 + usize::from(i)], b.local_addr().unwrap())
                .await
                .unwrap();
        }
        let mut batch = Batch::new();
        b.readable().await.unwrap();
        let mut got = 0;
        for _ in 0..100 {
            match batch.recv(&b) {
                Ok(n) => got = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            if got == 5 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(got, 5);
        for i in 0..5u8 {
            let (d, from) = batch.get(usize::from(i));
            assert_eq!(d, &vec![i; 100 + usize::from(i)][..]);
            assert_eq!(from, Some(a.local_addr().unwrap()));
        }
        assert_eq!(batch.send_to(&b, c.local_addr().unwrap()).unwrap(), 5);
        let mut buf = [0u8; 200];
        for i in 0..5u8 {
            let (n, from) = c.recv_from(&mut buf).await.unwrap();
            assert_eq!((n, from), (100 + usize::from(i), b.local_addr().unwrap()));
        }
    }
}
