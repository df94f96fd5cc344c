//! The work one configuration may cause while it is read.
//!
//! keepalived's lexical layer multiplies: an `include` line reads a whole file, a `~SEQ` line
//! repeats the rest of its line, a `$NAME` may expand to several lines that are expanded again.
//! Bounding each level (include depth, values per `~SEQ`, line length) does not bound the
//! product: a chain of 30 files that each include the next one twice reads 2^30 files, and
//! three nested `~SEQ` of 100 000 values run 10^15 times. So the lexer also charges every
//! unit of work to one [`Budget`] per configuration; the first limit crossed stops the read
//! with one fatal diagnostic at the line that crossed it (the configuration cannot run, and
//! a reload keeps the running one). The limits are far above what real configurations use
//! (10 000 services × 10 real servers is about 150 000 lines) and low enough that the worst
//! case ends within about a second.

use std::fmt;

/// Files read through `include` lines (every read counts, also of the same file again).
pub const MAX_INCLUDED_FILES: u64 = 10_000;
/// Bytes of configuration read, the top-level file and all includes together.
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;
/// Values bound by `~SEQ`/`~LST` lines, all lines and nesting levels together (10 000 services
/// of 10 real servers each written as nested `~SEQ` lines bind 110 000).
pub const MAX_SEQ_VALUES: u64 = 250_000;
/// `$NAME` substitutions that changed a line, all lines together.
pub const MAX_SUBSTITUTIONS: u64 = 1_000_000;
/// Bytes produced by `$NAME` substitution, all lines together.
pub const MAX_SUBSTITUTED_BYTES: u64 = 128 << 20;

/// Which limit was crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// [`MAX_INCLUDED_FILES`].
    IncludedFiles,
    /// [`MAX_CONFIG_BYTES`].
    ConfigBytes,
    /// [`MAX_SEQ_VALUES`].
    SeqValues,
    /// [`MAX_SUBSTITUTIONS`].
    Substitutions,
    /// [`MAX_SUBSTITUTED_BYTES`].
    SubstitutedBytes,
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Exceeded::IncludedFiles => {
                format!(
                    "more than {MAX_INCLUDED_FILES} files read by include lines (an include bomb?)"
                )
            }
            Exceeded::ConfigBytes => {
                format!(
                    "more than {} MiB of configuration read (with includes)",
                    MAX_CONFIG_BYTES >> 20
                )
            }
            Exceeded::SeqValues => {
                format!("more than {MAX_SEQ_VALUES} ~SEQ/~LST values in all (nested ~SEQ lines multiply)")
            }
            Exceeded::Substitutions => {
                format!("more than {MAX_SUBSTITUTIONS} $NAME substitutions in all")
            }
            Exceeded::SubstitutedBytes => {
                format!(
                    "more than {} MiB produced by $NAME substitution in all",
                    MAX_SUBSTITUTED_BYTES >> 20
                )
            }
        };
        write!(f, "configuration exceeds its budget: {what} - stopping")
    }
}

/// The work charged so far for one configuration.
#[derive(Debug, Default, Clone)]
pub struct Budget {
    included_files: u64,
    bytes: u64,
    seq_values: u64,
    substitutions: u64,
    substituted_bytes: u64,
}

fn charge(used: &mut u64, n: u64, max: u64, what: Exceeded) -> Result<(), Exceeded> {
    *used = used.saturating_add(n);
    if *used > max {
        Err(what)
    } else {
        Ok(())
    }
}

impl Budget {
    /// A file of `bytes` bytes is about to be read; `included` unless it is the top-level file.
    pub fn read_file(&mut self, bytes: u64, included: bool) -> Result<(), Exceeded> {
        if included {
            charge(
                &mut self.included_files,
                1,
                MAX_INCLUDED_FILES,
                Exceeded::IncludedFiles,
            )?;
        }
        charge(
            &mut self.bytes,
            bytes,
            MAX_CONFIG_BYTES,
            Exceeded::ConfigBytes,
        )
    }

    /// One more `~SEQ`/`~LST` value.
    pub fn seq_value(&mut self) -> Result<(), Exceeded> {
        charge(&mut self.seq_values, 1, MAX_SEQ_VALUES, Exceeded::SeqValues)
    }

    /// One substitution that produced a line of `bytes` bytes.
    pub fn substitution(&mut self, bytes: u64) -> Result<(), Exceeded> {
        charge(
            &mut self.substitutions,
            1,
            MAX_SUBSTITUTIONS,
            Exceeded::Substitutions,
        )?;
        charge(
            &mut self.substituted_bytes,
            bytes,
            MAX_SUBSTITUTED_BYTES,
            Exceeded::SubstitutedBytes,
        )
    }
}
