//! `rvsd -f keepalived.conf` end to end on loopback with nginx real servers (issue 5
//! acceptance): HTTP_GET and TCP_CHECK take a stopped server out of `rvsadm -Ln` within
//! `delay_loop × (retry + 1) + connect_timeout` and bring it back; `inhibit_on_failure` sets
//! weight 0 instead; losing quorum brings in the sorry server; MISC_CHECK `misc_dynamic`
//! changes the weight.
//!
//! Each test has its own VIP (127.0.2x.1) and ports, so they run in parallel. Measurements are
//! printed (`cargo test -- --nocapture` shows them).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// delay_loop 1, retry 1, connect_timeout 1 (delay_before_retry 1, warmup 0): the bound on
/// leaving the table is delay_loop × (retry + 1) + connect_timeout = 3 s.
const TIMING: &str = "connect_timeout 1\n      retry 1\n      delay_before_retry 1\n      warmup 0";
const BOUND: Duration = Duration::from_secs(3);
/// Polling the listing every 50 ms and process scheduling on a loaded 2-core CI box.
const SLACK: Duration = Duration::from_millis(500);

fn pair_conf(vip: &str, rs: [&str; 2], checker: &str, extra_vs: &str) -> String {
    let v: SocketAddr = vip.parse().unwrap();
    let mut s = format!(
        "virtual_server {} {} {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n{extra_vs}",
        v.ip(),
        v.port()
    );
    for r in rs {
        let a: SocketAddr = r.parse().unwrap();
        s.push_str(&format!(
            "  real_server {} {} {{\n    weight 1\n    {checker} {{\n      {}\n    }}\n  }}\n",
            a.ip(),
            a.port(),
            checker_body(checker)
        ));
    }
    s.push_str("}\n");
    s
}

fn checker_body(checker: &str) -> String {
    match checker {
        "HTTP_GET" => format!(
            "url {{\n        path /health\n        status_code 200\n      }}\n      {TIMING}"
        ),
        _ => TIMING.to_string(),
    }
}

/// Stop one of two real servers under client load; it must leave `-Ln` within the bound,
/// and come back when restarted. Prints the time taken and the failed client requests.
/// With `fifo`, the configuration also has `lvs_notify_fifo` and the test reads the
/// real server's DOWN and UP lines from it.
fn leave_and_return(test: &str, checker: &str, vip: &str, rs: [&str; 2], fifo: bool) {
    let dir = tempdir(test);
    let mut a = start_nginx(dir.path(), &[Site::new(sa(rs[0]), "A\n")], None);
    let _b = start_nginx(dir.path(), &[Site::new(sa(rs[1]), "B\n")], None);
    let fifo_path = dir.path().join("notify.fifo");
    let mut conf = pair_conf(vip, rs, checker, "");
    if fifo {
        conf = format!(
            "global_defs {{\n  lvs_notify_fifo {}\n}}\n{conf}",
            fifo_path.display()
        );
    }
    let d = start_keepalived(dir.path(), &conf, &[]);
    let lines = fifo.then(|| {
        // rvsd created the FIFO at start-up and holds it open, so this open does not block;
        // the reader ends at EOF when rvsd exits.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let f = std::fs::File::open(&fifo_path).expect("rvsd created the FIFO");
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(f).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        rx
    });
    assert!(
        wait_for(Duration::from_secs(10), || d.dests().len() == 2).is_some(),
        "both real servers installed:\n{}\n{}",
        d.listing(),
        d.log_text()
    );
    let url = format!("http://{vip}/");
    assert!(curl_get(&url).is_some(), "VIP serves");
    // Let the checkers settle into their delay_loop rhythm (first check after 1 s).
    std::thread::sleep(Duration::from_millis(1500));

    let clients = ClientLoop::start(&url, 2000);
    let t0 = Instant::now();
    a.stop();
    let gone = wait_for(Duration::from_secs(10), || d.weight(sa(rs[0])).is_none());
    let left = gone.unwrap_or_else(|| panic!("{} never left -Ln:\n{}", rs[0], d.log_text()));
    std::thread::sleep(Duration::from_millis(300));
    let (n, failed) = clients.finish();
    report(
        test,
        &format!(
            "{checker}: stopped real server left rvsadm -Ln after {:.2} s (bound {} s); \
             {failed} of {n} client requests through the VIP failed meanwhile",
            left.as_secs_f64(),
            BOUND.as_secs()
        ),
    );
    assert!(
        left <= BOUND + SLACK,
        "left after {left:?}, bound {BOUND:?}:\n{}",
        d.log_text()
    );
    assert_eq!(d.weight(sa(rs[1])), Some(1), "the other server stays");
    assert_eq!(curl_get(&url).as_deref(), Some("B\n"));

    let t1 = Instant::now();
    a.restart().expect("nginx restart");
    let back = wait_for(Duration::from_secs(10), || d.weight(sa(rs[0])) == Some(1))
        .unwrap_or_else(|| panic!("{} never came back:\n{}", rs[0], d.log_text()));
    report(
        test,
        &format!(
            "{checker}: restarted real server back in -Ln after {:.2} s",
            back.as_secs_f64()
        ),
    );
    // One success brings it back: the next check is at most delay_loop after the failure.
    assert!(
        back <= Duration::from_secs(2) + SLACK,
        "back after {back:?}"
    );
    if let Some(rx) = lines {
        let v: SocketAddr = vip.parse().unwrap();
        let r = sa(rs[0]);
        let want = [
            format!(
                "RS [{}]:tcp:{} [{}]:tcp:{} DOWN",
                r.ip(),
                r.port(),
                v.ip(),
                v.port()
            ),
            format!(
                "RS [{}]:tcp:{} [{}]:tcp:{} UP",
                r.ip(),
                r.port(),
                v.ip(),
                v.port()
            ),
        ];
        let got: Vec<String> = (0..2)
            .filter_map(|_| rx.recv_timeout(Duration::from_secs(5)).ok())
            .collect();
        assert_eq!(got, want, "lvs_notify_fifo lines");
        report(test, &format!("lvs_notify_fifo: {got:?}"));
    }
    let _ = (t0, t1);
}

