//! `rvsd -f` with a configuration it cannot run exits non-zero at once and names the file,
//! line, column and text (DESIGN: errors), instead of starting with nothing.

use std::process::Command;
use std::time::Duration;

#[test]
fn a_file_that_cannot_run_is_refused_with_its_position() {
    let dir = std::env::temp_dir().join(format!("rvsd-kconf-start-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("keepalived.conf");
    // Line 4: `weight` without its value (keepalived exits 2 on this too).
    std::fs::write(
        &conf,
        "virtual_server 127.0.29.1 8080 {\n  protocol TCP\n  real_server 127.0.29.11 8081 {\n    weight\n  }\n}\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("-f")
        .arg(&conf)
        .arg("--socket")
        .arg(dir.join("s.sock"))
        .args(["--metrics-listen", "off", "--workers", "1"])
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a daemon that started anyway is killed and the test fails.
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if status.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.is_some(),
        "rvsd kept running with a broken file:\n{err}"
    );
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("keepalived.conf:4:"), "{err}");
    assert!(err.contains("weight"), "{err}");
}
