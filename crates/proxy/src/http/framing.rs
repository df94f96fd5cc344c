//! Where an HTTP/1.x message body ends, found while its bytes pass through unchanged: a known
//! length, chunked coding (followed through chunk sizes, extensions and trailers), no body,
//! or "until the server closes". The relay needs it to know when the next request or response
//! head begins on a keep-alive connection.

/// How a body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the sender closes (responses only).
    UntilClose,
}

/// Why a chunked body cannot be followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingError {
    /// A chunk-size line that is not hex digits, too long, or badly terminated.
    BadChunkSize,
    /// Chunk data not followed by CRLF.
    BadChunkEnd,
    /// Trailer section larger than [`super::MAX_HEAD`].
    TrailerTooLarge,
}

/// Longest chunk-size line (digits and extensions).
const MAX_SIZE_LINE: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Length(u64),
    /// In the chunk-size digits; `(value, digits, line length)`.
    Size(u64, u8, usize),
    /// In chunk extensions (after the digits) up to LF; `(value, line length, saw CR)`.
    Ext(u64, usize, bool),
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line; `total` trailer bytes so far.
    TrailerStart(usize),
    /// Inside a trailer line; `(total, saw CR)`.
    Trailer(usize, bool),
    /// Saw CR of the final empty line.
    FinalLf(usize),
    Done,
    UntilClose,
}

/// Follows one body through the bytes fed to it.
#[derive(Clone, Debug)]
pub struct BodyScanner {
    st: St,
}

impl BodyScanner {
    /// A scanner for a body framed as `kind`.
    pub fn new(kind: BodyKind) -> Self {
        let st = match kind {
            BodyKind::None | BodyKind::Length(0) => St::Done,
            BodyKind::Length(n) => St::Length(n),
            BodyKind::Chunked => St::Size(0, 0, 0),
            BodyKind::UntilClose => St::UntilClose,
        };
        BodyScanner { st }
    }

    /// Whether the body is complete.
    pub fn done(&self) -> bool {
        self.st == St::Done
    }

    /// Whether the body only ends when the sender closes.
    pub fn until_close(&self) -> bool {
        self.st == St::UntilClose
    }

    /// Consume bytes of the body from the start of `data`: returns how many belong to it (all
    /// of them unless the body ends inside `data`; the rest is the next message).
    pub fn feed(&mut self, data: &[u8]) -> Result<usize, FramingError> {
        let mut i = 0;
        while i < data.len() {
            match self.st {
                St::Done => break,
                St::UntilClose => return Ok(data.len()),
                St::Length(n) | St::Data(n) => {
                    let take = (data.len() - i).min(usize::try_from(n).unwrap_or(usize::MAX));
                    i += take;
                    let left = n - take as u64;
                    self.st = match (self.st, left) {
                        (St::Length(_), 0) => St::Done,
                        (St::Length(_), l) => St::Length(l),
                        (_, 0) => St::DataCr,
                        (_, l) => St::Data(l),
                    };
                }
                St::Size(v, digits, len) => {
                    let c = data[i];
                    i += 1;
                    if let Some(d) = (c as char).to_digit(16) {
                        if digits >= 15 {
                            return Err(FramingError::BadChunkSize);
                        }
                        self.st = St::Size(v * 16 + u64::from(d), digits + 1, len + 1);
                    } else if digits == 0 {
                        return Err(FramingError::BadChunkSize);
                    } else {
                        self.st = St::Ext(v, len, false);
                        i -= 1;
                    }
                }
                St::Ext(v, len, cr) => {
                    let c = data[i];
                    i += 1;
                    if len > MAX_SIZE_LINE {
                        return Err(FramingError::BadChunkSize);
                    }
                    match c {
                        b'\n' => {
                            self.st = if v == 0 {
                                St::TrailerStart(0)
                            } else {
                                St::Data(v)
                            };
                        }
                        _ if cr => return Err(FramingError::BadChunkSize),
                        b'\r' => self.st = St::Ext(v, len + 1, true),
                        0..=8 | 10..=31 | 127 => return Err(FramingError::BadChunkSize),
                        _ => self.st = St::Ext(v, len + 1, false),
                    }
                }
                St::DataCr => {
                    if data[i] != b'\r' {
                        return Err(FramingError::BadChunkEnd);
                    }
                    i += 1;
                    self.st = St::DataLf;
                }
                St::DataLf => {
                    if data[i] != b'\n' {
                        return Err(FramingError::BadChunkEnd);
                    }
                    i += 1;
                    self.st = St::Size(0, 0, 0);
                }
                St::TrailerStart(total) => {
                    let c = data[i];
                    i += 1;
                    self.st = match c {
                        b'\n' => St::Done,
                        b'\r' => St::FinalLf(total),
                        _ => St::Trailer(total + 1, false),
                    };
                }
                St::FinalLf(_) => {
                    if data[i] != b'\n' {
                        return Err(FramingError::BadChunkEnd);
                    }
                    i += 1;
                    self.st = St::Done;
                }
                St::Trailer(total, cr) => {
                    let c = data[i];
                    i += 1;
                    if total > super::MAX_HEAD {
                        return Err(FramingError::TrailerTooLarge);
                    }
                    self.st = match c {
                        b'\n' => St::TrailerStart(total + 1),
                        _ if cr => return Err(FramingError::BadChunkEnd),
                        b'\r' => St::Trailer(total + 1, true),
                        _ => St::Trailer(total + 1, false),
                    };
                }
            }
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` one byte at a time and in one piece; both must agree.
    fn end_of(kind: BodyKind, data: &[u8]) -> Result<Option<usize>, FramingError> {
        let mut whole = BodyScanner::new(kind);
        let n = whole.feed(data)?;
        let mut bytes = BodyScanner::new(kind);
        let mut m = 0;
        for b in data {
            if bytes.done() {
                break;
            }
            m += bytes.feed(std::slice::from_ref(b))?;
        }
        assert_eq!(whole.done(), bytes.done());
        assert_eq!(n, m);
        Ok(whole.done().then_some(n))
    }

    #[test]
    fn length() {
        assert_eq!(end_of(BodyKind::Length(3), b"abcdef"), Ok(Some(3)));
        assert_eq!(end_of(BodyKind::Length(9), b"abc"), Ok(None));
        assert_eq!(end_of(BodyKind::None, b"abc"), Ok(Some(0)));
    }

    #[test]
    fn chunked() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\nGET";
        assert_eq!(end_of(BodyKind::Chunked, body), Ok(Some(body.len() - 3)));
        let trailer = b"0\r\nX-T: 1\r\n\r\nNEXT";
        assert_eq!(
            end_of(BodyKind::Chunked, trailer),
            Ok(Some(trailer.len() - 4))
        );
        assert_eq!(end_of(BodyKind::Chunked, b"3\r\nab"), Ok(None));
    }

    #[test]
    fn chunked_errors() {
        assert_eq!(
            end_of(BodyKind::Chunked, b"x\r\n"),
            Err(FramingError::BadChunkSize)
        );
        assert_eq!(
            end_of(BodyKind::Chunked, b"1\r\naX"),
            Err(FramingError::BadChunkEnd)
        );
        assert_eq!(
            end_of(BodyKind::Chunked, b"1000000000000000\r\n"),
            Err(FramingError::BadChunkSize)
        );
        assert_eq!(
            end_of(BodyKind::Chunked, b"1\r\r\n"),
            Err(FramingError::BadChunkSize)
        );
    }
}
