//! The Grafana dashboard (`examples/grafana/rvs.json`) against Debian's real Prometheus: the
//! example scrape configuration (`examples/prometheus/prometheus.yml`, pointed at this test's
//! rvsd and scraping every second) scrapes an rvsd that runs a keepalived configuration with
//! a health-checked service while curl sends traffic; then every query of every panel is run
//! through Prometheus' HTTP API and must return data. The VRRP and connection-sync panels are
//! the exception: this rvsd runs neither, so their queries only have to be valid.
//!
//! Addresses: 127.77.66.0/24.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const PROM: &str = "127.77.66.1:9090";
const METRICS: &str = "127.77.66.1:9760";

fn query(expr: &str) -> Value {
    let out = curl_ok(&[
        "-G",
        &format!("http://{PROM}/api/v1/query"),
        "--data-urlencode",
        &format!("query={expr}"),
    ]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{expr}: {e}: {out}"))
}

#[test]
fn dashboard_queries_return_data_from_a_real_prometheus() {
    require!("prometheus", "nginx", "curl");
    let ws = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempdir("prometheus");
    let _nginx = start_nginx(
        dir.path(),
        &[
            Site::named("127.77.66.11:8080", "rs1"),
            Site::named("127.77.66.12:8080", "rs2"),
        ],
        None,
    );
    let conf = "virtual_server 127.77.66.1 8080 {\n  delay_loop 1\n  lvs_sched rr\n  \
                lvs_method NAT\n  protocol TCP\n  \
                real_server 127.77.66.11 8080 {\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n  \
                real_server 127.77.66.12 8080 {\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n}\n";
    let d = start_keepalived(dir.path(), conf, &["--metrics-listen", METRICS]);
    let up = wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
        d.ok(&["-Ln"]).matches("Masq").count() == 2
    });
    assert!(up, "{}", d.ok(&["-Ln"]));

    // The example scrape configuration, aimed at this rvsd, scraping every second.
    let example = std::fs::read_to_string(ws.join("examples/prometheus/prometheus.yml")).unwrap();
    assert!(example.contains("127.0.0.1:9760"), "{example}");
    let cfg = example
        .replace("127.0.0.1:9760", METRICS)
        .replace("scrape_interval: 10s", "scrape_interval: 1s")
        .replace("evaluation_interval: 10s", "evaluation_interval: 1s");
    let cfg_path = dir.path().join("prometheus.yml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let mut cmd = Command::new(which("prometheus").unwrap());
    cmd.arg(format!("--config.file={}", cfg_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={PROM}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap());
    let mut prom = Proc::spawn("prometheus", cmd);
    let log = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    // Traffic while Prometheus scrapes: a bounded loop on its own thread.
    let traffic = std::thread::spawn(|| {
        let mut ok = 0;
        for _ in 0..80 {
            if curl(&["http://127.77.66.1:8080/"]).status.success() {
                ok += 1;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    let scraped = wait_until(Duration::from_secs(60), Duration::from_millis(500), || {
        prom.try_status().is_none()
            && curl_get(&format!("http://{PROM}/api/v1/targets"))
                .is_some_and(|t| t.contains("\"health\":\"up\""))
    });
    assert!(scraped, "Prometheus does not scrape rvsd:\n{}", log());
    let served = traffic.join().unwrap();
    assert!(served >= 70, "{served}/80 requests answered");

    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(ws.join("examples/grafana/rvs.json")).unwrap(),
    )
    .expect("rvs.json is JSON");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    // Rates need two samples in the window after the traffic: wait until the first panel's
    // query has data, then check them all.
    let mut checked = 0;
    for p in panels {
        let title = p["title"].as_str().unwrap();
        let may_be_empty = title.starts_with("VRRP") || title.starts_with("Connection sync");
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "15s")
                .replace("$instance", ".*");
            let mut r = Value::Null;
            let ok = wait_until(Duration::from_secs(20), Duration::from_millis(500), || {
                r = query(&expr);
                r["status"] == "success"
                    && (may_be_empty
                        || r["data"]["result"]
                            .as_array()
                            .is_some_and(|a| !a.is_empty()))
            });
            assert!(ok, "panel {title:?}: {expr}: {r}\n{}", log());
            checked += 1;
        }
    }
    assert!(checked >= 10);
    // The traffic shows in the per-service rate, with the dashboard's own labels.
    let r = query(
        &panels[0]["targets"][0]["expr"]
            .as_str()
            .unwrap()
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*"),
    );
    let series = &r["data"]["result"][0];
    assert_eq!(series["metric"]["local_address"], "127.77.66.1", "{r}");
    let v: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
    assert!(v > 0.0, "{r}");
}
