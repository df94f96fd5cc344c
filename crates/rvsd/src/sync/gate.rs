//! The preemption hold of safe failback (`docs/internals/sync.md#safe-failback`): while a
//! director that just started waits for its bulk resync, its VRRP instances do not preempt a
//! lower-priority MASTER, so a rebooted MASTER never takes the VIP with an empty connection
//! table. The hold ends when the resync ends (complete, cut short, or no master answered) and
//! at the latest after a bound (`rvsd --sync-resync-hold`), so a broken resync cannot keep a
//! director out of service. It never delays a takeover when no MASTER is heard: VRRP's own
//! master-down timer still runs.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Armed at start while a resync is due; read by the VRRP driver.
#[derive(Debug, Default)]
pub struct ResyncGate {
    until: Mutex<Option<Instant>>,
}

impl ResyncGate {
    /// Hold preemption for at most `bound` from now (no hold for a zero bound).
    pub fn arm(&self, bound: Duration) {
        let mut u = crate::lock::lock(&self.until);
        *u = (!bound.is_zero()).then(|| Instant::now() + bound);
    }

    /// The resync ended: preemption is allowed again.
    pub fn release(&self) {
        *crate::lock::lock(&self.until) = None;
    }

    /// Whether preemption is held now.
    pub fn holding(&self) -> bool {
        crate::lock::lock(&self.until).is_some_and(|t| Instant::now() < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_until_released_or_bound() {
        let g = ResyncGate::default();
        assert!(!g.holding());
        g.arm(Duration::from_secs(60));
        assert!(g.holding());
        g.release();
        assert!(!g.holding());
        g.arm(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!g.holding(), "the bound ends the hold");
        g.arm(Duration::ZERO);
        assert!(!g.holding());
    }
}
