//! The SYN proxy through `Plane::process` (docs/internals/syn-flood.md): a client's handshake
//! answered with a cookie and no entry, spoofed SYNs and forged ACKs leaving nothing behind,
//! the real server's handshake completed with sequence numbers shifted both ways, for NAT and
//! full-NAT. Frames are built and read back with etherparse, every checksum verified.

#[path = "golden_src/build.rs"]
#[allow(dead_code)]
mod build;
#[path = "golden_src/fixture.rs"]
#[allow(dead_code)]
mod fixture;

use std::net::IpAddr;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TcpOptionElement, TransportSlice};
use fixture::{build as build_rig, host_mac, Rig, Zero, HEADROOM, P0_MAC, P1_MAC, ROUTER_MAC};
use rvs_core::conn::state::tcp;
use rvs_core::Time;
use rvs_packet::plane::{DropReason, Verdict};

const CLIENT: &str = "203.0.113.5";
const VIP: &str = "198.51.100.10";
const RS: &str = "192.168.1.2";
const LIP: &str = "192.168.1.100";

fn ip4(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

struct Seg {
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    rst: bool,
    window: u16,
    mss: Option<u16>,
    payload: &'static [u8],
}

fn seg(seq: u32) -> Seg {
    Seg {
        seq,
        ack: None,
        syn: false,
        rst: false,
        window: 29200,
        mss: None,
        payload: &[],
    }
}

/// An Ethernet/IPv4/TCP frame.
#[allow(clippy::too_many_arguments)]
fn frame(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    s: &Seg,
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(smac, dmac)
        .ipv4(ip4(src), ip4(dst), 60)
        .tcp(sport, dport, s.seq, s.window);
    if s.syn {
        b = b.syn();
    }
    if s.rst {
        b = b.rst();
    }
    if let Some(a) = s.ack {
        b = b.ack(a);
    }
    if let Some(m) = s.mss {
        b = b
            .options(&[
                TcpOptionElement::MaximumSegmentSize(m),
                TcpOptionElement::SelectiveAcknowledgementPermitted,
                TcpOptionElement::WindowScale(7),
            ])
            .unwrap();
    }
    let mut out = Vec::new();
    b.write(&mut out, s.payload).unwrap();
    out
}

/// What came out: port, frame.
fn run(rig: &mut Rig, port: u16, f: &[u8], now: Time) -> Result<(u16, Vec<u8>), Verdict> {
    let mut buf = vec![0u8; HEADROOM + f.len() + 2048];
    buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
    match rig.process(&mut buf, HEADROOM, f.len(), port, now, &mut Zero) {
        Verdict::Transmit { port, start, len } | Verdict::Local { port, start, len } => {
            Ok((port, buf[start..start + len].to_vec()))
        }
        v => Err(v),
    }
}

/// The decoded TCP/IPv4 frame, checksums verified.
#[derive(Debug, PartialEq, Eq)]
struct Out {
    dmac: [u8; 6],
    smac: [u8; 6],
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    window: u16,
    mss: Option<u16>,
    options_len: usize,
    payload: Vec<u8>,
}

fn decode(f: &[u8]) -> Out {
    let p = SlicedPacket::from_ethernet(f).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else {
        panic!("no ethernet")
    };
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("no ipv4")
    };
    let h = ip.header();
    assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("no tcp")
    };
    let sum = t
        .to_header()
        .calc_checksum_ipv4(&h.to_header(), t.payload())
        .unwrap();
    assert_eq!(sum, t.checksum(), "tcp checksum");
    let mss = t.options_iterator().find_map(|o| match o {
        Ok(TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
        _ => None,
    });
    Out {
        dmac: eth.destination(),
        smac: eth.source(),
        src: (IpAddr::V4(h.source_addr()), t.source_port()),
        dst: (IpAddr::V4(h.destination_addr()), t.destination_port()),
        seq: t.sequence_number(),
        ack: t.ack().then(|| t.acknowledgment_number()),
        syn: t.syn(),
        window: t.window_size(),
        mss,
        options_len: t.options().len(),
        payload: t.payload().to_vec(),
    }
}

fn ep(a: &str, p: u16) -> (IpAddr, u16) {
    (a.parse().unwrap(), p)
}

fn rig(fullnat: bool) -> Rig {
    let mut cfg = vec![
        format!("-A -t {VIP}:80 -s rr"),
        format!(
            "-a -t {VIP}:80 -r {RS}:8080 {}",
            if fullnat { "--fullnat" } else { "-m" }
        ),
        "sysctl rvs_syn_proxy 1".to_string(),
    ];
    if fullnat {
        cfg.push(format!("--add-laddr -t {VIP}:80 -z {LIP}"));
    }
    build_rig(&cfg).unwrap()
}