#[test]
fn http_get_takes_a_stopped_server_out_and_back() {
    require!("nginx", "curl");
    leave_and_return(
        "http_get",
        "HTTP_GET",
        "127.0.21.1:8080",
        ["127.0.21.11:8081", "127.0.21.12:8081"],
        false,
    );
}

#[test]
fn tcp_check_takes_a_stopped_server_out_and_back() {
    require!("nginx", "curl");
    leave_and_return(
        "tcp_check",
        "TCP_CHECK",
        "127.0.22.1:8080",
        ["127.0.22.11:8081", "127.0.22.12:8081"],
        true,
    );
}

#[test]
fn inhibit_on_failure_sets_weight_zero() {
    require!("nginx", "curl");
    let dir = tempdir("inhibit");
    let (vip, rs) = ("127.0.23.1:8080", ["127.0.23.11:8081", "127.0.23.12:8081"]);
    let mut a = start_nginx(dir.path(), &[Site::new(sa(rs[0]), "A\n")], None);
    let _b = start_nginx(dir.path(), &[Site::new(sa(rs[1]), "B\n")], None);
    let d = start_keepalived(
        dir.path(),
        &pair_conf(vip, rs, "TCP_CHECK", "  inhibit_on_failure\n"),
        &[],
    );
    assert!(wait_for(Duration::from_secs(10), || d.dests().len() == 2).is_some());
    std::thread::sleep(Duration::from_millis(1500));
    a.stop();
    let t = wait_for(Duration::from_secs(10), || d.weight(sa(rs[0])) == Some(0))
        .unwrap_or_else(|| panic!("weight never 0:\n{}\n{}", d.listing(), d.log_text()));
    report(
        "inhibit",
        &format!(
            "stopped server set to weight 0 (kept in -Ln) after {:.2} s",
            t.as_secs_f64()
        ),
    );
    assert!(t <= BOUND + SLACK);
    assert_eq!(d.dests().len(), 2, "inhibited server stays listed");
    a.restart().expect("nginx restart");
    assert!(
        wait_for(Duration::from_secs(10), || d.weight(sa(rs[0])) == Some(1)).is_some(),
        "weight restored"
    );
}

