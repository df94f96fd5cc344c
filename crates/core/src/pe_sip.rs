//! The SIP persistence engine's Call-ID extraction (docs/internals/persistence.md#persistence-engines---pe-sip, `ip_vs_pe_sip.c` on top of the
//! header matching rules of `nf_conntrack_sip.c`).
//!
//! The kernel finds a `Call-ID:` (or compact `i:`) header that starts a line, skips linear
//! white space (including folded continuation lines), and takes a "word" optionally followed by
//! `@` and a second word. The value is rejected if it is longer than 255 bytes or is not followed
//! by CR or LF.

/// Longest persistence-engine data the kernel keeps (`IP_VS_PEDATA_MAXLEN`).
pub const PEDATA_MAXLEN: usize = 255;

/// `iswordc` of nf_conntrack_sip.c: characters allowed in a SIP "word".
fn is_word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'"'
                | b'%'
                | b'('..=b'+'
                | b':'
                | b'<'
                | b'>'
                | b'?'
                | b'['..=b']'
                | b'_'
                | b'`'
                | b'{'
                | b'}'
                | b'~'
                | b'-'..=b'/'
                | b'\''
        )
}

fn word_len(s: &[u8]) -> usize {
    s.iter().take_while(|&&c| is_word_char(c)).count()
}

/// `callid_len`: word [ "@" word ]; 0 if an `@` is not followed by a word.
fn callid_len(s: &[u8]) -> usize {
    let len = word_len(s);
    if len == 0 || s.get(len) != Some(&b'@') {
        return len;
    }
    let domain = word_len(&s[len + 1..]);
    if domain == 0 {
        0
    } else {
        len + 1 + domain
    }
}

/// After a CR or LF at `i`: the position past a folded continuation's leading white space, or
/// `None` if the line is not continued (`sip_follow_continuation`).
fn follow_continuation(d: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    if i >= d.len() {
        return None;
    }
    if d[i - 1] == b'\r' && d[i] == b'\n' {
        i += 1;
        if i >= d.len() {
            return None;
        }
    }
    if d[i] != b' ' && d[i] != b'\t' {
        return None;
    }
    while i < d.len() && (d[i] == b' ' || d[i] == b'\t') {
        i += 1;
    }
    Some(i)
}

/// `sip_skip_whitespace`: skip blanks and at most one folded line break.
fn skip_whitespace(d: &[u8], mut i: usize) -> Option<usize> {
    while i < d.len() {
        match d[i] {
            b' ' | b'\t' => i += 1,
            b'\r' | b'\n' => return follow_continuation(d, i),
            _ => return Some(i),
        }
    }
    Some(i)
}

/// One `ct_sip_get_header` search for Call-ID starting at `from`.
/// `Found(off, len)`; `Empty(off)` when a header was found but its value has length 0 (the
/// kernel then searches on from there); `NotFound`.
enum Search {
    Found(usize, usize),
    Empty(usize),
    NotFound,
}

fn find_header(d: &[u8], from: usize) -> Search {
    const NAME: &[u8] = b"Call-ID";
    let limit = d.len();
    let mut i = from;
    while i < limit {
        if d[i] != b'\r' && d[i] != b'\n' {
            i += 1;
            continue;
        }
        // Beginning of a line.
        i += 1;
        if i >= limit {
            break;
        }
        if d[i - 1] == b'\r' && d[i] == b'\n' {
            i += 1;
            if i >= limit {
                break;
            }
        }
        // Continuation lines are not header starts.
        if d[i] == b' ' || d[i] == b'\t' {
            continue;
        }
        let rest = &d[i..];
        let mut j = if rest.len() >= NAME.len() && rest[..NAME.len()].eq_ignore_ascii_case(NAME) {
            i + NAME.len()
        } else if rest.len() >= 2
            && rest[0].eq_ignore_ascii_case(&b'i')
            && !rest[1].is_ascii_alphabetic()
        {
            // Compact form, which must be followed by a non-alphabetic character.
            i + 1
        } else {
            continue;
        };
        let Some(k) = skip_whitespace(d, j) else {
            break;
        };
        j = k;
        if j >= limit || d[j] != b':' {
            break;
        }
        j += 1;
        if j >= limit {
            break;
        }
        let Some(k) = skip_whitespace(d, j) else {
            break;
        };
        let len = callid_len(&d[k..]);
        if len == 0 {
            return Search::Empty(k);
        }
        return Search::Found(k, len);
    }
    Search::NotFound
}

