//! Raw protocol-112 sockets (`spec/keepalived.md` §3.2): IPv4 with `IP_HDRINCL`, so the IP
//! header goes out exactly as `rvs_vrrp::ip` writes it (TOS 0xc0, per-instance ID, TTL 255), as
//! keepalived sends it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockRef, Socket, Type};

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: i32 = 112;

/// One raw VRRP socket bound to an interface.
///
/// It is driven through `tokio::net::UdpSocket`: that type only issues `recv`/`sendto` on a
/// datagram descriptor, which is exactly what a raw socket needs, and it registers the
/// descriptor with the reactor without the (deprecated, I/O-unsafe) `AsyncFd::new`.
pub struct RawSocket {
    fd: tokio::net::UdpSocket,
    ifname: String,
    ifindex: u32,
}

impl RawSocket {
    /// An IPv4 raw socket for protocol 112 on `ifname`: header included on send, bound to the
    /// device (so multicast goes out of it and only its packets come in), multicast loop off
    /// (our own adverts are not input), multicast TTL 255 (RFC 3768 §5.1.1.3; the header we
    /// write carries it anyway).
    pub fn open_v4(ifname: &str, ifindex: u32) -> std::io::Result<RawSocket> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)))?;
        s.set_header_included_v4(true)?;
        s.bind_device(Some(ifname.as_bytes()))?;
        s.set_multicast_loop_v4(false)?;
        s.set_multicast_ttl_v4(255)?;
        s.set_multicast_if_v4(&Ipv4Addr::UNSPECIFIED)?;
        s.set_nonblocking(true)?;
        Ok(RawSocket {
            fd: tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(s))?,
            ifname: ifname.to_string(),
            ifindex,
        })
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Join multicast group `group` on the interface.
    pub fn join_v4(&self, group: Ipv4Addr) -> std::io::Result<()> {
        match SockRef::from(&self.fd)
            .join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(self.ifindex))
        {
            // Two instances with the same group on one interface.
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Ok(()),
            r => r,
        }
    }

    /// Send one packet (IPv4: with its header) to `dst`. Non-blocking: a full socket buffer
    /// drops the advert, as a lost packet would.
    pub fn send(&self, packet: &[u8], dst: IpAddr) -> std::io::Result<()> {
        self.fd
            .try_send_to(packet, SocketAddr::new(dst, 0))
            .map(|_| ())
    }

    /// Receive one packet (IPv4: with its header).
    pub async fn recv(&self) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 2048];
        let n = self.fd.recv(&mut buf).await?;
        buf.truncate(n);
        Ok(buf)
    }
}
