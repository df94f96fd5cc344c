//! Harness for rvsd's end-to-end tests: real processes on loopback.
//!
//! - [`Rvsd`]: the daemon binary with its control socket and log in a temporary directory,
//!   driven with rvsadm (the library, which is the binary's code, or the binary itself).
//! - [`Nginx`]: real servers from a generated configuration, one `server` per address.
//! - [`Proc`]: every helper process runs in its own process group, which is killed when the
//!   guard is dropped — also when a test panics — so nothing outlives the test.
//! - [`curl`], [`wait_until`]: clients and bounded polling.
//!
//! Addresses: test N uses 127.77.N.0/24 (VIP .1, real servers .11–.13, clients .101+), port
//! 8080, so tests running in parallel never share an address.

#![allow(dead_code)]

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use rvsadm::app::{App, SocketBackend};
use rvsadm::names::SystemNames;

/// Stop the test unless every program in the list is installed: skipped with the reason
/// outside CI, a failure under CI (`RVS_REQUIRE_ALL=1` or `CI=true`; see rvs-require).
#[macro_export]
macro_rules! require {
    ($($prog:expr),+ $(,)?) => {
        rvs_require::require_tools!($($prog),+);
    };
}

pub use rvs_require::which;

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

/// A temporary directory for one test (removed on drop).
pub fn tempdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("rvsd-e2e-{tag}-"))
        .tempdir()
        .expect("temporary directory")
}

/// A child process in its own process group; the whole group is killed on drop.
pub struct Proc {
    child: Child,
    name: String,
    done: Option<ExitStatus>,
}

impl Proc {
    /// Spawn `cmd` in a new process group.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            name: name.to_string(),
            done: None,
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal to the process (not its group).
    pub fn signal(&self, sig: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.pid()).expect("pid fits i32"));
        nix::sys::signal::kill(pid, sig)
            .unwrap_or_else(|e| panic!("kill -{sig:?} {} ({}): {e}", self.pid(), self.name));
    }

    /// The exit status if the process has exited (non-blocking).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.done.is_none() {
            self.done = self.child.try_wait().expect("try_wait");
        }
        self.done
    }

    /// Wait for the process to exit, at most `limit`.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_until(limit, Duration::from_millis(20), || {
            self.try_status().is_some()
        });
        self.done
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The group id is the child's pid (process_group(0)); killing the group also takes
        // any children it forked. Only our own group is signalled.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Result of one rvsadm invocation.
#[derive(Debug)]
pub struct Adm {
    /// Exit status.
    pub code: i32,
    /// Standard output.
    pub out: String,
    /// Standard error.
    pub err: String,
}

/// Run rvsadm's library (the binary's code) against `socket`, `stdin` feeding `-R`. The call
/// runs on its own thread, bounded to 20 s, so a wedged daemon fails the test instead of
/// hanging it (the thread is released when the daemon is killed).
pub fn rvsadm_lib(socket: &Path, args: &[&str], stdin: &str) -> Adm {
    let socket = socket.to_path_buf();
    let argv: Vec<String> = std::iter::once("rvsadm")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    let input = stdin.as_bytes().to_vec();
    let (tx, rx) = std::sync::mpsc::channel();
    let shown = argv.clone();
    std::thread::spawn(move || {
        let mut backend = SocketBackend::new(Some(socket));
        let names = SystemNames::new();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut input = std::io::Cursor::new(input);
        let code = App::new(&mut backend, &names, &mut out, &mut err).run(&argv, &mut input);
        let _ = tx.send(Adm {
            code,
            out: String::from_utf8(out).expect("utf-8 stdout"),
            err: String::from_utf8(err).expect("utf-8 stderr"),
        });
    });
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{shown:?} did not finish within 20 s"))
}

/// Run `cmd` to completion with `stdin`, at most `limit` (killed and a panic beyond it).
pub fn run_bounded(name: &str, mut cmd: Command, stdin: &str, limit: Duration) -> Adm {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut p = Proc::spawn(name, cmd);
    let mut input = p.child.stdin.take().expect("stdin");
    // Readers on their own threads: a full pipe must not block the child.
    let read = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = read(p.child.stdout.take().map(|s| Box::new(s) as _));
    let err = read(p.child.stderr.take().map(|s| Box::new(s) as _));
    // A child that exits without reading its input is not an error here.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let st = p
        .wait_timeout(limit)
        .unwrap_or_else(|| panic!("{name} did not finish within {limit:?}"));
    Adm {
        code: st.code().unwrap_or(-1),
        out: out.join().expect("stdout reader"),
        err: err.join().expect("stderr reader"),
    }
}

/// The `rvsadm` binary built next to `rvsd` (cargo builds it for the workspace's tests); it
/// is not built from a test. `None` when only rvsd's package was built.
pub fn rvsadm_bin() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_BIN_EXE_rvsd")).with_file_name("rvsadm");
    p.is_file().then_some(p)
}

