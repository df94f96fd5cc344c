//! Where the control socket lives.
//!
//! Order of precedence: `--socket PATH` (command line), then `$RVS_SOCKET`, then
//! `/run/rvs/rvsd.sock` for root, else `$XDG_RUNTIME_DIR/rvs/rvsd.sock`.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Socket path used when running as root.
pub const ROOT_SOCKET: &str = "/run/rvs/rvsd.sock";

/// Environment variable that overrides the default socket path.
pub const SOCKET_ENV: &str = "RVS_SOCKET";

/// No socket path could be chosen.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SocketPathError {
    /// Not root and `XDG_RUNTIME_DIR` is unset or empty.
    #[error("cannot choose the rvsd control socket: not running as root and XDG_RUNTIME_DIR is not set (use --socket PATH or RVS_SOCKET)")]
    NoRuntimeDir,
}

/// Pure resolution from explicit inputs (testable): `cli` is `--socket`, `env_socket` is
/// `$RVS_SOCKET`, `euid` the effective user id, `xdg_runtime_dir` is `$XDG_RUNTIME_DIR`.
pub fn resolve_socket_path_from(
    cli: Option<&Path>,
    env_socket: Option<&str>,
    euid: Option<u32>,
    xdg_runtime_dir: Option<&str>,
) -> Result<PathBuf, SocketPathError> {
    if let Some(p) = cli {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = env_socket.filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if euid == Some(0) {
        return Ok(PathBuf::from(ROOT_SOCKET));
    }
    match xdg_runtime_dir.filter(|s| !s.is_empty()) {
        Some(dir) => Ok(Path::new(dir).join("rvs").join("rvsd.sock")),
        None => Err(SocketPathError::NoRuntimeDir),
    }
}

/// Resolves the socket path from the process environment; `cli` is the `--socket` value.
pub fn resolve_socket_path(cli: Option<&Path>) -> Result<PathBuf, SocketPathError> {
    let env_socket = std::env::var(SOCKET_ENV).ok();
    let xdg = std::env::var("XDG_RUNTIME_DIR").ok();
    resolve_socket_path_from(cli, env_socket.as_deref(), effective_uid(), xdg.as_deref())
}

/// The effective uid, read from `/proc/self/status` (no `unsafe`, no libc binding needed).
/// `None` if it cannot be read, which callers treat as "not root".
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_effective_uid(&status)
}

/// Extracts the effective uid (second field of the `Uid:` line) from `/proc/<pid>/status` text.
pub fn parse_effective_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let cli = Path::new("/tmp/x.sock");
        assert_eq!(
            resolve_socket_path_from(Some(cli), Some("/e"), Some(0), Some("/x")).unwrap(),
            PathBuf::from("/tmp/x.sock")
        );
        assert_eq!(
            resolve_socket_path_from(None, Some("/e.sock"), Some(0), Some("/x")).unwrap(),
            PathBuf::from("/e.sock")
        );
        assert_eq!(
            resolve_socket_path_from(None, Some(""), Some(0), Some("/x")).unwrap(),
            PathBuf::from(ROOT_SOCKET)
        );
        assert_eq!(
            resolve_socket_path_from(None, None, Some(1000), Some("/run/user/1000")).unwrap(),
            PathBuf::from("/run/user/1000/rvs/rvsd.sock")
        );
        assert_eq!(
            resolve_socket_path_from(None, None, Some(1000), None),
            Err(SocketPathError::NoRuntimeDir)
        );
        assert_eq!(
            resolve_socket_path_from(None, None, None, Some("")),
            Err(SocketPathError::NoRuntimeDir)
        );
    }

    #[test]
    fn uid_parsing() {
        let s = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t1\t1\t1\t1\n";
        assert_eq!(parse_effective_uid(s), Some(0));
        assert_eq!(parse_effective_uid("Name: x\n"), None);
    }
}
