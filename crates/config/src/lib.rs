//! rvs-config: keepalived.conf for rvs.
//!
//! Reads a keepalived configuration with keepalived 2.2.7's lexical rules
//! (comments, quotes, brace splitting, `include`, `@id` lines, `$NAME` parameters,
//! `~SEQ`/`~LST`), builds a typed, validated [`Config`], and reports problems with
//! `file:line:col`, the offending text and keepalived's message texts.
//!
//! The one-call entry point for `rvsd -t -f FILE` is [`check`]; [`Report::render`]
//! produces the text to print and [`Report::exit_status`] the status to exit with
//! (keepalived's classes: 0 OK, 2 missing value, 4 cannot run, 5 errors or
//! warnings, 6 script security). `rvsd -t` should set
//! [`CheckOptions::check_interfaces`] and pass `-i` as [`CheckOptions::config_id`]:
//!
//! ```no_run
//! let opts = rvs_config::CheckOptions { config_id: None, check_interfaces: true };
//! let report = rvs_config::check("/etc/keepalived/keepalived.conf", &opts);
//! eprint!("{}", report.render());
//! std::process::exit(report.exit_status());
//! ```
//!
//! For running, [`load`] returns the model (or an error if it cannot run) plus the
//! warnings. The model is plain data: [`VirtualServer::services`] lists the IPVS
//! services a `virtual_server` stands for, [`Checker::timing`] resolves a checker's
//! inherited timers. Deliberate differences from keepalived are listed in
//! `docs/keepalived-differences.md`.
//!
//! ```
//! let text = "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n \
//!             real_server 10.0.0.2 80 {\n  TCP_CHECK {\n   connect_timeout 3\n  }\n }\n}\n";
//! let r = rvs_config::check_str("keepalived.conf", text, &rvs_config::CheckOptions::default());
//! assert_eq!(r.exit_status(), 0);
//! assert_eq!(r.config.virtual_servers[0].real_servers.len(), 1);
//! ```

#![warn(missing_docs)]

pub mod budget;
pub mod diag;
pub mod lexer;
pub mod model;
mod parse;
pub mod tree;
mod validate;

use std::path::Path;

pub use diag::{exit_status, Diagnostic, ErrorClass, Pos};
pub use lexer::{short_hostname, split_quoted_escaped, LexOptions};
pub use model::*;
pub use validate::{interface_exists, program_exists, vs_name};

/// Errors of the library API (configuration problems are [`Diagnostic`]s, not errors).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration has errors that make it unusable.
    #[error("configuration {path} is invalid ({count} problem(s), first: {first})")]
    Invalid {
        /// The file.
        path: String,
        /// How many diagnostics.
        count: usize,
        /// The first diagnostic, rendered.
        first: String,
    },
}

/// Options for [`check`].
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// The config id for `@ID` lines (rvsd `-i`); `None` = the short host name.
    pub config_id: Option<String>,
    /// Check that every interface the configuration names exists in the current
    /// network namespace, as `keepalived -t` does (`rvsd -t` should set this).
    /// Off by default so that a configuration can be checked on another host.
    pub check_interfaces: bool,
}

impl CheckOptions {
    fn lex(&self) -> LexOptions {
        LexOptions {
            config_id: self.config_id.clone().unwrap_or_else(lexer::short_hostname),
        }
    }
}

/// The result of checking a configuration: the model (whatever survived validation)
/// and every diagnostic, in file order within each phase.
#[derive(Debug, Clone)]
pub struct Report {
    /// The parsed, validated model. With errors it holds what keepalived would run.
    pub config: Config,
    /// All problems found.
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// keepalived's `-t` exit status class: 0 OK, 2 missing parameter, 4 cannot run,
    /// 5 errors/warnings, 6 script security (see [`diag::exit_status`]).
    pub fn exit_status(&self) -> i32 {
        diag::exit_status(&self.diagnostics)
    }

