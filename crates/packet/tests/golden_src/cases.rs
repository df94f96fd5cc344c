//! The golden cases as specifications: inputs and expected outputs are built with
//! [`super::build`] (etherparse + from-scratch checksums) from what docs/internals/connections.md, docs/internals/persistence.md, docs/internals/forwarding.md
//! says the packet must become. The fixture files are these specifications written out; the
//! runner then holds the plane to them byte for byte.

use std::net::IpAddr;

use super::build::*;
use super::fixture::*;

// ---------------------------------------------------------------------------------------------
// Case builder

pub struct B {
    c: Case,
}

pub fn case(name: &str, doc: &str) -> B {
    B {
        c: Case {
            name: name.to_string(),
            doc: vec![doc.to_string()],
            counters: "conns=0 inpkts=0 inbytes=0 outpkts=0 outbytes=0".into(),
            drops: "none".into(),
            ..Case::default()
        },
    }
}

impl B {
    pub fn config(mut self, l: impl Into<String>) -> B {
        self.c.config.push(l.into());
        self
    }
    pub fn flag(mut self, f: &str) -> B {
        self.c.flags.push(f.into());
        self
    }
    pub fn step(
        mut self,
        doc: &str,
        port: u16,
        input: Vec<u8>,
        verdict: &str,
        out: Option<Vec<u8>>,
    ) -> B {
        self.c.steps.push(Step {
            doc: doc.into(),
            port,
            input,
            verdict: verdict.into(),
            out,
            ..Step::default()
        });
        self
    }
    /// [`B::step`] when `step` is some: `(doc, port, input, verdict, out)`.
    #[allow(clippy::type_complexity)]
    pub fn steps_if(self, step: Option<(&str, u16, Vec<u8>, &str, Option<Vec<u8>>)>) -> B {
        match step {
            Some((doc, port, input, verdict, out)) => self.step(doc, port, input, verdict, out),
            None => self,
        }
    }
    /// Add a table edit before the last step's packet.
    pub fn cmd(mut self, l: &str) -> B {
        self.c.steps.last_mut().unwrap().cmds.push(l.into());
        self
    }
    pub fn counters(
        mut self,
        conns: u64,
        inpkts: u64,
        inbytes: usize,
        outpkts: u64,
        outbytes: usize,
    ) -> B {
        self.c.counters = format!(
            "conns={conns} inpkts={inpkts} inbytes={inbytes} outpkts={outpkts} outbytes={outbytes}"
        );
        self
    }
    pub fn drops(mut self, d: &str) -> B {
        self.c.drops = d.into();
        self
    }
    pub fn live(mut self, n: usize) -> B {
        self.c.live = n;
        self
    }
    pub fn done(self) -> Case {
        self.c
    }
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum M {
    Nat,
    Dr,
    Ipip,
    Gue,
    GueCsum,
    Gre,
    GreCsum,
    FullNat,
    /// GUE with `--tun-remcsum`: frames from the wire have complete checksums, so it sends
    /// what [`M::GueCsum`] sends (not in [`M::ALL`]).
    GueRemCsum,
}

impl M {
    pub const ALL: [M; 8] = [
        M::Nat,
        M::Dr,
        M::Ipip,
        M::Gue,
        M::GueCsum,
        M::Gre,
        M::GreCsum,
        M::FullNat,
    ];
    fn name(self) -> &'static str {
        match self {
            M::Nat => "nat",
            M::Dr => "dr",
            M::Ipip => "tun-ipip",
            M::Gue => "tun-gue",
            M::GueCsum => "tun-gue-csum",
            M::GueRemCsum => "tun-gue-remcsum",
            M::Gre => "tun-gre",
            M::GreCsum => "tun-gre-csum",
            M::FullNat => "fullnat",
        }
    }
    fn flag(self) -> String {
        match self {
            M::Nat => "-m".into(),
            M::Dr => "-g".into(),
            M::Ipip => "-i --tun-type ipip".into(),
            M::Gue => format!("-i --tun-type gue --tun-port {GUE_PORT}"),
            M::GueCsum => format!("-i --tun-type gue --tun-port {GUE_PORT} --tun-csum"),
            M::GueRemCsum => format!("-i --tun-type gue --tun-port {GUE_PORT} --tun-remcsum"),
            M::Gre => "-i --tun-type gre".into(),
            M::GreCsum => "-i --tun-type gre --tun-csum".into(),
            M::FullNat => "--fullnat".into(),
        }
    }
    /// Methods that rewrite ports go to 8080; DR/TUN keep the virtual port (docs/internals/forwarding.md#direct-routing).
    fn translates(self) -> bool {
        matches!(self, M::Nat | M::FullNat)
    }
    fn tun(self, inner: &Ip, l4: &L4) -> Option<Tun> {
        let sport = || {
            gue_sport(
                inner.src,
                inner.dst,
                l4.proto(inner.v6()),
                l4.sport(),
                l4.dport(),
            )
        };
        match self {
            M::Ipip => Some(Tun::Ipip),
            M::Gue => Some(Tun::Gue {
                port: GUE_PORT,
                sport: sport(),
                csum: false,
            }),
            M::GueCsum | M::GueRemCsum => Some(Tun::Gue {
                port: GUE_PORT,
                sport: sport(),
                csum: true,
            }),
            M::Gre => Some(Tun::Gre { csum: false }),
            M::GreCsum => Some(Tun::Gre { csum: true }),
            _ => None,
        }
    }
    /// Bytes the tunnel adds (docs/internals/forwarding.md#mtu), for the IPv4 outer header.
    fn overhead(self, outer_v6: bool) -> u32 {
        let ip = if outer_v6 { 40 } else { 20 };
        ip + match self {
            M::Gue | M::GueCsum | M::GueRemCsum => 12,
            M::Gre => 4,
            M::GreCsum => 8,
            _ => 0,
        }
    }
}

fn fam(v6: bool) -> &'static str {
    if v6 {
        "v6"
    } else {
        "v4"
    }
}

/// `ADDR:PORT` the way ipvsadm writes it.
pub fn ep(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn svc(v6: bool, udp: bool, port: u16) -> String {
    format!("{} {}", if udp { "-u" } else { "-t" }, ep(vip(v6), port))
}

const RS_PORT: u16 = 8080;

fn vport(udp: bool) -> u16 {
    if udp {
        53
    } else {
        80
    }
}

fn req_l4(is_udp: bool, sport: u16) -> L4 {
    if is_udp {
        udp(sport, 53, b"query-0123456789")
    } else {
        tcp(sport, 80, "S")
    }
}

fn dec(i: &Ip) -> Ip {
    i.clone().ttl(i.ttl - 1)
}

/// A client frame arriving on port 0 from the router.
fn from_client(i: &Ip, l4: &L4) -> Vec<u8> {
    frame(P0_MAC, ROUTER_MAC, i, l4)
}

/// A frame from host `src` on the real-server link, arriving on port 1.
fn from_rs(i: &Ip, l4: &L4) -> Vec<u8> {
    frame(P1_MAC, host_mac(i.src), i, l4)
}

/// What the director must send for a client request `i`/`l4` forwarded by `m` to real server
/// `rsa` (the `rs_port` for NAT/FULLNAT, `local` the full-NAT local endpoint, `ident` the
/// outer IPv4 identification of a tunnel, `pmtu` the pmtu_disc sysctl).
fn fwd_expect(
    m: M,
    i: &Ip,
    l4: &L4,
    rsa: IpAddr,
    local: (IpAddr, u16),
    ident: u16,
    pmtu: bool,
) -> Vec<u8> {
    let mac = host_mac(rsa);
    match m {
        M::Nat => frame(
            mac,
            P1_MAC,
            &dec(i).dst(rsa),
            &l4.ports(l4.sport(), RS_PORT),
        ),
        M::FullNat => frame(
            mac,
            P1_MAC,
            &dec(i).src(local.0).dst(rsa),
            &l4.ports(local.1, RS_PORT),
        ),
        M::Dr => frame(mac, P1_MAC, &dec(i), l4),
        _ => {
            let inner_ip = dec(i);
            let inner = packet(&inner_ip, l4);
            let outer_v6 = rsa.is_ipv6();
            let outer = Ip {
                src: p1_addr(outer_v6),
                dst: rsa,
                ttl: inner_ip.ttl,
                tos: ecn_encap(i.tos),
                // docs/internals/forwarding.md#tunnelling: DF copied from an IPv4 inner header only with pmtu_disc.
                df: !i.v6() && pmtu && i.df,
                ident,
                options: Vec::new(),
                frag: None,
            };
            let t = m.tun(&inner_ip, l4).unwrap();
            eth(
                mac,
                P1_MAC,
                et_of(&outer),
                &tunnel_packet(&outer, t, &inner, i.v6()),
            )
        }
    }
}

/// The ICMP error the director sends back to the sender of `orig_l3` (as received): from
/// `src`, IPv4 TOS 0xc0 | (tos & 0x1e), TTL 64, no DF, `ident`; ICMPv6 hop limit 64. Quotes
/// at most 576 − 28 (IPv4) or 1280 − 48 (IPv6) bytes.
#[allow(clippy::too_many_arguments)]
fn icmp_err(
    eth_dst: Mac,
    eth_src: Mac,
    src: IpAddr,
    orig_l3: &[u8],
    ty: u8,
    code: u8,
    rest: u32,
    ident: u16,
) -> Vec<u8> {
    let v6 = src.is_ipv6();
    let (osrc, otos): (IpAddr, u8) = if v6 {
        (
            IpAddr::from(<[u8; 16]>::try_from(&orig_l3[8..24]).unwrap()),
            0,
        )
    } else {
        (
            IpAddr::from([orig_l3[12], orig_l3[13], orig_l3[14], orig_l3[15]]),
            orig_l3[1],
        )
    };
    let quote = &orig_l3[..orig_l3.len().min(if v6 { 1232 } else { 548 })];
    let ip = Ip {
        src,
        dst: osrc,
        ttl: 64,
        tos: if v6 { 0 } else { (otos & 0x1e) | 0xc0 },
        df: false,
        ident,
        options: Vec::new(),
        frag: None,
    };
    let l4 = L4::Icmp {
        ty,
        code,
        rest: rest.to_be_bytes(),
        payload: quote.to_vec(),
    };
    frame(eth_dst, eth_src, &ip, &l4)
}

fn l3(frame: &[u8]) -> Vec<u8> {
    frame[14..].to_vec()
}

fn dests(m: M, v6: bool, udp: bool, n: &[u8]) -> Vec<String> {
    n.iter()
        .map(|&k| {
            let port = if m.translates() { RS_PORT } else { vport(udp) };
            format!(
                "-a {} -r {} {}",
                svc(v6, udp, vport(udp)),
                ep(rs(v6, k), port),
                m.flag()
            )
        })
        .collect()
}

fn service(m: M, v6: bool, udp: bool, sched: &str, n: &[u8]) -> Vec<String> {
    let mut v = vec![format!("-A {} -s {sched}", svc(v6, udp, vport(udp)))];
    v.extend(dests(m, v6, udp, n));
    if m == M::FullNat {
        v.push(format!(
            "--add-laddr {} -z {}",
            svc(v6, udp, vport(udp)),
            lip(v6)
        ));
    }
    v
}

fn with_config(mut b: B, lines: Vec<String>) -> B {
    for l in lines {
        b = b.config(l);
    }
    b
}

fn pname(udp: bool) -> &'static str {
    if udp {
        "udp"
    } else {
        "tcp"
    }
}

// ---------------------------------------------------------------------------------------------
// The cases

