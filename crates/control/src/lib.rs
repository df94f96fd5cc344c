//! rvs-control: the request/response protocol between `rvsd` and `rvsadm`.
//!
//! - [`model`]: IPVS objects as ipvsadm sees them (services, real servers, counters,
//!   connections, timeouts, sync daemons, FULLNAT local addresses).
//! - [`proto`]: [`Request`], [`Response`] (data or an errno-like [`RemoteError`], plus warnings).
//! - [`codec`]: `u32` big-endian length-prefixed JSON frames and the handshake rules.
//! - [`client`]: a blocking Unix-socket client for rvsadm.
//! - [`socket`]: where the control socket lives.
//!
//! This crate depends on no other rvs crate.

pub mod client;
pub mod codec;
pub mod model;
pub mod proto;
pub mod socket;

pub use client::{Client, ClientError};
pub use codec::{decode, encode, read_frame, write_frame, CodecError};
pub use model::*;
pub use proto::{ErrorKind, Payload, RemoteError, Request, Response, PROTOCOL_VERSION};
pub use socket::{resolve_socket_path, resolve_socket_path_from, SocketPathError};
