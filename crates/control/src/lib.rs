//! rvs-control: the request/response protocol between `rvsd` and `rvsadm`.
//!
//! - [`model`]: IPVS objects as ipvsadm sees them (services, real servers, counters,
//!   connections, timeouts, sync daemons, FULLNAT local addresses), and VRRP instance status.
//! - [`proto`]: [`Request`], [`Response`] (data or an errno-like [`RemoteError`], plus warnings).
//! - [`codec`]: `u32` big-endian length-prefixed JSON frames and the handshake rules.
//! - [`client`]: a blocking Unix-socket client for rvsadm.
//! - [`socket`]: where the control socket lives.
//!
//! This crate depends on no other rvs crate.
//!
//! # Serving rvsadm (what rvsd must do)
//!
//! - Listen on the path from [`resolve_socket_path`] (create the directory, socket mode 0600).
//! - Per connection: read frames with [`decode`]; the first must be [`Request::Hello`]. Answer
//!   [`Payload::Hello`] with [`PROTOCOL_VERSION`] if the client's protocol equals it, else an
//!   error of kind [`ErrorKind::ProtocolMismatch`] with a detail naming both versions, and close.
//!   Then answer each request with exactly one [`Response`], in order. rvsadm keeps one
//!   connection for a whole `-R` restore and sends one request per input line.
//! - Changes answer [`Payload::Done`] or an error whose [`ErrorKind`] is what the kernel would
//!   return (docs/internals/ipvsadm.md): add service EEXIST / ENOENT (unknown scheduler or PE); edit,
//!   delete, zero, get service ESRCH; add/edit/delete dest ESRCH (no service), EEXIST / ENOENT
//!   (dest), ERANGE (weight, `l_threshold > u_threshold`), EINVAL (GUE without port, bad
//!   address); start daemon EEXIST; stop daemon ESRCH; local addresses ESRCH / EEXIST / ENOENT.
//!   rvsadm turns these into ipvsadm's texts itself; `detail` is only printed for
//!   [`ErrorKind::Unsupported`] (e.g. `--start-daemon` until connection sync exists),
//!   [`ErrorKind::ProtocolMismatch`] and [`ErrorKind::Internal`], and must then say what failed.
//! - [`Request::EditService`] and [`Request::EditDest`] are full replacements (docs/internals/ipvsadm.md#which-options-go-with-which-command):
//!   every field of the spec is the new value (scheduler, all flags, timeout, netmask, PE,
//!   PROXY protocol; weight, method, thresholds, tunnel settings).
//! - Listings: [`Request::GetInfo`] → version `0x010201` and the connection table size (first
//!   request of every rvsadm run; `-L` prints them). [`Request::GetServices`] → every service
//!   with its dests, dests in kernel list order (newest first; rvsadm sorts them unless
//!   `--nosort`), counters zero-adjusted, rates from the estimator. [`Request::GetService`] →
//!   one service with dests. [`Request::GetConns`] → connections and templates (no one-packet
//!   entries), expiry in seconds, fwmark templates with protocol [`ConnProtocol::Ip`] and the
//!   mark as virtual IPv4 address. [`Request::GetTimeouts`], [`Request::GetDaemons`] (empty when
//!   none), [`Request::GetLocalAddrs`], [`Request::GetVrrp`] (every VRRP instance's status in
//!   configuration order; an empty list when no `vrrp_instance` runs).
//! - `warnings` are printed by rvsadm to stderr, one line each, before its output: use them
//!   for entries that are accepted into the table but not served (e.g. a DR real server while
//!   only the socket data plane runs), saying why and what is needed.

#![forbid(unsafe_code)]

pub mod client;
pub mod codec;
pub mod model;
pub mod proto;
pub mod socket;

pub use client::{Client, ClientError};
pub use codec::{
    decode, decode_limited, encode, read_frame, write_frame, CodecError, FrameBuffer,
    MAX_REQUEST_FRAME,
};
pub use model::*;
pub use proto::{ErrorKind, Payload, RemoteError, Request, Response, PROTOCOL_VERSION};
pub use socket::{resolve_socket_path, resolve_socket_path_from, SocketPathError};
