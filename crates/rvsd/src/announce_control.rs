//! Which route announcer runs (`--announce-table` or keepalived.conf's `rvs_announce_table`),
//! and how a SIGHUP changes it.
//!
//! Why a module of its own: the announcer (crate::announce) knows one table and one protocol
//! for its life; the daemon's setting can change on reload. The command line wins for the
//! daemon's life (a reload that names another table only gets a warning); a setting from the
//! file follows the file: a new table or protocol starts the new announcer first and only then
//! withdraws the old one's routes (so a VIP is never unannounced in between when the tables
//! differ, and a failed start keeps the old announcer); a keyword removed from the file
//! withdraws every route; a new delay applies to the next stop.

use std::sync::Arc;
use std::time::Duration;

use crate::announce::{Announcer, Options};
use crate::daemon::Daemon;

/// What the daemon announces with: table and protocol, and the convergence delay on stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Table and protocol.
    pub opts: Options,
    /// Delay between withdrawing the routes and draining, on SIGTERM.
    pub delay: Duration,
}

impl From<&rvs_config::RvsAnnounce> for Setting {
    fn from(a: &rvs_config::RvsAnnounce) -> Setting {
        Setting {
            opts: Options {
                table: a.table,
                protocol: a.protocol,
            },
            delay: a.delay,
        }
    }
}

/// The running announcer, if any, and where its setting came from.
pub struct AnnounceControl {
    daemon: Arc<Daemon>,
    /// The setting is `--announce-table`'s: reloads do not change it.
    from_command_line: bool,
    running: Option<(Announcer, Setting)>,
}

impl AnnounceControl {
    /// Start announcing with `setting` (none: nothing to announce until a reload brings a
    /// keyword). An announcer that cannot start is an error: the daemon must not run believing
    /// it announces.
    pub fn start(
        daemon: Arc<Daemon>,
        setting: Option<Setting>,
        from_command_line: bool,
    ) -> Result<AnnounceControl, String> {
        let mut c = AnnounceControl {
            daemon,
            from_command_line,
            running: None,
        };
        if let Some(s) = setting {
            let a = c.launch(s)?;
            c.running = Some((a, s));
        }
        Ok(c)
    }

    /// The setting in force.
    pub fn setting(&self) -> Option<Setting> {
        self.running.as_ref().map(|r| r.1)
    }

    fn launch(&self, s: Setting) -> Result<Announcer, String> {
        let a = Announcer::start(self.daemon.state.clone(), s.opts)
            .map_err(|e| format!("announce table {}: {e}", s.opts.table))?;
        self.daemon.lock().announce = Some((s.opts.table, a.status.clone()));
        tracing::info!(
            "announcing the VIPs that can be served in routing table {} (protocol {})",
            s.opts.table,
            s.opts.protocol
        );
        Ok(a)
    }

    /// SIGHUP: the reloaded file's `rvs_announce_table` (`None`: the keyword is gone).
    /// Returns what changed, as one line (also logged).
    pub fn follow_file(&mut self, file: Option<&rvs_config::RvsAnnounce>) -> String {
        let want = file.map(Setting::from);
        let have = self.setting();
        let msg = if want == have {
            "announce setting unchanged".to_owned()
        } else if self.from_command_line {
            let msg = format!(
                "--announce-table is on the command line: the file's rvs_announce_table ({}) is \
                 not followed",
                want.map_or("none".into(), |w| format!(
                    "table {} protocol {}",
                    w.opts.table, w.opts.protocol
                ))
            );
            tracing::warn!("SIGHUP: {msg}");
            return msg;
        } else {
            match (self.running.take(), want) {
                (Some((a, old)), Some(new)) if old.opts == new.opts => {
                    self.running = Some((a, new));
                    format!(
                        "announce delay {} s (was {} s)",
                        new.delay.as_secs_f64(),
                        old.delay.as_secs_f64()
                    )
                }
                (old, new) => self.replace(old, new),
            }
        };
        tracing::info!("SIGHUP: {msg}");
        msg
    }

    /// Start `new` (if any), then withdraw `old`'s routes; if `new` cannot start, `old` is
    /// started again and keeps announcing.
    fn replace(&mut self, old: Option<(Announcer, Setting)>, new: Option<Setting>) -> String {
        // The old thread stops first, so that it does not fight the new one over a shared
        // table; its routes stay until the new announcer is up.
        let old = old.map(|(mut a, s)| {
            a.stop();
            (a, s)
        });
        let started = match new {
            Some(n) => match self.launch(n) {
                Ok(a) => Some((a, n)),
                Err(e) => {
                    tracing::error!("SIGHUP: {e}; the previous announce setting stays");
                    if let Some((_, s)) = old {
                        match self.launch(s) {
                            Ok(a) => self.running = Some((a, s)),
                            Err(e) => tracing::error!("SIGHUP: restarting the announcer: {e}"),
                        }
                    }
                    return format!("announce setting not changed: {e}");
                }
            },
            None => None,
        };
        let mut withdrawn = 0;
        if let Some((mut a, s)) = old {
            match a.withdraw_all() {
                Ok(n) => withdrawn = n,
                Err(e) => tracing::error!(
                    "SIGHUP: withdrawing the routes of table {}: {e}",
                    s.opts.table
                ),
            }
        }
        let msg = match &started {
            Some((_, n)) => format!(
                "announcing in table {} (protocol {}); {withdrawn} route(s) of the previous \
                 setting withdrawn",
                n.opts.table, n.opts.protocol
            ),
            None => {
                self.daemon.lock().announce = None;
                format!("announcing stopped: {withdrawn} route(s) withdrawn")
            }
        };
        self.running = started;
        msg
    }

    /// SIGTERM: withdraw every route; returns the convergence delay to wait before draining
    /// (`None` when nothing was announced).
    pub fn withdraw_for_stop(&mut self) -> Option<Duration> {
        let (a, s) = self.running.as_mut()?;
        match a.withdraw_all() {
            Ok(n) => tracing::info!(
                "shutting down: {n} announced route(s) withdrawn; forwarding for {} s more",
                s.delay.as_secs_f64()
            ),
            Err(e) => tracing::error!("shutting down: withdrawing the announced routes: {e}"),
        }
        Some(s.delay)
    }
}