pub fn all() -> Vec<Case> {
    let mut v = Vec::new();
    forwarding(&mut v);
    mixed_tunnels(&mut v);
    replies(&mut v);
    dr_tun_sequences(&mut v);
    established(&mut v);
    ttl(&mut v);
    mtu(&mut v);
    reject(&mut v);
    arp_nd(&mut v);
    non_vip(&mut v);
    fragments(&mut v);
    options(&mut v);
    malformed(&mut v);
    checksums(&mut v);
    icmp_relay(&mut v);
    tunnel_icmp(&mut v);
    persistence(&mut v);
    fwmark(&mut v);
    one_packet(&mut v);
    dest_gone(&mut v);
    fullnat_ports(&mut v);
    misc(&mut v);
    v
}

/// Every method × family × protocol: the first packet of a flow (docs/internals/forwarding.md).
fn forwarding(v: &mut Vec<Case>) {
    for m in M::ALL {
        for v6 in [false, true] {
            for udp in [false, true] {
                let i = ip(client(v6), vip(v6));
                let l4 = req_l4(udp, 40000);
                let input = from_client(&i, &l4);
                let out = fwd_expect(m, &i, &l4, rs(v6, 11), (lip(v6), 1024), 1, true);
                let b = case(
                    &format!("fwd-{}-{}-{}", m.name(), fam(v6), pname(udp)),
                    &format!(
                        "{} {} {}: first packet of a flow is scheduled and forwarded (docs/internals/forwarding.md)",
                        m.name(),
                        fam(v6),
                        pname(udp)
                    ),
                );
                let n = input.len() - 14;
                v.push(
                    with_config(b, service(m, v6, udp, "rr", &[11]))
                        .step("client request", 0, input, "transmit port=1", Some(out))
                        .counters(1, 1, n, 0, 0)
                        .live(1)
                        .done(),
                );
            }
        }
    }
}

/// Tunnels may mix families (docs/internals/forwarding.md#tunnelling): 4in6 and 6in4, IPIP and GRE.
fn mixed_tunnels(v: &mut Vec<Case>) {
    for m in [M::Ipip, M::Gre, M::Gue] {
        for inner_v6 in [false, true] {
            let outer_v6 = !inner_v6;
            let i = ip(client(inner_v6), vip(inner_v6));
            let l4 = req_l4(false, 40001);
            let input = from_client(&i, &l4);
            let rsa = rs(outer_v6, 11);
            let out = fwd_expect(m, &i, &l4, rsa, (lip(false), 0), 1, true);
            let n = input.len() - 14;
            v.push(
                case(
                    &format!(
                        "fwd-{}-{}in{}",
                        m.name(),
                        if inner_v6 { 6 } else { 4 },
                        if outer_v6 { 6 } else { 4 }
                    ),
                    "mixed-family tunnel: the outer header follows the real server's family (docs/internals/forwarding.md)",
                )
                .config(format!("-A {} -s rr", svc(inner_v6, false, 80)))
                .config(format!(
                    "-a {} -r {} {}",
                    svc(inner_v6, false, 80),
                    ep(rsa, 80),
                    m.flag()
                ))
                .step("client SYN", 0, input, "transmit port=1", Some(out))
                .counters(1, 1, n, 0, 0)
                .live(1)
                .done(),
            );
        }
    }
}

/// NAT and FULLNAT: request, reply (rewritten back to VIP:vport), next request on the same
/// connection. In-direction counted in packet_in, replies in packet_out (docs/internals/connections.md#counters).
fn replies(v: &mut Vec<Case>) {
    for m in [M::Nat, M::FullNat] {
        for v6 in [false, true] {
            for is_udp in [false, true] {
                let udp_ = is_udp;
                let c = client(v6);
                let i = ip(c, vip(v6));
                let l4 = req_l4(udp_, 40002);
                let req = from_client(&i, &l4);
                let rsa = rs(v6, 11);
                let lp = 1024;
                let fwd = fwd_expect(m, &i, &l4, rsa, (lip(v6), lp), 1, true);
                // The real server answers to the client (NAT) or to the local address (FULLNAT).
                let (rdst, rport) = if m == M::Nat {
                    (c, 40002)
                } else {
                    (lip(v6), lp)
                };
                let ri = ip(rsa, rdst).ident(0x4321);
                let rl4 = if udp_ {
                    udp(RS_PORT, rport, b"answer")
                } else {
                    tcp(RS_PORT, rport, "SA")
                };
                let reply = from_rs(&ri, &rl4);
                let ri_out = dec(&ri).src(vip(v6)).dst(c);
                let rl4_out = rl4.ports(vport(udp_), 40002);
                let reply_out = frame(ROUTER_MAC, P0_MAC, &ri_out, &rl4_out);
                let l4b = if udp_ {
                    udp(40002, 53, b"query-2")
                } else {
                    tcp(40002, 80, "A")
                };
                let req2 = from_client(&i, &l4b);
                let fwd2 = fwd_expect(m, &i, &l4b, rsa, (lip(v6), lp), 2, true);
                let (n1, n2, n3) = (req.len() - 14, reply.len() - 14, req2.len() - 14);
                // UDP: a third request, the first a fast path may carry (a UDP flow is offered
                // from its second packet).
                let req3 = udp_.then(|| {
                    let l4c = udp(40002, 53, b"query-3");
                    let fwd3 = fwd_expect(m, &i, &l4c, rsa, (lip(v6), lp), 3, true);
                    (from_client(&i, &l4c), fwd3)
                });
                let n4 = req3.as_ref().map_or(0, |(f, _)| f.len() - 14);
                let b = case(
                    &format!("seq-{}-{}-{}", m.name(), fam(v6), pname(udp_)),
                    &format!("{} {} {}: request, reply rewritten back to VIP:vport (docs/internals/forwarding.md handle_response), second request", m.name(), fam(v6), pname(udp_)),
                );
                v.push(
                    with_config(b, service(m, v6, udp_, "rr", &[11]))
                        .step("client request", 0, req, "transmit port=1", Some(fwd))
                        .step(
                            "real-server reply",
                            1,
                            reply,
                            "transmit port=0",
                            Some(reply_out),
                        )
                        .step(
                            "client's next packet",
                            0,
                            req2,
                            "transmit port=1",
                            Some(fwd2),
                        )
                        .steps_if(req3.map(|(f, o)| {
                            ("client's third packet", 0, f, "transmit port=1", Some(o))
                        }))
                        .counters(1, 2 + u64::from(udp_), n1 + n3 + n4, 1, n2)
                        .live(1)
                        .done(),
                );
            }
        }
    }
}

/// DR and TUN: SYN then ACK; replies bypass the director, so OutPkts stay 0 (docs/internals/connections.md#counters).
fn dr_tun_sequences(v: &mut Vec<Case>) {
    for m in [M::Dr, M::Ipip, M::Gre] {
        for v6 in [false, true] {
            let i = ip(client(v6), vip(v6));
            let syn = tcp(40003, 80, "S");
            let ack = tcp_data(40003, 80, "PA", b"GET / HTTP/1.0\r\n\r\n".to_vec());
            let (f1, f2) = (from_client(&i, &syn), from_client(&i, &ack));
            // rr picks the most recently added dest (12) first; the data follows its SYN.
            let o1 = fwd_expect(m, &i, &syn, rs(v6, 12), (lip(v6), 0), 1, true);
            let o2 = fwd_expect(m, &i, &ack, rs(v6, 12), (lip(v6), 0), 2, true);
            let n = f1.len() + f2.len() - 28;
            v.push(
                with_config(
                    case(
                        &format!("seq-{}-{}-tcp", m.name(), fam(v6)),
                        "DR/TUN connection: SYN and data both go to the same real server; OutPkts stay 0",
                    ),
                    service(m, v6, false, "rr", &[11, 12]),
                )
                .step("SYN (scheduled: rr picks the newest dest first)", 0, f1, "transmit port=1", Some(o1))
                .step("data on the same connection", 0, f2, "transmit port=1", Some(o2))
                .counters(1, 2, n, 0, 0)
                .live(1)
                .done(),
            );
        }
    }
}

/// A TCP connection carried on after it is ESTABLISHED: handshake, data both ways, ACKs. The
/// packets after the handshake are the ones a kernel fast path (rvsd's XDP program) takes
/// over, so these cases give it established traffic in both directions to be checked against.
/// NAT and FULLNAT see the replies; DR and TUN only the client's packets. Tunnels also carry
/// an odd-length packet and one longer than 512 bytes (the checksum options sum the whole
/// inner packet, in 512-byte chunks in the XDP program).
fn established(v: &mut Vec<Case>) {
    for m in [
        M::Nat,
        M::FullNat,
        M::Dr,
        M::Ipip,
        M::Gue,
        M::GueCsum,
        M::GueRemCsum,
        M::Gre,
        M::GreCsum,
    ] {
        for v6 in [false, true] {
            let c = client(v6);
            let i = ip(c, vip(v6));
            let rsa = rs(v6, 11);
            let lp = 1024;
            let sport = 40010;
            let replies = matches!(m, M::Nat | M::FullNat);
            let (rdst, rport) = if m == M::Nat {
                (c, sport)
            } else {
                (lip(v6), lp)
            };
            let ri = ip(rsa, rdst).ident(0x4321);
            let ri_out = dec(&ri).src(vip(v6)).dst(c);
            let mut b = with_config(
                case(
                    &format!("est-{}-{}-tcp", m.name(), fam(v6)),
                    &format!(
                        "{} {} tcp: handshake, then data and ACKs of the ESTABLISHED connection{}",
                        m.name(),
                        fam(v6),
                        if replies { " both ways" } else { "" }
                    ),
                ),
                service(m, v6, false, "rr", &[11]),
            );
            let (mut n_in, mut b_in, mut n_out, mut b_out) = (0, 0, 0, 0);
            let mut ident = 0;
            let data = b"GET / HTTP/1.0\r\n\r\n".to_vec();
            let answer = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
            let mut steps: Vec<(&str, bool, L4)> = vec![("client SYN", true, tcp(sport, 80, "S"))];
            if replies {
                steps.push(("real-server SYN-ACK", false, tcp(RS_PORT, rport, "SA")));
            }
            steps.push(("client ACK: ESTABLISHED", true, tcp(sport, 80, "A")));
            steps.push(("client data", true, tcp_data(sport, 80, "PA", data)));
            if replies {
                steps.push((
                    "real-server data",
                    false,
                    tcp_data(RS_PORT, rport, "PA", answer),
                ));
            }
            steps.push(("client ACK", true, tcp(sport, 80, "A")));
            if replies {
                steps.push(("real-server ACK", false, tcp(RS_PORT, rport, "A")));
            }
            if m.tun(&i, &tcp(sport, 80, "A")).is_some() {
                let odd = b"x=1\r\n".to_vec();
                steps.push((
                    "client data, odd length",
                    true,
                    tcp_data(sport, 80, "PA", odd),
                ));
                let long: Vec<u8> = (0..1201u32).map(|k| (k * 7 + 3) as u8).collect();
                steps.push((
                    "client data, 1201 bytes",
                    true,
                    tcp_data(sport, 80, "PA", long),
                ));
            }
            for (doc, from_c, l4) in steps {
                if from_c {
                    let input = from_client(&i, &l4);
                    ident += 1;
                    let out = fwd_expect(m, &i, &l4, rsa, (lip(v6), lp), ident, true);
                    n_in += 1;
                    b_in += input.len() - 14;
                    b = b.step(doc, 0, input, "transmit port=1", Some(out));
                } else {
                    let input = from_rs(&ri, &l4);
                    let out = frame(ROUTER_MAC, P0_MAC, &ri_out, &l4.ports(vport(false), sport));
                    n_out += 1;
                    b_out += input.len() - 14;
                    b = b.step(doc, 1, input, "transmit port=0", Some(out));
                }
            }
            v.push(b.counters(1, n_in, b_in, n_out, b_out).live(1).done());
        }
    }
}

