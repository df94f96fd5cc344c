//! The systemd service notification protocol (sd_notify(3)), written here rather than linking
//! libsystemd: a notification is one datagram of newline-separated `KEY=VALUE` lines sent to
//! the Unix datagram socket named by `$NOTIFY_SOCKET` — a file-system path, or an abstract
//! socket name when the variable starts with `@`.
//!
//! rvsd sends `READY=1` once the table, the data planes, VRRP, the control socket and the
//! metrics listener are up (`Type=notify` units start their dependants only then), `STATUS=`
//! lines saying what it serves, `RELOADING=1` … `READY=1` around a SIGHUP reload, `STOPPING=1`
//! when it starts draining, and `WATCHDOG=1` from the daemon's ticker when systemd asked for a
//! watchdog (`$WATCHDOG_USEC`, for this process when `$WATCHDOG_PID` is set): a wedged ticker —
//! a shard lock that is never released, a runtime that no longer runs — stops the keep-alives,
//! and systemd restarts the service.
//!
//! The process-wide notifier is set once from the environment at start-up, before any thread
//! exists, and the variables are then removed so that the scripts rvsd runs (checkers, VRRP
//! notify scripts) do not talk to systemd in its name.

use crate::lock::lock;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where notifications go and when the watchdog wants the next keep-alive.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
    /// Half of `$WATCHDOG_USEC` (sd_watchdog_enabled(3) recommends pinging at half the timeout).
    watchdog_every: Option<Duration>,
    last_ping: Mutex<Option<Instant>>,
}

static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();

/// Parse `$NOTIFY_SOCKET`: `@name` is an abstract socket, anything starting with `/` a path.
pub fn parse_address(v: &str) -> Result<SocketAddr, String> {
    if let Some(name) = v.strip_prefix('@') {
        SocketAddr::from_abstract_name(name.as_bytes())
            .map_err(|e| format!("NOTIFY_SOCKET {v:?}: {e}"))
    } else if v.starts_with('/') {
        SocketAddr::from_pathname(v).map_err(|e| format!("NOTIFY_SOCKET {v:?}: {e}"))
    } else {
        // systemd also knows vsock: addresses (for virtual machines); rvsd does not.
        Err(format!(
            "NOTIFY_SOCKET {v:?}: only a path or an @abstract name is supported"
        ))
    }
}

/// The watchdog interval to ping at: half of `usec`, if `pid` (when given) is ours.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(p) = pid {
        if p.trim().parse::<u32>().ok() != Some(me) {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

impl Notifier {
    /// A notifier for `addr`.
    pub fn new(addr: SocketAddr, watchdog_every: Option<Duration>) -> std::io::Result<Notifier> {
        Ok(Notifier {
            sock: UnixDatagram::unbound()?,
            addr,
            watchdog_every,
            last_ping: Mutex::new(None),
        })
    }

    /// Send one notification (failures are logged once per call, never fatal: systemd being
    /// gone must not stop the director).
    pub fn send(&self, msg: &str) {
        if let Err(e) = self.sock.send_to_addr(msg.as_bytes(), &self.addr) {
            tracing::warn!("sd_notify: {e}");
        }
    }

    /// Send `WATCHDOG=1` if the watchdog is on and half its timeout has passed since the last
    /// keep-alive.
    pub fn watchdog_tick(&self, now: Instant) {
        let Some(every) = self.watchdog_every else {
            return;
        };
        let mut last = lock(&self.last_ping);
        let due = match *last {
            None => true,
            Some(t) => now.saturating_duration_since(t) >= every,
        };
        if due {
            *last = Some(now);
            drop(last);
            self.send("WATCHDOG=1");
        }
    }

    /// The keep-alive interval, if systemd asked for a watchdog.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog_every
    }
}

/// Read `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` once and remove them from the
/// environment. Call before any thread is started (the environment is process-wide).
pub fn init_from_env() {
    let sock = std::env::var("NOTIFY_SOCKET").ok();
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    for v in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        std::env::remove_var(v);
    }
    let n = sock.and_then(|s| {
        let addr = parse_address(&s)
            .map_err(|e| eprintln!("rvsd: {e}; not notifying the service manager"))
            .ok()?;
        let every = watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id());
        Notifier::new(addr, every)
            .map_err(|e| eprintln!("rvsd: sd_notify socket: {e}"))
            .ok()
    });
    let _ = NOTIFIER.set(n);
}

/// The process's notifier, if rvsd runs under a service manager that wants notifications.
pub fn get() -> Option<&'static Notifier> {
    NOTIFIER.get().and_then(Option::as_ref)
}

/// Send `msg` if there is a service manager to send it to.
pub fn notify(msg: &str) {
    if let Some(n) = get() {
        n.send(msg);
    }
}

/// One `STATUS=` line must stay one line.
pub fn status_line(s: &str) -> String {
    format!("STATUS={}", s.replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = parse_address("@rvs/notify").unwrap();
        assert_eq!(a.as_abstract_name(), Some(&b"rvs/notify"[..]));
        let p = parse_address("/run/systemd/notify").unwrap();
        assert_eq!(
            p.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        assert!(parse_address("vsock:2:1234").is_err());
        assert!(parse_address("").is_err());
    }

    #[test]
    fn watchdog_interval_is_half_and_only_for_us() {
        assert_eq!(
            watchdog_interval(Some("2000000"), None, 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            watchdog_interval(Some("2000000"), Some("7"), 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(watchdog_interval(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    #[test]
    fn watchdog_pings_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_nonblocking(true).unwrap();
        let n = Notifier::new(
            SocketAddr::from_pathname(&path).unwrap(),
            Some(Duration::from_secs(1)),
        )
        .unwrap();
        let t0 = Instant::now();
        n.watchdog_tick(t0);
        n.watchdog_tick(t0 + Duration::from_millis(500));
        n.watchdog_tick(t0 + Duration::from_millis(1000));
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while let Ok(k) = rx.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..k]).into_owned());
        }
        assert_eq!(got, ["WATCHDOG=1", "WATCHDOG=1"]);
    }

    #[test]
    fn status_is_one_line() {
        assert_eq!(status_line("a\nb"), "STATUS=a b");
    }
}
