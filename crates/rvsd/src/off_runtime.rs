//! Long work (re-reading a configuration on SIGHUP) on a thread of its own, with a deadline.
//!
//! rvsd's runtime has one thread: it serves the control socket, signals, the ticker (expiry,
//! rate estimator) and the health checkers. Reading a configuration file is synchronous and,
//! for a large or hostile file, takes seconds (rvs-config's budgets bound it; see
//! `docs/keepalived.md`); done on the runtime it would stop all of the above for that long.
//! So it runs on a plain thread and the runtime only awaits its answer: rvsadm keeps being
//! answered, SIGTERM is still handled (the waiting reload is dropped and the thread abandoned,
//! the process exits without it), and a read that outlives [`READ_DEADLINE`] is abandoned with
//! an error, which keeps the running configuration.

use std::path::Path;
use std::time::Duration;

use tokio::sync::oneshot;

/// How long a configuration read may take before the reload gives up on it.
pub const READ_DEADLINE: Duration = Duration::from_secs(30);

/// Run `work` on a thread of its own and await its result for at most `deadline`. On expiry
/// the thread is left to finish alone (its result is dropped) and `Err` says what timed out.
pub async fn run<T: Send + 'static>(
    what: &str,
    deadline: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("rvsd-config-read".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| format!("{what}: cannot start a thread: {e}"))?;
    match tokio::time::timeout(deadline, rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(format!(
            "{what}: the reading thread ended without an answer"
        )),
        Err(_) => Err(format!(
            "{what}: still reading after {} s - abandoned",
            deadline.as_secs_f64()
        )),
    }
}

/// [`rvs_config::check`] of `path` off the runtime, within [`READ_DEADLINE`].
pub async fn check_config(
    path: &Path,
    opts: &rvs_config::CheckOptions,
) -> Result<rvs_config::Report, String> {
    let (p, o) = (path.to_path_buf(), opts.clone());
    run(&path.display().to_string(), READ_DEADLINE, move || {
        rvs_config::check(&p, &o)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn the_runtime_keeps_running_while_the_work_runs_and_a_late_answer_is_abandoned() {
        // A ticker on the same (single-threaded) runtime keeps ticking during the work.
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                t.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let v = run("work", Duration::from_secs(10), || {
            std::thread::sleep(Duration::from_millis(300));
            7
        })
        .await;
        assert_eq!(v, Ok(7));
        assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) >= 5);
        let late = run("slow read", Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_millis(500));
        })
        .await;
        assert_eq!(
            late,
            Err("slow read: still reading after 0.05 s - abandoned".to_string())
        );
        ticker.abort();
    }
}