/// TTL / hop limit ≤ 1: ICMP time exceeded from the VIP to the client; the packet still
/// counted in InPkts, as the kernel counts before transmitting (docs/internals/forwarding.md).
fn ttl(v: &mut Vec<Case>) {
    for m in [M::Nat, M::Dr, M::Ipip, M::FullNat] {
        for v6 in [false, true] {
            let i = ip(client(v6), vip(v6)).ttl(1);
            let l4 = req_l4(false, 40004);
            let input = from_client(&i, &l4);
            let (ty, code) = if v6 { (3, 0) } else { (11, 0) };
            let out = icmp_err(
                ROUTER_MAC,
                P0_MAC,
                vip(v6),
                &l3(&input),
                ty,
                code,
                0,
                if m == M::Ipip { 2 } else { 1 },
            );
            let n = input.len() - 14;
            v.push(
                with_config(
                    case(
                        &format!("ttl-{}-{}", m.name(), fam(v6)),
                        "TTL 1 toward the real server: time exceeded from the VIP (docs/internals/forwarding.md)",
                    ),
                    service(m, v6, false, "rr", &[11]),
                )
                .step("SYN with TTL 1", 0, input, "local port=0", Some(out))
                .counters(1, 1, n, 0, 0)
                .drops("ttl_exceeded=1")
                .live(1)
                .done(),
            );
        }
    }
    // A NAT reply with TTL 1: time exceeded from the director's address on that link.
    for v6 in [false, true] {
        let c = client(v6);
        let i = ip(c, vip(v6));
        let l4 = req_l4(false, 40005);
        let req = from_client(&i, &l4);
        let fwd = fwd_expect(M::Nat, &i, &l4, rs(v6, 11), (c, 0), 1, true);
        let ri = ip(rs(v6, 11), c).ttl(1);
        let rl4 = tcp(RS_PORT, 40005, "SA");
        let reply = from_rs(&ri, &rl4);
        let (ty, code) = if v6 { (3, 0) } else { (11, 0) };
        let out = icmp_err(
            host_mac(rs(v6, 11)),
            P1_MAC,
            p1_addr(v6),
            &l3(&reply),
            ty,
            code,
            0,
            1,
        );
        v.push(
            with_config(
                case(
                    &format!("ttl-nat-reply-{}", fam(v6)),
                    "NAT reply with TTL 1: time exceeded to the real server from the DIP",
                ),
                service(M::Nat, v6, false, "rr", &[11]),
            )
            .step("client SYN", 0, req.clone(), "transmit port=1", Some(fwd))
            .step(
                "reply with TTL 1",
                1,
                reply.clone(),
                "local port=1",
                Some(out),
            )
            .counters(1, 1, req.len() - 14, 1, reply.len() - 14)
            .drops("ttl_exceeded=1")
            .live(1)
            .done(),
        );
    }
}

fn big_tcp(v6: bool, sport: u16, l3len: usize) -> L4 {
    let hdr = if v6 { 40 } else { 20 } + 20;
    // A SYN carrying data, so that it creates the connection (docs/internals/connections.md#tcp).
    tcp_data(sport, 80, "S", vec![0x5a; l3len - hdr])
}

/// MTU (docs/internals/forwarding.md#mtu): FRAG_NEEDED (IPv4 DF) / PACKET_TOO_BIG (IPv6) toward the client with the
/// effective MTU (tunnel overhead subtracted); fragmentation allowed without DF or for
/// tunnels with pmtu_disc=0.
fn mtu(v: &mut Vec<Case>) {
    for m in M::ALL {
        for v6 in [false, true] {
            let link = if v6 { 1400 } else { 1000 };
            let size = if v6 { 1500 } else { 1100 };
            let i = ip(client(v6), vip(v6));
            let l4 = big_tcp(v6, 40006, size);
            let input = from_client(&i, &l4);
            let eff = link
                - if matches!(m, M::Nat | M::Dr | M::FullNat) {
                    0
                } else {
                    m.overhead(v6)
                };
            let tunnel = !matches!(m, M::Nat | M::Dr | M::FullNat);
            if v6 && tunnel && eff < 1280 {
                continue;
            }
            let (ty, code, reason) = if v6 {
                (2, 0, "packet_too_big=1")
            } else {
                (3, 4, "frag_needed=1")
            };
            let ident = if tunnel { 2 } else { 1 };
            let out = icmp_err(
                ROUTER_MAC,
                P0_MAC,
                vip(v6),
                &l3(&input),
                ty,
                code,
                eff,
                ident,
            );
            let cfg = service(m, v6, false, "rr", &[11]);
            v.push(
                with_config(
                    case(&format!("mtu-{}-{}", m.name(), fam(v6)), &format!("{size}-byte packet, link MTU {link}: too big, the client learns MTU {eff} (docs/internals/forwarding.md)")),
                    cfg,
                )
                .config(format!("mtu 1 {link}"))
                .step("oversized DF packet", 0, input.clone(), "local port=0", Some(out))
                .counters(1, 1, input.len() - 14, 0, 0)
                .drops(reason)
                .live(1)
                .done(),
            );
        }
    }
    // Without DF an IPv4 packet may be fragmented: the plane hands the rewritten frame out
    // with the MTU to fragment at.
    for m in [M::Nat, M::Dr] {
        let i = ip(client(false), vip(false)).df(false);
        let l4 = big_tcp(false, 40007, 1100);
        let input = from_client(&i, &l4);
        let out = fwd_expect(m, &i, &l4, rs(false, 11), (lip(false), 0), 1, true);
        v.push(
            with_config(
                case(
                    &format!("mtu-{}-v4-nodf", m.name()),
                    "too big without DF: fragment on output (docs/internals/forwarding.md)",
                ),
                service(m, false, false, "rr", &[11]),
            )
            .config("mtu 1 1000")
            .step(
                "oversized packet without DF",
                0,
                input.clone(),
                "fragment port=1 mtu=1000",
                Some(out),
            )
            .counters(1, 1, input.len() - 14, 0, 0)
            .live(1)
            .done(),
        );
    }
    // Tunnel with pmtu_disc=0: DF not copied, the outer packet is fragmented (docs/internals/forwarding.md).
    for m in [M::Ipip, M::Gre] {
        let i = ip(client(false), vip(false));
        let l4 = big_tcp(false, 40008, 1100);
        let input = from_client(&i, &l4);
        let out = fwd_expect(m, &i, &l4, rs(false, 11), (lip(false), 0), 1, false);
        v.push(
            with_config(
                case(
                    &format!("mtu-{}-v4-pmtu-disc-0", m.name()),
                    "tunnel, pmtu_disc=0: DF not copied, outer packet fragmented at the route MTU",
                ),
                service(m, false, false, "rr", &[11]),
            )
            .config("mtu 1 1000")
            .config("sysctl pmtu_disc 0")
            .step(
                "oversized DF packet",
                0,
                input.clone(),
                "fragment port=1 mtu=1000",
                Some(out),
            )
            .counters(1, 1, input.len() - 14, 0, 0)
            .live(1)
            .done(),
        );
    }
    // pmtu_disc=0 and a small packet: the tunnel's outer header has DF clear.
    let i = ip(client(false), vip(false));
    let l4 = req_l4(false, 40009);
    let input = from_client(&i, &l4);
    let out = fwd_expect(M::Ipip, &i, &l4, rs(false, 11), (lip(false), 0), 1, false);
    v.push(
        with_config(
            case(
                "tun-ipip-v4-pmtu-disc-0-df-clear",
                "pmtu_disc=0: the outer IPv4 header does not copy DF (docs/internals/forwarding.md)",
            ),
            service(M::Ipip, false, false, "rr", &[11]),
        )
        .config("sysctl pmtu_disc 0")
        .step(
            "SYN with DF",
            0,
            input.clone(),
            "transmit port=1",
            Some(out),
        )
        .counters(1, 1, input.len() - 14, 0, 0)
        .live(1)
        .done(),
    );
}

/// No usable destination: ICMP port unreachable from the VIP (`ip_vs_leave`, docs/internals/connections.md#life-of-an-entry).
fn reject(v: &mut Vec<Case>) {
    for v6 in [false, true] {
        for udp in [false, true] {
            let i = ip(client(v6), vip(v6));
            let l4 = req_l4(udp, 40010);
            let input = from_client(&i, &l4);
            let (ty, code) = if v6 { (1, 4) } else { (3, 3) };
            let out = icmp_err(ROUTER_MAC, P0_MAC, vip(v6), &l3(&input), ty, code, 0, 1);
            let s = svc(v6, udp, vport(udp));
            v.push(
                case(
                    &format!("reject-{}-{}", fam(v6), pname(udp)),
                    "every dest has weight 0: port unreachable, nothing counted",
                )
                .config(format!("-A {s} -s wlc"))
                .config(format!("-a {s} -r {} -m -w 0", ep(rs(v6, 11), 8080)))
                .step("request", 0, input, "local port=0", Some(out))
                .drops("rejected=1")
                .done(),
            );
        }
    }
}

fn ns_frame(target: IpAddr, src: IpAddr, with_lladdr: bool, hop: u8) -> Vec<u8> {
    let t = match target {
        IpAddr::V6(a) => a.octets(),
        _ => unreachable!(),
    };
    let dst = a6(&format!(
        "ff02::1:ff{:02x}:{:02x}{:02x}",
        t[13], t[14], t[15]
    ));
    let mut payload = t.to_vec();
    if with_lladdr {
        payload.extend_from_slice(&[1, 1]);
        payload.extend_from_slice(&ROUTER_MAC);
    }
    let i = ip(src, dst).ttl(hop);
    let l4 = L4::Icmp {
        ty: 135,
        code: 0,
        rest: [0; 4],
        payload,
    };
    let emac = [0x33, 0x33, 0xff, t[13], t[14], t[15]];
    frame(emac, ROUTER_MAC, &i, &l4)
}

fn na_frame(eth_dst: Mac, our: Mac, target: IpAddr, dst: IpAddr, flags: u32) -> Vec<u8> {
    let t = match target {
        IpAddr::V6(a) => a.octets(),
        _ => unreachable!(),
    };
    let mut payload = t.to_vec();
    payload.extend_from_slice(&[2, 1]);
    payload.extend_from_slice(&our);
    let i = ip(target, dst).ttl(255);
    frame(
        eth_dst,
        our,
        &i,
        &L4::Icmp {
            ty: 136,
            code: 0,
            rest: flags.to_be_bytes(),
            payload,
        },
    )
}

