//! Frame construction for the golden cases, independent of rvs-packet: every header is
//! serialised by etherparse and every checksum is computed from scratch (etherparse for
//! IPv4/TCP/UDP/ICMP/ICMPv6, a local RFC 1071 sum for GRE, a local CRC32c for SCTP). Expected
//! outputs are built with these functions from what docs/internals/forwarding.md says the fields must become, never
//! copied from what the plane produced.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    IpDscp, IpEcn, IpFragOffset, IpNumber, Ipv4Header, Ipv4Options, Ipv6FlowLabel, Ipv6Header,
    TcpHeader, UdpHeader,
};

pub type Mac = [u8; 6];

pub const ET_IPV4: u16 = 0x0800;
pub const ET_IPV6: u16 = 0x86dd;
pub const ET_ARP: u16 = 0x0806;

/// An IP header description.
#[derive(Clone, Debug)]
pub struct Ip {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    /// IPv4 TOS / IPv6 traffic class.
    pub tos: u8,
    pub df: bool,
    pub ident: u16,
    /// IPv4 options (multiple of 4 bytes).
    pub options: Vec<u8>,
    /// Fragment: (offset in 8-byte units, more fragments).
    pub frag: Option<(u16, bool)>,
}

pub fn ip(src: IpAddr, dst: IpAddr) -> Ip {
    Ip {
        src,
        dst,
        ttl: 64,
        tos: 0,
        df: true,
        ident: 0x1234,
        options: Vec::new(),
        frag: None,
    }
}

impl Ip {
    pub fn ttl(mut self, t: u8) -> Ip {
        self.ttl = t;
        self
    }
    pub fn src(mut self, a: IpAddr) -> Ip {
        self.src = a;
        self
    }
    pub fn dst(mut self, a: IpAddr) -> Ip {
        self.dst = a;
        self
    }
    pub fn df(mut self, df: bool) -> Ip {
        self.df = df;
        self
    }
    pub fn ident(mut self, i: u16) -> Ip {
        self.ident = i;
        self
    }
    pub fn tos(mut self, t: u8) -> Ip {
        self.tos = t;
        self
    }
    pub fn options(mut self, o: &[u8]) -> Ip {
        self.options = o.to_vec();
        self
    }
    pub fn frag(mut self, off8: u16, more: bool) -> Ip {
        self.frag = Some((off8, more));
        self
    }
    pub fn v6(&self) -> bool {
        self.src.is_ipv6()
    }
}

/// A transport description.
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: &'static str,
        seq: u32,
        payload: Vec<u8>,
    },
    Udp {
        sport: u16,
        dport: u16,
        payload: Vec<u8>,
        /// Send checksum 0 (IPv4 "no checksum").
        zero: bool,
    },
    /// ICMP / ICMPv6 message: type, code, 4 bytes of rest, payload; checksum computed.
    Icmp {
        ty: u8,
        code: u8,
        rest: [u8; 4],
        payload: Vec<u8>,
    },
    /// SCTP common header + raw chunks; CRC32c computed.
    Sctp {
        sport: u16,
        dport: u16,
        vtag: u32,
        chunks: Vec<u8>,
    },
    /// Raw bytes of protocol `proto` (no checksum work).
    Raw { proto: u8, bytes: Vec<u8> },
}

pub fn tcp(sport: u16, dport: u16, flags: &'static str) -> L4 {
    L4::Tcp {
        sport,
        dport,
        flags,
        seq: 1000,
        payload: Vec::new(),
    }
}

