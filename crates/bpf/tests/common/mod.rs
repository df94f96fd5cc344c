//! What the XDP program's test files share: loading the program the one way they all need.

use rvs_bpf::xdp::{Error, FastPath};

/// The loaded XDP program, or `None` after reporting why it cannot be (not root, or the
/// kernel lacks BPF: a failure under CI, through rvs-require). Any other refusal — the
/// verifier rejecting the program — is a test failure.
pub fn fast_path() -> Option<FastPath> {
    if !rvs_require::root() {
        return None;
    }
    match FastPath::load() {
        Ok(fp) => Some(fp),
        Err(e @ Error::Unavailable(_)) => {
            rvs_require::unmet(e);
            None
        }
        Err(e) => panic!("the kernel refused the XDP program: {e}"),
    }
}