/// ARP and neighbour discovery for owned addresses (issue 4 item 1).
fn arp_nd(v: &mut Vec<Case>) {
    const BC: Mac = [0xff; 6];
    let rtr4 = a4("198.51.100.254");
    let req = arp(BC, ROUTER_MAC, 1, ROUTER_MAC, rtr4, [0; 6], vip(false));
    let rep = arp(ROUTER_MAC, P0_MAC, 2, P0_MAC, vip(false), ROUTER_MAC, rtr4);
    v.push(
        case(
            "arp-vip-request",
            "ARP request for the VIP on its port: answered with the port's MAC",
        )
        .step("who-has VIP", 0, req.clone(), "local port=0", Some(rep))
        .done(),
    );
    v.push(
        case(
            "arp-vip-wrong-port",
            "ARP request for the VIP on another port: the host stack decides",
        )
        .step("who-has VIP on port 1", 1, req, "pass", None)
        .done(),
    );
    let rs11 = rs(false, 11);
    let req = arp(
        BC,
        host_mac(rs11),
        1,
        host_mac(rs11),
        rs11,
        [0; 6],
        lip(false),
    );
    let rep = arp(
        host_mac(rs11),
        P1_MAC,
        2,
        P1_MAC,
        lip(false),
        host_mac(rs11),
        rs11,
    );
    v.push(
        case(
            "arp-laddr-request",
            "ARP request from a real server for the full-NAT local address",
        )
        .step("who-has LIP", 1, req, "local port=1", Some(rep))
        .done(),
    );
    let req = arp(
        BC,
        ROUTER_MAC,
        1,
        ROUTER_MAC,
        rtr4,
        [0; 6],
        a4("198.51.100.77"),
    );
    v.push(
        case(
            "arp-other-request",
            "ARP request for an address we do not own: pass",
        )
        .step("who-has other", 0, req, "pass", None)
        .done(),
    );
    let rep = arp(
        P0_MAC,
        ROUTER_MAC,
        2,
        ROUTER_MAC,
        rtr4,
        P0_MAC,
        p0_addr(false),
    );
    v.push(
        case("arp-reply-passes", "ARP replies are the host stack's")
            .step("is-at", 0, rep, "pass", None)
            .done(),
    );
    let mut trunc = arp(
        [0xff; 6],
        ROUTER_MAC,
        1,
        ROUTER_MAC,
        rtr4,
        [0; 6],
        vip(false),
    );
    trunc.truncate(30);
    v.push(
        case("arp-truncated", "ARP frame cut short: dropped as malformed")
            .step("truncated ARP", 0, trunc, "drop malformed", None)
            .drops("malformed=1")
            .done(),
    );

    let rtr6 = a6("2001:db8:1::fe");
    let ns = ns_frame(vip(true), rtr6, true, 255);
    let na = na_frame(ROUTER_MAC, P0_MAC, vip(true), rtr6, 0x6000_0000);
    v.push(case("nd-vip-solicit", "neighbour solicitation for the VIP: solicited advertisement, S and O set (RFC 4861 §7.2.4)").step("NS for VIP", 0, ns, "local port=0", Some(na)).done());
    let ns = ns_frame(vip(true), a6("::"), false, 255);
    let na = na_frame(
        [0x33, 0x33, 0, 0, 0, 1],
        P0_MAC,
        vip(true),
        a6("ff02::1"),
        0x2000_0000,
    );
    v.push(
        case(
            "nd-vip-dad",
            "DAD probe for the VIP (unspecified source): advertisement to all-nodes, O only",
        )
        .step("DAD NS", 0, ns, "local port=0", Some(na))
        .done(),
    );
    let rs6 = rs(true, 11);
    let mut ns = ns_frame(lip(true), rs6, false, 255);
    ns[6..12].copy_from_slice(&host_mac(rs6));
    let na = na_frame(host_mac(rs6), P1_MAC, lip(true), rs6, 0x6000_0000);
    v.push(case("nd-laddr-solicit", "NS from a real server for the IPv6 local address, no link-layer option: answered to the frame's source MAC").step("NS for LIP", 1, ns, "local port=1", Some(na)).done());
    let ns = ns_frame(a6("2001:db8:1::77"), rtr6, true, 255);
    v.push(
        case("nd-other-solicit", "NS for an address we do not own: pass")
            .step("NS other", 0, ns, "pass", None)
            .done(),
    );
    let ns = ns_frame(vip(true), rtr6, true, 64);
    v.push(
        case(
            "nd-bad-hop-limit",
            "NS with hop limit ≠ 255 is invalid (RFC 4861 §7.1.1): not answered, passed",
        )
        .step("NS hop 64", 0, ns, "pass", None)
        .done(),
    );
}

/// Traffic that is not for a virtual service goes to the host stack untouched.
fn non_vip(v: &mut Vec<Case>) {
    for v6 in [false, true] {
        let other = if v6 {
            a6("2001:db8:1::77")
        } else {
            a4("198.51.100.77")
        };
        let f = from_client(&ip(client(v6), other), &tcp(40011, 80, "S"));
        v.push(
            with_config(
                case(
                    &format!("pass-non-vip-{}", fam(v6)),
                    "TCP to an address with no service: pass",
                ),
                service(M::Nat, v6, false, "rr", &[11]),
            )
            .step("SYN elsewhere", 0, f, "pass", None)
            .done(),
        );
        let f = from_client(&ip(client(v6), vip(v6)), &tcp(40012, 22, "S"));
        v.push(
            with_config(
                case(
                    &format!("pass-vip-other-port-{}", fam(v6)),
                    "VIP, port without a service: pass",
                ),
                service(M::Nat, v6, false, "rr", &[11]),
            )
            .step("SYN to :22", 0, f, "pass", None)
            .done(),
        );
        let f = from_client(&ip(client(v6), vip(v6)), &tcp(40013, 80, "A"));
        v.push(
            with_config(
                case(
                    &format!("pass-ack-no-conn-{}", fam(v6)),
                    "ACK without a connection cannot create one (docs/internals/connections.md, sloppy_tcp=0): pass",
                ),
                service(M::Nat, v6, false, "rr", &[11]),
            )
            .step("stray ACK", 0, f, "pass", None)
            .done(),
        );
        let (ty, _) = if v6 { (128u8, 0) } else { (8u8, 0) };
        let f = from_client(
            &ip(client(v6), vip(v6)),
            &L4::Icmp {
                ty,
                code: 0,
                rest: [0, 1, 0, 1],
                payload: b"ping".to_vec(),
            },
        );
        v.push(
            with_config(
                case(
                    &format!("pass-echo-vip-{}", fam(v6)),
                    "echo request to the VIP: the host stack answers (docs/internals/forwarding.md)",
                ),
                service(M::Nat, v6, false, "rr", &[11]),
            )
            .step("ping VIP", 0, f, "pass", None)
            .done(),
        );
        let f = from_client(
            &ip(client(v6), vip(v6)),
            &L4::Raw {
                proto: 50,
                bytes: vec![0; 16],
            },
        );
        v.push(
            with_config(
                case(
                    &format!("pass-esp-vip-{}", fam(v6)),
                    "a protocol IPVS does not handle (ESP): pass",
                ),
                service(M::Nat, v6, false, "rr", &[11]),
            )
            .step("ESP to VIP", 0, f, "pass", None)
            .done(),
        );
    }
    let f = eth(P0_MAC, ROUTER_MAC, 0x88cc, &[0; 46]);
    v.push(
        case("pass-lldp", "non-IP EtherType: pass")
            .step("LLDP", 0, f, "pass", None)
            .done(),
    );
    // A UDP reply from a real server that matches no connection is ordinary forwarded traffic.
    let f = from_rs(
        &ip(rs(false, 11), client(false)),
        &udp(RS_PORT, 40014, b"late"),
    );
    v.push(
        with_config(
            case(
                "pass-reply-no-conn",
                "reply from a real server with no connection: pass (docs/internals/forwarding.md out-hook accepts)",
            ),
            service(M::Nat, false, true, "rr", &[11]),
        )
        .step("orphan reply", 1, f, "pass", None)
        .done(),
    );
}

/// The fragments of the datagram `i`/`l4` (`i` without DF), cut after `cut` bytes of its
/// payload, each as a frame from the client (`from_rs`: from real server 11), in the order
/// given: IPv4 fragments keep `i`'s identification, IPv6 ones get the builder's 0xabcd.
fn frag_frames(i: &Ip, l4: &L4, cut: usize, from_rs_link: bool) -> [Vec<u8>; 2] {
    let whole = packet(i, l4);
    let body = &whole[if i.v6() { 40 } else { 20 }..];
    let proto = l4.proto(i.v6());
    let first = raw_packet(&i.clone().frag(0, true), proto, &body[..cut]);
    let last = raw_packet(
        &i.clone().frag((cut / 8) as u16, false),
        proto,
        &body[cut..],
    );
    let wrap = |l3: &[u8]| {
        if from_rs_link {
            eth(P1_MAC, host_mac(i.src), et_of(i), l3)
        } else {
            eth(P0_MAC, ROUTER_MAC, et_of(i), l3)
        }
    };
    [wrap(&first), wrap(&last)]
}

/// Fragments (docs/internals/forwarding.md#fragments): those for owned addresses and those
/// from NAT real servers are reassembled, scheduled and sent on in fragments no bigger than
/// the largest received; overlaps discard the datagram; others pass to the host stack.
fn fragments(v: &mut Vec<Case>) {
    for v6 in [false, true] {
        let i = ip(client(v6), vip(v6)).frag(0, true);
        let f = from_client(&i, &req_l4(true, 40015));
        v.push(
            with_config(
                case(
                    &format!("frag-first-{}", fam(v6)),
                    "first fragment of a datagram to the VIP: queued for reassembly (docs/internals/forwarding.md#fragments)",
                ),
                service(M::Nat, v6, true, "rr", &[11]),
            )
            .step("first fragment", 0, f, "queued", None)
            .done(),
        );
        let i = ip(client(v6), vip(v6)).frag(185, false);
        let f = eth(
            P0_MAC,
            ROUTER_MAC,
            et_of(&i),
            &raw_packet(&i, 17, &[0xab; 40]),
        );
        v.push(
            with_config(
                case(
                    &format!("frag-later-{}", fam(v6)),
                    "non-first fragment to the VIP: queued, never scheduled alone (docs/internals/forwarding.md#fragments)",
                ),
                service(M::Nat, v6, true, "rr", &[11]),
            )
            .step("later fragment", 0, f, "queued", None)
            .done(),
        );
        // A 1 600-byte query in two fragments (1 000 bytes, then the rest), last one first.
        let payload: Vec<u8> = (0..1600u32).map(|k| (k * 7 + 1) as u8).collect();
        let l4 = udp(40017, 53, &payload);
        let i = ip(client(v6), vip(v6)).df(false);
        let [first, last] = frag_frames(&i, &l4, 1000, false);
        for m in [M::Nat, M::Dr, M::FullNat] {
            let out = fwd_expect(m, &i, &l4, rs(v6, 11), (lip(v6), 1024), 1, true);
            let n = packet(&i, &l4).len();
            // Sent on in fragments no bigger than the first (1 020 / 1 048 bytes of IP
            // packet), never below 576 for IPv4 and 1 280 for IPv6.
            let verdict = if v6 {
                "fragment port=1 mtu=1280 ident=0xabcd"
            } else {
                "fragment port=1 mtu=1020"
            };
            v.push(
                with_config(
                    case(
                        &format!("frag-reasm-{}-{}", m.name(), fam(v6)),
                        "a fragmented UDP query to the VIP, last fragment first: reassembled, scheduled, rewritten whole and sent on in fragments no bigger than the largest received (docs/internals/forwarding.md#fragments)",
                    ),
                    service(m, v6, true, "rr", &[11]),
                )
                .step("last fragment", 0, last.clone(), "queued", None)
                .step("first fragment", 0, first.clone(), verdict, Some(out))
                .counters(1, 1, n, 0, 0)
                .live(1)
                .done(),
            );
        }
        // Overlap: the second fragment starts 8 bytes inside the first: the datagram is
        // discarded (RFC 5722; Linux does it for IPv4 too); its first fragment again starts anew.
        let whole = packet(&i, &l4);
        let body = whole[if v6 { 40 } else { 20 }..].to_vec();
        let over = raw_packet(&i.clone().frag(124, false), 17, &body[992..]);
        let over = eth(P0_MAC, ROUTER_MAC, et_of(&i), &over);
        v.push(
            with_config(
                case(
                    &format!("frag-overlap-{}", fam(v6)),
                    "overlapping fragments: the datagram is discarded and counted, nothing is scheduled (docs/internals/forwarding.md#fragments)",
                ),
                service(M::Nat, v6, true, "rr", &[11]),
            )
            .step("first fragment", 0, first.clone(), "queued", None)
            .step("overlapping last fragment", 0, over, "drop fragment", None)
            .step("the correct last fragment: a datagram without its first part now", 0, last.clone(), "queued", None)
            .drops("fragment=1")
            .done(),
        );
        // A fragmented reply from a NAT real server: reassembled, matched to its connection,
        // its source rewritten to the VIP.
        let req = req_l4(true, 40018);
        let reply = udp(RS_PORT, 40018, &payload);
        let ri = ip(rs(v6, 11), client(v6)).df(false);
        let [rfirst, rlast] = frag_frames(&ri, &reply, 1000, true);
        let out = frame(
            ROUTER_MAC,
            P0_MAC,
            &dec(&ri).src(vip(v6)),
            &reply.ports(53, 40018),
        );
        let verdict = if v6 {
            "fragment port=0 mtu=1280 ident=0xabcd"
        } else {
            "fragment port=0 mtu=1020"
        };
        let qi = ip(client(v6), vip(v6));
        let q = from_client(&qi, &req);
        let qout = fwd_expect(M::Nat, &qi, &req, rs(v6, 11), (lip(v6), 1024), 1, true);
        let nq = q.len() - 14;
        let nr = packet(&ri, &reply).len();
        v.push(
            with_config(
                case(
                    &format!("frag-reply-nat-{}", fam(v6)),
                    "a fragmented reply from a NAT real server: reassembled, source rewritten to the VIP, sent on in fragments (docs/internals/forwarding.md#fragments)",
                ),
                service(M::Nat, v6, true, "rr", &[11]),
            )
            .step("client request", 0, q, "transmit port=1", Some(qout))
            .step("reply, first fragment", 1, rfirst, "queued", None)
            .step("reply, last fragment", 1, rlast, verdict, Some(out))
            .counters(1, 1, nq, 1, nr)
            .live(1)
            .done(),
        );
        let i = ip(client(v6), p0_addr(v6)).frag(0, true);
        let f = from_client(&i, &req_l4(true, 40016));
        v.push(
            with_config(
                case(
                    &format!("frag-dip-{}", fam(v6)),
                    "fragment for the director's own interface address: the host stack's (pass)",
                ),
                service(M::Nat, v6, true, "rr", &[11]),
            )
            .step("fragment to the DIP", 0, f, "pass", None)
            .done(),
        );
        let other = if v6 {
            a6("2001:db8:1::77")
        } else {
            a4("198.51.100.77")
        };
        let i = ip(client(v6), other).frag(0, true);
        let f = from_client(&i, &req_l4(true, 40016));
        v.push(
            with_config(
                case(
                    &format!("frag-other-{}", fam(v6)),
                    "fragment for someone else: pass",
                ),
                service(M::Nat, v6, true, "rr", &[11]),
            )
            .step("fragment elsewhere", 0, f, "pass", None)
            .done(),
        );
    }
}

