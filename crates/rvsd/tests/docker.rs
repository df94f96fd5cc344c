//! Docker discovery against a real dockerd (Debian docker.io) started by the test, with a
//! `FROM scratch` image of the static busybox (no registry): three labelled `httpd`
//! containers behind a VIP, curl reaches all three; `docker stop` one → drained and removed
//! while a bounded client loop through the VIP sees no failed request; `docker run` another →
//! it joins within a second (measured); Docker's healthcheck decides (starting and unhealthy
//! containers are not served); rvsadm changes to the service are refused naming Docker;
//! dockerd restarted → the table is unchanged and follows new events.
//!
//! Root (a bridge of its own). Addresses: VIP 127.77.191.100:8080, metrics 127.77.191.2;
//! containers on bridge `rvsbr191`, 10.219.191.0/24.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

const VIP: &str = "127.77.191.100:8080";
const METRICS: &str = "127.77.191.2:9760";
const IMAGE: &str = "rvs-busybox:t191";

fn metric(name: &str) -> Option<u64> {
    let text = curl_get(&format!("http://{METRICS}/metrics"))?;
    let want = format!("{name}{{source=\"docker\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .and_then(|v| v.trim().parse().ok())
}

/// The real servers of the VIP: (address, weight), sorted.
fn table(d: &Rvsd) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = d.dests().into_iter().map(|(a, w, _)| (a, w)).collect();
    v.sort();
    v
}

fn served(d: &Rvsd) -> BTreeSet<String> {
    table(d)
        .into_iter()
        .filter(|(_, w)| *w > 0)
        .map(|(a, _)| a)
        .collect()
}

/// A labelled httpd container answering its own name, started by
/// `examples/docker/run-web.sh` (so the example is tested); its real-server address.
fn run(dk: &Dockerd, name: &str, extra: &[&str]) -> String {
    let mut args = vec![IMAGE, name, "tcp:127.77.191.100:8080"];
    args.extend_from_slice(extra);
    let addr = dk.example("run-web.sh", &args);
    assert_eq!(
        addr,
        format!("{}:80", dk.ip_of(name)),
        "run-web.sh printed {addr:?}"
    );
    addr
}

