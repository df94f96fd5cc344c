//! HTTP/1.x request and response heads: start line and header fields, bounded in size and
//! count, strict where leniency would let the proxy and a real server disagree about where a
//! message ends (request smuggling): no white space before a colon, no folded lines, no bare
//! CR, no request with both `Transfer-Encoding` and `Content-Length`.

use super::cookie;
use super::framing::BodyKind;
use super::{MAX_HEAD, MAX_HEADERS};

/// One header field; the value has its surrounding white space removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// Field name as sent (compare case-insensitively).
    pub name: &'a [u8],
    /// Field value.
    pub value: &'a [u8],
}

/// A parsed request head; borrows the buffer it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Method token (`GET`, `POST`, ...).
    pub method: &'a [u8],
    /// Request target as sent.
    pub target: &'a [u8],
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor: u8,
    /// Header fields in order.
    pub headers: Vec<Header<'a>>,
    /// Bytes of the head in the buffer, empty line included (the body starts here).
    pub len: usize,
}

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor: u8,
    /// Status code (100..=999).
    pub status: u16,
    /// Header fields in order.
    pub headers: Vec<Header<'a>>,
    /// Bytes of the head in the buffer, empty line included.
    pub len: usize,
    /// Offset of the first header line (just past the status line): where a header is
    /// inserted.
    pub headers_at: usize,
}

/// Outcome of parsing a buffer that may hold only the beginning of a head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parse<T> {
    /// The whole head is in the buffer.
    Complete(T),
    /// More bytes are needed (and the buffer is still under [`MAX_HEAD`]).
    Partial,
}

/// Why a head is refused. The relay answers `431` to the first two, `400` to `Malformed`,
/// and closes without an answer on `NotHttp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// No end of head within [`MAX_HEAD`] bytes.
    TooLarge,
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// The bytes are not an HTTP/1.x message at all (another protocol on the port).
    NotHttp,
    /// HTTP, but broken or ambiguous; the text says what.
    Malformed(&'static str),
}

impl HeadError {
    /// Short label, used as the `reason` of the closed-flow counters.
    pub fn label(self) -> &'static str {
        match self {
            HeadError::TooLarge => "head_too_large",
            HeadError::TooManyHeaders => "too_many_headers",
            HeadError::NotHttp => "not_http",
            HeadError::Malformed(_) => "malformed",
        }
    }
}

/// RFC 9110 `tchar`.
pub(crate) fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Where the head ends: the offset just past the empty line (CRLF CRLF, or bare LF LF).
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = buf[i..].iter().position(|&c| c == b'\n') {
        let lf = i + p;
        let next = lf + 1;
        match buf.get(next) {
            Some(b'\n') => return Some(next + 1),
            Some(b'\r') if buf.get(next + 1) == Some(&b'\n') => return Some(next + 2),
            _ => i = next,
        }
    }
    None
}

/// Lines of a complete head (without their line ending), the empty last line excluded.
fn lines(head: &[u8]) -> Result<Vec<&[u8]>, HeadError> {
    let mut out = Vec::new();
    for line in head.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.contains(&b'\r') {
            return Err(HeadError::Malformed("bare CR"));
        }
        if line.is_empty() {
            break;
        }
        out.push(line);
    }
    Ok(out)
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn parse_headers<'a>(lines: &[&'a [u8]]) -> Result<Vec<Header<'a>>, HeadError> {
    if lines.len() > MAX_HEADERS {
        return Err(HeadError::TooManyHeaders);
    }
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return Err(HeadError::Malformed("folded header line"));
        }
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            return Err(HeadError::Malformed("header line without colon"));
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
            return Err(HeadError::Malformed("invalid header name"));
        }
        let value = trim(&line[colon + 1..]);
        if value
            .iter()
            .any(|&c| c == 0 || (c < 0x20 && c != b'\t') || c == 0x7f)
        {
            return Err(HeadError::Malformed("control character in header value"));
        }
        out.push(Header { name, value });
    }
    Ok(out)
}

fn version(v: &[u8]) -> Option<u8> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', d] if d.is_ascii_digit() => Some(d - b'0'),
        _ => None,
    }
}

/// Bytes of blank lines before a request line (RFC 9112 §2.2: a server should ignore them).
fn leading_blank(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        match &buf[i..] {
            [b'\r', b'\n', ..] => i += 2,
            [b'\n', ..] => i += 1,
            _ => return i,
        }
        if i > 8 {
            return i;
        }
    }
}

