//! Shared harness of the `keepalived_*` end-to-end tests: nginx real servers and rvsd as real
//! processes on loopback, inspected with rvsadm's own code (`App` + `SocketBackend`).
//!
//! Every process is killed on drop, every wait is bounded, traffic stays on 127.0.0.0/8.

#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rvsadm::app::{App, SocketBackend};
use rvsadm::names::SystemNames;

/// Stop the test unless nginx and curl are installed (scripts/install-test-deps installs
/// them): skipped with the reason outside CI, a failure under CI (see rvs-require).
#[macro_export]
macro_rules! skip_unless_ready {
    () => {
        rvs_require::require_tools!("nginx", "curl");
    };
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory named after the test.
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "rvsd-kconf-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Wait until `f` holds, polling every 50 ms, for at most `limit`. Returns the time it took.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
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

/// A file-name tag for an address (several servers share a port on different addresses).
fn tag(addr: SocketAddr) -> String {
    format!("{}-{}", addr.ip(), addr.port())
}

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// One nginx serving a directory on `addr`, stoppable and restartable.
pub struct Nginx {
    /// Listen address.
    pub addr: SocketAddr,
    /// Document root.
    pub root: PathBuf,
    conf: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

impl Nginx {
    /// Write its configuration (root `dir/www-PORT` with `index.html` = `body`) and start it.
    pub fn start(dir: &Path, addr: SocketAddr, body: &str) -> Nginx {
        let root = dir.join(format!("www-{}", tag(addr)));
        let tmp = dir.join(format!("tmp-{}", tag(addr)));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(root.join("index.html"), body).unwrap();
        std::fs::write(root.join("health"), "ok\n").unwrap();
        let conf = dir.join(format!("nginx-{}.conf", tag(addr)));
        let t = tmp.display();
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx-{p}.pid;\n\
                 error_log {d}/nginx-{p}.err;\nevents {{ worker_connections 256; }}\n\
                 http {{\n access_log off;\n client_body_temp_path {t};\n proxy_temp_path {t};\n \
                 fastcgi_temp_path {t};\n uwsgi_temp_path {t};\n scgi_temp_path {t};\n \
                 server {{ listen {a}; root {r}; }}\n}}\n",
                d = dir.display(),
                p = tag(addr),
                a = addr,
                r = root.display(),
            ),
        )
        .unwrap();
        let mut n = Nginx {
            addr,
            root,
            conf,
            dir: dir.to_path_buf(),
            child: None,
        };
        n.restart();
        n
    }

    /// Start (again) and wait until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "nginx {} already running", self.addr);
        let child = Command::new(
            rvs_require::which("nginx").expect("nginx (checked by skip_unless_ready!)"),
        )
        .arg("-e")
        .arg(self.dir.join(format!("nginx-{}.err", tag(self.addr))))
        .arg("-c")
        .arg(&self.conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nginx");
        self.child = Some(child);
        let addr = self.addr;
        let err = self.dir.join(format!("nginx-{}.err", tag(self.addr)));
        assert!(
            wait_until(Duration::from_secs(10), || accepts(addr)).is_some(),
            "nginx on {addr} did not start: {}",
            std::fs::read_to_string(err).unwrap_or_default()
        );
    }

    /// Kill it (SIGKILL: the port closes at once, like a crashed server).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// rvsd running a keepalived.conf.
pub struct Rvsd {
    /// The configuration file.
    pub conf: PathBuf,
    /// The control socket.
    pub socket: PathBuf,
    /// Its stderr (the log).
    pub log: PathBuf,
    child: Child,
}

impl Rvsd {
    /// Write `conf` and start `rvsd -f` with `extra` arguments; wait for its socket.
    pub fn start(dir: &Path, conf: &str, extra: &[&str]) -> Rvsd {
        let path = dir.join("keepalived.conf");
        std::fs::write(&path, conf).unwrap();
        let socket = dir.join("rvsd.sock");
        let log = dir.join("rvsd.log");
        let child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
            .arg("-f")
            .arg(&path)
            .arg("--socket")
            .arg(&socket)
            .args(["--metrics-listen", "off", "--workers", "1"])
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn rvsd");
        let r = Rvsd {
            conf: path,
            socket,
            log,
            child,
        };
        let s = r.socket.clone();
        assert!(
            wait_until(Duration::from_secs(10), || s.exists()).is_some(),
            "rvsd did not start:\n{}",
            r.log_text()
        );
        r
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Replace the configuration file and send SIGHUP.
    pub fn reload(&self, conf: &str) {
        std::fs::write(&self.conf, conf).unwrap();
        let st = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(st.success());
    }

    /// Wait for a line in the log containing `needle` (bounded).
    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        wait_until(limit, || self.log_text().contains(needle)).is_some()
    }

    /// `rvsadm ARGS` through rvsadm's own code, in process: (status, stdout, stderr).
    pub fn rvsadm(&self, args: &[&str]) -> (i32, String, String) {
        let mut backend = SocketBackend::new(Some(self.socket.clone()));
        let names = SystemNames::new();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let argv: Vec<String> = std::iter::once("rvsadm")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let code =
            App::new(&mut backend, &names, &mut out, &mut err).run(&argv, &mut std::io::empty());
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    /// `rvsadm -Ln`.
    pub fn listing(&self) -> String {
        let (code, out, err) = self.rvsadm(&["-Ln"]);
        assert_eq!(code, 0, "rvsadm -Ln: {err}");
        out
    }

    /// The destinations of the listing: (address, weight, active connections).
    pub fn dests(&self) -> Vec<(String, u32, u32)> {
        parse_dests(&self.listing())
    }

    /// The weight of one destination, if listed.
    pub fn weight(&self, dest: SocketAddr) -> Option<u32> {
        let d = dest.to_string();
        self.dests()
            .into_iter()
            .find(|(a, _, _)| *a == d)
            .map(|(_, w, _)| w)
    }
}

impl Rvsd {
    /// The connection counter of one destination (`rvsadm -Ln --stats`), if listed.
    pub fn conns(&self, dest: SocketAddr) -> Option<u64> {
        let (code, out, err) = self.rvsadm(&["-Ln", "--stats"]);
        assert_eq!(code, 0, "rvsadm -Ln --stats: {err}");
        let d = dest.to_string();
        out.lines().find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 3 && w[0] == "->" && w[1] == d)
                .then(|| w[2].parse().ok())
                .flatten()
        })
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `  -> ADDR:PORT  Fwd  Weight  Active  Inactive` lines of `ipvsadm -Ln`.
pub fn parse_dests(listing: &str) -> Vec<(String, u32, u32)> {
    listing
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() >= 6 && w[0] == "->" && w[1] != "RemoteAddress:Port" {
                Some((w[1].to_string(), w[3].parse().ok()?, w[4].parse().ok()?))
            } else {
                None
            }
        })
        .collect()
}

/// One HTTP GET through curl: the body on success.
pub fn curl(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-s", "-f", "--max-time", "3", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A client hammering a URL in the background with curl, counting failures; bounded in
/// count and time.
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
                if curl(&url).is_none() {
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

/// Print a measurement so it shows in the test output (`--nocapture`) and CI logs.
pub fn report(test: &str, what: &str) {
    let mut e = std::io::stderr();
    let _ = writeln!(e, "[{test}] {what}");
}
