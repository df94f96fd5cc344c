//! Load-aware weights end to end (issue 15 item 2): `rvsd -f keepalived.conf` with nginx real
//! servers and a python3 agent per server speaking HAProxy's agent protocol (AGENT_CHECK).
//!
//! A `50%` answer halves the weight in `rvsadm -Ln` within two check intervals; `drain` gives
//! weight 0 while a long download through the VIP carries on to its end; `ready` returns to
//! the last percentage; a malformed answer changes nothing; `down` takes the server out.
//!
//! Addresses: 127.77.150.0/24 (VIP .1, real servers .11/.12, agents on port 9999).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const DELAY_LOOP: Duration = Duration::from_secs(1);
/// Polling the listing and process scheduling on a loaded 2-core CI box.
const SLACK: Duration = Duration::from_millis(700);

fn conf(vip: SocketAddr, rs: &[SocketAddr]) -> String {
    let mut s = format!(
        "virtual_server {} {} {{\n  delay_loop 1\n  lb_algo wlc\n  lb_kind NAT\n  protocol TCP\n",
        vip.ip(),
        vip.port()
    );
    for r in rs {
        s.push_str(&format!(
            "  real_server {} {} {{\n    weight 10\n    AGENT_CHECK {{\n      connect_port 9999\n      \
             connect_timeout 1\n      retry 1\n      delay_before_retry 1\n      warmup 0\n    }}\n  }}\n",
            r.ip(),
            r.port()
        ));
    }
    s.push_str("}\n");
    s
}

