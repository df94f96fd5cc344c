//! The AF_XDP port on a veth pair between two namespaces (root; the XDP program needs clang at
//! build time): datagrams the XDP program's rules take go through the XSK and come back to
//! the sender through its TX ring; datagrams they do not take reach the host stack instead.

use std::net::UdpSocket;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rvs_bpf::xdp::{FastPath, Mode, TakeKey, TakeRanges};
use rvs_packet_io::{FrameSink, PacketPort, RxBlock, XskBind, XskConfig, XskMode, XskPort};

const DIR_IP: &str = "10.77.3.2";
const CLIENT_IP: &str = "10.77.3.1";
/// The port the rules give to the XSK; `PASSED` is not in them.
const TAKEN: u16 = 9;
const PASSED: u16 = 10;
const ROUNDS: usize = 20;

fn sum16(data: &[u8], mut s: u32) -> u32 {
    for c in data.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Turns a received Ethernet/IPv4/UDP datagram into its reply in place: MACs, addresses and
/// ports swapped (the checksums stay right: their sums do not depend on the order), the UDP
/// checksum completed when the port says it is partial.
fn make_reply(f: &mut [u8], partial: bool) {
    let (a, b) = f.split_at_mut(6);
    a.swap_with_slice(&mut b[..6]);
    let ip = 14;
    for k in 0..4 {
        f.swap(ip + 12 + k, ip + 16 + k);
    }
    let udp = ip + usize::from(f[ip] & 0xf) * 4;
    for k in 0..2 {
        f.swap(udp + k, udp + 2 + k);
    }
    if partial {
        let len = usize::from(u16::from_be_bytes([f[udp + 4], f[udp + 5]]));
        f[udp + 6] = 0;
        f[udp + 7] = 0;
        let pseudo = sum16(&f[ip + 12..ip + 20], 17 + len as u32);
        let c = !fold(sum16(&f[udp..udp + len], pseudo));
        let c = if c == 0 { 0xffff } else { c };
        f[udp + 6..udp + 8].copy_from_slice(&c.to_be_bytes());
    }
}

#[test]
fn datagrams_go_through_the_xsk_and_back() {
    if !rvs_require::root() {
        return;
    }
    if let Err(e) = rvs_bpf::object("xdp") {
        rvs_require::unmet(e);
        return;
    }
    let mut lab = rvs_lab::Lab::new("xsk").expect("lab");
    let client = lab.add_netns("cl").expect("client namespace");
    let dir = lab.add_netns("dir").expect("director namespace");
    lab.veth(&client, "cl0", &dir, "d0").expect("veth");
    client.add_addr("cl0", &format!("{CLIENT_IP}/24")).unwrap();
    dir.add_addr("d0", &format!("{DIR_IP}/24")).unwrap();

    let sock = client
        .exec(|| UdpSocket::bind(format!("{CLIENT_IP}:40000")))
        .unwrap()
        .expect("client socket");
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();

    let sender = std::thread::spawn(move || {
        ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the XSK side did not come up");
        // Taken: each datagram comes back from the director's XSK, bytes as sent.
        let mut echoed = 0;
        let mut buf = [0u8; 256];
        for i in 0..ROUNDS {
            let msg = format!("ping {i}");
            sock.send_to(msg.as_bytes(), format!("{DIR_IP}:{TAKEN}"))
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) if &buf[..n] == msg.as_bytes() => {
                        assert_eq!(from.to_string(), format!("{DIR_IP}:{TAKEN}"));
                        echoed += 1;
                        break;
                    }
                    Ok(_) | Err(_) => {}
                }
            }
        }
        // Not taken: the host stack gets it, and, with nothing listening there, answers
        // with port unreachable (a connected socket sees ECONNREFUSED).
        sock.connect(format!("{DIR_IP}:{PASSED}")).unwrap();
        let mut refused = false;
        for _ in 0..10 {
            sock.send(b"to the host").unwrap();
            match sock.recv(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    refused = true;
                    break;
                }
                _ => {}
            }
        }
        let _ = done_tx.send(());
        (echoed, refused)
    });

    let (stats, xdp_xsk, mode, sent_copy) = dir
        .exec(move || {
            let cfg = XskConfig {
                bind: XskBind::Copy,
                ..XskConfig::default()
            };
            let mut port = XskPort::open("d0", &cfg).expect("XSK on d0");
            let ifindex = port.ifindex();
            let mut fp = FastPath::load().expect("XDP program");
            fp.attach(ifindex, port.mac(), Some(Mode::Generic))
                .expect("attach");
            let mut slow = fp.slow_path().expect("slow-path maps");
            slow.register(ifindex, 0, 0, port.as_raw_fd())
                .expect("register the XSK");
            let addr = DIR_IP.parse().unwrap();
            let rules = [
                (TakeKey::vip_service(addr, 17, TAKEN), TakeRanges::default()),
                (TakeKey::keep(addr), TakeRanges::default()),
            ]
            .into_iter()
            .collect();
            slow.set_rules(&rules).expect("rules");
            ready_tx.send(()).unwrap();
            let mut sent_copy = false;
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && done_rx.try_recv().is_err() {
                let Some(mut block) = port.next_block(Duration::from_millis(50)).unwrap() else {
                    continue;
                };
                let mut copy: Option<Vec<u8>> = None;
                while let Some(f) = block.next_frame() {
                    let partial = f.checksum_not_ready();
                    make_reply(f.data_mut(), partial);
                    if !sent_copy && copy.is_none() {
                        // The first reply goes out as a copy (send_frames), the rest from
                        // their own chunk.
                        copy = Some(f.data().to_vec());
                    } else {
                        f.transmit();
                    }
                }
                block.finish();
                if let Some(c) = copy {
                    assert_eq!(port.send_frames(&[&c]), 1);
                    sent_copy = true;
                }
            }
            let stats = port.xsk_stats().unwrap();
            let c = fp.counters().unwrap();
            (stats, c.xsk, port.mode(), sent_copy)
        })
        .unwrap();
    let (echoed, refused) = sender.join().expect("sender");
    assert_eq!(mode, XskMode::Copy);
    assert!(sent_copy, "no frame went out through send_frames");
    assert_eq!(
        echoed, ROUNDS,
        "datagrams not echoed through the XSK: {stats:?}"
    );
    assert!(stats.rx_frames >= ROUNDS as u64, "{stats:?}");
    assert!(stats.tx_ring >= ROUNDS as u64, "{stats:?}");
    assert!(xdp_xsk >= ROUNDS as u64, "program redirected {xdp_xsk}");
    assert!(
        refused,
        "a datagram the rules do not take did not reach the host stack"
    );
    drop(lab);
}