/// IPv4 options ride along unchanged (NAT rewrites around them; tunnels carry them inside).
fn options(v: &mut Vec<Case>) {
    // Record-route option (7 bytes, 2 slots) + EOL: 8 bytes.
    let opts = [7, 7, 4, 0, 0, 0, 0, 0];
    for m in [M::Nat, M::Dr, M::Ipip, M::FullNat, M::Gre] {
        for udp in [false, true] {
            let i = ip(client(false), vip(false)).options(&opts);
            let l4 = req_l4(udp, 40017);
            let input = from_client(&i, &l4);
            let out = fwd_expect(m, &i, &l4, rs(false, 11), (lip(false), 1024), 1, true);
            v.push(
                with_config(
                    case(
                        &format!("options-{}-v4-{}", m.name(), pname(udp)),
                        "IPv4 header with options (IHL 7): forwarded with the options intact",
                    ),
                    service(m, false, udp, "rr", &[11]),
                )
                .step(
                    "request with options",
                    0,
                    input.clone(),
                    "transmit port=1",
                    Some(out),
                )
                .counters(1, 1, input.len() - 14, 0, 0)
                .live(1)
                .done(),
            );
        }
    }
}

/// Malformed frames: dropped and counted, never a panic (docs/internals/architecture.md#rules-of-the-house).
fn malformed(v: &mut Vec<Case>) {
    let good4 = from_client(&ip(client(false), vip(false)), &tcp(40018, 80, "S"));
    let good6 = from_client(&ip(client(true), vip(true)), &tcp(40018, 80, "S"));
    let mut add = |name: &str, doc: &str, f: Vec<u8>, reason: &str| {
        v.push(
            with_config(case(name, doc), service(M::Nat, false, false, "rr", &[11]))
                .step("malformed frame", 0, f, &format!("drop {reason}"), None)
                .drops(&format!("{reason}=1"))
                .done(),
        );
    };
    add(
        "bad-runt",
        "frame shorter than an Ethernet header",
        good4[..10].to_vec(),
        "malformed",
    );
    add(
        "bad-ipv4-truncated",
        "IPv4 header cut short",
        good4[..14 + 12].to_vec(),
        "malformed",
    );
    let mut f = good4.clone();
    f.truncate(14 + 30);
    add(
        "bad-ipv4-total-len",
        "IPv4 total length beyond the frame",
        f,
        "malformed",
    );
    let mut f = good4.clone();
    f[14] = 0x44;
    add("bad-ipv4-ihl", "IPv4 IHL 4", f, "malformed");
    let mut f = good4.clone();
    f[14 + 10] ^= 0x55;
    add(
        "bad-ipv4-header-checksum",
        "IPv4 header checksum wrong: dropped, like ip_rcv does",
        f,
        "bad_checksum",
    );
    let mut f = good4.clone();
    f[14] = 0x65;
    add(
        "bad-ipv4-version",
        "EtherType IPv4, version 6",
        f,
        "malformed",
    );
    let mut f = good4.clone();
    f[14 + 20 + 12] = 0xf0;
    add(
        "bad-tcp-data-offset",
        "TCP data offset beyond the segment",
        f,
        "malformed",
    );
    let u = from_client(&ip(client(false), vip(false)), &udp(40018, 53, b"abc"));
    let mut f = u.clone();
    f[14 + 20 + 4] = 0x01;
    add(
        "bad-udp-length",
        "UDP length beyond the datagram",
        f,
        "malformed",
    );
    let mut f = good6.clone();
    f.truncate(14 + 30);
    add(
        "bad-ipv6-truncated",
        "IPv6 header cut short",
        f,
        "malformed",
    );
    let mut f = good6.clone();
    f[14 + 5] = 0xff;
    add(
        "bad-ipv6-payload-len",
        "IPv6 payload length beyond the frame",
        f,
        "malformed",
    );
    let mut f = good6;
    f.truncate(14 + 40 + 10);
    f[14 + 4..14 + 6].copy_from_slice(&10u16.to_be_bytes());
    add(
        "bad-ipv6-tcp-truncated",
        "TCP header cut short inside IPv6",
        f,
        "malformed",
    );
}

/// Transport checksums are not verified on the forward path (as in the kernel) but the
/// incremental update keeps a bad one bad; IPv4 UDP without checksum gets one computed on
/// NAT (docs/internals/forwarding.md#nat), DR leaves it alone.
fn checksums(v: &mut Vec<Case>) {
    for (m, v6) in [
        (M::Nat, false),
        (M::Nat, true),
        (M::Dr, false),
        (M::FullNat, false),
    ] {
        let i = ip(client(v6), vip(v6));
        let l4 = req_l4(false, 40019);
        let mut input = from_client(&i, &l4);
        let off = 14 + if v6 { 40 } else { 20 } + 16;
        let mut out = fwd_expect(m, &i, &l4, rs(v6, 11), (lip(v6), 1024), 1, true);
        // Corrupt the input checksum by +0x0101 (one's complement); the output must carry the
        // correct rewritten checksum corrupted by exactly the same amount.
        let bump = |b: &mut [u8]| {
            let c = u16::from_be_bytes([b[0], b[1]]);
            let s = u32::from(c) + 0x0101;
            let s = ((s & 0xffff) + (s >> 16)) as u16;
            b.copy_from_slice(&s.to_be_bytes());
        };
        bump(&mut input[off..off + 2]);
        bump(&mut out[off..off + 2]);
        v.push(
            with_config(case(&format!("badsum-tcp-{}-{}", m.name(), fam(v6)), "bad TCP checksum: forwarded (the kernel does not check without a helper), still bad by the same amount after the incremental update"), service(m, v6, false, "rr", &[11]))
                .flag("badsum")
                .step("SYN with a bad checksum", 0, input.clone(), "transmit port=1", Some(out))
                .counters(1, 1, input.len() - 14, 0, 0)
                .live(1)
                .done(),
        );
    }
    for m in [M::Nat, M::FullNat, M::Dr] {
        let i = ip(client(false), vip(false));
        let l4 = L4::Udp {
            sport: 40020,
            dport: 53,
            payload: b"no-checksum".to_vec(),
            zero: true,
        };
        let input = from_client(&i, &l4);
        let out = match m {
            // DR only touches TTL and MACs: the zero checksum stays.
            M::Dr => frame(host_mac(rs(false, 11)), P1_MAC, &dec(&i), &l4),
            _ => fwd_expect(
                m,
                &i,
                &udp(40020, 53, b"no-checksum"),
                rs(false, 11),
                (lip(false), 1024),
                1,
                true,
            ),
        };
        v.push(
            with_config(
                case(
                    &format!("udp-zero-csum-{}-v4", m.name()),
                    "IPv4 UDP with checksum 0: NAT computes one (docs/internals/forwarding.md), DR leaves 0",
                ),
                service(m, false, true, "rr", &[11]),
            )
            .step(
                "datagram without checksum",
                0,
                input.clone(),
                "transmit port=1",
                Some(out),
            )
            .counters(1, 1, input.len() - 14, 0, 0)
            .live(1)
            .done(),
        );
    }
}

/// Re-quotes a transport header: same bytes (checksum included, as the kernel leaves it)
/// with other ports.
fn requote(l4: &[u8], sport: u16, dport: u16) -> Vec<u8> {
    let mut b = l4.to_vec();
    b[0..2].copy_from_slice(&sport.to_be_bytes());
    b[2..4].copy_from_slice(&dport.to_be_bytes());
    b
}

