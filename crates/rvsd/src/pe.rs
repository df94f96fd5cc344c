//! The balancer's side of the content persistence engines (`--pe cookie[:NAME]`,
//! `cookie-learn:NAME`, `header:NAME`, `sni`, and `sip` on TCP): which key a request carries,
//! the engine cookie's keyed hash, and the calls into the director's template machinery
//! (`rvs_core::director::pe`, called from [`crate::balancer`]). The proxy
//! (`rvs_proxy::pe_relay`) reads and frames the bytes.
//!
//! # The engine cookie
//!
//! `--pe cookie` gives the client a cookie whose value is a keyed hash of the service and the
//! real server (two SipHash-2-4 tags under a 256-bit key drawn from the OS when the daemon
//! starts, written as 32 hex digits). It names the server without saying which one (no address
//! in it), and without the key nobody can compute the value for a server: a client cannot
//! choose its server, aim all its requests at one server, or learn the servers' addresses. A
//! value that matches no current server of the service (forged, from another daemon, from
//! before a restart, or for a deleted server) is ignored: the request is scheduled normally
//! and the response carries a fresh cookie. It does not protect against replay: a cookie
//! copied to another client sends that client to the same server, which is the point; it is
//! not a session secret and carries no user identity.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::OnceLock;

use rvs_core::hash::siphash;
use rvs_core::service::PeKind;
use rvs_core::{Protocol, ServiceKey};
use rvs_proxy::http::cookie;
use rvs_proxy::Inspect;

use crate::clock::os_random_u64;

/// The keyed hash behind engine cookies.
pub struct CookieKey {
    k: [u64; 4],
}

impl CookieKey {
    /// A key from these words (tests); the daemon uses [`CookieKey::daemon`].
    pub fn new(k: [u64; 4]) -> Self {
        CookieKey { k }
    }

    /// The daemon's key: random, drawn once per process, never written anywhere.
    pub fn daemon() -> &'static CookieKey {
        static KEY: OnceLock<CookieKey> = OnceLock::new();
        KEY.get_or_init(|| {
            CookieKey::new([
                os_random_u64(),
                os_random_u64(),
                os_random_u64(),
                os_random_u64(),
            ])
        })
    }

    /// The cookie value naming real server `addr:port` of service `svc`.
    pub fn value(&self, svc: &ServiceKey, addr: IpAddr, port: u16) -> String {
        let v = self.value_bytes(svc, addr, port);
        String::from_utf8_lossy(&v).into_owned()
    }

    /// [`CookieKey::value`] as bytes on the stack: it is computed for every request of a
    /// cookie service (verifying the request's cookie, deciding on `Set-Cookie`), so no heap
    /// and no formatting machinery.
    pub fn value_bytes(&self, svc: &ServiceKey, addr: IpAddr, port: u16) -> [u8; 32] {
        const TAG: &[u8] = b"rvs engine cookie v1\0";
        let mut m = [0u8; 64];
        m[..TAG.len()].copy_from_slice(TAG);
        let mut n = TAG.len();
        let mut put = |b: &[u8]| {
            m[n..n + b.len()].copy_from_slice(b);
            n += b.len();
        };
        if let ServiceKey::Addr { proto, addr, port } = svc {
            put(&[proto.number()]);
            put(&v6(*addr));
            put(&port.to_be_bytes());
        }
        put(&v6(addr));
        put(&port.to_be_bytes());
        let a = siphash(2, 4, self.k[0], self.k[1], &m[..n]);
        let b = siphash(2, 4, self.k[2], self.k[3], &m[..n]);
        let mut out = [0u8; 32];
        for (i, word) in [a, b].into_iter().enumerate() {
            for j in 0..16 {
                let nibble = (word >> (60 - 4 * j)) & 0xf;
                out[i * 16 + j] = b"0123456789abcdef"[nibble as usize];
            }
        }
        out
    }

    /// The real server (of `dests`) whose value `value` is, if any. Compares without early
    /// exit, so the time taken does not tell how much of a guess was right.
    pub fn verify(
        &self,
        svc: &ServiceKey,
        value: &[u8],
        dests: impl Iterator<Item = (IpAddr, u16)>,
    ) -> Option<(IpAddr, u16)> {
        if value.len() != 32 {
            return None;
        }
        let mut found = None;
        for (addr, port) in dests {
            let v = self.value_bytes(svc, addr, port);
            let diff = v.iter().zip(value).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some((addr, port));
            }
        }
        found
    }
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// Longest key a template holds (the kernel's `IP_VS_PEDATA_MAXLEN`); a longer value (a long
/// header) is replaced by a 128-bit digest, marked by a leading `~`.
pub fn template_key(data: &[u8]) -> Cow<'_, [u8]> {
    if data.len() <= rvs_core::pe_sip::PEDATA_MAXLEN {
        return Cow::Borrowed(data);
    }
    // Unkeyed is enough here: the digest only has to be stable and spread well; a collision
    // would put two users on one server, which anybody can do by sending the same value.
    let a = siphash(2, 4, 0x7276_735f_6b65_7931, 0, data);
    let b = siphash(2, 4, 0x7276_735f_6b65_7932, 0, data);
    Cow::Owned(format!("~{a:016x}{b:016x}").into_bytes())
}

