//! The announcer's counters ([`crate::announce`]), in a module of their own so that the
//! control state can hold them for the metrics without depending on the announcer (which
//! depends on the state).

use std::sync::atomic::{AtomicU64, Ordering};

/// What the announcer shares with the metrics.
#[derive(Default)]
pub struct AnnounceStatus {
    /// Routes in the table now.
    pub routes: AtomicU64,
    /// Route additions and withdrawals done.
    pub changes: AtomicU64,
    /// Reconciliations that failed (rtnetlink errors).
    pub errors: AtomicU64,
}

impl AnnounceStatus {
    /// Prometheus lines for the announcer of table `table`.
    pub fn render_metrics(&self, table: u32, out: &mut String) {
        use std::fmt::Write as _;
        let _ = write!(
            out,
            "# HELP rvs_announce_routes VIP routes rvsd keeps in its announce table.\n\
             # TYPE rvs_announce_routes gauge\n\
             rvs_announce_routes{{table=\"{table}\"}} {}\n\
             # HELP rvs_announce_changes_total Routes added or withdrawn.\n\
             # TYPE rvs_announce_changes_total counter\n\
             rvs_announce_changes_total{{table=\"{table}\"}} {}\n\
             # HELP rvs_announce_errors_total Failed reconciliations of the announce table.\n\
             # TYPE rvs_announce_errors_total counter\n\
             rvs_announce_errors_total{{table=\"{table}\"}} {}\n",
            self.routes.load(Ordering::Relaxed),
            self.changes.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        );
    }
}
