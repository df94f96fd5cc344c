//! rvsd as a real process, driven with rvsadm's own code over its control socket.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use rvs_lab::Netns;
use rvsadm::app::{App, SocketBackend};
use rvsadm::names::SystemNames;

use crate::listing::parse_dests;
use crate::packet_path::{self, Forwards, PacketPath};
use crate::proc::{run_bounded, Proc};
use crate::wait::{wait_for, wait_until};

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
///
/// # Panics
/// If it does not finish within 20 s.
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
            out: String::from_utf8_lossy(&out).into_owned(),
            err: String::from_utf8_lossy(&err).into_owned(),
        });
    });
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{shown:?} did not finish within 20 s"))
}

/// Run the `rvsadm` binary `bin` with `--socket socket` (bounded to 20 s).
pub fn rvsadm_exe(bin: &Path, socket: &Path, args: &[&str], stdin: &str) -> Adm {
    let mut c = Command::new(bin);
    c.arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("RVS_SOCKET");
    run_bounded("rvsadm", c, stdin, Duration::from_secs(20))
}

/// Waits (≤ 10 s) until the packet plane of an rvsd in `ns` caught up with its table: the nft
/// guard (`table netdev rvs`) lists `vip` and the kernel resolved every real server's MAC.
/// rvsadm returns only once rvsd applied a change, so this should hold at once.
///
/// # Panics
/// If it does not.
pub fn wait_plane_ready(ns: &Netns, vip: &str, rips: &[String]) {
    for _ in 0..100 {
        let guard = ns
            .cmd("nft")
            .args(["list", "table", "netdev", "rvs"])
            .run()
            .unwrap_or_default();
        let neigh = ns.cmd("ip").args(["neigh"]).run().unwrap_or_default();
        let resolved = rips.iter().all(|r| {
            neigh
                .lines()
                .any(|l| l.starts_with(&format!("{r} ")) && l.contains("lladdr"))
        });
        if guard.contains(vip) && resolved {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("rvsd did not apply the table to the guard / neighbours within 10 s");
}

/// A running rvsd with its control socket and log in a test directory. Killed (with its
/// process group) on drop; its log is printed when the test panics.
pub struct Rvsd {
    proc: Proc,
    /// Control socket.
    pub socket: PathBuf,
    /// Its stderr (tracing log).
    pub log: PathBuf,
    /// The keepalived.conf it runs (`-f`), if started with [`Rvsd::keepalived`].
    pub conf: Option<PathBuf>,
    /// Its packet plane's mode (`None`: started without `--interface`).
    path: Option<PacketPath>,
}

impl Rvsd {
    /// Start the rvsd binary `bin` on the host, see [`Rvsd::start_in`].
    pub fn start(bin: &str, dir: &Path, args: &[&str]) -> Rvsd {
        Rvsd::start_in(bin, None, dir, args)
    }

    /// Start the rvsd binary `bin` (tests pass `env!("CARGO_BIN_EXE_rvsd")`) in `ns` (`None`:
    /// the host) with `--socket DIR/rvsd.sock` and, unless `args` set them,
    /// `--metrics-listen off --workers 1` (and `--proxy-splice $RVS_TEST_PROXY_SPLICE
    /// --proxy-splice-after ${RVS_TEST_PROXY_SPLICE_AFTER:-0}` when set; with `--interface`
    /// and no `--xdp`, the packet-plane mode `RVS_TEST_XDP` asks for, see [`crate::packet_path`]);
    /// its stderr goes to `DIR/rvsd.log`. Waits (≤ 20 s)
    /// until it answers rvsadm.
    ///
    /// # Panics
    /// If it does not come up (the log is in the message).
    pub fn start_in(bin: &str, ns: Option<&Netns>, dir: &Path, args: &[&str]) -> Rvsd {
        Rvsd::spawn(bin, ns, dir, args, None)
    }

    /// Write `conf` to `DIR/keepalived.conf` and start `rvsd -f` on it (on the host) with
    /// `extra` arguments, see [`Rvsd::start_in`].
    pub fn keepalived(bin: &str, dir: &Path, conf: &str, extra: &[&str]) -> Rvsd {
        Rvsd::keepalived_in(bin, None, dir, conf, extra)
    }

    /// [`Rvsd::keepalived`] in a namespace.
    pub fn keepalived_in(
        bin: &str,
        ns: Option<&Netns>,
        dir: &Path,
        conf: &str,
        extra: &[&str],
    ) -> Rvsd {
        let path = dir.join("keepalived.conf");
        std::fs::write(&path, conf).expect("write keepalived.conf");
        let p = path.display().to_string();
        let mut args = vec!["-f", p.as_str()];
        args.extend_from_slice(extra);
        Rvsd::spawn(bin, ns, dir, &args, Some(path.clone()))
    }

    fn spawn(
        bin: &str,
        ns: Option<&Netns>,
        dir: &Path,
        args: &[&str],
        conf: Option<PathBuf>,
    ) -> Rvsd {
        let socket = dir.join("rvsd.sock");
        let log = dir.join("rvsd.log");
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.name(), bin]);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("--socket").arg(&socket);
        if !args.contains(&"--metrics-listen") {
            cmd.args(["--metrics-listen", "off"]);
        }
        if !args.contains(&"--workers") {
            cmd.args(["--workers", "1"]);
        }
        // The proxy e2e tests run once as they are (splicing off, the default) and once with
        // kernel splicing on (scripts/test sets RVS_TEST_PROXY_SPLICE=on): both relays covered.
        // Spliced from the connect (`--proxy-splice-after 0`, or RVS_TEST_PROXY_SPLICE_AFTER),
        // so that the tests' short flows take the kernel path too.
        if let Ok(mode) = std::env::var("RVS_TEST_PROXY_SPLICE") {
            if !args.contains(&"--proxy-splice") {
                cmd.args(["--proxy-splice", &mode]);
            }
            if !args.contains(&"--proxy-splice-after") {
                let after = std::env::var("RVS_TEST_PROXY_SPLICE_AFTER");
                cmd.args(["--proxy-splice-after", after.as_deref().unwrap_or("0")]);
            }
        }
        // The packet-plane tests run once on AF_PACKET and once with the XDP fast path
        // (scripts/test sets RVS_TEST_XDP=generic); a test that passed `--xdp` keeps it.
        let mode = packet_path::rvsd_args(args);
        let all: Vec<&str> = args.iter().chain(mode).copied().collect();
        cmd.args(&all)
            .env_remove("RVS_SOCKET")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("rvsd log file"));
        let mut r = Rvsd {
            proc: Proc::spawn("rvsd", cmd),
            socket,
            log,
            conf,
            path: PacketPath::of(&all),
        };
        let up = wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
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

    /// Whether its packet plane runs the XDP fast path (`--xdp` other than `off`, given by the
    /// test or added for `RVS_TEST_XDP`); false without `--interface`.
    pub fn xdp(&self) -> bool {
        self.path.is_some_and(PacketPath::is_xdp)
    }

    /// Its packet plane's mode, `None` when started without `--interface`.
    pub fn packet_path(&self) -> Option<PacketPath> {
        self.path
    }

    /// Stops rvsd ([`Rvsd::stop`]) and checks its log for the packet-plane mode it ran in
    /// ([`packet_path::check_log`]: the XDP program on each of `ifaces`, what it forwarded as
    /// `forwards` says; no XDP line on AF_PACKET). Returns the log.
    ///
    /// # Panics
    /// If rvsd was started without `--interface`, or the log says otherwise.
    pub fn stop_and_check_mode(&mut self, ifaces: &[&str], forwards: Forwards) -> String {
        let path = self
            .path
            .expect("stop_and_check_mode: rvsd runs no packet plane (no --interface)");
        let log = self.stop();
        packet_path::check_log(path, ifaces, &log, Some(forwards));
        log
    }

    /// rvsadm (library) with these arguments.
    pub fn adm(&self, args: &[&str]) -> Adm {
        rvsadm_lib(&self.socket, args, "")
    }

    /// rvsadm that must succeed without any message on stderr; returns stdout.
    ///
    /// # Panics
    /// If it fails or writes to stderr.
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

    /// One rvsadm command line (split on whitespace, a leading `rvsadm` ignored) that must
    /// exit 0; warnings on stderr are allowed (returned).
    ///
    /// # Panics
    /// If it exits non-zero.
    pub fn line(&self, line: &str) -> Adm {
        let l = line.trim_start();
        let l = l.strip_prefix("rvsadm ").unwrap_or(l);
        let args: Vec<&str> = l.split_whitespace().collect();
        let a = self.adm(&args);
        assert_eq!(a.code, 0, "rvsadm {l}: {}{}", a.out, a.err);
        a
    }

    /// Apply several rvsadm command lines (each split on whitespace, a leading `rvsadm`
    /// ignored); each must succeed.
    pub fn table(&self, lines: &[&str]) {
        for l in lines {
            let l = l.trim_start();
            let l = l.strip_prefix("rvsadm ").unwrap_or(l);
            let args: Vec<&str> = l.split_whitespace().collect();
            self.ok(&args);
        }
    }

    /// `rvsadm -Ln`.
    pub fn listing(&self) -> String {
        self.ok(&["-Ln"])
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

    /// The connection counter of one destination (`rvsadm -Ln --stats`), if listed.
    pub fn conns(&self, dest: SocketAddr) -> Option<u64> {
        let out = self.ok(&["-Ln", "--stats"]);
        let d = dest.to_string();
        out.lines().find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 3 && w[0] == "->" && w[1] == d)
                .then(|| w[2].parse().ok())
                .flatten()
        })
    }

    /// `Conns InPkts OutPkts` of the service line of `rvsadm -L -n --stats` starting with
    /// `prefix` (e.g. `TCP  10.100.0.1:80`), read at once in both modes: with the XDP fast
    /// path rvsd brings the program's counters in before it answers, so every packet forwarded
    /// before the call is counted, as in AF_PACKET mode.
    ///
    /// # Panics
    /// If there is no such line.
    pub fn service_stats(&self, prefix: &str) -> (u64, u64, u64) {
        let out = self.ok(&["-L", "-n", "--stats"]);
        let line = out
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in\n{out}"));
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(2)
            .take(3)
            .map(|x| x.parse().unwrap_or_else(|_| panic!("{line}")))
            .collect();
        (f[0], f[1], f[2])
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait (≤ `limit`) for a line in the log containing `needle`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        wait_for(limit, || self.log_text().contains(needle)).is_some()
    }

    /// Replace the keepalived.conf (atomically) and send SIGHUP.
    ///
    /// # Panics
    /// If rvsd was not started with [`Rvsd::keepalived`].
    pub fn reload(&self, conf: &str) {
        let path = self.conf.as_ref().expect("rvsd runs a keepalived.conf");
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, conf).expect("write keepalived.conf");
        std::fs::rename(&tmp, path).expect("replace keepalived.conf");
        self.signal(Signal::SIGHUP);
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
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

    /// SIGTERM (the daemon's orderly shutdown: drain, remove what it installed), then wait
    /// (≤ 20 s); returns the log.
    pub fn stop(&mut self) -> String {
        if self.running() {
            self.signal(Signal::SIGTERM);
            if self.wait_exit(Duration::from_secs(20)).is_none() {
                return format!("rvsd did not stop within 20 s\n{}", self.log_text());
            }
        }
        self.log_text()
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- rvsd log ----\n{}------------------", self.log_text());
        }
    }
}
