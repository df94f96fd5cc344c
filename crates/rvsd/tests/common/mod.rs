//! rvsd's end-to-end tests use the shared harness, `rvs-testkit` (real processes, bounded
//! waits, rvsadm's own code over the control socket); this module only adds the paths of the
//! binaries cargo built for these tests.
//!
//! Addresses of the loopback tests: test N uses 127.77.N.0/24 (VIP .1, real servers .11–.13,
//! clients .101+), port 8080, so tests running in parallel never share an address.

#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};

pub use rvs_testkit::*;

/// `require!("nginx", "curl")` at the top of a test: skip (with the reason) unless every
/// program is installed; a failure instead under CI (rvs-require decides). Defined here too so
/// that a test file names it without importing it.
#[macro_export]
macro_rules! require {
    ($($prog:expr),+ $(,)?) => {
        rvs_require::require_tools!($($prog),+);
    };
}

/// The rvsd binary under test.
pub const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");

/// rvsd on the host's loopback with rvsadm-style `args`, see [`Rvsd::start_in`].
pub fn start_rvsd(dir: &Path, args: &[&str]) -> Rvsd {
    Rvsd::start(RVSD, dir, args)
}

/// `rvsd -f DIR/keepalived.conf` (written from `conf`) on the host with `extra` arguments.
pub fn start_keepalived(dir: &Path, conf: &str, extra: &[&str]) -> Rvsd {
    Rvsd::keepalived(RVSD, dir, conf, extra)
}

/// The `rvsadm` binary built next to `rvsd` (cargo builds it for the workspace's tests); it
/// is not built from a test. `None` when only rvsd's package was built, or when the binary is
/// stale: older than a source file of the crates it is made of (rvsadm, rvs-ipvsadm,
/// rvs-control), so it may predate a change of the control protocol (a run of rvsd's tests
/// alone rebuilds rvsd, not rvsadm). Then the tests use rvsadm's library instead. Its age
/// against rvsd's own binary says nothing: rvsd is relinked whenever only rvsd changed.
pub fn rvsadm_bin() -> Option<PathBuf> {
    let p = Path::new(RVSD).with_file_name("rvsadm");
    let built = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let newest = ["rvsadm", "ipvsadm", "control"]
        .iter()
        .filter_map(|c| newest_source(&crates.join(c).join("src")))
        .max();
    let fresh = match newest {
        Some(n) => built >= n,
        None => true,
    };
    if !fresh {
        eprintln!(
            "note: {} is older than its sources; using rvsadm's library (cargo build -p rvsadm to test the binary)",
            p.display()
        );
    }
    fresh.then_some(p)
}

/// The newest modification time of a file below `dir` (bounded depth).
fn newest_source(dir: &Path) -> Option<std::time::SystemTime> {
    fn walk(dir: &Path, depth: u8, newest: &mut Option<std::time::SystemTime>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                if depth < 8 {
                    walk(&e.path(), depth + 1, newest);
                }
            } else if let Ok(t) = m.modified() {
                *newest = Some(newest.map_or(t, |n| n.max(t)));
            }
        }
    }
    let mut newest = None;
    walk(dir, 0, &mut newest);
    newest
}
