//! Counters of what the health checkers did, for the metrics endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the health engine did, counted for the metrics endpoint
/// (`rvs_health_actions_total{action=…}`, `rvs_health_transitions_total{kind=…,to=…}`).
/// Process-wide: one daemon runs one configuration.
static COUNTS: [AtomicU64; 11] = [const { AtomicU64::new(0) }; 11];
const ACTION_LABELS: [&str; 7] = [
    "add",
    "set_weight",
    "remove",
    "drain",
    "drain_deleted",
    "run_command",
    "error",
];
pub(super) const C_ADD: usize = 0;
pub(super) const C_WEIGHT: usize = 1;
pub(super) const C_REMOVE: usize = 2;
pub(super) const C_DRAIN: usize = 3;
pub(super) const C_DRAINED: usize = 4;
pub(super) const C_COMMAND: usize = 5;
pub(super) const C_ERROR: usize = 6;
pub(super) const C_RS_UP: usize = 7;
pub(super) const C_RS_DOWN: usize = 8;
pub(super) const C_Q_UP: usize = 9;
pub(super) const C_Q_DOWN: usize = 10;

pub(super) fn count(i: usize) {
    COUNTS[i].fetch_add(1, Ordering::Relaxed);
}

/// Append the health counters in Prometheus text format (called by [`crate::metrics`]).
pub fn render_metrics(out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP rvs_health_actions_total Table changes and commands requested by the health \
         checkers (rvsd -f), by action.\n# TYPE rvs_health_actions_total counter"
    );
    for (i, l) in ACTION_LABELS.iter().enumerate() {
        let v = COUNTS[i].load(Ordering::Relaxed);
        let _ = writeln!(out, "rvs_health_actions_total{{action=\"{l}\"}} {v}");
    }
    let _ = writeln!(
        out,
        "# HELP rvs_health_transitions_total Real server and quorum state changes (rvsd -f).\n\
         # TYPE rvs_health_transitions_total counter"
    );
    for (i, kind, to) in [
        (C_RS_UP, "real_server", "up"),
        (C_RS_DOWN, "real_server", "down"),
        (C_Q_UP, "quorum", "up"),
        (C_Q_DOWN, "quorum", "down"),
    ] {
        let v = COUNTS[i].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "rvs_health_transitions_total{{kind=\"{kind}\",to=\"{to}\"}} {v}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text() {
        count(C_RS_DOWN);
        let mut t = String::new();
        render_metrics(&mut t);
        assert!(
            t.contains("# TYPE rvs_health_actions_total counter\n"),
            "{t}"
        );
        assert!(
            t.contains("rvs_health_actions_total{action=\"drain\"} "),
            "{t}"
        );
        assert!(
            t.lines().any(|l| l
                .starts_with("rvs_health_transitions_total{kind=\"real_server\",to=\"down\"} ")
                && !l.ends_with(" 0")),
            "{t}"
        );
    }
}
