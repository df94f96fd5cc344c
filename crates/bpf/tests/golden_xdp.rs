//! The golden fixtures (crates/packet/tests/golden) through the XDP program, the way Katran
//! tests its program: each case runs through the userspace plane as in `rvs-packet`'s golden
//! test, with fast-path offers on; what the plane offers is installed in the loaded program's
//! map exactly as rvsd installs it, and every following input frame is first run through the
//! program with `BPF_PROG_TEST_RUN`. When the program forwards a frame, its verdict must be
//! the case's (`XDP_TX` for the ingress port, `XDP_REDIRECT` for the other) and its output the
//! case's expected frame, byte for byte (for IPv4-outer tunnels the outer header's
//! identification is the program's own, so that field and the header checksum are checked
//! apart); when it passes a frame, the frame must be untouched. Offers whose connection
//! changed (expired, state left ESTABLISHED, destination removed) are removed before each
//! step, as rvsd's syncer removes them.
//!
//! Needs root (a network namespace with two interfaces, BPF) and clang at build time.

mod common;

#[path = "../../packet/tests/golden_src/build.rs"]
#[allow(dead_code)]
mod build;
#[path = "../../packet/tests/golden_src/fixture.rs"]
#[allow(dead_code)]
mod fixture;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use fixture::{apply, build as build_rig, Case, Zero, HEADROOM};
use rvs_bpf::test_run::verdict;
use rvs_bpf::xdp::{FastPath, Flow, FlowKey};
use rvs_core::Time;
use rvs_packet::fastpath::{still_valid, Offer};
use rvs_packet::plane::Verdict;

fn cases() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packet/tests/golden");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("the golden fixtures")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| Case::parse(&fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

/// The IPv4 header checksum over `h` (20 bytes) verifies.
fn ipv4_header_ok(h: &[u8]) -> bool {
    let mut s: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s == 0xffff
}

/// Two interfaces of a fresh network namespace (the test thread's): port 0 and port 1.
fn two_ports() -> Option<[u32; 2]> {
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
        rvs_require::unmet(format!("unshare(CLONE_NEWNET): {e}"));
        return None;
    }
    let ip = |args: &[&str]| {
        let st = Command::new("ip").args(args).status().expect("run ip");
        assert!(st.success(), "ip {args:?}");
    };
    ip(&["link", "add", "gx0", "type", "veth", "peer", "name", "gx1"]);
    ip(&["link", "set", "gx0", "up"]);
    ip(&["link", "set", "gx1", "up"]);
    let idx = |n: &str| nix::net::if_::if_nametoindex(n).expect("ifindex");
    Some([idx("gx0"), idx("gx1")])
}

#[derive(Default)]
struct Tally {
    fast: usize,
    passed: usize,
}

#[test]
fn golden_fixtures_through_xdp() {
    rvs_require::require_root!();
    rvs_require::require_tools!("ip");
    // The namespace is this thread's; the program and its maps go with it.
    let handle = std::thread::spawn(run_all);
    let (tally, fails) = handle.join().expect("the fixture thread");
    let Some(tally) = tally else { return };
    assert!(
        fails.is_empty(),
        "{} failures:\n{}",
        fails.len(),
        fails.join("\n\n")
    );
    // Every kind of flow the fast path takes over was taken over at least once.
    for case in [
        "est-nat-v4-tcp",
        "est-nat-v6-tcp",
        "est-fullnat-v4-tcp",
        "est-fullnat-v6-tcp",
        "est-dr-v4-tcp",
        "est-dr-v6-tcp",
        "est-tun-ipip-v4-tcp",
        "est-tun-ipip-v6-tcp",
        "est-tun-gue-v4-tcp",
        "est-tun-gue-v6-tcp",
        "est-tun-gue-csum-v4-tcp",
        "est-tun-gue-csum-v6-tcp",
        "est-tun-gue-remcsum-v4-tcp",
        "est-tun-gue-remcsum-v6-tcp",
        "est-tun-gre-v4-tcp",
        "est-tun-gre-v6-tcp",
        "est-tun-gre-csum-v4-tcp",
        "est-tun-gre-csum-v6-tcp",
        "seq-nat-v4-udp",
        "seq-nat-v6-udp",
        "seq-fullnat-v4-udp",
        "seq-fullnat-v6-udp",
    ] {
        let t = tally.get(case).unwrap_or_else(|| panic!("no case {case}"));
        assert!(t.fast > 0, "{case}: no frame went through the fast path");
    }
    let fast: usize = tally.values().map(|t| t.fast).sum();
    let passed: usize = tally.values().map(|t| t.passed).sum();
    eprintln!("golden through XDP: {fast} frames forwarded by the program, {passed} passed");
}

type Outcome = (Option<BTreeMap<String, Tally>>, Vec<String>);

