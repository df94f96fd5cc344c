//! Real clients: curl in the foreground, in the background (a long download), or in a bounded
//! loop counting failures.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::proc::Proc;
use rvs_lab::{which, Netns};

/// Run curl (`-sS --max-time 20` added); returns its output.
///
/// # Panics
/// If curl is not installed (tests check with `require!` first).
pub fn curl(args: &[&str]) -> Output {
    let curl = which("curl").expect("curl installed (checked by require!)");
    Command::new(curl)
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl")
}

/// curl that must succeed; returns stdout.
///
/// # Panics
/// If curl fails.
pub fn curl_ok(args: &[&str]) -> String {
    let o = curl(args);
    assert!(
        o.status.success(),
        "curl {args:?}: {:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf-8 body")
}

/// One HTTP GET (`curl -s -f --max-time 3`): the body on success, `None` on any failure
/// (connection refused or reset, timeout, HTTP error).
pub fn curl_get(url: &str) -> Option<String> {
    let out = Command::new(which("curl")?)
        .args(["-s", "-f", "--max-time", "3", url])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A background curl (e.g. a long download), killed on drop if still running.
pub struct Download {
    proc: Proc,
    out: PathBuf,
}

impl Download {
    /// Start `curl -sS -o BODY -w '%{http_code} %{size_download}' args` writing its report
    /// to `out` and the body to `body` (or /dev/null).
    ///
    /// # Panics
    /// If curl is not installed.
    pub fn start(out: &Path, body: Option<&Path>, args: &[&str]) -> Download {
        let curl = which("curl").expect("curl installed (checked by require!)");
        let mut cmd = Command::new(curl);
        cmd.args(["-sS", "--max-time", "30", "-o"])
            .arg(body.unwrap_or(Path::new("/dev/null")))
            .args(["-w", "%{http_code} %{size_download}"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(out).expect("download report"))
            .stderr(Stdio::null());
        Download {
            proc: Proc::spawn("curl", cmd),
            out: out.to_path_buf(),
        }
    }

    /// Whether curl is still running.
    pub fn running(&mut self) -> bool {
        self.proc.try_status().is_none()
    }

    /// Wait for the download (at most `limit`); returns (curl's exit code, "code size").
    pub fn finish_code(mut self, limit: Duration) -> (Option<i32>, String) {
        let st = self.proc.wait_timeout(limit);
        let report = std::fs::read_to_string(&self.out).unwrap_or_default();
        (st.and_then(|s| s.code()), report)
    }

    /// Wait for the download (at most `limit`); returns (exit success, "code size").
    pub fn finish(mut self, limit: Duration) -> (bool, String) {
        let st = self.proc.wait_timeout(limit);
        let report = std::fs::read_to_string(&self.out).unwrap_or_default();
        (st.is_some_and(|s| s.success()), report)
    }
}

/// A client requesting a URL in the background with [`curl_get`], counting failures; bounded
/// in count and time.
pub struct ClientLoop {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<(u32, u32)>>,
}

impl ClientLoop {
    /// Start requesting `url` (at most `max` requests, 20 ms apart).
    pub fn start(url: &str, max: u32) -> ClientLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let url = url.to_string();
        let handle = std::thread::spawn(move || {
            let (mut n, mut failed) = (0, 0);
            while n < max && !s.load(Ordering::Relaxed) {
                n += 1;
                if curl_get(&url).is_none() {
                    failed += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (n, failed)
        });
        ClientLoop {
            stop,
            handle: Some(handle),
        }
    }

    /// Stop; (requests, failed).
    pub fn finish(mut self) -> (u32, u32) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .map(|h| h.join().unwrap_or((0, 0)))
            .unwrap_or((0, 0))
    }
}

impl Drop for ClientLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The `n` bytes of a fixed non-repeating-per-block pattern (so a truncated or reordered
/// download would be noticed by size and content).
pub fn pattern(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut i: u32 = 0;
    while out.len() < n {
        let k = (n - out.len()).min(4096);
        out.extend((0..k).map(|j| (i.wrapping_mul(31).wrapping_add(j as u32) % 251) as u8));
        i += 1;
    }
    out
}

/// Write the [`pattern`] of `n` bytes to `path`.
///
/// # Panics
/// If the file cannot be written.
pub fn write_pattern(path: &Path, n: usize) {
    std::fs::write(path, pattern(n)).expect("write big file");
}

/// Downloads `url` inside `ns` with curl (at most 15 s) into the file `out`; returns its bytes.
/// For a transfer long enough that the XDP fast path must carry part of it (the flow's
/// ESTABLISHED packets after its entry was installed), compared with what the server holds.
///
/// # Panics
/// If curl fails or the file cannot be read.
pub fn download_in(ns: &Netns, url: &str, out: &Path) -> Vec<u8> {
    let o = out.display().to_string();
    ns.cmd("curl")
        .args(["-sS", "--max-time", "15", "-o", &o, url])
        .timeout(Duration::from_secs(20))
        .run()
        .unwrap_or_else(|e| panic!("download {url} in {}: {e}", ns.name()));
    std::fs::read(out).unwrap_or_else(|e| panic!("{o}: {e}"))
}

/// Print a measurement so it shows in the test output (`--nocapture`) and CI logs.
pub fn report(test: &str, what: &str) {
    let mut e = std::io::stderr();
    let _ = writeln!(e, "[{test}] {what}");
}

/// One `curl -sS --max-time 5 [extra…] URL` inside `ns`: the body, or `None` if it failed.
pub fn curl_in(ns: &Netns, extra: &[&str], url: &str) -> Option<String> {
    ns.cmd("curl")
        .args(["-sS", "--max-time", "5"])
        .args(extra)
        .arg(url)
        .timeout(Duration::from_secs(8))
        .run()
        .ok()
}

/// [`curl_in`] that must succeed.
///
/// # Panics
/// If curl fails (with its error).
pub fn curl_in_ok(ns: &Netns, extra: &[&str], url: &str) -> String {
    ns.cmd("curl")
        .args(["-sS", "--max-time", "5"])
        .args(extra)
        .arg(url)
        .timeout(Duration::from_secs(8))
        .run()
        .unwrap_or_else(|e| panic!("curl {extra:?} {url} in {}: {e}", ns.name()))
}
