//! `Cookie` and `Set-Cookie` values (RFC 6265): finding one cookie by name, and writing the
//! `Set-Cookie` field the cookie engine adds to a response.

fn trim_ws(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// The value of cookie `name` in a `Cookie` field value (`a=1; b=2`). Names are
/// case-sensitive; the first occurrence wins, as in browsers' ordering (the most specific
/// path first).
pub fn find<'a>(field: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    field.split(|&c| c == b';').find_map(|pair| {
        let pair = trim_ws(pair);
        let eq = pair.iter().position(|&c| c == b'=')?;
        (trim_ws(&pair[..eq]) == name).then(|| trim_ws(&pair[eq + 1..]))
    })
}

/// The value a `Set-Cookie` field value (`NAME=VALUE; Path=/; ...`) gives cookie `name`.
pub fn set_cookie<'a>(field: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let first = field.split(|&c| c == b';').next()?;
    let eq = first.iter().position(|&c| c == b'=')?;
    (trim_ws(&first[..eq]) == name).then(|| trim_ws(&first[eq + 1..]))
}

/// Whether `name` can be a cookie name (an RFC 9110 token), so that it can be configured.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(super::head::is_tchar)
}

/// The header line (CRLF included) that gives the client cookie `name` = `value` for every
/// path of the site, out of scripts' reach; a session cookie (no expiry), so it ends with the
/// browser session and the persistence timeout bounds it on the director's side.
pub fn set_cookie_line(name: &str, value: &str) -> String {
    format!("Set-Cookie: {name}={value}; Path=/; HttpOnly\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_exact_name() {
        let f = b"a=1; RVSID=x1;b=2 ; RVSID=second";
        assert_eq!(find(f, b"RVSID"), Some(&b"x1"[..]));
        assert_eq!(find(f, b"b"), Some(&b"2"[..]));
        assert_eq!(find(f, b"rvsid"), None);
        assert_eq!(find(b"noequals; c=", b"c"), Some(&b""[..]));
        assert_eq!(find(b"", b"c"), None);
    }

    #[test]
    fn set_cookie_first_pair_only() {
        assert_eq!(
            set_cookie(b"JSESSIONID=abc; Path=/", b"JSESSIONID"),
            Some(&b"abc"[..])
        );
        assert_eq!(set_cookie(b"x=1; JSESSIONID=abc", b"JSESSIONID"), None);
        assert!(valid_name("RVSID"));
        assert!(!valid_name("A B"));
        assert!(!valid_name(""));
    }
}
