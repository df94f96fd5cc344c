//! Running external programs for VRRP: `vrrp_script` checks (with a timeout, the whole process
//! group killed when it expires, as keepalived does) and notify scripts (`notify_master`, …,
//! `notify` with keepalived's four extra arguments, docs/internals/vrrp.md#configuration), plus the notify
//! FIFO lines.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Upper bound on a notify script's run time: keepalived has none, but an unbounded child is a
/// leak; a notify script that takes this long is broken anyway.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// How a script run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exited with this status (-1 if killed by a signal).
    Exited(i32),
    /// Did not finish within the timeout; its process group was killed.
    TimedOut,
    /// Could not be started.
    Failed,
}

/// Run `argv` in its own process group with stdin/stdout/stderr on /dev/null; kill the group
/// (SIGKILL) when `timeout` passes. keepalived runs scripts the same way (`system_call_script`
/// puts the child in a new process group, and the timeout handler signals the group), so a
/// script's own children do not outlive it. With `user` (name, optional group) it runs as that
/// user and group, with no supplementary groups (keepalived's `script_user`); a user that does
/// not exist fails the run.
pub async fn run(
    argv: &[String],
    user: Option<&(String, Option<String>)>,
    timeout: Duration,
) -> Outcome {
    let Some((prog, args)) = argv.split_first() else {
        return Outcome::Failed;
    };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if let Some((u, g)) = user {
        match rvs_health::run_as_ids(u, g.as_deref()) {
            // std drops the supplementary groups when it changes the uid.
            Ok((uid, gid)) => {
                cmd.uid(uid).gid(gid);
            }
            Err(e) => {
                tracing::warn!("cannot run {prog} as {u}: {e}");
                return Outcome::Failed;
            }
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot run {prog}: {e}");
            return Outcome::Failed;
        }
    };
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(st)) => Outcome::Exited(st.code().unwrap_or(-1)),
        Ok(Err(_)) => Outcome::Failed,
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            // Reap it (SIGKILL cannot be ignored, so this is short).
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            Outcome::TimedOut
        }
    }
}

/// Notify commands started and not yet finished (see [`wait_notifies`]).
static NOTIFIES_RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts one running notify command for as long as it lives, even if its task is dropped.
struct Running;

impl Running {
    fn start() -> Running {
        NOTIFIES_RUNNING.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        NOTIFIES_RUNNING.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Start a notify command in the background (keepalived does not wait for notify scripts).
pub fn spawn_notify(argv: Vec<String>, user: Option<(String, Option<String>)>) {
    let running = Running::start();
    tokio::spawn(async move {
        let _running = running;
        match run(&argv, user.as_ref(), NOTIFY_TIMEOUT).await {
            Outcome::Exited(0) => {}
            o => tracing::warn!("notify script {:?}: {o:?}", argv.first()),
        }
    });
}

/// Wait (at most `limit`) for the notify commands still running: at shutdown the `notify_stop`
/// scripts are started last, and the daemon must not exit (dropping their tasks and killing
/// them) before they have run.
pub async fn wait_notifies(limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while NOTIFIES_RUNNING.load(std::sync::atomic::Ordering::Acquire) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A notify FIFO (`notify_fifo`, `vrrp_notify_fifo`): created if missing, opened read-write so
/// that opening never blocks and writes do not fail while no reader is attached (keepalived
/// does the same). Writes are non-blocking; a line that does not fit is dropped with a warning.
pub struct Fifo {
    path: PathBuf,
    file: File,
}

impl Fifo {
    /// Open (creating) the FIFO at `path`.
    pub fn open(path: &Path) -> Result<Fifo, String> {
        match std::fs::metadata(path) {
            Ok(m) if m.file_type().is_fifo() => {}
            Ok(_) => return Err(format!("notify FIFO {}: not a FIFO", path.display())),
            Err(_) => nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(|e| format!("notify FIFO {}: mkfifo: {e}", path.display()))?,
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| format!("notify FIFO {}: {e}", path.display()))?;
        Ok(Fifo {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Write one line.
    pub fn write_line(&mut self, line: &str) {
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            tracing::warn!("notify FIFO {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exit_status_and_timeout_kill_the_group() {
        assert_eq!(
            run(&["/bin/true".into()], None, Duration::from_secs(5)).await,
            Outcome::Exited(0)
        );
        assert_eq!(
            run(&["/bin/false".into()], None, Duration::from_secs(5)).await,
            Outcome::Exited(1)
        );
        assert_eq!(
            run(&["/nonexistent/rvs".into()], None, Duration::from_secs(5)).await,
            Outcome::Failed
        );
        // A script whose child would outlive it: the whole group is killed at the timeout.
        let dir = std::env::temp_dir().join(format!("rvs-vrrp-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("survived");
        let script = format!("(sleep 1; touch {}) & sleep 30", marker.display());
        let t = std::time::Instant::now();
        let o = run(
            &["sh".into(), "-c".into(), script],
            None,
            Duration::from_millis(200),
        )
        .await;
        assert_eq!(o, Outcome::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "the script's child was not killed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn scripts_run_as_their_user() {
        let sh = |c: &str| vec!["sh".to_string(), "-c".to_string(), c.to_string()];
        let t = Duration::from_secs(5);
        let nobody = ("nobody".to_string(), None);
        let unknown = ("rvs-no-such-user".to_string(), None);
        assert_eq!(
            run(&sh("exit 0"), Some(&unknown), t).await,
            Outcome::Failed,
            "an unknown user must not fall back to root"
        );
        rvs_require::require_root!();
        // uid 65534 and no supplementary group of root's left.
        let check = sh(r#"[ "$(id -u)" = 65534 ] && [ "$(id -G)" = "$(id -g)" ]"#);
        assert_eq!(run(&check, Some(&nobody), t).await, Outcome::Exited(0));
        assert_eq!(
            run(&check, None, t).await,
            Outcome::Exited(1),
            "root otherwise"
        );
    }

    #[test]
    fn fifo_is_created_and_written_without_a_reader() {
        let path = std::env::temp_dir().join(format!("rvs-vrrp-fifo-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut f = Fifo::open(&path).unwrap();
        f.write_line("INSTANCE \"VI_1\" MASTER 100\n");
        assert!(std::fs::metadata(&path).unwrap().file_type().is_fifo());
        drop(f);
        let _ = std::fs::remove_file(&path);
    }
}
