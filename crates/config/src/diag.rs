//! Diagnostics: positions, keepalived's error classes, and the `-t` exit status.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A position in a configuration file: file, 1-based line and 1-based column.
///
/// Columns count characters of the physical line. For text produced by `$NAME`
/// substitution or `~SEQ`/`~LST` expansion the column is that of the line that
/// contained the expansion (the substituted text has no position of its own).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pos {
    /// The file, as it was named (the top-level path as given, includes resolved
    /// relative to the including file).
    pub file: Arc<Path>,
    /// 1-based line number.
    pub line: u32,
    /// 1-based column number.
    pub col: u32,
}

impl Pos {
    /// A position in `file`.
    pub fn new(file: Arc<Path>, line: u32, col: u32) -> Self {
        Pos { file, line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// keepalived's configuration error classes (`config_err_t` in `lib/parser.h`),
/// in keepalived's enum order. The class decides the `-t` exit status
/// (see [`exit_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorClass {
    /// The configuration file (or a strict include) does not exist. Cannot run.
    FileNotFound,
    /// An interface that does not exist was named. Cannot run.
    BadInterface,
    /// The configuration cannot run (e.g. VRRP instance without a VRID).
    Fatal,
    /// More than one file matched where one was expected.
    MultipleFiles,
    /// An unknown keyword.
    UnknownKeyword,
    /// `{` where none was expected.
    UnexpectedBlockStart,
    /// A block keyword without `{`.
    MissingBlockStart,
    /// `}` where no block was open.
    UnexpectedBlockEnd,
    /// Blocks still open at end of file.
    MissingBlockEnd,
    /// A `"` without its partner.
    UnmatchedQuote,
    /// A keyword lacks its value; keepalived exits with status 2 at once.
    MissingParameter,
    /// A number that does not parse or is out of range.
    InvalidNumber,
    /// Any other error; the value is ignored or corrected.
    GeneralError,
    /// A warning (e.g. a default was applied).
    Warning,
    /// A deprecated keyword or form.
    Deprecated,
    /// Scripts would run as root without `enable_script_security`.
    SecurityError,
}

impl ErrorClass {
    /// True for the classes that mean "this configuration cannot run".
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            ErrorClass::FileNotFound | ErrorClass::BadInterface | ErrorClass::Fatal
        )
    }

    /// True for warnings and deprecations (the rest are errors).
    pub fn is_warning(self) -> bool {
        matches!(self, ErrorClass::Warning | ErrorClass::Deprecated)
    }
}

/// One message about the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// keepalived's class of the problem.
    pub class: ErrorClass,
    /// Where; `None` only for problems with no place in a file (e.g. a missing
    /// top-level file is reported at its own path, line 0).
    pub pos: Option<Pos>,
    /// The message; where keepalived has a message for the same problem, its text.
    pub message: String,
    /// The offending configuration text (the logical line), if any.
    pub snippet: Option<String>,
    /// The daemon cannot run with this although its class is not a fatal one: keepalived
    /// reports some problems that stop its VRRP process (no `virtual_router_id`, no VIP for
    /// VRRPv3, no interface, a VRID used twice) with an ordinary error class, so `-t` exits 5
    /// for them; rvs reports the same class and keeps the "cannot run" verdict here.
    pub stops: bool,
}

impl Diagnostic {
    /// A new diagnostic.
    pub fn new(class: ErrorClass, pos: Option<Pos>, message: impl Into<String>) -> Self {
        Diagnostic {
            class,
            pos,
            message: message.into(),
            snippet: None,
            stops: false,
        }
    }

    /// The same, marked as stopping the daemon (see [`Diagnostic::stops`]).
    pub fn stopping(mut self) -> Self {
        self.stops = true;
        self
    }

    /// Whether the daemon cannot run a configuration with this diagnostic.
    pub fn prevents_running(&self) -> bool {
        self.stops || self.class.is_fatal() || self.class == ErrorClass::MissingParameter
    }

    /// The same with the offending text attached.
    pub fn with_snippet(mut self, snippet: impl Into<String>) -> Self {
        let s = snippet.into();
        if !s.is_empty() {
            self.snippet = Some(s);
        }
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = if self.class.is_warning() {
            "warning"
        } else {
            "error"
        };
        if let Some(p) = &self.pos {
            write!(f, "{p}: ")?;
        }
        write!(f, "{sev}: {}", self.message)?;
        if let Some(s) = &self.snippet {
            write!(f, "\n    | {s}")?;
        }
        Ok(())
    }
}

/// The exit status of `rvsd -t` for a set of diagnostics.
///
/// keepalived 2.2.7 (docs/internals/keepalived.md#exit-classes): 2 missing parameter (it exits
/// from inside the parser); otherwise the class of the *least* severe diagnostic decides
/// (keepalived records the highest class value seen): 4 when it is one of the "cannot run"
/// classes, 6 script security, 5 any other error or warning, 0 none. So a missing interface
/// (two messages, the second of a less severe class) gives 5, as does a VRRP instance without
/// `virtual_router_id`. Whether rvsd can run the configuration is a separate question
/// ([`Diagnostic::prevents_running`]), which `rvsd -t` answers in its verdict line.
pub fn exit_status(diags: &[Diagnostic]) -> i32 {
    if diags
        .iter()
        .any(|d| d.class == ErrorClass::MissingParameter)
    {
        return 2;
    }
    match diags.iter().map(|d| d.class).max() {
        None => 0,
        Some(c) if c.is_fatal() => 4,
        Some(ErrorClass::SecurityError) => 6,
        Some(_) => 5,
    }
}