fn run_all() -> Outcome {
    let Some(ports) = two_ports() else {
        return (None, Vec::new());
    };
    let Some(mut fp) = common::fast_path() else {
        return (None, Vec::new());
    };
    // Each port has the fixture's MAC of its plane port: the frames the cases send to the
    // director are addressed to it.
    for (i, mac) in ports.into_iter().zip([fixture::P0_MAC, fixture::P1_MAC]) {
        fp.add_port(i).expect("devmap");
        fp.set_mac(i, mac).expect("the port's MAC");
    }
    let mut tally = BTreeMap::new();
    let mut fails = Vec::new();
    for c in cases() {
        let t = tally.entry(c.name.clone()).or_insert_with(Tally::default);
        run_case(&mut fp, ports, &c, t, &mut fails);
    }
    (Some(tally), fails)
}

fn run_case(fp: &mut FastPath, ports: [u32; 2], c: &Case, t: &mut Tally, fails: &mut Vec<String>) {
    let mut rig = match build_rig(&c.config) {
        Ok(r) => r,
        Err(e) => return fails.push(format!("{}: setup: {e}", c.name)),
    };
    rig.plane.set_fast_path_offers(true);
    let mut installed: Vec<(FlowKey, Offer)> = Vec::new();
    let mut offers = Vec::new();
    for (i, st) in c.steps.iter().enumerate() {
        let at = format!("{} step {} ({})", c.name, i + 1, st.doc);
        let now = Time(st.at.unwrap_or(1000 * (i as u64 + 1)));
        for cmd in &st.cmds {
            apply(&mut rig.director, cmd, now).expect("cmd");
        }
        // The syncer's removal pass, then the program.
        installed.retain(|(k, o)| {
            let keep = still_valid(&rig.director, o);
            if !keep {
                fp.remove(k).expect("remove");
            }
            keep
        });
        let ingress = ports[usize::from(st.port)];
        // A frame shorter than an Ethernet header never reaches an XDP program (the test run
        // refuses it too); the userspace plane's handling of it is checked by rvs-packet.
        let xdp = (st.input.len() >= 14).then(|| fp.test_run(&st.input, ingress));
        match xdp.map(|r| r.unwrap_or_else(|e| panic!("{at}: {e}"))) {
            None => {}
            Some(r) => match r.retval {
                verdict::PASS => {
                    t.passed += 1;
                    if r.data != st.input {
                        fails.push(format!("{at}: passed a modified frame"));
                    }
                }
                verdict::TX | verdict::REDIRECT => {
                    t.fast += 1;
                    check_forwarded(&at, st, &r, ingress, ports, fails);
                }
                v => fails.push(format!("{at}: XDP verdict {v}")),
            },
        }
        // The userspace plane, as rvsd runs it for every frame the program passes (and, here,
        // for the forwarded ones too, to keep the case's state).
        let mut buf = vec![0u8; HEADROOM + st.input.len() + 2048];
        buf[HEADROOM..HEADROOM + st.input.len()].copy_from_slice(&st.input);
        let _: Verdict = rig.process(&mut buf, HEADROOM, st.input.len(), st.port, now, &mut Zero);
        rig.plane.drain_offers(&mut offers);
        for o in offers.drain(..) {
            let ingress = usize::from(o.in_port);
            let macs = [fixture::P0_MAC, fixture::P1_MAC];
            let (k, f) = Flow::from_offer(
                &o,
                ports[usize::from(o.port)],
                (ports[ingress], macs[ingress]),
            );
            fp.insert(&k, &f).expect("insert");
            installed.retain(|(ik, _)| *ik != k);
            installed.push((k, o));
        }
    }
    for (k, _) in installed {
        fp.remove(&k).expect("remove");
    }
}

fn check_forwarded(
    at: &str,
    st: &fixture::Step,
    r: &rvs_bpf::test_run::Run,
    ingress: u32,
    ports: [u32; 2],
    fails: &mut Vec<String>,
) {
    let Some(port) = st
        .verdict
        .strip_prefix("transmit port=")
        .and_then(|p| p.parse::<usize>().ok())
    else {
        return fails.push(format!(
            "{at}: the program forwarded; expected `{}`",
            st.verdict
        ));
    };
    let want = if ports[port] == ingress {
        verdict::TX
    } else {
        verdict::REDIRECT
    };
    if r.retval != want {
        fails.push(format!("{at}: XDP verdict {}, expected {want}", r.retval));
    }
    let Some(expected) = &st.out else {
        return fails.push(format!("{at}: no expected frame"));
    };
    let mut got = r.data.clone();
    // IP-in-IP, GRE (47) or GUE (UDP from the director to a real server: the fixtures'
    // forwarded UDP is never from port 1's network, so a UDP outer header here is GUE).
    let ipv4_outer_tunnel = got.len() >= 34
        && got[12..14] == [0x08, 0x00]
        && (matches!(got[23], 4 | 41 | 47) || (got[23] == 17 && got[26..30] == [192, 168, 1, 1]))
        && expected.len() == got.len();
    if ipv4_outer_tunnel {
        if !ipv4_header_ok(&got[14..34]) {
            fails.push(format!("{at}: bad outer IPv4 header checksum"));
        }
        // The identification is the program's (random), the checksum follows it.
        got[18..20].copy_from_slice(&expected[18..20]);
        got[24..26].copy_from_slice(&expected[24..26]);
    }
    if &got != expected {
        fails.push(format!(
            "{at}: output differs\n{}",
            fixture::diff(expected, &got)
        ));
    }
}
