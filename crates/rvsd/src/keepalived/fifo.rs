//! The `lvs_notify_fifo` / `notify_fifo` writer.

use std::path::PathBuf;

/// Writes `lvs_notify_fifo` lines from a thread of its own: a FIFO without a reader fills up
/// and blocks its writer, which must never be the daemon. Lines that do not fit in the
/// queue are dropped with a warning.
pub(super) struct FifoWriter {
    tx: std::sync::mpsc::SyncSender<String>,
}

impl FifoWriter {
    /// Open (creating the FIFO if missing, as keepalived does) every path.
    pub(super) fn start(paths: &[PathBuf]) -> Option<FifoWriter> {
        let mut files = Vec::new();
        for p in paths {
            if !p.exists() {
                if let Err(e) =
                    rustix::fs::mkfifoat(rustix::fs::CWD, p, rustix::fs::Mode::from_raw_mode(0o600))
                {
                    tracing::error!("notify fifo {}: cannot create: {e}", p.display());
                    continue;
                }
            }
            // Read+write: opening a FIFO this way does not wait for a reader (Linux).
            match std::fs::OpenOptions::new().read(true).append(true).open(p) {
                Ok(f) => files.push((p.clone(), f)),
                Err(e) => tracing::error!("notify fifo {}: {e}", p.display()),
            }
        }
        if files.is_empty() {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(1024);
        std::thread::Builder::new()
            .name("rvsd-notify-fifo".into())
            .spawn(move || {
                use std::io::Write;
                while let Ok(line) = rx.recv() {
                    for (p, f) in &mut files {
                        if let Err(e) = f.write_all(line.as_bytes()) {
                            tracing::warn!("notify fifo {}: {e}", p.display());
                        }
                    }
                }
            })
            .ok()?;
        Some(FifoWriter { tx })
    }

    pub(super) fn send(&self, line: String) {
        if self.tx.try_send(line).is_err() {
            tracing::warn!("notify fifo: no reader keeps up; line dropped");
        }
    }
}