/// What the proxy must read before a flow of a service with engine `pe` can be scheduled;
/// `None` when it can be scheduled now (`first` is the flow's first message if known).
pub fn inspect_of(pe: &PeKind, proto: Protocol, first: Option<&[u8]>) -> Option<Inspect> {
    match pe {
        PeKind::Sip if proto == Protocol::Tcp && first.is_none() => Some(Inspect::FirstData),
        PeKind::Sip => None,
        PeKind::Sni => Some(Inspect::TlsHello),
        PeKind::Cookie(_) | PeKind::CookieLearn(_) | PeKind::Header(_) => Some(Inspect::Http),
    }
}

/// Why a service cannot use engine `pe` on the plane that serves it, if it cannot; the
/// message names the engine. `packet_plane`: the packet plane serves the service.
pub fn unusable(
    pe: &PeKind,
    key: &ServiceKey,
    persistent: bool,
    packet_plane: bool,
) -> Option<String> {
    let name = pe.name();
    if !pe.content_only() {
        return None;
    }
    if !persistent {
        return Some(format!(
            "persistence engine {name} needs a persistent service (-p / persistence_timeout)"
        ));
    }
    match key {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            port,
            ..
        } if *port != 0 => {}
        _ => {
            return Some(format!(
                "persistence engine {name} reads TCP streams: it needs a TCP service with a port"
            ))
        }
    }
    if packet_plane {
        return Some(format!(
            "persistence engine {name} reads {} and only the socket proxy sees those; this \
             service's VIP is served by the packet data plane (use a loopback VIP, or run rvsd \
             without --interface)",
            if pe.is_http() {
                "HTTP requests"
            } else {
                "TLS ClientHellos"
            }
        ));
    }
    if let PeKind::Cookie(n) | PeKind::CookieLearn(n) = pe {
        if !cookie::valid_name(n) {
            return Some(format!("persistence engine {name}: invalid cookie name"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn svc() -> ServiceKey {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 80,
        }
    }

    #[test]
    fn cookie_names_one_server_and_depends_on_the_key() {
        let k = CookieKey::new([1, 2, 3, 4]);
        let a = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 80);
        let b = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 80);
        // The stack-built value is the hex of the two keyed hashes, as it always was.
        let mut m = b"rvs engine cookie v1\0".to_vec();
        if let ServiceKey::Addr { proto, addr, port } = svc() {
            m.push(proto.number());
            m.extend_from_slice(&v6(addr));
            m.extend_from_slice(&port.to_be_bytes());
        }
        m.extend_from_slice(&v6(a.0));
        m.extend_from_slice(&u16::to_be_bytes(a.1));
        let (h1, h2) = (siphash(2, 4, 1, 2, &m), siphash(2, 4, 3, 4, &m));
        assert_eq!(k.value(&svc(), a.0, a.1), format!("{h1:016x}{h2:016x}"));
        let va = k.value(&svc(), a.0, a.1);
        assert_eq!(va.len(), 32);
        assert!(!va.contains("10"), "no address in the value: {va}");
        assert_eq!(k.verify(&svc(), va.as_bytes(), [a, b].into_iter()), Some(a));
        assert_eq!(k.verify(&svc(), va.as_bytes(), [b].into_iter()), None);
        let other = CookieKey::new([1, 2, 3, 5]);
        assert_eq!(
            other.verify(&svc(), va.as_bytes(), [a, b].into_iter()),
            None
        );
        let mut forged = va.clone().into_bytes();
        forged[31] = if forged[31] == b'0' { b'1' } else { b'0' };
        assert_eq!(k.verify(&svc(), &forged, [a, b].into_iter()), None);
    }

    #[test]
    fn long_keys_are_digested() {
        assert_eq!(&*template_key(b"short"), b"short");
        let long = vec![b'x'; 300];
        let d = template_key(&long);
        assert_eq!(d.len(), 33);
        assert_eq!(d, template_key(&long));
    }

    #[test]
    fn engines_are_refused_where_they_cannot_work() {
        let c = PeKind::from_name("cookie").unwrap();
        assert!(unusable(&c, &svc(), true, false).is_none());
        let e = unusable(&c, &svc(), true, true).unwrap();
        assert!(
            e.contains("cookie:RVSID") && e.contains("packet data plane"),
            "{e}"
        );
        assert!(unusable(&c, &svc(), false, false).unwrap().contains("-p"));
        let udp = ServiceKey::Addr {
            proto: Protocol::Udp,
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 80,
        };
        assert!(unusable(&c, &udp, true, false).is_some());
        assert!(unusable(&PeKind::Sip, &udp, false, true).is_none());
    }
}