#[test]
fn labelled_containers_are_real_servers() {
    require_root!();
    require!("dockerd", "docker", "busybox", "curl", "ip", "tar");
    let dir = tempdir("docker");
    let dk_dir = dir.path().join("dockerd");
    std::fs::create_dir_all(&dk_dir).unwrap();
    let mut dk = Dockerd::start(&dk_dir, "rvsbr191", "10.219.191.1/24");
    dk.import_busybox(IMAGE);
    let sock = dk.socket.display().to_string();
    let rvsd = start_rvsd(
        dir.path(),
        &[
            "--docker",
            &sock,
            "--metrics-listen",
            METRICS,
            "--drain-time",
            "10",
        ],
    );
    assert!(wait(Duration::from_secs(10), || metric(
        "rvs_discovery_connected"
    ) == Some(1)));

    // Three containers behind the VIP; curl reaches all three.
    let c1 = run(&dk, "c1", &[]);
    let c2 = run(&dk, "c2", &[]);
    let c3 = run(&dk, "c3", &[]);
    let three: BTreeSet<String> = [c1.clone(), c2.clone(), c3.clone()].into();
    assert!(
        wait(Duration::from_secs(5), || served(&rvsd) == three),
        "{:?}\n{}",
        table(&rvsd),
        rvsd.log_text()
    );
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        if let Some(b) = curl_get(&format!("http://{VIP}/")) {
            seen.insert(b.trim().to_string());
        }
        if seen.len() == 3 {
            break;
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["c1", "c2", "c3"]);

    // rvsadm may not change Docker's service.
    let e = rvsd.adm(&["-d", "-t", VIP, "-r", &c1]);
    assert!(e.code != 0 && e.err.contains("managed by docker"), "{e:?}");

    // docker stop: drained on SIGTERM, removed, and no client request fails meanwhile.
    let lp = ClientLoop::start(&format!("http://{VIP}/"), 400);
    std::thread::sleep(Duration::from_millis(300));
    let t_stop = Instant::now();
    dk.docker(&["stop", "-t", "2", "c2"]);
    let stop_took = t_stop.elapsed();
    let gone = wait_for(Duration::from_secs(5), || {
        !table(&rvsd).iter().any(|(a, _)| *a == c2)
    });
    std::thread::sleep(Duration::from_millis(300));
    let (n, failed) = lp.finish();
    report(
        "labelled_containers_are_real_servers",
        &format!(
            "docker stop -t 2 took {:.1} s; {n} requests through the VIP meanwhile, {failed} failed",
            stop_took.as_secs_f64()
        ),
    );
    assert!(gone.is_some(), "c2 stayed: {:?}", table(&rvsd));
    assert!(n > 20, "the client loop hardly ran ({n})");
    assert_eq!(
        failed,
        0,
        "requests failed while c2 was drained:\n{}",
        rvsd.log_text()
    );
    assert!(rvsd.log_text().contains(&format!("draining {c2}")));

    // docker run another: it joins within a second.
    let t_run = Instant::now();
    let c4 = run(&dk, "c4", &[]);
    let run_took = t_run.elapsed();
    let joined = wait_for(Duration::from_secs(5), || served(&rvsd).contains(&c4));
    report(
        "labelled_containers_are_real_servers",
        &format!(
            "docker run returned after {:.0} ms; c4 in the table {} ms later",
            run_took.as_secs_f64() * 1000.0,
            joined.map_or("never".to_string(), |d| format!(
                "{:.0}",
                d.as_secs_f64() * 1000.0
            ))
        ),
    );
    assert!(
        joined.is_some_and(|d| d < Duration::from_secs(1)),
        "{joined:?}"
    );

    // Docker's healthcheck decides: not served while starting or unhealthy.
    let c5 = run(
        &dk,
        "c5",
        &[
            "--health-cmd",
            "test -f /www/ok",
            "--health-interval",
            "200ms",
            "--health-retries",
            "1",
        ],
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(!served(&rvsd).contains(&c5), "unhealthy c5 is served");
    dk.docker(&["exec", "c5", "/bin/sh", "-c", "echo ok > /www/ok"]);
    assert!(
        wait(Duration::from_secs(5), || served(&rvsd).contains(&c5)),
        "healthy c5 not served: {:?}",
        table(&rvsd)
    );
    dk.docker(&["exec", "c5", "/bin/sh", "-c", "rm /www/ok"]);
    assert!(
        wait(Duration::from_secs(5), || !table(&rvsd)
            .iter()
            .any(|(a, _)| *a == c5)),
        "unhealthy c5 still in the table: {:?}",
        table(&rvsd)
    );

    // dockerd restarted (containers live on, --live-restore): the table is unchanged, and
    // rvsd follows new events afterwards.
    let before = table(&rvsd);
    dk.stop();
    assert!(wait(Duration::from_secs(10), || metric(
        "rvs_discovery_connected"
    ) == Some(0)));
    assert_eq!(
        table(&rvsd),
        before,
        "the table changed while dockerd was away"
    );
    assert!(curl_get(&format!("http://{VIP}/")).is_some());
    dk.restart();
    assert!(wait(Duration::from_secs(15), || metric(
        "rvs_discovery_connected"
    ) == Some(1)));
    assert!(metric("rvs_discovery_resyncs_total").unwrap_or(0) >= 2);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(table(&rvsd), before, "the resync changed the table");
    let c6 = run(&dk, "c6", &[]);
    assert!(wait(Duration::from_secs(3), || served(&rvsd).contains(&c6)));
    dk.docker(&["stop", "-t", "1", "c4"]);
    assert!(wait(Duration::from_secs(5), || !table(&rvsd)
        .iter()
        .any(|(a, _)| *a == c4)));
    let want: BTreeSet<String> = [c1, c3, c6].into();
    assert_eq!(served(&rvsd), want);
}
