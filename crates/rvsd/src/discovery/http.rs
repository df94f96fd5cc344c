//! A small HTTP/1.1 client for the two discovery sources: dockerd's API over its Unix socket
//! and etcd's v3 JSON gateway over TCP (optionally TLS).
//!
//! Both need the same few things — a request with a JSON body, a whole response, or a
//! streaming response read line by line (Docker's `/events` and etcd's `/v3/watch` send one
//! JSON document per line, chunked) — so one client of ours serves both instead of an HTTP
//! stack and a gRPC stack. Every request opens its own connection (`Connection: close`): the
//! sources are polled rarely and watched over one long-lived stream, so keep-alive would buy
//! nothing. The framing parsers ([`parse_head`], [`ChunkDecoder`]) are pure functions over
//! bytes (fuzzed by `fuzz/fuzz_targets/discovery_decode.rs`) and bound what they hold.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest response head (status line and headers) accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest whole body accepted by [`Client::request`] (a range of a large etcd prefix).
pub const MAX_BODY: usize = 64 << 20;
/// Longest line of a streaming body ([`BodyStream::next_line`]): one watch response or event.
pub const MAX_LINE: usize = 16 << 20;
/// Longest chunk-size or trailer line.
const MAX_CHUNK_LINE: usize = 4096;

/// Why an HTTP exchange failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    /// The connection or a read/write failed.
    #[error("{0}")]
    Io(String),
    /// The server sent something that is not HTTP/1.x as we read it.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// A response part exceeded its bound.
    #[error("response too large: {0}")]
    TooLarge(&'static str),
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl From<std::io::Error> for HttpError {
    fn from(e: std::io::Error) -> Self {
        HttpError::Io(e.to_string())
    }
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// How the body is delimited.
    pub fn framing(&self) -> Result<Framing, HttpError> {
        if let Some(te) = self.header("transfer-encoding") {
            if te
                .to_ascii_lowercase()
                .split(',')
                .any(|t| t.trim() == "chunked")
            {
                return Ok(Framing::Chunked);
            }
        }
        match self.header("content-length") {
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Framing::Length)
                .map_err(|_| HttpError::Malformed(format!("content-length `{v}'"))),
            None if self.status == 204 || self.status == 304 => Ok(Framing::Length(0)),
            None => Ok(Framing::Close),
        }
    }
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length`.
    Length(u64),
    /// At the end of the connection.
    Close,
}

/// Parse a response head from the start of `buf`: `Ok(None)` when more bytes are needed,
/// else the head and how many bytes it took. Interim `1xx` responses are not expected (we
/// never send `Expect`) and are refused.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(HttpError::TooLarge("head"));
        }
        return Ok(None);
    };
    if end > MAX_HEAD {
        return Err(HttpError::TooLarge("head"));
    }
    let text = std::str::from_utf8(&buf[..end])
        .map_err(|_| HttpError::Malformed("head is not UTF-8".into()))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed(format!(
            "status line `{}'",
            clip(status_line)
        )));
    }
    let status = parts
        .next()
        .and_then(|s| (s.len() == 3).then(|| s.parse::<u16>().ok()).flatten())
        .filter(|s| (200..600).contains(s))
        .ok_or_else(|| HttpError::Malformed(format!("status line `{}'", clip(status_line))))?;
    let mut headers = Vec::new();
    for l in lines {
        let (n, v) = l
            .split_once(':')
            .ok_or_else(|| HttpError::Malformed(format!("header line `{}'", clip(l))))?;
        if n.is_empty() || n.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(HttpError::Malformed(format!("header name `{}'", clip(n))));
        }
        headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(Some((Head { status, headers }, end + 4)))
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line.
    Size,
    /// This many data bytes of the current chunk are still to come.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, up to an empty line.
    Trailer,
    /// The body is complete.
    Done,
}