#[test]
fn agent_percent_drain_ready_malformed_down() {
    require!("nginx", "curl", "python3");
    let dir = tempdir("agent");
    let vip = sa("127.77.150.1:8080");
    let rs = [sa("127.77.150.11:8081"), sa("127.77.150.12:8081")];
    let a = start_nginx(dir.path(), &[Site::new(rs[0], "A\n")], None);
    let b = start_nginx(dir.path(), &[Site::new(rs[1], "B\n")], None);
    // 24 MB at 3 MB/s: the download lasts ~8 s, well past the drain.
    const SIZE: usize = 24 * 1024 * 1024;
    let big: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    std::fs::write(a.root(0).join("big"), &big).unwrap();
    std::fs::write(b.root(0).join("big"), &big).unwrap();
    let agents = [
        Agent::start(dir.path(), sa("127.77.150.11:9999"), "100%\n"),
        Agent::start(dir.path(), sa("127.77.150.12:9999"), "up 100%\n"),
    ];
    let d = start_keepalived(dir.path(), &conf(vip, &rs), &[]);
    assert!(
        wait_for(Duration::from_secs(10), || d.weight(rs[0]) == Some(10)
            && d.weight(rs[1]) == Some(10))
        .is_some(),
        "both at weight 10:\n{}\n{}",
        d.listing(),
        d.log_text()
    );

    // 50% → half the configured weight within two check intervals.
    agents[0].set("50%\n");
    let t = wait_for(Duration::from_secs(10), || d.weight(rs[0]) == Some(5))
        .unwrap_or_else(|| panic!("50% → weight 5:\n{}\n{}", d.listing(), d.log_text()));
    report(
        "agent",
        &format!("50% → weight 5 after {:.2} s", t.as_secs_f64()),
    );
    assert!(t <= 2 * DELAY_LOOP + SLACK, "took {t:?}");
    assert_eq!(
        d.weight(rs[1]),
        Some(10),
        "the other server keeps its weight"
    );

    // A long download through the VIP; drain its real server.
    let out = dir.path().join("download");
    let body = dir.path().join("body");
    let dl = Download::start(
        &out,
        Some(&body),
        &["--limit-rate", "3M", &format!("http://{vip}/big")],
    );
    let mut busy = None;
    wait_for(Duration::from_secs(5), || {
        busy = d.dests().into_iter().find(|x| x.2 > 0).map(|x| x.0);
        busy.is_some()
    });
    let busy: SocketAddr = busy
        .unwrap_or_else(|| panic!("download has an active connection:\n{}", d.listing()))
        .parse()
        .unwrap();
    let (bi, other) = if busy == rs[0] { (0, 1) } else { (1, 0) };
    agents[bi].set("drain # maintenance soon\n");
    let t = wait_for(Duration::from_secs(10), || d.weight(busy) == Some(0))
        .unwrap_or_else(|| panic!("drain → weight 0:\n{}\n{}", d.listing(), d.log_text()));
    report(
        "agent",
        &format!("drain → weight 0 after {:.2} s", t.as_secs_f64()),
    );
    assert!(t <= 2 * DELAY_LOOP + SLACK, "took {t:?}");
    // New requests go to the other server; the download carries on.
    let other_body = if other == 0 { "A\n" } else { "B\n" };
    for _ in 0..5 {
        assert_eq!(
            curl_get(&format!("http://{vip}/")).as_deref(),
            Some(other_body)
        );
    }
    let (ok, report_line) = dl.finish(Duration::from_secs(40));
    assert!(
        ok,
        "download through the drained server completed: {report_line}"
    );
    assert_eq!(report_line, format!("200 {SIZE}"), "whole body received");
    assert_eq!(std::fs::read(&body).unwrap(), big, "body intact");

    // ready → back to the last percentage (100% for agent B's server, 50% for A's).
    agents[bi].set("ready\n");
    let want = if bi == 0 { 5 } else { 10 };
    assert!(
        wait_for(Duration::from_secs(10), || d.weight(busy) == Some(want)).is_some(),
        "ready → weight {want}:\n{}",
        d.listing()
    );

    // A malformed answer is ignored: the weight stays for several check intervals.
    agents[bi].set("75 percent please\n");
    std::thread::sleep(3 * DELAY_LOOP);
    assert_eq!(d.weight(busy), Some(want), "malformed answer ignored");

    // down → taken out like a failed check (retry 1: two failures).
    agents[bi].set("down#disk full\n");
    assert!(
        wait_for(Duration::from_secs(10), || d.weight(busy).is_none()).is_some(),
        "down takes it out:\n{}",
        d.listing()
    );
    // up again: back in, at the last percentage.
    agents[bi].set("up\n");
    assert!(
        wait_for(Duration::from_secs(10), || d.weight(busy) == Some(want)).is_some(),
        "up brings it back:\n{}",
        d.listing()
    );

    // maxconn:N is accepted (the weight follows the rest of the line) but not acted on: one
    // warning per checker, not one per reply.
    agents[bi].set("up 100% maxconn:30\n");
    let full = 10;
    assert!(
        wait_for(Duration::from_secs(10), || d.weight(busy) == Some(full)).is_some(),
        "100% with maxconn:\n{}",
        d.listing()
    );
    std::thread::sleep(3 * DELAY_LOOP);
    let warned = d.log_text().matches("maxconn:30 is not acted on").count();
    assert_eq!(warned, 1, "one warning per checker:\n{}", d.log_text());
    assert_eq!(d.weight(busy), Some(full));
}

