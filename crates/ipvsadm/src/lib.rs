//! The ipvsadm 1.31 command language, shared by rvsadm (the tool) and rvsd (rules files).
//!
//! Everything is a pure function except [`names::SystemNames`]: [`args::parse_command`] turns
//! an argument vector into a command or an exit (message and status), with [`popt`] reproducing
//! libpopt's option scanning, and [`restore`] reads `-R` input like ipvsadm. The text formats of
//! listings and the command runner stay in rvsadm.

#![forbid(unsafe_code)]

pub mod args;
pub mod names;
pub mod popt;
pub mod restore;