/// Where the request head at the start of `buf` ends once all of it is there (`Ok(None)`:
/// more bytes are needed), with [`parse_request`]'s early refusals (not HTTP, too large) but
/// without parsing the lines: the relay asks after every read and parses a complete head once.
pub fn request_head_len(buf: &[u8]) -> Result<Option<usize>, HeadError> {
    let skip = leading_blank(buf);
    let b = &buf[skip..];
    // Decide "not HTTP" as early as possible: the method must be a token followed by a space.
    let method_end = b.iter().position(|&c| !is_tchar(c));
    match method_end {
        Some(0) if !b.is_empty() => return Err(HeadError::NotHttp),
        Some(n) if b[n] != b' ' => return Err(HeadError::NotHttp),
        None if b.len() > 32 => return Err(HeadError::NotHttp),
        _ => {}
    }
    match head_end(b) {
        None if buf.len() >= MAX_HEAD => Err(HeadError::TooLarge),
        None => Ok(None),
        Some(end) if skip + end > MAX_HEAD => Err(HeadError::TooLarge),
        Some(end) => Ok(Some(skip + end)),
    }
}

/// Parse a request head at the start of `buf`.
pub fn parse_request(buf: &[u8]) -> Result<Parse<Request<'_>>, HeadError> {
    let Some(len) = request_head_len(buf)? else {
        return Ok(Parse::Partial);
    };
    let skip = leading_blank(buf);
    let b = &buf[skip..];
    let end = len - skip;
    let lines = lines(&b[..end])?;
    let Some((first, rest)) = lines.split_first() else {
        return Err(HeadError::Malformed("empty request"));
    };
    let mut parts = first.split(|&c| c == b' ');
    let (Some(method), Some(target), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed(
            "request line is not METHOD TARGET VERSION",
        ));
    };
    if method.is_empty() || !method.iter().all(|&c| is_tchar(c)) {
        return Err(HeadError::NotHttp);
    }
    if target.is_empty() || !target.iter().all(|&c| c > 0x20 && c != 0x7f) {
        return Err(HeadError::Malformed("invalid request target"));
    }
    let Some(minor) = version(v) else {
        // HTTP/2's preface "PRI * HTTP/2.0" and anything else that is not HTTP/1.x.
        return Err(HeadError::NotHttp);
    };
    Ok(Parse::Complete(Request {
        method,
        target,
        minor,
        headers: parse_headers(rest)?,
        len,
    }))
}

/// Parse a response head at the start of `buf`.
pub fn parse_response(buf: &[u8]) -> Result<Parse<Response<'_>>, HeadError> {
    if buf.len() >= 5 && !buf.starts_with(b"HTTP/") {
        return Err(HeadError::Malformed("response does not start with HTTP/"));
    }
    let Some(end) = head_end(buf) else {
        return if buf.len() >= MAX_HEAD {
            Err(HeadError::TooLarge)
        } else {
            Ok(Parse::Partial)
        };
    };
    if end > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let lines = lines(&buf[..end])?;
    let Some((first, rest)) = lines.split_first() else {
        return Err(HeadError::Malformed("empty response"));
    };
    let headers_at = buf.iter().position(|&c| c == b'\n').map_or(end, |p| p + 1);
    let Some(minor) = first.get(..8).and_then(version) else {
        return Err(HeadError::Malformed("response is not HTTP/1.x"));
    };
    let status = match first.get(8..12) {
        Some([b' ', a, b, c]) if [a, b, c].iter().all(|d| d.is_ascii_digit()) && *a != b'0' => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(HeadError::Malformed("invalid status code")),
    };
    if !matches!(first.get(12), None | Some(b' ')) {
        return Err(HeadError::Malformed("invalid status line"));
    }
    Ok(Parse::Complete(Response {
        minor,
        status,
        headers: parse_headers(rest)?,
        len: end,
        headers_at,
    }))
}

/// Values of every header named `name` (case-insensitive).
fn values<'h, 'a>(
    headers: &'h [Header<'a>],
    name: &'h [u8],
) -> impl Iterator<Item = &'a [u8]> + 'h {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Comma-separated list elements over every header named `name`.
fn list<'h, 'a>(headers: &'h [Header<'a>], name: &'h [u8]) -> impl Iterator<Item = &'a [u8]> + 'h {
    values(headers, name)
        .flat_map(|v| v.split(|&c| c == b','))
        .map(trim)
        .filter(|t| !t.is_empty())
}