#[test]
fn losing_quorum_brings_in_the_sorry_server() {
    require!("nginx", "curl");
    let dir = tempdir("quorum");
    let (vip, rs) = ("127.0.24.1:8080", ["127.0.24.11:8081", "127.0.24.12:8081"]);
    let sorry = "127.0.24.99:8081";
    let mut a = start_nginx(dir.path(), &[Site::new(sa(rs[0]), "A\n")], None);
    let _b = start_nginx(dir.path(), &[Site::new(sa(rs[1]), "B\n")], None);
    let _s = start_nginx(dir.path(), &[Site::new(sa(sorry), "SORRY\n")], None);
    let extra = "  quorum 2\n  sorry_server 127.0.24.99 8081\n";
    let d = start_keepalived(dir.path(), &pair_conf(vip, rs, "TCP_CHECK", extra), &[]);
    assert!(wait_for(Duration::from_secs(10), || d.dests().len() == 2).is_some());
    assert_eq!(
        d.weight(sa(sorry)),
        None,
        "no sorry server while quorum holds"
    );
    std::thread::sleep(Duration::from_millis(1500));
    a.stop();
    // Quorum 2 with one server of weight 1 alive is lost: the alive servers are taken out
    // and the sorry server (weight 1) takes over (docs/internals/keepalived.md#quorum-and-the-sorry-server).
    let t = wait_for(Duration::from_secs(10), || {
        let ds = d.dests();
        ds.len() == 1 && ds[0].0 == sorry && ds[0].1 == 1
    })
    .unwrap_or_else(|| panic!("sorry server not alone:\n{}\n{}", d.listing(), d.log_text()));
    report(
        "quorum",
        &format!(
            "quorum lost: sorry server alone in -Ln {:.2} s after the stop",
            t.as_secs_f64()
        ),
    );
    assert_eq!(
        curl_get(&format!("http://{vip}/")).as_deref(),
        Some("SORRY\n")
    );
    a.restart().expect("nginx restart");
    assert!(
        wait_for(Duration::from_secs(10), || {
            let ds = d.dests();
            ds.len() == 2 && ds.iter().all(|x| x.0 != sorry)
        })
        .is_some(),
        "quorum regained, sorry server gone:\n{}",
        d.listing()
    );
}

#[test]
fn misc_dynamic_sets_the_weight() {
    require!("nginx", "curl");
    let dir = tempdir("misc");
    let (vip, rs) = ("127.0.25.1:8080", "127.0.25.11:8081");
    let _a = start_nginx(dir.path(), &[Site::new(sa(rs), "A\n")], None);
    let code = dir.path().join("exit-code");
    std::fs::write(&code, "12\n").unwrap();
    let script = dir.path().join("check.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexit $(cat {})\n", code.display()),
    )
    .unwrap();
    let r: SocketAddr = rs.parse().unwrap();
    let conf = format!(
        "virtual_server 127.0.25.1 8080 {{\n  delay_loop 1\n  lb_algo wrr\n  lb_kind NAT\n  \
         protocol TCP\n  real_server {} {} {{\n    weight 1\n    MISC_CHECK {{\n      \
         misc_path \"/bin/sh {}\"\n      misc_timeout 2\n      misc_dynamic\n      warmup 0\n    \
         }}\n  }}\n}}\n",
        r.ip(),
        r.port(),
        script.display()
    );
    let d = start_keepalived(dir.path(), &conf, &[]);
    // exit 12 → weight 12 − 2 = 10 (docs/internals/keepalived.md#checkers-and-their-timers).
    let t = wait_for(Duration::from_secs(10), || d.weight(r) == Some(10))
        .unwrap_or_else(|| panic!("weight 10:\n{}\n{}", d.listing(), d.log_text()));
    report(
        "misc",
        &format!("exit 12 → weight 10 after {:.2} s", t.as_secs_f64()),
    );
    std::fs::write(&code, "7\n").unwrap();
    let t = wait_for(Duration::from_secs(10), || d.weight(r) == Some(5))
        .unwrap_or_else(|| panic!("weight 5:\n{}\n{}", d.listing(), d.log_text()));
    report(
        "misc",
        &format!("exit 7 → weight 5 after {:.2} s", t.as_secs_f64()),
    );
    // exit 1 is a failure: the server leaves the table.
    std::fs::write(&code, "1\n").unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || d.weight(r).is_none()).is_some(),
        "exit 1 takes it out:\n{}",
        d.listing()
    );
    assert!(d.dests().is_empty());
    let _ = vip;
}
