//! Bounded waits and temporary directories.

use std::time::{Duration, Instant};

/// Poll `f` every `step` until it returns true or `limit` has passed; returns its last answer.
pub fn wait_until(limit: Duration, step: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(step);
    }
}

/// Poll `f` every 50 ms for at most `limit`; true once it holds, false on timeout.
pub fn wait(limit: Duration, f: impl FnMut() -> bool) -> bool {
    wait_until(limit, Duration::from_millis(50), f)
}

/// Poll `f` every 50 ms for at most `limit`; returns how long it took to hold (`None`: it never
/// did). For tests that measure the time something takes.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if f() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temporary directory for one test (removed on drop).
///
/// # Panics
/// If the directory cannot be created.
pub fn tempdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("rvs-e2e-{tag}-"))
        .tempdir()
        .expect("temporary directory")
}