/// Incremental decoder of a chunked body (RFC 9112 §7.1): feed it bytes as they arrive.
#[derive(Debug)]
pub struct ChunkDecoder {
    state: ChunkState,
    line: Vec<u8>,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        ChunkDecoder {
            state: ChunkState::Size,
            line: Vec::new(),
        }
    }
}

impl ChunkDecoder {
    /// Whether the last chunk and the trailer were read.
    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decode what `input` holds, appending body bytes to `out`; every byte is consumed (a
    /// partial size line is kept) except after the end, whose position is returned.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                ChunkState::Done => return Ok(i),
                ChunkState::Data(n) => {
                    let take = usize::try_from(n)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::Size | ChunkState::DataEnd | ChunkState::Trailer => {
                    let b = input[i];
                    i += 1;
                    if b != b'\n' {
                        if self.line.len() >= MAX_CHUNK_LINE {
                            return Err(HttpError::TooLarge("chunk line"));
                        }
                        self.line.push(b);
                        continue;
                    }
                    let mut line = std::mem::take(&mut self.line);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    self.state = match self.state {
                        ChunkState::DataEnd if line.is_empty() => ChunkState::Size,
                        ChunkState::DataEnd => {
                            return Err(HttpError::Malformed("no CRLF after chunk data".into()))
                        }
                        ChunkState::Trailer if line.is_empty() => ChunkState::Done,
                        ChunkState::Trailer => ChunkState::Trailer,
                        _ => match chunk_size(&line)? {
                            0 => ChunkState::Trailer,
                            n => ChunkState::Data(n),
                        },
                    };
                }
            }
        }
        Ok(i)
    }
}

fn chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
    let hex = std::str::from_utf8(hex)
        .map_err(|_| HttpError::Malformed("chunk size is not text".into()))?
        .trim();
    if hex.is_empty() || hex.len() > 15 {
        return Err(HttpError::Malformed(format!("chunk size `{}'", clip(hex))));
    }
    u64::from_str_radix(hex, 16)
        .map_err(|_| HttpError::Malformed(format!("chunk size `{}'", clip(hex))))
}

/// Splits a byte stream into lines (without the `\n`, a trailing `\r` removed), holding at
/// most [`MAX_LINE`] bytes of an unfinished line.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Append `bytes`; complete non-empty lines are pushed to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), HttpError> {
        for part in bytes.split_inclusive(|&b| b == b'\n') {
            self.buf.extend_from_slice(part);
            if self.buf.last() == Some(&b'\n') {
                let mut l = std::mem::take(&mut self.buf);
                l.pop();
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                if !l.iter().all(u8::is_ascii_whitespace) {
                    out.push(l);
                }
            } else if self.buf.len() > MAX_LINE {
                return Err(HttpError::TooLarge("line of a streaming body"));
            }
        }
        Ok(())
    }

    /// What is left at the end of the stream (a last line without `\n`).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let l = std::mem::take(&mut self.buf);
        (!l.iter().all(u8::is_ascii_whitespace)).then_some(l)
    }
}

/// Anything we can speak HTTP over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where the server is.
#[derive(Clone)]
pub enum Endpoint {
    /// A Unix stream socket (dockerd).
    Unix(PathBuf),
    /// `host:port` over TCP, with TLS when `tls` is set.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// TLS client configuration (`https://`).
        tls: Option<Arc<rustls::ClientConfig>>,
    },
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp { host, port, tls } => write!(
                f,
                "{}://{host}:{port}",
                if tls.is_some() { "https" } else { "http" }
            ),
        }
    }
}

/// An HTTP/1.1 client of one endpoint.
#[derive(Clone, Debug)]
pub struct Client {
    /// The server.
    pub endpoint: Endpoint,
    /// Bound on connecting and on a whole non-streaming exchange.
    pub timeout: Duration,
}

/// A response whose body is read as it arrives.
pub struct BodyStream {
    io: Box<dyn Io>,
    framing: Framing,
    chunks: ChunkDecoder,
    /// Bytes read but not yet decoded.
    pending: Vec<u8>,
    left: u64,
    lines: LineSplitter,
    eof: bool,
}

