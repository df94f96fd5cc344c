//! Addresses on standby (`PlaneConfig::standby`): the VIPs and full-NAT local addresses of
//! VRRP instances that are not MASTER on this director. A kernel BACKUP does not hold them
//! (keepalived removed them from the interface), so a packet to them is not local and IPVS's
//! LOCAL_IN hook never sees it — not for a new connection, not for a synced one — even when
//! it arrives at the backup's own MAC. The plane passes those packets untouched and leaves
//! the connection table and the counters alone; once the address is held again (takeover),
//! the same connection is served. No root needed.

#[path = "golden_src/build.rs"]
#[allow(dead_code)]
mod build;
#[path = "golden_src/fixture.rs"]
#[allow(dead_code)]
mod fixture;

use build::{frame, ip, tcp, udp};
use fixture::{build as build_rig, client, client2, lip, rs, vip, Rig, Zero, P0_MAC, P1_MAC};
use fixture::{host_mac, ROUTER_MAC};
use rvs_core::Time;
use rvs_packet::plane::Verdict;

const HEADROOM: usize = fixture::HEADROOM;

/// Runs `f` through the plane as received on `port` at `now`.
fn process(rig: &mut Rig, f: &[u8], port: u16, now: u64) -> Verdict {
    let mut buf = vec![0u8; HEADROOM + f.len() + 2048];
    buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
    rig.process(&mut buf, HEADROOM, f.len(), port, Time(now), &mut Zero)
}

fn transmitted(v: &Verdict) -> bool {
    matches!(v, Verdict::Transmit { .. })
}

/// Puts the plane's `standby` list to `addrs` (as rvsd does on a VRRP transition).
fn set_standby(rig: &mut Rig, addrs: &[std::net::IpAddr]) {
    let mut cfg = rig.config().clone();
    cfg.standby = addrs.to_vec();
    rig.plane.set_config(cfg);
}

/// `(conns, inpkts, outpkts)` of the director's totals.
fn totals(rig: &Rig) -> (u64, u64, u64) {
    let s = rig.director.total.shown();
    (s.conns, s.inpkts, s.outpkts)
}

#[test]
fn packets_to_a_standby_vip_are_passed_new_and_existing_connections_alike() {
    for v6 in [false, true] {
        let svc = std::net::SocketAddr::new(vip(v6), 80);
        let rsa = std::net::SocketAddr::new(rs(v6, 11), 8080);
        let mut rig = build_rig(&[
            format!("-A -t {svc} -s rr"),
            format!("-a -t {svc} -r {rsa} -m"),
        ])
        .unwrap();
        let to_vip =
            |c, sport, flags| frame(P0_MAC, ROUTER_MAC, &ip(c, vip(v6)), &tcp(sport, 80, flags));
        // MASTER: a connection is made and forwarded.
        assert!(transmitted(&process(
            &mut rig,
            &to_vip(client(v6), 40000, "S"),
            0,
            1000
        )));
        let before = totals(&rig);
        assert_eq!(before.0, 1);
        // BACKUP: neither the existing connection's packets nor a new client's SYN are
        // served; nothing is counted or created.
        // Among other standby addresses, in no particular order (the plane sorts them).
        let other = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        set_standby(
            &mut rig,
            &[
                other("2001:db8::ff"),
                vip(v6),
                other("192.0.2.200"),
                other("10.0.0.1"),
            ],
        );
        let ack = to_vip(client(v6), 40000, "A");
        assert_eq!(process(&mut rig, &ack, 0, 2000), Verdict::Pass, "v6={v6}");
        let syn = to_vip(client2(v6), 40001, "S");
        assert_eq!(process(&mut rig, &syn, 0, 2000), Verdict::Pass, "v6={v6}");
        assert_eq!(totals(&rig), before, "v6={v6}: nothing counted on standby");
        assert_eq!(rig.director.conns.len(), 1, "v6={v6}: no connection made");
        // The real server's reply through the director (NAT): the kernel's FORWARD hook
        // (ip_vs_out) rewrites it whether or not the VIP is local, and so does the plane.
        let reply = frame(
            P1_MAC,
            host_mac(rs(v6, 11)),
            &ip(rs(v6, 11), client(v6)),
            &tcp(8080, 40000, "SA"),
        );
        assert!(transmitted(&process(&mut rig, &reply, 1, 2000)), "v6={v6}");
        // Takeover: the VIP is held again, the same connection goes on.
        set_standby(&mut rig, &[]);
        assert!(transmitted(&process(&mut rig, &ack, 0, 3000)), "v6={v6}");
        assert!(transmitted(&process(&mut rig, &syn, 0, 3000)), "v6={v6}");
        assert_eq!(rig.director.conns.len(), 2);
    }
}

#[test]
fn replies_to_a_standby_local_address_are_passed() {
    let v6 = false;
    let svc = format!("{}:53", vip(v6));
    let mut rig = build_rig(&[
        format!("-A -u {svc} -s rr"),
        format!("-a -u {svc} -r {}:5353 --fullnat", rs(v6, 11)),
        format!("--add-laddr -u {svc} -z {}", lip(v6)),
    ])
    .unwrap();
    let request = frame(
        P0_MAC,
        ROUTER_MAC,
        &ip(client(v6), vip(v6)),
        &udp(40000, 53, b"query"),
    );
    assert!(transmitted(&process(&mut rig, &request, 0, 1000)));
    // The local address and port the director chose for the connection.
    let id = rig.director.conns.iter().next().expect("a connection");
    let info = rig.director.conns.info(id).expect("its entry");
    let (la, lport) = info.local.expect("a local address");
    assert_eq!(la, lip(v6));
    let reply = frame(
        P1_MAC,
        host_mac(rs(v6, 11)),
        &ip(rs(v6, 11), la),
        &udp(5353, lport, b"answer"),
    );
    let before = totals(&rig);
    set_standby(&mut rig, &[lip(v6)]);
    assert_eq!(process(&mut rig, &reply, 1, 2000), Verdict::Pass);
    assert_eq!(totals(&rig), before, "nothing counted");
    set_standby(&mut rig, &[]);
    assert!(transmitted(&process(&mut rig, &reply, 1, 3000)));
    assert_eq!(totals(&rig).2, before.2 + 1);
}
