//! Address and port names: the libc behaviour ipvsadm inherits (`inet_aton`, `inet_ntop`,
//! `gethostbyname`, `gethostbyaddr`, `getservbyname`, `getservbyport`).
//!
//! Lookups go through the [`Names`] trait so that parsing and formatting stay pure and tests
//! can use a fixed table; [`SystemNames`] is the real thing (resolver + `/etc/services`).

use rvs_control::Protocol;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::sync::OnceLock;

/// Name lookups used by rvsadm.
pub trait Names {
    /// `gethostbyname` restricted to IPv4 (first address), for host arguments.
    fn host_to_ipv4(&self, name: &str) -> Option<Ipv4Addr>;
    /// `gethostbyaddr`: the host name of an address, if any.
    fn addr_to_host(&self, addr: IpAddr) -> Option<String>;
    /// `getservbyname(name, proto)`.
    fn service_to_port(&self, name: &str, proto: Protocol) -> Option<u16>;
    /// `getservbyport(port, proto)`.
    fn port_to_service(&self, port: u16, proto: Protocol) -> Option<String>;
}

/// No names at all: every lookup fails (what `-n` effectively sees, and a safe default).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNames;

impl Names for NoNames {
    fn host_to_ipv4(&self, _: &str) -> Option<Ipv4Addr> {
        None
    }
    fn addr_to_host(&self, _: IpAddr) -> Option<String> {
        None
    }
    fn service_to_port(&self, _: &str, _: Protocol) -> Option<u16> {
        None
    }
    fn port_to_service(&self, _: u16, _: Protocol) -> Option<String> {
        None
    }
}

/// The system resolver (via `getaddrinfo`/`getnameinfo`) and `/etc/services`, parsed by hand.
#[derive(Debug, Default)]
pub struct SystemNames {
    services: OnceLock<Services>,
}

impl SystemNames {
    /// A resolver that reads `/etc/services` on first use.
    pub fn new() -> Self {
        Self::default()
    }

    fn services(&self) -> &Services {
        self.services.get_or_init(|| {
            let text = std::fs::read_to_string("/etc/services").unwrap_or_default();
            Services::parse(&text)
        })
    }
}

impl Names for SystemNames {
    fn host_to_ipv4(&self, name: &str) -> Option<Ipv4Addr> {
        (name, 0u16)
            .to_socket_addrs()
            .ok()?
            .find_map(|sa| match sa.ip() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
    }
    fn addr_to_host(&self, addr: IpAddr) -> Option<String> {
        dns_lookup::lookup_addr(&addr).ok()
    }
    fn service_to_port(&self, name: &str, proto: Protocol) -> Option<u16> {
        self.services().by_name(name, proto)
    }
    fn port_to_service(&self, port: u16, proto: Protocol) -> Option<String> {
        self.services().by_port(port, proto).map(str::to_string)
    }
}

/// A parsed `/etc/services`.
#[derive(Debug, Default, Clone)]
pub struct Services {
    by_name: HashMap<(String, &'static str), u16>,
    by_port: HashMap<(u16, &'static str), String>,
}

fn proto_key(p: &str) -> Option<&'static str> {
    match p {
        "tcp" => Some("tcp"),
        "udp" => Some("udp"),
        "sctp" => Some("sctp"),
        _ => None,
    }
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

impl Services {
    /// Parses `/etc/services` text: `name port/proto [aliases...] [# comment]`.
    /// The first entry for a name or a port wins, as with glibc's files backend.
    pub fn parse(text: &str) -> Services {
        let mut s = Services::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(name), Some(pp)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((port, proto)) = pp.split_once('/') else {
                continue;
            };
            let (Ok(port), Some(proto)) = (port.parse::<u16>(), proto_key(proto)) else {
                continue;
            };
            s.by_port
                .entry((port, proto))
                .or_insert_with(|| name.to_string());
            for n in std::iter::once(name).chain(words) {
                s.by_name.entry((n.to_string(), proto)).or_insert(port);
            }
        }
        s
    }

    /// `getservbyname`.
    pub fn by_name(&self, name: &str, proto: Protocol) -> Option<u16> {
        self.by_name
            .get(&(name.to_string(), proto_name(proto)))
            .copied()
    }

    /// `getservbyport`.
    pub fn by_port(&self, port: u16, proto: Protocol) -> Option<&str> {
        self.by_port
            .get(&(port, proto_name(proto)))
            .map(String::as_str)
    }
}

/// glibc `inet_aton`: accepts `a`, `a.b`, `a.b.c`, `a.b.c.d`, each part decimal, octal
/// (leading `0`) or hex (`0x`), trailing whitespace ends the address.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    // glibc stops at the first whitespace character and ignores the rest.
    let s = match s.find(|c: char| c.is_ascii_whitespace()) {
        Some(p) => &s[..p],
        None => s,
    };
    let mut parts: Vec<u64> = Vec::with_capacity(4);
    for part in s.split('.') {
        if parts.len() == 4 {
            return None;
        }
        parts.push(parse_c_number(part)?);
    }
    let v: u64 = match parts.as_slice() {
        [a] => {
            if *a > 0xFFFF_FFFF {
                return None;
            }
            *a
        }
        [a, b] => {
            if *a > 0xFF || *b > 0xFF_FFFF {
                return None;
            }
            (a << 24) | b
        }
        [a, b, c] => {
            if *a > 0xFF || *b > 0xFF || *c > 0xFFFF {
                return None;
            }
            (a << 24) | (b << 16) | c
        }
        [a, b, c, d] => {
            if *a > 0xFF || *b > 0xFF || *c > 0xFF || *d > 0xFF {
                return None;
            }
            (a << 24) | (b << 16) | (c << 8) | d
        }
        _ => return None,
    };
    Some(Ipv4Addr::from(v as u32))
}

/// One `inet_aton` component (`strtoul` with base 0, digits required).
fn parse_c_number(p: &str) -> Option<u64> {
    if p.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        (h, 16)
    } else if p.len() > 1 && p.starts_with('0') {
        (&p[1..], 8)
    } else {
        (p, 10)
    };
    if digits.is_empty() {
        // "0x" alone is 0 for glibc's inet_aton.
        return if radix == 16 { Some(0) } else { None };
    }
    let mut v: u64 = 0;
    for c in digits.chars() {
        let d = c.to_digit(radix)? as u64;
        v = v.checked_mul(radix as u64)?.checked_add(d)?;
        if v > 0xFFFF_FFFF {
            return None;
        }
    }
    Some(v)
}

