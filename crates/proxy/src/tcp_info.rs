//! The kernel's own counters of a TCP socket (`TCP_INFO`): segments received and sent, and the
//! time since data last arrived.
//!
//! The proxy does not see packets, but the kernel counts every segment of both of its sockets —
//! handshake, data, pure ACKs, FIN — which is what IPVS counts as packets. Reading them once when
//! a flow closes (and once per traffic interval for long flows) gives packet counts with IPVS's
//! meaning at two system calls per flow, instead of counting reads.

use std::os::fd::AsFd;

use nix::libc;
use nix::sys::socket::getsockopt;
use nix::{getsockopt_impl, sockopt_impl};

/// The leading part of the kernel's `struct tcp_info`, up to `tcpi_segs_in` (all present since
/// Linux 4.2; the kernel copies only as much as asked for, so a newer, longer struct is fine).
/// Asking for exactly this prefix keeps the read independent of how many fields the running
/// kernel has added since.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpInfoHead {
    state: u8,
    ca_state: u8,
    retransmits: u8,
    probes: u8,
    backoff: u8,
    options: u8,
    wscale: u8,
    /// `tcpi_delivery_rate_app_limited` etc.: bit fields in one byte.
    flags: u8,
    rto: u32,
    ato: u32,
    snd_mss: u32,
    rcv_mss: u32,
    unacked: u32,
    sacked: u32,
    lost: u32,
    retrans: u32,
    fackets: u32,
    last_data_sent: u32,
    last_ack_sent: u32,
    /// Milliseconds since data last arrived on this socket.
    pub last_data_recv: u32,
    last_ack_recv: u32,
    pmtu: u32,
    rcv_ssthresh: u32,
    rtt: u32,
    rttvar: u32,
    snd_ssthresh: u32,
    snd_cwnd: u32,
    advmss: u32,
    reordering: u32,
    rcv_rtt: u32,
    rcv_space: u32,
    total_retrans: u32,
    pacing_rate: u64,
    max_pacing_rate: u64,
    /// Bytes acknowledged by the peer (counts SYN and FIN as one byte each).
    pub bytes_acked: u64,
    bytes_received: u64,
    /// Segments sent (including retransmissions).
    pub segs_out: u32,
    /// Segments received (including pure ACKs, SYN and FIN).
    pub segs_in: u32,
}

// nix's own macro for socket options not in its list; the getsockopt is nix's (it checks that the
// kernel filled exactly the size asked for, which it always does for a prefix of its struct).
sockopt_impl!(
    TcpInfoOpt,
    GetOnly,
    libc::IPPROTO_TCP,
    libc::TCP_INFO,
    TcpInfoHead
);

/// `TCP_INFO` of `sock` (one getsockopt).
pub fn tcp_info<F: AsFd + ?Sized>(sock: &F) -> std::io::Result<TcpInfoHead> {
    getsockopt(&sock.as_fd(), TcpInfoOpt).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn the_prefix_matches_the_c_library_layout() {
        assert_eq!(
            std::mem::offset_of!(TcpInfoHead, segs_in),
            std::mem::offset_of!(libc::tcp_info, tcpi_segs_in)
        );
        assert_eq!(
            std::mem::offset_of!(TcpInfoHead, bytes_acked),
            std::mem::offset_of!(libc::tcp_info, tcpi_bytes_acked)
        );
        assert_eq!(
            std::mem::offset_of!(TcpInfoHead, last_data_recv),
            std::mem::offset_of!(libc::tcp_info, tcpi_last_data_recv)
        );
    }

    #[test]
    fn segments_of_a_known_exchange_are_counted() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut a, _) = l.accept().unwrap();
        c.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        a.read_exact(&mut buf).unwrap();
        let before = tcp_info(&a).unwrap();
        // Three more messages, each in its own segment (NODELAY, read in between).
        c.set_nodelay(true).unwrap();
        for _ in 0..3 {
            c.write_all(b"ping").unwrap();
            a.read_exact(&mut buf).unwrap();
        }
        let after = tcp_info(&a).unwrap();
        assert_eq!(after.segs_in.wrapping_sub(before.segs_in), 3, "{after:?}");
        assert!(after.last_data_recv < 10_000);
    }
}
