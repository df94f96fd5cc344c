//! rvsd under a service manager: a Unix datagram socket stands in for systemd's notify socket
//! (`$NOTIFY_SOCKET`, a path or an abstract name) and receives what a real rvsd sends —
//! `READY=1` only once the table is served, `STATUS=` lines, `WATCHDOG=1` keep-alives when
//! `$WATCHDOG_USEC` asks for them (and none otherwise), `RELOADING=1`/`READY=1` around SIGHUP,
//! `STOPPING=1` on SIGTERM. Also: the capabilities the running daemon keeps, thread by thread.
//!
//! Addresses: 127.77.60.0/24 and 127.77.61.0/24.

mod common;

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

/// Every datagram received within `limit`, until `stop` says so (bounded in time).
fn collect(
    sock: &UnixDatagram,
    limit: Duration,
    mut stop: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let end = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while Instant::now() < end {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = stop(&m);
            got.push(m);
            if done {
                break;
            }
        }
    }
    got
}

fn has_line(msgs: &[String], line: &str) -> bool {
    msgs.iter().any(|m| m.lines().any(|l| l == line))
}

fn start(dir: &Path, notify: &str, watchdog_usec: Option<&str>, rules: &str) -> Proc {
    let rules_path = dir.join("rules");
    std::fs::write(&rules_path, rules).expect("rules file");
    let mut cmd = Command::new(RVSD);
    cmd.arg("--socket")
        .arg(dir.join("rvsd.sock"))
        .args([
            "--metrics-listen",
            "off",
            "--workers",
            "1",
            "--drain-time",
            "1",
        ])
        .arg("--rules")
        .arg(&rules_path)
        .env_remove("RVS_SOCKET")
        .env_remove("WATCHDOG_PID")
        .env("NOTIFY_SOCKET", notify)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("rvsd.log")).expect("log"));
    match watchdog_usec {
        Some(u) => cmd.env("WATCHDOG_USEC", u),
        None => cmd.env_remove("WATCHDOG_USEC"),
    };
    Proc::spawn("rvsd", cmd)
}

#[test]
fn ready_status_watchdog_reload_stop_on_a_path_socket() {
    let dir = tempdir("notify-path");
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    let rules = "-A -t 127.77.60.1:8080 -s rr\n\
                 -a -t 127.77.60.1:8080 -r 127.77.60.11:8080 -m\n\
                 -a -t 127.77.60.1:8080 -r 127.77.60.12:8080 -m\n";
    let mut p = start(dir.path(), path.to_str().unwrap(), Some("400000"), rules);
    let log = || std::fs::read_to_string(dir.path().join("rvsd.log")).unwrap_or_default();

    // READY=1 comes with a status line, and only once the table is in and rvsadm is answered.
    let msgs = collect(&sock, Duration::from_secs(20), |m| {
        m.lines().any(|l| l == "READY=1")
    });
    assert!(
        has_line(&msgs, "READY=1"),
        "no READY=1: {msgs:?}\n{}",
        log()
    );
    let ready = msgs.last().unwrap();
    assert!(
        ready.contains("STATUS=1 service(s), 2 real server(s)"),
        "{ready:?}"
    );
    let l = rvsadm_lib(&dir.path().join("rvsd.sock"), &["-Ln"], "");
    assert_eq!(l.code, 0, "{l:?}");
    assert!(l.out.contains("127.77.60.11:8080"), "{}", l.out);

    // WATCHDOG_USEC=400 ms: a keep-alive every 200 ms, so well over three in 1.5 s.
    let msgs = collect(&sock, Duration::from_millis(1500), |_| false);
    let pings = msgs.iter().filter(|m| m.as_str() == "WATCHDOG=1").count();
    assert!(pings >= 3, "{pings} WATCHDOG=1 in 1.5 s: {msgs:?}");

    // SIGHUP: RELOADING=1, then READY=1 with the status of the re-read table.
    std::fs::write(
        dir.path().join("rules"),
        "-A -t 127.77.60.1:8080 -s rr\n-a -t 127.77.60.1:8080 -r 127.77.60.11:8080 -m\n",
    )
    .unwrap();
    p.signal(Signal::SIGHUP);
    let msgs = collect(&sock, Duration::from_secs(10), |m| {
        m.lines().any(|l| l == "READY=1")
    });
    let reloading = msgs
        .iter()
        .position(|m| m.lines().any(|l| l == "RELOADING=1"));
    let ready = msgs.iter().position(|m| m.lines().any(|l| l == "READY=1"));
    assert!(
        matches!((reloading, ready), (Some(a), Some(b)) if a < b),
        "{msgs:?}"
    );
    assert!(
        msgs[ready.unwrap()].contains("STATUS=1 service(s), 1 real server(s)"),
        "{msgs:?}"
    );

    // SIGTERM: STOPPING=1 with a status saying it drains, then a clean exit.
    p.signal(Signal::SIGTERM);
    let msgs = collect(&sock, Duration::from_secs(10), |m| {
        m.lines().any(|l| l == "STOPPING=1")
    });
    let stopping = msgs
        .iter()
        .find(|m| m.lines().any(|l| l == "STOPPING=1"))
        .unwrap_or_else(|| panic!("no STOPPING=1: {msgs:?}"));
    assert!(stopping.contains("STATUS=draining"), "{stopping:?}");
    let st = p.wait_timeout(Duration::from_secs(15));
    assert!(st.is_some_and(|s| s.success()), "exit {st:?}\n{}", log());
}

