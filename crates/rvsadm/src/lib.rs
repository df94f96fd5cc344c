//! rvsadm: the ipvsadm 1.31 command language for rvsd.
//!
//! Everything is a pure function except [`app::SocketBackend`] and [`names::SystemNames`]:
//! [`args::parse_command`] turns an argument vector into a command or an exit (message and
//! status), [`mod@format`] turns snapshots into ipvsadm's exact text, [`restore`] reads `-R` input
//! like ipvsadm, and [`app::App`] runs commands against a [`app::Backend`].
//!
//! # Differences from ipvsadm 1.31 (deliberate)
//!
//! - The command line is checked before rvsd is contacted, so `-h`, `-v` and argument errors
//!   work without a daemon; ipvsadm initialises the kernel interface first. When rvsd cannot be
//!   reached, rvsadm prints one line naming the socket and exits 2 (ipvsadm: "Can't initialize
//!   ipvs", also 2).
//! - `-L --timeout`, `-L --daemon` and `-L -c` print the error text when rvsd refuses them
//!   (ipvsadm exits 1 silently); the status is still 1.
//! - `-b ,` (no flag at all) is reported as `invalid scheduler flag` where ipvsadm crashes.
//! - Additions: `--fullnat` (shown as `FullNat`, saved as `--fullnat`), `--proxy-protocol v1|v2`
//!   on `-A/-E` (listed as ` proxy-protocol vN`, saved as ` --proxy-protocol vN`),
//!   `--add-laddr/--del-laddr -z LIP` and `--get-laddr` (DPVS style), `--socket PATH`.
//! - Warnings sent by rvsd (entries accepted but not served by the running data planes) are
//!   printed to stderr, one line each, before the output.

#![forbid(unsafe_code)]

pub mod app;
pub mod format;

// The command language itself lives in rvs-ipvsadm (rvsd reads it too); re-exported under its
// old paths.
pub use rvs_ipvsadm::{args, names, popt, restore};
