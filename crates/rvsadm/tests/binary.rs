//! The built `rvsadm` binary: the "rvsd is not running" line, and a real conversation over a
//! Unix socket with a test server that speaks rvs-control.

mod common;
use common::MemTable;
use rvs_control::*;
use rvsadm::app::Backend;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rvsadm-test-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rvsadm(args: &[&str], env_socket: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rvsadm"));
    c.args(args)
        .env_remove("RVS_SOCKET")
        .stdin(std::process::Stdio::null());
    if let Some(p) = env_socket {
        c.env("RVS_SOCKET", p);
    }
    c.output().unwrap()
}

#[test]
fn daemon_not_running_is_one_line_and_exit_2() {
    let dir = tmpdir("absent");
    let sock = dir.join("rvsd.sock");
    for args in [&["-Ln"][..], &["-A", "-t", "10.0.0.1:80"], &[]] {
        let out = rvsadm(args, Some(&sock));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(sock.to_str().unwrap()), "{err}");
        assert!(err.contains("rvsd"), "{err}");
    }
    // --socket overrides RVS_SOCKET, anywhere on the line.
    let other = dir.join("other.sock");
    let out = rvsadm(
        &["-L", "--socket", other.to_str().unwrap(), "-n"],
        Some(&sock),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("other.sock") && !err.contains("rvsd.sock"),
        "{err}"
    );
    // A socket file nobody listens on is the same situation.
    drop(UnixListener::bind(&sock).unwrap());
    let out = rvsadm(&["-Ln"], Some(&sock));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8(out.stderr).unwrap().lines().count(), 1);
    // Command lines that need no daemon still work without one.
    let out = rvsadm(&["-v"], Some(&sock));
    assert_eq!(out.status.code(), Some(0));
    let out = rvsadm(&["-A", "-t", "10.0.0.1:0"], Some(&sock));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "Zero port specified for non-persistent service\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Serves `conns` connections (bounded, with a deadline) from a shared in-memory table.
fn serve(
    listener: UnixListener,
    table: Arc<Mutex<MemTable>>,
    conns: usize,
) -> std::thread::JoinHandle<()> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut served = 0;
        while served < conns && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    while let Ok(Some(req)) = read_frame::<Request, _>(&mut s) {
                        let resp = table.lock().unwrap().call(&req).unwrap();
                        if write_frame(&mut s, &resp).is_err() {
                            break;
                        }
                    }
                    served += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    })
}

#[test]
fn talks_to_a_server_over_the_socket() {
    let dir = tmpdir("live");
    let sock = dir.join("rvsd.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let table = Arc::new(Mutex::new(MemTable::with(vec![])));
    table.lock().unwrap().warnings = vec![];
    let h = serve(listener, table.clone(), 5);

    let ok = |args: &[&str]| {
        let out = rvsadm(args, Some(&sock));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    ok(&["-A", "-t", "10.0.0.1:80", "-s", "rr"]);
    ok(&[
        "-a",
        "-t",
        "10.0.0.1:80",
        "-r",
        "10.1.1.1:8080",
        "-m",
        "-w",
        "3",
    ]);
    assert_eq!(
        ok(&["-Ln"]),
        concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  10.0.0.1:80 rr\n",
            "  -> 10.1.1.1:8080                Masq    3      0          0         \n",
        )
    );
    assert_eq!(
        ok(&["-Sn"]),
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.1.1:8080 -m -w 3\n"
    );
    let out = rvsadm(&["-A", "-t", "10.0.0.1:80"], Some(&sock));
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "Service already exists\n"
    );
    h.join().unwrap();
    // Every conversation began with the handshake.
    let reqs = &table.lock().unwrap().requests;
    assert_eq!(
        reqs.iter()
            .filter(|r| matches!(
                r,
                Request::Hello {
                    protocol: PROTOCOL_VERSION,
                    ..
                }
            ))
            .count(),
        5
    );
    let _ = std::fs::remove_dir_all(&dir);
}
