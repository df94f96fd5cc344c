//! etcd as the table's source of truth, against a real etcd (Debian etcd-server) started by
//! the test: two rvsd directors follow one prefix; what is put into etcd appears on both
//! (convergence time measured); a real server registered with a lease that is not kept
//! alive disappears from both after its TTL; a malformed value is skipped; rvsadm edits of
//! etcd's entries are refused naming etcd while other entries stay rvsadm's; etcd stopped →
//! tables unchanged and the metrics say so; etcd back → the watch resumes without replaying
//! or missing a change.
//!
//! Addresses: 127.77.190.0/24 (etcd .1, metrics .2/.3, VIP .100, real servers .11–.13).

mod common;

use std::time::{Duration, Instant};

use common::*;

const PREFIX: &str = "/t190";
const VIP: &str = "127.77.190.100:8080";

fn metric(addr: &str, name: &str) -> Option<u64> {
    let text = curl_get(&format!("http://{addr}/metrics"))?;
    let want = format!("{name}{{source=\"etcd\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .and_then(|v| v.trim().parse().ok())
}

/// The real servers of the VIP in a director's listing, sorted: (address, weight).
fn table(d: &Rvsd) -> Vec<(String, u32)> {
    let out = d.listing();
    let mut in_vip = false;
    let mut v = Vec::new();
    for l in out.lines() {
        if l.starts_with("TCP") || l.starts_with("UDP") {
            in_vip = l.contains(VIP);
        } else if in_vip {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() >= 4 && w[0] == "->" && w[1] != "RemoteAddress:Port" {
                v.push((w[1].to_string(), w[3].parse().unwrap_or(u32::MAX)));
            }
        }
    }
    v.sort();
    v
}

fn has_vip(d: &Rvsd) -> bool {
    d.listing().contains(VIP)
}

#[test]
fn two_directors_follow_one_etcd_prefix() {
    require!("etcd", "etcdctl", "nginx", "curl");
    let dir = tempdir("etcd");
    let etcd_dir = dir.path().join("etcd");
    std::fs::create_dir_all(&etcd_dir).unwrap();
    let mut etcd = Etcd::start(&etcd_dir, "127.77.190.1");
    let _nginx = start_nginx(
        dir.path(),
        &[
            Site::named("127.77.190.11:8080", "rs1"),
            Site::named("127.77.190.12:8080", "rs2"),
            Site::named("127.77.190.13:8080", "rs3"),
        ],
        None,
    );
    let start = |name: &str, metrics: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        start_rvsd(
            &d,
            &[
                "--etcd",
                &etcd.url,
                "--etcd-prefix",
                PREFIX,
                "--metrics-listen",
                metrics,
                "--drain-time",
                "5",
            ],
        )
    };
    let a = start("a", "127.77.190.2:9760");
    let b = start("b", "127.77.190.3:9760");
    // A service of rvsadm's own on A: etcd discovery must leave it alone.
    a.table(&[
        "-A -t 127.77.190.50:8080 -s rr",
        "-a -t 127.77.190.50:8080 -r 127.77.190.13:8080 -m",
    ]);
    for m in ["127.77.190.2:9760", "127.77.190.3:9760"] {
        assert!(
            wait(Duration::from_secs(10), || metric(
                m,
                "rvs_discovery_connected"
            ) == Some(1)),
            "{m} never followed etcd"
        );
    }

    // A service and two real servers appear on both directors; measured.
    let t0 = Instant::now();
    etcd.put(
        &format!("{PREFIX}/services/web"),
        r#"{"protocol":"tcp","addr":"127.77.190.100","port":8080,"scheduler":"rr"}"#,
    );
    etcd.put(
        &format!("{PREFIX}/servers/web/rs1"),
        r#"{"addr":"127.77.190.11","port":8080,"method":"masq"}"#,
    );
    etcd.put(
        &format!("{PREFIX}/servers/web/rs2"),
        r#"{"addr":"127.77.190.12","port":8080,"weight":2}"#,
    );
    let puts = t0.elapsed();
    let want = vec![
        ("127.77.190.11:8080".to_string(), 1),
        ("127.77.190.12:8080".to_string(), 2),
    ];
    let both = wait_for(Duration::from_secs(5), || {
        table(&a) == want && table(&b) == want
    });
    let total = t0.elapsed();
    report(
        "two_directors_follow_one_etcd_prefix",
        &format!(
            "3 puts (etcdctl, {:.0} ms) → on both directors {:.0} ms after the first put \
             (polled every 20 ms)",
            puts.as_secs_f64() * 1000.0,
            total.as_secs_f64() * 1000.0
        ),
    );
    assert!(
        both.is_some(),
        "not on both: A {:?}, B {:?}\nA log:\n{}",
        table(&a),
        table(&b),
        a.log_text()
    );
    assert!(
        total < Duration::from_secs(1) + puts,
        "convergence took {total:?} (puts {puts:?})"
    );
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        if let Some(body) = curl_get(&format!("http://{VIP}/")) {
            seen.insert(body.trim().to_string());
        }
    }
    assert!(seen.contains("rs1") && seen.contains("rs2"), "{seen:?}");

    // rvsadm may not change etcd's entries, and says why; its own service is untouched.
    let e = a.adm(&["-e", "-t", VIP, "-r", "127.77.190.11:8080", "-m", "-w", "9"]);
    assert_ne!(e.code, 0);
    assert!(e.err.contains("managed by etcd"), "{e:?}");
    let c = a.adm(&["-C"]);
    assert!(c.code != 0 && c.err.contains("etcd"), "{c:?}");
    let d = a.adm(&["-D", "-t", VIP]);
    assert!(d.code != 0 && d.err.contains("etcd"), "{d:?}");
    assert!(a.listing().contains("127.77.190.50:8080"));
    // In a batch (`rvsadm -R`) the managed line is refused in its place, the others apply.
    let r = rvsadm_lib(
        &a.socket,
        &["-R"],
        &format!("-a -t {VIP} -r 127.77.190.13:8080 -m\n-A -t 127.77.190.51:8080 -s rr\n"),
    );
    assert!(r.err.contains("managed by etcd"), "{r:?}");
    assert!(
        a.listing().contains("127.77.190.51:8080"),
        "{}",
        a.listing()
    );
    assert_eq!(table(&a).len(), 2, "the refused line was applied");
    a.table(&["-e -t 127.77.190.50:8080 -r 127.77.190.13:8080 -m -w 4"]);

    // A malformed value is skipped with its reason; the rest still applies.
    etcd.put(
        &format!("{PREFIX}/servers/web/bad"),
        r#"{"addr":"127.77.190.13","wieght":2}"#,
    );
    etcd.put(
        &format!("{PREFIX}/servers/web/rs1"),
        r#"{"addr":"127.77.190.11","port":8080,"weight":3}"#,
    );
    let want = vec![
        ("127.77.190.11:8080".to_string(), 3),
        ("127.77.190.12:8080".to_string(), 2),
    ];
    assert!(wait(Duration::from_secs(3), || table(&a) == want
        && table(&b) == want));
    for d in [&a, &b] {
        assert!(
            d.wait_log(
                "skipped: key /t190/servers/web/bad: bad JSON: unknown field `wieght`",
                Duration::from_secs(3)
            ),
            "{}",
            d.log_text()
        );
    }
    assert!(metric("127.77.190.2:9760", "rvs_discovery_skipped_total").unwrap_or(0) >= 1);
    etcd.del(&format!("{PREFIX}/servers/web/bad"));

    // A real server registered with a lease that nobody keeps alive disappears from both.
    let lease = etcd.grant(2);
    let t_lease = Instant::now();
    etcd.put_leased(
        &format!("{PREFIX}/servers/web/leased"),
        r#"{"addr":"127.77.190.13","port":8080}"#,
        &lease,
    );
    let with = |d: &Rvsd| table(d).iter().any(|(a, _)| a == "127.77.190.13:8080");
    assert!(wait(Duration::from_secs(2), || with(&a) && with(&b)));
    let gone = wait_for(Duration::from_secs(10), || !with(&a) && !with(&b));
    let gone_after = t_lease.elapsed();
    report(
        "two_directors_follow_one_etcd_prefix",
        &format!(
            "leased real server (TTL 2 s, not kept alive) gone from both {:.1} s after it was put",
            gone_after.as_secs_f64()
        ),
    );
    assert!(
        gone.is_some(),
        "the leased real server stayed: {:?}",
        table(&a)
    );
    assert!(
        gone_after >= Duration::from_millis(1500),
        "gone before its TTL: {gone_after:?}"
    );

    // etcd stopped: both keep their tables, and the metrics say so.
    let before_a = a.listing();
    let before_b = table(&b);
    let events_before = metric("127.77.190.2:9760", "rvs_discovery_events_total").unwrap();
    let rev_before = metric("127.77.190.2:9760", "rvs_discovery_revision").unwrap();
    etcd.stop();
    for m in ["127.77.190.2:9760", "127.77.190.3:9760"] {
        assert!(
            wait(Duration::from_secs(10), || metric(
                m,
                "rvs_discovery_connected"
            ) == Some(0)),
            "{m} did not notice etcd is gone"
        );
        assert!(metric(m, "rvs_discovery_disconnects_total").unwrap_or(0) >= 1);
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        a.listing(),
        before_a,
        "A's table changed while etcd was away"
    );
    assert_eq!(table(&b), before_b);
    assert!(
        curl_get(&format!("http://{VIP}/")).is_some(),
        "the VIP stopped serving"
    );
    assert!(a.log_text().contains("keeping the table as it is"));

    // etcd back, and a change made at once (before the directors reconnect): it is applied,
    // exactly once, and nothing earlier is replayed.
    etcd.restart();
    etcd.put(
        &format!("{PREFIX}/servers/web/rs2"),
        r#"{"addr":"127.77.190.12","port":8080,"weight":5}"#,
    );
    let want = vec![
        ("127.77.190.11:8080".to_string(), 3),
        ("127.77.190.12:8080".to_string(), 5),
    ];
    assert!(
        wait(Duration::from_secs(10), || table(&a) == want
            && table(&b) == want),
        "A {:?} B {:?}\n{}",
        table(&a),
        table(&b),
        a.log_text()
    );
    for m in ["127.77.190.2:9760", "127.77.190.3:9760"] {
        assert!(wait(Duration::from_secs(10), || metric(
            m,
            "rvs_discovery_connected"
        ) == Some(1)));
    }
    let events_after = metric("127.77.190.2:9760", "rvs_discovery_events_total").unwrap();
    assert_eq!(
        events_after,
        events_before + 1,
        "the resumed watch must deliver only the one new change"
    );
    assert_eq!(
        metric("127.77.190.2:9760", "rvs_discovery_revision"),
        Some(rev_before + 1)
    );
    assert_eq!(
        metric("127.77.190.2:9760", "rvs_discovery_resyncs_total"),
        Some(1),
        "a resumed watch does not read the prefix again"
    );

    // Deleting the service drains its real servers and then removes it from both.
    etcd.del(&format!("{PREFIX}/services/web"));
    assert!(wait(Duration::from_secs(10), || !has_vip(&a) && !has_vip(&b)));
    assert!(
        a.listing().contains("127.77.190.50:8080"),
        "rvsadm's own service was touched"
    );
}

