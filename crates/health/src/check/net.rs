//! Socket set-up shared by the network checkers: `bindto`, `bind_port`, `bind_if`, `fwmark`
//! (docs/internals/keepalived.md#checkers-and-their-timers common keywords).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use crate::config::ConnectOpts;
use crate::error::{Error, Result};

fn local_addr(o: &ConnectOpts) -> Option<SocketAddr> {
    if o.bindto.is_none() && o.bind_port.is_none() {
        return None;
    }
    let ip = o.bindto.unwrap_or(if o.connect.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    });
    Some(SocketAddr::new(ip, o.bind_port.unwrap_or(0)))
}

fn apply_common(s: SockRef<'_>, o: &ConnectOpts) -> Result<()> {
    if let Some(mark) = o.fwmark {
        s.set_mark(mark)
            .map_err(Error::io("setsockopt SO_MARK (fwmark)"))?;
    }
    if let Some(dev) = &o.bind_if {
        s.bind_device(Some(dev.as_bytes()))
            .map_err(Error::io("setsockopt SO_BINDTODEVICE (bind_if)"))?;
    }
    Ok(())
}

/// Connect a TCP stream within `timeout`, from `bindto`/`bind_port` if given.
pub(crate) async fn tcp_connect(o: &ConnectOpts, timeout: Duration) -> Result<TcpStream> {
    let sock = if o.connect.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(Error::io("socket"))?;
    apply_common(SockRef::from(&sock), o)?;
    if let Some(local) = local_addr(o) {
        sock.set_reuseaddr(true)
            .map_err(Error::io("setsockopt SO_REUSEADDR"))?;
        sock.bind(local)
            .map_err(Error::io("bind (bindto/bind_port)"))?;
    }
    match tokio::time::timeout(timeout, sock.connect(o.connect)).await {
        Err(_) => Err(Error::ConnectTimeout(o.connect)),
        Ok(r) => r.map_err(Error::io("connect")),
    }
}

/// A connected datagram socket of the given type/protocol (UDP, or ICMP for PING_CHECK),
/// wrapped for tokio. `connect_to` is the peer (port 0 for ICMP).
pub(crate) fn dgram_socket(
    o: &ConnectOpts,
    ty: Type,
    proto: Protocol,
    connect_to: SocketAddr,
) -> std::io::Result<UdpSocket> {
    let domain = if connect_to.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, ty, Some(proto))?;
    if let Some(mark) = o.fwmark {
        s.set_mark(mark)?;
    }
    if let Some(dev) = &o.bind_if {
        s.bind_device(Some(dev.as_bytes()))?;
    }
    if let Some(local) = local_addr(o) {
        s.bind(&local.into())?;
    }
    s.set_nonblocking(true)?;
    s.connect(&connect_to.into())?;
    UdpSocket::from_std(s.into())
}

/// Wrap a `timeout`-bounded I/O step.
pub(crate) async fn step<T>(
    timeout: Duration,
    what: &'static str,
    fut: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(Error::Timeout(what)),
        Ok(r) => r.map_err(Error::io(what)),
    }
}