/// glibc `inet_ntop(AF_INET6)`: longest run (≥ 2) of zero words compressed, first run wins
/// ties, IPv4-mapped and IPv4-compatible addresses end in dotted quad.
pub fn inet_ntop6(a: &Ipv6Addr) -> String {
    let w = a.segments();
    // Find the longest run of zero words.
    let (mut best_base, mut best_len) = (usize::MAX, 0usize);
    let (mut cur_base, mut cur_len) = (usize::MAX, 0usize);
    for (i, &x) in w.iter().enumerate() {
        if x == 0 {
            if cur_base == usize::MAX {
                cur_base = i;
                cur_len = 1;
            } else {
                cur_len += 1;
            }
        } else if cur_base != usize::MAX {
            if best_base == usize::MAX || cur_len > best_len {
                best_base = cur_base;
                best_len = cur_len;
            }
            cur_base = usize::MAX;
        }
    }
    if cur_base != usize::MAX && (best_base == usize::MAX || cur_len > best_len) {
        best_base = cur_base;
        best_len = cur_len;
    }
    if best_base != usize::MAX && best_len < 2 {
        best_base = usize::MAX;
    }
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if best_base != usize::MAX && i >= best_base && i < best_base + best_len {
            if i == best_base {
                out.push(':');
            }
            i += 1;
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6 && best_base == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
            let o = a.octets();
            out.push_str(&format!("{}.{}.{}.{}", o[12], o[13], o[14], o[15]));
            break;
        }
        out.push_str(&format!("{:x}", w[i]));
        i += 1;
    }
    if best_base != usize::MAX && best_base + best_len == 8 {
        out.push(':');
    }
    out
}

/// `inet_ntop` for either family.
pub fn inet_ntop(addr: &IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => inet_ntop6(a),
    }
}

/// C `strtol(s, &end, 10)` accepted only if the whole string is consumed; `None` otherwise
/// or on overflow of a C `long`.
pub fn strtol_full(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i128 = 0;
    for b in digits.bytes() {
        v = v * 10 + i128::from(b - b'0');
        if v > i128::from(i64::MAX) + 1 {
            return None;
        }
    }
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

/// C `atoi`: leading whitespace, optional sign, digits up to the first non-digit; 0 if none.
pub fn atoi(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for b in rest.bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        v = v.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg {
        -v
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aton_forms() {
        assert_eq!(inet_aton("10.0.0.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton("127.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(inet_aton("0x7f.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(inet_aton("010.0.0.1"), Some(Ipv4Addr::new(8, 0, 0, 1)));
        assert_eq!(inet_aton("1.2.3.256"), None);
        assert_eq!(inet_aton("1.2.3.4.5"), None);
        assert_eq!(inet_aton("host"), None);
        assert_eq!(inet_aton("1.2.3."), None);
    }

    #[test]
    fn ntop6_like_glibc() {
        let t = |s: &str| inet_ntop6(&s.parse().unwrap());
        assert_eq!(t("2001:db8::80"), "2001:db8::80");
        assert_eq!(t("::1"), "::1");
        assert_eq!(t("::"), "::");
        assert_eq!(t("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(t("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(t("1:0:0:2:0:0:0:3"), "1:0:0:2::3");
        assert_eq!(t("1:0:2:3:4:5:6:7"), "1:0:2:3:4:5:6:7");
        assert_eq!(t("fe80::"), "fe80::");
    }

    #[test]
    fn numbers() {
        assert_eq!(strtol_full("80"), Some(80));
        assert_eq!(strtol_full(" +80"), Some(80));
        assert_eq!(strtol_full("-1"), Some(-1));
        assert_eq!(strtol_full("80x"), None);
        assert_eq!(strtol_full(""), None);
        assert_eq!(strtol_full("99999999999999999999"), None);
        assert_eq!(atoi("64abc"), 64);
        assert_eq!(atoi("abc"), 0);
    }

    #[test]
    fn services_file() {
        let s = Services::parse(
            "# c\nhttp 80/tcp www # web\nhttp 80/udp\nhttps 443/tcp\ndomain 53/udp\nwww-alt 80/tcp\n",
        );
        assert_eq!(s.by_port(80, Protocol::Tcp), Some("http"));
        assert_eq!(s.by_name("www", Protocol::Tcp), Some(80));
        assert_eq!(s.by_name("domain", Protocol::Tcp), None);
        assert_eq!(s.by_name("domain", Protocol::Udp), Some(53));
        assert_eq!(s.by_port(443, Protocol::Sctp), None);
    }
}