impl BodyStream {
    /// Read raw body bytes into `out` until at least one arrives or the body ends (false).
    async fn fill(&mut self, out: &mut Vec<u8>) -> Result<bool, HttpError> {
        loop {
            if self.eof {
                return Ok(false);
            }
            if !self.pending.is_empty() {
                let input = std::mem::take(&mut self.pending);
                let before = out.len();
                match self.framing {
                    Framing::Chunked => {
                        self.chunks.push(&input, out)?;
                        if self.chunks.done() {
                            self.eof = true;
                        }
                    }
                    Framing::Length(_) => {
                        let take = usize::try_from(self.left)
                            .unwrap_or(usize::MAX)
                            .min(input.len());
                        out.extend_from_slice(&input[..take]);
                        self.left -= take as u64;
                        if self.left == 0 {
                            self.eof = true;
                        }
                    }
                    Framing::Close => out.extend_from_slice(&input),
                }
                if out.len() > before {
                    return Ok(true);
                }
                continue;
            }
            if matches!(self.framing, Framing::Length(0)) {
                self.eof = true;
                continue;
            }
            let mut buf = vec![0u8; 16 * 1024];
            let n = self.io.read(&mut buf).await?;
            if n == 0 {
                return match self.framing {
                    Framing::Close => {
                        self.eof = true;
                        Ok(false)
                    }
                    _ => Err(HttpError::Io(
                        "connection closed before the body ended".into(),
                    )),
                };
            }
            buf.truncate(n);
            self.pending = buf;
        }
    }

    /// The next non-empty line of the body; `None` at its end.
    pub async fn next_line(&mut self, queue: &mut Vec<Vec<u8>>) -> Result<bool, HttpError> {
        let mut bytes = Vec::new();
        loop {
            bytes.clear();
            if !self.fill(&mut bytes).await? {
                if let Some(l) = self.lines.finish() {
                    queue.push(l);
                    return Ok(true);
                }
                return Ok(false);
            }
            self.lines.push(&bytes, queue)?;
            if !queue.is_empty() {
                return Ok(true);
            }
        }
    }

    /// Reads the body's lines on a task of its own (so that waiting for one is cancel-safe
    /// and a follower can coalesce what is already there): every line as `Ok`, then one
    /// `Err` naming `what` when the stream ends or fails. The task stops when the returned
    /// guard is dropped. Docker's event stream and etcd's watch are both read this way.
    pub fn spawn_lines(
        mut self,
        what: &'static str,
    ) -> (
        tokio::sync::mpsc::Receiver<Result<Vec<u8>, String>>,
        AbortOnDrop,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, String>>(1024);
        let reader = tokio::spawn(async move {
            let mut q = Vec::new();
            loop {
                match self.next_line(&mut q).await {
                    Ok(true) => {
                        for l in q.drain(..) {
                            if tx.send(Ok(l)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok(false) => {
                        let _ = tx.send(Err(format!("the {what} ended"))).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("{what}: {e}"))).await;
                        return;
                    }
                }
            }
        });
        (rx, AbortOnDrop(reader))
    }

    /// The whole remaining body, at most [`MAX_BODY`] bytes.
    pub async fn read_all(&mut self) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        while self.fill(&mut out).await? {
            if out.len() > MAX_BODY {
                return Err(HttpError::TooLarge("body"));
            }
        }
        Ok(out)
    }
}