fn has_token(headers: &[Header<'_>], name: &[u8], token: &[u8]) -> bool {
    list(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// Whether the connection stays open after this message (RFC 9112 §9.3).
fn persistent(headers: &[Header<'_>], minor: u8) -> bool {
    if has_token(headers, b"connection", b"close") {
        return false;
    }
    minor >= 1 || has_token(headers, b"connection", b"keep-alive")
}

/// The `Content-Length`: every value (also repeated or comma-listed) must be the same number.
fn content_length(headers: &[Header<'_>]) -> Result<Option<u64>, HeadError> {
    let mut found: Option<u64> = None;
    for v in list(headers, b"content-length") {
        if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
            return Err(HeadError::Malformed("invalid Content-Length"));
        }
        let n = v.iter().fold(0u64, |a, &d| a * 10 + u64::from(d - b'0'));
        if found.is_some_and(|f| f != n) {
            return Err(HeadError::Malformed("conflicting Content-Length"));
        }
        found = Some(n);
    }
    Ok(found)
}

/// `Some(true)` when the last transfer coding is chunked, `Some(false)` for another last
/// coding, `None` without `Transfer-Encoding`.
fn chunked(headers: &[Header<'_>]) -> Option<bool> {
    let last = list(headers, b"transfer-encoding").last()?;
    Some(last.eq_ignore_ascii_case(b"chunked"))
}

impl<'a> Request<'a> {
    /// Values of the header fields named `name`.
    pub fn header(&self, name: &[u8]) -> Option<&'a [u8]> {
        values(&self.headers, name).next()
    }
    /// The value of cookie `name` from the `Cookie` header fields.
    pub fn cookie(&self, name: &[u8]) -> Option<&'a [u8]> {
        values(&self.headers, b"cookie").find_map(|v| cookie::find(v, name))
    }
    /// Whether the client keeps the connection open after this request's response.
    pub fn keep_alive(&self) -> bool {
        persistent(&self.headers, self.minor)
    }
    /// The client asks to switch protocols (`Connection: upgrade` with an `Upgrade` field):
    /// after a `101` response the connection is a plain byte relay.
    pub fn wants_upgrade(&self) -> bool {
        has_token(&self.headers, b"connection", b"upgrade") && self.header(b"upgrade").is_some()
    }
    /// `CONNECT`: after a 2xx response the connection is a tunnel.
    pub fn is_connect(&self) -> bool {
        self.method == b"CONNECT"
    }
    /// How the request's body is framed. Both `Transfer-Encoding` and `Content-Length`, or a
    /// last coding other than chunked, are refused: a real server might frame them otherwise.
    pub fn body(&self) -> Result<BodyKind, HeadError> {
        let cl = content_length(&self.headers)?;
        match chunked(&self.headers) {
            Some(_) if self.minor == 0 => {
                Err(HeadError::Malformed("Transfer-Encoding in HTTP/1.0"))
            }
            Some(_) if cl.is_some() => Err(HeadError::Malformed(
                "both Transfer-Encoding and Content-Length",
            )),
            Some(true) => Ok(BodyKind::Chunked),
            Some(false) => Err(HeadError::Malformed("request body coding is not chunked")),
            None => Ok(cl.map_or(BodyKind::None, |n| {
                if n == 0 {
                    BodyKind::None
                } else {
                    BodyKind::Length(n)
                }
            })),
        }
    }
}

impl<'a> Response<'a> {
    /// Values of the header fields named `name`.
    pub fn header(&self, name: &[u8]) -> Option<&'a [u8]> {
        values(&self.headers, name).next()
    }
    /// The value `Set-Cookie` gives cookie `name`, if a field of this response sets it.
    pub fn set_cookie(&self, name: &[u8]) -> Option<&'a [u8]> {
        values(&self.headers, b"set-cookie").find_map(|v| cookie::set_cookie(v, name))
    }
    /// Whether the server keeps the connection open after this response.
    pub fn keep_alive(&self) -> bool {
        persistent(&self.headers, self.minor)
    }
    /// An interim response (1xx other than 101): the final response follows.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
    /// How the response's body is framed, given the request's method (RFC 9112 §6.3).
    pub fn body(&self, request_method: &[u8]) -> Result<BodyKind, HeadError> {
        if request_method == b"HEAD"
            || (100..200).contains(&self.status)
            || self.status == 204
            || self.status == 304
        {
            return Ok(BodyKind::None);
        }
        match chunked(&self.headers) {
            Some(true) => return Ok(BodyKind::Chunked),
            Some(false) => return Ok(BodyKind::UntilClose),
            None => {}
        }
        Ok(match content_length(&self.headers)? {
            Some(0) => BodyKind::None,
            Some(n) => BodyKind::Length(n),
            None => BodyKind::UntilClose,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(b: &[u8]) -> Request<'_> {
        match parse_request(b) {
            Ok(Parse::Complete(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn simple_request() {
        let b = b"GET /a HTTP/1.1\r\nHost: x\r\nCookie: a=1; RVSID=abc\r\n\r\nNEXT";
        let r = req(b);
        assert_eq!(r.method, b"GET");
        assert_eq!(r.target, b"/a");
        assert_eq!(r.minor, 1);
        assert_eq!(r.len, b.len() - 4);
        assert_eq!(r.header(b"HOST"), Some(&b"x"[..]));
        assert_eq!(r.cookie(b"RVSID"), Some(&b"abc"[..]));
        assert_eq!(r.cookie(b"rvsid"), None);
        assert!(r.keep_alive());
        assert_eq!(r.body(), Ok(BodyKind::None));
    }

    #[test]
    fn partial_and_limits() {
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost"), Ok(Parse::Partial));
        assert_eq!(parse_request(b"GE"), Ok(Parse::Partial));
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD, b'a');
        assert_eq!(parse_request(&big), Err(HeadError::TooLarge));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&many), Err(HeadError::TooManyHeaders));
    }

    #[test]
    fn head_length_agrees_with_the_parser() {
        let b = b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET";
        assert_eq!(request_head_len(b), Ok(Some(b.len() - 3)));
        assert_eq!(req(b).len, b.len() - 3);
        assert_eq!(request_head_len(&b[..10]), Ok(None));
        assert_eq!(request_head_len(b"\x16\x03\x01"), Err(HeadError::NotHttp));
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD, b'a');
        assert_eq!(request_head_len(&big), Err(HeadError::TooLarge));
    }

    #[test]
    fn not_http_is_seen_early() {
        assert_eq!(parse_request(b"\x16\x03\x01\x02"), Err(HeadError::NotHttp));
        assert_eq!(
            parse_request(b"SSH-2.0-OpenSSH\r\n"),
            Err(HeadError::NotHttp)
        );
        assert_eq!(
            parse_request(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Err(HeadError::NotHttp)
        );
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for b in [
            &b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        ] {
            assert!(
                matches!(req(b).body(), Err(HeadError::Malformed(_))),
                "{b:?}"
            );
        }
        for b in [
            &b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse_request(b), Err(HeadError::Malformed(_))),
                "{b:?}"
            );
        }
        let r = req(b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(r.body(), Ok(BodyKind::Length(5)));
        let r = req(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(r.body(), Ok(BodyKind::Chunked));
    }

    #[test]
    fn connection_tokens() {
        assert!(!req(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive());
        assert!(!req(b"GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(req(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive());
        let u =
            req(b"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n");
        assert!(u.wants_upgrade());
    }

    #[test]
    fn responses() {
        let b =
            b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=s1; Path=/\r\nContent-Length: 2\r\n\r\nhi";
        let Ok(Parse::Complete(r)) = parse_response(b) else {
            panic!()
        };
        assert_eq!(r.status, 200);
        assert_eq!(r.headers_at, 17);
        assert_eq!(r.set_cookie(b"JSESSIONID"), Some(&b"s1"[..]));
        assert_eq!(r.body(b"GET"), Ok(BodyKind::Length(2)));
        assert_eq!(r.body(b"HEAD"), Ok(BodyKind::None));
        let Ok(Parse::Complete(r)) =
            parse_response(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!(r.body(b"GET"), Ok(BodyKind::None));
        let Ok(Parse::Complete(r)) = parse_response(b"HTTP/1.0 200 OK\r\n\r\n") else {
            panic!()
        };
        assert_eq!(r.body(b"GET"), Ok(BodyKind::UntilClose));
        assert!(!r.keep_alive());
        let Ok(Parse::Complete(r)) = parse_response(b"HTTP/1.1 100 Continue\r\n\r\n") else {
            panic!()
        };
        assert!(r.is_interim());
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 20 OK\r\n\r\n").is_err());
    }
}