fn handshake_and_data(fullnat: bool) {
    let mut rig = rig(fullnat);
    let now = Time::from_secs(100);
    let from_client = |s: &Seg| frame(ROUTER_MAC, P0_MAC, CLIENT, 40000, VIP, 80, s);
    // The real server answers the client (NAT) or the local address (full-NAT).
    let (peer, peer_port) = if fullnat { (LIP, 0) } else { (CLIENT, 40000) };

    // 1. The SYN is answered by the director: a cookie, window 0, MSS only; no entry.
    let syn = Seg {
        syn: true,
        mss: Some(1460),
        ..seg(1000)
    };
    let (port, f) = run(&mut rig, 0, &from_client(&syn), now).unwrap();
    let synack = decode(&f);
    assert_eq!(port, 0);
    assert_eq!((synack.dmac, synack.smac), (ROUTER_MAC, P0_MAC));
    assert_eq!((synack.src, synack.dst), (ep(VIP, 80), ep(CLIENT, 40000)));
    assert!(synack.syn);
    assert_eq!(synack.ack, Some(1001));
    assert_eq!(
        (synack.window, synack.mss, synack.options_len),
        (0, Some(1460), 4)
    );
    let cookie = synack.seq;
    assert_eq!(rig.director.conns.len(), 0);
    // The same SYN again gets the same cookie (nothing is remembered, nothing is needed).
    let (_, again) = run(&mut rig, 0, &from_client(&syn), now).unwrap();
    assert_eq!(decode(&again).seq, cookie);

    // 2. Spoofed SYNs and forged ACKs leave nothing behind.
    for i in 0..2000u32 {
        let src = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff);
        let f = frame(
            ROUTER_MAC,
            P0_MAC,
            &src,
            1024 + i as u16,
            VIP,
            80,
            &Seg {
                syn: true,
                ..seg(i)
            },
        );
        assert!(run(&mut rig, 0, &f, now).is_ok());
        let f = frame(
            ROUTER_MAC,
            P0_MAC,
            &src,
            2024 + i as u16,
            VIP,
            80,
            &Seg {
                ack: Some(i.wrapping_mul(2_654_435_761)),
                ..seg(i)
            },
        );
        assert_eq!(
            run(&mut rig, 0, &f, now),
            Err(Verdict::Drop(DropReason::BadCookie))
        );
    }
    assert_eq!(rig.director.conns.len(), 0);
    assert_eq!(rig.drops().get(DropReason::BadCookie), 2000);
    assert_eq!(rig.plane.syn_proxy_counters().cookies_sent, 2002);
    // A cookie for another tuple does not open this one.
    let stolen = frame(
        ROUTER_MAC,
        P0_MAC,
        CLIENT,
        40001,
        VIP,
        80,
        &Seg {
            ack: Some(cookie.wrapping_add(1)),
            ..seg(1001)
        },
    );
    assert_eq!(
        run(&mut rig, 0, &stolen, now),
        Err(Verdict::Drop(DropReason::BadCookie))
    );

    // 3. The client's ACK opens the connection: the real server gets the client's SYN.
    let ack = Seg {
        ack: Some(cookie.wrapping_add(1)),
        window: 502,
        ..seg(1001)
    };
    let (port, f) = run(&mut rig, 0, &from_client(&ack), now).unwrap();
    let to_rs = decode(&f);
    assert_eq!(port, 1);
    assert_eq!(
        (to_rs.dmac, to_rs.smac),
        (host_mac(RS.parse().unwrap()), P1_MAC)
    );
    assert_eq!(to_rs.dst, ep(RS, 8080));
    let lport = if fullnat {
        assert_eq!(to_rs.src.0, LIP.parse::<IpAddr>().unwrap());
        to_rs.src.1
    } else {
        assert_eq!(to_rs.src, ep(CLIENT, 40000));
        peer_port
    };
    assert!(to_rs.syn);
    assert_eq!(
        (
            to_rs.seq,
            to_rs.ack,
            to_rs.window,
            to_rs.mss,
            to_rs.options_len
        ),
        (1000, None, 502, Some(1460), 4)
    );
    assert_eq!(rig.director.conns.len(), 1);
    let id = rig.director.conns.iter().next().unwrap();
    assert_eq!(rig.director.conns.get(id).unwrap().state(), tcp::SYN_RECV);

    // Anything from the client before the server answered is dropped (it was given no window).
    let early = Seg {
        ack: Some(cookie.wrapping_add(1)),
        payload: b"early",
        ..seg(1001)
    };
    assert_eq!(
        run(&mut rig, 0, &from_client(&early), now),
        Err(Verdict::Drop(DropReason::SynProxyWait))
    );

    // 4. The server's SYN-ACK becomes the client's window update.
    let rs_isn = 3_000_000_000u32;
    let from_rs = |s: &Seg| {
        frame(
            host_mac(RS.parse().unwrap()),
            P1_MAC,
            RS,
            8080,
            peer,
            lport,
            s,
        )
    };
    let rs_synack = Seg {
        syn: true,
        ack: Some(1001),
        mss: Some(1400),
        window: 28960,
        ..seg(rs_isn)
    };
    let (port, f) = run(&mut rig, 1, &from_rs(&rs_synack), now).unwrap();
    let update = decode(&f);
    assert_eq!(port, 0);
    assert_eq!((update.src, update.dst), (ep(VIP, 80), ep(CLIENT, 40000)));
    assert!(!update.syn);
    assert_eq!(
        (update.seq, update.ack, update.window, update.options_len),
        (cookie.wrapping_add(1), Some(1001), 28960, 0)
    );

    // 5. Data both ways, shifted.
    let req = Seg {
        ack: Some(cookie.wrapping_add(1)),
        payload: b"GET / HTTP/1.0\r\n\r\n",
        ..seg(1001)
    };
    let (port, f) = run(&mut rig, 0, &from_client(&req), now).unwrap();
    let fwd = decode(&f);
    assert_eq!(port, 1);
    assert_eq!((fwd.seq, fwd.ack), (1001, Some(rs_isn.wrapping_add(1))));
    assert_eq!(fwd.payload, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(
        rig.director.conns.get(id).unwrap().state(),
        tcp::ESTABLISHED
    );
    let resp = Seg {
        ack: Some(1019),
        payload: b"HTTP/1.0 200 OK\r\n\r\n",
        ..seg(rs_isn.wrapping_add(1))
    };
    let (port, f) = run(&mut rig, 1, &from_rs(&resp), now).unwrap();
    let back = decode(&f);
    assert_eq!(port, 0);
    assert_eq!((back.src, back.dst), (ep(VIP, 80), ep(CLIENT, 40000)));
    assert_eq!((back.seq, back.ack), (cookie.wrapping_add(1), Some(1019)));

    // 6. A retransmitted SYN-ACK is answered with the ACK the server waits for.
    let (port, f) = run(&mut rig, 1, &from_rs(&rs_synack), now).unwrap();
    let ack_rs = decode(&f);
    assert_eq!(port, 1);
    assert_eq!(
        (ack_rs.dmac, ack_rs.smac),
        (host_mac(RS.parse().unwrap()), P1_MAC)
    );
    assert_eq!((ack_rs.src, ack_rs.dst), (ep(peer, lport), ep(RS, 8080)));
    assert_eq!(
        (ack_rs.seq, ack_rs.ack, ack_rs.syn, ack_rs.window),
        (1001, Some(rs_isn.wrapping_add(1)), false, 502)
    );

    // 7. A cookie older than two periods is refused.
    let late = Time::from_secs(100 + 200);
    let other = frame(
        ROUTER_MAC,
        P0_MAC,
        CLIENT,
        40002,
        VIP,
        80,
        &Seg {
            syn: true,
            ..seg(5)
        },
    );
    let (_, f) = run(&mut rig, 0, &other, now).unwrap();
    let c2 = decode(&f).seq;
    let late_ack = frame(
        ROUTER_MAC,
        P0_MAC,
        CLIENT,
        40002,
        VIP,
        80,
        &Seg {
            ack: Some(c2.wrapping_add(1)),
            ..seg(6)
        },
    );
    assert_eq!(
        run(&mut rig, 0, &late_ack, late),
        Err(Verdict::Drop(DropReason::BadCookie))
    );
    assert_eq!(rig.director.conns.len(), 1);
}

