//! Pure parsing for the content-aware persistence engines: HTTP/1.x message heads and their
//! framing, cookies, and the server name of a TLS ClientHello. No I/O here: the relay in
//! `crate::pe_relay` feeds bytes in and acts on the answers, and the fuzz targets call the same
//! functions on arbitrary input.
//!
//! Everything is bounded: a head larger than [`MAX_HEAD`] bytes or with more than
//! [`MAX_HEADERS`] header lines is refused ([`HeadError::TooLarge`]), as is a ClientHello that
//! does not fit in [`tls::MAX_HELLO`] bytes, so a client cannot make the proxy buffer without
//! limit before it has chosen a real server.

pub mod cookie;
pub mod framing;
pub mod head;
pub mod tls;

pub use framing::{BodyKind, BodyScanner, FramingError};
pub use head::{
    parse_request, parse_response, request_head_len, HeadError, Header, Parse, Request, Response,
};

/// Largest request or response head (start line, header lines and the empty line) the proxy
/// buffers. The same order as nginx's default `large_client_header_buffers` (4 × 8 KiB).
pub const MAX_HEAD: usize = 32 * 1024;

/// Most header lines in one head (HAProxy's default `tune.http.maxhdr` is 101).
pub const MAX_HEADERS: usize = 100;