pub fn tcp_data(sport: u16, dport: u16, flags: &'static str, payload: Vec<u8>) -> L4 {
    L4::Tcp {
        sport,
        dport,
        flags,
        seq: 1000,
        payload,
    }
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> L4 {
    L4::Udp {
        sport,
        dport,
        payload: payload.to_vec(),
        zero: false,
    }
}

impl L4 {
    pub fn proto(&self, v6: bool) -> u8 {
        match self {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { .. } => {
                if v6 {
                    58
                } else {
                    1
                }
            }
            L4::Sctp { .. } => 132,
            L4::Raw { proto, .. } => *proto,
        }
    }
    /// The same transport with other ports (TCP/UDP/SCTP).
    pub fn ports(&self, s: u16, d: u16) -> L4 {
        let mut x = self.clone();
        match &mut x {
            L4::Tcp { sport, dport, .. }
            | L4::Udp { sport, dport, .. }
            | L4::Sctp { sport, dport, .. } => {
                *sport = s;
                *dport = d;
            }
            _ => panic!("no ports"),
        }
        x
    }
    pub fn sport(&self) -> u16 {
        match self {
            L4::Tcp { sport, .. } | L4::Udp { sport, .. } | L4::Sctp { sport, .. } => *sport,
            _ => 0,
        }
    }
    pub fn dport(&self) -> u16 {
        match self {
            L4::Tcp { dport, .. } | L4::Udp { dport, .. } | L4::Sctp { dport, .. } => *dport,
            _ => 0,
        }
    }
}

fn v4(a: IpAddr) -> [u8; 4] {
    match a {
        IpAddr::V4(a) => a.octets(),
        _ => panic!("family"),
    }
}
fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        _ => panic!("family"),
    }
}

/// The IPv4 header of `ip` for a payload of `plen` bytes of protocol `proto`, checksum
/// computed by etherparse.
pub fn ipv4_header(ip: &Ip, proto: u8, plen: usize) -> Ipv4Header {
    let mut h =
        Ipv4Header::new(plen as u16, ip.ttl, IpNumber(proto), v4(ip.src), v4(ip.dst)).unwrap();
    h.dscp = IpDscp::try_new(ip.tos >> 2).unwrap();
    h.ecn = IpEcn::try_new(ip.tos & 3).unwrap();
    h.identification = ip.ident;
    h.dont_fragment = ip.df;
    if !ip.options.is_empty() {
        h.options = Ipv4Options::try_from(&ip.options[..]).unwrap();
        h.total_len = (20 + ip.options.len() + plen) as u16;
    }
    if let Some((off, more)) = ip.frag {
        h.fragment_offset = IpFragOffset::try_new(off).unwrap();
        h.more_fragments = more;
    }
    h.header_checksum = h.calc_header_checksum();
    h
}

pub fn ipv6_header(ip: &Ip, next: u8, plen: usize) -> Ipv6Header {
    Ipv6Header {
        traffic_class: ip.tos,
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length: plen as u16,
        next_header: IpNumber(next),
        hop_limit: ip.ttl,
        source: v6(ip.src),
        destination: v6(ip.dst),
    }
}

