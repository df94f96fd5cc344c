//! The hand-written negative cases of docs/internals/keepalived.md, one named row each: the message
//! rvs gives, where, and the `-t` exit status. `keepalived` is what 2.2.7 printed
//! and returned for the same file (observed); where rvs differs the
//! row says why (also in docs/keepalived-differences.md).

use rvs_config::{check, check_str, CheckOptions, ErrorClass, Report};

struct Case {
    name: &'static str,
    conf: &'static str,
    /// Every one of these must be a message (exactly) of some diagnostic.
    messages: &'static [&'static str],
    /// (line, col) of the first expected message, if it has a position.
    at: Option<(u32, u32)>,
    exit: i32,
    /// keepalived 2.2.7's exit status for the same file.
    keepalived_exit: i32,
    why_different: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "unknown top-level keyword",
        conf: "foo_bar 1\n",
        messages: &["Unknown keyword 'foo_bar'"],
        at: Some((1, 1)),
        exit: 5,
        keepalived_exit: 5,
        why_different: "keepalived prints the line 4 times (one per process); rvs once",
    },
    Case {
        name: "unknown keyword with a block inside virtual_server",
        conf: "virtual_server 10.0.0.1 80 {\n    protocol TCP\n    lb_algo rr\n    lb_kind NAT\n    bogus_kw { a 1 }\n    real_server 10.0.0.2 80 {\n        TCP_CHECK {\n            connect_timeout 3\n        }\n    }\n}\n",
        messages: &["Unknown keyword 'bogus_kw' (its block is skipped)"],
        at: Some((5, 5)),
        exit: 5,
        keepalived_exit: 5,
        why_different: "keepalived's '}' of the unknown block closes the virtual_server, so the real \
                        server becomes top-level garbage and the VS is dropped; rvs skips the unknown \
                        block and keeps the real server (asserted below)",
    },
    Case {
        name: "missing '}' at end of file",
        conf: "global_defs {\n    router_id A\n",
        messages: &["There are 1 missing '}'s or extra '{'s"],
        at: Some((1, 13)),
        exit: 5,
        keepalived_exit: 5,
        why_different: "",
    },
    Case {
        name: "extra '}'",
        conf: "global_defs {\n    router_id A\n}\n}\n",
        messages: &["Extra '}' found"],
        at: Some((4, 1)),
        exit: 5,
        keepalived_exit: 5,
        why_different: "keepalived also reports Unknown keyword '}'",
    },
    Case {
        name: "missing parameter",
        conf: "vrrp_instance V {\n    interface eth0\n    virtual_router_id\n    priority 100\n    virtual_ipaddress {\n        10.0.0.10\n    }\n}\n",
        messages: &["*** Configuration line starting `virtual_router_id` is missing a parameter after keyword `virtual_router_id` at word position 2"],
        at: Some((3, 5)),
        exit: 2,
        keepalived_exit: 2,
        why_different: "keepalived exits at the first one; rvs reports everything",
    },
    Case {
        name: "priority 300",
        conf: "vrrp_instance V {\n    interface eth0\n    virtual_router_id 7\n    priority 300\n    virtual_ipaddress {\n        10.0.0.10\n    }\n}\n",
        messages: &[
            "number '300' outside range [1, 255]",
            "(V) Priority not valid! must be between 1 & 255. Using default 100",
        ],
        at: Some((4, 14)),
        exit: 5,
        keepalived_exit: 5,
        why_different: "",
    },
    Case {
        name: "VRRP instance without VRID",
        conf: "vrrp_instance V {\n    interface eth0\n    priority 100\n    virtual_ipaddress {\n        10.0.0.10\n    }\n}\n",
        messages: &["(V) the virtual router id must be set"],
        at: Some((1, 1)),
        exit: 5,
        keepalived_exit: 5,
        why_different: "",
    },
    Case {
        name: "virtual server without real servers",
        conf: "virtual_server 10.0.0.1 80 {\n    protocol TCP\n    lb_algo rr\n    lb_kind NAT\n}\n",
        messages: &["Virtual server [10.0.0.1]:tcp:80 has no real servers - ignoring"],
        at: Some((1, 1)),
        exit: 5,
        keepalived_exit: 5,
        why_different: "",
    },
    Case {
        name: "virtual server with only defaults",
        conf: "virtual_server 10.0.0.1 80 {\n    real_server 10.0.0.2 80 {\n        TCP_CHECK {\n            connect_timeout 3\n        }\n    }\n}\n",
        messages: &[
            "Virtual server [10.0.0.1]:none:80: no protocol set - defaulting to UDP",
            "Virtual server [10.0.0.1]:udp:80: no scheduler set, setting default 'wlc'",
            "Virtual server [10.0.0.1]:udp:80: no forwarding method set, setting default NAT",
        ],
        at: Some((1, 1)),
        exit: 5,
        keepalived_exit: 5,
        why_different: "",
    },
    Case {
        name: "invalid scheduler and negative weight",
        conf: "virtual_server 10.0.0.1 80 {\n    protocol TCP\n    lb_algo foo\n    lb_kind NAT\n    real_server 10.0.0.2 80 {\n        weight -1\n    }\n}\n",
        messages: &[
            "Invalid lvs_scheduler 'foo' - ignoring",
            "negative number '-1'",
            "Real server weight -1 is outside range 0-2147483647",
            "Virtual server [10.0.0.1]:tcp:80: no scheduler set, setting default 'wlc'",
        ],
        at: Some((3, 13)),
        exit: 5,
        keepalived_exit: 5,
        why_different: "",
    },
    Case {
        name: "duplicate real server",
        conf: "virtual_server 10.0.0.1 80 {\n    protocol TCP\n    lb_algo rr\n    lb_kind NAT\n    real_server 10.0.0.2 80 {\n    }\n    real_server 10.0.0.2 80 {\n    }\n}\n",
        messages: &["VS [10.0.0.1]:tcp:80: real server [10.0.0.2]:tcp:80 is duplicated - removing second rs"],
        at: Some((7, 5)),
        exit: 5,
        keepalived_exit: 5,
        why_different: "",
    },
    Case {
        name: "quorum and hysteresis clamping",
        conf: "virtual_server 10.0.0.1 80 {\n    protocol TCP\n    lb_algo rr\n    lb_kind DR\n    quorum 5\n    hysteresis 7\n    real_server 10.0.0.2 8080 {\n        weight 2\n    }\n}\n",
        messages: &[
            "Warning - quorum 5 for [10.0.0.1]:tcp:80 exceeds total weight of real servers 2, reducing quorum to 2",
            "Virtual server [10.0.0.1]:tcp:80: hysteresis 7 >= quorum 2; setting hysteresis to 1",
            "WARNING - virtual server [10.0.0.1]:tcp:80 and real server [10.0.0.2]:tcp:8080 ports don't match - resetting",
        ],
        at: Some((1, 1)),
        exit: 5,
        keepalived_exit: 5,
        why_different: "",
    },
    Case {
        name: "ops with TCP and port 0",
        conf: "virtual_server 10.0.0.1 0 {\n    protocol TCP\n    lb_algo rr\n    lb_kind NAT\n    ops\n    real_server 10.0.0.2 80 {\n    }\n}\n",
        messages: &[
            "Virtual server [10.0.0.1]:tcp:0: one packet scheduling requires UDP - resetting",
            "Virtual server [10.0.0.1]:tcp:0: zero port only valid for persistent services - setting",
        ],
        at: Some((1, 1)),
        exit: 5,
        keepalived_exit: 5,
        why_different: "",
    },
    Case {
        name: "case errors: lvs_sched RR, lvs_method dr, tcp_check",
        conf: "virtual_server 10.0.0.1 80 {\n    protocol TCP\n    lvs_sched RR\n    lvs_method dr\n    real_server 10.0.0.2 80 {\n        tcp_check {\n            connect_timeout 3\n        }\n    }\n}\n",
        messages: &[
            "Invalid lvs_scheduler 'RR' - ignoring",
            "PARSER : unknown [dr] routing method for virtual server.",
            "Unknown keyword 'tcp_check' (its block is skipped)",
        ],
        at: Some((3, 15)),
        exit: 5,
        keepalived_exit: 5,
        why_different: "keepalived's tcp_check block also eats the real server's '}'",
    },
    Case {
        name: "HTTP_GET without url",
        conf: "virtual_server 10.0.0.1 80 {\n    protocol TCP\n    lb_algo rr\n    lb_kind NAT\n    real_server 10.0.0.2 80 {\n        HTTP_GET {\n        }\n    }\n}\n",
        messages: &["HTTP/SSL_GET checker has no urls specified - ignoring"],
        at: Some((6, 9)),
        exit: 5,
        keepalived_exit: 139,
        why_different: "keepalived 2.2.7 segfaults after the message; rvs reports and drops the checker",
    },
];

