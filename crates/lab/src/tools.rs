//! Is a test able to run here? Root and the external programs it drives (nginx, curl, socat,
//! nft, keepalived, …). Every end-to-end test asks through these functions, so "skip when
//! unprivileged, fail in CI" is decided in one place.

use std::path::PathBuf;

use crate::netns::is_root;

/// Whether the tests run under CI (`CI=true`, as every CI service sets it). There every
/// program is installed (`scripts/install-test-deps`) and the tests run as root, so a test
/// that cannot run its check is a broken setup and must fail rather than skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Directories searched for external programs: `PATH`, then the sbin directories (nginx lives
/// in /usr/sbin, which an unprivileged user's `PATH` lacks).
fn search_dirs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"] {
        v.push(PathBuf::from(d));
    }
    v
}

/// Full path of an installed program.
pub fn which(prog: &str) -> Option<PathBuf> {
    search_dirs()
        .into_iter()
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// `Ok` if every program is installed; `Err(reason)` (the test should skip) otherwise.
///
/// # Panics
/// As root or under CI ([`in_ci`]) a missing program panics: CI installs them all, so a skip
/// there would hide a broken setup.
pub fn check_tools(progs: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = progs
        .iter()
        .copied()
        .filter(|p| which(p).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let why = format!(
        "{} not installed (run scripts/install-test-deps as root; Debian packages: nginx-light \
         curl socat nftables iproute2 keepalived)",
        missing.join(", ")
    );
    assert!(!is_root() && !in_ci(), "cannot run the test: {why}");
    Err(why)
}

/// For tests that need root and programs: `true` when the test may run; otherwise prints why
/// it is skipped and returns `false`. Panics instead of skipping under CI or (for a missing
/// program) as root, see [`check_tools`] and [`crate::require_root`].
pub fn require(test: &str, progs: &[&str]) -> bool {
    if !crate::require_root(test) {
        return false;
    }
    match check_tools(progs) {
        Ok(()) => true,
        Err(why) => {
            eprintln!("SKIP {test}: {why}");
            false
        }
    }
}