impl Client {
    async fn connect(&self) -> Result<(Box<dyn Io>, String), HttpError> {
        match &self.endpoint {
            Endpoint::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(|e| HttpError::Io(format!("{}: {e}", p.display())))?;
                Ok((Box::new(s), "localhost".to_string()))
            }
            Endpoint::Tcp { host, port, tls } => {
                let s = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| HttpError::Io(format!("{host}:{port}: {e}")))?;
                let _ = s.set_nodelay(true);
                let host_header = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                match tls {
                    None => Ok((Box::new(s), host_header)),
                    Some(cfg) => {
                        let name = rustls::pki_types::ServerName::try_from(host.clone())
                            .map_err(|e| HttpError::Io(format!("TLS server name {host}: {e}")))?;
                        let c = tokio_rustls::TlsConnector::from(cfg.clone())
                            .connect(name, s)
                            .await
                            .map_err(|e| HttpError::Io(format!("TLS with {host}:{port}: {e}")))?;
                        Ok((Box::new(c), host_header))
                    }
                }
            }
        }
    }

    /// Send a request and read the response head; the body is left to read as a stream.
    /// Connecting, sending and the head are bounded by [`Client::timeout`].
    pub async fn open(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<(Head, BodyStream), HttpError> {
        let t = self.timeout;
        tokio::time::timeout(t, self.open_inner(method, path, headers, body))
            .await
            .map_err(|_| HttpError::Timeout(t))?
    }

    async fn open_inner(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<(Head, BodyStream), HttpError> {
        let (mut io, host) = self.connect().await?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if let Some(b) = body {
            bytes.extend_from_slice(b);
        }
        io.write_all(&bytes).await?;
        io.flush().await?;
        let mut buf = Vec::new();
        let mut tmp = vec![0u8; 16 * 1024];
        let (head, used) = loop {
            if let Some(h) = parse_head(&buf)? {
                break h;
            }
            let n = io.read(&mut tmp).await?;
            if n == 0 {
                return Err(HttpError::Io(
                    "connection closed before the response head".into(),
                ));
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let framing = head.framing()?;
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let stream = BodyStream {
            io,
            framing,
            chunks: ChunkDecoder::default(),
            pending: buf.split_off(used),
            left,
            lines: LineSplitter::default(),
            eof: false,
        };
        Ok((head, stream))
    }

    /// A whole exchange, bounded by [`Client::timeout`]: the status and the body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<(u16, Vec<u8>), HttpError> {
        let t = self.timeout;
        tokio::time::timeout(t, async {
            let (head, mut s) = self.open_inner(method, path, headers, body).await?;
            Ok((head.status, s.read_all().await?))
        })
        .await
        .map_err(|_| HttpError::Timeout(t))?
    }
}

/// Aborts a task when dropped.
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parses_status_and_headers() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nrest";
        let (h, used) = parse_head(raw).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.header("content-type"), Some("application/json"));
        assert_eq!(h.framing().unwrap(), Framing::Chunked);
        assert_eq!(&raw[used..], b"rest");
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n").unwrap(), None);
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 2000 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n").is_err());
        let big = vec![b'a'; MAX_HEAD + 10];
        assert_eq!(parse_head(&big), Err(HttpError::TooLarge("head")));
    }

    #[test]
    fn chunks_decode_across_any_split() {
        let raw = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 0..raw.len() {
            let mut d = ChunkDecoder::default();
            let mut out = Vec::new();
            let end = raw.len() - 4;
            let a = d.push(&raw[..split], &mut out).unwrap();
            assert_eq!(a, split.min(end));
            let b = d.push(&raw[a..], &mut out).unwrap();
            assert!(d.done(), "split {split}");
            assert_eq!(out, b"hello, world");
            assert_eq!(&raw[a + b..], b"NEXT");
        }
        let mut d = ChunkDecoder::default();
        assert!(d.push(b"zz\r\n", &mut Vec::new()).is_err());
        let mut d = ChunkDecoder::default();
        assert!(d.push(b"2\r\nabX\r\n", &mut Vec::new()).is_err());
        let mut d = ChunkDecoder::default();
        let long = vec![b'1'; MAX_CHUNK_LINE + 1];
        assert!(d.push(&long, &mut Vec::new()).is_err());
    }

    #[test]
    fn lines_split_and_bound() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.push(b"{\"a\":1}\r\n\n{\"b\"", &mut out).unwrap();
        s.push(b":2}\n{\"c\"", &mut out).unwrap();
        assert_eq!(out, vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
        assert_eq!(s.finish(), Some(b"{\"c\"".to_vec()));
    }
}