/// Run the `rvsadm` binary with `--socket socket` (bounded to 20 s).
pub fn rvsadm_exe(bin: &Path, socket: &Path, args: &[&str], stdin: &str) -> Adm {
    let mut c = Command::new(bin);
    c.arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("RVS_SOCKET");
    run_bounded("rvsadm", c, stdin, Duration::from_secs(20))
}

/// A running rvsd with its socket and log in a temporary directory.
pub struct Rvsd {
    proc: Proc,
    /// Control socket.
    pub socket: PathBuf,
    /// Its stderr (tracing log).
    pub log: PathBuf,
}

impl Rvsd {
    /// Start rvsd with `--socket DIR/rvsd.sock --metrics-listen off --workers 1` unless
    /// `args` sets `--metrics-listen`/`--workers`, and wait until it answers rvsadm.
    pub fn start(dir: &Path, args: &[&str]) -> Rvsd {
        let socket = dir.join("rvsd.sock");
        let log = dir.join("rvsd.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rvsd"));
        cmd.arg("--socket").arg(&socket);
        if !args.contains(&"--metrics-listen") {
            cmd.args(["--metrics-listen", "off"]);
        }
        if !args.contains(&"--workers") {
            cmd.args(["--workers", "1"]);
        }
        cmd.args(args)
            .env_remove("RVS_SOCKET")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("rvsd log file"));
        let mut r = Rvsd {
            proc: Proc::spawn("rvsd", cmd),
            socket,
            log,
        };
        let up = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            r.proc.try_status().is_some()
                || (r.socket.exists() && rvsadm_lib(&r.socket, &["-Ln"], "").code == 0)
        });
        assert!(
            up && r.proc.try_status().is_none(),
            "rvsd did not come up (exit {:?}); log:\n{}",
            r.proc.try_status(),
            r.log_text()
        );
        r
    }

    /// rvsadm (library) with these arguments.
    pub fn adm(&self, args: &[&str]) -> Adm {
        rvsadm_lib(&self.socket, args, "")
    }

    /// rvsadm that must succeed without any message on stderr; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let a = self.adm(args);
        assert!(
            a.code == 0 && a.err.is_empty(),
            "rvsadm {args:?}: exit {}, stderr {:?}",
            a.code,
            a.err
        );
        a.out
    }

    /// Apply several rvsadm command lines (each split on whitespace), each must succeed.
    pub fn table(&self, lines: &[&str]) {
        for l in lines {
            let args: Vec<&str> = l.split_whitespace().collect();
            self.ok(&args);
        }
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send a signal to the daemon.
    pub fn signal(&self, sig: Signal) {
        self.proc.signal(sig);
    }

    /// Wait at most `limit` for the daemon to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.proc.wait_timeout(limit)
    }

    /// Whether the daemon is still running.
    pub fn running(&mut self) -> bool {
        self.proc.try_status().is_none()
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- rvsd log ----\n{}------------------", self.log_text());
        }
    }
}

/// One nginx `server`: an address, the body of `/`, and whether it expects a PROXY header.
#[derive(Clone, Debug)]
pub struct Site {
    /// Listen address.
    pub addr: SocketAddr,
    /// `/` answers `return 200 "<body>"` (nginx variables allowed).
    pub body: String,
    /// `listen ... proxy_protocol`.
    pub proxy_protocol: bool,
}

impl Site {
    /// A plain site answering `name\n`.
    pub fn named(addr: &str, name: &str) -> Site {
        Site {
            addr: addr.parse().expect("site address"),
            body: format!("{name}\\n"),
            proxy_protocol: false,
        }
    }
}

/// nginx real servers (`master_process off`: one process, so killing it stops everything).
pub struct Nginx {
    proc: Proc,
    dir: PathBuf,
}

/// Which optional nginx modules exist (their temp paths must be moved out of /var/lib/nginx,
/// which an unprivileged user cannot create).
fn nginx_temp_paths(nginx: &Path) -> Vec<&'static str> {
    let v = Command::new(nginx)
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    ["proxy", "fastcgi", "uwsgi", "scgi"]
        .into_iter()
        .filter(|m| !v.contains(&format!("--without-http_{m}_module")))
        .collect()
}