/// ICMP errors for tracked connections relayed and rewritten both ways (docs/internals/forwarding.md#icmp-errors).
fn icmp_relay(v: &mut Vec<Case>) {
    for m in [M::Nat, M::Dr, M::Ipip, M::FullNat] {
        for v6 in [false, true] {
            let c = client(v6);
            let rsa = rs(v6, 11);
            let i = ip(c, vip(v6));
            let l4 = req_l4(true, 40021);
            let req = from_client(&i, &l4);
            let fwd = fwd_expect(m, &i, &l4, rsa, (lip(v6), 1024), 1, true);
            // The client reports our reply VIP:53 -> client:40021 unreachable.
            let qip = ip(vip(v6), c).ident(0x777);
            let ql4 = l4_bytes(&qip, &udp(53, 40021, b"answer"));
            let quote = raw_packet(&qip, 17, &ql4);
            let (ty, code) = if v6 { (1u8, 4u8) } else { (3u8, 3u8) };
            let ei = ip(c, vip(v6));
            let err = from_client(
                &ei,
                &L4::Icmp {
                    ty,
                    code,
                    rest: [0; 4],
                    payload: quote.clone(),
                },
            );
            let out = match m {
                M::Nat | M::FullNat => {
                    let (osrc, qdst, qdport) = if m == M::Nat {
                        (c, c, 40021)
                    } else {
                        (lip(v6), lip(v6), 1024)
                    };
                    let q2ip = qip.clone().src(rsa).dst(qdst);
                    let q2 = raw_packet(&q2ip, 17, &requote(&ql4, RS_PORT, qdport));
                    frame(
                        host_mac(rsa),
                        P1_MAC,
                        &dec(&ei).src(osrc).dst(rsa),
                        &L4::Icmp {
                            ty,
                            code,
                            rest: [0; 4],
                            payload: q2,
                        },
                    )
                }
                M::Dr => frame(
                    host_mac(rsa),
                    P1_MAC,
                    &dec(&ei),
                    &L4::Icmp {
                        ty,
                        code,
                        rest: [0; 4],
                        payload: quote.clone(),
                    },
                ),
                _ => fwd_expect(
                    M::Ipip,
                    &ei,
                    &L4::Icmp {
                        ty,
                        code,
                        rest: [0; 4],
                        payload: quote.clone(),
                    },
                    rsa,
                    (c, 0),
                    2,
                    true,
                ),
            };
            let n = req.len() + err.len() - 28;
            v.push(
                with_config(case(&format!("icmp-in-{}-{}", m.name(), fam(v6)), "client's ICMP error about a reply, relayed to the real server (ip_vs_in_icmp, docs/internals/forwarding.md); counted as incoming"), service(m, v6, true, "rr", &[11]))
                    .step("client request", 0, req, "transmit port=1", Some(fwd))
                    .step("client: port unreachable about our reply", 0, err, "transmit port=1", Some(out))
                    .counters(1, 2, n, 0, 0)
                    .live(1)
                    .done(),
            );
        }
    }
    for m in [M::Nat, M::FullNat] {
        for v6 in [false, true] {
            let c = client(v6);
            let rsa = rs(v6, 11);
            let i = ip(c, vip(v6));
            let l4 = req_l4(true, 40022);
            let req = from_client(&i, &l4);
            let fwd = fwd_expect(m, &i, &l4, rsa, (lip(v6), 1024), 1, true);
            // The real server reports the request it got (after DNAT / full-NAT) unreachable.
            let (qsrc, qsport) = if m == M::Nat {
                (c, 40022)
            } else {
                (lip(v6), 1024)
            };
            let qip = dec(&i).src(qsrc).dst(rsa);
            let ql4 = l4_bytes(&qip, &req_l4(true, qsport).ports(qsport, RS_PORT));
            let quote = raw_packet(&qip, 17, &ql4);
            let (ty, code) = if v6 { (1u8, 4u8) } else { (3u8, 3u8) };
            let ei = ip(rsa, qsrc);
            let err = from_rs(
                &ei,
                &L4::Icmp {
                    ty,
                    code,
                    rest: [0; 4],
                    payload: quote,
                },
            );
            let q2ip = qip.clone().src(c).dst(vip(v6));
            let q2 = raw_packet(&q2ip, 17, &requote(&ql4, 40022, 53));
            let out = frame(
                ROUTER_MAC,
                P0_MAC,
                &dec(&ei).src(vip(v6)).dst(c),
                &L4::Icmp {
                    ty,
                    code,
                    rest: [0; 4],
                    payload: q2,
                },
            );
            v.push(
                with_config(case(&format!("icmp-out-{}-{}", m.name(), fam(v6)), "real server's ICMP error about a request, rewritten to come from the VIP (ip_vs_out_icmp, docs/internals/forwarding.md); counted as outgoing"), service(m, v6, true, "rr", &[11]))
                    .step("client request", 0, req.clone(), "transmit port=1", Some(fwd))
                    .step("real server: port unreachable", 1, err.clone(), "transmit port=0", Some(out))
                    .counters(1, 1, req.len() - 14, 1, err.len() - 14)
                    .live(1)
                    .done(),
            );
        }
    }
    // Bad ICMP checksum on a related error: dropped (docs/internals/forwarding.md#icmp-errors "verify ICMP checksum (drop if bad)").
    for v6 in [false, true] {
        let c = client(v6);
        let i = ip(c, vip(v6));
        let l4 = req_l4(true, 40023);
        let req = from_client(&i, &l4);
        let fwd = fwd_expect(M::Nat, &i, &l4, rs(v6, 11), (c, 0), 1, true);
        let qip = ip(vip(v6), c);
        let quote = packet(&qip, &udp(53, 40023, b"answer"));
        let (ty, code) = if v6 { (1u8, 4u8) } else { (3u8, 3u8) };
        let mut err = from_client(
            &ip(c, vip(v6)),
            &L4::Icmp {
                ty,
                code,
                rest: [0; 4],
                payload: quote,
            },
        );
        let at = 14 + if v6 { 40 } else { 20 } + 2;
        err[at] ^= 0x10;
        v.push(
            with_config(
                case(
                    &format!("icmp-in-badsum-{}", fam(v6)),
                    "related ICMP error with a bad checksum: dropped (docs/internals/forwarding.md)",
                ),
                service(M::Nat, v6, true, "rr", &[11]),
            )
            .step(
                "client request",
                0,
                req.clone(),
                "transmit port=1",
                Some(fwd),
            )
            .step("corrupted ICMP error", 0, err, "drop bad_checksum", None)
            .counters(1, 1, req.len() - 14, 0, 0)
            .drops("bad_checksum=1")
            .live(1)
            .done(),
        );
    }
    for v6 in [false, true] {
        let c = client(v6);
        let quote = packet(&ip(vip(v6), c), &udp(53, 40024, b"answer"));
        let (ty, code) = if v6 { (1u8, 4u8) } else { (3u8, 3u8) };
        let err = from_client(
            &ip(c, vip(v6)),
            &L4::Icmp {
                ty,
                code,
                rest: [0; 4],
                payload: quote,
            },
        );
        v.push(
            with_config(
                case(
                    &format!("icmp-unrelated-{}", fam(v6)),
                    "ICMP error for no connection: pass (schedule_icmp=0)",
                ),
                service(M::Nat, v6, true, "rr", &[11]),
            )
            .step("unrelated ICMP error", 0, err, "pass", None)
            .done(),
        );
    }
}

/// ICMP errors about the director's own tunnel packets (docs/internals/forwarding.md#icmp-errors): the client gets FRAG_NEEDED
/// (if its packet had DF) with the reported MTU less 20, or the error relayed.
fn tunnel_icmp(v: &mut Vec<Case>) {
    for m in [M::Ipip, M::Gre, M::Gue] {
        let c = client(false);
        let rsa = rs(false, 11);
        let i = ip(c, vip(false));
        let l4 = req_l4(false, 40025);
        let req = from_client(&i, &l4);
        let fwd = fwd_expect(m, &i, &l4, rsa, (c, 0), 1, true);
        // A router on the way quotes the outer packet: outer header + 8 bytes for IPIP are
        // the inner IP header's first 8 bytes; take the whole tunnel packet up to 28 bytes past
        // the inner header so ports are visible.
        let outer_l3 = &fwd[14..];
        let inner_at = 20
            + match m {
                M::Gre => 4,
                M::Gue => 12,
                _ => 0,
            };
        let quote = outer_l3[..inner_at + 28].to_vec();
        let err = frame(
            P1_MAC,
            host_mac(rsa),
            &ip(rsa, p1_addr(false)),
            &L4::Icmp {
                ty: 3,
                code: 4,
                rest: [0, 0, 0x05, 0x78],
                payload: quote.clone(),
            },
        );
        let inner = quote[inner_at..].to_vec();
        let out = icmp_err(ROUTER_MAC, P0_MAC, vip(false), &inner, 3, 4, 1400 - 20, 2);
        v.push(
            with_config(case(&format!("tunicmp-fragneeded-{}", m.name()), "FRAG_NEEDED (MTU 1400) about our tunnel packet: the client learns 1380 from the VIP (docs/internals/forwarding.md)"), service(m, false, false, "rr", &[11]))
                .step("client SYN (DF)", 0, req.clone(), "transmit port=1", Some(fwd))
                .step("FRAG_NEEDED about the tunnel packet", 1, err, "local port=0", Some(out))
                .counters(1, 1, req.len() - 14, 0, 0)
                .drops("tunnel_icmp=1")
                .live(1)
                .done(),
        );
    }
    // Without DF on the client's packet nothing is sent back.
    let c = client(false);
    let rsa = rs(false, 11);
    let i = ip(c, vip(false)).df(false);
    let l4 = req_l4(false, 40026);
    let req = from_client(&i, &l4);
    let fwd = fwd_expect(M::Ipip, &i, &l4, rsa, (c, 0), 1, true);
    let quote = fwd[14..14 + 48].to_vec();
    let err = frame(
        P1_MAC,
        host_mac(rsa),
        &ip(rsa, p1_addr(false)),
        &L4::Icmp {
            ty: 3,
            code: 4,
            rest: [0, 0, 0x05, 0x78],
            payload: quote,
        },
    );
    v.push(
        with_config(
            case(
                "tunicmp-fragneeded-nodf",
                "FRAG_NEEDED about a tunnel packet whose inner packet had no DF: consumed",
            ),
            service(M::Ipip, false, false, "rr", &[11]),
        )
        .step(
            "client SYN without DF",
            0,
            req.clone(),
            "transmit port=1",
            Some(fwd),
        )
        .step("FRAG_NEEDED", 1, err, "drop tunnel_icmp", None)
        .counters(1, 1, req.len() - 14, 0, 0)
        .drops("tunnel_icmp=1")
        .live(1)
        .done(),
    );
    // Host unreachable about a tunnel packet: relayed to the client with type and code.
    let i = ip(c, vip(false));
    let l4 = req_l4(false, 40027);
    let req = from_client(&i, &l4);
    let fwd = fwd_expect(M::Ipip, &i, &l4, rsa, (c, 0), 1, true);
    let quote = fwd[14..14 + 48].to_vec();
    let err = frame(
        P1_MAC,
        host_mac(rsa),
        &ip(p1_addr(false), p1_addr(false)).src(a4("192.168.1.254")),
        &L4::Icmp {
            ty: 3,
            code: 1,
            rest: [0; 4],
            payload: quote.clone(),
        },
    );
    let mut err = err;
    err[6..12].copy_from_slice(&host_mac(a4("192.168.1.254")));
    let out = icmp_err(ROUTER_MAC, P0_MAC, vip(false), &quote[20..], 3, 1, 0, 2);
    v.push(
        with_config(case("tunicmp-host-unreach", "host unreachable about a tunnel packet: relayed to the client as host unreachable (docs/internals/forwarding.md)"), service(M::Ipip, false, false, "rr", &[11]))
            .step("client SYN", 0, req.clone(), "transmit port=1", Some(fwd))
            .step("router: host unreachable", 1, err, "local port=0", Some(out))
            .counters(1, 1, req.len() - 14, 0, 0)
            .drops("tunnel_icmp=1")
            .live(1)
            .done(),
    );
    // 6in6: PACKET_TOO_BIG 1400 → the client learns 1360.
    let c6 = client(true);
    let rs6 = rs(true, 11);
    let i = ip(c6, vip(true));
    let l4 = req_l4(false, 40028);
    let req = from_client(&i, &l4);
    let fwd = fwd_expect(M::Ipip, &i, &l4, rs6, (c6, 0), 1, true);
    let quote = fwd[14..14 + 40 + 40 + 8].to_vec();
    let err = frame(
        P1_MAC,
        host_mac(rs6),
        &ip(rs6, p1_addr(true)),
        &L4::Icmp {
            ty: 2,
            code: 0,
            rest: 1400u32.to_be_bytes(),
            payload: quote.clone(),
        },
    );
    let out = icmp_err(ROUTER_MAC, P0_MAC, vip(true), &quote[40..], 2, 0, 1360, 2);
    v.push(
        with_config(
            case(
                "tunicmp-ptb-6in6",
                "PACKET_TOO_BIG (1400) about a 6in6 tunnel packet: the client learns 1360",
            ),
            service(M::Ipip, true, false, "rr", &[11]),
        )
        .step("client SYN", 0, req.clone(), "transmit port=1", Some(fwd))
        .step("PACKET_TOO_BIG", 1, err, "local port=0", Some(out))
        .counters(1, 1, req.len() - 14, 0, 0)
        .drops("tunnel_icmp=1")
        .live(1)
        .done(),
    );
}

