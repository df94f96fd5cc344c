//! Raw protocol-112 sockets (docs/internals/vrrp.md#on-the-wire, and the driver notes in
//! `crates/vrrp/README.md`).
//!
//! * IPv4: `IP_HDRINCL`, so the IP header goes out exactly as `rvs_vrrp::ip` writes it (TOS 0xc0,
//!   per-instance ID, TTL 255), as keepalived sends it; received packets carry their header.
//! * IPv6: the kernel writes the header. The hop limit (255 for multicast; `unicast_ttl` for
//!   unicast peers) is set on the socket, the source per packet with `IPV6_PKTINFO` (the VRRP
//!   checksum covers it, and binding the socket to it would filter out multicast input), and the
//!   received hop limit and destination come from `IPV6_RECVHOPLIMIT` / `IPV6_RECVPKTINFO`
//!   ancillary data, for `RxPacket::from_ipv6_parts`. rvs-vrrp fills in the checksum itself and
//!   verifies it on receive, so `IPV6_CHECKSUM` (which neither socket2 nor nix can set, and
//!   `unsafe` is not allowed here) is not needed: the kernel leaves raw IPv6 payloads untouched
//!   without it.

use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrIn6,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockRef, Socket, Type};
use tokio::io::Interest;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: i32 = 112;

/// One received packet.
#[derive(Debug)]
pub struct Received {
    /// IPv4: the whole packet with its header. IPv6: the VRRP message.
    pub data: Vec<u8>,
    /// IPv6 only: source, destination, hop limit.
    pub v6: Option<(Ipv6Addr, Ipv6Addr, u8)>,
}

/// One raw VRRP socket bound to an interface.
///
/// It is driven through `tokio::net::UdpSocket`: that type only issues `recv`/`sendto` on a
/// datagram descriptor, which is exactly what a raw socket needs, and it registers the
/// descriptor with the reactor without the (deprecated, I/O-unsafe) `AsyncFd::new`.
pub struct RawSocket {
    fd: tokio::net::UdpSocket,
    ifname: String,
    ifindex: u32,
    v6: bool,
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
        Self::finish(s, ifname, ifindex, false)
    }

    /// An IPv6 raw socket for protocol 112 on `ifname`: bound to the device, multicast hops
    /// 255 (RFC 5798 §5.1.2.3), multicast loop off, unicast hops `unicast_hops`, hop limit and
    /// packet info delivered with each packet.
    pub fn open_v6(ifname: &str, ifindex: u32, unicast_hops: u8) -> std::io::Result<RawSocket> {
        let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)))?;
        s.bind_device(Some(ifname.as_bytes()))?;
        s.set_multicast_loop_v6(false)?;
        s.set_multicast_hops_v6(255)?;
        s.set_multicast_if_v6(ifindex)?;
        s.set_unicast_hops_v6(u32::from(unicast_hops))?;
        setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true)?;
        setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true)?;
        Self::finish(s, ifname, ifindex, true)
    }

    fn finish(s: Socket, ifname: &str, ifindex: u32, v6: bool) -> std::io::Result<RawSocket> {
        s.set_nonblocking(true)?;
        Ok(RawSocket {
            fd: tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(s))?,
            ifname: ifname.to_string(),
            ifindex,
            v6,
        })
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Whether this is the IPv6 socket.
    pub fn is_v6(&self) -> bool {
        self.v6
    }

    /// Join multicast group `group` on the interface.
    pub fn join(&self, group: IpAddr) -> std::io::Result<()> {
        let s = SockRef::from(&self.fd);
        let r = match group {
            IpAddr::V4(g) => {
                s.join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(self.ifindex))
            }
            IpAddr::V6(g) => s.join_multicast_v6(&g, self.ifindex),
        };
        match r {
            // Two instances with the same group on one interface.
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Ok(()),
            r => r,
        }
    }

    /// Send one packet to `dst` from `src` (IPv4: `packet` has its header and `src` is in it).
    /// Non-blocking: a full socket buffer drops the advert, as a lost packet would.
    pub fn send(&self, packet: &[u8], src: IpAddr, dst: IpAddr) -> std::io::Result<()> {
        match (src, dst) {
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: s.octets(),
                    },
                    ipi6_ifindex: self.ifindex,
                };
                let to = SockaddrIn6::from(SocketAddrV6::new(d, 0, 0, self.ifindex));
                let iov = [IoSlice::new(packet)];
                let cmsg = [ControlMessage::Ipv6PacketInfo(&info)];
                self.fd.try_io(Interest::WRITABLE, || {
                    sendmsg(
                        self.fd.as_raw_fd(),
                        &iov,
                        &cmsg,
                        MsgFlags::empty(),
                        Some(&to),
                    )
                    .map_err(std::io::Error::from)
                })?;
                Ok(())
            }
            _ => self
                .fd
                .try_send_to(packet, SocketAddr::new(dst, 0))
                .map(|_| ()),
        }
    }

    /// Receive one packet.
    pub async fn recv(&self) -> std::io::Result<Received> {
        let mut buf = vec![0u8; 2048];
        if !self.v6 {
            let n = self.fd.recv(&mut buf).await?;
            buf.truncate(n);
            return Ok(Received {
                data: buf,
                v6: None,
            });
        }
        let (n, meta) = self
            .fd
            .async_io(Interest::READABLE, || {
                let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
                let mut iov = [IoSliceMut::new(&mut buf)];
                let m = recvmsg::<SockaddrIn6>(
                    self.fd.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::empty(),
                )
                .map_err(std::io::Error::from)?;
                let src = m.address.map(|a| a.ip());
                let mut dst = None;
                let mut hops = None;
                for c in m.cmsgs().map_err(std::io::Error::from)? {
                    match c {
                        ControlMessageOwned::Ipv6PacketInfo(i) => {
                            dst = Some(Ipv6Addr::from(i.ipi6_addr.s6_addr))
                        }
                        ControlMessageOwned::Ipv6HopLimit(h) => hops = u8::try_from(h).ok(),
                        _ => {}
                    }
                }
                Ok((m.bytes, src.zip(dst).zip(hops).map(|((s, d), h)| (s, d, h))))
            })
            .await?;
        buf.truncate(n);
        Ok(Received {
            data: buf,
            v6: meta,
        })
    }
}
