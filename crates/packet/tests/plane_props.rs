//! The plane never panics (docs/internals/architecture.md#rules-of-the-house): every golden input frame, mutated (bytes
//! flipped, cut short, extended), goes through [`Plane::process`] under every golden
//! configuration, and whatever the verdict, the frame range it names lies in the buffer.

#[path = "golden_src/build.rs"]
#[allow(dead_code)]
mod build;
#[path = "golden_src/fixture.rs"]
#[allow(dead_code)]
mod fixture;

use std::path::PathBuf;

use fixture::{build as build_plane, Case, Zero, HEADROOM};
use proptest::prelude::*;
use rvs_core::Time;
use rvs_packet::plane::Verdict;

fn corpus() -> &'static [Case] {
    static CORPUS: std::sync::OnceLock<Vec<Case>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(load)
}

fn load() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut v: Vec<Case> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .map(|p| Case::parse(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn mutated_frames_never_panic(
        pick in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        mode in 0u8..3,
        port in 0u16..3,
    ) {
        let cases = corpus();
        let c = pick.get(cases);
        let mut plane = build_plane(&c.config).unwrap();
        for (i, st) in c.steps.iter().enumerate() {
            let mut f = st.input.clone();
            // The last step is mutated; earlier ones set up connections.
            if i + 1 == c.steps.len() {
                for (at, x) in &flips {
                    let k = at.index(f.len());
                    f[k] ^= *x;
                }
                match mode {
                    0 => f.truncate(cut.index(f.len() + 1)),
                    1 => f.extend(std::iter::repeat_n(0xa5, cut.index(64))),
                    _ => {}
                }
            }
            let mut buf = vec![0u8; HEADROOM + f.len() + 2048];
            buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(&f);
            let p = if i + 1 == c.steps.len() { port } else { st.port };
            let v = plane.process(&mut buf, HEADROOM, f.len(), p, Time(1000 * (i as u64 + 1)), &mut Zero);
            if let Verdict::Transmit { start, len, .. }
            | Verdict::Fragment { start, len, .. }
            | Verdict::Local { start, len, .. } = v
            {
                prop_assert!(start + len <= buf.len());
                prop_assert!(len >= 14);
            }
        }
    }
}

#[test]
fn buffer_too_small_is_a_counted_drop() {
    let cases = corpus();
    let c = cases
        .iter()
        .find(|c| c.name == "fwd-tun-ipip-v4-tcp")
        .unwrap();
    let mut plane = build_plane(&c.config).unwrap();
    let f = &c.steps[0].input;
    // No headroom for the outer header.
    let mut buf = f.clone();
    let v = plane.process(&mut buf, 0, f.len(), 0, Time(1000), &mut Zero);
    assert_eq!(v, Verdict::Drop(rvs_packet::plane::DropReason::NoRoom));
    assert_eq!(plane.drops().get(rvs_packet::plane::DropReason::NoRoom), 1);
    // A range past the end of the buffer.
    let v = plane.process(&mut buf, 10, f.len(), 0, Time(1000), &mut Zero);
    assert_eq!(v, Verdict::Drop(rvs_packet::plane::DropReason::NoRoom));
}

#[test]
fn announcements_cover_every_owned_address() {
    let plane = build_plane(&[]).unwrap();
    let mut out = [0u8; 128];
    let mut seen = Vec::new();
    let mut i = 0;
    while let Some((port, len)) = plane.announcement(i, &mut out) {
        let f = &out[..len];
        let (desc, errs) = fixture::check(f);
        assert!(errs.is_empty(), "{desc}: {errs:?}");
        seen.push((port, desc));
        i += 1;
    }
    assert_eq!(seen.len(), plane.config().owned.len());
    // Gratuitous ARP: broadcast request, sender = target = the VIP (RFC 5227 §2.3).
    assert_eq!(
        seen[0].1,
        "eth 02:00:00:00:00:01>ff:ff:ff:ff:ff:ff | arp op=1 198.51.100.10@02:00:00:00:00:01 -> 198.51.100.10@00:00:00:00:00:00"
    );
    assert_eq!(seen[0].0, 0);
    // Unsolicited NA to all-nodes, override flag only.
    assert!(
        seen[1].1.contains("ipv6 2001:db8:1::10>ff02::1 hlim=255"),
        "{}",
        seen[1].1
    );
    assert!(
        seen[1].1.contains("icmpv6 type=136 code=0 rest=0x20000000"),
        "{}",
        seen[1].1
    );
    assert_eq!(seen[2].0, 1);
}