impl Nginx {
    /// Start nginx serving `sites`; `big` writes `/big.bin` of that many bytes (served from
    /// every site's `/big.bin`). Waits until every site accepts connections.
    pub fn start(dir: &Path, sites: &[Site], big: Option<usize>) -> Nginx {
        let nginx = which("nginx").expect("nginx installed (checked by require!)");
        let dir = dir.join("nginx");
        let www = dir.join("www");
        std::fs::create_dir_all(&www).expect("nginx dirs");
        if let Some(n) = big {
            write_pattern(&www.join("big.bin"), n);
        }
        let d = dir.display();
        let mut conf = format!(
            "master_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 512; }}\nhttp {{\n  access_log off;\n  \
             default_type text/plain;\n  keepalive_timeout 10s;\n  \
             client_body_temp_path {d}/body;\n"
        );
        for m in nginx_temp_paths(&nginx) {
            conf += &format!("  {m}_temp_path {d}/{m};\n");
        }
        for s in sites {
            let pp = if s.proxy_protocol {
                " proxy_protocol"
            } else {
                ""
            };
            conf += &format!(
                "  server {{\n    listen {}{pp};\n    root {};\n    \
                 location = /big.bin {{ }}\n    location / {{ return 200 \"{}\"; }}\n  }}\n",
                s.addr,
                www.display(),
                s.body
            );
        }
        conf += "}\n";
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let mut cmd = Command::new(&nginx);
        cmd.arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut n = Nginx {
            proc: Proc::spawn("nginx", cmd),
            dir,
        };
        for s in sites {
            let up = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
                n.proc.try_status().is_some()
                    || TcpStream::connect_timeout(&s.addr, Duration::from_millis(200)).is_ok()
            });
            assert!(
                up && n.proc.try_status().is_none(),
                "nginx did not come up on {}: {}",
                s.addr,
                std::fs::read_to_string(n.dir.join("error.log")).unwrap_or_default()
            );
        }
        n
    }
}

/// Write `n` bytes of a fixed non-repeating-per-block pattern (so a truncated or reordered
/// download would be noticed by size and content).
pub fn write_pattern(path: &Path, n: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create big file"));
    let mut block = [0u8; 4096];
    let mut left = n;
    let mut i: u32 = 0;
    while left > 0 {
        for (j, b) in block.iter_mut().enumerate() {
            *b = (i.wrapping_mul(31).wrapping_add(j as u32) % 251) as u8;
        }
        let k = left.min(block.len());
        f.write_all(&block[..k]).expect("write big file");
        left -= k;
        i += 1;
    }
    f.flush().expect("flush big file");
}

/// Run curl (`-sS --max-time 20` added); returns its output.
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

/// A background curl (e.g. a long download), killed on drop if still running.
pub struct Download {
    proc: Proc,
    out: PathBuf,
}

impl Download {
    /// Start `curl -sS -o BODY -w '%{http_code} %{size_download}' args` writing its report
    /// to `out` and the body to `body` (or /dev/null).
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

/// One `-Lnc` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnLine {
    /// `TCP` / `UDP`.
    pub proto: String,
    /// Seconds until expiry.
    pub expires: u32,
    /// IPVS state name.
    pub state: String,
    /// Client.
    pub source: String,
    /// Virtual service.
    pub virt: String,
    /// Real server.
    pub dest: String,
}

/// Parse `rvsadm -Lnc` output (header lines skipped; `mm:ss` expiry to seconds).
pub fn parse_conns(out: &str) -> Vec<ConnLine> {
    out.lines()
        .filter(|l| !l.starts_with("IPVS connection entries") && !l.starts_with("pro "))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 {
                return None;
            }
            let (m, s) = f[1].split_once(':')?;
            Some(ConnLine {
                proto: f[0].to_string(),
                expires: m.parse::<u32>().ok()? * 60 + s.parse::<u32>().ok()?,
                state: f[2].to_string(),
                source: f[3].to_string(),
                virt: f[4].to_string(),
                dest: f[5].to_string(),
            })
        })
        .collect()
}

/// One line of `--stats --exact -n`: address and the five counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatLine {
    /// `TCP  vip:port` lines have `is_service`; `  -> rip:port` lines not.
    pub is_service: bool,
    /// Address:port.
    pub addr: String,
    /// Conns, InPkts, OutPkts, InBytes, OutBytes.
    pub n: [u64; 5],
}

/// Parse `rvsadm -Ln --stats --exact` output.
pub fn parse_stats(out: &str) -> Vec<StatLine> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (is_service, addr, rest) = match f.as_slice() {
                ["->", addr, rest @ ..] if rest.len() == 5 => (false, *addr, rest),
                [proto, addr, rest @ ..]
                    if rest.len() == 5 && ["TCP", "UDP", "FWM"].contains(proto) =>
                {
                    (true, *addr, rest)
                }
                _ => return None,
            };
            let mut n = [0u64; 5];
            for (i, v) in rest.iter().enumerate() {
                n[i] = v.parse().ok()?;
            }
            Some(StatLine {
                is_service,
                addr: addr.to_string(),
                n,
            })
        })
        .collect()
}

/// The stats line for `addr` (service or real server), panicking with the listing if absent.
pub fn stat<'a>(lines: &'a [StatLine], addr: &str, service: bool) -> &'a StatLine {
    lines
        .iter()
        .find(|l| l.addr == addr && l.is_service == service)
        .unwrap_or_else(|| panic!("no stats line for {addr} in {lines:?}"))
}
