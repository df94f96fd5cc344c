//! SMTP_CHECK (docs/internals/keepalived.md#checkers-and-their-timers): expect the `220` banner, send `HELO <name>`, expect `250`, send
//! `QUIT` and wait for its reply.
//!
//! Two deliberate details: keepalived (`check_smtp.c`) reads the QUIT reply but does not look at
//! its code, so neither do we (expecting "221" would be stricter than the program); and
//! keepalived only reads the first line of a reply, so a multi-line `220-` banner fails there,
//! while we read continuation lines and judge the final one.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::{net, MiscWeight};
use crate::config::SmtpCheck;
use crate::error::{Error, Result};

/// Longest reply line we read.
const MAX_LINE: u64 = 4096;

/// Read one (possibly multi-line, `NNN-…`) SMTP reply and return its code.
async fn reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R, timeout: Duration) -> Result<u16> {
    // Bounded: an SMTP server sending endless continuation lines is a failure, not a hang.
    for _ in 0..64 {
        let mut line = String::new();
        // Bounded line length: a server that never sends a newline cannot grow our buffer.
        let mut limited = (&mut *r).take(MAX_LINE);
        let n = net::step(timeout, "SMTP read", limited.read_line(&mut line)).await?;
        if n == 0 {
            return Err(Error::Smtp("connection closed".into()));
        }
        let code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| Error::Smtp(format!("bad reply line {:?}", line.trim_end())))?;
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(code);
        }
    }
    Err(Error::Smtp("too many continuation lines".into()))
}

async fn expect<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    want: u16,
    timeout: Duration,
) -> Result<()> {
    let code = reply(r, timeout).await?;
    if code == want {
        Ok(())
    } else {
        Err(Error::Smtp(format!("expected {want}, got {code}")))
    }
}

pub(crate) async fn check(s: &SmtpCheck, timeout: Duration) -> Result<Option<MiscWeight>> {
    let stream = net::tcp_connect(&s.connect, timeout).await?;
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    expect(&mut rd, 220, timeout).await?;
    let helo = format!("HELO {}\r\n", s.helo_name);
    net::step(timeout, "SMTP write", wr.write_all(helo.as_bytes())).await?;
    expect(&mut rd, 250, timeout).await?;
    net::step(timeout, "SMTP write", wr.write_all(b"QUIT\r\n")).await?;
    reply(&mut rd, timeout).await?;
    Ok(None)
}
