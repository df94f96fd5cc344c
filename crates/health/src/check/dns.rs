//! DNS_CHECK (docs/internals/keepalived.md#checkers-and-their-timers): one UDP query of `type` for `name` with RD set and a random id;
//! success = a reply with the same id, QR set and RCODE 0.

use std::time::Duration;

use socket2::{Protocol, Type};

use super::{net, CheckContext, MiscWeight};
use crate::config::DnsCheck;
use crate::error::{Error, Result};

/// Encode the query message.
pub(crate) fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>> {
    let mut m = Vec::with_capacity(32 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    m.extend_from_slice(&[0; 6]); // AN, NS, AR
    let name = name.strip_suffix('.').unwrap_or(name);
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(Error::Dns(format!("invalid name {name:?}")));
            }
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes()); // IN
    Ok(m)
}

pub(crate) async fn check(
    d: &DnsCheck,
    timeout: Duration,
    ctx: &CheckContext,
) -> Result<Option<MiscWeight>> {
    let id = ctx.random.next_u64() as u16;
    let q = query(id, &d.name, d.qtype.code())?;
    let sock = net::dgram_socket(&d.connect, Type::DGRAM, Protocol::UDP, d.connect.connect)
        .map_err(Error::io("DNS socket"))?;
    net::step(timeout, "DNS send", sock.send(&q)).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Err(_) => return Err(Error::Timeout("DNS reply")),
            Ok(r) => r.map_err(Error::io("DNS receive"))?,
        };
        // Too short, another id (a late answer to an earlier query) or not a response (QR
        // clear): not ours, keep waiting until the timeout, like keepalived.
        if n < 12 || buf[..2] != id.to_be_bytes() || buf[2] & 0x80 == 0 {
            continue;
        }
        let rcode = buf[3] & 0x0f;
        return if rcode == 0 {
            Ok(None)
        } else {
            Err(Error::Dns(format!("RCODE {rcode}")))
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding() {
        let q = query(0x1234, "example.org.", 1).unwrap();
        assert_eq!(&q[..12], &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..], b"\x07example\x03org\x00\x00\x01\x00\x01");
        let root = query(1, ".", 6).unwrap();
        assert_eq!(&root[12..], &[0, 0, 6, 0, 1]);
        assert!(query(1, "a..b", 1).is_err());
    }
}
