//! The sync daemon's UDP multicast sockets, set up as the kernel sets up its own
//! (`docs/internals/sync.md`): the master sends from the interface with loopback off and the
//! configured TTL; the backup binds the group and port, on the interface, and joins the group.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

/// What the daemon needs to know about its interface.
#[derive(Clone, Debug)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// Index.
    pub index: u32,
    /// MTU.
    pub mtu: u32,
    /// First IPv4 address (the kernel's "primary" address the master binds to).
    pub ipv4: Option<Ipv4Addr>,
}

impl Interface {
    /// Look `name` up; `None` if the interface does not exist (ENODEV).
    pub fn lookup(name: &str) -> Option<Interface> {
        let index = nix::net::if_::if_nametoindex(name).ok()?;
        let mtu = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1500);
        let ipv4 = nix::ifaddrs::getifaddrs().ok().and_then(|mut it| {
            it.find_map(|a| {
                if a.interface_name != name {
                    return None;
                }
                a.address
                    .as_ref()
                    .and_then(|s| s.as_sockaddr_in().map(|v4| v4.ip()))
            })
        });
        Some(Interface {
            name: name.to_string(),
            index,
            mtu,
            ipv4,
        })
    }
}

/// A UDP socket of the group's family, bound to the interface.
fn udp_on(ifc: &Interface, group: IpAddr) -> io::Result<Socket> {
    let dom = if group.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(dom, Type::DGRAM, Some(Protocol::UDP))?;
    s.bind_device(Some(ifc.name.as_bytes()))?;
    Ok(s)
}

/// A socket that sends to the group out of the interface, as the kernel's master sends: from
/// the interface's primary IPv4 address (IPv6: any address, ephemeral port), multicast
/// loopback off, `ttl` hops.
fn multicast_sender(ifc: &Interface, group: IpAddr, ttl: u8) -> io::Result<Socket> {
    let s = udp_on(ifc, group)?;
    let src = match group {
        IpAddr::V4(_) => {
            let src = ifc.ipv4.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    format!("interface {} has no IPv4 address", ifc.name),
                )
            })?;
            s.set_multicast_if_v4(&src)?;
            s.set_multicast_loop_v4(false)?;
            s.set_multicast_ttl_v4(u32::from(ttl))?;
            IpAddr::V4(src)
        }
        IpAddr::V6(_) => {
            s.set_multicast_if_v6(ifc.index)?;
            s.set_multicast_loop_v6(false)?;
            s.set_multicast_hops_v6(u32::from(ttl))?;
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        }
    };
    s.bind(&SockAddr::from(SocketAddr::new(src, 0)))?;
    Ok(s)
}

/// The master's socket, connected to `group:port`.
pub fn master(
    ifc: &Interface,
    group: IpAddr,
    port: u16,
    ttl: u8,
    sndbuf: u32,
) -> io::Result<UdpSocket> {
    let s = multicast_sender(ifc, group, ttl)?;
    if sndbuf > 0 {
        s.set_send_buffer_size(sndbuf as usize)?;
    }
    s.connect(&SockAddr::from(SocketAddr::new(group, port)))?;
    Ok(s.into())
}

/// The backup's socket, bound to `group:port` on the interface and joined to the group.
pub fn backup(ifc: &Interface, group: IpAddr, port: u16, rcvbuf: u32) -> io::Result<UdpSocket> {
    let s = udp_on(ifc, group)?;
    s.set_reuse_address(true)?;
    if rcvbuf > 0 {
        s.set_recv_buffer_size(rcvbuf as usize)?;
    }
    match group {
        IpAddr::V4(g) => {
            s.join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(ifc.index))?;
        }
        IpAddr::V6(g) => {
            s.join_multicast_v6(&g, ifc.index)?;
        }
    }
    s.bind(&SockAddr::from(SocketAddr::new(group, port)))?;
    Ok(s.into())
}

/// The master's resync listener: bound to `group:port` (the resync port) on the interface and
/// joined, like a backup's socket; its answers go unicast from it to the asker.
pub fn resync_listener(ifc: &Interface, group: IpAddr, port: u16) -> io::Result<UdpSocket> {
    let s = backup(ifc, group, port, 0)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// A backup's resync socket: sends the request to `group:port` out of the interface and
/// receives the master's unicast answer on its own address and an ephemeral port.
pub fn resync_asker(ifc: &Interface, group: IpAddr, ttl: u8) -> io::Result<UdpSocket> {
    let s = multicast_sender(ifc, group, ttl)?;
    // A whole paced burst fits while the applying thread holds a shard lock.
    s.set_recv_buffer_size(4 << 20)?;
    Ok(s.into())
}
