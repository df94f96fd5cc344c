//! The server name (SNI, RFC 6066) of a TLS ClientHello, read from the first records of a
//! connection without decrypting anything: the `sni` persistence engine's key.

/// Most ClientHello bytes (all its records together) the proxy buffers before giving up.
/// Post-quantum key shares make hellos of 1.5–2 KiB common; 16 KiB is one full record.
pub const MAX_HELLO: usize = 16 * 1024;

/// Most connection bytes read while looking for a complete ClientHello: room for
/// [`MAX_HELLO`] bytes of handshake and the headers of the records that carry them.
pub const MAX_BUFFER: usize = 2 * MAX_HELLO;

/// What the first bytes of a connection say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hello {
    /// More bytes are needed.
    Partial,
    /// A complete ClientHello; its host name (lower case, no trailing dot), if it has one.
    Complete(Option<Vec<u8>>),
}

/// Why the bytes are not a usable ClientHello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelloError {
    /// Not a TLS handshake record (another protocol on the port).
    NotTls,
    /// The ClientHello is larger than [`MAX_HELLO`].
    TooLarge,
    /// A TLS record that does not hold a well-formed ClientHello.
    Malformed,
}

impl HelloError {
    /// Short label for the closed-flow counters.
    pub fn label(self) -> &'static str {
        match self {
            HelloError::NotTls => "not_tls",
            HelloError::TooLarge => "hello_too_large",
            HelloError::Malformed => "malformed_hello",
        }
    }
}

/// Read a ClientHello from the start of a connection's bytes, across as many handshake
/// records as it spans.
pub fn client_hello(buf: &[u8]) -> Result<Hello, HelloError> {
    let mut hs: Vec<u8> = Vec::new();
    let mut at = 0;
    loop {
        let Some(rec) = buf.get(at..at + 5) else {
            if let Some(&t) = buf.get(at) {
                if t != 22 {
                    return Err(HelloError::NotTls);
                }
            }
            if at == 0 && buf.len() >= 2 && buf[1] != 3 {
                return Err(HelloError::NotTls);
            }
            return partial(buf);
        };
        if rec[0] != 22 || rec[1] != 3 {
            return Err(HelloError::NotTls);
        }
        let len = usize::from(u16::from_be_bytes([rec[3], rec[4]]));
        if len == 0 || len > 16384 + 2048 {
            return Err(HelloError::Malformed);
        }
        let Some(frag) = buf.get(at + 5..at + 5 + len) else {
            return partial(buf);
        };
        hs.extend_from_slice(frag);
        at += 5 + len;
        if hs.len() < 4 {
            continue;
        }
        if hs[0] != 1 {
            return Err(HelloError::Malformed);
        }
        let body = usize::from(hs[1]) << 16 | usize::from(hs[2]) << 8 | usize::from(hs[3]);
        if body > MAX_HELLO {
            return Err(HelloError::TooLarge);
        }
        if hs.len() >= 4 + body {
            return server_name(&hs[4..4 + body]).map(Hello::Complete);
        }
    }
}

/// More bytes are needed, unless the buffer is at its limit already.
fn partial(buf: &[u8]) -> Result<Hello, HelloError> {
    if buf.len() >= MAX_BUFFER {
        Err(HelloError::TooLarge)
    } else {
        Ok(Hello::Partial)
    }
}

/// Cursor over a ClientHello body.
struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HelloError> {
        if self.0.len() < n {
            return Err(HelloError::Malformed);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<usize, HelloError> {
        Ok(usize::from(self.take(1)?[0]))
    }
    fn u16(&mut self) -> Result<usize, HelloError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
}

fn server_name(body: &[u8]) -> Result<Option<Vec<u8>>, HelloError> {
    let mut r = Rd(body);
    r.take(2 + 32)?; // legacy_version, random
    let sid = r.u8()?;
    if sid > 32 {
        return Err(HelloError::Malformed);
    }
    r.take(sid)?;
    let suites = r.u16()?;
    r.take(suites)?;
    let comp = r.u8()?;
    r.take(comp)?;
    if r.0.is_empty() {
        return Ok(None); // no extensions at all
    }
    let ext_len = r.u16()?;
    let mut ext = Rd(r.take(ext_len)?);
    while !ext.0.is_empty() {
        let ty = ext.u16()?;
        let len = ext.u16()?;
        let data = ext.take(len)?;
        if ty != 0 {
            continue;
        }
        let mut list = Rd(data);
        let list_len = list.u16()?;
        let mut names = Rd(list.take(list_len)?);
        while !names.0.is_empty() {
            let kind = names.u8()?;
            let n = names.u16()?;
            let name = names.take(n)?;
            if kind == 0 {
                return host_name(name).map(Some);
            }
        }
        return Ok(None);
    }
    Ok(None)
}

/// A DNS host name as the key: letters, digits, `-`, `_`, `.`; lower-cased, no trailing dot.
fn host_name(name: &[u8]) -> Result<Vec<u8>, HelloError> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty()
        || name.len() > 253
        || !name
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
    {
        return Err(HelloError::Malformed);
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello record with the given SNI (or none), split into records of at most
    /// `max_frag` bytes.
    pub(crate) fn hello(sni: Option<&str>, max_frag: usize) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one suite
        body.extend([1, 0]); // null compression
        let mut exts = Vec::new();
        exts.extend([0, 0x0b, 0, 2, 1, 0]); // ec_point_formats, unrelated
        if let Some(s) = sni {
            let n = s.len() as u16;
            exts.extend(0u16.to_be_bytes());
            exts.extend((n + 5).to_be_bytes());
            exts.extend((n + 3).to_be_bytes());
            exts.push(0);
            exts.extend(n.to_be_bytes());
            exts.extend(s.as_bytes());
        }
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![1, 0];
        hs.extend((body.len() as u16).to_be_bytes());
        hs.extend(body);
        let mut out = Vec::new();
        for frag in hs.chunks(max_frag) {
            out.extend([22, 3, 1]);
            out.extend((frag.len() as u16).to_be_bytes());
            out.extend(frag);
        }
        out
    }

    #[test]
    fn finds_name_in_one_or_many_records() {
        for frag in [16384, 7, 1] {
            let h = hello(Some("WWW.Example.com."), frag);
            assert_eq!(
                client_hello(&h),
                Ok(Hello::Complete(Some(b"www.example.com".to_vec()))),
                "fragment {frag}"
            );
            for cut in 0..h.len() {
                assert_eq!(client_hello(&h[..cut]), Ok(Hello::Partial), "cut {cut}");
            }
        }
        assert_eq!(client_hello(&hello(None, 100)), Ok(Hello::Complete(None)));
    }

    #[test]
    fn refuses_other_protocols_and_garbage() {
        assert_eq!(client_hello(b"GET / HTTP/1.1\r\n"), Err(HelloError::NotTls));
        assert_eq!(client_hello(b"\x16\x02"), Err(HelloError::NotTls));
        assert_eq!(
            client_hello(b"\x16\x03\x01\x00\x00"),
            Err(HelloError::Malformed)
        );
        let mut h = hello(Some("a.b"), 16384);
        h[5] = 2; // ServerHello
        assert_eq!(client_hello(&h), Err(HelloError::Malformed));
        let h = hello(Some("bad name"), 16384);
        assert_eq!(client_hello(&h), Err(HelloError::Malformed));
    }
}
