//! UDP_CHECK (docs/internals/keepalived.md#checkers-and-their-timers): send `payload`; an ICMP error (seen as ECONNREFUSED on the
//! connected socket) fails the check. Without `require_reply` silence until `connect_timeout`
//! is success; with it a reply must arrive, match the required bytes (over the shorter of the
//! two, like keepalived) and have a length in `[min_reply_length, max_reply_length]`.

use std::io::ErrorKind;
use std::time::Duration;

use socket2::{Protocol, Type};

use super::{net, MiscWeight};
use crate::config::UdpCheck;
use crate::error::{Error, Result};

pub(crate) async fn check(u: &UdpCheck, timeout: Duration) -> Result<Option<MiscWeight>> {
    let sock = net::dgram_socket(&u.connect, Type::DGRAM, Protocol::UDP, u.connect.connect)
        .map_err(Error::io("UDP socket"))?;
    match tokio::time::timeout(timeout, sock.send(&u.payload)).await {
        Err(_) => return Err(Error::Timeout("UDP send")),
        Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => {
            return Err(Error::Udp("ICMP port unreachable".into()))
        }
        Ok(r) => r.map_err(Error::io("UDP send"))?,
    };
    let mut buf = vec![0u8; 65536];
    let n = match tokio::time::timeout(timeout, sock.recv(&mut buf)).await {
        Err(_) => {
            return match u.require_reply {
                None => Ok(None),
                Some(_) => Err(Error::Udp("no reply".into())),
            }
        }
        Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => {
            return Err(Error::Udp("ICMP port unreachable".into()))
        }
        Ok(r) => r.map_err(Error::io("UDP receive"))?,
    };
    let reply = &buf[..n];
    if n < u.min_reply_length || u.max_reply_length.is_some_and(|m| n > m) {
        return Err(Error::Udp(format!("reply length {n} out of range")));
    }
    if let Some(want) = &u.require_reply {
        // keepalived compares only the shorter of the reply and the expected bytes
        // (check_udp.c `check_udp_reply`); use min_reply_length to insist on all of them.
        let n = reply.len().min(want.len());
        if reply[..n] != want[..n] {
            return Err(Error::Udp("reply data mismatch".into()));
        }
    }
    Ok(None)
}
