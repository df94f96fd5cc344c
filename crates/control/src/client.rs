//! Small blocking client over a Unix stream socket, for rvsadm.

use crate::codec::{read_frame, write_frame, CodecError};
use crate::proto::{ErrorKind, Payload, Request, Response, PROTOCOL_VERSION};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why talking to rvsd failed (as opposed to rvsd answering with an error).
#[derive(Debug, Error)]
pub enum ClientError {
    /// The socket could not be connected: rvsd is most likely not running.
    #[error("cannot connect to rvsd at {}: {} (is rvsd running?)", path.display(), io_reason(source))]
    Connect {
        /// The socket path tried.
        path: PathBuf,
        /// The connect error.
        source: std::io::Error,
    },
    /// Framing or I/O failed on an established connection.
    #[error("talking to rvsd at {}: {source}", path.display())]
    Codec {
        /// The socket path.
        path: PathBuf,
        /// The failure.
        source: CodecError,
    },
    /// rvsd closed the connection before answering.
    #[error("rvsd at {} closed the connection without answering", path.display())]
    Closed {
        /// The socket path.
        path: PathBuf,
    },
    /// The handshake was refused or answered with something else than a hello.
    #[error("rvsd at {} refused the handshake: {reason}", path.display())]
    Handshake {
        /// The socket path.
        path: PathBuf,
        /// What the server said.
        reason: String,
    },
}

/// The text of an I/O error without Rust's ` (os error N)` suffix, for one-line messages.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(p) if s.ends_with(')') => s[..p].to_string(),
        _ => s,
    }
}

/// A connected, handshaken client.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    path: PathBuf,
    server: String,
}

impl Client {
    /// Connects to `path` and performs the version handshake, identifying as `client`.
    pub fn connect(path: &Path, client: &str) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        let mut c = Client {
            stream,
            path: path.to_path_buf(),
            server: String::new(),
        };
        let hello = Request::Hello {
            protocol: PROTOCOL_VERSION,
            client: client.to_string(),
        };
        let resp = c.call(&hello)?;
        match resp.result {
            Ok(Payload::Hello { protocol, server }) if protocol == PROTOCOL_VERSION => {
                c.server = server;
                Ok(c)
            }
            Ok(Payload::Hello { protocol, server }) => Err(ClientError::Handshake {
                path: c.path.clone(),
                reason: format!(
                    "{server} speaks control protocol {protocol}, this client speaks {PROTOCOL_VERSION}"
                ),
            }),
            Ok(other) => Err(ClientError::Handshake {
                path: c.path.clone(),
                reason: format!("unexpected answer {other:?}"),
            }),
            Err(e) if e.kind == ErrorKind::ProtocolMismatch => Err(ClientError::Handshake {
                path: c.path.clone(),
                reason: e.to_string(),
            }),
            Err(e) => Err(ClientError::Handshake {
                path: c.path.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// The server identification it sent in the handshake.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The socket path this client is connected to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one request and waits for its response.
    pub fn call(&mut self, req: &Request) -> Result<Response, ClientError> {
        write_frame(&mut self.stream, req).map_err(|source| ClientError::Codec {
            path: self.path.clone(),
            source,
        })?;
        match read_frame::<Response, _>(&mut self.stream) {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(ClientError::Closed {
                path: self.path.clone(),
            }),
            Err(source) => Err(ClientError::Codec {
                path: self.path.clone(),
                source,
            }),
        }
    }
}