/// Extract the Call-ID from a SIP message carried in a UDP payload, as the kernel's SIP
/// persistence engine does; `None` means the packet must be dropped (docs/internals/persistence.md#persistence-engines---pe-sip).
pub fn call_id(payload: &[u8]) -> Option<&[u8]> {
    let mut from = 0;
    let (off, len) = loop {
        match find_header(payload, from) {
            Search::Found(off, len) => break (off, len),
            Search::Empty(off) => {
                if off <= from {
                    return None;
                }
                from = off;
            }
            Search::NotFound => return None,
        }
    };
    if len > PEDATA_MAXLEN {
        return None;
    }
    // SIP headers are always followed by a line terminator.
    match payload.get(off + len) {
        Some(b'\r') | Some(b'\n') => Some(&payload[off..off + len]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n\
To: Bob <sip:bob@example.com>\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\r\n";

    #[test]
    fn finds_full_form() {
        assert_eq!(
            call_id(INVITE),
            Some(&b"a84b4c76e66710@pc33.example.com"[..])
        );
    }

    #[test]
    fn compact_form_and_case() {
        let m = b"BYE sip:x SIP/2.0\r\ni: abc-123\r\n\r\n";
        assert_eq!(call_id(m), Some(&b"abc-123"[..]));
        let m = b"BYE sip:x SIP/2.0\ncall-id:\tq.w.e\n";
        assert_eq!(call_id(m), Some(&b"q.w.e"[..]));
    }

    #[test]
    fn compact_must_not_be_followed_by_a_letter() {
        let m = b"BYE sip:x SIP/2.0\r\nid: nope\r\nCall-ID: yes\r\n";
        assert_eq!(call_id(m), Some(&b"yes"[..]));
    }

    #[test]
    fn folded_value() {
        let m = b"BYE sip:x SIP/2.0\r\nCall-ID:\r\n   folded@host\r\n";
        assert_eq!(call_id(m), Some(&b"folded@host"[..]));
    }

    #[test]
    fn header_on_first_line_is_not_a_header() {
        assert_eq!(call_id(b"Call-ID: x\r\n"), None);
    }

    #[test]
    fn must_be_followed_by_line_terminator() {
        assert_eq!(call_id(b"X\r\nCall-ID: abc"), None);
        assert_eq!(call_id(b"X\r\nCall-ID: abc def\r\n"), None);
    }

    #[test]
    fn too_long_is_rejected() {
        let mut m = b"X\r\nCall-ID: ".to_vec();
        m.extend(std::iter::repeat_n(b'a', 256));
        m.extend_from_slice(b"\r\n");
        assert_eq!(call_id(&m), None);
        let mut m = b"X\r\nCall-ID: ".to_vec();
        m.extend(std::iter::repeat_n(b'a', 255));
        m.extend_from_slice(b"\r\n");
        assert_eq!(call_id(&m).map(<[u8]>::len), Some(255));
    }

    #[test]
    fn at_without_domain_is_empty_and_search_goes_on() {
        let m = b"X\r\nCall-ID: abc@ \r\nCall-ID: second\r\n";
        assert_eq!(call_id(m), Some(&b"second"[..]));
    }

    #[test]
    fn no_panic_on_garbage() {
        for m in [
            &b""[..],
            b"\r",
            b"\n",
            b"\r\n",
            b"\r\ni",
            b"\r\ni:",
            b"\r\nCall-ID",
            b"\r\nCall-ID:\r\n",
        ] {
            let _ = call_id(m);
        }
    }
}
