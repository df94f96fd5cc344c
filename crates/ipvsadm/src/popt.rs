//! A re-implementation of the parts of libpopt's `poptGetNextOpt` that ipvsadm relies on.
//!
//! ipvsadm's messages depend on popt's exact behaviour: short options may be bundled (`-Ln`),
//! an argument may be glued (`-p360`, `-p=360`, `--persistent=360`), an optional argument is
//! taken from the next word unless that word starts with `-`, non-option words are collected
//! as "leftovers" wherever they appear, `--` ends option processing, and error messages name
//! `argv[next - 1]` (the last word consumed), which is what `poptBadOption` returns.

/// Whether an option takes an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// `POPT_ARG_NONE`.
    None,
    /// `POPT_ARG_STRING`.
    Required,
    /// `POPT_ARG_STRING | POPT_ARGFLAG_OPTIONAL`.
    Optional,
}

/// One entry of the option table.
#[derive(Debug, Clone, Copy)]
pub struct OptDef<T: Copy> {
    /// Long name without dashes.
    pub long: &'static str,
    /// Short name, if any.
    pub short: Option<char>,
    /// Argument kind.
    pub arg: ArgKind,
    /// Value returned when the option is seen.
    pub val: T,
}

/// popt error codes ipvsadm can meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoptError {
    /// `POPT_ERROR_NOARG`.
    NoArg,
    /// `POPT_ERROR_BADOPT`.
    BadOpt,
    /// `POPT_ERROR_UNWANTEDARG`.
    UnwantedArg,
}

impl PoptError {
    /// `poptStrerror` text.
    pub fn message(self) -> &'static str {
        match self {
            PoptError::NoArg => "missing argument",
            PoptError::BadOpt => "unknown option",
            PoptError::UnwantedArg => "option does not take an argument",
        }
    }
}

/// Parsing state over one argument vector (`args[0]` is the program name and is skipped).
pub struct Popt<'a, T: Copy> {
    table: &'a [OptDef<T>],
    args: &'a [String],
    next: usize,
    /// Pending bundled short options: (index into args, byte offset).
    next_char: Option<(usize, usize)>,
    rest_leftover: bool,
    leftovers: Vec<String>,
    next_leftover: usize,
}

impl<'a, T: Copy> Popt<'a, T> {
    /// Starts parsing `args` (including `args[0]`) against `table`.
    pub fn new(table: &'a [OptDef<T>], args: &'a [String]) -> Self {
        Popt {
            table,
            args,
            next: 1,
            next_char: None,
            rest_leftover: false,
            leftovers: Vec::new(),
            next_leftover: 0,
        }
    }

    /// `poptBadOption(con, POPT_BADOPTION_NOALIAS)`: the last word consumed.
    pub fn bad_option(&self) -> &str {
        if self.next == 0 {
            return "";
        }
        self.args
            .get(self.next - 1)
            .map(String::as_str)
            .unwrap_or("")
    }

    /// `poptGetArg`: the next leftover (non-option) word.
    pub fn get_arg(&mut self) -> Option<String> {
        let r = self.leftovers.get(self.next_leftover).cloned();
        if r.is_some() {
            self.next_leftover += 1;
        }
        r
    }

