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

/// Run `rvsd -t -f path`, killed (and the test failed) if still running after 60 s: the
/// unbounded reads these tests guard against ran for hours.
fn rvsd_t_path(path: &std::path::Path) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["-t", "-f"])
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rvsd -t -f {} still running after 60 s", path.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Each file includes the next one twice, 30 deep (2^30 reads unbounded): stopped at the
/// included-files budget with the place and the include line.
#[test]
fn include_bomb_is_refused_promptly() {
    let dir = std::env::temp_dir().join(format!("rvsd-t-{}-bomb", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..30 {
        let line = format!("include f{}.conf\n", i + 1);
        std::fs::write(dir.join(format!("f{i}.conf")), line.repeat(2)).unwrap();
    }
    std::fs::write(dir.join("f30.conf"), "global_defs {\n}\n").unwrap();
    let (code, text) = rvsd_t_path(&dir.join("f0.conf"));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 4, "{text}");
    assert!(
        text.contains(
            "error: configuration exceeds its budget: more than 10000 files read by include lines"
        ),
        "{text}"
    );
    assert!(
        text.contains(".conf:1:1: error:") || text.contains(".conf:2:1: error:"),
        "{text}"
    );
    assert!(text.contains("| include f"), "{text}");
    assert!(text.contains("cannot run"), "{text}");
}

/// Three nested `~SEQ` of 100 000 values each (10^15 unbounded): stopped at the budget of
/// values, at the line that holds them.
#[test]
fn nested_seq_bomb_is_refused_promptly() {
    let (code, text) = rvsd_t(
        "seqbomb",
        "global_defs {\n}\n~SEQ(A, 1, 100000) ~SEQ(B, 1, 100000) ~SEQ(C, 1, 100000) real_server 10.0.0.$A 80\n",
    );
    assert_eq!(code, 4, "{text}");
    assert!(text.contains("keepalived.conf:3:1: error: configuration exceeds its budget: more than 250000 ~SEQ/~LST values"), "{text}");
    assert!(text.contains("| ~SEQ(A, 1, 100000)"), "{text}");
}

/// Keywords rvs parses but rvsd does not act on are each named with file:line:col by `-t`;
/// the exit status stays keepalived's (0 for this file).
#[test]
fn keywords_parsed_but_not_acted_on_are_warned_about() {
    let (code, text) = rvsd_t(
        "ignored",
        "global_defs {\n  smtp_server 127.0.0.1\n  vrrp_startup_delay 5\n}\n\
         static_routes {\n  10.9.0.0/16 via 127.0.0.1 dev lo\n}\n\
         static_ipaddress {\n  10.9.9.9/32 dev lo\n}\n\
         virtual_server 10.0.0.1 80 {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  smtp_alert\n\
           real_server 192.168.1.1 80 {\n    TCP_CHECK {\n      connect_timeout 3\n    }\n  }\n}\n",
    );
    for (kw, at) in [
        (
            "smtp_server",
            "keepalived.conf:2:3: warning: `smtp_server` (in global_defs)",
        ),
        (
            "vrrp_startup_delay",
            "keepalived.conf:3:3: warning: `vrrp_startup_delay` (in global_defs)",
        ),
        (
            "smtp_alert",
            "keepalived.conf:15:3: warning: `smtp_alert` (in virtual_server)",
        ),
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(at) && l.ends_with("is parsed but not acted on by rvsd")),
            "no warning for {kw} ({at}):\n{text}"
        );
    }
    // rvsd installs static addresses and routes (keepalived/netconf.rs): no warning.
    for kw in ["static_routes", "static_ipaddress"] {
        assert!(
            !text.contains(&format!("`{kw}`")),
            "{kw} is acted on:\n{text}"
        );
    }
    assert!(
        text.contains("3 keyword(s) parsed but not acted on by rvsd"),
        "{text}"
    );
    assert_eq!(code, 0, "{text}");
}

/// keepalived 2.2.7's `-t` exits 5 for a VRRP instance on an interface that does not exist
/// and for one without `virtual_router_id` (its least severe message decides), although its
/// daemon refuses to run either: rvsd -t exits 5 too and its verdict says it will not start.
/// Compared with the real keepalived (installed by CI).
#[test]
fn vrrp_problems_that_stop_the_daemon_exit_like_keepalived() {
    let cases = [
        (
            "noif",
            "vrrp_instance V {\n interface rvs-nosuch9\n virtual_router_id 51\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n",
        ),
        (
            "novrid",
            "vrrp_instance V {\n interface lo\n priority 100\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n",
        ),
    ];
    for (name, conf) in cases {
        let (code, text) = rvsd_t(name, conf);
        assert_eq!(code, 5, "{name}: {text}");
        assert!(text.contains("rvsd will not start"), "{name}: {text}");
    }
    rvs_require::require_tools!("keepalived", "timeout");
    let dir = std::env::temp_dir().join(format!("rvsd-t-ka-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, conf) in cases {
        let path = dir.join(format!("{name}.conf"));
        std::fs::write(&path, conf).unwrap();
        let mut c = Command::new("timeout");
        c.arg("20").arg("keepalived").arg("-t").arg("-f").arg(&path);
        for (flag, pid) in [("-p", "p"), ("-r", "r"), ("-c", "c"), ("-b", "b")] {
            c.arg(flag).arg(dir.join(format!("{name}.{pid}.pid")));
        }
        let out = c.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(5),
            "{name}: keepalived: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