#[test]
fn abstract_socket_and_no_watchdog_unless_asked() {
    let dir = tempdir("notify-abstract");
    let name = format!("rvs-test-notify-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).expect("bind the abstract socket");
    let mut p = start(
        dir.path(),
        &format!("@{name}"),
        None,
        "-A -t 127.77.61.1:8080\n",
    );
    let msgs = collect(&sock, Duration::from_secs(20), |m| {
        m.lines().any(|l| l == "READY=1")
    });
    assert!(has_line(&msgs, "READY=1"), "{msgs:?}");
    // Without WATCHDOG_USEC, no keep-alives.
    let msgs = collect(&sock, Duration::from_millis(1200), |_| false);
    assert!(!has_line(&msgs, "WATCHDOG=1"), "{msgs:?}");
    p.signal(Signal::SIGTERM);
    let st = p.wait_timeout(Duration::from_secs(15));
    assert!(st.is_some_and(|s| s.success()), "exit {st:?}");
}

/// `CapXxx:` of a `/proc/.../status` file.
fn cap_field(status: &str, field: &str) -> u64 {
    let v = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    u64::from_str_radix(v.trim(), 16).expect("hex capability set")
}

#[test]
fn the_running_daemon_keeps_only_the_capabilities_it_needs() {
    // Unprivileged, rvsd has no capabilities to drop.
    rvs_require::require_root!();
    let dir = tempdir("caps");
    let d = common::start_rvsd(dir.path(), &["--workers", "2"]);
    d.table(&["-A -t 127.77.61.2:8080"]);
    let pid = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| {
            std::fs::read_to_string(e.path().join("cmdline"))
                .map(|c| c.contains(d.socket.to_str().unwrap()) && c.contains("rvsd"))
                .unwrap_or(false)
        })
        .expect("rvsd's /proc entry")
        .path();
    let keep = ::rvsd::capabilities::KEEP.bits();
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let mut threads = 0;
    for t in std::fs::read_dir(pid.join("task")).unwrap() {
        let s = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        assert_eq!(cap_field(&s, "CapEff:"), keep, "{s}");
        assert_eq!(cap_field(&s, "CapPrm:"), keep, "{s}");
        assert_eq!(cap_field(&s, "CapInh:") & !keep, 0, "{s}");
        // The bounding set is the service manager's to narrow (scripts get it back).
        assert_eq!(cap_field(&s, "CapBnd:"), cap_field(&own, "CapBnd:"), "{s}");
        threads += 1;
    }
    // The runtime plus the proxy workers: the later threads were checked too.
    assert!(threads >= 3, "{threads} threads");
    assert!(
        d.log_text().contains("capabilities: dropped")
            && d.log_text().contains("kept cap_dac_read_search"),
        "{}",
        d.log_text()
    );
}
