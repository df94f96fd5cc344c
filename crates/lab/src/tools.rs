//! Where the external programs the labs drive (nginx, socat, …) are installed.
//!
//! Whether a test may run here at all — root, programs, and "skip outside CI, fail under CI" —
//! is decided in one place for every test crate: rvs-require (`rvs_require::require_root!()`,
//! `rvs_require::require_tools!(…)`), which rvs-testkit re-exports.

pub use rvs_require::which;
