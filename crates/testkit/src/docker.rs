//! A real dockerd for the tests: its own data and exec roots, API socket and bridge (no
//! iptables: the host reaches the containers on the bridge directly), stopped on drop with
//! every container it ran.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::proc::Proc;
use crate::wait::wait_until;

/// A running dockerd with a bridge of its own.
pub struct Dockerd {
    proc: Option<Proc>,
    /// Its API socket.
    pub socket: PathBuf,
    dir: PathBuf,
    bridge: String,
}

fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip")
}

impl Dockerd {
    /// Create bridge `bridge` with address `cidr` (the containers' network; a name and subnet
    /// of the test's own) and start dockerd on it with its state in `dir` (storage driver vfs:
    /// it works on any file system; `--live-restore`, so that containers survive a dockerd
    /// restart). Waits (≤ 30 s) until it answers.
    ///
    /// # Panics
    /// If the bridge cannot be made or dockerd does not come up (its log is in the message).
    pub fn start(dir: &Path, bridge: &str, cidr: &str) -> Dockerd {
        let _ = ip(&["link", "del", bridge]);
        for args in [
            &["link", "add", bridge, "type", "bridge"][..],
            &["addr", "add", cidr, "dev", bridge],
            &["link", "set", bridge, "up"],
        ] {
            let o = ip(args);
            assert!(
                o.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let mut d = Dockerd {
            proc: None,
            socket: dir.join("docker.sock"),
            dir: dir.to_path_buf(),
            bridge: bridge.to_string(),
        };
        d.restart();
        d
    }

    fn log(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }

    /// Start dockerd again (after [`Dockerd::stop`]); containers left running come back.
    ///
    /// # Panics
    /// If it does not come up.
    pub fn restart(&mut self) {
        let mut cmd = Command::new("dockerd");
        cmd.arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.dir.join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", self.socket.display()))
            .args(["--bridge", &self.bridge])
            .args(["--iptables=false", "--ip-masq=false", "--ip6tables=false"])
            .args(["--storage-driver", "vfs", "--live-restore"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.log())
                    .expect("dockerd log"),
            );
        let mut p = Proc::spawn("dockerd", cmd);
        let up = wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
            p.try_status().is_some() || self.docker_quiet(&["version"]).status.success()
        });
        let exited = p.try_status();
        assert!(
            up && exited.is_none(),
            "dockerd did not come up (exit {exited:?}); log:\n{}",
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
        self.proc = Some(p);
    }

    /// Stop dockerd (SIGTERM; SIGKILL after 15 s). With `--live-restore` its containers go on.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal(nix::sys::signal::Signal::SIGTERM);
            if p.wait_timeout(Duration::from_secs(15)).is_none() {
                drop(p);
            }
        }
    }

    fn docker_quiet(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("--host")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// `docker ARGS` against this dockerd; its stdout, trimmed.
    ///
    /// # Panics
    /// If docker fails.
    pub fn docker(&self, args: &[&str]) -> String {
        let o = self.docker_quiet(args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Import an image `tag` made `FROM scratch` of the static busybox (`/bin/busybox` of
    /// Debian's busybox-static) with `/www/index.html` answering `hello`: no registry needed.
    /// Containers run it as `/bin/httpd -f -p PORT -h /www`. Built by the repository's own
    /// `examples/docker/busybox-image.sh`, so the example is exercised by every Docker test.
    ///
    /// # Panics
    /// If the image cannot be made.
    pub fn import_busybox(&self, tag: &str) {
        let o = self.example("busybox-image.sh", &[tag]);
        assert_eq!(o, tag, "busybox-image.sh printed {o:?}");
    }

    /// Runs `examples/docker/SCRIPT ARGS` against this dockerd (`DOCKER_HOST`); its stdout,
    /// trimmed.
    ///
    /// # Panics
    /// If the script fails.
    pub fn example(&self, script: &str, args: &[&str]) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/docker")
            .join(script);
        let o = Command::new(&path)
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
        assert!(
            o.status.success(),
            "{script} {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// The container's address on the bridge.
    pub fn ip_of(&self, name: &str) -> String {
        self.docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            name,
        ])
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.proc.is_some() {
            let ids = self.docker_quiet(&["ps", "-aq"]);
            let ids = String::from_utf8_lossy(&ids.stdout).to_string();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                let _ = self.docker_quiet(&args);
            }
        }
        self.stop();
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