/// The transport bytes of `l4` inside `ip`, checksums computed from scratch.
pub fn l4_bytes(ip: &Ip, l4: &L4) -> Vec<u8> {
    let is6 = ip.v6();
    let mut out = Vec::new();
    match l4 {
        L4::Tcp {
            sport,
            dport,
            flags,
            seq,
            payload,
        } => {
            let mut t = TcpHeader::new(*sport, *dport, *seq, 64240);
            t.syn = flags.contains('S');
            t.ack = flags.contains('A');
            t.fin = flags.contains('F');
            t.rst = flags.contains('R');
            t.psh = flags.contains('P');
            if t.ack {
                t.acknowledgment_number = 77;
            }
            let len = t.header_len() + payload.len();
            t.checksum = if is6 {
                t.calc_checksum_ipv6(&ipv6_header(ip, 6, len), payload)
                    .unwrap()
            } else {
                t.calc_checksum_ipv4(&ipv4_header(ip, 6, len), payload)
                    .unwrap()
            };
            out.extend_from_slice(&t.to_bytes());
            out.extend_from_slice(payload);
        }
        L4::Udp {
            sport,
            dport,
            payload,
            zero,
        } => {
            let len = 8 + payload.len();
            let mut u = if is6 {
                UdpHeader::with_ipv6_checksum(*sport, *dport, &ipv6_header(ip, 17, len), payload)
                    .unwrap()
            } else {
                UdpHeader::with_ipv4_checksum(*sport, *dport, &ipv4_header(ip, 17, len), payload)
                    .unwrap()
            };
            if *zero {
                u.checksum = 0;
            }
            out.extend_from_slice(&u.to_bytes());
            out.extend_from_slice(payload);
        }
        L4::Icmp {
            ty,
            code,
            rest,
            payload,
        } => {
            let csum = if is6 {
                let t = etherparse::Icmpv6Type::Unknown {
                    type_u8: *ty,
                    code_u8: *code,
                    bytes5to8: *rest,
                };
                etherparse::Icmpv6Header::with_checksum(t, v6(ip.src), v6(ip.dst), payload)
                    .unwrap()
                    .checksum
            } else {
                let t = etherparse::Icmpv4Type::Unknown {
                    type_u8: *ty,
                    code_u8: *code,
                    bytes5to8: *rest,
                };
                etherparse::Icmpv4Header::with_checksum(t, payload).checksum
            };
            out.extend_from_slice(&[*ty, *code]);
            out.extend_from_slice(&csum.to_be_bytes());
            out.extend_from_slice(rest);
            out.extend_from_slice(payload);
        }
        L4::Sctp {
            sport,
            dport,
            vtag,
            chunks,
        } => {
            out.extend_from_slice(&sport.to_be_bytes());
            out.extend_from_slice(&dport.to_be_bytes());
            out.extend_from_slice(&vtag.to_be_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(chunks);
            let c = crc32c(&out);
            out[8..12].copy_from_slice(&c.to_le_bytes());
        }
        L4::Raw { bytes, .. } => out.extend_from_slice(bytes),
    }
    out
}

/// An IP packet (L3 bytes) with the given transport.
pub fn packet(ip: &Ip, l4: &L4) -> Vec<u8> {
    let body = l4_bytes(ip, l4);
    raw_packet(ip, l4.proto(ip.v6()), &body)
}

/// An IP packet with raw payload `body` of protocol `proto`.
pub fn raw_packet(ip: &Ip, proto: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if ip.v6() {
        match ip.frag {
            Some((off, more)) => {
                let h = ipv6_header(ip, 44, body.len() + 8);
                out.extend_from_slice(&h.to_bytes());
                out.extend_from_slice(&[proto, 0]);
                out.extend_from_slice(&((off << 3) | u16::from(more)).to_be_bytes());
                out.extend_from_slice(&0xabcdu32.to_be_bytes());
            }
            None => {
                let h = ipv6_header(ip, proto, body.len());
                out.extend_from_slice(&h.to_bytes());
            }
        }
    } else {
        out.extend_from_slice(&ipv4_header(ip, proto, body.len()).to_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// An Ethernet frame (no FCS).
pub fn eth(dst: Mac, src: Mac, et: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An Ethernet frame with one 802.1Q tag.
pub fn eth_vlan(dst: Mac, src: Mac, vid: u16, et: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn et_of(ip: &Ip) -> u16 {
    if ip.v6() {
        ET_IPV6
    } else {
        ET_IPV4
    }
}

/// A whole frame: Ethernet + IP + transport.
pub fn frame(dst: Mac, src: Mac, ip: &Ip, l4: &L4) -> Vec<u8> {
    eth(dst, src, et_of(ip), &packet(ip, l4))
}

/// RFC 1071 Internet checksum (independent of rvs-packet's).
pub fn inet_csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        s += u32::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// CRC32c (Castagnoli), bitwise, reflected (RFC 9260 appendix B).
pub fn crc32c(data: &[u8]) -> u32 {
    let mut c: u32 = !0;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// The outer header of a tunnel (docs/internals/forwarding.md#tunnelling) around the inner IP packet `inner`.
#[derive(Clone, Copy, Debug)]
pub enum Tun {
    Ipip,
    Gue { port: u16, sport: u16, csum: bool },
    Gre { csum: bool },
}

/// Builds the expected tunnel packet: outer IP (`outer` gives src/dst/ttl/tos/df/ident)
/// + tunnel header + inner.
pub fn tunnel_packet(outer: &Ip, t: Tun, inner: &[u8], inner_v6: bool) -> Vec<u8> {
    let inner_proto = if inner_v6 { 41 } else { 4 };
    match t {
        Tun::Ipip => raw_packet(outer, inner_proto, inner),
        Tun::Gue { port, sport, csum } => {
            let mut body = vec![0u8; 8];
            body.extend_from_slice(&[0, inner_proto, 0, 0]);
            body.extend_from_slice(inner);
            let ulen = body.len() as u16;
            body[0..2].copy_from_slice(&sport.to_be_bytes());
            body[2..4].copy_from_slice(&port.to_be_bytes());
            body[4..6].copy_from_slice(&ulen.to_be_bytes());
            if csum {
                let payload = &body[8..];
                let u = if outer.v6() {
                    UdpHeader::with_ipv6_checksum(
                        sport,
                        port,
                        &ipv6_header(outer, 17, body.len()),
                        payload,
                    )
                } else {
                    UdpHeader::with_ipv4_checksum(
                        sport,
                        port,
                        &ipv4_header(outer, 17, body.len()),
                        payload,
                    )
                }
                .unwrap();
                body[6..8].copy_from_slice(&u.checksum.to_be_bytes());
            }
            raw_packet(outer, 17, &body)
        }
        Tun::Gre { csum } => {
            let et: u16 = if inner_v6 { ET_IPV6 } else { ET_IPV4 };
            let mut body = Vec::new();
            body.extend_from_slice(&(if csum { 0x8000u16 } else { 0 }).to_be_bytes());
            body.extend_from_slice(&et.to_be_bytes());
            if csum {
                body.extend_from_slice(&[0; 4]);
            }
            body.extend_from_slice(inner);
            if csum {
                let c = inet_csum(&body);
                body[4..6].copy_from_slice(&c.to_be_bytes());
            }
            raw_packet(outer, 47, &body)
        }
    }
}

/// The kernel's `udp_flow_src_port` scaling of a flow hash into 32768..=60999, applied to
/// rvs's documented FNV-1a flow hash (src, dst, proto, sport, dport), re-implemented here.
pub fn gue_sport(src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= u32::from(x);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            eat(&s.octets());
            eat(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            eat(&s.octets());
            eat(&d.octets());
        }
        _ => {}
    }
    eat(&[proto]);
    eat(&sport.to_be_bytes());
    eat(&dport.to_be_bytes());
    let h = h ^ (h << 16);
    ((u64::from(h) * (60999 - 32768)) >> 32) as u16 + 32768
}

/// `INET_ECN_encapsulate`: CE (3) inside becomes ECT(0) (2) outside.
pub fn ecn_encap(tos: u8) -> u8 {
    if tos & 3 == 3 {
        (tos & !3) | 2
    } else {
        tos
    }
}

pub fn a4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
}
pub fn a6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

/// An ARP frame (request op 1 / reply op 2), padded to 60 bytes.
pub fn arp(dst: Mac, src: Mac, op: u16, sha: Mac, spa: IpAddr, tha: Mac, tpa: IpAddr) -> Vec<u8> {
    let mut p = vec![0, 1, 8, 0, 6, 4];
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sha);
    p.extend_from_slice(&v4(spa));
    p.extend_from_slice(&tha);
    p.extend_from_slice(&v4(tpa));
    let mut f = eth(dst, src, ET_ARP, &p);
    f.resize(60, 0);
    f
}
