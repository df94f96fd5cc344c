//! The Prometheus text format's two line shapes. A module of its own (not part of `metrics`)
//! because `metrics` gathers every part of the exposition, and those parts (the sync daemons',
//! the discovery sources') write their own lines: with the format here, neither side imports
//! the other.

use std::fmt::Write as _;

/// The `# HELP` and `# TYPE` lines that open metric family `name`. Every part of the
/// exposition (this module, the sync daemons', the discovery sources') writes through this and
/// [`sample`], so the format lives in one place.
pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line: `name{labels} value`, or `name value` when `labels` is empty.
pub(crate) fn sample(out: &mut String, name: &str, labels: &str, v: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {v}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {v}");
    }
}
