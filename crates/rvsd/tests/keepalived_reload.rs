//! `rvsd -f` reload (SIGHUP) end to end on loopback with nginx real servers (issue 5
//! acceptance): a broken file keeps the running configuration serving and the log says why;
//! a file that removes a real server drains it — weight 0 at once, deleted when its
//! connections end — without resetting its open connections (keepalived deletes it at once,
//! keepalived issues #1228 and #2240).

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn conf(vip: &str, rs: &[&str]) -> String {
    let w: Vec<(&str, u32)> = rs.iter().map(|r| (*r, 1)).collect();
    conf_w(vip, &w)
}

fn conf_w(vip: &str, rs: &[(&str, u32)]) -> String {
    let v: SocketAddr = vip.parse().unwrap();
    let mut s = format!(
        "virtual_server {} {} {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n",
        v.ip(),
        v.port()
    );
    for (r, w) in rs {
        let a: SocketAddr = r.parse().unwrap();
        s.push_str(&format!(
            "  real_server {} {} {{\n    weight {w}\n    TCP_CHECK {{\n      connect_timeout 1\n      \
             warmup 0\n    }}\n  }}\n",
            a.ip(),
            a.port()
        ));
    }
    s.push_str("}\n");
    s
}

#[test]
fn sighup_with_a_broken_file_keeps_serving() {
    require!("nginx", "curl");
    let dir = tempdir("broken");
    let (vip, rs) = ("127.0.26.1:8080", ["127.0.26.11:8081", "127.0.26.12:8081"]);
    let _a = start_nginx(dir.path(), &[Site::new(sa(rs[0]), "A\n")], None);
    let _b = start_nginx(dir.path(), &[Site::new(sa(rs[1]), "B\n")], None);
    let d = start_keepalived(dir.path(), &conf(vip, &rs), &[]);
    assert!(wait_for(Duration::from_secs(10), || d.dests().len() == 2).is_some());
    let before = d.listing();

    // Line 5 misses its value: keepalived would stop the whole daemon here (docs/internals/keepalived.md#reload-sighup).
    d.reload(
        "virtual_server 127.0.26.1 8080 {\n  lb_algo rr\n  protocol TCP\n  real_server 127.0.26.11 8081 {\n    weight\n  }\n}\n",
    );
    assert!(
        d.wait_log("keeping the running configuration", Duration::from_secs(10)),
        "{}",
        d.log_text()
    );
    let log = d.log_text();
    let why = log
        .lines()
        .find(|l| l.contains("keeping the running configuration"))
        .unwrap_or_default()
        .to_string();
    report("broken", &format!("log: {why}"));
    assert!(
        log.contains("keepalived.conf:5:") && log.contains("weight"),
        "the log names file:line and the text:\n{log}"
    );
    assert_eq!(d.listing(), before, "table unchanged");
    let url = format!("http://{vip}/");
    let bodies: Vec<Option<String>> = (0..4).map(|_| curl_get(&url)).collect();
    assert!(
        bodies.iter().all(|b| b.is_some()),
        "still serving: {bodies:?}"
    );

    // And a good file afterwards is applied: the second server goes (drained, then deleted)
    // while the unchanged first one is not touched: its connection counter is not reset
    // (a delete and re-add would zero it).
    let conns_before = d.conns(sa(rs[0])).expect("listed");
    assert!(conns_before > 0, "{}", d.listing());
    d.reload(&conf(vip, &rs[..1]));
    assert!(
        wait_for(Duration::from_secs(10), || d.dests().len() == 1).is_some(),
        "{}\n{}",
        d.listing(),
        d.log_text()
    );
    assert!(d
        .log_text()
        .contains("reloaded: 0 service(s) added, 0 changed, 0 removed"));
    assert!(d.conns(sa(rs[0])).expect("still listed") >= conns_before);
}

