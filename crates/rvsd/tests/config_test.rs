//! `rvsd -t -f FILE`: keepalived's configuration test, run as a real process.

use std::process::Command;

fn rvsd_t(name: &str, conf: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("rvsd-t-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keepalived.conf");
    std::fs::write(&path, conf).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["-t", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn good_config_exits_0() {
    let (code, text) = rvsd_t(
        "good",
        "virtual_server 10.0.0.1 80 {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  real_server 192.168.1.1 80 {\n    TCP_CHECK {\n      connect_timeout 3\n    }\n  }\n}\n",
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("configuration OK"), "{text}");
}

#[test]
fn unknown_keyword_names_file_line_and_text() {
    let (code, text) = rvsd_t(
        "unknown",
        "virtual_server 10.0.0.1 80 {\n  lb_algo rr\n  protocol TCP\n  frobnicate 7\n}\n",
    );
    assert_eq!(code, 5, "{text}");
    assert!(text.contains("keepalived.conf:4:"), "{text}");
    assert!(text.contains("frobnicate"), "{text}");
}

#[test]
fn missing_file_is_an_error_not_success() {
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["-t", "-f", "/nonexistent/rvs/keepalived.conf"])
        .output()
        .unwrap();
    // keepalived exits 0 here; rvsd says the file is missing and exits 4 ("cannot run").
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/rvs/keepalived.conf"));
}
