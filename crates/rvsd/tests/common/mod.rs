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
/// older than rvsd's: then it may predate a change of the control protocol (a run of rvsd's
/// tests alone rebuilds rvsd, not rvsadm), and the tests use rvsadm's library instead.
pub fn rvsadm_bin() -> Option<PathBuf> {
    let p = Path::new(RVSD).with_file_name("rvsadm");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let fresh = matches!((mtime(&p), mtime(Path::new(RVSD))), (Some(a), Some(d)) if a >= d);
    if p.is_file() && !fresh {
        eprintln!(
            "note: {} is older than rvsd; using rvsadm's library (cargo build -p rvsadm to test the binary)",
            p.display()
        );
    }
    (p.is_file() && fresh).then_some(p)
}
