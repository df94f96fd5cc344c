//! keepalived's lexical layer (`lib/parser.c`): comments, conditional lines,
//! `$` parameters, `~SEQ`/`~LST`, `include`, quoted tokens and brace splitting.
//!
//! The output is a list of logical [`Line`]s. As in keepalived, every `{` and `}`
//! (outside double quotes) is a logical line of its own, so block structure can be
//! built from lines alone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::budget::{Budget, Exceeded};
use crate::diag::{Diagnostic, ErrorClass, Pos};

/// One word of a logical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The word, with surrounding double quotes removed.
    pub text: String,
    /// Where the word starts.
    pub pos: Pos,
    /// True if the word was written in double quotes (so `"{"` is not a brace).
    pub quoted: bool,
    /// Byte offset of the word (including its opening quote) in [`Line::raw`].
    pub offset: usize,
}

/// A logical line: the words of one keyword line, or a lone `{` / `}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The words; never empty.
    pub tokens: Vec<Token>,
    /// The line's text after comment removal and substitution, from its first word
    /// to its last. Script strings are re-tokenised from this with
    /// [`split_quoted_escaped`].
    pub raw: String,
    /// The whole source line this logical line came from (after comment removal
    /// and substitution, before brace splitting), for messages.
    pub source: Arc<str>,
}

impl Line {
    /// Position of the first word.
    pub fn pos(&self) -> &Pos {
        &self.tokens[0].pos
    }

    /// True if this line is a lone unquoted `{`.
    pub fn is_open(&self) -> bool {
        self.tokens.len() == 1 && !self.tokens[0].quoted && self.tokens[0].text == "{"
    }

    /// True if this line is a lone unquoted `}`.
    pub fn is_close(&self) -> bool {
        self.tokens.len() == 1 && !self.tokens[0].quoted && self.tokens[0].text == "}"
    }

    /// The raw text from word `i` to the end of the line (empty if there is none).
    pub fn rest_from(&self, i: usize) -> &str {
        match self.tokens.get(i) {
            Some(t) => self.raw.get(t.offset..).unwrap_or(""),
            None => "",
        }
    }
}

/// Lexer settings.
#[derive(Debug, Clone)]
pub struct LexOptions {
    /// The config id matched by `@ID` lines (rvsd `-i`; keepalived's default is the
    /// host name up to the first `.`).
    pub config_id: String,
}

impl Default for LexOptions {
    fn default() -> Self {
        LexOptions {
            config_id: short_hostname(),
        }
    }
}

/// The host name up to the first `.` (keepalived's default config id).
pub fn short_hostname() -> String {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    h.trim().split('.').next().unwrap_or("").to_string()
}

/// Limits that keep hostile input from exhausting memory or looping forever (per level; the
/// totals over the whole configuration are in [`crate::budget`]).
const MAX_INCLUDE_DEPTH: usize = 32;
const MAX_SUBST_DEPTH: usize = 64;
const MAX_LINES: usize = 1_000_000;
const MAX_LINE_LEN: usize = 1 << 20;
/// Braces on one line handled one at a time like keepalived; past this many the
/// rest of the line is split in one go (same words, no re-processing).
const MAX_BRACE_RESIDUES: usize = 256;

/// A multi-line `$NAME=` definition being collected.
struct PendingDef {
    name: String,
    lines: Vec<String>,
}

/// The lexer: reads a file (and its includes) into logical lines.
pub struct Lexer {
    opts: LexOptions,
    params: HashMap<String, String>,
    pending: Option<PendingDef>,
    /// Files currently open, for include-loop detection.
    stack: Vec<PathBuf>,
    /// Logical lines produced so far.
    pub lines: Vec<Line>,
    /// Problems found so far.
    pub diags: Vec<Diagnostic>,
    rand_state: u64,
    /// The work charged so far (includes, `~SEQ` values, substitutions).
    budget: Budget,
    /// A limit was crossed (reported once): nothing more is read.
    stopped: bool,
    /// The physical line being processed (after comment removal), for messages.
    source: Arc<str>,
    /// How many brace residues deep the current line is (bounded recursion).
    brace_depth: usize,
}

