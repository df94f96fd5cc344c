//! The crate's error type.

use std::io;

/// Why a check could not be performed or failed. A checker failure is a normal outcome; the
/// message goes to logs and to [`crate::CheckerStatus::last_error`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting did not finish within `connect_timeout`.
    #[error("connect to {0} timed out")]
    ConnectTimeout(std::net::SocketAddr),
    /// An exchange after connecting did not finish within `connect_timeout`.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// A socket or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The HTTP response was not what the url asks for.
    #[error("HTTP: {0}")]
    Http(String),
    /// TLS setup or handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The SMTP dialogue went wrong.
    #[error("SMTP: {0}")]
    Smtp(String),
    /// The DNS reply was wrong.
    #[error("DNS: {0}")]
    Dns(String),
    /// The UDP reply was wrong or an ICMP error came back.
    #[error("UDP: {0}")]
    Udp(String),
    /// No ICMP echo reply.
    #[error("PING: {0}")]
    Ping(String),
    /// The AGENT_CHECK agent answered `down`, `fail`, `stopped` or `maint`.
    #[error("AGENT: {0}")]
    Agent(String),
    /// The MISC_CHECK program failed, timed out or could not be started.
    #[error("MISC: {0}")]
    Misc(String),
    /// A configuration value this crate cannot act on.
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
    /// The engine task is gone (shut down or panicked).
    #[error("health engine is not running")]
    EngineGone,
}

impl Error {
    pub(crate) fn io(what: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { what, source }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