#[test]
fn agent_check_config_is_checked_by_rvsd_t() {
    let dir = tempdir("agent-t");
    let bad = "virtual_server 127.77.151.1 8080 {\n  real_server 127.77.151.11 8081 {\n    \
               weight 10\n    AGENT_CHECK {\n      connect_port 9999\n      min_weight 8\n      \
               max_weight 4\n    }\n  }\n  protocol TCP\n  lb_algo wlc\n  lb_kind NAT\n}\n";
    let path = dir.path().join("keepalived.conf");
    std::fs::write(&path, bad).unwrap();
    let out = std::process::Command::new(RVSD)
        .arg("-t")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("rvsd -t");
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "min above max refused: {err}");
    assert!(
        err.contains("min_weight 8 is above max_weight 4") && err.contains(":4:"),
        "position and reason: {err}"
    );
    let good = bad.replace("max_weight 4", "max_weight 40");
    std::fs::write(&path, good).unwrap();
    let out = std::process::Command::new(RVSD)
        .arg("-t")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("rvsd -t");
    assert!(
        out.status.success(),
        "valid AGENT_CHECK accepted: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// pewma on the socket proxy: two nginx real servers and one python3 server answering 30 ms
/// late; 150 sequential requests (one connection each) through the VIP. With rr the slow one
/// gets a third (the check that the set-up can tell them apart); with pewma at most half of
/// that. Sequential requests a few per second are pewma's weakest case: its estimates relax
/// toward "unmeasured" between samples (τ = 2 s), so the slow server is measured again every
/// few seconds; under load (bench/latency.sh) its share is far smaller.
#[test]
fn pewma_sends_few_connections_to_a_slow_real_server() {
    require!("nginx", "curl", "python3");
    let dir = tempdir("pewma");
    let vip = "127.77.152.1:8080";
    let fast = [sa("127.77.152.11:8081"), sa("127.77.152.12:8081")];
    let slow = sa("127.77.152.13:8081");
    let _ng = start_nginx(
        dir.path(),
        &[Site::new(fast[0], "A\n"), Site::new(fast[1], "B\n")],
        None,
    );
    let _slow = SlowHttp::start(slow, Duration::from_millis(30), "C\n");
    let d = start_rvsd(dir.path(), &[]);
    d.table(&[
        &format!("-A -t {vip} -s rr"),
        &format!("-a -t {vip} -r {} -m", fast[0]),
        &format!("-a -t {vip} -r {} -m", fast[1]),
        &format!("-a -t {vip} -r {slow} -m"),
    ]);
    let url = format!("http://{vip}/");
    let run = |n: u32| -> u64 {
        d.ok(&["-Z"]);
        for _ in 0..n {
            assert!(curl_get(&url).is_some(), "request through the VIP");
        }
        d.conns(slow).expect("slow server listed")
    };
    const N: u32 = 150;
    let rr = run(N);
    d.ok(&["-E", "-t", vip, "-s", "pewma"]);
    assert!(
        d.ok(&["-Ln"]).contains("pewma"),
        "listing shows the scheduler"
    );
    let pewma = run(N);
    report(
        "pewma",
        &format!("slow real server (+30 ms): rr {rr} of {N}, pewma {pewma} of {N}"),
    );
    assert!(rr >= u64::from(N) / 4, "rr spreads evenly: {rr}");
    assert!(
        pewma * 2 <= rr,
        "pewma avoids the slow server: {pewma} of {N} (rr {rr})"
    );
}

/// The `rvs_backend_latency_estimate_seconds` and `rvs_backend_latency_samples_total` values
/// of real server `rip` in a metrics page.
fn latency_metrics(page: &str, rip: &str) -> (Option<f64>, Option<u64>) {
    let of = |name: &str| {
        page.lines()
            .find(|l| {
                l.starts_with(&format!("{name}{{"))
                    && l.contains(&format!("remote_address=\"{rip}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    (
        of("rvs_backend_latency_estimate_seconds").and_then(|v| v.parse().ok()),
        of("rvs_backend_latency_samples_total").and_then(|v| v.parse().ok()),
    )
}

/// The packet plane's samples for pewma (NAT lab, `rvsd --interface`): the time from the
/// client's SYN to the real server's SYN-ACK. rs1 sends everything toward the client network
/// 40 ms late (rvs-lab's `OutputDelay`: a TUN device in its namespace; the lab's kernel has no
/// netem), so its SYN-ACKs are 40 ms late; rs2 answers at once. After 40 sequential
/// connections through the VIP, the metrics show rs1's estimate at ≥ 30 ms and rs2's at least
/// 20 ms below it, both measured, and rs1 got at most a quarter of the connections (both are compared
/// on every decision but the 1-in-64 exploration; with no samples they would split evenly).
#[test]
fn pewma_packet_plane_samples_syn_to_syn_ack() {
    rvs_require::require_root!();
    require!("nginx", "curl", "nft");
    let mut t = rvs_lab::nat("lapewma").expect("nat lab");
    t.start_nginx().expect("nginx");
    let director = t.director().ns.clone();
    let client = t.client().ns.clone();
    let rips: Vec<String> = t.rips().iter().map(|r| r.to_string()).collect();
    let slow_ns = t.real_servers()[0].ns.clone();
    let delay = rvs_lab::OutputDelay::start(
        &slow_ns,
        rvs_lab::DelayConfig {
            dest: "10.1.0.0/24".into(),
            src: t.rips()[0],
            gw: "10.2.0.1".parse().unwrap(),
            dev: "eth0".into(),
            table: 100,
            delay: Duration::from_millis(40),
            tun: "rvsdly0".into(),
        },
    )
    .expect("delay on rs1");
    let metrics_at = "127.0.0.1:9761";
    let rvsd = Rvsd::start_in(
        RVSD,
        Some(&director),
        t.lab().workdir(),
        &[
            "--drain-time",
            "0",
            "--interface",
            "eth0",
            "--interface",
            "eth1",
            "--metrics-listen",
            metrics_at,
        ],
    );
    for c in t.rvsadm_commands() {
        rvsd.line(&c.replace(" -s rr", " -s pewma"));
    }
    assert!(rvsd.listing().contains("pewma"), "{}", rvsd.listing());
    wait_plane_ready(&director, &t.vip.to_string(), &rips);
    let url = format!("http://{}:{}/", t.vip, t.port);
    const N: u32 = 40;
    let mut answered = 0;
    for _ in 0..N {
        // A few bounded retries: the first packets may meet an unresolved neighbour.
        if (0..3).any(|_| client.curl(&url).is_ok()) {
            answered += 1;
        }
    }
    assert_eq!(answered, N, "every request answered:\n{}", rvsd.log_text());
    assert!(delay.delayed() > 0, "rs1's packets went through the delay");
    let page = director
        .curl(&format!("http://{metrics_at}/metrics"))
        .expect("metrics page");
    let (slow_est, slow_n) = latency_metrics(&page, &rips[0]);
    let (fast_est, fast_n) = latency_metrics(&page, &rips[1]);
    let stats = rvsd.ok(&["-Ln", "--stats"]);
    let conns = |rip: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                (w.len() >= 3 && w[0] == "->" && w[1] == format!("{rip}:{}", t.port))
                    .then(|| w[2].parse().ok())
                    .flatten()
            })
            .unwrap_or_else(|| panic!("{rip} listed:\n{stats}"))
    };
    let (slow_c, fast_c) = (conns(&rips[0]), conns(&rips[1]));
    report(
        "pewma-packet",
        &format!(
            "SYN → SYN-ACK estimates: rs1 (+40 ms) {slow_est:?} s over {slow_n:?} samples, \
             rs2 {fast_est:?} s over {fast_n:?}; connections rs1 {slow_c}, rs2 {fast_c}"
        ),
    );
    let slow_est = slow_est.unwrap_or_else(|| panic!("rs1 has an estimate:\n{page}"));
    let fast_est = fast_est.unwrap_or_else(|| panic!("rs2 has an estimate:\n{page}"));
    assert!(
        slow_n.unwrap_or(0) >= 1 && fast_n.unwrap_or(0) >= 1,
        "{page}"
    );
    assert!(
        (0.030..1.0).contains(&slow_est),
        "rs1's SYN-ACKs are 40 ms late: {slow_est} s"
    );
    // rs2's estimate is its own (not rs1's 40 ms mixed in): at least 20 ms below rs1's. Not an
    // absolute bound: on a loaded machine the director's scheduling delay adds to both
    // estimates alike (a 10 ms bound once failed at 11 ms under a parallel test run).
    assert!(
        fast_est + 0.020 < slow_est,
        "rs2 answers at once: {fast_est} s against rs1's {slow_est} s"
    );
    // Retried requests count too.
    assert!(slow_c + fast_c >= u64::from(N), "{stats}");
    assert!(
        slow_c * 4 <= slow_c + fast_c,
        "pewma avoids the late server: rs1 {slow_c}, rs2 {fast_c}"
    );
    // A 300 KB download: the page fetches above are short exchanges, which may be over
    // before the XDP program has their flows; this flow goes on long after its entry was
    // installed, so that in XDP mode the program must have forwarded some of it.
    for rs in t.real_servers() {
        common::write_pattern(&rs.ns.nginx_root(t.port).join("big.bin"), 300_000);
    }
    let got = common::download_in(
        &client,
        &format!("{url}big.bin"),
        &t.lab().workdir().join("big.bin"),
    );
    assert!(
        got == common::pattern(300_000),
        "download: {} bytes",
        got.len()
    );
    // The packet-plane mode it ran in (RVS_TEST_XDP): with XDP the handshakes, which pewma
    // samples, went through the AF_XDP slow path, and the program carried the download.
    let mut rvsd = rvsd;
    rvsd.stop_and_check_mode(&["eth0", "eth1"], common::Forwards::Some);
}