/// Result of decommenting one physical line.
struct Decommented {
    text: String,
    /// Column (1-based, in characters) of `text`'s first character.
    col: u32,
    /// The line ended with `\` (removed from `text`).
    continued: bool,
    unterminated_quote: bool,
}

/// keepalived's `decomment`: strips leading blanks, comments (`#`/`!` outside double
/// quotes), un-escapes `\#`/`\!`, detects a trailing `\` and strips trailing blanks.
fn decomment(line: &str) -> Decommented {
    let lead = line
        .char_indices()
        .find(|&(_, c)| c != ' ' && c != '\t')
        .map(|(i, _)| i)
        .unwrap_or(line.len());
    let col = line[..lead].chars().count() as u32 + 1;
    let body = &line[lead..];
    let mut out = String::with_capacity(body.len());
    let mut in_quote = false;
    let mut quotes = 0usize;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_quote = !in_quote;
                quotes += 1;
                out.push(c);
            }
            '#' | '!' if !in_quote => break,
            '\\' if !in_quote && matches!(chars.peek(), Some('#') | Some('!')) => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            _ => out.push(c),
        }
    }
    let mut text = out
        .trim_end_matches([' ', '\t', '\x0b', '\x0c'])
        .to_string();
    let mut continued = false;
    if text.ends_with('\\') {
        continued = true;
        text.pop();
        let t = text.trim_end_matches([' ', '\t']).len();
        text.truncate(t);
    }
    Decommented {
        text,
        col,
        continued,
        unterminated_quote: quotes % 2 == 1,
    }
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Is `s` a valid parameter name (`[A-Za-z_][A-Za-z0-9_]*`)?
fn is_param_name(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// keepalived's normal tokenizer plus brace splitting. Returns logical lines.
///
/// Words are split on whitespace; a word starting with `"` runs to the next `"`
/// (quotes removed); an unquoted word ends at whitespace, `"`, `{` or `}`; an
/// unquoted `{`/`}` is a word and a logical line of its own.
fn tokenize(
    text: &str,
    source: &Arc<str>,
    file: &Arc<Path>,
    line_no: u32,
    col0: u32,
    exact_cols: bool,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Line> {
    let mut toks: Vec<(String, usize, usize, bool)> = Vec::new(); // text, start, end, quoted
    let idx: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    let mut unmatched = false;
    while i < idx.len() {
        let (b, c) = idx[i];
        if is_ws(c) {
            i += 1;
            continue;
        }
        if c == '"' {
            let mut j = i + 1;
            while j < idx.len() && idx[j].1 != '"' {
                j += 1;
            }
            let end_b = idx.get(j).map(|x| x.0).unwrap_or(text.len());
            let inner = text.get(b + 1..end_b).unwrap_or("").to_string();
            if j >= idx.len() {
                unmatched = true;
                toks.push((inner, b, text.len(), true));
                break;
            }
            toks.push((inner, b, end_b + 1, true));
            i = j + 1;
            continue;
        }
        if c == '{' || c == '}' {
            toks.push((c.to_string(), b, b + 1, false));
            i += 1;
            continue;
        }
        let mut j = i;
        while j < idx.len() && !is_ws(idx[j].1) && !matches!(idx[j].1, '"' | '{' | '}') {
            j += 1;
        }
        let end_b = idx.get(j).map(|x| x.0).unwrap_or(text.len());
        toks.push((text[b..end_b].to_string(), b, end_b, false));
        i = j;
    }
    if unmatched {
        diags.push(
            Diagnostic::new(
                ErrorClass::UnmatchedQuote,
                Some(Pos::new(file.clone(), line_no, col0)),
                format!("Unmatched quote: '{text}'"),
            )
            .with_snippet(text),
        );
    }
    // Split into logical lines at every unquoted brace.
    let mut lines = Vec::new();
    let mut cur: Vec<(String, usize, usize, bool)> = Vec::new();
    let mk = |group: &[(String, usize, usize, bool)]| -> Option<Line> {
        let first = group.first()?;
        let last = group.last()?;
        let start = first.1;
        let raw = text.get(start..last.2).unwrap_or("").to_string();
        let tokens = group
            .iter()
            .map(|(t, s, _, q)| {
                let col = if exact_cols {
                    col0 + text[..*s].chars().count() as u32
                } else {
                    col0
                };
                Token {
                    text: t.clone(),
                    pos: Pos::new(file.clone(), line_no, col),
                    quoted: *q,
                    offset: s - start,
                }
            })
            .collect();
        Some(Line {
            tokens,
            raw,
            source: source.clone(),
        })
    };
    for t in toks {
        if !t.3 && (t.0 == "{" || t.0 == "}") {
            if let Some(l) = mk(&cur) {
                lines.push(l);
            }
            cur.clear();
            if let Some(l) = mk(std::slice::from_ref(&t)) {
                lines.push(l);
            }
        } else {
            cur.push(t);
        }
    }
    if let Some(l) = mk(&cur) {
        lines.push(l);
    }
    lines
}

/// keepalived's quoted/escaped tokenizer, used for script command lines
/// (`script`, `misc_path`, `notify*`, `quorum_up/down`): `"…"` and `'…'` quote and
/// may be glued to unquoted text; backslash escapes `\a \b \E \f \n \r \t \v`,
/// `\nnn` (octal), `\xHH…`, `\cC` and `\X` → `X`.
pub fn split_quoted_escaped(s: &str) -> Vec<String> {
    let cs: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        while i < cs.len() && is_ws(cs[i]) {
            i += 1;
        }
        if i >= cs.len() {
            break;
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while i < cs.len() {
            let c = cs[i];
            if quote.is_none() && is_ws(c) {
                break;
            }
            if Some(c) == quote {
                quote = None;
                i += 1;
                continue;
            }
            if quote.is_none() && (c == '"' || c == '\'') {
                quote = Some(c);
                i += 1;
                continue;
            }
            if c == '\\' && i + 1 < cs.len() {
                i += 1;
                let e = cs[i];
                i += 1;
                match e {
                    'a' => word.push('\x07'),
                    'b' => word.push('\x08'),
                    'E' => word.push('\x1b'),
                    'f' => word.push('\x0c'),
                    'n' => word.push('\n'),
                    'r' => word.push('\r'),
                    't' => word.push('\t'),
                    'v' => word.push('\x0b'),
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        let mut n = 1;
                        while n < 3 && i < cs.len() {
                            match cs[i].to_digit(8) {
                                Some(d) => {
                                    v = v * 8 + d;
                                    i += 1;
                                    n += 1;
                                }
                                None => break,
                            }
                        }
                        word.push(char::from_u32(v & 0xff).unwrap_or('?'));
                    }
                    'x' => {
                        // 2.2.7 takes any number of hex digits; the low byte counts.
                        let mut v: u32 = 0;
                        let mut any = false;
                        while i < cs.len() {
                            match cs[i].to_digit(16) {
                                Some(d) => {
                                    v = (v << 4 | d) & 0xff;
                                    any = true;
                                    i += 1;
                                }
                                None => break,
                            }
                        }
                        if any {
                            word.push(char::from_u32(v).unwrap_or('?'));
                        } else {
                            word.push('x');
                        }
                    }
                    'c' if i < cs.len() => {
                        let c2 = cs[i];
                        i += 1;
                        word.push(
                            char::from_u32((c2.to_ascii_uppercase() as u32) ^ 0x40).unwrap_or('?'),
                        );
                    }
                    other => word.push(other),
                }
                continue;
            }
            word.push(c);
            i += 1;
        }
        out.push(word);
    }
    out
}

/// Expand csh-style braces (`a{b,c}d` → `abd`, `acd`), as `GLOB_BRACE` does.
pub fn expand_braces(p: &str) -> Vec<String> {
    let bytes: Vec<char> = p.chars().collect();
    let Some(open) = bytes.iter().position(|&c| c == '{') else {
        return vec![p.to_string()];
    };
    let mut depth = 0;
    let mut close = None;
    let mut commas = Vec::new();
    for (i, &c) in bytes.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(i),
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![p.to_string()];
    };
    let pre: String = bytes[..open].iter().collect();
    let post: String = bytes[close + 1..].iter().collect();
    let mut bounds = vec![open];
    bounds.extend(commas);
    bounds.push(close);
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let mid: String = bytes[w[0] + 1..w[1]].iter().collect();
        for e in expand_braces(&format!("{pre}{mid}{post}")) {
            if out.len() < 4096 {
                out.push(e);
            }
        }
    }
    out
}

