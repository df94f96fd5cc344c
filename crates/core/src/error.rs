//! The one error type of rvs-core. Variants follow the kernel's errno values so that rvsadm can
//! print exactly what ipvsadm prints for the same mistake.

use thiserror::Error;

/// What went wrong with a table operation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// `EEXIST`: the service or destination already exists.
    #[error("already exists")]
    Exists,
    /// `ESRCH`: no such service.
    #[error("no such service")]
    NoService,
    /// `ENOENT`: no such destination (or unknown scheduler / persistence engine).
    #[error("no such destination")]
    NotFound,
    /// `ENOENT` for an unknown scheduler name.
    #[error("scheduler not found: {0}")]
    UnknownScheduler(String),
    /// `ENOENT` for an unknown persistence engine name.
    #[error("persistence engine not found: {0}")]
    UnknownPe(String),
    /// `EINVAL`, with the reason.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// `ERANGE`, with the reason.
    #[error("out of range: {0}")]
    Range(&'static str),
}

impl Error {
    /// The errno the kernel returns for this error (positive value).
    pub fn errno(&self) -> i32 {
        match self {
            Error::Exists => 17,
            Error::NoService => 3,
            Error::NotFound | Error::UnknownScheduler(_) | Error::UnknownPe(_) => 2,
            Error::Invalid(_) => 22,
            Error::Range(_) => 34,
        }
    }
}

/// Result alias for rvs-core.
pub type Result<T> = std::result::Result<T, Error>;