    fn find_long(&self, name: &str) -> Option<&'a OptDef<T>> {
        self.table.iter().find(|o| o.long == name)
    }

    fn find_short(&self, c: char) -> Option<&'a OptDef<T>> {
        self.table.iter().find(|o| o.short == Some(c))
    }

    /// `poptGetNextOpt`: `Ok(None)` at the end, else the option's value and its argument.
    pub fn next_opt(&mut self) -> Result<Option<(T, Option<String>)>, PoptError> {
        loop {
            if self.next_char.is_none() && self.next >= self.args.len() {
                return Ok(None);
            }
            let mut opt: Option<&'a OptDef<T>> = None;
            let mut long_arg: Option<String> = None;

            if self.next_char.is_none() {
                let idx = self.next;
                let s = &self.args[idx];
                self.next += 1;
                if self.rest_leftover || !s.starts_with('-') || s == "-" {
                    self.leftovers.push(s.clone());
                    continue;
                }
                if s == "--" {
                    self.rest_leftover = true;
                    continue;
                }
                let (body, one_dash) = match s.strip_prefix("--") {
                    Some(b) => (b, false),
                    None => (&s[1..], true),
                };
                let (name, arg) = match body.find('=') {
                    Some(p) => (&body[..p], Some(body[p + 1..].to_string())),
                    None => (body, None),
                };
                // No ipvsadm option has POPT_ARGFLAG_ONEDASH, so a single-dash word never
                // matches a long name and is read as bundled short options instead.
                if !one_dash {
                    match self.find_long(name) {
                        Some(o) => {
                            opt = Some(o);
                            long_arg = arg;
                        }
                        None => return Err(PoptError::BadOpt),
                    }
                } else {
                    self.next_char = Some((idx, 1));
                }
            }

            if let Some((idx, off)) = self.next_char.take() {
                let rest = &self.args[idx][off..];
                let c = match rest.chars().next() {
                    Some(c) => c,
                    None => return Err(PoptError::BadOpt),
                };
                let o = match self.find_short(c) {
                    Some(o) => o,
                    None => return Err(PoptError::BadOpt),
                };
                opt = Some(o);
                let after = &rest[c.len_utf8()..];
                if !after.is_empty() {
                    let skip = usize::from(after.starts_with('='));
                    self.next_char = Some((idx, off + c.len_utf8() + skip));
                }
            }

            let o = match opt {
                Some(o) => o,
                None => return Err(PoptError::BadOpt),
            };
            let arg = match o.arg {
                ArgKind::None => {
                    let glued_eq = self
                        .next_char
                        .map(|(i, off)| self.args[i][off..].starts_with('='))
                        .unwrap_or(false);
                    if long_arg.is_some() || glued_eq {
                        return Err(PoptError::UnwantedArg);
                    }
                    None
                }
                ArgKind::Required | ArgKind::Optional => {
                    if let Some(a) = long_arg {
                        Some(a)
                    } else if let Some((i, off)) = self.next_char.take() {
                        let rest = &self.args[i][off..];
                        Some(rest.strip_prefix('=').unwrap_or(rest).to_string())
                    } else if self.next >= self.args.len() {
                        if o.arg == ArgKind::Required {
                            return Err(PoptError::NoArg);
                        }
                        None
                    } else if o.arg == ArgKind::Optional && self.args[self.next].starts_with('-') {
                        None
                    } else {
                        let a = self.args[self.next].clone();
                        self.next += 1;
                        Some(a)
                    }
                }
            };
            return Ok(Some((o.val, arg)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &[OptDef<char>] = &[
        OptDef {
            long: "list",
            short: Some('L'),
            arg: ArgKind::None,
            val: 'L',
        },
        OptDef {
            long: "numeric",
            short: Some('n'),
            arg: ArgKind::None,
            val: 'n',
        },
        OptDef {
            long: "persistent",
            short: Some('p'),
            arg: ArgKind::Optional,
            val: 'p',
        },
        OptDef {
            long: "tcp-service",
            short: Some('t'),
            arg: ArgKind::Required,
            val: 't',
        },
    ];

    type Step = Result<(char, Option<String>), (PoptError, String)>;

    fn all(v: &[&str]) -> Vec<Step> {
        let args: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        let mut p = Popt::new(T, &args);
        let mut out = Vec::new();
        loop {
            match p.next_opt() {
                Ok(Some(x)) => out.push(Ok(x)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err((e, p.bad_option().to_string())));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn bundles_and_glued_args() {
        assert_eq!(all(&["x", "-Ln"]), vec![Ok(('L', None)), Ok(('n', None))]);
        assert_eq!(
            all(&["x", "-p360", "-p=5", "--persistent=7", "-p", "-n"]),
            vec![
                Ok(('p', Some("360".into()))),
                Ok(('p', Some("5".into()))),
                Ok(('p', Some("7".into()))),
                Ok(('p', None)),
                Ok(('n', None))
            ]
        );
        assert_eq!(all(&["x", "-t", "-n"]), vec![Ok(('t', Some("-n".into())))]);
        assert_eq!(
            all(&["x", "-nt1.2.3.4"]),
            vec![Ok(('n', None)), Ok(('t', Some("1.2.3.4".into())))]
        );
    }

    #[test]
    fn errors_name_the_word() {
        assert_eq!(
            all(&["x", "--bogus"]),
            vec![Err((PoptError::BadOpt, "--bogus".into()))]
        );
        assert_eq!(
            all(&["x", "-Lq"]),
            vec![Ok(('L', None)), Err((PoptError::BadOpt, "-Lq".into()))]
        );
        assert_eq!(
            all(&["x", "-t"]),
            vec![Err((PoptError::NoArg, "-t".into()))]
        );
        assert_eq!(
            all(&["x", "--numeric=1"]),
            vec![Err((PoptError::UnwantedArg, "--numeric=1".into()))]
        );
    }

    #[test]
    fn leftovers_anywhere_and_double_dash() {
        let args: Vec<String> = ["x", "a", "-L", "b", "--", "-n"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut p = Popt::new(T, &args);
        assert_eq!(p.next_opt(), Ok(Some(('L', None))));
        assert_eq!(p.next_opt(), Ok(None));
        assert_eq!(p.get_arg().as_deref(), Some("a"));
        assert_eq!(p.get_arg().as_deref(), Some("b"));
        assert_eq!(p.get_arg().as_deref(), Some("-n"));
        assert_eq!(p.get_arg(), None);
    }
}