/// `examples/etcd/put-table.sh` and `register.sh` against a real etcd and rvsd: the script's
/// service and real servers are served through the VIP; a real server registered by
/// `register.sh` stays while the script keeps its lease alive (longer than the TTL) and is
/// drained away after the TTL once the script dies.
///
/// Addresses: 127.77.192.0/24 (etcd .1, VIP .100, real servers .11–.13).
#[test]
fn etcd_examples_put_a_table_and_register_a_server() {
    require!("etcd", "etcdctl", "nginx", "curl");
    let dir = tempdir("etcd-examples");
    let etcd_dir = dir.path().join("etcd");
    std::fs::create_dir_all(&etcd_dir).unwrap();
    let etcd = Etcd::start(&etcd_dir, "127.77.192.1");
    let _nginx = start_nginx(
        dir.path(),
        &[
            Site::named("127.77.192.11:8080", "rs1"),
            Site::named("127.77.192.12:8080", "rs2"),
            Site::named("127.77.192.13:8080", "rs3"),
        ],
        None,
    );
    let rvsd = start_rvsd(
        dir.path(),
        &["--etcd", &etcd.url, "--etcd-prefix", "/ex192"],
    );
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/etcd");
    let run = |script: &str, args: &[&str]| {
        let mut c = std::process::Command::new(examples.join(script));
        c.args(args)
            .env("ETCDCTL_ENDPOINTS", &etcd.url)
            .env("RVS_PREFIX", "/ex192");
        c
    };
    let out = run(
        "put-table.sh",
        &[
            "web",
            "tcp:127.77.192.100:8080",
            "rr",
            "127.77.192.11:8080",
            "127.77.192.12:8080",
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dests = |r: &Rvsd| {
        let mut v: Vec<String> = r.dests().into_iter().map(|(a, _, _)| a).collect();
        v.sort();
        v
    };
    assert!(
        wait(Duration::from_secs(3), || dests(&rvsd)
            == ["127.77.192.11:8080", "127.77.192.12:8080"]),
        "{}",
        rvsd.listing()
    );
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        if let Some(b) = curl_get("http://127.77.192.100:8080/") {
            seen.insert(b.trim().to_string());
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["rs1", "rs2"]);

    let reg = Proc::spawn(
        "register.sh",
        run("register.sh", &["web", "host3", "127.77.192.13:8080", "2"]),
    );
    let with3 = |r: &Rvsd| dests(r).iter().any(|a| a == "127.77.192.13:8080");
    assert!(
        wait(Duration::from_secs(3), || with3(&rvsd)),
        "{}",
        rvsd.listing()
    );
    // Kept alive: still there after twice its TTL.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        with3(&rvsd),
        "the kept-alive real server went: {}",
        rvsd.log_text()
    );
    drop(reg);
    let t = Instant::now();
    assert!(
        wait(Duration::from_secs(8), || !with3(&rvsd)),
        "the real server stayed after its lease holder died"
    );
    report(
        "etcd_examples_put_a_table_and_register_a_server",
        &format!(
            "lease holder killed → real server gone {:.1} s later (TTL 2 s)",
            t.elapsed().as_secs_f64()
        ),
    );
}

/// etcd over TLS, as rvsd's security options promise (docs/containers.md, Security):
/// - with client certificates required (`--client-cert-auth`): a director with the CA and a
///   client certificate follows the prefix; one with the CA alone is refused;
/// - with user authentication (`auth enable`, TLS for the server only): a director with the
///   right password follows; one with a wrong password is refused at every attempt, applies
///   nothing and says why in its log.
///
/// Not both on one etcd: etcd's JSON gateway (what rvsd speaks) refuses to authenticate a user
/// on a connection with a client certificate ("CommonName of client sending a request against
/// gateway will be ignored"); the docs say so.
///
/// Then a flood: 100 real servers put in one transaction reach the director as one watch
/// response and are applied as one diff (applies move by at most a few, events by 100).
///
/// Addresses: 127.77.193.0/24 (etcds .1 and .4, metrics .2/.3/.5/.6, VIP .100).
#[test]
fn tls_and_authentication_then_a_flood_of_events_is_coalesced() {
    require!("etcd", "etcdctl", "openssl", "curl");
    const VIP: &str = "127.77.193.100:8080";
    const P: &str = "/t193";
    let dir = tempdir("etcd-tls");
    let mk = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let certs_etcd = Etcd::start_tls(&mk("etcd-certs"), "127.77.193.1", true);
    let mut auth_etcd = Etcd::start_tls(&mk("etcd-auth"), "127.77.193.4", false);
    auth_etcd.enable_auth("s3cret");
    let start = |name: &str, etcd: &Etcd, metrics: &str, extra: &[&str]| {
        let tls = etcd.tls.clone().expect("TLS etcd");
        let ca = tls.ca.display().to_string();
        let mut args = vec![
            "--etcd",
            &etcd.url,
            "--etcd-prefix",
            P,
            "--etcd-cacert",
            &ca,
            "--metrics-listen",
            metrics,
        ];
        args.extend_from_slice(extra);
        start_rvsd(&mk(name), &args)
    };
    let tls = certs_etcd.tls.clone().expect("TLS etcd");
    let (cert, key) = (
        tls.cert.display().to_string(),
        tls.key.display().to_string(),
    );
    let with_cert = start(
        "with-cert",
        &certs_etcd,
        "127.77.193.2:9760",
        &["--etcd-cert", &cert, "--etcd-key", &key],
    );
    let no_cert = start("no-cert", &certs_etcd, "127.77.193.3:9760", &[]);
    let right_pw = start(
        "right-pw",
        &auth_etcd,
        "127.77.193.5:9760",
        &["--etcd-user", "root:s3cret"],
    );
    let wrong_pw = start(
        "wrong-pw",
        &auth_etcd,
        "127.77.193.6:9760",
        &["--etcd-user", "root:wrong"],
    );
    let service = r#"{"protocol":"tcp","addr":"127.77.193.100","port":8080,"scheduler":"rr"}"#;
    certs_etcd.put(&format!("{P}/services/web"), service);
    auth_etcd.put(&format!("{P}/services/web"), service);
    for (d, m) in [
        (&with_cert, "127.77.193.2:9760"),
        (&right_pw, "127.77.193.5:9760"),
    ] {
        assert!(
            wait(Duration::from_secs(10), || d.listing().contains(VIP)),
            "a director with the right credentials never followed etcd ({m}):\n{}",
            d.log_text()
        );
        assert_eq!(metric(m, "rvs_discovery_connected"), Some(1));
    }
    assert!(
        wait(Duration::from_secs(5), || wrong_pw
            .log_text()
            .contains("authentication as root failed")),
        "{}",
        wrong_pw.log_text()
    );
    for (d, m) in [
        (&no_cert, "127.77.193.3:9760"),
        (&wrong_pw, "127.77.193.6:9760"),
    ] {
        assert_eq!(
            metric(m, "rvs_discovery_connected"),
            Some(0),
            "{}",
            d.log_text()
        );
        assert!(!d.listing().contains(VIP), "{}", d.listing());
        assert!(
            d.log_text().contains("keeping the table as it is"),
            "{}",
            d.log_text()
        );
    }

    // A flood: 100 real servers in one transaction (one revision, one watch response).
    let m = "127.77.193.2:9760";
    let events_before = metric(m, "rvs_discovery_events_total").unwrap();
    let applies_before = metric(m, "rvs_discovery_applies_total").unwrap();
    let ops: Vec<String> = (1..=100)
        .map(|i| {
            // A Go-quoted value: etcdctl 3.4's txn reader cuts single-quoted ones short.
            format!(
                r#"put {P}/servers/web/rs{i} "{{\"addr\":\"127.77.194.{i}\",\"port\":8080,\"method\":\"masq\"}}""#
            )
        })
        .collect();
    certs_etcd.txn(&ops);
    let count = |d: &Rvsd| {
        d.listing()
            .lines()
            .filter(|l| l.contains("127.77.194."))
            .count()
    };
    assert!(
        wait(Duration::from_secs(10), || count(&with_cert) == 100),
        "{} of 100 real servers",
        count(&with_cert)
    );
    let events = metric(m, "rvs_discovery_events_total").unwrap() - events_before;
    let applies = metric(m, "rvs_discovery_applies_total").unwrap() - applies_before;
    report(
        "tls_and_authentication_then_a_flood_of_events_is_coalesced",
        &format!("100 puts in one transaction: {events} events, {applies} applies"),
    );
    assert!(events >= 100, "{events} events counted");
    assert!(applies <= 3, "{applies} applies for one transaction");
}