fn run(c: &Case) -> Report {
    check_str(
        format!("{}.conf", c.name.replace(' ', "_")),
        c.conf,
        &CheckOptions {
            config_id: Some("test".into()),
            ..Default::default()
        },
    )
}

#[test]
fn negative_cases_table() {
    let mut failures = Vec::new();
    for c in CASES {
        let r = run(c);
        let got: Vec<&str> = r.diagnostics.iter().map(|d| d.message.as_str()).collect();
        for m in c.messages {
            if !got.contains(m) {
                failures.push(format!("[{}] missing message {m:?}; got {got:?}", c.name));
            }
        }
        if let Some((line, col)) = c.at {
            let d = r.diagnostics.iter().find(|d| d.message == c.messages[0]);
            let pos = d.and_then(|d| d.pos.clone()).map(|p| (p.line, p.col));
            if pos != Some((line, col)) {
                failures.push(format!(
                    "[{}] first message at {pos:?}, want {:?}",
                    c.name,
                    (line, col)
                ));
            }
        }
        if r.exit_status() != c.exit {
            failures.push(format!(
                "[{}] exit {} want {}",
                c.name,
                r.exit_status(),
                c.exit
            ));
        }
        if c.exit != c.keepalived_exit && c.why_different.is_empty() {
            failures.push(format!(
                "[{}] differs from keepalived without a reason",
                c.name
            ));
        }
        // Every diagnostic names a place and the rendered report shows it.
        let out = r.render();
        for d in &r.diagnostics {
            if d.pos.is_none() {
                failures.push(format!("[{}] {:?} has no position", c.name, d.message));
            }
        }
        if !out.contains(&format!("exit status {}", c.exit)) {
            failures.push(format!("[{}] render lacks the exit status: {out}", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unknown_block_does_not_corrupt_the_structure() {
    let c = CASES
        .iter()
        .find(|c| c.name.starts_with("unknown keyword with a block"))
        .expect("case");
    let r = run(c);
    let vs = &r.config.virtual_servers;
    assert_eq!(vs.len(), 1, "the virtual server survives");
    assert_eq!(vs[0].real_servers.len(), 1, "and keeps its real server");
    assert_eq!(vs[0].real_servers[0].checkers.len(), 1);
}

#[test]
fn missing_file_is_an_error_not_success() {
    let r = check("/nonexistent/keepalived.conf", &CheckOptions::default());
    assert_eq!(r.diagnostics.len(), 1);
    assert_eq!(r.diagnostics[0].class, ErrorClass::FileNotFound);
    assert!(r.diagnostics[0]
        .message
        .contains("/nonexistent/keepalived.conf"));
    // keepalived 2.2.7 exits 0 here ("Config files missing"); rvs: cannot run.
    assert_eq!(r.exit_status(), 4);
    assert!(!r.can_run());
}

#[test]
fn missing_parameter_wins_over_everything() {
    let r = check_str(
        "m.conf",
        "foo 1\nvrrp_instance V {\n interface eth0\n virtual_router_id\n}\n",
        &CheckOptions::default(),
    );
    assert_eq!(r.exit_status(), 2);
}

/// The `keepalived_exit` column is a fact about keepalived 2.2.7: when the real
/// program is installed (CI installs Debian's package), check it.
#[test]
fn keepalived_column_matches_the_real_keepalived() {
    rvs_require::require_tools!("keepalived", "timeout");
    let bin = rvs_require::which("keepalived").unwrap();
    let bin = bin.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("rvs-config-kat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let has_eth0 = std::path::Path::new("/sys/class/net/eth0").exists();
    let mut failures = Vec::new();
    let mut ran = 0;
    for (i, c) in CASES.iter().enumerate() {
        if c.conf.contains("interface eth0")
            && !rvs_require::that(
                has_eth0,
                format_args!("[{}] needs an interface named eth0", c.name),
            )
        {
            continue;
        }
        let conf = dir.join(format!("case{i}.conf"));
        std::fs::write(&conf, c.conf).expect("write");
        let pid = |n: &str| dir.join(format!("{n}{i}.pid"));
        // `timeout` bounds the run; a crash is reported as 128+signal (139 = SEGV).
        // No core file from the 2.2.7 crash: `ulimit -c 0` first.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("ulimit -c 0; exec timeout 20 \"$@\"")
            .arg("sh")
            .arg(bin)
            .arg("-t")
            .arg("-f")
            .arg(&conf)
            .arg("-p")
            .arg(pid("p"))
            .arg("-r")
            .arg(pid("r"))
            .arg("-c")
            .arg(pid("c"))
            .arg("-b")
            .arg(pid("b"))
            .output();
        let out = out.unwrap_or_else(|e| panic!("cannot run `timeout {bin}`: {e}"));
        ran += 1;
        // A crash shows as a signal (timeout re-raises the child's signal).
        let rc = {
            use std::os::unix::process::ExitStatusExt;
            out.status
                .code()
                .or_else(|| out.status.signal().map(|s| 128 + s))
                .unwrap_or(-1)
        };
        if rc != c.keepalived_exit {
            failures.push(format!(
                "[{}] keepalived exited {rc}, the table says {}; stderr:\n{}",
                c.name,
                c.keepalived_exit,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("compared {ran} cases with {bin}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
