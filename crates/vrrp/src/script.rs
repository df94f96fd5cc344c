//! `vrrp_script` result counting (rise/fall hysteresis, docs/internals/vrrp.md#states), so the driver
//! only has to run the command and report exit statuses.

/// The rise/fall counter of one `vrrp_script`.
///
/// The counter lives in `[0, rise + fall − 1]`; the OK region is `≥ rise`. OK→KO needs `fall`
/// consecutive failures, KO→OK `rise` consecutive successes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptCounter {
    rise: u32,
    fall: u32,
    count: u32,
    /// `None` until the first result declares a state.
    ok: Option<bool>,
}

impl ScriptCounter {
    /// A counter in keepalived's start-up position: `rise − 1` (one success is enough, one failure
    /// declares KO), or 0 with `init_fail`. `rise`/`fall` of 0 are treated as 1.
    pub fn new(rise: u32, fall: u32, init_fail: bool) -> Self {
        let rise = rise.clamp(1, 1 << 16);
        let fall = fall.clamp(1, 1 << 16);
        ScriptCounter {
            rise,
            fall,
            count: if init_fail { 0 } else { rise - 1 },
            ok: if init_fail { Some(false) } else { None },
        }
    }

    /// Whether the script is currently considered OK (false until a result declares it OK).
    pub fn is_ok(&self) -> bool {
        self.ok == Some(true)
    }

    /// The declared state: `Some(ok)` once a result declared it, `None` before (a driver
    /// reloading its configuration re-reports only declared states).
    pub fn declared(&self) -> Option<bool> {
        self.ok
    }

    /// Record one result (a timeout counts as failure). Returns `Some(new_ok)` when the state
    /// changes, including the first declaration after start-up.
    pub fn record(&mut self, success: bool) -> Option<bool> {
        let top = self.rise + self.fall - 1;
        if success {
            self.count += 1;
            if self.count >= self.rise {
                // Reaching (or staying in) the OK region jumps to the top.
                self.count = top;
            }
        } else if self.count > self.rise {
            self.count -= 1;
        } else {
            // Dropping below `rise` declares KO with the counter at 0.
            self.count = 0;
        }
        let now_ok = self.count >= self.rise;
        if self.ok == Some(now_ok) {
            None
        } else {
            self.ok = Some(now_ok);
            Some(now_ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_one_result_declares() {
        let mut c = ScriptCounter::new(3, 2, false);
        assert_eq!(c.record(true), Some(true));
        let mut c = ScriptCounter::new(3, 2, false);
        assert_eq!(c.record(false), Some(false));
    }

    #[test]
    fn fall_then_rise() {
        let mut c = ScriptCounter::new(2, 3, false);
        assert_eq!(c.record(true), Some(true));
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(true), None); // success while OK resets to the top
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), Some(false)); // third consecutive failure
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(true), Some(true)); // second consecutive success
        assert!(c.is_ok());
    }

    #[test]
    fn init_fail_needs_rise_successes() {
        let mut c = ScriptCounter::new(2, 1, true);
        assert!(!c.is_ok());
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(true), Some(true));
        assert_eq!(c.record(false), Some(false));
    }
}