/// Persistence (docs/internals/persistence.md): a second connection of the same client goes to the same real server,
/// where rr alone would alternate.
fn persistence(v: &mut Vec<Case>) {
    for m in [M::Dr, M::Nat] {
        for v6 in [false, true] {
            let s = svc(v6, false, 80);
            let i = ip(client(v6), vip(v6));
            let (a, b) = (tcp(40030, 80, "S"), tcp(40031, 80, "S"));
            let (fa, fb) = (from_client(&i, &a), from_client(&i, &b));
            let oa = fwd_expect(m, &i, &a, rs(v6, 12), (c0(), 0), 1, true);
            let ob = fwd_expect(m, &i, &b, rs(v6, 12), (c0(), 0), 2, true);
            let n = fa.len() + fb.len() - 28;
            v.push(
                with_config(case(&format!("persist-{}-{}", m.name(), fam(v6)), "-p 300: both connections of the client land on the same real server (template, docs/internals/persistence.md)"), {
                    let mut l = vec![format!("-A {s} -s rr -p 300")];
                    l.extend(dests(m, v6, false, &[11, 12]));
                    l
                })
                    .step("first connection", 0, fa, "transmit port=1", Some(oa))
                    .step("second connection, other source port", 0, fb, "transmit port=1", Some(ob))
                    .counters(2, 2, n, 0, 0)
                    .live(3)
                    .done(),
            );
        }
    }
    // -M 255.255.255.0: two clients of one /24 share the template.
    let s = svc(false, false, 80);
    let (i1, i2) = (
        ip(client(false), vip(false)),
        ip(client2(false), vip(false)),
    );
    let l4 = tcp(40032, 80, "S");
    let (f1, f2) = (from_client(&i1, &l4), from_client(&i2, &l4));
    let (o1, o2) = (
        fwd_expect(M::Dr, &i1, &l4, rs(false, 12), (c0(), 0), 1, true),
        fwd_expect(M::Dr, &i2, &l4, rs(false, 12), (c0(), 0), 1, true),
    );
    v.push(
        case(
            "persist-netmask-v4",
            "-p 300 -M 255.255.255.0: clients of the same /24 share one template",
        )
        .config(format!("-A {s} -s rr -p 300 -M 255.255.255.0"))
        .config(format!("-a {s} -r {} -g", ep(rs(false, 11), 80)))
        .config(format!("-a {s} -r {} -g", ep(rs(false, 12), 80)))
        .step("client .5", 0, f1.clone(), "transmit port=1", Some(o1))
        .step("client .6", 0, f2.clone(), "transmit port=1", Some(o2))
        .counters(2, 2, f1.len() + f2.len() - 28, 0, 0)
        .live(3)
        .done(),
    );
    // Without persistence the same two connections alternate (control case).
    let i = ip(client(false), vip(false));
    let (a, b) = (tcp(40030, 80, "S"), tcp(40031, 80, "S"));
    let (fa, fb) = (from_client(&i, &a), from_client(&i, &b));
    v.push(
        case(
            "persist-control-rr",
            "control: without -p, rr sends the second connection to the other real server",
        )
        .config(format!("-A {s} -s rr"))
        .config(format!("-a {s} -r {} -g", ep(rs(false, 11), 80)))
        .config(format!("-a {s} -r {} -g", ep(rs(false, 12), 80)))
        .step(
            "first connection",
            0,
            fa.clone(),
            "transmit port=1",
            Some(fwd_expect(M::Dr, &i, &a, rs(false, 12), (c0(), 0), 1, true)),
        )
        .step(
            "second connection",
            0,
            fb.clone(),
            "transmit port=1",
            Some(fwd_expect(M::Dr, &i, &b, rs(false, 11), (c0(), 0), 1, true)),
        )
        .counters(2, 2, fa.len() + fb.len() - 28, 0, 0)
        .live(2)
        .done(),
    );
}

fn c0() -> IpAddr {
    client(false)
}