#[test]
fn sighup_removing_a_server_drains_it_without_resetting_connections() {
    require!("nginx", "curl");
    let dir = tempdir("drain");
    let (vip, rs) = ("127.0.27.1:8080", ["127.0.27.11:8081", "127.0.27.12:8081"]);
    let a = start_nginx(dir.path(), &[Site::new(sa(rs[0]), "A\n")], None);
    let b = start_nginx(dir.path(), &[Site::new(sa(rs[1]), "B\n")], None);
    // 24 MB at 3 MB/s: the download lasts ~8 s, well past the reload.
    const SIZE: usize = 24 * 1024 * 1024;
    let big: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    std::fs::write(a.root(0).join("big"), &big).unwrap();
    std::fs::write(b.root(0).join("big"), &big).unwrap();
    let d = start_keepalived(dir.path(), &conf(vip, &rs), &["--drain-time", "60"]);
    assert!(wait_for(Duration::from_secs(10), || d.dests().len() == 2).is_some());

    let out = dir.path().join("download");
    let url = format!("http://{vip}/big");
    let mut dl = Command::new("curl")
        .args(["-s", "--limit-rate", "3M", "--max-time", "40", "-o"])
        .arg(&out)
        .args(["-w", "%{http_code} %{size_download}", &url])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl");
    // The real server carrying the download is the one with an active connection.
    let mut busy = None;
    wait_for(Duration::from_secs(5), || {
        busy = d.dests().into_iter().find(|x| x.2 > 0).map(|x| x.0);
        busy.is_some()
    });
    let busy = busy.unwrap_or_else(|| {
        let _ = dl.kill();
        panic!("no active connection:\n{}", d.listing())
    });
    let keep = if busy == rs[0] { rs[1] } else { rs[0] };
    let t0 = Instant::now();
    d.reload(&conf(vip, &[keep]));
    // Drained, not deleted: still listed with weight 0 while the download runs.
    let drained = wait_for(Duration::from_secs(5), || d.weight(sa(&busy)) == Some(0));
    let listed_at_0 = d.listing();
    assert!(
        drained.is_some(),
        "weight 0 after the reload:\n{listed_at_0}\n{}",
        d.log_text()
    );
    // New connections go to the remaining server only.
    let keep_body = if keep == rs[0] { "A\n" } else { "B\n" };
    for _ in 0..3 {
        assert_eq!(
            curl_get(&format!("http://{vip}/")).as_deref(),
            Some(keep_body)
        );
    }
    let res = dl.wait_with_output().expect("curl output");
    let took = t0.elapsed();
    let summary = String::from_utf8_lossy(&res.stdout).into_owned();
    let got = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    report(
        "drain",
        &format!(
            "download through the drained server finished {:.1} s after the reload: \
             curl {} (exit {:?}), {got} of {SIZE} bytes",
            took.as_secs_f64(),
            summary,
            res.status.code()
        ),
    );
    assert!(
        res.status.success(),
        "curl failed: {summary}\n{}",
        d.log_text()
    );
    assert_eq!(got as usize, SIZE, "complete download");
    assert_eq!(std::fs::read(&out).unwrap(), big, "intact download");
    // Its connections have ended: the drained server is deleted (well before --drain-time).
    let gone = wait_for(Duration::from_secs(10), || d.weight(sa(&busy)).is_none());
    assert!(
        gone.is_some(),
        "deleted after the drain:\n{}\n{}",
        d.listing(),
        d.log_text()
    );
    assert!(d.log_text().contains("draining"), "{}", d.log_text());
    if let Some(l) = d.log_text().lines().find(|l| l.contains("drained ")) {
        report("drain", l);
    }
    assert_eq!(d.weight(sa(keep)), Some(1));
}

#[test]
fn sighup_applies_only_the_differences() {
    require!("nginx", "curl");
    let dir = tempdir("diff");
    let (vip, rs) = ("127.0.28.1:8080", ["127.0.28.11:8081", "127.0.28.12:8081"]);
    let _a = start_nginx(dir.path(), &[Site::new(sa(rs[0]), "A\n")], None);
    let _b = start_nginx(dir.path(), &[Site::new(sa(rs[1]), "B\n")], None);
    let d = start_keepalived(dir.path(), &conf_w(vip, &[(rs[0], 1)]), &[]);
    assert!(wait_for(Duration::from_secs(10), || d.dests().len() == 1).is_some());
    let url = format!("http://{vip}/");
    for _ in 0..3 {
        assert_eq!(curl_get(&url).as_deref(), Some("A\n"));
    }
    let conns = d.conns(sa(rs[0])).expect("listed");
    // A new real server and a new weight for the old one: the new one is added as at
    // start-up, the old one is edited in place (its counters survive).
    d.reload(&conf_w(vip, &[(rs[0], 3), (rs[1], 1)]));
    let t = wait_for(Duration::from_secs(10), || {
        d.weight(sa(rs[0])) == Some(3) && d.weight(sa(rs[1])) == Some(1)
    });
    assert!(t.is_some(), "{}\n{}", d.listing(), d.log_text());
    report(
        "diff",
        &format!(
            "weight edit and new real server visible {:.2} s after SIGHUP",
            t.unwrap_or_default().as_secs_f64()
        ),
    );
    assert!(d
        .log_text()
        .contains("reloaded: 0 service(s) added, 0 changed, 0 removed"));
    assert!(d.conns(sa(rs[0])).expect("still listed") >= conns);
    // A scheduler change edits the service in place.
    d.reload(&conf_w(vip, &[(rs[0], 3), (rs[1], 1)]).replace("lb_algo rr", "lb_algo wrr"));
    assert!(
        d.wait_log(
            "reloaded: 0 service(s) added, 1 changed, 0 removed",
            Duration::from_secs(10)
        ),
        "{}",
        d.log_text()
    );
    assert!(d.listing().contains(" wrr"), "{}", d.listing());
    assert!(d.conns(sa(rs[0])).expect("still listed") >= conns);
}