impl Lexer {
    /// A lexer with the given options.
    pub fn new(opts: LexOptions) -> Self {
        Lexer {
            opts,
            params: HashMap::new(),
            pending: None,
            stack: Vec::new(),
            lines: Vec::new(),
            diags: Vec::new(),
            rand_state: 0x2545_f491_4f6c_dd1d,
            budget: Budget::default(),
            stopped: false,
            source: Arc::from(""),
            brace_depth: 0,
        }
    }

    fn diag(&mut self, class: ErrorClass, pos: Pos, msg: String, snippet: &str) {
        self.diags
            .push(Diagnostic::new(class, Some(pos), msg).with_snippet(snippet));
    }

    /// Stop reading: one fatal diagnostic (the first limit crossed), nothing read after it.
    fn stop(&mut self, pos: Pos, msg: String, snippet: &str) {
        if !self.stopped {
            self.stopped = true;
            self.diag(ErrorClass::Fatal, pos, msg, snippet);
        }
    }

    /// Charge `r` (a budget step) and stop at `pos` if it crossed a limit; false then. The
    /// physical line being read is the offending text (not the expanded remainder).
    fn charged(&mut self, r: Result<(), Exceeded>, pos: impl FnOnce() -> Pos) -> bool {
        match r {
            Ok(()) => true,
            Err(e) => {
                let source = self.source.clone();
                self.stop(pos(), e.to_string(), &source);
                false
            }
        }
    }

