//! Counters of what the health checkers did, for the metrics endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

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

/// What the health engine of one running configuration did, counted for the metrics endpoint
/// (`rvs_health_actions_total{action=…}`, `rvs_health_transitions_total{kind=…,to=…}`).
/// Owned by the [`super::Keepalived`] runtime, which attaches it to the daemon's state so that
/// the metrics endpoint reads it ([`crate::state::State::set_health`]); a daemon without `-f`
/// has none and exports no health series, as one without VRRP exports no VRRP series.
#[derive(Debug, Default)]
pub struct HealthCounters {
    counts: [AtomicU64; 11],
    /// AGENT_CHECK replies, counted by the health engine itself.
    pub(super) agent: std::sync::Arc<rvs_health::AgentCounters>,
}

impl HealthCounters {
    pub(super) fn count(&self, i: usize) {
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Append the counters in Prometheus text format (called by [`crate::metrics`]).
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP rvs_health_actions_total Table changes and commands requested by the health \
             checkers (rvsd -f), by action.\n# TYPE rvs_health_actions_total counter"
        );
        for (i, l) in ACTION_LABELS.iter().enumerate() {
            let v = self.counts[i].load(Ordering::Relaxed);
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
            let v = self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "rvs_health_transitions_total{{kind=\"{kind}\",to=\"{to}\"}} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP rvs_health_agent_replies_total AGENT_CHECK replies by effect (malformed \
             replies are ignored).\n# TYPE rvs_health_agent_replies_total counter"
        );
        for (l, v) in self.agent.snapshot() {
            let _ = writeln!(out, "rvs_health_agent_replies_total{{reply=\"{l}\"}} {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text() {
        let c = HealthCounters::default();
        c.count(C_RS_DOWN);
        let mut t = String::new();
        c.render_metrics(&mut t);
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

    #[test]
    fn metrics_endpoint_reads_the_runtime_counters() {
        use crate::state::{Planes, State};
        let mut st = State::new(rvs_core::Time(0), Planes { packet: false });
        let t = crate::metrics::render(&st);
        assert!(!t.contains("rvs_health_"), "no -f, no health series: {t}");
        let c = std::sync::Arc::new(HealthCounters::default());
        st.set_health(c.clone());
        c.count(C_DRAIN);
        c.count(C_DRAIN);
        let t = crate::metrics::render(&st);
        assert!(
            t.contains("rvs_health_actions_total{action=\"drain\"} 2\n"),
            "{t}"
        );
        // A second runtime's counters start from zero: nothing is process-wide.
        let other = HealthCounters::default();
        let mut t = String::new();
        other.render_metrics(&mut t);
        assert!(
            t.contains("rvs_health_actions_total{action=\"drain\"} 0\n"),
            "{t}"
        );
    }
}
