//! The one error type of the crate.

use std::time::Duration;

/// Everything that can go wrong while building, using or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Namespaces, veths and TUN devices need CAP_NET_ADMIN/CAP_SYS_ADMIN; we only check for root.
    #[error("rvs-lab needs root (network namespaces, veth, TUN devices)")]
    NotRoot,
    /// A program ran but exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, for the reader of the message.
        command: String,
        /// Exit status as printed by std.
        status: String,
        /// What the program printed on stderr (trimmed).
        stderr: String,
    },
    /// A program could not be started at all (not installed, not executable...).
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Something bounded in time did not happen in time.
    #[error("timed out after {after:?}: {what}")]
    Timeout {
        /// What we were waiting for.
        what: String,
        /// How long we waited.
        after: Duration,
    },
    /// An I/O error with the context it happened in.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A system call made through `nix` failed.
    #[error("{context}: {source}")]
    Sys {
        /// What we were doing.
        context: String,
        /// The errno.
        source: nix::Error,
    },
    /// Opening or configuring the TUN device failed.
    #[error("TUN device {name}: {source}")]
    Tun {
        /// Interface name.
        name: String,
        /// The error of the `tun` crate.
        source: tun::Error,
    },
    /// A name, address or output we could not make sense of.
    #[error("{0}")]
    Invalid(String),
    /// A closure run inside a namespace panicked.
    #[error("thread inside namespace {0} panicked")]
    ThreadPanicked(String),
}

impl LabError {
    /// An [`LabError::Io`] with its context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LabError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias of the crate.
pub type Result<T, E = LabError> = std::result::Result<T, E>;