    /// True once a limit was crossed: what was read is incomplete and cannot run.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Read the top-level file. A missing file is reported as
    /// [`ErrorClass::FileNotFound`] (keepalived `-t` exits 0 here; rvs does not).
    pub fn read_file(&mut self, path: &Path) {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let r = self.budget.read_file(len, false);
        if !self.charged(r, || Pos::new(Arc::from(path), 1, 1)) {
            return;
        }
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                self.read_str(path, &text);
            }
            Err(e) => {
                self.diags.push(Diagnostic::new(
                    ErrorClass::FileNotFound,
                    None,
                    format!("Config files missing '{}': {e}", path.display()),
                ));
            }
        }
    }

    /// Lex `text` as if it were the content of file `path` (includes are resolved
    /// relative to `path`'s directory).
    pub fn read_str(&mut self, path: &Path, text: &str) {
        let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.stack.push(canon);
        let file: Arc<Path> = Arc::from(path);
        let saved_pwd = self.params.get("_PWD").cloned();
        let dir = path
            .parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    d.to_path_buf()
                }
            })
            .unwrap_or_else(|| PathBuf::from("."));
        let dir_abs = std::fs::canonicalize(&dir).unwrap_or(dir);
        self.params
            .insert("_PWD".into(), dir_abs.to_string_lossy().into_owned());
        for (n, phys) in text.split('\n').enumerate() {
            if self.stopped {
                break;
            }
            let line_no = (n + 1).min(u32::MAX as usize) as u32;
            let phys = phys.trim_end_matches('\r');
            if phys.len() > MAX_LINE_LEN {
                self.diag(
                    ErrorClass::GeneralError,
                    Pos::new(file.clone(), line_no, 1),
                    format!("line longer than {MAX_LINE_LEN} bytes - ignoring"),
                    "",
                );
                continue;
            }
            let d = decomment(phys);
            if let Some(p) = self.pending.as_mut() {
                p.lines.push(d.text);
                if !d.continued {
                    if let Some(p) = self.pending.take() {
                        self.params.insert(p.name, p.lines.join("\n"));
                    }
                }
                continue;
            }
            if d.text.is_empty() {
                continue;
            }
            if d.unterminated_quote {
                self.diag(
                    ErrorClass::UnmatchedQuote,
                    Pos::new(file.clone(), line_no, d.col),
                    format!("Unterminated quote '{}'", d.text),
                    &d.text,
                );
            }
            self.source = Arc::from(d.text.as_str());
            self.process(&d.text, &file, line_no, d.col, true, 0, d.continued);
        }
        if let Some(p) = self.pending.take() {
            // A definition still continued at end of file ends there.
            self.params.insert(p.name, p.lines.join("\n"));
        }
        match saved_pwd {
            Some(p) => {
                self.params.insert("_PWD".into(), p);
            }
            None => {
                self.params.remove("_PWD");
            }
        }
        self.stack.pop();
    }

    /// Steps 3–8 of keepalived's line processing for one (decommented) line.
    #[allow(clippy::too_many_arguments)]
    fn process(
        &mut self,
        text: &str,
        file: &Arc<Path>,
        line_no: u32,
        col: u32,
        exact: bool,
        depth: usize,
        continued: bool,
    ) {
        if self.stopped {
            return;
        }
        if self.lines.len() >= MAX_LINES {
            self.stop(
                Pos::new(file.clone(), line_no, col),
                format!("configuration expands to more than {MAX_LINES} lines - stopping"),
                text,
            );
            return;
        }
        let mut text = text;
        let mut col = col;
        // 3. Conditional lines.
        while let Some(rest) = text.strip_prefix('@') {
            let end = rest.find([' ', '\t']).unwrap_or(rest.len());
            let word = &rest[..end];
            let (neg, id) = match word.strip_prefix('^') {
                Some(id) => (true, id),
                None => (false, word),
            };
            let matched = (id == self.opts.config_id) != neg;
            let after = rest[end..].trim_start_matches([' ', '\t']);
            if !matched || after.is_empty() {
                return;
            }
            col += (text.len() - after.len()) as u32;
            text = after;
        }
        // 4. Parameter definitions.
        if let Some(rest) = text.strip_prefix('$') {
            if let Some(eq) = rest.find('=') {
                let name = &rest[..eq];
                if is_param_name(name) {
                    let value = rest[eq + 1..].trim_start_matches([' ', '\t']);
                    if continued {
                        let mut lines = Vec::new();
                        if !value.is_empty() {
                            lines.push(value.to_string());
                        }
                        self.pending = Some(PendingDef {
                            name: name.to_string(),
                            lines,
                        });
                    } else {
                        self.params.insert(name.to_string(), value.to_string());
                    }
                    return;
                }
            }
        }
        // 5. Sequence and list blocks.
        if text.starts_with("~SEQ") || text.starts_with("~LST") {
            self.expand_seq(text, file, line_no, col, depth);
            return;
        }
        // 6. Parameter substitution.
        if text.contains('$') {
            let Ok(subst) = self.substitute(text) else {
                self.diag(
                    ErrorClass::GeneralError,
                    Pos::new(file.clone(), line_no, col),
                    format!(
                        "Parameter substitution on line '{text}' would exceed maximum line length"
                    ),
                    text,
                );
                return;
            };
            if let Some(new) = subst {
                let r = self.budget.substitution(new.len() as u64);
                if !self.charged(r, || Pos::new(file.clone(), line_no, col)) {
                    return;
                }
                if depth >= MAX_SUBST_DEPTH {
                    self.diag(
                        ErrorClass::GeneralError,
                        Pos::new(file.clone(), line_no, col),
                        "parameter substitution nested too deeply (recursive definition?) - ignoring line".into(),
                        text,
                    );
                    return;
                }
                // Substituted text is not decommented again (keepalived does not),
                // which is what makes `${_HASH}` and `${_BANG}` useful. A multi-line
                // value becomes several lines.
                for piece in new.split('\n') {
                    let piece = piece.trim_matches([' ', '\t']);
                    if piece.is_empty() {
                        continue;
                    }
                    self.process(piece, file, line_no, col, false, depth + 1, false);
                }
                return;
            }
        }
        // 7. Includes.
        let first = text.split([' ', '\t']).next().unwrap_or("");
        if matches!(
            first,
            "include" | "includer" | "includem" | "includew" | "includeb" | "includea"
        ) {
            let pat = text[first.len()..].trim();
            self.include(first, pat, file, line_no, col, text);
            return;
        }
        // 8. Tokenise and split braces. A trailing `\` only means something in a
        // `$NAME=` definition; elsewhere it stays part of the text.
        let owned;
        let text = if continued {
            owned = format!("{text}\\");
            owned.as_str()
        } else {
            text
        };
        // keepalived returns the text before the first unquoted brace (or the brace
        // itself) as a line and reads the rest again as the next line, so the rest
        // goes through conditional, parameter and include processing too.
        if let Some(pos) = first_unquoted_brace(text) {
            if self.brace_depth < MAX_BRACE_RESIDUES {
                let (line_part, rest_at) = if pos == 0 {
                    (&text[..1], 1)
                } else {
                    (&text[..pos], pos)
                };
                let source = self.source.clone();
                let ls = tokenize(
                    line_part.trim_end(),
                    &source,
                    file,
                    line_no,
                    col,
                    exact,
                    &mut self.diags,
                );
                self.lines.extend(ls);
                let rest = &text[rest_at..];
                let trimmed = rest.trim_start_matches([' ', '\t']);
                if !trimmed.is_empty() {
                    let off = text.len() - trimmed.len();
                    let rcol = if exact {
                        col + text[..off].chars().count() as u32
                    } else {
                        col
                    };
                    self.brace_depth += 1;
                    self.process(trimmed, file, line_no, rcol, exact, depth, false);
                    self.brace_depth -= 1;
                }
                return;
            }
        }
        let source = self.source.clone();
        let ls = tokenize(text, &source, file, line_no, col, exact, &mut self.diags);
        self.lines.extend(ls);
    }

    /// Replace `${NAME}` and `$NAME` (followed by whitespace or end) by defined
    /// values. Returns `None` if nothing was replaced.
    /// `Err` if the result would exceed the maximum line length (a definition
    /// like `$A=${A}${A}` doubles at every round).
    fn substitute(&mut self, text: &str) -> Result<Option<String>, ()> {
        let mut out = String::with_capacity(text.len());
        let mut changed = false;
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(inner) = after.strip_prefix('{') {
                if let Some(close) = inner.find('}') {
                    let expr = &inner[..close];
                    if let Some(v) = self.lookup(expr) {
                        if out.len() + v.len() > MAX_LINE_LEN {
                            return Err(());
                        }
                        out.push_str(&v);
                        changed = true;
                        rest = &inner[close + 1..];
                        continue;
                    }
                }
            } else {
                let end = after.find(is_ws).unwrap_or(after.len());
                let name = &after[..end];
                if is_param_name(name) {
                    if let Some(v) = self.lookup(name) {
                        if out.len() + v.len() > MAX_LINE_LEN {
                            return Err(());
                        }
                        out.push_str(&v);
                        changed = true;
                        rest = &after[end..];
                        continue;
                    }
                }
            }
            out.push('$');
            rest = after;
        }
        out.push_str(rest);
        Ok(changed.then_some(out))
    }

    /// The value of a parameter or of a predefined expression.
    fn lookup(&mut self, expr: &str) -> Option<String> {
        let mut words = expr.split_whitespace();
        let name = words.next()?;
        match name {
            "_INSTANCE" => Some(self.opts.config_id.clone()),
            "_HASH" => Some("#".into()),
            "_BANG" => Some("!".into()),
            "_RANDOM" => {
                let min: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                let max: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(32767);
                // xorshift: the value only needs to be "random", not secure.
                self.rand_state ^= self.rand_state << 13;
                self.rand_state ^= self.rand_state >> 7;
                self.rand_state ^= self.rand_state << 17;
                let span = max.saturating_sub(min).saturating_add(1);
                Some((min + self.rand_state % span.max(1)).to_string())
            }
            _ if expr.trim() == name => self.params.get(name).cloned(),
            _ => None,
        }
    }

    /// `~SEQ(var, [start,] [step,] end)`, `~SEQx(...)`, `~LST(var, v…)`,
    /// `~LST({a,b}, {1,2}, …)`.
    fn expand_seq(&mut self, text: &str, file: &Arc<Path>, line_no: u32, col: u32, depth: usize) {
        let bad = |lx: &mut Lexer, why: &str| {
            lx.diag(
                ErrorClass::GeneralError,
                Pos::new(file.clone(), line_no, col),
                format!("Invalid ~SEQ/~LST specification ({why}) - ignoring line"),
                text,
            );
        };
        let (kind, after) = if let Some(r) = text.strip_prefix("~SEQx(") {
            ("x", r)
        } else if let Some(r) = text.strip_prefix("~SEQ(") {
            ("d", r)
        } else if let Some(r) = text.strip_prefix("~LST(") {
            ("l", r)
        } else {
            return bad(self, "expected '('");
        };
        // Find the matching ')'.
        let mut depth_b = 0i32;
        let mut close = None;
        for (i, c) in after.char_indices() {
            match c {
                '{' => depth_b += 1,
                '}' => depth_b -= 1,
                ')' if depth_b == 0 => {
                    close = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(close) = close else {
            return bad(self, "missing ')'");
        };
        let spec = &after[..close];
        let remainder = after[close + 1..].trim_start().to_string();
        // Each binding: list of (name, value) pairs.
        let mut bindings: Vec<Vec<(String, String)>> = Vec::new();
        if kind == "l" {
            let items = split_top(spec);
            let Some((vars, vals)) = items.split_first() else {
                return bad(self, "no variable");
            };
            let names: Vec<String> = strip_braces(vars)
                .split(',')
                .map(|s| s.trim().to_string())
                .collect();
            if names.iter().any(|n| !is_param_name(n)) {
                return bad(self, "invalid variable name");
            }
            if vals.is_empty() {
                return bad(self, "no values");
            }
            for v in vals {
                let vs: Vec<String> = if names.len() > 1 {
                    strip_braces(v)
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .collect()
                } else {
                    vec![v.trim().to_string()]
                };
                if vs.len() != names.len() {
                    return bad(self, "value count does not match variables");
                }
                bindings.push(names.iter().cloned().zip(vs).collect());
            }
        } else {
            let parts: Vec<&str> = spec.split(',').map(|s| s.trim()).collect();
            let var = parts[0];
            if !is_param_name(var) {
                return bad(self, "invalid variable name");
            }
            let nums: Option<Vec<i64>> = parts[1..].iter().map(|p| parse_int_any(p)).collect();
            let Some(nums) = nums else {
                return bad(self, "invalid number");
            };
            let (start, step, end) = match nums.as_slice() {
                [end] => (if *end >= 0 { 1 } else { -1 }, None, *end),
                [start, end] => (*start, None, *end),
                [start, step, end] => (*start, Some(*step), *end),
                _ => return bad(self, "wrong number of values"),
            };
            let step = step.unwrap_or(if end >= start { 1 } else { -1 });
            if step == 0 {
                return bad(self, "step is 0");
            }
            let mut v = start;
            let mut n = 0usize;
            while (step > 0 && v <= end) || (step < 0 && v >= end) {
                n += 1;
                if n > 100_000 {
                    return bad(self, "more than 100000 values");
                }
                let s = if kind == "x" {
                    if v < 0 {
                        format!("-{:x}", v.unsigned_abs())
                    } else {
                        format!("{v:x}")
                    }
                } else {
                    v.to_string()
                };
                bindings.push(vec![(var.to_string(), s)]);
                v = match v.checked_add(step) {
                    Some(x) => x,
                    None => break,
                };
            }
        }
        for b in bindings {
            let r = self.budget.seq_value();
            if !self.charged(r, || Pos::new(file.clone(), line_no, col)) {
                return;
            }
            if self.lines.len() >= MAX_LINES {
                // Report once (process does) and stop expanding.
                self.process(&remainder, file, line_no, col, false, depth + 1, false);
                return;
            }
            for (k, v) in b {
                self.params.insert(k, v);
            }
            self.process(&remainder, file, line_no, col, false, depth + 1, false);
        }
    }

    fn include(
        &mut self,
        kw: &str,
        pat: &str,
        file: &Arc<Path>,
        line_no: u32,
        col: u32,
        text: &str,
    ) {
        let pos = Pos::new(file.clone(), line_no, col);
        if pat.is_empty() {
            self.diags.push(
                Diagnostic::new(
                    ErrorClass::MissingParameter,
                    Some(pos),
                    format!("*** Configuration line starting `{kw}` is missing a parameter after keyword `{kw}` at word position 2"),
                )
                .with_snippet(text),
            );
            return;
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            self.diag(
                ErrorClass::GeneralError,
                pos,
                format!("includes nested more than {MAX_INCLUDE_DEPTH} deep - ignoring '{pat}'"),
                text,
            );
            return;
        }
        let base = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let strict = kw != "include";
        let wildcard = pat.contains(['*', '?', '[', '{']);
        let mut files: Vec<PathBuf> = Vec::new();
        for p in expand_braces(pat) {
            let full = if Path::new(&p).is_absolute() {
                PathBuf::from(&p)
            } else {
                base.join(&p)
            };
            let full_s = full.to_string_lossy().into_owned();
            match glob::glob(&full_s) {
                Ok(paths) => files.extend(paths.flatten()),
                Err(e) => {
                    self.diag(
                        ErrorClass::GeneralError,
                        pos.clone(),
                        format!("Invalid include pattern '{pat}': {e}"),
                        text,
                    );
                    return;
                }
            }
        }
        if files.is_empty() {
            // keepalived's plain `include` never complains. A literal file name that
            // does not exist is almost always a typo, so rvs warns (documented).
            if strict || !wildcard {
                let class = if strict {
                    ErrorClass::FileNotFound
                } else {
                    ErrorClass::Warning
                };
                self.diag(
                    class,
                    pos,
                    format!("include file '{pat}' does not exist"),
                    text,
                );
            }
            return;
        }
        for f in files {
            if self.stopped {
                return;
            }
            let canon = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
            if self.stack.contains(&canon) {
                self.diag(
                    ErrorClass::GeneralError,
                    pos.clone(),
                    format!(
                        "include loop: '{}' is already being read - ignoring",
                        f.display()
                    ),
                    text,
                );
                continue;
            }
            if f.is_dir() {
                continue;
            }
            let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            let r = self.budget.read_file(len, true);
            if !self.charged(r, || pos.clone()) {
                return;
            }
            match std::fs::read(&f) {
                Ok(bytes) => {
                    let s = String::from_utf8_lossy(&bytes).into_owned();
                    self.read_str(&f, &s);
                }
                Err(e) => self.diag(
                    if strict {
                        ErrorClass::FileNotFound
                    } else {
                        ErrorClass::GeneralError
                    },
                    pos.clone(),
                    format!("cannot read include file '{}': {e}", f.display()),
                    text,
                ),
            }
        }
    }
}

/// Integer in decimal or `0x` hex, optionally negative (for `~SEQ`).
fn parse_int_any(s: &str) -> Option<i64> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, s),
    };
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else {
        t.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// Split `a, {b,c}, d` at top-level commas.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    for c in s.chars() {
        match c {
            '{' => {
                depth += 1;
                cur.push(c)
            }
            '}' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() || !out.is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn strip_braces(s: &str) -> &str {
    let t = s.trim();
    t.strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(t)
}

/// Byte offset of the first `{` or `}` outside double quotes.
fn first_unquoted_brace(text: &str) -> Option<usize> {
    let mut in_quote = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            '{' | '}' if !in_quote => return Some(i),
            _ => {}
        }
    }
    None
}

/// Lex a file into logical lines (convenience wrapper).
pub fn lex_file(path: &Path, opts: LexOptions) -> (Vec<Line>, Vec<Diagnostic>) {
    let mut lx = Lexer::new(opts);
    lx.read_file(path);
    (lx.lines, lx.diags)
}

/// Lex a string as the content of `path` (convenience wrapper for tests and tools).
pub fn lex_str(path: &Path, text: &str, opts: LexOptions) -> (Vec<Line>, Vec<Diagnostic>) {
    let mut lx = Lexer::new(opts);
    lx.read_str(path, text);
    (lx.lines, lx.diags)
}

#[cfg(test)]
#[path = "lexer_tests.rs"]
mod tests;