    /// True if rvsd can run this configuration (no missing parameter, nothing fatal, nothing
    /// that stops keepalived's processes; see [`diag::Diagnostic::prevents_running`]). Not the
    /// same as the exit status: keepalived's `-t` says 5 for some configurations it then
    /// refuses to run.
    pub fn can_run(&self) -> bool {
        !self.diagnostics.iter().any(|d| d.prevents_running())
    }

    /// The report text for `rvsd -t`: one diagnostic per entry (position, severity,
    /// message, offending line), then a summary line.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for d in &self.diagnostics {
            s.push_str(&d.to_string());
            s.push('\n');
        }
        let errors = self
            .diagnostics
            .iter()
            .filter(|d| !d.class.is_warning())
            .count();
        let warnings = self.diagnostics.len() - errors;
        let verdict = match (self.exit_status(), self.can_run()) {
            (0, _) => "configuration OK",
            (2, _) => "configuration has a missing parameter: rvsd will not start",
            (_, false) => "configuration cannot run: rvsd will not start",
            (6, _) => "scripts would run as root without enable_script_security",
            _ => "configuration has problems but would run",
        };
        s.push_str(&format!(
            "{errors} error(s), {warnings} warning(s): {verdict} (exit status {})\n",
            self.exit_status()
        ));
        s
    }

    /// The model if rvsd can run it, else an error naming the first problem.
    pub fn into_result(self, path: &str) -> Result<Config, ConfigError> {
        if self.can_run() {
            return Ok(self.config);
        }
        let first = self
            .diagnostics
            .iter()
            .find(|d| d.prevents_running())
            .or(self.diagnostics.first())
            .map(|d| d.to_string())
            .unwrap_or_default();
        Err(ConfigError::Invalid {
            path: path.to_string(),
            count: self.diagnostics.len(),
            first,
        })
    }
}

fn finish(lx: lexer::Lexer, opts: &CheckOptions) -> Report {
    let stopped = lx.stopped();
    let (lines, mut diags) = (lx.lines, lx.diags);
    if stopped {
        // A budget was exceeded (crate::budget): the text read so far is a truncated
        // expansion that cannot run, and parsing up to a million lines of it would only
        // add time and noise to the one fatal diagnostic that matters.
        return Report {
            config: Config::default(),
            diagnostics: diags,
        };
    }
    let nodes = tree::build(lines, &mut diags);
    let mut p = parse::Parser::new();
    p.top(&nodes);
    p.validate();
    if opts.check_interfaces {
        p.check_interfaces(&validate::interface_exists);
    }
    diags.extend(p.diags);
    Report {
        config: p.cfg,
        diagnostics: diags,
    }
}

/// `rvsd -t -f FILE`: read, parse and validate `path` (with its includes).
///
/// A missing file is a [`ErrorClass::FileNotFound`] diagnostic (exit status 4;
/// keepalived 2.2.7 exits 0 there).
pub fn check(path: impl AsRef<Path>, opts: &CheckOptions) -> Report {
    let mut lx = lexer::Lexer::new(opts.lex());
    lx.read_file(path.as_ref());
    finish(lx, opts)
}

/// Like [`check`] for configuration text that claims to be file `path` (includes
/// are resolved relative to `path`'s directory).
pub fn check_str(path: impl AsRef<Path>, text: &str, opts: &CheckOptions) -> Report {
    let mut lx = lexer::Lexer::new(opts.lex());
    lx.read_str(path.as_ref(), text);
    finish(lx, opts)
}

/// Parse `path` for running: the model, or an error if rvsd cannot run it.
/// Warnings and recoverable errors are returned alongside the model.
pub fn load(
    path: impl AsRef<Path>,
    opts: &CheckOptions,
) -> Result<(Config, Vec<Diagnostic>), ConfigError> {
    let r = check(path.as_ref(), opts);
    let diags = r.diagnostics.clone();
    r.into_result(&path.as_ref().display().to_string())
        .map(|c| (c, diags))
}
