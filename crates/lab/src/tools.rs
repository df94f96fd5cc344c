//! Where the external programs the labs drive (nginx, socat, …) are installed, and whether a
//! test may run here.
//!
//! The decision — skip with the reason outside CI, fail under CI (`RVS_REQUIRE_ALL=1` from
//! `.ci/run`, or `CI=true`) — is made in one place for every test crate, rvs-require; these are
//! the names the labs' and rvsd's end-to-end tests use for it.

pub use rvs_require::which;

/// Whether unmet needs fail the test (CI); see `rvs_require::strict`.
pub fn in_ci() -> bool {
    rvs_require::strict()
}

/// For root-only tests: `true` when the test may run; otherwise the skip (or, under CI, the
/// failure) with the reason. The test's name comes from its thread (`_test` is kept for
/// callers that pass it).
pub fn require_root(_test: &str) -> bool {
    rvs_require::root()
}

/// For tests that need root and programs: `true` when the test may run; otherwise the skip
/// (or, under CI, the failure) with the reason.
pub fn require(_test: &str, progs: &[&str]) -> bool {
    rvs_require::root() && rvs_require::tools(progs)
}