#[test]
fn nat_handshake_is_proxied_and_sequence_numbers_shifted() {
    handshake_and_data(false);
}

#[test]
fn fullnat_handshake_is_proxied_and_sequence_numbers_shifted() {
    handshake_and_data(true);
}

#[test]
fn off_by_default_and_not_for_direct_routing() {
    // Without the sysctl the SYN goes to the real server and makes an entry, as before.
    let mut rig = build_rig(&[
        format!("-A -t {VIP}:80 -s rr"),
        format!("-a -t {VIP}:80 -r {RS}:80 -m"),
    ])
    .unwrap();
    let syn = frame(
        ROUTER_MAC,
        P0_MAC,
        CLIENT,
        40000,
        VIP,
        80,
        &Seg {
            syn: true,
            ..seg(1)
        },
    );
    let (port, f) = run(&mut rig, 0, &syn, Time::from_secs(1)).unwrap();
    assert_eq!((port, decode(&f).dst), (1, ep(RS, 80)));
    assert_eq!(rig.director.conns.len(), 1);
    // A DR service is never proxied (the real server answers the client itself).
    let mut rig = build_rig(&[
        format!("-A -t {VIP}:80 -s rr"),
        format!("-a -t {VIP}:80 -r {RS}:80 -g"),
        "sysctl rvs_syn_proxy 1".to_string(),
    ])
    .unwrap();
    let (port, f) = run(&mut rig, 0, &syn, Time::from_secs(1)).unwrap();
    assert_eq!((port, decode(&f).syn, decode(&f).ack), (1, true, None));
    assert_eq!(rig.director.conns.len(), 1);
}
