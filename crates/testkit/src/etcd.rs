//! A real etcd for the tests: its own data directory and loopback ports, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::proc::Proc;
use crate::wait::wait_until;

/// A running etcd (one member) on `IP:2379` (clients) and `IP:2380` (peers).
pub struct Etcd {
    proc: Option<Proc>,
    /// `http://IP:2379`.
    pub url: String,
    ip: String,
    dir: PathBuf,
}

impl Etcd {
    /// Start etcd on loopback address `ip` with its data in `dir/etcd`; waits (≤ 20 s) until it
    /// answers.
    ///
    /// # Panics
    /// If it does not come up (its log is in the message).
    pub fn start(dir: &Path, ip: &str) -> Etcd {
        let mut e = Etcd {
            proc: None,
            url: format!("http://{ip}:2379"),
            ip: ip.to_string(),
            dir: dir.to_path_buf(),
        };
        e.restart();
        e
    }

    fn log(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// Start it again (after [`Etcd::stop`]) on the same data: same keys, same revisions.
    ///
    /// # Panics
    /// If it does not come up.
    pub fn restart(&mut self) {
        let ip = &self.ip;
        let mut cmd = Command::new("etcd");
        cmd.args(["--name", "rvs-test", "--data-dir"])
            .arg(self.dir.join("etcd"))
            .args(["--listen-client-urls", &format!("http://{ip}:2379")])
            .args(["--advertise-client-urls", &format!("http://{ip}:2379")])
            .args(["--listen-peer-urls", &format!("http://{ip}:2380")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://{ip}:2380"),
            ])
            .args(["--initial-cluster", &format!("rvs-test=http://{ip}:2380")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.log())
                    .expect("etcd log"),
            );
        let mut p = Proc::spawn("etcd", cmd);
        let up = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
            p.try_status().is_some() || self.ctl_quiet(&["endpoint", "health"]).status.success()
        });
        let exited = p.try_status();
        assert!(
            up && exited.is_none(),
            "etcd did not come up (exit {exited:?}); log:\n{}",
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
        self.proc = Some(p);
    }

    /// Stop it (SIGTERM, then SIGKILL after 10 s); the data stays for [`Etcd::restart`].
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal(nix::sys::signal::Signal::SIGTERM);
            if p.wait_timeout(Duration::from_secs(10)).is_none() {
                drop(p);
            }
        }
    }

    fn ctl_quiet(&self, args: &[&str]) -> Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.url, "--command-timeout", "3s"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run etcdctl")
    }

    /// `etcdctl ARGS` against this etcd; its stdout.
    ///
    /// # Panics
    /// If etcdctl fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let o = self.ctl_quiet(args);
        assert!(
            o.status.success(),
            "etcdctl {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Put `key` = `value`.
    pub fn put(&self, key: &str, value: &str) {
        self.ctl(&["put", key, value]);
    }

    /// Put `key` = `value` with `lease` (hex id, as `lease grant` prints it).
    pub fn put_leased(&self, key: &str, value: &str, lease: &str) {
        self.ctl(&["put", "--lease", lease, key, value]);
    }

    /// Grant a lease of `ttl` seconds; its hex id.
    ///
    /// # Panics
    /// If etcdctl's answer has no id.
    pub fn grant(&self, ttl: u64) -> String {
        // "lease 694d81e1bb2ac40b granted with TTL(2s)"
        let out = self.ctl(&["lease", "grant", &ttl.to_string()]);
        out.split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("lease grant: {out}"))
            .to_string()
    }

    /// Delete `key`.
    pub fn del(&self, key: &str) {
        self.ctl(&["del", key]);
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