/// Firewall-mark services: ports 80 and 443 joined by an nft-style mark rule (-f 6666).
fn fwmark(v: &mut Vec<Case>) {
    for (m, v6, persist) in [
        (M::Dr, false, false),
        (M::Dr, true, false),
        (M::Nat, false, false),
        (M::Nat, true, false),
        (M::Dr, false, true),
        (M::Nat, true, true),
    ] {
        let six = if v6 { " -6" } else { "" };
        let s = format!("-f 6666{six}");
        let i = ip(client(v6), vip(v6));
        let (a, b) = (tcp(40040, 80, "S"), tcp(40041, 443, "S"));
        let (fa, fb) = (from_client(&i, &a), from_client(&i, &b));
        // NAT dests with port 0 keep the packet's port (docs/internals/connections.md#life-of-an-entry "dport = dest.port ? : vport").
        let exp = |l4: &L4, n: u8, ident: u16| {
            let rsa = rs(v6, n);
            match m {
                M::Nat => frame(host_mac(rsa), P1_MAC, &dec(&i).dst(rsa), l4),
                _ => fwd_expect(m, &i, l4, rsa, (c0(), 0), ident, true),
            }
        };
        let second = if persist { 12 } else { 11 };
        let flag = if m == M::Nat { "-m" } else { "-g" };
        let addr = |n: u8| match rs(v6, n) {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        v.push(
            case(
                &format!("fwmark-{}-{}{}", m.name(), fam(v6), if persist { "-persist" } else { "" }),
                if persist { "fwmark service with -p: ports 80 and 443 of one client go to the same real server" } else { "fwmark service: ports 80 and 443 are one service, rr over both" },
            )
            .config(format!("mark 6 {} 80-443 6666", vip(v6)))
            .config(format!("-A {s} -s rr{}", if persist { " -p 300" } else { "" }))
            .config(format!("-a {s} -r {} {flag}", addr(11)))
            .config(format!("-a {s} -r {} {flag}", addr(12)))
            .step("port 80", 0, fa.clone(), "transmit port=1", Some(exp(&a, 12, 1)))
            .step("port 443", 0, fb.clone(), "transmit port=1", Some(exp(&b, second, 2)))
            .counters(2, 2, fa.len() + fb.len() - 28, 0, 0)
            .live(if persist { 3 } else { 2 })
            .done(),
        );
    }
}

/// One-packet scheduling (-o, docs/internals/persistence.md#one-packet-scheduling): each UDP datagram scheduled on its own, nothing kept.
fn one_packet(v: &mut Vec<Case>) {
    for v6 in [false, true] {
        let s = svc(v6, true, 53);
        let i = ip(client(v6), vip(v6));
        let l4 = udp(40050, 53, b"q");
        let f = from_client(&i, &l4);
        let o12 = fwd_expect(M::Nat, &i, &l4, rs(v6, 12), (c0(), 0), 1, true);
        let o11 = fwd_expect(M::Nat, &i, &l4, rs(v6, 11), (c0(), 0), 1, true);
        v.push(
            case(&format!("ops-udp-{}", fam(v6)), "-o: the same flow's datagrams are scheduled one by one (rr alternates), no connection stays")
                .config(format!("-A {s} -s rr -o"))
                .config(format!("-a {s} -r {} -m", ep(rs(v6, 11), RS_PORT)))
                .config(format!("-a {s} -r {} -m", ep(rs(v6, 12), RS_PORT)))
                .step("datagram 1", 0, f.clone(), "transmit port=1", Some(o12))
                .step("datagram 2, same flow", 0, f.clone(), "transmit port=1", Some(o11))
                .counters(2, 2, 2 * (f.len() - 14), 0, 0)
                .live(0)
                .done(),
        );
    }
    let s = svc(false, true, 53);
    let i = ip(client(false), vip(false));
    let l4 = udp(40051, 53, b"q");
    let f = from_client(&i, &l4);
    let o = fwd_expect(M::Nat, &i, &l4, rs(false, 11), (c0(), 0), 1, true);
    let r = from_rs(
        &ip(rs(false, 11), client(false)),
        &udp(RS_PORT, 40051, b"a"),
    );
    v.push(
        case(
            "ops-udp-reply-unmatched",
            "-o: the reply matches no connection (one-packet entries are never hashed): pass",
        )
        .config(format!("-A {s} -s rr -o"))
        .config(format!("-a {s} -r {} -m", ep(rs(false, 11), RS_PORT)))
        .step("datagram", 0, f.clone(), "transmit port=1", Some(o))
        .step("reply", 1, r, "pass", None)
        .counters(1, 1, f.len() - 14, 0, 0)
        .live(0)
        .done(),
    );
}

/// A deleted destination (docs/internals/connections.md#when-a-packet-meets-an-existing-entry): its connection's packets are dropped silently, or with
/// expire_nodest_conn=1 the connection is expired and a SYN rescheduled.
fn dest_gone(v: &mut Vec<Case>) {
    for v6 in [false, true] {
        let s = svc(v6, false, 80);
        let i = ip(client(v6), vip(v6));
        let syn = tcp(40060, 80, "S");
        let ack = tcp(40060, 80, "A");
        let f1 = from_client(&i, &syn);
        let o1 = fwd_expect(M::Nat, &i, &syn, rs(v6, 11), (c0(), 0), 1, true);
        v.push(
            case(
                &format!("nodest-drop-{}", fam(v6)),
                "dest deleted, expire_nodest_conn=0: packets of its connection are dropped",
            )
            .config(format!("-A {s} -s rr"))
            .config(format!("-a {s} -r {} -m", ep(rs(v6, 11), RS_PORT)))
            .step("SYN", 0, f1.clone(), "transmit port=1", Some(o1))
            .step(
                "ACK after -d",
                0,
                from_client(&i, &ack),
                "drop dest_unavailable",
                None,
            )
            .cmd(&format!("-d {s} -r {}", ep(rs(v6, 11), RS_PORT)))
            .counters(1, 1, f1.len() - 14, 0, 0)
            .drops("dest_unavailable=1")
            .live(1)
            .done(),
        );
    }
    let s = svc(false, false, 80);
    let i = ip(client(false), vip(false));
    let syn = tcp(40061, 80, "S");
    let f = from_client(&i, &syn);
    v.push(
        case("nodest-expire-reschedule", "expire_nodest_conn=1: the dead connection is expired and the SYN scheduled to the remaining dest")
            .config(format!("-A {s} -s rr"))
            .config(format!("-a {s} -r {} -m", ep(rs(false, 11), RS_PORT)))
            .config(format!("-a {s} -r {} -m", ep(rs(false, 12), RS_PORT)))
            .config("sysctl expire_nodest_conn 1")
            .step("SYN", 0, f.clone(), "transmit port=1", Some(fwd_expect(M::Nat, &i, &syn, rs(false, 12), (c0(), 0), 1, true)))
            .step("SYN again after -d of its dest", 0, f.clone(), "transmit port=1", Some(fwd_expect(M::Nat, &i, &syn, rs(false, 11), (c0(), 0), 1, true)))
            .cmd(&format!("-d {s} -r {}", ep(rs(false, 12), RS_PORT)))
            .counters(2, 2, 2 * (f.len() - 14), 0, 0)
            .live(1)
            .done(),
    );
}

/// Full-NAT local ports: distinct per connection, collision-free per real server.
fn fullnat_ports(v: &mut Vec<Case>) {
    for v6 in [false, true] {
        let (i1, i2) = (ip(client(v6), vip(v6)), ip(client2(v6), vip(v6)));
        let l4 = tcp(40070, 80, "S");
        let (f1, f2) = (from_client(&i1, &l4), from_client(&i2, &l4));
        v.push(
            with_config(case(&format!("fullnat-two-clients-{}", fam(v6)), "two clients with the same source port to one real server get local ports 1024 and 1025"), service(M::FullNat, v6, false, "rr", &[11]))
                .step("client 1", 0, f1.clone(), "transmit port=1", Some(fwd_expect(M::FullNat, &i1, &l4, rs(v6, 11), (lip(v6), 1024), 1, true)))
                .step("client 2", 0, f2.clone(), "transmit port=1", Some(fwd_expect(M::FullNat, &i2, &l4, rs(v6, 11), (lip(v6), 1025), 1, true)))
                .counters(2, 2, f1.len() + f2.len() - 28, 0, 0)
                .live(2)
                .done(),
        );
    }
    let s = svc(false, false, 80);
    let (i1, i2) = (
        ip(client(false), vip(false)),
        ip(client2(false), vip(false)),
    );
    let l4 = tcp(40071, 80, "S");
    let (f1, f2) = (from_client(&i1, &l4), from_client(&i2, &l4));
    v.push(
        with_config(case("fullnat-port-exhausted", "local port range of one port: a second connection to the same real server finds it taken and is dropped"), service(M::FullNat, false, false, "rr", &[11]))
            .config("lport 5000 5000")
            .step("client 1", 0, f1.clone(), "transmit port=1", Some(fwd_expect(M::FullNat, &i1, &l4, rs(false, 11), (lip(false), 5000), 1, true)))
            .step("client 2", 0, f2.clone(), "drop no_local_address", None)
            .counters(1, 1, f1.len() - 14, 0, 0)
            .drops("no_local_address=1")
            .live(1)
            .done(),
    );
    v.push(
        case("fullnat-port-reused-other-rs", "the same local port serves two real servers: the tuple <LIP, lport, RS, port> is what must be unique")
            .config(format!("-A {s} -s rr"))
            .config(format!("-a {s} -r {} --fullnat", ep(rs(false, 11), RS_PORT)))
            .config(format!("-a {s} -r {} --fullnat", ep(rs(false, 12), RS_PORT)))
            .config(format!("--add-laddr {s} -z {}", lip(false)))
            .config("lport 5000 5000")
            .step("client 1 → rs 12", 0, f1.clone(), "transmit port=1", Some(fwd_expect(M::FullNat, &i1, &l4, rs(false, 12), (lip(false), 5000), 1, true)))
            .step("client 2 → rs 11", 0, f2.clone(), "transmit port=1", Some(fwd_expect(M::FullNat, &i2, &l4, rs(false, 11), (lip(false), 5000), 1, true)))
            .counters(2, 2, f1.len() + f2.len() - 28, 0, 0)
            .live(2)
            .done(),
    );
    v.push(
        case(
            "fullnat-no-laddr",
            "full-NAT service without a local address: dropped",
        )
        .config(format!("-A {s} -s rr"))
        .config(format!(
            "-a {s} -r {} --fullnat",
            ep(rs(false, 11), RS_PORT)
        ))
        .step("client", 0, f1, "drop no_local_address", None)
        .drops("no_local_address=1")
        .done(),
    );
}

fn misc(v: &mut Vec<Case>) {
    // cache_bypass (docs/internals/forwarding.md#when-nothing-can-be-scheduled): a fwmark service with no usable dest forwards the packet unchanged
    // to its original destination; the bypass connection has no dest, so nothing is counted.
    let other = a4("198.51.100.77");
    let i = ip(client(false), other);
    let l4 = tcp(40090, 80, "S");
    let f = from_client(&i, &l4);
    v.push(
        case("bypass-fwmark-v4", "cache_bypass=1, fwmark service without a usable dest: forwarded unchanged toward the original destination")
            .config("sysctl cache_bypass 1")
            .config(format!("mark 6 {other} 80-80 7"))
            .config("-A -f 7 -s rr")
            .config(format!("-a -f 7 -r {} -g -w 0", rs(false, 11)))
            .step("SYN to a marked address", 0, f, "transmit port=0", Some(frame(ROUTER_MAC, P0_MAC, &dec(&i), &l4)))
            .live(1)
            .done(),
    );
    // GUE with --tun-remcsum and complete inner checksums (frames from the wire): no remote
    // checksum option (the kernel adds it only for CHECKSUM_PARTIAL), UDP checksum computed.
    for v6 in [false, true] {
        let s = svc(v6, false, 80);
        let i = ip(client(v6), vip(v6));
        let l4 = tcp(40091, 80, "S");
        let f = from_client(&i, &l4);
        let out = fwd_expect(M::GueCsum, &i, &l4, rs(v6, 11), (c0(), 0), 1, true);
        v.push(
            case(&format!("fwd-tun-gue-remcsum-{}-tcp", fam(v6)), "--tun-remcsum with a complete inner checksum: plain GUE header, outer UDP checksum computed (docs/internals/forwarding.md)")
                .config(format!("-A {s} -s rr"))
                .config(format!("-a {s} -r {} -i --tun-type gue --tun-port {GUE_PORT} --tun-remcsum", ep(rs(v6, 11), 80)))
                .step("SYN", 0, f.clone(), "transmit port=1", Some(out))
                .counters(1, 1, f.len() - 14, 0, 0)
                .live(1)
                .done(),
        );
    }
    // Tunnel MTU below the outer family's minimum (1280 for IPv6): dropped (docs/internals/forwarding.md#mtu).
    let i = ip(client(true), vip(true));
    let l4 = tcp(40092, 80, "S");
    let f = from_client(&i, &l4);
    v.push(
        with_config(
            case(
                "tun-gue-v6-mtu-below-minimum",
                "6in6 GUE on a 1300-byte link leaves 1248 < 1280: every packet dropped (docs/internals/forwarding.md)",
            ),
            service(M::Gue, true, false, "rr", &[11]),
        )
        .config("mtu 1 1300")
        .step("SYN", 0, f.clone(), "drop rewrite", None)
        .counters(1, 1, f.len() - 14, 0, 0)
        .drops("rewrite=1")
        .live(1)
        .done(),
    );
    // IPv6 UDP with checksum 0 (invalid, RFC 8200 §8.1) to a NAT service: a checksum is
    // computed on the rewrite.
    let i = ip(client(true), vip(true));
    let l4 = L4::Udp {
        sport: 40093,
        dport: 53,
        payload: b"zero".to_vec(),
        zero: true,
    };
    let f = from_client(&i, &l4);
    let out = fwd_expect(
        M::Nat,
        &i,
        &udp(40093, 53, b"zero"),
        rs(true, 11),
        (c0(), 0),
        1,
        true,
    );
    v.push(
        with_config(
            case(
                "udp-zero-csum-nat-v6",
                "IPv6 UDP with checksum 0: NAT computes a valid checksum",
            ),
            service(M::Nat, true, true, "rr", &[11]),
        )
        .step("datagram", 0, f.clone(), "transmit port=1", Some(out))
        .counters(1, 1, f.len() - 14, 0, 0)
        .live(1)
        .done(),
    );
    // No route / unresolved neighbour toward the real server: counted in, then dropped.
    for v6 in [false, true] {
        let s = svc(v6, false, 80);
        let i = ip(client(v6), vip(v6));
        let f = from_client(&i, &tcp(40080, 80, "S"));
        v.push(
            case(
                &format!("no-route-{}", fam(v6)),
                "real server's neighbour unresolved: dropped after accounting",
            )
            .config(format!("-A {s} -s rr"))
            .config(format!("-a {s} -r {} -m", ep(rs(v6, 99), RS_PORT)))
            .step("SYN", 0, f.clone(), "drop no_route", None)
            .counters(1, 1, f.len() - 14, 0, 0)
            .drops("no_route=1")
            .live(1)
            .done(),
        );
    }
    // 802.1Q tagged frames keep their tag.
    for m in [M::Nat, M::Dr] {
        let i = ip(client(false), vip(false));
        let l4 = tcp(40081, 80, "S");
        let f = eth_vlan(P0_MAC, ROUTER_MAC, 100, ET_IPV4, &packet(&i, &l4));
        let plain = fwd_expect(m, &i, &l4, rs(false, 11), (c0(), 0), 1, true);
        let out = eth_vlan(host_mac(rs(false, 11)), P1_MAC, 100, ET_IPV4, &plain[14..]);
        v.push(
            with_config(
                case(
                    &format!("vlan-{}-v4", m.name()),
                    "802.1Q tagged request: rewritten, tag kept",
                ),
                service(m, false, false, "rr", &[11]),
            )
            .step("tagged SYN", 0, f.clone(), "transmit port=1", Some(out))
            .counters(1, 1, f.len() - 18, 0, 0)
            .live(1)
            .done(),
        );
    }
    // SCTP NAT (CRC32c recomputed, docs/internals/forwarding.md#nat) and DR.
    for m in [M::Nat, M::Dr] {
        let s = format!("--sctp-service {}", ep(vip(false), 80));
        let i = ip(client(false), vip(false));
        // INIT chunk: type 1, flags 0, length 20, initiate tag, a_rwnd, streams, TSN.
        let chunk = vec![
            1, 0, 0, 20, 0, 0, 0, 1, 0, 1, 0, 0, 0, 10, 0, 10, 0, 0, 0, 1,
        ];
        let l4 = L4::Sctp {
            sport: 40082,
            dport: 80,
            vtag: 0,
            chunks: chunk.clone(),
        };
        let f = from_client(&i, &l4);
        let rsa = rs(false, 11);
        let out = match m {
            M::Nat => frame(
                host_mac(rsa),
                P1_MAC,
                &dec(&i).dst(rsa),
                &L4::Sctp {
                    sport: 40082,
                    dport: RS_PORT,
                    vtag: 0,
                    chunks: chunk,
                },
            ),
            _ => frame(host_mac(rsa), P1_MAC, &dec(&i), &l4),
        };
        let port = if m == M::Nat { RS_PORT } else { 80 };
        v.push(
            case(
                &format!("sctp-{}-v4", m.name()),
                "SCTP INIT: NAT recomputes the CRC32c (docs/internals/forwarding.md), DR leaves the packet",
            )
            .config(format!("-A {s} -s rr"))
            .config(format!("-a {s} -r {} {}", ep(rsa, port), m.flag()))
            .step("INIT", 0, f.clone(), "transmit port=1", Some(out))
            .counters(1, 1, f.len() - 14, 0, 0)
            .live(1)
            .done(),
        );
    }
    // ECN CE inside becomes ECT(0) on the outer header; DSCP copied (docs/internals/forwarding.md#tunnelling).
    let i = ip(client(false), vip(false)).tos(0xb8 | 3);
    let l4 = tcp(40083, 80, "S");
    let f = from_client(&i, &l4);
    v.push(
        with_config(
            case(
                "tun-ipip-ecn-ce",
                "inner DSCP EF + ECN CE: outer TOS 0xba (CE → ECT(0), INET_ECN_encapsulate)",
            ),
            service(M::Ipip, false, false, "rr", &[11]),
        )
        .step(
            "SYN with CE",
            0,
            f.clone(),
            "transmit port=1",
            Some(fwd_expect(
                M::Ipip,
                &i,
                &l4,
                rs(false, 11),
                (c0(), 0),
                1,
                true,
            )),
        )
        .counters(1, 1, f.len() - 14, 0, 0)
        .live(1)
        .done(),
    );
    // A TCP RST from the client on a NAT connection is forwarded (state CLOSE).
    let i = ip(client(false), vip(false));
    let (syn, rst) = (tcp(40084, 80, "S"), tcp(40084, 80, "R"));
    let (f1, f2) = (from_client(&i, &syn), from_client(&i, &rst));
    v.push(
        with_config(
            case(
                "nat-v4-rst",
                "client RST on a NAT connection: forwarded like any packet of the connection",
            ),
            service(M::Nat, false, false, "rr", &[11]),
        )
        .step(
            "SYN",
            0,
            f1.clone(),
            "transmit port=1",
            Some(fwd_expect(
                M::Nat,
                &i,
                &syn,
                rs(false, 11),
                (c0(), 0),
                1,
                true,
            )),
        )
        .step(
            "RST",
            0,
            f2.clone(),
            "transmit port=1",
            Some(fwd_expect(
                M::Nat,
                &i,
                &rst,
                rs(false, 11),
                (c0(), 0),
                1,
                true,
            )),
        )
        .counters(1, 2, f1.len() + f2.len() - 28, 0, 0)
        .live(1)
        .done(),
    );
}
