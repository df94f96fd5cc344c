//! rvsadm: the ipvsadm 1.31 command language for rvsd.
//!
//! Everything is a pure function except [`app::SocketBackend`] and [`names::SystemNames`]:
//! [`args::parse_command`] turns an argument vector into a command or an exit (message and
//! status), [`mod@format`] turns snapshots into ipvsadm's exact text, [`restore`] reads `-R` input
//! like ipvsadm, and [`app::App`] runs commands against a [`app::Backend`].

#![forbid(unsafe_code)]

pub mod app;
pub mod args;
pub mod format;
pub mod names;
pub mod popt;
pub mod restore;
