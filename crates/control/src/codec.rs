//! Framing: every message is a `u32` big-endian length followed by that many bytes of JSON.
//!
//! The codec is I/O-agnostic ([`encode`], [`decode`]) so rvsd can drive it from tokio; the
//! blocking helpers [`read_frame`] / [`write_frame`] serve rvsadm.
//!
//! Conversation: the client sends [`crate::Request::Hello`]; the server answers
//! [`crate::Payload::Hello`] if the protocol versions are equal, else an error of kind
//! [`crate::ErrorKind::ProtocolMismatch`] and closes. Then any number of request → response
//! pairs follow, strictly in turn, on the same connection.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{Read, Write};
use thiserror::Error;

/// Largest frame accepted (a connection listing of a busy director can be large). This is the
/// limit of what rvsadm reads from rvsd.
pub const MAX_FRAME: usize = 256 * 1024 * 1024;

/// Largest request frame rvsd accepts on its control socket: 16 MiB. Requests are small (the
/// largest ipvsadm command is a few hundred bytes of JSON); the cap keeps one connection from
/// making rvsd buffer up to [`MAX_FRAME`]. A longer length prefix is answered with `EMSGSIZE`
/// naming this limit, and the connection is closed without reading the frame's body.
pub const MAX_REQUEST_FRAME: usize = 16 * 1024 * 1024;

/// Framing or serialization failure.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The length prefix announces more bytes than the reader accepts ([`MAX_FRAME`], or
    /// [`MAX_REQUEST_FRAME`] for rvsd's requests).
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit it exceeds.
        limit: usize,
    },
    /// The payload is not valid JSON for the expected type.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
    /// Reading or writing the stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the stream in the middle of a frame.
    #[error("connection closed in the middle of a message")]
    Truncated,
}

/// Serializes `msg` into one frame (length prefix + JSON).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_FRAME {
        return Err(CodecError::TooLarge {
            len: body.len(),
            limit: MAX_FRAME,
        });
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Tries to decode one frame from the start of `buf`.
///
/// Returns `Ok(None)` if `buf` does not yet hold a whole frame, else the message and the
/// number of bytes it used (the caller drops them from its buffer).
pub fn decode<T: DeserializeOwned>(buf: &[u8]) -> Result<Option<(T, usize)>, CodecError> {
    decode_limited(buf, MAX_FRAME)
}

/// [`decode`] with a frame limit of `limit` bytes: a longer length prefix is an error as soon
/// as its four bytes are in `buf`, before any of the body.
pub fn decode_limited<T: DeserializeOwned>(
    buf: &[u8],
    limit: usize,
) -> Result<Option<(T, usize)>, CodecError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > limit {
        return Err(CodecError::TooLarge { len, limit });
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let msg = serde_json::from_slice(&buf[4..4 + len])?;
    Ok(Some((msg, 4 + len)))
}

/// Writes one frame to a blocking stream.
pub fn write_frame<T: Serialize, W: Write>(w: &mut W, msg: &T) -> Result<(), CodecError> {
    let frame = encode(msg)?;
    w.write_all(&frame)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame from a blocking stream. `Ok(None)` means the peer closed the stream
/// cleanly before a new frame started.
pub fn read_frame<T: DeserializeOwned, R: Read>(r: &mut R) -> Result<Option<T>, CodecError> {
    let mut len_buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut len_buf[got..])?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(CodecError::Truncated)
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(len_buf) as usize;
    if len > MAX_FRAME {
        return Err(CodecError::TooLarge {
            len,
            limit: MAX_FRAME,
        });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            CodecError::Truncated
        } else {
            CodecError::Io(e)
        }
    })?;
    Ok(Some(serde_json::from_slice(&body)?))
}

/// Accumulates bytes from a non-blocking or async stream and yields whole messages, for
/// servers that read into their own buffers (rvsd with tokio).
#[derive(Debug)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    limit: usize,
}

impl Default for FrameBuffer {
    fn default() -> Self {
        FrameBuffer {
            buf: Vec::new(),
            limit: MAX_FRAME,
        }
    }
}

impl FrameBuffer {
    /// An empty buffer accepting frames up to [`MAX_FRAME`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty buffer accepting frames up to `limit` bytes (rvsd: [`MAX_REQUEST_FRAME`]).
    /// [`FrameBuffer::next_message`] reports a longer frame as soon as its length prefix has
    /// arrived, so the caller never buffers more than one read beyond it.
    pub fn with_limit(limit: usize) -> Self {
        FrameBuffer {
            buf: Vec::new(),
            limit,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, if one has fully arrived. After an error the stream is out
    /// of sync and should be closed.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, CodecError> {
        match decode_limited(&self.buf, self.limit)? {
            Some((msg, used)) => {
                self.buf.drain(..used);
                Ok(Some(msg))
            }
            None => Ok(None),
        }
    }

    /// Bytes buffered but not yet returned as a message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Request;

    #[test]
    fn frame_buffer_byte_by_byte() {
        let mut wire = encode(&Request::GetInfo).unwrap();
        wire.extend(encode(&Request::Flush).unwrap());
        let mut fb = FrameBuffer::new();
        let mut got = Vec::new();
        for b in wire {
            fb.push(&[b]);
            while let Some(m) = fb.next_message::<Request>().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![Request::GetInfo, Request::Flush]);
        assert_eq!(fb.pending(), 0);
    }

    #[test]
    fn frame_buffer_refuses_an_oversized_prefix_before_its_body() {
        let mut fb = FrameBuffer::with_limit(MAX_REQUEST_FRAME);
        fb.push(&((MAX_REQUEST_FRAME + 1) as u32).to_be_bytes());
        match fb.next_message::<Request>() {
            Err(CodecError::TooLarge { len, limit }) => {
                assert_eq!((len, limit), (MAX_REQUEST_FRAME + 1, MAX_REQUEST_FRAME));
            }
            other => panic!("{other:?}"),
        }
        // Exactly at the limit is still waiting for its body.
        let mut fb = FrameBuffer::with_limit(MAX_REQUEST_FRAME);
        fb.push(&(MAX_REQUEST_FRAME as u32).to_be_bytes());
        assert!(fb.next_message::<Request>().unwrap().is_none());
    }
}
