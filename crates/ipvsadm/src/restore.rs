//! Reading `-R` input exactly like ipvsadm's `config_stream_read`.
//!
//! ipvsadm tokenizes each line with `fscanf("%4096[^ \t\n\r]%1[ \t\n\r]")`; the observable
//! rules are: tokens are separated by space, tab or CR; a token equal to `ipvsadm` is dropped;
//! `#` has no special meaning; a line with no tokens yields only `argv[0]` (and is skipped by the
//! caller); a last line without a newline is still read, unless it ends in blanks, in which
//! case ipvsadm loses it (quirk kept); tokens longer than 4096 bytes are split.

use std::io::{BufRead, ErrorKind};

const MAX_TOKEN: usize = 4096;

fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Reads bytes one at a time with one byte of push-back, like stdio.
pub struct ByteReader<R: BufRead> {
    inner: R,
    pushed: Option<u8>,
}

impl<R: BufRead> ByteReader<R> {
    /// Wraps a buffered reader.
    pub fn new(inner: R) -> Self {
        ByteReader {
            inner,
            pushed: None,
        }
    }

    fn peek(&mut self) -> std::io::Result<Option<u8>> {
        if let Some(b) = self.pushed {
            return Ok(Some(b));
        }
        loop {
            match self.inner.fill_buf() {
                Ok(buf) => return Ok(buf.first().copied()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn next(&mut self) -> std::io::Result<Option<u8>> {
        if let Some(b) = self.pushed.take() {
            return Ok(Some(b));
        }
        let b = self.peek()?;
        if b.is_some() {
            self.inner.consume(1);
        }
        Ok(b)
    }
}

/// Reads the next line's argument vector (`first` is `argv[0]`). `Ok(None)` ends the input.
pub fn read_line<R: BufRead>(
    r: &mut ByteReader<R>,
    first: &str,
) -> std::io::Result<Option<Vec<String>>> {
    let mut argv = vec![first.to_string()];
    let mut ntoken = 0usize;
    // fscanf: EOF before any conversion ends the loop.
    while let Some(b) = r.peek()? {
        if is_sep(b) {
            // status 0: skip blanks up to the newline.
            loop {
                match r.next()? {
                    None => return Ok(None),
                    Some(b'\n') => return Ok(Some(argv)),
                    Some(b'\t' | b'\r' | b' ') => {}
                    Some(other) => {
                        r.pushed = Some(other);
                        break;
                    }
                }
            }
            continue;
        }
        let mut tok = Vec::new();
        while tok.len() < MAX_TOKEN {
            match r.peek()? {
                Some(b) if !is_sep(b) => {
                    tok.push(b);
                    r.next()?;
                }
                _ => break,
            }
        }
        let tail = match r.peek()? {
            Some(b) if is_sep(b) => {
                r.next()?;
                Some(b)
            }
            _ => None,
        };
        let tok = String::from_utf8_lossy(&tok).into_owned();
        if tok != "ipvsadm" {
            ntoken += 1;
            argv.push(tok);
        }
        if tail == Some(b'\n') {
            return Ok(Some(argv));
        }
    }
    if ntoken == 0 {
        return Ok(None);
    }
    Ok(Some(argv))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &str) -> Vec<Vec<String>> {
        let mut r = ByteReader::new(input.as_bytes());
        let mut out = Vec::new();
        while let Some(v) = read_line(&mut r, "prog").unwrap() {
            out.push(v);
        }
        out
    }

    #[test]
    fn tokenizes_like_ipvsadm() {
        let l =
            lines("-A -t 1.2.3.4:80 -s rr\n\n  ipvsadm -C\r\n# x y\n-a\t-t 1.2.3.4:80 -r 5.6.7.8");
        assert_eq!(l[0], vec!["prog", "-A", "-t", "1.2.3.4:80", "-s", "rr"]);
        assert_eq!(l[1], vec!["prog"]);
        assert_eq!(l[2], vec!["prog", "-C"]);
        assert_eq!(l[3], vec!["prog", "#", "x", "y"]);
        assert_eq!(
            l[4],
            vec!["prog", "-a", "-t", "1.2.3.4:80", "-r", "5.6.7.8"]
        );
        assert_eq!(l.len(), 5);
    }

    #[test]
    fn trailing_blank_without_newline_loses_the_line() {
        assert_eq!(lines("-C\n-Z \t").len(), 1);
        assert_eq!(lines("-C\n-Z").len(), 2);
        assert!(lines("").is_empty());
        assert!(lines("ipvsadm").is_empty());
    }
}
